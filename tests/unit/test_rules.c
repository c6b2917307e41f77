/* SPDX-License-Identifier: MIT */
/*
 * test_rules.c - the rule parser (every directive, every error with its
 * line number), the meta evaluator, rule matching on decoded messages and
 * SMTP-stage strings, and rule_set_load's file handling.
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

#include "mime.h"
#include "rule.h"
#include "rule_priv.h"

static struct rule_set *
load(const char *text)
{
	struct rule_set *set = rule_set_new();
	char *err = NULL;

	if (rule_set_parse(set, "t.rules", text, strlen(text), &err) < 0 ||
	    rule_set_finish(set, &err) < 0) {
		fprintf(stderr, "unexpected error: %s\n", err);
		fail();
	}
	return set;
}

/* Every error path: the text, and the "FILE:LINE: reason" start. */
static const struct {
	const char *text;
	const char *error;
} bad[] = {
    {"body\n", "t.rules:1: body: missing or too long rule name"},
    {"\nbody 1BAD /x/\n", "t.rules:2: body: bad rule name \"1BAD\""},
    {"body B\n", "t.rules:1: missing pattern"},
    {"body B x\n", "t.rules:1: pattern must start with / or m"},
    {"body B /abc\n", "t.rules:1: unterminated pattern (no closing /)"},
    {"body B /a(/\n", "t.rules:1: bad pattern at offset 2: missing closing"},
    {"body B /a/q\n", "t.rules:1: unknown pattern flag 'q'"},
    {"body B /a/ junk\n", "t.rules:1: unexpected text after pattern"},
    {"body B m{a}z\n", "t.rules:1: unknown pattern flag 'z'"},
    {"header H Subject\n", "t.rules:1: expected =~ or !~ after Subject"},
    {"header H\n", "t.rules:1: missing header name"},
    {"header H exists:\n", "t.rules:1: exists: needs a header name"},
    {"header H Subject =~ /x/ [if-unset: y\n",
     "t.rules:1: [if-unset: without ]"},
    {"header H Subject =~ /x/ extra\n",
     "t.rules:1: unexpected text after pattern"},
    {"meta M\n", "t.rules:1: meta: missing expression"},
    {"meta M (A && \n", "t.rules:1: meta M: unexpected end"},
    {"meta M A B\n", "t.rules:1: meta M: unexpected text"},
    {"meta M (A\n", "t.rules:1: meta M: missing )"},
    {"meta M A)\n", "t.rules:1: meta M: unbalanced )"},
    {"meta M A $ B\n", "t.rules:1: meta M: unexpected text"},
    {"score S\n", "t.rules:1: score takes 1 or 4 numbers"},
    {"score S 1 2\n", "t.rules:1: score takes 1 or 4 numbers"},
    {"score S 1 2 3 4 5\n", "t.rules:1: score takes 1 or 4 numbers"},
    {"score S one\n", "t.rules:1: score: \"one\" is not a number"},
    {"tflags T maxhits=0\n", "t.rules:1: bad maxhits \"0\""},
    {"tflags T maxhits=x\n", "t.rules:1: bad maxhits \"x\""},
    {"helo H /x/ drop\n",
     "t.rules:1: expected reject, tempfail or accept after the pattern"},
    {"helo H /x/ reject \"450 4.7.1 no\"\n",
     "t.rules:1: reply must start with a 5xx code"},
    {"helo H /x/ tempfail \"550 5.7.1 no\"\n",
     "t.rules:1: reply must start with a 4xx code"},
    {"helo H /x/ reject \"550 no\n", "t.rules:1: unterminated reply text"},
    {"mailfrom H /x/ accept \"250 ok\"\n",
     "t.rules:1: expected reject, tempfail or accept after the pattern"},
    {"endif\n", "t.rules:1: endif without if"},
    {"else\n", "t.rules:1: else without if"},
    {"body A /a/\nifplugin Foo\nbody B /b/\n", "t.rules:2: if without endif"},
    {"ifplugin\n", "t.rules:1: ifplugin needs a plugin name"},
    {"if (version >=\nendif\n", "t.rules:1: if: unexpected end"},
    {"if can(Foo\nendif\n", "t.rules:1: if: missing )"},
    {"meta A B\nmeta B C\nmeta C A\n", "t.rules:1: meta A depends on itself"},
    {"body B /a\0b/\n", "t.rules:1: NUL byte in line"},
};

static void
test_rules_errors(void **state)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rule_set *set = rule_set_new();
		char *err = NULL;
		/* the NUL case has its length past the NUL */
		size_t len = strlen(bad[i].text);
		int rc;

		if (strstr(bad[i].error, "NUL") != NULL)
			len = 13;
		rc = rule_set_parse(set, "t.rules", bad[i].text, len, &err);
		if (rc == 0)
			rc = rule_set_finish(set, &err);
		if (rc != -1 || err == NULL ||
		    strncmp(err, bad[i].error, strlen(bad[i].error)) != 0) {
			fprintf(stderr, "case %zu: want \"%s\", got \"%s\"\n",
			        i, bad[i].error, err ? err : "(none)");
			fail();
		}
		free(err);
		rule_set_free(&set);
		assert_null(set);
	}
}

static void
test_rules_directives(void **state)
{
	struct rule_set *set =
	    load("# a comment\n"
	         "header   H1 Subject =~ /viagra/i   # trailing comment\n"
	         "header   H2 From:addr =~ /\\@example\\.com$/\n"
	         "header   H3 exists:X-Spam\n"
	         "header   H4 X-Mailer !~ /outlook/ [if-unset: none]\n"
	         "header   H5 eval:check_for_missing_to_header()\n"
	         "header   H6 From:host =~ /x/\n"
	         "mimeheader MH Content-Type =~ /\\.exe/i\n"
	         "body     B1 /buy now/i\n"
	         "body     B2 eval:check_stock_info()\n"
	         "rawbody  R1 m{<font}i\n"
	         "uri      U1 m!bit\\.ly/!\n"
	         "full     F1 /^Received:/m\n"
	         "meta     M1 (H1 && B1) || !H3\n"
	         "connect  C1 /^unknown\\[/ tempfail\n"
	         "helo     HE1 /^localhost$/i reject \"550 5.7.1 go away\"\n"
	         "mailfrom MF1 /@spam\\.example$/ reject\n"
	         "rcptto   RT1 /^postmaster@/ accept\n"
	         "score    H1 2.5\n"
	         "score    B1 1 2 3 4\n"
	         "score    B9 1.0\n"
	         "score    U1 (3.0)\n"
	         "describe H1 Subject mentions pills\n"
	         "tflags   B1 multiple maxhits=3 nice learn\n"
	         "lang     de describe H1 Betreff\n"
	         "report   _SUMMARY_\n"
	         "loadplugin Mail::SpamAssassin::Plugin::Foo\n"
	         "ifplugin Mail::SpamAssassin::Plugin::Bar\n"
	         "body     B3 /in plugin/\n"
	         "endif\n"
	         "if (version >= 3.004000)\n"
	         "body     B4 /new/\n"
	         "else\n"
	         "body     B5 /old/\n"
	         "endif\n"
	         "if !can(Mail::SpamAssassin::Conf::feature_x)\n"
	         "body     B6 /never/\n"
	         "endif\n"
	         "if (version < 3.0)\n"
	         "if (1)\n"
	         "body     B7 /nested never/\n"
	         "endif\n"
	         "endif\n"
	         "body     B8 /first/\n"
	         "body     B8 /second/\n");
	char sum[512];
	const char *reply;

	assert_int_equal(rule_set_count(set, RULE_HEADER), 5);
	assert_int_equal(rule_set_count(set, RULE_BODY), 4);
	assert_int_equal(rule_set_count(set, RULE_RAWBODY), 1);
	assert_int_equal(rule_set_count(set, RULE_URI), 1);
	assert_int_equal(rule_set_count(set, RULE_FULL), 1);
	assert_int_equal(rule_set_count(set, RULE_META), 1);
	assert_int_equal(rule_set_count(set, RULE_CONNECT), 1);
	assert_int_equal(rule_set_count(set, RULE_HELO), 1);
	assert_int_equal(rule_set_count(set, RULE_MAILFROM), 1);
	assert_int_equal(rule_set_count(set, RULE_RCPTTO), 1);
	assert_int_equal(rule_set_skipped(set, RULE_SKIP_EVAL), 2);
	assert_int_equal(rule_set_skipped(set, RULE_SKIP_UNSUPPORTED), 1);
	assert_int_equal(rule_set_skipped(set, RULE_SKIP_LANG), 1);
	assert_int_equal(rule_set_skipped(set, RULE_SKIP_DIRECTIVE), 1);
	rule_set_summary(set, sum, sizeof(sum));
	assert_string_equal(
	    sum, "17 rules loaded (header 5, body 4, rawbody 1, uri 1, full 1, "
	         "meta 1, connect 1, helo 1, mailfrom 1, rcptto 1); 5 "
	         "skipped (eval 2, unknown directive 1, unsupported form 1, "
	         "lang 1)");
	assert_true(rule_find(set, "B3") >= 0);
	assert_true(rule_find(set, "B4") >= 0);
	assert_true(rule_find(set, "B5") < 0);
	assert_true(rule_find(set, "B6") < 0);
	assert_true(rule_find(set, "B7") < 0);
	assert_true(rule_find(set, "B9") < 0); /* scored, never defined */
	assert_true(rule_find(set, "H5") < 0);
	assert_true(rule_find(set, "H6") < 0);
	long h1 = rule_find(set, "H1"), b1 = rule_find(set, "B1");

	assert_true(h1 >= 0 && b1 >= 0);
	assert_true(rule_score(set, (size_t)h1, false) == 2.5);
	assert_true(rule_score(set, (size_t)b1, false) == 1);
	assert_true(rule_score(set, (size_t)b1, true) == 2);
	assert_true(rule_score(set, (size_t)rule_find(set, "U1"), false) == 3);
	assert_true(rule_score(set, (size_t)rule_find(set, "B3"), false) == 1);
	assert_string_equal(rule_describe(set, (size_t)h1),
	                    "Subject mentions pills");
	assert_int_equal(
	    rule_smtp_action(set, (size_t)rule_find(set, "HE1"), &reply),
	    RULE_ACTION_REJECT);
	assert_string_equal(reply, "550 5.7.1 go away");
	assert_int_equal(
	    rule_smtp_action(set, (size_t)rule_find(set, "MF1"), &reply),
	    RULE_ACTION_REJECT);
	assert_null(reply);
	assert_int_equal(
	    rule_smtp_action(set, (size_t)rule_find(set, "C1"), NULL),
	    RULE_ACTION_TEMPFAIL);
	assert_int_equal(
	    rule_smtp_action(set, (size_t)rule_find(set, "RT1"), NULL),
	    RULE_ACTION_ACCEPT);
	rule_set_free(&set);
}

static unsigned
hits_of(struct rule_set *set, struct rule_run *run, const char *name)
{
	long i = rule_find(set, name);

	if (i < 0) {
		fprintf(stderr, "no rule %s\n", name);
		fail();
	}
	return rule_run_count(run, (size_t)i);
}

static void
test_rules_match_message(void **state)
{
	struct rule_set *set =
	    load("header SUBJ Subject =~ /caf\\x{c3}\\x{a9}/\n"
	         "header SUBJ_RAW Subject:raw =~ /=\\?utf-8\\?/i\n"
	         "header FROM_ADDR From:addr =~ /^bob\\@example\\.org$/m\n"
	         "header FROM_NAME From:name =~ /^Bob Smith$/m\n"
	         "header TOCC ToCc =~ /carol/\n"
	         "header ALLH ALL =~ /^X-Tag: yes$/m\n"
	         "header HAS_TAG exists:X-Tag\n"
	         "header NO_LIST exists:List-Id\n"
	         "header NOT_OUTLOOK X-Mailer !~ /outlook/i\n"
	         "header UNSET X-Nothing =~ /^def$/ [if-unset: def]\n"
	         "header ENVFROM EnvelopeFrom =~ /bounce\\@/\n"
	         "mimeheader ATT Content-Type =~ /name=\"?[^\"]*\\.exe/i\n"
	         "body   BODY_PARA /^Second paragraph here\\.$/\n"
	         "body   BODY_SUBJ /^caf/\n"
	         "body   BODY_HTML /click me now/\n"
	         "body   MULTI /money/\n"
	         "tflags MULTI multiple maxhits=2\n"
	         "body   NOSUBJ /caf/\n"
	         "tflags NOSUBJ nosubject\n"
	         "body   NOSCRIPT /evilscript/\n"
	         "rawbody RAW_HTML /<b>click/\n"
	         "uri    URI_HREF m{^https://bit\\.ly/abc$}\n"
	         "uri    URI_WWW m{^http://www\\.example\\.net}\n"
	         "full   FULL /^X-Tag: yes\\r?$/m\n"
	         "meta   META_AND SUBJ && BODY_HTML\n"
	         "meta   META_SUM (SUBJ + FROM_ADDR + NO_LIST) > 1\n"
	         "meta   META_COUNT MULTI > 1\n"
	         "meta   META_META META_AND && !NO_LIST\n"
	         "meta   META_UNKNOWN SUBJ && EVAL_RULE_WE_SKIPPED\n");
	const char *text =
	    "Received: from x\r\n"
	    "From: \"Bob Smith\" <bob@example.org>\r\n"
	    "To: alice@example.org\r\n"
	    "Cc: carol@example.org\r\n"
	    "X-Tag: yes\r\n"
	    "Subject: =?utf-8?q?caf=C3=A9?= time\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
	    "\r\n"
	    "--XX\r\n"
	    "Content-Type: multipart/alternative; boundary=YY\r\n"
	    "\r\n"
	    "--YY\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "\r\n"
	    "First paragraph money money money.\r\n"
	    "\r\n"
	    "Second   paragraph\r\n here.\r\n"
	    "--YY\r\n"
	    "Content-Type: text/html\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    /* <p><b>click</b> me now <a href="https://bit.ly/abc">x</a>
	     * <script>evilscript</script> www.example.net</p> */
	    "PHA+PGI+Y2xpY2s8L2I+"
	    "IG1lIG5vdyA8YSBocmVmPSJodHRwczovL2JpdC5seS9h\r\n"
	    "YmMiPng8L2E+IDxzY3JpcHQ+"
	    "ZXZpbHNjcmlwdDwvc2NyaXB0PiB3d3cuZXhhbXBs\r\n"
	    "ZS5uZXQ8L3A+\r\n"
	    "--YY--\r\n"
	    "--XX\r\n"
	    "Content-Type: application/octet-stream; name=\"setup.exe\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "TVqQAAMAAAAEAAAA\r\n"
	    "--XX--\r\n";
	struct rule_msg *msg = rule_msg_parse(text, strlen(text), false);
	struct rule_run *run = rule_run_new(set);

	rule_run_message(run, msg, "bounce@example.org");
	static const char *const want_hit[] = {
	    "SUBJ",       "SUBJ_RAW",  "FROM_ADDR",   "FROM_NAME", "TOCC",
	    "ALLH",       "HAS_TAG",   "NOT_OUTLOOK", "UNSET",     "ENVFROM",
	    "ATT",        "BODY_PARA", "BODY_SUBJ",   "BODY_HTML", "RAW_HTML",
	    "URI_HREF",   "URI_WWW",   "FULL",        "META_AND",  "META_SUM",
	    "META_COUNT", "META_META", NULL};
	static const char *const want_miss[] = {"NO_LIST", "NOSUBJ", "NOSCRIPT",
	                                        "META_UNKNOWN", NULL};

	for (int i = 0; want_hit[i]; i++)
		if (hits_of(set, run, want_hit[i]) == 0) {
			fprintf(stderr, "%s should hit\n", want_hit[i]);
			fail();
		}
	for (int i = 0; want_miss[i]; i++)
		if (hits_of(set, run, want_miss[i]) != 0) {
			fprintf(stderr, "%s should not hit\n", want_miss[i]);
			fail();
		}
	/* multiple with maxhits=2: three matches count 2 */
	assert_int_equal(hits_of(set, run, "MULTI"), 2);
	assert_int_equal(hits_of(set, run, "MIME_BAD_BASE64"), 0);
	rule_run_free(&run);
	rule_msg_free(&msg);
	rule_set_free(&set);
}

static void
test_rules_smtp(void **state)
{
	struct rule_set *set =
	    load("helo HELO_IP /^\\[?\\d+\\.\\d+\\.\\d+\\.\\d+\\]?$/\n"
	         "helo HELO_LOCAL /^localhost/i reject\n"
	         "helo HELO_TEMP /^temp/ tempfail \"451 4.7.1 later\"\n"
	         "connect GOOD /^mx\\.good\\.example\\[/ accept\n"
	         "mailfrom NULLS /^$/\n"
	         "rcptto TRAP /^trap@/ reject \"550 5.1.1 no such user\"\n"
	         "meta   IP_AND_NULL HELO_IP && NULLS\n");
	struct rule_run *run = rule_run_new(set);
	size_t idx = 0;
	const char *reply;

	assert_int_equal(rule_run_smtp(run, RULE_HELO, "1.2.3.4", &idx),
	                 RULE_ACTION_NONE);
	assert_int_equal(hits_of(set, run, "HELO_IP"), 1);
	assert_int_equal(rule_run_smtp(run, RULE_HELO, "LOCALHOST", &idx),
	                 RULE_ACTION_REJECT);
	assert_string_equal(rule_name(set, idx), "HELO_LOCAL");
	assert_int_equal(rule_run_smtp(run, RULE_HELO, "tempo", &idx),
	                 RULE_ACTION_TEMPFAIL);
	rule_smtp_action(set, idx, &reply);
	assert_string_equal(reply, "451 4.7.1 later");
	assert_int_equal(rule_run_smtp(run, RULE_CONNECT,
	                               "mx.good.example[192.0.2.1]", &idx),
	                 RULE_ACTION_ACCEPT);
	assert_int_equal(rule_run_smtp(run, RULE_MAILFROM, "", &idx),
	                 RULE_ACTION_NONE);
	assert_int_equal(
	    rule_run_smtp(run, RULE_RCPTTO, "trap@example.org", &idx),
	    RULE_ACTION_REJECT);
	rule_run_metas(run);
	assert_int_equal(hits_of(set, run, "IP_AND_NULL"), 1);
	rule_run_reset(run);
	assert_int_equal(hits_of(set, run, "HELO_IP"), 0);
	rule_run_free(&run);
	rule_set_free(&set);
}

/* SpamAssassin compatibility: ReplaceTags, MESSAGEID, metas naming
 * skipped rules, the pseudo-headers we do not build. */
static void
test_rules_sa_compat(void **state)
{
	struct rule_set *set =
	    load("replace_tag   V  (?:v|\\\\/)\n"
	         "replace_tag   I  [i1!]\n"
	         "replace_tag   VI <V><I>\n"
	         "replace_inter W1 \\W?\n"
	         "replace_post  P2 {1,2}\n"
	         "body     PILL /<inter W1><V><I>agra/i\n"
	         "body     NESTED /<VI>x/\n"
	         "body     DOUBLE /<post P2><V>x/\n"
	         "body     PLAIN /<V>/\n"
	         "replace_rules PILL DOUBLE NESTED\n"
	         "header   SHORT_ID MESSAGEID =~ /^<.{1,4}\\@/\n"
	         "header   RELAYS X-Spam-Relays-Untrusted =~ /x/\n"
	         "header   __EVALD eval:check_something()\n"
	         "body     __WORD /word/\n"
	         "meta     NEEDS_EVAL __WORD && !__EVALD\n"
	         "meta     NEEDS_NEEDS NEEDS_EVAL || __WORD\n"
	         "meta     FINE __WORD\n");
	const char *text = "Message-Id: <ab@x>\r\nSubject: s\r\n\r\n"
	                   "cheap v-1agra, vvx, v1x word\r\n";
	struct rule_msg *msg = rule_msg_parse(text, strlen(text), false);
	struct rule_run *run = rule_run_new(set);
	char sum[512];

	rule_run_message(run, msg, NULL);
	assert_int_equal(hits_of(set, run, "PILL"), 1);
	assert_int_equal(hits_of(set, run, "DOUBLE"), 1);
	assert_int_equal(hits_of(set, run, "NESTED"), 1);
	assert_int_equal(hits_of(set, run, "PLAIN"), 0); /* not listed */
	assert_int_equal(hits_of(set, run, "SHORT_ID"), 1);
	assert_true(rule_find(set, "RELAYS") < 0);
	assert_int_equal(hits_of(set, run, "FINE"), 1);
	/* Metas naming skipped rules are disabled, also through metas. */
	assert_true(rule_partial(set, (size_t)rule_find(set, "NEEDS_EVAL")));
	assert_true(rule_partial(set, (size_t)rule_find(set, "NEEDS_NEEDS")));
	assert_int_equal(hits_of(set, run, "NEEDS_EVAL"), 0);
	assert_int_equal(hits_of(set, run, "NEEDS_NEEDS"), 0);
	rule_set_summary(set, sum, sizeof(sum));
	assert_string_equal(
	    sum, "9 rules loaded (header 1, body 5, meta 3), 2 metas "
	         "disabled (they name skipped rules); 2 skipped "
	         "(eval 1, unsupported form 1)");
	rule_run_free(&run);
	rule_msg_free(&msg);
	rule_set_free(&set);
}

/* The literal prefilter never hides a match: patterns whose fixed part
 * is around quantifiers, classes, escapes, groups and inline flags. */
static void
test_rules_literal_prefilter(void **state)
{
	static const struct {
		const char *rule;
		const char *text;
		unsigned hits;
	} cases[] = {
	    {"/colou?r/", "what colour", 1},
	    {"/colou?r/", "what color", 1},
	    {"/fo+bar/", "fooobar", 1},
	    {"/a{2}bcd/", "aabcd", 1},
	    {"/(?i)FOO bar/", "foo BAR", 1},
	    {"/x(?i)foo/", "xFOO", 1},
	    {"/foo|barbaz/", "barbaz", 1},
	    {"/\\x41BCD/", "ABCD", 1},
	    {"/\\.com\\b/", "example.com now", 1},
	    {"/[abc]def+/i", "ADEFFF", 1},
	    {"/(?:ab)+cdef/", "ababcdef", 1},
	    {"/\\/path\\-x/", "a /path-x b", 1},
	    {"/^second para$/", "first\r\n\r\nsecond para\r\n", 1},
	    {"/nowhere to be seen/", "other text", 0},
	    {"/NoCase/i", "NOCASE", 1},
	    {"/CaSe/", "case", 0},
	    /* no literal: the joined-text check where it is safe */
	    {"/\\d\\d-\\d\\d/", "12-34", 1},
	    {"/\\d\\d-\\d\\d/", "12 34", 0},
	    {"/^\\w+ \\w+$/", "one two", 1},
	    {"/b(?!\\s)/", "zzz ab", 1},
	    {"/(?<!\\s)q/", "q", 1},
	    {"/[a-z]++q/", "abq", 0},
	    {"/\\w\\.\\w/m", "x.y", 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256], msgtext[512];
		struct rule_set *set;
		struct rule_run *run;
		struct rule_msg *msg;

		snprintf(text, sizeof(text), "body R %s\nrawbody RAW %s\n",
		         cases[i].rule, cases[i].rule);
		set = load(text);
		snprintf(msgtext, sizeof(msgtext), "Subject: s\r\n\r\n%s\r\n",
		         cases[i].text);
		msg = rule_msg_parse(msgtext, strlen(msgtext), false);
		run = rule_run_new(set);
		rule_run_message(run, msg, NULL);
		if (hits_of(set, run, "R") != cases[i].hits ||
		    (strchr(cases[i].rule, '^') == NULL &&
		     hits_of(set, run, "RAW") != cases[i].hits)) {
			fprintf(stderr, "case %zu: %s on \"%s\"\n", i,
			        cases[i].rule, cases[i].text);
			fail();
		}
		rule_run_free(&run);
		rule_msg_free(&msg);
		rule_set_free(&set);
	}
}

/* rule_exist_src: the leading optional items of a pattern cut (and of
 * the first copy of a repeated group); refused where the cut could
 * change which strings match. */
static void
test_rules_exist(void **state)
{
	static const struct {
		const char *src;
		const char *want; /* NULL: refused, left as written */
	} cases[] = {
	    {"(?:your\\s)?(?:full\\s|valid\\s){0,3}name", "name"},
	    {"a?b*[cd]{0,2}x+y", "x+y"},
	    {"(?:(?:your\\s)?(?:name|city)[,\\s]){3}",
	     "(?:(?:name|city)[,\\s])(?:(?:your\\s)?(?:name|city)[,\\s]){2}"},
	    {"(x?yz)+", "(?:yz)(x?yz){0,}"},
	    {"(?:x?yz){1,4}w", "(?:yz)(?:x?yz){0,3}w"},
	    {"(?:x?y){2,}?z", "(?:y)(?:x?y){1,}?z"},
	    /* into each branch, and into the group first in a branch */
	    {"(?:your\\s)?name|(?:my\\s)?city", "name|city"},
	    {"(?:(?:a\\s)?b|c)d", "(?:b|c)d"},
	    {"a?|b", "|b"},
	    {"abc", NULL},
	    {"a?b*", NULL},
	    {"(?=ab)x?c", NULL},
	    {"(?>x?y)z", NULL},
	    {"(a)?\\1b", NULL},
	    {"(?i)x?abc", NULL},
	    {"(?<n>x)?abc", NULL},
	    {"x?+abc", NULL},
	    {"(?:x?y)++z", NULL},
	    {"(*UTF)x?abc", NULL},
	    {"\\Gx?abc", NULL},
	    {"(?#c(ment)x?abc", NULL},
	    {"\\x{41}?bc", "bc"},
	    {"\\x41?bc", NULL},
	    {"[a)?]?(?:b|\\))c", "(?:b|\\))c"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e = rule_exist_src(cases[i].src, 0);

		if (cases[i].want == NULL
		        ? e != NULL
		        : e == NULL || strcmp(e, cases[i].want) != 0) {
			fprintf(stderr, "case %zu: %s -> %s\n", i, cases[i].src,
			        e ? e : "(none)");
			fail();
		}
		free(e);
	}
	assert_null(rule_exist_src("x?abc", PCRE2_EXTENDED));
	(void)state;
}

/* A rule that counts one match runs its cut pattern, a rule with tflags
 * multiple the pattern as written: the same hits either way. */
static void
test_rules_exist_hits(void **state)
{
	struct rule_set *set =
	    load("body E1 /(?:(?:your\\s)?(?:name|city)[,\\s]){3}/i\n"
	         "body E2 /(?:copy\\sof\\s)?(?:your\\s)?password:?\\s*$/\n"
	         "body E3 /(?:(?:your\\s)?(?:name|city)[,\\s]){3}/i\n"
	         "tflags E3 multiple\n"
	         "body E4 /(?:a\\s)?(?:b\\s)?zzz/\n");
	static const char msgtext[] =
	    "Subject: s\r\n\r\n"
	    "send your name, your city, name and more\r\n\r\n"
	    "a copy of your password:\r\n\r\n"
	    "name city name city name city town\r\n";
	struct rule_msg *msg = rule_msg_parse(msgtext, strlen(msgtext), false);
	struct rule_run *run = rule_run_new(set);

	rule_run_message(run, msg, NULL);
	assert_int_equal(hits_of(set, run, "E1"), 1);
	assert_int_equal(hits_of(set, run, "E2"), 1);
	assert_int_equal(hits_of(set, run, "E3"), 2);
	assert_int_equal(hits_of(set, run, "E4"), 0);
	rule_run_free(&run);
	rule_msg_free(&msg);
	rule_set_free(&set);
	(void)state;
}

/* Header rules skip PCRE2 where none of their literals is in the header
 * text (lower-cased once per header for /i): the same hits, negated
 * rules included. */
static void
test_rules_header_literal(void **state)
{
	struct rule_set *set =
	    load("header H_LIT Subject =~ /cheap meds/i\n"
	         "header H_NEG Subject !~ /meeting/\n"
	         "header H_NEG2 Subject !~ /CHEAP/\n"
	         "header H_CASE Subject =~ /cheap/\n"
	         "header H_CASE2 Subject =~ /(?i)now\\b/\n"
	         "header H_UNSET X-Missing =~ /^unset$/ [if-unset: unset]\n"
	         "header H_ADDR From:addr =~ /\\@evil\\.example$/\n"
	         "header H_TWO Received =~ /second hop/\n"
	         "header H_ALL ALL =~ /^received: from second/im\n");
	static const char msgtext[] = "Received: from first hop\r\n"
	                              "Received: from second hop\r\n"
	                              "From: Name <a@evil.example>\r\n"
	                              "Subject: CHEAP MEDS NOW\r\n\r\nbody\r\n";
	struct rule_msg *msg = rule_msg_parse(msgtext, strlen(msgtext), false);
	struct rule_run *run = rule_run_new(set);
	static const struct {
		const char *name;
		unsigned hits;
	} want[] = {
	    {"H_LIT", 1},  {"H_NEG", 1},   {"H_NEG2", 0},
	    {"H_CASE", 0}, {"H_CASE2", 1}, {"H_UNSET", 1},
	    {"H_ADDR", 1}, {"H_TWO", 1},   {"H_ALL", 1},
	};

	rule_run_message(run, msg, NULL);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (hits_of(set, run, want[i].name) != want[i].hits) {
			fprintf(stderr, "%s: %u hits\n", want[i].name,
			        hits_of(set, run, want[i].name));
			fail();
		}
	rule_run_free(&run);
	rule_msg_free(&msg);
	rule_set_free(&set);
	(void)state;
}

/* URI rules get the literal check and the one call on the URIs joined by
 * "\n" that body rules get: the same hits, counted per URI. */
static void
test_rules_uri_literal(void **state)
{
	struct rule_set *set = load("uri U_LIT /evil\\.example\\/[a-z]/\n"
	                            "tflags U_LIT multiple\n"
	                            "uri U_CASE /EVIL\\.EXAMPLE\\/b/i\n"
	                            "uri U_ANCHOR /^http:\\/\\/good\\./\n"
	                            "uri U_END /\\/c$/\n"
	                            "uri U_NOLIT /\\d{3}\\.\\d/\n"
	                            "uri U_NONE /absent\\.example/\n");
	static const char msgtext[] =
	    "Subject: s\r\n\r\n"
	    "see http://evil.example/a and http://good.example/c\r\n"
	    "and http://evil.example/b too\r\n";
	struct rule_msg *msg = rule_msg_parse(msgtext, strlen(msgtext), false);
	struct rule_run *run = rule_run_new(set);

	assert_true(msg->nuris >= 3);
	rule_run_message(run, msg, NULL);
	assert_int_equal(hits_of(set, run, "U_LIT"), 2);
	assert_int_equal(hits_of(set, run, "U_CASE"), 1);
	assert_int_equal(hits_of(set, run, "U_ANCHOR"), 1);
	assert_int_equal(hits_of(set, run, "U_END"), 1);
	assert_int_equal(hits_of(set, run, "U_NOLIT"), 0);
	assert_int_equal(hits_of(set, run, "U_NONE"), 0);
	rule_run_free(&run);
	rule_msg_free(&msg);
	rule_set_free(&set);
	(void)state;
}

/* The multi-pattern prefilter (rules/prefilter.c) changes no result: each
 * case with it and without it, with the expected hit count.  Literal sets
 * that overlap, case, literals at the ends of a paragraph, patterns it
 * rewrites (lookarounds, counted repeats, literal braces) and refuses. */
static void
test_rules_multi_prefilter(void **state)
{
	static const struct {
		const char *rule;
		const char *text;
		unsigned hits;
	} cases[] = {
	    {"/abcab/", "xxabcabcabyy", 1},
	    {"/abcab/", "abcacab", 0},
	    {"/bcabc/", "abcabcab", 1},
	    {"/free offer/i", "A FREE Offer", 1},
	    {"/Free Offer/", "a free offer", 0},
	    {"/(?i)free offer/", "FREE OFFER", 1},
	    {"/starts/", "starts the paragraph", 1},
	    {"/ends/", "the paragraph ends", 1},
	    {"/^exact$/", "exact", 1},
	    {"/^exact$/", "not exact", 0},
	    {"/[a-z]{3}\\d{2,}[A-Z]/", "abc123X", 1},
	    {"/[a-z]{3}\\d{2,}[A-Z]/", "abc1X", 0},
	    {"/(?!foo)[fg]o{2}\\w/", "fooa", 0},
	    {"/(?!foo)[fg]o{2}\\w/", "gooa", 1},
	    {"/(?<![a-z])x{2,3}y/i", "XXY", 1},
	    {"/(?<![a-z])x{2,3}y/i", "axxy", 0},
	    {"/(?:ab|cd){3}e/", "abcdabe", 1},
	    {"/(?:ab|cd){3}e/", "abcde", 0},
	    {"/\\d{20,40}/", "12345678901234567890", 1},
	    {"/\\d{20,40}/", "1234567890123456789", 0},
	    {"/a{,2}b/", "a{,2}b", 1},
	    {"/a{,2}b/", "aab", 0},
	    {"/x{3/", "x{3", 1},
	    {"/x\\Q*+/", "ax*+b", 1},
	    {"/x\\Q*+/", "xx", 0},
	    {"/[]{}]{2}[^]a]q/", "{]bq", 1},
	    {"/(\\w)\\1\\1/", "zzz", 1},
	    {"/(\\w)\\1\\1/", "zyz", 0},
	    {"/[\\xe0-\\xef][\\x80-\\xbf]{2}/", "caf\xe2\x82\xac", 1},
	    {"/\\bon\\b.\\bto\\b/", "go on to", 1},
	    {"/\\bon\\b.\\bto\\b/", "gone to", 0},
	    {"/a b (?=c) c/x", "abc", 1},
	    /* rule_widen: look-alike letters, inline options, a negative
	     * lookahead (joined text), a long repeated group */
	    {"/(?!lot)(?:[lL1]|\\xc4[\\xb9-\\xbf]|&\\#108;)"
	     "(?:[oO0]|\\xc3[\\xb2-\\xb6]|&\\#111;)(?:[tT7]|&\\#116;)s/i",
	     "many l0ts of", 1},
	    {"/(?!lot)(?:[lL1]|\\xc4[\\xb9-\\xbf]|&\\#108;)"
	     "(?:[oO0]|\\xc3[\\xb2-\\xb6]|&\\#111;)(?:[tT7]|&\\#116;)s/i",
	     "many lots of", 0},
	    {"/(?!lot)(?:[lL1]|\\xc4[\\xb9-\\xbf]|&\\#108;)"
	     "(?:[oO0]|\\xc3[\\xb2-\\xb6]|&\\#111;)(?:[tT7]|&\\#116;)s/i",
	     "many &#108;\xc3\xb3ts", 1},
	    /* under 16 bits: a database of its own, string by string */
	    {"/q\\d\\d/", "aq12b", 1},
	    {"/q\\d\\d/", "q1x q2", 0},
	    /* an end of string: the "\\n" after it, joined or alone */
	    {"/blank[\\s:;]{2,}$/", "name: blank ::", 1},
	    {"/blank[\\s:;]{2,}$/", "blank :: name", 0},
	    {"/\\s\\d$/", "version 2", 1},
	    {"/\\s\\d$/", "version 2 x", 0},
	    {"/(?:cd$|ef)gh|ab(?:cd\\z|ef)/", "xabcd", 1},
	    {"/(?:cd$|ef)gh|ab(?:cd\\z|ef)/", "abcdgh", 0},
	    /* a negated class keeps the bytes over 0x7f */
	    {"/[^\\s>](?:<![^>]*>)+[^\\s<]/", "\xe9<!-- x -->\xe9", 1},
	    {"/[^[:alpha:]]q[^\\w]/", "\xe9q\xe9", 1},
	    {"/ab(?-i:C)de/i", "ABCDE", 1},
	    {"/ab(?-i:C)de/i", "abcde", 0},
	    {"/(?!freebie)free\\w{3}\\b/i", "a freebie", 0},
	    {"/(?!freebie)free\\w{3}\\b/i", "a freeway", 1},
	    {"/(?:(?:name|city|phone|address|country|zip|email)[,:;]?\\s?"
	     "(?:and|or|&)?\\s?){3}/i",
	     "your name, city and phone", 1},
	    {"/(?:(?:name|city|phone|address|country|zip|email)[,:;]?\\s?"
	     "(?:and|or|&)?\\s?){3}/i",
	     "your name is in the city of zip", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256], msgtext[512];
		struct rule_set *set;
		struct rule_msg *msg;

		snprintf(text, sizeof(text), "body R %s\nrawbody RAW %s\n",
		         cases[i].rule, cases[i].rule);
		set = load(text);
		snprintf(msgtext, sizeof(msgtext),
		         "Subject: s\r\n\r\n%s\r\n\r\nmore text\r\n",
		         cases[i].text);
		msg = rule_msg_parse(msgtext, strlen(msgtext), false);
		for (int on = 0; on < 2; on++) {
			struct rule_run *run = rule_run_new(set);

			rule_run_set_prefilter(run, on);
			rule_run_message(run, msg, NULL);
			if (hits_of(set, run, "R") != cases[i].hits ||
			    hits_of(set, run, "RAW") != cases[i].hits) {
				fprintf(stderr,
				        "case %zu (prefilter %s): %s "
				        "on \"%s\"\n",
				        i, on ? "on" : "off", cases[i].rule,
				        cases[i].text);
				fail();
			}
			rule_run_free(&run);
		}
		rule_msg_free(&msg);
		rule_set_free(&set);
	}
}

/* rule_widen: what the prefilter gets for a pattern.  Anchors, word
 * boundaries and lookarounds dropped, case as byte sets, long repeats and
 * repeated groups opened, look-alike alternations merged position by
 * position; refused: backreferences, and patterns too broad to filter. */
static void
test_rules_widen(void **state)
{
	static const struct {
		const char *src;
		uint32_t opts;
		const char *want; /* NULL: refused */
		unsigned merged;
	} cases[] = {
	    {"^foo\\b(?=x)bar$", 0, "foobar\\x0a", 0},
	    {"a{2}b{20,}xyz", 0, "a{2}b{16,}xyz", 0},
	    {"(?:abc){3}d", 0, "(?:abc)+d", 0},
	    /* a group that is one byte once its lookahead is gone repeats
	     * as a byte, with its count */
	    {"q(?:(?!--)[-0-9a-f]){10,64}z", 0, "q[\\x2d0-9a-f]{10,}z", 0},
	    {"(?:(?:ab)){2}", 0, "(?:ab)+", 0},
	    /* an end of string is the "\\n" after it, once a match */
	    {"foo\\s*$", 0, "foo[\\x09-\\x0d\\x20]{0,}\\x0a", 0},
	    {"foo$$", 0, "foo", 0},
	    {"(?:foo$|bar)\\z", 0, "(?:foo|bar)", 0},
	    {"(?:foo|bar)\\Z", 0, "(?:foo|bar)\\x0a", 0},
	    /* optional stays optional: (?:...)* would let one match run on
	     * over any number of words (Hyperscan's automaton kept alive) */
	    {"the(?:\\s\\w{1,20})?\\sclaim", 0,
	     "the(?:[\\x09-\\x0d\\x20][0-9A-Z\\x5fa-z]{1,})?[\\x09-\\x0d\\x20]"
	     "claim",
	     0},
	    {"Ab(?-i:C)d", PCRE2_CASELESS, "[Aa][Bb]C[Dd]", 0},
	    {"x(?i)yz", 0, "x[Yy][Zz]", 0},
	    {"(\\w)\\1\\1", 0, NULL, 0},
	    {"\\S+", 0, NULL, 0},
	    {"abc[^\\p{L}]def", 0, NULL, 0},
	    {"(?!lot)lo[t7]s", 0, "lo[7t]s", 0},
	    {"q(?:[aA@]|\\xc3[\\xa0-\\xa5]|\\xc4[\\x80-\\x85]|\\xe1\\xba[\\xa0-"
	     "\\xb7]|"
	     "&\\#(?:97|x61|1072);)(?:[bB8]|\\xc3\\x9f|\\xce[\\x92\\xb2]|\\xd0["
	     "\\x91\\xb2]|"
	     "&\\#(?:98|x62);)",
	     0,
	     "q(?:(?:[\\x40Aa]|[\\xc3\\xc4][\\x80-\\x85\\xa0-\\xa5]|\\xe1\\xba["
	     "\\xa0-"
	     "\\xb7]|[\\x23\\x260-2679\\x3bx]+))(?:[8Bb]|\\xc3\\x9f|\\xce["
	     "\\x92\\xb2]|"
	     "\\xd0[\\x91\\xb2]|\\x26\\x23(?:98|x62)\\x3b)",
	     1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rule_widened info = {99, 0};
		char *w = rule_widen(cases[i].src, cases[i].opts, 6000, &info);

		if (cases[i].want == NULL) {
			assert_null(w);
			continue;
		}
		assert_non_null(w);
		if (strcmp(w, cases[i].want) != 0)
			fprintf(stderr, "case %zu: %s\n   want %s\n", i, w,
			        cases[i].want);
		assert_string_equal(w, cases[i].want);
		assert_int_equal(info.merged, cases[i].merged);
		assert_true(info.bits >= 12);
		free(w);
	}
	/* tbits weighs bytes by how common they are in mail: runs of small
	 * letters are worth little, a word a good deal */
	{
		struct rule_widened a, b;
		char *wa = rule_widen("[a-z]{8,}\\s[a-z]{8,}", 0, 6000, &a);
		char *wb = rule_widen("winner", PCRE2_CASELESS, 6000, &b);

		assert_non_null(wa);
		assert_non_null(wb);
		assert_true(a.bits > 40 && a.tbits < 11);
		assert_true(b.tbits > 20);
		free(wa);
		free(wb);
	}
	/* a negative lookaround on the joined paragraphs sees only what it
	 * can match across the "\n": safe unless it can match one */
	assert_false(rule_negative_lookaround_nl("(?!ab)c", 0));
	assert_false(rule_negative_lookaround_nl("(?<!a.)c", 0));
	assert_true(rule_negative_lookaround_nl("(?!a\\s)b", 0));
	assert_true(rule_negative_lookaround_nl("(?<!a.)c", PCRE2_DOTALL));
	assert_true(rule_negative_lookaround_nl("(?!a(?=\\n))b", 0));
	assert_true(rule_negative_lookaround_nl("(\\w)(?!\\1)", 0));
	(void)state;
}

/* What the prefilter covers: body and rawbody rules with a literal set
 * or a pattern Hyperscan takes; none of a set without body rules. */
static void
test_rules_multi_prefilter_cover(void **state)
{
	struct rule_set *set = load("header H Subject =~ /x/\n");
	struct rule_msg *msg;
	struct rule_run *run;
	static const char msgtext[] =
	    "Subject: x\r\n\r\nhit hit HIT nohit\r\n\r\nhit\r\n";

	assert_int_equal(rule_set_prefiltered(set), 0);
	rule_set_free(&set);
	set = load("body LIT /\\bhit\\b/i\n"
	           "tflags LIT multiple maxhits=3\n"
	           "body NOLIT /\\d{3}-\\d{4}/\n"
	           "body EMPTY /x*/\n"
	           "rawbody RAWLIT /nohit/\n");
#ifdef MX_HAVE_HYPERSCAN
	/* EMPTY matches the empty string: no use filtering it */
	assert_int_equal(rule_set_prefiltered(set), 3);
#else
	assert_int_equal(rule_set_prefiltered(set), 0);
#endif
	msg = rule_msg_parse(msgtext, strlen(msgtext), false);
	run = rule_run_new(set);
	rule_run_message(run, msg, NULL);
	assert_int_equal(hits_of(set, run, "LIT"), 3);
	assert_int_equal(hits_of(set, run, "NOLIT"), 0);
	assert_int_equal(hits_of(set, run, "EMPTY"), 1);
	assert_int_equal(hits_of(set, run, "RAWLIT"), 1);
	rule_run_free(&run);
	rule_msg_free(&msg);
	rule_set_free(&set);
}

/* Broad patterns (`[a-z]{8,}` runs: a match at nearly every byte) share
 * one database scanned paragraph by paragraph, one match per rule each:
 * every rule's paragraphs must still be marked, not only the first rule
 * to match in a paragraph. */
static void
test_rules_broad_prefilter(void **state)
{
	struct rule_set *set = load("body LONG2 /[a-z]{8,}\\s[a-z]{8,}/\n"
	                            "tflags LONG2 multiple\n"
	                            "body LONG3 /\\s[a-z]{9,}\\s/\n"
	                            "tflags LONG3 multiple\n"
	                            "body SHORT /\\bq[0-9]{2}\\b/\n");
	static const char msgtext[] =
	    "Subject: s\r\n\r\n"
	    "the absolutely wonderful fireworks. were q12\r\n\r\n"
	    "short words only here\r\n\r\n"
	    "so incredibly marvelous, and the otherwise. too\r\n";
	struct rule_msg *msg = rule_msg_parse(msgtext, strlen(msgtext), false);

#ifdef MX_HAVE_HYPERSCAN
	assert_int_equal(rule_set_prefiltered(set), 3);
#endif
	for (int on = 0; on < 2; on++) {
		struct rule_run *run = rule_run_new(set);

		rule_run_set_prefilter(run, on);
		rule_run_message(run, msg, NULL);
		assert_int_equal(hits_of(set, run, "LONG2"), 2);
		assert_int_equal(hits_of(set, run, "LONG3"), 2);
		assert_int_equal(hits_of(set, run, "SHORT"), 1);
		rule_run_free(&run);
	}
	rule_msg_free(&msg);
	rule_set_free(&set);
	(void)state;
}

static double
lookup(const char *name, size_t len, void *arg)
{
	if (len == 1 && name[0] == 'A')
		return 1;
	if (len == 1 && name[0] == 'B')
		return 0;
	if (len == 1 && name[0] == 'C')
		return 3;
	return 0;
}

static void
test_rules_meta_eval(void **state)
{
	static const struct {
		const char *expr;
		double value;
	} cases[] = {
	    {"A", 1},
	    {"B", 0},
	    {"!B", 1},
	    {"!!C", 1},
	    {"A && B", 0},
	    {"A || B", 1},
	    {"A && !B", 1},
	    {"(A || B) && C", 1},
	    {"A + B + C", 4},
	    {"A + B + C > 3", 1},
	    {"A + B + C >= 5", 0},
	    {"C * 2 - 1", 5},
	    {"C / 0", 0},
	    {"-A + 2", 1},
	    {"C == 3 && A != 0", 1},
	    {"C <= 2 || A < 1", 0},
	    {"2 + 3 * 4", 14},
	    {"(2 + 3) * 4", 20},
	    {"1 || 0 && 0", 1}, /* && binds tighter */
	    {"A&&B||C", 1},
	    {"UNKNOWN || 0", 0},
	    {"1.5 > 1.25", 1},
	};
	static const char *const errors[] = {
	    "", "(", "A &&", "A B", "A )", "((((A)))", "A ! B", "#",
	};
	const char *err;
	double v;
	char deep[400];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
		    rule_meta_eval(cases[i].expr, lookup, NULL, &v, &err), 0);
		if (v != cases[i].value) {
			fprintf(stderr, "%s = %g, want %g\n", cases[i].expr, v,
			        cases[i].value);
			fail();
		}
	}
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		assert_int_equal(
		    rule_meta_eval(errors[i], lookup, NULL, &v, &err), -1);
	/* Nesting is bounded. */
	memset(deep, '(', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	assert_int_equal(rule_meta_eval(deep, lookup, NULL, &v, &err), -1);
	assert_string_equal(err, "nested too deep");
}

static void
test_rules_load_files(void **state)
{
	char dir[] = "/tmp/test_rulesXXXXXX", path[300];
	struct rule_set *set = NULL;
	char *err = NULL;
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.rules", dir);
	fp = fopen(path, "w");
	fputs("body A /a/\n", fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/b.rules", dir);
	fp = fopen(path, "w");
	fputs("body B /b/\nscore A 4\n", fp);
	fclose(fp);

	const char *globs[] = {"*.rules", "none/*.rules"};

	assert_int_equal(rule_set_load(globs, 2, dir, &set, &err), 0);
	assert_int_equal(rule_set_count(set, RULE_BODY), 2);
	assert_true(rule_score(set, (size_t)rule_find(set, "A"), false) == 4);
	rule_set_free(&set);

	/* A name without wildcards must exist. */
	const char *missing[] = {"missing.rules"};

	assert_int_equal(rule_set_load(missing, 1, dir, &set, &err), -1);
	assert_non_null(strstr(err, "missing.rules:0: cannot read rule file"));
	free(err);

	/* An error names the file and line. */
	fp = fopen(path, "w");
	fputs("body B /b/\n\nbody C /(/\n", fp);
	fclose(fp);
	assert_int_equal(rule_set_load(globs, 1, dir, &set, &err), -1);
	assert_non_null(strstr(err, "/b.rules:3: bad pattern"));
	assert_null(set);
	free(err);
	unlink(path);
	snprintf(path, sizeof(path), "%s/a.rules", dir);
	unlink(path);
	rmdir(dir);
}

/* rule_class_end: where PCRE2 ends a character class. */
static void
test_rules_class_end(void **state)
{
	static const struct {
		const char *pattern;
		int end; /* offset past the class, -1: never closes */
	} cases[] = {
	    {"[abc]x", 5},
	    {"[]a]x", 4},          /* ']' first is a member */
	    {"[^]a]x", 5},         /* also after '^' */
	    {"[a\\]b]x", 6},       /* an escaped ']' */
	    {"[[:alpha:]]x", 11},  /* a POSIX class inside */
	    {"[[:alpha:]b]x", 12}, /* and more after it */
	    {"[[:a]x:]", 5},       /* ']' before ":]": '[' is a member */
	    {"[[:a[:b:]]", 10},    /* "[:" again: the first is a member */
	    {"[[.a.]]x", 7},       /* "[." and "[=" are read alike */
	    {"[abc", -1},
	    {"[", -1},
	    {"[]", -1}, /* "]" is a member: still open */
	    {"[[:alpha:]", -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *e = rule_class_end(cases[i].pattern);

		if (cases[i].end < 0)
			assert_null(e);
		else
			assert_int_equal(e - cases[i].pattern, cases[i].end);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules_errors),
	    cmocka_unit_test(test_rules_directives),
	    cmocka_unit_test(test_rules_match_message),
	    cmocka_unit_test(test_rules_smtp),
	    cmocka_unit_test(test_rules_meta_eval),
	    cmocka_unit_test(test_rules_sa_compat),
	    cmocka_unit_test(test_rules_literal_prefilter),
	    cmocka_unit_test(test_rules_multi_prefilter),
	    cmocka_unit_test(test_rules_class_end),
	    cmocka_unit_test(test_rules_multi_prefilter_cover),
	    cmocka_unit_test(test_rules_broad_prefilter),
	    cmocka_unit_test(test_rules_uri_literal),
	    cmocka_unit_test(test_rules_header_literal),
	    cmocka_unit_test(test_rules_exist),
	    cmocka_unit_test(test_rules_exist_hits),
	    cmocka_unit_test(test_rules_widen),
	    cmocka_unit_test(test_rules_load_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
