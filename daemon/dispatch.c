#include "dispatch.h"

#include <openssl/crypto.h>
#include <string.h>

#include "audit.h"
#include "log.h"
#include "object.h"
#include "objects.h"
#include "crypto.h"
#include "ops.h"
#include "resume.h"
#include "rh_calls.h"
#include "object_template.h"
#include "wrap.h"

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

/* A slot exists and the access list lets this application see it: any
 * other is answered as if it did not exist. */
static int slot_visible(const call_ctx_t *ctx, uint64_t slot)
{
	return rhd_engine_slot_valid(ctx->engine, slot) &&
	       (ctx->app->visible_slots >> slot & 1);
}

/* A role the access list did not grant: refused, with a log line. */
static CK_RV lacks_role(const call_ctx_t *ctx, unsigned role, const char *what,
			CK_RV refusal)
{
	if (ctx->app->roles & role)
		return CKR_OK;
	RHD_WARN("event=access-denied identity=%s action=%s",
		 ctx->app->identity, what);
	return refusal;
}

static CK_RV on_get_slot_list(call_ctx_t *ctx,
			      const Remhsm__GetSlotListReq *req)
{
	(void)req;
	Remhsm__GetSlotListResp *r = result_get_slot_list(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	unsigned n = ctx->engine->slot_count;
	r->slots = rh_arena_alloc(ctx->arena, (n + 1) * sizeof(*r->slots));
	if (!r->slots)
		return CKR_HOST_MEMORY;
	for (unsigned i = 0; i < n; i++)
		if (slot_visible(ctx, i))
			r->slots[r->n_slots++] = i;
	return CKR_OK;
}

static CK_RV on_get_slot_info(call_ctx_t *ctx,
			      const Remhsm__GetSlotInfoReq *req)
{
	if (!slot_visible(ctx, req->slot))
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

static void token_info_fill(call_ctx_t *ctx, Remhsm__GetTokenInfoResp *r,
			    CK_SLOT_ID slot)
{
	rhd_token_t *t = rhd_engine_token(ctx->engine, slot);
	pthread_mutex_lock(&t->lock);
	uint8_t *label = rh_arena_memdup(ctx->arena, t->label, RHD_LABEL_LEN);
	r->label = (ProtobufCBinaryData){label ? RHD_LABEL_LEN : 0, label};
	r->flags = rhd_token_flags(&ctx->engine->tokens, t);
	pthread_mutex_unlock(&t->lock);
	unsigned long all, rw;
	rhd_session_count(ctx->app, slot, &all, &rw);
	r->session_count = all;
	r->rw_session_count = rw;
}

static CK_RV token_usable(call_ctx_t *ctx, CK_SLOT_ID slot)
{
	rhd_token_t *t = rhd_engine_token(ctx->engine, slot);
	pthread_mutex_lock(&t->lock);
	rhd_token_state_t state = t->state;
	pthread_mutex_unlock(&t->lock);
	return state == RHD_TOKEN_UNAVAILABLE ? CKR_TOKEN_NOT_RECOGNIZED
					      : CKR_OK;
}

static CK_RV on_get_token_info(call_ctx_t *ctx,
			       const Remhsm__GetTokenInfoReq *req)
{
	if (!slot_visible(ctx, req->slot))
		return CKR_SLOT_ID_INVALID;
	CK_RV rv = token_usable(ctx, req->slot);
	if (rv != CKR_OK)
		return rv;
	Remhsm__GetTokenInfoResp *r = result_get_token_info(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	token_info_fill(ctx, r, req->slot);
	r->manufacturer_id = text("remhsm");
	r->model = text("remhsmd");
	r->serial_number = text(ctx->engine->serial);
	r->max_session_count = ctx->engine->max_sessions;
	r->max_rw_session_count = ctx->engine->max_sessions;
	r->max_pin_len = RHD_MAX_PIN_LEN;
	r->min_pin_len = RHD_MIN_PIN_LEN;
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

static CK_RV on_get_mechanism_list(call_ctx_t *ctx,
				   const Remhsm__GetMechanismListReq *req)
{
	if (!slot_visible(ctx, req->slot))
		return CKR_SLOT_ID_INVALID;
	Remhsm__GetMechanismListResp *r = result_get_mechanism_list(ctx);
	const CK_MECHANISM_TYPE *list;
	size_t n = rhd_mechanisms(&list);
	uint64_t *out = r ? rh_arena_alloc(ctx->arena, n * sizeof(*out)) : NULL;
	if (!out)
		return CKR_HOST_MEMORY;
	for (size_t i = 0; i < n; i++)
		out[i] = list[i];
	r->mechanisms = out;
	r->n_mechanisms = n;
	return CKR_OK;
}

static CK_RV on_get_mechanism_info(call_ctx_t *ctx,
				   const Remhsm__GetMechanismInfoReq *req)
{
	if (!slot_visible(ctx, req->slot))
		return CKR_SLOT_ID_INVALID;
	CK_MECHANISM_INFO info;
	if (!rhd_mechanism_info(req->type, &info))
		return CKR_MECHANISM_INVALID;
	Remhsm__GetMechanismInfoResp *r = result_get_mechanism_info(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	r->min_key_size = info.ulMinKeySize;
	r->max_key_size = info.ulMaxKeySize;
	r->flags = info.flags;
	return CKR_OK;
}

static CK_RV on_open_session(call_ctx_t *ctx, const Remhsm__OpenSessionReq *req)
{
	if (!slot_visible(ctx, req->slot))
		return CKR_SLOT_ID_INVALID;
	if (!(ctx->app->roles & (RHD_ROLE_USER | RHD_ROLE_SO)))
		return lacks_role(ctx, RHD_ROLE_USER, "open-session",
				  CKR_ACTION_PROHIBITED);
	CK_RV rv = token_usable(ctx, req->slot);
	if (rv != CKR_OK)
		return rv;
	Remhsm__OpenSessionResp *r = result_open_session(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	uint32_t handle = 0;
	rv = rhd_session_open(ctx->engine, ctx->app, req->slot, req->flags,
			      &handle);
	r->session = handle;
	return rv;
}

static CK_RV on_close_session(call_ctx_t *ctx,
			      const Remhsm__CloseSessionReq *req)
{
	return rhd_session_close(ctx->engine, ctx->app, req->session);
}

static CK_RV on_close_all_sessions(call_ctx_t *ctx,
				   const Remhsm__CloseAllSessionsReq *req)
{
	if (!slot_visible(ctx, req->slot))
		return CKR_SLOT_ID_INVALID;
	rhd_session_close_slot(ctx->engine, ctx->app, req->slot);
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
	r->state = rhd_session_state(ctx->app, s);
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
	rhd_crypto_seed(req->seed.data, req->seed.len);
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
	return req->length ? rhd_crypto_random(r->data.data, req->length)
			   : CKR_OK;
}

/* --- login and PINs ---------------------------------------------------------
 * These run on the thread pool. They take the app's lock only around its
 * bookkeeping: the KDF in between must not hold a lock the loop needs. */

static const char *role_name(CK_USER_TYPE user)
{
	return user == CKU_SO ? "so" : user == CKU_USER ? "user" : "other";
}

static CK_RV login_allowed(call_ctx_t *ctx, const rhd_session_t *s,
			   CK_USER_TYPE user)
{
	if (user == CKU_CONTEXT_SPECIFIC)
		return CKR_OPERATION_NOT_INITIALIZED;
	if (user != CKU_SO && user != CKU_USER)
		return CKR_USER_TYPE_INVALID;
	CK_RV rv = lacks_role(ctx, user == CKU_SO ? RHD_ROLE_SO : RHD_ROLE_USER,
			      user == CKU_SO ? "so-login" : "user-login",
			      CKR_USER_TYPE_INVALID);
	if (rv != CKR_OK)
		return rv;
	CK_USER_TYPE current = ctx->app->login[s->slot].user;
	if (current == user)
		return CKR_USER_ALREADY_LOGGED_IN;
	if (current != RHD_NOBODY)
		return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
	if (user == CKU_SO) {
		unsigned long all, rw;
		rhd_session_count(ctx->app, s->slot, &all, &rw);
		if (all > rw)
			return CKR_SESSION_READ_ONLY_EXISTS;
	}
	return CKR_OK;
}

/* The session's slot, after checks under the app's lock. */
static CK_RV session_slot(call_ctx_t *ctx, uint64_t handle, int need_rw,
			  CK_SLOT_ID *slot, CK_USER_TYPE *user)
{
	rhd_session_t *s = rhd_session_find(ctx->app, handle);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	if (need_rw && !(s->flags & CKF_RW_SESSION))
		return CKR_SESSION_READ_ONLY;
	*slot = s->slot;
	*user = ctx->app->login[s->slot].user;
	return CKR_OK;
}

static CK_RV finish_login(call_ctx_t *ctx, uint64_t handle, CK_USER_TYPE user,
			  const uint8_t key[RHS_KEY_LEN])
{
	rhd_session_t *s = rhd_session_find(ctx->app, handle);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	CK_RV rv = login_allowed(ctx, s, user);
	if (rv != CKR_OK)
		return rv;
	rhd_login_t *l = &ctx->app->login[s->slot];
	l->user = user;
	memcpy(l->token_key, key, RHS_KEY_LEN);
	return CKR_OK;
}

/* The lease a user login comes with, when the daemon grants them. */
static CK_RV grant_lease(call_ctx_t *ctx, CK_SLOT_ID slot,
			 const uint8_t key[RHS_KEY_LEN])
{
	Remhsm__LoginResp *r = result_login(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	if (!ctx->engine->lease_seconds)
		return CKR_OK;
	uint8_t *lease = rh_arena_alloc(ctx->arena, RHD_LEASE_LEN);
	if (!lease ||
	    rhd_lease_issue(ctx->engine, ctx->app, slot, key, lease) != CKR_OK)
		return CKR_OK; /* the login stands; it only will not resume */
	r->lease = (ProtobufCBinaryData){RHD_LEASE_LEN, lease};
	return CKR_OK;
}

static CK_RV on_login(call_ctx_t *ctx, const Remhsm__LoginReq *req)
{
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	CK_RV rv = s ? login_allowed(ctx, s, req->user_type)
		     : CKR_SESSION_HANDLE_INVALID;
	CK_SLOT_ID slot = s ? s->slot : 0;
	/* Another connection's Hello may set it meanwhile: read it here. */
	int compat_freertos = ctx->app->compat_freertos;
	pthread_mutex_unlock(&ctx->app->lock);
	/* FreeRTOS logs in again on a logged-in session and needs CKR_OK. */
	if (rv == CKR_USER_ALREADY_LOGGED_IN && compat_freertos)
		return CKR_OK;
	if (rv != CKR_OK)
		return rv;
	uint8_t key[RHS_KEY_LEN];
	rv = rhd_token_verify_pin(
		&ctx->engine->tokens, rhd_engine_token(ctx->engine, slot),
		req->user_type, req->pin.data, req->pin.len, key);
	if (rv == CKR_OK) {
		pthread_mutex_lock(&ctx->app->lock);
		rv = finish_login(ctx, req->session, req->user_type, key);
		pthread_mutex_unlock(&ctx->app->lock);
	}
	/* Another session's login may have won while the PIN was checked:
	 * the same answer as for a login that came after it. */
	if (rv == CKR_USER_ALREADY_LOGGED_IN && compat_freertos)
		rv = CKR_OK;
	if (rv == CKR_OK && req->user_type == CKU_USER)
		rv = grant_lease(ctx, slot, key);
	OPENSSL_cleanse(key, sizeof(key));
	RHD_INFO("event=login slot=%lu role=%s identity=%s rv=0x%lx", slot,
		 role_name(req->user_type), ctx->app->identity, rv);
	rhd_audit("event=login slot=%lu role=%s identity=\"%s\" rv=0x%lx", slot,
		  role_name(req->user_type), ctx->app->identity, rv);
	return rv;
}

/* Sessions first, so that a lease has a session to log in. */
static CK_RV on_restore(call_ctx_t *ctx, const Remhsm__RestoreReq *req)
{
	/* More than an application can hold is no client's state: refused
	 * before any of it is looked at, so that the loop's work stays
	 * bounded by the limits and not by the request. */
	if (req->n_sessions > ctx->engine->max_sessions ||
	    req->n_logins > RHD_MAX_SLOTS) {
		RHD_WARN("event=restore-refused identity=%s sessions=%zu "
			 "logins=%zu reason=\"more than an application holds\"",
			 ctx->app->identity, req->n_sessions, req->n_logins);
		return CKR_ARGUMENTS_BAD;
	}
	Remhsm__RestoreResp *r = result_restore(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	r->lost_sessions = rh_arena_alloc(ctx->arena, (req->n_sessions + 1) *
							      sizeof(uint64_t));
	r->lost_logins = rh_arena_alloc(ctx->arena,
					(req->n_logins + 1) * sizeof(uint64_t));
	if (!r->lost_sessions || !r->lost_logins)
		return CKR_HOST_MEMORY;
	/* On a worker, the app's lock taken entry by entry: the app's calls
	 * on the loop wait for one entry at most. */
	for (size_t i = 0; i < req->n_sessions; i++) {
		const Remhsm__RestoreSession *s = req->sessions[i];
		pthread_mutex_lock(&ctx->app->lock);
		if (!slot_visible(ctx, s->slot) ||
		    rhd_session_restore(ctx->engine, ctx->app, s->handle,
					s->slot, s->flags) != CKR_OK)
			r->lost_sessions[r->n_lost_sessions++] = s->handle;
		pthread_mutex_unlock(&ctx->app->lock);
	}
	for (size_t i = 0; i < req->n_logins; i++) {
		const Remhsm__RestoreLogin *l = req->logins[i];
		pthread_mutex_lock(&ctx->app->lock);
		if (!slot_visible(ctx, l->slot) ||
		    !(ctx->app->roles & RHD_ROLE_USER) ||
		    rhd_lease_redeem(ctx->engine, ctx->app, l->slot,
				     l->lease.data, l->lease.len) != CKR_OK)
			r->lost_logins[r->n_lost_logins++] = l->slot;
		pthread_mutex_unlock(&ctx->app->lock);
	}
	RHD_INFO("event=restore identity=%s sessions=%zu lost-sessions=%zu "
		 "logins=%zu lost-logins=%zu",
		 ctx->app->identity, req->n_sessions, r->n_lost_sessions,
		 req->n_logins, r->n_lost_logins);
	return CKR_OK;
}

static CK_RV on_logout(call_ctx_t *ctx, const Remhsm__LogoutReq *req)
{
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	if (ctx->app->login[s->slot].user == RHD_NOBODY)
		return CKR_USER_NOT_LOGGED_IN;
	rhd_app_logout(ctx->app, s->slot);
	for (rhd_session_t *o = ctx->app->sessions; o; o = o->next)
		if (o->slot == s->slot)
			rhd_session_end_ops(o);
	return CKR_OK;
}

static CK_RV on_init_token(call_ctx_t *ctx, const Remhsm__InitTokenReq *req)
{
	if (!slot_visible(ctx, req->slot))
		return CKR_SLOT_ID_INVALID;
	/* Making a token is the admin's; re-initialising one, its SO's. */
	rhd_token_t *t = rhd_engine_token(ctx->engine, req->slot);
	pthread_mutex_lock(&t->lock);
	int blank = t->state == RHD_TOKEN_BLANK;
	pthread_mutex_unlock(&t->lock);
	CK_RV rv = lacks_role(ctx, blank ? RHD_ROLE_ADMIN : RHD_ROLE_SO,
			      blank ? "create-token" : "reinit-token",
			      CKR_ACTION_PROHIBITED);
	if (rv != CKR_OK)
		return rv;
	rv = rhd_token_init(&ctx->engine->tokens, t, req->so_pin.data,
			    req->so_pin.len, req->label.data, req->label.len);
	RHD_INFO("event=token-init slot=%llu identity=%s rv=0x%lx",
		 (unsigned long long)req->slot, ctx->app->identity, rv);
	rhd_audit("event=token-init slot=%llu identity=\"%s\" rv=0x%lx",
		  (unsigned long long)req->slot, ctx->app->identity, rv);
	return rv;
}

/* The token key of the app's login to slot, copied out under its lock. */
static CK_RV login_key(call_ctx_t *ctx, uint64_t handle, CK_USER_TYPE need,
		       CK_SLOT_ID *slot, uint8_t key[RHS_KEY_LEN])
{
	CK_USER_TYPE user = RHD_NOBODY;
	pthread_mutex_lock(&ctx->app->lock);
	CK_RV rv = session_slot(ctx, handle, 1, slot, &user);
	if (rv == CKR_OK && user != need)
		rv = CKR_USER_NOT_LOGGED_IN;
	if (rv == CKR_OK)
		memcpy(key, ctx->app->login[*slot].token_key, RHS_KEY_LEN);
	pthread_mutex_unlock(&ctx->app->lock);
	return rv;
}

static CK_RV on_init_pin(call_ctx_t *ctx, const Remhsm__InitPinReq *req)
{
	CK_SLOT_ID slot = 0;
	uint8_t key[RHS_KEY_LEN];
	CK_RV rv = login_key(ctx, req->session, CKU_SO, &slot, key);
	if (rv == CKR_OK)
		rv = rhd_token_set_pin(&ctx->engine->tokens,
				       rhd_engine_token(ctx->engine, slot),
				       CKU_USER, key, req->pin.data,
				       req->pin.len);
	OPENSSL_cleanse(key, sizeof(key));
	RHD_INFO("event=init-pin slot=%lu identity=%s rv=0x%lx", slot,
		 ctx->app->identity, rv);
	rhd_audit("event=init-pin slot=%lu identity=\"%s\" rv=0x%lx", slot,
		  ctx->app->identity, rv);
	return rv;
}

/* C_SetPIN changes the SO PIN when the SO is logged in, else the user's. */
static CK_RV on_set_pin(call_ctx_t *ctx, const Remhsm__SetPinReq *req)
{
	CK_SLOT_ID slot = 0;
	CK_USER_TYPE user = RHD_NOBODY;
	pthread_mutex_lock(&ctx->app->lock);
	CK_RV rv = session_slot(ctx, req->session, 1, &slot, &user);
	pthread_mutex_unlock(&ctx->app->lock);
	CK_USER_TYPE role = user == CKU_SO ? CKU_SO : CKU_USER;
	if (rv == CKR_OK && !rhd_pin_len_ok(req->new_pin.len))
		rv = CKR_PIN_LEN_RANGE;
	uint8_t key[RHS_KEY_LEN];
	rhd_token_t *t = rhd_engine_token(ctx->engine, slot);
	if (rv == CKR_OK)
		rv = rhd_token_verify_pin(&ctx->engine->tokens, t, role,
					  req->old_pin.data, req->old_pin.len,
					  key);
	if (rv == CKR_OK)
		rv = rhd_token_set_pin(&ctx->engine->tokens, t, role, key,
				       req->new_pin.data, req->new_pin.len);
	OPENSSL_cleanse(key, sizeof(key));
	RHD_INFO("event=set-pin slot=%lu role=%s identity=%s rv=0x%lx", slot,
		 role_name(role), ctx->app->identity, rv);
	rhd_audit("event=set-pin slot=%lu role=%s identity=\"%s\" rv=0x%lx",
		  slot, role_name(role), ctx->app->identity, rv);
	return rv;
}

/* --- objects
 * ------------------------------------------------------------------ */

#define RHD_MAX_FIND_BATCH 4096

/* The object a call names, read through the call's session: a token
 * object's record read and opened without the app's lock. */
static CK_RV load_named(call_ctx_t *ctx, uint64_t session, uint64_t object,
			rhd_object_t *obj)
{
	rhd_stored_ref_t ref = {0};
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	CK_RV rv = s ? rhd_objects_read_begin(ctx->engine, ctx->app, s, object,
					      &ref, obj)
		     : CKR_SESSION_HANDLE_INVALID;
	pthread_mutex_unlock(&ctx->app->lock);
	if (rv == CKR_OK && ref.store_id)
		rv = rhd_objects_read_stored(ctx->engine, &ref, obj);
	rhd_stored_ref_cleanup(&ref);
	return rv;
}

/* A new object: begun and adopted under the app's lock, a token object's
 * store write between them without it, so that the app's other threads go
 * on meanwhile, on the loop or on other workers. */
static CK_RV create_unlocked(call_ctx_t *ctx, uint64_t session,
			     rhd_object_t *obj, uint32_t *handle)
{
	rhd_new_object_t fresh = {0};
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	CK_RV rv = s ? rhd_objects_create_begin(ctx->engine, ctx->app, s, obj,
						handle, &fresh)
		     : CKR_SESSION_HANDLE_INVALID;
	pthread_mutex_unlock(&ctx->app->lock);
	uint64_t store_id = 0;
	if (rv == CKR_OK && fresh.rec)
		rv = rhd_objects_write_new(ctx->engine, &fresh, &store_id);
	if (rv == CKR_OK && fresh.rec) {
		pthread_mutex_lock(&ctx->app->lock);
		rv = rhd_objects_adopt_new(ctx->engine, ctx->app, &fresh,
					   store_id, handle);
		pthread_mutex_unlock(&ctx->app->lock);
	}
	rhd_new_object_cleanup(&fresh);
	return rv;
}

/* An object destroyed in the same steps: its row goes without the lock. */
static CK_RV destroy_unlocked(call_ctx_t *ctx, uint64_t session,
			      uint64_t handle)
{
	rhd_doomed_object_t doomed = {0};
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	CK_RV rv = s ? rhd_objects_destroy_begin(ctx->engine, ctx->app, s,
						 handle, &doomed)
		     : CKR_SESSION_HANDLE_INVALID;
	pthread_mutex_unlock(&ctx->app->lock);
	if (rv == CKR_OK && doomed.ref.store_id)
		rv = rhd_objects_delete_stored(ctx->engine, &doomed);
	if (rv == CKR_OK && doomed.ref.store_id) {
		pthread_mutex_lock(&ctx->app->lock);
		rv = rhd_objects_forget(ctx->app, &doomed);
		pthread_mutex_unlock(&ctx->app->lock);
	}
	rhd_doomed_object_cleanup(&doomed);
	return rv;
}

static CK_RV on_set_attribute_value(call_ctx_t *ctx,
				    const Remhsm__SetAttributeValueReq *req)
{
	rhd_object_t changes;
	CK_RV rv = rhd_object_from_wire(req->template_, req->n_template_,
					&changes);
	if (rv != CKR_OK)
		return rv;
	rhd_changed_object_t change = {0};
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	rv = s ? rhd_objects_update_begin(ctx->engine, ctx->app, s, req->object,
					  &changes, &change)
	       : CKR_SESSION_HANDLE_INVALID;
	pthread_mutex_unlock(&ctx->app->lock);
	/* A token object is read, changed and written under the token's
	 * write_lock alone. */
	if (rv == CKR_OK && change.ref.store_id)
		rv = rhd_objects_write_change(ctx->engine, &change, &changes);
	rhd_changed_object_cleanup(&change);
	rhd_object_cleanup(&changes);
	return rv;
}

static CK_RV on_copy_object(call_ctx_t *ctx, const Remhsm__CopyObjectReq *req)
{
	Remhsm__CopyObjectResp *r = result_copy_object(ctx);
	Remhsm__ObjectInfo *info = rh_arena_alloc(ctx->arena, sizeof(*info));
	if (!r || !info)
		return CKR_HOST_MEMORY;
	remhsm__object_info__init(info);
	r->object = info;
	rhd_object_t orig, changes, copy = {0};
	CK_RV rv = rhd_object_from_wire(req->template_, req->n_template_,
					&changes);
	if (rv != CKR_OK)
		return rv;
	rv = load_named(ctx, req->session, req->object, &orig);
	if (rv == CKR_OK) {
		rv = rhd_objects_copy_checked(&orig, &changes, &copy);
		rhd_object_cleanup(&orig);
	}
	rhd_object_cleanup(&changes);
	if (rv == CKR_OK) {
		rhd_object_ulong(&copy, CKA_CLASS, &info->class_);
		rhd_object_ulong(&copy, CKA_KEY_TYPE, &info->key_type);
	}
	uint32_t handle = 0;
	if (rv == CKR_OK)
		rv = create_unlocked(ctx, req->session, &copy, &handle);
	rhd_object_cleanup(&copy);
	info->handle = handle;
	return rv;
}

/* The size of the object's record: what it takes in the store. */
static CK_RV on_get_object_size(call_ctx_t *ctx,
				const Remhsm__GetObjectSizeReq *req)
{
	rhd_object_t obj;
	CK_RV rv = load_named(ctx, req->session, req->object, &obj);
	if (rv != CKR_OK)
		return rv;
	Remhsm__GetObjectSizeResp *r = result_get_object_size(ctx);
	uint8_t *packed = NULL;
	size_t len = 0;
	if (!r || rhd_object_pack(&obj, &packed, &len) < 0)
		rv = CKR_HOST_MEMORY;
	else
		r->size = len;
	free(packed);
	rhd_object_cleanup(&obj);
	return rv;
}

static CK_RV on_create_object(call_ctx_t *ctx,
			      const Remhsm__CreateObjectReq *req)
{
	Remhsm__CreateObjectResp *r = result_create_object(ctx);
	Remhsm__ObjectInfo *info = rh_arena_alloc(ctx->arena, sizeof(*info));
	if (!r || !info)
		return CKR_HOST_MEMORY;
	remhsm__object_info__init(info);
	r->object = info;
	rhd_object_t obj = {0};
	CK_RV rv = rhd_object_from_wire(req->template_, req->n_template_, &obj);
	if (rv == CKR_OK)
		rv = rhd_object_prepare_create(&obj);
	uint32_t handle = 0;
	if (rv == CKR_OK) {
		rhd_object_ulong(&obj, CKA_CLASS, &info->class_);
		rhd_object_ulong(&obj, CKA_KEY_TYPE, &info->key_type);
		rv = create_unlocked(ctx, req->session, &obj, &handle);
	}
	info->handle = handle;
	rhd_object_cleanup(&obj);
	if (rv == CKR_OK &&
	    (info->class_ == CKO_PRIVATE_KEY || info->class_ == CKO_SECRET_KEY))
		rhd_audit("event=key-imported identity=\"%s\" class=0x%llx "
			  "handle=%llu",
			  ctx->app->identity, (unsigned long long)info->class_,
			  (unsigned long long)info->handle);
	return rv;
}

static CK_RV on_destroy_object(call_ctx_t *ctx,
			       const Remhsm__DestroyObjectReq *req)
{
	CK_RV rv = destroy_unlocked(ctx, req->session, req->object);
	if (rv == CKR_OK)
		rhd_audit("event=object-destroyed identity=\"%s\" handle=%llu",
			  ctx->app->identity, (unsigned long long)req->object);
	return rv;
}

/* The value of q that travels in the answer, or NULL: asked for with a
 * buffer, present, not sensitive and (a byte string) no longer than the
 * buffer. The one rule of answer_attribute and answer_fits. */
static const rhd_attr_t *value_sent(const rhd_object_t *obj,
				    const Remhsm__AttributeQuery *q)
{
	const rhd_attr_t *a = rhd_object_find(obj, q->type);
	if (!a || !q->has_buffer || rhd_object_is_sensitive(obj, q->type))
		return NULL;
	if (a->kind == RH_ATTR_BYTES && q->buffer_len < a->len)
		return NULL;
	return a;
}

/* One attribute's answer: a status, its length on the wire's terms, and
 * the value when the caller has room for it. */
static CK_RV answer_attribute(call_ctx_t *ctx, const rhd_object_t *obj,
			      const Remhsm__AttributeQuery *q,
			      Remhsm__AttributeResult *out)
{
	remhsm__attribute_result__init(out);
	const rhd_attr_t *a = rhd_object_find(obj, q->type);
	if (rhd_object_is_sensitive(obj, q->type)) {
		out->status = REMHSM__ATTRIBUTE_RESULT__STATUS__SENSITIVE;
		return CKR_OK;
	}
	if (!a) {
		out->status = REMHSM__ATTRIBUTE_RESULT__STATUS__TYPE_INVALID;
		return CKR_OK;
	}
	/* Byte strings and mechanism lists: their wire length (a list's
	 * native length depends on the client's CK_ULONG, which the client
	 * checks itself). */
	int sized = a->kind == RH_ATTR_BYTES || a->kind == RH_ATTR_ULONG_ARRAY;
	/* A held template: how many attributes it has. */
	out->length = a->kind == RH_ATTR_TEMPLATE ? rhd_template_count(a)
		      : sized			  ? a->len
						  : 1;
	if (!q->has_buffer)
		return CKR_OK;
	if (!value_sent(obj, q)) {
		out->status =
			REMHSM__ATTRIBUTE_RESULT__STATUS__BUFFER_TOO_SMALL;
		return CKR_OK;
	}
	Remhsm__Attribute *w = rh_arena_alloc(ctx->arena, sizeof(*w));
	if (w && a->kind == RH_ATTR_TEMPLATE) {
		out->value = w;
		return rhd_template_to_wire(a, ctx->arena, w);
	}
	uint8_t *copy = rh_arena_memdup(ctx->arena, a->value, a->len);
	if (!w || (!copy && a->len))
		return CKR_HOST_MEMORY;
	rhd_attr_t view = *a;
	view.value = copy;
	rhd_attr_to_wire(&view, w);
	out->value = w;
	return CKR_OK;
}

/* What one attribute's answer may add to the frame besides its value:
 * the result's tags and lengths, status, length and type (varints of at
 * most ten bytes each). */
#define ANSWER_OVERHEAD 48u
/* The Response around the results: id, rv and the oneof's tag. */
#define ENVELOPE_OVERHEAD 64u

/* 1 when the values the caller has room for, with their framing, fit the
 * answer a client accepts: checked before anything is copied, so that a
 * small request cannot make a large answer. */
static int answer_fits(const call_ctx_t *ctx, const rhd_object_t *obj,
		       const Remhsm__GetAttributeValueReq *req)
{
	size_t budget = ctx->engine->max_answer - ENVELOPE_OVERHEAD;
	size_t total = 0;
	for (size_t i = 0; i < req->n_template_; i++) {
		const rhd_attr_t *a = value_sent(obj, req->template_[i]);
		size_t value = !a ? 0
			       : a->kind == RH_ATTR_TEMPLATE
				       ? rhd_template_wire_bound(a)
				       : a->len;
		if (value > budget - total ||
		    ANSWER_OVERHEAD > budget - total - value)
			return 0;
		total += value + ANSWER_OVERHEAD;
	}
	return 1;
}

static CK_RV on_get_attribute_value(call_ctx_t *ctx,
				    const Remhsm__GetAttributeValueReq *req)
{
	if (req->n_template_ > RH_MAX_TEMPLATE) {
		RHD_WARN("event=answer-refused identity=%s "
			 "call=C_GetAttributeValue attributes=%zu limit=%u "
			 "reason=\"too many attributes\"",
			 ctx->app->identity, req->n_template_, RH_MAX_TEMPLATE);
		return CKR_DEVICE_MEMORY;
	}
	rhd_object_t obj;
	CK_RV rv = load_named(ctx, req->session, req->object, &obj);
	if (rv != CKR_OK)
		return rv;
	if (!answer_fits(ctx, &obj, req)) {
		RHD_WARN("event=answer-refused identity=%s "
			 "call=C_GetAttributeValue limit=%zu "
			 "reason=\"answer would exceed the frame\"",
			 ctx->app->identity, ctx->engine->max_answer);
		rhd_object_cleanup(&obj);
		return CKR_DEVICE_MEMORY;
	}
	Remhsm__GetAttributeValueResp *r = result_get_attribute_value(ctx);
	size_t n = req->n_template_;
	Remhsm__AttributeResult *results =
		rh_arena_alloc(ctx->arena, n * sizeof(*results));
	Remhsm__AttributeResult **ptrs =
		rh_arena_alloc(ctx->arena, n * sizeof(*ptrs));
	if (!r || (n && (!results || !ptrs)))
		rv = CKR_HOST_MEMORY;
	for (size_t i = 0; i < n && rv == CKR_OK; i++) {
		rv = answer_attribute(ctx, &obj, req->template_[i],
				      &results[i]);
		ptrs[i] = &results[i];
	}
	if (rv == CKR_OK) {
		r->n_results = n;
		r->results = ptrs;
	}
	rhd_object_cleanup(&obj);
	return rv;
}

/* Up to max results from the session's find, for an answer. */
static CK_RV take_found(call_ctx_t *ctx, rhd_session_t *s, uint64_t max,
			Remhsm__ObjectInfo ***out, size_t *count)
{
	size_t left = s->found_count - s->found_next;
	size_t n = max < left ? (size_t)max : left;
	if (n > RHD_MAX_FIND_BATCH)
		n = RHD_MAX_FIND_BATCH;
	Remhsm__ObjectInfo *infos =
		rh_arena_alloc(ctx->arena, n * sizeof(*infos));
	Remhsm__ObjectInfo **ptrs =
		rh_arena_alloc(ctx->arena, n * sizeof(*ptrs));
	if (n && (!infos || !ptrs))
		return CKR_HOST_MEMORY;
	for (size_t i = 0; i < n; i++) {
		const rhd_found_t *f = &s->found[s->found_next++];
		remhsm__object_info__init(&infos[i]);
		infos[i].handle = f->handle;
		infos[i].class_ = f->cls;
		infos[i].key_type = f->key_type;
		ptrs[i] = &infos[i];
	}
	*out = ptrs;
	*count = n;
	return CKR_OK;
}

/* With a prefetch, the first results travel with the answer, and a find
 * they exhaust ends here. */
static CK_RV find_prefetch(call_ctx_t *ctx, rhd_session_t *s, uint64_t prefetch)
{
	Remhsm__FindObjectsInitResp *r = result_find_objects_init(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	CK_RV rv = take_found(ctx, s, prefetch, &r->objects, &r->n_objects);
	if (rv == CKR_OK && s->found_next == s->found_count) {
		r->complete = 1;
		rhd_session_end_find(s);
	}
	return rv;
}

/* The session a find starts in, without a find going on. */
static rhd_session_t *find_session(call_ctx_t *ctx, uint64_t session, CK_RV *rv)
{
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	*rv = !s	   ? CKR_SESSION_HANDLE_INVALID
	      : s->finding ? CKR_OPERATION_ACTIVE
			   : CKR_OK;
	return s;
}

/* The token's objects are read and matched without the app's lock; the
 * session is looked up again afterwards, as another thread may have closed
 * it or begun a find of its own meanwhile. */
static CK_RV on_find_objects_init(call_ctx_t *ctx,
				  const Remhsm__FindObjectsInitReq *req)
{
	rhd_object_t tmpl = {0};
	CK_RV rv =
		rhd_object_from_wire(req->template_, req->n_template_, &tmpl);
	if (rv != CKR_OK)
		return rv;
	rhd_stored_ref_t ref = {0};
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = find_session(ctx, req->session, &rv);
	if (rv == CKR_OK)
		rhd_objects_find_begin(ctx->app, s, &ref);
	pthread_mutex_unlock(&ctx->app->lock);
	rhd_matches_t stored = {0};
	if (rv == CKR_OK)
		rv = rhd_objects_find_stored(ctx->engine, &ref, &tmpl, &stored);
	CK_SLOT_ID slot = ref.slot;
	rhd_stored_ref_cleanup(&ref);
	pthread_mutex_lock(&ctx->app->lock);
	if (rv == CKR_OK)
		s = find_session(ctx, req->session, &rv);
	if (rv == CKR_OK && s->slot != slot)
		rv = CKR_SESSION_HANDLE_INVALID; /* closed, its handle reused */
	if (rv == CKR_OK)
		rv = rhd_objects_find_adopt(ctx->engine, ctx->app, s, &tmpl,
					    &stored);
	if (rv == CKR_OK && req->prefetch)
		rv = find_prefetch(ctx, s, req->prefetch);
	pthread_mutex_unlock(&ctx->app->lock);
	rhd_matches_cleanup(&stored);
	rhd_object_cleanup(&tmpl);
	return rv;
}

static CK_RV on_find_objects(call_ctx_t *ctx, const Remhsm__FindObjectsReq *req)
{
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	if (!s->finding)
		return CKR_OPERATION_NOT_INITIALIZED;
	Remhsm__FindObjectsResp *r = result_find_objects(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	return take_found(ctx, s, req->max_count, &r->objects, &r->n_objects);
}

static CK_RV on_find_objects_final(call_ctx_t *ctx,
				   const Remhsm__FindObjectsFinalReq *req)
{
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	if (!s->finding)
		return CKR_OPERATION_NOT_INITIALIZED;
	rhd_session_end_find(s);
	return CKR_OK;
}

/* --- digest, sign, verify
 * ------------------------------------------------------- */

static CK_RV op_init(call_ctx_t *ctx, uint64_t session, rhd_op_kind_t kind,
		     const Remhsm__Mechanism *mech, uint64_t key)
{
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	if (!mech)
		return CKR_ARGUMENTS_BAD;
	return rhd_op_init(ctx->engine, ctx->app, s, kind, mech, key);
}

/* The caller's arguments were bad (or it gave no length to fill): the
 * call ends the active operation and does nothing else. */
static CK_RV op_abandon(call_ctx_t *ctx, uint64_t session, rhd_op_kind_t kind)
{
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	CK_RV rv = s ? CKR_ARGUMENTS_BAD : CKR_SESSION_HANDLE_INVALID;
	if (s && s->ops[kind].active)
		rhd_op_end(&s->ops[kind]);
	pthread_mutex_unlock(&ctx->app->lock);
	return rv;
}

/* Output of a digest or signature into the response's Output. The key
 * works outside the app's lock. */
static CK_RV op_output(call_ctx_t *ctx, uint64_t session, rhd_op_kind_t kind,
		       int single, ProtobufCBinaryData data,
		       const Remhsm__OutputBuffer *buffer, Remhsm__Output **out)
{
	enum { MAX_OUT = 1024 }; /* an RSA-8192 signature */
	Remhsm__Output *o = rh_arena_alloc(ctx->arena, sizeof(*o));
	uint8_t *bytes = rh_arena_alloc(ctx->arena, MAX_OUT);
	if (!o || !bytes)
		return CKR_HOST_MEMORY;
	remhsm__output__init(o);
	int has_buffer = buffer && buffer->has_buffer;
	size_t len = has_buffer ? (buffer->buffer_len < MAX_OUT
					   ? (size_t)buffer->buffer_len
					   : MAX_OUT)
				: 0;
	rhd_op_t taken;
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	CK_RV rv = s ? rhd_op_take(s, kind, single, has_buffer, &len, &taken)
		     : CKR_SESSION_HANDLE_INVALID;
	CK_SLOT_ID slot = s ? s->slot : 0;
	/* FreeRTOS takes the end of a C_Sign length query for the end of the
	 * operation, and starts again with C_SignInit. */
	if (rv == CKR_OK && !has_buffer && kind == RHD_OP_SIGN && single &&
	    ctx->app->compat_freertos)
		rhd_op_end(&s->ops[kind]);
	pthread_mutex_unlock(&ctx->app->lock);
	o->length = len;
	*out = o;
	if (rv != CKR_OK || !taken.active)
		return rv;
	uint64_t key = taken.key_store_id; /* completing ends the op */
	rv = rhd_op_complete(&taken, kind, single, data.data, data.len, bytes,
			     len);
	if (rv == CKR_OK)
		o->data = (ProtobufCBinaryData){len, bytes};
	if (rv == CKR_OK && kind == RHD_OP_SIGN)
		rhd_audit_signature(slot, key);
	return rv;
}

static CK_RV op_update(call_ctx_t *ctx, uint64_t session, rhd_op_kind_t kind,
		       ProtobufCBinaryData data)
{
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	return rhd_op_update(s, kind, data.data, data.len);
}

static CK_RV on_digest_init(call_ctx_t *ctx, const Remhsm__DigestInitReq *req)
{
	return op_init(ctx, req->session, RHD_OP_DIGEST, req->mechanism, 0);
}

static CK_RV on_digest(call_ctx_t *ctx, const Remhsm__DigestReq *req)
{
	CK_RV rv = CKR_OK;
	if (req->init) {
		pthread_mutex_lock(&ctx->app->lock);
		rv = on_digest_init(ctx, req->init);
		pthread_mutex_unlock(&ctx->app->lock);
	}
	if (rv == CKR_OK && (req->arguments_bad || !req->output))
		return op_abandon(ctx, req->session, RHD_OP_DIGEST);
	Remhsm__DigestResp *r = result_digest(ctx);
	if (rv != CKR_OK || !r)
		return r ? rv : CKR_HOST_MEMORY;
	return op_output(ctx, req->session, RHD_OP_DIGEST, 1, req->data,
			 req->output, &r->output);
}

static CK_RV on_digest_update(call_ctx_t *ctx,
			      const Remhsm__DigestUpdateReq *req)
{
	CK_RV rv = req->init ? on_digest_init(ctx, req->init) : CKR_OK;
	return rv == CKR_OK
		       ? op_update(ctx, req->session, RHD_OP_DIGEST, req->data)
		       : rv;
}

/* What C_DigestKey may digest: a secret key whose value could be read
 * anyway (extractable and not sensitive), as SoftHSMv2 decides: a digest
 * of a sensitive key would let a caller test guesses at its value. */
static CK_RV digestible(const rhd_object_t *key, const rhd_attr_t **value)
{
	uint64_t cls = 0;
	rhd_object_ulong(key, CKA_CLASS, &cls);
	*value = rhd_object_find(key, CKA_VALUE);
	return cls == CKO_SECRET_KEY && *value &&
			       rhd_object_bool(key, CKA_EXTRACTABLE, 0) &&
			       !rhd_object_bool(key, CKA_SENSITIVE, 1)
		       ? CKR_OK
		       : CKR_KEY_INDIGESTIBLE;
}

/* The digest takes the value, or ends on why it may not. */
static CK_RV digest_value(call_ctx_t *ctx, uint64_t session, CK_RV why,
			  const rhd_attr_t *value)
{
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	CK_RV rv = !s ? CKR_SESSION_HANDLE_INVALID
		   : !s->ops[RHD_OP_DIGEST].active
			   ? CKR_OPERATION_NOT_INITIALIZED
			   : why;
	if (rv == CKR_OK)
		rv = rhd_op_update(s, RHD_OP_DIGEST, value->value, value->len);
	else if (s && s->ops[RHD_OP_DIGEST].active)
		rhd_op_end(&s->ops[RHD_OP_DIGEST]);
	pthread_mutex_unlock(&ctx->app->lock);
	return rv;
}

/* The key is read without the app's lock (a token key may come from the
 * store); its value is wiped with the object. */
static CK_RV on_digest_key(call_ctx_t *ctx, const Remhsm__DigestKeyReq *req)
{
	CK_RV rv = CKR_OK;
	if (req->init) {
		pthread_mutex_lock(&ctx->app->lock);
		rv = on_digest_init(ctx, req->init);
		pthread_mutex_unlock(&ctx->app->lock);
	}
	if (rv != CKR_OK)
		return rv;
	rhd_object_t key = {0};
	const rhd_attr_t *value = NULL;
	rv = load_named(ctx, req->session, req->key, &key);
	if (rv == CKR_OBJECT_HANDLE_INVALID)
		rv = CKR_KEY_HANDLE_INVALID;
	if (rv == CKR_OK)
		rv = digestible(&key, &value);
	rv = digest_value(ctx, req->session, rv, value);
	rhd_object_cleanup(&key);
	return rv;
}

static CK_RV on_digest_final(call_ctx_t *ctx, const Remhsm__DigestFinalReq *req)
{
	if (req->arguments_bad || !req->output)
		return op_abandon(ctx, req->session, RHD_OP_DIGEST);
	Remhsm__DigestFinalResp *r = result_digest_final(ctx);
	if (!r)
		return CKR_HOST_MEMORY;
	return op_output(ctx, req->session, RHD_OP_DIGEST, 0,
			 (ProtobufCBinaryData){0, NULL}, req->output,
			 &r->output);
}

/* Sign and verify calls are slow calls, run without the app's lock; their
 * inits (alone, or held back and sent with the call that follows) fill the
 * handle's key cache, which other connections of the same application
 * share, without the lock, then read the session and the handle under it. */
static CK_RV locked_init(call_ctx_t *ctx, uint64_t session, rhd_op_kind_t kind,
			 const Remhsm__Mechanism *mech, uint64_t key)
{
	rhd_op_prime_key(ctx->engine, ctx->app, session, key);
	pthread_mutex_lock(&ctx->app->lock);
	CK_RV rv = op_init(ctx, session, kind, mech, key);
	pthread_mutex_unlock(&ctx->app->lock);
	return rv;
}

static CK_RV on_sign_init(call_ctx_t *ctx, const Remhsm__SignInitReq *req)
{
	return locked_init(ctx, req->session, RHD_OP_SIGN, req->mechanism,
			   req->key);
}

static CK_RV on_sign(call_ctx_t *ctx, const Remhsm__SignReq *req)
{
	CK_RV rv = req->init ? on_sign_init(ctx, req->init) : CKR_OK;
	if (rv == CKR_OK && (req->arguments_bad || !req->output))
		return op_abandon(ctx, req->session, RHD_OP_SIGN);
	Remhsm__SignResp *r = result_sign(ctx);
	if (rv == CKR_OK)
		rv = r ? op_output(ctx, req->session, RHD_OP_SIGN, 1, req->data,
				   req->output, &r->output)
		       : CKR_HOST_MEMORY;
	return rv;
}

static CK_RV on_sign_update(call_ctx_t *ctx, const Remhsm__SignUpdateReq *req)
{
	CK_RV rv = req->init ? on_sign_init(ctx, req->init) : CKR_OK;
	pthread_mutex_lock(&ctx->app->lock);
	if (rv == CKR_OK)
		rv = op_update(ctx, req->session, RHD_OP_SIGN, req->data);
	pthread_mutex_unlock(&ctx->app->lock);
	return rv;
}

static CK_RV on_sign_final(call_ctx_t *ctx, const Remhsm__SignFinalReq *req)
{
	if (req->arguments_bad || !req->output)
		return op_abandon(ctx, req->session, RHD_OP_SIGN);
	Remhsm__SignFinalResp *r = result_sign_final(ctx);
	return r ? op_output(ctx, req->session, RHD_OP_SIGN, 0,
			     (ProtobufCBinaryData){0, NULL}, req->output,
			     &r->output)
		 : CKR_HOST_MEMORY;
}

static CK_RV on_verify_init(call_ctx_t *ctx, const Remhsm__VerifyInitReq *req)
{
	return locked_init(ctx, req->session, RHD_OP_VERIFY, req->mechanism,
			   req->key);
}

/* Verify: the operation is taken under the lock, the key works outside. */
static CK_RV verify_now(call_ctx_t *ctx, uint64_t session, int single,
			ProtobufCBinaryData data, ProtobufCBinaryData sig)
{
	rhd_op_t taken;
	size_t len = 0;
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	CK_RV rv = s ? rhd_op_take(s, RHD_OP_VERIFY, single, 1, &len, &taken)
		     : CKR_SESSION_HANDLE_INVALID;
	pthread_mutex_unlock(&ctx->app->lock);
	if (rv != CKR_OK)
		return rv;
	return rhd_op_complete(&taken, RHD_OP_VERIFY, single, data.data,
			       data.len, sig.data, sig.len);
}

static CK_RV on_verify(call_ctx_t *ctx, const Remhsm__VerifyReq *req)
{
	CK_RV rv = req->init ? on_verify_init(ctx, req->init) : CKR_OK;
	if (rv == CKR_OK && req->arguments_bad)
		return op_abandon(ctx, req->session, RHD_OP_VERIFY);
	return rv == CKR_OK ? verify_now(ctx, req->session, 1, req->data,
					 req->signature)
			    : rv;
}

static CK_RV on_verify_update(call_ctx_t *ctx,
			      const Remhsm__VerifyUpdateReq *req)
{
	CK_RV rv = CKR_OK;
	if (req->init)
		rv = on_verify_init(ctx, req->init);
	pthread_mutex_lock(&ctx->app->lock);
	if (rv == CKR_OK)
		rv = op_update(ctx, req->session, RHD_OP_VERIFY, req->data);
	pthread_mutex_unlock(&ctx->app->lock);
	return rv;
}

static CK_RV on_verify_final(call_ctx_t *ctx, const Remhsm__VerifyFinalReq *req)
{
	if (req->arguments_bad)
		return op_abandon(ctx, req->session, RHD_OP_VERIFY);
	return verify_now(ctx, req->session, 0, (ProtobufCBinaryData){0, NULL},
			  req->signature);
}

/* --- encryption and decryption
 * ---------------------------------------------------- */

/* One cipher call into the response's Output, under the app's lock: the
 * work is bounded by the frame, AES at memory speed. query_len (an update
 * with no data) asks only for the length. */
static CK_RV cipher_output(call_ctx_t *ctx, uint64_t session,
			   rhd_op_kind_t kind, rhd_cipher_step_t step,
			   ProtobufCBinaryData data, uint64_t query_len,
			   const Remhsm__OutputBuffer *buffer,
			   Remhsm__Output **out)
{
	Remhsm__Output *o = rh_arena_alloc(ctx->arena, sizeof(*o));
	if (!o)
		return CKR_HOST_MEMORY;
	remhsm__output__init(o);
	*out = o;
	int query = query_len && !data.len;
	int has_buffer = buffer && buffer->has_buffer && !query;
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, session);
	size_t in_len = query ? (size_t)query_len : data.len;
	size_t room = s ? rhd_op_cipher_room(s, kind, step, in_len) : 0;
	size_t len = has_buffer && buffer->buffer_len < room
			     ? (size_t)buffer->buffer_len
			     : room;
	/* A length query of the last call runs it too, on a copy. */
	uint8_t *bytes = query ? NULL : rh_arena_alloc(ctx->arena, room + 1);
	CK_RV rv = CKR_OK;
	if (!s)
		rv = CKR_SESSION_HANDLE_INVALID;
	else if (!query && !bytes)
		rv = CKR_HOST_MEMORY;
	else if (query && !s->ops[kind].active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else if (!query)
		rv = rhd_op_cipher(s, kind, step, data.data, data.len,
				   has_buffer, bytes, &len);
	pthread_mutex_unlock(&ctx->app->lock);
	o->length = len;
	if (rv == CKR_OK && has_buffer)
		o->data = (ProtobufCBinaryData){len, bytes};
	return rv;
}

/* The four calls of encryption (low encrypt, KIND ENCRYPT) or
 * decryption: bad arguments the module saw end the operation. */
#define RHD_CIPHER_CALLS(low, Camel, KIND)                                     \
	static CK_RV on_##low##_init(call_ctx_t *ctx,                          \
				     const Remhsm__##Camel##InitReq *req)      \
	{                                                                      \
		return locked_init(ctx, req->session, RHD_OP_##KIND,           \
				   req->mechanism, req->key);                  \
	}                                                                      \
                                                                               \
	static CK_RV on_##low(call_ctx_t *ctx,                                 \
			      const Remhsm__##Camel##Req *req)                 \
	{                                                                      \
		if (req->arguments_bad || !req->output)                        \
			return op_abandon(ctx, req->session, RHD_OP_##KIND);   \
		Remhsm__##Camel##Resp *r = result_##low(ctx);                  \
		return r ? cipher_output(ctx, req->session, RHD_OP_##KIND,     \
					 RHD_STEP_SINGLE, req->data, 0,        \
					 req->output, &r->output)              \
			 : CKR_HOST_MEMORY;                                    \
	}                                                                      \
                                                                               \
	static CK_RV on_##low##_update(call_ctx_t *ctx,                        \
				       const Remhsm__##Camel##UpdateReq *req)  \
	{                                                                      \
		if (req->arguments_bad || !req->output)                        \
			return op_abandon(ctx, req->session, RHD_OP_##KIND);   \
		Remhsm__##Camel##UpdateResp *r = result_##low##_update(ctx);   \
		return r ? cipher_output(ctx, req->session, RHD_OP_##KIND,     \
					 RHD_STEP_UPDATE, req->data,           \
					 req->query_len, req->output,          \
					 &r->output)                           \
			 : CKR_HOST_MEMORY;                                    \
	}                                                                      \
                                                                               \
	static CK_RV on_##low##_final(call_ctx_t *ctx,                         \
				      const Remhsm__##Camel##FinalReq *req)    \
	{                                                                      \
		if (req->arguments_bad || !req->output)                        \
			return op_abandon(ctx, req->session, RHD_OP_##KIND);   \
		Remhsm__##Camel##FinalResp *r = result_##low##_final(ctx);     \
		return r ? cipher_output(ctx, req->session, RHD_OP_##KIND,     \
					 RHD_STEP_FINAL,                       \
					 (ProtobufCBinaryData){0, NULL}, 0,    \
					 req->output, &r->output)              \
			 : CKR_HOST_MEMORY;                                    \
	}

RHD_CIPHER_CALLS(encrypt, Encrypt, ENCRYPT)
RHD_CIPHER_CALLS(decrypt, Decrypt, DECRYPT)

/* --- key generation
 * --------------------------------------------------------------- */

/* The class and key type a key-pair template may name, or add. */
static CK_RV key_of_class(rhd_object_t *obj, uint64_t cls, uint64_t key_type)
{
	uint64_t v;
	if (rhd_object_ulong(obj, CKA_CLASS, &v) && v != cls)
		return CKR_TEMPLATE_INCONSISTENT;
	if (rhd_object_ulong(obj, CKA_KEY_TYPE, &v) && v != key_type)
		return CKR_TEMPLATE_INCONSISTENT;
	/* The token makes the key material; a template may not name it. */
	static const uint64_t made[] = {CKA_VALUE,	CKA_EC_POINT,
					CKA_MODULUS,	CKA_PRIVATE_EXPONENT,
					CKA_PRIME_1,	CKA_PRIME_2,
					CKA_EXPONENT_1, CKA_EXPONENT_2,
					CKA_COEFFICIENT};
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
		if (rhd_object_find(obj, made[i]))
			return CKR_TEMPLATE_INCONSISTENT;
	CK_RV rv = rhd_object_set_ulong(obj, CKA_CLASS, cls);
	return rv == CKR_OK ? rhd_object_set_ulong(obj, CKA_KEY_TYPE, key_type)
			    : rv;
}

/* What the token records about a key it made. */
static CK_RV mark_generated(rhd_object_t *obj, CK_MECHANISM_TYPE mech,
			    int private_key)
{
	CK_RV rv = rhd_object_set_bool(obj, CKA_LOCAL, 1);
	if (rv == CKR_OK)
		rv = rhd_object_set_ulong(obj, CKA_KEY_GEN_MECHANISM, mech);
	if (rv == CKR_OK && private_key)
		rv = rhd_object_set_bool(
			obj, CKA_ALWAYS_SENSITIVE,
			rhd_object_bool(obj, CKA_SENSITIVE, 1));
	if (rv == CKR_OK && private_key)
		rv = rhd_object_set_bool(
			obj, CKA_NEVER_EXTRACTABLE,
			!rhd_object_bool(obj, CKA_EXTRACTABLE, 0));
	return rv;
}

/* A pairwise check: the new private key signs, the public key verifies
 * (RSA with PKCS#1 v1.5 over SHA-256, EC with ECDSA over the same hash,
 * Ed25519 over the same bytes as a message). */
static CK_RV pairwise_check(const rhd_object_t *pub, const rhd_object_t *priv,
			    int rsa)
{
	rhd_key_t *sk = rhd_key_new(priv), *pk = rhd_key_new(pub);
	uint8_t hash[32] = "remhsm pairwise consistency chk", sig[1024];
	rhd_padding_t pad = {rsa ? RHD_PAD_PKCS1 : RHD_PAD_NONE, CKM_SHA256, 0};
	size_t len = sk ? rhd_key_sig_len(sk) : 0;
	CK_RV rv = sk && pk && len <= sizeof(sig) ? CKR_OK : CKR_DEVICE_ERROR;
	if (rv == CKR_OK)
		rv = rhd_key_sign(sk, NULL, &pad, hash, sizeof(hash), sig, len);
	if (rv == CKR_OK)
		rv = rhd_key_verify(pk, &pad, hash, sizeof(hash), sig, len);
	rhd_key_free(sk);
	rhd_key_free(pk);
	return rv == CKR_OK ? CKR_OK : CKR_DEVICE_ERROR;
}

/* The key type a key pair mechanism makes (CKK_RSA is 0); UINT64_MAX
 * for others. */
#define NO_PAIR_TYPE UINT64_MAX
static uint64_t pair_key_type(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_RSA_PKCS_KEY_PAIR_GEN     ? CKK_RSA
	       : mech == CKM_EC_KEY_PAIR_GEN	     ? CKK_EC
	       : mech == CKM_EC_EDWARDS_KEY_PAIR_GEN ? CKK_EC_EDWARDS
						     : NO_PAIR_TYPE;
}

static const char *pair_type_name(uint64_t key_type)
{
	return key_type == CKK_RSA  ? "rsa"
	       : key_type == CKK_EC ? "ec"
				    : "ed25519";
}

static CK_RV generate_material(rhd_object_t *pub, rhd_object_t *priv,
			       uint64_t key_type)
{
	if (key_type == CKK_RSA) {
		uint64_t bits = 0;
		if (!rhd_object_ulong(pub, CKA_MODULUS_BITS, &bits))
			return CKR_TEMPLATE_INCOMPLETE;
		if (bits < rhd_rsa_min_bits() || bits > RHD_RSA_GEN_MAX_BITS)
			return CKR_KEY_SIZE_RANGE;
		return rhd_crypto_rsa_generate(
			(unsigned)bits,
			rhd_object_find(pub, CKA_PUBLIC_EXPONENT), pub, priv);
	}
	const rhd_attr_t *params = rhd_object_find(pub, CKA_EC_PARAMS);
	if (!params)
		return CKR_TEMPLATE_INCOMPLETE;
	if (key_type == CKK_EC_EDWARDS && !rhd_ed_params_valid(params))
		return CKR_CURVE_NOT_SUPPORTED;
	CK_RV rv =
		rhd_object_set(priv, CKA_EC_PARAMS, params->value, params->len);
	if (rv != CKR_OK)
		return rv;
	return key_type == CKK_EC_EDWARDS
		       ? rhd_crypto_ed_generate(pub, priv)
		       : rhd_crypto_ec_generate(params, pub, priv);
}

/* Whether the session may create an object of this template: token objects
 * need a read-write session, private ones a login (private_default when the
 * template is silent). */
static CK_RV may_create(const call_ctx_t *ctx, const rhd_session_t *s,
			const rhd_object_t *obj, int private_default)
{
	return rhd_objects_may_create(
		ctx->engine, ctx->app, s, rhd_object_bool(obj, CKA_TOKEN, 0),
		rhd_object_bool(obj, CKA_PRIVATE, private_default));
}

/* The checks a key pair's request must pass before any key is made,
 * under the app's lock: the session, the mechanism, the templates, and
 * whether the session may hold the two objects (a login for a private key,
 * a read-write session for token keys). */
static CK_RV generate_allowed(call_ctx_t *ctx,
			      const Remhsm__GenerateKeyPairReq *req,
			      rhd_object_t *pub, rhd_object_t *priv)
{
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	CK_MECHANISM_TYPE mech = req->mechanism ? req->mechanism->type : 0;
	/* None takes a parameter: one sent is ignored. */
	uint64_t key_type = pair_key_type(mech);
	if (key_type == NO_PAIR_TYPE)
		return CKR_MECHANISM_INVALID;
	CK_RV rv = rhd_object_from_wire(req->public_template,
					req->n_public_template, pub);
	if (rv == CKR_OK)
		rv = rhd_object_from_wire(req->private_template,
					  req->n_private_template, priv);
	if (rv == CKR_OK)
		rv = key_of_class(pub, CKO_PUBLIC_KEY, key_type);
	if (rv == CKR_OK)
		rv = key_of_class(priv, CKO_PRIVATE_KEY, key_type);
	if (rv == CKR_OK)
		rv = may_create(ctx, s, pub, 0);
	if (rv == CKR_OK)
		rv = may_create(ctx, s, priv, 1);
	return rv;
}

/* The keys, made outside every lock: RSA-4096 takes seconds. */
static CK_RV make_pair(rhd_object_t *pub, rhd_object_t *priv,
		       CK_MECHANISM_TYPE mech)
{
	int rsa = mech == CKM_RSA_PKCS_KEY_PAIR_GEN;
	CK_RV rv = generate_material(pub, priv, pair_key_type(mech));
	if (rv == CKR_OK)
		rv = rhd_object_prepare_create(pub);
	if (rv == CKR_OK)
		rv = rhd_object_prepare_create(priv);
	if (rv == CKR_OK)
		rv = mark_generated(pub, mech, 0);
	if (rv == CKR_OK)
		rv = mark_generated(priv, mech, 1);
	return rv == CKR_OK ? pairwise_check(pub, priv, rsa) : rv;
}

/* The new pair joins the session, which may have closed meanwhile; the
 * public key goes again when the private one cannot be made. */
static CK_RV store_pair(call_ctx_t *ctx, uint64_t session, rhd_object_t *pub,
			rhd_object_t *priv, uint32_t *pub_h, uint32_t *priv_h)
{
	CK_RV rv = create_unlocked(ctx, session, pub, pub_h);
	if (rv != CKR_OK)
		return rv;
	rv = create_unlocked(ctx, session, priv, priv_h);
	if (rv != CKR_OK && destroy_unlocked(ctx, session, *pub_h) != CKR_OK)
		RHD_WARN("event=key-pair-half identity=%s handle=%lu "
			 "reason=\"the public key of a pair whose private key "
			 "was not made could not be destroyed\"",
			 ctx->app->identity, (unsigned long)*pub_h);
	return rv;
}

static CK_RV generate(call_ctx_t *ctx, const Remhsm__GenerateKeyPairReq *req,
		      uint32_t *pub_h, uint32_t *priv_h)
{
	rhd_object_t pub = {0}, priv = {0};
	pthread_mutex_lock(&ctx->app->lock);
	CK_RV rv = generate_allowed(ctx, req, &pub, &priv);
	pthread_mutex_unlock(&ctx->app->lock);
	if (rv == CKR_OK)
		rv = make_pair(&pub, &priv, req->mechanism->type);
	if (rv == CKR_OK)
		rv = store_pair(ctx, req->session, &pub, &priv, pub_h, priv_h);
	rhd_object_cleanup(&pub);
	rhd_object_cleanup(&priv);
	return rv;
}

static Remhsm__ObjectInfo *key_info(call_ctx_t *ctx, uint32_t handle,
				    uint64_t cls, uint64_t key_type)
{
	Remhsm__ObjectInfo *info = rh_arena_alloc(ctx->arena, sizeof(*info));
	if (info) {
		remhsm__object_info__init(info);
		info->handle = handle;
		info->class_ = cls;
		info->key_type = key_type;
	}
	return info;
}

static CK_RV on_generate_key_pair(call_ctx_t *ctx,
				  const Remhsm__GenerateKeyPairReq *req)
{
	uint32_t pub = 0, priv = 0;
	uint64_t key_type =
		pair_key_type(req->mechanism ? req->mechanism->type : 0);
	CK_RV rv = generate(ctx, req, &pub, &priv);
	Remhsm__GenerateKeyPairResp *r =
		rv == CKR_OK ? result_generate_key_pair(ctx) : NULL;
	if (rv != CKR_OK)
		return rv;
	if (!r ||
	    !(r->public_key = key_info(ctx, pub, CKO_PUBLIC_KEY, key_type)) ||
	    !(r->private_key = key_info(ctx, priv, CKO_PRIVATE_KEY, key_type)))
		return CKR_HOST_MEMORY;
	RHD_INFO("event=key-generated identity=%s type=%s", ctx->app->identity,
		 pair_type_name(key_type));
	rhd_audit("event=key-generated identity=\"%s\" type=%s public=%llu "
		  "private=%llu",
		  ctx->app->identity, pair_type_name(key_type),
		  (unsigned long long)pub, (unsigned long long)priv);
	return CKR_OK;
}

/* --- secret key generation
 * ------------------------------------------------------- */

static uint64_t secret_key_type(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_AES_KEY_GEN		    ? CKK_AES
	       : mech == CKM_GENERIC_SECRET_KEY_GEN ? CKK_GENERIC_SECRET
						    : 0;
}

/* Under the app's lock: the session, the mechanism, the template, and
 * whether the session may hold the key. */
static CK_RV generate_key_allowed(call_ctx_t *ctx,
				  const Remhsm__GenerateKeyReq *req,
				  rhd_object_t *key)
{
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	/* Neither takes a parameter: one sent is ignored. */
	uint64_t key_type =
		secret_key_type(req->mechanism ? req->mechanism->type : 0);
	if (!key_type)
		return CKR_MECHANISM_INVALID;
	CK_RV rv = rhd_object_from_wire(req->template_, req->n_template_, key);
	if (rv == CKR_OK)
		rv = key_of_class(key, CKO_SECRET_KEY, key_type);
	if (rv == CKR_OK)
		rv = may_create(ctx, s, key, 1);
	return rv;
}

/* The value, of the length the template asks for, and what the token
 * records of a key it made. */
static CK_RV make_secret(rhd_object_t *key, CK_MECHANISM_TYPE mech)
{
	uint64_t len = 0;
	if (!rhd_object_ulong(key, CKA_VALUE_LEN, &len))
		return CKR_TEMPLATE_INCOMPLETE;
	CK_RV rv = len <= RHD_SECRET_MAX_LEN
			   ? rhd_crypto_secret_generate(
				     key, secret_key_type(mech), (size_t)len)
			   : CKR_ATTRIBUTE_VALUE_INVALID;
	if (rv == CKR_OK)
		rv = rhd_object_prepare_create(key);
	return rv == CKR_OK ? mark_generated(key, mech, 1) : rv;
}

static CK_RV on_generate_key(call_ctx_t *ctx, const Remhsm__GenerateKeyReq *req)
{
	rhd_object_t key = {0};
	pthread_mutex_lock(&ctx->app->lock);
	CK_RV rv = generate_key_allowed(ctx, req, &key);
	pthread_mutex_unlock(&ctx->app->lock);
	uint64_t key_type = 0;
	rhd_object_ulong(&key, CKA_KEY_TYPE, &key_type);
	if (rv == CKR_OK)
		rv = make_secret(&key, req->mechanism->type);
	uint32_t handle = 0;
	if (rv == CKR_OK)
		rv = create_unlocked(ctx, req->session, &key, &handle);
	rhd_object_cleanup(&key);
	Remhsm__GenerateKeyResp *r =
		rv == CKR_OK ? result_generate_key(ctx) : NULL;
	if (rv != CKR_OK)
		return rv;
	if (!r || !(r->key = key_info(ctx, handle, CKO_SECRET_KEY, key_type)))
		return CKR_HOST_MEMORY;
	const char *type = key_type == CKK_AES ? "aes" : "generic-secret";
	RHD_INFO("event=key-generated identity=%s type=%s", ctx->app->identity,
		 type);
	rhd_audit("event=key-generated identity=\"%s\" type=%s secret=%llu",
		  ctx->app->identity, type, (unsigned long long)handle);
	return CKR_OK;
}

/* --- key derivation
 * ---------------------------------------------------------------- */

/* The most shared data an X9.63 KDF takes here. */
#define RHD_MAX_SHARED_DATA 1024

/* The KDF's hash (0: CKD_NULL, which takes no shared data); -1 for a KDF
 * not served. */
static long kdf_hash(const Remhsm__Ecdh1DeriveParams *p)
{
	static const struct {
		uint64_t kdf;
		CK_MECHANISM_TYPE hash;
	} kdfs[] = {{CKD_SHA1_KDF, CKM_SHA_1},
		    {CKD_SHA224_KDF, CKM_SHA224},
		    {CKD_SHA256_KDF, CKM_SHA256},
		    {CKD_SHA384_KDF, CKM_SHA384},
		    {CKD_SHA512_KDF, CKM_SHA512}};
	if (p->kdf == CKD_NULL)
		return p->shared_data.len ? -1 : 0;
	for (size_t i = 0; i < sizeof(kdfs) / sizeof(kdfs[0]); i++)
		if (kdfs[i].kdf == p->kdf)
			return (long)kdfs[i].hash;
	return -1;
}

static int hkdf_hash_served(uint64_t prf)
{
	return prf == CKM_SHA_1 || prf == CKM_SHA256 || prf == CKM_SHA384 ||
	       prf == CKM_SHA512;
}

/* CKM_HKDF_DERIVE's parameters: a step to run, a served hash, a salt given
 * as data or none (a salt key is not served), salt and info bounded. */
static int hkdf_params_valid(const Remhsm__HkdfParams *p)
{
	int salt_ok =
		p->salt_type == CKF_HKDF_SALT_NULL
			? p->salt.len == 0
			: p->salt_type == CKF_HKDF_SALT_DATA && p->salt.len > 0;
	return (p->extract || p->expand) && hkdf_hash_served(p->prf) &&
	       (salt_ok || !p->extract) && p->salt.len <= RHD_MAX_SHARED_DATA &&
	       p->info.len <= RHD_MAX_SHARED_DATA;
}

/* The mechanism's parameters, by its rules. */
static CK_RV derive_params_valid(const Remhsm__Mechanism *m)
{
	if (!m || (m->type != CKM_ECDH1_DERIVE && m->type != CKM_HKDF_DERIVE))
		return CKR_MECHANISM_INVALID;
	if (m->type == CKM_HKDF_DERIVE)
		return m->parameter_case == REMHSM__MECHANISM__PARAMETER_HKDF &&
				       hkdf_params_valid(m->hkdf)
			       ? CKR_OK
			       : CKR_MECHANISM_PARAM_INVALID;
	if (m->parameter_case != REMHSM__MECHANISM__PARAMETER_ECDH ||
	    kdf_hash(m->ecdh) < 0 ||
	    m->ecdh->shared_data.len > RHD_MAX_SHARED_DATA)
		return CKR_MECHANISM_PARAM_INVALID;
	return CKR_OK;
}

/* Under the app's lock: the session, the mechanism and its parameters,
 * the template (a secret key, generic unless it says AES), whether the
 * session may hold the key, and the base key. */
static CK_RV derive_allowed(call_ctx_t *ctx, const Remhsm__DeriveKeyReq *req,
			    rhd_object_t *key, rhd_derive_base_t *base)
{
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	const Remhsm__Mechanism *m = req->mechanism;
	CK_RV rv = derive_params_valid(m);
	if (rv != CKR_OK)
		return rv;
	rv = rhd_object_from_wire(req->template_, req->n_template_, key);
	if (rv == CKR_OK)
		rv = rhd_op_derive_base(ctx->engine, ctx->app, s, req->base_key,
					m->type, base);
	/* The base key's template first: the caller's may not contradict
	 * it. */
	if (rv == CKR_OK)
		rv = rhd_template_apply(key, &base->holder,
					CKA_DERIVE_TEMPLATE);
	uint64_t type = CKK_GENERIC_SECRET;
	if (rv == CKR_OK)
		rhd_object_ulong(key, CKA_KEY_TYPE, &type);
	if (rv == CKR_OK)
		rv = key_of_class(key, CKO_SECRET_KEY, type);
	if (rv == CKR_OK)
		rv = may_create(ctx, s, key, 1);
	return rv;
}

/* The peer's point as it comes: raw (04 || x || y, of the key's size) or
 * wrapped in a DER OCTET STRING. */
static int peer_point(const rhd_derive_base_t *base,
		      const ProtobufCBinaryData *data, const uint8_t **pt,
		      size_t *len)
{
	if (data->len == rhd_key_sig_len(base->key) + 1) {
		*pt = data->data;
		*len = data->len;
		return 0;
	}
	rhd_attr_t wrapped = {CKA_EC_POINT, RH_ATTR_BYTES, data->data,
			      data->len};
	return rhd_ec_point(&wrapped, pt, len);
}

/* The new key's length: the template's CKA_VALUE_LEN, or dflt; one its
 * type does not take is CKR_ATTRIBUTE_VALUE_INVALID. */
static CK_RV derived_len(const rhd_object_t *key, uint64_t dflt, size_t *len)
{
	uint64_t n = dflt, type = 0;
	rhd_object_ulong(key, CKA_VALUE_LEN, &n);
	rhd_object_ulong(key, CKA_KEY_TYPE, &type);
	if (!rhd_secret_len_valid(type, (size_t)n))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	*len = (size_t)n;
	return CKR_OK;
}

/* ECDH: Z with the peer's point, through the KDF; Z's length without
 * CKA_VALUE_LEN. */
static CK_RV ecdh_value(const rhd_object_t *key, const rhd_derive_base_t *base,
			const Remhsm__Ecdh1DeriveParams *p, uint8_t *value,
			size_t *len)
{
	const uint8_t *pt;
	size_t pt_len;
	if (peer_point(base, &p->public_data, &pt, &pt_len) < 0)
		return CKR_MECHANISM_PARAM_INVALID;
	CK_RV rv = derived_len(key, rhd_key_sig_len(base->key) / 2, len);
	return rv == CKR_OK
		       ? rhd_crypto_ecdh_value(base->key, pt, pt_len,
					       (CK_MECHANISM_TYPE)kdf_hash(p),
					       p->shared_data.data,
					       p->shared_data.len, value, *len)
		       : rv;
}

/* HKDF over the base key's value; the hash's length without
 * CKA_VALUE_LEN (and always, extracting alone). */
static CK_RV hkdf_value(const rhd_object_t *key, const rhd_derive_base_t *base,
			const Remhsm__HkdfParams *p, uint8_t *value,
			size_t *len)
{
	CK_MECHANISM_TYPE hash = (CK_MECHANISM_TYPE)p->prf;
	CK_RV rv = derived_len(key, rhd_crypto_hash_len(hash), len);
	rhd_hkdf_t h = {p->extract,  p->expand,	   hash,       p->salt.data,
			p->salt.len, p->info.data, p->info.len};
	return rv == CKR_OK ? rhd_key_hkdf(base->key, &h, value, *len) : rv;
}

/* The value by the mechanism, and what the key inherits from its base. */
static CK_RV derive_value(rhd_object_t *key, const rhd_derive_base_t *base,
			  const Remhsm__Mechanism *m)
{
	uint8_t value[RHD_SECRET_MAX_LEN];
	size_t len = 0;
	CK_RV rv = m->type == CKM_HKDF_DERIVE
			   ? hkdf_value(key, base, m->hkdf, value, &len)
			   : ecdh_value(key, base, m->ecdh, value, &len);
	if (rv == CKR_OK)
		rv = rhd_object_set(key, CKA_VALUE, value, (size_t)len);
	OPENSSL_cleanse(value, sizeof(value));
	if (rv == CKR_OK)
		rv = rhd_object_prepare_create(key);
	if (rv == CKR_OK)
		rv = rhd_object_set_bool(
			key, CKA_ALWAYS_SENSITIVE,
			base->always_sensitive &&
				rhd_object_bool(key, CKA_SENSITIVE, 1));
	if (rv == CKR_OK)
		rv = rhd_object_set_bool(
			key, CKA_NEVER_EXTRACTABLE,
			base->never_extractable &&
				!rhd_object_bool(key, CKA_EXTRACTABLE, 0));
	return rv;
}

static CK_RV on_derive_key(call_ctx_t *ctx, const Remhsm__DeriveKeyReq *req)
{
	rhd_object_t key = {0};
	rhd_derive_base_t base = {0};
	rhd_op_prime_key(ctx->engine, ctx->app, req->session, req->base_key);
	pthread_mutex_lock(&ctx->app->lock);
	CK_RV rv = derive_allowed(ctx, req, &key, &base);
	pthread_mutex_unlock(&ctx->app->lock);
	if (rv == CKR_OK)
		rv = derive_value(&key, &base, req->mechanism);
	rhd_key_free(base.key);
	rhd_object_cleanup(&base.holder);
	uint64_t key_type = 0;
	rhd_object_ulong(&key, CKA_KEY_TYPE, &key_type);
	uint32_t handle = 0;
	if (rv == CKR_OK)
		rv = create_unlocked(ctx, req->session, &key, &handle);
	rhd_object_cleanup(&key);
	Remhsm__DeriveKeyResp *r = rv == CKR_OK ? result_derive_key(ctx) : NULL;
	if (rv != CKR_OK)
		return rv;
	if (!r || !(r->key = key_info(ctx, handle, CKO_SECRET_KEY, key_type)))
		return CKR_HOST_MEMORY;
	RHD_INFO("event=key-derived identity=%s mechanism=%s",
		 ctx->app->identity,
		 req->mechanism->type == CKM_HKDF_DERIVE ? "hkdf" : "ecdh");
	rhd_audit("event=key-derived identity=\"%s\" base=%llu secret=%llu",
		  ctx->app->identity, (unsigned long long)req->base_key,
		  (unsigned long long)handle);
	return CKR_OK;
}

/* --- key wrapping
 * ------------------------------------------------------------------ */

/* A key of the session's view, read whole; a handle it cannot see is
 * answered with invalid, the code that names the key's role. */
static CK_RV load_key(call_ctx_t *ctx, uint64_t session, uint64_t handle,
		      CK_RV invalid, rhd_object_t *obj)
{
	CK_RV rv = load_named(ctx, session, handle, obj);
	return rv == CKR_OBJECT_HANDLE_INVALID ? invalid : rv;
}

static CK_RV wrapped_bytes(call_ctx_t *ctx, const Remhsm__WrapKeyReq *req,
			   uint8_t *out, size_t *len)
{
	rhd_wrap_mech_t m;
	rhd_object_t wrapping = {0}, key = {0};
	CK_RV rv = rhd_wrap_mech(req->mechanism, &m);
	if (rv == CKR_OK)
		rv = load_key(ctx, req->session, req->wrapping_key,
			      CKR_WRAPPING_KEY_HANDLE_INVALID, &wrapping);
	if (rv == CKR_OK)
		rv = load_key(ctx, req->session, req->key,
			      CKR_KEY_HANDLE_INVALID, &key);
	if (rv == CKR_OK)
		rv = rhd_wrap(&m, &wrapping, &key, out, len);
	rhd_object_cleanup(&wrapping);
	rhd_object_cleanup(&key);
	return rv;
}

/* By the two-call convention: a length query or a short buffer learns
 * the length (the same for every wrap of the key). */
static CK_RV on_wrap_key(call_ctx_t *ctx, const Remhsm__WrapKeyReq *req)
{
	if (!req->output)
		return CKR_ARGUMENTS_BAD;
	Remhsm__WrapKeyResp *r = result_wrap_key(ctx);
	Remhsm__Output *o = rh_arena_alloc(ctx->arena, sizeof(*o));
	uint8_t *bytes = rh_arena_alloc(ctx->arena, RHD_WRAP_MAX);
	if (!r || !o || !bytes)
		return CKR_HOST_MEMORY;
	remhsm__output__init(o);
	r->output = o;
	size_t len = 0;
	CK_RV rv = wrapped_bytes(ctx, req, bytes, &len);
	if (rv != CKR_OK)
		return rv;
	o->length = len;
	if (!req->output->has_buffer)
		return CKR_OK;
	if (req->output->buffer_len < len)
		return CKR_BUFFER_TOO_SMALL;
	o->data = (ProtobufCBinaryData){len, bytes};
	rhd_audit("event=key-wrapped identity=\"%s\" mechanism=0x%llx "
		  "wrapping-key=%llu key=%llu",
		  ctx->app->identity, (unsigned long long)req->mechanism->type,
		  (unsigned long long)req->wrapping_key,
		  (unsigned long long)req->key);
	return CKR_OK;
}

/* Under the app's lock: a template that names a secret or private key
 * and its type but no key material, for a key the session may hold. */
/* The caller's template, with what the unwrapping key's
 * CKA_UNWRAP_TEMPLATE demands, checked as a new key's. */
static CK_RV unwrap_template(call_ctx_t *ctx, const Remhsm__UnwrapKeyReq *req,
			     const rhd_object_t *unwrapping, rhd_object_t *key)
{
	pthread_mutex_lock(&ctx->app->lock);
	rhd_session_t *s = rhd_session_find(ctx->app, req->session);
	CK_RV rv =
		s ? rhd_object_from_wire(req->template_, req->n_template_, key)
		  : CKR_SESSION_HANDLE_INVALID;
	if (rv == CKR_OK)
		rv = rhd_template_apply(key, unwrapping, CKA_UNWRAP_TEMPLATE);
	uint64_t cls = 0, type = 0;
	if (rv == CKR_OK && (!rhd_object_ulong(key, CKA_CLASS, &cls) ||
			     !rhd_object_ulong(key, CKA_KEY_TYPE, &type)))
		rv = CKR_TEMPLATE_INCOMPLETE;
	if (rv == CKR_OK && cls != CKO_SECRET_KEY && cls != CKO_PRIVATE_KEY)
		rv = CKR_TEMPLATE_INCONSISTENT;
	if (rv == CKR_OK)
		rv = key_of_class(key, cls, type);
	if (rv == CKR_OK)
		rv = may_create(ctx, s, key, 1);
	pthread_mutex_unlock(&ctx->app->lock);
	return rv;
}

static CK_RV unwrapped(call_ctx_t *ctx, const Remhsm__UnwrapKeyReq *req,
		       rhd_object_t *key)
{
	rhd_wrap_mech_t m;
	rhd_object_t unwrapping = {0};
	CK_RV rv = rhd_wrap_mech(req->mechanism, &m);
	if (rv == CKR_OK)
		rv = load_key(ctx, req->session, req->unwrapping_key,
			      CKR_UNWRAPPING_KEY_HANDLE_INVALID, &unwrapping);
	if (rv == CKR_OK)
		rv = unwrap_template(ctx, req, &unwrapping, key);
	if (rv == CKR_OK)
		rv = rhd_unwrap(&m, &unwrapping, req->wrapped_key.data,
				req->wrapped_key.len, key);
	rhd_object_cleanup(&unwrapping);
	return rv;
}

static CK_RV on_unwrap_key(call_ctx_t *ctx, const Remhsm__UnwrapKeyReq *req)
{
	rhd_object_t key = {0};
	CK_RV rv = unwrapped(ctx, req, &key);
	uint64_t cls = 0, type = 0;
	rhd_object_ulong(&key, CKA_CLASS, &cls);
	rhd_object_ulong(&key, CKA_KEY_TYPE, &type);
	uint32_t handle = 0;
	if (rv == CKR_OK)
		rv = create_unlocked(ctx, req->session, &key, &handle);
	rhd_object_cleanup(&key);
	if (rv != CKR_OK)
		return rv;
	Remhsm__UnwrapKeyResp *r = result_unwrap_key(ctx);
	if (!r || !(r->key = key_info(ctx, handle, cls, type)))
		return CKR_HOST_MEMORY;
	rhd_audit("event=key-unwrapped identity=\"%s\" mechanism=0x%llx "
		  "unwrapping-key=%llu key=%llu",
		  ctx->app->identity, (unsigned long long)req->mechanism->type,
		  (unsigned long long)req->unwrapping_key,
		  (unsigned long long)handle);
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
	X(GENERATE_RANDOM, generate_random)                                    \
	X(LOGIN, login)                                                        \
	X(LOGOUT, logout)                                                      \
	X(INIT_TOKEN, init_token)                                              \
	X(INIT_PIN, init_pin)                                                  \
	X(SET_PIN, set_pin)                                                    \
	X(CREATE_OBJECT, create_object)                                        \
	X(SET_ATTRIBUTE_VALUE, set_attribute_value)                            \
	X(COPY_OBJECT, copy_object)                                            \
	X(GET_OBJECT_SIZE, get_object_size)                                    \
	X(DESTROY_OBJECT, destroy_object)                                      \
	X(GET_ATTRIBUTE_VALUE, get_attribute_value)                            \
	X(FIND_OBJECTS_INIT, find_objects_init)                                \
	X(FIND_OBJECTS, find_objects)                                          \
	X(FIND_OBJECTS_FINAL, find_objects_final)                              \
	X(DIGEST_INIT, digest_init)                                            \
	X(DIGEST, digest)                                                      \
	X(DIGEST_UPDATE, digest_update)                                        \
	X(DIGEST_FINAL, digest_final)                                          \
	X(DIGEST_KEY, digest_key)                                              \
	X(SIGN_INIT, sign_init)                                                \
	X(SIGN, sign)                                                          \
	X(SIGN_UPDATE, sign_update)                                            \
	X(SIGN_FINAL, sign_final)                                              \
	X(VERIFY_INIT, verify_init)                                            \
	X(VERIFY, verify)                                                      \
	X(VERIFY_UPDATE, verify_update)                                        \
	X(VERIFY_FINAL, verify_final)                                          \
	X(GENERATE_KEY_PAIR, generate_key_pair)                                \
	X(GENERATE_KEY, generate_key)                                          \
	X(ENCRYPT_INIT, encrypt_init)                                          \
	X(ENCRYPT, encrypt)                                                    \
	X(ENCRYPT_UPDATE, encrypt_update)                                      \
	X(ENCRYPT_FINAL, encrypt_final)                                        \
	X(DECRYPT_INIT, decrypt_init)                                          \
	X(DECRYPT, decrypt)                                                    \
	X(DECRYPT_UPDATE, decrypt_update)                                      \
	X(DECRYPT_FINAL, decrypt_final)                                        \
	X(DERIVE_KEY, derive_key)                                              \
	X(WRAP_KEY, wrap_key)                                                  \
	X(UNWRAP_KEY, unwrap_key)                                              \
	X(RESTORE, restore)

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

int rhd_dispatch_is_short(const Remhsm__Request *req)
{
	size_t data_len;
	if (req->call_case == REMHSM__REQUEST__CALL_SIGN && req->sign)
		data_len = req->sign->data.len;
	else if (req->call_case == REMHSM__REQUEST__CALL_VERIFY && req->verify)
		data_len = req->verify->data.len;
	else
		return 0;
	const Remhsm__Mechanism *mech = rh_call_mechanism(req);
	return mech &&
	       (rhd_mechanism_is_ecdsa(mech->type) ||
		mech->type == CKM_EDDSA) &&
	       data_len <= RHD_SHORT_CALL_DATA;
}

/* Whether req would read the store; the caller holds app->lock. */
static int reads_store(rhd_engine_t *engine, rhd_app_t *app,
		       const Remhsm__Request *req)
{
	uint64_t object = RHD_SESSION_OBJECT_BASE;
	if (req->call_case == REMHSM__REQUEST__CALL_GET_ATTRIBUTE_VALUE &&
	    req->get_attribute_value)
		object = req->get_attribute_value->object;
	else if (req->call_case == REMHSM__REQUEST__CALL_GET_OBJECT_SIZE &&
		 req->get_object_size)
		object = req->get_object_size->object;
	if (object < RHD_SESSION_OBJECT_BASE)
		return 1;
	uint64_t key = rh_call_init_key(req);
	return key && !rhd_op_key_cached(engine, app, key);
}

static void answer(rhd_engine_t *engine, rhd_app_t *app,
		   const Remhsm__Request *req, Remhsm__Response *resp,
		   rh_arena_t *arena)
{
	call_ctx_t ctx = {
		.engine = engine, .app = app, .arena = arena, .resp = resp};
	resp->id = req->id;
	resp->rv = route(&ctx, req);
}

void rhd_dispatch(rhd_engine_t *engine, rhd_app_t *app,
		  const Remhsm__Request *req, Remhsm__Response *resp,
		  rh_arena_t *arena)
{
	/* Slow calls and store reads take the app's lock themselves, around
	 * their bookkeeping only. */
	int own = rh_call_flags((unsigned)req->call_case) & RH_CALL_OWN_LOCK;
	if (!own)
		pthread_mutex_lock(&app->lock);
	answer(engine, app, req, resp, arena);
	if (!own)
		pthread_mutex_unlock(&app->lock);
}

int rhd_dispatch_inline(rhd_engine_t *engine, rhd_app_t *app,
			const Remhsm__Request *req, Remhsm__Response *resp,
			rh_arena_t *arena)
{
	if (pthread_mutex_trylock(&app->lock) != 0)
		return -1;
	int own = rh_call_flags((unsigned)req->call_case) & RH_CALL_OWN_LOCK;
	int refused = reads_store(engine, app, req);
	/* A call that takes the lock itself has it only probed here. */
	if (own || refused)
		pthread_mutex_unlock(&app->lock);
	if (refused)
		return -1;
	answer(engine, app, req, resp, arena);
	if (!own)
		pthread_mutex_unlock(&app->lock);
	return 0;
}
