/* SPDX-License-Identifier: MIT */
/*
 * smtp_reply.c - SMTP replies: the backend's, parsed; ours, formatted.
 *
 * px_reply_parse() finds one complete, possibly multi-line reply at the
 * start of a buffer (RFC 5321 4.2 and 4.2.1) and extracts its code and the
 * RFC 3463 enhanced status code of its first line.  px_caps_parse() reads
 * the keywords of an EHLO reply (RFC 5321 4.1.1.1) including the attribute
 * lists of Postfix XCLIENT and XFORWARD.  px_reply_format() builds one of
 * our own single-line replies and makes sure peer data placed in it cannot
 * end it early or smuggle a second line.
 *
 * All three are pure and keep no pointers; px_reply_parse() may be called
 * again on the same, grown buffer until it stops answering 0.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "smtp_reply.h"

static inline bool
px_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline unsigned char
px_upper(unsigned char c)
{
	return c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c;
}

/*
 * px_enh_parse - an RFC 3463 status code "class.subject.detail" at the start
 * of t[0..n), followed by a space or the end of the line.  The class must
 * agree with the reply code's first digit, as Postfix also requires;
 * otherwise the text is taken as plain text.  Returns the code's length and
 * copies it to enh, or returns 0.
 */
static size_t
px_enh_parse(const char *t, size_t n, char first, char enh[16])
{
	size_t i = 0;

	if (n < 5 || t[0] != first || t[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;

		if (part == 1) {
			if (i >= n || t[i] != '.')
				return 0;
			i++;
		}
		while (i < n && px_is_digit((unsigned char)t[i]) && d < 3) {
			i++;
			d++;
		}
		if (d == 0)
			return 0;
	}
	if (i < n && t[i] != ' ')
		return 0;
	memcpy(enh, t, i);
	enh[i] = '\0';
	return i;
}

/*
 * px_reply_line_check - check what there is of one reply line, t[0..n)
 * without its line end (complete false: the line end has not arrived yet).
 * Returns false as soon as the bytes cannot be part of a valid line.
 * SECURITY: a NUL or a CR that does not end the line could reach the client
 * in a relayed reply and make it see a different reply than we did.
 */
static bool
px_reply_line_check(const char *t, size_t n, bool complete, int code)
{
	size_t k;
	char want[3];

	/* An incomplete line may end in the CR of its CRLF, once it has
	 * its code. */
	if (!complete && n > 3 && t[n - 1] == '\r')
		n--;
	k = n < 3 ? n : 3;

	if (k > 0 && (t[0] < '2' || t[0] > '5'))
		return false;
	for (size_t i = 0; i < k; i++)
		if (!px_is_digit((unsigned char)t[i]))
			return false;
	/* Later lines repeat the first line's code, digit by digit, so a
	 * different code is refused from its first wrong digit. */
	if (code >= 0) {
		want[0] = (char)('0' + code / 100);
		want[1] = (char)('0' + code / 10 % 10);
		want[2] = (char)('0' + code % 10);
		if (memcmp(t, want, k) != 0)
			return false;
	}
	if (n >= 4 && t[3] != ' ' && t[3] != '-')
		return false;
	if (complete && n < 3)
		return false;
	if (memchr(t, '\0', n) != NULL)
		return false;
	if (memchr(t, '\r', n) != NULL)
		return false;
	return true;
}

ssize_t
px_reply_parse(const char *buf, size_t len, struct px_reply_info *info)
{
	size_t limit = len < PX_REPLY_MAX ? len : PX_REPLY_MAX;
	size_t pos = 0;
	int code = -1;
	unsigned nlines = 0;
	struct px_reply_info tmp;

	if (info == NULL)
		info = &tmp;
	memset(info, 0, sizeof(*info));

	for (;;) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', limit - pos);
		size_t n;

		if (nl == NULL) {
			if (!px_reply_line_check(line, limit - pos, false,
			                         code))
				return -1;
			/* SECURITY: a backend that never finishes its reply
			 * must not make us buffer without bound. */
			return len >= PX_REPLY_MAX ? -1 : 0;
		}
		n = (size_t)(nl - line);
		/* CRLF, or a bare LF as Postfix accepts from servers. */
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (!px_reply_line_check(line, n, true, code))
			return -1;
		if (nlines++ == 0) {
			size_t t = n > 4 ? 4 : n, e;

			code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
			       (line[2] - '0');
			e = px_enh_parse(line + t, n - t, line[0], info->enh);
			if (e > 0) {
				t += e;
				if (t < n)
					t++; /* the space after it */
			}
			info->text_off = pos + t;
			info->text_len = n - t;
		}
		pos = (size_t)(nl - buf) + 1;
		if (n == 3 || line[3] == ' ') {
			info->code = code;
			info->nlines = nlines;
			return (ssize_t)pos;
		}
	}
}

/* px_word_eq - true if w[0..n) equals the upper-case keyword kw, ignoring
 * ASCII case */
static bool
px_word_eq(const char *w, size_t n, const char *kw)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (kw[i] == '\0' || px_upper((unsigned char)w[i]) != kw[i])
			return false;
	return kw[i] == '\0';
}

/* One word of an EHLO keyword's parameters that we know, and its bit. */
struct px_word_bit {
	const char *name;
	unsigned bit;
};

static const struct px_word_bit px_xattrs[] = {
    {"NAME", PX_XATTR_NAME},         {"ADDR", PX_XATTR_ADDR},
    {"PORT", PX_XATTR_PORT},         {"PROTO", PX_XATTR_PROTO},
    {"HELO", PX_XATTR_HELO},         {"LOGIN", PX_XATTR_LOGIN},
    {"SOURCE", PX_XATTR_SOURCE},     {"IDENT", PX_XATTR_IDENT},
    {"DESTADDR", PX_XATTR_DESTADDR}, {"DESTPORT", PX_XATTR_DESTPORT},
};

static const struct px_word_bit px_auth_mechs[] = {
    {"PLAIN", PX_AUTH_PLAIN},
    {"LOGIN", PX_AUTH_LOGIN},
};

/* px_words_parse - the bits of the space-separated words of s[0..n) found
 * in table (case-insensitive); other words (XCLIENT's REVERSE_NAME, AUTH's
 * CRAM-MD5, ...) are skipped. */
static unsigned
px_words_parse(const char *s, size_t n, const struct px_word_bit *table,
               size_t count)
{
	unsigned bits = 0;
	size_t i = 0;

	while (i < n) {
		size_t w;

		while (i < n && s[i] == ' ')
			i++;
		w = i;
		while (i < n && s[i] != ' ')
			i++;
		for (size_t k = 0; k < count && i > w; k++)
			if (px_word_eq(s + w, i - w, table[k].name))
				bits |= table[k].bit;
	}
	return bits;
}

#define PX_WORDS_PARSE(s, n, table)                                            \
	px_words_parse((s), (n), (table), sizeof(table) / sizeof((table)[0]))

/* px_size_parse - RFC 1870 SIZE argument; a bad number means no limit
 * given, one too large for 64 bits is clamped */
static unsigned long long
px_size_parse(const char *s, size_t n)
{
	unsigned long long v = 0;

	while (n > 0 && s[0] == ' ') {
		s++;
		n--;
	}
	while (n > 0 && s[n - 1] == ' ')
		n--;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (!px_is_digit((unsigned char)s[i]))
			return 0;
		d = (unsigned)(s[i] - '0');
		if (v > (~0ULL - d) / 10)
			v = ~0ULL;
		else
			v = v * 10 + d;
	}
	return v;
}

int
px_caps_parse(const char *buf, size_t len, struct px_caps *caps)
{
	struct px_reply_info info;
	ssize_t r;
	size_t pos, end;
	bool first = true;

	memset(caps, 0, sizeof(*caps));
	r = px_reply_parse(buf, len, &info);
	if (r <= 0 || info.code != 250)
		return -1;
	end = (size_t)r;

	for (pos = 0; pos < end;) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', end - pos);
		size_t n = (size_t)(nl - line), w;
		const char *kw, *args;
		size_t kwlen, alen;

		pos += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		/* The first line is the greeting, not a keyword. */
		if (first || n <= 4) {
			first = false;
			continue;
		}
		kw = line + 4;
		n -= 4;
		for (w = 0; w < n && kw[w] != ' '; w++)
			;
		kwlen = w;
		args = kw + w;
		alen = n - w;

		if (px_word_eq(kw, kwlen, "PIPELINING"))
			caps->pipelining = true;
		else if (px_word_eq(kw, kwlen, "SIZE")) {
			caps->size = true;
			caps->size_max = px_size_parse(args, alen);
		} else if (px_word_eq(kw, kwlen, "8BITMIME"))
			caps->eightbitmime = true;
		else if (px_word_eq(kw, kwlen, "SMTPUTF8"))
			caps->smtputf8 = true;
		else if (px_word_eq(kw, kwlen, "DSN"))
			caps->dsn = true;
		else if (px_word_eq(kw, kwlen, "ENHANCEDSTATUSCODES"))
			caps->enhanced = true;
		else if (px_word_eq(kw, kwlen, "CHUNKING"))
			caps->chunking = true;
		else if (px_word_eq(kw, kwlen, "BINARYMIME"))
			caps->binarymime = true;
		else if (px_word_eq(kw, kwlen, "STARTTLS"))
			caps->starttls = true;
		else if (px_word_eq(kw, kwlen, "AUTH"))
			caps->auth |= PX_WORDS_PARSE(args, alen, px_auth_mechs);
		else if (px_word_eq(kw, kwlen, "XCLIENT")) {
			caps->xclient = true;
			caps->xclient_attrs |=
			    PX_WORDS_PARSE(args, alen, px_xattrs);
		} else if (px_word_eq(kw, kwlen, "XFORWARD")) {
			caps->xforward = true;
			caps->xforward_attrs |=
			    PX_WORDS_PARSE(args, alen, px_xattrs);
		}
	}
	return 0;
}

size_t
px_reply_format(char *buf, size_t bufsize, int code, const char *enh,
                const char *fmt, ...)
{
	char pre[32];
	size_t room, n, text;
	int r;
	va_list ap;

	/* Room for the content; the CRLF and the NUL are always kept. */
	if (bufsize < 3) {
		if (bufsize > 0)
			buf[0] = '\0';
		return 0;
	}
	room = bufsize - 3;

	if (enh != NULL && enh[0] != '\0')
		r = snprintf(pre, sizeof(pre), "%03d %.15s", code, enh);
	else
		r = snprintf(pre, sizeof(pre), "%03d", code);
	n = r < 0 ? 0 : (size_t)r;
	if (n > room)
		n = room;
	memcpy(buf, pre, n);

	if (n < room) {
		buf[n] = ' ';
		text = n + 1;
		va_start(ap, fmt);
		r = vsnprintf(buf + text, room - text + 1, fmt, ap);
		va_end(ap);
		if (r > 0 && room > text) {
			size_t tl = (size_t)r;

			if (tl > room - text)
				tl = room - text;
			/* SECURITY: a CR or LF from peer data would end
			 * the reply early and let the peer write the
			 * next one. */
			for (size_t i = text; i < text + tl; i++) {
				unsigned char c = (unsigned char)buf[i];

				if (c < 0x20 || c == 0x7f)
					buf[i] = '?';
			}
			n = text + tl;
		}
	}
	buf[n++] = '\r';
	buf[n++] = '\n';
	buf[n] = '\0';
	return n;
}
