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
#include <event2/event.h>

bool
px_sock_flush(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (evbuffer_get_length(out) == 0)
		return true;
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
	bufferevent_disable(bev, EV_WRITE);
	return true;
}
