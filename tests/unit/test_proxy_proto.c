/* SPDX-License-Identifier: MIT */
/*
 * test_proxy_proto.c - tests of the PROXY protocol parser
 * (proxy/proxy_proto.c): v1 TCP4, TCP6 and UNKNOWN headers, many invalid v1
 * forms (addresses, ports, spaces, line ends, family mismatch, the 107-byte
 * bound), v2 PROXY / LOCAL / UNSPEC / UDP / UNIX, TLVs and truncation.
 *
 * Beyond the answer on the whole input, every case checks the promise the
 * listener relies on: each proper prefix of a valid header answers 0, and
 * an invalid input answers -1 from the first byte that makes it hopeless
 * (given per case) and for every longer prefix.  The parser is also fed the
 * way the listener feeds it, byte by byte and in pseudo-random chunks
 * (fixed seed), and must give the same header.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_rng.h"

#include "proxy_proto.h"

static uint64_t rng_state = 0x452821e638d01377ULL;

static uint32_t
rng(void)
{
	return test_rng_next(&rng_state);
}

/* addr_str - "ip port" of a sockaddr, or "-" for AF_UNSPEC */
static void
addr_str(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(out, size, "%s %u", ip, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "%s %u", ip, ntohs(s->sin6_port));
	} else {
		snprintf(out, size, "- family %d", ss->ss_family);
	}
}

static void
assert_hdr_equal(const struct px_proxy_hdr *a, const struct px_proxy_hdr *b)
{
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->local, b->local);
	assert_memory_equal(&a->src, &b->src, sizeof(a->src));
	assert_memory_equal(&a->dst, &b->dst, sizeof(a->dst));
}

/*
 * check_prefixes - the answers on all prefixes of buf[0..len) agree with
 * want (the answer on the whole): 0 before the decision, then want for good.
 * fail_at, when want is -1 and fail_at > 0, is the shortest prefix that must
 * already answer -1.
 */
static void
check_prefixes(const char *name, const unsigned char *buf, size_t len,
               ssize_t want, size_t fail_at, const struct px_proxy_hdr *whole)
{
	size_t decided = 0;

	for (size_t k = 0; k <= len; k++) {
		struct px_proxy_hdr h;
		const char *err = NULL;
		ssize_t r = px_proxy_parse(buf, k, &h, &err);

		if (r == 0 && decided == 0) {
			assert_null(err);
			continue;
		}
		if (decided == 0)
			decided = k;
		if (r != want)
			fail_msg("%s: prefix %zu answers %zd, want %zd", name,
			         k, r, want);
		if (r < 0)
			assert_non_null(err);
		else
			assert_hdr_equal(&h, whole);
	}
	if (want > 0 && decided != (size_t)want)
		fail_msg("%s: decided at %zu, header is %zd bytes", name,
		         decided, want);
	if (want < 0 && fail_at > 0 && decided != fail_at)
		fail_msg("%s: refused at %zu bytes, want %zu", name, decided,
		         fail_at);
}

/* check_splits - feed as a reader would, growing the buffer by chunks */
static void
check_splits(const char *name, const unsigned char *buf, size_t len,
             ssize_t want, const struct px_proxy_hdr *whole)
{
	for (int split = 0; split < 16; split++) {
		size_t have = 0;
		ssize_t r = 0;
		struct px_proxy_hdr h;
		const char *err;

		while (have < len) {
			have += split == 0 ? 1 : 1 + rng() % (4 * split);
			if (have > len)
				have = len;
			r = px_proxy_parse(buf, have, &h, &err);
			if (r != 0)
				break;
		}
		if (r != want)
			fail_msg("%s: split %d answers %zd, want %zd", name,
			         split, r, want);
		if (r > 0)
			assert_hdr_equal(&h, whole);
	}
}

struct v1_case {
	const char *in;
	/* Valid: the expected "src" and "dst" as "ip port", NULL for a
	 * local header.  Invalid: src is NULL and ok_prefix the longest
	 * prefix that must still answer 0 (NULL: not checked). */
	bool valid;
	const char *src;
	const char *dst;
	const char *ok_prefix;
};

static const struct v1_case v1_cases[] = {
    {"PROXY TCP4 1.2.3.4 5.6.7.8 111 222\r\n", true, "1.2.3.4 111",
     "5.6.7.8 222"},
    {"PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n", true,
     "255.255.255.255 65535", "0.0.0.0 0"},
    {"PROXY TCP4 192.0.2.10 198.51.100.1 51234 25\r\nEHLO x\r\n", true,
     "192.0.2.10 51234", "198.51.100.1 25"},
    {"PROXY TCP6 2001:db8::1 ::1 1 2\r\n", true, "2001:db8::1 1", "::1 2"},
    {"PROXY TCP6 ::ffff:192.0.2.1 1:2:3:4:5:6:7:8 1 2\r\n", true,
     "::ffff:192.0.2.1 1", "1:2:3:4:5:6:7:8 2"},
    {"PROXY TCP6 1:2:3:4:5:6:7:: :: 65535 10\r\n", true,
     "1:2:3:4:5:6:7:0 65535", ":: 10"},
    {"PROXY TCP6 ::2:3:4:5:6:7:8 1:2:3:4:5:6:1.2.3.4 1 2\r\n", true,
     "0:2:3:4:5:6:7:8 1", "1:2:3:4:5:6:102:304 2"},
    {"PROXY TCP6 2001:DB8::A 1::5:1.2.3.4 1 2\r\n", true, "2001:db8::a 1",
     "1::5:102:304 2"},
    {"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
     true, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535",
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535"},
    {"PROXY UNKNOWN\r\n", true, NULL, NULL},
    {"PROXY UNKNOWN\r\nEHLO x\r\n", true, NULL, NULL},
    {"PROXY UNKNOWN 1.2.3.4 garbage is ignored\r\n", true, NULL, NULL},
    /* The longest header the spec allows: 107 bytes. */
    {"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
     true, NULL, NULL},

    /* Not PROXY at all: refused on the first byte that differs. */
    {"GET / HTTP/1.0\r\n", false, NULL, NULL, ""},
    {"EHLO x\r\n", false, NULL, NULL, ""},
    {"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", false, NULL, NULL, ""},
    {"PROXZ", false, NULL, NULL, "PROX"},
    {"PROXY\r\n", false, NULL, NULL, "PROXY"},
    {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY "},
    {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY TCP"},
    {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY "},
    {"PROXY TCP4\r\n", false, NULL, NULL, "PROXY TCP4"},
    {"PROXY UNKNOWNX\r\n", false, NULL, NULL, "PROXY UNKNOWN"},
    {"PROXY UNKNOWN\n", false, NULL, NULL, "PROXY UNKNOWN"},
    {"PROXY UNKNOWN\rX", false, NULL, NULL, "PROXY UNKNOWN\r"},
    {"PROXY UNKNOWN a\nb\r\n", false, NULL, NULL, "PROXY UNKNOWN a"},
    /* Bad addresses. */
    {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.25"},
    {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY TCP4 1.2.3"},
    {"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4"},
    {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY TCP4 0"},
    {"PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY TCP4 1."},
    {"PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY TCP4 "},
    {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 "},
    {"PROXY TCP4 1.2.3.4 5.6.7.8. 1 2\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8"},
    {"PROXY TCP4 a.b.c.d 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY TCP4 "},
    /* Family mismatch. */
    {"PROXY TCP4 ::1 ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP4 "},
    {"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", false, NULL, NULL, "PROXY TCP6 1"},
    {"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 "},
    {"PROXY TCP6 ::1 1.2.3.4 1 2\r\n", false, NULL, NULL, "PROXY TCP6 ::1 1"},
    /* Bad IPv6. */
    {"PROXY TCP6 1::2::3 ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 1::2:"},
    {"PROXY TCP6 :1 ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 :"},
    {"PROXY TCP6 1: ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 1:"},
    {"PROXY TCP6 ::: ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 ::"},
    {"PROXY TCP6 12345:: ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 1234"},
    {"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", false, NULL, NULL,
     "PROXY TCP6 1:2:3:4:5:6:7:8"},
    {"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", false, NULL, NULL,
     "PROXY TCP6 1:2:3:4:5:6:7"},
    {"PROXY TCP6 1::2:3:4:5:6:7:8 ::1 1 2\r\n", false, NULL, NULL,
     "PROXY TCP6 1::2:3:4:5:6:7"},
    {"PROXY TCP6 1:2:3:4:5:6:7::8 ::1 1 2\r\n", false, NULL, NULL,
     "PROXY TCP6 1:2:3:4:5:6:7::"},
    {"PROXY TCP6 ::g ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 ::"},
    {"PROXY TCP6 ::1.2.3 ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 ::1.2.3"},
    {"PROXY TCP6 ::01.2.3.4 ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 ::01"},
    {"PROXY TCP6 1:2:3:4:5:1.2.3.4 ::1 1 2\r\n", false, NULL, NULL,
     "PROXY TCP6 1:2:3:4:5:1"},
    {"PROXY TCP6 ::a.2.3.4 ::1 1 2\r\n", false, NULL, NULL, "PROXY TCP6 ::a"},
    {"PROXY TCP6 ::1.2.3.4:5 ::1 1 2\r\n", false, NULL, NULL,
     "PROXY TCP6 ::1.2.3.4"},
    /* Bad ports. */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 111 65536\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 111 6553"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 9999"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 011 2\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 0"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 "},
    {"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 "},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 1"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 1 "},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 1 2"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 1 2"},
    /* Line ends. */
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 1 2"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", false, NULL, NULL,
     "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"},
};

static void
test_v1_table(void **state)
{
	for (size_t i = 0; i < sizeof(v1_cases) / sizeof(v1_cases[0]); i++) {
		const struct v1_case *c = &v1_cases[i];
		const unsigned char *buf = (const unsigned char *)c->in;
		size_t len = strlen(c->in);
		struct px_proxy_hdr h;
		const char *err = NULL;
		ssize_t r = px_proxy_parse(buf, len, &h, &err);
		char name[160], got[80];
		size_t fail_at = 0;

		snprintf(name, sizeof(name), "v1 case %zu \"%.*s\"", i,
		         (int)strcspn(c->in, "\r\n"), c->in);
		if (c->valid) {
			const char *end = strstr(c->in, "\r\n");

			if (r != end + 2 - c->in)
				fail_msg("%s: got %zd (%s)", name, r,
				         err ? err : "");
			assert_null(err);
			assert_int_equal(h.version, 1);
			assert_int_equal(h.local, c->src == NULL);
			if (c->src != NULL) {
				addr_str(&h.src, got, sizeof(got));
				if (strcmp(got, c->src) != 0)
					fail_msg("%s: src %s", name, got);
				addr_str(&h.dst, got, sizeof(got));
				if (strcmp(got, c->dst) != 0)
					fail_msg("%s: dst %s", name, got);
			} else {
				assert_int_equal(h.src.ss_family, AF_UNSPEC);
				assert_int_equal(h.dst.ss_family, AF_UNSPEC);
			}
		} else {
			if (r != -1)
				fail_msg("%s: got %zd, want -1", name, r);
			assert_non_null(err);
			if (c->ok_prefix != NULL) {
				assert_memory_equal(c->in, c->ok_prefix,
				                    strlen(c->ok_prefix));
				fail_at = strlen(c->ok_prefix) + 1;
			}
		}
		check_prefixes(name, buf, len, r, fail_at, &h);
		check_splits(name, buf, len, r, &h);
	}
}

/* The 107-byte bound: no CRLF within it is an error, decided at 107. */
static void
test_v1_too_long(void **state)
{
	unsigned char buf[200];
	struct px_proxy_hdr h;
	const char *err;

	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	assert_int_equal(px_proxy_parse(buf, 106, &h, &err), 0);
	assert_int_equal(px_proxy_parse(buf, 107, &h, &err), -1);
	assert_non_null(err);
	assert_int_equal(px_proxy_parse(buf, sizeof(buf), &h, &err), -1);

	/* CRLF as bytes 106 and 107: still valid. */
	memcpy(buf + 105, "\r\n", 2);
	assert_int_equal(px_proxy_parse(buf, sizeof(buf), &h, &err), 107);
	/* One byte later: too long. */
	buf[105] = 'a';
	memcpy(buf + 106, "\r\n", 2);
	assert_int_equal(px_proxy_parse(buf, 106, &h, &err), 0);
	assert_int_equal(px_proxy_parse(buf, 107, &h, &err), -1);
	assert_int_equal(px_proxy_parse(buf, sizeof(buf), &h, &err), -1);
}

static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* v2_build - signature, ver_cmd, fam, length and payload into out */
static size_t
v2_build(unsigned char *out, unsigned ver_cmd, unsigned fam,
         const unsigned char *payload, size_t plen, size_t declared)
{
	memcpy(out, v2_sig, 12);
	out[12] = (unsigned char)ver_cmd;
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(declared >> 8);
	out[15] = (unsigned char)(declared & 0xff);
	if (plen > 0)
		memcpy(out + 16, payload, plen);
	return 16 + plen;
}

static const unsigned char v4_block[12] = {192, 0, 2,    1,    198,  51,
                                           100, 2, 0x30, 0x39, 0x00, 25};

static void
check_v2(const char *name, const unsigned char *buf, size_t len, ssize_t want,
         struct px_proxy_hdr *h_r)
{
	const char *err = NULL;
	ssize_t r = px_proxy_parse(buf, len, h_r, &err);

	if (r != want)
		fail_msg("%s: got %zd (%s), want %zd", name, r, err ? err : "",
		         want);
	if (r == -1)
		assert_non_null(err);
	else
		assert_null(err);
	if (r > 0)
		assert_int_equal(h_r->version, 2);
	check_prefixes(name, buf, len, r, 0, h_r);
	check_splits(name, buf, len, r, h_r);
}

static void
test_v2_proxy_tcp4(void **state)
{
	unsigned char buf[256];
	struct px_proxy_hdr h;
	char got[80];
	size_t n = v2_build(buf, 0x21, 0x11, v4_block, 12, 12);

	check_v2("v2 tcp4", buf, n, 28, &h);
	assert_false(h.local);
	addr_str(&h.src, got, sizeof(got));
	assert_string_equal(got, "192.0.2.1 12345");
	addr_str(&h.dst, got, sizeof(got));
	assert_string_equal(got, "198.51.100.2 25");

	/* SMTP bytes after the header are not taken. */
	memcpy(buf + n, "EHLO x\r\n", 8);
	check_v2("v2 tcp4 + smtp", buf, n + 8, 28, &h);
}

static void
test_v2_proxy_tcp6(void **state)
{
	unsigned char buf[256], block[36];
	struct px_proxy_hdr h;
	char got[80];
	size_t n;

	inet_pton(AF_INET6, "2001:db8::1", block);
	inet_pton(AF_INET6, "2001:db8:ffff::25", block + 16);
	block[32] = 0xff;
	block[33] = 0xff;
	block[34] = 0x00;
	block[35] = 0x00;
	n = v2_build(buf, 0x21, 0x21, block, 36, 36);
	check_v2("v2 tcp6", buf, n, 52, &h);
	assert_false(h.local);
	addr_str(&h.src, got, sizeof(got));
	assert_string_equal(got, "2001:db8::1 65535");
	addr_str(&h.dst, got, sizeof(got));
	assert_string_equal(got, "2001:db8:ffff::25 0");
}

static void
test_v2_local_and_others(void **state)
{
	unsigned char buf[512], junk[216];
	struct px_proxy_hdr h;
	size_t n;

	memset(junk, 0x5a, sizeof(junk));

	/* LOCAL: health checks; the family byte and block are ignored. */
	n = v2_build(buf, 0x20, 0x00, NULL, 0, 0);
	check_v2("v2 local", buf, n, 16, &h);
	assert_true(h.local);
	assert_int_equal(h.src.ss_family, AF_UNSPEC);
	n = v2_build(buf, 0x20, 0xff, junk, 3, 3);
	check_v2("v2 local odd family", buf, n, 19, &h);
	assert_true(h.local);
	n = v2_build(buf, 0x20, 0x11, v4_block, 12, 12);
	check_v2("v2 local with tcp4", buf, n, 28, &h);
	assert_true(h.local);
	assert_int_equal(h.src.ss_family, AF_UNSPEC);

	/* PROXY over UNSPEC, UDP or UNIX: treated as local. */
	n = v2_build(buf, 0x21, 0x00, NULL, 0, 0);
	check_v2("v2 unspec", buf, n, 16, &h);
	assert_true(h.local);
	n = v2_build(buf, 0x21, 0x12, v4_block, 12, 12);
	check_v2("v2 udp4", buf, n, 28, &h);
	assert_true(h.local);
	n = v2_build(buf, 0x21, 0x22, junk, 36, 36);
	check_v2("v2 udp6", buf, n, 52, &h);
	assert_true(h.local);
	n = v2_build(buf, 0x21, 0x31, junk, 216, 216);
	check_v2("v2 unix stream", buf, n, 232, &h);
	assert_true(h.local);
	n = v2_build(buf, 0x21, 0x10, NULL, 0, 0);
	check_v2("v2 inet unspec transport", buf, n, 16, &h);
	assert_true(h.local);
}

static void
test_v2_tlvs(void **state)
{
	unsigned char buf[70000], payload[65535];
	struct px_proxy_hdr h;
	char got[80];
	size_t n;

	/* Addresses, then ALPN "smtp" and a NOOP TLV. */
	memcpy(payload, v4_block, 12);
	memcpy(payload + 12, "\x01\x00\x04smtp\x04\x00\x02xx", 13);
	n = v2_build(buf, 0x21, 0x11, payload, 25, 25);
	memcpy(buf + n, "EHLO", 4);
	check_v2("v2 tlvs", buf, n + 4, 41, &h);
	addr_str(&h.src, got, sizeof(got));
	assert_string_equal(got, "192.0.2.1 12345");

	/* The largest length there is. */
	memset(payload + 12, 0, sizeof(payload) - 12);
	n = v2_build(buf, 0x21, 0x11, payload, sizeof(payload), 65535);
	assert_int_equal(n, 16 + 65535);
	assert_int_equal(px_proxy_parse(buf, n - 1, &h, NULL), 0);
	assert_int_equal(px_proxy_parse(buf, n, &h, NULL), (ssize_t)n);
	assert_false(h.local);
}

static void
test_v2_invalid(void **state)
{
	unsigned char buf[256];
	struct px_proxy_hdr h;
	const char *err;
	size_t n;

	/* Declared lengths shorter than the address block, refused as
	 * soon as the length is known. */
	n = v2_build(buf, 0x21, 0x11, v4_block, 11, 11);
	check_v2("v2 tcp4 short", buf, n, -1, &h);
	assert_int_equal(px_proxy_parse(buf, 16, &h, &err), -1);
	assert_int_equal(px_proxy_parse(buf, 15, &h, &err), 0);
	n = v2_build(buf, 0x21, 0x21, v4_block, 12, 35);
	assert_int_equal(px_proxy_parse(buf, 16, &h, &err), -1);
	n = v2_build(buf, 0x21, 0x31, v4_block, 12, 215);
	assert_int_equal(px_proxy_parse(buf, 16, &h, &err), -1);
	n = v2_build(buf, 0x21, 0x12, v4_block, 0, 0);
	assert_int_equal(px_proxy_parse(buf, 16, &h, &err), -1);

	/* Bad version, command, family: refused at that byte. */
	n = v2_build(buf, 0x11, 0x11, v4_block, 12, 12);
	check_v2("v2 version 1", buf, n, -1, &h);
	assert_int_equal(px_proxy_parse(buf, 13, &h, &err), -1);
	n = v2_build(buf, 0x31, 0x11, v4_block, 12, 12);
	assert_int_equal(px_proxy_parse(buf, 13, &h, &err), -1);
	n = v2_build(buf, 0x22, 0x11, v4_block, 12, 12);
	check_v2("v2 command 2", buf, n, -1, &h);
	assert_int_equal(px_proxy_parse(buf, 13, &h, &err), -1);
	n = v2_build(buf, 0x2f, 0x11, v4_block, 12, 12);
	assert_int_equal(px_proxy_parse(buf, 13, &h, &err), -1);
	n = v2_build(buf, 0x21, 0x41, v4_block, 12, 12);
	check_v2("v2 family 4", buf, n, -1, &h);
	assert_int_equal(px_proxy_parse(buf, 14, &h, &err), -1);
	assert_int_equal(px_proxy_parse(buf, 13, &h, &err), 0);
	n = v2_build(buf, 0x21, 0x13, v4_block, 12, 12);
	assert_int_equal(px_proxy_parse(buf, 14, &h, &err), -1);

	/* A signature that goes wrong at any byte. */
	for (size_t k = 0; k < 12; k++) {
		n = v2_build(buf, 0x21, 0x11, v4_block, 12, 12);
		buf[k] ^= 0x40;
		assert_int_equal(px_proxy_parse(buf, n, &h, &err), -1);
		assert_int_equal(px_proxy_parse(buf, k + 1, &h, &err), -1);
		if (k > 0)
			assert_int_equal(px_proxy_parse(buf, k, &h, &err), 0);
	}

	/* Truncated: every prefix of a valid header asks for more. */
	n = v2_build(buf, 0x21, 0x11, v4_block, 12, 12);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(px_proxy_parse(buf, k, &h, &err), 0);
}

/* The first byte decides which version, or that it is neither. */
static void
test_first_byte(void **state)
{
	struct px_proxy_hdr h;
	const char *err;

	for (int c = 0; c < 256; c++) {
		unsigned char b = (unsigned char)c;
		ssize_t r = px_proxy_parse(&b, 1, &h, &err);

		if (c == 'P' || c == 0x0d)
			assert_int_equal(r, 0);
		else
			assert_int_equal(r, -1);
	}
	assert_int_equal(px_proxy_parse((const unsigned char *)"", 0, &h, &err),
	                 0);
}

/*
 * Random mutations of valid headers: whatever the bytes, the answers on
 * growing prefixes are consistent (0 until decided, then one answer), and
 * an accepted header has the family its text says.
 */
static void
test_random_mutations(void **state)
{
	static const char *seeds[] = {
	    "PROXY TCP4 192.0.2.10 198.51.100.1 51234 25\r\n",
	    "PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 1 65535\r\n",
	    "PROXY UNKNOWN\r\n",
	};
	static const char alphabet[] = "0123456789abcdefABCDEF:. \r\nPXTU";
	unsigned accepted = 0;

	for (int iter = 0; iter < 20000; iter++) {
		const char *s = seeds[rng() % 3];
		unsigned char buf[128];
		size_t len = strlen(s);
		struct px_proxy_hdr h;
		const char *err;
		ssize_t r;

		memcpy(buf, s, len);
		for (int m = 1 + (int)(rng() % 3); m > 0; m--)
			buf[rng() % len] = (unsigned char)
			    alphabet[rng() % (sizeof(alphabet) - 1)];
		r = px_proxy_parse(buf, len, &h, &err);
		check_prefixes("mutation", buf, len, r, 0, &h);
		if (r > 0) {
			accepted++;
			if (!h.local)
				assert_int_equal(h.src.ss_family,
				                 buf[9] == '4' ? AF_INET
				                               : AF_INET6);
		}
	}
	assert_true(accepted > 100);
}

/* parse_v1_token - the answer on "PROXY fam tok ..." (complete: with the
 * rest of a valid header) or on "PROXY fam tok" alone */
static ssize_t
parse_v1_token(bool v6, const char *tok, bool complete)
{
	char buf[160];
	struct px_proxy_hdr h;
	const char *err;
	int n;

	if (complete)
		n = snprintf(buf, sizeof(buf), "PROXY %s %s %s 1 2\r\n",
		             v6 ? "TCP6" : "TCP4", tok, v6 ? "::1" : "1.2.3.4");
	else
		n = snprintf(buf, sizeof(buf), "PROXY %s %s",
		             v6 ? "TCP6" : "TCP4", tok);
	return px_proxy_parse((const unsigned char *)buf, (size_t)n, &h, &err);
}

/*
 * The incremental address validators against the C library: on random
 * tokens, a header is accepted exactly when inet_pton() takes its address
 * (glibc also refuses leading zeros in IPv4 octets).  And a token prefix
 * that answers 0 can still be completed into a valid address.
 */
static void
test_v1_addr_differential(void **state)
{
	static const char alpha6[] = "0123456789abcdefABCDEF:.::";
	static const char alpha4[] = "0123456789..";
	static const char *suffixes[] = {
	    "",
	    "0",
	    ":0",
	    "::",
	    "::0",
	    "0::",
	    "0.0.0",
	    ".0.0.0",
	    ".0.0",
	    ".0",
	    "::0.0.0.0",
	    ":0:0:0:0:0:0:0",
	    ":0:0:0:0:0:0",
	    ":0:0:0:0:0",
	    ":0:0:0:0",
	    ":0:0:0",
	    ":0:0",
	    "0:0:0:0:0:0:0",
	    ":0.0.0.0",
	    ":0:0.0.0.0",
	    ":0:0:0.0.0.0",
	    ":0:0:0:0.0.0.0",
	    ":0:0:0:0:0.0.0.0",
	    "0:0.0.0.0",
	};
	unsigned accepted = 0, prefixes = 0;

	for (int iter = 0; iter < 300000; iter++) {
		bool v6 = iter & 1;
		const char *al = v6 ? alpha6 : alpha4;
		size_t alen = strlen(al), n = 1 + rng() % (v6 ? 24 : 16);
		char tok[64];
		unsigned char bin[16];
		bool ref, mine;

		for (size_t k = 0; k < n; k++)
			tok[k] = al[rng() % alen];
		tok[n] = '\0';
		ref = inet_pton(v6 ? AF_INET6 : AF_INET, tok, bin) == 1;
		mine = parse_v1_token(v6, tok, true) > 0;
		if (ref != mine)
			fail_msg("%s token \"%s\": inet_pton %d, parser %d",
			         v6 ? "TCP6" : "TCP4", tok, ref, mine);
		accepted += mine;

		if (!v6 || parse_v1_token(true, tok, false) != 0)
			continue;
		prefixes++;
		for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]);
		     k++) {
			char full[128];

			snprintf(full, sizeof(full), "%s%s", tok, suffixes[k]);
			if (parse_v1_token(true, full, true) > 0)
				goto completed;
		}
		fail_msg("TCP6 prefix \"%s\" answers 0 but cannot complete",
		         tok);
	completed:;
	}
	assert_true(accepted > 1000);
	assert_true(prefixes > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1_table),
	    cmocka_unit_test(test_v1_too_long),
	    cmocka_unit_test(test_v2_proxy_tcp4),
	    cmocka_unit_test(test_v2_proxy_tcp6),
	    cmocka_unit_test(test_v2_local_and_others),
	    cmocka_unit_test(test_v2_tlvs),
	    cmocka_unit_test(test_v2_invalid),
	    cmocka_unit_test(test_first_byte),
	    cmocka_unit_test(test_random_mutations),
	    cmocka_unit_test(test_v1_addr_differential),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
