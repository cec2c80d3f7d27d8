/*
 * Secret keys through the real module and daemon: AES and generic secret
 * keys imported (their length and check value checked) and generated
 * (C_GenerateKey), the attributes the token sets on them, and MACs with
 * them through C_Sign/C_Verify, single- and multi-part, against the
 * published vectors: RFC 2202 and RFC 4231 for HMAC, RFC 4493 (NIST SP
 * 800-38B) for AES-CMAC; C_DigestKey.
 */
#include <check.h>
#include <dlfcn.h>
#include <string.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;

static CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY;
static CK_KEY_TYPE aes_type = CKK_AES, generic_type = CKK_GENERIC_SECRET;
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

/* RFC 2202 / RFC 4231 test case 1: key 0x0b x 20, "Hi There". */
static CK_BYTE hmac_key[20];
static const char hi_there[] = "Hi There";
static const struct {
	CK_MECHANISM_TYPE mech;
	const char *mac;
} hmac_vectors[] = {
	{CKM_SHA_1_HMAC, "b617318655057264e28bc0b6fb378c8ef146be00"},
	{CKM_SHA256_HMAC, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da7"
			  "26e9376c2e32cff7"},
	{CKM_SHA384_HMAC, "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec6"
			  "82aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"},
	{CKM_SHA512_HMAC, "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec278"
			  "7ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4"
			  "be9d914eeb61f1702e696c203a126854"},
};

/* RFC 4493 section 4: AES-128 key, the empty message and one block. */
static const CK_BYTE cmac_key[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae,
				     0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88,
				     0x09, 0xcf, 0x4f, 0x3c};
static const CK_BYTE cmac_block[16] = {0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40,
				       0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11,
				       0x73, 0x93, 0x17, 0x2a};

static void setup(void)
{
	memset(hmac_key, 0x0b, sizeof(hmac_key));
	p11 = th_start_provisioned(&d, NULL, &module);
	session = th_user_session(p11, 0, "0000");
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

/* A session secret key of type with value, and extra attributes. */
static CK_RV import(CK_KEY_TYPE *type, const void *value, CK_ULONG len,
		    const CK_ATTRIBUTE *extra, CK_ULONG n_extra,
		    CK_OBJECT_HANDLE *key)
{
	return th_import_secret(p11, session, *type, value, len, extra, n_extra,
				key);
}

static CK_OBJECT_HANDLE imported(CK_KEY_TYPE *type, const void *value,
				 CK_ULONG len)
{
	CK_OBJECT_HANDLE key = 0;
	ck_assert_uint_eq(import(type, value, len, NULL, 0, &key), CKR_OK);
	return key;
}

static CK_RV mac(CK_MECHANISM_TYPE type, CK_OBJECT_HANDLE key, const void *data,
		 CK_ULONG len, CK_BYTE *out, CK_ULONG *out_len)
{
	CK_MECHANISM m = {type, NULL, 0};
	CK_RV rv = p11->C_SignInit(session, &m, key);
	return rv == CKR_OK ? p11->C_Sign(session, (CK_BYTE_PTR)data, len, out,
					  out_len)
			    : rv;
}

static CK_RV mac_verify(CK_MECHANISM_TYPE type, CK_OBJECT_HANDLE key,
			const void *data, CK_ULONG len, const CK_BYTE *sig,
			CK_ULONG sig_len)
{
	CK_MECHANISM m = {type, NULL, 0};
	CK_RV rv = p11->C_VerifyInit(session, &m, key);
	return rv == CKR_OK ? p11->C_Verify(session, (CK_BYTE_PTR)data, len,
					    (CK_BYTE_PTR)sig, sig_len)
			    : rv;
}

START_TEST(test_imported_keys_carry_their_length_and_check_value)
{
	static const CK_BYTE zero_aes[16];
	CK_OBJECT_HANDLE aes = imported(&aes_type, zero_aes, 16);
	CK_BYTE check[8], value[16];
	CK_ULONG value_len = 0;
	CK_BBOOL sensitive = 0, local = 1, always = 1, never = 1;
	CK_ATTRIBUTE a[] = {{CKA_CHECK_VALUE, check, sizeof(check)},
			    {CKA_VALUE_LEN, &value_len, sizeof(value_len)},
			    {CKA_SENSITIVE, &sensitive, 1},
			    {CKA_LOCAL, &local, 1},
			    {CKA_ALWAYS_SENSITIVE, &always, 1},
			    {CKA_NEVER_EXTRACTABLE, &never, 1}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, aes, a, 6), CKR_OK);
	/* AES-128 of a zero block under the zero key: 66e94bd4... */
	ck_assert_uint_eq(a[0].ulValueLen, 3);
	ck_assert_mem_eq(check, "\x66\xe9\x4b", 3);
	ck_assert_uint_eq(value_len, 16);
	ck_assert(sensitive && !local && !always && !never);
	CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof(value)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, aes, &v, 1),
			  CKR_ATTRIBUTE_SENSITIVE);
	/* A generic secret's: SHA-1 of the value, fe5567e8... */
	CK_OBJECT_HANDLE gen = imported(&generic_type, "0123456789abcdef", 16);
	CK_ATTRIBUTE c = {CKA_CHECK_VALUE, check, sizeof(check)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, gen, &c, 1),
			  CKR_OK);
	ck_assert_mem_eq(check, "\xfe\x55\x67", 3);
	/* Extractable and not sensitive: the value reads back. */
	CK_ATTRIBUTE open[] = {{CKA_SENSITIVE, &no, 1},
			       {CKA_EXTRACTABLE, &yes, 1}};
	CK_OBJECT_HANDLE readable;
	ck_assert_uint_eq(import(&generic_type, "0123456789abcdef", 16, open, 2,
				 &readable),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, readable, &v, 1),
			  CKR_OK);
	ck_assert_mem_eq(value, "0123456789abcdef", 16);
}
END_TEST

START_TEST(test_secret_templates_that_do_not_hold_are_refused)
{
	CK_OBJECT_HANDLE key;
	static const CK_BYTE big[513];
	ck_assert_uint_eq(import(&aes_type, big, 15, NULL, 0, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	ck_assert_uint_eq(import(&aes_type, big, 33, NULL, 0, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	ck_assert_uint_eq(import(&generic_type, big, 15, NULL, 0, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	ck_assert_uint_eq(import(&generic_type, big, 513, NULL, 0, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_KEY_TYPE des3 = CKK_DES3;
	ck_assert_uint_eq(import(&des3, big, 24, NULL, 0, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_ULONG wrong_len = 24;
	CK_ATTRIBUTE len = {CKA_VALUE_LEN, &wrong_len, sizeof(wrong_len)};
	ck_assert_uint_eq(import(&aes_type, big, 16, &len, 1, &key),
			  CKR_TEMPLATE_INCONSISTENT);
	CK_ATTRIBUTE bad_check = {CKA_CHECK_VALUE, "\x66\xe9\x4c", 3};
	ck_assert_uint_eq(import(&aes_type, big, 16, &bad_check, 1, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_ATTRIBUTE local = {CKA_LOCAL, &yes, 1};
	ck_assert_uint_eq(import(&aes_type, big, 16, &local, 1, &key),
			  CKR_ATTRIBUTE_READ_ONLY);
	CK_ATTRIBUTE modulus = {CKA_MODULUS, (void *)big, 256};
	ck_assert_uint_eq(import(&aes_type, big, 16, &modulus, 1, &key),
			  CKR_ATTRIBUTE_TYPE_INVALID);
	CK_ATTRIBUTE no_value[] = {
		{CKA_CLASS, &secret_class, sizeof(secret_class)},
		{CKA_KEY_TYPE, &aes_type, sizeof(aes_type)}};
	ck_assert_uint_eq(p11->C_CreateObject(session, no_value, 2, &key),
			  CKR_TEMPLATE_INCOMPLETE);
	/* As they are, the length and check value may be named; an empty
	 * check value asks for none. */
	CK_ULONG right_len = 16;
	CK_ATTRIBUTE both[] = {{CKA_VALUE_LEN, &right_len, sizeof(right_len)},
			       {CKA_CHECK_VALUE, "\x66\xe9\x4b", 3}};
	ck_assert_uint_eq(import(&aes_type, big, 16, both, 2, &key), CKR_OK);
	CK_ATTRIBUTE none = {CKA_CHECK_VALUE, "", 0};
	ck_assert_uint_eq(import(&aes_type, big, 16, &none, 1, &key), CKR_OK);
	CK_BYTE check[4];
	CK_ATTRIBUTE c = {CKA_CHECK_VALUE, check, sizeof(check)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, &c, 1),
			  CKR_OK);
	ck_assert_uint_eq(c.ulValueLen, 0);
	/* What follows from the value stays as it is. */
	CK_ATTRIBUTE change = {CKA_CHECK_VALUE, "\x01\x02\x03", 3};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, key, &change, 1),
			  CKR_ATTRIBUTE_READ_ONLY);
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, key, &len, 1),
			  CKR_ATTRIBUTE_READ_ONLY);
	CK_ATTRIBUTE trusted = {CKA_WRAP_WITH_TRUSTED, &yes, 1};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, key, &trusted, 1),
			  CKR_OK);
	trusted.pValue = &no;
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, key, &trusted, 1),
			  CKR_ATTRIBUTE_READ_ONLY);
}
END_TEST

START_TEST(test_hmac_matches_the_published_vectors)
{
	CK_OBJECT_HANDLE key =
		imported(&generic_type, hmac_key, sizeof(hmac_key));
	for (size_t i = 0; i < sizeof(hmac_vectors) / sizeof(hmac_vectors[0]);
	     i++) {
		CK_BYTE want[64], got[64];
		CK_ULONG want_len = th_unhex(hmac_vectors[i].mac, want);
		CK_ULONG len = 0;
		/* The length first (the operation stays), then the MAC. */
		ck_assert_uint_eq(
			mac(hmac_vectors[i].mech, key, hi_there, 8, NULL, &len),
			CKR_OK);
		ck_assert_uint_eq(len, want_len);
		ck_assert_uint_eq(p11->C_Sign(session, (CK_BYTE_PTR)hi_there, 8,
					      got, &len),
				  CKR_OK);
		ck_assert_mem_eq(got, want, want_len);
		/* In parts, the same. */
		CK_MECHANISM m = {hmac_vectors[i].mech, NULL, 0};
		ck_assert_uint_eq(p11->C_SignInit(session, &m, key), CKR_OK);
		ck_assert_uint_eq(
			p11->C_SignUpdate(session, (CK_BYTE_PTR) "Hi ", 3),
			CKR_OK);
		ck_assert_uint_eq(
			p11->C_SignUpdate(session, (CK_BYTE_PTR) "There", 5),
			CKR_OK);
		len = sizeof(got);
		memset(got, 0, sizeof(got));
		ck_assert_uint_eq(p11->C_SignFinal(session, got, &len), CKR_OK);
		ck_assert_uint_eq(len, want_len);
		ck_assert_mem_eq(got, want, want_len);
		ck_assert_uint_eq(mac_verify(hmac_vectors[i].mech, key,
					     hi_there, 8, want, want_len),
				  CKR_OK);
		ck_assert_uint_eq(p11->C_VerifyInit(session, &m, key), CKR_OK);
		ck_assert_uint_eq(
			p11->C_VerifyUpdate(session, (CK_BYTE_PTR)hi_there, 8),
			CKR_OK);
		ck_assert_uint_eq(p11->C_VerifyFinal(session, want, want_len),
				  CKR_OK);
		want[want_len - 1] ^= 1;
		ck_assert_uint_eq(mac_verify(hmac_vectors[i].mech, key,
					     hi_there, 8, want, want_len),
				  CKR_SIGNATURE_INVALID);
		ck_assert_uint_eq(mac_verify(hmac_vectors[i].mech, key,
					     hi_there, 8, want, want_len - 1),
				  CKR_SIGNATURE_LEN_RANGE);
	}
}
END_TEST

START_TEST(test_aes_cmac_matches_the_published_vectors)
{
	CK_OBJECT_HANDLE key = imported(&aes_type, cmac_key, sizeof(cmac_key));
	CK_BYTE want[16], got[16];
	CK_ULONG len = sizeof(got);
	th_unhex("bb1d6929e95937287fa37d129b756746", want);
	ck_assert_uint_eq(mac(CKM_AES_CMAC, key, "", 0, got, &len), CKR_OK);
	ck_assert_uint_eq(len, 16);
	ck_assert_mem_eq(got, want, 16);
	th_unhex("070a16b46b4d4144f79bdd9dd04a287c", want);
	len = sizeof(got);
	ck_assert_uint_eq(mac(CKM_AES_CMAC, key, cmac_block, 16, got, &len),
			  CKR_OK);
	ck_assert_mem_eq(got, want, 16);
	ck_assert_uint_eq(
		mac_verify(CKM_AES_CMAC, key, cmac_block, 16, want, 16),
		CKR_OK);
	want[0] ^= 0x80;
	ck_assert_uint_eq(
		mac_verify(CKM_AES_CMAC, key, cmac_block, 16, want, 16),
		CKR_SIGNATURE_INVALID);
}
END_TEST

/* An init's error, from the init or from the call the module joined it
 * to. */
static CK_RV mac_init_error(CK_MECHANISM_TYPE type, CK_OBJECT_HANDLE key)
{
	CK_BYTE out[64];
	CK_ULONG len = sizeof(out);
	return mac(type, key, hi_there, 8, out, &len);
}

START_TEST(test_mac_keys_are_used_only_as_they_allow)
{
	CK_OBJECT_HANDLE generic =
		imported(&generic_type, hmac_key, sizeof(hmac_key));
	CK_OBJECT_HANDLE aes = imported(&aes_type, cmac_key, sizeof(cmac_key));
	ck_assert_uint_eq(mac_init_error(CKM_SHA256_HMAC, aes),
			  CKR_KEY_TYPE_INCONSISTENT);
	ck_assert_uint_eq(mac_init_error(CKM_AES_CMAC, generic),
			  CKR_KEY_TYPE_INCONSISTENT);
	ck_assert_uint_eq(mac_init_error(CKM_ECDSA, generic),
			  CKR_KEY_TYPE_INCONSISTENT);
	CK_OBJECT_HANDLE pub, priv;
	th_generate_p256(p11, session, CK_FALSE, &pub, &priv);
	ck_assert_uint_eq(mac_init_error(CKM_SHA256_HMAC, priv),
			  CKR_KEY_TYPE_INCONSISTENT);
	CK_ATTRIBUTE no_sign = {CKA_SIGN, &no, 1};
	CK_OBJECT_HANDLE verify_only;
	ck_assert_uint_eq(import(&generic_type, hmac_key, sizeof(hmac_key),
				 &no_sign, 1, &verify_only),
			  CKR_OK);
	ck_assert_uint_eq(mac_init_error(CKM_SHA256_HMAC, verify_only),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
	CK_MECHANISM_TYPE only = CKM_SHA384_HMAC;
	CK_ATTRIBUTE allowed = {CKA_ALLOWED_MECHANISMS, &only, sizeof(only)};
	CK_OBJECT_HANDLE sha384_only;
	ck_assert_uint_eq(import(&generic_type, hmac_key, sizeof(hmac_key),
				 &allowed, 1, &sha384_only),
			  CKR_OK);
	ck_assert_uint_eq(mac_init_error(CKM_SHA256_HMAC, sha384_only),
			  CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(mac_init_error(CKM_SHA384_HMAC, sha384_only), CKR_OK);
	/* A buffer too small: the length, and the operation goes on. */
	CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};
	CK_BYTE out[32];
	CK_ULONG len = 31;
	ck_assert_uint_eq(p11->C_SignInit(session, &m, generic), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Sign(session, (CK_BYTE_PTR)hi_there, 8, out, &len),
		CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(len, 32);
	ck_assert_uint_eq(
		p11->C_Sign(session, (CK_BYTE_PTR)hi_there, 8, out, &len),
		CKR_OK);
	ck_assert_mem_eq(out, "\xb0\x34\x4c\x61", 4);
	ck_assert_uint_eq(
		p11->C_Sign(session, (CK_BYTE_PTR)hi_there, 8, out, &len),
		CKR_OPERATION_NOT_INITIALIZED);
}
END_TEST

static CK_RV generate(CK_MECHANISM_TYPE type, const CK_ATTRIBUTE *t, CK_ULONG n,
		      CK_OBJECT_HANDLE *key)
{
	CK_MECHANISM m = {type, NULL, 0};
	return p11->C_GenerateKey(session, &m, (CK_ATTRIBUTE_PTR)t, n, key);
}

START_TEST(test_generated_keys_are_local_and_never_left_the_token)
{
	CK_ULONG len32 = 32;
	CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &len32, sizeof(len32)},
			    {CKA_TOKEN, &yes, 1},
			    {CKA_LABEL, "backup-aes", 10}};
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(generate(CKM_AES_KEY_GEN, t, 3, &key), CKR_OK);
	CK_BBOOL local = 0, always = 0, never = 0, sensitive = 0;
	CK_ULONG value_len = 0;
	CK_KEY_TYPE type = 0;
	CK_MECHANISM_TYPE gen = 0;
	CK_BYTE check[3];
	CK_ATTRIBUTE a[] = {{CKA_LOCAL, &local, 1},
			    {CKA_ALWAYS_SENSITIVE, &always, 1},
			    {CKA_NEVER_EXTRACTABLE, &never, 1},
			    {CKA_SENSITIVE, &sensitive, 1},
			    {CKA_VALUE_LEN, &value_len, sizeof(value_len)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_KEY_GEN_MECHANISM, &gen, sizeof(gen)},
			    {CKA_CHECK_VALUE, check, sizeof(check)}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, a, 8), CKR_OK);
	ck_assert(local && always && never && sensitive);
	ck_assert_uint_eq(value_len, 32);
	ck_assert_uint_eq(type, CKK_AES);
	ck_assert_uint_eq(gen, CKM_AES_KEY_GEN);
	ck_assert_uint_eq(a[7].ulValueLen, 3);
	CK_BYTE sig[16];
	CK_ULONG sig_len = sizeof(sig);
	ck_assert_uint_eq(mac(CKM_AES_CMAC, key, "firmware", 8, sig, &sig_len),
			  CKR_OK);
	/* A token key: the daemon's restart keeps it, and its MAC. */
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, NULL);
	CK_ATTRIBUTE label = {CKA_LABEL, "backup-aes", 10};
	CK_OBJECT_HANDLE found = 0;
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_FindObjectsInit(session, &label, 1), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjects(session, &found, 1, &n), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(session), CKR_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(
		mac_verify(CKM_AES_CMAC, found, "firmware", 8, sig, sig_len),
		CKR_OK);
	/* A generic secret for HMAC, extractable: its value is fresh. */
	CK_ULONG len64 = 64;
	CK_ATTRIBUTE h[] = {{CKA_VALUE_LEN, &len64, sizeof(len64)},
			    {CKA_SENSITIVE, &no, 1},
			    {CKA_EXTRACTABLE, &yes, 1}};
	CK_OBJECT_HANDLE hk;
	ck_assert_uint_eq(generate(CKM_GENERIC_SECRET_KEY_GEN, h, 3, &hk),
			  CKR_OK);
	CK_BYTE value[64] = {0}, zero[64] = {0};
	CK_ATTRIBUTE v[] = {{CKA_VALUE, value, sizeof(value)},
			    {CKA_ALWAYS_SENSITIVE, &always, 1},
			    {CKA_NEVER_EXTRACTABLE, &never, 1}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, hk, v, 3), CKR_OK);
	ck_assert_uint_eq(v[0].ulValueLen, 64);
	ck_assert_mem_ne(value, zero, 64);
	ck_assert(!always && !never);
	CK_BYTE hmac[64];
	CK_ULONG hmac_len = sizeof(hmac);
	ck_assert_uint_eq(mac(CKM_SHA512_HMAC, hk, "data", 4, hmac, &hmac_len),
			  CKR_OK);
	ck_assert_uint_eq(hmac_len, 64);
	ck_assert_uint_eq(
		mac_verify(CKM_SHA512_HMAC, hk, "data", 4, hmac, hmac_len),
		CKR_OK);
}
END_TEST

START_TEST(test_generation_templates_that_do_not_hold_are_refused)
{
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(generate(CKM_AES_KEY_GEN, NULL, 0, &key),
			  CKR_TEMPLATE_INCOMPLETE);
	CK_ULONG len20 = 20, len8 = 8, huge = 1u << 20;
	CK_ATTRIBUTE l20 = {CKA_VALUE_LEN, &len20, sizeof(len20)};
	ck_assert_uint_eq(generate(CKM_AES_KEY_GEN, &l20, 1, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_ATTRIBUTE l8 = {CKA_VALUE_LEN, &len8, sizeof(len8)};
	ck_assert_uint_eq(generate(CKM_GENERIC_SECRET_KEY_GEN, &l8, 1, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_ATTRIBUTE lhuge = {CKA_VALUE_LEN, &huge, sizeof(huge)};
	ck_assert_uint_eq(generate(CKM_GENERIC_SECRET_KEY_GEN, &lhuge, 1, &key),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_ATTRIBUTE with_value[] = {l20,
				     {CKA_VALUE, "0123456789abcdefghij", 20}};
	ck_assert_uint_eq(
		generate(CKM_GENERIC_SECRET_KEY_GEN, with_value, 2, &key),
		CKR_TEMPLATE_INCONSISTENT);
	CK_OBJECT_CLASS pub = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE other_class[] = {l20, {CKA_CLASS, &pub, sizeof(pub)}};
	ck_assert_uint_eq(
		generate(CKM_GENERIC_SECRET_KEY_GEN, other_class, 2, &key),
		CKR_TEMPLATE_INCONSISTENT);
	CK_ATTRIBUTE other_type[] = {
		l20, {CKA_KEY_TYPE, &aes_type, sizeof(aes_type)}};
	ck_assert_uint_eq(
		generate(CKM_GENERIC_SECRET_KEY_GEN, other_type, 2, &key),
		CKR_TEMPLATE_INCONSISTENT);
	ck_assert_uint_eq(generate(CKM_EC_KEY_PAIR_GEN, &l20, 1, &key),
			  CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(generate(CKM_AES_KEY_GEN, &l20, 1, NULL),
			  CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(generate(CKM_GENERIC_SECRET_KEY_GEN, &l20, 1, &key),
			  CKR_OK);
}
END_TEST

START_TEST(test_mechanism_info_tells_the_secret_mechanisms)
{
	static const struct {
		CK_MECHANISM_TYPE mech;
		CK_ULONG min, max;
		CK_FLAGS flags;
	} want[] = {
		{CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE},
		{CKM_GENERIC_SECRET_KEY_GEN, 128, 4096, CKF_GENERATE},
		{CKM_SHA_1_HMAC, 16, 512, CKF_SIGN | CKF_VERIFY},
		{CKM_SHA256_HMAC, 16, 512, CKF_SIGN | CKF_VERIFY},
		{CKM_SHA384_HMAC, 16, 512, CKF_SIGN | CKF_VERIFY},
		{CKM_SHA512_HMAC, 16, 512, CKF_SIGN | CKF_VERIFY},
		{CKM_AES_CMAC, 16, 32, CKF_SIGN | CKF_VERIFY},
	};
	CK_MECHANISM_TYPE list[64];
	CK_ULONG n = 64;
	ck_assert_uint_eq(p11->C_GetMechanismList(0, list, &n), CKR_OK);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		CK_MECHANISM_INFO info;
		ck_assert_uint_eq(
			p11->C_GetMechanismInfo(0, want[i].mech, &info),
			CKR_OK);
		ck_assert_uint_eq(info.ulMinKeySize, want[i].min);
		ck_assert_uint_eq(info.ulMaxKeySize, want[i].max);
		ck_assert_uint_eq(info.flags, want[i].flags | CKF_HW);
		int listed = 0;
		for (CK_ULONG k = 0; k < n; k++)
			listed |= list[k] == want[i].mech;
		ck_assert_msg(listed, "mechanism 0x%lx not listed",
			      want[i].mech);
	}
}
END_TEST

/* C_DigestKey: the value of a key that could be read anyway joins the
 * digest, between updates; a sensitive key, a private key or a handle that
 * names nothing is refused, and the refusal ends the digest. */
START_TEST(test_digest_key_takes_readable_secret_values)
{
	CK_BYTE v[16], want[32], got[32];
	for (size_t i = 0; i < sizeof(v); i++)
		v[i] = (CK_BYTE)(0xa0 + i);
	CK_OBJECT_HANDLE readable = 0, hidden = 0;
	CK_ATTRIBUTE open[] = {{CKA_SENSITIVE, &no, 1},
			       {CKA_EXTRACTABLE, &yes, 1}};
	ck_assert_uint_eq(th_import_secret(p11, session, generic_type, v,
					   sizeof(v), open, 2, &readable),
			  CKR_OK);
	ck_assert_uint_eq(th_import_secret(p11, session, generic_type, v,
					   sizeof(v), NULL, 0, &hidden),
			  CKR_OK);
	CK_BYTE whole[2 + sizeof(v)] = {'a', 'b'};
	memcpy(whole + 2, v, sizeof(v));
	CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
	CK_ULONG len = sizeof(want);
	ck_assert_uint_eq(p11->C_DigestInit(session, &sha), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Digest(session, whole, sizeof(whole), want, &len),
		CKR_OK);
	/* The init travels with C_DigestKey itself here. */
	ck_assert_uint_eq(p11->C_DigestInit(session, &sha), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestUpdate(session, whole, 2), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestKey(session, readable), CKR_OK);
	len = sizeof(got);
	ck_assert_uint_eq(p11->C_DigestFinal(session, got, &len), CKR_OK);
	ck_assert_uint_eq(len, 32);
	ck_assert_mem_eq(got, want, 32);
	ck_assert_uint_eq(p11->C_DigestInit(session, &sha), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestKey(session, readable), CKR_OK);
	len = sizeof(got);
	ck_assert_uint_eq(p11->C_DigestFinal(session, got, &len), CKR_OK);

	CK_OBJECT_HANDLE refused[] = {hidden, 0x7777};
	CK_RV why[] = {CKR_KEY_INDIGESTIBLE, CKR_KEY_HANDLE_INVALID};
	for (size_t i = 0; i < 2; i++) {
		ck_assert_uint_eq(p11->C_DigestInit(session, &sha), CKR_OK);
		ck_assert_uint_eq(p11->C_DigestUpdate(session, whole, 2),
				  CKR_OK);
		ck_assert_uint_eq(p11->C_DigestKey(session, refused[i]),
				  why[i]);
		ck_assert_uint_eq(p11->C_DigestFinal(session, got, &len),
				  CKR_OPERATION_NOT_INITIALIZED);
	}
	CK_OBJECT_HANDLE pub = 0, priv = 0;
	th_generate_p256(p11, session, CK_FALSE, &pub, &priv);
	ck_assert_uint_eq(p11->C_DigestInit(session, &sha), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestKey(session, priv),
			  CKR_KEY_INDIGESTIBLE);
	ck_assert_uint_eq(p11->C_DigestKey(session, readable),
			  CKR_OPERATION_NOT_INITIALIZED);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_secret");
	TCase *tc = tcase_create("secret keys");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc,
		       test_imported_keys_carry_their_length_and_check_value);
	tcase_add_test(tc, test_secret_templates_that_do_not_hold_are_refused);
	tcase_add_test(tc, test_hmac_matches_the_published_vectors);
	tcase_add_test(tc, test_aes_cmac_matches_the_published_vectors);
	tcase_add_test(tc, test_mac_keys_are_used_only_as_they_allow);
	tcase_add_test(tc,
		       test_generated_keys_are_local_and_never_left_the_token);
	tcase_add_test(tc,
		       test_generation_templates_that_do_not_hold_are_refused);
	tcase_add_test(tc, test_mechanism_info_tells_the_secret_mechanisms);
	tcase_add_test(tc, test_digest_key_takes_readable_secret_values);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
