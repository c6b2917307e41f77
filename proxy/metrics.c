/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - the counters of metrics.h and their Prometheus exposition
 * (text format 0.0.4) on `metrics.address`, path /metrics.
 *
 * Families (all prefixed mxguard_, units in the name):
 *   connections_current                       gauge
 *   connections_total{listener,reason}        by how the session ended
 *   smtp_replies_total{class}                 2xx..5xx sent to clients
 *   recipients_total{outcome}                 accepted/deferred/rejected
 *   transactions_total{result}                the txn log line's result
 *   messages_relayed_bytes_total              accepted and tagged messages
 *   backend_errors_total{kind}                unreachable/lost/timeout
 *   symbols_total{symbol}                     each symbol once per txn
 *   dnsbl_operator_errors_total{zone}         127.255.255.252-255 answers
 *   dns_queries_total{result}                 answer/nxdomain/...
 *   store_operations_total{result}            ok/error
 *   recipient_lookups_total{result}           recipients_redis: known/
 *                                             unknown/error
 *   unknown_recipient_limit_total             421s of the per-client cap
 *   worker_queue_depth                        gauge
 *   stage_duration_seconds{stage}             histogram, filter chain
 *   eod_decision_seconds                      histogram, end of data
 *   eod_backend_seconds                       histogram, backend's part
 *
 * The same listener serves the status page: `/` (proxy/status.html,
 * embedded at build time), and its data, `/api/stats` and `/api/history`
 * (stats.c).  The failures counted here also feed the page's health
 * panel.
 *
 * The listener is an evhttp on a thread of its own.  With
 * `metrics.password` set, every path needs HTTP Basic authentication with
 * that password (any user name), as Prometheus' basic_auth sends it.
 */
#include "metrics.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "netaddr.h"
#include "stats.h"
#include "workers.h"

#define PX_M_LISTENERS 32
#define PX_M_SYMBOLS   4096

static const char *const px_m_reasons[] = {
    "quit",     "eof",     "timeout", "errors", "smuggling", "limit",
    "shutdown", "backend", "policy",  "error",  "other"};
#define PX_M_NREASONS (sizeof(px_m_reasons) / sizeof(px_m_reasons[0]))

static const char *const px_m_results[] = {
    "accept", "tag", "reject", "tempfail", "abort", "error", "other"};
#define PX_M_NRESULTS (sizeof(px_m_results) / sizeof(px_m_results[0]))

static const char *const px_m_backend[] = {"unreachable", "lost", "timeout"};
static const char *const px_m_dns[] = {"answer",   "nxdomain", "nodata",
                                       "servfail", "timeout",  "error"};
static const char *const px_m_stages[PX_METRICS_STAGES] = {
    "connect", "helo", "mail", "rcpt", "eom"};

/* Seconds; the last bucket is +Inf. */
static const double px_m_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,  0.1,    0.25,  0.5,
                                     1,      2.5,   5,      10,    30};
#define PX_M_NBOUNDS (sizeof(px_m_bounds) / sizeof(px_m_bounds[0]))

struct px_m_hist {
	_Atomic uint64_t buckets[PX_M_NBOUNDS + 1];
	_Atomic uint64_t sum_us;
};

/* Counters by a name only known at run time (symbols, list zones): a
 * small locked table, bounded; past the bound they count as "other". */
struct px_m_named {
	struct px_m_entry {
		char name[64];
		uint64_t count;
	} * e;
	unsigned n;
	uint64_t other;
};

static struct {
	_Atomic int64_t conn_current;
	_Atomic uint64_t conn[PX_M_LISTENERS + 1][PX_M_NREASONS];
	_Atomic uint64_t replies[4];
	_Atomic uint64_t rcpts[3]; /* accepted, deferred, rejected */
	_Atomic uint64_t txns[PX_M_NRESULTS];
	_Atomic uint64_t bytes;
	_Atomic uint64_t backend[3];
	_Atomic uint64_t dns[6];
	_Atomic uint64_t store[2];        /* ok, error */
	_Atomic uint64_t rcpt_lookups[3]; /* known, unknown, error */
	_Atomic uint64_t unknown_limit;
	struct px_m_hist stage[PX_METRICS_STAGES];
	struct px_m_hist eod;
	struct px_m_hist eod_backend;
	pthread_mutex_t named_lock;
	struct px_m_named symbols;
	struct px_m_named dnsbl_errors;
} px_m = {.named_lock = PTHREAD_MUTEX_INITIALIZER};

#define PX_M_ADD(x, n)                                                         \
	atomic_fetch_add_explicit(&(x), (n), memory_order_relaxed)
#define PX_M_GET(x) atomic_load_explicit(&(x), memory_order_relaxed)

static unsigned
px_m_index(const char *const *names, unsigned n, const char *v)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(names[i], v) == 0)
			return i;
	return n - 1; /* "other" */
}

void
px_metrics_connection_open(void)
{
	PX_M_ADD(px_m.conn_current, 1);
}

long long
px_metrics_connections(void)
{
	return (long long)PX_M_GET(px_m.conn_current);
}

void
px_metrics_connection_close(int listener, const char *reason)
{
	unsigned l = listener >= 0 && listener < PX_M_LISTENERS
	                 ? (unsigned)listener
	                 : PX_M_LISTENERS;

	PX_M_ADD(px_m.conn_current, -1);
	PX_M_ADD(px_m.conn[l][px_m_index(px_m_reasons, PX_M_NREASONS, reason)],
	         1);
}

void
px_metrics_reply(char first_digit, bool rcpt)
{
	if (first_digit < '2' || first_digit > '5')
		return;
	PX_M_ADD(px_m.replies[first_digit - '2'], 1);
	if (rcpt && first_digit != '3')
		PX_M_ADD(px_m.rcpts[first_digit == '2'   ? 0
		                    : first_digit == '4' ? 1
		                                         : 2],
		         1);
}

void
px_metrics_txn(const char *result, size_t bytes)
{
	unsigned i = px_m_index(px_m_results, PX_M_NRESULTS, result);

	PX_M_ADD(px_m.txns[i], 1);
	if (i <= 1) /* accept, tag */
		PX_M_ADD(px_m.bytes, bytes);
}

void
px_metrics_backend_error(const char *kind)
{
	for (unsigned i = 0; i < 3; i++) {
		if (strcmp(px_m_backend[i], kind) == 0) {
			PX_M_ADD(px_m.backend[i], 1);
			px_stats_health(PX_STATS_BACKEND, false,
			                px_m_backend[i]);
		}
	}
}

static void
px_m_named_add(struct px_m_named *t, const char *name)
{
	pthread_mutex_lock(&px_m.named_lock);
	for (unsigned i = 0; i < t->n; i++) {
		if (strcmp(t->e[i].name, name) == 0) {
			t->e[i].count++;
			pthread_mutex_unlock(&px_m.named_lock);
			return;
		}
	}
	if (t->n == PX_M_SYMBOLS) {
		t->other++;
	} else {
		t->e = px_realloc(t->e, (t->n + 1) * sizeof(*t->e));
		snprintf(t->e[t->n].name, sizeof(t->e[0].name), "%s", name);
		t->e[t->n++].count = 1;
	}
	pthread_mutex_unlock(&px_m.named_lock);
}

void
px_metrics_symbol(const char *name)
{
	px_m_named_add(&px_m.symbols, name);
}

void
px_metrics_dnsbl_operator_error(const char *zone)
{
	px_m_named_add(&px_m.dnsbl_errors, zone);
}

void
px_metrics_dns(int status)
{
	if (status >= 0 && status < 6) {
		PX_M_ADD(px_m.dns[status], 1);
		/* ANSWER, NXDOMAIN, NODATA: the resolver works. */
		px_stats_health(PX_STATS_DNS, status <= 2, px_m_dns[status]);
	}
}

void
px_metrics_store(bool ok)
{
	PX_M_ADD(px_m.store[ok ? 0 : 1], 1);
	px_stats_health(PX_STATS_STORE, ok, "error");
}

void
px_metrics_rcpt_lookup(unsigned result)
{
	if (result < 3)
		PX_M_ADD(px_m.rcpt_lookups[result], 1);
}

void
px_metrics_unknown_limit(void)
{
	PX_M_ADD(px_m.unknown_limit, 1);
}

static void
px_m_observe(struct px_m_hist *h, double seconds)
{
	unsigned i = 0;

	while (i < PX_M_NBOUNDS && seconds > px_m_bounds[i])
		i++;
	PX_M_ADD(h->buckets[i], 1);
	PX_M_ADD(h->sum_us, (uint64_t)(seconds > 0 ? seconds * 1e6 : 0));
}

void
px_metrics_stage(unsigned stage, double seconds)
{
	if (stage < PX_METRICS_STAGES)
		px_m_observe(&px_m.stage[stage], seconds);
}

void
px_metrics_eod(double seconds)
{
	px_m_observe(&px_m.eod, seconds);
}

void
px_metrics_eod_backend(double seconds)
{
	px_m_observe(&px_m.eod_backend, seconds);
}

/* Exposition. */

static void
px_m_family(struct evbuffer *out, const char *name, const char *type,
            const char *help)
{
	evbuffer_add_printf(out, "# HELP mxguard_%s %s\n# TYPE mxguard_%s %s\n",
	                    name, help, name, type);
}

/* px_m_label - a label value with \ " and newline escaped. */
static void
px_m_label(struct evbuffer *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(out, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

static void
px_m_hist_render(struct evbuffer *out, const char *name, const char *label,
                 const char *value, const struct px_m_hist *h)
{
	uint64_t cum = 0;
	char lbl[64] = "";

	if (label != NULL)
		snprintf(lbl, sizeof(lbl), "%s=\"%s\",", label, value);
	for (unsigned i = 0; i <= PX_M_NBOUNDS; i++) {
		cum += PX_M_GET(h->buckets[i]);
		if (i < PX_M_NBOUNDS)
			evbuffer_add_printf(out,
			                    "mxguard_%s_bucket{%sle=\"%g\"} "
			                    "%llu\n",
			                    name, lbl, px_m_bounds[i],
			                    (unsigned long long)cum);
		else
			evbuffer_add_printf(out,
			                    "mxguard_%s_bucket{%sle=\"+Inf\"} "
			                    "%llu\n",
			                    name, lbl, (unsigned long long)cum);
	}
	if (label != NULL)
		lbl[strlen(lbl) - 1] = '\0';
	evbuffer_add_printf(
	    out, "mxguard_%s_sum%s%s%s %.6f\nmxguard_%s_count%s%s%s %llu\n",
	    name, label ? "{" : "", lbl, label ? "}" : "",
	    (double)PX_M_GET(h->sum_us) / 1e6, name, label ? "{" : "", lbl,
	    label ? "}" : "", (unsigned long long)cum);
}

static void
px_m_simple(struct evbuffer *out, const char *name, const char *label,
            const char *const *values, unsigned n, _Atomic uint64_t *counts)
{
	for (unsigned i = 0; i < n; i++)
		evbuffer_add_printf(out, "mxguard_%s{%s=\"%s\"} %llu\n", name,
		                    label, values[i],
		                    (unsigned long long)PX_M_GET(counts[i]));
}

static void
px_m_named_render(struct evbuffer *out, const char *name, const char *label,
                  const struct px_m_named *t)
{
	pthread_mutex_lock(&px_m.named_lock);
	for (unsigned i = 0; i < t->n; i++) {
		evbuffer_add_printf(out, "mxguard_%s{%s=\"", name, label);
		px_m_label(out, t->e[i].name);
		evbuffer_add_printf(out, "\"} %llu\n",
		                    (unsigned long long)t->e[i].count);
	}
	if (t->other > 0)
		evbuffer_add_printf(out, "mxguard_%s{%s=\"other\"} %llu\n",
		                    name, label, (unsigned long long)t->other);
	pthread_mutex_unlock(&px_m.named_lock);
}

void
px_metrics_render(struct evbuffer *out, const struct px_config *cfg)
{
	static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
	static const char *const outcomes[] = {"accepted", "deferred",
	                                       "rejected"};
	static const char *const store[] = {"ok", "error"};
	static const char *const lookups[] = {"known", "unknown", "error"};

	px_m_family(out, "connections_current", "gauge",
	            "Client connections open now.");
	evbuffer_add_printf(out, "mxguard_connections_current %lld\n",
	                    (long long)PX_M_GET(px_m.conn_current));
	px_m_family(out, "connections_total", "counter",
	            "Client connections, by listener and how they ended.");
	for (unsigned l = 0; l <= PX_M_LISTENERS; l++) {
		const char *name = l < cfg->nlisten ? cfg->listen[l].address
		                   : l == PX_M_LISTENERS ? "other"
		                                         : NULL;

		if (name == NULL)
			continue;
		for (unsigned r = 0; r < PX_M_NREASONS; r++) {
			uint64_t v = PX_M_GET(px_m.conn[l][r]);

			if (v == 0 && l == PX_M_LISTENERS)
				continue;
			evbuffer_add(
			    out, "mxguard_connections_total{listener=\"", 36);
			px_m_label(out, name);
			evbuffer_add_printf(out, "\",reason=\"%s\"} %llu\n",
			                    px_m_reasons[r],
			                    (unsigned long long)v);
		}
	}
	px_m_family(out, "smtp_replies_total", "counter",
	            "Replies sent to clients, by class.");
	px_m_simple(out, "smtp_replies_total", "class", classes, 4,
	            px_m.replies);
	px_m_family(out, "recipients_total", "counter",
	            "RCPT commands, by the reply the client got.");
	px_m_simple(out, "recipients_total", "outcome", outcomes, 3,
	            px_m.rcpts);
	px_m_family(out, "transactions_total", "counter",
	            "Transactions, by result (the txn log line's).");
	px_m_simple(out, "transactions_total", "result", px_m_results,
	            PX_M_NRESULTS, px_m.txns);
	px_m_family(out, "messages_relayed_bytes_total", "counter",
	            "Bytes of the messages accepted or tagged.");
	evbuffer_add_printf(out, "mxguard_messages_relayed_bytes_total %llu\n",
	                    (unsigned long long)PX_M_GET(px_m.bytes));
	px_m_family(out, "backend_errors_total", "counter",
	            "Backend failures, by kind.");
	px_m_simple(out, "backend_errors_total", "kind", px_m_backend, 3,
	            px_m.backend);
	px_m_family(out, "dns_queries_total", "counter",
	            "DNS lookups answered, by result.");
	px_m_simple(out, "dns_queries_total", "result", px_m_dns, 6, px_m.dns);
	px_m_family(out, "store_operations_total", "counter",
	            "Store operations, by result.");
	px_m_simple(out, "store_operations_total", "result", store, 2,
	            px_m.store);
	px_m_family(out, "recipient_lookups_total", "counter",
	            "Recipients looked up in the recipients_redis set, by "
	            "result.");
	px_m_simple(out, "recipient_lookups_total", "result", lookups, 3,
	            px_m.rcpt_lookups);
	px_m_family(out, "unknown_recipient_limit_total", "counter",
	            "Clients refused with 421 for too many unknown recipients "
	            "across sessions.");
	evbuffer_add_printf(out, "mxguard_unknown_recipient_limit_total %llu\n",
	                    (unsigned long long)PX_M_GET(px_m.unknown_limit));
	px_m_family(out, "worker_queue_depth", "gauge",
	            "Jobs waiting for a worker thread.");
	evbuffer_add_printf(out, "mxguard_worker_queue_depth %u\n",
	                    px_workers_queued());
	px_m_family(out, "symbols_total", "counter",
	            "Transactions each symbol was added to.");
	px_m_named_render(out, "symbols_total", "symbol", &px_m.symbols);
	px_m_family(out, "dnsbl_operator_errors_total", "counter",
	            "DNS list answers 127.255.255.252-255 (the list refuses "
	            "us), by zone.");
	px_m_named_render(out, "dnsbl_operator_errors_total", "zone",
	                  &px_m.dnsbl_errors);
	px_m_family(out, "stage_duration_seconds", "histogram",
	            "Time the filters took at each SMTP stage.");
	for (unsigned i = 0; i < PX_METRICS_STAGES; i++)
		px_m_hist_render(out, "stage_duration_seconds", "stage",
		                 px_m_stages[i], &px_m.stage[i]);
	px_m_family(out, "eod_decision_seconds", "histogram",
	            "End of data to the decision on the message.");
	px_m_hist_render(out, "eod_decision_seconds", NULL, NULL, &px_m.eod);
	px_m_family(out, "eod_backend_seconds", "histogram",
	            "The message sent to the backend to its final reply.");
	px_m_hist_render(out, "eod_backend_seconds", NULL, NULL,
	                 &px_m.eod_backend);
}

/* The HTTP side. */

/* proxy/status.html, generated into the build directory by CMake
 * (cmake/embed.cmake). */
extern const unsigned char px_status_html[];
extern const size_t px_status_html_len;

static struct {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	bool running;
	int fd; /* bound, not yet served */
} px_mh = {.fd = -1};

/* Basic auth with any user name: compare the password part. */
static bool
px_m_basic_ok(struct evhttp_request *req, const char *password)
{
	const char *got = evhttp_find_header(
	    evhttp_request_get_input_headers(req), "Authorization");
	unsigned char dec[512];
	int n;
	const char *colon;

	if (got == NULL || strncasecmp(got, "Basic ", 6) != 0 ||
	    strlen(got + 6) > 600)
		return false;
	n = EVP_DecodeBlock(dec, (const unsigned char *)got + 6,
	                    (int)strlen(got + 6));
	if (n <= 0)
		return false;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	while (n > 0 && dec[n - 1] == '\0')
		n--;
	dec[n] = '\0';
	colon = memchr(dec, ':', (size_t)n);
	if (colon == NULL || strlen(colon + 1) != strlen(password))
		return false;
	return CRYPTO_memcmp(colon + 1, password, strlen(password)) == 0;
}

static void
px_m_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out;
	struct evkeyvalq *hdrs;
	struct px_config *cur = px_config_current();
	const char *path;

	(void)arg;
	if (cur->metrics.password != NULL &&
	    !px_m_basic_ok(req, cur->metrics.password)) {
		out = evbuffer_new();
		evbuffer_add_printf(out, "authorization required\n");
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "WWW-Authenticate",
		                  "Basic realm=\"mxguard\"");
		evhttp_send_reply(req, 401, "Unauthorized", out);
		evbuffer_free(out);
		px_config_unref(&cur);
		return;
	}
	path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL)
		path = "";
	out = evbuffer_new();
	hdrs = evhttp_request_get_output_headers(req);
	/* SECURITY: the page and its data show what clients sent; the
	 * browser must take them for what they are and nothing else. */
	evhttp_add_header(hdrs, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(hdrs, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "Method Not Allowed");
	} else if (strcmp(path, "/metrics") == 0) {
		px_metrics_render(out, cur);
		evhttp_add_header(hdrs, "Content-Type",
		                  "text/plain; version=0.0.4");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(path, "/") == 0) {
		evbuffer_add(out, px_status_html, px_status_html_len);
		evhttp_add_header(hdrs, "Content-Type",
		                  "text/html; charset=utf-8");
		/* Inline script and style only, data from this origin only:
		 * nothing loads from elsewhere (the page works air-gapped)
		 * and injected markup could run nothing. */
		evhttp_add_header(
		    hdrs, "Content-Security-Policy",
		    "default-src 'none'; script-src 'unsafe-inline'; "
		    "style-src 'unsafe-inline'; connect-src 'self'; "
		    "img-src data:; base-uri 'none'; form-action 'none'; "
		    "frame-ancestors 'none'");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(path, "/api/stats") == 0) {
		px_stats_render_stats(out, cur);
		evhttp_add_header(hdrs, "Content-Type",
		                  "application/json; charset=utf-8");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(path, "/api/history") == 0) {
		px_stats_render_history(out);
		evhttp_add_header(hdrs, "Content-Type",
		                  "application/json; charset=utf-8");
		evhttp_send_reply(req, 200, "OK", out);
	} else {
		evhttp_send_error(req, 404, "Not Found");
	}
	evbuffer_free(out);
	px_config_unref(&cur);
}

static void *
px_m_main(void *arg)
{
	(void)arg;
	event_base_dispatch(px_mh.base);
	return NULL;
}

int
px_metrics_bind(const struct px_config *cfg, const char **error_r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *err;
	int fd, one = 1;

	if (cfg->metrics.address == NULL)
		return 0;
	if (px_addr_parse(cfg->metrics.address, false, &ss, &len, &err) < 0) {
		*error_r = "metrics.address must be host:port";
		return -1;
	}
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		if (fd >= 0)
			close(fd);
		*error_r = "metrics: cannot listen on metrics.address";
		return -1;
	}
	px_mh.fd = fd;
	px_stats_enable(true);
	return 0;
}

int
px_metrics_start(const char **error_r)
{
	if (px_mh.fd < 0)
		return 0;
	px_mh.base = event_base_new();
	px_mh.http = evhttp_new(px_mh.base);
	if (px_mh.http == NULL ||
	    evhttp_accept_socket(px_mh.http, px_mh.fd) < 0) {
		*error_r = "metrics: cannot serve metrics.address";
		return -1;
	}
	px_mh.fd = -1; /* evhttp's now */
	evhttp_set_allowed_methods(px_mh.http, EVHTTP_REQ_GET);
	evhttp_set_timeout(px_mh.http, 10);
	evhttp_set_gencb(px_mh.http, px_m_request, NULL);
	if (pthread_create(&px_mh.thread, NULL, px_m_main, NULL) != 0) {
		*error_r = "metrics: cannot start its thread";
		return -1;
	}
	px_mh.running = true;
	return 0;
}

void
px_metrics_stop(void)
{
	/* After the loops stopped: nothing counts any more. */
	pthread_mutex_lock(&px_m.named_lock);
	free(px_m.symbols.e);
	free(px_m.dnsbl_errors.e);
	memset(&px_m.symbols, 0, sizeof(px_m.symbols));
	memset(&px_m.dnsbl_errors, 0, sizeof(px_m.dnsbl_errors));
	pthread_mutex_unlock(&px_m.named_lock);
	if (px_mh.fd >= 0)
		close(px_mh.fd);
	px_mh.fd = -1;
	if (!px_mh.running) {
		if (px_mh.http != NULL)
			evhttp_free(px_mh.http);
		if (px_mh.base != NULL)
			event_base_free(px_mh.base);
		px_mh.http = NULL;
		px_mh.base = NULL;
		return;
	}
	event_base_loopexit(px_mh.base, NULL);
	pthread_join(px_mh.thread, NULL);
	evhttp_free(px_mh.http);
	event_base_free(px_mh.base);
	px_mh.running = false;
}
