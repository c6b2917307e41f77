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

int
st_call(struct px_loop *loop, const struct st_cmd *cmd, st_done_fn *done,
        void *arg, struct st_reply *r, struct st_req **req_r)
{
	*req_r = NULL;
	if (st_be == NULL) {
		st_reply_fail(r, "no store");
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
	if (st_be == NULL) {
		st_reply_fail(r, "no store");
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
