/*
 * What C_CreateObject accepts, per class: allowed attributes, the token's
 * defaults, read-only attributes, and validation of imported material
 * (certificates parse; EC points lie on the curve; EC scalars are in range;
 * secret values have a served length and their check value).
 */
#include <string.h>

#include "crypto.h"
#include "object.h"

/* Ends the lists below: CKA_CLASS is 0, so 0 cannot. */
#define END UINT64_MAX

static const uint64_t common_attrs[] = {
	CKA_CLASS, CKA_TOKEN,	 CKA_PRIVATE,	  CKA_MODIFIABLE,
	CKA_LABEL, CKA_COPYABLE, CKA_DESTROYABLE, END};
static const uint64_t data_attrs[] = {CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE,
				      END};
static const uint64_t cert_attrs[] = {CKA_CERTIFICATE_TYPE,
				      CKA_TRUSTED,
				      CKA_CERTIFICATE_CATEGORY,
				      CKA_CHECK_VALUE,
				      CKA_START_DATE,
				      CKA_END_DATE,
				      CKA_PUBLIC_KEY_INFO,
				      CKA_SUBJECT,
				      CKA_ID,
				      CKA_ISSUER,
				      CKA_SERIAL_NUMBER,
				      CKA_VALUE,
				      CKA_URL,
				      CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
				      CKA_HASH_OF_ISSUER_PUBLIC_KEY,
				      CKA_JAVA_MIDP_SECURITY_DOMAIN,
				      CKA_NAME_HASH_ALGORITHM,
				      END};
static const uint64_t key_attrs[] = {
	CKA_KEY_TYPE,	     CKA_ID,
	CKA_START_DATE,	     CKA_END_DATE,
	CKA_DERIVE,	     CKA_SUBJECT,
	CKA_PUBLIC_KEY_INFO, CKA_ALLOWED_MECHANISMS,
	CKA_DERIVE_TEMPLATE, END};
static const uint64_t public_attrs[] = {
	CKA_ENCRYPT, CKA_VERIFY,  CKA_VERIFY_RECOVER,
	CKA_WRAP,    CKA_TRUSTED, CKA_WRAP_TEMPLATE,
	END};
static const uint64_t private_attrs[] = {CKA_SENSITIVE,
					 CKA_DECRYPT,
					 CKA_SIGN,
					 CKA_SIGN_RECOVER,
					 CKA_UNWRAP,
					 CKA_EXTRACTABLE,
					 CKA_WRAP_WITH_TRUSTED,
					 CKA_ALWAYS_AUTHENTICATE,
					 CKA_UNWRAP_TEMPLATE,
					 END};
static const uint64_t ec_public_attrs[] = {CKA_EC_PARAMS, CKA_EC_POINT, END};
static const uint64_t ec_private_attrs[] = {CKA_EC_PARAMS, CKA_VALUE, END};
static const uint64_t rsa_public_attrs[] = {CKA_MODULUS, CKA_PUBLIC_EXPONENT,
					    CKA_MODULUS_BITS, END};
static const uint64_t rsa_private_attrs[] = {
	CKA_MODULUS,	CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT,
	CKA_PRIME_1,	CKA_PRIME_2,	     CKA_EXPONENT_1,
	CKA_EXPONENT_2, CKA_COEFFICIENT,     END};
static const uint64_t secret_attrs[] = {CKA_SENSITIVE,
					CKA_ENCRYPT,
					CKA_DECRYPT,
					CKA_SIGN,
					CKA_VERIFY,
					CKA_WRAP,
					CKA_UNWRAP,
					CKA_EXTRACTABLE,
					CKA_VALUE,
					CKA_VALUE_LEN,
					CKA_WRAP_WITH_TRUSTED,
					CKA_TRUSTED,
					CKA_CHECK_VALUE,
					CKA_WRAP_TEMPLATE,
					CKA_UNWRAP_TEMPLATE,
					END};
/* Set by the token: a template may not name them. */
static const uint64_t token_set_attrs[] = {CKA_LOCAL, CKA_KEY_GEN_MECHANISM,
					   CKA_ALWAYS_SENSITIVE,
					   CKA_NEVER_EXTRACTABLE, END};

static int legacy;

void rhd_policy_allow_legacy(int on)
{
	legacy = on;
}

int rhd_legacy_allowed(void)
{
	return legacy;
}

static int pkcs1_encryption;

void rhd_policy_allow_pkcs1_encryption(int on)
{
	pkcs1_encryption = on;
}

int rhd_pkcs1_encryption_allowed(void)
{
	return pkcs1_encryption;
}

unsigned rhd_rsa_min_bits(void)
{
	return legacy ? RHD_RSA_LEGACY_MIN_BITS : RHD_RSA_MIN_BITS;
}

static int listed(const uint64_t *list, uint64_t type)
{
	for (; *list != END; list++)
		if (*list == type)
			return 1;
	return 0;
}

static int in_any(const uint64_t *const *lists, uint64_t type)
{
	for (; *lists; lists++)
		if (listed(*lists, type))
			return 1;
	return 0;
}

/* Every attribute of obj must belong to its class; the token sets some. */
static CK_RV check_allowed(const rhd_object_t *obj,
			   const uint64_t *const *lists)
{
	for (size_t i = 0; i < obj->count; i++) {
		uint64_t type = obj->attrs[i].type;
		if (listed(token_set_attrs, type))
			return CKR_ATTRIBUTE_READ_ONLY;
		if (!in_any(lists, type))
			return CKR_ATTRIBUTE_TYPE_INVALID;
	}
	return CKR_OK;
}

typedef struct dflt {
	uint64_t type;
	int kind; /* 0: bool, 1: ulong, 2: empty bytes */
	uint64_t value;
} dflt_t;

static CK_RV fill_defaults(rhd_object_t *obj, const dflt_t *d, size_t n)
{
	CK_RV rv = CKR_OK;
	for (size_t i = 0; i < n && rv == CKR_OK; i++) {
		if (rhd_object_find(obj, d[i].type))
			continue;
		if (d[i].kind == 0)
			rv = rhd_object_set_bool(obj, d[i].type,
						 (int)d[i].value);
		else if (d[i].kind == 1)
			rv = rhd_object_set_ulong(obj, d[i].type, d[i].value);
		else
			rv = rhd_object_set(obj, d[i].type, "", 0);
	}
	return rv;
}

static const dflt_t storage_defaults[] = {
	{CKA_TOKEN, 0, CK_FALSE},   {CKA_MODIFIABLE, 0, CK_TRUE},
	{CKA_COPYABLE, 0, CK_TRUE}, {CKA_DESTROYABLE, 0, CK_TRUE},
	{CKA_LABEL, 2, 0},
};

/* --- certificates -----------------------------------------------------------
 */

static CK_RV prepare_certificate(rhd_object_t *obj)
{
	static const uint64_t *const lists[] = {common_attrs, cert_attrs, NULL};
	CK_RV rv = check_allowed(obj, lists);
	if (rv != CKR_OK)
		return rv;
	uint64_t type;
	const rhd_attr_t *value = rhd_object_find(obj, CKA_VALUE);
	if (!rhd_object_ulong(obj, CKA_CERTIFICATE_TYPE, &type) || !value)
		return CKR_TEMPLATE_INCOMPLETE;
	if (type != CKC_X_509)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	rv = rhd_crypto_certificate_fields(value, obj);
	static const dflt_t d[] = {{CKA_PRIVATE, 0, CK_FALSE},
				   {CKA_TRUSTED, 0, CK_FALSE},
				   {CKA_CERTIFICATE_CATEGORY, 1, 0},
				   {CKA_ID, 2, 0}};
	if (rv == CKR_OK)
		rv = fill_defaults(obj, d, sizeof(d) / sizeof(d[0]));
	return rv;
}

/* --- data
 * ---------------------------------------------------------------------- */

static CK_RV prepare_data(rhd_object_t *obj)
{
	static const uint64_t *const lists[] = {common_attrs, data_attrs, NULL};
	CK_RV rv = check_allowed(obj, lists);
	static const dflt_t d[] = {{CKA_PRIVATE, 0, CK_FALSE},
				   {CKA_APPLICATION, 2, 0},
				   {CKA_OBJECT_ID, 2, 0},
				   {CKA_VALUE, 2, 0}};
	return rv == CKR_OK ? fill_defaults(obj, d, sizeof(d) / sizeof(d[0]))
			    : rv;
}

/* --- EC keys
 * ------------------------------------------------------------------- */

int rhd_ec_point(const rhd_attr_t *a, const uint8_t **pt, size_t *len)
{
	if (!a || a->len < 3 || a->value[0] != 0x04)
		return -1;
	/* DER: the short form below 128 bytes, one length byte (0x81) from
	 * 128 to 255; anything else is not the one encoding. */
	size_t hdr = a->value[1] < 0x80 ? 2 : a->value[1] == 0x81 ? 3 : 0;
	if (!hdr || a->len <= hdr)
		return -1;
	size_t body = hdr == 2 ? a->value[1] : a->value[2];
	if (body != a->len - hdr || body > RHD_EC_MAX_POINT ||
	    (hdr == 3 && body < 0x80))
		return -1;
	*pt = a->value + hdr;
	*len = body;
	return 0;
}

static CK_RV check_point(int nid, const rhd_attr_t *a)
{
	const unsigned char *pt;
	size_t len;
	if (rhd_ec_point(a, &pt, &len) < 0 || pt[0] != 0x04)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	return rhd_crypto_ec_point_valid(nid, pt, len)
		       ? CKR_OK
		       : CKR_ATTRIBUTE_VALUE_INVALID;
}

size_t rhd_ec_point_der(const uint8_t *pt, size_t len, uint8_t *der)
{
	if (len > RHD_EC_MAX_POINT)
		return 0;
	size_t hdr = len < 0x80 ? 2 : 3;
	der[0] = 0x04;
	if (hdr == 3)
		der[1] = 0x81;
	der[hdr - 1] = (uint8_t)len;
	memcpy(der + hdr, pt, len);
	return hdr + len;
}

/* d must satisfy 0 < d < order; sets CKA_EC_POINT to d·G. */
static CK_RV derive_point(rhd_object_t *obj, int nid, const rhd_attr_t *value)
{
	uint8_t pt[RHD_EC_MAX_POINT], der[3 + RHD_EC_MAX_POINT];
	size_t len = 0;
	CK_RV rv = rhd_crypto_ec_public_point(nid, value, pt, sizeof(pt), &len);
	size_t der_len = rv == CKR_OK ? rhd_ec_point_der(pt, len, der) : 0;
	if (rv != CKR_OK)
		return rv;
	return der_len ? rhd_object_set(obj, CKA_EC_POINT, der, der_len)
		       : CKR_ATTRIBUTE_VALUE_INVALID;
}

/* An Ed25519 point is 32 bytes, which no check can tell from another's:
 * RFC 8032 decodes it only when a signature is verified. */
static CK_RV prepare_ed(rhd_object_t *obj, const rhd_attr_t *params,
			const rhd_attr_t *key, int private_key)
{
	if (!rhd_ed_params_valid(params))
		return CKR_CURVE_NOT_SUPPORTED;
	if (private_key)
		return rhd_crypto_ed_public(key, obj);
	const uint8_t *pt;
	size_t len;
	return rhd_ec_point(key, &pt, &len) == 0 && len == RHD_ED25519_LEN
		       ? CKR_OK
		       : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV prepare_ec(rhd_object_t *obj, int private_key, int edwards)
{
	const rhd_attr_t *params = rhd_object_find(obj, CKA_EC_PARAMS);
	const rhd_attr_t *key =
		rhd_object_find(obj, private_key ? CKA_VALUE : CKA_EC_POINT);
	if (!params || !key)
		return CKR_TEMPLATE_INCOMPLETE;
	if (edwards)
		return prepare_ed(obj, params, key, private_key);
	int nid = rhd_ec_curve(params);
	if (!nid)
		return CKR_CURVE_NOT_SUPPORTED;
	return private_key ? derive_point(obj, nid, key)
			   : check_point(nid, key);
}

/* --- keys
 * ---------------------------------------------------------------------- */

static const dflt_t key_defaults[] = {
	{CKA_ID, 2, 0},
	{CKA_DERIVE, 0, CK_FALSE},
	{CKA_LOCAL, 0, CK_FALSE},
	{CKA_KEY_GEN_MECHANISM, 1, CK_UNAVAILABLE_INFORMATION},
	{CKA_SUBJECT, 2, 0},
};

/* RSA: every part present, consistent, and of a served size; the token
 * records CKA_MODULUS_BITS. */
static CK_RV prepare_rsa(rhd_object_t *obj, int private_key)
{
	const uint64_t *need =
		private_key ? rsa_private_attrs : rsa_public_attrs;
	for (size_t i = 0; need[i] != END; i++)
		if (need[i] != CKA_MODULUS_BITS &&
		    !rhd_object_find(obj, need[i]))
			return CKR_TEMPLATE_INCOMPLETE;
	unsigned bits = 0;
	if (!rhd_crypto_rsa_check(obj, private_key, &bits) ||
	    bits < rhd_rsa_min_bits() || bits > RHD_RSA_MAX_BITS)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	return rhd_object_set_ulong(obj, CKA_MODULUS_BITS, (uint64_t)bits);
}

static CK_RV prepare_key(rhd_object_t *obj, int private_key)
{
	uint64_t key_type;
	if (!rhd_object_ulong(obj, CKA_KEY_TYPE, &key_type))
		return CKR_TEMPLATE_INCOMPLETE;
	if (key_type != CKK_EC && key_type != CKK_RSA &&
	    key_type != CKK_EC_EDWARDS)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	int rsa = key_type == CKK_RSA;
	const uint64_t *pub_key = rsa ? rsa_public_attrs : ec_public_attrs;
	const uint64_t *priv_key = rsa ? rsa_private_attrs : ec_private_attrs;
	const uint64_t *const pub_lists[] = {common_attrs, key_attrs,
					     public_attrs, pub_key, NULL};
	const uint64_t *const priv_lists[] = {common_attrs, key_attrs,
					      private_attrs, priv_key, NULL};
	CK_RV rv = check_allowed(obj, private_key ? priv_lists : pub_lists);
	if (rv == CKR_OK)
		rv = rsa ? prepare_rsa(obj, private_key)
			 : prepare_ec(obj, private_key,
				      key_type == CKK_EC_EDWARDS);
	if (rv == CKR_OK)
		rv = fill_defaults(obj, key_defaults,
				   sizeof(key_defaults) /
					   sizeof(key_defaults[0]));
	static const dflt_t pub[] = {
		{CKA_PRIVATE, 0, CK_FALSE}, {CKA_ENCRYPT, 0, CK_FALSE},
		{CKA_VERIFY, 0, CK_TRUE},   {CKA_VERIFY_RECOVER, 0, CK_FALSE},
		{CKA_WRAP, 0, CK_FALSE},    {CKA_TRUSTED, 0, CK_FALSE},
	};
	/* A silent template gets the safe answer: private, sensitive, not
	 * extractable. Imported keys were never "always" sensitive. */
	static const dflt_t priv[] = {
		{CKA_PRIVATE, 0, CK_TRUE},
		{CKA_SENSITIVE, 0, CK_TRUE},
		{CKA_EXTRACTABLE, 0, CK_FALSE},
		{CKA_SIGN, 0, CK_TRUE},
		{CKA_DECRYPT, 0, CK_FALSE},
		{CKA_SIGN_RECOVER, 0, CK_FALSE},
		{CKA_UNWRAP, 0, CK_FALSE},
		{CKA_WRAP_WITH_TRUSTED, 0, CK_FALSE},
		{CKA_ALWAYS_AUTHENTICATE, 0, CK_FALSE},
		{CKA_ALWAYS_SENSITIVE, 0, CK_FALSE},
		{CKA_NEVER_EXTRACTABLE, 0, CK_FALSE},
	};
	if (rv == CKR_OK)
		rv = private_key ? fill_defaults(obj, priv,
						 sizeof(priv) / sizeof(priv[0]))
				 : fill_defaults(obj, pub,
						 sizeof(pub) / sizeof(pub[0]));
	return rv;
}

/* --- secret keys
 * -------------------------------------------------------------- */

/* CKA_VALUE_LEN and CKA_CHECK_VALUE from the value: a template may name
 * them only as they are (an empty check value: the caller wants none). */
static CK_RV secret_derived(rhd_object_t *obj, uint64_t key_type,
			    const rhd_attr_t *value)
{
	uint64_t len;
	if (rhd_object_ulong(obj, CKA_VALUE_LEN, &len) && len != value->len)
		return CKR_TEMPLATE_INCONSISTENT;
	uint8_t check[RHD_CHECK_VALUE_LEN];
	CK_RV rv = rhd_crypto_check_value(key_type, value->value, value->len,
					  check);
	const rhd_attr_t *given = rhd_object_find(obj, CKA_CHECK_VALUE);
	if (rv == CKR_OK && given && given->len &&
	    (given->len != sizeof(check) ||
	     memcmp(given->value, check, sizeof(check)) != 0))
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
	/* Setting an attribute may move them all: value is read before. */
	size_t value_len = value->len;
	if (rv == CKR_OK && !given)
		rv = rhd_object_set(obj, CKA_CHECK_VALUE, check, sizeof(check));
	if (rv == CKR_OK)
		rv = rhd_object_set_ulong(obj, CKA_VALUE_LEN, value_len);
	return rv;
}

static CK_RV prepare_secret(rhd_object_t *obj)
{
	static const uint64_t *const lists[] = {common_attrs, key_attrs,
						secret_attrs, NULL};
	uint64_t key_type;
	if (!rhd_object_ulong(obj, CKA_KEY_TYPE, &key_type))
		return CKR_TEMPLATE_INCOMPLETE;
	if (key_type != CKK_AES && key_type != CKK_GENERIC_SECRET)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	CK_RV rv = check_allowed(obj, lists);
	const rhd_attr_t *value = rhd_object_find(obj, CKA_VALUE);
	if (rv == CKR_OK && !value)
		return CKR_TEMPLATE_INCOMPLETE;
	if (rv == CKR_OK && !rhd_secret_len_valid(key_type, value->len))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (rv == CKR_OK)
		rv = secret_derived(obj, key_type, value);
	if (rv == CKR_OK)
		rv = fill_defaults(obj, key_defaults,
				   sizeof(key_defaults) /
					   sizeof(key_defaults[0]));
	/* A wrapping key decrypts nothing, an unwrapping key encrypts
	 * nothing, unless the template says so (and rhd_object_roles_valid
	 * then refuses it). */
	if (rv == CKR_OK && rhd_object_bool(obj, CKA_WRAP, 0) &&
	    !rhd_object_find(obj, CKA_DECRYPT))
		rv = rhd_object_set_bool(obj, CKA_DECRYPT, 0);
	if (rv == CKR_OK && rhd_object_bool(obj, CKA_UNWRAP, 0) &&
	    !rhd_object_find(obj, CKA_ENCRYPT))
		rv = rhd_object_set_bool(obj, CKA_ENCRYPT, 0);
	/* As private keys: private, sensitive, not extractable; usable for
	 * what its type does, but wrapping only when asked for. */
	static const dflt_t d[] = {
		{CKA_PRIVATE, 0, CK_TRUE},
		{CKA_SENSITIVE, 0, CK_TRUE},
		{CKA_EXTRACTABLE, 0, CK_FALSE},
		{CKA_ENCRYPT, 0, CK_TRUE},
		{CKA_DECRYPT, 0, CK_TRUE},
		{CKA_SIGN, 0, CK_TRUE},
		{CKA_VERIFY, 0, CK_TRUE},
		{CKA_WRAP, 0, CK_FALSE},
		{CKA_UNWRAP, 0, CK_FALSE},
		{CKA_WRAP_WITH_TRUSTED, 0, CK_FALSE},
		{CKA_TRUSTED, 0, CK_FALSE},
		{CKA_ALWAYS_SENSITIVE, 0, CK_FALSE},
		{CKA_NEVER_EXTRACTABLE, 0, CK_FALSE},
	};
	return rv == CKR_OK ? fill_defaults(obj, d, sizeof(d) / sizeof(d[0]))
			    : rv;
}

CK_RV rhd_object_prepare_create(rhd_object_t *obj)
{
	uint64_t cls;
	if (!rhd_object_ulong(obj, CKA_CLASS, &cls))
		return CKR_TEMPLATE_INCOMPLETE;
	CK_RV rv;
	switch (cls) {
	case CKO_DATA:
		rv = prepare_data(obj);
		break;
	case CKO_CERTIFICATE:
		rv = prepare_certificate(obj);
		break;
	case CKO_PUBLIC_KEY:
		rv = prepare_key(obj, 0);
		break;
	case CKO_PRIVATE_KEY:
		rv = prepare_key(obj, 1);
		break;
	case CKO_SECRET_KEY:
		rv = prepare_secret(obj);
		break;
	default:
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	if (rv == CKR_OK)
		rv = rhd_object_roles_valid(obj);
	return rv == CKR_OK ? fill_defaults(obj, storage_defaults,
					    sizeof(storage_defaults) /
						    sizeof(storage_defaults[0]))
			    : rv;
}

/* AES key wrap is AES itself, block by block: a key that wraps and
 * decrypts would open its own wraps with C_Decrypt, one that unwraps and
 * encrypts would make a wrap of a value the caller knows and take it in
 * as a secret key; an RSA key that unwraps and decrypts would hand out
 * what it unwrapped. Such roles never meet in one AES or private key. A
 * generic secret has neither role under any mechanism served (both take
 * AES keys), so its flags bind nothing: OpenSC's pkcs11-tool sets them
 * all on the keys it derives. */
CK_RV rhd_object_roles_valid(const rhd_object_t *obj)
{
	uint64_t cls = 0, type = 0;
	rhd_object_ulong(obj, CKA_CLASS, &cls);
	rhd_object_ulong(obj, CKA_KEY_TYPE, &type);
	if (cls == CKO_SECRET_KEY && type != CKK_AES)
		return CKR_OK;
	int wrap = rhd_object_bool(obj, CKA_WRAP, 0);
	int unwrap = rhd_object_bool(obj, CKA_UNWRAP, 0);
	int encrypt = rhd_object_bool(obj, CKA_ENCRYPT, 0);
	int decrypt = rhd_object_bool(obj, CKA_DECRYPT, 0);
	if (cls == CKO_SECRET_KEY && ((wrap && decrypt) || (unwrap && encrypt)))
		return CKR_TEMPLATE_INCONSISTENT;
	if (cls == CKO_PRIVATE_KEY && unwrap && decrypt)
		return CKR_TEMPLATE_INCONSISTENT;
	return CKR_OK;
}

/* Fixed once the object exists: what it is, its key material, and the
 * templates that bound what it wraps and unwraps (a policy a user could
 * loosen later would bound nothing). */
static const uint64_t fixed_attrs[] = {
	CKA_CLASS,	     CKA_KEY_TYPE,	   CKA_CERTIFICATE_TYPE,
	CKA_EC_PARAMS,	     CKA_EC_POINT,	   CKA_MODULUS,
	CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
	CKA_PRIME_2,	     CKA_EXPONENT_1,	   CKA_EXPONENT_2,
	CKA_COEFFICIENT,     CKA_COPYABLE,	   CKA_DESTROYABLE,
	CKA_MODULUS_BITS,    CKA_VALUE_LEN,	   CKA_WRAP_TEMPLATE,
	CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE,  END};
/* Set when the object is made: a copy may choose them, a change may not. */
static const uint64_t copy_only_attrs[] = {CKA_TOKEN, CKA_PRIVATE,
					   CKA_MODIFIABLE, END};

/* The lists of attributes obj's class allows. */
static const uint64_t *const *class_lists(const rhd_object_t *obj)
{
	static const uint64_t *const data[] = {common_attrs, data_attrs, NULL};
	static const uint64_t *const cert[] = {common_attrs, cert_attrs, NULL};
	static const uint64_t *const pub[] = {common_attrs,	key_attrs,
					      public_attrs,	ec_public_attrs,
					      rsa_public_attrs, NULL};
	static const uint64_t *const priv[] = {
		common_attrs,	  key_attrs,	     private_attrs,
		ec_private_attrs, rsa_private_attrs, NULL};
	static const uint64_t *const secret[] = {common_attrs, key_attrs,
						 secret_attrs, NULL};
	uint64_t cls = 0;
	rhd_object_ulong(obj, CKA_CLASS, &cls);
	switch (cls) {
	case CKO_DATA:
		return data;
	case CKO_CERTIFICATE:
		return cert;
	case CKO_PUBLIC_KEY:
		return pub;
	case CKO_SECRET_KEY:
		return secret;
	default:
		return priv;
	}
}

static CK_RV check_one(const rhd_object_t *obj, const rhd_attr_t *a, int copy)
{
	uint64_t cls = 0;
	rhd_object_ulong(obj, CKA_CLASS, &cls);
	if (!in_any(class_lists(obj), a->type) &&
	    !listed(token_set_attrs, a->type))
		return CKR_ATTRIBUTE_TYPE_INVALID;
	/* A secret key's check value is its value's. */
	int value_fixed = (a->type == CKA_VALUE && cls != CKO_DATA) ||
			  (a->type == CKA_CHECK_VALUE && cls == CKO_SECRET_KEY);
	if (listed(token_set_attrs, a->type) || listed(fixed_attrs, a->type) ||
	    value_fixed || (!copy && listed(copy_only_attrs, a->type)))
		return CKR_ATTRIBUTE_READ_ONLY;
	int on = a->len == 1 && a->value[0];
	if (a->type == CKA_SENSITIVE && !on &&
	    rhd_object_bool(obj, CKA_SENSITIVE, 0))
		return CKR_ATTRIBUTE_READ_ONLY;
	if (a->type == CKA_EXTRACTABLE && on &&
	    !rhd_object_bool(obj, CKA_EXTRACTABLE, 1))
		return CKR_ATTRIBUTE_READ_ONLY;
	if (a->type == CKA_WRAP_WITH_TRUSTED && !on &&
	    rhd_object_bool(obj, CKA_WRAP_WITH_TRUSTED, 0))
		return CKR_ATTRIBUTE_READ_ONLY;
	return CKR_OK;
}

CK_RV rhd_object_check_change(const rhd_object_t *obj,
			      const rhd_object_t *changes, int copy)
{
	for (size_t i = 0; i < changes->count; i++) {
		CK_RV rv = check_one(obj, &changes->attrs[i], copy);
		if (rv != CKR_OK)
			return rv;
	}
	return CKR_OK;
}
