/* SPDX-License-Identifier: MIT */
/*
 * workers.h - the worker pool: threads for library calls that block
 * (libspf2, libopendkim, libopendmarc), whose results are posted back to the
 * loop that asked.
 */
#ifndef MX_WORKERS_H
#define MX_WORKERS_H

struct px_loop;

typedef void px_work_fn(void *arg);

/* px_workers_start - start n threads (process-wide pool). 0 or -1. */
int px_workers_start(unsigned n);

/* px_workers_stop - finish queued jobs, join the threads. */
void px_workers_stop(void);

/*
 * px_workers_submit - run work(arg) on a worker thread, then done(arg) on
 * loop's thread.  arg is owned by the caller's job until done runs; done
 * must check that the session the job belongs to still exists (by id) and
 * drop the result if not.  Loop thread only.
 */
void px_workers_submit(struct px_loop *loop, px_work_fn *work, px_work_fn *done,
                       void *arg);

/* px_workers_queued - jobs waiting for a thread (for metrics). */
unsigned px_workers_queued(void);

#endif
