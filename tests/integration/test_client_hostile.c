/*
 * A broken or malicious daemon: a fake server with the daemon's certificate
 * answers the real module with truncated frames, lengths beyond any limit,
 * wrong request ids, answers to another call, and values larger than the
 * caller's buffer. The module must fail the call with CKR_DEVICE_ERROR
 * (CKR_FUNCTION_FAILED where the function may not return that),
 * never write past a buffer (guard bytes, and ASan in the sanitizer build),
 * never hang, and serve the next call once the server behaves.
 */
#include <check.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_daemon.h"
#include "frames.h"
#include "harness.h"
#include "nesting.h"
#include "rh_calls.h"
#include "rh_tls.h"

#define GUARD 0xA5
#define GUARD_LEN 64

static th_daemon_t d; /* only its PKI: no remhsmd runs here */
static void *module;
static CK_FUNCTION_LIST *p11;
static th_fake_t fake;

/* Starts the fake server with `answer` and points the module at it. */
static void start(th_answer_fn answer)
{
	th_fake_start(&fake, &d, answer);
	p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}

static void setup(void)
{
	th_pki_make(&d);
	th_client_env(&d);
	/* Long enough that a client waiting for bytes that never come would
	 * overrun the test's own timeout. */
	setenv("REMHSM_TIMEOUT_MS", "30000", 1);
	fake.hello_max_frame = RH_FRAME_DEFAULT_MAX;
}

static void teardown(void)
{
	p11->C_Finalize(NULL);
	dlclose(module);
	th_fake_stop(&fake);
	th_daemon_cleanup(&d);
}

/* --- answers */

static void reply_to(const Remhsm__Request *req, Remhsm__Response *resp)
{
	resp->id = req->id;
	resp->rv = CKR_OK;
}

/* A truthful C_GetInfo answer, and 0 slots for C_GetSlotList. */
static int answer_well(SSL *ssl, const Remhsm__Request *req)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__GetInfoResp info = REMHSM__GET_INFO_RESP__INIT;
	Remhsm__Version v = REMHSM__VERSION__INIT;
	Remhsm__GetSlotListResp slots = REMHSM__GET_SLOT_LIST_RESP__INIT;
	reply_to(req, &resp);
	if (req->call_case == REMHSM__REQUEST__CALL_GET_INFO) {
		v.major = 2;
		v.minor = 40;
		info.cryptoki_version = &v;
		info.manufacturer_id =
			(ProtobufCBinaryData){4, (uint8_t *)"fake"};
		resp.result_case = REMHSM__RESPONSE__RESULT_GET_INFO;
		resp.get_info = &info;
	} else if (req->call_case == REMHSM__REQUEST__CALL_GET_SLOT_LIST) {
		resp.result_case = REMHSM__RESPONSE__RESULT_GET_SLOT_LIST;
		resp.get_slot_list = &slots;
	} else {
		resp.rv = CKR_FUNCTION_FAILED;
	}
	th_fake_send(ssl, &resp);
	return 1;
}

/* The module works again once the server answers properly. */
static void check_recovers(void)
{
	CK_INFO info;
	ck_assert_uint_eq(p11->C_GetInfo(&info), CKR_OK);
	ck_assert_mem_eq(info.manufacturerID, "fake", 4);
	ck_assert_uint_eq(info.manufacturerID[4], ' ');
}

/* Bytes sent instead of an answer to C_GetSlotList. */
typedef struct raw_answer {
	const uint8_t *bytes;
	size_t len;
	int keep; /* 0 closes the connection after them */
} raw_answer_t;

static const uint8_t partial_frame[] = {0, 0, 0, 100, 0x08, 0x01, 0x10};
/* A header alone, then nothing: the header must end the call. */
static const uint8_t huge_header[] = {0xff, 0xff, 0xff, 0xf0};
/* 256 MiB: above any daemon's maximum, whatever its Hello offered. */
static const uint8_t beyond_daemon_header[] = {0x10, 0x00, 0x00, 0x00};
static const uint8_t undecodable[] = {0,    0,	  0,	6,    0xff,
				      0xff, 0xff, 0xff, 0xff, 0xff};
static raw_answer_t raw;

static int raw_bytes(SSL *ssl, const Remhsm__Request *req)
{
	if (req->call_case == REMHSM__REQUEST__CALL_GET_INFO)
		return answer_well(ssl, req);
	th_fake_send_bytes(ssl, raw.bytes, raw.len);
	return raw.keep;
}

static void start_raw(const uint8_t *bytes, size_t len, int keep)
{
	raw = (raw_answer_t){bytes, len, keep};
	start(raw_bytes);
}

static int wrong_id(SSL *ssl, const Remhsm__Request *req)
{
	if (req->call_case == REMHSM__REQUEST__CALL_GET_INFO)
		return answer_well(ssl, req);
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__GetSlotListResp slots = REMHSM__GET_SLOT_LIST_RESP__INIT;
	reply_to(req, &resp);
	resp.id = req->id + 7;
	resp.result_case = REMHSM__RESPONSE__RESULT_GET_SLOT_LIST;
	resp.get_slot_list = &slots;
	th_fake_send(ssl, &resp);
	return 1;
}

static int another_calls_answer(SSL *ssl, const Remhsm__Request *req)
{
	if (req->call_case == REMHSM__REQUEST__CALL_GET_INFO)
		return answer_well(ssl, req);
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__GenerateRandomResp random = REMHSM__GENERATE_RANDOM_RESP__INIT;
	reply_to(req, &resp);
	resp.result_case = REMHSM__RESPONSE__RESULT_GENERATE_RANDOM;
	resp.generate_random = &random;
	th_fake_send(ssl, &resp);
	return 1;
}

static uint8_t oversized[4096];

static int too_much_data(SSL *ssl, const Remhsm__Request *req)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__GenerateRandomResp random = REMHSM__GENERATE_RANDOM_RESP__INIT;
	Remhsm__OpenSessionResp open = REMHSM__OPEN_SESSION_RESP__INIT;
	Remhsm__GetSlotListResp slots = REMHSM__GET_SLOT_LIST_RESP__INIT;
	Remhsm__SignInitResp sign_init = REMHSM__SIGN_INIT_RESP__INIT;
	Remhsm__SignResp sign = REMHSM__SIGN_RESP__INIT;
	Remhsm__Output out = REMHSM__OUTPUT__INIT;
	uint64_t many[40] = {0};
	reply_to(req, &resp);
	resp.result_case = (Remhsm__Response__ResultCase)req->call_case;
	switch (req->call_case) {
	case REMHSM__REQUEST__CALL_GENERATE_RANDOM:
		random.data =
			(ProtobufCBinaryData){sizeof(oversized), oversized};
		resp.generate_random = &random;
		break;
	case REMHSM__REQUEST__CALL_OPEN_SESSION:
		open.session = 1;
		resp.open_session = &open;
		break;
	case REMHSM__REQUEST__CALL_GET_SLOT_LIST:
		slots.n_slots = 40;
		slots.slots = many;
		resp.get_slot_list = &slots;
		break;
	case REMHSM__REQUEST__CALL_SIGN_INIT:
		resp.sign_init = &sign_init;
		break;
	case REMHSM__REQUEST__CALL_SIGN:
		out.length = 64; /* says 64, sends 4096 */
		out.data = (ProtobufCBinaryData){sizeof(oversized), oversized};
		sign.output = &out;
		resp.sign = &sign;
		break;
	default:
		return answer_well(ssl, req);
	}
	th_fake_send(ssl, &resp);
	return 1;
}

/* Declares a 4-byte value and sends 4096 bytes; sends a CK_ULONG for a byte
 * string the caller gave one byte for. */
static int lying_attributes(SSL *ssl, const Remhsm__Request *req)
{
	if (req->call_case != REMHSM__REQUEST__CALL_GET_ATTRIBUTE_VALUE)
		return too_much_data(ssl, req);
	const Remhsm__GetAttributeValueReq *q = req->get_attribute_value;
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__GetAttributeValueResp r =
		REMHSM__GET_ATTRIBUTE_VALUE_RESP__INIT;
	Remhsm__AttributeResult result = REMHSM__ATTRIBUTE_RESULT__INIT;
	Remhsm__AttributeResult *results[] = {&result};
	Remhsm__Attribute value = REMHSM__ATTRIBUTE__INIT;
	reply_to(req, &resp);
	value.type = q->n_template_ ? q->template_[0]->type : 0;
	if (value.type == CKA_LABEL) {
		result.length = 4;
		value.value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
		value.bytes =
			(ProtobufCBinaryData){sizeof(oversized), oversized};
	} else {
		result.length = 1;
		value.value_case = REMHSM__ATTRIBUTE__VALUE_ULONG;
		value.ulong = UINT64_MAX - 1;
	}
	result.value = &value;
	r.n_results = 1;
	r.results = results;
	resp.result_case = REMHSM__RESPONSE__RESULT_GET_ATTRIBUTE_VALUE;
	resp.get_attribute_value = &r;
	th_fake_send(ssl, &resp);
	return 1;
}

/* Values above 32 bits: a 64-bit application takes them as they are, a
 * 32-bit one must refuse them rather than truncate. */
#define WIDE ((uint64_t)1 << 32 | 5)

static int wide_values(SSL *ssl, const Remhsm__Request *req)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__FindObjectsInitResp find = REMHSM__FIND_OBJECTS_INIT_RESP__INIT;
	Remhsm__ObjectInfo object = REMHSM__OBJECT_INFO__INIT;
	Remhsm__ObjectInfo *objects[] = {&object};
	Remhsm__GetAttributeValueResp attrs =
		REMHSM__GET_ATTRIBUTE_VALUE_RESP__INIT;
	Remhsm__AttributeResult result = REMHSM__ATTRIBUTE_RESULT__INIT;
	Remhsm__AttributeResult *results[] = {&result};
	Remhsm__Attribute value = REMHSM__ATTRIBUTE__INIT;
	reply_to(req, &resp);
	resp.result_case = (Remhsm__Response__ResultCase)req->call_case;
	switch (req->call_case) {
	case REMHSM__REQUEST__CALL_FIND_OBJECTS_INIT:
		object.handle = WIDE;
		object.class_ = CKO_DATA;
		find.n_objects = 1;
		find.objects = objects;
		find.complete = 1;
		resp.find_objects_init = &find;
		break;
	case REMHSM__REQUEST__CALL_GET_ATTRIBUTE_VALUE:
		value.type = CKA_MODULUS_BITS;
		value.value_case = REMHSM__ATTRIBUTE__VALUE_ULONG;
		value.ulong = WIDE;
		result.length = 8;
		result.value = &value;
		attrs.n_results = 1;
		attrs.results = results;
		resp.get_attribute_value = &attrs;
		break;
	case REMHSM__REQUEST__CALL_GENERATE_RANDOM:
		resp.rv = WIDE; /* a code no 32-bit CK_RV holds */
		resp.result_case = REMHSM__RESPONSE__RESULT__NOT_SET;
		break;
	default:
		return too_much_data(ssl, req);
	}
	th_fake_send(ssl, &resp);
	return 1;
}

/* --- tests */

typedef struct guarded {
	CK_BYTE buf[64];
	CK_BYTE guard[GUARD_LEN];
} guarded_t;

static void guard_set(guarded_t *g)
{
	memset(g, 0, sizeof(*g));
	memset(g->guard, GUARD, GUARD_LEN);
}

static void guard_check(const guarded_t *g)
{
	for (int i = 0; i < GUARD_LEN; i++)
		ck_assert_uint_eq(g->guard[i], GUARD);
}

/* C_GetSlotList's listed code for a failure of the device's answer. */
static void expect_slot_list_fails(void)
{
	CK_ULONG n = 0;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, NULL, &n),
			  CKR_FUNCTION_FAILED);
	check_recovers();
}

/* A daemon that takes the least-busy probe for a Hello (one from before
 * the probe) cannot say how busy it is: the module closes that link and
 * is served all the same, with a real Hello on a new one. */
START_TEST(test_a_daemon_that_knows_no_probe_serves_all_the_same)
{
	start(answer_well);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	char twice[128];
	const char *one = getenv("REMHSM_SERVER");
	snprintf(twice, sizeof(twice), "%s,%s", one, one);
	setenv("REMHSM_SERVER", twice, 1);
	setenv("REMHSM_SERVER_CHOICE", "least-busy", 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	check_recovers();
	unsetenv("REMHSM_SERVER_CHOICE");
}
END_TEST

START_TEST(test_truncated_frame)
{
	start_raw(partial_frame, sizeof(partial_frame), 0);
	expect_slot_list_fails();
}
END_TEST

START_TEST(test_length_beyond_the_agreed_maximum)
{
	start_raw(huge_header, sizeof(huge_header), 1);
	expect_slot_list_fails();
}
END_TEST

START_TEST(test_hello_cannot_raise_the_maximum_without_bound)
{
	fake.hello_max_frame = UINT32_MAX;
	start_raw(beyond_daemon_header, sizeof(beyond_daemon_header), 1);
	expect_slot_list_fails();
}
END_TEST

START_TEST(test_wrong_request_id)
{
	start(wrong_id);
	expect_slot_list_fails();
}
END_TEST

START_TEST(test_answer_to_another_call)
{
	start(another_calls_answer);
	expect_slot_list_fails();
}
END_TEST

START_TEST(test_undecodable_payload)
{
	start_raw(undecodable, sizeof(undecodable), 1);
	expect_slot_list_fails();
}
END_TEST

START_TEST(test_more_random_than_asked)
{
	start(too_much_data);
	guarded_t g;
	guard_set(&g);
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	ck_assert_uint_eq(p11->C_GenerateRandom(s, g.buf, sizeof(g.buf)),
			  CKR_DEVICE_ERROR);
	guard_check(&g);
	check_recovers();
}
END_TEST

START_TEST(test_more_slots_than_the_buffer)
{
	start(too_much_data);
	struct {
		CK_SLOT_ID slots[2];
		CK_BYTE guard[GUARD_LEN];
	} g;
	memset(&g, GUARD, sizeof(g));
	CK_ULONG n = 2;
	ck_assert_uint_eq(p11->C_GetSlotList(CK_FALSE, g.slots, &n),
			  CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(n, 40);
	for (int i = 0; i < GUARD_LEN; i++)
		ck_assert_uint_eq(g.guard[i], GUARD);
}
END_TEST

START_TEST(test_signature_longer_than_declared)
{
	start(too_much_data);
	guarded_t g;
	guard_set(&g);
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_BYTE hash[32] = {1};
	CK_ULONG len = sizeof(g.buf);
	CK_RV rv = p11->C_SignInit(s, &ecdsa, 5);
	if (rv == CKR_OK)
		rv = p11->C_Sign(s, hash, sizeof(hash), g.buf, &len);
	ck_assert_uint_eq(rv, CKR_DEVICE_ERROR);
	guard_check(&g);
	check_recovers();
}
END_TEST

START_TEST(test_attribute_values_larger_than_declared)
{
	start(lying_attributes);
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	guarded_t g;
	guard_set(&g);
	CK_ATTRIBUTE label = {CKA_LABEL, g.buf, 4};
	ck_assert_uint_eq(p11->C_GetAttributeValue(s, 5, &label, 1),
			  CKR_DEVICE_ERROR);
	guard_check(&g);
	CK_ATTRIBUTE id = {CKA_ID, g.buf + sizeof(g.buf) - 1, 1};
	ck_assert_uint_eq(p11->C_GetAttributeValue(s, 5, &id, 1),
			  CKR_DEVICE_ERROR);
	guard_check(&g);
	check_recovers();
}
END_TEST

START_TEST(test_values_wider_than_the_hosts_ck_ulong)
{
	start(wide_values);
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	CK_OBJECT_HANDLE h = 0;
	CK_ULONG n = 0, bits = 0;
	CK_ATTRIBUTE a = {CKA_MODULUS_BITS, &bits, sizeof(bits)};
	CK_BYTE buf[8];
	CK_RV find = p11->C_FindObjectsInit(s, NULL, 0);
	CK_RV attr = p11->C_GetAttributeValue(s, 5, &a, 1);
	CK_RV random = p11->C_GenerateRandom(s, buf, sizeof(buf));
#if ULONG_MAX == 0xffffffffUL
	ck_assert_uint_eq(find, CKR_DEVICE_ERROR);
	ck_assert_uint_eq(attr, CKR_DEVICE_ERROR);
	ck_assert_uint_eq(random, CKR_DEVICE_ERROR);
	(void)h, (void)n;
#else
	ck_assert_uint_eq(find, CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjects(s, &h, 1, &n), CKR_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(h, WIDE);
	ck_assert_uint_eq(attr, CKR_OK);
	ck_assert_uint_eq(bits, WIDE);
	/* No code C_GenerateRandom may return. */
	ck_assert_uint_eq(random, CKR_DEVICE_ERROR);
#endif
	check_recovers();
}
END_TEST

/* The finding: a 60 KB answer nested thousands deep crashed pkcs11-tool in
 * protobuf-c's unpack. */
static unsigned nested_depth;

static int nested_answer(SSL *ssl, const Remhsm__Request *req)
{
	if (req->call_case == REMHSM__REQUEST__CALL_RESTORE) {
		/* the sessions of the earlier rounds, on a new link */
		Remhsm__Response resp = REMHSM__RESPONSE__INIT;
		Remhsm__RestoreResp restored = REMHSM__RESTORE_RESP__INIT;
		reply_to(req, &resp);
		resp.result_case = REMHSM__RESPONSE__RESULT_RESTORE;
		resp.restore = &restored;
		th_fake_send(ssl, &resp);
		return 1;
	}
	if (req->call_case != REMHSM__REQUEST__CALL_GET_ATTRIBUTE_VALUE)
		return too_much_data(ssl, req);
	size_t len, frame_len;
	uint8_t *payload = th_nested_response(req->id, nested_depth, &len);
	uint8_t *frame = th_framed(payload, len, &frame_len);
	th_fake_send_bytes(ssl, frame, frame_len);
	free(frame);
	free(payload);
	return 1;
}

static void *read_label(void *arg)
{
	CK_RV *rv = arg;
	CK_SESSION_HANDLE s;
	*rv = p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s);
	CK_BYTE buf[64];
	CK_ATTRIBUTE label = {CKA_LABEL, buf, sizeof(buf)};
	if (*rv == CKR_OK)
		*rv = p11->C_GetAttributeValue(s, 5, &label, 1);
	return NULL;
}

START_TEST(test_deeply_nested_answer_fails_the_call_on_a_small_stack)
{
	static const unsigned depths[] = {1, 2, 100, 100000};
	fake.hello_max_frame = 4u << 20;
	start(nested_answer);
	for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		nested_depth = depths[i];
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		ck_assert_int_eq(pthread_attr_setstacksize(&attr, 64 * 1024),
				 0);
		pthread_t t;
		CK_RV rv = CKR_OK;
		ck_assert_int_eq(pthread_create(&t, &attr, read_label, &rv), 0);
		pthread_join(t, NULL);
		pthread_attr_destroy(&attr);
		ck_assert_msg(rv == CKR_DEVICE_ERROR, "depth %u: rv 0x%lx",
			      depths[i], rv);
		check_recovers();
	}
}
END_TEST

/* Found by fuzz_module: a Restore answered with another kind of result
 * was read as a RestoreResp, past the end of the smaller message. */
static int restore_of_another_kind(SSL *ssl, const Remhsm__Request *req)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__OpenSessionResp opened = REMHSM__OPEN_SESSION_RESP__INIT;
	Remhsm__CloseSessionResp closed = REMHSM__CLOSE_SESSION_RESP__INIT;
	reply_to(req, &resp);
	if (req->call_case == REMHSM__REQUEST__CALL_OPEN_SESSION) {
		opened.session = 1;
		resp.result_case = REMHSM__RESPONSE__RESULT_OPEN_SESSION;
		resp.open_session = &opened;
		th_fake_send(ssl, &resp);
		return 0; /* the next call restores the session on a new link */
	}
	if (req->call_case != REMHSM__REQUEST__CALL_RESTORE)
		return answer_well(ssl, req);
	resp.result_case = REMHSM__RESPONSE__RESULT_CLOSE_SESSION;
	resp.close_session = &closed;
	th_fake_send(ssl, &resp);
	return 1;
}

START_TEST(test_restore_answered_with_another_kind)
{
	setenv("REMHSM_RECONNECT_MS", "0", 1);
	start(restore_of_another_kind);
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	CK_INFO info;
	ck_assert_uint_eq(p11->C_GetInfo(&info), CKR_FUNCTION_FAILED);
	unsetenv("REMHSM_RECONNECT_MS");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_hostile");
	TCase *tc = tcase_create("hostile");
	/* Well under the client's 30 s call timeout: a client that waited
	 * for the announced bytes fails here. */
	tcase_set_timeout(tc, 15);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc,
		       test_a_daemon_that_knows_no_probe_serves_all_the_same);
	tcase_add_test(tc, test_truncated_frame);
	tcase_add_test(tc, test_length_beyond_the_agreed_maximum);
	tcase_add_test(tc, test_hello_cannot_raise_the_maximum_without_bound);
	tcase_add_test(tc, test_wrong_request_id);
	tcase_add_test(tc, test_answer_to_another_call);
	tcase_add_test(tc, test_undecodable_payload);
	tcase_add_test(tc, test_more_random_than_asked);
	tcase_add_test(tc, test_more_slots_than_the_buffer);
	tcase_add_test(tc, test_signature_longer_than_declared);
	tcase_add_test(tc, test_attribute_values_larger_than_declared);
	tcase_add_test(tc, test_values_wider_than_the_hosts_ck_ulong);
	tcase_add_test(
		tc, test_deeply_nested_answer_fails_the_call_on_a_small_stack);
	tcase_add_test(tc, test_restore_answered_with_another_kind);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
