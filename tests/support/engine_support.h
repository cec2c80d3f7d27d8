/* An engine over a fresh store in a temporary folder, for in-process tests
 * and the fuzzer. The KDF is cheap; policy is the daemon's default. */
#ifndef TH_ENGINE_SUPPORT_H
#define TH_ENGINE_SUPPORT_H

#include "engine.h"
#include "frontend.h"
#include "rhs.h"

typedef struct th_store {
	char dir[64];
	char path[128];
	uint8_t key[RHS_KEY_LEN];
	rhs_store_t *store;
} th_store_t;

void th_store_open(th_store_t *s);
void th_store_cleanup(th_store_t *s);
int th_engine_init(rhd_engine_t *engine, th_store_t *s, unsigned slots);

/* A frontend port's called: nothing to count. */
void th_front_called(void *ctx, const Remhsm__Request *req, uint64_t rv,
		     uint64_t started_ns);

#endif
