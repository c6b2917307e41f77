/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - counters every part of mxguard bumps, and the Prometheus
 * endpoint that shows them (`metrics = { address = "127.0.0.1:9425"; }`).
 *
 * Counting is a relaxed atomic add (symbols: a small locked table), safe
 * from any thread and cheap enough for every reply.  The HTTP listener runs
 * on its own thread and event base, so a scrape never delays SMTP.
 */
#ifndef MX_METRICS_H
#define MX_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;
struct px_config;

/* Stages timed by the filter chain (the enum flt_stage order). */
#define PX_METRICS_STAGES 5

void px_metrics_connection_open(void);
/* listener: the listen entry's index in the config (or -1); reason: the
 * disconnect reason of the log line. */
void px_metrics_connection_close(int listener, const char *reason);
/* A reply line sent to a client (the first digit is its class); at RCPT
 * it also counts the recipient's outcome. */
void px_metrics_reply(char first_digit, bool rcpt);
/* The transaction's log result; bytes relayed when it was accepted. */
void px_metrics_txn(const char *result, size_t bytes);
/* "unreachable", "lost" or "timeout". */
void px_metrics_backend_error(const char *kind);
void px_metrics_symbol(const char *name);
/* A DNS list answered 127.255.255.252-255 (its operator refuses us). */
void px_metrics_dnsbl_operator_error(const char *zone);
/* status: enum flt_dns_status. */
void px_metrics_dns(int status);
void px_metrics_store(bool ok);
/* A recipients_redis lookup: 0 known, 1 unknown, 2 error (451). */
void px_metrics_rcpt_lookup(unsigned result);
/* A 421 of limits.unknown_recipients_per_client. */
void px_metrics_unknown_limit(void);
void px_metrics_stage(unsigned stage, double seconds);
void px_metrics_eod(double seconds);
/* px_metrics_eod_backend - the backend's own end-of-data time: from the
 * start of sending it the message to its final reply. */
void px_metrics_eod_backend(double seconds);

/* px_metrics_connections - client connections open now. */
long long px_metrics_connections(void);

/* px_metrics_render - the exposition text (format 0.0.4) into out. */
void px_metrics_render(struct evbuffer *out, const struct px_config *cfg);

/* px_metrics_bind - bind cfg->metrics.address (if set), at startup before
 * the SMTP listeners; px_metrics_start - serve it (after daemonizing). */
int px_metrics_bind(const struct px_config *cfg, const char **error_r);
int px_metrics_start(const char **error_r);
void px_metrics_stop(void);

#endif
