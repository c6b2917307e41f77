/* SPDX-License-Identifier: MIT */
/*
 * spf_eval.h - one SPF evaluation (RFC 7208 check_host()) with libspf2,
 * on a worker thread, every lookup through our resolver.
 */
#ifndef MX_SPF_EVAL_H
#define MX_SPF_EVAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "filter.h"
#include "spf_report.h"
#include "spf_syntax.h"

/* RFC 7208 4.6.4: DNS-querying terms, void lookups, and names looked up
 * per "mx" or "ptr". */
#define FLT_SPF_MAX_LOOKUPS 10
#define FLT_SPF_MAX_VOID    2
#define FLT_SPF_MAX_NAMES   10

struct flt_spf_eval {
	/* In: set by the caller. */
	int family;             /* AF_INET or AF_INET6 (IPv4-mapped: unmap) */
	unsigned char addr[16]; /* 4 or 16 bytes */
	char helo[256];         /* "" when none */
	char sender[512];       /* MAIL FROM address; "" for <> */
	char receiver[256];     /* our hostname (%{r}) */
	double budget;          /* seconds for the whole evaluation */
	atomic_bool abandoned;  /* the caller gave up: stop early */

	/* Out. */
	enum flt_spf result;
	bool helo_identity;    /* the HELO name was checked (null sender) */
	char domain[256];      /* the identity's domain */
	char explanation[256]; /* fail: exp= text, printable ASCII */
	char problem[128];     /* permerror/temperror: why */
	unsigned lookups;      /* DNS-querying terms evaluated */
	unsigned voids;        /* void lookups */

	/* Private to spf_eval.c. */
	struct flt_spf_macro_env env; /* points into the strings below */
	char env_s[600], env_l[512], env_i[80], env_c[48];
	struct timespec start;
	void *req;            /* the libspf2 request (SPF_request_t) */
	char exp_text[512];   /* the last explanation fetched ... */
	char exp_domain[256]; /* ... and the domain it explains */
	bool top_done;
	enum flt_spf forced; /* a result our layer imposes */
	char follow[FLT_SPF_MAX_NAMES][256];
	unsigned nfollow;
	unsigned follow_next;
	bool follow_ptr;
	bool follow_any; /* the names are those of an "mx/0" */
};

/*
 * flt_spf_evaluate - run check_host() for ev's inputs and fill its outputs.
 * Blocking (DNS): worker threads only.  Returns when done, after at most
 * about budget + dns.timeout seconds (temperror when the budget runs out).
 */
void flt_spf_evaluate(struct flt_spf_eval *ev);

#endif
