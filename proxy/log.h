/* SPDX-License-Identifier: MIT */
/*
 * log.h - process log: one line per event, to stderr (foreground) or
 * syslog's mail facility (daemon mode).
 */
#ifndef MX_LOG_H
#define MX_LOG_H

#include <stdbool.h>

enum px_log_level {
	PX_LOG_ERR = 0,
	PX_LOG_WARN,
	PX_LOG_INFO,
	PX_LOG_DEBUG,
};

/* px_log_init - where lines go: stderr, or syslog (with facility, e.g.
 * LOG_MAIL) when use_syslog. */
void px_log_init(const char *ident, bool use_syslog, int facility);

/* px_log_attach - from a loop thread, before its loop runs: that thread's
 * lines are gathered and written once per loop iteration (one write(2) for
 * all the lines of a busy moment) instead of one write each.
 * px_log_detach - write what is gathered and stop gathering. */
struct event_base;
void px_log_attach(struct event_base *base);
void px_log_detach(void);

/* px_log_set_level - lines above level are dropped. */
void px_log_set_level(enum px_log_level level);

/* px_log - write one line; thread-safe (one write(2) per line). Warnings
 * and errors are prefixed "warning: " / "error: " as Postfix does. */
void px_log(enum px_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define px_log_err(...)   px_log(PX_LOG_ERR, __VA_ARGS__)
#define px_log_warn(...)  px_log(PX_LOG_WARN, __VA_ARGS__)
#define px_log_info(...)  px_log(PX_LOG_INFO, __VA_ARGS__)
#define px_log_debug(...) px_log(PX_LOG_DEBUG, __VA_ARGS__)

#endif
