/*
 * The exported entry points: each raises the shield (shield.h) and lets
 * out only a code its function may return. A transport failure, an answer
 * too large for the frame, or a daemon code from a newer or broken daemon
 * would otherwise reach applications that switch on the listed codes.
 */
#pragma GCC visibility push(default)
#include <p11-kit/pkcs11.h>
#pragma GCC visibility pop

#include "entry_points.h"
#include "rhc.h"
#include "shield.h"

static int holds(const CK_RV *codes, size_t count, CK_RV rv)
{
	for (size_t i = 0; i < count; i++)
		if (codes[i] == rv)
			return 1;
	return 0;
}

/* The nearest listed code: the same meaning where one exists, else the
 * device's failure, else the function's. */
static CK_RV stand_in(const CK_RV *codes, size_t count, CK_RV rv)
{
	static const struct {
		CK_RV from, to;
	} nearest[] = {
		{CKR_PIN_LEN_RANGE, CKR_PIN_INCORRECT},
		{CKR_PIN_INVALID, CKR_PIN_INCORRECT},
		{CKR_DATA_LEN_RANGE, CKR_DEVICE_MEMORY},
		{CKR_KEY_SIZE_RANGE, CKR_ATTRIBUTE_VALUE_INVALID},
		{CKR_ACTION_PROHIBITED, CKR_TOKEN_WRITE_PROTECTED},
	};
	for (size_t i = 0; i < sizeof(nearest) / sizeof(*nearest); i++)
		if (nearest[i].from == rv && holds(codes, count, nearest[i].to))
			return nearest[i].to;
	return holds(codes, count, CKR_DEVICE_ERROR) ? CKR_DEVICE_ERROR
						     : CKR_FUNCTION_FAILED;
}

CK_RV rhc_answer(const char *name, const CK_RV *codes, size_t count, CK_RV rv)
{
	if (holds(codes, count, rv))
		return rv;
	CK_RV to = stand_in(codes, count, rv);
	rhc_debug("%s: 0x%lx is not a code it may return; answering 0x%lx",
		  name, rv, to);
	return to;
}

#define RHC_ENTRY_POINT(name, params, args, ...)                               \
	CK_RV name params                                                      \
	{                                                                      \
		static const CK_RV codes[] = {__VA_ARGS__};                    \
		RHC_ENTRY();                                                   \
		return rhc_answer(#name, codes,                                \
				  sizeof(codes) / sizeof(*codes),              \
				  rhc_##name args);                            \
	}
#include "entry_points.def"
