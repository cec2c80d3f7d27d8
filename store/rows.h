/*
 * What this process knows each row of the store to be: the keyed term of
 * every row as it last wrote or verified it. A row that reads otherwise
 * was changed by someone else since (put back from an older copy, edited,
 * deleted, or added), which the store reports instead of using it. Guarded
 * by the store's lock; a transaction's changes are undone with it.
 */
#ifndef RHS_ROWS_H
#define RHS_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "rhs.h"

#define RHS_TERM_LEN 32

typedef enum {
	RHS_ROW_UNKNOWN = 0, /* never written or seen */
	RHS_ROW_PRESENT,
	RHS_ROW_DELETED
} rhs_row_state_t;

typedef struct rhs_row {
	uint64_t key; /* 0: a free place in the table */
	uint8_t state;
	uint8_t term[RHS_TERM_LEN];
} rhs_row_t;

typedef struct rhs_rows {
	rhs_row_t *table;
	size_t cap, used;
	/* Undo log of the open transaction: each row as it was before. */
	rhs_row_t *undo;
	size_t n_undo, cap_undo;
	int in_txn;
	/* Object rows present, per token. */
	unsigned objects[RHS_MAX_TOKENS];
} rhs_rows_t;

/* The key of a row: table 't' (slot's token row) or 'o' (object id). */
uint64_t rhs_row_key(char table, uint32_t slot, uint64_t id);

/* Records what a row now is: term, or NULL when it was deleted. */
int rhs_rows_set(rhs_rows_t *r, uint64_t key, const uint8_t *term);
/* Marks every row of token slot deleted (the token was wiped). */
int rhs_rows_wipe(rhs_rows_t *r, uint32_t slot);
/* RHS_OK when a row read as term (NULL: no such row) is what this process
 * knows it to be, else RHS_ECHANGED. */
int rhs_rows_agree(const rhs_rows_t *r, uint64_t key, const uint8_t *term);
/* 1 and the row's term in term when this process knows the row present,
 * else 0. */
int rhs_rows_term(const rhs_rows_t *r, uint64_t key,
		  uint8_t term[RHS_TERM_LEN]);

void rhs_rows_begin(rhs_rows_t *r);
void rhs_rows_commit(rhs_rows_t *r);
void rhs_rows_rollback(rhs_rows_t *r);
void rhs_rows_free(rhs_rows_t *r);

#endif
