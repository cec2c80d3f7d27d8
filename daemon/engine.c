#include "engine.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "object.h"
#include "resume.h"
#include "rh_frame.h"
#include "rh_secret.h"

int rhd_engine_init(rhd_engine_t *engine, const rhd_engine_opts_t *opts)
{
	memset(engine, 0, sizeof(*engine));
	engine->slot_count = opts->slots;
	engine->lease_seconds = opts->lease_seconds;
	engine->max_sessions = opts->max_sessions ? opts->max_sessions
						  : RHD_MAX_SESSIONS_PER_APP;
	engine->max_session_objects = opts->max_session_objects
					      ? opts->max_session_objects
					      : RHD_MAX_SESSION_OBJECTS_PER_APP;
	engine->max_token_handles = opts->max_token_handles
					    ? opts->max_token_handles
					    : RHD_MAX_TOKEN_HANDLES;
	engine->max_answer =
		opts->max_answer ? opts->max_answer : RH_FRAME_DEFAULT_MAX;
	engine->max_app_bytes = opts->max_app_bytes ? opts->max_app_bytes
						    : RHD_DEFAULT_APP_BYTES;
	engine->max_identity_bytes = opts->max_identity_bytes
					     ? opts->max_identity_bytes
					     : RHD_DEFAULT_IDENTITY_BYTES;
	engine->total.limit = opts->max_total_bytes ? opts->max_total_bytes
						    : RHD_DEFAULT_TOTAL_BYTES;
	engine->resume_key = rh_secret_alloc(RHS_KEY_LEN);
	if (!engine->resume_key)
		return -1;
	if (opts->resume_key)
		memcpy(engine->resume_key, opts->resume_key, RHS_KEY_LEN);
	else if (rhd_crypto_random(engine->resume_key, RHS_KEY_LEN) != CKR_OK)
		return -1;
	rhd_resume_serial(engine->resume_key, engine->serial);
	if (rhd_tokens_load(&engine->tokens, opts->slots, opts->store,
			    &opts->policy) < 0)
		return -1;
	return pthread_mutex_init(&engine->lock, NULL) == 0 ? 0 : -1;
}

rhd_token_t *rhd_engine_token(rhd_engine_t *engine, CK_SLOT_ID slot)
{
	return &engine->tokens.slot[slot];
}

/* Keeps the token's count of open sessions (over every application). */
static void count_on_token(rhd_engine_t *engine, const rhd_session_t *s,
			   int delta)
{
	rhd_token_t *t = rhd_engine_token(engine, s->slot);
	pthread_mutex_lock(&t->lock);
	t->sessions = (unsigned)((int)t->sessions + delta);
	if (s->flags & CKF_RW_SESSION)
		t->rw_sessions = (unsigned)((int)t->rw_sessions + delta);
	pthread_mutex_unlock(&t->lock);
}

void rhd_app_logout(rhd_app_t *app, CK_SLOT_ID slot)
{
	rhd_login_t *l = &app->login[slot];
	l->user = RHD_NOBODY;
	OPENSSL_cleanse(l->token_key, sizeof(l->token_key));
	/* The private keys built for signing go with the login: OpenSSL
	 * clears their values as it frees them. */
	for (rhd_handle_t *h = app->objects; h; h = h->next) {
		if (h->slot == slot && h->private_obj)
			rhd_handle_drop_key(h);
	}
}

void rhd_op_end(rhd_op_t *op)
{
	rhd_digest_free(op->md);
	rhd_mac_free(op->mac);
	rhd_cipher_free(op->cipher);
	free(op->oaep_label);
	rhd_signer_free(op->signer);
	rhd_key_free(op->key);
	memset(op, 0, sizeof(*op));
}

void rhd_session_end_ops(rhd_session_t *s)
{
	for (int k = 0; k < RHD_OP_COUNT; k++)
		rhd_op_end(&s->ops[k]);
}

void rhd_session_end_find(rhd_session_t *s)
{
	free(s->found);
	if (s->found_cap)
		rhd_app_refund(s->app, s->found_cap * sizeof(*s->found));
	s->found = NULL;
	s->found_count = s->found_next = s->found_cap = 0;
	s->finding = 0;
}

/* --- memory budgets ------------------------------------------------------ */

static int budget_take(rhd_budget_t *b, size_t bytes)
{
	size_t used = atomic_load(&b->used);
	do {
		if (bytes > b->limit || used > b->limit - bytes)
			return 0;
	} while (!atomic_compare_exchange_weak(&b->used, &used, used + bytes));
	return 1;
}

static void budget_give(rhd_budget_t *b, size_t bytes)
{
	atomic_fetch_sub(&b->used, bytes);
}

CK_RV rhd_app_charge(rhd_app_t *app, size_t bytes, const char *what)
{
	rhd_budget_t *levels[] = {&app->budget, &app->ident->budget,
				  app->total};
	static const char *const names[] = {"application", "identity",
					    "daemon"};
	size_t taken = 0;
	while (taken < 3 && budget_take(levels[taken], bytes))
		taken++;
	if (taken == 3)
		return CKR_OK;
	RHD_WARN("event=memory-budget identity=%s budget=%s for=%s bytes=%zu "
		 "limit=%zu",
		 app->identity, names[taken], what, bytes,
		 levels[taken]->limit);
	while (taken-- > 0)
		budget_give(levels[taken], bytes);
	return CKR_DEVICE_MEMORY;
}

void rhd_app_refund(rhd_app_t *app, size_t bytes)
{
	budget_give(&app->budget, bytes);
	budget_give(&app->ident->budget, bytes);
	budget_give(app->total, bytes);
}

static int drop_matches(const rhd_handle_t *h, CK_SLOT_ID slot, uint32_t owner)
{
	return owner ? h->owner == owner : h->slot == slot;
}

void rhd_handle_free(rhd_handle_t *h)
{
	if (h->session_obj) {
		rhd_object_cleanup(h->session_obj);
		free(h->session_obj);
	}
	rhd_handle_drop_key(h);
	free(h);
}

void rhd_key_cache_clear(rhd_key_cache_t *k)
{
	rhd_key_free(k->key);
	free(k->allowed);
	free(k->derive_template);
	memset(k, 0, sizeof(*k));
}

void rhd_handle_drop_key(rhd_handle_t *h)
{
	rhd_key_cache_clear(&h->key);
}

/* --- the handle index ----------------------------------------------------- */

#define MIN_BUCKETS 64

static size_t hash_handle(uint64_t handle, size_t buckets)
{
	return (size_t)(handle * 0x9e3779b97f4a7c15ull >> 32) & (buckets - 1);
}

static size_t hash_store(CK_SLOT_ID slot, uint64_t id, size_t buckets)
{
	return hash_handle(id ^ ((uint64_t)slot << 48), buckets);
}

static void chain_in(rhd_app_t *app, rhd_handle_t *h)
{
	size_t b = hash_handle(h->handle, app->buckets);
	h->next_by_handle = app->by_handle[b];
	app->by_handle[b] = h;
	if (h->session_obj || !h->store_id)
		return;
	b = hash_store(h->slot, h->store_id, app->buckets);
	h->next_by_store = app->by_store[b];
	app->by_store[b] = h;
}

/* Doubles the buckets when they get crowded, so chains stay short. */
static int grow(rhd_app_t *app)
{
	if (app->buckets && app->handle_count < app->buckets)
		return 0;
	size_t buckets = app->buckets ? app->buckets * 2 : MIN_BUCKETS;
	rhd_handle_t **by_handle = calloc(buckets, sizeof(*by_handle));
	rhd_handle_t **by_store = calloc(buckets, sizeof(*by_store));
	if (!by_handle || !by_store) {
		free(by_handle);
		free(by_store);
		return -1;
	}
	free(app->by_handle);
	free(app->by_store);
	app->by_handle = by_handle;
	app->by_store = by_store;
	app->buckets = buckets;
	for (rhd_handle_t *h = app->objects; h; h = h->next)
		chain_in(app, h);
	return 0;
}

rhd_handle_t *rhd_app_handle_find(const rhd_app_t *app, uint64_t handle)
{
	if (!app->buckets)
		return NULL;
	rhd_handle_t *h = app->by_handle[hash_handle(handle, app->buckets)];
	while (h && h->handle != handle)
		h = h->next_by_handle;
	return h;
}

rhd_handle_t *rhd_app_handle_by_store(const rhd_app_t *app, CK_SLOT_ID slot,
				      uint64_t store_id)
{
	if (!app->buckets)
		return NULL;
	rhd_handle_t *h =
		app->by_store[hash_store(slot, store_id, app->buckets)];
	while (h && (h->slot != slot || h->store_id != store_id))
		h = h->next_by_store;
	return h;
}

/* A token object's handle that the store can give back: its value is
 * the fixed function of its store id (not the counter's fallback). */
static int resolvable(const rhd_app_t *app, const rhd_handle_t *h)
{
	return !h->session_obj && h->store_id &&
	       h->handle == ((uint32_t)h->store_id ^ app->handle_mask);
}

/* Empties the cache of token-object handles: a find over a million
 * objects must not keep a million handles. Each resolves again from the
 * store when used; no caller holds one across an add. */
static void evict_token_handles(rhd_app_t *app)
{
	for (rhd_handle_t *h = app->objects, *next; h; h = next) {
		next = h->next;
		if (resolvable(app, h)) {
			rhd_app_handle_remove(app, h);
			rhd_handle_free(h);
		}
	}
}

int rhd_app_handle_add(rhd_app_t *app, rhd_handle_t *h)
{
	int token = !h->session_obj && h->store_id;
	if (token && app->token_handles >= app->max_token_handles)
		evict_token_handles(app);
	app->handle_count++;
	if (grow(app) < 0) {
		app->handle_count--;
		return -1;
	}
	uint32_t stable = h->store_id < RHD_SESSION_OBJECT_BASE
				  ? (uint32_t)h->store_id ^ app->handle_mask
				  : 0;
	/* A token object's handle survives a daemon restart; the counter is
	 * for session objects, and for the one store id in 2^31 whose stable
	 * handle would be 0. */
	if (!h->session_obj && h->store_id && stable &&
	    !rhd_app_handle_find(app, stable))
		h->handle = stable;
	else
		do
			h->handle = RHD_SESSION_OBJECT_BASE |
				    (app->next_object++ & 0x7fffffffu);
		while (rhd_app_handle_find(app, h->handle));
	h->next = app->objects;
	app->objects = h;
	if (h->session_obj)
		app->session_objects++;
	app->token_handles += token;
	chain_in(app, h);
	return 0;
}

static void unchain(rhd_handle_t **head, rhd_handle_t *h, int by_store)
{
	while (*head && *head != h)
		head = by_store ? &(*head)->next_by_store
				: &(*head)->next_by_handle;
	if (*head)
		*head = by_store ? h->next_by_store : h->next_by_handle;
}

void rhd_app_handle_remove(rhd_app_t *app, rhd_handle_t *h)
{
	rhd_handle_t **link = &app->objects;
	while (*link != h)
		link = &(*link)->next;
	*link = h->next;
	unchain(&app->by_handle[hash_handle(h->handle, app->buckets)], h, 0);
	if (!h->session_obj && h->store_id)
		unchain(&app->by_store[hash_store(h->slot, h->store_id,
						  app->buckets)],
			h, 1);
	if (h->session_obj) {
		app->session_objects--;
		rhd_app_refund(app, h->charged);
		h->charged = 0;
	} else if (h->store_id)
		app->token_handles--;
	app->handle_count--;
}

void rhd_app_drop_objects(rhd_app_t *app, CK_SLOT_ID slot, uint32_t owner)
{
	rhd_handle_t *h = app->objects;
	while (h) {
		rhd_handle_t *next = h->next;
		if (drop_matches(h, slot, owner)) {
			rhd_app_handle_remove(app, h);
			rhd_handle_free(h);
		}
		h = next;
	}
}

static void identity_release(rhd_engine_t *engine, rhd_identity_t *id);

static void app_free(rhd_engine_t *engine, rhd_app_t *app)
{
	rhd_session_t *s = app->sessions;
	while (s) {
		rhd_session_t *next = s->next;
		count_on_token(engine, s, -1);
		rhd_session_end_find(s);
		rhd_session_end_ops(s);
		free(s);
		s = next;
	}
	free(app->session_index);
	for (unsigned slot = 0; slot < RHD_MAX_SLOTS; slot++)
		rhd_app_drop_objects(app, slot, 0);
	free(app->by_handle);
	free(app->by_store);
	for (unsigned slot = 0; slot < RHD_MAX_SLOTS; slot++)
		rhd_app_logout(app, slot);
	pthread_mutex_lock(&engine->lock);
	identity_release(engine, app->ident);
	pthread_mutex_unlock(&engine->lock);
	rh_secret_free(app->login, RHD_MAX_SLOTS * sizeof(*app->login));
	pthread_mutex_destroy(&app->lock);
	free(app);
}

void rhd_engine_cleanup(rhd_engine_t *engine)
{
	rhd_app_t *app = engine->apps;
	while (app) {
		rhd_app_t *next = app->next;
		app_free(engine, app);
		app = next;
	}
	engine->apps = NULL;
	rhd_tokens_cleanup(&engine->tokens);
	rh_secret_free(engine->resume_key, RHS_KEY_LEN);
	engine->resume_key = NULL;
	pthread_mutex_destroy(&engine->lock);
}

/* The identity's shared budget, made on its first application; the
 * caller holds engine->lock. */
static rhd_identity_t *identity_hold(rhd_engine_t *engine, const char *name)
{
	rhd_identity_t *id = engine->identities;
	while (id && strcmp(id->name, name) != 0)
		id = id->next;
	if (!id) {
		id = calloc(1, sizeof(*id));
		if (!id)
			return NULL;
		snprintf(id->name, sizeof(id->name), "%s", name);
		id->budget.limit = engine->max_identity_bytes;
		id->next = engine->identities;
		engine->identities = id;
	}
	id->refs++;
	return id;
}

static void identity_release(rhd_engine_t *engine, rhd_identity_t *id)
{
	if (--id->refs > 0)
		return;
	rhd_identity_t **link = &engine->identities;
	while (*link != id)
		link = &(*link)->next;
	*link = id->next;
	free(id);
}

static rhd_app_t *app_new(rhd_engine_t *engine, const uint8_t *app_id,
			  const char *identity)
{
	rhd_app_t *app = calloc(1, sizeof(*app));
	if (!app)
		return NULL;
	if (pthread_mutex_init(&app->lock, NULL) != 0) {
		free(app);
		return NULL;
	}
	app->ident = identity_hold(engine, identity);
	app->login = rh_secret_alloc(RHD_MAX_SLOTS * sizeof(*app->login));
	if (!app->ident || !app->login) {
		if (app->ident)
			identity_release(engine, app->ident);
		rh_secret_free(app->login, RHD_MAX_SLOTS * sizeof(*app->login));
		pthread_mutex_destroy(&app->lock);
		free(app);
		return NULL;
	}
	app->budget.limit = engine->max_app_bytes;
	app->total = &engine->total;
	memcpy(app->id, app_id, RHD_APP_ID_LEN);
	snprintf(app->identity, sizeof(app->identity), "%s", identity);
	app->next_handle = 1;
	app->next_object = 1;
	app->handle_mask = rhd_resume_handle_mask(engine->resume_key, app_id);
	app->max_token_handles = engine->max_token_handles;
	app->visible_slots = ~(uint64_t)0;
	app->roles = RHD_ROLE_ALL;
	for (unsigned slot = 0; slot < RHD_MAX_SLOTS; slot++)
		app->login[slot].user = RHD_NOBODY;
	return app;
}

rhd_app_t *rhd_engine_attach(rhd_engine_t *engine, const uint8_t *app_id,
			     size_t app_id_len, const char *identity)
{
	if (app_id_len != RHD_APP_ID_LEN)
		return NULL;
	pthread_mutex_lock(&engine->lock);
	rhd_app_t *app = engine->apps;
	while (app && memcmp(app->id, app_id, RHD_APP_ID_LEN) != 0)
		app = app->next;
	if (app && strcmp(app->identity, identity) != 0) {
		app = NULL;
		goto out;
	}
	if (!app) {
		app = app_new(engine, app_id, identity);
		if (!app)
			goto out;
		app->next = engine->apps;
		engine->apps = app;
	}
	app->refs++;
out:
	pthread_mutex_unlock(&engine->lock);
	return app;
}

void rhd_engine_detach(rhd_engine_t *engine, rhd_app_t *app)
{
	pthread_mutex_lock(&engine->lock);
	if (--app->refs > 0) {
		pthread_mutex_unlock(&engine->lock);
		return;
	}
	rhd_app_t **link = &engine->apps;
	while (*link != app)
		link = &(*link)->next;
	*link = app->next;
	pthread_mutex_unlock(&engine->lock);
	app_free(engine, app);
}

int rhd_engine_logout_slot(rhd_engine_t *engine, CK_SLOT_ID slot)
{
	/* Held apps stay while their locks are taken one by one; an app's
	 * lock may be held across store I/O, which must not stall every
	 * attach behind the engine's lock. */
	pthread_mutex_lock(&engine->lock);
	size_t n = 0;
	for (rhd_app_t *app = engine->apps; app; app = app->next)
		n++;
	rhd_app_t **held = calloc(n ? n : 1, sizeof(*held));
	n = 0;
	for (rhd_app_t *app = engine->apps; held && app; app = app->next) {
		app->refs++;
		held[n++] = app;
	}
	pthread_mutex_unlock(&engine->lock);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&held[i]->lock);
		rhd_app_logout(held[i], slot);
		pthread_mutex_unlock(&held[i]->lock);
		rhd_engine_detach(engine, held[i]);
	}
	int rc = held ? 0 : -1;
	free(held);
	return rc;
}

int rhd_engine_slot_valid(const rhd_engine_t *engine, uint64_t slot)
{
	return slot < engine->slot_count;
}

unsigned rhd_app_session_count(rhd_app_t *app)
{
	return app->session_count;
}

/* --- the session index ---------------------------------------------------- */

#define MIN_SESSION_BUCKETS 16

static rhd_session_t **session_chain(const rhd_app_t *app, uint64_t handle)
{
	return &app->session_index[hash_handle(handle, app->session_buckets)];
}

static void session_chain_in(rhd_app_t *app, rhd_session_t *s)
{
	rhd_session_t **chain = session_chain(app, s->handle);
	s->next_by_handle = *chain;
	*chain = s;
}

/* Doubles the index before it holds more sessions than it has buckets,
 * so chains stay short. */
static int sessions_grow(rhd_app_t *app)
{
	if (app->session_buckets > app->session_count)
		return 0;
	size_t buckets = app->session_buckets ? app->session_buckets * 2
					      : MIN_SESSION_BUCKETS;
	rhd_session_t **index = calloc(buckets, sizeof(*index));
	if (!index)
		return -1;
	free(app->session_index);
	app->session_index = index;
	app->session_buckets = buckets;
	for (rhd_session_t *s = app->sessions; s; s = s->next)
		session_chain_in(app, s);
	return 0;
}

static void count_on_slot(rhd_app_t *app, const rhd_session_t *s, int delta)
{
	app->slot_sessions[s->slot] =
		(unsigned)((int)app->slot_sessions[s->slot] + delta);
	if (s->flags & CKF_RW_SESSION)
		app->slot_rw_sessions[s->slot] =
			(unsigned)((int)app->slot_rw_sessions[s->slot] + delta);
}

/* Into the app's list, its index and its counts (room made by
 * sessions_grow). */
static void session_link(rhd_app_t *app, rhd_session_t *s)
{
	s->prev = NULL;
	s->next = app->sessions;
	if (app->sessions)
		app->sessions->prev = s;
	app->sessions = s;
	session_chain_in(app, s);
	app->session_count++;
	count_on_slot(app, s, +1);
}

static void session_unlink(rhd_app_t *app, rhd_session_t *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		app->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	rhd_session_t **link = session_chain(app, s->handle);
	while (*link != s)
		link = &(*link)->next_by_handle;
	*link = s->next_by_handle;
	app->session_count--;
	count_on_slot(app, s, -1);
}

static uint32_t next_free_handle(rhd_app_t *app)
{
	for (;;) {
		uint32_t candidate = app->next_handle++;
		if (candidate != 0 && !rhd_session_find(app, candidate))
			return candidate;
	}
}

/* A new session with the given handle (0: the next free one). */
static CK_RV session_new(rhd_engine_t *engine, rhd_app_t *app, CK_SLOT_ID slot,
			 CK_FLAGS flags, uint32_t want, uint32_t *handle)
{
	if (!(flags & CKF_SERIAL_SESSION))
		return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
	if (!(flags & CKF_RW_SESSION) && app->login[slot].user == CKU_SO)
		return CKR_SESSION_READ_WRITE_SO_EXISTS;
	if (app->session_count >= engine->max_sessions)
		return CKR_SESSION_COUNT;
	rhd_session_t *s = calloc(1, sizeof(*s));
	if (!s || sessions_grow(app) < 0) {
		free(s);
		return CKR_DEVICE_MEMORY;
	}
	s->handle = want ? want : next_free_handle(app);
	s->slot = slot;
	s->app = app;
	s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
	session_link(app, s);
	count_on_token(engine, s, +1);
	*handle = s->handle;
	return CKR_OK;
}

CK_RV rhd_session_open(rhd_engine_t *engine, rhd_app_t *app, CK_SLOT_ID slot,
		       CK_FLAGS flags, uint32_t *handle)
{
	return session_new(engine, app, slot, flags, 0, handle);
}

CK_RV rhd_session_restore(rhd_engine_t *engine, rhd_app_t *app, uint64_t handle,
			  CK_SLOT_ID slot, CK_FLAGS flags)
{
	if (handle == 0 || handle > UINT32_MAX ||
	    !rhd_engine_slot_valid(engine, slot))
		return CKR_ARGUMENTS_BAD;
	flags &= CKF_SERIAL_SESSION | CKF_RW_SESSION;
	rhd_session_t *s = rhd_session_find(app, handle);
	if (s)
		return s->slot == slot && s->flags == flags
			       ? CKR_OK
			       : CKR_SESSION_HANDLE_INVALID;
	uint32_t got;
	return session_new(engine, app, slot, flags, (uint32_t)handle, &got);
}

rhd_session_t *rhd_session_find(rhd_app_t *app, uint64_t handle)
{
	if (!app->session_buckets)
		return NULL;
	rhd_session_t *s = *session_chain(app, handle);
	while (s && s->handle != handle)
		s = s->next_by_handle;
	return s;
}

/* Ends s with its session objects and find; the app's last session on a
 * token ends its login there and lets go of its handles. */
static void drop_session(rhd_engine_t *engine, rhd_app_t *app, rhd_session_t *s)
{
	session_unlink(app, s);
	count_on_token(engine, s, -1);
	rhd_app_drop_objects(app, s->slot, s->handle);
	if (!app->slot_sessions[s->slot]) {
		rhd_app_logout(app, s->slot);
		rhd_app_drop_objects(app, s->slot, 0);
	}
	rhd_session_end_find(s);
	rhd_session_end_ops(s);
	free(s);
}

CK_RV rhd_session_close(rhd_engine_t *engine, rhd_app_t *app, uint64_t handle)
{
	rhd_session_t *s = rhd_session_find(app, handle);
	if (!s)
		return CKR_SESSION_HANDLE_INVALID;
	drop_session(engine, app, s);
	return CKR_OK;
}

void rhd_session_close_slot(rhd_engine_t *engine, rhd_app_t *app,
			    CK_SLOT_ID slot)
{
	for (rhd_session_t *s = app->sessions, *next; s; s = next) {
		next = s->next;
		if (s->slot == slot)
			drop_session(engine, app, s);
	}
}

void rhd_session_count(const rhd_app_t *app, CK_SLOT_ID slot,
		       unsigned long *all, unsigned long *rw)
{
	*all = app->slot_sessions[slot];
	*rw = app->slot_rw_sessions[slot];
}

CK_STATE rhd_session_state(const rhd_app_t *app, const rhd_session_t *s)
{
	int rw = (s->flags & CKF_RW_SESSION) != 0;
	switch (app->login[s->slot].user) {
	case CKU_SO:
		return CKS_RW_SO_FUNCTIONS;
	case CKU_USER:
		return rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
	default:
		return rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
	}
}
