/*
 * Access control by client certificate, through the real module: the
 * access list decides which slots an identity sees and which roles it
 * holds; an identity the list does not name, and a revoked certificate,
 * are refused; handles of one client mean nothing to another.
 */
#include <check.h>
#include <dlfcn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rh_calls.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static char acl[400], crl[400], conf[400];

static void write_acl(const char *text)
{
	FILE *f = fopen(acl, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* The module, as the client certificate cn ("" for the dev client). */
static void become(const char *cn)
{
	if (p11)
		p11->C_Finalize(NULL);
	th_client_env(&d);
	if (*cn)
		th_client_as(&d, cn);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}

static void setup(void)
{
	th_pki_make(&d);
	static const char *const clients[] = {"gateway-7", "reader", "stranger",
					      "revoked-1"};
	for (size_t i = 0; i < 4; i++)
		th_issue_client(&d, clients[i]);
	static const char *const revoked[] = {"revoked-1", NULL};
	th_write_crl(&d, revoked);
	snprintf(acl, sizeof(acl), "%s/access.list", d.dir);
	snprintf(crl, sizeof(crl), "%s/crl.pem", d.pki);
	snprintf(conf, sizeof(conf), "%s/remhsmd.conf", d.dir);
	FILE *f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("# everything else is on the command line\nslots = 2\n", f);
	fclose(f);
	write_acl("# provisioning, then two kinds of device\n"
		  "CN=remhsm-dev-client  *    user,so,admin\n"
		  "CN=gateway-*          1    user\n"
		  "CN=reader             0    user\n"
		  "CN=revoked-1          *    user\n");
	const char *flags[] = {
		"--config", conf, "--access-list", acl, "--tls-crl", crl, NULL};
	th_daemon_start(&d, flags);
	th_client_env(&d);
	p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	th_provision_token(p11, 0, "so-pin-1", "0000");
	th_provision_token(p11, 1, "so-pin-1", "0000");
}

static void teardown(void)
{
	p11->C_Finalize(NULL);
	dlclose(module);
	p11 = NULL;
	th_daemon_cleanup(&d);
}

START_TEST(test_an_identity_sees_only_its_slots)
{
	become("gateway-7");
	CK_SLOT_ID slots[4];
	CK_ULONG n = 4;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, slots, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(slots[0], 1);
	CK_TOKEN_INFO info;
	ck_assert_uint_eq(p11->C_GetTokenInfo(0, &info), CKR_SLOT_ID_INVALID);
	CK_SESSION_HANDLE h;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h),
		CKR_SLOT_ID_INVALID);
	ck_assert_uint_eq(
		p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &h),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4), CKR_OK);
}
END_TEST

START_TEST(test_roles_are_enforced)
{
	become("gateway-7");
	CK_SESSION_HANDLE h;
	ck_assert_uint_eq(
		p11->C_OpenSession(1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
				   NULL, &h),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR) "so-pin-1", 8),
		CKR_USER_TYPE_INVALID);
	ck_assert_int_eq(th_log_contains(&d, "event=access-denied "
					     "identity=CN=gateway-7 "
					     "action=so-login"),
			 1);
	ck_assert_uint_eq(p11->C_CloseSession(h), CKR_OK);
	CK_UTF8CHAR label[32];
	memset(label, ' ', sizeof(label));
	ck_assert_uint_eq(
		p11->C_InitToken(1, (CK_UTF8CHAR_PTR) "so-pin-1", 8, label),
		CKR_TOKEN_WRITE_PROTECTED);
	ck_assert_int_eq(th_log_contains(&d, "action=reinit-token"), 1);
	/* The token is as it was: its user still logs in. */
	ck_assert_uint_eq(
		p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &h),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4), CKR_OK);
}
END_TEST

START_TEST(test_an_identity_not_on_the_list_is_refused)
{
	become("stranger");
	CK_ULONG n;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_FUNCTION_FAILED);
	ck_assert_int_eq(th_log_contains(&d, "event=access-denied peer="), 1);
	ck_assert_int_eq(th_log_contains(&d, "identity=CN=stranger "
					     "reason=\"no access rule "
					     "matches\""),
			 1);
	/* The others are still served. */
	become("reader");
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
}
END_TEST

START_TEST(test_a_revoked_certificate_is_refused)
{
	become("revoked-1");
	CK_ULONG n;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_FUNCTION_FAILED);
	ck_assert_int_eq(th_log_contains(&d, "certificate revoked"), 1);
	/* A new connection is checked again, every time: no resumption. */
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_FUNCTION_FAILED);
}
END_TEST

START_TEST(test_handles_of_another_identity_are_meaningless)
{
	become("gateway-7");
	CK_SESSION_HANDLE theirs;
	ck_assert_uint_eq(
		p11->C_OpenSession(1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
				   NULL, &theirs),
		CKR_OK);
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_TOKEN, &yes, 1},
			    {CKA_VALUE, "gateway data", 12}};
	CK_OBJECT_HANDLE their_object;
	ck_assert_uint_eq(p11->C_CreateObject(theirs, t, 3, &their_object),
			  CKR_OK);
	become("reader");
	CK_SESSION_INFO info;
	ck_assert_uint_eq(p11->C_GetSessionInfo(theirs, &info),
			  CKR_SESSION_HANDLE_INVALID);
	CK_BYTE buf[8];
	ck_assert_uint_eq(p11->C_GenerateRandom(theirs, buf, sizeof(buf)),
			  CKR_SESSION_HANDLE_INVALID);
	/* An object handle: the reader's own session cannot use it. */
	CK_SESSION_HANDLE mine;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &mine),
		CKR_OK);
	CK_BYTE value[32];
	CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof(value)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(mine, their_object, &a, 1),
			  CKR_OBJECT_HANDLE_INVALID);
	ck_assert_uint_eq(p11->C_CloseAllSessions(1), CKR_SLOT_ID_INVALID);
}
END_TEST

/* identity-from fingerprint: the list names a certificate, not a name. */
START_TEST(test_identity_by_certificate_fingerprint)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/gateway-7.pem", d.pki);
	FILE *f = fopen(path, "r");
	X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	unsigned char md[32];
	unsigned int len = 0;
	ck_assert_int_eq(X509_digest(cert, EVP_sha256(), md, &len), 1);
	X509_free(cert);
	char line[200] = "SHA256:";
	for (unsigned i = 0; i < len; i++)
		snprintf(line + 7 + 2 * i, 3, "%02x", md[i]);
	strcat(line, " 1 user\n");
	write_acl(line);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	const char *flags[] = {
		"--slots",     "2", "--access-list", acl, "--identity-from",
		"fingerprint", NULL};
	th_daemon_restart(&d, flags);
	become("gateway-7");
	CK_ULONG n;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
	become("reader");
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_FUNCTION_FAILED);
}
END_TEST

/* identity-from san-uri / san-dns: the list names subjectAltNames. */
static void restart_with(const char *form, const char *list)
{
	write_acl(list);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	const char *flags[] = {
		"--slots", "2", "--access-list", acl, "--identity-from",
		form,	   NULL};
	th_daemon_restart(&d, flags);
}

START_TEST(test_identity_by_subject_alt_name)
{
	th_issue_client_san(&d, "uri-device", "URI:spiffe://remhsm/gw/7");
	th_issue_client_san(&d, "dns-device", "DNS:gw-9.example.test");
	restart_with("san-uri", "URI:spiffe://remhsm/gw/* 1 user\n");
	CK_ULONG n;
	become("uri-device");
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(th_log_contains(&d, "identity=URI:spiffe://remhsm/"
					     "gw/7"),
			 1);
	become("dns-device"); /* no URI at all: nothing to match */
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_FUNCTION_FAILED);
	restart_with("san-dns", "DNS:*.example.test 0 user\n");
	become("dns-device");
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
}
END_TEST

static void hangup(void)
{
	ck_assert(th_daemon_reload(&d));
}

/* SIGHUP: a new access list applies to connections already open, without
 * dropping the ones it still admits; a broken one changes nothing. */
START_TEST(test_sighup_reloads_the_access_list)
{
	become("gateway-7");
	CK_SESSION_HANDLE h;
	ck_assert_uint_eq(
		p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &h),
		CKR_OK);
	write_acl("CN=remhsm-dev-client * user,so,admin\n"
		  "CN=gateway-* 0,1 user\n");
	hangup();
	ck_assert_int_eq(th_log_contains(&d, "event=reload rules=2"), 1);
	/* The same connection now sees both slots. */
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(th_log_contains(&d, "identity=CN=gateway-7 reason"),
			 0);
	CK_BYTE buf[8];
	ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, sizeof(buf)), CKR_OK);

	write_acl("CN=gateway-* 0,1 wizard\n");
	hangup();
	ck_assert_int_eq(th_log_contains(&d, "event=reload-failed"), 1);
	ck_assert_int_eq(th_log_contains(&d, "kept="), 1);
	ck_assert_uint_eq(p11->C_GenerateRandom(h, buf, sizeof(buf)), CKR_OK);

	/* Gone from the list: disconnected now, refused from then on. */
	write_acl("CN=remhsm-dev-client * user,so,admin\n");
	hangup();
	ck_assert_int_eq(th_log_contains(&d, "event=access-revoked "), 1);
	ck_assert_int_eq(th_log_contains(&d, "identity=CN=gateway-7 "
					     "reason=\"identity no longer on "
					     "the access list\""),
			 1);
	setenv("REMHSM_RECONNECT_MS", "0", 1);
	become("gateway-7");
	unsetenv("REMHSM_RECONNECT_MS");
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_FUNCTION_FAILED);
}
END_TEST

/* What a reload reads, one file each, and what breaks it there. */
static const struct reload_step {
	const char *name;
	const char *garbage;
} reload_steps[] = {
	{"config", "frobnicate = yes\n"},
	{"certificate", "-----BEGIN CERTIFICATE-----\nbm90\n"
			"-----END CERTIFICATE-----\n"},
	{"key", "-----BEGIN PRIVATE KEY-----\nbm90\n"
		"-----END PRIVATE KEY-----\n"},
	{"crl", "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n"
		"-----END X509 CRL-----\n"},
	{"access list", "CN=* nowhere\n"},
};

static const char *step_file(unsigned step, char *path, size_t cap)
{
	const char *files[] = {conf, "server.pem", "server.key", crl, acl};
	if (files[step][0] == '/')
		return files[step];
	snprintf(path, cap, "%s/%s", d.pki, files[step]);
	return path;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void calls_answered(th_conn_t *c, int connections, int calls)
{
	Remhsm__GetInfoReq body = REMHSM__GET_INFO_REQ__INIT;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_GET_INFO;
	req.get_info = &body;
	for (int call = 0; call < calls; call++)
		for (int i = 0; i < connections; i++) {
			req.id = (uint64_t)call + 1;
			ck_assert_int_eq(th_send_request(&c[i], &req), 0);
			Remhsm__Response *r = th_recv_response(&c[i]);
			ck_assert_msg(r && r->rv == CKR_OK,
				      "connection %d, call %d unanswered", i,
				      call);
			remhsm__response__free_unpacked(r, NULL);
		}
}

static void open_hello(th_conn_t *c)
{
	ck_assert_int_eq(th_tls_connect(&d, TH_CERT_GOOD, c), 0);
	Remhsm__Response *hello = th_hello(c, RH_PROTOCOL_VERSION);
	ck_assert_ptr_nonnull(hello);
	remhsm__response__free_unpacked(hello, NULL);
}

/* A reload that fails at any of its steps keeps the configuration in
 * force: open connections are answered (a failure leaves OpenSSL's
 * errors on the loop thread's queue, and none may read as a healthy
 * connection's TLS failure: 1,000 calls on each of 4 connections after the
 * CRL's), new ones are admitted, and the next good reload applies. */
START_TEST(test_a_reload_failing_at_any_step_drops_no_connection)
{
	const struct reload_step *step = &reload_steps[_i];
	th_conn_t c[4];
	for (int i = 0; i < 4; i++)
		open_hello(&c[i]);
	char path[512], saved[16384];
	const char *file = step_file((unsigned)_i, path, sizeof(path));
	FILE *f = fopen(file, "r");
	ck_assert_ptr_nonnull(f);
	size_t len = fread(saved, 1, sizeof(saved) - 1, f);
	fclose(f);
	saved[len] = '\0';
	write_file(file, step->garbage);
	hangup();
	ck_assert_msg(th_log_contains(&d, "event=reload-failed"),
		      "a broken %s did not fail the reload", step->name);
	ck_assert_msg(
		th_log_count(&d, "event=reload-failed", strrchr(file, '/') + 1),
		"the failed reload does not name the %s", step->name);
	calls_answered(c, 4, strcmp(step->name, "crl") ? 100 : 1000);
	th_conn_t fresh;
	open_hello(&fresh);
	calls_answered(&fresh, 1, 1);
	th_conn_close(&fresh);
	write_file(file, saved);
	int reloads = th_log_count(&d, "event=reload ", NULL);
	hangup();
	ck_assert_int_eq(th_log_count(&d, "event=reload ", NULL), reloads + 1);
	ck_assert_int_eq(th_log_count(&d, "event=reload-failed", NULL), 1);
	calls_answered(c, 4, 10);
	ck_assert_int_eq(th_log_contains(&d, "reason=\"TLS"), 0);
	for (int i = 0; i < 4; i++)
		th_conn_close(&c[i]);
}
END_TEST

/* SIGHUP with a CRL that now revokes an open connection's certificate. */
START_TEST(test_sighup_disconnects_a_revoked_identity)
{
	become("reader");
	CK_SESSION_HANDLE h;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h),
		CKR_OK);
	static const char *const revoked[] = {"revoked-1", "reader", NULL};
	th_write_crl(&d, revoked);
	hangup();
	ck_assert_int_eq(th_log_contains(&d, "event=access-revoked "), 1);
	ck_assert_int_eq(th_log_contains(&d, "identity=CN=reader "
					     "reason=\"certificate revoked\""),
			 1);
	setenv("REMHSM_RECONNECT_MS", "0", 1);
	become("reader");
	unsetenv("REMHSM_RECONNECT_MS");
	CK_ULONG n;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_FUNCTION_FAILED);
	become("gateway-7");
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("access");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_an_identity_sees_only_its_slots);
	tcase_add_test(tc, test_roles_are_enforced);
	tcase_add_test(tc, test_an_identity_not_on_the_list_is_refused);
	tcase_add_test(tc, test_a_revoked_certificate_is_refused);
	tcase_add_test(tc, test_handles_of_another_identity_are_meaningless);
	tcase_add_test(tc, test_identity_by_certificate_fingerprint);
	tcase_add_test(tc, test_identity_by_subject_alt_name);
	tcase_add_test(tc, test_sighup_reloads_the_access_list);
	tcase_add_test(tc, test_sighup_disconnects_a_revoked_identity);
	tcase_add_loop_test(
		tc, test_a_reload_failing_at_any_step_drops_no_connection, 0,
		(int)(sizeof(reload_steps) / sizeof(*reload_steps)));
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
