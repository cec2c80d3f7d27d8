/*
 * remhsmd on a primary and its synchronous standby (named together in
 * the store's location, target_session_attrs=read-write), through the
 * module: the primary is killed (SIGKILL) in the middle of a stream of
 * object creations and the standby promoted: over SQL, as a failover
 * manager would (under with_postgres.sh --standby), or by Patroni itself
 * once the primary's Patroni and server are killed (under
 * with_patroni.sh, which names their PIDs in REMHSM_TEST_PG_KILL). Every
 * creation that answered CKR_OK is there afterwards, whole; one that answered
 * an error is there whole or not at all; the daemon writes again on the new
 * primary by itself. Prints the time from the primary's death to the first
 * write acknowledged after it.
 */
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pg_db.h"

#define CREATIONS_MAX 1000
#define KILL_AT 40

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static th_pg_db_t db;
static char location[1024];
static const char *flags[] = {"--store", location, "--store-wait-ms", "3000",
			      NULL};

/* "user:password@host:port" of a URI "postgresql://...@host:port/db". */
static void authority_of(const char *uri, const char **start, int *len)
{
	*start = strstr(uri, "://") + 3;
	*len = (int)(strrchr(uri, '/') - *start);
}

/* The standby replays CREATE DATABASE a moment after the primary. */
static void wait_for_database_on_standby(void)
{
	const char *a;
	int n;
	authority_of(getenv("REMHSM_TEST_PG_STANDBY"), &a, &n);
	char where[700];
	snprintf(where, sizeof(where), "postgresql://%.*s/%s", n, a, db.name);
	for (int i = 0; i < 100; i++) {
		PGconn *c = PQconnectdb(where);
		int ok = PQstatus(c) == CONNECTION_OK;
		PQfinish(c);
		if (ok)
			return;
		usleep(50 * 1000);
	}
	ck_abort_msg("the standby has no database %s", db.name);
}

static void setup(void)
{
	ck_assert_msg((getenv("REMHSM_TEST_PG_PID") ||
		       getenv("REMHSM_TEST_PG_KILL")) &&
			      getenv("REMHSM_TEST_PG_STANDBY"),
		      "run under tests/support/with_postgres.sh --standby or "
		      "with_patroni.sh");
	th_pg_db_create(&db, "remhsm_failover");
	const char *primary, *standby;
	int plen, slen;
	authority_of(getenv("REMHSM_TEST_PG"), &primary, &plen);
	authority_of(getenv("REMHSM_TEST_PG_STANDBY"), &standby, &slen);
	const char *host = strchr(standby, '@') + 1;
	snprintf(location, sizeof(location),
		 "postgresql://%.*s,%.*s/%s?target_session_attrs=read-write",
		 plen, primary, slen - (int)(host - standby), host, db.name);
	wait_for_database_on_standby();
	p11 = th_start_provisioned(&d, flags, &module);
}

static void teardown(void)
{
	p11->C_Finalize(NULL);
	dlclose(module);
	th_daemon_cleanup(&d);
	PQfinish(db.admin); /* its server is dead: nothing to drop */
}

static CK_RV create_data(CK_SESSION_HANDLE s, int i)
{
	char label[32], value[32];
	snprintf(label, sizeof(label), "obj-%d", i);
	snprintf(value, sizeof(value), "value-%d", i);
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_TOKEN, &yes, 1},
			    {CKA_LABEL, label, strlen(label)},
			    {CKA_VALUE, value, strlen(value)}};
	CK_OBJECT_HANDLE h;
	return p11->C_CreateObject(s, t, 4, &h);
}

/* How many objects have creation i's label; each one found must hold
 * creation i's whole value. */
static CK_ULONG found_whole(CK_SESSION_HANDLE s, int i)
{
	char label[32], want[32], value[64];
	snprintf(label, sizeof(label), "obj-%d", i);
	snprintf(want, sizeof(want), "value-%d", i);
	CK_ATTRIBUTE t[] = {{CKA_LABEL, label, strlen(label)}};
	CK_OBJECT_HANDLE h[4];
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_FindObjectsInit(s, t, 1), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjects(s, h, 4, &n), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(s), CKR_OK);
	for (CK_ULONG k = 0; k < n; k++) {
		CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof(value)};
		ck_assert_uint_eq(p11->C_GetAttributeValue(s, h[k], &v, 1),
				  CKR_OK);
		ck_assert_uint_eq(v.ulValueLen, strlen(want));
		ck_assert_mem_eq(value, want, v.ulValueLen);
	}
	return n;
}

/* The primary's host gone: under Patroni its Patroni and its server
 * (Patroni promotes the standby); else the server, and the standby made
 * primary over SQL, as a failover manager would. */
static void fail_over(void)
{
	const char *pids = getenv("REMHSM_TEST_PG_KILL");
	if (pids) {
		for (char *end; *pids; pids = end) {
			long pid = strtol(pids, &end, 10);
			ck_assert_msg(end != pids, "REMHSM_TEST_PG_KILL: %s",
				      pids);
			ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
		}
		return;
	}
	ck_assert_int_eq(kill(atoi(getenv("REMHSM_TEST_PG_PID")), SIGKILL), 0);
	PGconn *c = PQconnectdb(getenv("REMHSM_TEST_PG_STANDBY"));
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	th_pg_sql(c, "SELECT pg_promote(true, 30)");
	PQfinish(c);
}

/* The stream of creations, on a thread of its own so that the primary
 * dies while one is in flight. */
typedef struct stream {
	CK_SESSION_HANDLE s;
	CK_RV rv[CREATIONS_MAX];
	double started_at[CREATIONS_MAX], done_at[CREATIONS_MAX];
	_Atomic int made;
	_Atomic double killed_at;
} stream_t;

static void *create_stream(void *arg)
{
	stream_t *st = arg;
	int ok_after = 0;
	double started = th_now_us();
	for (int i = 0;
	     i < CREATIONS_MAX && ok_after < 40 && th_now_us() - started < 60e6;
	     i++) {
		st->started_at[i] = th_now_us();
		st->rv[i] = create_data(st->s, i);
		st->done_at[i] = th_now_us();
		st->made = i + 1;
		/* Counted as the check below counts: begun after the death. */
		ok_after += st->killed_at > 0 &&
			    st->started_at[i] > st->killed_at &&
			    st->rv[i] == CKR_OK;
		if (st->rv[i] != CKR_OK)
			usleep(50 * 1000);
	}
	return NULL;
}

START_TEST(test_a_primary_killed_mid_stream_loses_no_acknowledged_write)
{
	static stream_t st;
	st.s = th_user_session(p11, 0, "0000");
	pthread_t writer;
	ck_assert_int_eq(pthread_create(&writer, NULL, create_stream, &st), 0);
	while (st.made < KILL_AT)
		usleep(1000);
	double killed_at = th_now_us();
	fail_over();
	st.killed_at = killed_at;
	pthread_join(writer, NULL);
	int failed = 0, ok_after = 0;
	double first_after = 0;
	for (int i = 0; i < st.made; i++) {
		failed += st.rv[i] != CKR_OK;
		/* The first write begun after the death and acknowledged. */
		if (st.rv[i] == CKR_OK && st.started_at[i] > st.killed_at &&
		    !ok_after++)
			first_after = st.done_at[i];
	}
	printf("store-failover: %d creations, %d failed, first write "
	       "acknowledged %.0f ms after the primary died\n",
	       st.made, failed, (first_after - st.killed_at) / 1000);
	fflush(stdout);
	ck_assert_int_ge(ok_after, 40);
	ck_assert(th_log_contains(&d, "event=store-connection-lost"));
	ck_assert(th_log_contains(&d, "event=store-reconnected"));
	for (int i = 0; i < st.made; i++) {
		CK_ULONG n = found_whole(st.s, i);
		if (st.rv[i] == CKR_OK)
			ck_assert_msg(n == 1,
				      "creation %d answered CKR_OK, found %lu "
				      "times",
				      i, n);
		else
			ck_assert_msg(n <= 1, "creation %d found %lu times", i,
				      n);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_failover");
	TCase *tc = tcase_create("failover");
	tcase_set_timeout(tc, 180);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(
		tc,
		test_a_primary_killed_mid_stream_loses_no_acknowledged_write);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
