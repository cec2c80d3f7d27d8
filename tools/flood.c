#include "flood.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int parse_server(const char *server, struct sockaddr_in *addr)
{
	char host[64];
	const char *colon = strrchr(server, ':');
	if (!colon || (size_t)(colon - server) >= sizeof(host))
		return -1;
	memcpy(host, server, (size_t)(colon - server));
	host[colon - server] = '\0';
	*addr = (struct sockaddr_in){.sin_family = AF_INET,
				     .sin_port =
					     htons((uint16_t)atoi(colon + 1))};
	return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

unsigned rh_flood_start(rh_flood_t *f, const char *server, unsigned n)
{
	/* A TLS record header announcing a 512-byte ClientHello, and its
	 * first bytes: the daemon waits for the rest until its handshake
	 * timeout. */
	static const unsigned char partial[] = {0x16, 0x03, 0x01, 0x02, 0x00,
						0x01, 0x00, 0x01, 0xfc};
	struct sockaddr_in addr;
	f->n = 0;
	f->fds = calloc(n, sizeof(*f->fds));
	if (!f->fds || parse_server(server, &addr) < 0)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
		    send(fd, partial, sizeof(partial), MSG_NOSIGNAL) < 0) {
			close(fd);
			continue;
		}
		f->fds[f->n++] = fd;
	}
	return f->n;
}

void rh_flood_stop(rh_flood_t *f)
{
	for (unsigned i = 0; i < f->n; i++)
		close(f->fds[i]);
	free(f->fds);
	f->fds = NULL;
	f->n = 0;
}
