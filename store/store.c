/* The SQLite store: schema, migrations, sealed records, keyed index. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rhs.h"
#include "rows.h"

/* Bumped only when the layout of sealed records changes; it is part of
 * every record's associated data. */
#define RECORD_VERSION 1
#define INDEX_HASH_LEN 32
#define TERM_LEN RHS_TERM_LEN

/*
 * What binds the rows of the store together, sealed in the meta table: a
 * counter that moves forward with every write (the anchor a whole-store
 * rollback is checked against), the next object id (ids are never used
 * twice), and per token the XOR of a keyed hash of each of its rows (table,
 * token, id, sealed bytes, index values). A row put back from an older
 * copy, removed, added or edited in its index columns changes its token's
 * sum, which the store checks when it opens.
 */
typedef struct store_state {
	uint64_t counter;
	uint64_t next_object_id;
	uint8_t rows[RHS_MAX_TOKENS][TERM_LEN];
} store_state_t;

struct rhs_store {
	sqlite3 *db;
	int lock_fd;
	int snapshot; /* read-only, in one read transaction */
	pthread_mutex_t lock;
	uint8_t seal_key[RHS_KEY_LEN];
	uint8_t index_key[RHS_KEY_LEN];
	uint8_t rows_key[RHS_KEY_LEN];
	unsigned schema;	 /* the schema version open */
	store_state_t state;	 /* as committed, or as the open transaction
				  * has made it */
	store_state_t committed; /* what a rollback goes back to */
	uint64_t damaged;	 /* tokens whose rows do not add up */
	/* Each row as this process wrote or verified it (schema 3 on). */
	rhs_rows_t rows;
	int rows_on;
	/* Per token, the data version at which its rows were last counted
	 * and found as this process knows them (0: not counted yet). */
	int64_t counted_at[RHS_MAX_TOKENS];
	char path[4096];
};

/* --- migrations ----------------------------------------------------------- */

static const char *const migrations[] = {
	/* 1: tokens */
	"CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);"
	"CREATE TABLE tokens (slot INTEGER PRIMARY KEY, record BLOB NOT NULL);",
	/* 2: objects, found by keyed hashes of their index values */
	"CREATE TABLE objects (token INTEGER NOT NULL, id INTEGER NOT NULL,"
	" ix_class BLOB, ix_id BLOB, ix_label BLOB, ix_key_type BLOB,"
	" record BLOB NOT NULL, PRIMARY KEY (token, id));"
	"CREATE INDEX objects_class ON objects (token, ix_class);"
	"CREATE INDEX objects_id ON objects (token, ix_id);"
	"CREATE INDEX objects_label ON objects (token, ix_label);"
	"CREATE INDEX objects_key_type ON objects (token, ix_key_type);",
	/* 3: the sealed state binding the rows (state_build fills it) */
	"SELECT 1;",
};

static int exec(rhs_store_t *s, const char *sql)
{
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK
		       ? RHS_OK
		       : RHS_EIO;
}

static int user_version(rhs_store_t *s, unsigned *version)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL))
		return RHS_EIO;
	int rc = sqlite3_step(st) == SQLITE_ROW ? RHS_OK : RHS_EIO;
	*version = (unsigned)sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc;
}

static int state_build(rhs_store_t *s);

static int migrate(rhs_store_t *s, unsigned target, char *err, size_t err_len)
{
	unsigned version;
	if (user_version(s, &version) < 0)
		return RHS_EIO;
	if (version > RHS_SCHEMA_VERSION) {
		snprintf(err, err_len,
			 "%s: schema version %u is newer than this program's "
			 "%d; "
			 "refusing to touch it",
			 s->path, version, RHS_SCHEMA_VERSION);
		return RHS_ENEWER;
	}
	for (; version < target; version++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %u;",
			 version + 1);
		if (exec(s, "BEGIN IMMEDIATE") < 0)
			return RHS_EIO;
		if (exec(s, migrations[version]) < 0 ||
		    (version == 2 && state_build(s) < 0) || exec(s, bump) < 0 ||
		    exec(s, "COMMIT") < 0) {
			snprintf(err, err_len,
				 "%s: migration to version %u failed: %s",
				 s->path, version + 1, sqlite3_errmsg(s->db));
			exec(s, "ROLLBACK");
			return RHS_EIO;
		}
	}
	return RHS_OK;
}

/* --- keys and associated data ----------------------------------------------
 */

static void derive(const uint8_t *key, const char *label,
		   uint8_t out[RHS_KEY_LEN])
{
	unsigned int len = RHS_KEY_LEN;
	HMAC(EVP_sha256(), key, RHS_KEY_LEN, (const uint8_t *)label,
	     strlen(label), out, &len);
}

typedef struct aad {
	uint8_t bytes[32];
	size_t len;
} aad_t;

/* "remhsm", record version, table, token, object id. */
static aad_t make_aad(char table, uint32_t slot, uint64_t id)
{
	aad_t a = {.len = 0};
	memcpy(a.bytes, "remhsm", 6);
	a.len = 6;
	a.bytes[a.len++] = RECORD_VERSION;
	a.bytes[a.len++] = (uint8_t)table;
	for (int i = 3; i >= 0; i--)
		a.bytes[a.len++] = (uint8_t)(slot >> (8 * i));
	for (int i = 7; i >= 0; i--)
		a.bytes[a.len++] = (uint8_t)(id >> (8 * i));
	return a;
}

static int seal_blob(rhs_store_t *s, aad_t aad, const uint8_t *in, size_t len,
		     uint8_t **out, size_t *out_len)
{
	*out = malloc(len + RHS_SEAL_OVERHEAD);
	if (!*out)
		return RHS_ENOMEM;
	*out_len = len + RHS_SEAL_OVERHEAD;
	int rc = rhs_seal(s->seal_key, aad.bytes, aad.len, in, len, *out);
	if (rc < 0)
		free(*out);
	return rc;
}

static int unseal_blob(rhs_store_t *s, aad_t aad, const void *in, size_t len,
		       uint8_t **out, size_t *out_len)
{
	if (len < RHS_SEAL_OVERHEAD)
		return RHS_ECORRUPT;
	*out_len = len - RHS_SEAL_OVERHEAD;
	*out = malloc(*out_len ? *out_len : 1);
	if (!*out)
		return RHS_ENOMEM;
	int rc = rhs_unseal(s->seal_key, aad.bytes, aad.len, in, len, *out);
	if (rc < 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

void rhs_free(uint8_t *record, size_t len)
{
	if (!record)
		return;
	OPENSSL_cleanse(record, len);
	free(record);
}

/* The store key must open the key check record; a fresh store gets one. */
static int check_key(rhs_store_t *s, char *err, size_t err_len)
{
	static const char probe[] = "remhsm store key check";
	aad_t aad = make_aad('k', 0, 0);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT value FROM meta WHERE name = 'keycheck'",
			       -1, &st, NULL))
		return RHS_EIO;
	int rc;
	if (sqlite3_step(st) == SQLITE_ROW) {
		uint8_t *plain;
		size_t len;
		rc = unseal_blob(s, aad, sqlite3_column_blob(st, 0),
				 (size_t)sqlite3_column_bytes(st, 0), &plain,
				 &len);
		if (rc == RHS_OK)
			rhs_free(plain, len);
		else
			rc = RHS_EKEY;
		sqlite3_finalize(st);
		if (rc == RHS_EKEY)
			snprintf(err, err_len,
				 "%s: the store key does not open this "
				 "store (wrong key file?)",
				 s->path);
		return rc;
	}
	sqlite3_finalize(st);
	uint8_t *sealed;
	size_t len;
	rc = seal_blob(s, aad, (const uint8_t *)probe, sizeof(probe), &sealed,
		       &len);
	if (rc < 0)
		return rc;
	if (sqlite3_prepare_v2(s->db, "INSERT INTO meta VALUES ('keycheck', ?)",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, sealed, (int)len, SQLITE_TRANSIENT);
		rc = sqlite3_step(st) == SQLITE_DONE ? RHS_OK : RHS_EIO;
		sqlite3_finalize(st);
	} else {
		rc = RHS_EIO;
	}
	free(sealed);
	return rc;
}

/* --- the state binding the rows ------------------------------------------ */

static int step_done(rhs_store_t *s, sqlite3_stmt *st);

static void xor_into(uint8_t sum[TERM_LEN], const uint8_t term[TERM_LEN])
{
	for (size_t i = 0; i < TERM_LEN; i++)
		sum[i] ^= term[i];
}

/* The index columns of a row as stored: NULL where absent. */
typedef struct ix_cols {
	const void *value[RHS_IX_COUNT];
	size_t len[RHS_IX_COUNT];
} ix_cols_t;

/* A keyed hash of one row: its table, token, id, sealed bytes and index
 * columns, so that any of them changed changes the term. */
static void row_term(const rhs_store_t *s, char table, uint32_t slot,
		     uint64_t id, const void *sealed, size_t len,
		     const ix_cols_t *ix, uint8_t term[TERM_LEN])
{
	uint8_t buf[1 + 4 + 8 + 32 + RHS_IX_COUNT * (1 + INDEX_HASH_LEN)];
	size_t n = 0;
	buf[n++] = (uint8_t)table;
	for (int i = 3; i >= 0; i--)
		buf[n++] = (uint8_t)(slot >> (8 * i));
	for (int i = 7; i >= 0; i--)
		buf[n++] = (uint8_t)(id >> (8 * i));
	SHA256(sealed, len, buf + n);
	n += 32;
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		int has = ix && ix->value[k] && ix->len[k] == INDEX_HASH_LEN;
		buf[n++] = (uint8_t)has;
		memset(buf + n, 0, INDEX_HASH_LEN);
		if (has)
			memcpy(buf + n, ix->value[k], INDEX_HASH_LEN);
		n += INDEX_HASH_LEN;
	}
	unsigned int out = TERM_LEN;
	if (!HMAC(EVP_sha256(), s->rows_key, RHS_KEY_LEN, buf, n, term, &out))
		memset(term, 0xff, TERM_LEN); /* adds up to nothing real */
}

/* The term of the row a statement has just stepped onto: columns record,
 * then (objects) ix_class .. ix_key_type from column `first_ix`. */
static void term_of_row(const rhs_store_t *s, sqlite3_stmt *st, char table,
			uint32_t slot, uint64_t id, int record_col,
			int first_ix, uint8_t term[TERM_LEN])
{
	ix_cols_t ix;
	memset(&ix, 0, sizeof(ix));
	for (int k = 0; first_ix >= 0 && k < RHS_IX_COUNT; k++) {
		ix.value[k] = sqlite3_column_blob(st, first_ix + k);
		ix.len[k] = (size_t)sqlite3_column_bytes(st, first_ix + k);
	}
	row_term(s, table, slot, id, sqlite3_column_blob(st, record_col),
		 (size_t)sqlite3_column_bytes(st, record_col),
		 first_ix >= 0 ? &ix : NULL, term);
}

/* The term of a stored row; RHS_ENOTFOUND when there is none. */
static int stored_term(rhs_store_t *s, char table, uint32_t slot, uint64_t id,
		       uint8_t term[TERM_LEN])
{
	const char *sql = table == 't'
				  ? "SELECT record FROM tokens WHERE slot = ?1"
				  : "SELECT record, ix_class, ix_id, ix_label, "
				    "ix_key_type FROM objects WHERE token = ?1 "
				    "AND id = ?2";
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL))
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, slot);
	if (table != 't')
		sqlite3_bind_int64(st, 2, (sqlite3_int64)id);
	int step = sqlite3_step(st);
	int rc = step == SQLITE_ROW    ? RHS_OK
		 : step == SQLITE_DONE ? RHS_ENOTFOUND
				       : RHS_EIO;
	if (rc == RHS_OK)
		term_of_row(s, st, table, slot, id, 0, table == 't' ? -1 : 1,
			    term);
	sqlite3_finalize(st);
	return rc;
}

static int state_save(rhs_store_t *s)
{
	uint8_t plain[16 + sizeof(s->state.rows)];
	for (int i = 0; i < 8; i++) {
		plain[i] = (uint8_t)(s->state.counter >> (56 - 8 * i));
		plain[8 + i] =
			(uint8_t)(s->state.next_object_id >> (56 - 8 * i));
	}
	memcpy(plain + 16, s->state.rows, sizeof(s->state.rows));
	uint8_t *sealed;
	size_t len;
	int rc = seal_blob(s, make_aad('m', 0, 0), plain, sizeof(plain),
			   &sealed, &len);
	if (rc < 0)
		return rc;
	sqlite3_stmt *st;
	rc = RHS_EIO;
	if (sqlite3_prepare_v2(
		    s->db, "INSERT OR REPLACE INTO meta VALUES ('state', ?)",
		    -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, sealed, (int)len, SQLITE_TRANSIENT);
		rc = step_done(s, st);
	}
	free(sealed);
	return rc;
}

static int state_load(rhs_store_t *s, char *err, size_t err_len)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT value FROM meta WHERE name = 'state'",
			       -1, &st, NULL))
		return RHS_EIO;
	uint8_t *plain = NULL;
	size_t len = 0;
	int rc = sqlite3_step(st) != SQLITE_ROW
			 ? RHS_ECORRUPT
			 : unseal_blob(s, make_aad('m', 0, 0),
				       sqlite3_column_blob(st, 0),
				       (size_t)sqlite3_column_bytes(st, 0),
				       &plain, &len);
	sqlite3_finalize(st);
	if (rc == RHS_OK && len != 16 + sizeof(s->state.rows))
		rc = RHS_ECORRUPT;
	if (rc == RHS_OK) {
		for (int i = 0; i < 8; i++) {
			s->state.counter = s->state.counter << 8 | plain[i];
			s->state.next_object_id =
				s->state.next_object_id << 8 | plain[8 + i];
		}
		memcpy(s->state.rows, plain + 16, sizeof(s->state.rows));
		s->committed = s->state;
	}
	rhs_free(plain, len);
	if (rc < 0)
		snprintf(err, err_len,
			 "%s: the store's sealed state is missing or altered",
			 s->path);
	return rc;
}

/* Sums the terms of every row into sums (per token), and notes tokens
 * whose rows cannot be theirs: ids the store never handed out, tokens out
 * of range (counted in *strays). */
static int sum_rows(rhs_store_t *s, uint8_t sums[RHS_MAX_TOKENS][TERM_LEN],
		    uint64_t *bad_ids, unsigned *strays, rhs_rows_t *fill)
{
	static const char *const sql[] = {
		"SELECT slot, 0, record FROM tokens",
		"SELECT token, id, record, ix_class, ix_id, ix_label, "
		"ix_key_type FROM objects"};
	for (int t = 0; t < 2; t++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(s->db, sql[t], -1, &st, NULL))
			return RHS_EIO;
		int step;
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			sqlite3_int64 slot = sqlite3_column_int64(st, 0);
			uint64_t id = (uint64_t)sqlite3_column_int64(st, 1);
			if (slot < 0 || slot >= RHS_MAX_TOKENS) {
				(*strays)++;
				continue;
			}
			uint8_t term[TERM_LEN];
			term_of_row(s, st, t ? 'o' : 't', (uint32_t)slot, id, 2,
				    t ? 3 : -1, term);
			xor_into(sums[slot], term);
			if (fill && rhs_rows_set(fill,
						 rhs_row_key(t ? 'o' : 't',
							     (uint32_t)slot,
							     t ? id : 0),
						 term) < 0) {
				sqlite3_finalize(st);
				return RHS_ENOMEM;
			}
			if (t && id >= s->state.next_object_id)
				*bad_ids |= (uint64_t)1 << slot;
		}
		sqlite3_finalize(st);
		if (step != SQLITE_DONE)
			return RHS_EIO;
	}
	return RHS_OK;
}

/* Which tokens' rows do not add up to what the sealed state says. */
static int verify_rows(rhs_store_t *s, unsigned *strays)
{
	uint8_t sums[RHS_MAX_TOKENS][TERM_LEN];
	memset(sums, 0, sizeof(sums));
	uint64_t bad_ids = 0;
	*strays = 0;
	int rc = sum_rows(s, sums, &bad_ids, strays, &s->rows);
	if (rc < 0)
		return rc;
	s->rows_on = 1;
	s->damaged = bad_ids;
	for (unsigned t = 0; t < RHS_MAX_TOKENS; t++)
		if (CRYPTO_memcmp(sums[t], s->state.rows[t], TERM_LEN) != 0)
			s->damaged |= (uint64_t)1 << t;
	return RHS_OK;
}

/* Migration 3: the state of the rows as they are (trusted this once). */
static int state_build(rhs_store_t *s)
{
	memset(&s->state, 0, sizeof(s->state));
	s->state.counter = 1;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT COALESCE(MAX(id), 0) + 1 FROM "
			       "objects",
			       -1, &st, NULL))
		return RHS_EIO;
	if (sqlite3_step(st) == SQLITE_ROW)
		s->state.next_object_id = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	uint64_t bad_ids = 0;
	unsigned strays = 0;
	int rc = sum_rows(s, s->state.rows, &bad_ids, &strays, NULL);
	return rc < 0 ? rc : state_save(s);
}

/* A write changed the row (table, slot, id): its old term (when it had
 * one) leaves its token's sum, the new one (when it has one) joins, and
 * the counter moves on. */
static int state_swap(rhs_store_t *s, uint32_t slot, const uint8_t *old_term,
		      const uint8_t *new_term)
{
	if (s->schema < 3)
		return RHS_OK;
	if (old_term)
		xor_into(s->state.rows[slot], old_term);
	if (new_term)
		xor_into(s->state.rows[slot], new_term);
	s->state.counter++;
	return state_save(s);
}

int rhs_token_damaged(const rhs_store_t *s, uint32_t slot)
{
	return slot < RHS_MAX_TOKENS && (s->damaged >> slot & 1);
}

uint64_t rhs_counter(const rhs_store_t *s)
{
	return s->state.counter;
}

/* --- open and close --------------------------------------------------------
 */

static int open_file(rhs_store_t *s, int snapshot, char *err, size_t err_len)
{
	s->lock_fd =
		snapshot ? open(s->path, O_RDONLY | O_CLOEXEC)
			 : open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		snprintf(err, err_len, "%s: %s", s->path, strerror(errno));
		return RHS_EACCESS;
	}
	struct stat st;
	if (fstat(s->lock_fd, &st) < 0 || (st.st_mode & 077)) {
		snprintf(err, err_len,
			 "%s: mode %03o lets others read the store; chmod 600 "
			 "it",
			 s->path, (unsigned)(st.st_mode & 0777));
		return RHS_EPERM;
	}
	if (!snapshot && flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, err_len, "%s: in use by another process",
			 s->path);
		return RHS_EBUSY;
	}
	return RHS_OK;
}

/* A read transaction from the first read to rhs_close: in WAL mode the
 * writer goes on, and every read here sees the store as it was then. */
static int begin_snapshot(rhs_store_t *s, char *err, size_t err_len)
{
	unsigned version = 0;
	if (exec(s, "BEGIN") < 0 || user_version(s, &version) < 0) {
		snprintf(err, err_len, "%s: %s", s->path,
			 sqlite3_errmsg(s->db));
		return RHS_EIO;
	}
	if (version != RHS_SCHEMA_VERSION) {
		snprintf(err, err_len,
			 "%s: schema version %u, not this program's %d: "
			 "checked only by the remhsmd that migrates it",
			 s->path, version, RHS_SCHEMA_VERSION);
		return RHS_ENEWER;
	}
	s->snapshot = 1;
	return RHS_OK;
}

static int configure(rhs_store_t *s, const rhs_open_opts_t *opts, char *err,
		     size_t err_len)
{
	int snapshot = opts && opts->snapshot;
	int flags = (snapshot ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
		    SQLITE_OPEN_FULLMUTEX;
	if (sqlite3_open_v2(s->path, &s->db, flags, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "%s: %s", s->path,
			 s->db ? sqlite3_errmsg(s->db) : "cannot open");
		return RHS_EACCESS;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (snapshot)
		return begin_snapshot(s, err, err_len);
	/* WAL with a full sync per commit: a change that returned is on disk.
	 */
	if (exec(s, "PRAGMA journal_mode = WAL") < 0 ||
	    exec(s, "PRAGMA synchronous = FULL") < 0 ||
	    exec(s, "PRAGMA secure_delete = ON") < 0) {
		snprintf(err, err_len, "%s: %s", s->path,
			 sqlite3_errmsg(s->db));
		return sqlite3_errcode(s->db) == SQLITE_READONLY ? RHS_EACCESS
								 : RHS_EIO;
	}
	if (opts && opts->max_pages) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %u",
			 opts->max_pages);
		if (exec(s, sql) < 0)
			return RHS_EIO;
	}
	return RHS_OK;
}

int rhs_open(const char *path, const uint8_t key[RHS_KEY_LEN],
	     const rhs_open_opts_t *opts, rhs_store_t **out, char *err,
	     size_t err_len)
{
	rhs_store_t *s = calloc(1, sizeof(*s));
	if (!s)
		return RHS_ENOMEM;
	s->lock_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	snprintf(s->path, sizeof(s->path), "%s", path);
	derive(key, "remhsm seal key", s->seal_key);
	derive(key, "remhsm index key", s->index_key);
	derive(key, "remhsm rows key", s->rows_key);
	unsigned target = opts && opts->max_version ? opts->max_version
						    : RHS_SCHEMA_VERSION;
	int rc = open_file(s, opts && opts->snapshot, err, err_len);
	if (rc == RHS_OK)
		rc = configure(s, opts, err, err_len);
	/* The key is checked before migration 3 seals the state with it. */
	if (rc == RHS_OK && !s->snapshot)
		rc = migrate(s, target < 2 ? target : 2, err, err_len);
	if (rc == RHS_OK)
		rc = check_key(s, err, err_len);
	if (rc == RHS_OK && !s->snapshot)
		rc = migrate(s, target, err, err_len);
	if (rc == RHS_OK)
		rc = user_version(s, &s->schema);
	if (rc == RHS_OK && s->schema >= 3)
		rc = state_load(s, err, err_len);
	unsigned strays = 0;
	if (rc == RHS_OK && s->schema >= 3)
		rc = verify_rows(s, &strays);
	if (rc < 0) {
		if (rc == RHS_EIO && !err[0])
			snprintf(err, err_len, "%s: %s", path,
				 sqlite3_errmsg(s->db));
		rhs_close(s);
		return rc;
	}
	*out = s;
	return RHS_OK;
}

void rhs_close(rhs_store_t *s)
{
	if (!s)
		return;
	if (s->snapshot)
		exec(s, "ROLLBACK");
	if (s->db)
		sqlite3_close_v2(s->db);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	OPENSSL_cleanse(s->seal_key, sizeof(s->seal_key));
	OPENSSL_cleanse(s->index_key, sizeof(s->index_key));
	OPENSSL_cleanse(s->rows_key, sizeof(s->rows_key));
	rhs_rows_free(&s->rows);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* --- transactions ------------------------------------------------------------
 */

/* The store whose transaction this thread holds (and so its lock). */
static _Thread_local rhs_store_t *txn_of_this_thread;

static int sqlite_err(rhs_store_t *s, int code)
{
	(void)s;
	switch (code & 0xff) {
	case SQLITE_FULL:
		return RHS_EFULL;
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
		return RHS_EACCESS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return RHS_EBUSY;
	case SQLITE_NOMEM:
		return RHS_ENOMEM;
	default:
		return RHS_EIO;
	}
}

int rhs_begin(rhs_store_t *s)
{
	pthread_mutex_lock(&s->lock);
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		pthread_mutex_unlock(&s->lock);
		return sqlite_err(s, rc);
	}
	txn_of_this_thread = s;
	s->committed = s->state;
	rhs_rows_begin(&s->rows);
	return RHS_OK;
}

int rhs_commit(rhs_store_t *s)
{
	int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		s->state = s->committed;
		rhs_rows_rollback(&s->rows);
	} else {
		rhs_rows_commit(&s->rows);
	}
	txn_of_this_thread = NULL;
	pthread_mutex_unlock(&s->lock);
	return rc == SQLITE_OK ? RHS_OK : sqlite_err(s, rc);
}

void rhs_rollback(rhs_store_t *s)
{
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->state = s->committed;
	rhs_rows_rollback(&s->rows);
	txn_of_this_thread = NULL;
	pthread_mutex_unlock(&s->lock);
}

/* Runs fn as its own transaction unless this thread holds one. */
typedef int (*txn_fn)(rhs_store_t *s, void *arg);

static int in_transaction(rhs_store_t *s, txn_fn fn, void *arg)
{
	if (txn_of_this_thread == s)
		return fn(s, arg);
	int rc = rhs_begin(s);
	if (rc < 0)
		return rc;
	rc = fn(s, arg);
	if (rc < 0) {
		rhs_rollback(s);
		return rc;
	}
	return rhs_commit(s);
}

static int step_done(rhs_store_t *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? RHS_OK : sqlite_err(s, rc);
}

/* --- tokens
 * -------------------------------------------------------------------- */

typedef struct token_put {
	uint32_t slot;
	const uint8_t *record;
	size_t len;
} token_put_t;

/* A row about to be written or read is as this process left it: a row
 * changed behind its back is not written over (that would hide it), nor
 * used. term NULL: there is no such row. */
static int row_agrees(const rhs_store_t *s, char table, uint32_t slot,
		      uint64_t id, const uint8_t *term)
{
	if (!s->rows_on)
		return RHS_OK;
	return rhs_rows_agree(&s->rows, rhs_row_key(table, slot, id), term);
}

/* A write went through: the row is now term (NULL: deleted). */
static int row_written(rhs_store_t *s, char table, uint32_t slot, uint64_t id,
		       const uint8_t *term)
{
	if (!s->rows_on)
		return RHS_OK;
	return rhs_rows_set(&s->rows, rhs_row_key(table, slot, id), term);
}

/* Bound checks of a write to the rows of token slot. */
static int slot_ok(const rhs_store_t *s, uint32_t slot)
{
	return s->schema < 3 || slot < RHS_MAX_TOKENS;
}

static int do_token_put(rhs_store_t *s, void *arg)
{
	token_put_t *a = arg;
	if (!slot_ok(s, a->slot))
		return RHS_EINVAL;
	uint8_t old[TERM_LEN], new_term[TERM_LEN];
	int had = stored_term(s, 't', a->slot, 0, old);
	if (had != RHS_OK && had != RHS_ENOTFOUND)
		return had;
	if (row_agrees(s, 't', a->slot, 0, had == RHS_OK ? old : NULL) < 0)
		return RHS_ECHANGED;
	uint8_t *sealed;
	size_t len;
	int rc = seal_blob(s, make_aad('t', a->slot, 0), a->record, a->len,
			   &sealed, &len);
	if (rc < 0)
		return rc;
	row_term(s, 't', a->slot, 0, sealed, len, NULL, new_term);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(
		    s->db,
		    "INSERT INTO tokens (slot, record) VALUES (?, ?) "
		    "ON CONFLICT (slot) DO UPDATE SET record = excluded.record",
		    -1, &st, NULL)) {
		free(sealed);
		return RHS_EIO;
	}
	sqlite3_bind_int64(st, 1, a->slot);
	sqlite3_bind_blob(st, 2, sealed, (int)len, SQLITE_TRANSIENT);
	free(sealed);
	rc = step_done(s, st);
	if (rc == RHS_OK)
		rc = state_swap(s, a->slot, had == RHS_OK ? old : NULL,
				new_term);
	return rc < 0 ? rc : row_written(s, 't', a->slot, 0, new_term);
}

int rhs_token_put(rhs_store_t *s, uint32_t slot, const uint8_t *record,
		  size_t len)
{
	token_put_t a = {slot, record, len};
	return in_transaction(s, do_token_put, &a);
}

/* The row a statement stepped onto (or its absence: step SQLITE_DONE),
 * checked against what this process knows of it, and opened. */
static int open_row(rhs_store_t *s, sqlite3_stmt *st, int step, char table,
		    uint32_t slot, uint64_t id, uint8_t **record, size_t *len)
{
	if (step == SQLITE_DONE)
		return row_agrees(s, table, slot, id, NULL) < 0 ? RHS_ECHANGED
								: RHS_ENOTFOUND;
	if (step != SQLITE_ROW)
		return sqlite_err(s, step);
	if (s->rows_on) {
		uint8_t term[TERM_LEN];
		term_of_row(s, st, table, slot, id, 0, table == 't' ? -1 : 1,
			    term);
		if (row_agrees(s, table, slot, id, term) < 0)
			return RHS_ECHANGED;
	}
	return unseal_blob(s, make_aad(table, slot, id),
			   sqlite3_column_blob(st, 0),
			   (size_t)sqlite3_column_bytes(st, 0), record, len);
}

/* Reads one row (its sealed record first) and opens it. */
static int get_sealed(rhs_store_t *s, const char *sql, char table,
		      uint32_t slot, uint64_t id, uint8_t **record, size_t *len)
{
	sqlite3_stmt *st;
	pthread_mutex_lock(&s->lock);
	int rc = RHS_EIO;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, slot);
		if (table == 'o')
			sqlite3_bind_int64(st, 2, (sqlite3_int64)id);
		rc = open_row(s, st, sqlite3_step(st), table, slot, id, record,
			      len);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int rhs_token_get(rhs_store_t *s, uint32_t slot, uint8_t **record, size_t *len)
{
	return get_sealed(s, "SELECT record FROM tokens WHERE slot = ?", 't',
			  slot, 0, record, len);
}

static int do_token_wipe(rhs_store_t *s, void *arg)
{
	uint32_t slot = *(uint32_t *)arg;
	if (!slot_ok(s, slot))
		return RHS_EINVAL;
	const char *const sql[] = {"DELETE FROM objects WHERE token = ?",
				   "DELETE FROM tokens WHERE slot = ?"};
	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL))
			return RHS_EIO;
		sqlite3_bind_int64(st, 1, slot);
		int rc = step_done(s, st);
		if (rc < 0)
			return rc;
	}
	if (s->schema < 3)
		return RHS_OK;
	/* The token has no rows left: its sum goes back to nothing. */
	uint8_t all[TERM_LEN];
	memcpy(all, s->state.rows[slot], TERM_LEN);
	int rc = state_swap(s, slot, all, NULL);
	return rc < 0 || !s->rows_on ? rc : rhs_rows_wipe(&s->rows, slot);
}

int rhs_token_wipe(rhs_store_t *s, uint32_t slot)
{
	return in_transaction(s, do_token_wipe, &slot);
}

/* --- objects
 * -------------------------------------------------------------------- */

static const char *const ix_columns[RHS_IX_COUNT] = {"ix_class", "ix_id",
						     "ix_label", "ix_key_type"};

/* A keyed hash of (token, index kind, value): equal values of one token
 * match, and nothing about the value shows in the file. */
static void index_hash(rhs_store_t *s, uint32_t slot, int kind,
		       const uint8_t *value, size_t len,
		       uint8_t out[INDEX_HASH_LEN])
{
	uint8_t prefix[5] = {(uint8_t)kind, (uint8_t)(slot >> 24),
			     (uint8_t)(slot >> 16), (uint8_t)(slot >> 8),
			     (uint8_t)slot};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
		OSSL_PARAM_construct_end()};
	size_t out_len = 0;
	/* Failure leaves a zero hash, which matches nothing stored. */
	memset(out, 0, INDEX_HASH_LEN);
	if (ctx && EVP_MAC_init(ctx, s->index_key, RHS_KEY_LEN, params) == 1 &&
	    EVP_MAC_update(ctx, prefix, sizeof(prefix)) == 1 &&
	    EVP_MAC_update(ctx, value, len) == 1)
		EVP_MAC_final(ctx, out, &out_len, INDEX_HASH_LEN);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
}

static void bind_index(rhs_store_t *s, sqlite3_stmt *st, int first,
		       uint32_t slot, const rhs_index_t *index)
{
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		if (!index || !index->value[k]) {
			sqlite3_bind_null(st, first + k);
			continue;
		}
		uint8_t h[INDEX_HASH_LEN];
		index_hash(s, slot, k, index->value[k], index->len[k], h);
		sqlite3_bind_blob(st, first + k, h, sizeof(h),
				  SQLITE_TRANSIENT);
	}
}

typedef struct object_put {
	uint32_t slot;
	uint64_t id;
	const rhs_index_t *index;
	const uint8_t *record;
	size_t len;
	int create;
} object_put_t;

static int next_object_id(rhs_store_t *s, uint32_t slot, uint64_t *id)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT COALESCE(MAX(id), 0) + 1 FROM objects "
			       "WHERE token = ?",
			       -1, &st, NULL))
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, slot);
	int rc = sqlite3_step(st) == SQLITE_ROW ? RHS_OK : RHS_EIO;
	*id = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

/* A new object's id: from the sealed state, so that no id is used twice
 * (a deleted row's old copy cannot come back under it). */
static int new_object_id(rhs_store_t *s, uint32_t slot, uint64_t *id)
{
	if (s->schema < 3)
		return next_object_id(s, slot, id);
	*id = s->state.next_object_id++;
	return RHS_OK;
}

/* The index columns a write binds, for the row's term. */
static ix_cols_t bound_index(rhs_store_t *s, uint32_t slot,
			     const rhs_index_t *index,
			     uint8_t hashes[RHS_IX_COUNT][INDEX_HASH_LEN])
{
	ix_cols_t ix;
	memset(&ix, 0, sizeof(ix));
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		if (!index || !index->value[k])
			continue;
		index_hash(s, slot, k, index->value[k], index->len[k],
			   hashes[k]);
		ix.value[k] = hashes[k];
		ix.len[k] = INDEX_HASH_LEN;
	}
	return ix;
}

static int do_object_put(rhs_store_t *s, void *arg)
{
	object_put_t *a = arg;
	if (!slot_ok(s, a->slot))
		return RHS_EINVAL;
	uint8_t old[TERM_LEN], new_term[TERM_LEN];
	if (a->create && new_object_id(s, a->slot, &a->id) < 0)
		return RHS_EIO;
	if (!a->create) {
		int had = stored_term(s, 'o', a->slot, a->id, old);
		if (had < 0 && had != RHS_ENOTFOUND)
			return had;
		if (row_agrees(s, 'o', a->slot, a->id,
			       had == RHS_OK ? old : NULL) < 0)
			return RHS_ECHANGED;
		if (had < 0)
			return had;
	}
	uint8_t *sealed;
	size_t len;
	int rc = seal_blob(s, make_aad('o', a->slot, a->id), a->record, a->len,
			   &sealed, &len);
	if (rc < 0)
		return rc;
	uint8_t hashes[RHS_IX_COUNT][INDEX_HASH_LEN];
	ix_cols_t ix = bound_index(s, a->slot, a->index, hashes);
	row_term(s, 'o', a->slot, a->id, sealed, len, &ix, new_term);
	const char *sql =
		a->create
			? "INSERT INTO objects (token, id, ix_class, ix_id, "
			  "ix_label, ix_key_type, record) VALUES (?1, ?2, ?3, "
			  "?4, ?5, ?6, ?7)"
			: "UPDATE objects SET ix_class = ?3, ix_id = ?4, "
			  "ix_label = ?5, ix_key_type = ?6, record = ?7 "
			  "WHERE token = ?1 AND id = ?2";
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL)) {
		free(sealed);
		return RHS_EIO;
	}
	sqlite3_bind_int64(st, 1, a->slot);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->id);
	bind_index(s, st, 3, a->slot, a->index);
	sqlite3_bind_blob(st, 7, sealed, (int)len, SQLITE_TRANSIENT);
	free(sealed);
	rc = step_done(s, st);
	if (rc == RHS_OK && !a->create && sqlite3_changes(s->db) == 0)
		rc = RHS_ENOTFOUND;
	if (rc == RHS_OK)
		rc = state_swap(s, a->slot, a->create ? NULL : old, new_term);
	return rc < 0 ? rc : row_written(s, 'o', a->slot, a->id, new_term);
}

int rhs_object_create(rhs_store_t *s, uint32_t slot, const rhs_index_t *index,
		      const uint8_t *record, size_t len, uint64_t *id)
{
	object_put_t a = {slot, 0, index, record, len, 1};
	int rc = in_transaction(s, do_object_put, &a);
	if (rc == RHS_OK)
		*id = a.id;
	return rc;
}

int rhs_object_update(rhs_store_t *s, uint32_t slot, uint64_t id,
		      const rhs_index_t *index, const uint8_t *record,
		      size_t len)
{
	object_put_t a = {slot, id, index, record, len, 0};
	return in_transaction(s, do_object_put, &a);
}

int rhs_object_get(rhs_store_t *s, uint32_t slot, uint64_t id, uint8_t **record,
		   size_t *len)
{
	return get_sealed(s,
			  "SELECT record, ix_class, ix_id, ix_label, "
			  "ix_key_type FROM objects WHERE token = ? AND id = ?",
			  'o', slot, id, record, len);
}

typedef struct object_del {
	uint32_t slot;
	uint64_t id;
} object_del_t;

static int do_object_delete(rhs_store_t *s, void *arg)
{
	object_del_t *a = arg;
	if (!slot_ok(s, a->slot))
		return RHS_EINVAL;
	uint8_t old[TERM_LEN];
	int had = s->schema < 3 ? RHS_OK
				: stored_term(s, 'o', a->slot, a->id, old);
	if (had < 0 && had != RHS_ENOTFOUND)
		return had;
	if (row_agrees(s, 'o', a->slot, a->id, had == RHS_OK ? old : NULL) < 0)
		return RHS_ECHANGED;
	if (had < 0)
		return had;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "DELETE FROM objects WHERE token = ? AND id = ?",
			       -1, &st, NULL))
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, a->slot);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->id);
	int rc = step_done(s, st);
	if (rc == RHS_OK && sqlite3_changes(s->db) == 0)
		return RHS_ENOTFOUND;
	if (rc == RHS_OK)
		rc = state_swap(s, a->slot, old, NULL);
	return rc < 0 ? rc : row_written(s, 'o', a->slot, a->id, NULL);
}

int rhs_object_delete(rhs_store_t *s, uint32_t slot, uint64_t id)
{
	object_del_t a = {slot, id};
	return in_transaction(s, do_object_delete, &a);
}

/* Given a label or an ID (nearly unique), the class and key type (shared
 * by most objects) must not drive the index choice: "+" keeps SQLite off
 * their indexes, which it would otherwise pick without statistics. */
static int build_find_sql(const rhs_index_t *match, char *sql, size_t cap)
{
	int selective = match &&
			(match->value[RHS_IX_ID] || match->value[RHS_IX_LABEL]);
	int n = snprintf(sql, cap, "SELECT id FROM objects WHERE token = ?1");
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		if (!match || !match->value[k])
			continue;
		int broad = k == RHS_IX_CLASS || k == RHS_IX_KEY_TYPE;
		n += snprintf(sql + n, cap - (size_t)n, " AND %s%s = ?%d",
			      selective && broad ? "+" : "", ix_columns[k],
			      k + 2);
	}
	/* "+id": order the few matches, rather than walk the primary key. */
	n += snprintf(sql + n, cap - (size_t)n, " ORDER BY +id");
	return n < (int)cap ? RHS_OK : RHS_EINVAL;
}

static int collect_ids(sqlite3_stmt *st, uint64_t **ids, size_t *count)
{
	size_t cap = 16, n = 0;
	uint64_t *out = malloc(cap * sizeof(*out));
	int step;
	while (out && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			uint64_t *grown = realloc(out, 2 * cap * sizeof(*out));
			if (!grown) {
				free(out);
				return RHS_ENOMEM;
			}
			out = grown;
			cap *= 2;
		}
		out[n++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	if (!out)
		return RHS_ENOMEM;
	if (step != SQLITE_DONE) {
		free(out);
		return RHS_EIO;
	}
	*ids = out;
	*count = n;
	return RHS_OK;
}

/* A find sees only the rows that match: a row deleted or added behind
 * this process's back shows in the token's count of rows instead. */
/* SQLite's data version: it moves when another connection commits, never
 * for this one's own writes. 0 when it cannot be read. */
static int64_t data_version(rhs_store_t *s)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &st, NULL))
		return 0;
	int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0)
						   : 0;
	sqlite3_finalize(st);
	return v;
}

/* Rows added or removed behind this process's back. Counting them walks
 * every row of the token, so they are counted again only once another
 * connection has committed: a find stays as cheap as its index. */
static int rows_added_or_removed(rhs_store_t *s, uint32_t slot)
{
	if (!s->rows_on || slot >= RHS_MAX_TOKENS)
		return 0;
	int64_t version = data_version(s);
	if (version && s->counted_at[slot] == version)
		return 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT COUNT(*) FROM objects WHERE token = ?",
			       -1, &st, NULL))
		return 1;
	sqlite3_bind_int64(st, 1, slot);
	int differs =
		sqlite3_step(st) != SQLITE_ROW ||
		(uint64_t)sqlite3_column_int64(st, 0) != s->rows.objects[slot];
	sqlite3_finalize(st);
	s->counted_at[slot] = differs ? 0 : version;
	return differs;
}

int rhs_object_find(rhs_store_t *s, uint32_t slot, const rhs_index_t *match,
		    uint64_t **ids, size_t *count)
{
	char sql[256];
	if (build_find_sql(match, sql, sizeof(sql)) < 0)
		return RHS_EINVAL;
	sqlite3_stmt *st;
	pthread_mutex_lock(&s->lock);
	int rc = RHS_EIO;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, slot);
		for (int k = 0; k < RHS_IX_COUNT; k++) {
			if (!match || !match->value[k])
				continue;
			uint8_t h[INDEX_HASH_LEN];
			index_hash(s, slot, k, match->value[k], match->len[k],
				   h);
			sqlite3_bind_blob(st, k + 2, h, sizeof(h),
					  SQLITE_TRANSIENT);
		}
		rc = collect_ids(st, ids, count);
		sqlite3_finalize(st);
	}
	if (rc == RHS_OK && rows_added_or_removed(s, slot)) {
		free(*ids);
		*ids = NULL;
		rc = RHS_ECHANGED;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}
