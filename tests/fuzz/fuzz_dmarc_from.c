/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dmarc_from.c - libFuzzer harness for the From domain parser of
 * DMARC (filters/dmarc_from.c): any bytes as a header section.  Checks:
 * on success the domain is non-empty, NUL-terminated within the buffer,
 * lower-case domain characters only, no leading or trailing dot, no empty
 * label; on failure a reason and an empty domain; a small buffer gives the
 * same domain or a refusal, never a cut one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc_from.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char from[256], small[12];
	const char *why = NULL, *why2 = NULL;
	/* An exact-size copy, so reading past the input is caught. */
	char *in = malloc(size ? size : 1);
	int rc, rc2;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	rc = flt_dmarc_from(in, size, from, sizeof(from), &why);
	if (rc == 0) {
		size_t len = strlen(from);

		if (len == 0 || len >= sizeof(from) || from[0] == '.' ||
		    from[len - 1] == '.' || strstr(from, "..") != NULL)
			abort();
		for (size_t i = 0; i < len; i++)
			if (!((from[i] >= 'a' && from[i] <= 'z') ||
			      (from[i] >= '0' && from[i] <= '9') ||
			      from[i] == '-' || from[i] == '.' ||
			      from[i] == '_'))
				abort();
	} else if (rc != -1 || why == NULL || from[0] != '\0') {
		abort();
	}
	rc2 = flt_dmarc_from(in, size, small, sizeof(small), &why2);
	if (rc2 == 0 && (rc != 0 || strcmp(small, from) != 0))
		abort();
	if (rc2 != 0 && rc == 0 && strlen(from) < sizeof(small))
		abort();
	free(in);
	return 0;
}
