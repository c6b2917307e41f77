/* SPDX-License-Identifier: MIT */
/*
 * fuzz_data.c - libFuzzer harness for the DATA decoder and encoder
 * (proxy/data.c).
 *
 * The first input byte chooses where the rest is cut in two; the decoder
 * must give the same status, offset, output, size and line_too_long flag
 * whole and split.  The decoded output must never hold a bare CR, a bare
 * LF or a NUL, and the encoder must round-trip it: decoding the encoded
 * message gives it back (with the CRLF that encoding adds to a last line
 * that had none).  Any mismatch aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	char *buf;
	size_t len, cap;
};

static void
sink_emit(void *ctx, const char *buf, size_t len)
{
	struct sink *s = ctx;

	if (len == 0)
		abort();
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->buf = realloc(s->buf, s->cap);
		if (s->buf == NULL)
			abort();
	}
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
}

struct result {
	enum px_data_status st;
	size_t offset;
	bool too_long;
	unsigned long long size;
	struct sink out;
};

/* decode - in[0..len) in two calls cut at cut (the second only if the
 * first asked for more) */
static void
decode(const char *in, size_t len, size_t cut, struct result *r)
{
	struct px_data_decoder d;
	size_t used = (size_t)-1;

	memset(r, 0, sizeof(*r));
	px_data_decoder_init(&d, 78);
	r->st = px_data_decode(&d, in, cut, &used, sink_emit, &r->out);
	r->offset = used;
	if (used > cut)
		abort();
	if (r->st == PX_DATA_MORE) {
		if (used != cut)
			abort();
		r->st = px_data_decode(&d, in + cut, len - cut, &used,
		                       sink_emit, &r->out);
		if (used > len - cut)
			abort();
		r->offset = cut + used;
	}
	r->too_long = d.line_too_long;
	r->size = d.size;
	if (r->size != r->out.len)
		abort();
}

static void
check_clean(const struct sink *s)
{
	for (size_t i = 0; i < s->len; i++) {
		char c = s->buf[i];

		if (c == '\0')
			abort();
		if (c == '\r' && (i + 1 >= s->len || s->buf[i + 1] != '\n'))
			abort();
		if (c == '\n' && (i == 0 || s->buf[i - 1] != '\r'))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	size_t len, cut;
	struct result a, b, c;
	struct px_data_encoder e;
	struct sink wire = {0};

	if (size == 0)
		return 0;
	len = size - 1;
	cut = data[0] % (len + 1);

	decode(in, len, len, &a);
	decode(in, len, cut, &b);
	if (a.st != b.st || a.offset != b.offset || a.too_long != b.too_long ||
	    a.out.len != b.out.len ||
	    (a.out.len && memcmp(a.out.buf, b.out.buf, a.out.len) != 0))
		abort();
	if (a.st == PX_DATA_MORE && a.offset != len)
		abort();
	if (a.st == PX_DATA_END &&
	    (a.offset < 3 || memcmp(in + a.offset - 3, ".\r\n", 3) != 0))
		abort();
	check_clean(&a.out);

	/* Round trip: decode(encode(decoded)) == decoded. */
	px_data_encoder_init(&e);
	if (a.out.len > 0) {
		size_t half = a.out.len / 2;

		px_data_encode(&e, a.out.buf, half, sink_emit, &wire);
		px_data_encode(&e, a.out.buf + half, a.out.len - half,
		               sink_emit, &wire);
	}
	px_data_encode_end(&e, sink_emit, &wire);
	decode(wire.buf, wire.len, wire.len / 2, &c);
	if (c.st != PX_DATA_END || c.offset != wire.len)
		abort();
	if (a.out.len > 0 && a.out.buf[a.out.len - 1] != '\n') {
		/* A partial last line gets its CRLF from encode_end. */
		if (c.out.len != a.out.len + 2 ||
		    memcmp(c.out.buf + a.out.len, "\r\n", 2) != 0)
			abort();
	} else if (c.out.len != a.out.len) {
		abort();
	}
	if (a.out.len && memcmp(a.out.buf, c.out.buf, a.out.len) != 0)
		abort();

	free(a.out.buf);
	free(b.out.buf);
	free(c.out.buf);
	free(wire.buf);
	return 0;
}
