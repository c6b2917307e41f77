/* SPDX-License-Identifier: MIT */
/*
 * fuzz_prefilter.c - libFuzzer harness, differential: any bytes as a
 * message, its content rules evaluated with the multi-pattern prefilter
 * (rules/prefilter.c) and without it; every rule's hit count must be the
 * same.  The rules are a built-in set chosen to exercise the prefilter's
 * rewriting (literal sets, anchors, lookarounds, counted repeats, braces,
 * case, tflags multiple, rawbody lines), or, with MXG_FUZZ_RULES set to a
 * glob (/usr/share/spamassassin/ *.cf), those files.  A built-in rule
 * NAME_M (tflags multiple maxhits=1: its pattern as written) must also
 * count what NAME (its pattern cut by rule_exist_src) counts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "rule.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char rules_text[] =
    "body LIT_ONE /free offer/i\n"
    "body LIT_CASE /Click Here/\n"
    "body LIT_ALT /\\b(?:viagra|cialis|levitra)\\b/i\n"
    "body LIT_OVERLAP /abcab/\n"
    "body LIT_OVERLAP2 /bcabc/\n"
    "body LIT_END /zz9$/\n"
    "body LIT_START /^qq7/\n"
    "body ANCHOR_M /^\\s*dear\\s+friend/im\n"
    "body DOLLAR /money\\W*$/i\n"
    "body NO_LIT /[a-z]{3}\\d{2,}[A-Z]/\n"
    "body LOOKAHEAD /(?!foo)[fg]o{2}\\w/\n"
    "body LOOKBEHIND /(?<![a-z])x{2,3}y/i\n"
    "body POSLOOK /(?=\\w{6})ab\\w+/\n"
    "body REPEAT_GROUP /(?:ab|cd){3}e/\n"
    "body REPEAT_LONG /\\d{20,40}/\n"
    "body BRACE_LIT /a{,2}b/\n"
    "body BRACE_OPEN /x{3/\n"
    "body ESCAPES /\\x41\\x{42}\\.\\Q*+\\E/\n"
    "body CLASS_BRACKET /[]{}]{2}[^]a]q/\n"
    "body DOTALL /s.{0,30}?t/s\n"
    "body WORDB /\\bon\\b.\\bto\\b/\n"
    "body ATOMIC /(?>a+)b/\n"
    "body BACKREF /(\\w)\\1\\1\\1/\n"
    "body EMPTYOK /x*/\n"
    "body HIGHBYTE /[\\xe0-\\xef][\\x80-\\xbf]{2}/\n"
    "body MULTI_HITS /\\bhit\\b/i\n"
    "tflags MULTI_HITS multiple maxhits=7\n"
    "body NOSUBJ /subjectonly/\n"
    "tflags NOSUBJ nosubject\n"
    "rawbody RAW_TAG /<\\s*script\\b/i\n"
    "rawbody RAW_LINE /^--[a-z0-9]{4,}$/m\n"
    "rawbody RAW_NOLIT /=[0-9A-F]{2}=[0-9A-F]{2}/\n"
    "meta META_A LIT_ONE && NO_LIT\n"
    /* rule_widen: look-alike alternations (merged), inline options,
     * escapes, POSIX classes, a repeated group (two copies and a gap),
     * a negative lookahead on the joined text, a trimmed long sequence, a
     * long repeated group (two copies with a bounded gap) */
    "replace_tag L1 "
    "(?:[lL1|!]|\\xc4[\\xb9-\\xbf]|&\\#(?:108|x6c);|[\\xf0][\\x9d][\\x90]["
    "\\x8b])\n"
    "replace_tag O1 (?:[oO0]|\\xc3[\\xb2-\\xb6]|&\\#(?:111|x6f);|\\(\\))\n"
    "replace_tag T1 (?:[tT7+]|\\xc5[\\xa2-\\xa7]|&\\#116;)\n"
    "body GLYPHS /(?!lot)<L1><O1><T1><T1><O1>/i\n"
    "replace_rules GLYPHS\n"
    "body INLINE_I /a(?i)bc(?-i:D)e/\n"
    "body INLINE_S /x(?s:.)y(?x) z \\#/\n"
    "body ESC_MIX /\\R[\\d\\W][[:alpha:]][[:^digit:]]\\x{7a}\\101\\cA?/\n"
    "body GROUP_REP /(?:(?:name|city|phone)[,:;]\\s?){3}/i\n"
    "body NEG_LOOK /(?!free\\b)fr\\w{2,}\\b/i\n"
    "body NEG_NL /(?!\\s*end)\\bstart/\n"
    /* ends of string written as "\n": alone, in an alternation, twice
     * on one path (dropped), in a broad pattern scanned string by
     * string, and a run of broad bytes before one */
    "body EOL_WORD /blank[\\s:;]{2,}$/\n"
    "body EOL_ALT /(?:cd$|ef)gh|ab(?:cd\\z|ef)/\n"
    "body EOL_TWICE /xy$$/\n"
    "body EOL_BROAD /\\s\\d$/\n"
    "rawbody RAW_EOL /[a-z]{8,}\\Z/\n"
    "body LONG_SEQ "
    "/alpha\\s+beta\\s+gamma\\s+(?:delta|epsilon|zeta|eta|theta|iota|kappa|"
    "lambda|mu|nu|xi|omicron|pi|rho|sigma|tau|upsilon|phi|chi|psi|omega)\\s+(?:"
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    "fourteen|fifteen)\\s+final/i\n"
    "body REP_TRIM /(?:(?:aaaaaaaa|aaaaaaab|aaaaaaba|aaaaaabb|aaaaabaa|"
    "aaaaabab|aaaaabba|aaaaabbb|aaaabaaa|aaaabaab|aaaababa|aaaababb|"
    "aaaabbaa|aaaabbab|aaaabbba|aaaabbbb|aaabaaaa|aaabaaab|aaabaaba|"
    "aaabaabb|aaababaa|aaababab|aaababba|aaababbb|aaabbaaa|aaabbaab|"
    "aaabbaba|aaabbabb|aaabbbaa|aaabbbab|aaabbbba|aaabbbbb|aabaaaaa|"
    "aabaaaab|aabaaaba|aabaaabb|aabaabaa|aabaabab|aabaabba|aabaabbb|"
    "aababaaa|aababaab|aabababa|aabababb|aababbaa|aababbab|aababbba|"
    "aababbbb|aabbaaaa|aabbaaab|aabbaaba|aabbaabb|aabbabaa|aabbabab|"
    "aabbabba|aabbabbb|aabbbaaa|aabbbaab|aabbbaba|aabbbabb|aabbbbaa|"
    "aabbbbab|aabbbbba|aabbbbbb|abaaaaaa|abaaaaab|abaaaaba|abaaaabb|"
    "abaaabaa|abaaabab|abaaabba|abaaabbb|abaabaaa|abaabaab|abaababa|"
    "abaababb|abaabbaa|abaabbab|abaabbba|abaabbbb|ababaaaa|ababaaab|"
    "ababaaba|ababaabb|abababaa|abababab|abababba|abababbb|ababbaaa|"
    "ababbaab|ababbaba|ababbabb|ababbbaa|ababbbab|ababbbba|ababbbbb|"
    "abbaaaaa|abbaaaab|abbaaaba|abbaaabb|abbaabaa|abbaabab|abbaabba|"
    "abbaabbb|abbabaaa|abbabaab|abbababa|abbababb|abbabbaa|abbabbab|"
    "abbabbba|abbabbbb|abbbaaaa|abbbaaab|abbbaaba|abbbaabb|abbbabaa|"
    "abbbabab|abbbabba|abbbabbb|abbbbaaa|abbbbaab|abbbbaba|abbbbabb|"
    "abbbbbaa|abbbbbab|abbbbbba|abbbbbbb|baaaaaaa|baaaaaab|baaaaaba|"
    "baaaaabb|baaaabaa|baaaabab|baaaabba|baaaabbb|baaabaaa|baaabaab|"
    "baaababa|baaababb|baaabbaa|baaabbab|baaabbba|baaabbbb|baabaaaa|"
    "baabaaab|baabaaba|baabaabb|baababaa|baababab|baababba|baababbb|"
    "baabbaaa|baabbaab|baabbaba|baabbabb|baabbbaa|baabbbab|baabbbba|"
    "baabbbbb)[,;] ?){2}/\n"
    /* rule_exist_src: leading optional items cut where one match is
     * all that counts; each has a twin counting with tflags multiple
     * maxhits=1 (the pattern as written, the same count) */
    "body EXIST_FORM /(?:(?:your\\s)?(?:present\\s|full\\s){0,3}"
    "(?:name|city|phone|address)(?:\\s?[\\/&+,]\\s?|\\sor\\s)?[,:;\\s]){3}/i\n"
    "body EXIST_FORM_M /(?:(?:your\\s)?(?:present\\s|full\\s){0,3}"
    "(?:name|city|phone|address)(?:\\s?[\\/&+,]\\s?|\\sor\\s)?[,:;\\s]){3}/i\n"
    "tflags EXIST_FORM_M multiple maxhits=1\n"
    "body EXIST_LEAD /(?:a?\\s?copy\\sof\\s)?(?:(?:your|my)[\\s,:]{1,5})?"
    "(?:bank|account)\\s(?:name|number)(?:[\\s:;]{3,}|\\s$)/i\n"
    "body EXIST_LEAD_M /(?:a?\\s?copy\\sof\\s)?(?:(?:your|my)[\\s,:]{1,5})?"
    "(?:bank|account)\\s(?:name|number)(?:[\\s:;]{3,}|\\s$)/i\n"
    "tflags EXIST_LEAD_M multiple maxhits=1\n"
    "rawbody EXIST_LOOK /(?:x\\s)*(?<=\\s)y(?!z)/\n"
    "rawbody EXIST_LOOK_M /(?:x\\s)*(?<=\\s)y(?!z)/\n"
    "tflags EXIST_LOOK_M multiple maxhits=1\n"
    "rawbody RAW_GROUP /(?:<td>[^<]{0,20}<\\/td>){2,}/i\n"
    "rawbody RAW_HREF /^[^>].*?<(?:a href|A HREF)=/im\n"
    "tflags RAW_HREF multiple maxhits=50\n";

static struct rule_set *set;

/* The rules once, before any input (and outside libFuzzer's per-input
 * timeout: compiling SpamAssassin's set takes a while under ASan). */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *glob = getenv("MXG_FUZZ_RULES");
	char *err = NULL;

	(void)argc;
	(void)argv;
	if (glob != NULL) {
		if (rule_set_load(&glob, 1, NULL, &set, &err) < 0) {
			fprintf(stderr, "%s\n", err);
			abort();
		}
		return 0;
	}
	set = rule_set_new();
	if (rule_set_parse(set, "fuzz.rules", rules_text, strlen(rules_text),
	                   &err) < 0 ||
	    rule_set_finish(set, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rule_msg *m;
	struct rule_run *on, *off;

	m = rule_msg_parse((const char *)data, size, false);
	on = rule_run_new(set);
	off = rule_run_new(set);
	rule_run_set_prefilter(off, false);
	rule_run_message(on, m, NULL);
	rule_run_message(off, m, NULL);
	for (size_t i = 0; i < rule_set_size(set); i++) {
		const char *name = rule_name(set, i);
		size_t len = strlen(name);
		char twin[64];
		long t;

		if (rule_run_count(on, i) != rule_run_count(off, i)) {
			fprintf(stderr,
			        "%s: %u with the prefilter, %u without\n", name,
			        rule_run_count(on, i), rule_run_count(off, i));
			abort();
		}
		/* NAME (cut pattern) against NAME_M (as written) */
		if (len < 3 || len + 3 > sizeof(twin) ||
		    strcmp(name + len - 2, "_M") != 0)
			continue;
		memcpy(twin, name, len - 2);
		twin[len - 2] = '\0';
		t = rule_find(set, twin);
		if (t >= 0 &&
		    rule_run_count(off, (size_t)t) != rule_run_count(off, i)) {
			fprintf(stderr, "%s: %u, %s: %u\n", twin,
			        rule_run_count(off, (size_t)t), name,
			        rule_run_count(off, i));
			abort();
		}
	}
	rule_run_free(&on);
	rule_run_free(&off);
	rule_msg_free(&m);
	return 0;
}
