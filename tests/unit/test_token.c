/* The token lifecycle through dispatch, over a real store: C_InitToken,
 * C_InitPIN, C_SetPIN, C_Login, C_Logout, flags, states and lockout. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "dispatch.h"
#include "engine_support.h"
#include "harness.h"

#define SO_PIN "so-secret"
#define USER_PIN "0000"

static th_store_t store;
static rhd_engine_t engine;
static rhd_app_t *app, *other;

static rhd_app_t *attach(uint8_t tag, const char *identity)
{
	uint8_t id[RHD_APP_ID_LEN] = {tag};
	rhd_app_t *a = rhd_engine_attach(&engine, id, sizeof(id), identity);
	ck_assert_ptr_nonnull(a);
	return a;
}

static void start_engine(void)
{
	ck_assert_int_eq(th_engine_init(&engine, &store, 2), 0);
	app = attach(1, "CN=one");
	other = attach(2, "CN=two");
}

static void stop_engine(void)
{
	rhd_engine_detach(&engine, app);
	rhd_engine_detach(&engine, other);
	rhd_engine_cleanup(&engine);
}

static void setup(void)
{
	th_store_open(&store);
	start_engine();
}

static void teardown(void)
{
	stop_engine();
	th_store_cleanup(&store);
}

/* One call through dispatch; the result is copied out before the arena goes. */
static uint64_t run(rhd_app_t *a, Remhsm__Request *req, uint64_t *out)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	rh_arena_t arena = RH_ARENA_INIT;
	rhd_dispatch(&engine, a, req, &resp, &arena);
	if (out && resp.result_case == REMHSM__RESPONSE__RESULT_OPEN_SESSION)
		*out = resp.open_session->session;
	if (out && resp.result_case == REMHSM__RESPONSE__RESULT_GET_TOKEN_INFO)
		*out = resp.get_token_info->flags;
	if (out &&
	    resp.result_case == REMHSM__RESPONSE__RESULT_GET_SESSION_INFO)
		*out = resp.get_session_info->state;
	rh_arena_cleanup(&arena);
	return resp.rv;
}

static ProtobufCBinaryData bytes(const char *s)
{
	return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

static uint64_t init_token(uint64_t slot, const char *pin, const char *label)
{
	Remhsm__InitTokenReq b = REMHSM__INIT_TOKEN_REQ__INIT;
	b.slot = slot;
	b.so_pin = bytes(pin);
	b.label = bytes(label);
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_INIT_TOKEN;
	r.init_token = &b;
	return run(app, &r, NULL);
}

static uint64_t open_rv(rhd_app_t *a, uint64_t slot, int rw, uint64_t *h)
{
	Remhsm__OpenSessionReq b = REMHSM__OPEN_SESSION_REQ__INIT;
	b.slot = slot;
	b.flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	r.open_session = &b;
	return run(a, &r, h);
}

static uint64_t open_session(rhd_app_t *a, uint64_t slot, int rw)
{
	uint64_t h = 0;
	ck_assert_uint_eq(open_rv(a, slot, rw, &h), CKR_OK);
	return h;
}

static uint64_t close_session(rhd_app_t *a, uint64_t h)
{
	Remhsm__CloseSessionReq b = REMHSM__CLOSE_SESSION_REQ__INIT;
	b.session = h;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_CLOSE_SESSION;
	r.close_session = &b;
	return run(a, &r, NULL);
}

static uint64_t login(rhd_app_t *a, uint64_t h, CK_USER_TYPE user,
		      const char *pin)
{
	Remhsm__LoginReq b = REMHSM__LOGIN_REQ__INIT;
	b.session = h;
	b.user_type = user;
	b.pin = bytes(pin);
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_LOGIN;
	r.login = &b;
	return run(a, &r, NULL);
}

static uint64_t logout(rhd_app_t *a, uint64_t h)
{
	Remhsm__LogoutReq b = REMHSM__LOGOUT_REQ__INIT;
	b.session = h;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_LOGOUT;
	r.logout = &b;
	return run(a, &r, NULL);
}

static uint64_t init_pin(rhd_app_t *a, uint64_t h, const char *pin)
{
	Remhsm__InitPinReq b = REMHSM__INIT_PIN_REQ__INIT;
	b.session = h;
	b.pin = bytes(pin);
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_INIT_PIN;
	r.init_pin = &b;
	return run(a, &r, NULL);
}

static uint64_t set_pin(rhd_app_t *a, uint64_t h, const char *old,
			const char *new_pin)
{
	Remhsm__SetPinReq b = REMHSM__SET_PIN_REQ__INIT;
	b.session = h;
	b.old_pin = bytes(old);
	b.new_pin = bytes(new_pin);
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_SET_PIN;
	r.set_pin = &b;
	return run(a, &r, NULL);
}

static uint64_t token_flags(uint64_t slot)
{
	Remhsm__GetTokenInfoReq b = REMHSM__GET_TOKEN_INFO_REQ__INIT;
	b.slot = slot;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_GET_TOKEN_INFO;
	r.get_token_info = &b;
	uint64_t flags = 0;
	ck_assert_uint_eq(run(app, &r, &flags), CKR_OK);
	return flags;
}

static uint64_t state_of(rhd_app_t *a, uint64_t h)
{
	Remhsm__GetSessionInfoReq b = REMHSM__GET_SESSION_INFO_REQ__INIT;
	b.session = h;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_GET_SESSION_INFO;
	r.get_session_info = &b;
	uint64_t state = 99;
	ck_assert_uint_eq(run(a, &r, &state), CKR_OK);
	return state;
}

/* An initialised token with user PIN "0000"; no session left open. */
static void provision(uint64_t slot)
{
	ck_assert_uint_eq(init_token(slot, SO_PIN, "remhsm test token"),
			  CKR_OK);
	uint64_t h = open_session(app, slot, 1);
	ck_assert_uint_eq(login(app, h, CKU_SO, SO_PIN), CKR_OK);
	ck_assert_uint_eq(init_pin(app, h, USER_PIN), CKR_OK);
	ck_assert_uint_eq(close_session(app, h), CKR_OK);
}

START_TEST(test_blank_token_is_uninitialized_and_refuses_login)
{
	ck_assert_uint_eq(token_flags(0), CKF_RNG);
	uint64_t h = open_session(app, 0, 1);
	ck_assert_uint_eq(login(app, h, CKU_USER, USER_PIN),
			  CKR_USER_PIN_NOT_INITIALIZED);
}
END_TEST

START_TEST(test_init_token_sets_flags_and_blank_padded_label)
{
	ck_assert_uint_eq(init_token(0, SO_PIN, "My Token"), CKR_OK);
	ck_assert_uint_eq(token_flags(0),
			  CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED);
	rhd_token_t *t = rhd_engine_token(&engine, 0);
	ck_assert_mem_eq(t->label, "My Token                        ", 32);
	ck_assert_uint_eq(token_flags(1), CKF_RNG);
}
END_TEST

START_TEST(test_pin_length_is_checked)
{
	ck_assert_uint_eq(init_token(0, "123", "t"), CKR_PIN_LEN_RANGE);
	char long_pin[300];
	memset(long_pin, '7', sizeof(long_pin) - 1);
	long_pin[sizeof(long_pin) - 1] = '\0';
	ck_assert_uint_eq(init_token(0, long_pin, "t"), CKR_PIN_LEN_RANGE);
	ck_assert_uint_eq(token_flags(0), CKF_RNG);
	provision(0);
	uint64_t h = open_session(app, 0, 1);
	ck_assert_uint_eq(login(app, h, CKU_SO, SO_PIN), CKR_OK);
	ck_assert_uint_eq(init_pin(app, h, "12"), CKR_PIN_LEN_RANGE);
	ck_assert_uint_eq(set_pin(app, h, SO_PIN, "x"), CKR_PIN_LEN_RANGE);
}
END_TEST

START_TEST(test_init_token_with_a_session_open_is_refused)
{
	uint64_t h = open_session(other, 0, 0);
	ck_assert_uint_eq(init_token(0, SO_PIN, "t"), CKR_SESSION_EXISTS);
	ck_assert_uint_eq(close_session(other, h), CKR_OK);
	ck_assert_uint_eq(init_token(0, SO_PIN, "t"), CKR_OK);
}
END_TEST

START_TEST(test_reinit_needs_the_so_pin_and_wipes_the_token)
{
	provision(0);
	uint64_t id;
	ck_assert_int_eq(rhs_object_create(store.store, 0, NULL,
					   (const uint8_t *)"o", 1, &id),
			 RHS_OK);
	ck_assert_uint_eq(init_token(0, "wrong-so-pin", "again"),
			  CKR_PIN_INCORRECT);
	ck_assert_uint_eq(token_flags(0) & CKF_SO_PIN_COUNT_LOW,
			  CKF_SO_PIN_COUNT_LOW);
	ck_assert_uint_eq(init_token(0, SO_PIN, "again"), CKR_OK);
	ck_assert_uint_eq(token_flags(0) & (CKF_USER_PIN_INITIALIZED |
					    CKF_SO_PIN_COUNT_LOW),
			  0);
	uint64_t *ids;
	size_t n;
	ck_assert_int_eq(rhs_object_find(store.store, 0, NULL, &ids, &n),
			 RHS_OK);
	ck_assert_uint_eq(n, 0);
	free(ids);
}
END_TEST

START_TEST(test_so_inits_the_user_pin_and_the_user_logs_in)
{
	ck_assert_uint_eq(init_token(0, SO_PIN, "t"), CKR_OK);
	uint64_t rw = open_session(app, 0, 1);
	ck_assert_uint_eq(init_pin(app, rw, USER_PIN), CKR_USER_NOT_LOGGED_IN);
	ck_assert_uint_eq(login(app, rw, CKU_SO, SO_PIN), CKR_OK);
	ck_assert_uint_eq(state_of(app, rw), CKS_RW_SO_FUNCTIONS);
	ck_assert_uint_eq(init_pin(app, rw, USER_PIN), CKR_OK);
	ck_assert_uint_eq(token_flags(0) & CKF_USER_PIN_INITIALIZED,
			  CKF_USER_PIN_INITIALIZED);
	ck_assert_uint_eq(logout(app, rw), CKR_OK);
	ck_assert_uint_eq(state_of(app, rw), CKS_RW_PUBLIC_SESSION);
	uint64_t ro = open_session(app, 0, 0);
	ck_assert_uint_eq(login(app, ro, CKU_USER, USER_PIN), CKR_OK);
	ck_assert_uint_eq(state_of(app, ro), CKS_RO_USER_FUNCTIONS);
	ck_assert_uint_eq(state_of(app, rw), CKS_RW_USER_FUNCTIONS);
}
END_TEST

START_TEST(test_login_rules_and_their_codes)
{
	provision(0);
	uint64_t rw = open_session(app, 0, 1), ro = open_session(app, 0, 0);
	ck_assert_uint_eq(login(app, rw, CKU_SO, SO_PIN),
			  CKR_SESSION_READ_ONLY_EXISTS);
	ck_assert_uint_eq(login(app, rw, CKU_CONTEXT_SPECIFIC, USER_PIN),
			  CKR_OPERATION_NOT_INITIALIZED);
	ck_assert_uint_eq(login(app, rw, 7, USER_PIN), CKR_USER_TYPE_INVALID);
	ck_assert_uint_eq(login(app, 999, CKU_USER, USER_PIN),
			  CKR_SESSION_HANDLE_INVALID);
	ck_assert_uint_eq(logout(app, rw), CKR_USER_NOT_LOGGED_IN);
	ck_assert_uint_eq(login(app, rw, CKU_USER, USER_PIN), CKR_OK);
	ck_assert_uint_eq(login(app, ro, CKU_USER, USER_PIN),
			  CKR_USER_ALREADY_LOGGED_IN);
	ck_assert_uint_eq(login(app, rw, CKU_SO, SO_PIN),
			  CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
	ck_assert_uint_eq(logout(app, ro), CKR_OK);
	ck_assert_uint_eq(close_session(app, ro), CKR_OK);
	ck_assert_uint_eq(login(app, rw, CKU_SO, SO_PIN), CKR_OK);
	ck_assert_uint_eq(open_rv(app, 0, 0, NULL),
			  CKR_SESSION_READ_WRITE_SO_EXISTS);
}
END_TEST

START_TEST(test_login_is_shared_by_an_apps_sessions_only)
{
	provision(0);
	uint64_t a1 = open_session(app, 0, 0), a2 = open_session(app, 0, 1);
	uint64_t b1 = open_session(other, 0, 0);
	ck_assert_uint_eq(login(app, a1, CKU_USER, USER_PIN), CKR_OK);
	ck_assert_uint_eq(state_of(app, a2), CKS_RW_USER_FUNCTIONS);
	ck_assert_uint_eq(state_of(other, b1), CKS_RO_PUBLIC_SESSION);
	ck_assert_uint_eq(login(other, b1, CKU_USER, USER_PIN), CKR_OK);
}
END_TEST

START_TEST(test_closing_the_last_session_logs_out)
{
	provision(0);
	uint64_t h = open_session(app, 0, 0);
	ck_assert_uint_eq(login(app, h, CKU_USER, USER_PIN), CKR_OK);
	ck_assert_uint_eq(close_session(app, h), CKR_OK);
	h = open_session(app, 0, 0);
	ck_assert_uint_eq(state_of(app, h), CKS_RO_PUBLIC_SESSION);
}
END_TEST

START_TEST(test_wrong_pins_lock_after_the_limit_with_warning_flags)
{
	provision(0);
	uint64_t h = open_session(app, 0, 0);
	for (int i = 1; i <= 10; i++) {
		ck_assert_uint_eq(login(app, h, CKU_USER, "9999"),
				  CKR_PIN_INCORRECT);
		uint64_t flags = token_flags(0);
		ck_assert_uint_eq(flags & CKF_USER_PIN_COUNT_LOW,
				  CKF_USER_PIN_COUNT_LOW);
		ck_assert_uint_eq(!!(flags & CKF_USER_PIN_FINAL_TRY), i == 9);
		ck_assert_uint_eq(!!(flags & CKF_USER_PIN_LOCKED), i == 10);
	}
	ck_assert_uint_eq(login(app, h, CKU_USER, USER_PIN), CKR_PIN_LOCKED);
	ck_assert_uint_eq(login(app, h, CKU_USER, "9999"), CKR_PIN_LOCKED);
	ck_assert_uint_eq(rhd_engine_token(&engine, 0)->user_failures, 10);
}
END_TEST

START_TEST(test_correct_pin_resets_the_count)
{
	provision(0);
	uint64_t h = open_session(app, 0, 0);
	for (int i = 0; i < 9; i++)
		ck_assert_uint_eq(login(app, h, CKU_USER, "9999"),
				  CKR_PIN_INCORRECT);
	ck_assert_uint_eq(login(app, h, CKU_USER, USER_PIN), CKR_OK);
	ck_assert_uint_eq(token_flags(0) & CKF_USER_PIN_COUNT_LOW, 0);
}
END_TEST

START_TEST(test_failures_survive_a_restart)
{
	provision(0);
	uint64_t h = open_session(app, 0, 0);
	for (int i = 0; i < 7; i++)
		ck_assert_uint_eq(login(app, h, CKU_USER, "9999"),
				  CKR_PIN_INCORRECT);
	stop_engine();
	start_engine();
	h = open_session(app, 0, 0);
	ck_assert_uint_eq(rhd_engine_token(&engine, 0)->user_failures, 7);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(login(app, h, CKU_USER, "9999"),
				  CKR_PIN_INCORRECT);
	ck_assert_uint_eq(login(app, h, CKU_USER, USER_PIN), CKR_PIN_LOCKED);
}
END_TEST

START_TEST(test_user_changes_own_pin)
{
	provision(0);
	uint64_t rw = open_session(app, 0, 1), ro = open_session(app, 0, 0);
	ck_assert_uint_eq(set_pin(app, ro, USER_PIN, "1234"),
			  CKR_SESSION_READ_ONLY);
	ck_assert_uint_eq(set_pin(app, rw, "4321", "1234"), CKR_PIN_INCORRECT);
	/* A public session changes the user PIN too. */
	ck_assert_uint_eq(set_pin(app, rw, USER_PIN, "1234"), CKR_OK);
	ck_assert_uint_eq(login(app, rw, CKU_USER, USER_PIN),
			  CKR_PIN_INCORRECT);
	ck_assert_uint_eq(login(app, rw, CKU_USER, "1234"), CKR_OK);
	ck_assert_uint_eq(set_pin(app, rw, "1234", "5678"), CKR_OK);
	ck_assert_uint_eq(token_flags(0) & CKF_USER_PIN_COUNT_LOW, 0);
	stop_engine();
	start_engine();
	uint64_t h = open_session(app, 0, 0);
	ck_assert_uint_eq(login(app, h, CKU_USER, "5678"), CKR_OK);
}
END_TEST

START_TEST(test_so_changes_the_so_pin)
{
	provision(0);
	uint64_t h = open_session(app, 0, 1);
	ck_assert_uint_eq(login(app, h, CKU_SO, SO_PIN), CKR_OK);
	ck_assert_uint_eq(set_pin(app, h, SO_PIN, "new-so-pin"), CKR_OK);
	ck_assert_uint_eq(logout(app, h), CKR_OK);
	ck_assert_uint_eq(login(app, h, CKU_SO, SO_PIN), CKR_PIN_INCORRECT);
	ck_assert_uint_eq(login(app, h, CKU_SO, "new-so-pin"), CKR_OK);
	ck_assert_uint_eq(logout(app, h), CKR_OK);
	ck_assert_uint_eq(login(app, h, CKU_USER, USER_PIN), CKR_OK);
}
END_TEST

START_TEST(test_init_pin_needs_an_rw_so_session)
{
	provision(0);
	uint64_t ro = open_session(app, 0, 0), rw = open_session(app, 0, 1);
	ck_assert_uint_eq(login(app, rw, CKU_USER, USER_PIN), CKR_OK);
	ck_assert_uint_eq(init_pin(app, rw, "1111"), CKR_USER_NOT_LOGGED_IN);
	ck_assert_uint_eq(init_pin(app, ro, "1111"), CKR_SESSION_READ_ONLY);
}
END_TEST

START_TEST(test_altered_token_record_is_unavailable_and_others_serve)
{
	provision(0);
	provision(1);
	stop_engine();
	/* Byte 21 changed whatever it was: a sealed record's bytes are
	 * random. */
	ck_assert_int_eq(
		th_store_sql(
			&store,
			"UPDATE tokens SET record = substr(record, 1, 20) "
			"|| CASE WHEN substr(record, 21, 1) = x'00' THEN "
			"x'ff' ELSE x'00' END || substr(record, 22) WHERE "
			"slot = 0",
			"UPDATE remhsm_tokens SET record = set_byte(record, "
			"20, 255 - get_byte(record, 20)) WHERE slot = 0"),
		0);
	start_engine();
	Remhsm__GetTokenInfoReq b = REMHSM__GET_TOKEN_INFO_REQ__INIT;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_GET_TOKEN_INFO;
	r.get_token_info = &b;
	ck_assert_uint_eq(run(app, &r, NULL), CKR_TOKEN_NOT_RECOGNIZED);
	ck_assert_uint_eq(open_rv(app, 0, 0, NULL), CKR_TOKEN_NOT_RECOGNIZED);
	ck_assert_uint_eq(init_token(0, SO_PIN, "t"), CKR_TOKEN_NOT_RECOGNIZED);
	uint64_t h = open_session(app, 1, 0);
	ck_assert_uint_eq(login(app, h, CKU_USER, USER_PIN), CKR_OK);
}
END_TEST

START_TEST(test_store_files_never_hold_the_token_key)
{
	provision(0);
	uint64_t h = open_session(app, 0, 0);
	ck_assert_uint_eq(login(app, h, CKU_USER, USER_PIN), CKR_OK);
	uint8_t key[RHS_KEY_LEN];
	memcpy(key, app->login[0].token_key, sizeof(key));
	ck_assert_msg(!th_store_holds(&store, key, sizeof(key)),
		      "the token key is in %s", store.location);
	ck_assert(!th_store_holds(&store, "remhsm test token", 17));
	/* Logging out wipes it from the application. */
	ck_assert_uint_eq(logout(app, h), CKR_OK);
	uint8_t zero[RHS_KEY_LEN] = {0};
	ck_assert_mem_eq(app->login[0].token_key, zero, sizeof(zero));
}
END_TEST

/* What the engine's index finds, checked against a walk of the list. */
static void expect_sessions_agree(void)
{
	unsigned long per_slot[2] = {0}, rw[2] = {0};
	unsigned n = 0;
	for (rhd_session_t *s = app->sessions; s; s = s->next, n++) {
		ck_assert_ptr_eq(rhd_session_find(app, s->handle), s);
		per_slot[s->slot]++;
		rw[s->slot] += (s->flags & CKF_RW_SESSION) != 0;
	}
	ck_assert_uint_eq(n, app->session_count);
	for (CK_SLOT_ID slot = 0; slot < 2; slot++) {
		unsigned long all, rws;
		rhd_session_count(app, slot, &all, &rws);
		ck_assert_uint_eq(all, per_slot[slot]);
		ck_assert_uint_eq(rws, rw[slot]);
	}
}

/* Sessions are found by hash, up to the limit and through closes in any
 * order, restores of a given handle and a slot closed whole; the counts a
 * C_GetTokenInfo reports follow. */
START_TEST(test_sessions_found_by_handle_at_the_limit)
{
	enum { LIMIT = 1024 };
	static uint32_t handles[LIMIT];
	for (unsigned i = 0; i < LIMIT; i++) {
		CK_FLAGS flags =
			CKF_SERIAL_SESSION | (i % 3 == 0 ? CKF_RW_SESSION : 0);
		ck_assert_uint_eq(rhd_session_open(&engine, app, i % 2, flags,
						   &handles[i]),
				  CKR_OK);
	}
	uint32_t extra;
	ck_assert_uint_eq(
		rhd_session_open(&engine, app, 0, CKF_SERIAL_SESSION, &extra),
		CKR_SESSION_COUNT);
	expect_sessions_agree();
	/* The even ones, in a scattered order (7919 is prime to LIMIT, so
	 * k * 7919 % LIMIT visits every index once). */
	for (unsigned k = 0; k < LIMIT; k++) {
		unsigned i = k * 7919 % LIMIT;
		if (i % 2)
			continue;
		ck_assert_uint_eq(rhd_session_close(&engine, app, handles[i]),
				  CKR_OK);
		ck_assert_ptr_null(rhd_session_find(app, handles[i]));
		ck_assert_uint_eq(rhd_session_close(&engine, app, handles[i]),
				  CKR_SESSION_HANDLE_INVALID);
	}
	ck_assert_uint_eq(app->session_count, LIMIT / 2);
	expect_sessions_agree();
	ck_assert_uint_eq(rhd_session_restore(&engine, app, 0xabcdef, 1,
					      CKF_SERIAL_SESSION),
			  CKR_OK);
	ck_assert_uint_eq(rhd_session_find(app, 0xabcdef)->slot, 1);
	expect_sessions_agree();
	rhd_session_close_slot(&engine, app, 1);
	unsigned long all, rw;
	rhd_session_count(app, 1, &all, &rw);
	ck_assert_uint_eq(all, 0);
	ck_assert_uint_eq(rw, 0);
	ck_assert_ptr_null(rhd_session_find(app, 0xabcdef));
	expect_sessions_agree();
	rhd_session_close_slot(&engine, app, 0);
	ck_assert_uint_eq(app->session_count, 0);
	expect_sessions_agree();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("token");
	TCase *tc = tcase_create("token");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_blank_token_is_uninitialized_and_refuses_login);
	tcase_add_test(tc, test_init_token_sets_flags_and_blank_padded_label);
	tcase_add_test(tc, test_pin_length_is_checked);
	tcase_add_test(tc, test_init_token_with_a_session_open_is_refused);
	tcase_add_test(tc, test_reinit_needs_the_so_pin_and_wipes_the_token);
	tcase_add_test(tc, test_so_inits_the_user_pin_and_the_user_logs_in);
	tcase_add_test(tc, test_login_rules_and_their_codes);
	tcase_add_test(tc, test_login_is_shared_by_an_apps_sessions_only);
	tcase_add_test(tc, test_closing_the_last_session_logs_out);
	tcase_add_test(tc,
		       test_wrong_pins_lock_after_the_limit_with_warning_flags);
	tcase_add_test(tc, test_correct_pin_resets_the_count);
	tcase_add_test(tc, test_failures_survive_a_restart);
	tcase_add_test(tc, test_user_changes_own_pin);
	tcase_add_test(tc, test_so_changes_the_so_pin);
	tcase_add_test(tc, test_init_pin_needs_an_rw_so_session);
	tcase_add_test(
		tc, test_altered_token_record_is_unavailable_and_others_serve);
	tcase_add_test(tc, test_store_files_never_hold_the_token_key);
	tcase_add_test(tc, test_sessions_found_by_handle_at_the_limit);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
