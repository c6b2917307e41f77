/* SPDX-License-Identifier: MIT */
/*
 * config_tls.c - a listener's TLS settings:
 *
 *   tls = { cert = "chain.pem"; key = "key.pem"; implicit = false;
 *           required = false; protocols = [ "TLSv1.2", "TLSv1.3" ];
 *           ciphers = "..."; };
 *
 * px_cfg_listen_tls(): check the group and build the listener's SSL_CTX
 *   (certificate chain, key, the protocol range, the TLS 1.2 cipher list).
 * px_cfg_listen_tls_free(): free it.
 * px_config_listen_tls(): what a session finds for its listener.
 *
 * The SSL_CTX belongs to the config (refcounted, immutable after load), so
 * a SIGHUP that reloads the config also reloads certificate and key; live
 * sessions keep the one they started with.  OpenSSL 3 makes SSL_new() on
 * a shared SSL_CTX safe from every loop thread.
 *
 * RFC 3207 (STARTTLS), RFC 8314 (implicit TLS, port 465), RFC 8996 (no TLS
 * 1.0/1.1): TLS 1.2 is the floor whatever the file says.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config_priv.h"

/* px_tls_errstr - OpenSSL's error queue, first entry, into buf; the queue
 * is cleared (it is per thread and must not leak into a later call). */
static const char *
px_tls_errstr(char *buf, size_t size)
{
	unsigned long err = ERR_get_error();

	if (err == 0)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(err, buf, size);
	ERR_clear_error();
	return buf;
}

/* px_tls_version - "TLSv1.2" / "TLSv1.3" -> the OpenSSL constant, or 0. */
static int
px_tls_version(const char *name)
{
	if (strcmp(name, "TLSv1.2") == 0)
		return TLS1_2_VERSION;
	if (strcmp(name, "TLSv1.3") == 0)
		return TLS1_3_VERSION;
	return 0;
}

static int
px_cfg_tls_protocols(struct px_cfgerr *e, const config_setting_t *g, int *min_r,
                     int *max_r)
{
	char **names = NULL;
	size_t n = 0;
	int min = 0, max = 0;

	*min_r = TLS1_2_VERSION;
	*max_r = TLS1_3_VERSION;
	if (config_setting_get_member(g, "protocols") == NULL)
		return 0;
	if (px_cfg_strings(e, g, "protocols", &names, &n) < 0) {
		px_strv_free(names, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int v = px_tls_version(names[i]);

		if (v == 0) {
			px_cfg_fail(e,
			            config_setting_get_member(g, "protocols"),
			            "tls protocols: \"%s\" is not one of "
			            "\"TLSv1.2\", \"TLSv1.3\" (older versions "
			            "are not offered, RFC 8996)",
			            names[i]);
			px_strv_free(names, n);
			return -1;
		}
		if (min == 0 || v < min)
			min = v;
		if (v > max)
			max = v;
	}
	px_strv_free(names, n);
	if (min == 0)
		return px_cfg_fail(e, config_setting_get_member(g, "protocols"),
		                   "tls protocols is empty");
	*min_r = min;
	*max_r = max;
	return 0;
}

int
px_cfg_listen_tls(struct px_cfgerr *e, struct px_listen *l,
                  const config_setting_t *g)
{
	static const char *const keys[] = {"cert",     "key",       "implicit",
	                                   "required", "protocols", "ciphers",
	                                   NULL};
	struct px_listen_tls *t = &l->tls;
	char ebuf[256];
	int min, max;
	SSL_CTX *ctx;

	if (g == NULL)
		return 0;
	if (px_cfg_check_keys(e, g, "tls", keys) < 0 ||
	    px_cfg_string(e, g, "cert", &t->cert, true) < 0 ||
	    px_cfg_string(e, g, "key", &t->key, true) < 0 ||
	    px_cfg_string(e, g, "ciphers", &t->ciphers, false) < 0 ||
	    px_cfg_bool(e, g, "implicit", &t->implicit) < 0 ||
	    px_cfg_bool(e, g, "required", &t->required) < 0 ||
	    px_cfg_tls_protocols(e, g, &min, &max) < 0)
		return -1;
	if (t->implicit && t->required)
		return px_cfg_fail(e, config_setting_get_member(g, "required"),
		                   "tls: required makes no sense with implicit "
		                   "(every session is under TLS)");
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return px_cfg_fail(e, g, "tls: %s",
		                   px_tls_errstr(ebuf, sizeof(ebuf)));
	t->ctx = ctx;
	SSL_CTX_set_min_proto_version(ctx, min);
	SSL_CTX_set_max_proto_version(ctx, max);
	/* No compression (CRIME), no renegotiation (a client-driven CPU
	 * sink, and TLS 1.3 has none); our cipher order. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	                             SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"mxguard",
	                               7);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1)
		return px_cfg_fail(e, config_setting_get_member(g, "cert"),
		                   "tls cert \"%s\": %s", t->cert,
		                   px_tls_errstr(ebuf, sizeof(ebuf)));
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1)
		return px_cfg_fail(e, config_setting_get_member(g, "key"),
		                   "tls key \"%s\": %s", t->key,
		                   px_tls_errstr(ebuf, sizeof(ebuf)));
	if (SSL_CTX_check_private_key(ctx) != 1)
		return px_cfg_fail(e, config_setting_get_member(g, "key"),
		                   "tls key \"%s\" does not match cert \"%s\"",
		                   t->key, t->cert);
	if (t->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, t->ciphers) != 1)
		return px_cfg_fail(e, config_setting_get_member(g, "ciphers"),
		                   "tls ciphers \"%s\": %s", t->ciphers,
		                   px_tls_errstr(ebuf, sizeof(ebuf)));
	return 0;
}

void
px_cfg_listen_tls_free(struct px_listen *l)
{
	SSL_CTX_free(l->tls.ctx);
	free(l->tls.cert);
	free(l->tls.key);
	free(l->tls.ciphers);
	memset(&l->tls, 0, sizeof(l->tls));
}

const struct px_listen_tls *
px_config_listen_tls(const struct px_config *cfg, const char *address)
{
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].tls.ctx != NULL &&
		    strcmp(cfg->listen[i].address, address) == 0)
			return &cfg->listen[i].tls;
	return NULL;
}

/*
 * px_cfg_backend_tls - backend_tls = { mode; ca_file; verify_name; }: TLS
 * to the backend through its STARTTLS (RFC 3207).  "opportunistic" (the
 * default) uses it when offered; "required" refuses to relay without it;
 * "off" never tries.  The certificate is verified when ca_file or
 * verify_name is given (verify_name alone: the system's CAs), never
 * otherwise.
 */
int
px_cfg_backend_tls(struct px_cfgerr *e, struct px_config *cfg,
                   const config_setting_t *root)
{
	static const char *const keys[] = {"mode", "ca_file", "verify_name",
	                                   NULL};
	const config_setting_t *g =
	    config_setting_get_member(root, "backend_tls");
	char *mode = NULL, ebuf[256];
	SSL_CTX *ctx;

	cfg->backend_tls.mode = PX_BACKEND_TLS_OPPORTUNISTIC;
	if (g != NULL) {
		if (px_cfg_check_keys(e, g, "backend_tls", keys) < 0 ||
		    px_cfg_string(e, g, "mode", &mode, false) < 0 ||
		    px_cfg_string(e, g, "ca_file", &cfg->backend_tls.ca_file,
		                  false) < 0 ||
		    px_cfg_string(e, g, "verify_name",
		                  &cfg->backend_tls.verify_name, false) < 0) {
			free(mode);
			return -1;
		}
		if (mode == NULL || strcmp(mode, "opportunistic") == 0) {
			cfg->backend_tls.mode = PX_BACKEND_TLS_OPPORTUNISTIC;
		} else if (strcmp(mode, "required") == 0) {
			cfg->backend_tls.mode = PX_BACKEND_TLS_REQUIRED;
		} else if (strcmp(mode, "off") == 0) {
			cfg->backend_tls.mode = PX_BACKEND_TLS_OFF;
		} else {
			free(mode);
			return px_cfg_fail(
			    e, config_setting_get_member(g, "mode"),
			    "backend_tls mode must be \"opportunistic\", "
			    "\"required\" or \"off\"");
		}
		free(mode);
	}
	if (cfg->backend_tls.mode == PX_BACKEND_TLS_OFF)
		return 0;
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return px_cfg_fail(e, g, "backend_tls: %s",
		                   px_tls_errstr(ebuf, sizeof(ebuf)));
	cfg->backend_tls.ctx = ctx;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx,
	                    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (cfg->backend_tls.ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cfg->backend_tls.ca_file,
		                                  NULL) != 1)
			return px_cfg_fail(
			    e, config_setting_get_member(g, "ca_file"),
			    "backend_tls ca_file \"%s\": %s",
			    cfg->backend_tls.ca_file,
			    px_tls_errstr(ebuf, sizeof(ebuf)));
	} else if (cfg->backend_tls.verify_name != NULL) {
		SSL_CTX_set_default_verify_paths(ctx);
	}
	SSL_CTX_set_verify(ctx,
	                   cfg->backend_tls.ca_file != NULL ||
	                           cfg->backend_tls.verify_name != NULL
	                       ? SSL_VERIFY_PEER
	                       : SSL_VERIFY_NONE,
	                   NULL);
	ERR_clear_error();
	return 0;
}

void
px_cfg_backend_tls_free(struct px_config *cfg)
{
	SSL_CTX_free(cfg->backend_tls.ctx);
	free(cfg->backend_tls.ca_file);
	free(cfg->backend_tls.verify_name);
}
