#include "crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_ed.h"
#include "crypto_secret.h"
#include "log.h"

static const EVP_MD *md_of_hash(CK_MECHANISM_TYPE hash);

static size_t secure_heap_size;

int rhd_crypto_secure_heap_init(size_t size)
{
	if (!size)
		return 0;
	/* The smallest block: a P-256 scalar's BIGNUM words. */
	int rc = CRYPTO_secure_malloc_init(size, 16);
	if (rc)
		secure_heap_size = size;
	return rc;
}

void rhd_crypto_secure_heap_usage(size_t *size, size_t *used)
{
	/* CRYPTO_secure_used takes a lock that exists only once the heap
	 * does. */
	*size = secure_heap_size;
	*used = secure_heap_size ? CRYPTO_secure_used() : 0;
}

/* A quarter of the heap is kept for what OpenSSL needs there besides
 * cached keys: TLS handshakes' ephemeral keys and every signature's
 * temporaries, which fail when it is full (there is no fallback to the
 * ordinary heap). */
static int secure_heap_low(void)
{
	size_t size, used;
	rhd_crypto_secure_heap_usage(&size, &used);
	return size && size - used <= size / 4;
}

static atomic_int heap_low_said;

int rhd_crypto_key_room(void)
{
	if (!secure_heap_low()) {
		atomic_store(&heap_low_said, 0);
		return 1;
	}
	return 0;
}

CK_RV rhd_crypto_key_not_built(void)
{
	ERR_clear_error();
	if (!secure_heap_low())
		return CKR_DEVICE_ERROR;
	size_t size, used;
	rhd_crypto_secure_heap_usage(&size, &used);
	if (!atomic_exchange(&heap_low_said, 1))
		RHD_ERROR("event=secure-heap-full bytes=%zu used=%zu "
			  "effect=\"keys not cached already cannot be "
			  "used\" hint=\"raise secure-heap-kb\"",
			  size, used);
	return CKR_DEVICE_MEMORY;
}

static const char *curve_name(int nid)
{
	return nid == NID_X9_62_prime256v1 ? "P-256"
	       : nid == NID_secp384r1	   ? "P-384"
	       : nid == NID_secp521r1	   ? "P-521"
					   : NULL;
}

/* A key value as a secure BIGNUM: cleared when freed, and a parameter list
 * built from it keeps its copy (little-endian) in a block that
 * OSSL_PARAM_free clears too; with OpenSSL's secure heap set up, both live
 * in locked memory left out of core dumps. A plain BIGNUM's copy in the
 * list was freed uncleared: the one scalar found after logout. */
static BIGNUM *secret_bn(const rhd_attr_t *a)
{
	BIGNUM *bn = BN_secure_new();
	if (bn && !BN_bin2bn(a->value, (int)a->len, bn)) {
		BN_clear_free(bn);
		return NULL;
	}
	return bn;
}

static EVP_PKEY *ec_key(const rhd_object_t *obj)
{
	const rhd_attr_t *params = rhd_object_find(obj, CKA_EC_PARAMS);
	const rhd_attr_t *value = rhd_object_find(obj, CKA_VALUE);
	const uint8_t *pt;
	size_t pt_len;
	const char *curve = params ? curve_name(rhd_ec_curve(params)) : NULL;
	if (!curve ||
	    rhd_ec_point(rhd_object_find(obj, CKA_EC_POINT), &pt, &pt_len) < 0)
		return NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *d = value ? secret_bn(value) : NULL;
	OSSL_PARAM *list = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	int ok = bld &&
		 OSSL_PARAM_BLD_push_utf8_string(
			 bld, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) &&
		 OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
						  pt, pt_len) &&
		 (!value || (d && OSSL_PARAM_BLD_push_BN(
					  bld, OSSL_PKEY_PARAM_PRIV_KEY, d)));
	if (ok && (list = OSSL_PARAM_BLD_to_param(bld)) &&
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) &&
	    EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(
			ctx, &key,
			value ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, list);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(list); /* d's part of it is cleared: see secret_bn */
	BN_clear_free(d);
	OSSL_PARAM_BLD_free(bld);
	return key;
}

static CK_RV set_point(rhd_object_t *obj, const uint8_t *pt, size_t len)
{
	uint8_t der[3 + RHD_EC_MAX_POINT];
	size_t der_len = rhd_ec_point_der(pt, len, der);
	return der_len ? rhd_object_set(obj, CKA_EC_POINT, der, der_len)
		       : CKR_GENERAL_ERROR;
}

CK_RV rhd_crypto_ec_generate(const rhd_attr_t *params, rhd_object_t *pub,
			     rhd_object_t *priv)
{
	int nid = rhd_ec_curve(params);
	if (!nid)
		return CKR_CURVE_NOT_SUPPORTED;
	EVP_PKEY *key = EVP_EC_gen(curve_name(nid));
	uint8_t pt[RHD_EC_MAX_POINT], d[66];
	size_t pt_len = 0;
	BIGNUM *bn = NULL;
	size_t d_len = (size_t)(EVP_PKEY_get_bits(key) + 7) / 8;
	CK_RV rv = CKR_DEVICE_ERROR;
	if (key &&
	    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt,
					    sizeof(pt), &pt_len) == 1 &&
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1 &&
	    BN_bn2binpad(bn, d, (int)d_len) == (int)d_len) {
		rv = set_point(pub, pt, pt_len);
		if (rv == CKR_OK)
			rv = rhd_object_set(priv, CKA_VALUE, d, d_len);
	}
	OPENSSL_cleanse(d, sizeof(d));
	BN_clear_free(bn);
	EVP_PKEY_free(key);
	return rv;
}

static size_t ec_sig_len(const EVP_PKEY *key)
{
	return 2 * (size_t)((EVP_PKEY_get_bits(key) + 7) / 8);
}

static EVP_PKEY_CTX *ecdsa_signer(EVP_PKEY *key)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	if (ctx && EVP_PKEY_sign_init(ctx) == 1)
		return ctx;
	EVP_PKEY_CTX_free(ctx);
	return NULL;
}

static CK_RV ecdsa_sign(EVP_PKEY *key, EVP_PKEY_CTX *signer,
			const uint8_t *hash, size_t hash_len, uint8_t *sig,
			size_t sig_len)
{
	EVP_PKEY_CTX *ctx = signer ? signer : ecdsa_signer(key);
	uint8_t der[160];
	size_t der_len = sizeof(der);
	ECDSA_SIG *s = NULL;
	CK_RV rv = CKR_DEVICE_ERROR;
	if (ctx && EVP_PKEY_sign(ctx, der, &der_len, hash, hash_len) == 1) {
		const unsigned char *p = der;
		s = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	}
	size_t half = sig_len / 2;
	if (s &&
	    BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, (int)half) == (int)half &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + half, (int)half) ==
		    (int)half)
		rv = CKR_OK;
	ECDSA_SIG_free(s);
	if (ctx != signer)
		EVP_PKEY_CTX_free(ctx);
	return rv;
}

static CK_RV ecdsa_verify(EVP_PKEY *key, const uint8_t *hash, size_t hash_len,
			  const uint8_t *sig, size_t sig_len)
{
	if (sig_len != ec_sig_len(key))
		return CKR_SIGNATURE_LEN_RANGE;
	size_t half = sig_len / 2;
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
	BIGNUM *sv = BN_bin2bn(sig + half, (int)half, NULL);
	unsigned char *der = NULL;
	int der_len = -1;
	if (s && r && sv && ECDSA_SIG_set0(s, r, sv) == 1) {
		r = sv = NULL;
		der_len = i2d_ECDSA_SIG(s, &der);
	}
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(s);
	EVP_PKEY_CTX *ctx = der_len > 0 ? EVP_PKEY_CTX_new(key, NULL) : NULL;
	int ok =
		ctx && EVP_PKEY_verify_init(ctx) == 1 &&
		EVP_PKEY_verify(ctx, der, (size_t)der_len, hash, hash_len) == 1;
	EVP_PKEY_CTX_free(ctx);
	OPENSSL_free(der);
	return ok ? CKR_OK : CKR_SIGNATURE_INVALID;
}

CK_MECHANISM_TYPE rhd_crypto_hash_of(CK_MECHANISM_TYPE mech)
{
	switch (mech) {
	case CKM_SHA_1:
	case CKM_ECDSA_SHA1:
	case CKM_SHA1_RSA_PKCS:
	case CKM_SHA1_RSA_PKCS_PSS:
		return CKM_SHA_1;
	case CKM_SHA256:
	case CKM_ECDSA_SHA256:
	case CKM_SHA256_RSA_PKCS:
	case CKM_SHA256_RSA_PKCS_PSS:
		return CKM_SHA256;
	case CKM_SHA384:
	case CKM_ECDSA_SHA384:
	case CKM_SHA384_RSA_PKCS:
	case CKM_SHA384_RSA_PKCS_PSS:
		return CKM_SHA384;
	case CKM_SHA512:
	case CKM_ECDSA_SHA512:
	case CKM_SHA512_RSA_PKCS:
	case CKM_SHA512_RSA_PKCS_PSS:
		return CKM_SHA512;
	default:
		return 0;
	}
}

static const EVP_MD *md_of_hash(CK_MECHANISM_TYPE hash)
{
	switch (hash) {
	case CKM_SHA_1:
		return EVP_sha1();
	case CKM_SHA256:
		return EVP_sha256();
	case CKM_SHA384:
		return EVP_sha384();
	case CKM_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

size_t rhd_crypto_hash_len(CK_MECHANISM_TYPE hash)
{
	const EVP_MD *md = md_of_hash(hash);
	return md ? (size_t)EVP_MD_get_size(md) : 0;
}

/* --- RSA ------------------------------------------------------------------ */

static const struct {
	uint64_t type;
	const char *param;
} rsa_parts[] = {
	{CKA_MODULUS, OSSL_PKEY_PARAM_RSA_N},
	{CKA_PUBLIC_EXPONENT, OSSL_PKEY_PARAM_RSA_E},
	{CKA_PRIVATE_EXPONENT, OSSL_PKEY_PARAM_RSA_D},
	{CKA_PRIME_1, OSSL_PKEY_PARAM_RSA_FACTOR1},
	{CKA_PRIME_2, OSSL_PKEY_PARAM_RSA_FACTOR2},
	{CKA_EXPONENT_1, OSSL_PKEY_PARAM_RSA_EXPONENT1},
	{CKA_EXPONENT_2, OSSL_PKEY_PARAM_RSA_EXPONENT2},
	{CKA_COEFFICIENT, OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
};
#define RSA_PARTS (sizeof(rsa_parts) / sizeof(rsa_parts[0]))

static EVP_PKEY *rsa_key(const rhd_object_t *obj)
{
	int private_key = rhd_object_find(obj, CKA_PRIVATE_EXPONENT) != NULL;
	size_t n = private_key ? RSA_PARTS : 2;
	BIGNUM *bn[RSA_PARTS] = {NULL};
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	int ok = bld != NULL;
	for (size_t i = 0; i < n && ok; i++) {
		const rhd_attr_t *a = rhd_object_find(obj, rsa_parts[i].type);
		ok = a && (bn[i] = secret_bn(a)) &&
		     OSSL_PARAM_BLD_push_BN(bld, rsa_parts[i].param, bn[i]);
	}
	OSSL_PARAM *list = ok ? OSSL_PARAM_BLD_to_param(bld) : NULL;
	EVP_PKEY_CTX *ctx =
		list ? EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL) : NULL;
	EVP_PKEY *key = NULL;
	if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &key,
				  private_key ? EVP_PKEY_KEYPAIR
					      : EVP_PKEY_PUBLIC_KEY,
				  list);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(list); /* private parts cleared: see secret_bn */
	OSSL_PARAM_BLD_free(bld);
	for (size_t i = 0; i < RSA_PARTS; i++)
		BN_clear_free(bn[i]);
	return key;
}

static CK_RV set_bn(rhd_object_t *obj, uint64_t type, const BIGNUM *bn)
{
	uint8_t buf[1024];
	int len = BN_bn2bin(bn, buf);
	CK_RV rv = len > 0 && len <= (int)sizeof(buf)
			   ? rhd_object_set(obj, type, buf, (size_t)len)
			   : CKR_DEVICE_ERROR;
	OPENSSL_cleanse(buf, sizeof(buf));
	return rv;
}

CK_RV rhd_crypto_rsa_generate(unsigned bits, const rhd_attr_t *exponent,
			      rhd_object_t *pub, rhd_object_t *priv)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *e =
		exponent ? BN_bin2bn(exponent->value, (int)exponent->len, NULL)
			 : NULL;
	EVP_PKEY *key = NULL;
	CK_RV rv = CKR_DEVICE_ERROR;
	if (ctx && EVP_PKEY_keygen_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) == 1 &&
	    (!e || EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) == 1) &&
	    EVP_PKEY_generate(ctx, &key) == 1)
		rv = CKR_OK;
	for (size_t i = 0; i < RSA_PARTS && rv == CKR_OK; i++) {
		BIGNUM *bn = NULL;
		if (EVP_PKEY_get_bn_param(key, rsa_parts[i].param, &bn) != 1) {
			rv = CKR_DEVICE_ERROR;
			break;
		}
		rv = set_bn(priv, rsa_parts[i].type, bn);
		if (rv == CKR_OK && i < 2)
			rv = set_bn(pub, rsa_parts[i].type, bn);
		BN_clear_free(bn);
	}
	EVP_PKEY_free(key);
	BN_free(e);
	EVP_PKEY_CTX_free(ctx);
	return rv;
}

static int set_padding(EVP_PKEY_CTX *ctx, const rhd_padding_t *p)
{
	int pad = p->scheme == RHD_PAD_PSS   ? RSA_PKCS1_PSS_PADDING
		  : p->scheme == RHD_PAD_RAW ? RSA_NO_PADDING
					     : RSA_PKCS1_PADDING;
	const EVP_MD *md = md_of_hash(p->hash);
	if (EVP_PKEY_CTX_set_rsa_padding(ctx, pad) != 1)
		return 0;
	if (md && EVP_PKEY_CTX_set_signature_md(ctx, md) != 1)
		return 0;
	if (p->scheme != RHD_PAD_PSS)
		return 1;
	return md && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
	       EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, p->salt_len) == 1;
}

static CK_RV rsa_sign(EVP_PKEY *key, const rhd_padding_t *p, const uint8_t *in,
		      size_t in_len, uint8_t *sig, size_t sig_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	size_t len = sig_len;
	int ok = ctx && EVP_PKEY_sign_init(ctx) == 1 && set_padding(ctx, p) &&
		 EVP_PKEY_sign(ctx, sig, &len, in, in_len) == 1 &&
		 len == sig_len;
	EVP_PKEY_CTX_free(ctx);
	/* PKCS#1 v1.5 over raw input fails when the input is too long. */
	return ok ? CKR_OK : CKR_DATA_LEN_RANGE;
}

/* OAEP's hashes: SHA-1 and the SHA-2 family. */
static const EVP_MD *oaep_md(CK_MECHANISM_TYPE hash)
{
	return hash == CKM_SHA224 ? EVP_sha224() : md_of_hash(hash);
}

static int oaep_setup(EVP_PKEY_CTX *ctx, const rhd_oaep_t *p)
{
	const EVP_MD *md = oaep_md(p->hash), *mgf = oaep_md(p->mgf_hash);
	if (!md || !mgf ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf) != 1)
		return 0;
	if (!p->label_len)
		return 1;
	/* The context takes the label and frees it. */
	unsigned char *label = OPENSSL_memdup(p->label, p->label_len);
	if (!label || EVP_PKEY_CTX_set0_rsa_oaep_label(
			      ctx, label, (int)p->label_len) != 1) {
		OPENSSL_free(label);
		return 0;
	}
	return 1;
}

static CK_RV rsa_verify(EVP_PKEY *key, const rhd_padding_t *p,
			const uint8_t *in, size_t in_len, const uint8_t *sig,
			size_t sig_len)
{
	size_t k = (size_t)EVP_PKEY_get_size(key);
	if (sig_len != k)
		return CKR_SIGNATURE_LEN_RANGE;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	int ok = 0;
	if (p->scheme == RHD_PAD_RAW) {
		/* CKM_RSA_X_509: the signature raised to e is the input. */
		uint8_t out[1024];
		size_t out_len = sizeof(out);
		ok = ctx && k <= sizeof(out) && in_len <= k &&
		     EVP_PKEY_verify_recover_init(ctx) == 1 &&
		     set_padding(ctx, p) &&
		     EVP_PKEY_verify_recover(ctx, out, &out_len, sig,
					     sig_len) == 1 &&
		     out_len == k &&
		     CRYPTO_memcmp(out + k - in_len, in, in_len) == 0;
		for (size_t i = 0; ok && i < k - in_len; i++)
			ok = out[i] == 0;
	} else {
		ok = ctx && EVP_PKEY_verify_init(ctx) == 1 &&
		     set_padding(ctx, p) &&
		     EVP_PKEY_verify(ctx, sig, sig_len, in, in_len) == 1;
	}
	EVP_PKEY_CTX_free(ctx);
	return ok ? CKR_OK : CKR_SIGNATURE_INVALID;
}

/* --- keys, digests and random, as the engine holds them ------------------ */

struct rhd_key {
	atomic_int refs;
	EVP_PKEY *pkey;
	EVP_PKEY_CTX *signer; /* an EC private key's, copied per operation */
	int rsa, ed;	      /* else an EC key on a NIST curve */
	rhd_secret_value_t *secret; /* a secret key's, instead of pkey */
};

static rhd_key_t *secret_key_new(const rhd_object_t *obj)
{
	rhd_key_t *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	atomic_init(&k->refs, 1);
	if (!(k->secret = rhd_secret_value_new(obj))) {
		free(k);
		return NULL;
	}
	return k;
}

rhd_key_t *rhd_key_new(const rhd_object_t *obj)
{
	uint64_t cls = 0, type = 0;
	rhd_object_ulong(obj, CKA_CLASS, &cls);
	rhd_object_ulong(obj, CKA_KEY_TYPE, &type);
	if (cls == CKO_SECRET_KEY)
		return secret_key_new(obj);
	if ((cls != CKO_PRIVATE_KEY && cls != CKO_PUBLIC_KEY) ||
	    (type != CKK_EC && type != CKK_RSA && type != CKK_EC_EDWARDS))
		return NULL;
	rhd_key_t *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	atomic_init(&k->refs, 1);
	k->rsa = type == CKK_RSA;
	k->ed = type == CKK_EC_EDWARDS;
	k->pkey = k->rsa ? rsa_key(obj) : k->ed ? rhd_ed_key(obj) : ec_key(obj);
	int ecdsa = !k->rsa && !k->ed;
	if (k->pkey && ecdsa && cls == CKO_PRIVATE_KEY)
		k->signer = ecdsa_signer(k->pkey);
	if (!k->pkey || (ecdsa && cls == CKO_PRIVATE_KEY && !k->signer)) {
		rhd_key_free(k);
		return NULL;
	}
	return k;
}

rhd_key_t *rhd_key_ref(rhd_key_t *key)
{
	if (key)
		atomic_fetch_add(&key->refs, 1);
	return key;
}

void rhd_key_free(rhd_key_t *key)
{
	if (!key || atomic_fetch_sub(&key->refs, 1) != 1)
		return;
	EVP_PKEY_CTX_free(key->signer);
	EVP_PKEY_free(key->pkey);
	rhd_secret_value_free(key->secret);
	free(key);
}

rhd_mac_t *rhd_mac_new(const rhd_key_t *key, CK_MECHANISM_TYPE mech)
{
	return key->secret ? rhd_secret_mac_new(key->secret, mech) : NULL;
}

CK_RV rhd_cipher_new(const rhd_key_t *key, const rhd_cipher_params_t *p,
		     int encrypt, rhd_cipher_t **out)
{
	return rhd_secret_cipher_new(key->secret, p, encrypt, out);
}

/* The peer's public key on the curve of ours, from its uncompressed
 * point; NULL when the point is no point of that curve. */
static EVP_PKEY *peer_on_curve(EVP_PKEY *ours, const uint8_t *pt, size_t len)
{
	char group[64];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *list = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *peer = NULL;
	int ok =
		bld &&
		EVP_PKEY_get_utf8_string_param(ours, OSSL_PKEY_PARAM_GROUP_NAME,
					       group, sizeof(group), NULL) &&
		OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
						group, 0) &&
		OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
						 pt, len);
	if (ok && (list = OSSL_PARAM_BLD_to_param(bld)) &&
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) &&
	    EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, list);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(list);
	OSSL_PARAM_BLD_free(bld);
	return peer;
}

CK_RV rhd_key_ecdh(const rhd_key_t *key, const uint8_t *peer_pt,
		   size_t peer_len, uint8_t *z, size_t cap, size_t *z_len)
{
	if (!key->pkey || key->rsa || !key->signer)
		return CKR_KEY_TYPE_INCONSISTENT;
	EVP_PKEY *peer = peer_on_curve(key->pkey, peer_pt, peer_len);
	EVP_PKEY_CTX *ctx = peer ? EVP_PKEY_CTX_new(key->pkey, NULL) : NULL;
	size_t len = cap;
	/* set_peer_ex checks the point (on the curve, not at infinity). */
	CK_RV rv =
		ctx && EVP_PKEY_derive_init(ctx) == 1 &&
				EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) == 1
			? CKR_OK
			: CKR_MECHANISM_PARAM_INVALID;
	if (rv == CKR_OK && EVP_PKEY_derive(ctx, z, &len) != 1)
		rv = CKR_DEVICE_ERROR;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	ERR_clear_error();
	*z_len = rv == CKR_OK ? len : 0;
	return rv;
}

CK_RV rhd_crypto_x963_kdf(CK_MECHANISM_TYPE hash, const uint8_t *z,
			  size_t z_len, const uint8_t *info, size_t info_len,
			  uint8_t *out, size_t len)
{
	const EVP_MD *md = oaep_md(hash);
	EVP_KDF *kdf = md ? EVP_KDF_fetch(NULL, "X963KDF", NULL) : NULL;
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(
			OSSL_KDF_PARAM_DIGEST,
			(char *)(md ? EVP_MD_get0_name(md) : ""), 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z,
						  z_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						  (void *)info, info_len),
		OSSL_PARAM_construct_end()};
	int ok = ctx && EVP_KDF_derive(ctx, out, len, params) == 1;
	EVP_KDF_CTX_free(ctx);
	ERR_clear_error();
	return ok ? CKR_OK : CKR_DEVICE_ERROR;
}

CK_RV rhd_crypto_ecdh_value(const rhd_key_t *key, const uint8_t *peer_pt,
			    size_t peer_len, CK_MECHANISM_TYPE kdf_hash,
			    const uint8_t *info, size_t info_len, uint8_t *out,
			    size_t len)
{
	uint8_t z[RHD_ECDH_MAX_Z];
	size_t z_len = 0;
	CK_RV rv = rhd_key_ecdh(key, peer_pt, peer_len, z, sizeof(z), &z_len);
	if (rv == CKR_OK && !kdf_hash && len > z_len)
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
	if (rv == CKR_OK && kdf_hash)
		rv = rhd_crypto_x963_kdf(kdf_hash, z, z_len, info, info_len,
					 out, len);
	else if (rv == CKR_OK) /* CKD_NULL: Z's leftmost bytes */
		memcpy(out, z, len);
	OPENSSL_cleanse(z, sizeof(z));
	return rv;
}

int rhd_key_is_rsa(const rhd_key_t *key)
{
	return key && key->pkey && key->rsa;
}

/* RSA encryption or decryption padded by p (OAEP), or by PKCS#1 v1.5 when
 * p is NULL. */
static CK_RV rsa_cipher(const rhd_key_t *key, int encrypt, const rhd_oaep_t *p,
			const uint8_t *in, size_t in_len, uint8_t *out,
			size_t *out_len)
{
	size_t k = (size_t)EVP_PKEY_get_size(key->pkey);
	size_t hash_len = p ? rhd_crypto_hash_len(p->hash) : 0;
	if (p && p->hash == CKM_SHA224)
		hash_len = 28;
	size_t overhead = p ? 2 * hash_len + 2 : 11;
	*out_len = 0;
	if (encrypt && in_len + overhead > k)
		return CKR_DATA_LEN_RANGE;
	if (!encrypt && in_len != k)
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
	size_t len = k;
	int ok =
		ctx &&
		(encrypt ? EVP_PKEY_encrypt_init(ctx)
			 : EVP_PKEY_decrypt_init(ctx)) == 1 &&
		(p ? oaep_setup(ctx, p)
		   : EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1);
	CK_RV rv = ok ? CKR_OK : CKR_DEVICE_ERROR;
	if (rv == CKR_OK && encrypt &&
	    EVP_PKEY_encrypt(ctx, out, &len, in, in_len) != 1)
		rv = CKR_DEVICE_ERROR;
	/* One answer for every ciphertext that does not decode; OpenSSL
	 * checks the padding without branching on it. */
	if (rv == CKR_OK && !encrypt &&
	    EVP_PKEY_decrypt(ctx, out, &len, in, in_len) != 1)
		rv = CKR_ENCRYPTED_DATA_INVALID;
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	*out_len = rv == CKR_OK ? len : 0;
	return rv;
}

CK_RV rhd_key_rsa_oaep(const rhd_key_t *key, int encrypt, const rhd_oaep_t *p,
		       const uint8_t *in, size_t in_len, uint8_t *out,
		       size_t *out_len)
{
	return rsa_cipher(key, encrypt, p, in, in_len, out, out_len);
}

CK_RV rhd_key_rsa_pkcs1(const rhd_key_t *key, int encrypt, const uint8_t *in,
			size_t in_len, uint8_t *out, size_t *out_len)
{
	return rsa_cipher(key, encrypt, NULL, in, in_len, out, out_len);
}

size_t rhd_key_sig_len(const rhd_key_t *key)
{
	return key->rsa	 ? (size_t)EVP_PKEY_get_size(key->pkey)
	       : key->ed ? RHD_ED25519_SIG_LEN
			 : ec_sig_len(key->pkey);
}

rhd_signer_t *rhd_key_signer(const rhd_key_t *key)
{
	return key->signer ? (rhd_signer_t *)EVP_PKEY_CTX_dup(key->signer)
			   : NULL;
}

void rhd_signer_free(rhd_signer_t *signer)
{
	EVP_PKEY_CTX_free((EVP_PKEY_CTX *)signer);
}

CK_RV rhd_key_sign(const rhd_key_t *key, rhd_signer_t *signer,
		   const rhd_padding_t *pad, const uint8_t *in, size_t in_len,
		   uint8_t *sig, size_t sig_len)
{
	if (key->rsa)
		return rsa_sign(key->pkey, pad, in, in_len, sig, sig_len);
	if (key->ed)
		return rhd_ed_sign(key->pkey, in, in_len, sig, sig_len);
	return ecdsa_sign(key->pkey, (EVP_PKEY_CTX *)signer, in, in_len, sig,
			  sig_len);
}

CK_RV rhd_key_verify(const rhd_key_t *key, const rhd_padding_t *pad,
		     const uint8_t *in, size_t in_len, const uint8_t *sig,
		     size_t sig_len)
{
	if (key->rsa)
		return rsa_verify(key->pkey, pad, in, in_len, sig, sig_len);
	if (key->ed)
		return rhd_ed_verify(key->pkey, in, in_len, sig, sig_len);
	return ecdsa_verify(key->pkey, in, in_len, sig, sig_len);
}

int rhd_crypto_rsa_check(const rhd_object_t *obj, int private_key,
			 unsigned *bits)
{
	EVP_PKEY *key = rsa_key(obj);
	EVP_PKEY_CTX *ctx = key ? EVP_PKEY_CTX_new(key, NULL) : NULL;
	int n = key ? EVP_PKEY_get_bits(key) : 0;
	int ok = ctx && n > 0 &&
		 (private_key ? EVP_PKEY_check(ctx)
			      : EVP_PKEY_public_check(ctx)) == 1;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);
	ERR_clear_error();
	*bits = ok ? (unsigned)n : 0;
	return ok;
}

rhd_digest_t *rhd_digest_new(CK_MECHANISM_TYPE hash)
{
	const EVP_MD *md = md_of_hash(hash);
	EVP_MD_CTX *ctx = md ? EVP_MD_CTX_new() : NULL;
	if (ctx && EVP_DigestInit_ex(ctx, md, NULL) == 1)
		return (rhd_digest_t *)ctx;
	EVP_MD_CTX_free(ctx);
	return NULL;
}

CK_RV rhd_digest_update(rhd_digest_t *d, const uint8_t *data, size_t len)
{
	return EVP_DigestUpdate((EVP_MD_CTX *)d, data, len) == 1
		       ? CKR_OK
		       : CKR_DEVICE_ERROR;
}

CK_RV rhd_digest_final(rhd_digest_t *d, uint8_t *out, size_t *len)
{
	unsigned int n = 0;
	if (EVP_DigestFinal_ex((EVP_MD_CTX *)d, out, &n) != 1)
		return CKR_DEVICE_ERROR;
	*len = n;
	return CKR_OK;
}

size_t rhd_digest_len(const rhd_digest_t *d)
{
	return (size_t)EVP_MD_CTX_get_size((const EVP_MD_CTX *)d);
}

void rhd_digest_free(rhd_digest_t *d)
{
	EVP_MD_CTX_free((EVP_MD_CTX *)d);
}

CK_RV rhd_crypto_random(uint8_t *out, size_t len)
{
	return len > INT_MAX || RAND_bytes(out, (int)len) != 1
		       ? CKR_DEVICE_ERROR
		       : CKR_OK;
}

CK_RV rhd_crypto_secret_random(uint8_t *out, size_t len)
{
	return len > INT_MAX || RAND_priv_bytes(out, (int)len) != 1
		       ? CKR_DEVICE_ERROR
		       : CKR_OK;
}

void rhd_crypto_seed(const uint8_t *seed, size_t len)
{
	RAND_add(seed, len > INT_MAX ? INT_MAX : (int)len, 0.0);
}

int rhd_crypto_hkdf_sha256(const uint8_t *key, size_t key_len, const char *info,
			   size_t info_len, uint8_t *out, size_t len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[] = {OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST,
						      (char *)"SHA256", 0),
			       OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY,
						       (void *)key, key_len),
			       OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO,
						       (void *)info, info_len),
			       OSSL_PARAM_END};
	int ok = ctx && EVP_KDF_derive(ctx, out, len, params) == 1;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return ok ? 0 : -1;
}

void rhd_crypto_hmac_sha256(const uint8_t *key, size_t key_len,
			    const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;
	HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n);
}

void rhd_crypto_sha256(const void *data, size_t len,
		       uint8_t out[RHD_SHA256_LEN])
{
	SHA256(data, len, out);
}

/* --- certificates and curves, as imports check them ---------------------- */

static CK_RV set_der_name(rhd_object_t *obj, uint64_t type,
			  const X509_NAME *name)
{
	unsigned char *der = NULL;
	int len = i2d_X509_NAME(name, &der);
	if (len < 0)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	CK_RV rv = rhd_object_set(obj, type, der, (size_t)len);
	OPENSSL_free(der);
	return rv;
}

/* Subject, issuer and serial from the DER when the template omits them;
 * a given CKA_SUBJECT is kept as it is (FreeRTOS sends a plain string). */
static CK_RV fill_from_certificate(rhd_object_t *obj, X509 *cert)
{
	CK_RV rv = CKR_OK;
	if (!rhd_object_find(obj, CKA_SUBJECT))
		rv = set_der_name(obj, CKA_SUBJECT,
				  X509_get_subject_name(cert));
	if (rv == CKR_OK && !rhd_object_find(obj, CKA_ISSUER))
		rv = set_der_name(obj, CKA_ISSUER, X509_get_issuer_name(cert));
	if (rv == CKR_OK && !rhd_object_find(obj, CKA_SERIAL_NUMBER)) {
		unsigned char *der = NULL;
		int len = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert), &der);
		rv = len < 0 ? CKR_ATTRIBUTE_VALUE_INVALID
			     : rhd_object_set(obj, CKA_SERIAL_NUMBER, der,
					      (size_t)len);
		OPENSSL_free(der);
	}
	return rv;
}

CK_RV rhd_crypto_certificate_fields(const rhd_attr_t *value, rhd_object_t *obj)
{
	const unsigned char *p = value->value;
	X509 *cert = d2i_X509(NULL, &p, (long)value->len);
	CK_RV rv = cert && p == value->value + value->len
			   ? fill_from_certificate(obj, cert)
			   : CKR_ATTRIBUTE_VALUE_INVALID;
	X509_free(cert);
	ERR_clear_error();
	return rv;
}

/* The curve named by a CKA_EC_PARAMS OID; 0 when unsupported. */
int rhd_ec_curve(const rhd_attr_t *params)
{
	const unsigned char *p = params->value;
	ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &p, (long)params->len);
	int nid =
		oid && p == params->value + params->len ? OBJ_obj2nid(oid) : 0;
	ASN1_OBJECT_free(oid);
	return curve_name(nid) ? nid : 0;
}

int rhd_crypto_ec_point_valid(int nid, const uint8_t *pt, size_t len)
{
	EC_GROUP *group = EC_GROUP_new_by_curve_name(nid);
	EC_POINT *point = group ? EC_POINT_new(group) : NULL;
	int ok = point &&
		 EC_POINT_oct2point(group, point, pt, len, NULL) == 1 &&
		 !EC_POINT_is_at_infinity(group, point);
	EC_POINT_free(point);
	EC_GROUP_free(group);
	ERR_clear_error();
	return ok;
}

CK_RV rhd_crypto_ec_public_point(int nid, const rhd_attr_t *value, uint8_t *pt,
				 size_t cap, size_t *len)
{
	EC_GROUP *group = EC_GROUP_new_by_curve_name(nid);
	BIGNUM *d = secret_bn(value);
	EC_POINT *pub = group ? EC_POINT_new(group) : NULL;
	CK_RV rv = CKR_DEVICE_MEMORY;
	if (group && d && pub) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		if (!BN_is_zero(d) &&
		    BN_cmp(d, EC_GROUP_get0_order(group)) < 0 &&
		    EC_POINT_mul(group, pub, d, NULL, NULL, NULL) == 1 &&
		    (*len = EC_POINT_point2oct(group, pub,
					       POINT_CONVERSION_UNCOMPRESSED,
					       pt, cap, NULL)) > 0)
			rv = CKR_OK;
	}
	EC_POINT_free(pub);
	BN_clear_free(d);
	EC_GROUP_free(group);
	ERR_clear_error();
	return rv;
}

/* --- key wrapping ---------------------------------------------------------
 */

CK_RV rhd_key_aes_wrap(const rhd_key_t *key, int pad, int wrap,
		       const uint8_t *iv, size_t iv_len, const uint8_t *in,
		       size_t in_len, uint8_t *out, size_t *out_len)
{
	return rhd_secret_aes_wrap(key->secret, pad, wrap, iv, iv_len, in,
				   in_len, out, out_len);
}

CK_RV rhd_key_hkdf(const rhd_key_t *key, const rhd_hkdf_t *p, uint8_t *out,
		   size_t len)
{
	const EVP_MD *md = md_of_hash(p->hash);
	if (!md)
		return CKR_MECHANISM_PARAM_INVALID;
	size_t hash_len = (size_t)EVP_MD_get_size(md);
	if ((p->expand && len > 255 * hash_len) ||
	    (!p->expand && len != hash_len))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	return rhd_secret_hkdf(key->secret, EVP_MD_get0_name(md), p, out, len);
}

CK_RV rhd_key_pkcs8(const rhd_key_t *key, uint8_t *out, size_t cap, size_t *len)
{
	PKCS8_PRIV_KEY_INFO *p8 = key->pkey ? EVP_PKEY2PKCS8(key->pkey) : NULL;
	int n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, NULL) : -1;
	CK_RV rv = n <= 0	     ? CKR_DEVICE_ERROR
		   : (size_t)n > cap ? CKR_KEY_SIZE_RANGE
				     : CKR_OK;
	uint8_t *p = out;
	if (rv == CKR_OK && i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != n)
		rv = CKR_DEVICE_ERROR;
	PKCS8_PRIV_KEY_INFO_free(p8);
	ERR_clear_error();
	*len = rv == CKR_OK ? (size_t)n : 0;
	return rv;
}

/* CKA_EC_PARAMS (the curve's OID) and CKA_VALUE (d, of the order's
 * length) of an EC key on a served curve. */
static CK_RV ec_parts(EVP_PKEY *key, rhd_object_t *obj)
{
	char group[64];
	uint8_t oid[16], d[66];
	size_t glen = 0;
	int nid =
		EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
					       group, sizeof(group), &glen)
			? OBJ_sn2nid(group)
			: NID_undef;
	if (nid == NID_undef)
		nid = EC_curve_nist2nid(group);
	unsigned char *o = oid;
	int oid_len = nid != NID_undef && curve_name(nid) &&
				      i2d_ASN1_OBJECT(OBJ_nid2obj(nid), NULL) <=
					      (int)sizeof(oid)
			      ? i2d_ASN1_OBJECT(OBJ_nid2obj(nid), &o)
			      : -1;
	if (oid_len <= 0)
		return CKR_WRAPPED_KEY_INVALID;
	int d_len = (EVP_PKEY_get_bits(key) + 7) / 8;
	BIGNUM *bn = NULL;
	CK_RV rv = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &bn) ==
					   1 &&
				   BN_bn2binpad(bn, d, d_len) == d_len
			   ? rhd_object_set(obj, CKA_EC_PARAMS, oid,
					    (size_t)oid_len)
			   : CKR_WRAPPED_KEY_INVALID;
	if (rv == CKR_OK)
		rv = rhd_object_set(obj, CKA_VALUE, d, (size_t)d_len);
	OPENSSL_cleanse(d, sizeof(d));
	BN_clear_free(bn);
	return rv;
}

static CK_RV rsa_parts_of(EVP_PKEY *key, rhd_object_t *obj)
{
	CK_RV rv = CKR_OK;
	for (size_t i = 0; i < RSA_PARTS && rv == CKR_OK; i++) {
		BIGNUM *bn = NULL;
		rv = EVP_PKEY_get_bn_param(key, rsa_parts[i].param, &bn) == 1
			     ? set_bn(obj, rsa_parts[i].type, bn)
			     : CKR_WRAPPED_KEY_INVALID;
		BN_clear_free(bn);
	}
	return rv;
}

CK_RV rhd_crypto_from_pkcs8(const uint8_t *der, size_t len, uint64_t key_type,
			    rhd_object_t *obj)
{
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8 =
		len <= LONG_MAX ? d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len)
				: NULL;
	EVP_PKEY *key = p8 && p == der + len ? EVP_PKCS82PKEY(p8) : NULL;
	int id = key ? EVP_PKEY_get_base_id(key) : EVP_PKEY_NONE;
	CK_RV rv = CKR_WRAPPED_KEY_INVALID;
	if (key_type == CKK_EC && id == EVP_PKEY_EC)
		rv = ec_parts(key, obj);
	else if (key_type == CKK_RSA && id == EVP_PKEY_RSA)
		rv = rsa_parts_of(key, obj);
	else if (key_type == CKK_EC_EDWARDS && id == EVP_PKEY_ED25519)
		rv = rhd_ed_parts(key, obj);
	EVP_PKEY_free(key);
	PKCS8_PRIV_KEY_INFO_free(p8);
	ERR_clear_error();
	return rv;
}
