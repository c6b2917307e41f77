/* SPDX-License-Identifier: MIT */
/*
 * json.h - JSON string literals from untrusted bytes, for the status page's
 * /api endpoints (metrics.c, stats.c).
 */
#ifndef MX_JSON_H
#define MX_JSON_H

#include <stddef.h>

/* PX_JSON_SIZE - the room px_json_escape() needs for len input bytes: at
 * most six output bytes per input byte, two quotes and a NUL. */
#define PX_JSON_SIZE(len) ((len)*6 + 3)

/*
 * px_json_escape - src (len bytes, any bytes) as a JSON string literal,
 * quotes included, into out (at least PX_JSON_SIZE(len) bytes).  Valid
 * UTF-8 is copied; each byte of an invalid sequence becomes U+FFFD, so the
 * output is always valid UTF-8 (RFC 8259 8.1).  Control characters, '"'
 * and '\\' are escaped (RFC 8259 7), and so are '<', '>', '&', U+2028 and
 * U+2029, so the text stays inert inside HTML or a script.  Returns the
 * length written, without the NUL.
 */
size_t px_json_escape(char *out, const char *src, size_t len);

#endif
