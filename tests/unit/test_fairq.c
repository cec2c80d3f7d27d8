/* The fair queue of long calls: round robin between identities, a cap per
 * identity, FIFO within one. */
#include <check.h>
#include <stdint.h>

#include "fairq.h"
#include "harness.h"

typedef struct {
	rhd_fairq_item_t item;
	int id;
} job_t;

static int id_of(rhd_fairq_item_t *item)
{
	return item ? ((job_t *)(void *)item)->id : -1;
}

START_TEST(test_a_flood_from_one_identity_waits_its_turn)
{
	rhd_fairq_t q;
	rhd_fairq_init(&q, 4, 0);
	ck_assert_uint_eq(q.per_tenant, 2);
	static job_t flood[1000], other[2];
	for (int i = 0; i < 1000; i++) {
		flood[i].id = i;
		ck_assert_int_eq(rhd_fairq_push(&q, "CN=flood", &flood[i].item),
				 0);
	}
	/* The flood holds half the workers; the rest wait for others. */
	ck_assert_int_eq(id_of(rhd_fairq_next(&q)), 0);
	ck_assert_int_eq(id_of(rhd_fairq_next(&q)), 1);
	ck_assert_ptr_null(rhd_fairq_next(&q));
	other[0].id = 5000;
	other[1].id = 5001;
	ck_assert_int_eq(rhd_fairq_push(&q, "CN=quiet", &other[0].item), 0);
	ck_assert_int_eq(rhd_fairq_push(&q, "CN=quiet", &other[1].item), 0);
	ck_assert_int_eq(id_of(rhd_fairq_next(&q)), 5000);
	ck_assert_int_eq(id_of(rhd_fairq_next(&q)), 5001);
	ck_assert_ptr_null(rhd_fairq_next(&q));
	ck_assert_uint_eq(rhd_fairq_queued(&q, "CN=flood"), 998);
	/* A worker frees up: the flood goes on in order. */
	rhd_fairq_done(&q, &flood[0].item);
	ck_assert_int_eq(id_of(rhd_fairq_next(&q)), 2);
	rhd_fairq_done(&q, &other[0].item);
	rhd_fairq_done(&q, &other[1].item);
	ck_assert_uint_eq(rhd_fairq_queued(&q, "CN=quiet"), 0);
	ck_assert_ptr_null(rhd_fairq_next(&q)); /* the flood is at its cap */
	for (int i = 1; i < 1000; i++) {
		rhd_fairq_done(&q, &flood[i].item);
		if (i < 999)
			ck_assert_int_eq(id_of(rhd_fairq_next(&q)),
					 i + 2 < 1000 ? i + 2 : -1);
	}
	ck_assert_ptr_null(q.tenants);
}
END_TEST

START_TEST(test_identities_take_turns)
{
	rhd_fairq_t q;
	rhd_fairq_init(&q, 1, 1);
	static job_t a[3], b[3];
	for (int i = 0; i < 3; i++) {
		a[i].id = i;
		b[i].id = 10 + i;
		ck_assert_int_eq(rhd_fairq_push(&q, "A", &a[i].item), 0);
		ck_assert_int_eq(rhd_fairq_push(&q, "B", &b[i].item), 0);
	}
	int order[6];
	for (int i = 0; i < 6; i++) {
		rhd_fairq_item_t *item = rhd_fairq_next(&q);
		order[i] = id_of(item);
		ck_assert_ptr_null(rhd_fairq_next(&q)); /* one worker */
		rhd_fairq_done(&q, item);
	}
	for (int i = 0; i < 6; i += 2)
		ck_assert_int_eq(order[i] / 10 != order[i + 1] / 10, 1);
	ck_assert_ptr_null(q.tenants);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fairq");
	TCase *tc = tcase_create("fairq");
	tcase_add_test(tc, test_a_flood_from_one_identity_waits_its_turn);
	tcase_add_test(tc, test_identities_take_turns);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
