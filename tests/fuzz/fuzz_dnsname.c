/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dnsname.c - libFuzzer harness for the wire-format name reader of
 * DNS answers (filters/dnsname.c): any bytes (a zone's owner writes them).
 * The first byte picks the start offset (0-3) and the character set.
 * Checks: on success the text is non-empty, NUL-terminated within the
 * buffer, has no empty label, no byte outside the set, and is never longer
 * than the input; a small buffer is never overrun.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsname.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[300], small[12];

	if (size < 1)
		return 0;
	int off = data[0] & 3;
	enum flt_dns_name_chars chars =
	    (data[0] & 4) ? FLT_DNS_NAME_HOST : FLT_DNS_NAME_PRINTABLE;
	const unsigned char *p = data + 1;
	int len = (int)(size - 1 > 4096 ? 4096 : size - 1);

	if (flt_dns_name_text(p, len, off, chars, out, sizeof(out)) == 0) {
		size_t n = strnlen(out, sizeof(out));

		if (n == 0 || n == sizeof(out) || n > (size_t)len ||
		    out[0] == '.' || out[n - 1] == '.' || strstr(out, ".."))
			abort();
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)out[i];

			if (c <= 0x20 || c >= 0x7f)
				abort();
			if (chars == FLT_DNS_NAME_HOST && c != '.' &&
			    c != '-' && c != '_' && !(c >= 'a' && c <= 'z') &&
			    !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9'))
				abort();
		}
	}
	memset(small, 'x', sizeof(small));
	if (flt_dns_name_text(p, len, off, chars, small, sizeof(small) - 1) ==
	        0 &&
	    memchr(small, '\0', sizeof(small) - 1) == NULL)
		abort();
	if (small[sizeof(small) - 1] != 'x')
		abort();
	return 0;
}
