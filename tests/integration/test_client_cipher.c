/*
 * AES encryption and decryption through the real module and daemon:
 * NIST SP 800-38A vectors for ECB, CBC and CTR, the GCM specification's
 * test cases 3 and 4 for GCM, CBC_PAD round trips of every length around
 * the block, the two-call convention of every call, multi-part in odd
 * pieces and in pieces longer than a frame, and the refusals: parameters
 * a mode does not take, keys that may not, partial blocks, padding and
 * tags that do not check (nothing released). RSA-OAEP with and without a
 * label, against OpenSSL on the other side; RSA PKCS#1 v1.5 encryption
 * refused by default and served, against OpenSSL, when the operator
 * allows it.
 */
#include <check.h>
#include <dlfcn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;

/* SP 800-38A: the AES-128 key and the first block of plaintext. */
static CK_BYTE key128[16], block1[16];
static CK_BYTE iv[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static CK_AES_CTR_PARAMS ctr_params = {128, {0}};
/* The GCM specification's test cases 3 and 4. */
static CK_BYTE gcm_key[16], gcm_iv[12], gcm_plain[64], gcm_aad[20];

static void setup(void)
{
	th_unhex("2b7e151628aed2a6abf7158809cf4f3c", key128);
	th_unhex("6bc1bee22e409f96e93d7e117393172a", block1);
	th_unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", ctr_params.cb);
	th_unhex("feffe9928665731c6d6a8f9467308308", gcm_key);
	th_unhex("cafebabefacedbaddecaf888", gcm_iv);
	th_unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d"
		 "8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
		 "ba637b391aafd255",
		 gcm_plain);
	th_unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", gcm_aad);
	p11 = th_start_provisioned(&d, NULL, &module);
	session = th_user_session(p11, 0, "0000");
}

static void setup_pkcs1(void)
{
	static const char *const flags[] = {"--allow-rsa-pkcs1-encryption",
					    NULL};
	p11 = th_start_provisioned(&d, flags, &module);
	session = th_user_session(p11, 0, "0000");
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

static CK_OBJECT_HANDLE aes_key(const CK_BYTE *value, CK_ULONG len)
{
	CK_OBJECT_HANDLE key = 0;
	ck_assert_uint_eq(th_import_secret(p11, session, CKK_AES, value, len,
					   NULL, 0, &key),
			  CKR_OK);
	return key;
}

/* Single-part, with the length asked first. */
static CK_RV encrypt(CK_MECHANISM *m, CK_OBJECT_HANDLE key, const void *in,
		     CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
	CK_RV rv = p11->C_EncryptInit(session, m, key);
	CK_ULONG need = 0;
	if (rv == CKR_OK)
		rv = p11->C_Encrypt(session, (CK_BYTE_PTR)in, in_len, NULL,
				    &need);
	if (rv == CKR_OK && need > *out_len)
		return CKR_BUFFER_TOO_SMALL;
	return rv == CKR_OK ? p11->C_Encrypt(session, (CK_BYTE_PTR)in, in_len,
					     out, out_len)
			    : rv;
}

static CK_RV decrypt(CK_MECHANISM *m, CK_OBJECT_HANDLE key, const void *in,
		     CK_ULONG in_len, CK_BYTE *out, CK_ULONG *out_len)
{
	CK_RV rv = p11->C_DecryptInit(session, m, key);
	return rv == CKR_OK ? p11->C_Decrypt(session, (CK_BYTE_PTR)in, in_len,
					     out, out_len)
			    : rv;
}

START_TEST(test_ecb_cbc_and_ctr_match_sp800_38a)
{
	CK_OBJECT_HANDLE key = aes_key(key128, 16);
	static const struct {
		CK_MECHANISM_TYPE type;
		void *param;
		CK_ULONG param_len;
		const char *cipher;
	} v[] = {
		{CKM_AES_ECB, NULL, 0, "3ad77bb40d7a3660a89ecaf32466ef97"},
		{CKM_AES_CBC, iv, 16, "7649abac8119b246cee98e9b12e9197d"},
		{CKM_AES_CTR, &ctr_params, sizeof(ctr_params),
		 "874d6191b620e3261bef6864990db6ce"},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CK_MECHANISM m = {v[i].type, v[i].param, v[i].param_len};
		CK_BYTE want[16], out[32], back[32];
		th_unhex(v[i].cipher, want);
		CK_ULONG len = sizeof(out), back_len = sizeof(back);
		ck_assert_uint_eq(encrypt(&m, key, block1, 16, out, &len),
				  CKR_OK);
		ck_assert_uint_eq(len, 16);
		ck_assert_mem_eq(out, want, 16);
		ck_assert_uint_eq(decrypt(&m, key, out, 16, back, &back_len),
				  CKR_OK);
		ck_assert_uint_eq(back_len, 16);
		ck_assert_mem_eq(back, block1, 16);
	}
}
END_TEST

START_TEST(test_gcm_matches_the_specifications_cases)
{
	CK_OBJECT_HANDLE key = aes_key(gcm_key, 16);
	CK_GCM_PARAMS p = {gcm_iv, 12, 96, NULL, 0, 128};
	CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof(p)};
	CK_BYTE want[80], out[80], back[64];
	CK_ULONG len = sizeof(out);
	th_unhex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329ac"
		 "a12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e0"
		 "91473f59854d5c2af327cd64a62cf35abd2ba6fab4",
		 want);
	ck_assert_uint_eq(encrypt(&m, key, gcm_plain, 64, out, &len), CKR_OK);
	ck_assert_uint_eq(len, 80);
	ck_assert_mem_eq(out, want, 80);
	CK_ULONG back_len = sizeof(back);
	ck_assert_uint_eq(decrypt(&m, key, out, 80, back, &back_len), CKR_OK);
	ck_assert_uint_eq(back_len, 64);
	ck_assert_mem_eq(back, gcm_plain, 64);
	/* Case 4: with AAD, 60 bytes. */
	p.aad_ptr = gcm_aad;
	p.aad_len = 20;
	th_unhex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329ac"
		 "a12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e0"
		 "915bc94fbc3221a5db94fae95ae7121a47",
		 want);
	len = sizeof(out);
	ck_assert_uint_eq(encrypt(&m, key, gcm_plain, 60, out, &len), CKR_OK);
	ck_assert_uint_eq(len, 76);
	ck_assert_mem_eq(out, want, 76);
	/* In parts: the ciphertext as it goes, the tag at the end. */
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key), CKR_OK);
	CK_ULONG n1 = sizeof(out), n2 = sizeof(out) - 7, n3 = 0;
	ck_assert_uint_eq(p11->C_EncryptUpdate(session, gcm_plain, 7, out, &n1),
			  CKR_OK);
	ck_assert_uint_eq(n1, 7);
	ck_assert_uint_eq(
		p11->C_EncryptUpdate(session, gcm_plain + 7, 53, out + 7, &n2),
		CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptFinal(session, NULL, &n3), CKR_OK);
	ck_assert_uint_eq(n3, 16);
	ck_assert_uint_eq(p11->C_EncryptFinal(session, out + 60, &n3), CKR_OK);
	ck_assert_mem_eq(out, want, 76);
	/* A forged tag: the answer says so and releases nothing. */
	want[75] ^= 1;
	memset(back, 0xa5, sizeof(back));
	back_len = sizeof(back);
	ck_assert_uint_eq(decrypt(&m, key, want, 76, back, &back_len),
			  CKR_ENCRYPTED_DATA_INVALID);
	for (size_t i = 0; i < sizeof(back); i++)
		ck_assert_uint_eq(back[i], 0xa5);
	/* Decryption in parts holds everything back until the tag checks. */
	want[75] ^= 1;
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, key), CKR_OK);
	CK_ULONG part = sizeof(back);
	ck_assert_uint_eq(p11->C_DecryptUpdate(session, want, 40, back, &part),
			  CKR_OK);
	ck_assert_uint_eq(part, 0);
	part = sizeof(back);
	ck_assert_uint_eq(
		p11->C_DecryptUpdate(session, want + 40, 36, back, &part),
		CKR_OK);
	ck_assert_uint_eq(part, 0);
	part = sizeof(back);
	ck_assert_uint_eq(p11->C_DecryptFinal(session, back, &part), CKR_OK);
	ck_assert_uint_eq(part, 60);
	ck_assert_mem_eq(back, gcm_plain, 60);
	/* Ciphertext shorter than the tag. */
	back_len = sizeof(back);
	ck_assert_uint_eq(decrypt(&m, key, want, 15, back, &back_len),
			  CKR_ENCRYPTED_DATA_LEN_RANGE);
}
END_TEST

/* CBC_PAD: every length from 0 to 33 comes back as it went, padded to
 * the next whole block. */
START_TEST(test_cbc_pad_round_trips_every_length)
{
	CK_OBJECT_HANDLE key = aes_key(key128, 16);
	CK_MECHANISM m = {CKM_AES_CBC_PAD, iv, 16};
	CK_BYTE plain[33], out[64], back[64];
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (CK_BYTE)(i * 7);
	for (CK_ULONG n = 0; n <= 33; n++) {
		CK_ULONG len = sizeof(out), back_len = sizeof(back);
		ck_assert_uint_eq(encrypt(&m, key, plain, n, out, &len),
				  CKR_OK);
		ck_assert_uint_eq(len, (n / 16 + 1) * 16);
		/* The exact length, asked first. */
		CK_ULONG need = 0;
		ck_assert_uint_eq(p11->C_DecryptInit(session, &m, key), CKR_OK);
		ck_assert_uint_eq(
			p11->C_Decrypt(session, out, len, NULL, &need), CKR_OK);
		ck_assert_uint_eq(need, n);
		ck_assert_uint_eq(
			p11->C_Decrypt(session, out, len, back, &back_len),
			CKR_OK);
		ck_assert_uint_eq(back_len, n);
		ck_assert_mem_eq(back, plain, n);
	}
}
END_TEST

/* Padding that does not check and lengths that are not whole blocks: one
 * answer each, and the operation is over. */
START_TEST(test_bad_padding_and_partial_blocks_are_refused)
{
	CK_OBJECT_HANDLE key = aes_key(key128, 16);
	CK_MECHANISM pad = {CKM_AES_CBC_PAD, iv, 16};
	CK_MECHANISM cbc = {CKM_AES_CBC, iv, 16};
	CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
	CK_BYTE out[64], garbage[32];
	memset(garbage, 0x3c, sizeof(garbage));
	CK_ULONG len = sizeof(out);
	/* A block whose decryption ends in a byte no padding has. */
	ck_assert_uint_eq(decrypt(&pad, key, garbage, 32, out, &len),
			  CKR_ENCRYPTED_DATA_INVALID);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_Decrypt(session, garbage, 32, out, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
	ck_assert_uint_eq(decrypt(&pad, key, garbage, 17, out, &len),
			  CKR_ENCRYPTED_DATA_LEN_RANGE);
	len = sizeof(out);
	ck_assert_uint_eq(decrypt(&cbc, key, garbage, 20, out, &len),
			  CKR_ENCRYPTED_DATA_LEN_RANGE);
	len = sizeof(out);
	ck_assert_uint_eq(encrypt(&ecb, key, garbage, 20, out, &len),
			  CKR_DATA_LEN_RANGE);
	/* In parts: the partial block is found at Final. */
	ck_assert_uint_eq(p11->C_EncryptInit(session, &cbc, key), CKR_OK);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_EncryptUpdate(session, garbage, 20, out, &len),
			  CKR_OK);
	ck_assert_uint_eq(len, 16);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_EncryptFinal(session, out, &len),
			  CKR_DATA_LEN_RANGE);
	ck_assert_uint_eq(p11->C_EncryptFinal(session, out, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
}
END_TEST

/* Multi-part in pieces of 1, 15 and 17 bytes gives what single-part
 * gives; a short buffer or a length query keeps the operation, and an
 * update's answer says exactly what it puts out. */
START_TEST(test_parts_and_the_two_call_convention)
{
	CK_OBJECT_HANDLE key = aes_key(key128, 16);
	CK_MECHANISM m = {CKM_AES_CBC_PAD, iv, 16};
	CK_BYTE plain[33], whole[64], parts[64];
	memset(plain, 'p', sizeof(plain));
	CK_ULONG whole_len = sizeof(whole);
	ck_assert_uint_eq(encrypt(&m, key, plain, 33, whole, &whole_len),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key), CKR_OK);
	static const CK_ULONG pieces[] = {1, 15, 17};
	CK_ULONG at = 0, out = 0;
	for (size_t i = 0; i < 3; i++) {
		CK_ULONG need = 99;
		ck_assert_uint_eq(p11->C_EncryptUpdate(session, plain + at,
						       pieces[i], NULL, &need),
				  CKR_OK);
		CK_ULONG len = sizeof(parts) - out;
		ck_assert_uint_eq(p11->C_EncryptUpdate(session, plain + at,
						       pieces[i], parts + out,
						       &len),
				  CKR_OK);
		ck_assert_uint_eq(len, need);
		at += pieces[i];
		out += len;
	}
	ck_assert_uint_eq(out, 32);
	CK_ULONG len = 15;
	ck_assert_uint_eq(p11->C_EncryptFinal(session, parts + out, &len),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(len, 16);
	ck_assert_uint_eq(p11->C_EncryptFinal(session, parts + out, &len),
			  CKR_OK);
	ck_assert_mem_eq(parts, whole, whole_len);
	/* Single-part: a short buffer, then the right one. */
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key), CKR_OK);
	len = 10;
	ck_assert_uint_eq(p11->C_Encrypt(session, plain, 33, parts, &len),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(len, 48);
	ck_assert_uint_eq(p11->C_Encrypt(session, plain, 33, parts, &len),
			  CKR_OK);
	ck_assert_mem_eq(parts, whole, 48);
	/* A single-part call after updates ends the operation. */
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key), CKR_OK);
	len = sizeof(parts);
	ck_assert_uint_eq(p11->C_EncryptUpdate(session, plain, 16, parts, &len),
			  CKR_OK);
	len = sizeof(parts);
	ck_assert_uint_eq(p11->C_Encrypt(session, plain, 16, parts, &len),
			  CKR_OPERATION_ACTIVE);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key), CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key),
			  CKR_OPERATION_ACTIVE);
	ck_assert_uint_eq(p11->C_Encrypt(session, plain, 16, parts, NULL),
			  CKR_ARGUMENTS_BAD);
	len = sizeof(parts);
	ck_assert_uint_eq(p11->C_Encrypt(session, plain, 16, parts, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
}
END_TEST

/* An update longer than a frame goes in pieces, judged against the
 * caller's buffer first: CTR over 1.5 MiB in one call equals it in
 * 100 000-byte calls. */
START_TEST(test_updates_longer_than_a_frame_go_in_pieces)
{
	CK_OBJECT_HANDLE key = aes_key(key128, 16);
	CK_MECHANISM m = {CKM_AES_CTR, &ctr_params, sizeof(ctr_params)};
	enum { N = 1536 * 1024 };
	CK_BYTE *plain = calloc(1, N), *one = malloc(N), *many = malloc(N);
	ck_assert(plain && one && many);
	for (size_t i = 0; i < N; i++)
		plain[i] = (CK_BYTE)(i % 251);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key), CKR_OK);
	CK_ULONG len = N - 1;
	ck_assert_uint_eq(p11->C_EncryptUpdate(session, plain, N, one, &len),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(len, N);
	ck_assert_uint_eq(p11->C_EncryptUpdate(session, plain, N, one, &len),
			  CKR_OK);
	ck_assert_uint_eq(len, N);
	CK_ULONG tail = 0;
	ck_assert_uint_eq(p11->C_EncryptFinal(session, NULL, &tail), CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptFinal(session, one, &tail), CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key), CKR_OK);
	for (CK_ULONG at = 0; at < N; at += 100000) {
		CK_ULONG n = N - at < 100000 ? N - at : 100000, got = n;
		ck_assert_uint_eq(p11->C_EncryptUpdate(session, plain + at, n,
						       many + at, &got),
				  CKR_OK);
		ck_assert_uint_eq(got, n);
	}
	ck_assert_uint_eq(p11->C_EncryptFinal(session, NULL, &tail), CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptFinal(session, many, &tail), CKR_OK);
	ck_assert_mem_eq(one, many, N);
	/* What cannot go in pieces, a single-part call, is refused. */
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, key), CKR_OK);
	len = N;
	ck_assert_uint_eq(p11->C_Encrypt(session, plain, N, one, &len),
			  CKR_DATA_LEN_RANGE);
	free(plain);
	free(one);
	free(many);
}
END_TEST

START_TEST(test_parameters_and_keys_that_do_not_fit_are_refused)
{
	CK_OBJECT_HANDLE key = aes_key(key128, 16);
	CK_BYTE short_iv[8] = {0};
	CK_MECHANISM cbc8 = {CKM_AES_CBC, short_iv, 8};
	CK_MECHANISM cbc0 = {CKM_AES_CBC_PAD, NULL, 0};
	ck_assert_uint_eq(p11->C_EncryptInit(session, &cbc8, key),
			  CKR_MECHANISM_PARAM_INVALID);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &cbc0, key),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_GCM_PARAMS short_tag = {gcm_iv, 12, 96, NULL, 0, 64};
	CK_MECHANISM gcm = {CKM_AES_GCM, &short_tag, sizeof(short_tag)};
	ck_assert_uint_eq(p11->C_EncryptInit(session, &gcm, key),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_GCM_PARAMS no_iv = {NULL, 0, 0, NULL, 0, 128};
	gcm.pParameter = &no_iv;
	ck_assert_uint_eq(p11->C_EncryptInit(session, &gcm, key),
			  CKR_MECHANISM_PARAM_INVALID);
	gcm.ulParameterLen = 4;
	ck_assert_uint_eq(p11->C_EncryptInit(session, &gcm, key),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_AES_CTR_PARAMS no_bits = {0, {0}};
	CK_MECHANISM ctr0 = {CKM_AES_CTR, &no_bits, sizeof(no_bits)};
	ck_assert_uint_eq(p11->C_EncryptInit(session, &ctr0, key),
			  CKR_MECHANISM_PARAM_INVALID);
	/* A counter of one bit at 1 has one block left. */
	CK_AES_CTR_PARAMS one_bit = {1, {0}};
	one_bit.cb[15] = 1;
	CK_MECHANISM ctr1 = {CKM_AES_CTR, &one_bit, sizeof(one_bit)};
	CK_BYTE out[64], in[32] = {0};
	CK_ULONG len = sizeof(out);
	ck_assert_uint_eq(encrypt(&ctr1, key, in, 16, out, &len), CKR_OK);
	len = sizeof(out);
	ck_assert_uint_eq(encrypt(&ctr1, key, in, 17, out, &len),
			  CKR_DATA_LEN_RANGE);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	ck_assert_uint_eq(p11->C_EncryptInit(session, &ecdsa, key),
			  CKR_MECHANISM_INVALID);
	CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE no_encrypt = {CKA_ENCRYPT, &no, 1};
	CK_OBJECT_HANDLE decrypt_only;
	ck_assert_uint_eq(th_import_secret(p11, session, CKK_AES, key128, 16,
					   &no_encrypt, 1, &decrypt_only),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &ecb, decrypt_only),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &ecb, decrypt_only),
			  CKR_OK);
	CK_OBJECT_HANDLE hmac;
	ck_assert_uint_eq(th_import_secret(p11, session, CKK_GENERIC_SECRET,
					   key128, 16, NULL, 0, &hmac),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &ecb, hmac),
			  CKR_KEY_TYPE_INCONSISTENT);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &ecb, 0x7fff),
			  CKR_KEY_HANDLE_INVALID);
	ck_assert_uint_eq(p11->C_EncryptInit(session, NULL, key),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

/* 192- and 256-bit keys in every mode: what goes in comes out. */
START_TEST(test_every_key_size_round_trips_in_every_mode)
{
	CK_BYTE value[32];
	memset(value, 0x42, sizeof(value));
	CK_GCM_PARAMS gp = {gcm_iv, 12, 96, gcm_aad, 20, 96};
	struct {
		CK_MECHANISM_TYPE type;
		void *param;
		CK_ULONG len;
	} modes[] = {{CKM_AES_ECB, NULL, 0},
		     {CKM_AES_CBC, iv, 16},
		     {CKM_AES_CBC_PAD, iv, 16},
		     {CKM_AES_CTR, &ctr_params, sizeof(ctr_params)},
		     {CKM_AES_GCM, &gp, sizeof(gp)}};
	for (CK_ULONG size = 16; size <= 32; size += 8) {
		CK_OBJECT_HANDLE key = aes_key(value, size);
		for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
			CK_MECHANISM m = {modes[i].type, modes[i].param,
					  modes[i].len};
			CK_BYTE out[64], back[64];
			CK_ULONG len = sizeof(out), back_len = sizeof(back);
			ck_assert_uint_eq(
				encrypt(&m, key, gcm_plain, 32, out, &len),
				CKR_OK);
			ck_assert_uint_eq(
				decrypt(&m, key, out, len, back, &back_len),
				CKR_OK);
			ck_assert_uint_eq(back_len, 32);
			ck_assert_mem_eq(back, gcm_plain, 32);
		}
	}
}
END_TEST

/* An RSA-2048 pair for OAEP: the public key encrypts, the private one
 * decrypts. */
static void rsa_pair(CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
	CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_ULONG bits = 2048;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pt[] = {{CKA_MODULUS_BITS, &bits, sizeof(bits)},
			     {CKA_ENCRYPT, &yes, 1}};
	CK_ATTRIBUTE st[] = {{CKA_DECRYPT, &yes, 1}};
	ck_assert_uint_eq(
		p11->C_GenerateKeyPair(session, &mech, pt, 2, st, 1, pub, priv),
		CKR_OK);
}

/* The public key as OpenSSL's, from its modulus and exponent. */
static EVP_PKEY *openssl_public(CK_OBJECT_HANDLE pub)
{
	CK_BYTE n[256], e[8];
	CK_ATTRIBUTE a[] = {{CKA_MODULUS, n, sizeof(n)},
			    {CKA_PUBLIC_EXPONENT, e, sizeof(e)}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, pub, a, 2), CKR_OK);
	BIGNUM *bn_n = BN_bin2bn(n, (int)a[0].ulValueLen, NULL);
	BIGNUM *bn_e = BN_bin2bn(e, (int)a[1].ulValueLen, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *key = NULL;
	ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
	ck_assert_int_eq(
		EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	return key;
}

/* OpenSSL encrypts with OAEP-SHA256 and a label; the token decrypts. */
static size_t openssl_oaep_encrypt(EVP_PKEY *key, const char *label,
				   const CK_BYTE *in, size_t in_len,
				   CK_BYTE *out)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	size_t len = 256;
	ck_assert_int_eq(EVP_PKEY_encrypt_init(ctx), 1);
	ck_assert_int_eq(
		EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set0_rsa_oaep_label(ctx,
							  OPENSSL_strdup(label),
							  (int)strlen(label)),
			 1);
	ck_assert_int_eq(EVP_PKEY_encrypt(ctx, out, &len, in, in_len), 1);
	EVP_PKEY_CTX_free(ctx);
	return len;
}

START_TEST(test_rsa_oaep_round_trips_and_meets_openssl)
{
	CK_OBJECT_HANDLE pub, priv;
	rsa_pair(&pub, &priv);
	CK_RSA_PKCS_OAEP_PARAMS p = {CKM_SHA256, CKG_MGF1_SHA256,
				     CKZ_DATA_SPECIFIED, "device-key", 10};
	CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &p, sizeof(p)};
	CK_BYTE secret[32], out[256], back[256];
	memset(secret, 0x5a, sizeof(secret));
	CK_ULONG len = sizeof(out), back_len = sizeof(back);
	ck_assert_uint_eq(encrypt(&m, pub, secret, 32, out, &len), CKR_OK);
	ck_assert_uint_eq(len, 256);
	CK_ULONG need = 0;
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Decrypt(session, out, len, NULL, &need),
			  CKR_OK);
	ck_assert_uint_ge(need, 32);
	CK_ULONG small = 31;
	ck_assert_uint_eq(p11->C_Decrypt(session, out, len, back, &small),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(small, 32);
	ck_assert_uint_eq(p11->C_Decrypt(session, out, len, back, &back_len),
			  CKR_OK);
	ck_assert_uint_eq(back_len, 32);
	ck_assert_mem_eq(back, secret, 32);
	/* What OpenSSL encrypted to the exported key comes out the same. */
	EVP_PKEY *key = openssl_public(pub);
	size_t n = openssl_oaep_encrypt(key, "device-key", secret, 32, out);
	EVP_PKEY_free(key);
	back_len = sizeof(back);
	ck_assert_uint_eq(decrypt(&m, priv, out, n, back, &back_len), CKR_OK);
	ck_assert_mem_eq(back, secret, 32);
	/* Another label, a flipped bit, a short ciphertext: refused. */
	CK_RSA_PKCS_OAEP_PARAMS other = p;
	other.source_data = "other";
	other.source_data_len = 5;
	CK_MECHANISM om = {CKM_RSA_PKCS_OAEP, &other, sizeof(other)};
	back_len = sizeof(back);
	ck_assert_uint_eq(decrypt(&om, priv, out, n, back, &back_len),
			  CKR_ENCRYPTED_DATA_INVALID);
	out[100] ^= 1;
	back_len = sizeof(back);
	ck_assert_uint_eq(decrypt(&m, priv, out, n, back, &back_len),
			  CKR_ENCRYPTED_DATA_INVALID);
	back_len = sizeof(back);
	ck_assert_uint_eq(decrypt(&m, priv, out, n - 1, back, &back_len),
			  CKR_ENCRYPTED_DATA_LEN_RANGE);
	/* SHA-1 without a label; data past k - 2 hLen - 2 is too long. */
	CK_RSA_PKCS_OAEP_PARAMS sha1 = {CKM_SHA_1, CKG_MGF1_SHA1, 0, NULL, 0};
	CK_MECHANISM s1 = {CKM_RSA_PKCS_OAEP, &sha1, sizeof(sha1)};
	CK_BYTE big[215] = {0};
	len = sizeof(out);
	ck_assert_uint_eq(encrypt(&s1, pub, big, 214, out, &len), CKR_OK);
	back_len = sizeof(back);
	ck_assert_uint_eq(decrypt(&s1, priv, out, len, back, &back_len),
			  CKR_OK);
	ck_assert_uint_eq(back_len, 214);
	len = sizeof(out);
	ck_assert_uint_eq(encrypt(&s1, pub, big, 215, out, &len),
			  CKR_DATA_LEN_RANGE);
	/* Parameters and keys that do not fit. */
	CK_RSA_PKCS_OAEP_PARAMS bad_mgf = {CKM_SHA256, 0x99, 0, NULL, 0};
	CK_MECHANISM bm = {CKM_RSA_PKCS_OAEP, &bad_mgf, sizeof(bad_mgf)};
	ck_assert_uint_eq(p11->C_EncryptInit(session, &bm, pub),
			  CKR_MECHANISM_PARAM_INVALID);
	CK_MECHANISM bare = {CKM_RSA_PKCS_OAEP, NULL, 0};
	ck_assert_uint_eq(p11->C_EncryptInit(session, &bare, pub),
			  CKR_MECHANISM_PARAM_INVALID);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, priv),
			  CKR_KEY_TYPE_INCONSISTENT);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, pub),
			  CKR_KEY_TYPE_INCONSISTENT);
	CK_OBJECT_HANDLE sign_pub, sign_priv;
	th_generate_p256(p11, session, CK_FALSE, &sign_pub, &sign_priv);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, sign_priv),
			  CKR_KEY_TYPE_INCONSISTENT);
	/* Multi-part is not OAEP's. */
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, pub), CKR_OK);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_EncryptUpdate(session, secret, 32, out, &len),
			  CKR_FUNCTION_NOT_SUPPORTED);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_Encrypt(session, secret, 32, out, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
}
END_TEST

/* A key whose template says no decryption cannot decrypt. */
START_TEST(test_rsa_keys_decrypt_only_when_they_may)
{
	CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_ULONG bits = 2048;
	CK_ATTRIBUTE pt = {CKA_MODULUS_BITS, &bits, sizeof(bits)};
	CK_OBJECT_HANDLE pub, priv;
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &mech, &pt, 1, NULL,
						 0, &pub, &priv),
			  CKR_OK);
	CK_RSA_PKCS_OAEP_PARAMS p = {CKM_SHA256, CKG_MGF1_SHA256, 0, NULL, 0};
	CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &p, sizeof(p)};
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, pub),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, priv),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
	CK_MECHANISM v15 = {CKM_RSA_PKCS, NULL, 0};
	ck_assert_uint_eq(p11->C_DecryptInit(session, &v15, priv),
			  CKR_MECHANISM_INVALID);
}
END_TEST

/* PKCS#1 v1.5 decryption is a padding oracle: by default the token
 * neither encrypts nor decrypts with CKM_RSA_PKCS, nor says it does. */
START_TEST(test_rsa_pkcs1_encryption_is_refused_by_default)
{
	CK_MECHANISM_INFO info;
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_RSA_PKCS, &info),
			  CKR_OK);
	ck_assert_uint_eq(info.flags & (CKF_ENCRYPT | CKF_DECRYPT), 0);
	CK_OBJECT_HANDLE pub, priv;
	rsa_pair(&pub, &priv);
	CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, pub),
			  CKR_MECHANISM_INVALID);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, priv),
			  CKR_MECHANISM_INVALID);
	ck_assert_int_eq(
		th_log_count(&d, "event=rsa-pkcs1-encryption-allowed", NULL),
		0);
}
END_TEST

/* Allowed: said at start and by C_GetMechanismInfo; OpenSSL's ciphertext
 * decrypts, the token's round trips, and every refusal of OAEP holds. */
START_TEST(test_rsa_pkcs1_encryption_when_allowed_meets_openssl)
{
	ck_assert_int_eq(
		th_log_count(&d, "event=rsa-pkcs1-encryption-allowed", NULL),
		1);
	CK_MECHANISM_INFO info;
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_RSA_PKCS, &info),
			  CKR_OK);
	ck_assert_uint_eq(info.flags & (CKF_ENCRYPT | CKF_DECRYPT),
			  CKF_ENCRYPT | CKF_DECRYPT);
	CK_OBJECT_HANDLE pub, priv;
	rsa_pair(&pub, &priv);
	EVP_PKEY *key = openssl_public(pub);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	CK_BYTE ct[256], back[256];
	size_t ct_len = sizeof(ct);
	ck_assert_int_eq(EVP_PKEY_encrypt_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING),
			 1);
	ck_assert_int_eq(EVP_PKEY_encrypt(ctx, ct, &ct_len,
					  (const CK_BYTE *)"device key", 10),
			 1);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);
	CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
	CK_ULONG len = 0;
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Decrypt(session, ct, 256, NULL, &len), CKR_OK);
	ck_assert_uint_eq(len, 256);
	len = 4;
	ck_assert_uint_eq(p11->C_Decrypt(session, ct, 256, back, &len),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(len, 10);
	ck_assert_uint_eq(p11->C_Decrypt(session, ct, 256, back, &len), CKR_OK);
	ck_assert_mem_eq(back, "device key", 10);

	CK_BYTE data[246] = {1};
	len = sizeof(ct);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, pub), CKR_OK);
	ck_assert_uint_eq(p11->C_Encrypt(session, data, 246, ct, &len),
			  CKR_DATA_LEN_RANGE);
	len = sizeof(ct);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &m, pub), CKR_OK);
	ck_assert_uint_eq(p11->C_Encrypt(session, data, 245, ct, &len), CKR_OK);
	ck_assert_uint_eq(len, 256);
	len = sizeof(back);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Decrypt(session, ct, 256, back, &len), CKR_OK);
	ck_assert_uint_eq(len, 245);
	ck_assert_mem_eq(back, data, 245);
	/* A ciphertext that does not decode, and one of another length. */
	ct[0] ^= 0x80;
	ct[200] ^= 1;
	len = sizeof(back);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Decrypt(session, ct, 256, back, &len),
			  CKR_ENCRYPTED_DATA_INVALID);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_Decrypt(session, ct, 255, back, &len),
			  CKR_ENCRYPTED_DATA_LEN_RANGE);
	/* Single-part only; a key that may not decrypt does not. */
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_DecryptUpdate(session, ct, 256, back, &len),
			  CKR_FUNCTION_NOT_SUPPORTED);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &m, pub),
			  CKR_KEY_TYPE_INCONSISTENT);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_cipher");
	TCase *tc = tcase_create("aes");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ecb_cbc_and_ctr_match_sp800_38a);
	tcase_add_test(tc, test_gcm_matches_the_specifications_cases);
	tcase_add_test(tc, test_cbc_pad_round_trips_every_length);
	tcase_add_test(tc, test_bad_padding_and_partial_blocks_are_refused);
	tcase_add_test(tc, test_parts_and_the_two_call_convention);
	tcase_add_test(tc, test_updates_longer_than_a_frame_go_in_pieces);
	tcase_add_test(tc,
		       test_parameters_and_keys_that_do_not_fit_are_refused);
	tcase_add_test(tc, test_every_key_size_round_trips_in_every_mode);
	tcase_add_test(tc, test_rsa_oaep_round_trips_and_meets_openssl);
	tcase_add_test(tc, test_rsa_keys_decrypt_only_when_they_may);
	tcase_add_test(tc, test_rsa_pkcs1_encryption_is_refused_by_default);
	suite_add_tcase(s, tc);
	TCase *pkcs1 = tcase_create("rsa-pkcs1-encryption");
	tcase_set_timeout(pkcs1, 120);
	tcase_add_checked_fixture(pkcs1, setup_pkcs1, teardown);
	tcase_add_test(pkcs1,
		       test_rsa_pkcs1_encryption_when_allowed_meets_openssl);
	suite_add_tcase(s, pkcs1);
	return th_run_suite(s);
}
