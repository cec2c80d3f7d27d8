/* AES-256-GCM sealing and the scrypt PIN KDF. */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "rhs.h"

#define NONCE_LEN 12
#define TAG_LEN 16

const char *rhs_strerror(int err)
{
	switch (err) {
	case RHS_OK:
		return "success";
#define RHS_ERR_CASE(name, value, text)                                        \
	case name:                                                             \
		return text;
		RHS_ERRORS(RHS_ERR_CASE)
#undef RHS_ERR_CASE
	default:
		return "unknown store error";
	}
}

static int gcm(int encrypt, const uint8_t *key, const uint8_t *nonce,
	       const uint8_t *aad, size_t aad_len, const uint8_t *in,
	       size_t len, uint8_t *out, uint8_t *tag)
{
	if (len > INT32_MAX || aad_len > INT32_MAX)
		return RHS_EINVAL;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok = ctx != NULL;
	ok = ok && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce,
				     encrypt) == 1;
	ok = ok && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1;
	ok = ok && EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1;
	if (ok && !encrypt)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
					 tag) == 1;
	ok = ok && EVP_CipherFinal_ex(ctx, out + n, &n) == 1;
	if (ok && encrypt)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
					 tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok && !encrypt)
		OPENSSL_cleanse(out, len);
	return ok ? RHS_OK : (encrypt ? RHS_ENOMEM : RHS_ECORRUPT);
}

int rhs_seal(const uint8_t key[RHS_KEY_LEN], const uint8_t *aad, size_t aad_len,
	     const uint8_t *in, size_t len, uint8_t *out)
{
	if (RAND_bytes(out, NONCE_LEN) != 1)
		return RHS_EIO;
	return gcm(1, key, out, aad, aad_len, in, len, out + NONCE_LEN,
		   out + NONCE_LEN + len);
}

int rhs_unseal(const uint8_t key[RHS_KEY_LEN], const uint8_t *aad,
	       size_t aad_len, const uint8_t *in, size_t len, uint8_t *out)
{
	if (len < RHS_SEAL_OVERHEAD)
		return RHS_ECORRUPT;
	size_t body = len - RHS_SEAL_OVERHEAD;
	/* The tag is read from a copy: gcm() wants it writable. */
	uint8_t tag[TAG_LEN];
	for (size_t i = 0; i < TAG_LEN; i++)
		tag[i] = in[NONCE_LEN + body + i];
	return gcm(0, key, in, aad, aad_len, in + NONCE_LEN, body, out, tag);
}

int rhs_kdf(const rhs_kdf_params_t *params, const uint8_t *pin, size_t pin_len,
	    uint8_t kek[RHS_KEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	if (!ctx)
		return RHS_ENOMEM;
	uint64_t n = params->n;
	uint32_t r = params->r, p = params->p;
	OSSL_PARAM list[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
						  (void *)pin, pin_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						  (void *)params->salt,
						  sizeof(params->salt)),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM,
					    &(uint64_t){1ull << 30}),
		OSSL_PARAM_construct_end(),
	};
	int ok = EVP_KDF_derive(ctx, kek, RHS_KEY_LEN, list) == 1;
	EVP_KDF_CTX_free(ctx);
	return ok ? RHS_OK : RHS_EINVAL;
}
