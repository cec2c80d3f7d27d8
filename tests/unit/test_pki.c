/* remhsm pki init: the development CA, server and client certificates. */
#include <check.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pki.h"

#include "harness.h"

static char dir[64];
static char err[512];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/remhsm-pki-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static X509 *load(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/pki/%s", dir, name);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(x);
	return x;
}

static mode_t mode_of(const char *name)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/pki/%s", dir, name);
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_mode & 0777;
}

static int verifies(X509 *ca, X509 *leaf, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, ca);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, leaf, NULL);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	int ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok == 1;
}

START_TEST(test_pki_init_writes_keys_private_and_certs_public)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/pki", dir);
	ck_assert_int_eq(rh_pki_init(path, 0, err, sizeof(err)), 0);
	ck_assert_uint_eq(mode_of("ca.key"), 0600);
	ck_assert_uint_eq(mode_of("server.key"), 0600);
	ck_assert_uint_eq(mode_of("client.key"), 0600);
	ck_assert_uint_eq(mode_of("server.pem"), 0644);
	ck_assert_uint_eq(mode_of("."), 0700);
}
END_TEST

START_TEST(test_pki_certificates_chain_with_the_right_purposes)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/pki", dir);
	ck_assert_int_eq(rh_pki_init(path, 0, err, sizeof(err)), 0);
	X509 *ca = load("ca.pem"), *server = load("server.pem"),
	     *client = load("client.pem");
	ck_assert(verifies(ca, server, X509_PURPOSE_SSL_SERVER));
	ck_assert(verifies(ca, client, X509_PURPOSE_SSL_CLIENT));
	ck_assert(!verifies(ca, client, X509_PURPOSE_SSL_SERVER));
	ck_assert(!verifies(ca, server, X509_PURPOSE_SSL_CLIENT));
	ck_assert_int_eq(X509_check_host(server, "localhost", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(server, "127.0.0.1", 0), 1);
	ck_assert_int_eq(X509_check_ip_asc(server, "::1", 0), 1);
	ck_assert_int_eq(X509_check_ca(ca), 1);
	ck_assert_int_eq(X509_check_ca(client), 0);
	EVP_PKEY *key = X509_get0_pubkey(client);
	ck_assert_int_eq(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
	X509_free(ca);
	X509_free(server);
	X509_free(client);
}
END_TEST

START_TEST(test_pki_init_keeps_an_existing_ca_unless_forced)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/pki", dir);
	ck_assert_int_eq(rh_pki_init(path, 0, err, sizeof(err)), 0);
	X509 *first = load("ca.pem");
	ck_assert_int_eq(rh_pki_init(path, 0, err, sizeof(err)), 1);
	X509 *kept = load("ca.pem");
	ck_assert_int_eq(X509_cmp(first, kept), 0);
	ck_assert_int_eq(rh_pki_init(path, 1, err, sizeof(err)), 0);
	X509 *replaced = load("ca.pem");
	ck_assert_int_ne(X509_cmp(first, replaced), 0);
	X509_free(first);
	X509_free(kept);
	X509_free(replaced);
}
END_TEST

START_TEST(test_pki_init_reports_an_unwritable_folder)
{
	ck_assert_int_eq(rh_pki_init("/proc/remhsm-pki", 0, err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "/proc/remhsm-pki"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pki");
	TCase *tc = tcase_create("pki");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pki_init_writes_keys_private_and_certs_public);
	tcase_add_test(tc, test_pki_certificates_chain_with_the_right_purposes);
	tcase_add_test(tc, test_pki_init_keeps_an_existing_ca_unless_forced);
	tcase_add_test(tc, test_pki_init_reports_an_unwritable_folder);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
