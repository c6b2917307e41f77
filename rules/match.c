/* SPDX-License-Identifier: MIT */
/*
 * match.c - evaluating a rule set: SMTP-stage rules on one string, content
 * rules on a decoded message, meta rules on the hit counts.
 *
 * rule_run_new(), rule_run_free(), rule_run_reset(): an evaluation's
 *   state (hit counts, PCRE2 match data and JIT stack): one per thread.
 * rule_run_smtp(): connect/helo/mailfrom/rcptto rules.
 * rule_run_message(): header, mimeheader, body, rawbody, uri, full and the
 *   built-in MIME rules, then the metas.
 *
 * Semantics follow SpamAssassin: header rules see the values of every
 * instance of the header, each ending in "\n"; a missing header is the
 * [if-unset:] text or "" (so `!~` hits on it); MESSAGEID is every
 * Message-Id, Resent-Message-Id and X-Message-Id; body rules run per
 * paragraph, rawbody per line, uri per URI; without tflags multiple a rule
 * counts once, with it every match counts (up to maxhits).  A meta rule's
 * operands are hit counts; it hits when its value is not 0.
 *
 * SECURITY: patterns come from the operator but run on anyone's message:
 * every match has a match limit and a depth limit (a pathological
 * pattern gives "no match", never a stall), and a bounded JIT stack.
 */
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "rule_priv.h"

#define RULE_MATCH_LIMIT  200000
#define RULE_DEPTH_LIMIT  10000
#define RULE_MULTIPLE_MAX 1000

struct rule_run {
	const struct rule_set *set;
	unsigned *counts;
	unsigned char *meta_state; /* 0 not yet, 1 running, 2 done */
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jit;
	/* the message being evaluated */
	const struct rule_msg *msg;
	/* its body paragraphs, rawbody lines and URIs joined by "\n", as
	 * they are and lower-cased, for the literal prefilter */
	char *joined[3][2];
	size_t joined_len[3];
	/* where each of those strings starts in the joined text (the
	 * last, one past the end: a string's length is start[i + 1] -
	 * start[i] - 1) */
	size_t *start[3];
	size_t nstart[3];
	/* the header texts of this message, by key (rule.hkey): built by
	 * the first header rule that reads one (hvalid), then shared */
	struct rule_sbuf *htext;
	unsigned char *hfound, *hvalid;
	/* and lower-cased, for the literal check of header rules: built by
	 * the first that needs it (hlvalid) */
	struct rule_sbuf *hlower;
	unsigned char *hlvalid;
	/* the multi-pattern prefilter: for the rules it covers, the strings
	 * where they may match, per message; pf[w] when it ran on body (0)
	 * / rawbody (1) */
	void *pf_scratch;
	struct rule_pf_marks marks;
	bool pf[2];
	bool pf_off;
};

struct rule_run *
rule_run_new(const struct rule_set *set)
{
	struct rule_run *run = rule_xcalloc(1, sizeof(*run));

	run->set = set;
	run->counts = rule_xcalloc(set->nrules, sizeof(*run->counts));
	run->meta_state = rule_xcalloc(set->nrules, 1);
	run->htext = rule_xcalloc(set->nhkeys + 1, sizeof(*run->htext));
	run->hfound = rule_xcalloc(set->nhkeys + 1, 1);
	run->hvalid = rule_xcalloc(set->nhkeys + 1, 1);
	run->hlower = rule_xcalloc(set->nhkeys + 1, sizeof(*run->hlower));
	run->hlvalid = rule_xcalloc(set->nhkeys + 1, 1);
	run->marks.head = rule_xcalloc(set->nrules, sizeof(uint32_t));
	run->marks.tail = rule_xcalloc(set->nrules, sizeof(uint32_t));
	run->pf_scratch = rule_pf_scratch_new(set);
	run->md = pcre2_match_data_create(1, NULL);
	run->mctx = pcre2_match_context_create(NULL);
	if (run->md == NULL || run->mctx == NULL)
		abort();
	pcre2_set_match_limit(run->mctx, RULE_MATCH_LIMIT);
	pcre2_set_depth_limit(run->mctx, RULE_DEPTH_LIMIT);
	run->jit = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);
	if (run->jit != NULL)
		pcre2_jit_stack_assign(run->mctx, NULL, run->jit);
	return run;
}

void
rule_run_free(struct rule_run **runp)
{
	struct rule_run *run = *runp;

	if (run == NULL)
		return;
	*runp = NULL;
	pcre2_match_data_free(run->md);
	pcre2_match_context_free(run->mctx);
	pcre2_jit_stack_free(run->jit);
	free(run->counts);
	free(run->meta_state);
	for (size_t k = 0; k < run->set->nhkeys; k++) {
		free(run->htext[k].p);
		free(run->hlower[k].p);
	}
	free(run->htext);
	free(run->hlower);
	free(run->hlvalid);
	free(run->hfound);
	free(run->hvalid);
	free(run->marks.head);
	free(run->marks.tail);
	free(run->marks.rec);
	for (int w = 0; w < 3; w++)
		free(run->start[w]);
	rule_pf_scratch_free(run->pf_scratch);
	free(run);
}

void
rule_run_reset(struct rule_run *run)
{
	memset(run->counts, 0, run->set->nrules * sizeof(*run->counts));
}

void
rule_run_set_prefilter(struct rule_run *run, bool on)
{
	run->pf_off = !on;
}

unsigned
rule_run_count(const struct rule_run *run, size_t i)
{
	return run->counts[i];
}

void
rule_run_set_count(struct rule_run *run, size_t i, unsigned count)
{
	run->counts[i] = count;
}

/* rule_match - matches of r in s (len bytes): 0 or 1, or with tflags
 * multiple every match, up to limit. */
static unsigned
rule_match(struct rule_run *run, const struct rule *r, const char *s,
           size_t len, unsigned limit)
{
	PCRE2_SIZE off = 0;
	unsigned n = 0;

	while (off <= len && n < limit) {
		/* JIT's fast path (no option checks: we use no UTF), or
		 * the interpreter where JIT compiling failed */
		int rc = pcre2_jit_match(r->re, (PCRE2_SPTR)s, len, off, 0,
		                         run->md, run->mctx);
		PCRE2_SIZE *ov;

		if (rc == PCRE2_ERROR_JIT_BADOPTION)
			rc = pcre2_match(r->re, (PCRE2_SPTR)s, len, off, 0,
			                 run->md, run->mctx);

		if (rc < 0)
			break; /* no match, or a limit: no match */
		n++;
		if (!(r->tflags & RULE_TF_MULTIPLE))
			break;
		ov = pcre2_get_ovector_pointer(run->md);
		off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
	}
	return n;
}

static unsigned
rule_limit(const struct rule *r)
{
	if (!(r->tflags & RULE_TF_MULTIPLE))
		return 1;
	return r->maxhits ? r->maxhits : RULE_MULTIPLE_MAX;
}

static void
rule_add(struct rule_run *run, size_t i, unsigned hits)
{
	const struct rule *r = &run->set->rules[i];
	unsigned limit = rule_limit(r);

	run->counts[i] += hits;
	if (run->counts[i] > limit)
		run->counts[i] = limit;
}

enum rule_action
rule_run_smtp(struct rule_run *run, enum rule_type type, const char *subject,
              size_t *rule_r)
{
	const struct rule_set *set = run->set;
	enum rule_action best = RULE_ACTION_NONE;
	size_t len = strlen(subject);

	for (size_t k = 0; k < set->nby_type[type]; k++) {
		size_t i = set->by_type[type][k];
		const struct rule *r = &set->rules[i];
		unsigned hits = rule_match(run, r, subject, len, rule_limit(r));

		if (hits == 0)
			continue;
		rule_add(run, i, hits);
		if (r->action > best) {
			best = r->action;
			if (rule_r != NULL)
				*rule_r = i;
		}
	}
	return best;
}

/* Header values. */

static void
rule_sbuf_str(struct rule_sbuf *b, const char *s)
{
	rule_sbuf_add(b, s, strlen(s));
}

/* rule_hdr_append - the value of h for mod, with a final newline. */
static void
rule_hdr_append(struct rule_sbuf *b, const struct rule_header *h,
                enum rule_hdr_mod mod)
{
	char *list;

	switch (mod) {
	case RULE_HDR_RAW:
		rule_sbuf_str(b, h->raw);
		break;
	case RULE_HDR_ADDR:
	case RULE_HDR_NAME:
		list = rule_addr_list(h->value, mod == RULE_HDR_ADDR);
		rule_sbuf_str(b, list);
		free(list);
		return; /* one per line already */
	default:
		rule_sbuf_str(b, h->value);
	}
	rule_sbuf_add(b, "\n", 1);
}

/* rule_hdr_get - the text a header rule matches, false if the header is
 * absent. */
static bool
rule_hdr_get(const struct rule *r, const struct rule_header *hdrs, size_t n,
             const char *envelope_from, struct rule_sbuf *b)
{
	bool found = false;
	const char *name = r->header;

	if (strcmp(name, "ALL") == 0) {
		for (size_t i = 0; i < n; i++) {
			rule_sbuf_str(b, hdrs[i].name);
			rule_sbuf_add(b, ": ", 2);
			rule_hdr_append(b, &hdrs[i], r->mod);
		}
		return n > 0;
	}
	if (strcmp(name, "MESSAGEID") == 0) {
		/* SpamAssassin's pseudo-header: every message id header. */
		for (size_t i = 0; i < n; i++)
			if (strcasecmp(hdrs[i].name, "Message-Id") == 0 ||
			    strcasecmp(hdrs[i].name, "Resent-Message-Id") ==
			        0 ||
			    strcasecmp(hdrs[i].name, "X-Message-Id") == 0) {
				rule_hdr_append(b, &hdrs[i], r->mod);
				found = true;
			}
		return found;
	}
	if (strcmp(name, "EnvelopeFrom") == 0) {
		if (envelope_from == NULL)
			return false;
		rule_sbuf_str(b, envelope_from);
		rule_sbuf_add(b, "\n", 1);
		return true;
	}
	for (size_t i = 0; i < n; i++) {
		bool want;

		if (strcmp(name, "ToCc") == 0)
			want = strcasecmp(hdrs[i].name, "To") == 0 ||
			       strcasecmp(hdrs[i].name, "Cc") == 0;
		else
			want = strcasecmp(hdrs[i].name, name) == 0;
		if (!want)
			continue;
		rule_hdr_append(b, &hdrs[i], r->mod);
		found = true;
	}
	return found;
}

/* rule_lower - the n bytes of src into dst, ASCII capitals made small
 * (the literals of /i rules are small: rule_literal). */
static void
rule_lower(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32
		                                               : src[i]);
}

/* rule_lits_in - whether text (len bytes, lower-cased for lit_nocase)
 * holds one of r's literals: if not, r has no match there. */
static bool
rule_lits_in(const struct rule *r, const char *text, size_t len)
{
	for (unsigned k = 0; k < r->nlits; k++)
		if (memmem(text, len, r->lits[k], r->litlens[k]) != NULL)
			return true;
	return false;
}

/* rule_has_literal - rule_lits_in for the header text of r's key (len
 * bytes), lower-cased once per message for /i rules. */
static bool
rule_has_literal(struct rule_run *run, const struct rule *r, const char *text,
                 size_t len)
{
	if (r->lit_nocase) {
		struct rule_sbuf *l = &run->hlower[r->hkey];

		if (!run->hlvalid[r->hkey]) {
			l->n = 0;
			rule_sbuf_add(l, text, len);
			rule_lower(l->p, text, len);
			run->hlvalid[r->hkey] = 1;
		}
		text = l->p;
	}
	return rule_lits_in(r, text, len);
}

static unsigned
rule_eval_header(struct rule_run *run, const struct rule *r,
                 const char *envelope_from)
{
	const struct rule_msg *m = run->msg;
	struct rule_sbuf *t = &run->htext[r->hkey];
	const char *text;
	size_t len;
	unsigned hits;

	if (!run->hvalid[r->hkey]) {
		t->n = 0;
		run->hfound[r->hkey] = rule_hdr_get(
		    r, r->mimeheader ? m->mime_hdrs : m->hdrs,
		    r->mimeheader ? m->nmime_hdrs : m->nhdrs, envelope_from, t);
		run->hvalid[r->hkey] = 1;
	}
	if (r->exists)
		return run->hfound[r->hkey];
	if (run->hfound[r->hkey] && t->p != NULL) {
		text = t->p;
		len = t->n;
		/* none of the literals one of which every match holds: no
		 * match */
		if (r->nlits > 0 && !rule_has_literal(run, r, text, len))
			return r->negate;
	} else {
		text = r->unset && !run->hfound[r->hkey] ? r->unset : "";
		len = strlen(text);
	}
	hits = rule_match(run, r, text, len, rule_limit(r));
	if (r->negate)
		return hits == 0;
	return hits;
}

/* rule_join - the n strings of v joined by "\n" (run->joined[w][0]), a
 * lower-cased copy ([w][1]), and where each starts (run->start[w]). */
static void
rule_join(struct rule_run *run, int w, char *const *v, size_t n)
{
	size_t *start, len, k = 0;
	char **out = &run->joined[w][0], **lower = &run->joined[w][1];

	if (run->nstart[w] < n + 1) {
		run->nstart[w] = n + 1;
		run->start[w] = rule_xrealloc(run->start[w],
		                              (n + 1) * sizeof(*run->start[w]));
	}
	start = run->start[w];
	start[0] = 0;
	for (size_t i = 0; i < n; i++)
		start[i + 1] = start[i] + strlen(v[i]) + 1;
	len = start[n];
	*out = rule_xmalloc(len + 1);
	*lower = rule_xmalloc(len + 1);
	for (size_t i = 0; i < n; i++) {
		size_t l = start[i + 1] - start[i] - 1;

		memcpy(*out + k, v[i], l);
		k += l;
		(*out)[k++] = '\n';
	}
	(*out)[k] = '\0';
	rule_lower(*lower, *out, k + 1);
	run->joined_len[w] = k;
}

/* rule_eval_marked - the matches of prefiltered rule ri in the strings
 * of all (the message's body paragraphs, which = 0, or rawbody lines, 1)
 * from index first on where the prefilter marked it: in the others it
 * has none. */
static unsigned
rule_eval_marked(struct rule_run *run, size_t ri, char *const *all,
                 size_t first, int which)
{
	const struct rule *r = &run->set->rules[ri];
	const size_t *start = run->start[which];
	unsigned limit = rule_limit(r), hits = 0;

	for (uint32_t k = run->marks.head[ri]; k != 0 && hits < limit;
	     k = run->marks.rec[k - 1].next) {
		uint32_t i = run->marks.rec[k - 1].str;

		if (i >= first)
			hits += rule_match(run, r, all[i],
			                   start[i + 1] - start[i] - 1,
			                   limit - hits);
	}
	return hits;
}

/* rule_eval_array - the matches of rule ri in v[first..n) (body
 * paragraphs, which = 0; rawbody lines, 1; URIs, 2). */
static unsigned
rule_eval_array(struct rule_run *run, size_t ri, char *const *v, size_t first,
                size_t n, int which)
{
	const struct rule *r = &run->set->rules[ri];
	unsigned limit = rule_limit(r), hits = 0;

	if (first >= n)
		return 0;
	/* The multi-pattern prefilter marked where it can match. */
	if (which < 2 && run->pf[which] && r->pf &&
	    run->marks.head[ri] != RULE_PF_ALL)
		return rule_eval_marked(run, ri, v, first, which);
	if (r->nlits > 0 && run->joined[which][0] != NULL) {
		/* None of the literals one of which every match holds is
		 * there: no match anywhere. */
		if (!rule_lits_in(r, run->joined[which][r->lit_nocase ? 1 : 0],
		                  run->joined_len[which]))
			return 0;
	}
	/* One call on the joined text instead of one per paragraph, where
	 * no match there means no match in any paragraph. */
	if (r->join_safe && run->joined[which][0] != NULL && n - first > 1 &&
	    rule_match(run, r, run->joined[which][0], run->joined_len[which],
	               1) == 0)
		return 0;

	for (size_t i = first; i < n && hits < limit; i++)
		hits += rule_match(run, r, v[i],
		                   run->start[which][i + 1] -
		                       run->start[which][i] - 1,
		                   limit - hits);
	return hits;
}

static double rule_meta_value(const struct rule_meta_op *op, void *arg);

static double
rule_meta_eval_one(struct rule_run *run, size_t i)
{
	const struct rule *r = &run->set->rules[i];
	double v;

	if (r->type != RULE_META)
		return run->counts[i];
	/* A meta naming a rule we skipped (an eval: test) cannot be
	 * evaluated as SpamAssassin does: disabled, as SpamAssassin disables
	 * metas with undefined dependencies. */
	if (r->partial) {
		run->counts[i] = 0;
		return 0;
	}
	if (run->meta_state[i] == 2)
		return run->counts[i];
	if (run->meta_state[i] == 1)
		return 0; /* a loop: finish refuses them; be safe anyway */
	run->meta_state[i] = 1;
	v = rule_meta_run(r->meta, rule_meta_value, run);
	run->counts[i] = v != 0;
	run->meta_state[i] = 2;
	return run->counts[i];
}

static double
rule_meta_value(const struct rule_meta_op *op, void *arg)
{
	return rule_meta_eval_one(arg, op->ref);
}

void
rule_run_metas(struct rule_run *run)
{
	const struct rule_set *set = run->set;

	memset(run->meta_state, 0, set->nrules);
	for (size_t k = 0; k < set->nby_type[RULE_META]; k++)
		rule_meta_eval_one(run, set->by_type[RULE_META][k]);
}

void
rule_run_message(struct rule_run *run, const struct rule_msg *msg,
                 const char *envelope_from)
{
	const struct rule_set *set = run->set;

	run->msg = msg;
	memset(run->hvalid, 0, set->nhkeys);
	memset(run->hlvalid, 0, set->nhkeys);
	rule_join(run, 0, msg->body, msg->nbody);
	rule_join(run, 1, msg->rawbody, msg->nrawbody);
	rule_join(run, 2, msg->uris, msg->nuris);
	/* The body prefilter scans every paragraph, the Subject's too: a
	 * superset of what tflags nosubject rules see. */
	run->marks.nrec = 0;
	for (int w = 0; w < 2; w++)
		run->pf[w] = !run->pf_off &&
		             rule_pf_scan(set, w, run->pf_scratch,
		                          run->joined[w][0], run->start[w],
		                          w == 0 ? msg->nbody : msg->nrawbody,
		                          &run->marks);
	for (int t = RULE_HEADER; t <= RULE_FULL; t++) {
		for (size_t k = 0; k < set->nby_type[t]; k++) {
			size_t i = set->by_type[t][k];
			const struct rule *r = &set->rules[i];
			unsigned hits = 0;

			switch (t) {
			case RULE_HEADER:
				hits = rule_eval_header(run, r, envelope_from);
				break;
			case RULE_BODY:
				hits = rule_eval_array(
				    run, i, msg->body,
				    r->tflags & RULE_TF_NOSUBJECT ? 1 : 0,
				    msg->nbody, 0);
				break;
			case RULE_RAWBODY:
				hits = rule_eval_array(run, i, msg->rawbody, 0,
				                       msg->nrawbody, 1);
				break;
			case RULE_URI:
				hits = rule_eval_array(run, i, msg->uris, 0,
				                       msg->nuris, 2);
				break;
			case RULE_FULL:
				hits = rule_match(run, r, msg->full,
				                  msg->full_len, rule_limit(r));
				break;
			default:
				break;
			}
			if (hits > 0)
				rule_add(run, i, hits);
		}
	}
	for (size_t k = 0; k < set->nby_type[RULE_BUILTIN]; k++) {
		size_t i = set->by_type[RULE_BUILTIN][k];

		if (msg->flags & (1u << set->rules[i].flag_bit))
			run->counts[i] = 1;
	}
	rule_run_metas(run);
	run->msg = NULL;
	for (int w = 0; w < 3; w++)
		for (int c = 0; c < 2; c++) {
			free(run->joined[w][c]);
			run->joined[w][c] = NULL;
		}
}
