/* SPDX-License-Identifier: MIT */
/*
 * session_data.c - the message: DATA (through the decoder, data.c) and
 * BDAT chunks (exactly the announced octets, bdat.c) into the spool, less
 * forged Authentication-Results fields; then the end of data: the content
 * checks decide, and an accepted message goes to the backend with our
 * headers prepended, its final reply the client's (RFC 5321 4.1.1.4,
 * RFC 3030).
 */
#include "session_priv.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "spool.h"
#include "txnlog.h"

static void
px_session_spool_put(void *ctx, const char *buf, size_t len)
{
	struct px_session *s = ctx;
	const char *err;

	if (s->txn.too_big || s->txn.spool_error)
		return;
	if (px_spool_size(s->spool) + len > s->cfg->limits.message_size) {
		/* RFC 1870 6.3: keep reading, then 552. */
		s->txn.too_big = true;
		return;
	}
	if (px_spool_append(s->spool, buf, len, &err) < 0) {
		px_log_err("%016llx spool: %s", (unsigned long long)s->id, err);
		s->txn.spool_error = true;
		return;
	}
	/* Streaming checks (DKIM body hashes) see what the spool holds. */
	flt_chain_data(s->chain, buf, len);
}

/* px_session_emit - decoded DATA bytes: into the spool, less forged
 * Authentication-Results fields (RFC 8601 5). */
static void
px_session_emit(void *ctx, const char *buf, size_t len)
{
	struct px_session *s = ctx;

	px_authres_strip_feed(s->arstrip, buf, len, px_session_spool_put, s);
}

static void
px_session_eom_done(void *arg, const struct flt_verdict *v)
{
	struct px_session *s = arg;
	enum flt_action action;

	if (s->closing)
		return;
	px_metrics_eod(px_secs_since(&s->txn.eod));
	s->txn.checks_ms = px_ms_since(&s->txn.eod);
	action = flt_chain_decide(s->chain, v, s->cfg);
	if (action == FLT_REJECT || action == FLT_TEMPFAIL ||
	    action == FLT_DISCONNECT) {
		bool temp = action == FLT_TEMPFAIL;
		bool own = v->action == action && v->code != 0;

		if (own)
			px_reply_policy(s, v->code, v->enh, "%s", v->text);
		else if (temp)
			px_reply(s, 451, "4.7.1",
			         "Error: message deferred (score %.1f), try "
			         "again later",
			         flt_chain_score(s->chain));
		else
			px_reply_policy(
			    s, 550, "5.7.1",
			    "Error: message rejected as spam (score %.1f)",
			    flt_chain_score(s->chain));
		px_txn_end(s, temp ? "tempfail" : "reject");
		if (action == FLT_DISCONNECT) {
			px_session_close(s, "policy");
			return;
		}
		if (!px_session_rset_backend(s, OP_RSET))
			px_session_done(s);
		return;
	}
	if (s->relay == NULL || !px_relay_usable(s->relay)) {
		px_session_backend_lost(s);
		return;
	}
	if (s->txn.binarymime && !px_relay_chunking(s->relay)) {
		/* SECURITY: binary content must never go out framed by a dot
		 * (px_session_send_mail refused it already; a safety net). */
		px_reply(s, 554, "5.6.3",
		         "Error: conversion required but not supported");
		px_txn_end(s, "reject");
		if (!px_session_rset_backend(s, OP_RSET))
			px_session_done(s);
		return;
	}
	s->txn.backend[0] = '\0';
	px_session_build_headers(s, action == FLT_TAG);
	s->op = OP_MESSAGE;
	s->txn.tagged = action == FLT_TAG;
	clock_gettime(CLOCK_MONOTONIC, &s->txn.sent);
	px_relay_message(s->relay, s->headers, strlen(s->headers), s->spool,
	                 action == FLT_TAG ? px_session_subject(s) : 0);
}

static void
px_session_eom(struct px_session *s)
{
	struct flt_verdict v;

	s->state = S_CMD;
	s->txn.stage = ST_EOM;
	if (px_authres_strip_end(s->arstrip, px_session_spool_put, s) > 0)
		px_log_info(
		    "%016llx.%u removed %u forged Authentication-Results "
		    "header(s)",
		    (unsigned long long)s->id, s->txn.id, s->arstrip->removed);
	s->txn.size = px_spool_size(s->spool);
	clock_gettime(CLOCK_MONOTONIC, &s->txn.eod);
	px_session_set_busy(s);
	px_session_set_timeout(s);
	if (s->txn.too_big) {
		px_reply(s, 552, "5.3.4",
		         "Error: message exceeds fixed size limit");
		px_txn_end(s, "reject");
		if (!px_session_rset_backend(s, OP_RSET))
			px_session_done(s);
		return;
	}
	if (s->txn.spool_error) {
		px_reply(s, 451, "4.3.0", "Error: local error in processing");
		px_txn_end(s, "error");
		if (!px_session_rset_backend(s, OP_RSET))
			px_session_done(s);
		return;
	}
	if (s->dec.line_too_long) {
		px_reply(s, 550, "5.6.0",
		         "Error: message has a line longer than %u octets",
		         s->cfg->limits.line_length);
		px_txn_end(s, "reject");
		if (!px_session_rset_backend(s, OP_RSET))
			px_session_done(s);
		return;
	}
	s->fs.message = s->spool;
	if (flt_chain_run(s->chain, FLT_STAGE_EOM, px_session_eom_done, s,
	                  &v) == 1)
		px_session_eom_done(s, &v);
}

/* px_session_data_input - feed DATA bytes to the decoder.  Returns true if
 * the state changed and px_session_run should go on. */
bool
px_session_data_input(struct px_session *s)
{
	struct evbuffer *in = px_reader_input(s->rd);
	struct evbuffer_iovec vec[8];
	int nvec = evbuffer_peek(in, -1, NULL, vec, 8);
	size_t used = 0;

	for (int i = 0; i < nvec && i < 8; i++) {
		size_t consumed = 0;
		enum px_data_status st;

		st = px_data_decode(&s->dec, vec[i].iov_base, vec[i].iov_len,
		                    &consumed, px_session_emit, s);
		if (st == PX_DATA_MORE) {
			used += vec[i].iov_len;
			continue;
		}
		used += consumed;
		evbuffer_drain(in, used);
		if (st == PX_DATA_END) {
			px_session_eom(s);
			return true;
		}
		/* SECURITY: a bare CR or LF, or a NUL, in the data: the
		 * message boundary is no longer certain (SMTP smuggling,
		 * CVE-2023-51764), so nothing is forwarded and the session
		 * ends, as Postfix's smtpd_forbid_bare_newline does. */
		s->txn.size = px_spool_size(s->spool);
		px_reply(s, 554, "5.6.0", "Error: %s in message data",
		         st == PX_DATA_ERR_BARE_LF   ? "bare <LF>"
		         : st == PX_DATA_ERR_BARE_CR ? "bare <CR>"
		                                     : "NUL byte");
		px_txn_end(s, "reject");
		s->state = S_CMD;
		px_session_close(s, "smuggling");
		return false;
	}
	evbuffer_drain(in, used);
	return nvec > 8;
}

/* BDAT (RFC 3030). */

/* Why a chunk is read and thrown away; its reply is sent once it is read. */
enum px_bdat_refusal {
	PX_BDAT_KEEP = 0,
	PX_BDAT_NO_MAIL,
	PX_BDAT_NO_RCPT,
	PX_BDAT_NO_VALID_RCPT,
};

/*
 * px_cmd_bdat - "BDAT size [LAST]".  Whatever the answer, exactly size
 * octets follow and are read before it is given: they are message data,
 * never commands (RFC 3030 2, and SECURITY: a refused chunk read as
 * commands would be SMTP smuggling).  The octets are checked and spooled
 * as they come; the size limit applies to the running total.
 */
void
px_cmd_bdat(struct px_session *s, const struct px_cmd *cmd)
{
	unsigned long long n;
	bool last;

	if (px_bdat_parse_arg(cmd->arg.p, cmd->arg.len, &n, &last) < 0) {
		/* SECURITY: without a size the end of the chunk is unknown,
		 * so nothing after this line can be read as a command. */
		px_reply(s, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
		px_session_close(s, "bdat");
		return;
	}
	s->bdat_left = s->bdat_size = n;
	s->bdat_last = last;
	s->bdat_keep = PX_BDAT_KEEP;
	if (!s->txn.active)
		s->bdat_keep = PX_BDAT_NO_MAIL;
	else if (s->txn.nrcpt == 0)
		s->bdat_keep = s->txn.nrcpt_seen == 0 ? PX_BDAT_NO_RCPT
		                                      : PX_BDAT_NO_VALID_RCPT;
	if (s->bdat_keep == PX_BDAT_KEEP && !s->txn.bdat) {
		s->txn.bdat = true;
		px_session_message_init(s);
		px_bdat_check_init(&s->bdat, s->cfg->limits.line_length);
		s->txn.stage = ST_DATA;
	}
	s->state = S_BDAT;
	px_session_set_timeout(s);
}

/* px_session_bdat_failed - the transaction ends at this chunk: log it, and
 * end the backend's MAIL.  Later chunks get 503 (no transaction), as RFC
 * 3030 2 wants a 5xx for any BDAT after a failed one. */
static void
px_session_bdat_failed(struct px_session *s, const char *result)
{
	s->txn.size = px_spool_size(s->spool);
	px_txn_end(s, result);
	px_session_set_busy(s);
	if (!px_session_rset_backend(s, OP_RSET))
		px_session_done(s);
}

/* px_session_bdat_chunk_end - all octets of the chunk are in: answer it,
 * or for the LAST one go on to the end of data as after DATA. */
static void
px_session_bdat_chunk_end(struct px_session *s)
{
	enum px_bdat_status st;

	s->state = S_CMD;
	px_session_set_timeout(s);
	switch (s->bdat_keep) {
	case PX_BDAT_NO_MAIL:
		px_reply_error(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	case PX_BDAT_NO_RCPT:
		px_reply_error(s, 503, "5.5.1", "Error: need RCPT command");
		return;
	case PX_BDAT_NO_VALID_RCPT:
		px_reply(s, 554, "5.5.1", "Error: no valid recipients");
		return;
	default:
		break;
	}
	st = s->bdat_last ? px_bdat_check_end(&s->bdat) : s->bdat.err;
	/* A BINARYMIME message may hold any octet and has no lines; it only
	 * ever goes on by BDAT, where the count frames it. */
	if (s->txn.binarymime)
		st = PX_BDAT_OK;
	if (st != PX_BDAT_OK) {
		/* SECURITY: what DATA refuses (data.h) is refused here too,
		 * since the message may go on to the backend with DATA.  The
		 * framing is exact, so the session itself can go on. */
		px_reply(s, 554, "5.6.0", "Error: %s in message data",
		         st == PX_BDAT_ERR_BARE_LF   ? "bare <LF>"
		         : st == PX_BDAT_ERR_BARE_CR ? "bare <CR>"
		                                     : "NUL byte");
		px_session_bdat_failed(s, "reject");
		return;
	}
	if (s->txn.too_big) {
		/* The running total is over: no point in more chunks. */
		px_reply(s, 552, "5.3.4",
		         "Error: message exceeds fixed size limit");
		px_session_bdat_failed(s, "reject");
		return;
	}
	if (s->txn.spool_error) {
		px_reply(s, 451, "4.3.0", "Error: local error in processing");
		px_session_bdat_failed(s, "error");
		return;
	}
	if (!s->bdat_last) {
		px_reply(s, 250, "2.0.0", "Ok: %llu octets received",
		         s->bdat_size);
		return;
	}
	s->dec.line_too_long = s->bdat.line_too_long && !s->txn.binarymime;
	px_session_eom(s);
}

/* px_session_bdat_input - read the current chunk's octets.  Returns true
 * once the chunk is complete and answered (px_session_run goes on). */
bool
px_session_bdat_input(struct px_session *s)
{
	struct evbuffer *in = px_reader_input(s->rd);

	while (s->bdat_left > 0) {
		struct evbuffer_iovec vec[8];
		int nvec = evbuffer_peek(in, -1, NULL, vec, 8);
		size_t used = 0;

		if (nvec <= 0)
			return false;
		for (int i = 0; i < nvec && i < 8 && s->bdat_left > 0; i++) {
			size_t n = vec[i].iov_len;

			if (n > s->bdat_left)
				n = (size_t)s->bdat_left;
			if (n == 0)
				continue;
			if (s->bdat_keep == PX_BDAT_KEEP) {
				px_bdat_check_feed(&s->bdat, vec[i].iov_base,
				                   n);
				px_session_emit(s, vec[i].iov_base, n);
			}
			used += n;
			s->bdat_left -= n;
		}
		/* An input buffer may hold empty chains (space reserved for
		 * the next read): nothing to read is nothing used. */
		if (used == 0)
			return false;
		evbuffer_drain(in, used);
	}
	px_session_bdat_chunk_end(s);
	return true;
}
