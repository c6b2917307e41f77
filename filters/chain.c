/* SPDX-License-Identifier: MIT */
/*
 * chain.c - runs the filters at each stage and merges what they say.
 *
 * flt_chain_new(), flt_chain_free(): per-session life, with each filter's
 * own state.  flt_chain_run(): start a stage, all filters at once; answer
 * at once or later through the done callback.  flt_symbol_add(),
 * flt_verdict_set(), flt_resume(): what filters call.  flt_chain_score(),
 * flt_chain_symbols(), flt_chain_decide(), flt_chain_spam_headers(): the
 * results, as the session logs them and writes them into the message.
 *
 * The chain owns the stage timeout (timeouts.filter): a filter that has not
 * answered by then is cancelled and treated as "continue", because a slow
 * check must never hold mail longer than the client waits (RFC 5321
 * 4.5.3.2).  Each filter decides what its own errors mean by the verdict it
 * returns.
 */
#include "filter.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "netaddr.h"

#define FLT_MAX_SYMBOLS 128

/* The filters, in the order their verdicts are merged. */
static const struct flt_ops *const flt_table[] = {
    &flt_dnsbl,     &flt_iprev,   &flt_pregreet, &flt_helo,       &flt_spf,
    &flt_ratelimit, &flt_harvest, &flt_greylist, &flt_reputation, &flt_dkim,
    &flt_dmarc,     &flt_rules,   &flt_uribl,
};
#define FLT_N (sizeof(flt_table) / sizeof(flt_table[0]))

/* The transaction log's filter keys, in the order they are written. */
static const char *const flt_log_keys[] = {"greylist", "ratelimit",
                                           "reputation"};
#define FLT_NLOG (sizeof(flt_log_keys) / sizeof(flt_log_keys[0]))

struct flt_symbol {
	char name[48];
	double score;
	bool session; /* connect/HELO symbol: survives transactions */
};

struct flt_chain {
	const struct flt_session *s;
	void *state[FLT_N];
	struct flt_call calls[FLT_N];
	/* Grown on demand: an idle connection should cost little. */
	struct flt_symbol *symbols;
	unsigned nsymbols;
	unsigned symcap;
	/* The stage in progress. */
	enum flt_stage stage;
	unsigned npending;
	bool starting;
	flt_chain_done_fn *done;
	void *done_arg;
	struct event *timer;
	struct timespec stage_start; /* for the stage's duration metric */
	char *client_name;           /* verified reverse DNS name */
	enum flt_iprev iprev;
	unsigned facts;
	char log[FLT_NLOG][24];
	bool log_session[FLT_NLOG]; /* set at connect/HELO: kept */
	enum flt_spf spf;
	char *spf_domain;
	struct flt_dkim_sig *dkim; /* NULL: not evaluated */
	unsigned ndkim;
	struct flt_dmarc_res *dmarc; /* NULL: not evaluated */
};

struct flt_chain *
flt_chain_new(const struct flt_session *s)
{
	struct flt_chain *c = px_calloc(1, sizeof(*c));

	c->s = s;
	for (unsigned i = 0; i < FLT_N; i++)
		if (flt_table[i]->session_new != NULL)
			c->state[i] = flt_table[i]->session_new(s);
	return c;
}

static void
flt_chain_cancel(struct flt_chain *c)
{
	for (unsigned i = 0; i < FLT_N; i++) {
		struct flt_call *call = &c->calls[i];

		if (!call->pending)
			continue;
		call->pending = false;
		if (flt_table[i]->cancel != NULL)
			flt_table[i]->cancel(call);
	}
	c->npending = 0;
	if (c->timer != NULL)
		evtimer_del(c->timer);
}

void
flt_chain_free(struct flt_chain **cp)
{
	struct flt_chain *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	flt_chain_cancel(c);
	for (unsigned i = 0; i < FLT_N; i++)
		if (flt_table[i]->session_free != NULL)
			flt_table[i]->session_free(c->state[i]);
	if (c->timer != NULL)
		event_free(c->timer);
	free(c->symbols);
	free(c->client_name);
	free(c->spf_domain);
	free(c->dkim);
	free(c->dmarc);
	free(c);
}

void
flt_symbol_add(struct flt_call *call, const char *name, double score)
{
	struct flt_chain *c = call->chain;

	for (unsigned i = 0; i < c->nsymbols; i++)
		if (strcmp(c->symbols[i].name, name) == 0)
			return;
	if (c->nsymbols == FLT_MAX_SYMBOLS)
		return;
	if (c->nsymbols == c->symcap) {
		c->symcap = c->symcap ? c->symcap * 2 : 4;
		c->symbols =
		    px_realloc(c->symbols, c->symcap * sizeof(*c->symbols));
	}
	struct flt_symbol *sym = &c->symbols[c->nsymbols++];

	snprintf(sym->name, sizeof(sym->name), "%s", name);
	sym->score = score;
	sym->session = call->stage <= FLT_STAGE_HELO;
}

void
flt_client_name_set(struct flt_call *call, const char *name,
                    enum flt_iprev result)
{
	struct flt_chain *c = call->chain;

	free(c->client_name);
	c->client_name = name != NULL ? px_strdup(name) : NULL;
	c->iprev = result;
}

void
flt_log_field(struct flt_call *call, const char *key, const char *value)
{
	struct flt_chain *c = call->chain;

	for (unsigned i = 0; i < FLT_NLOG; i++) {
		if (strcmp(flt_log_keys[i], key) != 0)
			continue;
		snprintf(c->log[i], sizeof(c->log[i]), "%s", value);
		c->log_session[i] = call->stage <= FLT_STAGE_HELO;
	}
}

size_t
flt_chain_log_fields(const struct flt_chain *c, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < FLT_NLOG && n < size; i++) {
		int k = snprintf(buf + n, size - n, " %s=%s", flt_log_keys[i],
		                 c->log[i][0] ? c->log[i] : "-");

		if (k < 0)
			break;
		n += (size_t)k;
	}
	return n < size ? n : size - 1;
}

void
flt_chain_txn_end(struct flt_chain *c, const char *result)
{
	for (unsigned i = 0; i < FLT_N; i++)
		if (flt_table[i]->txn_end != NULL)
			flt_table[i]->txn_end(c->state[i], c, result);
}

bool
flt_chain_has_symbol(const struct flt_chain *c, const char *name)
{
	for (unsigned i = 0; i < c->nsymbols; i++)
		if (strcmp(c->symbols[i].name, name) == 0)
			return true;
	return false;
}

void
flt_chain_foreach_symbol(const struct flt_chain *c,
                         void (*fn)(const char *name, void *arg), void *arg)
{
	for (unsigned i = 0; i < c->nsymbols; i++)
		fn(c->symbols[i].name, arg);
}

const char *
flt_call_client_name(const struct flt_call *call)
{
	return call->chain->client_name;
}

void
flt_fact_set(struct flt_call *call, unsigned facts)
{
	call->chain->facts |= facts;
}

bool
flt_fact_has(const struct flt_call *call, unsigned facts)
{
	return (call->chain->facts & facts) != 0;
}

bool
flt_client_trusted(const struct flt_call *call)
{
	const struct flt_session *s = call->s;

	if (flt_fact_has(call, FLT_FACT_RELAY | FLT_FACT_AUTHENTICATED))
		return true;
	for (size_t i = 0; i < s->cfg->nrelay_networks; i++)
		if (px_cidr_match(&s->cfg->relay_networks[i], &s->client))
			return true;
	return false;
}

void
flt_chain_fact_set(struct flt_chain *c, unsigned facts)
{
	c->facts |= facts;
}

void
flt_spf_set(struct flt_call *call, enum flt_spf result, const char *domain)
{
	struct flt_chain *c = call->chain;

	free(c->spf_domain);
	c->spf_domain = domain != NULL ? px_strdup(domain) : NULL;
	c->spf = result;
}

enum flt_spf
flt_spf_get(const struct flt_call *call, const char **domain_r)
{
	if (domain_r != NULL)
		*domain_r = call->chain->spf_domain;
	return call->chain->spf;
}

void
flt_dkim_set(struct flt_call *call, const struct flt_dkim_sig *sigs, unsigned n)
{
	struct flt_chain *c = call->chain;

	free(c->dkim);
	/* One element at least, so "none" is told from "not evaluated". */
	c->dkim = px_calloc(n > 0 ? n : 1, sizeof(*c->dkim));
	if (n > 0)
		memcpy(c->dkim, sigs, n * sizeof(*sigs));
	c->ndkim = n;
}

int
flt_dkim_get(const struct flt_call *call, const struct flt_dkim_sig **sigs_r)
{
	return flt_chain_dkim(call->chain, sigs_r);
}

int
flt_chain_dkim(const struct flt_chain *c, const struct flt_dkim_sig **sigs_r)
{
	if (sigs_r != NULL)
		*sigs_r = c->dkim;
	return c->dkim != NULL ? (int)c->ndkim : -1;
}

void
flt_dmarc_set(struct flt_call *call, const struct flt_dmarc_res *r)
{
	struct flt_chain *c = call->chain;

	if (c->dmarc == NULL)
		c->dmarc = px_malloc(sizeof(*c->dmarc));
	*c->dmarc = *r;
}

const struct flt_dmarc_res *
flt_chain_dmarc(const struct flt_chain *c)
{
	return c->dmarc;
}

bool
flt_call_after(struct flt_call *call, const char *name, flt_after_fn *fn)
{
	struct flt_chain *c = call->chain;

	for (unsigned i = 0; i < call->index; i++) {
		if (strcmp(flt_table[i]->name, name) != 0)
			continue;
		if (!c->calls[i].pending)
			return false;
		call->after = i;
		call->after_fn = fn;
		return true;
	}
	return false;
}

void
flt_chain_data(struct flt_chain *c, const char *buf, size_t len)
{
	for (unsigned i = 0; i < FLT_N; i++) {
		struct flt_call call;

		if (flt_table[i]->on_data == NULL)
			continue;
		memset(&call, 0, sizeof(call));
		call.s = c->s;
		call.stage = FLT_STAGE_EOM;
		call.state = c->state[i];
		call.chain = c;
		call.index = i;
		flt_table[i]->on_data(&call, buf, len);
	}
}

enum flt_spf
flt_chain_spf(const struct flt_chain *c, const char **domain_r)
{
	if (domain_r != NULL)
		*domain_r = c->spf_domain;
	return c->spf;
}

const char *
flt_chain_client_name(const struct flt_chain *c, enum flt_iprev *iprev_r)
{
	if (iprev_r != NULL)
		*iprev_r = c->iprev;
	return c->client_name;
}

void
flt_verdict_set(struct flt_call *call, enum flt_action action, int code,
                const char *enh, const char *reason, const char *fmt, ...)
{
	struct flt_verdict *v = &call->verdict;
	va_list ap;

	v->action = action;
	v->code = code;
	snprintf(v->enh, sizeof(v->enh), "%s", enh ? enh : "");
	snprintf(v->reason, sizeof(v->reason), "%s", reason ? reason : "");
	v->text[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(v->text, sizeof(v->text), fmt, ap);
		va_end(ap);
	}
}

static int
flt_action_rank(enum flt_action a)
{
	switch (a) {
	case FLT_REJECT:
	case FLT_DISCONNECT:
		return 4;
	case FLT_TEMPFAIL:
		return 3;
	case FLT_ACCEPT:
		return 2;
	case FLT_TAG:
		return 1;
	default:
		return 0;
	}
}

static void
flt_chain_merge(struct flt_chain *c, struct flt_verdict *out)
{
	int best = 0;

	memset(out, 0, sizeof(*out));
	out->action = FLT_CONTINUE;
	for (unsigned i = 0; i < FLT_N; i++) {
		const struct flt_verdict *v = &c->calls[i].verdict;
		int rank = flt_action_rank(v->action);

		if (rank > best) {
			best = rank;
			*out = *v;
		}
	}
}

static void
flt_chain_finish(struct flt_chain *c)
{
	struct flt_verdict v;

	if (c->timer != NULL)
		evtimer_del(c->timer);
	px_metrics_stage(c->stage, px_secs_since(&c->stage_start));
	flt_chain_merge(c, &v);
	if (c->done != NULL) {
		flt_chain_done_fn *done = c->done;

		c->done = NULL;
		done(c->done_arg, &v);
	}
}

void
flt_resume(struct flt_call *call)
{
	struct flt_chain *c = call->chain;

	if (!call->pending)
		abort(); /* our bug: resumed twice or after cancel */
	call->pending = false;
	c->npending--;
	/* Calls waiting for this one (flt_call_after).  They may resume
	 * at once: the stage ends below, once, not inside their resume. */
	bool starting = c->starting;

	c->starting = true;
	for (unsigned i = 0; i < FLT_N; i++) {
		struct flt_call *w = &c->calls[i];
		flt_after_fn *fn = w->after_fn;

		if (!w->pending || fn == NULL || w->after != call->index)
			continue;
		w->after_fn = NULL;
		fn(w);
	}
	c->starting = starting;
	if (c->npending == 0 && !c->starting)
		flt_chain_finish(c);
}

static void
flt_chain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct flt_chain *c = arg;

	for (unsigned i = 0; i < FLT_N; i++)
		if (c->calls[i].pending)
			px_log_warn("%016llx filter %s timed out at stage %d",
			            (unsigned long long)c->s->sid,
			            flt_table[i]->name, (int)c->stage);
	flt_chain_cancel(c);
	flt_chain_finish(c);
}

int
flt_chain_run(struct flt_chain *c, enum flt_stage stage,
              flt_chain_done_fn *done, void *arg, struct flt_verdict *verdict_r)
{
	c->stage = stage;
	c->npending = 0;
	c->starting = true;
	c->done = NULL;
	clock_gettime(CLOCK_MONOTONIC, &c->stage_start);
	for (unsigned i = 0; i < FLT_N; i++) {
		struct flt_call *call = &c->calls[i];
		int rc;

		memset(call, 0, sizeof(*call));
		call->s = c->s;
		call->stage = stage;
		call->state = c->state[i];
		call->chain = c;
		call->index = i;
		call->verdict.action = FLT_CONTINUE;
		if (flt_table[i]->on_stage[stage] == NULL)
			continue;
		call->pending = true;
		c->npending++;
		rc = flt_table[i]->on_stage[stage](call);
		if (rc == 0)
			continue;
		if (call->pending) {
			call->pending = false;
			c->npending--;
		}
		if (rc < 0) {
			px_log_warn("%016llx filter %s failed at stage %d",
			            (unsigned long long)c->s->sid,
			            flt_table[i]->name, (int)stage);
			call->verdict.action = FLT_CONTINUE;
		}
	}
	c->starting = false;
	if (c->npending == 0) {
		px_metrics_stage(stage, px_secs_since(&c->stage_start));
		flt_chain_merge(c, verdict_r);
		return 1;
	}
	c->done = done;
	c->done_arg = arg;
	if (c->timer == NULL)
		c->timer = evtimer_new(c->s->base, flt_chain_timeout, c);
	/* At the end of data the client waits for its reply: the checks get
	 * eom_budget from the final dot, then the decision is made with what
	 * has come in (RFC 1047: a slow reply there duplicates mail). */
	double secs = c->s->cfg->timeouts.filter;

	if (stage == FLT_STAGE_EOM && c->s->cfg->eom_budget > 0 &&
	    c->s->cfg->eom_budget < secs)
		secs = c->s->cfg->eom_budget;
	struct timeval tv = px_timeval(secs);

	evtimer_add(c->timer, &tv);
	return 0;
}

void
flt_chain_reset_txn(struct flt_chain *c)
{
	unsigned j = 0;

	flt_chain_cancel(c);
	for (unsigned i = 0; i < c->nsymbols; i++)
		if (c->symbols[i].session)
			c->symbols[j++] = c->symbols[i];
	c->nsymbols = j;
	for (unsigned i = 0; i < FLT_NLOG; i++)
		if (!c->log_session[i])
			c->log[i][0] = '\0';
	free(c->spf_domain);
	c->spf_domain = NULL;
	c->spf = FLT_SPF_NOT_CHECKED;
	free(c->dkim);
	c->dkim = NULL;
	c->ndkim = 0;
	free(c->dmarc);
	c->dmarc = NULL;
	for (unsigned i = 0; i < FLT_N; i++)
		if (flt_table[i]->reset != NULL)
			flt_table[i]->reset(c->state[i]);
}

double
flt_chain_score(const struct flt_chain *c)
{
	double sum = 0;

	for (unsigned i = 0; i < c->nsymbols; i++)
		sum += c->symbols[i].score;
	return sum;
}

unsigned
flt_chain_nsymbols(const struct flt_chain *c)
{
	return c->nsymbols;
}

static int
flt_symbol_cmp(const void *a, const void *b)
{
	return strcmp(((const struct flt_symbol *)a)->name,
	              ((const struct flt_symbol *)b)->name);
}

void
flt_chain_symbols(const struct flt_chain *c, char *buf, size_t size,
                  const char *none_text)
{
	struct flt_symbol sorted[FLT_MAX_SYMBOLS];
	size_t n = 0;

	if (c->nsymbols == 0) {
		snprintf(buf, size, "%s", none_text);
		return;
	}
	memcpy(sorted, c->symbols, c->nsymbols * sizeof(sorted[0]));
	qsort(sorted, c->nsymbols, sizeof(sorted[0]), flt_symbol_cmp);
	buf[0] = '\0';
	for (unsigned i = 0; i < c->nsymbols && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "",
		                      sorted[i].name);
}

enum flt_action
flt_chain_decide(const struct flt_chain *c, const struct flt_verdict *merged,
                 const struct px_config *cfg)
{
	double score = flt_chain_score(c);

	if (merged->action != FLT_CONTINUE && merged->action != FLT_TAG)
		return merged->action;
	if (score >= cfg->actions.reject)
		return FLT_REJECT;
	if (score >= cfg->actions.tempfail)
		return FLT_TEMPFAIL;
	if (score >= cfg->actions.tag || merged->action == FLT_TAG)
		return FLT_TAG;
	return FLT_CONTINUE;
}

size_t
flt_chain_spam_headers(const struct flt_chain *c, bool spam,
                       const struct px_config *cfg, char *buf, size_t size)
{
	char syms[2048], folded[2200];
	size_t n = 0, col;
	int len;

	flt_chain_symbols(c, syms, sizeof(syms), "none");
	/* SpamAssassin's layout, so existing Sieve/Outlook rules match; the
	 * tests= list is folded after a comma (RFC 5322 2.2.3) so no line
	 * grows past 78 characters, as SpamAssassin does. */
	col = strlen("X-Spam-Status: Yes, score=-00.0 required=00.0 tests=");
	for (char *save, *sym = strtok_r(syms, ",", &save); sym != NULL;
	     sym = strtok_r(NULL, ",", &save)) {
		size_t sl = strlen(sym);

		if (n > 0) {
			folded[n++] = ',';
			col++;
			if (col + sl > 78) {
				memcpy(folded + n, "\r\n\t", 3);
				n += 3;
				col = 8;
			}
		}
		if (n + sl + 4 >= sizeof(folded))
			break;
		memcpy(folded + n, sym, sl);
		n += sl;
		col += sl;
	}
	folded[n] = '\0';
	len = snprintf(
	    buf, size,
	    "X-Spam-Status: %s, score=%.1f required=%.1f tests=%s\r\n"
	    "X-Spam-Score: %.1f\r\n%s",
	    spam ? "Yes" : "No", flt_chain_score(c), cfg->actions.tag, folded,
	    flt_chain_score(c), spam ? "X-Spam-Flag: YES\r\n" : "");
	if (len < 0)
		return 0;
	return (size_t)len < size ? (size_t)len : size - 1;
}
