/* SPDX-License-Identifier: MIT */
/*
 * alloc.h - allocation that never returns NULL.
 *
 * Out of memory aborts in one place (STYLE: "Allocation failure aborts in
 * one wrapper; no NULL checks at call sites").
 */
#ifndef MX_ALLOC_H
#define MX_ALLOC_H

#include <stddef.h>

void *px_malloc(size_t size);
void *px_calloc(size_t n, size_t size);
void *px_realloc(void *p, size_t size);
char *px_strdup(const char *s);
char *px_strndup(const char *s, size_t n);

#endif
