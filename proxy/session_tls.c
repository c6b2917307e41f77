/* SPDX-License-Identifier: MIT */
/*
 * session_tls.c - TLS on the client side: STARTTLS (RFC 3207) and implicit
 * TLS listeners (RFC 8314).  The socket moves to an OpenSSL bufferevent
 * and the reader with it; plaintext pipelined after STARTTLS is dropped
 * and the session forgets what the client said before (RFC 3207 4.2).
 */
#include "session_priv.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "txnlog.h"

/* px_session_tls_error - log why a handshake failed (OpenSSL's queue,
 * then the socket error) and clear the thread's error queue. */
static void
px_session_tls_error(struct px_session *s, short what)
{
	char buf[256], reason[600];

	px_sock_tls_error(s->bev, what, true, buf, sizeof(buf));
	/* OpenSSL's texts hold spaces: quoted, as every log value. */
	px_log_info("%016llx tls handshake failed client=[%s]:%u reason=%s",
	            (unsigned long long)s->id, s->client_ip, s->client_port,
	            px_log_str(reason, sizeof(reason), buf));
}

/* px_session_tls_done - the handshake is over: RFC 3207 4.2, the client
 * starts again with EHLO (we forget what it said before), then go on. */
static void
px_session_tls_done(struct px_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	s->tls = true;
	s->tls_version = SSL_get_version(ssl);
	s->tls_cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
	s->tls_bits = SSL_get_cipher_bits(ssl, &s->tls_alg_bits);
	px_log_info("%016llx tls version=%s cipher=%s bits=%d implicit=%s",
	            (unsigned long long)s->id, s->tls_version, s->tls_cipher,
	            s->tls_bits, s->li.tls_implicit ? "yes" : "no");
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	s->fs.helo = NULL;
	s->fs.esmtp = false;
	s->adv_smtputf8 = s->adv_dsn = false;
	s->adv_size = 0;
	if (s->li.tls_implicit) {
		/* Implicit TLS (never STARTTLS there): the banner now. */
		px_session_greet_rest(s);
		return;
	}
	s->state = S_CMD;
	px_session_done(s);
}

static void
px_session_tls_readcb(struct bufferevent *bev, void *arg)
{
	struct px_session *s = arg;

	if (s->closing || s->rd == NULL)
		return;
	px_reader_bev_data(s->rd);
}

static void
px_session_tls_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct px_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (!s->closing && s->state == S_TLS)
			px_session_tls_done(s);
		return;
	}
	if (s->state == S_TLS && !s->closing) {
		/* SECURITY: a failed or abandoned handshake: nothing is
		 * said in the clear; the socket and the SSL go. */
		px_session_tls_error(s, what);
		px_session_drop_socket(s);
		px_session_close(s, "tls");
		return;
	}
	ERR_clear_error();
	if ((what & BEV_EVENT_READING) && s->rd != NULL && !s->closing) {
		px_reader_bev_event(s->rd, what);
		return;
	}
	px_session_eventcb(bev, what, s);
}

/*
 * px_session_tls_start - hand the socket to an OpenSSL bufferevent as the
 * server side of a handshake.  The plain reader and bufferevent go (their
 * buffers are empty: the 220 was sent, pipelined input discarded); the
 * socket is the TLS bufferevent's from now on (it closes it and frees the
 * SSL).  The session stays busy in S_TLS until px_session_tls_done.
 */
void
px_session_tls_start(struct px_session *s)
{
	struct timeval wt = px_timeval(s->cfg->timeouts.command);
	SSL *ssl = SSL_new(s->tls_cfg->ctx);

	struct evbuffer *left = s->rd != NULL ? px_reader_input(s->rd) : NULL;
	struct bufferevent *under = NULL;

	s->tls_pending = false;
	s->state = S_TLS;
	if (ssl == NULL) {
		ERR_clear_error();
		px_log_err("%016llx SSL_new failed", (unsigned long long)s->id);
		px_session_drop_socket(s);
		px_session_close(s, "tls");
		return;
	}
	if (left != NULL && evbuffer_get_length(left) > 0) {
		/* Implicit TLS behind a PROXY header: the start of the
		 * ClientHello came with the header and is already read.  An
		 * OpenSSL filter over the plain bufferevent, whose input gets
		 * those bytes, reads them first (the session keeps the fd).
		 * STARTTLS never gets here: its leftovers were discarded. */
		struct evbuffer *uin;

		under = s->bev;
		uin = bufferevent_get_input(under);
		/* Only a socket bufferevent adds to its input (the end is
		 * frozen): we do it once, as it would have. */
		evbuffer_unfreeze(uin, 0);
		evbuffer_add_buffer(uin, left);
		evbuffer_freeze(uin, 0);
		px_reader_free(&s->rd);
		s->bev = bufferevent_openssl_filter_new(
		    s->base, under, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE);
	} else {
		px_reader_free(&s->rd);
		bufferevent_free(s->bev);
		s->bev = bufferevent_openssl_socket_new(
		    s->base, s->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE);
		if (s->bev != NULL)
			s->fd = -1;
	}
	if (s->bev == NULL) {
		SSL_free(ssl);
		if (under != NULL)
			bufferevent_free(under);
		px_log_err("%016llx cannot start TLS",
		           (unsigned long long)s->id);
		px_session_drop_socket(s);
		px_session_close(s, "tls");
		return;
	}
	/* Many SMTP clients close without close_notify after QUIT: an EOF,
	 * not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, px_session_tls_readcb, px_session_flushed,
	                  px_session_tls_eventcb, s);
	bufferevent_set_timeouts(s->bev, NULL, &wt);
	bufferevent_enable(s->bev, EV_WRITE);
	s->rd = px_reader_new_bev(s->base, s->bev, PX_IN_HIGH,
	                          px_session_on_read, s);
	px_session_set_busy(s);
	/* Bytes already waiting below the filter: no read event will say
	 * so, since the client now waits for our ServerHello. */
	if (under != NULL)
		bufferevent_trigger(under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
}

/* px_cmd_starttls - RFC 3207 4. */
void
px_cmd_starttls(struct px_session *s)
{
	struct evbuffer *in = px_reader_input(s->rd);
	size_t junk;

	if (s->tls_cfg == NULL) {
		px_reply_error(s, 502, "5.5.1",
		               "Error: command not implemented");
		return;
	}
	if (s->tls) {
		px_reply_error(s, 554, "5.5.1", "Error: TLS already active");
		return;
	}
	if (s->txn.active) {
		px_reply_error(s, 503, "5.5.1",
		               "Error: MAIL transaction in progress");
		return;
	}
	px_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* SECURITY (CVE-2011-0411 class): whatever the client sent after
	 * STARTTLS in the clear must never run as if it came under TLS. */
	junk = evbuffer_get_length(in);
	if (junk > 0) {
		px_log_warn("%016llx discarded %zu bytes pipelined after "
		            "STARTTLS from [%s]",
		            (unsigned long long)s->id, junk, s->client_ip);
		evbuffer_drain(in, junk);
	}
	/* The backend connection knew the old HELO: a fresh one after. */
	px_relay_release(&s->relay);
	px_session_set_busy(s);
	s->state = S_TLS;
	if (px_sock_flush(s->bev)) {
		px_session_tls_start(s);
		return;
	}
	/* px_session_flushed starts it once the 220 is out. */
	s->tls_pending = true;
	px_reader_stop(s->rd);
}
