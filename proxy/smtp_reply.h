/* SPDX-License-Identifier: MIT */
/*
 * smtp_reply.h - SMTP replies: parsing what a backend sends (RFC 5321
 * section 4.2, multi-line replies; RFC 3463 enhanced status codes), parsing
 * its EHLO capabilities, and formatting our own replies.
 *
 * The parsers are pure: they take bytes, do no I/O, keep no pointers.
 */
#ifndef MX_SMTP_REPLY_H
#define MX_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The longest reply we accept from a backend, all lines together.  A longer
 * one is a protocol error (RFC 5321 4.5.3.1.5 bounds a reply line at 512). */
#define PX_REPLY_MAX 65536

struct px_reply_info {
	int code;        /* 200..599 */
	unsigned nlines; /* number of lines */
	/* Enhanced status code of the first line ("2.1.0"), "" if none. */
	char enh[16];
	/* Offset and length, within the parsed buffer, of the text of the
	 * first line after the code and the enhanced code (for logs). */
	size_t text_off;
	size_t text_len;
};

/*
 * px_reply_parse - look for one complete reply at the start of buf.  Lines
 * end in CRLF (a bare LF is accepted from a backend, as Postfix does).  All
 * lines must carry the same 3-digit code, "-" after the code on all lines but
 * the last, " " or end of line on the last.  Returns the number of bytes the
 * whole reply takes (including the final line end), 0 if more bytes are
 * needed, -1 if the bytes are not a valid reply or exceed PX_REPLY_MAX.
 */
ssize_t px_reply_parse(const char *buf, size_t len, struct px_reply_info *info);

/* What a backend said in its EHLO reply (RFC 5321 4.1.1.1 and extensions). */
struct px_caps {
	bool pipelining;             /* RFC 2920 */
	bool size;                   /* RFC 1870 */
	unsigned long long size_max; /* 0 = no limit given */
	bool eightbitmime;           /* RFC 6152 */
	bool smtputf8;               /* RFC 6531 */
	bool dsn;                    /* RFC 3461 */
	bool enhanced;               /* RFC 2034 ENHANCEDSTATUSCODES */
	bool chunking;               /* RFC 3030 */
	bool binarymime;             /* RFC 3030 */
	bool starttls;               /* RFC 3207 */
	bool xclient;                /* Postfix XCLIENT */
	bool xforward;               /* Postfix XFORWARD */
	unsigned auth;               /* RFC 4954 AUTH: PX_AUTH_* bits */
	/* XCLIENT / XFORWARD attribute names advertised, as bit sets of
	 * PX_XATTR_* below. */
	unsigned xclient_attrs;
	unsigned xforward_attrs;
};

/* The SASL mechanisms mxguard can pass through (RFC 4616, and LOGIN). */
enum {
	PX_AUTH_PLAIN = 1 << 0,
	PX_AUTH_LOGIN = 1 << 1,
};

enum {
	PX_XATTR_NAME = 1 << 0,
	PX_XATTR_ADDR = 1 << 1,
	PX_XATTR_PORT = 1 << 2,
	PX_XATTR_PROTO = 1 << 3,
	PX_XATTR_HELO = 1 << 4,
	PX_XATTR_LOGIN = 1 << 5,
	PX_XATTR_SOURCE = 1 << 6,
	PX_XATTR_IDENT = 1 << 7,
	PX_XATTR_DESTADDR = 1 << 8,
	PX_XATTR_DESTPORT = 1 << 9,
};

/*
 * px_caps_parse - fill *caps from a complete EHLO reply (as delimited by
 * px_reply_parse).  The first line is the greeting, the others are keywords,
 * case-insensitive.  Unknown keywords are ignored.  Returns 0, or -1 when the
 * reply is not a 250 reply.
 */
int px_caps_parse(const char *buf, size_t len, struct px_caps *caps);

/*
 * px_reply_format - format "CODE ENH TEXT\r\n" into buf (size bufsize, always
 * NUL-terminated).  enh may be NULL or "" for no enhanced code.  Control
 * characters in the expanded text are replaced by '?', so peer data placed
 * in a reply can never end it early.  Returns the length written (truncated
 * text keeps the CRLF).
 */
size_t px_reply_format(char *buf, size_t bufsize, int code, const char *enh,
                       const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
