/*
 * A store whose every sync is slow (strace holds each fsync and fdatasync
 * of the daemon for SYNC_DELAY_US) must not stall the event loop: while one
 * application changes a token key's label and its PIN over and over on one
 * thread, and reads the token's state and that key's attributes on another,
 * a second application's C_GenerateRandom on the same loop never waits
 * more than RANDOM_WAIT_MAX_US. The findings (200 ms waits, one sync each):
 * the token's lock was held across the store write that records a PIN; a
 * token object's attributes were read from the store on the loop thread;
 * fast calls, and a new connection's Hello, took the app's lock on the loop
 * while a worker held it across an object's store write. And the
 * writing application's own other threads are served while it creates,
 * changes, copies and destroys token objects and generates token key
 * pairs: the app's lock was held across each object's store write, and
 * its C_GenerateRandom waited for it.
 */
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SYNC_DELAY_US 200000
#define WRITE_SECONDS 4
#define RANDOM_WAIT_MAX_US 50e3

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static pid_t tracer;

/* strace attached to every thread of the daemon, delaying its syncs. */
static pid_t slow_syncs(pid_t daemon)
{
	char pid[16], inject[64];
	snprintf(pid, sizeof(pid), "%d", (int)daemon);
	snprintf(inject, sizeof(inject), "inject=fsync,fdatasync:delay_exit=%d",
		 SYNC_DELAY_US);
	pid_t kid = fork();
	ck_assert_int_ge(kid, 0);
	if (kid == 0) {
		execlp("strace", "strace", "-qq", "-f", "-o", "/dev/null", "-e",
		       "trace=fsync,fdatasync", "-e", inject, "-p", pid,
		       (char *)NULL);
		_exit(127);
	}
	return kid;
}

static void setup(void)
{
	const char *flags[] = {"--loops", "1", NULL};
	p11 = th_start_provisioned(&d, flags, &module);
	th_issue_client(&d, "writer");
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	CK_OBJECT_HANDLE pub, priv;
	th_generate_p256(p11, s, CK_FALSE, &pub, &priv);
	ck_assert_uint_eq(p11->C_CloseSession(s), CKR_OK);
	tracer = slow_syncs(d.pid);
}

static void teardown(void)
{
	if (tracer > 0) {
		kill(tracer, SIGTERM); /* strace detaches and exits */
		waitpid(tracer, NULL, 0);
	}
	p11->C_Finalize(NULL);
	dlclose(module);
	th_daemon_cleanup(&d);
}

/* In the child: the token's private key, found through session s. */
static CK_OBJECT_HANDLE private_key(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	if (p11->C_FindObjectsInit(s, t, 1) != CKR_OK ||
	    p11->C_FindObjects(s, &key, 1, &n) != CKR_OK || n != 1 ||
	    p11->C_FindObjectsFinal(s) != CKR_OK)
		_exit(3);
	return key;
}

typedef struct {
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	double until;
	long reads;
} reader_t;

/* The writer's other thread: the token's state and the key's label. */
static void *read_state(void *arg)
{
	reader_t *r = arg;
	CK_TOKEN_INFO info;
	char label[32];
	while (th_now_us() < r->until) {
		CK_ATTRIBUTE a = {CKA_LABEL, label, sizeof(label)};
		if (p11->C_GetTokenInfo(0, &info) != CKR_OK ||
		    p11->C_GetAttributeValue(r->session, r->key, &a, 1) !=
			    CKR_OK)
			_exit(4);
		r->reads++;
	}
	return NULL;
}

/* One label change and one PIN change: two store writes. */
static void write_twice(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, int i)
{
	static const char *pins[] = {"0000", "1111"};
	char label[24];
	snprintf(label, sizeof(label), "label-%d", i);
	CK_ATTRIBUTE a = {CKA_LABEL, label, strlen(label)};
	const char *old = pins[i % 2], *fresh = pins[(i + 1) % 2];
	if (p11->C_SetAttributeValue(s, key, &a, 1) != CKR_OK ||
	    p11->C_SetPIN(s, (CK_UTF8CHAR_PTR)old, 4, (CK_UTF8CHAR_PTR)fresh,
			  4) != CKR_OK)
		_exit(5);
}

/* A child process, as "writer": store writes on one thread, reads on
 * another, for WRITE_SECONDS. The first write waits until the syncs are
 * slow (strace attached), then one byte goes to `ready`. */
static void write_beside_reads(int ready)
{
	CK_SESSION_HANDLE s = th_child_user_session(&d, p11, "writer");
	reader_t r = {.session = s, .key = private_key(s)};
	int i = 0;
	double t0 = th_now_us(), took = 0;
	for (; took < SYNC_DELAY_US * 0.75 && th_now_us() < t0 + 10e6; i += 2) {
		double w0 = th_now_us();
		write_twice(s, r.key, i);
		write_twice(s, r.key, i + 1);
		took = th_now_us() - w0;
	}
	if (took < SYNC_DELAY_US * 0.75)
		_exit(6); /* the syncs never became slow */
	r.until = th_now_us() + WRITE_SECONDS * 1e6;
	pthread_t reader;
	if (pthread_create(&reader, NULL, read_state, &r) != 0 ||
	    write(ready, "w", 1) != 1)
		_exit(7);
	while (th_now_us() < r.until)
		write_twice(s, r.key, i++);
	pthread_join(reader, NULL);
	/* PINs alternate: leave the token with the one it started with. */
	if (i % 2)
		write_twice(s, r.key, i);
	_exit(r.reads > 0 ? 0 : 8);
}

START_TEST(test_slow_store_writes_never_stall_the_loop)
{
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	long calls;
	th_cpu_mark_t mark = th_cpu_mark();
	double worst = th_random_beside(p11, s, write_beside_reads, &calls);
	char beside[64];
	snprintf(beside, sizeof(beside), "store writes synced in %d ms",
		 SYNC_DELAY_US / 1000);
	th_random_wait_check(beside, calls, worst, mark, RANDOM_WAIT_MAX_US);
}
END_TEST

typedef struct {
	CK_SESSION_HANDLE session;
	double until;
	long made;
	CK_RV failed;
} creator_t;

/* One public token data object: one store write. */
static CK_RV create_data_object(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *h)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_TOKEN, &yes, sizeof(yes)},
			    {CKA_VALUE, "v", 1}};
	return p11->C_CreateObject(s, t, 3, h);
}

/* One object's life, a store write at each step: made, relabelled,
 * copied, both destroyed. */
static CK_RV object_lifetime(CK_SESSION_HANDLE s)
{
	CK_OBJECT_HANDLE h, copy;
	CK_ATTRIBUTE label = {CKA_LABEL, "changed", 7};
	CK_RV rv = create_data_object(s, &h);
	if (rv != CKR_OK)
		return rv;
	rv = p11->C_SetAttributeValue(s, h, &label, 1);
	if (rv == CKR_OK)
		rv = p11->C_CopyObject(s, h, NULL, 0, &copy);
	if (rv == CKR_OK)
		rv = p11->C_DestroyObject(s, copy);
	CK_RV destroyed = p11->C_DestroyObject(s, h);
	return rv != CKR_OK ? rv : destroyed;
}

/* A token key pair made and destroyed: four store writes. */
static CK_RV pair_lifetime(CK_SESSION_HANDLE s)
{
	CK_OBJECT_HANDLE pub, priv;
	th_generate_p256(p11, s, CK_TRUE, &pub, &priv);
	CK_RV rv = p11->C_DestroyObject(s, pub);
	CK_RV destroyed = p11->C_DestroyObject(s, priv);
	return rv != CKR_OK ? rv : destroyed;
}

static void *create_objects(void *arg)
{
	creator_t *c = arg;
	while (!c->failed && th_now_us() < c->until) {
		c->failed = c->made % 2 ? pair_lifetime(c->session)
					: object_lifetime(c->session);
		c->made += c->failed == CKR_OK;
	}
	return NULL;
}

START_TEST(test_an_applications_object_writes_leave_its_other_threads_served)
{
	CK_SESSION_HANDLE w, r;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
				   NULL, &w),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &r),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(w, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4), CKR_OK);
	double t0 = th_now_us(), took = 0;
	while (took < SYNC_DELAY_US * 0.75 && th_now_us() < t0 + 10e6) {
		double c0 = th_now_us();
		CK_OBJECT_HANDLE h;
		ck_assert_uint_eq(create_data_object(w, &h), CKR_OK);
		took = th_now_us() - c0;
	}
	ck_assert_msg(took >= SYNC_DELAY_US * 0.75,
		      "the syncs never became slow");
	creator_t c = {.session = w,
		       .until = th_now_us() + WRITE_SECONDS * 1e6};
	pthread_t creator;
	th_cpu_mark_t mark = th_cpu_mark();
	ck_assert_int_eq(pthread_create(&creator, NULL, create_objects, &c), 0);
	double worst = 0;
	long calls = 0;
	CK_BYTE buf[32];
	while (th_now_us() < c.until) {
		double g0 = th_now_us();
		ck_assert_uint_eq(p11->C_GenerateRandom(r, buf, sizeof(buf)),
				  CKR_OK);
		double g = th_now_us() - g0;
		worst = g > worst ? g : worst;
		calls++;
	}
	pthread_join(creator, NULL);
	ck_assert_uint_eq(c.failed, CKR_OK);
	ck_assert_int_gt(c.made, 0);
	char beside[128];
	snprintf(beside, sizeof(beside),
		 "its own application's %ld token objects and key pairs made, "
		 "changed, copied and destroyed, each write synced in %d ms",
		 c.made, SYNC_DELAY_US / 1000);
	th_random_wait_check(beside, calls, worst, mark, RANDOM_WAIT_MAX_US);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("slow-store");
	TCase *tc = tcase_create("slow-store");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_slow_store_writes_never_stall_the_loop);
	tcase_add_test(
		tc,
		test_an_applications_object_writes_leave_its_other_threads_served);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
