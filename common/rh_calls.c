#include "rh_calls.h"

const char *rh_call_name(unsigned id)
{
	switch (id) {
#define RH_CALL_NAME(num, UP, low, Camel, flags)                               \
	case num:                                                              \
		return "C_" #Camel;
		RH_CALLS(RH_CALL_NAME)
#undef RH_CALL_NAME
	case RH_CALL_HELLO_REQ_ID:
		return "Hello";
	default:
		return NULL;
	}
}

unsigned rh_call_flags(unsigned id)
{
	switch (id) {
#define RH_CALL_FLAGS(num, UP, low, Camel, flags)                              \
	case num:                                                              \
		return flags;
		RH_CALLS(RH_CALL_FLAGS)
#undef RH_CALL_FLAGS
	default:
		return RH_CALL_FAST;
	}
}
