/* SPDX-License-Identifier: MIT */
/*
 * test_dkim.c - the DKIM Authentication-Results resinfos
 * (filters/dkim.c flt_dkim_authres): a table of signature sets and the
 * exact text each gives (RFC 8601 2.7.1 syntax: header.b quoted when it
 * holds tspecials, reasons in a comment that cannot be closed early,
 * signatures joined by ";CRLF TAB"), "dkim=none", nothing when not
 * evaluated, 0 when the buffer is too small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dkim_report.h"

static const struct flt_dkim_sig pass_sig = {
    .result = FLT_DKIM_PASS,
    .domain = "example.com",
    .selector = "s1",
    .b = "AbCd+123",
    .alg = "rsa-sha256",
};

static const struct flt_dkim_sig fail_sig = {
    .result = FLT_DKIM_FAIL,
    .domain = "esp.example",
    .selector = "k",
    .b = "ab/cd=Ef",
    .alg = "ed25519-sha256",
    .reason = "body hash mismatch",
};

static const struct flt_dkim_sig odd_sig = {
    .result = FLT_DKIM_PERMERROR,
    .testing = true,
    .reason = "bad (key) \\ syntax",
};

static void
test_authres_table(void **unused)
{
	static const struct {
		const struct flt_dkim_sig *sigs[3];
		int n;
		const char *want;
	} cases[] = {
	    {{NULL}, -1, ""},
	    {{NULL}, 0, "dkim=none"},
	    {{&pass_sig},
	     1,
	     "dkim=pass header.d=example.com header.s=s1 header.a=rsa-sha256 "
	     "header.b=AbCd+123"},
	    {{&fail_sig},
	     1,
	     "dkim=fail (body hash mismatch) header.d=esp.example header.s=k "
	     "header.a=ed25519-sha256 header.b=\"ab/cd=Ef\""},
	    {{&odd_sig}, 1, "dkim=permerror (bad  key    syntax, test mode)"},
	    {{&pass_sig, &fail_sig},
	     2,
	     "dkim=pass header.d=example.com header.s=s1 header.a=rsa-sha256 "
	     "header.b=AbCd+123;\r\n\tdkim=fail (body hash mismatch) "
	     "header.d=esp.example header.s=k header.a=ed25519-sha256 "
	     "header.b=\"ab/cd=Ef\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct flt_dkim_sig sigs[3];
		char buf[1024];
		size_t n;

		memset(buf, 0, sizeof(buf));
		for (int j = 0; j < cases[i].n; j++)
			sigs[j] = *cases[i].sigs[j];
		n = flt_dkim_authres(buf, sizeof(buf), sigs, cases[i].n);
		assert_int_equal(n, strlen(cases[i].want));
		assert_string_equal(buf, cases[i].want);
	}
}

static void
test_authres_too_small(void **unused)
{
	struct flt_dkim_sig sigs[2] = {pass_sig, fail_sig};
	char buf[64];

	assert_int_equal(flt_dkim_authres(buf, sizeof(buf), sigs, 2), 0);
	assert_int_equal(flt_dkim_authres(buf, 5, sigs, 0), 0);
}

static void
test_result_names(void **unused)
{
	assert_string_equal(flt_dkim_result_name(FLT_DKIM_NONE), "none");
	assert_string_equal(flt_dkim_result_name(FLT_DKIM_PASS), "pass");
	assert_string_equal(flt_dkim_result_name(FLT_DKIM_POLICY), "policy");
	assert_string_equal(flt_dkim_result_name(FLT_DKIM_TEMPERROR),
	                    "temperror");
	assert_string_equal(flt_dkim_result_name(FLT_DKIM_PERMERROR),
	                    "permerror");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_authres_table),
	    cmocka_unit_test(test_authres_too_small),
	    cmocka_unit_test(test_result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
