/* SPDX-License-Identifier: MIT */
/*
 * log.c - the process log.
 *
 * In the foreground each line is "2026-11-29T08:30:00.123Z mxguard[PID]:
 * message" on stderr, written with one write(2) so lines from several loop
 * threads never interleave.  In daemon mode lines go to syslog (LOG_MAIL),
 * which adds its own timestamp, so they sit next to Postfix's.
 */
#include "log.h"

#include <event2/event.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *px_log_ident = "mxguard";
static bool px_log_syslog;
static enum px_log_level px_log_max = PX_LOG_INFO;
static long px_log_pid; /* cached: getpid() is a system call */

/* Per loop thread: lines gathered during one loop iteration. */
#define PX_LOG_GATHER 16384
static __thread char *px_log_buf;
static __thread size_t px_log_len;
static __thread struct event *px_log_ev;

static void
px_log_write(const char *buf, size_t len)
{
	/* A failed log write has nowhere to be reported. */
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}

static void
px_log_flush(evutil_socket_t fd, short what, void *arg)
{
	if (px_log_len > 0)
		px_log_write(px_log_buf, px_log_len);
	px_log_len = 0;
}

void
px_log_attach(struct event_base *base)
{
	static char dummy;

	if (px_log_syslog)
		return;
	px_log_buf = malloc(PX_LOG_GATHER);
	if (px_log_buf == NULL)
		return;
	/* An event with no fd, made active when the first line of an
	 * iteration arrives: it runs after the callbacks already due. */
	px_log_ev = event_new(base, -1, 0, px_log_flush, &dummy);
}

void
px_log_detach(void)
{
	px_log_flush(-1, 0, NULL);
	if (px_log_ev != NULL)
		event_free(px_log_ev);
	px_log_ev = NULL;
	free(px_log_buf);
	px_log_buf = NULL;
}

void
px_log_init(const char *ident, bool use_syslog, int facility)
{
	px_log_ident = ident;
	px_log_syslog = use_syslog;
	px_log_pid = (long)getpid();
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, facility);
}

void
px_log_set_level(enum px_log_level level)
{
	px_log_max = level;
}

void
px_log(enum px_log_level level, const char *fmt, ...)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	static const char *const prefix[] = {"error: ", "warning: ", "", ""};
	char line[4096];
	size_t n = 0;
	va_list ap;

	if (level > px_log_max)
		return;
	if (!px_log_syslog) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		                      ".%03ldZ %s[%ld]: ", ts.tv_nsec / 1000000,
		                      px_log_ident,
		                      px_log_pid ? px_log_pid : (long)getpid());
	}
	n += (size_t)snprintf(line + n, sizeof(line) - n, "%s", prefix[level]);
	va_start(ap, fmt);
	if (n < sizeof(line))
		n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	if (px_log_syslog) {
		line[n] = '\0';
		syslog(prio[level], "%s", line);
		return;
	}
	line[n++] = '\n';
	if (px_log_ev == NULL) {
		px_log_write(line, n);
		return;
	}
	if (px_log_len + n > PX_LOG_GATHER)
		px_log_flush(-1, 0, NULL);
	memcpy(px_log_buf + px_log_len, line, n);
	if (px_log_len == 0)
		event_active(px_log_ev, EV_TIMEOUT, 0);
	px_log_len += n;
}
