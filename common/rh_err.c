#include "rh_err.h"

const char *rh_strerror(int err)
{
	switch (err) {
	case RH_OK:
		return "success";
#define RH_ERR_CASE(name, value, text)                                         \
	case name:                                                             \
		return text;
		RH_ERRORS(RH_ERR_CASE)
#undef RH_ERR_CASE
	default:
		return "unknown error";
	}
}
