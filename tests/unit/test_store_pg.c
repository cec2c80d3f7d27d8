/* The store on its PostgreSQL backend, against a real server
 * (tests/support/with_postgres.sh starts one and names it in
 * REMHSM_TEST_PG): what SQLite's store keeps, it keeps; a write the server
 * did not confirm is an error; a connection string's password is never
 * in a message. Each test has a database of its own. */
#include <check.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rhs.h"

static char dir[64], location[512], dbname[64];
static char err[1024];
static uint8_t key[RHS_KEY_LEN];
static rhs_store_t *store;
static PGconn *admin;  /* the server's superuser, on the database postgres */
static PGconn *behind; /* on the test's database, behind the store's back */

static PGconn *connect_to(const char *where)
{
	PGconn *c = PQconnectdb(where);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, NULL, NULL);
	return c;
}

/* Runs sql on c, which must succeed; the result for the caller. */
static PGresult *sql_on(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK ||
			      PQresultStatus(r) == PGRES_TUPLES_OK,
		      "%s: %s", sql, PQresultErrorMessage(r));
	return r;
}

static void sql(PGconn *c, const char *text)
{
	PQclear(sql_on(c, text));
}

/* The test's database's location: REMHSM_TEST_PG with its database. */
static void location_of(const char *db, char *out, size_t cap)
{
	const char *base = getenv("REMHSM_TEST_PG");
	const char *slash = strrchr(base, '/');
	snprintf(out, cap, "%.*s/%s", (int)(slash - base), base, db);
}

static void open_store(void)
{
	ck_assert_msg(rhs_open(location, key, NULL, &store, err, sizeof(err)) ==
			      RHS_OK,
		      "%s", err);
}

static void setup(void)
{
	ck_assert_msg(getenv("REMHSM_TEST_PG") != NULL,
		      "run under tests/support/with_postgres.sh");
	snprintf(dir, sizeof(dir), "/tmp/remhsm-store-pg-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(rhs_key_load(dir, key, err, sizeof(err)), RHS_OK);
	static unsigned serial;
	snprintf(dbname, sizeof(dbname), "remhsm_%d_%u", (int)getpid(),
		 serial++);
	admin = connect_to(getenv("REMHSM_TEST_PG"));
	char create[128];
	snprintf(create, sizeof(create), "CREATE DATABASE %s", dbname);
	sql(admin, create);
	location_of(dbname, location, sizeof(location));
	behind = connect_to(location);
	open_store();
}

static void teardown(void)
{
	rhs_close(store);
	store = NULL;
	PQfinish(behind);
	char drop[128];
	snprintf(drop, sizeof(drop), "DROP DATABASE %s WITH (FORCE)", dbname);
	sql(admin, drop);
	PQfinish(admin);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void reopen(void)
{
	rhs_close(store);
	store = NULL;
	open_store();
}

static rhs_index_t index_of(const char *cls, const char *id, const char *label)
{
	rhs_index_t ix = {{NULL}, {0}};
	const char *v[] = {cls, id, label};
	for (int k = 0; k < 3; k++) {
		ix.value[k] = (const uint8_t *)v[k];
		ix.len[k] = v[k] ? strlen(v[k]) : 0;
	}
	return ix;
}

static uint64_t create(uint32_t slot, const char *cls, const char *id,
		       const char *label, const char *record)
{
	rhs_index_t ix = index_of(cls, id, label);
	uint64_t oid = 0;
	ck_assert_msg(rhs_object_create(store, slot, &ix,
					(const uint8_t *)record, strlen(record),
					&oid) == RHS_OK,
		      "create");
	return oid;
}

static size_t find(uint32_t slot, const char *cls, const char *id,
		   const char *label, uint64_t first[4])
{
	rhs_index_t ix = index_of(cls, id, label);
	uint64_t *ids;
	size_t n;
	ck_assert_int_eq(rhs_object_find(store, slot, &ix, &ids, &n), RHS_OK);
	for (size_t i = 0; i < n && i < 4; i++)
		first[i] = ids[i];
	free(ids);
	return n;
}

static void assert_record(uint32_t slot, uint64_t id, const char *want)
{
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_object_get(store, slot, id, &rec, &len), RHS_OK);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_mem_eq(rec, want, len);
	rhs_free(rec, len);
}

static long count_rows(const char *query)
{
	PGresult *r = sql_on(behind, query);
	long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return n;
}

START_TEST(test_records_round_trip_and_survive_reopen)
{
	ck_assert_int_eq(rhs_token_put(store, 2, (const uint8_t *)"token", 5),
			 RHS_OK);
	uint64_t id = create(2, "key", "01", "Device Priv TLS Key", "k1");
	reopen();
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_token_get(store, 2, &rec, &len), RHS_OK);
	ck_assert_mem_eq(rec, "token", 5);
	rhs_free(rec, len);
	assert_record(2, id, "k1");
	ck_assert_int_eq(count_rows("SELECT version FROM remhsm_schema"),
			 RHS_SCHEMA_VERSION);
}
END_TEST

START_TEST(test_objects_are_found_updated_and_deleted)
{
	uint64_t key1 = create(0, "key", "01", "Device Priv TLS Key", "k1");
	uint64_t cert = create(0, "cert", "01", "Device Cert", "c1");
	uint64_t key2 = create(0, "key", "02", "Claim Key", "k2");
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, NULL, NULL, NULL, ids), 3);
	ck_assert_uint_eq(find(0, "key", NULL, NULL, ids), 2);
	ck_assert_uint_eq(ids[0], key1);
	ck_assert_uint_eq(ids[1], key2);
	ck_assert_uint_eq(find(0, "cert", "01", NULL, ids), 1);
	ck_assert_uint_eq(ids[0], cert);
	ck_assert_uint_eq(find(0, NULL, NULL, "Device Cer", ids), 0);
	ck_assert_uint_eq(find(1, "key", NULL, NULL, ids), 0);

	rhs_index_t ix = index_of("key", "01", "renamed");
	ck_assert_int_eq(rhs_object_update(store, 0, key1, &ix,
					   (const uint8_t *)"k1b", 3),
			 RHS_OK);
	ck_assert_uint_eq(find(0, NULL, NULL, "renamed", ids), 1);
	assert_record(0, key1, "k1b");
	ck_assert_int_eq(rhs_object_delete(store, 0, key1), RHS_OK);
	ck_assert_int_eq(rhs_object_delete(store, 0, key1), RHS_ENOTFOUND);
	ck_assert_int_eq(
		rhs_object_update(store, 0, key1, &ix, (const uint8_t *)"x", 1),
		RHS_ENOTFOUND);
	ck_assert_int_eq(rhs_token_put(store, 1, (const uint8_t *)"t1", 2),
			 RHS_OK);
	uint64_t other = create(1, "key", "01", "other token", "o1");
	ck_assert_int_eq(rhs_token_wipe(store, 0), RHS_OK);
	ck_assert_uint_eq(find(0, NULL, NULL, NULL, ids), 0);
	assert_record(1, other, "o1");
}
END_TEST

START_TEST(test_rollback_leaves_nothing)
{
	ck_assert_int_eq(rhs_begin(store), RHS_OK);
	create(0, "key", "01", "gone", "r");
	rhs_rollback(store);
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, NULL, NULL, NULL, ids), 0);
	ck_assert_int_eq(count_rows("SELECT COUNT(*) FROM remhsm_objects"), 0);
}
END_TEST

/* What reaches the database is sealed bytes and keyed hashes. */
START_TEST(test_database_holds_no_record_or_index_value)
{
	create(0, "key", "01", "Device Priv TLS Key", "PRIVATE-KEY-VALUE");
	const char *query =
		"SELECT position('Device Priv'::bytea IN ix_label) + "
		"position('Device Priv'::bytea IN record) + "
		"position('PRIVATE-KEY'::bytea IN record) FROM remhsm_objects";
	ck_assert_int_eq(count_rows(query), 0);
	ck_assert_int_eq(count_rows("SELECT COUNT(*) FROM remhsm_objects "
				    "WHERE ix_label IS NOT NULL"),
			 1);
}
END_TEST

/* A row put back as it was (its older sealed bytes) is damage, as on
 * SQLite: the sealed state binding the rows no longer sums to it. */
START_TEST(test_replayed_object_row_is_damage)
{
	uint64_t id = create(0, "key", "01", "k", "v1");
	sql(behind, "CREATE TABLE saved AS SELECT * FROM remhsm_objects");
	rhs_index_t ix = index_of("key", "01", "k");
	ck_assert_int_eq(
		rhs_object_update(store, 0, id, &ix, (const uint8_t *)"v2", 2),
		RHS_OK);
	rhs_close(store);
	store = NULL;
	sql(behind, "UPDATE remhsm_objects o SET record = s.record FROM saved "
		    "s WHERE o.id = s.id");
	open_store();
	ck_assert_int_eq(rhs_token_damaged(store, 0), 1);
}
END_TEST

START_TEST(test_a_second_writer_is_refused)
{
	rhs_store_t *second = NULL;
	ck_assert_int_eq(
		rhs_open(location, key, NULL, &second, err, sizeof(err)),
		RHS_EBUSY);
	ck_assert_ptr_null(second);
	ck_assert_ptr_nonnull(strstr(err, "in use by another remhsmd"));
	rhs_open_opts_t snap = {.snapshot = 1};
	ck_assert_msg(rhs_open(location, key, &snap, &second, err,
			       sizeof(err)) == RHS_OK,
		      "%s", err);
	rhs_close(second);
}
END_TEST

START_TEST(test_newer_schema_is_refused_not_clobbered)
{
	rhs_close(store);
	store = NULL;
	sql(behind, "UPDATE remhsm_schema SET version = 99");
	ck_assert_int_eq(
		rhs_open(location, key, NULL, &store, err, sizeof(err)),
		RHS_ENEWER);
	ck_assert_int_eq(count_rows("SELECT version FROM remhsm_schema"), 99);
}
END_TEST

/* A database sealed under another store key is refused with the reason,
 * and nothing in it changes. */
START_TEST(test_another_store_key_is_refused)
{
	create(0, "key", "01", "k", "v1");
	rhs_close(store);
	store = NULL;
	uint8_t other[RHS_KEY_LEN];
	memcpy(other, key, sizeof(other));
	other[0] ^= 1;
	ck_assert_int_eq(
		rhs_open(location, other, NULL, &store, err, sizeof(err)),
		RHS_EKEY);
	ck_assert_ptr_null(store);
	ck_assert_msg(strstr(err, "the store key does not open this store"),
		      "%s", err);
	ck_assert_int_eq(count_rows("SELECT count(*) FROM remhsm_objects"), 1);
	open_store();
	ck_assert_int_eq(rhs_token_damaged(store, 0), 0);
}
END_TEST

/* A wrong password and a port nobody serves: a clear error naming the
 * server, never the password, whichever way the location carries it. */
START_TEST(test_connection_errors_name_the_server_not_the_password)
{
	const char *base = getenv("REMHSM_TEST_PG");
	const char *at = strchr(base, '@');
	char wrong[512], settings[512], dead[64];
	snprintf(wrong, sizeof(wrong), "postgresql://remhsm:Wr0ngSecret%s", at);
	snprintf(settings, sizeof(settings),
		 "postgresql://remhsm@%.*s?password=Wr0ngSecret",
		 (int)strcspn(at + 1, "?"), at + 1);
	int port = 1;
	snprintf(dead, sizeof(dead),
		 "postgresql://u:Wr0ngSecret@127.0.0.1:%d/x", port);
	const char *locations[] = {wrong, settings, dead};
	for (size_t i = 0; i < 3; i++) {
		rhs_store_t *s = NULL;
		ck_assert_int_eq(
			rhs_open(locations[i], key, NULL, &s, err, sizeof(err)),
			RHS_EIO);
		ck_assert_ptr_null(s);
		ck_assert_msg(strstr(err, "postgresql store 127.0.0.1:") !=
				      NULL,
			      "%s", err);
		ck_assert_msg(strstr(err, "Wr0ngSecret") == NULL, "%s", err);
	}
	ck_assert_ptr_nonnull(strstr(err, "127.0.0.1:1/x"));
}
END_TEST

/* A row another process deletes shows at the next find: the count of
 * commits moved, the token's rows are counted again. */
START_TEST(test_another_writers_commit_is_seen_by_a_find)
{
	create(0, "key", "01", "a", "r1");
	create(0, "key", "02", "b", "r2");
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, "key", NULL, NULL, ids), 2);
	sql(behind, "BEGIN; DELETE FROM remhsm_objects WHERE id = (SELECT "
		    "MAX(id) FROM remhsm_objects); UPDATE remhsm_commits SET n "
		    "= n + 1; COMMIT");
	rhs_index_t ix = index_of("key", NULL, NULL);
	uint64_t *found = NULL;
	size_t n = 0;
	ck_assert_int_eq(rhs_object_find(store, 0, &ix, &found, &n),
			 RHS_ECHANGED);
	ck_assert_ptr_null(found);
}
END_TEST

static void terminate_store_sessions(void)
{
	char kill_sql[256];
	snprintf(kill_sql, sizeof(kill_sql),
		 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
		 "datname = '%s' AND pid <> pg_backend_pid()",
		 dbname);
	sql(behind, kill_sql);
}

/* The server ends the store's connection before COMMIT: the write is
 * an error and is not in the database; the next call connects again. */
START_TEST(test_a_connection_lost_before_commit_is_an_error)
{
	create(0, "key", "01", "kept", "r0");
	ck_assert_int_eq(rhs_begin(store), RHS_OK);
	rhs_index_t ix = index_of("key", "02", "lost");
	uint64_t id;
	ck_assert_int_eq(
		rhs_object_create(store, 0, &ix, (const uint8_t *)"r1", 2, &id),
		RHS_OK);
	terminate_store_sessions();
	ck_assert_int_eq(rhs_commit(store), RHS_EIO);
	ck_assert_int_eq(count_rows("SELECT COUNT(*) FROM remhsm_objects"), 1);
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_object_get(store, 0, id, &rec, &len),
			 RHS_ENOTFOUND);
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, NULL, NULL, "kept", ids), 1);
}
END_TEST

/* The server ends the store's session between calls (a restart, a
 * failover): the next read and write go through on a new session, which
 * holds the writer's lock again. */
START_TEST(test_a_session_lost_between_calls_is_replaced)
{
	uint64_t first = create(0, "key", "01", "before", "r0");
	terminate_store_sessions();
	assert_record(0, first, "r0");
	terminate_store_sessions();
	uint64_t second = create(0, "key", "02", "after", "r1");
	assert_record(0, second, "r1");
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, "key", NULL, NULL, ids), 2);
	rhs_store_t *other = NULL;
	ck_assert_int_eq(
		rhs_open(location, key, NULL, &other, err, sizeof(err)),
		RHS_EBUSY);
}
END_TEST

static void *cancel_waiting_commit(void *arg)
{
	(void)arg;
	PGconn *c = connect_to(getenv("REMHSM_TEST_PG"));
	for (int i = 0; i < 100; i++) { /* 10 s at most */
		usleep(100 * 1000);
		PGresult *r = PQexec(
			c, "SELECT pg_cancel_backend(pid) FROM "
			   "pg_stat_activity WHERE wait_event = 'SyncRep'");
		int cancelled = PQresultStatus(r) == PGRES_TUPLES_OK &&
				PQntuples(r) > 0;
		PQclear(r);
		if (cancelled)
			break;
	}
	PQfinish(c);
	return NULL;
}

/* A commit that waits for a standby which never answers, its wait then
 * cancelled: PostgreSQL keeps it locally with a warning, and the store
 * does not call that durable. */
START_TEST(test_a_commit_whose_wait_for_standbys_is_cancelled_is_an_error)
{
	sql(admin, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
	sql(admin, "SELECT pg_reload_conf()");
	usleep(300 * 1000);
	reopen(); /* a session that sees the setting */
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, cancel_waiting_commit, NULL),
			 0);
	rhs_index_t ix = index_of("key", "01", "unconfirmed");
	uint64_t id = 0;
	int rc = rhs_object_create(store, 0, &ix, (const uint8_t *)"r", 1, &id);
	pthread_join(t, NULL);
	sql(admin, "ALTER SYSTEM RESET synchronous_standby_names");
	sql(admin, "SELECT pg_reload_conf()");
	ck_assert_int_eq(rc, RHS_EIO);
	/* It was the warning, not the deadline: the row is there locally. */
	ck_assert_int_eq(count_rows("SELECT COUNT(*) FROM remhsm_objects"), 1);
}
END_TEST

/* A SQLite store of two tokens and three objects, in dir. */
static void make_sqlite_source(const char *path)
{
	rhs_store_t *src = NULL;
	ck_assert_int_eq(rhs_open(path, key, NULL, &src, err, sizeof(err)),
			 RHS_OK);
	rhs_store_t *keep = store;
	store = src;
	ck_assert_int_eq(rhs_token_put(src, 0, (const uint8_t *)"t0", 2),
			 RHS_OK);
	ck_assert_int_eq(rhs_token_put(src, 3, (const uint8_t *)"t3", 2),
			 RHS_OK);
	create(0, "key", "01", "Device Priv TLS Key", "k0");
	uint64_t gone = create(0, "cert", "01", "Device Cert", "c0");
	ck_assert_int_eq(rhs_object_delete(src, 0, gone), RHS_OK);
	create(0, "cert", "02", "Device Cert 2", "c1");
	create(3, "key", "07", "Claim Key", "k3");
	store = keep;
	rhs_close(src);
}

/* Every record of the copy as in the source: tokens 0 and 3, the three
 * objects found by their labels, token 0 holding on_token0 in all. */
static void assert_copied(rhs_store_t *s, size_t on_token0)
{
	rhs_store_t *keep = store;
	store = s;
	uint8_t *rec;
	size_t len;
	ck_assert_int_eq(rhs_token_get(s, 3, &rec, &len), RHS_OK);
	ck_assert_mem_eq(rec, "t3", 2);
	rhs_free(rec, len);
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, NULL, NULL, NULL, ids), on_token0);
	ck_assert_uint_eq(find(0, NULL, NULL, "Device Priv TLS Key", ids), 1);
	assert_record(0, ids[0], "k0");
	ck_assert_uint_eq(find(0, "cert", "02", NULL, ids), 1);
	assert_record(0, ids[0], "c1");
	ck_assert_uint_eq(find(3, "key", NULL, "Claim Key", ids), 1);
	assert_record(3, ids[0], "k3");
	ck_assert_int_eq(rhs_token_damaged(s, 0) | rhs_token_damaged(s, 3), 0);
	store = keep;
}

/* SQLite to PostgreSQL and back, each copy checked; the copy goes on
 * where the source left off (a new object's id is a new one). */
START_TEST(test_a_store_moves_to_postgresql_and_back)
{
	char sqlite_path[128], back_path[128];
	snprintf(sqlite_path, sizeof(sqlite_path), "%s/store.db", dir);
	snprintf(back_path, sizeof(back_path), "%s/back.db", dir);
	make_sqlite_source(sqlite_path);
	rhs_open_opts_t snap = {.snapshot = 1};
	rhs_store_t *from = NULL, *back = NULL;
	ck_assert_int_eq(
		rhs_open(sqlite_path, key, &snap, &from, err, sizeof(err)),
		RHS_OK);
	rhs_copy_tally_t tally;
	ck_assert_msg(rhs_copy(from, store, &tally, err, sizeof(err)) == RHS_OK,
		      "%s", err);
	ck_assert_uint_eq(tally.tokens, 2);
	ck_assert_uint_eq(tally.objects, 3);
	ck_assert_uint_gt(rhs_counter(store), rhs_counter(from));
	rhs_close(from);
	reopen();
	assert_copied(store, 2);
	uint64_t fresh = create(0, "key", "09", "new", "n");
	ck_assert_uint_gt(fresh, 4); /* 4 was deleted in the source */

	ck_assert_int_eq(
		rhs_open(location, key, &snap, &from, err, sizeof(err)),
		RHS_OK);
	ck_assert_int_eq(
		rhs_open(back_path, key, NULL, &back, err, sizeof(err)),
		RHS_OK);
	ck_assert_msg(rhs_copy(from, back, &tally, err, sizeof(err)) == RHS_OK,
		      "%s", err);
	ck_assert_uint_eq(tally.objects, 4);
	rhs_close(from);
	assert_copied(back, 3);
	rhs_close(back);
}
END_TEST

/* A copy goes only into an empty store under the same key, and only from
 * a source whose tokens add up. */
START_TEST(test_a_copy_is_refused_where_it_could_mislead)
{
	char path[128], other[128];
	snprintf(path, sizeof(path), "%s/store.db", dir);
	snprintf(other, sizeof(other), "%s/other.db", dir);
	make_sqlite_source(path);
	rhs_open_opts_t snap = {.snapshot = 1};
	rhs_store_t *from = NULL, *to = NULL;
	rhs_copy_tally_t tally;
	ck_assert_int_eq(rhs_open(path, key, &snap, &from, err, sizeof(err)),
			 RHS_OK);
	create(1, "key", "01", "already here", "x");
	ck_assert_int_eq(rhs_copy(from, store, &tally, err, sizeof(err)),
			 RHS_EINVAL);
	ck_assert_msg(strstr(err, "is not empty (1 rows)") != NULL, "%s", err);

	uint8_t other_key[RHS_KEY_LEN];
	memcpy(other_key, key, sizeof(other_key));
	other_key[0] ^= 1;
	ck_assert_int_eq(
		rhs_open(other, other_key, NULL, &to, err, sizeof(err)),
		RHS_OK);
	ck_assert_int_eq(rhs_copy(from, to, &tally, err, sizeof(err)),
			 RHS_EKEY);
	rhs_close(to);
	rhs_close(from);

	/* The PostgreSQL store, one of its rows put back from before. */
	sql(behind, "CREATE TABLE saved AS SELECT * FROM remhsm_objects");
	rhs_index_t ix = index_of("key", "01", "changed");
	uint64_t ids[4];
	ck_assert_uint_eq(find(1, NULL, NULL, NULL, ids), 1);
	ck_assert_int_eq(rhs_object_update(store, 1, ids[0], &ix,
					   (const uint8_t *)"y", 1),
			 RHS_OK);
	sql(behind, "UPDATE remhsm_objects o SET record = s.record FROM saved "
		    "s WHERE o.id = s.id");
	ck_assert_int_eq(
		rhs_open(location, key, &snap, &from, err, sizeof(err)),
		RHS_OK);
	char fresh[128];
	snprintf(fresh, sizeof(fresh), "%s/fresh.db", dir);
	ck_assert_int_eq(rhs_open(fresh, key, NULL, &to, err, sizeof(err)),
			 RHS_OK);
	ck_assert_int_eq(rhs_copy(from, to, &tally, err, sizeof(err)),
			 RHS_ECORRUPT);
	ck_assert_msg(strstr(err, "token 1's rows do not add up") != NULL, "%s",
		      err);
	rhs_close(to);
	rhs_close(from);
}
END_TEST

/* --- several processes writing one store (opts.shared) ------------------- */

static rhs_store_t *other; /* a second process's store on the same database */
static const rhs_open_opts_t shared = {.shared = 1};

/* What a store's foreign-change hook heard, as "t0 o5 w1 " and so on. */
static char heard[4096];

static void hear(void *ctx, char table, uint32_t slot, uint64_t id)
{
	(void)ctx;
	size_t n = strlen(heard);
	if (table == 'o')
		snprintf(heard + n, sizeof(heard) - n, "o%llu ",
			 (unsigned long long)id);
	else
		snprintf(heard + n, sizeof(heard) - n, "%c%u ", table, slot);
}

static rhs_store_t *open_shared(void)
{
	rhs_store_t *s = NULL;
	ck_assert_msg(rhs_open(location, key, &shared, &s, err, sizeof(err)) ==
			      RHS_OK,
		      "%s", err);
	return s;
}

static void setup_shared(void)
{
	setup();
	rhs_close(store);
	store = open_shared();
	other = open_shared();
	heard[0] = '\0';
	rhs_on_foreign_change(store, hear, NULL);
}

static void teardown_shared(void)
{
	rhs_close(other);
	other = NULL;
	teardown();
}

static int read_from(rhs_store_t *s, uint32_t slot, uint64_t id, char *out,
		     size_t cap)
{
	uint8_t *rec = NULL;
	size_t len = 0;
	int rc = rhs_object_get(s, slot, id, &rec, &len);
	if (rc == RHS_OK)
		snprintf(out, cap, "%.*s", (int)len, (const char *)rec);
	rhs_free(rec, len);
	return rc;
}

static size_t count_found(rhs_store_t *s, uint32_t slot)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	ck_assert_int_eq(rhs_object_find(s, slot, NULL, &ids, &n), RHS_OK);
	free(ids);
	return n;
}

/* What one writes the other reads, finds and changes next, with no stale
 * copy and nothing taken for damage; the hook hears each foreign write. */
START_TEST(test_shared_writers_see_each_others_writes)
{
	char got[64];
	uint64_t id = create(0, "key", "01", "k", "v1");
	ck_assert_uint_eq(count_found(other, 0), 1);
	ck_assert_int_eq(read_from(other, 0, id, got, sizeof(got)), RHS_OK);
	ck_assert_str_eq(got, "v1");
	rhs_index_t ix = index_of("key", "01", "k");
	ck_assert_int_eq(
		rhs_object_update(other, 0, id, &ix, (const uint8_t *)"v2", 2),
		RHS_OK);
	ck_assert_int_eq(rhs_token_put(other, 1, (const uint8_t *)"tok", 3),
			 RHS_OK);
	ck_assert_int_eq(rhs_sync(store), RHS_OK);
	char want[64];
	snprintf(want, sizeof(want), "o%llu t1 ", (unsigned long long)id);
	ck_assert_str_eq(heard, want);
	assert_record(0, id, "v2");
	uint8_t *rec = NULL;
	size_t len = 0;
	ck_assert_int_eq(rhs_token_get(store, 1, &rec, &len), RHS_OK);
	rhs_free(rec, len);
	ck_assert_int_eq(rhs_object_delete(store, 0, id), RHS_OK);
	ck_assert_int_eq(read_from(other, 0, id, got, sizeof(got)),
			 RHS_ENOTFOUND);
	ck_assert_uint_eq(count_found(other, 0), 0);
	ck_assert_int_eq(rhs_token_wipe(other, 1), RHS_OK);
	ck_assert_int_eq(rhs_token_get(store, 1, &rec, &len), RHS_ENOTFOUND);
	ck_assert_int_eq(rhs_token_damaged(store, 0), 0);
	ck_assert_int_eq(rhs_token_damaged(other, 1), 0);
	ck_assert_uint_eq(rhs_counter(store), rhs_counter(other));
}
END_TEST

typedef struct creator {
	rhs_store_t *s;
	uint64_t ids[40];
	int failed;
} creator_t;

static void *create_many(void *arg)
{
	creator_t *c = arg;
	rhs_index_t ix = index_of("key", NULL, "many");
	for (size_t i = 0; i < 40; i++)
		c->failed |=
			rhs_object_create(c->s, 0, &ix, (const uint8_t *)"r", 1,
					  &c->ids[i]) != RHS_OK;
	return NULL;
}

/* Two writers creating at once take turns: every id is handed out once,
 * each sees all 80 objects, and the store adds up when opened afresh. */
START_TEST(test_shared_writers_take_turns_and_never_share_an_id)
{
	creator_t a = {.s = store}, b = {.s = other};
	pthread_t ta, tb;
	ck_assert_int_eq(pthread_create(&ta, NULL, create_many, &a), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, create_many, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert_int_eq(a.failed | b.failed, 0);
	for (size_t i = 0; i < 40; i++)
		for (size_t j = 0; j < 40; j++)
			ck_assert_uint_ne(a.ids[i], b.ids[j]);
	ck_assert_uint_eq(count_found(store, 0), 80);
	ck_assert_uint_eq(count_found(other, 0), 80);
	rhs_close(other);
	other = NULL;
	reopen();
	ck_assert_int_eq(rhs_token_damaged(store, 0), 0);
	ck_assert_uint_eq(count_found(store, 0), 80);
}
END_TEST

/* Shared writers and a lone one refuse each other, and SQLite, written by
 * one process at a time, refuses to be shared. */
START_TEST(test_shared_and_lone_writers_exclude_each_other)
{
	rhs_store_t *s = NULL;
	ck_assert_int_eq(rhs_open(location, key, NULL, &s, err, sizeof(err)),
			 RHS_EBUSY);
	ck_assert_ptr_nonnull(strstr(err, "in use by another remhsmd"));
	rhs_close(store);
	rhs_close(other);
	store = other = NULL;
	open_store();
	ck_assert_int_eq(rhs_open(location, key, &shared, &s, err, sizeof(err)),
			 RHS_EBUSY);
	ck_assert_ptr_nonnull(strstr(err, "not shared"));
	char path[128];
	snprintf(path, sizeof(path), "%s/store.db", dir);
	ck_assert_int_eq(rhs_open(path, key, &shared, &s, err, sizeof(err)),
			 RHS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "PostgreSQL store only"));
	ck_assert_ptr_null(s);
}
END_TEST

/* A change log with an entry taken out does not lead to the state: the
 * store is read again in full, and is right. A row put back from an
 * older copy is still found out by the writer that did not write it. */
START_TEST(test_shared_writers_still_find_rows_changed_behind_their_back)
{
	char got[64];
	uint64_t id = create(0, "key", "01", "k", "v1");
	ck_assert_int_eq(read_from(other, 0, id, got, sizeof(got)), RHS_OK);
	rhs_index_t ix = index_of("key", "01", "k");
	ck_assert_int_eq(
		rhs_object_update(store, 0, id, &ix, (const uint8_t *)"v2", 2),
		RHS_OK);
	sql(behind, "DELETE FROM remhsm_changes WHERE counter = (SELECT "
		    "MAX(counter) FROM remhsm_changes)");
	ck_assert_int_eq(read_from(other, 0, id, got, sizeof(got)), RHS_OK);
	ck_assert_str_eq(got, "v2");
	ck_assert_int_eq(rhs_token_damaged(other, 0), 0);

	sql(behind, "CREATE TABLE saved AS SELECT * FROM remhsm_objects");
	ck_assert_int_eq(
		rhs_object_update(store, 0, id, &ix, (const uint8_t *)"v3", 2),
		RHS_OK);
	ck_assert_int_eq(read_from(other, 0, id, got, sizeof(got)), RHS_OK);
	sql(behind, "UPDATE remhsm_objects o SET record = s.record FROM saved "
		    "s WHERE o.id = s.id");
	ck_assert_int_eq(read_from(other, 0, id, got, sizeof(got)),
			 RHS_ECHANGED);
	ck_assert_int_eq(read_from(store, 0, id, got, sizeof(got)),
			 RHS_ECHANGED);
}
END_TEST

/* The sealed state put back from an older copy (its counter behind what
 * a writer knows) is refused, not learnt. */
START_TEST(test_shared_state_put_back_is_refused)
{
	create(0, "key", "01", "k", "v1");
	ck_assert_int_eq(rhs_sync(other), RHS_OK);
	sql(behind, "CREATE TABLE saved AS SELECT * FROM remhsm_meta WHERE "
		    "name = 'state'");
	create(0, "key", "02", "k", "v2");
	ck_assert_int_eq(rhs_sync(other), RHS_OK);
	sql(behind, "UPDATE remhsm_meta m SET value = s.value FROM saved s "
		    "WHERE m.name = s.name");
	ck_assert_int_eq(rhs_sync(other), RHS_ECHANGED);
	ck_assert_int_eq(rhs_object_create(other, 0, NULL, (const uint8_t *)"x",
					   1, &(uint64_t){0}),
			 RHS_ECHANGED);
}
END_TEST

/* --- reader sessions beside the writer's (opts.readers) ------------------ */

static void setup_readers(void)
{
	setup();
	rhs_close(store);
	rhs_open_opts_t opts = {.readers = 2};
	ck_assert_msg(rhs_open(location, key, &opts, &store, err,
			       sizeof(err)) == RHS_OK,
		      "%s", err);
}

/* The database sessions of this test's database, the store's. */
static long sessions_on_database(void)
{
	char q[200];
	snprintf(q, sizeof(q),
		 "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
		 "AND pid <> pg_backend_pid()",
		 dbname);
	return count_rows(q);
}

/* The writer's session and two readers; reads and finds on them see
 * what was committed, a write of this process at once. */
START_TEST(test_reader_sessions_answer_reads_and_see_each_commit)
{
	ck_assert_int_eq(sessions_on_database(), 3);
	uint64_t id = create(0, "key", "01", "old", "v1");
	assert_record(0, id, "v1");
	uint64_t ids[4];
	ck_assert_uint_eq(find(0, "key", NULL, NULL, ids), 1);
	rhs_index_t ix = index_of("key", "01", "old");
	ck_assert_int_eq(
		rhs_object_update(store, 0, id, &ix, (const uint8_t *)"v2", 2),
		RHS_OK);
	assert_record(0, id, "v2");
	uint64_t second = create(0, "key", "02", "new", "n1");
	ck_assert_uint_eq(find(0, "key", NULL, NULL, ids), 2);
	ck_assert_int_eq(rhs_object_delete(store, 0, second), RHS_OK);
	ck_assert_uint_eq(find(0, "key", NULL, NULL, ids), 1);
	uint8_t *rec = NULL;
	size_t len = 0;
	ck_assert_int_eq(rhs_object_get(store, 0, second, &rec, &len),
			 RHS_ENOTFOUND);
}
END_TEST

typedef struct churn {
	uint64_t ids[8];
	_Atomic int stop;
	_Atomic int bad;
} churn_t;

static void *rewrite_all(void *arg)
{
	churn_t *c = arg;
	for (int round = 0; round < 60; round++)
		for (int i = 0; i < 8; i++) {
			char v[16];
			snprintf(v, sizeof(v), "v%d", round);
			rhs_index_t ix = index_of("key", NULL, "churn");
			c->bad |= rhs_object_update(store, 0, c->ids[i], &ix,
						    (const uint8_t *)v,
						    strlen(v)) != RHS_OK;
		}
	c->stop = 1;
	return NULL;
}

static void *read_all(void *arg)
{
	churn_t *c = arg;
	while (!c->stop) {
		for (int i = 0; i < 8; i++) {
			uint8_t *rec = NULL;
			size_t len = 0;
			int rc =
				rhs_object_get(store, 0, c->ids[i], &rec, &len);
			c->bad |= rc != RHS_OK || len < 2 || rec[0] != 'v';
			rhs_free(rec, len);
		}
		rhs_index_t ix = index_of("key", NULL, "churn");
		uint64_t *ids = NULL;
		size_t n = 0;
		c->bad |= rhs_object_find(store, 0, &ix, &ids, &n) != RHS_OK ||
			  n != 8;
		free(ids);
	}
	return NULL;
}

/* Reads and finds on two threads while a third rewrites every object
 * again and again: a read that met a row a write changed meanwhile is
 * read again, never taken for damage; each answer is a whole record. */
START_TEST(test_reads_beside_writes_never_see_a_change_as_damage)
{
	churn_t c = {.stop = 0, .bad = 0};
	for (int i = 0; i < 8; i++)
		c.ids[i] = create(0, "key", NULL, "churn", "v-");
	pthread_t w, r1, r2;
	ck_assert_int_eq(pthread_create(&r1, NULL, read_all, &c), 0);
	ck_assert_int_eq(pthread_create(&r2, NULL, read_all, &c), 0);
	ck_assert_int_eq(pthread_create(&w, NULL, rewrite_all, &c), 0);
	pthread_join(w, NULL);
	pthread_join(r1, NULL);
	pthread_join(r2, NULL);
	ck_assert_int_eq(c.bad, 0);
	for (int i = 0; i < 8; i++)
		assert_record(0, c.ids[i], "v59");
}
END_TEST

/* SQLite has no sessions to read beside the writer's. */
START_TEST(test_reader_sessions_need_postgresql)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/store.db", dir);
	rhs_open_opts_t opts = {.readers = 1};
	rhs_store_t *s = NULL;
	ck_assert_int_eq(rhs_open(path, key, &opts, &s, err, sizeof(err)),
			 RHS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "reader sessions need a PostgreSQL"));
	ck_assert_ptr_null(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_pg");
	TCase *tc = tcase_create("postgresql");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_records_round_trip_and_survive_reopen);
	tcase_add_test(tc, test_objects_are_found_updated_and_deleted);
	tcase_add_test(tc, test_rollback_leaves_nothing);
	tcase_add_test(tc, test_database_holds_no_record_or_index_value);
	tcase_add_test(tc, test_replayed_object_row_is_damage);
	tcase_add_test(tc, test_a_second_writer_is_refused);
	tcase_add_test(tc, test_newer_schema_is_refused_not_clobbered);
	tcase_add_test(tc, test_another_store_key_is_refused);
	tcase_add_test(tc,
		       test_connection_errors_name_the_server_not_the_password);
	tcase_add_test(tc, test_another_writers_commit_is_seen_by_a_find);
	tcase_add_test(tc, test_a_connection_lost_before_commit_is_an_error);
	tcase_add_test(tc, test_a_session_lost_between_calls_is_replaced);
	tcase_add_test(tc, test_a_store_moves_to_postgresql_and_back);
	tcase_add_test(tc, test_a_copy_is_refused_where_it_could_mislead);
	tcase_add_test(
		tc,
		test_a_commit_whose_wait_for_standbys_is_cancelled_is_an_error);
	suite_add_tcase(s, tc);
	TCase *sh = tcase_create("shared");
	tcase_set_timeout(sh, 60);
	tcase_add_checked_fixture(sh, setup_shared, teardown_shared);
	tcase_add_test(sh, test_shared_writers_see_each_others_writes);
	tcase_add_test(sh,
		       test_shared_writers_take_turns_and_never_share_an_id);
	tcase_add_test(sh, test_shared_and_lone_writers_exclude_each_other);
	tcase_add_test(
		sh,
		test_shared_writers_still_find_rows_changed_behind_their_back);
	tcase_add_test(sh, test_shared_state_put_back_is_refused);
	suite_add_tcase(s, sh);
	TCase *rd = tcase_create("readers");
	tcase_set_timeout(rd, 60);
	tcase_add_checked_fixture(rd, setup_readers, teardown);
	tcase_add_test(rd,
		       test_reader_sessions_answer_reads_and_see_each_commit);
	tcase_add_test(rd,
		       test_reads_beside_writes_never_see_a_change_as_damage);
	tcase_add_test(rd, test_reader_sessions_need_postgresql);
	suite_add_tcase(s, rd);
	return th_run_suite(s);
}
