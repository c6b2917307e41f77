/* SPDX-License-Identifier: MIT */
/*
 * dmarc_from.h - the From domain of a message (dmarc_from.c).
 */
#ifndef MX_DMARC_FROM_H
#define MX_DMARC_FROM_H

#include <stddef.h>

/*
 * flt_dmarc_from - the From domain (lower case, no trailing dot) of the
 * header section at the start of msg (len bytes, CRLF or LF line ends; it
 * ends at the first empty line or at len), into from (size bytes).
 * Returns 0, or -1 with *why (a static text) and from = "" when there is
 * not exactly one domain: no From field, several From fields, a field
 * without a readable address, or addresses in different domains
 * (RFC 7489 6.6.1).  Several addresses of one domain give that domain.
 */
int flt_dmarc_from(const char *msg, size_t len, char *from, size_t size,
                   const char **why);

#endif
