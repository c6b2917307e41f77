/* SPDX-License-Identifier: MIT */
/*
 * subject.h - subject_prefix: the Subject rewrite of a tagged message.
 */
#ifndef MX_SUBJECT_H
#define MX_SUBJECT_H

#include <stddef.h>

/*
 * px_subject_rewrite - msg holds the first len bytes of a message (CRLF
 * lines); complete: len is the whole message.  Finds the header section
 * (up to and including the last header line's CRLF) and returns it
 * malloc'd with prefix put before the first Subject's value (or a Subject
 * header added when there is none; nothing changed when the value already
 * starts with it), *hdr_len_r the length of the original section to skip.
 * Returns NULL when the header section does not end within len bytes of an
 * incomplete message, or holds a NUL byte.
 */
char *px_subject_rewrite(const char *msg, size_t len, int complete,
                         const char *prefix, size_t *hdr_len_r);

#endif
