/* SPDX-License-Identifier: MIT */
/*
 * test_store.c - the store operations of store.h, as both stores must give
 * them: the greylist lifecycle (new, early, passed, pass, expiry of an
 * unpassed and of a passed triplet, whitelist keys, the auto-whitelist
 * counting one delivery a minute), the leaky-bucket rate limit (and its
 * read with cost 0), set membership (Redis only), reputation
 * decay, string keys with TTLs, key listing, and the memory store's bound.
 *
 * Runs against the memory store; with MXG_TEST_STORE=redis://host:port/db
 * (or redis+sentinel://...) the same cases run against that Redis
 * (tests/e2e/test_store_redis.py does that with a redis-server of its
 * own).  Times are passed explicitly, as the filters pass st_now(), so
 * nothing sleeps.
 *
 * Two more modes, driven by tests/e2e/test_store_redis.py:
 *   MXG_TEST_STORE_EXPECT=down    every operation fails with status -1
 *                                 (Redis down, wrong password...)
 *   MXG_TEST_STORE_OUTAGE=DIR     one long-lived connection on an event
 *                                 loop, as the daemon has, through the
 *                                 phases the e2e test steps it through
 *                                 with files in DIR (see test_outage)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/thread.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "loop.h"
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
	/* A timed entry holds until its end, by the caller's clock (not the
	 * store's TTL). */
	set.keys[0] = key("wl:c:timed");
	set.args[0] = 3600;
	set.str = "1700000100";
	call(&set, &r);
	st_reply_clear(&r);
	assert_int_equal(greylist("gl:t:d", "wl:c:timed", t0 + 99, NULL, NULL),
	                 ST_GL_WHITELISTED);
	assert_int_equal(greylist("gl:t:d", "wl:c:timed", t0 + 100, NULL, NULL),
	                 ST_GL_NEW);
	set.str = "0"; /* no end */
	call(&set, &r);
	st_reply_clear(&r);
	assert_int_equal(
	    greylist("gl:t:d", "wl:c:timed", t0 + 9999999, NULL, NULL),
	    ST_GL_WHITELISTED);

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
ratelimit_cost(int64_t now_ms, int64_t cost, int64_t *level_r)
{
	struct st_cmd cmd = {.op = ST_RATELIMIT,
	                     .keys = {key("rl:CONN:198.51.100.7")},
	                     .nkeys = 1,
	                     .args = {now_ms, cost, 3, 60000},
	                     .nargs = 4};
	struct st_reply r;
	int64_t v = call(&cmd, &r);

	*level_r = r.v[1];
	st_reply_clear(&r);
	return v;
}

static int64_t
ratelimit(int64_t now_ms, int64_t *level_r)
{
	return ratelimit_cost(now_ms, 1, level_r);
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

/* Cost 0 reads a bucket (the harvest cap's check): never over, the level
 * drained to now, nothing added. */
static void
test_ratelimit_read(void **state)
{
	const int64_t t0 = 1710000000000LL;
	int64_t level;

	(void)state;
	assert_int_equal(ratelimit_cost(t0, 0, &level), 0);
	assert_int_equal(level, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ratelimit_cost(t0 + i, 1, &level), 0);
	assert_int_equal(ratelimit_cost(t0 + 3, 0, &level), 0);
	assert_int_equal(level, 3);
	assert_int_equal(ratelimit_cost(t0 + 4, 0, &level), 0);
	assert_int_equal(level, 3);
	/* 3 per 60 s: 20 s later one has drained. */
	assert_int_equal(ratelimit_cost(t0 + 20010, 0, &level), 0);
	assert_int_equal(level, 2);
	/* Several at once (a batch of unknown recipients). */
	assert_int_equal(ratelimit_cost(t0 + 20011, 2, &level), 1);
	assert_int_equal(ratelimit_cost(t0 + 20012, 1, &level), 0);
	assert_int_equal(level, 3);
}

/* ST_SISMEMBER: Redis answers for each candidate (an absent set has no
 * members); the memory store keeps no sets and fails it. */
static void
test_sismember(void **state)
{
	struct st_cmd cmd = {
	    .op = ST_SISMEMBER,
	    .keys = {key("no-such-set"), "a@example.com", "@example.com"},
	    .nkeys = 3};
	struct st_reply r;

	(void)state;
	if (!st_is_shared()) {
		assert_int_equal(st_call_sync(&cmd, 2.0, &r), -1);
		assert_int_equal(r.status, -1);
		return;
	}
	call(&cmd, &r);
	assert_int_equal(r.nv, 2);
	assert_int_equal(r.v[0], 0);
	assert_int_equal(r.v[1], 0);
	st_reply_clear(&r);
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

/* Numbers read back as the same text from both stores (Lua's tostring()
 * and the memory store's %.14g), fractions included. */
static void
test_get_numbers(void **state)
{
	const int64_t t0 = 1700000000;
	struct st_cmd add = {.op = ST_REP_ADD,
	                     .keys = {key("rep:ip:192.0.2.1")},
	                     .nkeys = 1,
	                     .args = {t0, 86400, ST_REP_TAGGED, 864000},
	                     .nargs = 4};
	struct st_cmd rl = {.op = ST_RATELIMIT,
	                    .keys = {key("rl:MSG:192.0.2.1")},
	                    .nkeys = 1,
	                    .args = {t0 * 1000, 1, 3, 60000},
	                    .nargs = 4};
	struct st_cmd get = {.op = ST_GET, .nkeys = 1};
	struct st_reply r;
	char want[32];
	int seen = 0;

	(void)state;
	call(&add, &r);
	st_reply_clear(&r);
	add.args[0] = t0 + 1000;
	call(&add, &r);
	st_reply_clear(&r);
	get.keys[0] = key("rep:ip:192.0.2.1");
	call(&get, &r);
	/* Fields in the order they were first written, as Redis keeps
	 * them. */
	assert_int_equal(r.nstrs, 10);
	assert_string_equal(r.strs[0], "a");
	assert_string_equal(r.strs[2], "t");
	assert_string_equal(r.strs[8], "ts");
	assert_string_equal(r.strs[9], "1700001000");
	snprintf(want, sizeof(want), "%.14g", 1 + exp2(-1000.0 / 86400));
	assert_string_equal(r.strs[3], want);
	st_reply_clear(&r);

	call(&rl, &r);
	st_reply_clear(&r);
	rl.args[0] += 1; /* 1 ms later: 1 - 3/60000 drained, 1 added */
	call(&rl, &r);
	assert_int_equal(r.v[1], 2);
	st_reply_clear(&r);
	get.keys[0] = key("rl:MSG:192.0.2.1");
	call(&get, &r);
	assert_true(r.v[0] > 0 && r.v[0] <= 60);
	for (unsigned i = 0; i + 1 < r.nstrs; i += 2) {
		if (strcmp(r.strs[i], "level") == 0) {
			assert_string_equal(r.strs[i + 1], "1.99995");
			seen++;
		}
	}
	assert_int_equal(seen, 1);
	st_reply_clear(&r);

	/* A key of the wrong type is replaced by the operation. */
	struct st_cmd set = {
	    .op = ST_SET, .keys = {key("rl:MSG:x")}, .nkeys = 1};

	call(&set, &r);
	st_reply_clear(&r);
	rl.keys[0] = key("rl:MSG:x");
	assert_int_equal(call(&rl, &r), 0);
	assert_int_equal(r.v[1], 1);
	st_reply_clear(&r);
}

/* Keys with the characters SCAN patterns give a meaning to are listed as
 * any others, and only they. */
static void
test_keys_glob(void **state)
{
	const char *names[] = {"wl:s:a*b", "wl:s:a?c", "wl:s:[x]", "wl:s:a\\d"};
	struct st_cmd keys = {.op = ST_KEYS, .nkeys = 1, .nargs = 0};
	struct st_reply r;

	(void)state;
	for (unsigned i = 0; i < 4; i++) {
		struct st_cmd set = {
		    .op = ST_SET, .keys = {key(names[i])}, .nkeys = 1};

		call(&set, &r);
		st_reply_clear(&r);
	}
	for (unsigned i = 0; i < 4; i++) {
		keys.keys[0] = key(names[i]);
		call(&keys, &r);
		assert_int_equal(r.nstrs, 1);
		assert_string_equal(r.strs[0], key(names[i]));
		st_reply_clear(&r);
	}
	keys.keys[0] = key("wl:s:a");
	call(&keys, &r);
	assert_int_equal(r.nstrs, 3);
	st_reply_clear(&r);
}

/* Asynchronous calls on an event loop, as the filters make them: several
 * in flight at once on one connection, half of them cancelled (their
 * replies must be dropped safely: ASan watches). */
#define ASYNC_N 200

static struct px_loop *test_loop;
static pthread_mutex_t async_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t async_cond = PTHREAD_COND_INITIALIZER;

struct async_state {
	unsigned done, failed, immediate;
	bool finished;
	int64_t last_status;
	char error[128];
	int rc; /* of the last st_call */
};

static void
async_done(void *arg, const struct st_reply *r)
{
	struct async_state *s = arg;

	pthread_mutex_lock(&async_lock);
	s->done++;
	if (r->status != 0)
		s->failed++;
	s->last_status = r->status;
	snprintf(s->error, sizeof(s->error), "%s", r->error);
	s->finished = true;
	pthread_cond_broadcast(&async_cond);
	pthread_mutex_unlock(&async_lock);
}

static void
async_burst(void *arg)
{
	struct async_state *s = arg;
	struct st_req *reqs[ASYNC_N];

	for (int i = 0; i < ASYNC_N; i++) {
		char t[64];
		struct st_cmd cmd = {
		    .op = ST_GREYLIST,
		    .nkeys = 2,
		    .args = {1700000000, 300, 172800, 3110400, 5},
		    .nargs = 5};
		struct st_reply r;

		snprintf(t, sizeof(t), "gl:t:async%d", i);
		cmd.keys[0] = key(t);
		cmd.keys[1] = key("gl:c:async");
		if (st_call(test_loop, &cmd, async_done, s, &r, &reqs[i]) ==
		    1) {
			async_done(s, &r);
			st_reply_clear(&r);
			reqs[i] = NULL;
		}
	}
	for (int i = 0; i < ASYNC_N; i += 2)
		st_cancel(reqs[i]);
	pthread_mutex_lock(&async_lock);
	s->immediate = 1; /* the burst is out */
	pthread_cond_broadcast(&async_cond);
	pthread_mutex_unlock(&async_lock);
}

static void
test_loop_start(void)
{
	if (test_loop != NULL)
		return;
	test_loop = px_loop_new(0);
	assert_int_equal(px_loop_start(test_loop), 0);
}

static void
test_async(void **state)
{
	struct async_state s = {0};

	(void)state;
	test_loop_start();
	px_loop_post(test_loop, async_burst, &s);
	pthread_mutex_lock(&async_lock);
	/* Bounded by the requests' own timeouts. */
	while (s.immediate == 0 || s.done < ASYNC_N / 2)
		pthread_cond_wait(&async_cond, &async_lock);
	pthread_mutex_unlock(&async_lock);
	assert_int_equal(s.failed, 0);
	/* Only the ones not cancelled were answered (the memory store
	 * answers each inside st_call: nothing to cancel). */
	assert_int_equal(s.done, st_is_shared() ? ASYNC_N / 2 : ASYNC_N);
}

/* Many keys: SCAN pages (Redis) are followed to the end, or to the
 * limit asked for.  The keys are written pipelined, on the loop. */
#define MANY_N 2500

static void
many_set(void *arg)
{
	struct async_state *s = arg;

	for (int i = 0; i < MANY_N; i++) {
		char k[32];
		struct st_cmd set = {.op = ST_SET, .nkeys = 1};
		struct st_reply r;
		struct st_req *req;

		snprintf(k, sizeof(k), "many:%d", i);
		set.keys[0] = key(k);
		if (st_call(test_loop, &set, async_done, s, &r, &req) == 1) {
			async_done(s, &r);
			st_reply_clear(&r);
		}
	}
}

static void
test_keys_many(void **state)
{
	struct async_state s = {0};
	struct st_cmd keys = {.op = ST_KEYS,
	                      .keys = {key("many:")},
	                      .nkeys = 1,
	                      .args = {1000000},
	                      .nargs = 1};
	struct st_reply r;

	(void)state;
	test_loop_start();
	px_loop_post(test_loop, many_set, &s);
	pthread_mutex_lock(&async_lock);
	while (s.done < MANY_N)
		pthread_cond_wait(&async_cond, &async_lock);
	pthread_mutex_unlock(&async_lock);
	assert_int_equal(s.failed, 0);
	keys.keys[0] = key("many:"); /* key()'s buffers were reused */
	call(&keys, &r);
	assert_int_equal(r.nstrs, MANY_N);
	for (unsigned i = 1; i < r.nstrs; i++)
		assert_true(strcmp(r.strs[i - 1], r.strs[i]) != 0);
	st_reply_clear(&r);
	keys.args[0] = 100;
	call(&keys, &r);
	assert_int_equal(r.nstrs, 100);
	st_reply_clear(&r);
}

/* --- MXG_TEST_STORE_EXPECT=down ----------------------------------------- */

static void
test_down(void **state)
{
	struct st_cmd cmds[] = {
	    {.op = ST_GREYLIST,
	     .keys = {key("gl:t:down"), key("gl:c:down")},
	     .nkeys = 2,
	     .args = {1700000000, 300, 172800, 3110400, 5},
	     .nargs = 5},
	    {.op = ST_SET, .keys = {key("wl:c:down")}, .nkeys = 1},
	    {.op = ST_KEYS, .keys = {key("wl:")}, .nkeys = 1},
	};
	struct st_reply r;

	(void)state;
	for (unsigned i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(st_call_sync(&cmds[i], 2.0, &r), -1);
		assert_int_equal(r.status, -1);
		print_message("%s\n", r.error);
		assert_true(r.error[0] != '\0');
		st_reply_clear(&r);
	}
}

/* --- MXG_TEST_STORE_OUTAGE=DIR ------------------------------------------ */

static const char *outage_dir;

struct outage_call {
	struct async_state s;
	bool answered_at_once;
};

static void
outage_post(void *arg)
{
	struct outage_call *c = arg;
	struct st_cmd cmd = {.op = ST_RATELIMIT,
	                     .keys = {key("rl:OUTAGE:x")},
	                     .nkeys = 1,
	                     .args = {0, 1, 1000000, 1000},
	                     .nargs = 4};
	struct st_reply r;
	struct st_req *req;

	cmd.args[0] = st_now_ms();
	if (st_call(test_loop, &cmd, async_done, &c->s, &r, &req) == 1) {
		c->answered_at_once = true;
		async_done(&c->s, &r);
		st_reply_clear(&r);
	}
}

/* outage_one - one call on the loop; its status.  *at_once_r: answered
 * inside st_call (the connection knew it was down). */
static int64_t
outage_one(bool *at_once_r, char *error, size_t size)
{
	struct outage_call c;

	memset(&c, 0, sizeof(c));
	px_loop_post(test_loop, outage_post, &c);
	pthread_mutex_lock(&async_lock);
	while (!c.s.finished)
		pthread_cond_wait(&async_cond, &async_lock);
	pthread_mutex_unlock(&async_lock);
	if (at_once_r != NULL)
		*at_once_r = c.answered_at_once;
	snprintf(error, size, "%s", c.s.error);
	return c.s.last_status;
}

static void
outage_mark(const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outage_dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	print_message("phase %s\n", name);
}

static void
outage_wait(const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", outage_dir, name);
	for (int i = 0; i < 1200 && stat(path, &st) < 0; i++)
		usleep(50000);
	assert_int_equal(stat(path, &st), 0);
}

/* outage_until - call every 50 ms until a call has status want (at most
 * 1200 tries); how many failed calls were answered at once (the last one's
 * error in at_once_error). */
static char at_once_error[128];

static unsigned
outage_until(int64_t want)
{
	char error[128] = "";
	unsigned at_once = 0;

	for (int i = 0; i < 1200; i++) {
		bool now = false;
		int64_t status = outage_one(&now, error, sizeof(error));

		if (now && status != 0) {
			at_once++;
			snprintf(at_once_error, sizeof(at_once_error), "%s",
			         error);
		}
		if (status == want)
			return at_once;
		usleep(50000);
	}
	fail_msg("status %d never came (last error: %s)", (int)want, error);
	return 0;
}

/*
 * The phases (MXG_TEST_STORE_PHASES, default "stall,kill"):
 *   up                   calls succeed                      -> file "up"
 *   flush: wait "flushed" (SCRIPT FLUSH: the scripts loaded at connect
 *                        are gone) a call succeeds (NOSCRIPT, then EVAL)
 *                                                           -> "flushed-ok"
 *   stall: wait "stalled" (Redis paused by the test)
 *                        a call times out                   -> "stalled-ok"
 *   kill:  wait "killed" (Redis killed)
 *                        calls fail, some at once           -> "down"
 *          wait "restarted"
 *                        calls succeed again                -> "recovered"
 *   failover: as kill, but some failing at once is not required (a
 *          Sentinel failover: the next master may be found at once)
 */
static void
test_outage(void **state)
{
	const char *phases = getenv("MXG_TEST_STORE_PHASES");
	char error[128];
	unsigned at_once;

	(void)state;
	if (phases == NULL)
		phases = "stall,kill";
	test_loop_start();
	outage_until(0);
	outage_mark("up");
	if (strstr(phases, "flush") != NULL) {
		outage_wait("flushed");
		outage_until(0);
		outage_until(0);
		outage_mark("flushed-ok");
	}
	if (strstr(phases, "stall") != NULL) {
		outage_wait("stalled");
		assert_int_equal(outage_one(NULL, error, sizeof(error)), -1);
		assert_string_equal(error, "timeout");
		outage_mark("stalled-ok");
	}
	if (strstr(phases, "kill") != NULL || strstr(phases, "failover")) {
		outage_wait("killed");
		at_once = outage_until(-1);
		/* Down: later calls are answered inside st_call, without
		 * waiting for anything. */
		for (int i = 0;
		     i < 1200 && at_once == 0 && strstr(phases, "kill") != NULL;
		     i++) {
			bool now = false;

			if (outage_one(&now, error, sizeof(error)) != 0 &&
			    now) {
				at_once++;
				snprintf(at_once_error, sizeof(at_once_error),
				         "%s", error);
			} else {
				usleep(50000);
			}
		}
		assert_true(at_once > 0 || strstr(phases, "kill") == NULL);
		print_message("while down: %s\n", at_once_error);
		outage_mark("down");
		outage_wait("restarted");
		outage_until(0);
		outage_mark("recovered");
	}
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

static void
loop_stop(void *arg)
{
	px_loop_exit(arg);
}

int
main(void)
{
	const char *store = getenv("MXG_TEST_STORE");
	const char *expect = getenv("MXG_TEST_STORE_EXPECT");
	const char *timeout = getenv("MXG_TEST_STORE_TIMEOUT");
	const char *err = NULL;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.store = (char *)(store != NULL ? store : "memory");
	cfg.store_prefix = (char *)"t:";
	cfg.store_memory_max = 1 << 20;
	cfg.store_timeout = timeout != NULL ? atof(timeout) : 2.0;
	outage_dir = getenv("MXG_TEST_STORE_OUTAGE");
	signal(SIGPIPE, SIG_IGN); /* as the daemon does: a dead Redis */
	evthread_use_pthreads();
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
	    cmocka_unit_test(test_ratelimit_read),
	    cmocka_unit_test(test_sismember),
	    cmocka_unit_test(test_reputation_decay),
	    cmocka_unit_test(test_get_del_keys),
	    cmocka_unit_test(test_get_numbers),
	    cmocka_unit_test(test_keys_glob),
	    cmocka_unit_test(test_async),
	    cmocka_unit_test(test_keys_many),
	    cmocka_unit_test(test_memory_bound),
	};
	const struct CMUnitTest down_tests[] = {
	    cmocka_unit_test(test_down),
	};
	const struct CMUnitTest outage_tests[] = {
	    cmocka_unit_test(test_outage),
	};

	if (outage_dir != NULL)
		rc = cmocka_run_group_tests(outage_tests, NULL, NULL);
	else if (expect != NULL && strcmp(expect, "down") == 0)
		rc = cmocka_run_group_tests(down_tests, NULL, NULL);
	else
		rc = cmocka_run_group_tests(tests, NULL, NULL);

	/* The store's connections live on the loop's base: close the store
	 * after the loop stopped, before the base goes (as main.c does). */
	if (test_loop != NULL) {
		px_loop_post(test_loop, loop_stop, test_loop);
		px_loop_join(test_loop);
	}
	st_close();
	px_loop_free(&test_loop);
	return rc;
}
