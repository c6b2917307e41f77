/* SPDX-License-Identifier: MIT */
/*
 * session_headers.c - what mxguard prepends to a message it passes on
 * (Received when the backend cannot be told the client or under TLS,
 * X-Mxguard-Queue-ID, Received-SPF, Authentication-Results, X-Spam-*),
 * and the Subject tag of subject_prefix.
 */
#include "session_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "dkim_report.h"
#include "dmarc_report.h"
#include "log.h"
#include "spf_report.h"
#include "spool.h"
#include "subject.h"

/*
 * px_session_auth_results - the one RFC 8601 Authentication-Results header
 * for what was evaluated (spf 2.7.2, dkim 2.7.1, dmarc RFC 7489 11.2,
 * iprev 2.7.3), or nothing.  authserv-id
 * is our hostname; forged headers with it were removed as the message came
 * in (authres.c).
 */
static size_t
px_session_auth_results(struct px_session *s, char *buf, size_t size)
{
	static const char *const names[] = {
	    [FLT_IPREV_PASS] = "pass",
	    [FLT_IPREV_FAIL] = "fail",
	    [FLT_IPREV_TEMPERROR] = "temperror",
	    [FLT_IPREV_PERMERROR] = "permerror",
	};
	enum flt_iprev iprev;
	const char *name = flt_chain_client_name(s->chain, &iprev);
	const char *spf_domain;
	enum flt_spf spf = flt_chain_spf(s->chain, &spf_domain);
	const struct flt_dkim_sig *dkim;
	int ndkim = flt_chain_dkim(s->chain, &dkim);
	/* One resinfo per method; dkim's holds one per signature. */
	char res[4][8192];
	unsigned nres = 0;
	size_t n;
	int w;

	if (spf != FLT_SPF_NOT_CHECKED &&
	    flt_spf_authres(
	        res[nres], sizeof(res[0]), spf, spf_domain ? spf_domain : "",
	        s->txn.from ? s->txn.from : "", s->helo ? s->helo : "") > 0)
		nres++;
	if (flt_dkim_authres(res[nres], sizeof(res[0]), dkim, ndkim) > 0)
		nres++;
	if (flt_dmarc_authres(res[nres], sizeof(res[0]),
	                      flt_chain_dmarc(s->chain)) > 0)
		nres++;
	if (iprev != FLT_IPREV_NONE)
		snprintf(res[nres++], sizeof(res[0]),
		         "iprev=%s policy.iprev=%s%s%s%s", names[iprev],
		         s->client_ip,
		         iprev == FLT_IPREV_PASS && name ? " (" : "",
		         iprev == FLT_IPREV_PASS && name ? name : "",
		         iprev == FLT_IPREV_PASS && name ? ")" : "");
	if (nres == 0)
		return 0;
	w = snprintf(buf, size, "Authentication-Results: %s;",
	             s->cfg->hostname);
	if (w < 0 || (size_t)w >= size)
		return 0;
	n = (size_t)w;
	for (unsigned i = 0; i < nres; i++) {
		w = snprintf(buf + n, size - n, "\r\n\t%s%s", res[i],
		             i + 1 < nres ? ";" : "\r\n");
		if (w < 0 || (size_t)w >= size - n)
			return 0;
		n += (size_t)w;
	}
	return n;
}

/* px_session_received_spf - the Received-SPF header (RFC 7208 9.1), when
 * SPF was evaluated. */
static size_t
px_session_received_spf(struct px_session *s, char *buf, size_t size)
{
	const char *domain;
	enum flt_spf spf = flt_chain_spf(s->chain, &domain);

	if (spf == FLT_SPF_NOT_CHECKED)
		return 0;
	return flt_spf_received_spf(buf, size, spf, domain ? domain : "",
	                            s->cfg->hostname, s->client_ip,
	                            s->txn.from ? s->txn.from : "",
	                            s->helo ? s->helo : "");
}

/* px_session_build_headers - what mxguard prepends: a Received header
 * when the backend cannot be told the client (no XCLIENT/XFORWARD) or
 * under TLS, the transaction id, Received-SPF, Authentication-Results,
 * then the X-Spam-* headers. */
void
px_session_build_headers(struct px_session *s, bool spam)
{
	char buf[16384], date[64];
	size_t n = 0;
	const struct px_caps *caps = px_relay_caps(s->relay);
	bool told = px_relay_xclient_done(s->relay) ||
	            (caps->xforward && (caps->xforward_attrs & PX_XATTR_ADDR));

	/* XCLIENT and XFORWARD have no attribute for TLS: under TLS the
	 * Received header is how the backend learns of it (as Postfix
	 * writes it: "(using TLSv1.3 with cipher ... (256/256 bits))"). */
	if (!told || s->tls) {
		time_t now = time(NULL);
		struct tm tm;
		char helo[300];
		/* The verified name only (RFC 5321 4.4: the TCP-info part). */
		enum flt_iprev iprev;
		const char *rdns = flt_chain_client_name(s->chain, &iprev);

		if (iprev != FLT_IPREV_PASS)
			rdns = NULL;
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		/* The HELO name is peer data: keep it printable so it can
		 * not break the header (SECURITY). */
		snprintf(helo, sizeof(helo), "%s",
		         s->helo ? s->helo : "unknown");
		for (char *p = helo; *p; p++)
			if ((unsigned char)*p <= ' ' ||
			    (unsigned char)*p >= 0x7f || *p == '(' || *p == ')')
				*p = '?';
		char using[160] = "";

		if (s->tls)
			snprintf(using, sizeof(using),
			         "\t(using %s with cipher %s (%d/%d bits))\r\n",
			         s->tls_version, s->tls_cipher, s->tls_bits,
			         s->tls_alg_bits);
		/* "with" protocol names: RFC 3848 (ESMTPS under TLS), and
		 * UTF8SMTP(S) from RFC 6531 section 3.7.4. */
		n += (size_t)snprintf(
		    buf + n, sizeof(buf) - n,
		    "Received: from %s (%s%s[%s])\r\n%s\tby %s "
		    "(mxguard) with %s%s id %016llx.%u;\r\n\t%s\r\n",
		    helo, rdns ? rdns : "", rdns ? " " : "", s->client_ip,
		    using, s->cfg->hostname,
		    s->txn.smtputf8 ? "UTF8SMTP"
		    : s->esmtp      ? "ESMTP"
		                    : "SMTP",
		    s->tls ? "S" : "", (unsigned long long)s->id, s->txn.id,
		    date);
	}
	/* The transaction id of our log line, so one message can be followed
	 * from mxguard's log into the backend's (its "queued as" is in ours;
	 * the header takes ours into its queue file). */
	n += (size_t)snprintf(buf + n, sizeof(buf) - n,
	                      "X-Mxguard-Queue-ID: %016llx.%u\r\n",
	                      (unsigned long long)s->id, s->txn.id);
	n += px_session_received_spf(s, buf + n, sizeof(buf) - n);
	n += px_session_auth_results(s, buf + n, sizeof(buf) - n);
	n += flt_chain_spam_headers(s->chain, spam, s->cfg, buf + n,
	                            sizeof(buf) - n);
	free(s->headers);
	s->headers = px_strndup(buf, n);
}

/*
 * px_session_subject - subject_prefix on a tagged message: the header
 * section, rewritten, goes after our headers in s->headers; returns how
 * many bytes of the spool it replaces (0: no rewrite).  Only the header
 * section is read (up to PX_SUBJECT_MAX bytes; longer header sections are
 * passed unchanged and logged).
 */
#define PX_SUBJECT_MAX 262144

size_t
px_session_subject(struct px_session *s)
{
	size_t size = px_spool_size(s->spool), want, off = 0, hl = 0;
	char *buf, *hdrs;

	if (s->cfg->subject_prefix == NULL || s->cfg->subject_prefix[0] == 0)
		return 0;
	want = size < PX_SUBJECT_MAX ? size : PX_SUBJECT_MAX;
	buf = px_malloc(want + 1);
	while (off < want) {
		const char *direct = NULL;
		ssize_t n = px_spool_read(s->spool, off, buf + off, want - off,
		                          &direct);

		if (n <= 0)
			break;
		if (direct != NULL)
			memcpy(buf + off, direct, (size_t)n);
		off += (size_t)n;
	}
	hdrs = px_subject_rewrite(buf, off, off == size, s->cfg->subject_prefix,
	                          &hl);
	free(buf);
	if (hdrs == NULL) {
		px_log_warn("%016llx header section too long or with a NUL "
		            "byte: Subject not rewritten",
		            (unsigned long long)s->id);
		return 0;
	}
	size_t ol = strlen(s->headers), nl = strlen(hdrs);

	s->headers = px_realloc(s->headers, ol + nl + 1);
	memcpy(s->headers + ol, hdrs, nl + 1);
	free(hdrs);
	return hl;
}
