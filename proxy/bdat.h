/* SPDX-License-Identifier: MIT */
/*
 * bdat.h - the receiving side of CHUNKING (RFC 3030): the BDAT command's
 * arguments and the checks on the octets of its chunks.
 *
 * A BDAT chunk is exactly as many octets as announced, with no
 * dot-stuffing, so there is no terminator to find; what remains is to
 * check the content the same way as DATA content before it is passed on:
 * a message that is not BINARYMIME is text, and a bare CR, a bare LF or a
 * NUL in it is refused (the backend may get it with DATA, where such bytes
 * are the SMTP smuggling vector).  The checker can be fed any split of the
 * message, across chunk boundaries.
 */
#ifndef MX_BDAT_H
#define MX_BDAT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * px_bdat_parse_arg - parse "chunk-size [LAST]" (RFC 3030 3: chunk-size is
 * 1*DIGIT, "LAST" case-insensitive, one space between).  Returns 0 with
 * *size_r and *last_r set, or -1 when the argument is malformed (the chunk
 * boundary is then unknown and the session cannot resynchronise).  Sizes
 * over 2^53 are refused as malformed.
 */
int px_bdat_parse_arg(const char *arg, size_t len, unsigned long long *size_r,
                      bool *last_r);

enum px_bdat_status {
	PX_BDAT_OK = 0,
	PX_BDAT_ERR_BARE_LF, /* LF not preceded by CR */
	PX_BDAT_ERR_BARE_CR, /* CR not followed by LF */
	PX_BDAT_ERR_NUL,     /* a NUL byte */
};

struct px_bdat_check {
	bool cr;                 /* private: the last octet was a CR */
	size_t line_len;         /* private: octets in the current line */
	size_t line_max;         /* 0 = no limit; counts the CRLF */
	bool line_too_long;      /* a line exceeded line_max (sticky) */
	enum px_bdat_status err; /* the first error (sticky) */
	unsigned long long size; /* octets fed */
};

/* px_bdat_check_init - reset *c for a new message; line_max as for the
 * DATA decoder (RFC 5321 4.5.3.1.6). */
void px_bdat_check_init(struct px_bdat_check *c, size_t line_max);

/* px_bdat_check_feed - check len more octets of the message; returns the
 * first error seen so far (PX_BDAT_OK if none). */
enum px_bdat_status px_bdat_check_feed(struct px_bdat_check *c, const char *buf,
                                       size_t len);

/* px_bdat_check_end - the message is complete: a CR as its last octet is
 * bare.  Returns the first error, as px_bdat_check_feed. */
enum px_bdat_status px_bdat_check_end(struct px_bdat_check *c);

#endif
