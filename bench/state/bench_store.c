/* SPDX-License-Identifier: MIT */
/*
 * bench_store.c - store operations per second, through the same st_call()
 * path the filters use, on real event loops.
 *
 *   bench_store STORE OPS LOOPS WINDOW
 *
 * STORE is "memory" or a redis:// URL.  On each of LOOPS event-loop
 * threads, WINDOW requests are kept in flight (pipelined on that loop's
 * Redis connection; the memory store answers at once, so WINDOW does not
 * matter there) until the loop has done OPS/LOOPS of each kind:
 *   greylist   ST_GREYLIST on 10000 distinct triplets per loop, so the mix
 *              is first sight, then passes (what a busy MX sees);
 *   ratelimit  ST_RATELIMIT on 1000 buckets per loop.
 * Prints one line per kind: "kind ops seconds ops/s errors".
 * Used by bench/state; every run is bounded by OPS.
 */
#include <event2/thread.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "config.h"
#include "loop.h"
#include "store.h"

struct bench_loop {
	struct px_loop *loop;
	const char *kind;
	int64_t target, issued, done, errors;
	unsigned window;
	unsigned id;
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	unsigned *running;
	char awl[64];
};

static void bench_issue(struct bench_loop *b);

static void
bench_finish(struct bench_loop *b)
{
	pthread_mutex_lock(b->lock);
	(*b->running)--;
	pthread_cond_signal(b->cond);
	pthread_mutex_unlock(b->lock);
}

static void
bench_count(struct bench_loop *b, const struct st_reply *r)
{
	b->done++;
	if (r->status != 0)
		b->errors++;
	if (b->done == b->target)
		bench_finish(b);
}

static void
bench_done(void *arg, const struct st_reply *r)
{
	struct bench_loop *b = arg;

	bench_count(b, r);
	if (b->issued < b->target)
		bench_issue(b);
}

static void
bench_issue(struct bench_loop *b)
{
	char key[128];
	struct st_cmd cmd = {.nkeys = 1};
	struct st_reply r;
	struct st_req *req;
	int64_t i = b->issued++;

	if (strcmp(b->kind, "greylist") == 0) {
		snprintf(key, sizeof(key),
		         "bench:gl:t:198.51.%u.0/24/s%" PRId64
		         "@example.org/u@example.com",
		         b->id, i % 10000);
		snprintf(b->awl, sizeof(b->awl), "bench:gl:c:198.51.%u.0/24",
		         b->id);
		cmd.op = ST_GREYLIST;
		cmd.keys[1] = b->awl;
		cmd.nkeys = 2;
		cmd.args[0] = st_now() + (i / 10000) * 400; /* retries pass */
		cmd.args[1] = 300;
		cmd.args[2] = 172800;
		cmd.args[3] = 3110400;
		cmd.args[4] = 0;
		cmd.nargs = 5;
	} else {
		snprintf(key, sizeof(key), "bench:rl:R:198.51.%u.%" PRId64,
		         b->id, i % 1000);
		cmd.op = ST_RATELIMIT;
		cmd.args[0] = st_now_ms();
		cmd.args[1] = 1;
		cmd.args[2] = 1000000;
		cmd.args[3] = 60000;
		cmd.nargs = 4;
	}
	cmd.keys[0] = key;
	if (st_call(b->loop, &cmd, bench_done, b, &r, &req) == 1) {
		bench_count(b, &r);
		st_reply_clear(&r);
	}
}

static void
bench_start(void *arg)
{
	struct bench_loop *b = arg;

	/* The memory store answers inline: issue one after the other. */
	while (b->issued < b->target &&
	       b->issued - b->done < (int64_t)b->window)
		bench_issue(b);
}

static double
bench_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct px_config cfg;
	const char *err = NULL;
	static const char *const kinds[] = {"greylist", "ratelimit"};
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

	if (argc != 5) {
		fprintf(stderr, "usage: bench_store STORE OPS LOOPS WINDOW\n");
		return 2;
	}
	int64_t ops = strtoll(argv[2], NULL, 10);
	unsigned nloops = (unsigned)atoi(argv[3]);
	unsigned window = (unsigned)atoi(argv[4]);

	if (ops < 1 || nloops < 1 || nloops > 64 || window < 1)
		return 2;
	evthread_use_pthreads(); /* px_loop_post() wakes loops from here */
	memset(&cfg, 0, sizeof(cfg));
	cfg.store = argv[1];
	cfg.store_prefix = (char *)"bench:";
	cfg.store_memory_max = 256u << 20;
	cfg.store_timeout = 5.0;
	if (st_open(&cfg, &err) < 0) {
		fprintf(stderr, "bench_store: %s\n", err);
		return 1;
	}
	struct px_loop **loops = px_calloc(nloops, sizeof(*loops));

	for (unsigned i = 0; i < nloops; i++) {
		loops[i] = px_loop_new(i);
		px_loop_start(loops[i]);
	}
	for (unsigned k = 0; k < 2; k++) {
		struct bench_loop *b = px_calloc(nloops, sizeof(*b));
		unsigned running = nloops;
		int64_t done = 0, errors = 0;
		double t0 = bench_seconds(), dt;

		for (unsigned i = 0; i < nloops; i++) {
			b[i] = (struct bench_loop){.loop = loops[i],
			                           .kind = kinds[k],
			                           .target = ops / nloops,
			                           .window = window,
			                           .id = i,
			                           .lock = &lock,
			                           .cond = &cond,
			                           .running = &running};
			px_loop_post(loops[i], bench_start, &b[i]);
		}
		pthread_mutex_lock(&lock);
		while (running > 0)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
		dt = bench_seconds() - t0;
		for (unsigned i = 0; i < nloops; i++) {
			done += b[i].done;
			errors += b[i].errors;
		}
		printf("%s %" PRId64 " %.3f %.0f %" PRId64 "\n", kinds[k], done,
		       dt, (double)done / dt, errors);
		fflush(stdout);
		free(b);
	}
	for (unsigned i = 0; i < nloops; i++) {
		px_loop_exit(loops[i]);
		px_loop_join(loops[i]);
	}
	st_close();
	for (unsigned i = 0; i < nloops; i++)
		px_loop_free(&loops[i]);
	free(loops);
	return 0;
}
