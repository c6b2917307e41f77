/* SPDX-License-Identifier: MIT */
/*
 * session_priv.h - the client session's state, shared by session.c (the
 * command loop, MAIL/RCPT/DATA/BDAT, the relay), session_tls.c (STARTTLS,
 * implicit TLS), session_auth.c (AUTH passthrough) and session_headers.c
 * (Received, Authentication-Results, X-Spam-*, the Subject tag).  Nothing
 * outside these files includes it: the rest of mxguard sees session.h.
 */
#ifndef MX_SESSION_PRIV_H
#define MX_SESSION_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "authres.h"
#include "bdat.h"
#include "data.h"
#include "filter.h"
#include "listener.h"
#include "relay.h"
#include "session.h"
#include "smtp_parse.h"
#include "sockio.h"

struct bufferevent;
struct event;
struct px_rcpt_lookup;
struct px_spool;
struct st_req;

/* Stop reading a client whose unread input passes this (pipelined commands
 * while we wait, or a flood); it resumes as the buffer drains. */
#define PX_IN_HIGH (1024 * 1024)
/* Stop handling commands while this much output is unsent (a client that
 * pipelines without reading). */
#define PX_OUT_HIGH (256 * 1024)

enum px_sstate {
	S_PROXY = 0, /* waiting for the PROXY header */
	S_GREET,     /* greet_delay running, or connect filters */
	S_CMD,       /* reading commands */
	S_DATA,      /* reading message data */
	S_BDAT,      /* reading a BDAT chunk (RFC 3030) */
	S_TLS,       /* TLS handshake (after STARTTLS, or implicit) */
};

/* Where a transaction ended, for the log. */
enum px_stage {
	ST_CONNECT = 0,
	ST_HELO,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_EOM,
};

/* What the session waits for from the relay. */
enum px_relay_op {
	OP_NONE = 0,
	OP_OPEN,
	OP_XFORWARD,
	OP_MAIL,
	OP_RCPT,
	OP_RSET,        /* ours (after a refused message): no reply */
	OP_RSET_CLIENT, /* the client's RSET: reply 250 after */
	OP_RSET_HELO,   /* HELO/EHLO in a transaction: its filters after */
	OP_RSET_ROUTE,  /* the first recipient goes to another backend */
	OP_MESSAGE,
	OP_AUTH, /* an AUTH line or SASL response relayed */
	OP_ETRN, /* an ETRN relayed (RFC 1985) */
};

struct px_txn {
	bool active; /* MAIL accepted */
	unsigned id;
	unsigned route;         /* the backend holding our MAIL (routes) */
	char *from;             /* mailbox, "" for <> */
	char *mail_line;        /* what we send the backend */
	char *first_rcpt;       /* first accepted recipient */
	char *rcpt;             /* the recipient being handled */
	char *rcpt_line;        /* what we send the backend */
	unsigned nrcpt;         /* accepted */
	unsigned nrcpt_seen;    /* RCPT commands tried */
	bool rcpt_refused_perm; /* a RCPT got a 5xx */
	bool rcpt_waiting;      /* the next reply answers a RCPT (metrics) */
	struct timespec eod;    /* end of data, for the decision time */
	struct timespec sent;   /* the message went to the backend */
	long checks_ms;         /* end of data to the decision; -1: none */
	long backend_ms;        /* message sent to final reply; -1: none */
	bool smtputf8;
	bool tagged;
	bool too_big;
	bool spool_error;
	bool bdat;       /* the message comes in BDAT chunks */
	bool binarymime; /* MAIL said BODY=BINARYMIME (RFC 3030 3) */
	enum px_stage stage;
	struct timespec start;
	char reply[512];    /* our last reply line, for the log */
	char backend[512];  /* the backend's last reply line */
	bool backend_final; /* our last reply was the backend's */
	size_t size;
};

struct px_session {
	uint64_t id;
	struct px_loop *loop;
	struct event_base *base;
	struct px_config *cfg;
	struct px_listen_info li;
	struct bufferevent *bev; /* the write side (and the socket) */
	struct px_reader *rd;    /* the read side */
	int fd; /* ours until TLS starts, then the TLS bufferevent's (-1) */
	/* TLS (RFC 3207, RFC 8314): the listener's settings (in s->cfg),
	 * NULL without; what the handshake gave. */
	const struct px_listen_tls *tls_cfg;
	bool tls;
	bool tls_pending; /* STARTTLS answered, 220 not yet sent */
	/* OpenSSL's static names (SSL_get_version, SSL_CIPHER_get_name):
	 * valid for the life of the process. */
	const char *tls_version;
	const char *tls_cipher;
	int tls_bits, tls_alg_bits;
	struct sockaddr_storage client;
	char client_ip[48];
	uint16_t client_port;
	bool counted;       /* holds a px_conn_acquire() slot */
	bool relay_client;  /* in relay_networks: may relay anywhere */
	bool authenticated; /* SMTP AUTH succeeded: may relay anywhere */
	/* SMTP AUTH passthrough (RFC 4954): the backend decides. */
	char *auth_user;     /* once authenticated */
	char *auth_line;     /* SECURITY: secret; wiped when sent */
	char *etrn_line;     /* an ETRN waiting for the backend to open */
	char *auth_cand;     /* the user name the exchange carries */
	unsigned auth_mech;  /* PX_AUTH_PLAIN / PX_AUTH_LOGIN */
	unsigned auth_nresp; /* SASL responses relayed so far */
	bool auth_expect;    /* the next client line is a SASL response */
	const char *proxy_version;
	enum px_sstate state;
	bool busy;
	bool in_run; /* inside px_session_run: replies are flushed at its end */
	bool closing;
	bool eof;
	bool skip_line; /* discarding the rest of an overlong line */
	bool stop_after_txn;
	unsigned errors;
	unsigned ntxn;          /* transactions started */
	unsigned unknown_rcpts; /* RCPTs refused as unknown (5.1.x) */
	/* limits.unknown_recipients_per_client (filters/harvest.c). */
	struct st_req *harvest_req;  /* a count in flight */
	struct st_req *harvest_read; /* the RCPT's read of the count */
	unsigned harvest_unsent;     /* unknowns seen while one was */
	bool harvest_over;           /* the client is at the limit */
	/* The RCPT waiting for recipients_redis (rcpt_lookup.h). */
	struct px_rcpt_lookup *rcpt_lookup;
	bool rcpt_async; /* this RCPT waited: its end calls done */
	char *helo;
	bool esmtp;
	/* What we advertised in EHLO. */
	bool adv_smtputf8;
	bool adv_dsn;
	bool adv_binarymime; /* BINARYMIME offered in the last EHLO reply */
	unsigned long long adv_size;
	/* Filters. */
	struct flt_session fs;
	struct flt_chain *chain;
	struct flt_verdict
	    early; /* connect/HELO hard verdict, applied at RCPT */
	/* Backend. */
	struct px_relay *relay;
	bool backend_txn;    /* the backend has a MAIL in progress */
	unsigned want_route; /* the backend new relays connect to */
	bool routing;        /* moving the MAIL to the first RCPT's route */
	enum px_relay_op op;
	char *headers;
	/* DATA. */
	struct px_data_decoder dec;
	/* BDAT (RFC 3030): the chunk being read, and the message's checks. */
	struct px_bdat_check bdat;
	unsigned long long bdat_left; /* octets of the chunk still to read */
	unsigned long long bdat_size; /* the chunk's announced size */
	bool bdat_last;               /* the chunk is the LAST one */
	int bdat_keep; /* PX_BDAT_KEEP, or why the octets are discarded */
	struct px_authres_strip *arstrip; /* allocated at the first DATA */
	struct px_spool *spool;
	struct px_txn txn;
	char *line;
	struct event *greet_ev;
	struct event *free_ev;
	struct timespec start;
};

/* session.c: replies, state, the relay */
void px_write_reply(struct px_session *s, const char *buf, size_t len);
void px_reply(struct px_session *s, int code, const char *enh, const char *fmt,
              ...) __attribute__((format(printf, 4, 5)));
void px_reply_error(struct px_session *s, int code, const char *enh,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
bool px_reply_backend(struct px_session *s, const struct px_relay_result *res,
                      bool allow_2xx);
void px_session_set_busy(struct px_session *s);
void px_session_done(struct px_session *s);
void px_session_close(struct px_session *s, const char *reason);
void px_session_drop_relay(struct px_session *s);
void px_session_drop_socket(struct px_session *s);
void px_session_flushed(struct bufferevent *bev, void *arg);
void px_session_greet_rest(struct px_session *s);
void px_session_on_read(void *arg, enum px_read_what what);
void px_session_eventcb(struct bufferevent *bev, short what, void *arg);
void px_session_open_backend(struct px_session *s);
void px_session_relay_cb(void *arg, const struct px_relay_result *res);
long px_ms_since(const struct timespec *t0);
void px_reply_policy(struct px_session *s, int code, const char *enh,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void px_reply_relay_failure(struct px_session *s,
                            const struct px_relay_result *res);
void px_session_backend_lost(struct px_session *s);
bool px_session_relay_ready(struct px_session *s);
void px_session_message_init(struct px_session *s);
bool px_session_rset_backend(struct px_session *s, enum px_relay_op op);
void px_session_run(struct px_session *s);
void px_session_send_mail(struct px_session *s);
void px_session_set_timeout(struct px_session *s);
void px_txn_end(struct px_session *s, const char *result);

/* session_data.c: the message (DATA and BDAT) and the end of data */
void px_cmd_bdat(struct px_session *s, const struct px_cmd *cmd);
bool px_session_bdat_input(struct px_session *s);
bool px_session_data_input(struct px_session *s);

/* session_auth.c: AUTH passthrough (RFC 4954) */
void px_cmd_auth(struct px_session *s, const struct px_cmd *cmd);
void px_session_auth_clear(struct px_session *s);
void px_session_auth_send(struct px_session *s);
void px_session_auth_reply(struct px_session *s,
                           const struct px_relay_result *res);
void px_session_auth_response(struct px_session *s, char *line, size_t len);

/* session_tls.c: STARTTLS and implicit TLS (RFC 3207, RFC 8314) */
void px_cmd_starttls(struct px_session *s);
void px_session_tls_start(struct px_session *s);

/* session_headers.c: what is prepended to the message */
void px_session_build_headers(struct px_session *s, bool spam);
size_t px_session_subject(struct px_session *s);

#endif
