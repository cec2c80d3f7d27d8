#include "fake_daemon.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frames.h"
#include "rh_calls.h"
#include "rh_tls.h"

void th_fake_send_bytes(SSL *ssl, const void *buf, size_t len)
{
	size_t n = 0;
	SSL_write_ex(ssl, buf, len, &n);
}

void th_fake_send(SSL *ssl, Remhsm__Response *resp)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	ck_assert_int_eq(rh_frame_pack(&resp->base, &frame, &len), 0);
	th_fake_send_bytes(ssl, frame, len);
	free(frame);
}

static void answer_hello(th_fake_t *f, SSL *ssl, const Remhsm__Request *req)
{
	Remhsm__HelloResp hello = REMHSM__HELLO_RESP__INIT;
	hello.version = RH_PROTOCOL_VERSION;
	hello.max_frame = f->hello_max_frame;
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	resp.id = req->id;
	resp.result_case = REMHSM__RESPONSE__RESULT_HELLO;
	resp.hello = &hello;
	th_fake_send(ssl, &resp);
}

static void serve_connection(th_fake_t *f, SSL *ssl)
{
	Remhsm__Request *req;
	int keep = 1;
	while (keep &&
	       (req = th_read_request(ssl, RH_FRAME_DEFAULT_MAX)) != NULL) {
		if (req->call_case == REMHSM__REQUEST__CALL_HELLO)
			answer_hello(f, ssl, req);
		else
			keep = f->answer(ssl, req);
		remhsm__request__free_unpacked(req, NULL);
	}
}

static void *serve(void *arg)
{
	th_fake_t *f = arg;
	while (!atomic_load(&f->stop)) {
		struct pollfd p = {f->fd, POLLIN, 0};
		if (poll(&p, 1, 50) != 1)
			continue;
		int c = accept(f->fd, NULL, NULL);
		if (c < 0)
			continue;
		struct timeval tv = {2, 0};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		SSL *ssl = SSL_new(f->ctx);
		SSL_set_fd(ssl, c);
		if (SSL_accept(ssl) == 1)
			serve_connection(f, ssl);
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(c);
	}
	return NULL;
}

static int listen_loopback(th_fake_t *f)
{
	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(f->fd, 8), 0);
	ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

void th_fake_start(th_fake_t *f, const th_daemon_t *d, th_answer_fn answer)
{
	char server[64], cert[320], key[320], ca[320], err[256];
	snprintf(cert, sizeof(cert), "%s/server.pem", d->pki);
	snprintf(key, sizeof(key), "%s/server.key", d->pki);
	snprintf(ca, sizeof(ca), "%s/ca.pem", d->pki);
	rh_tls_files_t files = {ca, cert, key};
	f->ctx = rh_tls_server_ctx_new(&files, 0, err, sizeof(err));
	ck_assert_msg(f->ctx != NULL, "%s", err);
	f->answer = answer;
	atomic_store(&f->stop, 0);
	snprintf(server, sizeof(server), "127.0.0.1:%d", listen_loopback(f));
	setenv("REMHSM_SERVER", server, 1);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, serve, f), 0);
}

void th_fake_stop(th_fake_t *f)
{
	if (!f->ctx)
		return;
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	close(f->fd);
	SSL_CTX_free(f->ctx);
	f->ctx = NULL;
}
