/* SPDX-License-Identifier: MIT */
/*
 * dnsname.c - an uncompressed wire-format domain name (RFC 1035 3.1) of a
 * DNS answer's RDATA as text, for the PTR names of iprev and the PTR/MX
 * names of SPF.  The bytes come from whoever runs the queried zone: the
 * caller says which characters a label may hold.
 */
#include "dnsname.h"

#include <stdbool.h>

/* flt_dns_name_char - whether c may stand in a label of kind chars. */
static bool
flt_dns_name_char(unsigned char c, enum flt_dns_name_chars chars)
{
	if (chars == FLT_DNS_NAME_HOST)
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		       (c >= '0' && c <= '9') || c == '-' || c == '_';
	return c > 0x20 && c < 0x7f && c != '.';
}

int
flt_dns_name_text(const unsigned char *p, int len, int off,
                  enum flt_dns_name_chars chars, char *out, size_t size)
{
	size_t n = 0;
	int i = off;

	while (i < len) {
		unsigned l = p[i++];

		if (l == 0)
			break;
		if (l > 63 || i + (int)l > len || n + l + 1 > size)
			return -1;
		for (unsigned k = 0; k < l; k++) {
			unsigned char c = p[i + (int)k];

			if (!flt_dns_name_char(c, chars))
				return -1;
			out[n++] = (char)c;
		}
		out[n++] = '.';
		i += (int)l;
	}
	if (n == 0)
		return -1;
	out[n - 1] = '\0';
	return 0;
}
