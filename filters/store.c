/* SPDX-License-Identifier: MIT */
/*
 * store.c - picks the store backend from the `store` setting and keeps the
 * clock every stored decision is made with (see store.h).
 */
#include "store.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "metrics.h"

static const struct st_backend *st_be;
static _Atomic int64_t st_clock_offset; /* seconds */

int
st_open(const struct px_config *cfg, const char **error_r)
{
	const struct st_backend *be = &st_memory;

	if (strncmp(cfg->store, "redis", 5) == 0)
		be = &st_redis;
	if (be->open(cfg, error_r) < 0)
		return -1;
	st_be = be;
	return 0;
}

void
st_close(void)
{
	if (st_be != NULL)
		st_be->close();
	st_be = NULL;
}

bool
st_is_shared(void)
{
	return st_be == &st_redis;
}

static void
st_reply_fail(struct st_reply *r, const char *why)
{
	memset(r, 0, sizeof(*r));
	r->status = -1;
	strncpy(r->error, why, sizeof(r->error) - 1);
}

/* st_cmd_check - the keys and arguments each operation reads are there
 * (a control-socket request is outside input).  NULL or why not. */
static const char *
st_cmd_check(const struct st_cmd *cmd)
{
	static const unsigned need[ST_NOPS][2] = {
	    [ST_GREYLIST] = {2, 5},  [ST_RATELIMIT] = {1, 4},
	    [ST_REP_GET] = {1, 2},   [ST_REP_ADD] = {1, 4},
	    [ST_SET] = {1, 0},       [ST_DEL] = {1, 0},
	    [ST_GET] = {1, 0},       [ST_KEYS] = {1, 0},
	    [ST_SISMEMBER] = {2, 0},
	};

	if ((unsigned)cmd->op >= ST_NOPS)
		return "unknown operation";
	if (cmd->nkeys < need[cmd->op][0] || cmd->nkeys > ST_MAX_KEYS ||
	    cmd->nargs < need[cmd->op][1] || cmd->nargs > ST_MAX_ARGS)
		return "wrong number of keys or arguments";
	for (unsigned i = 0; i < cmd->nkeys; i++)
		if (cmd->keys[i] == NULL)
			return "missing key";
	if (cmd->op == ST_RATELIMIT && (cmd->args[3] <= 0 || cmd->args[2] <= 0))
		return "bad rate";
	if ((cmd->op == ST_REP_GET || cmd->op == ST_REP_ADD) &&
	    cmd->args[1] <= 0)
		return "bad half-life";
	if (cmd->op == ST_REP_ADD && (cmd->args[2] < 0 || cmd->args[2] > 3))
		return "bad field";
	return NULL;
}

int
st_call(struct px_loop *loop, const struct st_cmd *cmd, st_done_fn *done,
        void *arg, struct st_reply *r, struct st_req **req_r)
{
	const char *bad = st_cmd_check(cmd);

	*req_r = NULL;
	if (st_be == NULL || bad != NULL) {
		st_reply_fail(r, bad != NULL ? bad : "no store");
		return 1;
	}
	int rc = st_be->call(loop, cmd, done, arg, r, req_r);

	if (rc == 1)
		px_metrics_store(r->status == 0);
	return rc;
}

void
st_cancel(struct st_req *req)
{
	if (req != NULL && st_be != NULL)
		st_be->cancel(req);
}

int
st_call_sync(const struct st_cmd *cmd, double timeout, struct st_reply *r)
{
	const char *bad = st_cmd_check(cmd);

	if (st_be == NULL || bad != NULL) {
		st_reply_fail(r, bad != NULL ? bad : "no store");
		return -1;
	}
	return st_be->call_sync(cmd, timeout, r);
}

void
st_reply_clear(struct st_reply *r)
{
	for (unsigned i = 0; i < r->nstrs; i++)
		free(r->strs[i]);
	free(r->strs);
	r->strs = NULL;
	r->nstrs = 0;
}

int64_t
st_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
	       atomic_load(&st_clock_offset) * 1000;
}

int64_t
st_now(void)
{
	return st_now_ms() / 1000;
}

void
st_clock_advance(int64_t seconds)
{
	atomic_fetch_add(&st_clock_offset, seconds);
}
