/* SPDX-License-Identifier: MIT */
/*
 * workers.c - a fixed pool of threads running blocking jobs.
 *
 * px_workers_start(), px_workers_stop(): the pool's life.
 * px_workers_submit(): queue a job; its completion runs on the submitting
 * loop through px_loop_post(), so the event loop itself never blocks
 * (DESIGN principle 2).
 */
#include "workers.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "alloc.h"
#include "loop.h"

struct px_job {
	struct px_job *next;
	struct px_loop *loop;
	px_work_fn *work;
	px_work_fn *done;
	void *arg;
};

static pthread_mutex_t px_workers_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t px_workers_cond = PTHREAD_COND_INITIALIZER;
static struct px_job *px_jobs_head, *px_jobs_tail;
static unsigned px_jobs_queued;
static bool px_workers_stopping;
static pthread_t *px_threads;
static unsigned px_nthreads;

static void
px_job_done(void *arg)
{
	struct px_job *job = arg;

	job->done(job->arg);
	free(job);
}

static void *
px_worker_main(void *unused)
{
	for (;;) {
		struct px_job *job;

		pthread_mutex_lock(&px_workers_lock);
		while (px_jobs_head == NULL && !px_workers_stopping)
			pthread_cond_wait(&px_workers_cond, &px_workers_lock);
		job = px_jobs_head;
		if (job == NULL) {
			pthread_mutex_unlock(&px_workers_lock);
			return NULL;
		}
		px_jobs_head = job->next;
		if (px_jobs_head == NULL)
			px_jobs_tail = NULL;
		px_jobs_queued--;
		pthread_mutex_unlock(&px_workers_lock);

		job->work(job->arg);
		px_loop_post(job->loop, px_job_done, job);
	}
}

int
px_workers_start(unsigned n)
{
	px_threads = px_calloc(n, sizeof(*px_threads));
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&px_threads[i], NULL, px_worker_main,
		                   NULL) != 0)
			return -1;
		px_nthreads++;
	}
	return 0;
}

void
px_workers_stop(void)
{
	pthread_mutex_lock(&px_workers_lock);
	px_workers_stopping = true;
	pthread_cond_broadcast(&px_workers_cond);
	pthread_mutex_unlock(&px_workers_lock);
	for (unsigned i = 0; i < px_nthreads; i++)
		pthread_join(px_threads[i], NULL);
	free(px_threads);
	px_threads = NULL;
	px_nthreads = 0;
}

void
px_workers_submit(struct px_loop *loop, px_work_fn *work, px_work_fn *done,
                  void *arg)
{
	struct px_job *job = px_malloc(sizeof(*job));

	job->next = NULL;
	job->loop = loop;
	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&px_workers_lock);
	if (px_jobs_tail != NULL)
		px_jobs_tail->next = job;
	else
		px_jobs_head = job;
	px_jobs_tail = job;
	px_jobs_queued++;
	pthread_cond_signal(&px_workers_cond);
	pthread_mutex_unlock(&px_workers_lock);
}

unsigned
px_workers_queued(void)
{
	unsigned n;

	pthread_mutex_lock(&px_workers_lock);
	n = px_jobs_queued;
	pthread_mutex_unlock(&px_workers_lock);
	return n;
}
