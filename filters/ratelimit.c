/* SPDX-License-Identifier: MIT */
/*
 * ratelimit.c - the `ratelimit` buckets: connections (counted at connect),
 * messages (at MAIL, each transaction) and recipients (at RCPT), per client
 * address, client network, sender or sender domain.
 *
 * Each bucket is a leaky bucket in the store (ST_RATELIMIT): `limit` per
 * `period`, draining continuously, so a client that keeps to the rate is
 * never refused and a burst is cut at `limit`.  Over the limit the bucket's
 * symbol is added (with its score) and the command is refused: reply 421
 * closes the session (421 4.7.0), 451 defers the command (451 4.7.1).  For
 * connections a 451 lets the greeting through and defers every recipient
 * (a 4xx greeting would make clients retry at once).  A refused attempt
 * does not fill the bucket further.
 *
 * Authenticated and relay-network clients are counted too (a compromised
 * account is what outbound limits are for).  The null sender is not a
 * "sender": per-sender buckets skip bounces; per-client ones count them.
 * Store failure follows on_store_error.
 */
#include "filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "netaddr.h"
#include "store.h"

#define FLT_RL_MAX 32 /* buckets checked at once; more are skipped */

struct flt_rl_state;

struct flt_rl_check {
	struct flt_rl_state *st;
	const struct px_ratelimit *rl;
	struct st_req *req;
};

struct flt_rl_state {
	const struct flt_session *s;
	struct flt_call *call;
	struct flt_rl_check checks[FLT_RL_MAX];
	unsigned nchecks;
	unsigned pending;
	bool starting;
};

static void *
flt_rl_new(const struct flt_session *s)
{
	struct flt_rl_state *st;

	if (s->cfg->nratelimit == 0)
		return NULL;
	st = px_calloc(1, sizeof(*st));
	st->s = s;
	return st;
}

static void
flt_rl_free(void *state)
{
	free(state);
}

/* flt_rl_entity - what bucket rl counts for this session, or -1 when it
 * does not apply (no sender). */
static int
flt_rl_entity(const struct flt_session *s, const struct px_ratelimit *rl,
              char *buf, size_t size)
{
	const char *at;

	switch (rl->per) {
	case PX_RL_CLIENT_IP:
		if (px_addr_net(&s->client, 32, 128, buf, size) < 0)
			return -1;
		buf[strcspn(buf, "/")] = '\0';
		return 0;
	case PX_RL_CLIENT_NET:
		return px_addr_net(&s->client, s->cfg->greylist.ipv4_prefix,
		                   s->cfg->greylist.ipv6_prefix, buf, size);
	case PX_RL_SENDER:
	case PX_RL_SENDER_DOMAIN:
		if (s->mail_from == NULL || s->mail_from[0] == '\0')
			return -1;
		at = strrchr(s->mail_from, '@');
		snprintf(buf, size, "%s",
		         rl->per == PX_RL_SENDER || at == NULL ? s->mail_from
		                                               : at + 1);
		for (char *p = buf; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		return 0;
	}
	return -1;
}

static void
flt_rl_result(struct flt_rl_check *ck, const struct st_reply *r)
{
	struct flt_rl_state *st = ck->st;
	struct flt_call *call = st->call;
	const struct px_ratelimit *rl = ck->rl;
	const struct px_config *cfg = call->s->cfg;

	if (r->status != 0) {
		px_log_warn("%016llx ratelimit %s: store error: %s",
		            (unsigned long long)call->s->sid, rl->name,
		            r->error);
		flt_symbol_add(call, "RATELIMIT_STORE_ERROR", 0);
		flt_log_field(call, "ratelimit", "error");
		if (cfg->on_store_error == PX_STORE_ERROR_TEMPFAIL &&
		    call->verdict.action == FLT_CONTINUE)
			flt_verdict_set(call, FLT_TEMPFAIL, 451, "4.3.0",
			                "ratelimit store error",
			                "Temporary local problem, please try "
			                "again later");
		return;
	}
	if (r->v[0] == 0)
		return;
	flt_symbol_add(call, rl->name, rl->score);
	flt_log_field(call, "ratelimit", rl->name);
	if (call->verdict.action == FLT_DISCONNECT)
		return; /* one refusal is enough */
	if (rl->reply == 421)
		flt_verdict_set(call, FLT_DISCONNECT, 421, "4.7.0", rl->name,
		                "Error: too many %s, try again later",
		                rl->what == PX_RL_CONNECTIONS ? "connections"
		                : rl->what == PX_RL_MESSAGES  ? "messages"
		                                              : "recipients");
	else
		flt_verdict_set(call, FLT_TEMPFAIL, 451, "4.7.1", rl->name,
		                "Error: rate limit exceeded, try again later");
}

static void
flt_rl_done(void *arg, const struct st_reply *r)
{
	struct flt_rl_check *ck = arg;
	struct flt_rl_state *st = ck->st;

	ck->req = NULL;
	flt_rl_result(ck, r);
	if (--st->pending == 0 && !st->starting) {
		struct flt_call *call = st->call;

		st->call = NULL;
		flt_resume(call);
	}
}

static int
flt_rl_stage(struct flt_call *call, enum px_rl_what what)
{
	struct flt_rl_state *st = call->state;
	const struct flt_session *s = call->s;
	const struct px_config *cfg = s->cfg;
	int64_t now = st_now_ms();

	if (st == NULL)
		return 1;
	st->call = call;
	st->nchecks = 0;
	st->pending = 0;
	st->starting = true;
	for (size_t i = 0; i < cfg->nratelimit && st->nchecks < FLT_RL_MAX;
	     i++) {
		const struct px_ratelimit *rl = &cfg->ratelimit[i];
		struct flt_rl_check *ck = &st->checks[st->nchecks];
		char entity[600], key[800];
		struct st_cmd cmd = {
		    .op = ST_RATELIMIT, .nkeys = 1, .nargs = 4};
		struct st_reply r;

		if (rl->what != what ||
		    flt_rl_entity(s, rl, entity, sizeof(entity)) < 0)
			continue;
		snprintf(key, sizeof(key), "%srl:%s:%s", cfg->store_prefix,
		         rl->name, entity);
		cmd.keys[0] = key;
		cmd.args[0] = now;
		cmd.args[1] = 1;
		cmd.args[2] = rl->limit;
		cmd.args[3] = (int64_t)rl->period * 1000;
		ck->st = st;
		ck->rl = rl;
		st->nchecks++;
		st->pending++;
		if (st_call(s->loop, &cmd, flt_rl_done, ck, &r, &ck->req) ==
		    1) {
			st->pending--;
			flt_rl_result(ck, &r);
			st_reply_clear(&r);
		}
	}
	st->starting = false;
	if (st->pending > 0)
		return 0;
	st->call = NULL;
	return 1;
}

static int
flt_rl_connect(struct flt_call *call)
{
	return flt_rl_stage(call, PX_RL_CONNECTIONS);
}

static int
flt_rl_mail(struct flt_call *call)
{
	return flt_rl_stage(call, PX_RL_MESSAGES);
}

static int
flt_rl_rcpt(struct flt_call *call)
{
	return flt_rl_stage(call, PX_RL_RECIPIENTS);
}

static void
flt_rl_cancel(struct flt_call *call)
{
	struct flt_rl_state *st = call->state;

	for (unsigned i = 0; i < st->nchecks; i++) {
		st_cancel(st->checks[i].req);
		st->checks[i].req = NULL;
	}
	st->pending = 0;
	st->call = NULL;
}

const struct flt_ops flt_ratelimit = {
    .name = "ratelimit",
    .session_new = flt_rl_new,
    .session_free = flt_rl_free,
    .on_stage =
        {
            [FLT_STAGE_CONNECT] = flt_rl_connect,
            [FLT_STAGE_MAIL] = flt_rl_mail,
            [FLT_STAGE_RCPT] = flt_rl_rcpt,
        },
    .cancel = flt_rl_cancel,
};
