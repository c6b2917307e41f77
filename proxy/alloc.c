/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - allocation wrappers that abort on failure.
 *
 * px_malloc(), px_calloc(), px_realloc(), px_strdup(), px_strndup(): like
 * the libc functions, but never return NULL.  mxguard keeps no queue, so
 * dying on out-of-memory loses no accepted mail: clients retry.
 */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
px_alloc_fail(size_t size)
{
	fprintf(stderr, "mxguard: fatal: out of memory allocating %zu bytes\n",
	        size);
	abort();
}

void *
px_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		px_alloc_fail(size);
	return p;
}

void *
px_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		px_alloc_fail(n * size);
	return p;
}

void *
px_realloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);

	if (q == NULL)
		px_alloc_fail(size);
	return q;
}

char *
px_strdup(const char *s)
{
	return px_strndup(s, strlen(s));
}

char *
px_strndup(const char *s, size_t n)
{
	char *p = px_malloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
