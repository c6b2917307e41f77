/* SPDX-License-Identifier: MIT */
/*
 * test_json.c - px_json_escape: quotes, backslashes and control bytes
 * escaped, markup characters \u-escaped, valid UTF-8 kept, invalid UTF-8
 * (cut, overlong, surrogate, past U+10FFFF, stray continuation) replaced
 * with U+FFFD byte by byte, NUL bytes inside the input kept as \u0000, and
 * the size bound PX_JSON_SIZE held for the worst input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static void
test_json_table(void **state)
{
	static const struct {
		const char *in;
		size_t len; /* 0: strlen(in) */
		const char *out;
	} cases[] = {
	    {"", 0, "\"\""},
	    {"plain text", 0, "\"plain text\""},
	    {"a\"b\\c", 0, "\"a\\\"b\\\\c\""},
	    {"l1\r\nl2\tx", 0, "\"l1\\r\\nl2\\tx\""},
	    {"\x01\x1f\x7f", 0, "\"\\u0001\\u001f\\u007f\""},
	    {"<script>x</script>", 0,
	     "\"\\u003cscript\\u003ex\\u003c/script\\u003e\""},
	    {"\"<script>x\"@a.example", 0,
	     "\"\\\"\\u003cscript\\u003ex\\\"@a.example\""},
	    {"a&b", 0, "\"a\\u0026b\""},
	    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0,
	     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
	    {"\xe2\x80\xa8\xe2\x80\xa9", 0, "\"\\u2028\\u2029\""},
	    /* Invalid UTF-8: each offending byte becomes U+FFFD. */
	    {"\xff", 0, "\"\\ufffd\""},
	    {"\x80x", 0, "\"\\ufffdx\""},
	    {"\xc0\xaf", 0, "\"\\ufffd\\ufffd\""},            /* overlong '/' */
	    {"\xe0\x80\xaf", 0, "\"\\ufffd\\ufffd\\ufffd\""}, /* overlong */
	    {"\xed\xa0\x80", 0, "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
	    {"\xf4\x90\x80\x80", 0,
	     "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},    /* > U+10FFFF */
	    {"\xc3", 0, "\"\\ufffd\""},              /* cut at the end */
	    {"\xe2\x82x", 0, "\"\\ufffd\\ufffdx\""}, /* cut in the middle */
	    {"a\0b", 3, "\"a\\u0000b\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
		char *out = malloc(PX_JSON_SIZE(len));
		size_t n = px_json_escape(out, cases[i].in, len);

		assert_string_equal(out, cases[i].out);
		assert_int_equal(n, strlen(cases[i].out));
		free(out);
	}
}

/* The worst input for size: bytes that each take six characters. */
static void
test_json_bound(void **state)
{
	static const char worst[] = "\x01<>&\xff\x80\xe2\x80\xa8";
	size_t len = sizeof(worst) - 1;
	char *out = malloc(PX_JSON_SIZE(len));
	size_t n = px_json_escape(out, worst, len);

	assert_true(n + 1 <= PX_JSON_SIZE(len));
	assert_int_equal(n, 2 + 6 * 6 + 6);
	free(out);
}

/* Every byte value alone: the output has no raw control byte, no markup
 * character and is a quoted string. */
static void
test_json_every_byte(void **state)
{
	for (unsigned b = 0; b < 256; b++) {
		char in = (char)b, out[PX_JSON_SIZE(1)];
		size_t n = px_json_escape(out, &in, 1);

		assert_true(n >= 3);
		assert_int_equal(out[0], '"');
		assert_int_equal(out[n - 1], '"');
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)out[i];

			assert_true(c >= 0x20 && c < 0x7f);
			assert_true(c != '<' && c != '>' && c != '&');
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_table),
	    cmocka_unit_test(test_json_bound),
	    cmocka_unit_test(test_json_every_byte),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
