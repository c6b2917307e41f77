/* SPDX-License-Identifier: MIT */
/*
 * mime.c - decode a message into what content rules see (see mime.h).
 *
 * rule_msg_parse(): headers (RFC 5322 2.2: unfolding; RFC 2047 encoded
 *   words), then the body by Content-Type: multipart (RFC 2046 5.1,
 *   nested, bounded depth), message/rfc822 (parsed as a message), text
 *   parts decoded (RFC 2045 6.7 quoted-printable, 6.8 base64) and
 *   converted to UTF-8 with iconv, text/html rendered (html.c).
 * rule_b64_decode(), rule_qp_decode(), rule_hdr_decode(),
 *   rule_charset_to_utf8(), rule_addr_list(): the pieces.
 *
 * Broken input never fails: a part without its closing boundary ends at
 * the end of the message, bad base64 characters are dropped, an unknown
 * charset keeps the bytes; each sets a flag the built-in rules report.
 *
 * SECURITY: the input is anyone's message.  Everything is bounded: the
 * nesting depth (RULE_MIME_DEPTH), the number of parts (RULE_MIME_PARTS)
 * and of headers per part (RULE_MIME_HEADERS).
 */
#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "rule_priv.h"

#define RULE_MIME_DEPTH   20
#define RULE_MIME_PARTS   1000
#define RULE_MIME_HEADERS 1000

static const char *const rule_mime_names[RULE_MIME_NFLAGS] = {
    "MIME_BAD_BASE64",  "MIME_MISSING_BOUNDARY", "MIME_UNKNOWN_CHARSET",
    "MIME_TOO_DEEP",    "MISSING_MIME_HB_SEP",   "MIME_HTML_ONLY",
    "MIME_8BIT_HEADER", "MIME_BAD_QP",
};

const char *
rule_mime_flag_name(unsigned i)
{
	return i < RULE_MIME_NFLAGS ? rule_mime_names[i] : "?";
}

/* Vectors of strings in the message. */

static void
rule_vec_push(char ***v, size_t *n, size_t *cap, char *s)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = rule_xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = s;
}

/* Decoders. */

static int
rule_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

char *
rule_b64_decode(const char *in, size_t len, size_t *len_r, bool *bad_r)
{
	char *out = rule_xmalloc(len / 4 * 3 + 4);
	size_t n = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	bool pad = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (c == '=') {
			/* Padding ends a group: drop its partial bits, so
			 * concatenated encodings still decode. */
			pad = true;
			bits = 0;
			continue;
		}
		if (isspace(c))
			continue;
		v = rule_b64_value(c);
		if (v < 0 || pad) {
			/* Data after padding or outside the alphabet. */
			if (bad_r != NULL)
				*bad_r = true;
			if (v < 0)
				continue;
			pad = false;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[n] = '\0';
	if (len_r != NULL)
		*len_r = n;
	return out;
}

int
rule_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *
rule_qp_decode(const char *in, size_t len, size_t *len_r, bool *bad_r)
{
	char *out = rule_xmalloc(len + 1);
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] != '=') {
			out[n++] = in[i];
			continue;
		}
		/* Soft line break: "=" then optional blanks, then EOL. */
		size_t j = i + 1;

		while (j < len && (in[j] == ' ' || in[j] == '\t'))
			j++;
		if (j == len) {
			i = j;
			continue;
		}
		if (in[j] == '\r' && j + 1 < len && in[j + 1] == '\n') {
			i = j + 1;
			continue;
		}
		if (in[j] == '\n') {
			i = j;
			continue;
		}
		if (i + 2 < len && rule_hex((unsigned char)in[i + 1]) >= 0 &&
		    rule_hex((unsigned char)in[i + 2]) >= 0) {
			out[n++] =
			    (char)(rule_hex((unsigned char)in[i + 1]) * 16 +
			           rule_hex((unsigned char)in[i + 2]));
			i += 2;
			continue;
		}
		/* RFC 2045 6.7 note (2): keep a bad "=" as it is. */
		if (bad_r != NULL)
			*bad_r = true;
		out[n++] = '=';
	}
	out[n] = '\0';
	if (len_r != NULL)
		*len_r = n;
	return out;
}

static bool
rule_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + len;

	while (p < e) {
		unsigned n;

		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf)
			n = 1;
		else if (*p >= 0xe0 && *p <= 0xef)
			n = 2;
		else if (*p >= 0xf0 && *p <= 0xf4)
			n = 3;
		else
			return false;
		if ((size_t)(e - p) <= n)
			return false;
		for (unsigned k = 1; k <= n; k++)
			if ((p[k] & 0xc0) != 0x80)
				return false;
		p += n + 1;
	}
	return true;
}

char *
rule_charset_to_utf8(const char *charset, const char *in, size_t len,
                     size_t *len_r, unsigned *flags)
{
	char cs[64];
	iconv_t cd;
	size_t cap = len * 4 + 16, n = 0;
	char *out, *ip = (char *)in, *op;
	size_t il = len, ol;
	bool ascii = true;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)in[i] >= 0x80)
			ascii = false;
	/* No charset: UTF-8 if it is valid, else the commonest 8-bit
	 * charset of mail without a label. */
	if (charset == NULL || charset[0] == '\0' ||
	    strcasecmp(charset, "us-ascii") == 0 ||
	    strcasecmp(charset, "utf-8") == 0 ||
	    strcasecmp(charset, "utf8") == 0) {
		if (ascii || rule_utf8_valid(in, len)) {
			if (len_r != NULL)
				*len_r = len;
			return rule_xstrndup(in, len);
		}
		charset = "WINDOWS-1252";
	}
	snprintf(cs, sizeof(cs), "%s", charset);
	/* RFC 2231 language suffix: "utf-8*en". */
	if (strchr(cs, '*') != NULL)
		*strchr(cs, '*') = '\0';
	/* Wide and 7-bit encodings look like ASCII and are not. */
	if (strcasestr(cs, "utf-16") != NULL || strcasestr(cs, "utf-32") ||
	    strcasestr(cs, "utf-7") != NULL || strcasestr(cs, "ucs") != NULL)
		ascii = false;
	cd = iconv_open("UTF-8//IGNORE", cs);
	if (cd == (iconv_t)-1 || ascii) {
		/* Unknown, or nothing to convert (ASCII is ASCII in every
		 * charset mail uses). */
		if (cd == (iconv_t)-1 && flags != NULL)
			*flags |= RULE_MIME_UNKNOWN_CHARSET;
		if (cd != (iconv_t)-1)
			iconv_close(cd);
		if (len_r != NULL)
			*len_r = len;
		return rule_xstrndup(in, len);
	}
	out = rule_xmalloc(cap + 1);
	op = out;
	ol = cap;
	while (il > 0) {
		size_t rc = iconv(cd, &ip, &il, &op, &ol);

		if (rc != (size_t)-1)
			break;
		/* //IGNORE reports EILSEQ after converting everything it
		 * could: nothing left is the end, not an error.  E2BIG cannot
		 * happen with 4x room: stop rather than loop. */
		if (errno == E2BIG || il == 0)
			break;
		/* EILSEQ / EINVAL: skip one byte. */
		ip++;
		il--;
	}
	n = (size_t)(op - out);
	out[n] = '\0';
	iconv_close(cd);
	if (len_r != NULL)
		*len_r = n;
	return out;
}

/* rule_ew_decode - one encoded word "=?cs?e?text?=" at s (length len);
 * appends its decoded text to b.  Returns false if it is not one. */
static bool
rule_ew_decode(const char *s, size_t len, char **b, size_t *bn, size_t *bcap,
               unsigned *flags)
{
	const char *cs, *enc, *text, *end;
	char charset[64];
	char *raw, *conv;
	size_t rawlen, convlen;

	if (len < 8 || s[0] != '=' || s[1] != '?')
		return false;
	cs = s + 2;
	enc = memchr(cs, '?', len - 2);
	if (enc == NULL || enc - cs == 0 || enc - cs >= (long)sizeof(charset) ||
	    (size_t)(enc - s) + 4 > len || enc[2] != '?')
		return false;
	text = enc + 3;
	end = NULL;
	for (const char *p = text; p + 1 < s + len; p++)
		if (p[0] == '?' && p[1] == '=') {
			end = p;
			break;
		}
	if (end == NULL || end + 2 != s + len)
		return false;
	memcpy(charset, cs, (size_t)(enc - cs));
	charset[enc - cs] = '\0';
	if (enc[1] == 'B' || enc[1] == 'b') {
		raw =
		    rule_b64_decode(text, (size_t)(end - text), &rawlen, NULL);
	} else if (enc[1] == 'Q' || enc[1] == 'q') {
		char *t = rule_xstrndup(text, (size_t)(end - text));

		for (char *c = t; *c; c++)
			if (*c == '_')
				*c = ' ';
		raw = rule_qp_decode(t, strlen(t), &rawlen, NULL);
		free(t);
	} else {
		return false;
	}
	conv = rule_charset_to_utf8(charset, raw, rawlen, &convlen, flags);
	free(raw);
	if (*bn + convlen + 1 > *bcap) {
		*bcap = (*bn + convlen + 1) * 2;
		*b = rule_xrealloc(*b, *bcap);
	}
	memcpy(*b + *bn, conv, convlen);
	*bn += convlen;
	free(conv);
	return true;
}

char *
rule_hdr_decode(const char *in, size_t len, unsigned *flags)
{
	size_t cap = len + 16, n = 0;
	char *out = rule_xmalloc(cap);
	size_t i = 0;
	bool last_ew = false;
	size_t pending_ws = 0; /* output position before blanks after an EW */

	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		/* Unfold: CRLF/LF followed by blanks is a blank. */
		if (c == '\r' || c == '\n') {
			i++;
			continue;
		}
		if (c == '=' && i + 1 < len && in[i + 1] == '?') {
			/* An encoded word ends at the first "?=" after the
			 * encoding's "?X?". */
			size_t q = 0, j;

			for (j = i + 2; j < len && q < 3; j++) {
				if (in[j] == '?')
					q++;
				if (q == 3)
					break;
				if (in[j] == ' ' || in[j] == '\t' ||
				    in[j] == '\n')
					break;
			}
			if (q == 3 && j + 1 < len && in[j + 1] == '=') {
				size_t save = n;

				if (last_ew)
					n = pending_ws; /* RFC 2047 6.2 */
				if (rule_ew_decode(in + i, j + 2 - i, &out, &n,
				                   &cap, flags)) {
					i = j + 2;
					last_ew = true;
					pending_ws = n;
					continue;
				}
				n = save;
			}
		}
		if (c != ' ' && c != '\t')
			last_ew = false;
		if (c >= 0x80 && flags != NULL)
			*flags |= RULE_MIME_8BIT_HEADER;
		if (n + 2 > cap) {
			cap *= 2;
			out = rule_xrealloc(out, cap);
		}
		out[n++] = (char)(c == '\t' ? ' ' : c);
		i++;
	}
	out[n] = '\0';
	/* Raw 8-bit header text: UTF-8 if valid, else windows-1252. */
	if (!rule_utf8_valid(out, n)) {
		char *conv =
		    rule_charset_to_utf8("windows-1252", out, n, NULL, NULL);

		free(out);
		out = conv;
	}
	/* Leading blanks are not part of the value. */
	size_t lead = 0;

	while (out[lead] == ' ')
		lead++;
	if (lead > 0)
		memmove(out, out + lead, strlen(out + lead) + 1);
	return out;
}

/* rule_addr_list - for From:addr / From:name.  A light RFC 5322 3.4
 * address-list reader: "Name <a@b>", "a@b (Name)", "a@b", groups. */
char *
rule_addr_list(const char *value, bool addr)
{
	size_t cap = strlen(value) + 2, n = 0;
	char *out = rule_xmalloc(cap);
	const char *s = value;

	out[0] = '\0';
	while (*s) {
		const char *start, *end, *lt = NULL, *gt = NULL;
		int quote = 0, paren = 0;

		while (*s == ' ' || *s == ',' || *s == ';')
			s++;
		if (*s == '\0')
			break;
		start = s;
		for (; *s; s++) {
			if (*s == '\\' && s[1]) {
				s++;
				continue;
			}
			if (*s == '"' && paren == 0)
				quote = !quote;
			else if (!quote && *s == '(')
				paren++;
			else if (!quote && *s == ')' && paren > 0)
				paren--;
			else if (!quote && paren == 0 && *s == '<')
				lt = s;
			else if (!quote && paren == 0 && *s == '>' && lt)
				gt = s;
			else if (!quote && paren == 0 && *s == ':' && !lt)
				start = s + 1; /* a group name */
			else if (!quote && paren == 0 &&
			         (*s == ',' || *s == ';'))
				break;
		}
		end = s;
		const char *ps, *pe;

		if (lt != NULL && gt != NULL) {
			if (addr) {
				ps = lt + 1;
				pe = gt;
			} else {
				ps = start;
				pe = lt;
			}
		} else if (addr) {
			ps = start;
			pe = end;
			/* drop a "(comment)" */
			const char *c = memchr(ps, '(', (size_t)(pe - ps));

			if (c != NULL)
				pe = c;
		} else {
			const char *c =
			    memchr(start, '(', (size_t)(end - start));
			const char *ce =
			    c ? memchr(c, ')', (size_t)(end - c)) : NULL;

			ps = c ? c + 1 : end;
			pe = ce ? ce : end;
		}
		while (ps < pe && (*ps == ' ' || *ps == '"' || *ps == '\t'))
			ps++;
		while (pe > ps &&
		       (pe[-1] == ' ' || pe[-1] == '"' || pe[-1] == '\t'))
			pe--;
		/* "<a> <b": the last '<' comes after the '>', pe before ps:
		 * nothing to take (the length would wrap around) */
		if (pe < ps)
			pe = ps;
		if (n + (size_t)(pe - ps) + 2 > cap) {
			cap = (n + (size_t)(pe - ps) + 2) * 2;
			out = rule_xrealloc(out, cap);
		}
		if (pe > ps) {
			memcpy(out + n, ps, (size_t)(pe - ps));
			n += (size_t)(pe - ps);
			out[n++] = '\n';
		}
		out[n] = '\0';
	}
	return out;
}

/* Headers. */

struct rule_hdrs {
	struct rule_header *v;
	size_t n, cap;
};

static void
rule_hdrs_add(struct rule_msg *msg, struct rule_header **v, size_t *n,
              size_t *cap, const char *name, size_t nlen, const char *val,
              size_t vlen)
{
	struct rule_header *h;
	char *raw;
	size_t k = 0;

	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = rule_xrealloc(*v, *cap * sizeof(**v));
	}
	h = &(*v)[(*n)++];
	h->name = rule_xstrndup(name, nlen);
	/* raw: CRLF as LF, leading blanks dropped, final EOL dropped. */
	while (vlen > 0 && (*val == ' ' || *val == '\t')) {
		val++;
		vlen--;
	}
	raw = rule_xmalloc(vlen + 1);
	for (size_t i = 0; i < vlen; i++)
		if (val[i] != '\r')
			raw[k++] = val[i];
	while (k > 0 && raw[k - 1] == '\n')
		k--;
	raw[k] = '\0';
	h->raw = raw;
	h->value = rule_hdr_decode(raw, k, &msg->flags);
}

/* rule_line_end - end of the line at s (the LF, or e); *next_r after it. */
static const char *
rule_line_end(const char *s, const char *e, const char **next_r)
{
	const char *nl = memchr(s, '\n', (size_t)(e - s));

	if (nl == NULL) {
		*next_r = e;
		return e;
	}
	*next_r = nl + 1;
	return nl > s && nl[-1] == '\r' ? nl - 1 : nl;
}

/*
 * rule_parse_headers - the header block at s..e into v.  Returns where the
 * body starts.  A line that is neither a header nor a continuation ends
 * the block (sets RULE_MIME_NO_HB_SEP): the body starts there.
 */
static const char *
rule_parse_headers(struct rule_msg *msg, const char *s, const char *e,
                   struct rule_header **v, size_t *n, size_t *cap, bool top)
{
	const char *name = NULL, *val = NULL;
	size_t nlen = 0;
	size_t count = 0;

	while (s < e) {
		const char *next, *le = rule_line_end(s, e, &next);

		if (le == s) { /* the blank line */
			s = next;
			break;
		}
		if ((*s == ' ' || *s == '\t') && name != NULL) {
			s = next;
			continue; /* a continuation: part of val */
		}
		const char *colon = memchr(s, ':', (size_t)(le - s));
		bool ok = colon != NULL && colon > s;

		for (const char *c = s; ok && c < colon; c++)
			if ((unsigned char)*c <= ' ' ||
			    (unsigned char)*c >= 0x7f)
				ok = false;
		if (name != NULL && count < RULE_MIME_HEADERS) {
			rule_hdrs_add(msg, v, n, cap, name, nlen, val,
			              (size_t)(s - val));
			count++;
		}
		name = NULL;
		if (!ok) {
			/* Not a header: the body began without a blank
			 * line (or an mbox "From " line at the very top). */
			if (top && count == 0 && le - s >= 5 &&
			    memcmp(s, "From ", 5) == 0) {
				s = next;
				continue;
			}
			msg->flags |= RULE_MIME_NO_HB_SEP;
			return s;
		}
		name = s;
		nlen = (size_t)(colon - s);
		val = colon + 1;
		s = next;
	}
	if (name != NULL && count < RULE_MIME_HEADERS) {
		/* the value runs to the blank line (excluded) */
		/* The value runs to here: the blank line and the last
		 * EOL are dropped by rule_hdrs_add. */
		const char *ve = s;

		rule_hdrs_add(msg, v, n, cap, name, nlen, val,
		              (size_t)(ve - val));
	}
	return s;
}

static const struct rule_header *
rule_hdr_find(const struct rule_header *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

/* rule_param - the value of parameter name in a Content-Type-like value
 * (quoted or not), into buf; false if absent. */
static bool
rule_param(const char *value, const char *name, char *buf, size_t size)
{
	size_t nl = strlen(name);
	const char *s = strchr(value, ';');

	while (s != NULL) {
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (strncasecmp(s, name, nl) == 0) {
			const char *v = s + nl;

			/* RFC 2231: name*=charset''value (first segment) */
			bool ext = false;

			if (*v == '*') {
				ext = true;
				v++;
				if (*v == '0') {
					v++;
					if (*v == '*')
						v++;
					else
						ext = false;
				}
			}
			while (*v == ' ')
				v++;
			if (*v == '=') {
				size_t n = 0;

				v++;
				while (*v == ' ')
					v++;
				if (ext) {
					const char *q = strstr(v, "''");
					const char *semi = strchr(v, ';');

					if (q != NULL &&
					    (semi == NULL || q < semi))
						v = q + 2;
				}
				if (*v == '"') {
					v++;
					while (*v && *v != '"' &&
					       n + 1 < size) {
						if (*v == '\\' && v[1])
							v++;
						buf[n++] = *v++;
					}
				} else {
					while (*v && *v != ';' && *v != ' ' &&
					       n + 1 < size)
						buf[n++] = *v++;
				}
				buf[n] = '\0';
				return true;
			}
		}
		s = strchr(s, ';');
	}
	return false;
}

/* Body text. */

/* rule_add_paragraphs - SpamAssassin's body text: paragraphs (split at
 * blank lines), whitespace runs folded to one space. */
static void
rule_add_paragraphs(struct rule_msg *msg, const char *t, size_t len)
{
	size_t i = 0;

	while (i < len) {
		char *p = rule_xmalloc(len - i + 1);
		size_t n = 0;
		bool space = false;

		while (i < len) {
			unsigned char c = (unsigned char)t[i];

			if (c == '\n') {
				/* blank line(s): paragraph break */
				size_t j = i + 1;

				while (j < len &&
				       (t[j] == ' ' || t[j] == '\t' ||
				        t[j] == '\r'))
					j++;
				if (j < len && t[j] == '\n') {
					i = j + 1;
					break;
				}
			}
			if (isspace(c)) {
				space = n > 0;
				i++;
				continue;
			}
			if (space) {
				p[n++] = ' ';
				space = false;
			}
			p[n++] = (char)c;
			i++;
		}
		p[n] = '\0';
		if (n > 0)
			rule_vec_push(&msg->body, &msg->nbody, &msg->capb, p);
		else
			free(p);
	}
}

static void
rule_add_lines(struct rule_msg *msg, const char *t, size_t len)
{
	const char *s = t, *e = t + len;

	while (s < e) {
		const char *next, *le = rule_line_end(s, e, &next);

		rule_vec_push(&msg->rawbody, &msg->nrawbody, &msg->capr,
		              rule_xstrndup(s, (size_t)(le - s)));
		s = next;
	}
}

struct rule_mime_ctx {
	struct rule_msg *msg;
	bool truncated;
	bool seen_plain, seen_html;
};

static void rule_parse_entity(struct rule_mime_ctx *cx, const char *s,
                              const char *e, unsigned depth, bool top,
                              const char *default_type);

static void
rule_text_part(struct rule_mime_ctx *cx, const char *type, const char *cte,
               const char *charset, const char *s, size_t len)
{
	struct rule_msg *msg = cx->msg;
	char *dec, *utf;
	size_t dlen, ulen;
	bool bad = false;

	if (strncasecmp(cte, "base64", 6) == 0) {
		dec = rule_b64_decode(s, len, &dlen, &bad);
		if (bad)
			msg->flags |= RULE_MIME_BAD_BASE64;
	} else if (strncasecmp(cte, "quoted-printable", 16) == 0) {
		dec = rule_qp_decode(s, len, &dlen, &bad);
		if (bad)
			msg->flags |= RULE_MIME_BAD_QP;
	} else {
		dec = rule_xstrndup(s, len);
		dlen = len;
	}
	utf = rule_charset_to_utf8(charset, dec, dlen, &ulen, &msg->flags);
	free(dec);
	/* NUL bytes would cut strings short: make them spaces. */
	for (size_t i = 0; i < ulen; i++)
		if (utf[i] == '\0')
			utf[i] = ' ';
	rule_add_lines(msg, utf, ulen);
	if (strcasecmp(type, "text/html") == 0) {
		size_t tlen;
		char *text = rule_html_render(msg, utf, ulen, &tlen);

		rule_add_paragraphs(msg, text, tlen);
		rule_uri_scan(msg, text, tlen);
		free(text);
		cx->seen_html = true;
	} else {
		rule_add_paragraphs(msg, utf, ulen);
		rule_uri_scan(msg, utf, ulen);
		cx->seen_plain = true;
	}
	free(utf);
}

/* rule_find_boundary - the next line "--b" (or "--b--": *last) at or after
 * s, at the start of a line.  Returns its start or NULL; *next_r after
 * the line. */
static const char *
rule_find_boundary(const char *s, const char *e, const char *b, size_t blen,
                   bool at_start, bool *last, const char **next_r)
{
	const char *p = s;

	while (p < e) {
		if ((p == s && at_start) || (p > s && p[-1] == '\n')) {
			if ((size_t)(e - p) >= blen + 2 && p[0] == '-' &&
			    p[1] == '-' && memcmp(p + 2, b, blen) == 0) {
				const char *q = p + 2 + blen, *next;

				*last = (size_t)(e - q) >= 2 && q[0] == '-' &&
				        q[1] == '-';
				rule_line_end(q, e, &next);
				*next_r = next;
				return p;
			}
		}
		const char *nl = memchr(p, '\n', (size_t)(e - p));

		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return NULL;
}

static void
rule_multipart(struct rule_mime_ctx *cx, const char *b, const char *s,
               const char *e, unsigned depth, const char *subtype)
{
	struct rule_msg *msg = cx->msg;
	size_t blen = strlen(b);
	bool last = false;
	const char *next, *p;
	const char *deftype = strcasecmp(subtype, "digest") == 0
	                          ? "message/rfc822"
	                          : "text/plain";

	p = rule_find_boundary(s, e, b, blen, true, &last, &next);
	if (p == NULL) {
		/* No boundary at all: read it as one text part. */
		msg->flags |= RULE_MIME_MISSING_BOUNDARY;
		rule_text_part(cx, "text/plain", "", "", s, (size_t)(e - s));
		return;
	}
	while (!last) {
		const char *start = next, *pe, *after;

		pe = rule_find_boundary(start, e, b, blen, true, &last, &after);
		if (pe == NULL) {
			if (!cx->truncated)
				msg->flags |= RULE_MIME_MISSING_BOUNDARY;
			rule_parse_entity(cx, start, e, depth + 1, false,
			                  deftype);
			return;
		}
		/* The CRLF before the boundary belongs to it (RFC 2046). */
		const char *end = pe;

		if (end > start && end[-1] == '\n')
			end--;
		if (end > start && end[-1] == '\r')
			end--;
		rule_parse_entity(cx, start, end, depth + 1, false, deftype);
		if (msg->nparts >= RULE_MIME_PARTS)
			return;
		next = after;
	}
}

/* rule_parse_entity - one MIME entity (headers + body) in s..e. */
static void
rule_parse_entity(struct rule_mime_ctx *cx, const char *s, const char *e,
                  unsigned depth, bool top, const char *default_type)
{
	struct rule_msg *msg = cx->msg;
	size_t first = top ? 0 : msg->nmime_hdrs;
	const char *body;
	const struct rule_header *h, *hv;
	size_t hn;
	char type[128], cte[64], charset[64], boundary[256];

	if (depth > RULE_MIME_DEPTH) {
		msg->flags |= RULE_MIME_TOO_DEEP;
		return;
	}
	if (msg->nparts >= RULE_MIME_PARTS)
		return;
	msg->nparts++;
	if (top) {
		body = rule_parse_headers(msg, s, e, &msg->hdrs, &msg->nhdrs,
		                          &msg->caph, true);
		/* The top-level headers are MIME headers of the message
		 * entity too. */
		for (size_t i = 0; i < msg->nhdrs; i++) {
			const struct rule_header *t = &msg->hdrs[i];

			rule_hdrs_add(msg, &msg->mime_hdrs, &msg->nmime_hdrs,
			              &msg->capm, t->name, strlen(t->name),
			              t->raw, strlen(t->raw));
		}
		hv = msg->hdrs;
		hn = msg->nhdrs;
	} else {
		body = rule_parse_headers(msg, s, e, &msg->mime_hdrs,
		                          &msg->nmime_hdrs, &msg->capm, false);
		hv = msg->mime_hdrs + first;
		hn = msg->nmime_hdrs - first;
	}
	snprintf(type, sizeof(type), "%s", default_type);
	cte[0] = charset[0] = boundary[0] = '\0';
	h = rule_hdr_find(hv, hn, "Content-Type");
	if (h != NULL) {
		size_t k = 0;
		const char *v = h->value;

		while (*v == ' ')
			v++;
		while (v[k] && v[k] != ';' && v[k] != ' ' &&
		       k + 1 < sizeof(type))
			k++;
		if (k > 0 && memchr(v, '/', k) != NULL) {
			memcpy(type, v, k);
			type[k] = '\0';
		}
		rule_param(h->value, "charset", charset, sizeof(charset));
		rule_param(h->value, "boundary", boundary, sizeof(boundary));
	}
	h = rule_hdr_find(hv, hn, "Content-Transfer-Encoding");
	if (h != NULL) {
		const char *v = h->value;

		while (*v == ' ')
			v++;
		snprintf(cte, sizeof(cte), "%s", v);
	}
	if (strncasecmp(type, "multipart/", 10) == 0) {
		if (boundary[0] == '\0') {
			msg->flags |= RULE_MIME_MISSING_BOUNDARY;
			rule_text_part(cx, "text/plain", cte, charset, body,
			               (size_t)(e - body));
			return;
		}
		rule_multipart(cx, boundary, body, e, depth, type + 10);
		return;
	}
	if (strcasecmp(type, "message/rfc822") == 0) {
		/* An attached message: its parts count, its headers are part
		 * headers (the top-level ones are the outer message's). */
		if (strncasecmp(cte, "base64", 6) == 0 ||
		    strncasecmp(cte, "quoted-printable", 16) == 0) {
			size_t dlen;
			bool bad = false;
			char *dec =
			    cte[0] == 'b' || cte[0] == 'B'
			        ? rule_b64_decode(body, (size_t)(e - body),
			                          &dlen, &bad)
			        : rule_qp_decode(body, (size_t)(e - body),
			                         &dlen, &bad);

			rule_parse_entity(cx, dec, dec + dlen, depth + 1, false,
			                  "text/plain");
			free(dec);
			return;
		}
		rule_parse_entity(cx, body, e, depth + 1, false, "text/plain");
		return;
	}
	if (strncasecmp(type, "text/", 5) == 0) {
		/* Attachments named as files are not body text, as in
		 * SpamAssassin (text/plain with a filename still is, but
		 * calendar, csv and the like are not). */
		if (strcasecmp(type, "text/plain") == 0 ||
		    strcasecmp(type, "text/html") == 0 ||
		    strcasecmp(type, "text/enriched") == 0 ||
		    strcasecmp(type, "text/richtext") == 0)
			rule_text_part(cx, type, cte, charset, body,
			               (size_t)(e - body));
		else
			rule_add_lines(msg, body, (size_t)(e - body));
		return;
	}
	/* Other parts (images, applications): no text. */
}

struct rule_msg *
rule_msg_parse(const char *buf, size_t len, bool truncated)
{
	struct rule_msg *msg = rule_xcalloc(1, sizeof(*msg));
	struct rule_mime_ctx cx = {.msg = msg, .truncated = truncated};
	const struct rule_header *subj;

	msg->full = rule_xstrndup(buf, len);
	msg->full_len = len;
	/* NUL bytes: spaces, so C strings hold the whole message. */
	for (size_t i = 0; i < len; i++)
		if (msg->full[i] == '\0')
			msg->full[i] = ' ';
	rule_parse_entity(&cx, msg->full, msg->full + len, 0, true,
	                  "text/plain");
	if (cx.seen_html && !cx.seen_plain)
		msg->flags |= RULE_MIME_HTML_ONLY;
	/* SpamAssassin's body starts with the Subject, as a paragraph. */
	subj = rule_hdr_find(msg->hdrs, msg->nhdrs, "Subject");
	{
		char *s = rule_xstrdup(subj ? subj->value : "");

		rule_vec_push(&msg->body, &msg->nbody, &msg->capb, s);
		/* move it first */
		memmove(msg->body + 1, msg->body,
		        (msg->nbody - 1) * sizeof(*msg->body));
		msg->body[0] = s;
	}
	return msg;
}

static void
rule_hdrs_free(struct rule_header *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].raw);
		free(v[i].value);
	}
	free(v);
}

void
rule_msg_free(struct rule_msg **mp)
{
	struct rule_msg *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	rule_hdrs_free(m->hdrs, m->nhdrs);
	rule_hdrs_free(m->mime_hdrs, m->nmime_hdrs);
	for (size_t i = 0; i < m->nbody; i++)
		free(m->body[i]);
	free(m->body);
	for (size_t i = 0; i < m->nrawbody; i++)
		free(m->rawbody[i]);
	free(m->rawbody);
	for (size_t i = 0; i < m->nuris; i++)
		free(m->uris[i]);
	free(m->uris);
	free(m->full);
	free(m);
}
