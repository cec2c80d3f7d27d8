/* The SQLite backend: one file, WAL, a full sync per commit, each
 * statement prepared once. The only file that includes sqlite3.h. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"

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
	/* 3: the sealed state binding the rows (the neutral layer fills it) */
	"SELECT 1;",
	/* 4: nothing: the change log is for processes sharing a store, and
	 * one process writes a SQLite store at a time */
	"SELECT 1;",
};

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_VERSION,
	ST_DATA_VERSION,
	ST_META_GET,
	ST_META_PUT,
	ST_TOKEN_GET,
	ST_OBJECT_GET,
	ST_TOKENS_ALL,
	ST_OBJECTS_ALL,
	ST_TOKEN_PUT,
	ST_OBJECT_INSERT,
	ST_OBJECT_UPDATE,
	ST_OBJECT_DELETE,
	ST_TOKEN_OBJECTS_DELETE,
	ST_TOKEN_DELETE,
	ST_OBJECT_COUNT,
	ST_MAX_ID,
	ST_MAX_ID_ALL,
	ST_COUNT
};

#define OBJECT_COLUMNS "record, ix_class, ix_id, ix_label, ix_key_type"

static const char *const statements[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_VERSION] = "PRAGMA user_version",
	[ST_DATA_VERSION] = "PRAGMA data_version",
	[ST_META_GET] = "SELECT value FROM meta WHERE name = ?1",
	[ST_META_PUT] = "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
	[ST_TOKEN_GET] = "SELECT record FROM tokens WHERE slot = ?1",
	[ST_OBJECT_GET] = "SELECT " OBJECT_COLUMNS
			  " FROM objects WHERE token = ?1 AND id = ?2",
	[ST_TOKENS_ALL] = "SELECT record, slot FROM tokens",
	[ST_OBJECTS_ALL] = "SELECT " OBJECT_COLUMNS ", token, id FROM objects",
	[ST_TOKEN_PUT] = "INSERT INTO tokens (slot, record) VALUES (?1, ?7) "
			 "ON CONFLICT (slot) DO UPDATE SET record = "
			 "excluded.record",
	[ST_OBJECT_INSERT] = "INSERT INTO objects (token, id, ix_class, "
			     "ix_id, ix_label, ix_key_type, record) VALUES "
			     "(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_OBJECT_UPDATE] = "UPDATE objects SET ix_class = ?3, ix_id = ?4, "
			     "ix_label = ?5, ix_key_type = ?6, record = ?7 "
			     "WHERE token = ?1 AND id = ?2",
	[ST_OBJECT_DELETE] = "DELETE FROM objects WHERE token = ?1 AND id = ?2",
	[ST_TOKEN_OBJECTS_DELETE] = "DELETE FROM objects WHERE token = ?1",
	[ST_TOKEN_DELETE] = "DELETE FROM tokens WHERE slot = ?1",
	[ST_OBJECT_COUNT] = "SELECT COUNT(*) FROM objects WHERE token = ?1",
	[ST_MAX_ID] = "SELECT IFNULL(MAX(id), 0) FROM objects WHERE token = ?1",
	[ST_MAX_ID_ALL] = "SELECT IFNULL(MAX(id), 0) FROM objects",
};

/* Finds, one statement per combination of index columns matched. */
#define FIND_SHAPES (1u << RHS_IX_COUNT)

struct rhs_backend {
	sqlite3 *db;
	int lock_fd;
	int snapshot;
	sqlite3_stmt *st[ST_COUNT];
	sqlite3_stmt *find[FIND_SHAPES];
	char path[4096];
};

static int sqlite_err(int code)
{
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

/* The statement, prepared on first use (its tables may not exist before
 * a migration makes them); NULL when it does not prepare. */
static sqlite3_stmt *prepared(sqlite3 *db, sqlite3_stmt **slot, const char *sql)
{
	if (!*slot && sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT,
					 slot, NULL) != SQLITE_OK)
		*slot = NULL;
	return *slot;
}

static sqlite3_stmt *stmt(rhs_backend_t *b, int which)
{
	return prepared(b->db, &b->st[which], statements[which]);
}

/* A statement is reset after every use, so that none holds a read
 * transaction open between calls. */
static void release(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no rows. */
static int run(sqlite3_stmt *st)
{
	if (!st)
		return RHS_EIO;
	int rc = sqlite3_step(st);
	release(st);
	return rc == SQLITE_DONE ? RHS_OK : sqlite_err(rc);
}

static int exec(rhs_backend_t *b, const char *sql)
{
	int rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? RHS_OK : sqlite_err(rc);
}

/* One integer from a statement's first row. */
static int single_int(sqlite3_stmt *st, int64_t *value)
{
	if (!st)
		return RHS_EIO;
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		*value = sqlite3_column_int64(st, 0);
	release(st);
	return step == SQLITE_ROW ? RHS_OK : sqlite_err(step);
}

/* --- open and close --------------------------------------------------------
 */

static int open_file(rhs_backend_t *b, int snapshot, int wait, char *err,
		     size_t err_len)
{
	b->lock_fd =
		snapshot ? open(b->path, O_RDONLY | O_CLOEXEC)
			 : open(b->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (b->lock_fd < 0) {
		snprintf(err, err_len, "%s: %s", b->path, strerror(errno));
		return RHS_EACCESS;
	}
	struct stat st;
	if (fstat(b->lock_fd, &st) < 0 || (st.st_mode & 077)) {
		snprintf(err, err_len,
			 "%s: mode %03o lets others read the store; chmod 600 "
			 "it",
			 b->path, (unsigned)(st.st_mode & 0777));
		return RHS_EPERM;
	}
	if (!snapshot &&
	    flock(b->lock_fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		snprintf(err, err_len, "%s: in use by another process",
			 b->path);
		return RHS_EBUSY;
	}
	return RHS_OK;
}

/* WAL with a full sync per commit: a change that returned is on disk.
 * A snapshot is one read transaction from here to close: in WAL mode the
 * writer goes on, and every read sees the store as it was now. */
static int configure(rhs_backend_t *b, const rhs_open_opts_t *opts)
{
	if (b->snapshot)
		return exec(b, "BEGIN");
	int rc = exec(b, "PRAGMA journal_mode = WAL");
	if (rc == RHS_OK)
		rc = exec(b, "PRAGMA synchronous = FULL");
	if (rc == RHS_OK)
		rc = exec(b, "PRAGMA secure_delete = ON");
	if (rc == RHS_OK && opts && opts->max_pages) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %u",
			 opts->max_pages);
		rc = exec(b, sql);
	}
	return rc;
}

static void sq_close(rhs_backend_t *b)
{
	if (!b)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(b->st[i]);
	for (unsigned i = 0; i < FIND_SHAPES; i++)
		sqlite3_finalize(b->find[i]);
	if (b->snapshot)
		exec(b, "ROLLBACK");
	if (b->db)
		sqlite3_close_v2(b->db);
	if (b->lock_fd >= 0)
		close(b->lock_fd);
	free(b);
}

static int sq_open(const char *where, const rhs_open_opts_t *opts,
		   rhs_backend_t **out, char *err, size_t err_len)
{
	rhs_backend_t *b = calloc(1, sizeof(*b));
	if (!b)
		return RHS_ENOMEM;
	b->lock_fd = -1;
	b->snapshot = opts && opts->snapshot;
	snprintf(b->path, sizeof(b->path), "%s", where);
	int rc = open_file(b, b->snapshot, opts && opts->wait_for_writer, err,
			   err_len);
	int flags =
		(b->snapshot ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
		SQLITE_OPEN_FULLMUTEX;
	if (rc == RHS_OK &&
	    sqlite3_open_v2(b->path, &b->db, flags, NULL) != SQLITE_OK) {
		snprintf(err, err_len, "%s: %s", b->path,
			 b->db ? sqlite3_errmsg(b->db) : "cannot open");
		rc = RHS_EACCESS;
	}
	if (rc == RHS_OK) {
		sqlite3_busy_timeout(b->db, 5000);
		rc = configure(b, opts);
		if (rc < 0)
			snprintf(err, err_len, "%s: %s", b->path,
				 sqlite3_errmsg(b->db));
	}
	if (rc < 0) {
		sq_close(b);
		return rc;
	}
	*out = b;
	return RHS_OK;
}

static const char *sq_errmsg(rhs_backend_t *b)
{
	return b->db ? sqlite3_errmsg(b->db) : "not open";
}

/* --- schema and transactions ---------------------------------------------
 */

static int sq_schema_version(rhs_backend_t *b, unsigned *version)
{
	int64_t v = 0;
	int rc = single_int(stmt(b, ST_VERSION), &v);
	*version = (unsigned)v;
	return rc;
}

static int sq_migrate_to(rhs_backend_t *b, unsigned to)
{
	if (to < 1 || to > sizeof(migrations) / sizeof(migrations[0]))
		return RHS_EINVAL;
	char bump[64];
	snprintf(bump, sizeof(bump), "PRAGMA user_version = %u;", to);
	int rc = exec(b, migrations[to - 1]);
	return rc < 0 ? rc : exec(b, bump);
}

static int sq_begin(rhs_backend_t *b)
{
	return run(stmt(b, ST_BEGIN));
}

static void sq_rollback(rhs_backend_t *b)
{
	if (run(stmt(b, ST_ROLLBACK)) < 0)
		exec(b, "ROLLBACK");
}

static int sq_commit(rhs_backend_t *b)
{
	int rc = run(stmt(b, ST_COMMIT));
	if (rc < 0)
		sq_rollback(b);
	return rc;
}

/* --- rows ------------------------------------------------------------------
 */

static int sq_meta_get(rhs_backend_t *b, const char *name, uint8_t **value,
		       size_t *len)
{
	sqlite3_stmt *st = stmt(b, ST_META_GET);
	if (!st)
		return RHS_EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	int rc = step == SQLITE_ROW    ? RHS_OK
		 : step == SQLITE_DONE ? RHS_ENOTFOUND
				       : sqlite_err(step);
	if (rc == RHS_OK) {
		*len = (size_t)sqlite3_column_bytes(st, 0);
		*value = malloc(*len ? *len : 1);
		if (*value)
			memcpy(*value, sqlite3_column_blob(st, 0), *len);
		else
			rc = RHS_ENOMEM;
	}
	release(st);
	return rc;
}

static int sq_meta_put(rhs_backend_t *b, const char *name, const uint8_t *value,
		       size_t len)
{
	sqlite3_stmt *st = stmt(b, ST_META_PUT);
	if (!st)
		return RHS_EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, value, (int)len, SQLITE_STATIC);
	return run(st);
}

/* The row a statement stands on: its sealed record in column 0, then
 * (objects) the index hashes in columns 1 to 4. */
static rhs_row_view_t view_of(sqlite3_stmt *st, char table, int64_t slot,
			      uint64_t id)
{
	rhs_row_view_t v;
	memset(&v, 0, sizeof(v));
	v.table = table;
	v.slot = slot;
	v.id = id;
	v.sealed = sqlite3_column_blob(st, 0);
	v.sealed_len = (size_t)sqlite3_column_bytes(st, 0);
	for (int k = 0; table == 'o' && k < RHS_IX_COUNT; k++) {
		v.ix[k] = sqlite3_column_blob(st, 1 + k);
		v.ix_len[k] = (size_t)sqlite3_column_bytes(st, 1 + k);
	}
	return v;
}

static int sq_row_get(rhs_backend_t *b, char table, uint32_t slot, uint64_t id,
		      rhs_row_fn fn, void *ctx)
{
	sqlite3_stmt *st = stmt(b, table == 't' ? ST_TOKEN_GET : ST_OBJECT_GET);
	if (!st)
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, slot);
	if (table == 'o')
		sqlite3_bind_int64(st, 2, (sqlite3_int64)id);
	int step = sqlite3_step(st);
	int rc = step == SQLITE_DONE ? RHS_ENOTFOUND : sqlite_err(step);
	if (step == SQLITE_ROW) {
		rhs_row_view_t v = view_of(st, table, slot, id);
		rc = fn(ctx, &v);
	}
	release(st);
	return rc;
}

/* fn on each row of a table; the slot (and id) follow the row's
 * columns. */
static int each_of(rhs_backend_t *b, char table, rhs_row_fn fn, void *ctx)
{
	sqlite3_stmt *st =
		stmt(b, table == 't' ? ST_TOKENS_ALL : ST_OBJECTS_ALL);
	if (!st)
		return RHS_EIO;
	int after = table == 't' ? 1 : 1 + RHS_IX_COUNT;
	int step, rc = RHS_OK;
	while (rc == RHS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t slot = sqlite3_column_int64(st, after);
		uint64_t id =
			table == 't'
				? 0
				: (uint64_t)sqlite3_column_int64(st, after + 1);
		rhs_row_view_t v = view_of(st, table, slot, id);
		rc = fn(ctx, &v);
	}
	if (rc == RHS_OK && step != SQLITE_DONE)
		rc = sqlite_err(step);
	release(st);
	return rc;
}

static int sq_rows_each(rhs_backend_t *b, rhs_row_fn fn, void *ctx)
{
	int rc = each_of(b, 't', fn, ctx);
	return rc < 0 ? rc : each_of(b, 'o', fn, ctx);
}

static void bind_ix(sqlite3_stmt *st, int first, const rhs_row_view_t *row)
{
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		if (row->ix[k])
			sqlite3_bind_blob(st, first + k, row->ix[k],
					  (int)row->ix_len[k], SQLITE_STATIC);
		else
			sqlite3_bind_null(st, first + k);
	}
}

static int sq_row_put(rhs_backend_t *b, const rhs_row_view_t *row, int create)
{
	int which = row->table == 't' ? ST_TOKEN_PUT
		    : create	      ? ST_OBJECT_INSERT
				      : ST_OBJECT_UPDATE;
	sqlite3_stmt *st = stmt(b, which);
	if (!st)
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, row->slot);
	if (row->table == 'o') {
		sqlite3_bind_int64(st, 2, (sqlite3_int64)row->id);
		bind_ix(st, 3, row);
	}
	sqlite3_bind_blob(st, 7, row->sealed, (int)row->sealed_len,
			  SQLITE_STATIC);
	int rc = run(st);
	if (rc == RHS_OK && which == ST_OBJECT_UPDATE &&
	    sqlite3_changes(b->db) == 0)
		rc = RHS_ENOTFOUND;
	return rc;
}

static int sq_object_delete(rhs_backend_t *b, uint32_t slot, uint64_t id)
{
	sqlite3_stmt *st = stmt(b, ST_OBJECT_DELETE);
	if (!st)
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, slot);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)id);
	int rc = run(st);
	return rc == RHS_OK && sqlite3_changes(b->db) == 0 ? RHS_ENOTFOUND : rc;
}

static int sq_token_delete(rhs_backend_t *b, uint32_t slot)
{
	const int which[] = {ST_TOKEN_OBJECTS_DELETE, ST_TOKEN_DELETE};
	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *st = stmt(b, which[i]);
		if (!st)
			return RHS_EIO;
		sqlite3_bind_int64(st, 1, slot);
		int rc = run(st);
		if (rc < 0)
			return rc;
	}
	return RHS_OK;
}

/* --- finds -----------------------------------------------------------------
 */

static const char *const ix_columns[RHS_IX_COUNT] = {"ix_class", "ix_id",
						     "ix_label", "ix_key_type"};

/* Given a label or an ID (nearly unique), the class and key type (shared
 * by most objects) must not drive the index choice: "+" keeps SQLite off
 * their indexes, which it would otherwise pick without statistics. */
static int find_sql(unsigned shape, char *sql, size_t cap)
{
	int selective = shape & (1u << RHS_IX_ID | 1u << RHS_IX_LABEL);
	int n = snprintf(sql, cap, "SELECT id FROM objects WHERE token = ?1");
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		if (!(shape >> k & 1))
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
	int step = SQLITE_DONE;
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
		return sqlite_err(step);
	}
	*ids = out;
	*count = n;
	return RHS_OK;
}

static int sq_find(rhs_backend_t *b, uint32_t slot, const rhs_row_view_t *match,
		   uint64_t **ids, size_t *count)
{
	unsigned shape = 0;
	for (int k = 0; match && k < RHS_IX_COUNT; k++)
		shape |= (unsigned)(match->ix[k] != NULL) << k;
	char sql[256];
	if (!b->find[shape] && find_sql(shape, sql, sizeof(sql)) < 0)
		return RHS_EINVAL;
	sqlite3_stmt *st = prepared(b->db, &b->find[shape], sql);
	if (!st)
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, slot);
	for (int k = 0; k < RHS_IX_COUNT; k++)
		if (shape >> k & 1)
			sqlite3_bind_blob(st, k + 2, match->ix[k],
					  (int)match->ix_len[k], SQLITE_STATIC);
	int rc = collect_ids(st, ids, count);
	release(st);
	return rc;
}

static int sq_object_count(rhs_backend_t *b, uint32_t slot, uint64_t *count)
{
	sqlite3_stmt *st = stmt(b, ST_OBJECT_COUNT);
	if (!st)
		return RHS_EIO;
	sqlite3_bind_int64(st, 1, slot);
	int64_t n = 0;
	int rc = single_int(st, &n);
	*count = (uint64_t)n;
	return rc;
}

static int sq_max_object_id(rhs_backend_t *b, uint32_t slot, uint64_t *id)
{
	sqlite3_stmt *st =
		stmt(b, slot == RHS_ALL_TOKENS ? ST_MAX_ID_ALL : ST_MAX_ID);
	if (!st)
		return RHS_EIO;
	if (slot != RHS_ALL_TOKENS)
		sqlite3_bind_int64(st, 1, slot);
	int64_t v = 0;
	int rc = single_int(st, &v);
	*id = (uint64_t)v;
	return rc;
}

/* SQLite's data version moves when another connection commits. */
static int64_t sq_foreign_version(rhs_backend_t *b)
{
	int64_t v = 0;
	return single_int(stmt(b, ST_DATA_VERSION), &v) == RHS_OK ? v : 0;
}

const rhs_backend_ops_t rhs_sqlite_backend = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.errmsg = sq_errmsg,
	.schema_version = sq_schema_version,
	.migrate_to = sq_migrate_to,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.meta_get = sq_meta_get,
	.meta_put = sq_meta_put,
	.row_get = sq_row_get,
	.rows_each = sq_rows_each,
	.row_put = sq_row_put,
	.object_delete = sq_object_delete,
	.token_delete = sq_token_delete,
	.find = sq_find,
	.object_count = sq_object_count,
	.max_object_id = sq_max_object_id,
	.foreign_version = sq_foreign_version,
};
