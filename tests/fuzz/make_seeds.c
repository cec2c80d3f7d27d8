/*
 * Writes the fuzzer's seed corpus (tests/fuzz/corpus): one framed request
 * per call with a small valid body, a session-then-random sequence, and the
 * malformed shapes the integration tests send. Run by hand when the schema
 * grows: make_seeds DIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remhsm.pb-c.h"
#include "rh_calls.h"
#include "rh_frame.h"

static void write_file(const char *dir, const char *name, const uint8_t *buf,
		       size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static size_t frame_into(uint8_t *dst, const Remhsm__Request *req)
{
	uint8_t *frame;
	size_t len;
	if (rh_frame_pack(&req->base, &frame, &len) < 0)
		exit(1);
	memcpy(dst, frame, len);
	free(frame);
	return len;
}

static void seed_call(const char *dir, unsigned id,
		      const ProtobufCMessageDescriptor *desc, const char *name)
{
	ProtobufCMessage *body = calloc(1, desc->sizeof_message);
	protobuf_c_message_init(desc, body);
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = id;
	req.call_case = (Remhsm__Request__CallCase)id;
	req.get_info = (Remhsm__GetInfoReq *)body;
	uint8_t buf[256];
	write_file(dir, name, buf, frame_into(buf, &req));
	free(body);
}

static void seed_session_then_random(const char *dir)
{
	uint8_t buf[256];
	size_t len = 0;
	Remhsm__OpenSessionReq open = REMHSM__OPEN_SESSION_REQ__INIT;
	open.flags = 4; /* CKF_SERIAL_SESSION */
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 1;
	req.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	req.open_session = &open;
	len += frame_into(buf + len, &req);
	Remhsm__GenerateRandomReq rnd = REMHSM__GENERATE_RANDOM_REQ__INIT;
	rnd.session = 1;
	rnd.length = 32;
	req.id = 2;
	req.call_case = REMHSM__REQUEST__CALL_GENERATE_RANDOM;
	req.generate_random = &rnd;
	len += frame_into(buf + len, &req);
	Remhsm__GetSessionInfoReq info = REMHSM__GET_SESSION_INFO_REQ__INIT;
	info.session = 1;
	req.id = 3;
	req.call_case = REMHSM__REQUEST__CALL_GET_SESSION_INFO;
	req.get_session_info = &info;
	len += frame_into(buf + len, &req);
	write_file(dir, "session-random-info", buf, len);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds DIR\n");
		return 2;
	}
#define SEED(num, UP, low, Camel, flags)                                       \
	seed_call(argv[1], num, &remhsm__##low##_req__descriptor, #low);
	RH_CALLS(SEED)
#undef SEED
	seed_session_then_random(argv[1]);
	const uint8_t oversized[] = {0xff, 0xff, 0xff, 0xf0, 1, 2};
	write_file(argv[1], "oversized-header", oversized, sizeof(oversized));
	const uint8_t unknown_call[] = {0,    0,    0,	  5,   0x08,
					0x09, 0x9a, 0x06, 0x00};
	write_file(argv[1], "unknown-call", unknown_call, sizeof(unknown_call));
	const uint8_t garbage[] = {0,	 0,    0,    6,	   0xff,
				   0xff, 0xff, 0xff, 0xff, 0xff};
	write_file(argv[1], "garbage", garbage, sizeof(garbage));
	return 0;
}
