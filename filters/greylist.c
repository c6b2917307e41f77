/* SPDX-License-Identifier: MIT */
/*
 * greylist.c - greylisting at RCPT (postgrey's model, RFC 6647): the first
 * attempt of a (client network, sender, recipient) triplet is deferred with
 * 451 4.7.1; a retry after `delay` and within `retry_window` passes, and
 * the triplet then passes at once for `pass_ttl` (refreshed on use).  A
 * client network that delivered `auto_whitelist_after` times passes as a
 * whole.
 *
 * What makes it better than postgrey for large senders: when SPF passed
 * for the sender domain, the triplet's first element is that authenticated
 * domain instead of the client network, so a message retried from another
 * address of the sender's pool (Office 365, Gmail) is recognised.
 *
 * Not greylisted: relay-network and authenticated clients, DNSWL-listed and
 * good-reputation clients (skip_dnswl, skip_good_reputation), the static
 * whitelists of the config (client CIDRs, verified client names, senders,
 * recipients) and the dynamic ones in the store (`mxguard ctl greylist
 * whitelist add ...`).
 *
 * The sender is normalised so that per-message variants count as one:
 * lower case, BATV (prvs=TAG=user@) and SRS (SRS0/SRS1) undone, digit runs
 * in the local part folded to '#', as postgrey does.
 *
 * Store failure: on_store_error = "pass" lets the recipient through with
 * GREYLIST_STORE_ERROR; "tempfail" answers 451 4.3.0.
 */
#include "filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "greylist.h"
#include "log.h"
#include "netaddr.h"
#include "store.h"

struct flt_greylist_state {
	const struct flt_session *s;
	struct flt_call *call; /* the RCPT waiting for the store */
	struct st_req *req;
	int worst; /* the log value of the transaction, by rank */
};

/* The log values, in the order one recipient's outcome overrides
 * another's on the transaction's line (deferrals first). */
static const char flt_gl_log[][12] = {
    "-",      "skip",  "whitelisted", "awl", "pass",
    "passed", "error", "early",       "new",
};

static int
flt_gl_rank(const char *v)
{
	/* by length and bytes: GCC 12 at -O3 inlines strcmp() with the
	 * constant v and warns (-Wstring-compare) about rows it cannot be */
	size_t n = strlen(v) + 1;

	if (n > sizeof(*flt_gl_log))
		return 0;
	for (int i = 0; i < (int)(sizeof(flt_gl_log) / sizeof(*flt_gl_log));
	     i++)
		if (memcmp(flt_gl_log[i], v, n) == 0)
			return i;
	return 0;
}

static void
flt_gl_log_set(struct flt_greylist_state *st, struct flt_call *call,
               const char *v)
{
	int r = flt_gl_rank(v);

	if (r > st->worst) {
		st->worst = r;
		flt_log_field(call, "greylist", v);
	}
}

static void *
flt_greylist_new(const struct flt_session *s)
{
	struct flt_greylist_state *st;

	if (!s->cfg->greylist.enabled)
		return NULL;
	st = px_calloc(1, sizeof(*st));
	st->s = s;
	return st;
}

static void
flt_greylist_free(void *state)
{
	free(state);
}

static void
flt_greylist_reset(void *state)
{
	struct flt_greylist_state *st = state;

	if (st != NULL)
		st->worst = 0;
}

static void
flt_lower(char *p)
{
	for (; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

/* flt_domain_match - name is domain or a subdomain of it (a leading dot
 * in domain is ignored). */
static bool
flt_domain_match(const char *name, const char *domain)
{
	size_t nl = strlen(name), dl;

	if (*domain == '.')
		domain++;
	dl = strlen(domain);
	if (nl == dl)
		return strcasecmp(name, domain) == 0;
	return nl > dl && name[nl - dl - 1] == '.' &&
	       strcasecmp(name + nl - dl, domain) == 0;
}

/* flt_addr_listed - addr ("user@domain", lower case) is in list, as an
 * address or by its domain. */
static bool
flt_addr_listed(const char *addr, char *const *list, size_t n)
{
	const char *at = strrchr(addr, '@');

	for (size_t i = 0; i < n; i++) {
		if (strchr(list[i], '@') != NULL) {
			if (strcmp(addr, list[i]) == 0)
				return true;
		} else if (at != NULL && flt_domain_match(at + 1, list[i])) {
			return true;
		}
	}
	return false;
}

/* flt_greylist_skip - why this recipient is not greylisted, or NULL. */
static const char *
flt_greylist_skip(struct flt_call *call, const char *sender, const char *rcpt)
{
	const struct flt_session *s = call->s;
	const struct px_config *cfg = s->cfg;
	const char *name;

	if (flt_fact_has(call, FLT_FACT_AUTHENTICATED))
		return "authenticated";
	if (flt_fact_has(call, FLT_FACT_RELAY))
		return "relay";
	for (size_t i = 0; i < cfg->nrelay_networks; i++)
		if (px_cidr_match(&cfg->relay_networks[i], &s->client))
			return "relay";
	if (cfg->greylist.skip_dnswl && flt_fact_has(call, FLT_FACT_DNSWL))
		return "dnswl";
	if (cfg->greylist.skip_good_reputation &&
	    flt_fact_has(call, FLT_FACT_GOOD_REPUTATION))
		return "reputation";
	for (size_t i = 0; i < cfg->greylist.nwhitelist_clients; i++)
		if (px_cidr_match(&cfg->greylist.whitelist_clients[i],
		                  &s->client))
			return "whitelist";
	if ((name = flt_call_client_name(call)) != NULL)
		for (size_t i = 0; i < cfg->greylist.nwhitelist_client_names;
		     i++)
			if (flt_domain_match(
			        name, cfg->greylist.whitelist_client_names[i]))
				return "whitelist";
	if (flt_addr_listed(sender, cfg->greylist.whitelist_senders,
	                    cfg->greylist.nwhitelist_senders) ||
	    flt_addr_listed(rcpt, cfg->greylist.whitelist_recipients,
	                    cfg->greylist.nwhitelist_recipients))
		return "whitelist";
	return NULL;
}

static void
flt_greylist_result(struct flt_greylist_state *st, struct flt_call *call,
                    const struct st_reply *r)
{
	const struct px_config *cfg = call->s->cfg;

	if (r->status != 0) {
		px_log_warn("%016llx greylist: store error: %s",
		            (unsigned long long)call->s->sid, r->error);
		flt_symbol_add(call, "GREYLIST_STORE_ERROR", 0);
		flt_gl_log_set(st, call, "error");
		if (cfg->on_store_error == PX_STORE_ERROR_TEMPFAIL)
			flt_verdict_set(call, FLT_TEMPFAIL, 451, "4.3.0",
			                "greylist store error",
			                "Temporary local problem, please try "
			                "again later");
		return;
	}
	switch (r->v[0]) {
	case ST_GL_NEW:
	case ST_GL_EARLY:
		flt_symbol_add(call, "GREYLIST", 0);
		flt_gl_log_set(st, call,
		               r->v[0] == ST_GL_NEW ? "new" : "early");
		flt_verdict_set(call, FLT_TEMPFAIL, 451, "4.7.1", "greylisted",
		                "Greylisted, please try again in %lld "
		                "seconds",
		                (long long)r->v[1]);
		break;
	case ST_GL_PASSED:
		flt_symbol_add(call, "GREYLIST_PASSED", 0);
		flt_gl_log_set(st, call, "passed");
		break;
	case ST_GL_PASS:
		flt_gl_log_set(st, call, "pass");
		break;
	case ST_GL_AWL:
		flt_symbol_add(call, "GREYLIST_AWL", 0);
		flt_gl_log_set(st, call, "awl");
		break;
	default:
		flt_gl_log_set(st, call, "whitelisted");
		break;
	}
}

static void
flt_greylist_done(void *arg, const struct st_reply *r)
{
	struct flt_greylist_state *st = arg;
	struct flt_call *call = st->call;

	st->req = NULL;
	st->call = NULL;
	flt_greylist_result(st, call, r);
	flt_resume(call);
}

static int
flt_greylist_rcpt(struct flt_call *call)
{
	struct flt_greylist_state *st = call->state;
	const struct flt_session *s = call->s;
	const struct px_config *cfg = s->cfg;
	const char *prefix = cfg->store_prefix;
	char sender[600], rcpt[600], net[64], ip[64], who[300];
	char k[8][1600];
	const char *why, *spf_domain = NULL, *at;
	struct st_cmd cmd = {.op = ST_GREYLIST};
	struct st_reply r;
	int rc;

	if (st == NULL || s->rcpt == NULL)
		return 1;
	flt_greylist_sender(s->mail_from, sender, sizeof(sender));
	snprintf(rcpt, sizeof(rcpt), "%s", s->rcpt);
	flt_lower(rcpt);
	if ((why = flt_greylist_skip(call, sender, rcpt)) != NULL) {
		flt_gl_log_set(st, call, "skip");
		return 1;
	}
	if (px_addr_net(&s->client, cfg->greylist.ipv4_prefix,
	                cfg->greylist.ipv6_prefix, net, sizeof(net)) < 0 ||
	    px_addr_net(&s->client, 32, 128, ip, sizeof(ip)) < 0)
		return 1;
	ip[strcspn(ip, "/")] = '\0';
	/* Who retries: the authenticated sender domain, else the network. */
	if (cfg->greylist.spf_domain &&
	    flt_spf_get(call, &spf_domain) == FLT_SPF_PASS &&
	    spf_domain != NULL) {
		snprintf(who, sizeof(who), "spf:%s", spf_domain);
		flt_lower(who);
	} else {
		snprintf(who, sizeof(who), "%s", net);
	}
	snprintf(k[0], sizeof(k[0]), "%sgl:t:%s/%s/%s", prefix, who, sender,
	         rcpt);
	snprintf(k[1], sizeof(k[1]), "%sgl:c:%s", prefix, net);
	snprintf(k[2], sizeof(k[2]), "%swl:c:%s", prefix, ip);
	snprintf(k[3], sizeof(k[3]), "%swl:c:%s", prefix, net);
	snprintf(k[4], sizeof(k[4]), "%swl:s:%s", prefix, sender);
	at = strrchr(sender, '@');
	snprintf(k[5], sizeof(k[5]), "%swl:s:%s", prefix,
	         at != NULL ? at + 1 : sender);
	snprintf(k[6], sizeof(k[6]), "%swl:r:%s", prefix, rcpt);
	at = strrchr(rcpt, '@');
	snprintf(k[7], sizeof(k[7]), "%swl:r:%s", prefix,
	         at != NULL ? at + 1 : rcpt);
	for (unsigned i = 0; i < 8; i++)
		cmd.keys[i] = k[i];
	cmd.nkeys = 8;
	cmd.args[0] = st_now();
	cmd.args[1] = cfg->greylist.delay;
	cmd.args[2] = cfg->greylist.retry_window;
	cmd.args[3] = cfg->greylist.pass_ttl;
	cmd.args[4] = cfg->greylist.auto_whitelist_after;
	cmd.nargs = 5;
	st->call = call;
	rc = st_call(s->loop, &cmd, flt_greylist_done, st, &r, &st->req);
	if (rc == 0)
		return 0;
	st->call = NULL;
	flt_greylist_result(st, call, &r);
	st_reply_clear(&r);
	return 1;
}

static void
flt_greylist_cancel(struct flt_call *call)
{
	struct flt_greylist_state *st = call->state;

	st_cancel(st->req);
	st->req = NULL;
	st->call = NULL;
}

const struct flt_ops flt_greylist = {
    .name = "greylist",
    .session_new = flt_greylist_new,
    .session_free = flt_greylist_free,
    .reset = flt_greylist_reset,
    .on_stage = {[FLT_STAGE_RCPT] = flt_greylist_rcpt},
    .cancel = flt_greylist_cancel,
};
