#include "p11.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Why the module's C_Initialize failed, in one line: it reads its
 * certificate files from these variables (unless REMHSM_CONF names a file
 * of settings), so the first one unset or unreadable is named. */
static void explain_init_failure(CK_RV rv)
{
	static const char *const vars[] = {"REMHSM_CA", "REMHSM_CERT",
					   "REMHSM_KEY"};
	for (size_t i = 0; !getenv("REMHSM_CONF") && i < 3; i++) {
		const char *v = getenv(vars[i]);
		if (!v || !*v) {
			fprintf(stderr,
				"C_Initialize failed: %s: %s is not "
				"set\n",
				rh_ckr_name(rv), vars[i]);
			return;
		}
		if (access(v, R_OK) < 0) {
			fprintf(stderr, "C_Initialize failed: %s: %s=%s: %s\n",
				rh_ckr_name(rv), vars[i], v, strerror(errno));
			return;
		}
	}
	fprintf(stderr,
		"C_Initialize failed: %s (REMHSM_DEBUG=1 says why: the "
		"certificate and key must be PEM and belong together)\n",
		rh_ckr_name(rv));
}

CK_FUNCTION_LIST *rh_p11_load(const char *path, void **handle)
{
	*handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!*handle) {
		fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
		return NULL;
	}
	CK_C_GetFunctionList get =
		(CK_C_GetFunctionList)dlsym(*handle, "C_GetFunctionList");
	CK_FUNCTION_LIST *p11 = NULL;
	if (!get || get(&p11) != CKR_OK) {
		fprintf(stderr, "%s has no usable C_GetFunctionList\n", path);
		return NULL;
	}
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	CK_RV rv = p11->C_Initialize(&args);
	if (rv != CKR_OK) {
		explain_init_failure(rv);
		return NULL;
	}
	return p11;
}

const char *rh_ckr_name(CK_RV rv)
{
	switch (rv) {
#define NAME(code)                                                             \
	case code:                                                             \
		return #code;
		NAME(CKR_OK)
		NAME(CKR_GENERAL_ERROR)
		NAME(CKR_ARGUMENTS_BAD)
		NAME(CKR_DEVICE_ERROR)
		NAME(CKR_DEVICE_MEMORY)
		NAME(CKR_FUNCTION_NOT_SUPPORTED)
		NAME(CKR_PIN_INCORRECT)
		NAME(CKR_PIN_LEN_RANGE)
		NAME(CKR_PIN_LOCKED)
		NAME(CKR_SESSION_EXISTS)
		NAME(CKR_SESSION_HANDLE_INVALID)
		NAME(CKR_SESSION_READ_ONLY)
		NAME(CKR_SESSION_READ_ONLY_EXISTS)
		NAME(CKR_SLOT_ID_INVALID)
		NAME(CKR_TOKEN_NOT_RECOGNIZED)
		NAME(CKR_USER_ALREADY_LOGGED_IN)
		NAME(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
		NAME(CKR_USER_NOT_LOGGED_IN)
		NAME(CKR_USER_PIN_NOT_INITIALIZED)
		NAME(CKR_CRYPTOKI_NOT_INITIALIZED)
#undef NAME
	default: {
		static _Thread_local char hex[24];
		snprintf(hex, sizeof(hex), "0x%lx", rv);
		return hex;
	}
	}
}
