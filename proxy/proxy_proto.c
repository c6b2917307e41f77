/* SPDX-License-Identifier: MIT */
/*
 * proxy_proto.c - HAProxy PROXY protocol header parser (haproxy's
 * doc/proxy-protocol.txt, sections 2.1 for the text v1 and 2.2 for the
 * binary v2).
 *
 * px_proxy_parse() is the only entry point.  It can be called on every
 * read with all bytes received so far: it answers 0 only while those bytes
 * are a proper prefix of some valid header, so a peer that is not a load
 * balancer is refused on its first wrong byte instead of being waited for.
 * To keep that promise the v1 addresses are checked by small incremental
 * validators (one character at a time) rather than by inet_pton() alone,
 * which can only judge a complete token.
 *
 * Pure: no I/O, no allocation, no pointers kept.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy_proto.h"

static const unsigned char px_v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                            0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* The longest address token we convert: an IPv6 address with an embedded
 * IPv4 tail ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"). */
#define PX_ADDR_TEXT_MAX 45

/* Results of the incremental steps below. */
enum {
	PX_STEP_BAD = -1, /* cannot become valid */
	PX_STEP_MORE = 0, /* valid so far, input ended */
	PX_STEP_DONE = 1, /* complete */
};

/* Incremental IPv4 validator: 4 decimal octets 0..255 separated by single
 * dots, no leading zeros (v1 forbids them to avoid octal confusion). */
struct px_v4 {
	int dots;
	int digits; /* in the current octet */
	unsigned val;
};

static bool
px_v4_feed(struct px_v4 *v, unsigned char c)
{
	if (c >= '0' && c <= '9') {
		if (v->digits > 0 && v->val == 0)
			return false; /* leading zero */
		v->val = v->val * 10 + (c - '0');
		v->digits++;
		return v->val <= 255;
	}
	if (c == '.') {
		if (v->digits == 0 || v->dots == 3)
			return false;
		v->dots++;
		v->digits = 0;
		v->val = 0;
		return true;
	}
	return false;
}

static bool
px_v4_complete(const struct px_v4 *v)
{
	return v->dots == 3 && v->digits > 0;
}

/*
 * Incremental IPv6 validator (RFC 4291 2.2 text forms, as inet_pton()
 * takes them): groups of 1-4 hex digits, at most one "::" standing for at
 * least one zero group, optionally ending in an IPv4 tail that counts as two
 * groups.  Each step refuses a character as soon as no completion could be
 * valid, so that "need more" is never answered for a hopeless prefix.
 */
struct px_v6 {
	int groups;    /* completed explicit groups */
	int digits;    /* hex digits in the current group */
	int colons;    /* colons just seen: 0, 1 or 2 ("::") */
	bool dcolon;   /* a "::" has been seen */
	bool lead;     /* the address started with a single ':' so far */
	bool dec_ok;   /* the current group could be an IPv4 octet */
	unsigned dval; /* its decimal value, while dec_ok */
	bool in_v4;    /* inside the IPv4 tail */
	struct px_v4 v4;
};

static bool
px_v6_feed(struct px_v6 *v, unsigned char c, size_t pos)
{
	bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	           (c >= 'A' && c <= 'F');

	if (v->in_v4)
		return px_v4_feed(&v->v4, c);
	if (hex) {
		if (v->lead && v->colons == 1)
			return false; /* ":1" */
		if (v->digits == 0) {
			if (v->groups + 1 > (v->dcolon ? 7 : 8))
				return false;
			v->dec_ok = true;
			v->dval = 0;
		}
		if (v->digits == 4)
			return false;
		if (c > '9' || (v->digits > 0 && v->dval == 0))
			v->dec_ok = false;
		if (v->dec_ok) {
			v->dval = v->dval * 10 + (c - '0');
			if (v->dval > 255)
				v->dec_ok = false;
		}
		v->digits++;
		v->colons = 0;
		return true;
	}
	if (c == ':') {
		if (v->digits > 0) {
			v->groups++;
			v->digits = 0;
			/* A single colon promises one more group. */
			if (v->groups >= (v->dcolon ? 7 : 8))
				return false;
			v->colons = 1;
			return true;
		}
		if (v->colons == 1) {
			if (v->dcolon)
				return false;
			v->dcolon = true;
			v->lead = false;
			v->colons = 2;
			return true;
		}
		if (v->colons == 0 && pos == 0) {
			v->lead = true;
			v->colons = 1;
			return true;
		}
		return false; /* ":::" */
	}
	if (c == '.') {
		/* The current group was the first IPv4 octet; the tail takes
		 * the room of two groups. */
		if (v->digits == 0 || !v->dec_ok)
			return false;
		if (v->dcolon ? v->groups > 5 : v->groups != 6)
			return false;
		v->in_v4 = true;
		v->v4.dots = 1;
		return true;
	}
	return false;
}

static bool
px_v6_complete(const struct px_v6 *v)
{
	if (v->in_v4)
		return px_v4_complete(&v->v4);
	if (v->colons == 2)
		return true;
	if (v->colons == 1 || v->digits == 0)
		return false;
	return v->dcolon || v->groups + 1 == 8;
}

/*
 * px_v1_addr - one address token at buf[*pos], ended by a space.  Fills
 * *ss (port left 0) when complete.
 */
static int
px_v1_addr(const unsigned char *buf, size_t len, size_t *pos, bool v6,
           struct sockaddr_storage *ss)
{
	struct px_v4 v4 = {0};
	struct px_v6 v6s = {0};
	size_t start = *pos, i;
	char text[PX_ADDR_TEXT_MAX + 1];

	for (i = start; i < len && buf[i] != ' '; i++) {
		if (i - start >= PX_ADDR_TEXT_MAX)
			return PX_STEP_BAD;
		if (v6 ? !px_v6_feed(&v6s, buf[i], i - start)
		       : !px_v4_feed(&v4, buf[i]))
			return PX_STEP_BAD;
	}
	if (i == len)
		return PX_STEP_MORE;
	if (v6 ? !px_v6_complete(&v6s) : !px_v4_complete(&v4))
		return PX_STEP_BAD;
	memcpy(text, buf + start, i - start);
	text[i - start] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
			return PX_STEP_BAD;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
			return PX_STEP_BAD;
	}
	*pos = i + 1;
	return PX_STEP_DONE;
}

/* px_v1_port - a port 0..65535 in decimal without leading zeros, ended by
 * the byte term */
static int
px_v1_port(const unsigned char *buf, size_t len, size_t *pos, char term,
           unsigned *port_r)
{
	size_t i = *pos;
	unsigned val = 0;

	for (; i < len && buf[i] != term; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return PX_STEP_BAD;
		if (i > *pos && val == 0)
			return PX_STEP_BAD; /* leading zero */
		val = val * 10 + (buf[i] - '0');
		if (val > 65535)
			return PX_STEP_BAD;
	}
	if (i == len)
		return PX_STEP_MORE;
	if (i == *pos)
		return PX_STEP_BAD;
	*port_r = val;
	*pos = i + 1;
	return PX_STEP_DONE;
}

/* px_v1_lit - the literal s at buf[*pos]: DONE and advance, MORE if the
 * input ends inside a match, BAD on a mismatch */
static int
px_v1_lit(const unsigned char *buf, size_t len, size_t *pos, const char *s)
{
	size_t n = strlen(s), avail = len - *pos;

	if (memcmp(buf + *pos, s, avail < n ? avail : n) != 0)
		return PX_STEP_BAD;
	if (avail < n)
		return PX_STEP_MORE;
	*pos += n;
	return PX_STEP_DONE;
}

static void
px_set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static ssize_t
px_proxy_v1(const unsigned char *buf, size_t len, struct px_proxy_hdr *hdr,
            const char **error_r)
{
	/* Everything must fit in 107 bytes; looking no further bounds the
	 * work and answers "too long" as soon as that is certain. */
	size_t avail = len < PX_PROXY_V1_MAX ? len : PX_PROXY_V1_MAX;
	size_t pos = 0, p4, p6;
	unsigned sport = 0, dport = 0;
	bool v6;
	int r, r4, r6;

#define PX_STEP(expr, what)                                                    \
	do {                                                                   \
		r = (expr);                                                    \
		if (r == PX_STEP_BAD) {                                        \
			*error_r = (what);                                     \
			return -1;                                             \
		}                                                              \
		if (r == PX_STEP_MORE)                                         \
			goto more;                                             \
	} while (0)

	PX_STEP(px_v1_lit(buf, avail, &pos, "PROXY "), "not a PROXY header");

	/* Three alternatives: try each on its own copy of the position. */
	p4 = p6 = pos;
	r4 = px_v1_lit(buf, avail, &p4, "TCP4 ");
	r6 = px_v1_lit(buf, avail, &p6, "TCP6 ");
	r = px_v1_lit(buf, avail, &pos, "UNKNOWN");
	if (r == PX_STEP_DONE) {
		/* The spec tells receivers to ignore whatever follows
		 * UNKNOWN up to the CRLF. */
		if (pos < avail && buf[pos] != '\r' && buf[pos] != ' ') {
			*error_r = "bad PROXY v1 protocol";
			return -1;
		}
		for (; pos < avail; pos++) {
			if (buf[pos] == '\n') {
				*error_r = "bare LF in PROXY v1 header";
				return -1;
			}
			if (buf[pos] == '\r')
				break;
		}
		PX_STEP(px_v1_lit(buf, avail, &pos, "\r\n"),
		        "bad line end in PROXY v1 header");
		hdr->version = 1;
		hdr->local = true;
		return (ssize_t)pos;
	}
	if (r4 == PX_STEP_BAD && r6 == PX_STEP_BAD && r == PX_STEP_BAD) {
		*error_r = "bad PROXY v1 protocol";
		return -1;
	}
	if (r4 != PX_STEP_DONE && r6 != PX_STEP_DONE)
		goto more;
	v6 = r6 == PX_STEP_DONE;
	pos = v6 ? p6 : p4;

	PX_STEP(px_v1_addr(buf, avail, &pos, v6, &hdr->src),
	        "bad PROXY v1 source address");
	PX_STEP(px_v1_addr(buf, avail, &pos, v6, &hdr->dst),
	        "bad PROXY v1 destination address");
	PX_STEP(px_v1_port(buf, avail, &pos, ' ', &sport),
	        "bad PROXY v1 source port");
	PX_STEP(px_v1_port(buf, avail, &pos, '\r', &dport),
	        "bad PROXY v1 destination port");
	PX_STEP(px_v1_lit(buf, avail, &pos, "\n"),
	        "bad line end in PROXY v1 header");
#undef PX_STEP
	px_set_port(&hdr->src, sport);
	px_set_port(&hdr->dst, dport);
	hdr->version = 1;
	return (ssize_t)pos;

more:
	if (len >= PX_PROXY_V1_MAX) {
		*error_r = "PROXY v1 header too long";
		return -1;
	}
	memset(hdr, 0, sizeof(*hdr));
	return 0;
}

static ssize_t
px_proxy_v2(const unsigned char *buf, size_t len, struct px_proxy_hdr *hdr,
            const char **error_r)
{
	size_t plen, need = 0;
	unsigned cmd, fam = 0, af, tp;

	if (memcmp(buf, px_v2_sig, len < 12 ? len : 12) != 0) {
		*error_r = "not a PROXY header";
		return -1;
	}
	if (len < 13)
		return 0;
	if ((buf[12] >> 4) != 2) {
		*error_r = "bad PROXY v2 version";
		return -1;
	}
	cmd = buf[12] & 0x0f;
	if (cmd > 1) {
		*error_r = "bad PROXY v2 command";
		return -1;
	}
	if (len < 14)
		return 0;
	fam = buf[13];
	af = fam >> 4;
	tp = fam & 0x0f;
	/* Only LOCAL may carry a family byte we do not know: its protocol
	 * block is to be ignored. */
	if (cmd == 1 && (af > 3 || tp > 2)) {
		*error_r = "bad PROXY v2 address family";
		return -1;
	}
	if (len < 16)
		return 0;
	plen = ((size_t)buf[14] << 8) | buf[15];
	if (cmd == 1 && tp != 0)
		need = af == 1 ? 12 : af == 2 ? 36 : af == 3 ? 216 : 0;
	if (plen < need) {
		*error_r = "PROXY v2 length shorter than its addresses";
		return -1;
	}
	if (len < 16 + plen)
		return 0;

	hdr->version = 2;
	if (cmd == 0 || (fam != 0x11 && fam != 0x21)) {
		/* LOCAL (health checks), UNSPEC, UDP and UNIX sockets: the
		 * connection's own addresses stand. */
		hdr->local = true;
	} else if (fam == 0x11) {
		struct sockaddr_in *s = (struct sockaddr_in *)&hdr->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&hdr->dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, buf + 16, 4);
		memcpy(&d->sin_addr, buf + 20, 4);
		memcpy(&s->sin_port, buf + 24, 2);
		memcpy(&d->sin_port, buf + 26, 2);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&hdr->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&hdr->dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, buf + 16, 16);
		memcpy(&d->sin6_addr, buf + 32, 16);
		memcpy(&s->sin6_port, buf + 48, 2);
		memcpy(&d->sin6_port, buf + 50, 2);
	}
	/* TLVs (ALPN, authority, CRC32C, SSL, ...) follow the addresses and
	 * are skipped: nothing here needs them. */
	return (ssize_t)(16 + plen);
}

ssize_t
px_proxy_parse(const unsigned char *buf, size_t len, struct px_proxy_hdr *hdr,
               const char **error_r)
{
	const char *dummy;
	ssize_t r;

	if (error_r == NULL)
		error_r = &dummy;
	*error_r = NULL;
	memset(hdr, 0, sizeof(*hdr));
	if (len == 0)
		return 0;
	if (buf[0] == 'P')
		r = px_proxy_v1(buf, len, hdr, error_r);
	else if (buf[0] == px_v2_sig[0])
		r = px_proxy_v2(buf, len, hdr, error_r);
	else {
		*error_r = "not a PROXY header";
		r = -1;
	}
	if (r <= 0)
		memset(hdr, 0, sizeof(*hdr));
	return r;
}
