/*
 * libFuzzer target: one connection's plaintext, as the daemon's frontend
 * receives it from TLS. The first byte of the input says how the rest is
 * delivered (in chunks of 1 to 128 bytes, or at once) and whether the
 * transport holds frames back between deliveries (backpressure); the rest
 * is the byte stream: Hello, then calls, framed or not. Long calls run at
 * once on this thread, as a worker would run them.
 *
 * Checked on every answer: it is a whole frame within the limit, it
 * decodes, and nothing is answered after the frontend said the connection
 * must close. The engine has two blank slots (no token: seeds of
 * fuzz_dispatch reach the token).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_support.h"
#include "frontend.h"
#include "rh_decode.h"
#include "rh_frame.h"

/* Smaller than the inputs may be, so that frames over the limit and
 * answers near it are reached. */
#define MAX_FRAME 16384

static rhd_engine_t engine;
static th_store_t store;
static rhd_config_t cfg;

typedef struct fuzz_conn {
	rhd_front_t front;
	int hold_back; /* must_wait answers 1 until the next delivery */
} fuzz_conn_t;

static void remove_store(void)
{
	th_store_cleanup(&store);
}

static int port_send(void *ctx, const uint8_t *frame, size_t len)
{
	fuzz_conn_t *c = ctx;
	if (c->front.failure || len < RH_FRAME_HEADER)
		abort();
	if (rh_frame_next(frame, len, MAX_FRAME) != (long)len)
		abort();
	int err;
	ProtobufCMessage *resp =
		rh_decode(&remhsm__response__descriptor,
			  frame + RH_FRAME_HEADER, len - RH_FRAME_HEADER, &err);
	if (!resp)
		abort();
	rh_free_wiped(resp);
	return 0;
}

static int port_queue(void *ctx, Remhsm__Request *req)
{
	rhd_front_run(&((fuzz_conn_t *)ctx)->front, req);
	return 0;
}

static int port_must_wait(void *ctx)
{
	return ((fuzz_conn_t *)ctx)->hold_back;
}

static const rhd_front_port_t port = {
	.send = port_send,
	.queue = port_queue,
	.must_wait = port_must_wait,
	.called = th_front_called,
};

static void setup(void)
{
	static int ready;
	if (ready)
		return;
	th_store_open(&store);
	atexit(remove_store);
	if (th_engine_init(&engine, &store, 2) < 0)
		abort();
	rhd_config_defaults(&cfg);
	cfg.max_frame = MAX_FRAME;
	ready = 1;
}

/* Puts len bytes into the frontend as TLS would: as much as its room
 * takes, over and over. 0 while the connection lives. */
static int deliver(fuzz_conn_t *c, const uint8_t *data, size_t len)
{
	while (len > 0) {
		uint8_t *room;
		size_t cap;
		if (rhd_front_room(&c->front, &room, &cap) < 0)
			return -1;
		size_t n = len < cap ? len : cap;
		memcpy(room, data, n);
		rhd_front_received(&c->front, n);
		if (!rhd_front_serving(&c->front))
			return -1;
		data += n;
		len -= n;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	setup();
	uint8_t how = data[0];
	size_t chunk = how & 0x80 ? size : (size_t)(how & 0x7f) + 1;
	int backpressure = how & 0x40;
	fuzz_conn_t c = {0};
	rhd_front_init(&c.front, &engine, &cfg, &port, &c);
	c.front.identity = "CN=fuzz";
	c.front.visible_slots = ~0ull;
	c.front.roles = ~0u;
	for (size_t off = 1; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		c.hold_back = backpressure;
		if (deliver(&c, data + off, n) < 0)
			break;
		/* The transport lets the held frames through. */
		c.hold_back = 0;
		rhd_front_take_frames(&c.front);
		if (!rhd_front_serving(&c.front))
			break;
	}
	rhd_front_cleanup(&c.front);
	return 0;
}
