/* SPDX-License-Identifier: MIT */
/*
 * config_state.c - the settings of the store and of what keeps state in it:
 * store_prefix, store_memory_max, on_store_error, control_socket,
 * debug_clock, timeouts.store, greylist { }, reputation { }, ratelimit ( ).
 *
 * Defaults are postgrey's where it has one (delay 300 s, retry window
 * 2 days, passed triplets kept 36 days, auto-whitelist after 5 deliveries,
 * client network /24).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_priv.h"

void
px_cfg_state_defaults(struct px_config *cfg)
{
	cfg->store_prefix = px_strdup("mxg:");
	cfg->store_memory_max = 64u << 20;
	cfg->on_store_error = PX_STORE_ERROR_PASS;
	cfg->store_timeout = 1.0;
	cfg->greylist.enabled = false;
	cfg->greylist.delay = 300;
	cfg->greylist.retry_window = 2 * 86400;
	cfg->greylist.pass_ttl = 36 * 86400;
	cfg->greylist.auto_whitelist_after = 5;
	cfg->greylist.ipv4_prefix = 24;
	cfg->greylist.ipv6_prefix = 64;
	cfg->greylist.spf_domain = true;
	cfg->greylist.skip_dnswl = true;
	cfg->greylist.skip_good_reputation = true;
	cfg->reputation.enabled = false;
	cfg->reputation.half_life = 7 * 86400;
	cfg->reputation.ttl = 90 * 86400;
	cfg->reputation.min_messages = 5;
	cfg->reputation.bad_ratio = 0.7;
	cfg->reputation.good_ratio = 0.95;
	cfg->reputation.score_bad = 3.0;
	cfg->reputation.score_good = -2.0;
}

void
px_cfg_state_free(struct px_config *cfg)
{
	free(cfg->store_prefix);
	free(cfg->control_socket);
	free(cfg->greylist.whitelist_clients);
	px_strv_free(cfg->greylist.whitelist_client_names,
	             cfg->greylist.nwhitelist_client_names);
	px_strv_free(cfg->greylist.whitelist_senders,
	             cfg->greylist.nwhitelist_senders);
	px_strv_free(cfg->greylist.whitelist_recipients,
	             cfg->greylist.nwhitelist_recipients);
	for (size_t i = 0; i < cfg->nratelimit; i++)
		free(cfg->ratelimit[i].name);
	free(cfg->ratelimit);
}

/* Lower-case in place: whitelisted names compare case-insensitively. */
static void
px_strv_lower(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (char *p = v[i]; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
}

static int
px_cfg_greylist(struct px_cfgerr *e, struct px_config *cfg,
                const config_setting_t *g)
{
	static const char *const keys[] = {"enabled",
	                                   "delay",
	                                   "retry_window",
	                                   "pass_ttl",
	                                   "auto_whitelist_after",
	                                   "ipv4_prefix",
	                                   "ipv6_prefix",
	                                   "spf_domain",
	                                   "skip_dnswl",
	                                   "skip_good_reputation",
	                                   "whitelist_clients",
	                                   "whitelist_client_names",
	                                   "whitelist_senders",
	                                   "whitelist_recipients",
	                                   NULL};
	char **nets = NULL;
	size_t nnets = 0;
	const char *err;

	cfg->greylist.enabled = true; /* a greylist group turns it on */
	if (px_cfg_check_keys(e, g, "greylist", keys) < 0 ||
	    px_cfg_bool(e, g, "enabled", &cfg->greylist.enabled) < 0 ||
	    px_cfg_unsigned(e, g, "delay", &cfg->greylist.delay, 0, 86400) <
	        0 ||
	    px_cfg_unsigned(e, g, "retry_window", &cfg->greylist.retry_window,
	                    60, 90 * 86400) < 0 ||
	    px_cfg_unsigned(e, g, "pass_ttl", &cfg->greylist.pass_ttl, 60,
	                    3650 * 86400) < 0 ||
	    px_cfg_unsigned(e, g, "auto_whitelist_after",
	                    &cfg->greylist.auto_whitelist_after, 0,
	                    1000000) < 0 ||
	    px_cfg_unsigned(e, g, "ipv4_prefix", &cfg->greylist.ipv4_prefix, 8,
	                    32) < 0 ||
	    px_cfg_unsigned(e, g, "ipv6_prefix", &cfg->greylist.ipv6_prefix, 16,
	                    128) < 0 ||
	    px_cfg_bool(e, g, "spf_domain", &cfg->greylist.spf_domain) < 0 ||
	    px_cfg_bool(e, g, "skip_dnswl", &cfg->greylist.skip_dnswl) < 0 ||
	    px_cfg_bool(e, g, "skip_good_reputation",
	                &cfg->greylist.skip_good_reputation) < 0 ||
	    px_cfg_strings(e, g, "whitelist_client_names",
	                   &cfg->greylist.whitelist_client_names,
	                   &cfg->greylist.nwhitelist_client_names) < 0 ||
	    px_cfg_strings(e, g, "whitelist_senders",
	                   &cfg->greylist.whitelist_senders,
	                   &cfg->greylist.nwhitelist_senders) < 0 ||
	    px_cfg_strings(e, g, "whitelist_recipients",
	                   &cfg->greylist.whitelist_recipients,
	                   &cfg->greylist.nwhitelist_recipients) < 0 ||
	    px_cfg_strings(e, g, "whitelist_clients", &nets, &nnets) < 0) {
		px_strv_free(nets, nnets);
		return -1;
	}
	if (cfg->greylist.delay >= cfg->greylist.retry_window) {
		px_strv_free(nets, nnets);
		return px_cfg_fail(e, config_setting_get_member(g, "delay"),
		                   "greylist delay must be shorter than "
		                   "retry_window");
	}
	px_strv_lower(cfg->greylist.whitelist_client_names,
	              cfg->greylist.nwhitelist_client_names);
	px_strv_lower(cfg->greylist.whitelist_senders,
	              cfg->greylist.nwhitelist_senders);
	px_strv_lower(cfg->greylist.whitelist_recipients,
	              cfg->greylist.nwhitelist_recipients);
	cfg->greylist.whitelist_clients =
	    px_calloc(nnets + 1, sizeof(struct px_cidr));
	for (size_t i = 0; i < nnets; i++) {
		if (px_cidr_parse(nets[i], &cfg->greylist.whitelist_clients[i],
		                  &err) < 0) {
			px_cfg_fail(
			    e,
			    config_setting_get_member(g, "whitelist_clients"),
			    "whitelist_clients \"%s\": %s", nets[i], err);
			px_strv_free(nets, nnets);
			return -1;
		}
		cfg->greylist.nwhitelist_clients++;
	}
	px_strv_free(nets, nnets);
	return 0;
}

static int
px_cfg_reputation(struct px_cfgerr *e, struct px_config *cfg,
                  const config_setting_t *g)
{
	static const char *const keys[] = {
	    "enabled",      "half_life",  "ttl",
	    "min_messages", "bad_ratio",  "good_ratio",
	    "score_bad",    "score_good", NULL};

	cfg->reputation.enabled = true;
	if (px_cfg_check_keys(e, g, "reputation", keys) < 0 ||
	    px_cfg_bool(e, g, "enabled", &cfg->reputation.enabled) < 0 ||
	    px_cfg_unsigned(e, g, "half_life", &cfg->reputation.half_life, 60,
	                    3650 * 86400) < 0 ||
	    px_cfg_unsigned(e, g, "ttl", &cfg->reputation.ttl, 60,
	                    3650 * 86400) < 0 ||
	    px_cfg_unsigned(e, g, "min_messages", &cfg->reputation.min_messages,
	                    1, 1000000) < 0 ||
	    px_cfg_double(e, g, "bad_ratio", &cfg->reputation.bad_ratio, 0, 1) <
	        0 ||
	    px_cfg_double(e, g, "good_ratio", &cfg->reputation.good_ratio, 0,
	                  1) < 0 ||
	    px_cfg_double(e, g, "score_bad", &cfg->reputation.score_bad, -1000,
	                  1000) < 0 ||
	    px_cfg_double(e, g, "score_good", &cfg->reputation.score_good,
	                  -1000, 1000) < 0)
		return -1;
	return 0;
}

static bool
px_symbol_valid(const char *s)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_'))
			return false;
	return n > 0 && n < 48;
}

/* px_cfg_pick - *out = the index of the string setting name in words. */
static int
px_cfg_pick(struct px_cfgerr *e, const config_setting_t *g, const char *name,
            const char *const *words, const char *expect, int *out)
{
	char *v = NULL;

	if (px_cfg_string(e, g, name, &v, true) < 0)
		return -1;
	for (int i = 0; words[i] != NULL; i++) {
		if (strcmp(v, words[i]) == 0) {
			free(v);
			*out = i;
			return 0;
		}
	}
	free(v);
	return px_cfg_fail(e, config_setting_get_member(g, name),
	                   "%s must be %s", name, expect);
}

static int
px_cfg_ratelimits(struct px_cfgerr *e, struct px_config *cfg,
                  const config_setting_t *list)
{
	static const char *const keys[] = {"name",   "what",  "per",   "limit",
	                                   "period", "reply", "score", NULL};
	static const char *const whats[] = {"connections", "messages",
	                                    "recipients", NULL};
	static const char *const pers[] = {"client_ip", "client_net", "sender",
	                                   "sender_domain", NULL};
	int n;

	if (!config_setting_is_list(list))
		return px_cfg_fail(e, list,
		                   "ratelimit must be a list ( { ... }, ... )");
	n = config_setting_length(list);
	cfg->ratelimit = px_calloc((size_t)n + 1, sizeof(*cfg->ratelimit));
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(list, i);
		struct px_ratelimit *rl = &cfg->ratelimit[i];
		unsigned reply = 451;
		int what = 0, per = 0;

		cfg->nratelimit++;
		rl->score = 0;
		if (px_cfg_check_keys(e, g, "ratelimit", keys) < 0 ||
		    px_cfg_string(e, g, "name", &rl->name, true) < 0 ||
		    px_cfg_pick(e, g, "what", whats,
		                "\"connections\", \"messages\" or "
		                "\"recipients\"",
		                &what) < 0 ||
		    px_cfg_pick(e, g, "per", pers,
		                "\"client_ip\", \"client_net\", \"sender\" or "
		                "\"sender_domain\"",
		                &per) < 0 ||
		    px_cfg_unsigned(e, g, "limit", &rl->limit, 1, 100000000) <
		        0 ||
		    px_cfg_unsigned(e, g, "period", &rl->period, 1,
		                    365 * 86400) < 0 ||
		    px_cfg_unsigned(e, g, "reply", &reply, 421, 451) < 0 ||
		    px_cfg_double(e, g, "score", &rl->score, -1000, 1000) < 0)
			return -1;
		if (config_setting_get_member(g, "limit") == NULL ||
		    config_setting_get_member(g, "period") == NULL)
			return px_cfg_fail(e, g,
			                   "ratelimit \"%s\" needs limit and "
			                   "period",
			                   rl->name);
		if (!px_symbol_valid(rl->name))
			return px_cfg_fail(
			    e, config_setting_get_member(g, "name"),
			    "ratelimit name \"%s\" must be a symbol "
			    "([A-Z0-9_], up to 47)",
			    rl->name);
		if (reply != 421 && reply != 451)
			return px_cfg_fail(
			    e, config_setting_get_member(g, "reply"),
			    "reply must be 421 or 451");
		rl->what = (enum px_rl_what)what;
		rl->per = (enum px_rl_per)per;
		rl->reply = (int)reply;
		if (rl->what == PX_RL_CONNECTIONS &&
		    (rl->per == PX_RL_SENDER || rl->per == PX_RL_SENDER_DOMAIN))
			return px_cfg_fail(
			    e, config_setting_get_member(g, "per"),
			    "connections are counted per client_ip or "
			    "client_net (there is no sender at connect)");
		for (size_t j = 0; j + 1 < cfg->nratelimit; j++)
			if (strcmp(cfg->ratelimit[j].name, rl->name) == 0)
				return px_cfg_fail(
				    e, config_setting_get_member(g, "name"),
				    "ratelimit \"%s\" defined twice", rl->name);
	}
	return 0;
}

int
px_cfg_state(struct px_cfgerr *e, struct px_config *cfg,
             const config_setting_t *root)
{
	const config_setting_t *g;
	unsigned long long mm = cfg->store_memory_max;
	char *on_err = NULL;

	if (px_cfg_string(e, root, "store_prefix", &cfg->store_prefix, false) <
	        0 ||
	    px_cfg_uint(e, root, "store_memory_max", &mm, 1u << 20,
	                1ULL << 40) < 0 ||
	    px_cfg_string(e, root, "on_store_error", &on_err, false) < 0 ||
	    px_cfg_string(e, root, "control_socket", &cfg->control_socket,
	                  false) < 0 ||
	    px_cfg_bool(e, root, "debug_clock", &cfg->debug_clock) < 0 ||
	    px_cfg_double(e, config_setting_get_member(root, "timeouts"),
	                  "store", &cfg->store_timeout, 0.01, 60) < 0) {
		free(on_err);
		return -1;
	}
	cfg->store_memory_max = (size_t)mm;
	if (on_err != NULL) {
		if (strcmp(on_err, "tempfail") == 0)
			cfg->on_store_error = PX_STORE_ERROR_TEMPFAIL;
		else if (strcmp(on_err, "pass") != 0) {
			free(on_err);
			return px_cfg_fail(
			    e,
			    config_setting_get_member(root, "on_store_error"),
			    "on_store_error must be \"pass\" or \"tempfail\"");
		}
		free(on_err);
	}
	if (strlen(cfg->store_prefix) > 64 || strchr(cfg->store_prefix, ' '))
		return px_cfg_fail(
		    e, config_setting_get_member(root, "store_prefix"),
		    "store_prefix must be at most 64 characters, no spaces");
	if ((g = config_setting_get_member(root, "greylist")) != NULL &&
	    px_cfg_greylist(e, cfg, g) < 0)
		return -1;
	if ((g = config_setting_get_member(root, "reputation")) != NULL &&
	    px_cfg_reputation(e, cfg, g) < 0)
		return -1;
	if ((g = config_setting_get_member(root, "ratelimit")) != NULL &&
	    px_cfg_ratelimits(e, cfg, g) < 0)
		return -1;
	return 0;
}
