/* SPDX-License-Identifier: MIT */
/*
 * subject.c - put subject_prefix before a tagged message's Subject, as
 * SpamAssassin's `rewrite_header Subject` does.
 *
 * px_subject_rewrite() works on the header section only: the session sends
 * the rewritten section in place of the original one and streams the rest
 * of the spool from where the section ended (px_relay_message's skip), so
 * the body is never copied.  The value keeps its encoding: the prefix goes
 * before it, separated by the prefix's own blank, which RFC 2047 5(1)
 * needs before an encoded word.
 */
#include "subject.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

char *
px_subject_rewrite(const char *msg, size_t len, int complete,
                   const char *prefix, size_t *hdr_len_r)
{
	size_t hl = 0, plen = strlen(prefix), at = (size_t)-1, vstart = 0;
	const char *p = msg, *e = msg + len;
	char *out;

	/* The section ends at the empty line (or with the message). */
	for (;;) {
		const char *nl;

		if (p == e) {
			if (!complete)
				return NULL;
			break;
		}
		if (*p == '\n' || (*p == '\r' && p + 1 < e && p[1] == '\n'))
			break; /* the empty line */
		nl = memchr(p, '\n', (size_t)(e - p));
		if (nl == NULL) {
			if (!complete)
				return NULL;
			p = e;
			break;
		}
		if (at == (size_t)-1 && (size_t)(nl - p) >= 8 &&
		    strncasecmp(p, "Subject:", 8) == 0) {
			at = (size_t)(p - msg);
			vstart = at + 8;
			while (vstart < len &&
			       (msg[vstart] == ' ' || msg[vstart] == '\t'))
				vstart++;
		}
		p = nl + 1;
	}
	hl = (size_t)(p - msg);
	/* The result is a C string: a NUL in the section (a BINARYMIME
	 * message may hold one) would cut it short, and the lines after it
	 * would be lost. */
	if (memchr(msg, '\0', hl) != NULL)
		return NULL;
	*hdr_len_r = hl;
	if (at != (size_t)-1) {
		size_t cut = vstart;

		/* Already prefixed (a message that passed twice). */
		if (len - vstart >= plen &&
		    memcmp(msg + vstart, prefix, plen) == 0)
			return px_strndup(msg, hl);
		/* "Subject: x" -> "Subject: [SPAM] x". */
		out = px_malloc(hl + plen + 2);
		memcpy(out, msg, at + 8);
		out[at + 8] = ' ';
		memcpy(out + at + 9, prefix, plen);
		memcpy(out + at + 9 + plen, msg + cut, hl - cut);
		out[at + 9 + plen + hl - cut] = '\0';
		return out;
	}
	/* No Subject: add one with the prefix, trimmed. */
	size_t tl = plen;

	while (tl > 0 && (prefix[tl - 1] == ' ' || prefix[tl - 1] == '\t'))
		tl--;
	out = px_malloc(hl + tl + 16);
	memcpy(out, msg, hl);
	/* The last header line may lack its CRLF in a headers-only message. */
	size_t n = hl;

	if (n > 0 && out[n - 1] != '\n') {
		memcpy(out + n, "\r\n", 2);
		n += 2;
	}
	memcpy(out + n, "Subject: ", 9);
	memcpy(out + n + 9, prefix, tl);
	memcpy(out + n + 9 + tl, "\r\n", 3);
	return out;
}
