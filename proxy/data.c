/* SPDX-License-Identifier: MIT */
/*
 * data.c - the SMTP DATA stream (RFC 5321 4.1.1.4, 4.5.2 transparency).
 *
 * px_data_decoder_init() and px_data_decode() turn what a client sends
 * after "354" into the message: stuffing dots removed, the end found at
 * CR LF "." CR LF and nowhere else, bare CR, bare LF and NUL refused.
 * px_data_encoder_init(), px_data_encode() and px_data_encode_end() do the
 * reverse for the backend.
 *
 * The decoder is a state machine over any split of the input, but only
 * line starts and line ends need it: the bytes between are found with
 * memchr() and handed to emit() as one run, so the cost per byte is that of
 * the C library's vectorised scan.  A run ends at a removed dot, at a CR
 * that ends the chunk (it is held until the next byte shows whether an LF
 * follows, then emitted from a static "\r\n"), or at the end of the chunk.
 *
 * SECURITY: see data.h.  Every byte goes through one of the states below;
 * there is no path that accepts LF "." LF, CR "." CR or any other
 * terminator that a backend might read differently (SMTP smuggling).
 */
#include <stdlib.h>
#include <string.h>

#include "data.h"

enum {
	PX_DS_BOL = 0, /* at the start of a line */
	PX_DS_TEXT,    /* inside a line */
	PX_DS_CR,      /* a CR ended the previous chunk, not yet emitted */
	PX_DS_DOT,     /* a "." started the line, not emitted */
	PX_DS_DOT_CR,  /* "." CR at the start of a line */
};

void
px_data_decoder_init(struct px_data_decoder *d, size_t line_max)
{
	memset(d, 0, sizeof(*d));
	d->state = PX_DS_BOL;
	d->line_max = line_max;
}

/* px_data_line_check - note a line over the limit; decoding goes on so the
 * session can still answer at the end of data */
static inline void
px_data_line_check(struct px_data_decoder *d)
{
	if (d->line_len > d->line_max && d->line_max != 0)
		d->line_too_long = true;
}

static inline void
px_data_flush(struct px_data_decoder *d, const char *buf, size_t start,
              size_t end, px_data_emit_fn *emit, void *ctx)
{
	if (end > start) {
		emit(ctx, buf + start, end - start);
		d->size += end - start;
	}
}

/*
 * px_data_scan - the offset of the first CR, LF or NUL in buf[i..len), or
 * len.  Three memchr() passes over a line beat one byte loop: each pass is
 * vectorised, and the LF and NUL passes only cover the text up to the CR.
 */
static inline size_t
px_data_scan(const char *buf, size_t i, size_t len)
{
	const char *p = buf + i;
	const char *lim = memchr(p, '\r', len - i);
	const char *q;

	if (lim == NULL)
		lim = buf + len;
	if ((q = memchr(p, '\n', (size_t)(lim - p))) != NULL)
		lim = q;
	if ((q = memchr(p, '\0', (size_t)(lim - p))) != NULL)
		lim = q;
	return (size_t)(lim - buf);
}

enum px_data_status
px_data_decode(struct px_data_decoder *d, const char *buf, size_t len,
               size_t *consumed_r, px_data_emit_fn *emit, void *ctx)
{
	static const char crlf[2] = {'\r', '\n'};
	size_t i = 0, start = 0, j, dummy;
	enum px_data_status st = PX_DATA_MORE;

	if (consumed_r == NULL)
		consumed_r = &dummy;

	while (i < len) {
		switch (d->state) {
		case PX_DS_BOL:
			if (buf[i] == '.') {
				/* Transparency: the first dot of a line is
				 * never data; it either ends the message or
				 * is dropped. */
				px_data_flush(d, buf, start, i, emit, ctx);
				start = ++i;
				d->state = PX_DS_DOT;
				break;
			}
			d->state = PX_DS_TEXT;
			/* FALLTHROUGH */
		case PX_DS_TEXT:
			j = px_data_scan(buf, i, len);
			d->line_len += j - i;
			px_data_line_check(d);
			i = j;
			if (i == len)
				break;
			if (buf[i] == '\r') {
				if (i + 1 == len) {
					/* Hold the CR: emitting it now would
					 * be wrong if no LF follows. */
					px_data_flush(d, buf, start, i, emit,
					              ctx);
					d->line_len++;
					start = ++i;
					d->state = PX_DS_CR;
					break;
				}
				if (buf[i + 1] != '\n') {
					st = PX_DATA_ERR_BARE_CR;
					goto fail;
				}
				d->line_len += 2;
				px_data_line_check(d);
				d->line_len = 0;
				i += 2;
				d->state = PX_DS_BOL;
				break;
			}
			st = buf[i] == '\n' ? PX_DATA_ERR_BARE_LF
			                    : PX_DATA_ERR_NUL;
			goto fail;
		case PX_DS_CR:
			/* Only at the start of a chunk: the held CR. */
			if (buf[i] != '\n') {
				*consumed_r = i;
				return PX_DATA_ERR_BARE_CR;
			}
			emit(ctx, crlf, 2);
			d->size += 2;
			d->line_len++;
			px_data_line_check(d);
			d->line_len = 0;
			start = ++i;
			d->state = PX_DS_BOL;
			break;
		case PX_DS_DOT:
			if (buf[i] == '\r') {
				d->line_len++;
				start = ++i;
				d->state = PX_DS_DOT_CR;
				break;
			}
			if (buf[i] == '\n' || buf[i] == '\0') {
				st = buf[i] == '\n' ? PX_DATA_ERR_BARE_LF
				                    : PX_DATA_ERR_NUL;
				goto fail;
			}
			/* ".." gives "." and ".x" gives "x": the byte is
			 * the first of a run of text.  The dropped dot is
			 * not counted in line_len (RFC 5321 4.5.3.1.6). */
			d->state = PX_DS_TEXT;
			break;
		case PX_DS_DOT_CR:
			if (buf[i] != '\n') {
				/* "." CR x: the CR, just before i, is bare. */
				*consumed_r = i;
				return PX_DATA_ERR_BARE_CR;
			}
			d->line_len++;
			px_data_line_check(d);
			*consumed_r = i + 1;
			return PX_DATA_END;
		default:
			abort();
		}
	}
	px_data_flush(d, buf, start, len, emit, ctx);
	*consumed_r = len;
	return PX_DATA_MORE;

fail:
	/* Emit what came before the bad byte, so that the output does not
	 * depend on how the input was split. */
	px_data_flush(d, buf, start, i, emit, ctx);
	*consumed_r = i + 1;
	return st;
}

void
px_data_encoder_init(struct px_data_encoder *e)
{
	e->at_line_start = true;
}

void
px_data_encode(struct px_data_encoder *e, const char *buf, size_t len,
               px_data_emit_fn *emit, void *ctx)
{
	size_t i = 0, start = 0;

	while (i < len) {
		const char *nl;

		if (e->at_line_start) {
			e->at_line_start = false;
			if (buf[i] == '.') {
				/* The extra dot goes before the run that
				 * starts with the original one. */
				if (i > start)
					emit(ctx, buf + start, i - start);
				emit(ctx, ".", 1);
				start = i;
			}
		}
		nl = memchr(buf + i, '\n', len - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - buf) + 1;
		e->at_line_start = true;
	}
	if (len > start)
		emit(ctx, buf + start, len - start);
}

void
px_data_encode_end(struct px_data_encoder *e, px_data_emit_fn *emit, void *ctx)
{
	if (!e->at_line_start)
		emit(ctx, "\r\n", 2);
	emit(ctx, ".\r\n", 3);
	e->at_line_start = true;
}
