/* The SQLite store: schema, migrations, sealed records, keyed index. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rhs.h"

/* Bumped only when the layout of sealed records changes; it is part of
 * every record's associated data. */
#define RECORD_VERSION 1
#define INDEX_HASH_LEN 32

struct rhs_store {
	sqlite3 *db;
	int lock_fd;
	pthread_mutex_t lock;
	uint8_t seal_key[RHS_KEY_LEN];
	uint8_t index_key[RHS_KEY_LEN];
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
		if (exec(s, migrations[version]) < 0 || exec(s, bump) < 0 ||
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

/* --- open and close --------------------------------------------------------
 */

static int open_file(rhs_store_t *s, char *err, size_t err_len)
{
	s->lock_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
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
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, err_len, "%s: in use by another process",
			 s->path);
		return RHS_EBUSY;
	}
	return RHS_OK;
}

static int configure(rhs_store_t *s, const rhs_open_opts_t *opts, char *err,
		     size_t err_len)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
	if (sqlite3_open_v2(s->path, &s->db, flags, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "%s: %s", s->path,
			 s->db ? sqlite3_errmsg(s->db) : "cannot open");
		return RHS_EACCESS;
	}
	sqlite3_busy_timeout(s->db, 5000);
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
	unsigned target = opts && opts->max_version ? opts->max_version
						    : RHS_SCHEMA_VERSION;
	int rc = open_file(s, err, err_len);
	if (rc == RHS_OK)
		rc = configure(s, opts, err, err_len);
	if (rc == RHS_OK)
		rc = migrate(s, target, err, err_len);
	if (rc == RHS_OK)
		rc = check_key(s, err, err_len);
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
	if (s->db)
		sqlite3_close_v2(s->db);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	OPENSSL_cleanse(s->seal_key, sizeof(s->seal_key));
	OPENSSL_cleanse(s->index_key, sizeof(s->index_key));
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
	return RHS_OK;
}

int rhs_commit(rhs_store_t *s)
{
	int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	txn_of_this_thread = NULL;
	pthread_mutex_unlock(&s->lock);
	return rc == SQLITE_OK ? RHS_OK : sqlite_err(s, rc);
}

void rhs_rollback(rhs_store_t *s)
{
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
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

static int do_token_put(rhs_store_t *s, void *arg)
{
	token_put_t *a = arg;
	uint8_t *sealed;
	size_t len;
	int rc = seal_blob(s, make_aad('t', a->slot, 0), a->record, a->len,
			   &sealed, &len);
	if (rc < 0)
		return rc;
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
	return step_done(s, st);
}

int rhs_token_put(rhs_store_t *s, uint32_t slot, const uint8_t *record,
		  size_t len)
{
	token_put_t a = {slot, record, len};
	return in_transaction(s, do_token_put, &a);
}

/* Reads one sealed column of one row and opens it. */
static int get_sealed(rhs_store_t *s, const char *sql, aad_t aad, uint32_t slot,
		      uint64_t id, int bind_id, uint8_t **record, size_t *len)
{
	sqlite3_stmt *st;
	pthread_mutex_lock(&s->lock);
	int rc = RHS_EIO;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, slot);
		if (bind_id)
			sqlite3_bind_int64(st, 2, (sqlite3_int64)id);
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW)
			rc = unseal_blob(s, aad, sqlite3_column_blob(st, 0),
					 (size_t)sqlite3_column_bytes(st, 0),
					 record, len);
		else
			rc = step == SQLITE_DONE ? RHS_ENOTFOUND
						 : sqlite_err(s, step);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int rhs_token_get(rhs_store_t *s, uint32_t slot, uint8_t **record, size_t *len)
{
	return get_sealed(s, "SELECT record FROM tokens WHERE slot = ?",
			  make_aad('t', slot, 0), slot, 0, 0, record, len);
}

static int do_token_wipe(rhs_store_t *s, void *arg)
{
	uint32_t slot = *(uint32_t *)arg;
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
	return RHS_OK;
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

static int do_object_put(rhs_store_t *s, void *arg)
{
	object_put_t *a = arg;
	if (a->create && next_object_id(s, a->slot, &a->id) < 0)
		return RHS_EIO;
	uint8_t *sealed;
	size_t len;
	int rc = seal_blob(s, make_aad('o', a->slot, a->id), a->record, a->len,
			   &sealed, &len);
	if (rc < 0)
		return rc;
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
	return rc;
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
	return get_sealed(
		s, "SELECT record FROM objects WHERE token = ? AND id = ?",
		make_aad('o', slot, id), slot, id, 1, record, len);
}

typedef struct object_del {
	uint32_t slot;
	uint64_t id;
} object_del_t;

static int do_object_delete(rhs_store_t *s, void *arg)
{
	object_del_t *a = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db,
			       "DELETE FROM objects WHERE token = ? AND id = ?",
			       -1, &st, NULL))
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, a->slot);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->id);
	int rc = step_done(s, st);
	return rc == RHS_OK && sqlite3_changes(s->db) == 0 ? RHS_ENOTFOUND : rc;
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
	pthread_mutex_unlock(&s->lock);
	return rc;
}
