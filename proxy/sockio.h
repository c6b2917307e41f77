/* SPDX-License-Identifier: MIT */
/*
 * sockio.h - writing to a socket bufferevent without arming its write event
 * for every reply.
 *
 * libevent arms (epoll_ctl) a bufferevent's write event whenever data is
 * added and disarms it when the buffer empties: two system calls and one
 * extra loop wakeup per SMTP reply.  We keep EV_WRITE disabled, write
 * straight away, and enable it only when the socket is full, as Redis does
 * with its pending-writes list.
 */
#ifndef MX_SOCKIO_H
#define MX_SOCKIO_H

#include <stdbool.h>

struct bufferevent;

/*
 * px_sock_flush - write what the output buffer holds now.  When the socket
 * takes it all, nothing else happens; otherwise EV_WRITE is enabled and the
 * bufferevent's write callback runs when the rest has gone (call
 * px_sock_drained() there).  Returns true when the buffer is empty.
 */
bool px_sock_flush(struct bufferevent *bev);

/* px_sock_drained - from the write callback: disable EV_WRITE again when
 * the output is empty.  Returns true when it is. */
bool px_sock_drained(struct bufferevent *bev);

#endif
