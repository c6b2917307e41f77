/* SPDX-License-Identifier: MIT */
/*
 * html.c - HTML rendered to the text body rules see, and the URIs of its
 * links, as SpamAssassin's HTML parser gives them.
 *
 * rule_html_render(): tags dropped; <script>, <style> and comments
 *   skipped; block elements (p, div, br, tr, li, h1-h6, table, title...)
 *   give line or paragraph breaks; character references decoded (HTML5
 *   named ones for the characters mail uses, numeric ones all) to UTF-8;
 *   href, src, action and background attribute values (entity-decoded)
 *   added to the message's URIs.
 *
 * A forgiving scanner, not a tree builder: unterminated tags, quotes or
 * comments run to the end of the input and never fail.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "rule_priv.h"

struct rule_out {
	char *p;
	size_t n, cap;
};

static void
rule_out_add(struct rule_out *o, const char *s, size_t n)
{
	if (o->n + n + 1 > o->cap) {
		o->cap = (o->n + n + 1) * 2;
		o->p = rule_xrealloc(o->p, o->cap);
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

static size_t
rule_utf8_put(unsigned long cp, char *out)
{
	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = 0xfffd;
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static const struct {
	const char *name;
	unsigned long cp;
} rule_entities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},
    {"apos", '\''},    {"nbsp", 0xa0},    {"copy", 0xa9},    {"reg", 0xae},
    {"trade", 0x2122}, {"euro", 0x20ac},  {"pound", 0xa3},   {"yen", 0xa5},
    {"cent", 0xa2},    {"mdash", 0x2014}, {"ndash", 0x2013}, {"hellip", 0x2026},
    {"laquo", 0xab},   {"raquo", 0xbb},   {"lsquo", 0x2018}, {"rsquo", 0x2019},
    {"ldquo", 0x201c}, {"rdquo", 0x201d}, {"bull", 0x2022},  {"middot", 0xb7},
    {"shy", 0xad},     {"zwnj", 0x200c},  {"zwj", 0x200d},   {"auml", 0xe4},
    {"ouml", 0xf6},    {"uuml", 0xfc},    {"Auml", 0xc4},    {"Ouml", 0xd6},
    {"Uuml", 0xdc},    {"szlig", 0xdf},   {"eacute", 0xe9},  {"egrave", 0xe8},
    {"aacute", 0xe1},  {"agrave", 0xe0},  {"ccedil", 0xe7},  {"ntilde", 0xf1},
    {"oacute", 0xf3},  {"iacute", 0xed},  {"uacute", 0xfa},  {"deg", 0xb0},
    {"times", 0xd7},
};

/* rule_entity - a character reference at s (after '&'); appends its
 * UTF-8 to o and returns the bytes consumed after '&', 0 if none. */
static size_t
rule_entity(const char *s, size_t len, struct rule_out *o)
{
	char u[4];
	size_t i = 0;

	if (len > 1 && s[0] == '#') {
		unsigned long cp = 0;
		bool hex = len > 2 && (s[1] == 'x' || s[1] == 'X');
		size_t start = hex ? 2 : 1;

		for (i = start; i < len && i < start + 8; i++) {
			int d;

			if (hex && isxdigit((unsigned char)s[i]))
				d = isdigit((unsigned char)s[i])
				        ? s[i] - '0'
				        : (tolower((unsigned char)s[i]) - 'a' +
				           10);
			else if (!hex && isdigit((unsigned char)s[i]))
				d = s[i] - '0';
			else
				break;
			cp = cp * (hex ? 16 : 10) + (unsigned long)d;
		}
		if (i == start)
			return 0;
		if (i < len && s[i] == ';')
			i++;
		rule_out_add(o, u, rule_utf8_put(cp, u));
		return i;
	}
	while (i < len && i < 10 && isalnum((unsigned char)s[i]))
		i++;
	for (size_t k = 0; k < sizeof(rule_entities) / sizeof(rule_entities[0]);
	     k++) {
		size_t nl = strlen(rule_entities[k].name);

		if (nl == i && strncmp(s, rule_entities[k].name, nl) == 0) {
			if (i < len && s[i] == ';')
				i++;
			rule_out_add(o, u,
			             rule_utf8_put(rule_entities[k].cp, u));
			return i;
		}
	}
	return 0;
}

/* rule_html_decode - entity-decode s (attribute values, text). */
static void
rule_html_text(struct rule_out *o, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *amp = memchr(s + i, '&', len - i);
		size_t k;

		if (amp == NULL) {
			rule_out_add(o, s + i, len - i);
			return;
		}
		rule_out_add(o, s + i, (size_t)(amp - (s + i)));
		i = (size_t)(amp - s) + 1;
		k = rule_entity(s + i, len - i, o);
		if (k == 0)
			rule_out_add(o, "&", 1);
		i += k;
	}
}

static bool
rule_tag_is(const char *name, const char *const *list)
{
	for (unsigned i = 0; list[i] != NULL; i++)
		if (strcasecmp(name, list[i]) == 0)
			return true;
	return false;
}

static const char *const rule_para_tags[] = {
    "p",          "div",    "table",  "tr",   "h1",     "h2",      "h3",
    "h4",         "h5",     "h6",     "ul",   "ol",     "dl",      "title",
    "blockquote", "pre",    "hr",     "form", "center", "address", "section",
    "article",    "header", "footer", NULL};
static const char *const rule_line_tags[] = {"br", "li", "dt", "dd", NULL};
static const char *const rule_space_tags[] = {"td", "th", "img", NULL};
static const char *const rule_uri_attrs[] = {"href", "src", "action",
                                             "background", NULL};

/* rule_tag_attrs - the attributes of a tag's text (after its name):
 * URI-bearing ones go to msg. */
static void
rule_tag_attrs(struct rule_msg *msg, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		char name[16];
		size_t n = 0;

		while (i < len && (isspace((unsigned char)s[i]) || s[i] == '/'))
			i++;
		while (i < len && !isspace((unsigned char)s[i]) &&
		       s[i] != '=' && s[i] != '/' && s[i] != '>') {
			if (n + 1 < sizeof(name))
				name[n++] = s[i];
			i++;
		}
		name[n] = '\0';
		while (i < len && isspace((unsigned char)s[i]))
			i++;
		if (n == 0 && i < len) {
			i++; /* a stray character */
			continue;
		}
		if (i >= len || s[i] != '=')
			continue;
		i++;
		while (i < len && isspace((unsigned char)s[i]))
			i++;
		size_t vs = i, ve;

		if (i < len && (s[i] == '"' || s[i] == '\'')) {
			char q = s[i];
			const char *e = memchr(s + i + 1, q, len - i - 1);

			vs = i + 1;
			ve = e ? (size_t)(e - s) : len;
			i = e ? ve + 1 : len;
		} else {
			while (i < len && !isspace((unsigned char)s[i]))
				i++;
			ve = i;
		}
		if (rule_tag_is(name, rule_uri_attrs) && ve > vs) {
			struct rule_out v = {0};

			rule_html_text(&v, s + vs, ve - vs);
			if (v.p != NULL) {
				/* trim: links often carry blanks/newlines */
				char *b = v.p, *e = v.p + v.n;

				while (b < e && isspace((unsigned char)*b))
					b++;
				while (e > b && isspace((unsigned char)e[-1]))
					e--;
				if (e > b)
					rule_uri_add(msg, b, (size_t)(e - b));
				free(v.p);
			}
		}
	}
}

/* rule_find_ci - case-insensitive search for needle in s..s+len. */
static const char *
rule_find_ci(const char *s, size_t len, const char *needle)
{
	size_t nl = strlen(needle);

	for (size_t i = 0; i + nl <= len; i++)
		if (strncasecmp(s + i, needle, nl) == 0)
			return s + i;
	return NULL;
}

char *
rule_html_render(struct rule_msg *msg, const char *in, size_t len,
                 size_t *len_r)
{
	struct rule_out o = {0};
	size_t i = 0;

	rule_out_add(&o, "", 0);
	while (i < len) {
		const char *lt = memchr(in + i, '<', len - i);

		if (lt == NULL) {
			rule_html_text(&o, in + i, len - i);
			break;
		}
		rule_html_text(&o, in + i, (size_t)(lt - (in + i)));
		i = (size_t)(lt - in);
		if (len - i >= 4 && memcmp(in + i, "<!--", 4) == 0) {
			const char *e =
			    rule_find_ci(in + i + 4, len - i - 4, "-->");

			i = e ? (size_t)(e - in) + 3 : len;
			continue;
		}
		/* the tag runs to '>' outside quotes */
		size_t j = i + 1;
		char q = 0;

		while (j < len) {
			if (q) {
				if (in[j] == q)
					q = 0;
			} else if (in[j] == '"' || in[j] == '\'') {
				/* quotes only count inside attributes */
				if (j > i + 1 &&
				    (in[j - 1] == '=' ||
				     isspace((unsigned char)in[j - 1])))
					q = in[j];
			} else if (in[j] == '>') {
				break;
			}
			j++;
		}
		const char *t = in + i + 1;
		size_t tl = j - i - 1;
		bool close = tl > 0 && t[0] == '/';
		char name[16];
		size_t n = 0;

		if (close) {
			t++;
			tl--;
		}
		if (tl == 0 || !(isalpha((unsigned char)t[0]) || t[0] == '!' ||
		                 t[0] == '?')) {
			/* "<" not starting a tag: text */
			rule_out_add(&o, "<", 1);
			i++;
			continue;
		}
		while (n < tl && n + 1 < sizeof(name) &&
		       (isalnum((unsigned char)t[n]) || t[n] == '!' ||
		        t[n] == '?'))
			n++;
		memcpy(name, t, n);
		name[n] = '\0';
		i = j < len ? j + 1 : len;
		if (!close && (strcasecmp(name, "script") == 0 ||
		               strcasecmp(name, "style") == 0)) {
			char end[24];
			const char *e;

			snprintf(end, sizeof(end), "</%s", name);
			e = rule_find_ci(in + i, len - i, end);
			if (e == NULL) {
				i = len;
			} else {
				const char *gt =
				    memchr(e, '>', len - (size_t)(e - in));

				i = gt ? (size_t)(gt - in) + 1 : len;
			}
			continue;
		}
		if (!close)
			rule_tag_attrs(msg, t + n, tl - n);
		if (rule_tag_is(name, rule_para_tags))
			rule_out_add(&o, "\n\n", 2);
		else if (rule_tag_is(name, rule_line_tags))
			rule_out_add(&o, "\n", 1);
		else if (rule_tag_is(name, rule_space_tags))
			rule_out_add(&o, " ", 1);
	}
	/* U+00A0 (from &nbsp;) reads as a blank. */
	for (size_t k = 0; k + 1 < o.n; k++)
		if ((unsigned char)o.p[k] == 0xc2 &&
		    (unsigned char)o.p[k + 1] == 0xa0) {
			o.p[k] = ' ';
			memmove(o.p + k + 1, o.p + k + 2, o.n - k - 1);
			o.n--;
		}
	if (len_r != NULL)
		*len_r = o.n;
	return o.p;
}
