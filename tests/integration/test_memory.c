/*
 * Memory budgets in bytes: session objects (and find results) are charged
 * to the application, to its identity and to the daemon. The finding:
 * three applications with no login grew the daemon from 46 MB to 629 MB
 * with 1 MB session objects, since only their number was bounded.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define VALUE_BYTES (1u << 20)

static th_daemon_t d;
static uint64_t next_id = 1;

static void setup(void)
{
	th_pki_make(&d);
	th_issue_client(&d, "other");
	static const char *const flags[] = {"--max-frame",
					    "2097152",
					    "--max-app-memory-mb",
					    "8",
					    "--max-identity-memory-mb",
					    "20",
					    "--max-memory-mb",
					    "24",
					    NULL};
	th_daemon_start(&d, flags);
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
}

static Remhsm__Response *call(th_conn_t *c, Remhsm__Request *req)
{
	req->id = next_id++;
	ck_assert_int_eq(th_send_request(c, req), 0);
	Remhsm__Response *r = th_recv_response(c);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->id, req->id);
	return r;
}

/* A new application of identity stem, with a session. */
static uint64_t application(th_conn_t *c, const char *stem)
{
	ck_assert_int_eq(th_tls_connect_as(&d, stem, c), 0);
	Remhsm__Response *hello = th_hello(c, 1);
	ck_assert_ptr_nonnull(hello);
	remhsm__response__free_unpacked(hello, NULL);
	Remhsm__OpenSessionReq open = REMHSM__OPEN_SESSION_REQ__INIT;
	open.flags = CKF_SERIAL_SESSION;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	req.open_session = &open;
	Remhsm__Response *r = call(c, &req);
	ck_assert_uint_eq(r->rv, CKR_OK);
	uint64_t session = r->open_session->session;
	remhsm__response__free_unpacked(r, NULL);
	return session;
}

/* A 1 MiB data session object. */
static uint64_t create_big(th_conn_t *c, uint64_t session)
{
	static uint8_t value[VALUE_BYTES];
	Remhsm__Attribute a[3];
	Remhsm__Attribute *p[3] = {&a[0], &a[1], &a[2]};
	for (int i = 0; i < 3; i++)
		remhsm__attribute__init(&a[i]);
	a[0].type = CKA_CLASS;
	a[0].value_case = REMHSM__ATTRIBUTE__VALUE_ULONG;
	a[0].ulong = CKO_DATA;
	a[1].type = CKA_TOKEN;
	a[1].value_case = REMHSM__ATTRIBUTE__VALUE_BOOLEAN;
	a[2].type = CKA_VALUE;
	a[2].value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
	a[2].bytes = (ProtobufCBinaryData){sizeof(value), value};
	Remhsm__CreateObjectReq body = REMHSM__CREATE_OBJECT_REQ__INIT;
	body.session = session;
	body.n_template_ = 3;
	body.template_ = p;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_CREATE_OBJECT;
	req.create_object = &body;
	Remhsm__Response *r = call(c, &req);
	uint64_t rv = r->rv;
	remhsm__response__free_unpacked(r, NULL);
	return rv;
}

/* How many 1 MiB objects an application can make before it is refused
 * (at most 40). */
static int fill(th_conn_t *c, uint64_t session)
{
	int n = 0;
	uint64_t rv;
	while (n < 40 && (rv = create_big(c, session)) == CKR_OK)
		n++;
	ck_assert_uint_eq(rv, CKR_DEVICE_MEMORY);
	return n;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	long kib = -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	fclose(f);
	return kib;
}

START_TEST(test_budgets_bound_what_applications_make_the_daemon_hold)
{
	long before = rss_kib(d.pid);
	th_conn_t apps[3];
	uint64_t sessions[3];
	int made[3];
	for (int i = 0; i < 3; i++) {
		sessions[i] = application(&apps[i], "client");
		made[i] = fill(&apps[i], sessions[i]);
	}
	/* 8 MiB an application, 20 MiB for the identity. */
	ck_assert_int_eq(made[0], 7);
	ck_assert_int_eq(made[1], 7);
	ck_assert_int_eq(made[2], 5);
	ck_assert(th_log_contains(&d, "budget=application"));
	ck_assert(th_log_contains(&d, "budget=identity"));
	/* Another identity is served, within what the daemon's 24 MiB
	 * leave. */
	th_conn_t other;
	uint64_t s = application(&other, "other");
	ck_assert_int_eq(fill(&other, s), 4);
	ck_assert(th_log_contains(&d, "budget=daemon"));
	long grown_mib = (rss_kib(d.pid) - before) / 1024;
	fprintf(stderr, "daemon RSS grew %ld MiB (objects: %d MiB)\n",
		grown_mib, made[0] + made[1] + made[2] + 4);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* The budget, and the allocator's and connections' own. (The
	 * sanitizers' allocators keep freed memory: RSS says nothing there.)
	 */
	ck_assert_int_le(grown_mib, 24 + 8);
#endif
	/* What was refused cost nothing: the first app still works, and a
	 * closed application gives its budget back. */
	ck_assert_uint_eq(create_big(&apps[0], sessions[0]), CKR_DEVICE_MEMORY);
	th_conn_close(&apps[1]);
	th_conn_t again;
	uint64_t s2 = application(&again, "client");
	ck_assert_int_eq(fill(&again, s2), 7);
	for (int i = 0; i < 3; i += 2)
		th_conn_close(&apps[i]);
	th_conn_close(&again);
	th_conn_close(&other);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("memory");
	TCase *tc = tcase_create("memory");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(
		tc, test_budgets_bound_what_applications_make_the_daemon_hold);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
