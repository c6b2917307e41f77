/* SPDX-License-Identifier: MIT */
/*
 * smtp_load.c - bench/relay's loopback SMTP load client and sink, for what
 * Postfix's smtp-source and smtp-sink do not do: CHUNKING (RFC 3030).
 *
 *   bench_smtp sink PORT
 *       a sink on 127.0.0.1:PORT offering PIPELINING and CHUNKING: every
 *       MAIL, RCPT, DATA and BDAT is accepted, the message thrown away.
 *       One thread per connection.  Runs until killed.
 *   bench_smtp send -p PORT -s SESSIONS -m MESSAGES -f FILE (-d | -b) [-P IP]
 *       MESSAGES messages (FILE, CRLF lines), one per SMTP session, from
 *       SESSIONS threads in parallel to 127.0.0.1:PORT, by DATA (-d, the
 *       file dot-stuffed once up front) or by one BDAT LAST chunk (-b).
 *       Prints "ok=N failed=N secs=S eod_p50_us=X eod_p99_us=Y": the
 *       end-of-data latency is the time from the write of the message's
 *       last bytes (final dot, or the BDAT LAST chunk) to its reply.
 *       -P IP: each connection starts with a PROXY protocol v1 header
 *       naming IP as the client (the sink ignores it), so that checks
 *       which skip loopback clients run.
 *
 * Blocking sockets and threads: the work per message is a handful of
 * write/read calls, so one client thread per session keeps far ahead of
 * the daemon measured.  Everything is bounded: a 30 s socket timeout, and
 * a session that fails counts as failed and is not retried.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT   30
#define LINE_MAX_LEN 4096

/* A connection's buffered reader. */
struct conn {
	int fd;
	char buf[65536];
	size_t off, len;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* write_all - write len bytes or fail. */
static int
write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len > 0) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

/* conn_fill - read more into the buffer; -1 at EOF or error. */
static int
conn_fill(struct conn *c)
{
	ssize_t n;

	if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof(c->buf))
		return -1;
	do
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	return 0;
}

/* conn_line - the next line (without CRLF) into line; -1 on failure. */
static int
conn_line(struct conn *c, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);

		if (nl != NULL) {
			size_t n = (size_t)(nl - (c->buf + c->off));

			if (n > 0 && c->buf[c->off + n - 1] == '\r')
				n--;
			if (n >= size)
				n = size - 1;
			memcpy(line, c->buf + c->off, n);
			line[n] = '\0';
			c->off = (size_t)(nl - c->buf) + 1;
			return 0;
		}
		if (conn_fill(c) < 0)
			return -1;
	}
}

/* conn_skip - drop n octets of input (a BDAT chunk); -1 on failure. */
static int
conn_skip(struct conn *c, unsigned long long n)
{
	while (n > 0) {
		size_t have = c->len - c->off;

		if (have == 0) {
			if (conn_fill(c) < 0)
				return -1;
			continue;
		}
		if (have > n)
			have = (size_t)n;
		c->off += have;
		n -= have;
	}
	return 0;
}

/* conn_reply - read one (possibly multi-line) reply; its code or -1. */
static int
conn_reply(struct conn *c)
{
	char line[LINE_MAX_LEN];

	for (;;) {
		if (conn_line(c, line, sizeof(line)) < 0 || strlen(line) < 3)
			return -1;
		if (line[3] != '-')
			return atoi(line);
	}
}

static void
set_timeouts(int fd)
{
	struct timeval tv = {IO_TIMEOUT, 0};
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* The sink. */

static int
sink_say(struct conn *c, const char *text)
{
	return write_all(c->fd, text, strlen(text));
}

/* sink_session - one client connection, until QUIT or EOF. */
static void *
sink_session(void *arg)
{
	struct conn *c = arg;
	char line[LINE_MAX_LEN];

	set_timeouts(c->fd);
	if (sink_say(c, "220 sink.bench ESMTP\r\n") < 0)
		goto out;
	while (conn_line(c, line, sizeof(line)) == 0) {
		const char *r = "250 2.0.0 Ok\r\n";

		if (strncmp(line, "PROXY ", 6) == 0)
			continue;
		if (strncasecmp(line, "EHLO", 4) == 0) {
			r = "250-sink.bench\r\n250-PIPELINING\r\n"
			    "250-SIZE 104857600\r\n250-8BITMIME\r\n"
			    "250-ENHANCEDSTATUSCODES\r\n250-BINARYMIME\r\n"
			    "250 CHUNKING\r\n";
		} else if (strncasecmp(line, "DATA", 4) == 0) {
			if (sink_say(c, "354 End data with <CR><LF>.<CR>"
			                "<LF>\r\n") < 0)
				goto out;
			for (;;) {
				if (conn_line(c, line, sizeof(line)) < 0)
					goto out;
				if (strcmp(line, ".") == 0)
					break;
			}
			r = "250 2.0.0 Ok: queued\r\n";
		} else if (strncasecmp(line, "BDAT ", 5) == 0) {
			char *end;
			unsigned long long n = strtoull(line + 5, &end, 10);

			if (end == line + 5 || conn_skip(c, n) < 0)
				goto out;
			r = strcasestr(end, "LAST") != NULL
			        ? "250 2.0.0 Ok: queued\r\n"
			        : "250 2.0.0 Ok: chunk\r\n";
		} else if (strncasecmp(line, "QUIT", 4) == 0) {
			sink_say(c, "221 2.0.0 Bye\r\n");
			goto out;
		}
		if (sink_say(c, r) < 0)
			goto out;
	}
out:
	close(c->fd);
	free(c);
	return NULL;
}

static int
sink_main(int port)
{
	struct sockaddr_in sa;
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1024) < 0) {
		perror("bench_smtp sink");
		return 1;
	}
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		struct conn *c;
		pthread_t t;
		pthread_attr_t attr;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("bench_smtp sink: accept");
			return 1;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			abort();
		c->fd = fd;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		if (pthread_create(&t, &attr, sink_session, c) != 0) {
			close(fd);
			free(c);
		}
		pthread_attr_destroy(&attr);
	}
}

/* The client. */

static struct {
	int port;
	bool bdat;
	const char *msg; /* as sent after DATA's 354 (stuffed, with the dot)
	                  * or after the BDAT line */
	size_t msg_len;
	char bdat_line[64];
	char proxy_line[128]; /* empty: none */
	atomic_long next;     /* messages handed out */
	long messages;
	atomic_long ok, failed;
	double *lat; /* seconds, per message (index = its number) */
} G;

/* send_one - one SMTP session with one message; 0 or -1. */
static int
send_one(long i)
{
	struct sockaddr_in sa;
	struct conn *c = calloc(1, sizeof(*c));
	int rc = -1;
	double t0;

	if (c == NULL)
		abort();
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	set_timeouts(c->fd);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)G.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write_all(c->fd, G.proxy_line, strlen(G.proxy_line)) < 0 ||
	    conn_reply(c) != 220)
		goto out;
#define CMD(text, want)                                                        \
	if (write_all(c->fd, text, strlen(text)) < 0 || conn_reply(c) != want) \
	goto out
	CMD("EHLO source.bench\r\n", 250);
	CMD("MAIL FROM:<bench@source.bench>\r\n", 250);
	CMD("RCPT TO:<sink@sink.bench>\r\n", 250);
	if (G.bdat) {
		if (write_all(c->fd, G.bdat_line, strlen(G.bdat_line)) < 0)
			goto out;
	} else {
		CMD("DATA\r\n", 354);
	}
	if (write_all(c->fd, G.msg, G.msg_len) < 0)
		goto out;
	t0 = now();
	if (conn_reply(c) != 250)
		goto out;
	G.lat[i] = now() - t0;
	(void)write_all(c->fd, "QUIT\r\n", 6);
	(void)conn_reply(c);
	rc = 0;
#undef CMD
out:
	close(c->fd);
	free(c);
	return rc;
}

static void *
send_thread(void *arg)
{
	(void)arg;
	for (;;) {
		long i = atomic_fetch_add(&G.next, 1);

		if (i >= G.messages)
			return NULL;
		if (send_one(i) == 0)
			atomic_fetch_add(&G.ok, 1);
		else {
			G.lat[i] = -1;
			atomic_fetch_add(&G.failed, 1);
		}
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* load_message - FILE as the bytes to send: dot-stuffed with the final
 * dot for DATA, as it is for BDAT. */
static int
load_message(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *raw, *out;
	size_t n = 0;

	if (f == NULL || fstat(fileno(f), &st) < 0)
		return -1;
	raw = malloc((size_t)st.st_size + 1);
	out = malloc((size_t)st.st_size * 2 + 8);
	if (raw == NULL || out == NULL ||
	    fread(raw, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
		return -1;
	fclose(f);
	if (G.bdat) {
		G.msg = raw;
		G.msg_len = (size_t)st.st_size;
		snprintf(G.bdat_line, sizeof(G.bdat_line), "BDAT %zu LAST\r\n",
		         G.msg_len);
		free(out);
		return 0;
	}
	for (size_t i = 0; i < (size_t)st.st_size; i++) {
		if (raw[i] == '.' && (i == 0 || raw[i - 1] == '\n'))
			out[n++] = '.';
		out[n++] = raw[i];
	}
	if (n > 0 && out[n - 1] != '\n') {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	memcpy(out + n, ".\r\n", 3);
	G.msg = out;
	G.msg_len = n + 3;
	free(raw);
	return 0;
}

static int
send_main(int argc, char **argv)
{
	long sessions = 1;
	const char *file = NULL;
	int opt, mode = 0;
	pthread_t *t;
	double t0, secs, *ok;
	size_t nok = 0;

	while ((opt = getopt(argc, argv, "p:s:m:f:dbP:")) != -1) {
		switch (opt) {
		case 'P':
			snprintf(G.proxy_line, sizeof(G.proxy_line),
			         "PROXY TCP4 %s 127.0.0.1 40000 25\r\n",
			         optarg);
			break;
		case 'p':
			G.port = atoi(optarg);
			break;
		case 's':
			sessions = atol(optarg);
			break;
		case 'm':
			G.messages = atol(optarg);
			break;
		case 'f':
			file = optarg;
			break;
		case 'd':
		case 'b':
			mode = opt;
			break;
		default:
			return 64;
		}
	}
	if (G.port <= 0 || sessions <= 0 || sessions > 1000 ||
	    G.messages <= 0 || file == NULL || mode == 0) {
		fprintf(stderr, "usage: bench_smtp send -p PORT -s SESSIONS -m "
		                "MESSAGES -f FILE (-d | -b) [-P IP]\n");
		return 64;
	}
	G.bdat = mode == 'b';
	if (load_message(file) < 0) {
		perror(file);
		return 66;
	}
	G.lat = calloc((size_t)G.messages, sizeof(double));
	t = calloc((size_t)sessions, sizeof(*t));
	if (G.lat == NULL || t == NULL)
		abort();
	t0 = now();
	for (long i = 0; i < sessions; i++)
		if (pthread_create(&t[i], NULL, send_thread, NULL) != 0)
			abort();
	for (long i = 0; i < sessions; i++)
		pthread_join(t[i], NULL);
	secs = now() - t0;
	ok = calloc((size_t)G.messages, sizeof(double));
	if (ok == NULL)
		abort();
	for (long i = 0; i < G.messages; i++)
		if (G.lat[i] >= 0)
			ok[nok++] = G.lat[i];
	qsort(ok, nok, sizeof(double), cmp_double);
	printf("ok=%ld failed=%ld secs=%.3f eod_p50_us=%.0f eod_p99_us=%.0f\n",
	       (long)G.ok, (long)G.failed, secs, nok ? ok[nok / 2] * 1e6 : 0.0,
	       nok ? ok[(nok * 99) / 100 < nok ? (nok * 99) / 100 : nok - 1] *
	                 1e6
	           : 0.0);
	return G.failed == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "sink") == 0)
		return sink_main(atoi(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "send") == 0)
		return send_main(argc - 1, argv + 1);
	fprintf(stderr, "usage: bench_smtp sink PORT | bench_smtp send ...\n");
	return 64;
}
