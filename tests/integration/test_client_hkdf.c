/*
 * HKDF (CKM_HKDF_DERIVE) through the real module and daemon: RFC 5869's
 * test cases 1, 3 and 7 (SHA-256 with and without salt and info, SHA-1
 * without a salt), extract alone giving the PRK and expand alone taking
 * the PRK back to the OKM; the derived key follows its template and the
 * base key's CKA_DERIVE_TEMPLATE; keys that may not derive and parameters
 * that do not hold are refused.
 */
#include <check.h>
#include <string.h>

#include "harness.h"
#include "rh_pkcs11.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
/* RFC 5869 case 1's salt and info. */
static CK_BYTE salt[13], info[10];

static void setup(void)
{
	th_unhex("000102030405060708090a0b0c", salt);
	th_unhex("f0f1f2f3f4f5f6f7f8f9", info);
	p11 = th_start_provisioned(&d, NULL, &module);
	session = th_user_session(p11, 0, "0000");
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

/* A generic secret (hex) that may derive. */
static CK_OBJECT_HANDLE ikm(const char *hex)
{
	CK_BYTE v[64];
	size_t n = th_unhex(hex, v);
	CK_ATTRIBUTE a[] = {{CKA_DERIVE, &yes, 1}};
	CK_OBJECT_HANDLE h = 0;
	ck_assert_uint_eq(th_import_secret(p11, session, CKK_GENERIC_SECRET, v,
					   n, a, 1, &h),
			  CKR_OK);
	return h;
}

/* Derives a readable generic secret of len bytes (0: the token's length)
 * from base with p; its value into out. */
static CK_RV derive(CK_OBJECT_HANDLE base, CK_HKDF_PARAMS *p, CK_ULONG len,
		    CK_BYTE *out, CK_ULONG *out_len)
{
	CK_MECHANISM m = {CKM_HKDF_DERIVE, p, sizeof(*p)};
	CK_ATTRIBUTE t[] = {{CKA_SENSITIVE, &no, 1},
			    {CKA_EXTRACTABLE, &yes, 1},
			    {CKA_VALUE_LEN, &len, sizeof(len)}};
	CK_OBJECT_HANDLE key = 0;
	CK_RV rv = p11->C_DeriveKey(session, &m, base, t, len ? 3 : 2, &key);
	CK_ATTRIBUTE v = {CKA_VALUE, out, 512};
	if (rv == CKR_OK)
		rv = p11->C_GetAttributeValue(session, key, &v, 1);
	*out_len = v.ulValueLen;
	return rv;
}

static void assert_derives(CK_OBJECT_HANDLE base, CK_HKDF_PARAMS *p,
			   CK_ULONG len, const char *want_hex)
{
	CK_BYTE want[512], got[512];
	size_t n = th_unhex(want_hex, want);
	CK_ULONG got_len = 0;
	ck_assert_uint_eq(derive(base, p, len, got, &got_len), CKR_OK);
	ck_assert_uint_eq(got_len, n);
	ck_assert_mem_eq(got, want, n);
}

static const char *const okm_1 =
	"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	"34007208d5b887185865";
static const char *const prk_1 =
	"077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5";

START_TEST(test_rfc_5869_cases)
{
	CK_OBJECT_HANDLE k =
		ikm("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
	CK_HKDF_PARAMS p = {
		CK_TRUE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_DATA, salt,
		13,	 0,	  info,	      sizeof(info)};
	assert_derives(k, &p, 42, okm_1);
	/* Case 3: no salt, no info. */
	CK_HKDF_PARAMS bare = {CK_TRUE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_NULL,
			       NULL,	0,	 0,	     NULL,
			       0};
	assert_derives(k, &bare, 42,
		       "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec345"
		       "4e5f3c738d2d9d201395faa4b61a96c8");
	/* Case 7: SHA-1, no salt. */
	CK_OBJECT_HANDLE k7 =
		ikm("0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c");
	bare.prfHashMechanism = CKM_SHA_1;
	assert_derives(k7, &bare, 42,
		       "2c91117204d745f3500d636a62f64f0ab3bae548aa53d423b0d1"
		       "f27ebba6f5e5673a081d70cce7acfc48");
}
END_TEST

/* Extract alone is the PRK (of the hash's length, whatever the template
 * leaves out); expand alone over the PRK is the OKM. */
START_TEST(test_extract_and_expand_apart)
{
	CK_OBJECT_HANDLE k =
		ikm("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
	CK_HKDF_PARAMS extract = {
		CK_TRUE, CK_FALSE, CKM_SHA256, CKF_HKDF_SALT_DATA, salt, 13,
		0,	 NULL,	   0};
	assert_derives(k, &extract, 0, prk_1);
	CK_HKDF_PARAMS p = extract;
	CK_BYTE out[512];
	CK_ULONG len = 0;
	ck_assert_uint_eq(derive(k, &p, 40, out, &len),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_OBJECT_HANDLE prk = ikm(prk_1);
	CK_HKDF_PARAMS expand = {CK_FALSE, CK_TRUE, CKM_SHA256,	 0, NULL, 0,
				 0,	   info,    sizeof(info)};
	assert_derives(prk, &expand, 42, okm_1);
}
END_TEST

START_TEST(test_what_does_not_hold_is_refused)
{
	CK_OBJECT_HANDLE k =
		ikm("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
	CK_HKDF_PARAMS p = {CK_TRUE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_NULL,
			    NULL,    0,	      0,	  NULL,
			    0};
	CK_BYTE out[512];
	CK_ULONG len = 0;
	CK_HKDF_PARAMS bad = p;
	bad.prfHashMechanism = CKM_MD5;
	ck_assert_uint_eq(derive(k, &bad, 32, out, &len),
			  CKR_MECHANISM_PARAM_INVALID);
	bad = p;
	bad.bExtract = bad.bExpand = CK_FALSE;
	ck_assert_uint_eq(derive(k, &bad, 32, out, &len),
			  CKR_MECHANISM_PARAM_INVALID);
	bad = p;
	bad.ulSaltType = CKF_HKDF_SALT_KEY;
	bad.hSaltKey = k;
	ck_assert_uint_eq(derive(k, &bad, 32, out, &len),
			  CKR_MECHANISM_PARAM_INVALID);
	bad = p;
	bad.ulSaltType = CKF_HKDF_SALT_DATA; /* and no salt */
	ck_assert_uint_eq(derive(k, &bad, 32, out, &len),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_MECHANISM short_params = {CKM_HKDF_DERIVE, &p, sizeof(p) - 1};
	CK_OBJECT_HANDLE key = 0;
	ck_assert_uint_eq(
		p11->C_DeriveKey(session, &short_params, k, NULL, 0, &key),
		CKR_MECHANISM_PARAM_INVALID);
	/* A length no generic secret has, a key that may not derive, a key
	 * of another kind. */
	ck_assert_uint_eq(derive(k, &p, 8, out, &len),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_BYTE v[32] = {1};
	CK_OBJECT_HANDLE plain = 0, aes = 0;
	ck_assert_uint_eq(th_import_secret(p11, session, CKK_GENERIC_SECRET, v,
					   32, NULL, 0, &plain),
			  CKR_OK);
	ck_assert_uint_eq(derive(plain, &p, 32, out, &len),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
	CK_ATTRIBUTE a[] = {{CKA_DERIVE, &yes, 1}};
	ck_assert_uint_eq(
		th_import_secret(p11, session, CKK_AES, v, 32, a, 1, &aes),
		CKR_OK);
	ck_assert_uint_eq(derive(aes, &p, 32, out, &len),
			  CKR_KEY_TYPE_INCONSISTENT);
	CK_MECHANISM_INFO mech_info;
	ck_assert_uint_eq(
		p11->C_GetMechanismInfo(0, CKM_HKDF_DERIVE, &mech_info),
		CKR_OK);
	ck_assert_uint_eq(mech_info.flags, CKF_HW | CKF_DERIVE);
}
END_TEST

/* CKA_DERIVE_TEMPLATE: what every key derived from the base must be; the
 * caller's template may add to it, never contradict it; fixed once the
 * base exists, and read back by the nested two-call rules. */
START_TEST(test_derive_template_binds_derived_keys)
{
	CK_BYTE v[32] = {7};
	CK_ULONG sixteen = 16;
	CK_KEY_TYPE aes = CKK_AES;
	CK_ATTRIBUTE bound[] = {{CKA_SENSITIVE, &yes, 1},
				{CKA_EXTRACTABLE, &no, 1},
				{CKA_KEY_TYPE, &aes, sizeof(aes)},
				{CKA_VALUE_LEN, &sixteen, sizeof(sixteen)}};
	CK_ATTRIBUTE a[] = {{CKA_DERIVE, &yes, 1},
			    {CKA_DERIVE_TEMPLATE, bound, sizeof(bound)}};
	CK_OBJECT_HANDLE base = 0, key = 0;
	ck_assert_uint_eq(th_import_secret(p11, session, CKK_GENERIC_SECRET, v,
					   32, a, 2, &base),
			  CKR_OK);
	CK_HKDF_PARAMS p = {
		CK_TRUE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_NULL, NULL,
		0,	 0,	  info,	      sizeof(info)};
	CK_MECHANISM m = {CKM_HKDF_DERIVE, &p, sizeof(p)};
	CK_ATTRIBUTE adds[] = {{CKA_ENCRYPT, &yes, 1}};
	ck_assert_uint_eq(p11->C_DeriveKey(session, &m, base, adds, 1, &key),
			  CKR_OK);
	CK_KEY_TYPE type = 0;
	CK_ULONG len = 0;
	CK_BBOOL sensitive = 0, extractable = 1, encrypt = 0;
	CK_ATTRIBUTE q[] = {{CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_VALUE_LEN, &len, sizeof(len)},
			    {CKA_SENSITIVE, &sensitive, 1},
			    {CKA_EXTRACTABLE, &extractable, 1},
			    {CKA_ENCRYPT, &encrypt, 1}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, q, 5), CKR_OK);
	ck_assert_uint_eq(type, CKK_AES);
	ck_assert_uint_eq(len, 16);
	ck_assert(sensitive && !extractable && encrypt);
	CK_ATTRIBUTE readable[] = {{CKA_SENSITIVE, &no, 1}};
	ck_assert_uint_eq(
		p11->C_DeriveKey(session, &m, base, readable, 1, &key),
		CKR_TEMPLATE_INCONSISTENT);
	CK_ULONG longer = 32;
	CK_ATTRIBUTE other_len[] = {{CKA_VALUE_LEN, &longer, sizeof(longer)}};
	ck_assert_uint_eq(
		p11->C_DeriveKey(session, &m, base, other_len, 1, &key),
		CKR_TEMPLATE_INCONSISTENT);
	/* Read back: the entry count first, then the entries. */
	CK_ATTRIBUTE t = {CKA_DERIVE_TEMPLATE, NULL, 0};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, base, &t, 1),
			  CKR_OK);
	ck_assert_uint_eq(t.ulValueLen, sizeof(bound));
	CK_ATTRIBUTE loosen = {CKA_DERIVE_TEMPLATE, readable, sizeof(readable)};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, base, &loosen, 1),
			  CKR_ATTRIBUTE_READ_ONLY);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_hkdf");
	TCase *tc = tcase_create("hkdf");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rfc_5869_cases);
	tcase_add_test(tc, test_extract_and_expand_apart);
	tcase_add_test(tc, test_what_does_not_hold_is_refused);
	tcase_add_test(tc, test_derive_template_binds_derived_keys);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
