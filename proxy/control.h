/* SPDX-License-Identifier: MIT */
/* control.h - the control socket (daemon side) and `mxguard ctl`. */
#ifndef MX_CONTROL_H
#define MX_CONTROL_H

#include <stdbool.h>

struct event_base;
struct px_config;

/* px_control_bind - create cfg->control_socket (if set), mode 0600, owned
 * by cfg->user: at startup, before the SMTP listeners, so a failure stops
 * mxguard before it takes mail.  Returns 0, or -1 with *error_r. */
int px_control_bind(const struct px_config *cfg, const char **error_r);

/* px_control_start - serve the bound socket on base, the main thread's
 * (after daemonizing). */
int px_control_start(struct event_base *base, const char **error_r);

/* px_control_reloaded - a SIGHUP reload ended (ok or not, and why), for
 * `mxguard ctl status`.  Main thread. */
void px_control_reloaded(bool ok, const char *why);

/* px_control_stop - close and unlink the socket. */
void px_control_stop(void);

/* px_ctl_main - `mxguard ctl ARGS`: argv[0] is the first word after
 * "ctl"; socket_path (-s) talks to a daemon without reading its config.
 * Returns the exit status. */
int px_ctl_main(const char *config_path, const char *socket_path, int argc,
                char **argv);

#endif
