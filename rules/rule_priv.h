/* SPDX-License-Identifier: MIT */
/*
 * rule_priv.h - the compiled rule set, shared by parse.c (building it),
 * meta.c (expressions) and match.c (evaluating it).  Nothing outside
 * rules/ includes this.
 */
#ifndef MX_RULE_PRIV_H
#define MX_RULE_PRIV_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rule.h"

/* Allocation that never returns NULL (STYLE: one wrapper, abort). */
void *rule_xmalloc(size_t n);
void *rule_xcalloc(size_t n, size_t size);
void *rule_xrealloc(void *p, size_t n);
char *rule_xstrndup(const char *s, size_t n);
char *rule_xstrdup(const char *s);
/* rule_xasprintf - malloc'd printf. */
char *rule_xasprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* rule_hex - the value of hex digit c, -1 if it is not one (mime.c). */
int rule_hex(unsigned char c);

/* A growing string, always NUL-terminated once added to. */
struct rule_sbuf {
	char *p;
	size_t n, cap;
};

/* rule_sbuf_add - append n bytes of s. */
void rule_sbuf_add(struct rule_sbuf *b, const char *s, size_t n);

/*
 * rule_class_end - p at the '[' of a character class in a PCRE2 pattern:
 * past its closing ']', or NULL if the class never closes.  As PCRE2 reads
 * it: a ']' first (after an optional '^') is a member, a backslash escapes
 * the next byte, "[:name:]" is one member ('[' alone otherwise).
 */
const char *rule_class_end(const char *p);

/* Meta expressions, compiled to reverse Polish notation. */
enum rule_meta_opcode {
	RM_NUM = 0,
	RM_REF, /* a rule: by name until resolved, then by index */
	RM_NOT,
	RM_NEG,
	RM_ADD,
	RM_SUB,
	RM_MUL,
	RM_DIV,
	RM_LT,
	RM_GT,
	RM_LE,
	RM_GE,
	RM_EQ,
	RM_NE,
	RM_AND,
	RM_OR,
};

struct rule_meta_op {
	enum rule_meta_opcode op;
	double num;
	size_t ref;
	char *name; /* RM_REF before resolution */
};

struct rule_meta {
	struct rule_meta_op *ops;
	size_t nops;
	size_t depth; /* the evaluation stack it needs */
};

/* rule_meta_compile - parse expr.  Returns NULL with a static *error_r. */
struct rule_meta *rule_meta_compile(const char *expr, const char **error_r);
void rule_meta_free(struct rule_meta **mp);
/* rule_meta_run - evaluate with value(ref or name) for RM_REF. */
double rule_meta_run(const struct rule_meta *m,
                     double (*value)(const struct rule_meta_op *op, void *arg),
                     void *arg);

enum rule_hdr_mod {
	RULE_HDR_DECODED = 0,
	RULE_HDR_RAW,
	RULE_HDR_ADDR,
	RULE_HDR_NAME,
};

/* tflags */
#define RULE_TF_NICE      (1u << 0)
#define RULE_TF_MULTIPLE  (1u << 1)
#define RULE_TF_NOSUBJECT (1u << 2)
#define RULE_TF_NET       (1u << 3)

struct rule {
	char *name;
	bool defined;
	enum rule_type type;
	bool mimeheader; /* RULE_HEADER on MIME part headers */
	char *file;      /* where it was defined */
	unsigned line;
	pcre2_code *re;
	bool negate; /* !~ */
	char *header;
	enum rule_hdr_mod mod;
	bool exists; /* exists:Header */
	char *unset; /* [if-unset: ...] */
	struct rule_meta *meta;
	double score[4];
	bool scored;
	char *describe;
	unsigned tflags;
	unsigned maxhits;
	enum rule_action action;
	char *reply;       /* "550 5.7.1 text", NULL for the default */
	unsigned flag_bit; /* RULE_BUILTIN: the rule_mime_flag bit index */
	char *src;         /* the pattern as written (replace_rules) */
	uint32_t opts;     /* its PCRE2 options */
	bool replace; /* listed in replace_rules: tags expanded at finish */
	/* Literals one of which every match contains (lower-cased when
	 * lit_nocase): body, rawbody, uri and header rules none of whose
	 * literals is in the text are not run on it at all (rule_literal,
	 * at finish). */
	char **lits;
	size_t *litlens;
	unsigned nlits;
	bool lit_nocase;
	/* No match in the paragraphs (lines, URIs) joined by "\n" implies
	 * none in any one of them (no anchors, negative lookarounds, atomic
	 * groups...): one call on the joined text tells whether to run per
	 * paragraph. */
	bool join_safe;
	bool partial; /* a meta naming a rule nothing defines (a skipped eval
	               * test), itself or through other metas */
	bool pf;      /* in the multi-pattern prefilter (prefilter.c) */
	bool pf_eol;  /* its pattern there ends strings with "\n" */
	size_t hkey;  /* RULE_HEADER: the text it reads (rule_set.nhkeys) */
};

enum rule_tag_kind {
	RULE_TAG = 0,
	RULE_TAG_PRE,
	RULE_TAG_POST,
	RULE_TAG_INTER,
};

struct rule_tag {
	enum rule_tag_kind kind;
	char *name;
	char *value;
};

struct rule_set {
	struct rule *rules; /* every name seen (defined or only scored) */
	size_t nrules, cap;
	size_t *hash; /* index + 1, open addressing; 0 = empty */
	size_t hcap;
	/* after rule_set_finish(): the defined rules, by type */
	size_t *by_type[RULE_NTYPES];
	size_t nby_type[RULE_NTYPES];
	unsigned skipped[RULE_NSKIPS];
	bool finished;
	pcre2_compile_context *cctx;
	/* ReplaceTags: replace_tag/pre/post/inter NAME value */
	struct rule_tag *tags;
	size_t ntags;
	/* header rules' texts: one per header, way of reading it (hkey) */
	size_t nhkeys;
	/* The multi-pattern prefilter (prefilter.c): databases for body
	 * [0] and rawbody [1] rules, how many rules they cover, and a
	 * scratch each run clones.  None without Hyperscan. */
	void *pf_db[2];
	size_t npf_db[2];
	size_t npf[2];
	void *pf_scratch;
};

/*
 * rule_widen - for the prefilter: a Hyperscan pattern (no flags needed)
 * that matches in every string without a newline where src, a PCRE2
 * pattern with options opts, has a match, and is quick to compile
 * (widen.c).  NULL when src uses what cannot be widened safely, the
 * result is over max bytes, or it is too broad to rule much out.  *info
 * (if not NULL): how many look-alike alternations it merged, and how
 * selective it is (bits: about 7 a letter, 1 a space or wide class).
 */
struct rule_widened {
	unsigned merged;
	double bits;
	double tbits;
	bool eol; /* it has a "\n" for an end of string: a match ending on
	           * the "\n" after a string is that string's */
};
char *rule_widen(const char *src, uint32_t opts, size_t max,
                 struct rule_widened *info);

/* rule_exist_src - src (a PCRE2 pattern with options opts) rewritten to
 * match in exactly the strings src matches in, with less work where only
 * whether it matches counts: leading optional items cut (exist.c).  NULL
 * when there is nothing to cut or the pattern uses what the cut cannot
 * keep; else malloc'd. */
char *rule_exist_src(const char *src, uint32_t opts);

/* rule_negative_lookaround_nl - whether a negative lookaround of src (a
 * PCRE2 pattern with options opts) can match a newline; true also when
 * src cannot be read (widen.c). */
bool rule_negative_lookaround_nl(const char *src, uint32_t opts);

/* rule_pf_build - (re)build the prefilter of a finished set's body and
 * rawbody rules; marks the rules it covers (pf). */
void rule_pf_build(struct rule_set *set);
/* rule_pf_free - free the prefilter (not the rules' pf marks). */
void rule_pf_free(struct rule_set *set);
/* rule_pf_scratch_new - a run's own scratch space (NULL without a
 * prefilter); rule_pf_scratch_free() frees it, NULL accepted. */
void *rule_pf_scratch_new(const struct rule_set *set);
void rule_pf_scratch_free(void *scratch);
/*
 * What the prefilter found in a message, per rule it covers: the strings
 * (paragraph or line indexes) where the rule may match, as a list of
 * records in increasing order from head[rule] - 1 (0: none), or every
 * string when head[rule] is RULE_PF_ALL (the scan failed).
 */
#define RULE_PF_ALL UINT32_MAX
struct rule_pf_mark {
	uint32_t str, next; /* next: record index + 1, 0 at the end */
};
struct rule_pf_marks {
	uint32_t *head, *tail; /* per rule */
	struct rule_pf_mark *rec;
	size_t nrec, cap;
};

/*
 * rule_pf_scan - scan text (n strings, each followed by "\n", string i at
 * text + start[i], start[n] the length) with database w (0 body, 1
 * rawbody) and mark, for each rule it covers, the strings where it can
 * match (other rules' marks untouched).  False when there is no
 * prefilter (nothing written).
 */
bool rule_pf_scan(const struct rule_set *set, int w, void *scratch,
                  const char *text, const size_t *start, size_t n,
                  struct rule_pf_marks *m);

#endif
