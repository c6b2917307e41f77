/* SPDX-License-Identifier: MIT */
/*
 * dnsbl.c - DNS lists: DNSBL/DNSWL on the client address, RHSBL on the HELO
 * name and the sender domain (RFC 5782).
 *
 * Lookups start as soon as their data exists and run in parallel: the
 * client's lists at connect (the greeting does not wait for them), the
 * HELO lists at HELO, the sender lists at MAIL.  MAIL waits for all of
 * them (within dns.timeout) and adds the symbol of each listing, scored
 * with the list's weight (whitelists have negative weights).  When the
 * weights of the client's listings add up to `dnsbl_threshold`, every RCPT
 * is refused with "550 5.7.1 Service unavailable; client [ip] blocked
 * using zone": at RCPT, so the log shows who was sending what, as
 * postscreen does.  RHSBL lists only score.
 *
 * A list counts when an answer matches its `codes` (postscreen's
 * patterns; none given: any 127.0.0.0/8).  SECURITY / reliability: an
 * answer in 127.255.255.252-255 is a list operator's error code (query
 * refused, public resolver, ...), never a listing; a timeout, SERVFAIL,
 * NXDOMAIN or NODATA is never a listing either, so a DNS failure can not
 * block mail.
 */
#include "filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dns.h"
#include "dnslist.h"
#include "log.h"
#include "metrics.h"

/* One lookup: a list and the name asked. */
struct flt_dnsbl_lookup {
	struct flt_dnsbl_state *st;
	const struct px_dnslist *list;
	struct flt_dns_query *q; /* in flight, else NULL */
	bool done;
	bool listed;
	char name[300];
};

/* The lookups of one target (client, HELO name, sender domain). */
struct flt_dnsbl_set {
	struct flt_dnsbl_lookup *lk;
	unsigned n;
};

struct flt_dnsbl_state {
	uint64_t sid;
	struct flt_call *call;        /* a MAIL stage waiting for us, or NULL */
	struct flt_dnsbl_set sets[3]; /* by enum px_dnslist_target */
	unsigned pending;
};

static bool
flt_dnsbl_octet_in(const unsigned char set[32], unsigned char v)
{
	return (set[v / 8] >> (v % 8)) & 1;
}

/* flt_dnsbl_counts - does the A record a (4 bytes) make a listing? */
static bool
flt_dnsbl_counts(const struct px_dnslist *l, const unsigned char *a)
{
	if (l->npatterns == 0)
		return a[0] == 127;
	for (unsigned p = 0; p < l->npatterns; p++) {
		bool ok = true;

		for (int o = 0; o < 4 && ok; o++)
			ok = flt_dnsbl_octet_in(l->codes[p][o], a[o]);
		if (ok)
			return true;
	}
	return false;
}

bool
flt_dnslist_listed(const struct px_dnslist *l, const struct flt_dns_result *res,
                   uint64_t sid, const char *name)
{
	bool listed = false;

	if (res->status != FLT_DNS_ANSWER)
		return false;
	for (unsigned i = 0; i < res->n; i++) {
		const unsigned char *a = res->data[i];

		if (res->len[i] != 4)
			continue;
		if (a[0] == 127 && a[1] == 255 && a[2] == 255 && a[3] >= 252) {
			px_metrics_dnsbl_operator_error(l->zone);
			px_log_warn("%016llx dns list %s answered "
			            "127.255.255.%u for %s: operator error "
			            "(query refused, or a public resolver?), "
			            "not a listing",
			            (unsigned long long)sid, l->zone, a[3],
			            name);
			continue;
		}
		if (flt_dnsbl_counts(l, a))
			listed = true;
	}
	return listed;
}

/* flt_dnsbl_report - MAIL: every listing so far as a symbol. */
static void
flt_dnsbl_report(struct flt_dnsbl_state *st, struct flt_call *call)
{
	for (int t = 0; t < 3; t++)
		for (unsigned i = 0; i < st->sets[t].n; i++) {
			const struct flt_dnsbl_lookup *lk = &st->sets[t].lk[i];

			if (!lk->listed)
				continue;
			flt_symbol_add(call, lk->list->symbol,
			               lk->list->weight);
			if (t == PX_DNSLIST_CLIENT && lk->list->weight < 0)
				flt_fact_set(call, FLT_FACT_DNSWL);
		}
}

static void
flt_dnsbl_answer(void *arg, const struct flt_dns_result *res)
{
	struct flt_dnsbl_lookup *lk = arg;
	struct flt_dnsbl_state *st = lk->st;
	const struct px_dnslist *l = lk->list;

	lk->q = NULL;
	lk->done = true;
	if (res->status == FLT_DNS_ANSWER) {
		lk->listed = flt_dnslist_listed(l, res, st->sid, lk->name);
	} else if (res->status == FLT_DNS_TIMEOUT ||
	           res->status == FLT_DNS_SERVFAIL ||
	           res->status == FLT_DNS_ERROR) {
		px_log_info("%016llx dnsbl %s: %s for %s, not counted",
		            (unsigned long long)st->sid, l->zone,
		            res->status == FLT_DNS_TIMEOUT    ? "timeout"
		            : res->status == FLT_DNS_SERVFAIL ? "servfail"
		                                              : "error",
		            lk->name);
	}
	if (--st->pending == 0 && st->call != NULL) {
		struct flt_call *call = st->call;

		st->call = NULL;
		flt_dnsbl_report(st, call);
		flt_resume(call);
	}
}

static void
flt_dnsbl_set_clear(struct flt_dnsbl_state *st, struct flt_dnsbl_set *set)
{
	for (unsigned i = 0; i < set->n; i++) {
		if (set->lk[i].q != NULL) {
			flt_dns_cancel(set->lk[i].q);
			st->pending--;
		}
	}
	free(set->lk);
	set->lk = NULL;
	set->n = 0;
}

/* flt_dnsbl_start - ask every list of the target about subject (an IP for
 * the client, a domain otherwise), replacing that target's lookups. */
static void
flt_dnsbl_start(struct flt_dnsbl_state *st, const struct flt_session *s,
                const struct px_dnslist *lists, size_t n,
                enum px_dnslist_target target, const char *subject)
{
	struct flt_dnsbl_set *set = &st->sets[target];

	flt_dnsbl_set_clear(st, set);
	if (n == 0)
		return;
	set->lk = px_calloc(n, sizeof(*set->lk));
	for (size_t i = 0; i < n; i++) {
		struct flt_dnsbl_lookup *lk = &set->lk[set->n];
		int rc;

		if (lists[i].target != target)
			continue;
		if (target == PX_DNSLIST_CLIENT)
			rc = flt_dns_reverse_name(subject, lists[i].zone,
			                          lk->name, sizeof(lk->name));
		else
			rc = snprintf(lk->name, sizeof(lk->name), "%s.%s",
			              subject,
			              lists[i].zone) < (int)sizeof(lk->name)
			         ? 0
			         : -1;
		if (rc < 0)
			continue;
		lk->st = st;
		lk->list = &lists[i];
		set->n++;
	}
	/* All at once: MAIL waits for the slowest, not for the sum. */
	for (unsigned i = 0; i < set->n; i++) {
		st->pending++;
		set->lk[i].q = flt_dns_query(s->loop, set->lk[i].name,
		                             FLT_DNS_A, s->cfg->dns.timeout,
		                             flt_dnsbl_answer, &set->lk[i]);
	}
}

/* flt_dnsbl_domain_ok - a domain worth an RHSBL lookup (not a literal, not
 * empty, plain LDH labels). */
static bool
flt_dnsbl_domain_ok(const char *d)
{
	if (d == NULL || d[0] == '\0' || d[0] == '[' || strlen(d) > 200 ||
	    strchr(d, '.') == NULL)
		return false;
	for (const char *p = d; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		      *p == '_'))
			return false;
	return true;
}

static int
flt_dnsbl_connect(struct flt_call *call)
{
	const struct flt_session *s = call->s;

	/* Started, not awaited: the greeting goes out meanwhile. */
	flt_dnsbl_start(call->state, s, s->cfg->dnsbl, s->cfg->ndnsbl,
	                PX_DNSLIST_CLIENT, s->client_ip);
	return 1;
}

static int
flt_dnsbl_helo(struct flt_call *call)
{
	const struct flt_session *s = call->s;

	if (flt_dnsbl_domain_ok(s->helo))
		flt_dnsbl_start(call->state, s, s->cfg->rhsbl, s->cfg->nrhsbl,
		                PX_DNSLIST_HELO, s->helo);
	return 1;
}

static int
flt_dnsbl_mail(struct flt_call *call)
{
	struct flt_dnsbl_state *st = call->state;
	const struct flt_session *s = call->s;
	const char *at = s->mail_from ? strrchr(s->mail_from, '@') : NULL;

	if (at != NULL && flt_dnsbl_domain_ok(at + 1))
		flt_dnsbl_start(st, s, s->cfg->rhsbl, s->cfg->nrhsbl,
		                PX_DNSLIST_SENDER, at + 1);
	else
		flt_dnsbl_set_clear(st, &st->sets[PX_DNSLIST_SENDER]);
	if (st->pending > 0) {
		st->call = call;
		return 0;
	}
	flt_dnsbl_report(st, call);
	return 1;
}

static int
flt_dnsbl_rcpt(struct flt_call *call)
{
	struct flt_dnsbl_state *st = call->state;
	const struct flt_session *s = call->s;
	const struct flt_dnsbl_set *set = &st->sets[PX_DNSLIST_CLIENT];
	const char *zone = NULL;
	double sum = 0;

	/* Not for a user who authenticated (SMTP AUTH): a roaming user's
	 * address may well be listed. */
	if (s->cfg->dnsbl_threshold <= 0 ||
	    flt_fact_has(call, FLT_FACT_AUTHENTICATED))
		return 1;
	for (unsigned i = 0; i < set->n; i++) {
		if (!set->lk[i].listed)
			continue;
		sum += set->lk[i].list->weight;
		if (zone == NULL && set->lk[i].list->weight > 0)
			zone = set->lk[i].list->zone;
	}
	if (zone != NULL && sum >= s->cfg->dnsbl_threshold)
		flt_verdict_set(call, FLT_REJECT, 550, "5.7.1", "dnsbl",
		                "Service unavailable; client [%s] blocked "
		                "using %s",
		                s->client_ip, zone);
	return 1;
}

static void
flt_dnsbl_cancel(struct flt_call *call)
{
	struct flt_dnsbl_state *st = call->state;

	/* MAIL gave up waiting (timeouts.filter); the lookups may still
	 * answer for the next transaction. */
	st->call = NULL;
}

static void *
flt_dnsbl_new(const struct flt_session *s)
{
	struct flt_dnsbl_state *st = px_calloc(1, sizeof(*st));

	st->sid = s->sid;
	return st;
}

static void
flt_dnsbl_free(void *state)
{
	struct flt_dnsbl_state *st = state;

	if (st == NULL)
		return;
	for (int t = 0; t < 3; t++)
		flt_dnsbl_set_clear(st, &st->sets[t]);
	free(st);
}

const struct flt_ops flt_dnsbl = {
    .name = "dnsbl",
    .session_new = flt_dnsbl_new,
    .session_free = flt_dnsbl_free,
    .on_stage =
        {
            [FLT_STAGE_CONNECT] = flt_dnsbl_connect,
            [FLT_STAGE_HELO] = flt_dnsbl_helo,
            [FLT_STAGE_MAIL] = flt_dnsbl_mail,
            [FLT_STAGE_RCPT] = flt_dnsbl_rcpt,
        },
    .cancel = flt_dnsbl_cancel,
};
