/*
 * C_WrapKey and C_UnwrapKey on objects read whole: the mechanism's
 * parameters, the specification's checks and those that keep the
 * published key-management attacks out (a key leaves only if extractable,
 * by a trusted key when it asks for one, never under a weaker key), and
 * the crypto behind daemon/crypto.h. No I/O, no lock.
 */
#ifndef RHD_WRAP_H
#define RHD_WRAP_H

#include "crypto.h"
#include "object.h"
#include "remhsm.pb-c.h"

/* CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_KWP (an IV, or none for the
 * default) or CKM_RSA_PKCS_OAEP; what they point to stays the request's. */
typedef struct rhd_wrap_mech {
	CK_MECHANISM_TYPE type;
	const uint8_t *iv;
	size_t iv_len;
	rhd_oaep_t oaep;
} rhd_wrap_mech_t;

/* CKR_MECHANISM_INVALID for a mechanism that does not wrap,
 * CKR_MECHANISM_PARAM_INVALID for parameters it does not take. */
CK_RV rhd_wrap_mech(const Remhsm__Mechanism *m, rhd_wrap_mech_t *out);

/* The most a wrap puts out: a PKCS#8 RSA key under KWP. */
#define RHD_WRAP_MAX (RHD_PKCS8_MAX + 16)

/* key (a secret key's value, a private key as PKCS#8) wrapped under
 * wrapping, into out (RHD_WRAP_MAX bytes), *len bytes. */
CK_RV rhd_wrap(const rhd_wrap_mech_t *m, const rhd_object_t *wrapping,
	       const rhd_object_t *key, uint8_t *out, size_t *len);

/* The key inside wrapped set on key, a template of CKO_SECRET_KEY or
 * CKO_PRIVATE_KEY with its CKA_KEY_TYPE, which is then prepared as
 * C_CreateObject prepares one: everything but the key material (its
 * uses above all) comes from the template, never from the blob; a
 * template that asks for a key that is not sensitive is refused
 * (CKR_TEMPLATE_INCONSISTENT). */
CK_RV rhd_unwrap(const rhd_wrap_mech_t *m, const rhd_object_t *unwrapping,
		 const uint8_t *wrapped, size_t len, rhd_object_t *key);

#endif
