/* SPDX-License-Identifier: MIT */
/*
 * config.h - the configuration (libconfig syntax), loaded whole, checked,
 * and then immutable.  A loaded config is refcounted: each session holds the
 * config it started with, so a SIGHUP reload swaps the process-wide pointer
 * without touching live sessions.
 */
#ifndef MX_CONFIG_H
#define MX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "netaddr.h"

struct px_domains;
struct px_rcptset;
struct rule_set;

enum px_mode {
	PX_MODE_MX = 0,
	PX_MODE_SUBMISSION,
};

enum px_pregreet_action {
	PX_PREGREET_SCORE = 0,
	PX_PREGREET_REJECT,
};

/* A DNS list: DNSBL/DNSWL on the client IP, or RHSBL on a domain. */
enum px_dnslist_target {
	PX_DNSLIST_CLIENT = 0, /* dnsbl: the client address */
	PX_DNSLIST_SENDER,     /* rhsbl: the MAIL FROM domain */
	PX_DNSLIST_HELO,       /* rhsbl: the HELO name */
};

#define PX_DNSLIST_PATTERNS 16

struct px_dnslist {
	char *zone;
	double weight;
	char *symbol;
	enum px_dnslist_target target;
	/* codes = "127.0.0.[2..11], 127.0.1.2": per pattern, per octet, a
	 * 256-bit set of the values allowed.  npatterns 0: any 127/8. */
	unsigned npatterns;
	unsigned char codes[PX_DNSLIST_PATTERNS][4][32];
};

/* Rate limits: `ratelimit = ( { name; what; per; limit; period; reply; } )`. */
enum px_rl_what {
	PX_RL_CONNECTIONS = 0,
	PX_RL_MESSAGES,
	PX_RL_RECIPIENTS,
};

enum px_rl_per {
	PX_RL_CLIENT_IP = 0,
	PX_RL_CLIENT_NET,
	PX_RL_SENDER,
	PX_RL_SENDER_DOMAIN,
};

struct px_ratelimit {
	char *name; /* the symbol, [A-Z0-9_] */
	enum px_rl_what what;
	enum px_rl_per per;
	unsigned limit;
	unsigned period; /* seconds */
	int reply;       /* 421 (and close) or 451 */
	double score;
};

enum px_store_error {
	PX_STORE_ERROR_PASS = 0,
	PX_STORE_ERROR_TEMPFAIL,
};

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* One `routes` entry: mail for domain (or ".domain": its subdomains)
 * goes to that backend instead of the default one. */
struct px_route {
	char *domain;
	char *backend_str;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct px_domains *match;
	unsigned id; /* the route number of its backend: routes to the same
	              * backend share one (the default backend's is 0) */
};

enum px_backend_tls_mode {
	PX_BACKEND_TLS_OPPORTUNISTIC = 0,
	PX_BACKEND_TLS_REQUIRED,
	PX_BACKEND_TLS_OFF,
};

/* A listener's `tls = { ... }` (config_tls.c).  ctx is NULL without TLS;
 * it is built at each load, so a SIGHUP reloads certificate and key. */
struct px_listen_tls {
	struct ssl_ctx_st *ctx;
	char *cert;
	char *key;
	char *ciphers;
	bool implicit; /* TLS from the first byte (port 465, RFC 8314) */
	bool required; /* MAIL refused before STARTTLS (530 5.7.0) */
};

struct px_listen {
	char *address; /* as written, for logs */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum px_mode mode;
	bool proxy_protocol;
	struct px_listen_tls tls;
};

/* etrn: what ETRN (RFC 1985) does. */
enum px_etrn {
	PX_ETRN_OFF = 0, /* 502 5.5.1 */
	PX_ETRN_RELAY,   /* to the backend, for relay_networks clients */
};

struct px_config {
	int refs; /* atomic */
	char *path;
	char *hostname;
	struct px_listen *listen;
	size_t nlisten;
	char *backend_str;
	struct sockaddr_storage backend;
	socklen_t backend_len;
	char *store;
	char **accepted_domains;
	size_t naccepted_domains;
	struct px_cidr *relay_networks;
	size_t nrelay_networks;
	/* Relay control (config_relay.c): accepted_domains and the
	 * accepted_domains_file, read at each load (so SIGHUP rereads it). */
	char *accepted_domains_file;
	char *recipients_file;         /* recipients.h */
	struct px_rcptset *recipients; /* NULL: the backend verifies */
	/* recipients_redis = { key; domains; } (config_relay.c): a Redis set
	 * asked at each RCPT (ST_SISMEMBER). */
	char *recipients_redis_key; /* NULL: none */
	char **recipients_redis_domain_list;
	size_t nrecipients_redis_domains;
	struct px_domains *recipients_redis_domains; /* NULL: accepted */
	struct px_domains *accepted; /* never NULL after a load */
	bool relay_configured;   /* accepted_domains* or relay_networks set */
	bool sender_login_match; /* MAIL FROM must be the AUTH user */
	/* routes = ( { domain; backend; } ) (config_relay.c): route i + 1
	 * is routes[i]; route 0 is `backend`. */
	struct px_route *routes;
	size_t nroutes;
	char **rules; /* globs, as written */
	size_t nrules;
	struct rule_set *ruleset; /* compiled from rules (config_rules.c) */
	char *subject_prefix;     /* Subject rewrite on tag; NULL: none */
	char *user;
	char *group;
	unsigned loops;   /* event loops; 0 in the file = one per core */
	unsigned workers; /* worker pool threads */
	double greet_delay;
	enum px_pregreet_action pregreet_action;
	double pregreet_score;
	struct {
		unsigned long long message_size;
		unsigned recipients;
		unsigned line_length;
		unsigned connections;
		unsigned connections_per_ip;
		unsigned errors;
		unsigned unknown_recipients; /* per session, then 421 */
		/* Across sessions, per client address (filters/harvest.c);
		 * 0: off. */
		unsigned unknown_recipients_per_client;
		unsigned unknown_recipients_window; /* seconds */
	} limits;
	struct {
		double command;
		double data_block;
		double data_done;
		double backend;
		double shutdown;
		double filter;
	} timeouts;
	struct {
		char *dir;
		size_t memory_max;
	} spool;
	struct {
		double tag;
		double tempfail;
		double reject;
	} actions;
	struct {
		unsigned max_idle; /* idle backend connections kept per loop */
		double idle_timeout; /* seconds one may wait */
	} backend_pool;
	struct {
		char *
		    *servers; /* "ip@port" for libunbound; none: resolv.conf */
		size_t nservers;
		double timeout;
		bool recursion;
	} dns;
	struct px_dnslist *dnsbl;
	size_t ndnsbl;
	double dnsbl_threshold; /* 0: lists only score */
	bool fcrdns;            /* iprev lookups of every client */
	struct px_dnslist *rhsbl;
	size_t nrhsbl;
	struct px_dnslist *uribl; /* on the domains of a message's links */
	size_t nuribl;
	bool soft_bounce;
	enum px_etrn etrn;     /* config_esmtp.c */
	double eom_budget;     /* seconds from end of data to the decision */
	bool backend_chunking; /* BDAT to a CHUNKING backend (RFC 3030) */

	/* The store and what uses it (config_state.c). */
	char *store_prefix;
	size_t store_memory_max;
	enum px_store_error on_store_error;
	double store_timeout; /* timeouts.store */
	char *control_socket; /* NULL: none */
	bool debug_clock;     /* `mxguard ctl clock advance` allowed */
	struct {
		bool enabled;
		unsigned delay;
		unsigned retry_window;
		unsigned pass_ttl;
		unsigned auto_whitelist_after;
		unsigned ipv4_prefix; /* the client network: /24 */
		unsigned ipv6_prefix; /* /64 */
		bool spf_domain; /* SPF pass: the domain replaces the network */
		bool skip_dnswl;
		bool skip_good_reputation;
		struct px_cidr *whitelist_clients;
		size_t nwhitelist_clients;
		char *
		    *whitelist_client_names; /* rDNS: "example.com" suffixes */
		size_t nwhitelist_client_names;
		char **whitelist_senders; /* "domain" or "user@domain" */
		size_t nwhitelist_senders;
		char **whitelist_recipients;
		size_t nwhitelist_recipients;
	} greylist;
	struct {
		bool enabled;
		unsigned half_life; /* seconds */
		unsigned ttl;
		unsigned min_messages; /* judged only after this many */
		double bad_ratio;      /* rejected share above: *_BAD */
		double good_ratio;     /* accepted share above: *_GOOD */
		double score_bad;
		double score_good;
	} reputation;
	struct px_ratelimit *ratelimit;
	size_t nratelimit;

	/* Sender authentication (config_auth.c). */
	struct {
		bool enabled;            /* check unless trusted */
		bool reject_fail;        /* fail -> 550 5.7.23 */
		bool tempfail_temperror; /* temperror -> 451 4.7.24 */
		bool check_trusted;      /* also relay_networks / AUTH */
		double timeout;          /* seconds for one evaluation */
	} spf;
	struct {
		bool enabled;       /* verify unless trusted */
		bool check_trusted; /* also relay_networks / AUTH */
		double timeout;     /* seconds for one message's signatures */
		unsigned max_signatures; /* evaluated; later ones ignored */
	} dkim;
	struct {
		bool enabled;       /* evaluate unless trusted */
		bool enforce;       /* reject p=reject, tag p=quarantine */
		bool check_trusted; /* also relay_networks / AUTH */
	} dmarc;
	struct {
		bool syslog;  /* target = "syslog" (or daemon mode) */
		int facility; /* LOG_MAIL... */
		int level;    /* enum px_log_level */
	} log;
	struct {
		char *address;  /* host:port of /metrics; NULL: off */
		char *password; /* HTTP Basic, any user; NULL: none */
	} metrics;
	/* backend_tls = { } (config_tls.c). */
	struct {
		enum px_backend_tls_mode mode;
		char *ca_file;
		char *verify_name;
		struct ssl_ctx_st *ctx; /* NULL when mode is off */
	} backend_tls;
};

/*
 * px_config_load - read and check path.  Returns 0 with a new config (one
 * reference) in *cfg_r, or -1 with *error_r a malloc'd "FILE:LINE: message"
 * the caller frees.  Blocking (may resolve a backend host name).
 */
int px_config_load(const char *path, struct px_config **cfg_r, char **error_r);

/* px_config_relay_warning - a warning about relay control to show at
 * startup, on reload and with -t (a config that refuses every recipient),
 * or NULL. */
const char *px_config_relay_warning(const struct px_config *cfg);

/* px_config_listen_tls - the TLS settings of the listener whose address
 * is as written in the config, or NULL when it has none. */
const struct px_listen_tls *px_config_listen_tls(const struct px_config *cfg,
                                                 const char *address);

/* px_config_route - the route for a recipient mailbox (as relay control
 * sees it): 0 for the default backend, else the id of the first routes[]
 * entry that matches its domain (i + 1 for routes[i], or the id of an
 * earlier entry, or 0, with the same backend). */
unsigned px_config_route(const struct px_config *cfg, const char *rcpt);

/* px_config_backend - route's backend address and its text. */
const struct sockaddr_storage *px_config_backend(const struct px_config *cfg,
                                                 unsigned route,
                                                 socklen_t *len_r,
                                                 const char **str_r);

/* px_config_ref - take a reference; returns cfg. Thread-safe. */
struct px_config *px_config_ref(struct px_config *cfg);

/* px_config_unref - drop a reference, free on the last; sets *cfgp = NULL.
 * Thread-safe; accepts NULL. */
void px_config_unref(struct px_config **cfgp);

/* px_config_current - the process-wide current config, with a reference
 * the caller must drop.  px_config_set_current installs cfg (taking over
 * the caller's reference) and drops the previous one. */
struct px_config *px_config_current(void);
void px_config_set_current(struct px_config *cfg);

#endif
