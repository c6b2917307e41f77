/* SPDX-License-Identifier: MIT */
/*
 * fuzz_authres.c - libFuzzer harness for the forged Authentication-Results
 * removal (proxy/authres.c), which every message passes through.
 *
 * The first two input bytes choose where the rest is cut; the message must
 * come out the same whole and split, never longer than it went in, and
 * unchanged when nothing was removed.  px_authres_match runs on the whole
 * input as one field, complete and cut short.  Any mismatch aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authres.h"

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

static unsigned
strip(struct px_authres_strip *st, const char *in, size_t len, size_t cut,
      struct sink *out)
{
	px_authres_strip_init(st, "mx.example.com");
	px_authres_strip_feed(st, in, cut, sink_emit, out);
	px_authres_strip_feed(st, in + cut, len - cut, sink_emit, out);
	return px_authres_strip_end(st, sink_emit, out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct px_authres_strip st;
	struct sink a = {0}, b = {0};
	const char *in;
	size_t len, cut;
	unsigned ra, rb;

	if (size < 2)
		return 0;
	in = (const char *)data + 2;
	len = size - 2;
	cut = len ? ((size_t)data[0] << 8 | data[1]) % (len + 1) : 0;
	ra = strip(&st, in, len, len, &a);
	rb = strip(&st, in, len, cut, &b);
	if (ra != rb || a.len != b.len || a.len > len ||
	    (a.len && memcmp(a.buf, b.buf, a.len) != 0))
		abort();
	if (ra == 0 && (a.len != len || (len && memcmp(a.buf, in, len) != 0)))
		abort();
	(void)px_authres_match(in, len, "mx.example.com", true);
	(void)px_authres_match(in, len, "mx.example.com", false);
	free(a.buf);
	free(b.buf);
	return 0;
}
