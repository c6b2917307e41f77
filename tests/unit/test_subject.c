/* SPDX-License-Identifier: MIT */
/*
 * test_subject.c - subject_prefix: the header section found and rewritten,
 * the length to skip in the spool, a Subject added when missing, no double
 * prefix, and an unfinished header section in an incomplete read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "subject.h"

static void
test_subject_rewrite(void **state)
{
	static const struct {
		const char *in;
		int complete;
		const char *out; /* NULL: no rewrite possible */
		size_t skip;
	} cases[] = {
	    {"From: a\r\nSubject: hi\r\n\r\nbody\r\n", 1,
	     "From: a\r\nSubject: [SPAM] hi\r\n", 22},
	    {"Subject:hi\r\nTo: b\r\n\r\nbody", 1,
	     "Subject: [SPAM] hi\r\nTo: b\r\n", 19},
	    {"SUBJECT: =?utf-8?q?x?=\r\n\r\n", 1,
	     "SUBJECT: [SPAM] =?utf-8?q?x?=\r\n", 24},
	    {"Subject: [SPAM] hi\r\n\r\n", 1, "Subject: [SPAM] hi\r\n", 20},
	    {"From: a\r\n\r\nSubject: not a header\r\n", 1,
	     "From: a\r\nSubject: [SPAM]\r\n", 9},
	    {"From: a\r\nSubject: one\r\nSubject: two\r\n\r\n", 1,
	     "From: a\r\nSubject: [SPAM] one\r\nSubject: two\r\n", 37},
	    {"From: a\r\nX: y", 1, "From: a\r\nX: y\r\nSubject: [SPAM]\r\n",
	     13},
	    {"\r\nbody only\r\n", 1, "Subject: [SPAM]\r\n", 0},
	    {"From: a\r\nX: never ends", 0, NULL, 0},
	};

	/* A NUL in the header section (BINARYMIME): left alone, never cut. */
	{
		static const char nul[] = "Subject: a\0b\r\nX: y\r\n\r\nbody";
		size_t skip = 12345;

		assert_null(px_subject_rewrite(nul, sizeof(nul) - 1, 1,
		                               "[SPAM] ", &skip));
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t skip = 12345;
		char *out =
		    px_subject_rewrite(cases[i].in, strlen(cases[i].in),
		                       cases[i].complete, "[SPAM] ", &skip);

		if (cases[i].out == NULL) {
			assert_null(out);
			continue;
		}
		assert_non_null(out);
		assert_string_equal(out, cases[i].out);
		assert_int_equal(skip, cases[i].skip);
		free(out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_subject_rewrite),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
