/* SPDX-License-Identifier: MIT */
/*
 * loop.h - event loops: one libevent base per thread, one thread per core.
 *
 * Each loop owns its sessions outright (a session never moves), so session
 * code needs no locks.  Other threads talk to a loop only through
 * px_loop_post().
 */
#ifndef MX_LOOP_H
#define MX_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/time.h>
#include <time.h>

struct event_base;
struct px_loop;

/* px_timeval - seconds (config values are doubles) as a struct timeval. */
struct timeval px_timeval(double secs);

/* px_secs_since - seconds from t0 (CLOCK_MONOTONIC) to now. */
double px_secs_since(const struct timespec *t0);

typedef void px_loop_fn(void *arg);

/* px_loop_new - a loop with its own event base; not started. */
struct px_loop *px_loop_new(unsigned index);

/* px_loop_free - free a stopped loop; *loopp = NULL; accepts NULL. */
void px_loop_free(struct px_loop **loopp);

/* px_loop_start - run the loop in a new thread until px_loop_exit() is
 * called from inside it.  Returns 0 or -1. */
int px_loop_start(struct px_loop *loop);

/* px_loop_join - wait for the loop's thread to end. */
void px_loop_join(struct px_loop *loop);

/* px_loop_exit - make the loop's thread return (call on the loop). */
void px_loop_exit(struct px_loop *loop);

/* px_loop_base - the loop's event base. */
struct event_base *px_loop_base(struct px_loop *loop);

/* px_loop_index - 0..n-1. */
unsigned px_loop_index(const struct px_loop *loop);

/*
 * px_loop_post - run fn(arg) on the loop's thread soon.  Thread-safe; may be
 * called from any thread, including the loop's own.  Closures run in the
 * order posted.  Never calls fn before returning.
 */
void px_loop_post(struct px_loop *loop, px_loop_fn *fn, void *arg);

/* px_loop_register / unregister / find - the loop's id -> object map, so
 * asynchronous results can find their session by a 64-bit id and drop a
 * result whose session is gone (STYLE: ids, never pointers).  Loop thread
 * only. */
void px_loop_register(struct px_loop *loop, uint64_t id, void *obj);
void px_loop_unregister(struct px_loop *loop, uint64_t id);
void *px_loop_find(struct px_loop *loop, uint64_t id);

/* px_loop_count - objects registered. */
unsigned px_loop_count(const struct px_loop *loop);

/* px_loop_foreach - call fn(obj, arg) for every registered object; fn may
 * unregister the object it is given but no other. */
void px_loop_foreach(struct px_loop *loop, void (*fn)(void *obj, void *arg),
                     void *arg);

#endif
