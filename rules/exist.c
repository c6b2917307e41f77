/* SPDX-License-Identifier: MIT */
/*
 * exist.c - a rule's pattern rewritten for the question most rules ask:
 * is there a match at all (a rule without tflags multiple counts once).
 *
 * rule_exist_src(): the pattern without its leading optional items.  If
 * `X? R` matches at some place, `R` matches where X's match ended; if `R`
 * matches, `X? R` does too with X empty.  So the two match in the same
 * strings, but PCRE2 no longer tries every optional prefix at every
 * position: SpamAssassin's __FILL_THIS_FORM_* rules open with
 * <FF_YOUR>, three optional groups of alternatives, and spend most of
 * their time there.  The cut goes on into the first item left when it
 * is a group (its first copy: `(?:X? R){3}` becomes `(?:R)(?:X? R){2}`)
 * and into each branch of an alternation, since a cut match still ends
 * where the uncut one did and what follows reads the same.
 *
 * Assertions look at the subject, not at the match, so they read the
 * same either way.  What does not survive the cut, and is refused (NULL:
 * the pattern stays as written): a reference to a group (backreference,
 * recursion, subroutine call, condition), a named group (it could not be
 * written twice), backtracking verbs, \G (the start of the search),
 * \Q...\E, a possessive optional item (it may refuse to be empty), /x,
 * and an alternation at the top.  The rewritten pattern is compiled and
 * used only where a rule counts one match; rule_set_finish() keeps the
 * original where compiling fails.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rule_priv.h"

/* exist_refused - whether src uses something the cut cannot keep. */
static bool
exist_refused(const char *src)
{
	for (const char *p = src; *p != '\0'; p++) {
		if (*p == '[') {
			const char *e = rule_class_end(p);

			if (e == NULL)
				return true;
			p = e - 1;
			continue;
		}
		if (*p == '\\') {
			if (p[1] == '\0' || strchr("123456789gkGQE", p[1]))
				return true;
			p++;
			continue;
		}
		if (*p == '(' &&
		    (p[1] == '*' ||
		     (p[1] == '?' && p[2] != ':' && p[2] != '=' &&
		      p[2] != '!' && p[2] != '>' &&
		      !(p[2] == '<' && (p[3] == '=' || p[3] == '!')))))
			return true; /* verbs, names, references, flags,
			              * comments... */
	}
	return false;
}

/* exist_atom_end - the end of the atom at p (a group, a class, an escape
 * or a byte), NULL if it cannot be read. */
static const char *
exist_atom_end(const char *p)
{
	unsigned depth = 0;

	if (*p == '[')
		return rule_class_end(p);
	if (*p == '\\') {
		/* \x{..} \o{..} \p{..} \N{..}: to the brace; \cX; else the
		 * escape and one byte (\x41 reads as \x and literals: never
		 * taken for optional, since \x is not) */
		if (p[1] == '\0')
			return NULL;
		if (strchr("xopPN", p[1]) != NULL && p[2] == '{') {
			const char *e = strchr(p + 3, '}');

			return e != NULL ? e + 1 : NULL;
		}
		if (p[1] == 'c')
			return p[2] != '\0' ? p + 3 : NULL;
		return p + 2;
	}
	if (*p != '(')
		return *p == ')' || *p == '|' ? NULL : p + 1;
	for (; *p != '\0'; p++) {
		if (*p == '\\') {
			if (*++p == '\0')
				return NULL;
		} else if (*p == '[') {
			const char *e = rule_class_end(p);

			if (e == NULL)
				return NULL;
			p = e - 1;
		} else if (*p == '(') {
			depth++;
		} else if (*p == ')' && --depth == 0) {
			return p + 1;
		}
	}
	return NULL;
}

/* One quantifier: what exist_quant() read. */
struct exist_q {
	unsigned long min, max; /* max ULONG_MAX: no limit */
	char kind;              /* '?', '*', '+', '{', or 0: none */
	bool lazy, possessive;
};

/* exist_quant - the quantifier at p into *qt; its end (p if none). */
static const char *
exist_quant(const char *p, struct exist_q *qt)
{
	const char *q = p;

	memset(qt, 0, sizeof(*qt));
	qt->min = qt->max = 1;
	if (*q == '?' || *q == '*' || *q == '+') {
		qt->kind = *q;
		qt->min = *q == '+' ? 1 : 0;
		qt->max = *q == '?' ? 1 : ULONG_MAX;
		q++;
	} else if (*q == '{') {
		unsigned long m = 0, n;

		q++;
		if (*q < '0' || *q > '9')
			return p; /* a literal brace */
		for (; *q >= '0' && *q <= '9'; q++)
			m = m < 100000 ? m * 10 + (unsigned long)(*q - '0') : m;
		n = m;
		if (*q == ',') {
			q++;
			if (*q >= '0' && *q <= '9')
				for (n = 0; *q >= '0' && *q <= '9'; q++)
					n = n < 100000
					        ? n * 10 +
					              (unsigned long)(*q - '0')
					        : n;
			else
				n = ULONG_MAX;
		}
		if (*q != '}' || n < m)
			return p;
		q++;
		qt->kind = '{';
		qt->min = m;
		qt->max = n;
	} else {
		return p;
	}
	qt->lazy = *q == '?';
	qt->possessive = *q == '+';
	if (*q == '?' || *q == '+')
		q++;
	return q;
}

/* exist_bar - the first '|' at the top of [p, e), or e; NULL if it
 * cannot be read. */
static const char *
exist_bar(const char *p, const char *e)
{
	while (p < e && *p != '|') {
		const char *a = exist_atom_end(p);
		struct exist_q qt;

		if (a == NULL || a > e)
			return NULL;
		p = exist_quant(a, &qt);
		if (p > e)
			return NULL;
	}
	return p;
}

/*
 * exist_cut - [p, e) written to out without its leading optional items,
 * and, if the first item left is a group, that group cut the same way
 * (its first copy; the others follow as they were), each branch of an
 * alternation alike.  Every match of the cut form ends where a match of
 * [p, e) ends, and is one; every match of [p, e) holds one of the cut
 * form ending at the same place: so what follows reads the same.  False
 * if the pattern cannot be read.
 */
static bool
exist_cut(const char *p, const char *e, struct rule_sbuf *out, unsigned depth)
{
	const char *bar = exist_bar(p, e), *s, *a, *q;
	struct exist_q qt;
	char tmp[64];

	if (bar == NULL || depth > 32)
		return false;
	if (bar < e) {
		/* each branch */
		for (;;) {
			if (!exist_cut(p, bar, out, depth + 1))
				return false;
			if (bar == e)
				return true;
			rule_sbuf_add(out, "|", 1);
			p = bar + 1;
			bar = exist_bar(p, e);
			if (bar == NULL)
				return false;
		}
	}
	for (s = p; s < e; s = q) {
		a = exist_atom_end(s);
		if (a == NULL || a > e)
			return false;
		q = exist_quant(a, &qt);
		if (q > e)
			return false;
		if (qt.kind == 0 || qt.min > 0 || qt.possessive)
			break; /* the first item that must match */
	}
	if (s >= e)
		return true; /* all optional: the empty string */
	if (*s != '(' || (s[1] == '?' && s[2] != ':') || qt.possessive) {
		rule_sbuf_add(out, s, (size_t)(e - s));
		return true;
	}
	/* a group: its first copy cut, then the copies left */
	rule_sbuf_add(out, "(?:", 3);
	if (!exist_cut(s[1] == '?' ? s + 3 : s + 1, a - 1, out, depth + 1))
		return false;
	rule_sbuf_add(out, ")", 1);
	if (qt.kind != 0 && qt.max > 1) {
		rule_sbuf_add(out, s, (size_t)(a - s));
		if (qt.max == ULONG_MAX)
			snprintf(tmp, sizeof(tmp), "{%lu,}", qt.min - 1);
		else if (qt.max == qt.min)
			snprintf(tmp, sizeof(tmp), "{%lu}", qt.min - 1);
		else
			snprintf(tmp, sizeof(tmp), "{%lu,%lu}", qt.min - 1,
			         qt.max - 1);
		rule_sbuf_add(out, tmp, strlen(tmp));
		if (qt.lazy)
			rule_sbuf_add(out, "?", 1);
	}
	rule_sbuf_add(out, q, (size_t)(e - q));
	return true;
}

char *
rule_exist_src(const char *src, uint32_t opts)
{
	size_t len = strlen(src);
	struct rule_sbuf out = {0};

	if ((opts & (PCRE2_EXTENDED | PCRE2_EXTENDED_MORE)) ||
	    exist_refused(src))
		return NULL;
	if (!exist_cut(src, src + len, &out, 0) || out.n == 0 ||
	    (out.n == len && memcmp(out.p, src, len) == 0)) {
		free(out.p);
		return NULL;
	}
	rule_sbuf_add(&out, "", 0);
	return out.p;
}
