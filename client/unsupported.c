/*
 * Entry points the daemon does not serve yet. Each answers as the
 * specification allows for an uninitialised module, then
 * CKR_FUNCTION_NOT_SUPPORTED, so the function list never holds NULL.
 */
#pragma GCC visibility push(default)
#include <p11-kit/pkcs11.h>
#pragma GCC visibility pop

#include "entry_points.h"

#include "rpc.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"

static CK_RV not_supported(void)
{
	CK_RV rv = rhc_ready();
	return rv != CKR_OK ? rv : CKR_FUNCTION_NOT_SUPPORTED;
}

#define UNSUPPORTED(name, params)                                              \
	CK_RV rhc_##name params                                                \
	{                                                                      \
		return not_supported();                                        \
	}

UNSUPPORTED(C_GetOperationState,
	    (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG_PTR l))
UNSUPPORTED(C_SetOperationState,
	    (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG l, CK_OBJECT_HANDLE e,
	     CK_OBJECT_HANDLE a))
UNSUPPORTED(C_DigestKey, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_SignRecoverInit,
	    (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_SignRecover, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl,
			    CK_BYTE_PTR o, CK_ULONG_PTR ol))
UNSUPPORTED(C_VerifyRecoverInit,
	    (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k))
UNSUPPORTED(C_VerifyRecover, (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG sl,
			      CK_BYTE_PTR d, CK_ULONG_PTR dl))
UNSUPPORTED(C_DigestEncryptUpdate,
	    (CK_SESSION_HANDLE h, CK_BYTE_PTR p, CK_ULONG pl, CK_BYTE_PTR e,
	     CK_ULONG_PTR el))
UNSUPPORTED(C_DecryptDigestUpdate,
	    (CK_SESSION_HANDLE h, CK_BYTE_PTR e, CK_ULONG el, CK_BYTE_PTR p,
	     CK_ULONG_PTR pl))
UNSUPPORTED(C_SignEncryptUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR p,
				  CK_ULONG pl, CK_BYTE_PTR e, CK_ULONG_PTR el))
UNSUPPORTED(C_DecryptVerifyUpdate,
	    (CK_SESSION_HANDLE h, CK_BYTE_PTR e, CK_ULONG el, CK_BYTE_PTR p,
	     CK_ULONG_PTR pl))
UNSUPPORTED(C_WrapKey,
	    (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE w,
	     CK_OBJECT_HANDLE k, CK_BYTE_PTR o, CK_ULONG_PTR ol))
UNSUPPORTED(C_UnwrapKey,
	    (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE u,
	     CK_BYTE_PTR w, CK_ULONG wl, CK_ATTRIBUTE_PTR t, CK_ULONG c,
	     CK_OBJECT_HANDLE_PTR k))
UNSUPPORTED(C_DeriveKey,
	    (CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE b,
	     CK_ATTRIBUTE_PTR t, CK_ULONG c, CK_OBJECT_HANDLE_PTR k))
UNSUPPORTED(C_WaitForSlotEvent, (CK_FLAGS f, CK_SLOT_ID_PTR s, CK_VOID_PTR r))

/* Legacy parallel-function calls: the specification's fixed answer. */
CK_RV rhc_C_GetFunctionStatus(CK_SESSION_HANDLE h)
{
	CK_RV rv = rhc_ready();
	return rv != CKR_OK ? rv : CKR_FUNCTION_NOT_PARALLEL;
}

CK_RV rhc_C_CancelFunction(CK_SESSION_HANDLE h)
{
	CK_RV rv = rhc_ready();
	return rv != CKR_OK ? rv : CKR_FUNCTION_NOT_PARALLEL;
}
