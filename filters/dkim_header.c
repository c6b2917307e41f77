/* SPDX-License-Identifier: MIT */
/*
 * dkim_header.c - cut the header section of a streaming message into
 * fields (RFC 5322 2.2: a field ends at a CRLF not followed by WSP; the
 * section ends at an empty line, RFC 5322 2.1).
 *
 * flt_dkim_hdr_feed(), _end(), _reset(): hold the section (bounded by
 * FLT_DKIM_HEADER_MAX) until its end, then hand every field over and
 * return the body bytes that came with the end.
 * flt_dkim_hdr_is_sig(): is a field a DKIM-Signature.
 *
 * Why held whole: dkim.c checks each DKIM-Signature before libopendkim
 * sees it, and a field is only known complete when the next line starts.
 */
#include "dkim_header.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* flt_dkim_hdr_fields - the fields of the first n held bytes. */
static void
flt_dkim_hdr_fields(const struct flt_dkim_hdr *h, size_t n,
                    flt_dkim_field_fn *field, void *ctx)
{
	size_t start = 0;

	while (start < n) {
		size_t end = start;

		for (;;) {
			const char *crlf =
			    memmem(h->buf + end, n - end, "\r\n", 2);

			end = crlf != NULL ? (size_t)(crlf - h->buf) : n;
			if (end + 2 >= n ||
			    (h->buf[end + 2] != ' ' && h->buf[end + 2] != '\t'))
				break;
			end += 2;
		}
		if (end > start)
			field(ctx, h->buf + start, end - start);
		start = end + 2;
	}
}

int
flt_dkim_hdr_feed(struct flt_dkim_hdr *h, const char *buf, size_t len,
                  flt_dkim_field_fn *field, void *ctx, const char **body_r,
                  size_t *body_len_r)
{
	size_t from, p;
	const char *eoh;

	*body_r = buf;
	*body_len_r = len;
	if (h->done) {
		/* The body bytes of the last call are passed. */
		free(h->buf);
		h->buf = NULL;
		h->len = h->cap = 0;
		return 1;
	}
	if (len == 0) {
		*body_len_r = 0;
		return 0;
	}
	if (h->len + len > FLT_DKIM_HEADER_MAX)
		return -1;
	if (h->len + len > h->cap) {
		size_t cap = h->cap ? h->cap : 4096;

		while (cap < h->len + len)
			cap *= 2;
		h->buf = realloc(h->buf, cap);
		if (h->buf == NULL)
			abort();
		h->cap = cap;
	}
	memcpy(h->buf + h->len, buf, len);
	/* The blank line may straddle the previous chunk: look from 3
	 * bytes back. */
	from = h->len > 3 ? h->len - 3 : 0;
	h->len += len;
	if (h->len >= 2 && memcmp(h->buf, "\r\n", 2) == 0) {
		p = 0; /* no header field at all */
	} else {
		eoh = memmem(h->buf + from, h->len - from, "\r\n\r\n", 4);
		if (eoh == NULL) {
			*body_len_r = 0;
			return 0;
		}
		p = (size_t)(eoh - h->buf) + 2;
	}
	flt_dkim_hdr_fields(h, p, field, ctx);
	h->done = true;
	*body_r = h->buf + p + 2;
	*body_len_r = h->len - p - 2;
	return 1;
}

void
flt_dkim_hdr_end(struct flt_dkim_hdr *h, flt_dkim_field_fn *field, void *ctx)
{
	if (h->done)
		return;
	flt_dkim_hdr_fields(h, h->len, field, ctx);
	h->done = true;
}

void
flt_dkim_hdr_reset(struct flt_dkim_hdr *h)
{
	free(h->buf);
	memset(h, 0, sizeof(*h));
}

bool
flt_dkim_hdr_is_sig(const char *f, size_t len, size_t *value_r)
{
	static const char name[] = "DKIM-Signature";
	size_t i = sizeof(name) - 1;

	if (len < i || strncasecmp(f, name, i) != 0)
		return false;
	while (i < len && (f[i] == ' ' || f[i] == '\t'))
		i++;
	if (i >= len || f[i] != ':')
		return false;
	*value_r = i + 1;
	return true;
}
