/* SPDX-License-Identifier: MIT */
/*
 * netaddr.c - socket address helpers.
 *
 * px_addr_parse() reads the address forms of the configuration;
 * px_addr_ip(), px_addr_format() print them for logs and SMTP;
 * px_cidr_parse() and px_cidr_match() serve network lists such as
 * relay_networks.  IPv4-mapped IPv6 addresses (what a dual-stack socket
 * reports) are treated as the IPv4 address they carry, so one list entry
 * covers both.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
px_port_parse(const char *s, uint16_t *port_r)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v > 65535)
		return -1;
	*port_r = (uint16_t)v;
	return 0;
}

int
px_addr_parse(const char *str, bool resolve, struct sockaddr_storage *ss,
              socklen_t *len_r, const char **error_r)
{
	char host[256];
	const char *colon, *hstart;
	size_t hlen;
	uint16_t port;

	memset(ss, 0, sizeof(*ss));
	if (str[0] == '[') {
		const char *rb = strchr(str, ']');

		if (rb == NULL || rb[1] != ':') {
			*error_r = "expected \"[ipv6]:port\"";
			return -1;
		}
		hstart = str + 1;
		hlen = (size_t)(rb - hstart);
		colon = rb + 1;
	} else {
		colon = strrchr(str, ':');
		if (colon == NULL) {
			*error_r = "expected \"address:port\"";
			return -1;
		}
		hstart = str;
		hlen = (size_t)(colon - str);
		if (memchr(str, ':', hlen) != NULL) {
			*error_r =
			    "IPv6 addresses must be written \"[addr]:port\"";
			return -1;
		}
	}
	if (hlen >= sizeof(host)) {
		*error_r = "host name too long";
		return -1;
	}
	memcpy(host, hstart, hlen);
	host[hlen] = '\0';
	if (px_port_parse(colon + 1, &port) < 0) {
		*error_r = "bad port number";
		return -1;
	}

	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (str[0] == '[') {
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*error_r = "bad IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len_r = sizeof(*sin6);
		return 0;
	}
	if (strcmp(host, "*") == 0 || host[0] == '\0')
		strcpy(host, "0.0.0.0");
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len_r = sizeof(*sin);
		return 0;
	}
	if (!resolve) {
		*error_r = "bad IPv4 address";
		return -1;
	}

	struct addrinfo hints, *res;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
		*error_r = "cannot resolve host name";
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len_r = res->ai_addrlen;
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET)
		sin->sin_port = htons(port);
	else
		sin6->sin6_port = htons(port);
	return 0;
}

void
px_addr_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in sin;

	if (ss->ss_family != AF_INET6 ||
	    !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = sin6->sin6_port;
	memcpy(&sin.sin_addr, sin6->sin6_addr.s6_addr + 12, 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sin, sizeof(sin));
}

void
px_addr_ip(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	struct sockaddr_storage tmp = *ss;

	px_addr_unmap(&tmp);
	if (tmp.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&tmp)->sin_addr, buf,
		          (socklen_t)size);
	else if (tmp.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&tmp)->sin6_addr,
		          buf, (socklen_t)size);
	else
		snprintf(buf, size, "unknown");
}

uint16_t
px_addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

void
px_addr_format(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	px_addr_ip(ss, ip, sizeof(ip));
	snprintf(buf, size, "[%s]:%u", ip, px_addr_port(ss));
}

socklen_t
px_addr_socklen(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                 : sizeof(struct sockaddr_in);
}

int
px_cidr_parse(const char *str, struct px_cidr *cidr, const char **error_r)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(str, '/');
	size_t alen = slash ? (size_t)(slash - str) : strlen(str);
	unsigned maxbits;

	if (alen >= sizeof(buf)) {
		*error_r = "bad network address";
		return -1;
	}
	memcpy(buf, str, alen);
	buf[alen] = '\0';
	memset(cidr, 0, sizeof(*cidr));
	if (inet_pton(AF_INET, buf, cidr->addr) == 1) {
		cidr->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, buf, cidr->addr) == 1) {
		cidr->family = AF_INET6;
		maxbits = 128;
	} else {
		*error_r = "bad network address";
		return -1;
	}
	cidr->prefix = maxbits;
	if (slash != NULL) {
		char *end;
		unsigned long v;

		if (slash[1] < '0' || slash[1] > '9') {
			*error_r = "bad prefix length";
			return -1;
		}
		v = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || v > maxbits) {
			*error_r = "bad prefix length";
			return -1;
		}
		cidr->prefix = (unsigned)v;
	}
	for (unsigned bit = cidr->prefix; bit < maxbits; bit++) {
		if (cidr->addr[bit / 8] & (0x80 >> (bit % 8))) {
			*error_r = "host bits set in network address";
			return -1;
		}
	}
	return 0;
}

bool
px_cidr_match(const struct px_cidr *cidr, const struct sockaddr_storage *ss)
{
	struct sockaddr_storage tmp = *ss;
	const uint8_t *a;
	unsigned full, rest;

	px_addr_unmap(&tmp);
	if (tmp.ss_family != cidr->family)
		return false;
	if (tmp.ss_family == AF_INET)
		a = (const uint8_t *)&((struct sockaddr_in *)&tmp)->sin_addr;
	else
		a = ((struct sockaddr_in6 *)&tmp)->sin6_addr.s6_addr;
	full = cidr->prefix / 8;
	rest = cidr->prefix % 8;
	if (memcmp(a, cidr->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ cidr->addr[full]) & (0xff00 >> rest)) == 0;
}

int
px_addr_net(const struct sockaddr_storage *ss, unsigned v4, unsigned v6,
            char *buf, size_t size)
{
	struct sockaddr_storage tmp = *ss;
	uint8_t a[16];
	unsigned prefix, len;
	char text[INET6_ADDRSTRLEN];

	px_addr_unmap(&tmp);
	if (tmp.ss_family == AF_INET) {
		memcpy(a, &((struct sockaddr_in *)&tmp)->sin_addr, 4);
		prefix = v4 > 32 ? 32 : v4;
		len = 4;
	} else if (tmp.ss_family == AF_INET6) {
		memcpy(a, ((struct sockaddr_in6 *)&tmp)->sin6_addr.s6_addr, 16);
		prefix = v6 > 128 ? 128 : v6;
		len = 16;
	} else {
		return -1;
	}
	for (unsigned i = 0; i < len; i++) {
		if (i * 8 >= prefix)
			a[i] = 0;
		else if (i * 8 + 8 > prefix)
			a[i] &= (uint8_t)(0xff00 >> (prefix - i * 8));
	}
	if (inet_ntop(tmp.ss_family, a, text, sizeof(text)) == NULL)
		return -1;
	snprintf(buf, size, "%s/%u", text, prefix);
	return 0;
}

bool
px_addr_same_ip(const struct sockaddr_storage *a,
                const struct sockaddr_storage *b)
{
	struct sockaddr_storage x = *a, y = *b;

	px_addr_unmap(&x);
	px_addr_unmap(&y);
	if (x.ss_family != y.ss_family)
		return false;
	if (x.ss_family == AF_INET)
		return memcmp(&((struct sockaddr_in *)&x)->sin_addr,
		              &((struct sockaddr_in *)&y)->sin_addr, 4) == 0;
	if (x.ss_family == AF_INET6)
		return memcmp(&((struct sockaddr_in6 *)&x)->sin6_addr,
		              &((struct sockaddr_in6 *)&y)->sin6_addr, 16) == 0;
	return false;
}
