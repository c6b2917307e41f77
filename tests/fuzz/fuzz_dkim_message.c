/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dkim_message.c - libFuzzer harness for the DKIM path of hostile
 * messages: the header splitter (filters/dkim_header.c) and what the DKIM
 * filter hands libopendkim.
 *
 * Input: KEY-RECORD LF SPLIT-BYTE MESSAGE.  The message is cut into fields
 * fed whole and split at the chosen byte: both runs must give the same
 * fields and body bytes, or the harness aborts.  The fields go to
 * libopendkim as filters/dkim.c gives them (DKIM-Signature fields that
 * fail dkim_sig_syntax are held back), the body follows, then dkim_eom
 * and every signature is processed and described, with the key record
 * served by a stub of the key lookup hook.  Messages with a bare CR or LF
 * are skipped: the proxy refuses them before anything sees them.
 * libopendkim is a Debian library without instrumentation: this finds
 * crashes and hangs in it and memory errors at its API, not coverage.
 */
#include <opendkim/dkim.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dkim_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *fz_key;
static size_t fz_keylen;

struct fz_out {
	unsigned char *buf; /* fields, each NUL-terminated, then the body */
	size_t len, cap;
	DKIM *dkim; /* NULL: only record */
	DKIM_STAT st;
};

static void
fz_put(struct fz_out *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 64;
		o->buf = realloc(o->buf, o->cap);
		if (o->buf == NULL)
			abort();
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void
fz_field(void *ctx, const char *f, size_t len)
{
	struct fz_out *o = ctx;
	size_t value;

	fz_put(o, f, len);
	fz_put(o, "", 1);
	if (o->dkim == NULL || o->st != DKIM_STAT_OK)
		return;
	if (flt_dkim_hdr_is_sig(f, len, &value) &&
	    dkim_sig_syntax(o->dkim, (u_char *)(uintptr_t)f + value,
	                    len - value) != DKIM_STAT_OK)
		return;
	o->st = dkim_header(o->dkim, (u_char *)(uintptr_t)f, len);
}

/* fz_split - the message through the splitter in two parts; fields and
 * body into o. */
static void
fz_split(const uint8_t *msg, size_t len, size_t cut, struct fz_out *o)
{
	struct flt_dkim_hdr h = {0};
	const char *body;
	size_t blen;
	size_t parts[2][2] = {{0, cut}, {cut, len - cut}};
	bool in_body = false;

	for (int i = 0; i < 2; i++) {
		int rc =
		    flt_dkim_hdr_feed(&h, (const char *)msg + parts[i][0],
		                      parts[i][1], fz_field, o, &body, &blen);

		if (rc < 0)
			abort(); /* inputs are far below the limit */
		if (rc == 1 && !in_body)
			fz_put(o, "|", 1); /* where the body starts */
		if (rc == 1) {
			in_body = true;
			fz_put(o, body, blen);
		}
	}
	if (!h.done)
		flt_dkim_hdr_end(&h, fz_field, o);
	flt_dkim_hdr_reset(&h);
}

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

/* fz_verify - the whole message through libopendkim as dkim.c does. */
static void
fz_verify(const uint8_t *msg, size_t len)
{
	struct fz_out o = {0};
	struct flt_dkim_hdr h = {0};
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;
	_Bool testkey = 0;
	const char *body;
	size_t blen;
	int rc;

	o.dkim = dkim_verify(fz_lib(), (const u_char *)"fuzz", NULL, &o.st);
	if (o.dkim == NULL)
		return;
	rc = flt_dkim_hdr_feed(&h, (const char *)msg, len, fz_field, &o, &body,
	                       &blen);
	if (rc == 0)
		flt_dkim_hdr_end(&h, fz_field, &o);
	if (o.st == DKIM_STAT_OK)
		o.st = dkim_eoh(o.dkim);
	if (o.st == DKIM_STAT_OK && rc == 1 && blen > 0)
		o.st = dkim_body(o.dkim, (u_char *)(uintptr_t)body, blen);
	if (o.st == DKIM_STAT_OK) {
		(void)dkim_eom(o.dkim, &testkey);
		if (dkim_getsiglist(o.dkim, &sigs, &nsigs) != DKIM_STAT_OK)
			nsigs = 0;
		for (int i = 0; i < nsigs && i < 8; i++) {
			char b[64];
			size_t bl = sizeof(b);

			if (!(dkim_sig_getflags(sigs[i]) &
			      DKIM_SIGFLAG_PROCESSED))
				(void)dkim_sig_process(o.dkim, sigs[i]);
			(void)dkim_sig_getdomain(sigs[i]);
			(void)dkim_sig_getselector(sigs[i]);
			(void)dkim_sig_gettagvalue(sigs[i], 0, (u_char *)"a");
			(void)dkim_sig_getbh(sigs[i]);
			(void)dkim_sig_geterrorstr(dkim_sig_geterror(sigs[i]));
			(void)dkim_get_sigsubstring(o.dkim, sigs[i], b, &bl);
		}
		(void)dkim_getdomain(o.dkim);
	}
	dkim_free(o.dkim);
	flt_dkim_hdr_reset(&h);
	free(o.buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const uint8_t *msg;
	size_t len, cut;
	struct fz_out whole = {0}, split = {0};

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
	/* The splitter alone: whole and split agree. */
	fz_split(msg, len, 0, &whole);
	fz_split(msg, len, cut, &split);
	if (whole.len != split.len ||
	    (whole.len > 0 && memcmp(whole.buf, split.buf, whole.len) != 0))
		abort();
	free(whole.buf);
	free(split.buf);
	/* A private copy lets ASan see reads past the end. */
	uint8_t *copy = malloc(len + 1);

	if (copy == NULL)
		abort();
	memcpy(copy, msg, len);
	fz_verify(copy, len);
	free(copy);
	return 0;
}
