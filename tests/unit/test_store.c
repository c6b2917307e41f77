/* SPDX-License-Identifier: MIT */
/*
 * test_store.c - the store operations of store.h, as both stores must give
 * them: the greylist lifecycle (new, early, passed, pass, expiry of an
 * unpassed and of a passed triplet, whitelist keys, the auto-whitelist
 * counting one delivery a minute), the leaky-bucket rate limit, reputation
 * decay, string keys with TTLs, key listing, and the memory store's bound.
 *
 * Runs against the memory store; with MXG_TEST_STORE=redis://host:port/db
 * the same cases run against that Redis (tests/e2e/test_store_parity.py
 * does that with a redis-server of its own).  Times are passed explicitly,
 * as the filters pass st_now(), so nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "store.h"

static struct px_config cfg;
static char prefix[64];

static const char *
key(const char *suffix)
{
	static char buf[8][256];
	static unsigned n;
	char *b = buf[n++ % 8];

	snprintf(b, sizeof(buf[0]), "%s%s", prefix, suffix);
	return b;
}

static int64_t
call(struct st_cmd *cmd, struct st_reply *r)
{
	int rc = st_call_sync(cmd, 2.0, r);

	assert_int_equal(rc, 0);
	assert_int_equal(r->status, 0);
	return r->nv > 0 ? r->v[0] : 0;
}

/* greylist - one ST_GREYLIST call; *left_r = v1, *awl_r = v2. */
static const char *awl_key = "gl:c:none";

static int64_t
greylist(const char *triplet, const char *wl, int64_t now, int64_t *left_r,
         int64_t *awl_r)
{
	struct st_cmd cmd = {.op = ST_GREYLIST,
	                     .keys = {key(triplet), key(awl_key)},
	                     .nkeys = 2,
	                     .args = {now, 300, 172800, 3110400, 3},
	                     .nargs = 5};
	struct st_reply r;
	int64_t v;

	if (wl != NULL)
		cmd.keys[cmd.nkeys++] = key(wl);
	v = call(&cmd, &r);
	if (left_r != NULL)
		*left_r = r.v[1];
	if (awl_r != NULL)
		*awl_r = r.v[2];
	st_reply_clear(&r);
	return v;
}

static void
test_greylist_lifecycle(void **state)
{
	const int64_t t0 = 1700000000;
	int64_t left, awl;

	(void)state;
	awl_key = "gl:c:a";
	assert_int_equal(greylist("gl:t:a", NULL, t0, &left, &awl), ST_GL_NEW);
	assert_int_equal(left, 300);
	assert_int_equal(awl, 0);
	/* Retrying too early: still refused, with the time left. */
	assert_int_equal(greylist("gl:t:a", NULL, t0 + 100, &left, NULL),
	                 ST_GL_EARLY);
	assert_int_equal(left, 200);
	/* After the delay: passes, and counts one delivery. */
	assert_int_equal(greylist("gl:t:a", NULL, t0 + 300, NULL, &awl),
	                 ST_GL_PASSED);
	assert_int_equal(awl, 1);
	/* A passed triplet passes at once, refreshed. */
	assert_int_equal(greylist("gl:t:a", NULL, t0 + 400, NULL, &awl),
	                 ST_GL_PASS);
	assert_int_equal(awl, 2);
	/* Within a minute of the last delivery: not counted again. */
	assert_int_equal(greylist("gl:t:a", NULL, t0 + 420, NULL, &awl),
	                 ST_GL_PASS);
	assert_int_equal(awl, 2);
	/* A passed triplet unused for longer than pass_ttl starts over. */
	assert_int_equal(
	    greylist("gl:t:a", NULL, t0 + 420 + 3110400 + 1, &left, NULL),
	    ST_GL_NEW);
	assert_int_equal(left, 300);
}

static void
test_greylist_retry_window(void **state)
{
	const int64_t t0 = 1700000000;

	(void)state;
	awl_key = "gl:c:b";
	assert_int_equal(greylist("gl:t:b", NULL, t0, NULL, NULL), ST_GL_NEW);
	/* Retried after the window closed: first sight again. */
	assert_int_equal(greylist("gl:t:b", NULL, t0 + 172801, NULL, NULL),
	                 ST_GL_NEW);
	assert_int_equal(
	    greylist("gl:t:b", NULL, t0 + 172801 + 299, NULL, NULL),
	    ST_GL_EARLY);
	assert_int_equal(
	    greylist("gl:t:b", NULL, t0 + 172801 + 300, NULL, NULL),
	    ST_GL_PASSED);
}

static void
test_greylist_whitelist_and_awl(void **state)
{
	const int64_t t0 = 1700000000;
	struct st_cmd set = {.op = ST_SET,
	                     .keys = {key("wl:c:198.51.100.7")},
	                     .nkeys = 1,
	                     .args = {0},
	                     .nargs = 1};
	struct st_reply r;
	int64_t awl;

	(void)state;
	awl_key = "gl:c:c";
	call(&set, &r);
	st_reply_clear(&r);
	assert_int_equal(
	    greylist("gl:t:c", "wl:c:198.51.100.7", t0, NULL, NULL),
	    ST_GL_WHITELISTED);
	/* Absent whitelist keys do not matter. */
	assert_int_equal(greylist("gl:t:c", "wl:c:none", t0, NULL, NULL),
	                 ST_GL_NEW);

	/* Three deliveries a minute apart whitelist the client (after 3). */
	for (int i = 0; i < 3; i++) {
		char t[32];

		snprintf(t, sizeof(t), "gl:t:awl%d", i);
		assert_int_equal(greylist(t, NULL, t0 + 1000 * i, NULL, NULL),
		                 ST_GL_NEW);
		assert_int_equal(
		    greylist(t, NULL, t0 + 1000 * i + 300, NULL, &awl),
		    ST_GL_PASSED);
		assert_int_equal(awl, i + 1);
	}
	assert_int_equal(greylist("gl:t:new", NULL, t0 + 5000, NULL, &awl),
	                 ST_GL_AWL);
	assert_int_equal(awl, 4);
}

static int64_t
ratelimit(int64_t now_ms, int64_t *level_r)
{
	struct st_cmd cmd = {.op = ST_RATELIMIT,
	                     .keys = {key("rl:CONN:198.51.100.7")},
	                     .nkeys = 1,
	                     .args = {now_ms, 1, 3, 60000},
	                     .nargs = 4};
	struct st_reply r;
	int64_t v = call(&cmd, &r);

	*level_r = r.v[1];
	st_reply_clear(&r);
	return v;
}

static void
test_ratelimit(void **state)
{
	const int64_t t0 = 1700000000000LL;
	int64_t level;

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ratelimit(t0 + i, &level), 0);
		assert_int_equal(level, i + 1);
	}
	assert_int_equal(ratelimit(t0 + 3, &level), 1);
	assert_int_equal(level, 3);
	/* 3 per 60 s drains one every 20 s. */
	assert_int_equal(ratelimit(t0 + 20003, &level), 0);
	assert_int_equal(level, 3);
	assert_int_equal(ratelimit(t0 + 20004, &level), 1);
	/* A long pause empties the bucket. */
	assert_int_equal(ratelimit(t0 + 600000, &level), 0);
	assert_int_equal(level, 1);
}

static void
test_reputation_decay(void **state)
{
	const int64_t t0 = 1700000000, half = 86400;
	struct st_cmd add = {
	    .op = ST_REP_ADD,
	    .keys = {key("rep:ip:198.51.100.7"), key("rep:net:198.51.100.0")},
	    .nkeys = 2,
	    .args = {t0, half, ST_REP_REJECTED, 864000},
	    .nargs = 4};
	struct st_cmd get = {
	    .op = ST_REP_GET,
	    .keys = {key("rep:ip:198.51.100.7"), key("rep:none")},
	    .nkeys = 2,
	    .args = {t0, half},
	    .nargs = 2};
	struct st_reply r;

	(void)state;
	for (int i = 0; i < 4; i++) {
		call(&add, &r);
		st_reply_clear(&r);
	}
	add.args[2] = ST_REP_ACCEPTED;
	call(&add, &r);
	st_reply_clear(&r);
	call(&get, &r);
	assert_int_equal(r.nv, 8);
	assert_int_equal(r.v[ST_REP_ACCEPTED], 100);
	assert_int_equal(r.v[ST_REP_REJECTED], 400);
	assert_int_equal(r.v[ST_REP_TAGGED], 0);
	assert_int_equal(r.v[4 + ST_REP_REJECTED], 0);
	st_reply_clear(&r);
	/* One half-life later, half of it. */
	get.args[0] = t0 + half;
	call(&get, &r);
	assert_int_equal(r.v[ST_REP_REJECTED], 200);
	assert_int_equal(r.v[ST_REP_ACCEPTED], 50);
	st_reply_clear(&r);
	/* An update decays what was there first. */
	add.args[0] = t0 + 2 * half;
	add.args[2] = ST_REP_GREYPASS;
	call(&add, &r);
	st_reply_clear(&r);
	get.args[0] = t0 + 2 * half;
	call(&get, &r);
	assert_int_equal(r.v[ST_REP_REJECTED], 100);
	assert_int_equal(r.v[ST_REP_GREYPASS], 100);
	st_reply_clear(&r);
}

static void
test_get_del_keys(void **state)
{
	struct st_cmd set = {.op = ST_SET,
	                     .keys = {key("wl:s:example.org")},
	                     .nkeys = 1,
	                     .args = {3600},
	                     .nargs = 1,
	                     .str = "added by test"};
	struct st_cmd get = {
	    .op = ST_GET, .keys = {key("wl:s:example.org")}, .nkeys = 1};
	struct st_cmd keys = {.op = ST_KEYS,
	                      .keys = {key("wl:s:")},
	                      .nkeys = 1,
	                      .args = {100},
	                      .nargs = 1};
	struct st_cmd del = {
	    .op = ST_DEL,
	    .keys = {key("wl:s:example.org"), key("wl:s:absent")},
	    .nkeys = 2};
	struct st_reply r;

	(void)state;
	call(&set, &r);
	st_reply_clear(&r);
	call(&get, &r);
	assert_int_equal(r.nstrs, 1);
	assert_string_equal(r.strs[0], "added by test");
	assert_true(r.v[0] > 3590 && r.v[0] <= 3600);
	st_reply_clear(&r);
	call(&keys, &r);
	assert_int_equal(r.nstrs, 1);
	assert_string_equal(r.strs[0], key("wl:s:example.org"));
	st_reply_clear(&r);
	assert_int_equal(call(&del, &r), 1);
	st_reply_clear(&r);
	call(&get, &r);
	assert_int_equal(r.nstrs, 0);
	st_reply_clear(&r);

	/* A hash reads back as field, value pairs. */
	awl_key = "gl:c:get";
	greylist("gl:t:get", NULL, 1700000000, NULL, NULL);
	get.keys[0] = key("gl:t:get");
	call(&get, &r);
	assert_int_equal(r.nstrs, 4);
	for (unsigned i = 0; i < r.nstrs; i += 2)
		if (strcmp(r.strs[i], "first") == 0)
			assert_string_equal(r.strs[i + 1], "1700000000");
	st_reply_clear(&r);
}

/* The memory store stays within store_memory_max, dropping the least
 * recently used keys. */
static void
test_memory_bound(void **state)
{
	struct st_cmd keys = {.op = ST_KEYS,
	                      .keys = {key("bound:")},
	                      .nkeys = 1,
	                      .args = {1000000},
	                      .nargs = 1};
	struct st_reply r;
	char k[64];

	(void)state;
	if (st_is_shared())
		skip(); /* Redis has its own maxmemory */
	for (int i = 0; i < 200000; i++) {
		struct st_cmd set = {.op = ST_SET, .nkeys = 1};

		snprintf(k, sizeof(k), "bound:%d", i);
		set.keys[0] = key(k);
		call(&set, &r);
		st_reply_clear(&r);
	}
	keys.keys[0] = key("bound:"); /* key()'s buffers were reused */
	call(&keys, &r);
	print_message("%u of 200000 kept\n", r.nstrs);
	/* 1 MiB cannot hold 200000 entries of >100 bytes... */
	assert_true(r.nstrs < 20000);
	assert_true(r.nstrs > 1000);
	st_reply_clear(&r);
	/* ...and the newest is still there. */
	struct st_cmd get = {
	    .op = ST_GET, .keys = {key("bound:199999")}, .nkeys = 1};
	call(&get, &r);
	assert_int_equal(r.nstrs, 1);
	st_reply_clear(&r);
}

int
main(void)
{
	const char *store = getenv("MXG_TEST_STORE");
	const char *err = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.store = (char *)(store != NULL ? store : "memory");
	cfg.store_prefix = (char *)"t:";
	cfg.store_memory_max = 1 << 20;
	cfg.store_timeout = 2.0;
	snprintf(prefix, sizeof(prefix), "t%d:", (int)getpid());
	if (st_open(&cfg, &err) < 0) {
		fprintf(stderr, "st_open: %s\n", err);
		return 1;
	}

	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_greylist_lifecycle),
	    cmocka_unit_test(test_greylist_retry_window),
	    cmocka_unit_test(test_greylist_whitelist_and_awl),
	    cmocka_unit_test(test_ratelimit),
	    cmocka_unit_test(test_reputation_decay),
	    cmocka_unit_test(test_get_del_keys),
	    cmocka_unit_test(test_memory_bound),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	st_close();
	return rc;
}
