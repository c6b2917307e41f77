/* SPDX-License-Identifier: MIT */
/*
 * fuzz_smtp_cmd.c - libFuzzer harness for the SMTP command line parser
 * (proxy/smtp_parse.c).
 *
 * The input is one command line.  It goes through px_cmd_parse() and, when
 * accepted, its parameters through px_param_next() until the end or an
 * error; the raw input is also walked as a parameter list, checked as
 * xtext and encoded as xtext.  Beyond what ASan and UBSan catch, the
 * harness aborts when a result breaks the contract: a slice outside the
 * line, a parameter walk that does not advance, an accepted line holding a
 * NUL, CR or LF, or xtext output that is not valid xtext.  An accepted
 * RCPT is also classified by relay control (relay_control.c) against a
 * fixed domain set: SECURITY, a recipient whose local part holds '%', '!'
 * or '@' must never come out as local.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay_control.h"
#include "smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_inside(struct px_slice s, const char *line, size_t len)
{
	if (s.len > len || s.p < line || s.p > line + len ||
	    (size_t)(s.p - line) + s.len > len)
		abort();
}

static void
walk_params(struct px_slice ps, const char *line, size_t len)
{
	struct px_param p;
	size_t steps = 0;
	int r;

	while ((r = px_param_next(&ps, &p)) == 1) {
		check_inside(p.key, line, len);
		check_inside(p.value, line, len);
		check_inside(ps, line, len);
		if (p.key.len == 0 || (!p.has_value && p.value.len != 0))
			abort();
		/* Every parameter takes at least one byte. */
		if (++steps > len)
			abort();
	}
	if (r != 0 && r != -1)
		abort();
}

static void
check_relay(const struct px_cmd *cmd)
{
	static struct px_domains *d;
	const char *at = NULL;
	enum px_rcpt_class c;

	if (d == NULL) {
		const char *err;

		d = px_domains_new();
		if (px_domains_add(d, "example.test", &err) < 0 ||
		    px_domains_add(d, ".sub.example.test", &err) < 0 ||
		    px_domains_add(d, "[192.0.2.1]", &err) < 0)
			abort();
		px_domains_seal(d);
	}
	c = px_rcpt_classify(d, cmd->addr.p, cmd->addr.len);
	if (c < PX_RCPT_LOCAL || c > PX_RCPT_UNPARSEABLE)
		abort();
	if (c != PX_RCPT_LOCAL)
		return;
	for (size_t i = cmd->addr.len; i > 0; i--)
		if (cmd->addr.p[i - 1] == '@') {
			at = cmd->addr.p + i - 1;
			break;
		}
	if (at == NULL) {
		if (!cmd->postmaster)
			abort();
		return;
	}
	for (const char *p = cmd->addr.p; p < at; p++)
		if (*p == '%' || *p == '!' || *p == '@')
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct px_cmd cmd;
	const char *err = NULL;
	enum px_parse_status st;
	char xt[256];
	size_t need;

	st = px_cmd_parse(line, size, &cmd, &err);
	if (st < PX_PARSE_OK || st > PX_PARSE_BAD_BYTES)
		abort();
	if (st != PX_PARSE_OK) {
		if (err == NULL)
			abort();
	} else {
		if (memchr(line, '\0', size) || memchr(line, '\r', size) ||
		    memchr(line, '\n', size))
			abort();
		check_inside(cmd.arg, line, size);
		check_inside(cmd.addr, line, size);
		check_inside(cmd.params, line, size);
		if (cmd.verb == PX_VERB_UNKNOWN)
			abort();
		if (cmd.null_path && cmd.addr.len != 0)
			abort();
		walk_params(cmd.params, line, size);
		if (cmd.verb == PX_VERB_RCPT)
			check_relay(&cmd);
	}

	walk_params((struct px_slice){line, size}, line, size);

	(void)px_xtext_valid((struct px_slice){line, size});
	need = px_xtext_encode(line, size, xt, sizeof(xt));
	if (need < size || need > 3 * size)
		abort();
	if (strlen(xt) > need || strlen(xt) >= sizeof(xt))
		abort();
	if (!px_xtext_valid((struct px_slice){xt, strlen(xt)}))
		abort();
	if (need < sizeof(xt) && strlen(xt) != need)
		abort();
	return 0;
}
