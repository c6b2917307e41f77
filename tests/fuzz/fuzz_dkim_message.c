/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dkim_message.c - libFuzzer harness for what mxguard hands
 * libopendkim: hostile messages (any DKIM-Signature fields, any body) fed
 * in chunks as the DATA stream feeds them (filters/dkim.c), then every
 * signature processed and described as the filter does, with a key record
 * from the input served by a stub of the key lookup hook.
 *
 * Input: KEY-RECORD LF SPLIT-BYTE MESSAGE.  Messages with a bare CR or LF
 * are skipped: the proxy refuses them before anything else sees them.
 * libopendkim itself is not instrumented (a Debian library): the harness
 * finds crashes and hangs in it, and memory errors in what crosses the
 * API (ASan's interceptors), not coverage inside it.
 */
#include <opendkim/dkim.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *fz_key;
static size_t fz_keylen;

static DKIM_CBSTAT
fz_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	size_t n = fz_keylen < buflen - 1 ? fz_keylen : buflen - 1;

	if (fz_keylen == 0)
		return DKIM_CBSTAT_NOTFOUND;
	memcpy(buf, fz_key, n);
	buf[n] = '\0';
	return DKIM_CBSTAT_CONTINUE;
}

static DKIM_LIB *
fz_lib(void)
{
	static DKIM_LIB *lib;
	unsigned int flags = DKIM_LIBFLAGS_DELAYSIGPROC;

	if (lib != NULL)
		return lib;
	lib = dkim_init(NULL, NULL);
	if (lib == NULL)
		abort();
	dkim_set_key_lookup(lib, fz_lookup);
	dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	             sizeof(flags));
	return lib;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const uint8_t *msg;
	size_t len, cut;
	DKIM_STAT st;
	DKIM *dkim;
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;
	_Bool testkey = 0;

	if (nl == NULL || (size_t)(nl - data) + 2 > size)
		return 0;
	fz_key = data;
	fz_keylen = (size_t)(nl - data);
	msg = nl + 2;
	len = size - fz_keylen - 2;
	cut = len > 0 ? nl[1] % (len + 1) : 0;
	for (size_t i = 0; i < len; i++)
		if ((msg[i] == '\r' && (i + 1 == len || msg[i + 1] != '\n')) ||
		    (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r')))
			return 0;
	dkim = dkim_verify(fz_lib(), (const u_char *)"fuzz", NULL, &st);
	if (dkim == NULL)
		return 0;
	/* The copy lets ASan see reads past the end of the input. */
	u_char *copy = malloc(len + 1);

	if (copy == NULL)
		abort();
	memcpy(copy, msg, len);
	st = dkim_chunk(dkim, copy, cut);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(dkim, copy + cut, len - cut);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(dkim, NULL, 0);
	if (st == DKIM_STAT_OK) {
		(void)dkim_eom(dkim, &testkey);
		if (dkim_getsiglist(dkim, &sigs, &nsigs) != DKIM_STAT_OK)
			nsigs = 0;
		for (int i = 0; i < nsigs && i < 8; i++) {
			char b[64];
			size_t blen = sizeof(b);

			if (!(dkim_sig_getflags(sigs[i]) &
			      DKIM_SIGFLAG_PROCESSED))
				(void)dkim_sig_process(dkim, sigs[i]);
			(void)dkim_sig_getdomain(sigs[i]);
			(void)dkim_sig_getselector(sigs[i]);
			(void)dkim_sig_gettagvalue(sigs[i], 0, (u_char *)"a");
			(void)dkim_sig_getbh(sigs[i]);
			(void)dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i]));
			(void)dkim_get_sigsubstring(dkim, sigs[i], b, &blen);
		}
		(void)dkim_getdomain(dkim);
	}
	dkim_free(dkim);
	free(copy);
	return 0;
}
