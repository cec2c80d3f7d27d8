/* Errors of the common layer: 0 or a negative code from one list. */
#ifndef RH_ERR_H
#define RH_ERR_H

#define RH_WARN_UNUSED __attribute__((warn_unused_result))

#define RH_ERRORS(X)                                                           \
	X(RH_ENOMEM, -1, "out of memory")                                      \
	X(RH_EINVAL, -2, "invalid argument")                                   \
	X(RH_EFRAME_TOO_LARGE, -3, "frame exceeds the maximum size")           \
	X(RH_EDECODE, -4, "message does not decode")                           \
	X(RH_EIO, -5, "input/output error")                                    \
	X(RH_ETLS, -6, "TLS error")                                            \
	X(RH_ETIMEDOUT, -7, "timed out")                                       \
	X(RH_ECLOSED, -8, "connection closed by peer")                         \
	X(RH_EPROTO, -9, "protocol violation")                                 \
	X(RH_ECONFIG, -10, "invalid configuration")                            \
	X(RH_EVERSION, -11, "no common protocol version")                      \
	X(RH_ECRYPTO, -12, "cryptographic library error")                      \
	X(RH_EDEPTH, -13, "message nested deeper than the protocol allows")

enum rh_err {
	RH_OK = 0,
#define RH_ERR_ENUM(name, value, text) name = value,
	RH_ERRORS(RH_ERR_ENUM)
#undef RH_ERR_ENUM
};

const char *rh_strerror(int err);

#endif
