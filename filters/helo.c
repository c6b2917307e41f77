/* SPDX-License-Identifier: MIT */
/*
 * helo.c - what the HELO/EHLO name says about the client.
 *
 * RFC 5321 section 4.1.4: the argument is the client's primary host name,
 * or an address literal when it has none.  Legitimate servers rarely get
 * this wrong; spam bots often do.  Symbols (each scored, none rejecting on
 * its own):
 *   HELO_BAD_SYNTAX   neither a domain nor an address literal
 *   HELO_BARE_IP      an IP address without the [ ] of a literal
 *   HELO_IP_MISMATCH  an address literal that is not the client's address
 *   HELO_LOCALHOST    "localhost" or a loopback literal
 *   HELO_OURNAME      our own host name (a forgery: we are the server)
 *   HELO_NOT_FQDN     a name with no dot
 */
#include "filter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool
flt_helo_is_domain(const char *h)
{
	size_t label = 0, len = strlen(h);

	if (len == 0 || len > 255)
		return false;
	if (h[len - 1] == '.')
		len--;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)h[i];

		if (ch == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (ch == '-' && label == 0)
			return false;
		/* Underscores are common in Windows host names: tolerated. */
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') ||
		    ++label > 63)
			return false;
	}
	return label > 0;
}

/* flt_helo_literal - parse "[1.2.3.4]" or "[IPv6:...]" into ss.  Returns 1
 * for a literal, 0 for not a literal, -1 for a broken one. */
static int
flt_helo_literal(const char *h, struct sockaddr_storage *ss)
{
	char buf[64];
	size_t len = strlen(h);

	if (h[0] != '[')
		return 0;
	if (len < 3 || h[len - 1] != ']' || len - 2 >= sizeof(buf))
		return -1;
	memcpy(buf, h + 1, len - 2);
	buf[len - 2] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (strncasecmp(buf, "IPv6:", 5) == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		return inet_pton(AF_INET6, buf + 5, &sin6->sin6_addr) == 1 ? 1
		                                                           : -1;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	sin->sin_family = AF_INET;
	return inet_pton(AF_INET, buf, &sin->sin_addr) == 1 ? 1 : -1;
}

static bool
flt_helo_is_bare_ip(const char *h)
{
	unsigned char tmp[16];

	return inet_pton(AF_INET, h, tmp) == 1 ||
	       inet_pton(AF_INET6, h, tmp) == 1;
}

static bool
flt_helo_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)
		                  ->sin_addr.s_addr) >>
		        24) == 127;
	return IN6_IS_ADDR_LOOPBACK(
	    &((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static int
flt_helo_check(struct flt_call *call)
{
	const struct flt_session *s = call->s;
	const char *h = s->helo;
	struct sockaddr_storage lit;
	int rc;

	if (h == NULL)
		return 1;
	rc = flt_helo_literal(h, &lit);
	if (rc < 0) {
		flt_symbol_add(call, "HELO_BAD_SYNTAX", 2.0);
		return 1;
	}
	if (rc > 0) {
		if (!px_addr_same_ip(&lit, &s->client))
			flt_symbol_add(call, "HELO_IP_MISMATCH", 2.0);
		if (flt_helo_is_loopback(&lit))
			flt_symbol_add(call, "HELO_LOCALHOST", 3.0);
		return 1;
	}
	if (flt_helo_is_bare_ip(h)) {
		flt_symbol_add(call, "HELO_BARE_IP", 1.5);
		return 1;
	}
	if (!flt_helo_is_domain(h)) {
		flt_symbol_add(call, "HELO_BAD_SYNTAX", 2.0);
		return 1;
	}
	if (strcasecmp(h, "localhost") == 0 ||
	    strcasecmp(h, "localhost.localdomain") == 0 ||
	    strncasecmp(h, "localhost.", 10) == 0) {
		flt_symbol_add(call, "HELO_LOCALHOST", 3.0);
		return 1;
	}
	if (strcasecmp(h, s->cfg->hostname) == 0) {
		flt_symbol_add(call, "HELO_OURNAME", 4.0);
		return 1;
	}
	if (strchr(h, '.') == NULL)
		flt_symbol_add(call, "HELO_NOT_FQDN", 1.0);
	return 1;
}

const struct flt_ops flt_helo = {
    .name = "helo",
    .on_stage = {[FLT_STAGE_HELO] = flt_helo_check},
};
