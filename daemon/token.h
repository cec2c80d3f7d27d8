/*
 * Tokens: label, PINs and their failure counters, kept in memory and
 * written through to the store. Each token has a random token key wrapped
 * under a key derived from the user PIN and another from the SO PIN; a
 * correct PIN is one that unwraps it. No sockets, no libuv.
 */
#ifndef RHD_TOKEN_H
#define RHD_TOKEN_H

#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdint.h>

#include "rhs.h"

#define RHD_MAX_SLOTS 64
#define RHD_LABEL_LEN 32
#define RHD_MIN_PIN_LEN 4
#define RHD_MAX_PIN_LEN 255
#define RHD_WRAPPED_LEN (RHS_KEY_LEN + RHS_SEAL_OVERHEAD)

typedef struct rhd_pin_wrap {
	int set;
	rhs_kdf_params_t kdf;
	uint8_t wrapped[RHD_WRAPPED_LEN];
} rhd_pin_wrap_t;

typedef enum {
	RHD_TOKEN_BLANK,      /* never initialised */
	RHD_TOKEN_READY,      /* initialised (SO PIN set) */
	RHD_TOKEN_UNAVAILABLE /* its record does not open: left untouched */
} rhd_token_state_t;

#define RHD_OBJECT_STRIPES 64

/* Two locks, taken in this order: write_lock, held by a worker across the
 * store write of the token's record (so writes keep their order and a PIN
 * check counts against the last one), and lock, held only to read or change
 * the fields below in memory; the loop threads take lock alone, never
 * across store I/O or a KDF. */
typedef struct rhd_token {
	pthread_mutex_t write_lock;
	pthread_mutex_t lock;
	uint32_t slot;
	rhd_token_state_t state;
	uint8_t label[RHD_LABEL_LEN];
	rhd_pin_wrap_t so, user;
	unsigned so_failures, user_failures;
	uint64_t incarnation;		/* new at each initialisation */
	unsigned sessions, rw_sessions; /* of every application */
	/* Bumped when the token is re-initialised, and an object's stripe
	 * (its store id modulo RHD_OBJECT_STRIPES) when it is changed or
	 * destroyed: a cached key is reloaded when either moved. A change to
	 * another object of the stripe costs a reload, never a stale key; a
	 * change to an unrelated key does not make every signer reload. */
	uint64_t generation;
	uint64_t stripe[RHD_OBJECT_STRIPES];
} rhd_token_t;

/* How new PINs are derived and how many failures lock a PIN. */
typedef struct rhd_token_policy {
	uint64_t kdf_n;
	uint32_t kdf_r, kdf_p;
	unsigned max_failures;
} rhd_token_policy_t;

typedef struct rhd_tokens {
	rhd_token_t slot[RHD_MAX_SLOTS];
	unsigned count;
	rhs_store_t *store;
	rhd_token_policy_t policy;
} rhd_tokens_t;

/* Loads every slot's token; an unreadable record is logged and its token
 * reported unavailable, the others serve on. */
int rhd_tokens_load(rhd_tokens_t *tokens, unsigned count, rhs_store_t *store,
		    const rhd_token_policy_t *policy);
void rhd_tokens_cleanup(rhd_tokens_t *tokens);

/* C_InitToken: verifies the SO PIN of an initialised token, then wipes
 * its objects and makes a new token key under so_pin. */
CK_RV rhd_token_init(rhd_tokens_t *tokens, rhd_token_t *t,
		     const uint8_t *so_pin, size_t pin_len,
		     const uint8_t *label, size_t label_len);

/* Checks pin for role (CKU_SO or CKU_USER); on success copies out the token
 * key. Failures are counted in the store before this returns. */
CK_RV rhd_token_verify_pin(rhd_tokens_t *tokens, rhd_token_t *t,
			   CK_USER_TYPE role, const uint8_t *pin,
			   size_t pin_len, uint8_t token_key[RHS_KEY_LEN]);

/* Sets role's PIN to wrap token_key, clearing its failure count. */
CK_RV rhd_token_set_pin(rhd_tokens_t *tokens, rhd_token_t *t, CK_USER_TYPE role,
			const uint8_t token_key[RHS_KEY_LEN],
			const uint8_t *pin, size_t pin_len);

int rhd_pin_len_ok(size_t len);

/* Reads t's record again (another remhsmd sharing the store may have
 * written it): what changed since this daemon last read it, as bits
 * (RHD_TOKEN_ANEW: initialised anew, its generation moved on;
 * RHD_TOKEN_PIN_CHANGED: a PIN set or changed), or a store error (RHS_*,
 * logged). */
#define RHD_TOKEN_ANEW 1
#define RHD_TOKEN_PIN_CHANGED 2
int rhd_token_refresh(rhd_tokens_t *tokens, rhd_token_t *t);

/* What a cached copy of object store_id was made at (see stripe). */
uint64_t rhd_token_object_version(rhd_token_t *t, uint64_t store_id);
/* Every object of t went (its rows were wiped elsewhere): cached copies
 * of them are stale. Takes t->lock only. */
void rhd_token_gone(rhd_token_t *t);
/* Object store_id changed: cached copies of it are stale. */
void rhd_token_object_changed(rhd_token_t *t, uint64_t store_id);

/* CK_TOKEN_INFO flags of t; the caller holds t->lock. */
CK_FLAGS rhd_token_flags(const rhd_tokens_t *tokens, const rhd_token_t *t);

/* Logs why a store call failed (event=store-failed op=OP slot=SLOT with
 * the database's words) and returns what the caller answers for it:
 * CKR_DEVICE_MEMORY for a full store, else CKR_DEVICE_ERROR. */
CK_RV rhd_store_failed(const char *op, CK_SLOT_ID slot, int rc);

#endif
