/* SPDX-License-Identifier: MIT */
/* dnsname.h - domain names in DNS answers (wire format) as text. */
#ifndef MX_DNSNAME_H
#define MX_DNSNAME_H

#include <stddef.h>

/* What a label of flt_dns_name_text may hold. */
enum flt_dns_name_chars {
	FLT_DNS_NAME_PRINTABLE, /* printable ASCII, no space, no dot */
	FLT_DNS_NAME_HOST,      /* letters, digits, '-' and '_' only */
};

/*
 * flt_dns_name_text - an uncompressed wire-format name starting at
 * p[off] (a PTR's or MX's RDATA, as libunbound returns it) as text without
 * the trailing dot.  Labels with a byte outside `chars` are refused, as
 * are the root name, labels over 63 bytes, a name running past len and a
 * text that does not fit size.  Returns 0, or -1.
 */
int flt_dns_name_text(const unsigned char *p, int len, int off,
                      enum flt_dns_name_chars chars, char *out, size_t size);

#endif
