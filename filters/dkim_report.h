/* SPDX-License-Identifier: MIT */
/*
 * dkim_report.h - how DKIM results are written into the message: the
 * Authentication-Results method (dkim.c).
 */
#ifndef MX_DKIM_REPORT_H
#define MX_DKIM_REPORT_H

#include <stddef.h>

#include "filter.h"

/*
 * flt_dkim_authres - the resinfos for n signatures (RFC 8601 2.7.1):
 * "dkim=RESULT (reason) header.d=D header.s=S header.a=A header.b=B" each,
 * joined by ";CRLF TAB", without a trailing ";"; "dkim=none" for n = 0; nothing
 * for n < 0 (not evaluated).  Returns the length, 0 if it does not fit.
 */
size_t flt_dkim_authres(char *buf, size_t size, const struct flt_dkim_sig *sigs,
                        int n);

/* flt_dkim_result_name - "pass", "fail", ... (RFC 8601 2.7.1). */
const char *flt_dkim_result_name(enum flt_dkim r);

#endif
