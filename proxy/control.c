/* SPDX-License-Identifier: MIT */
/*
 * control.c - the local control socket (`control_socket`) and its client,
 * `mxguard ctl`.
 *
 * The operator's commands (whitelist entries, reputation, rate buckets)
 * are store operations.  Against Redis `mxguard ctl` runs them itself: the
 * state is in Redis and no instance needs to run.  Against the memory
 * store they must run inside the process that holds it: the client sends
 * them over the control socket, where the daemon's main thread runs them.
 * `clock advance N` moves the store clock of a daemon whose config sets
 * debug_clock (tests).
 *
 * Wire format, one request and one answer per line, fields separated by
 * TAB, with TAB, LF, CR and backslash in a field written \t \n \r \\:
 *   STORE op nkeys key... nargs arg... str|-     (str "-" with flag "1")
 *   CLOCK seconds
 *   STATUS
 * answer:
 *   OK status error nv v... nstrs str...
 *   ERR message
 * The socket is created mode 0600: whoever can use it can whitelist.
 */
#include "control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "store.h"
#include "workers.h"

#define PX_CTL_LINE_MAX 65536
#define PX_CTL_FIELDS   64

/* Field encoding. */

static void
px_ctl_put(struct evbuffer *out, const char *s, bool first)
{
	if (!first)
		evbuffer_add(out, "\t", 1);
	for (; *s; s++) {
		switch (*s) {
		case '\t':
			evbuffer_add(out, "\\t", 2);
			break;
		case '\n':
			evbuffer_add(out, "\\n", 2);
			break;
		case '\r':
			evbuffer_add(out, "\\r", 2);
			break;
		case '\\':
			evbuffer_add(out, "\\\\", 2);
			break;
		default:
			evbuffer_add(out, s, 1);
		}
	}
}

static void
px_ctl_put_int(struct evbuffer *out, int64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRId64, v);
	px_ctl_put(out, num, false);
}

/* px_ctl_split - line into at most PX_CTL_FIELDS decoded fields, in
 * place.  Returns the count. */
static unsigned
px_ctl_split(char *line, char **f)
{
	unsigned n = 0;
	char *w = line, *r = line;

	f[n++] = w;
	for (; *r; r++) {
		if (*r == '\t') {
			*w++ = '\0';
			if (n == PX_CTL_FIELDS)
				return n;
			f[n++] = w;
		} else if (*r == '\\' && r[1] != '\0') {
			r++;
			*w++ = *r == 't'   ? '\t'
			       : *r == 'n' ? '\n'
			       : *r == 'r' ? '\r'
			                   : *r;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return n;
}

static bool
px_ctl_int(const char *s, int64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno == 0 && end != s && *end == '\0';
}

/* px_ctl_cmd_encode / decode: an st_cmd as fields after "STORE". */
static void
px_ctl_cmd_encode(struct evbuffer *out, const struct st_cmd *cmd)
{
	px_ctl_put(out, "STORE", true);
	px_ctl_put_int(out, cmd->op);
	px_ctl_put_int(out, cmd->nkeys);
	for (unsigned i = 0; i < cmd->nkeys; i++)
		px_ctl_put(out, cmd->keys[i], false);
	px_ctl_put_int(out, cmd->nargs);
	for (unsigned i = 0; i < cmd->nargs; i++)
		px_ctl_put_int(out, cmd->args[i]);
	px_ctl_put(out, cmd->str != NULL ? cmd->str : "-", false);
	px_ctl_put(out, cmd->str != NULL ? "0" : "1", false);
	evbuffer_add(out, "\n", 1);
}

static int
px_ctl_cmd_decode(char **f, unsigned n, struct st_cmd *cmd)
{
	int64_t v;
	unsigned i = 1;

	memset(cmd, 0, sizeof(*cmd));
	if (i >= n || !px_ctl_int(f[i++], &v) || v < 0 || v >= ST_NOPS)
		return -1;
	cmd->op = (enum st_op)v;
	if (i >= n || !px_ctl_int(f[i++], &v) || v < 1 || v > ST_MAX_KEYS)
		return -1;
	cmd->nkeys = (unsigned)v;
	for (unsigned k = 0; k < cmd->nkeys; k++) {
		if (i >= n)
			return -1;
		cmd->keys[k] = f[i++];
	}
	if (i >= n || !px_ctl_int(f[i++], &v) || v < 0 || v > ST_MAX_ARGS)
		return -1;
	cmd->nargs = (unsigned)v;
	for (unsigned k = 0; k < cmd->nargs; k++)
		if (i >= n || !px_ctl_int(f[i++], &cmd->args[k]))
			return -1;
	if (i + 2 != n)
		return -1;
	cmd->str = strcmp(f[i + 1], "1") == 0 ? NULL : f[i];
	return 0;
}

static void
px_ctl_reply_encode(struct evbuffer *out, const struct st_reply *r)
{
	px_ctl_put(out, "OK", true);
	px_ctl_put_int(out, r->status);
	px_ctl_put(out, r->error[0] ? r->error : "-", false);
	px_ctl_put_int(out, r->nv);
	for (unsigned i = 0; i < r->nv; i++)
		px_ctl_put_int(out, r->v[i]);
	px_ctl_put_int(out, r->nstrs);
	for (unsigned i = 0; i < r->nstrs; i++)
		px_ctl_put(out, r->strs[i], false);
	evbuffer_add(out, "\n", 1);
}

/* The server, on the main thread's event base. */

static struct evconnlistener *px_ctl_listener;
static int px_ctl_fd = -1; /* bound, not yet listened on by libevent */
static char *px_ctl_path;
static struct {
	time_t started;
	unsigned generation; /* configs loaded: 1 + successful reloads */
	time_t reload_at;
	bool reload_ok;
	char reload_why[200];
} px_ctl_state;

void
px_control_reloaded(bool ok, const char *why)
{
	px_ctl_state.reload_at = time(NULL);
	px_ctl_state.reload_ok = ok;
	if (ok)
		px_ctl_state.generation++;
	snprintf(px_ctl_state.reload_why, sizeof(px_ctl_state.reload_why), "%s",
	         why != NULL ? why : "");
}

/* px_ctl_status - one line of key=value pairs. */
static void
px_ctl_status(struct evbuffer *out, const struct px_config *cfg)
{
	char why[sizeof(px_ctl_state.reload_why)];

	snprintf(why, sizeof(why), "%s", px_ctl_state.reload_why);
	for (char *p = why; *p; p++)
		if (*p == '\t' || *p == '\n' || *p == '"')
			*p = ' ';
	evbuffer_add_printf(
	    out,
	    "STATUS\tuptime=%lld connections=%lld worker_queue=%u "
	    "config=%s generation=%u store=%s last_reload=%s%s%s%s\n",
	    (long long)(time(NULL) - px_ctl_state.started),
	    px_metrics_connections(), px_workers_queued(), cfg->path,
	    px_ctl_state.generation,
	    strncmp(cfg->store, "redis", 5) == 0 ? "redis" : "memory",
	    px_ctl_state.reload_at == 0 ? "never"
	    : px_ctl_state.reload_ok    ? "ok"
	                                : "failed",
	    why[0] ? " reload_error=\"" : "", why, why[0] ? "\"" : "");
}

static void
px_ctl_request(struct bufferevent *bev, char *line)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	char *f[PX_CTL_FIELDS];
	unsigned n = px_ctl_split(line, f);
	struct px_config *cfg = px_config_current();
	int64_t secs;

	if (strcmp(f[0], "STORE") == 0) {
		struct st_cmd cmd;
		struct st_reply r;

		if (px_ctl_cmd_decode(f, n, &cmd) < 0) {
			evbuffer_add_printf(out, "ERR bad request\n");
		} else {
			st_call_sync(&cmd, cfg->store_timeout, &r);
			px_ctl_reply_encode(out, &r);
			st_reply_clear(&r);
		}
	} else if (strcmp(f[0], "STATUS") == 0) {
		px_ctl_status(out, cfg);
	} else if (strcmp(f[0], "CLOCK") == 0 && n == 2 &&
	           px_ctl_int(f[1], &secs)) {
		if (!cfg->debug_clock) {
			evbuffer_add_printf(out, "ERR debug_clock is off\n");
		} else {
			st_clock_advance(secs);
			px_log_warn("control: store clock moved %+" PRId64
			            " s (debug_clock)",
			            secs);
			evbuffer_add_printf(
			    out, "OK\t0\t-\t1\t%" PRId64 "\t0\n", st_now());
		}
	} else {
		evbuffer_add_printf(out, "ERR unknown request\n");
	}
	px_config_unref(&cfg);
}

static void
px_ctl_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	(void)arg;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		px_ctl_request(bev, line);
		free(line);
	}
	if (evbuffer_get_length(in) > PX_CTL_LINE_MAX) {
		px_log_warn("control: request too long, closed");
		bufferevent_free(bev);
	}
}

static void
px_ctl_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void
px_ctl_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
              int socklen, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(
	    evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	struct timeval tv = {30, 0};

	(void)sa;
	(void)socklen;
	(void)arg;
	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, px_ctl_read, NULL, px_ctl_event, NULL);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int
px_control_bind(const struct px_config *cfg, const char **error_r)
{
	struct sockaddr_un sun;
	struct passwd *pw;
	mode_t old;
	int fd;

	px_ctl_state.started = time(NULL);
	px_ctl_state.generation = 1;
	if (cfg->control_socket == NULL)
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(cfg->control_socket) >= sizeof(sun.sun_path)) {
		*error_r = "control_socket: path too long";
		return -1;
	}
	strcpy(sun.sun_path, cfg->control_socket);
	unlink(cfg->control_socket); /* a stale one from a crash */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*error_r = "control_socket: cannot create a socket";
		return -1;
	}
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 16) < 0) {
		umask(old);
		close(fd);
		*error_r = "control_socket: cannot bind (does its directory "
		           "exist?)";
		return -1;
	}
	umask(old);
	/* Created before privileges are dropped: the user it runs as must
	 * be able to remove it at exit. */
	if (cfg->user != NULL && geteuid() == 0 &&
	    (pw = getpwnam(cfg->user)) != NULL &&
	    chown(cfg->control_socket, pw->pw_uid, pw->pw_gid) < 0)
		px_log_warn("control_socket: chown: %s", strerror(errno));
	px_ctl_fd = fd;
	px_ctl_path = px_strdup(cfg->control_socket);
	return 0;
}

int
px_control_start(struct event_base *base, const char **error_r)
{
	if (px_ctl_fd < 0)
		return 0;
	px_ctl_listener = evconnlistener_new(
	    base, px_ctl_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, px_ctl_fd);
	if (px_ctl_listener == NULL) {
		*error_r = "control_socket: cannot listen";
		return -1;
	}
	px_ctl_fd = -1; /* the listener's now */
	return 0;
}

void
px_control_stop(void)
{
	if (px_ctl_listener != NULL)
		evconnlistener_free(px_ctl_listener);
	px_ctl_listener = NULL;
	if (px_ctl_fd >= 0)
		close(px_ctl_fd);
	px_ctl_fd = -1;
	if (px_ctl_path != NULL)
		unlink(px_ctl_path);
	free(px_ctl_path);
	px_ctl_path = NULL;
}

/* The client: `mxguard ctl`. */

struct px_ctl {
	const struct px_config *cfg;
	const char *socket_path;
	bool remote; /* through the control socket */
	int fd;
};

/* px_ctl_roundtrip - send the request in out, read one answer line into
 * a malloc'd string. */
static char *
px_ctl_roundtrip(struct px_ctl *c, struct evbuffer *out)
{
	struct evbuffer *in = evbuffer_new();
	char *line = NULL;
	size_t len;

	while (evbuffer_get_length(out) > 0)
		if (evbuffer_write(out, c->fd) <= 0)
			goto done;
	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) == NULL)
		if (evbuffer_read(in, c->fd, 65536) <= 0)
			goto done;
done:
	evbuffer_free(in);
	return line;
}

/* px_ctl_run - one store operation, here or in the daemon. */
static int
px_ctl_run(struct px_ctl *c, const struct st_cmd *cmd, struct st_reply *r)
{
	struct evbuffer *out;
	char *line, *f[PX_CTL_FIELDS];
	unsigned n, i = 1;
	int64_t v;

	memset(r, 0, sizeof(*r));
	if (!c->remote)
		return st_call_sync(cmd, c->cfg->store_timeout, r);
	out = evbuffer_new();
	px_ctl_cmd_encode(out, cmd);
	line = px_ctl_roundtrip(c, out);
	evbuffer_free(out);
	r->status = -1;
	if (line == NULL) {
		snprintf(r->error, sizeof(r->error), "no answer from mxguard");
		return -1;
	}
	n = px_ctl_split(line, f);
	if (strcmp(f[0], "OK") != 0 || n < 4) {
		snprintf(r->error, sizeof(r->error), "%s",
		         n > 0 ? line : "bad answer");
		free(line);
		return -1;
	}
	px_ctl_int(f[i++], &v);
	r->status = (int)v;
	snprintf(r->error, sizeof(r->error), "%s", f[i++]);
	if (px_ctl_int(f[i++], &v) && v >= 0 && v <= ST_MAX_V)
		r->nv = (unsigned)v;
	for (unsigned k = 0; k < r->nv && i < n; k++)
		px_ctl_int(f[i++], &r->v[k]);
	if (i < n && px_ctl_int(f[i++], &v) && v > 0) {
		r->strs = px_calloc((size_t)v, sizeof(char *));
		for (int64_t k = 0; k < v && i < n; k++)
			r->strs[r->nstrs++] = px_strdup(f[i++]);
	}
	free(line);
	return r->status;
}

static void
px_ctl_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* px_ctl_client_entity - a whitelist client: an address, or a network of
 * the greylist's size, in the form greylist.c builds keys with. */
static int
px_ctl_client_entity(const struct px_config *cfg, const char *arg, char *buf,
                     size_t size)
{
	struct px_cidr cidr;
	struct sockaddr_storage ss;
	const char *err;
	bool bare = strchr(arg, '/') == NULL;

	if (px_cidr_parse(arg, &cidr, &err) < 0) {
		fprintf(stderr, "mxguard ctl: %s: %s\n", arg, err);
		return -1;
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)cidr.family;
	if (cidr.family == AF_INET)
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, cidr.addr, 4);
	else
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, cidr.addr, 16);
	if (bare) {
		px_addr_net(&ss, 32, 128, buf, size);
		buf[strcspn(buf, "/")] = '\0';
		return 0;
	}
	unsigned want = cidr.family == AF_INET ? cfg->greylist.ipv4_prefix
	                                       : cfg->greylist.ipv6_prefix;
	if (cidr.prefix != want) {
		fprintf(stderr,
		        "mxguard ctl: %s: a client is an address or a /%u "
		        "network (greylist.ipv%c_prefix)\n",
		        arg, want, cidr.family == AF_INET ? '4' : '6');
		return -1;
	}
	px_addr_net(&ss, want, want, buf, size);
	return 0;
}

static int
px_ctl_usage(void)
{
	fprintf(stderr,
	        "usage: mxguard ctl [-c FILE] COMMAND\n"
	        "  greylist whitelist add client|sender|recipient VALUE "
	        "[SECONDS]\n"
	        "  greylist whitelist remove client|sender|recipient VALUE\n"
	        "  greylist whitelist list\n"
	        "  greylist list [MAX]\n"
	        "  reputation show ip|net|helo|domain VALUE\n"
	        "  ratelimit show NAME ENTITY\n"
	        "  ratelimit reset NAME ENTITY\n"
	        "  clock advance SECONDS          (debug_clock only)\n");
	return 2;
}

static const char *
px_ctl_wl_kind(const char *word)
{
	if (strcmp(word, "client") == 0)
		return "c";
	if (strcmp(word, "sender") == 0)
		return "s";
	if (strcmp(word, "recipient") == 0)
		return "r";
	return NULL;
}

static int
px_ctl_fail(const struct st_reply *r)
{
	fprintf(stderr, "mxguard ctl: store error: %s\n", r->error);
	return 1;
}

static int
px_ctl_whitelist(struct px_ctl *c, int argc, char **argv)
{
	const struct px_config *cfg = c->cfg;
	char entity[600], key[800];
	struct st_cmd cmd = {.nkeys = 1};
	struct st_reply r;
	const char *kind;
	int rc = 0;

	if (argc >= 1 && strcmp(argv[0], "list") == 0) {
		snprintf(key, sizeof(key), "%swl:", cfg->store_prefix);
		cmd.op = ST_KEYS;
		cmd.keys[0] = key;
		cmd.args[0] = 100000;
		cmd.nargs = 1;
		if (px_ctl_run(c, &cmd, &r) != 0)
			return px_ctl_fail(&r);
		for (unsigned i = 0; i < r.nstrs; i++) {
			const char *k = r.strs[i] + strlen(key);
			const char *name = k[0] == 'c'   ? "client"
			                   : k[0] == 's' ? "sender"
			                                 : "recipient";

			if (strlen(k) > 2)
				printf("%s %s\n", name, k + 2);
		}
		st_reply_clear(&r);
		return 0;
	}
	if (argc < 3 || (kind = px_ctl_wl_kind(argv[1])) == NULL)
		return px_ctl_usage();
	if (kind[0] == 'c') {
		if (px_ctl_client_entity(cfg, argv[2], entity, sizeof(entity)) <
		    0)
			return 1;
	} else {
		snprintf(entity, sizeof(entity), "%s", argv[2]);
		px_ctl_lower(entity);
		if (entity[0] == '\0' || strpbrk(entity, " \t<>") != NULL) {
			fprintf(stderr, "mxguard ctl: bad %s \"%s\"\n", argv[1],
			        argv[2]);
			return 1;
		}
	}
	snprintf(key, sizeof(key), "%swl:%s:%s", cfg->store_prefix, kind,
	         entity);
	cmd.keys[0] = key;
	if (strcmp(argv[0], "add") == 0 && argc <= 4) {
		int64_t ttl = 0;

		if (argc == 4 && (!px_ctl_int(argv[3], &ttl) || ttl < 0))
			return px_ctl_usage();
		char until[32];

		/* The entry's end is its value: the daemon compares it with
		 * its own clock; the TTL only collects it. */
		snprintf(until, sizeof(until), "%lld",
		         ttl > 0 ? (long long)(st_now() + ttl) : 0LL);
		cmd.op = ST_SET;
		cmd.args[0] = ttl;
		cmd.nargs = 1;
		cmd.str = until;
		if (px_ctl_run(c, &cmd, &r) != 0)
			return px_ctl_fail(&r);
		printf("whitelisted %s %s\n", argv[1], entity);
	} else if (strcmp(argv[0], "remove") == 0 && argc == 3) {
		cmd.op = ST_DEL;
		if (px_ctl_run(c, &cmd, &r) != 0)
			return px_ctl_fail(&r);
		if (r.v[0] == 0) {
			fprintf(stderr, "mxguard ctl: %s %s is not listed\n",
			        argv[1], entity);
			rc = 1;
		} else {
			printf("removed %s %s\n", argv[1], entity);
		}
	} else {
		return px_ctl_usage();
	}
	st_reply_clear(&r);
	return rc;
}

static int
px_ctl_greylist_list(struct px_ctl *c, int argc, char **argv)
{
	char key[800];
	struct st_cmd cmd = {.op = ST_KEYS, .nkeys = 1, .nargs = 1};
	struct st_reply r;
	int64_t max = 1000;

	if (argc == 1 && (!px_ctl_int(argv[0], &max) || max < 1))
		return px_ctl_usage();
	snprintf(key, sizeof(key), "%sgl:t:", c->cfg->store_prefix);
	cmd.keys[0] = key;
	cmd.args[0] = max;
	if (px_ctl_run(c, &cmd, &r) != 0)
		return px_ctl_fail(&r);
	for (unsigned i = 0; i < r.nstrs; i++) {
		struct st_cmd get = {.op = ST_GET, .nkeys = 1};
		struct st_reply g;
		int64_t first = 0, passed = 0;

		get.keys[0] = r.strs[i];
		if (px_ctl_run(c, &get, &g) != 0) {
			st_reply_clear(&r);
			return px_ctl_fail(&g);
		}
		for (unsigned k = 0; k + 1 < g.nstrs; k += 2) {
			if (strcmp(g.strs[k], "first") == 0)
				px_ctl_int(g.strs[k + 1], &first);
			else if (strcmp(g.strs[k], "passed") == 0)
				px_ctl_int(g.strs[k + 1], &passed);
		}
		if (g.nstrs > 0)
			printf("%s first=%" PRId64 " passed=%" PRId64 "\n",
			       r.strs[i] + strlen(key), first, passed);
		st_reply_clear(&g);
	}
	st_reply_clear(&r);
	return 0;
}

static int
px_ctl_reputation(struct px_ctl *c, int argc, char **argv)
{
	static const char *const kinds[][2] = {
	    {"ip", "ip"}, {"net", "net"}, {"helo", "helo"}, {"domain", "dom"}};
	char entity[600], key[800];
	struct st_cmd cmd = {.op = ST_REP_GET, .nkeys = 1, .nargs = 2};
	struct st_reply r;
	const char *kind = NULL;

	if (argc != 3 || strcmp(argv[0], "show") != 0)
		return px_ctl_usage();
	for (unsigned i = 0; i < 4; i++)
		if (strcmp(argv[1], kinds[i][0]) == 0)
			kind = kinds[i][1];
	if (kind == NULL)
		return px_ctl_usage();
	snprintf(entity, sizeof(entity), "%s", argv[2]);
	px_ctl_lower(entity);
	snprintf(key, sizeof(key), "%srep:%s:%s", c->cfg->store_prefix, kind,
	         entity);
	cmd.keys[0] = key;
	cmd.args[0] = st_now();
	cmd.args[1] = c->cfg->reputation.half_life;
	if (px_ctl_run(c, &cmd, &r) != 0)
		return px_ctl_fail(&r);
	printf("%s %s accepted=%.2f tagged=%.2f rejected=%.2f "
	       "greylist_passed=%.2f\n",
	       argv[1], entity, (double)r.v[ST_REP_ACCEPTED] / 100,
	       (double)r.v[ST_REP_TAGGED] / 100,
	       (double)r.v[ST_REP_REJECTED] / 100,
	       (double)r.v[ST_REP_GREYPASS] / 100);
	st_reply_clear(&r);
	return 0;
}

static int
px_ctl_ratelimit(struct px_ctl *c, int argc, char **argv)
{
	char entity[600], key[800];
	struct st_cmd cmd = {.nkeys = 1};
	struct st_reply r;
	bool known = false;

	if (argc != 3)
		return px_ctl_usage();
	for (size_t i = 0; i < c->cfg->nratelimit; i++)
		if (strcmp(c->cfg->ratelimit[i].name, argv[1]) == 0)
			known = true;
	/* The unknown-recipient count per client (filters/harvest.c) is
	 * such a bucket too; bucket names are symbols, never lower case. */
	if (strcmp(argv[1], "unknown_recipients") == 0)
		known = true;
	if (!known) {
		fprintf(stderr, "mxguard ctl: no ratelimit named %s\n",
		        argv[1]);
		return 1;
	}
	snprintf(entity, sizeof(entity), "%s", argv[2]);
	px_ctl_lower(entity);
	snprintf(key, sizeof(key), "%srl:%s:%s", c->cfg->store_prefix, argv[1],
	         entity);
	cmd.keys[0] = key;
	if (strcmp(argv[0], "show") == 0) {
		cmd.op = ST_GET;
		if (px_ctl_run(c, &cmd, &r) != 0)
			return px_ctl_fail(&r);
		printf("%s %s", argv[1], entity);
		for (unsigned k = 0; k + 1 < r.nstrs; k += 2)
			if (strcmp(r.strs[k], "level") == 0)
				printf(" level=%s", r.strs[k + 1]);
		printf("%s\n", r.nstrs == 0 ? " level=0" : "");
	} else if (strcmp(argv[0], "reset") == 0) {
		cmd.op = ST_DEL;
		if (px_ctl_run(c, &cmd, &r) != 0)
			return px_ctl_fail(&r);
		printf("reset %s %s\n", argv[1], entity);
	} else {
		return px_ctl_usage();
	}
	st_reply_clear(&r);
	return 0;
}

static int
px_ctl_clock(struct px_ctl *c, int argc, char **argv)
{
	struct evbuffer *out;
	int64_t secs;
	char *line;

	if (argc != 2 || strcmp(argv[0], "advance") != 0 ||
	    !px_ctl_int(argv[1], &secs))
		return px_ctl_usage();
	if (!c->remote) {
		fprintf(stderr, "mxguard ctl: the clock is a running "
		                "daemon's: set control_socket\n");
		return 1;
	}
	out = evbuffer_new();
	evbuffer_add_printf(out, "CLOCK\t%" PRId64 "\n", secs);
	line = px_ctl_roundtrip(c, out);
	evbuffer_free(out);
	if (line == NULL || strncmp(line, "OK", 2) != 0) {
		fprintf(stderr, "mxguard ctl: %s\n",
		        line ? line : "no answer from mxguard");
		free(line);
		return 1;
	}
	printf("clock advanced %" PRId64 " s\n", secs);
	free(line);
	return 0;
}

static int
px_ctl_status_cmd(struct px_ctl *c)
{
	struct evbuffer *out = evbuffer_new();
	char *line;

	evbuffer_add_printf(out, "STATUS\n");
	line = px_ctl_roundtrip(c, out);
	evbuffer_free(out);
	if (line == NULL || strncmp(line, "STATUS\t", 7) != 0) {
		fprintf(stderr, "mxguard ctl: %s\n",
		        line ? line : "no answer from mxguard");
		free(line);
		return 1;
	}
	printf("%s\n", line + 7);
	free(line);
	return 0;
}

static int
px_ctl_connect(struct px_ctl *c)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->socket_path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 ||
	    connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "mxguard ctl: %s: %s (is mxguard running?)\n",
		        c->socket_path, strerror(errno));
		return -1;
	}
	return 0;
}

int
px_ctl_main(const char *config_path, const char *socket_path, int argc,
            char **argv)
{
	struct px_config *cfg = NULL;
	struct px_ctl c = {.fd = -1, .remote = true};
	char *err = NULL;
	const char *lerr = NULL;
	int rc;

	if (argc < 1)
		return px_ctl_usage();
	if (socket_path != NULL) {
		/* No config needed (it may be the broken one a reload
		 * refused): only what the daemon answers by itself. */
		c.socket_path = socket_path;
		if (strcmp(argv[0], "status") != 0 &&
		    strcmp(argv[0], "clock") != 0) {
			fprintf(stderr, "mxguard ctl: -s works for status and "
			                "clock; the others need -c\n");
			return 2;
		}
		if (px_ctl_connect(&c) < 0)
			rc = 1;
		else if (strcmp(argv[0], "status") == 0 && argc == 1)
			rc = px_ctl_status_cmd(&c);
		else if (strcmp(argv[0], "clock") == 0)
			rc = px_ctl_clock(&c, argc - 1, argv + 1);
		else
			rc = px_ctl_usage();
		if (c.fd >= 0)
			close(c.fd);
		return rc;
	}
	if (px_config_load(config_path, &cfg, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	c.cfg = cfg;
	/* Memory state lives in the daemon; Redis state can be reached
	 * directly.  The clock is always the daemon's. */
	c.remote = strcmp(cfg->store, "memory") != 0
	               ? strcmp(argv[0], "clock") == 0 ||
	                     strcmp(argv[0], "status") == 0
	               : true;
	if (c.remote) {
		if (cfg->control_socket == NULL) {
			fprintf(stderr,
			        "mxguard ctl: the memory store lives in the "
			        "running mxguard: set control_socket in %s\n",
			        config_path);
			px_config_unref(&cfg);
			return 1;
		}
		c.socket_path = cfg->control_socket;
		if (px_ctl_connect(&c) < 0) {
			if (c.fd >= 0)
				close(c.fd);
			px_config_unref(&cfg);
			return 1;
		}
	} else if (st_open(cfg, &lerr) < 0) {
		fprintf(stderr, "mxguard ctl: store %s: %s\n", cfg->store,
		        lerr);
		px_config_unref(&cfg);
		return 1;
	}
	if (strcmp(argv[0], "greylist") == 0 && argc >= 2 &&
	    strcmp(argv[1], "whitelist") == 0)
		rc = px_ctl_whitelist(&c, argc - 2, argv + 2);
	else if (strcmp(argv[0], "greylist") == 0 && argc >= 2 &&
	         strcmp(argv[1], "list") == 0)
		rc = px_ctl_greylist_list(&c, argc - 2, argv + 2);
	else if (strcmp(argv[0], "reputation") == 0)
		rc = px_ctl_reputation(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "ratelimit") == 0)
		rc = px_ctl_ratelimit(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "clock") == 0)
		rc = px_ctl_clock(&c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "status") == 0 && argc == 1)
		rc = px_ctl_status_cmd(&c);
	else
		rc = px_ctl_usage();
	if (c.fd >= 0)
		close(c.fd);
	if (!c.remote)
		st_close();
	px_config_unref(&cfg);
	return rc;
}
