/*
 * Keys and signatures through the real module and daemon: FreeRTOS's key
 * generation template, ECDSA with raw r||s, multi-part hash-and-sign,
 * digests, and the operation state rules with their exact codes.
 */
#include <check.h>
#include <dlfcn.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;
static CK_OBJECT_HANDLE pub, priv;

static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
			       0xce, 0x3d, 0x03, 0x01, 0x07};
static CK_BYTE hash[32] = "0123456789abcdef0123456789abcdef";

static void login(void)
{
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
				   NULL, &session),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_OK);
}

/* FreeRTOS's templates: no CKA_TOKEN on the public key. */
static CK_RV generate(const CK_BYTE *params, size_t params_len, CK_BBOOL sign)
{
	CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_KEY_TYPE type = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pt[] = {{CKA_KEY_TYPE, &type, sizeof(type)},
			     {CKA_VERIFY, &yes, sizeof(yes)},
			     {CKA_EC_PARAMS, (void *)params, params_len},
			     {CKA_LABEL, "Device Pub TLS Key", 18}};
	CK_ATTRIBUTE st[] = {{CKA_KEY_TYPE, &type, sizeof(type)},
			     {CKA_TOKEN, &yes, sizeof(yes)},
			     {CKA_PRIVATE, &yes, sizeof(yes)},
			     {CKA_SIGN, &sign, sizeof(sign)},
			     {CKA_LABEL, "Device Priv TLS Key", 19}};
	return p11->C_GenerateKeyPair(session, &mech, pt, 4, st, 5, &pub,
				      &priv);
}

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	login();
	ck_assert_uint_eq(generate(p256, sizeof(p256), CK_TRUE), CKR_OK);
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

static CK_RV sign_init(CK_MECHANISM_TYPE type, CK_OBJECT_HANDLE key)
{
	CK_MECHANISM mech = {type, NULL, 0};
	return p11->C_SignInit(session, &mech, key);
}

/* An init's error, reported by the init or, when the client held the init
 * back to save a round trip, by the call that follows. */
static CK_RV init_error(CK_MECHANISM_TYPE type, CK_OBJECT_HANDLE key)
{
	CK_RV rv = sign_init(type, key);
	if (rv != CKR_OK)
		return rv;
	CK_BYTE sig[128];
	CK_ULONG len = sizeof(sig);
	return p11->C_Sign(session, hash, 32, sig, &len);
}

static CK_RV verify(CK_MECHANISM_TYPE type, const CK_BYTE *data, CK_ULONG len,
		    CK_BYTE *sig, CK_ULONG sig_len)
{
	CK_MECHANISM mech = {type, NULL, 0};
	CK_RV rv = p11->C_VerifyInit(session, &mech, pub);
	return rv == CKR_OK ? p11->C_Verify(session, (CK_BYTE_PTR)data, len,
					    sig, sig_len)
			    : rv;
}

START_TEST(test_generated_keys_have_the_tokens_attributes)
{
	CK_BBOOL local = 0, always = 0, never = 0, extractable = 1;
	CK_MECHANISM_TYPE gen = 0;
	CK_ATTRIBUTE a[] = {{CKA_LOCAL, &local, 1},
			    {CKA_ALWAYS_SENSITIVE, &always, 1},
			    {CKA_NEVER_EXTRACTABLE, &never, 1},
			    {CKA_EXTRACTABLE, &extractable, 1},
			    {CKA_KEY_GEN_MECHANISM, &gen, sizeof(gen)}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, priv, a, 5),
			  CKR_OK);
	ck_assert(local && always && never && !extractable);
	ck_assert_uint_eq(gen, CKM_EC_KEY_PAIR_GEN);
	/* FreeRTOS reads the point from the private key. */
	CK_BYTE point[67], pub_point[67];
	CK_ATTRIBUTE pp = {CKA_EC_POINT, point, sizeof(point)};
	CK_ATTRIBUTE qp = {CKA_EC_POINT, pub_point, sizeof(pub_point)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, priv, &pp, 1),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, pub, &qp, 1),
			  CKR_OK);
	ck_assert_mem_eq(point, pub_point, sizeof(point));
	CK_BBOOL token = 1;
	CK_ATTRIBUTE t = {CKA_TOKEN, &token, 1};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, pub, &t, 1),
			  CKR_OK);
	ck_assert_uint_eq(token, CK_FALSE);
}
END_TEST

START_TEST(test_raw_ecdsa_signs_a_hash_as_r_and_s)
{
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	ck_assert_uint_eq(len, 64);
	ck_assert_uint_eq(verify(CKM_ECDSA, hash, 32, sig, 64), CKR_OK);
	sig[10] ^= 1;
	ck_assert_uint_eq(verify(CKM_ECDSA, hash, 32, sig, 64),
			  CKR_SIGNATURE_INVALID);
	ck_assert_uint_eq(verify(CKM_ECDSA, hash, 32, sig, 63),
			  CKR_SIGNATURE_LEN_RANGE);
	CK_BYTE big[65] = {0};
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	len = sizeof(sig);
	ck_assert_uint_eq(p11->C_Sign(session, big, sizeof(big), sig, &len),
			  CKR_DATA_LEN_RANGE);
	/* The error ended the operation. */
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
}
END_TEST

START_TEST(test_length_query_and_short_buffer_keep_the_operation)
{
	CK_BYTE sig[64];
	CK_ULONG len = 0;
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OPERATION_ACTIVE);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, NULL, &len), CKR_OK);
	ck_assert_uint_eq(len, 64);
	len = 10;
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(len, 64);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, NULL),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_multi_part_hash_and_sign)
{
	const CK_BYTE msg[] = "the quick brown fox jumps over the lazy dog";
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign_init(CKM_ECDSA_SHA256, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR)msg, 10),
			  CKR_OK);
	/* A single-part call cannot end a multi-part operation: it answers
	 * CKR_OPERATION_ACTIVE, and that answer ends the operation too. */
	ck_assert_uint_eq(p11->C_Sign(session, (CK_BYTE_PTR)msg, 10, sig, &len),
			  CKR_OPERATION_ACTIVE);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR)msg, 10),
			  CKR_OPERATION_NOT_INITIALIZED);
	ck_assert_uint_eq(sign_init(CKM_ECDSA_SHA256, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR)msg, 10),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR)msg + 10,
					    sizeof(msg) - 10),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_SignFinal(session, sig, &len), CKR_OK);
	ck_assert_uint_eq(verify(CKM_ECDSA_SHA256, msg, sizeof(msg), sig, len),
			  CKR_OK);
	/* The same through multi-part verify. */
	CK_MECHANISM mech = {CKM_ECDSA_SHA256, NULL, 0};
	ck_assert_uint_eq(p11->C_VerifyInit(session, &mech, pub), CKR_OK);
	ck_assert_uint_eq(
		p11->C_VerifyUpdate(session, (CK_BYTE_PTR)msg, sizeof(msg)),
		CKR_OK);
	ck_assert_uint_eq(p11->C_VerifyFinal(session, sig, len), CKR_OK);
	/* Raw ECDSA is single-part only. */
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, hash, 32),
			  CKR_FUNCTION_NOT_SUPPORTED);
	ck_assert_uint_eq(p11->C_SignFinal(session, sig, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
}
END_TEST

START_TEST(test_interleaved_operations_across_sessions)
{
	/* Two sessions, each its own multi-part signature and digest,
	 * interleaved call by call. */
	CK_SESSION_HANDLE other;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &other),
		CKR_OK);
	CK_MECHANISM sha = {CKM_ECDSA_SHA256, NULL, 0};
	CK_MECHANISM md = {CKM_SHA256, NULL, 0};
	ck_assert_uint_eq(p11->C_SignInit(session, &sha, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_SignInit(other, &sha, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestInit(session, &md), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(other, (CK_BYTE_PTR) "beta", 4),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR) "alpha", 5),
			  CKR_OK);
	ck_assert_uint_eq(
		p11->C_DigestUpdate(session, (CK_BYTE_PTR) "alpha", 5), CKR_OK);
	CK_BYTE sig_a[64], sig_b[64], digest[32];
	CK_ULONG la = sizeof(sig_a), lb = sizeof(sig_b), ld = sizeof(digest);
	ck_assert_uint_eq(p11->C_SignFinal(other, sig_b, &lb), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestFinal(session, digest, &ld), CKR_OK);
	ck_assert_uint_eq(p11->C_SignFinal(session, sig_a, &la), CKR_OK);
	ck_assert_uint_eq(verify(CKM_ECDSA_SHA256, (const CK_BYTE *)"alpha", 5,
				 sig_a, la),
			  CKR_OK);
	ck_assert_uint_eq(
		verify(CKM_ECDSA_SHA256, (const CK_BYTE *)"beta", 4, sig_b, lb),
		CKR_OK);
	ck_assert_uint_eq(
		verify(CKM_ECDSA_SHA256, (const CK_BYTE *)"beta", 4, sig_a, la),
		CKR_SIGNATURE_INVALID);
	/* Operations belong to their session: a final elsewhere finds none. */
	ck_assert_uint_eq(p11->C_SignInit(session, &sha, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR) "x", 1),
			  CKR_OK);
	la = sizeof(sig_a);
	ck_assert_uint_eq(p11->C_SignFinal(other, sig_a, &la),
			  CKR_OPERATION_NOT_INITIALIZED);
	ck_assert_uint_eq(p11->C_SignFinal(session, sig_a, &la), CKR_OK);
}
END_TEST

START_TEST(test_key_and_mechanism_checks)
{
	ck_assert_uint_eq(init_error(CKM_ECDSA, pub),
			  CKR_KEY_TYPE_INCONSISTENT);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv + 1000),
			  CKR_KEY_HANDLE_INVALID);
	ck_assert_uint_eq(sign_init(CKM_RSA_PKCS, priv),
			  CKR_KEY_TYPE_INCONSISTENT);
	ck_assert_uint_eq(sign_init(CKM_RSA_PKCS_OAEP, priv),
			  CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(sign_init(CKM_SHA256, priv), CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(p11->C_SignInit(session, NULL, priv),
			  CKR_ARGUMENTS_BAD);
	/* A key made with CKA_SIGN false. */
	ck_assert_uint_eq(generate(p256, sizeof(p256), CK_FALSE), CKR_OK);
	ck_assert_uint_eq(init_error(CKM_ECDSA, priv),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
}
END_TEST

START_TEST(test_key_generation_errors)
{
	const CK_BYTE k256[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};
	ck_assert_uint_eq(generate(k256, sizeof(k256), CK_TRUE),
			  CKR_CURVE_NOT_SUPPORTED);
	CK_MECHANISM dsa = {CKM_DSA_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE a, b;
	ck_assert_uint_eq(
		p11->C_GenerateKeyPair(session, &dsa, NULL, 0, NULL, 0, &a, &b),
		CKR_MECHANISM_INVALID);
	CK_MECHANISM rsa = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	ck_assert_uint_eq(
		p11->C_GenerateKeyPair(session, &rsa, NULL, 0, NULL, 0, &a, &b),
		CKR_TEMPLATE_INCOMPLETE);
	CK_ULONG small = 1024;
	CK_ATTRIBUTE bits = {CKA_MODULUS_BITS, &small, sizeof(small)};
	/* C_GenerateKeyPair may not answer CKR_KEY_SIZE_RANGE: the value of
	 * CKA_MODULUS_BITS is what is wrong. */
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &rsa, &bits, 1, NULL,
						 0, &a, &b),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_MECHANISM ec = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	ck_assert_uint_eq(
		p11->C_GenerateKeyPair(session, &ec, NULL, 0, NULL, 0, &a, &b),
		CKR_TEMPLATE_INCOMPLETE);
	CK_OBJECT_CLASS wrong = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE pt[] = {{CKA_CLASS, &wrong, sizeof(wrong)},
			     {CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
	ck_assert_uint_eq(
		p11->C_GenerateKeyPair(session, &ec, pt, 2, NULL, 0, &a, &b),
		CKR_TEMPLATE_INCONSISTENT);
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &ec, pt + 1, 1, NULL,
						 0, NULL, &b),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_digests_match_openssl)
{
	const CK_BYTE msg[] = "remhsm digest";
	CK_BYTE out[64], want[64];
	unsigned int want_len;
	EVP_Digest(msg, sizeof(msg), want, &want_len, EVP_sha384(), NULL);
	CK_MECHANISM sha384 = {CKM_SHA384, NULL, 0};
	CK_ULONG len = 0;
	ck_assert_uint_eq(p11->C_DigestInit(session, &sha384), CKR_OK);
	ck_assert_uint_eq(p11->C_Digest(session, (CK_BYTE_PTR)msg, sizeof(msg),
					NULL, &len),
			  CKR_OK);
	ck_assert_uint_eq(len, 48);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_Digest(session, (CK_BYTE_PTR)msg, sizeof(msg),
					out, &len),
			  CKR_OK);
	ck_assert_mem_eq(out, want, want_len);
	ck_assert_uint_eq(p11->C_DigestInit(session, &sha384), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestUpdate(session, (CK_BYTE_PTR)msg, 5),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_DigestUpdate(session, (CK_BYTE_PTR)msg + 5,
					      sizeof(msg) - 5),
			  CKR_OK);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_DigestFinal(session, out, &len), CKR_OK);
	ck_assert_mem_eq(out, want, want_len);
	ck_assert_uint_eq(p11->C_DigestFinal(session, out, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	ck_assert_uint_eq(p11->C_DigestInit(session, &ecdsa),
			  CKR_MECHANISM_INVALID);
}
END_TEST

START_TEST(test_logout_and_close_end_operations)
{
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Logout(session), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
	/* Logged out, the private key cannot be used at all. */
	ck_assert_uint_eq(init_error(CKM_ECDSA, priv), CKR_KEY_HANDLE_INVALID);
	ck_assert_uint_eq(p11->C_CloseSession(session), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

START_TEST(test_held_init_keeps_the_specifications_answers)
{
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	/* Held back: a second init is still CKR_OPERATION_ACTIVE, and a
	 * length query still keeps the operation. */
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OPERATION_ACTIVE);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, NULL, &len), CKR_OK);
	ck_assert_uint_eq(len, 64);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OPERATION_ACTIVE);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	/* An init followed directly by a final is sent first. */
	ck_assert_uint_eq(sign_init(CKM_ECDSA_SHA256, priv), CKR_OK);
	len = sizeof(sig);
	ck_assert_uint_eq(p11->C_SignFinal(session, sig, &len), CKR_OK);
	ck_assert_uint_eq(
		verify(CKM_ECDSA_SHA256, (const CK_BYTE *)"", 0, sig, len),
		CKR_OK);
	/* A session the client does not know gets a real round trip. */
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	ck_assert_uint_eq(p11->C_SignInit(session + 77, &ecdsa, priv),
			  CKR_SESSION_HANDLE_INVALID);
	/* A closed session drops its held init. */
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_CloseSession(session), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

/* The child, another application, destroys the parent's key. */
static int destroy_elsewhere(void)
{
	CK_SESSION_HANDLE h;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {{CKA_LABEL, "Device Priv TLS Key", 19},
			    {CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE key;
	CK_ULONG n = 0;
	if (p11->C_Initialize(NULL) != CKR_OK ||
	    p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
			       NULL, &h) != CKR_OK ||
	    p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4) != CKR_OK ||
	    p11->C_FindObjectsInit(h, t, 2) != CKR_OK ||
	    p11->C_FindObjects(h, &key, 1, &n) != CKR_OK || n != 1)
		return 1;
	p11->C_FindObjectsFinal(h);
	return p11->C_DestroyObject(h, key) == CKR_OK ? 0 : 2;
}

START_TEST(test_a_key_destroyed_elsewhere_no_longer_signs)
{
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	pid_t pid = fork();
	if (pid == 0)
		_exit(destroy_elsewhere());
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_uint_eq(init_error(CKM_ECDSA, priv), CKR_KEY_HANDLE_INVALID);
}
END_TEST

/* --- RSA ---------------------------------------------------------------- */

static CK_OBJECT_HANDLE rsa_pub, rsa_priv;

static void generate_rsa(void)
{
	CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_ULONG bits = 2048;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pt[] = {{CKA_MODULUS_BITS, &bits, sizeof(bits)},
			     {CKA_VERIFY, &yes, 1}};
	CK_ATTRIBUTE st[] = {{CKA_SIGN, &yes, 1}, {CKA_TOKEN, &yes, 1}};
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &mech, pt, 2, st, 2,
						 &rsa_pub, &rsa_priv),
			  CKR_OK);
}

static CK_RV rsa_sign(CK_MECHANISM *m, const CK_BYTE *in, CK_ULONG len,
		      CK_BYTE *sig, CK_ULONG *sig_len)
{
	CK_RV rv = p11->C_SignInit(session, m, rsa_priv);
	return rv == CKR_OK ? p11->C_Sign(session, (CK_BYTE_PTR)in, len, sig,
					  sig_len)
			    : rv;
}

static CK_RV rsa_verify(CK_MECHANISM *m, const CK_BYTE *in, CK_ULONG len,
			CK_BYTE *sig, CK_ULONG sig_len)
{
	CK_RV rv = p11->C_VerifyInit(session, m, rsa_pub);
	return rv == CKR_OK ? p11->C_Verify(session, (CK_BYTE_PTR)in, len, sig,
					    sig_len)
			    : rv;
}

START_TEST(test_rsa_pkcs_signs_freertos_digest_info)
{
	generate_rsa();
	CK_ULONG bits = 0;
	CK_ATTRIBUTE b = {CKA_MODULUS_BITS, &bits, sizeof(bits)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, rsa_pub, &b, 1),
			  CKR_OK);
	ck_assert_uint_eq(bits, 2048);
	/* FreeRTOS: the 51-byte SHA-256 DigestInfo, type-1 padding. */
	const CK_BYTE msg[] = "tls handshake transcript";
	CK_BYTE info[51] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
			    0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
			    0x01, 0x05, 0x00, 0x04, 0x20};
	unsigned int dlen = 32;
	EVP_Digest(msg, sizeof(msg), info + 19, &dlen, EVP_sha256(), NULL);
	CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
	CK_BYTE sig[256];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(rsa_sign(&pkcs, info, sizeof(info), sig, &len),
			  CKR_OK);
	ck_assert_uint_eq(len, 256);
	ck_assert_uint_eq(rsa_verify(&pkcs, info, sizeof(info), sig, len),
			  CKR_OK);
	/* The same signature is CKM_SHA256_RSA_PKCS's over the message. */
	CK_MECHANISM sha = {CKM_SHA256_RSA_PKCS, NULL, 0};
	ck_assert_uint_eq(p11->C_VerifyInit(session, &sha, rsa_pub), CKR_OK);
	ck_assert_uint_eq(
		p11->C_VerifyUpdate(session, (CK_BYTE_PTR)msg, sizeof(msg)),
		CKR_OK);
	ck_assert_uint_eq(p11->C_VerifyFinal(session, sig, len), CKR_OK);
	sig[0] ^= 1;
	ck_assert_uint_eq(rsa_verify(&pkcs, info, sizeof(info), sig, len),
			  CKR_SIGNATURE_INVALID);
	ck_assert_uint_eq(rsa_verify(&pkcs, info, sizeof(info), sig, 255),
			  CKR_SIGNATURE_LEN_RANGE);
	CK_BYTE big[300] = {0};
	len = sizeof(sig);
	ck_assert_uint_eq(rsa_sign(&pkcs, big, sizeof(big), sig, &len),
			  CKR_DATA_LEN_RANGE);
}
END_TEST

START_TEST(test_rsa_hash_and_sign_and_x509_verify)
{
	generate_rsa();
	const CK_BYTE msg[] = "signed firmware image";
	CK_MECHANISM sha = {CKM_SHA384_RSA_PKCS, NULL, 0};
	CK_BYTE sig[256];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(p11->C_SignInit(session, &sha, rsa_priv), CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR)msg, 6),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_SignUpdate(session, (CK_BYTE_PTR)msg + 6,
					    sizeof(msg) - 6),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_SignFinal(session, sig, &len), CKR_OK);
	ck_assert_uint_eq(rsa_verify(&sha, msg, sizeof(msg), sig, len), CKR_OK);
	/* CKM_RSA_X_509 verifies the raw block: here, the padded DigestInfo
	 * is not the message, so it fails; verify-only mechanism. */
	CK_MECHANISM raw = {CKM_RSA_X_509, NULL, 0};
	ck_assert_uint_eq(rsa_verify(&raw, msg, sizeof(msg), sig, len),
			  CKR_SIGNATURE_INVALID);
	ck_assert_uint_eq(p11->C_SignInit(session, &raw, rsa_priv),
			  CKR_MECHANISM_INVALID);
	/* An EC key for an RSA mechanism. */
	ck_assert_uint_eq(init_error(CKM_SHA256_RSA_PKCS, priv),
			  CKR_KEY_TYPE_INCONSISTENT);
}
END_TEST

START_TEST(test_rsa_pss_parameters_are_checked)
{
	generate_rsa();
	CK_RSA_PKCS_PSS_PARAMS params = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM pss = {CKM_RSA_PKCS_PSS, &params, sizeof(params)};
	CK_BYTE sig[256];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(rsa_sign(&pss, hash, 32, sig, &len), CKR_OK);
	ck_assert_uint_eq(rsa_verify(&pss, hash, 32, sig, len), CKR_OK);
	CK_MECHANISM sha_pss = {CKM_SHA256_RSA_PKCS_PSS, &params,
				sizeof(params)};
	len = sizeof(sig);
	ck_assert_uint_eq(
		rsa_sign(&sha_pss, (const CK_BYTE *)"data", 4, sig, &len),
		CKR_OK);
	ck_assert_uint_eq(
		rsa_verify(&sha_pss, (const CK_BYTE *)"data", 4, sig, len),
		CKR_OK);
	/* A hash of the wrong length for PSS over a hash. */
	len = sizeof(sig);
	ck_assert_uint_eq(rsa_sign(&pss, hash, 20, sig, &len),
			  CKR_DATA_LEN_RANGE);
	/* Salt longer than k - hLen - 2 = 256 - 32 - 2. */
	params.sLen = 223;
	ck_assert_uint_eq(p11->C_SignInit(session, &pss, rsa_priv),
			  CKR_MECHANISM_PARAM_INVALID);
	params.sLen = 222;
	ck_assert_uint_eq(p11->C_SignInit(session, &pss, rsa_priv), CKR_OK);
	len = sizeof(sig);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	/* MGF1 that does not match, a hash that does not match the mechanism,
	 * parameters missing or of the wrong size. */
	CK_RSA_PKCS_PSS_PARAMS mismatch = {CKM_SHA256, CKG_MGF1_SHA1, 32};
	pss.pParameter = &mismatch;
	ck_assert_uint_eq(p11->C_SignInit(session, &pss, rsa_priv),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_RSA_PKCS_PSS_PARAMS sha1 = {CKM_SHA_1, CKG_MGF1_SHA1, 20};
	sha_pss.pParameter = &sha1;
	ck_assert_uint_eq(p11->C_SignInit(session, &sha_pss, rsa_priv),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_MECHANISM bare = {CKM_RSA_PKCS_PSS, NULL, 0};
	ck_assert_uint_eq(p11->C_SignInit(session, &bare, rsa_priv),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_BYTE junk[5] = {0};
	CK_MECHANISM odd = {CKM_RSA_PKCS_PSS, junk, sizeof(junk)};
	ck_assert_uint_eq(p11->C_SignInit(session, &odd, rsa_priv),
			  CKR_MECHANISM_PARAM_INVALID);
}
END_TEST

/* FreeRTOS code leaves a parameterless mechanism's pParameter and
 * ulParameterLen as stack garbage: for every mechanism the token serves
 * that takes no parameter, a wild pointer with a huge length (and a real
 * buffer of a few bytes) is ignored; the type is judged first. */
static const struct {
	void *pointer;
	CK_ULONG len;
} garbage[] = {{(void *)0x10, ~(CK_ULONG)0},
	       {(void *)0x10, 0x7fffffff},
	       {NULL, 4},
	       {(void *)hash, 7}};

/* A session secret key of type, for the MACs. */
static CK_OBJECT_HANDLE secret_key(CK_KEY_TYPE type)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_VALUE, hash, 32}};
	CK_OBJECT_HANDLE key = 0;
	ck_assert_uint_eq(p11->C_CreateObject(session, t, 3, &key), CKR_OK);
	return key;
}

static CK_RV use_mechanism(CK_MECHANISM *m, CK_FLAGS flags)
{
	CK_BYTE out[512];
	CK_ULONG len = sizeof(out);
	CK_RV rv;
	if (flags & CKF_DIGEST) {
		rv = p11->C_DigestInit(session, m);
		return rv != CKR_OK
			       ? rv
			       : p11->C_Digest(session, hash, 32, out, &len);
	}
	if (flags & CKF_SIGN) {
		int ec = m->mechanism == CKM_ECDSA ||
			 (m->mechanism >= CKM_ECDSA_SHA1 &&
			  m->mechanism <= CKM_ECDSA_SHA512);
		CK_OBJECT_HANDLE key = ec ? priv : rsa_priv;
		if (m->mechanism == CKM_AES_CMAC)
			key = secret_key(CKK_AES);
		else if (m->mechanism >= CKM_SHA_1_HMAC &&
			 m->mechanism <= CKM_SHA512_HMAC)
			key = secret_key(CKK_GENERIC_SECRET);
		rv = p11->C_SignInit(session, m, key);
		return rv != CKR_OK ? rv
				    : p11->C_Sign(session, hash, 32, out, &len);
	}
	if (flags & CKF_GENERATE) {
		CK_ULONG value_len = 16;
		CK_ATTRIBUTE t = {CKA_VALUE_LEN, &value_len, sizeof(value_len)};
		CK_OBJECT_HANDLE key;
		return p11->C_GenerateKey(session, m, &t, 1, &key);
	}
	if (flags & CKF_GENERATE_KEY_PAIR) {
		CK_ULONG bits = 2048;
		CK_ATTRIBUTE ec_pub = {CKA_EC_PARAMS, (void *)p256,
				       sizeof(p256)};
		CK_ATTRIBUTE rsa_pub_t = {CKA_MODULUS_BITS, &bits,
					  sizeof(bits)};
		static const CK_BYTE ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
		CK_ATTRIBUTE ed_pub = {CKA_EC_PARAMS, (void *)ed25519,
				       sizeof(ed25519)};
		CK_OBJECT_HANDLE a, b;
		return p11->C_GenerateKeyPair(
			session, m,
			m->mechanism == CKM_EC_KEY_PAIR_GEN ? &ec_pub
			: m->mechanism == CKM_EC_EDWARDS_KEY_PAIR_GEN
				? &ed_pub
				: &rsa_pub_t,
			1, NULL, 0, &a, &b);
	}
	return CKR_OK;
}

START_TEST(test_parameters_of_parameterless_mechanisms_are_never_read)
{
	generate_rsa();
	CK_MECHANISM_TYPE types[64];
	CK_ULONG n = 64;
	ck_assert_uint_eq(p11->C_GetMechanismList(0, types, &n), CKR_OK);
	unsigned tried = 0;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_MECHANISM_INFO info;
		ck_assert_uint_eq(p11->C_GetMechanismInfo(0, types[i], &info),
				  CKR_OK);
		/* PSS and EdDSA take a parameter (EdDSA's is optional). */
		int pss = types[i] == CKM_RSA_PKCS_PSS ||
			  (types[i] >= CKM_SHA256_RSA_PKCS_PSS &&
			   types[i] <= CKM_SHA512_RSA_PKCS_PSS);
		if (pss || types[i] == CKM_EDDSA ||
		    !(info.flags & (CKF_DIGEST | CKF_SIGN | CKF_GENERATE |
				    CKF_GENERATE_KEY_PAIR)))
			continue;
		for (size_t g = 0; g < sizeof(garbage) / sizeof(*garbage);
		     g++) {
			CK_MECHANISM m = {types[i], garbage[g].pointer,
					  garbage[g].len};
			CK_RV rv = use_mechanism(&m, info.flags);
			ck_assert_msg(rv == CKR_OK,
				      "mechanism 0x%lx, garbage %zu: 0x%lx",
				      types[i], g, rv);
			tried++;
		}
	}
	ck_assert_uint_ge(tried, 4 * 8);
	/* An unknown type with garbage parameters is an unknown type. */
	CK_MECHANISM unknown = {CKM_VENDOR_DEFINED | 0x1234, (void *)0x10,
				~(CK_ULONG)0};
	ck_assert_uint_eq(p11->C_DigestInit(session, &unknown),
			  CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(init_error(unknown.mechanism, priv),
			  CKR_MECHANISM_INVALID);
	/* PSS takes its parameter: a wrong length is the parameter's fault,
	 * and a huge one is never read. */
	CK_MECHANISM pss = {CKM_RSA_PKCS_PSS, (void *)0x10, ~(CK_ULONG)0};
	ck_assert_uint_eq(p11->C_SignInit(session, &pss, rsa_priv),
			  CKR_MECHANISM_PARAM_INVALID);
}
END_TEST

/* A signature OpenSSL cannot even parse (s = 0) leaves errors on the
 * queue of the thread that verified it, which is the daemon's event loop:
 * read as the next TLS read's own, they closed the connection and took
 * the application's session objects with it. */
START_TEST(test_a_malformed_signature_costs_nothing_but_its_answer)
{
	CK_OBJECT_HANDLE spub, spriv;
	th_generate_p256(p11, session, CK_FALSE, &spub, &spriv);
	CK_BYTE bad[64] = {1};
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(p11->C_VerifyInit(session, &mech, spub),
				  CKR_OK);
		ck_assert_uint_eq(
			p11->C_Verify(session, hash, 32, bad, sizeof(bad)),
			CKR_SIGNATURE_INVALID);
	}
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, spriv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	ck_assert(!th_log_contains(&d, "TLS read error"));
}
END_TEST

START_TEST(test_rsa_private_key_import_is_validated)
{
	/* FreeRTOS's RSA template: all components, fixed-length buffers. */
	EVP_PKEY *key = EVP_RSA_gen(2048);
	const char *names[] = {"n",
			       "e",
			       "d",
			       "rsa-factor1",
			       "rsa-factor2",
			       "rsa-exponent1",
			       "rsa-exponent2",
			       "rsa-coefficient1"};
	const CK_ATTRIBUTE_TYPE types[] = {
		CKA_MODULUS,	CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT,
		CKA_PRIME_1,	CKA_PRIME_2,	     CKA_EXPONENT_1,
		CKA_EXPONENT_2, CKA_COEFFICIENT};
	CK_BYTE parts[8][256];
	CK_ULONG lens[8];
	for (int i = 0; i < 8; i++) {
		BIGNUM *bn = NULL;
		ck_assert_int_eq(EVP_PKEY_get_bn_param(key, names[i], &bn), 1);
		lens[i] = (CK_ULONG)BN_bn2bin(bn, parts[i]);
		BN_free(bn);
	}
	EVP_PKEY_free(key);
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE type = CKK_RSA;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[12] = {{CKA_CLASS, &cls, sizeof(cls)},
			      {CKA_KEY_TYPE, &type, sizeof(type)},
			      {CKA_TOKEN, &yes, 1},
			      {CKA_SIGN, &yes, 1}};
	for (int i = 0; i < 8; i++)
		t[4 + i] = (CK_ATTRIBUTE){types[i], parts[i], lens[i]};
	CK_OBJECT_HANDLE h;
	ck_assert_uint_eq(p11->C_CreateObject(session, t, 11, &h),
			  CKR_TEMPLATE_INCOMPLETE);
	ck_assert_uint_eq(p11->C_CreateObject(session, t, 12, &h), CKR_OK);
	CK_BYTE exponent[256];
	CK_ATTRIBUTE secret = {CKA_PRIVATE_EXPONENT, exponent,
			       sizeof(exponent)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, h, &secret, 1),
			  CKR_ATTRIBUTE_SENSITIVE);
	/* Components that do not belong together. */
	parts[3][lens[3] - 1] ^= 2;
	ck_assert_uint_eq(p11->C_CreateObject(session, t, 12, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
}
END_TEST

/* The session, its login and the key's handle outlive the daemon. */
START_TEST(test_keys_sign_after_a_restart)
{
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, NULL);
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {{CKA_LABEL, "Device Priv TLS Key", 19},
			    {CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE key;
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_FindObjectsInit(session, t, 2), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjects(session, &key, 1, &n), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(session), CKR_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(key, priv);
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, key), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	/* FreeRTOS's public key was a session object: those end with the
	 * daemon that held them. */
	ck_assert_uint_eq(verify(CKM_ECDSA, hash, 32, sig, len),
			  CKR_KEY_HANDLE_INVALID);
}
END_TEST

/* CKA_ALLOWED_MECHANISMS: the key signs with what the list names and
 * nothing else; the list reads back by the two-call convention, in the
 * application's CK_ULONG width. */
START_TEST(test_allowed_mechanisms_are_enforced)
{
	static const CK_BYTE p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
					   0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_MECHANISM_TYPE allowed[] = {CKM_ECDSA, CKM_ECDSA_SHA384};
	CK_BBOOL yes = CK_TRUE;
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[] = {
		{CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid)}};
	CK_ATTRIBUTE st[] = {
		{CKA_SIGN, &yes, 1},
		{CKA_ALLOWED_MECHANISMS, allowed, sizeof(allowed)}};
	CK_OBJECT_HANDLE kpub, kpriv;
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &gen, pt, 1, st, 2,
						 &kpub, &kpriv),
			  CKR_OK);
	CK_ATTRIBUTE q = {CKA_ALLOWED_MECHANISMS, NULL, 0};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, kpriv, &q, 1),
			  CKR_OK);
	ck_assert_uint_eq(q.ulValueLen, sizeof(allowed));
	CK_MECHANISM_TYPE back[2] = {0};
	q.pValue = back;
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, kpriv, &q, 1),
			  CKR_OK);
	ck_assert_uint_eq(back[0], CKM_ECDSA);
	ck_assert_uint_eq(back[1], CKM_ECDSA_SHA384);
	CK_BYTE sig[64];
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, kpriv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	ck_assert_uint_eq(init_error(CKM_ECDSA_SHA256, kpriv),
			  CKR_MECHANISM_INVALID);
	/* A list whose length is not whole CK_ULONGs is no list. */
	CK_ATTRIBUTE bad[] = {{CKA_SIGN, &yes, 1},
			      {CKA_ALLOWED_MECHANISMS, allowed, 3}};
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &gen, pt, 1, bad, 2,
						 &kpub, &kpriv),
			  CKR_ATTRIBUTE_VALUE_INVALID);
}
END_TEST

/* A key's signing context is made once and kept while the key stands:
 * many signatures from it all verify, and a change to the key (its label,
 * then CKA_SIGN) is seen by the next init. */
START_TEST(test_a_changed_key_is_seen_by_the_next_signature)
{
	CK_BYTE sig[64];
	for (int i = 0; i < 50; i++) {
		CK_ULONG len = sizeof(sig);
		hash[0] = (CK_BYTE)i;
		ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
		ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len),
				  CKR_OK);
		ck_assert_uint_eq(verify(CKM_ECDSA, hash, 32, sig, 64), CKR_OK);
	}
	CK_ATTRIBUTE label = {CKA_LABEL, "renamed", 7};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, priv, &label, 1),
			  CKR_OK);
	CK_ULONG len = sizeof(sig);
	ck_assert_uint_eq(sign_init(CKM_ECDSA, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Sign(session, hash, 32, sig, &len), CKR_OK);
	ck_assert_uint_eq(verify(CKM_ECDSA, hash, 32, sig, 64), CKR_OK);
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE sign = {CKA_SIGN, &no, 1};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, priv, &sign, 1),
			  CKR_OK);
	ck_assert_uint_eq(init_error(CKM_ECDSA, priv),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client-sign");
	TCase *tc = tcase_create("client-sign");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_generated_keys_have_the_tokens_attributes);
	tcase_add_test(tc, test_raw_ecdsa_signs_a_hash_as_r_and_s);
	tcase_add_test(tc,
		       test_length_query_and_short_buffer_keep_the_operation);
	tcase_add_test(tc, test_multi_part_hash_and_sign);
	tcase_add_test(tc, test_interleaved_operations_across_sessions);
	tcase_add_test(tc, test_key_and_mechanism_checks);
	tcase_add_test(tc, test_key_generation_errors);
	tcase_add_test(tc, test_digests_match_openssl);
	tcase_add_test(tc, test_logout_and_close_end_operations);
	tcase_add_test(tc, test_held_init_keeps_the_specifications_answers);
	tcase_add_test(tc, test_keys_sign_after_a_restart);
	tcase_add_test(tc, test_allowed_mechanisms_are_enforced);
	tcase_add_test(tc, test_a_changed_key_is_seen_by_the_next_signature);
	tcase_add_test(tc, test_a_key_destroyed_elsewhere_no_longer_signs);
	tcase_add_test(tc, test_rsa_pkcs_signs_freertos_digest_info);
	tcase_add_test(tc, test_rsa_hash_and_sign_and_x509_verify);
	tcase_add_test(tc, test_rsa_pss_parameters_are_checked);
	tcase_add_test(tc, test_rsa_private_key_import_is_validated);
	tcase_add_test(tc,
		       test_a_malformed_signature_costs_nothing_but_its_answer);
	tcase_add_test(
		tc, test_parameters_of_parameterless_mechanisms_are_never_read);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
