/* SPDX-License-Identifier: MIT */
/*
 * store_redis.c - placeholder until the Redis store lands: configs naming
 * Redis are refused at startup rather than silently using memory.
 */
#include "store.h"

static int
st_redis_open(const struct px_config *cfg, const char **error_r)
{
	(void)cfg;
	*error_r = "the Redis store is not built yet";
	return -1;
}

static void
st_redis_close(void)
{
}

const struct st_backend st_redis = {
    .name = "redis",
    .open = st_redis_open,
    .close = st_redis_close,
};
