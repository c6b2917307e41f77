/* SPDX-License-Identifier: MIT */
/*
 * recipients.h - the recipients mxguard knows itself (`recipients_file`),
 * so unknown ones are refused before the backend is asked, as Postfix's
 * relay_recipient_maps does in front of Exchange.
 *
 * Entries: "user@example.com" (one address) or "@example.com" (every
 * address of the domain: a catch-all).  Only the domains the set names are
 * verified: a recipient of another accepted domain is left to the backend.
 * Compared in lower case.
 */
#ifndef MX_RECIPIENTS_H
#define MX_RECIPIENTS_H

#include <stdbool.h>
#include <stddef.h>

struct px_rcptset;

struct px_rcptset *px_rcptset_new(void);
void px_rcptset_free(struct px_rcptset **sp);

/* px_rcptset_add - one entry; -1 with *err_r for a malformed one.
 * px_rcptset_seal - after the last add, before any lookup. */
int px_rcptset_add(struct px_rcptset *s, const char *entry, const char **err_r);
void px_rcptset_seal(struct px_rcptset *s);

enum px_rcpt_known {
	PX_RCPT_NOT_VERIFIED = 0, /* its domain is not in the set */
	PX_RCPT_KNOWN,
	PX_RCPT_UNKNOWN,
};

/* px_rcptset_check - addr ("local@domain", len bytes). */
enum px_rcpt_known px_rcptset_check(const struct px_rcptset *s,
                                    const char *addr, size_t len);

#endif
