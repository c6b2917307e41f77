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
 * Messages are scored on -j N threads (default: one per core), printed in
 * the order given.
 *
 * --timing adds one line on standard error: how long the rules took to
 * load, how many of the body and rawbody rules the multi-pattern
 * prefilter covers, and the CPU and wall time of the scan alone (what
 * bench/rules measures).
 *
 * `mxguard check [-c FILE] --list-rules` prints every loaded rule instead:
 * name, type, score (set 0) and "partial" for a meta that names a skipped
 * rule (it may miss where SpamAssassin hits), else "complete".
 *
 * Exit status: the most severe of the messages' verdicts: 0 accept, 1 tag,
 * 2 tempfail, 3 reject; 64 usage error, 66 a message cannot be read, 78
 * the config or a rule file is broken (sysexits.h values).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* px_check_clock - seconds on clock id. */
static double
px_check_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

/* One message's result, computed by any thread, printed in order. */
struct px_check_result {
	const char *path;
	int verdict; /* 0..3, -1: unreadable */
	double score;
	size_t *hits; /* rule indexes, sorted by name */
	size_t nhits;
};

struct px_check_batch {
	const struct px_config *cfg;
	struct px_check_result *res;
	size_t n;
	size_t next; /* atomic: the next message to take */
};

/* px_check_score - decode and score one message (any thread). */
static void
px_check_score(const struct px_config *cfg, struct px_check_result *r)
{
	const struct rule_set *set = cfg->ruleset;
	struct rule_msg *msg;
	struct rule_run *run;
	size_t len;
	char *buf;

	if (px_check_read(r->path, &buf, &len) < 0) {
		r->verdict = -1;
		return;
	}
	msg = rule_msg_parse(buf, len < RULE_SCAN_MAX ? len : RULE_SCAN_MAX,
	                     len > RULE_SCAN_MAX);
	free(buf);
	run = rule_run_new(set);
	rule_run_message(run, msg, NULL);
	r->hits = px_calloc(rule_set_size(set) + 1, sizeof(*r->hits));
	for (size_t i = 0; i < rule_set_size(set); i++)
		if (rule_run_count(run, i) > 0 &&
		    rule_reported(set, i, false)) {
			r->hits[r->nhits++] = i;
			r->score += rule_score(set, i, false);
		}
	qsort_r(r->hits, r->nhits, sizeof(*r->hits), px_check_hit_cmp,
	        (void *)set);
	r->verdict = r->score >= cfg->actions.reject     ? 3
	             : r->score >= cfg->actions.tempfail ? 2
	             : r->score >= cfg->actions.tag      ? 1
	                                                 : 0;
	rule_run_free(&run);
	rule_msg_free(&msg);
}

static void *
px_check_thread(void *arg)
{
	struct px_check_batch *b = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED)) < b->n)
		px_check_score(b->cfg, &b->res[i]);
	return NULL;
}

/* px_check_print - one message's block (text) or object (JSON). */
static void
px_check_print(const struct px_config *cfg, const struct px_check_result *r,
               bool json, bool first)
{
	const struct rule_set *set = cfg->ruleset;
	const size_t *hits = r->hits;
	size_t nhits = r->nhits;
	int verdict = r->verdict;
	double score = r->score;
	const char *path = r->path;

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
		return;
	}
	printf("%s%s: %s score=%.1f (tag %.1f, tempfail %.1f, reject %.1f)\n",
	       first ? "" : "\n", path, px_check_verdicts[verdict], score,
	       cfg->actions.tag, cfg->actions.tempfail, cfg->actions.reject);
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
	printf("  skipped: network checks (no DNS, no backend), SMTP-stage "
	       "rules (no SMTP dialogue)\n");
}

int
px_check_main(int argc, char **argv)
{
	const char *path = "/etc/mxguard/mxguard.conf";
	struct px_config *cfg = NULL;
	bool json = false, first = true, list = false, timing = false;
	double cpu0 = px_check_clock(CLOCK_PROCESS_CPUTIME_ID),
	       wall0 = px_check_clock(CLOCK_MONOTONIC), cpu1, wall1;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned jobs = ncpu > 0 ? (unsigned)(ncpu < 64 ? ncpu : 64) : 1;
	char *err = NULL;
	int i, worst = 0, bad = 0;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--list-rules") == 0)
			list = true;
		else if (strcmp(argv[i], "--timing") == 0)
			timing = true;
		else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
			int j = atoi(argv[++i]);

			if (j < 1 || j > 64)
				goto usage;
			jobs = (unsigned)j;
		} else if (strcmp(argv[i], "--") == 0) {
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
	cpu1 = px_check_clock(CLOCK_PROCESS_CPUTIME_ID);
	wall1 = px_check_clock(CLOCK_MONOTONIC);
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
	/* Messages are scored on `jobs` threads (the set is read-only,
	 * each thread has its own evaluation state) and printed in order. */
	struct px_check_batch b = {.cfg = cfg, .n = (size_t)(argc - i)};
	pthread_t tids[64];
	unsigned nt = jobs < b.n ? jobs : (unsigned)b.n, started = 0;

	b.res = px_calloc(b.n, sizeof(*b.res));
	for (size_t k = 0; k < b.n; k++)
		b.res[k].path = argv[i + (int)k];
	for (unsigned t = 1; t < nt; t++)
		if (pthread_create(&tids[started], NULL, px_check_thread, &b) ==
		    0)
			started++;
	px_check_thread(&b);
	for (unsigned t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	if (timing)
		fprintf(stderr,
		        "timing: load %.3f s cpu %.3f s wall, %zu rules "
		        "(%zu prefiltered); scan of %zu messages on %u "
		        "thread%s %.3f s cpu %.3f s wall\n",
		        cpu1 - cpu0, wall1 - wall0, rule_set_size(cfg->ruleset),
		        rule_set_prefiltered(cfg->ruleset), b.n, started + 1,
		        started ? "s" : "",
		        px_check_clock(CLOCK_PROCESS_CPUTIME_ID) - cpu1,
		        px_check_clock(CLOCK_MONOTONIC) - wall1);
	if (json)
		printf("[");
	for (size_t k = 0; k < b.n; k++) {
		int v = b.res[k].verdict;

		if (v < 0) {
			fprintf(stderr, "mxguard check: %s: cannot read\n",
			        b.res[k].path);
			bad = 1;
			continue;
		}
		px_check_print(cfg, &b.res[k], json, first);
		first = false;
		if (v > worst)
			worst = v;
		free(b.res[k].hits);
	}
	free(b.res);
	if (json)
		printf("\n]\n");
	px_config_unref(&cfg);
	return bad ? PX_CHECK_NOINPUT : worst;
usage:
	fprintf(stderr,
	        "usage: mxguard check [-c FILE] [-j N] [--json] [--timing] "
	        "MESSAGE.eml...\n"
	        "       mxguard check [-c FILE] --list-rules\n");
	return PX_CHECK_USAGE;
}
