/* SPDX-License-Identifier: MIT */
/*
 * uribl.c - URIBL: the domains of the links in a message against DNS lists
 * (SURBL, URIBL, Spamhaus DBL), at end of data.
 *
 * On the worker pool: the message (its first RULE_SCAN_MAX bytes) is
 * decoded with the rule engine's MIME decoder, which finds the URIs in text
 * and HTML (href, src, bare www. and http(s):// links, entity and percent
 * decoding); each URI's host is reduced to its registered domain with the
 * public suffix list (libpsl: "a.b.example.co.uk" -> "example.co.uk"), an
 * IPv4 host to its reversed address (what the lists expect for IPs), each
 * kept once, at most FLT_URIBL_MAX in the order met (a cap on the queries a
 * message can cause: a spammer's thousand links must not become a thousand
 * lookups).  Back on the loop every (name, list) pair is asked at once
 * within dns.timeout; each list with a listed name adds its symbol
 * (default URIBL_<ZONE>) scored with its weight, once, and the log says
 * which name.  As for the other lists, a timeout, SERVFAIL or the operator
 * error codes are never a listing.
 */
#include "filter.h"

#include <arpa/inet.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dns.h"
#include "dnslist.h"
#include "urihost.h"
#include "log.h"
#include "loop.h"
#include "mime.h"
#include "rule.h"
#include "spool.h"
#include "workers.h"

#define FLT_URIBL_MAX 20 /* distinct names asked per message */

struct flt_uribl_state;

struct flt_uribl_job {
	struct flt_uribl_state *st; /* NULL once cancelled */
	char *buf;
	size_t len;
	bool truncated;
	char names[FLT_URIBL_MAX][256];
	unsigned nnames;
};

struct flt_uribl_query {
	struct flt_uribl_state *st;
	const struct px_dnslist *list;
	struct flt_dns_query *q;
	const char *name; /* the job's */
};

struct flt_uribl_state {
	const struct flt_session *s;
	struct flt_call *call;
	struct flt_uribl_job *job; /* on a worker */
	struct flt_uribl_job *done_job;
	struct flt_uribl_query *queries;
	unsigned nqueries;
	unsigned pending;
};

static const psl_ctx_t *flt_psl;
static pthread_once_t flt_psl_once = PTHREAD_ONCE_INIT;

static void
flt_psl_load(void)
{
	/* The newest of Debian's public suffix list and libpsl's own. */
	flt_psl = psl_latest(NULL);
	if (flt_psl == NULL)
		flt_psl = psl_builtin();
}

static void *
flt_uribl_new(const struct flt_session *s)
{
	struct flt_uribl_state *st;

	if (s->cfg->nuribl == 0)
		return NULL;
	st = px_calloc(1, sizeof(*st));
	st->s = s;
	return st;
}

/* flt_uribl_queries_free - cancel and free the lookups of the message. */
static void
flt_uribl_queries_free(struct flt_uribl_state *st)
{
	for (unsigned i = 0; i < st->nqueries; i++)
		if (st->queries[i].q != NULL)
			flt_dns_cancel(st->queries[i].q);
	free(st->queries);
	st->queries = NULL;
	st->nqueries = 0;
	st->pending = 0;
	free(st->done_job);
	st->done_job = NULL;
}

static void
flt_uribl_free(void *state)
{
	struct flt_uribl_state *st = state;

	if (st == NULL)
		return;
	if (st->job != NULL)
		st->job->st = NULL; /* the worker's done frees it */
	flt_uribl_queries_free(st);
	free(st);
}

/* flt_uribl_name - what the lists are asked for host: the reversed IPv4
 * address, or the registered domain.  0, or -1 to skip it. */
static int
flt_uribl_name(const char *host, char *out, size_t size)
{
	struct in_addr a;
	const char *reg;

	if (inet_pton(AF_INET, host, &a) == 1) {
		const unsigned char *b = (const unsigned char *)&a;

		snprintf(out, size, "%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
		return 0;
	}
	pthread_once(&flt_psl_once, flt_psl_load);
	reg = flt_psl != NULL ? psl_registrable_domain(flt_psl, host) : NULL;
	if (reg == NULL)
		return -1; /* a public suffix itself, or no dot */
	snprintf(out, size, "%s", reg);
	return 0;
}

/* Worker: decode, collect the names.  Touches only the job. */
static void
flt_uribl_work(void *arg)
{
	struct flt_uribl_job *job = arg;
	struct rule_msg *msg =
	    rule_msg_parse(job->buf, job->len, job->truncated);
	char host[256], name[256];

	for (size_t i = 0; i < msg->nuris && job->nnames < FLT_URIBL_MAX; i++) {
		bool seen = false;

		if (flt_uri_host(msg->uris[i], host, sizeof(host)) < 0 ||
		    flt_uribl_name(host, name, sizeof(name)) < 0)
			continue;
		for (unsigned j = 0; j < job->nnames && !seen; j++)
			seen = strcmp(job->names[j], name) == 0;
		if (!seen)
			snprintf(job->names[job->nnames++],
			         sizeof(job->names[0]), "%s", name);
	}
	rule_msg_free(&msg);
	free(job->buf);
	job->buf = NULL;
}

static void
flt_uribl_finish(struct flt_uribl_state *st)
{
	struct flt_call *call = st->call;

	st->call = NULL;
	for (unsigned i = 0; i < st->nqueries; i++) {
		/* The symbol once per list; the log names what matched. */
		struct flt_uribl_query *uq = &st->queries[i];

		if (uq->name == NULL)
			continue;
		px_log_info("%016llx.%u uribl %s lists %s",
		            (unsigned long long)st->s->sid, st->s->txn,
		            uq->list->zone, uq->name);
		flt_symbol_add(call, uq->list->symbol, uq->list->weight);
	}
	flt_resume(call);
}

static void
flt_uribl_answer(void *arg, const struct flt_dns_result *res)
{
	struct flt_uribl_query *uq = arg;
	struct flt_uribl_state *st = uq->st;

	uq->q = NULL;
	/* name stays set only for a listing (finish reports those). */
	if (!flt_dnslist_listed(uq->list, res, st->s->sid, uq->name))
		uq->name = NULL;
	if (--st->pending == 0 && st->call != NULL)
		flt_uribl_finish(st);
}

/* Loop: the names are known; ask every list about each. */
static void
flt_uribl_done(void *arg)
{
	struct flt_uribl_job *job = arg;
	struct flt_uribl_state *st = job->st;
	const struct px_config *cfg;
	unsigned n = 0;

	if (st == NULL) { /* the session ended meanwhile */
		free(job->buf);
		free(job);
		return;
	}
	st->job = NULL;
	st->done_job = job;
	cfg = st->s->cfg;
	st->queries = px_calloc((size_t)job->nnames * cfg->nuribl + 1,
	                        sizeof(*st->queries));
	for (unsigned i = 0; i < job->nnames; i++)
		for (size_t l = 0; l < cfg->nuribl; l++) {
			struct flt_uribl_query *uq = &st->queries[n++];

			uq->st = st;
			uq->list = &cfg->uribl[l];
			uq->name = job->names[i];
		}
	st->nqueries = n;
	st->pending = n;
	if (n == 0) {
		flt_uribl_finish(st);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		struct flt_uribl_query *uq = &st->queries[i];
		char qname[600];

		snprintf(qname, sizeof(qname), "%s.%s", uq->name,
		         uq->list->zone);
		uq->q = flt_dns_query(st->s->loop, qname, 1 /* A */,
		                      cfg->dns.timeout, flt_uribl_answer, uq);
	}
}

static int
flt_uribl_eom(struct flt_call *call)
{
	struct flt_uribl_state *st = call->state;
	struct flt_uribl_job *job;

	if (st == NULL || call->s->message == NULL)
		return 1;
	if (flt_fact_has(call, FLT_FACT_AUTHENTICATED))
		return 1; /* our own users' links are not the point */
	flt_uribl_queries_free(st);
	job = px_calloc(1, sizeof(*job));
	job->st = st;
	job->buf = px_spool_copy(call->s->message, RULE_SCAN_MAX, &job->len,
	                         &job->truncated);
	st->job = job;
	st->call = call;
	px_workers_submit(call->s->loop, flt_uribl_work, flt_uribl_done, job);
	return 0;
}

static void
flt_uribl_cancel(struct flt_call *call)
{
	struct flt_uribl_state *st = call->state;

	st->call = NULL;
	if (st->job != NULL) {
		st->job->st = NULL;
		st->job = NULL;
	}
	flt_uribl_queries_free(st);
}

static void
flt_uribl_reset(void *state)
{
	struct flt_uribl_state *st = state;

	if (st != NULL && st->call == NULL)
		flt_uribl_queries_free(st);
}

const struct flt_ops flt_uribl = {
    .name = "uribl",
    .session_new = flt_uribl_new,
    .session_free = flt_uribl_free,
    .reset = flt_uribl_reset,
    .on_stage = {[FLT_STAGE_EOM] = flt_uribl_eom},
    .cancel = flt_uribl_cancel,
};
