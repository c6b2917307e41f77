/* SPDX-License-Identifier: MIT */
/*
 * txnlog.h - log values from peer data, escaped so one log line is always
 * one line and greppable (STYLE "Logging").
 */
#ifndef MX_TXNLOG_H
#define MX_TXNLOG_H

#include <stddef.h>

/*
 * px_log_value - write src (len bytes) into buf as a log value: "-" when
 * src is NULL; bytes outside printable ASCII, '"' and '\\' escaped as \xHH;
 * the whole value in double quotes when it holds a space or is empty.
 * Truncates to fit size (always NUL-terminated).  Returns buf.
 */
char *px_log_value(char *buf, size_t size, const char *src, size_t len);

/* px_log_str - px_log_value for a NUL-terminated string (or NULL). */
char *px_log_str(char *buf, size_t size, const char *src);

/* px_log_reply - the first line of an SMTP reply, without its CRLF, as a
 * quoted value for reply= and backend=. */
char *px_log_reply(char *buf, size_t size, const char *reply, size_t len);

#endif
