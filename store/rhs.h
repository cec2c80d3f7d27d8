/*
 * The encrypted object store. A narrow interface over a backend (SQLite
 * today: backend.h, sqlite.c): open/close, transactions, token records,
 * object records by id, and exact-match lookups on four index values. No
 * PKCS#11 policy lives here: records are opaque bytes, sealed at rest with
 * AES-256-GCM under the store key and bound to their table, token and id; index
 * values are stored only as keyed hashes.
 */
#ifndef RHS_H
#define RHS_H

#include <stddef.h>
#include <stdint.h>

#define RHS_WARN_UNUSED __attribute__((warn_unused_result))

#define RHS_KEY_LEN 32
#define RHS_SCHEMA_VERSION 4
/* Tokens a store holds: slots 0 to RHS_MAX_TOKENS - 1. */
#define RHS_MAX_TOKENS 64

#define RHS_ERRORS(X)                                                          \
	X(RHS_ENOMEM, -1, "out of memory")                                     \
	X(RHS_EIO, -2, "store I/O error")                                      \
	X(RHS_ENOTFOUND, -3, "no such record")                                 \
	X(RHS_ECORRUPT, -4, "sealed record does not open (altered or moved)")  \
	X(RHS_EBUSY, -5, "store is in use by another process")                 \
	X(RHS_EPERM, -6, "store file is readable or writable by others")       \
	X(RHS_ENEWER, -7, "store schema is newer than this program")           \
	X(RHS_EKEY, -8, "store key does not open this store")                  \
	X(RHS_EFULL, -9, "store is full (disk or size limit)")                 \
	X(RHS_EACCESS, -10, "store cannot be opened for writing")              \
	X(RHS_EKEYFILE, -11, "store key file missing or malformed")            \
	X(RHS_EINVAL, -12, "invalid argument")                                 \
	X(RHS_ECHANGED, -13,                                                   \
	  "row changed outside remhsmd since it wrote it (put back from an "   \
	  "older copy, edited, deleted or added)")

enum rhs_err {
	RHS_OK = 0,
#define RHS_ERR_ENUM(name, value, text) name = value,
	RHS_ERRORS(RHS_ERR_ENUM)
#undef RHS_ERR_ENUM
};

const char *rhs_strerror(int err);
/* The database's own words for this thread's last failed store call
 * ("" for a missing record or a change seen): for the log line that says
 * why. */
const char *rhs_last_error(void);

typedef struct rhs_store rhs_store_t;

typedef struct rhs_open_opts {
	/* Migrate no further than this version (0: the current one). Tests
	 * use it to make stores of earlier versions. */
	unsigned max_version;
	/* Cap the database at this many pages (0: no cap). */
	unsigned max_pages;
	/* Read one consistent snapshot of a store another process (remhsmd)
	 * may hold: no lock taken, nothing migrated or written, every read
	 * in one read transaction until rhs_close. For remhsm store check. */
	int snapshot;
	/* A database round trip (connect, statement, commit) that takes
	 * longer fails the call (0: 10 s). SQLite's own busy wait is apart. */
	unsigned wait_ms;
	/* Wait while another process writes the store, and open it once it
	 * has let go (a standby remhsmd), instead of RHS_EBUSY. */
	int wait_for_writer;
	/* Several remhsmd processes write the store at once (a cluster):
	 * writers take turns on the sealed state, and each learns from the
	 * store's change log what the others changed. A backend that cannot
	 * (SQLite: one writer at a time) refuses it. */
	int shared;
	/* Database sessions beside the writer's that reads and finds use,
	 * so that they run at once, and during a write (0: every call on
	 * the one session). A backend that has none (SQLite) refuses. */
	unsigned readers;
	/* A backend's own: this session only reads (no writer's lock, no
	 * migration). */
	int reader;
	/* Told each step of a database session's life the caller may want
	 * in its log: event "store-connection-lost" (reason: the database's
	 * or the system's words) and "store-reconnected" (reason ""); where
	 * names the server, never a password. From any store call's thread,
	 * with the store's lock held. */
	void (*notice)(void *ctx, const char *event, const char *where,
		       const char *reason);
	void *notice_ctx;
} rhs_open_opts_t;

/*
 * Opens (creating, mode 0600) the store at location and migrates it: a
 * path, or "sqlite:PATH", for the SQLite backend; a scheme no backend of
 * this build serves is RHS_EINVAL, named in err. Refuses a file others may
 * read, a store held by another process, a newer schema and a key that
 * does not open it. err names the file and the reason.
 */
int rhs_open(const char *location, const uint8_t key[RHS_KEY_LEN],
	     const rhs_open_opts_t *opts, rhs_store_t **out, char *err,
	     size_t err_len) RHS_WARN_UNUSED;
void rhs_close(rhs_store_t *store);

/* --- several processes on one store ------------------------------------ */

/* A row another process changed, as this one learns it: table 't' (token
 * row of slot) or 'o' (object id of slot); 'w': every row of slot went
 * (the token was wiped); '*': anything may have changed (the store was
 * read again in full). Called with the store's lock held, from whichever
 * store call learnt it: it must not call the store. */
typedef void (*rhs_foreign_fn)(void *ctx, char table, uint32_t slot,
			       uint64_t id);
void rhs_on_foreign_change(rhs_store_t *store, rhs_foreign_fn fn, void *ctx);

/* A shared store learns what the other processes committed since it last
 * looked (one round trip when nothing); others answer RHS_OK at once. */
int rhs_sync(rhs_store_t *store) RHS_WARN_UNUSED;

/* Loads the store key of state_dir/store.db: $CREDENTIALS_DIRECTORY/
 * remhsm-store-key when that exists, else key_file (NULL: state_dir/
 * store.key), created (0600) when no store exists yet. err names the
 * file. */
int rhs_key_load_from(const char *state_dir, const char *key_file,
		      uint8_t key[RHS_KEY_LEN], char *err,
		      size_t err_len) RHS_WARN_UNUSED;
/* The same with the key file in the state folder. */
int rhs_key_load(const char *state_dir, uint8_t key[RHS_KEY_LEN], char *err,
		 size_t err_len) RHS_WARN_UNUSED;

/* Groups several writes into one durable transaction. Calls outside
 * begin/commit are transactions of their own. */
int rhs_begin(rhs_store_t *store) RHS_WARN_UNUSED;
int rhs_commit(rhs_store_t *store) RHS_WARN_UNUSED;
void rhs_rollback(rhs_store_t *store);

/* Records returned by the store are freed (and wiped) with rhs_free. */
void rhs_free(uint8_t *record, size_t len);

/* --- integrity -------------------------------------------------------- */

/*
 * 1 when the rows of token slot did not add up when the store was opened:
 * a row put back from an older copy, removed, added, moved or edited in
 * its index columns by anything but this store (see store.c).
 */
int rhs_token_damaged(const rhs_store_t *store, uint32_t slot);

/* The store's write counter: it moves forward with every write, and a
 * store whose counter is below one recorded earlier was rolled back. */
uint64_t rhs_counter(const rhs_store_t *store);

/* How the counter is recorded outside the store, in a log of lines
 * holding "event=store-anchor counter=N", and the last N such a log holds
 * (0 when none): a store whose counter is below it is an older copy. */
#define RHS_ANCHOR_EVENT "event=store-anchor"
uint64_t rhs_anchor_last(const char *log_path);

/* --- tokens ------------------------------------------------------------ */

int rhs_token_put(rhs_store_t *store, uint32_t slot, const uint8_t *record,
		  size_t len) RHS_WARN_UNUSED;
int rhs_token_get(rhs_store_t *store, uint32_t slot, uint8_t **record,
		  size_t *len) RHS_WARN_UNUSED;
/* Deletes the token record and every object of the token. */
int rhs_token_wipe(rhs_store_t *store, uint32_t slot) RHS_WARN_UNUSED;

/* --- objects ------------------------------------------------------------ */

enum { RHS_IX_CLASS, RHS_IX_ID, RHS_IX_LABEL, RHS_IX_KEY_TYPE, RHS_IX_COUNT };

/* Index values of an object, or the values a find must match; a NULL
 * value is absent (not indexed / not constrained). */
typedef struct rhs_index {
	const uint8_t *value[RHS_IX_COUNT];
	size_t len[RHS_IX_COUNT];
} rhs_index_t;

int rhs_object_create(rhs_store_t *store, uint32_t slot,
		      const rhs_index_t *index, const uint8_t *record,
		      size_t len, uint64_t *id) RHS_WARN_UNUSED;
int rhs_object_update(rhs_store_t *store, uint32_t slot, uint64_t id,
		      const rhs_index_t *index, const uint8_t *record,
		      size_t len) RHS_WARN_UNUSED;
int rhs_object_get(rhs_store_t *store, uint32_t slot, uint64_t id,
		   uint8_t **record, size_t *len) RHS_WARN_UNUSED;
int rhs_object_delete(rhs_store_t *store, uint32_t slot,
		      uint64_t id) RHS_WARN_UNUSED;
/* Ids of the token's objects whose index values equal every value given
 * in match (all objects when match has none), ascending. Free with free. */
int rhs_object_find(rhs_store_t *store, uint32_t slot, const rhs_index_t *match,
		    uint64_t **ids, size_t *count) RHS_WARN_UNUSED;

/* --- sealing, for records sealed again under a token key ------------------ */

#define RHS_SEAL_OVERHEAD (12 + 16)

/* AES-256-GCM with a fresh nonce; out is len + RHS_SEAL_OVERHEAD bytes. */
int rhs_seal(const uint8_t key[RHS_KEY_LEN], const uint8_t *aad, size_t aad_len,
	     const uint8_t *in, size_t len, uint8_t *out) RHS_WARN_UNUSED;
/* Opens what rhs_seal made; RHS_ECORRUPT when key, aad or bytes differ.
 * out is len - RHS_SEAL_OVERHEAD bytes. */
int rhs_unseal(const uint8_t key[RHS_KEY_LEN], const uint8_t *aad,
	       size_t aad_len, const uint8_t *in, size_t len,
	       uint8_t *out) RHS_WARN_UNUSED;

/* --- PIN key derivation -----------------------------------------------------
 */

typedef struct rhs_kdf_params {
	uint64_t n; /* scrypt cost: a power of two */
	uint32_t r; /* block size */
	uint32_t p; /* parallelism */
	uint8_t salt[16];
} rhs_kdf_params_t;

/* scrypt(pin, salt) into a key-encryption key. */
int rhs_kdf(const rhs_kdf_params_t *params, const uint8_t *pin, size_t pin_len,
	    uint8_t kek[RHS_KEY_LEN]) RHS_WARN_UNUSED;

/* What rhs_copy copied. */
typedef struct rhs_copy_tally {
	unsigned tokens;
	uint64_t objects;
} rhs_copy_tally_t;

/* Copies every token and object row of from (a snapshot will do) into to,
 * which must be empty and opened with the same store key: each row
 * checked where it comes from (it opens, it is as from verified it), put
 * into to as it is in one transaction, then read back from to and
 * compared byte for byte. A source token whose rows do not add up stops
 * it; err says which row or why. */
int rhs_copy(rhs_store_t *from, rhs_store_t *to, rhs_copy_tally_t *tally,
	     char *err, size_t err_len) RHS_WARN_UNUSED;

#endif
