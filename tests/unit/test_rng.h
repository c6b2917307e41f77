/* SPDX-License-Identifier: MIT */
/*
 * test_rng.h - the deterministic pseudo-random numbers of the table-driven
 * tests (random splits, generated inputs): xorshift64, one state per test
 * file so each file's sequence stays fixed whatever the others do.
 */
#ifndef MX_TEST_RNG_H
#define MX_TEST_RNG_H

#include <stdint.h>

static inline uint32_t
test_rng_next(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return (uint32_t)(*state >> 16);
}

#endif
