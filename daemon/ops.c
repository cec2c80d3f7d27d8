#include "ops.h"

#include <openssl/evp.h>
#include <string.h>

#include "crypto.h"
#include "objects.h"

#define MAX_RAW_HASH 64

static const CK_MECHANISM_TYPE served[] = {
	CKM_EC_KEY_PAIR_GEN, CKM_ECDSA,	       CKM_ECDSA_SHA256,
	CKM_ECDSA_SHA384,    CKM_ECDSA_SHA512, CKM_SHA_1,
	CKM_SHA256,	     CKM_SHA384,       CKM_SHA512,
};

size_t rhd_mechanisms(const CK_MECHANISM_TYPE **list)
{
	*list = served;
	return sizeof(served) / sizeof(served[0]);
}

int rhd_mechanism_info(CK_MECHANISM_TYPE mech, CK_MECHANISM_INFO *info)
{
	const CK_FLAGS ec = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
	memset(info, 0, sizeof(*info));
	switch (mech) {
	case CKM_EC_KEY_PAIR_GEN:
		*info = (CK_MECHANISM_INFO){256, 384,
					    CKF_GENERATE_KEY_PAIR | ec};
		return 1;
	case CKM_ECDSA:
	case CKM_ECDSA_SHA256:
	case CKM_ECDSA_SHA384:
	case CKM_ECDSA_SHA512:
		*info = (CK_MECHANISM_INFO){256, 384,
					    CKF_SIGN | CKF_VERIFY | ec};
		return 1;
	case CKM_SHA_1:
	case CKM_SHA256:
	case CKM_SHA384:
	case CKM_SHA512:
		info->flags = CKF_DIGEST;
		return 1;
	default:
		return 0;
	}
}

static int is_ecdsa(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_ECDSA || mech == CKM_ECDSA_SHA256 ||
	       mech == CKM_ECDSA_SHA384 || mech == CKM_ECDSA_SHA512;
}

/* The key of a sign or verify init, by the specification's checks. */
static CK_RV key_for(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s,
		     rhd_op_kind_t kind, uint64_t handle, EVP_PKEY **key)
{
	rhd_object_t obj;
	if (rhd_objects_load(engine, app, s, handle, &obj) != CKR_OK)
		return CKR_KEY_HANDLE_INVALID;
	uint64_t cls = 0, type = 0;
	rhd_object_ulong(&obj, CKA_CLASS, &cls);
	rhd_object_ulong(&obj, CKA_KEY_TYPE, &type);
	uint64_t want = kind == RHD_OP_SIGN ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY;
	CK_RV rv = CKR_OK;
	if (cls != want || type != CKK_EC)
		rv = CKR_KEY_TYPE_INCONSISTENT;
	else if (!rhd_object_bool(
			 &obj, kind == RHD_OP_SIGN ? CKA_SIGN : CKA_VERIFY, 0))
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
	else if (!(*key = rhd_crypto_ec_key(&obj)))
		rv = CKR_DEVICE_ERROR;
	rhd_object_cleanup(&obj);
	return rv;
}

CK_RV rhd_op_init(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s,
		  rhd_op_kind_t kind, CK_MECHANISM_TYPE mech, size_t param_len,
		  uint64_t key)
{
	rhd_op_t *op = &s->ops[kind];
	if (op->active)
		return CKR_OPERATION_ACTIVE;
	const EVP_MD *md = rhd_crypto_md(mech);
	int fits =
		kind == RHD_OP_DIGEST ? md && !is_ecdsa(mech) : is_ecdsa(mech);
	if (!fits)
		return CKR_MECHANISM_INVALID;
	if (param_len)
		return CKR_MECHANISM_PARAM_INVALID;
	CK_RV rv = CKR_OK;
	if (kind != RHD_OP_DIGEST)
		rv = key_for(engine, app, s, kind, key, &op->key);
	if (rv == CKR_OK && md) {
		op->md = EVP_MD_CTX_new();
		if (!op->md || EVP_DigestInit_ex(op->md, md, NULL) != 1)
			rv = CKR_DEVICE_MEMORY;
	}
	if (rv != CKR_OK) {
		rhd_op_end(op);
		return rv;
	}
	op->active = 1;
	op->mech = mech;
	return CKR_OK;
}

CK_RV rhd_op_update(rhd_session_t *s, rhd_op_kind_t kind, const uint8_t *data,
		    size_t len)
{
	rhd_op_t *op = &s->ops[kind];
	if (!op->active)
		return CKR_OPERATION_NOT_INITIALIZED;
	/* Raw ECDSA signs a hash: single-part only. */
	CK_RV rv = !op->md ? CKR_FUNCTION_NOT_SUPPORTED
		   : EVP_DigestUpdate(op->md, data, len) == 1
			   ? CKR_OK
			   : CKR_DEVICE_ERROR;
	if (rv != CKR_OK)
		rhd_op_end(op);
	else
		op->updated = 1;
	return rv;
}

/* The hash to sign or the digest: data itself for raw ECDSA. */
static CK_RV hash_of(rhd_op_t *op, int single, const uint8_t *data, size_t len,
		     uint8_t *hash, size_t *hash_len)
{
	if (!op->md) {
		if (len > MAX_RAW_HASH)
			return CKR_DATA_LEN_RANGE;
		memcpy(hash, data, len);
		*hash_len = len;
		return CKR_OK;
	}
	unsigned int n = 0;
	if ((single && EVP_DigestUpdate(op->md, data, len) != 1) ||
	    EVP_DigestFinal_ex(op->md, hash, &n) != 1)
		return CKR_DEVICE_ERROR;
	*hash_len = n;
	return CKR_OK;
}

static size_t output_len(const rhd_op_t *op, rhd_op_kind_t kind)
{
	return kind == RHD_OP_DIGEST ? (size_t)EVP_MD_CTX_get_size(op->md)
				     : rhd_crypto_ec_sig_len(op->key);
}

static CK_RV state_allows(const rhd_op_t *op, int single)
{
	if (!op->active)
		return CKR_OPERATION_NOT_INITIALIZED;
	/* A multi-part operation ends with Final, not with the single call. */
	return single && op->updated ? CKR_OPERATION_ACTIVE : CKR_OK;
}

CK_RV rhd_op_take(rhd_session_t *s, rhd_op_kind_t kind, int single,
		  int has_buffer, size_t *out_len, rhd_op_t *taken)
{
	rhd_op_t *op = &s->ops[kind];
	memset(taken, 0, sizeof(*taken));
	CK_RV rv = state_allows(op, single);
	if (rv != CKR_OK)
		return rv;
	if (kind != RHD_OP_VERIFY) {
		size_t need = output_len(op, kind);
		int room = has_buffer && *out_len >= need;
		*out_len = need;
		if (!room)
			return has_buffer ? CKR_BUFFER_TOO_SMALL : CKR_OK;
	}
	/* From here the operation ends, whatever the outcome. */
	*taken = *op;
	memset(op, 0, sizeof(*op));
	return CKR_OK;
}

CK_RV rhd_op_complete(rhd_op_t *taken, rhd_op_kind_t kind, int single,
		      const uint8_t *data, size_t len, uint8_t *out,
		      size_t out_len)
{
	uint8_t hash[EVP_MAX_MD_SIZE];
	size_t hash_len = 0;
	CK_RV rv = hash_of(taken, single, data, len, hash, &hash_len);
	if (rv == CKR_OK && kind == RHD_OP_DIGEST)
		memcpy(out, hash, hash_len);
	else if (rv == CKR_OK && kind == RHD_OP_SIGN)
		rv = rhd_crypto_ecdsa_sign(taken->key, hash, hash_len, out,
					   out_len);
	else if (rv == CKR_OK)
		rv = rhd_crypto_ecdsa_verify(taken->key, hash, hash_len, out,
					     out_len);
	rhd_op_end(taken);
	return rv;
}
