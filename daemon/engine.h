/*
 * The token engine: slots, tokens, applications, their sessions and login
 * state. Pure PKCS#11 semantics: no sockets, no libuv, no TLS.
 */
#ifndef RHD_ENGINE_H
#define RHD_ENGINE_H

#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "token.h"

#define RHD_APP_ID_LEN 16
#define RHD_SESSION_OBJECT_BASE 0x80000000u

#define RHD_ROLE_USER 1u  /* sessions, user login */
#define RHD_ROLE_SO 2u	  /* SO login, C_InitToken of a token, C_InitPIN */
#define RHD_ROLE_ADMIN 4u /* C_InitToken of a blank slot: token creation */
#define RHD_ROLE_ALL (RHD_ROLE_USER | RHD_ROLE_SO | RHD_ROLE_ADMIN)
#define RHD_MAX_SESSIONS_PER_APP 1024
/* Session objects live in the daemon's memory; one connection may not
 * exhaust it for every other. */
#define RHD_MAX_SESSION_OBJECTS_PER_APP 4096
/* Token-object handles one application keeps in memory; past it the
 * cache is emptied (those handles resolve again from the store). */
#define RHD_MAX_TOKEN_HANDLES 65536
#define RHD_MAX_RANDOM_PER_CALL 65536
#define RHD_IDENTITY_MAX 256
#define RHD_NOBODY ((CK_USER_TYPE)~0UL)

/* Bytes of daemon memory that requests may make it hold (session objects,
 * find results), charged to the application, to its identity and to the
 * daemon as a whole; what exceeds a limit is refused with
 * CKR_DEVICE_MEMORY. */
typedef struct rhd_budget {
	atomic_size_t used;
	size_t limit;
} rhd_budget_t;

#define RHD_DEFAULT_APP_BYTES ((size_t)32 << 20)
#define RHD_DEFAULT_IDENTITY_BYTES ((size_t)128 << 20)
#define RHD_DEFAULT_TOTAL_BYTES ((size_t)1 << 30)

/* The applications of one certificate identity share its budget. */
typedef struct rhd_identity {
	struct rhd_identity *next;
	unsigned refs;
	rhd_budget_t budget;
	char name[RHD_IDENTITY_MAX];
} rhd_identity_t;

/* A find's result: the handle, and the class and key type the client
 * learns with it. */
typedef struct rhd_found {
	uint32_t handle;
	uint64_t cls, key_type;
} rhd_found_t;

typedef enum {
	RHD_OP_DIGEST,
	RHD_OP_SIGN,
	RHD_OP_VERIFY,
	RHD_OP_ENCRYPT,
	RHD_OP_DECRYPT,
	RHD_OP_COUNT
} rhd_op_kind_t;

/* One active operation: its mechanism, the key, and the running hash of a
 * hash-then-sign (or digest) mechanism. */
typedef struct rhd_op {
	int active;
	int updated; /* C_*Update was called: only C_*Final may follow */
	CK_MECHANISM_TYPE mech;
	rhd_digest_t *md;
	rhd_key_t *key;
	rhd_signer_t *signer; /* ECDSA: this operation's copy of the key's */
	rhd_padding_t pad;    /* RSA: how the mechanism pads */
	rhd_mac_t *mac;	      /* HMAC and CMAC: the running MAC */
	rhd_cipher_t *cipher; /* encryption and decryption */
	int rsa_cipher; /* RSA-OAEP (with its parameters) or PKCS#1 v1.5: */
	rhd_oaep_t oaep_params;
	uint8_t *oaep_label;   /* owned: oaep_params.label */
	uint64_t key_store_id; /* the audit's name for the key; 0: session */
} rhd_op_t;

struct rhd_app;

typedef struct rhd_session {
	struct rhd_session *prev, *next;    /* the app's sessions */
	struct rhd_session *next_by_handle; /* the app's index chain */
	struct rhd_app *app; /* whose budget holds the find's results */
	uint32_t handle;
	CK_SLOT_ID slot;
	CK_FLAGS flags;
	/* An active C_FindObjects: what was found, and how much was read. */
	int finding;
	struct rhd_found *found;
	size_t found_count, found_next, found_cap;
	rhd_op_t ops[RHD_OP_COUNT];
} rhd_session_t;

struct rhd_object;

/* A key built for use (crypto.h) and what its init checks need, kept
 * while the key's version says nothing changed (see rhd_token_t). */
typedef struct rhd_key_cache {
	rhd_key_t *key;
	uint64_t version;
	uint64_t cls, key_type;
	int can_sign, can_verify, can_encrypt, can_decrypt, can_derive;
	/* What a key derived from this one inherits. */
	int always_sensitive, never_extractable;
	/* CKA_ALLOWED_MECHANISMS, when the key has it (even empty). */
	int has_allowed;
	size_t n_allowed;
	uint64_t *allowed;
	/* CKA_DERIVE_TEMPLATE's packed value, when the key has one (NULL
	 * with has_derive_template: memory ran out, and it derives nothing). */
	int has_derive_template;
	uint8_t *derive_template;
	size_t derive_template_len;
} rhd_key_cache_t;

/* An object handle of one application: a token object by its store id, or
 * a session object owned by one of the app's sessions. */
typedef struct rhd_handle {
	struct rhd_handle *next;
	struct rhd_handle *next_by_handle, *next_by_store; /* index chains */
	uint32_t handle;
	CK_SLOT_ID slot;
	uint64_t store_id;
	struct rhd_object *session_obj;
	uint32_t owner;
	int private_obj;
	size_t charged; /* a session object's bytes, in its app's budget */
	rhd_key_cache_t key;
} rhd_handle_t;

/* Who is logged in to a token for one application, and the token key
 * that login unlocked. */
typedef struct rhd_login {
	CK_USER_TYPE user;
	uint8_t token_key[RHS_KEY_LEN];
} rhd_login_t;

/* One PKCS#11 application (one C_Initialize in one client process). */
typedef struct rhd_app {
	struct rhd_app *next;
	uint8_t id[RHD_APP_ID_LEN];
	char identity[RHD_IDENTITY_MAX];
	unsigned refs;
	pthread_mutex_t lock;
	rhd_session_t *sessions;
	/* Changed under lock; read without it by the loop's idle timer. */
	_Atomic unsigned session_count;
	/* Sessions by handle (a hash index), and how many are open on each
	 * slot (of them read-write), so that no call walks the sessions. */
	rhd_session_t **session_index;
	size_t session_buckets;
	unsigned slot_sessions[RHD_MAX_SLOTS], slot_rw_sessions[RHD_MAX_SLOTS];
	uint32_t next_handle;
	rhd_login_t *login; /* RHD_MAX_SLOTS of them, in secret memory */
	rhd_handle_t *objects;
	uint32_t next_object;
	/* Token objects get handle store_id ^ handle_mask, the same in every
	 * daemon run; session objects count from RHD_SESSION_OBJECT_BASE. */
	uint32_t handle_mask;
	/* Hash indexes of objects: by handle, and by slot and store id. */
	rhd_handle_t **by_handle, **by_store;
	size_t buckets, handle_count, session_objects;
	/* Token-object handles held, and the most the app may hold. */
	size_t token_handles, max_token_handles;
	/* FreeRTOS compatibility, asked for in Hello: a repeated C_Login
	 * answers CKR_OK, a C_Sign length query ends the operation. */
	_Atomic int compat_freertos;
	/* What the access list grants the identity (access.h): slots as a
	 * bit mask, roles as RHD_ROLE_* bits. All of both without a list.
	 * These three are atomic: a connection's Hello sets them on its loop
	 * without the app's lock, which a worker may hold across store I/O. */
	_Atomic uint64_t visible_slots;
	_Atomic unsigned roles;
	rhd_budget_t budget;
	rhd_identity_t *ident;
	rhd_budget_t *total; /* the daemon's */
} rhd_app_t;

typedef struct rhd_engine_opts {
	unsigned slots;
	rhs_store_t *store;
	rhd_token_policy_t policy;
	/* From the store key (resume.h); NULL for a random one, which no
	 * later daemon can honour (tests). */
	const uint8_t *resume_key;
	unsigned lease_seconds; /* 0: no login leases */
	/* Per application; 0 for the defaults above. */
	unsigned max_sessions, max_session_objects, max_token_handles;
	/* The largest answer a client accepts (the frame limit); 0 for
	 * RH_FRAME_DEFAULT_MAX. */
	size_t max_answer;
	/* Memory budgets in bytes; 0 for the defaults above. */
	size_t max_app_bytes, max_identity_bytes, max_total_bytes;
} rhd_engine_opts_t;

typedef struct rhd_engine {
	pthread_mutex_t lock;
	rhd_app_t *apps;
	unsigned slot_count;
	char serial[17];
	rhd_tokens_t tokens;
	uint8_t *resume_key; /* RHS_KEY_LEN bytes, in secret memory */
	unsigned lease_seconds;
	unsigned max_sessions, max_session_objects, max_token_handles;
	size_t max_answer;
	size_t max_app_bytes, max_identity_bytes;
	rhd_budget_t total;
	rhd_identity_t *identities;
} rhd_engine_t;

int rhd_engine_init(rhd_engine_t *engine, const rhd_engine_opts_t *opts);
void rhd_engine_cleanup(rhd_engine_t *engine);

/*
 * Binds a connection to the application app_id of the certificate identity.
 * The application is created on first use. Returns NULL when the id is
 * malformed, is bound to another identity, or memory runs out.
 */
rhd_app_t *rhd_engine_attach(rhd_engine_t *engine, const uint8_t *app_id,
			     size_t app_id_len, const char *identity);

/* Drops one connection's hold; the last one closes the app's sessions. */
void rhd_engine_detach(rhd_engine_t *engine, rhd_app_t *app);

int rhd_engine_slot_valid(const rhd_engine_t *engine, uint64_t slot);
rhd_token_t *rhd_engine_token(rhd_engine_t *engine, CK_SLOT_ID slot);

/* Open sessions of the app, read without its lock. */
unsigned rhd_app_session_count(rhd_app_t *app);

/* Session operations; the caller holds app->lock. */
CK_RV rhd_session_open(rhd_engine_t *engine, rhd_app_t *app, CK_SLOT_ID slot,
		       CK_FLAGS flags, uint32_t *handle);
rhd_session_t *rhd_session_find(rhd_app_t *app, uint64_t handle);
/* Recreates a session a client still holds under its old handle (after a
 * restart or a dropped connection); CKR_OK too when it exists as given. */
CK_RV rhd_session_restore(rhd_engine_t *engine, rhd_app_t *app, uint64_t handle,
			  CK_SLOT_ID slot, CK_FLAGS flags);
CK_RV rhd_session_close(rhd_engine_t *engine, rhd_app_t *app, uint64_t handle);
void rhd_session_close_slot(rhd_engine_t *engine, rhd_app_t *app,
			    CK_SLOT_ID slot);
void rhd_session_count(const rhd_app_t *app, CK_SLOT_ID slot,
		       unsigned long *all, unsigned long *rw);
CK_STATE rhd_session_state(const rhd_app_t *app, const rhd_session_t *s);

/* Takes bytes from the app's, its identity's and the daemon's budgets:
 * CKR_OK, or CKR_DEVICE_MEMORY (with a log line naming the budget and
 * what it was for) and nothing taken. */
CK_RV rhd_app_charge(rhd_app_t *app, size_t bytes, const char *what);
void rhd_app_refund(rhd_app_t *app, size_t bytes);

/* Ends the app's login to slot, wiping the token key. */
void rhd_app_logout(rhd_app_t *app, CK_SLOT_ID slot);
/* Ends every application's login to slot (each app's lock taken in
 * turn, the engine's not held meanwhile); -1 when memory ran out and
 * none ended. */
int rhd_engine_logout_slot(rhd_engine_t *engine, CK_SLOT_ID slot);

/* Drops the app's object handles that match: a session's session objects
 * (owner != 0), or everything of a slot (owner 0). */
void rhd_app_drop_objects(rhd_app_t *app, CK_SLOT_ID slot, uint32_t owner);
void rhd_session_end_find(rhd_session_t *s);
/* Frees a handle and what it holds (session object, cached key). */
void rhd_handle_free(rhd_handle_t *h);
/* Drops the handle's cached key and its signing context. */
void rhd_handle_drop_key(rhd_handle_t *h);
/* Frees what k holds and empties it. */
void rhd_key_cache_clear(rhd_key_cache_t *k);

/* The app's object handles: added (a token object with its store id set:
 * its handle is fixed by it; a session object gets the next number),
 * indexed by handle and store id, found in O(1), removed (not freed). */
int rhd_app_handle_add(rhd_app_t *app, rhd_handle_t *h);
rhd_handle_t *rhd_app_handle_find(const rhd_app_t *app, uint64_t handle);
rhd_handle_t *rhd_app_handle_by_store(const rhd_app_t *app, CK_SLOT_ID slot,
				      uint64_t store_id);
void rhd_app_handle_remove(rhd_app_t *app, rhd_handle_t *h);
void rhd_op_end(rhd_op_t *op);
/* C_Logout and C_CloseSession end every operation of the session. */
void rhd_session_end_ops(rhd_session_t *s);

#endif
