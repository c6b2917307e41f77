/* SPDX-License-Identifier: MIT */
/*
 * dns.h - the one resolver (DESIGN principle 6): every DNS lookup of every
 * check goes through here, so all share one cache and one configuration,
 * and tests can point it at a local server.
 *
 * Built on libunbound: its cache honours TTLs, negative answers included
 * (RFC 2308); it forwards to dns.servers (any port), reads
 * /etc/resolv.conf, or resolves from the roots itself (dns.recursion).
 */
#ifndef MX_DNS_H
#define MX_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct px_config;
struct px_loop;
struct flt_dns_query;

/* RR types used by the checks. */
enum {
	FLT_DNS_A = 1,
	FLT_DNS_PTR = 12,
	FLT_DNS_TXT = 16,
	FLT_DNS_AAAA = 28,
};

enum flt_dns_status {
	FLT_DNS_ANSWER = 0, /* data in the result */
	FLT_DNS_NXDOMAIN,   /* the name does not exist */
	FLT_DNS_NODATA,     /* the name exists, not with this type */
	FLT_DNS_SERVFAIL,   /* the servers failed (or DNSSEC bogus) */
	FLT_DNS_TIMEOUT,    /* no answer within the query's timeout */
	FLT_DNS_ERROR,      /* the resolver itself failed */
};

struct flt_dns_result {
	enum flt_dns_status status;
	int rrtype;
	/* ANSWER: n records of raw RDATA (A: 4 bytes, AAAA: 16, PTR and
	 * TXT: wire format); valid during the callback only. */
	unsigned n;
	const unsigned char *const *data;
	const int *len;
	unsigned ttl;
	void *priv; /* private: what flt_dns_result_free releases */
};

/* Called on the querying loop's thread, exactly once per query unless it
 * was cancelled first. */
typedef void flt_dns_cb(void *arg, const struct flt_dns_result *res);

/*
 * flt_dns_init - create the resolver from cfg (dns.servers, dns.recursion,
 * else /etc/resolv.conf) and start the thread that collects answers.
 * Blocking; call once at startup.  0, or -1 with *error_r (static).
 * Changes to dns { } take effect at restart, not at reload.
 */
int flt_dns_init(const struct px_config *cfg, const char **error_r);

/* flt_dns_shutdown - stop the thread and free the resolver (after the
 * loops have stopped). */
void flt_dns_shutdown(void);

/*
 * flt_dns_query - look name up (asynchronously).  cb(arg, result) runs on
 * loop's thread, at the latest after timeout seconds (FLT_DNS_TIMEOUT).
 * Never calls back before returning.  Returns a handle for
 * flt_dns_cancel(); the handle is invalid once cb has run.  Loop thread
 * only.
 */
struct flt_dns_query *flt_dns_query(struct px_loop *loop, const char *name,
                                    int rrtype, double timeout, flt_dns_cb *cb,
                                    void *arg);

/* flt_dns_cancel - the answer is no longer wanted: cb will not run. */
void flt_dns_cancel(struct flt_dns_query *q);

/*
 * flt_dns_resolve - blocking lookup for the worker pool (libspf2,
 * libopendkim).  Fills *res (status, n; data stays valid until
 * flt_dns_result_free(res)).  Waits at most dns.timeout seconds, then
 * answers FLT_DNS_TIMEOUT.  Never on a loop thread.
 */
void flt_dns_resolve(const char *name, int rrtype, struct flt_dns_result *res);
void flt_dns_result_free(struct flt_dns_result *res);

/*
 * flt_dns_reverse_name - the name to look up for ip in zone: IPv4 octets
 * reversed ("4.3.2.1.zone"), IPv6 as 32 reversed nibbles (RFC 5782 2.4),
 * zone NULL for in-addr.arpa / ip6.arpa.  Returns 0, or -1 if ip is not an
 * address or buf is too small.
 */
int flt_dns_reverse_name(const char *ip, const char *zone, char *buf,
                         size_t size);

#endif
