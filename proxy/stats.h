/* SPDX-License-Identifier: MIT */
/*
 * stats.h - what the status page shows (`/`, `/api/stats`,
 * `/api/history` on the metrics listener): the last transactions, verdicts
 * per minute over the last hour, top symbols, the client networks and
 * sender domains rejected most, and the health of backend, DNS and store.
 *
 * Fed from any thread (the txn log line, the metrics hooks); read by the
 * metrics thread.  All in memory, bounded, lost at restart.
 */
#ifndef MX_STATS_H
#define MX_STATS_H

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;
struct px_config;

/* How many transactions the page lists, and minutes it charts. */
#define PX_STATS_RECENT  100
#define PX_STATS_MINUTES 60

/* One finished transaction, as its txn log line has it.  Borrowed for the
 * call. */
struct px_stats_txn {
	uint64_t sid;          /* session id */
	unsigned n;            /* transaction number in the session */
	const char *client_ip; /* "192.0.2.1", "2001:db8::1" */
	const char *from;      /* reverse-path without <>, "" for <>, NULL */
	unsigned nrcpt;        /* recipients accepted */
	const char *result;    /* accept, tag, reject, tempfail, abort... */
	double score;
	const char *symbols; /* comma-separated names, "-" for none */
	/* The replies as log values (txnlog.h: quoted, \xHH-escaped), or
	 * "-", "" or NULL for none. */
	const char *reply;   /* ours to the client */
	const char *backend; /* the backend's final one */
};

/* px_stats_enable - record from now on (px_metrics_bind, when the
 * listener that shows the data is configured); until then px_stats_txn()
 * and px_stats_health() return at once. */
void px_stats_enable(bool on);

/* px_stats_txn - record a finished transaction (any thread). */
void px_stats_txn(const struct px_stats_txn *t);

enum px_stats_part {
	PX_STATS_BACKEND,
	PX_STATS_DNS,
	PX_STATS_STORE,
};

/* px_stats_health - an operation of part succeeded (ok) or failed; what
 * names the failure ("unreachable", "timeout": a static string). */
void px_stats_health(enum px_stats_part part, bool ok, const char *what);

/* px_stats_render_stats - the /api/stats JSON object into out;
 * px_stats_render_history - the /api/history one. */
void px_stats_render_stats(struct evbuffer *out, const struct px_config *cfg);
void px_stats_render_history(struct evbuffer *out);

/* px_stats_reset - forget everything (tests; at exit). */
void px_stats_reset(void);

#endif
