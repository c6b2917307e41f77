/* SPDX-License-Identifier: MIT */
/*
 * uri.c - the URIs uri rules match: links in text (http://, https://,
 * ftp://, and scheme-less "www." hosts, which get "http://" as
 * SpamAssassin does) and in HTML attributes (html.c).  Each URI is added
 * as found and, when it differs, percent-decoded (RFC 3986 2.1), so a
 * rule sees through %-obfuscated host names.  Duplicates are dropped.
 *
 * Bounded: at most RULE_URI_MAX URIs of at most RULE_URI_LEN bytes each.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "rule_priv.h"

#define RULE_URI_MAX 1000
#define RULE_URI_LEN 2048

static void
rule_uri_push(struct rule_msg *msg, const char *s, size_t len)
{
	if (len == 0 || msg->nuris >= RULE_URI_MAX)
		return;
	if (len > RULE_URI_LEN)
		len = RULE_URI_LEN;
	for (size_t i = 0; i < msg->nuris; i++)
		if (strlen(msg->uris[i]) == len &&
		    memcmp(msg->uris[i], s, len) == 0)
			return;
	if (msg->nuris == msg->capu) {
		msg->capu = msg->capu ? msg->capu * 2 : 16;
		msg->uris =
		    rule_xrealloc(msg->uris, msg->capu * sizeof(*msg->uris));
	}
	msg->uris[msg->nuris++] = rule_xstrndup(s, len);
}

void
rule_uri_add(struct rule_msg *msg, const char *uri, size_t len)
{
	char *buf, *dec;
	size_t n = 0;
	bool changed = false;

	if (len > RULE_URI_LEN)
		len = RULE_URI_LEN;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)uri[i] < ' ')
			return; /* not a URI */
	if (len >= 4 && strncasecmp(uri, "www.", 4) == 0) {
		buf = rule_xasprintf("http://%.*s", (int)len, uri);
		len += 7;
	} else {
		buf = rule_xstrndup(uri, len);
	}
	rule_uri_push(msg, buf, len);
	dec = rule_xmalloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		int h, l;

		if (buf[i] == '%' && i + 2 < len &&
		    (h = rule_hex((unsigned char)buf[i + 1])) >= 0 &&
		    (l = rule_hex((unsigned char)buf[i + 2])) >= 0 &&
		    h * 16 + l >= ' ') {
			dec[n++] = (char)(h * 16 + l);
			i += 2;
			changed = true;
			continue;
		}
		dec[n++] = buf[i];
	}
	if (changed)
		rule_uri_push(msg, dec, n);
	free(dec);
	free(buf);
}

static bool
rule_uri_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != '<' && c != '>' && c != '"' &&
	       c != '\'' && c != '`' && c != '{' && c != '}' && c != '|' &&
	       c != '\\' && c != '^';
}

void
rule_uri_scan(struct rule_msg *msg, const char *text, size_t len)
{
	static const char *const schemes[] = {"http://", "https://", "ftp://",
	                                      "www.", NULL};
	size_t i = 0;

	while (i < len) {
		size_t e, k;
		const char *hit = NULL;

		for (; i < len; i++) {
			unsigned char c = (unsigned char)text[i];

			if (c != 'h' && c != 'H' && c != 'f' && c != 'F' &&
			    c != 'w' && c != 'W')
				continue;
			for (k = 0; schemes[k] != NULL; k++) {
				size_t sl = strlen(schemes[k]);

				if (len - i >= sl &&
				    strncasecmp(text + i, schemes[k], sl) ==
				        0 &&
				    (i == 0 ||
				     !isalnum((unsigned char)text[i - 1])) &&
				    len - i > sl &&
				    isalnum((unsigned char)text[i + sl])) {
					hit = schemes[k];
					break;
				}
			}
			if (hit != NULL)
				break;
		}
		if (hit == NULL)
			return;
		e = i;
		while (e < len && rule_uri_char((unsigned char)text[e]))
			e++;
		/* Trailing punctuation belongs to the sentence. */
		while (e > i && strchr(".,;:!?)]", text[e - 1]) != NULL)
			e--;
		rule_uri_add(msg, text + i, e - i);
		i = e > i ? e : i + 1;
	}
}
