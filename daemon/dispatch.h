/*
 * Dispatch: a decoded request in, a response out. No I/O, so unit tests,
 * the fuzzer and the network server all run the same code.
 */
#ifndef RHD_DISPATCH_H
#define RHD_DISPATCH_H

#include "engine.h"
#include "remhsm.pb-c.h"
#include "rh_arena.h"

/*
 * Answers one call of app. Every allocation of resp lives in arena. A call
 * outside the supported set answers CKR_FUNCTION_NOT_SUPPORTED. Hello is
 * the connection's business, not dispatch's: it answers CKR_GENERAL_ERROR.
 */
void rhd_dispatch(rhd_engine_t *engine, rhd_app_t *app,
		  const Remhsm__Request *req, Remhsm__Response *resp,
		  rh_arena_t *arena);

#endif
