/* SPDX-License-Identifier: MIT */
/*
 * relay_control.h - who may send where: the accepted-domain set and the
 * classification of one RCPT address against it (the open-relay blocker).
 *
 * Pure: no I/O, no libevent.  A px_domains set is built at config load and
 * then only read, by every loop thread at once.
 */
#ifndef MX_RELAY_CONTROL_H
#define MX_RELAY_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

struct px_domains;

/* px_domains_new - an empty set.  px_domains_free frees, *dp = NULL,
 * accepts NULL. */
struct px_domains *px_domains_new(void);
void px_domains_free(struct px_domains **dp);

/*
 * px_domains_add - add one entry: "example.com" (that domain only),
 * ".example.com" (its subdomains, not itself), "[192.0.2.1]" or
 * "[IPv6:2001:db8::1]" (an address literal).  Case is ignored and one
 * trailing dot is dropped.  Returns 0, or -1 with *error_r a static text.
 * Call px_domains_seal() once all are added, before any match.
 */
int px_domains_add(struct px_domains *d, const char *name,
                   const char **error_r);
void px_domains_seal(struct px_domains *d);

/* px_domains_count - how many entries the set holds. */
size_t px_domains_count(const struct px_domains *d);

/* px_domains_match - true if domain[0..len) (a name, or an address literal
 * in brackets) is in the set; ASCII case is ignored. */
bool px_domains_match(const struct px_domains *d, const char *domain,
                      size_t len);

/* What relay control makes of a recipient from an untrusted client. */
enum px_rcpt_class {
	PX_RCPT_LOCAL = 0,   /* an accepted domain, or bare Postmaster */
	PX_RCPT_FOREIGN,     /* another domain: relaying */
	PX_RCPT_ROUTING,     /* sender-specified routing in the local part */
	PX_RCPT_LITERAL,     /* an address literal not in the set */
	PX_RCPT_UNPARSEABLE, /* no domain part (the parser lets none by) */
};

/*
 * px_rcpt_classify - addr[0..len) is the mailbox as px_cmd_parse() left it
 * (source route removed, syntax checked; "Postmaster" alone allowed).
 * SECURITY: a local part holding '%', '!' or '@' (quoted or escaped) asks
 * the next MTA to route (the percent hack, bang paths, "a@b"@c); such
 * recipients are refused from untrusted clients whatever their domain, as
 * Postfix does with allow_untrusted_routing = no, since the backend may
 * rewrite them into a foreign address after our check.
 */
enum px_rcpt_class px_rcpt_classify(const struct px_domains *d,
                                    const char *addr, size_t len);

/* px_rcpt_class_name - a short word for the log ("foreign", ...). */
const char *px_rcpt_class_name(enum px_rcpt_class c);

#endif
