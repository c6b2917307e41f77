/* SPDX-License-Identifier: MIT */
/*
 * config_metrics.c - metrics = { address = "127.0.0.1:9425"; password; }:
 * where /metrics is served (metrics.c).  Changes take effect at restart.
 */
#include <stdlib.h>
#include <string.h>

#include "config_priv.h"
#include "netaddr.h"

int
px_cfg_metrics(struct px_cfgerr *e, struct px_config *cfg,
               const config_setting_t *root)
{
	static const char *const keys[] = {"address", "password", NULL};
	const config_setting_t *g = config_setting_get_member(root, "metrics");
	struct sockaddr_storage ss;
	socklen_t len;
	const char *err;

	if (g == NULL)
		return 0;
	if (px_cfg_check_keys(e, g, "metrics", keys) < 0 ||
	    px_cfg_string(e, g, "address", &cfg->metrics.address, true) < 0 ||
	    px_cfg_string(e, g, "password", &cfg->metrics.password, false) < 0)
		return -1;
	if (px_addr_parse(cfg->metrics.address, false, &ss, &len, &err) < 0)
		return px_cfg_fail(e, config_setting_get_member(g, "address"),
		                   "metrics address \"%s\": %s",
		                   cfg->metrics.address, err);
	if (cfg->metrics.password != NULL && cfg->metrics.password[0] == '\0')
		return px_cfg_fail(e, config_setting_get_member(g, "password"),
		                   "metrics password must not be empty");
	return 0;
}

void
px_cfg_metrics_free(struct px_config *cfg)
{
	free(cfg->metrics.address);
	free(cfg->metrics.password);
}
