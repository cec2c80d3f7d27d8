/*
 * libFuzzer target: arbitrary bytes into the frame decoder, each frame's
 * payload into the request decoder, and every decoded request into
 * dispatch, as the daemon does after the TLS layer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "dispatch.h"
#include "engine.h"
#include "engine_support.h"
#include "rh_decode.h"
#include "rh_frame.h"

#define FUZZ_MAX_FRAME (1u << 16)

static rhd_engine_t engine;
static th_store_t store;

static void remove_store(void)
{
	th_store_cleanup(&store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		th_store_open(&store);
		atexit(remove_store);
		if (th_engine_init(&engine, &store, 2) < 0)
			return 0;
		ready = 1;
	}
	static const uint8_t app_id[RHD_APP_ID_LEN] = {0x42};
	rhd_app_t *app =
		rhd_engine_attach(&engine, app_id, sizeof(app_id), "CN=fuzz");
	size_t off = 0;
	long n;
	while ((n = rh_frame_next(data + off, size - off, FUZZ_MAX_FRAME)) >
	       0) {
		int err;
		Remhsm__Request *req = (Remhsm__Request *)rh_decode(
			&remhsm__request__descriptor,
			data + off + RH_FRAME_HEADER,
			(size_t)n - RH_FRAME_HEADER, &err);
		off += (size_t)n;
		if (!req)
			break;
		Remhsm__Response resp = REMHSM__RESPONSE__INIT;
		rh_arena_t arena = RH_ARENA_INIT;
		rhd_dispatch(&engine, app, req, &resp, &arena);
		uint8_t *out = NULL;
		size_t out_len = 0;
		if (rh_frame_pack(&resp.base, &out, &out_len) == 0)
			free(out);
		rh_arena_cleanup(&arena);
		remhsm__request__free_unpacked(req, NULL);
	}
	/* The last detach closes every session this input opened. */
	rhd_engine_detach(&engine, app);
	return 0;
}
