/* SPDX-License-Identifier: MIT */
/*
 * bench_stats.c - what the status page's bookkeeping costs per
 * transaction, against what the Prometheus counters already cost, in one
 * run.
 *
 *   bench_stats TXNS THREADS
 *
 * On each of THREADS threads, TXNS/THREADS times:
 *   metrics   the counting px_txn_end() did before the status page:
 *             px_metrics_txn() and px_metrics_symbol() for two symbols;
 *   stats     px_stats_txn() with the same transaction (two symbols, a
 *             reply and a backend reply; every third one rejected, from
 *             one of 1000 networks and domains, so the top tables work).
 * Then the rendering, each 200 times with the ring full: /metrics
 * (px_metrics_render) against /api/stats + /api/history.
 * Prints ns per call of each and the ratio; every loop is bounded.
 * Used by bench/status/run.
 */
#include <event2/buffer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "metrics.h"
#include "stats.h"

static long bench_n;

static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
bench_metrics(void *arg)
{
	(void)arg;
	for (long i = 0; i < bench_n; i++) {
		px_metrics_txn(i % 3 == 0 ? "reject" : "accept", 4096);
		px_metrics_symbol("HELO_NOT_FQDN");
		px_metrics_symbol("RULE_X");
	}
	return NULL;
}

static void *
bench_stats(void *arg)
{
	unsigned t = (unsigned)(size_t)arg;
	char ip[32], from[64];

	for (long i = 0; i < bench_n; i++) {
		snprintf(ip, sizeof(ip), "198.%u.%u.9",
		         (unsigned)(i % 1000) / 250, (unsigned)(i % 250));
		snprintf(from, sizeof(from), "user%u@d%ld.example", t,
		         i % 1000);
		px_stats_txn(&(struct px_stats_txn){
		    .sid = 0x3f9a0c1e5b7d2a44,
		    .n = (unsigned)i,
		    .client_ip = ip,
		    .from = from,
		    .nrcpt = 1,
		    .result = i % 3 == 0 ? "reject" : "accept",
		    .score = 3.5,
		    .symbols = "HELO_NOT_FQDN,RULE_X",
		    .reply = "\"250 2.0.0 Ok: queued as 4Xy7Z1abc\"",
		    .backend = "\"250 2.0.0 Ok: queued as 4Xy7Z1abc\""});
	}
	return NULL;
}

/* bench_run - fn on nthreads threads; seconds taken. */
static double
bench_run(void *(*fn)(void *), unsigned nthreads)
{
	pthread_t th[64];
	double t0 = bench_now();

	for (unsigned i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, fn, (void *)(size_t)i);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	return bench_now() - t0;
}

int
main(int argc, char **argv)
{
	struct px_config cfg;
	long txns = argc > 1 ? atol(argv[1]) : 1000000;
	unsigned nthreads = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
	double tm, ts, rm, rs;
	size_t metrics_bytes = 0, stats_bytes = 0;

	if (txns <= 0 || nthreads == 0 || nthreads > 64) {
		fprintf(stderr, "usage: bench_stats TXNS THREADS(1-64)\n");
		return 2;
	}
	bench_n = txns / nthreads;
	px_stats_enable(true);
	tm = bench_run(bench_metrics, nthreads);
	ts = bench_run(bench_stats, nthreads);
	printf("per transaction, %u thread%s, %ld each:\n", nthreads,
	       nthreads == 1 ? "" : "s", bench_n);
	printf("  metrics counters  %8.0f ns\n",
	       tm * 1e9 / (double)(bench_n * nthreads));
	printf("  status bookkeeping %7.0f ns   ratio %.2f\n",
	       ts * 1e9 / (double)(bench_n * nthreads), ts / tm);

	memset(&cfg, 0, sizeof(cfg));
	rm = bench_now();
	for (int i = 0; i < 200; i++) {
		struct evbuffer *b = evbuffer_new();

		px_metrics_render(b, &cfg);
		metrics_bytes = evbuffer_get_length(b);
		evbuffer_free(b);
	}
	rm = bench_now() - rm;
	rs = bench_now();
	for (int i = 0; i < 200; i++) {
		struct evbuffer *b = evbuffer_new();

		px_stats_render_stats(b, &cfg);
		px_stats_render_history(b);
		stats_bytes = evbuffer_get_length(b);
		evbuffer_free(b);
	}
	rs = bench_now() - rs;
	printf("per request (ring full):\n");
	printf("  /metrics                       %6.0f us  %6zu bytes\n",
	       rm * 1e6 / 200, metrics_bytes);
	printf("  /api/stats + /api/history      %6.0f us  %6zu bytes   "
	       "ratio %.2f\n",
	       rs * 1e6 / 200, stats_bytes, rs / rm);
	return 0;
}
