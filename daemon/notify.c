#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int rhd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	/* '@' names an abstract socket, as systemd writes it. */
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(addr.sun_path))
		return -1;
	memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ssize_t sent;
	do
		sent = sendto(
			fd, state, strlen(state), MSG_NOSIGNAL,
			(struct sockaddr *)&addr,
			(socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				    len));
	while (sent < 0 && errno == EINTR);
	close(fd);
	return sent == (ssize_t)strlen(state) ? 0 : -1;
}

uint64_t rhd_notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	if (!usec || !*usec)
		return 0;
	if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	char *end = NULL;
	unsigned long long v = strtoull(usec, &end, 10);
	return *end == '\0' ? (uint64_t)v : 0;
}
