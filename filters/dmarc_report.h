/* SPDX-License-Identifier: MIT */
/*
 * dmarc_report.h - how the DMARC result is written into the message (the
 * Authentication-Results method), and alignment.
 */
#ifndef MX_DMARC_REPORT_H
#define MX_DMARC_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "filter.h"

/* flt_dmarc_authres - "dmarc=RESULT (p=P sp=SP dis=D) header.from=F"
 * (RFC 7489 11.2); nothing for r = NULL (not evaluated).  Returns the
 * length, 0 if it does not fit. */
size_t flt_dmarc_authres(char *buf, size_t size, const struct flt_dmarc_res *r);

/* flt_dmarc_result_name - "pass", "fail", ... */
const char *flt_dmarc_result_name(enum flt_dmarc r);

/* flt_dmarc_aligned - identifier id aligned with the From domain (lower
 * case): strict, the same name; relaxed, the same organizational domain. */
bool flt_dmarc_aligned(const char *id, const char *from, bool strict);

#endif
