/*
 * An application that keeps signing while the daemon restarts 20 times and
 * its connection is cut 20 times: the module reconnects, restores the
 * session and its login (through the lease, never the PIN) and replays
 * the signature whose init it held, so the application sees no error, the
 * same session and key handles, and every signature verifies (checked by
 * OpenSSL against the public key read once at the start). The links run
 * through a relay in this process, so cuts happen wherever the bytes are,
 * mid-request included. Also: what cannot be restored fails with the
 * documented code.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <openssl/evp.h>
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

#define RESTARTS 20
#define CUTS 20
#define MAX_PAIRS 64

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;
static CK_OBJECT_HANDLE pub, priv;
static EVP_PKEY *public_key;

/* --- a relay between the module and the daemon, whose links we can cut */

static struct {
	int listen_fd;
	pthread_t thread;
	atomic_int stop;
	atomic_int cut; /* bumped to close every open pair */
	atomic_int pairs_opened;
} relay;

typedef struct pair {
	int a, b;
} pair_t;

static int connect_daemon(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)d.port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Copies what one side has to the other; -1 when either side is done. */
static int forward(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf));
	if (n <= 0)
		return -1;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w <= 0)
			return -1;
		off += w;
	}
	return 0;
}

static void close_pair(pair_t *p)
{
	close(p->a);
	close(p->b);
	p->a = p->b = -1;
}

static void accept_pair(pair_t *pairs, size_t *n)
{
	int client = accept(relay.listen_fd, NULL, NULL);
	if (client < 0)
		return;
	int daemon = connect_daemon();
	if (daemon < 0 || *n == MAX_PAIRS) {
		close(client);
		if (daemon >= 0)
			close(daemon);
		return;
	}
	pairs[(*n)++] = (pair_t){client, daemon};
	atomic_fetch_add(&relay.pairs_opened, 1);
}

static void *relay_main(void *arg)
{
	(void)arg;
	pair_t pairs[MAX_PAIRS];
	size_t n = 0;
	int seen_cut = 0;
	while (!atomic_load(&relay.stop)) {
		if (atomic_load(&relay.cut) != seen_cut) {
			seen_cut = atomic_load(&relay.cut);
			for (size_t i = 0; i < n; i++)
				close_pair(&pairs[i]);
			n = 0;
		}
		struct pollfd p[1 + 2 * MAX_PAIRS];
		p[0] = (struct pollfd){relay.listen_fd, POLLIN, 0};
		for (size_t i = 0; i < n; i++) {
			p[1 + 2 * i] = (struct pollfd){pairs[i].a, POLLIN, 0};
			p[2 + 2 * i] = (struct pollfd){pairs[i].b, POLLIN, 0};
		}
		if (poll(p, 1 + 2 * n, 20) <= 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			int dead = (p[1 + 2 * i].revents &&
				    forward(pairs[i].a, pairs[i].b) < 0) ||
				   (p[2 + 2 * i].revents &&
				    forward(pairs[i].b, pairs[i].a) < 0);
			if (dead)
				close_pair(&pairs[i]);
		}
		size_t kept = 0;
		for (size_t i = 0; i < n; i++)
			if (pairs[i].a >= 0)
				pairs[kept++] = pairs[i];
		n = kept;
		if (p[0].revents & POLLIN)
			accept_pair(pairs, &n);
	}
	for (size_t i = 0; i < n; i++)
		close_pair(&pairs[i]);
	return NULL;
}

static int relay_start(void)
{
	relay.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(
		bind(relay.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(relay.listen_fd, 64), 0);
	ck_assert_int_eq(
		getsockname(relay.listen_fd, (struct sockaddr *)&a, &len), 0);
	atomic_store(&relay.stop, 0);
	ck_assert_int_eq(pthread_create(&relay.thread, NULL, relay_main, NULL),
			 0);
	return ntohs(a.sin_port);
}

static void relay_stop(void)
{
	atomic_store(&relay.stop, 1);
	pthread_join(relay.thread, NULL);
	close(relay.listen_fd);
}

/* --- the application */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static EVP_PKEY *read_public_key(CK_OBJECT_HANDLE key)
{
	CK_BYTE point[67];
	CK_ATTRIBUTE a = {CKA_EC_POINT, point, sizeof(point)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, &a, 1),
			  CKR_OK);
	ck_assert_uint_eq(a.ulValueLen, 67);
	return th_p256_public_key(point);
}

static void setup(void)
{
	th_pki_make(&d);
	th_daemon_start(&d, NULL);
	th_client_env(&d);
	char server[64];
	snprintf(server, sizeof(server), "127.0.0.1:%d", relay_start());
	setenv("REMHSM_SERVER", server, 1);
	p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	th_provision_token(p11, 0, "so-pin-1", "0000");
	session = th_user_session(p11, 0, "0000");
	th_generate_p256(p11, session, CK_TRUE, &pub, &priv);
	public_key = read_public_key(pub);
}

static void teardown(void)
{
	p11->C_Finalize(NULL);
	dlclose(module);
	relay_stop();
	EVP_PKEY_free(public_key);
	th_daemon_cleanup(&d);
}

typedef struct signer {
	pthread_t thread;
	atomic_int stop;
	atomic_int signed_ok;
	atomic_int errors;
	atomic_int bad_signatures;
	CK_RV last_error;
} signer_t;

static void *sign_loop(void *arg)
{
	signer_t *s = arg;
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	for (unsigned i = 0; !atomic_load(&s->stop); i++) {
		CK_BYTE hash[32], sig[64];
		memset(hash, (int)i, sizeof(hash));
		memcpy(hash, &i, sizeof(i));
		CK_ULONG len = sizeof(sig);
		CK_RV rv = p11->C_SignInit(session, &ecdsa, priv);
		if (rv == CKR_OK)
			rv = p11->C_Sign(session, hash, 32, sig, &len);
		if (rv != CKR_OK) {
			s->last_error = rv;
			atomic_fetch_add(&s->errors, 1);
		} else if (!th_ecdsa_verifies(public_key, hash, sig, len)) {
			atomic_fetch_add(&s->bad_signatures, 1);
		} else {
			atomic_fetch_add(&s->signed_ok, 1);
		}
	}
	return NULL;
}

/* Waits until the signer has made `more` signatures past `from`; the
 * seconds that took. */
static double progress(signer_t *s, int from, int more)
{
	double t0 = now_s();
	while (atomic_load(&s->signed_ok) < from + more &&
	       atomic_load(&s->errors) == 0 && now_s() - t0 < 30)
		usleep(1000);
	ck_assert_int_ge(atomic_load(&s->signed_ok), from + more);
	return now_s() - t0;
}

START_TEST(test_signing_survives_restarts_and_cut_links)
{
	signer_t s = {0};
	ck_assert_int_eq(pthread_create(&s.thread, NULL, sign_loop, &s), 0);
	progress(&s, 0, 10);
	/* Recovery: from the restarted daemon listening to the application's
	 * next signature (the module's backoff, reconnect and restore). */
	double worst_restart = 0, total_restart = 0, worst_cut = 0;
	for (int i = 0; i < RESTARTS; i++) {
		ck_assert_int_eq(th_daemon_stop(&d), 0);
		int before = atomic_load(&s.signed_ok);
		th_daemon_restart(&d, NULL);
		double took = progress(&s, before, 1);
		progress(&s, before, 5);
		total_restart += took;
		worst_restart = took > worst_restart ? took : worst_restart;
	}
	for (int i = 0; i < CUTS; i++) {
		int before = atomic_load(&s.signed_ok);
		atomic_fetch_add(&relay.cut, 1);
		double took = progress(&s, before, 5);
		worst_cut = took > worst_cut ? took : worst_cut;
	}
	atomic_store(&s.stop, 1);
	pthread_join(s.thread, NULL);
	printf("restart-recovery: %d restarts, from listening to the next "
	       "signature mean %.1f ms, worst %.1f ms; %d cut links, from the "
	       "cut to 5 more signatures worst %.1f ms; %d signatures, %d "
	       "connections\n",
	       RESTARTS, 1000 * total_restart / RESTARTS, 1000 * worst_restart,
	       CUTS, 1000 * worst_cut, atomic_load(&s.signed_ok),
	       atomic_load(&relay.pairs_opened));
	ck_assert_msg(atomic_load(&s.errors) == 0,
		      "%d errors reached the application, the last 0x%lx",
		      atomic_load(&s.errors), s.last_error);
	ck_assert_int_eq(atomic_load(&s.bad_signatures), 0);
	/* The session and the key kept their handles: the loop used them. */
	CK_SESSION_INFO info;
	ck_assert_uint_eq(p11->C_GetSessionInfo(session, &info), CKR_OK);
	ck_assert_uint_eq(info.state, CKS_RW_USER_FUNCTIONS);
}
END_TEST

/* A multi-part signature half done when the daemon restarts cannot go on:
 * the daemon that held its digest state is gone. The operation ends with
 * CKR_OPERATION_NOT_INITIALIZED; the session goes on. */
START_TEST(test_half_done_multi_part_operation_is_lost)
{
	CK_MECHANISM mech = {CKM_ECDSA_SHA256, NULL, 0};
	ck_assert_uint_eq(p11->C_SignInit(session, &mech, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR) "part", 4),
			  CKR_OK);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, NULL);
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(p11->C_SignFinal(session, sig, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
	ck_assert_uint_eq(p11->C_SignInit(session, &mech, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR) "part", 4),
			  CKR_OK);
	len = sizeof(sig);
	ck_assert_uint_eq(p11->C_SignFinal(session, sig, &len), CKR_OK);
}
END_TEST

/* Session objects live in the daemon's memory only. */
START_TEST(test_session_objects_are_lost)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_VALUE, "x", 1}};
	CK_OBJECT_HANDLE data;
	ck_assert_uint_eq(p11->C_CreateObject(session, t, 2, &data), CKR_OK);
	atomic_fetch_add(&relay.cut, 1);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, NULL);
	CK_BYTE value[4];
	CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof(value)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, data, &a, 1),
			  CKR_OBJECT_HANDLE_INVALID);
	a.ulValueLen = sizeof(value);
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, priv, &a, 1),
			  CKR_ATTRIBUTE_SENSITIVE);
}
END_TEST

/* A lease lasts --login-lease-s: past it, the session comes back without
 * its login, and private objects answer as to a logged-out application. */
START_TEST(test_an_expired_lease_restores_no_login)
{
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	static const char *const short_lease[] = {"--login-lease-s", "1", NULL};
	th_daemon_restart(&d, short_lease);
	ck_assert_uint_eq(p11->C_Logout(session), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_OK);
	sleep(2);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, short_lease);
	CK_SESSION_INFO info;
	ck_assert_uint_eq(p11->C_GetSessionInfo(session, &info), CKR_OK);
	ck_assert_uint_eq(info.state, CKS_RW_PUBLIC_SESSION);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_BYTE hash[32] = {1}, sig[64];
	CK_ULONG len = sizeof(sig);
	CK_RV rv = p11->C_SignInit(session, &ecdsa, priv);
	if (rv == CKR_OK)
		rv = p11->C_Sign(session, hash, 32, sig, &len);
	ck_assert_uint_eq(rv, CKR_KEY_HANDLE_INVALID);
	ck_assert_int_eq(th_log_contains(&d, "event=restore"), 1);
	ck_assert_int_eq(th_log_contains(&d, "lost-logins=1"), 1);
	/* Logging in again is all it takes. */
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_OK);
}
END_TEST

/* A PIN change voids every lease issued under the old PIN. */
START_TEST(test_a_pin_change_voids_the_lease)
{
	ck_assert_uint_eq(p11->C_SetPIN(session, (CK_UTF8CHAR_PTR) "0000", 4,
					(CK_UTF8CHAR_PTR) "1234", 4),
			  CKR_OK);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, NULL);
	CK_SESSION_INFO info;
	ck_assert_uint_eq(p11->C_GetSessionInfo(session, &info), CKR_OK);
	ck_assert_uint_eq(info.state, CKS_RW_PUBLIC_SESSION);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4),
		CKR_OK);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_restart");
	TCase *tc = tcase_create("restart");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_signing_survives_restarts_and_cut_links);
	tcase_add_test(tc, test_half_done_multi_part_operation_is_lost);
	tcase_add_test(tc, test_session_objects_are_lost);
	tcase_add_test(tc, test_an_expired_lease_restores_no_login);
	tcase_add_test(tc, test_a_pin_change_voids_the_lease);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
