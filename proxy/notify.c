/* SPDX-License-Identifier: MIT */
/*
 * notify.c - systemd's readiness protocol (sd_notify(3)): one datagram with
 * "KEY=VALUE" lines to the unix socket named by $NOTIFY_SOCKET (a leading
 * '@' names an abstract socket).  A few lines, so no libsystemd: a failure
 * to notify is logged and never stops mxguard.
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

void
px_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	if (path == NULL || path[0] == '\0')
		return;
	if ((path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path)) {
		px_log_warn("NOTIFY_SOCKET \"%s\" is not a unix socket path",
		            path);
		return;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	                     (struct sockaddr *)&sun, len) < 0)
		px_log_warn("cannot notify systemd (%s): %s", state,
		            strerror(errno));
	if (fd >= 0)
		close(fd);
}
