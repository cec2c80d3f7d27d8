/*
 * Secret keys behind daemon/crypto.h: AES and generic secret values, kept
 * in OpenSSL's secure heap, their check values, and the MACs made with
 * them (HMAC over SHA-1/2, AES-CMAC) through EVP_MAC.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/sha.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "crypto_secret.h"

struct rhd_secret_value {
	uint64_t key_type;
	size_t len;
	uint8_t *bytes; /* in the secure heap */
};

static const EVP_CIPHER *aes_ecb(size_t len)
{
	return len == 16   ? EVP_aes_128_ecb()
	       : len == 24 ? EVP_aes_192_ecb()
	       : len == 32 ? EVP_aes_256_ecb()
			   : NULL;
}

static const char *aes_cbc_name(size_t len)
{
	return len == 16   ? "AES-128-CBC"
	       : len == 24 ? "AES-192-CBC"
	       : len == 32 ? "AES-256-CBC"
			   : NULL;
}

int rhd_secret_len_valid(uint64_t key_type, size_t len)
{
	if (key_type == CKK_AES)
		return aes_ecb(len) != NULL;
	if (key_type == CKK_GENERIC_SECRET)
		return len >= RHD_SECRET_MIN_LEN && len <= RHD_SECRET_MAX_LEN;
	return 0;
}

/* AES: the first bytes of a zero block encrypted under the key. */
static CK_RV aes_check_value(const uint8_t *value, size_t len,
			     uint8_t out[RHD_CHECK_VALUE_LEN])
{
	static const uint8_t zero[16];
	uint8_t block[32];
	int n = 0, tail = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int ok =
		ctx &&
		EVP_EncryptInit_ex(ctx, aes_ecb(len), NULL, value, NULL) == 1 &&
		EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
		EVP_EncryptUpdate(ctx, block, &n, zero, sizeof(zero)) == 1 &&
		EVP_EncryptFinal_ex(ctx, block + n, &tail) == 1 && n == 16;
	EVP_CIPHER_CTX_free(ctx);
	if (ok)
		memcpy(out, block, RHD_CHECK_VALUE_LEN);
	OPENSSL_cleanse(block, sizeof(block));
	return ok ? CKR_OK : CKR_DEVICE_ERROR;
}

CK_RV rhd_crypto_check_value(uint64_t key_type, const uint8_t *value,
			     size_t len, uint8_t out[RHD_CHECK_VALUE_LEN])
{
	if (!rhd_secret_len_valid(key_type, len))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (key_type == CKK_AES)
		return aes_check_value(value, len, out);
	/* A generic secret's: the first bytes of its SHA-1 (PKCS#11 3.0). */
	uint8_t hash[SHA_DIGEST_LENGTH];
	if (!SHA1(value, len, hash))
		return CKR_DEVICE_ERROR;
	memcpy(out, hash, RHD_CHECK_VALUE_LEN);
	return CKR_OK;
}

CK_RV rhd_crypto_secret_generate(rhd_object_t *obj, uint64_t key_type,
				 size_t len)
{
	if (!rhd_secret_len_valid(key_type, len))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	uint8_t value[RHD_SECRET_MAX_LEN];
	CK_RV rv = rhd_crypto_secret_random(value, len);
	if (rv == CKR_OK)
		rv = rhd_object_set(obj, CKA_VALUE, value, len);
	OPENSSL_cleanse(value, sizeof(value));
	return rv;
}

rhd_secret_value_t *rhd_secret_value_new(const rhd_object_t *obj)
{
	uint64_t type = 0;
	const rhd_attr_t *value = rhd_object_find(obj, CKA_VALUE);
	if (!rhd_object_ulong(obj, CKA_KEY_TYPE, &type) || !value ||
	    !rhd_secret_len_valid(type, value->len))
		return NULL;
	rhd_secret_value_t *s = calloc(1, sizeof(*s));
	if (!s || !(s->bytes = OPENSSL_secure_malloc(value->len))) {
		free(s);
		return NULL;
	}
	memcpy(s->bytes, value->value, value->len);
	s->len = value->len;
	s->key_type = type;
	return s;
}

void rhd_secret_value_free(rhd_secret_value_t *s)
{
	if (!s)
		return;
	OPENSSL_secure_clear_free(s->bytes, s->len);
	free(s);
}

uint64_t rhd_secret_value_type(const rhd_secret_value_t *s)
{
	return s->key_type;
}

/* --- MACs ----------------------------------------------------------------- */

struct rhd_mac {
	EVP_MAC_CTX *ctx;
	size_t len;
};

static const char *hmac_digest(CK_MECHANISM_TYPE mech)
{
	switch (mech) {
	case CKM_SHA_1_HMAC:
		return "SHA1";
	case CKM_SHA256_HMAC:
		return "SHA2-256";
	case CKM_SHA384_HMAC:
		return "SHA2-384";
	case CKM_SHA512_HMAC:
		return "SHA2-512";
	default:
		return NULL;
	}
}

int rhd_mechanism_is_mac(CK_MECHANISM_TYPE mech)
{
	return hmac_digest(mech) != NULL || mech == CKM_AES_CMAC;
}

uint64_t rhd_mac_key_type(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_AES_CMAC ? CKK_AES : CKK_GENERIC_SECRET;
}

/* The MAC of mech keyed with s: its algorithm, and the parameter naming
 * its digest or cipher. */
static EVP_MAC_CTX *mac_ctx(const rhd_secret_value_t *s, CK_MECHANISM_TYPE mech)
{
	int cmac = mech == CKM_AES_CMAC;
	const char *what = cmac ? aes_cbc_name(s->len) : hmac_digest(mech);
	if (!what || s->key_type != rhd_mac_key_type(mech))
		return NULL;
	EVP_MAC *mac = EVP_MAC_fetch(NULL, cmac ? "CMAC" : "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac); /* the context holds its own reference */
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(cmac ? OSSL_MAC_PARAM_CIPHER
						      : OSSL_MAC_PARAM_DIGEST,
						 (char *)what, 0),
		OSSL_PARAM_construct_end()};
	if (ctx && EVP_MAC_init(ctx, s->bytes, s->len, params) == 1)
		return ctx;
	EVP_MAC_CTX_free(ctx);
	return NULL;
}

rhd_mac_t *rhd_secret_mac_new(const rhd_secret_value_t *s,
			      CK_MECHANISM_TYPE mech)
{
	rhd_mac_t *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->ctx = mac_ctx(s, mech);
	m->len = m->ctx ? EVP_MAC_CTX_get_mac_size(m->ctx) : 0;
	if (!m->ctx || !m->len || m->len > RHD_MAC_MAX_LEN) {
		rhd_mac_free(m);
		return NULL;
	}
	return m;
}

CK_RV rhd_mac_update(rhd_mac_t *m, const uint8_t *data, size_t len)
{
	return EVP_MAC_update(m->ctx, data, len) == 1 ? CKR_OK
						      : CKR_DEVICE_ERROR;
}

size_t rhd_mac_len(const rhd_mac_t *m)
{
	return m->len;
}

CK_RV rhd_mac_final(rhd_mac_t *m, uint8_t *out, size_t out_len)
{
	size_t n = 0;
	if (out_len < m->len || EVP_MAC_final(m->ctx, out, &n, out_len) != 1 ||
	    n != m->len)
		return CKR_DEVICE_ERROR;
	return CKR_OK;
}

CK_RV rhd_mac_verify(rhd_mac_t *m, const uint8_t *sig, size_t sig_len)
{
	if (sig_len != m->len)
		return CKR_SIGNATURE_LEN_RANGE;
	uint8_t mine[RHD_MAC_MAX_LEN];
	CK_RV rv = rhd_mac_final(m, mine, sizeof(mine));
	/* In constant time: how much of a forgery matched must not show. */
	if (rv == CKR_OK && CRYPTO_memcmp(mine, sig, m->len) != 0)
		rv = CKR_SIGNATURE_INVALID;
	OPENSSL_cleanse(mine, sizeof(mine));
	return rv;
}

void rhd_mac_free(rhd_mac_t *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->ctx);
	free(m);
}

/* --- AES encryption and decryption -----------------------------------------
 */

#define AES_BLOCK 16

struct rhd_cipher {
	EVP_CIPHER_CTX *ctx;
	CK_MECHANISM_TYPE mech;
	int encrypt;
	/* Block modes: the bytes short of a whole block (CBC_PAD decrypt
	 * keeps up to a whole block: the last one carries the padding). */
	uint8_t partial[AES_BLOCK];
	size_t partial_len;
	/* CTR: blocks the counter has left before it wraps (UINT64_MAX:
	 * more than any operation uses). */
	uint64_t blocks_left;
	size_t ctr_used; /* bytes into the current counter block */
	/* GCM: the tag's length; decryption keeps everything until Final,
	 * so that no plaintext leaves before the tag is checked. */
	size_t tag_len;
	uint8_t *held;
	size_t held_len;
};

static int block_mode(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_AES_ECB || mech == CKM_AES_CBC ||
	       mech == CKM_AES_CBC_PAD;
}

int rhd_mechanism_is_cipher(CK_MECHANISM_TYPE mech)
{
	return block_mode(mech) || mech == CKM_AES_CTR || mech == CKM_AES_GCM;
}

static const EVP_CIPHER *aes_cipher(CK_MECHANISM_TYPE mech, size_t len)
{
	static const char *const names[][3] = {
		{"AES-128-ECB", "AES-192-ECB", "AES-256-ECB"},
		{"AES-128-CBC", "AES-192-CBC", "AES-256-CBC"},
		{"AES-128-CTR", "AES-192-CTR", "AES-256-CTR"},
		{"AES-128-GCM", "AES-192-GCM", "AES-256-GCM"}};
	size_t row = mech == CKM_AES_ECB   ? 0
		     : mech == CKM_AES_CTR ? 2
		     : mech == CKM_AES_GCM ? 3
					   : 1;
	size_t col = len == 16 ? 0 : len == 24 ? 1 : 2;
	return EVP_get_cipherbyname(names[row][col]);
}

/* The blocks a CTR counter of bits bits starting at cb has left. */
static uint64_t ctr_blocks_left(size_t bits, const uint8_t *cb)
{
	if (bits >= 64)
		return UINT64_MAX;
	uint64_t value = 0;
	for (size_t i = 8; i < AES_BLOCK; i++)
		value = value << 8 | cb[i];
	uint64_t span = (uint64_t)1 << bits;
	return span - (value & (span - 1));
}

/* The parameters each mode takes, checked as PKCS#11 defines them. */
static CK_RV params_valid(const rhd_cipher_params_t *p)
{
	switch (p->mech) {
	case CKM_AES_ECB:
		return CKR_OK;
	case CKM_AES_CBC:
	case CKM_AES_CBC_PAD:
		return p->iv_len == AES_BLOCK ? CKR_OK
					      : CKR_MECHANISM_PARAM_INVALID;
	case CKM_AES_CTR:
		return p->iv_len == AES_BLOCK && p->counter_bits >= 1 &&
				       p->counter_bits <= 128
			       ? CKR_OK
			       : CKR_MECHANISM_PARAM_INVALID;
	default: /* GCM: tags of 96 bits or more, whole bytes */
		return p->iv_len >= 1 && p->iv_len <= RHD_GCM_MAX_IV &&
				       p->tag_bits >= 96 &&
				       p->tag_bits <= 128 &&
				       p->tag_bits % 8 == 0 &&
				       p->aad_len <= RHD_GCM_MAX_AAD
			       ? CKR_OK
			       : CKR_MECHANISM_PARAM_INVALID;
	}
}

static int cipher_setup(rhd_cipher_t *c, const rhd_secret_value_t *s,
			const rhd_cipher_params_t *p)
{
	const EVP_CIPHER *cipher = aes_cipher(p->mech, s->len);
	int gcm = p->mech == CKM_AES_GCM;
	int n = 0;
	if (!cipher || !(c->ctx = EVP_CIPHER_CTX_new()) ||
	    EVP_CipherInit_ex(c->ctx, cipher, NULL, NULL, NULL, c->encrypt) !=
		    1)
		return 0;
	if (gcm && EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_IVLEN,
				       (int)p->iv_len, NULL) != 1)
		return 0;
	if (EVP_CipherInit_ex(c->ctx, NULL, NULL, s->bytes,
			      p->iv_len ? p->iv : NULL, c->encrypt) != 1 ||
	    EVP_CIPHER_CTX_set_padding(c->ctx, 0) != 1)
		return 0;
	return !gcm || !p->aad_len ||
	       EVP_CipherUpdate(c->ctx, NULL, &n, p->aad, (int)p->aad_len) == 1;
}

CK_RV rhd_secret_cipher_new(const rhd_secret_value_t *s,
			    const rhd_cipher_params_t *p, int encrypt,
			    rhd_cipher_t **out)
{
	*out = NULL;
	if (!s || s->key_type != CKK_AES)
		return CKR_KEY_TYPE_INCONSISTENT;
	CK_RV rv = params_valid(p);
	if (rv != CKR_OK)
		return rv;
	rhd_cipher_t *c = calloc(1, sizeof(*c));
	if (!c)
		return CKR_DEVICE_MEMORY;
	c->mech = p->mech;
	c->encrypt = encrypt;
	c->tag_len = p->tag_bits / 8;
	c->blocks_left = p->mech == CKM_AES_CTR
				 ? ctr_blocks_left(p->counter_bits, p->iv)
				 : UINT64_MAX;
	if (!cipher_setup(c, s, p)) {
		rhd_cipher_free(c);
		return CKR_DEVICE_ERROR;
	}
	*out = c;
	return CKR_OK;
}

void rhd_cipher_free(rhd_cipher_t *c)
{
	if (!c)
		return;
	EVP_CIPHER_CTX_free(c->ctx);
	if (c->held)
		OPENSSL_clear_free(c->held, RHD_CIPHER_MAX_HELD);
	OPENSSL_cleanse(c->partial, sizeof(c->partial));
	free(c);
}

/* CBC_PAD decryption keeps the last block back, padding and all. */
static int keeps_last_block(const rhd_cipher_t *c)
{
	return c->mech == CKM_AES_CBC_PAD && !c->encrypt;
}

size_t rhd_cipher_update_len(const rhd_cipher_t *c, size_t in_len)
{
	if (c->mech == CKM_AES_GCM)
		return c->encrypt ? in_len : 0;
	if (!block_mode(c->mech))
		return in_len;
	size_t total = c->partial_len + in_len;
	if (keeps_last_block(c))
		return total ? (total - 1) / AES_BLOCK * AES_BLOCK : 0;
	return total / AES_BLOCK * AES_BLOCK;
}

/* CTR: whether in_len more bytes stay within the counter's span. */
static int counter_lasts(rhd_cipher_t *c, size_t in_len)
{
	if (c->blocks_left == UINT64_MAX)
		return 1;
	uint64_t bytes = (uint64_t)c->ctr_used + in_len;
	uint64_t blocks = (bytes + AES_BLOCK - 1) / AES_BLOCK;
	return blocks <= c->blocks_left;
}

static CK_RV ctr_update(rhd_cipher_t *c, const uint8_t *in, size_t in_len,
			uint8_t *out, size_t *out_len)
{
	if (!counter_lasts(c, in_len))
		return c->encrypt ? CKR_DATA_LEN_RANGE
				  : CKR_ENCRYPTED_DATA_LEN_RANGE;
	int n = 0;
	if (in_len && EVP_CipherUpdate(c->ctx, out, &n, in, (int)in_len) != 1)
		return CKR_DEVICE_ERROR;
	size_t bytes = c->ctr_used + in_len;
	if (c->blocks_left != UINT64_MAX)
		c->blocks_left -= bytes / AES_BLOCK;
	c->ctr_used = bytes % AES_BLOCK;
	*out_len = (size_t)n;
	return CKR_OK;
}

static CK_RV gcm_hold(rhd_cipher_t *c, const uint8_t *in, size_t in_len)
{
	if (in_len > RHD_CIPHER_MAX_HELD - c->held_len)
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	if (!c->held && !(c->held = OPENSSL_malloc(RHD_CIPHER_MAX_HELD)))
		return CKR_DEVICE_MEMORY;
	if (in_len)
		memcpy(c->held + c->held_len, in, in_len);
	c->held_len += in_len;
	return CKR_OK;
}

/* Whole blocks through the cipher, the rest kept for the next call. */
static CK_RV block_update(rhd_cipher_t *c, const uint8_t *in, size_t in_len,
			  uint8_t *out, size_t *out_len)
{
	size_t whole = rhd_cipher_update_len(c, in_len), done = 0;
	int n = 0;
	if (whole && c->partial_len) {
		size_t need = AES_BLOCK - c->partial_len;
		memcpy(c->partial + c->partial_len, in, need);
		in += need;
		in_len -= need;
		c->partial_len = 0;
		if (EVP_CipherUpdate(c->ctx, out, &n, c->partial, AES_BLOCK) !=
			    1 ||
		    n != AES_BLOCK)
			return CKR_DEVICE_ERROR;
		done = AES_BLOCK;
	}
	size_t run = whole - done;
	if (run &&
	    (EVP_CipherUpdate(c->ctx, out + done, &n, in, (int)run) != 1 ||
	     (size_t)n != run))
		return CKR_DEVICE_ERROR;
	if (in_len > run) /* empty input may come as NULL */
		memcpy(c->partial + c->partial_len, in + run, in_len - run);
	c->partial_len += in_len - run;
	*out_len = whole;
	return CKR_OK;
}

CK_RV rhd_cipher_update(rhd_cipher_t *c, const uint8_t *in, size_t in_len,
			uint8_t *out, size_t *out_len)
{
	*out_len = 0;
	if (in_len > INT_MAX)
		return c->encrypt ? CKR_DATA_LEN_RANGE
				  : CKR_ENCRYPTED_DATA_LEN_RANGE;
	if (c->mech == CKM_AES_CTR)
		return ctr_update(c, in, in_len, out, out_len);
	if (c->mech == CKM_AES_GCM && !c->encrypt)
		return gcm_hold(c, in, in_len);
	if (c->mech == CKM_AES_GCM) {
		int n = 0;
		if (in_len &&
		    EVP_CipherUpdate(c->ctx, out, &n, in, (int)in_len) != 1)
			return CKR_DEVICE_ERROR;
		*out_len = (size_t)n;
		return CKR_OK;
	}
	return block_update(c, in, in_len, out, out_len);
}

size_t rhd_cipher_final_max(const rhd_cipher_t *c)
{
	return c->partial_len + c->held_len + c->tag_len + AES_BLOCK;
}

/* CBC_PAD: the padding of the last block, checked without branching on
 * its bytes; 0 when it does not check. */
static size_t pad_of(const uint8_t block[AES_BLOCK])
{
	unsigned pad = block[AES_BLOCK - 1], bad = 0;
	bad |= (unsigned)((pad - 1u) >> 8);	   /* pad == 0 */
	bad |= (unsigned)((AES_BLOCK - pad) >> 8); /* pad > 16 */
	for (unsigned i = 0; i < AES_BLOCK; i++) {
		/* in_pad: all ones when i is within the last pad bytes */
		unsigned in_pad = 0u - ((AES_BLOCK - 1u - i) < pad);
		bad |= in_pad & (block[i] ^ pad);
	}
	return bad ? 0 : pad;
}

static CK_RV block_final(rhd_cipher_t *c, uint8_t *out, size_t *out_len)
{
	int n = 0;
	if (c->mech == CKM_AES_CBC_PAD && c->encrypt) {
		uint8_t pad = (uint8_t)(AES_BLOCK - c->partial_len);
		memset(c->partial + c->partial_len, pad, pad);
		int ok = EVP_CipherUpdate(c->ctx, out, &n, c->partial,
					  AES_BLOCK) == 1;
		*out_len = AES_BLOCK;
		return ok && n == AES_BLOCK ? CKR_OK : CKR_DEVICE_ERROR;
	}
	if (!keeps_last_block(c))
		return c->partial_len == 0 ? CKR_OK
		       : c->encrypt	   ? CKR_DATA_LEN_RANGE
					   : CKR_ENCRYPTED_DATA_LEN_RANGE;
	if (c->partial_len != AES_BLOCK)
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	uint8_t block[AES_BLOCK];
	if (EVP_CipherUpdate(c->ctx, block, &n, c->partial, AES_BLOCK) != 1 ||
	    n != AES_BLOCK)
		return CKR_DEVICE_ERROR;
	size_t pad = pad_of(block);
	/* One answer for every padding that does not check. */
	CK_RV rv = pad ? CKR_OK : CKR_ENCRYPTED_DATA_INVALID;
	if (pad) {
		memcpy(out, block, AES_BLOCK - pad);
		*out_len = AES_BLOCK - pad;
	}
	OPENSSL_cleanse(block, sizeof(block));
	return rv;
}

static CK_RV gcm_final(rhd_cipher_t *c, uint8_t *out, size_t *out_len)
{
	int n = 0, tail = 0;
	if (c->encrypt) {
		if (EVP_CipherFinal_ex(c->ctx, out, &tail) != 1 ||
		    EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_GET_TAG,
					(int)c->tag_len, out + tail) != 1)
			return CKR_DEVICE_ERROR;
		*out_len = (size_t)tail + c->tag_len;
		return CKR_OK;
	}
	if (c->held_len < c->tag_len)
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	size_t body = c->held_len - c->tag_len;
	if (EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_TAG, (int)c->tag_len,
				c->held + body) != 1 ||
	    (body &&
	     EVP_CipherUpdate(c->ctx, out, &n, c->held, (int)body) != 1))
		return CKR_DEVICE_ERROR;
	if (EVP_CipherFinal_ex(c->ctx, out + n, &tail) != 1) {
		/* The tag does not check: nothing is released. */
		OPENSSL_cleanse(out, body);
		return CKR_ENCRYPTED_DATA_INVALID;
	}
	*out_len = (size_t)n + (size_t)tail;
	return CKR_OK;
}

CK_RV rhd_cipher_final(rhd_cipher_t *c, uint8_t *out, size_t *out_len)
{
	*out_len = 0;
	if (c->mech == CKM_AES_GCM)
		return gcm_final(c, out, out_len);
	if (c->mech == CKM_AES_CTR)
		return CKR_OK;
	return block_final(c, out, out_len);
}

rhd_cipher_t *rhd_cipher_dup(const rhd_cipher_t *c)
{
	rhd_cipher_t *d = malloc(sizeof(*d));
	if (!d)
		return NULL;
	*d = *c;
	d->held = NULL;
	d->ctx = EVP_CIPHER_CTX_new();
	if (!d->ctx || EVP_CIPHER_CTX_copy(d->ctx, c->ctx) != 1 ||
	    (c->held && !(d->held = OPENSSL_malloc(RHD_CIPHER_MAX_HELD)))) {
		rhd_cipher_free(d);
		return NULL;
	}
	if (c->held)
		memcpy(d->held, c->held, c->held_len);
	return d;
}

/* --- key wrapping ------------------------------------------------------- */

static const char *aes_wrap_name(int pad, size_t len)
{
	static const char *const names[][3] = {
		{"AES-128-WRAP", "AES-192-WRAP", "AES-256-WRAP"},
		{"AES-128-WRAP-PAD", "AES-192-WRAP-PAD", "AES-256-WRAP-PAD"}};
	return names[pad ? 1 : 0][len == 16 ? 0 : len == 24 ? 1 : 2];
}

/* What RFC 3394 and RFC 5649 take: KW whole 8-byte blocks, two at least
 * as plaintext (three wrapped); KWP any length, two blocks wrapped. */
static CK_RV aes_wrap_lengths(int pad, int wrap, size_t in_len)
{
	if (wrap)
		return (pad ? in_len >= 1 : in_len >= 16 && in_len % 8 == 0)
			       ? CKR_OK
			       : CKR_KEY_SIZE_RANGE;
	return in_len % 8 == 0 && in_len >= (pad ? 16u : 24u)
		       ? CKR_OK
		       : CKR_WRAPPED_KEY_LEN_RANGE;
}

size_t rhd_aes_wrap_len(int pad, size_t in_len)
{
	return (pad ? (in_len + 7) / 8 * 8 : in_len) + 8;
}

CK_RV rhd_secret_aes_wrap(const rhd_secret_value_t *s, int pad, int wrap,
			  const uint8_t *iv, size_t iv_len, const uint8_t *in,
			  size_t in_len, uint8_t *out, size_t *out_len)
{
	if (!s || s->key_type != CKK_AES)
		return wrap ? CKR_WRAPPING_KEY_TYPE_INCONSISTENT
			    : CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
	if (iv_len && iv_len != (pad ? 4u : 8u))
		return CKR_MECHANISM_PARAM_INVALID;
	CK_RV rv = aes_wrap_lengths(pad, wrap, in_len);
	if (rv != CKR_OK || in_len > INT_MAX)
		return rv != CKR_OK ? rv : CKR_KEY_SIZE_RANGE;
	EVP_CIPHER *cipher =
		EVP_CIPHER_fetch(NULL, aes_wrap_name(pad, s->len), NULL);
	EVP_CIPHER_CTX *ctx = cipher ? EVP_CIPHER_CTX_new() : NULL;
	int n = 0;
	if (!ctx) {
		EVP_CIPHER_free(cipher);
		return CKR_DEVICE_MEMORY;
	}
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	int ok = EVP_CipherInit_ex2(ctx, cipher, s->bytes, iv_len ? iv : NULL,
				    wrap, NULL) == 1 &&
		 EVP_CipherUpdate(ctx, out, &n, in, (int)in_len) == 1 && n > 0;
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(cipher);
	ERR_clear_error();
	/* Unwrapping: one answer, whatever did not check. */
	*out_len = ok ? (size_t)n : 0;
	return ok ? CKR_OK : wrap ? CKR_DEVICE_ERROR : CKR_WRAPPED_KEY_INVALID;
}

CK_RV rhd_secret_hkdf(const rhd_secret_value_t *s, const char *digest,
		      const rhd_hkdf_t *p, uint8_t *out, size_t len)
{
	if (!s || s->key_type != CKK_GENERIC_SECRET)
		return CKR_KEY_TYPE_INCONSISTENT;
	int mode = !p->expand	 ? EVP_KDF_HKDF_MODE_EXTRACT_ONLY
		   : !p->extract ? EVP_KDF_HKDF_MODE_EXPAND_ONLY
				 : EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND;
	OSSL_PARAM params[6];
	size_t n = 0;
	params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						       (char *)digest, 0);
	params[n++] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_KEY, (void *)s->bytes, s->len);
	/* No salt: RFC 5869 takes hash-length zeros, as OpenSSL does. */
	if (p->salt_len)
		params[n++] = OSSL_PARAM_construct_octet_string(
			OSSL_KDF_PARAM_SALT, (void *)p->salt, p->salt_len);
	if (p->info_len)
		params[n++] = OSSL_PARAM_construct_octet_string(
			OSSL_KDF_PARAM_INFO, (void *)p->info, p->info_len);
	params[n] = OSSL_PARAM_construct_end();
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	int ok = ctx && EVP_KDF_derive(ctx, out, len, params) == 1;
	EVP_KDF_CTX_free(ctx);
	ERR_clear_error();
	return ok ? CKR_OK : CKR_DEVICE_ERROR;
}
