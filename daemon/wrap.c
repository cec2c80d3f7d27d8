#include "wrap.h"

#include <string.h>

#include "object_template.h"
#include "ops.h"
#include "rh_secret.h"

static int is_aes_wrap(CK_MECHANISM_TYPE type)
{
	return type == CKM_AES_KEY_WRAP || type == CKM_AES_KEY_WRAP_KWP;
}

CK_RV rhd_wrap_mech(const Remhsm__Mechanism *m, rhd_wrap_mech_t *out)
{
	memset(out, 0, sizeof(*out));
	if (!m)
		return CKR_ARGUMENTS_BAD;
	out->type = m->type;
	if (m->type == CKM_RSA_PKCS_OAEP)
		return rhd_oaep_params(m, &out->oaep);
	if (!is_aes_wrap(m->type))
		return CKR_MECHANISM_INVALID;
	if (m->parameter_case == REMHSM__MECHANISM__PARAMETER__NOT_SET)
		return CKR_OK;
	if (m->parameter_case != REMHSM__MECHANISM__PARAMETER_RAW)
		return CKR_MECHANISM_PARAM_INVALID;
	size_t want = m->type == CKM_AES_KEY_WRAP ? 8 : 4;
	if (m->raw.len && m->raw.len != want)
		return CKR_MECHANISM_PARAM_INVALID;
	out->iv = m->raw.data;
	out->iv_len = m->raw.len;
	return CKR_OK;
}

/* CKA_ALLOWED_MECHANISMS, when the key has it, names mech. */
static int allows(const rhd_object_t *key, CK_MECHANISM_TYPE mech)
{
	const rhd_attr_t *a = rhd_object_find(key, CKA_ALLOWED_MECHANISMS);
	if (!a)
		return 1;
	for (size_t i = 0; i + 8 <= a->len; i += 8) {
		uint64_t v = 0;
		for (size_t b = 8; b-- > 0;)
			v = v << 8 | a->value[i + b];
		if (v == mech)
			return 1;
	}
	return 0;
}

/* The key the mechanism takes, with the use it is put to: an AES secret
 * key for AES key wrap, an RSA public key to wrap with OAEP and a private
 * one to unwrap. */
static CK_RV wrapping_key_fits(const rhd_wrap_mech_t *m, const rhd_object_t *k,
			       int wrap)
{
	uint64_t cls = 0, type = 0, bits = 0;
	rhd_object_ulong(k, CKA_CLASS, &cls);
	rhd_object_ulong(k, CKA_KEY_TYPE, &type);
	int aes = is_aes_wrap(m->type);
	uint64_t want_cls = aes	   ? CKO_SECRET_KEY
			    : wrap ? CKO_PUBLIC_KEY
				   : CKO_PRIVATE_KEY;
	if (cls != want_cls || type != (aes ? CKK_AES : CKK_RSA))
		return wrap ? CKR_WRAPPING_KEY_TYPE_INCONSISTENT
			    : CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
	if (!rhd_object_bool(k, wrap ? CKA_WRAP : CKA_UNWRAP, 0) ||
	    rhd_object_roles_valid(k) != CKR_OK)
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	if (!allows(k, m->type))
		return CKR_MECHANISM_INVALID;
	if (!aes && (!rhd_object_ulong(k, CKA_MODULUS_BITS, &bits) ||
		     bits < rhd_rsa_min_bits()))
		return wrap ? CKR_WRAPPING_KEY_SIZE_RANGE
			    : CKR_UNWRAPPING_KEY_SIZE_RANGE;
	return CKR_OK;
}

/* A key's security strength in bits (NIST SP 800-57 part 1, table 2):
 * what it takes to break it, whatever its kind. */
static unsigned strength(const rhd_object_t *k)
{
	uint64_t type = 0, n = 0;
	rhd_object_ulong(k, CKA_KEY_TYPE, &type);
	if (type == CKK_RSA) {
		rhd_object_ulong(k, CKA_MODULUS_BITS, &n);
		return n >= 15360  ? 256
		       : n >= 7680 ? 192
		       : n >= 3072 ? 128
		       : n >= 2048 ? 112
				   : 80;
	}
	if (type == CKK_EC_EDWARDS)
		return 128; /* Ed25519, RFC 8032 */
	if (type == CKK_EC) {
		const uint8_t *pt;
		size_t len;
		if (rhd_ec_point(rhd_object_find(k, CKA_EC_POINT), &pt, &len))
			return 0;
		n = (len - 1) / 2 * 8 / 2; /* half the field's bits */
	} else {
		rhd_object_ulong(k, CKA_VALUE_LEN, &n);
		n *= 8;
	}
	return n > 256 ? 256 : (unsigned)n;
}

/* Whether key may leave under wrapping at all. */
static CK_RV wrappable(const rhd_object_t *wrapping, const rhd_object_t *key)
{
	uint64_t cls = 0;
	rhd_object_ulong(key, CKA_CLASS, &cls);
	if (cls != CKO_SECRET_KEY && cls != CKO_PRIVATE_KEY)
		return CKR_KEY_NOT_WRAPPABLE;
	if (!rhd_object_bool(key, CKA_EXTRACTABLE, 0))
		return CKR_KEY_UNEXTRACTABLE;
	if (rhd_object_bool(key, CKA_WRAP_WITH_TRUSTED, 0) &&
	    !rhd_object_bool(wrapping, CKA_TRUSTED, 0))
		return CKR_KEY_NOT_WRAPPABLE;
	if (!rhd_template_admits(key, wrapping, CKA_WRAP_TEMPLATE))
		return CKR_KEY_NOT_WRAPPABLE;
	/* Broken, the weaker key would give the stronger away. */
	if (strength(wrapping) < strength(key))
		return CKR_WRAPPING_KEY_SIZE_RANGE;
	return CKR_OK;
}

/* What travels inside the wrap: the value, or PKCS#8. */
static CK_RV plaintext_of(const rhd_object_t *key, uint8_t *out, size_t cap,
			  size_t *len)
{
	uint64_t cls = 0;
	rhd_object_ulong(key, CKA_CLASS, &cls);
	if (cls == CKO_SECRET_KEY) {
		const rhd_attr_t *v = rhd_object_find(key, CKA_VALUE);
		if (!v || v->len > cap)
			return CKR_KEY_NOT_WRAPPABLE;
		memcpy(out, v->value, v->len);
		*len = v->len;
		return CKR_OK;
	}
	rhd_key_t *k = rhd_key_new(key);
	CK_RV rv = k ? rhd_key_pkcs8(k, out, cap, len)
		     : rhd_crypto_key_not_built();
	rhd_key_free(k);
	return rv;
}

/* Wraps or unwraps in with the built key w. */
static CK_RV run(const rhd_wrap_mech_t *m, rhd_key_t *w, int wrap,
		 const uint8_t *in, size_t in_len, uint8_t *out, size_t *len)
{
	if (is_aes_wrap(m->type))
		return rhd_key_aes_wrap(w, m->type == CKM_AES_KEY_WRAP_KWP,
					wrap, m->iv, m->iv_len, in, in_len, out,
					len);
	CK_RV rv = rhd_key_rsa_oaep(w, wrap, &m->oaep, in, in_len, out, len);
	if (rv == CKR_DATA_LEN_RANGE)
		return CKR_KEY_SIZE_RANGE;
	if (rv == CKR_ENCRYPTED_DATA_LEN_RANGE)
		return CKR_WRAPPED_KEY_LEN_RANGE;
	return rv == CKR_ENCRYPTED_DATA_INVALID ? CKR_WRAPPED_KEY_INVALID : rv;
}

CK_RV rhd_wrap(const rhd_wrap_mech_t *m, const rhd_object_t *wrapping,
	       const rhd_object_t *key, uint8_t *out, size_t *len)
{
	*len = 0;
	CK_RV rv = wrapping_key_fits(m, wrapping, 1);
	if (rv == CKR_OK)
		rv = wrappable(wrapping, key);
	if (rv != CKR_OK)
		return rv;
	uint8_t *plain = rh_secret_alloc(RHD_PKCS8_MAX);
	size_t plain_len = 0;
	rv = plain ? plaintext_of(key, plain, RHD_PKCS8_MAX, &plain_len)
		   : CKR_DEVICE_MEMORY;
	rhd_key_t *w = rv == CKR_OK ? rhd_key_new(wrapping) : NULL;
	if (rv == CKR_OK)
		rv = w ? run(m, w, 1, plain, plain_len, out, len)
		       : rhd_crypto_key_not_built();
	rhd_key_free(w);
	rh_secret_free(plain, RHD_PKCS8_MAX);
	return rv;
}

/* The material of key's class and type from the plaintext. */
static CK_RV material_from(rhd_object_t *key, const uint8_t *plain, size_t len)
{
	uint64_t cls = 0, type = 0;
	rhd_object_ulong(key, CKA_CLASS, &cls);
	rhd_object_ulong(key, CKA_KEY_TYPE, &type);
	if (cls == CKO_PRIVATE_KEY)
		return rhd_crypto_from_pkcs8(plain, len, type, key);
	if (!rhd_secret_len_valid(type, len))
		return CKR_WRAPPED_KEY_INVALID;
	return rhd_object_set(key, CKA_VALUE, plain, len);
}

CK_RV rhd_unwrap(const rhd_wrap_mech_t *m, const rhd_object_t *unwrapping,
		 const uint8_t *wrapped, size_t len, rhd_object_t *key)
{
	CK_RV rv = wrapping_key_fits(m, unwrapping, 0);
	if (rv != CKR_OK)
		return rv;
	/* A wrap does not say whether its key was sensitive: were one that
	 * was to come back readable, wrapping and unwrapping would read any
	 * extractable key. Unwrapped keys are sensitive. */
	if (!rhd_object_bool(key, CKA_SENSITIVE, 1))
		return CKR_TEMPLATE_INCONSISTENT;
	if (len > RHD_WRAP_MAX)
		return CKR_WRAPPED_KEY_LEN_RANGE;
	uint8_t *plain = rh_secret_alloc(RHD_WRAP_MAX);
	size_t plain_len = 0;
	rhd_key_t *w = plain ? rhd_key_new(unwrapping) : NULL;
	rv = !plain ? CKR_DEVICE_MEMORY
	     : w    ? run(m, w, 0, wrapped, len, plain, &plain_len)
		    : rhd_crypto_key_not_built();
	if (rv == CKR_OK)
		rv = material_from(key, plain, plain_len);
	rhd_key_free(w);
	rh_secret_free(plain, RHD_WRAP_MAX);
	return rv == CKR_OK ? rhd_object_prepare_create(key) : rv;
}
