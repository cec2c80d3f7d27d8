/* Between crypto.c and crypto_ed.c: Ed25519 keys as OpenSSL holds them.
 * Nothing else includes this. */
#ifndef RHD_CRYPTO_ED_H
#define RHD_CRYPTO_ED_H

#include <openssl/types.h>

#include "crypto.h"

/* The key of an Ed25519 object: its seed (CKA_VALUE) for a private key,
 * its point for a public one; NULL when it holds neither. */
EVP_PKEY *rhd_ed_key(const rhd_object_t *obj);
/* PureEdDSA over the whole message; sig_len must be RHD_ED25519_SIG_LEN. */
CK_RV rhd_ed_sign(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t *sig,
		  size_t sig_len);
CK_RV rhd_ed_verify(EVP_PKEY *key, const uint8_t *msg, size_t len,
		    const uint8_t *sig, size_t sig_len);
/* CKA_EC_PARAMS (RFC 8410's OID) and CKA_VALUE of a key from PKCS#8. */
CK_RV rhd_ed_parts(EVP_PKEY *key, rhd_object_t *obj);

#endif
