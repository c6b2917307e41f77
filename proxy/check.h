/* SPDX-License-Identifier: MIT */
/*
 * check.h - `mxguard check`: offline scoring of messages (check.c).
 */
#ifndef MX_CHECK_H
#define MX_CHECK_H

/* px_check_main - argv[0] is the first word after "check".  Returns the
 * exit status (0 accept, 1 tag, 2 tempfail, 3 reject, 64/66/78 errors). */
int px_check_main(int argc, char **argv);

#endif
