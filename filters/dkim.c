/* SPDX-License-Identifier: MIT */
/*
 * dkim.c - the DKIM filter (RFC 6376, RFC 8463 through libopendkim):
 * every DKIM-Signature of a message is verified, its result published
 * for Authentication-Results (RFC 8601 2.7.1) and for DMARC.
 *
 * flt_dkim: the filter.  on_data feeds the message to libopendkim as it
 * streams into the spool (dkim_chunk: header parsing and body hashing on
 * the loop thread, which costs what reading the bytes costs); the EOM
 * stage hands the handle to the worker pool, where dkim_eom() looks the
 * keys up (blocking, through flt_dns_resolve(): our resolver, its cache
 * and its configured servers) and checks the signatures.  Clients that
 * authenticated or are in relay_networks are not checked unless
 * dkim.check_trusted.
 *
 * Results per signature: pass, fail (signature or body hash mismatch,
 * revoked key), policy (expired, dated in the future, key too small,
 * unauthorized subdomain), neutral (algorithm this libopendkim cannot
 * verify), temperror (key lookup timed out or failed), permerror (no
 * key, unusable key, malformed signature).  Symbols: DKIM_VALID,
 * DKIM_VALID_AU, DKIM_INVALID, DKIM_POLICY, DKIM_TEMPERROR,
 * DKIM_PERMERROR, DKIM_NEUTRAL, DKIM_TESTING, DKIM_NONE.
 *
 * Lifetimes: the libopendkim handle belongs to the transaction (state)
 * until EOM, then to the job; the job belongs to the worker pool until
 * its done callback runs on our loop.  A session that ends first only
 * detaches it (job->st = NULL) and the callback frees it.  dkim.timeout
 * bounds the wait, after which every signature is temperror.
 */
#include "filter.h"

#include <opendkim/dkim.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "alloc.h"
#include "dns.h"
#include "log.h"
#include "loop.h"
#include "netaddr.h"
#include "txnlog.h"
#include "dkim_header.h"
#include "dkim_report.h"
#include "workers.h"

#define FLT_DKIM_MAX_SIGS 32
#define FLT_DKIM_MAX_BAD  4 /* unparseable signatures listed */

struct flt_dkim_state;

/* One key lookup, as the worker saw it: what libopendkim cannot tell
 * apart (a missing key from a lookup that timed out). */
struct flt_dkim_lookup {
	char domain[256];
	char selector[64];
	enum flt_dns_status status;
};

struct flt_dkim_job {
	struct flt_dkim_state *st; /* NULL once the session let go */
	DKIM *dkim;
	atomic_bool abandoned;
	struct timespec start;
	double budget; /* seconds for every lookup together */
	unsigned max_sigs;
	/* Outputs. */
	char from_domain[256];
	struct flt_dkim_sig sigs[FLT_DKIM_MAX_SIGS];
	unsigned nsigs;
	struct flt_dkim_lookup lookups[FLT_DKIM_MAX_SIGS];
	unsigned nlookups;
	char problem[128];
};

struct flt_dkim_state {
	const struct flt_session *s;
	struct flt_call *call; /* the EOM stage waiting for us, or NULL */
	DKIM *dkim;            /* fed during DATA; NULL when not checking */
	bool skip;             /* this transaction is not checked */
	bool started;          /* on_data ran for this transaction */
	DKIM_STAT fed;         /* first error while feeding, or OK */
	/* The header section is held until its end, so that signature
	 * fields libopendkim cannot parse are kept from it (see
	 * flt_dkim_field); then the body streams. */
	struct flt_dkim_hdr hdr;
	struct flt_dkim_sig bad[FLT_DKIM_MAX_BAD];
	unsigned nbad;
	struct flt_dkim_job *job;
	/* The signatures as known at EOM, all temperror: the answer if the
	 * job does not finish within dkim.timeout. */
	struct flt_dkim_job *pre;
	struct event *timer;
};

/* Default scores, rspamd's R_DKIM_* where it has one. */
static const struct {
	const char *symbol;
	double score;
} flt_dkim_symbols[] = {
    [FLT_DKIM_NONE] = {"DKIM_NONE", 0.0},
    [FLT_DKIM_PASS] = {"DKIM_VALID", -0.1},
    [FLT_DKIM_FAIL] = {"DKIM_INVALID", 1.0},
    [FLT_DKIM_NEUTRAL] = {"DKIM_NEUTRAL", 0.0},
    [FLT_DKIM_POLICY] = {"DKIM_POLICY", 0.5},
    [FLT_DKIM_TEMPERROR] = {"DKIM_TEMPERROR", 0.0},
    [FLT_DKIM_PERMERROR] = {"DKIM_PERMERROR", 0.0},
};
#define FLT_DKIM_VALID_AU_SCORE (-0.1)

static const char *const flt_dkim_names[] = {
    [FLT_DKIM_NONE] = "none",           [FLT_DKIM_PASS] = "pass",
    [FLT_DKIM_FAIL] = "fail",           [FLT_DKIM_NEUTRAL] = "neutral",
    [FLT_DKIM_POLICY] = "policy",       [FLT_DKIM_TEMPERROR] = "temperror",
    [FLT_DKIM_PERMERROR] = "permerror",
};

const char *
flt_dkim_result_name(enum flt_dkim r)
{
	return r <= FLT_DKIM_PERMERROR ? flt_dkim_names[r] : "none";
}

/* The worker thread's job while it runs dkim_eom(); NULL elsewhere, so a
 * key lookup attempted on a loop thread is refused, not done blocking. */
static _Thread_local struct flt_dkim_job *flt_dkim_current;

static DKIM_LIB *flt_dkim_lib;
static pthread_once_t flt_dkim_once = PTHREAD_ONCE_INIT;
static bool flt_dkim_ed25519;

/* flt_dkim_key_lookup - libopendkim's key lookup hook (worker thread):
 * the TXT record at selector._domainkey.domain, its strings joined
 * (RFC 6376 3.6.2.2), from our resolver. */
static DKIM_CBSTAT
flt_dkim_key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct flt_dkim_job *job = flt_dkim_current;
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	struct flt_dkim_lookup *lk;
	struct flt_dns_result res;
	char name[600];
	size_t n = 0;

	if (job == NULL || buflen == 0)
		return DKIM_CBSTAT_TRYAGAIN;
	if (sel == NULL || dom == NULL || strlen(sel) >= sizeof(lk->selector) ||
	    strlen(dom) >= sizeof(lk->domain))
		return DKIM_CBSTAT_NOTFOUND;
	if (job->nlookups == FLT_DKIM_MAX_SIGS)
		return DKIM_CBSTAT_TRYAGAIN;
	lk = &job->lookups[job->nlookups++];
	snprintf(lk->domain, sizeof(lk->domain), "%s", dom);
	snprintf(lk->selector, sizeof(lk->selector), "%s", sel);
	/* The whole message has one budget; past it, or once the session
	 * let go, nothing more is asked. */
	if (atomic_load(&job->abandoned) ||
	    px_secs_since(&job->start) >= job->budget) {
		lk->status = FLT_DNS_TIMEOUT;
		return DKIM_CBSTAT_TRYAGAIN;
	}
	snprintf(name, sizeof(name), "%s._domainkey.%s", sel, dom);
	flt_dns_resolve(name, FLT_DNS_TXT, &res);
	lk->status = res.status;
	if (res.status == FLT_DNS_NXDOMAIN || res.status == FLT_DNS_NODATA) {
		flt_dns_result_free(&res);
		return DKIM_CBSTAT_NOTFOUND;
	}
	if (res.status != FLT_DNS_ANSWER || res.n == 0) {
		flt_dns_result_free(&res);
		return DKIM_CBSTAT_TRYAGAIN;
	}
	/* Several records: RFC 6376 3.6.2.2 lets the verifier pick; the
	 * first one is used.  Character-strings are joined without
	 * separators. */
	const unsigned char *p = res.data[0];
	int len = res.len[0];

	for (int i = 0; i < len;) {
		int sl = p[i++];

		if (sl > len - i)
			sl = len - i;
		for (int j = 0; j < sl && n + 1 < buflen; j++)
			buf[n++] = p[i + j];
		i += sl;
	}
	buf[n] = '\0';
	flt_dns_result_free(&res);
	return DKIM_CBSTAT_CONTINUE;
}

static void
flt_dkim_lib_init(void)
{
	/* Key lookups wait for dkim_eom() on a worker: without this flag
	 * libopendkim fetches keys in dkim_eoh(), on the loop thread. */
	unsigned int flags = DKIM_LIBFLAGS_DELAYSIGPROC;
	unsigned int bits = 1024;

	flt_dkim_lib = dkim_init(NULL, NULL);
	if (flt_dkim_lib == NULL) {
		px_log_err("dkim: libopendkim failed to initialise");
		return;
	}
	/* Keys come from our resolver only (DESIGN principle 6). */
	dkim_set_key_lookup(flt_dkim_lib, flt_dkim_key_lookup);
	dkim_options(flt_dkim_lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	             sizeof(flags));
	/* RFC 8301 3.2: RSA keys under 1024 bits are not acceptable. */
	dkim_options(flt_dkim_lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &bits,
	             sizeof(bits));
	flt_dkim_ed25519 = dkim_libfeature(flt_dkim_lib, DKIM_FEATURE_ED25519);
	px_log_info("dkim: libopendkim %08lx, ed25519 %s",
	            (unsigned long)dkim_libversion(),
	            flt_dkim_ed25519 ? "supported" : "not supported");
}

/* flt_dkim_classify - RFC 8601 2.7.1 result of one processed signature,
 * and a short reason when it is not a pass. */
static enum flt_dkim
flt_dkim_classify(const struct flt_dkim_job *job, DKIM_SIGINFO *sig,
                  char *reason, size_t size)
{
	unsigned int flags = dkim_sig_getflags(sig);
	int err = dkim_sig_geterror(sig);
	int bh = dkim_sig_getbh(sig);
	const char *dom = (const char *)dkim_sig_getdomain(sig);
	const char *sel = (const char *)dkim_sig_getselector(sig);
	const char *es;

	reason[0] = '\0';
	if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH &&
	    err == DKIM_SIGERROR_OK)
		return FLT_DKIM_PASS;
	/* What the resolver said decides between a missing key and a
	 * failed lookup. */
	for (unsigned i = 0; dom != NULL && sel != NULL && i < job->nlookups;
	     i++) {
		const struct flt_dkim_lookup *lk = &job->lookups[i];

		if (strcasecmp(lk->domain, dom) != 0 ||
		    strcasecmp(lk->selector, sel) != 0)
			continue;
		if (lk->status == FLT_DNS_NXDOMAIN ||
		    lk->status == FLT_DNS_NODATA) {
			snprintf(reason, size, "no key");
			return FLT_DKIM_PERMERROR;
		}
		if (lk->status != FLT_DNS_ANSWER) {
			snprintf(reason, size, "key lookup %s",
			         lk->status == FLT_DNS_TIMEOUT ? "timed out"
			                                       : "failed");
			return FLT_DKIM_TEMPERROR;
		}
	}
	/* libopendkim also calls a body hash mismatch BADSIG: the more
	 * useful reason first. */
	if (bh == DKIM_SIGBH_MISMATCH &&
	    (err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_BADSIG)) {
		snprintf(reason, size, "body hash mismatch");
		return FLT_DKIM_FAIL;
	}
	es = dkim_sig_geterrorstr(err);
	snprintf(reason, size, "%s", es != NULL ? es : "unknown error");
	switch (err) {
	case DKIM_SIGERROR_OK:
		if (!(flags & DKIM_SIGFLAG_PROCESSED)) {
			snprintf(reason, size, "not processed");
			return FLT_DKIM_NEUTRAL;
		}
		snprintf(reason, size, "signature mismatch");
		return FLT_DKIM_FAIL;
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_KEYREVOKED:
		return FLT_DKIM_FAIL;
	case DKIM_SIGERROR_EXPIRED:
	case DKIM_SIGERROR_FUTURE:
	case DKIM_SIGERROR_KEYTOOSMALL:
	case DKIM_SIGERROR_SUBDOMAIN:
	case DKIM_SIGERROR_MBSFAILED:
		return FLT_DKIM_POLICY;
	case DKIM_SIGERROR_KEYFAIL:
		return FLT_DKIM_TEMPERROR;
	case DKIM_SIGERROR_INVALID_A:
		/* An algorithm this library cannot verify is not the
		 * signer's error (RFC 8601 2.7.1 neutral). */
		return FLT_DKIM_NEUTRAL;
	case DKIM_SIGERROR_UNKNOWN:
		return FLT_DKIM_NEUTRAL;
	default:
		return FLT_DKIM_PERMERROR;
	}
}

/* flt_dkim_aligned - d= is the From domain, a parent or a child of it
 * (relaxed alignment through the organizational domain is DMARC's). */
static bool
flt_dkim_aligned(const char *d, const char *from)
{
	size_t dl = strlen(d), fl = strlen(from);

	if (dl == 0 || fl == 0)
		return false;
	if (dl == fl)
		return strcasecmp(d, from) == 0;
	if (dl < fl)
		return from[fl - dl - 1] == '.' &&
		       strcasecmp(from + fl - dl, d) == 0;
	return d[dl - fl - 1] == '.' && strcasecmp(d + dl - fl, from) == 0;
}

/* flt_dkim_copy_value - v as a printable token: at most size-1 bytes of
 * RFC 5322 atext and ".", anything else replaced by "_". */
static void
flt_dkim_copy_value(char *out, size_t size, const char *v)
{
	size_t n = 0;

	for (; v != NULL && *v != '\0' && n + 1 < size; v++) {
		char c = *v;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("-._+/=", c) != NULL))
			c = '_';
		out[n++] = c;
	}
	out[n] = '\0';
}

/* flt_dkim_describe - what identifies sig in the results: d=, s=, a=
 * (as written: libopendkim fills its algorithm only for signatures it
 * got far enough with) and the start of b=. */
static void
flt_dkim_describe(DKIM *dkim, DKIM_SIGINFO *sig, struct flt_dkim_sig *out)
{
	unsigned char b[64];
	size_t blen = sizeof(b);
	char *q;

	flt_dkim_copy_value(out->domain, sizeof(out->domain),
	                    (const char *)dkim_sig_getdomain(sig));
	flt_dkim_copy_value(out->selector, sizeof(out->selector),
	                    (const char *)dkim_sig_getselector(sig));
	/* header.b: enough of b= to tell signatures apart (RFC 6008 2:
	 * at least 8 characters). */
	if (dkim_get_sigsubstring(dkim, sig, (char *)b, &blen) ==
	    DKIM_STAT_OK) {
		b[blen < sizeof(b) ? blen : sizeof(b) - 1] = '\0';
		flt_dkim_copy_value(out->b, sizeof(out->b), (const char *)b);
	}
	flt_dkim_copy_value(
	    out->alg, sizeof(out->alg),
	    (const char *)dkim_sig_gettagvalue(sig, 0, (u_char *)"a"));
	for (q = out->alg; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
}

/* flt_dkim_list - job->sigs from libopendkim's list: evaluated (worker,
 * after dkim_eom) or, before that, described only and temperror (the
 * loop's answer if the worker does not finish in time). */
static void
flt_dkim_list(struct flt_dkim_job *job, DKIM_SIGINFO **sigs, int nsigs,
              bool evaluated)
{
	job->nsigs = 0;
	for (int i = 0; i < nsigs && job->nsigs < job->max_sigs; i++) {
		struct flt_dkim_sig *out = &job->sigs[job->nsigs];

		memset(out, 0, sizeof(*out));
		if (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE)
			continue;
		job->nsigs++;
		flt_dkim_describe(job->dkim, sigs[i], out);
		if (!evaluated) {
			out->result = FLT_DKIM_TEMPERROR;
			snprintf(out->reason, sizeof(out->reason),
			         "time limit exceeded");
			continue;
		}
		out->result = flt_dkim_classify(job, sigs[i], out->reason,
		                                sizeof(out->reason));
		out->testing =
		    (dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_TESTKEY) != 0;
		out->aligned = out->result == FLT_DKIM_PASS &&
		               flt_dkim_aligned(out->domain, job->from_domain);
	}
}

static void
flt_dkim_work(void *arg)
{
	struct flt_dkim_job *job = arg;
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;
	_Bool testkey = 0;
	DKIM_STAT rc;
	const unsigned char *from;

	flt_dkim_current = job;
	rc = dkim_eom(job->dkim, &testkey);
	if (dkim_getsiglist(job->dkim, &sigs, &nsigs) == DKIM_STAT_OK)
		for (int i = 0; i < nsigs && i < (int)job->max_sigs; i++)
			if (!(dkim_sig_getflags(sigs[i]) &
			      DKIM_SIGFLAG_PROCESSED))
				(void)dkim_sig_process(job->dkim, sigs[i]);
	flt_dkim_current = NULL;
	sigs = NULL;
	nsigs = 0;
	if (rc != DKIM_STAT_OK && rc != DKIM_STAT_BADSIG &&
	    rc != DKIM_STAT_NOSIG && rc != DKIM_STAT_NOKEY &&
	    rc != DKIM_STAT_CANTVRFY && rc != DKIM_STAT_REVOKED &&
	    rc != DKIM_STAT_KEYFAIL && rc != DKIM_STAT_CBTRYAGAIN &&
	    rc != DKIM_STAT_CBERROR && rc != DKIM_STAT_SYNTAX)
		snprintf(job->problem, sizeof(job->problem), "%s",
		         dkim_getresultstr(rc));
	from = dkim_getdomain(job->dkim);
	snprintf(job->from_domain, sizeof(job->from_domain), "%s",
	         from != NULL ? (const char *)from : "");
	if (dkim_getsiglist(job->dkim, &sigs, &nsigs) != DKIM_STAT_OK)
		nsigs = 0;
	flt_dkim_list(job, sigs, nsigs, true);
}

/* flt_dkim_report - the results, to the waiting EOM stage. */
static void
flt_dkim_report(struct flt_dkim_state *st, const struct flt_dkim_job *job,
                bool timed_out)
{
	struct flt_call *call = st->call;
	struct flt_dkim_sig sigs[FLT_DKIM_MAX_SIGS];
	unsigned n = job != NULL ? job->nsigs : 0;
	bool pass = false, aligned = false, counted[FLT_DKIM_PERMERROR + 1];
	char line[1024];
	size_t w = 0;

	st->call = NULL;
	if (st->timer != NULL)
		evtimer_del(st->timer);
	if (call == NULL)
		return;
	memset(counted, 0, sizeof(counted));
	if (n > 0)
		memcpy(sigs, job->sigs, n * sizeof(sigs[0]));
	for (unsigned i = 0; i < st->nbad && n < FLT_DKIM_MAX_SIGS; i++)
		sigs[n++] = st->bad[i];
	for (unsigned i = 0; i < n; i++) {
		/* RFC 6376 3.6.1 t=y: treated like unsigned mail. */
		if (sigs[i].testing) {
			flt_symbol_add(call, "DKIM_TESTING", 0.0);
			continue;
		}
		counted[sigs[i].result] = true;
		pass |= sigs[i].result == FLT_DKIM_PASS;
		/* RFC 8301 3.1 retires rsa-sha1: still verified and said. */
		if (strcmp(sigs[i].alg, "rsa-sha1") == 0)
			flt_symbol_add(call, "DKIM_RSA_SHA1", 0.0);
		aligned |= sigs[i].aligned;
	}
	flt_dkim_set(call, sigs, n);
	if (n == 0)
		counted[FLT_DKIM_NONE] = true;
	for (unsigned r = 0; r <= FLT_DKIM_PERMERROR; r++)
		if (counted[r])
			flt_symbol_add(call, flt_dkim_symbols[r].symbol,
			               flt_dkim_symbols[r].score);
	if (aligned)
		flt_symbol_add(call, "DKIM_VALID_AU", FLT_DKIM_VALID_AU_SCORE);
	/* The log record: one "d/s=result" per signature. */
	for (unsigned i = 0; i < n && w + 1 < sizeof(line); i++) {
		int k = snprintf(line + w, sizeof(line) - w, "%s%s/%s=%s%s",
		                 i ? "," : "", sigs[i].domain, sigs[i].selector,
		                 flt_dkim_result_name(sigs[i].result),
		                 sigs[i].testing ? "(test)" : "");
		if (k < 0 || (size_t)k >= sizeof(line) - w)
			break;
		w += (size_t)k;
	}
	if (w == 0)
		snprintf(line, sizeof(line), "-");
	char sigbuf[1100], reasons[600], problem[200];

	px_log_str(sigbuf, sizeof(sigbuf), line);
	reasons[0] = '\0';
	for (unsigned i = 0, rw = 0; i < n && rw + 1 < sizeof(reasons); i++) {
		int k = snprintf(reasons + rw, sizeof(reasons) - rw, "%s%s",
		                 i ? "," : "",
		                 sigs[i].reason[0] ? sigs[i].reason : "-");
		if (k < 0 || (size_t)k >= sizeof(reasons) - rw)
			break;
		rw += (unsigned)k;
	}
	char rbuf[700];

	px_log_str(rbuf, sizeof(rbuf), reasons[0] ? reasons : NULL);
	px_log_str(problem, sizeof(problem),
	           job != NULL && job->problem[0] ? job->problem
	           : timed_out                    ? "time limit exceeded"
	                                          : NULL);
	px_log_info("%016llx.%u dkim result=%s sigs=%u signatures=%s "
	            "reasons=%s from_domain=%s aligned=%s problem=%s",
	            (unsigned long long)st->s->sid, st->s->txn,
	            n == 0 ? "none"
	            : pass ? "pass"
	                   : flt_dkim_result_name(sigs[0].result),
	            n, sigbuf, rbuf,
	            job != NULL && job->from_domain[0] ? job->from_domain : "-",
	            aligned ? "yes" : "no", problem);
	flt_resume(call);
}

/* flt_dkim_done - on the loop: the verification finished. */
static void
flt_dkim_done(void *arg)
{
	struct flt_dkim_job *job = arg;
	struct flt_dkim_state *st = job->st;

	if (st != NULL) {
		st->job = NULL;
		flt_dkim_report(st, job, false);
	}
	dkim_free(job->dkim);
	free(job);
}

/* flt_dkim_detach - stop waiting for the job in flight. */
static void
flt_dkim_detach(struct flt_dkim_state *st)
{
	if (st->job == NULL)
		return;
	atomic_store(&st->job->abandoned, true);
	st->job->st = NULL;
	st->job = NULL;
}

static void
flt_dkim_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct flt_dkim_state *st = arg;

	/* The job still owns its outputs: report what was known at EOM. */
	flt_dkim_detach(st);
	flt_dkim_report(st, st->pre, true);
}

static void
flt_dkim_handle_free(struct flt_dkim_state *st)
{
	if (st->dkim != NULL)
		dkim_free(st->dkim);
	st->dkim = NULL;
}

/* flt_dkim_bad_sig - note a signature field libopendkim cannot parse:
 * permerror, with d= and s= when they can be read. */
static void
flt_dkim_bad_sig(struct flt_dkim_state *st, const char *v, size_t len)
{
	struct flt_dkim_sig *g;
	static const char *const tags[] = {"d", "s"};

	if (st->nbad == FLT_DKIM_MAX_BAD)
		return;
	g = &st->bad[st->nbad++];
	memset(g, 0, sizeof(*g));
	g->result = FLT_DKIM_PERMERROR;
	snprintf(g->reason, sizeof(g->reason), "malformed signature");
	/* tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
	 * (RFC 6376 3.2), as far as it goes. */
	for (size_t i = 0; i < len;) {
		size_t end = i, t0, t1, v0, v1;

		while (end < len && v[end] != ';')
			end++;
		t0 = i;
		while (t0 < end && strchr(" \t\r\n", v[t0]) != NULL)
			t0++;
		t1 = t0;
		while (t1 < end && v[t1] != '=' &&
		       strchr(" \t\r\n", v[t1]) == NULL)
			t1++;
		v0 = t1;
		while (v0 < end && strchr(" \t\r\n=", v[v0]) != NULL)
			v0++;
		v1 = end;
		while (v1 > v0 && strchr(" \t\r\n", v[v1 - 1]) != NULL)
			v1--;
		for (unsigned k = 0; k < 2; k++) {
			char tmp[256];
			size_t n = v1 - v0 < sizeof(tmp) - 1 ? v1 - v0
			                                     : sizeof(tmp) - 1;

			if (t1 - t0 != 1 || v[t0] != tags[k][0])
				continue;
			memcpy(tmp, v + v0, n);
			tmp[n] = '\0';
			flt_dkim_copy_value(k == 0 ? g->domain : g->selector,
			                    k == 0 ? sizeof(g->domain)
			                           : sizeof(g->selector),
			                    tmp);
		}
		i = end + 1;
	}
}

/*
 * flt_dkim_field - one header field to libopendkim.
 * SECURITY: libopendkim gives up on the whole message (a syntax error)
 * when one DKIM-Signature is not a tag-list, so anyone could hide a
 * message's valid signatures by adding a broken one: such fields are
 * checked first (dkim_sig_syntax) and not given to it, but reported as
 * permerror.
 */
static void
flt_dkim_field(void *ctx, const char *f, size_t len)
{
	struct flt_dkim_state *st = ctx;
	size_t value;

	if (st->fed != DKIM_STAT_OK)
		return;
	if (flt_dkim_hdr_is_sig(f, len, &value) &&
	    dkim_sig_syntax(st->dkim, (u_char *)(uintptr_t)f + value,
	                    len - value) != DKIM_STAT_OK) {
		flt_dkim_bad_sig(st, f + value, len - value);
		return;
	}
	st->fed = dkim_header(st->dkim, (u_char *)(uintptr_t)f, len);
}

/* flt_dkim_feed - more message bytes: the header section is held until
 * its end (dkim_header.c), then the body is hashed as it comes. */
static void
flt_dkim_feed(struct flt_dkim_state *st, const char *buf, size_t len)
{
	const char *body;
	size_t blen;
	bool was_body = st->hdr.done;

	switch (flt_dkim_hdr_feed(&st->hdr, buf, len, flt_dkim_field, st, &body,
	                          &blen)) {
	case -1:
		st->fed = DKIM_STAT_NORESOURCE;
		return;
	case 0:
		return;
	}
	if (!was_body && st->fed == DKIM_STAT_OK)
		st->fed = dkim_eoh(st->dkim);
	if (st->fed == DKIM_STAT_OK && blen > 0)
		st->fed = dkim_body(st->dkim, (u_char *)(uintptr_t)body, blen);
}

static void
flt_dkim_data(struct flt_call *call, const char *buf, size_t len)
{
	struct flt_dkim_state *st = call->state;
	const struct px_config *cfg = call->s->cfg;
	DKIM_STAT rc;

	if (!st->started) {
		st->started = true;
		st->fed = DKIM_STAT_OK;
		st->skip = !cfg->dkim.enabled || (!cfg->dkim.check_trusted &&
		                                  flt_client_trusted(call));
		if (st->skip)
			return;
		pthread_once(&flt_dkim_once, flt_dkim_lib_init);
		if (flt_dkim_lib == NULL) {
			st->skip = true;
			return;
		}
		st->dkim = dkim_verify(
		    flt_dkim_lib, (const unsigned char *)"mxguard", NULL, &rc);
		if (st->dkim == NULL) {
			st->fed = rc;
			return;
		}
	}
	/* Once the header is done and there is no signature, libopendkim
	 * says so (NOSIG); the rest of the message is not hashed. */
	if (st->dkim != NULL && st->fed == DKIM_STAT_OK && len > 0)
		flt_dkim_feed(st, buf, len);
}

static int
flt_dkim_eom(struct flt_call *call)
{
	struct flt_dkim_state *st = call->state;
	const struct flt_session *s = call->s;
	const struct px_config *cfg = s->cfg;
	struct flt_dkim_job *job;

	flt_dkim_detach(st);
	if (!st->started) /* an empty message: the header was never seen */
		flt_dkim_data(call, "", 0);
	if (st->skip)
		return 1;
	st->s = s;
	/* A message that is all header (no blank line). */
	if (st->dkim != NULL && st->fed == DKIM_STAT_OK && !st->hdr.done) {
		flt_dkim_hdr_end(&st->hdr, flt_dkim_field, st);
		if (st->fed == DKIM_STAT_OK)
			st->fed = dkim_eoh(st->dkim);
	}
	if (st->dkim == NULL || st->fed != DKIM_STAT_OK) {
		/* No signature (NOSIG), or a header libopendkim could not
		 * parse: either way nothing verifiable. */
		if (st->fed != DKIM_STAT_NOSIG && st->fed != DKIM_STAT_OK)
			px_log_info("%016llx.%u dkim: %s",
			            (unsigned long long)s->sid, s->txn,
			            dkim_getresultstr(st->fed));
		flt_dkim_handle_free(st);
		st->call = call;
		flt_dkim_report(st, NULL, false);
		return 1;
	}
	job = px_calloc(1, sizeof(*job));
	job->st = st;
	job->dkim = st->dkim;
	st->dkim = NULL;
	job->budget = cfg->dkim.timeout;
	job->max_sigs = cfg->dkim.max_signatures < FLT_DKIM_MAX_SIGS
	                    ? cfg->dkim.max_signatures
	                    : FLT_DKIM_MAX_SIGS;
	clock_gettime(CLOCK_MONOTONIC, &job->start);
	atomic_init(&job->abandoned, false);
	/* The header is parsed: the signature list needs no lookup yet
	 * (DKIM_LIBFLAGS_DELAYSIGPROC), and the worker has not started. */
	{
		DKIM_SIGINFO **sigs = NULL;
		int nsigs = 0;

		free(st->pre);
		st->pre = px_calloc(1, sizeof(*st->pre));
		st->pre->dkim = job->dkim;
		st->pre->max_sigs = job->max_sigs;
		if (dkim_getsiglist(job->dkim, &sigs, &nsigs) == DKIM_STAT_OK)
			flt_dkim_list(st->pre, sigs, nsigs, false);
		st->pre->dkim = NULL;
	}
	st->job = job;
	st->call = call;
	if (st->timer == NULL)
		st->timer = evtimer_new(s->base, flt_dkim_timeout, st);
	struct timeval tv = px_timeval(cfg->dkim.timeout + cfg->dns.timeout);

	evtimer_add(st->timer, &tv);
	px_workers_submit(s->loop, flt_dkim_work, flt_dkim_done, job);
	return 0;
}

static void
flt_dkim_cancel(struct flt_call *call)
{
	struct flt_dkim_state *st = call->state;

	/* The chain stopped waiting: the call must not be touched again. */
	st->call = NULL;
	if (st->timer != NULL)
		evtimer_del(st->timer);
	flt_dkim_detach(st);
}

static void *
flt_dkim_new(const struct flt_session *s)
{
	struct flt_dkim_state *st = px_calloc(1, sizeof(*st));

	st->s = s;
	return st;
}

static void
flt_dkim_reset(void *state)
{
	struct flt_dkim_state *st = state;

	flt_dkim_detach(st);
	flt_dkim_handle_free(st);
	free(st->pre);
	st->pre = NULL;
	flt_dkim_hdr_reset(&st->hdr);
	st->nbad = 0;
	st->started = false;
	st->skip = false;
	st->fed = DKIM_STAT_OK;
}

static void
flt_dkim_free(void *state)
{
	struct flt_dkim_state *st = state;

	if (st == NULL)
		return;
	flt_dkim_reset(st);
	if (st->timer != NULL)
		event_free(st->timer);
	free(st);
}

const struct flt_ops flt_dkim = {
    .name = "dkim",
    .session_new = flt_dkim_new,
    .session_free = flt_dkim_free,
    .reset = flt_dkim_reset,
    .on_stage =
        {
            [FLT_STAGE_EOM] = flt_dkim_eom,
        },
    .on_data = flt_dkim_data,
    .cancel = flt_dkim_cancel,
};

/* flt_dkim_authres - "dkim=RESULT (comment) header.d=D header.s=S
 * header.b=B" for one signature (RFC 8601 2.7.1, RFC 6008). */
size_t
flt_dkim_authres(char *buf, size_t size, const struct flt_dkim_sig *sigs, int n)
{
	size_t w = 0;
	int k;

	if (n < 0)
		return 0;
	if (n == 0) {
		k = snprintf(buf, size, "dkim=none");
		return k > 0 && (size_t)k < size ? (size_t)k : 0;
	}
	for (int i = 0; i < n; i++) {
		const struct flt_dkim_sig *g = &sigs[i];
		char comment[128] = "";

		char reason[64];
		char bval[24];
		size_t r = 0;

		/* Reasons are our or libopendkim's texts; still, nothing in
		 * them may end the comment early. */
		for (const char *p = g->reason; *p && r + 1 < sizeof(reason);
		     p++)
			reason[r++] =
			    (*p == '(' || *p == ')' || *p == '\\') ? ' ' : *p;
		reason[r] = '\0';
		if (reason[0] || g->testing)
			snprintf(comment, sizeof(comment), " (%s%s%s)", reason,
			         reason[0] && g->testing ? ", " : "",
			         g->testing ? "test mode" : "");
		/* header.b is base64: "/" and "=" are tspecials, so it is
		 * a quoted-string then (RFC 8601 2.2 pvalue). */
		snprintf(bval, sizeof(bval),
		         strpbrk(g->b, "/=") != NULL ? "\"%s\"" : "%s", g->b);
		k = snprintf(buf + w, size - w, "%sdkim=%s%s%s%s%s%s%s%s%s%s",
		             i ? ";\r\n\t" : "",
		             flt_dkim_result_name(g->result), comment,
		             g->domain[0] ? " header.d=" : "", g->domain,
		             g->selector[0] ? " header.s=" : "", g->selector,
		             g->alg[0] ? " header.a=" : "", g->alg,
		             g->b[0] ? " header.b=" : "", g->b[0] ? bval : "");
		if (k < 0 || (size_t)k >= size - w)
			return 0;
		w += (size_t)k;
	}
	return w;
}
