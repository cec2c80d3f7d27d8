/* The worker pool every loop shares, and the per-identity connection
 * counts every loop updates: each job runs and finishes once, one
 * identity never holds more workers than its cap whatever thread queued
 * its jobs, and a place given back is taken again. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "harness.h"
#include "idcount.h"
#include "pool.h"

enum { THREADS = 4, JOBS = 400 };

typedef struct {
	rhd_job_t job;
	int flood; /* of the identity that floods */
	atomic_int runs, finishes;
} job_t;

static atomic_int running_flood, most_flood, finished;

static void run(rhd_job_t *job)
{
	job_t *j = (job_t *)(void *)job;
	atomic_fetch_add(&j->runs, 1);
	if (!j->flood)
		return;
	int now = atomic_fetch_add(&running_flood, 1) + 1;
	int most = atomic_load(&most_flood);
	while (now > most &&
	       !atomic_compare_exchange_weak(&most_flood, &most, now))
		;
	usleep(200);
	atomic_fetch_sub(&running_flood, 1);
}

static void finish(rhd_job_t *job)
{
	job_t *j = (job_t *)(void *)job;
	atomic_fetch_add(&j->finishes, 1);
	atomic_fetch_add(&finished, 1);
}

static job_t jobs[JOBS];

/* Two submitting threads stand in for two event loops. */
static void *submit_half(void *arg)
{
	rhd_pool_t *pool = arg;
	static atomic_int next;
	int i;
	while ((i = atomic_fetch_add(&next, 1)) < JOBS) {
		jobs[i].flood = i % 4 != 0;
		jobs[i].job.run = run;
		jobs[i].job.finished = finish;
		ck_assert_int_eq(
			rhd_pool_submit(pool,
					jobs[i].flood ? "CN=flood" : "CN=quiet",
					&jobs[i].job),
			0);
	}
	return NULL;
}

START_TEST(test_every_job_runs_once_and_an_identity_keeps_to_its_cap)
{
	rhd_pool_t *pool = rhd_pool_start(THREADS, 2);
	ck_assert_ptr_nonnull(pool);
	pthread_t loops[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(
			pthread_create(&loops[i], NULL, submit_half, pool), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(loops[i], NULL);
	for (int i = 0; i < 5000 && atomic_load(&finished) < JOBS; i++)
		usleep(1000);
	rhd_pool_stop(pool);
	ck_assert_int_eq(atomic_load(&finished), JOBS);
	for (int i = 0; i < JOBS; i++) {
		ck_assert_int_eq(atomic_load(&jobs[i].runs), 1);
		ck_assert_int_eq(atomic_load(&jobs[i].finishes), 1);
	}
	ck_assert_int_ge(atomic_load(&most_flood), 1);
	ck_assert_int_le(atomic_load(&most_flood), 2);
}
END_TEST

START_TEST(test_stop_lets_queued_jobs_finish)
{
	rhd_pool_t *pool = rhd_pool_start(1, 0);
	ck_assert_ptr_nonnull(pool);
	static job_t few[20];
	for (int i = 0; i < 20; i++) {
		few[i].flood = 1;
		few[i].job.run = run;
		few[i].job.finished = finish;
		ck_assert_int_eq(rhd_pool_submit(pool, "CN=a", &few[i].job), 0);
	}
	rhd_pool_stop(pool);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(atomic_load(&few[i].finishes), 1);
}
END_TEST

START_TEST(test_identity_places_are_counted_and_given_back)
{
	rhd_idcount_t *counts = rhd_idcount_new();
	ck_assert_ptr_nonnull(counts);
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=a", 2), 1);
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=a", 2), 1);
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=a", 2), 0);
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=b", 2), 1);
	rhd_idcount_give(counts, "CN=a");
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=a", 2), 1);
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=a", 2), 0);
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=c", 0), 0);
	rhd_idcount_give(counts, "CN=a");
	rhd_idcount_give(counts, "CN=a");
	rhd_idcount_give(counts, "CN=b");
	/* Every place given back: the entries are gone, and new ones come. */
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=a", 1), 1);
	ck_assert_int_eq(rhd_idcount_take(counts, "CN=a", 1), 0);
	rhd_idcount_free(counts);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("pool");
	tcase_set_timeout(tc, 60);
	tcase_add_test(
		tc, test_every_job_runs_once_and_an_identity_keeps_to_its_cap);
	tcase_add_test(tc, test_stop_lets_queued_jobs_finish);
	tcase_add_test(tc, test_identity_places_are_counted_and_given_back);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
