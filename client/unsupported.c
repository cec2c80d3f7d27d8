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
/* v3.0's message-based functions. */
UNSUPPORTED(C_MessageEncryptInit,
	    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
	     CK_OBJECT_HANDLE hKey))
UNSUPPORTED(C_EncryptMessage,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
	     CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext,
	     CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext,
	     CK_ULONG_PTR pulCiphertextLen))
UNSUPPORTED(C_EncryptMessageBegin,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
	     CK_ULONG ulAssociatedDataLen))
UNSUPPORTED(C_EncryptMessageNext,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart,
	     CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart,
	     CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags))
UNSUPPORTED(C_MessageEncryptFinal, (CK_SESSION_HANDLE hSession))
UNSUPPORTED(C_MessageDecryptInit,
	    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
	     CK_OBJECT_HANDLE hKey))
UNSUPPORTED(C_DecryptMessage,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
	     CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext,
	     CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext,
	     CK_ULONG_PTR pulPlaintextLen))
UNSUPPORTED(C_DecryptMessageBegin,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
	     CK_ULONG ulAssociatedDataLen))
UNSUPPORTED(C_DecryptMessageNext,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart,
	     CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart,
	     CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags))
UNSUPPORTED(C_MessageDecryptFinal, (CK_SESSION_HANDLE hSession))
UNSUPPORTED(C_MessageSignInit,
	    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
	     CK_OBJECT_HANDLE hKey))
UNSUPPORTED(C_SignMessage,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
	     CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen))
UNSUPPORTED(C_SignMessageBegin,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen))
UNSUPPORTED(C_SignMessageNext,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
	     CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen))
UNSUPPORTED(C_MessageSignFinal, (CK_SESSION_HANDLE hSession))
UNSUPPORTED(C_MessageVerifyInit,
	    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
	     CK_OBJECT_HANDLE hKey))
UNSUPPORTED(C_VerifyMessage,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
	     CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen))
UNSUPPORTED(C_VerifyMessageBegin,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen))
UNSUPPORTED(C_VerifyMessageNext,
	    (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
	     CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
	     CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen))
UNSUPPORTED(C_MessageVerifyFinal, (CK_SESSION_HANDLE hSession))

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
