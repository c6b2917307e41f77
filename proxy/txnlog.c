/* SPDX-License-Identifier: MIT */
/*
 * txnlog.c - escaping of log values.
 *
 * px_log_value(), px_log_str(): any peer-supplied string (HELO name,
 * addresses, replies) becomes a single token: control and 8-bit bytes as
 * \xHH, so a client cannot forge a log line with an embedded newline
 * (SECURITY), and values with spaces are quoted so key=value parsing holds.
 * px_log_reply(): the first line of a reply, for reply= and backend=.
 */
#include "txnlog.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* px_log_escape - px_log_value, quoted also when always_quote. */
static char *
px_log_escape(char *buf, size_t size, const char *src, size_t len,
              bool always_quote)
{
	static const char hex[] = "0123456789abcdef";
	bool quote = len == 0 || always_quote;
	size_t n = 0;

	if (src == NULL) {
		snprintf(buf, size, "-");
		return buf;
	}
	for (size_t i = 0; i < len && !quote; i++)
		if (src[i] == ' ')
			quote = true;
	if (size < 8) {
		buf[0] = '\0';
		return buf;
	}
	if (quote)
		buf[n++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (n + 6 >= size)
			break;
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
			buf[n++] = '\\';
			buf[n++] = 'x';
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		} else {
			buf[n++] = (char)ch;
		}
	}
	if (quote)
		buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

char *
px_log_value(char *buf, size_t size, const char *src, size_t len)
{
	return px_log_escape(buf, size, src, len, false);
}

char *
px_log_str(char *buf, size_t size, const char *src)
{
	return px_log_value(buf, size, src, src ? strlen(src) : 0);
}

char *
px_log_reply(char *buf, size_t size, const char *reply, size_t len)
{
	char tmp[600];
	size_t n;

	if (reply == NULL || len == 0) {
		snprintf(buf, size, "-");
		return buf;
	}
	/* Every line, joined by a space: a multi-line reply often carries the
	 * queue id on its last line. */
	n = 0;
	for (size_t i = 0; i < len && n < sizeof(tmp) - 1; i++) {
		if (reply[i] == '\r')
			continue;
		if (reply[i] == '\n') {
			if (i + 1 < len)
				tmp[n++] = ' ';
			continue;
		}
		tmp[n++] = reply[i];
	}
	/* Always quoted, like the replies that hold spaces. */
	return px_log_escape(buf, size, tmp, n, true);
}
