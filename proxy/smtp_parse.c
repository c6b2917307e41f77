/* SPDX-License-Identifier: MIT */
/*
 * smtp_parse.c - SMTP command line parser.
 *
 * px_cmd_parse() splits one client command line (CRLF already removed) into
 * a verb and its arguments, checks the arguments per verb, and for MAIL and
 * RCPT checks the path against RFC 5321 section 4.1.2 with the RFC 6531
 * UTF-8 extensions.  px_param_next() walks the RFC 1869 / RFC 5321 section
 * 4.1.2 esmtp-param list that follows a path.  px_slice_eq_ci() compares a
 * slice to a string ignoring ASCII case.  px_xtext_valid() and
 * px_xtext_encode() implement RFC 3461 section 4 xtext (for ORCPT, ENVID,
 * and the XCLIENT / XFORWARD attributes we send to the backend).
 *
 * Everything here is pure: no I/O, no allocation, no state.  Results point
 * into the caller's line and live as long as it does.  The code never uses
 * <ctype.h>, whose answers depend on the locale.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "smtp_parse.h"

/* The longest text inside an address literal we look at: "IPv6:" plus the
 * longest IPv6 text form (45) fits with room to spare. */
#define PX_LITERAL_MAX 64

/* RFC 5321 4.5.3.1.2: a domain is at most 255 octets. */
#define PX_DOMAIN_MAX 255

static const struct {
	const char *name;
	enum px_verb verb;
} px_verbs[] = {
    {"HELO", PX_VERB_HELO},         {"EHLO", PX_VERB_EHLO},
    {"MAIL", PX_VERB_MAIL},         {"RCPT", PX_VERB_RCPT},
    {"DATA", PX_VERB_DATA},         {"RSET", PX_VERB_RSET},
    {"NOOP", PX_VERB_NOOP},         {"QUIT", PX_VERB_QUIT},
    {"HELP", PX_VERB_HELP},         {"VRFY", PX_VERB_VRFY},
    {"EXPN", PX_VERB_EXPN},         {"STARTTLS", PX_VERB_STARTTLS},
    {"AUTH", PX_VERB_AUTH},         {"BDAT", PX_VERB_BDAT},
    {"ETRN", PX_VERB_ETRN},         {"TURN", PX_VERB_TURN},
    {"ATRN", PX_VERB_ATRN},         {"XCLIENT", PX_VERB_XCLIENT},
    {"XFORWARD", PX_VERB_XFORWARD},
};

/* px_lower - ASCII tolower, independent of the locale */
static inline unsigned char
px_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static inline bool
px_is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool
px_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
px_is_alnum(unsigned char c)
{
	return px_is_alpha(c) || px_is_digit(c);
}

/* px_is_atext - RFC 5322 atext, plus any 8-bit byte (RFC 6531 3.3
 * UTF8-non-ascii; the whole line was checked to be valid UTF-8 first). */
static bool
px_is_atext(unsigned char c)
{
	if (px_is_alnum(c) || c >= 0x80)
		return true;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * px_utf8_valid - true if s[0..len) is well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF).  ASCII runs take
 * the short path since 8-bit bytes are rare in commands.
 */
static bool
px_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		/* Only the first continuation byte has the narrowed range. */
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += n + 1;
	}
	return true;
}

bool
px_slice_eq_ci(struct px_slice s, const char *str)
{
	size_t n = strlen(str);

	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (px_lower((unsigned char)s.p[i]) !=
		    px_lower((unsigned char)str[i]))
			return false;
	return true;
}

/* px_prefix_ci - true if s[0..len) starts with the NUL-terminated pfx,
 * ignoring ASCII case */
static bool
px_prefix_ci(const char *s, size_t len, const char *pfx)
{
	size_t n = strlen(pfx);

	if (len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (px_lower((unsigned char)s[i]) !=
		    px_lower((unsigned char)pfx[i]))
			return false;
	return true;
}

/*
 * px_parse_domain - RFC 5321 Domain at s[*pos]: sub-domains of Let-dig
 * [Ldh-str] joined by dots, with 8-bit bytes allowed as U-label content
 * (RFC 6531 3.3).  Stops at the first byte that cannot continue the domain
 * and leaves *pos there.  Returns false if no valid domain is there.
 */
static bool
px_parse_domain(const char *s, size_t len, size_t *pos)
{
	size_t i = *pos, start = *pos;

	for (;;) {
		unsigned char c;

		/* A label starts with a letter or digit... */
		if (i >= len)
			return false;
		c = (unsigned char)s[i];
		if (!px_is_alnum(c) && c < 0x80)
			return false;
		i++;
		while (i < len) {
			c = (unsigned char)s[i];
			if (px_is_alnum(c) || c >= 0x80 || c == '-')
				i++;
			else
				break;
		}
		/* ...and does not end with a hyphen. */
		if (s[i - 1] == '-')
			return false;
		if (i < len && s[i] == '.') {
			i++;
			continue;
		}
		break;
	}
	if (i - start > PX_DOMAIN_MAX)
		return false;
	*pos = i;
	return true;
}

/* px_parse_ipv4 - RFC 5321 IPv4-address-literal: four Snum (1*3DIGIT, at
 * most 255) separated by dots; s is exactly the literal's text. */
static bool
px_parse_ipv4(const char *s, size_t len)
{
	size_t i = 0;

	for (int octet = 0; octet < 4; octet++) {
		unsigned val = 0;
		size_t digits = 0;

		if (octet > 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		while (i < len && px_is_digit((unsigned char)s[i]) &&
		       digits < 3) {
			val = val * 10 + (unsigned)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || val > 255)
			return false;
	}
	return i == len;
}

/*
 * px_parse_literal - RFC 5321 address-literal at s[*pos] == '['.  Accepts
 * IPv4 and "IPv6:" literals.  SECURITY: General-address-literal is refused:
 * no Standardized-tag is registered, and odd literals are a classic way to
 * confuse address rewriting further down the line.
 */
static bool
px_parse_literal(const char *s, size_t len, size_t *pos)
{
	const char *open = s + *pos + 1;
	const char *close;
	size_t n;
	char tmp[PX_LITERAL_MAX];
	unsigned char bin[16];

	close = memchr(open, ']', len - (*pos + 1));
	if (close == NULL)
		return false;
	n = (size_t)(close - open);
	if (px_prefix_ci(open, n, "IPv6:")) {
		if (n - 5 >= sizeof(tmp))
			return false;
		memcpy(tmp, open + 5, n - 5);
		tmp[n - 5] = '\0';
		if (inet_pton(AF_INET6, tmp, bin) != 1)
			return false;
	} else if (!px_parse_ipv4(open, n)) {
		return false;
	}
	*pos += n + 2;
	return true;
}

/* px_parse_local - RFC 5321 Local-part (Dot-string or Quoted-string) at
 * s[*pos]; leaves *pos just after it. */
static bool
px_parse_local(const char *s, size_t len, size_t *pos)
{
	size_t i = *pos;

	if (i < len && s[i] == '"') {
		i++;
		for (;;) {
			unsigned char c;

			if (i >= len)
				return false;
			c = (unsigned char)s[i];
			if (c == '"')
				break;
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (i + 1 >= len ||
				    (unsigned char)s[i + 1] < 32 ||
				    (unsigned char)s[i + 1] > 126)
					return false;
				i += 2;
				continue;
			}
			/* qtextSMTP = %d32-33 / %d35-91 / %d93-126 and
			 * UTF8-non-ascii (RFC 6531). */
			if (c < 32 || c == 127)
				return false;
			i++;
		}
		*pos = i + 1;
		return true;
	}

	/* Dot-string = Atom *("." Atom) */
	for (;;) {
		size_t atom = i;

		while (i < len && px_is_atext((unsigned char)s[i]))
			i++;
		if (i == atom)
			return false;
		if (i < len && s[i] == '.') {
			i++;
			continue;
		}
		break;
	}
	*pos = i;
	return true;
}

/*
 * px_parse_path - RFC 5321 Path / "<>" at s[*pos] == '<'.  On success *pos
 * is just past '>' and cmd->addr, null_path, has_route, postmaster and
 * addr_utf8 are filled.
 */
static enum px_parse_status
px_parse_path(const char *s, size_t len, size_t *pos, struct px_cmd *cmd,
              const char **error_r)
{
	size_t i = *pos + 1, mbox;

	/* A path without its closing bracket is a syntax error in the command
	 * rather than a bad address. */
	if (memchr(s + i, '>', len - i) == NULL) {
		*error_r = "Syntax: missing '>' after the address";
		return PX_PARSE_SYNTAX;
	}
	if (s[i] == '>') {
		cmd->null_path = true;
		cmd->addr.p = s + i;
		cmd->addr.len = 0;
		*pos = i + 1;
		return PX_PARSE_OK;
	}

	/* RFC 5321 4.1.2 A-d-l: accepted and ignored, as 4.1.1.3 and
	 * appendix C tell servers to do. */
	if (s[i] == '@') {
		for (;;) {
			i++; /* the '@' */
			if (!px_parse_domain(s, len, &i))
				goto bad;
			if (i < len && s[i] == ',') {
				i++;
				if (i >= len || s[i] != '@')
					goto bad;
				continue;
			}
			if (i < len && s[i] == ':') {
				i++;
				break;
			}
			goto bad;
		}
		cmd->has_route = true;
	}

	mbox = i;
	if (!px_parse_local(s, len, &i))
		goto bad;
	if (i < len && s[i] == '@') {
		i++;
		if (i < len && s[i] == '[') {
			if (!px_parse_literal(s, len, &i))
				goto bad;
		} else if (!px_parse_domain(s, len, &i)) {
			goto bad;
		}
	} else {
		/* RFC 5321 4.1.1.3: "Postmaster" without a domain is a
		 * valid RCPT argument; the caller rejects it for MAIL. */
		struct px_slice local = {s + mbox, i - mbox};

		if (!px_slice_eq_ci(local, "postmaster"))
			goto bad;
		cmd->postmaster = true;
	}
	if (i >= len || s[i] != '>')
		goto bad;

	cmd->addr.p = s + mbox;
	cmd->addr.len = i - mbox;
	for (size_t k = mbox; k < i; k++) {
		if ((unsigned char)s[k] >= 0x80) {
			cmd->addr_utf8 = true;
			break;
		}
	}
	*pos = i + 1;
	return PX_PARSE_OK;
bad:
	*error_r = "Bad address syntax";
	return PX_PARSE_BAD_ADDR;
}

/* px_parse_mail_rcpt - "FROM:" / "TO:" path and parameters of MAIL / RCPT,
 * from cmd->arg */
static enum px_parse_status
px_parse_mail_rcpt(struct px_cmd *cmd, const char **error_r)
{
	const char *s = cmd->arg.p;
	size_t len = cmd->arg.len, i;
	bool mail = cmd->verb == PX_VERB_MAIL;
	const char *kw = mail ? "FROM:" : "TO:";
	const char *usage =
	    mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>";
	enum px_parse_status st;

	if (!px_prefix_ci(s, len, kw)) {
		*error_r = usage;
		return PX_PARSE_SYNTAX;
	}
	i = strlen(kw);
	/* One space after the colon is tolerated: many clients send it. */
	if (i < len && s[i] == ' ')
		i++;
	if (i >= len || s[i] != '<') {
		*error_r = usage;
		return PX_PARSE_SYNTAX;
	}
	st = px_parse_path(s, len, &i, cmd, error_r);
	if (st != PX_PARSE_OK)
		return st;
	if (mail && cmd->postmaster) {
		cmd->postmaster = false;
		*error_r = "Bad sender address syntax";
		return PX_PARSE_BAD_ADDR;
	}
	if (!mail && cmd->null_path) {
		cmd->null_path = false;
		*error_r = "Bad recipient address syntax";
		return PX_PARSE_BAD_ADDR;
	}
	if (i < len) {
		if (s[i] != ' ') {
			*error_r = usage;
			return PX_PARSE_SYNTAX;
		}
		while (i < len && s[i] == ' ')
			i++;
	}
	cmd->params.p = s + i;
	cmd->params.len = len - i;
	return PX_PARSE_OK;
}

enum px_parse_status
px_cmd_parse(const char *line, size_t len, struct px_cmd *cmd,
             const char **error_r)
{
	const char *sp, *dummy;
	size_t vlen, i, end;

	if (error_r == NULL)
		error_r = &dummy;
	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = PX_VERB_UNKNOWN;
	cmd->arg.p = cmd->addr.p = cmd->params.p = line;
	*error_r = NULL;

	/* SECURITY: a NUL or a lone CR or LF inside a command is either a
	 * broken client or an attempt to make us and the backend see
	 * different commands; refuse the line as a whole. */
	if (memchr(line, '\0', len) != NULL ||
	    memchr(line, '\r', len) != NULL ||
	    memchr(line, '\n', len) != NULL ||
	    !px_utf8_valid((const unsigned char *)line, len)) {
		*error_r = "Invalid characters in command";
		return PX_PARSE_BAD_BYTES;
	}

	sp = memchr(line, ' ', len);
	vlen = sp != NULL ? (size_t)(sp - line) : len;
	for (size_t k = 0; k < sizeof(px_verbs) / sizeof(px_verbs[0]); k++) {
		struct px_slice v = {line, vlen};

		if (px_slice_eq_ci(v, px_verbs[k].name)) {
			cmd->verb = px_verbs[k].verb;
			break;
		}
	}
	if (cmd->verb == PX_VERB_UNKNOWN) {
		*error_r = "Command unrecognized";
		return PX_PARSE_UNKNOWN;
	}

	/* Deployed clients sometimes put two spaces after the verb; all of
	 * them go, as do trailing spaces. */
	i = vlen;
	while (i < len && line[i] == ' ')
		i++;
	end = len;
	while (end > i && line[end - 1] == ' ')
		end--;
	cmd->arg.p = line + i;
	cmd->arg.len = end - i;

	switch (cmd->verb) {
	case PX_VERB_HELO:
	case PX_VERB_EHLO:
		if (cmd->arg.len == 0) {
			*error_r = cmd->verb == PX_VERB_HELO
			               ? "Syntax: HELO hostname"
			               : "Syntax: EHLO hostname";
			return PX_PARSE_SYNTAX;
		}
		break;
	case PX_VERB_DATA:
	case PX_VERB_RSET:
	case PX_VERB_QUIT:
	case PX_VERB_STARTTLS:
	case PX_VERB_TURN:
		if (cmd->arg.len != 0) {
			*error_r = "Syntax: no arguments allowed";
			return PX_PARSE_SYNTAX;
		}
		break;
	case PX_VERB_AUTH:
	case PX_VERB_BDAT:
	case PX_VERB_ETRN:
	case PX_VERB_XCLIENT:
	case PX_VERB_XFORWARD:
		if (cmd->arg.len == 0) {
			*error_r = "Syntax: argument required";
			return PX_PARSE_SYNTAX;
		}
		break;
	case PX_VERB_MAIL:
	case PX_VERB_RCPT:
		return px_parse_mail_rcpt(cmd, error_r);
	default:
		break;
	}
	return PX_PARSE_OK;
}

int
px_param_next(struct px_slice *params, struct px_param *param)
{
	const char *s = params->p;
	size_t len = params->len, i = 0, k, v;

	memset(param, 0, sizeof(*param));
	while (i < len && s[i] == ' ')
		i++;
	if (i == len) {
		params->p = s + i;
		params->len = 0;
		return 0;
	}

	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	k = i;
	if (!px_is_alnum((unsigned char)s[i]))
		return -1;
	while (i < len && (px_is_alnum((unsigned char)s[i]) || s[i] == '-'))
		i++;
	param->key.p = s + k;
	param->key.len = i - k;
	/* An absent value is an empty slice just after the keyword, not NULL,
	 * so that every slice points into the caller's line. */
	param->value.p = s + i;

	if (i < len && s[i] == '=') {
		/* esmtp-value = 1*(%d33-60 / %d62-126), and UTF8-non-ascii
		 * per RFC 6531 3.3 when it is well-formed. */
		v = ++i;
		while (i < len) {
			unsigned char c = (unsigned char)s[i];

			if (c == ' ')
				break;
			if (c < 33 || c == '=' || c == 127)
				return -1;
			i++;
		}
		if (i == v ||
		    !px_utf8_valid((const unsigned char *)s + v, i - v))
			return -1;
		param->value.p = s + v;
		param->value.len = i - v;
		param->has_value = true;
	}
	if (i < len && s[i] != ' ')
		return -1;
	params->p = s + i;
	params->len = len - i;
	return 1;
}

static inline bool
px_is_xchar(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

static inline bool
px_is_uhex(unsigned char c)
{
	return px_is_digit(c) || (c >= 'A' && c <= 'F');
}

bool
px_xtext_valid(struct px_slice s)
{
	const unsigned char *p = (const unsigned char *)s.p;

	for (size_t i = 0; i < s.len; i++) {
		if (p[i] == '+') {
			if (s.len - i < 3 || !px_is_uhex(p[i + 1]) ||
			    !px_is_uhex(p[i + 2]))
				return false;
			i += 2;
		} else if (!px_is_xchar(p[i])) {
			return false;
		}
	}
	return true;
}

size_t
px_xtext_encode(const char *src, size_t len, char *dst, size_t dstsize)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t need = 0, out = 0;
	bool full = dstsize == 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		size_t n = px_is_xchar(c) ? 1 : 3;

		need += n;
		/* Only whole units are written, so a truncated result is
		 * still valid xtext. */
		if (full || out + n >= dstsize) {
			full = true;
			continue;
		}
		if (n == 1) {
			dst[out++] = (char)c;
		} else {
			dst[out++] = '+';
			dst[out++] = hex[c >> 4];
			dst[out++] = hex[c & 15];
		}
	}
	if (dstsize > 0)
		dst[out] = '\0';
	return need;
}
