/* SPDX-License-Identifier: MIT */
/*
 * dmarc.c - the DMARC filter (RFC 7489): the From domain's policy, the
 * alignment of the SPF and DKIM identities with it, and the disposition.
 *
 * Order: SPF is final at MAIL; DKIM publishes its results at EOM, from a
 * worker.  This filter, later in the chain's table, asks the chain to call
 * it back once the dkim filter's EOM call is done (flt_call_after): one
 * hook in the chain instead of a second stage, and the policy lookups run
 * meanwhile.  A disabled or skipped DKIM filter is done at once, and its
 * results are then "not evaluated" (no signatures to align).
 *
 * The From domain (RFC 7489 6.6.1): the header section's From fields.
 * None, several fields, a field without an address, or addresses in
 * different domains: no DMARC evaluation, dmarc=permerror (header.from
 * omitted when unknown), symbol DMARC_BAD_FROM; with enforce nothing is
 * rejected for it (OpenDMARC's default).  Several addresses of one domain
 * are evaluated for that domain.
 *
 * The policy record: TXT _dmarc.<From domain>, else _dmarc.<organizational
 * domain> (libpsl, psl_latest: Debian's publicsuffix), looked up through
 * our resolver on the loop (flt_dns_query); exactly one record starting
 * "v=DMARC1" counts (RFC 7489 6.6.3).  libopendmarc parses it
 * (opendmarc_policy_store_dmarc; its own DNS is never used); alignment is
 * computed here with the same libpsl organizational domains, so that it
 * does not depend on libopendmarc's TLD file.
 *
 * Results: pass (an aligned SPF pass or DKIM pass), fail, none (no
 * record), temperror (the lookup failed or timed out), permerror (the
 * record does not parse; the From header as above).  pct: a failure is
 * sampled (getrandom); one not selected gets the next lower policy
 * (reject -> quarantine -> none, RFC 7489 6.6.4).  dmarc.enforce: a
 * failure whose disposition is reject is refused with 550 5.7.1 at the end
 * of data, quarantine is tagged (the TAG action).
 */
#include "filter.h"

#include <libpsl.h>
#include <opendmarc/dmarc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "alloc.h"
#include "dkim_report.h"
#include "dmarc_from.h"
#include "dmarc_report.h"
#include "dns.h"
#include "log.h"
#include "netaddr.h"
#include "spool.h"
#include "txnlog.h"

#define FLT_DMARC_HEADER_MAX 65536 /* header bytes read for From */

enum flt_dmarc_lookup {
	FLT_DMARC_LK_FROM = 0, /* _dmarc.<From domain> */
	FLT_DMARC_LK_ORG,      /* _dmarc.<organizational domain> */
	FLT_DMARC_LK_DONE,
};

struct flt_dmarc_state {
	struct flt_call *call; /* the EOM stage waiting for us, or NULL */
	struct flt_dns_query *q;
	enum flt_dmarc_lookup lk;
	bool dkim_waiting; /* flt_call_after is pending */
	char from[256];
	char org[256];
	/* The lookups' outcome. */
	enum flt_dmarc result_if_no_record;
	bool found;
	bool at_org; /* the record came from the organizational domain */
	char *record;
};

static const psl_ctx_t *flt_dmarc_psl;
static pthread_once_t flt_dmarc_once = PTHREAD_ONCE_INIT;

static void
flt_dmarc_init(void)
{
	OPENDMARC_LIB_T lib;

	flt_dmarc_psl = psl_latest(NULL);
	if (flt_dmarc_psl == NULL)
		flt_dmarc_psl = psl_builtin();
	/* No TLD file (alignment is ours), no name servers (lookups are
	 * ours): the library only parses records. */
	memset(&lib, 0, sizeof(lib));
	lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
	opendmarc_policy_library_init(&lib);
}

static const char *const flt_dmarc_names[] = {
    [FLT_DMARC_NONE] = "none",           [FLT_DMARC_PASS] = "pass",
    [FLT_DMARC_FAIL] = "fail",           [FLT_DMARC_TEMPERROR] = "temperror",
    [FLT_DMARC_PERMERROR] = "permerror",
};

const char *
flt_dmarc_result_name(enum flt_dmarc r)
{
	return r <= FLT_DMARC_PERMERROR ? flt_dmarc_names[r] : "none";
}

/* flt_dmarc_org - the organizational domain of d (d itself when libpsl
 * finds none, as for a public suffix). */
static void
flt_dmarc_org(const char *d, char *out, size_t size)
{
	const char *reg;

	pthread_once(&flt_dmarc_once, flt_dmarc_init);
	reg = flt_dmarc_psl != NULL ? psl_registrable_domain(flt_dmarc_psl, d)
	                            : NULL;
	snprintf(out, size, "%s", reg != NULL ? reg : d);
}

/* flt_dmarc_aligned - RFC 7489 3.1: strict = the same name, relaxed = the
 * same organizational domain. */
bool
flt_dmarc_aligned(const char *id, const char *from, bool strict)
{
	char a[256], b[256];
	size_t il;

	if (id == NULL || id[0] == '\0' || from[0] == '\0')
		return false;
	il = strlen(id);
	if (il > 0 && id[il - 1] == '.')
		il--;
	if (il >= sizeof(a))
		return false;
	memcpy(a, id, il);
	a[il] = '\0';
	for (char *p = a; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (strict)
		return strcmp(a, from) == 0;
	flt_dmarc_org(a, b, sizeof(b));
	flt_dmarc_org(from, a, sizeof(a));
	return strcmp(a, b) == 0;
}

/* flt_dmarc_upper_policy - p (DMARC_RECORD_P_*) as written in the
 * Authentication-Results comment. */
static void
flt_dmarc_upper_policy(int p, char *out, size_t size)
{
	const char *n = p == DMARC_RECORD_P_REJECT       ? "REJECT"
	                : p == DMARC_RECORD_P_QUARANTINE ? "QUARANTINE"
	                                                 : "NONE";

	snprintf(out, size, "%s", n);
}

/* flt_dmarc_sampled - whether a failure is subject to the policy: always
 * for pct=100, never for pct=0, else with probability pct/100. */
static bool
flt_dmarc_sampled(int pct)
{
	uint32_t u;

	if (pct >= 100)
		return true;
	if (pct <= 0)
		return false;
	if (getrandom(&u, sizeof(u), GRND_NONBLOCK) != (ssize_t)sizeof(u))
		u = (uint32_t)random();
	return u % 100 < (uint32_t)pct;
}

/* flt_dmarc_finish - both the record and DKIM are known: evaluate,
 * publish, resume. */
static void
flt_dmarc_finish(struct flt_dmarc_state *st)
{
	struct flt_call *call = st->call;
	const struct px_config *cfg = call->s->cfg;
	struct flt_dmarc_res r;
	const char *spf_domain;
	enum flt_spf spf = flt_spf_get(call, &spf_domain);
	const struct flt_dkim_sig *sigs;
	int nsigs = flt_dkim_get(call, &sigs);
	DMARC_POLICY_T *pctx;
	int p = 0, sp = 0, pct = 100, adkim = 0, aspf = 0, policy;
	bool spf_al = false, dkim_al = false;

	st->call = NULL;
	memset(&r, 0, sizeof(r));
	snprintf(r.from, sizeof(r.from), "%s", st->from);
	if (!st->found) {
		r.result = st->result_if_no_record;
		flt_symbol_add(call,
		               r.result == FLT_DMARC_TEMPERROR ? "DMARC_DNSFAIL"
		                                               : "DMARC_NA",
		               0.0);
		goto publish;
	}
	pthread_once(&flt_dmarc_once, flt_dmarc_init);
	pctx = opendmarc_policy_connect_init((u_char *)"127.0.0.1",
	                                     DMARC_POLICY_IP_TYPE_IPV4);
	if (pctx == NULL ||
	    opendmarc_policy_store_dmarc(
	        pctx, (u_char *)st->record, (u_char *)st->from,
	        st->at_org ? (u_char *)st->org : NULL) != DMARC_PARSE_OKAY) {
		r.result = FLT_DMARC_PERMERROR;
		snprintf(r.reason, sizeof(r.reason), "bad policy record");
		flt_symbol_add(call, "DMARC_BAD_POLICY", 0.5);
		if (pctx != NULL)
			opendmarc_policy_connect_shutdown(pctx);
		goto publish;
	}
	opendmarc_policy_fetch_p(pctx, &p);
	opendmarc_policy_fetch_sp(pctx, &sp);
	opendmarc_policy_fetch_pct(pctx, &pct);
	opendmarc_policy_fetch_adkim(pctx, &adkim);
	opendmarc_policy_fetch_aspf(pctx, &aspf);
	opendmarc_policy_connect_shutdown(pctx);
	if (sp == DMARC_RECORD_P_UNSPECIFIED)
		sp = p;
	/* RFC 7489 6.3: sp applies to a subdomain's mail, the record then
	 * being the organizational domain's. */
	policy = st->at_org ? sp : p;
	flt_dmarc_upper_policy(p, r.p, sizeof(r.p));
	flt_dmarc_upper_policy(sp, r.sp, sizeof(r.sp));
	if (spf == FLT_SPF_PASS)
		spf_al = flt_dmarc_aligned(spf_domain, st->from,
		                           aspf == DMARC_RECORD_A_STRICT);
	for (int i = 0; i < nsigs; i++)
		if (sigs[i].result == FLT_DKIM_PASS && !sigs[i].testing &&
		    flt_dmarc_aligned(sigs[i].domain, st->from,
		                      adkim == DMARC_RECORD_A_STRICT))
			dkim_al = true;
	if (spf_al || dkim_al) {
		r.result = FLT_DMARC_PASS;
		flt_dmarc_upper_policy(DMARC_RECORD_P_NONE, r.dis,
		                       sizeof(r.dis));
		flt_symbol_add(call, "DMARC_POLICY_ALLOW", -0.5);
		goto publish;
	}
	r.result = FLT_DMARC_FAIL;
	snprintf(r.reason, sizeof(r.reason), "no aligned %s",
	         spf == FLT_SPF_PASS || nsigs > 0 ? "pass" : "identifier");
	/* pct (RFC 7489 6.6.4): a failure not sampled gets the next lower
	 * policy. */
	if (!flt_dmarc_sampled(pct))
		policy = policy == DMARC_RECORD_P_REJECT
		             ? DMARC_RECORD_P_QUARANTINE
		             : DMARC_RECORD_P_NONE;
	flt_dmarc_upper_policy(policy, r.dis, sizeof(r.dis));
	if (policy == DMARC_RECORD_P_REJECT) {
		flt_symbol_add(call, "DMARC_POLICY_REJECT", 2.0);
		if (cfg->dmarc.enforce)
			flt_verdict_set(
			    call, FLT_REJECT, 550, "5.7.1", "dmarc reject",
			    "Rejected by the DMARC policy of %s", st->from);
	} else if (policy == DMARC_RECORD_P_QUARANTINE) {
		flt_symbol_add(call, "DMARC_POLICY_QUARANTINE", 1.5);
		if (cfg->dmarc.enforce)
			flt_verdict_set(call, FLT_TAG, 0, NULL,
			                "dmarc quarantine", NULL);
	} else {
		flt_symbol_add(call, "DMARC_POLICY_SOFTFAIL", 0.1);
	}
publish:
	flt_dmarc_set(call, &r);
	{
		char from[300];

		px_log_str(from, sizeof(from), r.from[0] ? r.from : NULL);
		px_log_info("%016llx.%u dmarc result=%s from=%s p=%s sp=%s "
		            "dis=%s spf_aligned=%s dkim_aligned=%s",
		            (unsigned long long)call->s->sid, call->s->txn,
		            flt_dmarc_result_name(r.result), from,
		            r.p[0] ? r.p : "-", r.sp[0] ? r.sp : "-",
		            r.dis[0] ? r.dis : "-", spf_al ? "yes" : "no",
		            dkim_al ? "yes" : "no");
	}
	flt_resume(call);
}

static void flt_dmarc_lookup(struct flt_dmarc_state *st);

/* flt_dmarc_answer - one _dmarc TXT answer, on the loop. */
static void
flt_dmarc_answer(void *arg, const struct flt_dns_result *res)
{
	struct flt_dmarc_state *st = arg;
	unsigned nrec = 0;

	st->q = NULL;
	if (res->status == FLT_DNS_ANSWER) {
		for (unsigned i = 0; i < res->n; i++) {
			const unsigned char *d = res->data[i];
			int len = res->len[i];
			char *txt = px_malloc((size_t)len + 1);
			size_t n = 0;

			/* Character-strings joined (RFC 7489 6.6.3). */
			for (int j = 0; j < len;) {
				int sl = d[j++];

				if (sl > len - j)
					sl = len - j;
				memcpy(txt + n, d + j, (size_t)sl);
				n += (size_t)sl;
				j += sl;
			}
			txt[n] = '\0';
			if (n < 8 || strncmp(txt, "v=DMARC1", 8) != 0 ||
			    (txt[8] != '\0' && txt[8] != ';' && txt[8] != ' ' &&
			     txt[8] != '\t') ||
			    strlen(txt) != n) {
				free(txt);
				continue;
			}
			nrec++;
			free(st->record);
			st->record = txt;
		}
		if (nrec > 1) { /* RFC 7489 6.6.3: several records, none */
			free(st->record);
			st->record = NULL;
			nrec = 0;
		}
	}
	if (nrec == 1) {
		st->found = true;
		st->at_org = st->lk == FLT_DMARC_LK_ORG;
		st->lk = FLT_DMARC_LK_DONE;
	} else if (res->status == FLT_DNS_SERVFAIL ||
	           res->status == FLT_DNS_TIMEOUT ||
	           res->status == FLT_DNS_ERROR) {
		st->result_if_no_record = FLT_DMARC_TEMPERROR;
		st->lk = FLT_DMARC_LK_DONE;
	} else if (st->lk == FLT_DMARC_LK_FROM &&
	           strcmp(st->from, st->org) != 0) {
		st->lk = FLT_DMARC_LK_ORG;
		flt_dmarc_lookup(st);
		return;
	} else {
		st->lk = FLT_DMARC_LK_DONE;
	}
	if (!st->dkim_waiting && st->call != NULL)
		flt_dmarc_finish(st);
}

static void
flt_dmarc_lookup(struct flt_dmarc_state *st)
{
	char name[300];
	const struct flt_session *s = st->call->s;

	snprintf(name, sizeof(name), "_dmarc.%s",
	         st->lk == FLT_DMARC_LK_FROM ? st->from : st->org);
	st->q = flt_dns_query(s->loop, name, FLT_DNS_TXT, s->cfg->dns.timeout,
	                      flt_dmarc_answer, st);
	if (st->q == NULL) {
		st->result_if_no_record = FLT_DMARC_TEMPERROR;
		st->lk = FLT_DMARC_LK_DONE;
	}
}

/* flt_dmarc_dkim_done - the dkim filter's EOM call is done (chain hook). */
static void
flt_dmarc_dkim_done(struct flt_call *call)
{
	struct flt_dmarc_state *st = call->state;

	st->dkim_waiting = false;
	if (st->lk == FLT_DMARC_LK_DONE && st->call != NULL)
		flt_dmarc_finish(st);
}

static int
flt_dmarc_eom(struct flt_call *call)
{
	struct flt_dmarc_state *st = call->state;
	const struct flt_session *s = call->s;
	const char *why;
	size_t len = 0;
	bool trunc = false;
	char *msg;

	if (!s->cfg->dmarc.enabled ||
	    (!s->cfg->dmarc.check_trusted && flt_client_trusted(call)) ||
	    s->message == NULL)
		return 1;
	msg = px_spool_copy(s->message, FLT_DMARC_HEADER_MAX, &len, &trunc);
	if (flt_dmarc_from(msg, len, st->from, sizeof(st->from), &why) < 0) {
		struct flt_dmarc_res r;

		free(msg);
		memset(&r, 0, sizeof(r));
		r.result = FLT_DMARC_PERMERROR;
		snprintf(r.reason, sizeof(r.reason), "%s", why);
		flt_dmarc_set(call, &r);
		flt_symbol_add(call, "DMARC_BAD_FROM", 0.0);
		char wbuf[128];

		px_log_str(wbuf, sizeof(wbuf), why);
		px_log_info(
		    "%016llx.%u dmarc result=permerror from=- reason=%s",
		    (unsigned long long)s->sid, s->txn, wbuf);
		return 1;
	}
	free(msg);
	flt_dmarc_org(st->from, st->org, sizeof(st->org));
	st->call = call;
	st->lk = FLT_DMARC_LK_FROM;
	st->found = false;
	st->result_if_no_record = FLT_DMARC_NONE;
	st->dkim_waiting = flt_call_after(call, "dkim", flt_dmarc_dkim_done);
	flt_dmarc_lookup(st);
	if (st->lk == FLT_DMARC_LK_DONE && !st->dkim_waiting) {
		/* finish resumes: the chain counts that as done at once. */
		flt_dmarc_finish(st);
		return 1;
	}
	return 0;
}

static void
flt_dmarc_cancel(struct flt_call *call)
{
	struct flt_dmarc_state *st = call->state;

	st->call = NULL;
	st->dkim_waiting = false;
	if (st->q != NULL)
		flt_dns_cancel(st->q);
	st->q = NULL;
}

static void *
flt_dmarc_new(const struct flt_session *s)
{
	(void)s;
	return px_calloc(1, sizeof(struct flt_dmarc_state));
}

static void
flt_dmarc_reset(void *state)
{
	struct flt_dmarc_state *st = state;

	if (st->q != NULL)
		flt_dns_cancel(st->q);
	st->q = NULL;
	st->call = NULL;
	st->dkim_waiting = false;
	free(st->record);
	st->record = NULL;
	st->found = false;
	st->from[0] = '\0';
}

static void
flt_dmarc_free(void *state)
{
	if (state == NULL)
		return;
	flt_dmarc_reset(state);
	free(state);
}

const struct flt_ops flt_dmarc = {
    .name = "dmarc",
    .session_new = flt_dmarc_new,
    .session_free = flt_dmarc_free,
    .reset = flt_dmarc_reset,
    .on_stage =
        {
            [FLT_STAGE_EOM] = flt_dmarc_eom,
        },
    .cancel = flt_dmarc_cancel,
};

/* flt_dmarc_authres - "dmarc=RESULT (p=P sp=SP dis=D) header.from=F"
 * (RFC 7489 11.2, RFC 8601). */
size_t
flt_dmarc_authres(char *buf, size_t size, const struct flt_dmarc_res *r)
{
	char comment[128] = "";
	int k;

	if (r == NULL)
		return 0;
	if (r->p[0])
		snprintf(comment, sizeof(comment), " (p=%s sp=%s dis=%s)", r->p,
		         r->sp, r->dis);
	else if (r->reason[0])
		snprintf(comment, sizeof(comment), " (%s)", r->reason);
	k = snprintf(buf, size, "dmarc=%s%s%s%s",
	             flt_dmarc_result_name(r->result), comment,
	             r->from[0] ? " header.from=" : "", r->from);
	return k > 0 && (size_t)k < size ? (size_t)k : 0;
}
