/*
 * A handshake flood for `remhsm bench --flood N`: N connections to the
 * daemon that send the start of a TLS ClientHello and then nothing, as a
 * slow or malicious client would, held open while the bench measures.
 */
#ifndef RH_FLOOD_H
#define RH_FLOOD_H

typedef struct rh_flood {
	int *fds;
	unsigned n;
} rh_flood_t;

/* Opens them to server ("ADDRESS:PORT", numeric IPv4); the number opened,
 * which a daemon at its connection limit keeps below n. */
unsigned rh_flood_start(rh_flood_t *f, const char *server, unsigned n);
void rh_flood_stop(rh_flood_t *f);

#endif
