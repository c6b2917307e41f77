/* SPDX-License-Identifier: MIT */
/*
 * spf_syntax.h - SPF records and identities checked against RFC 7208
 * before libspf2 sees them, and rewritten into records libspf2 evaluates
 * the way RFC 7208 says.  Pure functions: no I/O, no allocation, no
 * pointers kept, so unit tests and a fuzzer drive them alone.
 */
#ifndef MX_SPF_SYNTAX_H
#define MX_SPF_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>

/*
 * flt_spf_record_is_spf - RFC 7208 4.5: a TXT string (the record's
 * character-strings joined) is an SPF record if it starts with "v=spf1"
 * (any case) followed by a space or the end.
 */
bool flt_spf_record_is_spf(const char *rec, size_t len);

/* What "a//0", "mx/0" and "mx//0" become for a client of that family:
 * a name with this last label pair, which our DNS layer answers with the
 * client's address when the name without it has address records. */
#define FLT_SPF_ANY_SUFFIX "mxguard-any.invalid"

/* The values the macro letters expand to (RFC 7208 7.3), indexed by
 * letter - 'a'; NULL when unknown (p: it depends on the lookups). */
struct flt_spf_macro_env {
	const char *values[26];
};

/*
 * flt_spf_record_check - check rec (len bytes, may hold any byte) against
 * the RFC 7208 section 12 grammar and the rules the prose adds (duplicate
 * redirect/exp, macro letters c/r/t outside exp, nonzero DIGIT), and write
 * into out (NUL-terminated) an equivalent record that libspf2 1.2.10
 * evaluates as RFC 7208 does: unknown modifiers dropped, "redirect" dropped
 * when "all" is present and moved last otherwise, ip4/ip6 "/0" split into
 * two "/1" networks, "a/0" for an IPv4 client (client_v6 false) turned into
 * "exists", "a//0" / "mx/0" / "mx//0" for a client of that family given
 * FLT_SPF_ANY_SUFFIX, a macro DIGIT dropped when it is not below the number of
 * parts of its value in env (then it means "all parts", and libspf2 1.2.10
 * expands it wrongly), or above 128 when env is NULL.  out needs
 * 4 * len + 64 bytes.  Returns 0, or -1 (a permerror) with *error_r a
 * static reason.
 */
int flt_spf_record_check(const char *rec, size_t len, bool client_v6,
                         const struct flt_spf_macro_env *env, char *out,
                         size_t outsize, const char **error_r);

/*
 * flt_spf_explain_check - an explanation TXT (exp=, RFC 7208 6.2) checked
 * as explain-string and rewritten like a record's macros into out (len +
 * 1 bytes suffice).  -1 on a syntax error: then there is no explanation.
 */
int flt_spf_explain_check(const char *text, size_t len,
                          const struct flt_spf_macro_env *env, char *out,
                          size_t outsize);

/*
 * flt_spf_explain_expand - expand text, an explanation that
 * flt_spf_explain_check accepted, with the values in env (unknown ones
 * expand to "unknown"), into out (NUL-terminated).  Ours, not libspf2's:
 * libspf2 1.2.10 mangles explanations with spaces ("a b" gives "a%b").
 * 0, or -1 if it does not fit.
 */
int flt_spf_explain_expand(const char *text,
                           const struct flt_spf_macro_env *env, char *out,
                           size_t outsize);

/*
 * flt_spf_domain_ok - RFC 7208 4.3: name is a well-formed domain of at
 * least two labels (labels of 1..63 bytes, 253 bytes at most, an optional
 * final dot, printable ASCII without space).  A malformed one makes the
 * result "none".
 */
bool flt_spf_domain_ok(const char *name);

#endif
