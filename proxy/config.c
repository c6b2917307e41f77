/* SPDX-License-Identifier: MIT */
/*
 * config.c - load and check the configuration file.
 *
 * px_config_load() reads a libconfig file, checks every key against the
 * table of known settings (a misspelt key is an error, not a silent
 * default), fills struct px_config, and reports the first problem as
 * "FILE:LINE: message" so `mxguard -t` output points the operator at the
 * line.  px_config_ref()/px_config_unref() count references;
 * px_config_current()/px_config_set_current() hold the process-wide current
 * config that new sessions take.
 *
 * Lifetime: process.  A config is never changed after load; a reload loads
 * a new one and swaps the current pointer.
 */
#include "config.h"

#include <libconfig.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config_priv.h"

/* Top-level settings this build knows, and those later checks will read
 * (accepted and ignored, so a config written for a newer mxguard still
 * loads). */
static const char *const px_known_keys[] = {
    "hostname",
    "listen",
    "backend",
    "store",
    "accepted_domains",
    "relay_networks",
    "rules",
    "user",
    "group",
    "loops",
    "workers",
    "greet_delay",
    "pregreet",
    "limits",
    "timeouts",
    "spool",
    "actions",
    "soft_bounce",
    "log_level",
    "log",
    "backend_pool",
    "dns",
    "dnsbl",
    "dnsbl_threshold",
    "rhsbl",
    "fcrdns",
    "store_prefix",
    "store_memory_max",
    "on_store_error",
    "control_socket",
    "debug_clock",
    "greylist",
    "spf",
    "dkim",
    "dmarc",
    "reputation",
    "ratelimit",
    "metrics",
    "uribl",
    "recipients_file",
    "recipients_redis",
    "accepted_domains_file",
    "backend_tls",
    "sender_login_match",
    "routes",
    "subject_prefix",
    "etrn",
    "eom_budget",
    "backend_chunking",
    NULL,
};
static const char *const px_future_keys[] = {
    "dnswl", "tls", "auth", "helo", NULL,
};

/* px_cfg_fail - format "FILE:LINE: message" for setting s (or the file). */
int
px_cfg_fail(struct px_cfgerr *e, const config_setting_t *s, const char *fmt,
            ...)
{
	char msg[512];
	const char *file = e->file;
	unsigned line = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s != NULL) {
		line = config_setting_source_line(s);
		if (config_setting_source_file(s) != NULL)
			file = config_setting_source_file(s);
	}
	size_t n = strlen(file) + strlen(msg) + 32;
	*e->error_r = px_malloc(n);
	snprintf(*e->error_r, n, "%s:%u: %s", file, line, msg);
	return -1;
}

void
px_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

bool
px_in_list(const char *name, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

/* px_cfg_check_keys - every member of group must be one of names. */
int
px_cfg_check_keys(struct px_cfgerr *e, const config_setting_t *group,
                  const char *gname, const char *const *names)
{
	int n = config_setting_length(group);

	if (!config_setting_is_group(group))
		return px_cfg_fail(e, group, "\"%s\" must be a group { ... }",
		                   gname);
	for (int i = 0; i < n; i++) {
		config_setting_t *m = config_setting_get_elem(group, i);
		const char *name = config_setting_name(m);

		if (name != NULL && !px_in_list(name, names))
			return px_cfg_fail(e, m, "unknown setting \"%s\" in %s",
			                   name, gname);
	}
	return 0;
}

int
px_cfg_string(struct px_cfgerr *e, const config_setting_t *parent,
              const char *name, char **out, bool required)
{
	config_setting_t *s = config_setting_get_member(parent, name);

	if (s == NULL) {
		if (required)
			return px_cfg_fail(
			    e, parent, "missing required setting \"%s\"", name);
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return px_cfg_fail(e, s, "\"%s\" must be a string", name);
	free(*out);
	*out = px_strdup(config_setting_get_string(s));
	return 0;
}

int
px_cfg_double(struct px_cfgerr *e, const config_setting_t *parent,
              const char *name, double *out, double min, double max)
{
	config_setting_t *s;
	double v;

	if (parent == NULL ||
	    (s = config_setting_get_member(parent, name)) == NULL)
		return 0;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		v = (double)config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		break;
	default:
		return px_cfg_fail(e, s, "\"%s\" must be a number", name);
	}
	if (v < min || v > max)
		return px_cfg_fail(e, s, "\"%s\" must be between %g and %g",
		                   name, min, max);
	*out = v;
	return 0;
}

int
px_cfg_uint(struct px_cfgerr *e, const config_setting_t *parent,
            const char *name, unsigned long long *out, unsigned long long min,
            unsigned long long max)
{
	config_setting_t *s;
	long long v;

	if (parent == NULL ||
	    (s = config_setting_get_member(parent, name)) == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return px_cfg_fail(e, s, "\"%s\" must be a whole number", name);
	v = config_setting_get_int64(s);
	if (v < 0 || (unsigned long long)v < min || (unsigned long long)v > max)
		return px_cfg_fail(e, s, "\"%s\" must be between %llu and %llu",
		                   name, min, max);
	*out = (unsigned long long)v;
	return 0;
}

int
px_cfg_unsigned(struct px_cfgerr *e, const config_setting_t *parent,
                const char *name, unsigned *out, unsigned min, unsigned max)
{
	unsigned long long v = *out;

	if (px_cfg_uint(e, parent, name, &v, min, max) < 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int
px_cfg_bool(struct px_cfgerr *e, const config_setting_t *parent,
            const char *name, bool *out)
{
	config_setting_t *s;

	if (parent == NULL ||
	    (s = config_setting_get_member(parent, name)) == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return px_cfg_fail(e, s, "\"%s\" must be true or false", name);
	*out = config_setting_get_bool(s);
	return 0;
}

/* px_cfg_strings - a string or an array/list of strings. */
int
px_cfg_strings(struct px_cfgerr *e, const config_setting_t *root,
               const char *name, char ***out, size_t *n_r)
{
	config_setting_t *s = config_setting_get_member(root, name);
	int n;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		*out = px_calloc(1, sizeof(char *));
		(*out)[0] = px_strdup(config_setting_get_string(s));
		*n_r = 1;
		return 0;
	}
	if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
		return px_cfg_fail(e, s, "\"%s\" must be a list of strings",
		                   name);
	n = config_setting_length(s);
	*out = px_calloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++) {
		config_setting_t *m = config_setting_get_elem(s, i);

		if (config_setting_type(m) != CONFIG_TYPE_STRING)
			return px_cfg_fail(e, m, "\"%s\" must hold strings",
			                   name);
		(*out)[i] = px_strdup(config_setting_get_string(m));
		(*n_r)++;
	}
	return 0;
}

static bool
px_hostname_valid(const char *h)
{
	size_t len = strlen(h), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (const char *p = h; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-') ||
		    ++label > 63)
			return false;
	}
	return label > 0;
}

static int px_cfg_dnslists(struct px_cfgerr *e, const config_setting_t *root,
                           const char *name, struct px_dnslist **out,
                           size_t *n_r);
static int px_cfg_dns(struct px_cfgerr *e, struct px_config *cfg,
                      const config_setting_t *root);

static int
px_cfg_listen(struct px_cfgerr *e, struct px_config *cfg,
              const config_setting_t *root)
{
	static const char *const keys[] = {"address", "mode", "proxy_protocol",
	                                   "tls", NULL};
	config_setting_t *ls = config_setting_get_member(root, "listen");
	int n;

	if (ls == NULL)
		return px_cfg_fail(e, NULL,
		                   "missing required setting \"listen\"");
	if (!config_setting_is_list(ls) && !config_setting_is_array(ls))
		return px_cfg_fail(
		    e, ls,
		    "\"listen\" must be a list ( { address = ...; }, ... )");
	n = config_setting_length(ls);
	if (n == 0)
		return px_cfg_fail(e, ls, "\"listen\" is empty");
	cfg->listen = px_calloc((size_t)n, sizeof(*cfg->listen));
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(ls, i);
		struct px_listen *l = &cfg->listen[i];
		char *mode = NULL;
		const char *err;

		cfg->nlisten++;
		if (px_cfg_check_keys(e, g, "listen", keys) < 0 ||
		    px_cfg_string(e, g, "address", &l->address, true) < 0 ||
		    px_cfg_string(e, g, "mode", &mode, false) < 0 ||
		    px_cfg_bool(e, g, "proxy_protocol", &l->proxy_protocol) <
		        0) {
			free(mode);
			return -1;
		}
		if (mode == NULL || strcmp(mode, "mx") == 0) {
			l->mode = PX_MODE_MX;
		} else if (strcmp(mode, "submission") == 0) {
			l->mode = PX_MODE_SUBMISSION;
		} else {
			free(mode);
			return px_cfg_fail(
			    e, config_setting_get_member(g, "mode"),
			    "mode must be \"mx\" or \"submission\"");
		}
		free(mode);
		if (px_addr_parse(l->address, false, &l->addr, &l->addrlen,
		                  &err) < 0)
			return px_cfg_fail(
			    e, config_setting_get_member(g, "address"),
			    "listen address \"%s\": %s", l->address, err);
		if (px_cfg_listen_tls(e, l,
		                      config_setting_get_member(g, "tls")) < 0)
			return -1;
		for (int j = 0; j < i; j++)
			if (strcmp(cfg->listen[j].address, l->address) == 0)
				return px_cfg_fail(
				    e, g, "listen address \"%s\" given twice",
				    l->address);
	}
	return 0;
}

static int
px_cfg_fill(struct px_cfgerr *e, struct px_config *cfg, config_t *lc)
{
	static const char *const limit_keys[] = {
	    "message_size",
	    "recipients",
	    "line_length",
	    "connections",
	    "connections_per_ip",
	    "errors",
	    "unknown_recipients",
	    "unknown_recipients_per_client",
	    "unknown_recipients_window",
	    NULL};
	static const char *const timeout_keys[] = {
	    "command",  "data_block", "data_done", "backend",
	    "shutdown", "filter",     "store",     NULL};
	static const char *const spool_keys[] = {"dir", "memory_max", NULL};
	static const char *const action_keys[] = {"tag", "tempfail", "reject",
	                                          NULL};
	static const char *const pregreet_keys[] = {"action", "score", NULL};
	static const char *const pool_keys[] = {"max_idle", "idle_timeout",
	                                        NULL};
	config_setting_t *root = config_root_setting(lc);
	config_setting_t *g;
	const char *err;

	for (int i = 0; i < config_setting_length(root); i++) {
		config_setting_t *m = config_setting_get_elem(root, i);
		const char *name = config_setting_name(m);

		if (px_in_list(name, px_known_keys))
			continue;
		if (px_in_list(name, px_future_keys))
			continue;
		return px_cfg_fail(e, m, "unknown setting \"%s\"", name);
	}

	if (px_cfg_string(e, root, "hostname", &cfg->hostname, false) < 0)
		return -1;
	if (cfg->hostname == NULL) {
		char host[256];

		if (gethostname(host, sizeof(host) - 1) < 0)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		cfg->hostname = px_strdup(host);
	} else if (!px_hostname_valid(cfg->hostname)) {
		return px_cfg_fail(
		    e, config_setting_get_member(root, "hostname"),
		    "hostname \"%s\" is not a valid host name", cfg->hostname);
	}
	if (px_cfg_listen(e, cfg, root) < 0)
		return -1;
	if (px_cfg_string(e, root, "backend", &cfg->backend_str, true) < 0)
		return -1;
	if (px_addr_parse(cfg->backend_str, true, &cfg->backend,
	                  &cfg->backend_len, &err) < 0)
		return px_cfg_fail(e,
		                   config_setting_get_member(root, "backend"),
		                   "backend \"%s\": %s", cfg->backend_str, err);
	if (px_cfg_string(e, root, "store", &cfg->store, false) < 0)
		return -1;
	if (strcmp(cfg->store, "memory") != 0 &&
	    strncmp(cfg->store, "redis://", 8) != 0 &&
	    strncmp(cfg->store, "redis+sentinel://", 17) != 0)
		return px_cfg_fail(
		    e, config_setting_get_member(root, "store"),
		    "store must be \"memory\", \"redis://...\" or "
		    "\"redis+sentinel://...\"");
	if (px_cfg_strings(e, root, "accepted_domains", &cfg->accepted_domains,
	                   &cfg->naccepted_domains) < 0 ||
	    px_cfg_strings(e, root, "rules", &cfg->rules, &cfg->nrules) < 0 ||
	    px_cfg_string(e, root, "user", &cfg->user, false) < 0 ||
	    px_cfg_string(e, root, "group", &cfg->group, false) < 0 ||
	    px_cfg_unsigned(e, root, "loops", &cfg->loops, 0, 256) < 0 ||
	    px_cfg_unsigned(e, root, "workers", &cfg->workers, 1, 256) < 0 ||
	    px_cfg_double(e, root, "greet_delay", &cfg->greet_delay, 0, 60) <
	        0 ||
	    px_cfg_bool(e, root, "soft_bounce", &cfg->soft_bounce) < 0)
		return -1;

	char **nets = NULL;
	size_t nnets = 0;

	if (px_cfg_strings(e, root, "relay_networks", &nets, &nnets) < 0)
		return -1;
	cfg->relay_networks = px_calloc(nnets, sizeof(struct px_cidr));
	for (size_t i = 0; i < nnets; i++) {
		if (px_cidr_parse(nets[i], &cfg->relay_networks[i], &err) < 0) {
			px_cfg_fail(
			    e,
			    config_setting_get_member(root, "relay_networks"),
			    "relay_networks \"%s\": %s", nets[i], err);
			px_strv_free(nets, nnets);
			return -1;
		}
		cfg->nrelay_networks++;
	}
	px_strv_free(nets, nnets);
	if (px_cfg_relay(e, cfg, root) < 0 ||
	    px_cfg_backend_tls(e, cfg, root) < 0)
		return -1;

	if ((g = config_setting_get_member(root, "pregreet")) != NULL) {
		char *action = NULL;

		if (px_cfg_check_keys(e, g, "pregreet", pregreet_keys) < 0 ||
		    px_cfg_string(e, g, "action", &action, false) < 0 ||
		    px_cfg_double(e, g, "score", &cfg->pregreet_score, -1000,
		                  1000) < 0) {
			free(action);
			return -1;
		}
		if (action == NULL || strcmp(action, "score") == 0) {
			cfg->pregreet_action = PX_PREGREET_SCORE;
		} else if (strcmp(action, "reject") == 0) {
			cfg->pregreet_action = PX_PREGREET_REJECT;
		} else {
			free(action);
			return px_cfg_fail(
			    e, config_setting_get_member(g, "action"),
			    "pregreet action must be \"reject\" or \"score\"");
		}
		free(action);
	}

	if ((g = config_setting_get_member(root, "limits")) != NULL &&
	    (px_cfg_check_keys(e, g, "limits", limit_keys) < 0 ||
	     px_cfg_uint(e, g, "message_size", &cfg->limits.message_size, 1024,
	                 1ULL << 40) < 0 ||
	     px_cfg_unsigned(e, g, "recipients", &cfg->limits.recipients, 1,
	                     100000) < 0 ||
	     px_cfg_unsigned(e, g, "line_length", &cfg->limits.line_length, 512,
	                     1 << 20) < 0 ||
	     px_cfg_unsigned(e, g, "connections", &cfg->limits.connections, 1,
	                     1000000) < 0 ||
	     px_cfg_unsigned(e, g, "connections_per_ip",
	                     &cfg->limits.connections_per_ip, 1, 1000000) < 0 ||
	     px_cfg_unsigned(e, g, "errors", &cfg->limits.errors, 1, 10000) <
	         0 ||
	     px_cfg_unsigned(e, g, "unknown_recipients",
	                     &cfg->limits.unknown_recipients, 1, 100000) < 0 ||
	     px_cfg_unsigned(e, g, "unknown_recipients_per_client",
	                     &cfg->limits.unknown_recipients_per_client, 0,
	                     1000000) < 0 ||
	     px_cfg_unsigned(e, g, "unknown_recipients_window",
	                     &cfg->limits.unknown_recipients_window, 1,
	                     30 * 86400) < 0))
		return -1;

	if ((g = config_setting_get_member(root, "timeouts")) != NULL &&
	    (px_cfg_check_keys(e, g, "timeouts", timeout_keys) < 0 ||
	     px_cfg_double(e, g, "command", &cfg->timeouts.command, 0.1,
	                   86400) < 0 ||
	     px_cfg_double(e, g, "data_block", &cfg->timeouts.data_block, 0.1,
	                   86400) < 0 ||
	     px_cfg_double(e, g, "data_done", &cfg->timeouts.data_done, 0.1,
	                   86400) < 0 ||
	     px_cfg_double(e, g, "backend", &cfg->timeouts.backend, 0.1,
	                   86400) < 0 ||
	     px_cfg_double(e, g, "shutdown", &cfg->timeouts.shutdown, 0,
	                   86400) < 0 ||
	     px_cfg_double(e, g, "filter", &cfg->timeouts.filter, 0.1, 86400) <
	         0))
		return -1;

	if ((g = config_setting_get_member(root, "spool")) != NULL) {
		unsigned long long mm = cfg->spool.memory_max;

		if (px_cfg_check_keys(e, g, "spool", spool_keys) < 0 ||
		    px_cfg_string(e, g, "dir", &cfg->spool.dir, false) < 0 ||
		    px_cfg_uint(e, g, "memory_max", &mm, 0, 1ULL << 32) < 0)
			return -1;
		cfg->spool.memory_max = (size_t)mm;
	}
	if (access(cfg->spool.dir, W_OK | X_OK) < 0 && cfg->user == NULL)
		return px_cfg_fail(
		    e, config_setting_lookup(root, "spool.dir"),
		    "spool dir \"%s\" is not a writable directory",
		    cfg->spool.dir);

	if ((g = config_setting_get_member(root, "backend_pool")) != NULL &&
	    (px_cfg_check_keys(e, g, "backend_pool", pool_keys) < 0 ||
	     px_cfg_unsigned(e, g, "max_idle", &cfg->backend_pool.max_idle, 0,
	                     10000) < 0 ||
	     px_cfg_double(e, g, "idle_timeout",
	                   &cfg->backend_pool.idle_timeout, 0.1, 3600) < 0))
		return -1;

	if (px_cfg_dns(e, cfg, root) < 0 ||
	    px_cfg_dnslists(e, root, "dnsbl", &cfg->dnsbl, &cfg->ndnsbl) < 0 ||
	    px_cfg_dnslists(e, root, "rhsbl", &cfg->rhsbl, &cfg->nrhsbl) < 0 ||
	    px_cfg_dnslists(e, root, "uribl", &cfg->uribl, &cfg->nuribl) < 0 ||
	    px_cfg_double(e, root, "dnsbl_threshold", &cfg->dnsbl_threshold, 0,
	                  1000) < 0 ||
	    px_cfg_bool(e, root, "fcrdns", &cfg->fcrdns) < 0)
		return -1;

	if (px_cfg_esmtp(e, cfg, root) < 0)
		return -1;
	if (px_cfg_auth(e, cfg, root) < 0)
		return -1;
	if (px_cfg_state(e, cfg, root) < 0 ||
	    px_cfg_metrics(e, cfg, root) < 0 || px_cfg_log(e, cfg, root) < 0)
		return -1;
	if (px_cfg_rules(e, cfg, root) < 0)
		return -1;

	if ((g = config_setting_get_member(root, "actions")) != NULL &&
	    (px_cfg_check_keys(e, g, "actions", action_keys) < 0 ||
	     px_cfg_double(e, g, "tag", &cfg->actions.tag, -1000, 1000) < 0 ||
	     px_cfg_double(e, g, "tempfail", &cfg->actions.tempfail, -1000,
	                   1000) < 0 ||
	     px_cfg_double(e, g, "reject", &cfg->actions.reject, -1000, 1000) <
	         0))
		return -1;
	if (cfg->actions.tempfail < cfg->actions.tag ||
	    cfg->actions.reject < cfg->actions.tempfail)
		return px_cfg_fail(
		    e, config_setting_get_member(root, "actions"),
		    "actions must satisfy tag <= tempfail <= reject");
	return 0;
}

/* px_codes_octet - one octet pattern: "12", "[2..11]", "[2;4;10..11]". */
static int
px_codes_octet(const char **pp, unsigned char set[32])
{
	const char *p = *pp;
	bool bracket = *p == '[';

	memset(set, 0, 32);
	if (bracket)
		p++;
	for (;;) {
		char *end;
		unsigned long lo, hi;

		if (*p < '0' || *p > '9')
			return -1;
		lo = strtoul(p, &end, 10);
		if (lo > 255)
			return -1;
		p = end;
		hi = lo;
		if (bracket && p[0] == '.' && p[1] == '.') {
			p += 2;
			if (*p < '0' || *p > '9')
				return -1;
			hi = strtoul(p, &end, 10);
			if (hi > 255 || hi < lo)
				return -1;
			p = end;
		}
		for (unsigned long v = lo; v <= hi; v++)
			set[v / 8] |= (unsigned char)(1u << (v % 8));
		if (!bracket)
			break;
		if (*p == ';') {
			p++;
			continue;
		}
		if (*p != ']')
			return -1;
		p++;
		break;
	}
	*pp = p;
	return 0;
}

/* px_codes_parse - "127.0.0.[2..11], 127.0.1.2" (postscreen's syntax,
 * several patterns separated by commas or spaces). */
static int
px_codes_parse(const char *s, struct px_dnslist *l)
{
	const char *p = s;

	l->npatterns = 0;
	for (;;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (l->npatterns == PX_DNSLIST_PATTERNS)
			return -1;
		for (int o = 0; o < 4; o++) {
			if (px_codes_octet(&p, l->codes[l->npatterns][o]) < 0)
				return -1;
			if (o < 3 && *p++ != '.')
				return -1;
		}
		if (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
			return -1;
		l->npatterns++;
	}
	return l->npatterns > 0 ? 0 : -1;
}

static bool
px_zone_valid(const char *z)
{
	size_t len = strlen(z);

	if (len == 0 || len > 200 || z[0] == '.' || z[len - 1] == '.')
		return false;
	for (const char *p = z; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		      *p == '_'))
			return false;
	return strstr(z, "..") == NULL;
}

/* px_cfg_dnslists - dnsbl = ( { zone; weight; codes; symbol; } ... ) and
 * rhsbl (with target). */
static int
px_cfg_dnslists(struct px_cfgerr *e, const config_setting_t *root,
                const char *name, struct px_dnslist **out, size_t *n_r)
{
	static const char *const keys[] = {"zone",   "weight", "codes",
	                                   "symbol", "target", NULL};
	config_setting_t *ls = config_setting_get_member(root, name);
	bool rhs = strcmp(name, "rhsbl") == 0;
	int n;

	if (ls == NULL)
		return 0;
	if (!config_setting_is_list(ls))
		return px_cfg_fail(
		    e, ls, "\"%s\" must be a list ( { zone = ...; }, ... )",
		    name);
	n = config_setting_length(ls);
	*out = px_calloc((size_t)n + 1, sizeof(**out));
	for (int i = 0; i < n; i++) {
		config_setting_t *g = config_setting_get_elem(ls, i);
		struct px_dnslist *l = &(*out)[i];
		char *codes = NULL, *target = NULL;
		int rc = 0;

		(*n_r)++;
		l->weight = 1.0;
		if (px_cfg_check_keys(e, g, name, keys) < 0 ||
		    px_cfg_string(e, g, "zone", &l->zone, true) < 0 ||
		    px_cfg_double(e, g, "weight", &l->weight, -1000, 1000) <
		        0 ||
		    px_cfg_string(e, g, "symbol", &l->symbol, false) < 0 ||
		    px_cfg_string(e, g, "codes", &codes, false) < 0 ||
		    px_cfg_string(e, g, "target", &target, false) < 0)
			rc = -1;
		else if (!px_zone_valid(l->zone))
			rc =
			    px_cfg_fail(e, config_setting_get_member(g, "zone"),
			                "%s zone \"%s\" is not a domain name",
			                name, l->zone);
		else if (codes != NULL && px_codes_parse(codes, l) < 0)
			rc = px_cfg_fail(e,
			                 config_setting_get_member(g, "codes"),
			                 "codes \"%s\": expected patterns like "
			                 "\"127.0.0.[2..11]\"",
			                 codes);
		else if (!rhs && target != NULL)
			rc = px_cfg_fail(e,
			                 config_setting_get_member(g, "target"),
			                 "target is for rhsbl lists");
		else if (rhs && target != NULL &&
		         strcmp(target, "sender") != 0 &&
		         strcmp(target, "helo") != 0)
			rc = px_cfg_fail(
			    e, config_setting_get_member(g, "target"),
			    "target must be \"sender\" or \"helo\"");
		l->target = !rhs ? PX_DNSLIST_CLIENT
		            : target != NULL && strcmp(target, "helo") == 0
		                ? PX_DNSLIST_HELO
		                : PX_DNSLIST_SENDER;
		free(codes);
		free(target);
		if (rc < 0)
			return -1;
		if (l->symbol == NULL) {
			/* RBL_ZEN_SPAMHAUS_ORG, like rspamd's names. */
			size_t sl = strlen(l->zone) + 8;

			l->symbol = px_malloc(sl);
			snprintf(l->symbol, sl, "%s%s",
			         rhs                          ? "RHSBL_"
			         : strcmp(name, "uribl") == 0 ? "URIBL_"
			                                      : "RBL_",
			         l->zone);
			for (char *p = l->symbol; *p; p++) {
				if (*p == '.' || *p == '-')
					*p = '_';
				else if (*p >= 'a' && *p <= 'z')
					*p = (char)(*p - 'a' + 'A');
			}
		}
	}
	return 0;
}

static int
px_cfg_dns(struct px_cfgerr *e, struct px_config *cfg,
           const config_setting_t *root)
{
	static const char *const keys[] = {"servers", "timeout", "recursion",
	                                   NULL};
	config_setting_t *g = config_setting_get_member(root, "dns");
	char **servers = NULL;
	size_t n = 0;
	int rc = 0;

	if (g == NULL)
		return 0;
	if (px_cfg_check_keys(e, g, "dns", keys) < 0 ||
	    px_cfg_double(e, g, "timeout", &cfg->dns.timeout, 0.1, 60) < 0 ||
	    px_cfg_bool(e, g, "recursion", &cfg->dns.recursion) < 0 ||
	    px_cfg_strings(e, g, "servers", &servers, &n) < 0)
		return -1;
	cfg->dns.servers = px_calloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		const char *err;
		char ip[64];
		size_t sl;

		if (px_addr_parse(servers[i], false, &ss, &len, &err) < 0) {
			rc = px_cfg_fail(
			    e, config_setting_get_member(g, "servers"),
			    "dns server \"%s\": %s", servers[i], err);
			break;
		}
		/* libunbound's forwarder syntax is "ip@port". */
		px_addr_ip(&ss, ip, sizeof(ip));
		sl = strlen(ip) + 8;
		cfg->dns.servers[i] = px_malloc(sl);
		snprintf(cfg->dns.servers[i], sl, "%s@%u", ip,
		         px_addr_port(&ss));
		cfg->dns.nservers++;
	}
	for (size_t j = 0; j < n; j++)
		free(servers[j]);
	free(servers);
	return rc;
}

static void
px_config_defaults(struct px_config *cfg)
{
	cfg->store = px_strdup("memory");
	cfg->loops = 0;
	cfg->workers = 4;
	cfg->greet_delay = 0;
	cfg->pregreet_action = PX_PREGREET_SCORE;
	cfg->pregreet_score = 6.0;
	cfg->limits.message_size = 52428800;
	cfg->limits.recipients = 100;
	cfg->limits.line_length = 2048;
	cfg->limits.connections = 10000;
	cfg->limits.connections_per_ip = 50;
	cfg->limits.errors = 20;
	cfg->limits.unknown_recipients = 20;
	cfg->limits.unknown_recipients_window = 3600;
	/* RFC 5321 4.5.3.2: 5 minutes for commands, 3 for a data block,
	 * 10 for the reply to the final dot. */
	cfg->timeouts.command = 300;
	cfg->timeouts.data_block = 180;
	cfg->timeouts.data_done = 600;
	cfg->timeouts.backend = 120;
	cfg->timeouts.shutdown = 30;
	cfg->timeouts.filter = 30;
	cfg->spool.dir = px_strdup("/var/spool/mxguard");
	cfg->spool.memory_max = 1 << 20;
	cfg->actions.tag = 5.0;
	cfg->actions.tempfail = 10.0;
	cfg->actions.reject = 15.0;
	/* Below Postfix's smtpd_timeout (300 s) by far, so the backend
	 * rarely closes a pooled connection under us. */
	cfg->backend_pool.max_idle = 16;
	cfg->backend_pool.idle_timeout = 5.0;
	cfg->dns.timeout = 3.0;
	cfg->fcrdns = true;
	px_cfg_state_defaults(cfg);
	px_cfg_auth_defaults(cfg);
	px_cfg_esmtp_defaults(cfg);
}

static void
px_config_free(struct px_config *cfg)
{
	free(cfg->path);
	free(cfg->hostname);
	for (size_t i = 0; i < cfg->nlisten; i++) {
		free(cfg->listen[i].address);
		px_cfg_listen_tls_free(&cfg->listen[i]);
	}
	free(cfg->listen);
	free(cfg->backend_str);
	free(cfg->store);
	for (size_t i = 0; i < cfg->naccepted_domains; i++)
		free(cfg->accepted_domains[i]);
	free(cfg->accepted_domains);
	free(cfg->relay_networks);
	px_cfg_relay_free(cfg);
	px_cfg_backend_tls_free(cfg);
	for (size_t i = 0; i < cfg->nrules; i++)
		free(cfg->rules[i]);
	free(cfg->rules);
	free(cfg->user);
	free(cfg->group);
	free(cfg->spool.dir);
	for (size_t i = 0; i < cfg->dns.nservers; i++)
		free(cfg->dns.servers[i]);
	free(cfg->dns.servers);
	for (size_t i = 0; i < cfg->ndnsbl; i++) {
		free(cfg->dnsbl[i].zone);
		free(cfg->dnsbl[i].symbol);
	}
	free(cfg->dnsbl);
	for (size_t i = 0; i < cfg->nrhsbl; i++) {
		free(cfg->rhsbl[i].zone);
		free(cfg->rhsbl[i].symbol);
	}
	free(cfg->rhsbl);
	for (size_t i = 0; i < cfg->nuribl; i++) {
		free(cfg->uribl[i].zone);
		free(cfg->uribl[i].symbol);
	}
	free(cfg->uribl);
	px_cfg_state_free(cfg);
	px_cfg_metrics_free(cfg);
	px_cfg_rules_free(cfg);
	free(cfg);
}

int
px_config_load(const char *path, struct px_config **cfg_r, char **error_r)
{
	struct px_config *cfg = px_calloc(1, sizeof(*cfg));
	struct px_cfgerr e = {path, error_r};
	config_t lc;
	char *dir = px_strdup(path), *slash = strrchr(dir, '/');

	cfg->refs = 1;
	cfg->path = px_strdup(path);
	px_config_defaults(cfg);
	config_init(&lc);
	/* @include paths are relative to the including file's folder. */
	if (slash != NULL) {
		*slash = '\0';
		config_set_include_dir(&lc, dir);
	}
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
			size_t n = strlen(path) + 64;

			*error_r = px_malloc(n);
			snprintf(*error_r, n, "%s:0: cannot read file", path);
		} else {
			const char *f = config_error_file(&lc);
			size_t n;

			f = f ? f : path;
			n = strlen(f) + strlen(config_error_text(&lc)) + 32;
			*error_r = px_malloc(n);
			snprintf(*error_r, n, "%s:%d: %s", f,
			         config_error_line(&lc),
			         config_error_text(&lc));
		}
		config_destroy(&lc);
		free(dir);
		px_config_free(cfg);
		return -1;
	}
	int rc = px_cfg_fill(&e, cfg, &lc);

	config_destroy(&lc);
	free(dir);
	if (rc < 0) {
		px_config_free(cfg);
		return -1;
	}
	*cfg_r = cfg;
	return 0;
}

struct px_config *
px_config_ref(struct px_config *cfg)
{
	__atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

void
px_config_unref(struct px_config **cfgp)
{
	struct px_config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	if (__atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) == 0)
		px_config_free(cfg);
}

static pthread_mutex_t px_config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct px_config *px_config_cur;

struct px_config *
px_config_current(void)
{
	struct px_config *cfg;

	pthread_mutex_lock(&px_config_lock);
	cfg = px_config_ref(px_config_cur);
	pthread_mutex_unlock(&px_config_lock);
	return cfg;
}

void
px_config_set_current(struct px_config *cfg)
{
	struct px_config *old;

	pthread_mutex_lock(&px_config_lock);
	old = px_config_cur;
	px_config_cur = cfg;
	pthread_mutex_unlock(&px_config_lock);
	px_config_unref(&old);
}
