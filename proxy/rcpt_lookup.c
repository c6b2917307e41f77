/* SPDX-License-Identifier: MIT */
/*
 * rcpt_lookup.c - the recipient tables of rcpt_lookup.h, asked in turn:
 *
 *   1. recipients_file: an address it lists, or any address of a domain
 *      it names with a "@domain" catch-all, is known.
 *   2. recipients_redis: for the domains it verifies (its `domains`, else
 *      every accepted domain) the set is asked, with one SMISMEMBER, for
 *      the address and for "@domain", both lower-cased as recipients.c
 *      does; either a member -> known, neither -> unknown.  Operators
 *      manage it with `redis-cli SADD key user@domain`: every RCPT asks
 *      afresh, so a change counts at once, without a reload.  A store
 *      error (Redis down, timeouts.store) is PX_RCPT_LOOKUP_ERROR: the
 *      session answers 451 4.3.0, never accepting nor refusing blind.
 *   3. otherwise what the file said (unknown for a domain it names), or
 *      not verified: the backend's RCPT reply decides.
 *
 * postmaster@ any verified domain is always known (RFC 5321 4.5.1).
 * Addresses longer than 320 octets are not verified (the backend answers),
 * as in recipients.c.
 */
#include "rcpt_lookup.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "metrics.h"
#include "relay_control.h"
#include "store.h"

struct px_rcpt_lookup {
	px_rcpt_lookup_fn *done;
	void *arg;
	struct st_req *req;
	int file; /* what recipients_file said, if the set says unknown */
};

/* px_rcpt_redis_applies - rcpt's domain is one recipients_redis verifies;
 * addr (lower case) and catch ("@domain") are what to ask. */
static bool
px_rcpt_redis_applies(const struct px_config *cfg, const char *rcpt, char *addr,
                      char *catch, size_t size)
{
	const char *at;
	size_t len = strlen(rcpt);

	if (cfg->recipients_redis_key == NULL || len == 0 || len >= size ||
	    len > 320)
		return false;
	for (size_t i = 0; i <= len; i++)
		addr[i] = rcpt[i] >= 'A' && rcpt[i] <= 'Z'
		              ? (char)(rcpt[i] - 'A' + 'a')
		              : rcpt[i];
	if ((at = strrchr(addr, '@')) == NULL || at[1] == '\0')
		return false; /* bare "postmaster": the backend's */
	if (!px_domains_match(cfg->recipients_redis_domains != NULL
	                          ? cfg->recipients_redis_domains
	                          : cfg->accepted,
	                      at + 1, strlen(at + 1)))
		return false;
	memcpy(catch, at, strlen(at) + 1);
	return true;
}

static void
px_rcpt_lookup_answer(struct px_rcpt_lookup *l, const struct st_reply *r)
{
	if (r->status != 0) {
		px_metrics_rcpt_lookup(2);
		l->done(l->arg, PX_RCPT_LOOKUP_ERROR, "redis", r->error);
	} else if (r->nv >= 2 && (r->v[0] != 0 || r->v[1] != 0)) {
		px_metrics_rcpt_lookup(0);
		l->done(l->arg, PX_RCPT_KNOWN, "redis", NULL);
	} else if (l->file == PX_RCPT_UNKNOWN) {
		px_metrics_rcpt_lookup(1);
		l->done(l->arg, PX_RCPT_UNKNOWN, "file", NULL);
	} else {
		px_metrics_rcpt_lookup(1);
		l->done(l->arg, PX_RCPT_UNKNOWN, "redis", NULL);
	}
}

static void
px_rcpt_lookup_cb(void *arg, const struct st_reply *r)
{
	struct px_rcpt_lookup *l = arg;

	l->req = NULL;
	px_rcpt_lookup_answer(l, r);
	free(l);
}

int
px_rcpt_lookup(struct px_loop *loop, const struct px_config *cfg,
               const char *rcpt, px_rcpt_lookup_fn *done, void *arg,
               struct px_rcpt_lookup **req_r)
{
	char addr[400], catch[400];
	struct px_rcpt_lookup *l;
	struct st_cmd cmd = {.op = ST_SISMEMBER, .nkeys = 3};
	struct st_reply r;
	int file = px_rcptset_check(cfg->recipients, rcpt, strlen(rcpt));

	*req_r = NULL;
	if (file == PX_RCPT_KNOWN) {
		done(arg, PX_RCPT_KNOWN, "file", NULL);
		return 1;
	}
	if (!px_rcpt_redis_applies(cfg, rcpt, addr, catch, sizeof(addr))) {
		done(arg, file, file == PX_RCPT_UNKNOWN ? "file" : NULL, NULL);
		return 1;
	}
	/* RFC 5321 4.5.1: postmaster of every domain we accept mail for. */
	if (strncmp(addr, "postmaster@", 11) == 0) {
		done(arg, PX_RCPT_KNOWN, "redis", NULL);
		return 1;
	}
	l = px_calloc(1, sizeof(*l));
	l->done = done;
	l->arg = arg;
	l->file = file;
	cmd.keys[0] = cfg->recipients_redis_key;
	cmd.keys[1] = addr;
	cmd.keys[2] = catch;
	if (st_call(loop, &cmd, px_rcpt_lookup_cb, l, &r, &l->req) == 0) {
		*req_r = l;
		return 0;
	}
	px_rcpt_lookup_answer(l, &r);
	st_reply_clear(&r);
	free(l);
	return 1;
}

void
px_rcpt_lookup_cancel(struct px_rcpt_lookup **reqp)
{
	struct px_rcpt_lookup *l = *reqp;

	if (l == NULL)
		return;
	*reqp = NULL;
	st_cancel(l->req);
	free(l);
}
