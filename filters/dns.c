/* SPDX-License-Identifier: MIT */
/*
 * dns.c - the resolver, on libunbound.
 *
 * flt_dns_init(), flt_dns_shutdown(): one libunbound context for the
 * process (so one cache), in threaded asynchronous mode, and one "dns"
 * thread with its own event base that waits on ub_fd() and runs
 * ub_process().
 * flt_dns_query(), flt_dns_cancel(): asynchronous lookups from the loops.
 * flt_dns_resolve(): blocking lookups for the worker pool.
 * flt_dns_reverse_name(): DNSBL / PTR query names.
 *
 * How an answer travels: a loop thread calls ub_resolve_async(); libunbound
 * resolves in its own thread; the dns thread's ub_process() runs our
 * callback, which only posts the result to the querying loop
 * (px_loop_post); there the query's callback runs.  Every field of a query
 * is touched on its loop's thread only, except `result`, handed over once
 * through the post.  The per-query timeout is a timer on the loop: when it
 * fires first, the caller hears TIMEOUT, ub_cancel() is tried, and a late
 * answer is dropped.  A query is freed when both sides are done with it.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"

struct flt_dns_query {
	struct px_loop *loop;
	flt_dns_cb *cb;
	void *arg;
	int rrtype;
	int async_id;
	bool answered;     /* cb has run (or will not: cancelled) */
	bool unbound_done; /* libunbound will not call back any more */
	struct event *timer;
	/* Set by the dns thread, read on the loop after the post. */
	int err;
	struct ub_result *result;
};

static struct ub_ctx *flt_dns_ctx;
static pthread_t flt_dns_thread;
static struct event_base *flt_dns_base;
static struct event *flt_dns_ev;
static double flt_dns_sync_timeout = 5.0; /* dns.timeout */

static void
flt_dns_readable(evutil_socket_t fd, short what, void *arg)
{
	/* Runs the callbacks of every answer that arrived. */
	ub_process(flt_dns_ctx);
}

static void *
flt_dns_main(void *arg)
{
	event_base_loop(flt_dns_base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int
flt_dns_init(const struct px_config *cfg, const char **error_r)
{
	int rc = 0;

	if (cfg->dns.timeout > 0)
		flt_dns_sync_timeout = cfg->dns.timeout;
	flt_dns_ctx = ub_ctx_create();
	if (flt_dns_ctx == NULL) {
		*error_r = "cannot create the DNS resolver";
		return -1;
	}
	/* Forwarders on 127.0.0.1 (a local unbound, or a test server) are
	 * refused by default. */
	ub_ctx_set_option(flt_dns_ctx, "do-not-query-localhost:", "no");
	/* libunbound answers names under "test." (RFC 6761) itself with
	 * NXDOMAIN; let them go to the servers, where a test zone lives. */
	ub_ctx_set_option(flt_dns_ctx, "local-zone:", "test. transparent");
	/* The queries of a busy MX: room in the caches (defaults are 4m). */
	ub_ctx_set_option(flt_dns_ctx, "msg-cache-size:", "16m");
	ub_ctx_set_option(flt_dns_ctx, "rrset-cache-size:", "32m");
	for (size_t i = 0; i < cfg->dns.nservers && rc == 0; i++)
		rc = ub_ctx_set_fwd(flt_dns_ctx, cfg->dns.servers[i]);
	if (cfg->dns.nservers > 0) {
		/* Forwarders (a site's own DNS) may serve the reverse zones of
		 * private networks (RFC 6303), where the clients of a
		 * submission port or relay_networks live. */
		ub_ctx_set_option(flt_dns_ctx, "unblock-lan-zones:", "yes");
		ub_ctx_set_option(flt_dns_ctx, "insecure-lan-zones:", "yes");
	}
	if (rc == 0 && cfg->dns.nservers == 0 && !cfg->dns.recursion &&
	    ub_ctx_resolvconf(flt_dns_ctx, NULL) != 0)
		/* A machine without resolv.conf can still resolve. */
		px_log_warn("dns: cannot read /etc/resolv.conf; resolving from "
		            "the root servers");
	if (rc == 0)
		rc = ub_ctx_async(flt_dns_ctx, 1);
	if (rc != 0) {
		*error_r = ub_strerror(rc);
		ub_ctx_delete(flt_dns_ctx);
		flt_dns_ctx = NULL;
		return -1;
	}
	flt_dns_base = event_base_new();
	flt_dns_ev = event_new(flt_dns_base, ub_fd(flt_dns_ctx),
	                       EV_READ | EV_PERSIST, flt_dns_readable, NULL);
	event_add(flt_dns_ev, NULL);
	if (pthread_create(&flt_dns_thread, NULL, flt_dns_main, NULL) != 0) {
		*error_r = "cannot start the DNS thread";
		return -1;
	}
	return 0;
}

void
flt_dns_shutdown(void)
{
	if (flt_dns_ctx == NULL)
		return;
	event_base_loopexit(flt_dns_base, NULL);
	pthread_join(flt_dns_thread, NULL);
	event_free(flt_dns_ev);
	event_base_free(flt_dns_base);
	ub_ctx_delete(flt_dns_ctx);
	flt_dns_ctx = NULL;
}

static void
flt_dns_maybe_free(struct flt_dns_query *q)
{
	if (!q->answered || !q->unbound_done)
		return;
	if (q->timer != NULL)
		event_free(q->timer);
	if (q->result != NULL)
		ub_resolve_free(q->result);
	free(q);
}

/* flt_dns_fill - a libunbound result as ours. */
static void
flt_dns_fill(int err, struct ub_result *r, int rrtype,
             struct flt_dns_result *res)
{
	memset(res, 0, sizeof(*res));
	res->rrtype = rrtype;
	if (err != 0 || r == NULL) {
		res->status = FLT_DNS_ERROR;
		return;
	}
	res->ttl = (unsigned)(r->ttl > 0 ? r->ttl : 0);
	if (r->bogus || r->rcode == 2 /* SERVFAIL */) {
		res->status = FLT_DNS_SERVFAIL;
	} else if (r->nxdomain || r->rcode == 3) {
		res->status = FLT_DNS_NXDOMAIN;
	} else if (r->rcode != 0) {
		res->status = FLT_DNS_SERVFAIL;
	} else if (!r->havedata) {
		res->status = FLT_DNS_NODATA;
	} else {
		res->status = FLT_DNS_ANSWER;
		while (r->data[res->n] != NULL)
			res->n++;
		res->data = (const unsigned char *const *)r->data;
		res->len = r->len;
	}
}

/* flt_dns_deliver - on the loop: the answer, unless too late. */
static void
flt_dns_deliver(void *arg)
{
	struct flt_dns_query *q = arg;
	struct flt_dns_result res;

	q->unbound_done = true;
	if (!q->answered) {
		q->answered = true;
		evtimer_del(q->timer);
		flt_dns_fill(q->err, q->result, q->rrtype, &res);
		px_metrics_dns(res.status);
		q->cb(q->arg, &res);
	}
	flt_dns_maybe_free(q);
}

/* flt_dns_answer - on the dns thread (inside ub_process). */
static void
flt_dns_answer(void *mydata, int err, struct ub_result *result)
{
	struct flt_dns_query *q = mydata;

	q->err = err;
	q->result = result;
	px_loop_post(q->loop, flt_dns_deliver, q);
}

/* flt_dns_give_up - the caller stops waiting; libunbound may still
 * answer, and then the answer is dropped. */
static void
flt_dns_give_up(struct flt_dns_query *q)
{
	q->answered = true;
	evtimer_del(q->timer);
	/* If the cancel fails the answer is already on its way: the post
	 * will free the query. */
	if (!q->unbound_done && ub_cancel(flt_dns_ctx, q->async_id) == 0)
		q->unbound_done = true;
	flt_dns_maybe_free(q);
}

static void
flt_dns_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct flt_dns_query *q = arg;
	struct flt_dns_result res;
	flt_dns_cb *cb = q->cb;
	void *cbarg = q->arg;

	memset(&res, 0, sizeof(res));
	res.status = FLT_DNS_TIMEOUT;
	res.rrtype = q->rrtype;
	flt_dns_give_up(q);
	px_metrics_dns(res.status);
	cb(cbarg, &res);
}

struct flt_dns_query *
flt_dns_query(struct px_loop *loop, const char *name, int rrtype,
              double timeout, flt_dns_cb *cb, void *arg)
{
	struct flt_dns_query *q = px_calloc(1, sizeof(*q));
	struct timeval tv = px_timeval(timeout);
	int rc;

	q->loop = loop;
	q->cb = cb;
	q->arg = arg;
	q->rrtype = rrtype;
	q->timer = evtimer_new(px_loop_base(loop), flt_dns_timeout, q);
	evtimer_add(q->timer, &tv);
	rc = ub_resolve_async(flt_dns_ctx, name, rrtype, 1 /* IN */, q,
	                      flt_dns_answer, &q->async_id);
	if (rc != 0) {
		/* Answer ERROR from the loop, not from inside this call. */
		q->err = rc;
		px_loop_post(loop, flt_dns_deliver, q);
	}
	return q;
}

void
flt_dns_cancel(struct flt_dns_query *q)
{
	if (q == NULL || q->answered)
		return;
	flt_dns_give_up(q);
}

/*
 * A blocking lookup of a worker thread, bounded by dns.timeout: libunbound
 * answers on the dns thread (flt_dns_sync_answer), which wakes the worker.
 * A worker that stops waiting cancels the query; if the answer is already
 * on its way, the dns thread frees it (`abandoned`).
 */
struct flt_dns_sync {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	bool abandoned;
	int err;
	struct ub_result *result;
};

static void
flt_dns_sync_free(struct flt_dns_sync *q)
{
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}

static void
flt_dns_sync_answer(void *mydata, int err, struct ub_result *result)
{
	struct flt_dns_sync *q = mydata;

	pthread_mutex_lock(&q->mu);
	if (q->abandoned) {
		pthread_mutex_unlock(&q->mu);
		if (result != NULL)
			ub_resolve_free(result);
		flt_dns_sync_free(q);
		return;
	}
	q->err = err;
	q->result = result;
	q->done = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void
flt_dns_resolve(const char *name, int rrtype, struct flt_dns_result *res)
{
	struct flt_dns_sync *q = px_calloc(1, sizeof(*q));
	pthread_condattr_t ca;
	struct timespec until;
	int id, rc = 0;

	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)flt_dns_sync_timeout;
	until.tv_nsec += (long)((flt_dns_sync_timeout -
	                         (double)(time_t)flt_dns_sync_timeout) *
	                        1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (ub_resolve_async(flt_dns_ctx, name, rrtype, 1 /* IN */, q,
	                     flt_dns_sync_answer, &id) != 0) {
		flt_dns_sync_free(q);
		flt_dns_fill(-1, NULL, rrtype, res);
		return;
	}
	pthread_mutex_lock(&q->mu);
	while (!q->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&q->cv, &q->mu, &until);
	if (!q->done) {
		/* Not under q->mu: the dns thread may be waiting for it
		 * inside libunbound's delivery. */
		pthread_mutex_unlock(&q->mu);
		if (ub_cancel(flt_dns_ctx, id) == 0) {
			flt_dns_sync_free(q);
			memset(res, 0, sizeof(*res));
			res->status = FLT_DNS_TIMEOUT;
			res->rrtype = rrtype;
			return;
		}
		pthread_mutex_lock(&q->mu);
		if (!q->done) {
			q->abandoned = true;
			pthread_mutex_unlock(&q->mu);
			memset(res, 0, sizeof(*res));
			res->status = FLT_DNS_TIMEOUT;
			res->rrtype = rrtype;
			return;
		}
	}
	pthread_mutex_unlock(&q->mu);
	flt_dns_fill(q->err, q->result, rrtype, res);
	/* The data points into the result: flt_dns_result_free releases it. */
	res->priv = q->result;
	flt_dns_sync_free(q);
}

void
flt_dns_result_free(struct flt_dns_result *res)
{
	if (res->priv != NULL)
		ub_resolve_free(res->priv);
	memset(res, 0, sizeof(*res));
}

int
flt_dns_reverse_name(const char *ip, const char *zone, char *buf, size_t size)
{
	unsigned char a[16];
	size_t n = 0;
	int w;

	if (inet_pton(AF_INET, ip, a) == 1) {
		w = snprintf(buf, size, "%u.%u.%u.%u.%s", a[3], a[2], a[1],
		             a[0], zone ? zone : "in-addr.arpa");
		return w > 0 && (size_t)w < size ? 0 : -1;
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return -1;
	static const char hex[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--) {
		if (n + 4 >= size)
			return -1;
		buf[n++] = hex[a[i] & 15];
		buf[n++] = '.';
		buf[n++] = hex[a[i] >> 4];
		buf[n++] = '.';
	}
	w = snprintf(buf + n, size - n, "%s", zone ? zone : "ip6.arpa");
	return w > 0 && (size_t)w < size - n ? 0 : -1;
}
