/* SPDX-License-Identifier: MIT */
/*
 * test_smtp_parse.c - table-driven tests of the SMTP command line parser
 * (proxy/smtp_parse.c): every verb, argument rules per verb, MAIL/RCPT paths
 * (null path, source routes, quoted local parts, address literals, UTF-8),
 * bad bytes, the ESMTP parameter iterator and the xtext helpers.
 *
 * Each table row is one command line and what the parser must make of it;
 * a failing row is reported by its index and text.  A last test throws
 * pseudo-random lines (fixed seed) at the parser and checks the invariants
 * that must hold whatever the input: status in range, slices inside the
 * line, addr inside arg.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_rng.h"

#include "smtp_parse.h"

#define F_NULL   (1u << 0)
#define F_ROUTE  (1u << 1)
#define F_UTF8   (1u << 2)
#define F_PM     (1u << 3)
#define F_NOARGS (1u << 4) /* do not check arg */

struct cmd_case {
	const char *line;
	size_t len; /* 0: strlen(line) */
	enum px_parse_status st;
	enum px_verb verb;
	const char *arg;    /* NULL: not checked */
	const char *addr;   /* NULL: not checked (must be empty if OK) */
	const char *params; /* NULL: must be empty */
	unsigned flags;
};

#define OK   PX_PARSE_OK
#define UNK  PX_PARSE_UNKNOWN
#define SYN  PX_PARSE_SYNTAX
#define BADA PX_PARSE_BAD_ADDR
#define BADB PX_PARSE_BAD_BYTES

static const struct cmd_case cmd_cases[] = {
    /* Every verb, and case-insensitivity. */
    {"HELO mx.example.com", 0, OK, PX_VERB_HELO, "mx.example.com"},
    {"helo mx.example.com", 0, OK, PX_VERB_HELO, "mx.example.com"},
    {"EHLO mx.example.com", 0, OK, PX_VERB_EHLO, "mx.example.com"},
    {"eHlO [192.0.2.1]", 0, OK, PX_VERB_EHLO, "[192.0.2.1]"},
    {"MAIL FROM:<a@example.com>", 0, OK, PX_VERB_MAIL, NULL, "a@example.com"},
    {"RCPT TO:<b@example.org>", 0, OK, PX_VERB_RCPT, NULL, "b@example.org"},
    {"DATA", 0, OK, PX_VERB_DATA, ""},
    {"data", 0, OK, PX_VERB_DATA, ""},
    {"RSET", 0, OK, PX_VERB_RSET, ""},
    {"NOOP", 0, OK, PX_VERB_NOOP, ""},
    {"NOOP anything at all", 0, OK, PX_VERB_NOOP, "anything at all"},
    {"QUIT", 0, OK, PX_VERB_QUIT, ""},
    {"Quit", 0, OK, PX_VERB_QUIT, ""},
    {"HELP", 0, OK, PX_VERB_HELP, ""},
    {"HELP MAIL", 0, OK, PX_VERB_HELP, "MAIL"},
    {"VRFY root", 0, OK, PX_VERB_VRFY, "root"},
    {"VRFY", 0, OK, PX_VERB_VRFY, ""},
    {"EXPN staff", 0, OK, PX_VERB_EXPN, "staff"},
    {"STARTTLS", 0, OK, PX_VERB_STARTTLS, ""},
    {"starttls", 0, OK, PX_VERB_STARTTLS, ""},
    {"AUTH PLAIN AGFAYgBj", 0, OK, PX_VERB_AUTH, "PLAIN AGFAYgBj"},
    {"BDAT 1000 LAST", 0, OK, PX_VERB_BDAT, "1000 LAST"},
    {"ETRN example.com", 0, OK, PX_VERB_ETRN, "example.com"},
    {"TURN", 0, OK, PX_VERB_TURN, ""},
    {"ATRN", 0, OK, PX_VERB_ATRN, ""},
    {"ATRN example.com", 0, OK, PX_VERB_ATRN, "example.com"},
    {"XCLIENT ADDR=192.0.2.1 NAME=[UNAVAILABLE]", 0, OK, PX_VERB_XCLIENT,
     "ADDR=192.0.2.1 NAME=[UNAVAILABLE]"},
    {"xforward HELO=x", 0, OK, PX_VERB_XFORWARD, "HELO=x"},

    /* Spaces around the arguments. */
    {"HELO  two.spaces  ", 0, OK, PX_VERB_HELO, "two.spaces"},
    {"DATA   ", 0, OK, PX_VERB_DATA, ""},
    {"EHLO a b", 0, OK, PX_VERB_EHLO, "a b"},

    /* Argument rules per verb. */
    {"HELO", 0, SYN, PX_VERB_HELO},
    {"EHLO", 0, SYN, PX_VERB_EHLO},
    {"EHLO    ", 0, SYN, PX_VERB_EHLO},
    {"DATA now", 0, SYN, PX_VERB_DATA},
    {"RSET x", 0, SYN, PX_VERB_RSET},
    {"QUIT bye", 0, SYN, PX_VERB_QUIT},
    {"STARTTLS x", 0, SYN, PX_VERB_STARTTLS},
    {"TURN x", 0, SYN, PX_VERB_TURN},
    {"AUTH", 0, SYN, PX_VERB_AUTH},
    {"BDAT", 0, SYN, PX_VERB_BDAT},
    {"ETRN", 0, SYN, PX_VERB_ETRN},
    {"XCLIENT", 0, SYN, PX_VERB_XCLIENT},
    {"XFORWARD ", 0, SYN, PX_VERB_XFORWARD},

    /* Unknown verbs. */
    {"", 0, UNK, PX_VERB_UNKNOWN},
    {" ", 0, UNK, PX_VERB_UNKNOWN},
    {" HELO x", 0, UNK, PX_VERB_UNKNOWN},
    {"FOO bar", 0, UNK, PX_VERB_UNKNOWN},
    {"HELOX x", 0, UNK, PX_VERB_UNKNOWN},
    {"HEL", 0, UNK, PX_VERB_UNKNOWN},
    {"MAILFROM:<a@b.c>", 0, UNK, PX_VERB_UNKNOWN},
    {"DATA\t", 0, UNK, PX_VERB_UNKNOWN},
    {"GET / HTTP/1.0", 0, UNK, PX_VERB_UNKNOWN},

    /* MAIL FROM forms. */
    {"MAIL FROM:<>", 0, OK, PX_VERB_MAIL, "FROM:<>", "", NULL, F_NULL},
    {"mail from:<>", 0, OK, PX_VERB_MAIL, NULL, "", NULL, F_NULL},
    {"MAIL FROM: <a@b.example>", 0, OK, PX_VERB_MAIL, "FROM: <a@b.example>",
     "a@b.example"},
    {"MAIL FROM: <>", 0, OK, PX_VERB_MAIL, NULL, "", NULL, F_NULL},
    {"MAIL FROM:  <a@b.example>", 0, SYN, PX_VERB_MAIL},
    {"MAIL FROM:a@b.example", 0, SYN, PX_VERB_MAIL},
    {"MAIL FROM:<a@b.example", 0, SYN, PX_VERB_MAIL},
    {"MAIL FROM:a@b.example>", 0, SYN, PX_VERB_MAIL},
    {"MAIL FROM:", 0, SYN, PX_VERB_MAIL},
    {"MAIL FROM", 0, SYN, PX_VERB_MAIL},
    {"MAIL", 0, SYN, PX_VERB_MAIL},
    {"MAIL TO:<a@b.example>", 0, SYN, PX_VERB_MAIL},
    {"MAIL FROM <a@b.example>", 0, SYN, PX_VERB_MAIL},
    {"MAIL FROM:<a@b.example>SIZE=10", 0, SYN, PX_VERB_MAIL},
    {"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME", 0, OK, PX_VERB_MAIL,
     NULL, "a@b.example", "SIZE=100 BODY=8BITMIME"},
    {"MAIL FROM:<a@b.example>   SIZE=100   ", 0, OK, PX_VERB_MAIL, NULL,
     "a@b.example", "SIZE=100"},
    {"MAIL FROM:<> BODY=8BITMIME", 0, OK, PX_VERB_MAIL, NULL, "",
     "BODY=8BITMIME", F_NULL},
    {"MAIL FROM:<postmaster>", 0, BADA, PX_VERB_MAIL},

    /* Source routes are removed. */
    {"MAIL FROM:<@r1.example,@r2.example:a@b.example>", 0, OK, PX_VERB_MAIL,
     NULL, "a@b.example", NULL, F_ROUTE},
    {"RCPT TO:<@relay:u@d>", 0, OK, PX_VERB_RCPT, NULL, "u@d", NULL, F_ROUTE},
    {"MAIL FROM:<@r1,r2:a@b>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<@:a@b>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<@r1,@r2 a@b>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<@r1>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<@r1:>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<@r1:<a@b>>", 0, BADA, PX_VERB_MAIL},

    /* Local parts. */
    {"MAIL FROM:<\"john doe\"@example.com>", 0, OK, PX_VERB_MAIL, NULL,
     "\"john doe\"@example.com"},
    {"MAIL FROM:<\"a\\\"b\"@c.example>", 0, OK, PX_VERB_MAIL, NULL,
     "\"a\\\"b\"@c.example"},
    {"MAIL FROM:<\"a>b\"@c.example>", 0, OK, PX_VERB_MAIL, NULL,
     "\"a>b\"@c.example"},
    {"MAIL FROM:<\"\"@c.example>", 0, OK, PX_VERB_MAIL, NULL, "\"\"@c.example"},
    {"MAIL FROM:<\"unterminated@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<\"a\tb\"@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<\"a\\\tb\"@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<a+tag@b.example>", 0, OK, PX_VERB_MAIL, NULL,
     "a+tag@b.example"},
    {"MAIL FROM:<!#$%&'*+-/=?^_`{|}~@x.example>", 0, OK, PX_VERB_MAIL, NULL,
     "!#$%&'*+-/=?^_`{|}~@x.example"},
    {"MAIL FROM:<first.last@x.example>", 0, OK, PX_VERB_MAIL, NULL,
     "first.last@x.example"},
    {"MAIL FROM:<a..b@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<.a@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<a.@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<a b@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<a(b)@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<a@b@c.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<a>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<@b.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:< a@b.example>", 0, BADA, PX_VERB_MAIL},
    {"MAIL FROM:<a@b.example >", 0, BADA, PX_VERB_MAIL},

    /* Domains. */
    {"RCPT TO:<a@b>", 0, OK, PX_VERB_RCPT, NULL, "a@b"},
    {"RCPT TO:<a@x-y.example>", 0, OK, PX_VERB_RCPT, NULL, "a@x-y.example"},
    {"RCPT TO:<a@1.2.3.4>", 0, OK, PX_VERB_RCPT, NULL, "a@1.2.3.4"},
    {"RCPT TO:<a@>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@b..c>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@.b>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@b.c.>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@-b.c>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@b-.c>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@b_c.d>", 0, BADA, PX_VERB_RCPT},

    /* Address literals. */
    {"RCPT TO:<a@[192.0.2.1]>", 0, OK, PX_VERB_RCPT, NULL, "a@[192.0.2.1]"},
    {"RCPT TO:<a@[255.255.255.255]>", 0, OK, PX_VERB_RCPT, NULL,
     "a@[255.255.255.255]"},
    {"RCPT TO:<a@[IPv6:2001:db8::1]>", 0, OK, PX_VERB_RCPT, NULL,
     "a@[IPv6:2001:db8::1]"},
    {"RCPT TO:<a@[ipv6:::1]>", 0, OK, PX_VERB_RCPT, NULL, "a@[ipv6:::1]"},
    {"RCPT TO:<a@[IPv6:::ffff:192.0.2.1]>", 0, OK, PX_VERB_RCPT, NULL,
     "a@[IPv6:::ffff:192.0.2.1]"},
    {"RCPT TO:<a@[256.0.0.1]>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[1.2.3]>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[1.2.3.4.5]>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[1.2.3.4]x>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[1.2.3.4>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[]>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[IPv6:2001:db8::g]>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[IPv6:1.2.3.4]>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<a@[x-tag:foo]>", 0, BADA, PX_VERB_RCPT},

    /* UTF-8 (RFC 6531) valid and invalid. */
    {"MAIL FROM:<j\xc3\xb6rg@m\xc3\xbcller.example>", 0, OK, PX_VERB_MAIL, NULL,
     "j\xc3\xb6rg@m\xc3\xbcller.example", NULL, F_UTF8},
    {"RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
     "\xe5\xb9\xbf\xe5\x91\x8a>",
     0, OK, PX_VERB_RCPT, NULL,
     "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
     "\xe5\xb9\xbf\xe5\x91\x8a",
     NULL, F_UTF8},
    {"RCPT TO:<\"\xf0\x9f\x98\x80\"@x.example>", 0, OK, PX_VERB_RCPT, NULL,
     "\"\xf0\x9f\x98\x80\"@x.example", NULL, F_UTF8},
    {"RCPT TO:<@r\xc3\xa9lay:u@d>", 0, OK, PX_VERB_RCPT, NULL, "u@d", NULL,
     F_ROUTE},
    {"MAIL FROM:<j\xc3@x.example>", 0, BADB, PX_VERB_UNKNOWN},
    {"MAIL FROM:<\xff@x.example>", 0, BADB, PX_VERB_UNKNOWN},
    {"MAIL FROM:<\xc0\xaf@x.example>", 0, BADB, PX_VERB_UNKNOWN},
    {"MAIL FROM:<\xed\xa0\x80@x.example>", 0, BADB, PX_VERB_UNKNOWN},
    {"MAIL FROM:<\xf4\x90\x80\x80@x.example>", 0, BADB, PX_VERB_UNKNOWN},
    {"MAIL FROM:<a@x.example\xe2\x82>", 0, BADB, PX_VERB_UNKNOWN},
    {"HELO \x80", 0, BADB, PX_VERB_UNKNOWN},
    {"HELO caf\xc3\xa9.example", 0, OK, PX_VERB_HELO, "caf\xc3\xa9.example"},

    /* RCPT specifics. */
    {"RCPT TO:<Postmaster>", 0, OK, PX_VERB_RCPT, NULL, "Postmaster", NULL,
     F_PM},
    {"rcpt to:<postmaster>", 0, OK, PX_VERB_RCPT, NULL, "postmaster", NULL,
     F_PM},
    {"RCPT TO:<POSTMASTER> NOTIFY=NEVER", 0, OK, PX_VERB_RCPT, NULL,
     "POSTMASTER", "NOTIFY=NEVER", F_PM},
    {"RCPT TO:<postmaster@x.example>", 0, OK, PX_VERB_RCPT, NULL,
     "postmaster@x.example"},
    {"RCPT TO:<postmistress>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO:<>", 0, BADA, PX_VERB_RCPT},
    {"RCPT TO: <a@b.example>", 0, OK, PX_VERB_RCPT, NULL, "a@b.example"},
    {"RCPT FROM:<a@b.example>", 0, SYN, PX_VERB_RCPT},
    {"RCPT TO:a@b.example", 0, SYN, PX_VERB_RCPT},
    {"RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b", 0, OK,
     PX_VERB_RCPT, NULL, "a@b.example",
     "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b"},

    /* NUL, bare CR and bare LF anywhere in the line. */
    {"NOOP a\0b", 8, BADB, PX_VERB_UNKNOWN},
    {"\0", 1, BADB, PX_VERB_UNKNOWN},
    {"NOOP a\rb", 0, BADB, PX_VERB_UNKNOWN},
    {"NOOP a\nb", 0, BADB, PX_VERB_UNKNOWN},
    {"HELO x\r", 0, BADB, PX_VERB_UNKNOWN},
    {"QUIT\n", 0, BADB, PX_VERB_UNKNOWN},
    {"MAIL FROM:<a\0@b>", 16, BADB, PX_VERB_UNKNOWN},
    {"RCPT TO:<a@b>\r\nDATA", 0, BADB, PX_VERB_UNKNOWN},
    {"DATA\0", 5, BADB, PX_VERB_UNKNOWN},
};

static bool
slice_is(struct px_slice s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

/* slice_inside - the slice lies within line[0..len) */
static bool
slice_inside(struct px_slice s, const char *line, size_t len)
{
	return s.p >= line && s.p <= line + len && s.len <= len &&
	       (size_t)(s.p - line) + s.len <= len;
}

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			fail_msg("case %zu \"%s\": %s", i, c->line, #cond);    \
	} while (0)

static void
test_cmd_table(void **state)
{
	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		size_t len = c->len ? c->len : strlen(c->line);
		struct px_cmd cmd;
		const char *err = "unset";
		enum px_parse_status st;

		st = px_cmd_parse(c->line, len, &cmd, &err);
		if (st != c->st)
			fail_msg("case %zu \"%s\": status %d, want %d", i,
			         c->line, st, c->st);
		if (st != PX_PARSE_OK) {
			CHECK(err != NULL && err[0] != '\0');
			if (st != PX_PARSE_BAD_BYTES)
				CHECK(cmd.verb == c->verb);
			continue;
		}
		CHECK(cmd.verb == c->verb);
		if (c->arg != NULL)
			CHECK(slice_is(cmd.arg, c->arg));
		CHECK(slice_is(cmd.addr, c->addr != NULL ? c->addr : ""));
		CHECK(slice_is(cmd.params, c->params != NULL ? c->params : ""));
		CHECK(cmd.null_path == !!(c->flags & F_NULL));
		CHECK(cmd.has_route == !!(c->flags & F_ROUTE));
		CHECK(cmd.addr_utf8 == !!(c->flags & F_UTF8));
		CHECK(cmd.postmaster == !!(c->flags & F_PM));
		CHECK(slice_inside(cmd.arg, c->line, len));
		CHECK(slice_inside(cmd.addr, c->line, len));
		CHECK(slice_inside(cmd.params, c->line, len));
	}
}

#undef CHECK

/* A domain over 255 octets is refused; one of 255 is taken. */
static void
test_cmd_domain_length(void **state)
{
	char line[600], dom[300];
	struct px_cmd cmd;
	const char *err;
	size_t n = 0;

	/* 63-octet labels joined by dots, cut to 255 octets. */
	while (n < 255) {
		dom[n] = (n % 64 == 63) ? '.' : 'a';
		n++;
	}
	dom[254] = 'b';
	dom[255] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<u@%s>", dom);
	assert_int_equal(px_cmd_parse(line, strlen(line), &cmd, &err),
	                 PX_PARSE_OK);
	assert_int_equal(cmd.addr.len, 2 + 255);

	dom[255] = 'c';
	dom[256] = '\0';
	snprintf(line, sizeof(line), "RCPT TO:<u@%s>", dom);
	assert_int_equal(px_cmd_parse(line, strlen(line), &cmd, &err),
	                 PX_PARSE_BAD_ADDR);
}

/* The parser does not read past len, even if the buffer goes on. */
static void
test_cmd_len_respected(void **state)
{
	const char *buf = "QUIT now";
	struct px_cmd cmd;
	const char *err;

	assert_int_equal(px_cmd_parse(buf, 4, &cmd, &err), PX_PARSE_OK);
	assert_int_equal(cmd.verb, PX_VERB_QUIT);
	assert_int_equal(px_cmd_parse(buf, strlen(buf), &cmd, &err),
	                 PX_PARSE_SYNTAX);
	assert_int_equal(px_cmd_parse("MAIL FROM:<a@b>xyz", 15, &cmd, &err),
	                 PX_PARSE_OK);
	assert_true(slice_is(cmd.addr, "a@b"));
	assert_int_equal(cmd.params.len, 0);
}

/* ESMTP parameters: each row is the parameter string and the expected
 * walk, "K=V" or "K" per parameter, "!" for a syntax error at that point. */
struct param_case {
	const char *params;
	const char *walk[6];
};

static const struct param_case param_cases[] = {
    {"", {NULL}},
    {"   ", {NULL}},
    {"SIZE=100 BODY=8BITMIME", {"SIZE=100", "BODY=8BITMIME", NULL}},
    {"SMTPUTF8", {"SMTPUTF8", NULL}},
    {"  A=1   B  ", {"A=1", "B", NULL}},
    {"X-Y=1 z9", {"X-Y=1", "z9", NULL}},
    {"ORCPT=rfc822;a+40b", {"ORCPT=rfc822;a+40b", NULL}},
    {"ENVID=~!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}",
     {"ENVID=~!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}", NULL}},
    {"K=\xc3\xa9t\xc3\xa9", {"K=\xc3\xa9t\xc3\xa9", NULL}},
    {"=1", {"!"}},
    {"SIZE=", {"!"}},
    {"SIZE= BODY=7BIT", {"!"}},
    {"SIZE==1", {"!"}},
    {"SIZE=1=2", {"!"}},
    {"-X=1", {"!"}},
    {"K!=1", {"!"}},
    {"A=1 B=\x01", {"A=1", "!"}},
    {"A=1 B=\x7f", {"A=1", "!"}},
    {"A=1 B=\xc3", {"A=1", "!"}},
    {"A=1 B=\xff\xfe", {"A=1", "!"}},
    {"A=1 \xc3\xa9=1", {"A=1", "!"}},
    {"A=1\tB=2", {"!"}},
    {"A B C D E", {"A", "B", "C", "D", "E", NULL}},
};

static void
test_param_table(void **state)
{
	for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]);
	     i++) {
		const struct param_case *c = &param_cases[i];
		struct px_slice ps = {c->params, strlen(c->params)};
		size_t k;

		for (k = 0;; k++) {
			struct px_param p;
			struct px_slice before = ps;
			const char *w = c->walk[k];
			int r = px_param_next(&ps, &p);
			char got[128];

			if (w == NULL) {
				if (r != 0)
					fail_msg("case %zu step %zu: got %d, "
					         "want end",
					         i, k, r);
				assert_int_equal(ps.len, 0);
				/* The end is sticky. */
				assert_int_equal(px_param_next(&ps, &p), 0);
				break;
			}
			if (strcmp(w, "!") == 0) {
				if (r != -1)
					fail_msg("case %zu step %zu: got %d, "
					         "want error",
					         i, k, r);
				/* An error leaves the cursor alone. */
				assert_ptr_equal(ps.p, before.p);
				assert_int_equal(ps.len, before.len);
				break;
			}
			if (r != 1)
				fail_msg("case %zu step %zu: got %d, want %s",
				         i, k, r, w);
			if (p.has_value)
				snprintf(got, sizeof(got), "%.*s=%.*s",
				         (int)p.key.len, p.key.p,
				         (int)p.value.len, p.value.p);
			else
				snprintf(got, sizeof(got), "%.*s",
				         (int)p.key.len, p.key.p);
			if (strcmp(got, w) != 0)
				fail_msg("case %zu step %zu: got %s, want %s",
				         i, k, got, w);
			assert_true(p.has_value || p.value.len == 0);
			/* Slices point into the parameter string, even an
			 * absent value. */
			assert_true(p.key.p >= c->params &&
			            p.key.p + p.key.len <=
			                c->params + strlen(c->params));
			assert_true(p.value.p >= c->params &&
			            p.value.p + p.value.len <=
			                c->params + strlen(c->params));
		}
	}
}

/* px_cmd_parse's params feed px_param_next directly. */
static void
test_param_from_cmd(void **state)
{
	const char *line = "MAIL FROM:<a@b.example> SIZE=12345 "
	                   "BODY=8BITMIME SMTPUTF8 RET=HDRS";
	struct px_cmd cmd;
	struct px_param p;
	const char *err;

	assert_int_equal(px_cmd_parse(line, strlen(line), &cmd, &err),
	                 PX_PARSE_OK);
	assert_int_equal(px_param_next(&cmd.params, &p), 1);
	assert_true(px_slice_eq_ci(p.key, "size"));
	assert_true(slice_is(p.value, "12345"));
	assert_int_equal(px_param_next(&cmd.params, &p), 1);
	assert_true(px_slice_eq_ci(p.key, "BODY"));
	assert_true(px_slice_eq_ci(p.value, "8bitmime"));
	assert_int_equal(px_param_next(&cmd.params, &p), 1);
	assert_true(px_slice_eq_ci(p.key, "SMTPUTF8"));
	assert_false(p.has_value);
	assert_int_equal(px_param_next(&cmd.params, &p), 1);
	assert_true(slice_is(p.key, "RET"));
	assert_true(slice_is(p.value, "HDRS"));
	assert_int_equal(px_param_next(&cmd.params, &p), 0);
}

static void
test_slice_eq_ci(void **state)
{
	struct px_slice s = {"HeLLo-1", 7};
	struct px_slice e = {"", 0};
	struct px_slice u = {"\xc3\xa9", 2};

	assert_true(px_slice_eq_ci(s, "hello-1"));
	assert_true(px_slice_eq_ci(s, "HELLO-1"));
	assert_false(px_slice_eq_ci(s, "hello-"));
	assert_false(px_slice_eq_ci(s, "hello-12"));
	assert_false(px_slice_eq_ci(s, "hello_1"));
	assert_true(px_slice_eq_ci(e, ""));
	assert_false(px_slice_eq_ci(e, "a"));
	/* Only ASCII letters fold: 'é' is not 'É'. */
	assert_false(px_slice_eq_ci(u, "\xc3\x89"));
	assert_true(px_slice_eq_ci(u, "\xc3\xa9"));
}

static void
test_xtext_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
	    {"", true},      {"abc", true},       {"a+2Bb", true},
	    {"+3D", true},   {"+2B+3D+20", true}, {"!~", true},
	    {"+2b", false},  {"+2", false},       {"+", false},
	    {"a+", false},   {"+G0", false},      {"a=b", false},
	    {"a b", false},  {"a\x7f", false},    {"\xc3\xa9", false},
	    {"a\tb", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct px_slice s = {cases[i].s, strlen(cases[i].s)};

		if (px_xtext_valid(s) != cases[i].ok)
			fail_msg("xtext case %zu \"%s\": want %d", i,
			         cases[i].s, cases[i].ok);
	}
}

static void
test_xtext_encode(void **state)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
	    {"", ""},
	    {"abc", "abc"},
	    {"a+b=c d", "a+2Bb+3Dc+20d"},
	    {"\xc3\xa9", "+C3+A9"},
	    {"[192.0.2.1]", "[192.0.2.1]"},
	    {"\r\n", "+0D+0A"},
	    {"~\x7f", "~+7F"},
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = px_xtext_encode(cases[i].in, strlen(cases[i].in),
		                           buf, sizeof(buf));
		struct px_slice s = {buf, strlen(buf)};

		assert_int_equal(n, strlen(cases[i].out));
		assert_string_equal(buf, cases[i].out);
		assert_true(px_xtext_valid(s));
	}

	/* A NUL inside the input is encoded, not a terminator. */
	assert_int_equal(px_xtext_encode("a\0b", 3, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "a+00b");

	/* Truncation: whole units only, always terminated, the length
	 * needed is still returned. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(px_xtext_encode("a+b", 3, buf, 4), 5);
	assert_string_equal(buf, "a");
	assert_int_equal(px_xtext_encode("a+b", 3, buf, 5), 5);
	assert_string_equal(buf, "a+2B");
	assert_int_equal(px_xtext_encode("a+b", 3, buf, 6), 5);
	assert_string_equal(buf, "a+2Bb");
	assert_int_equal(px_xtext_encode("abc", 3, buf, 1), 3);
	assert_string_equal(buf, "");
	buf[0] = 'x';
	assert_int_equal(px_xtext_encode("abc", 3, buf, 0), 3);
	assert_int_equal(buf[0], 'x');
}

/* xtext of every byte value is valid xtext and decodes back. */
static void
test_xtext_all_bytes(void **state)
{
	char in[256], out[800];
	size_t n;

	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	n = px_xtext_encode(in, sizeof(in), out, sizeof(out));
	assert_true(n < sizeof(out));
	assert_true(px_xtext_valid((struct px_slice){out, n}));
	for (size_t i = 0, k = 0; i < n; k++) {
		unsigned v;

		if (out[i] == '+') {
			assert_int_equal(sscanf(out + i + 1, "%2X", &v), 1);
			i += 3;
		} else {
			v = (unsigned char)out[i++];
		}
		assert_int_equal(v, k);
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
rng(void)
{
	return test_rng_next(&rng_state);
}

/* Pseudo-random lines: a valid MAIL/RCPT command built from pieces, then
 * zero to two random pieces spliced in.  Whatever the parser answers, its
 * slices stay inside the line and the parameters can be walked. */
static void
test_cmd_random_invariants(void **state)
{
	static const char *locals[] = {"a",        "b.c",        "\"x y\"",
	                               "\xc3\xa9", "postmaster", "a+b",
	                               "!",        "\"\\\"\""};
	static const char *domains[] = {"b",          "c.d",   "[1.2.3.4]",
	                                "[IPv6:::1]", "x-y.z", "\xe4\xbe\x8b"};
	static const char *params[] = {
	    "",   " SIZE=1", " BODY=8BITMIME SMTPUTF8", " A=\xc3\xa9",
	    " K", "  X=1  "};
	static const char *junk[] = {
	    "<", ">", "@",        " ",    ".",  "\"", "\\", "[",   "]",     ":",
	    ",", "=", "\xc3\xa9", "\xff", "\0", "\r", "-",  "@r:", "IPv6:",
	};
	char line[256];
	unsigned ok = 0, bad = 0;

#define PICK(a) a[rng() % (sizeof(a) / sizeof(a[0]))]
	for (int iter = 0; iter < 100000; iter++) {
		size_t len;
		struct px_cmd cmd;
		const char *err;
		enum px_parse_status st;
		int n;

		n = snprintf(line, sizeof(line), "%s<%s%s@%s>%s",
		             rng() % 2 ? "MAIL FROM:" : "rcpt to: ",
		             rng() % 8 ? "" : "@r1,@r2:", PICK(locals),
		             PICK(domains), PICK(params));
		len = (size_t)n;
		for (int m = (int)(rng() % 3); m > 0; m--) {
			const char *j = PICK(junk);
			size_t jl = j[0] == '\0' ? 1 : strlen(j);
			size_t at = rng() % (len + 1);

			memmove(line + at + jl, line + at, len - at);
			memcpy(line + at, j, jl);
			len += jl;
		}
		st = px_cmd_parse(line, len, &cmd, &err);
		assert_true(st >= PX_PARSE_OK && st <= PX_PARSE_BAD_BYTES);
		if (st != PX_PARSE_OK) {
			assert_non_null(err);
			bad++;
			continue;
		}
		ok++;
		assert_null(err);
		assert_true(cmd.verb == PX_VERB_MAIL ||
		            cmd.verb == PX_VERB_RCPT);
		assert_true(slice_inside(cmd.arg, line, len));
		assert_true(slice_inside(cmd.addr, line, len));
		assert_true(slice_inside(cmd.params, line, len));
		assert_true(cmd.addr.p >= cmd.arg.p);
		assert_true(cmd.addr.p + cmd.addr.len <=
		            cmd.arg.p + cmd.arg.len);
		assert_true(cmd.null_path == (cmd.addr.len == 0));
		assert_null(memchr(line, '\0', len));
		{
			struct px_param p;
			int r;

			while ((r = px_param_next(&cmd.params, &p)) == 1)
				assert_true(p.key.len > 0);
			assert_true(r == 0 || r == -1);
		}
	}
#undef PICK
	/* The generator must reach both sides. */
	assert_true(ok > 10000);
	assert_true(bad > 10000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmd_table),
	    cmocka_unit_test(test_cmd_domain_length),
	    cmocka_unit_test(test_cmd_len_respected),
	    cmocka_unit_test(test_param_table),
	    cmocka_unit_test(test_param_from_cmd),
	    cmocka_unit_test(test_slice_eq_ci),
	    cmocka_unit_test(test_xtext_valid),
	    cmocka_unit_test(test_xtext_encode),
	    cmocka_unit_test(test_xtext_all_bytes),
	    cmocka_unit_test(test_cmd_random_invariants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
