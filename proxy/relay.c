/* SPDX-License-Identifier: MIT */
/*
 * relay.c - the backend side of a session: one SMTP client connection to
 * the real MTA.
 *
 * px_relay_new(), px_relay_free(): life (session-owned).
 * px_relay_open(): connect, greeting, EHLO, XCLIENT (+ EHLO again).
 * px_relay_command(): one command, one reply.
 * px_relay_message(): DATA, 354, the message streamed dot-stuffed from the
 *   spool with back-pressure (never more than PX_RELAY_OUT_HIGH bytes
 *   queued), the final dot, the final reply; or, to a backend that
 *   advertises CHUNKING (RFC 3030), the same bytes undotted in BDAT chunks
 *   of at most PX_RELAY_BDAT_CHUNK octets, pipelined when the backend
 *   advertises PIPELINING, one at a time otherwise.
 * px_relay_quit(): polite close.
 * px_backend_caps_get/set(), px_backend_probe(): the backend's capabilities
 *   as last seen, which shape what mxguard advertises to clients.
 *
 * Contract with the session (Postfix smtpd_proxy.c is the model): exactly
 * one answer per operation, always the last thing this file does before
 * returning to the loop, so the session may free the relay inside its
 * callback.  Replies are handed over verbatim, line ends normalised to CRLF.
 * What they mean for the client (451 4.4.1 / 4.4.2, unexpected classes) is
 * the session's business.
 */
#include "relay.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "data.h"
#include "log.h"
#include "loop.h"
#include "smtp_parse.h"
#include "sockio.h"
#include "spool.h"
#include "txnlog.h"

/* Back-pressure: refill the socket buffer when it drains below LOW. */
#define PX_RELAY_OUT_HIGH (256 * 1024)
#define PX_RELAY_OUT_LOW  (64 * 1024)
#define PX_RELAY_CHUNK    (64 * 1024)
/* The largest BDAT chunk sent: a typical message goes as one BDAT LAST. */
#define PX_RELAY_BDAT_CHUNK (256 * 1024)

enum px_relay_state {
	R_CLOSED = 0,
	R_CONNECTING,
	R_BANNER,
	R_EHLO,
	R_STARTTLS, /* STARTTLS sent (backend_tls) */
	R_TLS,      /* the handshake */
	R_XCLIENT,
	R_EHLO2,
	R_READY,
	R_COMMAND,
	R_DATA_CMD,
	R_DATA_SEND,
	R_DATA_DONE,
	R_BDAT_SEND, /* queueing BDAT chunks (RFC 3030) */
	R_BDAT_WAIT, /* no PIPELINING: waiting for a chunk's reply */
	R_BDAT_DONE, /* every chunk queued: waiting for the replies */
	R_DEAD,
};

struct px_relay {
	struct event_base *base;
	struct px_config *cfg; /* a reference of its own (pooled relays
	                        * outlive their session) */
	uint64_t sid;
	px_relay_cb *cb;
	void *arg;
	struct bufferevent *bev; /* the socket and its write side */
	struct px_reader *rd;    /* its read side, once connected */
	enum px_relay_state state;
	bool reused; /* taken from the pool, no reply seen since */
	bool parked; /* in the pool */
	struct px_relay *pool_next, *pool_prev;
	struct px_caps caps;
	bool xclient_done;
	bool tls;       /* under TLS with the backend */
	bool private;   /* carries a client's AUTH: never pooled */
	unsigned route; /* which backend (px_config_route) */
	/* Copies of the client facts, for XCLIENT. */
	char client_ip[64];
	uint16_t client_port;
	char *client_name;
	char *client_helo;
	char proto[8];
	/* Message streaming. */
	const char *headers;
	size_t hlen;
	struct px_spool *sp;
	size_t sp_off;
	size_t sp_skip; /* where streaming starts */
	struct px_data_encoder enc;
	char *chunk;
	/* BDAT: the message is hlen header bytes (h_off of them queued) and
	 * the spool from sp_skip; msg_left of it is not yet in any chunk,
	 * chunk_left of the current chunk not yet queued. */
	size_t h_off;
	unsigned long long msg_left;
	size_t chunk_left;
	unsigned bdat_pending; /* chunks whose reply is still to come */
	bool bdat_last_sent;   /* the LAST chunk is announced */
	/* The last reply, CRLF-normalised. */
	char *reply;
	size_t reply_len;
	size_t reply_cap;
	struct event *fail_ev; /* deferred failure answer */
	enum px_relay_status fail_status;
	const char *fail_why;
};

/* px_relay_close_socket - stop reading and close. */
static void
px_relay_close_socket(struct px_relay *r)
{
	px_reader_free(&r->rd);
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	r->bev = NULL;
}

static pthread_mutex_t px_caps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct px_caps px_caps_seen;
static bool px_caps_known;

bool
px_backend_caps_get(struct px_caps *caps)
{
	bool known;

	pthread_mutex_lock(&px_caps_lock);
	*caps = px_caps_seen;
	known = px_caps_known;
	pthread_mutex_unlock(&px_caps_lock);
	return known;
}

void
px_backend_caps_set(const struct px_caps *caps)
{
	pthread_mutex_lock(&px_caps_lock);
	px_caps_seen = *caps;
	px_caps_known = true;
	pthread_mutex_unlock(&px_caps_lock);
}

struct px_relay *
px_relay_new(struct event_base *base, struct px_config *cfg, uint64_t sid,
             px_relay_cb *cb, void *arg)
{
	struct px_relay *r = px_calloc(1, sizeof(*r));

	r->base = base;
	r->cfg = px_config_ref(cfg);
	r->sid = sid;
	r->cb = cb;
	r->arg = arg;
	r->state = R_CLOSED;
	return r;
}

void
px_relay_free(struct px_relay **rp)
{
	struct px_relay *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	px_relay_close_socket(r);
	if (r->fail_ev != NULL)
		event_free(r->fail_ev);
	free(r->client_name);
	free(r->client_helo);
	free(r->chunk);
	free(r->reply);
	px_config_unref(&r->cfg);
	free(r);
}

void
px_relay_set_private(struct px_relay *r)
{
	r->private = true;
}

bool
px_relay_usable(const struct px_relay *r)
{
	return r->state == R_READY;
}

const struct px_caps *
px_relay_caps(const struct px_relay *r)
{
	return &r->caps;
}

bool
px_relay_xclient_done(const struct px_relay *r)
{
	return r->xclient_done;
}

/* px_relay_answer - hand the result to the session.  Always the last thing
 * done before returning to the loop: the callback may free r. */
static void
px_relay_answer(struct px_relay *r, enum px_relay_status status,
                const char *why)
{
	struct px_relay_result res;

	memset(&res, 0, sizeof(res));
	res.status = status;
	res.why = why;
	if (status == PX_RELAY_REPLY)
		r->reused = false;
	if (r->reply_len > 0) {
		res.reply = r->reply;
		res.reply_len = r->reply_len;
		res.code = atoi(r->reply);
	}
	r->cb(r->arg, &res);
}

/* px_relay_die - the connection is unusable: close it, answer status. */
static void
px_relay_die(struct px_relay *r, enum px_relay_status status, const char *why)
{
	px_relay_close_socket(r);
	r->state = R_DEAD;
	r->reply_len = 0;
	px_relay_answer(r, status, why);
}

static void
px_relay_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct px_relay *r = arg;

	px_relay_die(r, r->fail_status, r->fail_why);
}

/* px_relay_fail_later - answer a failure from the loop, not from inside
 * the call that started the operation. */
static void
px_relay_fail_later(struct px_relay *r, enum px_relay_status status,
                    const char *why)
{
	struct timeval zero = {0, 0};

	px_relay_close_socket(r);
	r->state = R_DEAD;
	r->fail_status = status;
	r->fail_why = why;
	if (r->fail_ev == NULL)
		r->fail_ev = evtimer_new(r->base, px_relay_fail_cb, r);
	evtimer_add(r->fail_ev, &zero);
}

/* px_relay_set_read_timeout - how long to wait for the next reply; 0 while
 * idle (an idle close is noticed, not timed). */
static void
px_relay_set_read_timeout(struct px_relay *r, double secs)
{
	if (r->rd != NULL)
		px_reader_set_timeout(r->rd, secs);
}

static void
px_relay_send(struct px_relay *r, const char *line, size_t len,
              enum px_relay_state next)
{
	struct evbuffer *out = bufferevent_get_output(r->bev);

	evbuffer_add(out, line, len);
	evbuffer_add(out, "\r\n", 2);
	r->state = next;
	px_relay_set_read_timeout(r, r->state == R_DATA_DONE
	                                 ? r->cfg->timeouts.data_done
	                                 : r->cfg->timeouts.backend);
	px_sock_flush(r->bev);
}

static void
px_relay_ehlo(struct px_relay *r, enum px_relay_state next)
{
	char line[300];
	const char *name = r->cfg->hostname;
	int n;

	/* After XCLIENT the backend takes the EHLO name as the client's
	 * (Postfix XCLIENT_README): send the client's own when it is a
	 * plain token. */
	if (next == R_EHLO2 && r->client_helo != NULL &&
	    strlen(r->client_helo) < 256) {
		bool plain = r->client_helo[0] != '\0';

		for (const char *p = r->client_helo; *p; p++)
			if ((unsigned char)*p <= ' ' ||
			    (unsigned char)*p >= 0x7f)
				plain = false;
		if (plain)
			name = r->client_helo;
	}
	n = snprintf(line, sizeof(line), "EHLO %s", name);

	px_relay_send(r, line, (size_t)n, next);
}

size_t
px_relay_client_attrs(char *buf, size_t size, const char *verb, unsigned attrs,
                      const struct px_relay_client *c)
{
	char val[600];
	size_t n = (size_t)snprintf(buf, size, "%s", verb);

	if (attrs & PX_XATTR_NAME) {
		const char *name = c->name ? c->name : "[UNAVAILABLE]";

		px_xtext_encode(name, strlen(name), val, sizeof(val));
		n += (size_t)snprintf(buf + n, size - n, " NAME=%s", val);
	}
	if ((attrs & PX_XATTR_ADDR) && n < size)
		n += (size_t)snprintf(buf + n, size - n, " ADDR=%s%s",
		                      strchr(c->ip, ':') ? "IPV6:" : "", c->ip);
	if ((attrs & PX_XATTR_PORT) && n < size)
		n += (size_t)snprintf(buf + n, size - n, " PORT=%u", c->port);
	if ((attrs & PX_XATTR_PROTO) && n < size)
		n += (size_t)snprintf(buf + n, size - n, " PROTO=%s", c->proto);
	if ((attrs & PX_XATTR_HELO) && n < size) {
		const char *helo = c->helo ? c->helo : "[UNAVAILABLE]";

		px_xtext_encode(helo, strlen(helo), val, sizeof(val));
		n += (size_t)snprintf(buf + n, size - n, " HELO=%s", val);
	}
	if ((attrs & PX_XATTR_SOURCE) && n < size)
		n += (size_t)snprintf(buf + n, size - n, " SOURCE=REMOTE");
	return n < size ? n : size - 1;
}

/* px_relay_xclient - tell the backend who the real client is (Postfix
 * XCLIENT_README); attributes the backend did not advertise are left
 * out. */
static void
px_relay_xclient(struct px_relay *r)
{
	char line[1024];
	struct px_relay_client c = {
	    .ip = r->client_ip,
	    .port = r->client_port,
	    .name = r->client_name,
	    .helo = r->client_helo,
	    .proto = r->proto,
	};
	size_t n = px_relay_client_attrs(line, sizeof(line), "XCLIENT",
	                                 r->caps.xclient_attrs, &c);

	px_relay_send(r, line, n, R_XCLIENT);
}

static void px_relay_fill(struct px_relay *r);

/* px_relay_refused - the backend's greeting or EHLO was a refusal: close,
 * and answer UNREACHABLE with that reply kept for the session's log. */
static void
px_relay_refused(struct px_relay *r)
{
	px_relay_close_socket(r);
	r->state = R_DEAD;
	px_relay_answer(r, PX_RELAY_UNREACHABLE, "backend refused the session");
}

/* px_relay_answer_final - the reply to the final dot. */
static void
px_relay_answer_final(struct px_relay *r)
{
	struct px_relay_result res;

	memset(&res, 0, sizeof(res));
	res.status = PX_RELAY_REPLY;
	res.final = true;
	res.reply = r->reply;
	res.reply_len = r->reply_len;
	res.code = atoi(r->reply);
	r->state = R_READY;
	r->cb(r->arg, &res);
}

/* px_relay_after_ehlo - the EHLO (or STARTTLS) reply is handled: XCLIENT
 * if offered, else ready.  Returns px_relay_on_reply's value. */
static bool
px_relay_after_ehlo(struct px_relay *r)
{
	if (r->state == R_EHLO && r->caps.xclient &&
	    (r->caps.xclient_attrs & PX_XATTR_ADDR)) {
		px_relay_xclient(r);
		return true;
	}
	r->state = R_READY;
	px_relay_set_read_timeout(r, 0);
	px_relay_answer(r, PX_RELAY_REPLY, NULL);
	return false;
}

static void px_relay_on_read(void *arg, enum px_read_what what);
static void px_relay_writecb(struct bufferevent *bev, void *arg);
static bool px_relay_bdat_reply(struct px_relay *r, int code);
static void px_relay_bdat_fill(struct px_relay *r);
static void px_relay_failed(struct px_relay *r, bool timeout, const char *why);

/* px_relay_tls_readcb - the TLS bufferevent has data: to the reader. */
static void
px_relay_tls_readcb(struct bufferevent *bev, void *arg)
{
	struct px_relay *r = arg;

	if (r->rd != NULL)
		px_reader_bev_data(r->rd);
}

/* px_relay_tls_done - the handshake with the backend is over: EHLO again
 * (RFC 3207 4.2), then XCLIENT as without TLS. */
static void
px_relay_tls_done(struct px_relay *r)
{
	SSL *ssl = bufferevent_openssl_get_ssl(r->bev);
	bool verify = SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE;

	r->tls = true;
	px_log_info("%016llx backend tls version=%s cipher=%s verified=%s",
	            (unsigned long long)r->sid, SSL_get_version(ssl),
	            SSL_get_cipher_name(ssl),
	            !verify                                   ? "no"
	            : SSL_get_verify_result(ssl) == X509_V_OK ? "yes"
	                                                      : "failed");
	px_relay_ehlo(r, R_EHLO);
}

static void
px_relay_tls_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct px_relay *r = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (r->state == R_TLS)
			px_relay_tls_done(r);
		return;
	}
	if (r->state == R_TLS) {
		char buf[256], q[600];

		px_sock_tls_error(bev, what, false, buf, sizeof(buf));
		px_log_str(q, sizeof(q), buf);
		px_log_warn("%016llx backend tls handshake failed reason=%s",
		            (unsigned long long)r->sid, q);
		px_relay_failed(r, (what & BEV_EVENT_TIMEOUT) != 0,
		                "backend TLS handshake failed");
		return;
	}
	ERR_clear_error();
	if ((what & BEV_EVENT_READING) && r->rd != NULL) {
		px_reader_bev_event(r->rd, what);
		return;
	}
	px_relay_failed(r, (what & BEV_EVENT_TIMEOUT) != 0,
	                (what & BEV_EVENT_TIMEOUT)
	                    ? "backend timeout"
	                    : "backend connection error");
}

/*
 * px_relay_tls_start - the backend said 220 to STARTTLS: layer an OpenSSL
 * filter over the socket's bufferevent (which then reads for it; our plain
 * reader goes, with anything the backend sent after its 220) and shake
 * hands as the client, checking the certificate when backend_tls says so.
 */
static void
px_relay_tls_start(struct px_relay *r)
{
	struct timeval wt = px_timeval(r->cfg->timeouts.backend);
	const char *name = r->cfg->backend_tls.verify_name;
	struct bufferevent *f;
	SSL *ssl = SSL_new(r->cfg->backend_tls.ctx);

	px_reader_free(&r->rd);
	if (ssl == NULL) {
		ERR_clear_error();
		px_relay_die(r, PX_RELAY_UNREACHABLE, "SSL_new failed");
		return;
	}
	if (name != NULL) {
		SSL_set_tlsext_host_name(ssl, name);
		SSL_set1_host(ssl, name);
	}
	f = bufferevent_openssl_filter_new(r->base, r->bev, ssl,
	                                   BUFFEREVENT_SSL_CONNECTING,
	                                   BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL) {
		SSL_free(ssl);
		px_relay_die(r, PX_RELAY_UNREACHABLE, "cannot start TLS");
		return;
	}
	/* The filter owns the socket's bufferevent from now on. */
	r->bev = f;
	r->state = R_TLS;
	bufferevent_setcb(f, px_relay_tls_readcb, px_relay_writecb,
	                  px_relay_tls_eventcb, r);
	bufferevent_set_timeouts(f, NULL, &wt);
	bufferevent_enable(f, EV_WRITE);
	r->rd = px_reader_new_bev(r->base, f, PX_REPLY_MAX * 2,
	                          px_relay_on_read, r);
	px_relay_set_read_timeout(r, r->cfg->timeouts.backend);
}

/* px_relay_on_reply - one complete reply arrived in state r->state.
 * Returns true if the relay may go on reading (no answer was given). */
static bool
px_relay_on_reply(struct px_relay *r, int code)
{
	switch (r->state) {
	case R_BANNER:
		if (code != 220) {
			px_relay_refused(r);
			return false;
		}
		px_relay_ehlo(r, R_EHLO);
		return true;
	case R_EHLO:
	case R_EHLO2:
		if (code != 250) {
			px_relay_refused(r);
			return false;
		}
		memset(&r->caps, 0, sizeof(r->caps));
		px_caps_parse(r->reply, r->reply_len, &r->caps);
		px_backend_caps_set(&r->caps);
		if (r->state == R_EHLO && !r->tls &&
		    r->cfg->backend_tls.mode != PX_BACKEND_TLS_OFF) {
			if (r->caps.starttls) {
				px_relay_send(r, "STARTTLS", 8, R_STARTTLS);
				return true;
			}
			if (r->cfg->backend_tls.mode ==
			    PX_BACKEND_TLS_REQUIRED) {
				px_log_warn(
				    "%016llx backend offers no STARTTLS "
				    "and backend_tls.mode is required",
				    (unsigned long long)r->sid);
				px_relay_refused(r);
				return false;
			}
		}
		return px_relay_after_ehlo(r);
	case R_STARTTLS:
		if (code == 220) {
			px_relay_tls_start(r);
			return false;
		}
		px_log_warn("%016llx backend refused STARTTLS: %.*s",
		            (unsigned long long)r->sid,
		            (int)(r->reply_len > 2 ? r->reply_len - 2 : 0),
		            r->reply);
		if (r->cfg->backend_tls.mode == PX_BACKEND_TLS_REQUIRED) {
			px_relay_refused(r);
			return false;
		}
		r->state = R_EHLO;
		return px_relay_after_ehlo(r);
	case R_XCLIENT:
		if (code == 220) {
			r->xclient_done = true;
			px_relay_ehlo(r, R_EHLO2);
			return true;
		}
		/* Not authorised for XCLIENT: carry on without it; the
		 * session then writes a Received header instead. */
		px_log_warn("%016llx backend refused XCLIENT: %.*s",
		            (unsigned long long)r->sid,
		            (int)(r->reply_len > 2 ? r->reply_len - 2 : 0),
		            r->reply);
		r->caps.xclient = false;
		r->state = R_READY;
		px_relay_set_read_timeout(r, 0);
		px_relay_answer(r, PX_RELAY_REPLY, NULL);
		return false;
	case R_COMMAND:
		r->state = R_READY;
		px_relay_set_read_timeout(r, 0);
		px_relay_answer(r, PX_RELAY_REPLY, NULL);
		return false;
	case R_DATA_DONE:
		/* Answered with the state still R_DATA_DONE, so the result
		 * says "final"; ready for the next transaction after. */
		px_relay_set_read_timeout(r, 0);
		px_relay_answer_final(r);
		return false;
	case R_DATA_CMD:
		if (code != 354) {
			/* A 2xx here is out of step with the protocol: the
			 * connection is not reused. */
			r->state = code >= 400 ? R_READY : R_DEAD;
			px_relay_set_read_timeout(r, 0);
			px_relay_answer(r, PX_RELAY_REPLY, NULL);
			return false;
		}
		r->state = R_DATA_SEND;
		/* While the message streams the backend says nothing: the
		 * write timeout measures progress; data_done is armed when
		 * the dot is queued. */
		px_relay_set_read_timeout(r, 0);
		px_data_encoder_init(&r->enc);
		r->sp_off = r->sp_skip;
		/* Headers go first; they end in CRLF so the message starts
		 * at a line start, as the encoder expects. */
		bufferevent_setwatermark(r->bev, EV_WRITE, PX_RELAY_OUT_LOW, 0);
		px_relay_fill(r);
		return false;
	case R_DATA_SEND:
		/* The backend answered before the end (e.g. 552 and close):
		 * that is its final word on this message, and the connection
		 * is out of step, so it goes. */
		px_relay_close_socket(r);
		r->state = R_DEAD;
		px_relay_answer(r, PX_RELAY_REPLY, NULL);
		return false;
	case R_BDAT_SEND:
	case R_BDAT_WAIT:
	case R_BDAT_DONE:
		return px_relay_bdat_reply(r, code);
	case R_READY:
		/* Unsolicited: a 421 before an idle close.  Mark dead so the
		 * next transaction reconnects. */
		if (r->bev != NULL) {
			px_relay_close_socket(r);
		}
		r->state = R_DEAD;
		return false;
	default:
		return false;
	}
}

static void
px_relay_emit(void *ctx, const char *buf, size_t len)
{
	evbuffer_add(ctx, buf, len);
}

/* px_relay_fill - queue message bytes until the output is full, and go on
 * while the socket takes everything at once. */
static void
px_relay_fill(struct px_relay *r)
{
	struct evbuffer *out = bufferevent_get_output(r->bev);

	if (r->headers != NULL) {
		px_data_encode(&r->enc, r->headers, r->hlen, px_relay_emit,
		               out);
		r->headers = NULL;
	}
	for (;;) {
		const char *p = NULL;
		ssize_t n;

		if (evbuffer_get_length(out) >= PX_RELAY_OUT_HIGH) {
			/* The write callback asks for more once the output
			 * drains below PX_RELAY_OUT_LOW; if the socket took
			 * it all at once there is no callback: go on. */
			if (!px_sock_flush(r->bev))
				return;
		}
		if (r->chunk == NULL)
			r->chunk = px_malloc(PX_RELAY_CHUNK);
		n = px_spool_read(r->sp, r->sp_off, r->chunk, PX_RELAY_CHUNK,
		                  &p);
		if (n < 0) {
			px_log_err("%016llx cannot read spooled message",
			           (unsigned long long)r->sid);
			px_relay_die(r, PX_RELAY_LOST, "spool read error");
			return;
		}
		if (n == 0) {
			px_data_encode_end(&r->enc, px_relay_emit, out);
			bufferevent_setwatermark(r->bev, EV_WRITE, 0, 0);
			r->state = R_DATA_DONE;
			px_relay_set_read_timeout(r,
			                          r->cfg->timeouts.data_done);
			px_sock_flush(r->bev);
			return;
		}
		px_data_encode(&r->enc, p, (size_t)n, px_relay_emit, out);
		r->sp_off += (size_t)n;
	}
}

/*
 * px_relay_bdat_fill - queue BDAT chunks (RFC 3030 2): each "BDAT n" line
 * is followed by exactly n octets of the message, as they are (no
 * dot-stuffing: the count frames the chunk), the last one announced as
 * "BDAT n LAST".  Without PIPELINING (RFC 2920) the next chunk waits for
 * the previous one's reply.  Goes on while the socket takes everything at
 * once, like px_relay_fill.
 */
static void
px_relay_bdat_fill(struct px_relay *r)
{
	struct evbuffer *out = bufferevent_get_output(r->bev);

	for (;;) {
		const char *p = NULL;
		ssize_t n;
		size_t want;

		if (evbuffer_get_length(out) >= PX_RELAY_OUT_HIGH &&
		    !px_sock_flush(r->bev))
			return; /* the write callback comes back here */
		if (r->chunk_left == 0) {
			unsigned long long size;

			if (r->bdat_last_sent ||
			    (r->bdat_pending > 0 && !r->caps.pipelining)) {
				/* Everything is queued, or the next chunk
				 * waits for the reply to this one. */
				bufferevent_setwatermark(r->bev, EV_WRITE, 0,
				                         0);
				r->state = r->bdat_last_sent ? R_BDAT_DONE
				                             : R_BDAT_WAIT;
				px_relay_set_read_timeout(
				    r, r->cfg->timeouts.data_done);
				px_sock_flush(r->bev);
				return;
			}
			size = r->msg_left < PX_RELAY_BDAT_CHUNK
			           ? r->msg_left
			           : PX_RELAY_BDAT_CHUNK;
			r->bdat_last_sent = size == r->msg_left;
			evbuffer_add_printf(out, "BDAT %llu%s\r\n", size,
			                    r->bdat_last_sent ? " LAST" : "");
			r->msg_left -= size;
			r->chunk_left = (size_t)size;
			r->bdat_pending++;
			continue;
		}
		if (r->h_off < r->hlen) {
			want = r->hlen - r->h_off;
			if (want > r->chunk_left)
				want = r->chunk_left;
			evbuffer_add(out, r->headers + r->h_off, want);
			r->h_off += want;
			r->chunk_left -= want;
			continue;
		}
		want = r->chunk_left < PX_RELAY_CHUNK ? r->chunk_left
		                                      : PX_RELAY_CHUNK;
		if (r->chunk == NULL)
			r->chunk = px_malloc(PX_RELAY_CHUNK);
		n = px_spool_read(r->sp, r->sp_off, r->chunk, want, &p);
		if (n <= 0) {
			/* Deferred: this may run inside px_relay_message().
			 * The chunk cannot be completed, so the connection
			 * goes. */
			px_log_err("%016llx cannot read spooled message",
			           (unsigned long long)r->sid);
			px_relay_fail_later(r, PX_RELAY_LOST,
			                    "spool read error");
			return;
		}
		evbuffer_add(out, p != NULL ? p : r->chunk, (size_t)n);
		r->sp_off += (size_t)n;
		r->chunk_left -= (size_t)n;
	}
}

/*
 * px_relay_bdat_reply - the reply to one BDAT chunk.  A 250 to a chunk
 * before the last lets the next one go (without PIPELINING); the reply to
 * the LAST chunk is the final reply, whatever it is.  Anything else on an
 * earlier chunk ends the message (RFC 3030 2: no more chunks after a
 * failed one) and is the answer: the connection stays when nothing else
 * is in flight (the session then resets the backend's transaction), and
 * is closed when chunks sent after the failed one are still unanswered,
 * since their replies would be out of step.  Returns true if the relay
 * may go on reading.
 */
static bool
px_relay_bdat_reply(struct px_relay *r, int code)
{
	if (r->bdat_pending == 0) {
		/* Nothing asked: out of step. */
		px_relay_close_socket(r);
		r->state = R_DEAD;
		px_relay_answer(r, PX_RELAY_REPLY, NULL);
		return false;
	}
	r->bdat_pending--;
	if (r->state == R_BDAT_DONE && r->bdat_pending == 0) {
		px_relay_set_read_timeout(r, 0);
		px_relay_answer_final(r);
		return false;
	}
	if (code == 250) {
		if (r->state != R_BDAT_WAIT)
			return true;
		r->state = R_BDAT_SEND;
		px_relay_set_read_timeout(r, 0);
		bufferevent_setwatermark(r->bev, EV_WRITE, PX_RELAY_OUT_LOW, 0);
		px_relay_bdat_fill(r);
		return false;
	}
	px_log_info("%016llx backend refused a BDAT chunk: %.*s",
	            (unsigned long long)r->sid,
	            (int)(r->reply_len > 2 ? r->reply_len - 2 : 0), r->reply);
	if (r->bdat_pending == 0 && r->chunk_left == 0) {
		bufferevent_setwatermark(r->bev, EV_WRITE, 0, 0);
		r->state = R_READY;
		px_relay_set_read_timeout(r, 0);
	} else {
		px_relay_close_socket(r);
		r->state = R_DEAD;
	}
	px_relay_answer(r, PX_RELAY_REPLY, NULL);
	return false;
}

static void
px_relay_writecb(struct bufferevent *bev, void *arg)
{
	struct px_relay *r = arg;

	if (r->state == R_DATA_SEND)
		px_relay_fill(r);
	else if (r->state == R_BDAT_SEND)
		px_relay_bdat_fill(r);
	else
		px_sock_drained(bev);
}

static void
px_relay_on_read(void *arg, enum px_read_what what)
{
	struct px_relay *r = arg;
	struct evbuffer *in = px_reader_input(r->rd);

	if (what == PX_READ_TIMEOUT) {
		px_relay_failed(r, true, "backend timeout");
		return;
	}
	if (what != PX_READ_DATA) {
		px_relay_failed(r, false,
		                what == PX_READ_EOF
		                    ? "backend closed the connection"
		                    : "backend connection error");
		return;
	}
	for (;;) {
		size_t len = evbuffer_get_length(in), take, j = 0;
		struct px_reply_info info;
		const char *p;
		ssize_t n;

		if (len == 0) {
			px_reader_resume(r->rd);
			return;
		}
		take = len < PX_REPLY_MAX ? len : PX_REPLY_MAX;
		p = (const char *)evbuffer_pullup(in, (ssize_t)take);
		n = px_reply_parse(p, take, &info);
		if (n == 0 && len < PX_REPLY_MAX) {
			px_reader_resume(r->rd);
			return;
		}
		if (n <= 0) {
			px_log_warn("%016llx backend sent a malformed reply",
			            (unsigned long long)r->sid);
			px_relay_die(r,
			             r->state <= R_EHLO2 ? PX_RELAY_UNREACHABLE
			                                 : PX_RELAY_LOST,
			             "malformed reply");
			return;
		}
		/* Copy it with every line ending in CRLF. */
		if (r->reply_cap < (size_t)n * 2 + 2) {
			r->reply_cap = (size_t)n * 2 + 2;
			r->reply = px_realloc(r->reply, r->reply_cap);
		}
		for (ssize_t i = 0; i < n; i++) {
			if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
				r->reply[j++] = '\r';
			r->reply[j++] = p[i];
		}
		r->reply[j] = '\0';
		r->reply_len = j;
		evbuffer_drain(in, (size_t)n);
		if (!px_relay_on_reply(r, info.code))
			return;
	}
}

/* px_relay_failed - the socket failed (timeout, EOF, error) in state. */
static void px_pool_unlink(struct px_relay *r);

static void
px_relay_failed(struct px_relay *r, bool timeout, const char *why)
{
	bool opening = r->state <= R_EHLO2;

	if (r->parked) {
		/* A pooled connection failed: out of the pool, and gone. */
		px_pool_unlink(r);
		px_relay_free(&r);
		return;
	}
	if (r->state == R_READY) {
		/* Closed while idle: reconnect at the next transaction. */
		px_relay_close_socket(r);
		r->state = R_DEAD;
		return;
	}
	px_relay_die(r,
	             opening   ? PX_RELAY_UNREACHABLE
	             : timeout ? PX_RELAY_TIMEOUT
	                       : PX_RELAY_LOST,
	             why);
}

/* px_relay_eventcb - connect done, or the write side failed. */
static void
px_relay_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct px_relay *r = arg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		struct timeval wt = px_timeval(r->cfg->timeouts.backend);

		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY,
		           &one, sizeof(one));
		bufferevent_set_timeouts(bev, NULL, &wt);
		r->state = R_BANNER;
		r->rd = px_reader_new(r->base, bufferevent_getfd(bev),
		                      PX_REPLY_MAX * 2, px_relay_on_read, r);
		px_relay_set_read_timeout(r, r->cfg->timeouts.backend);
		return;
	}
	px_relay_failed(r, (what & BEV_EVENT_TIMEOUT) != 0,
	                (what & BEV_EVENT_TIMEOUT)
	                    ? "backend timeout"
	                    : "backend connection error");
}

void
px_relay_open(struct px_relay *r, const struct px_relay_client *client)
{
	struct timeval t = px_timeval(r->cfg->timeouts.backend);

	snprintf(r->client_ip, sizeof(r->client_ip), "%s", client->ip);
	r->client_port = client->port;
	free(r->client_name);
	free(r->client_helo);
	r->client_name = client->name ? px_strdup(client->name) : NULL;
	r->client_helo = client->helo ? px_strdup(client->helo) : NULL;
	snprintf(r->proto, sizeof(r->proto), "%s", client->proto);
	r->xclient_done = false;
	r->tls = false;
	r->private = false;
	r->reply_len = 0;
	px_relay_close_socket(r);
	r->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (r->bev == NULL) {
		px_relay_fail_later(r, PX_RELAY_UNREACHABLE,
		                    "cannot create socket");
		return;
	}
	bufferevent_setcb(r->bev, NULL, px_relay_writecb, px_relay_eventcb, r);
	bufferevent_set_timeouts(r->bev, &t, &t);
	/* EV_WRITE stays off: commands are written directly, and a
	 * px_reader reads (sockio.h); libevent watches the connect itself. */
	bufferevent_disable(r->bev, EV_WRITE | EV_READ);
	r->state = R_CONNECTING;
	{
		socklen_t len;
		const char *str;
		const struct sockaddr_storage *ss =
		    px_config_backend(r->cfg, r->route, &len, &str);

		if (bufferevent_socket_connect(r->bev, (struct sockaddr *)ss,
		                               (int)len) >= 0)
			return;
	}
	px_relay_fail_later(r, PX_RELAY_UNREACHABLE,
	                    "cannot connect to backend");
}

void
px_relay_command(struct px_relay *r, const char *line, size_t len)
{
	r->reply_len = 0;
	if (r->state != R_READY || r->bev == NULL) {
		px_relay_fail_later(r, PX_RELAY_LOST,
		                    "backend connection not ready");
		return;
	}
	px_relay_send(r, line, len, R_COMMAND);
}

void
px_relay_message(struct px_relay *r, const char *headers, size_t hlen,
                 struct px_spool *sp, size_t skip)
{
	r->reply_len = 0;
	if (r->state != R_READY || r->bev == NULL) {
		px_relay_fail_later(r, PX_RELAY_LOST,
		                    "backend connection not ready");
		return;
	}
	r->headers = headers;
	r->hlen = hlen;
	r->sp = sp;
	r->sp_skip = skip;
	if (!px_relay_chunking(r)) {
		px_relay_send(r, "DATA", 4, R_DATA_CMD);
		return;
	}
	/* RFC 3030: the message as it is, in counted chunks. */
	r->h_off = 0;
	r->sp_off = skip;
	r->msg_left = hlen + (px_spool_size(sp) - skip);
	r->chunk_left = 0;
	r->bdat_pending = 0;
	r->bdat_last_sent = false;
	r->state = R_BDAT_SEND;
	/* As for DATA: the write timeout measures progress while chunks
	 * go out; data_done is armed once the last one is queued. */
	px_relay_set_read_timeout(r, 0);
	bufferevent_setwatermark(r->bev, EV_WRITE, PX_RELAY_OUT_LOW, 0);
	px_relay_bdat_fill(r);
}

bool
px_relay_chunking(const struct px_relay *r)
{
	return r->caps.chunking && r->cfg->backend_chunking;
}

void
px_relay_quit(struct px_relay *r)
{
	/* QUIT, then close without waiting for the 221, as Postfix's own
	 * SMTP client does (smtp_skip_quit_response). */
	if (r->bev != NULL && r->state == R_READY) {
		evbuffer_add(bufferevent_get_output(r->bev), "QUIT\r\n", 6);
		px_sock_flush(r->bev);
	}
	px_relay_close_socket(r);
	r->state = R_CLOSED;
}

/*
 * The pool: greeted, idle backend connections that a finished session left
 * behind, per loop thread (so no locks), newest first.  A parked connection
 * watches its socket: anything the backend says or a close while parked,
 * or backend_pool.idle_timeout passing, takes it out and closes it.
 */
static __thread struct px_relay *px_pool;
static __thread unsigned px_pool_len;

static void
px_pool_unlink(struct px_relay *r)
{
	if (r->pool_prev != NULL)
		r->pool_prev->pool_next = r->pool_next;
	else
		px_pool = r->pool_next;
	if (r->pool_next != NULL)
		r->pool_next->pool_prev = r->pool_prev;
	r->pool_next = r->pool_prev = NULL;
	r->parked = false;
	px_pool_len--;
}

static void
px_pool_on_read(void *arg, enum px_read_what what)
{
	struct px_relay *r = arg;

	/* Idle too long (QUIT), or the backend spoke or left: done. */
	px_pool_unlink(r);
	if (what != PX_READ_TIMEOUT)
		r->state = R_DEAD;
	px_relay_quit(r);
	px_relay_free(&r);
}

void
px_relay_release(struct px_relay **rp)
{
	struct px_relay *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	/* Only a clean connection that carries no client's identity: after
	 * XCLIENT the backend's idea of the client belongs to that client. */
	if (r->state != R_READY || r->xclient_done || r->private ||
	    r->rd == NULL || r->bev == NULL ||
	    evbuffer_get_length(bufferevent_get_output(r->bev)) > 0 ||
	    px_pool_len >= r->cfg->backend_pool.max_idle) {
		px_relay_quit(r);
		px_relay_free(&r);
		return;
	}
	r->cb = NULL;
	r->arg = NULL;
	r->parked = true;
	r->pool_prev = NULL;
	r->pool_next = px_pool;
	if (px_pool != NULL)
		px_pool->pool_prev = r;
	px_pool = r;
	px_pool_len++;
	px_reader_set_callback(r->rd, px_pool_on_read, r);
	px_reader_set_timeout(r->rd, r->cfg->backend_pool.idle_timeout);
}

struct px_relay *
px_relay_take(struct event_base *base, struct px_config *cfg, uint64_t sid,
              px_relay_cb *cb, void *arg, unsigned route)
{
	struct px_relay *n;

	for (struct px_relay *r = px_pool; r != NULL; r = r->pool_next) {
		if (r->cfg != cfg || r->base != base || r->state != R_READY ||
		    r->rd == NULL || r->route != route)
			continue;
		px_pool_unlink(r);
		r->sid = sid;
		r->cb = cb;
		r->arg = arg;
		r->reused = true;
		px_reader_set_callback(r->rd, px_relay_on_read, r);
		px_reader_set_timeout(r->rd, 0);
		return r;
	}
	n = px_relay_new(base, cfg, sid, cb, arg);
	n->route = route;
	return n;
}

void
px_relay_set_route(struct px_relay *r, unsigned route)
{
	r->route = route;
}

unsigned
px_relay_route(const struct px_relay *r)
{
	return r->route;
}

bool
px_relay_reused(const struct px_relay *r)
{
	return r->reused;
}

void
px_relay_pool_drain(void)
{
	while (px_pool != NULL) {
		struct px_relay *r = px_pool;

		px_pool_unlink(r);
		px_relay_quit(r);
		px_relay_free(&r);
	}
}

/* px_probe_read_reply - blocking read of one reply into buf. */
static ssize_t
px_probe_read_reply(int fd, char *buf, size_t size, int timeout_ms)
{
	size_t len = 0;
	struct px_reply_info info;

	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t n;

		n = px_reply_parse(buf, len, &info);
		if (n > 0)
			return n;
		if (n < 0 || len == size)
			return -1;
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		n = read(fd, buf + len, size - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
}

int
px_backend_probe(const struct px_config *cfg, double timeout)
{
	char buf[8192], line[300];
	int fd, ms = (int)(timeout * 1000), rc = -1;
	struct pollfd pfd;
	ssize_t n;
	struct px_caps caps;

	fd = socket(cfg->backend.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&cfg->backend,
	            cfg->backend_len) < 0 &&
	    errno != EINPROGRESS)
		goto out;
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, ms) <= 0)
		goto out;
	int err = 0;
	socklen_t elen = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0)
		goto out;
	n = px_probe_read_reply(fd, buf, sizeof(buf), ms);
	if (n < 3 || strncmp(buf, "220", 3) != 0)
		goto out;
	snprintf(line, sizeof(line), "EHLO %s\r\n", cfg->hostname);
	if (write(fd, line, strlen(line)) < 0)
		goto out;
	n = px_probe_read_reply(fd, buf, sizeof(buf), ms);
	if (n <= 0 || px_caps_parse(buf, (size_t)n, &caps) < 0)
		goto out;
	px_backend_caps_set(&caps);
	if (write(fd, "QUIT\r\n", 6) > 0)
		(void)px_probe_read_reply(fd, buf, sizeof(buf), ms);
	rc = 0;
out:
	close(fd);
	return rc;
}
