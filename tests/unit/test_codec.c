/* The frame codec and the wire messages, in process. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "remhsm.pb-c.h"
#include "rh_calls.h"
#include "rh_decode.h"
#include "rh_frame.h"

#include <pthread.h>

#include "harness.h"
#include "nesting.h"

static const uint8_t header_100[] = {0, 0, 0, 100};

START_TEST(test_frame_needs_more_than_a_partial_header)
{
	ck_assert_int_eq(rh_frame_next(header_100, 0, 1024), 0);
	ck_assert_int_eq(rh_frame_next(header_100, 3, 1024), 0);
}
END_TEST

START_TEST(test_frame_needs_the_whole_payload)
{
	uint8_t buf[104] = {0, 0, 0, 100};
	ck_assert_int_eq(rh_frame_next(buf, 4, 1024), 0);
	ck_assert_int_eq(rh_frame_next(buf, 103, 1024), 0);
	ck_assert_int_eq(rh_frame_next(buf, 104, 1024), 104);
}
END_TEST

START_TEST(test_frame_rejects_oversized_frame_from_header_alone)
{
	uint8_t header[] = {0xff, 0xff, 0xff, 0xff};
	ck_assert_int_eq(rh_frame_next(header, 4, 1u << 20),
			 RH_EFRAME_TOO_LARGE);
	uint32_t len;
	ck_assert_int_eq(rh_frame_header_decode(header, 1u << 20, &len),
			 RH_EFRAME_TOO_LARGE);
	uint8_t just_over[] = {0, 0x10, 0, 1};
	ck_assert_int_eq(rh_frame_next(just_over, 4, 1u << 20),
			 RH_EFRAME_TOO_LARGE);
	uint8_t at_max[] = {0, 0x10, 0, 0};
	ck_assert_int_eq(rh_frame_next(at_max, 4, 1u << 20), 0);
}
END_TEST

START_TEST(test_frame_empty_payload_is_a_frame)
{
	uint8_t header[] = {0, 0, 0, 0, 9, 9};
	ck_assert_int_eq(rh_frame_next(header, 6, 1024), 4);
}
END_TEST

START_TEST(test_frame_pack_writes_big_endian_length)
{
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 300;
	uint8_t *frame;
	size_t len;
	ck_assert_int_eq(rh_frame_pack(&req.base, &frame, &len), 0);
	uint32_t payload;
	ck_assert_int_eq(rh_frame_header_decode(frame, 1024, &payload), 0);
	ck_assert_uint_eq(payload + 4, len);
	ck_assert_int_eq(rh_frame_next(frame, len, 1024), (long)len);
	free(frame);
}
END_TEST

/* Packs and unpacks a request and a response of one call. */
static void round_trip_call(unsigned id,
			    const ProtobufCMessageDescriptor *req_desc,
			    const ProtobufCMessageDescriptor *resp_desc)
{
	ProtobufCMessage *body = calloc(1, req_desc->sizeof_message);
	protobuf_c_message_init(req_desc, body);
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 0xfffffffffull + id;
	req.call_case = (Remhsm__Request__CallCase)id;
	/* Every call member of the oneof shares one storage slot. */
	req.get_info = (Remhsm__GetInfoReq *)body;
	uint8_t *frame;
	size_t len;
	ck_assert_int_eq(rh_frame_pack(&req.base, &frame, &len), 0);
	Remhsm__Request *back =
		remhsm__request__unpack(NULL, len - 4, frame + 4);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(back->call_case, id);
	ck_assert_uint_eq(back->id, req.id);
	ck_assert_ptr_nonnull(back->get_info);
	ck_assert_ptr_eq(back->get_info->base.descriptor, req_desc);
	remhsm__request__free_unpacked(back, NULL);
	free(frame);
	free(body);

	ProtobufCMessage *result = calloc(1, resp_desc->sizeof_message);
	protobuf_c_message_init(resp_desc, result);
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	resp.id = id;
	resp.rv = 0x80000000ull + id;
	resp.result_case = (Remhsm__Response__ResultCase)id;
	resp.get_info = (Remhsm__GetInfoResp *)result;
	ck_assert_int_eq(rh_frame_pack(&resp.base, &frame, &len), 0);
	Remhsm__Response *rback =
		remhsm__response__unpack(NULL, len - 4, frame + 4);
	ck_assert_ptr_nonnull(rback);
	ck_assert_uint_eq(rback->result_case, id);
	ck_assert_uint_eq(rback->rv, resp.rv);
	ck_assert_ptr_eq(rback->get_info->base.descriptor, resp_desc);
	remhsm__response__free_unpacked(rback, NULL);
	free(frame);
	free(result);
}

START_TEST(test_every_call_round_trips)
{
	unsigned calls = 0;
#define ROUND_TRIP(num, UP, low, Camel, flags)                                 \
	ck_assert_uint_eq(REMHSM__REQUEST__CALL_##UP, num);                    \
	ck_assert_uint_eq(REMHSM__RESPONSE__RESULT_##UP, num);                 \
	ck_assert_str_eq(rh_call_name(num), "C_" #Camel);                      \
	round_trip_call(num, &remhsm__##low##_req__descriptor,                 \
			&remhsm__##low##_resp__descriptor);                    \
	calls++;
	RH_CALLS(ROUND_TRIP)
#undef ROUND_TRIP
	ck_assert_uint_eq(calls, 53); /* 52 PKCS#11 calls and Restore */
	ck_assert_ptr_null(rh_call_name(9999));
}
END_TEST

START_TEST(test_hello_round_trips_versions_and_app_id)
{
	uint32_t versions[] = {1, 7};
	uint8_t app_id[16] = {1, 2,  3,	 4,  5,	 6,  7,	 8,
			      9, 10, 11, 12, 13, 14, 15, 16};
	Remhsm__HelloReq hello = REMHSM__HELLO_REQ__INIT;
	hello.n_versions = 2;
	hello.versions = versions;
	hello.app_id = (ProtobufCBinaryData){16, app_id};
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_HELLO;
	req.hello = &hello;
	uint8_t *frame;
	size_t len;
	ck_assert_int_eq(rh_frame_pack(&req.base, &frame, &len), 0);
	Remhsm__Request *back =
		remhsm__request__unpack(NULL, len - 4, frame + 4);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(back->hello->n_versions, 2);
	ck_assert_uint_eq(back->hello->versions[1], 7);
	ck_assert_mem_eq(back->hello->app_id.data, app_id, 16);
	remhsm__request__free_unpacked(back, NULL);
	free(frame);
}
END_TEST

START_TEST(test_attribute_values_keep_their_type)
{
	Remhsm__Attribute ulong_attr = REMHSM__ATTRIBUTE__INIT;
	ulong_attr.type = 0x100;
	ulong_attr.value_case = REMHSM__ATTRIBUTE__VALUE_ULONG;
	ulong_attr.ulong = UINT64_MAX; /* CK_UNAVAILABLE_INFORMATION */
	Remhsm__Attribute bool_attr = REMHSM__ATTRIBUTE__INIT;
	bool_attr.type = 0x1;
	bool_attr.value_case = REMHSM__ATTRIBUTE__VALUE_BOOLEAN;
	bool_attr.boolean = 1;
	Remhsm__Attribute *tmpl[] = {&ulong_attr, &bool_attr};
	Remhsm__CreateObjectReq create = REMHSM__CREATE_OBJECT_REQ__INIT;
	create.session = 0xffffffff;
	create.n_template_ = 2;
	create.template_ = tmpl;
	uint8_t buf[256];
	size_t len = remhsm__create_object_req__pack(&create, buf);
	Remhsm__CreateObjectReq *back =
		remhsm__create_object_req__unpack(NULL, len, buf);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(back->session, 0xffffffff);
	ck_assert_uint_eq(back->template_[0]->value_case,
			  REMHSM__ATTRIBUTE__VALUE_ULONG);
	ck_assert_uint_eq(back->template_[0]->ulong, UINT64_MAX);
	ck_assert_uint_eq(back->template_[1]->value_case,
			  REMHSM__ATTRIBUTE__VALUE_BOOLEAN);
	remhsm__create_object_req__free_unpacked(back, NULL);
}
END_TEST

START_TEST(test_unknown_call_decodes_as_not_set)
{
	/* Field 99, length-delimited, empty: a call this version doesn't know.
	 */
	uint8_t payload[] = {0x08, 0x05, 0x9a, 0x06, 0x00};
	Remhsm__Request *req =
		remhsm__request__unpack(NULL, sizeof(payload), payload);
	ck_assert_ptr_nonnull(req);
	ck_assert_uint_eq(req->id, 5);
	ck_assert_uint_eq(req->call_case, REMHSM__REQUEST__CALL__NOT_SET);
	remhsm__request__free_unpacked(req, NULL);
}
END_TEST

START_TEST(test_truncated_message_does_not_decode)
{
	Remhsm__GenerateRandomReq body = REMHSM__GENERATE_RANDOM_REQ__INIT;
	body.session = 0x12345678;
	body.length = 32;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 77;
	req.call_case = REMHSM__REQUEST__CALL_GENERATE_RANDOM;
	req.generate_random = &body;
	uint8_t buf[64];
	size_t len = remhsm__request__pack(&req, buf);
	for (size_t cut = 1; cut < len; cut++) {
		Remhsm__Request *back =
			remhsm__request__unpack(NULL, len - cut, buf);
		if (back) {
			/* A cut at a field boundary is a valid shorter message;
			 * it must never claim the full call. */
			ck_assert(
				back->call_case !=
					REMHSM__REQUEST__CALL_GENERATE_RANDOM ||
				back->generate_random->length != 32);
			remhsm__request__free_unpacked(back, NULL);
		}
	}
}
END_TEST

START_TEST(test_garbage_does_not_decode)
{
	uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	ck_assert_ptr_null(
		remhsm__request__unpack(NULL, sizeof(garbage), garbage));
	/* A length prefix pointing past the end. */
	uint8_t overlong[] = {0x12, 0x7f, 0x01};
	ck_assert_ptr_null(
		remhsm__request__unpack(NULL, sizeof(overlong), overlong));
}
END_TEST

START_TEST(test_slow_calls_are_flagged)
{
	ck_assert_uint_eq(rh_call_flags(REMHSM__REQUEST__CALL_LOGIN),
			  RH_CALL_SLOW);
	ck_assert_uint_eq(
		rh_call_flags(REMHSM__REQUEST__CALL_GENERATE_KEY_PAIR),
		RH_CALL_SLOW);
	ck_assert_uint_eq(rh_call_flags(REMHSM__REQUEST__CALL_SIGN) &
				  RH_CALL_SLOW,
			  RH_CALL_SLOW);
	ck_assert_uint_eq(rh_call_flags(REMHSM__REQUEST__CALL_GENERATE_RANDOM) &
				  RH_CALL_SLOW,
			  RH_CALL_FAST);
	ck_assert_uint_eq(rh_call_flags(4242), RH_CALL_FAST);
}
END_TEST

/* What the schema says of a request, read through its descriptors: the
 * mechanism named by an init, by a single-part call's carried init and by
 * key generation; the carried init's key; none where there is none. */
START_TEST(test_the_schema_names_the_mechanism_and_the_init)
{
	Remhsm__Mechanism mech = REMHSM__MECHANISM__INIT;
	mech.type = CKM_ECDSA;
	Remhsm__SignInitReq init = REMHSM__SIGN_INIT_REQ__INIT;
	init.mechanism = &mech;
	init.key = 77;
	Remhsm__SignReq sign = REMHSM__SIGN_REQ__INIT;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_SIGN;
	req.sign = &sign;
	ck_assert_ptr_eq(rh_call_body(&req), &sign.base);
	ck_assert_ptr_null(rh_call_init(&req));
	ck_assert_ptr_null(rh_call_mechanism(&req));
	ck_assert_uint_eq(rh_call_init_key(&req), 0);
	ck_assert_int_eq(rh_call_replayable(&req), 0); /* multi-part state */
	sign.init = &init;
	ck_assert_ptr_eq(rh_call_init(&req), &init.base);
	ck_assert_ptr_eq(rh_call_mechanism(&req), &mech);
	ck_assert_uint_eq(rh_call_init_key(&req), 77);
	ck_assert_int_eq(rh_call_replayable(&req), 1);
	req.call_case = REMHSM__REQUEST__CALL_SIGN_INIT;
	req.sign_init = &init;
	ck_assert_ptr_eq(rh_call_mechanism(&req), &mech);
	ck_assert_int_eq(rh_call_replayable(&req), 0);
	Remhsm__GenerateKeyPairReq gen = REMHSM__GENERATE_KEY_PAIR_REQ__INIT;
	gen.mechanism = &mech;
	req.call_case = REMHSM__REQUEST__CALL_GENERATE_KEY_PAIR;
	req.generate_key_pair = &gen;
	ck_assert_ptr_eq(rh_call_mechanism(&req), &mech);
	Remhsm__GenerateRandomReq rnd = REMHSM__GENERATE_RANDOM_REQ__INIT;
	req.call_case = REMHSM__REQUEST__CALL_GENERATE_RANDOM;
	req.generate_random = &rnd;
	ck_assert_ptr_null(rh_call_mechanism(&req));
	ck_assert_int_eq(rh_call_replayable(&req), 1);
	req.call_case = REMHSM__REQUEST__CALL_GET_ATTRIBUTE_VALUE;
	req.get_attribute_value = NULL; /* absent: nothing to read */
	ck_assert_ptr_null(rh_call_body(&req));
	ck_assert_ptr_null(rh_call_mechanism(&req));
	ck_assert_int_eq(rh_call_replayable(&req), 1);
	req.call_case = REMHSM__REQUEST__CALL_CREATE_OBJECT;
	ck_assert_int_eq(rh_call_replayable(&req), 0);
	req.call_case = (Remhsm__Request__CallCase)4242;
	ck_assert_ptr_null(rh_call_body(&req));
}
END_TEST

/* Decodes a nested request or response on a thread with a 64 KiB stack, as
 * an embedded client or a small worker would have. */
typedef struct {
	int response;
	unsigned depth;
	int err;
	size_t attributes; /* at the outermost level, when it decoded */
} nested_job_t;

static void *decode_nested(void *arg)
{
	nested_job_t *job = arg;
	size_t len;
	uint8_t *buf = job->response
			       ? th_nested_response(7, job->depth, &len)
			       : th_nested_request(7, 1, job->depth, &len);
	const ProtobufCMessageDescriptor *desc =
		job->response ? &remhsm__response__descriptor
			      : &remhsm__request__descriptor;
	ProtobufCMessage *msg = rh_decode(desc, buf, len, &job->err);
	if (msg && job->response) {
		Remhsm__Response *r = (Remhsm__Response *)msg;
		job->attributes = r->get_attribute_value->n_results;
	} else if (msg) {
		Remhsm__Request *r = (Remhsm__Request *)msg;
		job->attributes = r->create_object->n_template_;
	}
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
	free(buf);
	return NULL;
}

static nested_job_t run_on_small_stack(int response, unsigned depth)
{
	nested_job_t job = {.response = response, .depth = depth};
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	ck_assert_int_eq(pthread_attr_setstacksize(&attr, 64 * 1024), 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, &attr, decode_nested, &job), 0);
	pthread_join(t, NULL);
	pthread_attr_destroy(&attr);
	return job;
}

/* Depths 1 and 2 decode; 3, 100 and 100,000 are refused unread. */
static void assert_depths(int response)
{
	static const unsigned depths[] = {1, 2, 3, 100, 100000};
	for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		nested_job_t job = run_on_small_stack(response, depths[i]);
		if (depths[i] <= 2) {
			ck_assert_int_eq(job.err, RH_OK);
			ck_assert_uint_eq(job.attributes, 1);
		} else {
			ck_assert_int_eq(job.err, RH_EDEPTH);
		}
	}
}

START_TEST(test_request_nesting_is_bounded_before_unpacking)
{
	assert_depths(0);
}
END_TEST

START_TEST(test_response_nesting_is_bounded_before_unpacking)
{
	assert_depths(1);
}
END_TEST

START_TEST(test_refused_request_still_names_its_id_and_call)
{
	size_t len;
	uint8_t *buf = th_nested_request(4242, 9, 100000, &len);
	uint64_t id;
	uint32_t call;
	ck_assert_int_eq(rh_decode_peek(buf, len, 1, &id, &call), RH_OK);
	ck_assert_uint_eq(id, 4242);
	ck_assert_uint_eq(call, REMHSM__REQUEST__CALL_CREATE_OBJECT);
	free(buf);
}
END_TEST

START_TEST(test_decoder_check_refuses_truncated_and_group_fields)
{
	static const uint8_t overlong[] = {0x0a, 0x05, 0x01};
	static const uint8_t group[] = {0x0b, 0x0c};
	static const uint8_t endless_varint[] = {0x08, 0xff, 0xff, 0xff,
						 0xff, 0xff, 0xff, 0xff,
						 0xff, 0xff, 0xff, 0x01};
	const ProtobufCMessageDescriptor *d = &remhsm__request__descriptor;
	ck_assert_int_eq(rh_decode_check(d, overlong, sizeof(overlong), 8),
			 RH_EDECODE);
	ck_assert_int_eq(rh_decode_check(d, group, sizeof(group), 8),
			 RH_EDECODE);
	ck_assert_int_eq(
		rh_decode_check(d, endless_varint, sizeof(endless_varint), 8),
		RH_EDECODE);
	ck_assert_int_eq(rh_decode_check(d, NULL, 0, 8), RH_OK);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, test_frame_needs_more_than_a_partial_header);
	tcase_add_test(tc, test_frame_needs_the_whole_payload);
	tcase_add_test(tc,
		       test_frame_rejects_oversized_frame_from_header_alone);
	tcase_add_test(tc, test_frame_empty_payload_is_a_frame);
	tcase_add_test(tc, test_frame_pack_writes_big_endian_length);
	tcase_add_test(tc, test_every_call_round_trips);
	tcase_add_test(tc, test_hello_round_trips_versions_and_app_id);
	tcase_add_test(tc, test_attribute_values_keep_their_type);
	tcase_add_test(tc, test_unknown_call_decodes_as_not_set);
	tcase_add_test(tc, test_truncated_message_does_not_decode);
	tcase_add_test(tc, test_garbage_does_not_decode);
	tcase_add_test(tc, test_slow_calls_are_flagged);
	tcase_add_test(tc, test_the_schema_names_the_mechanism_and_the_init);
	tcase_add_test(tc, test_request_nesting_is_bounded_before_unpacking);
	tcase_add_test(tc, test_response_nesting_is_bounded_before_unpacking);
	tcase_add_test(tc, test_refused_request_still_names_its_id_and_call);
	tcase_add_test(tc,
		       test_decoder_check_refuses_truncated_and_group_fields);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
