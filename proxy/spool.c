/* SPDX-License-Identifier: MIT */
/*
 * spool.c - message storage for one transaction.
 *
 * px_spool_new(), px_spool_free(), px_spool_reset(): life.
 * px_spool_append(): add decoded message bytes; the first memory_max bytes
 * stay in a heap buffer, then everything moves to an O_TMPFILE (or
 * mkstemp+unlink) file in the spool folder, written through a 64 KiB buffer.
 * px_spool_read(): random-access read for the backend writer and the
 * content checks.
 *
 * Disk reads and writes run on the event loop: they hit the page cache of a
 * local folder, as Postfix's cleanup does, not the network.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

#define PX_SPOOL_WBUF 65536

struct px_spool {
	char *dir;
	size_t memory_max;
	char *mem; /* memory content, or the file write buffer */
	size_t mem_len;
	size_t mem_cap;
	int fd;          /* -1 while in memory */
	size_t file_len; /* bytes written to the file */
	bool failed;
};

struct px_spool *
px_spool_new(const char *dir, size_t memory_max)
{
	struct px_spool *sp = px_calloc(1, sizeof(*sp));

	sp->dir = px_strdup(dir);
	sp->memory_max = memory_max;
	sp->fd = -1;
	return sp;
}

void
px_spool_reset(struct px_spool *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	sp->file_len = 0;
	sp->mem_len = 0;
	sp->failed = false;
	/* Keep a modest buffer for the next message; drop a big one. */
	if (sp->mem_cap > 256 * 1024) {
		free(sp->mem);
		sp->mem = NULL;
		sp->mem_cap = 0;
	}
}

void
px_spool_free(struct px_spool **spp)
{
	struct px_spool *sp = *spp;

	if (sp == NULL)
		return;
	*spp = NULL;
	if (sp->fd >= 0)
		close(sp->fd);
	free(sp->mem);
	free(sp->dir);
	free(sp);
}

static int
px_spool_open(struct px_spool *sp)
{
	int fd = open(sp->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		size_t n = strlen(sp->dir) + 32;
		char *path = px_malloc(n);

		snprintf(path, n, "%s/mxguard.XXXXXX", sp->dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
		free(path);
	}
	return fd;
}

static int
px_spool_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* px_spool_flush - write the file buffer out. */
static int
px_spool_flush(struct px_spool *sp)
{
	if (sp->fd < 0 || sp->mem_len == 0)
		return 0;
	if (px_spool_write_all(sp->fd, sp->mem, sp->mem_len) < 0)
		return -1;
	sp->file_len += sp->mem_len;
	sp->mem_len = 0;
	return 0;
}

int
px_spool_append(struct px_spool *sp, const char *buf, size_t len,
                const char **error_r)
{
	if (sp->failed) {
		*error_r = "spool write failed earlier";
		return -1;
	}
	if (sp->fd < 0 && sp->mem_len + len > sp->memory_max) {
		sp->fd = px_spool_open(sp);
		if (sp->fd < 0) {
			sp->failed = true;
			*error_r = "cannot create spool file";
			return -1;
		}
		/* The memory content becomes the first file write. */
		if (px_spool_flush(sp) < 0)
			goto fail;
	}
	if (sp->fd >= 0 && sp->mem_len + len > PX_SPOOL_WBUF) {
		if (px_spool_flush(sp) < 0)
			goto fail;
		if (len >= PX_SPOOL_WBUF) {
			if (px_spool_write_all(sp->fd, buf, len) < 0)
				goto fail;
			sp->file_len += len;
			return 0;
		}
	}
	if (sp->mem_len + len > sp->mem_cap) {
		size_t cap = sp->mem_cap ? sp->mem_cap : 4096;

		while (cap < sp->mem_len + len)
			cap *= 2;
		sp->mem = px_realloc(sp->mem, cap);
		sp->mem_cap = cap;
	}
	memcpy(sp->mem + sp->mem_len, buf, len);
	sp->mem_len += len;
	return 0;
fail:
	sp->failed = true;
	*error_r = "cannot write spool file";
	return -1;
}

size_t
px_spool_size(const struct px_spool *sp)
{
	return sp->file_len + sp->mem_len;
}

bool
px_spool_on_disk(const struct px_spool *sp)
{
	return sp->fd >= 0;
}

ssize_t
px_spool_read(struct px_spool *sp, size_t offset, char *buf, size_t len,
              const char **direct_r)
{
	size_t total = px_spool_size(sp);

	if (sp->failed)
		return -1;
	if (offset >= total)
		return 0;
	if (len > total - offset)
		len = total - offset;
	if (sp->fd < 0) {
		if (direct_r != NULL) {
			*direct_r = sp->mem + offset;
			return (ssize_t)len;
		}
		memcpy(buf, sp->mem + offset, len);
		return (ssize_t)len;
	}
	if (px_spool_flush(sp) < 0) {
		sp->failed = true;
		return -1;
	}
	for (;;) {
		ssize_t n = pread(sp->fd, buf, len, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (direct_r != NULL)
			*direct_r = buf;
		return n;
	}
}

char *
px_spool_copy(struct px_spool *sp, size_t max, size_t *len_r, bool *truncated_r)
{
	size_t size = px_spool_size(sp), len = size > max ? max : size;
	size_t off = 0;
	char *buf = px_malloc(len + 1);

	while (off < len) {
		const char *direct = NULL;
		ssize_t n =
		    px_spool_read(sp, off, buf + off, len - off, &direct);

		if (n <= 0)
			break;
		if (direct != NULL)
			memcpy(buf + off, direct, (size_t)n);
		off += (size_t)n;
	}
	buf[off] = '\0';
	*len_r = off;
	*truncated_r = size > max;
	return buf;
}
