/* SPDX-License-Identifier: MIT */
/*
 * check.c - `mxguard check [-c FILE] [--json] MSG.eml...`: score messages
 * offline with the daemon's rule engine, like `spamassassin -t` or rspamc.
 *
 * px_check_main(): loads the config (and so its rules) exactly as the
 * daemon does, decodes each message ("-" is standard input) and runs the
 * content and meta rules on it.  No backend, no network: DNS-based checks
 * (DNSBL, SPF, DKIM, ...) and the SMTP-stage rules (connect, helo,
 * mailfrom, rcptto: there is no SMTP dialogue) are skipped, and the output
 * says so.  Scores are SpamAssassin's score set 0 (no network tests).
 *
 * `mxguard check [-c FILE] --list-rules` prints every loaded rule instead:
 * name, type, score (set 0) and "partial" for a meta that names a skipped
 * rule (it may miss where SpamAssassin hits), else "complete".
 *
 * Exit status: the most severe of the messages' verdicts: 0 accept, 1 tag,
 * 2 tempfail, 3 reject; 64 usage error, 66 a message cannot be read, 78
 * the config or a rule file is broken (sysexits.h values).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "check.h"
#include "config.h"
#include "mime.h"
#include "rule.h"

#define PX_CHECK_USAGE   64
#define PX_CHECK_NOINPUT 66
#define PX_CHECK_CONFIG  78

static const char *const px_check_verdicts[] = {"accept", "tag", "tempfail",
                                                "reject"};

static int
px_check_read(const char *path, char **buf_r, size_t *len_r)
{
	FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t len = 0, cap = 0, k;
	char *buf = NULL;

	if (fp == NULL)
		return -1;
	do {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			buf = px_realloc(buf, cap + 1);
		}
		k = fread(buf + len, 1, cap - len, fp);
		len += k;
	} while (k > 0);
	if (ferror(fp)) {
		if (fp != stdin)
			fclose(fp);
		free(buf);
		return -1;
	}
	if (fp != stdin)
		fclose(fp);
	*buf_r = buf;
	*len_r = len;
	return 0;
}

static void
px_json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static int
px_check_hit_cmp(const void *a, const void *b, void *arg)
{
	const struct rule_set *set = arg;

	return strcmp(rule_name(set, *(const size_t *)a),
	              rule_name(set, *(const size_t *)b));
}

/* px_check_one - score one message; prints its block; returns the
 * verdict index (0..3) or -1 when it cannot be read. */
static int
px_check_one(const struct px_config *cfg, const char *path, bool json,
             bool first)
{
	const struct rule_set *set = cfg->ruleset;
	struct rule_msg *msg;
	struct rule_run *run;
	size_t len, *hits, nhits = 0;
	char *buf;
	double score = 0;
	int verdict;

	if (px_check_read(path, &buf, &len) < 0) {
		fprintf(stderr, "mxguard check: %s: cannot read\n", path);
		return -1;
	}
	msg = rule_msg_parse(buf, len < RULE_SCAN_MAX ? len : RULE_SCAN_MAX,
	                     len > RULE_SCAN_MAX);
	free(buf);
	run = rule_run_new(set);
	rule_run_message(run, msg, NULL);
	hits = px_calloc(rule_set_size(set) + 1, sizeof(*hits));
	for (size_t i = 0; i < rule_set_size(set); i++)
		if (rule_run_count(run, i) > 0 &&
		    rule_reported(set, i, false)) {
			hits[nhits++] = i;
			score += rule_score(set, i, false);
		}
	qsort_r(hits, nhits, sizeof(*hits), px_check_hit_cmp, (void *)set);
	verdict = score >= cfg->actions.reject     ? 3
	          : score >= cfg->actions.tempfail ? 2
	          : score >= cfg->actions.tag      ? 1
	                                           : 0;
	if (json) {
		printf("%s\n  {\"file\": ", first ? "" : ",");
		px_json_str(stdout, path);
		printf(", \"verdict\": \"%s\", \"score\": %.2f, "
		       "\"thresholds\": {\"tag\": %.2f, \"tempfail\": %.2f, "
		       "\"reject\": %.2f}, \"symbols\": [",
		       px_check_verdicts[verdict], score, cfg->actions.tag,
		       cfg->actions.tempfail, cfg->actions.reject);
		for (size_t k = 0; k < nhits; k++) {
			const char *d = rule_describe(set, hits[k]);

			printf("%s{\"name\": ", k ? ", " : "");
			px_json_str(stdout, rule_name(set, hits[k]));
			printf(", \"score\": %.2f, \"description\": ",
			       rule_score(set, hits[k], false));
			px_json_str(stdout, d ? d : "");
			printf("}");
		}
		printf("], \"skipped\": [\"network checks\", "
		       "\"smtp-stage rules\"]}");
	} else {
		printf("%s%s: %s score=%.1f (tag %.1f, tempfail %.1f, "
		       "reject %.1f)\n",
		       first ? "" : "\n", path, px_check_verdicts[verdict],
		       score, cfg->actions.tag, cfg->actions.tempfail,
		       cfg->actions.reject);
		printf("  hits:");
		for (size_t k = 0; k < nhits; k++)
			printf(" %s(%.1f)", rule_name(set, hits[k]),
			       rule_score(set, hits[k], false));
		printf("%s\n", nhits == 0 ? " none" : "");
		for (size_t k = 0; k < nhits; k++) {
			const char *d = rule_describe(set, hits[k]);

			printf("  %-24s %6.1f  %s\n", rule_name(set, hits[k]),
			       rule_score(set, hits[k], false), d ? d : "");
		}
		printf("  skipped: network checks (no DNS, no backend), "
		       "SMTP-stage rules (no SMTP dialogue)\n");
	}
	free(hits);
	rule_run_free(&run);
	rule_msg_free(&msg);
	return verdict;
}

int
px_check_main(int argc, char **argv)
{
	const char *path = "/etc/mxguard/mxguard.conf";
	struct px_config *cfg = NULL;
	bool json = false, first = true, list = false;
	char *err = NULL;
	int i, worst = 0, bad = 0;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--list-rules") == 0)
			list = true;
		else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0')
			goto usage;
		else
			break;
	}
	if (i == argc && !list)
		goto usage;
	if (px_config_load(path, &cfg, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return PX_CHECK_CONFIG;
	}
	if (list) {
		const struct rule_set *set = cfg->ruleset;

		for (size_t k = 0; k < rule_set_size(set); k++) {
			if (rule_find(set, rule_name(set, k)) < 0)
				continue; /* only scored or described */
			printf("%s\t%s\t%g\t%s\n", rule_name(set, k),
			       rule_type_name(rule_type(set, k)),
			       rule_score(set, k, false),
			       rule_partial(set, k) ? "partial" : "complete");
		}
		px_config_unref(&cfg);
		return 0;
	}
	if (json)
		printf("[");
	for (; i < argc; i++) {
		int v = px_check_one(cfg, argv[i], json, first);

		if (v < 0) {
			bad = 1;
			continue;
		}
		first = false;
		if (v > worst)
			worst = v;
	}
	if (json)
		printf("\n]\n");
	px_config_unref(&cfg);
	return bad ? PX_CHECK_NOINPUT : worst;
usage:
	fprintf(stderr,
	        "usage: mxguard check [-c FILE] [--json] MESSAGE.eml...\n"
	        "       mxguard check [-c FILE] --list-rules\n");
	return PX_CHECK_USAGE;
}
