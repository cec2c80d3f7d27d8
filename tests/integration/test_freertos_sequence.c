/*
 * The calls FreeRTOS makes, in its order and with its templates: corePKCS11's
 * provisioning helpers, the mbedTLS PKCS#11 transport and the OTA signature
 * check (../shared/FREERTOS.md). The program links the module and calls the
 * global C_GetFunctionList as FreeRTOS does, runs with REMHSM_COMPAT=freertos,
 * and drives the TLS part from two threads that share one session. Every
 * signature is checked with OpenSSL, outside the token.
 */
#include <check.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PRIV_LABEL TH_FREERTOS_PRIV_LABEL
#define PUB_LABEL TH_FREERTOS_PUB_LABEL
#define CERT_LABEL "Device Cert"
#define VERIFY_LABEL "Code Verify Key"
#define RSA_LABEL "Claim Key"
#define TLS_ROUNDS 25

static th_daemon_t d;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;
static EVP_PKEY *ec_key, *rsa_key;

static const CK_BYTE p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				   0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE sha256_prefix[19] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
	0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

/* --- OpenSSL's side: the keys a device was provisioned with, and checks */

static void bn_param(EVP_PKEY *key, const char *name, CK_BYTE *out, int len)
{
	BIGNUM *bn = NULL;
	ck_assert(EVP_PKEY_get_bn_param(key, name, &bn));
	ck_assert_int_eq(BN_bn2binpad(bn, out, len), len);
	BN_clear_free(bn);
}

/* The uncompressed point as a DER OCTET STRING, as CKA_EC_POINT holds it. */
static void ec_point_der(EVP_PKEY *key, CK_BYTE out[67])
{
	size_t len = 0;
	out[0] = 0x04;
	out[1] = 65;
	ck_assert(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY,
						  out + 2, 65, &len));
	ck_assert_uint_eq(len, 65);
}

static int rsa_pkcs1_ok(EVP_PKEY *key, const CK_BYTE hash[32],
			const CK_BYTE *sig, CK_ULONG sig_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	int ok = EVP_PKEY_verify_init(ctx) == 1 &&
		 EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		 EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		 EVP_PKEY_verify(ctx, sig, sig_len, hash, 32) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static void sha256(const void *data, size_t len, CK_BYTE out[32])
{
	unsigned int n = 32;
	ck_assert(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL));
}

/* --- FreeRTOS's calls */

static CK_OBJECT_HANDLE find(const char *label, CK_ULONG label_len,
			     CK_OBJECT_CLASS cls)
{
	CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)label, label_len},
			    {CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_FindObjectsInit(session, t, 2), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjects(session, &h, 1, &n), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(session), CKR_OK);
	return n == 1 ? h : CK_INVALID_HANDLE;
}

/* Before each create, FreeRTOS destroys what holds the label. */
static void destroy_by_label(const char *label, CK_OBJECT_CLASS cls)
{
	CK_OBJECT_HANDLE h = find(label, strlen(label), cls);
	if (h != CK_INVALID_HANDLE)
		ck_assert_uint_eq(p11->C_DestroyObject(session, h), CKR_OK);
}

static CK_OBJECT_HANDLE create(CK_ATTRIBUTE *t, CK_ULONG n)
{
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	ck_assert_uint_eq(p11->C_CreateObject(session, t, n, &h), CKR_OK);
	return h;
}

static void create_ec_private_key(void)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE type = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_BYTE scalar[32];
	bn_param(ec_key, OSSL_PKEY_PARAM_PRIV_KEY, scalar, 32);
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_LABEL, PRIV_LABEL, strlen(PRIV_LABEL)},
			    {CKA_TOKEN, &yes, sizeof(yes)},
			    {CKA_SIGN, &yes, sizeof(yes)},
			    {CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid)},
			    {CKA_VALUE, scalar, sizeof(scalar)}};
	destroy_by_label(PRIV_LABEL, cls);
	create(t, 7);
	OPENSSL_cleanse(scalar, sizeof(scalar));
}

static void create_ec_public_key(const char *label)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE type = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_BYTE point[67];
	ec_point_der(ec_key, point);
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_TOKEN, &yes, sizeof(yes)},
			    {CKA_VERIFY, &yes, sizeof(yes)},
			    {CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid)},
			    {CKA_EC_POINT, point, sizeof(point)},
			    {CKA_LABEL, (void *)label, strlen(label)}};
	destroy_by_label(label, cls);
	create(t, 7);
}

/* Fixed-length big-endian buffers, as FreeRTOS's RSA template has them. */
static void create_rsa_private_key(void)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE type = CKK_RSA;
	CK_BBOOL yes = CK_TRUE;
	CK_BYTE n[256], d_[256], e[3], p[128], q[128], dp[128], dq[128],
		qinv[128];
	bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_N, n, 256);
	bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_D, d_, 256);
	bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_E, e, 3);
	bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_FACTOR1, p, 128);
	bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_FACTOR2, q, 128);
	bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp, 128);
	bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq, 128);
	bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv, 128);
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_LABEL, RSA_LABEL, strlen(RSA_LABEL)},
			    {CKA_TOKEN, &yes, sizeof(yes)},
			    {CKA_SIGN, &yes, sizeof(yes)},
			    {CKA_MODULUS, n, sizeof(n)},
			    {CKA_PRIVATE_EXPONENT, d_, sizeof(d_)},
			    {CKA_PUBLIC_EXPONENT, e, sizeof(e)},
			    {CKA_PRIME_1, p, sizeof(p)},
			    {CKA_PRIME_2, q, sizeof(q)},
			    {CKA_EXPONENT_1, dp, sizeof(dp)},
			    {CKA_EXPONENT_2, dq, sizeof(dq)},
			    {CKA_COEFFICIENT, qinv, sizeof(qinv)}};
	destroy_by_label(RSA_LABEL, cls);
	create(t, 13);
	OPENSSL_cleanse(d_, sizeof(d_));
	OPENSSL_cleanse(p, sizeof(p));
	OPENSSL_cleanse(q, sizeof(q));
}

/* CKA_SUBJECT is whatever string the application had, not DER. */
static void create_certificate(const unsigned char *der, int der_len)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE type = CKC_X_509;
	CK_BBOOL yes = CK_TRUE;
	const char subject[] = "TestSubject";
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_SUBJECT, (void *)subject, strlen(subject)},
			    {CKA_CERTIFICATE_TYPE, &type, sizeof(type)},
			    {CKA_VALUE, (void *)der, (CK_ULONG)der_len},
			    {CKA_LABEL, CERT_LABEL, strlen(CERT_LABEL)},
			    {CKA_TOKEN, &yes, sizeof(yes)}};
	destroy_by_label(CERT_LABEL, cls);
	create(t, 6);
}

static void initialize_and_open(void)
{
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	CK_FUNCTION_LIST_PTR list = NULL;
	ck_assert_uint_eq(C_GetFunctionList(&list), CKR_OK);
	p11 = list;
	ck_assert_uint_eq(p11->C_Initialize(&args), CKR_OK);
	ck_assert_uint_eq(p11->C_Initialize(&args),
			  CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	ck_assert_uint_ge(n, 1);
	CK_SLOT_ID *slots = calloc(n, sizeof(*slots));
	ck_assert_uint_eq(p11->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	CK_TOKEN_INFO info;
	ck_assert_uint_eq(p11->C_GetTokenInfo(slots[0], &info), CKR_OK);
	ck_assert(info.flags & CKF_TOKEN_INITIALIZED);
	ck_assert_uint_eq(p11->C_OpenSession(
				  slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION,
				  NULL, NULL, &session),
			  CKR_OK);
	free(slots);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_OK);
}

static void setup(void)
{
	/* Neither side polls for answers here, as on a device that would
	 * rather sleep: the other tests run with both polling. */
	static const char *const no_polling[] = {"--busy-poll-us", "0", NULL};
	setenv("REMHSM_SPIN_US", "0", 1);
	/* The token is provisioned as a FreeRTOS device expects it: user
	 * PIN "0000", through the module in its default mode. */
	void *module;
	CK_FUNCTION_LIST *admin = th_start_provisioned(&d, no_polling, &module);
	ck_assert_uint_eq(admin->C_Finalize(NULL), CKR_OK);
	setenv("REMHSM_COMPAT", "freertos", 1);
	ec_key = EVP_EC_gen("P-256");
	rsa_key = EVP_RSA_gen(2048);
	ck_assert_ptr_nonnull(ec_key);
	ck_assert_ptr_nonnull(rsa_key);
	initialize_and_open();
}

static void teardown(void)
{
	p11->C_Finalize(NULL);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(rsa_key);
	th_daemon_cleanup(&d);
}

/* --- the mbedTLS transport, per TLS handshake */

typedef struct tls_client {
	pthread_mutex_t *op_lock;
	EVP_PKEY
	*expected; /* the key the token's signatures must verify with */
	int handshakes;
} tls_client_t;

/* Reads an attribute with a length query first, as mbedTLS's glue does. */
static CK_ULONG read_attr(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
			  CK_BYTE *buf, CK_ULONG cap)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, h, &a, 1), CKR_OK);
	ck_assert_uint_le(a.ulValueLen, cap);
	a.pValue = buf;
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, h, &a, 1), CKR_OK);
	return a.ulValueLen;
}

static void check_private_key_is_described(CK_OBJECT_HANDLE priv)
{
	CK_KEY_TYPE type = 0;
	CK_ATTRIBUTE t = {CKA_KEY_TYPE, &type, sizeof(type)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, priv, &t, 1),
			  CKR_OK);
	ck_assert_uint_eq(type, CKK_EC);
	CK_BYTE params[16], point[80];
	ck_assert_uint_eq(
		read_attr(priv, CKA_EC_PARAMS, params, sizeof(params)),
		sizeof(p256_oid));
	ck_assert_mem_eq(params, p256_oid, sizeof(p256_oid));
	ck_assert_uint_eq(read_attr(priv, CKA_EC_POINT, point, sizeof(point)),
			  67);
}

/* A session holds one find and one sign operation at a time, so the two
 * threads take turns for those, as FreeRTOS's transport does; logins,
 * attribute reads and random run concurrently on the shared session. */
static void tls_sign(tls_client_t *c, CK_OBJECT_HANDLE priv)
{
	CK_BYTE hash[32], sig[64];
	ck_assert_uint_eq(p11->C_GenerateRandom(session, hash, sizeof(hash)),
			  CKR_OK);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_ULONG len = sizeof(sig);
	pthread_mutex_lock(c->op_lock);
	CK_RV init = p11->C_SignInit(session, &ecdsa, priv);
	CK_RV rv = p11->C_Sign(session, hash, sizeof(hash), sig, &len);
	pthread_mutex_unlock(c->op_lock);
	ck_assert_uint_eq(init, CKR_OK);
	ck_assert_uint_eq(rv, CKR_OK);
	ck_assert(th_ecdsa_verifies(c->expected, hash, sig, len));
}

static void *tls_handshakes(void *arg)
{
	tls_client_t *c = arg;
	for (int i = 0; i < TLS_ROUNDS; i++) {
		ck_assert_uint_eq(p11->C_Login(session, CKU_USER,
					       (CK_UTF8CHAR_PTR) "0000", 4),
				  CKR_OK);
		pthread_mutex_lock(c->op_lock);
		CK_OBJECT_HANDLE priv =
			find(PRIV_LABEL, strlen(PRIV_LABEL), CKO_PRIVATE_KEY);
		pthread_mutex_unlock(c->op_lock);
		ck_assert_uint_ne(priv, CK_INVALID_HANDLE);
		check_private_key_is_described(priv);
		tls_sign(c, priv);
		c->handshakes++;
	}
	return NULL;
}

START_TEST(test_provisioned_device_does_tls_from_two_threads)
{
	create_ec_private_key();
	create_ec_public_key(PUB_LABEL);
	unsigned char *der = NULL;
	int der_len = th_self_signed_der(ec_key, "device-1", &der);
	create_certificate(der, der_len);
	/* Provisioning twice replaces, never duplicates. */
	create_ec_private_key();
	ck_assert_uint_ne(find(PRIV_LABEL, strlen(PRIV_LABEL), CKO_PRIVATE_KEY),
			  CK_INVALID_HANDLE);
	CK_OBJECT_HANDLE cert =
		find(CERT_LABEL, strlen(CERT_LABEL), CKO_CERTIFICATE);
	CK_BYTE value[2048];
	ck_assert_uint_eq(read_attr(cert, CKA_VALUE, value, sizeof(value)),
			  (CK_ULONG)der_len);
	ck_assert_mem_eq(value, der, (size_t)der_len);
	OPENSSL_free(der);

	pthread_mutex_t op_lock = PTHREAD_MUTEX_INITIALIZER;
	tls_client_t clients[2] = {{&op_lock, ec_key, 0},
				   {&op_lock, ec_key, 0}};
	pthread_t threads[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&threads[i], NULL, tls_handshakes, &clients[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
	ck_assert_int_eq(clients[0].handshakes + clients[1].handshakes,
			 2 * TLS_ROUNDS);
}
END_TEST

START_TEST(test_generated_device_key_feeds_a_csr)
{
	th_freertos_pair_t pair;
	th_freertos_pair_templates(&pair, CK_FALSE);
	CK_OBJECT_HANDLE pub, priv;
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &pair.mechanism,
						 pair.pub, pair.pub_count,
						 pair.priv, pair.priv_count,
						 &pub, &priv),
			  CKR_OK);
	/* The CSR code reads the public point from the private key, and
	 * signs the request's hash with CKM_ECDSA. */
	CK_BYTE point[67];
	ck_assert_uint_eq(read_attr(priv, CKA_EC_POINT, point, sizeof(point)),
			  67);
	EVP_PKEY *token_key = th_p256_public_key(point);

	/* FreeRTOS's length query ends the operation in this mode, so the
	 * CSR code initialises again before signing. */
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_BYTE hash[32], sig[64];
	sha256("certification request info", 26, hash);
	CK_ULONG len = 0;
	ck_assert_uint_eq(p11->C_SignInit(session, &ecdsa, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, NULL, &len), CKR_OK);
	ck_assert_uint_eq(len, 64);
	ck_assert_uint_eq(p11->C_SignInit(session, &ecdsa, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	ck_assert(th_ecdsa_verifies(token_key, hash, sig, len));
	EVP_PKEY_free(token_key);
}
END_TEST

START_TEST(test_rsa_claim_key_signs_a_digest_info)
{
	create_rsa_private_key();
	CK_OBJECT_HANDLE priv =
		find(RSA_LABEL, strlen(RSA_LABEL), CKO_PRIVATE_KEY);
	ck_assert_uint_ne(priv, CK_INVALID_HANDLE);
	CK_BYTE info[51], sig[256];
	memcpy(info, sha256_prefix, sizeof(sha256_prefix));
	sha256("server key exchange", 19, info + 19);
	CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(p11->C_SignInit(session, &pkcs, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, info, sizeof(info), sig, &len),
			  CKR_OK);
	ck_assert_uint_eq(len, 256);
	ck_assert(rsa_pkcs1_ok(rsa_key, info + 19, sig, len));
	/* The private exponent stays in the token, whatever the template
	 * said: FreeRTOS set neither CKA_SENSITIVE nor CKA_EXTRACTABLE. */
	CK_BYTE d_[256];
	CK_ATTRIBUTE a = {CKA_PRIVATE_EXPONENT, d_, sizeof(d_)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, priv, &a, 1),
			  CKR_ATTRIBUTE_SENSITIVE);
	ck_assert_uint_eq(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
}
END_TEST

/* OTA: a read-only session with no login finds the code-verify key and
 * checks a 64-byte r||s over a 32-byte digest. */
START_TEST(test_ota_signature_check_without_login)
{
	create_ec_public_key(VERIFY_LABEL);
	CK_BYTE image_hash[32];
	sha256("firmware image v2", 17, image_hash);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(ec_key, NULL);
	unsigned char der[80];
	size_t der_len = sizeof(der);
	ck_assert_int_eq(EVP_PKEY_sign_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_sign(ctx, der, &der_len, image_hash, 32), 1);
	EVP_PKEY_CTX_free(ctx);
	const unsigned char *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	CK_BYTE rs[64];
	BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
	ECDSA_SIG_free(es);

	ck_assert_uint_eq(p11->C_CloseSession(session), CKR_OK);
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &session),
		CKR_OK);
	CK_OBJECT_HANDLE key =
		find(VERIFY_LABEL, strlen(VERIFY_LABEL), CKO_PUBLIC_KEY);
	ck_assert_uint_ne(key, CK_INVALID_HANDLE);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	ck_assert_uint_eq(p11->C_VerifyInit(session, &ecdsa, key), CKR_OK);
	ck_assert_uint_eq(p11->C_Verify(session, image_hash, 32, rs, 64),
			  CKR_OK);
	rs[5] ^= 0x40;
	ck_assert_uint_eq(p11->C_VerifyInit(session, &ecdsa, key), CKR_OK);
	ck_assert_uint_eq(p11->C_Verify(session, image_hash, 32, rs, 64),
			  CKR_SIGNATURE_INVALID);
	/* Some OTA code counts the label's NUL; the mode forgives it. */
	ck_assert_uint_eq(
		find(VERIFY_LABEL, sizeof(VERIFY_LABEL), CKO_PUBLIC_KEY), key);
}
END_TEST

START_TEST(test_digest_and_random_as_the_helpers_use_them)
{
	static const char image[] = "a firmware image, hashed in pieces";
	CK_BYTE want[32], got[32];
	sha256(image, sizeof(image), want);
	CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
	CK_ULONG len = sizeof(got);
	ck_assert_uint_eq(p11->C_DigestInit(session, &sha), CKR_OK);
	ck_assert_uint_eq(p11->C_Digest(session, (CK_BYTE_PTR)image,
					sizeof(image), got, &len),
			  CKR_OK);
	ck_assert_mem_eq(got, want, 32);
	ck_assert_uint_eq(p11->C_DigestInit(session, &sha), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestUpdate(session, (CK_BYTE_PTR)image, 10),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_DigestUpdate(session, (CK_BYTE_PTR)image + 10,
					      sizeof(image) - 10),
			  CKR_OK);
	len = sizeof(got);
	ck_assert_uint_eq(p11->C_DigestFinal(session, got, &len), CKR_OK);
	ck_assert_uint_eq(len, 32);
	ck_assert_mem_eq(got, want, 32);
	CK_BYTE a[48] = {0}, b[48] = {0};
	ck_assert_uint_eq(p11->C_GenerateRandom(session, a, sizeof(a)), CKR_OK);
	ck_assert_uint_eq(p11->C_GenerateRandom(session, b, sizeof(b)), CKR_OK);
	ck_assert(memcmp(a, b, sizeof(a)) != 0);
}
END_TEST

/* "Not found" is CKR_OK with no handle. */
START_TEST(test_missing_objects_are_found_as_none)
{
	ck_assert_uint_eq(find("JITP Cert", 9, CKO_CERTIFICATE),
			  CK_INVALID_HANDLE);
	ck_assert_uint_eq(find(PRIV_LABEL, strlen(PRIV_LABEL), CKO_PRIVATE_KEY),
			  CK_INVALID_HANDLE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("freertos_sequence");
	TCase *tc = tcase_create("sequence");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_provisioned_device_does_tls_from_two_threads);
	tcase_add_test(tc, test_generated_device_key_feeds_a_csr);
	tcase_add_test(tc, test_rsa_claim_key_signs_a_digest_info);
	tcase_add_test(tc, test_ota_signature_check_without_login);
	tcase_add_test(tc, test_digest_and_random_as_the_helpers_use_them);
	tcase_add_test(tc, test_missing_objects_are_found_as_none);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
