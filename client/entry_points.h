/*
 * Every exported C_* function is a wrapper (entry_points.c) around the
 * module's own rhc_C_* implementation: it raises the shield for the call
 * and lets out only a code the specification lists for that function.
 */
#ifndef RHC_ENTRY_POINTS_H
#define RHC_ENTRY_POINTS_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>

#include "pkcs11_3_0.h"

/* Section 5.1.1: any function may return these. CKR_FUNCTION_NOT_SUPPORTED
 * is the answer the specification gives every function a library does not
 * serve. */
#define RHC_RV_ANY                                                             \
	CKR_OK, CKR_GENERAL_ERROR, CKR_HOST_MEMORY, CKR_FUNCTION_FAILED,       \
		CKR_FUNCTION_NOT_SUPPORTED
/* Every function but C_Initialize and C_GetFunctionList. */
#define RHC_RV_LIB RHC_RV_ANY, CKR_CRYPTOKI_NOT_INITIALIZED
/* Section 5.1.3: functions that use a token. */
#define RHC_RV_TOKEN                                                           \
	RHC_RV_LIB, CKR_DEVICE_ERROR, CKR_DEVICE_MEMORY, CKR_DEVICE_REMOVED
/* Section 5.1.2: functions that use a session handle. */
#define RHC_RV_SESSION                                                         \
	RHC_RV_TOKEN, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED
/* C_EncryptInit, C_DecryptInit, C_SignInit, C_VerifyInit and their
 * recover forms: an operation started with a key. */
#define RHC_RV_KEY_INIT                                                        \
	RHC_RV_SESSION, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,              \
		CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID,        \
		CKR_KEY_SIZE_RANGE, CKR_KEY_TYPE_INCONSISTENT,                 \
		CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,            \
		CKR_OPERATION_ACTIVE, CKR_PIN_EXPIRED, CKR_USER_NOT_LOGGED_IN
/* Not in v2.40's lists for C_Digest, C_Sign and C_Verify: their answer to
 * a single-part call while a multi-part operation is active, which ends
 * that operation (the specification leaves the case open; this is the
 * code SoftHSMv2 and remhsm give). */
#define RHC_RV_SINGLE_AFTER_UPDATE CKR_OPERATION_ACTIVE
/* Not in v2.40's list for C_DeriveKey either: a base key whose CKA_DERIVE
 * is false. Section 3.6 defines the code for exactly that, and any listed
 * code (the key's type, its handle) would mislead. */
#define RHC_RV_KEY_USE CKR_KEY_FUNCTION_NOT_PERMITTED
/* The other departure: an init the client could check itself is held back
 * and travels with the operation's next call (one round trip per
 * signature), so a refusal only the daemon can make (a key destroyed
 * through another application, a usage flag, an allowed-mechanisms list)
 * is that call's answer, with the init's code. */
#define RHC_RV_HELD_INIT                                                       \
	CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID,                \
		CKR_KEY_SIZE_RANGE, CKR_KEY_TYPE_INCONSISTENT,                 \
		CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,            \
		CKR_PIN_EXPIRED, CKR_USER_NOT_LOGGED_IN

#define RHC_ENTRY_POINT(name, params, args, ...) CK_RV rhc_##name params;
#include "entry_points.def"
#undef RHC_ENTRY_POINT

/* rv when `codes` holds it, else the nearest code it holds: what the
 * function whose name is `name` answers. */
CK_RV rhc_answer(const char *name, const CK_RV *codes, size_t count, CK_RV rv);

#endif
