#include "dispatch.h"

#include <openssl/rand.h>
#include <string.h>

#include "rh_calls.h"

typedef struct call_ctx {
	rhd_engine_t *engine;
	rhd_app_t *app;
	rh_arena_t *arena;
	Remhsm__Response *resp;
} call_ctx_t;

/* result_<call>(ctx): allocates the call's result message in the arena and
 * attaches it to the response, or returns NULL when out of memory. */
#define RHD_RESULT_ALLOC(num, UP, low, Camel, flags)                           \
	__attribute__((unused)) static Remhsm__##Camel##Resp *result_##low(    \
		call_ctx_t *ctx)                                               \
	{                                                                      \
		Remhsm__##Camel##Resp *r =                                     \
			rh_arena_alloc(ctx->arena, sizeof(*r));                \
		if (!r)                                                        \
			return NULL;                                           \
		remhsm__##low##_resp__init(r);                                 \
		ctx->resp->result_case = REMHSM__RESPONSE__RESULT_##UP;        \
		ctx->resp->low = r;                                            \
		return r;                                                      \
	}
RH_CALLS(RHD_RESULT_ALLOC)
#undef RHD_RESULT_ALLOC

#define RHD_VERSION_MAJOR 0
#define RHD_VERSION_MINOR 1

static Remhsm__Version *version_new(call_ctx_t *ctx, uint32_t major,
				    uint32_t minor)
{
	Remhsm__Version *v = rh_arena_alloc(ctx->arena, sizeof(*v));
	if (!v)
		return NULL;
	remhsm__version__init(v);
	v->major = major;
	v->minor = minor;
	return v;
}

static ProtobufCBinaryData text(const char *s)
{
	return (ProtobufCBinaryData){.len = strlen(s), .data = (uint8_t *)s};
}

static CK_RV on_get_info(call_ctx_t *ctx, const Remhsm__GetInfoReq *req)
{
	(void)req;
	Remhsm__GetInfoResp *r = result_get_info(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	r->cryptoki_version = version_new(ctx, 2, 40);
	r->library_version =
		version_new(ctx, RHD_VERSION_MAJOR, RHD_VERSION_MINOR);
	if (!r->cryptoki_version || !r->library_version)
		return CKR_HOST_MEMORY;
	r->manufacturer_id = text("remhsm");
	r->library_description = text("remhsm remote HSM");
	return CKR_OK;
}

static CK_RV on_get_slot_list(call_ctx_t *ctx,
			      const Remhsm__GetSlotListReq *req)
{
	(void)req;
	Remhsm__GetSlotListResp *r = result_get_slot_list(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	unsigned n = ctx->engine->slot_count;
	r->slots = rh_arena_alloc(ctx->arena, n * sizeof(*r->slots));
	if (!r->slots && n)
		return CKR_HOST_MEMORY;
	for (unsigned i = 0; i < n; i++)
		r->slots[i] = i;
	r->n_slots = n;
	return CKR_OK;
}

static CK_RV on_get_slot_info(call_ctx_t *ctx,
			      const Remhsm__GetSlotInfoReq *req)
{
	if (!rhd_engine_slot_valid(ctx->engine, req->slot))
		return CKR_SLOT_ID_INVALID;
	Remhsm__GetSlotInfoResp *r = result_get_slot_info(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	r->slot_description = text("remhsm remote slot");
	r->manufacturer_id = text("remhsm");
	r->flags = CKF_TOKEN_PRESENT;
	r->hardware_version =
		version_new(ctx, RHD_VERSION_MAJOR, RHD_VERSION_MINOR);
	r->firmware_version =
		version_new(ctx, RHD_VERSION_MAJOR, RHD_VERSION_MINOR);
	if (!r->hardware_version || !r->firmware_version)
		return CKR_HOST_MEMORY;
	return CKR_OK;
}

static CK_RV on_get_token_info(call_ctx_t *ctx,
			       const Remhsm__GetTokenInfoReq *req)
{
	if (!rhd_engine_slot_valid(ctx->engine, req->slot))
		return CKR_SLOT_ID_INVALID;
	Remhsm__GetTokenInfoResp *r = result_get_token_info(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	/* Until the store lands, tokens are uninitialised: blank label, and
	 * only the random number generator. */
	r->label = text("");
	r->manufacturer_id = text("remhsm");
	r->model = text("remhsmd");
	r->serial_number = text(ctx->engine->serial);
	r->flags = CKF_RNG;
	r->max_session_count = RHD_MAX_SESSIONS_PER_APP;
	r->max_rw_session_count = RHD_MAX_SESSIONS_PER_APP;
	unsigned long all, rw;
	rhd_session_count(ctx->app, req->slot, &all, &rw);
	r->session_count = all;
	r->rw_session_count = rw;
	r->max_pin_len = 255;
	r->min_pin_len = 4;
	r->total_public_memory = UINT64_MAX;
	r->free_public_memory = UINT64_MAX;
	r->total_private_memory = UINT64_MAX;
	r->free_private_memory = UINT64_MAX;
	r->hardware_version =
		version_new(ctx, RHD_VERSION_MAJOR, RHD_VERSION_MINOR);
	r->firmware_version =
		version_new(ctx, RHD_VERSION_MAJOR, RHD_VERSION_MINOR);
	if (!r->hardware_version || !r->firmware_version)
		return CKR_HOST_MEMORY;
	r->utc_time = text("");
	return CKR_OK;
}

/* No mechanism is served yet; the list tells the truth until the signing
 * and digest engine lands. */
static CK_RV on_get_mechanism_list(call_ctx_t *ctx,
				   const Remhsm__GetMechanismListReq *req)
{
	if (!rhd_engine_slot_valid(ctx->engine, req->slot))
		return CKR_SLOT_ID_INVALID;
	return result_get_mechanism_list(ctx) ? CKR_OK : CKR_HOST_MEMORY;
}

static CK_RV on_get_mechanism_info(call_ctx_t *ctx,
				   const Remhsm__GetMechanismInfoReq *req)
{
	if (!rhd_engine_slot_valid(ctx->engine, req->slot))
		return CKR_SLOT_ID_INVALID;
	return CKR_MECHANISM_INVALID;
}

static CK_RV on_open_session(call_ctx_t *ctx, const Remhsm__OpenSessionReq *req)
{
	if (!rhd_engine_slot_valid(ctx->engine, req->slot))
		return CKR_SLOT_ID_INVALID;
	Remhsm__OpenSessionResp *r = result_open_session(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	uint32_t handle = 0;
	CK_RV rv = rhd_session_open(ctx->app, req->slot, req->flags, &handle);
	r->session = handle;
	return rv;
}

static CK_RV on_close_session(call_ctx_t *ctx,
			      const Remhsm__CloseSessionReq *req)
{
	return rhd_session_close(ctx->app, req->session);
}

static CK_RV on_close_all_sessions(call_ctx_t *ctx,
				   const Remhsm__CloseAllSessionsReq *req)
{
	if (!rhd_engine_slot_valid(ctx->engine, req->slot))
		return CKR_SLOT_ID_INVALID;
	rhd_session_close_slot(ctx->app, req->slot);
	return CKR_OK;
}

static CK_RV on_get_session_info(call_ctx_t *ctx,
				 const Remhsm__GetSessionInfoReq *req)
{
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	Remhsm__GetSessionInfoResp *r = result_get_session_info(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	r->slot = s->slot;
	r->flags = s->flags;
	r->state = (s->flags & CKF_RW_SESSION) ? CKS_RW_PUBLIC_SESSION
					       : CKS_RO_PUBLIC_SESSION;
	return CKR_OK;
}

static CK_RV on_seed_random(call_ctx_t *ctx, const Remhsm__SeedRandomReq *req)
{
	if (!rhd_session_find(ctx->app, req->session))
		return CKR_SESSION_HANDLE_INVALID;
	/* Mixed in as additional input with no entropy credit: a client's
	 * seed can never weaken the daemon's generator. */
	if (req->seed.len > RHD_MAX_RANDOM_PER_CALL)
		return CKR_ARGUMENTS_BAD;
	RAND_add(req->seed.data, (int)req->seed.len, 0.0);
	return CKR_OK;
}

static CK_RV on_generate_random(call_ctx_t *ctx,
				const Remhsm__GenerateRandomReq *req)
{
	if (!rhd_session_find(ctx->app, req->session))
		return CKR_SESSION_HANDLE_INVALID;
	if (req->length > RHD_MAX_RANDOM_PER_CALL)
		return CKR_ARGUMENTS_BAD;
	Remhsm__GenerateRandomResp *r = result_generate_random(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	r->data.data = rh_arena_alloc(ctx->arena, req->length);
	if (!r->data.data && req->length)
		return CKR_HOST_MEMORY;
	r->data.len = req->length;
	if (req->length && RAND_bytes(r->data.data, (int)req->length) != 1)
		return CKR_DEVICE_ERROR;
	return CKR_OK;
}

#define RHD_IMPLEMENTED(X)                                                     \
	X(GET_INFO, get_info)                                                  \
	X(GET_SLOT_LIST, get_slot_list)                                        \
	X(GET_SLOT_INFO, get_slot_info)                                        \
	X(GET_TOKEN_INFO, get_token_info)                                      \
	X(GET_MECHANISM_LIST, get_mechanism_list)                              \
	X(GET_MECHANISM_INFO, get_mechanism_info)                              \
	X(OPEN_SESSION, open_session)                                          \
	X(CLOSE_SESSION, close_session)                                        \
	X(CLOSE_ALL_SESSIONS, close_all_sessions)                              \
	X(GET_SESSION_INFO, get_session_info)                                  \
	X(SEED_RANDOM, seed_random)                                            \
	X(GENERATE_RANDOM, generate_random)

static CK_RV route(call_ctx_t *ctx, const Remhsm__Request *req)
{
	switch (req->call_case) {
#define RHD_ROUTE(UP, low)                                                     \
	case REMHSM__REQUEST__CALL_##UP:                                       \
		if (!req->low)                                                 \
			return CKR_ARGUMENTS_BAD;                              \
		return on_##low(ctx, req->low);
		RHD_IMPLEMENTED(RHD_ROUTE)
#undef RHD_ROUTE
	case REMHSM__REQUEST__CALL_HELLO:
		return CKR_GENERAL_ERROR;
	default:
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
}

void rhd_dispatch(rhd_engine_t *engine, rhd_app_t *app,
		  const Remhsm__Request *req, Remhsm__Response *resp,
		  rh_arena_t *arena)
{
	call_ctx_t ctx = {
		.engine = engine, .app = app, .arena = arena, .resp = resp};
	resp->id = req->id;
	pthread_mutex_lock(&app->lock);
	resp->rv = route(&ctx, req);
	pthread_mutex_unlock(&app->lock);
}
