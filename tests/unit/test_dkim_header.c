/* SPDX-License-Identifier: MIT */
/*
 * test_dkim_header.c - the DKIM header splitter (filters/dkim_header.c): a
 * table of messages and the fields and body each must give, fed whole,
 * byte by byte, split in two at every position and in pseudo-random
 * chunks; messages without a body, without a header, folded fields; the
 * size limit; flt_dkim_hdr_is_sig.
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

#include "dkim_header.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static const struct {
	const char *msg;
	const char *fields; /* each field then "|" */
	const char *body;   /* NULL: no blank line */
} cases[] = {
    {"From: a\r\nTo: b\r\n\r\nbody\r\n", "From: a|To: b|", "body\r\n"},
    {"Subject: x\r\n\tfolded\r\n y\r\nFrom: a\r\n\r\n",
     "Subject: x\r\n\tfolded\r\n y|From: a|", ""},
    {"\r\nonly body\r\n", "", "only body\r\n"},
    {"From: a\r\n", "From: a|", NULL},
    {"From: a\r\n\r\n\r\n\r\n", "From: a|", "\r\n\r\n"},
    {"DKIM-Signature: v=1;\r\n b=x\r\nFrom: a\r\n\r\nB",
     "DKIM-Signature: v=1;\r\n b=x|From: a|", "B"},
};

struct out {
	char buf[512];
	size_t len;
};

static void
put(struct out *o, const char *p, size_t n)
{
	assert_true(o->len + n < sizeof(o->buf));
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void
on_field(void *ctx, const char *f, size_t len)
{
	struct out *o = ctx;

	put(o, f, len);
	put(o, "|", 1);
}

/* run - feed msg in the pieces given by cuts (ascending, ncuts of them);
 * fields into *f, body into *b; returns whether a blank line was seen. */
static bool
run(const char *msg, const size_t *cuts, size_t ncuts, struct out *f,
    struct out *b)
{
	struct flt_dkim_hdr h = {0};
	size_t len = strlen(msg), prev = 0;
	bool body = false;

	memset(f, 0, sizeof(*f));
	memset(b, 0, sizeof(*b));
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		const char *bp;
		size_t bl;
		int rc = flt_dkim_hdr_feed(&h, msg + prev, end - prev, on_field,
		                           f, &bp, &bl);

		assert_true(rc >= 0);
		if (rc == 1) {
			body = true;
			put(b, bp, bl);
		} else {
			assert_int_equal(bl, 0);
		}
		prev = end;
	}
	if (!body)
		flt_dkim_hdr_end(&h, on_field, f);
	flt_dkim_hdr_reset(&h);
	return body;
}

static void
check(size_t i, const size_t *cuts, size_t ncuts)
{
	struct out f, b;
	bool body = run(cases[i].msg, cuts, ncuts, &f, &b);

	assert_string_equal(f.buf, cases[i].fields);
	assert_int_equal(body, cases[i].body != NULL);
	if (cases[i].body != NULL)
		assert_string_equal(b.buf, cases[i].body);
}

static void
test_whole_bytes_splits(void **unused)
{
	size_t cuts[600];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].msg);

		check(i, NULL, 0);
		for (size_t k = 1; k < len; k++)
			cuts[k - 1] = k;
		check(i, cuts, len > 0 ? len - 1 : 0);
		for (size_t k = 0; k <= len; k++)
			check(i, &k, 1);
		for (int r = 0; r < 50; r++) {
			size_t n = 0, at = 0;

			while (n < 16) {
				at += 1 + test_rng_next(&rng_state) % 5;
				if (at >= len)
					break;
				cuts[n++] = at;
			}
			check(i, cuts, n);
		}
	}
}

static void
test_limit(void **unused)
{
	struct flt_dkim_hdr h = {0};
	struct out f;
	char *big = malloc(FLT_DKIM_HEADER_MAX);
	const char *bp;
	size_t bl;

	memset(&f, 0, sizeof(f));
	memset(big, 'x', FLT_DKIM_HEADER_MAX);
	assert_int_equal(flt_dkim_hdr_feed(&h, big, FLT_DKIM_HEADER_MAX,
	                                   on_field, &f, &bp, &bl),
	                 0);
	assert_int_equal(flt_dkim_hdr_feed(&h, "y", 1, on_field, &f, &bp, &bl),
	                 -1);
	flt_dkim_hdr_reset(&h);
	free(big);
}

static void
test_is_sig(void **unused)
{
	size_t v = 0;

	assert_true(flt_dkim_hdr_is_sig("DKIM-Signature: v=1", 19, &v));
	assert_int_equal(v, 15);
	assert_true(flt_dkim_hdr_is_sig("dkim-signature \t:x", 18, &v));
	assert_int_equal(v, 17);
	assert_false(flt_dkim_hdr_is_sig("DKIM-Signatures: x", 18, &v));
	assert_false(flt_dkim_hdr_is_sig("X-DKIM-Signature: x", 19, &v));
	assert_false(flt_dkim_hdr_is_sig("DKIM-Signature", 14, &v));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole_bytes_splits),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_is_sig),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
