/*
 * Secret keys behind daemon/crypto.h: AES and generic secret values, kept
 * in OpenSSL's secure heap, their check values, and the MACs made with
 * them (HMAC over SHA-1/2, AES-CMAC) through EVP_MAC.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#include "crypto.h"
#include "crypto_secret.h"

struct rhd_secret_value {
	uint64_t key_type;
	size_t len;
	uint8_t *bytes; /* in the secure heap */
};

static const EVP_CIPHER *aes_ecb(size_t len)
{
	return len == 16   ? EVP_aes_128_ecb()
	       : len == 24 ? EVP_aes_192_ecb()
	       : len == 32 ? EVP_aes_256_ecb()
			   : NULL;
}

static const char *aes_cbc_name(size_t len)
{
	return len == 16   ? "AES-128-CBC"
	       : len == 24 ? "AES-192-CBC"
	       : len == 32 ? "AES-256-CBC"
			   : NULL;
}

int rhd_secret_len_valid(uint64_t key_type, size_t len)
{
	if (key_type == CKK_AES)
		return aes_ecb(len) != NULL;
	if (key_type == CKK_GENERIC_SECRET)
		return len >= RHD_SECRET_MIN_LEN && len <= RHD_SECRET_MAX_LEN;
	return 0;
}

/* AES: the first bytes of a zero block encrypted under the key. */
static CK_RV aes_check_value(const uint8_t *value, size_t len,
			     uint8_t out[RHD_CHECK_VALUE_LEN])
{
	static const uint8_t zero[16];
	uint8_t block[32];
	int n = 0, tail = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int ok =
		ctx &&
		EVP_EncryptInit_ex(ctx, aes_ecb(len), NULL, value, NULL) == 1 &&
		EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
		EVP_EncryptUpdate(ctx, block, &n, zero, sizeof(zero)) == 1 &&
		EVP_EncryptFinal_ex(ctx, block + n, &tail) == 1 && n == 16;
	EVP_CIPHER_CTX_free(ctx);
	if (ok)
		memcpy(out, block, RHD_CHECK_VALUE_LEN);
	OPENSSL_cleanse(block, sizeof(block));
	return ok ? CKR_OK : CKR_DEVICE_ERROR;
}

CK_RV rhd_crypto_check_value(uint64_t key_type, const uint8_t *value,
			     size_t len, uint8_t out[RHD_CHECK_VALUE_LEN])
{
	if (!rhd_secret_len_valid(key_type, len))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (key_type == CKK_AES)
		return aes_check_value(value, len, out);
	/* A generic secret's: the first bytes of its SHA-1 (PKCS#11 3.0). */
	uint8_t hash[SHA_DIGEST_LENGTH];
	if (!SHA1(value, len, hash))
		return CKR_DEVICE_ERROR;
	memcpy(out, hash, RHD_CHECK_VALUE_LEN);
	return CKR_OK;
}

CK_RV rhd_crypto_secret_generate(rhd_object_t *obj, uint64_t key_type,
				 size_t len)
{
	if (!rhd_secret_len_valid(key_type, len))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	uint8_t value[RHD_SECRET_MAX_LEN];
	CK_RV rv = rhd_crypto_secret_random(value, len);
	if (rv == CKR_OK)
		rv = rhd_object_set(obj, CKA_VALUE, value, len);
	OPENSSL_cleanse(value, sizeof(value));
	return rv;
}

rhd_secret_value_t *rhd_secret_value_new(const rhd_object_t *obj)
{
	uint64_t type = 0;
	const rhd_attr_t *value = rhd_object_find(obj, CKA_VALUE);
	if (!rhd_object_ulong(obj, CKA_KEY_TYPE, &type) || !value ||
	    !rhd_secret_len_valid(type, value->len))
		return NULL;
	rhd_secret_value_t *s = calloc(1, sizeof(*s));
	if (!s || !(s->bytes = OPENSSL_secure_malloc(value->len))) {
		free(s);
		return NULL;
	}
	memcpy(s->bytes, value->value, value->len);
	s->len = value->len;
	s->key_type = type;
	return s;
}

void rhd_secret_value_free(rhd_secret_value_t *s)
{
	if (!s)
		return;
	OPENSSL_secure_clear_free(s->bytes, s->len);
	free(s);
}

uint64_t rhd_secret_value_type(const rhd_secret_value_t *s)
{
	return s->key_type;
}

/* --- MACs ----------------------------------------------------------------- */

struct rhd_mac {
	EVP_MAC_CTX *ctx;
	size_t len;
};

static const char *hmac_digest(CK_MECHANISM_TYPE mech)
{
	switch (mech) {
	case CKM_SHA_1_HMAC:
		return "SHA1";
	case CKM_SHA256_HMAC:
		return "SHA2-256";
	case CKM_SHA384_HMAC:
		return "SHA2-384";
	case CKM_SHA512_HMAC:
		return "SHA2-512";
	default:
		return NULL;
	}
}

int rhd_mechanism_is_mac(CK_MECHANISM_TYPE mech)
{
	return hmac_digest(mech) != NULL || mech == CKM_AES_CMAC;
}

uint64_t rhd_mac_key_type(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_AES_CMAC ? CKK_AES : CKK_GENERIC_SECRET;
}

/* The MAC of mech keyed with s: its algorithm, and the parameter naming
 * its digest or cipher. */
static EVP_MAC_CTX *mac_ctx(const rhd_secret_value_t *s, CK_MECHANISM_TYPE mech)
{
	int cmac = mech == CKM_AES_CMAC;
	const char *what = cmac ? aes_cbc_name(s->len) : hmac_digest(mech);
	if (!what || s->key_type != rhd_mac_key_type(mech))
		return NULL;
	EVP_MAC *mac = EVP_MAC_fetch(NULL, cmac ? "CMAC" : "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac); /* the context holds its own reference */
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(cmac ? OSSL_MAC_PARAM_CIPHER
						      : OSSL_MAC_PARAM_DIGEST,
						 (char *)what, 0),
		OSSL_PARAM_construct_end()};
	if (ctx && EVP_MAC_init(ctx, s->bytes, s->len, params) == 1)
		return ctx;
	EVP_MAC_CTX_free(ctx);
	return NULL;
}

rhd_mac_t *rhd_secret_mac_new(const rhd_secret_value_t *s,
			      CK_MECHANISM_TYPE mech)
{
	rhd_mac_t *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->ctx = mac_ctx(s, mech);
	m->len = m->ctx ? EVP_MAC_CTX_get_mac_size(m->ctx) : 0;
	if (!m->ctx || !m->len || m->len > RHD_MAC_MAX_LEN) {
		rhd_mac_free(m);
		return NULL;
	}
	return m;
}

CK_RV rhd_mac_update(rhd_mac_t *m, const uint8_t *data, size_t len)
{
	return EVP_MAC_update(m->ctx, data, len) == 1 ? CKR_OK
						      : CKR_DEVICE_ERROR;
}

size_t rhd_mac_len(const rhd_mac_t *m)
{
	return m->len;
}

CK_RV rhd_mac_final(rhd_mac_t *m, uint8_t *out, size_t out_len)
{
	size_t n = 0;
	if (out_len < m->len || EVP_MAC_final(m->ctx, out, &n, out_len) != 1 ||
	    n != m->len)
		return CKR_DEVICE_ERROR;
	return CKR_OK;
}

CK_RV rhd_mac_verify(rhd_mac_t *m, const uint8_t *sig, size_t sig_len)
{
	if (sig_len != m->len)
		return CKR_SIGNATURE_LEN_RANGE;
	uint8_t mine[RHD_MAC_MAX_LEN];
	CK_RV rv = rhd_mac_final(m, mine, sizeof(mine));
	/* In constant time: how much of a forgery matched must not show. */
	if (rv == CKR_OK && CRYPTO_memcmp(mine, sig, m->len) != 0)
		rv = CKR_SIGNATURE_INVALID;
	OPENSSL_cleanse(mine, sizeof(mine));
	return rv;
}

void rhd_mac_free(rhd_mac_t *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->ctx);
	free(m);
}
