/*
 * Admission under a connection flood: peers without a certificate hold
 * idle sockets and stalled ClientHellos, reopening each one the daemon
 * closes. Established clients and new ones with a certificate must still
 * be served. The flood runs from 127.0.0.2 (another address) or from the
 * clients' own 127.0.0.1; it is bounded in sockets and in time.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define FLOOD_SOCKETS 1100
#define FLOOD_MAX_SECONDS 30

static th_daemon_t d;

typedef struct flood {
	const char *source;
	int stall_every; /* every n-th socket sends half a ClientHello */
	pthread_t thread;
	atomic_int stop;
	atomic_long reopened;
	struct pollfd fds[FLOOD_SOCKETS];
	int sent[FLOOD_SOCKETS];
} flood_t;

static flood_t flood;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int flood_socket(const char *source)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in from = {.sin_family = AF_INET};
	inet_pton(AF_INET, source, &from.sin_addr);
	struct sockaddr_in to = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)d.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0 ||
	    (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 &&
	     errno != EINPROGRESS)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The first bytes of a TLS record announcing a ClientHello of 512 bytes,
 * and no more of it. */
static const uint8_t half_hello[] = {0x16, 0x03, 0x01, 0x02, 0x00,
				     0x01, 0x00, 0x01, 0xfc, 0x03};

static void flood_tend(flood_t *f, int i)
{
	struct pollfd *p = &f->fds[i];
	if (p->fd >= 0 && (p->revents & POLLOUT) && !f->sent[i]) {
		f->sent[i] = 1;
		if (f->stall_every && i % f->stall_every == 0 &&
		    send(p->fd, half_hello, sizeof(half_hello), MSG_NOSIGNAL) <
			    0)
			p->revents |= POLLHUP;
	}
	char sink[256];
	if (p->fd >= 0 && (p->revents & (POLLIN | POLLHUP | POLLERR)) &&
	    recv(p->fd, sink, sizeof(sink), 0) <= 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (p->fd < 0) {
		p->fd = flood_socket(f->source);
		f->sent[i] = 0;
		atomic_fetch_add(&f->reopened, 1);
	}
	p->events = f->sent[i] ? POLLIN : POLLIN | POLLOUT;
}

static void *flood_run(void *arg)
{
	flood_t *f = arg;
	double until = now_s() + FLOOD_MAX_SECONDS;
	for (int i = 0; i < FLOOD_SOCKETS; i++)
		f->fds[i].fd = -1;
	while (!atomic_load(&f->stop) && now_s() < until) {
		for (int i = 0; i < FLOOD_SOCKETS; i++)
			flood_tend(f, i);
		poll(f->fds, FLOOD_SOCKETS, 20);
	}
	for (int i = 0; i < FLOOD_SOCKETS; i++)
		if (f->fds[i].fd >= 0)
			close(f->fds[i].fd);
	return NULL;
}

static void flood_start(const char *source, int stall_every)
{
	memset(&flood, 0, sizeof(flood));
	flood.source = source;
	flood.stall_every = stall_every;
	ck_assert_int_eq(pthread_create(&flood.thread, NULL, flood_run, &flood),
			 0);
	usleep(500 * 1000); /* let it take every place it can */
}

static void flood_stop(void)
{
	atomic_store(&flood.stop, 1);
	pthread_join(flood.thread, NULL);
}

static void setup(void)
{
	th_pki_make(&d);
	th_daemon_start(&d, NULL);
}

static void teardown(void)
{
	flood_stop();
	th_daemon_cleanup(&d);
}

static uint64_t next_id = 10;

/* One call on an application's connection: a session and random bytes. */
static int serves(th_conn_t *c)
{
	Remhsm__OpenSessionReq open = REMHSM__OPEN_SESSION_REQ__INIT;
	open.flags = CKF_SERIAL_SESSION;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = next_id++;
	req.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	req.open_session = &open;
	if (th_send_request(c, &req) < 0)
		return 0;
	Remhsm__Response *r = th_recv_response(c);
	int ok = r && r->rv == CKR_OK && r->id == req.id;
	if (r)
		remhsm__response__free_unpacked(r, NULL);
	return ok;
}

/* A new application: TLS with its certificate, Hello, one call. */
static int new_application(th_conn_t *c)
{
	if (th_tls_connect(&d, TH_CERT_GOOD, c) < 0)
		return 0;
	Remhsm__Response *hello = th_hello(c, 1);
	int ok = hello && hello->rv == CKR_OK;
	if (hello)
		remhsm__response__free_unpacked(hello, NULL);
	return ok && serves(c);
}

START_TEST(test_flood_from_another_address_leaves_new_clients_served)
{
	flood_start("127.0.0.2", 2);
	double worst = 0;
	for (int i = 0; i < 20; i++) {
		double started = now_s();
		th_conn_t c;
		ck_assert_msg(new_application(&c), "application %d refused", i);
		double took = now_s() - started;
		ck_assert_msg(took < 1.0, "application %d took %.3f s", i,
			      took);
		worst = took > worst ? took : worst;
		th_conn_close(&c);
	}
	fprintf(stderr,
		"flood from 127.0.0.2 (%d sockets, %ld reopened): 20 of 20 "
		"served, the slowest in %.1f ms\n",
		FLOOD_SOCKETS, atomic_load(&flood.reopened), worst * 1e3);
	ck_assert_int_gt(atomic_load(&flood.reopened), FLOOD_SOCKETS);
	ck_assert(th_log_contains(&d, "handshakes from this address"));
}
END_TEST

START_TEST(test_flood_from_the_clients_address_spares_established_ones)
{
	th_conn_t established;
	ck_assert(new_application(&established));
	flood_start("127.0.0.1", 0);
	ck_assert(serves(&established));
	double started = now_s();
	th_conn_t c;
	int attempts = 1;
	while (!new_application(&c) && now_s() - started < 5.0) {
		th_conn_close(&c);
		attempts++;
	}
	double took = now_s() - started;
	ck_assert_msg(took < 5.0, "no new application in %.3f s", took);
	fprintf(stderr,
		"flood from 127.0.0.1: a new application served in %.1f ms "
		"(%d attempts)\n",
		took * 1e3, attempts);
	ck_assert(serves(&established));
	th_conn_close(&c);
	th_conn_close(&established);
	ck_assert(
		th_log_contains(&d, "gave way: handshakes from this address"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("admission");
	TCase *tc = tcase_create("admission");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(
		tc, test_flood_from_another_address_leaves_new_clients_served);
	tcase_add_test(
		tc,
		test_flood_from_the_clients_address_spares_established_ones);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
