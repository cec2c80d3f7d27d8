/*
 * Identifiers of PKCS#11 v3.0 (Current Mechanisms Specification, written
 * here from it) that Debian's v2.40 header lacks and that both the client
 * and the daemon use.
 */
#ifndef RH_PKCS11_H
#define RH_PKCS11_H

#include <p11-kit/pkcs11.h>

/* RFC 5649 AES key wrap with padding (section 2.14.4). */
#ifndef CKM_AES_KEY_WRAP_KWP
#define CKM_AES_KEY_WRAP_KWP 0x0000210BUL
#endif

/* EdDSA's optional parameter (PKCS#11 3.0, section 2.3.14): Ed25519ph
 * and Ed25519ctx, which remhsm does not serve. */
#ifndef CKK_EC_EDWARDS
#define CKK_EC_EDWARDS 0x00000040UL
#define CKM_EC_EDWARDS_KEY_PAIR_GEN 0x00001055UL
#define CKM_EDDSA 0x00001057UL
#endif
typedef struct CK_EDDSA_PARAMS {
	CK_BBOOL phFlag;
	CK_ULONG ulContextDataLen;
	CK_BYTE_PTR pContextData;
} CK_EDDSA_PARAMS;

/* HKDF (section 2.43): CKM_HKDF_DERIVE derives a key from a secret key,
 * extracting with a salt and expanding with info as RFC 5869 does. */
#ifndef CKM_HKDF_DERIVE
#define CKM_HKDF_DERIVE 0x0000402AUL
#define CKF_HKDF_SALT_NULL 0x00000001UL
#define CKF_HKDF_SALT_DATA 0x00000002UL
#define CKF_HKDF_SALT_KEY 0x00000004UL

typedef struct CK_HKDF_PARAMS {
	CK_BBOOL bExtract;
	CK_BBOOL bExpand;
	CK_MECHANISM_TYPE prfHashMechanism;
	CK_ULONG ulSaltType;
	CK_BYTE_PTR pSalt;
	CK_ULONG ulSaltLen;
	CK_OBJECT_HANDLE hSaltKey;
	CK_BYTE_PTR pInfo;
	CK_ULONG ulInfoLen;
} CK_HKDF_PARAMS;
#endif

#endif
