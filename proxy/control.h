/* SPDX-License-Identifier: MIT */
/* control.h - the control socket (daemon side) and `mxguard ctl`. */
#ifndef MX_CONTROL_H
#define MX_CONTROL_H

struct event_base;
struct px_config;

/* px_control_start - listen on cfg->control_socket (if set) on base, the
 * main thread's.  Returns 0, or -1 with *error_r. */
int px_control_start(struct event_base *base, const struct px_config *cfg,
                     const char **error_r);

/* px_control_stop - close and unlink the socket. */
void px_control_stop(void);

/* px_ctl_main - `mxguard ctl ARGS`: argv[0] is the first word after
 * "ctl".  Returns the exit status. */
int px_ctl_main(const char *config_path, int argc, char **argv);

#endif
