/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proxy_proto.c - libFuzzer harness for the PROXY protocol v1/v2
 * parser (proxy/proxy_proto.c).
 *
 * The input is the first bytes of a connection.  Besides memory safety the
 * harness checks the contract the listener depends on, over every prefix
 * of the input (all of them for short inputs, a sample for long ones): the
 * answer is 0 until it is decided and then the same for good, -1 always
 * comes with an error text, and an accepted header has a version and, if
 * not local, addresses of one family.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssize_t
parse_checked(const uint8_t *data, size_t size, struct px_proxy_hdr *h)
{
	const char *err = NULL;
	ssize_t r = px_proxy_parse(data, size, h, &err);

	if (r < -1 || r > (ssize_t)size)
		abort();
	if ((r == -1) != (err != NULL))
		abort();
	if (r > 0) {
		if (h->version != 1 && h->version != 2)
			abort();
		if (h->version == 1 && r > PX_PROXY_V1_MAX)
			abort();
		if (h->local && (h->src.ss_family != AF_UNSPEC ||
		                 h->dst.ss_family != AF_UNSPEC))
			abort();
		if (!h->local && (h->src.ss_family != h->dst.ss_family ||
		                  (h->src.ss_family != AF_INET &&
		                   h->src.ss_family != AF_INET6)))
			abort();
	}
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct px_proxy_hdr whole, h;
	ssize_t want = parse_checked(data, size, &whole);
	size_t step = size <= 300 ? 1 : size / 64;
	size_t decided = 0;

	for (size_t k = 0; k <= size; k += step) {
		ssize_t r = parse_checked(data, k, &h);

		if (r == 0) {
			if (decided)
				abort(); /* decided, then undecided */
			continue;
		}
		if (!decided)
			decided = k;
		if (r != want)
			abort();
		if (r > 0 && memcmp(&h, &whole, sizeof(h)) != 0)
			abort();
	}
	/* An accepted header is decided exactly when it is complete. */
	if (want > 0 && parse_checked(data, (size_t)want - 1, &h) != 0)
		abort();
	return 0;
}
