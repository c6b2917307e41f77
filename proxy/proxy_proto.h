/* SPDX-License-Identifier: MIT */
/*
 * proxy_proto.h - HAProxy PROXY protocol header parser, versions 1 (text)
 * and 2 (binary), as specified in haproxy's doc/proxy-protocol.txt.
 *
 * Pure: takes the first bytes a trusted load balancer sent, does no I/O.
 */
#ifndef MX_PROXY_PROTO_H
#define MX_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* v1 headers are at most 107 bytes; v2 at most 16 + 65535. */
#define PX_PROXY_V1_MAX 107

struct px_proxy_hdr {
	int version; /* 1 or 2 */
	/* true for v1 "UNKNOWN" and v2 LOCAL or AF_UNSPEC: the addresses are
	 * not given, the caller keeps the socket's own. */
	bool local;
	struct sockaddr_storage src; /* the real client */
	struct sockaddr_storage dst; /* the address it connected to */
};

/*
 * px_proxy_parse - parse a PROXY header at the start of buf.  Returns the
 * number of bytes it takes (the caller drops them; what follows is SMTP), 0
 * when more bytes are needed to decide, -1 when buf cannot start a valid
 * header, with *error_r set to a short static text.  v1: "PROXY TCP4|TCP6
 * src dst sport dport\r\n" or "PROXY UNKNOWN ...\r\n", strict address and
 * port syntax, family must match.  v2: the 12-byte signature, version 2,
 * command LOCAL or PROXY, AF_INET/AF_INET6 over STREAM (others are treated
 * as local), TLVs skipped.
 */
ssize_t px_proxy_parse(const unsigned char *buf, size_t len,
                       struct px_proxy_hdr *hdr, const char **error_r);

#endif
