/*
 * Thread safety of the module: 32 threads sign on sessions of their own
 * while 2 threads race on one shared session, all at once. The shared pair
 * takes no lock of its own: each call must answer CKR_OK or the code the
 * specification gives for an operation another thread owns, and every
 * signature made must verify. The same program runs under ThreadSanitizer
 * (scripts/test.sh, the TSan stage).
 */
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"

#define OWN_THREADS 32
#define SHARED_THREADS 2
#define SIGNATURES 40

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_OBJECT_HANDLE pub, priv;
static CK_SESSION_HANDLE shared;

typedef struct worker {
	pthread_t thread;
	CK_SESSION_HANDLE session;
	int own;
	int signed_ok;
	int refused; /* CKR_OPERATION_ACTIVE / _NOT_INITIALIZED, shared only */
	int wrong;   /* any other answer, or a signature that fails */
	CK_RV last_wrong;
} worker_t;

static atomic_int start_gun;

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	shared = th_user_session(p11, 0, "0000");
	th_generate_p256(p11, shared, CK_TRUE, &pub, &priv);
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

static int refusal(CK_RV rv)
{
	return rv == CKR_OPERATION_ACTIVE ||
	       rv == CKR_OPERATION_NOT_INITIALIZED;
}

/* One signature and its check; the verify runs on the worker's own
 * session, or is skipped on the shared one (the other thread may own its
 * operation slot). */
static void sign_once(worker_t *w, int i)
{
	CK_BYTE hash[32], sig[64];
	memset(hash, i, sizeof(hash));
	memcpy(hash, &w, sizeof(w));
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_ULONG len = sizeof(sig);
	CK_RV rv = p11->C_SignInit(w->session, &ecdsa, priv);
	if (rv == CKR_OK)
		rv = p11->C_Sign(w->session, hash, sizeof(hash), sig, &len);
	if (rv != CKR_OK) {
		if (!w->own && refusal(rv))
			w->refused++;
		else
			w->wrong++, w->last_wrong = rv;
		return;
	}
	CK_SESSION_HANDLE check = w->own ? w->session : CK_INVALID_HANDLE;
	if (check == CK_INVALID_HANDLE &&
	    p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &check) !=
		    CKR_OK) {
		w->wrong++;
		return;
	}
	rv = p11->C_VerifyInit(check, &ecdsa, pub);
	if (rv == CKR_OK)
		rv = p11->C_Verify(check, hash, sizeof(hash), sig, len);
	if (!w->own)
		p11->C_CloseSession(check);
	if (rv == CKR_OK)
		w->signed_ok++;
	else
		w->wrong++, w->last_wrong = rv;
}

static void *work(void *arg)
{
	worker_t *w = arg;
	if (w->own && p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL,
					 &w->session) != CKR_OK) {
		w->wrong = SIGNATURES;
		return NULL;
	}
	while (!atomic_load(&start_gun))
		;
	for (int i = 0; i < SIGNATURES; i++)
		sign_once(w, i);
	if (w->own)
		p11->C_CloseSession(w->session);
	return NULL;
}

START_TEST(test_own_and_shared_sessions_sign_concurrently)
{
	static worker_t workers[OWN_THREADS + SHARED_THREADS];
	for (int i = 0; i < OWN_THREADS + SHARED_THREADS; i++) {
		workers[i] =
			(worker_t){.own = i < OWN_THREADS, .session = shared};
		ck_assert_int_eq(pthread_create(&workers[i].thread, NULL, work,
						&workers[i]),
				 0);
	}
	atomic_store(&start_gun, 1);
	int shared_ok = 0;
	for (int i = 0; i < OWN_THREADS + SHARED_THREADS; i++) {
		worker_t *w = &workers[i];
		pthread_join(w->thread, NULL);
		ck_assert_msg(w->wrong == 0,
			      "thread %d: %d wrong answers, the last 0x%lx", i,
			      w->wrong, w->last_wrong);
		if (w->own)
			ck_assert_int_eq(w->signed_ok, SIGNATURES);
		else
			shared_ok += w->signed_ok;
		ck_assert_int_eq(w->signed_ok + w->refused, SIGNATURES);
	}
	/* The shared session served both threads, not one of them only. */
	ck_assert_int_ge(shared_ok, SIGNATURES);
	/* And it is still usable, with no operation left behind. */
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_BYTE hash[32] = {1}, sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(p11->C_SignInit(shared, &ecdsa, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(shared, hash, 32, sig, &len), CKR_OK);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_threads");
	TCase *tc = tcase_create("threads");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_own_and_shared_sessions_sign_concurrently);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
