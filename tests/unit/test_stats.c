/* SPDX-License-Identifier: MIT */
/*
 * test_stats.c - the status page's data (proxy/stats.c): totals and
 * per-minute counts by verdict, rejected networks (/24, /64) and sender
 * domains (lower case, "<>" for the null sender), log values decoded back
 * to text and escaped as JSON (no markup gets through), the ring of the
 * last PX_STATS_RECENT transactions newest first, bounded top tables
 * under a flood of distinct names, and the health states.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* render - one of the JSON documents as a string (caller frees). */
static char *
render(bool history)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	if (history)
		px_stats_render_history(b);
	else
		px_stats_render_stats(b, NULL);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static void
txn(unsigned n, const char *ip, const char *from, const char *result,
    const char *symbols, const char *reply, const char *backend)
{
	px_stats_txn(&(struct px_stats_txn){.sid = 0xabc,
	                                    .n = n,
	                                    .client_ip = ip,
	                                    .from = from,
	                                    .nrcpt = 1,
	                                    .result = result,
	                                    .score = 2.5,
	                                    .symbols = symbols,
	                                    .reply = reply,
	                                    .backend = backend});
}

/* Without a metrics listener nothing is kept. */
static void
test_stats_disabled(void **state)
{
	char *s;

	px_stats_reset();
	px_stats_enable(false);
	txn(1, "192.0.2.7", "a@b.example", "reject", "X", "-", "\"250 ok\"");
	px_stats_health(PX_STATS_DNS, false, "timeout");
	px_stats_enable(true);
	s = render(false);
	assert_non_null(strstr(s, "\"transactions\":{\"accept\":0,\"tag\":0,"
	                          "\"reject\":0,"));
	assert_non_null(strstr(s, "\"top_symbols\":[],"));
	assert_non_null(strstr(s, "\"dns\":{\"state\":\"unknown\""));
	assert_non_null(strstr(s, "\"backend\":{\"state\":\"unknown\""));
	free(s);
}

static void
test_stats_known_traffic(void **state)
{
	char *s, *h;

	px_stats_reset();
	txn(1, "192.0.2.7", "a@b.example", "accept", "-", "-",
	    "\"250 2.0.0 Ok: queued as 1\"");
	txn(2, "192.0.2.55", "\"<script>x\"@A.Example", "reject",
	    "<b>SYM</b>,RULE_X", "\"550 5.7.1 say \\x22hi\\x22 \\xc3\\xa9\"",
	    "-");
	txn(3, "2001:db8:1:2::5", "", "reject", "RULE_X", "-", "-");
	txn(4, "198.51.100.1", NULL, "weird", "-", NULL, NULL);
	s = render(false);
	assert_non_null(strstr(s, "\"transactions\":{\"accept\":1,\"tag\":0,"
	                          "\"reject\":2,\"tempfail\":0,\"abort\":0,"
	                          "\"error\":0,\"other\":1}"));
	assert_non_null(strstr(
	    s,
	    "\"top_symbols\":[{\"name\":\"RULE_X\",\"count\":2},"
	    "{\"name\":\"\\u003cb\\u003eSYM\\u003c/b\\u003e\",\"count\":1}]"));
	assert_non_null(
	    strstr(s, "\"top_rejected_networks\":["
	              "{\"name\":\"192.0.2.0/24\",\"count\":1},"
	              "{\"name\":\"2001:db8:1:2::/64\",\"count\":1}]"));
	assert_non_null(strstr(s, "\"top_rejected_domains\":["
	                          "{\"name\":\"\\u003c\\u003e\",\"count\":1},"
	                          "{\"name\":\"a.example\",\"count\":1}]"));
	/* The backend answered once: it is up. */
	assert_non_null(strstr(s, "\"backend\":{\"state\":\"ok\",\"ok\":1,"
	                          "\"errors\":0,"));
	assert_non_null(strstr(s, "\"dns\":{\"state\":\"unknown\""));
	assert_null(strchr(s, '<'));
	free(s);

	h = render(true);
	/* Newest first; the quoted local part and the markup stay text. */
	assert_non_null(strstr(h, "\"transactions\":[{\"time\":"));
	assert_true(strstr(h, "\"id\":\"0000000000000abc.4\"") <
	            strstr(h, "\"id\":\"0000000000000abc.1\""));
	assert_non_null(
	    strstr(h, "\"from\":\"\\\"\\u003cscript\\u003ex\\\"@A.Example\""));
	assert_non_null(strstr(h, "\"reply\":\"550 5.7.1 say \\\"hi\\\" "
	                          "\xc3\xa9\",\"backend\":null}"));
	assert_non_null(strstr(h, "\"backend\":\"250 2.0.0 Ok: queued as 1\""));
	assert_non_null(strstr(h, "\"from\":null,\"nrcpt\":1,"
	                          "\"result\":\"other\",\"score\":2.5,"
	                          "\"symbols\":[],\"reply\":null,"
	                          "\"backend\":null}"));
	assert_non_null(strstr(h, "\"symbols\":[\"\\u003cb\\u003eSYM"
	                          "\\u003c/b\\u003e\",\"RULE_X\"]"));
	assert_null(strchr(h, '<'));
	free(h);
}

/* Sixty minutes, the current one last, summing to what was recorded. */
static void
test_stats_minutes(void **state)
{
	char *h, *p;
	unsigned minutes = 0, accepted = 0;

	px_stats_reset();
	for (unsigned i = 0; i < 7; i++)
		txn(i + 1, "192.0.2.1", "a@b.example", "accept", "-", "-", "-");
	h = render(true);
	for (p = h; (p = strstr(p, "\"start\":")) != NULL; p++) {
		unsigned a;

		minutes++;
		assert_int_equal(
		    sscanf(strstr(p, "\"accept\":"), "\"accept\":%u", &a), 1);
		accepted += a;
	}
	assert_int_equal(minutes, PX_STATS_MINUTES);
	assert_int_equal(accepted, 7);
	free(h);
}

static void
test_stats_ring(void **state)
{
	char *h, *p;
	unsigned n = 0;

	px_stats_reset();
	for (unsigned i = 1; i <= 150; i++)
		txn(i, "192.0.2.1", "a@b.example", "tag", "-", "-", "-");
	h = render(true);
	for (p = h; (p = strstr(p, "\"id\":")) != NULL; p++)
		n++;
	assert_int_equal(n, PX_STATS_RECENT);
	assert_non_null(strstr(h, "\"transactions\":[{\"time\":"));
	p = strstr(h, "\"transactions\":[");
	assert_non_null(strstr(p, "\"id\":\"0000000000000abc.150\""));
	assert_non_null(strstr(p, "\"id\":\"0000000000000abc.51\""));
	assert_null(strstr(p, "\"id\":\"0000000000000abc.50\""));
	assert_true(strstr(p, ".150\"") < strstr(p, ".149\""));
	free(h);
}

/* A flood of distinct sender domains: memory stays fixed and the one
 * domain that matters is still on top with its exact count. */
static void
test_stats_top_bounded(void **state)
{
	char from[64], *s;

	px_stats_reset();
	for (unsigned i = 0; i < 5; i++)
		txn(i + 1, "192.0.2.1", "x@spam.example", "reject", "-", "-",
		    "-");
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(from, sizeof(from), "x@d%u.example", i);
		txn(i + 10, "192.0.2.1", from, "reject", "-", "-", "-");
	}
	s = render(false);
	assert_non_null(strstr(s, "\"top_rejected_domains\":[{\"name\":"
	                          "\"spam.example\",\"count\":5},"));
	assert_non_null(strstr(s, "\"top_rejected_networks\":[{\"name\":"
	                          "\"192.0.2.0/24\",\"count\":1005}]"));
	free(s);
}

/* More symbols than a ring entry holds: the cut one is dropped, never
 * counted or shown half. */
static void
test_stats_symbols_cut(void **state)
{
	char syms[1024] = "", *h, *p, *end;
	unsigned shown = 0;

	px_stats_reset();
	for (unsigned i = 0; i < 60; i++)
		snprintf(syms + strlen(syms), sizeof(syms) - strlen(syms),
		         "%sSYMBOL_%03u", i ? "," : "", i);
	txn(1, "192.0.2.1", "a@b.example", "tag", syms, "-", "-");
	h = render(true);
	p = strstr(h, "\"symbols\":[");
	assert_non_null(p);
	end = strchr(p, ']');
	/* Every name in the array whole: "SYMBOL_NNN". */
	for (p += strlen("\"symbols\":["); p < end; shown++) {
		char *q;

		assert_int_equal(*p, '"');
		q = strchr(p + 1, '"');
		assert_int_equal(q - p - 1, 10);
		assert_memory_equal(p + 1, "SYMBOL_", 7);
		p = q + 1;
		if (*p == ',')
			p++;
	}
	assert_true(shown > 0 && shown < 60);
	free(h);
	h = render(false);
	assert_null(strstr(h, "\"name\":\"SYMBO\""));
	free(h);
}

static void
test_stats_health(void **state)
{
	char *s;

	px_stats_reset();
	px_stats_health(PX_STATS_DNS, true, NULL);
	px_stats_health(PX_STATS_DNS, false, "timeout");
	px_stats_health(PX_STATS_STORE, false, "error");
	s = render(false);
	assert_non_null(strstr(s, "\"dns\":{\"state\":\"failing\",\"ok\":1,"
	                          "\"errors\":1,"));
	assert_non_null(strstr(s, "\"last_error_kind\":\"timeout\""));
	assert_non_null(strstr(s, "\"store\":{\"state\":\"failing\",\"ok\":0,"
	                          "\"errors\":1,\"last_ok\":null,"));
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stats_disabled),
	    cmocka_unit_test(test_stats_known_traffic),
	    cmocka_unit_test(test_stats_minutes),
	    cmocka_unit_test(test_stats_ring),
	    cmocka_unit_test(test_stats_top_bounded),
	    cmocka_unit_test(test_stats_symbols_cut),
	    cmocka_unit_test(test_stats_health),
	};

	px_stats_enable(true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
