/* SPDX-License-Identifier: MIT */
/*
 * main.c - mxguard's command line, startup, signals and stop.
 *
 *   mxguard [-d] -c FILE      run (foreground unless -d; logs to stderr,
 *                             or syslog with -d)
 *   mxguard -t -c FILE        check FILE: exit 0, or print FILE:LINE:
 *                             message and exit 1
 *   mxguard check [-c FILE] [-j N] [--json] MSG.eml...
 *                             score messages offline (check.c)
 *   mxguard -V                print the version
 *
 * Startup order: load the config, bind the listeners (as root), drop to
 * user/group, probe the backend's capabilities, start the worker pool and
 * one event loop per core.  The main thread then only waits for signals:
 * SIGHUP reloads the config (a bad one is refused and the old one stays),
 * SIGTERM/SIGINT stop accepting and give sessions timeouts.shutdown seconds
 * to finish their transactions.
 */
#include <errno.h>
#include <limits.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "check.h"
#include "config.h"
#include "dns.h"
#include "listener.h"
#include "log.h"
#include "control.h"
#include "loop.h"
#include "metrics.h"
#include "notify.h"
#include "store.h"
#include "relay.h"
#include "rule.h"
#include "workers.h"

#define PX_DEFAULT_CONFIG "/etc/mxguard/mxguard.conf"

static const char *px_config_path = PX_DEFAULT_CONFIG;
static struct event_base *px_main_base;

static void
px_usage(FILE *fp)
{
	fprintf(fp,
	        "usage: mxguard [-d] [-c FILE]\n"
	        "       mxguard -t [-c FILE]\n"
	        "       mxguard ctl [-c FILE | -s SOCKET] COMMAND...\n"
	        "       mxguard check [-c FILE] [-j N] [--json] MSG.eml...\n"
	        "       mxguard -V\n");
}

static int
px_drop_privileges(const struct px_config *cfg)
{
	struct passwd *pw = NULL;
	gid_t gid;

	if (cfg->user == NULL)
		return 0;
	pw = getpwnam(cfg->user);
	if (pw == NULL) {
		px_log_err("unknown user \"%s\"", cfg->user);
		return -1;
	}
	gid = pw->pw_gid;
	if (cfg->group != NULL) {
		struct group *gr = getgrnam(cfg->group);

		if (gr == NULL) {
			px_log_err("unknown group \"%s\"", cfg->group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		px_log_err("cannot drop privileges to %s: %s", cfg->user,
		           strerror(errno));
		return -1;
	}
	if (access(cfg->spool.dir, W_OK | X_OK) < 0)
		px_log_warn(
		    "spool dir %s is not writable by %s: large messages "
		    "will be refused",
		    cfg->spool.dir, cfg->user);
	return 0;
}

static bool
px_same_listeners(const struct px_config *a, const struct px_config *b)
{
	if (a->nlisten != b->nlisten)
		return false;
	for (size_t i = 0; i < a->nlisten; i++)
		if (strcmp(a->listen[i].address, b->listen[i].address) != 0 ||
		    a->listen[i].mode != b->listen[i].mode ||
		    a->listen[i].proxy_protocol !=
		        b->listen[i].proxy_protocol ||
		    a->listen[i].tls.implicit != b->listen[i].tls.implicit)
			return false;
	return true;
}

static void
px_on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct px_config *cfg = NULL, *old;
	char *err = NULL;

	px_notify("RELOADING=1");
	if (px_config_load(px_config_path, &cfg, &err) < 0) {
		px_log_err(
		    "reload failed, keeping the running configuration: %s",
		    err);
		px_control_reloaded(false, err);
		free(err);
		px_notify("READY=1\nSTATUS=reload failed, running the old "
		          "configuration");
		return;
	}
	if (cfg->recipients_redis_key != NULL && !st_is_shared()) {
		/* The store is chosen at startup: a set in Redis cannot be
		 * asked through the memory store this process runs. */
		err = px_strdup("recipients_redis needs the Redis store, and "
		                "the running store is \"memory\" (the store "
		                "changes only at a restart)");
		px_log_err("reload failed, keeping the running "
		           "configuration: %s",
		           err);
		px_control_reloaded(false, err);
		free(err);
		px_config_unref(&cfg);
		px_notify("READY=1\nSTATUS=reload failed, running the old "
		          "configuration");
		return;
	}
	old = px_config_current();
	if (!px_same_listeners(old, cfg))
		px_log_warn("reload: listener changes take effect only after a "
		            "restart");
	px_config_unref(&old);
	if (px_config_relay_warning(cfg) != NULL)
		px_log_warn("%s", px_config_relay_warning(cfg));
	px_config_set_current(cfg);
	px_log_set_level((enum px_log_level)cfg->log.level);
	px_log_info("reload: configuration %s loaded", px_config_path);
	px_control_reloaded(true, NULL);
	px_notify("READY=1\nSTATUS=accepting mail");
}

static void
px_on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct px_config *cfg = px_config_current();

	px_notify("STOPPING=1");
	px_log_info("stop: signal %d, no new connections; sessions have %.0f s "
	            "to finish",
	            (int)sig, cfg->timeouts.shutdown);
	px_listeners_stop(cfg->timeouts.shutdown);
	px_config_unref(&cfg);
	event_base_loopexit(px_main_base, NULL);
}

static unsigned
px_ncores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned)n : 1;
}

int
main(int argc, char **argv)
{
	bool check_only = false, daemonize = false;
	struct px_config *cfg = NULL;
	char *err = NULL;
	const char *lerr = NULL;
	struct px_loop **loops;
	unsigned nloops;
	int ch;

	if (argc >= 2 && strcmp(argv[1], "ctl") == 0) {
		/* mxguard ctl [-c FILE | -s SOCKET] COMMAND... */
		const char *sock = NULL;
		int i = 2;

		if (argc >= 4 && strcmp(argv[2], "-c") == 0) {
			px_config_path = argv[3];
			i = 4;
		} else if (argc >= 4 && strcmp(argv[2], "-s") == 0) {
			sock = argv[3];
			i = 4;
		}
		return px_ctl_main(px_config_path, sock, argc - i, argv + i);
	}
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return px_check_main(argc - 2, argv + 2);
	while ((ch = getopt(argc, argv, "c:dhtV")) != -1) {
		switch (ch) {
		case 'c':
			px_config_path = optarg;
			break;
		case 'd':
			daemonize = true;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("mxguard 0.1.0\n");
			return 0;
		case 'h':
			px_usage(stdout);
			return 0;
		default:
			px_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		px_usage(stderr);
		return 2;
	}
	if (px_config_load(px_config_path, &cfg, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	if (!check_only) {
		/* -d changes to /: a reload must still find a relative -c. */
		static char abs_path[PATH_MAX];

		if (realpath(px_config_path, abs_path) != NULL)
			px_config_path = abs_path;
	}
	if (check_only) {
		if (px_config_relay_warning(cfg) != NULL)
			fprintf(stderr, "%s: warning: %s\n", px_config_path,
			        px_config_relay_warning(cfg));
		char summary[512];

		rule_set_summary(cfg->ruleset, summary, sizeof(summary));
		printf("%s: rules: %s\n", px_config_path, summary);
		printf("%s: configuration OK\n", px_config_path);
		px_config_unref(&cfg);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	px_log_init("mxguard", daemonize || cfg->log.syslog, cfg->log.facility);
	px_log_set_level((enum px_log_level)cfg->log.level);
	if (px_config_relay_warning(cfg) != NULL)
		px_log_warn("%s", px_config_relay_warning(cfg));
	/* Signals are caught from before the port is open: a SIGHUP from a
	 * script that saw the port listen must not kill us (its default
	 * action); signals that come during startup are handled once the main
	 * loop runs. */
	px_main_base = event_base_new();
	struct event *ev_hup =
	    evsignal_new(px_main_base, SIGHUP, px_on_sighup, NULL);
	struct event *ev_term =
	    evsignal_new(px_main_base, SIGTERM, px_on_sigterm, NULL);
	struct event *ev_int =
	    evsignal_new(px_main_base, SIGINT, px_on_sigterm, NULL);

	evsignal_add(ev_hup, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	nloops = cfg->loops ? cfg->loops : px_ncores();
	if (px_metrics_bind(cfg, &lerr) < 0 ||
	    px_control_bind(cfg, &lerr) < 0 ||
	    px_listeners_bind(cfg, nloops, &lerr) < 0 ||
	    px_drop_privileges(cfg) < 0 || (daemonize && daemon(0, 0) < 0)) {
		if (lerr != NULL)
			px_log_err("%s", lerr);
		else if (daemonize && errno != 0)
			px_log_err("cannot start: %s", strerror(errno));
		px_control_stop();
		px_metrics_stop();
		event_free(ev_hup);
		event_free(ev_term);
		event_free(ev_int);
		event_base_free(px_main_base);
		px_config_unref(&cfg);
		return 1;
	}
	if (daemonize) {
		/* The child of daemon(): the epoll instance and the signal
		 * pipe must be its own. */
		event_reinit(px_main_base);
		px_log_init("mxguard", true, cfg->log.facility); /* new pid */
	}
	if (px_backend_probe(
	        cfg, cfg->timeouts.backend < 5 ? cfg->timeouts.backend : 5) < 0)
		px_log_warn("backend %s did not answer the startup probe; "
		            "advertising defaults until it does",
		            cfg->backend_str);
	if (flt_dns_init(cfg, &lerr) < 0) {
		px_log_err("DNS resolver: %s", lerr);
		return 1;
	}
	if (st_open(cfg, &lerr) < 0) {
		px_log_err("store %s: %s", cfg->store, lerr);
		px_control_stop();
		return 1;
	}
	/* Current before the control and metrics threads serve: a request
	 * already waiting on their ports (bound above) is served at once,
	 * with the current configuration (a scrape at once used to find
	 * NULL). */
	px_config_set_current(cfg);
	if (px_control_start(px_main_base, &lerr) < 0 ||
	    px_metrics_start(&lerr) < 0) {
		px_log_err("%s", lerr);
		return 1;
	}

	if (px_workers_start(cfg->workers) < 0) {
		px_log_err("cannot start the worker pool");
		return 1;
	}
	loops = px_calloc(nloops, sizeof(*loops));
	for (unsigned i = 0; i < nloops; i++) {
		loops[i] = px_loop_new(i);
		px_listeners_attach(loops[i], nloops);
	}
	for (unsigned i = 0; i < nloops; i++)
		if (px_loop_start(loops[i]) < 0) {
			px_log_err("cannot start event loop %u", i);
			return 1;
		}

	px_log_info(
	    "mxguard 0.1.0 started: %zu listeners, %u loops, backend %s",
	    cfg->nlisten, nloops, cfg->backend_str);
	px_notify("READY=1\nSTATUS=accepting mail");
	event_base_dispatch(px_main_base);

	for (unsigned i = 0; i < nloops; i++)
		px_loop_join(loops[i]);
	px_workers_stop();
	px_control_stop();
	px_metrics_stop();
	st_close(); /* Redis contexts live on the loops' bases */
	flt_dns_shutdown();
	for (unsigned i = 0; i < nloops; i++)
		px_loop_free(&loops[i]);
	free(loops);
	event_free(ev_hup);
	event_free(ev_term);
	event_free(ev_int);
	event_base_free(px_main_base);
	px_config_set_current(NULL);
	px_log_info("mxguard stopped");
	return 0;
}
