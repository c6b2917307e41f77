/* SPDX-License-Identifier: MIT */
/*
 * loop.c - per-thread event loops and their cross-thread mailbox.
 *
 * px_loop_new(), px_loop_start(), px_loop_join(), px_loop_exit(),
 * px_loop_free(): the loop's life.  px_loop_post(): the only way another
 * thread (the worker pool, the signal handler thread) hands work to a loop;
 * it appends to a mutex-protected queue and activates one event, so a burst
 * of posts costs one wakeup.  px_loop_register() and friends: the id map
 * that asynchronous results use to find their session.
 *
 * Needs evthread_use_pthreads() before the first px_loop_new().
 */
#include "loop.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>

#include "alloc.h"
#include "log.h"

#define PX_LOOP_BUCKETS 4096

struct px_post {
	struct px_post *next;
	px_loop_fn *fn;
	void *arg;
};

struct px_reg {
	struct px_reg *next;
	uint64_t id;
	void *obj;
};

struct px_loop {
	unsigned index;
	struct event_base *base;
	pthread_t thread;
	bool started;
	struct event *notify;
	pthread_mutex_t lock;
	struct px_post *head, *tail;
	struct px_reg *buckets[PX_LOOP_BUCKETS];
	unsigned count;
};

/* px_loop_drain - run the closures posted so far (loop thread). */
static void
px_loop_drain(evutil_socket_t fd, short what, void *arg)
{
	struct px_loop *loop = arg;
	struct px_post *list;

	pthread_mutex_lock(&loop->lock);
	list = loop->head;
	loop->head = loop->tail = NULL;
	pthread_mutex_unlock(&loop->lock);
	while (list != NULL) {
		struct px_post *next = list->next;

		list->fn(list->arg);
		free(list);
		list = next;
	}
}

struct timeval
px_timeval(double secs)
{
	struct timeval tv;

	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	return tv;
}

double
px_secs_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) +
	       (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

struct px_loop *
px_loop_new(unsigned index)
{
	struct px_loop *loop = px_calloc(1, sizeof(*loop));

	loop->index = index;
	loop->base = event_base_new();
	if (loop->base == NULL)
		abort();
	pthread_mutex_init(&loop->lock, NULL);
	loop->notify =
	    event_new(loop->base, -1, EV_PERSIST, px_loop_drain, loop);
	event_add(loop->notify, NULL);
	return loop;
}

void
px_loop_free(struct px_loop **loopp)
{
	struct px_loop *loop = *loopp;

	if (loop == NULL)
		return;
	*loopp = NULL;
	px_loop_drain(-1, 0, loop);
	for (unsigned i = 0; i < PX_LOOP_BUCKETS; i++) {
		while (loop->buckets[i] != NULL) {
			struct px_reg *r = loop->buckets[i];

			loop->buckets[i] = r->next;
			free(r);
		}
	}
	event_free(loop->notify);
	event_base_free(loop->base);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

static void *
px_loop_main(void *arg)
{
	struct px_loop *loop = arg;

	/* The mailbox event has no fd, so it does not keep a base alive:
	 * only px_loop_exit() ends the loop. */
	px_log_attach(loop->base);
	event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
	px_log_detach();
	return NULL;
}

int
px_loop_start(struct px_loop *loop)
{
	if (pthread_create(&loop->thread, NULL, px_loop_main, loop) != 0)
		return -1;
	loop->started = true;
	return 0;
}

void
px_loop_join(struct px_loop *loop)
{
	if (loop->started)
		pthread_join(loop->thread, NULL);
	loop->started = false;
}

void
px_loop_exit(struct px_loop *loop)
{
	event_base_loopexit(loop->base, NULL);
}

struct event_base *
px_loop_base(struct px_loop *loop)
{
	return loop->base;
}

unsigned
px_loop_index(const struct px_loop *loop)
{
	return loop->index;
}

void
px_loop_post(struct px_loop *loop, px_loop_fn *fn, void *arg)
{
	struct px_post *p = px_malloc(sizeof(*p));
	bool first;

	p->next = NULL;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&loop->lock);
	first = loop->head == NULL;
	if (loop->tail != NULL)
		loop->tail->next = p;
	else
		loop->head = p;
	loop->tail = p;
	pthread_mutex_unlock(&loop->lock);
	if (first)
		event_active(loop->notify, EV_READ, 0);
}

static unsigned
px_loop_bucket(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (unsigned)(id % PX_LOOP_BUCKETS);
}

void
px_loop_register(struct px_loop *loop, uint64_t id, void *obj)
{
	struct px_reg *r = px_malloc(sizeof(*r));
	unsigned b = px_loop_bucket(id);

	r->id = id;
	r->obj = obj;
	r->next = loop->buckets[b];
	loop->buckets[b] = r;
	loop->count++;
}

void
px_loop_unregister(struct px_loop *loop, uint64_t id)
{
	struct px_reg **rp = &loop->buckets[px_loop_bucket(id)];

	for (; *rp != NULL; rp = &(*rp)->next) {
		if ((*rp)->id == id) {
			struct px_reg *r = *rp;

			*rp = r->next;
			free(r);
			loop->count--;
			return;
		}
	}
}

void *
px_loop_find(struct px_loop *loop, uint64_t id)
{
	for (struct px_reg *r = loop->buckets[px_loop_bucket(id)]; r != NULL;
	     r = r->next)
		if (r->id == id)
			return r->obj;
	return NULL;
}

unsigned
px_loop_count(const struct px_loop *loop)
{
	return loop->count;
}

void
px_loop_foreach(struct px_loop *loop, void (*fn)(void *obj, void *arg),
                void *arg)
{
	for (unsigned i = 0; i < PX_LOOP_BUCKETS; i++) {
		struct px_reg *r = loop->buckets[i];

		while (r != NULL) {
			struct px_reg *next = r->next;

			fn(r->obj, arg);
			r = next;
		}
	}
}
