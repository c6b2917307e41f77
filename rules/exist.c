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
 * their time there.  A pattern that is one group repeated, `(?:X? R){3}`,
 * becomes `(?:R)(?:X? R){2}` by the same reasoning on its first copy.
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

/* exist_quant - the quantifier at p: its end, and its minimum; p itself
 * (min 1) when there is none.  *possessive when it ends in '+'. */
static const char *
exist_quant(const char *p, unsigned long *min, bool *possessive)
{
	const char *q = p;

	*min = 1;
	*possessive = false;
	if (*q == '?' || *q == '*') {
		*min = 0;
		q++;
	} else if (*q == '+') {
		q++;
	} else if (*q == '{') {
		unsigned long m = 0;

		q++;
		if (*q < '0' || *q > '9')
			return p; /* a literal brace */
		for (; *q >= '0' && *q <= '9'; q++)
			m = m < 100000 ? m * 10 + (unsigned long)(*q - '0') : m;
		if (*q == ',')
			for (q++; *q >= '0' && *q <= '9'; q++)
				;
		if (*q != '}')
			return p;
		q++;
		*min = m;
	} else {
		return p;
	}
	if (*q == '+')
		*possessive = true;
	if (*q == '?' || *q == '+')
		q++;
	return q;
}

/* exist_strip - the first item of the sequence [p, e) that is not
 * optional; p if none can go; NULL if the sequence has an alternation at
 * its top, cannot be read, or is all optional. */
static const char *
exist_strip(const char *p, const char *e)
{
	const char *keep = NULL;

	for (const char *s = p; s < e;) {
		const char *a = exist_atom_end(s), *q;
		unsigned long min;
		bool possessive;

		if (a == NULL || a > e)
			return NULL;
		q = exist_quant(a, &min, &possessive);
		if (keep == NULL && (min > 0 || possessive || a == q))
			keep = s;
		s = q;
	}
	return keep;
}

char *
rule_exist_src(const char *src, uint32_t opts)
{
	const char *end = src + strlen(src), *keep, *a, *q, *g, *ge;
	unsigned long min;
	bool possessive;
	struct rule_sbuf out = {0};
	char tmp[32];

	if ((opts & (PCRE2_EXTENDED | PCRE2_EXTENDED_MORE)) ||
	    exist_refused(src))
		return NULL;
	keep = exist_strip(src, end);
	if (keep == NULL)
		return NULL;
	/* one group left, repeated: its first copy's optional items go */
	a = exist_atom_end(keep);
	q = a != NULL ? exist_quant(a, &min, &possessive) : NULL;
	if (q == end && a != q && min >= 1 && !possessive && *keep == '(' &&
	    (keep[1] != '?' || keep[2] == ':')) {
		g = keep[1] == '?' ? keep + 3 : keep + 1;
		ge = a - 1;
		const char *gk = exist_strip(g, ge);

		if (gk != NULL && gk != g) {
			/* (?:G') then the min - 1 copies left to be found
			 * (later optional copies change nothing) */
			rule_sbuf_add(&out, "(?:", 3);
			rule_sbuf_add(&out, gk, (size_t)(ge - gk));
			rule_sbuf_add(&out, ")", 1);
			if (min > 1) {
				rule_sbuf_add(&out, keep, (size_t)(a - keep));
				snprintf(tmp, sizeof(tmp), "{%lu}", min - 1);
				rule_sbuf_add(&out, tmp, strlen(tmp));
			}
			rule_sbuf_add(&out, "", 0);
			return out.p;
		}
	}
	if (keep == src)
		return NULL;
	rule_sbuf_add(&out, keep, (size_t)(end - keep));
	rule_sbuf_add(&out, "", 0);
	return out.p;
}
