/* SPDX-License-Identifier: MIT */
/*
 * stats.c - the status page's data (stats.h), kept in memory.
 *
 * px_stats_txn(): one finished transaction into the ring of the last
 * PX_STATS_RECENT, the per-minute verdict counts, the totals, the symbol
 * table, and, when it was rejected, the client network (/24 or /64) and
 * sender domain tables.
 * px_stats_health(): the last success and failure of backend, DNS, store.
 * px_stats_render_stats(), px_stats_render_history(): the JSON of
 * /api/stats and /api/history.
 *
 * One mutex guards everything: writers hold it for a copy and a few table
 * scans, the metrics thread for one rendering.  Memory is fixed: the
 * symbol, network and domain tables hold PX_STATS_TOP keys each and, when
 * full, make room with the Space-Saving algorithm (Metwally, Agrawal, El
 * Abbadi 2005): the least counted key is replaced and its count inherited,
 * so a flood of distinct names from clients cannot grow memory and every
 * frequent key still surfaces (counts are exact while the table has room).
 *
 * Nothing is recorded unless px_stats_enable() was called (a metrics
 * listener is configured): without one the data has no reader.
 *
 * Time is st_now_ms() (the store's clock), so a test with debug_clock can
 * move the one-hour window.  SECURITY: every string here came from a
 * client or a backend; it leaves only through px_json_escape().
 */
#include "stats.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/buffer.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "json.h"
#include "metrics.h"
#include "store.h"

#define PX_STATS_TOP  256 /* keys kept per table */
#define PX_STATS_SHOW 10  /* keys shown per table */

static const char *const px_stats_results[] = {
    "accept", "tag", "reject", "tempfail", "abort", "error", "other"};
#define PX_STATS_NRESULTS                                                      \
	(sizeof(px_stats_results) / sizeof(px_stats_results[0]))

static const char *const px_stats_parts[] = {"backend", "dns", "store"};

struct px_stats_recent {
	int64_t ms;
	uint64_t sid;
	unsigned n;
	unsigned nrcpt;
	unsigned result;
	double score;
	bool has_from;
	char client[48];
	char from[320];
	char symbols[512];
	char reply[320];
	char backend[320];
};

struct px_stats_minute {
	int64_t minute; /* st_now_ms() / 60000 */
	uint64_t n[PX_STATS_NRESULTS];
};

struct px_stats_top {
	struct px_stats_key {
		char key[128];
		uint64_t count;
	} e[PX_STATS_TOP];
	unsigned n;
};

struct px_stats_health {
	uint64_t ok, errors;
	int64_t last_ok_ms, last_error_ms; /* 0: never */
	const char *last_error;            /* static */
	bool failing;                      /* the last one failed */
};

static struct {
	pthread_mutex_t lock;
	int64_t started_ms;
	struct px_stats_recent recent[PX_STATS_RECENT];
	unsigned nrecent, next; /* next: the slot written next */
	struct px_stats_minute minutes[PX_STATS_MINUTES];
	uint64_t totals[PX_STATS_NRESULTS];
	struct px_stats_top symbols, networks, domains;
	struct px_stats_health parts[3];
} px_st = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Without a metrics listener nobody can read the data: keep none. */
static atomic_bool px_stats_on;

void
px_stats_enable(bool on)
{
	atomic_store(&px_stats_on, on);
}

/* px_stats_start - the start time, on first use (under the lock). */
static void
px_stats_start(void)
{
	if (px_st.started_ms == 0)
		px_st.started_ms = st_now_ms();
}

/* px_stats_top_add - count key once (Space-Saving when full). */
static void
px_stats_top_add(struct px_stats_top *t, const char *key)
{
	unsigned min = 0;

	for (unsigned i = 0; i < t->n; i++) {
		if (strcmp(t->e[i].key, key) == 0) {
			t->e[i].count++;
			return;
		}
		if (t->e[i].count < t->e[min].count)
			min = i;
	}
	if (t->n < PX_STATS_TOP) {
		snprintf(t->e[t->n].key, sizeof(t->e[0].key), "%s", key);
		t->e[t->n++].count = 1;
		return;
	}
	snprintf(t->e[min].key, sizeof(t->e[0].key), "%s", key);
	t->e[min].count++;
}

/*
 * px_stats_unlog - a log value (txnlog.h) back to its text: the quotes
 * dropped, \xHH decoded; "-", "" and NULL are none (false).
 */
static bool
px_stats_unlog(char *buf, size_t size, const char *v)
{
	size_t len, n = 0;

	buf[0] = '\0';
	if (v == NULL || v[0] == '\0' || strcmp(v, "-") == 0)
		return false;
	len = strlen(v);
	if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
		v++;
		len -= 2;
	}
	for (size_t i = 0; i < len && n + 1 < size; i++) {
		if (v[i] == '\\' && i + 3 < len && v[i + 1] == 'x' &&
		    isxdigit((unsigned char)v[i + 2]) &&
		    isxdigit((unsigned char)v[i + 3])) {
			char hex[3] = {v[i + 2], v[i + 3], '\0'};

			buf[n++] = (char)strtoul(hex, NULL, 16);
			i += 3;
			continue;
		}
		buf[n++] = v[i];
	}
	buf[n] = '\0';
	return true;
}

/* px_stats_network - ip's /24 (IPv4) or /64 (IPv6) as text; false if ip
 * is not an address. */
static bool
px_stats_network(const char *ip, char *buf, size_t size)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, ip, a) == 1) {
		a[3] = 0;
		inet_ntop(AF_INET, a, text, sizeof(text));
		snprintf(buf, size, "%s/24", text);
		return true;
	}
	if (inet_pton(AF_INET6, ip, a) == 1) {
		memset(a + 8, 0, 8);
		inet_ntop(AF_INET6, a, text, sizeof(text));
		snprintf(buf, size, "%s/64", text);
		return true;
	}
	return false;
}

/* px_stats_domain - the sender's domain, lower case ("<>" for the null
 * sender); false when there is no domain. */
static bool
px_stats_domain(const char *from, char *buf, size_t size)
{
	const char *at;
	size_t n = 0;

	if (from == NULL)
		return false;
	if (from[0] == '\0') {
		snprintf(buf, size, "<>");
		return true;
	}
	at = strrchr(from, '@');
	if (at == NULL || at[1] == '\0')
		return false;
	for (at++; *at && n + 1 < size; at++)
		buf[n++] = (char)tolower((unsigned char)*at);
	buf[n] = '\0';
	return true;
}

static unsigned
px_stats_result_index(const char *result)
{
	for (unsigned i = 0; i < PX_STATS_NRESULTS - 1; i++)
		if (result != NULL && strcmp(px_stats_results[i], result) == 0)
			return i;
	return PX_STATS_NRESULTS - 1;
}

void
px_stats_txn(const struct px_stats_txn *t)
{
	int64_t now = st_now_ms();
	unsigned r = px_stats_result_index(t->result);
	struct px_stats_recent e;
	struct px_stats_minute *m;
	char key[128];

	if (!atomic_load_explicit(&px_stats_on, memory_order_relaxed))
		return;
	memset(&e, 0, sizeof(e));
	e.ms = now;
	e.sid = t->sid;
	e.n = t->n;
	e.nrcpt = t->nrcpt;
	e.result = r;
	e.score = t->score;
	snprintf(e.client, sizeof(e.client), "%s",
	         t->client_ip ? t->client_ip : "");
	e.has_from = t->from != NULL;
	snprintf(e.from, sizeof(e.from), "%s", t->from ? t->from : "");
	if (snprintf(e.symbols, sizeof(e.symbols), "%s",
	             t->symbols && strcmp(t->symbols, "-") != 0
	                 ? t->symbols
	                 : "") >= (int)sizeof(e.symbols)) {
		/* Cut: drop the last, partial name rather than count it. */
		char *comma = strrchr(e.symbols, ',');

		if (comma != NULL)
			*comma = '\0';
	}
	px_stats_unlog(e.reply, sizeof(e.reply), t->reply);
	px_stats_unlog(e.backend, sizeof(e.backend), t->backend);

	pthread_mutex_lock(&px_st.lock);
	px_stats_start();
	px_st.recent[px_st.next] = e;
	px_st.next = (px_st.next + 1) % PX_STATS_RECENT;
	if (px_st.nrecent < PX_STATS_RECENT)
		px_st.nrecent++;
	m = &px_st.minutes[(now / 60000) % PX_STATS_MINUTES];
	if (m->minute != now / 60000) {
		memset(m, 0, sizeof(*m));
		m->minute = now / 60000;
	}
	m->n[r]++;
	px_st.totals[r]++;
	if (e.symbols[0] != '\0') {
		char syms[sizeof(e.symbols)], *save;

		memcpy(syms, e.symbols, sizeof(syms));
		for (char *s = strtok_r(syms, ",", &save); s != NULL;
		     s = strtok_r(NULL, ",", &save))
			px_stats_top_add(&px_st.symbols, s);
	}
	if (r == px_stats_result_index("reject")) {
		if (px_stats_network(e.client, key, sizeof(key)))
			px_stats_top_add(&px_st.networks, key);
		if (px_stats_domain(t->from, key, sizeof(key)))
			px_stats_top_add(&px_st.domains, key);
	}
	pthread_mutex_unlock(&px_st.lock);
	/* The backend answered with a reply code: it is up, whatever it
	 * said (a failure to reach it is logged by name, "unreachable"). */
	if (e.backend[0] >= '2' && e.backend[0] <= '5' &&
	    isdigit((unsigned char)e.backend[1]) &&
	    isdigit((unsigned char)e.backend[2]))
		px_stats_health(PX_STATS_BACKEND, true, NULL);
}

void
px_stats_health(enum px_stats_part part, bool ok, const char *what)
{
	struct px_stats_health *p = &px_st.parts[part];
	int64_t now;

	if (!atomic_load_explicit(&px_stats_on, memory_order_relaxed))
		return;
	now = st_now_ms();
	pthread_mutex_lock(&px_st.lock);
	px_stats_start();
	if (ok) {
		p->ok++;
		p->last_ok_ms = now;
	} else {
		p->errors++;
		p->last_error_ms = now;
		p->last_error = what;
	}
	p->failing = !ok;
	pthread_mutex_unlock(&px_st.lock);
}

void
px_stats_reset(void)
{
	pthread_mutex_lock(&px_st.lock);
	px_st.started_ms = 0;
	memset(px_st.recent, 0, sizeof(px_st.recent));
	px_st.nrecent = px_st.next = 0;
	memset(px_st.minutes, 0, sizeof(px_st.minutes));
	memset(px_st.totals, 0, sizeof(px_st.totals));
	memset(&px_st.symbols, 0, sizeof(px_st.symbols));
	memset(&px_st.networks, 0, sizeof(px_st.networks));
	memset(&px_st.domains, 0, sizeof(px_st.domains));
	memset(px_st.parts, 0, sizeof(px_st.parts));
	pthread_mutex_unlock(&px_st.lock);
}

/* Rendering (the metrics thread). */

/* px_stats_json - a JSON string literal of s into out. */
static void
px_stats_json(struct evbuffer *out, const char *s)
{
	size_t len = strlen(s);
	char small[PX_JSON_SIZE(64)];
	char *buf = len <= 64 ? small : px_malloc(PX_JSON_SIZE(len));
	size_t n;

	n = px_json_escape(buf, s, len);
	evbuffer_add(out, buf, n);
	if (buf != small)
		free(buf);
}

static int
px_stats_key_cmp(const void *a, const void *b)
{
	const struct px_stats_key *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* px_stats_top_render - the PX_STATS_SHOW most counted keys as
 * [{"name":…,"count":…}], most first (ties by name). */
static void
px_stats_top_render(struct evbuffer *out, const struct px_stats_top *t)
{
	struct px_stats_key *sorted = px_malloc(sizeof(t->e));
	unsigned n = t->n < PX_STATS_SHOW ? t->n : PX_STATS_SHOW;

	memcpy(sorted, t->e, t->n * sizeof(t->e[0]));
	qsort(sorted, t->n, sizeof(sorted[0]), px_stats_key_cmp);
	evbuffer_add(out, "[", 1);
	for (unsigned i = 0; i < n; i++) {
		evbuffer_add_printf(out, "%s{\"name\":", i ? "," : "");
		px_stats_json(out, sorted[i].key);
		evbuffer_add_printf(out, ",\"count\":%llu}",
		                    (unsigned long long)sorted[i].count);
	}
	evbuffer_add(out, "]", 1);
	free(sorted);
}

/* px_stats_ms - a time as JSON: seconds since the epoch, or null. */
static void
px_stats_ms(struct evbuffer *out, int64_t ms)
{
	if (ms == 0)
		evbuffer_add(out, "null", 4);
	else
		evbuffer_add_printf(out, "%.3f", (double)ms / 1000.0);
}

static void
px_stats_counts(struct evbuffer *out, const uint64_t *n)
{
	evbuffer_add(out, "{", 1);
	for (unsigned i = 0; i < PX_STATS_NRESULTS; i++)
		evbuffer_add_printf(out, "%s\"%s\":%llu", i ? "," : "",
		                    px_stats_results[i],
		                    (unsigned long long)n[i]);
	evbuffer_add(out, "}", 1);
}

void
px_stats_render_stats(struct evbuffer *out, const struct px_config *cfg)
{
	int64_t now = st_now_ms();

	pthread_mutex_lock(&px_st.lock);
	px_stats_start();
	evbuffer_add(out, "{\"now\":", 7);
	px_stats_ms(out, now);
	evbuffer_add_printf(out, ",\"uptime\":%lld,\"connections\":%lld",
	                    (long long)((now - px_st.started_ms) / 1000),
	                    px_metrics_connections());
	evbuffer_add(out, ",\"transactions\":", 16);
	px_stats_counts(out, px_st.totals);
	evbuffer_add(out, ",\"top_symbols\":", 15);
	px_stats_top_render(out, &px_st.symbols);
	evbuffer_add(out, ",\"top_rejected_networks\":", 25);
	px_stats_top_render(out, &px_st.networks);
	evbuffer_add(out, ",\"top_rejected_domains\":", 24);
	px_stats_top_render(out, &px_st.domains);
	evbuffer_add(out, ",\"health\":{", 11);
	for (unsigned i = 0; i < 3; i++) {
		const struct px_stats_health *p = &px_st.parts[i];
		const char *state = p->ok == 0 && p->errors == 0 ? "unknown"
		                    : p->failing                 ? "failing"
		                                                 : "ok";

		evbuffer_add_printf(out,
		                    "%s\"%s\":{\"state\":\"%s\",\"ok\":%llu,"
		                    "\"errors\":%llu,\"last_ok\":",
		                    i ? "," : "", px_stats_parts[i], state,
		                    (unsigned long long)p->ok,
		                    (unsigned long long)p->errors);
		px_stats_ms(out, p->last_ok_ms);
		evbuffer_add(out, ",\"last_error\":", 14);
		px_stats_ms(out, p->last_error_ms);
		evbuffer_add(out, ",\"last_error_kind\":", 19);
		if (p->last_error != NULL)
			px_stats_json(out, p->last_error);
		else
			evbuffer_add(out, "null", 4);
		if (i == PX_STATS_BACKEND && cfg != NULL &&
		    cfg->backend_str != NULL) {
			evbuffer_add(out, ",\"address\":", 11);
			px_stats_json(out, cfg->backend_str);
		}
		evbuffer_add(out, "}", 1);
	}
	pthread_mutex_unlock(&px_st.lock);
	evbuffer_add(out, "}}\n", 3);
}

/* px_stats_recent_render - one transaction as a JSON object. */
static void
px_stats_recent_render(struct evbuffer *out, const struct px_stats_recent *e)
{
	char id[48], syms[sizeof(e->symbols)], *save;
	bool first = true;

	snprintf(id, sizeof(id), "%016llx.%u", (unsigned long long)e->sid,
	         e->n);
	evbuffer_add_printf(out, "{\"time\":");
	px_stats_ms(out, e->ms);
	evbuffer_add_printf(out, ",\"id\":\"%s\",\"client\":", id);
	px_stats_json(out, e->client);
	evbuffer_add(out, ",\"from\":", 8);
	if (e->has_from)
		px_stats_json(out, e->from);
	else
		evbuffer_add(out, "null", 4);
	evbuffer_add_printf(out,
	                    ",\"nrcpt\":%u,\"result\":\"%s\",\"score\":%.1f,"
	                    "\"symbols\":[",
	                    e->nrcpt, px_stats_results[e->result], e->score);
	memcpy(syms, e->symbols, sizeof(syms));
	for (char *s = strtok_r(syms, ",", &save); s != NULL;
	     s = strtok_r(NULL, ",", &save)) {
		if (!first)
			evbuffer_add(out, ",", 1);
		px_stats_json(out, s);
		first = false;
	}
	evbuffer_add(out, "],\"reply\":", 10);
	if (e->reply[0] != '\0')
		px_stats_json(out, e->reply);
	else
		evbuffer_add(out, "null", 4);
	evbuffer_add(out, ",\"backend\":", 11);
	if (e->backend[0] != '\0')
		px_stats_json(out, e->backend);
	else
		evbuffer_add(out, "null", 4);
	evbuffer_add(out, "}", 1);
}

void
px_stats_render_history(struct evbuffer *out)
{
	int64_t now = st_now_ms(), cur = now / 60000;

	pthread_mutex_lock(&px_st.lock);
	evbuffer_add(out, "{\"now\":", 7);
	px_stats_ms(out, now);
	/* Oldest minute first, the current (unfinished) one last. */
	evbuffer_add(out, ",\"minutes\":[", 12);
	for (int64_t m = cur - PX_STATS_MINUTES + 1; m <= cur; m++) {
		static const uint64_t zero[PX_STATS_NRESULTS];
		const struct px_stats_minute *b =
		    &px_st.minutes[m % PX_STATS_MINUTES];

		evbuffer_add_printf(out, "%s{\"start\":%lld,\"counts\":",
		                    m == cur - PX_STATS_MINUTES + 1 ? "" : ",",
		                    (long long)(m * 60));
		px_stats_counts(out, b->minute == m ? b->n : zero);
		evbuffer_add(out, "}", 1);
	}
	/* Newest transaction first. */
	evbuffer_add(out, "],\"transactions\":[", 18);
	for (unsigned i = 0; i < px_st.nrecent; i++) {
		unsigned slot =
		    (px_st.next + PX_STATS_RECENT - 1 - i) % PX_STATS_RECENT;

		if (i > 0)
			evbuffer_add(out, ",", 1);
		px_stats_recent_render(out, &px_st.recent[slot]);
	}
	pthread_mutex_unlock(&px_st.lock);
	evbuffer_add(out, "]}\n", 3);
}
