/* SPDX-License-Identifier: MIT */
/*
 * dkim_header.h - the header section of a message as it streams in, cut
 * into fields for libopendkim (dkim.c): a parser in the sense of STYLE (no
 * I/O, no pointers kept past a call), bounded.
 */
#ifndef MX_DKIM_HEADER_H
#define MX_DKIM_HEADER_H

#include <stdbool.h>
#include <stddef.h>

/* The most header bytes held; a longer header section is an error. */
#define FLT_DKIM_HEADER_MAX (1024 * 1024)

struct flt_dkim_hdr {
	char *buf; /* the header section so far (owned) */
	size_t len, cap;
	bool done; /* the blank line was seen */
};

/* Called once per header field, in order: the field without its final
 * CRLF (folded lines keep theirs); valid during the call only. */
typedef void flt_dkim_field_fn(void *ctx, const char *field, size_t len);

/*
 * flt_dkim_hdr_feed - len more message bytes (CRLF line ends, any split).
 * Returns 0 while the header section goes on (the bytes are held), 1 when
 * it ended in these bytes: every field went to field(ctx, ...) and
 * *body_r, *body_len_r are the body bytes that followed in this call
 * (valid until the next call on h); -1 when the header section outgrew
 * FLT_DKIM_HEADER_MAX.  After 1, every byte fed is body: returned as is.
 */
int flt_dkim_hdr_feed(struct flt_dkim_hdr *h, const char *buf, size_t len,
                      flt_dkim_field_fn *field, void *ctx, const char **body_r,
                      size_t *body_len_r);

/* flt_dkim_hdr_end - the message ended without a blank line: the held
 * fields go to field(); h is then done. */
void flt_dkim_hdr_end(struct flt_dkim_hdr *h, flt_dkim_field_fn *field,
                      void *ctx);

/* flt_dkim_hdr_reset - free what is held, ready for the next message. */
void flt_dkim_hdr_reset(struct flt_dkim_hdr *h);

/* flt_dkim_hdr_is_sig - field (no CRLF) is a DKIM-Signature field (name
 * compared case-insensitively, WSP allowed before the colon); *value_r is
 * the offset of its value. */
bool flt_dkim_hdr_is_sig(const char *field, size_t len, size_t *value_r);

#endif
