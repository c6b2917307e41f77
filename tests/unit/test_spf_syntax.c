/* SPDX-License-Identifier: MIT */
/*
 * test_spf_syntax.c - tests of the SPF record checker (filters/spf_syntax.c):
 * record selection (RFC 7208 4.5), the section 12 grammar (a table of
 * records, each a permerror or the exact record handed to libspf2), the
 * rewrites (/0, a/0, redirect with all, unknown modifiers, macro DIGITs
 * against the part counts of their values), explanation strings, and the
 * check_host() domain rule (4.3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spf_syntax.h"

struct rec_case {
	const char *in;
	bool v6;
	const char *out; /* NULL: permerror */
};

static const struct rec_case rec_cases[] = {
    {"v=spf1", false, "v=spf1"},
    {"v=spf1 -all", false, "v=spf1 -all"},
    {"V=SPF1 MX:Example.COM/24 -ALL", false, "v=spf1 mx:Example.COM/24 -all"},
    {"v=spf1   ip4:1.2.3.4   ~all  ", false, "v=spf1 ip4:1.2.3.4 ~all"},
    {"v=spf1 ip4:1.2.3.0/24 ip6:2001:db8::/32 -all", false,
     "v=spf1 ip4:1.2.3.0/24 ip6:2001:db8::/32 -all"},
    /* /0: libspf2 reads it as "no prefix". */
    {"v=spf1 ip4:1.1.1.1/0 -all", false,
     "v=spf1 ip4:0.0.0.0/1 ip4:128.0.0.0/1 -all"},
    {"v=spf1 ?ip6:::/0", false, "v=spf1 ?ip6:::/1 ?ip6:8000::/1"},
    {"v=spf1 a/0 -all", false, "v=spf1 exists:%{d} -all"},
    {"v=spf1 -a:x.example/0//64", false, "v=spf1 -exists:x.example"},
    {"v=spf1 a/0 -all", true, "v=spf1 a -all"},
    {"v=spf1 a:x.example/0//64", true, "v=spf1 a:x.example//64"},
    {"v=spf1 a//0 -all", false, "v=spf1 a -all"},
    {"v=spf1 mx/24//64", false, "v=spf1 mx/24//64"},
    {"v=spf1 mx/0 -all", false, "v=spf1 mx:%{d}.mxguard-any.invalid -all"},
    {"v=spf1 mx:x.example//0", false, "v=spf1 mx:x.example"},
    {"v=spf1 ~mx:x.example/24//0", true,
     "v=spf1 ~mx:x.example.mxguard-any.invalid"},
    {"v=spf1 a:x.example.//0", true, "v=spf1 a:x.example.mxguard-any.invalid"},
    /* Modifiers: unknown dropped, redirect last or gone. */
    {"v=spf1 x-7_.y=%{s} +all", false, "v=spf1 +all"},
    {"v=spf1 redirect=r.example ip4:1.2.3.4", false,
     "v=spf1 ip4:1.2.3.4 redirect=r.example"},
    {"v=spf1 -all redirect=r.example", false, "v=spf1 -all"},
    {"v=spf1 exp=e.example -all", false, "v=spf1 -all exp=e.example"},
    {"v=spf1 a=b", false, "v=spf1"},
    /* Domain-spec ends. */
    {"v=spf1 a:foo.example.", false, "v=spf1 a:foo.example."},
    {"v=spf1 a:%{d}", false, "v=spf1 a:%{d}"},
    {"v=spf1 a:x.%{d}", false, "v=spf1 a:x.%{d}"},
    {"v=spf1 a:e.ex-ample", false, "v=spf1 a:e.ex-ample"},
    {"v=spf1 exists:%{ir}.%{v}._spf.%{d2}", false,
     "v=spf1 exists:%{ir}.%{v}._spf.%{d2}"},
    {"v=spf1 exists:%%%_%-.x.example", false, "v=spf1 exists:%%%_%-.x.example"},
    {"v=spf1 exists:%{l1r-}.x.example", false,
     "v=spf1 exists:%{l1r-}.x.example"},
    /* No env: DIGITs above 128 mean "all". */
    {"v=spf1 exists:%{d99999999999}.x.example", false,
     "v=spf1 exists:%{d}.x.example"},
    {"v=spf1 exists:%{d0128}.x.example", false,
     "v=spf1 exists:%{d128}.x.example"},
    /* Permerrors. */
    {"v=spf1 -all foo=%abc", false, NULL},
    {"v=spf1 1x=foo", false, NULL},
    {"v=spf1 x:y=foo", false, NULL},
    {"v=spf1 redirect:r.example", false, NULL},
    {"v=spf1 -redirect=r.example", false, NULL},
    {"v=spf1 redirect=a.example redirect=b.example", false, NULL},
    {"v=spf1 exp=a.example exp=b.example", false, NULL},
    {"v=spf1 exp=", false, NULL},
    {"v=spf1 redirect=", false, NULL},
    {"v=spf1 a:foo", false, NULL},
    {"v=spf1 a:museum.", false, NULL},
    {"v=spf1 a:1.2.3.4", false, NULL},
    {"v=spf1 a:foo.-bad", false, NULL},
    {"v=spf1 a:foo.bad-", false, NULL},
    {"v=spf1 a:", false, NULL},
    {"v=spf1 a:x.example:", false, NULL},
    {"v=spf1 a/33", false, NULL},
    {"v=spf1 a//129", false, NULL},
    {"v=spf1 a/024", false, NULL},
    {"v=spf1 a/24/64", false, NULL},
    {"v=spf1 include", false, NULL},
    {"v=spf1 include:", false, NULL},
    {"v=spf1 include:x.example/24", false, NULL},
    {"v=spf1 exists", false, NULL},
    {"v=spf1 ptr/0", false, NULL},
    {"v=spf1 ptr:", false, NULL},
    {"v=spf1 -all.", false, NULL},
    {"v=spf1 -all:x", false, NULL},
    {"v=spf1 -all/8", false, NULL},
    {"v=spf1 - -all", false, NULL},
    {"v=spf1 foo", false, NULL},
    {"v=spf1 ip4", false, NULL},
    {"v=spf1 ip4:1.2.3", false, NULL},
    {"v=spf1 ip4:01.2.3.4", false, NULL},
    {"v=spf1 ip4:256.2.3.4", false, NULL},
    {"v=spf1 ip4:1.2.3.4:25", false, NULL},
    {"v=spf1 ip4:1.2.3.4/33", false, NULL},
    {"v=spf1 ip4:1.2.3.4/032", false, NULL},
    {"v=spf1 ip4:1.2.3.4//32", false, NULL},
    {"v=spf1 ip6", false, NULL},
    {"v=spf1 ip6:1:2::3::4", false, NULL},
    {"v=spf1 ip6:::1/129", false, NULL},
    {"v=spf1 ip6:::1/-1", false, NULL},
    {"v=spf1 exists:%{z}.x.example", false, NULL},
    {"v=spf1 exists:%{d0}.x.example", false, NULL},
    {"v=spf1 exists:50%.x.example", false, NULL},
    {"v=spf1 exists:%{d.x.example", false, NULL},
    {"v=spf1 exists:%{d*}.x.example", false, NULL},
    {"v=spf1 exists:%{c}.x.example", false, NULL},
    {"v=spf1 exists:%{t}.x.example", false, NULL},
    {"v=spf1 exists:%x.x.example", false, NULL},
    {"v=spf1 -all \xc3\xa9", false, NULL},
    {"v=spf1 -all\r", false, NULL},
    {"v=spf1\t-all", false, NULL},
};

static void
test_records(void **state)
{
	for (size_t i = 0; i < sizeof(rec_cases) / sizeof(rec_cases[0]); i++) {
		const struct rec_case *c = &rec_cases[i];
		size_t len = strlen(c->in);
		char out[4 * 128 + 64];
		const char *why = NULL;
		int rc;

		assert_true(4 * len + 64 <= sizeof(out));
		rc = flt_spf_record_check(c->in, len, c->v6, NULL, out,
		                          sizeof(out), &why);
		if (c->out == NULL) {
			if (rc != -1)
				fail_msg("%s: accepted as \"%s\"", c->in, out);
			assert_non_null(why);
		} else {
			if (rc != 0)
				fail_msg("%s: refused (%s)", c->in, why);
			assert_string_equal(out, c->out);
		}
	}
}

static void
test_nul_inside(void **state)
{
	static const char rec[] = "v=spf1 -all\0+all";
	char out[256];
	const char *why;

	assert_int_equal(flt_spf_record_check(rec, sizeof(rec) - 1, false, NULL,
	                                      out, sizeof(out), &why),
	                 -1);
}

/* The rewrite grows a record at most fourfold. */
static void
test_output_bound(void **state)
{
	char rec[6 + 4 * 200 + 1], out[4 * sizeof(rec) + 64];
	size_t n = 6;
	const char *why;

	memcpy(rec, "v=spf1", 6);
	while (n + 4 < sizeof(rec)) {
		memcpy(rec + n, " a/0", 4);
		n += 4;
	}
	rec[n] = '\0';
	assert_int_equal(
	    flt_spf_record_check(rec, n, false, NULL, out, 4 * n + 64, &why),
	    0);
	/* Too small a buffer is refused, never overrun. */
	assert_int_equal(
	    flt_spf_record_check(rec, n, false, NULL, out, 32, &why), -1);
}

/* DIGITs against the part counts of the values (the libspf2 bug). */
static void
test_digits_env(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"v=spf1 exists:%{d3}.x.example", "v=spf1 exists:%{d}.x.example"},
	    {"v=spf1 exists:%{d2}.x.example", "v=spf1 exists:%{d2}.x.example"},
	    {"v=spf1 exists:%{d4r}.x.example", "v=spf1 exists:%{dr}.x.example"},
	    {"v=spf1 exists:%{l2-}.x.example", "v=spf1 exists:%{l-}.x.example"},
	    {"v=spf1 exists:%{l1r-}.x.example",
	     "v=spf1 exists:%{l1r-}.x.example"},
	    {"v=spf1 exists:%{l1}.x.example", "v=spf1 exists:%{l}.x.example"},
	    {"v=spf1 exists:%{i3}.x.example", "v=spf1 exists:%{i3}.x.example"},
	    {"v=spf1 exists:%{i4}.x.example", "v=spf1 exists:%{i}.x.example"},
	    {"v=spf1 exists:%{p1}.x.example", "v=spf1 exists:%{p}.x.example"},
	    {"v=spf1 exists:%{h1}.x.example", "v=spf1 exists:%{h}.x.example"},
	};
	struct flt_spf_macro_env env;

	memset(&env, 0, sizeof(env));
	env.values['d' - 'a'] = "a.b.c";
	env.values['l' - 'a'] = "strong-bad";
	env.values['i' - 'a'] = "1.2.3.4";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		const char *why;

		assert_int_equal(
		    flt_spf_record_check(cases[i].in, strlen(cases[i].in),
		                         false, &env, out, sizeof(out), &why),
		    0);
		assert_string_equal(out, cases[i].out);
	}
}

static void
test_explain(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"%{i} is not one of %{d}'s designated mail servers.",
	     "%{i} is not one of %{d}'s designated mail servers."},
	    {"See http://%{d}/why.html?s=%{S}&i=%{C}",
	     "See http://%{d}/why.html?s=%{S}&i=%{C}"},
	    {"  two  spaces  ", "  two  spaces  "},
	    {"client %{c} at %{t} by %{r}", "client %{c} at %{t} by %{r}"},
	    {"%{c9}", "%{c}"},
	    {"bad %{z} macro", NULL},
	    {"trailing %", NULL},
	    {"tab\there", NULL},
	};
	struct flt_spf_macro_env env;

	memset(&env, 0, sizeof(env));
	env.values['c' - 'a'] = "1.2.3.4";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		int rc = flt_spf_explain_check(cases[i].in, strlen(cases[i].in),
		                               &env, out, sizeof(out));

		if (cases[i].out == NULL) {
			assert_int_equal(rc, -1);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(out, cases[i].out);
		}
	}
}

/* RFC 7208 7.4's examples, through our expander. */
static void
test_expand(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"%{s}", "strong-bad@email.example.com"},
	    {"%{o}", "email.example.com"},
	    {"%{d}", "email.example.com"},
	    {"%{d4}", "email.example.com"},
	    {"%{d3}", "email.example.com"},
	    {"%{d2}", "example.com"},
	    {"%{d1}", "com"},
	    {"%{dr}", "com.example.email"},
	    {"%{d2r}", "example.email"},
	    {"%{l}", "strong-bad"},
	    {"%{l-}", "strong.bad"},
	    {"%{lr}", "strong-bad"},
	    {"%{lr-}", "bad.strong"},
	    {"%{l1r-}", "strong"},
	    {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
	    {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
	    {"%{d2}.trusted-domains.example.net",
	     "example.com.trusted-domains.example.net"},
	    {"%{S} at %{C}: %%%_%-", "strong-bad%40email.example.com at "
	                             "192.0.2.3: % %20"},
	    {"%{p}", "unknown"},
	};
	struct flt_spf_macro_env env;

	memset(&env, 0, sizeof(env));
	env.values['s' - 'a'] = "strong-bad@email.example.com";
	env.values['o' - 'a'] = "email.example.com";
	env.values['d' - 'a'] = "email.example.com";
	env.values['l' - 'a'] = "strong-bad";
	env.values['i' - 'a'] = "192.0.2.3";
	env.values['c' - 'a'] = "192.0.2.3";
	env.values['v' - 'a'] = "in-addr";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];

		assert_int_equal(flt_spf_explain_check(cases[i].in,
		                                       strlen(cases[i].in),
		                                       NULL, out, sizeof(out)),
		                 0);
		assert_int_equal(
		    flt_spf_explain_expand(cases[i].in, &env, out, sizeof(out)),
		    0);
		assert_string_equal(out, cases[i].out);
	}
}

static void
test_is_spf(void **state)
{
	assert_true(flt_spf_record_is_spf("v=spf1", 6));
	assert_true(flt_spf_record_is_spf("V=Spf1 -all", 11));
	assert_false(flt_spf_record_is_spf("v=spf10", 7));
	assert_false(flt_spf_record_is_spf("v=spf1mx", 8));
	assert_false(flt_spf_record_is_spf("v=spf", 5));
	assert_false(flt_spf_record_is_spf(" v=spf1", 7));
	assert_false(flt_spf_record_is_spf("v=spf1\t-all", 11));
}

static void
test_domain_ok(void **state)
{
	char label63[80], label64[80];

	memset(label63, 'a', 63);
	strcpy(label63 + 63, ".example");
	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".example");
	assert_true(flt_spf_domain_ok("example.com"));
	assert_true(flt_spf_domain_ok("example.com."));
	assert_true(flt_spf_domain_ok(label63));
	assert_false(flt_spf_domain_ok(label64));
	assert_false(flt_spf_domain_ok("example"));
	assert_false(flt_spf_domain_ok("a..example"));
	assert_false(flt_spf_domain_ok(".example.com"));
	assert_false(flt_spf_domain_ok(""));
	assert_false(flt_spf_domain_ok("exa mple.com"));
	assert_false(flt_spf_domain_ok("ex\x01mple.com"));
	assert_false(flt_spf_domain_ok("caf\xc3\xa9.example"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_records),
	    cmocka_unit_test(test_nul_inside),
	    cmocka_unit_test(test_output_bound),
	    cmocka_unit_test(test_digits_env),
	    cmocka_unit_test(test_explain),
	    cmocka_unit_test(test_expand),
	    cmocka_unit_test(test_is_spf),
	    cmocka_unit_test(test_domain_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
