/* SPDX-License-Identifier: MIT */
/*
 * test_smtp_reply.c - table-driven tests of proxy/smtp_reply.c: backend
 * reply parsing (single and multi-line, mismatched codes, bare LF, bad
 * bytes, the PX_REPLY_MAX bound, enhanced status codes), EHLO capability
 * parsing (SIZE, XCLIENT / XFORWARD attribute lists, case, AUTH and AUTH=
 * lines) and reply formatting.
 *
 * The reply parser is also driven the way the relay drives it: on a buffer
 * that grows byte by byte or by pseudo-random chunks (fixed seed), asking
 * after each read; the first non-zero answer must equal the answer on the
 * whole input, and every shorter prefix of a valid reply must answer 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_rng.h"

#include "smtp_reply.h"

struct reply_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	/* Expected result: -1, 0 or the reply length (-2: whole input). */
	long want;
	int code;
	unsigned nlines;
	const char *enh;
	const char *text;
};

#define WHOLE (-2)

static const struct reply_case reply_cases[] = {
    {"250 OK\r\n", 0, WHOLE, 250, 1, "", "OK"},
    {"250 2.0.0 Ok: queued as 4F2A\r\n", 0, WHOLE, 250, 1, "2.0.0",
     "Ok: queued as 4F2A"},
    {"250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n", 0, WHOLE, 250,
     3, "", "mx.example.com"},
    {"250-mx.example.com\n250-PIPELINING\n250 8BITMIME\n", 0, WHOLE, 250, 3, "",
     "mx.example.com"},
    {"250-a\n250 b\r\n", 0, WHOLE, 250, 2, "", "a"},
    {"250 ok\n", 0, WHOLE, 250, 1, "", "ok"},
    {"250\r\n", 0, WHOLE, 250, 1, "", ""},
    {"250 \r\n", 0, WHOLE, 250, 1, "", ""},
    {"250-\r\n250\r\n", 0, WHOLE, 250, 2, "", ""},
    {"354 End data with <CR><LF>.<CR><LF>\r\n", 0, WHOLE, 354, 1, "",
     "End data with <CR><LF>.<CR><LF>"},
    {"421 4.3.2 Service shutting down\r\n", 0, WHOLE, 421, 1, "4.3.2",
     "Service shutting down"},
    {"550 5.1.1 <x@y>: Recipient address rejected\r\n", 0, WHOLE, 550, 1,
     "5.1.1", "<x@y>: Recipient address rejected"},
    {"550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n", 0, WHOLE,
     550, 3, "5.7.1", "first"},
    {"599 5.999.999 max\r\n", 0, WHOLE, 599, 1, "5.999.999", "max"},
    {"250 2.0.0\r\n", 0, WHOLE, 250, 1, "2.0.0", ""},
    /* Not enhanced codes: wrong class, no space after, too many digits,
     * too few parts. */
    {"550 4.1.1 mismatch\r\n", 0, WHOLE, 550, 1, "", "4.1.1 mismatch"},
    {"250 2.0.0ok\r\n", 0, WHOLE, 250, 1, "", "2.0.0ok"},
    {"250 2.1234.0 x\r\n", 0, WHOLE, 250, 1, "", "2.1234.0 x"},
    {"250 2.0 x\r\n", 0, WHOLE, 250, 1, "", "2.0 x"},
    {"250 2.0. x\r\n", 0, WHOLE, 250, 1, "", "2.0. x"},
    {"250  2.0.0 x\r\n", 0, WHOLE, 250, 1, "", " 2.0.0 x"},
    /* 8-bit text and TABs pass. */
    {"250 h\xc3\xa9llo\tthere\r\n", 0, WHOLE, 250, 1, "",
     "h\xc3\xa9llo\tthere"},
    /* Bytes after the reply are the next reply's. */
    {"250 ok\r\n354 go\r\n", 0, 8, 250, 1, "", "ok"},
    {"250-a\r\n250 b\r\n250 c\r\n", 0, 14, 250, 2, "", "a"},
    /* Incomplete. */
    {"", 0, 0},
    {"2", 0, 0},
    {"25", 0, 0},
    {"250", 0, 0},
    {"250 ", 0, 0},
    {"250 ok", 0, 0},
    {"250 ok\r", 0, 0},
    {"250-a\r\n", 0, 0},
    {"250-a\r\n25", 0, 0},
    {"250-a\r\n250", 0, 0},
    /* Invalid. */
    {"x", 0, -1},
    {"150 x\r\n", 0, -1},
    {"600 x\r\n", 0, -1},
    {"099 x\r\n", 0, -1},
    {"2a0 x\r\n", 0, -1},
    {"25\r\n", 0, -1},
    {"\r\n", 0, -1},
    {"250x\r\n", 0, -1},
    {"250\tok\r\n", 0, -1},
    {"250-a\r\n251 b\r\n", 0, -1},
    {"250-a\r\n26", 0, -1},
    {"250-a\r\n2509", 0, -1},
    {"250-a\r\n550 b\r\n", 0, -1},
    {"250 a\rb\r\n", 0, -1},
    {"250 a\r\r\n", 0, -1},
    {"250 a\0b\r\n", 9, -1},
    {"\0", 1, -1},
    {"EHLO x\r\n", 0, -1},
    {" 250 x\r\n", 0, -1},
};

static long
expect_of(const struct reply_case *c, size_t len)
{
	return c->want == WHOLE ? (long)len : c->want;
}

static void
check_info(size_t i, const struct reply_case *c, const char *buf,
           const struct px_reply_info *info)
{
	if (info->code != c->code || info->nlines != c->nlines)
		fail_msg("case %zu: code %d nlines %u, want %d %u", i,
		         info->code, info->nlines, c->code, c->nlines);
	if (strcmp(info->enh, c->enh) != 0)
		fail_msg("case %zu: enh \"%s\", want \"%s\"", i, info->enh,
		         c->enh);
	if (info->text_len != strlen(c->text) ||
	    memcmp(buf + info->text_off, c->text, info->text_len) != 0)
		fail_msg("case %zu: text \"%.*s\", want \"%s\"", i,
		         (int)info->text_len, buf + info->text_off, c->text);
}

static void
test_reply_table(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]);
	     i++) {
		const struct reply_case *c = &reply_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		struct px_reply_info info;
		ssize_t r = px_reply_parse(c->in, len, &info);

		if (r != expect_of(c, len))
			fail_msg("case %zu \"%s\": got %zd, want %ld", i, c->in,
			         r, expect_of(c, len));
		if (r > 0)
			check_info(i, c, c->in, &info);
		/* A NULL info is allowed. */
		assert_int_equal(px_reply_parse(c->in, len, NULL), r);
	}
}

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint32_t
rng(void)
{
	return test_rng_next(&rng_state);
}

/*
 * feed_growing - present buf to the parser the way a reader does, chunk
 * by chunk (chunk 0: random sizes 1..max_chunk), asking after each read.
 * Returns the first non-zero answer (or 0 if all input ran out), with the
 * buffer length at which it came in *at_r.
 */
static ssize_t
feed_growing(const char *buf, size_t len, size_t chunk, size_t max_chunk,
             struct px_reply_info *info, size_t *at_r)
{
	size_t have = 0;
	ssize_t r = 0;

	while (have < len) {
		size_t n = chunk ? chunk : 1 + rng() % max_chunk;

		have += n;
		if (have > len)
			have = len;
		r = px_reply_parse(buf, have, info);
		if (r != 0)
			break;
	}
	*at_r = have;
	return r;
}

static void
test_reply_growing(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]);
	     i++) {
		const struct reply_case *c = &reply_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		long want = expect_of(c, len);
		struct px_reply_info info;

		/* Every prefix: 0 until the answer is certain, then the
		 * answer for good. */
		for (size_t k = 0; k <= len; k++) {
			ssize_t r = px_reply_parse(c->in, k, &info);

			if (want > 0 && k < (size_t)want && r != 0)
				fail_msg("case %zu prefix %zu: got %zd", i, k,
				         r);
			if (want > 0 && k >= (size_t)want && r != want)
				fail_msg("case %zu prefix %zu: got %zd", i, k,
				         r);
			if (want == 0 && r != 0)
				fail_msg("case %zu prefix %zu: got %zd", i, k,
				         r);
			if (want == -1 && r == -1) {
				/* Once invalid, invalid for good. */
				for (size_t m = k; m <= len; m++)
					assert_int_equal(
					    px_reply_parse(c->in, m, NULL), -1);
				break;
			}
		}

		/* Byte by byte and in random chunks. */
		for (int split = 0; split < 20; split++) {
			size_t at;
			ssize_t r = feed_growing(c->in, len, split == 0 ? 1 : 0,
			                         1 + split, &info, &at);

			if (r != want)
				fail_msg("case %zu split %d: got %zd", i, split,
				         r);
			if (r > 0)
				check_info(i, c, c->in, &info);
		}
	}
}

/* The PX_REPLY_MAX bound, all lines together. */
static void
test_reply_max(void **state)
{
	char *buf = malloc(PX_REPLY_MAX + 64);
	size_t n = 0;
	struct px_reply_info info;

	assert_non_null(buf);
	/* Lines of "250-xxx...\r\n" (100 bytes) up to a final "250 " line
	 * padded so that the reply is exactly PX_REPLY_MAX bytes. */
	while (PX_REPLY_MAX - n > 200) {
		memcpy(buf + n, "250-", 4);
		memset(buf + n + 4, 'x', 94);
		memcpy(buf + n + 98, "\r\n", 2);
		n += 100;
	}
	memcpy(buf + n, "250 ", 4);
	memset(buf + n + 4, 'y', PX_REPLY_MAX - n - 6);
	memcpy(buf + PX_REPLY_MAX - 2, "\r\n", 2);
	n = PX_REPLY_MAX;

	assert_int_equal(px_reply_parse(buf, n, &info), PX_REPLY_MAX);
	assert_int_equal(info.nlines, (PX_REPLY_MAX - 200) / 100 + 2);
	assert_int_equal(px_reply_parse(buf, n - 1, &info), 0);

	/* One byte more, and it is too long: as soon as PX_REPLY_MAX bytes
	 * are there without an end. */
	memcpy(buf + PX_REPLY_MAX - 2, "yy\r\n", 4);
	assert_int_equal(px_reply_parse(buf, PX_REPLY_MAX - 1, &info), 0);
	assert_int_equal(px_reply_parse(buf, PX_REPLY_MAX, &info), -1);
	assert_int_equal(px_reply_parse(buf, PX_REPLY_MAX + 2, &info), -1);

	/* A single endless line. */
	memset(buf, 'z', PX_REPLY_MAX + 64);
	memcpy(buf, "250 ", 4);
	assert_int_equal(px_reply_parse(buf, PX_REPLY_MAX - 1, &info), 0);
	assert_int_equal(px_reply_parse(buf, PX_REPLY_MAX, &info), -1);
	assert_int_equal(px_reply_parse(buf, PX_REPLY_MAX + 64, &info), -1);
	free(buf);
}

struct caps_case {
	const char *in;
	int ret;
	struct px_caps want;
};

static const struct caps_case caps_cases[] = {
    {"250-mx.example.com Hello [192.0.2.1]\r\n"
     "250-PIPELINING\r\n"
     "250-SIZE 10240000\r\n"
     "250-VRFY\r\n"
     "250-ETRN\r\n"
     "250-STARTTLS\r\n"
     "250-ENHANCEDSTATUSCODES\r\n"
     "250-8BITMIME\r\n"
     "250-DSN\r\n"
     "250-SMTPUTF8\r\n"
     "250-CHUNKING\r\n"
     "250-BINARYMIME\r\n"
     "250-XCLIENT NAME ADDR PROTO HELO\r\n"
     "250 XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n",
     0,
     {.pipelining = true,
      .size = true,
      .size_max = 10240000,
      .eightbitmime = true,
      .smtputf8 = true,
      .dsn = true,
      .enhanced = true,
      .chunking = true,
      .binarymime = true,
      .starttls = true,
      .xclient = true,
      .xforward = true,
      .xclient_attrs =
          PX_XATTR_NAME | PX_XATTR_ADDR | PX_XATTR_PROTO | PX_XATTR_HELO,
      .xforward_attrs = PX_XATTR_NAME | PX_XATTR_ADDR | PX_XATTR_PROTO |
                        PX_XATTR_HELO | PX_XATTR_SOURCE | PX_XATTR_PORT |
                        PX_XATTR_IDENT}},
    /* Lower case keywords and attributes, bare LF. */
    {"250-x\n250-pipelining\n250-size\n250-xclient name  addr port "
     "login destaddr destport reverse_name\n250 Starttls\n",
     0,
     {.pipelining = true,
      .size = true,
      .starttls = true,
      .xclient = true,
      .xclient_attrs = PX_XATTR_NAME | PX_XATTR_ADDR | PX_XATTR_PORT |
                       PX_XATTR_LOGIN | PX_XATTR_DESTADDR | PX_XATTR_DESTPORT}},
    /* Old "AUTH=" lines and near misses are ignored; AUTH lists the
     * mechanisms we can pass through, in any case, others skipped. */
    {"250-x\r\n250-AUTH=LOGIN PLAIN\r\n250-AUTHX PLAIN\r\n"
     "250-SIZEX 10\r\n250-PIPELINING2\r\n250-XCLIENTS NAME\r\n"
     "250 8BITMIMEX\r\n",
     0,
     {0}},
    {"250-x\r\n250-AUTH LOGIN PLAIN\r\n250 DSN\r\n",
     0,
     {.dsn = true, .auth = PX_AUTH_LOGIN | PX_AUTH_PLAIN}},
    {"250-x\r\n250 AUTH CRAM-MD5 plain XOAUTH2\r\n",
     0,
     {.auth = PX_AUTH_PLAIN}},
    {"250-x\r\n250 AUTH PLAINX LOGINS\r\n", 0, {0}},
    /* SIZE arguments. */
    {"250-x\r\n250 SIZE\r\n", 0, {.size = true}},
    {"250-x\r\n250 SIZE 0\r\n", 0, {.size = true}},
    {"250-x\r\n250 SIZE abc\r\n", 0, {.size = true}},
    {"250-x\r\n250 SIZE 10 20\r\n", 0, {.size = true}},
    {"250-x\r\n250 SIZE 18446744073709551615\r\n",
     0,
     {.size = true, .size_max = 18446744073709551615ULL}},
    {"250-x\r\n250 SIZE 99999999999999999999999\r\n",
     0,
     {.size = true, .size_max = 18446744073709551615ULL}},
    /* XCLIENT without attributes; XFORWARD advertised twice. */
    {"250-x\r\n250-XCLIENT\r\n250-XFORWARD NAME\r\n250 XFORWARD ADDR\r\n",
     0,
     {.xclient = true,
      .xforward = true,
      .xforward_attrs = PX_XATTR_NAME | PX_XATTR_ADDR}},
    /* The greeting line is not a keyword. */
    {"250 PIPELINING\r\n", 0, {0}},
    {"250 mx.example.com\r\n", 0, {0}},
    /* Not a 250 reply, or not a reply. */
    {"550 5.7.1 go away\r\n", -1, {0}},
    {"502 5.5.1 EHLO not implemented\r\n", -1, {0}},
    {"250-x\r\n250-PIPELINING\r\n", -1, {0}},
    {"250-x\r\n251 SIZE\r\n", -1, {0}},
    {"garbage", -1, {0}},
    {"", -1, {0}},
};

static void
test_caps_table(void **state)
{
	for (size_t i = 0; i < sizeof(caps_cases) / sizeof(caps_cases[0]);
	     i++) {
		const struct caps_case *c = &caps_cases[i];
		struct px_caps caps;
		int r;

		memset(&caps, 0xa5, sizeof(caps));
		r = px_caps_parse(c->in, strlen(c->in), &caps);
		if (r != c->ret)
			fail_msg("caps case %zu: got %d", i, r);
		if (r != 0)
			continue;
#define F(x)                                                                   \
	if (caps.x != c->want.x)                                               \
		fail_msg("caps case %zu: " #x " is %llu, want %llu", i,        \
		         (unsigned long long)caps.x,                           \
		         (unsigned long long)c->want.x);
		F(pipelining)
		F(size)
		F(size_max)
		F(eightbitmime)
		F(smtputf8)
		F(dsn)
		F(enhanced)
		F(chunking)
		F(binarymime)
		F(starttls)
		F(xclient)
		F(xforward)
		F(xclient_attrs)
		F(xforward_attrs)
		F(auth)
#undef F
	}
}

/* Only the reply at the start counts: caps after it are not read. */
static void
test_caps_stops_at_reply_end(void **state)
{
	const char *in = "250-x\r\n250 DSN\r\n250-PIPELINING\r\n250 SIZE 5\r\n";
	struct px_caps caps;

	assert_int_equal(px_caps_parse(in, strlen(in), &caps), 0);
	assert_true(caps.dsn);
	assert_false(caps.pipelining);
	assert_false(caps.size);
}

static void
test_format(void **state)
{
	char buf[512];
	struct px_reply_info info;
	size_t n;

	n = px_reply_format(buf, sizeof(buf), 250, "2.0.0", "Ok");
	assert_string_equal(buf, "250 2.0.0 Ok\r\n");
	assert_int_equal(n, strlen(buf));

	n = px_reply_format(buf, sizeof(buf), 451, "4.7.1",
	                    "Greylisted, retry in %d seconds", 300);
	assert_string_equal(buf,
	                    "451 4.7.1 Greylisted, retry in 300 seconds\r\n");
	assert_int_equal(n, strlen(buf));

	n = px_reply_format(buf, sizeof(buf), 250, NULL, "Ok");
	assert_string_equal(buf, "250 Ok\r\n");
	n = px_reply_format(buf, sizeof(buf), 250, "", "Ok");
	assert_string_equal(buf, "250 Ok\r\n");
	assert_int_equal(n, 8);

	/* No trailing space when the text is empty. */
	n = px_reply_format(buf, sizeof(buf), 221, "2.0.0", "%s", "");
	assert_string_equal(buf, "221 2.0.0\r\n");
	n = px_reply_format(buf, sizeof(buf), 221, NULL, "%s", "");
	assert_string_equal(buf, "221\r\n");

	/* SECURITY: peer data cannot end the reply or start another. */
	n = px_reply_format(buf, sizeof(buf), 550, "5.7.1", "bad helo %s",
	                    "evil\r\n250 2.0.0 fake\n\x7f\t\x01");
	assert_string_equal(buf,
	                    "550 5.7.1 bad helo evil??250 2.0.0 fake????\r\n");
	assert_int_equal(px_reply_parse(buf, n, &info), (ssize_t)n);
	assert_int_equal(info.nlines, 1);

	/* 8-bit bytes are not control characters. */
	px_reply_format(buf, sizeof(buf), 550, "5.1.1", "<%s>",
	                "j\xc3\xb6rg@example");
	assert_string_equal(buf, "550 5.1.1 <j\xc3\xb6rg@example>\r\n");

	/* Round trip through the parser. */
	n = px_reply_format(buf, sizeof(buf), 554, "5.7.1",
	                    "Relay access denied");
	assert_int_equal(px_reply_parse(buf, n, &info), (ssize_t)n);
	assert_int_equal(info.code, 554);
	assert_string_equal(info.enh, "5.7.1");
	assert_int_equal(info.text_len, strlen("Relay access denied"));
	assert_memory_equal(buf + info.text_off, "Relay access denied",
	                    info.text_len);
}

/* Truncation keeps the CRLF and the NUL, whatever the buffer size. */
static void
test_format_truncation(void **state)
{
	char buf[64];
	const char *full = "550 5.7.1 0123456789abcdefghij\r\n";

	for (size_t size = 0; size <= strlen(full) + 5; size++) {
		size_t n;

		memset(buf, '#', sizeof(buf));
		n = px_reply_format(buf, size, 550, "5.7.1", "%s",
		                    "0123456789abcdefghij");
		if (size == 0) {
			assert_int_equal(n, 0);
			assert_int_equal(buf[0], '#');
			continue;
		}
		assert_true(n < size);
		assert_int_equal(buf[n], '\0');
		assert_int_equal(strlen(buf), n);
		assert_int_equal(buf[size], '#');
		if (size < 3) {
			assert_int_equal(n, 0);
			continue;
		}
		assert_true(n >= 2);
		assert_memory_equal(buf + n - 2, "\r\n", 2);
		/* Whatever was kept is a prefix of the full reply. */
		assert_memory_equal(buf, full, n - 2);
		if (size > strlen(full))
			assert_string_equal(buf, full);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_table),
	    cmocka_unit_test(test_reply_growing),
	    cmocka_unit_test(test_reply_max),
	    cmocka_unit_test(test_caps_table),
	    cmocka_unit_test(test_caps_stops_at_reply_end),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_format_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
