/*
 * Durability and lockout against the real daemon: SIGKILL at random
 * moments while a client changes PINs and initialises tokens, and wrong
 * PINs from several processes with a restart in between.
 */
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SO_PIN "so-pin-1234"
/* CI kills 200 times; the bench raises it with REMHSM_TEST_KILLS. */
static int kills(void)
{
	const char *n = getenv("REMHSM_TEST_KILLS");
	return n && atoi(n) > 0 ? atoi(n) : 200;
}

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static const char *const two_slots[] = {"--slots", "2", NULL};

static void setup(void)
{
	th_pki_make(&d);
	th_daemon_start(&d, two_slots);
	th_client_env(&d);
	p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

static CK_RV init_token(CK_SLOT_ID slot, const char *label)
{
	CK_UTF8CHAR padded[32];
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, strlen(label));
	return p11->C_InitToken(slot, (CK_UTF8CHAR_PTR)SO_PIN, strlen(SO_PIN),
				padded);
}

static CK_SESSION_HANDLE open_rw(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
	ck_assert_uint_eq(
		p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				   NULL, NULL, &h),
		CKR_OK);
	return h;
}

static CK_RV login(CK_SESSION_HANDLE h, CK_USER_TYPE user, const char *pin)
{
	return p11->C_Login(h, user, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static void provision_user_pin(const char *pin)
{
	ck_assert_uint_eq(init_token(0, "durable"), CKR_OK);
	CK_SESSION_HANDLE h = open_rw(0);
	ck_assert_uint_eq(login(h, CKU_SO, SO_PIN), CKR_OK);
	ck_assert_uint_eq(p11->C_InitPIN(h, (CK_UTF8CHAR_PTR)pin, strlen(pin)),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_CloseSession(h), CKR_OK);
}

/* What the client was told, and what it had asked when the daemon died. */
typedef struct progress {
	unsigned acked_pin, pending_pin;
	unsigned acked_label, pending_label;
	_Atomic unsigned changes;
} progress_t;

static void pin_text(unsigned n, char out[16])
{
	snprintf(out, 16, "pin-%06u", n);
}

static void label_text(unsigned n, char out[16])
{
	snprintf(out, 16, "label-%06u", n);
}

/* Changes the user PIN and re-initialises slot 1 until the daemon dies. */
static void *churn(void *arg)
{
	progress_t *p = arg;
	CK_SESSION_HANDLE h;
	if (p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
			       NULL, &h) != CKR_OK)
		return NULL;
	for (;;) {
		char old_pin[16], new_pin[16], label[16];
		pin_text(p->acked_pin, old_pin);
		p->pending_pin = p->acked_pin + 1;
		pin_text(p->pending_pin, new_pin);
		if (p11->C_SetPIN(h, (CK_UTF8CHAR_PTR)old_pin, strlen(old_pin),
				  (CK_UTF8CHAR_PTR)new_pin,
				  strlen(new_pin)) != CKR_OK)
			return NULL;
		p->acked_pin = p->pending_pin;
		p->pending_label = p->acked_label + 1;
		label_text(p->pending_label, label);
		if (init_token(1, label) != CKR_OK)
			return NULL;
		p->acked_label = p->pending_label;
		p->changes += 2;
	}
}

static int integrity_ok(const char *state_dir)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/store.db", state_dir);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return 0;
	sqlite3_stmt *st;
	int ok = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
				    NULL) == SQLITE_OK &&
		 sqlite3_step(st) == SQLITE_ROW &&
		 strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}

/* Either what was acknowledged, or the change in flight when it died. */
static void check_pin_survived(progress_t *p)
{
	CK_SESSION_HANDLE h = open_rw(0);
	char pin[16];
	pin_text(p->acked_pin, pin);
	CK_RV rv = login(h, CKU_USER, pin);
	if (rv != CKR_OK && p->pending_pin != p->acked_pin) {
		pin_text(p->pending_pin, pin);
		rv = login(h, CKU_USER, pin);
		p->acked_pin = p->pending_pin;
	}
	ck_assert_msg(rv == CKR_OK, "no acknowledged PIN logs in (0x%lx)", rv);
	p->pending_pin = p->acked_pin;
	ck_assert_uint_eq(p11->C_CloseSession(h), CKR_OK);
}

static void check_label_survived(progress_t *p)
{
	CK_TOKEN_INFO info;
	ck_assert_uint_eq(p11->C_GetTokenInfo(1, &info), CKR_OK);
	char acked[16], pending[16];
	label_text(p->acked_label, acked);
	label_text(p->pending_label, pending);
	if (p->acked_label == 0) {
		ck_assert(memcmp(info.label, pending, strlen(pending)) == 0 ||
			  !(info.flags & CKF_TOKEN_INITIALIZED));
	} else if (memcmp(info.label, acked, strlen(acked)) != 0) {
		ck_assert_msg(memcmp(info.label, pending, strlen(pending)) == 0,
			      "label %.32s is neither %s nor %s", info.label,
			      acked, pending);
		p->acked_label = p->pending_label;
	}
	p->pending_label = p->acked_label;
}

START_TEST(test_acknowledged_changes_survive_sigkill)
{
	provision_user_pin("pin-000000");
	progress_t p = {0};
	unsigned seed = (unsigned)time(NULL);
	srand(seed);
	int total = kills();
	for (int kill_no = 0; kill_no < total; kill_no++) {
		pthread_t thread;
		unsigned before = p.changes;
		pthread_create(&thread, NULL, churn, &p);
		/* Kill mid-activity: once a change of this round is
		 * acknowledged, at a random moment within the next 10 ms. */
		for (int wait = 0; wait < 2000 && p.changes == before; wait++)
			usleep(1000);
		usleep((useconds_t)(rand() % 10000));
		th_daemon_kill(&d);
		pthread_join(thread, NULL);
		ck_assert_msg(integrity_ok(d.dir),
			      "integrity check failed after kill %d", kill_no);
		th_daemon_restart(&d, two_slots);
		check_pin_survived(&p);
		check_label_survived(&p);
	}
	ck_assert_msg(p.changes >= 2u * (unsigned)total,
		      "only %u changes (seed %u)", (unsigned)p.changes, seed);
}
END_TEST

static void wrong_logins(int count)
{
	CK_SESSION_HANDLE h;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h),
		CKR_OK);
	for (int i = 0; i < count; i++)
		ck_assert_uint_eq(login(h, CKU_USER, "not-the-pin"),
				  CKR_PIN_INCORRECT);
}

static CK_FLAGS token_flags(void)
{
	CK_TOKEN_INFO info;
	ck_assert_uint_eq(p11->C_GetTokenInfo(0, &info), CKR_OK);
	return info.flags;
}

START_TEST(test_lockout_counts_across_processes_and_restarts)
{
	provision_user_pin("0000");
	pid_t kids[3];
	for (int k = 0; k < 3; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			/* Its own application, its own connections. */
			if (p11->C_Initialize(NULL) != CKR_OK)
				_exit(2);
			wrong_logins(2);
			_exit(0);
		}
	}
	for (int k = 0; k < 3; k++) {
		int status;
		waitpid(kids[k], &status, 0);
		ck_assert_int_eq(WEXITSTATUS(status), 0);
	}
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, two_slots);
	wrong_logins(3);
	CK_FLAGS flags = token_flags();
	ck_assert_uint_eq(flags & CKF_USER_PIN_FINAL_TRY,
			  CKF_USER_PIN_FINAL_TRY);
	ck_assert_uint_eq(flags & CKF_USER_PIN_LOCKED, 0);
	wrong_logins(1);
	ck_assert_uint_eq(token_flags() & CKF_USER_PIN_LOCKED,
			  CKF_USER_PIN_LOCKED);
	CK_SESSION_HANDLE h = open_rw(0);
	ck_assert_uint_eq(login(h, CKU_USER, "0000"), CKR_PIN_LOCKED);
	ck_assert(th_log_contains(
		&d, "event=pin-incorrect slot=0 role=user failures=10"));
}
END_TEST
START_TEST(test_store_files_reveal_no_pin_or_label)
{
	provision_user_pin("USER-PIN-ZX81");
	CK_SESSION_HANDLE h = open_rw(0);
	ck_assert_uint_eq(login(h, CKU_USER, "USER-PIN-ZX81"), CKR_OK);
	const char *needles[] = {"USER-PIN-ZX81", SO_PIN, "durable"};
	const char *files[] = {"store.db", "store.db-wal", "store.db-shm"};
	for (size_t f = 0; f < 3; f++) {
		char path[400];
		snprintf(path, sizeof(path), "%s/%s", d.dir, files[f]);
		for (size_t n = 0; n < 3; n++)
			ck_assert_msg(!th_file_contains(path, needles[n],
							strlen(needles[n])),
				      "%s found in %s", needles[n], files[f]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("durability");
	TCase *tc = tcase_create("durability");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_acknowledged_changes_survive_sigkill);
	tcase_add_test(tc, test_lockout_counts_across_processes_and_restarts);
	tcase_add_test(tc, test_store_files_reveal_no_pin_or_label);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
