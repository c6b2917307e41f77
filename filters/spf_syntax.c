/* SPDX-License-Identifier: MIT */
/*
 * spf_syntax.c - the RFC 7208 section 12 grammar, checked before libspf2
 * compiles a record, and the rewrites that make libspf2 1.2.10 give RFC
 * 7208's answers.
 *
 * flt_spf_record_is_spf(): record selection (4.5).
 * flt_spf_record_check(): syntax (12, 4.6, 6, 7.1) -> permerror, plus a
 * rewritten record for libspf2.
 * flt_spf_domain_ok(): the <domain> argument of check_host() (4.3).
 *
 * Why rewrite at all: libspf2 warns about, or accepts, much that RFC 7208
 * makes a permerror (bad domain-spec, invalid macros, non-ASCII bytes,
 * duplicate modifiers, "redirect:" as a mechanism, leading zeros in prefix
 * lengths), refuses what RFC 7208 allows (modifier names with ".", "-",
 * "_"), reads a "/0" prefix as "no prefix" (so /32), and follows
 * "redirect=" even when "all" is present.  Checking the grammar here and
 * handing libspf2 only what it gets right removes all of these.
 *
 * SECURITY: records are hostile input, and libspf2 1.2.10's macro expansion
 * (the code of CVE-2023-42118, unfixed in Debian 12) mishandles a DIGIT
 * transformer that is not below the number of parts of the value: the
 * first byte is lost ("%{d3}" of "a.b.c" gives ".b.c"); above 128 the
 * whole evaluation fails.  Valgrind saw no invalid access there, but only
 * grammatical macros reach libspf2, and such DIGITs, which mean "all
 * parts" anyway, are removed (flt_spf_parts knows the values).  "a//0",
 * "mx/0", "mx//0" become names with FLT_SPF_ANY_SUFFIX (spf_eval.c).
 */
#include "spf_syntax.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* A domain name has at most 127 labels: a larger DIGIT means "all". */
#define FLT_SPF_MAX_DIGIT 128

struct flt_spf_out {
	char *p;
	size_t n;
	size_t size;
	bool overflow;
};

static void
flt_spf_put(struct flt_spf_out *o, const char *s, size_t len)
{
	if (o == NULL)
		return;
	if (o->overflow || o->n + len + 1 > o->size) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->n, s, len);
	o->n += len;
	o->p[o->n] = '\0';
}

static void
flt_spf_puts(struct flt_spf_out *o, const char *s)
{
	flt_spf_put(o, s, strlen(s));
}

static bool
flt_spf_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
flt_spf_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
flt_spf_alnum(char c)
{
	return flt_spf_alpha(c) || flt_spf_digit(c);
}

bool
flt_spf_record_is_spf(const char *rec, size_t len)
{
	return len >= 6 && strncasecmp(rec, "v=spf1", 6) == 0 &&
	       (len == 6 || rec[6] == ' ');
}

static unsigned long flt_spf_parts(const struct flt_spf_macro_env *env,
                                   char letter, const char *delim, size_t dlen);

/*
 * flt_spf_macro_string - check a macro-string (12) and copy it to o with
 * DIGITs normalized.  exp_letters: c, r, t allowed (7.2: exp text only).
 * *ends_macro_r: the last element is a macro-expand; *lit_r: where the
 * trailing run of literals starts.  0 or -1.
 */
static int
flt_spf_macro_string(const char *s, size_t len, bool exp_letters,
                     const struct flt_spf_macro_env *env, struct flt_spf_out *o,
                     bool *ends_macro_r, size_t *lit_r)
{
	size_t i = 0;
	bool ends_macro = false;
	size_t lit = 0;

	while (i < len) {
		char c = s[i];

		if (c != '%') {
			/* macro-literal = %x21-24 / %x26-7E */
			if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e)
				return -1;
			if (ends_macro || i == 0)
				lit = i;
			ends_macro = false;
			flt_spf_put(o, &c, 1);
			i++;
			continue;
		}
		if (i + 1 >= len)
			return -1;
		if (s[i + 1] == '%' || s[i + 1] == '_' || s[i + 1] == '-') {
			flt_spf_put(o, s + i, 2);
			i += 2;
			ends_macro = true;
			continue;
		}
		if (s[i + 1] != '{' || i + 2 >= len)
			return -1;
		i += 2;
		/* macro-letter, case-insensitive (uppercase: URL-escape). */
		char letter = s[i];
		char lower = (char)(letter | 0x20);

		if (strchr("slodiphv", lower) == NULL &&
		    !(exp_letters && strchr("crt", lower) != NULL))
			return -1;
		if (!flt_spf_alpha(letter))
			return -1;
		i++;
		unsigned long digits = 0;
		bool have_digits = false;

		while (i < len && flt_spf_digit(s[i])) {
			have_digits = true;
			if (digits <= FLT_SPF_MAX_DIGIT)
				digits =
				    digits * 10 + (unsigned long)(s[i] - '0');
			i++;
		}
		/* 7.1: "If a DIGIT is specified, the value MUST be nonzero." */
		if (have_digits && digits == 0)
			return -1;
		bool reverse = false;

		if (i < len && (s[i] == 'r' || s[i] == 'R')) {
			reverse = true;
			i++;
		}
		size_t dstart = i;

		while (i < len && strchr(".-+,/_=", s[i]) != NULL &&
		       s[i] != '\0')
			i++;
		if (i >= len || s[i] != '}')
			return -1;
		/* SECURITY: libspf2 1.2.10 expands a DIGIT that is not below
		 * the number of parts wrongly (it drops the first byte; see
		 * CVE-2023-42118).  Such a DIGIT means "all parts" (7.3), the
		 * same as none: drop it.  Parts unknown (p): drop it too. */
		if (have_digits &&
		    digits >= flt_spf_parts(env, lower, s + dstart, i - dstart))
			have_digits = false;
		char head[16];
		size_t hn = 0;

		head[hn++] = '%';
		head[hn++] = '{';
		head[hn++] = letter;
		flt_spf_put(o, head, hn);
		if (have_digits) {
			char num[8];
			unsigned long d = digits > FLT_SPF_MAX_DIGIT
			                      ? FLT_SPF_MAX_DIGIT
			                      : digits;
			size_t nn = 0;
			char tmp[8];

			do {
				tmp[nn++] = (char)('0' + d % 10);
				d /= 10;
			} while (d > 0);
			for (size_t k = 0; k < nn; k++)
				num[k] = tmp[nn - 1 - k];
			flt_spf_put(o, num, nn);
		}
		if (reverse)
			flt_spf_put(o, "r", 1);
		flt_spf_put(o, s + dstart, i - dstart);
		flt_spf_put(o, "}", 1);
		i++;
		ends_macro = true;
	}
	if (ends_macro_r != NULL)
		*ends_macro_r = ends_macro;
	if (lit_r != NULL)
		*lit_r = ends_macro ? len : lit;
	return 0;
}

/* flt_spf_parts - how many parts the value of macro letter splits into
 * with delimiters delim (none: "."), or 1 when unknown. */
static unsigned long
flt_spf_parts(const struct flt_spf_macro_env *env, char letter,
              const char *delim, size_t dlen)
{
	const char *v;
	unsigned long n = 1;

	if (env == NULL)
		return FLT_SPF_MAX_DIGIT + 1;
	v = env->values[letter - 'a'];
	if (v == NULL)
		return 1;
	for (; *v; v++)
		if (dlen == 0 ? *v == '.' : memchr(delim, *v, dlen) != NULL)
			n++;
	return n;
}

/* flt_spf_toplabel - RFC 7208 12 toplabel: alphanumerics and "-", not at
 * either end, and not all digits. */
static bool
flt_spf_toplabel(const char *s, size_t len)
{
	bool alpha = false, dash = false;

	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '-')
			dash = true;
		else if (flt_spf_alpha(s[i]))
			alpha = true;
		else if (!flt_spf_digit(s[i]))
			return false;
	}
	if (dash)
		return s[0] != '-' && s[len - 1] != '-';
	return alpha;
}

/* flt_spf_domain_spec - domain-spec = macro-string domain-end.  0 or -1. */
static int
flt_spf_domain_spec(const char *s, size_t len,
                    const struct flt_spf_macro_env *env, struct flt_spf_out *o)
{
	bool ends_macro;
	size_t lit;

	if (len == 0)
		return -1;
	if (flt_spf_macro_string(s, len, false, env, o, &ends_macro, &lit) < 0)
		return -1;
	if (ends_macro)
		return 0;
	/* domain-end = "." toplabel [ "." ], all literal. */
	size_t end = len;

	if (end > lit && s[end - 1] == '.')
		end--;
	size_t dot = end;

	while (dot > lit && s[dot - 1] != '.')
		dot--;
	if (dot == lit)
		return -1; /* no "." before the top label */
	return flt_spf_toplabel(s + dot, end - dot) ? 0 : -1;
}

/* flt_spf_cidr - the digits of a prefix length: "0", or no leading zero;
 * at most max.  0 or -1. */
static int
flt_spf_cidr(const char *s, size_t len, unsigned max, unsigned *v)
{
	unsigned n = 0;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!flt_spf_digit(s[i]))
			return -1;
		n = n * 10 + (unsigned)(s[i] - '0');
	}
	if (n > max)
		return -1;
	*v = n;
	return 0;
}

/* flt_spf_ip4 - ip4-network: four qnum, no leading zeros. */
static bool
flt_spf_ip4(const char *s, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start = i;
		unsigned v = 0;

		while (i < len && flt_spf_digit(s[i]) && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
			return false;
		if (part < 3) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == len;
}

static bool
flt_spf_ip6(const char *s, size_t len)
{
	char buf[64];
	unsigned char a[16];

	if (len == 0 || len >= sizeof(buf))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(flt_spf_digit(s[i]) || strchr("abcdefABCDEF:.", s[i])))
			return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, a) == 1;
}

enum flt_spf_mech {
	FLT_SPF_M_ALL,
	FLT_SPF_M_INCLUDE,
	FLT_SPF_M_A,
	FLT_SPF_M_MX,
	FLT_SPF_M_PTR,
	FLT_SPF_M_IP4,
	FLT_SPF_M_IP6,
	FLT_SPF_M_EXISTS,
};

static const char *const flt_spf_mech_names[] = {
    [FLT_SPF_M_ALL] = "all", [FLT_SPF_M_INCLUDE] = "include",
    [FLT_SPF_M_A] = "a",     [FLT_SPF_M_MX] = "mx",
    [FLT_SPF_M_PTR] = "ptr", [FLT_SPF_M_IP4] = "ip4",
    [FLT_SPF_M_IP6] = "ip6", [FLT_SPF_M_EXISTS] = "exists",
};

/* flt_spf_dual_cidr - strip a trailing dual-cidr-length from s[0..*len):
 * *v4 / *v6 set (or -1 when absent).  0 or -1. */
static int
flt_spf_dual_cidr(const char *s, size_t *len, int *v4, int *v6)
{
	size_t n = *len, j;
	unsigned v;

	*v4 = *v6 = -1;
	for (int round = 0; round < 2; round++) {
		j = n;
		while (j > 0 && flt_spf_digit(s[j - 1]))
			j--;
		if (j == n || j == 0 || s[j - 1] != '/')
			break;
		if (round == 0 && j >= 2 && s[j - 2] == '/') {
			if (flt_spf_cidr(s + j, n - j, 128, &v) < 0)
				return -1;
			*v6 = (int)v;
			n = j - 2;
			continue;
		}
		if (flt_spf_cidr(s + j, n - j, 32, &v) < 0)
			return -1;
		*v4 = (int)v;
		n = j - 1;
		break;
	}
	*len = n;
	return 0;
}

static void
flt_spf_put_cidr(struct flt_spf_out *o, const char *sep, int v)
{
	char buf[8];
	size_t n = 0;
	char tmp[8];

	if (v < 0)
		return;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	for (size_t k = 0; k < n; k++)
		buf[k] = tmp[n - 1 - k];
	flt_spf_puts(o, sep);
	flt_spf_put(o, buf, n);
}

/*
 * flt_spf_directive - one directive (qualifier already split off into q,
 * '\0' when absent).  Writes the rewritten directive(s), each preceded by
 * a space.  *is_all_r: it is "all".  0 or -1.
 */
static int
flt_spf_directive(const char *t, size_t len, char q, bool client_v6,
                  const struct flt_spf_macro_env *env, struct flt_spf_out *o,
                  bool *is_all_r, const char **error_r)
{
	size_t nlen = 0;
	int mech = -1;

	while (nlen < len && t[nlen] != ':' && t[nlen] != '/')
		nlen++;
	for (size_t m = 0;
	     m < sizeof(flt_spf_mech_names) / sizeof(flt_spf_mech_names[0]);
	     m++)
		if (strlen(flt_spf_mech_names[m]) == nlen &&
		    strncasecmp(t, flt_spf_mech_names[m], nlen) == 0)
			mech = (int)m;
	if (mech < 0) {
		*error_r = "unknown mechanism";
		return -1;
	}
	const char *rest = t + nlen;
	size_t rlen = len - nlen;
	char qs[2] = {q, '\0'};

	*error_r = "invalid mechanism argument";
	switch ((enum flt_spf_mech)mech) {
	case FLT_SPF_M_ALL:
		if (rlen != 0)
			return -1;
		*is_all_r = true;
		flt_spf_puts(o, " ");
		flt_spf_puts(o, qs);
		flt_spf_puts(o, "all");
		return 0;
	case FLT_SPF_M_INCLUDE:
	case FLT_SPF_M_EXISTS:
		if (rlen < 2 || rest[0] != ':')
			return -1;
		flt_spf_puts(o, " ");
		flt_spf_puts(o, qs);
		flt_spf_puts(o, flt_spf_mech_names[mech]);
		flt_spf_puts(o, ":");
		if (flt_spf_domain_spec(rest + 1, rlen - 1, env, o) < 0) {
			*error_r = "invalid domain-spec";
			return -1;
		}
		return 0;
	case FLT_SPF_M_PTR:
		flt_spf_puts(o, " ");
		flt_spf_puts(o, qs);
		flt_spf_puts(o, "ptr");
		if (rlen == 0)
			return 0;
		if (rest[0] != ':')
			return -1;
		flt_spf_puts(o, ":");
		if (flt_spf_domain_spec(rest + 1, rlen - 1, env, o) < 0) {
			*error_r = "invalid domain-spec";
			return -1;
		}
		return 0;
	case FLT_SPF_M_A:
	case FLT_SPF_M_MX: {
		int v4, v6;
		size_t dlen = rlen;

		if (flt_spf_dual_cidr(rest, &dlen, &v4, &v6) < 0) {
			*error_r = "invalid prefix length";
			return -1;
		}
		if (dlen > 0 && (rest[0] != ':' || dlen < 2))
			return -1;
		flt_spf_puts(o, " ");
		flt_spf_puts(o, qs);
		if (mech == FLT_SPF_M_A && v4 == 0 && !client_v6) {
			/* a/0, IPv4 client: any A record matches, which is
			 * what "exists" asks (libspf2 reads /0 as /32). */
			flt_spf_puts(o, "exists:");
			if (dlen == 0)
				flt_spf_puts(o, "%{d}");
			else if (flt_spf_domain_spec(rest + 1, dlen - 1, env,
			                             o) < 0) {
				*error_r = "invalid domain-spec";
				return -1;
			}
			return 0;
		}
		flt_spf_puts(o, flt_spf_mech_names[mech]);
		if (client_v6 ? v6 == 0 : v4 == 0) {
			/* mx/0, a//0 (and mx//0) for a client of that
			 * family: any address record matches.  No libspf2
			 * term says so; the suffix asks our DNS layer to
			 * answer with the client's own address when the
			 * real name has any (spf_eval.c). */
			flt_spf_puts(o, ":");
			if (dlen == 0)
				flt_spf_puts(o, "%{d}");
			else if (flt_spf_domain_spec(rest + 1, dlen - 1, env,
			                             o) < 0) {
				*error_r = "invalid domain-spec";
				return -1;
			}
			if (o != NULL && o->n > 0 && o->p[o->n - 1] != '.')
				flt_spf_puts(o, ".");
			flt_spf_puts(o, FLT_SPF_ANY_SUFFIX);
			return 0;
		}
		if (dlen > 0) {
			flt_spf_puts(o, ":");
			if (flt_spf_domain_spec(rest + 1, dlen - 1, env, o) <
			    0) {
				*error_r = "invalid domain-spec";
				return -1;
			}
		}
		/* An IPv6 client never uses the IPv4 prefix (and back):
		 * drop a /0 libspf2 would misread. */
		if (!(v4 == 0 && client_v6))
			flt_spf_put_cidr(o, "/", v4);
		if (!(v6 == 0 && !client_v6))
			flt_spf_put_cidr(o, "//", v6);
		return 0;
	}
	case FLT_SPF_M_IP4:
	case FLT_SPF_M_IP6: {
		bool v6 = mech == FLT_SPF_M_IP6;
		size_t slash = 1;
		unsigned cidr = 0;
		bool have_cidr = false;

		if (rlen < 2 || rest[0] != ':')
			return -1;
		while (slash < rlen && rest[slash] != '/')
			slash++;
		if (slash < rlen) {
			if (flt_spf_cidr(rest + slash + 1, rlen - slash - 1,
			                 v6 ? 128 : 32, &cidr) < 0) {
				*error_r = "invalid prefix length";
				return -1;
			}
			have_cidr = true;
		}
		if (v6 ? !flt_spf_ip6(rest + 1, slash - 1)
		       : !flt_spf_ip4(rest + 1, slash - 1)) {
			*error_r = "invalid IP network";
			return -1;
		}
		if (have_cidr && cidr == 0) {
			/* Every address of the family: two halves, as
			 * libspf2 reads /0 as "no prefix". */
			flt_spf_puts(o, " ");
			flt_spf_puts(o, qs);
			flt_spf_puts(o, v6 ? "ip6:::/1 " : "ip4:0.0.0.0/1 ");
			flt_spf_puts(o, qs);
			flt_spf_puts(o,
			             v6 ? "ip6:8000::/1" : "ip4:128.0.0.0/1");
			return 0;
		}
		flt_spf_puts(o, " ");
		flt_spf_puts(o, qs);
		flt_spf_puts(o, v6 ? "ip6:" : "ip4:");
		flt_spf_put(o, rest + 1, rlen - 1);
		return 0;
	}
	}
	return -1;
}

int
flt_spf_record_check(const char *rec, size_t len, bool client_v6,
                     const struct flt_spf_macro_env *env, char *out,
                     size_t outsize, const char **error_r)
{
	struct flt_spf_out o = {.p = out, .size = outsize};
	const char *redirect = NULL, *exp = NULL;
	size_t redirect_len = 0, exp_len = 0;
	bool have_all = false;
	size_t i;

	if (outsize > 0)
		out[0] = '\0';
	if (!flt_spf_record_is_spf(rec, len)) {
		*error_r = "not an SPF record";
		return -1;
	}
	/* SECURITY: the grammar is printable ASCII and spaces only; NUL
	 * would truncate the record inside libspf2, CR/LF would reach our
	 * headers. */
	for (i = 0; i < len; i++)
		if ((unsigned char)rec[i] < 0x20 ||
		    (unsigned char)rec[i] > 0x7e) {
			*error_r = "control or non-ASCII character";
			return -1;
		}
	flt_spf_puts(&o, "v=spf1");
	i = 6;
	while (i < len) {
		size_t start, tlen;

		while (i < len && rec[i] == ' ')
			i++;
		if (i >= len)
			break;
		start = i;
		while (i < len && rec[i] != ' ')
			i++;
		tlen = i - start;
		const char *t = rec + start;
		size_t nlen = 0;

		/* modifier = name "=" ..., name = ALPHA *(ALPHA / DIGIT /
		 * "-" / "_" / ".") */
		if (flt_spf_alpha(t[0])) {
			nlen = 1;
			while (nlen < tlen &&
			       (flt_spf_alnum(t[nlen]) || t[nlen] == '-' ||
			        t[nlen] == '_' || t[nlen] == '.'))
				nlen++;
		}
		if (nlen > 0 && nlen < tlen && t[nlen] == '=') {
			const char *v = t + nlen + 1;
			size_t vlen = tlen - nlen - 1;

			if (nlen == 8 && strncasecmp(t, "redirect", 8) == 0) {
				if (redirect != NULL) {
					*error_r = "duplicate redirect";
					return -1;
				}
				if (flt_spf_domain_spec(v, vlen, env, NULL) <
				    0) {
					*error_r = "invalid redirect domain";
					return -1;
				}
				redirect = v;
				redirect_len = vlen;
			} else if (nlen == 3 && strncasecmp(t, "exp", 3) == 0) {
				if (exp != NULL) {
					*error_r = "duplicate exp";
					return -1;
				}
				if (flt_spf_domain_spec(v, vlen, env, NULL) <
				    0) {
					*error_r = "invalid exp domain";
					return -1;
				}
				exp = v;
				exp_len = vlen;
			} else if (flt_spf_macro_string(v, vlen, true, env,
			                                NULL, NULL, NULL) < 0) {
				*error_r = "invalid modifier value";
				return -1;
			}
			/* Unknown modifiers are ignored (6): not passed on,
			 * as libspf2 refuses some legal names. */
			continue;
		}
		char q = '\0';

		if (strchr("+-?~", t[0]) != NULL) {
			q = t[0];
			t++;
			tlen--;
			if (tlen == 0) {
				*error_r = "qualifier without mechanism";
				return -1;
			}
		}
		if (flt_spf_directive(t, tlen, q, client_v6, env, &o, &have_all,
		                      error_r) < 0)
			return -1;
	}
	/* 6.1: redirect is ignored when "all" is present; otherwise it is
	 * used after every mechanism, wherever it was written. */
	if (redirect != NULL && !have_all) {
		flt_spf_puts(&o, " redirect=");
		if (flt_spf_domain_spec(redirect, redirect_len, env, &o) < 0) {
			*error_r = "invalid redirect domain";
			return -1;
		}
	}
	if (exp != NULL) {
		flt_spf_puts(&o, " exp=");
		(void)flt_spf_domain_spec(exp, exp_len, env, &o);
	}
	if (o.overflow) {
		*error_r = "record too long";
		return -1;
	}
	return 0;
}

int
flt_spf_explain_check(const char *text, size_t len,
                      const struct flt_spf_macro_env *env, char *out,
                      size_t outsize)
{
	struct flt_spf_out o = {.p = out, .size = outsize};
	size_t i = 0;

	if (outsize > 0)
		out[0] = '\0';
	/* explain-string = *( macro-string / SP ) */
	while (i < len) {
		size_t start = i;

		if (text[i] == ' ') {
			flt_spf_put(&o, " ", 1);
			i++;
			continue;
		}
		while (i < len && text[i] != ' ')
			i++;
		if (flt_spf_macro_string(text + start, i - start, true, env, &o,
		                         NULL, NULL) < 0)
			return -1;
	}
	return o.overflow ? -1 : 0;
}

/* flt_spf_expand_one - one macro-expand (7.3): value split at the
 * delimiters, reversed, the rightmost DIGIT parts joined with ".",
 * URL-escaped for an uppercase letter. */
static void
flt_spf_expand_one(struct flt_spf_out *o, const char *v, bool upper,
                   unsigned long digits, bool reverse, const char *delim,
                   size_t dlen)
{
	const char *part[FLT_SPF_MAX_DIGIT];
	size_t plen[FLT_SPF_MAX_DIGIT];
	size_t n = 0, first;
	const char *start = v;

	/* More parts than a domain can have: the last ones are kept. */
	for (const char *p = v;; p++) {
		bool end = *p == '\0';

		if (end ||
		    (dlen == 0 ? *p == '.' : memchr(delim, *p, dlen) != NULL)) {
			if (n == FLT_SPF_MAX_DIGIT) {
				memmove(part, part + 1,
				        sizeof(part[0]) * (n - 1));
				memmove(plen, plen + 1,
				        sizeof(plen[0]) * (n - 1));
				n--;
			}
			part[n] = start;
			plen[n++] = (size_t)(p - start);
			start = p + 1;
		}
		if (end)
			break;
	}
	if (reverse)
		for (size_t i = 0; i < n / 2; i++) {
			const char *tp = part[i];
			size_t tl = plen[i];

			part[i] = part[n - 1 - i];
			plen[i] = plen[n - 1 - i];
			part[n - 1 - i] = tp;
			plen[n - 1 - i] = tl;
		}
	first = digits > 0 && digits < n ? n - digits : 0;
	for (size_t i = first; i < n; i++) {
		if (i > first)
			flt_spf_put(o, ".", 1);
		for (size_t k = 0; k < plen[i]; k++) {
			char c = part[i][k];
			char esc[4];

			if (!upper || flt_spf_alnum(c) || strchr("-._~", c)) {
				flt_spf_put(o, &c, 1);
				continue;
			}
			esc[0] = '%';
			esc[1] = "0123456789ABCDEF"[(unsigned char)c >> 4];
			esc[2] = "0123456789ABCDEF"[(unsigned char)c & 15];
			flt_spf_put(o, esc, 3);
		}
	}
}

int
flt_spf_explain_expand(const char *text, const struct flt_spf_macro_env *env,
                       char *out, size_t outsize)
{
	struct flt_spf_out o = {.p = out, .size = outsize};
	size_t len = strlen(text);
	size_t i = 0;

	if (outsize > 0)
		out[0] = '\0';
	while (i < len) {
		if (text[i] != '%') {
			flt_spf_put(&o, text + i, 1);
			i++;
			continue;
		}
		if (i + 1 >= len)
			return -1;
		if (text[i + 1] != '{') {
			flt_spf_put(&o,
			            text[i + 1] == '%'   ? "%"
			            : text[i + 1] == '_' ? " "
			                                 : "%20",
			            text[i + 1] == '-' ? 3 : 1);
			i += 2;
			continue;
		}
		/* A checked macro: letter, digits, r, delimiters, "}". */
		char letter = text[i + 2];
		char lower = (char)(letter | 0x20);
		unsigned long digits = 0;
		bool reverse = false;
		size_t d0;
		const char *v;

		i += 3;
		while (i < len && flt_spf_digit(text[i]) &&
		       digits <= FLT_SPF_MAX_DIGIT)
			digits = digits * 10 + (unsigned long)(text[i++] - '0');
		while (i < len && flt_spf_digit(text[i]))
			i++;
		if (i < len && (text[i] == 'r' || text[i] == 'R')) {
			reverse = true;
			i++;
		}
		d0 = i;
		while (i < len && text[i] != '}')
			i++;
		if (i >= len || lower < 'a' || lower > 'z')
			return -1;
		v = env->values[lower - 'a'];
		flt_spf_expand_one(&o, v ? v : "unknown", letter != lower,
		                   digits, reverse, text + d0, i - d0);
		i++;
	}
	return o.overflow ? -1 : 0;
}

bool
flt_spf_domain_ok(const char *name)
{
	size_t len = strlen(name), label = 0, labels = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			labels++;
			label = 0;
			continue;
		}
		if (c <= 0x20 || c >= 0x7f || ++label > 63)
			return false;
	}
	if (label == 0)
		return false;
	return labels + 1 >= 2;
}
