/* SPDX-License-Identifier: MIT */
/*
 * config_auth.c - the sender-authentication settings:
 *
 *   spf = { enabled = true; reject_fail = false; tempfail_temperror = false;
 *           check_trusted = false; timeout = 10.0; };
 *   dkim = { enabled = true; check_trusted = false; timeout = 10.0;
 *            max_signatures = 8; };
 *   dmarc = { enabled = true; enforce = false; check_trusted = false; };
 *
 * SPF runs by default for every client that neither authenticated nor is
 * in relay_networks; the groups set policy.  spf.timeout bounds one
 * evaluation (all its lookups), dkim.timeout the verification of one
 * message (all its key lookups); with dns.timeout each must fit inside
 * timeouts.filter, or the chain would give up first and the result would
 * be lost instead of being temperror.
 */
#include <stdio.h>

#include "config_priv.h"

void
px_cfg_auth_defaults(struct px_config *cfg)
{
	cfg->spf.enabled = true;
	cfg->spf.reject_fail = false;
	cfg->spf.tempfail_temperror = false;
	cfg->spf.check_trusted = false;
	cfg->spf.timeout = 10.0;
	cfg->dkim.enabled = true;
	cfg->dkim.check_trusted = false;
	cfg->dkim.timeout = 10.0;
	cfg->dkim.max_signatures = 8;
	cfg->dmarc.enabled = true;
	cfg->dmarc.enforce = false;
	cfg->dmarc.check_trusted = false;
}

/* px_cfg_dmarc - the dmarc group.  Its lookups are single DNS queries,
 * bounded by dns.timeout each. */
static int
px_cfg_dmarc(struct px_cfgerr *e, struct px_config *cfg,
             const config_setting_t *root)
{
	static const char *const dmarc_keys[] = {"enabled", "enforce",
	                                         "check_trusted", NULL};
	const config_setting_t *g = config_setting_get_member(root, "dmarc");

	if (g == NULL)
		return 0;
	if (px_cfg_check_keys(e, g, "dmarc", dmarc_keys) < 0 ||
	    px_cfg_bool(e, g, "enabled", &cfg->dmarc.enabled) < 0 ||
	    px_cfg_bool(e, g, "enforce", &cfg->dmarc.enforce) < 0 ||
	    px_cfg_bool(e, g, "check_trusted", &cfg->dmarc.check_trusted) < 0)
		return -1;
	return 0;
}

/* px_cfg_auth_timeout - read group.timeout into *t, or fit the default
 * into timeouts.filter less dns.timeout (see the file comment). */
static int
px_cfg_auth_timeout(struct px_cfgerr *e, const struct px_config *cfg,
                    const config_setting_t *g, const char *name, double room,
                    double *t)
{
	if (g == NULL || config_setting_get_member(g, "timeout") == NULL) {
		if (*t > room - 0.5)
			*t = room - 0.5 > 0.1 ? room - 0.5 : 0.1;
		return 0;
	}
	if (px_cfg_double(e, g, "timeout", t, 0.1, 3600) < 0)
		return -1;
	if (*t >= room)
		return px_cfg_fail(e, config_setting_get_member(g, "timeout"),
		                   "%s.timeout (%.1f) plus dns.timeout must be "
		                   "less than timeouts.filter (%.1f)",
		                   name, *t, cfg->timeouts.filter);
	return 0;
}

/* px_cfg_dkim - the dkim group. */
static int
px_cfg_dkim(struct px_cfgerr *e, struct px_config *cfg,
            const config_setting_t *root, double room)
{
	static const char *const dkim_keys[] = {
	    "enabled", "check_trusted", "timeout", "max_signatures", NULL};
	const config_setting_t *g = config_setting_get_member(root, "dkim");

	if (g != NULL &&
	    (px_cfg_check_keys(e, g, "dkim", dkim_keys) < 0 ||
	     px_cfg_bool(e, g, "enabled", &cfg->dkim.enabled) < 0 ||
	     px_cfg_bool(e, g, "check_trusted", &cfg->dkim.check_trusted) < 0))
		return -1;
	if (g != NULL && px_cfg_unsigned(e, g, "max_signatures",
	                                 &cfg->dkim.max_signatures, 1, 32) < 0)
		return -1;
	return px_cfg_auth_timeout(e, cfg, g, "dkim", room, &cfg->dkim.timeout);
}

/* px_cfg_spf - the spf group. */
static int
px_cfg_spf(struct px_cfgerr *e, struct px_config *cfg,
           const config_setting_t *root)
{
	static const char *const spf_keys[] = {
	    "enabled",       "reject_fail", "tempfail_temperror",
	    "check_trusted", "timeout",     NULL};
	const config_setting_t *g = config_setting_get_member(root, "spf");
	double room = cfg->timeouts.filter - cfg->dns.timeout;

	if (g == NULL) {
		if (cfg->spf.timeout > room - 0.5)
			cfg->spf.timeout = room - 0.5 > 0.1 ? room - 0.5 : 0.1;
		return 0;
	}
	if (px_cfg_check_keys(e, g, "spf", spf_keys) < 0 ||
	    px_cfg_bool(e, g, "enabled", &cfg->spf.enabled) < 0 ||
	    px_cfg_bool(e, g, "reject_fail", &cfg->spf.reject_fail) < 0 ||
	    px_cfg_bool(e, g, "tempfail_temperror",
	                &cfg->spf.tempfail_temperror) < 0 ||
	    px_cfg_bool(e, g, "check_trusted", &cfg->spf.check_trusted) < 0)
		return -1;
	if (config_setting_get_member(g, "timeout") == NULL) {
		if (cfg->spf.timeout > room - 0.5)
			cfg->spf.timeout = room - 0.5 > 0.1 ? room - 0.5 : 0.1;
		return 0;
	}
	if (px_cfg_double(e, g, "timeout", &cfg->spf.timeout, 0.1, 3600) < 0)
		return -1;
	if (cfg->spf.timeout >= room)
		return px_cfg_fail(
		    e, config_setting_get_member(g, "timeout"),
		    "spf.timeout (%.1f) plus dns.timeout must be "
		    "less than timeouts.filter (%.1f)",
		    cfg->spf.timeout, cfg->timeouts.filter);
	return 0;
}

int
px_cfg_auth(struct px_cfgerr *e, struct px_config *cfg,
            const config_setting_t *root)
{
	if (px_cfg_spf(e, cfg, root) < 0 || px_cfg_dmarc(e, cfg, root) < 0)
		return -1;
	return px_cfg_dkim(e, cfg, root,
	                   cfg->timeouts.filter - cfg->dns.timeout);
}
