/* SPDX-License-Identifier: MIT */
/*
 * config_ops.c - the operator's side: where logs go and where metrics are
 * served.
 *   log = { target = "stderr" | "syslog"; facility = "mail"; level = "info"; };
 *   log_level = "info";   (the same as log.level)
 *   metrics = { address = "127.0.0.1:9425"; password = "..."; };
 * The log level follows a reload; the target, facility and metrics are
 * read at startup.
 */
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "config_priv.h"
#include "log.h"
#include "netaddr.h"

static const struct {
	const char *name;
	int value;
} px_facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

static const char *const px_levels[] = {"error", "warning", "info", "debug",
                                        NULL};

static int
px_cfg_level(struct px_cfgerr *e, const config_setting_t *parent,
             const char *name, int *out)
{
	char *v = NULL;

	if (px_cfg_string(e, parent, name, &v, false) < 0)
		return -1;
	if (v == NULL)
		return 0;
	for (int i = 0; px_levels[i] != NULL; i++) {
		if (strcmp(v, px_levels[i]) == 0) {
			free(v);
			*out = i;
			return 0;
		}
	}
	free(v);
	return px_cfg_fail(e, config_setting_get_member(parent, name),
	                   "%s must be \"error\", \"warning\", \"info\" or "
	                   "\"debug\"",
	                   name);
}

int
px_cfg_log(struct px_cfgerr *e, struct px_config *cfg,
           const config_setting_t *root)
{
	static const char *const keys[] = {"target", "facility", "level", NULL};
	const config_setting_t *g = config_setting_get_member(root, "log");
	char *target = NULL, *facility = NULL;
	int rc = 0;

	cfg->log.facility = LOG_MAIL;
	cfg->log.level = PX_LOG_INFO;
	if (px_cfg_level(e, root, "log_level", &cfg->log.level) < 0)
		return -1;
	if (g == NULL)
		return 0;
	if (px_cfg_check_keys(e, g, "log", keys) < 0 ||
	    px_cfg_string(e, g, "target", &target, false) < 0 ||
	    px_cfg_string(e, g, "facility", &facility, false) < 0 ||
	    px_cfg_level(e, g, "level", &cfg->log.level) < 0) {
		rc = -1;
		goto done;
	}
	if (target != NULL && strcmp(target, "syslog") == 0) {
		cfg->log.syslog = true;
	} else if (target != NULL && strcmp(target, "stderr") != 0) {
		rc = px_cfg_fail(e, config_setting_get_member(g, "target"),
		                 "log target must be \"stderr\" or "
		                 "\"syslog\"");
		goto done;
	}
	if (facility != NULL) {
		size_t i, n = sizeof(px_facilities) / sizeof(px_facilities[0]);

		for (i = 0; i < n; i++)
			if (strcmp(facility, px_facilities[i].name) == 0)
				break;
		if (i == n) {
			rc = px_cfg_fail(
			    e, config_setting_get_member(g, "facility"),
			    "log facility must be mail, daemon, user or "
			    "local0..local7");
			goto done;
		}
		cfg->log.facility = px_facilities[i].value;
	}
done:
	free(target);
	free(facility);
	return rc;
}

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
