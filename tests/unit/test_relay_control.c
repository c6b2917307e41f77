/* SPDX-License-Identifier: MIT */
/*
 * test_relay_control.c - the accepted-domain set (exact names, ".suffix"
 * subdomains, address literals, case, trailing dots, bad entries) and the
 * classification of RCPT mailboxes as px_cmd_parse leaves them, table by
 * table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "relay_control.h"

static struct px_domains *
make_set(void)
{
	static const char *const names[] = {
	    "example.test", "Other.TEST.",        ".sub.example.test",
	    "[192.0.2.1]",  "[IPv6:2001:db8::1]", "b.test",
	    "a.test",
	};
	struct px_domains *d = px_domains_new();
	const char *err;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_int_equal(px_domains_add(d, names[i], &err), 0);
	px_domains_seal(d);
	return d;
}

static void
test_match(void **state)
{
	static const struct {
		const char *domain;
		bool match;
	} rows[] = {
	    {"example.test", true},
	    {"EXAMPLE.TEST", true},
	    {"other.test", true},
	    {"a.test", true},
	    {"b.test", true},
	    {"c.test", false},
	    {"x.sub.example.test", true},
	    {"x.y.sub.example.test", true},
	    {"sub.example.test", false},
	    {"xsub.example.test", false},
	    {"x.example.test", false},
	    {"example.test.evil", false},
	    {"evilexample.test", false},
	    {"example.tes", false},
	    {"", false},
	    {"[192.0.2.1]", true},
	    {"[192.0.2.2]", false},
	    {"[IPv6:2001:db8:0::1]", true},
	    {"[ipv6:2001:DB8::1]", true},
	    {"[IPv6:::ffff:192.0.2.1]", false},
	    {"[192.0.2.1", false},
	};
	struct px_domains *d = make_set();

	(void)state;
	assert_int_equal(px_domains_count(d), 7);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		bool got =
		    px_domains_match(d, rows[i].domain, strlen(rows[i].domain));

		if (got != rows[i].match)
			fail_msg("%s: got %d", rows[i].domain, got);
	}
	/* A NUL inside the name never matches a prefix. */
	assert_false(px_domains_match(d, "a.test\0x", 8));
	px_domains_free(&d);
	assert_null(d);
	px_domains_free(&d);
}

static void
test_bad_entries(void **state)
{
	static const char *const bad[] = {
	    "",
	    ".",
	    "..example.test",
	    "exa mple.test",
	    "a..b",
	    "a_b.test",
	    "[300.1.1.1]",
	    "[IPv6:zz]",
	    "[]",
	    "example.test..",
	};
	struct px_domains *d = px_domains_new();

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err = NULL;

		if (px_domains_add(d, bad[i], &err) != -1 || err == NULL)
			fail_msg("accepted bad entry \"%s\"", bad[i]);
	}
	assert_int_equal(px_domains_count(d), 0);
	px_domains_free(&d);
}

static void
test_classify(void **state)
{
	static const struct {
		const char *addr;
		enum px_rcpt_class want;
	} rows[] = {
	    {"user@example.test", PX_RCPT_LOCAL},
	    {"User.Name@Example.Test", PX_RCPT_LOCAL},
	    {"\"john smith\"@example.test", PX_RCPT_LOCAL},
	    {"postmaster", PX_RCPT_LOCAL},
	    {"PostMaster", PX_RCPT_LOCAL},
	    {"user@x.sub.example.test", PX_RCPT_LOCAL},
	    {"user@[192.0.2.1]", PX_RCPT_LOCAL},
	    {"user@evil.test", PX_RCPT_FOREIGN},
	    {"postmaster@evil.test", PX_RCPT_FOREIGN},
	    {"user%example.test@evil.test", PX_RCPT_FOREIGN},
	    {"user%evil.test@example.test", PX_RCPT_ROUTING},
	    {"evil.test!user@example.test", PX_RCPT_ROUTING},
	    {"\"user@evil.test\"@example.test", PX_RCPT_ROUTING},
	    {"\"user\\@evil.test\"@example.test", PX_RCPT_ROUTING},
	    {"user%40evil.test@example.test", PX_RCPT_ROUTING},
	    {"user@[192.0.2.9]", PX_RCPT_LITERAL},
	    {"user@[IPv6:::1]", PX_RCPT_LITERAL},
	    {"user", PX_RCPT_UNPARSEABLE},
	    {"user@", PX_RCPT_UNPARSEABLE},
	    {"", PX_RCPT_UNPARSEABLE},
	};
	struct px_domains *d = make_set();

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum px_rcpt_class got =
		    px_rcpt_classify(d, rows[i].addr, strlen(rows[i].addr));

		if (got != rows[i].want)
			fail_msg("%s: got %s, want %s", rows[i].addr,
			         px_rcpt_class_name(got),
			         px_rcpt_class_name(rows[i].want));
	}
	px_domains_free(&d);
}

static void
test_empty_set(void **state)
{
	struct px_domains *d = px_domains_new();

	(void)state;
	px_domains_seal(d);
	assert_int_equal(px_rcpt_classify(d, "a@example.test", 14),
	                 PX_RCPT_FOREIGN);
	assert_int_equal(px_rcpt_classify(NULL, "a@example.test", 14),
	                 PX_RCPT_FOREIGN);
	assert_int_equal(px_rcpt_classify(d, "postmaster", 10), PX_RCPT_LOCAL);
	px_domains_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_bad_entries),
	    cmocka_unit_test(test_classify),
	    cmocka_unit_test(test_empty_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
