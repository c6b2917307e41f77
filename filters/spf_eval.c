/* SPDX-License-Identifier: MIT */
/*
 * spf_eval.c - RFC 7208 check_host() with libspf2, on a worker thread.
 *
 * flt_spf_evaluate(): one evaluation, with its own libspf2 server whose
 * DNS layer (an SPF_dns_server_t) is ours:
 *   get_spf  fetches the TXT records of the current domain through
 *            flt_dns_resolve(), selects the SPF record (4.5), checks it
 *            against the grammar (spf_syntax.c) and compiles the rewritten
 *            record;
 *   lookup   answers libspf2's A/AAAA/MX/PTR/TXT queries through
 *            flt_dns_resolve().
 * Both count what RFC 7208 4.6.4 limits across the whole evaluation
 * (libspf2 counts per record, so not across include:): 10 DNS-querying
 * terms, 2 void lookups, 10 names per mx (more is a permerror) or ptr
 * (the rest is ignored).  When our layer knows the answer (a limit, a
 * syntax error, a DNS error RFC 7208 makes a temperror, a missing record)
 * it records it in ev->forced, answers every later query with "no data" so
 * libspf2 winds down, and the forced result replaces libspf2's.  This is
 * sound because check_host() stops at the first such error (4.6, 5).
 *
 * Which query belongs to which term is inferred from libspf2's order: an
 * MX or PTR answer is followed by the address lookups of its names; every
 * other A/AAAA/MX/PTR query starts a term.  TXT queries outside get_spf
 * are exp= lookups (6.2), never counted, their errors ignored.
 *
 * A name ending in FLT_SPF_ANY_SUFFIX (a rewritten "a//0", "mx/0") is
 * looked up without it and answered with the client's own address when it
 * has any address record; so are the names of such an mx.  Explanations
 * are fetched for libspf2 but expanded here (flt_spf_explain_expand).
 *
 * What stays libspf2's: loopback clients pass without a lookup (the filter
 * does not evaluate them), and %{p}'s lookups count as a term.
 */
#include "spf_eval.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "dns.h"
#include "dnsname.h"
#include "spf_syntax.h"

enum flt_spf_kind {
	FLT_SPF_TERM,     /* a, mx, ptr, exists: counted */
	FLT_SPF_MX_HOST,  /* an address of an MX name */
	FLT_SPF_PTR_HOST, /* an address of a PTR name */
	FLT_SPF_PTR_TERM, /* ptr: errors mean "no match" (5.5) */
	FLT_SPF_EXP,      /* exp= text */
};

const char *
flt_spf_result_name(enum flt_spf r)
{
	switch (r) {
	case FLT_SPF_PASS:
		return "pass";
	case FLT_SPF_FAIL:
		return "fail";
	case FLT_SPF_SOFTFAIL:
		return "softfail";
	case FLT_SPF_NEUTRAL:
		return "neutral";
	case FLT_SPF_TEMPERROR:
		return "temperror";
	case FLT_SPF_PERMERROR:
		return "permerror";
	default:
		return "none";
	}
}

static void
flt_spf_force(struct flt_spf_eval *ev, enum flt_spf r, const char *why,
              const char *name)
{
	if (ev->forced != FLT_SPF_NOT_CHECKED)
		return;
	ev->forced = r;
	snprintf(ev->problem, sizeof(ev->problem), "%s%s%s", why,
	         name ? ": " : "", name ? name : "");
	/* The problem text goes into a header: printable only. */
	for (char *p = ev->problem; *p; p++)
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
			*p = '?';
}

/* flt_spf_stopped - true if the evaluation must wind down (a forced
 * result, the caller gone, the budget spent). */
static bool
flt_spf_stopped(struct flt_spf_eval *ev)
{
	struct timespec now;
	double spent;

	if (ev->forced != FLT_SPF_NOT_CHECKED)
		return true;
	if (atomic_load(&ev->abandoned)) {
		flt_spf_force(ev, FLT_SPF_TEMPERROR, "abandoned", NULL);
		return true;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	spent = (double)(now.tv_sec - ev->start.tv_sec) +
	        (double)(now.tv_nsec - ev->start.tv_nsec) / 1e9;
	if (spent > ev->budget) {
		flt_spf_force(ev, FLT_SPF_TEMPERROR, "time limit exceeded",
		              NULL);
		return true;
	}
	return false;
}

/* flt_spf_txt_join - the character-strings of one TXT RDATA joined
 * (3.3), as len bytes in out (not NUL-terminated inside: may hold NUL). */
static size_t
flt_spf_txt_join(const unsigned char *p, int len, char *out, size_t size)
{
	size_t n = 0;
	int i = 0;

	while (i < len) {
		unsigned l = p[i++];

		if (i + (int)l > len)
			l = (unsigned)(len - i);
		if (n + l >= size)
			l = (unsigned)(size - 1 - n);
		memcpy(out + n, p + i, l);
		n += l;
		i += (int)l;
	}
	return n;
}

static SPF_dns_rr_t *
flt_spf_rr_empty(SPF_dns_server_t *d, const char *domain, ns_type type,
                 int herrno)
{
	return SPF_dns_rr_new_init(d, domain, type, 0, herrno);
}

static bool
flt_spf_rr_add(SPF_dns_rr_t *rr, const void *data, size_t len)
{
	if (SPF_dns_rr_buf_realloc(rr, rr->num_rr, len) != SPF_E_SUCCESS)
		return false;
	memcpy(rr->rr[rr->num_rr], data, len);
	rr->num_rr++;
	return true;
}

/* flt_spf_any_name - name ends in FLT_SPF_ANY_SUFFIX: the name without
 * it into real, and true. */
static bool
flt_spf_any_name(const char *name, char *real, size_t size)
{
	size_t n = strlen(name), sl = strlen(FLT_SPF_ANY_SUFFIX);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n < sl + 2 || name[n - sl - 1] != '.' ||
	    strncasecmp(name + n - sl, FLT_SPF_ANY_SUFFIX, sl) != 0 ||
	    n - sl - 1 >= size)
		return false;
	memcpy(real, name, n - sl - 1);
	real[n - sl - 1] = '\0';
	return true;
}

/* flt_spf_classify - which term this query serves (see the top). */
static enum flt_spf_kind
flt_spf_classify(struct flt_spf_eval *ev, const char *domain, ns_type type)
{
	if (type == ns_t_txt)
		return FLT_SPF_EXP;
	if ((type == ns_t_a || type == ns_t_aaaa) &&
	    ev->follow_next < ev->nfollow &&
	    strcasecmp(domain, ev->follow[ev->follow_next]) == 0) {
		ev->follow_next++;
		return ev->follow_ptr ? FLT_SPF_PTR_HOST : FLT_SPF_MX_HOST;
	}
	ev->nfollow = ev->follow_next = 0;
	return type == ns_t_ptr ? FLT_SPF_PTR_TERM : FLT_SPF_TERM;
}

/* flt_spf_dns_lookup - libspf2's lookup hook. */
static SPF_dns_rr_t *
flt_spf_dns_lookup(SPF_dns_server_t *d, const char *domain, ns_type type,
                   int should_cache)
{
	struct flt_spf_eval *ev = d->hook;
	struct flt_dns_result res;
	enum flt_spf_kind kind;
	SPF_dns_rr_t *rr;
	char real[256];
	bool term, any;

	if (type != ns_t_a && type != ns_t_aaaa && type != ns_t_mx &&
	    type != ns_t_ptr && type != ns_t_txt)
		return flt_spf_rr_empty(d, domain, type, NO_DATA);
	if (flt_spf_stopped(ev))
		return flt_spf_rr_empty(d, domain, type, HOST_NOT_FOUND);
	kind = flt_spf_classify(ev, domain, type);
	term = kind == FLT_SPF_TERM || kind == FLT_SPF_PTR_TERM;
	if (term && ++ev->lookups > FLT_SPF_MAX_LOOKUPS) {
		flt_spf_force(ev, FLT_SPF_PERMERROR,
		              "more than 10 DNS-querying terms", NULL);
		return flt_spf_rr_empty(d, domain, type, HOST_NOT_FOUND);
	}
	/* "Any address record": a rewritten mx/0, a//0 (spf_syntax.c), or
	 * an address of such an mx's names. */
	any = flt_spf_any_name(domain, real, sizeof(real));
	if (!any)
		snprintf(real, sizeof(real), "%s", domain);
	if (kind == FLT_SPF_MX_HOST && ev->follow_any)
		any = true;
	flt_dns_resolve(real, type, &res);
	if (res.status == FLT_DNS_SERVFAIL || res.status == FLT_DNS_TIMEOUT ||
	    res.status == FLT_DNS_ERROR) {
		flt_dns_result_free(&res);
		/* 5: a DNS error ends check_host() with temperror, except
		 * for ptr (5.5) and exp (6.2). */
		if (kind == FLT_SPF_PTR_TERM || kind == FLT_SPF_PTR_HOST ||
		    kind == FLT_SPF_EXP)
			return flt_spf_rr_empty(d, domain, type,
			                        HOST_NOT_FOUND);
		flt_spf_force(ev, FLT_SPF_TEMPERROR,
		              res.status == FLT_DNS_TIMEOUT ? "DNS timeout"
		                                            : "DNS error",
		              domain);
		return flt_spf_rr_empty(d, domain, type, TRY_AGAIN);
	}
	rr = flt_spf_rr_empty(d, domain, type,
	                      res.status == FLT_DNS_NXDOMAIN ? HOST_NOT_FOUND
	                      : res.status == FLT_DNS_ANSWER ? NETDB_SUCCESS
	                                                     : NO_DATA);
	if (res.status == FLT_DNS_ANSWER) {
		char name[256];
		char txt[512];

		for (unsigned i = 0; i < res.n; i++) {
			const unsigned char *p = res.data[i];
			int len = res.len[i];

			switch (type) {
			case ns_t_a:
				if (len == 4)
					flt_spf_rr_add(rr, p, 4);
				break;
			case ns_t_aaaa:
				if (len == 16)
					flt_spf_rr_add(rr, p, 16);
				break;
			case ns_t_mx:
			case ns_t_ptr:
				if (flt_dns_name_text(p, len,
				                      type == ns_t_mx ? 2 : 0,
				                      FLT_DNS_NAME_PRINTABLE,
				                      name, sizeof(name)) == 0)
					flt_spf_rr_add(rr, name,
					               strlen(name) + 1);
				break;
			default: {
				/* exp text (6.2): one record, valid
				 * explain-string, else no explanation.  Kept
				 * with the domain it is for (the record being
				 * finished), expanded by us at the end: libspf2
				 * gets nothing, its expansion mangles text. */
				size_t n =
				    flt_spf_txt_join(p, len, txt, sizeof(txt));
				char out[sizeof(txt) + 1];
				SPF_request_t *req = ev->req;

				txt[n] = '\0';
				ev->exp_text[0] = '\0';
				if (res.n == 1 && strlen(txt) == n &&
				    flt_spf_explain_check(txt, n, NULL, out,
				                          sizeof(out)) == 0 &&
				    req != NULL && req->cur_dom != NULL) {
					snprintf(ev->exp_text,
					         sizeof(ev->exp_text), "%s",
					         txt);
					snprintf(ev->exp_domain,
					         sizeof(ev->exp_domain), "%s",
					         req->cur_dom);
				}
				break;
			}
			}
			if (type == ns_t_ptr && rr->num_rr == FLT_SPF_MAX_NAMES)
				break; /* 4.6.4: the rest is ignored */
		}
	}
	flt_dns_result_free(&res);
	if (any && (type == ns_t_a || type == ns_t_aaaa) && rr->num_rr > 0 &&
	    (type == ns_t_a) == (ev->family == AF_INET)) {
		/* Some address exists: the client's own is as good. */
		rr->num_rr = 0;
		flt_spf_rr_add(rr, ev->addr, type == ns_t_a ? 4 : 16);
	}
	if (rr->num_rr == 0 && rr->herrno == NETDB_SUCCESS)
		rr->herrno = NO_DATA;
	if (term && rr->num_rr == 0 && ++ev->voids > FLT_SPF_MAX_VOID) {
		flt_spf_force(ev, FLT_SPF_PERMERROR, "more than 2 void lookups",
		              domain);
		rr->num_rr = 0;
		return rr;
	}
	if (type == ns_t_mx && rr->num_rr > FLT_SPF_MAX_NAMES) {
		/* 4.6.4: more than 10 address lookups for one mx. */
		flt_spf_force(ev, FLT_SPF_PERMERROR, "more than 10 MX names",
		              domain);
		rr->num_rr = 0;
		return rr;
	}
	if ((type == ns_t_mx || type == ns_t_ptr) && term) {
		ev->nfollow = 0;
		ev->follow_next = 0;
		ev->follow_ptr = type == ns_t_ptr;
		ev->follow_any = any && type == ns_t_mx;
		for (int i = 0; i < rr->num_rr && i < FLT_SPF_MAX_NAMES; i++)
			snprintf(ev->follow[ev->nfollow++],
			         sizeof(ev->follow[0]), "%s",
			         type == ns_t_mx ? rr->rr[i]->mx
			                         : rr->rr[i]->ptr);
	}
	return rr;
}

/*
 * flt_spf_dns_get_spf - libspf2's record hook, for the checked domain and
 * every include/redirect target: fetch, select, check, rewrite, compile.
 */
static SPF_errcode_t
flt_spf_dns_get_spf(SPF_server_t *server, SPF_request_t *req,
                    SPF_response_t *resp, SPF_record_t **recordp)
{
	struct flt_spf_eval *ev = server->resolver->hook;
	const char *domain = req->cur_dom;
	bool top = !ev->top_done;
	/* 4.5 / 5.2 / 6.1: no record is "none" for the checked domain,
	 * permerror for an include or redirect target. */
	enum flt_spf missing = top ? FLT_SPF_NONE : FLT_SPF_PERMERROR;
	struct flt_dns_result res;
	char *found = NULL, *rewritten = NULL;
	size_t found_len = 0, nfound = 0;
	const char *why;
	SPF_errcode_t err;

	*recordp = NULL;
	ev->top_done = true;
	ev->nfollow = ev->follow_next = 0;
	if (flt_spf_stopped(ev))
		return SPF_E_NOT_SPF;
	if (!top && ++ev->lookups > FLT_SPF_MAX_LOOKUPS) {
		flt_spf_force(ev, FLT_SPF_PERMERROR,
		              "more than 10 DNS-querying terms", NULL);
		return SPF_E_NOT_SPF;
	}
	if (domain == NULL || !flt_spf_domain_ok(domain)) {
		/* 4.3: a malformed domain is "none". */
		flt_spf_force(ev, missing, "malformed domain", NULL);
		return SPF_E_NOT_SPF;
	}
	flt_dns_resolve(domain, ns_t_txt, &res);
	switch (res.status) {
	case FLT_DNS_ANSWER:
		break;
	case FLT_DNS_NXDOMAIN:
	case FLT_DNS_NODATA:
		flt_dns_result_free(&res);
		if (!top && ++ev->voids > FLT_SPF_MAX_VOID)
			flt_spf_force(ev, FLT_SPF_PERMERROR,
			              "more than 2 void lookups", domain);
		flt_spf_force(ev, missing, "no SPF record", domain);
		return SPF_E_NOT_SPF;
	default:
		flt_dns_result_free(&res);
		flt_spf_force(ev, FLT_SPF_TEMPERROR,
		              res.status == FLT_DNS_TIMEOUT ? "DNS timeout"
		                                            : "DNS error",
		              domain);
		return SPF_E_DNS_ERROR;
	}
	for (unsigned i = 0; i < res.n; i++) {
		char *txt = malloc((size_t)res.len[i] + 1);
		size_t n;

		if (txt == NULL)
			abort();
		n = flt_spf_txt_join(res.data[i], res.len[i], txt,
		                     (size_t)res.len[i] + 1);
		if (!flt_spf_record_is_spf(txt, n)) {
			free(txt);
			continue;
		}
		nfound++;
		free(found);
		found = txt;
		found_len = n;
	}
	flt_dns_result_free(&res);
	if (nfound == 0) {
		flt_spf_force(ev, missing, "no SPF record", domain);
		return SPF_E_NOT_SPF;
	}
	if (nfound > 1) {
		free(found);
		flt_spf_force(ev, FLT_SPF_PERMERROR, "several SPF records",
		              domain);
		return SPF_E_MULTIPLE_RECORDS;
	}
	size_t outsize = 4 * found_len + 64;

	rewritten = malloc(outsize);
	if (rewritten == NULL)
		abort();
	ev->env.values['d' - 'a'] = domain;
	if (flt_spf_record_check(found, found_len, ev->family == AF_INET6,
	                         &ev->env, rewritten, outsize, &why) < 0) {
		free(found);
		free(rewritten);
		flt_spf_force(ev, FLT_SPF_PERMERROR, why, domain);
		return SPF_E_SYNTAX;
	}
	free(found);
	err = SPF_record_compile(server, resp, recordp, rewritten);
	free(rewritten);
	if (err != SPF_E_SUCCESS) {
		if (*recordp != NULL)
			SPF_record_free(*recordp);
		*recordp = NULL;
		flt_spf_force(ev, FLT_SPF_PERMERROR, SPF_strerror(err), domain);
		return err;
	}
	return SPF_E_SUCCESS;
}

static enum flt_spf
flt_spf_from_libspf2(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:
		return FLT_SPF_PASS;
	case SPF_RESULT_FAIL:
		return FLT_SPF_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return FLT_SPF_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return FLT_SPF_NEUTRAL;
	case SPF_RESULT_NONE:
		return FLT_SPF_NONE;
	case SPF_RESULT_TEMPERROR:
		return FLT_SPF_TEMPERROR;
	default:
		return FLT_SPF_PERMERROR;
	}
}

/* flt_spf_identity - MAIL FROM, or for <> the HELO name (2.4, 4.3): the
 * domain to check and the sender libspf2 expands %{s} %{l} %{o} from. */
static void
flt_spf_identity(struct flt_spf_eval *ev, char *sender, size_t size)
{
	const char *at = strrchr(ev->sender, '@');

	if (at != NULL && at[1] != '\0') {
		ev->helo_identity = false;
		snprintf(ev->domain, sizeof(ev->domain), "%s", at + 1);
		snprintf(sender, size, "%s", ev->sender);
	} else {
		ev->helo_identity = true;
		snprintf(ev->domain, sizeof(ev->domain), "%s", ev->helo);
		snprintf(sender, size, "postmaster@%s", ev->helo);
	}
}

/* flt_spf_macro_values - what each macro letter expands to (7.3), so the
 * syntax checker can count their parts. */
static void
flt_spf_macro_values(struct flt_spf_eval *ev, const char *sender)
{
	static const char hex[] = "0123456789abcdef";
	const char **v = ev->env.values;
	const char *at = strrchr(sender, '@');

	memset(&ev->env, 0, sizeof(ev->env));
	snprintf(ev->env_s, sizeof(ev->env_s), "%s", sender);
	snprintf(ev->env_l, sizeof(ev->env_l), "%.*s",
	         at ? (int)(at - sender) : 0, sender);
	inet_ntop(ev->family, ev->addr, ev->env_c, sizeof(ev->env_c));
	if (ev->family == AF_INET) {
		snprintf(ev->env_i, sizeof(ev->env_i), "%s", ev->env_c);
	} else {
		size_t n = 0;

		for (int k = 0; k < 16; k++) {
			ev->env_i[n++] = hex[ev->addr[k] >> 4];
			ev->env_i[n++] = '.';
			ev->env_i[n++] = hex[ev->addr[k] & 15];
			ev->env_i[n++] = k < 15 ? '.' : '\0';
		}
	}
	v['s' - 'a'] = ev->env_s;
	v['l' - 'a'] = ev->env_l;
	v['o' - 'a'] = ev->domain;
	v['d' - 'a'] = ev->domain;
	v['i' - 'a'] = ev->env_i;
	v['c' - 'a'] = ev->env_c;
	v['v' - 'a'] = ev->family == AF_INET ? "in-addr" : "ip6";
	v['h' - 'a'] = ev->helo[0] ? ev->helo : NULL;
	v['r' - 'a'] = ev->receiver[0] ? ev->receiver : NULL;
	v['t' - 'a'] = "0";  /* seconds since the epoch: one part */
	v['p' - 'a'] = NULL; /* depends on lookups: unknown */
}

void
flt_spf_evaluate(struct flt_spf_eval *ev)
{
	static bool quiet;
	char sender[600];
	SPF_dns_server_t dns;
	SPF_server_t *server;
	SPF_request_t *req;
	SPF_response_t *resp = NULL;

	if (!quiet) {
		/* libspf2 prints warnings about the records it reads to
		 * stderr; our log says what matters.  (A benign race: every
		 * thread stores the same values.) */
		SPF_warning_handler = NULL;
		SPF_info_handler = NULL;
		SPF_debug_handler = NULL;
		quiet = true;
	}
	clock_gettime(CLOCK_MONOTONIC, &ev->start);
	ev->forced = FLT_SPF_NOT_CHECKED;
	ev->problem[0] = ev->explanation[0] = '\0';
	ev->lookups = ev->voids = 0;
	ev->top_done = false;
	ev->nfollow = ev->follow_next = 0;
	flt_spf_identity(ev, sender, sizeof(sender));
	if (!flt_spf_domain_ok(ev->domain) || ev->domain[0] == '[') {
		/* 4.3: malformed or not a domain (an address literal). */
		ev->result = FLT_SPF_NONE;
		return;
	}
	flt_spf_macro_values(ev, sender);

	memset(&dns, 0, sizeof(dns));
	dns.lookup = flt_spf_dns_lookup;
	dns.get_spf = flt_spf_dns_get_spf;
	dns.name = "mxguard";
	dns.hook = ev;
	/* destroy NULL: the layer is ours, libspf2 does not free it. */
	server = SPF_server_new_dns(&dns, 0);
	if (server == NULL) {
		ev->result = FLT_SPF_TEMPERROR;
		snprintf(ev->problem, sizeof(ev->problem), "libspf2 failed");
		return;
	}
	/* Our layer enforces RFC 7208's limits across the evaluation;
	 * libspf2's own (per record) must not fire first. */
	SPF_server_set_max_dns_mech(server, 100);
	SPF_server_set_max_dns_mx(server, FLT_SPF_MAX_NAMES);
	SPF_server_set_max_dns_ptr(server, FLT_SPF_MAX_NAMES);
	if (ev->receiver[0] != '\0')
		SPF_server_set_rec_dom(server, ev->receiver);
	SPF_server_set_explanation(server, "", &resp);
	SPF_response_free(resp);
	resp = NULL;
	req = SPF_request_new(server);
	ev->req = req;
	ev->exp_text[0] = '\0';
	if (ev->family == AF_INET) {
		struct in_addr a;

		memcpy(&a, ev->addr, 4);
		SPF_request_set_ipv4(req, a);
	} else {
		struct in6_addr a;

		memcpy(&a, ev->addr, 16);
		SPF_request_set_ipv6(req, a);
	}
	if (ev->helo[0] != '\0')
		SPF_request_set_helo_dom(req, ev->helo);
	SPF_request_set_env_from(req, sender);
	SPF_request_query_mailfrom(req, &resp);
	if (ev->forced != FLT_SPF_NOT_CHECKED) {
		ev->result = ev->forced;
	} else if (resp != NULL) {
		ev->result = flt_spf_from_libspf2(SPF_response_result(resp));
		if (ev->result == FLT_SPF_PERMERROR)
			snprintf(ev->problem, sizeof(ev->problem), "%s",
			         SPF_strerror(SPF_response_errcode(resp)));
	} else {
		ev->result = FLT_SPF_TEMPERROR;
	}
	if (ev->result == FLT_SPF_FAIL && ev->exp_text[0] != '\0') {
		char when[24], text[sizeof(ev->explanation)];
		size_t n = 0;

		snprintf(when, sizeof(when), "%lld", (long long)time(NULL));
		ev->env.values['d' - 'a'] = ev->exp_domain;
		ev->env.values['t' - 'a'] = when;
		if (flt_spf_explain_expand(ev->exp_text, &ev->env, text,
		                           sizeof(text)) == 0) {
			/* SECURITY: goes into an SMTP reply: printable
			 * only (expanded values are the client's). */
			for (const char *e = text; *e; e++)
				if (*e >= 0x20 && *e <= 0x7e)
					ev->explanation[n++] = *e;
		}
		ev->explanation[n] = '\0';
	}
	SPF_response_free(resp);
	ev->req = NULL;
	SPF_request_free(req);
	SPF_server_free(server);
}
