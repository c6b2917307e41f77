/* SPDX-License-Identifier: MIT */
/*
 * relay.h - the connection to the backend MTA.
 *
 * One per client session, opened at the client's first MAIL and reused for
 * its later transactions.  Every operation is asynchronous and answers
 * through the callback given to px_relay_new(), exactly once per operation;
 * only one operation runs at a time.  The callback never runs before the
 * call that started the operation returns.
 */
#ifndef MX_RELAY_H
#define MX_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_reply.h"

struct event_base;
struct px_config;
struct px_spool;
struct px_relay;

enum px_relay_status {
	PX_RELAY_REPLY = 0,   /* the backend replied: see code/text */
	PX_RELAY_UNREACHABLE, /* could not connect or greet (451 4.4.1) */
	PX_RELAY_LOST,        /* connection lost or broken reply (451 4.4.2) */
	PX_RELAY_TIMEOUT,     /* no reply in time (451 4.4.2) */
};

struct px_relay_result {
	enum px_relay_status status;
	int code;          /* with PX_RELAY_REPLY */
	const char *reply; /* the reply, lines ending in CRLF */
	size_t reply_len;  /* (valid during the callback only) */
	const char *why;   /* short text for logs on failure */
	/* px_relay_message: true for the reply to the final dot, false for
	 * a reply to DATA itself (which was not 354). */
	bool final;
};

typedef void px_relay_cb(void *arg, const struct px_relay_result *res);

/* Who the real client is, for XCLIENT / XFORWARD / Received. */
struct px_relay_client {
	const char *ip;
	uint16_t port;
	const char *name;  /* verified reverse DNS name, NULL if unknown */
	const char *helo;  /* NULL if none */
	const char *proto; /* "SMTP" or "ESMTP" */
};

/*
 * px_relay_client_attrs - the XCLIENT or XFORWARD line (verb) naming client
 * c with the attributes in attrs (PX_XATTR_*), values xtext-encoded;
 * unknown NAME and HELO are "[UNAVAILABLE]" (Postfix XCLIENT_README and
 * XFORWARD_README).  Returns its length; truncated to fit size.
 */
size_t px_relay_client_attrs(char *buf, size_t size, const char *verb,
                             unsigned attrs, const struct px_relay_client *c);

/* px_relay_new - an unconnected relay for session sid; it takes its own
 * reference on cfg. */
struct px_relay *px_relay_new(struct event_base *base, struct px_config *cfg,
                              uint64_t sid, px_relay_cb *cb, void *arg);

/*
 * px_relay_take - a relay for session sid: an idle, greeted connection of
 * this loop's pool made with the same cfg to the same route when there is one
 * (px_relay_usable() is then true: go straight to MAIL), else a new
 * unconnected one (call px_relay_open()).  Loop thread only.
 */
struct px_relay *px_relay_take(struct event_base *base, struct px_config *cfg,
                               uint64_t sid, px_relay_cb *cb, void *arg,
                               unsigned route);

/* px_relay_set_route, px_relay_route - which backend (px_config_route(): 0
 * the default, i + 1 routes[i]); set before px_relay_open(). */
void px_relay_set_route(struct px_relay *r, unsigned route);
unsigned px_relay_route(const struct px_relay *r);

/*
 * px_relay_release - the session is done with *rp (sets it NULL): a clean,
 * idle connection that carries no client identity (no XCLIENT) is parked
 * in the pool (backend_pool.max_idle per loop, closed after
 * backend_pool.idle_timeout); anything else gets QUIT and is closed.
 */
void px_relay_release(struct px_relay **rp);

/* px_relay_reused - taken from the pool and no reply seen since: a failure
 * now may just be the backend's idle close, worth one retry on a fresh
 * connection. */
bool px_relay_reused(const struct px_relay *r);

/* px_relay_pool_drain - close this loop thread's pooled connections (the
 * loop is about to end). */
void px_relay_pool_drain(void);

/* px_relay_free - close at once, no callback; *rp = NULL; accepts NULL. */
void px_relay_free(struct px_relay **rp);

/* px_relay_usable - connected, greeted and idle (not closed by the
 * backend since). */
bool px_relay_usable(const struct px_relay *r);

/*
 * px_relay_open - connect, read the greeting, EHLO, and XCLIENT (then EHLO
 * again) when the backend offers it.  Answers REPLY with the last 250 on
 * success, else UNREACHABLE (the backend's own 4xx/5xx greeting or EHLO
 * reply is also reported as UNREACHABLE, with it in reply).
 */
void px_relay_open(struct px_relay *r, const struct px_relay_client *client);

/* px_relay_caps - what the backend advertised (after open). */
const struct px_caps *px_relay_caps(const struct px_relay *r);

/* px_relay_xclient_done - XCLIENT was accepted: the backend knows the real
 * client, so no Received header is needed. */
bool px_relay_xclient_done(const struct px_relay *r);

/* px_relay_set_private - the connection now carries one client's SMTP
 * AUTH: px_relay_release() closes it instead of pooling it. */
void px_relay_set_private(struct px_relay *r);

/* px_relay_command - send one command line (no CRLF) and answer with the
 * reply. */
void px_relay_command(struct px_relay *r, const char *line, size_t len);

/*
 * px_relay_message - send DATA; on 354 stream headers (raw, CRLF lines) and
 * then the spool's message dot-stuffed, then ".", and answer with the
 * backend's final reply (timeout: timeouts.data_done).  A reply other than
 * 354 to DATA is answered at once as the result.  sp must stay untouched
 * until the answer.  skip: bytes at the start of the spool not sent (the
 * header lines headers replaces, for a Subject rewrite; 0 normally).
 * When px_relay_chunking(): the same bytes in BDAT chunks instead, the
 * reply to BDAT LAST being the final reply.
 */
void px_relay_message(struct px_relay *r, const char *headers, size_t hlen,
                      struct px_spool *sp, size_t skip);

/* px_relay_chunking - px_relay_message() will use BDAT (RFC 3030): the
 * backend advertised CHUNKING and backend_chunking is on.  The bytes the
 * backend stores are the same either way; only BDAT carries a BINARYMIME
 * message.  When chunks are used, a failed chunk before the last is
 * answered with final false (the backend's MAIL is then still open). */
bool px_relay_chunking(const struct px_relay *r);

/* px_relay_quit - send QUIT if idle, and close without waiting for the
 * 221 (no callback); the relay can be opened again or freed. */
void px_relay_quit(struct px_relay *r);

/* The backend's capabilities as last seen by any connection or the startup
 * probe (process-wide, thread-safe); false if never seen. */
bool px_backend_caps_get(struct px_caps *caps);
void px_backend_caps_set(const struct px_caps *caps);

/*
 * px_backend_probe - blocking: connect to the backend, EHLO, QUIT, and
 * record its capabilities.  Used once at startup, before the loops run, so
 * the first client's EHLO already reflects the backend.  0 or -1.
 */
int px_backend_probe(const struct px_config *cfg, double timeout);

#endif
