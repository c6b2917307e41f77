/* SPDX-License-Identifier: MIT */
/*
 * json.c - px_json_escape(): a JSON string literal (RFC 8259 7) from bytes
 * a client chose (envelope addresses, replies, symbol names).
 *
 * SECURITY: the result must be valid JSON whatever the input, or a client
 * could break the status page's parsing, and must carry no markup: '<',
 * '>' and '&' are \u-escaped even though JSON does not require it, so a
 * response shown by a browser as HTML (or pasted into a page) stays text.
 * Invalid UTF-8 (overlong forms, surrogates, past U+10FFFF, cut sequences)
 * is replaced byte by byte with U+FFFD (Unicode 15, 3.9 "U+FFFD
 * substitution"), as browsers decode it.
 */
#include "json.h"

#include <stdint.h>
#include <string.h>

/* px_json_utf8 - the length of the valid UTF-8 sequence at s (n bytes
 * left), 0 if none starts there; *cp_r is its code point. */
static size_t
px_json_utf8(const unsigned char *s, size_t n, uint32_t *cp_r)
{
	uint32_t cp, min;
	size_t len;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
		min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
		min = 0x10000;
	} else {
		return 0; /* continuation byte, 0xc0/0xc1 or 0xf5.. */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return len;
}

size_t
px_json_escape(char *out, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, i = 0;

	out[o++] = '"';
	while (i < len) {
		uint32_t cp;
		size_t n = px_json_utf8(s + i, len - i, &cp);

		if (n == 0) {
			memcpy(out + o, "\\ufffd", 6);
			o += 6;
			i++;
			continue;
		}
		if (n > 1 && cp != 0x2028 && cp != 0x2029) {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
			continue;
		}
		i += n;
		switch (cp) {
		case '"':
		case '\\':
			out[o++] = '\\';
			out[o++] = (char)cp;
			continue;
		case '\n':
			memcpy(out + o, "\\n", 2);
			o += 2;
			continue;
		case '\r':
			memcpy(out + o, "\\r", 2);
			o += 2;
			continue;
		case '\t':
			memcpy(out + o, "\\t", 2);
			o += 2;
			continue;
		}
		if (cp < 0x20 || cp == 0x7f || cp == '<' || cp == '>' ||
		    cp == '&' || cp == 0x2028 || cp == 0x2029) {
			out[o++] = '\\';
			out[o++] = 'u';
			out[o++] = hex[(cp >> 12) & 15];
			out[o++] = hex[(cp >> 8) & 15];
			out[o++] = hex[(cp >> 4) & 15];
			out[o++] = hex[cp & 15];
			continue;
		}
		out[o++] = (char)cp;
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}
