#include "pg_db.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void th_pg_sql(PGconn *c, const char *text)
{
	PGresult *r = PQexec(c, text);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK ||
			      PQresultStatus(r) == PGRES_TUPLES_OK,
		      "%s: %s", text, PQresultErrorMessage(r));
	PQclear(r);
}

void th_pg_db_create(th_pg_db_t *db, const char *prefix)
{
	const char *base = getenv("REMHSM_TEST_PG");
	ck_assert_msg(base != NULL, "run under tests/support/with_postgres.sh");
	db->admin = PQconnectdb(base);
	ck_assert_int_eq(PQstatus(db->admin), CONNECTION_OK);
	PQsetNoticeProcessor(db->admin, NULL, NULL);
	snprintf(db->name, sizeof(db->name), "%s_%d", prefix, (int)getpid());
	char text[128];
	snprintf(text, sizeof(text), "CREATE DATABASE %s", db->name);
	th_pg_sql(db->admin, text);
	const char *slash = strrchr(base, '/');
	snprintf(db->location, sizeof(db->location), "%.*s/%s",
		 (int)(slash - base), base, db->name);
}

void th_pg_db_drop(th_pg_db_t *db)
{
	char text[128];
	snprintf(text, sizeof(text), "DROP DATABASE %s WITH (FORCE)", db->name);
	th_pg_sql(db->admin, text);
	PQfinish(db->admin);
	db->admin = NULL;
}
