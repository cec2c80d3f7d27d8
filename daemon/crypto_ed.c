/*
 * Ed25519 behind daemon/crypto.h (RFC 8032, PureEdDSA): CKK_EC_EDWARDS
 * keys, their generation and their signatures (CKM_EDDSA). A private key's
 * CKA_VALUE is its 32-byte seed; CKA_EC_POINT holds the 32-byte public key
 * as a DER OCTET STRING, as for the NIST curves.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

#include "crypto.h"
#include "crypto_ed.h"

/* The names of the curve a CKA_EC_PARAMS may give: RFC 8410's OID
 * (1.3.101.112), PKCS#11 3.0's PrintableString, and the OID GnuPG
 * registered (1.3.6.1.4.1.11591.15.1), which OpenSC's pkcs11-tool sends. */
static const uint8_t oid_rfc8410[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t name_pkcs11[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
				      'd',  's',  '2', '5', '5', '1', '9'};
static const uint8_t oid_gnupg[] = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x04,
				    0x01, 0xda, 0x47, 0x0f, 0x01};

static int same(const rhd_attr_t *a, const uint8_t *b, size_t len)
{
	return a->len == len && memcmp(a->value, b, len) == 0;
}

int rhd_ed_params_valid(const rhd_attr_t *params)
{
	return params && (same(params, oid_rfc8410, sizeof(oid_rfc8410)) ||
			  same(params, name_pkcs11, sizeof(name_pkcs11)) ||
			  same(params, oid_gnupg, sizeof(oid_gnupg)));
}

static CK_RV set_point(rhd_object_t *obj, const uint8_t pt[RHD_ED25519_LEN])
{
	uint8_t der[2 + RHD_ED25519_LEN];
	size_t len = rhd_ec_point_der(pt, RHD_ED25519_LEN, der);
	return rhd_object_set(obj, CKA_EC_POINT, der, len);
}

/* The 32 bytes of a key's raw part, private (its seed) or public. */
static int raw_part(const EVP_PKEY *key, int private_key,
		    uint8_t out[RHD_ED25519_LEN])
{
	size_t len = RHD_ED25519_LEN;
	int ok = private_key ? EVP_PKEY_get_raw_private_key(key, out, &len)
			     : EVP_PKEY_get_raw_public_key(key, out, &len);
	return ok == 1 && len == RHD_ED25519_LEN;
}

CK_RV rhd_crypto_ed_public(const rhd_attr_t *value, rhd_object_t *obj)
{
	if (value->len != RHD_ED25519_LEN)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
						     value->value, value->len);
	uint8_t pt[RHD_ED25519_LEN];
	CK_RV rv = key && raw_part(key, 0, pt) ? set_point(obj, pt)
					       : CKR_DEVICE_ERROR;
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rv;
}

CK_RV rhd_crypto_ed_generate(rhd_object_t *pub, rhd_object_t *priv)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	uint8_t pt[RHD_ED25519_LEN], seed[RHD_ED25519_LEN];
	CK_RV rv = CKR_DEVICE_ERROR;
	if (key && raw_part(key, 0, pt) && raw_part(key, 1, seed)) {
		rv = set_point(pub, pt);
		if (rv == CKR_OK)
			rv = rhd_object_set(priv, CKA_VALUE, seed,
					    sizeof(seed));
	}
	OPENSSL_cleanse(seed, sizeof(seed));
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rv;
}

/* OpenSSL keeps the seed of a raw private key in its secure heap. */
EVP_PKEY *rhd_ed_key(const rhd_object_t *obj)
{
	const rhd_attr_t *value = rhd_object_find(obj, CKA_VALUE);
	const uint8_t *pt;
	size_t len;
	EVP_PKEY *key = NULL;
	if (value && value->len == RHD_ED25519_LEN)
		key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
						   value->value, value->len);
	else if (!value &&
		 rhd_ec_point(rhd_object_find(obj, CKA_EC_POINT), &pt, &len) ==
			 0 &&
		 len == RHD_ED25519_LEN)
		key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pt,
						  len);
	ERR_clear_error();
	return key;
}

static EVP_MD_CTX *ed_ctx(EVP_PKEY *key, int sign)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && (sign ? EVP_DigestSignInit_ex(ctx, NULL, NULL, NULL,
						      NULL, key, NULL)
			      : EVP_DigestVerifyInit_ex(ctx, NULL, NULL, NULL,
							NULL, key, NULL)) == 1;
	if (ok)
		return ctx;
	EVP_MD_CTX_free(ctx);
	return NULL;
}

CK_RV rhd_ed_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t *sig,
		  size_t sig_len)
{
	EVP_MD_CTX *ctx = ed_ctx(key, 1);
	size_t out = sig_len;
	int ok = ctx && sig_len == RHD_ED25519_SIG_LEN &&
		 EVP_DigestSign(ctx, sig, &out, msg, len) == 1 &&
		 out == RHD_ED25519_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok ? CKR_OK : CKR_DEVICE_ERROR;
}

CK_RV rhd_ed_verify(EVP_PKEY *key, const uint8_t *msg, size_t len,
		    const uint8_t *sig, size_t sig_len)
{
	if (sig_len != RHD_ED25519_SIG_LEN)
		return CKR_SIGNATURE_LEN_RANGE;
	EVP_MD_CTX *ctx = ed_ctx(key, 0);
	int ok = ctx && EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok ? CKR_OK : CKR_SIGNATURE_INVALID;
}

CK_RV rhd_ed_parts(EVP_PKEY *key, rhd_object_t *obj)
{
	uint8_t seed[RHD_ED25519_LEN];
	CK_RV rv = raw_part(key, 1, seed)
			   ? rhd_object_set(obj, CKA_EC_PARAMS, oid_rfc8410,
					    sizeof(oid_rfc8410))
			   : CKR_WRAPPED_KEY_INVALID;
	if (rv == CKR_OK)
		rv = rhd_object_set(obj, CKA_VALUE, seed, sizeof(seed));
	OPENSSL_cleanse(seed, sizeof(seed));
	return rv;
}
