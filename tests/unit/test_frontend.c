/*
 * The connection's protocol above TLS (daemon/frontend.c), fed bytes in
 * process: Hello first and once, frames cut the same whatever the
 * delivery, a buffer that grows with what arrived, backpressure that keeps
 * frames for later, answers within the frame, and the same pipeline as one
 * call per frame (rhd_front_call).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "engine_support.h"
#include "frames.h"
#include "frontend.h"
#include "rh_calls.h"
#include "rh_decode.h"
#include "rh_frame.h"

#define MAX_FRAME 4096
#define MAX_ANSWERS 16

static rhd_engine_t engine;
static th_store_t store;
static rhd_config_t cfg;

typedef struct test_conn {
	rhd_front_t front;
	int hold_back;
	unsigned queued;
	unsigned answers;
	Remhsm__Response *answer[MAX_ANSWERS];
} test_conn_t;

static int port_send(void *ctx, const uint8_t *frame, size_t len)
{
	test_conn_t *c = ctx;
	ck_assert_uint_le(len, MAX_FRAME + RH_FRAME_HEADER);
	ck_assert_uint_lt(c->answers, MAX_ANSWERS);
	c->answer[c->answers++] = remhsm__response__unpack(
		NULL, len - RH_FRAME_HEADER, frame + RH_FRAME_HEADER);
	return 0;
}

static int port_queue(void *ctx, Remhsm__Request *req)
{
	test_conn_t *c = ctx;
	c->queued++;
	rhd_front_run(&c->front, req);
	return 0;
}

static int port_must_wait(void *ctx)
{
	return ((test_conn_t *)ctx)->hold_back;
}

#define CONNECTIONS 7

static unsigned port_connections(void *ctx)
{
	(void)ctx;
	return CONNECTIONS;
}

static const rhd_front_port_t port = {port_send, port_queue, port_must_wait,
				      th_front_called, port_connections};

static void setup(void)
{
	th_store_open(&store);
	ck_assert_int_eq(th_engine_init(&engine, &store, 2), 0);
	rhd_config_defaults(&cfg);
	cfg.max_frame = MAX_FRAME;
}

static void teardown(void)
{
	rhd_engine_cleanup(&engine);
	th_store_cleanup(&store);
}

static void conn_open(test_conn_t *c)
{
	memset(c, 0, sizeof(*c));
	rhd_front_init(&c->front, &engine, &cfg, &port, c);
	c->front.identity = "CN=test";
	c->front.visible_slots = ~0ull;
	c->front.roles = ~0u;
}

static void conn_close(test_conn_t *c)
{
	for (unsigned i = 0; i < c->answers; i++)
		remhsm__response__free_unpacked(c->answer[i], NULL);
	rhd_front_cleanup(&c->front);
}

/* Puts bytes in, chunk at a time (0: at once). */
static void feed(test_conn_t *c, const uint8_t *data, size_t len, size_t chunk)
{
	while (len > 0 && rhd_front_serving(&c->front)) {
		uint8_t *room;
		size_t cap;
		if (rhd_front_room(&c->front, &room, &cap) < 0)
			return;
		size_t n = chunk && chunk < len ? chunk : len;
		n = n < cap ? n : cap;
		memcpy(room, data, n);
		rhd_front_received(&c->front, n);
		data += n;
		len -= n;
	}
}

static size_t random_frame(uint8_t *out, uint64_t id, uint64_t length)
{
	Remhsm__GenerateRandomReq rnd = REMHSM__GENERATE_RANDOM_REQ__INIT;
	rnd.session = 1;
	rnd.length = length;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = id;
	req.call_case = REMHSM__REQUEST__CALL_GENERATE_RANDOM;
	req.generate_random = &rnd;
	return th_frame_into(out, &req);
}

static size_t open_session_frame(uint8_t *out, uint64_t id)
{
	Remhsm__OpenSessionReq open = REMHSM__OPEN_SESSION_REQ__INIT;
	open.flags = CKF_SERIAL_SESSION;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = id;
	req.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	req.open_session = &open;
	return th_frame_into(out, &req);
}

/* Hello, a session, two random calls: the same answers at once and one
 * byte at a time. */
START_TEST(test_any_delivery_same_answers)
{
	uint8_t stream[512];
	size_t len = th_hello_into(stream, RH_PROTOCOL_VERSION, 9);
	len += open_session_frame(stream + len, 2);
	len += random_frame(stream + len, 3, 16);
	len += random_frame(stream + len, 4, 32);
	static const size_t chunks[] = {0, 1, 7};
	for (unsigned k = 0; k < 3; k++) {
		test_conn_t c;
		conn_open(&c);
		feed(&c, stream, len, chunks[k]);
		ck_assert_ptr_null(c.front.failure);
		ck_assert_uint_eq(c.answers, 4);
		ck_assert_int_eq(c.answer[0]->result_case,
				 REMHSM__RESPONSE__RESULT_HELLO);
		ck_assert_uint_eq(c.answer[0]->hello->max_frame, MAX_FRAME);
		for (unsigned i = 1; i < 4; i++) {
			ck_assert_uint_eq(c.answer[i]->id, i + 1);
			ck_assert_uint_eq(c.answer[i]->rv, CKR_OK);
		}
		ck_assert_uint_eq(c.answer[3]->generate_random->data.len, 32);
		ck_assert_uint_eq(c.queued, 0);
		conn_close(&c);
	}
}
END_TEST

START_TEST(test_call_before_hello_fails)
{
	uint8_t stream[64];
	size_t len = random_frame(stream, 1, 8);
	test_conn_t c;
	conn_open(&c);
	feed(&c, stream, len, 0);
	ck_assert_str_eq(c.front.failure, "request before hello");
	ck_assert_uint_eq(c.answers, 0);
	conn_close(&c);
}
END_TEST

START_TEST(test_second_hello_fails)
{
	uint8_t stream[128];
	size_t len = th_hello_into(stream, RH_PROTOCOL_VERSION, 9);
	len += th_hello_into(stream + len, RH_PROTOCOL_VERSION, 9);
	test_conn_t c;
	conn_open(&c);
	feed(&c, stream, len, 0);
	ck_assert_str_eq(c.front.failure, "second hello");
	ck_assert_uint_eq(c.answers, 1);
	conn_close(&c);
}
END_TEST

/* A probe is answered with the daemon's connections and takes no
 * application in: a call after it is still before Hello, and a real Hello
 * may follow it on the same connection. */
START_TEST(test_probe_tells_the_load_and_takes_no_application)
{
	uint8_t stream[256];
	size_t len = th_probe_into(stream, RH_PROTOCOL_VERSION);
	test_conn_t c;
	conn_open(&c);
	feed(&c, stream, len, 0);
	ck_assert_ptr_null(c.front.failure);
	ck_assert_ptr_null(c.front.app);
	ck_assert_uint_eq(c.answers, 1);
	ck_assert_uint_eq(c.answer[0]->rv, CKR_OK);
	ck_assert(c.answer[0]->hello->probed);
	ck_assert_uint_eq(c.answer[0]->hello->connections, CONNECTIONS);
	ck_assert_uint_eq(c.answer[0]->hello->version, RH_PROTOCOL_VERSION);
	len = th_hello_into(stream, RH_PROTOCOL_VERSION, 9);
	len += open_session_frame(stream + len, 2);
	feed(&c, stream, len, 0);
	ck_assert_ptr_null(c.front.failure);
	ck_assert_uint_eq(c.answers, 3);
	ck_assert(!c.answer[1]->hello->probed);
	ck_assert_uint_eq(c.answer[2]->rv, CKR_OK);
	conn_close(&c);
	conn_open(&c);
	len = th_probe_into(stream, RH_PROTOCOL_VERSION);
	len += random_frame(stream + len, 2, 8);
	feed(&c, stream, len, 0);
	ck_assert_str_eq(c.front.failure, "request before hello");
	conn_close(&c);
	conn_open(&c);
	len = th_probe_into(stream, RH_PROTOCOL_VERSION + 1);
	feed(&c, stream, len, 0);
	ck_assert(c.front.refused);
	ck_assert_uint_eq(c.answer[0]->rv, CKR_FUNCTION_NOT_SUPPORTED);
	ck_assert(!c.answer[0]->hello->probed);
	conn_close(&c);
}
END_TEST

/* No common version: answered, then nothing more is taken. */
START_TEST(test_refused_hello_takes_nothing_more)
{
	uint8_t stream[128];
	size_t len = th_hello_into(stream, RH_PROTOCOL_VERSION + 1, 9);
	len += random_frame(stream + len, 2, 8);
	test_conn_t c;
	conn_open(&c);
	feed(&c, stream, len, 0);
	ck_assert(c.front.refused);
	ck_assert_ptr_null(c.front.app);
	ck_assert_uint_eq(c.answers, 1);
	ck_assert_uint_eq(c.answer[0]->rv, CKR_FUNCTION_NOT_SUPPORTED);
	ck_assert(!rhd_front_serving(&c.front));
	conn_close(&c);
}
END_TEST

/* A header announcing a frame over the limit fails before any room is
 * made for it; one within the limit gets room as its bytes arrive. */
START_TEST(test_buffer_follows_arrivals)
{
	uint8_t header[RH_FRAME_HEADER];
	test_conn_t c;
	conn_open(&c);
	rh_frame_header_encode(header, MAX_FRAME);
	feed(&c, header, sizeof(header), 0);
	ck_assert_ptr_null(c.front.failure);
	ck_assert_uint_le(c.front.incap, 16384);
	conn_close(&c);

	conn_open(&c);
	rh_frame_header_encode(header, MAX_FRAME + 1);
	feed(&c, header, sizeof(header), 0);
	ck_assert_str_eq(c.front.failure, "frame exceeds the maximum size");
	ck_assert_uint_eq(c.answers, 0);
	conn_close(&c);
}
END_TEST

/* Frames that arrive while the transport holds back wait, in order. */
START_TEST(test_backpressure_keeps_frames)
{
	uint8_t stream[256];
	size_t len = th_hello_into(stream, RH_PROTOCOL_VERSION, 9);
	len += open_session_frame(stream + len, 2);
	len += random_frame(stream + len, 3, 8);
	test_conn_t c;
	conn_open(&c);
	c.hold_back = 1;
	feed(&c, stream, len, 0);
	ck_assert_uint_eq(c.answers, 0);
	c.hold_back = 0;
	ck_assert_uint_eq(rhd_front_take_frames(&c.front), 3);
	ck_assert_uint_eq(c.answers, 3);
	ck_assert_uint_eq(c.answer[2]->id, 3);
	ck_assert_uint_eq(c.front.inlen, 0);
	conn_close(&c);
}
END_TEST

/* An answer larger than the frame goes out as CKR_DEVICE_MEMORY. */
START_TEST(test_answer_held_to_frame)
{
	uint8_t stream[256];
	size_t len = th_hello_into(stream, RH_PROTOCOL_VERSION, 9);
	len += open_session_frame(stream + len, 2);
	len += random_frame(stream + len, 3, MAX_FRAME);
	test_conn_t c;
	conn_open(&c);
	feed(&c, stream, len, 0);
	ck_assert_ptr_null(c.front.failure);
	ck_assert_uint_eq(c.answers, 3);
	ck_assert_uint_eq(c.answer[2]->id, 3);
	ck_assert_uint_eq(c.answer[2]->rv, CKR_DEVICE_MEMORY);
	conn_close(&c);
}
END_TEST

/* The answer to one frame through rhd_front_call, decoded; NULL when
 * there is none. */
static Remhsm__Response *call_once(rhd_front_t *f, const uint8_t *frame,
				   size_t len)
{
	uint8_t *answer;
	size_t n;
	if (rhd_front_call(f, frame, len, &answer, &n) < 0) {
		ck_assert_ptr_null(answer);
		return NULL;
	}
	ck_assert_int_eq(rh_frame_next(answer, n, MAX_FRAME), (long)n);
	Remhsm__Response *resp = remhsm__response__unpack(
		NULL, n - RH_FRAME_HEADER, answer + RH_FRAME_HEADER);
	free(answer);
	ck_assert_ptr_nonnull(resp);
	return resp;
}

static uint64_t rv_of(rhd_front_t *f, const uint8_t *frame, size_t len,
		      uint64_t id)
{
	Remhsm__Response *resp = call_once(f, frame, len);
	ck_assert_ptr_nonnull(resp);
	ck_assert_uint_eq(resp->id, id);
	uint64_t rv = resp->rv;
	remhsm__response__free_unpacked(resp, NULL);
	return rv;
}

/* The pipeline as one call: Hello, then calls, each frame's answer
 * returned; an answer too large for the frame becomes CKR_DEVICE_MEMORY
 * and the calls after it are answered. */
START_TEST(test_one_call_answers_each_frame)
{
	uint8_t frame[256];
	test_conn_t c;
	conn_open(&c);
	size_t len = th_hello_into(frame, RH_PROTOCOL_VERSION, 9);
	Remhsm__Response *hello = call_once(&c.front, frame, len);
	ck_assert_ptr_nonnull(hello);
	ck_assert_uint_eq(hello->rv, CKR_OK);
	ck_assert_uint_eq(hello->hello->max_frame, MAX_FRAME);
	remhsm__response__free_unpacked(hello, NULL);
	len = open_session_frame(frame, 2);
	ck_assert_uint_eq(rv_of(&c.front, frame, len, 2), CKR_OK);
	len = random_frame(frame, 3, MAX_FRAME);
	ck_assert_uint_eq(rv_of(&c.front, frame, len, 3), CKR_DEVICE_MEMORY);
	len = random_frame(frame, 4, 32);
	ck_assert_uint_eq(rv_of(&c.front, frame, len, 4), CKR_OK);
	ck_assert_ptr_null(c.front.failure);
	ck_assert_uint_eq(c.answers, 0); /* nothing went to the transport */
	conn_close(&c);
}
END_TEST

/* A call the server hands to a worker runs in place: C_InitToken, long
 * for its KDF, is answered by the same call. */
START_TEST(test_one_call_runs_long_calls_in_place)
{
	uint8_t frame[512];
	test_conn_t c;
	conn_open(&c);
	size_t len = th_hello_into(frame, RH_PROTOCOL_VERSION, 9);
	remhsm__response__free_unpacked(call_once(&c.front, frame, len), NULL);
	Remhsm__InitTokenReq init = REMHSM__INIT_TOKEN_REQ__INIT;
	init.slot = 0;
	init.so_pin = (ProtobufCBinaryData){8, (uint8_t *)"so-pin-1"};
	uint8_t label[32];
	memset(label, ' ', sizeof(label));
	init.label = (ProtobufCBinaryData){sizeof(label), label};
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 5;
	req.call_case = REMHSM__REQUEST__CALL_INIT_TOKEN;
	req.init_token = &init;
	ck_assert(rh_call_flags(REMHSM__REQUEST__CALL_INIT_TOKEN) &
		  RH_CALL_SLOW);
	len = th_frame_into(frame, &req);
	ck_assert_uint_eq(rv_of(&c.front, frame, len, 5), CKR_OK);
	ck_assert_uint_eq(c.queued, 0);
	conn_close(&c);
}
END_TEST

/* What is not one whole frame, or comes before Hello, has no answer and
 * says why the connection closes; nothing is answered after that. */
START_TEST(test_one_call_refuses_what_is_not_one_request)
{
	uint8_t frame[512];
	test_conn_t c;
	conn_open(&c);
	size_t len = random_frame(frame, 1, 8);
	ck_assert_ptr_null(call_once(&c.front, frame, len));
	ck_assert_str_eq(c.front.failure, "request before hello");
	conn_close(&c);

	conn_open(&c);
	len = th_hello_into(frame, RH_PROTOCOL_VERSION, 9);
	ck_assert_ptr_null(call_once(&c.front, frame, len - 1));
	ck_assert_str_eq(c.front.failure,
			 "not one whole frame within the maximum size");
	ck_assert_ptr_null(call_once(&c.front, frame, len));
	conn_close(&c);

	conn_open(&c);
	len = th_hello_into(frame, RH_PROTOCOL_VERSION, 9);
	len += random_frame(frame + len, 2, 8);
	ck_assert_ptr_null(call_once(&c.front, frame, len));
	ck_assert_ptr_nonnull(c.front.failure);
	conn_close(&c);
}
END_TEST

static Suite *frontend_suite(void)
{
	Suite *s = suite_create("frontend");
	TCase *tc = tcase_create("frontend");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_any_delivery_same_answers);
	tcase_add_test(tc, test_call_before_hello_fails);
	tcase_add_test(tc, test_second_hello_fails);
	tcase_add_test(tc, test_probe_tells_the_load_and_takes_no_application);
	tcase_add_test(tc, test_refused_hello_takes_nothing_more);
	tcase_add_test(tc, test_buffer_follows_arrivals);
	tcase_add_test(tc, test_backpressure_keeps_frames);
	tcase_add_test(tc, test_answer_held_to_frame);
	tcase_add_test(tc, test_one_call_answers_each_frame);
	tcase_add_test(tc, test_one_call_runs_long_calls_in_place);
	tcase_add_test(tc, test_one_call_refuses_what_is_not_one_request);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frontend_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
