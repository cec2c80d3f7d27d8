/* Between crypto.c and crypto_secret.c: a secret key's value as the key
 * cache holds it. Nothing else includes this. */
#ifndef RHD_CRYPTO_SECRET_H
#define RHD_CRYPTO_SECRET_H

#include "crypto.h"

typedef struct rhd_secret_value rhd_secret_value_t;

/* A copy of a secret key object's value in the secure heap; NULL when the
 * object holds no value of a served length, or memory ran out. */
rhd_secret_value_t *rhd_secret_value_new(const rhd_object_t *obj);
void rhd_secret_value_free(rhd_secret_value_t *s);
uint64_t rhd_secret_value_type(const rhd_secret_value_t *s);
rhd_mac_t *rhd_secret_mac_new(const rhd_secret_value_t *s,
			      CK_MECHANISM_TYPE mech);
CK_RV rhd_secret_cipher_new(const rhd_secret_value_t *s,
			    const rhd_cipher_params_t *p, int encrypt,
			    rhd_cipher_t **out);
/* rhd_key_aes_wrap's work, with the value of an AES key. */
/* rhd_key_hkdf's work with s as the input keying material and the digest
 * OpenSSL names; lengths are checked already. */
CK_RV rhd_secret_hkdf(const rhd_secret_value_t *s, const char *digest,
		      const rhd_hkdf_t *p, uint8_t *out, size_t len);
CK_RV rhd_secret_aes_wrap(const rhd_secret_value_t *s, int pad, int wrap,
			  const uint8_t *iv, size_t iv_len, const uint8_t *in,
			  size_t in_len, uint8_t *out, size_t *out_len);

#endif
