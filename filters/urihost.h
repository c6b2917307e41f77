/* SPDX-License-Identifier: MIT */
/* urihost.h - the host of a URI, for URIBL lookups. */
#ifndef MX_URIHOST_H
#define MX_URIHOST_H

#include <stddef.h>

/*
 * flt_uri_host - the host of uri ("scheme://user@host:port/path", or a
 * bare "host/path"), lower case, without trailing dots, into buf (size
 * bytes).  Returns 0, or -1 when there is no host name we can ask a list
 * about: empty, too long, an IPv6 literal, or characters a host name does
 * not have.
 */
int flt_uri_host(const char *uri, char *buf, size_t size);

#endif
