/* SPDX-License-Identifier: MIT */
/*
 * data.h - the SMTP DATA stream: decoding what a client sends after 354
 * (RFC 5321 4.1.1.4 and 4.5.2), and encoding a message for a backend.
 *
 * The decoder is a byte-at-a-time state machine that can be fed any split
 * of the input; it removes dot-stuffing and finds the end of data.
 *
 * SECURITY: only CR LF "." CR LF ends the message.  A bare CR, a bare LF
 * or a NUL anywhere in the data is an error (SMTP smuggling, CVE-2023-51764
 * class): the caller must then refuse the message and not resynchronise on
 * any other terminator.
 */
#ifndef MX_DATA_H
#define MX_DATA_H

#include <stdbool.h>
#include <stddef.h>

enum px_data_status {
	PX_DATA_MORE = 0,    /* all input consumed, end not yet seen */
	PX_DATA_END,         /* end of data seen; see *consumed_r */
	PX_DATA_ERR_BARE_LF, /* LF not preceded by CR */
	PX_DATA_ERR_BARE_CR, /* CR not followed by LF */
	PX_DATA_ERR_NUL,     /* a NUL byte */
};

/* Receives decoded message bytes, in order.  The message as delivered is the
 * concatenation of all calls; it ends with the CRLF before the final dot (an
 * empty message is 0 bytes). */
typedef void px_data_emit_fn(void *ctx, const char *buf, size_t len);

struct px_data_decoder {
	int state;               /* private */
	size_t line_len;         /* private: octets in the current line */
	size_t line_max;         /* 0 = no limit */
	bool line_too_long;      /* a text line exceeded line_max (sticky) */
	unsigned long long size; /* decoded bytes emitted so far */
};

/* px_data_decoder_init - reset *d for a new message; line_max counts the
 * octets of a text line including its CRLF (RFC 5321 4.5.3.1.6: 1000). */
void px_data_decoder_init(struct px_data_decoder *d, size_t line_max);

/*
 * px_data_decode - feed len bytes.  Decoded bytes go to emit(ctx, ...),
 * possibly in several calls.  Returns PX_DATA_MORE after consuming all
 * input; PX_DATA_END when the terminator was consumed, with *consumed_r the
 * bytes of buf used up to and including it (the rest belongs to the next
 * command); an error status as soon as bad bytes are seen (*consumed_r is
 * then the offset just past the bad byte).  After END or an error the
 * decoder must be re-initialised before further use.
 */
enum px_data_status px_data_decode(struct px_data_decoder *d, const char *buf,
                                   size_t len, size_t *consumed_r,
                                   px_data_emit_fn *emit, void *ctx);

/* Dot-stuffing encoder for sending a message to a backend with DATA. */
struct px_data_encoder {
	bool at_line_start; /* private */
};

/* px_data_encoder_init - start a new message (the first byte is at the
 * start of a line). */
void px_data_encoder_init(struct px_data_encoder *e);

/*
 * px_data_encode - write len message bytes to emit, doubling a "." at the
 * start of every line (lines end in CRLF).  Can be fed any split.
 */
void px_data_encode(struct px_data_encoder *e, const char *buf, size_t len,
                    px_data_emit_fn *emit, void *ctx);

/*
 * px_data_encode_end - write what ends the message: CRLF if the message did
 * not end with a line end (never the case for a decoded message, but a
 * message built from parts may), then ".\r\n".
 */
void px_data_encode_end(struct px_data_encoder *e, px_data_emit_fn *emit,
                        void *ctx);

#endif
