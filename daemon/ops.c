#include "ops.h"

#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "objects.h"

#define MAX_RAW_HASH 64
#define MAX_RAW_INPUT 1024 /* an RSA-8192 block */
#define MAX_OAEP_LABEL 1024

static const CK_MECHANISM_TYPE served[] = {
	CKM_EC_KEY_PAIR_GEN,
	CKM_ECDSA,
	CKM_ECDSA_SHA256,
	CKM_ECDSA_SHA384,
	CKM_ECDSA_SHA512,
	CKM_RSA_PKCS_KEY_PAIR_GEN,
	CKM_RSA_PKCS,
	CKM_SHA256_RSA_PKCS,
	CKM_SHA384_RSA_PKCS,
	CKM_SHA512_RSA_PKCS,
	CKM_RSA_PKCS_PSS,
	CKM_SHA256_RSA_PKCS_PSS,
	CKM_SHA384_RSA_PKCS_PSS,
	CKM_SHA512_RSA_PKCS_PSS,
	CKM_RSA_X_509,
	CKM_SHA_1,
	CKM_SHA256,
	CKM_SHA384,
	CKM_SHA512,
	CKM_AES_KEY_GEN,
	CKM_GENERIC_SECRET_KEY_GEN,
	CKM_SHA_1_HMAC,
	CKM_SHA256_HMAC,
	CKM_SHA384_HMAC,
	CKM_SHA512_HMAC,
	CKM_AES_CMAC,
	CKM_AES_ECB,
	CKM_AES_CBC,
	CKM_AES_CBC_PAD,
	CKM_AES_CTR,
	CKM_AES_GCM,
	CKM_RSA_PKCS_OAEP,
	CKM_AES_KEY_WRAP,
	CKM_AES_KEY_WRAP_KWP,
	CKM_ECDH1_DERIVE,
	CKM_HKDF_DERIVE,
	CKM_EC_EDWARDS_KEY_PAIR_GEN,
	CKM_EDDSA,
	/* Only with allow-legacy: these last. */
	CKM_SHA1_RSA_PKCS,
	CKM_SHA1_RSA_PKCS_PSS,
	CKM_ECDSA_SHA1,
};
#define N_LEGACY 3

size_t rhd_mechanisms(const CK_MECHANISM_TYPE **list)
{
	*list = served;
	return sizeof(served) / sizeof(served[0]) -
	       (rhd_legacy_allowed() ? 0 : N_LEGACY);
}

/* SHA-1 in a signature, or (sign) raw RSA: allow-legacy's. */
static int legacy_only(rhd_op_kind_t kind, CK_MECHANISM_TYPE mech)
{
	return mech == CKM_SHA1_RSA_PKCS || mech == CKM_SHA1_RSA_PKCS_PSS ||
	       mech == CKM_ECDSA_SHA1 ||
	       (kind == RHD_OP_SIGN && mech == CKM_RSA_X_509);
}

int rhd_mechanism_is_ecdsa(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_ECDSA || mech == CKM_ECDSA_SHA1 ||
	       mech == CKM_ECDSA_SHA256 || mech == CKM_ECDSA_SHA384 ||
	       mech == CKM_ECDSA_SHA512;
}

static int is_pss(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_RSA_PKCS_PSS || mech == CKM_SHA1_RSA_PKCS_PSS ||
	       mech == CKM_SHA256_RSA_PKCS_PSS ||
	       mech == CKM_SHA384_RSA_PKCS_PSS ||
	       mech == CKM_SHA512_RSA_PKCS_PSS;
}

static int is_rsa(CK_MECHANISM_TYPE mech)
{
	return is_pss(mech) || mech == CKM_RSA_PKCS ||
	       mech == CKM_SHA1_RSA_PKCS || mech == CKM_SHA256_RSA_PKCS ||
	       mech == CKM_SHA384_RSA_PKCS || mech == CKM_SHA512_RSA_PKCS ||
	       mech == CKM_RSA_X_509;
}

/* Key sizes in bytes, as PKCS#11 gives them for AES and HMAC; in bits for
 * generic secret generation, EC and RSA. */
static int secret_mechanism_info(CK_MECHANISM_TYPE mech,
				 CK_MECHANISM_INFO *info)
{
	if (mech == CKM_AES_KEY_GEN)
		*info = (CK_MECHANISM_INFO){16, 32, CKF_GENERATE};
	else if (mech == CKM_GENERIC_SECRET_KEY_GEN)
		*info = (CK_MECHANISM_INFO){RHD_SECRET_MIN_LEN * 8,
					    RHD_SECRET_MAX_LEN * 8,
					    CKF_GENERATE};
	else if (mech == CKM_AES_CMAC)
		*info = (CK_MECHANISM_INFO){16, 32, CKF_SIGN | CKF_VERIFY};
	else if (rhd_mechanism_is_cipher(mech))
		*info = (CK_MECHANISM_INFO){16, 32, CKF_ENCRYPT | CKF_DECRYPT};
	else if (mech == CKM_ECDH1_DERIVE)
		*info = (CK_MECHANISM_INFO){RHD_EC_MIN_BITS, RHD_EC_MAX_BITS,
					    CKF_DERIVE | CKF_EC_F_P |
						    CKF_EC_NAMEDCURVE |
						    CKF_EC_UNCOMPRESS};
	else if (mech == CKM_HKDF_DERIVE)
		*info = (CK_MECHANISM_INFO){RHD_SECRET_MIN_LEN,
					    RHD_SECRET_MAX_LEN, CKF_DERIVE};
	else if (mech == CKM_RSA_PKCS_OAEP)
		*info = (CK_MECHANISM_INFO){
			rhd_rsa_min_bits(), RHD_RSA_MAX_BITS,
			CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP};
	else if (mech == CKM_AES_KEY_WRAP || mech == CKM_AES_KEY_WRAP_KWP)
		*info = (CK_MECHANISM_INFO){16, 32, CKF_WRAP | CKF_UNWRAP};
	else if (rhd_mechanism_is_mac(mech))
		*info = (CK_MECHANISM_INFO){RHD_SECRET_MIN_LEN,
					    RHD_SECRET_MAX_LEN,
					    CKF_SIGN | CKF_VERIFY};
	else
		return 0;
	return 1;
}

int rhd_mechanism_info(CK_MECHANISM_TYPE mech, CK_MECHANISM_INFO *info)
{
	const CK_FLAGS ec = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
	const CK_ULONG rsa_min = rhd_rsa_min_bits();
	memset(info, 0, sizeof(*info));
	const int legacy = rhd_legacy_allowed();
	if (!legacy && legacy_only(RHD_OP_VERIFY, mech))
		return 0;
	if (mech == CKM_EC_KEY_PAIR_GEN)
		*info = (CK_MECHANISM_INFO){RHD_EC_MIN_BITS, RHD_EC_MAX_BITS,
					    CKF_GENERATE_KEY_PAIR | ec};
	else if (rhd_mechanism_is_ecdsa(mech))
		*info = (CK_MECHANISM_INFO){RHD_EC_MIN_BITS, RHD_EC_MAX_BITS,
					    CKF_SIGN | CKF_VERIFY | ec};
	else if (mech == CKM_EC_EDWARDS_KEY_PAIR_GEN)
		*info = (CK_MECHANISM_INFO){RHD_ED25519_BITS, RHD_ED25519_BITS,
					    CKF_GENERATE_KEY_PAIR |
						    CKF_EC_NAMEDCURVE};
	else if (mech == CKM_EDDSA)
		*info = (CK_MECHANISM_INFO){RHD_ED25519_BITS, RHD_ED25519_BITS,
					    CKF_SIGN | CKF_VERIFY |
						    CKF_EC_NAMEDCURVE};
	else if (mech == CKM_RSA_PKCS_KEY_PAIR_GEN)
		*info = (CK_MECHANISM_INFO){rsa_min, RHD_RSA_GEN_MAX_BITS,
					    CKF_GENERATE_KEY_PAIR};
	else if (mech == CKM_RSA_X_509)
		*info = (CK_MECHANISM_INFO){rsa_min, RHD_RSA_MAX_BITS,
					    CKF_VERIFY |
						    (legacy ? CKF_SIGN : 0)};
	else if (mech == CKM_RSA_PKCS && rhd_pkcs1_encryption_allowed())
		*info = (CK_MECHANISM_INFO){rsa_min, RHD_RSA_MAX_BITS,
					    CKF_SIGN | CKF_VERIFY |
						    CKF_ENCRYPT | CKF_DECRYPT};
	else if (is_rsa(mech))
		*info = (CK_MECHANISM_INFO){rsa_min, RHD_RSA_MAX_BITS,
					    CKF_SIGN | CKF_VERIFY};
	else if (rhd_crypto_hash_of(mech))
		info->flags = CKF_DIGEST;
	else if (!secret_mechanism_info(mech, info))
		return 0;
	/* Performed by the device (the daemon), never by the client library. */
	info->flags |= CKF_HW;
	return 1;
}

static uint64_t version_of(rhd_engine_t *engine, const rhd_handle_t *h)
{
	return rhd_token_object_version(rhd_engine_token(engine, h->slot),
					h->store_id);
}

/* The key's CKA_ALLOWED_MECHANISMS (8-byte little-endian entries). */
static void cache_allowed(rhd_key_cache_t *k, const rhd_attr_t *a)
{
	k->has_allowed = a != NULL;
	if (!a || !a->len)
		return;
	k->allowed = malloc(a->len);
	if (!k->allowed)
		return; /* has_allowed with none: nothing is allowed */
	k->n_allowed = a->len / 8;
	for (size_t i = 0; i < k->n_allowed; i++) {
		uint64_t v = 0;
		for (int b = 7; b >= 0; b--)
			v = v << 8 | a->value[8 * i + (size_t)b];
		k->allowed[i] = v;
	}
}

static void cache_derive_template(rhd_key_cache_t *k, const rhd_attr_t *a)
{
	k->has_derive_template = a != NULL;
	if (!a || !(k->derive_template = malloc(a->len ? a->len : 1)))
		return;
	if (a->len)
		memcpy(k->derive_template, a->value, a->len);
	k->derive_template_len = a->len;
}

static int mechanism_allowed(const rhd_key_cache_t *k, CK_MECHANISM_TYPE mech)
{
	if (!k->has_allowed)
		return 1;
	for (size_t i = 0; i < k->n_allowed; i++)
		if (k->allowed[i] == mech)
			return 1;
	return 0;
}

/* The key built from its object, at version: no lock is needed. */
static void key_build(const rhd_object_t *obj, uint64_t version,
		      rhd_key_cache_t *k)
{
	memset(k, 0, sizeof(*k));
	k->version = version;
	rhd_object_ulong(obj, CKA_CLASS, &k->cls);
	rhd_object_ulong(obj, CKA_KEY_TYPE, &k->key_type);
	k->can_sign = rhd_object_bool(obj, CKA_SIGN, 0);
	k->can_verify = rhd_object_bool(obj, CKA_VERIFY, 0);
	k->can_encrypt = rhd_object_bool(obj, CKA_ENCRYPT, 0);
	k->can_decrypt = rhd_object_bool(obj, CKA_DECRYPT, 0);
	k->can_derive = rhd_object_bool(obj, CKA_DERIVE, 0);
	k->always_sensitive = rhd_object_bool(obj, CKA_ALWAYS_SENSITIVE, 0);
	k->never_extractable = rhd_object_bool(obj, CKA_NEVER_EXTRACTABLE, 0);
	cache_allowed(k, rhd_object_find(obj, CKA_ALLOWED_MECHANISMS));
	cache_derive_template(k, rhd_object_find(obj, CKA_DERIVE_TEMPLATE));
	/* Only private and secret keys take room in the secure heap. */
	if (k->cls == CKO_PUBLIC_KEY ||
	    ((k->cls == CKO_PRIVATE_KEY || k->cls == CKO_SECRET_KEY) &&
	     rhd_crypto_key_room()))
		k->key = rhd_key_new(obj);
}

static int key_current(rhd_engine_t *engine, const rhd_handle_t *h)
{
	return h->key.key && h->key.version == version_of(engine, h);
}

/* Loads, unseals and builds the key once; later inits reuse it until the
 * key changes (its version moves). The lock is held throughout: inits on
 * a worker have had rhd_op_prime_key do this without it. */
static CK_RV cache_key(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s,
		       rhd_handle_t *h)
{
	if (key_current(engine, h))
		return CKR_OK;
	uint64_t version = version_of(engine, h);
	rhd_handle_drop_key(h);
	rhd_object_t obj;
	if (rhd_objects_load(engine, app, s, h->handle, &obj) != CKR_OK)
		return CKR_KEY_HANDLE_INVALID;
	key_build(&obj, version, &h->key);
	rhd_object_cleanup(&obj);
	return CKR_OK;
}

int rhd_op_key_cached(rhd_engine_t *engine, rhd_app_t *app, uint64_t handle)
{
	rhd_handle_t *h = rhd_app_handle_find(app, handle);
	return h && key_current(engine, h);
}

/* Under the lock: whether handle's key needs building, and if so what
 * reading it takes. */
static int prime_begin(rhd_engine_t *engine, rhd_app_t *app, uint64_t session,
		       uint64_t handle, rhd_stored_ref_t *ref,
		       rhd_object_t *obj, uint64_t *version)
{
	rhd_session_t *s = rhd_session_find(app, session);
	rhd_handle_t *h =
		s ? rhd_objects_visible(engine, app, s, handle) : NULL;
	if (!h || key_current(engine, h))
		return 0;
	*version = version_of(engine, h);
	return rhd_objects_read_begin(engine, app, s, handle, ref, obj) ==
	       CKR_OK;
}

void rhd_op_prime_key(rhd_engine_t *engine, rhd_app_t *app, uint64_t session,
		      uint64_t handle)
{
	rhd_stored_ref_t ref = {0};
	rhd_object_t obj = {0};
	uint64_t version = 0;
	pthread_mutex_lock(&app->lock);
	int need =
		prime_begin(engine, app, session, handle, &ref, &obj, &version);
	pthread_mutex_unlock(&app->lock);
	uint64_t store_id = ref.store_id;
	if (need && store_id)
		need = rhd_objects_read_stored(engine, &ref, &obj) == CKR_OK;
	rhd_stored_ref_cleanup(&ref);
	rhd_key_cache_t k = {0};
	if (need)
		key_build(&obj, version, &k);
	rhd_object_cleanup(&obj);
	if (!need)
		return;
	/* Another thread may have built it, or the key gone, meanwhile. */
	pthread_mutex_lock(&app->lock);
	rhd_handle_t *h = rhd_app_handle_find(app, handle);
	if (h && h->store_id == store_id && !key_current(engine, h)) {
		rhd_handle_drop_key(h);
		h->key = k;
		memset(&k, 0, sizeof(k));
	}
	pthread_mutex_unlock(&app->lock);
	rhd_key_cache_clear(&k);
}

static uint64_t wanted_class(rhd_op_kind_t kind, CK_MECHANISM_TYPE mech)
{
	if (rhd_mechanism_is_mac(mech) || rhd_mechanism_is_cipher(mech))
		return CKO_SECRET_KEY;
	return kind == RHD_OP_SIGN || kind == RHD_OP_DECRYPT ? CKO_PRIVATE_KEY
							     : CKO_PUBLIC_KEY;
}

static uint64_t wanted_type(CK_MECHANISM_TYPE mech)
{
	if (rhd_mechanism_is_mac(mech))
		return rhd_mac_key_type(mech);
	if (rhd_mechanism_is_cipher(mech))
		return CKK_AES;
	if (mech == CKM_EDDSA)
		return CKK_EC_EDWARDS;
	return rhd_mechanism_is_ecdsa(mech) ? CKK_EC : CKK_RSA;
}

/* The key's usage flag for the operation. */
static int permits(const rhd_key_cache_t *k, rhd_op_kind_t kind)
{
	switch (kind) {
	case RHD_OP_SIGN:
		return k->can_sign;
	case RHD_OP_VERIFY:
		return k->can_verify;
	case RHD_OP_ENCRYPT:
		return k->can_encrypt;
	default:
		return k->can_decrypt;
	}
}

/* The key of an init, by the specification's checks. */
static CK_RV key_for(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s,
		     rhd_op_kind_t kind, CK_MECHANISM_TYPE mech,
		     uint64_t handle, rhd_op_t *op)
{
	rhd_handle_t *h = rhd_objects_visible(engine, app, s, handle);
	if (!h || cache_key(engine, app, s, h) != CKR_OK)
		return CKR_KEY_HANDLE_INVALID;
	const rhd_key_cache_t *k = &h->key;
	if (k->cls != wanted_class(kind, mech) ||
	    k->key_type != wanted_type(mech))
		return CKR_KEY_TYPE_INCONSISTENT;
	if (!permits(k, kind))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	if (!mechanism_allowed(k, mech))
		return CKR_MECHANISM_INVALID;
	if (!k->key)
		return rhd_crypto_key_not_built();
	/* An RSA key imported under allow-legacy, used without it. */
	if (rhd_key_is_rsa(k->key) &&
	    rhd_key_sig_len(k->key) * 8 < rhd_rsa_min_bits())
		return CKR_KEY_SIZE_RANGE;
	op->key = rhd_key_ref(k->key);
	/* A copy failing only costs the sign a context of its own. */
	if (kind == RHD_OP_SIGN)
		op->signer = rhd_key_signer(k->key);
	op->key_store_id = h->session_obj ? 0 : h->store_id;
	return CKR_OK;
}

/* The hash of PSS parameters whose MGF1 uses the same one; 0 otherwise. */
static CK_MECHANISM_TYPE pss_hash(uint64_t hash_alg, uint64_t mgf)
{
	static const struct {
		uint64_t hash, mgf;
	} pairs[] = {{CKM_SHA_1, CKG_MGF1_SHA1},
		     {CKM_SHA256, CKG_MGF1_SHA256},
		     {CKM_SHA384, CKG_MGF1_SHA384},
		     {CKM_SHA512, CKG_MGF1_SHA512}};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (pairs[i].hash == hash_alg && pairs[i].mgf == mgf)
			return hash_alg;
	return 0;
}

/* How the RSA mechanism pads; PSS parameters are checked against the
 * mechanism and the key (the salt must fit: k - hLen - 2 bytes at most). */
static CK_RV rsa_padding(rhd_op_t *op, const Remhsm__Mechanism *m)
{
	CK_MECHANISM_TYPE mech = m->type;
	if (!is_pss(mech)) {
		op->pad.scheme =
			mech == CKM_RSA_X_509 ? RHD_PAD_RAW : RHD_PAD_PKCS1;
		op->pad.hash = rhd_crypto_hash_of(mech);
		return CKR_OK;
	}
	if (m->parameter_case != REMHSM__MECHANISM__PARAMETER_PSS || !m->pss)
		return CKR_MECHANISM_PARAM_INVALID;
	CK_MECHANISM_TYPE hash = pss_hash(m->pss->hash_alg, m->pss->mgf);
	CK_MECHANISM_TYPE own = rhd_crypto_hash_of(mech);
	long room = (long)rhd_key_sig_len(op->key) -
		    (long)rhd_crypto_hash_len(hash) - 2;
	if (!hash || (own && own != hash) ||
	    m->pss->salt_len > (uint64_t)(room > 0 ? room : 0))
		return CKR_MECHANISM_PARAM_INVALID;
	op->pad = (rhd_padding_t){RHD_PAD_PSS, hash, (int)m->pss->salt_len};
	return CKR_OK;
}

/* A cipher mechanism's parameters, as the wire carries them: an IV
 * (CBC), counter bits and block (CTR), or IV, AAD and tag bits (GCM). */
static CK_RV cipher_params(const Remhsm__Mechanism *m, rhd_cipher_params_t *p)
{
	memset(p, 0, sizeof(*p));
	p->mech = m->type;
	switch (m->parameter_case) {
	case REMHSM__MECHANISM__PARAMETER_RAW:
		p->iv = m->raw.data;
		p->iv_len = m->raw.len;
		break;
	case REMHSM__MECHANISM__PARAMETER_CTR:
		p->iv = m->ctr->counter_block.data;
		p->iv_len = m->ctr->counter_block.len;
		p->counter_bits = m->ctr->counter_bits > 128
					  ? 0
					  : (size_t)m->ctr->counter_bits;
		break;
	case REMHSM__MECHANISM__PARAMETER_GCM:
		p->iv = m->gcm->iv.data;
		p->iv_len = m->gcm->iv.len;
		p->aad = m->gcm->aad.data;
		p->aad_len = m->gcm->aad.len;
		p->tag_bits =
			m->gcm->tag_bits > 128 ? 0 : (size_t)m->gcm->tag_bits;
		break;
	default:
		break;
	}
	/* Each mode takes its own kind of parameter, ECB none. */
	int want = m->type == CKM_AES_ECB
			   ? REMHSM__MECHANISM__PARAMETER__NOT_SET
		   : m->type == CKM_AES_CTR ? REMHSM__MECHANISM__PARAMETER_CTR
		   : m->type == CKM_AES_GCM ? REMHSM__MECHANISM__PARAMETER_GCM
					    : REMHSM__MECHANISM__PARAMETER_RAW;
	return m->type == CKM_AES_ECB || (int)m->parameter_case == want
		       ? CKR_OK
		       : CKR_MECHANISM_PARAM_INVALID;
}

static CK_RV cipher_start(rhd_op_t *op, rhd_op_kind_t kind,
			  const Remhsm__Mechanism *m)
{
	rhd_cipher_params_t p;
	CK_RV rv = cipher_params(m, &p);
	return rv == CKR_OK
		       ? rhd_cipher_new(op->key, &p, kind == RHD_OP_ENCRYPT,
					&op->cipher)
		       : rv;
}

/* The MGF1 of a CKG_MGF1_* code, as the hash it uses; 0 for others. */
static CK_MECHANISM_TYPE mgf1_hash(uint64_t mgf)
{
	static const struct {
		uint64_t mgf, hash;
	} pairs[] = {{CKG_MGF1_SHA1, CKM_SHA_1},
		     {CKG_MGF1_SHA224, CKM_SHA224},
		     {CKG_MGF1_SHA256, CKM_SHA256},
		     {CKG_MGF1_SHA384, CKM_SHA384},
		     {CKG_MGF1_SHA512, CKM_SHA512}};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (pairs[i].mgf == mgf)
			return pairs[i].hash;
	return 0;
}

CK_RV rhd_oaep_params(const Remhsm__Mechanism *m, rhd_oaep_t *out)
{
	if (m->parameter_case != REMHSM__MECHANISM__PARAMETER_OAEP)
		return CKR_MECHANISM_PARAM_INVALID;
	uint64_t hash = m->oaep->hash_alg;
	CK_MECHANISM_TYPE mgf = mgf1_hash(m->oaep->mgf);
	int known = hash == CKM_SHA_1 || hash == CKM_SHA224 ||
		    hash == CKM_SHA256 || hash == CKM_SHA384 ||
		    hash == CKM_SHA512;
	if (!known || !mgf || m->oaep->label.len > MAX_OAEP_LABEL)
		return CKR_MECHANISM_PARAM_INVALID;
	*out = (rhd_oaep_t){hash, mgf, m->oaep->label.data, m->oaep->label.len};
	return CKR_OK;
}

/* The operation keeps its own copy of the label. */
static CK_RV oaep_start(rhd_op_t *op, const Remhsm__Mechanism *m)
{
	rhd_oaep_t p;
	CK_RV rv = rhd_oaep_params(m, &p);
	if (rv == CKR_OK && !rhd_key_is_rsa(op->key))
		rv = CKR_MECHANISM_PARAM_INVALID;
	if (rv != CKR_OK)
		return rv;
	if (p.label_len && !(op->oaep_label = malloc(p.label_len)))
		return CKR_DEVICE_MEMORY;
	if (p.label_len)
		memcpy(op->oaep_label, p.label, p.label_len);
	op->rsa_cipher = 1;
	op->oaep_params =
		(rhd_oaep_t){p.hash, p.mgf_hash, op->oaep_label, p.label_len};
	return CKR_OK;
}

static int fits(rhd_op_kind_t kind, CK_MECHANISM_TYPE mech)
{
	if (!rhd_legacy_allowed() && legacy_only(kind, mech))
		return 0;
	if (kind == RHD_OP_DIGEST)
		return rhd_crypto_hash_of(mech) &&
		       !rhd_mechanism_is_ecdsa(mech) && !is_rsa(mech);
	if (kind == RHD_OP_ENCRYPT || kind == RHD_OP_DECRYPT)
		return rhd_mechanism_is_cipher(mech) ||
		       mech == CKM_RSA_PKCS_OAEP ||
		       (mech == CKM_RSA_PKCS && rhd_pkcs1_encryption_allowed());
	if (rhd_mechanism_is_mac(mech))
		return 1;
	return rhd_mechanism_is_ecdsa(mech) || is_rsa(mech) ||
	       mech == CKM_EDDSA;
}

CK_RV rhd_op_init(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s,
		  rhd_op_kind_t kind, const Remhsm__Mechanism *mech,
		  uint64_t key)
{
	rhd_op_t *op = &s->ops[kind];
	if (op->active)
		return CKR_OPERATION_ACTIVE;
	/* The type first; a mechanism that takes no parameter ignores any
	 * it was sent, as the module does. */
	if (!fits(kind, mech->type))
		return CKR_MECHANISM_INVALID;
	CK_RV rv = CKR_OK;
	if (kind != RHD_OP_DIGEST)
		rv = key_for(engine, app, s, kind, mech->type, key, op);
	int cipher = kind == RHD_OP_ENCRYPT || kind == RHD_OP_DECRYPT;
	if (rv == CKR_OK && is_rsa(mech->type) && !cipher)
		rv = rsa_padding(op, mech);
	if (rv == CKR_OK && rhd_mechanism_is_mac(mech->type) &&
	    !(op->mac = rhd_mac_new(op->key, mech->type)))
		rv = CKR_DEVICE_MEMORY;
	if (rv == CKR_OK && rhd_mechanism_is_cipher(mech->type))
		rv = cipher_start(op, kind, mech);
	if (rv == CKR_OK && mech->type == CKM_RSA_PKCS_OAEP)
		rv = oaep_start(op, mech);
	if (rv == CKR_OK && cipher && mech->type == CKM_RSA_PKCS)
		op->rsa_cipher = 1;
	/* The running hash of hash-then-sign mechanisms and of digests; raw
	 * mechanisms have none. */
	CK_MECHANISM_TYPE hash = rhd_crypto_hash_of(mech->type);
	if (rv == CKR_OK && hash && !(op->md = rhd_digest_new(hash)))
		rv = CKR_DEVICE_MEMORY;
	if (rv != CKR_OK) {
		rhd_op_end(op);
		return rv;
	}
	op->active = 1;
	op->mech = mech->type;
	return CKR_OK;
}

CK_RV rhd_op_update(rhd_session_t *s, rhd_op_kind_t kind, const uint8_t *data,
		    size_t len)
{
	rhd_op_t *op = &s->ops[kind];
	if (!op->active)
		return CKR_OPERATION_NOT_INITIALIZED;
	/* Raw mechanisms (ECDSA, RSA PKCS/PSS/X.509) and EdDSA are single-part
	 * only. */
	CK_RV rv = op->mac  ? rhd_mac_update(op->mac, data, len)
		   : op->md ? rhd_digest_update(op->md, data, len)
			    : CKR_FUNCTION_NOT_SUPPORTED;
	if (rv != CKR_OK)
		rhd_op_end(op);
	else
		op->updated = 1;
	return rv;
}

/* What the key works on: the digest, or the caller's input for raw
 * mechanisms (a hash for ECDSA and PSS, a DigestInfo for RSA PKCS). */
static CK_RV input_of(rhd_op_t *op, int single, const uint8_t *data, size_t len,
		      uint8_t *in, size_t *in_len)
{
	if (!op->md) {
		size_t max = op->pad.scheme ? MAX_RAW_INPUT : MAX_RAW_HASH;
		if (len > max || (op->pad.scheme == RHD_PAD_PSS &&
				  len != rhd_crypto_hash_len(op->pad.hash)))
			return CKR_DATA_LEN_RANGE;
		if (len) /* empty data may come as NULL */
			memcpy(in, data, len);
		*in_len = len;
		return CKR_OK;
	}
	CK_RV rv = single ? rhd_digest_update(op->md, data, len) : CKR_OK;
	return rv == CKR_OK ? rhd_digest_final(op->md, in, in_len) : rv;
}

static size_t output_len(const rhd_op_t *op, rhd_op_kind_t kind)
{
	return kind == RHD_OP_DIGEST ? rhd_digest_len(op->md)
	       : op->mac	     ? rhd_mac_len(op->mac)
				     : rhd_key_sig_len(op->key);
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
	/* The single-part call after updates ends the operation too. */
	if (rv == CKR_OPERATION_ACTIVE)
		rhd_op_end(op);
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

/* The padding the key applies: raw PKCS#1 input is already a DigestInfo,
 * with no digest to name. */
static rhd_padding_t padding_of(const rhd_op_t *op)
{
	rhd_padding_t pad = op->pad;
	if (pad.scheme == RHD_PAD_PKCS1 && !op->md)
		pad.hash = 0;
	return pad;
}

/* A MAC: made, or compared in constant time with the one given. */
static CK_RV mac_complete(rhd_op_t *taken, rhd_op_kind_t kind, int single,
			  const uint8_t *data, size_t len, uint8_t *out,
			  size_t out_len)
{
	CK_RV rv = single ? rhd_mac_update(taken->mac, data, len) : CKR_OK;
	if (rv == CKR_OK)
		rv = kind == RHD_OP_SIGN
			     ? rhd_mac_final(taken->mac, out, out_len)
			     : rhd_mac_verify(taken->mac, out, out_len);
	rhd_op_end(taken);
	return rv;
}

/* PureEdDSA signs the message itself, of any length the frame carries:
 * single-part only (updates were refused), a final call without them
 * signs the empty message. */
static CK_RV eddsa_complete(rhd_op_t *taken, rhd_op_kind_t kind,
			    const uint8_t *data, size_t len, uint8_t *out,
			    size_t out_len)
{
	static const uint8_t none[1];
	const uint8_t *msg = len ? data : none;
	const rhd_padding_t pad = {RHD_PAD_NONE, 0, 0};
	CK_RV rv = kind == RHD_OP_SIGN ? rhd_key_sign(taken->key, NULL, &pad,
						      msg, len, out, out_len)
				       : rhd_key_verify(taken->key, &pad, msg,
							len, out, out_len);
	rhd_op_end(taken);
	return rv;
}

CK_RV rhd_op_complete(rhd_op_t *taken, rhd_op_kind_t kind, int single,
		      const uint8_t *data, size_t len, uint8_t *out,
		      size_t out_len)
{
	if (taken->mac)
		return mac_complete(taken, kind, single, data, len, out,
				    out_len);
	if (taken->mech == CKM_EDDSA)
		return eddsa_complete(taken, kind, data, len, out, out_len);
	uint8_t in[MAX_RAW_INPUT];
	size_t in_len = 0;
	CK_RV rv = input_of(taken, single, data, len, in, &in_len);
	rhd_padding_t pad = padding_of(taken);
	if (rv == CKR_OK && kind == RHD_OP_DIGEST)
		memcpy(out, in, in_len);
	else if (rv == CKR_OK && kind == RHD_OP_SIGN)
		rv = rhd_key_sign(taken->key, taken->signer, &pad, in, in_len,
				  out, out_len);
	else if (rv == CKR_OK)
		rv = rhd_key_verify(taken->key, &pad, in, in_len, out, out_len);
	rhd_op_end(taken);
	return rv;
}

size_t rhd_op_cipher_room(const rhd_session_t *s, rhd_op_kind_t kind,
			  rhd_cipher_step_t step, size_t in_len)
{
	const rhd_op_t *op = &s->ops[kind];
	if (op->active && op->rsa_cipher)
		return rhd_key_sig_len(op->key);
	if (!op->active || !op->cipher)
		return 0;
	if (step == RHD_STEP_UPDATE)
		return rhd_cipher_update_len(op->cipher, in_len);
	size_t room = rhd_cipher_final_max(op->cipher);
	return step == RHD_STEP_SINGLE ? room + in_len : room;
}

/* An update: its output is known before it runs, so a short buffer or a
 * length query leaves the operation as it was. */
static CK_RV cipher_update(rhd_op_t *op, const uint8_t *in, size_t in_len,
			   int has_buffer, uint8_t *out, size_t *out_len)
{
	size_t cap = *out_len;
	*out_len = rhd_cipher_update_len(op->cipher, in_len);
	if (!has_buffer || cap < *out_len)
		return has_buffer ? CKR_BUFFER_TOO_SMALL : CKR_OK;
	CK_RV rv = rhd_cipher_update(op->cipher, in, in_len, out, out_len);
	if (rv != CKR_OK)
		rhd_op_end(op);
	else
		op->updated = 1;
	return rv;
}

/* RSA encryption is single-part. A length query is answered with the
 * modulus's bytes (enough for any output); with a buffer the key works,
 * and a short buffer then learns the exact length and keeps the
 * operation. */
static CK_RV rsa_cipher_step(rhd_op_t *op, rhd_op_kind_t kind,
			     rhd_cipher_step_t step, const uint8_t *in,
			     size_t in_len, int has_buffer, uint8_t *out,
			     size_t *out_len)
{
	if (step != RHD_STEP_SINGLE) {
		rhd_op_end(op);
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	size_t cap = *out_len;
	*out_len = rhd_key_sig_len(op->key);
	if (!has_buffer)
		return CKR_OK;
	int encrypt = kind == RHD_OP_ENCRYPT;
	CK_RV rv =
		op->mech == CKM_RSA_PKCS
			? rhd_key_rsa_pkcs1(op->key, encrypt, in, in_len, out,
					    out_len)
			: rhd_key_rsa_oaep(op->key, encrypt, &op->oaep_params,
					   in, in_len, out, out_len);
	if (rv == CKR_OK && cap < *out_len)
		return CKR_BUFFER_TOO_SMALL;
	rhd_op_end(op);
	return rv;
}

CK_RV rhd_op_cipher(rhd_session_t *s, rhd_op_kind_t kind,
		    rhd_cipher_step_t step, const uint8_t *in, size_t in_len,
		    int has_buffer, uint8_t *out, size_t *out_len)
{
	rhd_op_t *op = &s->ops[kind];
	CK_RV rv = state_allows(op, step == RHD_STEP_SINGLE);
	if (rv == CKR_OPERATION_ACTIVE)
		rhd_op_end(op);
	if (rv != CKR_OK)
		return rv;
	if (op->rsa_cipher)
		return rsa_cipher_step(op, kind, step, in, in_len, has_buffer,
				       out, out_len);
	if (step == RHD_STEP_UPDATE)
		return cipher_update(op, in, in_len, has_buffer, out, out_len);
	/* The last call runs on a copy: only an answer that goes out, or an
	 * error, ends the operation; a length query or a short buffer keeps
	 * it as it was. */
	size_t cap = *out_len, n = 0, m = 0;
	rhd_cipher_t *trial = rhd_cipher_dup(op->cipher);
	rv = trial ? CKR_OK : CKR_DEVICE_MEMORY;
	if (rv == CKR_OK && step == RHD_STEP_SINGLE)
		rv = rhd_cipher_update(trial, in, in_len, out, &n);
	if (rv == CKR_OK)
		rv = rhd_cipher_final(trial, out + n, &m);
	rhd_cipher_free(trial);
	*out_len = n + m;
	if (rv == CKR_OK && (!has_buffer || cap < n + m))
		return has_buffer ? CKR_BUFFER_TOO_SMALL : CKR_OK;
	rhd_op_end(op);
	return rv;
}

CK_RV rhd_op_derive_base(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s,
			 uint64_t handle, CK_MECHANISM_TYPE mech,
			 rhd_derive_base_t *out)
{
	memset(out, 0, sizeof(*out));
	rhd_handle_t *h = rhd_objects_visible(engine, app, s, handle);
	if (!h || cache_key(engine, app, s, h) != CKR_OK)
		return CKR_KEY_HANDLE_INVALID;
	const rhd_key_cache_t *k = &h->key;
	int hkdf = mech == CKM_HKDF_DERIVE;
	if (k->cls != (hkdf ? CKO_SECRET_KEY : CKO_PRIVATE_KEY) ||
	    k->key_type != (hkdf ? CKK_GENERIC_SECRET : CKK_EC))
		return CKR_KEY_TYPE_INCONSISTENT;
	if (!k->can_derive)
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	if (!mechanism_allowed(k, mech))
		return CKR_MECHANISM_INVALID;
	if (!k->key)
		return rhd_crypto_key_not_built();
	if (k->has_derive_template &&
	    (!k->derive_template ||
	     rhd_object_set(&out->holder, CKA_DERIVE_TEMPLATE,
			    k->derive_template,
			    k->derive_template_len) != CKR_OK))
		return CKR_DEVICE_MEMORY;
	out->key = rhd_key_ref(k->key);
	out->always_sensitive = k->always_sensitive;
	out->never_extractable = k->never_extractable;
	return CKR_OK;
}
