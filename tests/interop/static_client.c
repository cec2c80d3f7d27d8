/*
 * An application that links libremhsm-pkcs11.a statically, with only the
 * dependencies the README documents, and makes a few calls to the daemon
 * named by the REMHSM_* variables. Exits 0 when every call succeeds.
 */
#include <p11-kit/pkcs11.h>
#include <stdio.h>
#include <string.h>

#ifdef OWN_NAMES
int own_names_answer(void); /* static_names.c */
#endif

static int ok(const char *what, CK_RV rv)
{
	if (rv != CKR_OK)
		fprintf(stderr, "%s: 0x%lx\n", what, rv);
	return rv == CKR_OK;
}

int main(void)
{
	CK_FUNCTION_LIST_PTR p11 = NULL;
	CK_INFO info;
	CK_SESSION_HANDLE session;
	CK_BYTE random[16];
	int good =
		ok("C_GetFunctionList", C_GetFunctionList(&p11)) &&
		ok("C_Initialize", p11->C_Initialize(NULL)) &&
		ok("C_GetInfo", p11->C_GetInfo(&info)) &&
		ok("C_OpenSession", p11->C_OpenSession(0, CKF_SERIAL_SESSION,
						       NULL, NULL, &session)) &&
		ok("C_GenerateRandom",
		   p11->C_GenerateRandom(session, random, sizeof(random))) &&
		ok("C_Finalize", p11->C_Finalize(NULL));
#ifdef OWN_NAMES
	good = good && own_names_answer() == 321;
#endif
	if (good)
		printf("%.32s\n", (const char *)info.manufacturerID);
	return good ? 0 : 1;
}
