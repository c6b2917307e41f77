/* SPDX-License-Identifier: MIT */
/*
 * pregreet.c - the client that talks before the greeting (Postfix
 * postscreen's pregreet test).
 *
 * RFC 5321 section 3.1 says the client waits for the 220 greeting.  Spam
 * software often writes its EHLO at once; the session holds the greeting for
 * greet_delay (sending "220-" first, so a well-behaved client keeps waiting
 * for the last line) and notes whether anything arrived meanwhile.  At the
 * connect stage this filter turns that note into the PREGREET symbol and,
 * with pregreet.action = "reject", into a reject that the session applies at
 * RCPT, so the log line shows who was being sent what (postscreen's
 * "enforce").
 */
#include "filter.h"

static int
flt_pregreet_connect(struct flt_call *call)
{
	const struct px_config *cfg = call->s->cfg;

	if (!call->s->pregreet)
		return 1;
	flt_symbol_add(call, "PREGREET", cfg->pregreet_score);
	if (cfg->pregreet_action == PX_PREGREET_REJECT)
		flt_verdict_set(call, FLT_REJECT, 550, "5.5.1", "pregreet",
		                "Protocol error");
	return 1;
}

const struct flt_ops flt_pregreet = {
    .name = "pregreet",
    .on_stage = {[FLT_STAGE_CONNECT] = flt_pregreet_connect},
};
