/* SPDX-License-Identifier: MIT */
/*
 * test_bdat.c - tests of the BDAT receiver's pieces (proxy/bdat.c): the
 * "chunk-size [LAST]" argument, and the content checks (bare CR, bare LF,
 * NUL, line length), each case fed whole, byte by byte and split in two at
 * every position; all runs must agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bdat.h"

static const struct {
	const char *arg;
	int ret;
	unsigned long long size;
	bool last;
} arg_cases[] = {
    {"0", 0, 0, false},
    {"0 LAST", 0, 0, true},
    {"10 last", 0, 10, true},
    {"10 LaSt", 0, 10, true},
    {"007", 0, 7, false},
    {"1048576", 0, 1048576, false},
    {"9007199254740992", 0, 9007199254740992ULL, false},
    {"9007199254740993", -1},
    {"99999999999999999999999", -1},
    {"", -1},
    {"LAST", -1},
    {"-1", -1},
    {"+1", -1},
    {"1 ", -1},
    {"1  LAST", -1},
    {"1 LASTX", -1},
    {"1 LAS", -1},
    {"1 NOTLAST", -1},
    {"1x", -1},
    {" 1", -1},
};

static void
test_parse_arg(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(arg_cases) / sizeof(arg_cases[0]); i++) {
		unsigned long long n = 1234;
		bool last = true;
		int ret = px_bdat_parse_arg(
		    arg_cases[i].arg, strlen(arg_cases[i].arg), &n, &last);

		assert_int_equal(ret, arg_cases[i].ret);
		if (ret == 0) {
			assert_true(n == arg_cases[i].size);
			assert_int_equal(last, arg_cases[i].last);
		}
	}
}

static const struct {
	const char *in;
	size_t len; /* 0: strlen */
	enum px_bdat_status st;
	bool too_long; /* with a 10-octet line limit (CRLF included) */
} check_cases[] = {
    {"", 0, PX_BDAT_OK},
    {"a\r\nb\r\n", 0, PX_BDAT_OK},
    {".\r\n..\r\n.x\r\n", 0, PX_BDAT_OK},
    {"no line end", 0, PX_BDAT_OK, true},
    {"12345678\r\n", 0, PX_BDAT_OK},
    {"123456789\r\n", 0, PX_BDAT_OK, true},
    {"a\nb\r\n", 0, PX_BDAT_ERR_BARE_LF},
    {"\n", 0, PX_BDAT_ERR_BARE_LF},
    {"a\rb\r\n", 0, PX_BDAT_ERR_BARE_CR},
    {"a\r", 0, PX_BDAT_ERR_BARE_CR},
    {"a\r\r\n", 0, PX_BDAT_ERR_BARE_CR},
    {"a\0b\r\n", 5, PX_BDAT_ERR_NUL},
    {"a\nb\0", 4, PX_BDAT_ERR_BARE_LF}, /* the first error is kept */
    {"\r\n.\r\nQUIT\r\n", 0, PX_BDAT_OK},
};

static void
check_run(const char *in, size_t len, size_t step, size_t cut,
          enum px_bdat_status *st_r, bool *too_long_r)
{
	struct px_bdat_check c;
	size_t off = 0;

	px_bdat_check_init(&c, 10);
	if (cut != 0) {
		px_bdat_check_feed(&c, in, cut);
		px_bdat_check_feed(&c, in + cut, len - cut);
	} else {
		while (off < len) {
			size_t n =
			    step == 0 || step > len - off ? len - off : step;

			px_bdat_check_feed(&c, in + off, n);
			off += n;
		}
	}
	*st_r = px_bdat_check_end(&c);
	*too_long_r = c.line_too_long;
	assert_true(c.size == len);
}

static void
test_check_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]);
	     i++) {
		const char *in = check_cases[i].in;
		size_t len =
		    check_cases[i].len ? check_cases[i].len : strlen(in);
		enum px_bdat_status st;
		bool too_long;

		check_run(in, len, 0, 0, &st, &too_long);
		assert_int_equal(st, check_cases[i].st);
		assert_int_equal(too_long, check_cases[i].too_long);
		check_run(in, len, 1, 0, &st, &too_long);
		assert_int_equal(st, check_cases[i].st);
		assert_int_equal(too_long, check_cases[i].too_long);
		for (size_t cut = 1; cut < len; cut++) {
			check_run(in, len, 0, cut, &st, &too_long);
			assert_int_equal(st, check_cases[i].st);
			assert_int_equal(too_long, check_cases[i].too_long);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_arg),
	    cmocka_unit_test(test_check_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
