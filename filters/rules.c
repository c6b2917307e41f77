/* SPDX-License-Identifier: MIT */
/*
 * rules.c - the rule engine as a filter (flt_rules): SMTP-stage rules at
 * their stage, content rules at end of data on the worker pool.
 *
 * Rules come from the session's config (cfg->ruleset), so a session keeps
 * the set it started with across a reload.  Stages:
 *   HELO    connect rules (on "name[ip]", Postfix style: the verified
 *           reverse name or "unknown"; evaluated here rather than at
 *           connect, where reverse DNS is still running beside us), then
 *           helo rules.  Symbols last for the session.
 *   MAIL    a connect/helo rule's reject or tempfail is given here, before
 *           the backend connection is opened; then mailfrom rules.
 *   RCPT    rcptto rules: reject/tempfail refuse that recipient.
 *   EOM     unless an `accept` rule hit: the message (its first
 *           FLT_RULES_SCAN_MAX bytes) is copied and decoded and the content
 *           and meta rules run on a worker thread; symbols come back to
 *           the loop.  Metas see the SMTP-stage hits of the transaction.
 * `accept` hits (connect/helo: the session; mailfrom/rcptto: the
 * transaction) give an ACCEPT verdict at end of data and skip the scan.
 * Within one stage reject beats tempfail beats accept.
 *
 * The worker job owns its copy of the message and a config reference (so
 * the rule set outlives a reload); a cancelled call (timeout, session
 * gone) only marks the job, which frees itself when it comes back.
 */
#include "filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "mime.h"
#include "rule.h"
#include "spool.h"
#include "workers.h"

#define FLT_RULES_SCAN_MAX RULE_SCAN_MAX

struct flt_rules_hit {
	size_t rule;
	unsigned count;
	bool session;
};

struct flt_rules_job;

struct flt_rules_state {
	struct flt_rules_hit *hits; /* SMTP-stage hits */
	size_t nhits, cap;
	bool connect_done;
	/* strongest immediate action so far and the rule that gave it */
	enum rule_action session_action, txn_action;
	size_t session_rule, txn_rule;
	struct flt_rules_job *job; /* the EOM scan in flight */
};

struct flt_rules_job {
	struct flt_call *call; /* NULL once cancelled */
	struct flt_rules_state *st;
	struct px_config *cfg; /* a reference: the set lives with it */
	char *buf;
	size_t len;
	bool truncated;
	char *envelope_from;
	struct flt_rules_hit *pre; /* SMTP-stage hits, copied */
	size_t npre;
	struct rule_run *run; /* result */
	unsigned flags;
};

static void *
flt_rules_session_new(const struct flt_session *s)
{
	/* No rule files configured: nothing to do (not even the built-in
	 * MIME rules, which are there to be scored by rule files). */
	if (s->cfg->ruleset == NULL || s->cfg->nrules == 0)
		return NULL;
	return px_calloc(1, sizeof(struct flt_rules_state));
}

static void
flt_rules_reset(void *state)
{
	struct flt_rules_state *st = state;
	size_t j = 0;

	if (st == NULL)
		return;
	for (size_t i = 0; i < st->nhits; i++)
		if (st->hits[i].session)
			st->hits[j++] = st->hits[i];
	st->nhits = j;
	st->txn_action = RULE_ACTION_NONE;
}

static void
flt_rules_session_free(void *state)
{
	struct flt_rules_state *st = state;

	if (st == NULL)
		return;
	if (st->job != NULL)
		st->job->st = NULL;
	free(st->hits);
	free(st);
}

/* flt_rules_smtp - run the rules of type on subject, record the hits and
 * add their symbols; returns the strongest action. */
static enum rule_action
flt_rules_smtp(struct flt_call *call, struct flt_rules_state *st,
               enum rule_type type, const char *subject, size_t *rule_r)
{
	const struct rule_set *set = call->s->cfg->ruleset;
	struct rule_run *run;
	enum rule_action a;
	bool session = type == RULE_CONNECT || type == RULE_HELO;

	if (!rule_set_has(set, type))
		return RULE_ACTION_NONE;
	run = rule_run_new(set);
	a = rule_run_smtp(run, type, subject, rule_r);
	for (size_t i = 0; i < rule_set_size(set); i++) {
		unsigned n = rule_run_count(run, i);

		if (n == 0)
			continue;
		if (st->nhits == st->cap) {
			st->cap = st->cap ? st->cap * 2 : 8;
			st->hits =
			    px_realloc(st->hits, st->cap * sizeof(*st->hits));
		}
		st->hits[st->nhits++] = (struct flt_rules_hit){i, n, session};
		if (rule_reported(set, i, true))
			flt_symbol_add(call, rule_name(set, i),
			               rule_score(set, i, true));
	}
	rule_run_free(&run);
	return a;
}

/* flt_rules_verdict - the verdict of an immediate reject/tempfail. */
static void
flt_rules_verdict(struct flt_call *call, enum rule_action a, size_t rule)
{
	const struct rule_set *set = call->s->cfg->ruleset;
	const char *reply = NULL, *name = rule_name(set, rule);
	bool rej = a == RULE_ACTION_REJECT;
	char reason[128];
	int code = rej ? 550 : 451;
	char enh[12];
	const char *text = NULL;

	snprintf(enh, sizeof(enh), "%s", rej ? "5.7.1" : "4.7.1");
	rule_smtp_action(set, rule, &reply);
	if (reply != NULL) {
		/* "550 5.7.1 text", "550 text" or "550" */
		code = atoi(reply);
		text = reply + 3;
		while (*text == ' ')
			text++;
		if (text[0] >= '2' && text[0] <= '5' && text[1] == '.') {
			size_t n = strcspn(text, " ");

			if (n < sizeof(enh)) {
				memcpy(enh, text, n);
				enh[n] = '\0';
			}
			text += n;
			while (*text == ' ')
				text++;
		}
		/* The class digit of the code and the enhanced code agree
		 * (RFC 3463 2). */
		enh[0] = (char)('0' + code / 100);
		if (*text == '\0')
			text = NULL;
	}
	snprintf(reason, sizeof(reason), "rule %s", name);
	if (text != NULL)
		flt_verdict_set(call, rej ? FLT_REJECT : FLT_TEMPFAIL, code,
		                enh, reason, "%s", text);
	else if (rej)
		flt_verdict_set(call, FLT_REJECT, code, enh, reason,
		                "Error: rejected by policy rule %s", name);
	else
		flt_verdict_set(call, FLT_TEMPFAIL, code, enh, reason,
		                "Error: deferred by policy rule %s, try again "
		                "later",
		                name);
}

static void
flt_rules_note(enum rule_action *best, size_t *best_rule, enum rule_action a,
               size_t rule)
{
	if (a > *best) {
		*best = a;
		*best_rule = rule;
	}
}

static int
flt_rules_helo(struct flt_call *call)
{
	struct flt_rules_state *st = call->state;
	size_t rule = 0;
	enum rule_action a;

	if (st == NULL)
		return 1;
	if (!st->connect_done) {
		char subject[320];
		const char *name = flt_call_client_name(call);

		st->connect_done = true;
		snprintf(subject, sizeof(subject), "%s[%s]",
		         name ? name : "unknown", call->s->client_ip);
		a = flt_rules_smtp(call, st, RULE_CONNECT, subject, &rule);
		flt_rules_note(&st->session_action, &st->session_rule, a, rule);
	}
	a = flt_rules_smtp(call, st, RULE_HELO,
	                   call->s->helo ? call->s->helo : "", &rule);
	flt_rules_note(&st->session_action, &st->session_rule, a, rule);
	return 1;
}

/* flt_rules_envelope - the mailfrom or rcptto rules on addr: a reject or
 * tempfail answers this command; accept holds for the transaction. */
static int
flt_rules_envelope(struct flt_call *call, struct flt_rules_state *st,
                   enum rule_type type, const char *addr)
{
	size_t rule = 0;
	enum rule_action a =
	    flt_rules_smtp(call, st, type, addr ? addr : "", &rule);

	if (a == RULE_ACTION_REJECT || a == RULE_ACTION_TEMPFAIL)
		flt_rules_verdict(call, a, rule);
	else
		flt_rules_note(&st->txn_action, &st->txn_rule, a, rule);
	return 1;
}

static int
flt_rules_mail(struct flt_call *call)
{
	struct flt_rules_state *st = call->state;

	if (st == NULL)
		return 1;
	if (st->session_action == RULE_ACTION_REJECT ||
	    st->session_action == RULE_ACTION_TEMPFAIL) {
		flt_rules_verdict(call, st->session_action, st->session_rule);
		return 1;
	}
	return flt_rules_envelope(call, st, RULE_MAILFROM, call->s->mail_from);
}

static int
flt_rules_rcpt(struct flt_call *call)
{
	struct flt_rules_state *st = call->state;

	if (st == NULL)
		return 1;
	return flt_rules_envelope(call, st, RULE_RCPTTO, call->s->rcpt);
}

/* Worker thread: decode and match.  Touches only the job. */
static void
flt_rules_work(void *arg)
{
	struct flt_rules_job *job = arg;
	const struct rule_set *set = job->cfg->ruleset;
	struct rule_msg *msg =
	    rule_msg_parse(job->buf, job->len, job->truncated);

	job->run = rule_run_new(set);
	for (size_t i = 0; i < job->npre; i++)
		rule_run_set_count(job->run, job->pre[i].rule,
		                   job->pre[i].count);
	rule_run_message(job->run, msg, job->envelope_from);
	job->flags = msg->flags;
	rule_msg_free(&msg);
	free(job->buf);
	job->buf = NULL;
}

static void
flt_rules_job_free(struct flt_rules_job *job)
{
	rule_run_free(&job->run);
	free(job->buf);
	free(job->envelope_from);
	free(job->pre);
	px_config_unref(&job->cfg);
	free(job);
}

/* Loop thread: the result. */
static void
flt_rules_done(void *arg)
{
	struct flt_rules_job *job = arg;
	struct flt_call *call = job->call;
	const struct rule_set *set = job->cfg->ruleset;

	if (job->st != NULL)
		job->st->job = NULL;
	if (call == NULL) { /* cancelled: nobody waits */
		flt_rules_job_free(job);
		return;
	}
	for (size_t i = 0; i < rule_set_size(set); i++)
		if (rule_run_count(job->run, i) > 0 &&
		    rule_reported(set, i, true))
			flt_symbol_add(call, rule_name(set, i),
			               rule_score(set, i, true));
	flt_rules_job_free(job);
	flt_resume(call);
}

static int
flt_rules_eom(struct flt_call *call)
{
	struct flt_rules_state *st = call->state;
	struct flt_rules_job *job;

	if (st == NULL || call->s->message == NULL)
		return 1;
	if (st->session_action == RULE_ACTION_ACCEPT ||
	    st->txn_action == RULE_ACTION_ACCEPT) {
		const struct rule_set *set = call->s->cfg->ruleset;
		size_t rule = st->txn_action == RULE_ACTION_ACCEPT
		                  ? st->txn_rule
		                  : st->session_rule;
		char reason[128];

		snprintf(reason, sizeof(reason), "rule %s",
		         rule_name(set, rule));
		flt_verdict_set(call, FLT_ACCEPT, 0, NULL, reason, NULL);
		return 1;
	}
	job = px_calloc(1, sizeof(*job));
	job->call = call;
	job->st = st;
	job->cfg = px_config_ref((struct px_config *)call->s->cfg);
	/* The copy is made here, on the loop: the spool belongs to the
	 * transaction and may be reset while the worker runs. */
	job->buf = px_spool_copy(call->s->message, FLT_RULES_SCAN_MAX,
	                         &job->len, &job->truncated);
	job->envelope_from =
	    px_strdup(call->s->mail_from ? call->s->mail_from : "");
	if (st->nhits > 0) {
		job->pre = px_malloc(st->nhits * sizeof(*job->pre));
		memcpy(job->pre, st->hits, st->nhits * sizeof(*job->pre));
		job->npre = st->nhits;
	}
	st->job = job;
	px_workers_submit(call->s->loop, flt_rules_work, flt_rules_done, job);
	return 0;
}

static void
flt_rules_cancel(struct flt_call *call)
{
	struct flt_rules_state *st = call->state;

	if (st != NULL && st->job != NULL) {
		st->job->call = NULL;
		st->job->st = NULL;
		st->job = NULL;
	}
}

const struct flt_ops flt_rules = {
    .name = "rules",
    .session_new = flt_rules_session_new,
    .session_free = flt_rules_session_free,
    .reset = flt_rules_reset,
    .on_stage =
        {
            [FLT_STAGE_HELO] = flt_rules_helo,
            [FLT_STAGE_MAIL] = flt_rules_mail,
            [FLT_STAGE_RCPT] = flt_rules_rcpt,
            [FLT_STAGE_EOM] = flt_rules_eom,
        },
    .cancel = flt_rules_cancel,
};
