/* SPDX-License-Identifier: MIT */
/*
 * spool.h - where a message waits between the client's final dot and the
 * backend's reply: memory up to a limit, then an unlinked file.
 *
 * Lifetime: transaction.  The file has no name from its creation on, so a
 * crash leaves nothing behind (mxguard keeps no queue: the client still
 * holds the message until the backend's 250 is relayed).
 */
#ifndef MX_SPOOL_H
#define MX_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct px_spool;

/* px_spool_new - an empty spool; dir and memory_max are copied. */
struct px_spool *px_spool_new(const char *dir, size_t memory_max);

/* px_spool_free - close and free; *spp = NULL; accepts NULL. */
void px_spool_free(struct px_spool **spp);

/* px_spool_reset - empty it for the next message (closes any file). */
void px_spool_reset(struct px_spool *sp);

/* px_spool_append - add bytes; past memory_max the content moves to a file.
 * Returns 0, or -1 with *error_r a static text (the message must then be
 * refused with a 4xx; the spool stays unusable until reset). */
int px_spool_append(struct px_spool *sp, const char *buf, size_t len,
                    const char **error_r);

/* px_spool_copy - the first max bytes (at most) as a malloc'd buffer,
 * NUL-terminated; *len_r its length, *truncated_r whether the spool holds
 * more.  For checks that hand the message to a worker: the spool belongs
 * to the transaction and may be reset while the worker runs. */
char *px_spool_copy(struct px_spool *sp, size_t max, size_t *len_r,
                    bool *truncated_r);

/* px_spool_size - bytes held. */
size_t px_spool_size(const struct px_spool *sp);

/* px_spool_on_disk - true once the content spilled to a file. */
bool px_spool_on_disk(const struct px_spool *sp);

/*
 * px_spool_read - copy up to len bytes starting at offset into buf.  Returns
 * the bytes copied (0 at the end) or -1 on an I/O error.  *direct_r, when
 * not NULL and the content is in memory, receives a pointer to the bytes
 * instead (no copy; valid until the next append or reset).
 */
ssize_t px_spool_read(struct px_spool *sp, size_t offset, char *buf, size_t len,
                      const char **direct_r);

#endif
