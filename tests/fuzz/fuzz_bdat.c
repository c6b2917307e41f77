/* SPDX-License-Identifier: MIT */
/*
 * fuzz_bdat.c - libFuzzer harness for the BDAT receiver (proxy/bdat.c).
 *
 * The first input line is given to px_bdat_parse_arg(); a size it accepts
 * must print back to the digits it was given (less leading zeros).  The
 * rest is the message: the chunk checker must give the same status, size
 * and line_too_long flag when fed whole, byte by byte, and in chunks whose
 * sizes come from the input's own bytes; a message it passes must hold no
 * NUL, and every CR and LF in it must be a CRLF pair.  Any mismatch aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bdat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
	enum px_bdat_status st;
	bool too_long;
	unsigned long long size;
};

/* check - feed msg in pieces of step(i) octets (0: whole) */
static void
check(const char *msg, size_t len, int mode, struct result *r)
{
	struct px_bdat_check c;
	size_t off = 0, i = 0;

	px_bdat_check_init(&c, 78);
	while (off < len) {
		size_t n = len - off;

		if (mode == 1)
			n = 1;
		else if (mode == 2)
			n = 1 + (unsigned char)msg[i++ % len] % 7;
		if (n > len - off)
			n = len - off;
		px_bdat_check_feed(&c, msg + off, n);
		off += n;
	}
	r->st = px_bdat_check_end(&c);
	r->too_long = c.line_too_long;
	r->size = c.size;
	if (r->size != len)
		abort();
}

static void
check_arg(const char *arg, size_t len)
{
	unsigned long long n;
	bool last;
	char buf[32];
	size_t i = 0, digits;

	if (px_bdat_parse_arg(arg, len, &n, &last) != 0)
		return;
	while (i < len && arg[i] == '0' && i + 1 < len && arg[i + 1] >= '0' &&
	       arg[i + 1] <= '9')
		i++;
	digits = 0;
	while (i + digits < len && arg[i + digits] >= '0' &&
	       arg[i + digits] <= '9')
		digits++;
	snprintf(buf, sizeof(buf), "%llu", n);
	if (strlen(buf) != digits || memcmp(buf, arg + i, digits) != 0)
		abort();
	if (last != (i + digits < len))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t alen = nl != NULL ? (size_t)(nl - in) : size;
	const char *msg = nl != NULL ? nl + 1 : in + size;
	size_t len = size - (size_t)(msg - in);
	struct result a, b, c;

	check_arg(in, alen);
	check(msg, len, 0, &a);
	check(msg, len, 1, &b);
	check(msg, len, 2, &c);
	if (a.st != b.st || a.st != c.st || a.too_long != b.too_long ||
	    a.too_long != c.too_long)
		abort();
	if (a.st == PX_BDAT_OK) {
		if (memchr(msg, '\0', len) != NULL)
			abort();
		for (size_t i = 0; i < len; i++) {
			if (msg[i] == '\r' &&
			    (i + 1 == len || msg[i + 1] != '\n'))
				abort();
			if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
				abort();
		}
	}
	return 0;
}
