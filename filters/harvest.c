/* SPDX-License-Identifier: MIT */
/*
 * harvest.c - the directory-harvest defence across sessions:
 * `limits.unknown_recipients_per_client` unknown recipients (550 5.1.x,
 * mxguard's own or the backend's) from one client address within
 * `limits.unknown_recipients_window` seconds, and the client is refused
 * with 421 4.7.0 until its count drains: at its next RCPT in any session
 * and at connect (postscreen/Postfix smtpd_hard_error_limit users expect a
 * 421 and a closed connection).
 *
 *   flt_harvest          the filter: reads the client's count at connect,
 *                        421 when it is at the limit (the session reads
 *                        it again at each RCPT, before relay control)
 *   flt_harvest_count()  the session counts n unknown recipients
 *   flt_harvest_over()   whether a count's reply says "at the limit"
 *
 * The count is a leaky bucket in the store, the one ST_RATELIMIT keeps for
 * the `ratelimit` buckets (key P rl:unknown_recipients:<ip>): `limit` per
 * `window`, so a client that stops is let in again a little at a time and
 * fully after one window.  Reading is the same operation with cost 0.  On
 * Redis every instance sees the same count.  Relay-network and
 * authenticated clients are not counted (harvesting is an outsider's
 * attack; a busy internal server would trip it).  A store error lets the
 * client through unless on_store_error = "tempfail".
 */
#include "harvest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"

struct flt_hv_state {
	struct flt_call *call;
	struct st_req *req;
};

/* flt_harvest_cmd - the ST_RATELIMIT command on client's bucket (key in
 * key[size]); -1 when the address has no text form. */
static int
flt_harvest_cmd(const struct px_config *cfg,
                const struct sockaddr_storage *client, unsigned cost, char *key,
                size_t size, struct st_cmd *cmd)
{
	char ip[64];

	if (px_addr_net(client, 32, 128, ip, sizeof(ip)) < 0)
		return -1;
	ip[strcspn(ip, "/")] = '\0';
	snprintf(key, size, "%srl:unknown_recipients:%s", cfg->store_prefix,
	         ip);
	memset(cmd, 0, sizeof(*cmd));
	cmd->op = ST_RATELIMIT;
	cmd->keys[0] = key;
	cmd->nkeys = 1;
	cmd->args[0] = st_now_ms();
	cmd->args[1] = cost;
	cmd->args[2] = cfg->limits.unknown_recipients_per_client;
	cmd->args[3] = (int64_t)cfg->limits.unknown_recipients_window * 1000;
	cmd->nargs = 4;
	return 0;
}

bool
flt_harvest_over(const struct px_config *cfg, const struct st_reply *r)
{
	return r->status == 0 && r->nv >= 2 &&
	       (r->v[0] != 0 ||
	        r->v[1] >= (int64_t)cfg->limits.unknown_recipients_per_client);
}

int
flt_harvest_count(struct px_loop *loop, const struct px_config *cfg,
                  const struct sockaddr_storage *client, unsigned n,
                  st_done_fn *done, void *arg, struct st_reply *r,
                  struct st_req **req_r)
{
	char key[200];
	struct st_cmd cmd;

	*req_r = NULL;
	if (cfg->limits.unknown_recipients_per_client == 0 ||
	    flt_harvest_cmd(cfg, client, n, key, sizeof(key), &cmd) < 0) {
		memset(r, 0, sizeof(*r));
		return 1;
	}
	return st_call(loop, &cmd, done, arg, r, req_r);
}

static void *
flt_hv_new(const struct flt_session *s)
{
	if (s->cfg->limits.unknown_recipients_per_client == 0)
		return NULL;
	return px_calloc(1, sizeof(struct flt_hv_state));
}

static void
flt_hv_free(void *state)
{
	free(state);
}

static void
flt_hv_result(struct flt_call *call, const struct st_reply *r)
{
	const struct px_config *cfg = call->s->cfg;

	if (r->status != 0) {
		px_log_warn("%016llx harvest: store error: %s",
		            (unsigned long long)call->s->sid, r->error);
		if (cfg->on_store_error == PX_STORE_ERROR_TEMPFAIL)
			flt_verdict_set(call, FLT_TEMPFAIL, 451, "4.3.0",
			                "harvest store error",
			                "Temporary local problem, please try "
			                "again later");
		return;
	}
	if (!flt_harvest_over(cfg, r))
		return;
	px_log_info("%016llx unknown recipient limit client=[%s] stage=%s",
	            (unsigned long long)call->s->sid, call->s->client_ip,
	            "connect");
	px_metrics_unknown_limit();
	flt_verdict_set(
	    call, FLT_DISCONNECT, 421, "4.7.0", "unknown recipient limit",
	    "%s Error: too many unknown recipients, closing", cfg->hostname);
}

static void
flt_hv_done(void *arg, const struct st_reply *r)
{
	struct flt_hv_state *st = arg;
	struct flt_call *call = st->call;

	st->req = NULL;
	st->call = NULL;
	flt_hv_result(call, r);
	flt_resume(call);
}

/* flt_hv_check - at connect: read the client's count. */
static int
flt_hv_check(struct flt_call *call)
{
	struct flt_hv_state *st = call->state;
	const struct flt_session *s = call->s;
	struct st_cmd cmd;
	struct st_reply r;
	char key[200];

	if (st == NULL || flt_client_trusted(call) ||
	    flt_harvest_cmd(s->cfg, &s->client, 0, key, sizeof(key), &cmd) < 0)
		return 1;
	st->call = call;
	if (st_call(s->loop, &cmd, flt_hv_done, st, &r, &st->req) == 0)
		return 0;
	st->call = NULL;
	flt_hv_result(call, &r);
	st_reply_clear(&r);
	return 1;
}

static void
flt_hv_cancel(struct flt_call *call)
{
	struct flt_hv_state *st = call->state;

	st_cancel(st->req);
	st->req = NULL;
	st->call = NULL;
}

const struct flt_ops flt_harvest = {
    .name = "harvest",
    .session_new = flt_hv_new,
    .session_free = flt_hv_free,
    .on_stage =
        {
            [FLT_STAGE_CONNECT] = flt_hv_check,
        },
    .cancel = flt_hv_cancel,
};
