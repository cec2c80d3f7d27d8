/*
 * The real client module (dlopen of libremhsm-pkcs11.so) against the real
 * daemon on loopback: PKCS#11 argument and state rules, the two-call
 * convention, threads, signals, fork, and a daemon that goes away.
 */
#include <check.h>
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;

static void load_module(void)
{
	p11 = th_module_load(&module);
}

static void setup(void)
{
	th_pki_make(&d);
	th_daemon_start(&d, NULL);
	th_client_env(&d);
	load_module();
}

static void setup_initialized(void)
{
	setup();
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

static CK_SESSION_HANDLE open_session(CK_FLAGS flags)
{
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
	ck_assert_uint_eq(p11->C_OpenSession(0, CKF_SERIAL_SESSION | flags,
					     NULL, NULL, &h),
			  CKR_OK);
	return h;
}

static int all_blank_or_text(const CK_UTF8CHAR *field, size_t width,
			     const char *text)
{
	size_t n = strlen(text);
	if (memcmp(field, text, n) != 0)
		return 0;
	for (size_t i = n; i < width; i++)
		if (field[i] != ' ')
			return 0;
	return 1;
}

/* --- initialisation ------------------------------------------------------ */

START_TEST(test_function_list_has_no_null_entry)
{
	ck_assert_uint_eq(p11->version.major, 2);
	ck_assert_uint_eq(p11->version.minor, 40);
	void (**fn)(void) = (void (**)(void))(
		(char *)p11 + offsetof(CK_FUNCTION_LIST, C_Initialize));
	size_t n = (sizeof(*p11) - offsetof(CK_FUNCTION_LIST, C_Initialize)) /
		   sizeof(*fn);
	ck_assert_uint_eq(n, 68);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(fn[i] != NULL, "entry %zu is NULL", i);
	ck_assert_uint_eq(((CK_C_GetFunctionList)dlsym(
				  module, "C_GetFunctionList"))(NULL),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_only_pkcs11_symbols_are_exported)
{
	ck_assert_ptr_nonnull(dlsym(module, "C_Sign"));
	ck_assert_ptr_null(dlsym(module, "rhc_call"));
	ck_assert_ptr_null(dlsym(module, "rh_frame_pack"));
	ck_assert_ptr_null(dlsym(module, "remhsm__request__unpack"));
}
END_TEST

/* An embedded host owns its signals and its process: the module imports
 * nothing that installs a handler, sends a signal or ends the process. It
 * masks the calling thread's signals only for the length of a call (see
 * test_calls_give_the_thread_its_signal_mask_back). */
START_TEST(test_module_leaves_signals_and_exit_to_the_application)
{
	static const char *const forbidden[] = {
		"signal", "sigaction", "sigprocmask",	 "sigset", "bsd_signal",
		"exit",	  "_exit",     "_Exit",		 "abort",  "atexit",
		"raise",  "kill",      "pthread_create", NULL};
	char cmd[512], line[256];
	snprintf(cmd, sizeof(cmd), "nm -D --undefined-only '%s'",
		 th_module_path());
	FILE *nm = popen(cmd, "r");
	ck_assert_ptr_nonnull(nm);
	int imports = 0;
	while (fgets(line, sizeof(line), nm)) {
		char sym[200] = "";
		if (sscanf(line, " U %199[^@\n]", sym) != 1)
			continue;
		imports++;
		for (int i = 0; forbidden[i]; i++)
			ck_assert_msg(strcmp(sym, forbidden[i]) != 0,
				      "the module imports %s", sym);
	}
	ck_assert_int_eq(pclose(nm), 0);
	ck_assert_int_gt(imports, 20);
}
END_TEST

/* The application shares the thread's OpenSSL error queue with the
 * module; what it leaves there must not read as a broken link. */
START_TEST(test_errors_the_application_left_in_openssl_do_not_matter)
{
	CK_SESSION_HANDLE h = open_session(0);
	unsigned char buf[16];
	for (int i = 0; i < 3; i++) {
		ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
		ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, sizeof(buf)),
				  CKR_OK);
	}
	ck_assert_uint_eq(p11->C_CloseSession(h), CKR_OK);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	h = open_session(0); /* a new connection and handshake */
	ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, sizeof(buf)), CKR_OK);
}
END_TEST

START_TEST(test_calls_before_initialize_are_refused)
{
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_CRYPTOKI_NOT_INITIALIZED);
	ck_assert_uint_eq(p11->C_CloseSession(1), CKR_CRYPTOKI_NOT_INITIALIZED);
	ck_assert_uint_eq(p11->C_Login(1, CKU_USER, NULL, 0),
			  CKR_CRYPTOKI_NOT_INITIALIZED);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
}
END_TEST

static CK_RV mutex_create(void **m)
{
	*m = malloc(sizeof(pthread_mutex_t));
	pthread_mutex_init(*m, NULL);
	return CKR_OK;
}

static int created, destroyed, locked;

static CK_RV counting_create(void **m)
{
	created++;
	return mutex_create(m);
}

static CK_RV counting_destroy(void *m)
{
	destroyed++;
	pthread_mutex_destroy(m);
	free(m);
	return CKR_OK;
}

static CK_RV counting_lock(void *m)
{
	locked++;
	return pthread_mutex_lock(m) == 0 ? CKR_OK : CKR_GENERAL_ERROR;
}

static CK_RV counting_unlock(void *m)
{
	return pthread_mutex_unlock(m) == 0 ? CKR_OK : CKR_GENERAL_ERROR;
}

START_TEST(test_initialize_argument_rules)
{
	CK_C_INITIALIZE_ARGS args = {.pReserved = (void *)1};
	ck_assert_uint_eq(p11->C_Initialize(&args), CKR_ARGUMENTS_BAD);
	CK_C_INITIALIZE_ARGS some = {.CreateMutex = counting_create,
				     .LockMutex = counting_lock};
	ck_assert_uint_eq(p11->C_Initialize(&some), CKR_ARGUMENTS_BAD);
	CK_C_INITIALIZE_ARGS os = {.flags = CKF_OS_LOCKING_OK};
	ck_assert_uint_eq(p11->C_Initialize(&os), CKR_OK);
	ck_assert_uint_eq(p11->C_Initialize(&os),
			  CKR_CRYPTOKI_ALREADY_INITIALIZED);
	ck_assert_uint_eq(p11->C_Finalize((void *)1), CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}
END_TEST

START_TEST(test_application_mutex_callbacks_are_used)
{
	CK_C_INITIALIZE_ARGS args = {.CreateMutex = counting_create,
				     .DestroyMutex = counting_destroy,
				     .LockMutex = counting_lock,
				     .UnlockMutex = counting_unlock};
	ck_assert_uint_eq(p11->C_Initialize(&args), CKR_OK);
	ck_assert_int_eq(created, 1);
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	ck_assert_int_gt(locked, 0);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	ck_assert_int_eq(destroyed, 1);
}
END_TEST

START_TEST(test_missing_configuration_fails_initialize)
{
	unsetenv("REMHSM_CA");
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
	setenv("REMHSM_CA", "/nonexistent/ca.pem", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
	th_client_env(&d);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}
END_TEST

START_TEST(test_spin_setting_is_checked)
{
	setenv("REMHSM_SPIN_US", "-1", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
	setenv("REMHSM_SPIN_US", "100us", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
	setenv("REMHSM_SPIN_US", "0", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	CK_BYTE random[16];
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	ck_assert_uint_eq(p11->C_GenerateRandom(s, random, sizeof(random)),
			  CKR_OK);
	unsetenv("REMHSM_SPIN_US");
}
END_TEST

START_TEST(test_config_file_names_the_server)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/client.conf", d.dir);
	FILE *f = fopen(path, "w");
	fprintf(f,
		"# remhsm client\nserver = 127.0.0.1:%d\nca = %s/ca.pem\n"
		"cert = %s/client.pem\nkey = %s/client.key\n",
		d.port, d.pki, d.pki, d.pki);
	fclose(f);
	unsetenv("REMHSM_SERVER");
	unsetenv("REMHSM_CA");
	unsetenv("REMHSM_CERT");
	unsetenv("REMHSM_KEY");
	setenv("REMHSM_CONF", path, 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
}
END_TEST

/* Several servers: one that does not answer is passed over for the next
 * (where the list is taken in order, where each application starts at a
 * random one, and where the least busy is asked for), a choice that is
 * none of these is refused, and a list with
 * no address in it fails C_Initialize's first call. */
START_TEST(test_a_server_list_passes_over_a_dead_daemon)
{
	char list[128];
	snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d",
		 th_free_port(), d.port);
	setenv("REMHSM_SERVER", list, 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	for (int i = 0; i < 3; i++) {
		CK_SESSION_HANDLE h = open_session(CKF_SERIAL_SESSION);
		ck_assert_uint_eq(p11->C_CloseSession(h), CKR_OK);
	}
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	setenv("REMHSM_SERVER_CHOICE", "busiest", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
	static const char *const choices[] = {"spread", "least-busy"};
	for (int i = 0; i < 2; i++) {
		setenv("REMHSM_SERVER_CHOICE", choices[i], 1);
		ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
		CK_SESSION_HANDLE h = open_session(CKF_SERIAL_SESSION);
		ck_assert_uint_eq(p11->C_CloseSession(h), CKR_OK);
		ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	}
	unsetenv("REMHSM_SERVER_CHOICE");
	setenv("REMHSM_SERVER", ",,", 1);
	CK_RV rv = p11->C_Initialize(NULL);
	CK_ULONG n = 0;
	if (rv == CKR_OK)
		rv = p11->C_GetSlotList(CK_TRUE, NULL, &n);
	ck_assert_uint_ne(rv, CKR_OK);
}
END_TEST

/* --- slots, tokens, mechanisms ----------------------------------------------
 */

START_TEST(test_slot_list_follows_the_two_call_convention)
{
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
	CK_SLOT_ID slots[4] = {99, 99, 99, 99};
	n = 0;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, slots, &n),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(slots[0], 99);
	n = 4;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, slots, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(slots[0], 0);
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, slots, NULL),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_info_fields_are_blank_padded)
{
	CK_INFO info;
	ck_assert_uint_eq(p11->C_GetInfo(&info), CKR_OK);
	ck_assert_uint_eq(info.cryptokiVersion.major, 2);
	ck_assert(all_blank_or_text(info.manufacturerID, 32, "remhsm"));
	CK_SLOT_INFO slot;
	ck_assert_uint_eq(p11->C_GetSlotInfo(0, &slot), CKR_OK);
	ck_assert(all_blank_or_text(slot.slotDescription, 64,
				    "remhsm remote slot"));
	ck_assert_uint_eq(slot.flags & CKF_TOKEN_PRESENT, CKF_TOKEN_PRESENT);
	CK_TOKEN_INFO token;
	ck_assert_uint_eq(p11->C_GetTokenInfo(0, &token), CKR_OK);
	ck_assert(all_blank_or_text(token.label, 32, ""));
	ck_assert(all_blank_or_text(token.model, 16, "remhsmd"));
	ck_assert_uint_eq(token.flags & CKF_RNG, CKF_RNG);
	ck_assert_uint_eq(token.ulTotalPublicMemory,
			  CK_UNAVAILABLE_INFORMATION);
	ck_assert_uint_eq(token.ulMinPinLen, 4);
	ck_assert_uint_eq(p11->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_GetSlotInfo(0, NULL), CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_GetTokenInfo(0, NULL), CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_wrong_slot_is_slot_id_invalid)
{
	CK_SLOT_INFO slot;
	CK_TOKEN_INFO token;
	CK_ULONG n;
	CK_SESSION_HANDLE h;
	CK_MECHANISM_INFO mech;
	ck_assert_uint_eq(p11->C_GetSlotInfo(5, &slot), CKR_SLOT_ID_INVALID);
	ck_assert_uint_eq(p11->C_GetTokenInfo(5, &token), CKR_SLOT_ID_INVALID);
	ck_assert_uint_eq(p11->C_GetMechanismList(5, NULL, &n),
			  CKR_SLOT_ID_INVALID);
	ck_assert_uint_eq(p11->C_GetMechanismInfo(5, CKM_SHA256, &mech),
			  CKR_SLOT_ID_INVALID);
	ck_assert_uint_eq(
		p11->C_OpenSession(5, CKF_SERIAL_SESSION, NULL, NULL, &h),
		CKR_SLOT_ID_INVALID);
	ck_assert_uint_eq(p11->C_CloseAllSessions(5), CKR_SLOT_ID_INVALID);
}
END_TEST

START_TEST(test_mechanism_list_tells_the_truth)
{
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GetMechanismList(0, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 38);
	CK_MECHANISM_TYPE list[16];
	CK_ULONG small = 2;
	ck_assert_uint_eq(p11->C_GetMechanismList(0, list, &small),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(small, 38);
	CK_MECHANISM_INFO info;
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_ECDSA, &info), CKR_OK);
	ck_assert_uint_eq(info.ulMinKeySize, 256);
	ck_assert_uint_eq(info.ulMaxKeySize, 521);
	ck_assert_uint_eq(info.flags & (CKF_SIGN | CKF_VERIFY),
			  CKF_SIGN | CKF_VERIFY);
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_DES3_CBC, &info),
			  CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_ECDSA, NULL),
			  CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_GetMechanismList(0, NULL, NULL),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

/* --- sessions ----------------------------------------------------------------
 */

START_TEST(test_session_lifecycle)
{
	CK_SESSION_HANDLE ro = open_session(0),
			  rw = open_session(CKF_RW_SESSION);
	CK_SESSION_INFO info;
	ck_assert_uint_eq(p11->C_GetSessionInfo(rw, &info), CKR_OK);
	ck_assert_uint_eq(info.state, CKS_RW_PUBLIC_SESSION);
	ck_assert_uint_eq(info.flags, CKF_SERIAL_SESSION | CKF_RW_SESSION);
	ck_assert_uint_eq(p11->C_GetSessionInfo(ro, &info), CKR_OK);
	ck_assert_uint_eq(info.state, CKS_RO_PUBLIC_SESSION);
	ck_assert_uint_eq(p11->C_GetSessionInfo(ro, NULL), CKR_ARGUMENTS_BAD);
	CK_TOKEN_INFO token;
	ck_assert_uint_eq(p11->C_GetTokenInfo(0, &token), CKR_OK);
	ck_assert_uint_eq(token.ulSessionCount, 2);
	ck_assert_uint_eq(token.ulRwSessionCount, 1);
	ck_assert_uint_eq(p11->C_CloseSession(ro), CKR_OK);
	ck_assert_uint_eq(p11->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
	ck_assert_uint_eq(p11->C_GetSessionInfo(ro, &info),
			  CKR_SESSION_HANDLE_INVALID);
	ck_assert_uint_eq(p11->C_CloseAllSessions(0), CKR_OK);
	ck_assert_uint_eq(p11->C_GetSessionInfo(rw, &info),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

START_TEST(test_open_session_argument_rules)
{
	CK_SESSION_HANDLE h;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, NULL),
		CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_OpenSession(0, CKF_RW_SESSION, NULL, NULL, &h),
			  CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	ck_assert_uint_eq(p11->C_CloseSession(0xdeadbeef),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

/* --- random
 * -------------------------------------------------------------------- */

static int all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

START_TEST(test_generate_random_any_length)
{
	CK_SESSION_HANDLE h = open_session(0);
	unsigned char small[32] = {0};
	ck_assert_uint_eq(p11->C_GenerateRandom(h, small, sizeof(small)),
			  CKR_OK);
	ck_assert(!all_zero(small, sizeof(small)));
	size_t big_len = 200000; /* several chunks */
	unsigned char *big = calloc(1, big_len);
	ck_assert_uint_eq(p11->C_GenerateRandom(h, big, big_len), CKR_OK);
	ck_assert(!all_zero(big + big_len - 64, 64));
	free(big);
	ck_assert_uint_eq(p11->C_GenerateRandom(h, small, 0), CKR_OK);
	ck_assert_uint_eq(p11->C_GenerateRandom(h, NULL, 8), CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_GenerateRandom(h + 1000, small, 8),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

START_TEST(test_seed_random)
{
	CK_SESSION_HANDLE h = open_session(0);
	unsigned char seed[100] = {1, 2, 3};
	ck_assert_uint_eq(p11->C_SeedRandom(h, seed, sizeof(seed)), CKR_OK);
	ck_assert_uint_eq(p11->C_SeedRandom(h, NULL, 4), CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_SeedRandom(h + 1000, seed, 4),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

START_TEST(test_wrap_with_a_key_generation_mechanism_is_refused)
{
	CK_SESSION_HANDLE h = open_session(0);
	CK_MECHANISM aes = {CKM_AES_KEY_GEN, NULL, 0};
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(p11->C_WrapKey(h, &aes, 1, 2, NULL, &key),
			  CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(p11->C_UnwrapKey(h, &aes, 1, NULL, 0, NULL, 0, &key),
			  CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(p11->C_GetFunctionStatus(h),
			  CKR_FUNCTION_NOT_PARALLEL);
}
END_TEST

/* --- the daemon goes away
 * ------------------------------------------------------ */

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

START_TEST(test_unreachable_daemon_fails_the_call_then_recovers)
{
	/* With no session to keep, the module does not wait; C_GetSlotList
	 * may not answer CKR_DEVICE_ERROR. */
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CK_ULONG n;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, NULL, &n),
			  CKR_FUNCTION_FAILED);
	ck_assert(seconds_since(&t0) < 2.0);
	th_daemon_restart(&d, NULL);
	/* Holding a session, it waits REMHSM_RECONNECT_MS for the daemon,
	 * then says it is gone. */
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	setenv("REMHSM_RECONNECT_MS", "300", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	unsetenv("REMHSM_RECONNECT_MS");
	CK_SESSION_HANDLE h = open_session(0);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned char buf[8];
	ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, 8), CKR_DEVICE_ERROR);
	ck_assert(seconds_since(&t0) >= 0.3);
	ck_assert(seconds_since(&t0) < 3.0);
	/* When it is back, the session is too, under its handle. */
	th_daemon_restart(&d, NULL);
	ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, 8), CKR_OK);
}
END_TEST

typedef struct slow_login {
	pthread_t thread;
	CK_SESSION_HANDLE session;
	CK_RV rv;
} slow_login_t;

static void *login_thread(void *arg)
{
	slow_login_t *l = arg;
	l->rv = p11->C_Login(l->session, CKU_SO, (CK_UTF8CHAR_PTR) "so-pin-1",
			     8);
	return NULL;
}

START_TEST(test_daemon_closing_mid_call_is_device_error)
{
	/* A costly KDF keeps the login in the daemon while it dies. */
	th_daemon_stop(&d);
	const char *const slow_kdf[] = {"--kdf-scrypt-n", "262144", NULL};
	th_daemon_restart(&d, slow_kdf);
	CK_UTF8CHAR label[32];
	memset(label, ' ', sizeof(label));
	ck_assert_uint_eq(
		p11->C_InitToken(0, (CK_UTF8CHAR_PTR) "so-pin-1", 8, label),
		CKR_OK);
	slow_login_t l = {.session = open_session(CKF_RW_SESSION)};
	pthread_create(&l.thread, NULL, login_thread, &l);
	usleep(100000);
	th_daemon_kill(&d);
	pthread_join(l.thread, NULL);
	ck_assert_uint_eq(l.rv, CKR_DEVICE_ERROR);
	th_daemon_restart(&d, NULL);
	CK_SESSION_HANDLE again = open_session(0);
	unsigned char buf[8];
	ck_assert_uint_eq(p11->C_GenerateRandom(again, buf, 8), CKR_OK);
}
END_TEST

START_TEST(test_requests_over_the_frame_limit_are_split_or_refused)
{
	th_daemon_stop(&d);
	const char *const small_frames[] = {"--max-frame", "4096", NULL};
	th_daemon_restart(&d, small_frames);
	CK_SESSION_HANDLE h = open_session(0);
	/* Updates, random and seeds go in pieces: the daemon never sees a
	 * frame it must refuse, and the connection lives. */
	size_t big = 100000;
	unsigned char *data = calloc(1, big);
	CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
	CK_BYTE digest[32];
	CK_ULONG len = sizeof(digest);
	ck_assert_uint_eq(p11->C_DigestInit(h, &sha), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestUpdate(h, data, big), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestFinal(h, digest, &len), CKR_OK);
	ck_assert_uint_eq(p11->C_GenerateRandom(h, data, big), CKR_OK);
	ck_assert_uint_eq(p11->C_SeedRandom(h, data, 10000), CKR_OK);
	/* A single-part call that cannot be split is refused here, with the
	 * code C_Digest may return for data too large for the device. */
	ck_assert_uint_eq(p11->C_DigestInit(h, &sha), CKR_OK);
	len = sizeof(digest);
	ck_assert_uint_eq(p11->C_Digest(h, data, big, digest, &len),
			  CKR_DEVICE_MEMORY);
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_VALUE, data, big}};
	CK_OBJECT_HANDLE obj;
	ck_assert_uint_eq(p11->C_CreateObject(h, t, 2, &obj),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	free(data);
	/* Nothing was lost: the session is still there. */
	CK_SESSION_INFO info;
	ck_assert_uint_eq(p11->C_GetSessionInfo(h, &info), CKR_OK);
	ck_assert(!th_log_contains(&d, "frame exceeds the maximum size"));
}
END_TEST

/* --- threads, signals, fork
 * -------------------------------------------------------- */

typedef struct worker {
	pthread_t thread;
	CK_SESSION_HANDLE shared;
	int failures;
} worker_t;

static void *hammer(void *arg)
{
	worker_t *w = arg;
	CK_SESSION_HANDLE own;
	if (p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &own) !=
	    CKR_OK) {
		w->failures++;
		return NULL;
	}
	unsigned char buf[16];
	for (int i = 0; i < 200; i++) {
		w->failures +=
			p11->C_GenerateRandom(own, buf, sizeof(buf)) != CKR_OK;
		w->failures += p11->C_GenerateRandom(w->shared, buf,
						     sizeof(buf)) != CKR_OK;
	}
	w->failures += p11->C_CloseSession(own) != CKR_OK;
	return NULL;
}

START_TEST(test_threads_share_the_module_and_its_sessions)
{
	worker_t workers[8];
	CK_SESSION_HANDLE shared = open_session(0);
	for (int i = 0; i < 8; i++) {
		workers[i] = (worker_t){.shared = shared};
		pthread_create(&workers[i].thread, NULL, hammer, &workers[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(workers[i].thread, NULL);
		ck_assert_int_eq(workers[i].failures, 0);
	}
}
END_TEST

static volatile sig_atomic_t ticks;

static void on_tick(int sig)
{
	(void)sig;
	ticks++;
}

typedef struct ticker {
	pthread_t target;
	atomic_int stop;
} ticker_t;

static void *tick_thread(void *arg)
{
	ticker_t *t = arg;
	struct timespec period = {0, 100000}; /* 100 us */
	while (!atomic_load(&t->stop)) {
		pthread_kill(t->target, SIGUSR1);
		nanosleep(&period, NULL);
	}
	return NULL;
}

START_TEST(test_calls_survive_signals_without_sa_restart)
{
	/* The FreeRTOS POSIX port's tick: a handler without SA_RESTART. */
	struct sigaction sa = {.sa_handler = on_tick};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	ticker_t ticker = {.target = pthread_self()};
	pthread_t thread;
	pthread_create(&thread, NULL, tick_thread, &ticker);
	unsigned char buf[32];
	int failures = 0;
	/* Ten rounds, each with a new connect and handshake under the
	 * ticks, 10,000 calls in all; on a fast machine the calls go on
	 * until 1,000 ticks have landed (bounded), so the storm is real
	 * whatever the speed. */
	int calls = 0;
	for (int round = 0; (round < 10 || ticks < 1000) && calls < 200000;
	     round++) {
		if (round > 0) {
			failures += p11->C_Finalize(NULL) != CKR_OK;
			failures += p11->C_Initialize(NULL) != CKR_OK;
		}
		CK_SESSION_HANDLE h = open_session(0);
		for (int i = 0; i < 999; i++)
			failures += p11->C_GenerateRandom(
					    h, buf, sizeof(buf)) != CKR_OK;
		calls += 1000;
	}
	atomic_store(&ticker.stop, 1);
	pthread_join(thread, NULL);
	ck_assert_int_eq(failures, 0);
	ck_assert_int_ge(calls, 10000);
	ck_assert_int_ge(ticks, 1000);
}
END_TEST

static int same_mask(const sigset_t *a, const sigset_t *b)
{
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(a, sig) != sigismember(b, sig))
			return 0;
	return 1;
}

/* Calls block the thread's signals while they hold anything (so that a
 * FreeRTOS task is never switched out there) and must restore the mask the
 * application chose, whatever it was, on every return. */
START_TEST(test_calls_give_the_thread_its_signal_mask_back)
{
	sigset_t chosen, now;
	sigemptyset(&chosen);
	sigaddset(&chosen, SIGUSR2);
	sigaddset(&chosen, SIGHUP);
	pthread_sigmask(SIG_SETMASK, &chosen, NULL);
	CK_SESSION_HANDLE h = open_session(0);
	unsigned char buf[32];
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, sizeof(buf)), CKR_OK);
	ck_assert_uint_eq(p11->C_GenerateRandom(h, NULL, 4), CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	ck_assert_uint_eq(p11->C_GenerateRandom(h + 1000, buf, 4),
			  CKR_SESSION_HANDLE_INVALID);
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	ck_assert(same_mask(&chosen, &now));
	sigemptyset(&chosen);
	pthread_sigmask(SIG_SETMASK, &chosen, NULL);
	ck_assert_uint_eq(p11->C_CloseSession(h), CKR_OK);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	ck_assert(same_mask(&chosen, &now));
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}
END_TEST

static int child_checks(CK_SESSION_HANDLE parents)
{
	CK_ULONG n;
	unsigned char buf[8];
	CK_SESSION_HANDLE own;
	if (p11->C_GetSlotList(CK_TRUE, NULL, &n) !=
	    CKR_CRYPTOKI_NOT_INITIALIZED)
		return 1;
	if (p11->C_Initialize(NULL) != CKR_OK)
		return 2;
	if (p11->C_GenerateRandom(parents, buf, 8) !=
	    CKR_SESSION_HANDLE_INVALID)
		return 3;
	if (p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &own) !=
		    CKR_OK ||
	    p11->C_GenerateRandom(own, buf, 8) != CKR_OK)
		return 4;
	return p11->C_Finalize(NULL) == CKR_OK ? 0 : 5;
}

START_TEST(test_fork_child_must_initialize_again)
{
	CK_SESSION_HANDLE h = open_session(0);
	unsigned char buf[8];
	ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, 8), CKR_OK);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(child_checks(h));
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* The parent's connection and session are untouched. */
	ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, 8), CKR_OK);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client");
	TCase *fresh = tcase_create("uninitialized");
	tcase_set_timeout(fresh, 30);
	tcase_add_checked_fixture(fresh, setup, teardown);
	tcase_add_test(fresh, test_function_list_has_no_null_entry);
	tcase_add_test(fresh, test_only_pkcs11_symbols_are_exported);
	tcase_add_test(fresh,
		       test_module_leaves_signals_and_exit_to_the_application);
	tcase_add_test(fresh, test_calls_before_initialize_are_refused);
	tcase_add_test(fresh, test_initialize_argument_rules);
	tcase_add_test(fresh, test_spin_setting_is_checked);
	tcase_add_test(fresh, test_application_mutex_callbacks_are_used);
	tcase_add_test(fresh, test_missing_configuration_fails_initialize);
	tcase_add_test(fresh, test_config_file_names_the_server);
	tcase_add_test(fresh, test_a_server_list_passes_over_a_dead_daemon);
	suite_add_tcase(s, fresh);
	TCase *tc = tcase_create("initialized");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup_initialized, teardown);
	tcase_add_test(tc, test_slot_list_follows_the_two_call_convention);
	tcase_add_test(tc, test_info_fields_are_blank_padded);
	tcase_add_test(tc, test_wrong_slot_is_slot_id_invalid);
	tcase_add_test(tc, test_mechanism_list_tells_the_truth);
	tcase_add_test(tc, test_session_lifecycle);
	tcase_add_test(tc, test_open_session_argument_rules);
	tcase_add_test(tc, test_generate_random_any_length);
	tcase_add_test(tc, test_seed_random);
	tcase_add_test(tc,
		       test_wrap_with_a_key_generation_mechanism_is_refused);
	tcase_add_test(tc,
		       test_unreachable_daemon_fails_the_call_then_recovers);
	tcase_add_test(tc, test_daemon_closing_mid_call_is_device_error);
	tcase_add_test(tc,
		       test_requests_over_the_frame_limit_are_split_or_refused);
	tcase_add_test(tc, test_threads_share_the_module_and_its_sessions);
	tcase_add_test(tc, test_calls_survive_signals_without_sa_restart);
	tcase_add_test(tc, test_calls_give_the_thread_its_signal_mask_back);
	tcase_add_test(
		tc, test_errors_the_application_left_in_openssl_do_not_matter);
	tcase_add_test(tc, test_fork_child_must_initialize_again);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
