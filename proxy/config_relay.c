/* SPDX-License-Identifier: MIT */
/*
 * config_relay.c - the relay control settings: accepted_domains (read by
 * config.c as strings) and accepted_domains_file, built into one
 * px_domains set; recipients_file and recipients_redis; sender_login_match;
 * routes; and the warning for a config that accepts no recipient.
 *
 * px_cfg_relay(): build cfg->accepted; errors as "FILE:LINE: message", for
 *   the domains file its own name and line.
 * px_cfg_relay_free(): free what px_cfg_relay made.
 * px_config_relay_warning(): the text main.c shows with -t, at startup and
 *   on reload.
 *
 * The file is read at every load, so a SIGHUP rereads it with the config;
 * a file that cannot be read fails the load (the running config stays).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_priv.h"
#include "recipients.h"
#include "relay_control.h"

/* Longer lines than this in a list file are refused, not cut. */
#define PX_LIST_LINE_MAX 1024

/*
 * px_cfg_list_file - read path (the value of setting, named what), one
 * entry (a noun, for the errors) a line, `#` comments, blank lines skipped;
 * add(arg, entry, &err) takes each one.  Errors name the file and its line.
 */
static int
px_cfg_list_file(struct px_cfgerr *e, const config_setting_t *setting,
                 const char *what, const char *noun, const char *path,
                 int (*add)(void *arg, const char *entry, const char **err),
                 void *arg)
{
	char line[PX_LIST_LINE_MAX + 2];
	unsigned lineno = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return px_cfg_fail(e, setting, "%s \"%s\": %s", what, path,
		                   strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		char *p = line, *end;
		const char *err = NULL;

		lineno++;
		if (len > PX_LIST_LINE_MAX && line[len - 1] != '\n') {
			fclose(f);
			return px_cfg_fail(e, setting, "%s:%u: line too long",
			                   path, lineno);
		}
		if ((end = strchr(line, '#')) != NULL)
			*end = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t' ||
		                   end[-1] == '\r' || end[-1] == '\n'))
			end--;
		*end = '\0';
		if (*p == '\0')
			continue;
		if (strpbrk(p, " \t") != NULL) {
			fclose(f);
			return px_cfg_fail(e, setting, "%s:%u: one %s per line",
			                   path, lineno, noun);
		}
		if (add(arg, p, &err) < 0) {
			fclose(f);
			return px_cfg_fail(e, setting, "%s:%u: \"%s\": %s",
			                   path, lineno, p, err);
		}
	}
	fclose(f);
	return 0;
}

static int
px_cfg_domain_add(void *arg, const char *entry, const char **err)
{
	return px_domains_add(arg, entry, err);
}

static int
px_cfg_rcpt_add(void *arg, const char *entry, const char **err)
{
	return px_rcptset_add(arg, entry, err);
}

/*
 * px_cfg_recipients_redis - recipients_redis = { key = "..."; domains =
 * [...]; }: a Redis set of recipients (entries as in recipients_file),
 * asked at each RCPT through the store's connection, so it needs a Redis
 * store.  domains: the domains it verifies (default: every accepted
 * domain); each must be accepted, as for routes.
 */
static int
px_cfg_recipients_redis(struct px_cfgerr *e, struct px_config *cfg,
                        const config_setting_t *root)
{
	static const char *const keys[] = {"key", "domains", NULL};
	const config_setting_t *g =
	    config_setting_get_member(root, "recipients_redis");
	const config_setting_t *ds;
	const char *err;

	if (g == NULL)
		return 0;
	if (px_cfg_check_keys(e, g, "recipients_redis", keys) < 0 ||
	    px_cfg_string(e, g, "key", &cfg->recipients_redis_key, true) < 0 ||
	    px_cfg_strings(e, g, "domains", &cfg->recipients_redis_domain_list,
	                   &cfg->nrecipients_redis_domains) < 0)
		return -1;
	if (cfg->recipients_redis_key[0] == '\0' ||
	    strlen(cfg->recipients_redis_key) > 200)
		return px_cfg_fail(e, config_setting_get_member(g, "key"),
		                   "recipients_redis key must be 1 to 200 "
		                   "characters");
	if (strncmp(cfg->store, "redis", 5) != 0)
		return px_cfg_fail(e, g,
		                   "recipients_redis needs a Redis store "
		                   "(store = \"redis://...\"), not \"%s\"",
		                   cfg->store);
	if ((ds = config_setting_get_member(g, "domains")) == NULL)
		return 0;
	cfg->recipients_redis_domains = px_domains_new();
	for (size_t i = 0; i < cfg->nrecipients_redis_domains; i++) {
		const char *d = cfg->recipients_redis_domain_list[i];
		char probe[300];

		if (d[0] == '[' ||
		    px_domains_add(cfg->recipients_redis_domains, d, &err) < 0)
			return px_cfg_fail(
			    e, ds,
			    "recipients_redis domain \"%s\": not "
			    "a domain name",
			    d);
		snprintf(probe, sizeof(probe), "%s%s", d[0] == '.' ? "x" : "",
		         d);
		if (!px_domains_match(cfg->accepted, probe, strlen(probe)))
			return px_cfg_fail(
			    e, ds,
			    "recipients_redis domain \"%s\" is not "
			    "in accepted_domains",
			    d);
	}
	px_domains_seal(cfg->recipients_redis_domains);
	return 0;
}

/*
 * px_cfg_routes - routes = ( { domain = "a.example"; backend = "host:port";
 * }, ... ): per-domain backends.  A routed domain must also be accepted
 * (accepted_domains), as the contract says: routing is not a way
 * around relay control.
 */
static int
px_cfg_routes(struct px_cfgerr *e, struct px_config *cfg,
              const config_setting_t *root)
{
	static const char *const keys[] = {"domain", "backend", NULL};
	const config_setting_t *rs = config_setting_get_member(root, "routes");
	int n;

	if (rs == NULL)
		return 0;
	if (!config_setting_is_list(rs) && !config_setting_is_array(rs))
		return px_cfg_fail(
		    e, rs,
		    "\"routes\" must be a list ( { domain = ...; "
		    "backend = ...; }, ... )");
	n = config_setting_length(rs);
	cfg->routes = px_calloc((size_t)n + 1, sizeof(*cfg->routes));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(rs, i);
		struct px_route *r = &cfg->routes[i];
		const char *err;
		char probe[300];

		cfg->nroutes++;
		if (px_cfg_check_keys(e, g, "routes", keys) < 0 ||
		    px_cfg_string(e, g, "domain", &r->domain, true) < 0 ||
		    px_cfg_string(e, g, "backend", &r->backend_str, true) < 0)
			return -1;
		r->match = px_domains_new();
		if (r->domain[0] == '[' ||
		    px_domains_add(r->match, r->domain, &err) < 0)
			return px_cfg_fail(
			    e, config_setting_get_member(g, "domain"),
			    "routes domain \"%s\": not a domain name",
			    r->domain);
		px_domains_seal(r->match);
		/* ".sub.example" is checked with a name below it. */
		snprintf(probe, sizeof(probe), "%s%s",
		         r->domain[0] == '.' ? "x" : "", r->domain);
		if (!px_domains_match(cfg->accepted, probe, strlen(probe)))
			return px_cfg_fail(
			    e, config_setting_get_member(g, "domain"),
			    "routes domain \"%s\" is not in accepted_domains",
			    r->domain);
		if (px_addr_parse(r->backend_str, true, &r->addr, &r->addrlen,
		                  &err) < 0)
			return px_cfg_fail(
			    e, config_setting_get_member(g, "backend"),
			    "routes backend \"%s\": %s", r->backend_str, err);
		/* One backend, one destination, whichever domain led there:
		 * its recipients may share a transaction. */
		r->id = (unsigned)i + 1;
		if (px_addr_same_ip(&r->addr, &cfg->backend) &&
		    px_addr_port(&r->addr) == px_addr_port(&cfg->backend))
			r->id = 0;
		for (int j = 0; j < i && r->id == (unsigned)i + 1; j++)
			if (px_addr_same_ip(&r->addr, &cfg->routes[j].addr) &&
			    px_addr_port(&r->addr) ==
			        px_addr_port(&cfg->routes[j].addr))
				r->id = cfg->routes[j].id;
	}
	return 0;
}

unsigned
px_config_route(const struct px_config *cfg, const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');

	if (at == NULL)
		return 0;
	for (size_t i = 0; i < cfg->nroutes; i++)
		if (px_domains_match(cfg->routes[i].match, at + 1,
		                     strlen(at + 1)))
			return cfg->routes[i].id;
	return 0;
}

const struct sockaddr_storage *
px_config_backend(const struct px_config *cfg, unsigned route, socklen_t *len_r,
                  const char **str_r)
{
	if (route == 0 || route > cfg->nroutes) {
		*len_r = cfg->backend_len;
		*str_r = cfg->backend_str;
		return &cfg->backend;
	}
	*len_r = cfg->routes[route - 1].addrlen;
	*str_r = cfg->routes[route - 1].backend_str;
	return &cfg->routes[route - 1].addr;
}

int
px_cfg_relay(struct px_cfgerr *e, struct px_config *cfg,
             const config_setting_t *root)
{
	const config_setting_t *list =
	    config_setting_get_member(root, "accepted_domains");
	const config_setting_t *file =
	    config_setting_get_member(root, "accepted_domains_file");
	const char *err;

	cfg->accepted = px_domains_new();
	for (size_t i = 0; i < cfg->naccepted_domains; i++)
		if (px_domains_add(cfg->accepted, cfg->accepted_domains[i],
		                   &err) < 0)
			return px_cfg_fail(e, list,
			                   "accepted_domains \"%s\": %s",
			                   cfg->accepted_domains[i], err);
	if (px_cfg_string(e, root, "accepted_domains_file",
	                  &cfg->accepted_domains_file, false) < 0)
		return -1;
	if (cfg->accepted_domains_file != NULL &&
	    px_cfg_list_file(e, file, "accepted_domains_file", "domain",
	                     cfg->accepted_domains_file, px_cfg_domain_add,
	                     cfg->accepted) < 0)
		return -1;
	px_domains_seal(cfg->accepted);
	if (px_cfg_string(e, root, "recipients_file", &cfg->recipients_file,
	                  false) < 0)
		return -1;
	if (cfg->recipients_file != NULL) {
		cfg->recipients = px_rcptset_new();
		if (px_cfg_list_file(
		        e, config_setting_get_member(root, "recipients_file"),
		        "recipients_file", "address", cfg->recipients_file,
		        px_cfg_rcpt_add, cfg->recipients) < 0)
			return -1;
		px_rcptset_seal(cfg->recipients);
	}
	if (px_cfg_recipients_redis(e, cfg, root) < 0 ||
	    px_cfg_bool(e, root, "sender_login_match",
	                &cfg->sender_login_match) < 0 ||
	    px_cfg_routes(e, cfg, root) < 0)
		return -1;
	cfg->relay_configured =
	    list != NULL || file != NULL || cfg->nrelay_networks > 0;
	return 0;
}

void
px_cfg_relay_free(struct px_config *cfg)
{
	px_domains_free(&cfg->accepted);
	free(cfg->accepted_domains_file);
	px_rcptset_free(&cfg->recipients);
	free(cfg->recipients_file);
	free(cfg->recipients_redis_key);
	px_strv_free(cfg->recipients_redis_domain_list,
	             cfg->nrecipients_redis_domains);
	px_domains_free(&cfg->recipients_redis_domains);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		free(cfg->routes[i].domain);
		free(cfg->routes[i].backend_str);
		px_domains_free(&cfg->routes[i].match);
	}
	free(cfg->routes);
}

const char *
px_config_relay_warning(const struct px_config *cfg)
{
	if (!cfg->relay_configured)
		return "neither accepted_domains (or accepted_domains_file) "
		       "nor relay_networks is set: every recipient will be "
		       "refused with 554 5.7.1 Relay access denied";
	if (px_domains_count(cfg->accepted) == 0 && cfg->nrelay_networks == 0)
		return "accepted_domains is empty and relay_networks is not "
		       "set: every recipient will be refused with 554 5.7.1 "
		       "Relay access denied";
	return NULL;
}
