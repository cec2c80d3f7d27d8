#include "frames.h"

#include <stdlib.h>
#include <string.h>

#include "rh_calls.h"
#include "rh_frame.h"

size_t th_frame_into(uint8_t *dst, const Remhsm__Request *req)
{
	uint8_t *frame;
	size_t len;
	if (rh_frame_pack(&req->base, &frame, &len) < 0)
		exit(1);
	memcpy(dst, frame, len);
	free(frame);
	return len;
}

static size_t hello_frame(uint8_t *dst, uint32_t version, uint8_t app,
			  int probe)
{
	uint8_t app_id[16] = {app};
	uint32_t versions[] = {version};
	Remhsm__HelloReq hello = REMHSM__HELLO_REQ__INIT;
	hello.n_versions = 1;
	hello.versions = versions;
	hello.app_id = (ProtobufCBinaryData){sizeof(app_id), app_id};
	hello.probe = probe != 0;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 1;
	req.call_case = REMHSM__REQUEST__CALL_HELLO;
	req.hello = &hello;
	return th_frame_into(dst, &req);
}

size_t th_hello_into(uint8_t *dst, uint32_t version, uint8_t app)
{
	return hello_frame(dst, version, app, 0);
}

size_t th_probe_into(uint8_t *dst, uint32_t version)
{
	return hello_frame(dst, version, 0, 1);
}

static int read_full(SSL *ssl, uint8_t *buf, size_t len)
{
	size_t got = 0, n = 0;
	while (got < len) {
		if (SSL_read_ex(ssl, buf + got, len - got, &n) != 1)
			return -1;
		got += n;
	}
	return 0;
}

Remhsm__Request *th_read_request(SSL *ssl, uint32_t max)
{
	uint8_t header[RH_FRAME_HEADER];
	uint32_t len = 0;
	if (read_full(ssl, header, sizeof(header)) < 0 ||
	    rh_frame_header_decode(header, max, &len) < 0)
		return NULL;
	uint8_t *payload = malloc(len ? len : 1);
	Remhsm__Request *req = NULL;
	if (payload && read_full(ssl, payload, len) == 0)
		req = remhsm__request__unpack(NULL, len, payload);
	free(payload);
	return req;
}
