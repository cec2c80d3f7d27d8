/*
 * The crypto backend: OpenSSL EVP behind a small interface. With the store,
 * the only code that touches key material.
 */
#ifndef RHD_CRYPTO_H
#define RHD_CRYPTO_H

#include <openssl/evp.h>

#include "object.h"

/* The OpenSSL key of an EC key object (private when it has CKA_VALUE). */
EVP_PKEY *rhd_crypto_ec_key(const rhd_object_t *obj);

/* A new EC key pair on the curve named by params: CKA_EC_POINT on pub,
 * CKA_VALUE on priv (whose point rhd_object_prepare_create derives). */
CK_RV rhd_crypto_ec_generate(const rhd_attr_t *params, rhd_object_t *pub,
			     rhd_object_t *priv);

/* Raw r||s signature length of an EC key (64 for P-256). */
size_t rhd_crypto_ec_sig_len(const EVP_PKEY *key);

/* ECDSA over a hash: a raw r||s signature of sig_len bytes. */
CK_RV rhd_crypto_ecdsa_sign(EVP_PKEY *key, const uint8_t *hash, size_t hash_len,
			    uint8_t *sig, size_t sig_len);
CK_RV rhd_crypto_ecdsa_verify(EVP_PKEY *key, const uint8_t *hash,
			      size_t hash_len, const uint8_t *sig,
			      size_t sig_len);

/* The digest of a CKM_SHA* or CKM_ECDSA_SHA* mechanism; NULL otherwise. */
const EVP_MD *rhd_crypto_md(CK_MECHANISM_TYPE mech);

#endif
