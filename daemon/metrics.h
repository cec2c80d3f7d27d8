/*
 * Metrics in Prometheus's text format, served on a listener of their own
 * (metrics-listen, loopback only, off by default): connections, sessions,
 * calls by name, mechanism and result with latency histograms, and login
 * failures. Every event loop counts its calls here; the scrapes are
 * served on the loop that started the listener.
 */
#ifndef RHD_METRICS_H
#define RHD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "engine.h"

typedef enum { RHD_CONN_ACCEPTED, RHD_CONN_REFUSED } rhd_conn_event_t;

void rhd_metrics_connection(rhd_conn_event_t what);
/* One call answered: its id, the mechanism its request names (0: none),
 * the result and how long it took. */
void rhd_metrics_call(unsigned call, uint64_t mechanism, uint64_t rv,
		      uint64_t ns);

/* Starts serving GET /metrics on listen ("127.0.0.1:9697", loopback
 * only); open_connections is read at each scrape. 0, or -1 with err. */
int rhd_metrics_start(uv_loop_t *loop, const char *listen, rhd_engine_t *engine,
		      const atomic_uint *open_connections, char *err,
		      size_t err_len);
void rhd_metrics_stop(void);

/* Whether listen names a loopback address (127.0.0.0/8 or [::1]). */
int rhd_metrics_listen_ok(const char *listen);

#endif
