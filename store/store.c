/*
 * The store, backend-neutral: sealed records bound to their table, token
 * and id; index values kept only as keyed hashes; the sealed state that
 * binds the rows together; transactions under one lock. The backend
 * (backend.h) keeps the rows.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
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
	const rhs_backend_ops_t *ops;
	rhs_backend_t *be;
	int snapshot; /* read-only, in one read transaction */
	pthread_mutex_t lock;
	uint8_t seal_key[RHS_KEY_LEN];
	uint8_t rows_key[RHS_KEY_LEN];
	/* HMAC-SHA256 keyed with the index key, copied for each hash. */
	EVP_MAC_CTX *index_mac;
	unsigned schema;	 /* the schema version open */
	store_state_t state;	 /* as committed, or as the open transaction
				  * has made it */
	store_state_t committed; /* what a rollback goes back to */
	uint64_t damaged;	 /* tokens whose rows do not add up */
	/* Each row as this process wrote or verified it (schema 3 on). */
	rhs_rows_t rows;
	int rows_on;
	/* Per token, the backend's foreign version at which its rows were
	 * last counted and found as this process knows them (0: not yet). */
	int64_t counted_at[RHS_MAX_TOKENS];
	/* A commit failed, and may have happened all the same: what this
	 * process holds of the rows is read again before the next use. */
	int resync;
	/* Other processes write the store too (opts.shared): the sealed
	 * state as last read from the database, to see at a glance that
	 * nobody wrote since, and whom to tell what they changed. */
	int shared;
	uint8_t *seen;
	size_t seen_len;
	rhs_foreign_fn foreign;
	void *foreign_ctx;
	/* Sessions that reads and finds take in turn (opts.readers), each
	 * under its own lock, outside the store's: what one reads is then
	 * checked under the store's lock, and read again on the writer's
	 * session when it does not agree (a write committed meanwhile). */
	rhs_backend_t **readers;
	pthread_mutex_t *reader_locks;
	unsigned n_readers;
	_Atomic unsigned next_reader;
	char path[4096];
};

/* --- migrations ----------------------------------------------------------- */

static int state_build(rhs_store_t *s);

static int migrate(rhs_store_t *s, unsigned target, char *err, size_t err_len)
{
	unsigned version;
	if (s->ops->schema_version(s->be, &version) < 0)
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
		if (s->ops->begin(s->be) < 0)
			return RHS_EIO;
		int rc = s->ops->migrate_to(s->be, version + 1);
		if (rc == RHS_OK && version + 1 == 3)
			rc = state_build(s);
		int done = rc == RHS_OK;
		if (done)
			rc = s->ops->commit(s->be);
		if (rc < 0) {
			snprintf(err, err_len,
				 "%s: migration to version %u failed: %s",
				 s->path, version + 1, s->ops->errmsg(s->be));
			if (!done)
				s->ops->rollback(s->be);
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

/* The index key goes into an HMAC context once; each hash starts from a
 * copy of it, rather than fetching HMAC and setting the key again. */
static EVP_MAC_CTX *index_mac_new(const uint8_t key[RHS_KEY_LEN])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						 (char *)"SHA256", 0),
		OSSL_PARAM_construct_end()};
	if (ctx && EVP_MAC_init(ctx, key, RHS_KEY_LEN, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
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

/* A sealed value of the meta table, opened; RHS_ENOTFOUND. */
static int meta_open(rhs_store_t *s, const char *name, aad_t aad,
		     uint8_t **plain, size_t *len)
{
	uint8_t *sealed;
	size_t sealed_len;
	int rc = s->ops->meta_get(s->be, name, &sealed, &sealed_len);
	if (rc < 0)
		return rc;
	rc = unseal_blob(s, aad, sealed, sealed_len, plain, len);
	free(sealed);
	return rc;
}

static int meta_seal(rhs_store_t *s, const char *name, aad_t aad,
		     const uint8_t *plain, size_t len)
{
	uint8_t *sealed;
	size_t sealed_len;
	int rc = seal_blob(s, aad, plain, len, &sealed, &sealed_len);
	if (rc < 0)
		return rc;
	rc = s->ops->meta_put(s->be, name, sealed, sealed_len);
	free(sealed);
	return rc;
}

/* The store key must open the key check record; a fresh store gets one. */
static int check_key(rhs_store_t *s, char *err, size_t err_len)
{
	static const char probe[] = "remhsm store key check";
	aad_t aad = make_aad('k', 0, 0);
	uint8_t *plain;
	size_t len;
	int rc = meta_open(s, "keycheck", aad, &plain, &len);
	if (rc == RHS_OK) {
		rhs_free(plain, len);
		return RHS_OK;
	}
	if (rc == RHS_ECORRUPT) {
		snprintf(err, err_len,
			 "%s: the store key does not open this "
			 "store (wrong key file?)",
			 s->path);
		return RHS_EKEY;
	}
	if (rc != RHS_ENOTFOUND)
		return rc;
	return meta_seal(s, "keycheck", aad, (const uint8_t *)probe,
			 sizeof(probe));
}

/* --- the state binding the rows ------------------------------------------ */

static void xor_into(uint8_t sum[TERM_LEN], const uint8_t term[TERM_LEN])
{
	for (size_t i = 0; i < TERM_LEN; i++)
		sum[i] ^= term[i];
}

/* A keyed hash of one row: its table, token, id, sealed bytes and index
 * hashes, so that any of them changed changes the term. */
static void row_term(const rhs_store_t *s, const rhs_row_view_t *row,
		     uint8_t term[TERM_LEN])
{
	uint8_t buf[1 + 4 + 8 + 32 + RHS_IX_COUNT * (1 + INDEX_HASH_LEN)];
	size_t n = 0;
	uint32_t slot = (uint32_t)row->slot;
	buf[n++] = (uint8_t)row->table;
	for (int i = 3; i >= 0; i--)
		buf[n++] = (uint8_t)(slot >> (8 * i));
	for (int i = 7; i >= 0; i--)
		buf[n++] = (uint8_t)(row->id >> (8 * i));
	SHA256(row->sealed, row->sealed_len, buf + n);
	n += 32;
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		int has = row->table == 'o' && row->ix[k] &&
			  row->ix_len[k] == INDEX_HASH_LEN;
		buf[n++] = (uint8_t)has;
		memset(buf + n, 0, INDEX_HASH_LEN);
		if (has)
			memcpy(buf + n, row->ix[k], INDEX_HASH_LEN);
		n += INDEX_HASH_LEN;
	}
	unsigned int out = TERM_LEN;
	if (!HMAC(EVP_sha256(), s->rows_key, RHS_KEY_LEN, buf, n, term, &out))
		memset(term, 0xff, TERM_LEN); /* adds up to nothing real */
}

static int copy_term(void *ctx, const rhs_row_view_t *row)
{
	void **args = ctx;
	row_term(args[0], row, args[1]);
	return RHS_OK;
}

/* The term of a stored row; RHS_ENOTFOUND when there is none. */
static int stored_term(rhs_store_t *s, char table, uint32_t slot, uint64_t id,
		       uint8_t term[TERM_LEN])
{
	void *args[] = {s, term};
	return s->ops->row_get(s->be, table, slot, id, copy_term, args);
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
	return meta_seal(s, "state", make_aad('m', 0, 0), plain, sizeof(plain));
}

/* The state from its sealed bytes; RHS_ECORRUPT when they do not open. */
static int state_open(rhs_store_t *s, const uint8_t *sealed, size_t sealed_len,
		      store_state_t *st)
{
	uint8_t *plain = NULL;
	size_t len = 0;
	int rc = unseal_blob(s, make_aad('m', 0, 0), sealed, sealed_len, &plain,
			     &len);
	if (rc == RHS_OK && len != 16 + sizeof(st->rows))
		rc = RHS_ECORRUPT;
	if (rc == RHS_OK) {
		memset(st, 0, sizeof(*st));
		for (int i = 0; i < 8; i++) {
			st->counter = st->counter << 8 | plain[i];
			st->next_object_id =
				st->next_object_id << 8 | plain[8 + i];
		}
		memcpy(st->rows, plain + 16, sizeof(st->rows));
	}
	rhs_free(plain, len);
	return rc;
}

static int state_load(rhs_store_t *s, char *err, size_t err_len)
{
	uint8_t *sealed = NULL;
	size_t len = 0;
	int rc = s->ops->meta_get(s->be, "state", &sealed, &len);
	if (rc == RHS_ENOTFOUND)
		rc = RHS_ECORRUPT;
	if (rc == RHS_OK)
		rc = state_open(s, sealed, len, &s->state);
	if (rc == RHS_OK)
		s->committed = s->state;
	free(sealed);
	if (rc == RHS_ECORRUPT)
		snprintf(err, err_len,
			 "%s: the store's sealed state is missing or altered",
			 s->path);
	return rc;
}

/* What summing the rows gathers: per token the XOR of its rows' terms,
 * tokens holding ids the store never handed out, rows of tokens out of
 * range, and (fill) each row's term. */
typedef struct row_sums {
	rhs_store_t *s;
	uint8_t (*sums)[TERM_LEN];
	uint64_t bad_ids;
	unsigned strays;
	rhs_rows_t *fill;
} row_sums_t;

static int add_row(void *ctx, const rhs_row_view_t *row)
{
	row_sums_t *a = ctx;
	if (row->slot < 0 || row->slot >= RHS_MAX_TOKENS) {
		a->strays++;
		return RHS_OK;
	}
	uint32_t slot = (uint32_t)row->slot;
	uint8_t term[TERM_LEN];
	row_term(a->s, row, term);
	xor_into(a->sums[slot], term);
	if (a->fill &&
	    rhs_rows_set(a->fill, rhs_row_key(row->table, slot, row->id),
			 term) < 0)
		return RHS_ENOMEM;
	if (row->table == 'o' && row->id >= a->s->state.next_object_id)
		a->bad_ids |= (uint64_t)1 << slot;
	return RHS_OK;
}

/* Which tokens' rows do not add up to what the sealed state says. */
static int verify_rows(rhs_store_t *s)
{
	uint8_t sums[RHS_MAX_TOKENS][TERM_LEN];
	memset(sums, 0, sizeof(sums));
	row_sums_t a = {s, sums, 0, 0, &s->rows};
	int rc = s->ops->rows_each(s->be, add_row, &a);
	if (rc < 0)
		return rc;
	s->rows_on = 1;
	s->damaged = a.bad_ids;
	for (unsigned t = 0; t < RHS_MAX_TOKENS; t++)
		if (CRYPTO_memcmp(sums[t], s->state.rows[t], TERM_LEN) != 0)
			s->damaged |= (uint64_t)1 << t;
	return RHS_OK;
}

/* After a commit whose outcome is not known (PostgreSQL may have kept a
 * write whose confirmation was lost), the sealed state and every row's
 * term are read from the database again, as at open: the write is then
 * known to be there or not, and the next one builds on what is. */
static int resync(rhs_store_t *s)
{
	if (!s->resync || s->schema < 3)
		return RHS_OK;
	char err[256];
	store_state_t before = s->state; /* for rhs_counter, until it works */
	rhs_rows_free(&s->rows);
	memset(&s->state, 0, sizeof(s->state));
	memset(s->counted_at, 0, sizeof(s->counted_at));
	int rc = state_load(s, err, sizeof(err));
	if (rc == RHS_OK)
		rc = verify_rows(s);
	if (rc < 0)
		s->state = s->committed = before;
	s->resync = rc != RHS_OK;
	if (rc == RHS_OK && s->foreign)
		s->foreign(s->foreign_ctx, '*', 0, 0);
	return rc;
}

/* --- processes sharing the store -------------------------------------------
 */

static void tell(rhs_store_t *s, char table, uint32_t slot, uint64_t id)
{
	if (s->foreign)
		s->foreign(s->foreign_ctx, table, slot, id);
}

/* Going through the change log from this process's counter to the one of
 * the state the others left: each token's sum as the rows read again make
 * it, and whether the log led there without a gap. */
typedef struct catch_up {
	rhs_store_t *s;
	uint64_t next, last;
	uint8_t sums[RHS_MAX_TOKENS][TERM_LEN];
	int gap;
} catch_up_t;

/* One entry: the row it names read again (its term, or its absence, is
 * what this process knows of it now), its token's sum kept in step. */
static int learn_change(void *ctx, uint64_t counter, char table, int64_t slot,
			uint64_t id)
{
	catch_up_t *c = ctx;
	rhs_store_t *s = c->s;
	if (c->gap || counter > c->last)
		return RHS_OK;
	if (counter != c->next++ || slot < 0 || slot >= RHS_MAX_TOKENS ||
	    (table != 't' && table != 'o' && table != 'w')) {
		c->gap = 1;
		return RHS_OK;
	}
	uint32_t t = (uint32_t)slot;
	tell(s, table, t, id);
	if (table == 'w') {
		memset(c->sums[t], 0, TERM_LEN);
		return rhs_rows_wipe(&s->rows, t);
	}
	uint64_t key = rhs_row_key(table, t, id);
	uint8_t was[TERM_LEN], now[TERM_LEN];
	if (rhs_rows_term(&s->rows, key, was))
		xor_into(c->sums[t], was);
	int rc = stored_term(s, table, t, id, now);
	if (rc < 0 && rc != RHS_ENOTFOUND)
		return rc;
	if (rc == RHS_OK)
		xor_into(c->sums[t], now);
	return rhs_rows_set(&s->rows, key, rc == RHS_OK ? now : NULL);
}

/* Moves this process on to st, the state the others left (its counter
 * ahead of this one's). A log that does not lead there, or rows that do
 * not add up to it, and the store is read again in full: what does not
 * add up then is damage, which that reports as at open. */
static int catch_up(rhs_store_t *s, const store_state_t *st)
{
	catch_up_t c = {
		.s = s, .next = s->state.counter + 1, .last = st->counter};
	memcpy(c.sums, s->state.rows, sizeof(c.sums));
	int rc = s->ops->changes_since(s->be, s->state.counter, learn_change,
				       &c);
	if (rc < 0) {
		s->resync = 1; /* what it learnt is half done */
		return rc;
	}
	int whole = c.gap || c.next != st->counter + 1;
	for (unsigned t = 0; !whole && t < RHS_MAX_TOKENS; t++)
		whole = CRYPTO_memcmp(c.sums[t], st->rows[t], TERM_LEN) != 0;
	if (whole) {
		s->resync = 1;
		return resync(s);
	}
	s->state = s->committed = *st;
	return RHS_OK;
}

static void remember_seen(rhs_store_t *s, uint8_t *sealed, size_t len)
{
	free(s->seen);
	s->seen = sealed;
	s->seen_len = len;
}

static int seen_again(const rhs_store_t *s, const uint8_t *sealed, size_t len)
{
	return s->seen && s->seen_len == len && !memcmp(s->seen, sealed, len);
}

/* The sealed state the others left: learnt, unless it is older than this
 * process's (put back from an older copy: RHS_ECHANGED). Keeps sealed on
 * success. */
static int learn_state(rhs_store_t *s, uint8_t *sealed, size_t len)
{
	store_state_t st;
	int rc = state_open(s, sealed, len, &st);
	if (rc == RHS_OK && st.counter < s->state.counter)
		rc = RHS_ECHANGED;
	if (rc == RHS_OK && st.counter > s->state.counter)
		rc = catch_up(s, &st);
	OPENSSL_cleanse(&st, sizeof(st));
	if (rc == RHS_OK)
		remember_seen(s, sealed, len);
	return rc;
}

/* In a transaction of this thread: the state row locked (no other
 * process commits until it ends) and what the others did learnt. */
static int learn_locked(rhs_store_t *s)
{
	uint8_t *sealed = NULL;
	size_t len = 0;
	int rc = s->ops->meta_lock(s->be, "state", &sealed, &len);
	if (rc == RHS_ENOTFOUND)
		rc = RHS_ECORRUPT;
	if (rc == RHS_OK && !seen_again(s, sealed, len)) {
		rc = learn_state(s, sealed, len);
		if (rc == RHS_OK)
			return RHS_OK; /* sealed is kept as seen */
	}
	free(sealed);
	return rc;
}

typedef int (*locked_fn)(rhs_store_t *s, void *arg);

/* fn on a consistent store: in a read of this thread's that holds the
 * state row, once what the others did is learnt; nothing is written. */
static int with_state_locked(rhs_store_t *s, locked_fn fn, void *arg)
{
	int rc = s->ops->begin(s->be);
	if (rc < 0)
		return rc;
	rc = learn_locked(s);
	if (rc == RHS_OK && fn)
		rc = fn(s, arg);
	s->ops->rollback(s->be);
	return rc;
}

/* Outside a transaction: one read of the state row, and when another
 * process has written since, what it did learnt under the row's lock. */
static int learn_now(rhs_store_t *s)
{
	if (!s->shared)
		return RHS_OK;
	uint8_t *sealed = NULL;
	size_t len = 0;
	store_state_t st = {0};
	int rc = s->ops->meta_get(s->be, "state", &sealed, &len);
	if (rc == RHS_OK && seen_again(s, sealed, len)) {
		free(sealed);
		return RHS_OK;
	}
	if (rc == RHS_OK)
		rc = state_open(s, sealed, len, &st);
	if (rc == RHS_OK && st.counter == s->state.counter) {
		remember_seen(s, sealed, len); /* its own write */
		sealed = NULL;
	} else if (rc == RHS_OK) {
		rc = with_state_locked(s, NULL, NULL);
	}
	OPENSSL_cleanse(&st, sizeof(st));
	free(sealed);
	return rc;
}

/* Migration 3: the state of the rows as they are (trusted this once). */
static int state_build(rhs_store_t *s)
{
	memset(&s->state, 0, sizeof(s->state));
	s->state.counter = 1;
	uint64_t max_id = 0;
	int rc = s->ops->max_object_id(s->be, RHS_ALL_TOKENS, &max_id);
	if (rc < 0)
		return rc;
	s->state.next_object_id = max_id + 1;
	row_sums_t a = {s, s->state.rows, 0, 0, NULL};
	rc = s->ops->rows_each(s->be, add_row, &a);
	return rc < 0 ? rc : state_save(s);
}

/* A write changed the row (table, slot, id; table 'w': all of slot's):
 * its old term (when it had one) leaves its token's sum, the new one
 * (when it has one) joins, the counter moves on, and the change log (in a
 * backend that keeps one) says which row the counter's write changed. */
static int state_swap(rhs_store_t *s, char table, uint32_t slot, uint64_t id,
		      const uint8_t *old_term, const uint8_t *new_term)
{
	if (s->schema < 3)
		return RHS_OK;
	if (old_term)
		xor_into(s->state.rows[slot], old_term);
	if (new_term)
		xor_into(s->state.rows[slot], new_term);
	s->state.counter++;
	int rc = RHS_OK;
	if (s->ops->change_log && s->schema >= 4)
		rc = s->ops->change_log(s->be, s->state.counter, table, slot,
					id);
	return rc < 0 ? rc : state_save(s);
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

/* A snapshot is read by a program of the store's own schema version only:
 * it cannot migrate what another process holds. */
static int snapshot_version_ok(rhs_store_t *s, char *err, size_t err_len)
{
	unsigned version = 0;
	if (s->ops->schema_version(s->be, &version) < 0) {
		snprintf(err, err_len, "%s: %s", s->path,
			 s->ops->errmsg(s->be));
		return RHS_EIO;
	}
	if (version == RHS_SCHEMA_VERSION)
		return RHS_OK;
	snprintf(err, err_len,
		 "%s: schema version %u, not this program's %d: "
		 "checked only by the remhsmd that migrates it",
		 s->path, version, RHS_SCHEMA_VERSION);
	return RHS_ENEWER;
}

/* The schema brought up to target, the key checked before migration 3
 * seals the state with it, the state loaded and the rows verified. */
static int bring_up(rhs_store_t *s, unsigned target, char *err, size_t err_len)
{
	int rc = s->snapshot
			 ? snapshot_version_ok(s, err, err_len)
			 : migrate(s, target < 2 ? target : 2, err, err_len);
	if (rc == RHS_OK)
		rc = check_key(s, err, err_len);
	if (rc == RHS_OK && !s->snapshot)
		rc = migrate(s, target, err, err_len);
	if (rc == RHS_OK)
		rc = s->ops->schema_version(s->be, &s->schema);
	if (rc == RHS_OK && s->schema >= 3)
		rc = state_load(s, err, err_len);
	if (rc == RHS_OK && s->schema >= 3)
		rc = verify_rows(s);
	return rc;
}

/* The sessions reads take beside the writer's. */
static int open_readers(rhs_store_t *s, const char *path,
			const rhs_open_opts_t *opts, char *err, size_t err_len)
{
	if (!s->ops->readers_possible || s->snapshot) {
		snprintf(err, err_len,
			 "%s: reader sessions need a PostgreSQL store that "
			 "remhsmd writes",
			 s->path);
		return RHS_EINVAL;
	}
	s->readers = calloc(opts->readers, sizeof(*s->readers));
	s->reader_locks = calloc(opts->readers, sizeof(*s->reader_locks));
	if (!s->readers || !s->reader_locks)
		return RHS_ENOMEM;
	rhs_open_opts_t ro = {.wait_ms = opts->wait_ms,
			      .reader = 1,
			      .notice = opts->notice,
			      .notice_ctx = opts->notice_ctx};
	for (; s->n_readers < opts->readers; s->n_readers++) {
		int rc = s->ops->open(path, &ro, &s->readers[s->n_readers], err,
				      err_len);
		if (rc < 0)
			return rc;
		pthread_mutex_init(&s->reader_locks[s->n_readers], NULL);
	}
	return RHS_OK;
}

static void close_readers(rhs_store_t *s)
{
	for (unsigned k = 0; k < s->n_readers; k++) {
		s->ops->close(s->readers[k]);
		pthread_mutex_destroy(&s->reader_locks[k]);
	}
	free(s->readers);
	free(s->reader_locks);
}

/* A reader session, locked: the first free one, else the next in turn. */
static unsigned reader_take(rhs_store_t *s)
{
	for (unsigned k = 0; k < s->n_readers; k++)
		if (pthread_mutex_trylock(&s->reader_locks[k]) == 0)
			return k;
	unsigned k = atomic_fetch_add(&s->next_reader, 1) % s->n_readers;
	pthread_mutex_lock(&s->reader_locks[k]);
	return k;
}

/* The backends built in, by the scheme that names them in a location;
 * whole: the backend takes the location with its scheme (a libpq URI). */
static const struct {
	const char *scheme;
	const rhs_backend_ops_t *ops;
	int whole;
} backends[] = {{"sqlite", &rhs_sqlite_backend, 0},
		{"postgresql", &rhs_postgres_backend, 1},
		{"postgres", &rhs_postgres_backend, 1}};

/* The backend a location names, and what it is given (*target): a plain
 * path is SQLite's, "SCHEME:REST" (also SCHEME://...) that scheme's. An
 * unknown scheme is named in err, never the rest: a connection string may
 * hold a password. */
static const rhs_backend_ops_t *backend_for(const char *location,
					    const char **target, char *err,
					    size_t err_len)
{
	size_t n = strcspn(location, ":/");
	*target = location;
	if (location[n] != ':' || n == 0)
		return &rhs_sqlite_backend;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strlen(backends[i].scheme) == n &&
		    !strncmp(location, backends[i].scheme, n)) {
			*target =
				backends[i].whole ? location : location + n + 1;
			return backends[i].ops;
		}
	snprintf(err, err_len,
		 "store '%.*s:...': no such store backend in this build "
		 "(built in: sqlite, postgresql)",
		 (int)(n < 32 ? n : 32), location);
	return NULL;
}

/* Where a password=VALUE setting's value ends: a quoted value at its
 * closing quote, a bare one at a space or the next URI parameter. */
static const char *value_end(const char *v)
{
	if (*v != '\'')
		return v + strcspn(v, " &");
	for (v++; *v && *v != '\''; v++)
		if (*v == '\\' && v[1])
			v++;
	return *v ? v + 1 : v;
}

static int password_setting(const char *location, const char *p)
{
	return !strncasecmp(p, "password=", 9) &&
	       (p == location || strchr(" &?", p[-1]));
}

/* The location as messages show it: a password, in a URI's user part or
 * as a password= setting, never. */
static void show_location(const char *location, char *out, size_t cap)
{
	const char *scheme_end = strstr(location, "://");
	const char *pass = NULL, *at = NULL;
	if (scheme_end) {
		const char *auth = scheme_end + 3;
		size_t auth_len = strcspn(auth, "/?");
		for (size_t i = 0; i < auth_len; i++)
			at = auth[i] == '@' ? auth + i : at;
		pass = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	}
	size_t n = 0;
	for (const char *p = location; *p && n + 12 < cap;) {
		const char *skip_to = NULL;
		if (pass && p == pass + 1) {
			skip_to = at;
		} else if (password_setting(location, p)) {
			memcpy(out + n, p, 9);
			n += 9;
			p += 9;
			skip_to = value_end(p);
		}
		if (skip_to) {
			memcpy(out + n, "***", 3);
			n += 3;
			p = skip_to;
			continue;
		}
		out[n++] = *p++;
	}
	out[n] = '\0';
}

int rhs_open(const char *location, const uint8_t key[RHS_KEY_LEN],
	     const rhs_open_opts_t *opts, rhs_store_t **out, char *err,
	     size_t err_len)
{
	const char *path;
	const rhs_backend_ops_t *ops =
		backend_for(location, &path, err, err_len);
	if (!ops)
		return RHS_EINVAL;
	if (opts && opts->shared && !ops->changes_since) {
		snprintf(err, err_len,
			 "a %s store is written by one process at a time: "
			 "daemons share a PostgreSQL store only",
			 ops->name);
		return RHS_EINVAL;
	}
	rhs_store_t *s = calloc(1, sizeof(*s));
	if (!s)
		return RHS_ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->ops = ops;
	s->snapshot = opts && opts->snapshot;
	s->shared = opts && opts->shared && !s->snapshot;
	show_location(path, s->path, sizeof(s->path));
	uint8_t index_key[RHS_KEY_LEN];
	derive(key, "remhsm seal key", s->seal_key);
	derive(key, "remhsm index key", index_key);
	derive(key, "remhsm rows key", s->rows_key);
	s->index_mac = index_mac_new(index_key);
	OPENSSL_cleanse(index_key, sizeof(index_key));
	unsigned target = opts && opts->max_version ? opts->max_version
						    : RHS_SCHEMA_VERSION;
	int rc = s->index_mac ? s->ops->open(path, opts, &s->be, err, err_len)
			      : RHS_ENOMEM;
	if (rc == RHS_OK)
		rc = bring_up(s, target, err, err_len);
	if (rc == RHS_OK && opts && opts->readers)
		rc = open_readers(s, path, opts, err, err_len);
	if (rc < 0) {
		if (rc == RHS_EIO && !err[0])
			snprintf(err, err_len, "%s: %s", s->path,
				 s->be ? s->ops->errmsg(s->be) : "cannot open");
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
	close_readers(s);
	if (s->be)
		s->ops->close(s->be);
	EVP_MAC_CTX_free(s->index_mac);
	OPENSSL_cleanse(s->seal_key, sizeof(s->seal_key));
	OPENSSL_cleanse(s->rows_key, sizeof(s->rows_key));
	rhs_rows_free(&s->rows);
	free(s->seen);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* --- transactions ------------------------------------------------------------
 */

/* The store whose transaction this thread holds (and so its lock). */
static _Thread_local rhs_store_t *txn_of_this_thread;
/* The backend's words for this thread's last failed call. */
static _Thread_local char last_error[512];

/* rc, with the backend's reason kept for rhs_last_error when it is a
 * failure of the database (not a missing row, not a change seen). */
static int noted(rhs_store_t *s, int rc)
{
	if (rc < 0 && rc != RHS_ENOTFOUND && rc != RHS_ECHANGED)
		snprintf(last_error, sizeof(last_error), "%s",
			 s->ops->errmsg(s->be));
	else if (rc < 0)
		last_error[0] = '\0';
	return rc;
}

const char *rhs_last_error(void)
{
	return last_error;
}

int rhs_begin(rhs_store_t *s)
{
	pthread_mutex_lock(&s->lock);
	int rc = noted(s, resync(s));
	if (rc == RHS_OK)
		rc = noted(s, s->ops->begin(s->be));
	if (rc == RHS_OK && s->shared && (rc = noted(s, learn_locked(s))) < 0)
		s->ops->rollback(s->be);
	if (rc < 0) {
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	txn_of_this_thread = s;
	s->committed = s->state;
	rhs_rows_begin(&s->rows);
	return RHS_OK;
}

static void end_transaction(rhs_store_t *s, int committed)
{
	if (committed) {
		rhs_rows_commit(&s->rows);
	} else {
		s->state = s->committed;
		rhs_rows_rollback(&s->rows);
	}
	txn_of_this_thread = NULL;
	pthread_mutex_unlock(&s->lock);
}

int rhs_commit(rhs_store_t *s)
{
	int rc = noted(s, s->ops->commit(s->be));
	if (rc < 0)
		s->resync = 1;
	end_transaction(s, rc == RHS_OK);
	return rc;
}

void rhs_rollback(rhs_store_t *s)
{
	s->ops->rollback(s->be);
	end_transaction(s, 0);
}

/* Runs fn as its own transaction unless this thread holds one. */
typedef int (*txn_fn)(rhs_store_t *s, void *arg);

static int in_transaction(rhs_store_t *s, txn_fn fn, void *arg)
{
	if (txn_of_this_thread == s)
		return noted(s, fn(s, arg));
	int rc = rhs_begin(s);
	if (rc < 0)
		return rc;
	rc = noted(s, fn(s, arg));
	if (rc < 0) {
		rhs_rollback(s);
		return rc;
	}
	return rhs_commit(s);
}

/* --- rows as this process knows them -------------------------------------
 */

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

/* The term the row had before a write (none: NULL in *old), checked
 * against what this process knows of it. */
static int before_write(rhs_store_t *s, char table, uint32_t slot, uint64_t id,
			uint8_t old[TERM_LEN], const uint8_t **had)
{
	int rc = stored_term(s, table, slot, id, old);
	if (rc < 0 && rc != RHS_ENOTFOUND)
		return rc;
	*had = rc == RHS_OK ? old : NULL;
	return row_agrees(s, table, slot, id, *had) < 0 ? RHS_ECHANGED : RHS_OK;
}

/* Seals record into row (sealed bytes malloc'ed: the caller frees
 * row->sealed) and computes the row's term. */
static int seal_row(rhs_store_t *s, rhs_row_view_t *row, const uint8_t *record,
		    size_t len, uint8_t term[TERM_LEN])
{
	uint8_t *sealed;
	size_t sealed_len;
	int rc =
		seal_blob(s, make_aad(row->table, (uint32_t)row->slot, row->id),
			  record, len, &sealed, &sealed_len);
	if (rc < 0)
		return rc;
	row->sealed = sealed;
	row->sealed_len = sealed_len;
	row_term(s, row, term);
	return RHS_OK;
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
	if (!slot_ok(s, a->slot))
		return RHS_EINVAL;
	uint8_t old[TERM_LEN], new_term[TERM_LEN];
	const uint8_t *had;
	int rc = before_write(s, 't', a->slot, 0, old, &had);
	if (rc < 0)
		return rc;
	rhs_row_view_t row = {.table = 't', .slot = a->slot};
	rc = seal_row(s, &row, a->record, a->len, new_term);
	if (rc < 0)
		return rc;
	rc = s->ops->row_put(s->be, &row, 1);
	free((void *)row.sealed);
	if (rc == RHS_OK)
		rc = state_swap(s, 't', a->slot, 0, had, new_term);
	return rc < 0 ? rc : row_written(s, 't', a->slot, 0, new_term);
}

int rhs_token_put(rhs_store_t *s, uint32_t slot, const uint8_t *record,
		  size_t len)
{
	token_put_t a = {slot, record, len};
	return in_transaction(s, do_token_put, &a);
}

typedef struct row_open {
	rhs_store_t *s;
	uint8_t **record;
	size_t *len;
} row_open_t;

/* A row read, checked against what this process knows of it, and
 * opened. */
static int open_row(void *ctx, const rhs_row_view_t *row)
{
	row_open_t *a = ctx;
	uint32_t slot = (uint32_t)row->slot;
	if (a->s->rows_on) {
		uint8_t term[TERM_LEN];
		row_term(a->s, row, term);
		if (row_agrees(a->s, row->table, slot, row->id, term) < 0)
			return RHS_ECHANGED;
	}
	return unseal_blob(a->s, make_aad(row->table, slot, row->id),
			   row->sealed, row->sealed_len, a->record, a->len);
}

typedef struct row_read {
	char table;
	uint32_t slot;
	uint64_t id;
	row_open_t open;
} row_read_t;

static int read_row(rhs_store_t *s, void *arg)
{
	row_read_t *a = arg;
	int rc = s->ops->row_get(s->be, a->table, a->slot, a->id, open_row,
				 &a->open);
	if (rc == RHS_ENOTFOUND &&
	    row_agrees(s, a->table, a->slot, a->id, NULL) < 0)
		rc = RHS_ECHANGED;
	return rc;
}

/* What a reader session read of a row, kept past the backend's call. */
typedef struct read_copy {
	rhs_store_t *s;
	uint8_t *sealed;
	size_t len;
	uint8_t term[TERM_LEN];
} read_copy_t;

static int copy_out(void *ctx, const rhs_row_view_t *row)
{
	read_copy_t *c = ctx;
	row_term(c->s, row, c->term);
	c->sealed = malloc(row->sealed_len ? row->sealed_len : 1);
	if (!c->sealed)
		return RHS_ENOMEM;
	memcpy(c->sealed, row->sealed, row->sealed_len);
	c->len = row->sealed_len;
	return RHS_OK;
}

/* Not settled beside the writer: read again on the writer's session. */
#define UNSETTLED 1

/* The row read on a reader session, outside the store's lock, and then
 * checked under it against what this process knows: a write of its own
 * or another's committed meanwhile, and it is UNSETTLED. */
static int get_beside(rhs_store_t *s, row_read_t *a)
{
	read_copy_t c = {.s = s};
	unsigned k = reader_take(s);
	int rc = s->ops->row_get(s->readers[k], a->table, a->slot, a->id,
				 copy_out, &c);
	pthread_mutex_unlock(&s->reader_locks[k]);
	if (rc < 0 && rc != RHS_ENOTFOUND) {
		free(c.sealed);
		return UNSETTLED; /* the writer's session says why */
	}
	pthread_mutex_lock(&s->lock);
	int settled = !s->resync &&
		      row_agrees(s, a->table, a->slot, a->id,
				 rc == RHS_OK ? c.term : NULL) == RHS_OK;
	pthread_mutex_unlock(&s->lock);
	if (settled && rc == RHS_OK)
		rc = unseal_blob(s, make_aad(a->table, a->slot, a->id),
				 c.sealed, c.len, a->open.record, a->open.len);
	free(c.sealed);
	return settled ? rc : UNSETTLED;
}

/* A row not as this process knows it may, in a shared store, be another
 * process's write: read again once that is learnt. A transaction of this
 * thread already holds the store (and, shared, the state row). */
static int get_sealed(rhs_store_t *s, char table, uint32_t slot, uint64_t id,
		      uint8_t **record, size_t *len)
{
	row_read_t a = {table, slot, id, {s, record, len}};
	int own = txn_of_this_thread == s;
	if (!own && s->n_readers) {
		int rc = get_beside(s, &a);
		if (rc != UNSETTLED)
			return rc;
	}
	if (!own)
		pthread_mutex_lock(&s->lock);
	int rc = own ? RHS_OK : resync(s);
	if (rc == RHS_OK)
		rc = read_row(s, &a);
	if (rc == RHS_ECHANGED && s->shared && !own)
		rc = with_state_locked(s, read_row, &a);
	noted(s, rc);
	if (!own)
		pthread_mutex_unlock(&s->lock);
	return rc;
}

int rhs_token_get(rhs_store_t *s, uint32_t slot, uint8_t **record, size_t *len)
{
	return get_sealed(s, 't', slot, 0, record, len);
}

static int do_token_wipe(rhs_store_t *s, void *arg)
{
	uint32_t slot = *(uint32_t *)arg;
	if (!slot_ok(s, slot))
		return RHS_EINVAL;
	int rc = s->ops->token_delete(s->be, slot);
	if (rc < 0 || s->schema < 3)
		return rc;
	/* The token has no rows left: its sum goes back to nothing. */
	uint8_t all[TERM_LEN];
	memcpy(all, s->state.rows[slot], TERM_LEN);
	rc = state_swap(s, 'w', slot, 0, all, NULL);
	return rc < 0 || !s->rows_on ? rc : rhs_rows_wipe(&s->rows, slot);
}

int rhs_token_wipe(rhs_store_t *s, uint32_t slot)
{
	return in_transaction(s, do_token_wipe, &slot);
}

/* --- objects
 * -------------------------------------------------------------------- */

/* A keyed hash of (token, index kind, value): equal values of one token
 * match, and nothing about the value shows in the database. Failure
 * leaves a zero hash, which matches nothing stored. */
static void index_hash(rhs_store_t *s, uint32_t slot, int kind,
		       const uint8_t *value, size_t len,
		       uint8_t out[INDEX_HASH_LEN])
{
	uint8_t prefix[5] = {(uint8_t)kind, (uint8_t)(slot >> 24),
			     (uint8_t)(slot >> 16), (uint8_t)(slot >> 8),
			     (uint8_t)slot};
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(s->index_mac);
	size_t out_len = 0;
	memset(out, 0, INDEX_HASH_LEN);
	if (ctx && EVP_MAC_update(ctx, prefix, sizeof(prefix)) == 1 &&
	    EVP_MAC_update(ctx, value, len) == 1)
		EVP_MAC_final(ctx, out, &out_len, INDEX_HASH_LEN);
	EVP_MAC_CTX_free(ctx);
}

/* The index hashes of index into row (absent values stay NULL). */
static void hash_index(rhs_store_t *s, uint32_t slot, const rhs_index_t *index,
		       uint8_t hashes[RHS_IX_COUNT][INDEX_HASH_LEN],
		       rhs_row_view_t *row)
{
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		row->ix[k] = NULL;
		row->ix_len[k] = 0;
		if (!index || !index->value[k])
			continue;
		index_hash(s, slot, k, index->value[k], index->len[k],
			   hashes[k]);
		row->ix[k] = hashes[k];
		row->ix_len[k] = INDEX_HASH_LEN;
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

/* A new object's id: from the sealed state, so that no id is used twice
 * (a deleted row's old copy cannot come back under it). */
static int new_object_id(rhs_store_t *s, uint32_t slot, uint64_t *id)
{
	if (s->schema >= 3) {
		*id = s->state.next_object_id++;
		return RHS_OK;
	}
	int rc = s->ops->max_object_id(s->be, slot, id);
	*id += 1;
	return rc;
}

static int do_object_put(rhs_store_t *s, void *arg)
{
	object_put_t *a = arg;
	if (!slot_ok(s, a->slot))
		return RHS_EINVAL;
	uint8_t old[TERM_LEN], new_term[TERM_LEN];
	const uint8_t *had = NULL;
	if (a->create && new_object_id(s, a->slot, &a->id) < 0)
		return RHS_EIO;
	if (!a->create) {
		int rc = before_write(s, 'o', a->slot, a->id, old, &had);
		if (rc < 0)
			return rc;
		if (!had)
			return RHS_ENOTFOUND;
	}
	uint8_t hashes[RHS_IX_COUNT][INDEX_HASH_LEN];
	rhs_row_view_t row = {.table = 'o', .slot = a->slot, .id = a->id};
	hash_index(s, a->slot, a->index, hashes, &row);
	int rc = seal_row(s, &row, a->record, a->len, new_term);
	if (rc < 0)
		return rc;
	rc = s->ops->row_put(s->be, &row, a->create);
	free((void *)row.sealed);
	if (rc == RHS_OK)
		rc = state_swap(s, 'o', a->slot, a->id, had, new_term);
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
	return get_sealed(s, 'o', slot, id, record, len);
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
	const uint8_t *had = NULL;
	if (s->schema >= 3) {
		int rc = before_write(s, 'o', a->slot, a->id, old, &had);
		if (rc < 0)
			return rc;
		if (!had)
			return RHS_ENOTFOUND;
	}
	int rc = s->ops->object_delete(s->be, a->slot, a->id);
	if (rc == RHS_OK)
		rc = state_swap(s, 'o', a->slot, a->id, had, NULL);
	return rc < 0 ? rc : row_written(s, 'o', a->slot, a->id, NULL);
}

int rhs_object_delete(rhs_store_t *s, uint32_t slot, uint64_t id)
{
	object_del_t a = {slot, id};
	return in_transaction(s, do_object_delete, &a);
}

/* A find sees only the rows that match: a row deleted or added behind
 * this process's back shows in the token's count of rows instead.
 * Counting them walks every row of the token, so they are counted again
 * only once another process has committed: a find stays as cheap as its
 * index. */
static int rows_added_or_removed(rhs_store_t *s, uint32_t slot)
{
	if (!s->rows_on || slot >= RHS_MAX_TOKENS)
		return 0;
	/* Shared: the others' writes are learnt, and move the counter. */
	int64_t version = s->shared ? (int64_t)s->state.counter
				    : s->ops->foreign_version(s->be);
	if (version && s->counted_at[slot] == version)
		return 0;
	uint64_t n = 0;
	int differs = s->ops->object_count(s->be, slot, &n) < 0 ||
		      n != s->rows.objects[slot];
	s->counted_at[slot] = differs ? 0 : version;
	return differs;
}

typedef struct find_args {
	uint32_t slot;
	const rhs_row_view_t *want;
	uint64_t **ids;
	size_t *count;
} find_args_t;

static int find_rows(rhs_store_t *s, void *arg)
{
	find_args_t *a = arg;
	int rc = s->ops->find(s->be, a->slot, a->want, a->ids, a->count);
	if (rc == RHS_OK && rows_added_or_removed(s, a->slot)) {
		free(*a->ids);
		*a->ids = NULL;
		rc = RHS_ECHANGED;
	}
	return rc;
}

/* The find on a reader session, outside the store's lock; the token's
 * count of rows then checked under it. */
static int find_beside(rhs_store_t *s, find_args_t *a)
{
	unsigned k = reader_take(s);
	int rc =
		s->ops->find(s->readers[k], a->slot, a->want, a->ids, a->count);
	pthread_mutex_unlock(&s->reader_locks[k]);
	if (rc < 0)
		return UNSETTLED;
	pthread_mutex_lock(&s->lock);
	int settled = !s->resync && !rows_added_or_removed(s, a->slot);
	pthread_mutex_unlock(&s->lock);
	if (!settled) {
		free(*a->ids);
		*a->ids = NULL;
	}
	return settled ? RHS_OK : UNSETTLED;
}

int rhs_object_find(rhs_store_t *s, uint32_t slot, const rhs_index_t *match,
		    uint64_t **ids, size_t *count)
{
	uint8_t hashes[RHS_IX_COUNT][INDEX_HASH_LEN];
	rhs_row_view_t want = {.table = 'o', .slot = slot};
	find_args_t a = {slot, &want, ids, count};
	pthread_mutex_lock(&s->lock);
	hash_index(s, slot, match, hashes, &want);
	if (s->n_readers) {
		pthread_mutex_unlock(&s->lock);
		if (find_beside(s, &a) == RHS_OK)
			return RHS_OK;
		pthread_mutex_lock(&s->lock);
	}
	int rc = resync(s);
	if (rc == RHS_OK)
		rc = find_rows(s, &a);
	if (rc == RHS_ECHANGED && s->shared)
		rc = with_state_locked(s, find_rows, &a);
	noted(s, rc);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void rhs_on_foreign_change(rhs_store_t *s, rhs_foreign_fn fn, void *ctx)
{
	pthread_mutex_lock(&s->lock);
	s->foreign = fn;
	s->foreign_ctx = ctx;
	pthread_mutex_unlock(&s->lock);
}

int rhs_sync(rhs_store_t *s)
{
	if (!s->shared)
		return RHS_OK;
	pthread_mutex_lock(&s->lock);
	int rc = resync(s);
	if (rc == RHS_OK)
		rc = learn_now(s);
	noted(s, rc);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* --- copying a store -------------------------------------------------------
 */

typedef struct copy_ctx {
	rhs_store_t *from, *to;
	rhs_copy_tally_t *tally;
	const rhs_row_view_t *want; /* verifying: the source row */
	int same;		    /* verifying: the copy matches */
	char *err;
	size_t err_len;
} copy_ctx_t;

/* A source row opens under its key and is as the source verified it. */
static int row_opens(copy_ctx_t *c, const rhs_row_view_t *row)
{
	uint32_t slot = (uint32_t)row->slot;
	uint8_t term[TERM_LEN], *plain = NULL;
	size_t len = 0;
	row_term(c->from, row, term);
	int rc = row_agrees(c->from, row->table, slot, row->id, term);
	if (rc == RHS_OK)
		rc = unseal_blob(c->from, make_aad(row->table, slot, row->id),
				 row->sealed, row->sealed_len, &plain, &len);
	rhs_free(plain, len);
	if (rc < 0)
		snprintf(c->err, c->err_len, "%s: row %s/%u/%llu: %s",
			 c->from->path,
			 row->table == 't' ? "tokens" : "objects", slot,
			 (unsigned long long)row->id, rhs_strerror(rc));
	return rc;
}

/* One source row into the destination, as it is: its sealed bytes and
 * index hashes bind table, token and id, which stay the same. */
static int copy_row(void *ctx, const rhs_row_view_t *row)
{
	copy_ctx_t *c = ctx;
	if (row->slot < 0 || row->slot >= RHS_MAX_TOKENS)
		return RHS_ECORRUPT; /* verify_rows marked its token */
	int rc = row_opens(c, row);
	if (rc == RHS_OK)
		rc = c->to->ops->row_put(c->to->be, row, 1);
	if (rc < 0)
		return rc;
	uint8_t term[TERM_LEN];
	row_term(c->to, row, term);
	xor_into(c->to->state.rows[row->slot], term);
	if (c->to->rows_on)
		rc = rhs_rows_set(
			&c->to->rows,
			rhs_row_key(row->table, (uint32_t)row->slot, row->id),
			term);
	if (row->table == 't')
		c->tally->tokens++;
	else
		c->tally->objects++;
	return rc;
}

static int same_row(void *ctx, const rhs_row_view_t *got)
{
	copy_ctx_t *c = ctx;
	const rhs_row_view_t *want = c->want;
	int same = got->sealed_len == want->sealed_len &&
		   !memcmp(got->sealed, want->sealed, want->sealed_len);
	for (int k = 0; got->table == 'o' && k < RHS_IX_COUNT; k++)
		same = same && got->ix_len[k] == want->ix_len[k] &&
		       (!want->ix_len[k] ||
			!memcmp(got->ix[k], want->ix[k], want->ix_len[k]));
	c->same = same;
	return RHS_OK;
}

/* The destination's row is the source's, byte for byte, and opens. */
static int verify_copy(void *ctx, const rhs_row_view_t *row)
{
	copy_ctx_t *c = ctx;
	c->want = row;
	c->same = 0;
	uint32_t slot = (uint32_t)row->slot;
	int rc = c->to->ops->row_get(c->to->be, row->table, slot, row->id,
				     same_row, c);
	uint8_t *plain = NULL;
	size_t len = 0;
	if (rc == RHS_OK && c->same)
		rc = unseal_blob(c->to, make_aad(row->table, slot, row->id),
				 row->sealed, row->sealed_len, &plain, &len);
	else if (rc == RHS_OK)
		rc = RHS_ECORRUPT;
	rhs_free(plain, len);
	if (rc < 0)
		snprintf(c->err, c->err_len,
			 "%s: row %s/%u/%llu differs from the source's: %s",
			 c->to->path, row->table == 't' ? "tokens" : "objects",
			 slot, (unsigned long long)row->id, rhs_strerror(rc));
	return rc;
}

static int count_row(void *ctx, const rhs_row_view_t *row)
{
	(void)row;
	(*(uint64_t *)ctx)++;
	return RHS_OK;
}

/* What a copy may start from: one key, a source whose tokens all add
 * up, an empty destination. */
static int copy_allowed(copy_ctx_t *c)
{
	uint64_t rows = 0;
	int rc = RHS_OK;
	if (CRYPTO_memcmp(c->from->seal_key, c->to->seal_key, RHS_KEY_LEN)) {
		snprintf(c->err, c->err_len,
			 "%s and %s are not opened with one store key",
			 c->from->path, c->to->path);
		return RHS_EKEY;
	}
	for (unsigned t = 0; t < RHS_MAX_TOKENS && rc == RHS_OK; t++)
		if (c->from->damaged >> t & 1) {
			snprintf(c->err, c->err_len,
				 "%s: token %u's rows do not add up: "
				 "run remhsm store check",
				 c->from->path, t);
			rc = RHS_ECORRUPT;
		}
	if (rc == RHS_OK)
		rc = c->to->ops->rows_each(c->to->be, count_row, &rows);
	if (rc == RHS_OK && rows > 0) {
		snprintf(c->err, c->err_len,
			 "%s is not empty (%llu rows): copy into a new store",
			 c->to->path, (unsigned long long)rows);
		rc = RHS_EINVAL;
	}
	return rc;
}

static int copy_rows(copy_ctx_t *c)
{
	rhs_store_t *from = c->from, *to = c->to;
	int rc = from->ops->rows_each(from->be, copy_row, c);
	if (rc < 0)
		return rc;
	/* Ids are never used twice, and the destination's write counter
	 * is past the source's (the audit log's anchor holds for it). */
	if (to->state.next_object_id < from->state.next_object_id)
		to->state.next_object_id = from->state.next_object_id;
	if (to->state.counter <= from->state.counter)
		to->state.counter = from->state.counter;
	to->state.counter++;
	return state_save(to);
}

int rhs_copy(rhs_store_t *from, rhs_store_t *to, rhs_copy_tally_t *tally,
	     char *err, size_t err_len)
{
	copy_ctx_t c = {from, to, tally, NULL, 0, err, err_len};
	memset(tally, 0, sizeof(*tally));
	err[0] = '\0';
	if (from->schema < 3 || to->schema < 3)
		return RHS_EINVAL; /* both are opened at the current schema */
	pthread_mutex_lock(&from->lock);
	int rc = copy_allowed(&c);
	if (rc == RHS_OK)
		rc = rhs_begin(to);
	if (rc == RHS_OK) {
		rc = copy_rows(&c);
		if (rc < 0)
			rhs_rollback(to);
		else
			rc = rhs_commit(to);
	}
	pthread_mutex_lock(&to->lock);
	if (rc == RHS_OK)
		rc = from->ops->rows_each(from->be, verify_copy, &c);
	pthread_mutex_unlock(&to->lock);
	pthread_mutex_unlock(&from->lock);
	if (rc < 0 && !err[0])
		snprintf(err, err_len, "%s", rhs_strerror(rc));
	return rc;
}
