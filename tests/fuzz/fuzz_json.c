/* SPDX-License-Identifier: MIT */
/*
 * fuzz_json.c - libFuzzer harness for px_json_escape (proxy/json.c): any
 * bytes, as a client may put them in an address or a backend in a reply.
 * Checks: the output fits PX_JSON_SIZE, is one quoted JSON string with
 * only valid escapes, no raw control byte, no '<', '>' or '&', and valid
 * UTF-8; decoded back, it gives the input exactly unless an invalid byte
 * had to be replaced (\ufffd escape).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* utf8_len - the length of the valid UTF-8 sequence at s, 0 if none. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
	if (len == 0 || n < len || s[0] > 0xf4)
		return 0;
	cp = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1);
	char *out = malloc(PX_JSON_SIZE(size));
	unsigned char *dec = malloc(size * 3 + 1);
	size_t n, d = 0;
	int replaced = 0;

	if (in == NULL || out == NULL || dec == NULL)
		abort();
	memcpy(in, data, size);
	n = px_json_escape(out, in, size);
	if (n + 1 > PX_JSON_SIZE(size) || out[n] != '\0' || n < 2 ||
	    out[0] != '"' || out[n - 1] != '"')
		abort();
	for (size_t i = 1; i < n - 1;) {
		const unsigned char *u = (const unsigned char *)out + i;
		size_t l = utf8_len(u, n - 1 - i);

		if (l == 0 || u[0] < 0x20 || u[0] == 0x7f || u[0] == '<' ||
		    u[0] == '>' || u[0] == '&' || u[0] == '"')
			abort();
		if (u[0] != '\\') {
			memcpy(dec + d, u, l);
			d += l;
			i += l;
			continue;
		}
		if (i + 1 >= n - 1)
			abort();
		switch (out[i + 1]) {
		case '"':
		case '\\':
			dec[d++] = (unsigned char)out[i + 1];
			i += 2;
			continue;
		case 'n':
			dec[d++] = '\n';
			i += 2;
			continue;
		case 'r':
			dec[d++] = '\r';
			i += 2;
			continue;
		case 't':
			dec[d++] = '\t';
			i += 2;
			continue;
		case 'u':
			break;
		default:
			abort();
		}
		if (i + 6 > n - 1)
			abort();
		uint32_t cp = 0;

		for (int k = 2; k < 6; k++) {
			int h = hexval(out[i + k]);

			if (h < 0)
				abort();
			cp = cp << 4 | (uint32_t)h;
		}
		i += 6;
		if (cp == 0xfffd) {
			replaced = 1;
		} else if (cp < 0x80) {
			dec[d++] = (unsigned char)cp;
		} else if (cp == 0x2028 || cp == 0x2029) {
			dec[d++] = 0xe2;
			dec[d++] = 0x80;
			dec[d++] = (unsigned char)(0x80 | (cp & 0x3f));
		} else {
			abort(); /* nothing else is \u-escaped */
		}
	}
	if (!replaced && (d != size || memcmp(dec, in, size) != 0))
		abort();
	free(in);
	free(out);
	free(dec);
	return 0;
}
