/* SPDX-License-Identifier: MIT */
/*
 * authres.h - forged Authentication-Results headers (RFC 8601 5): the ones
 * that carry our authserv-id are removed from a message as it streams into
 * the spool; every other byte passes unchanged.
 *
 * Parsers in the sense of STYLE: no I/O, no allocation (the held field is
 * a fixed buffer inside the struct), no pointers kept past a call.
 */
#ifndef MX_AUTHRES_H
#define MX_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

/* A header field longer than this is decided on its first bytes. */
#define PX_AUTHRES_HOLD_MAX 8192

enum px_authres_match {
	PX_AUTHRES_OTHER = 0, /* not an A-R field of ours: keep */
	PX_AUTHRES_OURS,      /* an A-R field with our authserv-id */
	PX_AUTHRES_UNKNOWN,   /* truncated before the authserv-id ended */
};

/*
 * px_authres_match - field (len bytes: "Name: value", folded lines with
 * their CRLFs) is an Authentication-Results field whose authserv-id
 * (token or quoted-string after CFWS, RFC 8601 2.2) equals id, compared
 * case-insensitively (RFC 8601 5).  complete: false if field was cut
 * short, so running out of bytes is UNKNOWN rather than OTHER.
 */
enum px_authres_match px_authres_match(const char *field, size_t len,
                                       const char *id, bool complete);

typedef void px_authres_emit_fn(void *ctx, const char *buf, size_t len);

struct px_authres_strip {
	char id[256]; /* our authserv-id */
	int state;    /* private */
	int mode;     /* private: what the current line does */
	size_t n;     /* bytes held in buf */
	unsigned removed;
	char buf[PX_AUTHRES_HOLD_MAX];
};

/* px_authres_strip_init - start a message; id is copied (truncated at
 * 255 bytes). */
void px_authres_strip_init(struct px_authres_strip *st, const char *id);

/*
 * px_authres_strip_feed - len more bytes of the message (unstuffed, CRLF
 * line ends, any split).  Everything except our Authentication-Results
 * fields goes to emit(ctx, ...), in order, possibly later than fed (a
 * field is held until it is known).
 */
void px_authres_strip_feed(struct px_authres_strip *st, const char *buf,
                           size_t len, px_authres_emit_fn *emit, void *ctx);

/* px_authres_strip_end - end of message: decide and emit what is held.
 * Returns the number of fields removed. */
unsigned px_authres_strip_end(struct px_authres_strip *st,
                              px_authres_emit_fn *emit, void *ctx);

#endif
