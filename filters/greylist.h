/* SPDX-License-Identifier: MIT */
/* greylist.h - what greylist.c shares with its tests and `mxguard ctl`. */
#ifndef MX_GREYLIST_H
#define MX_GREYLIST_H

#include <stddef.h>

/* flt_greylist_sender - the sender as the triplet holds it: lower case,
 * BATV and SRS undone, digit runs of the local part as '#'; "<>" for the
 * null sender. */
void flt_greylist_sender(const char *from, char *out, size_t size);

#endif
