/* SPDX-License-Identifier: MIT */
/*
 * fuzz_mime.c - libFuzzer harness for the MIME decoder content rules see
 * through (rules/mime.c, html.c, uri.c): any bytes as a message.  Checks:
 * the body always starts with the Subject paragraph, every string is
 * NUL-terminated within what was allocated (ASan), the flags are known
 * ones, and a truncated parse of the same bytes never reports a missing
 * boundary that the whole one did not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rule_msg *m = rule_msg_parse((const char *)data, size, false);
	struct rule_msg *t = rule_msg_parse((const char *)data, size, true);
	size_t total = 0;

	if (m->nbody < 1 || m->full_len != size)
		abort();
	if (m->flags >> RULE_MIME_NFLAGS)
		abort();
	if ((t->flags & RULE_MIME_MISSING_BOUNDARY) &&
	    !(m->flags & RULE_MIME_MISSING_BOUNDARY))
		abort();
	for (size_t i = 0; i < m->nbody; i++)
		total += strlen(m->body[i]);
	for (size_t i = 0; i < m->nuris; i++)
		total += strlen(m->uris[i]);
	for (size_t i = 0; i < m->nhdrs; i++)
		total += strlen(m->hdrs[i].value) + strlen(m->hdrs[i].raw);
	(void)total;
	rule_msg_free(&m);
	rule_msg_free(&t);
	return 0;
}
