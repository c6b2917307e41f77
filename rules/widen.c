/* SPDX-License-Identifier: MIT */
/*
 * widen.c - a rule's PCRE2 pattern rewritten for the multi-pattern
 * prefilter (prefilter.c): a pattern that matches in every string where
 * the original has a match (it may match in more), in the syntax
 * Hyperscan reads, and quick for Hyperscan to compile.
 *
 * rule_widen(): the pattern is parsed to a small tree (byte sets,
 * sequences, alternations, repeats) and written back with:
 * - what only narrows the matches dropped: `^`, \A, \b, \B, \G, \K,
 *   lookarounds, atomic and possessive forms;
 * - `$`, \z and \Z written as "\n": the prefilter gives every string
 *   followed by one (prefilter.c), and a match ending on it is the
 *   string's (rule_widened.eol);
 * - case-insensitivity, '.', \d, \w, POSIX classes... written as explicit
 *   byte sets, so inline (?i), (?-i), (?s) need no Hyperscan flags;
 * - repeats of more than one byte (but `?`), and counted repeats over 16,
 *   opened up to '*' or '+' (SpamAssassin's `(?:<long alternation>){3}`
 *   took Hyperscan minutes to compile);
 * - a large alternation of short branches, one of which is a single byte
 *   set, replaced by one branch per length, each position the union of
 *   the bytes there.  These are SpamAssassin's look-alike letters
 *   (ReplaceTags: kilobytes of `[\xc3][\x80\x81]|&#1234;|...` per letter
 *   in the FUZZY_* rules), which otherwise cost a second of compile each.
 * - a sequence too long to compile quickly cut to its most selective run
 *   of items (wn_trim: any match of the whole holds a match of the run),
 *   a group repeated at least twice as two copies with a gap between;
 * - and refused when what is left is too broad to rule anything out
 *   (fewer than WN_BITS_MIN bits, wn_bits: `\S+`).
 * Every step only adds matches, so a string without a newline (a body
 * paragraph, a rawbody line) that the widened pattern does not match
 * cannot hold a match of the original: the rule need not run there.
 *
 * Refused (NULL, and the rule runs unfiltered): backreferences, recursion
 * and subroutine calls, conditionals, verbs, \X, /xx, and anything this
 * parser does not know.  PCRE2 compiled the pattern already, so the
 * syntax is valid; what is refused is only what cannot be widened safely.
 *
 * Byte semantics as the rules are compiled: no UTF, PCRE2's built-in "C"
 * tables (so \w is [A-Za-z0-9_], and no byte over 0x7f is a letter, a
 * digit or a space).  A set that is negated must be exact before it is:
 * a byte added to "be safe" inside [^...] is a byte taken out of it.
 */
#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rule_priv.h"

#define WN_INF       UINT_MAX
#define WN_DEPTH_MAX 250
/* Counted repeats up to this stay counted; longer ones open up. */
#define WN_REPEAT_MAX 16
/* Look-alike alternations: at most this long a branch, and at least this
 * long written out, to be merged. */
#define WN_GLYPH_LEN  8
#define WN_GLYPH_SIZE 64
/* Fewer bits than this (wn_bits) and a pattern matches nearly every
 * paragraph: no use as a prefilter. */
#define WN_BITS_MIN 12.0
/* A bounded gap longer than this is written unbounded. */
#define WN_GAP_MAX 1000
/* A sequence written out longer than this: only a run of its items. */
#define WN_TRIM_SIZE 1200
/* A pattern longer than this is not widened (the trim's work grows with
 * the square of a sequence's length: replace_tags that name themselves
 * expand to 256 KiB, a fuzz_rules timeout).  SpamAssassin's longest,
 * look-alike letters and all, is 38 KiB. */
#define WN_SRC_MAX (64 * 1024)

enum wn_kind {
	WN_SET = 0, /* one byte of set */
	WN_SEQ,     /* kids in order; none: the empty string */
	WN_ALT,     /* one of the kids */
	WN_REP,     /* kid[0], min to max times */
};

struct wn {
	enum wn_kind kind;
	unsigned char set[32];
	struct wn **kid;
	size_t nkid, cap;
	unsigned min, max;
	bool bounded; /* WN_REP: written with its maximum, however long */
	bool eol;     /* WN_SET: "\n" for an end of string (wn_eol) */
	/* wn_size() and wn_bits(), once known: the trim asks for them
	 * over and over (a node is not changed once they are asked for) */
	size_t size;
	double bits;
	bool sized, measured;
};

struct wp {
	const char *p;
	bool icase, dotall, ext;
	bool fail;
	bool neg_nl;   /* a negative lookaround can match a newline */
	bool eol;      /* an end of string written as "\n" (wn_eol) */
	size_t max;    /* the longest pattern wanted */
	unsigned negs; /* negative lookarounds around w->p */
	int depth;
	struct wn **all; /* every node, to free */
	size_t nall, capall;
};

static struct wn *
wn_new(struct wp *w, enum wn_kind kind)
{
	struct wn *n = rule_xcalloc(1, sizeof(*n));

	n->kind = kind;
	if (w->nall == w->capall) {
		w->capall = w->capall ? 2 * w->capall : 64;
		w->all = rule_xrealloc(w->all, w->capall * sizeof(*w->all));
	}
	w->all[w->nall++] = n;
	return n;
}

static void
wn_add(struct wn *n, struct wn *kid)
{
	if (n->nkid == n->cap) {
		n->cap = n->cap ? 2 * n->cap : 4;
		n->kid = rule_xrealloc(n->kid, n->cap * sizeof(*n->kid));
	}
	n->kid[n->nkid++] = kid;
}

static void
wn_bit(unsigned char *set, unsigned c)
{
	set[c >> 3] |= (unsigned char)(1u << (c & 7));
}

static bool
wn_has(const unsigned char *set, unsigned c)
{
	return set[c >> 3] & (1u << (c & 7));
}

static void
wn_range(unsigned char *set, unsigned lo, unsigned hi)
{
	for (unsigned c = lo; c <= hi; c++)
		wn_bit(set, c);
}

static unsigned
wn_count(const unsigned char *set)
{
	unsigned n = 0;

	for (unsigned c = 0; c < 256; c++)
		n += wn_has(set, c);
	return n;
}

/* wn_fold - add the other case of every ASCII letter. */
static void
wn_fold(unsigned char *set)
{
	for (unsigned c = 'a'; c <= 'z'; c++)
		if (wn_has(set, c) || wn_has(set, c - 32)) {
			wn_bit(set, c);
			wn_bit(set, c - 32);
		}
}

/* wn_empty - the empty string (a sequence of nothing). */
static struct wn *
wn_empty(struct wp *w)
{
	return wn_new(w, WN_SEQ);
}

/* wn_eol - `$`, `\z` or `\Z`: the end of the string, which in a string
 * without a newline is its end.  The prefilter scans each string followed
 * by "\n" (the joined text, or a string and its "\n"), so the end is
 * written as that "\n": `<blanks>$` then matches only at a paragraph's
 * end, not at every run of blanks. */
static struct wn *
wn_eol(struct wp *w)
{
	struct wn *n = wn_new(w, WN_SET);

	wn_bit(n->set, '\n');
	n->eol = true;
	w->eol = true;
	return n;
}

/* wn_eols - the most ends of string (wn_eol) one match of n passes, 2
 * standing for "more than one". */
static unsigned
wn_eols(const struct wn *n)
{
	unsigned v = 0, k;

	switch (n->kind) {
	case WN_SET:
		return n->eol;
	case WN_SEQ:
		for (size_t i = 0; i < n->nkid; i++)
			v += wn_eols(n->kid[i]);
		return v > 2 ? 2 : v;
	case WN_ALT:
		for (size_t i = 0; i < n->nkid; i++)
			if ((k = wn_eols(n->kid[i])) > v)
				v = k;
		return v;
	default:
		k = wn_eols(n->kid[0]);
		return n->max == 0 ? 0 : n->max == 1 ? k : 2 * (k > 0);
	}
}

/* wn_no_eol - every end of string in n back to the empty string: `$$`
 * is one place, not two "\n". */
static void
wn_no_eol(struct wn *n)
{
	if (n->kind == WN_SET && n->eol) {
		n->kind = WN_SEQ;
		n->nkid = 0;
		n->eol = false;
	}
	for (size_t i = 0; i < n->nkid; i++)
		wn_no_eol(n->kid[i]);
}

static struct wn *
wn_byte(struct wp *w, unsigned c)
{
	struct wn *n = wn_new(w, WN_SET);

	wn_bit(n->set, c);
	if (w->icase)
		wn_fold(n->set);
	return n;
}

/* Backslash sets: \d \w \s \h \v and their negations, into set. */
static bool
wn_escape_set(char e, unsigned char *set)
{
	unsigned char s[32] = {0};
	bool neg = false;

	switch (e) {
	case 'D':
		neg = true;
		/* fall through */
	case 'd':
		wn_range(s, '0', '9');
		break;
	case 'W':
		neg = true;
		/* fall through */
	case 'w':
		wn_range(s, '0', '9');
		wn_range(s, 'A', 'Z');
		wn_range(s, 'a', 'z');
		wn_bit(s, '_');
		break;
	case 'S':
		neg = true;
		/* fall through */
	case 's':
		wn_range(s, '\t', '\r');
		wn_bit(s, ' ');
		break;
	case 'H':
		neg = true;
		/* fall through */
	case 'h':
		wn_bit(s, '\t');
		wn_bit(s, ' ');
		wn_bit(s, 0xa0);
		break;
	case 'V':
		neg = true;
		/* fall through */
	case 'v':
		wn_range(s, '\n', '\r');
		wn_bit(s, 0x85);
		break;
	default:
		return false;
	}
	for (int i = 0; i < 32; i++)
		set[i] |= neg ? (unsigned char)~s[i] : s[i];
	return true;
}

/*
 * wn_escape_char - the escape at w->p (just past the backslash) when it
 * stands for one byte: its value, and w->p past it.  -1 when it is not a
 * one-byte escape (w->p unmoved).  in_class: \b is a backspace, and \1..\7
 * are octal.
 */
static int
wn_escape_char(struct wp *w, bool in_class)
{
	const char *p = w->p;
	unsigned v = 0;
	int d;

	switch (*p) {
	case 'n':
		v = '\n';
		break;
	case 'r':
		v = '\r';
		break;
	case 't':
		v = '\t';
		break;
	case 'f':
		v = '\f';
		break;
	case 'e':
		v = 0x1b;
		break;
	case 'a':
		v = 0x07;
		break;
	case 'b':
		if (!in_class)
			return -1;
		v = 0x08;
		break;
	case 'c':
		if (p[1] == '\0' || (unsigned char)p[1] > 127)
			return -1;
		v = (unsigned)((unsigned char)p[1] >= 'a' && p[1] <= 'z'
		                   ? p[1] - 32
		                   : p[1]) ^
		    0x40;
		w->p = p + 2;
		return (int)v;
	case 'x':
		p++;
		if (*p == '{') {
			for (p++; (d = rule_hex((unsigned char)*p)) >= 0; p++)
				if ((v = v * 16 + (unsigned)d) > 0xff)
					return -1;
			if (*p != '}')
				return -1;
			w->p = p + 1;
			return (int)v;
		}
		for (int k = 0; k < 2 && (d = rule_hex((unsigned char)*p)) >= 0;
		     k++, p++)
			v = v * 16 + (unsigned)d;
		w->p = p;
		return (int)v;
	case 'o':
		if (p[1] != '{')
			return -1;
		for (p += 2; *p >= '0' && *p <= '7'; p++)
			if ((v = v * 8 + (unsigned)(*p - '0')) > 0xff)
				return -1;
		if (*p != '}')
			return -1;
		w->p = p + 1;
		return (int)v;
	case '0':
		for (int k = 0; k < 3 && *p >= '0' && *p <= '7'; k++, p++)
			v = v * 8 + (unsigned)(*p - '0');
		w->p = p;
		return v > 0xff ? -1 : (int)v;
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
		if (!in_class)
			return -1; /* a backreference */
		for (int k = 0; k < 3 && *p >= '0' && *p <= '7'; k++, p++)
			v = v * 8 + (unsigned)(*p - '0');
		w->p = p;
		return v > 0xff ? -1 : (int)v;
	default:
		/* any other non-alphanumeric byte stands for itself */
		if (*p == '\0' || (*p >= '0' && *p <= '9') ||
		    (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
			return -1;
		v = (unsigned char)*p;
		break;
	}
	w->p = p + 1;
	return (int)v;
}

/* POSIX class names, as PCRE2's "C" tables read them. */
static bool
wn_posix(const char *name, size_t len, unsigned char *set)
{
	static const struct {
		const char *name;
		const char *ranges; /* pairs of lo, hi */
	} classes[] = {
	    {"alpha", "AZaz"},
	    {"digit", "09"},
	    {"alnum", "09AZaz"},
	    {"upper", "AZ"},
	    {"lower", "az"},
	    {"xdigit", "09AFaf"},
	    {"word", "09AZaz__"},
	    {"space", "\t\r  "},
	    {"blank", "\t\t  "},
	    {"punct", "!/:@[`{~"},
	    {"graph", "!~"},
	    {"print", " ~"},
	    {"cntrl", "\x01\x1f\x7f\x7f"},
	    {"ascii", "\x01\x7f"},
	};

	for (size_t k = 0; k < sizeof(classes) / sizeof(classes[0]); k++) {
		const char *r = classes[k].ranges;

		if (strlen(classes[k].name) != len ||
		    memcmp(classes[k].name, name, len) != 0)
			continue;
		for (; r[0] && r[1]; r += 2)
			wn_range(set, (unsigned char)r[0], (unsigned char)r[1]);
		if (strcmp(classes[k].name, "cntrl") == 0 ||
		    strcmp(classes[k].name, "ascii") == 0)
			wn_bit(set, 0);
		return true;
	}
	return false;
}

/* wn_class - a character class, w->p just past its '['. */
static struct wn *
wn_class(struct wp *w)
{
	struct wn *n = wn_new(w, WN_SET);
	unsigned char s[32] = {0};
	bool neg = false, first = true;
	const char *p;

	if (*w->p == '^') {
		neg = true;
		w->p++;
	}
	for (;;) {
		int lo, hi;

		p = w->p;
		if (*p == '\0')
			goto fail;
		if (*p == ']' && !first)
			break;
		first = false;
		if (p[0] == '[' &&
		    (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
			const char *e = strstr(p + 2, ":]");
			unsigned char ps[32] = {0};
			bool pneg = p[2] == '^';
			const char *name = p + 2 + pneg;

			if (p[1] != ':' || e == NULL ||
			    !wn_posix(name, (size_t)(e - name), ps))
				goto fail;
			for (int i = 0; i < 32; i++)
				s[i] |= pneg ? (unsigned char)~ps[i] : ps[i];
			w->p = e + 2;
			continue;
		}
		if (*p == '\\') {
			w->p = p + 1;
			if (wn_escape_set(p[1], s)) {
				w->p = p + 2;
				continue;
			}
			if (p[1] == 'p' || p[1] == 'P') {
				/* a Unicode property: any byte may have it;
				 * but [^\p{..}] would then be no byte */
				if (neg)
					goto fail;
				wn_range(s, 0, 255);
				w->p = p + 2;
				if (*w->p == '{') {
					const char *e = strchr(w->p, '}');

					if (e == NULL)
						goto fail;
					w->p = e + 1;
				} else if (*w->p != '\0') {
					w->p++;
				}
				continue;
			}
			if (p[1] == 'E') {
				w->p = p + 2;
				continue;
			}
			if ((lo = wn_escape_char(w, true)) < 0)
				goto fail;
		} else {
			lo = (unsigned char)*p;
			w->p = p + 1;
		}
		hi = lo;
		if (w->p[0] == '-' && w->p[1] != ']' && w->p[1] != '\0') {
			p = w->p + 1;
			if (*p == '\\') {
				w->p = p + 1;
				if ((hi = wn_escape_char(w, true)) < 0)
					goto fail; /* a set as an end: refuse */
			} else if (*p == '[' && p[1] == ':') {
				goto fail;
			} else {
				hi = (unsigned char)*p;
				w->p = p + 1;
			}
			if (hi < lo)
				goto fail;
		}
		wn_range(s, (unsigned)lo, (unsigned)hi);
	}
	w->p++; /* ']' */
	if (w->icase)
		wn_fold(s);
	for (int i = 0; i < 32; i++)
		n->set[i] = neg ? (unsigned char)~s[i] : s[i];
	return n;
fail:
	w->fail = true;
	return n;
}

static struct wn *wn_alt(struct wp *w);
static void wn_bytes(const struct wn *n, unsigned char *set);

/* wn_skip_space - in /x mode, white space and # comments. */
static void
wn_skip_space(struct wp *w)
{
	if (!w->ext)
		return;
	for (;;) {
		while (*w->p == ' ' || (*w->p >= '\t' && *w->p <= '\r'))
			w->p++;
		if (*w->p != '#')
			return;
		while (*w->p && *w->p != '\n')
			w->p++;
	}
}

/* wn_flags - inline option letters at w->p, up to ':' or ')': applied
 * to w; false for a letter that cannot be honoured. */
static bool
wn_flags(struct wp *w)
{
	bool on = true;

	for (; *w->p != ':' && *w->p != ')'; w->p++) {
		switch (*w->p) {
		case '-':
			on = false;
			break;
		case '^':
			w->icase = w->dotall = w->ext = false;
			break;
		case 'i':
			w->icase = on;
			break;
		case 's':
			w->dotall = on;
			break;
		case 'x':
			if (w->p[1] == 'x')
				return false; /* /xx: spaces in classes */
			w->ext = on;
			break;
		case 'm': /* anchors are dropped anyway */
		case 'n': /* no captures: nothing to us */
		case 'U': /* ungreedy: the same matches */
		case 'J':
			break;
		default:
			return false;
		}
	}
	return true;
}

/* wn_group - at w->p just past '(': the group's tree (the empty string
 * for an assertion), NULL for a comment or an option setting; w->p past
 * the ')'. */
static struct wn *
wn_group(struct wp *w)
{
	bool icase = w->icase, dotall = w->dotall, ext = w->ext;
	bool assertion = false, negative = false;
	const char *p = w->p;
	struct wn *n;

	if (*p == '*') {
		w->fail = true; /* (*VERB) or (*pla:...) */
		return NULL;
	}
	if (*p == '?') {
		p++;
		if (*p == '#') {
			const char *e = strchr(p, ')');

			if (e == NULL) {
				w->fail = true;
				return NULL;
			}
			w->p = e + 1;
			return NULL;
		}
		if (*p == ':' || *p == '|' || *p == '>') {
			p++;
		} else if (*p == '=' || *p == '!') {
			assertion = true;
			negative = *p == '!';
			p++;
		} else if (p[0] == '<' && (p[1] == '=' || p[1] == '!')) {
			assertion = true;
			negative = p[1] == '!';
			p += 2;
		} else if (p[0] == '<' || p[0] == '\'' ||
		           (p[0] == 'P' && p[1] == '<')) {
			/* a named group */
			char close = p[0] == '\'' ? '\'' : '>';
			const char *e = strchr(p, close);

			if (e == NULL) {
				w->fail = true;
				return NULL;
			}
			p = e + 1;
		} else {
			w->p = p;
			if (!wn_flags(w)) {
				w->fail = true;
				return NULL;
			}
			if (*w->p == ')') {
				/* (?i): for the rest of the enclosing group */
				w->p++;
				return NULL;
			}
			p = w->p + 1; /* (?i:...) */
		}
	}
	w->p = p;
	if (++w->depth > WN_DEPTH_MAX) {
		w->fail = true;
		return NULL;
	}
	w->negs += negative;
	n = wn_alt(w);
	w->negs -= negative;
	w->depth--;
	if (*w->p != ')') {
		w->fail = true;
		return NULL;
	}
	w->p++;
	w->icase = icase;
	w->dotall = dotall;
	w->ext = ext;
	if (assertion) {
		unsigned char bytes[32] = {0};

		wn_bytes(n, bytes);
		/* any lookaround inside a negative one counts too */
		if ((negative || w->negs > 0) && wn_has(bytes, '\n'))
			w->neg_nl = true;
		return wn_empty(w);
	}
	return n;
}

/* wn_escape - an escape outside a class, w->p just past the backslash. */
static struct wn *
wn_escape(struct wp *w)
{
	const char *p = w->p;
	struct wn *n;
	int c;

	switch (*p) {
	case 'z':
	case 'Z':
		w->p = p + 1;
		return wn_eol(w);
	case 'b':
	case 'B':
	case 'A':
	case 'G':
	case 'K':
	case 'E':
		w->p = p + 1;
		return wn_empty(w);
	case 'N':
		if (p[1] == '{')
			break;
		n = wn_new(w, WN_SET);
		wn_range(n->set, 0, 255);
		n->set['\n' >> 3] &= (unsigned char)~(1u << ('\n' & 7));
		w->p = p + 1;
		return n;
	case 'C':
		n = wn_new(w, WN_SET);
		wn_range(n->set, 0, 255);
		w->p = p + 1;
		return n;
	case 'p':
	case 'P':
		n = wn_new(w, WN_SET);
		wn_range(n->set, 0, 255);
		w->p = p + 1;
		if (*w->p == '{') {
			const char *e = strchr(w->p, '}');

			if (e == NULL)
				break;
			w->p = e + 1;
		} else if (*w->p != '\0') {
			w->p++;
		}
		return n;
	case 'R': {
		/* \r\n or one of \n \v \f \r \x85 */
		struct wn *crlf = wn_new(w, WN_SEQ), *one = wn_new(w, WN_SET);

		n = wn_new(w, WN_ALT);
		wn_add(crlf, wn_byte(w, '\r'));
		wn_add(crlf, wn_byte(w, '\n'));
		wn_range(one->set, '\n', '\r');
		wn_bit(one->set, 0x85);
		wn_add(n, crlf);
		wn_add(n, one);
		w->p = p + 1;
		return n;
	}
	case 'Q': {
		const char *e = strstr(p + 1, "\\E");

		if (e == NULL)
			e = p + strlen(p);
		n = wn_new(w, WN_SEQ);
		for (const char *q = p + 1; q < e; q++)
			wn_add(n, wn_byte(w, (unsigned char)*q));
		w->p = *e ? e + 2 : e;
		return n;
	}
	default:
		n = wn_new(w, WN_SET);
		if (wn_escape_set(*p, n->set)) {
			w->p = p + 1;
			return n;
		}
		if ((c = wn_escape_char(w, false)) < 0)
			break;
		wn_bit(n->set, (unsigned)c);
		if (w->icase)
			wn_fold(n->set);
		return n;
	}
	w->fail = true; /* backreferences, \g, \k, \X, unknown */
	return wn_empty(w);
}

/* wn_quant - a quantifier at w->p: true with its bounds, w->p past it
 * (and past a lazy or possessive mark). */
static bool
wn_quant(struct wp *w, unsigned *min_r, unsigned *max_r)
{
	const char *p = w->p;
	unsigned long m = 0, n;

	switch (*p) {
	case '*':
		*min_r = 0;
		*max_r = WN_INF;
		p++;
		break;
	case '+':
		*min_r = 1;
		*max_r = WN_INF;
		p++;
		break;
	case '?':
		*min_r = 0;
		*max_r = 1;
		p++;
		break;
	case '{':
		/* {m}, {m,}, {m,n}; anything else is a literal brace */
		p++;
		if (*p < '0' || *p > '9')
			return false;
		for (; *p >= '0' && *p <= '9'; p++)
			if (m < 100000)
				m = m * 10 + (unsigned long)(*p - '0');
		n = m;
		if (*p == ',') {
			p++;
			if (*p >= '0' && *p <= '9') {
				for (n = 0; *p >= '0' && *p <= '9'; p++)
					if (n < 100000)
						n = n * 10 +
						    (unsigned long)(*p - '0');
			} else {
				n = WN_INF;
			}
		}
		if (*p != '}')
			return false;
		p++;
		*min_r = (unsigned)m;
		*max_r = n == WN_INF ? WN_INF : (unsigned)n;
		break;
	default:
		return false;
	}
	if (*p == '?' || *p == '+')
		p++;
	w->p = p;
	return true;
}

/* wn_seq - one branch: atoms and their quantifiers up to '|' or ')'. */
/* wn_single - n, or the one byte set a group amounts to once what only
 * narrows (an assertion, a lookaround: the empty string here) is gone:
 * `(?:(?!--)[-0-9a-f]){10,64}` repeats a byte, not a group, and keeps
 * its count. */
static struct wn *
wn_single(struct wn *n)
{
	struct wn *one = NULL;

	while (n->kind == WN_SEQ) {
		one = NULL;
		for (size_t k = 0; k < n->nkid; k++) {
			const struct wn *kid = n->kid[k];

			if (kid->kind == WN_SEQ && kid->nkid == 0)
				continue; /* the empty string */
			if (one != NULL)
				return n;
			one = n->kid[k];
		}
		if (one == NULL)
			return n;
		n = one;
	}
	return n;
}

static struct wn *
wn_seq(struct wp *w)
{
	struct wn *seq = wn_new(w, WN_SEQ);

	for (;;) {
		struct wn *atom, *rep;
		unsigned min, max;
		unsigned char c;

		wn_skip_space(w);
		c = (unsigned char)*w->p;
		if (c == '\0' || c == '|' || c == ')' || w->fail)
			return seq;
		w->p++;
		switch (c) {
		case '(':
			atom = wn_group(w);
			if (atom == NULL)
				continue;
			break;
		case '[':
			atom = wn_class(w);
			break;
		case '\\':
			atom = wn_escape(w);
			break;
		case '.':
			atom = wn_new(w, WN_SET);
			wn_range(atom->set, 0, 255);
			if (!w->dotall)
				atom->set['\n' >> 3] &=
				    (unsigned char)~(1u << ('\n' & 7));
			break;
		case '^':
			atom = wn_empty(w);
			break;
		case '$':
			atom = wn_eol(w);
			break;
		case '*':
		case '+':
		case '?':
			w->fail = true; /* a quantifier with nothing before */
			return seq;
		default:
			atom = wn_byte(w, c);
			break;
		}
		wn_skip_space(w);
		atom = wn_single(atom);
		while (wn_quant(w, &min, &max)) {
			rep = wn_new(w, WN_REP);
			rep->min = min;
			rep->max = max;
			wn_add(rep, atom);
			atom = rep;
			wn_skip_space(w);
		}
		wn_add(seq, atom);
	}
}

static struct wn *
wn_alt(struct wp *w)
{
	struct wn *first = wn_seq(w), *alt;

	if (*w->p != '|')
		return first;
	alt = wn_new(w, WN_ALT);
	wn_add(alt, first);
	while (*w->p == '|' && !w->fail) {
		w->p++;
		wn_add(alt, wn_seq(w));
	}
	return alt;
}

/* Lengths in bytes, WN_INF for unbounded. */
static unsigned
wn_sat_add(unsigned a, unsigned b)
{
	return a == WN_INF || b == WN_INF || a + b < a ? WN_INF : a + b;
}

static unsigned
wn_sat_mul(unsigned a, unsigned b)
{
	if (a == 0 || b == 0)
		return 0;
	if (a == WN_INF || b == WN_INF || a > WN_INF / b)
		return WN_INF;
	return a * b;
}

static void
wn_len(const struct wn *n, unsigned *min_r, unsigned *max_r)
{
	unsigned lo, hi, klo, khi;

	switch (n->kind) {
	case WN_SET:
		*min_r = *max_r = 1;
		return;
	case WN_SEQ:
		lo = hi = 0;
		for (size_t k = 0; k < n->nkid; k++) {
			wn_len(n->kid[k], &klo, &khi);
			lo = wn_sat_add(lo, klo);
			hi = wn_sat_add(hi, khi);
		}
		break;
	case WN_ALT:
		lo = WN_INF;
		hi = 0;
		for (size_t k = 0; k < n->nkid; k++) {
			wn_len(n->kid[k], &klo, &khi);
			lo = klo < lo ? klo : lo;
			hi = khi > hi ? khi : hi;
		}
		break;
	default:
		wn_len(n->kid[0], &klo, &khi);
		lo = wn_sat_mul(klo, n->min);
		hi = n->max == WN_INF && khi > 0 ? WN_INF
		                                 : wn_sat_mul(khi, n->max);
		break;
	}
	*min_r = lo;
	*max_r = hi;
}

/* wn_positions - n has a fixed length L: OR the bytes that can stand at
 * each of its positions into pos[at..at+L). */
static void
wn_positions(const struct wn *n, unsigned char (*pos)[32], unsigned at)
{
	unsigned lo, hi;

	switch (n->kind) {
	case WN_SET:
		for (int i = 0; i < 32; i++)
			pos[at][i] |= n->set[i];
		return;
	case WN_SEQ:
		for (size_t k = 0; k < n->nkid; k++) {
			wn_positions(n->kid[k], pos, at);
			wn_len(n->kid[k], &lo, &hi);
			at += lo;
		}
		return;
	case WN_ALT:
		for (size_t k = 0; k < n->nkid; k++)
			wn_positions(n->kid[k], pos, at);
		return;
	default:
		wn_len(n->kid[0], &lo, &hi);
		for (unsigned r = 0; r < n->min; r++, at += lo)
			wn_positions(n->kid[0], pos, at);
		return;
	}
}

/* wn_bytes - OR every byte n can match into set. */
static void
wn_bytes(const struct wn *n, unsigned char *set)
{
	if (n->kind == WN_SET) {
		for (int i = 0; i < 32; i++)
			set[i] |= n->set[i];
		return;
	}
	for (size_t k = 0; k < n->nkid; k++)
		wn_bytes(n->kid[k], set);
}

static void wn_emit(struct rule_sbuf *b, const struct wn *n);

static void
wn_emit_byte(struct rule_sbuf *b, unsigned c)
{
	char tmp[8];

	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z')) {
		tmp[0] = (char)c;
		rule_sbuf_add(b, tmp, 1);
		return;
	}
	snprintf(tmp, sizeof(tmp), "\\x%02x", c);
	rule_sbuf_add(b, tmp, 4);
}

static void
wn_emit_set(struct rule_sbuf *b, const unsigned char *set)
{
	unsigned n = wn_count(set);
	bool neg = n > 128;

	if (n == 1) {
		for (unsigned c = 0; c < 256; c++)
			if (wn_has(set, c))
				wn_emit_byte(b, c);
		return;
	}
	if (n == 256) {
		rule_sbuf_add(b, "[\\x00-\\xff]", 11);
		return;
	}
	rule_sbuf_add(b, neg ? "[^" : "[", neg ? 2 : 1);
	for (unsigned c = 0; c < 256;) {
		unsigned e = c;

		if (wn_has(set, c) == neg) {
			c++;
			continue;
		}
		while (e + 1 < 256 && wn_has(set, e + 1) != neg)
			e++;
		wn_emit_byte(b, c);
		if (e > c + 1)
			rule_sbuf_add(b, "-", 1);
		if (e > c)
			wn_emit_byte(b, e);
		c = e + 1;
	}
	rule_sbuf_add(b, "]", 1);
}

/* wn_atom - n written so that a quantifier may follow it. */
static void
wn_emit_atom(struct rule_sbuf *b, const struct wn *n)
{
	if (n->kind == WN_SET) {
		wn_emit_set(b, n->set);
		return;
	}
	rule_sbuf_add(b, "(?:", 3);
	wn_emit(b, n);
	rule_sbuf_add(b, ")", 1);
}

/* wn_glyphs - whether alternation n is of look-alike letters: more than
 * one branch, every branch at most WN_GLYPH_LEN bytes, one of them a
 * single byte set, and long written out. */
static bool
wn_glyphs(const struct wn *n)
{
	struct rule_sbuf tmp = {0};
	bool single = false, big;

	for (size_t k = 0; k < n->nkid; k++) {
		unsigned lo, hi;

		wn_len(n->kid[k], &lo, &hi);
		if (hi > WN_GLYPH_LEN || lo == 0)
			return false;
		single |= hi == 1;
	}
	if (!single || n->nkid < 2)
		return false;
	for (size_t k = 0; k < n->nkid && tmp.n <= WN_GLYPH_SIZE; k++)
		wn_emit(&tmp, n->kid[k]);
	big = tmp.n > WN_GLYPH_SIZE;
	free(tmp.p);
	return big;
}

/* wn_emit_glyphs - alternation n (wn_glyphs) as one branch per fixed
 * length, position by position the union of its branches' bytes, and
 * one byte-set repeat for the branches of varying length. */
static void
wn_emit_glyphs(struct rule_sbuf *b, const struct wn *n)
{
	unsigned char pos[WN_GLYPH_LEN + 1][WN_GLYPH_LEN][32];
	unsigned char var[32] = {0};
	bool have[WN_GLYPH_LEN + 1] = {false}, first = true;
	unsigned vhi = 0;

	memset(pos, 0, sizeof(pos));
	for (size_t k = 0; k < n->nkid; k++) {
		unsigned lo, hi;

		wn_len(n->kid[k], &lo, &hi);
		if (lo == hi) {
			wn_positions(n->kid[k], pos[lo], 0);
			have[lo] = true;
		} else {
			wn_bytes(n->kid[k], var);
			vhi = hi > vhi ? hi : vhi;
		}
	}
	rule_sbuf_add(b, "(?:", 3);
	for (unsigned l = 1; l <= WN_GLYPH_LEN; l++) {
		if (!have[l])
			continue;
		if (!first)
			rule_sbuf_add(b, "|", 1);
		first = false;
		for (unsigned i = 0; i < l; i++)
			wn_emit_set(b, pos[l][i]);
	}
	if (vhi > 0) {
		if (!first)
			rule_sbuf_add(b, "|", 1);
		/* "+", not {vlo,vhi}: a third of the compile time */
		wn_emit_set(b, var);
		rule_sbuf_add(b, "+", 1);
	}
	rule_sbuf_add(b, ")", 1);
}

static void
wn_emit(struct rule_sbuf *b, const struct wn *n)
{
	unsigned lo, hi;
	char tmp[32];

	switch (n->kind) {
	case WN_SET:
		wn_emit_set(b, n->set);
		return;
	case WN_SEQ:
		for (size_t k = 0; k < n->nkid; k++) {
			if (n->kid[k]->kind == WN_ALT)
				wn_emit_atom(b, n->kid[k]);
			else
				wn_emit(b, n->kid[k]);
		}
		return;
	case WN_ALT: {
		/* A branch that matches only the empty string makes the
		 * others optional: (?:a|b)? (no empty branch for Hyperscan). */
		bool opt = false, first = true;
		size_t full = 0;

		if (wn_glyphs(n)) {
			wn_emit_glyphs(b, n);
			return;
		}
		for (size_t k = 0; k < n->nkid; k++) {
			wn_len(n->kid[k], &lo, &hi);
			opt |= hi == 0;
			full += hi > 0;
		}
		if (full == 0)
			return;
		if (opt)
			rule_sbuf_add(b, "(?:", 3);
		for (size_t k = 0; k < n->nkid; k++) {
			wn_len(n->kid[k], &lo, &hi);
			if (hi == 0)
				continue;
			if (!first)
				rule_sbuf_add(b, "|", 1);
			first = false;
			wn_emit(b, n->kid[k]);
		}
		if (opt)
			rule_sbuf_add(b, ")?", 2);
		return;
	}
	default:
		wn_len(n->kid[0], &lo, &hi);
		if (hi == 0)
			return; /* a repeated assertion or empty group */
		wn_emit_atom(b, n->kid[0]);
		if (n->kid[0]->kind != WN_SET) {
			/* a group: optional as written, or opened up, from 0
			 * (or 1) to any number (`(?:x)*` rather than `(?:x)?`
			 * would keep a match going over any number of words) */
			if (n->max == 1)
				rule_sbuf_add(b, n->min > 0 ? "" : "?", 1);
			else
				rule_sbuf_add(b, n->min > 0 ? "+" : "*", 1);
			return;
		}
		/* a byte set: at most WN_REPEAT_MAX at least, and a long
		 * maximum opened up */
		lo = n->min < WN_REPEAT_MAX ? n->min : WN_REPEAT_MAX;
		if (n->max > WN_REPEAT_MAX && n->bounded && n->max != WN_INF)
			snprintf(tmp, sizeof(tmp), "{%u,%u}", lo, n->max);
		else if (n->max > WN_REPEAT_MAX)
			snprintf(tmp, sizeof(tmp), "{%u,}", lo);
		else if (lo == n->max)
			snprintf(tmp, sizeof(tmp), "{%u}", lo);
		else
			snprintf(tmp, sizeof(tmp), "{%u,%u}", lo, n->max);
		rule_sbuf_add(b, tmp, strlen(tmp));
		return;
	}
}

/* wn_size - n's length written out. */
static size_t
wn_size(const struct wn *n)
{
	struct rule_sbuf tmp = {0};
	struct wn *m = (struct wn *)n; /* the cache only */

	if (!n->sized) {
		wn_emit(&tmp, n);
		m->size = tmp.n;
		m->sized = true;
		free(tmp.p);
	}
	return n->size;
}

/* wn_flatten - the items of sequence n, nested sequences opened, into
 * seq (a new sequence of w). */
static void
wn_flatten(const struct wn *n, struct wn *seq)
{
	for (size_t k = 0; k < n->nkid; k++) {
		if (n->kid[k]->kind == WN_SEQ)
			wn_flatten(n->kid[k], seq);
		else
			wn_add(seq, n->kid[k]);
	}
}

/* wn_set_bits - a byte of set as one in 256 bytes: a letter (either
 * case) about seven bits, a space or wide class about one. */
static double
wn_set_bits(const unsigned char *set)
{
	return log2(256.0 / wn_count(set));
}

/* wn_measure - how selective n is: the information in its least
 * informative match, each byte counting leaf(the bytes that may stand
 * there) bits. */
static double
wn_measure(const struct wn *n, double (*leaf)(const unsigned char *set))
{
	double v, b;

	switch (n->kind) {
	case WN_SET:
		return leaf(n->set);
	case WN_SEQ:
		v = 0;
		for (size_t k = 0; k < n->nkid; k++)
			v += wn_measure(n->kid[k], leaf);
		return v;
	case WN_ALT:
		v = n->nkid ? wn_measure(n->kid[0], leaf) : 0;
		for (size_t k = 1; k < n->nkid; k++)
			if ((b = wn_measure(n->kid[k], leaf)) < v)
				v = b;
		return v;
	default:
		/* as wn_emit writes it */
		if (n->min == 0)
			return 0;
		if (n->kid[0]->kind != WN_SET)
			return wn_measure(n->kid[0], leaf);
		return wn_measure(n->kid[0], leaf) *
		       (n->min < WN_REPEAT_MAX ? n->min : WN_REPEAT_MAX);
	}
}

/* wn_bits - how selective n is, every byte alike (wn_set_bits). */
static double
wn_bits(const struct wn *n)
{
	struct wn *m = (struct wn *)n; /* the cache only */

	if (!n->measured) {
		m->bits = wn_measure(n, wn_set_bits);
		m->measured = true;
	}
	return n->bits;
}

/* wn_freq - about how often byte c is in the text of a mail (English
 * letter frequencies; capitals, digits, punctuation, control and 8-bit
 * bytes rarer, in rough proportion). */
static double
wn_freq(unsigned c)
{
	static const double lower[26] = {
	    .063, .012, .024, .032, .095, .018,  .016, .045,  .055,
	    .001, .006, .032, .020, .055, .060,  .016, .001,  .048,
	    .050, .068, .022, .008, .018, .0015, .016, .0007,
	};

	if (c == ' ')
		return .15;
	if (c >= 'a' && c <= 'z')
		return lower[c - 'a'];
	if (c >= 'A' && c <= 'Z')
		return lower[c - 'A'] / 12;
	if (c >= '0' && c <= '9')
		return .004;
	if (c == '.' || c == ',')
		return .01;
	if (c > ' ' && c < 0x7f)
		return .002;
	if (c == '\t' || c == '\r')
		return .001;
	if (c >= 0x80)
		return .0003;
	return .00001;
}

/* wn_set_tbits - a byte of set weighed by how often its bytes are in
 * mail text (wn_freq). */
static double
wn_set_tbits(const unsigned char *set)
{
	double p = 0;

	for (unsigned c = 0; c < 256; c++)
		if (wn_has(set, c))
			p += wn_freq(c);
	return p >= 1 ? 0 : -log2(p);
}

/* wn_tbits - as wn_bits, but each byte counted by how often it is in
 * mail text (wn_set_tbits) rather than as one in 256: how rarely n
 * matches at a given place of a real message.  `[a-z]{8,}` is worth 3 or
 * so, not 28. */
static double
wn_tbits(const struct wn *n)
{
	return wn_measure(n, wn_set_tbits);
}

/*
 * wn_trim - n, or a part of it that any match of n contains, written
 * out in about budget bytes at most where it can be: a match of a
 * sequence holds a match of any run of its items, and a match of a repeat
 * (at least once) a match of what it repeats.  Hyperscan's compile time
 * grows steeply with the length of a sequence of alternations (a FUZZY_*
 * rule of 10 look-alike letters: 1.4 s; of 6: 0.03 s), so a long
 * sequence gives its most selective run (wn_bits) within the budget, or
 * one item trimmed in turn; an alternation, each branch trimmed to its
 * share of the budget.
 */
static struct wn *
wn_trim(struct wp *w, struct wn *n, size_t budget)
{
	struct wn *seq, *best = n;
	size_t total, bsize = SIZE_MAX, bi = 0, bj = 0;
	double bval = -1;

	if (wn_size(n) <= budget)
		return n;
	if (n->kind == WN_REP && n->min >= 2) {
		/* (a t b){2,}: t then, later in the same string, t again */
		struct wn *t = wn_trim(w, n->kid[0], budget), *gap, *two;
		unsigned klo, khi, tlo, thi;

		if (2 * wn_size(t) + 16 > w->max)
			return t;
		/* between the two t: b of the first copy, a of the second,
		 * each at most |a t b| - |t| bytes */
		wn_len(n->kid[0], &klo, &khi);
		wn_len(t, &tlo, &thi);
		gap = wn_new(w, WN_REP);
		gap->min = 0;
		gap->max =
		    khi == WN_INF || tlo > khi || khi - tlo > WN_GAP_MAX / 2
		        ? WN_INF
		        : 2 * (khi - tlo);
		gap->bounded = true;
		wn_add(gap, wn_new(w, WN_SET));
		wn_range(gap->kid[0]->set, 0, 255);
		gap->kid[0]->set['\n' >> 3] &=
		    (unsigned char)~(1u << ('\n' & 7));
		two = wn_new(w, WN_SEQ);
		wn_add(two, t);
		wn_add(two, gap);
		wn_add(two, t);
		return two;
	}
	if (n->kind == WN_REP)
		return n->min > 0 ? wn_trim(w, n->kid[0], budget) : n;
	if (n->kind == WN_ALT) {
		struct wn *alt = wn_new(w, WN_ALT);

		total = wn_size(n);
		for (size_t k = 0; k < n->nkid; k++) {
			size_t share = budget * wn_size(n->kid[k]) / total;

			wn_add(alt,
			       wn_trim(w, n->kid[k], share < 64 ? 64 : share));
		}
		return alt;
	}
	if (n->kind != WN_SEQ)
		return n;
	seq = wn_new(w, WN_SEQ);
	wn_flatten(n, seq);
	for (size_t i = 0; i < seq->nkid; i++) {
		struct wn *run;
		double val = 0;

		total = 0;
		for (size_t j = i; j < seq->nkid; j++) {
			total += wn_size(seq->kid[j]);
			if (total > budget)
				break;
			val += wn_bits(seq->kid[j]);
			/* the most bits; of equal ones, the shortest */
			if (val > bval + 1e-9 ||
			    (val > bval - 1e-9 && total < bsize)) {
				bval = val;
				bsize = total;
				bi = i;
				bj = j;
				best = NULL;
			}
		}
		if (wn_size(seq->kid[i]) > budget) {
			run = wn_trim(w, seq->kid[i], budget);
			val = wn_bits(run);
			total = wn_size(run);
			if (val > bval + 1e-9 ||
			    (val > bval - 1e-9 && total < bsize)) {
				bval = val;
				bsize = total;
				best = run;
			}
		}
	}
	if (best == NULL) {
		/* the run bi..bj, made once */
		best = wn_new(w, WN_SEQ);
		for (size_t k = bi; k <= bj; k++)
			wn_add(best, seq->kid[k]);
	}
	return best;
}

/* wn_merged - how many look-alike alternations n merges (wn_glyphs). */
static unsigned
wn_merged(const struct wn *n)
{
	unsigned c = 0;

	if (n->kind == WN_ALT && wn_glyphs(n))
		return 1;
	for (size_t k = 0; k < n->nkid; k++)
		c += wn_merged(n->kid[k]);
	return c;
}

/* wn_free - the parse state's nodes. */
static void
wn_free(struct wp *w)
{
	for (size_t k = 0; k < w->nall; k++) {
		free(w->all[k]->kid);
		free(w->all[k]);
	}
	free(w->all);
	w->all = NULL;
	w->nall = 0;
}

bool
rule_negative_lookaround_nl(const char *src, uint32_t opts)
{
	struct wp w = {
	    .p = src,
	    .icase = (opts & PCRE2_CASELESS) != 0,
	    .dotall = (opts & PCRE2_DOTALL) != 0,
	    .ext = (opts & PCRE2_EXTENDED) != 0,
	};
	bool nl;

	(void)wn_alt(&w);
	nl = w.fail || *w.p != '\0' || w.neg_nl;
	wn_free(&w);
	return nl;
}

char *
rule_widen(const char *src, uint32_t opts, size_t max,
           struct rule_widened *info)
{
	struct wp w = {
	    .p = src,
	    .icase = (opts & PCRE2_CASELESS) != 0,
	    .dotall = (opts & PCRE2_DOTALL) != 0,
	    .ext = (opts & PCRE2_EXTENDED) != 0,
	};
	struct rule_sbuf b = {0};
	struct wn *root;
	double bits = 0;

	if ((opts &
	     (PCRE2_UTF | PCRE2_UCP | PCRE2_EXTENDED_MORE | PCRE2_LITERAL)) ||
	    strlen(src) > WN_SRC_MAX)
		return NULL;
	w.max = max;
	root = wn_alt(&w);
	if (!w.fail && *w.p == '\0') {
		if (w.eol && wn_eols(root) > 1) {
			wn_no_eol(root);
			w.eol = false;
		}
		root = wn_trim(&w, root, WN_TRIM_SIZE);
		wn_emit(&b, root);
		bits = wn_bits(root);
		if (info != NULL) {
			info->merged = wn_merged(root);
			info->bits = bits;
			info->tbits = wn_tbits(root);
			info->eol = w.eol;
		}
		rule_sbuf_add(&b, "", 0);
	}
	wn_free(&w);
	if (w.fail || *w.p != '\0' || b.n == 0 || b.n > max ||
	    bits < WN_BITS_MIN) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
