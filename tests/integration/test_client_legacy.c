/*
 * allow-legacy through the real module and daemon. Off (the default):
 * RSA keys under 2048 bits, SHA-1 in signatures and raw RSA signing are
 * refused and not listed. On: RSA-1024 keys are made and used,
 * CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS, CKM_ECDSA_SHA1 and
 * CKM_RSA_X_509 signing work and C_GetMechanismInfo says so, and the
 * daemon says at start that they are on.
 */
#include <check.h>
#include <dlfcn.h>
#include <string.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;

static void start(const char *const *flags)
{
	p11 = th_start_provisioned(&d, flags, &module);
	session = th_user_session(p11, 0, "0000");
}

static void setup_default(void)
{
	start(NULL);
}

static void setup_legacy(void)
{
	static const char *const flags[] = {"--allow-legacy", NULL};
	start(flags);
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

static CK_RV rsa_pair(CK_ULONG bits, CK_OBJECT_HANDLE *pub,
		      CK_OBJECT_HANDLE *priv)
{
	CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt = {CKA_MODULUS_BITS, &bits, sizeof(bits)};
	return p11->C_GenerateKeyPair(session, &mech, &pt, 1, NULL, 0, pub,
				      priv);
}

static int listed(CK_MECHANISM_TYPE mech)
{
	CK_MECHANISM_TYPE list[64];
	CK_ULONG n = 64;
	ck_assert_uint_eq(p11->C_GetMechanismList(0, list, &n), CKR_OK);
	for (CK_ULONG i = 0; i < n; i++)
		if (list[i] == mech)
			return 1;
	return 0;
}

/* Sign then verify: CKR_OK, or the first error. */
static CK_RV sign_verify(CK_MECHANISM *m, CK_OBJECT_HANDLE priv,
			 CK_OBJECT_HANDLE pub, const CK_BYTE *in, CK_ULONG len)
{
	CK_BYTE sig[512];
	CK_ULONG sig_len = sizeof(sig);
	CK_RV rv = p11->C_SignInit(session, m, priv);
	if (rv == CKR_OK)
		rv = p11->C_Sign(session, (CK_BYTE_PTR)in, len, sig, &sig_len);
	if (rv == CKR_OK)
		rv = p11->C_VerifyInit(session, m, pub);
	return rv == CKR_OK ? p11->C_Verify(session, (CK_BYTE_PTR)in, len, sig,
					    sig_len)
			    : rv;
}

START_TEST(test_legacy_is_refused_and_unlisted_by_default)
{
	static const CK_MECHANISM_TYPE legacy[] = {
		CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS, CKM_ECDSA_SHA1};
	CK_MECHANISM_INFO info;
	for (size_t i = 0; i < 3; i++) {
		ck_assert(!listed(legacy[i]));
		ck_assert_uint_eq(p11->C_GetMechanismInfo(0, legacy[i], &info),
				  CKR_MECHANISM_INVALID);
	}
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_RSA_X_509, &info),
			  CKR_OK);
	ck_assert_uint_eq(info.flags & (CKF_SIGN | CKF_VERIFY), CKF_VERIFY);
	ck_assert_uint_eq(info.ulMinKeySize, 2048);
	CK_OBJECT_HANDLE pub, priv;
	ck_assert_uint_ne(rsa_pair(1024, &pub, &priv), CKR_OK);
	ck_assert_uint_eq(rsa_pair(2048, &pub, &priv), CKR_OK);
	CK_MECHANISM sha1 = {CKM_SHA1_RSA_PKCS, NULL, 0};
	ck_assert_uint_eq(p11->C_SignInit(session, &sha1, priv),
			  CKR_MECHANISM_INVALID);
	CK_MECHANISM raw = {CKM_RSA_X_509, NULL, 0};
	ck_assert_uint_eq(p11->C_SignInit(session, &raw, priv),
			  CKR_MECHANISM_INVALID);
	ck_assert_int_eq(th_log_count(&d, "event=legacy-allowed", NULL), 0);
}
END_TEST

START_TEST(test_legacy_is_served_and_told_when_allowed)
{
	ck_assert_int_eq(th_log_count(&d, "event=legacy-allowed", NULL), 1);
	CK_MECHANISM_INFO info;
	ck_assert(listed(CKM_SHA1_RSA_PKCS) && listed(CKM_ECDSA_SHA1) &&
		  listed(CKM_SHA1_RSA_PKCS_PSS));
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_SHA1_RSA_PKCS, &info),
			  CKR_OK);
	ck_assert_uint_eq(info.ulMinKeySize, 1024);
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_RSA_X_509, &info),
			  CKR_OK);
	ck_assert(info.flags & CKF_SIGN);
	CK_OBJECT_HANDLE pub, priv;
	ck_assert_uint_eq(rsa_pair(1024, &pub, &priv), CKR_OK);
	CK_MECHANISM sha1 = {CKM_SHA1_RSA_PKCS, NULL, 0};
	ck_assert_uint_eq(sign_verify(&sha1, priv, pub, (CK_BYTE_PTR) "old", 3),
			  CKR_OK);
	CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA_1, CKG_MGF1_SHA1, 20};
	CK_MECHANISM sha1_pss = {CKM_SHA1_RSA_PKCS_PSS, &pss, sizeof(pss)};
	ck_assert_uint_eq(
		sign_verify(&sha1_pss, priv, pub, (CK_BYTE_PTR) "old", 3),
		CKR_OK);
	CK_BYTE block[128] = {0x00, 0x01};
	CK_MECHANISM raw = {CKM_RSA_X_509, NULL, 0};
	ck_assert_uint_eq(sign_verify(&raw, priv, pub, block, 128), CKR_OK);
	CK_OBJECT_HANDLE ec_pub, ec_priv;
	th_generate_p256(p11, session, CK_FALSE, &ec_pub, &ec_priv);
	CK_MECHANISM ecdsa_sha1 = {CKM_ECDSA_SHA1, NULL, 0};
	ck_assert_uint_eq(
		sign_verify(&ecdsa_sha1, ec_priv, ec_pub, (CK_BYTE_PTR) "x", 1),
		CKR_OK);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_legacy");
	TCase *off = tcase_create("default");
	tcase_set_timeout(off, 120);
	tcase_add_checked_fixture(off, setup_default, teardown);
	tcase_add_test(off, test_legacy_is_refused_and_unlisted_by_default);
	suite_add_tcase(s, off);
	TCase *on = tcase_create("allow-legacy");
	tcase_set_timeout(on, 120);
	tcase_add_checked_fixture(on, setup_legacy, teardown);
	tcase_add_test(on, test_legacy_is_served_and_told_when_allowed);
	suite_add_tcase(s, on);
	return th_run_suite(s);
}
