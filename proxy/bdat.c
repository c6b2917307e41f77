/* SPDX-License-Identifier: MIT */
/*
 * bdat.c - BDAT arguments and chunk content checks (RFC 3030).
 *
 * px_bdat_parse_arg() reads "chunk-size [LAST]"; px_bdat_check_init(),
 * px_bdat_check_feed() and px_bdat_check_end() check a message that
 * arrives in chunks for what DATA refuses: bare CR, bare LF, NUL, and lines
 * over the limit.  Nothing here does I/O or keeps pointers to its input.
 *
 * SECURITY: a chunk's octets are never parsed as commands; the session
 * reads exactly the announced count.  These checks keep a BDAT message
 * from carrying to a DATA backend what a DATA client could not send.
 */
#include <string.h>
#include <strings.h>

#include "bdat.h"

/* 2^53: far beyond any size limit, small enough to add without overflow. */
#define PX_BDAT_SIZE_MAX 9007199254740992ULL

int
px_bdat_parse_arg(const char *arg, size_t len, unsigned long long *size_r,
                  bool *last_r)
{
	unsigned long long n = 0;
	size_t i = 0;

	*size_r = 0;
	*last_r = false;
	if (len == 0 || arg[0] < '0' || arg[0] > '9')
		return -1;
	while (i < len && arg[i] >= '0' && arg[i] <= '9') {
		n = n * 10 + (unsigned)(arg[i] - '0');
		if (n > PX_BDAT_SIZE_MAX)
			return -1;
		i++;
	}
	if (i < len) {
		if (len - i != 5 || arg[i] != ' ' ||
		    strncasecmp(arg + i + 1, "LAST", 4) != 0)
			return -1;
		*last_r = true;
	}
	*size_r = n;
	return 0;
}

void
px_bdat_check_init(struct px_bdat_check *c, size_t line_max)
{
	memset(c, 0, sizeof(*c));
	c->line_max = line_max;
}

/* px_bdat_check_fail - keep the first error */
static inline void
px_bdat_check_fail(struct px_bdat_check *c, enum px_bdat_status st)
{
	if (c->err == PX_BDAT_OK)
		c->err = st;
}

enum px_bdat_status
px_bdat_check_feed(struct px_bdat_check *c, const char *buf, size_t len)
{
	size_t i = 0;

	c->size += len;
	while (i < len) {
		const char *p = buf + i;
		const char *q;
		size_t run;

		if (c->cr) {
			c->cr = false;
			if (buf[i] != '\n') {
				px_bdat_check_fail(c, PX_BDAT_ERR_BARE_CR);
				continue;
			}
			c->line_len++;
			if (c->line_max != 0 && c->line_len > c->line_max)
				c->line_too_long = true;
			c->line_len = 0;
			i++;
			continue;
		}
		/* The run up to the next CR, LF or NUL is plain text. */
		q = memchr(p, '\r', len - i);
		run = q != NULL ? (size_t)(q - p) : len - i;
		if ((q = memchr(p, '\n', run)) != NULL)
			run = (size_t)(q - p);
		if ((q = memchr(p, '\0', run)) != NULL)
			run = (size_t)(q - p);
		c->line_len += run;
		if (c->line_max != 0 && c->line_len > c->line_max)
			c->line_too_long = true;
		i += run;
		if (i == len)
			break;
		switch (buf[i]) {
		case '\r':
			c->cr = true;
			c->line_len++;
			break;
		case '\n':
			px_bdat_check_fail(c, PX_BDAT_ERR_BARE_LF);
			c->line_len = 0;
			break;
		default:
			px_bdat_check_fail(c, PX_BDAT_ERR_NUL);
			c->line_len++;
			break;
		}
		i++;
	}
	return c->err;
}

enum px_bdat_status
px_bdat_check_end(struct px_bdat_check *c)
{
	if (c->cr)
		px_bdat_check_fail(c, PX_BDAT_ERR_BARE_CR);
	c->cr = false;
	return c->err;
}
