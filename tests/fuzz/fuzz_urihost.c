/* SPDX-License-Identifier: MIT */
/*
 * fuzz_urihost.c - libFuzzer harness for the URI host extraction of URIBL
 * (filters/urihost.c): any bytes (a URI is the sender's text).  Checks: on
 * success the host is non-empty, NUL-terminated within the buffer, only
 * lower-case host characters, no trailing dot, and a substring (ignoring
 * case) of the input; a buffer too small is refused, never overrun.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "urihost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[4096], out[256], small[9];
	size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1;

	memcpy(in, data, n);
	in[n] = '\0';
	if (flt_uri_host(in, out, sizeof(out)) == 0) {
		size_t len = strlen(out);

		if (len == 0 || len >= sizeof(out) || out[len - 1] == '.')
			abort();
		for (size_t i = 0; i < len; i++)
			if (!((out[i] >= 'a' && out[i] <= 'z') ||
			      (out[i] >= '0' && out[i] <= '9') ||
			      out[i] == '-' || out[i] == '.' || out[i] == '_'))
				abort();
		int found = 0;

		for (size_t i = 0; i + len <= n && !found; i++)
			found = strncasecmp(in + i, out, len) == 0;
		if (!found)
			abort();
	}
	memset(small, 'x', sizeof(small));
	if (flt_uri_host(in, small, sizeof(small) - 1) == 0 &&
	    memchr(small, '\0', sizeof(small) - 1) == NULL)
		abort();
	if (small[sizeof(small) - 1] != 'x')
		abort();
	return 0;
}
