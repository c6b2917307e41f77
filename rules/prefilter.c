/* SPDX-License-Identifier: MIT */
/*
 * prefilter.c - one pass over a message's body text that tells which body
 * and rawbody rules can possibly match, so PCRE2 runs only those.
 *
 * rule_pf_build(): at rule_set_finish(), Hyperscan databases for the
 *   body and rawbody rules: of each rule's pattern widened (widen.c), or
 *   of its literal set (the strings one of which each match holds,
 *   rule_literal in parse.c) where that is the better filter.
 * rule_pf_scan(): one scan of the message's paragraphs (body) or lines
 *   (rawbody) joined by "\n", the exact strings PCRE2 will be given,
 *   marks for each rule the strings where it may match; PCRE2 runs only
 *   there.
 *
 * Hyperscan's prefilter mode guarantees no false negatives: every subject
 * the pattern matches, its approximation matches too (it may match more).
 * The pattern it gets is itself a superset of the rule's (rule_widen).
 * So a rule has no match in a paragraph not marked for it, and PCRE2
 * runs only on the marked ones, and decides.  Patterns Hyperscan refuses
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
	bool alone; /* broad rules, scanned string by string */
	bool eol;   /* one of them ends strings with "\n" (pf_eol) */
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
rule_pf_compile(struct rule_set *set, int w, struct rule_pf_batch *b,
                bool alone)
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
		d->alone = alone;
		d->rule = rule_xcalloc(b->n + 1, sizeof(*d->rule));
		memcpy(d->rule, b->rule, b->n * sizeof(*d->rule));
		d->eol = false;
		for (size_t j = 0; j < b->n; j++) {
			set->rules[b->rule[j]].pf = true;
			d->eol |= set->rules[b->rule[j]].pf_eol;
		}
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
 * with the number of complex patterns in one database.  So: each rule's
 * pattern widened (rule_widen: look-alike alternations merged, long
 * repeats opened, long sequences trimmed); where that is selective
 * (RULE_PF_BITS_GROUP bits or more) it goes in a database of up to
 * RULE_PF_GROUP such patterns, else a rule with a literal set gives that
 * set (one database of them all: literals compile fast).  A pattern with
 * RULE_PF_MERGED_ALONE or more merged look-alike alternations
 * (SpamAssassin's FUZZY_* rules) gets a database of its own: alone each
 * compiles in milliseconds, sixteen together in seconds (scanned string
 * by string, one match each, if it is broad).  Broad patterns (under
 * RULE_PF_BITS_GROUP bits, or RULE_PF_TBITS_GROUP weighed by how common
 * each byte is: rule_pf_broad) with no literal set go in one database
 * compiled with SINGLEMATCH and scanned string by string: a database
 * scanned once over the joined strings reports every match, and such a
 * pattern has one at nearly every byte (`[a-z]{8,}` runs: millions of
 * matches over the bench corpus, a tenth of all the scanning).  A rule whose
 * pattern cannot be widened (or is over RULE_PF_SRC_MAX bytes widened)
 * and has no literal set runs unfiltered.
 */
#define RULE_PF_SRC_MAX      6000
#define RULE_PF_GROUP        64
#define RULE_PF_MERGED_ALONE 2
#define RULE_PF_BITS_GROUP   16.0
#define RULE_PF_TBITS_GROUP  11.0

/* rule_pf_broad - whether a widened pattern matches too often to share a
 * database scanned once over the joined strings: few bits, or few when
 * each byte is weighed by how common it is in mail (tbits: `[a-z]{8,}`
 * runs, which report a match at nearly every byte of a paragraph). */
static bool
rule_pf_broad(const struct rule_widened *info)
{
	return info->bits < RULE_PF_BITS_GROUP ||
	       info->tbits < RULE_PF_TBITS_GROUP;
}

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
	struct rule_pf_batch bs = {
	    .src = rule_xcalloc(n + 1, sizeof(char *)),
	    .flags = rule_xcalloc(n + 1, sizeof(unsigned)),
	    .rule = rule_xcalloc(n + 1, sizeof(size_t)),
	};

	char **wide = rule_xcalloc(n + 1, sizeof(char *));
	struct rule_widened *info = rule_xcalloc(n + 1, sizeof(*info));

	for (size_t j = 0; j < n; j++) {
		const struct rule *r = &set->rules[set->by_type[type][j]];

		if (r->re != NULL && r->src != NULL)
			wide[j] = rule_widen(r->src, r->opts, RULE_PF_SRC_MAX,
			                     &info[j]);
		set->rules[set->by_type[type][j]].pf_eol =
		    wide[j] != NULL && info[j].eol;
	}
	/* A rule with a literal set: its widened pattern when that is
	 * selective enough to share a database, else the literal set. */
	for (size_t j = 0; j < n; j++) {
		size_t i = set->by_type[type][j];
		const struct rule *r = &set->rules[i];

		if (r->re == NULL || r->nlits == 0 ||
		    (wide[j] != NULL && !rule_pf_broad(&info[j]) &&
		     info[j].merged < RULE_PF_MERGED_ALONE))
			continue;
		rule_pf_add(&b, rule_pf_literals(r),
		            HS_FLAG_PREFILTER |
		                (r->lit_nocase ? HS_FLAG_CASELESS : 0),
		            i);
		free(wide[j]);
		wide[j] = NULL;
		set->rules[i].pf_eol = false;
	}
	rule_pf_compile(set, w, &b, false);
	for (size_t j = 0; j < n; j++) {
		size_t i = set->by_type[type][j];
		bool broad = rule_pf_broad(&info[j]);

		if (wide[j] == NULL)
			continue;
		if (broad && info[j].merged < RULE_PF_MERGED_ALONE) {
			rule_pf_add(&bs, wide[j],
			            HS_FLAG_PREFILTER | HS_FLAG_SINGLEMATCH, i);
			continue;
		}
		if (info[j].merged >= RULE_PF_MERGED_ALONE) {
			/* look-alike letters: a database of its own */
			struct rule_pf_batch one = {
			    .src = (char *[]){NULL},
			    .flags = (unsigned[]){0},
			    .rule = (size_t[]){0},
			};

			rule_pf_add(&one, wide[j],
			            HS_FLAG_PREFILTER |
			                (broad ? HS_FLAG_SINGLEMATCH : 0),
			            i);
			rule_pf_compile(set, w, &one, broad);
			continue;
		}
		rule_pf_add(&b, wide[j], HS_FLAG_PREFILTER, i);
		if (b.n == RULE_PF_GROUP)
			rule_pf_compile(set, w, &b, false);
	}
	free(wide);
	free(info);
	rule_pf_compile(set, w, &b, false);
	rule_pf_compile(set, w, &bs, true);
	free(b.src);
	free(b.flags);
	free(b.rule);
	free(bs.src);
	free(bs.flags);
	free(bs.rule);
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
	const struct rule *rules;
	const size_t *rule;
	struct rule_pf_marks *m;
	const size_t *start; /* string i at text + start[i]; start[n] end */
	size_t n;
	size_t at;  /* the string of the last match: most come in order */
	bool stop;  /* string by string, one rule: stop at its match */
	size_t len; /* string by string: the string's length */
};

/* rule_pf_mark - string str for rule i, once, the list kept in order
 * (Hyperscan reports matches mostly, not always, by end offset). */
static void
rule_pf_mark(struct rule_pf_marks *m, size_t i, uint32_t str)
{
	uint32_t rec, *link;

	if (m->tail[i] != 0 && m->rec[m->tail[i] - 1].str == str)
		return; /* again in the same string: the usual repeat */
	if (m->nrec == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 256;
		m->rec = rule_xrealloc(m->rec, m->cap * sizeof(*m->rec));
	}
	link = &m->head[i];
	if (m->tail[i] != 0 && m->rec[m->tail[i] - 1].str >= str) {
		/* out of order: find its place */
		while (*link != 0 && m->rec[*link - 1].str < str)
			link = &m->rec[*link - 1].next;
		if (*link != 0 && m->rec[*link - 1].str == str)
			return;
	} else if (m->tail[i] != 0) {
		link = &m->rec[m->tail[i] - 1].next;
	}
	rec = (uint32_t)m->nrec++;
	m->rec[rec].str = str;
	m->rec[rec].next = *link;
	if (*link == 0)
		m->tail[i] = rec + 1;
	*link = rec + 1;
}

/* rule_pf_hit - pattern id matched, ending at offset to of the joined
 * text: a mark for the string holding its last byte.  A match ending on
 * the "\n" after a string is that string's if the pattern writes a
 * string's end as "\n" (pf_eol), else in no string (every real match
 * lies within one string; one across them is only a false alarm, and
 * lands on the later string, where PCRE2 finds nothing). */
static int
rule_pf_hit(unsigned id, unsigned long long from, unsigned long long to,
            unsigned flags, void *arg)
{
	struct rule_pf_ctx *c = arg;
	size_t b = (size_t)to - 1, lo = 0, hi = c->n;

	(void)from;
	(void)flags;
	if (to == 0)
		return 0;
	if (b < c->start[c->at] || b >= c->start[c->at + 1]) {
		/* the last string s with start[s] <= b */
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;

			if (c->start[mid] <= b)
				lo = mid;
			else
				hi = mid;
		}
		c->at = lo;
	}
	if (b + 1 == c->start[c->at + 1] && !c->rules[c->rule[id]].pf_eol)
		return 0; /* the separator */
	rule_pf_mark(c->m, c->rule[id], (uint32_t)c->at);
	return 0;
}

/* rule_pf_first - a rule of a database scanned string by string matched
 * (once: SINGLEMATCH): mark its string; if it is the database's only
 * rule, stop the scan (the next string gets a scan of its own). */
static int
rule_pf_first(unsigned id, unsigned long long from, unsigned long long to,
              unsigned flags, void *arg)
{
	struct rule_pf_ctx *c = arg;

	(void)from;
	(void)flags;
	if (to > c->len && !c->rules[c->rule[id]].pf_eol)
		return 0; /* on the "\n" after the string */
	rule_pf_mark(c->m, c->rule[id], (uint32_t)c->at);
	return c->stop;
}

/* rule_pf_scan_alone - database d (broad patterns, or one look-alike
 * pattern) on each of the n strings (at text + start[i]; with the "\n"
 * after it if a pattern needs it, d->eol) apart: a string is marked at a
 * rule's first match there. */
static void
rule_pf_scan_alone(const struct rule_set *set, const struct rule_pf_db *d,
                   void *scratch, const char *text, const size_t *start,
                   size_t n, struct rule_pf_marks *m)
{
	struct rule_pf_ctx c = {.rules = set->rules,
	                        .rule = d->rule,
	                        .m = m,
	                        .start = start,
	                        .stop = d->n == 1};

	for (size_t i = 0; i < n; i++) {
		size_t len = start[i + 1] - start[i] - 1;
		hs_error_t e;

		if (len == 0)
			continue;
		c.at = i;
		c.len = len;
		e = hs_scan(d->db, text + start[i], (unsigned)len + d->eol, 0,
		            scratch, rule_pf_first, &c);
		if (e != HS_SUCCESS && e != HS_SCAN_TERMINATED) {
			for (size_t j = 0; j < d->n; j++)
				m->head[d->rule[j]] = RULE_PF_ALL;
			return;
		}
	}
}

bool
rule_pf_scan(const struct rule_set *set, int w, void *scratch, const char *text,
             const size_t *start, size_t n, struct rule_pf_marks *m)
{
	const struct rule_pf_db *d = set->pf_db[w];
	struct rule_pf_ctx c = {
	    .rules = set->rules, .m = m, .n = n, .start = start};
	size_t len = start[n];
	bool ok;

	if (set->npf_db[w] == 0 || scratch == NULL)
		return false;
	/* hs_scan takes an unsigned int length; the content rules see 4 MiB
	 * at most, but be safe: every string for every rule, PCRE2
	 * decides. */
	ok = len <= 0xfffffff0u && n < RULE_PF_ALL;
	for (size_t k = 0; k < set->npf_db[w]; k++) {
		c.rule = d[k].rule;
		c.at = 0;
		for (size_t j = 0; j < d[k].n; j++)
			m->head[d[k].rule[j]] = m->tail[d[k].rule[j]] = 0;
		if (n == 0)
			continue;
		if (ok && d[k].alone)
			rule_pf_scan_alone(set, &d[k], scratch, text, start, n,
			                   m);
		else if (!ok || hs_scan(d[k].db, text, (unsigned)len, 0,
		                        scratch, rule_pf_hit, &c) != HS_SUCCESS)
			for (size_t j = 0; j < d[k].n; j++)
				m->head[d[k].rule[j]] = RULE_PF_ALL;
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
rule_pf_scan(const struct rule_set *set, int w, void *scratch, const char *text,
             const size_t *start, size_t n, struct rule_pf_marks *m)
{
	(void)set;
	(void)w;
	(void)scratch;
	(void)text;
	(void)start;
	(void)n;
	(void)m;
	return false;
}

#endif
