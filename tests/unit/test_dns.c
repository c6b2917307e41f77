/* SPDX-License-Identifier: MIT */
/*
 * test_dns.c - DNS list plumbing that needs no server: the query names
 * (RFC 5782 2.1 and 2.4) and the `codes` patterns of dnsbl lists as the
 * configuration loads them (postscreen's syntax), with their errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dns.h"
#include "dnsname.h"

static void
test_name_text(void **state)
{
	static const unsigned char ptr[] = "\4mail\7example\3com";
	static const unsigned char mx[] = "\0\012\2mx\4test";
	static const unsigned char odd[] = "\3a\"b\4test";
	static const unsigned char dotted[] = "\3a.b\4test";
	static const unsigned char spaced[] = "\3a b\4test";
	static const unsigned char root[] = "";
	static const unsigned char past[] = "\7example\011com";
	unsigned char long_label[70] = {64};
	char buf[64];

	(void)state;
	assert_int_equal(flt_dns_name_text(ptr, sizeof(ptr), 0,
	                                   FLT_DNS_NAME_HOST, buf, sizeof(buf)),
	                 0);
	assert_string_equal(buf, "mail.example.com");
	/* An MX RDATA: the name after the 2-byte preference. */
	assert_int_equal(flt_dns_name_text(mx, sizeof(mx), 2,
	                                   FLT_DNS_NAME_PRINTABLE, buf,
	                                   sizeof(buf)),
	                 0);
	assert_string_equal(buf, "mx.test");
	/* A quote is printable but no host-name byte. */
	assert_int_equal(flt_dns_name_text(odd, sizeof(odd), 0,
	                                   FLT_DNS_NAME_PRINTABLE, buf,
	                                   sizeof(buf)),
	                 0);
	assert_string_equal(buf, "a\"b.test");
	assert_int_equal(flt_dns_name_text(odd, sizeof(odd), 0,
	                                   FLT_DNS_NAME_HOST, buf, sizeof(buf)),
	                 -1);
	/* A dot or a space inside a label, the root, a label over 63
	 * bytes, a label running past the data, a small buffer. */
	assert_int_equal(flt_dns_name_text(dotted, sizeof(dotted), 0,
	                                   FLT_DNS_NAME_PRINTABLE, buf,
	                                   sizeof(buf)),
	                 -1);
	assert_int_equal(flt_dns_name_text(spaced, sizeof(spaced), 0,
	                                   FLT_DNS_NAME_PRINTABLE, buf,
	                                   sizeof(buf)),
	                 -1);
	assert_int_equal(flt_dns_name_text(root, sizeof(root), 0,
	                                   FLT_DNS_NAME_PRINTABLE, buf,
	                                   sizeof(buf)),
	                 -1);
	memset(long_label + 1, 'a', 64);
	assert_int_equal(flt_dns_name_text(long_label, sizeof(long_label), 0,
	                                   FLT_DNS_NAME_PRINTABLE, buf,
	                                   sizeof(buf)),
	                 -1);
	assert_int_equal(flt_dns_name_text(past, sizeof(past), 0,
	                                   FLT_DNS_NAME_PRINTABLE, buf,
	                                   sizeof(buf)),
	                 -1);
	assert_int_equal(
	    flt_dns_name_text(ptr, sizeof(ptr), 0, FLT_DNS_NAME_HOST, buf, 16),
	    -1);
	assert_int_equal(
	    flt_dns_name_text(ptr, sizeof(ptr), 0, FLT_DNS_NAME_HOST, buf, 17),
	    0);
}

static void
test_reverse_names(void **state)
{
	char buf[300];

	assert_int_equal(
	    flt_dns_reverse_name("192.0.2.99", "bl.test", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "99.2.0.192.bl.test");
	assert_int_equal(
	    flt_dns_reverse_name("127.0.0.2", NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2.0.0.127.in-addr.arpa");
	/* RFC 5782 2.4: the IPv6 test point ::FFFF:7F00:2 and a plain one. */
	assert_int_equal(
	    flt_dns_reverse_name("2001:db8::1", "bl.test", buf, sizeof(buf)),
	    0);
	assert_string_equal(buf, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	                         "0.0.8.b.d.0.1.0.0.2.bl.test");
	assert_int_equal(flt_dns_reverse_name("::1", NULL, buf, sizeof(buf)),
	                 0);
	assert_string_equal(buf, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	                         "0.0.0.0.0.0.0.0.0.0.ip6.arpa");
	assert_int_equal(
	    flt_dns_reverse_name("not-an-ip", "bl.test", buf, sizeof(buf)), -1);
	assert_int_equal(
	    flt_dns_reverse_name("2001:db8::1", "bl.test", buf, 20), -1);
	assert_int_equal(flt_dns_reverse_name("1.2.3.4", "bl.test", buf, 10),
	                 -1);
}

static char conf_path[64];

static struct px_config *
load(const char *dnsbl, char **err_r)
{
	FILE *f;
	struct px_config *cfg = NULL;

	snprintf(conf_path, sizeof(conf_path), "/tmp/mxg-test-dns-XXXXXX");
	int fd = mkstemp(conf_path);

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fprintf(f,
	        "listen = ( { address = \"127.0.0.1:1\"; } );\n"
	        "backend = \"127.0.0.1:2\";\n"
	        "spool = { dir = \"/tmp\"; };\n"
	        "dnsbl = (\n%s\n);\n",
	        dnsbl);
	fclose(f);
	*err_r = NULL;
	if (px_config_load(conf_path, &cfg, err_r) < 0)
		cfg = NULL;
	unlink(conf_path);
	return cfg;
}

static bool
in(const struct px_dnslist *l, unsigned p, int o, unsigned v)
{
	return (l->codes[p][o][v / 8] >> (v % 8)) & 1;
}

static void
test_codes(void **state)
{
	char *err;
	struct px_config *cfg =
	    load("{ zone = \"a.test\"; codes = \"127.0.0.[2..11], "
	         "127.0.1.[2;4;10..11]\"; },\n"
	         "{ zone = \"b.test\"; weight = -2.5; },\n"
	         "{ zone = \"c-d.test\"; symbol = \"MY_SYM\"; codes = "
	         "\"127.0.0.2\"; }",
	         &err);

	assert_non_null(cfg);
	assert_int_equal(cfg->ndnsbl, 3);
	const struct px_dnslist *a = &cfg->dnsbl[0];

	assert_int_equal(a->npatterns, 2);
	assert_true(in(a, 0, 0, 127) && !in(a, 0, 0, 126));
	assert_true(in(a, 0, 3, 2) && in(a, 0, 3, 11));
	assert_false(in(a, 0, 3, 1) || in(a, 0, 3, 12));
	assert_true(in(a, 1, 2, 1) && !in(a, 1, 2, 0));
	assert_true(in(a, 1, 3, 2) && in(a, 1, 3, 4) && in(a, 1, 3, 10) &&
	            in(a, 1, 3, 11));
	assert_false(in(a, 1, 3, 3) || in(a, 1, 3, 5) || in(a, 1, 3, 9));
	assert_string_equal(a->symbol, "RBL_A_TEST");
	assert_true(a->weight == 1.0);
	assert_int_equal(cfg->dnsbl[1].npatterns, 0); /* any 127/8 */
	assert_true(cfg->dnsbl[1].weight == -2.5);
	assert_string_equal(cfg->dnsbl[2].symbol, "MY_SYM");
	assert_string_equal(cfg->dnsbl[2].zone, "c-d.test");
	px_config_unref(&cfg);

	static const char *const bad[] = {
	    "{ zone = \"a.test\"; codes = \"127.0.0.[11..2]\"; }",
	    "{ zone = \"a.test\"; codes = \"127.0.0.256\"; }",
	    "{ zone = \"a.test\"; codes = \"127.0.0\"; }",
	    "{ zone = \"a.test\"; codes = \"127.0.0.[2..\"; }",
	    "{ zone = \"a.test\"; codes = \"\"; }",
	    "{ zone = \"a..test\"; }",
	    "{ zone = \"a.test\"; target = \"helo\"; }",
	    "{ weight = 1.0; }",
	    "{ zone = \"a.test\"; colour = \"red\"; }",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = load(bad[i], &err);
		assert_null(cfg);
		assert_non_null(err);
		/* FILE:LINE: the dnsbl entry is on line 5. */
		assert_non_null(strstr(err, ":5: "));
		free(err);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reverse_names),
	    cmocka_unit_test(test_name_text),
	    cmocka_unit_test(test_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
