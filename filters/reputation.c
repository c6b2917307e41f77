/* SPDX-License-Identifier: MIT */
/*
 * reputation.c - what mxguard learnt from its own verdicts about a client
 * address, its network, its HELO name and its sender domain (Haraka's
 * karma, rspamd's reputation).
 *
 * Each entity has four decaying counts in the store (ST_REP_*): messages
 * accepted, tagged, rejected, and greylist passes, each halved every
 * `half_life`.  Read at connect (address and network) and at the first RCPT of
 * each transaction (HELO name and sender domain); an entity with at least
 * `min_messages` is BAD when the rejected share reaches `bad_ratio` and GOOD
 * when the accepted and greylist-passed share reaches `good_ratio`: REP_IP_BAD
 * / REP_IP_GOOD       score_bad / score_good REP_NET_BAD / REP_NET_GOOD half of
 * those REP_HELO_BAD / REP_HELO_GOOD REP_DOMAIN_BAD / REP_DOMAIN_GOOD A good
 * address (or good network, address not bad) skips greylisting
 * (greylist.skip_good_reputation).  Updated at the end of each transaction
 * from its result: accept, tag, reject (a deferral or abort says nothing).
 *
 * SECURITY: names a client chooses freely are not trusted.  The HELO name
 * counts only when it is the client's verified (FCrDNS) name or a parent
 * of it, and the sender domain only when SPF passed for it; otherwise a
 * spammer could borrow a good name, or poison a victim's.
 */
#include "filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "log.h"
#include "netaddr.h"
#include "store.h"

enum flt_rep_kind {
	FLT_REP_IP = 0,
	FLT_REP_NET,
	FLT_REP_HELO,
	FLT_REP_DOMAIN,
	FLT_REP_NKINDS,
};

static const char *const flt_rep_names[FLT_REP_NKINDS] = {"IP", "NET", "HELO",
                                                          "DOMAIN"};
static const char *const flt_rep_keys[FLT_REP_NKINDS] = {"ip", "net", "helo",
                                                         "dom"};

struct flt_rep_state {
	const struct flt_session *s;
	struct flt_call *call;
	struct st_req *req;
	/* The entities known so far ("" = none), as store keys. */
	char keys[FLT_REP_NKINDS][600];
	enum flt_rep_kind asked[2]; /* the kinds of the read in flight */
	unsigned nasked;
	bool domain_read; /* this transaction's domain was read */
};

/* flt_rep_key - the store key of an entity, lower case. */
static void
flt_rep_key(struct flt_rep_state *st, enum flt_rep_kind kind,
            const char *entity)
{
	snprintf(st->keys[kind], sizeof(st->keys[kind]), "%srep:%s:%s",
	         st->s->cfg->store_prefix, flt_rep_keys[kind], entity);
	for (char *p = st->keys[kind]; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

static void *
flt_rep_new(const struct flt_session *s)
{
	struct flt_rep_state *st;

	if (!s->cfg->reputation.enabled)
		return NULL;
	st = px_calloc(1, sizeof(*st));
	st->s = s;
	return st;
}

static void
flt_rep_free(void *state)
{
	free(state);
}

static void
flt_rep_reset(void *state)
{
	struct flt_rep_state *st = state;

	if (st == NULL)
		return;
	st->keys[FLT_REP_DOMAIN][0] = '\0';
	st->domain_read = false;
}

/* flt_rep_judge - symbols for one entity's counts (x100). */
static void
flt_rep_judge(struct flt_call *call, enum flt_rep_kind kind, const int64_t *v)
{
	const struct px_config *cfg = call->s->cfg;
	double a = (double)v[ST_REP_ACCEPTED], t = (double)v[ST_REP_TAGGED];
	double r = (double)v[ST_REP_REJECTED], g = (double)v[ST_REP_GREYPASS];
	double total = a + t + r + g;
	double weight = kind == FLT_REP_NET ? 0.5 : 1.0;
	char sym[32];

	if (total < 100.0 * cfg->reputation.min_messages)
		return;
	if (r / total >= cfg->reputation.bad_ratio) {
		snprintf(sym, sizeof(sym), "REP_%s_BAD", flt_rep_names[kind]);
		flt_symbol_add(call, sym, cfg->reputation.score_bad * weight);
		flt_log_field(call, "reputation", "bad");
		if (kind == FLT_REP_IP)
			flt_fact_set(call, FLT_FACT_BAD_REPUTATION);
	} else if ((a + g) / total >= cfg->reputation.good_ratio) {
		snprintf(sym, sizeof(sym), "REP_%s_GOOD", flt_rep_names[kind]);
		flt_symbol_add(call, sym, cfg->reputation.score_good * weight);
		flt_log_field(call, "reputation", "good");
		if (kind == FLT_REP_IP ||
		    (kind == FLT_REP_NET &&
		     !flt_fact_has(call, FLT_FACT_BAD_REPUTATION)))
			flt_fact_set(call, FLT_FACT_GOOD_REPUTATION);
	}
}

static void
flt_rep_result(struct flt_rep_state *st, struct flt_call *call,
               const struct st_reply *r)
{
	if (r->status != 0) {
		/* Reputation only scores: a store outage scores nothing. */
		px_log_warn("%016llx reputation: store error: %s",
		            (unsigned long long)call->s->sid, r->error);
		return;
	}
	for (unsigned i = 0; i < st->nasked && 4 * i + 3 < r->nv; i++)
		flt_rep_judge(call, st->asked[i], &r->v[4 * i]);
}

static void
flt_rep_done(void *arg, const struct st_reply *r)
{
	struct flt_rep_state *st = arg;
	struct flt_call *call = st->call;

	st->req = NULL;
	st->call = NULL;
	flt_rep_result(st, call, r);
	flt_resume(call);
}

/* flt_rep_read - read the entities of kinds a (and b, if not a). */
static int
flt_rep_read(struct flt_call *call, enum flt_rep_kind a, enum flt_rep_kind b)
{
	struct flt_rep_state *st = call->state;
	const struct px_config *cfg = call->s->cfg;
	struct st_cmd cmd = {.op = ST_REP_GET, .nargs = 2};
	struct st_reply r;

	st->nasked = 0;
	for (enum flt_rep_kind k = a; k <= b; k++) {
		if (st->keys[k][0] == '\0')
			continue;
		st->asked[st->nasked++] = k;
		cmd.keys[cmd.nkeys++] = st->keys[k];
	}
	if (cmd.nkeys == 0)
		return 1;
	cmd.args[0] = st_now();
	cmd.args[1] = cfg->reputation.half_life;
	st->call = call;
	if (st_call(call->s->loop, &cmd, flt_rep_done, st, &r, &st->req) == 0)
		return 0;
	st->call = NULL;
	flt_rep_result(st, call, &r);
	st_reply_clear(&r);
	return 1;
}

/* Connect: the client's address and network (known only now: a PROXY
 * header comes after the session starts). */
static int
flt_rep_connect(struct flt_call *call)
{
	struct flt_rep_state *st = call->state;
	const struct flt_session *s = call->s;
	char net[64];

	if (st == NULL)
		return 1;
	if (px_addr_net(&s->client, 32, 128, net, sizeof(net)) == 0) {
		net[strcspn(net, "/")] = '\0';
		flt_rep_key(st, FLT_REP_IP, net);
	}
	if (px_addr_net(&s->client, s->cfg->greylist.ipv4_prefix,
	                s->cfg->greylist.ipv6_prefix, net, sizeof(net)) == 0)
		flt_rep_key(st, FLT_REP_NET, net);
	return flt_rep_read(call, FLT_REP_IP, FLT_REP_NET);
}

/* flt_rep_helo_key - the HELO entity, when the HELO is the client's
 * verified name or a parent of it. */
static void
flt_rep_helo_key(struct flt_rep_state *st, struct flt_call *call)
{
	const char *name, *helo;
	size_t nl, hl;

	if ((helo = call->s->helo) == NULL ||
	    (name = flt_call_client_name(call)) == NULL)
		return;
	nl = strlen(name);
	hl = strlen(helo);
	if (hl == 0 || hl > nl || strcasecmp(name + nl - hl, helo) != 0 ||
	    (hl < nl && name[nl - hl - 1] != '.') || strchr(helo, '.') == NULL)
		return;
	flt_rep_key(st, FLT_REP_HELO, helo);
}

/* RCPT (the first of each transaction): the HELO name (the verified name
 * is known after MAIL) and the SPF-authenticated sender domain. */
static int
flt_rep_rcpt(struct flt_call *call)
{
	struct flt_rep_state *st = call->state;
	const char *domain = NULL;

	if (st == NULL || st->domain_read)
		return 1;
	st->domain_read = true;
	st->keys[FLT_REP_HELO][0] = '\0';
	flt_rep_helo_key(st, call);
	if (flt_spf_get(call, &domain) == FLT_SPF_PASS && domain != NULL)
		flt_rep_key(st, FLT_REP_DOMAIN, domain);
	return flt_rep_read(call, FLT_REP_HELO, FLT_REP_DOMAIN);
}

static void
flt_rep_cancel(struct flt_call *call)
{
	struct flt_rep_state *st = call->state;

	st_cancel(st->req);
	st->req = NULL;
	st->call = NULL;
}

static void
flt_rep_ignore(void *arg, const struct st_reply *r)
{
	(void)arg;
	if (r->status != 0)
		px_log_warn("reputation update: store error: %s", r->error);
}

/* flt_rep_learn - count one outcome for every known entity. */
static void
flt_rep_learn(struct flt_rep_state *st, enum st_rep_field field)
{
	const struct px_config *cfg = st->s->cfg;
	struct st_cmd cmd = {.op = ST_REP_ADD, .nargs = 4};
	struct st_reply r;
	struct st_req *req;

	for (unsigned k = 0; k < FLT_REP_NKINDS; k++)
		if (st->keys[k][0] != '\0')
			cmd.keys[cmd.nkeys++] = st->keys[k];
	if (cmd.nkeys == 0)
		return;
	cmd.args[0] = st_now();
	cmd.args[1] = cfg->reputation.half_life;
	cmd.args[2] = field;
	cmd.args[3] = cfg->reputation.ttl;
	/* Nobody waits for the update: the request may outlive the
	 * session, so its callback needs nothing of it. */
	if (st_call(st->s->loop, &cmd, flt_rep_ignore, NULL, &r, &req) == 1) {
		if (r.status != 0)
			flt_rep_ignore(NULL, &r);
		st_reply_clear(&r);
	}
}

static void
flt_rep_txn_end(void *state, const struct flt_chain *c, const char *result)
{
	struct flt_rep_state *st = state;

	if (st == NULL)
		return;
	if (strcmp(result, "accept") == 0)
		flt_rep_learn(st, flt_chain_has_symbol(c, "GREYLIST_PASSED")
		                      ? ST_REP_GREYPASS
		                      : ST_REP_ACCEPTED);
	else if (strcmp(result, "tag") == 0)
		flt_rep_learn(st, ST_REP_TAGGED);
	else if (strcmp(result, "reject") == 0)
		flt_rep_learn(st, ST_REP_REJECTED);
}

const struct flt_ops flt_reputation = {
    .name = "reputation",
    .session_new = flt_rep_new,
    .session_free = flt_rep_free,
    .reset = flt_rep_reset,
    .on_stage =
        {
            [FLT_STAGE_CONNECT] = flt_rep_connect,
            [FLT_STAGE_RCPT] = flt_rep_rcpt,
        },
    .cancel = flt_rep_cancel,
    .txn_end = flt_rep_txn_end,
};
