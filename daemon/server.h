/* The network server: libuv TCP, TLS through memory BIOs, framing, limits. */
#ifndef RHD_SERVER_H
#define RHD_SERVER_H

#include "config.h"
#include "engine.h"

/*
 * Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight calls
 * finish (bounded by the drain timeout) and returns 0. Returns -1 when the
 * server cannot start (the reason is logged).
 */
int rhd_server_run(const rhd_config_t *cfg, rhd_engine_t *engine);

#endif
