/* SPDX-License-Identifier: MIT */
/*
 * config_priv.h - the helpers config.c checks settings with, shared by the
 * files that parse one section each (config_state.c, ...).  Each helper
 * leaves the default in *out when the setting is absent and returns -1 with
 * "FILE:LINE: message" in *e->error_r when it is wrong.
 */
#ifndef MX_CONFIG_PRIV_H
#define MX_CONFIG_PRIV_H

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct px_cfgerr {
	const char *file;
	char **error_r;
};

int px_cfg_fail(struct px_cfgerr *e, const config_setting_t *s, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));
bool px_in_list(const char *name, const char *const *list);
/* px_cfg_check_keys - group must be a group and its members in names. */
int px_cfg_check_keys(struct px_cfgerr *e, const config_setting_t *group,
                      const char *gname, const char *const *names);
int px_cfg_string(struct px_cfgerr *e, const config_setting_t *parent,
                  const char *name, char **out, bool required);
int px_cfg_double(struct px_cfgerr *e, const config_setting_t *parent,
                  const char *name, double *out, double min, double max);
int px_cfg_uint(struct px_cfgerr *e, const config_setting_t *parent,
                const char *name, unsigned long long *out,
                unsigned long long min, unsigned long long max);
int px_cfg_unsigned(struct px_cfgerr *e, const config_setting_t *parent,
                    const char *name, unsigned *out, unsigned min,
                    unsigned max);
int px_cfg_bool(struct px_cfgerr *e, const config_setting_t *parent,
                const char *name, bool *out);
/* px_cfg_strings - a string or a list of strings, appended to *out. */
int px_cfg_strings(struct px_cfgerr *e, const config_setting_t *parent,
                   const char *name, char ***out, size_t *n_r);
void px_strv_free(char **v, size_t n);

/* config_state.c: store, greylist, reputation, ratelimit. */
void px_cfg_state_defaults(struct px_config *cfg);
int px_cfg_state(struct px_cfgerr *e, struct px_config *cfg,
                 const config_setting_t *root);
void px_cfg_state_free(struct px_config *cfg);

/* config_ops.c: log { target; facility; level; }, log_level, and
 * metrics { address; password; }. */
int px_cfg_log(struct px_cfgerr *e, struct px_config *cfg,
               const config_setting_t *root);
int px_cfg_metrics(struct px_cfgerr *e, struct px_config *cfg,
                   const config_setting_t *root);
void px_cfg_metrics_free(struct px_config *cfg);

/* config_esmtp.c: etrn. */
void px_cfg_esmtp_defaults(struct px_config *cfg);
int px_cfg_esmtp(struct px_cfgerr *e, struct px_config *cfg,
                 const config_setting_t *root);

/* config_auth.c: spf (and later dkim, dmarc). */
void px_cfg_auth_defaults(struct px_config *cfg);
int px_cfg_auth(struct px_cfgerr *e, struct px_config *cfg,
                const config_setting_t *root);

/* config_relay.c: accepted_domains, accepted_domains_file (after
 * accepted_domains and relay_networks are read). */
int px_cfg_relay(struct px_cfgerr *e, struct px_config *cfg,
                 const config_setting_t *root);
void px_cfg_relay_free(struct px_config *cfg);

/* config_tls.c: a listener's tls = { } group (g may be NULL). */
int px_cfg_listen_tls(struct px_cfgerr *e, struct px_listen *l,
                      const config_setting_t *g);
void px_cfg_listen_tls_free(struct px_listen *l);
/* config_tls.c: backend_tls = { }. */
int px_cfg_backend_tls(struct px_cfgerr *e, struct px_config *cfg,
                       const config_setting_t *root);
void px_cfg_backend_tls_free(struct px_config *cfg);

/* config_rules.c: rules (compiled into cfg->ruleset), subject_prefix. */
int px_cfg_rules(struct px_cfgerr *e, struct px_config *cfg,
                 const config_setting_t *root);
void px_cfg_rules_free(struct px_config *cfg);

#endif
