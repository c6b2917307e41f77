/* SPDX-License-Identifier: MIT */
/*
 * smtp_parse.h - SMTP command line parser (RFC 5321 section 4.1, RFC 1869
 * ESMTP parameters, RFC 6531 UTF-8 addresses).
 *
 * The parser is pure: it takes one command line (without its CRLF), does no
 * I/O and keeps no state.  Results point into the caller's line, so they are
 * valid only as long as that line is.
 */
#ifndef MX_SMTP_PARSE_H
#define MX_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

enum px_verb {
	PX_VERB_UNKNOWN = 0,
	PX_VERB_HELO,
	PX_VERB_EHLO,
	PX_VERB_MAIL,
	PX_VERB_RCPT,
	PX_VERB_DATA,
	PX_VERB_RSET,
	PX_VERB_NOOP,
	PX_VERB_QUIT,
	PX_VERB_HELP,
	PX_VERB_VRFY,
	PX_VERB_EXPN,
	PX_VERB_STARTTLS,
	PX_VERB_AUTH,
	PX_VERB_BDAT,
	PX_VERB_ETRN,
	PX_VERB_TURN,
	PX_VERB_ATRN,
	PX_VERB_XCLIENT,
	PX_VERB_XFORWARD,
};

/* What went wrong, so the session can pick the reply. */
enum px_parse_status {
	PX_PARSE_OK = 0,
	PX_PARSE_UNKNOWN,   /* 500 5.5.2: verb not recognised */
	PX_PARSE_SYNTAX,    /* 501 5.5.4: bad arguments or parameters */
	PX_PARSE_BAD_ADDR,  /* 501 5.1.7 (MAIL) / 501 5.1.3 (RCPT) */
	PX_PARSE_BAD_BYTES, /* 500 5.5.2: NUL, bare CR/LF or bad UTF-8 */
};

/* A string slice borrowed from the caller's line. */
struct px_slice {
	const char *p;
	size_t len;
};

struct px_cmd {
	enum px_verb verb;
	/* Everything after the verb and one space, trailing spaces removed
	 * (empty when there are no arguments). */
	struct px_slice arg;
	/* MAIL/RCPT only: the mailbox between < and >, with any RFC 5321
	 * source route ("@a,@b:") removed; empty for "<>". */
	struct px_slice addr;
	/* MAIL/RCPT only: the ESMTP parameters after ">", leading spaces
	 * removed; walk them with px_param_next(). */
	struct px_slice params;
	bool null_path;  /* MAIL FROM:<> */
	bool has_route;  /* a source route was present and removed */
	bool addr_utf8;  /* the mailbox holds 8-bit (valid UTF-8) bytes */
	bool postmaster; /* RCPT TO:<Postmaster> without a domain */
};

/*
 * px_cmd_parse - parse one command line (no CRLF).  Verbs are
 * case-insensitive.  "MAIL FROM:" and "RCPT TO:" accept one optional space
 * after the colon (as deployed clients send it); the path must be in angle
 * brackets; the mailbox is checked against RFC 5321 section 4.1.2 (dot-string
 * or quoted-string local part, domain or address literal), with UTF-8 allowed
 * per RFC 6531.  Argument checks per verb: HELO/EHLO need one argument, DATA,
 * RSET, QUIT and STARTTLS take none, NOOP/HELP/VRFY/EXPN take anything.
 * Returns PX_PARSE_OK and fills *cmd, or another status with *error_r set to
 * a short static human text (e.g. "Syntax: MAIL FROM:<address>").
 */
enum px_parse_status px_cmd_parse(const char *line, size_t len,
                                  struct px_cmd *cmd, const char **error_r);

/* One ESMTP parameter "KEY[=VALUE]". */
struct px_param {
	struct px_slice key;
	struct px_slice value; /* len 0 and has_value false when absent */
	bool has_value;
};

/*
 * px_param_next - take the next parameter from *params (as set by
 * px_cmd_parse) and advance it.  Returns 1 with *param filled, 0 at the end,
 * -1 on a syntax error (RFC 5321 esmtp-param: keyword of alnum and '-',
 * starting with alnum; value of printable ASCII except '=' and SP, or UTF-8
 * when the caller allows it).
 */
int px_param_next(struct px_slice *params, struct px_param *param);

/* px_slice_eq_ci - true if the slice equals the NUL-terminated s, ignoring
 * ASCII case. */
bool px_slice_eq_ci(struct px_slice s, const char *str);

/*
 * px_xtext_valid - true if s is valid RFC 3461 xtext ("+" followed by two
 * upper-case hex digits, other chars in 33..126 except '+' and '=').
 */
bool px_xtext_valid(struct px_slice s);

/*
 * px_xtext_encode - encode src as RFC 3461 xtext into dst (size dstsize,
 * always NUL-terminated).  Returns the length it needed (excluding NUL); the
 * output is truncated when that is >= dstsize.
 */
size_t px_xtext_encode(const char *src, size_t len, char *dst, size_t dstsize);

#endif
