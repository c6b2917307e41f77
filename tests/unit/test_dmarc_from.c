/* SPDX-License-Identifier: MIT */
/*
 * test_dmarc_from.c - the From domain DMARC evaluates
 * (filters/dmarc_from.c): a table of header sections and the domain, or
 * the reason there is none (RFC 7489 6.6.1); a buffer too small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dmarc_from.h"

static const struct {
	const char *msg;
	const char *domain; /* NULL: none */
	const char *why;
} cases[] = {
    {"From: a@example.com\r\n\r\nbody", "example.com", NULL},
    {"From: Alice <alice@Example.COM.>\r\n\r\n", "example.com", NULL},
    {"from :<a@example.com>\r\n\r\n", "example.com", NULL},
    {"Subject: x\r\nFROM: \"Bob <b@evil.test>, \" <b@example.com>\r\n\r\n",
     "example.com", NULL},
    {"From: (c@evil.test) <b@example.com> (x, y@evil.test)\r\n\r\n",
     "example.com", NULL},
    {"From: Bob\r\n <b@example.com>\r\n\r\n", "example.com", NULL},
    {"From: a@example.com, b@EXAMPLE.com\r\n\r\n", "example.com", NULL},
    {"From: team: a@example.com, b@example.com;\r\n\r\n", "example.com", NULL},
    {"From: a@example.com\nTo: b@x.test\n\nFrom: c@evil.test\n", "example.com",
     NULL},
    {"From: a@example.com", "example.com", NULL},
    {"From-Name: x\r\nFrom: a@example.com\r\n\r\n", "example.com", NULL},
    {"From: a@example.com\r\nFrom: b@example.com\r\n\r\n", NULL,
     "multiple From fields"},
    {"From: a@example.com, b@other.test\r\n\r\n", NULL,
     "From addresses in several domains"},
    {"To: a@example.com\r\n\r\nFrom: a@example.com\r\n", NULL, "no From field"},
    {"", NULL, "no From field"},
    {"\r\nFrom: a@example.com\r\n", NULL, "no From field"},
    {"From: undisclosed-recipients:;\r\n\r\n", NULL, "no From address"},
    {"From: nobody\r\n\r\n", NULL, "unreadable From address"},
    {"From: a@\r\n\r\n", NULL, "unreadable From address"},
    {"From: a@ example.com \r\n\r\n", "example.com", NULL},
    {"From: a@exa mple.com\r\n\r\n", NULL, "unreadable From address"},
    {"From: a@ex!ample.com\r\n\r\n", NULL, "unreadable From address"},
    {"From: a@.example.com\r\n\r\n", NULL, "unreadable From address"},
    {"From: a@example..com\r\n\r\n", NULL, "unreadable From address"},
    {"From: <a@example.com\r\n\r\n", NULL, "unreadable From address"},
};

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char from[256];
		const char *why = NULL;
		int rc = flt_dmarc_from(cases[i].msg, strlen(cases[i].msg),
		                        from, sizeof(from), &why);

		if (cases[i].domain != NULL) {
			if (rc != 0 || strcmp(from, cases[i].domain) != 0)
				fail_msg("case %zu: rc %d from '%s' why %s", i,
				         rc, from, why ? why : "-");
		} else if (rc != -1 || why == NULL ||
		           strcmp(why, cases[i].why) != 0 || from[0] != 0) {
			fail_msg("case %zu: rc %d from '%s' why %s", i, rc,
			         from, why ? why : "-");
		}
	}
}

static void
test_small_buffer(void **state)
{
	char from[16];
	const char *why;
	static const char msg[] = "From: a@example.com\r\n\r\n";

	(void)state;
	assert_int_equal(flt_dmarc_from(msg, strlen(msg), from, 8, &why), -1);
	assert_string_equal(from, "");
	assert_int_equal(flt_dmarc_from(msg, strlen(msg), from, 12, &why), 0);
	assert_string_equal(from, "example.com");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_small_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
