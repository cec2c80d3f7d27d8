/*
 * remhsmd and its store: it refuses to start, saying which file and why,
 * when the store cannot be trusted or used; an altered token row costs
 * that token only.
 */
#include <check.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static th_daemon_t d;
static char path[512];

static void setup(void)
{
	th_pki_make(&d);
	th_daemon_start(&d, NULL);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
}

static const char *in_state(const char *file)
{
	snprintf(path, sizeof(path), "%s/%s", d.dir, file);
	return path;
}

/* Runs `program ARGS --state-dir STATE` with its output in a file; its
 * exit status, and what it wrote. */
static int run_on_state(const char *program, const char *args, char *out,
			size_t cap)
{
	char cmd[1600], out_path[400];
	snprintf(out_path, sizeof(out_path), "%s/run.out", d.dir);
	snprintf(cmd, sizeof(cmd), "timeout 10 %s %s --state-dir %s >%s 2>&1",
		 program, args, d.dir, out_path);
	int status = system(cmd);
	FILE *f = fopen(out_path, "r");
	size_t n = f ? fread(out, 1, cap - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs remhsmd on the state folder; its exit status and its log. */
static int run_daemon(char *log, size_t cap)
{
	return run_on_state(th_remhsmd_path(), "--listen 127.0.0.1:0", log,
			    cap);
}

static void assert_refuses(const char *file_named, const char *reason)
{
	char log[4096];
	ck_assert_int_eq(run_daemon(log, sizeof(log)), 1);
	ck_assert_msg(strstr(log, "event=start-failed"), "log: %s", log);
	ck_assert_msg(strstr(log, file_named), "log lacks %s: %s", file_named,
		      log);
	ck_assert_msg(strstr(log, reason), "log lacks '%s': %s", reason, log);
}

START_TEST(test_missing_store_key_is_refused)
{
	char key[512];
	snprintf(key, sizeof(key), "%s", in_state("store.key"));
	ck_assert_int_eq(unlink(key), 0);
	assert_refuses(key, "is missing");
	ck_assert_int_eq(access(key, F_OK), -1); /* no new key made */
}
END_TEST

/* The store key kept apart: a copy of the state folder alone does not
 * open, and says which key it lacks. */
START_TEST(test_store_key_apart_from_the_state_folder)
{
	char keys[400], key[450], copy[400], cmd[1400];
	snprintf(keys, sizeof(keys), "%s/keys", d.dir);
	snprintf(key, sizeof(key), "%s/store.key", keys);
	snprintf(copy, sizeof(copy), "%s/copied-state", d.dir);
	ck_assert_int_eq(mkdir(keys, 0700), 0);
	ck_assert_int_eq(mkdir(copy, 0700), 0);
	char start[2000];
	snprintf(start, sizeof(start),
		 "timeout 3 %s --listen 127.0.0.1:0 --state-dir %s --store-key "
		 "%s 2>%s/apart.log; true",
		 th_remhsmd_path(), copy, key, d.dir);
	ck_assert_int_eq(system(start), 0); /* made its store, then stopped */
	struct stat st;
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	snprintf(cmd, sizeof(cmd), "%s/store.key", copy);
	ck_assert_int_ne(access(cmd, F_OK), 0);
	snprintf(cmd, sizeof(cmd), "%s/store.db", copy);
	ck_assert_int_eq(access(cmd, F_OK), 0);
	/* The folder alone, under the state folder's default key path. */
	snprintf(cmd, sizeof(cmd),
		 "timeout 10 %s --listen 127.0.0.1:0 --state-dir %s "
		 "2>%s/alone.log",
		 th_remhsmd_path(), copy, d.dir);
	int status = system(cmd);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	snprintf(cmd, sizeof(cmd), "%s/alone.log", d.dir);
	ck_assert(th_file_contains(cmd, "its key", 7));
	ck_assert(
		th_file_contains(cmd, "copied-state/store.key is missing", 33));
}
END_TEST

/* The store setting: sqlite:PATH puts the store where it names; a scheme
 * no backend of this build serves stops the start, naming the scheme but
 * nothing else of the location (it may hold a password). */
START_TEST(test_the_store_setting_picks_the_backend_and_the_place)
{
	char location[700], log[4096], elsewhere[600];
	snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere.db", d.dir);
	snprintf(location, sizeof(location), "sqlite:%s", elsewhere);
	const char *flags[] = {"--store", location, NULL};
	th_daemon_start(&d, flags);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	ck_assert_int_eq(access(elsewhere, F_OK), 0);
	ck_assert_int_eq(run_on_state(th_remhsmd_path(),
				      "--listen 127.0.0.1:0 --store "
				      "mysql://remhsm:hunter2@127.0.0.1/remhsm",
				      log, sizeof(log)),
			 1);
	ck_assert_msg(strstr(log, "event=start-failed"), "log: %s", log);
	ck_assert_msg(strstr(log, "'mysql:...': no such store backend"),
		      "log: %s", log);
	ck_assert_msg(!strstr(log, "hunter2"), "log: %s", log);
}
END_TEST

/* A PostgreSQL store nobody serves (port 1): the start fails, naming the
 * server and why, never the password, in whichever form it was given. */
START_TEST(test_an_unreachable_postgresql_store_stops_the_start)
{
	const char *locations[] = {
		"postgresql://remhsm:hunter2@127.0.0.1:1/remhsm",
		"postgresql://remhsm@127.0.0.1:1/remhsm?password=hunter2",
	};
	for (size_t i = 0; i < 2; i++) {
		char args[300], log[4096];
		snprintf(args, sizeof(args), "--listen 127.0.0.1:0 --store %s",
			 locations[i]);
		ck_assert_int_eq(
			run_on_state(th_remhsmd_path(), args, log, sizeof(log)),
			1);
		ck_assert_msg(strstr(log, "event=start-failed"), "log: %s",
			      log);
		ck_assert_msg(
			strstr(log, "postgresql store 127.0.0.1:1/remhsm"),
			"log: %s", log);
		ck_assert_msg(strstr(log, "Connection refused"), "log: %s",
			      log);
		ck_assert_msg(!strstr(log, "hunter2"), "log: %s", log);
	}
}
END_TEST

START_TEST(test_wrong_store_key_is_refused)
{
	int fd = open(in_state("store.key"), O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
	close(fd);
	assert_refuses(in_state("store.db"), "does not open this store");
}
END_TEST

START_TEST(test_store_readable_by_others_is_refused)
{
	chmod(in_state("store.db"), 0644);
	assert_refuses(in_state("store.db"), "lets others read the store");
}
END_TEST

START_TEST(test_store_in_use_by_another_daemon_is_refused)
{
	th_daemon_restart(&d, NULL);
	assert_refuses(in_state("store.db"), "in use by another process");
	ck_assert_int_eq(th_daemon_stop(&d), 0);
}
END_TEST

START_TEST(test_newer_schema_is_refused)
{
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(in_state("store.db"), &db), SQLITE_OK);
	ck_assert_int_eq(
		sqlite3_exec(db, "PRAGMA user_version = 9", NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	assert_refuses(in_state("store.db"), "newer than this program");
}
END_TEST

/* The daemon again, slot 0 provisioned (and, with_key, a P-256 pair made
 * on it), then stopped. */
static void provision_then_stop(int with_key)
{
	th_daemon_restart(&d, NULL);
	th_client_env(&d);
	void *module;
	CK_FUNCTION_LIST *p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	th_provision_token(p11, 0, "so-pin-1", "0000");
	if (with_key) {
		CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
		CK_OBJECT_HANDLE pub, priv;
		th_generate_p256(p11, s, CK_TRUE, &pub, &priv);
	}
	p11->C_Finalize(NULL);
	dlclose(module);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
}

/* A whole store.db put back from an older copy: each of its rows agrees
 * with the others, but its write counter is below the one the daemon
 * recorded in its audit log. */
START_TEST(test_rolled_back_store_file_is_refused)
{
	char old_copy[600], cmd[1400];
	snprintf(old_copy, sizeof(old_copy), "%s/store.db.old", d.dir);
	snprintf(cmd, sizeof(cmd), "cp -p %s/store.db %s", d.dir, old_copy);
	ck_assert_int_eq(system(cmd), 0);
	provision_then_stop(0);
	snprintf(cmd, sizeof(cmd),
		 "cp -p %s %s/store.db && rm -f %s/store.db-*", old_copy, d.dir,
		 d.dir);
	ck_assert_int_eq(system(cmd), 0);
	assert_refuses("store.db is older than the one this daemon last ran on",
		       "Set store-rollback = warn");
	static const char *const warn[] = {"--store-rollback", "warn", NULL};
	th_daemon_restart(&d, warn);
	ck_assert(th_log_contains(&d, "event=store-rolled-back"));
}
END_TEST

/* remhsm store check, on a stopped daemon's store. */
static int store_check(char *out, size_t cap)
{
	return run_on_state(REMHSM_CLI_PATH, "store check", out, cap);
}

/* Four bytes of object 2's sealed record overwritten, as an editor of
 * store.db would (the daemon may be running: WAL lets the edit in). */
static void store_sql(const char *sql);

static void damage_object_2(void)
{
	store_sql("UPDATE objects SET record = substr(record, 1, 20) || "
		  "x'00ff00ff' || substr(record, 25) WHERE id = 2");
}

/* Every object row copied aside, and later put back over the rows then. */
static void store_sql(const char *sql)
{
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(in_state("store.db"), &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void copy_objects_aside(void)
{
	store_sql("CREATE TABLE saved AS SELECT * FROM objects");
}

static void put_objects_back(void)
{
	store_sql("UPDATE objects SET record = (SELECT record FROM saved "
		  "WHERE saved.id = objects.id)");
}

START_TEST(test_store_check_reports_every_damaged_row)
{
	provision_then_stop(1);
	char out[4096];
	ck_assert_int_eq(store_check(out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "1 tokens, 2 objects") &&
			      strstr(out, ": 0 problems"),
		      "%s", out);
	damage_object_2();
	ck_assert_int_eq(store_check(out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "tokens/0: the token's rows do not add up"),
		      "%s", out);
	ck_assert_msg(strstr(out, "objects/0/2: sealed record does not open"),
		      "%s", out);
	ck_assert_msg(strstr(out, ": 2 problems"), "%s", out);
}
END_TEST

/* The same beside a running daemon: a snapshot, taken while another
 * thread keeps creating token objects, adds up; the daemon writes on;
 * a record damaged meanwhile is named. */
static atomic_int writing;
static atomic_long created;

static void *create_objects(void *arg)
{
	CK_FUNCTION_LIST *p11 = arg;
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_BYTE value[64] = {1};
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},
			       {CKA_TOKEN, &yes, sizeof(yes)},
			       {CKA_VALUE, value, sizeof(value)}};
	long made = 0;
	for (int i = 0; i < 2000 && atomic_load(&writing); i++) {
		CK_OBJECT_HANDLE h;
		if (p11->C_CreateObject(s, tmpl, 3, &h) == CKR_OK)
			atomic_store(&created, ++made);
	}
	return (void *)made;
}

START_TEST(test_store_check_beside_a_running_daemon)
{
	provision_then_stop(1);
	th_daemon_restart(&d, NULL);
	th_client_env(&d);
	void *module;
	CK_FUNCTION_LIST *p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	atomic_store(&writing, 1);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, create_objects, p11), 0);
	/* The checks below run while objects are being made: once the writer
	 * has logged in (a KDF) and made its first, which on a loaded machine
	 * can take longer than the checks. */
	for (int i = 0; i < 1000 && atomic_load(&created) == 0; i++)
		usleep(10000);
	ck_assert_int_gt(atomic_load(&created), 0);
	char out[4096];
	for (int i = 0; i < 5; i++) {
		int rc = store_check(out, sizeof(out));
		ck_assert_msg(rc == 0 && strstr(out, ": 0 problems"),
			      "exit %d: %s", rc, out);
	}
	atomic_store(&writing, 0);
	void *made;
	pthread_join(t, &made);
	ck_assert_int_gt((long)made, 0);
	damage_object_2();
	ck_assert_int_eq(store_check(out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "objects/0/2: sealed record does not open"),
		      "%s", out);
	p11->C_Finalize(NULL);
	dlclose(module);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
}
END_TEST

/* The finding, under a running daemon: a key made sensitive, then its
 * row put back from a copy taken before, gave its private value back. */
static CK_RV read_value(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
			CK_OBJECT_HANDLE key)
{
	CK_BYTE value[64];
	CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof(value)};
	return p11->C_GetAttributeValue(s, key, &a, 1);
}

START_TEST(test_replayed_key_row_under_a_running_daemon_is_refused)
{
	provision_then_stop(0);
	th_daemon_restart(&d, NULL);
	th_client_env(&d);
	void *module;
	CK_FUNCTION_LIST *p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
	CK_ATTRIBUTE st[] = {{CKA_TOKEN, &yes, 1},
			     {CKA_SENSITIVE, &no, 1},
			     {CKA_EXTRACTABLE, &yes, 1}};
	CK_OBJECT_HANDLE pub, priv;
	ck_assert_uint_eq(
		p11->C_GenerateKeyPair(s, &gen, pt, 1, st, 3, &pub, &priv),
		CKR_OK);
	ck_assert_uint_eq(read_value(p11, s, priv), CKR_OK);
	copy_objects_aside();
	CK_ATTRIBUTE sensitive = {CKA_SENSITIVE, &yes, 1};
	ck_assert_uint_eq(p11->C_SetAttributeValue(s, priv, &sensitive, 1),
			  CKR_OK);
	ck_assert_uint_eq(read_value(p11, s, priv), CKR_ATTRIBUTE_SENSITIVE);
	put_objects_back();
	ck_assert_uint_eq(read_value(p11, s, priv), CKR_DEVICE_ERROR);
	ck_assert(th_log_contains(&d, "changed outside remhsmd"));
	p11->C_Finalize(NULL);
	dlclose(module);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
}
END_TEST

START_TEST(test_altered_token_row_costs_that_token_only)
{
	const char *const two[] = {"--slots", "2", NULL};
	th_daemon_restart(&d, two);
	th_client_env(&d);
	void *module;
	CK_FUNCTION_LIST *p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	CK_UTF8CHAR label[32];
	memset(label, ' ', sizeof(label));
	for (CK_SLOT_ID slot = 0; slot < 2; slot++)
		ck_assert_uint_eq(p11->C_InitToken(slot,
						   (CK_UTF8CHAR_PTR) "so-pin-1",
						   8, label),
				  CKR_OK);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(in_state("store.db"), &db), SQLITE_OK);
	ck_assert_int_eq(
		sqlite3_exec(
			db,
			/* Byte 31 changed whatever it was (a sealed record's
			 * bytes are random: it may already be 0xff). */
			"UPDATE tokens SET record = substr(record, 1, 30) || "
			"CASE WHEN substr(record, 31, 1) = x'ff' THEN x'00' "
			"ELSE x'ff' END || substr(record, 32) WHERE slot = 1",
			NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	th_daemon_restart(&d, two);
	ck_assert(th_log_contains(
		&d, "event=token-unavailable slot=1 row=tokens/1"));
	CK_TOKEN_INFO info;
	ck_assert_uint_eq(p11->C_GetTokenInfo(1, &info),
			  CKR_TOKEN_NOT_RECOGNIZED);
	ck_assert_uint_eq(p11->C_GetTokenInfo(0, &info), CKR_OK);
	ck_assert_uint_eq(info.flags & CKF_TOKEN_INITIALIZED,
			  CKF_TOKEN_INITIALIZED);
	p11->C_Finalize(NULL);
	dlclose(module);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store-daemon");
	TCase *tc = tcase_create("store-daemon");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_missing_store_key_is_refused);
	tcase_add_test(tc, test_wrong_store_key_is_refused);
	tcase_add_test(tc,
		       test_the_store_setting_picks_the_backend_and_the_place);
	tcase_add_test(tc,
		       test_an_unreachable_postgresql_store_stops_the_start);
	tcase_add_test(tc, test_store_key_apart_from_the_state_folder);
	tcase_add_test(tc, test_rolled_back_store_file_is_refused);
	tcase_add_test(tc, test_store_check_reports_every_damaged_row);
	tcase_add_test(tc, test_store_check_beside_a_running_daemon);
	tcase_add_test(tc,
		       test_replayed_key_row_under_a_running_daemon_is_refused);
	tcase_add_test(tc, test_store_readable_by_others_is_refused);
	tcase_add_test(tc, test_store_in_use_by_another_daemon_is_refused);
	tcase_add_test(tc, test_newer_schema_is_refused);
	tcase_add_test(tc, test_altered_token_row_costs_that_token_only);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
