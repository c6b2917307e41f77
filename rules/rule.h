/* SPDX-License-Identifier: MIT */
/*
 * rule.h - the rule engine: SpamAssassin-style rule files compiled with
 * PCRE2 (JIT), our SMTP-stage rules, and their evaluation.
 *
 * A rule set is loaded once (rule_set_load, at config load time), is
 * immutable afterwards and may be shared by every thread: evaluation state
 * lives in a struct rule_run the caller owns (one per evaluation, or one
 * per thread reused).  The set is freed with the config that owns it.
 *
 * No libevent and no I/O other than reading the rule files at load, so the
 * unit tests and the fuzzers link it alone.
 */
#ifndef MX_RULE_H
#define MX_RULE_H

#include <stdbool.h>
#include <stddef.h>

/* Content rules see at most the first RULE_SCAN_MAX bytes of a message
 * (the rest is passed on, unscanned), in the daemon and in mxguard check. */
#define RULE_SCAN_MAX (4u << 20)

enum rule_type {
	RULE_HEADER = 0,
	RULE_BODY,
	RULE_RAWBODY,
	RULE_URI,
	RULE_FULL,
	RULE_META,
	RULE_CONNECT,  /* "name[ip]" of the client, Postfix style */
	RULE_HELO,     /* the HELO/EHLO argument */
	RULE_MAILFROM, /* the reverse path, "" for <> */
	RULE_RCPTTO,   /* each forward path */
	RULE_BUILTIN,  /* MIME oddities the decoder reports */
	RULE_NTYPES,
};

/* What an SMTP-stage rule does at once when it hits. */
enum rule_action {
	RULE_ACTION_NONE = 0,
	RULE_ACTION_ACCEPT,
	RULE_ACTION_TEMPFAIL,
	RULE_ACTION_REJECT,
};

/* Why a line was skipped (counted, never an error). */
enum rule_skip {
	RULE_SKIP_EVAL = 0,    /* SpamAssassin eval: tests */
	RULE_SKIP_DIRECTIVE,   /* a directive we do not implement */
	RULE_SKIP_UNSUPPORTED, /* a known directive with an unsupported form */
	RULE_SKIP_LANG,        /* lang xx ...: another language's text */
	RULE_NSKIPS,
};

struct rule_set;
struct rule_msg;
struct rule_run;

/*
 * rule_set_new - an empty set (only the built-in MIME rules).  Owned by the
 * caller, freed with rule_set_free().
 */
struct rule_set *rule_set_new(void);

/* rule_set_free - free; *setp = NULL; accepts NULL. */
void rule_set_free(struct rule_set **setp);

/*
 * rule_set_parse - add the rules in text (len bytes, the file named file
 * for messages) to set.  Returns 0, or -1 with *error_r a malloc'd
 * "FILE:LINE: reason" the caller frees.  Patterns are compiled here.
 */
int rule_set_parse(struct rule_set *set, const char *file, const char *text,
                   size_t len, char **error_r);

/*
 * rule_set_finish - after the last file: resolve meta references and
 * scores.  Returns 0, or -1 with *error_r (malloc'd) for a meta loop.
 */
int rule_set_finish(struct rule_set *set, char **error_r);

/*
 * rule_set_load - read every file the patterns name (glob(3); relative
 * patterns are taken from basedir, which may be NULL), in order, then
 * rule_set_finish().  A pattern without wildcards must name a readable
 * file.  Returns 0 with a new set in *set_r, or -1 with *error_r.
 */
int rule_set_load(const char *const *patterns, size_t n, const char *basedir,
                  struct rule_set **set_r, char **error_r);

/* rule_set_summary - "N rules loaded (header 3, ...); M skipped (eval 2,
 * ...)" into buf (truncated at size). */
void rule_set_summary(const struct rule_set *set, char *buf, size_t size);

/* rule_set_count - rules of one type, or lines skipped for one reason. */
unsigned rule_set_count(const struct rule_set *set, enum rule_type type);
unsigned rule_set_skipped(const struct rule_set *set, enum rule_skip why);

/* The rules, by index 0..rule_set_size()-1. */
size_t rule_set_size(const struct rule_set *set);
const char *rule_name(const struct rule_set *set, size_t i);
enum rule_type rule_type(const struct rule_set *set, size_t i);
/* rule_score - the score the rule adds (score set 0 or 1 of SpamAssassin's
 * four: net = network tests enabled). */
double rule_score(const struct rule_set *set, size_t i, bool net);
const char *rule_describe(const struct rule_set *set, size_t i);
/* rule_reported - a hit shows up as a symbol: not a __SUB rule, score not
 * 0. */
bool rule_reported(const struct rule_set *set, size_t i, bool net);
/* rule_partial - a meta that names a rule nothing defines (usually an
 * eval: test that was skipped), directly or through other metas: it is
 * disabled (never hits), as SpamAssassin disables metas with undefined
 * dependencies. */
bool rule_partial(const struct rule_set *set, size_t i);
/* rule_type_name - "header", "body", ... */
const char *rule_type_name(enum rule_type type);
/* rule_find - index of name, or -1. */
long rule_find(const struct rule_set *set, const char *name);
/* rule_smtp_reply - an SMTP-stage rule's immediate action, and its reply
 * text ("550 5.7.1 text") or NULL for the default. */
enum rule_action rule_smtp_action(const struct rule_set *set, size_t i,
                                  const char **reply_r);
/* rule_set_has - the set has rules of type. */
bool rule_set_has(const struct rule_set *set, enum rule_type type);

/*
 * An evaluation: hit counts per rule.  rule_run_new() allocates counts for
 * set (all 0) and PCRE2 match data; one thread at a time.
 */
struct rule_run *rule_run_new(const struct rule_set *set);
void rule_run_free(struct rule_run **runp);
/* rule_run_reset - counts back to 0. */
void rule_run_reset(struct rule_run *run);
unsigned rule_run_count(const struct rule_run *run, size_t i);
void rule_run_set_count(struct rule_run *run, size_t i, unsigned count);
/* rule_run_set_prefilter - use the multi-pattern prefilter (the default)
 * or not: the results are the same either way (tests compare them). */
void rule_run_set_prefilter(struct rule_run *run, bool on);
/* rule_set_prefiltered - how many rules the multi-pattern prefilter
 * covers (0 when built without Hyperscan). */
size_t rule_set_prefiltered(const struct rule_set *set);

/*
 * rule_run_smtp - match every rule of type (RULE_CONNECT..RULE_RCPTTO)
 * against subject, counting hits.  Returns the strongest immediate action
 * of the rules that hit (REJECT > TEMPFAIL > ACCEPT > NONE) and the index
 * of the rule that gave it in *rule_r.
 */
enum rule_action rule_run_smtp(struct rule_run *run, enum rule_type type,
                               const char *subject, size_t *rule_r);

/*
 * rule_run_message - the content rules (header, body, rawbody, uri, full,
 * the built-in MIME rules), then every meta rule, on msg.  Counts add to
 * those already in run (SMTP-stage hits stay and metas see them).
 * envelope_from may be NULL (the EnvelopeFrom pseudo-header).
 */
void rule_run_message(struct rule_run *run, const struct rule_msg *msg,
                      const char *envelope_from);

/* rule_run_metas - evaluate only the meta rules on the current counts. */
void rule_run_metas(struct rule_run *run);

/*
 * rule_meta_eval - parse and evaluate a meta-style expression with ident
 * values from lookup (for `if` lines and tests).  Returns 0 with the value
 * in *value_r, or -1 with a static *error_r.
 */
int rule_meta_eval(const char *expr,
                   double (*lookup)(const char *name, size_t len, void *arg),
                   void *arg, double *value_r, const char **error_r);

#endif
