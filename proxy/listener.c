/* SPDX-License-Identifier: MIT */
/*
 * listener.c - accepting clients.
 *
 * px_listeners_bind(): for every configured address, one listening socket
 * per loop in one SO_REUSEPORT group, bound in the main thread before
 * privileges are dropped.  The kernel hands each new connection to one
 * socket of the group, so it wakes one loop: a socket shared by all loops
 * woke every one of them for each client, and all but one found nothing
 * to accept.  A plain bind is tried first, so a second mxguard started by
 * mistake (or anything else on the port) still fails to start instead of
 * silently joining the group.
 * px_listeners_attach(): each loop accepts from its own socket of every
 * address.
 * px_conn_acquire()/px_conn_release(): limits.connections and
 * limits.connections_per_ip, process-wide, under one mutex.
 * px_listeners_stop(): the SIGTERM path; px_server_session_gone() lets a
 * stopping loop exit once its last session is freed.
 */
#include "listener.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "loop.h"
#include "netaddr.h"
#include "relay.h"
#include "session.h"

#define PX_MAX_LOOPS 256

struct px_bound {
	int *fds; /* one per loop, an SO_REUSEPORT group */
	struct px_listen_info info;
};

/* One loop's accept event on its socket of one address. */
struct px_acceptor {
	struct event *ev;
	int fd; /* a dup, closed with the acceptor */
	struct px_server_loop *sl;
	struct px_listen_info info;
};

struct px_server_loop {
	struct px_loop *loop;
	struct px_acceptor *ls;
	size_t nls;
	bool stopping;
	double grace;
	struct event *grace_ev;
	struct event *resume_ev; /* re-enables accepting after EMFILE */
	unsigned accept_errors;  /* since the last log line about them */
};

static struct px_bound *px_bound;
static size_t px_nbound;
static unsigned px_nfds; /* sockets per address: the number of loops */
static struct px_server_loop px_sloops[PX_MAX_LOOPS];
static unsigned px_nsloops;

/* px_listen_socket - a socket bound to addr (in SO_REUSEPORT's group when
 * reuseport), listening unless probe; -1 with errno on failure. */
static int
px_listen_socket(const struct px_listen *l, const struct sockaddr *addr,
                 socklen_t addrlen, bool reuseport, bool probe)
{
	int fd, one = 1;

	fd = socket(l->addr.ss_family,
	            SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	/* Accepted sockets inherit TCP_NODELAY on Linux: one system call
	 * here instead of one per client.  Replies are whole writes, so
	 * Nagle would only add delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, addr, addrlen) < 0 || (!probe && listen(fd, 511) < 0))
		goto fail;
	return fd;
fail:;
	int err = errno;

	close(fd);
	errno = err;
	return -1;
}

int
px_listeners_bind(const struct px_config *cfg, unsigned nloops,
                  const char **error_r)
{
	static char err[512];

	px_nfds = nloops > 0 ? nloops : 1;
	px_bound = px_calloc(cfg->nlisten, sizeof(*px_bound));
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct px_listen *l = &cfg->listen[i];
		struct px_bound *b = &px_bound[px_nbound];
		struct sockaddr_storage addr = l->addr;
		socklen_t addrlen = l->addrlen;
		int fd;

		b->fds = px_calloc(px_nfds, sizeof(*b->fds));
		for (unsigned k = 0; k < px_nfds; k++)
			b->fds[k] = -1;
		/* SECURITY: a socket without SO_REUSEPORT cannot bind where
		 * another socket is bound, with or without it: the port is
		 * ours alone before the group is made.  (Port 0 has nothing
		 * to probe: the first socket picks the port.) */
		if (px_addr_port(&addr) != 0) {
			fd = px_listen_socket(l, (struct sockaddr *)&addr,
			                      addrlen, false, true);
			if (fd < 0)
				goto fail;
			close(fd);
		}
		for (unsigned k = 0; k < px_nfds; k++) {
			fd = px_listen_socket(l, (struct sockaddr *)&addr,
			                      addrlen, true, false);
			if (fd < 0)
				goto fail;
			b->fds[k] = fd;
			/* The rest of the group binds the port the first
			 * one got. */
			addrlen = sizeof(addr);
			if (k == 0 && getsockname(fd, (struct sockaddr *)&addr,
			                          &addrlen) < 0)
				goto fail;
		}
		snprintf(b->info.address, sizeof(b->info.address), "%s",
		         l->address);
		b->info.mode = l->mode;
		b->info.proxy_protocol = l->proxy_protocol;
		b->info.tls_implicit = l->tls.implicit;
		px_nbound++;
		continue;
	fail:
		snprintf(err, sizeof(err), "cannot listen on %s: %s",
		         l->address, strerror(errno));
		for (unsigned k = 0; k < px_nfds; k++)
			if (b->fds[k] >= 0)
				close(b->fds[k]);
		free(b->fds);
		b->fds = NULL;
		*error_r = err;
		return -1;
	}
	return 0;
}

static void
px_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct px_server_loop *sl = arg;

	if (sl->accept_errors > 1)
		px_log_warn("accept: %u more failures; accepting again",
		            sl->accept_errors - 1);
	sl->accept_errors = 0;
	for (size_t i = 0; i < sl->nls; i++)
		event_add(sl->ls[i].ev, NULL);
}

/*
 * px_accept_error - accept(2) failed with err.  Out of descriptors or memory
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM), the pending connection stays in the
 * backlog and the level-triggered listener would fire again at once,
 * forever: this loop stops accepting for a second instead, and logs once.
 */
static void
px_accept_error(struct px_server_loop *sl, int err)
{
	struct timeval one = {1, 0};

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		px_log_warn("accept: %s", strerror(err));
		return;
	}
	if (sl->accept_errors++ == 0)
		px_log_warn("accept: %s; pausing new connections for 1 s",
		            strerror(err));
	for (size_t i = 0; i < sl->nls; i++)
		event_del(sl->ls[i].ev);
	if (sl->resume_ev == NULL)
		sl->resume_ev =
		    evtimer_new(px_loop_base(sl->loop), px_accept_resume, sl);
	evtimer_add(sl->resume_ev, &one);
}

/*
 * px_accept_cb - one client per readiness.  The event is level-triggered,
 * so another waiting client makes the next epoll_wait report the socket
 * again; accepting until EAGAIN (as evconnlistener does) cost one failed
 * accept4 per client when clients come one at a time.
 */
static void
px_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct px_acceptor *a = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = accept4(lfd, (struct sockaddr *)&ss, &len,
	                 SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		/* Taken by nobody else (the socket is this loop's own), but
		 * a client may have given up in the backlog. */
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			px_accept_error(a->sl, errno);
		return;
	}
	px_session_start(a->sl->loop, &a->info, fd, (struct sockaddr *)&ss,
	                 len);
}

void
px_listeners_attach(struct px_loop *loop, unsigned nloops)
{
	struct px_server_loop *sl = &px_sloops[px_loop_index(loop)];

	sl->loop = loop;
	if (px_loop_index(loop) + 1 > px_nsloops)
		px_nsloops = px_loop_index(loop) + 1;
	sl->ls = px_calloc(px_nbound, sizeof(*sl->ls));
	for (size_t i = 0; i < px_nbound; i++) {
		struct px_acceptor *a = &sl->ls[i];

		/* A dup: px_listeners_stop closes the originals. */
		a->fd = fcntl(px_bound[i].fds[px_loop_index(loop) % px_nfds],
		              F_DUPFD_CLOEXEC, 0);
		if (a->fd < 0)
			abort();
		a->sl = sl;
		a->info = px_bound[i].info;
		a->ev = event_new(px_loop_base(loop), a->fd,
		                  EV_READ | EV_PERSIST, px_accept_cb, a);
		event_add(a->ev, NULL);
	}
	sl->nls = px_nbound;
	(void)nloops;
}

static void
px_server_maybe_exit(struct px_server_loop *sl)
{
	if (sl->stopping && px_loop_count(sl->loop) == 0) {
		px_relay_pool_drain();
		if (sl->grace_ev != NULL)
			event_free(sl->grace_ev);
		sl->grace_ev = NULL;
		if (sl->resume_ev != NULL)
			event_free(sl->resume_ev);
		sl->resume_ev = NULL;
		px_loop_exit(sl->loop);
	}
}

static void
px_server_kill_one(void *obj, void *arg)
{
	px_session_kill(obj);
}

static void
px_server_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct px_server_loop *sl = arg;

	px_log_info("stop: grace period over, closing %u sessions",
	            px_loop_count(sl->loop));
	px_loop_foreach(sl->loop, px_server_kill_one, NULL);
}

static void
px_server_stop_one(void *obj, void *arg)
{
	px_session_shutdown(obj);
}

/* px_server_stop_loop - on the loop's thread. */
static void
px_server_stop_loop(void *arg)
{
	struct px_server_loop *sl = arg;
	struct timeval tv;

	if (sl->stopping)
		return;
	sl->stopping = true;
	for (size_t i = 0; i < sl->nls; i++) {
		event_free(sl->ls[i].ev);
		close(sl->ls[i].fd);
	}
	free(sl->ls);
	sl->ls = NULL;
	sl->nls = 0;
	px_loop_foreach(sl->loop, px_server_stop_one, NULL);
	tv = px_timeval(sl->grace);
	sl->grace_ev =
	    evtimer_new(px_loop_base(sl->loop), px_server_grace_over, sl);
	evtimer_add(sl->grace_ev, &tv);
	px_server_maybe_exit(sl);
}

void
px_listeners_stop(double grace)
{
	for (unsigned i = 0; i < px_nsloops; i++) {
		px_sloops[i].grace = grace;
		px_loop_post(px_sloops[i].loop, px_server_stop_loop,
		             &px_sloops[i]);
	}
	for (size_t i = 0; i < px_nbound; i++) {
		for (unsigned k = 0; k < px_nfds; k++)
			close(px_bound[i].fds[k]);
		free(px_bound[i].fds);
		px_bound[i].fds = NULL;
	}
	px_nbound = 0;
}

void
px_server_session_gone(struct px_loop *loop)
{
	px_server_maybe_exit(&px_sloops[px_loop_index(loop)]);
}

bool
px_server_stopping(struct px_loop *loop)
{
	return px_sloops[px_loop_index(loop)].stopping;
}

/* Connection accounting: a small open hash of per-IP counts. */

struct px_ipcount {
	struct px_ipcount *next;
	unsigned count;
	char ip[48];
};

#define PX_IP_BUCKETS 4096
static pthread_mutex_t px_conn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct px_ipcount *px_ip_buckets[PX_IP_BUCKETS];
static unsigned px_conn_total;

static unsigned
px_ip_hash(const char *ip)
{
	unsigned h = 2166136261u;

	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % PX_IP_BUCKETS;
}

int
px_conn_acquire(const struct px_config *cfg, const char *ip)
{
	struct px_ipcount **bp, *e;
	int rc = 0;

	pthread_mutex_lock(&px_conn_lock);
	bp = &px_ip_buckets[px_ip_hash(ip)];
	for (e = *bp; e != NULL; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			break;
	if (px_conn_total >= cfg->limits.connections) {
		rc = -1;
	} else if (e != NULL && e->count >= cfg->limits.connections_per_ip) {
		rc = -2;
	} else {
		if (e == NULL) {
			e = px_calloc(1, sizeof(*e));
			snprintf(e->ip, sizeof(e->ip), "%s", ip);
			e->next = *bp;
			*bp = e;
		}
		e->count++;
		px_conn_total++;
	}
	pthread_mutex_unlock(&px_conn_lock);
	return rc;
}

void
px_conn_release(const char *ip)
{
	struct px_ipcount **bp;

	pthread_mutex_lock(&px_conn_lock);
	for (bp = &px_ip_buckets[px_ip_hash(ip)]; *bp != NULL;
	     bp = &(*bp)->next) {
		if (strcmp((*bp)->ip, ip) == 0) {
			struct px_ipcount *e = *bp;

			px_conn_total--;
			if (--e->count == 0) {
				*bp = e->next;
				free(e);
			}
			break;
		}
	}
	pthread_mutex_unlock(&px_conn_lock);
}
