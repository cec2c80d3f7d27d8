/* The client's call path: state, connection pool, one round trip. */
#ifndef RHC_RPC_H
#define RHC_RPC_H

#include "rhc.h"

typedef unsigned long rhc_rv_t; /* a CK_RV, without pulling in pkcs11.h */

/*
 * C_Initialize's work, after argument checks. lock_ops, when not NULL, are
 * the application's four mutex callbacks (CreateMutex, DestroyMutex,
 * LockMutex, UnlockMutex) to use instead of the OS's.
 */
typedef struct rhc_lock_ops {
	rhc_rv_t (*create)(void **mutex);
	rhc_rv_t (*destroy)(void *mutex);
	rhc_rv_t (*lock)(void *mutex);
	rhc_rv_t (*unlock)(void *mutex);
} rhc_lock_ops_t;

rhc_rv_t rhc_initialize(const rhc_lock_ops_t *lock_ops);
rhc_rv_t rhc_finalize(void);

/* The module's lock (the application's mutex callbacks when it gave
 * them): held only for bookkeeping, never across I/O. */
void rhc_lock(void);
void rhc_unlock(void);

/* 1 when REMHSM_COMPAT=freertos asked for FreeRTOS's behaviours. */
int rhc_compat_freertos(void);

/* The largest data chunk an update call sends in one request. */
size_t rhc_max_payload(void);

/* CKR_OK when the module is initialised in this process. */
rhc_rv_t rhc_ready(void);

/*
 * One round trip. Sets req->id, sends it, and returns the daemon's CK_RV
 * with *resp set (free with remhsm__response__free_unpacked), or
 * CKR_DEVICE_ERROR / CKR_HOST_MEMORY / CKR_CRYPTOKI_NOT_INITIALIZED with
 * *resp NULL. A response of the wrong kind is CKR_DEVICE_ERROR.
 */
rhc_rv_t rhc_call(Remhsm__Request *req, Remhsm__Response **resp);

#endif
