#include "frontend.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "log.h"
#include "rh_arena.h"
#include "rh_calls.h"
#include "rh_decode.h"
#include "rh_frame.h"

/* The first buffer, and the one kept while a connection is busy. */
#define FIRST_ROOM 16384

void rhd_front_init(rhd_front_t *f, rhd_engine_t *engine,
		    const rhd_config_t *cfg, const rhd_front_port_t *port,
		    void *ctx)
{
	memset(f, 0, sizeof(*f));
	f->engine = engine;
	f->max_frame = cfg->max_frame;
	f->max_inflight = cfg->max_inflight;
	f->port = port;
	f->ctx = ctx;
	f->peer = "-";
	f->identity = "-";
}

static void drop_buffer(rhd_front_t *f)
{
	if (f->inbuf)
		OPENSSL_cleanse(f->inbuf, f->incap); /* may hold a PIN */
	free(f->inbuf);
	f->inbuf = NULL;
	f->incap = 0;
}

void rhd_front_cleanup(rhd_front_t *f)
{
	if (f->app)
		rhd_engine_detach(f->engine, f->app);
	f->app = NULL;
	drop_buffer(f);
	f->inlen = 0;
}

uint64_t rhd_front_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int rhd_front_serving(const rhd_front_t *f)
{
	return !f->failure && !f->refused;
}

static void fail(rhd_front_t *f, const char *why)
{
	if (!f->failure)
		f->failure = why;
}

/* --- answers ------------------------------------------------------------- */

/* The last guard of the frame limit: an answer that would exceed it (the
 * handlers refuse such requests before building their answers) goes out
 * as CKR_DEVICE_MEMORY instead, never as a frame the client must refuse. */
static int pack_within_frame(rhd_front_t *f, const Remhsm__Response *resp,
			     uint8_t **frame, size_t *len)
{
	size_t size = protobuf_c_message_get_packed_size(&resp->base);
	if (size <= f->max_frame)
		return rh_frame_pack(&resp->base, frame, len);
	RHD_ERROR("event=answer-refused peer=%s identity=%s id=%llu "
		  "size=%zu limit=%u reason=\"answer exceeds the frame\"",
		  f->peer, f->identity, (unsigned long long)resp->id, size,
		  f->max_frame);
	Remhsm__Response refusal = REMHSM__RESPONSE__INIT;
	refusal.id = resp->id;
	refusal.rv = CKR_DEVICE_MEMORY;
	return rh_frame_pack(&refusal.base, frame, len);
}

static void send_response(rhd_front_t *f, const Remhsm__Response *resp)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	if (pack_within_frame(f, resp, &frame, &len) < 0) {
		fail(f, "cannot encode response");
		return;
	}
	int r = f->port->send(f->ctx, frame, len);
	OPENSSL_cleanse(frame, len); /* may hold a key's public half, a MAC */
	free(frame);
	if (r < 0)
		fail(f, "cannot write response");
}

void rhd_front_reply(rhd_front_t *f, const Remhsm__Request *req,
		     const Remhsm__Response *resp, uint64_t started_ns)
{
	f->port->called(f->ctx, req, resp->rv, started_ns);
	send_response(f, resp);
}

/* --- Hello --------------------------------------------------------------- */

static int choose_version(const Remhsm__HelloReq *hello)
{
	for (size_t i = 0; i < hello->n_versions; i++)
		if (hello->versions[i] == RH_PROTOCOL_VERSION)
			return (int)RH_PROTOCOL_VERSION;
	return 0;
}

/* The application learns what its connection may see and do. */
static void hand_over_grant(rhd_front_t *f, const Remhsm__HelloReq *hello)
{
	if (hello->compat && !strcmp(hello->compat, "freertos"))
		f->app->compat_freertos = 1;
	f->app->visible_slots = f->visible_slots;
	f->app->roles = f->roles;
	int compat_freertos = f->app->compat_freertos;
	RHD_INFO("event=hello peer=%s identity=%s version=%u compat=%s",
		 f->peer, f->identity, RH_PROTOCOL_VERSION,
		 compat_freertos ? "freertos" : "none");
}

static void handle_hello(rhd_front_t *f, const Remhsm__Request *req)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__HelloResp hello = REMHSM__HELLO_RESP__INIT;
	resp.id = req->id;
	resp.result_case = REMHSM__RESPONSE__RESULT_HELLO;
	resp.hello = &hello;
	hello.max_frame = f->max_frame;
	hello.max_inflight = f->max_inflight;
	hello.server_id = (char *)"remhsmd";
	hello.version = (uint32_t)choose_version(req->hello);
	hello.connections =
		f->port->connections ? f->port->connections(f->ctx) : 1;
	const char *refusal = NULL;
	if (hello.version == 0) {
		refusal = "no common protocol version";
		resp.rv = CKR_FUNCTION_NOT_SUPPORTED;
	} else if (req->hello->probe) {
		/* The real Hello may follow on this connection. */
		hello.probed = 1;
		send_response(f, &resp);
		RHD_INFO("event=probe peer=%s identity=%s connections=%u",
			 f->peer, f->identity, hello.connections);
		return;
	} else {
		f->app = rhd_engine_attach(f->engine, req->hello->app_id.data,
					   req->hello->app_id.len, f->identity);
		if (!f->app) {
			refusal = "application id malformed or bound to "
				  "another identity";
			resp.rv = CKR_ARGUMENTS_BAD;
		}
	}
	send_response(f, &resp);
	if (refusal) {
		RHD_WARN(
			"event=hello-refused peer=%s identity=%s reason=\"%s\"",
			f->peer, f->identity, refusal);
		f->refused = 1;
		return;
	}
	hand_over_grant(f, req->hello);
}

/* --- calls --------------------------------------------------------------- */

/* Wipes what the request carried (PINs, key values, data to sign), then
 * frees it. */
static void request_free(Remhsm__Request *req)
{
	rh_free_wiped(&req->base);
}

/* A slow call goes to a worker, unless it is short (an ECDSA or Ed25519
 * signature or verification of little data): handing that over would cost more
 * than running it here, and it must never wait behind long work. */
static int goes_to_worker(const Remhsm__Request *req)
{
	return (rh_call_flags((unsigned)req->call_case) & RH_CALL_POOL) &&
	       !rhd_dispatch_is_short(req);
}

static void to_worker(rhd_front_t *f, Remhsm__Request *req)
{
	if (f->port->queue(f->ctx, req) < 0) {
		request_free(req);
		fail(f, "cannot queue work");
	}
}

/* Answers req on a worker, or in place on the loop (in_place) unless that
 * would wait for a worker: then it goes to one. */
static void answer(rhd_front_t *f, Remhsm__Request *req, int in_place)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	rh_arena_t arena = RH_ARENA_INIT;
	uint64_t started = rhd_front_now_ns();
	if (!in_place) {
		rhd_dispatch(f->engine, f->app, req, &resp, &arena);
	} else if (rhd_dispatch_inline(f->engine, f->app, req, &resp, &arena) <
		   0) {
		to_worker(f, req); /* refused before anything was made */
		return;
	}
	rhd_front_reply(f, req, &resp, started);
	rh_arena_cleanup(&arena);
	request_free(req);
}

void rhd_front_run(rhd_front_t *f, Remhsm__Request *req)
{
	answer(f, req, 0);
}

static void handle_call(rhd_front_t *f, Remhsm__Request *req)
{
	if (goes_to_worker(req))
		to_worker(f, req);
	else
		answer(f, req, 1);
}

/* A request nested deeper than the protocol allows was not decoded; the
 * only recursion in the schema is an attribute holding a template, so it is
 * answered as a template PKCS#11 does not allow, and the connection lives
 * on. Before Hello there is nobody to answer. */
static void refuse_too_deep(rhd_front_t *f, const uint8_t *payload, size_t len)
{
	uint64_t id;
	uint32_t call;
	if (!f->app || rh_decode_peek(payload, len, 1, &id, &call) < 0 ||
	    call == REMHSM__REQUEST__CALL_HELLO) {
		fail(f, "request nested too deep");
		return;
	}
	RHD_WARN("event=request-refused peer=%s identity=%s call=%s id=%llu "
		 "reason=\"nested deeper than %u levels\"",
		 f->peer, f->identity,
		 rh_call_name(call) ? rh_call_name(call) : "-",
		 (unsigned long long)id, RH_MAX_NESTING);
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	resp.id = id;
	resp.rv = CKR_ATTRIBUTE_VALUE_INVALID;
	send_response(f, &resp);
}

static void handle_frame(rhd_front_t *f, const uint8_t *payload, size_t len)
{
	int err;
	Remhsm__Request *req = (Remhsm__Request *)rh_decode(
		&remhsm__request__descriptor, payload, len, &err);
	if (!req) {
		if (err == RH_EDEPTH)
			refuse_too_deep(f, payload, len);
		else
			fail(f, "undecodable frame");
		return;
	}
	int is_hello = req->call_case == REMHSM__REQUEST__CALL_HELLO;
	if (is_hello != !f->app) {
		request_free(req);
		fail(f, is_hello ? "second hello" : "request before hello");
		return;
	}
	if (is_hello) {
		handle_hello(f, req);
		request_free(req);
		return;
	}
	handle_call(f, req);
}

/* --- one frame, answered in place ---------------------------------------- */

/* Stands in for the transport during rhd_front_call: keeps the answer,
 * runs long calls at once, and passes the log line on. */
typedef struct capture {
	rhd_front_t *front;
	const rhd_front_port_t *port;
	void *ctx;
	uint8_t *answer;
	size_t len;
} capture_t;

static int capture_send(void *ctx, const uint8_t *frame, size_t len)
{
	capture_t *c = ctx;
	if (c->answer)
		return -1; /* one request, one answer */
	c->answer = malloc(len);
	if (!c->answer)
		return -1;
	memcpy(c->answer, frame, len);
	c->len = len;
	return 0;
}

static int capture_queue(void *ctx, Remhsm__Request *req)
{
	rhd_front_run(((capture_t *)ctx)->front, req);
	return 0;
}

static int capture_must_wait(void *ctx)
{
	(void)ctx;
	return 0;
}

static void capture_called(void *ctx, const Remhsm__Request *req, uint64_t rv,
			   uint64_t started_ns)
{
	capture_t *c = ctx;
	c->port->called(c->ctx, req, rv, started_ns);
}

static const rhd_front_port_t capture_port = {
	.send = capture_send,
	.queue = capture_queue,
	.must_wait = capture_must_wait,
	.called = capture_called,
};

int rhd_front_call(rhd_front_t *f, const uint8_t *frame, size_t len,
		   uint8_t **answer, size_t *answer_len)
{
	*answer = NULL;
	*answer_len = 0;
	if (!rhd_front_serving(f))
		return -1;
	if (rh_frame_next(frame, len, f->max_frame) != (long)len) {
		fail(f, "not one whole frame within the maximum size");
		return -1;
	}
	capture_t c = {.front = f, .port = f->port, .ctx = f->ctx};
	f->port = &capture_port;
	f->ctx = &c;
	handle_frame(f, frame + RH_FRAME_HEADER, len - RH_FRAME_HEADER);
	f->port = c.port;
	f->ctx = c.ctx;
	*answer = c.answer;
	*answer_len = c.len;
	return c.answer ? 0 : -1;
}

/* --- frames -------------------------------------------------------------- */

unsigned rhd_front_take_frames(rhd_front_t *f)
{
	size_t off = 0;
	unsigned frames = 0;
	while (rhd_front_serving(f) && !f->port->must_wait(f->ctx)) {
		long n = rh_frame_next(f->inbuf + off, f->inlen - off,
				       f->max_frame);
		if (n < 0) {
			fail(f, "frame exceeds the maximum size");
			return frames;
		}
		if (n == 0)
			break;
		handle_frame(f, f->inbuf + off + RH_FRAME_HEADER,
			     (size_t)n - RH_FRAME_HEADER);
		off += (size_t)n;
		frames++;
	}
	if (f->failure || off == 0)
		return frames;
	memmove(f->inbuf, f->inbuf + off, f->inlen - off);
	f->inlen -= off;
	/* Frames may have carried PINs: nothing handled stays behind. */
	OPENSSL_cleanse(f->inbuf + f->inlen, off);
	/* A large frame's buffer is not kept for a connection gone quiet. */
	if (f->inlen == 0 && f->incap > FIRST_ROOM)
		drop_buffer(f);
	return frames;
}

/* The buffer grows with what has arrived (doubling), never to what a
 * header merely announces, so a stalled frame pins no more memory than its
 * sender has sent; the header has been checked against the maximum, so the
 * buffer never outgrows the frame either. */
static int grow(rhd_front_t *f)
{
	size_t want = f->incap ? f->incap * 2 : FIRST_ROOM;
	if (f->inlen >= RH_FRAME_HEADER) {
		uint32_t payload;
		if (rh_frame_header_decode(f->inbuf, f->max_frame, &payload) <
		    0)
			return -1;
		size_t frame = RH_FRAME_HEADER + (size_t)payload;
		if (frame > f->incap && want > frame)
			want = frame;
	}
	uint8_t *grown = malloc(want);
	if (!grown)
		return -1;
	if (f->inbuf)
		memcpy(grown, f->inbuf, f->inlen);
	drop_buffer(f);
	f->inbuf = grown;
	f->incap = want;
	return 0;
}

int rhd_front_room(rhd_front_t *f, uint8_t **at, size_t *room)
{
	if (f->inlen == f->incap && grow(f) < 0) {
		fail(f, "frame exceeds the maximum size");
		return -1;
	}
	*at = f->inbuf + f->inlen;
	*room = f->incap - f->inlen;
	return 0;
}

unsigned rhd_front_received(rhd_front_t *f, size_t n)
{
	f->inlen += n;
	return rhd_front_take_frames(f);
}
