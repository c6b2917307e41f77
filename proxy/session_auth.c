/* SPDX-License-Identifier: MIT */
/*
 * session_auth.c - SMTP AUTH passthrough (RFC 4954) on submission
 * listeners: the exchange is relayed to the backend, which decides.
 */
#include "session_priv.h"

#include <event2/event.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "txnlog.h"

/*
 * SMTP AUTH passthrough (RFC 4954): on a submission listener under TLS the
 * client's AUTH line and each SASL response go to the backend as they are,
 * and each backend reply (334 challenges, then 235 or an error) comes back
 * as it is: the backend checks the password, mxguard never sees it in the
 * clear beyond relaying it and never logs it.  The backend connection then
 * belongs to this session (never pooled).  The user name for the log and
 * sender_login_match is read from the PLAIN (RFC 4616) or LOGIN exchange.
 */

/* px_session_auth_clear - the exchange is over (either way). */
void
px_session_auth_clear(struct px_session *s)
{
	if (s->auth_line != NULL)
		explicit_bzero(s->auth_line, strlen(s->auth_line));
	free(s->auth_line);
	free(s->etrn_line);
	s->auth_line = NULL;
	s->auth_expect = false;
	s->auth_nresp = 0;
}

/* px_sasl_user - decode one base64 SASL response and take the user name:
 * PLAIN "authzid NUL authcid NUL passwd" gives authcid, LOGIN's first
 * response is the name.  Unprintable names are not kept. */
static void
px_sasl_user(struct px_session *s, const char *b64, size_t len)
{
	unsigned char out[768];
	int n, pad = 0;
	const unsigned char *user = out;
	size_t ulen;

	free(s->auth_cand);
	s->auth_cand = NULL;
	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(out) - 1)
		return;
	n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len);
	if (n < 0)
		goto wipe;
	pad = (b64[len - 1] == '=') + (len > 1 && b64[len - 2] == '=');
	n -= pad;
	if (s->auth_mech == PX_AUTH_PLAIN) {
		const unsigned char *z = memchr(out, '\0', (size_t)n), *z2;

		if (z == NULL)
			goto wipe;
		user = z + 1;
		z2 = memchr(user, '\0', (size_t)(out + n - user));
		if (z2 == NULL)
			goto wipe;
		ulen = (size_t)(z2 - user);
	} else {
		ulen = (size_t)n;
	}
	if (ulen == 0 || ulen > 255)
		goto wipe;
	for (size_t i = 0; i < ulen; i++)
		if (user[i] < 0x21 || user[i] == 0x7f)
			goto wipe;
	s->auth_cand = px_strndup((const char *)user, ulen);
wipe:
	explicit_bzero(out, sizeof(out));
}

/* px_session_auth_send - the backend is ready: the AUTH line. */
void
px_session_auth_send(struct px_session *s)
{
	s->op = OP_AUTH;
	px_relay_command(s->relay, s->auth_line, strlen(s->auth_line));
	px_session_auth_clear(s);
}

/* px_session_auth_reply - the backend's answer to an AUTH step. */
void
px_session_auth_reply(struct px_session *s, const struct px_relay_result *res)
{
	char user[600];

	if (res->status != PX_RELAY_REPLY) {
		px_log_warn("%016llx backend lost during AUTH: %s",
		            (unsigned long long)s->id,
		            res->why ? res->why : "failed");
		px_reply(s, 454, "4.7.0", "Temporary authentication failure");
		px_session_auth_clear(s);
		px_session_drop_relay(s);
		px_session_done(s);
		return;
	}
	px_log_str(user, sizeof(user), s->auth_cand);
	if (res->code == 334) {
		/* A challenge: the client's next line is the response. */
		px_write_reply(s, res->reply, res->reply_len);
		s->auth_expect = true;
		px_session_done(s);
		return;
	}
	s->auth_expect = false;
	s->auth_nresp = 0;
	if (res->code == 235) {
		px_write_reply(s, res->reply, res->reply_len);
		s->authenticated = true;
		free(s->auth_user);
		s->auth_user = px_strdup(s->auth_cand ? s->auth_cand : "-");
		flt_chain_fact_set(s->chain, FLT_FACT_AUTHENTICATED);
		px_relay_set_private(s->relay);
		px_log_info("%016llx auth result=ok user=%s mech=%s",
		            (unsigned long long)s->id, user,
		            s->auth_mech == PX_AUTH_PLAIN ? "PLAIN" : "LOGIN");
		px_session_done(s);
		return;
	}
	/* 535, 454, 501 (cancelled)...: the backend's words. */
	if (!px_reply_backend(s, res, false)) {
		px_session_drop_relay(s);
	} else {
		px_log_info("%016llx auth result=fail user=%s mech=%s code=%d",
		            (unsigned long long)s->id, user,
		            s->auth_mech == PX_AUTH_PLAIN ? "PLAIN" : "LOGIN",
		            res->code);
	}
	px_session_done(s);
}

/* px_session_auth_response - a client line in the middle of an exchange:
 * to the backend as it is ("*" cancels there, RFC 4954 4). */
void
px_session_auth_response(struct px_session *s, char *line, size_t len)
{
	s->auth_expect = false;
	if (s->auth_nresp++ == 0 && s->auth_cand == NULL)
		px_sasl_user(s, line, len);
	if (s->relay == NULL || !px_relay_usable(s->relay)) {
		explicit_bzero(line, len);
		px_reply(s, 454, "4.7.0", "Temporary authentication failure");
		px_session_drop_relay(s);
		return;
	}
	px_session_set_busy(s);
	s->op = OP_AUTH;
	px_relay_command(s->relay, line, len);
	explicit_bzero(line, len);
}

void
px_cmd_auth(struct px_session *s, const struct px_cmd *cmd)
{
	struct px_caps caps;
	bool known = px_backend_caps_get(&caps);
	const char *arg = cmd->arg.p, *sp;
	size_t alen = cmd->arg.len, mlen;
	char *line;

	if (s->li.mode != PX_MODE_SUBMISSION || !known ||
	    !(caps.auth & (PX_AUTH_PLAIN | PX_AUTH_LOGIN))) {
		px_reply_error(s, 502, "5.5.1",
		               "Error: command not implemented");
		return;
	}
	if (!s->tls) {
		px_reply_error(
		    s, 538, "5.7.11",
		    "Encryption required for requested authentication "
		    "mechanism");
		return;
	}
	if (s->helo == NULL || !s->esmtp) {
		px_reply_error(s, 503, "5.5.1", "Error: send EHLO first");
		return;
	}
	if (s->authenticated) {
		px_reply_error(s, 503, "5.5.1", "Error: already authenticated");
		return;
	}
	if (s->txn.active) {
		px_reply_error(s, 503, "5.5.1",
		               "Error: MAIL transaction in progress");
		return;
	}
	sp = memchr(arg, ' ', alen);
	mlen = sp ? (size_t)(sp - arg) : alen;
	s->auth_mech = 0;
	if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0)
		s->auth_mech = PX_AUTH_PLAIN;
	else if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0)
		s->auth_mech = PX_AUTH_LOGIN;
	if (s->auth_mech == 0 || !(caps.auth & s->auth_mech)) {
		px_reply_error(s, 504, "5.5.4",
		               "Error: unsupported authentication mechanism");
		return;
	}
	free(s->auth_cand);
	s->auth_cand = NULL;
	s->auth_nresp = 0;
	if (sp != NULL) {
		/* An initial response (RFC 4954 4): the first response. */
		px_sasl_user(s, sp + 1, alen - mlen - 1);
		s->auth_nresp = 1;
	}
	line = px_malloc(alen + 6);
	memcpy(line, "AUTH ", 5);
	memcpy(line + 5, arg, alen);
	line[alen + 5] = '\0';
	s->auth_line = line;
	px_session_set_busy(s);
	if (s->relay == NULL || !px_relay_usable(s->relay))
		s->want_route = 0; /* AUTH is the default backend's */
	if (px_session_relay_ready(s))
		px_session_auth_send(s);
}
