/* SPDX-License-Identifier: MIT */
/*
 * notify.h - tell systemd (Type=notify) where mxguard is: READY=1 once
 * every listener is open and the loops run, RELOADING=1 / READY=1 around a
 * SIGHUP reload, STOPPING=1 at SIGTERM.  Without $NOTIFY_SOCKET it does
 * nothing.
 */
#ifndef MX_NOTIFY_H
#define MX_NOTIFY_H

/* px_notify - send state ("READY=1", ...) to $NOTIFY_SOCKET, if set. */
void px_notify(const char *state);

#endif
