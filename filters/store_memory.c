/* SPDX-License-Identifier: MIT */
#include "store.h"

static int
st_memory_open(const struct px_config *cfg, const char **error_r)
{
	(void)cfg;
	(void)error_r;
	return 0;
}

static void
st_memory_close(void)
{
}

const struct st_backend st_memory = {
    .name = "memory",
    .open = st_memory_open,
    .close = st_memory_close,
};
