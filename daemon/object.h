/*
 * Objects: a list of typed attributes, the per-class policy applied when
 * one is created, and the record that the store seals. No I/O.
 */
#ifndef RHD_OBJECT_H
#define RHD_OBJECT_H

#include <p11-kit/pkcs11.h>
#include <stddef.h>
#include <stdint.h>

#include "remhsm.pb-c.h"
#include "rh_attr.h"

/* The most entries a CKA_ALLOWED_MECHANISMS list may have. */
#define RHD_MAX_MECHANISMS 64

/* ULONG values are kept as uint64_t, BOOL as one byte, arrays of ULONG as
 * uint64_t[], everything else as bytes. */
typedef struct rhd_attr {
	uint64_t type;
	rh_attr_kind_t kind;
	uint8_t *value;
	size_t len;
} rhd_attr_t;

typedef struct rhd_object {
	rhd_attr_t *attrs;
	size_t count;
} rhd_object_t;

void rhd_object_cleanup(rhd_object_t *obj);

const rhd_attr_t *rhd_object_find(const rhd_object_t *obj, uint64_t type);
int rhd_object_ulong(const rhd_object_t *obj, uint64_t type, uint64_t *out);
/* CK_TRUE/CK_FALSE, or dflt when absent. */
int rhd_object_bool(const rhd_object_t *obj, uint64_t type, int dflt);
CK_RV rhd_object_set(rhd_object_t *obj, uint64_t type, const void *value,
		     size_t len);
CK_RV rhd_object_set_ulong(rhd_object_t *obj, uint64_t type, uint64_t v);
CK_RV rhd_object_set_bool(rhd_object_t *obj, uint64_t type, int v);

/* A template from the wire. Values must have their table's shape
 * (CKR_ATTRIBUTE_VALUE_INVALID); a type given twice with different values
 * is CKR_TEMPLATE_INCONSISTENT. */
CK_RV rhd_object_from_wire(Remhsm__Attribute *const *attrs, size_t n,
			   rhd_object_t *out);

/* 1 when every attribute of tmpl equals obj's. */
int rhd_object_matches(const rhd_object_t *obj, const rhd_object_t *tmpl);

/*
 * Checks a C_CreateObject template against its class's rules, fills the
 * token's defaults and the values derived from it (a certificate's subject,
 * issuer and serial; an EC private key's public point). Needs no I/O.
 */
CK_RV rhd_object_prepare_create(rhd_object_t *obj);

/* The key sizes the token serves, in bits, in one place: C_GetMechanismInfo
 * reports them, import and generation accept exactly them. RSA keys of up
 * to 8192 bits are imported and used; generation stops at 4096, which
 * already takes seconds. */
#define RHD_RSA_MIN_BITS 2048
#define RHD_RSA_LEGACY_MIN_BITS 1024 /* allow-legacy: see ops.h */
#define RHD_RSA_MAX_BITS 8192
#define RHD_RSA_GEN_MAX_BITS 4096
#define RHD_EC_MIN_BITS 256 /* P-256 */
#define RHD_EC_MAX_BITS 521 /* P-521 */
/* An uncompressed point on the largest curve served: 1 + 2 * 66 bytes. */
#define RHD_EC_MAX_POINT 133

/* allow-legacy, set once before any call: RSA keys from
 * RHD_RSA_LEGACY_MIN_BITS, SHA-1 in signatures (CKM_SHA1_RSA_PKCS,
 * CKM_SHA1_RSA_PKCS_PSS, CKM_ECDSA_SHA1) and CKM_RSA_X_509 signing are
 * served and listed (ops.c); without it they are not. */
void rhd_policy_allow_legacy(int on);
int rhd_legacy_allowed(void);
/* allow-rsa-pkcs1-encryption, set once before any call: CKM_RSA_PKCS for
 * C_Encrypt and C_Decrypt (its decryption is a padding oracle). */
void rhd_policy_allow_pkcs1_encryption(int on);
int rhd_pkcs1_encryption_allowed(void);
unsigned rhd_rsa_min_bits(void);

/* An uncompressed point as CKA_EC_POINT holds it, a DER OCTET STRING
 * (short length form below 128 bytes, 0x81 above) at der, which has room
 * for 3 + RHD_EC_MAX_POINT bytes; its length, 0 when the point is too
 * long. */
size_t rhd_ec_point_der(const uint8_t *pt, size_t len, uint8_t *der);

/* The curve (NID) a CKA_EC_PARAMS names, 0 when not served. */
int rhd_ec_curve(const rhd_attr_t *params);
/* The point inside a CKA_EC_POINT, a DER OCTET STRING in its one
 * encoding (import and every use read it here); < 0 when it is not. */
int rhd_ec_point(const rhd_attr_t *a, const uint8_t **pt, size_t *len);

/*
 * Checks changes to obj (C_SetAttributeValue, or C_CopyObject when copy):
 * the class's attributes only, key material and token-set attributes
 * read-only, CKA_SENSITIVE never back to false, CKA_EXTRACTABLE never back
 * to true; a copy may also set CKA_TOKEN, CKA_PRIVATE and CKA_MODIFIABLE.
 */
CK_RV rhd_object_check_change(const rhd_object_t *obj,
			      const rhd_object_t *changes, int copy);

/* CKR_TEMPLATE_INCONSISTENT when a key holds roles that together undo
 * wrapping: a secret key that wraps and decrypts or unwraps and encrypts,
 * a private key that unwraps and decrypts. Every create, change and copy
 * meets it. */
CK_RV rhd_object_roles_valid(const rhd_object_t *obj);

/* 1 when the attribute's value may not leave the daemon. */
int rhd_object_is_sensitive(const rhd_object_t *obj, uint64_t type);

/* Record form for the store (an AttributeList); free with free(). */
int rhd_object_pack(const rhd_object_t *obj, uint8_t **out, size_t *len);
int rhd_object_unpack(const uint8_t *buf, size_t len, rhd_object_t *out);

/* The value of one attribute for the wire, in arena-owned memory the
 * caller fills from it. */
void rhd_attr_to_wire(const rhd_attr_t *a, Remhsm__Attribute *out);

#endif
