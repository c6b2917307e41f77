/* SPDX-License-Identifier: MIT */
/*
 * prefilter.c - one pass over a message's body text that tells which body
 * and rawbody rules can possibly match, so PCRE2 runs only those.
 *
 * rule_pf_build(): at rule_set_finish(), Hyperscan databases for the
 *   body and rawbody rules: one of every rule's literal set (the strings
 *   one of which each match holds, rule_literal in parse.c) and, for
 *   rules without one, their patterns in Hyperscan's prefilter mode.
 * rule_pf_scan(): per paragraph (body) or line (rawbody), the exact
 *   strings PCRE2 will be given, marks the rules that may match.
 *
 * Hyperscan's prefilter mode guarantees no false negatives: every subject
 * the pattern matches, its approximation matches too (it may match more).
 * The pattern it gets is itself a superset of the rule's (lookarounds
 * dropped, long counted repeats opened up: rule_pf_source).  So a rule
 * not marked has no match in any paragraph and PCRE2 need not run; a
 * marked one runs as before, and decides.  Patterns Hyperscan refuses
 * (or that match the empty string, or are too costly to compile) are not
 * in a database and always run.  tests/fuzz/fuzz_prefilter.c compares
 * the hits with and without the prefilter.
 *
 * Without Hyperscan (MX_HAVE_HYPERSCAN undefined) nothing is built and
 * every rule runs, with the literal prefilter of match.c as before.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "rule_priv.h"

size_t
rule_set_prefiltered(const struct rule_set *set)
{
	return set->npf[0] + set->npf[1];
}

#ifdef MX_HAVE_HYPERSCAN
#include <hs.h>

/* rule_pf_flags - Hyperscan flags for a PCRE2 pattern's options. */
static unsigned
rule_pf_flags(uint32_t opts)
{
	unsigned f = HS_FLAG_PREFILTER | HS_FLAG_SINGLEMATCH;

	if (opts & PCRE2_CASELESS)
		f |= HS_FLAG_CASELESS;
	if (opts & PCRE2_MULTILINE)
		f |= HS_FLAG_MULTILINE;
	if (opts & PCRE2_DOTALL)
		f |= HS_FLAG_DOTALL;
	return f;
}

/* rule_pf_quant - at p (a '{'), the counted repeat {m}, {m,} or {m,n}:
 * its length, 0 if it is not one (then PCRE2 reads a literal brace). */
static size_t
rule_pf_quant(const char *p, unsigned long *max_r)
{
	const char *q = p + 1;
	unsigned long m = 0, n;

	if (!isdigit((unsigned char)*q))
		return 0;
	for (; isdigit((unsigned char)*q); q++)
		if (m < 100000)
			m = m * 10 + (unsigned long)(*q - '0');
	n = m;
	if (*q == ',') {
		q++;
		for (; isdigit((unsigned char)*q); q++)
			if (n < 100000)
				n = n * 10 + (unsigned long)(*q - '0');
	}
	if (*q != '}')
		return 0;
	*max_r = n > m ? n : m;
	return (size_t)(q - p) + 1;
}

/* rule_pf_skip_group - p at a '(': past its ')' (or the end). */
static const char *
rule_pf_skip_group(const char *p)
{
	int depth = 0;

	while (*p) {
		if (*p == '\\' && p[1]) {
			p += 2;
			continue;
		}
		if (*p == '[') {
			const char *e = rule_class_end(p);

			p = e != NULL ? e : p + strlen(p);
			continue;
		}
		if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0)
			return p + 1;
		p++;
	}
	return p;
}

/*
 * rule_pf_source - the pattern as Hyperscan gets it, NULL when it cannot
 * be given.  Counted repeats of groups and long counted repeats become
 * `*` (from 0) or `+`: a superset (what a prefilter may be), and what
 * makes Hyperscan's compile time reasonable (SpamAssassin's
 * `(?:<long alternation>){3}` took minutes otherwise); lookarounds are
 * dropped (they only narrow the matches).  A brace PCRE2 reads as a
 * literal is given escaped, so both engines read it alike.
 */
static char *
rule_pf_source(const struct rule *r)
{
	const char *p = r->src;
	size_t len;
	char *out, *o;
	bool after_group = false;

	if (p == NULL || *p == '\0')
		return NULL;
	len = strlen(p);
	out = rule_xmalloc(2 * len + 8);
	o = out;
	while (*p) {
		bool group = after_group;
		unsigned long max;
		size_t q;

		after_group = false;
		if (*p == '\\') {
			const char *e = p + 2;

			if (p[1] == '\0')
				break;
			if (strchr("xpPNogk", p[1]) != NULL && *e == '{') {
				const char *c = strchr(e, '}');

				e = c != NULL ? c + 1 : e;
			} else if (p[1] == 'Q') {
				/* \Q...\E: quoted, copied as is */
				const char *c = strstr(e, "\\E");

				e = c != NULL ? c + 2 : p + strlen(p);
			}
			memcpy(o, p, (size_t)(e - p));
			o += e - p;
			p = e;
			continue;
		}
		if (*p == '[') {
			const char *e = rule_class_end(p);

			if (e == NULL)
				e = p + strlen(p);
			memcpy(o, p, (size_t)(e - p));
			o += e - p;
			p = e;
			continue;
		}
		if (*p == '{') {
			q = rule_pf_quant(p, &max);
			if (q == 0) {
				*o++ = '\\';
				*o++ = *p++;
				continue;
			}
			if (group || max > 16) {
				*o++ =
				    p[1] == '0' && !isdigit((unsigned char)p[2])
				        ? '*'
				        : '+';
			} else {
				memcpy(o, p, q);
				o += q;
			}
			p += q;
			continue;
		}
		if (p[0] == '(' && p[1] == '?' &&
		    (p[2] == '=' || p[2] == '!' ||
		     (p[2] == '<' && (p[3] == '=' || p[3] == '!')))) {
			/* A lookaround only narrows the matches: without it,
			 * a superset.  Skip it and any quantifier on it. */
			p = rule_pf_skip_group(p);
			if (*p == '?' || *p == '*' || *p == '+')
				p++;
			else if (*p == '{' && (q = rule_pf_quant(p, &max)) > 0)
				p += q;
			if (*p == '?' || *p == '+')
				p++;
			continue;
		}
		if (*p == ')')
			after_group = true;
		*o++ = *p++;
	}
	*o = '\0';
	return out;
}

/* rule_pf_literals - for a rule with literals (one of which every match
 * holds: rule_literal), the pattern "any of them", every byte quoted:
 * the literal prefilter in the same pass as the others. */
static char *
rule_pf_literals(const struct rule *r)
{
	size_t len = 8;
	char *out, *o;

	for (unsigned k = 0; k < r->nlits; k++)
		len += 4 * r->litlens[k] + 1;
	out = rule_xmalloc(len);
	o = out;
	for (unsigned k = 0; k < r->nlits; k++) {
		if (k > 0)
			*o++ = '|';
		for (size_t j = 0; j < r->litlens[k]; j++) {
			unsigned char c = (unsigned char)r->lits[k][j];

			if (isalnum(c))
				*o++ = (char)c;
			else
				o += sprintf(o, "\\x%02x", c);
		}
	}
	*o = '\0';
	return out;
}

/* One database: its patterns' rules. */
struct rule_pf_db {
	hs_database_t *db;
	size_t *rule; /* pattern id -> rule index */
	size_t n;
};

/* Patterns being gathered for one database. */
struct rule_pf_batch {
	char **src;
	unsigned *flags;
	size_t *rule;
	size_t n;
};

/* rule_pf_compile - compile the batch into a new database of set's list
 * w; the batch is emptied. */
static void
rule_pf_compile(struct rule_set *set, int w, struct rule_pf_batch *b)
{
	unsigned *ids = rule_xcalloc(b->n + 1, sizeof(*ids));
	hs_database_t *db = NULL;
	struct rule_pf_db *d;

	/* A pattern the analysis accepted may still fail the whole compile
	 * (resource limits): drop it and try again. */
	while (b->n > 0) {
		hs_compile_error_t *err = NULL;
		int bad;

		for (size_t j = 0; j < b->n; j++)
			ids[j] = (unsigned)j;
		if (hs_compile_multi((const char *const *)b->src, b->flags, ids,
		                     (unsigned)b->n, HS_MODE_BLOCK, NULL, &db,
		                     &err) == HS_SUCCESS)
			break;
		bad = err != NULL ? err->expression : -1;
		hs_free_compile_error(err);
		db = NULL;
		if (bad < 0 || (size_t)bad >= b->n) {
			for (size_t j = 0; j < b->n; j++)
				free(b->src[j]);
			b->n = 0; /* nothing to blame: not prefiltered */
			break;
		}
		free(b->src[bad]);
		b->n--;
		memmove(&b->src[bad], &b->src[bad + 1],
		        (b->n - (size_t)bad) * sizeof(*b->src));
		memmove(&b->flags[bad], &b->flags[bad + 1],
		        (b->n - (size_t)bad) * sizeof(*b->flags));
		memmove(&b->rule[bad], &b->rule[bad + 1],
		        (b->n - (size_t)bad) * sizeof(*b->rule));
	}
	free(ids);
	if (db != NULL &&
	    hs_alloc_scratch(db, (hs_scratch_t **)&set->pf_scratch) !=
	        HS_SUCCESS) {
		hs_free_database(db);
		db = NULL;
	}
	if (db != NULL) {
		set->pf_db[w] = rule_xrealloc(
		    set->pf_db[w], (set->npf_db[w] + 1) * sizeof(*d));
		d = &((struct rule_pf_db *)set->pf_db[w])[set->npf_db[w]++];
		d->db = db;
		d->n = b->n;
		d->rule = rule_xcalloc(b->n + 1, sizeof(*d->rule));
		memcpy(d->rule, b->rule, b->n * sizeof(*d->rule));
		for (size_t j = 0; j < b->n; j++)
			set->rules[b->rule[j]].pf = true;
		set->npf[w] += b->n;
	}
	for (size_t j = 0; j < b->n; j++)
		free(b->src[j]);
	b->n = 0;
}

/* rule_pf_add - s (malloc'd) with flags f for rule i into the batch, if
 * Hyperscan accepts it and it cannot match the empty string (then every
 * paragraph "may match": no use). */
static void
rule_pf_add(struct rule_pf_batch *b, char *s, unsigned f, size_t i)
{
	hs_expr_info_t *info = NULL;
	hs_compile_error_t *err = NULL;

	if (s == NULL)
		return;
	if (hs_expression_info(s, f, &info, &err) != HS_SUCCESS ||
	    info->min_width == 0) {
		hs_free_compile_error(err);
		free(info);
		free(s);
		return;
	}
	free(info);
	b->src[b->n] = s;
	b->flags[b->n] = f;
	b->rule[b->n] = i;
	b->n++;
}

/*
 * Hyperscan's compile time grows fast with the size of a pattern and
 * faster than linearly with the number of complex patterns in one
 * database: SpamAssassin's "fuzzy" patterns (kilobytes of alternated
 * look-alike bytes) took minutes.  So: the literal sets of every rule
 * that has one in one database (quick to build: literals), and the
 * patterns of the other rules, up to RULE_PF_SRC_MAX bytes, in databases
 * of RULE_PF_GROUP; longer ones run unfiltered as before.
 */
#define RULE_PF_SRC_MAX 2000
#define RULE_PF_GROUP   16

/* rule_pf_build_one - the databases for the rules of one type. */
static void
rule_pf_build_one(struct rule_set *set, enum rule_type type, int w)
{
	size_t n = set->nby_type[type];
	struct rule_pf_batch b = {
	    .src = rule_xcalloc(n + 1, sizeof(char *)),
	    .flags = rule_xcalloc(n + 1, sizeof(unsigned)),
	    .rule = rule_xcalloc(n + 1, sizeof(size_t)),
	};

	for (size_t j = 0; j < n; j++) {
		size_t i = set->by_type[type][j];
		struct rule *r = &set->rules[i];

		if (r->re != NULL && r->nlits > 0)
			rule_pf_add(&b, rule_pf_literals(r),
			            HS_FLAG_PREFILTER | HS_FLAG_SINGLEMATCH |
			                (r->lit_nocase ? HS_FLAG_CASELESS : 0),
			            i);
	}
	rule_pf_compile(set, w, &b);
	for (size_t j = 0; j < n; j++) {
		size_t i = set->by_type[type][j];
		struct rule *r = &set->rules[i];

		/* /x: comments could hide what rule_pf_source reads */
		if (r->re == NULL || r->nlits > 0 || r->src == NULL ||
		    (r->opts & PCRE2_EXTENDED) ||
		    strlen(r->src) > RULE_PF_SRC_MAX)
			continue;
		rule_pf_add(&b, rule_pf_source(r), rule_pf_flags(r->opts), i);
		if (b.n == RULE_PF_GROUP)
			rule_pf_compile(set, w, &b);
	}
	rule_pf_compile(set, w, &b);
	free(b.src);
	free(b.flags);
	free(b.rule);
}

void
rule_pf_free(struct rule_set *set)
{
	for (int w = 0; w < 2; w++) {
		struct rule_pf_db *d = set->pf_db[w];

		for (size_t j = 0; j < set->npf_db[w]; j++) {
			hs_free_database(d[j].db);
			free(d[j].rule);
		}
		free(d);
		set->pf_db[w] = NULL;
		set->npf_db[w] = 0;
		set->npf[w] = 0;
	}
	hs_free_scratch(set->pf_scratch);
	set->pf_scratch = NULL;
}

void
rule_pf_build(struct rule_set *set)
{
	rule_pf_free(set);
	for (size_t i = 0; i < set->nrules; i++)
		set->rules[i].pf = false;
	if (hs_valid_platform() != HS_SUCCESS)
		return;
	rule_pf_build_one(set, RULE_BODY, 0);
	rule_pf_build_one(set, RULE_RAWBODY, 1);
}

void *
rule_pf_scratch_new(const struct rule_set *set)
{
	hs_scratch_t *s = NULL;

	if (set->pf_scratch == NULL)
		return NULL;
	if (hs_clone_scratch(set->pf_scratch, &s) != HS_SUCCESS)
		abort(); /* out of memory */
	return s;
}

void
rule_pf_scratch_free(void *scratch)
{
	hs_free_scratch(scratch);
}

struct rule_pf_ctx {
	const size_t *rule;
	unsigned char *may;
};

static int
rule_pf_hit(unsigned id, unsigned long long from, unsigned long long to,
            unsigned flags, void *arg)
{
	struct rule_pf_ctx *c = arg;

	(void)from;
	(void)to;
	(void)flags;
	c->may[c->rule[id]] = 1;
	return 0;
}

bool
rule_pf_scan(const struct rule_set *set, int w, void *scratch, char *const *v,
             size_t n, unsigned char *may)
{
	const struct rule_pf_db *d = set->pf_db[w];

	if (set->npf_db[w] == 0 || scratch == NULL)
		return false;
	for (size_t k = 0; k < set->npf_db[w]; k++) {
		struct rule_pf_ctx c = {d[k].rule, may};

		for (size_t j = 0; j < d[k].n; j++)
			may[d[k].rule[j]] = 0;
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(v[i]);

			/* hs_scan takes an unsigned int length; the content
			 * rules see 4 MiB at most, but be safe: mark them
			 * all, PCRE2 decides. */
			if (len > 0xfffffff0u ||
			    hs_scan(d[k].db, v[i], (unsigned)len, 0, scratch,
			            rule_pf_hit, &c) != HS_SUCCESS) {
				for (size_t j = 0; j < d[k].n; j++)
					may[d[k].rule[j]] = 1;
				break;
			}
		}
	}
	return true;
}

#else /* !MX_HAVE_HYPERSCAN */

void
rule_pf_build(struct rule_set *set)
{
	(void)set;
}

void
rule_pf_free(struct rule_set *set)
{
	(void)set;
}

void *
rule_pf_scratch_new(const struct rule_set *set)
{
	(void)set;
	return NULL;
}

void
rule_pf_scratch_free(void *scratch)
{
	(void)scratch;
}

bool
rule_pf_scan(const struct rule_set *set, int w, void *scratch, char *const *v,
             size_t n, unsigned char *may)
{
	(void)set;
	(void)w;
	(void)scratch;
	(void)v;
	(void)n;
	(void)may;
	return false;
}

#endif
