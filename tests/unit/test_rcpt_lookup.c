/* SPDX-License-Identifier: MIT */
/*
 * test_rcpt_lookup.c - which table decides about a recipient
 * (rcpt_lookup.h): recipients_file entries and catch-alls, domains the file
 * does not name, postmaster, lower case; with recipients_redis the domains
 * it verifies (its list, else every accepted domain) go to the store, here
 * the memory store, which keeps no sets, so they come back as lookup
 * errors (the session's 451 4.3.0) while the others are answered as
 * before.  The Redis answers themselves are tests/e2e/test_recipients.py's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rcpt_lookup.h"
#include "recipients.h"
#include "relay_control.h"
#include "store.h"

struct answer {
	int calls;
	int known;
	const char *source;
};

static void
got(void *arg, int known, const char *source, const char *error)
{
	struct answer *a = arg;

	(void)error;
	a->calls++;
	a->known = known;
	a->source = source;
}

static struct px_config cfg;

static struct answer
ask(const char *rcpt)
{
	struct answer a = {0, 0, NULL};
	struct px_rcpt_lookup *req = (struct px_rcpt_lookup *)&a;

	/* Answered at once: no Redis here. */
	assert_int_equal(px_rcpt_lookup(NULL, &cfg, rcpt, got, &a, &req), 1);
	assert_null(req);
	assert_int_equal(a.calls, 1);
	return a;
}

static const struct {
	const char *rcpt;
	int file_only;  /* recipients_file alone */
	int with_redis; /* and recipients_redis on every accepted domain */
	int listed;     /* recipients_redis with domains = [ "b.example" ] */
} cases[] = {
    {"alice@a.example", PX_RCPT_KNOWN, PX_RCPT_KNOWN, PX_RCPT_KNOWN},
    {"ALICE@A.Example", PX_RCPT_KNOWN, PX_RCPT_KNOWN, PX_RCPT_KNOWN},
    {"bob@a.example", PX_RCPT_UNKNOWN, PX_RCPT_LOOKUP_ERROR, PX_RCPT_UNKNOWN},
    {"anyone@all.example", PX_RCPT_KNOWN, PX_RCPT_KNOWN, PX_RCPT_KNOWN},
    {"carol@b.example", PX_RCPT_NOT_VERIFIED, PX_RCPT_LOOKUP_ERROR,
     PX_RCPT_LOOKUP_ERROR},
    {"postmaster@b.example", PX_RCPT_NOT_VERIFIED, PX_RCPT_KNOWN,
     PX_RCPT_KNOWN},
    {"Postmaster@A.example", PX_RCPT_KNOWN, PX_RCPT_KNOWN, PX_RCPT_KNOWN},
    {"postmaster", PX_RCPT_NOT_VERIFIED, PX_RCPT_NOT_VERIFIED,
     PX_RCPT_NOT_VERIFIED},
    {"dave@foreign.example", PX_RCPT_NOT_VERIFIED, PX_RCPT_NOT_VERIFIED,
     PX_RCPT_NOT_VERIFIED},
    {"x@sub.c.example", PX_RCPT_NOT_VERIFIED, PX_RCPT_LOOKUP_ERROR,
     PX_RCPT_NOT_VERIFIED},
};

static void
test_tables(void **state)
{
	const char *err;
	struct px_domains *listed = px_domains_new();

	(void)state;
	assert_int_equal(px_domains_add(listed, "b.example", &err), 0);
	px_domains_seal(listed);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct answer a;

		cfg.recipients_redis_key = NULL;
		cfg.recipients_redis_domains = NULL;
		a = ask(cases[i].rcpt);
		assert_int_equal(a.known, cases[i].file_only);
		cfg.recipients_redis_key = (char *)"set";
		a = ask(cases[i].rcpt);
		assert_int_equal(a.known, cases[i].with_redis);
		if (a.known == PX_RCPT_LOOKUP_ERROR)
			assert_string_equal(a.source, "redis");
		cfg.recipients_redis_domains = listed;
		a = ask(cases[i].rcpt);
		assert_int_equal(a.known, cases[i].listed);
	}
	cfg.recipients_redis_domains = NULL;
	px_domains_free(&listed);
}

int
main(void)
{
	const char *err;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tables),
	};
	int rc;

	cfg.store = (char *)"memory";
	cfg.store_prefix = (char *)"t:";
	cfg.store_memory_max = 1 << 20;
	cfg.store_timeout = 1.0;
	assert_int_equal(st_open(&cfg, &err), 0);
	cfg.accepted = px_domains_new();
	px_domains_add(cfg.accepted, "a.example", &err);
	px_domains_add(cfg.accepted, "b.example", &err);
	px_domains_add(cfg.accepted, "all.example", &err);
	px_domains_add(cfg.accepted, ".c.example", &err);
	px_domains_seal(cfg.accepted);
	cfg.recipients = px_rcptset_new();
	px_rcptset_add(cfg.recipients, "alice@a.example", &err);
	px_rcptset_add(cfg.recipients, "@all.example", &err);
	px_rcptset_seal(cfg.recipients);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	px_rcptset_free(&cfg.recipients);
	px_domains_free(&cfg.accepted);
	st_close();
	return rc;
}
