/*
 * One connection's protocol above its transport: frames cut from the bytes
 * the transport delivers, each request decoded within the nesting bound,
 * Hello before anything else, calls run in place or handed to a worker,
 * and every answer packed within the frame limit. No TLS and no event
 * loop here, so that the fuzzer and the unit tests drive the very code the
 * server runs with plain bytes.
 */
#ifndef RHD_FRONTEND_H
#define RHD_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "remhsm.pb-c.h"

/* What the frontend needs from the transport that carries it. */
typedef struct rhd_front_port {
	/* One packed frame for the peer; < 0 when it cannot go out. */
	int (*send)(void *ctx, const uint8_t *frame, size_t len);
	/* A long call for a worker: the port owns req from now on and
	 * answers it with rhd_front_reply; < 0 when it cannot be queued. */
	int (*queue)(void *ctx, Remhsm__Request *req);
	/* Non-zero while no further frame may be taken (backpressure). */
	int (*must_wait)(void *ctx);
	/* A call was answered: for the metrics and the log. */
	void (*called)(void *ctx, const Remhsm__Request *req, uint64_t rv,
		       uint64_t started_ns);
	/* Client connections the daemon holds now, told to a client that
	 * asks which daemon is least busy; NULL counts this one alone. */
	unsigned (*connections)(void *ctx);
} rhd_front_port_t;

typedef struct rhd_front {
	rhd_engine_t *engine;
	uint32_t max_frame;
	uint32_t max_inflight;
	const rhd_front_port_t *port;
	void *ctx;
	/* For log lines and the engine; the transport owns the strings. */
	const char *peer;
	const char *identity;
	/* What the access list grants, handed to the application at Hello. */
	uint64_t visible_slots;
	unsigned roles;
	rhd_app_t *app; /* from a successful Hello on */
	uint8_t *inbuf;
	size_t inlen, incap;
	/* Why the connection must close now; NULL while it may live. */
	const char *failure;
	/* Hello was refused: close once its answer is out. */
	int refused;
} rhd_front_t;

void rhd_front_init(rhd_front_t *f, rhd_engine_t *engine,
		    const rhd_config_t *cfg, const rhd_front_port_t *port,
		    void *ctx);
/* Leaves the application and wipes what the buffer held. */
void rhd_front_cleanup(rhd_front_t *f);

/* Room for the transport to put bytes in (it grows with what has arrived,
 * never to what a header announces); < 0 when the frame being received
 * exceeds the limit or memory ran out, with failure set. */
int rhd_front_room(rhd_front_t *f, uint8_t **at, size_t *room);

/* n bytes were put in the room: handles every whole frame the port lets it
 * take. Returns how many frames it handled. */
unsigned rhd_front_received(rhd_front_t *f, size_t n);

/* Handles the frames already buffered (after backpressure ends). */
unsigned rhd_front_take_frames(rhd_front_t *f);

/* 1 while frames are still taken: not failed, Hello not refused. */
int rhd_front_serving(const rhd_front_t *f);

/* Answers a call (a worker's, or one run in place). */
void rhd_front_reply(rhd_front_t *f, const Remhsm__Request *req,
		     const Remhsm__Response *resp, uint64_t started_ns);

/* Runs a call on this thread, answers it and frees req: what the
 * frontend does with short calls, and what a worker's stand-in does. */
void rhd_front_run(rhd_front_t *f, Remhsm__Request *req);

/* One whole request frame (header and payload) in, its answer's frame out,
 * on the state f holds: Hello first, then calls of its application, every
 * call run on this thread, long ones too. The answer is malloc'd for the
 * caller, who wipes and frees it. < 0 when the frame has no answer (or f
 * had stopped serving): f->failure then says why the connection closes.
 * For the fuzzer and the tests; the server feeds bytes as they come. */
int rhd_front_call(rhd_front_t *f, const uint8_t *frame, size_t len,
		   uint8_t **answer, size_t *answer_len);

/* The monotonic clock the started_ns of rhd_front_reply are read on. */
uint64_t rhd_front_now_ns(void);

#endif
