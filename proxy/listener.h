/* SPDX-License-Identifier: MIT */
/*
 * listener.h - listening sockets, accepting, connection limits, and each
 * loop's part in a graceful stop.
 */
#ifndef MX_LISTENER_H
#define MX_LISTENER_H

#include <stdbool.h>
#include <sys/socket.h>

#include "config.h"

struct px_loop;

/* What a session needs to know of the listener that accepted it (a copy:
 * listeners outlive config reloads). */
struct px_listen_info {
	char address[PX_ADDRSTRLEN];
	enum px_mode mode;
	bool proxy_protocol;
	bool tls_implicit; /* TLS before the banner (fixed while bound) */
};

/* px_listeners_bind - create, bind and listen on every cfg->listen entry,
 * one socket per loop in an SO_REUSEPORT group (before privileges are
 * dropped; nloops as later given to px_listeners_attach).  Returns 0, or -1
 * with a message in *error_r (static or in a static buffer). */
int px_listeners_bind(const struct px_config *cfg, unsigned nloops,
                      const char **error_r);

/* px_listeners_attach - accept on loop (one call per loop, before it
 * starts): each loop accepts from its own socket of every address. */
void px_listeners_attach(struct px_loop *loop, unsigned nloops);

/* px_listeners_stop - from any thread: every loop stops accepting and asks
 * its sessions to finish; after grace seconds the rest are closed; each
 * loop exits when it has no session left. */
void px_listeners_stop(double grace);

/* px_conn_acquire - count a new connection from ip against the limits.
 * Returns 0, -1 over limits.connections, -2 over connections_per_ip. */
int px_conn_acquire(const struct px_config *cfg, const char *ip);

/* px_conn_release - the connection from ip is gone. */
void px_conn_release(const char *ip);

/* px_server_session_gone - a session of loop was freed (loop thread). */
void px_server_session_gone(struct px_loop *loop);

/* px_server_stopping - true once loop is stopping. */
bool px_server_stopping(struct px_loop *loop);

#endif
