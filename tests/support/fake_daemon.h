/* A fake remhsmd for the module's tests: the daemon's certificate, a
 * Hello answered truthfully, and every other request handed to the test's
 * answer function. No remhsmd runs. */
#ifndef TH_FAKE_DAEMON_H
#define TH_FAKE_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "harness.h"
#include "remhsm.pb-c.h"

/* Answers one request that is not a Hello; 0 closes the connection. */
typedef int (*th_answer_fn)(SSL *ssl, const Remhsm__Request *req);

typedef struct th_fake {
	int fd;
	SSL_CTX *ctx;
	pthread_t thread;
	atomic_int stop;
	th_answer_fn answer;
	uint32_t hello_max_frame; /* the Hello's max_frame; set before start */
} th_fake_t;

/* Listens on a free loopback port with d's server certificate, points
 * REMHSM_SERVER at it and serves connections one at a time. */
void th_fake_start(th_fake_t *f, const th_daemon_t *d, th_answer_fn answer);
void th_fake_stop(th_fake_t *f);

void th_fake_send_bytes(SSL *ssl, const void *buf, size_t len);
void th_fake_send(SSL *ssl, Remhsm__Response *resp);

#endif
