/* SPDX-License-Identifier: MIT */
/*
 * iprev.c - forward-confirmed reverse DNS of the client (RFC 8601 2.7.3
 * "iprev", what Postfix calls a client name that is not "unknown").
 *
 * Started at connect (the greeting does not wait), awaited at MAIL (the
 * backend connection, opened after MAIL, needs the name): the PTR records
 * of the client address, then the A (IPv4 client) or AAAA records of each
 * name (at most FLT_IPREV_NAMES), all at once.  The first name whose
 * addresses include the client's is the verified name: XCLIENT NAME and
 * the Received header use it.  Results:
 *   pass       a name maps back to the client
 *   fail       PTR names exist but none maps back        IPREV_FAIL
 *   permerror  no PTR record                             RDNS_NONE
 *   temperror  a lookup timed out or failed (no symbol: a DNS outage must
 *              not score mail)
 */
#include "filter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dns.h"
#include "dnsname.h"
#include "log.h"

#define FLT_IPREV_NAMES 4

struct flt_iprev_state;

struct flt_iprev_fwd {
	struct flt_iprev_state *st;
	struct flt_dns_query *q;
	char name[256];
};

struct flt_iprev_state {
	struct flt_call *call; /* a MAIL stage waiting for us, or NULL */
	bool running;
	enum flt_iprev result;
	struct flt_dns_query *ptr_q;
	struct flt_iprev_fwd fwd[FLT_IPREV_NAMES];
	unsigned nfwd;
	unsigned pending;
	bool temp;          /* a lookup failed temporarily */
	const char *passed; /* the name that maps back */
	unsigned char addr[16];
	int family;
	const struct flt_session *s;
};

/* flt_iprev_report - MAIL: the result as the client name and symbols. */
static void
flt_iprev_report(struct flt_iprev_state *st, struct flt_call *call)
{
	flt_client_name_set(
	    call, st->result == FLT_IPREV_PASS ? st->passed : NULL, st->result);
	if (st->result == FLT_IPREV_FAIL)
		flt_symbol_add(call, "IPREV_FAIL", 1.0);
	else if (st->result == FLT_IPREV_PERMERROR)
		flt_symbol_add(call, "RDNS_NONE", 1.5);
}

static void
flt_iprev_finish(struct flt_iprev_state *st, enum flt_iprev result)
{
	struct flt_call *call = st->call;

	st->running = false;
	st->result = result;
	st->call = NULL;
	if (call != NULL) {
		flt_iprev_report(st, call);
		flt_resume(call);
	}
}

static void
flt_iprev_forward(void *arg, const struct flt_dns_result *res)
{
	struct flt_iprev_fwd *f = arg;
	struct flt_iprev_state *st = f->st;
	size_t alen = st->family == AF_INET ? 4 : 16;

	f->q = NULL;
	if (res->status == FLT_DNS_ANSWER) {
		for (unsigned i = 0; i < res->n && st->passed == NULL; i++)
			if ((size_t)res->len[i] == alen &&
			    memcmp(res->data[i], st->addr, alen) == 0)
				st->passed = f->name;
	} else if (res->status != FLT_DNS_NXDOMAIN &&
	           res->status != FLT_DNS_NODATA) {
		st->temp = true;
	}
	if (--st->pending > 0)
		return;
	if (st->passed != NULL)
		flt_iprev_finish(st, FLT_IPREV_PASS);
	else
		flt_iprev_finish(st, st->temp ? FLT_IPREV_TEMPERROR
		                              : FLT_IPREV_FAIL);
}

static void
flt_iprev_ptr(void *arg, const struct flt_dns_result *res)
{
	struct flt_iprev_state *st = arg;
	const struct flt_session *s = st->s;

	st->ptr_q = NULL;
	if (res->status == FLT_DNS_NXDOMAIN || res->status == FLT_DNS_NODATA) {
		flt_iprev_finish(st, FLT_IPREV_PERMERROR);
		return;
	}
	if (res->status != FLT_DNS_ANSWER) {
		flt_iprev_finish(st, FLT_IPREV_TEMPERROR);
		return;
	}
	st->nfwd = 0;
	for (unsigned i = 0; i < res->n && st->nfwd < FLT_IPREV_NAMES; i++) {
		struct flt_iprev_fwd *f = &st->fwd[st->nfwd];

		/* Host-name bytes only: the name goes into XCLIENT and a
		 * Received header (SECURITY). */
		if (flt_dns_name_text(res->data[i], res->len[i], 0,
		                      FLT_DNS_NAME_HOST, f->name,
		                      sizeof(f->name)) < 0)
			continue;
		f->st = st;
		st->nfwd++;
	}
	if (st->nfwd == 0) {
		/* Only unusable names. */
		flt_iprev_finish(st, FLT_IPREV_FAIL);
		return;
	}
	st->pending = st->nfwd;
	for (unsigned i = 0; i < st->nfwd; i++)
		st->fwd[i].q = flt_dns_query(
		    s->loop, st->fwd[i].name,
		    st->family == AF_INET ? FLT_DNS_A : FLT_DNS_AAAA,
		    s->cfg->dns.timeout, flt_iprev_forward, &st->fwd[i]);
}

static int
flt_iprev_connect(struct flt_call *call)
{
	struct flt_iprev_state *st = call->state;
	const struct flt_session *s = call->s;
	char name[128];

	if (inet_pton(AF_INET, s->client_ip, st->addr) == 1)
		st->family = AF_INET;
	else if (inet_pton(AF_INET6, s->client_ip, st->addr) == 1)
		st->family = AF_INET6;
	else
		return 1;
	if (!s->cfg->fcrdns ||
	    flt_dns_reverse_name(s->client_ip, NULL, name, sizeof(name)) < 0)
		return 1;
	st->s = s;
	st->passed = NULL;
	st->temp = false;
	st->running = true;
	/* Started, not awaited: the greeting goes out meanwhile. */
	st->ptr_q = flt_dns_query(s->loop, name, FLT_DNS_PTR,
	                          s->cfg->dns.timeout, flt_iprev_ptr, st);
	return 1;
}

static int
flt_iprev_mail(struct flt_call *call)
{
	struct flt_iprev_state *st = call->state;

	if (st->running) {
		st->call = call;
		return 0;
	}
	if (st->result != FLT_IPREV_NONE)
		flt_iprev_report(st, call);
	return 1;
}

static void
flt_iprev_cancel(struct flt_call *call)
{
	struct flt_iprev_state *st = call->state;

	/* MAIL gave up waiting (timeouts.filter); the lookups go on. */
	st->call = NULL;
}

static void *
flt_iprev_new(const struct flt_session *s)
{
	return px_calloc(1, sizeof(struct flt_iprev_state));
}

static void
flt_iprev_free(void *state)
{
	struct flt_iprev_state *st = state;

	if (st == NULL)
		return;
	flt_dns_cancel(st->ptr_q);
	for (unsigned i = 0; i < st->nfwd; i++)
		flt_dns_cancel(st->fwd[i].q);
	free(st);
}

const struct flt_ops flt_iprev = {
    .name = "iprev",
    .session_new = flt_iprev_new,
    .session_free = flt_iprev_free,
    .on_stage =
        {
            [FLT_STAGE_CONNECT] = flt_iprev_connect,
            [FLT_STAGE_MAIL] = flt_iprev_mail,
        },
    .cancel = flt_iprev_cancel,
};
