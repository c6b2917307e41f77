/* SPDX-License-Identifier: MIT */
/*
 * dmarc_from.c - the From domain DMARC evaluates (RFC 7489 6.6.1): the
 * From fields of a message's header section, parsed (RFC 5322 3.4
 * mailbox-list: display names, quoted strings, comments, groups).  A
 * parser of the sender's bytes: no I/O, bounded by its input.
 */
#include "dmarc_from.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

/* flt_dmarc_addr_domain - the domain of one mailbox (text between
 * separators, comments and quoted strings already blanked): the part
 * after the last "@" of the angle-addr, or of the whole.  0, or -1 if none
 * or not a plausible domain. */
static int
flt_dmarc_addr_domain(const char *m, size_t len, char *out, size_t size)
{
	const char *lt = memchr(m, '<', len), *at = NULL, *end = m + len;
	size_t n = 0;

	if (lt != NULL) {
		const char *gt = memchr(lt, '>', (size_t)(end - lt));

		if (gt == NULL)
			return -1;
		m = lt + 1;
		end = gt;
	}
	for (const char *p = m; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return -1;
	bool gap = false; /* white space after the domain began */

	for (const char *p = at + 1; p < end; p++) {
		char c = *p;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			gap = n > 0;
			continue;
		}
		if (gap) /* "a@exa mple.com": not one domain */
			return -1;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return -1;
		if (n + 1 >= size)
			return -1;
		out[n++] = c;
	}
	while (n > 0 && out[n - 1] == '.')
		n--;
	out[n] = '\0';
	return n > 0 && out[0] != '.' && strstr(out, "..") == NULL ? 0 : -1;
}

/* flt_dmarc_from_value - the domains of one From field's value (RFC 5322
 * 3.4 mailbox-list, groups included), into from; 0 if they are all one
 * domain, -1 if none or several. */
static int
flt_dmarc_from_value(char *v, size_t len, char *from, size_t size,
                     unsigned *naddr)
{
	int depth = 0;
	bool quoted = false;
	size_t start = 0;

	/* Comments and quoted strings cannot hold separators: blank them. */
	for (size_t i = 0; i < len; i++) {
		char c = v[i];

		if (quoted) {
			if (c == '\\' && i + 1 < len)
				v[i++] = ' ';
			else if (c == '"')
				quoted = false;
			v[i] = ' ';
		} else if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				v[i++] = ' ';
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			v[i] = ' ';
		} else if (c == '"') {
			quoted = true;
			v[i] = ' ';
		} else if (c == '(') {
			depth = 1;
			v[i] = ' ';
		}
	}
	for (size_t i = 0; i <= len; i++) {
		char d[256];
		bool blank = true;

		if (i < len && v[i] != ',' && v[i] != ':' && v[i] != ';')
			continue;
		for (size_t j = start; j < i; j++)
			if (strchr(" \t\r\n", v[j]) == NULL)
				blank = false;
		if (i < len && v[i] == ':') { /* a group's display name */
			start = i + 1;
			continue;
		}
		if (!blank) {
			if (flt_dmarc_addr_domain(v + start, i - start, d,
			                          sizeof(d)) < 0)
				return -1;
			/* A domain that does not fit is not cut short. */
			if (strlen(d) >= size ||
			    (*naddr > 0 && strcmp(d, from) != 0))
				return -1;
			snprintf(from, size, "%s", d);
			(*naddr)++;
		}
		start = i + 1;
	}
	return 0;
}

int
flt_dmarc_from(const char *msg, size_t len, char *from, size_t size,
               const char **why)
{
	unsigned nfields = 0, naddr = 0;
	size_t i = 0;

	from[0] = '\0';
	*why = NULL;
	while (i < len) {
		size_t s = i, e;

		if (msg[i] == '\r' || msg[i] == '\n')
			break; /* the blank line: end of the header section */
		/* The field, continuation lines included. */
		for (e = i; e < len; e++)
			if (msg[e] == '\n' &&
			    (e + 1 >= len ||
			     (msg[e + 1] != ' ' && msg[e + 1] != '\t')))
				break;
		i = e < len ? e + 1 : len;
		if (e - s < 5 || strncasecmp(msg + s, "from", 4) != 0)
			continue;
		size_t c = s + 4;

		while (c < e && (msg[c] == ' ' || msg[c] == '\t'))
			c++;
		if (c >= e || msg[c] != ':')
			continue;
		nfields++;
		if (nfields > 1) {
			*why = "multiple From fields";
			from[0] = '\0';
			return -1;
		}
		char *v = px_strndup(msg + c + 1, e - c - 1);
		int rc = flt_dmarc_from_value(v, e - c - 1, from, size, &naddr);

		free(v);
		if (rc < 0) {
			*why = naddr > 0 ? "From addresses in several domains"
			                 : "unreadable From address";
			from[0] = '\0';
			return -1;
		}
	}
	if (nfields == 0 || naddr == 0) {
		*why = nfields == 0 ? "no From field" : "no From address";
		from[0] = '\0';
		return -1;
	}
	return 0;
}
