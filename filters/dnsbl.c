/* SPDX-License-Identifier: MIT */
/*
 * dnsbl.c - DNS lists: DNSBL/DNSWL on the client address at connect,
 * RHSBL on the HELO name and the sender domain (RFC 5782).
 *
 * At connect every `dnsbl` list is queried at once (A record of the
 * reversed address under the zone).  A list counts when an answer matches
 * its `codes` (postscreen's patterns; none given: any 127.0.0.0/8).  Each
 * listing adds the list's symbol scored with its weight (whitelists have
 * negative weights), and when the weights of the listings add up to
 * `dnsbl_threshold`, the connect stage says REJECT: the session applies it
 * at RCPT so the log shows who was sending what, as postscreen does.
 * `rhsbl` lists are queried at HELO (target "helo") and MAIL (target
 * "sender") and only score.
 *
 * SECURITY / reliability: an answer in 127.255.255.252-255 is a list
 * operator's error code (query refused, public resolver, ...), never a
 * listing; a timeout, SERVFAIL, NXDOMAIN or NODATA is never a listing
 * either, so a DNS failure can not block mail.
 */
#include "filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dns.h"
#include "log.h"

struct flt_dnsbl_state;

struct flt_dnsbl_lookup {
	struct flt_dnsbl_state *st;
	const struct px_dnslist *list;
	struct flt_dns_query *q; /* NULL once answered */
	char name[300];
};

struct flt_dnsbl_state {
	struct flt_call *call; /* the stage waiting for us */
	struct flt_dnsbl_lookup *lookups;
	unsigned nlookups;
	unsigned pending;
	double sum;		    /* weights of the client listings */
	const char *block_zone;	    /* first positive listing, for the reply */
};

/* Operator error answers seen (for metrics). */
static unsigned long flt_dnsbl_operator_errors;

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

static void
flt_dnsbl_finish(struct flt_dnsbl_state *st)
{
	struct flt_call *call = st->call;
	const struct flt_session *s = call->s;

	st->call = NULL;
	if (call->stage == FLT_STAGE_CONNECT && s->cfg->dnsbl_threshold > 0 &&
	    st->sum >= s->cfg->dnsbl_threshold && st->block_zone != NULL)
		flt_verdict_set(call, FLT_REJECT, 550, "5.7.1", "dnsbl",
				"Service unavailable; client [%s] blocked "
				"using %s",
				s->client_ip, st->block_zone);
	flt_resume(call);
}

static void
flt_dnsbl_answer(void *arg, const struct flt_dns_result *res)
{
	struct flt_dnsbl_lookup *lk = arg;
	struct flt_dnsbl_state *st = lk->st;
	const struct px_dnslist *l = lk->list;
	bool listed = false;

	lk->q = NULL;
	if (res->status == FLT_DNS_ANSWER) {
		for (unsigned i = 0; i < res->n; i++) {
			const unsigned char *a = res->data[i];

			if (res->len[i] != 4)
				continue;
			if (a[0] == 127 && a[1] == 255 && a[2] == 255 &&
			    a[3] >= 252) {
				flt_dnsbl_operator_errors++;
				px_log_warn("%016llx dnsbl %s answered "
					    "127.255.255.%u for %s: operator "
					    "error (query refused, or a public "
					    "resolver?), not a listing",
					    (unsigned long long)st->call->s->sid,
					    l->zone, a[3], lk->name);
				continue;
			}
			if (flt_dnsbl_counts(l, a))
				listed = true;
		}
	} else if (res->status == FLT_DNS_TIMEOUT ||
		   res->status == FLT_DNS_SERVFAIL ||
		   res->status == FLT_DNS_ERROR) {
		px_log_info("%016llx dnsbl %s: %s for %s, not counted",
			    (unsigned long long)st->call->s->sid, l->zone,
			    res->status == FLT_DNS_TIMEOUT    ? "timeout"
			    : res->status == FLT_DNS_SERVFAIL ? "servfail"
							      : "error",
			    lk->name);
	}
	if (listed) {
		flt_symbol_add(st->call, l->symbol, l->weight);
		if (l->target == PX_DNSLIST_CLIENT) {
			st->sum += l->weight;
			if (l->weight > 0 && st->block_zone == NULL)
				st->block_zone = l->zone;
		}
	}
	if (--st->pending == 0)
		flt_dnsbl_finish(st);
}

/* flt_dnsbl_start - query each list of lists whose target is target for
 * subject (an IP for the client, a domain otherwise).  Returns 1 when
 * there is nothing to wait for, 0 when lookups are pending. */
static int
flt_dnsbl_start(struct flt_call *call, const struct px_dnslist *lists,
		size_t n, enum px_dnslist_target target, const char *subject)
{
	struct flt_dnsbl_state *st = call->state;
	const struct flt_session *s = call->s;
	unsigned count = 0;

	for (size_t i = 0; i < n; i++)
		if (lists[i].target == target)
			count++;
	if (count == 0)
		return 1;
	free(st->lookups);
	st->lookups = px_calloc(count, sizeof(*st->lookups));
	st->nlookups = 0;
	st->pending = 0;
	st->call = call;
	for (size_t i = 0; i < n; i++) {
		struct flt_dnsbl_lookup *lk = &st->lookups[st->nlookups];
		int rc;

		if (lists[i].target != target)
			continue;
		if (target == PX_DNSLIST_CLIENT)
			rc = flt_dns_reverse_name(subject, lists[i].zone,
						  lk->name, sizeof(lk->name));
		else
			rc = snprintf(lk->name, sizeof(lk->name), "%s.%s",
				      subject, lists[i].zone) <
					     (int)sizeof(lk->name)
				     ? 0
				     : -1;
		if (rc < 0)
			continue;
		lk->st = st;
		lk->list = &lists[i];
		st->nlookups++;
		st->pending++;
	}
	if (st->pending == 0) {
		st->call = NULL;
		return 1;
	}
	/* All at once: the stage waits for the slowest, not the sum. */
	for (unsigned i = 0; i < st->nlookups; i++)
		st->lookups[i].q = flt_dns_query(s->loop, st->lookups[i].name,
						 FLT_DNS_A, s->cfg->dns.timeout,
						 flt_dnsbl_answer,
						 &st->lookups[i]);
	return 0;
}

static int
flt_dnsbl_connect(struct flt_call *call)
{
	const struct flt_session *s = call->s;

	return flt_dnsbl_start(call, s->cfg->dnsbl, s->cfg->ndnsbl,
			       PX_DNSLIST_CLIENT, s->client_ip);
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
flt_dnsbl_helo(struct flt_call *call)
{
	const struct flt_session *s = call->s;

	if (!flt_dnsbl_domain_ok(s->helo))
		return 1;
	return flt_dnsbl_start(call, s->cfg->rhsbl, s->cfg->nrhsbl,
			       PX_DNSLIST_HELO, s->helo);
}

static int
flt_dnsbl_mail(struct flt_call *call)
{
	const struct flt_session *s = call->s;
	const char *at = s->mail_from ? strrchr(s->mail_from, '@') : NULL;

	if (at == NULL || !flt_dnsbl_domain_ok(at + 1))
		return 1;
	return flt_dnsbl_start(call, s->cfg->rhsbl, s->cfg->nrhsbl,
			       PX_DNSLIST_SENDER, at + 1);
}

static void
flt_dnsbl_cancel(struct flt_call *call)
{
	struct flt_dnsbl_state *st = call->state;

	for (unsigned i = 0; i < st->nlookups; i++) {
		flt_dns_cancel(st->lookups[i].q);
		st->lookups[i].q = NULL;
	}
	st->pending = 0;
	st->call = NULL;
}

static void *
flt_dnsbl_new(const struct flt_session *s)
{
	return px_calloc(1, sizeof(struct flt_dnsbl_state));
}

static void
flt_dnsbl_free(void *state)
{
	struct flt_dnsbl_state *st = state;

	if (st == NULL)
		return;
	for (unsigned i = 0; i < st->nlookups; i++)
		flt_dns_cancel(st->lookups[i].q);
	free(st->lookups);
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
		},
	.cancel = flt_dnsbl_cancel,
};
