/* SPDX-License-Identifier: MIT */
/*
 * fuzz_prefilter.c - libFuzzer harness, differential: any bytes as a
 * message, its content rules evaluated with the multi-pattern prefilter
 * (rules/prefilter.c) and without it; every rule's hit count must be the
 * same.  The rules are a built-in set chosen to exercise the prefilter's
 * rewriting (literal sets, anchors, lookarounds, counted repeats, braces,
 * case, tflags multiple, rawbody lines), or, with MXG_FUZZ_RULES set to a
 * glob (/usr/share/spamassassin/ *.cf), those files.
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
    "meta META_A LIT_ONE && NO_LIT\n";

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
	for (size_t i = 0; i < rule_set_size(set); i++)
		if (rule_run_count(on, i) != rule_run_count(off, i)) {
			fprintf(stderr,
			        "%s: %u with the prefilter, %u without\n",
			        rule_name(set, i), rule_run_count(on, i),
			        rule_run_count(off, i));
			abort();
		}
	rule_run_free(&on);
	rule_run_free(&off);
	rule_msg_free(&m);
	return 0;
}
