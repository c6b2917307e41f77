/* SPDX-License-Identifier: MIT */
/*
 * sockio.c - direct writes on socket bufferevents (see sockio.h).
 *
 * px_sock_flush(): one writev now, the write event only on a short write.
 * px_sock_drained(): back to the quiet state once all is sent.
 * A write error is left for the bufferevent to find: EV_WRITE is enabled,
 * libevent's own write fails the same way and reports it to the event
 * callback, so error handling stays in one place.
 */
#include "sockio.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

bool
px_sock_flush(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (evbuffer_get_length(out) == 0)
		return true;
	/* SECURITY: under TLS the bytes must go through SSL_write, never
	 * straight to the socket: libevent's OpenSSL bufferevent writes
	 * them (its EV_WRITE stays enabled, see px_sock_drained). */
	if (bufferevent_openssl_get_ssl(bev) != NULL) {
		bufferevent_enable(bev, EV_WRITE);
		return false;
	}
	if (fd >= 0 && !(bufferevent_get_enabled(bev) & EV_WRITE)) {
		/* A socket bufferevent keeps the front of its output frozen
		 * so only its own writer drains it; we are that writer now,
		 * exactly as libevent's write callback does it. */
		evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, fd);
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) == 0)
		return true;
	bufferevent_enable(bev, EV_WRITE);
	return false;
}

bool
px_sock_drained(struct bufferevent *bev)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return false;
	/* An OpenSSL bufferevent arms its write event only while it has
	 * something to send (and the handshake may need it): leave it be. */
	if (bufferevent_openssl_get_ssl(bev) == NULL)
		bufferevent_disable(bev, EV_WRITE);
	return true;
}

const char *
px_sock_tls_error(struct bufferevent *bev, short what, bool with_errno,
                  char *buf, size_t size)
{
	unsigned long err = bev ? bufferevent_get_openssl_error(bev) : 0;
	int saved = errno;

	if (err == 0)
		err = ERR_peek_last_error();
	if (err != 0)
		ERR_error_string_n(err, buf, size);
	else
		snprintf(buf, size, "%s",
		         (what & BEV_EVENT_EOF) ? "connection closed"
		         : with_errno && saved  ? strerror(saved)
		                                : "failed");
	while (bev != NULL && bufferevent_get_openssl_error(bev) != 0)
		;
	ERR_clear_error();
	return buf;
}

/* The read side (see sockio.h). */

#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "alloc.h"
#include "loop.h"

#define PX_READ_CHUNK 65536

struct px_reader {
	struct event *ev;        /* socket mode: the fd's read event */
	struct bufferevent *bev; /* bufferevent mode (TLS); not owned */
	struct event *timer;     /* bufferevent mode: the idle timeout */
	struct evbuffer *in;     /* socket mode: owned; else the bev's */
	size_t high;
	double timeout;
	bool paused;
	bool stopped;
	px_reader_fn *cb;
	void *arg;
};

static void
px_reader_arm(struct px_reader *r)
{
	struct timeval tv = px_timeval(r->timeout);

	if (r->bev != NULL) {
		bufferevent_enable(r->bev, EV_READ);
		if (r->timeout > 0)
			evtimer_add(r->timer, &tv);
		else
			evtimer_del(r->timer);
		return;
	}
	if (r->timeout > 0) {
		event_add(r->ev, &tv);
		return;
	}
	/* event_add(ev, NULL) keeps a timeout set earlier: remove it. */
	event_add(r->ev, NULL);
	event_remove_timer(r->ev);
}

static void
px_reader_event(evutil_socket_t fd, short what, void *arg)
{
	struct px_reader *r = arg;
	struct evbuffer_iovec vec[2];
	ssize_t n;
	int nvec;

	if (what & EV_TIMEOUT) {
		r->cb(r->arg, PX_READ_TIMEOUT);
		return;
	}
	nvec = evbuffer_reserve_space(r->in, PX_READ_CHUNK, vec, 2);
	n = readv(fd, (struct iovec *)vec, nvec);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		r->cb(r->arg, PX_READ_ERROR);
		return;
	}
	if (n == 0) {
		r->cb(r->arg, PX_READ_EOF);
		return;
	}
	/* Say how much of the reserved space holds data. */
	size_t left = (size_t)n;

	for (int i = 0; i < nvec; i++) {
		if (vec[i].iov_len > left)
			vec[i].iov_len = left;
		left -= vec[i].iov_len;
	}
	evbuffer_commit_space(r->in, vec, nvec);
	if (r->high > 0 && evbuffer_get_length(r->in) >= r->high) {
		/* Back-pressure: the owner is behind; px_reader_resume
		 * re-arms once it has consumed. */
		event_del(r->ev);
		r->paused = true;
	}
	r->cb(r->arg, PX_READ_DATA);
}

struct px_reader *
px_reader_new(struct event_base *base, int fd, size_t high, px_reader_fn *cb,
              void *arg)
{
	struct px_reader *r = px_calloc(1, sizeof(*r));

	r->in = evbuffer_new();
	r->high = high;
	r->cb = cb;
	r->arg = arg;
	r->ev = event_new(base, fd, EV_READ | EV_PERSIST, px_reader_event, r);
	px_reader_arm(r);
	return r;
}

static void
px_reader_timer(evutil_socket_t fd, short what, void *arg)
{
	struct px_reader *r = arg;

	r->cb(r->arg, PX_READ_TIMEOUT);
}

struct px_reader *
px_reader_new_bev(struct event_base *base, struct bufferevent *bev, size_t high,
                  px_reader_fn *cb, void *arg)
{
	struct px_reader *r = px_calloc(1, sizeof(*r));

	r->bev = bev;
	r->in = bufferevent_get_input(bev);
	r->high = high;
	r->cb = cb;
	r->arg = arg;
	r->timer = evtimer_new(base, px_reader_timer, r);
	/* libevent stops reading above high and goes on below it by
	 * itself: back-pressure without px_reader_resume. */
	bufferevent_setwatermark(bev, EV_READ, 0, high);
	px_reader_arm(r);
	return r;
}

void
px_reader_bev_data(struct px_reader *r)
{
	if (r->stopped)
		return;
	px_reader_arm(r); /* the idle timeout starts again */
	r->cb(r->arg, PX_READ_DATA);
}

void
px_reader_bev_event(struct px_reader *r, short what)
{
	if (r->stopped)
		return;
	r->cb(r->arg, (what & BEV_EVENT_EOF) ? PX_READ_EOF : PX_READ_ERROR);
}

void
px_reader_free(struct px_reader **rp)
{
	struct px_reader *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	if (r->bev != NULL) {
		event_free(r->timer);
	} else {
		event_free(r->ev);
		evbuffer_free(r->in);
	}
	free(r);
}

void
px_reader_set_callback(struct px_reader *r, px_reader_fn *cb, void *arg)
{
	r->cb = cb;
	r->arg = arg;
}

struct evbuffer *
px_reader_input(struct px_reader *r)
{
	return r->in;
}

void
px_reader_set_timeout(struct px_reader *r, double secs)
{
	if (r->timeout == secs)
		return;
	r->timeout = secs;
	if (!r->paused && !r->stopped)
		px_reader_arm(r);
}

void
px_reader_stop(struct px_reader *r)
{
	r->stopped = true;
	if (r->bev != NULL) {
		bufferevent_disable(r->bev, EV_READ);
		evtimer_del(r->timer);
		return;
	}
	event_del(r->ev);
}

void
px_reader_resume(struct px_reader *r)
{
	if (r->bev != NULL || !r->paused || r->stopped ||
	    evbuffer_get_length(r->in) >= r->high / 2)
		return;
	r->paused = false;
	px_reader_arm(r);
}
