#include "engine_support.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The server's database postgres, as with_postgres.sh names it. */
static PGconn *pg_admin(void)
{
	PGconn *c = PQconnectdb(getenv("REMHSM_TEST_PG"));
	if (PQstatus(c) != CONNECTION_OK)
		abort();
	PQsetNoticeProcessor(c, NULL, NULL);
	return c;
}

static int pg_run(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
		 PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* A database of this store's own, and its location. */
static void pg_create(th_store_t *s)
{
	static unsigned serial;
	const char *base = getenv("REMHSM_TEST_PG");
	snprintf(s->db, sizeof(s->db), "remhsm_engine_%d_%u", (int)getpid(),
		 serial++);
	char sql[128];
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", s->db);
	PGconn *c = pg_admin();
	if (pg_run(c, sql) < 0)
		abort();
	PQfinish(c);
	const char *slash = strrchr(base, '/');
	snprintf(s->location, sizeof(s->location), "%.*s/%s",
		 (int)(slash - base), base, s->db);
}

void th_store_open(th_store_t *s)
{
	char err[512];
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/remhsm-engine-XXXXXX");
	if (!mkdtemp(s->dir) ||
	    rhs_key_load(s->dir, s->key, err, sizeof(err)) < 0)
		abort();
	snprintf(s->path, sizeof(s->path), "%s/store.db", s->dir);
	snprintf(s->location, sizeof(s->location), "%s", s->path);
	if (getenv("REMHSM_TEST_PG"))
		pg_create(s);
	if (rhs_open(s->location, s->key, NULL, &s->store, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
}

void th_store_cleanup(th_store_t *s)
{
	rhs_close(s->store);
	s->store = NULL;
	if (s->db[0]) {
		char sql[128];
		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)",
			 s->db);
		PGconn *c = pg_admin();
		(void)pg_run(c, sql);
		PQfinish(c);
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", s->dir);
}

int th_store_sql(const th_store_t *s, const char *sqlite, const char *pg)
{
	if (s->db[0]) {
		PGconn *c = PQconnectdb(s->location);
		int rc = PQstatus(c) == CONNECTION_OK ? pg_run(c, pg) : -1;
		PQfinish(c);
		return rc;
	}
	sqlite3 *db;
	int rc = sqlite3_open(s->path, &db) == SQLITE_OK &&
				 sqlite3_exec(db, sqlite, NULL, NULL, NULL) ==
					 SQLITE_OK
			 ? 0
			 : -1;
	sqlite3_close(db);
	return rc;
}

static int file_holds(const char *path, const void *bytes, size_t len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	rewind(f);
	unsigned char *buf = size > 0 ? malloc((size_t)size) : NULL;
	int found = 0;
	if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size)
		for (long i = 0; !found && i + (long)len <= size; i++)
			found = !memcmp(buf + i, bytes, len);
	free(buf);
	fclose(f);
	return found;
}

/* Every value PostgreSQL holds for the store, searched for the bytes. */
static int pg_holds(const th_store_t *s, const void *bytes, size_t len)
{
	PGconn *c = PQconnectdb(s->location);
	const char *values[] = {bytes};
	int lengths[] = {(int)len}, formats[] = {1};
	PGresult *r = PQexecParams(
		c,
		"SELECT count(*) FROM (SELECT record AS v FROM remhsm_tokens "
		"UNION ALL SELECT record FROM remhsm_objects UNION ALL SELECT "
		"value FROM remhsm_meta UNION ALL SELECT ix_label FROM "
		"remhsm_objects UNION ALL SELECT ix_id FROM remhsm_objects) "
		"AS vals WHERE position($1::bytea IN v) > 0",
		1, NULL, values, lengths, formats, 0);
	int found = PQresultStatus(r) != PGRES_TUPLES_OK ||
		    strcmp(PQgetvalue(r, 0, 0), "0") != 0;
	PQclear(r);
	PQfinish(c);
	return found;
}

int th_store_holds(const th_store_t *s, const void *bytes, size_t len)
{
	if (s->db[0])
		return pg_holds(s, bytes, len);
	const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < 4; i++) {
		char path[160];
		snprintf(path, sizeof(path), "%s%s", s->path, suffixes[i]);
		if (file_holds(path, bytes, len))
			return 1;
	}
	return 0;
}

int th_engine_init(rhd_engine_t *engine, th_store_t *s, unsigned slots)
{
	rhd_engine_opts_t opts = {
		.slots = slots,
		.store = s->store,
		.policy = {.kdf_n = 16,
			   .kdf_r = 8,
			   .kdf_p = 1,
			   .max_failures = 10},
	};
	return rhd_engine_init(engine, &opts);
}

void th_front_called(void *ctx, const Remhsm__Request *req, uint64_t rv,
		     uint64_t started_ns)
{
	(void)ctx;
	(void)req;
	(void)rv;
	(void)started_ns;
}
