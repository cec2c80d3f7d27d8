/*
 * libFuzzer target: arbitrary bytes cut into frames, each frame answered by
 * the frontend's one-call pipeline (decode, dispatch, encode within the
 * frame), as the daemon answers what comes out of the TLS layer.
 *
 * So that the fuzzed calls reach past the first checks, every input runs
 * after a prologue: slot 0 holds a token (made once per process, SO PIN
 * FUZZ_SO_PIN, user PIN FUZZ_PIN), and the input's application has
 * session 1 (read-write, logged in as the user) holding an EC P-256 pair,
 * public key FUZZ_PUBLIC and private key FUZZ_PRIVATE (session objects).
 * make_seeds writes seeds that use exactly those handles.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "config.h"
#include "dispatch.h"
#include "engine.h"
#include "engine_support.h"
#include "frontend.h"
#include "fuzz_prologue.h"
#include "rh_frame.h"

static rhd_engine_t engine;
static th_store_t store;

static void remove_store(void)
{
	th_store_cleanup(&store);
}

/* One call of the prologue, its answer dropped; its CK_RV. */
static uint64_t step(rhd_app_t *app, Remhsm__Request *req)
{
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	remhsm__response__init(&resp);
	rhd_dispatch(&engine, app, req, &resp, &arena);
	rh_arena_cleanup(&arena);
	return resp.rv;
}

static uint64_t open_rw(rhd_app_t *app)
{
	Remhsm__OpenSessionReq b = REMHSM__OPEN_SESSION_REQ__INIT;
	b.flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	r.open_session = &b;
	return step(app, &r);
}

static uint64_t login(rhd_app_t *app, uint64_t user, const char *pin)
{
	Remhsm__LoginReq b = REMHSM__LOGIN_REQ__INIT;
	b.session = FUZZ_SESSION;
	b.user_type = user;
	b.pin = (ProtobufCBinaryData){strlen(pin), (uint8_t *)pin};
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_LOGIN;
	r.login = &b;
	return step(app, &r);
}

/* The token on slot 0, once per process: initialised, user PIN set. */
static int make_token(rhd_app_t *app)
{
	Remhsm__InitTokenReq init = REMHSM__INIT_TOKEN_REQ__INIT;
	init.so_pin = (ProtobufCBinaryData){strlen(FUZZ_SO_PIN),
					    (uint8_t *)FUZZ_SO_PIN};
	uint8_t label[32];
	memset(label, ' ', sizeof(label));
	init.label = (ProtobufCBinaryData){sizeof(label), label};
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_INIT_TOKEN;
	r.init_token = &init;
	if (step(app, &r) != CKR_OK || open_rw(app) != CKR_OK ||
	    login(app, CKU_SO, FUZZ_SO_PIN) != CKR_OK)
		return -1;
	Remhsm__InitPinReq pin = REMHSM__INIT_PIN_REQ__INIT;
	pin.session = FUZZ_SESSION;
	pin.pin = (ProtobufCBinaryData){strlen(FUZZ_PIN), (uint8_t *)FUZZ_PIN};
	r.call_case = REMHSM__REQUEST__CALL_INIT_PIN;
	r.init_pin = &pin;
	return step(app, &r) == CKR_OK ? 0 : -1;
}

static uint64_t generate_pair(rhd_app_t *app)
{
	static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	Remhsm__Attribute params = REMHSM__ATTRIBUTE__INIT;
	params.type = CKA_EC_PARAMS;
	params.value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
	params.bytes = (ProtobufCBinaryData){sizeof(p256), (uint8_t *)p256};
	Remhsm__Attribute *pub[] = {&params};
	Remhsm__Mechanism mech = REMHSM__MECHANISM__INIT;
	mech.type = CKM_EC_KEY_PAIR_GEN;
	Remhsm__GenerateKeyPairReq b = REMHSM__GENERATE_KEY_PAIR_REQ__INIT;
	b.session = FUZZ_SESSION;
	b.mechanism = &mech;
	b.n_public_template = 1;
	b.public_template = pub;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_GENERATE_KEY_PAIR;
	r.generate_key_pair = &b;
	return step(app, &r);
}

/* The state every input starts from; NULL when it cannot be made. */
static rhd_app_t *prologue(void)
{
	static int ready;
	static const uint8_t setup_id[RHD_APP_ID_LEN] = {0x41};
	static const uint8_t app_id[RHD_APP_ID_LEN] = {0x42};
	if (!ready) {
		th_store_open(&store);
		atexit(remove_store);
		rhd_app_t *admin = NULL;
		if (th_engine_init(&engine, &store, 2) < 0 ||
		    !(admin = rhd_engine_attach(&engine, setup_id,
						sizeof(setup_id), "CN=fuzz")) ||
		    make_token(admin) < 0)
			abort();
		rhd_engine_detach(&engine, admin);
		ready = 1;
	}
	rhd_app_t *app =
		rhd_engine_attach(&engine, app_id, sizeof(app_id), "CN=fuzz");
	if (!app || open_rw(app) != CKR_OK ||
	    login(app, CKU_USER, FUZZ_PIN) != CKR_OK ||
	    generate_pair(app) != CKR_OK)
		abort();
	return app;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Only the log line is the transport's: rhd_front_call answers in place. */
static const rhd_front_port_t port = {.called = th_front_called};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static rhd_config_t cfg;
	rhd_config_defaults(&cfg);
	cfg.max_frame = FUZZ_MAX_FRAME;
	rhd_front_t front;
	rhd_front_init(&front, &engine, &cfg, &port, NULL);
	front.app = prologue();
	size_t off = 0;
	long n;
	while ((n = rh_frame_next(data + off, size - off, FUZZ_MAX_FRAME)) >
	       0) {
		uint8_t *answer;
		size_t len;
		if (rhd_front_call(&front, data + off, (size_t)n, &answer,
				   &len) < 0)
			break;
		if (rh_frame_next(answer, len, FUZZ_MAX_FRAME) != (long)len)
			abort(); /* an answer is one frame within the limit */
		OPENSSL_cleanse(answer, len);
		free(answer);
		off += (size_t)n;
	}
	/* Leaving the application closes every session this input opened. */
	rhd_front_cleanup(&front);
	return 0;
}
