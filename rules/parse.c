/* SPDX-License-Identifier: MIT */
/*
 * parse.c - rule files: SpamAssassin's syntax and our SMTP-stage rules.
 *
 * rule_set_new(), rule_set_free(): life of a set.
 * rule_set_parse(): one file's text; patterns compiled with PCRE2 (and
 *   JIT-compiled) here, so a bad pattern is a load error, never a runtime
 *   one.  Errors are "FILE:LINE: reason".
 * rule_set_finish(): resolve meta references, check for meta loops, apply
 *   scores, index the rules by type.
 * rule_set_load(): glob the configured patterns, read and parse each file.
 * rule_set_summary() and the accessors: what `mxguard -t` and the filter
 *   read.
 *
 * Supported (SpamAssassin Mail::SpamAssassin::Conf): header (=~, !~,
 * exists:, ALL, ToCc, EnvelopeFrom, :raw, :addr, :name, [if-unset:]),
 * body, rawbody, uri, full, meta, mimeheader, score (1 or 4 values),
 * describe, tflags (nice, multiple, maxhits=N, nosubject, net), ifplugin,
 * if, else, endif, lang; comments from an unescaped '#'.  Ours: connect,
 * helo, mailfrom, rcptto NAME /re/flags [reject ["5xx x.y.z text"] |
 * tempfail ["4xx x.y.z text"] | accept].  eval: tests and other
 * directives are skipped and counted.
 *
 * Lifetime: the set is built by one thread, then read-only.
 */
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "rule_priv.h"

#define RULE_MAX_LINE 65536
#define RULE_IF_DEPTH 32
#define RULE_NAME_MAX 128

static const char *const rule_type_names[RULE_NTYPES] = {
    [RULE_HEADER] = "header",     [RULE_BODY] = "body",
    [RULE_RAWBODY] = "rawbody",   [RULE_URI] = "uri",
    [RULE_FULL] = "full",         [RULE_META] = "meta",
    [RULE_CONNECT] = "connect",   [RULE_HELO] = "helo",
    [RULE_MAILFROM] = "mailfrom", [RULE_RCPTTO] = "rcptto",
    [RULE_BUILTIN] = "builtin",
};

static const char *const rule_skip_names[RULE_NSKIPS] = {
    [RULE_SKIP_EVAL] = "eval",
    [RULE_SKIP_DIRECTIVE] = "unknown directive",
    [RULE_SKIP_UNSUPPORTED] = "unsupported form",
    [RULE_SKIP_LANG] = "lang",
};

/* Built-in MIME rules: default scores, overridable with `score`. */
static const struct {
	const char *describe;
	double score;
} rule_builtins[RULE_MIME_NFLAGS] = {
    {"Base64 part with characters outside the alphabet", 0.5},
    {"Multipart message with a missing boundary", 1.0},
    {"Text in a charset iconv does not know", 0.5},
    {"MIME parts nested too deep", 2.0},
    {"MIME headers not followed by a blank line", 1.0},
    {"HTML only, no text part", 0.2},
    {"Raw 8-bit characters in a header", 0.5},
    {"Quoted-printable part with bad escapes", 0.5},
};

void *
rule_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
rule_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
rule_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

char *
rule_xstrndup(const char *s, size_t n)
{
	char *p = rule_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
rule_xstrdup(const char *s)
{
	return rule_xstrndup(s, strlen(s));
}

char *
rule_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static size_t
rule_hash_str(const char *s)
{
	size_t h = 14695981039346656037ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static long
rule_lookup(const struct rule_set *set, const char *name)
{
	if (set->hcap == 0)
		return -1;
	for (size_t h = rule_hash_str(name) & (set->hcap - 1);;
	     h = (h + 1) & (set->hcap - 1)) {
		size_t v = set->hash[h];

		if (v == 0)
			return -1;
		if (strcmp(set->rules[v - 1].name, name) == 0)
			return (long)(v - 1);
	}
}

static void
rule_hash_put(struct rule_set *set, size_t idx)
{
	size_t h = rule_hash_str(set->rules[idx].name) & (set->hcap - 1);

	while (set->hash[h] != 0)
		h = (h + 1) & (set->hcap - 1);
	set->hash[h] = idx + 1;
}

/* rule_get - the entry for name, created if new. */
static struct rule *
rule_get(struct rule_set *set, const char *name)
{
	long i = rule_lookup(set, name);

	if (i >= 0)
		return &set->rules[i];
	if (set->nrules == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 64;
		set->rules =
		    rule_xrealloc(set->rules, set->cap * sizeof(*set->rules));
	}
	if ((set->nrules + 1) * 2 > set->hcap) {
		set->hcap = set->hcap ? set->hcap * 2 : 128;
		free(set->hash);
		set->hash = rule_xcalloc(set->hcap, sizeof(*set->hash));
		for (size_t j = 0; j < set->nrules; j++)
			rule_hash_put(set, j);
	}
	struct rule *r = &set->rules[set->nrules];

	memset(r, 0, sizeof(*r));
	r->name = rule_xstrdup(name);
	rule_hash_put(set, set->nrules);
	set->nrules++;
	return r;
}

/* rule_clear_def - forget a definition (a rule defined again replaces the
 * old one, as in SpamAssassin); score, describe and tflags stay. */
static void
rule_clear_def(struct rule *r)
{
	pcre2_code_free(r->re);
	r->re = NULL;
	free(r->header);
	r->header = NULL;
	free(r->unset);
	r->unset = NULL;
	rule_meta_free(&r->meta);
	free(r->file);
	r->file = NULL;
	free(r->reply);
	r->reply = NULL;
	free(r->src);
	r->src = NULL;
	for (unsigned i = 0; i < r->nlits; i++)
		free(r->lits[i]);
	free(r->lits);
	free(r->litlens);
	r->lits = NULL;
	r->litlens = NULL;
	r->nlits = 0;
	r->defined = false;
	r->negate = r->exists = r->mimeheader = false;
	r->mod = RULE_HDR_DECODED;
	r->action = RULE_ACTION_NONE;
	r->partial = false;
}

struct rule_set *
rule_set_new(void)
{
	struct rule_set *set = rule_xcalloc(1, sizeof(*set));

	set->cctx = pcre2_compile_context_create(NULL);
	for (unsigned i = 0; i < RULE_MIME_NFLAGS; i++) {
		struct rule *r = rule_get(set, rule_mime_flag_name(i));

		r->defined = true;
		r->type = RULE_BUILTIN;
		r->flag_bit = i;
		r->file = rule_xstrdup("(built-in)");
		r->describe = rule_xstrdup(rule_builtins[i].describe);
		for (int k = 0; k < 4; k++)
			r->score[k] = rule_builtins[i].score;
		r->scored = true;
	}
	return set;
}

void
rule_set_free(struct rule_set **setp)
{
	struct rule_set *set = *setp;

	if (set == NULL)
		return;
	*setp = NULL;
	for (size_t i = 0; i < set->nrules; i++) {
		rule_clear_def(&set->rules[i]);
		free(set->rules[i].name);
		free(set->rules[i].describe);
	}
	for (int t = 0; t < RULE_NTYPES; t++)
		free(set->by_type[t]);
	for (size_t i = 0; i < set->ntags; i++) {
		free(set->tags[i].name);
		free(set->tags[i].value);
	}
	free(set->tags);
	free(set->rules);
	free(set->hash);
	rule_pf_free(set);
	pcre2_compile_context_free(set->cctx);
	free(set);
}

/* Parsing one file. */

struct rule_parser {
	struct rule_set *set;
	/* the last pattern rule_regex() read */
	const char *re_src;
	size_t re_len;
	uint32_t re_opts;
	const char *file;
	unsigned line;
	char **error_r;
	/* if/ifplugin nesting: active[i] = lines at that level count */
	bool active[RULE_IF_DEPTH + 1];
	bool taken[RULE_IF_DEPTH + 1];
	unsigned if_line[RULE_IF_DEPTH + 1];
	unsigned depth;
};

static int rule_fail(struct rule_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
rule_fail(struct rule_parser *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*p->error_r = rule_xasprintf("%s:%u: %s", p->file, p->line, msg);
	return -1;
}

static const char *
rule_skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* rule_word - the next blank-separated word of *sp into buf. */
static bool
rule_word(const char **sp, char *buf, size_t size)
{
	const char *s = rule_skip_space(*sp), *b = s;
	size_t n;

	while (*s && *s != ' ' && *s != '\t')
		s++;
	n = (size_t)(s - b);
	if (n == 0 || n >= size)
		return false;
	memcpy(buf, b, n);
	buf[n] = '\0';
	*sp = s;
	return true;
}

static bool
rule_name_ok(const char *name)
{
	if (!isalpha((unsigned char)name[0]) && name[0] != '_')
		return false;
	for (const char *c = name; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_')
			return false;
	return true;
}

/*
 * rule_regex - a Perl pattern at *sp: /re/flags, m/re/flags or m with any
 * punctuation delimiter ({}, (), <>, [] nest).  Compiles it into *re_r and
 * moves *sp past the flags.
 */
static int
rule_regex(struct rule_parser *p, const char **sp, pcre2_code **re_r)
{
	const char *s = rule_skip_space(*sp), *start, *end;
	char open, close;
	uint32_t opts = 0;
	int nest = 0, err;
	PCRE2_SIZE off;

	if (*s == 'm' && s[1] != '\0' && ispunct((unsigned char)s[1]) &&
	    s[1] != '_')
		s++;
	if (*s == '\0')
		return rule_fail(p, "missing pattern");
	open = *s;
	if (!ispunct((unsigned char)open) || open == '_')
		return rule_fail(p, "pattern must start with / or m");
	switch (open) {
	case '{':
		close = '}';
		break;
	case '(':
		close = ')';
		break;
	case '<':
		close = '>';
		break;
	case '[':
		close = ']';
		break;
	default:
		close = open;
	}
	start = ++s;
	for (end = NULL; *s; s++) {
		if (*s == '\\' && s[1] != '\0') {
			s++;
			continue;
		}
		if (open != close && *s == open) {
			nest++;
		} else if (*s == close) {
			if (nest-- == 0) {
				end = s;
				break;
			}
		}
	}
	if (end == NULL)
		return rule_fail(p, "unterminated pattern (no closing %c)",
		                 close);
	for (s = end + 1; isalpha((unsigned char)*s); s++) {
		switch (*s) {
		case 'i':
			opts |= PCRE2_CASELESS;
			break;
		case 'm':
			opts |= PCRE2_MULTILINE;
			break;
		case 's':
			opts |= PCRE2_DOTALL;
			break;
		case 'x':
			opts |= PCRE2_EXTENDED;
			break;
		case 'o': /* Perl's compile-once: what we always do */
		case 'g':
			break;
		default:
			return rule_fail(p, "unknown pattern flag '%c'", *s);
		}
	}
	if (*s != '\0' && *s != ' ' && *s != '\t')
		return rule_fail(p, "unexpected text after pattern");
	p->re_src = start;
	p->re_len = (size_t)(end - start);
	p->re_opts = opts;
	*re_r = pcre2_compile((PCRE2_SPTR)start, (PCRE2_SIZE)(end - start),
	                      opts, &err, &off, p->set->cctx);
	if (*re_r == NULL) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(err, msg, sizeof(msg));
		return rule_fail(p, "bad pattern at offset %zu: %s",
		                 (size_t)off, (const char *)msg);
	}
	/* JIT where the platform has it; the interpreter otherwise. */
	(void)pcre2_jit_compile(*re_r, PCRE2_JIT_COMPLETE);
	*sp = s;
	return 0;
}

/* rule_define - start a fresh definition of name as type. */
static struct rule *
rule_define(struct rule_parser *p, const char *name, enum rule_type type)
{
	struct rule *r = rule_get(p->set, name);

	rule_clear_def(r);
	r->defined = true;
	r->type = type;
	r->file = rule_xstrdup(p->file);
	r->line = p->line;
	if (p->re_src != NULL) {
		r->src = rule_xstrndup(p->re_src, p->re_len);
		r->opts = p->re_opts;
	}
	return r;
}

/* header NAME Hdr[:mod] =~ /re/ [if-unset: X] | exists:Hdr | eval:... */
static int
rule_parse_header(struct rule_parser *p, const char *name, const char *rest,
                  bool mimeheader)
{
	char spec[256];
	const char *s = rule_skip_space(rest), *colon;
	pcre2_code *re = NULL;
	struct rule *r;
	bool negate;
	enum rule_hdr_mod mod = RULE_HDR_DECODED;

	if (strncmp(s, "eval:", 5) == 0) {
		p->set->skipped[RULE_SKIP_EVAL]++;
		return 0;
	}
	if (strncmp(s, "exists:", 7) == 0) {
		if (!rule_word(&s, spec, sizeof(spec)) || spec[7] == '\0')
			return rule_fail(p, "exists: needs a header name");
		r = rule_define(p, name, RULE_HEADER);
		r->mimeheader = mimeheader;
		r->exists = true;
		r->header = rule_xstrdup(spec + 7);
		return 0;
	}
	if (!rule_word(&s, spec, sizeof(spec)))
		return rule_fail(p, "missing header name");
	s = rule_skip_space(s);
	if (strncmp(s, "=~", 2) == 0)
		negate = false;
	else if (strncmp(s, "!~", 2) == 0)
		negate = true;
	else
		return rule_fail(p, "expected =~ or !~ after %s", spec);
	s += 2;
	colon = strchr(spec, ':');
	if (colon != NULL) {
		const char *m = colon + 1;

		if (strcmp(m, "raw") == 0)
			mod = RULE_HDR_RAW;
		else if (strcmp(m, "addr") == 0)
			mod = RULE_HDR_ADDR;
		else if (strcmp(m, "name") == 0)
			mod = RULE_HDR_NAME;
		else {
			/* :host, :domain, :ip, :first... (SpamAssassin 4):
			 * not ours yet. */
			p->set->skipped[RULE_SKIP_UNSUPPORTED]++;
			return 0;
		}
		spec[colon - spec] = '\0';
	}
	if (strncasecmp(spec, "X-Spam-Relays-", 14) == 0) {
		/* SpamAssassin's parsed Received chain: we do not build it. */
		p->set->skipped[RULE_SKIP_UNSUPPORTED]++;
		return 0;
	}
	if (rule_regex(p, &s, &re) < 0)
		return -1;
	r = rule_define(p, name, RULE_HEADER);
	r->mimeheader = mimeheader;
	r->re = re;
	r->negate = negate;
	r->mod = mod;
	r->header = rule_xstrdup(spec);
	s = rule_skip_space(s);
	if (strncmp(s, "[if-unset:", 10) == 0) {
		const char *v = rule_skip_space(s + 10), *e = strrchr(v, ']');

		if (e == NULL)
			return rule_fail(p, "[if-unset: without ]");
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		r->unset = rule_xstrndup(v, (size_t)(e - v));
	} else if (*s != '\0') {
		return rule_fail(p, "unexpected text after pattern");
	}
	return 0;
}

/* body/rawbody/uri/full NAME /re/ | eval:... */
static int
rule_parse_pattern(struct rule_parser *p, const char *name, const char *rest,
                   enum rule_type type)
{
	const char *s = rule_skip_space(rest);
	pcre2_code *re = NULL;
	struct rule *r;

	if (strncmp(s, "eval:", 5) == 0) {
		p->set->skipped[RULE_SKIP_EVAL]++;
		return 0;
	}
	if (rule_regex(p, &s, &re) < 0)
		return -1;
	if (*rule_skip_space(s) != '\0') {
		pcre2_code_free(re);
		return rule_fail(p, "unexpected text after pattern");
	}
	r = rule_define(p, name, type);
	r->re = re;
	return 0;
}

/* connect/helo/mailfrom/rcptto NAME /re/ [reject ["text"]|tempfail
 * ["text"]|accept] */
static int
rule_parse_smtp(struct rule_parser *p, const char *name, const char *rest,
                enum rule_type type)
{
	const char *s = rule_skip_space(rest);
	pcre2_code *re = NULL;
	enum rule_action action = RULE_ACTION_NONE;
	char word[16], *reply = NULL;

	if (rule_regex(p, &s, &re) < 0)
		return -1;
	s = rule_skip_space(s);
	if (*s != '\0') {
		if (!rule_word(&s, word, sizeof(word)))
			goto bad;
		if (strcmp(word, "reject") == 0)
			action = RULE_ACTION_REJECT;
		else if (strcmp(word, "tempfail") == 0)
			action = RULE_ACTION_TEMPFAIL;
		else if (strcmp(word, "accept") == 0)
			action = RULE_ACTION_ACCEPT;
		else
			goto bad;
		s = rule_skip_space(s);
		if (*s == '"' && action != RULE_ACTION_ACCEPT) {
			const char *e = strrchr(s + 1, '"');
			char want = action == RULE_ACTION_REJECT ? '5' : '4';

			if (e == NULL || *rule_skip_space(e + 1) != '\0') {
				pcre2_code_free(re);
				return rule_fail(p, "unterminated reply text");
			}
			reply = rule_xstrndup(s + 1, (size_t)(e - s - 1));
			if (reply[0] != want ||
			    !isdigit((unsigned char)reply[1]) ||
			    !isdigit((unsigned char)reply[2]) ||
			    (reply[3] != ' ' && reply[3] != '\0')) {
				pcre2_code_free(re);
				free(reply);
				return rule_fail(
				    p, "reply must start with a %cxx code",
				    want);
			}
			for (char *c = reply; *c; c++)
				if ((unsigned char)*c < ' ')
					*c = ' ';
		} else if (*s != '\0') {
			goto bad;
		}
	}
	struct rule *r = rule_define(p, name, type);

	r->re = re;
	r->action = action;
	r->reply = reply;
	return 0;
bad:
	pcre2_code_free(re);
	return rule_fail(p, "expected reject, tempfail or accept after the "
	                    "pattern");
}

static int
rule_parse_score(struct rule_parser *p, const char *name, const char *rest)
{
	double v[4];
	int n = 0;
	const char *s = rest;
	struct rule *r;

	for (;;) {
		char *end;

		s = rule_skip_space(s);
		if (*s == '\0')
			break;
		if (n == 4)
			return rule_fail(p, "score takes 1 or 4 numbers");
		/* "(1.0)": SpamAssassin's immutable scores; same to us. */
		bool paren = *s == '(';

		v[n] = strtod(s + paren, &end);
		if (end == s + paren || (paren && *end++ != ')') ||
		    (*end != '\0' && *end != ' ' && *end != '\t'))
			return rule_fail(p, "score: \"%.40s\" is not a number",
			                 s);
		n++;
		s = end;
	}
	if (n != 1 && n != 4)
		return rule_fail(p, "score takes 1 or 4 numbers");
	r = rule_get(p->set, name);
	for (int i = 0; i < 4; i++)
		r->score[i] = v[n == 1 ? 0 : i];
	r->scored = true;
	return 0;
}

static int
rule_parse_tflags(struct rule_parser *p, const char *name, const char *rest)
{
	struct rule *r = rule_get(p->set, name);
	char w[64];
	const char *s = rest;

	r->tflags = 0;
	r->maxhits = 0;
	while (rule_word(&s, w, sizeof(w))) {
		if (strcmp(w, "nice") == 0)
			r->tflags |= RULE_TF_NICE;
		else if (strcmp(w, "multiple") == 0)
			r->tflags |= RULE_TF_MULTIPLE;
		else if (strcmp(w, "nosubject") == 0)
			r->tflags |= RULE_TF_NOSUBJECT;
		else if (strcmp(w, "net") == 0)
			r->tflags |= RULE_TF_NET;
		else if (strncmp(w, "maxhits=", 8) == 0) {
			char *end;
			unsigned long v = strtoul(w + 8, &end, 10);

			if (end == w + 8 || *end != '\0' || v == 0 ||
			    v > 100000)
				return rule_fail(p, "bad maxhits \"%s\"",
				                 w + 8);
			r->maxhits = (unsigned)v;
		}
		/* Other SpamAssassin tflags (learn, userconf, publish,
		 * autolearn_force, ...) do not change matching. */
	}
	return 0;
}

/* rule_if_value - the names an `if` expression may use: version (we match
 * SpamAssassin 4.0's rule semantics) and perl_version. */
static double
rule_if_value(const char *name, size_t len, void *arg)
{
	if (len == 7 && strncmp(name, "version", 7) == 0)
		return 4.0;
	if (len == 12 && strncmp(name, "perl_version", 12) == 0)
		return 5.036;
	if (len == 6 && strncmp(name, "__TRUE", 6) == 0)
		return 1;
	return 0;
}

/* rule_if_expr - evaluate `if (expr)`; can(...) and plugin(...) are true
 * (a rule that needs what we lack is skipped on its own). */
static int
rule_if_expr(struct rule_parser *p, const char *expr, bool *value_r)
{
	char buf[1024];
	size_t n = 0;
	const char *err;
	double v;

	for (const char *s = expr; *s && n + 8 < sizeof(buf);) {
		if ((strncmp(s, "can(", 4) == 0 ||
		     strncmp(s, "plugin(", 7) == 0) &&
		    (s == expr || !isalnum((unsigned char)s[-1]))) {
			const char *e = strchr(s, ')');

			if (e == NULL)
				return rule_fail(p, "if: missing )");
			memcpy(buf + n, "__TRUE", 6);
			n += 6;
			s = e + 1;
			continue;
		}
		buf[n++] = *s++;
	}
	buf[n] = '\0';
	if (rule_meta_eval(buf, rule_if_value, NULL, &v, &err) < 0)
		return rule_fail(p, "if: %s", err);
	*value_r = v != 0;
	return 0;
}

static bool
rule_active(const struct rule_parser *p)
{
	return p->active[p->depth];
}

/* rule_conditional - if/ifplugin/else/endif; returns 1 if the line was
 * one, 0 if not, -1 on error. */
static int
rule_conditional(struct rule_parser *p, const char *dir, const char *rest)
{
	bool v = true;

	if (strcmp(dir, "ifplugin") == 0 || strcmp(dir, "if") == 0) {
		if (p->depth == RULE_IF_DEPTH)
			return rule_fail(p, "if nested too deep");
		if (strcmp(dir, "if") == 0 && rule_active(p) &&
		    rule_if_expr(p, rest, &v) < 0)
			return -1;
		if (strcmp(dir, "ifplugin") == 0 &&
		    *rule_skip_space(rest) == '\0')
			return rule_fail(p, "ifplugin needs a plugin name");
		p->depth++;
		p->active[p->depth] = p->active[p->depth - 1] && v;
		p->taken[p->depth] = v;
		p->if_line[p->depth] = p->line;
		return 1;
	}
	if (strcmp(dir, "else") == 0) {
		if (p->depth == 0)
			return rule_fail(p, "else without if");
		p->active[p->depth] =
		    p->active[p->depth - 1] && !p->taken[p->depth];
		p->taken[p->depth] = true;
		return 1;
	}
	if (strcmp(dir, "endif") == 0) {
		if (p->depth == 0)
			return rule_fail(p, "endif without if");
		p->depth--;
		return 1;
	}
	return 0;
}

/*
 * SpamAssassin's ReplaceTags: `replace_tag NAME regex` (and replace_pre,
 * replace_post, replace_inter), and `replace_rules R1 R2...` naming the
 * rules whose patterns have <NAME> tags expanded (at finish, when every
 * tag is known).
 */
static int
rule_parse_replace(struct rule_parser *p, const char *what, const char *rest)
{
	static const struct {
		const char *name;
		enum rule_tag_kind kind;
	} kinds[] = {{"tag", RULE_TAG},
	             {"pre", RULE_TAG_PRE},
	             {"post", RULE_TAG_POST},
	             {"inter", RULE_TAG_INTER}};
	char name[RULE_NAME_MAX + 1];
	const char *s = rest;

	if (strcmp(what, "rules") == 0) {
		while (rule_word(&s, name, sizeof(name))) {
			if (!rule_name_ok(name))
				return rule_fail(p,
				                 "replace_rules: bad rule "
				                 "name \"%s\"",
				                 name);
			rule_get(p->set, name)->replace = true;
		}
		return 0;
	}
	for (unsigned k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		struct rule_set *set = p->set;
		const char *v;

		if (strcmp(what, kinds[k].name) != 0)
			continue;
		if (!rule_word(&s, name, sizeof(name)))
			return rule_fail(p, "replace_%s: missing name", what);
		v = rule_skip_space(s);
		for (size_t i = 0; i < set->ntags; i++)
			if (set->tags[i].kind == kinds[k].kind &&
			    strcmp(set->tags[i].name, name) == 0) {
				free(set->tags[i].value);
				set->tags[i].value = rule_xstrdup(v);
				return 0;
			}
		set->tags = rule_xrealloc(set->tags, (set->ntags + 1) *
		                                         sizeof(*set->tags));
		set->tags[set->ntags].kind = kinds[k].kind;
		set->tags[set->ntags].name = rule_xstrdup(name);
		set->tags[set->ntags].value = rule_xstrdup(v);
		set->ntags++;
		return 0;
	}
	/* replace_start/replace_end: other tag delimiters, not ours */
	p->set->skipped[RULE_SKIP_UNSUPPORTED]++;
	return 0;
}

/* Directives of SpamAssassin's that carry no rule for us: accepted
 * silently (they configure SpamAssassin itself). */
static const char *const rule_ignored[] = {
    "loadplugin", "tryplugin", "require_version", "version_tag", NULL};

static int
rule_parse_line(struct rule_parser *p, char *line)
{
	char dir[64], name[RULE_NAME_MAX + 1];
	const char *s = line;
	int rc;

	/* Comments: an unescaped '#' (SpamAssassin's rule). */
	for (char *c = line; *c; c++) {
		if (*c == '\\' && c[1] != '\0') {
			c++;
			continue;
		}
		if (*c == '#') {
			*c = '\0';
			break;
		}
	}
	for (size_t n = strlen(line);
	     n > 0 && isspace((unsigned char)line[n - 1]); n--)
		line[n - 1] = '\0';
	if (!rule_word(&s, dir, sizeof(dir))) {
		if (*rule_skip_space(s) != '\0')
			return rule_fail(p, "directive too long");
		return 0; /* blank */
	}
	p->re_src = NULL;
	rc = rule_conditional(p, dir, s);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (!rule_active(p))
		return 0;
	if (strcmp(dir, "lang") == 0) {
		p->set->skipped[RULE_SKIP_LANG]++;
		return 0;
	}
	for (unsigned i = 0; rule_ignored[i] != NULL; i++)
		if (strcmp(dir, rule_ignored[i]) == 0)
			return 0;
	if (strncmp(dir, "replace_", 8) == 0)
		return rule_parse_replace(p, dir + 8, s);

	static const struct {
		const char *dir;
		enum rule_type type;
	} kinds[] = {
	    {"header", RULE_HEADER},   {"mimeheader", RULE_HEADER},
	    {"body", RULE_BODY},       {"rawbody", RULE_RAWBODY},
	    {"uri", RULE_URI},         {"full", RULE_FULL},
	    {"meta", RULE_META},       {"connect", RULE_CONNECT},
	    {"helo", RULE_HELO},       {"mailfrom", RULE_MAILFROM},
	    {"rcptto", RULE_RCPTTO},   {"score", RULE_NTYPES},
	    {"describe", RULE_NTYPES}, {"tflags", RULE_NTYPES},
	};
	int k = -1;

	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(dir, kinds[i].dir) == 0)
			k = (int)i;
	if (k < 0) {
		p->set->skipped[RULE_SKIP_DIRECTIVE]++;
		return 0;
	}
	if (!rule_word(&s, name, sizeof(name)))
		return rule_fail(p, "%s: missing or too long rule name", dir);
	if (!rule_name_ok(name))
		return rule_fail(p, "%s: bad rule name \"%s\"", dir, name);
	if (rule_lookup(p->set, name) >= 0 &&
	    p->set->rules[rule_lookup(p->set, name)].type == RULE_BUILTIN &&
	    kinds[k].type != RULE_NTYPES) {
		/* SpamAssassin defines some of our built-in names as eval
		 * tests: ours stay. */
		p->set->skipped[RULE_SKIP_UNSUPPORTED]++;
		return 0;
	}
	if (strcmp(dir, "score") == 0)
		return rule_parse_score(p, name, s);
	if (strcmp(dir, "describe") == 0) {
		struct rule *r = rule_get(p->set, name);

		free(r->describe);
		r->describe = rule_xstrdup(rule_skip_space(s));
		return 0;
	}
	if (strcmp(dir, "tflags") == 0)
		return rule_parse_tflags(p, name, s);
	switch (kinds[k].type) {
	case RULE_HEADER:
		return rule_parse_header(p, name, s, dir[0] == 'm');
	case RULE_BODY:
	case RULE_RAWBODY:
	case RULE_URI:
	case RULE_FULL:
		return rule_parse_pattern(p, name, s, kinds[k].type);
	case RULE_META: {
		const char *err;
		struct rule_meta *m;

		s = rule_skip_space(s);
		if (*s == '\0')
			return rule_fail(p, "meta: missing expression");
		m = rule_meta_compile(s, &err);
		if (m == NULL)
			return rule_fail(p, "meta %s: %s", name, err);
		rule_define(p, name, RULE_META)->meta = m;
		return 0;
	}
	default:
		return rule_parse_smtp(p, name, s, kinds[k].type);
	}
}

int
rule_set_parse(struct rule_set *set, const char *file, const char *text,
               size_t len, char **error_r)
{
	struct rule_parser p = {.set = set, .file = file, .error_r = error_r};
	const char *s = text, *end = text + len;
	char *line = NULL;
	size_t cap = 0;

	p.active[0] = true;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);

		p.line++;
		if (n > RULE_MAX_LINE) {
			free(line);
			return rule_fail(&p, "line too long");
		}
		if (memchr(s, '\0', n) != NULL) {
			free(line);
			return rule_fail(&p, "NUL byte in line");
		}
		if (n + 1 > cap) {
			cap = n + 1;
			line = rule_xrealloc(line, cap);
		}
		memcpy(line, s, n);
		line[n] = '\0';
		if (rule_parse_line(&p, line) < 0) {
			free(line);
			return -1;
		}
		s = nl ? nl + 1 : end;
	}
	free(line);
	if (p.depth > 0) {
		p.line = p.if_line[p.depth];
		return rule_fail(&p, "if without endif");
	}
	return 0;
}

/* ReplaceTags expansion. */

static const struct rule_tag *
rule_tag_find(const struct rule_set *set, enum rule_tag_kind kind,
              const char *name, size_t len)
{
	for (size_t i = 0; i < set->ntags; i++)
		if (set->tags[i].kind == kind &&
		    strlen(set->tags[i].name) == len &&
		    strncmp(set->tags[i].name, name, len) == 0)
			return &set->tags[i];
	return NULL;
}

void
rule_sbuf_add(struct rule_sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = rule_xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

/* rule_tag_at - a <NAME> tag token at s: its name length, else 0. */
static size_t
rule_tag_at(const char *s)
{
	size_t n = 0;

	if (*s != '<')
		return 0;
	while (isalnum((unsigned char)s[1 + n]) || s[1 + n] == '_')
		n++;
	return n > 0 && s[1 + n] == '>' ? n : 0;
}

/* An expanded pattern longer than this is not compiled.  Tags that name
 * themselves several times grow exponentially with the depth: the limit
 * bounds the work as well as the output (a fuzz_rules timeout). */
#define RULE_EXPAND_MAX (256 * 1024)

/* rule_expand - expand the <TAG>s of src into b, each wrapped in pre and
 * post, inter between adjacent tags; tag values are expanded in turn
 * (without pre/post/inter), depth-limited; stops once b passes
 * RULE_EXPAND_MAX. */
static void
rule_expand(const struct rule_set *set, const char *src, struct rule_sbuf *b,
            const char *pre, const char *post, const char *inter,
            unsigned depth)
{
	const char *s = src;
	bool last_tag = false;

	while (*s && b->n <= RULE_EXPAND_MAX) {
		size_t n = rule_tag_at(s);
		const struct rule_tag *t =
		    n ? rule_tag_find(set, RULE_TAG, s + 1, n) : NULL;

		if (t == NULL || depth > 8) {
			rule_sbuf_add(b, s, 1);
			s++;
			last_tag = false;
			continue;
		}
		if (last_tag && inter != NULL)
			rule_sbuf_add(b, inter, strlen(inter));
		if (pre != NULL)
			rule_sbuf_add(b, pre, strlen(pre));
		rule_expand(set, t->value, b, NULL, NULL, NULL, depth + 1);
		if (post != NULL)
			rule_sbuf_add(b, post, strlen(post));
		s += n + 2;
		last_tag = true;
	}
}

/* rule_replace - recompile r's pattern with its tags expanded. */
static int
rule_replace(struct rule_set *set, struct rule *r, char **error_r)
{
	static const char *const dirs[] = {"<pre ", "<post ", "<inter "};
	static const enum rule_tag_kind kinds[] = {RULE_TAG_PRE, RULE_TAG_POST,
	                                           RULE_TAG_INTER};
	const char *val[3] = {NULL, NULL, NULL};
	struct rule_sbuf src = {0}, out = {0};
	pcre2_code *re;
	PCRE2_SIZE off;
	int err;

	/* Take out the <pre X>, <post X>, <inter X> settings. */
	for (const char *s = r->src; *s;) {
		bool done = false;

		for (int k = 0; k < 3 && !done; k++) {
			size_t dl = strlen(dirs[k]);
			const char *e;

			if (strncmp(s, dirs[k], dl) != 0 ||
			    (e = strchr(s + dl, '>')) == NULL)
				continue;
			const struct rule_tag *t = rule_tag_find(
			    set, kinds[k], s + dl, (size_t)(e - s - dl));

			val[k] = t ? t->value : NULL;
			s = e + 1;
			done = true;
		}
		if (!done)
			rule_sbuf_add(&src, s++, 1);
	}
	rule_sbuf_add(&src, "", 0);
	rule_expand(set, src.p, &out, val[0], val[1], val[2], 0);
	rule_sbuf_add(&out, "", 0);
	free(src.p);
	re = out.n > RULE_EXPAND_MAX
	         ? NULL
	         : pcre2_compile((PCRE2_SPTR)out.p, out.n, r->opts, &err, &off,
	                         set->cctx);
	if (re == NULL) {
		/* The pattern compiled as written; expanded it may pass
		 * RULE_EXPAND_MAX or PCRE2's size limits (some of
		 * SpamAssassin's do with a 2-byte link size): skip the rule, as
		 * an unsupported form, rather than refuse the whole set. */
		(void)error_r;
		free(out.p);
		rule_clear_def(r);
		set->skipped[RULE_SKIP_UNSUPPORTED]++;
		return 0;
	}
	/* The expanded pattern is the source from now on (the literal
	 * prefilter reads it). */
	free(r->src);
	r->src = out.p;
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	pcre2_code_free(r->re);
	r->re = re;
	return 0;
}

/*
 * rule_literal - find the longest run of literal characters at the top
 * level of r's pattern: every match contains it, so text without it
 * cannot match (the prefilter of rule_eval_array; Perl's regex optimiser
 * does the same with its "longest fixed substring").  Conservative: any
 * construct not understood gives no literal, never a wrong one.
 */
#define RULE_LIT_MIN 3
#define RULE_LITS    16
#define RULE_LIT_MAX 64

static size_t
rule_skip_escape(const char *p)
{
	/* p at the letter/digit after '\': the length of the escape body */
	const char *q = p + 1;

	switch (*p) {
	case 'x':
		if (*q == '{') {
			const char *e = strchr(q, '}');

			return e ? (size_t)(e - p) + 1 : 0;
		}
		while (q < p + 3 && isxdigit((unsigned char)*q))
			q++;
		return (size_t)(q - p);
	case 'p':
	case 'P':
	case 'N':
	case 'k':
	case 'g':
	case 'o':
		if (*q == '{' || *q == '<' || *q == '\'') {
			char c = *q == '{' ? '}' : *q == '<' ? '>' : '\'';
			const char *e = strchr(q + 1, c);

			return e ? (size_t)(e - p) + 1 : 0;
		}
		return *q ? 2 : 1;
	case 'c':
		return *q ? 2 : 0;
	case 'Q':
	case 'E':
		return 0; /* quoting: not handled */
	default:
		if (*p >= '0' && *p <= '7') {
			while (q < p + 3 && *q >= '0' && *q <= '7')
				q++;
			return (size_t)(q - p);
		}
		return 1;
	}
}

/* A set of literals, one of which every match contains. */
struct rule_litset {
	unsigned n;
	unsigned char len[RULE_LITS];
	char lit[RULE_LITS][RULE_LIT_MAX];
};

struct rule_litparse {
	const char *p;
	bool nocase;
	bool fail;
	unsigned depth;
};

/* rule_litset_better - a is a better prefilter than b (b may be empty). */
static bool
rule_litset_better(const struct rule_litset *a, const struct rule_litset *b)
{
	unsigned amin = 255, bmin = 255;

	if (a->n == 0)
		return false;
	if (b->n == 0)
		return true;
	for (unsigned i = 0; i < a->n; i++)
		amin = a->len[i] < amin ? a->len[i] : amin;
	for (unsigned i = 0; i < b->n; i++)
		bmin = b->len[i] < bmin ? b->len[i] : bmin;
	if (amin != bmin)
		return amin > bmin;
	return a->n < b->n;
}

static void rule_lit_alt(struct rule_litparse *lp, struct rule_litset *out);

/* rule_lit_seq - one branch: runs of literal characters and unquantified
 * groups; the best of them. Stops at ')' or '|' (not consumed). */
static void
rule_lit_seq(struct rule_litparse *lp, struct rule_litset *best)
{
	char cur[RULE_LIT_MAX];
	size_t curn = 0;

	best->n = 0;
#define RULE_LIT_END()                                                         \
	do {                                                                   \
		if (curn >= RULE_LIT_MIN) {                                    \
			struct rule_litset one = {.n = 1};                     \
			one.len[0] = (unsigned char)curn;                      \
			memcpy(one.lit[0], cur, curn);                         \
			if (rule_litset_better(&one, best))                    \
				*best = one;                                   \
		}                                                              \
		curn = 0;                                                      \
	} while (0)
	while (*lp->p && *lp->p != ')' && *lp->p != '|' && !lp->fail) {
		const char *p = lp->p;
		char c = *p, lit;

		if (c == '\\') {
			if (p[1] == '\0') {
				lp->fail = true;
				return;
			}
			if (!isalnum((unsigned char)p[1])) {
				lit = p[1];
				lp->p += 2;
				goto literal;
			}
			size_t n = rule_skip_escape(p + 1);

			if (n == 0) {
				lp->fail = true;
				return;
			}
			RULE_LIT_END();
			lp->p += 1 + n;
			continue;
		}
		if (c == '[') {
			const char *e = rule_class_end(p);

			if (e == NULL) {
				lp->fail = true;
				return;
			}
			lp->p = e;
			RULE_LIT_END();
			continue;
		}
		if (c == '(') {
			struct rule_litset sub = {0};
			bool look = false;

			RULE_LIT_END();
			p++;
			if (*p == '?') {
				if (p[1] == ':') {
					p += 2;
				} else if (p[1] == '=' || p[1] == '!' ||
				           (p[1] == '<' &&
				            (p[2] == '=' || p[2] == '!'))) {
					look = true;
					p += p[1] == '<' ? 3 : 2;
				} else {
					/* named groups, inline flags, ...:
					 * not handled */
					lp->fail = true;
					return;
				}
			}
			lp->p = p;
			if (++lp->depth > 32) {
				lp->fail = true;
				return;
			}
			rule_lit_alt(lp, &sub);
			lp->depth--;
			if (lp->fail || *lp->p != ')') {
				lp->fail = true;
				return;
			}
			lp->p++;
			/* a group that may be absent guarantees nothing */
			c = *lp->p;
			if (c == '?' || c == '*' ||
			    (c == '{' && (lp->p[1] == '0' || lp->p[1] == ',')))
				look = true;
			if (!look && rule_litset_better(&sub, best))
				*best = sub;
			continue;
		}
		if (c == '.' || c == '^' || c == '$' || c == '*' || c == '+' ||
		    c == '?' || c == '{') {
			if (c == '{') {
				const char *e = strchr(p, '}');

				lp->p = e ? e + 1 : p + 1;
			} else {
				lp->p++;
			}
			RULE_LIT_END();
			continue;
		}
		lit = c;
		lp->p++;
	literal:
		c = *lp->p;
		if (c == '?' || c == '*' ||
		    (c == '{' && (lp->p[1] == '0' || lp->p[1] == ','))) {
			RULE_LIT_END();
			continue;
		}
		if (curn < RULE_LIT_MAX)
			cur[curn++] = lp->nocase
			                  ? (char)tolower((unsigned char)lit)
			                  : lit;
		if (c == '+' || c == '{')
			RULE_LIT_END(); /* once for sure, then maybe more */
	}
	RULE_LIT_END();
#undef RULE_LIT_END
}

/* rule_lit_alt - branches separated by '|': every branch must give a
 * set; the union is the group's. */
static void
rule_lit_alt(struct rule_litparse *lp, struct rule_litset *out)
{
	out->n = 0;
	for (;;) {
		struct rule_litset b;

		rule_lit_seq(lp, &b);
		if (lp->fail)
			return;
		if (b.n == 0 || out->n + b.n > RULE_LITS) {
			/* a branch without a literal: skip to the end of the
			 * group, nothing is guaranteed */
			int d = 0;

			out->n = 0;
			while (*lp->p && !(d == 0 && *lp->p == ')')) {
				if (*lp->p == '\\' && lp->p[1])
					lp->p++;
				else if (*lp->p == '[') {
					/* classes may hold ( ) | */
					lp->p++;
					if (*lp->p == '^')
						lp->p++;
					if (*lp->p == ']')
						lp->p++;
					while (*lp->p && *lp->p != ']') {
						if (*lp->p == '\\' && lp->p[1])
							lp->p++;
						lp->p++;
					}
					if (*lp->p == '\0')
						break;
				} else if (*lp->p == '(')
					d++;
				else if (*lp->p == ')')
					d--;
				lp->p++;
			}
			return;
		}
		for (unsigned i = 0; i < b.n; i++) {
			out->len[out->n] = b.len[i];
			memcpy(out->lit[out->n], b.lit[i], b.len[i]);
			out->n++;
		}
		if (*lp->p != '|')
			return;
		lp->p++;
	}
}

static void
rule_literal(struct rule *r)
{
	struct rule_litparse lp = {.p = r->src};
	struct rule_litset set;

	if (r->src == NULL || (r->opts & PCRE2_EXTENDED))
		return;
	lp.nocase = (r->opts & PCRE2_CASELESS) != 0;
	if (strncmp(lp.p, "(?i)", 4) == 0) {
		lp.nocase = true;
		lp.p += 4;
	}
	rule_lit_alt(&lp, &set);
	if (lp.fail || *lp.p != '\0' || set.n == 0)
		return;
	r->nlits = set.n;
	r->lits = rule_xcalloc(set.n, sizeof(*r->lits));
	r->litlens = rule_xcalloc(set.n, sizeof(*r->litlens));
	for (unsigned i = 0; i < set.n; i++) {
		r->lits[i] = rule_xstrndup(set.lit[i], set.len[i]);
		r->litlens[i] = set.len[i];
	}
	r->lit_nocase = lp.nocase;
}

/* rule_posix_end - p at "[:", "[." or "[=" inside a class: the ':' (or
 * '.', '=') of the "X]" that ends a POSIX class there, or NULL when PCRE2
 * does not read one (a ']', or the same opener, comes first): then the
 * '[' is a plain member (pcre2_compile.c, check_posix_syntax). */
static const char *
rule_posix_end(const char *p)
{
	char t = p[1];

	for (p += 2; p[0] != '\0' && p[1] != '\0'; p++) {
		if (p[0] == '\\' && (p[1] == ']' || p[1] == '\\'))
			p++;
		else if ((p[0] == '[' && p[1] == t) || p[0] == ']')
			return NULL;
		else if (p[0] == t && p[1] == ']')
			return p;
	}
	return NULL;
}

const char *
rule_class_end(const char *p)
{
	p++;
	if (*p == '^')
		p++;
	if (*p == ']')
		p++;
	while (*p && *p != ']') {
		if (*p == '\\' && p[1]) {
			p++;
		} else if (*p == '[' &&
		           (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
			const char *e = rule_posix_end(p);

			if (e != NULL)
				p = e + 1;
		}
		p++;
	}
	return *p ? p + 1 : NULL;
}

/* rule_exist - where r counts one match at most: match with its pattern
 * cut to what decides whether there is one (rule_exist_src), if that
 * compiles.  r->src stays as written (the prefilter and the literals read
 * it: they hold for both). */
static void
rule_exist(struct rule_set *set, struct rule *r)
{
	char *e = rule_exist_src(r->src, r->opts);
	pcre2_code *re;
	PCRE2_SIZE off;
	int err;

	if (e == NULL)
		return;
	re = pcre2_compile((PCRE2_SPTR)e, PCRE2_ZERO_TERMINATED, r->opts, &err,
	                   &off, set->cctx);
	free(e);
	if (re == NULL)
		return;
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	pcre2_code_free(r->re);
	r->re = re;
}

/*
 * rule_join_safe - a match of r in one paragraph is also a match in the
 * paragraphs joined by "\n" (see join_safe): true unless the pattern has
 * ^ or $ (without /m), \A \z \Z \G, negative lookarounds, atomic
 * groups, conditionals or possessive quantifiers, which can see past a
 * paragraph's end; "\n" otherwise reads as the end of the text does.
 */
static bool
rule_join_safe(const struct rule *r)
{
	const char *p = r->src;
	bool negative = false;

	if (p == NULL)
		return false;
	while (*p) {
		if (*p == '\\') {
			if (p[1] == '\0')
				return false;
			if (strchr("AzZG", p[1]) != NULL)
				return false;
			p += 2;
			continue;
		}
		if (*p == '[') {
			p = rule_class_end(p);
			if (p == NULL)
				return false;
			continue;
		}
		if ((*p == '^' || *p == '$') && !(r->opts & PCRE2_MULTILINE))
			return false;
		if (*p == '(' && p[1] == '?' &&
		    (p[2] == '!' || (p[2] == '<' && p[3] == '!')))
			negative = true;
		if (*p == '(' && p[1] == '?' && (p[2] == '>' || p[2] == '('))
			return false;
		if ((*p == '*' || *p == '+' || *p == '?' || *p == '}') &&
		    p[1] == '+')
			return false;
		p++;
	}
	/* A negative lookaround sees past the paragraph in the joined text
	 * only through the "\n" between them: safe if it cannot match one. */
	return !negative || !rule_negative_lookaround_nl(r->src, r->opts);
}

/* Finishing: resolve references, find loops, index by type. */

/* rule_hdr_keys - header rules that read the same header the same way
 * (header or mimeheader, name as written, modifier) share a key: match.c
 * builds that text once per message. */
static void
rule_hdr_keys(struct rule_set *set)
{
	const size_t *hr = set->by_type[RULE_HEADER];

	set->nhkeys = 0;
	for (size_t k = 0; k < set->nby_type[RULE_HEADER]; k++) {
		struct rule *r = &set->rules[hr[k]];
		size_t j;

		for (j = 0; j < k; j++) {
			const struct rule *o = &set->rules[hr[j]];

			if (o->mimeheader == r->mimeheader &&
			    o->mod == r->mod &&
			    strcmp(o->header, r->header) == 0)
				break;
		}
		r->hkey = j < k ? set->rules[hr[j]].hkey : set->nhkeys++;
	}
}

static int
rule_meta_visit(struct rule_set *set, size_t i, unsigned char *state,
                char **error_r)
{
	struct rule *r = &set->rules[i];

	if (state[i] == 2)
		return 0;
	if (state[i] == 1) {
		*error_r = rule_xasprintf("%s:%u: meta %s depends on itself",
		                          r->file, r->line, r->name);
		return -1;
	}
	state[i] = 1;
	for (size_t k = 0; k < r->meta->nops; k++) {
		const struct rule_meta_op *o = &r->meta->ops[k];

		if (o->op == RM_REF && set->rules[o->ref].defined &&
		    set->rules[o->ref].type == RULE_META &&
		    rule_meta_visit(set, o->ref, state, error_r) < 0)
			return -1;
	}
	state[i] = 2;
	return 0;
}

int
rule_set_finish(struct rule_set *set, char **error_r)
{
	unsigned char *state;
	size_t n = set->nrules;

	for (size_t i = 0; i < n; i++) {
		struct rule *r = &set->rules[i];

		if (r->defined && r->replace && r->re != NULL &&
		    r->src != NULL && rule_replace(set, r, error_r) < 0)
			return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct rule *r = &set->rules[i];

		if (r->defined &&
		    (r->type == RULE_BODY || r->type == RULE_RAWBODY ||
		     r->type == RULE_URI || r->type == RULE_HEADER) &&
		    r->nlits == 0) {
			rule_literal(r);
			r->join_safe = rule_join_safe(r);
		}
		if (r->defined && r->re != NULL && r->src != NULL &&
		    !(r->tflags & RULE_TF_MULTIPLE))
			rule_exist(set, r);
	}
	/* Resolve names to indexes; a name nothing defines is 0, as in
	 * SpamAssassin (an eval test we skipped, usually). */
	for (size_t i = 0; i < n; i++) {
		struct rule *r = &set->rules[i];

		if (!r->defined || r->type != RULE_META)
			continue;
		for (size_t k = 0; k < r->meta->nops; k++) {
			struct rule_meta_op *o = &r->meta->ops[k];
			long j;

			if (o->op != RM_REF || o->name == NULL)
				continue;
			j = rule_lookup(set, o->name);
			if (j < 0 || !set->rules[j].defined) {
				o->op = RM_NUM;
				o->num = 0;
				r->partial = true;
			} else {
				o->ref = (size_t)j;
			}
			free(o->name);
			o->name = NULL;
		}
	}
	/* Partial through other metas, to a fixed point. */
	for (bool changed = true; changed;) {
		changed = false;
		for (size_t i = 0; i < n; i++) {
			struct rule *r = &set->rules[i];

			if (!r->defined || r->type != RULE_META || r->partial)
				continue;
			for (size_t k = 0; k < r->meta->nops; k++)
				if (r->meta->ops[k].op == RM_REF &&
				    set->rules[r->meta->ops[k].ref].partial) {
					r->partial = changed = true;
					break;
				}
		}
	}
	state = rule_xcalloc(n, 1);
	for (size_t i = 0; i < n; i++)
		if (set->rules[i].defined && set->rules[i].type == RULE_META &&
		    rule_meta_visit(set, i, state, error_r) < 0) {
			free(state);
			return -1;
		}
	free(state);
	for (int t = 0; t < RULE_NTYPES; t++) {
		free(set->by_type[t]);
		set->by_type[t] = NULL;
		set->nby_type[t] = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct rule *r = &set->rules[i];

		if (!r->defined)
			continue;
		set->by_type[r->type] = rule_xrealloc(
		    set->by_type[r->type],
		    (set->nby_type[r->type] + 1) * sizeof(size_t));
		set->by_type[r->type][set->nby_type[r->type]++] = i;
	}
	rule_hdr_keys(set);
	rule_pf_build(set);
	set->finished = true;
	return 0;
}

static int
rule_read_file(const char *path, char **text_r, size_t *len_r)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, k;

	if (fp == NULL)
		return -1;
	do {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			buf = rule_xrealloc(buf, cap);
		}
		k = fread(buf + len, 1, cap - len, fp);
		len += k;
	} while (k > 0);
	if (ferror(fp)) {
		fclose(fp);
		free(buf);
		return -1;
	}
	fclose(fp);
	*text_r = buf;
	*len_r = len;
	return 0;
}

int
rule_set_load(const char *const *patterns, size_t n, const char *basedir,
              struct rule_set **set_r, char **error_r)
{
	struct rule_set *set = rule_set_new();

	for (size_t i = 0; i < n; i++) {
		char *pat;
		glob_t g;
		int rc;

		if (patterns[i][0] == '/' || basedir == NULL ||
		    basedir[0] == '\0')
			pat = rule_xstrdup(patterns[i]);
		else
			pat = rule_xasprintf("%s/%s", basedir, patterns[i]);
		rc = glob(pat, 0, NULL, &g);
		if (rc == GLOB_NOMATCH && strpbrk(patterns[i], "*?[") != NULL) {
			/* An empty rules.d is fine. */
			free(pat);
			continue;
		}
		if (rc != 0) {
			*error_r =
			    rule_xasprintf("%s:0: cannot read rule file", pat);
			free(pat);
			rule_set_free(&set);
			return -1;
		}
		for (size_t k = 0; k < g.gl_pathc; k++) {
			char *text;
			size_t len;

			if (rule_read_file(g.gl_pathv[k], &text, &len) < 0) {
				*error_r = rule_xasprintf(
				    "%s:0: cannot read rule file: %s",
				    g.gl_pathv[k], strerror(errno));
				goto fail;
			}
			rc = rule_set_parse(set, g.gl_pathv[k], text, len,
			                    error_r);
			free(text);
			if (rc < 0)
				goto fail;
		}
		globfree(&g);
		free(pat);
		continue;
	fail:
		globfree(&g);
		free(pat);
		rule_set_free(&set);
		return -1;
	}
	if (rule_set_finish(set, error_r) < 0) {
		rule_set_free(&set);
		return -1;
	}
	*set_r = set;
	return 0;
}

/* Accessors. */

unsigned
rule_set_count(const struct rule_set *set, enum rule_type type)
{
	return (unsigned)set->nby_type[type];
}

unsigned
rule_set_skipped(const struct rule_set *set, enum rule_skip why)
{
	return set->skipped[why];
}

bool
rule_set_has(const struct rule_set *set, enum rule_type type)
{
	return set->nby_type[type] > 0;
}

void
rule_set_summary(const struct rule_set *set, char *buf, size_t size)
{
	size_t n = 0, total = 0, skipped = 0;
	bool first = true;

	for (int t = 0; t < RULE_NTYPES; t++)
		if (t != RULE_BUILTIN)
			total += set->nby_type[t];
	for (int w = 0; w < RULE_NSKIPS; w++)
		skipped += set->skipped[w];
#define RULE_APPEND(...)                                                       \
	do {                                                                   \
		if (n < size) {                                                \
			int k_ = snprintf(buf + n, size - n, __VA_ARGS__);     \
			if (k_ > 0)                                            \
				n += (size_t)k_;                               \
		}                                                              \
	} while (0)
	buf[0] = '\0';
	RULE_APPEND("%zu rules loaded (", total);
	for (int t = 0; t < RULE_NTYPES; t++) {
		if (t == RULE_BUILTIN || set->nby_type[t] == 0)
			continue;
		RULE_APPEND("%s%s %zu", first ? "" : ", ", rule_type_names[t],
		            set->nby_type[t]);
		first = false;
	}
	RULE_APPEND(")");
	size_t partial = 0;

	for (size_t i = 0; i < set->nrules; i++)
		if (set->rules[i].defined && set->rules[i].partial)
			partial++;
	if (partial > 0)
		RULE_APPEND(", %zu metas disabled (they name skipped rules)",
		            partial);
	RULE_APPEND("; %zu skipped", skipped);
	first = true;
	for (int w = 0; w < RULE_NSKIPS; w++) {
		if (set->skipped[w] == 0)
			continue;
		RULE_APPEND("%s%s %u", first ? " (" : ", ", rule_skip_names[w],
		            set->skipped[w]);
		first = false;
	}
	if (!first)
		RULE_APPEND(")");
#undef RULE_APPEND
}

const char *
rule_type_name(enum rule_type type)
{
	return type < RULE_NTYPES ? rule_type_names[type] : "?";
}

size_t
rule_set_size(const struct rule_set *set)
{
	return set->nrules;
}

const char *
rule_name(const struct rule_set *set, size_t i)
{
	return set->rules[i].name;
}

enum rule_type
rule_type(const struct rule_set *set, size_t i)
{
	return set->rules[i].type;
}

double
rule_score(const struct rule_set *set, size_t i, bool net)
{
	const struct rule *r = &set->rules[i];

	if (r->scored)
		return r->score[net ? 1 : 0];
	/* SpamAssassin's defaults: sub-rules 0, T_ (testing) 0.01, nice
	 * -1, others 1. */
	if (strncmp(r->name, "__", 2) == 0)
		return 0;
	if (strncmp(r->name, "T_", 2) == 0)
		return 0.01;
	return r->tflags & RULE_TF_NICE ? -1.0 : 1.0;
}

bool
rule_partial(const struct rule_set *set, size_t i)
{
	return set->rules[i].partial;
}

const char *
rule_describe(const struct rule_set *set, size_t i)
{
	return set->rules[i].describe;
}

bool
rule_reported(const struct rule_set *set, size_t i, bool net)
{
	return set->rules[i].defined &&
	       strncmp(set->rules[i].name, "__", 2) != 0 &&
	       rule_score(set, i, net) != 0;
}

long
rule_find(const struct rule_set *set, const char *name)
{
	long i = rule_lookup(set, name);

	return i >= 0 && set->rules[i].defined ? i : -1;
}

enum rule_action
rule_smtp_action(const struct rule_set *set, size_t i, const char **reply_r)
{
	if (reply_r != NULL)
		*reply_r = set->rules[i].reply;
	return set->rules[i].action;
}
