/* SPDX-License-Identifier: MIT */
/*
 * config_rules.c - the rule engine's settings: `rules = [ globs ]` (read
 * by config.c into cfg->rules) compiled here into cfg->ruleset, and
 * `subject_prefix`.
 *
 * The compiled set lives and dies with the config (process lifetime,
 * refcounted): a SIGHUP reload compiles a new set with the new config and
 * swaps both at once; a rule file that does not compile fails the load
 * with its "FILE:LINE: reason", so the running config (and its rules) stay
 * and `mxguard -t` reports it.  Rule globs are relative to the config
 * file's directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_priv.h"
#include "rule.h"

int
px_cfg_rules(struct px_cfgerr *e, struct px_config *cfg,
             const config_setting_t *root)
{
	char *dir, *slash;
	int rc;

	if (px_cfg_string(e, root, "subject_prefix", &cfg->subject_prefix,
	                  false) < 0)
		return -1;
	if (cfg->subject_prefix != NULL) {
		for (const char *c = cfg->subject_prefix; *c; c++)
			if ((unsigned char)*c < ' ' || *c == 0x7f)
				return px_cfg_fail(
				    e,
				    config_setting_get_member(root,
				                              "subject_prefix"),
				    "subject_prefix must not hold control "
				    "characters");
	}
	dir = px_strdup(cfg->path);
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	rc = rule_set_load((const char *const *)cfg->rules, cfg->nrules,
	                   slash != NULL ? dir : NULL, &cfg->ruleset,
	                   e->error_r);
	free(dir);
	return rc;
}

void
px_cfg_rules_free(struct px_config *cfg)
{
	rule_set_free(&cfg->ruleset);
	free(cfg->subject_prefix);
}
