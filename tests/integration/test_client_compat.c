/*
 * REMHSM_COMPAT=freertos: FreeRTOS's departures from the specification,
 * on only when asked for; the default stays strictly conformant.
 */
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;
static CK_OBJECT_HANDLE pub, priv;
static CK_BYTE hash[32] = "0123456789abcdef0123456789abcdef";

/* Starts the module in the mode given ("freertos" or NULL). */
static void start(const char *compat)
{
	if (compat)
		setenv("REMHSM_COMPAT", compat, 1);
	else
		unsetenv("REMHSM_COMPAT");
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
				   NULL, &session),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_OK);
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
	CK_ATTRIBUTE st[] = {{CKA_SIGN, &yes, 1},
			     {CKA_LABEL, "Device Priv TLS Key", 19}};
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &gen, pt, 1, st, 2,
						 &pub, &priv),
			  CKR_OK);
}

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

static CK_ULONG find_label(const char *label, size_t len)
{
	CK_ATTRIBUTE t = {CKA_LABEL, (void *)label, len};
	CK_OBJECT_HANDLE h;
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_FindObjectsInit(session, &t, 1), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjects(session, &h, 1, &n), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(session), CKR_OK);
	return n;
}

static CK_RV sign_after_length_query(void)
{
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_BYTE sig[64];
	CK_ULONG len = 0;
	ck_assert_uint_eq(p11->C_SignInit(session, &ecdsa, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, NULL, &len), CKR_OK);
	ck_assert_uint_eq(len, 64);
	/* FreeRTOS starts over with C_SignInit. */
	CK_RV rv = p11->C_SignInit(session, &ecdsa, priv);
	if (rv == CKR_OK)
		rv = p11->C_Sign(session, hash, 32, sig, &len);
	return rv;
}

START_TEST(test_freertos_mode_departs_where_freertos_needs)
{
	start("freertos");
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_OK);
	ck_assert_uint_eq(sign_after_length_query(), CKR_OK);
	ck_assert_uint_eq(find_label("Device Priv TLS Key", 20),
			  1); /* with NUL */
	ck_assert_uint_eq(find_label("Device Priv TLS Key", 19), 1);
	ck_assert(th_log_contains(&d, "compat=freertos"));
}
END_TEST

START_TEST(test_default_mode_stays_conformant)
{
	start(NULL);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_USER_ALREADY_LOGGED_IN);
	ck_assert_uint_eq(sign_after_length_query(), CKR_OPERATION_ACTIVE);
	ck_assert_uint_eq(find_label("Device Priv TLS Key", 20), 0);
	ck_assert_uint_eq(find_label("Device Priv TLS Key", 19), 1);
}
END_TEST

typedef struct racer {
	pthread_barrier_t *start;
	CK_SESSION_HANDLE session;
	CK_RV rv;
} racer_t;

static void *log_in(void *arg)
{
	racer_t *r = arg;
	pthread_barrier_wait(r->start);
	r->rv = p11->C_Login(r->session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4);
	return NULL;
}

/* Two tasks logging in at once on their own sessions: whichever wins,
 * FreeRTOS's mode answers both CKR_OK, even when the loser had its PIN
 * checked before the winner's login landed. */
START_TEST(test_freertos_mode_answers_concurrent_logins_ok)
{
	start("freertos");
	ck_assert_uint_eq(p11->C_Logout(session), CKR_OK);
	for (int round = 0; round < 20; round++) {
		pthread_barrier_t start_line;
		pthread_barrier_init(&start_line, NULL, 3);
		racer_t r[3];
		pthread_t t[3];
		for (int i = 0; i < 3; i++) {
			r[i] = (racer_t){&start_line, 0, 0};
			ck_assert_uint_eq(
				p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL,
						   NULL, &r[i].session),
				CKR_OK);
			pthread_create(&t[i], NULL, log_in, &r[i]);
		}
		for (int i = 0; i < 3; i++) {
			pthread_join(t[i], NULL);
			ck_assert_uint_eq(r[i].rv, CKR_OK);
		}
		pthread_barrier_destroy(&start_line);
		ck_assert_uint_eq(p11->C_Logout(session), CKR_OK);
		for (int i = 0; i < 3; i++)
			ck_assert_uint_eq(p11->C_CloseSession(r[i].session),
					  CKR_OK);
	}
}
END_TEST

START_TEST(test_unknown_compat_value_fails_initialize)
{
	setenv("REMHSM_COMPAT", "windows95", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
	setenv("REMHSM_COMPAT", "none", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client-compat");
	TCase *tc = tcase_create("client-compat");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_freertos_mode_departs_where_freertos_needs);
	tcase_add_test(tc, test_default_mode_stays_conformant);
	tcase_add_test(tc, test_freertos_mode_answers_concurrent_logins_ok);
	tcase_add_test(tc, test_unknown_compat_value_fails_initialize);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
