/* SPDX-License-Identifier: MIT */
/*
 * filter.h - the interface every check implements, and the chain that runs
 * them at each SMTP stage.
 *
 * A filter is one `const struct flt_ops flt_<name>` in its own file, listed
 * in the table in chain.c.  At each stage the chain starts every filter that
 * has a callback for it, all at once, and merges their verdicts when the
 * last one is done (or when timeouts.filter runs out: a filter still
 * pending then is cancelled and counts as "continue").
 *
 * Callback contract (HAProxy filters-t.h style):
 *   on_stage[stage](call) runs on the session's loop thread.  It returns
 *     -1  error: logged, counts as "continue" (a broken check never blocks
 *         mail; checks with a stricter policy return a TEMPFAIL verdict);
 *      0  pending: the filter keeps `call` and calls flt_resume(call)
 *         exactly once later, from the loop thread, unless cancel(call) ran
 *         first (then it must never touch call again);
 *      1  done: call->verdict is filled (FLT_CONTINUE by default).
 *   Symbols are added with flt_symbol_add() at any time before the result.
 */
#ifndef MX_FILTER_H
#define MX_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

struct event_base;
struct px_loop;
struct px_spool;

enum flt_stage {
	FLT_STAGE_CONNECT = 0,
	FLT_STAGE_HELO,
	FLT_STAGE_MAIL,
	FLT_STAGE_RCPT,
	FLT_STAGE_EOM,
	FLT_NSTAGES,
};

enum flt_action {
	FLT_CONTINUE = 0, /* no opinion: scores decide */
	FLT_ACCEPT,       /* accept whatever the score (a whitelist) */
	FLT_TAG,          /* pass, marked as spam */
	FLT_TEMPFAIL,     /* 4xx, try again later */
	FLT_REJECT,       /* 5xx */
	FLT_DISCONNECT,   /* 421/5xx and close */
};

/* The session as filters see it: read-only, owned by the session, valid
 * for the session's life (fields change between stages). */
struct flt_session {
	uint64_t sid;
	unsigned txn; /* transaction number, 1.. */
	struct sockaddr_storage client;
	char client_ip[48];
	uint16_t client_port;
	enum px_mode mode;
	const char *helo; /* NULL before HELO/EHLO */
	bool esmtp;
	const char *mail_from; /* NULL before MAIL; "" for <> */
	const char *rcpt;      /* the recipient being checked (RCPT stage) */
	unsigned nrcpt;        /* recipients accepted so far */
	bool pregreet;         /* the client talked before our greeting */
	const struct px_config *cfg;
	struct px_loop *loop;
	struct event_base *base;
	struct px_spool *message; /* EOM stage: the decoded message */
};

struct flt_verdict {
	enum flt_action action;
	/* Optional reply for TEMPFAIL/REJECT/DISCONNECT; code 0 = the
	 * chain's default for the action. */
	int code;
	char enh[12];
	char text[256];
	char reason[128]; /* short, for the log */
};

struct flt_chain;
struct flt_call;

typedef void flt_after_fn(struct flt_call *call);

struct flt_call {
	const struct flt_session *s;
	enum flt_stage stage;
	void *state; /* the filter's per-session state */
	struct flt_verdict verdict;
	/* private to chain.c */
	struct flt_chain *chain;
	unsigned index;
	bool pending;
	unsigned after;         /* the index waited for */
	flt_after_fn *after_fn; /* NULL: not waiting */
};

struct flt_ops {
	const char *name;
	/* Per-session state: created at connect (may return NULL), freed at
	 * disconnect; reset at the end of each transaction.  All optional. */
	void *(*session_new)(const struct flt_session *s);
	void (*session_free)(void *state);
	void (*reset)(void *state);
	/* Stage callbacks; NULL = nothing to do at that stage. */
	int (*on_stage[FLT_NSTAGES])(struct flt_call *call);
	/* on_data - message bytes as they go into the spool (after
	 * dot-unstuffing and the removal of forged Authentication-Results,
	 * CRLF line ends, any split), between DATA and the EOM stage.  Runs
	 * on the loop thread and must not block; call is a temporary (stage
	 * FLT_STAGE_EOM) valid for facts and the session only: no verdict,
	 * no resume.  Optional. */
	void (*on_data)(struct flt_call *call, const char *buf, size_t len);
	/* A pending call is abandoned (timeout, or the session ends). */
	void (*cancel)(struct flt_call *call);
	/* The transaction ended with result ("accept", "tag", "reject",
	 * "tempfail", "abort", "error"), before reset.  Optional. */
	void (*txn_end)(void *state, const struct flt_chain *c,
	                const char *result);
};

/* flt_symbol_add - add a scored symbol (name up to 47 chars, [A-Z0-9_]).
 * Connect and HELO symbols last for the session, later ones for the
 * transaction.  Adding the same symbol twice keeps the first. */
void flt_symbol_add(struct flt_call *call, const char *name, double score);

/* flt_verdict_set - fill call->verdict; text is printf-like. */
void flt_verdict_set(struct flt_call *call, enum flt_action action, int code,
                     const char *enh, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* RFC 8601 iprev results. */
enum flt_iprev {
	FLT_IPREV_NONE = 0, /* not evaluated */
	FLT_IPREV_PASS,
	FLT_IPREV_FAIL,
	FLT_IPREV_TEMPERROR,
	FLT_IPREV_PERMERROR,
};

/* flt_client_name_set - publish the client's verified reverse DNS name
 * (NULL when none) and the iprev result, for XCLIENT, the Received header
 * and later Authentication-Results. */
void flt_client_name_set(struct flt_call *call, const char *name,
                         enum flt_iprev result);

/*
 * What one filter learns about the client or sender that another uses
 * (greylisting skips DNSWL-listed clients, reputation learns from SPF...).
 * Session facts are set at connect/HELO; all last for the session.
 */
enum flt_fact {
	FLT_FACT_DNSWL = 1u << 0,         /* a list with a negative weight */
	FLT_FACT_RELAY = 1u << 1,         /* client in relay_networks */
	FLT_FACT_AUTHENTICATED = 1u << 2, /* SMTP AUTH succeeded */
	FLT_FACT_GOOD_REPUTATION = 1u << 3,
	FLT_FACT_BAD_REPUTATION = 1u << 4,
};

void flt_fact_set(struct flt_call *call, unsigned facts);
bool flt_fact_has(const struct flt_call *call, unsigned facts);

/* flt_client_trusted - the client is in relay_networks or authenticated:
 * sender authentication (SPF, DKIM, DMARC) is not ours to check for it
 * unless the check's check_trusted says so. */
bool flt_client_trusted(const struct flt_call *call);

/* RFC 7208 results, as the SPF filter publishes them for the MAIL FROM
 * identity (or the HELO identity for a null sender). */
enum flt_spf {
	FLT_SPF_NOT_CHECKED = 0,
	FLT_SPF_NONE,
	FLT_SPF_NEUTRAL,
	FLT_SPF_PASS,
	FLT_SPF_FAIL,
	FLT_SPF_SOFTFAIL,
	FLT_SPF_TEMPERROR,
	FLT_SPF_PERMERROR,
};

/* flt_spf_set - publish the transaction's SPF result and the domain it
 * authenticated (the MAIL FROM domain, or the HELO name).  Final by the end
 * of the MAIL stage, so RCPT-stage filters (greylisting) can use it. */
void flt_spf_set(struct flt_call *call, enum flt_spf result,
                 const char *domain);
/* flt_spf_get - the result (FLT_SPF_NOT_CHECKED if none) and *domain_r
 * (NULL if none), valid until the transaction ends. */
enum flt_spf flt_spf_get(const struct flt_call *call, const char **domain_r);

/* RFC 8601 2.7.1 DKIM results, one per signature. */
enum flt_dkim {
	FLT_DKIM_NONE = 0, /* no signature (the message's result only) */
	FLT_DKIM_PASS,
	FLT_DKIM_FAIL,
	FLT_DKIM_NEUTRAL,
	FLT_DKIM_POLICY,
	FLT_DKIM_TEMPERROR,
	FLT_DKIM_PERMERROR,
};

/* One evaluated DKIM-Signature, as the DKIM filter publishes it. */
struct flt_dkim_sig {
	enum flt_dkim result;
	bool testing;      /* the key has t=y (RFC 6376 3.6.1) */
	bool aligned;      /* d= is the From domain, a parent or a child */
	char domain[256];  /* d=, "" if unreadable */
	char selector[64]; /* s= */
	char b[16];        /* the first 8 characters of b= (RFC 6008) */
	char alg[24];      /* a=: "rsa-sha256", "rsa-sha1", "ed25519-sha256" */
	char reason[64];   /* why not pass, for the log and A-R comment */
};

/* flt_dkim_set - publish the transaction's DKIM results (n signatures,
 * copied; n = 0: the message had none). */
void flt_dkim_set(struct flt_call *call, const struct flt_dkim_sig *sigs,
                  unsigned n);
/* flt_dkim_get - -1 if DKIM was not evaluated, else the number of
 * signatures, *sigs_r pointing at them until the transaction ends. */
int flt_dkim_get(const struct flt_call *call,
                 const struct flt_dkim_sig **sigs_r);

/* RFC 7489 11.2 DMARC results. */
enum flt_dmarc {
	FLT_DMARC_NONE = 0, /* no policy record */
	FLT_DMARC_PASS,
	FLT_DMARC_FAIL,
	FLT_DMARC_TEMPERROR,
	FLT_DMARC_PERMERROR,
};

/* The DMARC result as the DMARC filter publishes it. */
struct flt_dmarc_res {
	enum flt_dmarc result;
	char from[256];  /* the From domain, "" if unknown */
	char p[16];      /* "NONE", "QUARANTINE", "REJECT"; "" if no record */
	char sp[16];     /* the subdomain policy (p when absent) */
	char dis[16];    /* the disposition applied (after pct) */
	char reason[64]; /* for none/permerror: why */
};

/* flt_dmarc_set - publish the transaction's DMARC result (copied). */
void flt_dmarc_set(struct flt_call *call, const struct flt_dmarc_res *r);

/* flt_chain_dmarc - the transaction's DMARC result, NULL if not
 * evaluated. */
const struct flt_dmarc_res *flt_chain_dmarc(const struct flt_chain *c);

/*
 * flt_call_after - a pending call (the filter returns 0 after this) waits
 * for the filter named name, earlier in the chain's table, to finish the
 * current stage: false if that one is not pending (it is done, or has
 * nothing to do at this stage); true if fn(call) will be called on the
 * loop when it resumes (or never, if the stage is cancelled first).
 */
bool flt_call_after(struct flt_call *call, const char *name, flt_after_fn *fn);

/*
 * flt_log_field - key=value for the transaction's log line.  The keys, and
 * their order on the line, are the chain's table (flt_log_keys in chain.c:
 * "greylist", "ratelimit", "reputation"); a key not set prints "-".
 */
void flt_log_field(struct flt_call *call, const char *key, const char *value);

/* flt_call_client_name - the verified reverse DNS name, or NULL. */
const char *flt_call_client_name(const struct flt_call *call);

/* flt_resume - a pending call is done (see the contract above). */
void flt_resume(struct flt_call *call);

/* The chain, used by the session. */

typedef void flt_chain_done_fn(void *arg, const struct flt_verdict *verdict);

/* flt_chain_new - per-session chain; s must outlive it. Runs every
 * filter's session_new. */
struct flt_chain *flt_chain_new(const struct flt_session *s);

/* flt_chain_free - cancels pending calls, frees filter states; *cp = NULL. */
void flt_chain_free(struct flt_chain **cp);

/*
 * flt_chain_run - run stage.  Returns 1 when every filter finished at once,
 * with the merged verdict in *verdict_r; 0 when some are pending: done(arg,
 * verdict) is then called later (never before flt_chain_run returns), unless
 * flt_chain_free() comes first.  Merging: the first REJECT or DISCONNECT in
 * table order wins, else the first TEMPFAIL, else ACCEPT, else TAG, else
 * CONTINUE.
 */
int flt_chain_run(struct flt_chain *c, enum flt_stage stage,
                  flt_chain_done_fn *done, void *arg,
                  struct flt_verdict *verdict_r);

/* flt_chain_reset_txn - end of transaction: drop transaction symbols and
 * call every filter's reset. */
void flt_chain_reset_txn(struct flt_chain *c);

/* flt_chain_score - session plus transaction score. */
double flt_chain_score(const struct flt_chain *c);

/* flt_chain_symbols - "SYM1,SYM2" (sorted by name) into buf, or none_text
 * when there are none. */
void flt_chain_symbols(const struct flt_chain *c, char *buf, size_t size,
                       const char *none_text);

/* flt_chain_fact_set - a fact the session itself knows (FLT_FACT_RELAY:
 * the client is in relay_networks), for the filters to read; lasts for the
 * session. */
void flt_chain_fact_set(struct flt_chain *c, unsigned facts);

/* flt_chain_client_name - the verified name (NULL if none) and *iprev_r. */
const char *flt_chain_client_name(const struct flt_chain *c,
                                  enum flt_iprev *iprev_r);

/* flt_chain_log_fields - " greylist=... ratelimit=..." for the txn log
 * line (every key of the table, "-" when unset).  Returns the length. */
size_t flt_chain_log_fields(const struct flt_chain *c, char *buf, size_t size);

/* flt_chain_txn_end - tell the filters how the transaction ended (see
 * flt_ops.txn_end); before flt_chain_reset_txn. */
void flt_chain_txn_end(struct flt_chain *c, const char *result);

/* flt_chain_has_symbol - the symbol was added (session or transaction). */
bool flt_chain_has_symbol(const struct flt_chain *c, const char *name);

/* flt_chain_foreach_symbol - fn(name, arg) for each symbol. */
void flt_chain_foreach_symbol(const struct flt_chain *c,
                              void (*fn)(const char *name, void *arg),
                              void *arg);

/* flt_chain_spf - the transaction's SPF result and *domain_r (NULL if
 * none), as flt_spf_get gives it to filters. */
enum flt_spf flt_chain_spf(const struct flt_chain *c, const char **domain_r);

/* flt_chain_dkim - the transaction's DKIM results as flt_dkim_get gives
 * them to filters (-1: not evaluated). */
int flt_chain_dkim(const struct flt_chain *c,
                   const struct flt_dkim_sig **sigs_r);

/* flt_chain_data - pass message bytes to every filter's on_data (see
 * flt_ops).  Loop thread, between DATA and the EOM stage. */
void flt_chain_data(struct flt_chain *c, const char *buf, size_t len);

/* flt_chain_nsymbols - number of symbols (session + transaction). */
unsigned flt_chain_nsymbols(const struct flt_chain *c);

/*
 * flt_chain_decide - the end-of-data action from a merged verdict and the
 * score against cfg->actions: a hard verdict wins; else score >= reject ->
 * REJECT, >= tempfail -> TEMPFAIL, >= tag -> TAG, else CONTINUE.
 */
enum flt_action flt_chain_decide(const struct flt_chain *c,
                                 const struct flt_verdict *merged,
                                 const struct px_config *cfg);

/*
 * flt_chain_spam_headers - the X-Spam-* headers in SpamAssassin's form, for
 * action (TAG = spam), each line ending in CRLF, into buf.  Returns the
 * length (truncated at size-1).
 */
size_t flt_chain_spam_headers(const struct flt_chain *c, bool spam,
                              const struct px_config *cfg, char *buf,
                              size_t size);

extern const struct flt_ops flt_pregreet;
extern const struct flt_ops flt_dnsbl;
extern const struct flt_ops flt_iprev;
extern const struct flt_ops flt_helo;
extern const struct flt_ops flt_spf;
extern const struct flt_ops flt_uribl;
extern const struct flt_ops flt_dkim;
extern const struct flt_ops flt_dmarc;
extern const struct flt_ops flt_ratelimit;
extern const struct flt_ops flt_harvest;
extern const struct flt_ops flt_greylist;
extern const struct flt_ops flt_reputation;
extern const struct flt_ops flt_rules;

#endif
