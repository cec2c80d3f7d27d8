/*
 * What a store backend does: keep rows of sealed bytes and look them up.
 * The backend-neutral layer (store.c) seals, binds rows together and
 * hashes index values; a backend sees only sealed bytes and keyed hashes,
 * so nothing readable reaches its database. Every call but open and close
 * runs under the store's lock, one at a time.
 */
#ifndef RHS_BACKEND_H
#define RHS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "rhs.h"

/* A row as a backend holds it. table 't': the token row of slot (id 0);
 * 'o': object id of token slot, with the keyed hashes of its index values
 * (NULL where absent). slot is as stored, which a damaged database may put
 * out of range. What a backend hands out lives until its callback
 * returns. */
typedef struct rhs_row_view {
	char table;
	int64_t slot;
	uint64_t id;
	const void *sealed;
	size_t sealed_len;
	const void *ix[RHS_IX_COUNT];
	size_t ix_len[RHS_IX_COUNT];
} rhs_row_view_t;

typedef int (*rhs_row_fn)(void *ctx, const rhs_row_view_t *row);
/* One entry of the change log: the write that made the store's counter
 * counter changed row (table, slot, id). */
typedef int (*rhs_change_fn)(void *ctx, uint64_t counter, char table,
			     int64_t slot, uint64_t id);

typedef struct rhs_backend rhs_backend_t;

typedef struct rhs_backend_ops {
	const char *name;
	/* Opens the database at where, with opts' snapshot and size cap;
	 * err names it and says why not. */
	int (*open)(const char *where, const rhs_open_opts_t *opts,
		    rhs_backend_t **out, char *err, size_t err_len);
	void (*close)(rhs_backend_t *b);
	/* The database's own words for its last error. */
	const char *(*errmsg)(rhs_backend_t *b);
	int (*schema_version)(rhs_backend_t *b, unsigned *version);
	/* In a transaction: the schema of version `to` made from `to` - 1,
	 * and the new version recorded. */
	int (*migrate_to)(rhs_backend_t *b, unsigned to);
	/* A write transaction; a commit that fails has rolled back. */
	int (*begin)(rhs_backend_t *b);
	int (*commit)(rhs_backend_t *b);
	void (*rollback)(rhs_backend_t *b);
	/* A value of the meta table (free with free); RHS_ENOTFOUND. */
	int (*meta_get)(rhs_backend_t *b, const char *name, uint8_t **value,
			size_t *len);
	int (*meta_put)(rhs_backend_t *b, const char *name,
			const uint8_t *value, size_t len);
	/* fn on one row; RHS_ENOTFOUND when there is none. */
	int (*row_get)(rhs_backend_t *b, char table, uint32_t slot, uint64_t id,
		       rhs_row_fn fn, void *ctx);
	/* fn on every row: token rows, then object rows; stops at the first
	 * error fn returns. */
	int (*rows_each)(rhs_backend_t *b, rhs_row_fn fn, void *ctx);
	/* Creates a row (a token row is replaced), or updates one:
	 * RHS_ENOTFOUND when there was none to update. */
	int (*row_put)(rhs_backend_t *b, const rhs_row_view_t *row, int create);
	/* RHS_ENOTFOUND when there was none. */
	int (*object_delete)(rhs_backend_t *b, uint32_t slot, uint64_t id);
	/* The token row of slot and all its objects. */
	int (*token_delete)(rhs_backend_t *b, uint32_t slot);
	/* Ids of slot's objects whose index hashes equal those match gives
	 * (NULL: any), ascending; free with free. */
	int (*find)(rhs_backend_t *b, uint32_t slot,
		    const rhs_row_view_t *match, uint64_t **ids, size_t *count);
	int (*object_count)(rhs_backend_t *b, uint32_t slot, uint64_t *count);
	/* The highest object id of slot, or of every token when slot is
	 * RHS_ALL_TOKENS; 0 when there is none. */
	int (*max_object_id)(rhs_backend_t *b, uint32_t slot, uint64_t *id);
	/* A number that moves when another process commits, never for this
	 * one's own writes; 0 when it cannot be read. */
	int64_t (*foreign_version)(rhs_backend_t *b);
	/* For daemons sharing the store (NULL in a backend one process
	 * writes at a time): meta_get that, in a transaction, locks the value
	 * until it ends, so that writers take turns; the change log, one
	 * entry per write (table 'w': every row of the token went), which
	 * another process reads to learn what changed since the counter it
	 * last knew; entries far older than counter may be dropped. */
	int (*meta_lock)(rhs_backend_t *b, const char *name, uint8_t **value,
			 size_t *len);
	int (*change_log)(rhs_backend_t *b, uint64_t counter, char table,
			  uint32_t slot, uint64_t id);
	int (*changes_since)(rhs_backend_t *b, uint64_t counter,
			     rhs_change_fn fn, void *ctx);
	/* Whether open with opts.reader makes a session that reads beside
	 * the writer's (NULL: it cannot). */
	int readers_possible;
} rhs_backend_ops_t;

#define RHS_ALL_TOKENS UINT32_MAX

extern const rhs_backend_ops_t rhs_sqlite_backend;
extern const rhs_backend_ops_t rhs_postgres_backend;

#endif
