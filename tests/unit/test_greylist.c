/* SPDX-License-Identifier: MIT */
/*
 * test_greylist.c - the sender as a greylist triplet holds it: lower case,
 * BATV and SRS undone, digit runs of the local part folded, the null
 * sender, and inputs that look like those forms but are not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "greylist.h"

static void
check(const char *in, const char *want)
{
	char out[600];

	flt_greylist_sender(in, out, sizeof(out));
	assert_string_equal(out, want);
}

static void
test_plain(void **state)
{
	(void)state;
	check("Alice@Example.ORG", "alice@example.org");
	check("", "<>");
	check(NULL, "<>");
	check("postmaster", "postmaster");
}

static void
test_digits(void **state)
{
	(void)state;
	check("bounce-123-456@list.example", "bounce-#-#@list.example");
	check("u1@host2.example", "u#@host2.example"); /* domain kept */
	check("2024news@x.example", "#news@x.example");
}

static void
test_batv(void **state)
{
	(void)state;
	check("prvs=1234abcdef=news@list.example", "news@list.example");
	check("PRVS=0ABC=News@List.Example", "news@list.example");
	check("msprvs1=19ab=bob@corp.example", "bob@corp.example");
	check("btv1==1a2b3c==carol@corp.example", "carol@corp.example");
	/* Not BATV: kept (digits folded). */
	check("prvs=broken@x.example", "prvs=broken@x.example");
}

static void
test_srs(void **state)
{
	(void)state;
	check("SRS0=HHH1=TT=orig.example=alice@fwd.example",
	      "alice@orig.example");
	check("srs0=abcd=zz=orig.example=alice@fwd2.example",
	      "alice@orig.example");
	check("SRS1=XXX=fwd1.example==HHH=TT=orig.example=bob@fwd2.example",
	      "bob@orig.example");
	/* Too few fields: not SRS. */
	check("SRS0=only@fwd.example", "srs#=only@fwd.example");
}

static void
test_truncation(void **state)
{
	char out[8];

	(void)state;
	flt_greylist_sender("averylongsender@example.org", out, sizeof(out));
	assert_int_equal(strlen(out), 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain),      cmocka_unit_test(test_digits),
	    cmocka_unit_test(test_batv),       cmocka_unit_test(test_srs),
	    cmocka_unit_test(test_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
