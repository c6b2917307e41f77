/* SPDX-License-Identifier: MIT */
/*
 * mime.h - a message decoded the way SpamAssassin's rules see it.
 *
 * rule_msg_parse() takes the raw message (RFC 5322, CRLF or LF line ends)
 * and builds: the top-level headers, raw and RFC 2047-decoded; the MIME
 * part headers (mimeheader rules); the rendered body text (text parts
 * decoded from base64/quoted-printable, converted to UTF-8, HTML rendered,
 * Subject first) as paragraphs; the raw body (decoded, unrendered) as
 * lines; every URI found in text and HTML; and flags for the oddities met
 * on the way.  Never fails: broken input gives flags, not errors.
 *
 * Lifetime: the caller owns the result and frees it with rule_msg_free().
 * The input is borrowed for the call only (msg->full is a copy).
 */
#ifndef MX_RULE_MIME_H
#define MX_RULE_MIME_H

#include <stdbool.h>
#include <stddef.h>

/* Oddities, each the built-in rule of the same name. */
enum rule_mime_flag {
	RULE_MIME_BAD_BASE64 = 1u << 0,       /* MIME_BAD_BASE64 */
	RULE_MIME_MISSING_BOUNDARY = 1u << 1, /* MIME_MISSING_BOUNDARY */
	RULE_MIME_UNKNOWN_CHARSET = 1u << 2,  /* MIME_UNKNOWN_CHARSET */
	RULE_MIME_TOO_DEEP = 1u << 3,         /* MIME_TOO_DEEP */
	RULE_MIME_NO_HB_SEP = 1u << 4,        /* MISSING_MIME_HB_SEP */
	RULE_MIME_HTML_ONLY = 1u << 5,        /* MIME_HTML_ONLY */
	RULE_MIME_8BIT_HEADER = 1u << 6,      /* MIME_8BIT_HEADER */
	RULE_MIME_BAD_QP = 1u << 7,           /* MIME_BAD_QP */
	RULE_MIME_NFLAGS = 8,
};

struct rule_header {
	char *name;  /* as written */
	char *raw;   /* the value as written: folding kept, CRLF as LF */
	char *value; /* unfolded, RFC 2047-decoded to UTF-8 */
};

struct rule_msg {
	struct rule_header *hdrs; /* top-level headers, in order */
	size_t nhdrs;
	struct rule_header *mime_hdrs; /* headers of every MIME part */
	size_t nmime_hdrs;
	char **body; /* rendered paragraphs, Subject first */
	size_t nbody;
	char **rawbody; /* decoded text lines, HTML not rendered */
	size_t nrawbody;
	char **uris;
	size_t nuris;
	char *full; /* the raw message, NUL-terminated copy */
	size_t full_len;
	unsigned flags; /* enum rule_mime_flag */
	unsigned nparts;
	size_t capb, capr, capu, caph, capm; /* private: vector sizes */
};

/* rule_msg_parse - decode len bytes of message.  truncated: the message
 * was cut (a scan limit), so a missing final boundary is not an oddity. */
struct rule_msg *rule_msg_parse(const char *msg, size_t len, bool truncated);

/* rule_msg_free - free; *mp = NULL; accepts NULL. */
void rule_msg_free(struct rule_msg **mp);

/* rule_mime_flag_name - the built-in rule name of flag bit i. */
const char *rule_mime_flag_name(unsigned i);

/*
 * Pieces, public for the tests and the fuzzers.  Each returns a malloc'd,
 * NUL-terminated string (*len_r its length when not NULL).
 */
char *rule_b64_decode(const char *in, size_t len, size_t *len_r, bool *bad_r);
char *rule_qp_decode(const char *in, size_t len, size_t *len_r, bool *bad_r);
/* rule_hdr_decode - unfold and decode RFC 2047 encoded words. */
char *rule_hdr_decode(const char *in, size_t len, unsigned *flags);
/* rule_charset_to_utf8 - convert (iconv); unknown charset: the bytes
 * unchanged and RULE_MIME_UNKNOWN_CHARSET in *flags. */
char *rule_charset_to_utf8(const char *charset, const char *in, size_t len,
                           size_t *len_r, unsigned *flags);
/* rule_html_render - text of an HTML document; URIs of href/src/action
 * attributes are added to msg. */
char *rule_html_render(struct rule_msg *msg, const char *in, size_t len,
                       size_t *len_r);
/* rule_uri_scan - add the http(s)://, ftp:// and www. links of text. */
void rule_uri_scan(struct rule_msg *msg, const char *text, size_t len);
/* rule_uri_add - add one URI (entity-decoded already); the percent-decoded
 * form is added too when it differs.  Scheme-less www. gets http://. */
void rule_uri_add(struct rule_msg *msg, const char *uri, size_t len);
/* rule_addr_list - the addresses (addr) or display names (!addr) of an
 * address-list header value, one per line. */
char *rule_addr_list(const char *value, bool addr);

#endif
