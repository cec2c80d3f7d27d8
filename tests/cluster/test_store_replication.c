/* The PostgreSQL store over a real primary and a streaming standby that
 * the primary waits for (tests/support/with_postgres.sh --standby): a
 * write acknowledged to the caller is on the standby; a write the standby
 * never confirms is an error within the store's wait, and once the
 * standby is back the store writes again. */
#include <check.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "rhs.h"

static char dir[64], dbname[64], location[700];
static char err[1024];
static uint8_t key[RHS_KEY_LEN];
static rhs_store_t *store;
static PGconn *standby; /* on the test's database, read-only */

static PGconn *connect_to(const char *where)
{
	PGconn *c = PQconnectdb(where);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, NULL, NULL);
	return c;
}

static void run_sql(PGconn *c, const char *text)
{
	PGresult *r = PQexec(c, text);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK ||
			      PQresultStatus(r) == PGRES_TUPLES_OK,
		      "%s: %s", text, PQresultErrorMessage(r));
	PQclear(r);
}

/* base with its database replaced by db, and more settings after. */
static void with_db(const char *base, const char *db, const char *more,
		    char *out, size_t cap)
{
	const char *slash = strrchr(base, '/');
	snprintf(out, cap, "%.*s/%s%s", (int)(slash - base), base, db, more);
}

/* The standby replays CREATE DATABASE a moment after the primary. */
static PGconn *connect_standby(void)
{
	char where[700];
	with_db(getenv("REMHSM_TEST_PG_STANDBY"), dbname, "", where,
		sizeof(where));
	for (int i = 0; i < 100; i++) {
		PGconn *c = PQconnectdb(where);
		if (PQstatus(c) == CONNECTION_OK)
			return c;
		PQfinish(c);
		usleep(50 * 1000);
	}
	return connect_to(where);
}

static void open_store(unsigned wait_ms)
{
	rhs_open_opts_t opts = {.wait_ms = wait_ms};
	ck_assert_msg(rhs_open(location, key, &opts, &store, err,
			       sizeof(err)) == RHS_OK,
		      "%s", err);
}

static void setup(void)
{
	ck_assert_msg(getenv("REMHSM_TEST_PG_STANDBY") != NULL,
		      "run under tests/support/with_postgres.sh --standby");
	snprintf(dir, sizeof(dir), "/tmp/remhsm-store-repl-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(rhs_key_load(dir, key, err, sizeof(err)), RHS_OK);
	static unsigned serial;
	snprintf(dbname, sizeof(dbname), "remhsm_repl_%d_%u", (int)getpid(),
		 serial++);
	PGconn *admin = connect_to(getenv("REMHSM_TEST_PG"));
	char create[128];
	snprintf(create, sizeof(create), "CREATE DATABASE %s", dbname);
	run_sql(admin, create);
	PQfinish(admin);
	/* Each commit waits until the standby has applied it. */
	with_db(getenv("REMHSM_TEST_PG"), dbname,
		"?options=-csynchronous_commit%3Dremote_apply", location,
		sizeof(location));
	standby = connect_standby();
}

static void teardown(void)
{
	rhs_close(store);
	store = NULL;
	PQfinish(standby);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static long on_standby(const char *query)
{
	PGresult *r = PQexec(standby, query);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
		      PQresultErrorMessage(r));
	long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return n;
}

static int create(const char *label, uint64_t *id)
{
	rhs_index_t ix = {{NULL}, {0}};
	ix.value[RHS_IX_LABEL] = (const uint8_t *)label;
	ix.len[RHS_IX_LABEL] = strlen(label);
	return rhs_object_create(store, 0, &ix, (const uint8_t *)label,
				 strlen(label), id);
}

START_TEST(test_every_acknowledged_write_is_on_the_standby)
{
	open_store(0);
	ck_assert_int_eq(on_standby("SELECT version FROM remhsm_schema"),
			 RHS_SCHEMA_VERSION);
	for (long i = 1; i <= 50; i++) {
		uint64_t id;
		char label[32];
		snprintf(label, sizeof(label), "object %ld", i);
		ck_assert_int_eq(create(label, &id), RHS_OK);
		ck_assert_int_eq(
			on_standby("SELECT COUNT(*) FROM remhsm_objects"), i);
	}
}
END_TEST

/* A store on a server that takes no writes is refused at open, saying
 * why: the standby itself, and a primary whose database is read-only. */
START_TEST(test_a_server_that_takes_no_writes_is_refused)
{
	open_store(0); /* the database migrated on the primary */
	rhs_close(store);
	store = NULL;
	char where[700];
	with_db(getenv("REMHSM_TEST_PG_STANDBY"), dbname, "", where,
		sizeof(where));
	rhs_store_t *s = NULL;
	ck_assert_int_eq(rhs_open(where, key, NULL, &s, err, sizeof(err)),
			 RHS_EACCESS);
	ck_assert_msg(strstr(err, "a standby (in recovery") != NULL, "%s", err);
	ck_assert_ptr_null(s);
	PGconn *admin = connect_to(getenv("REMHSM_TEST_PG"));
	char alter[160];
	snprintf(alter, sizeof(alter),
		 "ALTER DATABASE %s SET default_transaction_read_only = on",
		 dbname);
	run_sql(admin, alter);
	PQfinish(admin);
	ck_assert_int_eq(rhs_open(location, key, NULL, &s, err, sizeof(err)),
			 RHS_EACCESS);
	ck_assert_msg(strstr(err, "read-only (default_transaction_read_only)"),
		      "%s", err);
}
END_TEST

/* The standby's server and its processes (the WAL receiver among them),
 * stopped or continued together. */
static void signal_standby(int sig)
{
	pid_t pid = (pid_t)atoi(getenv("REMHSM_TEST_PG_STANDBY_PID"));
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
		 (int)pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	int child, n = 0;
	while (fscanf(f, "%d", &child) == 1 && n++ < 64)
		ck_assert_int_eq(kill(child, sig), 0);
	fclose(f);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(kill(pid, sig), 0);
}

START_TEST(test_a_write_the_standby_never_confirms_is_an_error)
{
	open_store(1000);
	uint64_t id;
	ck_assert_int_eq(create("before", &id), RHS_OK);
	signal_standby(SIGSTOP);
	double started = th_now_us();
	int rc = create("unconfirmed", &id);
	double waited_ms = (th_now_us() - started) / 1000;
	signal_standby(SIGCONT);
	ck_assert_int_eq(rc, RHS_EIO);
	ck_assert_msg(waited_ms >= 900 && waited_ms < 5000, "waited %.0f ms",
		      waited_ms);
	ck_assert_ptr_nonnull(strstr(rhs_last_error(), "no answer"));

	/* The cancelled session lets go of the writer's lock; the store
	 * connects again and writes, and the standby has it. */
	rc = RHS_EIO;
	for (int i = 0; i < 50 && rc != RHS_OK; i++) {
		rc = create("after", &id);
		if (rc != RHS_OK)
			usleep(100 * 1000);
	}
	ck_assert_int_eq(rc, RHS_OK);
	ck_assert_int_eq(on_standby("SELECT COUNT(*) FROM remhsm_objects"), 3);
	/* The write whose outcome was unknown is there, and the store took
	 * it into what it knows before writing on: reopened, the token adds
	 * up and all three records open. */
	rhs_close(store);
	store = NULL;
	open_store(1000);
	ck_assert_int_eq(rhs_token_damaged(store, 0), 0);
	uint64_t *ids;
	size_t n;
	rhs_index_t any = {{NULL}, {0}};
	ck_assert_int_eq(rhs_object_find(store, 0, &any, &ids, &n), RHS_OK);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < n; i++) {
		uint8_t *rec;
		size_t len;
		ck_assert_int_eq(rhs_object_get(store, 0, ids[i], &rec, &len),
				 RHS_OK);
		rhs_free(rec, len);
	}
	free(ids);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_replication");
	TCase *tc = tcase_create("primary and standby");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_every_acknowledged_write_is_on_the_standby);
	tcase_add_test(tc, test_a_write_the_standby_never_confirms_is_an_error);
	tcase_add_test(tc, test_a_server_that_takes_no_writes_is_refused);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
