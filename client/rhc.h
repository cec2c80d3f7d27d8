/* Internals of the client module, shared by its files. Never exported. */
#ifndef RHC_H
#define RHC_H

#include <limits.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "remhsm.pb-c.h"

/* --- configuration (client/config.c) ------------------------------------ */

typedef struct rhc_config {
	char server[256];
	char ca[PATH_MAX];
	char cert[PATH_MAX];
	char key[PATH_MAX];
	unsigned connect_timeout_ms;
	unsigned call_timeout_ms;
	/* How long a call keeps trying to reach a daemon that went away
	 * (restarting, or the link dropped); 0 fails at once. */
	unsigned reconnect_timeout_ms;
	/* How long a thread waiting for an answer polls the socket before
	 * sleeping (REMHSM_SPIN_US); see transport_tls.c. */
	unsigned spin_us;
	int debug;
	int compat_freertos; /* REMHSM_COMPAT=freertos */
	/* REMHSM_SERVER_CHOICE: where in the list of servers a new
	 * application starts (see transport_tls.c). */
	enum { RHC_FIRST, RHC_SPREAD, RHC_LEAST_BUSY } server_choice;
} rhc_config_t;

/* Reads REMHSM_CONF (if set) and then REMHSM_SERVER, REMHSM_CA, REMHSM_CERT,
 * REMHSM_KEY, REMHSM_TIMEOUT_MS, REMHSM_RECONNECT_MS, REMHSM_SPIN_US,
 * REMHSM_COMPAT, REMHSM_SERVER_CHOICE,
 * REMHSM_DEBUG over it. */
int rhc_config_load(rhc_config_t *cfg, char *err, size_t err_len);

/* The module's clock: CLOCK_MONOTONIC (client/transport_tls.c). */
uint64_t rhc_now_ns(void);
static inline int64_t rhc_now_ms(void)
{
	return (int64_t)(rhc_now_ns() / 1000000u);
}

void rhc_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rhc_set_debug(int on);

/* --- transport (client/transport_tls.c) --------------------------------- */

typedef struct rhc_link rhc_link_t;

/* A transport is a small table so another one can be added without
 * touching the stubs. Each function returns 0 or a negative rh_err. */
/* Asks the daemon at the end of a new link how busy it is (a probe Hello):
 * its client connections in *load; < 0 when it cannot tell. */
typedef int (*rhc_ask_load_t)(rhc_link_t *link, uint32_t *load);

typedef struct rhc_transport {
	/* ask_load is for RHC_LEAST_BUSY: the links it was asked on are
	 * passed on (the best one) or closed. */
	int (*connect)(const rhc_config_t *cfg, SSL_CTX *tls,
		       rhc_ask_load_t ask_load, rhc_link_t **out);
	int (*send)(rhc_link_t *link, const uint8_t *frame, size_t len,
		    unsigned timeout_ms);
	/* Receives one frame's payload into a new buffer (free with free()). */
	int (*receive)(rhc_link_t *link, uint32_t max_payload,
		       uint8_t **payload, size_t *len, unsigned timeout_ms);
	/* 0 when an idle link can carry a call; the daemon never speaks
	 * unprompted, so anything readable on it means it was closed. */
	int (*check_idle)(rhc_link_t *link);
	/* graceful: say goodbye to the daemon; else (after fork) just let go.
	 */
	void (*close)(rhc_link_t *link, int graceful);
	/* Frees the link this thread was opening, when the thread ends in
	 * the middle of connect (a deleted FreeRTOS task). */
	void (*abandon)(void);
} rhc_transport_t;

extern const rhc_transport_t rhc_tls_transport;

/* A new application's place in the server list: the first, a random one
 * (spread), or one still to be chosen (least busy); no server passed over.
 */
void rhc_servers_start(const rhc_config_t *cfg);

/* Why this thread's last connection failed: the address and the system's
 * reason, or which certificate the TLS handshake refused and why; "" after
 * a connection that worked. */
const char *rhc_link_last_error(void);

#endif
