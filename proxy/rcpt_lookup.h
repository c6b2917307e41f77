/* SPDX-License-Identifier: MIT */
/*
 * rcpt_lookup.h - is a recipient one of ours: recipients_file (in memory,
 * answered at once) and recipients_redis (a Redis set, asked through the
 * store's connection on the session's loop, never blocking it).
 */
#ifndef MX_RCPT_LOOKUP_H
#define MX_RCPT_LOOKUP_H

#include "recipients.h"

struct px_config;
struct px_loop;
struct px_rcpt_lookup;

/* The answer: enum px_rcpt_known, or PX_RCPT_LOOKUP_ERROR (the set could
 * not be asked: Redis down or slow; error says why); source is "file" or
 * "redis", the table that decided (NULL when none did). */
#define PX_RCPT_LOOKUP_ERROR (-1)
typedef void px_rcpt_lookup_fn(void *arg, int known, const char *source,
                               const char *error);

/*
 * px_rcpt_lookup - look rcpt ("local@domain" as the parser left it, or
 * "postmaster") up.  Returns 1 when answered at once: done ran before the
 * return.  Returns 0 when pending: done runs later on the loop thread,
 * exactly once, unless px_rcpt_lookup_cancel(*req_r) comes first.
 * rcpt is copied.
 */
int px_rcpt_lookup(struct px_loop *loop, const struct px_config *cfg,
                   const char *rcpt, px_rcpt_lookup_fn *done, void *arg,
                   struct px_rcpt_lookup **req_r);

/* px_rcpt_lookup_cancel - done will not run; accepts NULL. */
void px_rcpt_lookup_cancel(struct px_rcpt_lookup **reqp);

#endif
