/* SPDX-License-Identifier: MIT */
/*
 * fuzz_spf_record.c - libFuzzer harness for the SPF record checker
 * (filters/spf_syntax.c), which sees every record before libspf2 does.
 *
 * The first input byte picks the client family and whether macro values
 * are known; the rest is the record (any bytes).  An accepted record's
 * rewrite must be printable ASCII, must fit the documented bound, and must
 * be accepted again unchanged (the rewrite is a fixed point, so libspf2
 * only ever sees records our checker calls valid).  The explanation
 * checker and the domain rule run on the same bytes.  Any mismatch aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spf_syntax.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct flt_spf_macro_env env;
	const char *rec, *why;
	char *out, *again, *dom;
	size_t len, osize;
	bool v6;

	if (size == 0)
		return 0;
	v6 = data[0] & 1;
	memset(&env, 0, sizeof(env));
	env.values['d' - 'a'] = "a.b.example";
	env.values['l' - 'a'] = "strong-bad";
	env.values['s' - 'a'] = "strong-bad@a.b.example";
	env.values['o' - 'a'] = "a.b.example";
	env.values['i' - 'a'] = "192.0.2.3";
	env.values['c' - 'a'] = "192.0.2.3";
	env.values['v' - 'a'] = "in-addr";
	rec = (const char *)data + 1;
	len = size - 1;
	osize = 4 * len + 64;
	out = malloc(osize);
	again = malloc(osize);
	if (out == NULL || again == NULL)
		abort();
	if (flt_spf_record_check(rec, len, v6, (data[0] & 2) ? &env : NULL, out,
	                         osize, &why) == 0) {
		size_t olen = strlen(out);

		if (olen >= osize)
			abort();
		for (size_t i = 0; i < olen; i++)
			if (out[i] < 0x20 || out[i] > 0x7e)
				abort();
		if (flt_spf_record_check(out, olen, v6,
		                         (data[0] & 2) ? &env : NULL, again,
		                         osize, &why) != 0 ||
		    strcmp(out, again) != 0)
			abort();
	} else if (why == NULL) {
		abort();
	}
	if (flt_spf_explain_check(rec, len, &env, out, len + 1) == 0)
		for (size_t i = 0; out[i]; i++)
			if (out[i] < 0x20 || out[i] > 0x7e)
				abort();
	dom = malloc(len + 1);
	if (dom == NULL)
		abort();
	memcpy(dom, rec, len);
	dom[len] = '\0';
	(void)flt_spf_domain_ok(dom);
	free(dom);
	free(out);
	free(again);
	return 0;
}
