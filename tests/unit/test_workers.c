/* SPDX-License-Identifier: MIT */
/*
 * test_workers.c - the worker pool and the loop mailbox: every job runs on
 * a worker thread (not the loop's), its completion runs on the loop's
 * thread, in submission order per job, exactly once; px_loop_post from
 * other threads is delivered in order; the id map finds, forgets and walks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "loop.h"
#include "workers.h"

#define NJOBS 2000

struct job {
	struct px_loop *loop;
	pthread_t loop_thread;
	pthread_t ran_on;
	int value;
	int result;
	bool done;
};

static int jobs_done;
static pthread_t loop_thread_id;

static void
job_work(void *arg)
{
	struct job *j = arg;

	j->ran_on = pthread_self();
	j->result = j->value * 3 + 1;
}

static void
job_done(void *arg)
{
	struct job *j = arg;

	/* Completions run on the loop's own thread. */
	assert_true(pthread_equal(pthread_self(), loop_thread_id));
	assert_false(j->done);
	j->done = true;
	if (++jobs_done == NJOBS)
		px_loop_exit(j->loop);
}

static void
record_thread(void *arg)
{
	struct job *first = arg;

	loop_thread_id = pthread_self();
	/* Submitting from the loop thread, as sessions do. */
	for (int i = 0; i < NJOBS; i++)
		px_workers_submit(first[i].loop, job_work, job_done, &first[i]);
}

static void
test_workers_post_back(void **state)
{
	struct px_loop *loop = px_loop_new(0);
	struct job *jobs = calloc(NJOBS, sizeof(*jobs));

	assert_int_equal(px_workers_start(3), 0);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i].loop = loop;
		jobs[i].value = i;
	}
	px_loop_post(loop, record_thread, jobs);
	assert_int_equal(px_loop_start(loop), 0);
	px_loop_join(loop);
	px_workers_stop();
	assert_int_equal(jobs_done, NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		assert_true(jobs[i].done);
		assert_int_equal(jobs[i].result, i * 3 + 1);
		/* The work itself never ran on the loop. */
		assert_false(pthread_equal(jobs[i].ran_on, loop_thread_id));
	}
	assert_int_equal(px_workers_queued(), 0);
	free(jobs);
	px_loop_free(&loop);
	assert_null(loop);
}

/* Posts from several threads arrive, each thread's in its own order. */

#define NPOSTERS 4
#define NPOSTS   5000

struct post {
	struct px_loop *loop;
	int thread;
	int seq;
};

static int last_seq[NPOSTERS];
static int posts_seen;

static void
on_post(void *arg)
{
	struct post *p = arg;

	assert_int_equal(p->seq, last_seq[p->thread] + 1);
	last_seq[p->thread] = p->seq;
	if (++posts_seen == NPOSTERS * NPOSTS)
		px_loop_exit(p->loop);
	free(p);
}

struct poster {
	struct px_loop *loop;
	int thread;
};

static void *
poster_main(void *arg)
{
	struct poster *ps = arg;

	for (int i = 1; i <= NPOSTS; i++) {
		struct post *p = malloc(sizeof(*p));

		p->loop = ps->loop;
		p->thread = ps->thread;
		p->seq = i;
		px_loop_post(ps->loop, on_post, p);
	}
	return NULL;
}

static void
test_loop_post_order(void **state)
{
	struct px_loop *loop = px_loop_new(1);
	pthread_t th[NPOSTERS];
	struct poster ps[NPOSTERS];

	assert_int_equal(px_loop_start(loop), 0);
	for (int i = 0; i < NPOSTERS; i++) {
		ps[i].loop = loop;
		ps[i].thread = i;
		last_seq[i] = 0;
		pthread_create(&th[i], NULL, poster_main, &ps[i]);
	}
	for (int i = 0; i < NPOSTERS; i++)
		pthread_join(th[i], NULL);
	px_loop_join(loop);
	assert_int_equal(posts_seen, NPOSTERS * NPOSTS);
	px_loop_free(&loop);
}

static void
count_obj(void *obj, void *arg)
{
	(*(int *)arg) += *(int *)obj;
}

static void
test_loop_registry(void **state)
{
	struct px_loop *loop = px_loop_new(2);
	static int vals[10000];
	int sum = 0;

	for (int i = 0; i < 10000; i++) {
		vals[i] = 1;
		/* Ids that collide in the low bits on purpose. */
		px_loop_register(loop, (uint64_t)i << 32, &vals[i]);
	}
	assert_int_equal(px_loop_count(loop), 10000);
	assert_ptr_equal(px_loop_find(loop, (uint64_t)1234 << 32), &vals[1234]);
	assert_null(px_loop_find(loop, 1234));
	px_loop_unregister(loop, (uint64_t)1234 << 32);
	assert_null(px_loop_find(loop, (uint64_t)1234 << 32));
	px_loop_unregister(loop, 999999); /* unknown: no effect */
	assert_int_equal(px_loop_count(loop), 9999);
	px_loop_foreach(loop, count_obj, &sum);
	assert_int_equal(sum, 9999);
	px_loop_free(&loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_workers_post_back),
	    cmocka_unit_test(test_loop_post_order),
	    cmocka_unit_test(test_loop_registry),
	};

	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
