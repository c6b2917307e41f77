/* SPDX-License-Identifier: MIT */
/*
 * store_redis.c - the Redis store (store = "redis://..." or
 * "redis+sentinel://..."): the operations of store.h as Lua scripts and
 * plain commands, sent with hiredis' asynchronous API on each loop's event
 * base (hiredis' libevent adapter).
 *
 *   st_redis.open       parse the URL, resolve host names (blocking, at
 *                       startup only); no connection yet
 *   st_redis.call       run a command on the calling loop's connection,
 *                       created on first use; 1 at once when Redis is down
 *   st_redis.cancel     done will not run; the request object lives on
 *                       until hiredis hands its reply back
 *   st_redis.call_sync  a private event base and connection, for
 *                       `mxguard ctl` and tests
 *   st_redis.close      after the loops stopped: free every connection
 *
 * Connections.  One per loop, only ever touched on that loop's thread (and
 * by st_close once the threads are joined).  A connection is DOWN (calls
 * fail at once; a backoff timer, 100 ms doubling to 5 s, starts the next
 * attempt), CONNECTING (asking Sentinel for the master, then TCP connect and
 * the handshake: AUTH, SELECT, ROLE with Sentinel, SCRIPT LOAD of every
 * script; calls wait in a bounded queue) or UP (calls are pipelined on the
 * connection as they come).  A READONLY reply (the master became a replica
 * after a failover), a lost connection or a connection that answers nothing
 * within the request timeout drops it; with Sentinel each new attempt asks
 * Sentinel again, so failovers are followed.
 *
 * Requests.  Each has its own timer (timeouts.store): when it fires, done
 * runs with status -1 and the request object stays, marked answered, until
 * hiredis gives its reply back (a late reply is then dropped).  st_cancel
 * only marks it.  The number of requests a connection holds is bounded.
 *
 * hiredis 0.14 (Debian 12) has no connect timeout for asynchronous
 * contexts and resolves host names with a blocking getaddrinfo(), so the
 * connection's own timer bounds connecting, and only numeric addresses are
 * handed to hiredis.  A context must never be freed inside its connect or
 * disconnect callback: drops are deferred to an event of their own.
 */
#include "store.h"

#include <ctype.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"

#define STR_MAX_ADDRS   8     /* Sentinels, or a server's addresses */
#define STR_MAX_HELD    10000 /* requests one connection may hold */
#define STR_BACKOFF_MIN 100   /* ms */
#define STR_BACKOFF_MAX 5000
#define STR_SCAN_COUNT  "1000"

/*
 * The scripts.  Numbers are stored with %.17g, which reads back as the
 * same double (Lua's tostring() would keep only 14 digits), and replies are
 * whole numbers, because Redis truncates Lua numbers to integers.  A key of
 * the wrong type is replaced, as the memory store does.  Each script
 * mirrors its function in store_memory.c step by step.
 */
#define STR_LUA_COMMON                                                         \
	"local function num(x) return string.format('%.17g', x) end\n"         \
	"local function hget(k, ...)\n"                                        \
	"  local r = redis.pcall('HMGET', k, ...)\n"                           \
	"  if r.err then redis.call('DEL', k); return {} end\n"                \
	"  return r\n"                                                         \
	"end\n"                                                                \
	"local function ttl(k, ms)\n"                                          \
	"  if ms > 0 then redis.call('PEXPIRE', k, ms)\n"                      \
	"  else redis.call('PERSIST', k) end\n"                                \
	"end\n"

static const char str_lua_greylist[] = STR_LUA_COMMON
    "local now, delay, window = tonumber(ARGV[1]), tonumber(ARGV[2]), "
    "tonumber(ARGV[3])\n"
    "local pass_ttl, awl_after = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "for i = 3, #KEYS do\n"
    "  local w = redis.pcall('GET', KEYS[i])\n"
    "  if type(w) == 'table' and w.err then return {5, 0, 0} end\n"
    "  if w then\n"
    "    local x = tonumber(w)\n"
    "    if x == nil or x == 0 or x > now then return {5, 0, 0} end\n"
    "  end\n"
    "end\n"
    "local a = hget(KEYS[2], 'n', 'last')\n"
    "local n = tonumber(a[1]) or 0\n"
    "if awl_after > 0 and n >= awl_after then\n"
    "  if now - (tonumber(a[2]) or 0) >= 60 then\n"
    "    n = n + 1\n"
    "    redis.call('HSET', KEYS[2], 'n', num(n), 'last', num(now))\n"
    "  end\n"
    "  ttl(KEYS[2], pass_ttl * 1000)\n"
    "  return {4, 0, n}\n"
    "end\n"
    "local t = hget(KEYS[1], 'first', 'passed')\n"
    "local first, passed = tonumber(t[1]), tonumber(t[2]) or 0\n"
    "local res, left, passing = 0, 0, false\n"
    "if first == nil or (passed == 0 and now - first > window) or\n"
    "   (passed ~= 0 and now - passed > pass_ttl) then\n"
    "  redis.call('HSET', KEYS[1], 'first', num(now), 'passed', '0')\n"
    "  ttl(KEYS[1], window * 1000)\n"
    "  res, left = 0, delay\n"
    "elseif passed == 0 and now - first < delay then\n"
    "  res, left = 1, delay - (now - first)\n"
    "else\n"
    "  if passed ~= 0 then res = 3 else res = 2 end\n"
    "  redis.call('HSET', KEYS[1], 'passed', num(now))\n"
    "  ttl(KEYS[1], pass_ttl * 1000)\n"
    "  passing = true\n"
    "end\n"
    "a = hget(KEYS[2], 'n', 'last')\n"
    "n = tonumber(a[1]) or 0\n"
    "if passing then\n"
    "  if not (a[1] or a[2]) or now - (tonumber(a[2]) or 0) >= 60 then\n"
    "    n = n + 1\n"
    "    redis.call('HSET', KEYS[2], 'n', num(n), 'last', num(now))\n"
    "  end\n"
    "  ttl(KEYS[2], pass_ttl * 1000)\n"
    "end\n"
    "return {res, left, n}\n";

static const char str_lua_ratelimit[] = STR_LUA_COMMON
    "local now, cost = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local limit, period = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local h = hget(KEYS[1], 'level', 'ts')\n"
    "local level = tonumber(h[1]) or 0\n"
    "local ts = tonumber(h[2]) or now\n"
    "level = level - (now - ts) * limit / period\n"
    "if level < 0 then level = 0 end\n"
    "local over = 0\n"
    "if level + cost > limit then over = 1 else level = level + cost end\n"
    "redis.call('HSET', KEYS[1], 'level', num(level), 'ts', num(now))\n"
    "ttl(KEYS[1], period)\n"
    "return {over, math.ceil(level)}\n";

/* Reputation: ARGV[3] absent for a read. */
static const char str_lua_rep[] = STR_LUA_COMMON
    "local now, half = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local field, keep = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local names = {'a', 't', 'r', 'g'}\n"
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local h = hget(k, 'a', 't', 'r', 'g', 'ts')\n"
    "  local exists = h[1] or h[2] or h[3] or h[4] or h[5]\n"
    "  local age = 0\n"
    "  if exists then age = now - (tonumber(h[5]) or 0) end\n"
    "  if age < 0 then age = 0 end\n"
    "  local decay = 2 ^ ((-age) / half)\n"
    "  if field == nil then\n"
    "    for f = 1, 4 do\n"
    "      local x = 100 * (tonumber(h[f]) or 0) * decay\n"
    "      local r = math.floor(x)\n"
    "      if x - r >= 0.5 then r = r + 1 end\n"
    "      out[#out + 1] = r\n"
    "    end\n"
    "  else\n"
    "    local c = {}\n"
    "    for f = 1, 4 do c[f] = (tonumber(h[f]) or 0) * decay end\n"
    "    c[field % 4 + 1] = c[field % 4 + 1] + 1\n"
    "    redis.call('HSET', k, 'a', num(c[1]), 't', num(c[2]), 'r',\n"
    "               num(c[3]), 'g', num(c[4]), 'ts', num(now))\n"
    "    ttl(k, keep * 1000)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* A key's TTL (s, rounded up; -1 none; -2 absent) then its value, or its
 * fields and values, numbers written as Lua's tostring() writes them (the
 * text the memory store gives). */
static const char str_lua_get[] =
    "local k = KEYS[1]\n"
    "local t = redis.call('TYPE', k).ok\n"
    "if t == 'none' then return {-2} end\n"
    "local ms = redis.call('PTTL', k)\n"
    "if ms > 0 then ms = math.floor((ms + 999) / 1000) end\n"
    "local out = {ms}\n"
    "if t == 'string' then\n"
    "  out[2] = redis.call('GET', k)\n"
    "elseif t == 'hash' then\n"
    "  local h = redis.call('HGETALL', k)\n"
    "  for i = 1, #h, 2 do\n"
    "    local v = tonumber(h[i + 1])\n"
    "    out[#out + 1] = h[i]\n"
    "    if v then out[#out + 1] = tostring(v) else out[#out + 1] = h[i + 1]"
    " end\n"
    "  end\n"
    "end\n"
    "return out\n";

enum str_script {
	STR_GREYLIST = 0,
	STR_RATELIMIT,
	STR_REP,
	STR_GET,
	STR_NSCRIPTS,
};

static const char *const str_scripts[STR_NSCRIPTS] = {
    str_lua_greylist,
    str_lua_ratelimit,
    str_lua_rep,
    str_lua_get,
};

struct str_addr {
	char host[INET6_ADDRSTRLEN];
	int port;
};

/* What st_open parsed: process lifetime. */
static struct {
	bool open;
	bool sentinel;
	/* The server's addresses (tried in turn), or the Sentinels'. */
	struct str_addr addrs[STR_MAX_ADDRS];
	unsigned naddrs;
	char master[128]; /* Sentinel's name of the master */
	char *user, *password;
	int db;
	double timeout; /* timeouts.store */
	struct str_conn **conns;
	unsigned nconns;
} str;

enum str_state {
	STR_DOWN = 0,
	STR_CONNECTING,
	STR_UP,
};

struct st_req;
TAILQ_HEAD(str_req_list, st_req);

struct str_conn {
	struct event_base *base;
	enum str_state state;
	redisAsyncContext *ac;  /* the server (master) */
	redisAsyncContext *sac; /* a Sentinel being asked */
	struct str_addr master; /* with Sentinel: its last answer */
	unsigned next;          /* the address (or Sentinel) to try first */
	unsigned tried;      /* addresses or Sentinels tried in this attempt */
	struct event *timer; /* DOWN: retry; CONNECTING: give up */
	struct event *drop_ev; /* deferred drop (never in a callback) */
	unsigned backoff_ms;
	unsigned handshake_left; /* replies still expected */
	char sha[STR_NSCRIPTS][41];
	struct str_req_list waiting; /* CONNECTING: not sent yet */
	unsigned held;               /* waiting + in hiredis */
	uint64_t replies;            /* replies read on this ac */
	char why[256];               /* why it is down, for the callers */
	bool complained;             /* the outage was logged */
	bool dropping;               /* drop_ev is active: why is set */
	bool closing;                /* no more done calls, no reconnect */
};

struct st_req {
	struct str_conn *conn;
	st_done_fn *done;
	void *arg;
	struct event timer;
	TAILQ_ENTRY(st_req) link; /* in conn->waiting */
	bool waiting;
	bool in_hiredis; /* hiredis holds it as a callback's privdata */
	bool answered;   /* done ran, or timed out, or cancelled */
	bool eval_sent;  /* NOSCRIPT: resent as EVAL once */
	uint64_t replies_at_send;
	/* The command, copied. */
	enum st_op op;
	char *keys[ST_MAX_KEYS];
	unsigned nkeys;
	int64_t args[ST_MAX_ARGS];
	unsigned nargs;
	char *str;
	/* ST_KEYS: the SCAN so far. */
	char cursor[24];
	char **found;
	unsigned nfound;
};

static void str_conn_connect(struct str_conn *conn);
static int str_req_send(struct str_conn *conn, struct st_req *req);

static void
str_fail(struct st_reply *r, const char *why)
{
	memset(r, 0, sizeof(*r));
	r->status = -1;
	snprintf(r->error, sizeof(r->error), "%.127s", why);
}

static void
str_conn_name(const struct str_conn *conn, char *buf, size_t size)
{
	if (str.sentinel)
		snprintf(buf, size, "redis master %s (%s:%d)", str.master,
		         conn->master.host[0] ? conn->master.host : "?",
		         conn->master.port);
	else
		snprintf(buf, size, "redis %s:%d", str.addrs[conn->next].host,
		         str.addrs[conn->next].port);
}

/* --- requests ----------------------------------------------------------- */

static void
str_req_free(struct st_req *req)
{
	if (event_initialized(&req->timer))
		event_del(&req->timer);
	for (unsigned i = 0; i < req->nkeys; i++)
		free(req->keys[i]);
	free(req->str);
	for (unsigned i = 0; i < req->nfound; i++)
		free(req->found[i]);
	free(req->found);
	free(req);
}

/* str_req_unhold - the connection no longer holds req; free it if it was
 * answered. */
static void
str_req_release(struct st_req *req)
{
	if (req->waiting) {
		TAILQ_REMOVE(&req->conn->waiting, req, link);
		req->waiting = false;
		req->conn->held--;
	}
	if (!req->in_hiredis)
		str_req_free(req);
}

/* str_req_answer - give r to the caller (unless it cancelled or the store
 * is closing), once; req is freed unless hiredis still holds it. */
static void
str_req_answer(struct st_req *req, struct st_reply *r)
{
	event_del(&req->timer);
	if (!req->answered) {
		req->answered = true;
		px_metrics_store(r->status == 0);
		if (!req->conn->closing)
			req->done(req->arg, r);
	}
	st_reply_clear(r);
	str_req_release(req);
}

static void
str_req_fail(struct st_req *req, const char *why)
{
	struct st_reply r;

	str_fail(&r, why);
	str_req_answer(req, &r);
}

/* str_conn_drop_later - drop the connection from an event of its own:
 * hiredis must not free a context inside one of its callbacks. */
static void
str_conn_drop_later(struct str_conn *conn, const char *why)
{
	if (conn->closing || conn->dropping)
		return; /* the first reason is the one to tell */
	conn->dropping = true;
	snprintf(conn->why, sizeof(conn->why), "%s", why);
	event_active(conn->drop_ev, EV_TIMEOUT, 0);
}

static void
str_req_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct st_req *req = arg;
	struct str_conn *conn = req->conn;

	/* Nothing at all came back since it was sent: the server is stuck
	 * or gone without a reset.  Reconnect rather than pile up more. */
	if (req->in_hiredis && conn->ac != NULL &&
	    conn->replies == req->replies_at_send)
		str_conn_drop_later(conn, "no reply within timeouts.store");
	str_req_fail(req, "timeout");
}

static const char *
str_int(char *buf, size_t size, int64_t v)
{
	snprintf(buf, size, "%lld", (long long)v);
	return buf;
}

/* str_glob_escape - prefix as a SCAN MATCH pattern matching itself then
 * anything. */
static void
str_glob_prefix(char *out, size_t size, const char *prefix)
{
	size_t o = 0;

	for (const char *p = prefix; *p != '\0' && o + 3 < size; p++) {
		if (strchr("*?[]\\", *p) != NULL)
			out[o++] = '\\';
		out[o++] = *p;
	}
	out[o++] = '*';
	out[o] = '\0';
}

static void str_req_cb(redisAsyncContext *ac, void *reply, void *privdata);

/* str_req_send - put req on the connection (UP); -1 when hiredis refuses
 * it (the context is being torn down): req is then the caller's to fail. */
static int
str_req_send(struct str_conn *conn, struct st_req *req)
{
	const char *argv[4 + ST_MAX_KEYS + ST_MAX_ARGS + 4];
	char nums[ST_MAX_ARGS + 1][24];
	char pattern[1024];
	int argc = 0;
	int script = -1;

	switch (req->op) {
	case ST_GREYLIST:
		script = STR_GREYLIST;
		break;
	case ST_RATELIMIT:
		script = STR_RATELIMIT;
		break;
	case ST_REP_GET:
	case ST_REP_ADD:
		script = STR_REP;
		break;
	case ST_GET:
		script = STR_GET;
		break;
	case ST_SET:
		argv[argc++] = "SET";
		argv[argc++] = req->keys[0];
		argv[argc++] = req->str != NULL ? req->str : "0";
		if (req->nargs > 0 && req->args[0] > 0) {
			argv[argc++] = "EX";
			argv[argc++] =
			    str_int(nums[0], sizeof(nums[0]), req->args[0]);
		}
		break;
	case ST_DEL:
		argv[argc++] = "DEL";
		for (unsigned i = 0; i < req->nkeys; i++)
			argv[argc++] = req->keys[i];
		break;
	case ST_SISMEMBER:
		/* One command, every candidate at once (Redis >= 6.2). */
		argv[argc++] = "SMISMEMBER";
		for (unsigned i = 0; i < req->nkeys; i++)
			argv[argc++] = req->keys[i];
		break;
	case ST_KEYS:
		str_glob_prefix(pattern, sizeof(pattern), req->keys[0]);
		argv[argc++] = "SCAN";
		argv[argc++] = req->cursor;
		argv[argc++] = "MATCH";
		argv[argc++] = pattern;
		argv[argc++] = "COUNT";
		argv[argc++] = STR_SCAN_COUNT;
		break;
	default:
		abort(); /* st_redis_call checked the op */
	}
	if (script >= 0) {
		unsigned nargs = req->nargs;

		if (req->eval_sent) {
			argv[argc++] = "EVAL";
			argv[argc++] = str_scripts[script];
		} else {
			argv[argc++] = "EVALSHA";
			argv[argc++] = conn->sha[script];
		}
		argv[argc++] = str_int(nums[ST_MAX_ARGS], 24, req->nkeys);
		for (unsigned i = 0; i < req->nkeys; i++)
			argv[argc++] = req->keys[i];
		/* The reputation script reads unless it is given a field. */
		if (req->op == ST_REP_GET && nargs > 2)
			nargs = 2;
		for (unsigned i = 0; i < nargs; i++)
			argv[argc++] =
			    str_int(nums[i], sizeof(nums[i]), req->args[i]);
	}
	if (redisAsyncCommandArgv(conn->ac, str_req_cb, req, argc, argv,
	                          NULL) != REDIS_OK)
		return -1;
	req->in_hiredis = true;
	req->replies_at_send = conn->replies;
	conn->held++;
	return 0;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* str_keys_next - one SCAN reply: keep its keys; true when done. */
static bool
str_keys_next(struct st_req *req, const redisReply *reply)
{
	int64_t max = req->nargs > 0 ? req->args[0] : 1000;
	const redisReply *keys;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_ARRAY)
		return true;
	snprintf(req->cursor, sizeof(req->cursor), "%s",
	         reply->element[0]->str);
	keys = reply->element[1];
	for (size_t i = 0; i < keys->elements; i++) {
		if ((int64_t)req->nfound >= max)
			break;
		if (keys->element[i]->type != REDIS_REPLY_STRING)
			continue;
		req->found = px_realloc(req->found, (req->nfound + 1) *
		                                        sizeof(*req->found));
		req->found[req->nfound++] =
		    px_strndup(keys->element[i]->str, keys->element[i]->len);
	}
	/* SCAN may return a key twice (the table was rehashed meanwhile). */
	if (req->nfound > 1) {
		unsigned n = 1;

		qsort(req->found, req->nfound, sizeof(*req->found), str_cmp);
		for (unsigned i = 1; i < req->nfound; i++) {
			if (strcmp(req->found[i], req->found[n - 1]) == 0)
				free(req->found[i]);
			else
				req->found[n++] = req->found[i];
		}
		req->nfound = n;
	}
	return strcmp(req->cursor, "0") == 0 || (int64_t)req->nfound >= max;
}

/* str_reply_parse - reply (not an error) into r for req's op; -1 when it
 * has a shape no script gives. */
static int
str_reply_parse(struct st_req *req, const redisReply *reply, struct st_reply *r)
{
	memset(r, 0, sizeof(*r));
	switch (req->op) {
	case ST_SET:
		return reply->type == REDIS_REPLY_STATUS ? 0 : -1;
	case ST_DEL:
		if (reply->type != REDIS_REPLY_INTEGER)
			return -1;
		r->nv = 1;
		r->v[0] = reply->integer;
		return 0;
	case ST_KEYS:
		r->strs = req->found;
		r->nstrs = req->nfound;
		req->found = NULL;
		req->nfound = 0;
		return 0;
	case ST_GET:
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
		    reply->element[0]->type != REDIS_REPLY_INTEGER)
			return -1;
		r->nv = 1;
		r->v[0] = reply->element[0]->integer;
		if (reply->elements > 1)
			r->strs =
			    px_calloc(reply->elements - 1, sizeof(char *));
		for (size_t i = 1; i < reply->elements; i++) {
			const redisReply *e = reply->element[i];

			if (e->type != REDIS_REPLY_STRING)
				continue;
			r->strs[r->nstrs++] = px_strndup(e->str, e->len);
		}
		return 0;
	default:
		if (reply->type != REDIS_REPLY_ARRAY ||
		    reply->elements > ST_MAX_V)
			return -1;
		for (size_t i = 0; i < reply->elements; i++) {
			if (reply->element[i]->type != REDIS_REPLY_INTEGER)
				return -1;
			r->v[r->nv++] = reply->element[i]->integer;
		}
		return 0;
	}
}

static void
str_req_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct st_req *req = privdata;
	struct str_conn *conn = req->conn;
	const redisReply *reply = reply_;
	struct st_reply r;

	req->in_hiredis = false;
	conn->held--;
	if (reply != NULL)
		conn->replies++;
	if (req->answered) {
		str_req_free(req); /* timed out or cancelled: the late reply */
		return;
	}
	if (reply == NULL) {
		str_req_fail(req, conn->why[0] ? conn->why : "connection lost");
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		char why[128];

		if (strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
		    !req->eval_sent && ac == conn->ac) {
			/* SCRIPT FLUSH since the handshake: EVAL loads it. */
			req->eval_sent = true;
			if (str_req_send(conn, req) < 0)
				str_req_fail(req, "connection lost");
			return;
		}
		if (strncmp(reply->str, "READONLY", 8) == 0)
			str_conn_drop_later(conn,
			                    "the master became a replica");
		snprintf(why, sizeof(why), "redis: %.100s", reply->str);
		str_req_fail(req, why);
		return;
	}
	if (req->op == ST_KEYS && !str_keys_next(req, reply) &&
	    ac == conn->ac) {
		/* The next SCAN page. */
		if (str_req_send(conn, req) < 0)
			str_req_fail(req, "connection lost");
		return;
	}
	if (str_reply_parse(req, reply, &r) < 0) {
		st_reply_clear(&r);
		str_req_fail(req, "unexpected reply from redis");
		return;
	}
	str_req_answer(req, &r);
}

/* --- connections -------------------------------------------------------- */

static void
str_timer_set(struct str_conn *conn, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(conn->timer, &tv);
}

/* str_conn_down - the attempt or connection failed (why); the waiting
 * requests fail and the next attempt is scheduled with backoff. */
static void
str_conn_down(struct str_conn *conn, const char *why)
{
	char name[192];

	if (conn->state != STR_DOWN) {
		str_conn_name(conn, name, sizeof(name));
		if (!conn->complained)
			px_log_warn("%s: %s; retrying", name, why);
		else
			px_log_debug("%s: %s", name, why);
	}
	/* A server with several addresses: the next one next time. */
	if (!str.sentinel && conn->state == STR_CONNECTING)
		conn->next = (conn->next + 1) % str.naddrs;
	conn->complained = true;
	conn->state = STR_DOWN;
	snprintf(conn->why, sizeof(conn->why), "redis down: %s", why);
	while (!TAILQ_EMPTY(&conn->waiting))
		str_req_fail(TAILQ_FIRST(&conn->waiting), conn->why);
	if (conn->closing)
		return;
	str_timer_set(conn, conn->backoff_ms);
	conn->backoff_ms *= 2;
	if (conn->backoff_ms > STR_BACKOFF_MAX)
		conn->backoff_ms = STR_BACKOFF_MAX;
}

/* str_conn_free_contexts - free the contexts outside their callbacks;
 * hiredis calls the pending callbacks with NULL replies. */
static void
str_conn_free_contexts(struct str_conn *conn)
{
	redisAsyncContext *ac = conn->ac, *sac = conn->sac;

	conn->ac = conn->sac = NULL;
	if (sac != NULL)
		redisAsyncFree(sac);
	if (ac != NULL)
		redisAsyncFree(ac);
}

static void
str_conn_drop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct str_conn *conn = arg;
	char why[256];

	snprintf(why, sizeof(why), "%s", conn->why);
	conn->dropping = false;
	str_conn_free_contexts(conn);
	if (conn->state != STR_DOWN)
		str_conn_down(conn, why);
}

static void
str_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct str_conn *conn = arg;

	if (conn->state == STR_DOWN) {
		str_conn_connect(conn);
	} else if (conn->state == STR_CONNECTING) {
		str_conn_free_contexts(conn);
		str_conn_down(conn, "connect timeout");
	}
}

static void
str_conn_up(struct str_conn *conn)
{
	char name[192];

	str_conn_name(conn, name, sizeof(name));
	if (conn->complained)
		px_log_info("%s: connected", name);
	else
		px_log_debug("%s: connected", name);
	evtimer_del(conn->timer);
	conn->state = STR_UP;
	conn->complained = false;
	conn->why[0] = '\0';
	conn->backoff_ms = STR_BACKOFF_MIN;
	while (!TAILQ_EMPTY(&conn->waiting)) {
		struct st_req *req = TAILQ_FIRST(&conn->waiting);

		TAILQ_REMOVE(&conn->waiting, req, link);
		req->waiting = false;
		conn->held--;
		if (str_req_send(conn, req) < 0)
			str_req_fail(req, "connection lost");
	}
}

/* The handshake steps; the step is the callback's privdata. */
enum str_step {
	STR_STEP_AUTH = 0,
	STR_STEP_SELECT,
	STR_STEP_ROLE,
	STR_STEP_LOAD, /* + script */
};

static void
str_handshake_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct str_conn *conn = ac->data;
	const redisReply *reply = reply_;
	unsigned step = (unsigned)(uintptr_t)privdata;
	char why[160];

	if (conn == NULL || ac != conn->ac || reply == NULL ||
	    conn->state != STR_CONNECTING || conn->dropping)
		return; /* a dropped context; the drop handles it */
	conn->replies++;
	if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "%s: %.100s",
		         step == STR_STEP_AUTH     ? "AUTH"
		         : step == STR_STEP_SELECT ? "SELECT"
		         : step == STR_STEP_ROLE   ? "ROLE"
		                                   : "SCRIPT LOAD",
		         reply->str);
		str_conn_drop_later(conn, why);
		return;
	}
	if (step == STR_STEP_ROLE &&
	    (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	     reply->element[0]->type != REDIS_REPLY_STRING ||
	     strcmp(reply->element[0]->str, "master") != 0)) {
		str_conn_drop_later(conn, "Sentinel named a server that is "
		                          "not a master (ROLE)");
		return;
	}
	if (step >= STR_STEP_LOAD) {
		if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
			str_conn_drop_later(conn, "SCRIPT LOAD: bad reply");
			return;
		}
		memcpy(conn->sha[step - STR_STEP_LOAD], reply->str, 40);
		conn->sha[step - STR_STEP_LOAD][40] = '\0';
	}
	if (--conn->handshake_left == 0)
		str_conn_up(conn);
}

static void
str_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct str_conn *conn = ac->data;

	/* Called from inside hiredis, which frees ac afterwards. */
	if (conn == NULL || ac != conn->ac)
		return; /* we dropped it ourselves */
	conn->ac = NULL;
	if (!conn->closing)
		str_conn_down(conn, ac->errstr != NULL && ac->err != 0
		                        ? ac->errstr
		                        : "connection closed");
}

static void str_conn_open_server(struct str_conn *conn,
                                 const struct str_addr *addr);

/* str_conn_unreachable - connecting failed (why): a server's next address
 * if it has one not tried yet in this attempt, else down. */
static void
str_conn_unreachable(struct str_conn *conn, const char *why)
{
	if (!str.sentinel && ++conn->tried < str.naddrs) {
		conn->next = (conn->next + 1) % str.naddrs;
		str_conn_open_server(conn, &str.addrs[conn->next]);
		return;
	}
	str_conn_down(conn, why);
}

static void
str_connect_cb(const redisAsyncContext *ac, int status)
{
	struct str_conn *conn = ac->data;
	char why[160];

	if (status == REDIS_OK || conn == NULL || ac != conn->ac)
		return;
	/* hiredis frees ac after this: forget it first. */
	conn->ac = NULL;
	snprintf(why, sizeof(why), "connect: %s",
	         ac->errstr != NULL ? ac->errstr : "failed");
	if (!conn->closing)
		str_conn_unreachable(conn, why);
}

static void
str_cmd(redisAsyncContext *ac, unsigned step, int argc, const char **argv)
{
	redisAsyncCommandArgv(ac, str_handshake_cb, (void *)(uintptr_t)step,
	                      argc, argv, NULL);
}

/* str_conn_open_server - connect to addr and send the handshake. */
static void
str_conn_open_server(struct str_conn *conn, const struct str_addr *addr)
{
	redisAsyncContext *ac = redisAsyncConnect(addr->host, addr->port);
	char why[160], db[16];

	if (ac == NULL || ac->err != 0) {
		snprintf(why, sizeof(why), "connect: %s",
		         ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		str_conn_unreachable(conn, why);
		return;
	}
	ac->data = conn;
	conn->ac = ac;
	conn->replies = 0;
	redisLibeventAttach(ac, conn->base);
	redisAsyncSetConnectCallback(ac, str_connect_cb);
	redisAsyncSetDisconnectCallback(ac, str_disconnect_cb);
	conn->handshake_left = 0;
	if (str.password != NULL) {
		const char *argv[3] = {"AUTH", str.user, str.password};

		if (str.user != NULL)
			str_cmd(ac, STR_STEP_AUTH, 3, argv);
		else {
			argv[1] = str.password;
			str_cmd(ac, STR_STEP_AUTH, 2, argv);
		}
		conn->handshake_left++;
	}
	if (str.db != 0) {
		const char *argv[2] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", str.db);
		str_cmd(ac, STR_STEP_SELECT, 2, argv);
		conn->handshake_left++;
	}
	if (str.sentinel) {
		const char *argv[1] = {"ROLE"};

		str_cmd(ac, STR_STEP_ROLE, 1, argv);
		conn->handshake_left++;
	}
	for (unsigned i = 0; i < STR_NSCRIPTS; i++) {
		const char *argv[3] = {"SCRIPT", "LOAD", str_scripts[i]};

		str_cmd(ac, STR_STEP_LOAD + i, 3, argv);
		conn->handshake_left++;
	}
}

static void str_sentinel_ask(struct str_conn *conn);

static void
str_sentinel_cb(redisAsyncContext *sac, void *reply_, void *privdata)
{
	struct str_conn *conn = sac->data;
	const redisReply *reply = reply_;
	struct str_addr *m;
	struct addrinfo hints, *ai = NULL;

	if (conn == NULL || sac != conn->sac)
		return;
	conn->sac = NULL;
	if (reply != NULL)
		redisAsyncDisconnect(sac); /* after this callback */
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING) {
		/* Down, or it does not know the master: the next one. */
		if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
			px_log_debug("redis sentinel %s:%d: %s",
			             str.addrs[conn->next].host,
			             str.addrs[conn->next].port, reply->str);
		conn->next = (conn->next + 1) % str.naddrs;
		str_sentinel_ask(conn);
		return;
	}
	/* Only numeric addresses: a name would need a blocking lookup. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(reply->element[0]->str, NULL, &hints, &ai) != 0) {
		str_conn_down(conn, "Sentinel gave a master address that is "
		                    "not numeric");
		return;
	}
	freeaddrinfo(ai);
	m = &conn->master;
	snprintf(m->host, sizeof(m->host), "%s", reply->element[0]->str);
	m->port = atoi(reply->element[1]->str);
	str_conn_open_server(conn, m);
}

/* str_sentinel_ask - ask the next Sentinel not tried in this attempt for
 * the master's address. */
static void
str_sentinel_ask(struct str_conn *conn)
{
	const struct str_addr *s;
	redisAsyncContext *sac;
	const char *argv[3] = {"SENTINEL", "get-master-addr-by-name",
	                       str.master};

	if (conn->tried++ == str.naddrs) {
		str_conn_down(conn, "no Sentinel knows the master");
		return;
	}
	s = &str.addrs[conn->next];
	sac = redisAsyncConnect(s->host, s->port);
	if (sac == NULL || sac->err != 0) {
		if (sac != NULL)
			redisAsyncFree(sac);
		conn->next = (conn->next + 1) % str.naddrs;
		str_sentinel_ask(conn);
		return;
	}
	sac->data = conn;
	conn->sac = sac;
	redisLibeventAttach(sac, conn->base);
	redisAsyncCommandArgv(sac, str_sentinel_cb, NULL, 3, argv, NULL);
}

/* str_conn_connect - start an attempt, bounded by the connection's timer. */
static void
str_conn_connect(struct str_conn *conn)
{
	double t = str.timeout > 1.0 ? str.timeout : 1.0;

	conn->state = STR_CONNECTING;
	conn->tried = 0;
	str_timer_set(conn, (unsigned)(t * 1000));
	if (str.sentinel) {
		str_sentinel_ask(conn);
	} else {
		str_conn_open_server(conn, &str.addrs[conn->next]);
	}
}

static struct str_conn *
str_conn_new(struct event_base *base)
{
	struct str_conn *conn = px_calloc(1, sizeof(*conn));

	conn->base = base;
	conn->timer = evtimer_new(base, str_conn_timer_cb, conn);
	conn->drop_ev = event_new(base, -1, 0, str_conn_drop_cb, conn);
	conn->backoff_ms = STR_BACKOFF_MIN;
	TAILQ_INIT(&conn->waiting);
	str_conn_connect(conn);
	return conn;
}

/* str_conn_free - no done runs from here on; every request is freed. */
static void
str_conn_free(struct str_conn *conn)
{
	if (conn == NULL)
		return;
	conn->closing = true;
	str_conn_free_contexts(conn);
	while (!TAILQ_EMPTY(&conn->waiting))
		str_req_release(TAILQ_FIRST(&conn->waiting));
	event_free(conn->timer);
	event_free(conn->drop_ev);
	free(conn);
}

/* --- the backend -------------------------------------------------------- */

static int
str_call_conn(struct str_conn *conn, const struct st_cmd *cmd, double timeout,
              st_done_fn *done, void *arg, struct st_reply *r,
              struct st_req **req_r)
{
	struct st_req *req;
	struct timeval tv;

	*req_r = NULL;
	if (cmd->nkeys == 0 || cmd->nkeys > ST_MAX_KEYS ||
	    cmd->nargs > ST_MAX_ARGS || (unsigned)cmd->op >= ST_NOPS) {
		str_fail(r, "bad command");
		return 1;
	}
	if (conn->state == STR_DOWN) {
		str_fail(r, conn->why);
		return 1;
	}
	if (conn->held >= STR_MAX_HELD) {
		str_fail(r, "too many requests in flight");
		return 1;
	}
	req = px_calloc(1, sizeof(*req));
	req->conn = conn;
	req->done = done;
	req->arg = arg;
	req->op = cmd->op;
	req->nkeys = cmd->nkeys;
	for (unsigned i = 0; i < cmd->nkeys; i++)
		req->keys[i] = px_strdup(cmd->keys[i]);
	req->nargs = cmd->nargs;
	memcpy(req->args, cmd->args, sizeof(req->args));
	if (cmd->str != NULL)
		req->str = px_strdup(cmd->str);
	snprintf(req->cursor, sizeof(req->cursor), "0");
	evtimer_assign(&req->timer, conn->base, str_req_timeout, req);
	tv = px_timeval(timeout);
	evtimer_add(&req->timer, &tv);
	if (conn->state == STR_UP) {
		if (str_req_send(conn, req) < 0) {
			/* Lost, and hiredis is failing its requests: say so
			 * now (done must not run). */
			str_req_free(req);
			str_fail(r, "connection lost");
			return 1;
		}
	} else {
		TAILQ_INSERT_TAIL(&conn->waiting, req, link);
		req->waiting = true;
		conn->held++;
	}
	*req_r = req;
	return 0;
}

static int
st_redis_call(struct px_loop *loop, const struct st_cmd *cmd, st_done_fn *done,
              void *arg, struct st_reply *r, struct st_req **req_r)
{
	unsigned i = px_loop_index(loop);

	*req_r = NULL;
	if (i >= str.nconns) {
		str_fail(r, "loop index out of range");
		return 1;
	}
	if (str.conns[i] == NULL)
		str.conns[i] = str_conn_new(px_loop_base(loop));
	return str_call_conn(str.conns[i], cmd, str.timeout, done, arg, r,
	                     req_r);
}

static void
st_redis_cancel(struct st_req *req)
{
	event_del(&req->timer);
	req->answered = true;
	str_req_release(req);
}

struct str_sync {
	struct st_reply *r;
	bool answered;
};

static void
str_sync_done(void *arg, const struct st_reply *r)
{
	struct str_sync *s = arg;

	*s->r = *r;
	s->r->strs = NULL;
	s->r->nstrs = 0;
	if (r->nstrs > 0) {
		s->r->strs = px_calloc(r->nstrs, sizeof(char *));
		for (unsigned i = 0; i < r->nstrs; i++)
			s->r->strs[i] = px_strdup(r->strs[i]);
		s->r->nstrs = r->nstrs;
	}
	s->answered = true;
}

static int
st_redis_call_sync(const struct st_cmd *cmd, double timeout, struct st_reply *r)
{
	struct event_base *base = event_base_new();
	struct str_conn *conn;
	struct str_sync s = {r, false};
	struct st_req *req;

	if (base == NULL) {
		str_fail(r, "event_base_new failed");
		return -1;
	}
	conn = str_conn_new(base);
	if (str_call_conn(conn, cmd, timeout, str_sync_done, &s, r, &req) == 1)
		s.answered = true;
	/* The request's timer bounds this loop. */
	while (!s.answered)
		event_base_loop(base, EVLOOP_ONCE);
	str_conn_free(conn);
	event_base_free(base);
	return r->status;
}

/* --- the URL ------------------------------------------------------------ */

static char str_errbuf[256], str_detailbuf[192];

/* str_err - what + detail as the static error text of st_open. */
static const char *
str_err(const char *what, const char *detail)
{
	snprintf(str_errbuf, sizeof(str_errbuf), "%s%s", what, detail);
	return str_errbuf;
}

/* str_unescape - %XX in the user and password part of the URL. */
static char *
str_unescape(const char *s, size_t len)
{
	char *out = px_malloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len &&
		    isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], '\0'};

			out[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* str_parse_hostport - "host", "host:port", "[v6]" or "[v6]:port": each of
 * its addresses appended to str.addrs (names are resolved here, once, at
 * startup; a name with IPv4 and IPv6 addresses gives both). */
static int
str_parse_hostport(const char *s, size_t len, int defport, const char **error_r)
{
	char buf[300], *host = buf, *port = NULL, *end;
	struct addrinfo hints, *res = NULL;
	long p = defport;
	int rc;

	if (len == 0 || len >= sizeof(buf)) {
		*error_r = "missing or too long host";
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
			*error_r = "bad [IPv6] address";
			return -1;
		}
		*close = '\0';
		host = buf + 1;
		if (close[1] == ':')
			port = close + 2;
	} else if ((port = strchr(buf, ':')) != NULL) {
		*port++ = '\0';
	}
	if (*host == '\0') {
		*error_r = "missing host";
		return -1;
	}
	if (port != NULL) {
		p = strtol(port, &end, 10);
		if (*port == '\0' || *end != '\0' || p < 1 || p > 65535) {
			*error_r = "bad port";
			return -1;
		}
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(str_detailbuf, sizeof(str_detailbuf),
		         "cannot resolve %.100s: %.60s", host,
		         gai_strerror(rc));
		*error_r = str_detailbuf;
		return -1;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		struct str_addr *a = &str.addrs[str.naddrs];

		if (str.naddrs == STR_MAX_ADDRS) {
			freeaddrinfo(res);
			*error_r = "too many addresses (8 at most)";
			return -1;
		}
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, a->host,
		                sizeof(a->host), NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		a->port = (int)p;
		str.naddrs++;
	}
	freeaddrinfo(res);
	return 0;
}

/*
 * str_parse - redis://[[user]:password@]host[:port][/db]
 *             redis+sentinel://[[user]:password@]h1[:p1],h2[:p2]/master[/db]
 * The password is the server's (the master's); Sentinels are asked without
 * one.  Ports default to 6379 and 26379, the database to 0.
 */
static int
str_parse(const char *url, const char **error_r)
{
	const char *p, *at, *slash, *hosts;
	size_t hlen;

	if (strncmp(url, "redis://", 8) == 0) {
		p = url + 8;
	} else if (strncmp(url, "redis+sentinel://", 17) == 0) {
		p = url + 17;
		str.sentinel = true;
	} else {
		*error_r = "the URL must start with redis:// or "
		           "redis+sentinel://";
		return -1;
	}
	slash = strchr(p, '/');
	/* The last @: an unencoded one in the password is taken as is. */
	at = memrchr(p, '@', slash != NULL ? (size_t)(slash - p) : strlen(p));
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));

		if (colon == NULL) {
			*error_r = "user info must be [user]:password@";
			return -1;
		}
		if (colon > p)
			str.user = str_unescape(p, (size_t)(colon - p));
		str.password =
		    str_unescape(colon + 1, (size_t)(at - colon - 1));
		p = at + 1;
	}
	hosts = p;
	hlen = slash != NULL ? (size_t)(slash - p) : strlen(p);
	if (!str.sentinel && memchr(hosts, ',', hlen) != NULL) {
		*error_r = "one host only (several are for redis+sentinel://)";
		return -1;
	}
	while (hlen > 0) {
		const char *comma = memchr(hosts, ',', hlen);
		size_t one = comma != NULL ? (size_t)(comma - hosts) : hlen;

		if (str_parse_hostport(hosts, one, str.sentinel ? 26379 : 6379,
		                       error_r) < 0)
			return -1;
		hosts += one;
		hlen -= one;
		if (comma != NULL) {
			hosts++;
			hlen--;
			if (hlen == 0) {
				*error_r = "empty host after ,";
				return -1;
			}
		}
	}
	if (str.naddrs == 0) {
		*error_r = "missing host";
		return -1;
	}
	p = slash != NULL ? slash + 1 : "";
	if (str.sentinel) {
		const char *end = strchr(p, '/');
		size_t mlen = end != NULL ? (size_t)(end - p) : strlen(p);

		if (mlen == 0 || mlen >= sizeof(str.master)) {
			*error_r = "missing or too long master name after the "
			           "Sentinels (redis+sentinel://h1,h2/master)";
			return -1;
		}
		memcpy(str.master, p, mlen);
		str.master[mlen] = '\0';
		p = end != NULL ? end + 1 : "";
	}
	if (*p != '\0') {
		char *end;
		long db = strtol(p, &end, 10);

		if (*end != '\0' || db < 0 || db > 1000000) {
			*error_r = "the database must be a number";
			return -1;
		}
		str.db = (int)db;
	}
	return 0;
}

static void
st_redis_close(void)
{
	for (unsigned i = 0; i < str.nconns; i++)
		str_conn_free(str.conns[i]);
	free(str.conns);
	free(str.user);
	free(str.password);
	memset(&str, 0, sizeof(str));
}

static int
st_redis_open(const struct px_config *cfg, const char **error_r)
{
	const char *err = NULL;
	long ncores = sysconf(_SC_NPROCESSORS_ONLN);

	memset(&str, 0, sizeof(str));
	if (str_parse(cfg->store, &err) < 0) {
		*error_r = str_err("bad store URL: ", err);
		st_redis_close();
		return -1;
	}
	str.timeout = cfg->store_timeout > 0 ? cfg->store_timeout : 1.0;
	/* Enough for every loop main.c may start. */
	str.nconns = cfg->loops > 0 ? cfg->loops : (unsigned)ncores;
	if (str.nconns < 1)
		str.nconns = 1;
	str.conns = px_calloc(str.nconns, sizeof(*str.conns));
	str.open = true;
	return 0;
}

const struct st_backend st_redis = {
    .name = "redis",
    .open = st_redis_open,
    .close = st_redis_close,
    .call = st_redis_call,
    .cancel = st_redis_cancel,
    .call_sync = st_redis_call_sync,
};
