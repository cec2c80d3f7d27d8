/* An engine over a fresh store in a temporary folder, for in-process tests
 * and the fuzzer. The KDF is cheap; policy is the daemon's default. Under
 * tests/support/with_postgres.sh (REMHSM_TEST_PG set) the store is a fresh
 * PostgreSQL database of its own instead, the key still in the folder. */
#ifndef TH_ENGINE_SUPPORT_H
#define TH_ENGINE_SUPPORT_H

#include "engine.h"
#include "frontend.h"
#include "rhs.h"

typedef struct th_store {
	char dir[64];
	char path[128]; /* SQLite: the store file */
	char db[64];	/* PostgreSQL: the database's name ("" for SQLite) */
	char location[640];
	uint8_t key[RHS_KEY_LEN];
	rhs_store_t *store;
} th_store_t;

void th_store_open(th_store_t *s);
void th_store_cleanup(th_store_t *s);
/* SQL run on the store's database behind its back, as an attacker with
 * write access would: sqlite's text for SQLite, pg's for PostgreSQL.
 * 0, or -1 when it failed. */
int th_store_sql(const th_store_t *s, const char *sqlite, const char *pg);
/* 1 when the bytes are anywhere in what the database holds: SQLite's
 * files (and its journal), or PostgreSQL's rows. */
int th_store_holds(const th_store_t *s, const void *bytes, size_t len);
int th_engine_init(rhd_engine_t *engine, th_store_t *s, unsigned slots);

/* A frontend port's called: nothing to count. */
void th_front_called(void *ctx, const Remhsm__Request *req, uint64_t rv,
		     uint64_t started_ns);

#endif
