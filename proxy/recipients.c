/* SPDX-License-Identifier: MIT */
/*
 * recipients.c - the recipient set of recipients.h: sorted arrays of
 * lower-case addresses and of domains (every domain named, with a flag for
 * a catch-all), searched with bsearch.  Built at config load, read-only
 * after px_rcptset_seal(), so every loop reads it without locking.
 */
#include "recipients.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

struct px_rcpt_domain {
	char *name;
	bool catch_all;
};

struct px_rcptset {
	char **addrs;
	size_t naddrs, capa;
	struct px_rcpt_domain *domains;
	size_t ndomains, capd;
};

struct px_rcptset *
px_rcptset_new(void)
{
	return px_calloc(1, sizeof(struct px_rcptset));
}

void
px_rcptset_free(struct px_rcptset **sp)
{
	struct px_rcptset *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	for (size_t i = 0; i < s->naddrs; i++)
		free(s->addrs[i]);
	free(s->addrs);
	for (size_t i = 0; i < s->ndomains; i++)
		free(s->domains[i].name);
	free(s->domains);
	free(s);
}

static void
px_rcpt_lower(char *p)
{
	for (; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

static void
px_rcpt_domain_add(struct px_rcptset *s, const char *domain, bool catch_all)
{
	for (size_t i = 0; i < s->ndomains; i++) {
		if (strcmp(s->domains[i].name, domain) == 0) {
			s->domains[i].catch_all |= catch_all;
			return;
		}
	}
	if (s->ndomains == s->capd) {
		s->capd = s->capd ? s->capd * 2 : 8;
		s->domains =
		    px_realloc(s->domains, s->capd * sizeof(*s->domains));
	}
	s->domains[s->ndomains].name = px_strdup(domain);
	s->domains[s->ndomains++].catch_all = catch_all;
}

int
px_rcptset_add(struct px_rcptset *s, const char *entry, const char **err_r)
{
	const char *at = strrchr(entry, '@');
	char *e;

	if (at == NULL || at[1] == '\0' || strchr(at + 1, '.') == NULL) {
		*err_r = "expected user@domain or @domain";
		return -1;
	}
	if (strlen(entry) > 320) {
		*err_r = "too long";
		return -1;
	}
	e = px_strdup(entry);
	px_rcpt_lower(e);
	px_rcpt_domain_add(s, e + (at - entry) + 1, at == entry);
	if (at == entry) {
		free(e);
		return 0;
	}
	if (s->naddrs == s->capa) {
		s->capa = s->capa ? s->capa * 2 : 64;
		s->addrs = px_realloc(s->addrs, s->capa * sizeof(*s->addrs));
	}
	s->addrs[s->naddrs++] = e;
	return 0;
}

static int
px_rcpt_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
px_rcpt_dcmp(const void *a, const void *b)
{
	return strcmp(((const struct px_rcpt_domain *)a)->name,
	              ((const struct px_rcpt_domain *)b)->name);
}

void
px_rcptset_seal(struct px_rcptset *s)
{
	if (s->naddrs > 0)
		qsort(s->addrs, s->naddrs, sizeof(*s->addrs), px_rcpt_cmp);
	if (s->ndomains > 0)
		qsort(s->domains, s->ndomains, sizeof(*s->domains),
		      px_rcpt_dcmp);
}

enum px_rcpt_known
px_rcptset_check(const struct px_rcptset *s, const char *addr, size_t len)
{
	char buf[330], *key = buf;
	const char *at;
	struct px_rcpt_domain dk, *d;

	if (s == NULL || len == 0 || len >= sizeof(buf))
		return PX_RCPT_NOT_VERIFIED;
	memcpy(buf, addr, len);
	buf[len] = '\0';
	px_rcpt_lower(buf);
	if ((at = strrchr(buf, '@')) == NULL)
		return PX_RCPT_NOT_VERIFIED; /* "postmaster": the backend's */
	dk.name = (char *)at + 1;
	d = s->ndomains > 0 ? bsearch(&dk, s->domains, s->ndomains,
	                              sizeof(*s->domains), px_rcpt_dcmp)
	                    : NULL;
	if (d == NULL)
		return PX_RCPT_NOT_VERIFIED;
	if (d->catch_all)
		return PX_RCPT_KNOWN;
	/* RFC 5321 4.5.1: postmaster of every domain we accept mail for. */
	if (strncmp(buf, "postmaster@", 11) == 0)
		return PX_RCPT_KNOWN;
	return s->naddrs > 0 && bsearch(&key, s->addrs, s->naddrs,
	                                sizeof(*s->addrs), px_rcpt_cmp)
	           ? PX_RCPT_KNOWN
	           : PX_RCPT_UNKNOWN;
}
