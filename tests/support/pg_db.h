/*
 * A database of a test's own on the PostgreSQL server that
 * tests/support/with_postgres.sh started (named in REMHSM_TEST_PG).
 */
#ifndef TH_PG_DB_H
#define TH_PG_DB_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct th_pg_db {
	PGconn *admin; /* the server's superuser, on the database postgres */
	char name[64];
	char location[512]; /* a libpq URI of the test's database */
} th_pg_db_t;

/* Creates database PREFIX_PID (a Check failure when it cannot). */
void th_pg_db_create(th_pg_db_t *db, const char *prefix);
/* Drops it, sessions on it or not. */
void th_pg_db_drop(th_pg_db_t *db);
/* Runs text on c, which must succeed. */
void th_pg_sql(PGconn *c, const char *text);

#endif
