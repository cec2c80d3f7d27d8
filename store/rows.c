#include "rows.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

uint64_t rhs_row_key(char table, uint32_t slot, uint64_t id)
{
	/* Ids fit in 48 bits (one per write, at most), slots in 8. */
	return (uint64_t)(uint8_t)table << 56 | (uint64_t)(slot & 0xff) << 48 |
	       (id & 0xffffffffffffu);
}

static int key_slot(uint64_t key)
{
	return (int)(key >> 48 & 0xff);
}

static int is_object(uint64_t key)
{
	return (key >> 56) == (uint64_t)'o';
}

/* Linear probing; keys are never removed, so no tombstones are needed. */
static rhs_row_t *place_of(const rhs_rows_t *r, uint64_t key)
{
	if (!r->cap)
		return NULL;
	size_t mask = r->cap - 1;
	/* Fibonacci hashing spreads consecutive ids. */
	size_t i = (size_t)((key * 0x9E3779B97F4A7C15u) >> 20) & mask;
	while (r->table[i].key && r->table[i].key != key)
		i = (i + 1) & mask;
	return &r->table[i];
}

static int grow(rhs_rows_t *r)
{
	size_t cap = r->cap ? r->cap * 2 : 256;
	rhs_rows_t bigger = *r;
	bigger.table = calloc(cap, sizeof(*bigger.table));
	if (!bigger.table)
		return RHS_ENOMEM;
	bigger.cap = cap;
	for (size_t i = 0; i < r->cap; i++)
		if (r->table[i].key)
			*place_of(&bigger, r->table[i].key) = r->table[i];
	free(r->table);
	r->table = bigger.table;
	r->cap = cap;
	return RHS_OK;
}

/* Puts row in its place, keeping the per-token count of objects. */
static void put(rhs_rows_t *r, rhs_row_t *at, const rhs_row_t *row)
{
	if (is_object(row->key)) {
		unsigned *n = &r->objects[key_slot(row->key)];
		*n -= at->key && at->state == RHS_ROW_PRESENT;
		*n += row->state == RHS_ROW_PRESENT;
	}
	if (!at->key)
		r->used++;
	*at = *row;
}

static int log_undo(rhs_rows_t *r, uint64_t key, const rhs_row_t *was)
{
	if (!r->in_txn)
		return RHS_OK;
	if (r->n_undo == r->cap_undo) {
		size_t cap = r->cap_undo ? r->cap_undo * 2 : 16;
		rhs_row_t *grown = realloc(r->undo, cap * sizeof(*grown));
		if (!grown)
			return RHS_ENOMEM;
		r->undo = grown;
		r->cap_undo = cap;
	}
	rhs_row_t before = {key, RHS_ROW_UNKNOWN, {0}};
	if (was->key)
		before = *was;
	r->undo[r->n_undo++] = before;
	return RHS_OK;
}

int rhs_rows_set(rhs_rows_t *r, uint64_t key, const uint8_t *term)
{
	if ((r->used + 1) * 2 > r->cap && grow(r) < 0)
		return RHS_ENOMEM;
	rhs_row_t *at = place_of(r, key);
	if (log_undo(r, key, at) < 0)
		return RHS_ENOMEM;
	rhs_row_t row = {key, term ? RHS_ROW_PRESENT : RHS_ROW_DELETED, {0}};
	if (term)
		memcpy(row.term, term, RHS_TERM_LEN);
	put(r, at, &row);
	return RHS_OK;
}

int rhs_rows_wipe(rhs_rows_t *r, uint32_t slot)
{
	for (size_t i = 0; i < r->cap; i++) {
		rhs_row_t *at = &r->table[i];
		if (!at->key || key_slot(at->key) != (int)(slot & 0xff) ||
		    at->state != RHS_ROW_PRESENT)
			continue;
		if (log_undo(r, at->key, at) < 0)
			return RHS_ENOMEM;
		rhs_row_t row = {at->key, RHS_ROW_DELETED, {0}};
		put(r, at, &row);
	}
	return RHS_OK;
}

int rhs_rows_agree(const rhs_rows_t *r, uint64_t key, const uint8_t *term)
{
	const rhs_row_t *at = place_of(r, key);
	int present = at && at->key && at->state == RHS_ROW_PRESENT;
	if (!term)
		return present ? RHS_ECHANGED : RHS_OK;
	return present && CRYPTO_memcmp(at->term, term, RHS_TERM_LEN) == 0
		       ? RHS_OK
		       : RHS_ECHANGED;
}

int rhs_rows_term(const rhs_rows_t *r, uint64_t key, uint8_t term[RHS_TERM_LEN])
{
	const rhs_row_t *at = place_of(r, key);
	if (!at || !at->key || at->state != RHS_ROW_PRESENT)
		return 0;
	memcpy(term, at->term, RHS_TERM_LEN);
	return 1;
}

void rhs_rows_begin(rhs_rows_t *r)
{
	r->in_txn = 1;
	r->n_undo = 0;
}

void rhs_rows_commit(rhs_rows_t *r)
{
	r->in_txn = 0;
	r->n_undo = 0;
}

/* Each row back as it was, newest change first. A row first seen in the
 * transaction goes back to unknown; its place in the table stays. */
void rhs_rows_rollback(rhs_rows_t *r)
{
	while (r->n_undo > 0) {
		const rhs_row_t *before = &r->undo[--r->n_undo];
		put(r, place_of(r, before->key), before);
	}
	r->in_txn = 0;
}

void rhs_rows_free(rhs_rows_t *r)
{
	free(r->table);
	free(r->undo);
	memset(r, 0, sizeof(*r));
}
