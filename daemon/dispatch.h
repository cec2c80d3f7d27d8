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

/*
 * The same on an event-loop thread, which must not wait for what a worker
 * may be doing: -1, with nothing done, when the app's lock is taken (a
 * worker may hold it across store I/O) or when the call would read the
 * store (a token object's attributes, an init whose key is not loaded yet).
 * The caller then gives the call to a worker.
 */
int rhd_dispatch_inline(rhd_engine_t *engine, rhd_app_t *app,
			const Remhsm__Request *req, Remhsm__Response *resp,
			rh_arena_t *arena);

/*
 * Whether a call the thread pool normally runs is short enough to run in
 * place: a single-part ECDSA sign or verify carrying its init, over at most
 * RHD_SHORT_CALL_DATA bytes. It costs less than handing it to a thread.
 */
#define RHD_SHORT_CALL_DATA 1024
int rhd_dispatch_is_short(const Remhsm__Request *req);

#endif
