/*
 * remhsmd on a PostgreSQL store (a real server that
 * tests/support/with_postgres.sh starts), through the real module: keys
 * survive a restart; while the database is out of reach, keys the daemon
 * holds go on signing, writes answer CKR_DEVICE_ERROR, and once it is
 * back the same daemon writes again.
 */
#include <check.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pg_db.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static th_pg_db_t db;
/* Reads and finds on two reader sessions beside the writer's. */
static const char *flags[] = {"--store", db.location, "--store-connections",
			      "3", NULL};

/* text with the test's database name for its one %s. */
static void sql_on_db(const char *before, const char *after)
{
	char text[512];
	snprintf(text, sizeof(text), "%s%s%s", before, db.name, after);
	th_pg_sql(db.admin, text);
}

static void setup(void)
{
	th_pg_db_create(&db, "remhsmd");
	p11 = th_start_provisioned(&d, flags, &module);
}

static void teardown(void)
{
	p11->C_Finalize(NULL);
	dlclose(module);
	th_daemon_cleanup(&d);
	th_pg_db_drop(&db);
}

static CK_OBJECT_HANDLE find_private_key(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_FindObjectsInit(s, t, 1), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjects(s, &h, 1, &n), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(s), CKR_OK);
	ck_assert_uint_eq(n, 1);
	return h;
}

START_TEST(test_keys_survive_a_restart)
{
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	CK_OBJECT_HANDLE pub, priv;
	th_generate_p256(p11, s, CK_TRUE, &pub, &priv);
	ck_assert_uint_eq(th_sign_ecdsa(p11, s, priv), CKR_OK);
	p11->C_Finalize(NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, flags);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	s = th_user_session(p11, 0, "0000");
	ck_assert_uint_eq(th_sign_ecdsa(p11, s, find_private_key(s)), CKR_OK);
}
END_TEST

static int run_cli(const char *args)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "%s %s >%s/cli.out 2>&1", REMHSM_CLI_PATH,
		 args, d.dir);
	int status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* remhsm store copy moves the daemon's PostgreSQL store to a SQLite file;
 * remhsm store check finds the copy whole, and the daemon serves it: the
 * key made on PostgreSQL signs. */
START_TEST(test_remhsm_store_copy_moves_a_served_store)
{
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	CK_OBJECT_HANDLE pub, priv;
	th_generate_p256(p11, s, CK_TRUE, &pub, &priv);
	p11->C_Finalize(NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);

	char copied[600], args[2048], out[700];
	snprintf(copied, sizeof(copied), "sqlite:%s/copied.db", d.dir);
	snprintf(out, sizeof(out), "%s/cli.out", d.dir);
	snprintf(args, sizeof(args), "store copy --state-dir %s '%s' %s", d.dir,
		 db.location, copied);
	ck_assert_int_eq(run_cli(args), 0);
	ck_assert(th_file_contains(out, "1 tokens, 2 objects copied", 26));
	snprintf(args, sizeof(args), "store copy --state-dir %s '%s' %s", d.dir,
		 db.location, copied);
	ck_assert_int_eq(run_cli(args), 1); /* the copy is not empty now */
	ck_assert(th_file_contains(out, "is not empty", 12));
	snprintf(args, sizeof(args), "store check --state-dir %s --store %s",
		 d.dir, copied);
	ck_assert_int_eq(run_cli(args), 0);
	ck_assert(th_file_contains(out, "0 problems", 10));

	const char *on_copy[] = {"--store", copied, NULL};
	th_daemon_restart(&d, on_copy);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	s = th_user_session(p11, 0, "0000");
	ck_assert_uint_eq(th_sign_ecdsa(p11, s, find_private_key(s)), CKR_OK);
}
END_TEST

START_TEST(test_signing_goes_on_while_the_database_is_away)
{
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	CK_OBJECT_HANDLE pub, priv, pub2, priv2;
	th_generate_p256(p11, s, CK_TRUE, &pub, &priv);
	ck_assert_uint_eq(th_sign_ecdsa(p11, s, priv), CKR_OK);

	sql_on_db("ALTER DATABASE ", " ALLOW_CONNECTIONS false");
	sql_on_db("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		  "WHERE datname = '",
		  "'");
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(th_sign_ecdsa(p11, s, priv), CKR_OK);
	CK_BYTE params[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
			    0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, params, sizeof(params)},
				{CKA_TOKEN, &yes, sizeof(yes)}};
	CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &yes, sizeof(yes)},
				 {CKA_SIGN, &yes, sizeof(yes)}};
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	ck_assert_uint_eq(p11->C_GenerateKeyPair(s, &gen, pub_t, 2, priv_t, 2,
						 &pub2, &priv2),
			  CKR_DEVICE_ERROR);
	ck_assert(th_log_contains(&d, "event=store-failed op=object-create "
				      "slot=0 reason=\"store I/O error: "));
	ck_assert(
		th_log_contains(&d, "is not currently accepting connections"));

	sql_on_db("ALTER DATABASE ", " ALLOW_CONNECTIONS true");
	ck_assert_uint_eq(p11->C_GenerateKeyPair(s, &gen, pub_t, 2, priv_t, 2,
						 &pub2, &priv2),
			  CKR_OK);
	ck_assert_uint_eq(th_sign_ecdsa(p11, s, priv2), CKR_OK);
	/* Each step in the log, once: the session lost, then replaced. */
	ck_assert(th_log_contains(&d, "event=store-connection-lost "
				      "where=\"postgresql store 127.0.0.1:"));
	ck_assert(th_log_contains(&d, "event=store-reconnected "
				      "where=\"postgresql store 127.0.0.1:"));
	int replaced = th_log_count(&d, "event=store-reconnected", NULL);
	int readers = th_log_count(&d, "event=store-reconnected",
				   "(a reader session)");
	ck_assert_int_eq(replaced - readers, 1); /* the writer's session */
	ck_assert_int_eq(th_log_count(&d, "event=store-connection-lost", NULL),
			 replaced);
}
END_TEST

/* A second remhsmd on the same store and store key, with the first one's
 * certificates: a standby, waiting for the writer's lock. */
static pid_t start_standby(const char *dir, int port)
{
	char listen[64], key[600], ca[600], cert[600], tls_key[600], log[600];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(key, sizeof(key), "%s/store.key", d.dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", d.pki);
	snprintf(cert, sizeof(cert), "%s/server.pem", d.pki);
	snprintf(tls_key, sizeof(tls_key), "%s/server.key", d.pki);
	snprintf(log, sizeof(log), "%s/remhsmd.log", dir);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		execl(th_remhsmd_path(), th_remhsmd_path(), "--listen", listen,
		      "--state-dir", dir, "--store", db.location, "--store-key",
		      key, "--tls-ca", ca, "--tls-cert", cert, "--tls-key",
		      tls_key, "--kdf-scrypt-n", "1024", "--store-standby",
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int file_has(const char *path, const char *needle)
{
	return th_file_contains(path, needle, strlen(needle));
}

/* Two daemons on one store, the second a standby; the module names both.
 * The first dies: the standby takes the store over, and the application
 * goes on signing in the session it had, with the key it made. */
START_TEST(test_a_standby_takes_over_and_the_client_follows)
{
	char dir[64] = "/tmp/remhsm-standby-XXXXXX", log[128], server[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(log, sizeof(log), "%s/remhsmd.log", dir);
	int port = th_free_port();
	pid_t standby = start_standby(dir, port);
	for (int i = 0; i < 500 && !file_has(log, "state=waiting"); i++)
		usleep(10000);
	ck_assert(file_has(log, "event=store-standby state=waiting"));
	ck_assert_int_lt(th_tcp_connect(port), 0); /* not serving yet */

	p11->C_Finalize(NULL);
	snprintf(server, sizeof(server), "127.0.0.1:%d,127.0.0.1:%d", d.port,
		 port);
	setenv("REMHSM_SERVER", server, 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	CK_OBJECT_HANDLE pub, priv;
	th_generate_p256(p11, s, CK_TRUE, &pub, &priv);
	ck_assert_uint_eq(th_sign_ecdsa(p11, s, priv), CKR_OK);

	th_daemon_kill(&d);
	CK_RV rv = CKR_DEVICE_ERROR;
	double started = th_now_us();
	while (rv != CKR_OK && th_now_us() - started < 15e6) {
		rv = th_sign_ecdsa(p11, s, priv);
		if (rv != CKR_OK)
			usleep(100 * 1000);
	}
	ck_assert_msg(rv == CKR_OK, "no signature after the takeover: 0x%lx",
		      rv);
	printf("standby-takeover: first signature %.0f ms after the kill\n",
	       (th_now_us() - started) / 1000);
	ck_assert(file_has(log, "event=store-standby state=active"));
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(th_sign_ecdsa(p11, s, priv), CKR_OK);
	kill(standby, SIGTERM);
	waitpid(standby, NULL, 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_pg_daemon");
	TCase *tc = tcase_create("daemon");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_keys_survive_a_restart);
	tcase_add_test(tc, test_signing_goes_on_while_the_database_is_away);
	tcase_add_test(tc, test_remhsm_store_copy_moves_a_served_store);
	tcase_add_test(tc, test_a_standby_takes_over_and_the_client_follows);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
