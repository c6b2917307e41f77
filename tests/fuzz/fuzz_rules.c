/* SPDX-License-Identifier: MIT */
/*
 * fuzz_rules.c - libFuzzer harness for the rule file parser
 * (rules/parse.c, rules/meta.c): any bytes as a rule file.  A parse either
 * succeeds or gives "FILE:LINE: reason" naming a line of the input; a set
 * that loads is then run on a small message, so the matcher and the meta
 * evaluator see whatever the parser accepted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_msg[] =
    "From: \"A\" <a@example.org>\r\nTo: b@example.org\r\n"
    "Subject: hello =?utf-8?q?w=C3=B6rld?=\r\n\r\n"
    "Body text http://example.com/x\r\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rule_set *set = rule_set_new();
	char *err = NULL;
	int rc;

	rc = rule_set_parse(set, "f", (const char *)data, size, &err);
	if (rc == 0)
		rc = rule_set_finish(set, &err);
	if (rc < 0) {
		if (err == NULL || strncmp(err, "f:", 2) != 0)
			abort();
		free(err);
		rule_set_free(&set);
		return 0;
	}
	struct rule_msg *msg =
	    rule_msg_parse(fuzz_msg, sizeof(fuzz_msg) - 1, false);
	struct rule_run *run = rule_run_new(set);
	size_t idx;
	char sum[512];

	rule_run_smtp(run, RULE_HELO, "mx.example.org", &idx);
	rule_run_smtp(run, RULE_CONNECT, "unknown[192.0.2.1]", &idx);
	rule_run_message(run, msg, "a@example.org");
	rule_set_summary(set, sum, sizeof(sum));
	for (size_t i = 0; i < rule_set_size(set); i++)
		(void)rule_reported(set, i, false);
	rule_run_free(&run);
	rule_msg_free(&msg);
	rule_set_free(&set);
	return 0;
}
