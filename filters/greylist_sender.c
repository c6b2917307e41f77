/* SPDX-License-Identifier: MIT */
/*
 * greylist_sender.c - the sender as a greylist triplet holds it (see
 * greylist.h).  Apart from greylist.c so the unit tests and the fuzzer link
 * it alone: it reads bytes the client chose.
 */
#include "greylist.h"

#include <stdio.h>
#include <string.h>

static void
flt_lower(char *p)
{
	for (; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

void
flt_greylist_sender(const char *from, char *out, size_t size)
{
	char buf[600];
	char *at, *local, *p;
	size_t n = 0;

	if (size == 0)
		return;
	if (from == NULL || *from == '\0') {
		snprintf(out, size, "<>");
		return;
	}
	snprintf(buf, sizeof(buf), "%s", from);
	flt_lower(buf);
	at = strrchr(buf, '@');
	local = buf;
	if (at != NULL) {
		*at = '\0';
		/* SRS1=HHH=fwd.example==HHH=TT=orig.example=user: the
		 * original part follows "==". */
		if (strncmp(local, "srs1=", 5) == 0 &&
		    (p = strstr(local, "==")) != NULL) {
			local = p + 2;
			/* now HHH=TT=domain=user, as for SRS0 */
			char *f[3];

			f[0] = strchr(local, '=');
			f[1] = f[0] ? strchr(f[0] + 1, '=') : NULL;
			f[2] = f[1] ? strchr(f[1] + 1, '=') : NULL;
			if (f[2] != NULL) {
				*f[2] = '\0';
				snprintf(out, size, "%s@%s", f[2] + 1,
				         f[1] + 1);
				goto digits;
			}
		}
		/* SRS0=HHH=TT=orig.example=user@fwd.example */
		if (strncmp(local, "srs0=", 5) == 0 ||
		    strncmp(local, "srs0+", 5) == 0 ||
		    strncmp(local, "srs0-", 5) == 0) {
			char *f1 = strchr(local + 5, '=');
			char *f2 = f1 ? strchr(f1 + 1, '=') : NULL;
			char *f3 = f2 ? strchr(f2 + 1, '=') : NULL;

			if (f3 != NULL) {
				*f3 = '\0';
				snprintf(out, size, "%s@%s", f3 + 1, f2 + 1);
				goto digits;
			}
		}
		/* BATV: prvs=TAG=user (RFC draft), msprvs1=TAG=user,
		 * btv1==TAG==user. */
		if (strncmp(local, "prvs=", 5) == 0 ||
		    strncmp(local, "msprvs1=", 8) == 0) {
			p = strchr(strchr(local, '=') + 1, '=');
			if (p != NULL)
				local = p + 1;
		} else if (strncmp(local, "btv1==", 6) == 0 &&
		           (p = strstr(local + 6, "==")) != NULL) {
			local = p + 2;
		}
		snprintf(out, size, "%s@%s", local, at + 1);
	} else {
		snprintf(out, size, "%s", local);
	}
digits:
	/* Fold digit runs of the local part (VERP and per-message tags). */
	at = strrchr(out, '@');
	for (p = out; *p && (at == NULL || p < at); p++) {
		if (*p >= '0' && *p <= '9') {
			out[n++] = '#';
			while (p[1] >= '0' && p[1] <= '9')
				p++;
		} else {
			out[n++] = *p;
		}
	}
	memmove(out + n, p, strlen(p) + 1);
}
