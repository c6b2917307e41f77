/* SPDX-License-Identifier: MIT */
/*
 * netaddr.h - socket addresses: "ip:port" parsing, printing, CIDR matching.
 */
#ifndef MX_NETADDR_H
#define MX_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room for "[ffff:...:255.255.255.255]:65535" and a NUL. */
#define PX_ADDRSTRLEN 64

/*
 * px_addr_parse - parse "1.2.3.4:25", "[2001:db8::1]:25", "*:25" (any IPv4),
 * "[::]:25", or "name:25" when resolve is true (getaddrinfo; blocking, so
 * only at config load).  Returns 0, or -1 with *error_r a static text.
 */
int px_addr_parse(const char *str, bool resolve, struct sockaddr_storage *ss,
                  socklen_t *len_r, const char **error_r);

/* px_addr_ip - write the bare IP ("1.2.3.4", "2001:db8::1") to buf; an
 * IPv4-mapped IPv6 address prints as IPv4. */
void px_addr_ip(const struct sockaddr_storage *ss, char *buf, size_t size);

/* px_addr_port - the port in host order. */
uint16_t px_addr_port(const struct sockaddr_storage *ss);

/* px_addr_format - "[ip]:port" into buf (size >= PX_ADDRSTRLEN). */
void px_addr_format(const struct sockaddr_storage *ss, char *buf, size_t size);

/* px_addr_unmap - turn an IPv4-mapped IPv6 address into plain IPv4. */
void px_addr_unmap(struct sockaddr_storage *ss);

/* px_addr_socklen - sizeof the family's sockaddr. */
socklen_t px_addr_socklen(const struct sockaddr_storage *ss);

struct px_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

/* px_cidr_parse - "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32
 * or /128).  Host bits must be zero.  Returns 0 or -1 with *error_r. */
int px_cidr_parse(const char *str, struct px_cidr *cidr, const char **error_r);

/* px_cidr_match - true if ss lies in cidr. */
bool px_cidr_match(const struct px_cidr *cidr,
                   const struct sockaddr_storage *ss);

/* px_addr_net - the network of ss (IPv4-mapped addresses as IPv4) at
 * prefix v4 or v6, as "192.0.2.0/24" or "2001:db8::/64", into buf.
 * Returns 0, or -1 for another family. */
int px_addr_net(const struct sockaddr_storage *ss, unsigned v4, unsigned v6,
                char *buf, size_t size);

/* px_addr_same_ip - true if both hold the same IP (ports ignored). */
bool px_addr_same_ip(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b);

#endif
