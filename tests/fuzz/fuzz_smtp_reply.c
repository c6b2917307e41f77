/* SPDX-License-Identifier: MIT */
/*
 * fuzz_smtp_reply.c - libFuzzer harness for the backend reply parser and
 * the EHLO capability parser (proxy/smtp_reply.c), and for the reply
 * formatter with peer-controlled text.
 *
 * The input is what a backend sends.  Replies are taken one after the
 * other, as the relay does with pipelined replies; each accepted reply
 * must be stable (a shorter prefix answers 0, any longer buffer the same
 * length), lie within the input and PX_REPLY_MAX, and carry a sane code.
 * px_caps_parse() must accept exactly the 250 replies.  The first bytes
 * are also formatted into one of our replies, which must parse back as
 * exactly one single-line reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t off = 0;
	struct px_reply_info info;
	struct px_caps caps;
	char out[600];
	size_t n, outsize;
	ssize_t r;

	while (off < size) {
		r = px_reply_parse(buf + off, size - off, &info);
		if (r < -1 || r > (ssize_t)(size - off) || r > PX_REPLY_MAX)
			abort();
		if (px_caps_parse(buf + off, size - off, &caps) !=
		    (r > 0 && info.code == 250 ? 0 : -1))
			abort();
		if (r <= 0)
			break;
		if (info.code < 200 || info.code > 599 || info.nlines == 0 ||
		    info.nlines > (unsigned)r / 4)
			abort();
		if (info.text_off + info.text_len > (size_t)r ||
		    strlen(info.enh) >= sizeof(info.enh))
			abort();
		if (info.enh[0] != '\0' && info.enh[0] != buf[off])
			abort();
		if (px_reply_parse(buf + off, (size_t)r - 1, NULL) != 0)
			abort();
		off += (size_t)r;
	}

	/* Peer text in our replies: never a second line. */
	outsize = size > 0 ? (data[0] % sizeof(out)) + 1 : sizeof(out);
	n = px_reply_format(out, outsize, 550, "5.7.1", "bad <%.*s>",
	                    (int)(size > 512 ? 512 : size), buf);
	if (n >= outsize || out[n] != '\0' || strlen(out) != n)
		abort();
	if (outsize >= 3 && (n < 2 || memcmp(out + n - 2, "\r\n", 2) != 0))
		abort();
	if (outsize > 12 && px_reply_parse(out, n, &info) != (ssize_t)n)
		abort();
	if (outsize > 12 && (info.code != 550 || info.nlines != 1))
		abort();
	return 0;
}
