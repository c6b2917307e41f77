/* SPDX-License-Identifier: MIT */
/*
 * harvest.h - the cross-session cap on unknown recipients per client
 * address (limits.unknown_recipients_per_client, ..._window); harvest.c.
 */
#ifndef MX_HARVEST_H
#define MX_HARVEST_H

#include <stdbool.h>
#include <sys/socket.h>

#include "filter.h"
#include "store.h"

/*
 * flt_harvest_count - add n unknown recipients to client's count, as
 * st_call does (1: answered at once in *r, also when the cap is off (then
 * r is zeroed: never over); 0: done(arg, reply) later unless
 * st_cancel(*req_r)).
 */
int flt_harvest_count(struct px_loop *loop, const struct px_config *cfg,
                      const struct sockaddr_storage *client, unsigned n,
                      st_done_fn *done, void *arg, struct st_reply *r,
                      struct st_req **req_r);

/* flt_harvest_over - a count's reply says the client is at the limit. */
bool flt_harvest_over(const struct px_config *cfg, const struct st_reply *r);

#endif
