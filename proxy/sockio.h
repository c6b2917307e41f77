/* SPDX-License-Identifier: MIT */
/*
 * sockio.h - writing to a socket bufferevent without arming its write event
 * for every reply.
 *
 * libevent arms (epoll_ctl) a bufferevent's write event whenever data is
 * added and disarms it when the buffer empties: two system calls and one
 * extra loop wakeup per SMTP reply.  We keep EV_WRITE disabled, write
 * straight away, and enable it only when the socket is full, as Redis does
 * with its pending-writes list.
 */
#ifndef MX_SOCKIO_H
#define MX_SOCKIO_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;

/*
 * px_sock_flush - write what the output buffer holds now.  When the socket
 * takes it all, nothing else happens; otherwise EV_WRITE is enabled and the
 * bufferevent's write callback runs when the rest has gone (call
 * px_sock_drained() there).  Returns true when the buffer is empty.
 */
bool px_sock_flush(struct bufferevent *bev);

/* px_sock_drained - from the write callback: disable EV_WRITE again when
 * the output is empty.  Returns true when it is. */
bool px_sock_drained(struct bufferevent *bev);

/*
 * px_sock_tls_error - why a TLS handshake on bev failed, as text into buf:
 * OpenSSL's error for the connection (or the thread's last), else the
 * socket's end ("connection closed", errno's text when with_errno).
 * Empties both error queues.  bev may be NULL (then only the thread's).
 */
const char *px_sock_tls_error(struct bufferevent *bev, short what,
                              bool with_errno, char *buf, size_t size);

/*
 * The read side.  A bufferevent reads with an ioctl(FIONREAD) before every
 * readv: one extra system call per SMTP command.  A px_reader is a
 * persistent read event of our own that reads into an evbuffer with one
 * readv, pauses above a high-water mark, and turns an idle period into a
 * timeout.  The bufferevent of the same socket keeps the write side.
 */
struct event_base;
struct evbuffer;
struct px_reader;

enum px_read_what {
	PX_READ_DATA = 0, /* new bytes in the input buffer */
	PX_READ_EOF,      /* the peer closed its side */
	PX_READ_ERROR,    /* a read error (errno) */
	PX_READ_TIMEOUT,  /* nothing arrived within the timeout */
};

/* Called on the loop thread; the callback may free the reader only as its
 * very last action (the reader touches nothing after the call). */
typedef void px_reader_fn(void *arg, enum px_read_what what);

/* px_reader_new - watch fd (not owned: the bufferevent closes it). */
struct px_reader *px_reader_new(struct event_base *base, int fd, size_t high,
                                px_reader_fn *cb, void *arg);

/*
 * px_reader_new_bev - the same interface over a bufferevent that reads by
 * itself (libevent's OpenSSL one, under TLS): its input buffer is the
 * reader's, high its read watermark, the idle timeout a timer of ours.  The
 * bufferevent's owner forwards its read callback to px_reader_bev_data()
 * and read-side EOF/errors to px_reader_bev_event(); bev is not owned and
 * must outlive the reader.
 */
struct px_reader *px_reader_new_bev(struct event_base *base,
                                    struct bufferevent *bev, size_t high,
                                    px_reader_fn *cb, void *arg);
void px_reader_bev_data(struct px_reader *r);
void px_reader_bev_event(struct px_reader *r, short what);

/* px_reader_free - stop and free; *rp = NULL; accepts NULL. */
void px_reader_free(struct px_reader **rp);

/* px_reader_set_callback - hand the reader to another owner. */
void px_reader_set_callback(struct px_reader *r, px_reader_fn *cb, void *arg);

/* px_reader_input - the input buffer (owned by the reader). */
struct evbuffer *px_reader_input(struct px_reader *r);

/* px_reader_set_timeout - idle timeout in seconds; 0 = none. */
void px_reader_set_timeout(struct px_reader *r, double secs);

/* px_reader_stop - stop reading for good (EOF seen, or closing). */
void px_reader_stop(struct px_reader *r);

/* px_reader_resume - after the owner consumed input: read again if the
 * reader paused above its high-water mark. */
void px_reader_resume(struct px_reader *r);

#endif
