/*
 * What PKCS#11 v3.0 adds to the v2.40 header that Debian's p11-kit ships,
 * written here from the specification (PKCS #11 Cryptographic Token
 * Interface Base Specification Version 3.0, sections 3 and 5): the
 * interface structure, the 3.0 function list and the prototypes of the
 * functions it adds, and the codes and flags they use.
 */
#ifndef RHC_PKCS11_3_0_H
#define RHC_PKCS11_3_0_H

#include <p11-kit/pkcs11.h>

#include "rh_pkcs11.h"

#ifndef CKF_INTERFACE_FORK_SAFE
#define CKF_INTERFACE_FORK_SAFE 0x00000001UL
#endif
#ifndef CKR_OPERATION_CANCEL_FAILED
#define CKR_OPERATION_CANCEL_FAILED 0x00000202UL
#endif
#ifndef CKF_END_OF_MESSAGE
#define CKF_END_OF_MESSAGE 0x00000001UL
#endif

typedef struct CK_INTERFACE {
	CK_UTF8CHAR *pInterfaceName;
	CK_VOID_PTR pFunctionList;
	CK_FLAGS flags;
} CK_INTERFACE;
typedef CK_INTERFACE *CK_INTERFACE_PTR;
typedef CK_INTERFACE_PTR *CK_INTERFACE_PTR_PTR;

/* The functions 3.0 adds, in the order of its function list. */
#define RHC_V3_FUNCTIONS(X)                                                    \
	X(C_GetInterfaceList,                                                  \
	  (CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount))           \
	X(C_GetInterface,                                                      \
	  (CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,            \
	   CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags))                  \
	X(C_LoginUser, (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,     \
			CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,               \
			CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen))    \
	X(C_SessionCancel, (CK_SESSION_HANDLE hSession, CK_FLAGS flags))       \
	X(C_MessageEncryptInit,                                                \
	  (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,            \
	   CK_OBJECT_HANDLE hKey))                                             \
	X(C_EncryptMessage,                                                    \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,               \
	   CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext,               \
	   CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext,                   \
	   CK_ULONG_PTR pulCiphertextLen))                                     \
	X(C_EncryptMessageBegin,                                               \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,               \
	   CK_ULONG ulAssociatedDataLen))                                      \
	X(C_EncryptMessageNext,                                                \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart,                \
	   CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart,           \
	   CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags))                 \
	X(C_MessageEncryptFinal, (CK_SESSION_HANDLE hSession))                 \
	X(C_MessageDecryptInit,                                                \
	  (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,            \
	   CK_OBJECT_HANDLE hKey))                                             \
	X(C_DecryptMessage,                                                    \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,               \
	   CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext,              \
	   CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext,                   \
	   CK_ULONG_PTR pulPlaintextLen))                                      \
	X(C_DecryptMessageBegin,                                               \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,               \
	   CK_ULONG ulAssociatedDataLen))                                      \
	X(C_DecryptMessageNext,                                                \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart,               \
	   CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart,           \
	   CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags))                  \
	X(C_MessageDecryptFinal, (CK_SESSION_HANDLE hSession))                 \
	X(C_MessageSignInit,                                                   \
	  (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,            \
	   CK_OBJECT_HANDLE hKey))                                             \
	X(C_SignMessage,                                                       \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,     \
	   CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen))              \
	X(C_SignMessageBegin,                                                  \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen))                                           \
	X(C_SignMessageNext,                                                   \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,     \
	   CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen))              \
	X(C_MessageSignFinal, (CK_SESSION_HANDLE hSession))                    \
	X(C_MessageVerifyInit,                                                 \
	  (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,            \
	   CK_OBJECT_HANDLE hKey))                                             \
	X(C_VerifyMessage,                                                     \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,     \
	   CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen))                   \
	X(C_VerifyMessageBegin,                                                \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen))                                           \
	X(C_VerifyMessageNext,                                                 \
	  (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,                 \
	   CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen,     \
	   CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen))                   \
	X(C_MessageVerifyFinal, (CK_SESSION_HANDLE hSession))

/* Exported like the v2.40 functions the package's header declares. */
#define RHC_V3_DECLARE(name, params) CK_RV name params;
#pragma GCC visibility push(default)
RHC_V3_FUNCTIONS(RHC_V3_DECLARE)
#pragma GCC visibility pop
#undef RHC_V3_DECLARE

#define RHC_V3_POINTER(name, params) CK_RV(*name) params;
/* The 3.0 function list: the v2.40 list (a version and 68 pointers, so
 * no padding lies between it and what follows), then the functions 3.0
 * adds. */
typedef struct CK_FUNCTION_LIST_3_0 {
	CK_FUNCTION_LIST v2;
	RHC_V3_FUNCTIONS(RHC_V3_POINTER)
} CK_FUNCTION_LIST_3_0;
#undef RHC_V3_POINTER

#endif
