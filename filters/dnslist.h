/* SPDX-License-Identifier: MIT */
/* dnslist.h - what DNS list checks share (dnsbl.c, uribl.c). */
#ifndef MX_DNSLIST_H
#define MX_DNSLIST_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dns.h"

/*
 * flt_dnslist_listed - does the answer to a query of list l make a listing?
 * An A record matching the list's codes (none: any 127/8) does; the
 * operator error codes 127.255.255.252-255 never do and are logged (for
 * session sid, the name asked) and counted.  Anything but an answer is
 * not a listing.
 */
bool flt_dnslist_listed(const struct px_dnslist *l,
                        const struct flt_dns_result *res, uint64_t sid,
                        const char *name);

#endif
