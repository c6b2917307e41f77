/* SPDX-License-Identifier: MIT */
/*
 * meta.c - meta rule expressions: `meta NAME (A && !B) || C + D > 1`.
 *
 * rule_meta_compile(): a recursive-descent parser (Perl's precedence:
 * unary ! and -, then * /, + -, < > <= >=, == !=, &&, ||) emitting reverse
 * Polish notation.  rule_meta_run(): evaluates it on a stack of doubles; a
 * rule's value is its hit count, so `A + B + C > 1` counts.  rule_meta_eval()
 * is the same with a name lookup, for `if (version >= 3.004)` lines.
 *
 * SECURITY: the input is an operator's file, but the fuzzers feed it
 * anything: nesting is bounded (RULE_META_DEPTH) and so is the length.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rule_priv.h"

#define RULE_META_DEPTH  64
#define RULE_META_MAXOPS 4096

struct rule_meta_parser {
	const char *p;
	struct rule_meta *m;
	size_t cap;
	unsigned depth;
	const char *error;
};

static void
rule_meta_emit(struct rule_meta_parser *mp, enum rule_meta_opcode op,
               double num, const char *name, size_t len)
{
	struct rule_meta *m = mp->m;

	if (mp->error != NULL)
		return;
	if (m->nops == RULE_META_MAXOPS) {
		mp->error = "expression too long";
		return;
	}
	if (m->nops == mp->cap) {
		mp->cap = mp->cap ? mp->cap * 2 : 8;
		m->ops = rule_xrealloc(m->ops, mp->cap * sizeof(*m->ops));
	}
	struct rule_meta_op *o = &m->ops[m->nops++];

	memset(o, 0, sizeof(*o));
	o->op = op;
	o->num = num;
	if (name != NULL)
		o->name = rule_xstrndup(name, len);
}

static void
rule_meta_space(struct rule_meta_parser *mp)
{
	while (*mp->p == ' ' || *mp->p == '\t')
		mp->p++;
}

/* rule_meta_op2 - the binary operator at p among ops (two-char first);
 * returns its length, 0 if none. */
static size_t
rule_meta_op2(struct rule_meta_parser *mp, const char *const *ops,
              const enum rule_meta_opcode *codes, enum rule_meta_opcode *op_r)
{
	rule_meta_space(mp);
	for (unsigned i = 0; ops[i] != NULL; i++) {
		size_t n = strlen(ops[i]);

		if (strncmp(mp->p, ops[i], n) != 0)
			continue;
		/* "<" must not be the start of "<=", "!" of "!=". */
		if (n == 1 && mp->p[1] == '=')
			continue;
		if (n == 1 && (ops[i][0] == '&' || ops[i][0] == '|'))
			continue;
		*op_r = codes[i];
		return n;
	}
	return 0;
}

static void rule_meta_expr(struct rule_meta_parser *mp, unsigned level);

static void
rule_meta_primary(struct rule_meta_parser *mp)
{
	const char *s;

	rule_meta_space(mp);
	s = mp->p;
	if (*s == '(') {
		mp->p++;
		rule_meta_expr(mp, 0);
		rule_meta_space(mp);
		if (mp->error != NULL)
			return;
		if (*mp->p != ')')
			mp->error = "missing )";
		else
			mp->p++;
		return;
	}
	if (isdigit((unsigned char)*s) ||
	    (*s == '.' && isdigit((unsigned char)s[1]))) {
		char *end;
		double v = strtod(s, &end);

		mp->p = end;
		rule_meta_emit(mp, RM_NUM, v, NULL, 0);
		return;
	}
	if (isalpha((unsigned char)*s) || *s == '_') {
		while (isalnum((unsigned char)*mp->p) || *mp->p == '_')
			mp->p++;
		rule_meta_emit(mp, RM_REF, 0, s, (size_t)(mp->p - s));
		return;
	}
	mp->error = *s ? "unexpected character" : "unexpected end";
}

static void
rule_meta_unary(struct rule_meta_parser *mp)
{
	rule_meta_space(mp);
	if (++mp->depth > RULE_META_DEPTH) {
		mp->error = "nested too deep";
		return;
	}
	if (*mp->p == '!' && mp->p[1] != '=') {
		mp->p++;
		rule_meta_unary(mp);
		rule_meta_emit(mp, RM_NOT, 0, NULL, 0);
	} else if (*mp->p == '-') {
		mp->p++;
		rule_meta_unary(mp);
		rule_meta_emit(mp, RM_NEG, 0, NULL, 0);
	} else if (*mp->p == '+') {
		mp->p++;
		rule_meta_unary(mp);
	} else {
		rule_meta_primary(mp);
	}
	mp->depth--;
}

/* Binary levels, loosest first. */
static const char *const rule_meta_ops[][5] = {
    {"||", NULL},       {"&&", NULL},
    {"==", "!=", NULL}, {"<=", ">=", "<", ">", NULL},
    {"+", "-", NULL},   {"*", "/", NULL},
};
static const enum rule_meta_opcode rule_meta_codes[][4] = {
    {RM_OR},          {RM_AND},
    {RM_EQ, RM_NE},   {RM_LE, RM_GE, RM_LT, RM_GT},
    {RM_ADD, RM_SUB}, {RM_MUL, RM_DIV},
};
#define RULE_META_LEVELS 6

static void
rule_meta_expr(struct rule_meta_parser *mp, unsigned level)
{
	enum rule_meta_opcode op;
	size_t n;

	if (++mp->depth > RULE_META_DEPTH) {
		mp->error = "nested too deep";
		return;
	}
	if (level == RULE_META_LEVELS) {
		rule_meta_unary(mp);
		mp->depth--;
		return;
	}
	rule_meta_expr(mp, level + 1);
	while (mp->error == NULL &&
	       (n = rule_meta_op2(mp, rule_meta_ops[level],
	                          rule_meta_codes[level], &op)) > 0) {
		mp->p += n;
		rule_meta_expr(mp, level + 1);
		rule_meta_emit(mp, op, 0, NULL, 0);
	}
	mp->depth--;
}

void
rule_meta_free(struct rule_meta **mp)
{
	struct rule_meta *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	for (size_t i = 0; i < m->nops; i++)
		free(m->ops[i].name);
	free(m->ops);
	free(m);
}

struct rule_meta *
rule_meta_compile(const char *expr, const char **error_r)
{
	struct rule_meta_parser mp = {.p = expr};
	size_t d = 0;

	mp.m = rule_xcalloc(1, sizeof(*mp.m));
	rule_meta_expr(&mp, 0);
	rule_meta_space(&mp);
	while (mp.error == NULL && (*mp.p == '\r' || *mp.p == '\n'))
		mp.p++;
	if (mp.error == NULL && *mp.p != '\0')
		mp.error = *mp.p == ')' ? "unbalanced )" : "unexpected text";
	if (mp.error != NULL) {
		*error_r = mp.error;
		rule_meta_free(&mp.m);
		return NULL;
	}
	/* The stack depth the evaluation needs. */
	for (size_t i = 0; i < mp.m->nops; i++) {
		enum rule_meta_opcode op = mp.m->ops[i].op;

		if (op == RM_NUM || op == RM_REF)
			d++;
		else if (op != RM_NOT && op != RM_NEG)
			d--;
		if (d > mp.m->depth)
			mp.m->depth = d;
	}
	return mp.m;
}

double
rule_meta_run(const struct rule_meta *m,
              double (*value)(const struct rule_meta_op *op, void *arg),
              void *arg)
{
	/* depth was computed at compile time; nested metas recurse
	 * through value(), so each level takes only what it needs. */
	double stack[m->depth + 1];
	size_t sp = 0;

	for (size_t i = 0; i < m->nops; i++) {
		const struct rule_meta_op *o = &m->ops[i];
		double a, b;

		switch (o->op) {
		case RM_NUM:
			stack[sp++] = o->num;
			continue;
		case RM_REF:
			stack[sp++] = value(o, arg);
			continue;
		case RM_NOT:
			stack[sp - 1] = stack[sp - 1] == 0;
			continue;
		case RM_NEG:
			stack[sp - 1] = -stack[sp - 1];
			continue;
		default:
			break;
		}
		b = stack[--sp];
		a = stack[sp - 1];
		switch (o->op) {
		case RM_ADD:
			a = a + b;
			break;
		case RM_SUB:
			a = a - b;
			break;
		case RM_MUL:
			a = a * b;
			break;
		case RM_DIV:
			a = b != 0 ? a / b : 0;
			break;
		case RM_LT:
			a = a < b;
			break;
		case RM_GT:
			a = a > b;
			break;
		case RM_LE:
			a = a <= b;
			break;
		case RM_GE:
			a = a >= b;
			break;
		case RM_EQ:
			a = a == b;
			break;
		case RM_NE:
			a = a != b;
			break;
		case RM_AND:
			a = a != 0 && b != 0;
			break;
		case RM_OR:
			a = a != 0 || b != 0;
			break;
		default:
			abort();
		}
		stack[sp - 1] = a;
	}
	return sp == 1 ? stack[0] : 0;
}

struct rule_meta_lookup {
	double (*lookup)(const char *name, size_t len, void *arg);
	void *arg;
};

static double
rule_meta_by_name(const struct rule_meta_op *op, void *arg)
{
	struct rule_meta_lookup *l = arg;

	return l->lookup(op->name, strlen(op->name), l->arg);
}

int
rule_meta_eval(const char *expr,
               double (*lookup)(const char *name, size_t len, void *arg),
               void *arg, double *value_r, const char **error_r)
{
	struct rule_meta *m = rule_meta_compile(expr, error_r);
	struct rule_meta_lookup l = {lookup, arg};

	if (m == NULL)
		return -1;
	*value_r = rule_meta_run(m, rule_meta_by_name, &l);
	rule_meta_free(&m);
	return 0;
}
