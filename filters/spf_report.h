/* SPDX-License-Identifier: MIT */
/*
 * spf_report.h - how an SPF result is written into the message: the
 * Received-SPF header and the Authentication-Results method (spf.c).
 */
#ifndef MX_SPF_REPORT_H
#define MX_SPF_REPORT_H

#include <stddef.h>

#include "filter.h"

/*
 * flt_spf_received_spf - the Received-SPF field (RFC 7208 9.1), CRLF
 * terminated, into buf: result, a comment naming domain and client_ip,
 * then receiver (hostname), client-ip, envelope-from (sender, quoted; ""
 * for a null sender), helo (when it is a plain name) and identity
 * (mailfrom, or helo for a null sender).  Returns the length, 0 if it
 * does not fit.
 */
size_t flt_spf_received_spf(char *buf, size_t size, enum flt_spf result,
                            const char *domain, const char *hostname,
                            const char *client_ip, const char *sender,
                            const char *helo);

/*
 * flt_spf_authres - the "spf=RESULT smtp.mailfrom=..." resinfo (RFC 8601
 * 2.7.2; smtp.helo= for a null sender), without a trailing ";".  Values
 * that are not plain dot-atoms are left out.  Returns the length, 0 if it
 * does not fit.
 */
size_t flt_spf_authres(char *buf, size_t size, enum flt_spf result,
                       const char *domain, const char *sender,
                       const char *helo);

/* flt_spf_result_name - "pass", "fail", ... (RFC 7208 2.6); "none" for
 * FLT_SPF_NOT_CHECKED. */
const char *flt_spf_result_name(enum flt_spf r);

#endif
