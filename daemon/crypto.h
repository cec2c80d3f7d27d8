/*
 * The crypto backend: OpenSSL behind a small interface (keys and their
 * signatures, digests, random, KDFs, certificate fields, curve checks),
 * and the engine's only way to it: no other daemon source includes
 * OpenSSL's crypto headers (cmake/layers.cmake checks; TLS has its own).
 * With the store, the only code that touches key material.
 */
#ifndef RHD_CRYPTO_H
#define RHD_CRYPTO_H

#include "object.h"
#include "rh_pkcs11.h"

/* OpenSSL's secure heap of size bytes (a power of two; 0: none). The
 * private keys OpenSSL builds live there, in pages locked in RAM and left
 * out of core dumps, wiped when freed. Answers 1 when it is set up and
 * locked, 2 when set up but not locked (RLIMIT_MEMLOCK), 0 when it could
 * not be set up. Called once, before any key is built. */
int rhd_crypto_secure_heap_init(size_t size);
/* Its size and the bytes in use now (both 0 without one). */
void rhd_crypto_secure_heap_usage(size_t *size, size_t *used);
/* Whether a key may be built for the cache: not while the secure heap is
 * down to the quarter kept for TLS handshakes and signatures. */
int rhd_crypto_key_room(void);
/* Why a key that passed every check was not built: CKR_DEVICE_MEMORY,
 * logged once until there is room again, when the secure heap is down to
 * that quarter; CKR_DEVICE_ERROR otherwise. */
CK_RV rhd_crypto_key_not_built(void);

/* A key built for use: an EC (NIST or Ed25519) or RSA key object's,
 * private or public, and
 * for an EC private key a signing context made once; or a secret key's
 * value (AES, generic secret). Opaque: the engine
 * holds it, OpenSSL stays behind this interface. Counted: each holder
 * takes a reference and frees it. NULL when the object is no usable key
 * (or OpenSSL's memory, the secure heap included, ran out). */
typedef struct rhd_key rhd_key_t;
rhd_key_t *rhd_key_new(const rhd_object_t *obj);
rhd_key_t *rhd_key_ref(rhd_key_t *key);
void rhd_key_free(rhd_key_t *key);
/* The length of its signatures: the modulus's bytes, r||s, or Ed25519's
 * R||S. */
size_t rhd_key_sig_len(const rhd_key_t *key);

/* One operation's copy of an EC private key's signing context, which is
 * not shared between threads (it costs no lookup in OpenSSL's provider
 * tables); NULL for other keys or on failure, when a sign makes its own. */
typedef struct rhd_signer rhd_signer_t;
rhd_signer_t *rhd_key_signer(const rhd_key_t *key);
void rhd_signer_free(rhd_signer_t *signer);

/* How an RSA mechanism pads: PKCS#1 v1.5 (hash 0: the input is a
 * DigestInfo), PSS with its hash (MGF1 with the same) and salt, or none
 * (X.509); EC keys have none. Hashes are CKM_SHA* mechanism types. */
typedef enum {
	RHD_PAD_NONE,
	RHD_PAD_PKCS1,
	RHD_PAD_PSS,
	RHD_PAD_RAW
} rhd_pad_scheme_t;
typedef struct rhd_padding {
	rhd_pad_scheme_t scheme;
	CK_MECHANISM_TYPE hash;
	int salt_len;
} rhd_padding_t;

/* Signs (or, with verify, checks) the input of a mechanism: a hash for
 * ECDSA (raw r||s of rhd_key_sig_len bytes, with signer when not NULL),
 * for RSA by pad, the whole message for Ed25519 (pad unused). */
CK_RV rhd_key_sign(const rhd_key_t *key, rhd_signer_t *signer,
		   const rhd_padding_t *pad, const uint8_t *in, size_t in_len,
		   uint8_t *sig, size_t sig_len);
CK_RV rhd_key_verify(const rhd_key_t *key, const rhd_padding_t *pad,
		     const uint8_t *in, size_t in_len, const uint8_t *sig,
		     size_t sig_len);

/* RSA-OAEP (CKM_RSA_PKCS_OAEP): the hash (CKM_SHA_1, CKM_SHA224 ...
 * CKM_SHA512), MGF1's hash, and the label. Encryption with a public key
 * (out has the modulus's bytes; data longer than k - 2 hLen - 2 is
 * CKR_DATA_LEN_RANGE), decryption with a private one (a ciphertext of
 * another length: CKR_ENCRYPTED_DATA_LEN_RANGE; one that does not decode,
 * whatever failed: CKR_ENCRYPTED_DATA_INVALID). */
typedef struct rhd_oaep {
	CK_MECHANISM_TYPE hash, mgf_hash;
	const uint8_t *label;
	size_t label_len;
} rhd_oaep_t;
int rhd_key_is_rsa(const rhd_key_t *key);
CK_RV rhd_key_rsa_oaep(const rhd_key_t *key, int encrypt, const rhd_oaep_t *p,
		       const uint8_t *in, size_t in_len, uint8_t *out,
		       size_t *out_len);
/* The same with PKCS#1 v1.5 padding (CKM_RSA_PKCS; data longer than
 * k - 11 is CKR_DATA_LEN_RANGE). Its decryption answers whether a
 * ciphertext's padding checks: an oracle (Bleichenbacher), served only
 * when the operator allows it. */
CK_RV rhd_key_rsa_pkcs1(const rhd_key_t *key, int encrypt, const uint8_t *in,
			size_t in_len, uint8_t *out, size_t *out_len);

/* ECDH (CKM_ECDH1_DERIVE): the shared secret Z of an EC private key with
 * a peer's uncompressed point, into z (cap bytes: the field's size is
 * enough). CKR_MECHANISM_PARAM_INVALID for a point that is not on the
 * key's curve. */
CK_RV rhd_key_ecdh(const rhd_key_t *key, const uint8_t *peer_pt,
		   size_t peer_len, uint8_t *z, size_t cap, size_t *z_len);
/* ANSI X9.63's KDF over Z with the shared info, len bytes into out. */
CK_RV rhd_crypto_x963_kdf(CK_MECHANISM_TYPE hash, const uint8_t *z,
			  size_t z_len, const uint8_t *info, size_t info_len,
			  uint8_t *out, size_t len);

/* A derived key's value of len bytes: Z's leftmost bytes (kdf_hash 0,
 * CKD_NULL; CKR_ATTRIBUTE_VALUE_INVALID when Z is shorter), or X9.63's
 * KDF over Z with that hash and info. Z never leaves. */
#define RHD_ECDH_MAX_Z 66
CK_RV rhd_crypto_ecdh_value(const rhd_key_t *key, const uint8_t *peer_pt,
			    size_t peer_len, CK_MECHANISM_TYPE kdf_hash,
			    const uint8_t *info, size_t info_len, uint8_t *out,
			    size_t len);

/* HKDF (RFC 5869, CKM_HKDF_DERIVE) keyed with a secret key's value: the
 * extract step (with salt; none: hash-length zeros), the expand step (with
 * info), or both. Extract alone gives the PRK, of the hash's length;
 * expanding gives len bytes, at most 255 times the hash's length
 * (CKR_ATTRIBUTE_VALUE_INVALID otherwise). */
typedef struct rhd_hkdf {
	int extract, expand;
	CK_MECHANISM_TYPE hash; /* CKM_SHA_1, CKM_SHA256/384/512 */
	const uint8_t *salt;
	size_t salt_len;
	const uint8_t *info;
	size_t info_len;
} rhd_hkdf_t;
CK_RV rhd_key_hkdf(const rhd_key_t *key, const rhd_hkdf_t *p, uint8_t *out,
		   size_t len);

/* RSA key material checked whole (every part consistent: private with its
 * CRT parts), its size in bits in *bits; 0 when it does not check. */
int rhd_crypto_rsa_check(const rhd_object_t *obj, int private_key,
			 unsigned *bits);

/* A certificate's subject, issuer and serial set on obj from its DER
 * (value) where obj has none; CKR_ATTRIBUTE_VALUE_INVALID when value is
 * not one whole X.509 certificate. */
CK_RV rhd_crypto_certificate_fields(const rhd_attr_t *value, rhd_object_t *obj);
/* Whether an uncompressed point lies on the curve (rhd_ec_curve's nid)
 * and is not at infinity. */
int rhd_crypto_ec_point_valid(int nid, const uint8_t *pt, size_t len);
/* The uncompressed public point of the private value d (0 < d < order,
 * else CKR_ATTRIBUTE_VALUE_INVALID) into pt, *len bytes. */
CK_RV rhd_crypto_ec_public_point(int nid, const rhd_attr_t *value, uint8_t *pt,
				 size_t cap, size_t *len);

/* A new EC key pair on the curve named by params: CKA_EC_POINT on pub,
 * CKA_VALUE on priv (whose point rhd_object_prepare_create derives). */
CK_RV rhd_crypto_ec_generate(const rhd_attr_t *params, rhd_object_t *pub,
			     rhd_object_t *priv);
/* A new RSA key pair: modulus and public exponent on both, the private
 * parts on priv. */
CK_RV rhd_crypto_rsa_generate(unsigned bits, const rhd_attr_t *exponent,
			      rhd_object_t *pub, rhd_object_t *priv);

/* The hash (CKM_SHA_1 ... CKM_SHA512) of a digest, hash-then-sign or PSS
 * mechanism, 0 for others; and a hash's length in bytes. */
CK_MECHANISM_TYPE rhd_crypto_hash_of(CK_MECHANISM_TYPE mech);
size_t rhd_crypto_hash_len(CK_MECHANISM_TYPE hash);

/* A running hash of a CKM_SHA* hash; NULL on failure. */
typedef struct rhd_digest rhd_digest_t;
rhd_digest_t *rhd_digest_new(CK_MECHANISM_TYPE hash);
CK_RV rhd_digest_update(rhd_digest_t *d, const uint8_t *data, size_t len);
/* The hash, of rhd_digest_len bytes, into out. */
CK_RV rhd_digest_final(rhd_digest_t *d, uint8_t *out, size_t *len);
size_t rhd_digest_len(const rhd_digest_t *d);
void rhd_digest_free(rhd_digest_t *d);

/* Random bytes, and entropy an application adds to the pool; for keys,
 * bytes from OpenSSL's private generator, which never serves an answer. */
CK_RV rhd_crypto_random(uint8_t *out, size_t len);
CK_RV rhd_crypto_secret_random(uint8_t *out, size_t len);
void rhd_crypto_seed(const uint8_t *seed, size_t len);

/* --- Ed25519 (daemon/crypto_ed.c) ----------------------------------------- */

/* An Ed25519 key's value (its seed) and its public key, in bytes; and its
 * signatures'. */
#define RHD_ED25519_LEN 32
#define RHD_ED25519_SIG_LEN 64
/* Its size as C_GetMechanismInfo gives it: the curve's, as OpenSC's tools
 * name it. */
#define RHD_ED25519_BITS 255
/* Whether a CKA_EC_PARAMS names Ed25519: RFC 8410's OID, PKCS#11 3.0's
 * PrintableString "edwards25519", or the OID GnuPG registered. */
int rhd_ed_params_valid(const rhd_attr_t *params);
/* CKA_EC_POINT on obj: the public key of the seed value
 * (CKR_ATTRIBUTE_VALUE_INVALID unless it has RHD_ED25519_LEN bytes). */
CK_RV rhd_crypto_ed_public(const rhd_attr_t *value, rhd_object_t *obj);
/* A new Ed25519 pair: CKA_EC_POINT on pub, CKA_VALUE on priv. */
CK_RV rhd_crypto_ed_generate(rhd_object_t *pub, rhd_object_t *priv);

/* --- secret keys (daemon/crypto_secret.c) --------------------------------- */

/* Secret key values the token serves, in bytes: AES 16, 24 or 32; generic
 * secrets (HMAC keys) from RHD_SECRET_MIN_LEN to RHD_SECRET_MAX_LEN. */
#define RHD_SECRET_MIN_LEN 16
#define RHD_SECRET_MAX_LEN 512
int rhd_secret_len_valid(uint64_t key_type, size_t len);
/* CKA_CHECK_VALUE as PKCS#11 3.0 defines it: for AES the first bytes of a
 * zero block encrypted with the key, for a generic secret the first bytes
 * of its SHA-1. CKR_ATTRIBUTE_VALUE_INVALID for a length not served. */
#define RHD_CHECK_VALUE_LEN 3
CK_RV rhd_crypto_check_value(uint64_t key_type, const uint8_t *value,
			     size_t len, uint8_t out[RHD_CHECK_VALUE_LEN]);

/* A new secret value of len bytes (a served length) set as obj's
 * CKA_VALUE, from the generator keys come from. */
CK_RV rhd_crypto_secret_generate(rhd_object_t *obj, uint64_t key_type,
				 size_t len);

/* MACs through C_Sign/C_Verify: HMAC (CKM_SHA_1_HMAC, CKM_SHA256_HMAC,
 * CKM_SHA384_HMAC, CKM_SHA512_HMAC) with generic secret keys, and
 * CKM_AES_CMAC with AES keys. */
#define RHD_MAC_MAX_LEN 64
int rhd_mechanism_is_mac(CK_MECHANISM_TYPE mech);
/* The key type a MAC mechanism takes. */
uint64_t rhd_mac_key_type(CK_MECHANISM_TYPE mech);
/* One operation's running MAC of mech under a secret key; NULL when the
 * key is of another type or memory ran out. */
typedef struct rhd_mac rhd_mac_t;
rhd_mac_t *rhd_mac_new(const rhd_key_t *key, CK_MECHANISM_TYPE mech);
CK_RV rhd_mac_update(rhd_mac_t *m, const uint8_t *data, size_t len);
size_t rhd_mac_len(const rhd_mac_t *m);
/* The MAC, rhd_mac_len bytes, into out (out_len at least that). */
CK_RV rhd_mac_final(rhd_mac_t *m, uint8_t *out, size_t out_len);
/* Compares the MAC with sig in constant time: CKR_SIGNATURE_LEN_RANGE for
 * a length not the MAC's, CKR_SIGNATURE_INVALID when it differs. */
CK_RV rhd_mac_verify(rhd_mac_t *m, const uint8_t *sig, size_t sig_len);
void rhd_mac_free(rhd_mac_t *m);

/* AES encryption and decryption: CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD
 * (PKCS#7 padding), CKM_AES_CTR and CKM_AES_GCM, single- and multi-part.
 * GCM decryption keeps what it is given (at most RHD_CIPHER_MAX_HELD
 * bytes) until the final call checks the tag, so that nothing is released
 * from a forgery. */
#define RHD_GCM_MAX_IV 128
#define RHD_GCM_MAX_AAD 65536
#define RHD_CIPHER_MAX_HELD 65536
int rhd_mechanism_is_cipher(CK_MECHANISM_TYPE mech);
typedef struct rhd_cipher_params {
	CK_MECHANISM_TYPE mech;
	const uint8_t *iv; /* CBC: the IV; CTR: the counter block; GCM */
	size_t iv_len;
	size_t counter_bits; /* CTR */
	const uint8_t *aad;  /* GCM */
	size_t aad_len;
	size_t tag_bits;
} rhd_cipher_params_t;
typedef struct rhd_cipher rhd_cipher_t;
/* CKR_KEY_TYPE_INCONSISTENT for a key that is no AES key,
 * CKR_MECHANISM_PARAM_INVALID for parameters the mode does not take. */
CK_RV rhd_cipher_new(const rhd_key_t *key, const rhd_cipher_params_t *p,
		     int encrypt, rhd_cipher_t **out);
/* Exactly what an update of in_len bytes puts out. */
size_t rhd_cipher_update_len(const rhd_cipher_t *c, size_t in_len);
/* out has room for rhd_cipher_update_len(in_len) bytes. CTR refuses data
 * past its counter's span with CKR_DATA_LEN_RANGE. */
CK_RV rhd_cipher_update(rhd_cipher_t *c, const uint8_t *in, size_t in_len,
			uint8_t *out, size_t *out_len);
/* The most a final call puts out, and the final call itself (out has
 * room for that): CKR_DATA_LEN_RANGE or CKR_ENCRYPTED_DATA_LEN_RANGE for
 * a partial block, CKR_ENCRYPTED_DATA_INVALID for padding or a tag that
 * does not check (one answer, whatever failed). */
size_t rhd_cipher_final_max(const rhd_cipher_t *c);
CK_RV rhd_cipher_final(rhd_cipher_t *c, uint8_t *out, size_t *out_len);
/* A copy to try a call on: the original stays as it was. */
rhd_cipher_t *rhd_cipher_dup(const rhd_cipher_t *c);
void rhd_cipher_free(rhd_cipher_t *c);

/* --- key wrapping --------------------------------------------------------
 */
/* AES key wrap of in under an AES key: RFC 3394 (CKM_AES_KEY_WRAP, pad 0)
 * or RFC 5649 (CKM_AES_KEY_WRAP_KWP, pad 1), with the default IV or one of
 * 8 (KW) or 4 (KWP) bytes. Wrapping puts out rhd_aes_wrap_len(pad,
 * in_len) bytes and refuses a plaintext KW cannot take
 * (CKR_KEY_SIZE_RANGE); unwrapping at most in_len - 8, with one answer
 * for whatever does not check (CKR_WRAPPED_KEY_INVALID) and
 * CKR_WRAPPED_KEY_LEN_RANGE for a length no wrap has. */
size_t rhd_aes_wrap_len(int pad, size_t in_len);
CK_RV rhd_key_aes_wrap(const rhd_key_t *key, int pad, int wrap,
		       const uint8_t *iv, size_t iv_len, const uint8_t *in,
		       size_t in_len, uint8_t *out, size_t *out_len);
/* A private key (built from its object) as PKCS#8 PrivateKeyInfo DER,
 * into out (cap bytes; CKR_KEY_SIZE_RANGE when it does not fit). */
#define RHD_PKCS8_MAX 8192
CK_RV rhd_key_pkcs8(const rhd_key_t *key, uint8_t *out, size_t cap,
		    size_t *len);
/* The key material of PKCS#8 DER set on obj: CKA_EC_PARAMS and CKA_VALUE
 * of an EC key on a served curve or of an Ed25519 key, or every RSA part; the
 * whole input one PrivateKeyInfo of key_type, else CKR_WRAPPED_KEY_INVALID. */
CK_RV rhd_crypto_from_pkcs8(const uint8_t *der, size_t len, uint64_t key_type,
			    rhd_object_t *obj);
/* HKDF-SHA256 (no salt) of key with info: len bytes into out, < 0 on
 * failure; and HMAC-SHA256 of data under key. */
int rhd_crypto_hkdf_sha256(const uint8_t *key, size_t key_len, const char *info,
			   size_t info_len, uint8_t *out, size_t len);
void rhd_crypto_hmac_sha256(const uint8_t *key, size_t key_len,
			    const void *data, size_t len, uint8_t out[32]);
/* SHA-256 of data. */
#define RHD_SHA256_LEN 32
void rhd_crypto_sha256(const void *data, size_t len,
		       uint8_t out[RHD_SHA256_LEN]);

#endif
