/*
 * Ed25519 (CKK_EC_EDWARDS, CKM_EDDSA) through the real module and daemon:
 * RFC 8032's test vectors 1, 2, 3 and SHA(abc) from imported keys (the
 * signatures are deterministic, so each must be the RFC's to the byte);
 * generated pairs checked by OpenSSL; a private key wrapped and unwrapped
 * (PKCS#8 under AES-KWP) signing as before; and what is refused: other
 * curves, malformed values, Ed25519ph and contexts, multi-part signing,
 * keys of the other EC type, signatures of the wrong length.
 */
#include <check.h>
#include <openssl/evp.h>
#include <string.h>

#include "harness.h"
#include "rh_pkcs11.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
static CK_KEY_TYPE ed_type = CKK_EC_EDWARDS;
/* CKA_EC_PARAMS as PKCS#11 3.0 names the curve, and RFC 8410's OID. */
static CK_BYTE ed_name[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
			    'd',  's',	'2', '5', '5', '1', '9'};
static CK_BYTE ed_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static CK_BYTE p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
			     0xce, 0x3d, 0x03, 0x01, 0x07};

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	session = th_user_session(p11, 0, "0000");
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

typedef struct {
	const char *seed, *pub, *msg, *sig;
} vector_t;

/* RFC 8032, section 7.1. */
static const vector_t vectors[] = {
	{"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	 "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
	 "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	 "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
	{"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
	 "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
	 "72",
	 "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
	 "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
	{"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
	 "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
	 "af82",
	 "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
	 "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
	{"833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
	 "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
	 "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
	 "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
	 "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
	 "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

static CK_RV import_private(const CK_BYTE *seed, CK_ULONG len,
			    CK_BBOOL extractable, CK_OBJECT_HANDLE *h)
{
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_class, sizeof(priv_class)},
			    {CKA_KEY_TYPE, &ed_type, sizeof(ed_type)},
			    {CKA_EC_PARAMS, ed_name, sizeof(ed_name)},
			    {CKA_VALUE, (void *)seed, len},
			    {CKA_SIGN, &yes, 1},
			    {CKA_EXTRACTABLE, &extractable, 1}};
	return p11->C_CreateObject(session, t, 6, h);
}

/* A public key from its 32 bytes, DER-wrapped (len 32) or as given. */
static CK_RV import_public(const CK_BYTE *pt, CK_ULONG len, int der,
			   CK_OBJECT_HANDLE *h)
{
	CK_BYTE point[2 + 64] = {0x04, (CK_BYTE)len};
	memcpy(point + (der ? 2 : 0), pt, len);
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &pub_class, sizeof(pub_class)},
			    {CKA_KEY_TYPE, &ed_type, sizeof(ed_type)},
			    {CKA_EC_PARAMS, ed_oid, sizeof(ed_oid)},
			    {CKA_EC_POINT, point, len + (der ? 2 : 0)},
			    {CKA_VERIFY, &yes, 1}};
	return p11->C_CreateObject(session, t, 5, h);
}

static CK_RV sign(CK_OBJECT_HANDLE key, const CK_BYTE *msg, CK_ULONG len,
		  CK_BYTE *sig, CK_ULONG *sig_len)
{
	CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
	CK_RV rv = p11->C_SignInit(session, &m, key);
	return rv == CKR_OK ? p11->C_Sign(session, (CK_BYTE_PTR)msg, len, sig,
					  sig_len)
			    : rv;
}

static CK_RV verify(CK_OBJECT_HANDLE key, const CK_BYTE *msg, CK_ULONG len,
		    const CK_BYTE *sig, CK_ULONG sig_len)
{
	CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
	CK_RV rv = p11->C_VerifyInit(session, &m, key);
	return rv == CKR_OK ? p11->C_Verify(session, (CK_BYTE_PTR)msg, len,
					    (CK_BYTE_PTR)sig, sig_len)
			    : rv;
}

static void assert_signs(CK_OBJECT_HANDLE key, const vector_t *v)
{
	CK_BYTE msg[64], want[64], sig[64];
	size_t msg_len = th_unhex(v->msg, msg);
	th_unhex(v->sig, want);
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign(key, msg, msg_len, sig, &len), CKR_OK);
	ck_assert_uint_eq(len, 64);
	ck_assert_mem_eq(sig, want, 64);
}

START_TEST(test_rfc_8032_vectors)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const vector_t *v = &vectors[i];
		CK_BYTE seed[32], pub[32], msg[64], sig[64];
		th_unhex(v->seed, seed);
		th_unhex(v->pub, pub);
		size_t msg_len = th_unhex(v->msg, msg);
		th_unhex(v->sig, sig);
		CK_OBJECT_HANDLE priv = 0, pk = 0;
		ck_assert_uint_eq(import_private(seed, 32, no, &priv), CKR_OK);
		ck_assert_uint_eq(import_public(pub, 32, 1, &pk), CKR_OK);
		assert_signs(priv, v);
		/* The token derived the private key's point from its seed. */
		CK_BYTE point[40];
		CK_ATTRIBUTE a = {CKA_EC_POINT, point, sizeof(point)};
		ck_assert_uint_eq(
			p11->C_GetAttributeValue(session, priv, &a, 1), CKR_OK);
		ck_assert_uint_eq(a.ulValueLen, 34);
		ck_assert_mem_eq(point + 2, pub, 32);
		ck_assert_uint_eq(verify(pk, msg, msg_len, sig, 64), CKR_OK);
		sig[10] ^= 0x01;
		ck_assert_uint_eq(verify(pk, msg, msg_len, sig, 64),
				  CKR_SIGNATURE_INVALID);
	}
}
END_TEST

/* A generated pair: the token's record of it, and its signatures over a
 * message longer than any hash checked by OpenSSL from the point. */
START_TEST(test_generated_pair_verified_by_openssl)
{
	CK_MECHANISM gen = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, ed_oid, sizeof(ed_oid)},
			     {CKA_VERIFY, &yes, 1}};
	CK_ATTRIBUTE vt[] = {{CKA_SIGN, &yes, 1}};
	CK_OBJECT_HANDLE pub = 0, priv = 0;
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &gen, pt, 2, vt, 1,
						 &pub, &priv),
			  CKR_OK);
	CK_KEY_TYPE type = 0;
	CK_MECHANISM_TYPE made = 0;
	CK_BBOOL local = CK_FALSE, sensitive = CK_FALSE;
	CK_ATTRIBUTE a[] = {{CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_KEY_GEN_MECHANISM, &made, sizeof(made)},
			    {CKA_LOCAL, &local, 1},
			    {CKA_ALWAYS_SENSITIVE, &sensitive, 1}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, priv, a, 4),
			  CKR_OK);
	ck_assert_uint_eq(type, CKK_EC_EDWARDS);
	ck_assert_uint_eq(made, CKM_EC_EDWARDS_KEY_PAIR_GEN);
	ck_assert(local && sensitive);
	CK_BYTE point[34];
	CK_ATTRIBUTE p = {CKA_EC_POINT, point, sizeof(point)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, pub, &p, 1),
			  CKR_OK);
	ck_assert_uint_eq(p.ulValueLen, 34);
	ck_assert_uint_eq(point[0], 0x04);
	ck_assert_uint_eq(point[1], 32);

	CK_BYTE msg[3000], sig[64];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (CK_BYTE)(i * 7);
	CK_ULONG len = 0;
	/* The two-call convention: the length first. */
	ck_assert_uint_eq(sign(priv, msg, sizeof(msg), NULL, &len), CKR_OK);
	ck_assert_uint_eq(len, 64);
	ck_assert_uint_eq(p11->C_Sign(session, msg, sizeof(msg), sig, &len),
			  CKR_OK);
	EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
						    point + 2, 32);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	ck_assert(key && ctx);
	ck_assert_int_eq(
		EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL, NULL, key, NULL),
		1);
	ck_assert_int_eq(EVP_DigestVerify(ctx, sig, 64, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	ck_assert_uint_eq(verify(pub, msg, sizeof(msg), sig, 64), CKR_OK);
}
END_TEST

/* OpenSC's pkcs11-tool names the curve by GnuPG's OID; P-256's OID is no
 * Edwards curve, and the Edwards mechanism makes no NIST key. */
START_TEST(test_generation_by_curve_name)
{
	CK_BYTE gnupg[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x04,
			   0x01, 0xda, 0x47, 0x0f, 0x01};
	CK_MECHANISM gen = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, gnupg, sizeof(gnupg)}};
	CK_OBJECT_HANDLE pub = 0, priv = 0;
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &gen, pt, 1, NULL, 0,
						 &pub, &priv),
			  CKR_OK);
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign(priv, (const CK_BYTE *)"abc", 3, sig, &len),
			  CKR_OK);
	ck_assert_uint_eq(verify(pub, (const CK_BYTE *)"abc", 3, sig, len),
			  CKR_OK);

	pt[0] = (CK_ATTRIBUTE){CKA_EC_PARAMS, p256_oid, sizeof(p256_oid)};
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &gen, pt, 1, NULL, 0,
						 &pub, &priv),
			  CKR_CURVE_NOT_SUPPORTED);
	CK_MECHANISM ec = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	pt[0] = (CK_ATTRIBUTE){CKA_EC_PARAMS, ed_oid, sizeof(ed_oid)};
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &ec, pt, 1, NULL, 0,
						 &pub, &priv),
			  CKR_CURVE_NOT_SUPPORTED);
	CK_KEY_TYPE ec_type = CKK_EC;
	CK_ATTRIBUTE typed[] = {{CKA_EC_PARAMS, ed_oid, sizeof(ed_oid)},
				{CKA_KEY_TYPE, &ec_type, sizeof(ec_type)}};
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &gen, typed, 2, NULL,
						 0, &pub, &priv),
			  CKR_TEMPLATE_INCONSISTENT);
}
END_TEST

/* Exported as PKCS#8 under AES-KWP and taken back: the same key, so the
 * same deterministic signature. */
START_TEST(test_private_key_wraps_and_unwraps)
{
	const vector_t *v = &vectors[1];
	CK_BYTE seed[32], aes[32] = {1, 2, 3};
	th_unhex(v->seed, seed);
	CK_OBJECT_HANDLE key = 0, k = 0, back = 0;
	ck_assert_uint_eq(import_private(seed, 32, yes, &key), CKR_OK);
	CK_ATTRIBUTE wa[] = {{CKA_WRAP, &yes, 1}, {CKA_UNWRAP, &yes, 1}};
	ck_assert_uint_eq(th_import_secret(p11, session, CKK_AES, aes,
					   sizeof(aes), wa, 2, &k),
			  CKR_OK);
	CK_MECHANISM m = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
	CK_BYTE blob[256];
	CK_ULONG len = sizeof(blob);
	ck_assert_uint_eq(p11->C_WrapKey(session, &m, k, key, blob, &len),
			  CKR_OK);
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_class, sizeof(priv_class)},
			    {CKA_KEY_TYPE, &ed_type, sizeof(ed_type)},
			    {CKA_SIGN, &yes, 1}};
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, k, blob, len, t, 3, &back),
		CKR_OK);
	assert_signs(back, v);
	/* The same blob is no EC (NIST) key. */
	CK_KEY_TYPE ec_type = CKK_EC;
	t[1].pValue = &ec_type;
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, k, blob, len, t, 3, &back),
		CKR_WRAPPED_KEY_INVALID);
}
END_TEST

START_TEST(test_bad_keys_refused)
{
	CK_BYTE seed[33] = {0}, pub[33] = {0};
	CK_OBJECT_HANDLE h = 0;
	ck_assert_uint_eq(import_private(seed, 31, no, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	ck_assert_uint_eq(import_private(seed, 33, no, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	ck_assert_uint_eq(import_public(pub, 33, 1, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	/* The point bare, not inside its OCTET STRING. */
	ck_assert_uint_eq(import_public(pub, 32, 0, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &priv_class, sizeof(priv_class)},
			    {CKA_KEY_TYPE, &ed_type, sizeof(ed_type)},
			    {CKA_EC_PARAMS, p256_oid, sizeof(p256_oid)},
			    {CKA_VALUE, seed, 32}};
	ck_assert_uint_eq(p11->C_CreateObject(session, t, 4, &h),
			  CKR_CURVE_NOT_SUPPORTED);
}
END_TEST

/* Only plain Ed25519, single-part, with Ed25519 keys; signatures of 64
 * bytes. */
START_TEST(test_operations_refused)
{
	CK_BYTE seed[32], sig[64] = {0};
	th_unhex(vectors[0].seed, seed);
	CK_OBJECT_HANDLE key = 0, pub = 0, priv = 0;
	ck_assert_uint_eq(import_private(seed, 32, no, &key), CKR_OK);
	CK_EDDSA_PARAMS ph = {CK_TRUE, 0, NULL};
	CK_MECHANISM m = {CKM_EDDSA, &ph, sizeof(ph)};
	ck_assert_uint_eq(p11->C_SignInit(session, &m, key),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_BYTE context[] = "ctx";
	CK_EDDSA_PARAMS ctx = {CK_FALSE, 3, context};
	m.pParameter = &ctx;
	ck_assert_uint_eq(p11->C_SignInit(session, &m, key),
			  CKR_MECHANISM_PARAM_INVALID);
	/* A parameter that asks for nothing more is plain Ed25519. */
	CK_EDDSA_PARAMS plain = {CK_FALSE, 0, NULL};
	m.pParameter = &plain;
	ck_assert_uint_eq(p11->C_SignInit(session, &m, key), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, seed, 4),
			  CKR_FUNCTION_NOT_SUPPORTED);
	/* The failed update ended the operation. */
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(p11->C_Sign(session, seed, 4, sig, &len),
			  CKR_OPERATION_NOT_INITIALIZED);

	th_generate_p256(p11, session, CK_FALSE, &pub, &priv);
	ck_assert_uint_eq(sign(priv, seed, 4, sig, &len),
			  CKR_KEY_TYPE_INCONSISTENT);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	ck_assert_uint_eq(p11->C_SignInit(session, &ecdsa, key),
			  CKR_KEY_TYPE_INCONSISTENT);

	CK_BYTE pk[32];
	th_unhex(vectors[0].pub, pk);
	ck_assert_uint_eq(import_public(pk, 32, 1, &pub), CKR_OK);
	ck_assert_uint_eq(verify(pub, NULL, 0, sig, 63),
			  CKR_SIGNATURE_LEN_RANGE);
}
END_TEST

START_TEST(test_mechanism_info)
{
	CK_MECHANISM_INFO info;
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_EDDSA, &info), CKR_OK);
	ck_assert_uint_eq(info.ulMinKeySize, 255);
	ck_assert_uint_eq(info.ulMaxKeySize, 255);
	ck_assert(info.flags & CKF_SIGN && info.flags & CKF_VERIFY);
	ck_assert(!(info.flags & CKF_DIGEST));
	ck_assert_uint_eq(
		p11->C_GetMechanismInfo(0, CKM_EC_EDWARDS_KEY_PAIR_GEN, &info),
		CKR_OK);
	ck_assert(info.flags & CKF_GENERATE_KEY_PAIR);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_eddsa");
	TCase *tc = tcase_create("ed25519");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_rfc_8032_vectors);
	tcase_add_test(tc, test_generated_pair_verified_by_openssl);
	tcase_add_test(tc, test_generation_by_curve_name);
	tcase_add_test(tc, test_private_key_wraps_and_unwraps);
	tcase_add_test(tc, test_bad_keys_refused);
	tcase_add_test(tc, test_operations_refused);
	tcase_add_test(tc, test_mechanism_info);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
