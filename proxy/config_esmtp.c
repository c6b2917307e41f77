/* SPDX-License-Identifier: MIT */
/*
 * config_esmtp.c - the settings of the SMTP extensions beyond the core
 * dialogue:
 *   etrn = "off" | "relay";   ETRN (RFC 1985) passed to the backend for
 *                             clients in relay_networks ("relay"), or
 *                             refused with 502 5.5.1 ("off", the default)
 *   eom_budget = 30;          seconds from the end of data (the final dot
 *                             or BDAT LAST) within which the end-of-data
 *                             checks must answer; a check still running
 *                             then is cut short like one at
 *                             timeouts.filter (the smaller of the two)
 *   backend_chunking = true;  messages go to a backend that advertises
 *                             CHUNKING as BDAT chunks (RFC 3030); false:
 *                             always DATA (and BINARYMIME is not offered)
 * Read at startup and on every reload.
 */
#include <stdlib.h>
#include <string.h>

#include "config_priv.h"

void
px_cfg_esmtp_defaults(struct px_config *cfg)
{
	cfg->etrn = PX_ETRN_OFF;
	cfg->eom_budget = 30;
	cfg->backend_chunking = true;
}

int
px_cfg_esmtp(struct px_cfgerr *e, struct px_config *cfg,
             const config_setting_t *root)
{
	const config_setting_t *s = config_setting_get_member(root, "etrn");
	const char *v;

	if (px_cfg_double(e, root, "eom_budget", &cfg->eom_budget, 0.1, 3600) <
	    0)
		return -1;
	if (px_cfg_bool(e, root, "backend_chunking", &cfg->backend_chunking) <
	    0)
		return -1;
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return px_cfg_fail(e, s, "etrn must be \"off\" or \"relay\"");
	v = config_setting_get_string(s);
	if (strcmp(v, "relay") == 0)
		cfg->etrn = PX_ETRN_RELAY;
	else if (strcmp(v, "off") == 0)
		cfg->etrn = PX_ETRN_OFF;
	else
		return px_cfg_fail(
		    e, s, "etrn must be \"off\" or \"relay\", not \"%s\"", v);
	return 0;
}
