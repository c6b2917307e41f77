/* SPDX-License-Identifier: MIT */
/*
 * test_data.c - tests of the DATA decoder and encoder (proxy/data.c):
 * the end of data and dot-unstuffing, the SMTP smuggling variants (LF.LF,
 * LF.CRLF, CR.CR, CRLF.LF, bare CR, bare LF, NUL) and their exact error
 * offsets, bytes after the terminator left for the next command, 8-bit
 * data, line length limits, and the encoder round trip.
 *
 * Every decoder case is run on the whole input, byte by byte, split in two
 * at every position, and in pseudo-random chunks (fixed seed); all runs
 * must give the same status, the same absolute offset, the same message,
 * the same size and the same line_too_long flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_rng.h"

#include "data.h"

static uint64_t rng_state = 0x13198a2e03707344ULL;

static uint32_t
rng(void)
{
	return test_rng_next(&rng_state);
}

/* A growing output buffer for emit(). */
struct sink {
	char *buf;
	size_t len, cap;
	size_t calls;
};

static void
sink_emit(void *ctx, const char *buf, size_t len)
{
	struct sink *s = ctx;

	/* The decoder never emits nothing. */
	assert_true(len > 0);
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2 + 64;
		s->buf = realloc(s->buf, s->cap);
		assert_non_null(s->buf);
	}
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	s->calls++;
}

static void
sink_free(struct sink *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

struct run {
	enum px_data_status st;
	size_t offset; /* absolute: bytes used, as consumed_r adds up */
	struct sink out;
	bool too_long;
	unsigned long long size;
};

/*
 * decode_split - run the decoder over in[0..len) in chunks of `chunk` bytes
 * (0: pseudo-random sizes 1..16), as reads from a socket would cut it.
 */
static void
decode_split(const char *in, size_t len, size_t line_max, size_t chunk,
             struct run *r)
{
	struct px_data_decoder d;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	px_data_decoder_init(&d, line_max);
	r->st = PX_DATA_MORE;
	while (off < len) {
		size_t n = chunk ? chunk : 1 + rng() % 16, used = (size_t)-1;

		if (n > len - off)
			n = len - off;
		r->st =
		    px_data_decode(&d, in + off, n, &used, sink_emit, &r->out);
		assert_true(used <= n);
		if (r->st != PX_DATA_MORE) {
			r->offset = off + used;
			break;
		}
		assert_int_equal(used, n);
		off += n;
		r->offset = off;
	}
	r->too_long = d.line_too_long;
	r->size = d.size;
}

/* decode_two - the same, cut once at `cut` */
static void
decode_two(const char *in, size_t len, size_t line_max, size_t cut,
           struct run *r)
{
	struct px_data_decoder d;
	size_t used = (size_t)-1;

	memset(r, 0, sizeof(*r));
	px_data_decoder_init(&d, line_max);
	r->st = px_data_decode(&d, in, cut, &used, sink_emit, &r->out);
	r->offset = used;
	if (r->st == PX_DATA_MORE) {
		assert_int_equal(used, cut);
		r->st = px_data_decode(&d, in + cut, len - cut, &used,
		                       sink_emit, &r->out);
		r->offset = cut + used;
	}
	r->too_long = d.line_too_long;
	r->size = d.size;
}

struct data_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	size_t line_max;
	enum px_data_status st;
	size_t offset; /* absolute offset; (size_t)-1: the whole input */
	const char *out;
	size_t out_len; /* 0: strlen(out) */
	bool too_long;
};

#define ALL  ((size_t)-1)
#define END  PX_DATA_END
#define MORE PX_DATA_MORE
#define BLF  PX_DATA_ERR_BARE_LF
#define BCR  PX_DATA_ERR_BARE_CR
#define NUL  PX_DATA_ERR_NUL

static const struct data_case data_cases[] = {
    /* The end, and empty messages. */
    {".\r\n", 0, 0, END, 3, ""},
    {".\r\nQUIT\r\n", 0, 0, END, 3, ""},
    {"\r\n.\r\n", 0, 0, END, 5, "\r\n"},
    {"a\r\n.\r\n", 0, 0, END, 6, "a\r\n"},
    {"Subject: x\r\n\r\nbody\r\n.\r\n", 0, 0, END, 23,
     "Subject: x\r\n\r\nbody\r\n"},
    /* Bytes after the terminator belong to the next command. */
    {"a\r\n.\r\nMAIL FROM:<x@y>\r\n", 0, 0, END, 6, "a\r\n"},
    {"a\r\n.\r\n.\r\n", 0, 0, END, 6, "a\r\n"},
    {"a\r\n.\r\n\n\0", 8, 0, END, 6, "a\r\n"},
    /* Dot-unstuffing. */
    {"..\r\n.\r\n", 0, 0, END, 7, ".\r\n"},
    {"..foo\r\n.\r\n", 0, 0, END, 10, ".foo\r\n"},
    {".foo\r\n.\r\n", 0, 0, END, 9, "foo\r\n"},
    {"a\r\n..\r\n.\r\n", 0, 0, END, 10, "a\r\n.\r\n"},
    {"a\r\n...\r\n.\r\n", 0, 0, END, 11, "a\r\n..\r\n"},
    {"a\r\n..\r\nb\r\n.\r\n", 0, 0, END, 13, "a\r\n.\r\nb\r\n"},
    {"a.b\r\n.c\r\n..d.\r\n.\r\n", 0, 0, END, 18, "a.b\r\nc\r\n.d.\r\n"},
    {".\x80\r\n.\r\n", 0, 0, END, 7, "\x80\r\n"},
    {". \r\n.\r\n", 0, 0, END, 7, " \r\n"},
    {"x.\r\n.\r\n", 0, 0, END, 7, "x.\r\n"},
    {" .\r\n.\r\n", 0, 0, END, 7, " .\r\n"},
    /* Not (yet) the end. */
    {"", 0, 0, MORE, 0, ""},
    {"a", 0, 0, MORE, ALL, "a"},
    {"a\r", 0, 0, MORE, ALL, "a"},
    {"a\r\n", 0, 0, MORE, ALL, "a\r\n"},
    {"a\r\n.", 0, 0, MORE, ALL, "a\r\n"},
    {"a\r\n.\r", 0, 0, MORE, ALL, "a\r\n"},
    {"a\r\n..", 0, 0, MORE, ALL, "a\r\n."},
    {".", 0, 0, MORE, ALL, ""},
    {"\r", 0, 0, MORE, ALL, ""},
    {"a\r\n \r\n. \r\n", 0, 0, MORE, ALL, "a\r\n \r\n \r\n"},
    /* SMTP smuggling: only CRLF.CRLF ends the message, everything else
     * is an error at the first bad byte. */
    {"a\n.\n", 0, 0, BLF, 2, "a"},
    {"a\n.\r\n", 0, 0, BLF, 2, "a"},
    {"a\r.\r", 0, 0, BCR, 2, "a"},
    {"a\r.\r\n", 0, 0, BCR, 2, "a"},
    {"a\r\n.\n", 0, 0, BLF, 5, "a\r\n"},
    {"a\r\n.\r.\r\n", 0, 0, BCR, 5, "a\r\n"},
    {"a\r\n.\r\r\n", 0, 0, BCR, 5, "a\r\n"},
    {"a\r\n.\rX", 0, 0, BCR, 5, "a\r\n"},
    {"a\rb\r\n.\r\n", 0, 0, BCR, 2, "a"},
    {"a\r\r\n.\r\n", 0, 0, BCR, 2, "a"},
    {"a\nb\r\n.\r\n", 0, 0, BLF, 2, "a"},
    {"ab\r\ncd\ne\r\n.\r\n", 0, 0, BLF, 7, "ab\r\ncd"},
    {"\n", 0, 0, BLF, 1, ""},
    {"\n.\r\n", 0, 0, BLF, 1, ""},
    {"\rX", 0, 0, BCR, 1, ""},
    {"\r\r", 0, 0, BCR, 1, ""},
    {"\r.", 0, 0, BCR, 1, ""},
    {"a\r\n\r\r\n", 0, 0, BCR, 4, "a\r\n"},
    {"a\r\n\n", 0, 0, BLF, 4, "a\r\n"},
    {".\n", 0, 0, BLF, 2, ""},
    {"..\n", 0, 0, BLF, 3, "."},
    {"a\0b\r\n.\r\n", 6, 0, NUL, 2, "a"},
    {"\0", 1, 0, NUL, 1, ""},
    {".\0", 2, 0, NUL, 2, ""},
    {"a\r\n\0", 4, 0, NUL, 4, "a\r\n"},
    {"a\r\n.\r\0", 6, 0, BCR, 5, "a\r\n"},
    {"a\r\0", 3, 0, BCR, 2, "a"},
    /* 8-bit bytes pass through untouched. */
    {"\xff\xfe\x80 caf\xc3\xa9\r\n.\r\n", 0, 0, END, 14,
     "\xff\xfe\x80 caf\xc3\xa9\r\n"},
    {"\x01\x02\x7f\t\x1b[0m\r\n.\r\n", 0, 0, END, 13,
     "\x01\x02\x7f\t\x1b[0m\r\n"},
    /* Line length: line_max counts the CRLF, not a stuffing dot. */
    {"12345678\r\n.\r\n", 0, 10, END, 13, "12345678\r\n", 0, false},
    {"123456789\r\n.\r\n", 0, 10, END, 14, "123456789\r\n", 0, true},
    {"..2345678\r\n.\r\n", 0, 10, END, 14, ".2345678\r\n", 0, false},
    {"...345678\r\n.\r\n", 0, 10, END, 14, "..345678\r\n", 0, false},
    {"..23456789\r\n.\r\n", 0, 10, END, 15, ".23456789\r\n", 0, true},
    {"a\r\n123456789\r\nb\r\n.\r\n", 0, 10, END, 20, "a\r\n123456789\r\nb\r\n",
     0, true},
    {"12345678\r\n12345678\r\n.\r\n", 0, 10, END, 23,
     "12345678\r\n12345678\r\n", 0, false},
    {"1234567890", 0, 10, MORE, ALL, "1234567890", 0, false},
    {"12345678901", 0, 10, MORE, ALL, "12345678901", 0, true},
    {"123456789\r", 0, 10, MORE, ALL, "123456789", 0, false},
    {"123456789\r\n", 0, 10, MORE, ALL, "123456789\r\n", 0, true},
    {"123456789\r\n.\r\n", 0, 0, END, 14, "123456789\r\n", 0, false},
    {"123\r\n\n", 0, 5, BLF, 6, "123\r\n", 0, false},
    {"1234\r\n\n", 0, 5, BLF, 7, "1234\r\n", 0, true},
};

static void
run_equal(size_t i, const char *how, const struct run *a, const struct run *b)
{
	if (a->st != b->st || a->offset != b->offset ||
	    a->out.len != b->out.len ||
	    (a->out.len && memcmp(a->out.buf, b->out.buf, a->out.len) != 0) ||
	    a->too_long != b->too_long || a->size != b->size)
		fail_msg("case %zu: %s differs from whole: st %d/%d off "
		         "%zu/%zu len %zu/%zu long %d/%d",
		         i, how, b->st, a->st, b->offset, a->offset, b->out.len,
		         a->out.len, b->too_long, a->too_long);
}

static void
test_decode_table(void **state)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]);
	     i++) {
		const struct data_case *c = &data_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		size_t out_len = c->out_len ? c->out_len : strlen(c->out);
		size_t want_off = c->offset == ALL ? len : c->offset;
		struct run whole, other;
		char how[64];

		decode_split(c->in, len, c->line_max, len ? len : 1, &whole);
		if (whole.st != c->st || whole.offset != want_off)
			fail_msg("case %zu: status %d offset %zu, want %d %zu",
			         i, whole.st, whole.offset, c->st, want_off);
		if (whole.out.len != out_len ||
		    memcmp(whole.out.buf ? whole.out.buf : "", c->out,
		           out_len) != 0)
			fail_msg("case %zu: output \"%.*s\" (%zu bytes)", i,
			         (int)whole.out.len,
			         whole.out.buf ? whole.out.buf : "",
			         whole.out.len);
		if (whole.too_long != c->too_long)
			fail_msg("case %zu: line_too_long %d", i,
			         whole.too_long);
		assert_int_equal(whole.size, out_len);

		decode_split(c->in, len, c->line_max, 1, &other);
		run_equal(i, "byte by byte", &whole, &other);
		sink_free(&other.out);
		for (size_t cut = 0; cut <= len; cut++) {
			decode_two(c->in, len, c->line_max, cut, &other);
			snprintf(how, sizeof(how), "cut at %zu", cut);
			run_equal(i, how, &whole, &other);
			sink_free(&other.out);
		}
		for (int k = 0; k < 8; k++) {
			decode_split(c->in, len, c->line_max, 0, &other);
			run_equal(i, "random split", &whole, &other);
			sink_free(&other.out);
		}
		sink_free(&whole.out);
	}
}

/* The end of data split across chunks at every position, after a longer
 * message with stuffed lines, followed by the next command. */
static void
test_end_at_every_split(void **state)
{
	const char *in = "From: a@b\r\n\r\n..hidden\r\n..\r\nlast\r\n"
	                 ".\r\nQUIT\r\n";
	const char *want = "From: a@b\r\n\r\n.hidden\r\n.\r\nlast\r\n";
	size_t len = strlen(in), end = strlen(in) - strlen("QUIT\r\n");

	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct px_data_decoder d;
			struct sink out = {0};
			size_t cuts[3] = {a, b - a, len - b}, off = 0, used;
			enum px_data_status st = PX_DATA_MORE;

			px_data_decoder_init(&d, 1000);
			for (int k = 0; k < 3 && st == PX_DATA_MORE; k++) {
				st = px_data_decode(&d, in + off, cuts[k],
				                    &used, sink_emit, &out);
				off += used;
			}
			assert_int_equal(st, PX_DATA_END);
			assert_int_equal(off, end);
			assert_int_equal(out.len, strlen(want));
			assert_memory_equal(out.buf, want, out.len);
			assert_int_equal(d.size, out.len);
			sink_free(&out);
		}
	}
}

/* Runs, not bytes: ordinary lines go out in one call per chunk; a removed
 * dot splits a run. */
static void
test_emit_in_runs(void **state)
{
	struct px_data_decoder d;
	struct sink out = {0};
	size_t used;
	const char *a = "line one\r\nline two\r\nline three\r\n.\r\n";
	const char *b = "one\r\n..two\r\nthree\r\n.\r\n";

	px_data_decoder_init(&d, 1000);
	assert_int_equal(
	    px_data_decode(&d, a, strlen(a), &used, sink_emit, &out),
	    PX_DATA_END);
	assert_int_equal(out.calls, 1);
	assert_int_equal(out.len, strlen(a) - 3);
	sink_free(&out);

	px_data_decoder_init(&d, 1000);
	assert_int_equal(
	    px_data_decode(&d, b, strlen(b), &used, sink_emit, &out),
	    PX_DATA_END);
	assert_int_equal(out.calls, 2);
	assert_memory_equal(out.buf, "one\r\n.two\r\nthree\r\n", out.len);
	sink_free(&out);

	/* A CR held over a chunk boundary comes out with its LF. */
	px_data_decoder_init(&d, 1000);
	assert_int_equal(px_data_decode(&d, "ab\r", 3, &used, sink_emit, &out),
	                 PX_DATA_MORE);
	assert_int_equal(out.len, 2);
	assert_int_equal(px_data_decode(&d, "\ncd", 3, &used, sink_emit, &out),
	                 PX_DATA_MORE);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.buf, "ab\r\ncd", 6);
	assert_int_equal(d.size, 6);
	sink_free(&out);
}

/* A large message decodes the same whole and in random chunks, and size
 * counts what was emitted. */
static void
test_large_message(void **state)
{
	size_t cap = 1 << 20, len = 0;
	char *in = malloc(cap + 16);
	struct run whole, split;

	assert_non_null(in);
	while (len < cap - 200) {
		size_t n = rng() % 120, start = len;

		if (rng() % 10 == 0)
			in[len++] = '.';
		for (size_t k = 0; k < n; k++) {
			char c = (char)(rng() % 256);

			in[len++] =
			    c == '\r' || c == '\n' || c == '\0' ? 'x' : c;
		}
		/* A line of one dot would end the message early. */
		if (len == start + 1 && in[start] == '.')
			in[len++] = '.';
		in[len++] = '\r';
		in[len++] = '\n';
	}
	memcpy(in + len, ".\r\n", 3);
	len += 3;

	decode_split(in, len, 100, len, &whole);
	assert_int_equal(whole.st, PX_DATA_END);
	assert_int_equal(whole.offset, len);
	assert_int_equal(whole.size, whole.out.len);
	assert_true(whole.too_long);
	decode_split(in, len, 100, 0, &split);
	run_equal(0, "random split", &whole, &split);
	sink_free(&split.out);
	decode_split(in, len, 100, 4096, &split);
	run_equal(0, "4k chunks", &whole, &split);
	sink_free(&split.out);
	sink_free(&whole.out);
	free(in);
}

static void
encode_all(const char *in, size_t len, size_t chunk, struct sink *out)
{
	struct px_data_encoder e;
	size_t off = 0;

	px_data_encoder_init(&e);
	while (off < len) {
		size_t n = chunk ? chunk : 1 + rng() % 16;

		if (n > len - off)
			n = len - off;
		px_data_encode(&e, in + off, n, sink_emit, out);
		off += n;
	}
	px_data_encode_end(&e, sink_emit, out);
}

static void
test_encode_table(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"", ".\r\n"},
	    {"a\r\n", "a\r\n.\r\n"},
	    {".\r\n", "..\r\n.\r\n"},
	    {"a\r\n.b\r\n..\r\n", "a\r\n..b\r\n...\r\n.\r\n"},
	    {"x.\r\n .\r\n", "x.\r\n .\r\n.\r\n"},
	    {"abc", "abc\r\n.\r\n"},
	    {".", "..\r\n.\r\n"},
	    {"a\r\n.", "a\r\n..\r\n.\r\n"},
	    {"\r\n.\r\n\r\n", "\r\n..\r\n\r\n.\r\n"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t chunk = 0; chunk < 4; chunk++) {
			struct sink out = {0};

			encode_all(cases[i].in, strlen(cases[i].in),
			           chunk == 3 ? strlen(cases[i].in) + 1 : chunk,
			           &out);
			if (out.len != strlen(cases[i].out) ||
			    memcmp(out.buf, cases[i].out, out.len) != 0)
				fail_msg("encode case %zu chunk %zu: \"%.*s\"",
				         i, chunk, (int)out.len, out.buf);
			sink_free(&out);
		}
	}
}

/*
 * Round trip on random CRLF-only messages (lines of any bytes but CR, LF
 * and NUL, often starting with dots): the wire form decodes to the
 * message, and re-encoding the decoded message gives the wire form back.
 */
static void
test_round_trip(void **state)
{
	char msg[4096];

	for (int iter = 0; iter < 2000; iter++) {
		size_t len = 0, nlines = rng() % 20;
		struct sink wire = {0}, again = {0};
		struct run dec;

		for (size_t l = 0; l < nlines && len < sizeof(msg) - 200; l++) {
			size_t n = rng() % 80;

			for (int dots = (int)(rng() % 4) - 1; dots > 0; dots--)
				msg[len++] = '.';
			for (size_t k = 0; k < n; k++) {
				char c = (char)(rng() % 256);

				if (c == '\r' || c == '\n' || c == '\0')
					c = rng() % 2 ? '.' : 'z';
				msg[len++] = c;
			}
			msg[len++] = '\r';
			msg[len++] = '\n';
		}
		encode_all(msg, len, 0, &wire);
		decode_split(wire.buf, wire.len, 0, 0, &dec);
		assert_int_equal(dec.st, PX_DATA_END);
		assert_int_equal(dec.offset, wire.len);
		assert_int_equal(dec.out.len, len);
		if (len > 0)
			assert_memory_equal(dec.out.buf, msg, len);
		encode_all(dec.out.buf ? dec.out.buf : "", dec.out.len, 0,
		           &again);
		assert_int_equal(again.len, wire.len);
		assert_memory_equal(again.buf, wire.buf, wire.len);
		sink_free(&wire);
		sink_free(&again);
		sink_free(&dec.out);
	}
}

/* Re-initialising resets everything, including the sticky flag. */
static void
test_reinit(void **state)
{
	struct px_data_decoder d;
	struct sink out = {0};
	size_t used;

	px_data_decoder_init(&d, 4);
	assert_int_equal(
	    px_data_decode(&d, "abcdef\r", 7, &used, sink_emit, &out),
	    PX_DATA_MORE);
	assert_true(d.line_too_long);
	px_data_decoder_init(&d, 4);
	assert_false(d.line_too_long);
	assert_int_equal(d.size, 0);
	assert_int_equal(px_data_decode(&d, ".\r\n", 3, &used, sink_emit, &out),
	                 PX_DATA_END);
	assert_int_equal(used, 3);
	assert_int_equal(d.size, 0);
	sink_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decode_table),
	    cmocka_unit_test(test_end_at_every_split),
	    cmocka_unit_test(test_emit_in_runs),
	    cmocka_unit_test(test_large_message),
	    cmocka_unit_test(test_encode_table),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_reinit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
