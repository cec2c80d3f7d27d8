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

#endif
