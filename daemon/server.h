/* The network server: libuv TCP, TLS through memory BIOs, framing, limits. */
#ifndef RHD_SERVER_H
#define RHD_SERVER_H

#include <sys/socket.h>

#include "access.h"
#include "config.h"
#include "engine.h"

/*
 * Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight calls
 * finish (bounded by the drain timeout) and returns 0. Returns -1 when the
 * server cannot start (the reason is logged).
 */
int rhd_server_run(const rhd_config_t *cfg, rhd_engine_t *engine);

/* The CRL, identity form and access list the configuration names, onto
 * tls and into access; 0, or -1 with the reason in err. */
int rhd_server_access_setup(const rhd_config_t *cfg, SSL_CTX *tls,
			    rhd_access_t *access, char *err, size_t err_len);

/* A listen setting ("127.0.0.1:5697", "[::1]:0") as an address; -1 when it
 * is not a numeric IPv4 or bracketed IPv6 address and a port. */
int rhd_server_parse_listen(const char *listen, struct sockaddr_storage *addr);

#endif
