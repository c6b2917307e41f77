/* SPDX-License-Identifier: MIT */
/*
 * authres.c - removal of forged Authentication-Results fields (RFC 8601 5)
 * while the message streams into the spool.
 *
 * px_authres_match(): is one header field an A-R field with our
 * authserv-id (RFC 8601 2.2 syntax: CFWS, then a token or quoted-string)?
 * px_authres_strip_init(), _feed(), _end(): the streaming filter between
 * the DATA decoder and the spool.
 *
 * The filter looks at the header section only.  A field whose name is not
 * yet known is held (at most 64 bytes); a field named
 * Authentication-Results is held whole, continuation lines included, until
 * the next field starts, then dropped if it is ours and emitted unchanged
 * otherwise.  Every other byte is emitted as it arrives, so the message
 * stays byte-exact except for the fields removed, and memory stays bounded
 * (PX_AUTHRES_HOLD_MAX): a field that outgrows the buffer is decided on its
 * first bytes.
 *
 * SECURITY: an A-R field whose authserv-id cannot be read within those
 * bytes (a forger padding it with comments) is removed: a downstream
 * filter that trusts our authserv-id must only ever see our header.
 */
#include "authres.h"

#include <string.h>
#include <strings.h>

#define PX_AR_NAME     "Authentication-Results"
#define PX_AR_NAME_MAX 64

enum {
	PX_AR_HEADERS_BOL = 0, /* at the start of a header line */
	PX_AR_HEADERS,         /* inside a header line */
	PX_AR_BODY,            /* after the blank line: pass everything */
};

enum {
	PX_AR_PASS = 0, /* emit the line */
	PX_AR_NAMING,   /* holding the start of a field, name not known */
	PX_AR_HOLD,     /* holding an A-R field */
	PX_AR_DROP,     /* discarding the rest of our A-R field */
};

static bool
px_ar_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* px_ar_cfws - skip CFWS from *i; false if the bytes ran out inside a
 * comment (or before anything else). */
static bool
px_ar_cfws(const char *s, size_t len, size_t *i)
{
	size_t p = *i;
	unsigned depth = 0;

	while (p < len) {
		char c = s[p];

		if (depth > 0) {
			if (c == '\\')
				p++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			p++;
			continue;
		}
		if (px_ar_wsp(c)) {
			p++;
		} else if (c == '(') {
			depth = 1;
			p++;
		} else {
			break;
		}
	}
	*i = p;
	return depth == 0 && p < len;
}

/* RFC 2045 tspecials, which end a token. */
static bool
px_ar_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

enum px_authres_match
px_authres_match(const char *f, size_t len, const char *id, bool complete)
{
	enum px_authres_match out_of_bytes =
	    complete ? PX_AUTHRES_OTHER : PX_AUTHRES_UNKNOWN;
	size_t nl = strlen(PX_AR_NAME), i, idlen = strlen(id);
	char value[256];
	size_t vn = 0;

	if (len < nl || strncasecmp(f, PX_AR_NAME, nl) != 0)
		return PX_AUTHRES_OTHER;
	i = nl;
	/* RFC 5322 4.5.3 obs-optional: WSP before the colon. */
	while (i < len && (f[i] == ' ' || f[i] == '\t'))
		i++;
	if (i >= len)
		return out_of_bytes;
	if (f[i] != ':')
		return PX_AUTHRES_OTHER;
	i++;
	if (!px_ar_cfws(f, len, &i))
		return out_of_bytes;
	if (f[i] == '"') {
		/* quoted-string: the id is its unescaped content, with
		 * folding removed. */
		i++;
		for (;;) {
			if (i >= len)
				return out_of_bytes;
			char c = f[i++];

			if (c == '"')
				break;
			if (c == '\r' || c == '\n')
				continue;
			if (c == '\\') {
				if (i >= len)
					return out_of_bytes;
				c = f[i++];
			}
			if (vn == sizeof(value))
				return PX_AUTHRES_OTHER; /* longer than ours */
			value[vn++] = c;
		}
	} else {
		while (i < len && (unsigned char)f[i] > 0x20 &&
		       (unsigned char)f[i] != 0x7f && !px_ar_tspecial(f[i])) {
			if (vn == sizeof(value))
				return PX_AUTHRES_OTHER;
			value[vn++] = f[i++];
		}
		if (i >= len && !complete)
			return PX_AUTHRES_UNKNOWN;
	}
	if (vn == idlen && vn > 0 && strncasecmp(value, id, vn) == 0)
		return PX_AUTHRES_OURS;
	return PX_AUTHRES_OTHER;
}

void
px_authres_strip_init(struct px_authres_strip *st, const char *id)
{
	size_t n = strlen(id);

	if (n >= sizeof(st->id))
		n = sizeof(st->id) - 1;
	memcpy(st->id, id, n);
	st->id[n] = '\0';
	st->state = PX_AR_HEADERS_BOL;
	st->mode = PX_AR_PASS;
	st->n = 0;
	st->removed = 0;
}

/* px_ar_flush - emit what is held. */
static void
px_ar_flush(struct px_authres_strip *st, px_authres_emit_fn *emit, void *ctx)
{
	if (st->n > 0)
		emit(ctx, st->buf, st->n);
	st->n = 0;
}

/* px_ar_decide - the held A-R field is complete (or the buffer is full):
 * drop or emit it.  Returns the mode for the rest of the field. */
static int
px_ar_decide(struct px_authres_strip *st, bool complete,
             px_authres_emit_fn *emit, void *ctx)
{
	enum px_authres_match m =
	    px_authres_match(st->buf, st->n, st->id, complete);

	if (m == PX_AUTHRES_OTHER) {
		px_ar_flush(st, emit, ctx);
		return PX_AR_PASS;
	}
	st->n = 0;
	st->removed++;
	return PX_AR_DROP;
}

/* px_ar_field_end - a field ended (a new one starts, or the headers do). */
static void
px_ar_field_end(struct px_authres_strip *st, px_authres_emit_fn *emit,
                void *ctx)
{
	if (st->mode == PX_AR_HOLD)
		(void)px_ar_decide(st, true, emit, ctx);
	else
		px_ar_flush(st, emit, ctx);
	st->mode = PX_AR_PASS;
}

/* px_ar_hold - append one byte to the held field. */
static void
px_ar_hold(struct px_authres_strip *st, char c, px_authres_emit_fn *emit,
           void *ctx)
{
	st->buf[st->n++] = c;
	if (st->mode == PX_AR_NAMING) {
		if (c == ':') {
			size_t k = st->n - 1;

			while (k > 0 && (st->buf[k - 1] == ' ' ||
			                 st->buf[k - 1] == '\t'))
				k--;
			if (k == strlen(PX_AR_NAME) &&
			    strncasecmp(st->buf, PX_AR_NAME, k) == 0) {
				st->mode = PX_AR_HOLD;
				return;
			}
			px_ar_flush(st, emit, ctx);
			st->mode = PX_AR_PASS;
		} else if (c == '\n' || st->n >= PX_AR_NAME_MAX) {
			px_ar_flush(st, emit, ctx);
			st->mode = PX_AR_PASS;
		}
		return;
	}
	if (st->n == sizeof(st->buf))
		st->mode = px_ar_decide(st, false, emit, ctx);
}

void
px_authres_strip_feed(struct px_authres_strip *st, const char *buf, size_t len,
                      px_authres_emit_fn *emit, void *ctx)
{
	size_t i = 0, run = 0; /* buf[run..i) is to be emitted */

	while (i < len) {
		char c = buf[i];

		if (st->state == PX_AR_BODY) {
			i = len;
			break;
		}
		if (st->state == PX_AR_HEADERS_BOL) {
			if (c == ' ' || c == '\t') {
				/* A continuation line: same mode. */
			} else {
				if (i > run)
					emit(ctx, buf + run, i - run);
				run = i;
				px_ar_field_end(st, emit, ctx);
				if (c == '\r' || c == '\n') {
					/* The blank line: the body follows. */
					st->state = PX_AR_BODY;
					continue;
				}
				st->mode = PX_AR_NAMING;
			}
			st->state = PX_AR_HEADERS;
		}
		if (st->mode == PX_AR_PASS) {
			i++;
		} else {
			if (i > run)
				emit(ctx, buf + run, i - run);
			if (st->mode == PX_AR_DROP)
				i++;
			else
				px_ar_hold(st, buf[i++], emit, ctx);
			run = i;
		}
		if (c == '\n')
			st->state = PX_AR_HEADERS_BOL;
	}
	if (len > run)
		emit(ctx, buf + run, len - run);
}

unsigned
px_authres_strip_end(struct px_authres_strip *st, px_authres_emit_fn *emit,
                     void *ctx)
{
	if (st->state != PX_AR_BODY)
		px_ar_field_end(st, emit, ctx);
	st->state = PX_AR_BODY;
	return st->removed;
}
