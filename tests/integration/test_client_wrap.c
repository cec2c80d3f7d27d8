/*
 * Key wrapping through the real module and daemon: C_WrapKey and
 * C_UnwrapKey with AES key wrap (RFC 3394 and RFC 5649, their published
 * vectors) and RSA-OAEP, for secret keys and for EC and RSA private keys
 * (PKCS#8 inside the wrap), and each of the key-management attacks the
 * published catalogues list refused: a sensitive key wrapped and the wrap
 * decrypted, a key wrapped under a weaker one, a key that asks for a
 * trusted wrapping key wrapped by another, CKA_TRUSTED set by a user,
 * unwrapping into contradicting attributes, sticky attributes undone
 * through C_CopyObject or C_SetAttributeValue; and blobs that are
 * truncated, forged or of another key type.
 */
#include <check.h>
#include <dlfcn.h>
#include <string.h>

#include "harness.h"
#include "rh_pkcs11.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;

static CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY,
		       private_class = CKO_PRIVATE_KEY,
		       public_class = CKO_PUBLIC_KEY;
static CK_KEY_TYPE aes_type = CKK_AES, generic_type = CKK_GENERIC_SECRET,
		   ec_type = CKK_EC;
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	session = th_user_session(p11, 0, "0000");
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

/* A wrapping key: wraps and unwraps, nothing else. */
static CK_OBJECT_HANDLE kek(const char *hex)
{
	CK_BYTE v[32];
	size_t n = th_unhex(hex, v);
	CK_ATTRIBUTE a[] = {{CKA_WRAP, &yes, 1}, {CKA_UNWRAP, &yes, 1}};
	CK_OBJECT_HANDLE h = 0;
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, n, a, 2, &h),
		CKR_OK);
	return h;
}

/* A secret key that may leave the token under a wrap. */
static CK_OBJECT_HANDLE extractable(CK_KEY_TYPE type, const char *hex)
{
	CK_BYTE v[64];
	size_t n = th_unhex(hex, v);
	CK_ATTRIBUTE a[] = {{CKA_EXTRACTABLE, &yes, 1}};
	CK_OBJECT_HANDLE h = 0;
	ck_assert_uint_eq(th_import_secret(p11, session, type, v, n, a, 1, &h),
			  CKR_OK);
	return h;
}

static CK_RV wrap(CK_MECHANISM_TYPE type, CK_OBJECT_HANDLE w,
		  CK_OBJECT_HANDLE key, CK_BYTE *out, CK_ULONG *len)
{
	CK_MECHANISM m = {type, NULL, 0};
	return p11->C_WrapKey(session, &m, w, key, out, len);
}

/* Unwraps into a session secret key of type that may be wrapped again
 * (an unwrapped key is always sensitive: its value shows only in a new
 * wrap). */
static CK_RV unwrap_secret(CK_MECHANISM_TYPE type, CK_OBJECT_HANDLE w,
			   const CK_BYTE *blob, CK_ULONG len,
			   CK_KEY_TYPE key_type, CK_OBJECT_HANDLE *key)
{
	CK_MECHANISM m = {type, NULL, 0};
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret_class, sizeof(secret_class)},
			    {CKA_KEY_TYPE, &key_type, sizeof(key_type)},
			    {CKA_EXTRACTABLE, &yes, 1}};
	return p11->C_UnwrapKey(session, &m, w, (CK_BYTE_PTR)blob, len, t, 3,
				key);
}

/* key, wrapped by mech under w, is the blob. */
static void assert_wraps_to(CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE w,
			    CK_OBJECT_HANDLE key, const CK_BYTE *blob,
			    CK_ULONG len)
{
	CK_BYTE out[64];
	CK_ULONG out_len = sizeof(out);
	ck_assert_uint_eq(wrap(mech, w, key, out, &out_len), CKR_OK);
	ck_assert_uint_eq(out_len, len);
	ck_assert_mem_eq(out, blob, len);
}

/* A known answer both ways: key wraps to the blob, and the key unwrapped
 * from the blob as type wraps to it again (AES key wrap is deterministic,
 * so the restored key holds the value the blob was made of). */
static void assert_known_answer(CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE w,
				CK_OBJECT_HANDLE key, CK_KEY_TYPE type,
				const CK_BYTE *blob, CK_ULONG len)
{
	assert_wraps_to(mech, w, key, blob, len);
	CK_OBJECT_HANDLE back = 0;
	ck_assert_uint_eq(unwrap_secret(mech, w, blob, len, type, &back),
			  CKR_OK);
	assert_wraps_to(mech, w, back, blob, len);
}

/* What C_WrapKey answers for key under w, into room enough for any blob. */
static CK_RV wrap_answer(CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE w,
			 CK_OBJECT_HANDLE key)
{
	CK_BYTE out[600];
	CK_ULONG len = sizeof(out);
	return wrap(mech, w, key, out, &len);
}

/* RFC 3394 sections 4.1 and 4.6: AES-128 and AES-256 keys under KEKs of
 * their size, and the two-call rules of C_WrapKey. */
START_TEST(test_aes_key_wrap_matches_rfc_3394)
{
	CK_OBJECT_HANDLE k128 = kek("000102030405060708090A0B0C0D0E0F");
	CK_OBJECT_HANDLE key =
		extractable(aes_type, "00112233445566778899AABBCCDDEEFF");
	CK_BYTE want[40], out[40];
	size_t n = th_unhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5",
			    want);
	CK_ULONG len = 0;
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP, k128, key, NULL, &len),
			  CKR_OK);
	ck_assert_uint_eq(len, n);
	len = n - 1;
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP, k128, key, out, &len),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(len, n);
	assert_known_answer(CKM_AES_KEY_WRAP, k128, key, aes_type, want, n);

	CK_OBJECT_HANDLE k256 = kek("000102030405060708090A0B0C0D0E0F"
				    "101112131415161718191A1B1C1D1E1F");
	key = extractable(aes_type, "00112233445566778899AABBCCDDEEFF"
				    "000102030405060708090A0B0C0D0E0F");
	n = th_unhex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326"
		     "CBC7F0E71A99F43BFB988B9B7A02DD21",
		     want);
	assert_known_answer(CKM_AES_KEY_WRAP, k256, key, aes_type, want, n);
}
END_TEST

/* RFC 5649 section 6: a 20-byte key under a 192-bit KEK; then blobs that
 * are forged, truncated, empty or of a length no wrap has. */
START_TEST(test_aes_key_wrap_with_padding_matches_rfc_5649)
{
	CK_OBJECT_HANDLE k =
		kek("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
	const char *value = "c37b7e6492584340bed12207808941155068f738";
	CK_OBJECT_HANDLE key = extractable(generic_type, value);
	CK_BYTE want[40], out[40];
	size_t n = th_unhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a"
			    "5f54f373fa543b6a",
			    want);
	assert_known_answer(CKM_AES_KEY_WRAP_KWP, k, key, generic_type, want,
			    n);
	CK_ULONG len = n;
	memcpy(out, want, n);
	CK_OBJECT_HANDLE back = 0;

	out[5] ^= 1;
	ck_assert_uint_eq(unwrap_secret(CKM_AES_KEY_WRAP_KWP, k, out, len,
					generic_type, &back),
			  CKR_WRAPPED_KEY_INVALID);
	out[5] ^= 1;
	ck_assert_uint_eq(unwrap_secret(CKM_AES_KEY_WRAP_KWP, k, out, len - 8,
					generic_type, &back),
			  CKR_WRAPPED_KEY_INVALID);
	ck_assert_uint_eq(unwrap_secret(CKM_AES_KEY_WRAP_KWP, k, out, len - 1,
					generic_type, &back),
			  CKR_WRAPPED_KEY_LEN_RANGE);
	ck_assert_uint_eq(unwrap_secret(CKM_AES_KEY_WRAP_KWP, k, out, 0,
					generic_type, &back),
			  CKR_WRAPPED_KEY_LEN_RANGE);
	/* The right wrap, opened as an AES key: 20 bytes are no AES key. */
	ck_assert_uint_eq(unwrap_secret(CKM_AES_KEY_WRAP_KWP, k, out, len,
					aes_type, &back),
			  CKR_WRAPPED_KEY_INVALID);
	/* Opened as an EC private key: the value is no PKCS#8. */
	CK_MECHANISM m = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &private_class, sizeof(private_class)},
			    {CKA_KEY_TYPE, &ec_type, sizeof(ec_type)}};
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, k, out, len, t, 2, &back),
		CKR_WRAPPED_KEY_INVALID);
}
END_TEST

/* A key leaves only if extractable, never under a key weaker than itself,
 * and only by a trusted key when it asks for one; KW takes no plaintext
 * it cannot pad. */
START_TEST(test_keys_leave_only_as_their_attributes_allow)
{
	CK_OBJECT_HANDLE k128 = kek("000102030405060708090A0B0C0D0E0F");
	CK_BYTE v[32] = {1}, out[64];
	CK_ULONG len = sizeof(out);
	CK_OBJECT_HANDLE kept = 0, strong = 0, picky = 0;
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, 16, NULL, 0, &kept),
		CKR_OK);
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP, k128, kept, out, &len),
			  CKR_KEY_UNEXTRACTABLE);
	strong = extractable(aes_type, "000102030405060708090A0B0C0D0E0F"
				       "000102030405060708090A0B0C0D0E0F");
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, k128, strong),
			  CKR_WRAPPING_KEY_SIZE_RANGE);
	CK_ATTRIBUTE a[] = {{CKA_EXTRACTABLE, &yes, 1},
			    {CKA_WRAP_WITH_TRUSTED, &yes, 1}};
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, 16, a, 2, &picky),
		CKR_OK);
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, k128, picky),
			  CKR_KEY_NOT_WRAPPABLE);
	/* The wrapping key must wrap, and be of the mechanism's type. */
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, strong, k128),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
	CK_OBJECT_HANDLE hmac = extractable(generic_type, "0b0b0b0b0b0b0b0b"
							  "0b0b0b0b0b0b0b0b");
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, hmac, strong),
			  CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, 0x7777, strong),
			  CKR_WRAPPING_KEY_HANDLE_INVALID);
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, k128, 0x7777),
			  CKR_KEY_HANDLE_INVALID);
	ck_assert_uint_eq(wrap_answer(CKM_AES_CBC, k128, hmac),
			  CKR_MECHANISM_INVALID);
	CK_BYTE iv[3] = {0};
	CK_MECHANISM bad_iv = {CKM_AES_KEY_WRAP, iv, sizeof(iv)};
	len = sizeof(out);
	ck_assert_uint_eq(
		p11->C_WrapKey(session, &bad_iv, k128, hmac, out, &len),
		CKR_MECHANISM_PARAM_INVALID);
	/* 20 bytes are not whole blocks: KW cannot, KWP can. */
	CK_OBJECT_HANDLE odd = extractable(
		generic_type, "c37b7e6492584340bed12207808941155068f738");
	CK_OBJECT_HANDLE k256 = kek("000102030405060708090A0B0C0D0E0F"
				    "101112131415161718191A1B1C1D1E1F");
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, k256, odd),
			  CKR_KEY_SIZE_RANGE);
	len = sizeof(out);
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP_KWP, k256, odd, out, &len),
			  CKR_OK);
}
END_TEST

/* Only the SO marks a key trusted; a key that asks for a trusted wrapping
 * key then leaves under it. */
START_TEST(test_trusted_wrapping_keys_are_the_so_s)
{
	CK_BYTE v[16] = {7}, out[64];
	CK_OBJECT_HANDLE w = 0, mine = 0;
	CK_ATTRIBUTE trusted[] = {{CKA_WRAP, &yes, 1},
				  {CKA_PRIVATE, &no, 1},
				  {CKA_TRUSTED, &yes, 1}};
	ck_assert_uint_eq(th_import_secret(p11, session, aes_type, v, 16,
					   trusted, 3, &mine),
			  CKR_ATTRIBUTE_READ_ONLY);
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, 16, trusted, 2, &w),
		CKR_OK);
	CK_ATTRIBUTE trust = {CKA_TRUSTED, &yes, 1};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, w, &trust, 1),
			  CKR_ATTRIBUTE_READ_ONLY);
	CK_ATTRIBUTE copy_trusted[] = {{CKA_TRUSTED, &yes, 1}};
	ck_assert_uint_eq(p11->C_CopyObject(session, w, copy_trusted, 1, &mine),
			  CKR_ATTRIBUTE_READ_ONLY);

	ck_assert_uint_eq(p11->C_Logout(session), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_SO, (CK_UTF8CHAR_PTR) "so-pin-1", 8),
		CKR_OK);
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, w, &trust, 1),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_Logout(session), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_OK);
	CK_BBOOL got = CK_FALSE;
	CK_ATTRIBUTE q = {CKA_TRUSTED, &got, 1};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, w, &q, 1), CKR_OK);
	ck_assert(got);
	/* A user cannot take the SO's trust back either. */
	CK_ATTRIBUTE untrust = {CKA_TRUSTED, &no, 1};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, w, &untrust, 1),
			  CKR_ATTRIBUTE_READ_ONLY);
	CK_ATTRIBUTE a[] = {{CKA_EXTRACTABLE, &yes, 1},
			    {CKA_WRAP_WITH_TRUSTED, &yes, 1}};
	CK_OBJECT_HANDLE picky = 0;
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, 16, a, 2, &picky),
		CKR_OK);
	CK_ULONG len = sizeof(out);
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP, w, picky, out, &len), CKR_OK);
	ck_assert_uint_eq(len, 24);
}
END_TEST

/* Wrap-then-decrypt and encrypt-then-unwrap: the roles never meet in one
 * key, whether asked for at creation, by a change or in a copy. */
START_TEST(test_wrapping_keys_neither_decrypt_nor_encrypt)
{
	CK_BYTE v[16] = {3};
	CK_OBJECT_HANDLE h = 0, copy = 0;
	CK_ATTRIBUTE wrap_decrypt[] = {{CKA_WRAP, &yes, 1},
				       {CKA_DECRYPT, &yes, 1}};
	ck_assert_uint_eq(th_import_secret(p11, session, aes_type, v, 16,
					   wrap_decrypt, 2, &h),
			  CKR_TEMPLATE_INCONSISTENT);
	CK_ATTRIBUTE unwrap_encrypt[] = {{CKA_UNWRAP, &yes, 1},
					 {CKA_ENCRYPT, &yes, 1}};
	ck_assert_uint_eq(th_import_secret(p11, session, aes_type, v, 16,
					   unwrap_encrypt, 2, &h),
			  CKR_TEMPLATE_INCONSISTENT);
	CK_OBJECT_HANDLE w = kek("000102030405060708090A0B0C0D0E0F");
	CK_BBOOL enc = CK_TRUE, dec = CK_TRUE;
	CK_ATTRIBUTE q[] = {{CKA_ENCRYPT, &enc, 1}, {CKA_DECRYPT, &dec, 1}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, w, q, 2), CKR_OK);
	ck_assert(!enc && !dec);
	CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
	ck_assert_uint_eq(p11->C_DecryptInit(session, &ecb, w),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
	ck_assert_uint_eq(p11->C_EncryptInit(session, &ecb, w),
			  CKR_KEY_FUNCTION_NOT_PERMITTED);
	CK_ATTRIBUTE decrypt = {CKA_DECRYPT, &yes, 1};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, w, &decrypt, 1),
			  CKR_TEMPLATE_INCONSISTENT);
	ck_assert_uint_eq(p11->C_CopyObject(session, w, &decrypt, 1, &copy),
			  CKR_TEMPLATE_INCONSISTENT);
	/* The same through C_GenerateKey. */
	CK_ULONG n = 16;
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &n, sizeof(n)},
			    {CKA_WRAP, &yes, 1},
			    {CKA_DECRYPT, &yes, 1}};
	ck_assert_uint_eq(p11->C_GenerateKey(session, &gen, t, 3, &h),
			  CKR_TEMPLATE_INCONSISTENT);
	/* A generic secret wraps and decrypts under no mechanism: its flags
	 * may say what they like, as pkcs11-tool's derived keys do. */
	CK_BYTE g[32] = {4};
	CK_ATTRIBUTE all[] = {wrap_decrypt[0], wrap_decrypt[1],
			      unwrap_encrypt[0], unwrap_encrypt[1]};
	ck_assert_uint_eq(th_import_secret(p11, session, generic_type, g,
					   sizeof(g), all, 4, &h),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_DecryptInit(session, &ecb, h),
			  CKR_KEY_TYPE_INCONSISTENT);
	CK_BYTE out[64];
	CK_ULONG out_len = sizeof(out);
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP, h, w, out, &out_len),
			  CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
}
END_TEST

/* Sensitivity and extractability go one way only, through copies and
 * changes alike. */
START_TEST(test_sticky_attributes_stay_through_copies)
{
	CK_BYTE v[16] = {5};
	CK_OBJECT_HANDLE key = 0, copy = 0;
	CK_ATTRIBUTE a[] = {{CKA_WRAP_WITH_TRUSTED, &yes, 1}};
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, 16, a, 1, &key),
		CKR_OK);
	CK_ATTRIBUTE unsticks[] = {{CKA_SENSITIVE, &no, 1},
				   {CKA_EXTRACTABLE, &yes, 1},
				   {CKA_WRAP_WITH_TRUSTED, &no, 1}};
	for (size_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(
			p11->C_CopyObject(session, key, &unsticks[i], 1, &copy),
			CKR_ATTRIBUTE_READ_ONLY);
		ck_assert_uint_eq(
			p11->C_SetAttributeValue(session, key, &unsticks[i], 1),
			CKR_ATTRIBUTE_READ_ONLY);
	}
	/* The token's own record of the key's past is not a template's. */
	CK_ATTRIBUTE always = {CKA_ALWAYS_SENSITIVE, &yes, 1};
	ck_assert_uint_eq(p11->C_CopyObject(session, key, &always, 1, &copy),
			  CKR_ATTRIBUTE_READ_ONLY);
}
END_TEST

/* An unwrapped key takes its policy from the template: sensitive and not
 * extractable by default, never "always sensitive" or local; a template
 * may not bring key material or contradicting roles. */
START_TEST(test_unwrapped_keys_take_the_template_s_policy)
{
	CK_OBJECT_HANDLE w = kek("000102030405060708090A0B0C0D0E0F");
	CK_OBJECT_HANDLE key =
		extractable(aes_type, "00112233445566778899AABBCCDDEEFF");
	CK_BYTE blob[40], v[16] = {0};
	CK_ULONG len = sizeof(blob);
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP, w, key, blob, &len), CKR_OK);
	CK_MECHANISM m = {CKM_AES_KEY_WRAP, NULL, 0};
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret_class, sizeof(secret_class)},
			    {CKA_KEY_TYPE, &aes_type, sizeof(aes_type)},
			    {CKA_WRAP, &yes, 1},
			    {CKA_DECRYPT, &yes, 1}};
	CK_OBJECT_HANDLE back = 0;
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, t, 2, &back),
		CKR_OK);
	CK_BBOOL sensitive = 0, extract = 1, always = 1, never = 1, local = 1;
	CK_ATTRIBUTE q[] = {{CKA_SENSITIVE, &sensitive, 1},
			    {CKA_EXTRACTABLE, &extract, 1},
			    {CKA_ALWAYS_SENSITIVE, &always, 1},
			    {CKA_NEVER_EXTRACTABLE, &never, 1},
			    {CKA_LOCAL, &local, 1}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, back, q, 5),
			  CKR_OK);
	ck_assert(sensitive && !extract && !always && !never && !local);
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, t, 4, &back),
		CKR_TEMPLATE_INCONSISTENT);
	CK_ATTRIBUTE readable[] = {t[0], t[1], {CKA_SENSITIVE, &no, 1}};
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, readable, 3, &back),
		CKR_TEMPLATE_INCONSISTENT);
	CK_ATTRIBUTE with_value[] = {t[0], t[1], {CKA_VALUE, v, sizeof(v)}};
	ck_assert_uint_eq(p11->C_UnwrapKey(session, &m, w, blob, len,
					   with_value, 3, &back),
			  CKR_TEMPLATE_INCONSISTENT);
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, t, 1, &back),
		CKR_TEMPLATE_INCOMPLETE);
	CK_ATTRIBUTE as_public[] = {
		{CKA_CLASS, &public_class, sizeof(public_class)}, t[1]};
	ck_assert_uint_eq(p11->C_UnwrapKey(session, &m, w, blob, len, as_public,
					   2, &back),
			  CKR_TEMPLATE_INCONSISTENT);
	CK_ULONG wrong_len = 32;
	CK_ATTRIBUTE longer[] = {
		t[0], t[1], {CKA_VALUE_LEN, &wrong_len, sizeof(wrong_len)}};
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, longer, 3, &back),
		CKR_TEMPLATE_INCONSISTENT);
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, 0x7777, blob, len, t, 2, &back),
		CKR_UNWRAPPING_KEY_HANDLE_INVALID);
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, t, 2, NULL),
		CKR_ARGUMENTS_BAD);
}
END_TEST

/* An EC or RSA private key made on the token, extractable. */
static void private_pair(CK_MECHANISM_TYPE gen, CK_OBJECT_HANDLE *pub,
			 CK_OBJECT_HANDLE *priv, CK_ULONG rsa_bits)
{
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_MECHANISM m = {gen, NULL, 0};
	CK_ATTRIBUTE ec_pub[] = {{CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
	CK_ATTRIBUTE rsa_pub[] = {
		{CKA_MODULUS_BITS, &rsa_bits, sizeof(rsa_bits)},
		{CKA_WRAP, &yes, 1}};
	CK_ATTRIBUTE pt[2];
	CK_ULONG n_pub = gen == CKM_EC_KEY_PAIR_GEN ? 1 : 2;
	memcpy(pt, n_pub == 1 ? ec_pub : rsa_pub, n_pub * sizeof(*pt));
	CK_ATTRIBUTE priv_t[] = {{CKA_EXTRACTABLE, &yes, 1},
				 {CKA_SIGN, &yes, 1},
				 {CKA_UNWRAP, &yes, 1}};
	ck_assert_uint_eq(p11->C_GenerateKeyPair(session, &m, pt, n_pub, priv_t,
						 3, pub, priv),
			  CKR_OK);
}

static void signs_for(CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE priv,
		      CK_OBJECT_HANDLE pub)
{
	CK_MECHANISM m = {mech, NULL, 0};
	CK_BYTE data[32] = {9}, sig[512];
	CK_ULONG sig_len = sizeof(sig);
	ck_assert_uint_eq(p11->C_SignInit(session, &m, priv), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Sign(session, data, sizeof(data), sig, &sig_len),
		CKR_OK);
	ck_assert_uint_eq(p11->C_VerifyInit(session, &m, pub), CKR_OK);
	ck_assert_uint_eq(
		p11->C_Verify(session, data, sizeof(data), sig, sig_len),
		CKR_OK);
}

/* Private keys travel as PKCS#8 under KWP and come back whole: the key
 * unwrapped signs, the original public key verifies. */
static void private_key_round_trip(CK_MECHANISM_TYPE gen, CK_KEY_TYPE type,
				   CK_MECHANISM_TYPE sign)
{
	CK_OBJECT_HANDLE pub = 0, priv = 0, back = 0;
	private_pair(gen, &pub, &priv, 2048);
	CK_OBJECT_HANDLE w = kek("000102030405060708090A0B0C0D0E0F"
				 "101112131415161718191A1B1C1D1E1F");
	CK_BYTE blob[4096];
	CK_ULONG len = 0;
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP_KWP, w, priv, NULL, &len),
			  CKR_OK);
	ck_assert_uint_le(len, sizeof(blob));
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP_KWP, w, priv, blob, &len),
			  CKR_OK);
	CK_MECHANISM m = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &private_class, sizeof(private_class)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_SIGN, &yes, 1}};
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, t, 3, &back),
		CKR_OK);
	signs_for(sign, back, pub);
	/* A private key's wrap opened as a secret key, or as the other
	 * kind of private key. */
	CK_KEY_TYPE other = type == CKK_EC ? CKK_RSA : CKK_EC;
	CK_ATTRIBUTE t_other[] = {t[0], {CKA_KEY_TYPE, &other, sizeof(other)}};
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, t_other, 2, &back),
		CKR_WRAPPED_KEY_INVALID);
	/* As a secret key: an RSA key's PKCS#8 is longer than any. */
	if (type == CKK_RSA)
		ck_assert_uint_eq(unwrap_secret(CKM_AES_KEY_WRAP_KWP, w, blob,
						len, generic_type, &back),
				  CKR_WRAPPED_KEY_INVALID);
}

START_TEST(test_ec_private_keys_wrap_as_pkcs8)
{
	private_key_round_trip(CKM_EC_KEY_PAIR_GEN, CKK_EC, CKM_ECDSA);
}
END_TEST

START_TEST(test_rsa_private_keys_wrap_as_pkcs8)
{
	private_key_round_trip(CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA,
			       CKM_SHA256_RSA_PKCS);
}
END_TEST

/* RSA-OAEP wraps a secret key with the public key and unwraps it with the
 * private one; a 2048-bit modulus is weaker than AES-128, and a private
 * key does not fit in one OAEP block. */
START_TEST(test_rsa_oaep_wraps_secret_keys)
{
	CK_OBJECT_HANDLE pub = 0, priv = 0, pub2048 = 0, priv2048 = 0;
	private_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, &pub, &priv, 3072);
	private_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, &pub2048, &priv2048, 2048);
	CK_RSA_PKCS_OAEP_PARAMS p = {CKM_SHA256, CKG_MGF1_SHA256,
				     CKZ_DATA_SPECIFIED, NULL, 0};
	CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &p, sizeof(p)};
	CK_OBJECT_HANDLE key =
		extractable(aes_type, "00112233445566778899AABBCCDDEEFF");
	CK_BYTE blob[512];
	CK_ULONG len = sizeof(blob);
	ck_assert_uint_eq(p11->C_WrapKey(session, &m, pub, key, blob, &len),
			  CKR_OK);
	ck_assert_uint_eq(len, 384);
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret_class, sizeof(secret_class)},
			    {CKA_KEY_TYPE, &aes_type, sizeof(aes_type)},
			    {CKA_EXTRACTABLE, &yes, 1}};
	CK_OBJECT_HANDLE back = 0;
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, priv, blob, len, t, 3, &back),
		CKR_OK);
	CK_OBJECT_HANDLE w = kek("000102030405060708090A0B0C0D0E0F");
	CK_BYTE kw[24];
	CK_ULONG kw_len = sizeof(kw);
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP, w, key, kw, &kw_len), CKR_OK);
	assert_wraps_to(CKM_AES_KEY_WRAP, w, back, kw, kw_len);
	blob[100] ^= 1;
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, priv, blob, len, t, 3, &back),
		CKR_WRAPPED_KEY_INVALID);
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, priv, blob, len - 1, t, 3, &back),
		CKR_WRAPPED_KEY_LEN_RANGE);
	/* Unwrapping takes the private key, wrapping the public one. */
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, pub, blob, len, t, 3, &back),
		CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
	len = sizeof(blob);
	ck_assert_uint_eq(p11->C_WrapKey(session, &m, priv, key, blob, &len),
			  CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
	len = sizeof(blob);
	ck_assert_uint_eq(p11->C_WrapKey(session, &m, pub2048, key, blob, &len),
			  CKR_WRAPPING_KEY_SIZE_RANGE);
	len = sizeof(blob);
	ck_assert_uint_eq(
		p11->C_WrapKey(session, &m, pub, priv2048, blob, &len),
		CKR_KEY_SIZE_RANGE);
	/* An RSA key that unwraps does not decrypt. */
	CK_ATTRIBUTE decrypt = {CKA_DECRYPT, &yes, 1};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, priv, &decrypt, 1),
			  CKR_TEMPLATE_INCONSISTENT);
}
END_TEST

/* A wrapping key (token when token is set) holding the templates given:
 * what it may wrap, and what it makes of what it unwraps. */
static CK_OBJECT_HANDLE kek_with(CK_ATTRIBUTE *wrap_t, CK_ULONG n_wrap,
				 CK_ATTRIBUTE *unwrap_t, CK_ULONG n_unwrap,
				 CK_BBOOL token)
{
	CK_BYTE v[16] = {7};
	CK_ATTRIBUTE a[] = {
		{CKA_WRAP, &yes, 1},
		{CKA_UNWRAP, &yes, 1},
		{CKA_TOKEN, &token, 1},
		{CKA_WRAP_TEMPLATE, wrap_t, n_wrap * sizeof(*wrap_t)},
		{CKA_UNWRAP_TEMPLATE, unwrap_t, n_unwrap * sizeof(*unwrap_t)}};
	CK_OBJECT_HANDLE h = 0;
	ck_assert_uint_eq(th_import_secret(p11, session, aes_type, v, sizeof(v),
					   a, 5, &h),
			  CKR_OK);
	return h;
}

/* CKA_WRAP_TEMPLATE: a wrapping key wraps only keys that match it. */
START_TEST(test_wrap_template_bounds_what_leaves)
{
	CK_BYTE label[] = "backup";
	CK_ATTRIBUTE only[] = {{CKA_KEY_TYPE, &aes_type, sizeof(aes_type)},
			       {CKA_LABEL, label, 6}};
	CK_OBJECT_HANDLE w = kek_with(only, 2, NULL, 0, CK_TRUE);
	CK_OBJECT_HANDLE plain =
		extractable(aes_type, "00112233445566778899AABBCCDDEEFF");
	CK_OBJECT_HANDLE hmac = extractable(generic_type, "0b0b0b0b0b0b0b0b"
							  "0b0b0b0b0b0b0b0b");
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, w, plain),
			  CKR_KEY_NOT_WRAPPABLE);
	CK_ATTRIBUTE named = {CKA_LABEL, label, 6};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, plain, &named, 1),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, hmac, &named, 1),
			  CKR_OK);
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, w, plain), CKR_OK);
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, w, hmac),
			  CKR_KEY_NOT_WRAPPABLE);
	/* The template is the key's for good: no change, no copy loosens
	 * it. */
	CK_ATTRIBUTE looser = {CKA_WRAP_TEMPLATE, NULL, 0};
	ck_assert_uint_eq(p11->C_SetAttributeValue(session, w, &looser, 1),
			  CKR_ATTRIBUTE_READ_ONLY);
	CK_OBJECT_HANDLE copy = 0;
	ck_assert_uint_eq(p11->C_CopyObject(session, w, &looser, 1, &copy),
			  CKR_ATTRIBUTE_READ_ONLY);
}
END_TEST

/* C_GetAttributeValue gives a held template back by the two-call rules, one
 * level down: the count, then each entry's type and length, then values. */
START_TEST(test_held_templates_read_back)
{
	CK_BYTE label[] = "backup";
	CK_ATTRIBUTE only[] = {{CKA_KEY_TYPE, &aes_type, sizeof(aes_type)},
			       {CKA_LABEL, label, 6},
			       {CKA_EXTRACTABLE, &yes, 1}};
	CK_OBJECT_HANDLE w = kek_with(only, 3, NULL, 0, CK_TRUE);
	CK_ATTRIBUTE q = {CKA_WRAP_TEMPLATE, NULL, 0};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, w, &q, 1), CKR_OK);
	ck_assert_uint_eq(q.ulValueLen, 3 * sizeof(CK_ATTRIBUTE));
	CK_ATTRIBUTE got[3];
	memset(got, 0, sizeof(got));
	q.pValue = got;
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, w, &q, 1), CKR_OK);
	ck_assert_uint_eq(got[0].type, CKA_KEY_TYPE);
	ck_assert_uint_eq(got[0].ulValueLen, sizeof(CK_KEY_TYPE));
	ck_assert_uint_eq(got[1].type, CKA_LABEL);
	ck_assert_uint_eq(got[1].ulValueLen, 6);
	ck_assert_uint_eq(got[2].ulValueLen, 1);
	CK_KEY_TYPE type = 0;
	CK_BYTE name[6], flag = 0;
	got[0].pValue = &type;
	got[1].pValue = name;
	got[2].pValue = &flag;
	got[1].ulValueLen = 5;
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, w, &q, 1),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(got[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
	got[1].ulValueLen = sizeof(name);
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, w, &q, 1), CKR_OK);
	ck_assert_uint_eq(type, CKK_AES);
	ck_assert_mem_eq(name, label, 6);
	ck_assert_uint_eq(flag, CK_TRUE);
	/* Too little room for the entries themselves. */
	q.ulValueLen = 2 * sizeof(CK_ATTRIBUTE);
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, w, &q, 1),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(q.ulValueLen, CK_UNAVAILABLE_INFORMATION);
}
END_TEST

/* CKA_UNWRAP_TEMPLATE: what an unwrapping key makes of a blob, whatever the
 * caller asks; a caller's template that contradicts it is refused. */
START_TEST(test_unwrap_template_decides_the_new_key_s_policy)
{
	CK_ATTRIBUTE make[] = {{CKA_EXTRACTABLE, &no, 1},
			       {CKA_ENCRYPT, &no, 1}};
	CK_OBJECT_HANDLE w = kek_with(NULL, 0, make, 2, CK_FALSE);
	CK_OBJECT_HANDLE key =
		extractable(aes_type, "00112233445566778899AABBCCDDEEFF");
	CK_BYTE blob[40];
	CK_ULONG len = sizeof(blob);
	ck_assert_uint_eq(wrap(CKM_AES_KEY_WRAP, w, key, blob, &len), CKR_OK);
	CK_MECHANISM m = {CKM_AES_KEY_WRAP, NULL, 0};
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &secret_class, sizeof(secret_class)},
			    {CKA_KEY_TYPE, &aes_type, sizeof(aes_type)},
			    {CKA_EXTRACTABLE, &yes, 1}};
	CK_OBJECT_HANDLE back = 0;
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, t, 3, &back),
		CKR_TEMPLATE_INCONSISTENT);
	ck_assert_uint_eq(
		p11->C_UnwrapKey(session, &m, w, blob, len, t, 2, &back),
		CKR_OK);
	CK_BBOOL extract = CK_TRUE, encrypt = CK_TRUE;
	CK_ATTRIBUTE q[] = {{CKA_EXTRACTABLE, &extract, 1},
			    {CKA_ENCRYPT, &encrypt, 1}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, back, q, 2),
			  CKR_OK);
	ck_assert_uint_eq(extract, CK_FALSE);
	ck_assert_uint_eq(encrypt, CK_FALSE);
	ck_assert_uint_eq(wrap_answer(CKM_AES_KEY_WRAP, w, back),
			  CKR_KEY_UNEXTRACTABLE);
}
END_TEST

/* Templates hold plain attributes, on the classes that use them. */
START_TEST(test_held_templates_are_checked)
{
	CK_ATTRIBUTE inner[] = {{CKA_KEY_TYPE, &aes_type, sizeof(aes_type)}};
	CK_ATTRIBUTE nested[] = {{CKA_WRAP_TEMPLATE, inner, sizeof(inner)}};
	CK_BYTE v[16] = {1};
	CK_ATTRIBUTE a[] = {{CKA_WRAP, &yes, 1},
			    {CKA_WRAP_TEMPLATE, nested, sizeof(nested)}};
	CK_OBJECT_HANDLE h = 0;
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, 16, a, 2, &h),
		CKR_ATTRIBUTE_VALUE_INVALID);
	a[1].ulValueLen = sizeof(CK_ATTRIBUTE) + 1;
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, 16, a, 2, &h),
		CKR_ATTRIBUTE_VALUE_INVALID);
	CK_BBOOL odd = CK_TRUE;
	CK_ATTRIBUTE bad_bool[] = {{CKA_SENSITIVE, &odd, 4}};
	a[1] = (CK_ATTRIBUTE){CKA_WRAP_TEMPLATE, bad_bool, sizeof(bad_bool)};
	ck_assert_uint_eq(
		th_import_secret(p11, session, aes_type, v, 16, a, 2, &h),
		CKR_ATTRIBUTE_VALUE_INVALID);
	/* A private key unwraps, it never wraps. */
	CK_OBJECT_HANDLE pub = 0, priv = 0;
	th_generate_p256(p11, session, CK_FALSE, &pub, &priv);
	CK_ATTRIBUTE t = {CKA_WRAP_TEMPLATE, inner, sizeof(inner)};
	CK_OBJECT_HANDLE copy = 0;
	ck_assert_uint_eq(p11->C_CopyObject(session, priv, &t, 1, &copy),
			  CKR_ATTRIBUTE_TYPE_INVALID);
}
END_TEST

START_TEST(test_mechanism_info_tells_the_wrapping_mechanisms)
{
	CK_MECHANISM_INFO info;
	const CK_MECHANISM_TYPE aes[] = {CKM_AES_KEY_WRAP,
					 CKM_AES_KEY_WRAP_KWP};
	for (size_t i = 0; i < 2; i++) {
		ck_assert_uint_eq(p11->C_GetMechanismInfo(0, aes[i], &info),
				  CKR_OK);
		ck_assert_uint_eq(info.ulMinKeySize, 16);
		ck_assert_uint_eq(info.ulMaxKeySize, 32);
		ck_assert_uint_eq(info.flags, CKF_HW | CKF_WRAP | CKF_UNWRAP);
	}
	ck_assert_uint_eq(p11->C_GetMechanismInfo(0, CKM_RSA_PKCS_OAEP, &info),
			  CKR_OK);
	ck_assert(info.flags & CKF_WRAP && info.flags & CKF_UNWRAP);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("wrap");
	TCase *tc = tcase_create("wrap");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_aes_key_wrap_matches_rfc_3394);
	tcase_add_test(tc, test_aes_key_wrap_with_padding_matches_rfc_5649);
	tcase_add_test(tc, test_keys_leave_only_as_their_attributes_allow);
	tcase_add_test(tc, test_trusted_wrapping_keys_are_the_so_s);
	tcase_add_test(tc, test_wrapping_keys_neither_decrypt_nor_encrypt);
	tcase_add_test(tc, test_sticky_attributes_stay_through_copies);
	tcase_add_test(tc, test_unwrapped_keys_take_the_template_s_policy);
	tcase_add_test(tc, test_ec_private_keys_wrap_as_pkcs8);
	tcase_add_test(tc, test_rsa_private_keys_wrap_as_pkcs8);
	tcase_add_test(tc, test_rsa_oaep_wraps_secret_keys);
	tcase_add_test(tc, test_wrap_template_bounds_what_leaves);
	tcase_add_test(tc, test_held_templates_read_back);
	tcase_add_test(tc, test_unwrap_template_decides_the_new_key_s_policy);
	tcase_add_test(tc, test_held_templates_are_checked);
	tcase_add_test(tc, test_mechanism_info_tells_the_wrapping_mechanisms);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return th_run_suite(suite());
}
