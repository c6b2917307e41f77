/* SPDX-License-Identifier: MIT */
/*
 * relay_control.c - the accepted-domain set and the RCPT classification
 * (see relay_control.h).
 *
 * px_domains_new(), px_domains_add(), px_domains_seal(): build the set at
 *   config load (exact names and ".suffix" entries in two sorted arrays,
 *   address literals in a third).
 * px_domains_match(): one binary search per label of the domain, so a file
 *   of many thousand domains costs a few comparisons per recipient.
 * px_rcpt_classify(): local, foreign, routing or literal.
 *
 * Lifetime: the set belongs to the config (process lifetime, swapped whole
 * on reload) and is read-only once sealed.
 *
 * RFC 5321 2.3.5 (domain names are case-insensitive), 4.1.2 (the path
 * syntax), 4.1.3 (address literals), appendix C (source routes: the
 * parser strips them, so the final mailbox is what is classified); RFC 6531
 * (U-labels are compared byte for byte).
 */
#include "relay_control.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "alloc.h"

#define PX_DOMAIN_MAXLEN 255

struct px_literal {
	int family;
	uint8_t addr[16];
};

struct px_domains {
	char **exact; /* lower case, sorted */
	size_t nexact;
	char **suffix; /* ".example.com", lower case, sorted */
	size_t nsuffix;
	struct px_literal *lit;
	size_t nlit;
};

static char
px_lc(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

struct px_domains *
px_domains_new(void)
{
	return px_calloc(1, sizeof(struct px_domains));
}

void
px_domains_free(struct px_domains **dp)
{
	struct px_domains *d = *dp;

	if (d == NULL)
		return;
	*dp = NULL;
	for (size_t i = 0; i < d->nexact; i++)
		free(d->exact[i]);
	for (size_t i = 0; i < d->nsuffix; i++)
		free(d->suffix[i]);
	free(d->exact);
	free(d->suffix);
	free(d->lit);
	free(d);
}

/* px_literal_parse - the text inside "[...]": IPv4, or "IPv6:" and an IPv6
 * address.  Returns false for anything else. */
static bool
px_literal_parse(const char *s, size_t len, struct px_literal *lit)
{
	char tmp[64];

	memset(lit, 0, sizeof(*lit));
	if (len >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		if (len - 5 >= sizeof(tmp))
			return false;
		memcpy(tmp, s + 5, len - 5);
		tmp[len - 5] = '\0';
		lit->family = AF_INET6;
		return inet_pton(AF_INET6, tmp, lit->addr) == 1;
	}
	if (len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	lit->family = AF_INET;
	return inet_pton(AF_INET, tmp, lit->addr) == 1;
}

/* px_name_valid - dot-separated labels of letters, digits, '-' and 8-bit
 * bytes (U-labels), none empty or longer than 63. */
static bool
px_name_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c >= 0x80) ||
		    ++label > 63)
			return false;
	}
	return label > 0;
}

static void
px_strv_push(char ***v, size_t *n, const char *s, size_t len)
{
	char *copy = px_strndup(s, len);

	for (size_t i = 0; i < len; i++)
		copy[i] = px_lc(copy[i]);
	*v = px_realloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = copy;
}

int
px_domains_add(struct px_domains *d, const char *name, const char **error_r)
{
	size_t len = strlen(name);

	if (len > 0 && name[0] == '[') {
		struct px_literal lit;

		if (len < 3 || name[len - 1] != ']' ||
		    !px_literal_parse(name + 1, len - 2, &lit)) {
			*error_r = "not an address literal like [192.0.2.1] "
			           "or [IPv6:2001:db8::1]";
			return -1;
		}
		d->lit = px_realloc(d->lit, (d->nlit + 1) * sizeof(*d->lit));
		d->lit[d->nlit++] = lit;
		return 0;
	}
	if (len > 1 && name[len - 1] == '.')
		len--;
	if (name[0] == '.') {
		if (!px_name_valid(name + 1, len - 1)) {
			*error_r = "not a domain name";
			return -1;
		}
		px_strv_push(&d->suffix, &d->nsuffix, name, len);
		return 0;
	}
	if (!px_name_valid(name, len)) {
		*error_r = "not a domain name";
		return -1;
	}
	px_strv_push(&d->exact, &d->nexact, name, len);
	return 0;
}

static int
px_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
px_domains_seal(struct px_domains *d)
{
	if (d->nexact > 1)
		qsort(d->exact, d->nexact, sizeof(char *), px_strcmp_p);
	if (d->nsuffix > 1)
		qsort(d->suffix, d->nsuffix, sizeof(char *), px_strcmp_p);
}

size_t
px_domains_count(const struct px_domains *d)
{
	return d == NULL ? 0 : d->nexact + d->nsuffix + d->nlit;
}

static bool
px_strv_find(char *const *v, size_t n, const char *key)
{
	return n > 0 &&
	       bsearch(&key, v, n, sizeof(char *), px_strcmp_p) != NULL;
}

bool
px_domains_match(const struct px_domains *d, const char *domain, size_t len)
{
	char buf[PX_DOMAIN_MAXLEN + 1];

	if (d == NULL || len == 0)
		return false;
	if (domain[0] == '[') {
		struct px_literal lit;

		if (len < 3 || domain[len - 1] != ']' ||
		    !px_literal_parse(domain + 1, len - 2, &lit))
			return false;
		for (size_t i = 0; i < d->nlit; i++)
			if (d->lit[i].family == lit.family &&
			    memcmp(d->lit[i].addr, lit.addr, 16) == 0)
				return true;
		return false;
	}
	if (len > PX_DOMAIN_MAXLEN)
		return false;
	for (size_t i = 0; i < len; i++)
		buf[i] = px_lc(domain[i]);
	buf[len] = '\0';
	/* A NUL inside would make the comparison stop short. */
	if (strlen(buf) != len)
		return false;
	if (px_strv_find(d->exact, d->nexact, buf))
		return true;
	/* ".example.com" covers a.example.com and a.b.example.com: try
	 * each parent, label by label. */
	for (size_t i = 1; i < len; i++)
		if (buf[i] == '.' &&
		    px_strv_find(d->suffix, d->nsuffix, buf + i))
			return true;
	return false;
}

enum px_rcpt_class
px_rcpt_classify(const struct px_domains *d, const char *addr, size_t len)
{
	const char *at = NULL;

	/* The domain holds no '@' (nor does a literal), so the last one
	 * separates it from a local part that may hold quoted ones. */
	for (size_t i = len; i > 0; i--) {
		if (addr[i - 1] == '@') {
			at = addr + i - 1;
			break;
		}
	}
	if (at == NULL)
		return len == 10 && strncasecmp(addr, "postmaster", 10) == 0
		           ? PX_RCPT_LOCAL
		           : PX_RCPT_UNPARSEABLE;
	size_t llen = (size_t)(at - addr), dlen = len - llen - 1;

	if (dlen == 0)
		return PX_RCPT_UNPARSEABLE;
	if (!px_domains_match(d, at + 1, dlen))
		return at[1] == '[' ? PX_RCPT_LITERAL : PX_RCPT_FOREIGN;
	/* SECURITY: sender-specified routing (relay_control.h). */
	for (size_t i = 0; i < llen; i++)
		if (addr[i] == '%' || addr[i] == '!' || addr[i] == '@')
			return PX_RCPT_ROUTING;
	return PX_RCPT_LOCAL;
}

const char *
px_rcpt_class_name(enum px_rcpt_class c)
{
	switch (c) {
	case PX_RCPT_LOCAL:
		return "local";
	case PX_RCPT_FOREIGN:
		return "foreign";
	case PX_RCPT_ROUTING:
		return "routing";
	case PX_RCPT_LITERAL:
		return "literal";
	default:
		return "syntax";
	}
}
