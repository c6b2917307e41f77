/* SPDX-License-Identifier: MIT */
/*
 * urihost.c - the host part of a URI found in a message (urihost.h).
 * Apart from uribl.c so the fuzzer links it alone: the URI is the
 * sender's text.
 */
#include "urihost.h"

#include <string.h>

int
flt_uri_host(const char *uri, char *buf, size_t size)
{
	const char *p = strstr(uri, "://"), *end, *at;
	size_t n;

	p = p != NULL ? p + 3 : uri;
	end = p + strcspn(p, "/?#\\ \t");
	at = memchr(p, '@', (size_t)(end - p)); /* user:pass@host */
	if (at != NULL)
		p = at + 1;
	if (*p == '[')
		return -1; /* IPv6 literal: the lists have no form for it */
	n = strcspn(p, ":/?#\\ \t");
	if (n == 0 || n >= size)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return -1; /* not a host name we can ask about */
		buf[i] = c;
	}
	while (n > 0 && buf[n - 1] == '.')
		n--;
	buf[n] = '\0';
	return n > 0 ? 0 : -1;
}
