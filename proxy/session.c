/* SPDX-License-Identifier: MIT */
/*
 * session.c - the client side of one SMTP connection.
 *
 * px_session_start(): accept (PROXY header on trusted listeners, limits,
 *   greeting with greet_delay, connect filters).
 * px_session_shutdown(), px_session_kill(): the SIGTERM path.
 *
 * How a session runs: input is read into the bufferevent; px_session_run()
 * takes one command line at a time and handles it; a handler that must wait
 * (filters, the backend) sets s->busy and returns, and its completion writes
 * the reply, clears busy and calls px_session_run() again.  So pipelined
 * commands (RFC 2920) are answered strictly in order, and input is bounded
 * by the read watermark while the session waits.  In DATA the input goes
 * through the decoder (data.c) into the spool (spool.c); after BDAT exactly
 * the announced octets go through the chunk checks (bdat.c) into the same
 * spool, and BDAT LAST ends the message as the final dot does.
 *
 * Also here: relay control at RCPT (relay_control.c decides) and routes
 * (the first accepted recipient picks the transaction's backend).
 * Elsewhere, sharing session_priv.h: the message in DATA or BDAT and the
 * end of data (session_data.c), STARTTLS and implicit TLS
 * (session_tls.c), AUTH passthrough (session_auth.c), the headers
 * prepended to the message and the Subject tag (session_headers.c).
 *
 * Socket ownership: the session owns the fd (and closes it) until TLS
 * starts; then the TLS bufferevent does, except behind a PROXY header with
 * implicit TLS, where a filter runs over the plain bufferevent and the
 * session keeps the fd.
 *
 * Lifetimes: struct px_session lives from accept to the deferred free after
 * close; the transaction part (s->txn) is reset at each RSET, HELO/EHLO and
 * end of message.  Callbacks from the relay and the filter chain check
 * s->closing first; the session is only freed from its own free event, never
 * inside a callback a caller still uses (STYLE "Buffers and ownership" 5).
 *
 * RFC 5321 sections: 3.1 (greeting), 4.1.1 (commands), 4.1.4 (order of
 * commands), 4.2 (replies), 4.5.2 (transparency), 4.5.3 (limits and
 * timeouts); RFC 2920 (pipelining), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
 * RFC 6531 (SMTPUTF8), RFC 3461 (DSN parameters), RFC 2034 (enhanced codes),
 * RFC 3207 (STARTTLS), RFC 8314 (implicit TLS), RFC 4954 (AUTH), RFC 3030
 * (CHUNKING), RFC 1985 (ETRN).
 */
#include "session_priv.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "authres.h"
#include "config.h"
#include "bdat.h"
#include "data.h"
#include "filter.h"
#include "harvest.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "netaddr.h"
#include "proxy_proto.h"
#include "rcpt_lookup.h"
#include "recipients.h"
#include "relay.h"
#include "relay_control.h"
#include "smtp_parse.h"
#include "smtp_reply.h"
#include "sockio.h"
#include "dkim_report.h"
#include "dmarc_report.h"
#include "spf_report.h"
#include "spool.h"
#include "stats.h"
#include "metrics.h"
#include "subject.h"
#include "txnlog.h"

/* Where a transaction ended, for the log. */
static const char *const px_stage_names[] = {
    "connect", "helo", "mail", "rcpt", "data", "eom",
};

static void px_session_reroute(struct px_session *s, unsigned want);

static uint64_t
px_session_new_id(void)
{
	static __thread uint64_t state;
	uint64_t x;

	/* Unique per process and unpredictable enough for logs: time and
	 * thread seed a xorshift generator. */
	if (state == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
		        (uint64_t)(uintptr_t)&state ^ (uint64_t)getpid();
		if (state == 0)
			state = 0x9e3779b97f4a7c15ULL;
	}
	x = state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	state = x;
	return x;
}

long
px_ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)((now.tv_sec - t0->tv_sec) * 1000 +
	              (now.tv_nsec - t0->tv_nsec) / 1000000);
}

/* px_session_set_timeout - the client read timeout for the current state;
 * none while we wait for filters or the backend (they have their own). */
void
px_session_set_timeout(struct px_session *s)
{
	if (s->closing || s->rd == NULL)
		return;
	/* The TLS handshake is bounded by the command timeout. */
	px_reader_set_timeout(s->rd, s->state == S_TLS
	                                 ? s->cfg->timeouts.command
	                             : s->busy ? 0
	                             : s->state == S_DATA || s->state == S_BDAT
	                                 ? s->cfg->timeouts.data_block
	                                 : s->cfg->timeouts.command);
}

/* px_session_set_busy - wait for a filter or the backend: the client's
 * command timeout must not run meanwhile (the backend has its own). */
void
px_session_set_busy(struct px_session *s)
{
	s->busy = true;
	px_session_set_timeout(s);
}

/* px_session_drop_relay - the backend connection is unusable or out of
 * step: close it (never to the pool); a new MAIL opens a fresh one. */
void
px_session_drop_relay(struct px_session *s)
{
	px_relay_free(&s->relay);
	s->backend_txn = false;
}

/* px_session_drop_socket - the socket is gone (error) or done: stop
 * reading and free it. */
void
px_session_drop_socket(struct px_session *s)
{
	px_reader_free(&s->rd);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	s->bev = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void px_session_harvest_note(struct px_session *s);

/* px_write_reply - queue a formatted reply and remember it for the log. */
void
px_write_reply(struct px_session *s, const char *buf, size_t len)
{
	if (s->closing || s->bev == NULL)
		return;
	evbuffer_add(bufferevent_get_output(s->bev), buf, len);
	px_log_reply(s->txn.reply, sizeof(s->txn.reply), buf, len);
	s->txn.backend_final = false;
	if (s->txn.stage == ST_RCPT && len > 0 && buf[0] == '5')
		s->txn.rcpt_refused_perm = true;
	if (len > 0)
		px_metrics_reply(buf[0], s->txn.rcpt_waiting);
	/* An unknown recipient, ours or the backend's (a harvest counts
	 * them): 5xx with an enhanced code 5.1.x. */
	if (s->txn.rcpt_waiting && len > 10 && buf[0] == '5' &&
	    memmem(buf, len < 16 ? len : 16, " 5.1.", 5) != NULL) {
		s->unknown_rcpts++;
		px_session_harvest_note(s);
	}
	s->txn.rcpt_waiting = false;
	/* Pipelined replies go out together when px_session_run ends. */
	if (!s->in_run)
		px_sock_flush(s->bev);
}

/* px_reply - one of our own single-line replies. */
void
px_reply(struct px_session *s, int code, const char *enh, const char *fmt, ...)
{
	char text[512], buf[600];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	n = px_reply_format(buf, sizeof(buf), code, enh, "%s", text);
	px_write_reply(s, buf, n);
}

/* px_reply_policy - a policy reject (not a protocol error): soft_bounce
 * turns its 5xx into 4xx, as Postfix's does, to test a deployment safely. */
void
px_reply_policy(struct px_session *s, int code, const char *enh,
                const char *fmt, ...)
{
	char text[512], e[16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(e, sizeof(e), "%s", enh);
	if (s->cfg->soft_bounce && code >= 500 && code < 600) {
		code -= 100;
		e[0] = '4';
	}
	px_reply(s, code, e, "%s", text);
}

/* px_reply_verdict - the reply for a filter's hard verdict: the filter's
 * own, or the default of its action (451 4.7.1 tempfail, 550 5.7.1
 * reject, 554 5.7.1 disconnect: RFC 5321 3.1), with text as default. */
static void
px_reply_verdict(struct px_session *s, const struct flt_verdict *v,
                 const char *text)
{
	bool temp = v->action == FLT_TEMPFAIL;
	int code = v->code                       ? v->code
	           : temp                        ? 451
	           : v->action == FLT_DISCONNECT ? 554
	                                         : 550;

	px_reply_policy(s, code,
	                v->enh[0] ? v->enh
	                : temp    ? "4.7.1"
	                          : "5.7.1",
	                "%s", v->text[0] ? v->text : text);
}

/* px_reply_error - a protocol error reply; counts towards limits.errors
 * and ends the session with 421 when there are too many (a client stuck in
 * a loop, or probing). */

void
px_reply_error(struct px_session *s, int code, const char *enh, const char *fmt,
               ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	px_reply(s, code, enh, "%s", text);
	if (++s->errors >= s->cfg->limits.errors) {
		px_reply(s, 421, "4.7.0", "%s Error: too many errors",
		         s->cfg->hostname);
		px_session_close(s, "errors");
	}
}

/* px_reply_backend - pass a backend reply on verbatim.  SECURITY: an
 * unexpected 1xx/2xx/3xx where the client expects a final answer would
 * confuse it (or make it think mail was taken), so such a reply becomes
 * "451 4.3.0" (STYLE "Errors and replies") and false is returned. */
bool
px_reply_backend(struct px_session *s, const struct px_relay_result *res,
                 bool allow_2xx)
{
	px_log_reply(s->txn.backend, sizeof(s->txn.backend), res->reply,
	             res->reply_len);
	/* RFC 5321 4.3.2: MAIL, RCPT and the end of data succeed with 250
	 * (RCPT also 251); a 220 or 221 there is out of step. */
	if ((res->code >= 400 && res->code < 600) ||
	    (allow_2xx && (res->code == 250 || res->code == 251))) {
		px_write_reply(s, res->reply, res->reply_len);
		s->txn.backend_final = true;
		return true;
	}
	px_log_warn("%016llx unexpected backend reply %s",
	            (unsigned long long)s->id, s->txn.backend);
	px_reply(s, 451, "4.3.0", "Error: unexpected reply from the backend");
	s->txn.backend_final = true;
	return false;
}

/* px_session_backend_broken - the backend said something out of step: the
 * transaction ends on our side and its connection is dropped (a new MAIL
 * opens a fresh one). */
static void
px_session_backend_broken(struct px_session *s)
{
	px_txn_end(s, "error");
	s->backend_txn = false;
	px_session_drop_relay(s);
	px_session_done(s);
}

/* px_session_listener_index - the session's listener in the config, for
 * the metrics' labels; -1 if the config changed since. */
static int
px_session_listener_index(const struct px_session *s)
{
	for (size_t i = 0; i < s->cfg->nlisten; i++)
		if (strcmp(s->cfg->listen[i].address, s->li.address) == 0)
			return (int)i;
	return -1;
}

/* px_reply_relay_failure - the backend could not be reached or was lost. */
void
px_reply_relay_failure(struct px_session *s, const struct px_relay_result *res)
{
	socklen_t blen;
	const char *bname;

	(void)px_config_backend(s->cfg, s->want_route, &blen, &bname);
	px_log_warn("%016llx backend %s: %s", (unsigned long long)s->id, bname,
	            res->why ? res->why : "failed");
	snprintf(s->txn.backend, sizeof(s->txn.backend), "%s",
	         res->status == PX_RELAY_UNREACHABLE ? "unreachable"
	         : res->status == PX_RELAY_TIMEOUT   ? "timeout"
	                                             : "lost");
	px_metrics_backend_error(s->txn.backend);
	if (res->status == PX_RELAY_UNREACHABLE)
		px_reply(s, 451, "4.4.1",
		         "Error: backend unavailable, try again later");
	else
		px_reply(s, 451, "4.4.2",
		         "Error: backend connection lost, try again later");
	s->txn.backend_final = true;
}

/* px_session_relay_ready - a usable backend connection to s->want_route
 * for the next command: an unusable one is dropped, the pool's taken.
 * Returns true when it can be used now; false when it is being opened
 * (OP_OPEN: the relay callback goes on). */
bool
px_session_relay_ready(struct px_session *s)
{
	if (s->relay != NULL && !px_relay_usable(s->relay))
		px_session_drop_relay(s);
	if (s->relay == NULL)
		s->relay = px_relay_take(s->base, s->cfg, s->id,
		                         px_session_relay_cb, s, s->want_route);
	if (!px_relay_usable(s->relay)) {
		px_session_open_backend(s);
		return false;
	}
	return true;
}

/* px_session_backend_lost - the backend connection went away between two
 * commands of a transaction: 451 4.4.2 to the client, the transaction
 * ends in error, the next MAIL opens a new connection. */
void
px_session_backend_lost(struct px_session *s)
{
	struct px_relay_result res = {.status = PX_RELAY_LOST,
	                              .why = "backend closed the connection"};

	px_reply_relay_failure(s, &res);
	px_txn_end(s, "error");
	px_session_drop_relay(s);
	px_session_done(s);
}

static void
px_session_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct px_session *s = arg;
	struct px_loop *loop = s->loop;

	px_loop_unregister(loop, s->id);
	px_rcpt_lookup_cancel(&s->rcpt_lookup);
	st_cancel(s->harvest_req);
	st_cancel(s->harvest_read);
	s->harvest_req = s->harvest_read = NULL;
	px_relay_release(&s->relay);
	flt_chain_free(&s->chain);
	px_session_drop_socket(s);
	if (s->counted)
		px_conn_release(s->client_ip);
	if (s->greet_ev != NULL)
		event_free(s->greet_ev);
	event_free(s->free_ev);
	px_spool_free(&s->spool);
	free(s->arstrip);
	free(s->helo);
	if (s->line != NULL)
		explicit_bzero(s->line, s->cfg->limits.line_length + 2);
	free(s->line);
	free(s->headers);
	free(s->auth_user);
	free(s->auth_cand);
	if (s->auth_line != NULL)
		explicit_bzero(s->auth_line, strlen(s->auth_line));
	free(s->auth_line);
	free(s->etrn_line);
	free(s->txn.from);
	free(s->txn.mail_line);
	free(s->txn.first_rcpt);
	free(s->txn.rcpt);
	free(s->txn.rcpt_line);
	px_config_unref(&s->cfg);
	free(s);
	px_server_session_gone(loop);
}

/* px_session_free_later - free s once the callback running now has
 * returned: made active, the free event runs in this loop iteration, after
 * the callbacks already due.  (A zero timeout ran it in the next one,
 * behind one more epoll_wait, and usually behind a read of the client's
 * FIN after QUIT.) */
static void
px_session_free_later(struct px_session *s)
{
	struct timeval zero = {0, 0};

	if (s->bev != NULL && bufferevent_get_underlying(s->bev) != NULL) {
		/* An OpenSSL filter (implicit TLS behind a PROXY header)
		 * has drained into the plain bufferevent below it, whose
		 * write event sends the last bytes in the next iteration:
		 * the zero timeout runs after that. */
		evtimer_add(s->free_ev, &zero);
		return;
	}
	event_active(s->free_ev, EV_TIMEOUT, 0);
}

void
px_session_flushed(struct bufferevent *bev, void *arg)
{
	struct px_session *s = arg;

	if (!px_sock_drained(bev))
		return;
	if (s->closing) {
		px_session_free_later(s);
		return;
	}
	if (s->tls_pending) {
		/* The 220 to STARTTLS is out: now the handshake. */
		px_session_tls_start(s);
		return;
	}
	/* Output drained: go on with pipelined commands. */
	px_session_run(s);
}

/*
 * px_session_close - end the session: log, stop reading, flush what is
 * queued (bounded by the write timeout), then free from the free event.
 */
void
px_session_close(struct px_session *s, const char *reason)
{
	if (s->closing)
		return;
	if (s->txn.active || s->state == S_DATA || s->state == S_BDAT)
		px_txn_end(s, "abort");
	s->closing = true;
	px_rcpt_lookup_cancel(&s->rcpt_lookup);
	st_cancel(s->harvest_req);
	st_cancel(s->harvest_read);
	s->harvest_req = s->harvest_read = NULL;
	if (s->greet_ev != NULL)
		event_del(s->greet_ev);
	if (s->state != S_PROXY) {
		px_log_info("%016llx disconnect reason=%s txns=%u ms=%ld",
		            (unsigned long long)s->id, reason, s->ntxn,
		            px_ms_since(&s->start));
		px_metrics_connection_close(px_session_listener_index(s),
		                            reason);
	}
	/* A backend transaction still open is not clean: no pool for it. */
	if (s->backend_txn && s->relay != NULL) {
		px_relay_quit(s->relay);
		px_session_drop_relay(s);
	}
	px_relay_release(&s->relay);
	/* In the middle of a handshake nothing can be said any more. */
	if (s->state == S_TLS)
		px_session_drop_socket(s);
	if (s->bev == NULL || px_sock_flush(s->bev)) {
		px_session_free_later(s);
		return;
	}
	/* The rest goes out from the write callback, or the write timeout
	 * ends the wait. */
	struct timeval wt = {10, 0};

	if (s->rd != NULL)
		px_reader_stop(s->rd);
	bufferevent_set_timeouts(s->bev, NULL, &wt);
}

/* Transactions. */

static void
px_txn_reset(struct px_session *s)
{
	free(s->txn.from);
	free(s->txn.mail_line);
	free(s->txn.first_rcpt);
	free(s->txn.rcpt);
	free(s->txn.rcpt_line);
	memset(&s->txn, 0, sizeof(s->txn));
	s->txn.checks_ms = s->txn.backend_ms = -1;
	s->fs.mail_from = NULL;
	s->fs.rcpt = NULL;
	s->fs.nrcpt = 0;
	s->fs.message = NULL;
	if (s->chain != NULL)
		flt_chain_reset_txn(s->chain);
	if (s->spool != NULL)
		px_spool_reset(s->spool);
}

static void
px_session_count_symbol(const char *name, void *arg)
{
	(void)arg;
	px_metrics_symbol(name);
}

/* px_session_dkim_summary - the txn line's dkim=: "-" if not evaluated,
 * "pass" if a signature passed, else the first signature's result
 * ("none" without one). */
static const char *
px_session_dkim_summary(const struct flt_dkim_sig *sigs, int n)
{
	if (n < 0)
		return "-";
	for (int i = 0; i < n; i++)
		if (sigs[i].result == FLT_DKIM_PASS)
			return "pass";
	return flt_dkim_result_name(n > 0 ? sigs[0].result : FLT_DKIM_NONE);
}

/*
 * px_txn_end - write the one "txn" log line and reset the transaction.
 * Keys are in a fixed order, "-" for not evaluated (STYLE "Logging").
 */
void
px_txn_end(struct px_session *s, const char *result)
{
	char from[600], rcpt[600], helo[600], syms[1024], backend[600];
	char fields[256], checks_ms[24], backend_ms[24];
	struct px_txn *t = &s->txn;
	enum flt_spf spf;
	const struct flt_dkim_sig *dkim;
	int ndkim;

	if (t->id == 0)
		return;
	spf = flt_chain_spf(s->chain, NULL);
	ndkim = flt_chain_dkim(s->chain, &dkim);
	/* A transaction given up after every recipient was refused ended
	 * in that refusal. */
	if (strcmp(result, "abort") == 0 && t->nrcpt == 0 && t->nrcpt_seen > 0)
		result = t->rcpt_refused_perm ? "reject" : "tempfail";
	if (t->from != NULL) {
		char tmp[560];

		snprintf(tmp, sizeof(tmp), "<%s>", t->from);
		px_log_str(from, sizeof(from), tmp);
	} else {
		snprintf(from, sizeof(from), "-");
	}
	if (t->first_rcpt != NULL || t->rcpt != NULL) {
		char tmp[560];

		snprintf(tmp, sizeof(tmp), "<%s>",
		         t->first_rcpt ? t->first_rcpt : t->rcpt);
		px_log_str(rcpt, sizeof(rcpt), tmp);
	} else {
		snprintf(rcpt, sizeof(rcpt), "-");
	}
	px_log_str(helo, sizeof(helo), s->helo);
	flt_chain_symbols(s->chain, syms, sizeof(syms), "-");
	flt_chain_log_fields(s->chain, fields, sizeof(fields));
	flt_chain_txn_end(s->chain, result);
	px_metrics_txn(result, t->size);
	flt_chain_foreach_symbol(s->chain, px_session_count_symbol, NULL);
	/* backend= is what the backend said about the outcome: "-" when
	 * mxguard itself gave the final answer. */
	snprintf(backend, sizeof(backend), "%s",
	         t->backend_final && t->backend[0] ? t->backend : "-");
	/* End-of-data latency, split: our checks, then the backend's own. */
	if (t->checks_ms >= 0)
		snprintf(checks_ms, sizeof(checks_ms), "%ld", t->checks_ms);
	else
		snprintf(checks_ms, sizeof(checks_ms), "-");
	if (t->backend_ms >= 0)
		snprintf(backend_ms, sizeof(backend_ms), "%ld", t->backend_ms);
	else
		snprintf(backend_ms, sizeof(backend_ms), "-");
	px_log_info(
	    "%016llx.%u txn result=%s stage=%s reply=%s from=%s rcpt=%s "
	    "nrcpt=%u size=%zu helo=%s tls=%s spf=%s dkim=%s score=%.1f "
	    "symbols=%s%s backend=%s checks_ms=%s backend_ms=%s ms=%ld",
	    (unsigned long long)s->id, t->id, result, px_stage_names[t->stage],
	    t->reply[0] ? t->reply : "-", from, rcpt, t->nrcpt, t->size, helo,
	    s->tls ? s->tls_version : "-",
	    spf == FLT_SPF_NOT_CHECKED ? "-" : flt_spf_result_name(spf),
	    px_session_dkim_summary(dkim, ndkim), flt_chain_score(s->chain),
	    syms, fields, backend, checks_ms, backend_ms,
	    px_ms_since(&t->start));
	px_stats_txn(&(struct px_stats_txn){.sid = s->id,
	                                    .n = t->id,
	                                    .client_ip = s->client_ip,
	                                    .from = t->from,
	                                    .nrcpt = t->nrcpt,
	                                    .result = result,
	                                    .score = flt_chain_score(s->chain),
	                                    .symbols = syms,
	                                    .reply = t->reply,
	                                    .backend = backend});
	px_txn_reset(s);
}

/* px_txn_begin - a MAIL command starts a transaction (log id n). */
static void
px_txn_begin(struct px_session *s)
{
	px_txn_reset(s);
	s->txn.id = ++s->ntxn;
	s->fs.txn = s->txn.id;
	s->txn.stage = ST_MAIL;
	clock_gettime(CLOCK_MONOTONIC, &s->txn.start);
}

/* px_session_done - an asynchronous step finished: go on with input. */
void
px_session_done(struct px_session *s)
{
	s->busy = false;
	s->op = OP_NONE;
	if (s->closing)
		return;
	px_session_set_timeout(s);
	px_session_run(s);
}

/* The greeting and the connect stage. */

static void
px_session_connect_done(void *arg, const struct flt_verdict *v)
{
	struct px_session *s = arg;

	if (s->closing)
		return;
	if (v->action == FLT_DISCONNECT) {
		/* RFC 5321 3.1: 554 instead of 220 refuses the session. */
		px_reply_verdict(s, v, "Service unavailable");
		px_session_close(s, "policy");
		return;
	}
	if (v->action == FLT_REJECT || v->action == FLT_TEMPFAIL)
		s->early = *v;
	px_reply(s, 220, NULL, "%s ESMTP mxguard", s->cfg->hostname);
	s->state = S_CMD;
	px_session_done(s);
}

static void
px_session_connect_stage(struct px_session *s)
{
	struct flt_verdict v;

	px_session_set_busy(s);
	if (flt_chain_run(s->chain, FLT_STAGE_CONNECT, px_session_connect_done,
	                  s, &v) == 1)
		px_session_connect_done(s, &v);
}

static void
px_session_greet_timer(evutil_socket_t fd, short what, void *arg)
{
	struct px_session *s = arg;

	if (s->closing || s->rd == NULL)
		return;
	/* Anything the client sent before our last greeting line is a
	 * pregreet (postscreen's test). */
	if (evbuffer_get_length(px_reader_input(s->rd)) > 0)
		s->fs.pregreet = true;
	px_session_connect_stage(s);
}

static void
px_session_greet(struct px_session *s)
{
	px_metrics_connection_open();
	/* The client is known now (socket peer or PROXY header). */
	for (size_t i = 0; i < s->cfg->nrelay_networks; i++) {
		if (px_cidr_match(&s->cfg->relay_networks[i], &s->client)) {
			s->relay_client = true;
			flt_chain_fact_set(s->chain, FLT_FACT_RELAY);
			break;
		}
	}
	px_log_info(
	    "%016llx connect client=[%s]:%u listener=%s mode=%s proxy=%s",
	    (unsigned long long)s->id, s->client_ip, s->client_port,
	    s->li.address, s->li.mode == PX_MODE_MX ? "mx" : "submission",
	    s->proxy_version);
	s->state = S_GREET;
	switch (px_conn_acquire(s->cfg, s->client_ip)) {
	case -1:
		px_reply(s, 421, "4.7.0", "%s Error: too many connections",
		         s->cfg->hostname);
		px_session_close(s, "limit");
		return;
	case -2:
		px_reply(s, 421, "4.7.0",
		         "%s Error: too many connections from your address",
		         s->cfg->hostname);
		px_session_close(s, "limit");
		return;
	default:
		s->counted = true;
	}
	if (s->li.tls_implicit && !s->tls) {
		/* RFC 8314 3.3: TLS first; the banner comes after. */
		if (s->tls_cfg == NULL) {
			px_log_warn(
			    "%016llx implicit TLS listener %s has no tls "
			    "settings in the running config",
			    (unsigned long long)s->id, s->li.address);
			px_session_close(s, "tls");
			return;
		}
		px_session_set_busy(s);
		px_session_tls_start(s);
		return;
	}
	px_session_greet_rest(s);
}

/* px_session_greet_rest - the banner (after greet_delay) and the connect
 * filters. */
void
px_session_greet_rest(struct px_session *s)
{
	s->state = S_GREET;
	px_session_set_busy(s);
	if (s->cfg->greet_delay > 0) {
		struct timeval tv = px_timeval(s->cfg->greet_delay);

		/* A multi-line greeting whose first line comes at once: a
		 * patient client waits for the last line (RFC 5321 4.2.1);
		 * one that talks now is a pregreeter. */
		char line[300];
		int n = snprintf(line, sizeof(line), "220-%s ESMTP mxguard\r\n",
		                 s->cfg->hostname);

		px_write_reply(s, line, (size_t)n);
		s->greet_ev = evtimer_new(s->base, px_session_greet_timer, s);
		evtimer_add(s->greet_ev, &tv);
		return;
	}
	px_session_connect_stage(s);
}

/* px_session_set_client - who the client is: the socket's peer, or what a
 * PROXY header says; IPv4-mapped addresses become plain IPv4. */
static void
px_session_set_client(struct px_session *s, const struct sockaddr_storage *ss)
{
	s->client = *ss;
	px_addr_unmap(&s->client);
	px_addr_ip(&s->client, s->client_ip, sizeof(s->client_ip));
	s->client_port = px_addr_port(&s->client);
	s->fs.client = s->client;
	memcpy(s->fs.client_ip, s->client_ip, sizeof(s->fs.client_ip));
	s->fs.client_port = s->client_port;
}

/* The PROXY protocol header (trusted listeners only). */

static void
px_session_proxy_input(struct px_session *s)
{
	struct evbuffer *in = px_reader_input(s->rd);
	size_t len = evbuffer_get_length(in);
	size_t take = len < 16 + 65535 ? len : 16 + 65535;
	struct px_proxy_hdr hdr;
	const char *err = NULL;
	ssize_t n;

	n = px_proxy_parse(evbuffer_pullup(in, (ssize_t)take), take, &hdr,
	                   &err);
	if (n == 0)
		return;
	if (n < 0) {
		char peer[PX_ADDRSTRLEN];

		px_addr_format(&s->client, peer, sizeof(peer));
		px_log_warn("%016llx bad PROXY header from %s on %s: %s",
		            (unsigned long long)s->id, peer, s->li.address,
		            err ? err : "malformed");
		px_session_close(s, "proxy");
		return;
	}
	evbuffer_drain(in, (size_t)n);
	s->proxy_version = hdr.version == 1 ? "v1" : "v2";
	if (!hdr.local)
		px_session_set_client(s, &hdr.src);
	px_session_greet(s);
}

/* Commands. */

static void
px_session_helo_done(void *arg, const struct flt_verdict *v)
{
	struct px_session *s = arg;

	if (s->closing)
		return;
	if (v->action == FLT_DISCONNECT) {
		px_reply_verdict(s, v, "Service unavailable");
		px_session_close(s, "policy");
		return;
	}
	if ((v->action == FLT_REJECT || v->action == FLT_TEMPFAIL) &&
	    s->early.action == FLT_CONTINUE)
		s->early = *v;
	if (!s->esmtp) {
		s->adv_binarymime = false; /* no extensions after HELO */
		px_reply(s, 250, NULL, "%s", s->cfg->hostname);
	} else {
		struct px_caps caps;
		bool known = px_backend_caps_get(&caps);
		char buf[1024];
		int n;

		s->adv_size = s->cfg->limits.message_size;
		if (known && caps.size && caps.size_max > 0 &&
		    caps.size_max < s->adv_size)
			s->adv_size = caps.size_max;
		s->adv_smtputf8 = known && caps.smtputf8;
		s->adv_dsn = known && caps.dsn;
		/* RFC 3030 3: BINARYMIME only beside CHUNKING, and only when
		 * the backend takes it too (by BDAT): offered otherwise, a
		 * sender would not convert binary content and the message
		 * could only be refused (554 5.6.3). */
		s->adv_binarymime = known && caps.binarymime && caps.chunking &&
		                    s->cfg->backend_chunking;
		/* RFC 3207 4.2: no STARTTLS once under TLS. */
		n = snprintf(
		    buf, sizeof(buf),
		    "250-%s\r\n250-PIPELINING\r\n250-SIZE %llu\r\n"
		    "%s250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n%s%s%s%s",
		    s->cfg->hostname, s->adv_size,
		    !known || caps.eightbitmime ? "250-8BITMIME\r\n" : "",
		    s->adv_binarymime ? "250-BINARYMIME\r\n" : "",
		    s->adv_smtputf8 ? "250-SMTPUTF8\r\n" : "",
		    s->adv_dsn ? "250-DSN\r\n" : "",
		    s->tls_cfg != NULL && !s->tls ? "250-STARTTLS\r\n" : "");
		/* RFC 4954 4 and RFC 8314: AUTH on a submission listener,
		 * under TLS only, with what the backend can check. */
		if (s->li.mode == PX_MODE_SUBMISSION && s->tls && known &&
		    (caps.auth & (PX_AUTH_PLAIN | PX_AUTH_LOGIN)) &&
		    (size_t)n < sizeof(buf))
			n += snprintf(
			    buf + n, sizeof(buf) - (size_t)n,
			    "250-AUTH%s%s\r\n",
			    (caps.auth & PX_AUTH_PLAIN) ? " PLAIN" : "",
			    (caps.auth & PX_AUTH_LOGIN) ? " LOGIN" : "");
		/* The last line takes a space after the code. */
		buf[n - 2] = '\0';
		char *last = strrchr(buf, '\n');

		last = last ? last + 1 : buf;
		last[3] = ' ';
		buf[n - 2] = '\r';
		px_write_reply(s, buf, (size_t)n);
	}
	px_session_done(s);
}

static void
px_cmd_helo(struct px_session *s, const struct px_cmd *cmd, bool esmtp)
{
	struct flt_verdict v;

	/* RFC 5321 4.1.4: HELO/EHLO in a transaction resets it. */
	if (s->txn.active)
		px_txn_end(s, "abort");
	free(s->helo);
	s->helo = px_strndup(cmd->arg.p, cmd->arg.len);
	s->esmtp = esmtp;
	s->fs.helo = s->helo;
	s->fs.esmtp = esmtp;
	px_session_set_busy(s);
	/* A transaction open at the backend must go too; the HELO filters
	 * run when its RSET answers. */
	if (px_session_rset_backend(s, OP_RSET_HELO))
		return;
	if (flt_chain_run(s->chain, FLT_STAGE_HELO, px_session_helo_done, s,
	                  &v) == 1)
		px_session_helo_done(s, &v);
}

/* px_mail_params - check MAIL parameters and build the line for the
 * backend.  Returns 0, or -1 after replying. */
static int
px_mail_params(struct px_session *s, const struct px_cmd *cmd, char *out,
               size_t outsize)
{
	struct px_slice params = cmd->params;
	struct px_param p;
	size_t n;
	int rc;
	bool backend_dsn = false;
	struct px_caps caps;

	if (px_backend_caps_get(&caps))
		backend_dsn = caps.dsn;
	n = (size_t)snprintf(out, outsize, "MAIL FROM:<%.*s>",
	                     (int)cmd->addr.len, cmd->addr.p);
	while ((rc = px_param_next(&params, &p)) == 1) {
		bool keep = true;

		if (px_slice_eq_ci(p.key, "SIZE")) {
			char num[32];
			unsigned long long size;
			char *end;

			if (!p.has_value || p.value.len == 0 ||
			    p.value.len >= sizeof(num)) {
				px_reply_error(s, 501, "5.5.4",
				               "Error: bad SIZE parameter");
				return -1;
			}
			memcpy(num, p.value.p, p.value.len);
			num[p.value.len] = '\0';
			size = strtoull(num, &end, 10);
			if (*end != '\0' || num[0] < '0' || num[0] > '9') {
				px_reply_error(s, 501, "5.5.4",
				               "Error: bad SIZE parameter");
				return -1;
			}
			if (size > s->cfg->limits.message_size) {
				px_reply(
				    s, 552, "5.3.4",
				    "Error: message size exceeds fixed limit");
				return -1;
			}
		} else if (px_slice_eq_ci(p.key, "BODY")) {
			bool binary = p.has_value &&
			              px_slice_eq_ci(p.value, "BINARYMIME");

			/* RFC 3030 3: BINARYMIME only when offered. */
			if (!p.has_value || (binary && !s->adv_binarymime) ||
			    (!binary && !px_slice_eq_ci(p.value, "7BIT") &&
			     !px_slice_eq_ci(p.value, "8BITMIME"))) {
				px_reply_error(s, 501, "5.5.4",
				               "Error: unsupported BODY type");
				return -1;
			}
			s->txn.binarymime = binary;
		} else if (px_slice_eq_ci(p.key, "SMTPUTF8")) {
			if (!s->adv_smtputf8 || p.has_value) {
				px_reply_error(s, 555, "5.5.4",
				               "Error: SMTPUTF8 not supported");
				return -1;
			}
			s->txn.smtputf8 = true;
		} else if (px_slice_eq_ci(p.key, "RET") ||
		           px_slice_eq_ci(p.key, "ENVID")) {
			bool ret = px_slice_eq_ci(p.key, "RET");

			if (!s->adv_dsn) {
				px_reply_error(s, 555, "5.5.4",
				               "Error: DSN not supported");
				return -1;
			}
			if (!p.has_value ||
			    (ret && !px_slice_eq_ci(p.value, "FULL") &&
			     !px_slice_eq_ci(p.value, "HDRS")) ||
			    (!ret &&
			     (p.value.len > 100 || !px_xtext_valid(p.value)))) {
				px_reply_error(s, 501, "5.5.4",
				               "Error: bad %s parameter",
				               ret ? "RET" : "ENVID");
				return -1;
			}
			if (!backend_dsn) {
				px_log_info("%016llx dropped %.*s: the backend "
				            "has no DSN",
				            (unsigned long long)s->id,
				            (int)p.key.len, p.key.p);
				keep = false;
			}
		} else if (px_slice_eq_ci(p.key, "AUTH")) {
			/* We do not offer AUTH on this port; RFC 4954 5
			 * lets a server ignore the parameter. */
			keep = false;
		} else {
			px_reply_error(s, 555, "5.5.4",
			               "Error: unsupported parameter %.*s",
			               (int)(p.key.len > 40 ? 40 : p.key.len),
			               p.key.p);
			return -1;
		}
		if (keep && n < outsize)
			n += (size_t)snprintf(out + n, outsize - n,
			                      " %.*s%s%.*s", (int)p.key.len,
			                      p.key.p, p.has_value ? "=" : "",
			                      (int)p.value.len, p.value.p);
	}
	if (rc < 0) {
		px_reply_error(s, 501, "5.5.4", "Error: bad MAIL parameters");
		return -1;
	}
	if (cmd->addr_utf8 && !s->txn.smtputf8) {
		px_reply_error(s, 553, "5.6.7",
		               "Error: non-ASCII address needs SMTPUTF8");
		return -1;
	}
	if (n >= outsize) {
		px_reply_error(s, 500, "5.5.2", "Error: MAIL command too long");
		return -1;
	}
	return 0;
}

/* px_session_client_name - the client's name for XCLIENT/XFORWARD NAME:
 * the forward-confirmed reverse DNS name (iprev filter), "[TEMPUNAVAIL]"
 * after a temporary DNS failure (Postfix's convention), else NULL (the
 * relay sends "[UNAVAILABLE]"). */
static const char *
px_session_client_name(struct px_session *s)
{
	enum flt_iprev iprev;
	const char *name = flt_chain_client_name(s->chain, &iprev);

	if (iprev == FLT_IPREV_PASS && name != NULL)
		return name;
	return iprev == FLT_IPREV_TEMPERROR ? "[TEMPUNAVAIL]" : NULL;
}

static void
px_relay_client_info(struct px_session *s, struct px_relay_client *c)
{
	c->ip = s->client_ip;
	c->port = s->client_port;
	c->name = px_session_client_name(s);
	c->helo = s->helo;
	c->proto = s->esmtp ? "ESMTP" : "SMTP";
}

/* px_session_open_backend - connect and greet the backend for MAIL. */
void
px_session_open_backend(struct px_session *s)
{
	struct px_relay_client c;

	if (s->relay == NULL) {
		s->relay = px_relay_new(s->base, s->cfg, s->id,
		                        px_session_relay_cb, s);
		px_relay_set_route(s->relay, s->want_route);
	}
	px_relay_client_info(s, &c);
	s->op = OP_OPEN;
	px_relay_open(s->relay, &c);
}

/* px_session_send_mail - the backend is ready: XFORWARD if needed, then
 * MAIL. */
void
px_session_send_mail(struct px_session *s)
{
	const struct px_caps *caps = px_relay_caps(s->relay);

	if (s->txn.binarymime &&
	    (!caps->binarymime || !px_relay_chunking(s->relay))) {
		/* RFC 3030 3 and RFC 3463: this backend cannot take the
		 * binary message and a proxy must not convert it; refused
		 * now, before the client sends it.  When moving to another
		 * route, this answers the RCPT (the MAIL stands). */
		px_log_info("%016llx.%u BODY=BINARYMIME refused: the backend "
		            "has no %s",
		            (unsigned long long)s->id, s->txn.id,
		            caps->binarymime ? "CHUNKING" : "BINARYMIME");
		px_reply(s, 554, "5.6.3",
		         "Error: conversion required but not supported");
		if (s->routing)
			s->routing = false;
		else
			px_txn_end(s, "reject");
		px_session_done(s);
		return;
	}
	if (!px_relay_xclient_done(s->relay) && caps->xforward &&
	    (caps->xforward_attrs & PX_XATTR_ADDR) && s->op != OP_XFORWARD) {
		char line[1024];
		struct px_relay_client c;
		size_t n;

		/* Before every MAIL: XFORWARD lasts one transaction, and a
		 * pooled connection served other clients before. */
		px_relay_client_info(s, &c);
		n = px_relay_client_attrs(line, sizeof(line), "XFORWARD",
		                          caps->xforward_attrs, &c);
		s->op = OP_XFORWARD;
		px_relay_command(s->relay, line, n);
		return;
	}
	s->op = OP_MAIL;
	px_relay_command(s->relay, s->txn.mail_line, strlen(s->txn.mail_line));
}

static void
px_session_mail_filters_done(void *arg, const struct flt_verdict *v)
{
	struct px_session *s = arg;

	if (s->closing)
		return;
	if (v->action == FLT_REJECT || v->action == FLT_TEMPFAIL ||
	    v->action == FLT_DISCONNECT) {
		px_reply_verdict(s, v, "Sender rejected");
		px_txn_end(s,
		           v->action == FLT_TEMPFAIL ? "tempfail" : "reject");
		if (v->action == FLT_DISCONNECT)
			px_session_close(s, "policy");
		else
			px_session_done(s);
		return;
	}
	/* A new connection for MAIL goes to the default backend: the first
	 * recipient moves it if routes say so. */
	if (s->relay == NULL || !px_relay_usable(s->relay))
		s->want_route = 0;
	if (px_session_relay_ready(s))
		px_session_send_mail(s);
}

static void
px_cmd_mail(struct px_session *s, const struct px_cmd *cmd)
{
	char line[2048];
	struct flt_verdict v;

	if (s->helo == NULL) {
		px_reply_error(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	if (s->txn.active) {
		px_reply_error(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	if (s->tls_cfg != NULL && s->tls_cfg->required && !s->tls) {
		/* RFC 3207 4: the listener's policy requires TLS. */
		px_reply_error(s, 530, "5.7.0",
		               "Must issue a STARTTLS command first");
		return;
	}
	if (s->authenticated && s->cfg->sender_login_match && !cmd->null_path &&
	    (cmd->addr.len != strlen(s->auth_user) ||
	     strncasecmp(cmd->addr.p, s->auth_user, cmd->addr.len) != 0)) {
		/* Postfix's reject_sender_login_mismatch, in its words. */
		px_reply_policy(
		    s, 553, "5.7.1",
		    "<%.*s>: Sender address rejected: not owned by "
		    "user %s",
		    (int)(cmd->addr.len > 300 ? 300 : cmd->addr.len),
		    cmd->addr.p, s->auth_user);
		return;
	}
	px_txn_begin(s);
	s->txn.from = px_strndup(cmd->addr.p, cmd->addr.len);
	if (px_mail_params(s, cmd, line, sizeof(line)) < 0) {
		/* A refused MAIL is not a transaction: no txn line, as no
		 * transaction began (RFC 5321 3.3). */
		s->ntxn--;
		px_txn_reset(s);
		return;
	}
	s->txn.mail_line = px_strdup(line);
	s->fs.mail_from = s->txn.from;
	px_session_set_busy(s);
	if (flt_chain_run(s->chain, FLT_STAGE_MAIL,
	                  px_session_mail_filters_done, s, &v) == 1)
		px_session_mail_filters_done(s, &v);
}

static int
px_rcpt_params(struct px_session *s, const struct px_cmd *cmd, char *out,
               size_t outsize)
{
	struct px_slice params = cmd->params;
	struct px_param p;
	size_t n;
	int rc;
	bool backend_dsn = s->relay != NULL && px_relay_caps(s->relay)->dsn;

	n = (size_t)snprintf(out, outsize, "RCPT TO:<%.*s>", (int)cmd->addr.len,
	                     cmd->addr.p);
	while ((rc = px_param_next(&params, &p)) == 1) {
		if (px_slice_eq_ci(p.key, "NOTIFY") ||
		    px_slice_eq_ci(p.key, "ORCPT")) {
			bool notify = px_slice_eq_ci(p.key, "NOTIFY");

			if (!s->adv_dsn) {
				px_reply_error(s, 555, "5.5.4",
				               "Error: DSN not supported");
				return -1;
			}
			if (!p.has_value || p.value.len == 0 ||
			    (!notify &&
			     (memchr(p.value.p, ';', p.value.len) == NULL ||
			      !px_xtext_valid(p.value)))) {
				px_reply_error(s, 501, "5.5.4",
				               "Error: bad %s parameter",
				               notify ? "NOTIFY" : "ORCPT");
				return -1;
			}
			if (notify) {
				/* NEVER alone, or a list of SUCCESS,
				 * FAILURE, DELAY (RFC 3461 4.1). */
				char v[64];
				bool never = false, other = false;

				if (p.value.len >= sizeof(v)) {
					px_reply_error(
					    s, 501, "5.5.4",
					    "Error: bad NOTIFY parameter");
					return -1;
				}
				memcpy(v, p.value.p, p.value.len);
				v[p.value.len] = '\0';
				for (char *save, *w = strtok_r(v, ",", &save);
				     w != NULL;
				     w = strtok_r(NULL, ",", &save)) {
					if (strcasecmp(w, "NEVER") == 0)
						never = true;
					else if (strcasecmp(w, "SUCCESS") ==
					             0 ||
					         strcasecmp(w, "FAILURE") ==
					             0 ||
					         strcasecmp(w, "DELAY") == 0)
						other = true;
					else
						never = other = true;
				}
				if ((never && other) || (!never && !other) ||
				    p.value.p[p.value.len - 1] == ',' ||
				    p.value.p[0] == ',') {
					px_reply_error(
					    s, 501, "5.5.4",
					    "Error: bad NOTIFY parameter");
					return -1;
				}
			}
			if (!backend_dsn)
				continue;
			if (n < outsize)
				n += (size_t)snprintf(
				    out + n, outsize - n, " %.*s=%.*s",
				    (int)p.key.len, p.key.p, (int)p.value.len,
				    p.value.p);
			continue;
		}
		px_reply_error(s, 555, "5.5.4",
		               "Error: unsupported parameter %.*s",
		               (int)(p.key.len > 40 ? 40 : p.key.len), p.key.p);
		return -1;
	}
	if (rc < 0) {
		px_reply_error(s, 501, "5.5.4", "Error: bad RCPT parameters");
		return -1;
	}
	if (cmd->addr_utf8 && !s->txn.smtputf8) {
		px_reply_error(s, 553, "5.6.7",
		               "Error: non-ASCII address needs SMTPUTF8");
		return -1;
	}
	if (n >= outsize) {
		px_reply_error(s, 500, "5.5.2", "Error: RCPT command too long");
		return -1;
	}
	return 0;
}

static void
px_session_rcpt_filters_done(void *arg, const struct flt_verdict *v)
{
	struct px_session *s = arg;

	if (s->closing)
		return;
	if (v->action == FLT_REJECT || v->action == FLT_TEMPFAIL ||
	    v->action == FLT_DISCONNECT) {
		px_reply_verdict(s, v, "Recipient rejected");
		if (v->action == FLT_DISCONNECT)
			px_session_close(s, "policy");
		else
			px_session_done(s);
		return;
	}
	if (s->cfg->nroutes > 0 && !s->authenticated) {
		unsigned want = px_config_route(s->cfg, s->txn.rcpt);

		if (s->txn.nrcpt > 0 && want != s->txn.route) {
			/* Never a split message: the client sends this one
			 * in another transaction (RFC 5321 4.5.3.1.10). */
			px_reply(s, 452, "4.5.3",
			         "Error: recipient for another destination; "
			         "send it in a new transaction");
			px_session_done(s);
			return;
		}
		if (s->txn.nrcpt == 0 &&
		    (s->relay == NULL || !px_relay_usable(s->relay) ||
		     want != px_relay_route(s->relay) || !s->backend_txn)) {
			px_session_reroute(s, want);
			return;
		}
	}
	if (s->relay == NULL || !px_relay_usable(s->relay)) {
		px_session_backend_lost(s);
		return;
	}
	s->op = OP_RCPT;
	px_relay_command(s->relay, s->txn.rcpt_line, strlen(s->txn.rcpt_line));
}

/*
 * px_session_relay_allowed - relay control, before anything else at RCPT
 * and before the backend hears of the recipient: a client in relay_networks
 * or an authenticated one may send anywhere; any other only to an accepted
 * domain, without sender-specified routing (relay_control.h).  Replies and
 * returns false when refused.
 */
static bool
px_session_relay_allowed(struct px_session *s)
{
	enum px_rcpt_class rc;
	char rcpt[600], tmp[560];

	if (s->relay_client || s->authenticated)
		return true;
	rc = px_rcpt_classify(s->cfg->accepted, s->txn.rcpt,
	                      strlen(s->txn.rcpt));
	if (rc == PX_RCPT_LOCAL)
		return true;
	/* Postfix's wording, so scripts and users see what they know. */
	px_reply_policy(s, 554, "5.7.1", "<%s>: Relay access denied",
	                s->txn.rcpt);
	snprintf(tmp, sizeof(tmp), "<%s>", s->txn.rcpt);
	px_log_str(rcpt, sizeof(rcpt), tmp);
	px_log_info("%016llx.%u relay denied rcpt=%s why=%s client=[%s]",
	            (unsigned long long)s->id, s->txn.id, rcpt,
	            px_rcpt_class_name(rc), s->client_ip);
	return false;
}

/*
 * The directory-harvest cap across sessions (filters/harvest.c): each
 * unknown recipient (ours or the backend's 5.1.x, as px_write_reply sees
 * them) is counted in the store against the client's address, at most one
 * count in flight per session (the others wait in harvest_unsent and go
 * as one).  Every RCPT first reads the count: it is queued behind the
 * session's own counts on the same store connection, so a client that
 * waits for each reply and has just gone over is refused at its very next
 * RCPT (a pipelined burst may get one more answer first); on Redis, on any
 * instance.
 */
static void px_session_harvest_send(struct px_session *s);

static void
px_session_harvest_counted(struct px_session *s, const struct st_reply *r)
{
	if (r->status != 0) {
		px_log_warn("%016llx harvest: store error: %s",
		            (unsigned long long)s->id, r->error);
		return;
	}
	if (!s->harvest_over && flt_harvest_over(s->cfg, r)) {
		s->harvest_over = true;
		px_log_info("%016llx unknown recipient limit reached "
		            "client=[%s] limit=%u window=%u",
		            (unsigned long long)s->id, s->client_ip,
		            s->cfg->limits.unknown_recipients_per_client,
		            s->cfg->limits.unknown_recipients_window);
	}
}

static void
px_session_harvest_count_done(void *arg, const struct st_reply *r)
{
	struct px_session *s = arg;

	s->harvest_req = NULL;
	px_session_harvest_counted(s, r);
	if (s->harvest_unsent > 0)
		px_session_harvest_send(s);
}

static void
px_session_harvest_send(struct px_session *s)
{
	struct st_reply r;
	unsigned n = s->harvest_unsent;

	s->harvest_unsent = 0;
	if (flt_harvest_count(s->loop, s->cfg, &s->client, n,
	                      px_session_harvest_count_done, s, &r,
	                      &s->harvest_req) == 1) {
		px_session_harvest_counted(s, &r);
		st_reply_clear(&r);
	}
}

/* px_session_harvest_note - px_write_reply saw an unknown recipient. */
static void
px_session_harvest_note(struct px_session *s)
{
	if (s->cfg->limits.unknown_recipients_per_client == 0 ||
	    s->relay_client || s->authenticated || s->closing)
		return;
	s->harvest_unsent++;
	if (s->harvest_req == NULL)
		px_session_harvest_send(s);
}

/* px_session_harvest_refuse - the client is at the limit: 421, close. */
static void
px_session_harvest_refuse(struct px_session *s)
{
	px_log_info("%016llx.%u unknown recipient limit client=[%s] "
	            "stage=rcpt",
	            (unsigned long long)s->id, s->txn.id, s->client_ip);
	px_metrics_unknown_limit();
	px_reply(s, 421, "4.7.0",
	         "%s Error: too many unknown recipients, closing",
	         s->cfg->hostname);
	px_session_close(s, "limit");
}

/* px_session_rcpt_end - this RCPT is answered: if it waited (store,
 * Redis), the session goes on with the next command. */
static void
px_session_rcpt_end(struct px_session *s)
{
	if (!s->rcpt_async)
		return;
	s->rcpt_async = false;
	px_session_done(s);
}

static void px_session_rcpt_relay(struct px_session *s);
static void px_session_rcpt_checks(struct px_session *s);

/* px_session_harvest_read_answer - the RCPT's read of the count. */
static void
px_session_harvest_read_answer(struct px_session *s, const struct st_reply *r)
{
	if (r->status == 0 && flt_harvest_over(s->cfg, r)) {
		s->harvest_over = true;
		px_session_harvest_refuse(s);
		return;
	}
	if (r->status != 0) {
		px_log_warn("%016llx harvest: store error: %s",
		            (unsigned long long)s->id, r->error);
		if (s->cfg->on_store_error == PX_STORE_ERROR_TEMPFAIL) {
			px_reply(s, 451, "4.3.0",
			         "Temporary local problem, please try again "
			         "later");
			px_session_rcpt_end(s);
			return;
		}
	}
	px_session_rcpt_relay(s);
}

static void
px_session_harvest_read_done(void *arg, const struct st_reply *r)
{
	struct px_session *s = arg;

	s->harvest_read = NULL;
	px_session_harvest_read_answer(s, r);
}

/* px_session_rcpt_harvest - the first step of a RCPT: is the client over
 * the cross-session cap (limits.unknown_recipients_per_client)? */
static void
px_session_rcpt_harvest(struct px_session *s)
{
	struct st_reply r;

	if (s->cfg->limits.unknown_recipients_per_client == 0 ||
	    s->relay_client || s->authenticated) {
		px_session_rcpt_relay(s);
		return;
	}
	if (flt_harvest_count(s->loop, s->cfg, &s->client, 0,
	                      px_session_harvest_read_done, s, &r,
	                      &s->harvest_read) == 0) {
		s->rcpt_async = true;
		px_session_set_busy(s);
		return;
	}
	px_session_harvest_read_answer(s, &r);
	st_reply_clear(&r);
}

/* px_session_rcpt_looked_up - what the recipient tables said
 * (rcpt_lookup.h): unknown -> 550 5.1.1 (Postfix's wording), the set
 * unreachable -> 451 4.3.0; known or not ours to verify -> the checks. */
static void
px_session_rcpt_looked_up(void *arg, int known, const char *source,
                          const char *error)
{
	struct px_session *s = arg;
	char rcpt[600], tmp[560];

	s->rcpt_lookup = NULL;
	if (known != PX_RCPT_UNKNOWN && known != PX_RCPT_LOOKUP_ERROR) {
		px_session_rcpt_checks(s);
		return;
	}
	snprintf(tmp, sizeof(tmp), "<%s>", s->txn.rcpt);
	px_log_str(rcpt, sizeof(rcpt), tmp);
	if (known == PX_RCPT_LOOKUP_ERROR) {
		/* Never accepted nor refused blind: the client retries. */
		px_reply(s, 451, "4.3.0", "<%s>: Temporary lookup failure",
		         s->txn.rcpt);
		px_log_warn("%016llx.%u recipient lookup failed rcpt=%s "
		            "source=%s client=[%s] error=\"%s\"",
		            (unsigned long long)s->id, s->txn.id, rcpt, source,
		            s->client_ip, error != NULL ? error : "");
		px_session_rcpt_end(s);
		return;
	}
	px_reply_policy(s, 550, "5.1.1",
	                "<%s>: Recipient address rejected: User unknown in "
	                "relay recipient table",
	                s->txn.rcpt);
	px_log_info("%016llx.%u unknown recipient rcpt=%s client=[%s] "
	            "source=%s",
	            (unsigned long long)s->id, s->txn.id, rcpt, s->client_ip,
	            source != NULL ? source : "-");
	px_session_rcpt_end(s);
}

/* px_session_rcpt_relay - relay control, then the recipient tables. */
static void
px_session_rcpt_relay(struct px_session *s)
{
	if (!px_session_relay_allowed(s)) {
		px_session_rcpt_end(s);
		return;
	}
	if (px_rcpt_lookup(s->loop, s->cfg, s->txn.rcpt,
	                   px_session_rcpt_looked_up, s,
	                   &s->rcpt_lookup) == 0) {
		s->rcpt_async = true;
		px_session_set_busy(s);
	}
}

/*
 * Routes: MAIL went to the backend the session's relay is on; the first
 * recipient that will be accepted decides the transaction's backend.  If
 * it is another one, the MAIL there is reset (RSET), the relay released,
 * and MAIL sent again on a relay to the right backend; then the RCPT.  A
 * refusal of that MAIL is the answer to the RCPT, and the next RCPT tries
 * again.  Later recipients for another backend get 452 4.5.3.
 */
static void
px_session_route_switch(struct px_session *s)
{
	if (s->relay != NULL && px_relay_route(s->relay) != s->want_route)
		px_relay_release(&s->relay);
	if (px_session_relay_ready(s))
		px_session_send_mail(s);
}

static void
px_session_reroute(struct px_session *s, unsigned want)
{
	s->want_route = want;
	s->routing = true;
	if (px_session_rset_backend(s, OP_RSET_ROUTE))
		return;
	px_session_route_switch(s);
}

/* px_session_route_failed - moving the MAIL did not work: the RCPT gets
 * the failure, the client's transaction goes on (its MAIL was accepted),
 * and the next RCPT tries again. */
static void
px_session_route_failed(struct px_session *s, const struct px_relay_result *res)
{
	s->routing = false;
	px_reply_relay_failure(s, res);
	px_session_drop_relay(s);
	px_session_done(s);
}

static void
px_cmd_rcpt(struct px_session *s, const struct px_cmd *cmd)
{
	char line[2048];

	if (!s->txn.active) {
		px_reply_error(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	s->txn.stage = ST_RCPT;
	s->txn.nrcpt_seen++;
	if (s->unknown_rcpts >= s->cfg->limits.unknown_recipients) {
		/* A directory harvest: addresses tried one after another. */
		px_reply(s, 421, "4.7.0",
		         "%s Error: too many unknown recipients, closing",
		         s->cfg->hostname);
		px_session_close(s, "limit");
		return;
	}
	if (s->harvest_over) {
		/* Over the cross-session cap in this very session. */
		px_session_harvest_refuse(s);
		return;
	}
	s->txn.rcpt_waiting = true;
	if (s->txn.nrcpt >= s->cfg->limits.recipients) {
		/* RFC 5321 4.5.3.1.10: 452, and the client sends the rest in
		 * another transaction. */
		px_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (px_rcpt_params(s, cmd, line, sizeof(line)) < 0)
		return;
	free(s->txn.rcpt);
	free(s->txn.rcpt_line);
	s->txn.rcpt = cmd->postmaster ? px_strdup("postmaster")
	                              : px_strndup(cmd->addr.p, cmd->addr.len);
	s->txn.rcpt_line = px_strdup(line);
	s->fs.rcpt = s->txn.rcpt;
	s->rcpt_async = false;
	px_session_rcpt_harvest(s);
}

/* px_session_rcpt_checks - the recipient passed relay control and the
 * recipient tables: the early verdict, the score, then the RCPT filters
 * (which end the RCPT themselves). */
static void
px_session_rcpt_checks(struct px_session *s)
{
	struct flt_verdict v;

	/* A connect- or HELO-stage verdict (pregreet, later DNSBL) is
	 * applied here, so the log shows sender and recipient (postscreen's
	 * "enforce").  Not to an authenticated user: a roaming user's
	 * address may well be on a list (Postfix's submission puts
	 * permit_sasl_authenticated first). */
	if (!s->authenticated && (s->early.action == FLT_REJECT ||
	                          s->early.action == FLT_TEMPFAIL)) {
		px_reply_verdict(s, &s->early, "Service unavailable");
		px_session_rcpt_end(s);
		return;
	}
	if (!s->authenticated &&
	    flt_chain_score(s->chain) >= s->cfg->actions.reject) {
		px_reply_policy(s, 550, "5.7.1",
		                "Error: rejected as spam (score %.1f)",
		                flt_chain_score(s->chain));
		px_session_rcpt_end(s);
		return;
	}
	s->rcpt_async = false; /* the filters' end calls done */
	px_session_set_busy(s);
	if (flt_chain_run(s->chain, FLT_STAGE_RCPT,
	                  px_session_rcpt_filters_done, s, &v) == 1)
		px_session_rcpt_filters_done(s, &v);
}

/* px_session_message_init - an empty spool and fresh content checks for
 * the message of this transaction (DATA, or the first BDAT). */
void
px_session_message_init(struct px_session *s)
{
	if (s->spool == NULL)
		s->spool =
		    px_spool_new(s->cfg->spool.dir, s->cfg->spool.memory_max);
	px_spool_reset(s->spool);
	if (s->arstrip == NULL)
		s->arstrip = px_malloc(sizeof(*s->arstrip));
	px_authres_strip_init(s->arstrip, s->cfg->hostname);
	px_data_decoder_init(&s->dec, s->cfg->limits.line_length);
}

static void
px_cmd_data(struct px_session *s, const struct px_cmd *cmd)
{
	if (!s->txn.active) {
		px_reply_error(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->txn.nrcpt == 0) {
		if (s->txn.nrcpt_seen == 0)
			px_reply_error(s, 503, "5.5.1",
			               "Error: need RCPT command");
		else
			px_reply(s, 554, "5.5.1", "Error: no valid recipients");
		return;
	}
	if (s->txn.bdat) {
		/* RFC 3030 2: BDAT and DATA do not mix in one transaction
		 * (SECURITY: nor do two framings of one message). */
		px_reply_error(s, 503, "5.5.1",
		               "Error: DATA in a BDAT transaction");
		return;
	}
	if (s->txn.binarymime) {
		/* RFC 3030 3: a BINARYMIME message goes by BDAT only. */
		px_reply_error(s, 503, "5.5.1",
		               "Error: BODY=BINARYMIME requires BDAT");
		return;
	}
	px_session_message_init(s);
	s->txn.stage = ST_DATA;
	s->state = S_DATA;
	px_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	px_session_set_timeout(s);
}

/*
 * px_session_rset_backend - if the backend has a transaction open, end it
 * with RSET and return true: the session is busy until the answer, and op
 * says what follows it.  Returns false when there is nothing to reset.
 */
bool
px_session_rset_backend(struct px_session *s, enum px_relay_op op)
{
	if (s->relay == NULL || !s->backend_txn)
		return false;
	s->backend_txn = false;
	if (!px_relay_usable(s->relay)) {
		px_session_drop_relay(s);
		return false;
	}
	px_session_set_busy(s);
	s->op = op;
	px_relay_command(s->relay, "RSET", 4);
	return true;
}

static void
px_cmd_rset(struct px_session *s)
{
	if (s->txn.active)
		px_txn_end(s, "abort");
	if (px_session_rset_backend(s, OP_RSET_CLIENT))
		return; /* "250" when the backend answers */
	px_reply(s, 250, "2.0.0", "Ok");
}

/* ETRN (RFC 1985).  ATRN and TURN (RFC 2645, RFC 821) are not a proxy's
 * business: the connection to the client is not ours to turn around, so
 * they stay 502 5.5.1 with the other unimplemented verbs. */

/* px_session_etrn_send - the backend is ready: the ETRN goes out. */
static void
px_session_etrn_send(struct px_session *s)
{
	s->op = OP_ETRN;
	px_relay_command(s->relay, s->etrn_line, strlen(s->etrn_line));
	free(s->etrn_line);
	s->etrn_line = NULL;
}

/* px_etrn_arg_ok - "[@|#]node": a domain, or a queue name after "#"; only
 * the characters of those, so the line reaches the backend as it came. */
static bool
px_etrn_arg_ok(const char *p, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!isalnum(c) && c != '.' && c != '-' && c != '_' &&
		    !(i == 0 && (c == '@' || c == '#')))
			return false;
	}
	return true;
}

/*
 * px_cmd_etrn - with etrn = "relay", a client in relay_networks has the
 * backend start its queue for a domain: the command is passed on and the
 * backend's reply comes back verbatim.  Anyone else, or with etrn off:
 * 502 5.5.1, as if mxguard had no ETRN (an Internet client must not be able
 * to make the MTA run its queue).
 */
static void
px_cmd_etrn(struct px_session *s, const struct px_cmd *cmd)
{
	char *line;

	if (s->cfg->etrn != PX_ETRN_RELAY || !s->relay_client) {
		px_reply_error(s, 502, "5.5.1",
		               "Error: command not implemented");
		return;
	}
	if (s->helo == NULL) {
		px_reply_error(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	if (s->txn.active) {
		px_reply_error(s, 503, "5.5.1",
		               "Error: MAIL transaction in progress");
		return;
	}
	if (!px_etrn_arg_ok(cmd->arg.p, cmd->arg.len)) {
		px_reply_error(s, 501, "5.5.4", "Syntax: ETRN [@|#]domain");
		return;
	}
	line = px_malloc(cmd->arg.len + 6);
	memcpy(line, "ETRN ", 5);
	memcpy(line + 5, cmd->arg.p, cmd->arg.len);
	line[cmd->arg.len + 5] = '\0';
	free(s->etrn_line);
	s->etrn_line = line;
	px_session_set_busy(s);
	if (px_session_relay_ready(s))
		px_session_etrn_send(s);
}

/* px_session_command - handle one command line (without CRLF). */
static void
px_session_command(struct px_session *s, const char *line, size_t len)
{
	struct px_cmd cmd;
	const char *err = NULL;
	enum px_parse_status st = px_cmd_parse(line, len, &cmd, &err);

	/* Stopping: the transaction is over; a QUIT gets its 221, anything
	 * else the 421 (RFC 5321 3.8). */
	if (s->stop_after_txn && !s->txn.active &&
	    !(st == PX_PARSE_OK && cmd.verb == PX_VERB_QUIT)) {
		px_reply(s, 421, "4.3.2", "%s Service shutting down",
		         s->cfg->hostname);
		px_session_close(s, "shutdown");
		return;
	}
	if (st != PX_PARSE_OK) {
		switch (st) {
		case PX_PARSE_UNKNOWN:
			px_reply_error(s, 500, "5.5.2",
			               "Error: command not recognized");
			break;
		case PX_PARSE_BAD_BYTES:
			px_reply_error(s, 500, "5.5.2",
			               "Error: bad characters in command");
			break;
		case PX_PARSE_BAD_ADDR:
			if (cmd.verb == PX_VERB_RCPT)
				px_reply_error(
				    s, 501, "5.1.3",
				    "Error: bad recipient address syntax");
			else
				px_reply_error(
				    s, 501, "5.1.7",
				    "Error: bad sender address syntax");
			break;
		default:
			px_reply_error(s, 501, "5.5.4", "%s",
			               err ? err : "Error: syntax error");
			break;
		}
		return;
	}
	switch (cmd.verb) {
	case PX_VERB_HELO:
	case PX_VERB_EHLO:
		px_cmd_helo(s, &cmd, cmd.verb == PX_VERB_EHLO);
		return;
	case PX_VERB_MAIL:
		px_cmd_mail(s, &cmd);
		return;
	case PX_VERB_RCPT:
		px_cmd_rcpt(s, &cmd);
		return;
	case PX_VERB_DATA:
		px_cmd_data(s, &cmd);
		return;
	case PX_VERB_BDAT:
		px_cmd_bdat(s, &cmd);
		return;
	case PX_VERB_ETRN:
		px_cmd_etrn(s, &cmd);
		return;
	case PX_VERB_RSET:
		px_cmd_rset(s);
		return;
	case PX_VERB_NOOP:
		px_reply(s, 250, "2.0.0", "Ok");
		return;
	case PX_VERB_STARTTLS:
		px_cmd_starttls(s);
		return;
	case PX_VERB_AUTH:
		px_cmd_auth(s, &cmd);
		return;
	case PX_VERB_QUIT:
		if (s->txn.active)
			px_txn_end(s, "abort");
		px_reply(s, 221, "2.0.0", "Bye");
		px_session_close(s, "quit");
		return;
	case PX_VERB_HELP:
		px_reply(s, 214, "2.0.0",
		         "mxguard: see RFC 5321; commands HELO EHLO MAIL RCPT "
		         "DATA BDAT RSET NOOP QUIT VRFY");
		return;
	case PX_VERB_VRFY:
		/* RFC 5321 3.5.3: 252 when we will not verify. */
		px_reply(
		    s, 252, "2.5.2",
		    "Cannot VRFY user, but will accept message and attempt "
		    "delivery");
		return;
	default:
		px_reply_error(s, 502, "5.5.1",
		               "Error: command not implemented");
		return;
	}
}

/* px_session_run - handle buffered input until we must wait. */
void
px_session_run(struct px_session *s)
{
	struct evbuffer *in, *out;

	/* A step that completes at once calls back here through
	 * px_session_done: the loop below already goes on, so no recursion
	 * (a client pipelining thousands of HELOs must not grow the stack). */
	if (s->in_run || s->closing || s->bev == NULL)
		return;
	s->in_run = true;
	in = px_reader_input(s->rd);
	out = bufferevent_get_output(s->bev);
	while (!s->busy && !s->closing) {
		if (s->state == S_PROXY) {
			px_session_proxy_input(s);
			if (s->state == S_PROXY)
				break;
			continue;
		}
		if (s->state == S_DATA) {
			if (!px_session_data_input(s))
				break;
			continue;
		}
		if (s->state == S_BDAT) {
			if (!px_session_bdat_input(s))
				break;
			continue;
		}
		if (s->state != S_CMD)
			break;
		if (evbuffer_get_length(out) > PX_OUT_HIGH &&
		    !px_sock_flush(s->bev)) {
			/* Resumed by px_session_flushed once all is sent. */
			s->in_run = false;
			return;
		}

		size_t eol_len = 0, max = s->cfg->limits.line_length;
		struct evbuffer_ptr p =
		    evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);

		if (p.pos < 0) {
			size_t len = evbuffer_get_length(in);

			if (len > max) {
				/* RFC 5321 4.5.3.1.4: "500 Line too long";
				 * the rest of the line is discarded. */
				evbuffer_drain(in, len);
				if (!s->skip_line)
					px_reply_error(s, 500, "5.5.2",
					               "Error: line too long");
				s->skip_line = true;
			}
			break;
		}
		if (s->skip_line) {
			evbuffer_drain(in, (size_t)p.pos + eol_len);
			s->skip_line = false;
			continue;
		}
		if ((size_t)p.pos > max) {
			evbuffer_drain(in, (size_t)p.pos + eol_len);
			px_reply_error(s, 500, "5.5.2", "Error: line too long");
			continue;
		}
		if (s->line == NULL)
			s->line = px_malloc(max + 2);
		evbuffer_remove(in, s->line, (size_t)p.pos + eol_len);
		size_t len = (size_t)p.pos;

		if (len > 0 && s->line[len - 1] == '\r')
			len--;
		s->line[len] = '\0';
		if (s->auth_expect)
			px_session_auth_response(s, s->line, len);
		else
			px_session_command(s, s->line, len);
	}
	s->in_run = false;
	if (s->closing)
		return;
	/* STARTTLS may have replaced the socket's reader and bufferevent. */
	in = px_reader_input(s->rd);
	px_sock_flush(s->bev);
	px_reader_resume(s->rd);
	/* After EOF, once nothing complete is left to answer. */
	if (s->eof && !s->busy &&
	    (s->state == S_DATA || s->state == S_BDAT ||
	     evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF).pos < 0))
		px_session_close(s, "eof");
}

/* The relay's answers. */

void
px_session_relay_cb(void *arg, const struct px_relay_result *res)
{
	struct px_session *s = arg;
	enum px_relay_op op = s->op;

	if (s->closing)
		return;
	s->op = OP_NONE;
	if (res->status != PX_RELAY_REPLY && s->relay != NULL &&
	    px_relay_reused(s->relay) && (op == OP_XFORWARD || op == OP_MAIL)) {
		/* A pooled connection the backend closed meanwhile: one more
		 * try on a fresh one before the client hears of it. */
		px_session_drop_relay(s);
		px_session_open_backend(s);
		return;
	}
	switch (op) {
	case OP_OPEN:
		if (res->status != PX_RELAY_REPLY && s->routing) {
			struct px_relay_result r = *res;

			r.status = PX_RELAY_UNREACHABLE;
			px_session_route_failed(s, &r);
			return;
		}
		if (res->status != PX_RELAY_REPLY) {
			struct px_relay_result r = *res;

			if (res->reply_len > 0)
				px_log_reply(s->txn.backend,
				             sizeof(s->txn.backend), res->reply,
				             res->reply_len);
			r.status = PX_RELAY_UNREACHABLE;
			px_reply_relay_failure(s, &r);
			if (res->reply_len > 0)
				px_log_reply(s->txn.backend,
				             sizeof(s->txn.backend), res->reply,
				             res->reply_len);
			px_txn_end(s, "tempfail");
			px_session_drop_relay(s);
			px_session_auth_clear(s);
			free(s->etrn_line);
			s->etrn_line = NULL;
			px_session_done(s);
			return;
		}
		if (s->auth_line != NULL) {
			px_session_auth_send(s);
			return;
		}
		if (s->etrn_line != NULL) {
			px_session_etrn_send(s);
			return;
		}
		px_session_send_mail(s);
		return;
	case OP_AUTH:
		px_session_auth_reply(s, res);
		return;
	case OP_ETRN:
		if (res->status != PX_RELAY_REPLY)
			break;
		if (!px_reply_backend(s, res, true) || res->code == 421)
			px_session_drop_relay(s);
		if (res->code == 421) {
			px_session_close(s, "backend");
			return;
		}
		px_session_done(s);
		return;
	case OP_XFORWARD:
		if (res->status != PX_RELAY_REPLY)
			break;
		if (res->code != 250)
			px_log_warn("%016llx backend refused XFORWARD: %s",
			            (unsigned long long)s->id,
			            px_log_reply(s->txn.backend,
			                         sizeof(s->txn.backend),
			                         res->reply, res->reply_len));
		s->op = OP_XFORWARD; /* so send_mail goes on to MAIL */
		px_session_send_mail(s);
		return;
	case OP_MAIL:
		if (res->status != PX_RELAY_REPLY)
			break;
		if (s->routing && res->code != 421) {
			s->routing = false;
			if (res->code == 250 || res->code == 251) {
				s->backend_txn = true;
				s->txn.route = px_relay_route(s->relay);
				s->op = OP_RCPT;
				px_relay_command(s->relay, s->txn.rcpt_line,
				                 strlen(s->txn.rcpt_line));
				return;
			}
			/* The MAIL's refusal answers the RCPT. */
			if (!px_reply_backend(s, res, false))
				px_session_drop_relay(s);
			px_session_done(s);
			return;
		}
		if (res->code == 421) {
			px_reply_backend(s, res, false);
			px_txn_end(s, "tempfail");
			px_session_drop_relay(s);
			px_session_close(s, "backend");
			return;
		}
		if (!px_reply_backend(s, res, true)) {
			px_session_backend_broken(s);
			return;
		}
		if (res->code == 250 || res->code == 251) {
			s->txn.active = true;
			s->backend_txn = true;
			s->txn.route = px_relay_route(s->relay);
		} else {
			px_txn_end(s, res->code >= 500 ? "reject" : "tempfail");
		}
		px_session_done(s);
		return;
	case OP_RCPT:
		if (res->status != PX_RELAY_REPLY)
			break;
		if (res->code == 421) {
			px_reply_backend(s, res, false);
			px_txn_end(s, "tempfail");
			px_session_drop_relay(s);
			px_session_close(s, "backend");
			return;
		}
		if (!px_reply_backend(s, res, true)) {
			px_session_backend_broken(s);
			return;
		}
		if (res->code == 250 || res->code == 251) {
			s->txn.nrcpt++;
			s->fs.nrcpt = s->txn.nrcpt;
			if (s->txn.first_rcpt == NULL)
				s->txn.first_rcpt = px_strdup(s->txn.rcpt);
		}
		px_session_done(s);
		return;
	case OP_RSET_ROUTE:
		if (res->status != PX_RELAY_REPLY || res->code != 250)
			px_session_drop_relay(s);
		px_session_route_switch(s);
		return;
	case OP_RSET:
	case OP_RSET_CLIENT:
	case OP_RSET_HELO:
		/* A backend that fails RSET is closed; the next MAIL opens
		 * a fresh connection. */
		if (res->status != PX_RELAY_REPLY || res->code != 250)
			px_session_drop_relay(s);
		if (op == OP_RSET_HELO) {
			struct flt_verdict v;

			px_session_set_busy(s);
			if (flt_chain_run(s->chain, FLT_STAGE_HELO,
			                  px_session_helo_done, s, &v) == 1)
				px_session_helo_done(s, &v);
			return;
		}
		if (op == OP_RSET_CLIENT)
			px_reply(s, 250, "2.0.0", "Ok");
		px_session_done(s);
		return;
	case OP_MESSAGE: {
		bool tagged = s->txn.tagged;

		if (res->status != PX_RELAY_REPLY)
			break;
		if (res->final) {
			s->txn.backend_ms = px_ms_since(&s->txn.sent);
			px_metrics_eod_backend(px_secs_since(&s->txn.sent));
		}
		/* Only the reply to the final dot may be a 2xx: a 2xx to
		 * DATA itself becomes 451 4.3.0. */
		px_reply_backend(s, res, res->final);
		if (res->final && (res->code == 250 || res->code == 251))
			px_txn_end(s, tagged ? "tag" : "accept");
		else if (res->code >= 400 && res->code < 500)
			px_txn_end(s, "tempfail");
		else if (res->code >= 500 && res->code < 600)
			px_txn_end(s, "reject");
		else
			px_txn_end(s, "error");
		if (res->code == 421) {
			px_session_drop_relay(s);
			px_session_close(s, "backend");
			return;
		}
		if (!px_relay_usable(s->relay)) {
			px_session_drop_relay(s);
		} else if (res->final) {
			s->backend_txn = false;
		} else if (px_session_rset_backend(s, OP_RSET)) {
			/* DATA itself was refused: the backend's MAIL is still
			 * open and must not reach the next transaction. */
			return;
		}
		px_session_done(s);
		return;
	}
	default:
		return;
	}
	if (s->routing) {
		px_session_route_failed(s, res);
		return;
	}
	/* The backend failed mid-transaction: 451, and the transaction is
	 * over on both sides (a new MAIL reconnects). */
	px_reply_relay_failure(s, res);
	px_txn_end(s, "error");
	px_session_drop_relay(s);
	px_session_done(s);
}

/* Socket events. */

void
px_session_on_read(void *arg, enum px_read_what what)
{
	struct px_session *s = arg;

	if (s->closing)
		return;
	switch (what) {
	case PX_READ_DATA:
		if (s->state == S_GREET)
			return; /* kept for the pregreet check */
		px_session_run(s);
		return;
	case PX_READ_TIMEOUT:
		if (s->state == S_TLS) {
			/* A handshake that never finished: nothing can be
			 * said to the client. */
			px_log_info("%016llx tls handshake timed out "
			            "client=[%s]:%u",
			            (unsigned long long)s->id, s->client_ip,
			            s->client_port);
			px_session_drop_socket(s);
			px_session_close(s, "timeout");
			return;
		}
		if (s->state != S_PROXY)
			px_reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
			         s->cfg->hostname);
		px_session_close(s, "timeout");
		return;
	case PX_READ_EOF:
		/* The client may have half-closed after pipelining: answer
		 * what it sent first. */
		s->eof = true;
		px_reader_stop(s->rd);
		if (s->state == S_PROXY) {
			/* A header cut short: nothing more can come. */
			px_session_run(s);
			if (!s->closing && s->state == S_PROXY)
				px_session_close(s, "eof");
			return;
		}
		if (s->state == S_DATA || s->state == S_BDAT) {
			px_session_run(s);
			if (!s->closing &&
			    (s->state == S_DATA || s->state == S_BDAT))
				px_session_close(s, "eof");
			return;
		}
		if (!s->busy)
			px_session_run(s);
		return;
	default:
		/* A socket error: nobody to answer. */
		px_session_drop_socket(s);
		px_session_close(s, "error");
		return;
	}
}

/* px_session_eventcb - the write side failed or timed out. */
void
px_session_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct px_session *s = arg;

	px_session_drop_socket(s);
	if (s->closing) {
		/* The flush after close failed or timed out. */
		px_session_free_later(s);
		return;
	}
	px_session_close(s, "error");
}

void
px_session_start(struct px_loop *loop, const struct px_listen_info *li, int fd,
                 const struct sockaddr *peer, socklen_t peerlen)
{
	struct px_session *s = px_calloc(1, sizeof(*s));

	s->loop = loop;
	s->base = px_loop_base(loop);
	s->cfg = px_config_current();
	s->li = *li;
	s->id = px_session_new_id();
	while (px_loop_find(loop, s->id) != NULL)
		s->id = px_session_new_id();
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, peer, peerlen < sizeof(ss) ? peerlen : sizeof(ss));
	px_session_set_client(s, &ss);
	s->proxy_version = "-";
	s->tls_cfg = px_config_listen_tls(s->cfg, li->address);
	/* The session closes fd itself (px_session_drop_socket): STARTTLS
	 * frees this bufferevent and keeps the socket. */
	s->fd = fd;
	s->bev = bufferevent_socket_new(s->base, fd, 0);
	s->free_ev = evtimer_new(s->base, px_session_free_cb, s);
	px_loop_register(loop, s->id, s);

	s->fs.sid = s->id;
	s->fs.mode = li->mode;
	s->fs.cfg = s->cfg;
	s->fs.loop = loop;
	s->fs.base = s->base;
	s->chain = flt_chain_new(&s->fs);

	bufferevent_setcb(s->bev, NULL, px_session_flushed, px_session_eventcb,
	                  s);
	/* EV_WRITE (on by default) stays off: replies are written directly;
	 * EV_READ too: a px_reader reads (sockio.h). */
	bufferevent_disable(s->bev, EV_WRITE | EV_READ);
	{
		struct timeval wt = px_timeval(s->cfg->timeouts.command);

		bufferevent_set_timeouts(s->bev, NULL, &wt);
	}
	s->rd = px_reader_new(s->base, fd, PX_IN_HIGH, px_session_on_read, s);
	px_session_set_timeout(s);
	if (px_server_stopping(loop)) {
		px_session_close(s, "shutdown");
		return;
	}
	if (li->proxy_protocol) {
		s->state = S_PROXY;
		return;
	}
	px_session_greet(s);
}

void
px_session_shutdown(struct px_session *s)
{
	if (s->closing)
		return;
	if (s->state == S_PROXY) {
		px_session_close(s, "shutdown");
		return;
	}
	if (!s->busy && !s->txn.active && s->state == S_CMD) {
		px_reply(s, 421, "4.3.2", "%s Service shutting down",
		         s->cfg->hostname);
		px_session_close(s, "shutdown");
		return;
	}
	s->stop_after_txn = true;
}

void
px_session_kill(struct px_session *s)
{
	if (s->closing)
		return;
	px_reply(s, 421, "4.3.2", "%s Service shutting down", s->cfg->hostname);
	px_session_close(s, "shutdown");
}
