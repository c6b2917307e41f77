/* SPDX-License-Identifier: MIT */
/*
 * session.h - one client connection: the server side of SMTP (RFC 5321),
 * driving the filters and the backend relay.
 */
#ifndef MX_SESSION_H
#define MX_SESSION_H

#include <sys/socket.h>

struct px_loop;
struct px_listen_info;
struct px_session;

/* px_session_start - take over the accepted socket fd (closed on error).
 * Loop thread only. */
void px_session_start(struct px_loop *loop, const struct px_listen_info *li,
                      int fd, const struct sockaddr *peer, socklen_t peerlen);

/* px_session_shutdown - the process is stopping: an idle session gets 421
 * now, a busy one when its transaction ends. */
void px_session_shutdown(struct px_session *s);

/* px_session_kill - the grace period is over: 421 and close now. */
void px_session_kill(struct px_session *s);

#endif
