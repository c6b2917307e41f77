/* SPDX-License-Identifier: MIT */
/*
 * test_authres.c - tests of the forged Authentication-Results removal
 * (proxy/authres.c): px_authres_match() on a table of fields (token and
 * quoted authserv-ids, comments, folding, case, look-alike names), and the
 * streaming filter on whole messages: what is removed, that everything else
 * is byte-identical, long fields, messages without a body or without
 * headers.  Every message is fed whole, byte by byte, split in two at
 * every position and in pseudo-random chunks; all runs must agree.
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

#include "authres.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static const char ID[] = "mx.example.com";

static const struct {
	const char *field;
	enum px_authres_match want;
} match_cases[] = {
    {"Authentication-Results: mx.example.com; spf=pass", PX_AUTHRES_OURS},
    {"authentication-results: MX.Example.COM; none", PX_AUTHRES_OURS},
    {"Authentication-Results:mx.example.com;spf=pass", PX_AUTHRES_OURS},
    {"Authentication-Results : mx.example.com; none", PX_AUTHRES_OURS},
    {"Authentication-Results: (forged) mx.example.com; none", PX_AUTHRES_OURS},
    {"Authentication-Results: (a (nested \\) one)) mx.example.com; none",
     PX_AUTHRES_OURS},
    {"Authentication-Results:\r\n\tmx.example.com;\r\n\tspf=pass",
     PX_AUTHRES_OURS},
    {"Authentication-Results: \"mx.example.com\"; none", PX_AUTHRES_OURS},
    {"Authentication-Results: \"mx.exa\\mple.com\"; none", PX_AUTHRES_OURS},
    {"Authentication-Results: mx.example.com 1; none", PX_AUTHRES_OURS},
    {"Authentication-Results: mx.example.com(c); none", PX_AUTHRES_OURS},
    {"Authentication-Results: mx.example.com", PX_AUTHRES_OURS},
    {"Authentication-Results: other.example.com; spf=pass", PX_AUTHRES_OTHER},
    {"Authentication-Results: mx.example.com.evil; none", PX_AUTHRES_OTHER},
    {"Authentication-Results: x.mx.example.com; none", PX_AUTHRES_OTHER},
    {"Authentication-Results: mx.example.co; none", PX_AUTHRES_OTHER},
    {"Authentication-Results: \"mx.example.com \"; none", PX_AUTHRES_OTHER},
    {"Authentication-Results: ; none", PX_AUTHRES_OTHER},
    {"Authentication-Results:", PX_AUTHRES_OTHER},
    {"Authentication-Results: (unterminated mx.example.com;", PX_AUTHRES_OTHER},
    {"Authentication-Results-Original: mx.example.com; none", PX_AUTHRES_OTHER},
    {"X-Authentication-Results: mx.example.com; none", PX_AUTHRES_OTHER},
    {"ARC-Authentication-Results: i=1; mx.example.com; none", PX_AUTHRES_OTHER},
    {"Subject: Authentication-Results: mx.example.com;", PX_AUTHRES_OTHER},
};

static void
test_match(void **state)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]);
	     i++) {
		const char *f = match_cases[i].field;
		enum px_authres_match got =
		    px_authres_match(f, strlen(f), ID, true);

		if (got != match_cases[i].want)
			fail_msg("%s: got %d, want %d", f, (int)got,
			         (int)match_cases[i].want);
	}
}

static void
test_match_truncated(void **state)
{
	static const char f[] = "Authentication-Results: (long comment";
	static const char g[] = "Authentication-Results: mx.exam";

	assert_int_equal(px_authres_match(f, strlen(f), ID, false),
	                 PX_AUTHRES_UNKNOWN);
	assert_int_equal(px_authres_match(g, strlen(g), ID, false),
	                 PX_AUTHRES_UNKNOWN);
	assert_int_equal(px_authres_match(g, strlen(g), ID, true),
	                 PX_AUTHRES_OTHER);
}

struct sink {
	char *buf;
	size_t len, cap;
};

static void
sink_emit(void *ctx, const char *buf, size_t len)
{
	struct sink *s = ctx;

	assert_true(len > 0);
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2 + 64;
		s->buf = realloc(s->buf, s->cap);
		assert_non_null(s->buf);
	}
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
}

/* run - in[0..len) fed in chunks given by next_chunk; returns the output
 * (caller frees) and *removed_r. */
static char *
run(const char *in, size_t len, size_t (*next_chunk)(size_t left, void *),
    void *arg, size_t *out_len, unsigned *removed_r)
{
	struct px_authres_strip *st = malloc(sizeof(*st));
	struct sink s = {0};
	size_t off = 0;

	assert_non_null(st);
	px_authres_strip_init(st, ID);
	while (off < len) {
		size_t n = next_chunk(len - off, arg);

		px_authres_strip_feed(st, in + off, n, sink_emit, &s);
		off += n;
	}
	*removed_r = px_authres_strip_end(st, sink_emit, &s);
	free(st);
	*out_len = s.len;
	if (s.buf == NULL)
		s.buf = malloc(1);
	return s.buf;
}

static size_t
chunk_whole(size_t left, void *arg)
{
	return left;
}

static size_t
chunk_byte(size_t left, void *arg)
{
	return 1;
}

static size_t
chunk_cut(size_t left, void *arg)
{
	size_t *cut = arg;
	size_t n = *cut > 0 && *cut < left ? *cut : left;

	*cut = 0;
	return n;
}

static size_t
chunk_random(size_t left, void *arg)
{
	size_t n = 1 + test_rng_next(&rng_state) % 17;

	return n < left ? n : left;
}

/* check - every way of feeding in gives want and removed. */
static void
check(const char *in, const char *want, unsigned removed)
{
	size_t len = strlen(in), wlen = strlen(want), olen;
	unsigned got_removed;
	char *out;

	out = run(in, len, chunk_whole, NULL, &olen, &got_removed);
	if (olen != wlen || memcmp(out, want, wlen) != 0)
		fail_msg("whole: got \"%.*s\"", (int)olen, out);
	assert_int_equal(got_removed, removed);
	free(out);
	out = run(in, len, chunk_byte, NULL, &olen, &got_removed);
	assert_int_equal(olen, wlen);
	assert_memory_equal(out, want, wlen);
	assert_int_equal(got_removed, removed);
	free(out);
	/* Every cut of a short message; 64 spread over a long one. */
	for (size_t cut = 1; cut < len; cut += len < 2048 ? 1 : len / 64) {
		size_t c = cut;

		out = run(in, len, chunk_cut, &c, &olen, &got_removed);
		assert_int_equal(olen, wlen);
		assert_memory_equal(out, want, wlen);
		assert_int_equal(got_removed, removed);
		free(out);
	}
	for (int r = 0; r < 20; r++) {
		out = run(in, len, chunk_random, NULL, &olen, &got_removed);
		assert_int_equal(olen, wlen);
		assert_memory_equal(out, want, wlen);
		assert_int_equal(got_removed, removed);
		free(out);
	}
}

static void
test_strip_messages(void **state)
{
	/* Ours removed (folded, two of them, any case), others kept. */
	check("Received: from a\r\n\tby b\r\n"
	      "Authentication-Results: mx.example.com;\r\n\tspf=pass\r\n"
	      "Authentication-Results: other.example; dkim=pass\r\n"
	      "authentication-results: \"MX.EXAMPLE.COM\"; dmarc=pass\r\n"
	      "Subject: hi\r\n"
	      "\r\n"
	      "Authentication-Results: mx.example.com; in the body\r\n",
	      "Received: from a\r\n\tby b\r\n"
	      "Authentication-Results: other.example; dkim=pass\r\n"
	      "Subject: hi\r\n"
	      "\r\n"
	      "Authentication-Results: mx.example.com; in the body\r\n",
	      2);
	/* First and last field; no body. */
	check("Authentication-Results: mx.example.com; none\r\n"
	      "From: a@b\r\n"
	      "Authentication-Results: mx.example.com; none",
	      "From: a@b\r\n", 2);
	/* No headers at all. */
	check("\r\nAuthentication-Results: mx.example.com; none\r\n",
	      "\r\nAuthentication-Results: mx.example.com; none\r\n", 0);
	/* A continuation of a kept field that looks like ours. */
	check("X-Note: a\r\n Authentication-Results: mx.example.com;\r\n\r\nb",
	      "X-Note: a\r\n Authentication-Results: mx.example.com;\r\n\r\nb",
	      0);
	/* Look-alike names and a line without a colon. */
	check("Authentication-Results-X: mx.example.com;\r\n"
	      "not a header line\r\n"
	      "X-Authentication-Results: mx.example.com;\r\n\r\n",
	      "Authentication-Results-X: mx.example.com;\r\n"
	      "not a header line\r\n"
	      "X-Authentication-Results: mx.example.com;\r\n\r\n",
	      0);
	/* 8-bit bytes pass untouched. */
	check("Subject: caf\xc3\xa9\r\n"
	      "Authentication-Results: mx.example.com; x=\xff\r\n\r\n\xfe",
	      "Subject: caf\xc3\xa9\r\n\r\n\xfe", 1);
	check("", "", 0);
}

/* Fields longer than the hold buffer: decided on their first bytes. */
static void
test_strip_long(void **state)
{
	size_t pad = PX_AUTHRES_HOLD_MAX * 2;
	char *in = malloc(pad + 256), *want = malloc(pad + 256);
	size_t n;

	assert_non_null(in);
	assert_non_null(want);
	/* Someone else's, long: kept whole. */
	n = (size_t)sprintf(in, "Authentication-Results: other.example; x=");
	memset(in + n, 'a', pad);
	n += pad;
	strcpy(in + n, "\r\nSubject: s\r\n\r\nbody");
	strcpy(want, in);
	check(in, want, 0);
	/* Ours, long: removed whole. */
	n = (size_t)sprintf(in, "Authentication-Results: mx.example.com; x=");
	memset(in + n, 'a', pad);
	n += pad;
	strcpy(in + n, "\r\n\tmore\r\nSubject: s\r\n\r\nbody");
	check(in, "Subject: s\r\n\r\nbody", 1);
	/* SECURITY: an authserv-id hidden past the buffer: removed. */
	n = (size_t)sprintf(in, "Authentication-Results: (");
	memset(in + n, 'c', pad);
	n += pad;
	strcpy(in + n, ") mx.example.com; spf=pass\r\n\r\nbody");
	check(in, "\r\nbody", 1);
	/* A long header name is no A-R field. */
	memset(in, 'X', pad);
	strcpy(in + pad, ": v\r\n\r\nb");
	strcpy(want, in);
	check(in, want, 0);
	free(in);
	free(want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_match_truncated),
	    cmocka_unit_test(test_strip_messages),
	    cmocka_unit_test(test_strip_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
