/* SPDX-License-Identifier: MIT */
/*
 * store.h - the state mxguard keeps between connections: greylisting,
 * reputation, rate limits and the operator's dynamic whitelists.
 *
 * Two implementations behind one interface:
 *   store = "memory"                    store_memory.c: in-process, shared
 *                                       by all loops, bounded by
 *                                       store_memory_max, TTL + LRU;
 *   store = "redis://[:pw@]host:port/db" store_redis.c: hiredis async on
 *   store = "redis+sentinel://h1:p1,h2:p2/master"   each loop's event base.
 *
 * Every operation is one atomic step on the store (a Lua script on Redis,
 * one locked call in memory), so several instances sharing a Redis never
 * race.  Both implementations must give the same answers: the e2e tests run
 * each case against both.
 *
 * Time is the caller's (st_now()), not the store's: the stored values are
 * timestamps and decisions compare them with the `now` argument, so a test
 * clock moves greylisting forward without sleeping.  Key TTLs are only for
 * garbage collection.
 *
 * Key schema (P = store_prefix, default "mxg:"), documented in the README:
 *   P gl:t:<net>/<sender>/<rcpt>  hash first, passed       greylist triplet
 *   P gl:c:<net>                  hash n, last              auto-whitelist
 *   P wl:c:<ip or net>            string: end (s) or 0      whitelist: client
 *   P wl:s:<addr or domain>       string: end (s) or 0      whitelist: sender
 *   P wl:r:<addr or domain>       string: end (s) or 0      whitelist: rcpt
 *   P rep:<kind>:<entity>         hash a, t, r, g, ts       reputation
 *   P rl:<bucket>:<entity>        hash level, ts            rate limit
 *   P rl:unknown_recipients:<ip>  hash level, ts            unknown rcpts
 */
#ifndef MX_STORE_H
#define MX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_config;
struct px_loop;

/* The operations.  keys[] are full keys (prefix included); args[] are
 * integers.  Results are in st_reply.v[]. */
enum st_op {
	/*
	 * ST_GREYLIST: keys[0] triplet, keys[1] auto-whitelist (client net),
	 * keys[2..] whitelist keys (any that exists -> WHITELISTED).
	 * args: [0] now (s), [1] delay, [2] retry_window, [3] pass_ttl,
	 *       [4] auto_whitelist_after (0 = off).
	 * 1. a whitelist key exists whose value is 0, not a number, or a
	 *    time after now (a timed entry holds by the caller's clock,
	 *    the TTL only collects it)           -> v0 = ST_GL_WHITELISTED
	 * 2. awl n >= auto_whitelist_after > 0       -> v0 = ST_GL_AWL; the
	 *    awl hash is refreshed as in step 5.
	 * 3. triplet absent, or unpassed and now - first > retry_window, or
	 *    passed and now - passed > pass_ttl: first = now, passed = 0,
	 *    TTL retry_window                        -> v0 = ST_GL_NEW,
	 *                                               v1 = delay
	 * 4. unpassed, now - first < delay           -> v0 = ST_GL_EARLY,
	 *                                               v1 = delay-(now-first)
	 * 5. otherwise passed = now, TTL pass_ttl; the awl hash counts one
	 *    delivery (n += 1 if now - last >= 60 or no hash; last = now;
	 *    TTL pass_ttl)                           -> v0 = ST_GL_PASSED if it
	 *    was unpassed, ST_GL_PASS if it had passed before.
	 * v2 = the awl count n after the call.
	 */
	ST_GREYLIST = 0,
	/*
	 * ST_RATELIMIT: a leaky bucket that drains limit per period.
	 * keys[0] bucket; args: [0] now (ms), [1] cost, [2] limit,
	 * [3] period (ms).
	 * level = max(0, level - (now - ts) * limit / period); ts = now;
	 * if level + cost > limit: v0 = 1 (over) and level is kept;
	 * else level += cost, v0 = 0.  Stored as decimal doubles; PTTL period.
	 * v1 = ceil(level) after the call.
	 */
	ST_RATELIMIT,
	/*
	 * ST_REP_GET: keys[0..n-1] (n <= ST_MAX_KEYS) reputation hashes;
	 * args: [0] now (s), [1] half-life (s).  For key i, v[4i..4i+3] =
	 * round(100 * count * 2^(-(now - ts) / half-life)) for the fields
	 * a (accepted), t (tagged), r (rejected), g (greylist passed);
	 * 0 for a missing key.  Read-only.
	 */
	ST_REP_GET,
	/*
	 * ST_REP_ADD: keys as REP_GET; args: [0] now, [1] half-life,
	 * [2] field (ST_REP_ACCEPTED..), [3] ttl (s).  For each key: decay
	 * the four counts to now as above (unrounded), add 1 to the field,
	 * ts = now, TTL ttl.
	 */
	ST_REP_ADD,
	/* ST_SET: keys[0] = str (NULL: "0"), TTL args[0] s (0: none). */
	ST_SET,
	/* ST_DEL: keys[0..n-1] deleted; v0 = how many existed. */
	ST_DEL,
	/* ST_GET: keys[0]; strs = field, value, field, value... for a hash,
	 * or the one value of a string; nstrs 0 when absent.  v0 = TTL (s),
	 * -1 none. */
	ST_GET,
	/* ST_KEYS: every key starting with keys[0] (prefix included), at
	 * most args[0], in strs.  Redis: SCAN, never KEYS. */
	ST_KEYS,
	/*
	 * ST_SISMEMBER: keys[0] a set, named as given (an operator's key,
	 * no prefix added); keys[1..n-1] candidate members.  v[i-1] = 1 when
	 * keys[i] is a member, else 0.  Read-only.  Redis only (SMISMEMBER,
	 * Redis 6.2 or later): the memory store keeps no sets and fails it;
	 * the config refuses what would need it with store = "memory".
	 */
	ST_SISMEMBER,
	ST_NOPS,
};

enum st_gl_result {
	ST_GL_NEW = 0,
	ST_GL_EARLY,
	ST_GL_PASSED,
	ST_GL_PASS,
	ST_GL_AWL,
	ST_GL_WHITELISTED,
};

enum st_rep_field {
	ST_REP_ACCEPTED = 0,
	ST_REP_TAGGED,
	ST_REP_REJECTED,
	ST_REP_GREYPASS,
};

#define ST_MAX_KEYS 8
#define ST_MAX_ARGS 6
#define ST_MAX_V    (4 * ST_MAX_KEYS)

struct st_cmd {
	enum st_op op;
	const char *keys[ST_MAX_KEYS];
	unsigned nkeys;
	int64_t args[ST_MAX_ARGS];
	unsigned nargs;
	const char *str; /* ST_SET */
};

struct st_reply {
	int status; /* 0 ok; -1 the store failed (down, timeout, error) */
	char error[128];
	int64_t v[ST_MAX_V];
	unsigned nv;
	char **strs; /* ST_GET, ST_KEYS: owned by the reply */
	unsigned nstrs;
};

/* Free what a reply owns (strs); the reply itself is the caller's. */
void st_reply_clear(struct st_reply *r);

struct st_req;
typedef void st_done_fn(void *arg, const struct st_reply *r);

/*
 * st_open - create the process's store from cfg (store, store_prefix,
 * store_memory_max, timeouts.store).  Blocking; before the loops start.
 * Returns 0, or -1 with *error_r (static text).  A Redis store does not
 * connect here: each loop connects on first use and reconnects by itself.
 */
int st_open(const struct px_config *cfg, const char **error_r);

/* st_close - after the loops have stopped. */
void st_close(void);

/* st_is_shared - true for Redis (state outlives and spans processes). */
bool st_is_shared(void);

/*
 * st_call - run cmd for loop (on that loop's thread).  Returns 1 when
 * answered at once (the memory store; a Redis store that is down): *r is
 * filled and done is never called.  Returns 0 when pending: done(arg, r)
 * runs later on the loop thread, exactly once, unless st_cancel(*req_r)
 * comes first; *r is then unused.  The reply passed to done is valid only
 * during the call.  cmd's strings are copied before st_call returns.
 */
int st_call(struct px_loop *loop, const struct st_cmd *cmd, st_done_fn *done,
            void *arg, struct st_reply *r, struct st_req **req_r);

/* st_cancel - done will not run; the request may still reach the store. */
void st_cancel(struct st_req *req);

/*
 * st_call_sync - for `mxguard ctl` and tests: run cmd on a private event
 * base and wait for the answer (at most timeout seconds).  Never on a loop
 * thread.  Returns r->status.
 */
int st_call_sync(const struct st_cmd *cmd, double timeout, struct st_reply *r);

/*
 * The clock every store decision uses: wall time plus an offset that only
 * a config with debug_clock = true lets `mxguard ctl clock advance N` move
 * (tests of greylisting and decay without sleeping).
 */
int64_t st_now(void);    /* seconds */
int64_t st_now_ms(void); /* milliseconds */
void st_clock_advance(int64_t seconds);

/* The store backends, as store.c dispatches to them. */
struct st_backend {
	const char *name;
	int (*open)(const struct px_config *cfg, const char **error_r);
	void (*close)(void);
	int (*call)(struct px_loop *loop, const struct st_cmd *cmd,
	            st_done_fn *done, void *arg, struct st_reply *r,
	            struct st_req **req_r);
	void (*cancel)(struct st_req *req);
	int (*call_sync)(const struct st_cmd *cmd, double timeout,
	                 struct st_reply *r);
};

extern const struct st_backend st_memory;
extern const struct st_backend st_redis;

#endif
