/* The token engine and dispatch, in process: no sockets, no TLS. */
#include <check.h>
#include <string.h>

#include "dispatch.h"
#include "engine.h"
#include "engine_support.h"

#include "harness.h"

static rhd_engine_t engine;
static rhd_app_t *app;
static const uint8_t app_id[RHD_APP_ID_LEN] = {1, 2, 3};
static th_store_t store;

static void setup(void)
{
	th_store_open(&store);
	ck_assert_int_eq(th_engine_init(&engine, &store, 2), 0);
	app = rhd_engine_attach(&engine, app_id, sizeof(app_id), "CN=test");
	ck_assert_ptr_nonnull(app);
}

static void teardown(void)
{
	rhd_engine_detach(&engine, app);
	rhd_engine_cleanup(&engine);
	th_store_cleanup(&store);
}

typedef struct call {
	Remhsm__Request req;
	Remhsm__Response resp;
	rh_arena_t arena;
} call_t;

static uint64_t run(rhd_app_t *a, call_t *c)
{
	remhsm__response__init(&c->resp);
	c->arena = (rh_arena_t)RH_ARENA_INIT;
	rhd_dispatch(&engine, a, &c->req, &c->resp, &c->arena);
	return c->resp.rv;
}

static uint64_t open_session(rhd_app_t *a, uint64_t slot, uint64_t flags,
			     uint64_t *handle)
{
	Remhsm__OpenSessionReq body = REMHSM__OPEN_SESSION_REQ__INIT;
	body.slot = slot;
	body.flags = flags;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	c.req.open_session = &body;
	uint64_t rv = run(a, &c);
	if (rv == CKR_OK)
		*handle = c.resp.open_session->session;
	rh_arena_cleanup(&c.arena);
	return rv;
}

static uint64_t random_call(rhd_app_t *a, uint64_t session, uint64_t length)
{
	Remhsm__GenerateRandomReq body = REMHSM__GENERATE_RANDOM_REQ__INIT;
	body.session = session;
	body.length = length;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_GENERATE_RANDOM;
	c.req.generate_random = &body;
	uint64_t rv = run(a, &c);
	if (rv == CKR_OK)
		ck_assert_uint_eq(c.resp.generate_random->data.len, length);
	rh_arena_cleanup(&c.arena);
	return rv;
}

START_TEST(test_response_carries_request_id)
{
	Remhsm__GetInfoReq body = REMHSM__GET_INFO_REQ__INIT;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.id = 0x1234567890ull;
	c.req.call_case = REMHSM__REQUEST__CALL_GET_INFO;
	c.req.get_info = &body;
	ck_assert_uint_eq(run(app, &c), CKR_OK);
	ck_assert_uint_eq(c.resp.id, 0x1234567890ull);
	ck_assert_uint_eq(c.resp.result_case,
			  REMHSM__RESPONSE__RESULT_GET_INFO);
	ck_assert_uint_eq(c.resp.get_info->cryptoki_version->major, 2);
	ck_assert_uint_eq(c.resp.get_info->cryptoki_version->minor, 40);
	rh_arena_cleanup(&c.arena);
}
END_TEST

START_TEST(test_slot_list_has_configured_slots)
{
	Remhsm__GetSlotListReq body = REMHSM__GET_SLOT_LIST_REQ__INIT;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_GET_SLOT_LIST;
	c.req.get_slot_list = &body;
	ck_assert_uint_eq(run(app, &c), CKR_OK);
	ck_assert_uint_eq(c.resp.get_slot_list->n_slots, 2);
	ck_assert_uint_eq(c.resp.get_slot_list->slots[1], 1);
	rh_arena_cleanup(&c.arena);
}
END_TEST

START_TEST(test_slot_and_token_info_reject_unknown_slot)
{
	Remhsm__GetSlotInfoReq slot = REMHSM__GET_SLOT_INFO_REQ__INIT;
	slot.slot = 2;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_GET_SLOT_INFO;
	c.req.get_slot_info = &slot;
	ck_assert_uint_eq(run(app, &c), CKR_SLOT_ID_INVALID);
	rh_arena_cleanup(&c.arena);
	Remhsm__GetTokenInfoReq token = REMHSM__GET_TOKEN_INFO_REQ__INIT;
	token.slot = UINT64_MAX;
	c.req.call_case = REMHSM__REQUEST__CALL_GET_TOKEN_INFO;
	c.req.get_token_info = &token;
	ck_assert_uint_eq(run(app, &c), CKR_SLOT_ID_INVALID);
	rh_arena_cleanup(&c.arena);
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 7, CKF_SERIAL_SESSION, &h),
			  CKR_SLOT_ID_INVALID);
}
END_TEST

START_TEST(test_token_info_counts_this_apps_sessions)
{
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h), CKR_OK);
	ck_assert_uint_eq(
		open_session(app, 0, CKF_SERIAL_SESSION | CKF_RW_SESSION, &h),
		CKR_OK);
	ck_assert_uint_eq(open_session(app, 1, CKF_SERIAL_SESSION, &h), CKR_OK);
	Remhsm__GetTokenInfoReq token = REMHSM__GET_TOKEN_INFO_REQ__INIT;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_GET_TOKEN_INFO;
	c.req.get_token_info = &token;
	ck_assert_uint_eq(run(app, &c), CKR_OK);
	ck_assert_uint_eq(c.resp.get_token_info->session_count, 2);
	ck_assert_uint_eq(c.resp.get_token_info->rw_session_count, 1);
	ck_assert_uint_eq(c.resp.get_token_info->flags & CKF_RNG, CKF_RNG);
	ck_assert_uint_eq(c.resp.get_token_info->flags & CKF_TOKEN_INITIALIZED,
			  0);
	rh_arena_cleanup(&c.arena);
}
END_TEST

START_TEST(test_open_session_requires_serial_flag)
{
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 0, CKF_RW_SESSION, &h),
			  CKR_SESSION_PARALLEL_NOT_SUPPORTED);
}
END_TEST

START_TEST(test_session_info_reports_state)
{
	uint64_t ro, rw;
	ck_assert_uint_eq(open_session(app, 1, CKF_SERIAL_SESSION, &ro),
			  CKR_OK);
	ck_assert_uint_eq(
		open_session(app, 1, CKF_SERIAL_SESSION | CKF_RW_SESSION, &rw),
		CKR_OK);
	ck_assert_uint_ne(ro, rw);
	ck_assert_uint_le(rw, UINT32_MAX);
	Remhsm__GetSessionInfoReq body = REMHSM__GET_SESSION_INFO_REQ__INIT;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_GET_SESSION_INFO;
	c.req.get_session_info = &body;
	body.session = rw;
	ck_assert_uint_eq(run(app, &c), CKR_OK);
	ck_assert_uint_eq(c.resp.get_session_info->state,
			  CKS_RW_PUBLIC_SESSION);
	ck_assert_uint_eq(c.resp.get_session_info->slot, 1);
	rh_arena_cleanup(&c.arena);
	body.session = ro;
	ck_assert_uint_eq(run(app, &c), CKR_OK);
	ck_assert_uint_eq(c.resp.get_session_info->state,
			  CKS_RO_PUBLIC_SESSION);
	rh_arena_cleanup(&c.arena);
}
END_TEST

START_TEST(test_closed_session_handle_is_invalid)
{
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h), CKR_OK);
	Remhsm__CloseSessionReq body = REMHSM__CLOSE_SESSION_REQ__INIT;
	body.session = h;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_CLOSE_SESSION;
	c.req.close_session = &body;
	ck_assert_uint_eq(run(app, &c), CKR_OK);
	ck_assert_uint_eq(run(app, &c), CKR_SESSION_HANDLE_INVALID);
	ck_assert_uint_eq(random_call(app, h, 8), CKR_SESSION_HANDLE_INVALID);
}
END_TEST

START_TEST(test_close_all_sessions_closes_only_that_slot)
{
	uint64_t s0, s1;
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &s0),
			  CKR_OK);
	ck_assert_uint_eq(open_session(app, 1, CKF_SERIAL_SESSION, &s1),
			  CKR_OK);
	Remhsm__CloseAllSessionsReq body = REMHSM__CLOSE_ALL_SESSIONS_REQ__INIT;
	body.slot = 0;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_CLOSE_ALL_SESSIONS;
	c.req.close_all_sessions = &body;
	ck_assert_uint_eq(run(app, &c), CKR_OK);
	ck_assert_uint_eq(random_call(app, s0, 8), CKR_SESSION_HANDLE_INVALID);
	ck_assert_uint_eq(random_call(app, s1, 8), CKR_OK);
	body.slot = 9;
	ck_assert_uint_eq(run(app, &c), CKR_SLOT_ID_INVALID);
}
END_TEST

START_TEST(test_handles_of_another_app_are_meaningless)
{
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h), CKR_OK);
	const uint8_t other_id[RHD_APP_ID_LEN] = {9};
	rhd_app_t *other = rhd_engine_attach(&engine, other_id,
					     sizeof(other_id), "CN=other");
	ck_assert_ptr_nonnull(other);
	ck_assert_uint_eq(random_call(other, h, 8), CKR_SESSION_HANDLE_INVALID);
	rhd_engine_detach(&engine, other);
}
END_TEST

START_TEST(test_app_id_is_bound_to_its_identity)
{
	ck_assert_ptr_null(rhd_engine_attach(&engine, app_id, sizeof(app_id),
					     "CN=intruder"));
	ck_assert_ptr_null(rhd_engine_attach(&engine, app_id, 15, "CN=test"));
	rhd_app_t *again =
		rhd_engine_attach(&engine, app_id, sizeof(app_id), "CN=test");
	ck_assert_ptr_eq(again, app);
	rhd_engine_detach(&engine, again);
}
END_TEST

START_TEST(test_last_detach_closes_the_apps_sessions)
{
	const uint8_t id[RHD_APP_ID_LEN] = {7};
	rhd_app_t *a = rhd_engine_attach(&engine, id, sizeof(id), "CN=x");
	uint64_t h;
	ck_assert_uint_eq(open_session(a, 0, CKF_SERIAL_SESSION, &h), CKR_OK);
	rhd_engine_detach(&engine, a);
	rhd_app_t *b = rhd_engine_attach(&engine, id, sizeof(id), "CN=x");
	ck_assert_uint_eq(random_call(b, h, 8), CKR_SESSION_HANDLE_INVALID);
	rhd_engine_detach(&engine, b);
}
END_TEST

START_TEST(test_random_length_is_bounded)
{
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h), CKR_OK);
	ck_assert_uint_eq(random_call(app, h, 0), CKR_OK);
	ck_assert_uint_eq(random_call(app, h, RHD_MAX_RANDOM_PER_CALL), CKR_OK);
	ck_assert_uint_eq(random_call(app, h, RHD_MAX_RANDOM_PER_CALL + 1),
			  CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(random_call(app, h, UINT64_MAX), CKR_ARGUMENTS_BAD);
}
END_TEST

static uint64_t digest_init(rhd_app_t *a, uint64_t session,
			    const Remhsm__Mechanism *mech)
{
	Remhsm__DigestInitReq body = REMHSM__DIGEST_INIT_REQ__INIT;
	body.session = session;
	body.mechanism = (Remhsm__Mechanism *)mech;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_DIGEST_INIT;
	c.req.digest_init = &body;
	uint64_t rv = run(a, &c);
	rh_arena_cleanup(&c.arena);
	return rv;
}

/* From any client, not only the module: a parameter sent with a
 * mechanism that takes none is ignored, and the type is judged first. */
START_TEST(test_parameters_of_parameterless_mechanisms_are_ignored)
{
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h), CKR_OK);
	static uint8_t junk[3000] = {0xff};
	Remhsm__Mechanism m = REMHSM__MECHANISM__INIT;
	m.type = CKM_VENDOR_DEFINED | 7;
	m.parameter_case = REMHSM__MECHANISM__PARAMETER_RAW;
	m.raw = (ProtobufCBinaryData){sizeof(junk), junk};
	ck_assert_uint_eq(digest_init(app, h, &m), CKR_MECHANISM_INVALID);
	m.type = CKM_SHA256;
	ck_assert_uint_eq(digest_init(app, h, &m), CKR_OK);
}
END_TEST

static uint64_t digest_call(rhd_app_t *a, uint64_t session,
			    Remhsm__OutputBuffer *output, int arguments_bad)
{
	Remhsm__DigestReq body = REMHSM__DIGEST_REQ__INIT;
	body.session = session;
	body.output = output;
	body.arguments_bad = arguments_bad;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_DIGEST;
	c.req.digest = &body;
	uint64_t rv = run(a, &c);
	rh_arena_cleanup(&c.arena);
	return rv;
}

/* From a raw client: no output buffer, or the flag, is the caller's bad
 * arguments, and ends the operation like every answer but a length query
 * and CKR_BUFFER_TOO_SMALL. */
START_TEST(test_bad_arguments_end_the_digest)
{
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h), CKR_OK);
	Remhsm__Mechanism m = REMHSM__MECHANISM__INIT;
	m.type = CKM_SHA256;
	Remhsm__OutputBuffer room = REMHSM__OUTPUT_BUFFER__INIT;
	room.has_buffer = 1;
	room.buffer_len = 64;
	for (int flagged = 0; flagged < 2; flagged++) {
		ck_assert_uint_eq(digest_init(app, h, &m), CKR_OK);
		ck_assert_uint_eq(
			digest_call(app, h, flagged ? &room : NULL, flagged),
			CKR_ARGUMENTS_BAD);
		ck_assert_uint_eq(digest_call(app, h, &room, 0),
				  CKR_OPERATION_NOT_INITIALIZED);
	}
	ck_assert_uint_eq(digest_call(app, 999, NULL, 1),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

START_TEST(test_seed_random_needs_a_session)
{
	uint8_t seed[16] = {0};
	Remhsm__SeedRandomReq body = REMHSM__SEED_RANDOM_REQ__INIT;
	body.session = 12345;
	body.seed = (ProtobufCBinaryData){sizeof(seed), seed};
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL_SEED_RANDOM;
	c.req.seed_random = &body;
	ck_assert_uint_eq(run(app, &c), CKR_SESSION_HANDLE_INVALID);
	uint64_t h;
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h), CKR_OK);
	body.session = h;
	ck_assert_uint_eq(run(app, &c), CKR_OK);
}
END_TEST

START_TEST(test_session_count_is_bounded)
{
	uint64_t h;
	for (unsigned i = 0; i < RHD_MAX_SESSIONS_PER_APP; i++)
		ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h),
				  CKR_OK);
	ck_assert_uint_eq(open_session(app, 0, CKF_SERIAL_SESSION, &h),
			  CKR_SESSION_COUNT);
}
END_TEST

START_TEST(test_unserved_and_unknown_calls_are_not_supported)
{
	/* Every call of protocol v1 is served; a call this version does not
	 * know, or one without its body, is answered all the same. */
	Remhsm__GetInfoReq info = REMHSM__GET_INFO_REQ__INIT;
	call_t c = {.req = REMHSM__REQUEST__INIT};
	c.req.call_case = REMHSM__REQUEST__CALL__NOT_SET;
	ck_assert_uint_eq(run(app, &c), CKR_FUNCTION_NOT_SUPPORTED);
	c.req.call_case = (Remhsm__Request__CallCase)99;
	c.req.get_info = &info;
	ck_assert_uint_eq(run(app, &c), CKR_FUNCTION_NOT_SUPPORTED);
	c.req.call_case = REMHSM__REQUEST__CALL_GET_INFO;
	c.req.get_info = NULL;
	ck_assert_uint_eq(run(app, &c), CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_only_small_ecdsa_with_its_init_is_short)
{
	Remhsm__Mechanism ecdsa = REMHSM__MECHANISM__INIT;
	Remhsm__Mechanism rsa = REMHSM__MECHANISM__INIT;
	ecdsa.type = CKM_ECDSA_SHA256;
	rsa.type = CKM_SHA256_RSA_PKCS;
	Remhsm__SignInitReq init = REMHSM__SIGN_INIT_REQ__INIT;
	init.mechanism = &ecdsa;
	Remhsm__SignReq sign = REMHSM__SIGN_REQ__INIT;
	sign.data.len = RHD_SHORT_CALL_DATA;
	sign.init = &init;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_SIGN;
	req.sign = &sign;
	ck_assert_int_eq(rhd_dispatch_is_short(&req), 1);
	sign.data.len = RHD_SHORT_CALL_DATA + 1;
	ck_assert_int_eq(rhd_dispatch_is_short(&req), 0);
	sign.data.len = 32;
	init.mechanism = &rsa;
	ck_assert_int_eq(rhd_dispatch_is_short(&req), 0);
	init.mechanism = NULL;
	ck_assert_int_eq(rhd_dispatch_is_short(&req), 0);
	sign.init = NULL; /* its init ran apart: the mechanism is unknown */
	ck_assert_int_eq(rhd_dispatch_is_short(&req), 0);
	req.sign = NULL;
	ck_assert_int_eq(rhd_dispatch_is_short(&req), 0);

	Remhsm__VerifyInitReq vinit = REMHSM__VERIFY_INIT_REQ__INIT;
	vinit.mechanism = &ecdsa;
	Remhsm__VerifyReq verify = REMHSM__VERIFY_REQ__INIT;
	verify.init = &vinit;
	req.call_case = REMHSM__REQUEST__CALL_VERIFY;
	req.verify = &verify;
	ck_assert_int_eq(rhd_dispatch_is_short(&req), 1);
	Remhsm__DigestReq digest = REMHSM__DIGEST_REQ__INIT;
	req.call_case = REMHSM__REQUEST__CALL_DIGEST;
	req.digest = &digest;
	ck_assert_int_eq(rhd_dispatch_is_short(&req), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dispatch");
	TCase *tc = tcase_create("dispatch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_response_carries_request_id);
	tcase_add_test(tc, test_slot_list_has_configured_slots);
	tcase_add_test(tc, test_slot_and_token_info_reject_unknown_slot);
	tcase_add_test(tc, test_token_info_counts_this_apps_sessions);
	tcase_add_test(tc, test_open_session_requires_serial_flag);
	tcase_add_test(tc, test_session_info_reports_state);
	tcase_add_test(tc, test_closed_session_handle_is_invalid);
	tcase_add_test(tc, test_close_all_sessions_closes_only_that_slot);
	tcase_add_test(tc, test_handles_of_another_app_are_meaningless);
	tcase_add_test(tc, test_app_id_is_bound_to_its_identity);
	tcase_add_test(tc, test_last_detach_closes_the_apps_sessions);
	tcase_add_test(tc, test_random_length_is_bounded);
	tcase_add_test(tc,
		       test_parameters_of_parameterless_mechanisms_are_ignored);
	tcase_add_test(tc, test_bad_arguments_end_the_digest);
	tcase_add_test(tc, test_seed_random_needs_a_session);
	tcase_add_test(tc, test_session_count_is_bounded);
	tcase_add_test(tc, test_unserved_and_unknown_calls_are_not_supported);
	tcase_add_test(tc, test_only_small_ecdsa_with_its_init_is_short);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
