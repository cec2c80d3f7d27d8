/*
 * Cryptographic operations of a session: digest, sign and verify, each
 * single- or multi-part, with the specification's state rules. The caller
 * holds the app's lock.
 */
#ifndef RHD_OPS_H
#define RHD_OPS_H

#include "engine.h"
#include "remhsm.pb-c.h"

/* Sets *len to what a finished operation needs (digest or signature). */
CK_RV rhd_op_init(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s,
		  rhd_op_kind_t kind, const Remhsm__Mechanism *mech,
		  uint64_t key);
CK_RV rhd_op_update(rhd_session_t *s, rhd_op_kind_t kind, const uint8_t *data,
		    size_t len);

/*
 * Finishing takes two steps, so that no lock is held while a key works:
 * rhd_op_take (under the app's lock) checks the state and, when the
 * operation will produce its result, moves it out of the session into
 * *taken; rhd_op_complete (unlocked) computes and frees it.
 *
 * Digest or sign: single-part over data (single), or the final of a
 * multi-part one. Without a buffer (has_buffer 0) or with one shorter than
 * needed, *out_len says how much is needed, the operation stays, and
 * taken->active is 0. Verify always takes (has_buffer 1); its "out" is
 * the signature to check.
 */
CK_RV rhd_op_take(rhd_session_t *s, rhd_op_kind_t kind, int single,
		  int has_buffer, size_t *out_len, rhd_op_t *taken);
CK_RV rhd_op_complete(rhd_op_t *taken, rhd_op_kind_t kind, int single,
		      const uint8_t *data, size_t len, uint8_t *out,
		      size_t out_len);

/*
 * Encryption and decryption (kind RHD_OP_ENCRYPT or RHD_OP_DECRYPT, begun
 * by rhd_op_init), by the two-call convention: without a buffer, or with
 * one shorter than *out_len says on entry, *out_len becomes the length the
 * call puts out and the operation stays as it was. A single-part call
 * after updates ends the operation with CKR_OPERATION_ACTIVE; every other
 * error ends it too. out has room for rhd_op_cipher_room bytes.
 */
typedef enum {
	RHD_STEP_SINGLE,
	RHD_STEP_UPDATE,
	RHD_STEP_FINAL
} rhd_cipher_step_t;
size_t rhd_op_cipher_room(const rhd_session_t *s, rhd_op_kind_t kind,
			  rhd_cipher_step_t step, size_t in_len);
CK_RV rhd_op_cipher(rhd_session_t *s, rhd_op_kind_t kind,
		    rhd_cipher_step_t step, const uint8_t *in, size_t in_len,
		    int has_buffer, uint8_t *out, size_t *out_len);

/* The base key of a C_DeriveKey, by the specification's checks: an EC
 * private key (ECDH) or a generic secret (HKDF) whose CKA_DERIVE is true; a
 * reference to it in out->key (free with rhd_key_free), and what a key derived
 * from it inherits. */
typedef struct rhd_derive_base {
	rhd_key_t *key;
	int always_sensitive, never_extractable;
	/* The base key's CKA_DERIVE_TEMPLATE, alone (rhd_object_cleanup
	 * it): what every key derived from it must be. */
	rhd_object_t holder;
} rhd_derive_base_t;
CK_RV rhd_op_derive_base(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s,
			 uint64_t handle, CK_MECHANISM_TYPE mech,
			 rhd_derive_base_t *out);

/* CKM_RSA_PKCS_OAEP's parameters checked (a SHA hash, MGF1, a label of
 * bounded size); the label stays m's. */
CK_RV rhd_oaep_params(const Remhsm__Mechanism *m, rhd_oaep_t *out);
/* The mechanisms served, and their C_GetMechanismInfo. */
size_t rhd_mechanisms(const CK_MECHANISM_TYPE **list);
/* Whether the app already holds handle's key, current with its token (no
 * store read to init an operation with it); the caller holds app->lock. */
int rhd_op_key_cached(rhd_engine_t *engine, rhd_app_t *app, uint64_t handle);
/* Builds handle's key for its next init, the store read, the unsealing
 * and OpenSSL's work done without the app's lock (taken here around the
 * bookkeeping only). Nothing when it is cached already or not visible
 * through session: the init then says why. */
void rhd_op_prime_key(rhd_engine_t *engine, rhd_app_t *app, uint64_t session,
		      uint64_t handle);

int rhd_mechanism_info(CK_MECHANISM_TYPE mech, CK_MECHANISM_INFO *info);
int rhd_mechanism_is_ecdsa(CK_MECHANISM_TYPE mech);

#endif
