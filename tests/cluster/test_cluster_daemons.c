/*
 * Three remhsmd on one PostgreSQL store (store-shared), each with its
 * own state folder and the first one's PKI and store key, driven through
 * the real module: an application on one daemon, others (forked children)
 * on the others. What one writes the others see; wrong PINs sent through
 * all three at once lock the PIN after exactly pin-max-failures; two
 * daemons initialising one blank token at once leave one winner; a PIN
 * changed through one ends the logins on the others; an application
 * whose daemon is killed signs on through another without an error.
 */
#include <check.h>
#include <dlfcn.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pg_db.h"

#define DAEMONS 3
#define MAX_FAILURES 5

static th_daemon_t d[DAEMONS]; /* d[0] made the PKI and the store key */
static void *module;
static CK_FUNCTION_LIST *p11;
static th_pg_db_t db;
static char pki[300], key[600], ca[600], cert[600], tls_key[600];

/* Daemon i on the shared store, with d[0]'s store key and PKI. */
static void start_daemon(int i)
{
	const char *flags[] = {"--store",
			       db.location,
			       "--store-shared",
			       "--store-poll-ms",
			       "50",
			       "--store-connections",
			       "2",
			       "--slots",
			       "2",
			       "--pin-max-failures",
			       "5",
			       "--store-key",
			       key,
			       "--tls-ca",
			       ca,
			       "--tls-cert",
			       cert,
			       "--tls-key",
			       tls_key,
			       NULL};
	if (i > 0) {
		char dir[] = "/tmp/remhsm-peer-XXXXXX";
		ck_assert_ptr_nonnull(mkdtemp(dir));
		memset(&d[i], 0, sizeof(d[i]));
		snprintf(d[i].dir, sizeof(d[i].dir), "%s", dir);
		snprintf(d[i].pki, sizeof(d[i].pki), "%s", pki);
		snprintf(d[i].log, sizeof(d[i].log), "%s/remhsmd.log", dir);
	}
	th_daemon_start(&d[i], flags);
}

static void setup(void)
{
	th_pg_db_create(&db, "remhsm_cluster");
	th_pki_make(&d[0]);
	snprintf(pki, sizeof(pki), "%s", d[0].pki);
	snprintf(key, sizeof(key), "%s/store.key", d[0].dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", d[0].pki);
	snprintf(cert, sizeof(cert), "%s/server.pem", d[0].pki);
	snprintf(tls_key, sizeof(tls_key), "%s/server.key", d[0].pki);
	for (int i = 0; i < DAEMONS; i++)
		start_daemon(i);
	th_client_env(&d[0]);
	p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	th_provision_token(p11, 0, "so-pin-1", "0000");
}

static void teardown(void)
{
	p11->C_Finalize(NULL);
	dlclose(module);
	for (int i = DAEMONS - 1; i >= 0; i--)
		th_daemon_cleanup(&d[i]);
	th_pg_db_drop(&db);
}

/* In a forked child: the module initialised again on daemon i alone. No
 * Check assertions in a child; _exit(2) when it cannot start. */
static void child_on(int i)
{
	char server[64];
	snprintf(server, sizeof(server), "127.0.0.1:%d", d[i].port);
	setenv("REMHSM_SERVER", server, 1);
	if (p11->C_Initialize(NULL) != CKR_OK)
		_exit(2);
}

static CK_SESSION_HANDLE child_session(int i, const char *pin)
{
	child_on(i);
	CK_SESSION_HANDLE s;
	if (p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
			       NULL, &s) != CKR_OK)
		_exit(2);
	if (pin && p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin,
				strlen(pin)) != CKR_OK)
		_exit(2);
	return s;
}

/* Children that start together: each, once ready, waits for the go... */
static void wait_for_go(int go[2])
{
	close(go[1]);
	char byte;
	if (read(go[0], &byte, 1) != 0)
		_exit(2);
}

/* ...which the parent gives once all of them have had time to connect. */
static void give_go(int go[2])
{
	close(go[0]);
	usleep(300 * 1000);
	close(go[1]);
}

/* The child's exit status (its answer), waited for. */
static int child_result(pid_t pid)
{
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "child died: status %d", status);
	return WEXITSTATUS(status);
}

static CK_ULONG find_private_keys(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *one)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE found[4];
	CK_ULONG n = 0;
	if (p11->C_FindObjectsInit(s, t, 1) != CKR_OK)
		return 99;
	CK_RV rv = p11->C_FindObjects(s, found, 4, &n);
	p11->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		return 99;
	if (n && one)
		*one = found[0];
	return n;
}

/* Waits (bounded) for the other daemons to hear of a write: a few of
 * their poll intervals. */
static void let_them_hear(void)
{
	usleep(400 * 1000);
}

/* A user session on d[0] and a token key in it, which has signed once
 * (its key is cached). */
static CK_OBJECT_HANDLE signing_key(CK_SESSION_HANDLE *s)
{
	*s = th_user_session(p11, 0, "0000");
	CK_OBJECT_HANDLE pub, priv;
	th_generate_p256(p11, *s, CK_TRUE, &pub, &priv);
	ck_assert_uint_eq(th_sign_ecdsa(p11, *s, priv), CKR_OK);
	return priv;
}

/* A key made through d[0] is found and used through d[1], which destroys
 * it; d[0]'s application, which had signed with it (its key cached), can
 * use it no longer and finds it gone. */
START_TEST(test_an_object_lives_and_dies_the_same_on_every_daemon)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv = signing_key(&s);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		CK_SESSION_HANDLE cs = child_session(1, "0000");
		CK_OBJECT_HANDLE k = 0;
		if (find_private_keys(cs, &k) != 1)
			_exit(3);
		if (th_sign_ecdsa(p11, cs, k) != CKR_OK)
			_exit(4);
		_exit(p11->C_DestroyObject(cs, k) == CKR_OK ? 0 : 5);
	}
	ck_assert_int_eq(child_result(pid), 0);
	let_them_hear();
	ck_assert_uint_ne(th_sign_ecdsa(p11, s, priv), CKR_OK);
	ck_assert_uint_eq(find_private_keys(s, NULL), 0);
}
END_TEST

/* Four wrong user PINs from each of three applications, one on each
 * daemon, all at once: exactly MAX_FAILURES are counted as wrong, the
 * others find the PIN locked, and it is locked everywhere after. */
START_TEST(test_wrong_pins_through_three_daemons_lock_after_exactly_n)
{
	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	pid_t pids[DAEMONS];
	for (int i = 0; i < DAEMONS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] != 0)
			continue;
		CK_SESSION_HANDLE cs = child_session(i, NULL);
		wait_for_go(go);
		int incorrect = 0;
		for (int n = 0; n < 4; n++) {
			CK_RV rv = p11->C_Login(cs, CKU_USER,
						(CK_UTF8CHAR_PTR) "9999", 4);
			if (rv == CKR_PIN_INCORRECT)
				incorrect++;
			else if (rv != CKR_PIN_LOCKED)
				_exit(100);
		}
		_exit(incorrect);
	}
	give_go(go);
	int incorrect = 0;
	for (int i = 0; i < DAEMONS; i++)
		incorrect += child_result(pids[i]);
	ck_assert_int_eq(incorrect, MAX_FAILURES);
	let_them_hear();
	CK_TOKEN_INFO info;
	ck_assert_uint_eq(p11->C_GetTokenInfo(0, &info), CKR_OK);
	ck_assert(info.flags & CKF_USER_PIN_LOCKED);
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_PIN_LOCKED);
}
END_TEST

/* Two daemons initialise blank slot 1 at once with different SO PINs:
 * one succeeds, the other finds the winner's token (whose SO PIN is not
 * its), and a third daemon shows the winner's label. */
START_TEST(test_two_initialisations_of_one_blank_token_have_one_winner)
{
	int go[2];
	ck_assert_int_eq(pipe(go), 0);
	pid_t pids[2];
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] != 0)
			continue;
		child_on(i);
		CK_UTF8CHAR label[32];
		memset(label, ' ', sizeof(label));
		label[0] = (CK_UTF8CHAR)('A' + i);
		char pin[16];
		snprintf(pin, sizeof(pin), "so-pin-%c", 'A' + i);
		wait_for_go(go);
		CK_RV rv = p11->C_InitToken(1, (CK_UTF8CHAR_PTR)pin,
					    strlen(pin), label);
		_exit(rv == CKR_OK ? 0 : rv == CKR_PIN_INCORRECT ? 1 : 100);
	}
	give_go(go);
	int a = child_result(pids[0]), b = child_result(pids[1]);
	ck_assert_msg(a + b == 1, "results %d and %d", a, b);
	let_them_hear();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_on(2);
		CK_TOKEN_INFO info;
		if (p11->C_GetTokenInfo(1, &info) != CKR_OK ||
		    !(info.flags & CKF_TOKEN_INITIALIZED))
			_exit(100);
		_exit(info.label[0]);
	}
	ck_assert_int_eq(child_result(pid), a == 0 ? 'A' : 'B');
}
END_TEST

/* The user PIN changed through d[1] ends d[0]'s application's login
 * (and its lease): its signing key needs a login again, with the new
 * PIN, which d[0] knows at once. */
START_TEST(test_a_pin_changed_on_one_daemon_ends_logins_on_the_others)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv = signing_key(&s);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		CK_SESSION_HANDLE cs = child_session(1, "0000");
		_exit(p11->C_SetPIN(cs, (CK_UTF8CHAR_PTR) "0000", 4,
				    (CK_UTF8CHAR_PTR) "1111", 4) == CKR_OK
			      ? 0
			      : 3);
	}
	ck_assert_int_eq(child_result(pid), 0);
	let_them_hear();
	ck_assert(th_log_contains(&d[0], "event=token-changed-elsewhere "
					 "slot=0 what=pin"));
	ck_assert_uint_ne(th_sign_ecdsa(p11, s, priv), CKR_OK);
	CK_SESSION_INFO info;
	ck_assert_uint_eq(p11->C_GetSessionInfo(s, &info), CKR_OK);
	ck_assert_uint_eq(info.state, CKS_RW_PUBLIC_SESSION);
	ck_assert_uint_eq(
		p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "1111", 4), CKR_OK);
	ck_assert_uint_eq(th_sign_ecdsa(p11, s, priv), CKR_OK);
}
END_TEST

static void name_all_daemons(void)
{
	char server[256];
	snprintf(server, sizeof(server),
		 "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", d[0].port, d[1].port,
		 d[2].port);
	setenv("REMHSM_SERVER", server, 1);
}

/* Thirty applications that name all three daemons, with
 * REMHSM_SERVER_CHOICE=spread: every daemon gets some of them (all land
 * on one with a chance of 3 * (2/3)^30, about 1 in 70000). */
START_TEST(test_spread_applications_reach_every_daemon)
{
	int before[DAEMONS];
	for (int i = 0; i < DAEMONS; i++)
		before[i] = th_log_count(&d[i], "event=hello ", NULL);
	for (int n = 0; n < 30; n++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			name_all_daemons();
			setenv("REMHSM_SERVER_CHOICE", "spread", 1);
			CK_SESSION_HANDLE cs;
			_exit(p11->C_Initialize(NULL) == CKR_OK &&
					      p11->C_OpenSession(
						      0, CKF_SERIAL_SESSION,
						      NULL, NULL, &cs) == CKR_OK
				      ? 0
				      : 3);
		}
		ck_assert_int_eq(child_result(pid), 0);
	}
	for (int i = 0; i < DAEMONS; i++) {
		int got = th_log_count(&d[i], "event=hello ", NULL) - before[i];
		printf("spread: daemon %d had %d of 30 applications\n", i, got);
		ck_assert_int_gt(got, 0);
	}
}
END_TEST

/* Nine applications that name all three daemons, with
 * REMHSM_SERVER_CHOICE=least-busy, started one after the other and each
 * keeping its connection: each daemon gets three (with first, one would
 * get all nine; with spread, three each by chance 1 in 12). Then one more
 * application signs through the daemon it was given, which is killed: it
 * signs on, through one of the others, without a failure. */
START_TEST(test_least_busy_applications_balance_the_daemons)
{
	p11->C_Finalize(NULL); /* its connections to d[0] go */
	name_all_daemons();
	setenv("REMHSM_SERVER_CHOICE", "least-busy", 1);
	int before[DAEMONS], go[2];
	for (int i = 0; i < DAEMONS; i++)
		before[i] = th_log_count(&d[i], "event=hello ", NULL);
	ck_assert_int_eq(pipe(go), 0);
	pid_t pids[9];
	for (int n = 0; n < 9; n++) {
		int ready[2];
		ck_assert_int_eq(pipe(ready), 0);
		pids[n] = fork();
		ck_assert_int_ge(pids[n], 0);
		if (pids[n] == 0) {
			close(ready[0]);
			CK_SESSION_HANDLE cs;
			if (p11->C_Initialize(NULL) != CKR_OK ||
			    p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL,
					       NULL, &cs) != CKR_OK)
				_exit(3);
			close(ready[1]);
			wait_for_go(go);
			_exit(0);
		}
		close(ready[1]);
		char byte;
		ck_assert_int_eq(read(ready[0], &byte, 1), 0);
		close(ready[0]);
		usleep(100 * 1000); /* the probes' connections are closed */
	}
	for (int i = 0; i < DAEMONS; i++) {
		int got = th_log_count(&d[i], "event=hello ", NULL) - before[i];
		printf("least-busy: daemon %d had %d of 9 applications\n", i,
		       got);
		ck_assert_int_eq(got, 3);
		before[i] += got;
	}
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv = signing_key(&s);
	int on = -1;
	for (int i = 0; i < DAEMONS; i++)
		if (th_log_count(&d[i], "event=hello ", NULL) > before[i])
			on = i;
	ck_assert_int_ge(on, 0);
	let_them_hear();
	th_daemon_kill(&d[on]);
	int failed = 0;
	for (int i = 0; i < 100; i++)
		failed += th_sign_ecdsa(p11, s, priv) != CKR_OK;
	ck_assert_int_eq(failed, 0);
	give_go(go);
	for (int n = 0; n < 9; n++)
		ck_assert_int_eq(child_result(pids[n]), 0);
	unsetenv("REMHSM_SERVER_CHOICE");
}
END_TEST

/* An application that names all three daemons signs in a loop; the one
 * it signs through is killed: not one signature fails. */
START_TEST(test_signing_goes_on_when_a_daemon_is_killed)
{
	p11->C_Finalize(NULL);
	char server[256];
	snprintf(server, sizeof(server),
		 "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", d[0].port, d[1].port,
		 d[2].port);
	setenv("REMHSM_SERVER", server, 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	CK_OBJECT_HANDLE pub, priv;
	th_generate_p256(p11, s, CK_TRUE, &pub, &priv);
	let_them_hear();
	int failed = 0, signed_ok = 0;
	double killed_at = 0, first_after = 0;
	for (int i = 0; i < 400; i++) {
		if (i == 100) {
			th_daemon_kill(&d[0]);
			killed_at = th_now_us();
		}
		CK_RV rv = th_sign_ecdsa(p11, s, priv);
		failed += rv != CKR_OK;
		signed_ok += rv == CKR_OK;
		if (rv == CKR_OK && killed_at && !first_after)
			first_after = th_now_us();
	}
	printf("cluster-daemon-kill: %d signatures, %d failed, first after "
	       "the kill in %.0f ms\n",
	       signed_ok, failed, (first_after - killed_at) / 1000);
	ck_assert_int_eq(failed, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cluster_daemons");
	TCase *tc = tcase_create("three daemons");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc,
		       test_an_object_lives_and_dies_the_same_on_every_daemon);
	tcase_add_test(
		tc, test_wrong_pins_through_three_daemons_lock_after_exactly_n);
	tcase_add_test(
		tc,
		test_two_initialisations_of_one_blank_token_have_one_winner);
	tcase_add_test(
		tc, test_a_pin_changed_on_one_daemon_ends_logins_on_the_others);
	tcase_add_test(tc, test_spread_applications_reach_every_daemon);
	tcase_add_test(tc, test_least_busy_applications_balance_the_daemons);
	tcase_add_test(tc, test_signing_goes_on_when_a_daemon_is_killed);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
