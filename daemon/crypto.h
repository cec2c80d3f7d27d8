/*
 * The crypto backend: OpenSSL EVP behind a small interface. With the store,
 * the only code that touches key material.
 */
#ifndef RHD_CRYPTO_H
#define RHD_CRYPTO_H

#include <openssl/evp.h>

#include "object.h"

/* OpenSSL's secure heap of size bytes (a power of two; 0: none). The
 * private keys OpenSSL builds live there, in pages locked in RAM and left
 * out of core dumps, wiped when freed. Answers 1 when it is set up and
 * locked, 2 when set up but not locked (RLIMIT_MEMLOCK), 0 when it could
 * not be set up. Called once, before any key is built. */
int rhd_crypto_secure_heap_init(size_t size);
/* Its size and the bytes in use now (both 0 without one). */
void rhd_crypto_secure_heap_usage(size_t *size, size_t *used);
/* Whether a key may be built for the cache: not while the secure heap is
 * down to the quarter kept for TLS handshakes and signatures. */
int rhd_crypto_key_room(void);
/* Why a key that passed every check was not built: CKR_DEVICE_MEMORY,
 * logged once until there is room again, when the secure heap is down to
 * that quarter; CKR_DEVICE_ERROR otherwise. */
CK_RV rhd_crypto_key_not_built(void);

/* The OpenSSL key of an EC key object (private when it has CKA_VALUE). */
EVP_PKEY *rhd_crypto_ec_key(const rhd_object_t *obj);

/* A new EC key pair on the curve named by params: CKA_EC_POINT on pub,
 * CKA_VALUE on priv (whose point rhd_object_prepare_create derives). */
CK_RV rhd_crypto_ec_generate(const rhd_attr_t *params, rhd_object_t *pub,
			     rhd_object_t *priv);

/* Raw r||s signature length of an EC key (64 for P-256). */
size_t rhd_crypto_ec_sig_len(const EVP_PKEY *key);

/* A context that signs with an EC private key, made once per key: each
 * operation signs with a copy of it (EVP_PKEY_CTX_dup), which costs no
 * lookup of the algorithm in OpenSSL's provider tables. NULL on failure. */
EVP_PKEY_CTX *rhd_crypto_ecdsa_signer(EVP_PKEY *key);

/* ECDSA over a hash: a raw r||s signature of sig_len bytes, with signer
 * (a copy of rhd_crypto_ecdsa_signer's, which the caller frees) or, when
 * it is NULL, a context made for key. */
CK_RV rhd_crypto_ecdsa_sign(EVP_PKEY *key, EVP_PKEY_CTX *signer,
			    const uint8_t *hash, size_t hash_len, uint8_t *sig,
			    size_t sig_len);
CK_RV rhd_crypto_ecdsa_verify(EVP_PKEY *key, const uint8_t *hash,
			      size_t hash_len, const uint8_t *sig,
			      size_t sig_len);

/* The OpenSSL key of an RSA key object (private with all CRT parts). */
EVP_PKEY *rhd_crypto_rsa_key(const rhd_object_t *obj);

/* A new RSA key pair: modulus and public exponent on both, the private
 * parts on priv. */
CK_RV rhd_crypto_rsa_generate(unsigned bits, const rhd_attr_t *exponent,
			      rhd_object_t *pub, rhd_object_t *priv);

/* How an RSA mechanism pads: PKCS#1 v1.5 (md NULL: the input is the
 * DigestInfo), PSS with its hash, MGF1 hash and salt, or none (X.509). */
typedef struct rhd_rsa_padding {
	int pad;
	const EVP_MD *md;
	const EVP_MD *mgf1;
	int salt_len;
} rhd_rsa_padding_t;

/* Signs (or, with verify, checks) the input of an RSA mechanism. */
CK_RV rhd_crypto_rsa_sign(EVP_PKEY *key, const rhd_rsa_padding_t *p,
			  const uint8_t *in, size_t in_len, uint8_t *sig,
			  size_t sig_len);
CK_RV rhd_crypto_rsa_verify(EVP_PKEY *key, const rhd_rsa_padding_t *p,
			    const uint8_t *in, size_t in_len,
			    const uint8_t *sig, size_t sig_len);

/* The digest of a CKM_SHA* or CKM_ECDSA_SHA* mechanism; NULL otherwise. */
const EVP_MD *rhd_crypto_md(CK_MECHANISM_TYPE mech);

#endif
