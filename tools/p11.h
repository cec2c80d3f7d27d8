/* Loading a PKCS#11 module, and the names of its return values. */
#ifndef RH_P11_H
#define RH_P11_H

#include <p11-kit/pkcs11.h>

/* dlopen()s path and initialises it with OS locking; NULL with a message on
 * stderr when that fails. */
CK_FUNCTION_LIST *rh_p11_load(const char *path, void **handle);

/* "CKR_PIN_INCORRECT", or "0x…" for a value outside the table. */
const char *rh_ckr_name(CK_RV rv);

#endif
