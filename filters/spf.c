/* SPDX-License-Identifier: MIT */
/*
 * spf.c - the SPF filter (RFC 7208): started at MAIL on the worker pool
 * (spf_eval.c does the evaluation), awaited before MAIL is answered, so
 * the result is final for RCPT-stage filters (greylisting) and for the
 * reply.
 *
 * flt_spf: the filter.  The identity is MAIL FROM, or the HELO name for a
 * null sender (RFC 7208 2.4).  Clients that authenticated or are in
 * relay_networks are not checked unless spf.check_trusted; loopback
 * clients never (libspf2 passes them without asking).  Results become a
 * symbol each, the chain's SPF result (flt_spf_set), and with
 * spf.reject_fail a "550 5.7.23" for fail (RFC 7372 3.2), with
 * spf.tempfail_temperror a "451 4.7.24" for temperror.
 * flt_spf_received_spf(), flt_spf_authres(): the Received-SPF header
 * (RFC 7208 9.1) and the Authentication-Results method (RFC 8601 2.7.2).
 *
 * Lifetimes: the job (evaluation inputs and outputs) belongs to the worker
 * pool until its done callback runs on our loop; a session that ends
 * first only detaches it (job->st = NULL, abandoned) and the callback
 * frees it.  The spf.timeout timer bounds the wait: then the result is
 * temperror and the late job is dropped the same way.
 */
#include "filter.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "loop.h"
#include "netaddr.h"
#include "spf_eval.h"
#include "spf_report.h"
#include "txnlog.h"
#include "workers.h"

struct flt_spf_state;

struct flt_spf_job {
	struct flt_spf_state *st; /* NULL once the session let go */
	struct flt_spf_eval ev;
};

struct flt_spf_state {
	const struct flt_session *s;
	struct flt_call *call; /* the MAIL stage waiting for us, or NULL */
	struct flt_spf_job *job;
	struct event *timer;
};

/* Default scores, rspamd's R_SPF_* where it has one. */
static const struct {
	const char *symbol;
	double score;
} flt_spf_symbols[] = {
    [FLT_SPF_NONE] = {"SPF_NONE", 0.0},
    [FLT_SPF_NEUTRAL] = {"SPF_NEUTRAL", 0.0},
    [FLT_SPF_PASS] = {"SPF_PASS", -0.2},
    [FLT_SPF_FAIL] = {"SPF_FAIL", 1.0},
    [FLT_SPF_SOFTFAIL] = {"SPF_SOFTFAIL", 0.5},
    [FLT_SPF_TEMPERROR] = {"SPF_TEMPERROR", 0.0},
    [FLT_SPF_PERMERROR] = {"SPF_PERMERROR", 0.0},
};

static void
flt_spf_work(void *arg)
{
	struct flt_spf_job *job = arg;

	flt_spf_evaluate(&job->ev);
}

/* flt_spf_report - the result, to the waiting MAIL stage. */
static void
flt_spf_report(struct flt_spf_state *st, const struct flt_spf_eval *ev)
{
	struct flt_call *call = st->call;
	const struct px_config *cfg = st->s->cfg;

	st->call = NULL;
	if (st->timer != NULL)
		evtimer_del(st->timer);
	if (call == NULL)
		return;
	flt_spf_set(call, ev->result, ev->domain);
	if (ev->result != FLT_SPF_NOT_CHECKED)
		flt_symbol_add(call, flt_spf_symbols[ev->result].symbol,
		               flt_spf_symbols[ev->result].score);
	char dom[600], problem[300];

	px_log_str(dom, sizeof(dom), ev->domain[0] ? ev->domain : NULL);
	px_log_str(problem, sizeof(problem),
	           ev->problem[0] ? ev->problem : NULL);
	px_log_info("%016llx.%u spf result=%s identity=%s domain=%s "
	            "lookups=%u voids=%u problem=%s",
	            (unsigned long long)st->s->sid, st->s->txn,
	            flt_spf_result_name(ev->result),
	            ev->helo_identity ? "helo" : "mailfrom", dom, ev->lookups,
	            ev->voids, problem);
	if (ev->result == FLT_SPF_FAIL && cfg->spf.reject_fail)
		flt_verdict_set(call, FLT_REJECT, 550, "5.7.23", "spf fail",
		                "SPF validation failed for %s%s%s", ev->domain,
		                ev->explanation[0] ? ": " : "",
		                ev->explanation);
	else if (ev->result == FLT_SPF_TEMPERROR && cfg->spf.tempfail_temperror)
		flt_verdict_set(
		    call, FLT_TEMPFAIL, 451, "4.7.24", "spf temperror",
		    "SPF validation error for %s, try again later", ev->domain);
	flt_resume(call);
}

/* flt_spf_done - on the loop: the evaluation finished. */
static void
flt_spf_done(void *arg)
{
	struct flt_spf_job *job = arg;
	struct flt_spf_state *st = job->st;

	if (st == NULL) {
		free(job);
		return;
	}
	st->job = NULL;
	flt_spf_report(st, &job->ev);
	free(job);
}

/* flt_spf_detach - stop waiting for the job in flight. */
static void
flt_spf_detach(struct flt_spf_state *st)
{
	if (st->job == NULL)
		return;
	atomic_store(&st->job->ev.abandoned, true);
	st->job->st = NULL;
	st->job = NULL;
}

static void
flt_spf_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct flt_spf_state *st = arg;
	const struct flt_session *s = st->s;
	const char *at = s->mail_from ? strrchr(s->mail_from, '@') : NULL;
	struct flt_spf_eval ev;

	/* The job may still be writing its own copy: the identity again,
	 * from the session (RFC 7208 2.4). */
	memset(&ev, 0, sizeof(ev));
	ev.helo_identity = at == NULL || at[1] == '\0';
	snprintf(ev.domain, sizeof(ev.domain), "%s",
	         !ev.helo_identity ? at + 1
	         : s->helo         ? s->helo
	                           : "");
	flt_spf_detach(st);
	ev.result = FLT_SPF_TEMPERROR;
	snprintf(ev.problem, sizeof(ev.problem), "time limit exceeded");
	flt_spf_report(st, &ev);
}

static int
flt_spf_mail(struct flt_call *call)
{
	struct flt_spf_state *st = call->state;
	const struct flt_session *s = call->s;
	const struct px_config *cfg = s->cfg;
	struct flt_spf_job *job;
	unsigned char a[16];
	int family;

	flt_spf_detach(st);
	if (!cfg->spf.enabled || s->mail_from == NULL)
		return 1;
	if (!cfg->spf.check_trusted && flt_client_trusted(call))
		return 1;
	if (inet_pton(AF_INET, s->client_ip, a) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, s->client_ip, a) == 1) {
		family = AF_INET6;
		/* An IPv4-mapped client is an IPv4 client (RFC 7208 5). */
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a)) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else {
		return 1;
	}
	if ((family == AF_INET && a[0] == 127) ||
	    (family == AF_INET6 && IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a)))
		return 1;
	job = px_calloc(1, sizeof(*job));
	job->st = st;
	job->ev.family = family;
	memcpy(job->ev.addr, a, sizeof(a));
	snprintf(job->ev.helo, sizeof(job->ev.helo), "%s",
	         s->helo ? s->helo : "");
	snprintf(job->ev.sender, sizeof(job->ev.sender), "%s", s->mail_from);
	snprintf(job->ev.receiver, sizeof(job->ev.receiver), "%s",
	         cfg->hostname);
	job->ev.budget = cfg->spf.timeout;
	atomic_init(&job->ev.abandoned, false);
	st->s = s;
	st->job = job;
	st->call = call;
	if (st->timer == NULL)
		st->timer = evtimer_new(s->base, flt_spf_timeout, st);
	struct timeval tv = px_timeval(cfg->spf.timeout + cfg->dns.timeout);

	evtimer_add(st->timer, &tv);
	px_workers_submit(s->loop, flt_spf_work, flt_spf_done, job);
	return 0;
}

static void
flt_spf_cancel(struct flt_call *call)
{
	struct flt_spf_state *st = call->state;

	/* The chain stopped waiting (timeouts.filter, or the session is
	 * ending): the call must not be touched again. */
	st->call = NULL;
	if (st->timer != NULL)
		evtimer_del(st->timer);
	flt_spf_detach(st);
}

static void *
flt_spf_new(const struct flt_session *s)
{
	struct flt_spf_state *st = px_calloc(1, sizeof(*st));

	st->s = s;
	return st;
}

static void
flt_spf_free(void *state)
{
	struct flt_spf_state *st = state;

	if (st == NULL)
		return;
	flt_spf_detach(st);
	if (st->timer != NULL)
		event_free(st->timer);
	free(st);
}

const struct flt_ops flt_spf = {
    .name = "spf",
    .session_new = flt_spf_new,
    .session_free = flt_spf_free,
    .on_stage =
        {
            [FLT_STAGE_MAIL] = flt_spf_mail,
        },
    .cancel = flt_spf_cancel,
};

/* flt_spf_safe - v may stand unquoted in a header: RFC 5322 atext, ".",
 * "@", and nothing else. */
static bool
flt_spf_safe(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		      (*v >= '0' && *v <= '9') ||
		      strchr("!#$%&'*+-/=?^_`{|}~.@", *v) != NULL))
			return false;
	return true;
}

size_t
flt_spf_received_spf(char *buf, size_t size, enum flt_spf result,
                     const char *domain, const char *hostname,
                     const char *client_ip, const char *sender,
                     const char *helo)
{
	char comment[600], quoted[600];
	const char *d = flt_spf_safe(domain) ? domain : "unknown";
	size_t q = 0;
	int n;

	switch (result) {
	case FLT_SPF_PASS:
		snprintf(comment, sizeof(comment),
		         "domain of %s designates %s as permitted sender", d,
		         client_ip);
		break;
	case FLT_SPF_FAIL:
		snprintf(comment, sizeof(comment),
		         "domain of %s does not designate %s as permitted "
		         "sender",
		         d, client_ip);
		break;
	case FLT_SPF_SOFTFAIL:
		snprintf(comment, sizeof(comment),
		         "domain of transitioning %s does not designate %s as "
		         "permitted sender",
		         d, client_ip);
		break;
	case FLT_SPF_NEUTRAL:
		snprintf(comment, sizeof(comment),
		         "%s is neither permitted nor denied by domain of %s",
		         client_ip, d);
		break;
	case FLT_SPF_TEMPERROR:
		snprintf(comment, sizeof(comment),
		         "error in processing during lookup of %s", d);
		break;
	case FLT_SPF_PERMERROR:
		snprintf(comment, sizeof(comment),
		         "domain of %s uses a malformed SPF record", d);
		break;
	default:
		snprintf(comment, sizeof(comment),
		         "domain of %s does not designate permitted sender "
		         "hosts",
		         d);
		break;
	}
	/* envelope-from as a quoted-string: the local part is the
	 * client's. */
	for (const char *p = sender; *p && q + 3 < sizeof(quoted); p++) {
		if (*p < 0x20 || *p > 0x7e)
			continue;
		if (*p == '"' || *p == '\\')
			quoted[q++] = '\\';
		quoted[q++] = *p;
	}
	quoted[q] = '\0';
	n = snprintf(buf, size,
	             "Received-SPF: %s (%s: %s)\r\n\treceiver=%s; "
	             "client-ip=%s; envelope-from=\"%s\";%s%s%s\r\n\t"
	             "identity=%s;\r\n",
	             flt_spf_result_name(result), hostname, comment, hostname,
	             client_ip, quoted, flt_spf_safe(helo) ? " helo=" : "",
	             flt_spf_safe(helo) ? helo : "",
	             flt_spf_safe(helo) ? ";" : "",
	             sender[0] ? "mailfrom" : "helo");
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

size_t
flt_spf_authres(char *buf, size_t size, enum flt_spf result, const char *domain,
                const char *sender, const char *helo)
{
	int n;

	if (sender[0] != '\0') {
		/* smtp.mailfrom: the address if it is a plain dot-atom,
		 * else its domain (RFC 8601 2.7.2, pvalue). */
		const char *v = flt_spf_safe(sender) ? sender : domain;

		if (!flt_spf_safe(v))
			n = snprintf(buf, size, "spf=%s",
			             flt_spf_result_name(result));
		else
			n = snprintf(buf, size, "spf=%s smtp.mailfrom=%s",
			             flt_spf_result_name(result), v);
	} else if (flt_spf_safe(helo)) {
		n = snprintf(buf, size, "spf=%s smtp.helo=%s",
		             flt_spf_result_name(result), helo);
	} else {
		n = snprintf(buf, size, "spf=%s", flt_spf_result_name(result));
	}
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}
