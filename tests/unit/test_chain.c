/* SPDX-License-Identifier: MIT */
/*
 * test_chain.c - the filter chain's bookkeeping: symbols (session ones
 * survive a transaction reset, duplicates count once, sorted output), the
 * score against the actions thresholds, hard verdicts over scores, and the
 * X-Spam-* headers in SpamAssassin's form with folding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "filter.h"

static struct px_config cfg;
static struct flt_session fs;

static void
add(struct flt_chain *c, enum flt_stage stage, const char *name, double score)
{
	struct flt_call call;

	memset(&call, 0, sizeof(call));
	call.chain = c;
	call.stage = stage;
	flt_symbol_add(&call, name, score);
}

static int
setup(void **state)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.actions.tag = 5.0;
	cfg.actions.tempfail = 10.0;
	cfg.actions.reject = 15.0;
	cfg.hostname = "mx.test";
	cfg.timeouts.filter = 1;
	memset(&fs, 0, sizeof(fs));
	fs.cfg = &cfg;
	return 0;
}

static void
test_symbols_and_reset(void **state)
{
	struct flt_chain *c = flt_chain_new(&fs);
	char buf[256];

	flt_chain_symbols(c, buf, sizeof(buf), "none");
	assert_string_equal(buf, "none");
	add(c, FLT_STAGE_HELO, "HELO_NOT_FQDN", 1.0);
	add(c, FLT_STAGE_RCPT, "ZED", 2.0);
	add(c, FLT_STAGE_EOM, "ALPHA", 0.5);
	add(c, FLT_STAGE_EOM, "ALPHA", 9.0); /* the first one stays */
	assert_int_equal(flt_chain_nsymbols(c), 3);
	assert_true(flt_chain_score(c) == 3.5);
	flt_chain_symbols(c, buf, sizeof(buf), "-");
	assert_string_equal(buf, "ALPHA,HELO_NOT_FQDN,ZED");
	/* A new transaction keeps what was learnt at connect/HELO. */
	flt_chain_reset_txn(c);
	flt_chain_symbols(c, buf, sizeof(buf), "-");
	assert_string_equal(buf, "HELO_NOT_FQDN");
	assert_true(flt_chain_score(c) == 1.0);
	flt_chain_free(&c);
	assert_null(c);
}

/* Facts the session sets itself (relay_networks, AUTH) are what filters
 * read, and a transaction reset keeps them (they are the session's). */
static void
test_session_facts(void **state)
{
	struct flt_chain *c = flt_chain_new(&fs);
	struct flt_call call;

	memset(&call, 0, sizeof(call));
	call.chain = c;
	assert_false(flt_fact_has(&call, FLT_FACT_RELAY));
	flt_chain_fact_set(c, FLT_FACT_RELAY);
	assert_true(flt_fact_has(&call, FLT_FACT_RELAY));
	assert_false(flt_fact_has(&call, FLT_FACT_AUTHENTICATED));
	flt_chain_fact_set(c, FLT_FACT_AUTHENTICATED);
	flt_chain_reset_txn(c);
	assert_true(flt_fact_has(&call, FLT_FACT_RELAY));
	assert_true(flt_fact_has(&call, FLT_FACT_AUTHENTICATED));
	assert_false(flt_fact_has(&call, FLT_FACT_DNSWL));
	flt_chain_free(&c);
}

static void
test_decide(void **state)
{
	static const struct {
		double score;
		enum flt_action hard;
		enum flt_action want;
	} rows[] = {
	    {0.0, FLT_CONTINUE, FLT_CONTINUE},
	    {4.9, FLT_CONTINUE, FLT_CONTINUE},
	    {5.0, FLT_CONTINUE, FLT_TAG},
	    {9.9, FLT_CONTINUE, FLT_TAG},
	    {10.0, FLT_CONTINUE, FLT_TEMPFAIL},
	    {15.0, FLT_CONTINUE, FLT_REJECT},
	    {-3.0, FLT_TAG, FLT_TAG},
	    {20.0, FLT_ACCEPT, FLT_ACCEPT}, /* a whitelist wins */
	    {0.0, FLT_REJECT, FLT_REJECT},  /* a hard verdict wins */
	    {0.0, FLT_TEMPFAIL, FLT_TEMPFAIL},
	    {16.0, FLT_TAG, FLT_REJECT},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct flt_chain *c = flt_chain_new(&fs);
		struct flt_verdict v;

		memset(&v, 0, sizeof(v));
		v.action = rows[i].hard;
		add(c, FLT_STAGE_EOM, "S", rows[i].score);
		assert_int_equal(flt_chain_decide(c, &v, &cfg), rows[i].want);
		flt_chain_free(&c);
	}
}

static void
test_spam_headers(void **state)
{
	struct flt_chain *c = flt_chain_new(&fs);
	char buf[4096];
	size_t n;

	n = flt_chain_spam_headers(c, false, &cfg, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_string_equal(buf, "X-Spam-Status: No, score=0.0 required=5.0 "
	                         "tests=none\r\nX-Spam-Score: 0.0\r\n");
	add(c, FLT_STAGE_EOM, "HELO_BARE_IP", 1.5);
	add(c, FLT_STAGE_EOM, "PREGREET", 6.0);
	flt_chain_spam_headers(c, true, &cfg, buf, sizeof(buf));
	assert_string_equal(
	    buf, "X-Spam-Status: Yes, score=7.5 required=5.0 "
	         "tests=HELO_BARE_IP,PREGREET\r\nX-Spam-Score: 7.5\r\n"
	         "X-Spam-Flag: YES\r\n");
	flt_chain_free(&c);

	/* Many symbols: every line stays within 78 characters, folded after
	 * a comma with a tab. */
	c = flt_chain_new(&fs);
	for (int i = 0; i < 40; i++) {
		char name[32];

		snprintf(name, sizeof(name), "SYMBOL_NUMBER_%02d", i);
		add(c, FLT_STAGE_EOM, name, 0.1);
	}
	flt_chain_spam_headers(c, false, &cfg, buf, sizeof(buf));
	int lines = 0;

	for (char *p = buf, *eol; (eol = strstr(p, "\r\n")) != NULL;
	     p = eol + 2) {
		assert_true(eol - p <= 78);
		if (p != buf && strncmp(p, "X-Spam-Score", 12) != 0)
			assert_int_equal(p[0], '\t');
		lines++;
	}
	assert_true(lines > 5);
	assert_non_null(strstr(
	    buf,
	    "tests=SYMBOL_NUMBER_00,\r\n\tSYMBOL_NUMBER_01,SYMBOL_NUMBER_02,"));
	assert_non_null(strstr(buf, ",\r\n\tSYMBOL_NUMBER_"));
	assert_non_null(
	    strstr(buf, "SYMBOL_NUMBER_39\r\nX-Spam-Score: 4.0\r\n"));
	flt_chain_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_symbols_and_reset, setup),
	    cmocka_unit_test_setup(test_decide, setup),
	    cmocka_unit_test_setup(test_session_facts, setup),
	    cmocka_unit_test_setup(test_spam_headers, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
