/*
 * FreeRTOS tasks on the real FreeRTOS-Kernel POSIX port (preemptive, time
 * sliced, 1 kHz tick), linking the module's static archive and calling it
 * as FreeRTOS code does: corePKCS11's provisioning, the mbedTLS transport's
 * TLS-helper calls, and signers at different priorities. The port switches
 * tasks inside its tick signal handler at any instruction, which is what
 * the module must survive. Each run is its own process (Check's fork mode)
 * with its own kernel and daemon. A watchdog thread outside the scheduler
 * fails the run, naming the tasks, when no call completes for 10 s.
 */
#include <check.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "FreeRTOS.h"
#include "task.h"

#include "harness.h"

#define PRIV_LABEL TH_FREERTOS_PRIV_LABEL
#define PUB_LABEL TH_FREERTOS_PUB_LABEL
#define CERT_LABEL "Device Cert"
#define STALL_SECONDS 10
#define MAX_TASKS 12
#define SAMPLES 8
#define COORDINATOR_PRIORITY (configMAX_PRIORITIES - 1)

static const CK_BYTE p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				   0xce, 0x3d, 0x03, 0x01, 0x07};

typedef struct sample {
	CK_BYTE hash[32];
	CK_BYTE sig[64];
	CK_ULONG sig_len;
} sample_t;

typedef struct task {
	const char *name;
	UBaseType_t priority;
	TickType_t period; /* ticks between signatures; 0: continuously */
	int target;	   /* signatures to make */
	int reopens;	   /* starts again after another task's C_Finalize */
	_Atomic int made;
	_Atomic(const char *) call; /* the PKCS#11 call it is in, or NULL */
	_Atomic int finished;
	int restarts;
	sample_t samples[SAMPLES];
	int n_samples;
	TaskHandle_t handle;
} task_t;

static th_daemon_t d;
static int compat; /* REMHSM_COMPAT=freertos for this run */
static CK_FUNCTION_LIST_PTR p11;
static CK_BYTE device_point[67]; /* the signing key's CKA_EC_POINT */
static task_t tasks[MAX_TASKS];
static int n_tasks;
static _Atomic uint64_t last_done_ns;
static _Atomic uint64_t ticks, ticks_at_last_done; /* ticks handled */
static _Atomic int stop_watchdog;

/* The first failure: which task, which call, what it answered. */
static struct {
	_Atomic int set;
	char what[256];
} failure;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- calls, tracked for the watchdog ----------------------------------- */

static void entering(task_t *t, const char *call)
{
	atomic_store(&t->call, call);
}

static CK_RV left(task_t *t, CK_RV rv)
{
	atomic_store(&t->call, NULL);
	atomic_store(&last_done_ns, now_ns());
	atomic_store(&ticks_at_last_done, atomic_load(&ticks));
	return rv;
}

#define CALL(t, fn, ...) (entering((t), #fn), left((t), p11->fn(__VA_ARGS__)))

/* Records the first failure; the task then parks and the run ends. */
static int failed(task_t *t, const char *call, CK_RV rv, CK_RV want)
{
	if (atomic_exchange(&failure.set, 1) == 0)
		snprintf(failure.what, sizeof(failure.what),
			 "task %s: %s returned 0x%lx, expected 0x%lx", t->name,
			 call, (unsigned long)rv, (unsigned long)want);
	return 0;
}

#define EXPECT(t, want, fn, ...)                                               \
	do {                                                                   \
		CK_RV rv_ = CALL((t), fn, __VA_ARGS__);                        \
		if (rv_ != (want))                                             \
			return failed((t), #fn, rv_, (want));                  \
	} while (0)

static void park(task_t *t)
{
	atomic_store(&t->finished, 1);
	vTaskSuspend(NULL);
}

/* --- FreeRTOS's calls ---------------------------------------------------- */

/* corePKCS11's xInitializePKCS11: its own locking, no callbacks, and
 * "already initialised" counts as success. */
static int initialize(task_t *t)
{
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	CK_RV rv = CALL(t, C_Initialize, &args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return failed(t, "C_Initialize", rv, CKR_OK);
	return 1;
}

static int first_slot(task_t *t, CK_SLOT_ID *slot)
{
	CK_SLOT_ID slots[4];
	CK_ULONG n = 0;
	EXPECT(t, CKR_OK, C_GetSlotList, CK_TRUE, NULL, &n);
	if (n < 1 || n > 4)
		return failed(t, "C_GetSlotList count", n, 1);
	EXPECT(t, CKR_OK, C_GetSlotList, CK_TRUE, slots, &n);
	*slot = slots[0];
	return 1;
}

/* Another session of a logged-in application is logged in already: compat
 * mode answers CKR_OK as FreeRTOS requires, strict mode says so. */
static int login(task_t *t, CK_SESSION_HANDLE s)
{
	CK_RV rv = CALL(t, C_Login, s, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4);
	if (rv == CKR_OK || (!compat && rv == CKR_USER_ALREADY_LOGGED_IN))
		return 1;
	return failed(t, "C_Login", rv, CKR_OK);
}

static int find(task_t *t, CK_SESSION_HANDLE s, const char *label,
		CK_ULONG label_len, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out,
		CK_ULONG *count)
{
	CK_ATTRIBUTE tmpl[] = {{CKA_LABEL, (void *)label, label_len},
			       {CKA_CLASS, &cls, sizeof(cls)}};
	*out = CK_INVALID_HANDLE;
	*count = 0;
	EXPECT(t, CKR_OK, C_FindObjectsInit, s, tmpl, 2);
	EXPECT(t, CKR_OK, C_FindObjects, s, out, 1, count);
	EXPECT(t, CKR_OK, C_FindObjectsFinal, s);
	return 1;
}

static int find_one(task_t *t, CK_SESSION_HANDLE s, const char *label,
		    CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out)
{
	CK_ULONG n;
	if (!find(t, s, label, strlen(label), cls, out, &n))
		return 0;
	return n == 1 ? 1 : failed(t, "C_FindObjects count", n, 1);
}

static int signing_session(task_t *t, CK_SESSION_HANDLE *s,
			   CK_OBJECT_HANDLE *key)
{
	CK_SLOT_ID slot;
	if (!initialize(t) || !first_slot(t, &slot))
		return 0;
	EXPECT(t, CKR_OK, C_OpenSession, slot,
	       CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
	return login(t, *s) &&
	       find_one(t, *s, PRIV_LABEL, CKO_PRIVATE_KEY, key);
}

static void hash_for(const task_t *t, int i, CK_BYTE hash[32])
{
	memset(hash, 0, 32);
	memcpy(hash, t->name, strnlen(t->name, 16));
	memcpy(hash + 16, &i, sizeof(i));
}

/* One ECDSA signature over a 32-byte hash; some are kept for OpenSSL. */
static CK_RV sign_once(task_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
		       int i)
{
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	sample_t x;
	hash_for(t, i, x.hash);
	x.sig_len = sizeof(x.sig);
	CK_RV rv = CALL(t, C_SignInit, s, &ecdsa, key);
	if (rv == CKR_OK)
		rv = CALL(t, C_Sign, s, x.hash, 32, x.sig, &x.sig_len);
	if (rv == CKR_OK && t->n_samples < SAMPLES &&
	    i % (t->target / SAMPLES + 1) == 0)
		t->samples[t->n_samples++] = x;
	return rv;
}

/* After another task's C_Finalize, a call may find the module gone or the
 * session with it; those are the codes the specification gives. */
static int finalized_under_us(CK_RV rv)
{
	return rv == CKR_CRYPTOKI_NOT_INITIALIZED ||
	       rv == CKR_SESSION_HANDLE_INVALID;
}

static void signer(void *arg)
{
	task_t *t = arg;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	if (!signing_session(t, &s, &key))
		park(t);
	for (int i = 0; i < t->target; i++) {
		if (t->period)
			vTaskDelay(t->period);
		CK_RV rv = sign_once(t, s, key, i);
		if (rv == CKR_OK) {
			atomic_fetch_add(&t->made, 1);
			continue;
		}
		if (!t->reopens || !finalized_under_us(rv)) {
			failed(t, "C_SignInit/C_Sign", rv, CKR_OK);
			park(t);
		}
		t->restarts++;
		if (!signing_session(t, &s, &key))
			park(t);
		i--;
	}
	CALL(t, C_CloseSession, s);
	park(t);
}

/* Random numbers, as mbedTLS asks for them, on a session of its own. */
static void random_reader(void *arg)
{
	task_t *t = arg;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;
	CK_BYTE buf[32];
	if (!initialize(t) || !first_slot(t, &slot) ||
	    CALL(t, C_OpenSession, slot, CKF_SERIAL_SESSION, NULL, NULL, &s))
		park(t);
	for (int i = 0; i < t->target; i++) {
		CK_RV rv = CALL(t, C_GenerateRandom, s, buf, sizeof(buf));
		if (rv != CKR_OK) {
			failed(t, "C_GenerateRandom", rv, CKR_OK);
			park(t);
		}
		atomic_fetch_add(&t->made, 1);
	}
	CALL(t, C_CloseSession, s);
	park(t);
}

/* --- the run: tasks, a coordinator, a watchdog --------------------------- */

static task_t *add_task(const char *name, UBaseType_t priority,
			TickType_t period, int target, TaskFunction_t fn)
{
	ck_assert_int_lt(n_tasks, MAX_TASKS);
	task_t *t = &tasks[n_tasks++];
	memset(t, 0, sizeof(*t));
	t->name = name;
	t->priority = priority;
	t->period = period;
	t->target = target;
	ck_assert_int_eq(xTaskCreate(fn, name, configMINIMAL_STACK_SIZE, t,
				     priority, &t->handle),
			 pdPASS);
	return t;
}

static int all_finished(void)
{
	for (int i = 0; i < n_tasks; i++)
		if (!atomic_load(&tasks[i].finished))
			return 0;
	return 1;
}

/* Ends the scheduler when every task has finished or one has failed. */
static void coordinator(void *arg)
{
	(void)arg;
	while (!atomic_load(&failure.set) && !all_finished())
		vTaskDelay(pdMS_TO_TICKS(20));
	vTaskEndScheduler();
	vTaskSuspend(NULL);
}

/* Counts the tick interrupts the kernel takes, for the watchdog's report. */
void sim_tick_taken(void)
{
	atomic_fetch_add(&ticks, 1);
}

/* One line per host thread: its name (the port names task threads after
 * their tasks), state, blocked and pending signals, and the system call it
 * is in, which together say whether the kernel and the threads agree. */
static void report_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *e;
	while (dir && (e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], line[128], out[384] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/status",
			 e->d_name);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			static const char *keys[] = {
				"Name:", "State:", "SigPnd:", "SigBlk:"};
			for (size_t k = 0; k < sizeof(keys) / sizeof(*keys);
			     k++)
				if (strncmp(line, keys[k], strlen(keys[k])) ==
				    0) {
					line[strcspn(line, "\n")] = ' ';
					strncat(out, line,
						sizeof(out) - strlen(out) - 1);
				}
		}
		if (f)
			fclose(f);
		snprintf(path, sizeof(path), "/proc/self/task/%s/syscall",
			 e->d_name);
		f = fopen(path, "r");
		if (f && fgets(line, sizeof(line), f))
			line[strcspn(line, " \n")] = '\0';
		else
			snprintf(line, sizeof(line), "?");
		if (f)
			fclose(f);
		fprintf(stderr, "  thread %s: %s syscall %s\n", e->d_name, out,
			line);
	}
	if (dir)
		closedir(dir);
}

/* Both read the mark a task leaves at the end of each call before what
 * has moved on since: read in the other order, a call that ends in between
 * leaves a mark newer than the reading, and the unsigned difference wraps
 * round to a stall of centuries (which is what once failed a healthy run
 * in a few hundred). */
static uint64_t quiet_ns(void)
{
	uint64_t last = atomic_load(&last_done_ns);
	uint64_t now = now_ns();
	return now > last ? now - last : 0;
}

static uint64_t ticks_since_last_done(void)
{
	uint64_t at_last = atomic_load(&ticks_at_last_done);
	uint64_t now = atomic_load(&ticks);
	return now > at_last ? now - at_last : 0;
}

static void report_stall(void)
{
	/* Reads of the kernel's current task only: a host thread must not
	 * enter the port's critical sections. */
	fprintf(stderr,
		"no PKCS#11 call completed for %d s (%llu ticks handled "
		"meanwhile, the kernel runs task %s); tasks:\n",
		STALL_SECONDS, (unsigned long long)ticks_since_last_done(),
		pcTaskGetName(xTaskGetCurrentTaskHandle()));
	for (int i = 0; i < n_tasks; i++) {
		const char *call = atomic_load(&tasks[i].call);
		fprintf(stderr,
			"  %-10s priority %lu: %d of %d signatures, %s%s\n",
			tasks[i].name, (unsigned long)tasks[i].priority,
			atomic_load(&tasks[i].made), tasks[i].target,
			call ? "waiting in " : "between calls",
			call ? call : "");
	}
	report_threads();
}

/* A host thread, outside the scheduler, with every signal blocked so that
 * it never takes the tick. */
static void *watchdog(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_watchdog)) {
		usleep(100 * 1000);
		if (quiet_ns() > (uint64_t)STALL_SECONDS * 1000000000u) {
			report_stall();
			_exit(3);
		}
	}
	return NULL;
}

static void run_scheduler(void)
{
	xTaskCreate(coordinator, "coordinator", configMINIMAL_STACK_SIZE, NULL,
		    COORDINATOR_PRIORITY, NULL);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t dog;
	atomic_store(&last_done_ns, now_ns());
	ck_assert_int_eq(pthread_create(&dog, NULL, watchdog, NULL), 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	vTaskStartScheduler();
	atomic_store(&stop_watchdog, 1);
	pthread_join(dog, NULL);
	ck_assert_msg(!atomic_load(&failure.set), "%s", failure.what);
}

/* --- the device before the scheduler starts ------------------------------ */

/* A factory step, from the host thread: the token initialised with user
 * PIN "0000", and the device's P-256 pair generated with FreeRTOS's labels
 * and templates. */
static void provision_device(void)
{
	ck_assert_uint_eq(C_GetFunctionList(&p11), CKR_OK);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	th_provision_token(p11, 0, "so-pin-1", "0000");
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	/* Unlike FreeRTOS's, the public half stays on the token, for the
	 * tasks' verifications. */
	th_freertos_pair_t pair;
	th_freertos_pair_templates(&pair, CK_TRUE);
	CK_OBJECT_HANDLE pub, priv;
	ck_assert_uint_eq(p11->C_GenerateKeyPair(s, &pair.mechanism, pair.pub,
						 pair.pub_count, pair.priv,
						 pair.priv_count, &pub, &priv),
			  CKR_OK);
	CK_ATTRIBUTE point = {CKA_EC_POINT, device_point, sizeof(device_point)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(s, priv, &point, 1), CKR_OK);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
}

static void start_device(int compat_mode)
{
	compat = compat_mode;
	n_tasks = 0;
	th_pki_make(&d);
	th_daemon_start(&d, NULL);
	th_client_env(&d);
	unsetenv("REMHSM_COMPAT");
	provision_device();
	if (compat)
		setenv("REMHSM_COMPAT", "freertos", 1);
}

/* Every kept signature verifies with OpenSSL, outside the token. */
static void check_signatures(void)
{
	EVP_PKEY *key = th_p256_public_key(device_point);
	for (int i = 0; i < n_tasks; i++)
		for (int j = 0; j < tasks[i].n_samples; j++) {
			const sample_t *x = &tasks[i].samples[j];
			ck_assert_msg(th_ecdsa_verifies(key, x->hash, x->sig,
							x->sig_len),
				      "task %s: signature %d does not verify",
				      tasks[i].name, j);
		}
	EVP_PKEY_free(key);
}

static void finish_device(void)
{
	check_signatures();
	th_daemon_cleanup(&d);
}

/* --- corePKCS11's provisioning, then the TLS helper ---------------------- */

static CK_BYTE cert_der[2048];
static int cert_der_len;
static CK_BYTE tls_point[67]; /* CKA_EC_POINT of the key provisioned */
static sample_t tls_signature;

/* A self-signed certificate, as a cloud would hand one to the device. */
static void make_certificate(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	unsigned char *der;
	cert_der_len = th_self_signed_der(key, "device-sim", &der);
	ck_assert(cert_der_len > 0 && cert_der_len <= (int)sizeof(cert_der));
	memcpy(cert_der, der, (size_t)cert_der_len);
	OPENSSL_free(der);
	EVP_PKEY_free(key);
}

static int destroy_by_label(task_t *t, CK_SESSION_HANDLE s, const char *label,
			    CK_OBJECT_CLASS cls)
{
	CK_OBJECT_HANDLE h;
	CK_ULONG n;
	if (!find(t, s, label, strlen(label), cls, &h, &n))
		return 0;
	if (n == 1)
		EXPECT(t, CKR_OK, C_DestroyObject, s, h);
	return 1;
}

/* A length query, then the value, as FreeRTOS's mbedTLS glue reads. */
static int read_attr(task_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
		     CK_ATTRIBUTE_TYPE type, CK_BYTE *buf, CK_ULONG cap,
		     CK_ULONG want_len)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	EXPECT(t, CKR_OK, C_GetAttributeValue, s, h, &a, 1);
	if (a.ulValueLen != want_len || want_len > cap)
		return failed(t, "C_GetAttributeValue length", a.ulValueLen,
			      want_len);
	a.pValue = buf;
	EXPECT(t, CKR_OK, C_GetAttributeValue, s, h, &a, 1);
	return 1;
}

static int generate_device_pair(task_t *t, CK_SESSION_HANDLE s)
{
	th_freertos_pair_t pair;
	th_freertos_pair_templates(&pair, CK_FALSE);
	CK_OBJECT_HANDLE pub, priv;
	if (!destroy_by_label(t, s, PRIV_LABEL, CKO_PRIVATE_KEY) ||
	    !destroy_by_label(t, s, PUB_LABEL, CKO_PUBLIC_KEY))
		return 0;
	EXPECT(t, CKR_OK, C_GenerateKeyPair, s, &pair.mechanism, pair.pub,
	       pair.pub_count, pair.priv, pair.priv_count, &pub, &priv);
	CK_BYTE params[10];
	return read_attr(t, s, priv, CKA_EC_POINT, tls_point, sizeof(tls_point),
			 67) &&
	       read_attr(t, s, priv, CKA_EC_PARAMS, params, sizeof(params),
			 sizeof(p256_oid));
}

static int import_certificate(task_t *t, CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE type = CKC_X_509;
	CK_BBOOL yes = CK_TRUE;
	const char subject[] = "TestSubject";
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},
			       {CKA_SUBJECT, (void *)subject, strlen(subject)},
			       {CKA_CERTIFICATE_TYPE, &type, sizeof(type)},
			       {CKA_VALUE, cert_der, (CK_ULONG)cert_der_len},
			       {CKA_LABEL, CERT_LABEL, strlen(CERT_LABEL)},
			       {CKA_TOKEN, &yes, sizeof(yes)}};
	CK_OBJECT_HANDLE h;
	if (!destroy_by_label(t, s, CERT_LABEL, CKO_CERTIFICATE))
		return 0;
	EXPECT(t, CKR_OK, C_CreateObject, s, tmpl, 6, &h);
	return 1;
}

/* Found by its label; with the trailing NUL some OTA code sends, only in
 * compat mode (strictly, that is another label). */
static int find_certificate(task_t *t, CK_SESSION_HANDLE s)
{
	CK_OBJECT_HANDLE h;
	CK_ULONG n;
	CK_BYTE value[2048];
	if (!find_one(t, s, CERT_LABEL, CKO_CERTIFICATE, &h) ||
	    !find(t, s, CERT_LABEL, sizeof(CERT_LABEL), CKO_CERTIFICATE, &h,
		  &n))
		return 0;
	if (n != (compat ? 1u : 0u))
		return failed(t, "C_FindObjects with the NUL", n, compat);
	if (!find_one(t, s, CERT_LABEL, CKO_CERTIFICATE, &h) ||
	    !read_attr(t, s, h, CKA_VALUE, value, sizeof(value),
		       (CK_ULONG)cert_der_len))
		return 0;
	if (memcmp(value, cert_der, (size_t)cert_der_len) != 0)
		return failed(t, "CKA_VALUE of the certificate", 0, 0);
	return 1;
}

static int provision(task_t *t, CK_SESSION_HANDLE *s)
{
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	if (!initialize(t))
		return 0;
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	EXPECT(t, CKR_CRYPTOKI_ALREADY_INITIALIZED, C_Initialize, &args);
	if (!first_slot(t, &slot))
		return 0;
	EXPECT(t, CKR_OK, C_GetTokenInfo, slot, &info);
	if (!(info.flags & CKF_TOKEN_INITIALIZED))
		return failed(t, "CKF_TOKEN_INITIALIZED", info.flags, 0);
	EXPECT(t, CKR_OK, C_OpenSession, slot,
	       CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
	return login(t, *s) && generate_device_pair(t, *s) &&
	       import_certificate(t, *s) && find_certificate(t, *s);
}

/* The private key, described as mbedTLS asks, then one TLS signature:
 * a length query first. Compat mode ends the operation there, as FreeRTOS
 * expects; strictly, it stays active and a second init is refused. */
static int tls_sign(task_t *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv)
{
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_KEY_TYPE type = 0;
	CK_ATTRIBUTE a = {CKA_KEY_TYPE, &type, sizeof(type)};
	CK_BYTE point[67], params[10];
	sample_t *x = &tls_signature;
	EXPECT(t, CKR_OK, C_GetAttributeValue, s, priv, &a, 1);
	if (type != CKK_EC)
		return failed(t, "CKA_KEY_TYPE", type, CKK_EC);
	if (!read_attr(t, s, priv, CKA_EC_PARAMS, params, sizeof(params),
		       sizeof(p256_oid)) ||
	    !read_attr(t, s, priv, CKA_EC_POINT, point, sizeof(point), 67))
		return 0;
	EXPECT(t, CKR_OK, C_GenerateRandom, s, x->hash, 32);
	EXPECT(t, CKR_OK, C_SignInit, s, &ecdsa, priv);
	x->sig_len = 0;
	EXPECT(t, CKR_OK, C_Sign, s, x->hash, 32, NULL, &x->sig_len);
	if (x->sig_len != 64)
		return failed(t, "C_Sign length", x->sig_len, 64);
	EXPECT(t, compat ? CKR_OK : CKR_OPERATION_ACTIVE, C_SignInit, s, &ecdsa,
	       priv);
	EXPECT(t, CKR_OK, C_Sign, s, x->hash, 32, x->sig, &x->sig_len);
	return 1;
}

/* The token checks its own signature too, with the public key. */
static int token_verifies(task_t *t, CK_SESSION_HANDLE s)
{
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE pub;
	if (!find_one(t, s, PUB_LABEL, CKO_PUBLIC_KEY, &pub))
		return 0;
	EXPECT(t, CKR_OK, C_VerifyInit, s, &ecdsa, pub);
	EXPECT(t, CKR_OK, C_Verify, s, tls_signature.hash, 32,
	       tls_signature.sig, tls_signature.sig_len);
	return 1;
}

static int tls_helper(task_t *t, CK_SESSION_HANDLE s)
{
	CK_OBJECT_HANDLE priv;
	CK_RV again =
		CALL(t, C_Login, s, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4);
	if (again != (compat ? CKR_OK : CKR_USER_ALREADY_LOGGED_IN))
		return failed(t, "C_Login again", again, CKR_OK);
	return find_one(t, s, PRIV_LABEL, CKO_PRIVATE_KEY, &priv) &&
	       tls_sign(t, s, priv) && token_verifies(t, s);
}

static void device(void *arg)
{
	task_t *t = arg;
	CK_SESSION_HANDLE s;
	if (provision(t, &s) && tls_helper(t, s)) {
		atomic_store(&t->made, 1);
		CALL(t, C_CloseSession, s);
	}
	park(t);
}

/* Loop index: 0 strict, 1 compat. */
START_TEST(test_provisioning_and_tls_helper_sequences)
{
	make_certificate();
	start_device(_i);
	add_task("device", 2, 0, 1, device);
	/* Another task beside it, so that the sequence runs preempted. */
	add_task("random", 2, 0, 2000, random_reader);
	run_scheduler();
	ck_assert_int_eq(atomic_load(&tasks[0].made), 1);
	EVP_PKEY *key = th_p256_public_key(tls_point);
	ck_assert(th_ecdsa_verifies(key, tls_signature.hash, tls_signature.sig,
				    tls_signature.sig_len));
	EVP_PKEY_free(key);
	finish_device();
}
END_TEST

/* --- priority patterns -----------------------------------------------------
 */

#define SIGNATURES 2000

static void expect_all_signed(void)
{
	for (int i = 0; i < n_tasks; i++)
		ck_assert_msg(atomic_load(&tasks[i].made) == tasks[i].target,
			      "task %s made %d of %d signatures", tasks[i].name,
			      atomic_load(&tasks[i].made), tasks[i].target);
}

static void report_rate(const char *pattern, uint64_t started)
{
	int made = 0;
	for (int i = 0; i < n_tasks; i++)
		made += atomic_load(&tasks[i].made);
	double s = (double)(now_ns() - started) / 1e9;
	printf("%s (%s): %d signatures in %.2f s, %.0f/s\n", pattern,
	       compat ? "compat" : "strict", made, s, made / s);
	/* Each run is a forked child: unflushed, the line would be printed
	 * again by every later run's child. */
	fflush(stdout);
}

/* Higher-priority tasks signing once every `period` ticks (0: without a
 * pause) beside continuous signers at priority 1. */
typedef struct pattern {
	const char *name;
	struct {
		const char *name;
		UBaseType_t priority;
		TickType_t period;
		int signatures;
	} tasks[4];
} pattern_t;

static const pattern_t patterns[] = {
	{"1 high + 1 low",
	 {{"high", 3, 1, SIGNATURES}, {"low", 1, 0, SIGNATURES}}},
	{"1 high + 3 low",
	 {{"high", 3, 1, SIGNATURES},
	  {"low-1", 1, 0, SIGNATURES},
	  {"low-2", 1, 0, SIGNATURES},
	  {"low-3", 1, 0, SIGNATURES}}},
	{"priorities 4, 2, 1, 1",
	 {{"top", 4, 1, SIGNATURES},
	  {"middle", 2, 2, SIGNATURES / 2},
	  {"low-1", 1, 0, SIGNATURES},
	  {"low-2", 1, 0, SIGNATURES}}},
};

#define RUNS_PER_MODE 10

/* Loop index: the pattern, then 10 runs in strict mode and 10 in compat. */
START_TEST(test_priority_pattern)
{
	const pattern_t *p = &patterns[_i / (2 * RUNS_PER_MODE)];
	start_device(_i % (2 * RUNS_PER_MODE) >= RUNS_PER_MODE);
	for (size_t k = 0; k < 4 && p->tasks[k].name; k++)
		add_task(p->tasks[k].name, p->tasks[k].priority,
			 p->tasks[k].period, p->tasks[k].signatures, signer);
	uint64_t started = now_ns();
	run_scheduler();
	report_rate(p->name, started);
	expect_all_signed();
	finish_device();
}
END_TEST

/* --- bad input, deleted tasks, C_Finalize beside running calls ----------- */

static int ends_on_bad_arguments(task_t *t, CK_SESSION_HANDLE s,
				 CK_OBJECT_HANDLE key)
{
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_BYTE hash[32] = {1}, sig[64];
	CK_ULONG len = sizeof(sig);
	EXPECT(t, CKR_OK, C_SignInit, s, &ecdsa, key);
	EXPECT(t, CKR_ARGUMENTS_BAD, C_Sign, s, hash, 32, sig, NULL);
	EXPECT(t, CKR_OPERATION_NOT_INITIALIZED, C_Sign, s, hash, 32, sig,
	       &len);
	CK_OBJECT_HANDLE pub;
	if (!find_one(t, s, PUB_LABEL, CKO_PUBLIC_KEY, &pub))
		return 0;
	EXPECT(t, CKR_OK, C_VerifyInit, s, &ecdsa, pub);
	EXPECT(t, CKR_ARGUMENTS_BAD, C_Verify, s, hash, 32, NULL, 64);
	EXPECT(t, CKR_OPERATION_NOT_INITIALIZED, C_Verify, s, hash, 32, sig,
	       64);
	return 1;
}

/* FreeRTOS declares CK_MECHANISM on the stack and leaves the parameter of
 * a parameterless mechanism as it was: never read, never refused. */
static int garbage_parameters_are_ignored(task_t *t, CK_SESSION_HANDLE s)
{
	CK_MECHANISM sha = {CKM_SHA256, (void *)(uintptr_t)0x10, (CK_ULONG)-1};
	CK_MECHANISM unknown = {0x8000fff1ul, (void *)(uintptr_t)0x10, 7};
	CK_BYTE out[32];
	CK_ULONG len = sizeof(out);
	EXPECT(t, CKR_MECHANISM_INVALID, C_DigestInit, s, &unknown);
	EXPECT(t, CKR_OK, C_DigestInit, s, &sha);
	EXPECT(t, CKR_OK, C_DigestUpdate, s, out, 8);
	EXPECT(t, CKR_OPERATION_ACTIVE, C_Digest, s, out, 8, out, &len);
	EXPECT(t, CKR_OPERATION_NOT_INITIALIZED, C_DigestFinal, s, out, &len);
	EXPECT(t, CKR_OK, C_DigestInit, s, &sha);
	EXPECT(t, CKR_ARGUMENTS_BAD, C_DigestFinal, s, out, NULL);
	EXPECT(t, CKR_OPERATION_NOT_INITIALIZED, C_Digest, s, out, 8, out,
	       &len);
	return 1;
}

static void rules(void *arg)
{
	task_t *t = arg;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	if (signing_session(t, &s, &key) && ends_on_bad_arguments(t, s, key) &&
	    garbage_parameters_are_ignored(t, s)) {
		atomic_store(&t->made, t->target);
		CALL(t, C_CloseSession, s);
	}
	park(t);
}

/* Sockets this process holds open. */
static int count_sockets(void)
{
	DIR *dir = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(dir);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		char path[300], target[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, target, sizeof(target) - 1);
		n += len > 7 && strncmp(target, "socket:", 7) == 0;
	}
	closedir(dir);
	return n;
}

#define VICTIMS 5
static task_t *victims[VICTIMS];
static task_t *survivor;
static int deleted_in_call;

/* Deletes the victims one by one while they sign (most of a signer's time
 * is spent waiting for the daemon inside a call), then finalises the
 * module while the survivors are in calls. */
static void reaper(void *arg)
{
	task_t *t = arg;
	for (int i = 0; i < VICTIMS; i++) {
		vTaskDelay(pdMS_TO_TICKS(20 + 7 * i));
		deleted_in_call += atomic_load(&victims[i]->call) != NULL;
		vTaskDelete(victims[i]->handle);
		atomic_store(&victims[i]->finished, 1);
	}
	while (atomic_load(&survivor->made) < survivor->target / 3)
		vTaskDelay(1);
	CK_RV rv = CALL(t, C_Finalize, NULL);
	if (rv != CKR_OK)
		failed(t, "C_Finalize", rv, CKR_OK);
	atomic_store(&t->made, 1);
	park(t);
}

/* Loop index: runs 0-4 strict, 5-9 compat. */
START_TEST(test_deleted_tasks_and_finalize_during_calls)
{
	start_device(_i >= 5);
	int sockets_before = count_sockets();
	add_task("rules", 2, 0, 1, rules);
	survivor = add_task("signer-1", 1, 0, SIGNATURES, signer);
	survivor->reopens = 1;
	add_task("signer-2", 1, 0, SIGNATURES, signer)->reopens = 1;
	static const char *const names[VICTIMS] = {
		"victim-1", "victim-2", "victim-3", "victim-4", "victim-5"};
	for (int i = 0; i < VICTIMS; i++)
		victims[i] = add_task(names[i], 1, 0, 1 << 30, signer);
	deleted_in_call = 0;
	add_task("reaper", 3, 0, 1, reaper);
	run_scheduler();
	for (int i = 0; i < n_tasks; i++)
		if (tasks[i].target < (1 << 30))
			ck_assert_msg(
				atomic_load(&tasks[i].made) == tasks[i].target,
				"task %s: %d of %d", tasks[i].name,
				atomic_load(&tasks[i].made), tasks[i].target);
	ck_assert_int_ge(deleted_in_call, 1);
	printf("%s: %d of %d victims deleted inside a call; survivors "
	       "started again %d and %d times\n",
	       compat ? "compat" : "strict", deleted_in_call, VICTIMS,
	       survivor->restarts, tasks[2].restarts);
	/* The daemon is unaffected: a new application signs at once. */
	CK_RV rv = p11->C_Initialize(NULL);
	ck_assert(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	task_t host = {.name = "host", .target = 1};
	CK_OBJECT_HANDLE key;
	ck_assert(find_one(&host, s, PRIV_LABEL, CKO_PRIVATE_KEY, &key));
	ck_assert_uint_eq(sign_once(&host, s, key, 0), CKR_OK);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	/* The deleted tasks' connections were closed as their threads
	 * ended, and C_Finalize closed the rest. */
	ck_assert_int_eq(count_sockets(), sockets_before);
	finish_device();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("freertos");
	TCase *seq = tcase_create("sequences");
	tcase_set_timeout(seq, 120);
	tcase_add_loop_test(seq, test_provisioning_and_tls_helper_sequences, 0,
			    2);
	suite_add_tcase(s, seq);
	TCase *bad = tcase_create("bad");
	tcase_set_timeout(bad, 120);
	tcase_add_loop_test(bad, test_deleted_tasks_and_finalize_during_calls,
			    0, 10);
	suite_add_tcase(s, bad);
	TCase *prio = tcase_create("priorities");
	tcase_set_timeout(prio, 120);
	tcase_add_loop_test(prio, test_priority_pattern, 0,
			    (int)(sizeof(patterns) / sizeof(*patterns)) * 2 *
				    RUNS_PER_MODE);
	suite_add_tcase(s, prio);
	return s;
}

int main(void)
{
	return th_run_suite(suite());
}
