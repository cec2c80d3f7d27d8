#pragma GCC visibility push(default)
#include <p11-kit/pkcs11.h>
#pragma GCC visibility pop

#include <string.h>

#include "entry_points.h"

/* The v2.40 entries, in the order of the function list. */
#define RHC_V2_ENTRIES(GET_INFO)                                                                                                  \
	ENTRY(C_Initialize)                                                                                                       \
	ENTRY(C_Finalize)                                                                                                         \
		.C_GetInfo = GET_INFO,                                                                                            \
    ENTRY(C_GetFunctionList) ENTRY(C_GetSlotList) ENTRY(C_GetSlotInfo) ENTRY(C_GetTokenInfo) ENTRY(C_GetMechanismList) ENTRY(     \
		C_GetMechanismInfo) ENTRY(C_InitToken) ENTRY(C_InitPIN) ENTRY(C_SetPIN) ENTRY(C_OpenSession)                      \
		ENTRY(C_CloseSession) ENTRY(C_CloseAllSessions) ENTRY(C_GetSessionInfo) ENTRY(C_GetOperationState) ENTRY(         \
			C_SetOperationState) ENTRY(C_Login) ENTRY(C_Logout) ENTRY(C_CreateObject) ENTRY(C_CopyObject)             \
			ENTRY(C_DestroyObject) ENTRY(C_GetObjectSize) ENTRY(C_GetAttributeValue) ENTRY(                           \
				C_SetAttributeValue) ENTRY(C_FindObjectsInit) ENTRY(C_FindObjects) ENTRY(C_FindObjectsFinal)      \
				ENTRY(C_EncryptInit) ENTRY(C_Encrypt) ENTRY(C_EncryptUpdate) ENTRY(C_EncryptFinal) ENTRY(         \
					C_DecryptInit) ENTRY(C_Decrypt) ENTRY(C_DecryptUpdate) ENTRY(C_DecryptFinal)              \
					ENTRY(C_DigestInit) ENTRY(C_Digest) ENTRY(C_DigestUpdate) ENTRY(                          \
						C_DigestKey) ENTRY(C_DigestFinal) ENTRY(C_SignInit)                               \
						ENTRY(C_Sign) ENTRY(C_SignUpdate) ENTRY(C_SignFinal) ENTRY(                       \
							C_SignRecoverInit) ENTRY(C_SignRecover)                                   \
							ENTRY(C_VerifyInit) ENTRY(C_Verify) ENTRY(                                \
								C_VerifyUpdate) ENTRY(C_VerifyFinal) ENTRY(C_VerifyRecoverInit)   \
								ENTRY(C_VerifyRecover) ENTRY(C_DigestEncryptUpdate) ENTRY(        \
									C_DecryptDigestUpdate) ENTRY(C_SignEncryptUpdate)         \
									ENTRY(C_DecryptVerifyUpdate) ENTRY(                       \
										C_GenerateKey) ENTRY(C_GenerateKeyPair)           \
										ENTRY(C_WrapKey) ENTRY(                           \
											C_UnwrapKey) ENTRY(C_DeriveKey)           \
											ENTRY(C_SeedRandom) ENTRY(                \
												C_GenerateRandom)                 \
												ENTRY(C_GetFunctionStatus) ENTRY( \
													C_CancelFunction)         \
													ENTRY(C_WaitForSlotEvent)

#define ENTRY(name) .name = name,
static CK_FUNCTION_LIST function_list = {.version = {2, 40},
					 RHC_V2_ENTRIES(C_GetInfo)};

/* C_GetInfo through the 3.0 list says 3.0: the version the application
 * asked for. */
static CK_RV get_info_v3(CK_INFO_PTR pInfo)
{
	CK_RV rv = C_GetInfo(pInfo);
	if (rv == CKR_OK)
		pInfo->cryptokiVersion = (CK_VERSION){3, 0};
	return rv;
}

#define V3_ENTRY(name, params) .name = name,
static CK_FUNCTION_LIST_3_0 function_list_3_0 = {
	.v2 = {.version = {3, 0}, RHC_V2_ENTRIES(get_info_v3)},
	RHC_V3_FUNCTIONS(V3_ENTRY)};
#undef V3_ENTRY
#undef ENTRY

/* Newest first, as applications that take the first one expect. The
 * module is not fork-safe (a child must call C_Initialize again). */
static CK_INTERFACE interfaces[] = {
	{(CK_UTF8CHAR *)"PKCS 11", &function_list_3_0, 0},
	{(CK_UTF8CHAR *)"PKCS 11", &function_list, 0},
};
#define N_INTERFACES (sizeof(interfaces) / sizeof(interfaces[0]))

CK_RV rhc_C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList,
			     CK_ULONG_PTR pulCount)
{
	if (!pulCount)
		return CKR_ARGUMENTS_BAD;
	CK_ULONG room = *pulCount;
	*pulCount = N_INTERFACES;
	if (!pInterfacesList)
		return CKR_OK;
	if (room < N_INTERFACES)
		return CKR_BUFFER_TOO_SMALL;
	memcpy(pInterfacesList, interfaces, sizeof(interfaces));
	return CKR_OK;
}

static const CK_VERSION *version_of(const CK_INTERFACE *i)
{
	return (const CK_VERSION *)i->pFunctionList;
}

/* The interface named (NULL: "PKCS 11"), of the version asked for (NULL:
 * the newest), whose flags hold those asked for; none is
 * CKR_ARGUMENTS_BAD. */
CK_RV rhc_C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName,
			 CK_VERSION_PTR pVersion,
			 CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags)
{
	if (!ppInterface)
		return CKR_ARGUMENTS_BAD;
	for (size_t k = 0; k < N_INTERFACES; k++) {
		CK_INTERFACE *i = &interfaces[k];
		const CK_VERSION *v = version_of(i);
		if ((pInterfaceName &&
		     strcmp((const char *)pInterfaceName,
			    (const char *)i->pInterfaceName) != 0) ||
		    (pVersion && (pVersion->major != v->major ||
				  pVersion->minor != v->minor)) ||
		    (flags & ~i->flags))
			continue;
		*ppInterface = i;
		return CKR_OK;
	}
	return CKR_ARGUMENTS_BAD;
}

CK_RV rhc_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
	if (!ppFunctionList)
		return CKR_ARGUMENTS_BAD;
	*ppFunctionList = &function_list;
	return CKR_OK;
}
