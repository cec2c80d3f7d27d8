/*
 * ECDH key agreement through the real module and daemon
 * (CKM_ECDH1_DERIVE): a token key on P-256 or P-384 agrees with a peer
 * key made by OpenSSL, and the derived secret equals OpenSSL's own Z
 * (CKD_NULL) and X9.63 KDF output (CKD_SHA*_KDF); the derived key lives
 * on the token under its template's policy and inherits what it must from
 * its base; points off the curve, keys that may not derive and
 * parameters that do not hold are refused.
 */
#include <check.h>
#include <dlfcn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <string.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;

static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
			       0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const CK_BYTE p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	session = th_user_session(p11, 0, "0000");
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

/* A token EC pair on the curve whose private half may derive (or not). */
static CK_OBJECT_HANDLE ec_pair(const CK_BYTE *params, CK_ULONG len,
				CK_BBOOL derive, CK_OBJECT_HANDLE *pub)
{
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, (void *)params, len}};
	CK_ATTRIBUTE st[] = {{CKA_DERIVE, &derive, 1}};
	CK_OBJECT_HANDLE priv;
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &mech, pt, 1, st, 1,
						 pub, &priv),
			  CKR_OK);
	return priv;
}

/* OpenSSL's peer key on the curve, and its uncompressed point. */
static EVP_PKEY *peer_key(const char *curve, CK_BYTE *pt, size_t *pt_len)
{
	EVP_PKEY *key = EVP_EC_gen(curve);
	ck_assert_ptr_nonnull(key);
	ck_assert_int_eq(EVP_PKEY_get_octet_string_param(
				 key, OSSL_PKEY_PARAM_PUB_KEY, pt, 133, pt_len),
			 1);
	return key;
}

/* OpenSSL's Z of the peer's private key with the token's public key. */
static size_t openssl_z(EVP_PKEY *peer, const char *curve, CK_OBJECT_HANDLE pub,
			CK_BYTE *z)
{
	CK_BYTE der[140];
	CK_ATTRIBUTE a = {CKA_EC_POINT, der, sizeof(der)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, pub, &a, 1),
			  CKR_OK);
	/* DER's long length form from 128 bytes (P-521). */
	size_t hdr = der[1] == 0x81 ? 3 : 2;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
						 (char *)curve, 0),
		OSSL_PARAM_construct_octet_string(
			OSSL_PKEY_PARAM_PUB_KEY, der + hdr, a.ulValueLen - hdr),
		OSSL_PARAM_construct_end()};
	EVP_PKEY_CTX *from = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *token = NULL;
	ck_assert_int_eq(EVP_PKEY_fromdata_init(from), 1);
	ck_assert_int_eq(
		EVP_PKEY_fromdata(from, &token, EVP_PKEY_PUBLIC_KEY, params),
		1);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(peer, NULL);
	size_t len = 66;
	ck_assert_int_eq(EVP_PKEY_derive_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_derive_set_peer(ctx, token), 1);
	ck_assert_int_eq(EVP_PKEY_derive(ctx, z, &len), 1);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_CTX_free(from);
	EVP_PKEY_free(token);
	return len;
}

static void openssl_x963(const char *digest, const CK_BYTE *z, size_t z_len,
			 const char *info, CK_BYTE *out, size_t len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "X963KDF", NULL);
	EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						 (char *)digest, 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z,
						  z_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						  (void *)info, strlen(info)),
		OSSL_PARAM_construct_end()};
	ck_assert_int_eq(EVP_KDF_derive(ctx, out, len, params), 1);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
}

static CK_RV derive(CK_OBJECT_HANDLE base, CK_ULONG kdf, const char *shared,
		    const CK_BYTE *pt, CK_ULONG pt_len, CK_ATTRIBUTE *t,
		    CK_ULONG n, CK_OBJECT_HANDLE *key)
{
	CK_ECDH1_DERIVE_PARAMS p = {kdf, shared ? strlen(shared) : 0,
				    (CK_BYTE_PTR)shared, pt_len,
				    (CK_BYTE_PTR)pt};
	CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};
	return p11->C_DeriveKey(session, &m, base, t, n, key);
}

/* An extractable generic secret of len bytes: its value, read back. */
static CK_RV derive_readable(CK_OBJECT_HANDLE base, CK_ULONG kdf,
			     const char *shared, const CK_BYTE *pt,
			     CK_ULONG pt_len, CK_ULONG len, CK_BYTE *value)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &len, sizeof(len)},
			    {CKA_SENSITIVE, &no, 1},
			    {CKA_EXTRACTABLE, &yes, 1}};
	CK_OBJECT_HANDLE key;
	CK_RV rv = derive(base, kdf, shared, pt, pt_len, t, 3, &key);
	CK_ATTRIBUTE v = {CKA_VALUE, value, len};
	return rv == CKR_OK ? p11->C_GetAttributeValue(session, key, &v, 1)
			    : rv;
}

START_TEST(test_p256_agrees_with_openssl_raw_and_through_the_kdf)
{
	CK_OBJECT_HANDLE pub, priv = ec_pair(p256, sizeof(p256), 1, &pub);
	CK_BYTE pt[133], z[66], got[64], want[64];
	size_t pt_len;
	EVP_PKEY *peer = peer_key("P-256", pt, &pt_len);
	size_t z_len = openssl_z(peer, "P-256", pub, z);
	ck_assert_uint_eq(z_len, 32);
	ck_assert_uint_eq(
		derive_readable(priv, CKD_NULL, NULL, pt, pt_len, 32, got),
		CKR_OK);
	ck_assert_mem_eq(got, z, 32);
	/* Shorter: Z's leftmost bytes. */
	ck_assert_uint_eq(
		derive_readable(priv, CKD_NULL, NULL, pt, pt_len, 16, got),
		CKR_OK);
	ck_assert_mem_eq(got, z, 16);
	openssl_x963("SHA2-256", z, z_len, "device-42", want, 64);
	ck_assert_uint_eq(derive_readable(priv, CKD_SHA256_KDF, "device-42", pt,
					  pt_len, 64, got),
			  CKR_OK);
	ck_assert_mem_eq(got, want, 64);
	openssl_x963("SHA1", z, z_len, "", want, 20);
	ck_assert_uint_eq(
		derive_readable(priv, CKD_SHA1_KDF, NULL, pt, pt_len, 20, got),
		CKR_OK);
	ck_assert_mem_eq(got, want, 20);
	/* The point wrapped in a DER OCTET STRING is the same point. */
	CK_BYTE der[135] = {0x04, (CK_BYTE)pt_len};
	memcpy(der + 2, pt, pt_len);
	ck_assert_uint_eq(
		derive_readable(priv, CKD_NULL, NULL, der, pt_len + 2, 32, got),
		CKR_OK);
	ck_assert_mem_eq(got, z, 32);
	EVP_PKEY_free(peer);
}
END_TEST

/* P-521: the point in DER's long form, Z of the field's 66 bytes, and
 * ECDSA signatures of 132. */
START_TEST(test_p521_agrees_with_openssl_and_signs)
{
	CK_OBJECT_HANDLE pub, priv = ec_pair(p521, sizeof(p521), 1, &pub);
	CK_BYTE pt[133], z[66], got[66];
	size_t pt_len;
	EVP_PKEY *peer = peer_key("P-521", pt, &pt_len);
	ck_assert_uint_eq(openssl_z(peer, "P-521", pub, z), 66);
	ck_assert_uint_eq(
		derive_readable(priv, CKD_NULL, NULL, pt, pt_len, 66, got),
		CKR_OK);
	ck_assert_mem_eq(got, z, 66);
	EVP_PKEY_free(peer);
	CK_MECHANISM m = {CKM_ECDSA_SHA512, NULL, 0};
	CK_BYTE sig[140];
	CK_ULONG sig_len = sizeof(sig);
	ck_assert_uint_eq(p11->C_SignInit(session, &m, priv), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Sign(session, (CK_BYTE_PTR) "fw", 2, sig, &sig_len),
		CKR_OK);
	ck_assert_uint_eq(sig_len, 132);
	ck_assert_uint_eq(p11->C_VerifyInit(session, &m, pub), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Verify(session, (CK_BYTE_PTR) "fw", 2, sig, sig_len),
		CKR_OK);
	CK_MECHANISM_INFO info;
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_ECDSA, &info), CKR_OK);
	ck_assert_uint_eq(info.ulMaxKeySize, 521);
}
END_TEST

START_TEST(test_p384_derives_an_aes_key_that_works)
{
	CK_OBJECT_HANDLE pub, priv = ec_pair(p384, sizeof(p384), 1, &pub);
	CK_BYTE pt[133], z[66], want[32], got[32];
	size_t pt_len;
	EVP_PKEY *peer = peer_key("P-384", pt, &pt_len);
	size_t z_len = openssl_z(peer, "P-384", pub, z);
	ck_assert_uint_eq(z_len, 48);
	openssl_x963("SHA2-384", z, z_len, "aes", want, 32);
	ck_assert_uint_eq(derive_readable(priv, CKD_SHA384_KDF, "aes", pt,
					  pt_len, 32, got),
			  CKR_OK);
	ck_assert_mem_eq(got, want, 32);
	/* As an AES key, sensitive by default: it encrypts, and its base,
	 * made on the token, passes on "always sensitive". */
	CK_KEY_TYPE aes = CKK_AES;
	CK_ULONG len = 32;
	CK_ATTRIBUTE t[] = {{CKA_KEY_TYPE, &aes, sizeof(aes)},
			    {CKA_VALUE_LEN, &len, sizeof(len)}};
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(
		derive(priv, CKD_SHA384_KDF, "aes", pt, pt_len, t, 2, &key),
		CKR_OK);
	CK_BBOOL local = 1, always = 0, never = 0;
	CK_ATTRIBUTE a[] = {{CKA_LOCAL, &local, 1},
			    {CKA_ALWAYS_SENSITIVE, &always, 1},
			    {CKA_NEVER_EXTRACTABLE, &never, 1}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, a, 3), CKR_OK);
	ck_assert(!local && always && never);
	CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
	CK_BYTE block[16] = {0}, out[16];
	CK_ULONG out_len = sizeof(out);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &ecb, key), CKR_OK);
	ck_assert_uint_eq(p11->C_Encrypt(session, block, 16, out, &out_len),
			  CKR_OK);
	/* An AES key of Z's 48 bytes is no AES key. */
	CK_ATTRIBUTE only_type = {CKA_KEY_TYPE, &aes, sizeof(aes)};
	ck_assert_uint_eq(
		derive(priv, CKD_NULL, NULL, pt, pt_len, &only_type, 1, &key),
		CKR_ATTRIBUTE_VALUE_INVALID);
	EVP_PKEY_free(peer);
}
END_TEST

START_TEST(test_what_does_not_hold_is_refused)
{
	CK_OBJECT_HANDLE pub, priv = ec_pair(p256, sizeof(p256), 1, &pub);
	CK_OBJECT_HANDLE npub,
		no_derive = ec_pair(p256, sizeof(p256), 0, &npub);
	CK_BYTE pt[133];
	size_t pt_len;
	EVP_PKEY *peer = peer_key("P-256", pt, &pt_len);
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(
		derive(no_derive, CKD_NULL, NULL, pt, pt_len, NULL, 0, &key),
		CKR_KEY_FUNCTION_NOT_PERMITTED);
	ck_assert_uint_eq(
		derive(pub, CKD_NULL, NULL, pt, pt_len, NULL, 0, &key),
		CKR_KEY_TYPE_INCONSISTENT);
	/* A point off the curve, and one of another curve. */
	CK_BYTE off[133];
	memcpy(off, pt, pt_len);
	off[pt_len - 1] ^= 1;
	ck_assert_uint_eq(
		derive(priv, CKD_NULL, NULL, off, pt_len, NULL, 0, &key),
		CKR_MECHANISM_PARAM_INVALID);
	CK_BYTE other[133];
	size_t other_len;
	EVP_PKEY *p384_peer = peer_key("P-384", other, &other_len);
	ck_assert_uint_eq(
		derive(priv, CKD_NULL, NULL, other, other_len, NULL, 0, &key),
		CKR_MECHANISM_PARAM_INVALID);
	ck_assert_uint_eq(
		derive(priv, CKD_NULL, "shared", pt, pt_len, NULL, 0, &key),
		CKR_MECHANISM_PARAM_INVALID);
	ck_assert_uint_eq(derive(priv, CKD_SHA1_KDF_ASN1, NULL, pt, pt_len,
				 NULL, 0, &key),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_ULONG long_len = 40;
	CK_ATTRIBUTE too_long = {CKA_VALUE_LEN, &long_len, sizeof(long_len)};
	ck_assert_uint_eq(
		derive(priv, CKD_NULL, NULL, pt, pt_len, &too_long, 1, &key),
		CKR_ATTRIBUTE_VALUE_INVALID);
	CK_ATTRIBUTE value = {CKA_VALUE, "0123456789abcdef", 16};
	ck_assert_uint_eq(
		derive(priv, CKD_NULL, NULL, pt, pt_len, &value, 1, &key),
		CKR_TEMPLATE_INCONSISTENT);
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE wrong_class = {CKA_CLASS, &cls, sizeof(cls)};
	ck_assert_uint_eq(
		derive(priv, CKD_NULL, NULL, pt, pt_len, &wrong_class, 1, &key),
		CKR_TEMPLATE_INCONSISTENT);
	CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 0, NULL, pt_len, pt};
	CK_MECHANISM other_mech = {CKM_SHA256, NULL, 0};
	ck_assert_uint_eq(
		p11->C_DeriveKey(session, &other_mech, priv, NULL, 0, &key),
		CKR_MECHANISM_INVALID);
	CK_MECHANISM bare = {CKM_ECDH1_DERIVE, NULL, 0};
	ck_assert_uint_eq(p11->C_DeriveKey(session, &bare, priv, NULL, 0, &key),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};
	ck_assert_uint_eq(p11->C_DeriveKey(session, &m, priv, NULL, 0, NULL),
			  CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_DeriveKey(session, &m, 0x7fff, NULL, 0, &key),
			  CKR_KEY_HANDLE_INVALID);
	CK_MECHANISM_INFO info;
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_ECDH1_DERIVE, &info),
			  CKR_OK);
	ck_assert(info.flags & CKF_DERIVE);
	ck_assert_uint_eq(info.ulMinKeySize, 256);
	ck_assert_uint_eq(info.ulMaxKeySize, 521);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(p384_peer);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_derive");
	TCase *tc = tcase_create("ecdh");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc,
		       test_p256_agrees_with_openssl_raw_and_through_the_kdf);
	tcase_add_test(tc, test_p384_derives_an_aes_key_that_works);
	tcase_add_test(tc, test_p521_agrees_with_openssl_and_signs);
	tcase_add_test(tc, test_what_does_not_hold_is_refused);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
