#include "objects.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* A stored record: one byte saying whether it is private, then the
 * attribute list, sealed again under the token key when private. */
enum { RECORD_PUBLIC = 0, RECORD_PRIVATE = 1 };

static const uint8_t private_aad[] = "remhsm private object";

static int user_logged_in(const rhd_app_t *app, CK_SLOT_ID slot)
{
	return app->login[slot].user == CKU_USER;
}

static int so_logged_in(const rhd_app_t *app, CK_SLOT_ID slot)
{
	return app->login[slot].user == CKU_SO;
}

/* CKA_TRUSTED vouches for a key to wrap others with: only the SO says so
 * (and takes it back), so a user cannot make a key of its own trusted. */
static CK_RV trust_allowed(const rhd_object_t *obj, const rhd_object_t *changes,
			   int by_so)
{
	const rhd_attr_t *want = rhd_object_find(changes, CKA_TRUSTED);
	if (!want || by_so)
		return CKR_OK;
	int on = want->len == 1 && want->value[0];
	return on == rhd_object_bool(obj, CKA_TRUSTED, 0)
		       ? CKR_OK
		       : CKR_ATTRIBUTE_READ_ONLY;
}

/* A new handle: a token object's (store_id set) is the same in every daemon
 * run; a session object's (store_id 0) gets its session object after. */
static rhd_handle_t *handle_new(rhd_app_t *app, CK_SLOT_ID slot,
				int private_obj, uint64_t store_id)
{
	rhd_handle_t *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->slot = slot;
	h->private_obj = private_obj;
	h->store_id = store_id;
	if (rhd_app_handle_add(app, h) < 0) {
		free(h);
		return NULL;
	}
	return h;
}

/* Cached keys of every application learn of it through the object's
 * version; this handle's own cache goes at once. */
static void token_changed(rhd_engine_t *engine, rhd_handle_t *h)
{
	rhd_token_object_changed(rhd_engine_token(engine, h->slot),
				 h->store_id);
	rhd_handle_drop_key(h);
}

static void handle_unlink(rhd_app_t *app, rhd_handle_t *h)
{
	rhd_app_handle_remove(app, h);
	rhd_handle_free(h);
}
/* Copies every attribute of changes into obj, replacing its own. */
static CK_RV apply(rhd_object_t *obj, const rhd_object_t *changes)
{
	CK_RV rv = CKR_OK;
	for (size_t i = 0; i < changes->count && rv == CKR_OK; i++)
		rv = rhd_object_set(obj, changes->attrs[i].type,
				    changes->attrs[i].value,
				    changes->attrs[i].len);
	return rv;
}

/* --- records ----------------------------------------------------------------
 */

/* The token key a private record opens under: the user's login's, or
 * NULL when the user is not logged in. */
static const uint8_t *key_of(const rhd_app_t *app, CK_SLOT_ID slot)
{
	return user_logged_in(app, slot) ? app->login[slot].token_key : NULL;
}

static CK_RV record_make(const uint8_t *token_key, const rhd_object_t *obj,
			 int private_obj, uint8_t **out, size_t *out_len)
{
	uint8_t *plain;
	size_t len;
	if (rhd_object_pack(obj, &plain, &len) < 0)
		return CKR_DEVICE_MEMORY;
	size_t total = 1 + len + (private_obj ? RHS_SEAL_OVERHEAD : 0);
	uint8_t *rec = malloc(total);
	CK_RV rv = rec ? CKR_OK : CKR_DEVICE_MEMORY;
	if (rv == CKR_OK && private_obj && !token_key)
		rv = CKR_USER_NOT_LOGGED_IN;
	if (rv == CKR_OK) {
		rec[0] = private_obj ? RECORD_PRIVATE : RECORD_PUBLIC;
		if (!private_obj)
			memcpy(rec + 1, plain, len);
		else if (rhs_seal(token_key, private_aad, sizeof(private_aad),
				  plain, len, rec + 1) < 0)
			rv = CKR_DEVICE_ERROR;
	}
	OPENSSL_cleanse(plain, len);
	free(plain);
	if (rv != CKR_OK) {
		free(rec);
		return rv;
	}
	*out = rec;
	*out_len = total;
	return CKR_OK;
}

/* Opens a record; a private one only with the user's token key. */
static CK_RV record_open(const uint8_t *token_key, const uint8_t *rec,
			 size_t len, rhd_object_t *out)
{
	if (len < 1)
		return CKR_DEVICE_ERROR;
	if (rec[0] == RECORD_PUBLIC)
		return rhd_object_unpack(rec + 1, len - 1, out) == 0
			       ? CKR_OK
			       : CKR_DEVICE_ERROR;
	if (!token_key)
		return CKR_OBJECT_HANDLE_INVALID;
	if (len < 1 + RHS_SEAL_OVERHEAD)
		return CKR_DEVICE_ERROR;
	size_t plain_len = len - 1 - RHS_SEAL_OVERHEAD;
	uint8_t *plain = malloc(plain_len ? plain_len : 1);
	if (!plain)
		return CKR_DEVICE_MEMORY;
	CK_RV rv = CKR_DEVICE_ERROR;
	if (rhs_unseal(token_key, private_aad, sizeof(private_aad), rec + 1,
		       len - 1, plain) == RHS_OK &&
	    rhd_object_unpack(plain, plain_len, out) == 0)
		rv = CKR_OK;
	OPENSSL_cleanse(plain, plain_len);
	free(plain);
	return rv;
}

static rhs_index_t index_of(const rhd_object_t *obj)
{
	static const uint64_t types[RHS_IX_COUNT] = {CKA_CLASS, CKA_ID,
						     CKA_LABEL, CKA_KEY_TYPE};
	rhs_index_t ix = {{NULL}, {0}};
	for (int k = 0; k < RHS_IX_COUNT; k++) {
		const rhd_attr_t *a =
			obj ? rhd_object_find(obj, types[k]) : NULL;
		if (a) {
			ix.value[k] = a->value;
			ix.len[k] = a->len;
		}
	}
	return ix;
}

static CK_RV load_stored(rhd_engine_t *engine, const uint8_t *token_key,
			 CK_SLOT_ID slot, uint64_t id, rhd_object_t *out)
{
	uint8_t *rec;
	size_t len;
	int rc = rhs_object_get(engine->tokens.store, (uint32_t)slot, id, &rec,
				&len);
	if (rc == RHS_ENOTFOUND)
		return CKR_OBJECT_HANDLE_INVALID;
	if (rc < 0) {
		const char *said = rhs_last_error();
		RHD_ERROR("event=object-unavailable slot=%lu "
			  "row=objects/%lu/%llu reason=\"%s%s%s\"",
			  slot, slot, (unsigned long long)id, rhs_strerror(rc),
			  said[0] ? ": " : "", said);
		return CKR_DEVICE_ERROR;
	}
	CK_RV rv = record_open(token_key, rec, len, out);
	rhs_free(rec, len);
	if (rv == CKR_DEVICE_ERROR)
		RHD_ERROR("event=object-unavailable slot=%lu "
			  "row=objects/%lu/%llu reason=\"its record does not "
			  "open under the token key or does not decode\"",
			  slot, slot, (unsigned long long)id);
	return rv;
}

/* --- the calls
 * ---------------------------------------------------------------- */

/* What an object held in memory costs: its values and their bookkeeping. */
static size_t object_bytes(const rhd_object_t *obj)
{
	size_t n = sizeof(rhd_handle_t) + sizeof(rhd_object_t);
	for (size_t i = 0; i < obj->count; i++)
		n += sizeof(rhd_attr_t) + obj->attrs[i].len;
	return n;
}

CK_RV rhd_objects_may_create(const rhd_engine_t *engine, const rhd_app_t *app,
			     const rhd_session_t *s, int token_obj,
			     int private_obj)
{
	if (token_obj && !(s->flags & CKF_RW_SESSION))
		return CKR_SESSION_READ_ONLY;
	if (private_obj && !user_logged_in(app, s->slot))
		return CKR_USER_NOT_LOGGED_IN;
	if (!token_obj && app->session_objects >= engine->max_session_objects) {
		RHD_WARN("event=session-objects-full identity=%s limit=%u",
			 app->identity, engine->max_session_objects);
		return CKR_DEVICE_MEMORY;
	}
	return CKR_OK;
}

/* The token's re-initialisation count: a write prepared at one count is
 * not made at another. */
static uint64_t token_generation(rhd_engine_t *engine, CK_SLOT_ID slot)
{
	rhd_token_t *t = rhd_engine_token(engine, slot);
	pthread_mutex_lock(&t->lock);
	uint64_t generation = t->generation;
	pthread_mutex_unlock(&t->lock);
	return generation;
}

/* A session object: held in memory, nothing written. */
static CK_RV create_session_object(rhd_app_t *app, rhd_session_t *session,
				   rhd_object_t *obj, int private_obj,
				   uint32_t *handle)
{
	size_t bytes = object_bytes(obj);
	CK_RV rv = rhd_app_charge(app, bytes, "session-object");
	if (rv != CKR_OK)
		return rv;
	rhd_handle_t *h = handle_new(app, session->slot, private_obj, 0);
	if (h)
		h->session_obj = malloc(sizeof(*h->session_obj));
	if (!h || !h->session_obj) {
		if (h)
			handle_unlink(app, h);
		rhd_app_refund(app, bytes);
		return CKR_DEVICE_MEMORY;
	}
	h->charged = bytes;
	app->session_objects++;
	*h->session_obj = *obj;
	memset(obj, 0, sizeof(*obj));
	h->owner = session->handle;
	*handle = h->handle;
	return CKR_OK;
}

CK_RV rhd_objects_create_begin(rhd_engine_t *engine, rhd_app_t *app,
			       rhd_session_t *session, rhd_object_t *obj,
			       uint32_t *handle, rhd_new_object_t *fresh)
{
	memset(fresh, 0, sizeof(*fresh));
	*handle = 0;
	int token_obj = rhd_object_bool(obj, CKA_TOKEN, 0);
	int private_obj = rhd_object_bool(obj, CKA_PRIVATE, 0);
	static const rhd_object_t untrusted = {0};
	CK_RV rv = trust_allowed(&untrusted, obj,
				 so_logged_in(app, session->slot));
	if (rv == CKR_OK)
		rv = rhd_objects_may_create(engine, app, session, token_obj,
					    private_obj);
	if (rv != CKR_OK)
		return rv;
	if (!token_obj)
		return create_session_object(app, session, obj, private_obj,
					     handle);
	fresh->generation = token_generation(engine, session->slot);
	fresh->slot = session->slot;
	fresh->private_obj = private_obj;
	fresh->ix = index_of(obj);
	return record_make(key_of(app, session->slot), obj, private_obj,
			   &fresh->rec, &fresh->len);
}

CK_RV rhd_objects_write_new(rhd_engine_t *engine, const rhd_new_object_t *fresh,
			    uint64_t *store_id)
{
	rhd_token_t *t = rhd_engine_token(engine, fresh->slot);
	pthread_mutex_lock(&t->write_lock);
	int reinitialised =
		token_generation(engine, fresh->slot) != fresh->generation;
	int rc = reinitialised
			 ? RHS_OK
			 : rhs_object_create(engine->tokens.store,
					     (uint32_t)fresh->slot, &fresh->ix,
					     fresh->rec, fresh->len, store_id);
	pthread_mutex_unlock(&t->write_lock);
	if (reinitialised)
		return CKR_SESSION_CLOSED;
	return rc == RHS_OK
		       ? CKR_OK
		       : rhd_store_failed("object-create", fresh->slot, rc);
}

CK_RV rhd_objects_adopt_new(rhd_engine_t *engine, rhd_app_t *app,
			    const rhd_new_object_t *fresh, uint64_t store_id,
			    uint32_t *handle)
{
	rhd_handle_t *h =
		handle_new(app, fresh->slot, fresh->private_obj, store_id);
	if (!h) {
		/* No handle to name it by: the object must not stay. */
		if (rhs_object_delete(engine->tokens.store,
				      (uint32_t)fresh->slot,
				      store_id) != RHS_OK)
			RHD_WARN("event=object-orphaned slot=%lu store-id=%llu",
				 fresh->slot, (unsigned long long)store_id);
		return CKR_DEVICE_MEMORY;
	}
	*handle = h->handle;
	return CKR_OK;
}

void rhd_new_object_cleanup(rhd_new_object_t *fresh)
{
	rhs_free(fresh->rec, fresh->len);
	memset(fresh, 0, sizeof(*fresh));
}

/* A token-object handle the app has not used since the daemon started (a
 * restarted daemon knows none): its store id follows from it, and the
 * object is taken if it exists and the app may see it now. */
static rhd_handle_t *resolve_stored(rhd_engine_t *engine, rhd_app_t *app,
				    const rhd_session_t *s, uint64_t handle)
{
	if (handle == 0 || handle >= RHD_SESSION_OBJECT_BASE)
		return NULL;
	uint64_t store_id = handle ^ app->handle_mask;
	if (store_id == 0 || rhd_app_handle_by_store(app, s->slot, store_id))
		return NULL;
	rhd_object_t obj;
	if (load_stored(engine, key_of(app, s->slot), s->slot, store_id,
			&obj) != CKR_OK)
		return NULL;
	int private_obj = rhd_object_bool(&obj, CKA_PRIVATE, 0);
	rhd_object_cleanup(&obj);
	rhd_handle_t *h = handle_new(app, s->slot, private_obj, store_id);
	return h && h->handle == handle ? h : NULL;
}

static rhd_handle_t *visible(rhd_engine_t *engine, rhd_app_t *app,
			     const rhd_session_t *s, uint64_t handle)
{
	rhd_handle_t *h = rhd_app_handle_find(app, handle);
	if (!h)
		h = resolve_stored(engine, app, s, handle);
	if (!h || h->slot != s->slot)
		return NULL;
	if (h->private_obj && !user_logged_in(app, h->slot))
		return NULL;
	return h;
}

rhd_handle_t *rhd_objects_visible(rhd_engine_t *engine, rhd_app_t *app,
				  const rhd_session_t *session, uint64_t handle)
{
	return visible(engine, app, session, handle);
}

static void ref_for(const rhd_app_t *app, CK_SLOT_ID slot, uint64_t store_id,
		    rhd_stored_ref_t *ref)
{
	ref->slot = slot;
	ref->store_id = store_id;
	ref->logged_in = user_logged_in(app, slot);
	if (ref->logged_in)
		memcpy(ref->token_key, app->login[slot].token_key, RHS_KEY_LEN);
}

static void ref_of(const rhd_app_t *app, const rhd_handle_t *h,
		   rhd_stored_ref_t *ref)
{
	ref_for(app, h->slot, h->store_id, ref);
}

static const uint8_t *ref_key(const rhd_stored_ref_t *ref)
{
	return ref->logged_in ? ref->token_key : NULL;
}

void rhd_stored_ref_cleanup(rhd_stored_ref_t *ref)
{
	OPENSSL_cleanse(ref, sizeof(*ref));
}

CK_RV rhd_objects_read_begin(rhd_engine_t *engine, rhd_app_t *app,
			     const rhd_session_t *session, uint64_t handle,
			     rhd_stored_ref_t *ref, rhd_object_t *out)
{
	memset(ref, 0, sizeof(*ref));
	memset(out, 0, sizeof(*out));
	rhd_handle_t *h = visible(engine, app, session, handle);
	if (!h)
		return CKR_OBJECT_HANDLE_INVALID;
	if (!h->session_obj) {
		ref_of(app, h, ref);
		return CKR_OK;
	}
	CK_RV rv = apply(out, h->session_obj);
	if (rv != CKR_OK)
		rhd_object_cleanup(out);
	return rv;
}

CK_RV rhd_objects_read_stored(rhd_engine_t *engine, const rhd_stored_ref_t *ref,
			      rhd_object_t *out)
{
	return load_stored(engine, ref_key(ref), ref->slot, ref->store_id, out);
}

CK_RV rhd_objects_load(rhd_engine_t *engine, rhd_app_t *app,
		       const rhd_session_t *session, uint64_t handle,
		       rhd_object_t *out)
{
	rhd_stored_ref_t ref;
	CK_RV rv =
		rhd_objects_read_begin(engine, app, session, handle, &ref, out);
	if (rv == CKR_OK && ref.store_id)
		rv = rhd_objects_read_stored(engine, &ref, out);
	rhd_stored_ref_cleanup(&ref);
	return rv;
}

CK_RV rhd_objects_destroy_begin(rhd_engine_t *engine, rhd_app_t *app,
				const rhd_session_t *session, uint64_t handle,
				rhd_doomed_object_t *doomed)
{
	memset(doomed, 0, sizeof(*doomed));
	rhd_handle_t *h = visible(engine, app, session, handle);
	if (!h)
		return CKR_OBJECT_HANDLE_INVALID;
	if (h->session_obj) {
		if (!rhd_object_bool(h->session_obj, CKA_DESTROYABLE, 1))
			return CKR_ACTION_PROHIBITED;
		token_changed(engine, h);
		handle_unlink(app, h);
		return CKR_OK;
	}
	if (!(session->flags & CKF_RW_SESSION))
		return CKR_SESSION_READ_ONLY;
	ref_of(app, h, &doomed->ref);
	doomed->handle = h->handle;
	doomed->generation = token_generation(engine, h->slot);
	return CKR_OK;
}

/* The row read and taken out, if it may go; the caller holds the token's
 * write_lock. */
static CK_RV delete_row(rhd_engine_t *engine, const rhd_stored_ref_t *ref)
{
	rhd_object_t obj;
	CK_RV rv = rhd_objects_read_stored(engine, ref, &obj);
	if (rv != CKR_OK)
		return rv; /* another thread's destroy came first */
	int destroyable = rhd_object_bool(&obj, CKA_DESTROYABLE, 1);
	rhd_object_cleanup(&obj);
	if (!destroyable)
		return CKR_ACTION_PROHIBITED;
	int rc = rhs_object_delete(engine->tokens.store, (uint32_t)ref->slot,
				   ref->store_id);
	if (rc == RHS_ENOTFOUND)
		return CKR_OBJECT_HANDLE_INVALID;
	return rc == RHS_OK ? CKR_OK
			    : rhd_store_failed("object-delete", ref->slot, rc);
}

CK_RV rhd_objects_delete_stored(rhd_engine_t *engine,
				const rhd_doomed_object_t *doomed)
{
	const rhd_stored_ref_t *ref = &doomed->ref;
	rhd_token_t *t = rhd_engine_token(engine, ref->slot);
	pthread_mutex_lock(&t->write_lock);
	CK_RV rv = token_generation(engine, ref->slot) != doomed->generation
			   ? CKR_SESSION_CLOSED
			   : delete_row(engine, ref);
	/* Keys cached by any application go stale now, not once this one
	 * has its lock again. */
	if (rv == CKR_OK)
		rhd_token_object_changed(t, ref->store_id);
	pthread_mutex_unlock(&t->write_lock);
	return rv;
}

void rhd_doomed_object_cleanup(rhd_doomed_object_t *doomed)
{
	rhd_stored_ref_cleanup(&doomed->ref);
}

CK_RV rhd_objects_forget(rhd_app_t *app, const rhd_doomed_object_t *doomed)
{
	rhd_handle_t *h = rhd_app_handle_find(app, doomed->handle);
	if (!h || h->store_id != doomed->ref.store_id)
		return CKR_OBJECT_HANDLE_INVALID; /* another thread's, first */
	rhd_handle_drop_key(h);
	handle_unlink(app, h);
	return CKR_OK;
}

/* Changes and copies. */

/* A session object changed: its budget follows its size. */
static CK_RV recharge(rhd_app_t *app, rhd_handle_t *h, const rhd_object_t *obj)
{
	size_t bytes = object_bytes(obj);
	if (bytes > h->charged) {
		CK_RV rv = rhd_app_charge(app, bytes - h->charged,
					  "session-object");
		if (rv != CKR_OK)
			return rv;
	} else {
		rhd_app_refund(app, h->charged - bytes);
	}
	h->charged = bytes;
	return CKR_OK;
}

/* The rules every change meets, then the change made in obj. */
static CK_RV change_checked(rhd_object_t *obj, const rhd_object_t *changes,
			    int by_so)
{
	if (!rhd_object_bool(obj, CKA_MODIFIABLE, 1))
		return CKR_ACTION_PROHIBITED;
	CK_RV rv = rhd_object_check_change(obj, changes, 0);
	if (rv == CKR_OK)
		rv = trust_allowed(obj, changes, by_so);
	if (rv == CKR_OK)
		rv = apply(obj, changes);
	return rv == CKR_OK ? rhd_object_roles_valid(obj) : rv;
}

static CK_RV update_session_object(rhd_engine_t *engine, rhd_app_t *app,
				   rhd_handle_t *h, const rhd_object_t *changes)
{
	rhd_object_t obj = {0};
	CK_RV rv = apply(&obj, h->session_obj);
	if (rv == CKR_OK)
		rv = change_checked(&obj, changes, so_logged_in(app, h->slot));
	if (rv == CKR_OK)
		rv = recharge(app, h, &obj);
	if (rv != CKR_OK) {
		rhd_object_cleanup(&obj);
		return rv;
	}
	token_changed(engine, h);
	rhd_object_cleanup(h->session_obj);
	*h->session_obj = obj;
	return CKR_OK;
}

CK_RV rhd_objects_update_begin(rhd_engine_t *engine, rhd_app_t *app,
			       rhd_session_t *session, uint64_t handle,
			       const rhd_object_t *changes,
			       rhd_changed_object_t *change)
{
	memset(change, 0, sizeof(*change));
	rhd_handle_t *h = visible(engine, app, session, handle);
	if (!h)
		return CKR_OBJECT_HANDLE_INVALID;
	if (h->session_obj)
		return update_session_object(engine, app, h, changes);
	if (!(session->flags & CKF_RW_SESSION))
		return CKR_SESSION_READ_ONLY;
	ref_of(app, h, &change->ref);
	change->private_obj = h->private_obj;
	change->by_so = so_logged_in(app, h->slot);
	change->generation = token_generation(engine, h->slot);
	return CKR_OK;
}

/* The stored object read, changed and written again in one step. */
static CK_RV rewrite_stored(rhd_engine_t *engine,
			    const rhd_changed_object_t *change,
			    const rhd_object_t *changes)
{
	const rhd_stored_ref_t *ref = &change->ref;
	rhd_object_t obj;
	CK_RV rv = rhd_objects_read_stored(engine, ref, &obj);
	if (rv != CKR_OK)
		return rv;
	rv = change_checked(&obj, changes, change->by_so);
	uint8_t *rec = NULL;
	size_t len = 0;
	if (rv == CKR_OK)
		rv = record_make(ref_key(ref), &obj, change->private_obj, &rec,
				 &len);
	rhs_index_t ix = index_of(&obj);
	int rc = rv == CKR_OK ? rhs_object_update(engine->tokens.store,
						  (uint32_t)ref->slot,
						  ref->store_id, &ix, rec, len)
			      : RHS_OK;
	rhs_free(rec, len);
	rhd_object_cleanup(&obj);
	if (rv == CKR_OK && rc != RHS_OK)
		rv = rc == RHS_ENOTFOUND
			     ? CKR_OBJECT_HANDLE_INVALID
			     : rhd_store_failed("object-update", ref->slot, rc);
	return rv;
}

CK_RV rhd_objects_write_change(rhd_engine_t *engine,
			       const rhd_changed_object_t *change,
			       const rhd_object_t *changes)
{
	CK_SLOT_ID slot = change->ref.slot;
	rhd_token_t *t = rhd_engine_token(engine, slot);
	pthread_mutex_lock(&t->write_lock);
	CK_RV rv = token_generation(engine, slot) != change->generation
			   ? CKR_SESSION_CLOSED
			   : rewrite_stored(engine, change, changes);
	if (rv == CKR_OK)
		rhd_token_object_changed(t, change->ref.store_id);
	pthread_mutex_unlock(&t->write_lock);
	return rv;
}

void rhd_changed_object_cleanup(rhd_changed_object_t *change)
{
	OPENSSL_cleanse(change, sizeof(*change));
}

CK_RV rhd_objects_copy_checked(const rhd_object_t *orig,
			       const rhd_object_t *changes, rhd_object_t *copy)
{
	memset(copy, 0, sizeof(*copy));
	CK_RV rv = CKR_ACTION_PROHIBITED;
	if (rhd_object_bool(orig, CKA_COPYABLE, 1))
		rv = rhd_object_check_change(orig, changes, 1);
	if (rv == CKR_OK)
		rv = apply(copy, orig);
	if (rv == CKR_OK)
		rv = apply(copy, changes);
	if (rv == CKR_OK)
		rv = rhd_object_roles_valid(copy);
	/* A copy never brings a private object into public view. */
	if (rv == CKR_OK && rhd_object_bool(orig, CKA_PRIVATE, 0) &&
	    !rhd_object_bool(copy, CKA_PRIVATE, 0))
		rv = CKR_ATTRIBUTE_READ_ONLY;
	if (rv != CKR_OK)
		rhd_object_cleanup(copy);
	return rv;
}

/* --- find
 * ------------------------------------------------------------------------ */

/* The find's results grow by doubling, each growth paid from the app's
 * budget (a find over a million objects holds them all). */
static CK_RV found_grow(rhd_session_t *s)
{
	size_t cap = s->found_cap ? s->found_cap * 2 : 64;
	size_t more = (cap - s->found_cap) * sizeof(*s->found);
	CK_RV rv = rhd_app_charge(s->app, more, "find-results");
	if (rv != CKR_OK)
		return rv;
	rhd_found_t *grown = realloc(s->found, cap * sizeof(*grown));
	if (!grown) {
		rhd_app_refund(s->app, more);
		return CKR_DEVICE_MEMORY;
	}
	s->found = grown;
	s->found_cap = cap;
	return CKR_OK;
}

static CK_RV found_push(rhd_session_t *s, uint32_t handle, uint64_t cls,
			uint64_t key_type)
{
	if (s->found_count == s->found_cap) {
		CK_RV rv = found_grow(s);
		if (rv != CKR_OK)
			return rv;
	}
	rhd_found_t *f = &s->found[s->found_count++];
	f->handle = handle;
	f->cls = cls;
	f->key_type = key_type;
	return CKR_OK;
}

/* The index found obj for tmpl: the indexed attributes tmpl names must
 * be obj's too, or the index points at the wrong record. */
static int index_agrees(const rhd_object_t *obj, const rhd_object_t *tmpl)
{
	rhs_index_t want = index_of(tmpl), have = index_of(obj);
	for (int k = 0; k < RHS_IX_COUNT; k++)
		if (want.value[k] &&
		    (!have.value[k] || want.len[k] != have.len[k] ||
		     memcmp(want.value[k], have.value[k], want.len[k]) != 0))
			return 0;
	return 1;
}

void rhd_objects_find_begin(rhd_app_t *app, const rhd_session_t *session,
			    rhd_stored_ref_t *ref)
{
	memset(ref, 0, sizeof(*ref));
	ref_for(app, session->slot, 0, ref);
}

static CK_RV match_push(rhd_matches_t *m, uint64_t store_id,
			const rhd_object_t *obj)
{
	if (m->count == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		rhd_match_t *grown = realloc(m->match, cap * sizeof(*grown));
		if (!grown)
			return CKR_DEVICE_MEMORY;
		m->match = grown;
		m->cap = cap;
	}
	rhd_match_t *one = &m->match[m->count++];
	one->store_id = store_id;
	one->private_obj = rhd_object_bool(obj, CKA_PRIVATE, 0);
	one->cls = one->key_type = 0;
	rhd_object_ulong(obj, CKA_CLASS, &one->cls);
	rhd_object_ulong(obj, CKA_KEY_TYPE, &one->key_type);
	return CKR_OK;
}

/* One record the index found for tmpl, matched against it. */
static CK_RV match_one(rhd_engine_t *engine, const rhd_stored_ref_t *ref,
		       uint64_t store_id, const rhd_object_t *tmpl,
		       rhd_matches_t *m)
{
	rhd_object_t obj;
	CK_RV rv = load_stored(engine, ref_key(ref), ref->slot, store_id, &obj);
	/* Private while logged out: not this app's to see. Anything else is
	 * damage, never a smaller answer. */
	if (rv == CKR_OBJECT_HANDLE_INVALID)
		return CKR_OK;
	if (rv != CKR_OK)
		return rv;
	if (!index_agrees(&obj, tmpl)) {
		RHD_ERROR("event=index-damaged slot=%lu row=objects/%lu/%llu "
			  "reason=\"the index names a record that does not "
			  "match it\"",
			  ref->slot, ref->slot, (unsigned long long)store_id);
		rv = CKR_DEVICE_ERROR;
	} else if (rhd_object_matches(&obj, tmpl)) {
		rv = match_push(m, store_id, &obj);
	}
	rhd_object_cleanup(&obj);
	return rv;
}

CK_RV rhd_objects_find_stored(rhd_engine_t *engine, const rhd_stored_ref_t *ref,
			      const rhd_object_t *tmpl, rhd_matches_t *m)
{
	memset(m, 0, sizeof(*m));
	rhs_index_t ix = index_of(tmpl);
	uint64_t *ids;
	size_t n;
	int rc = rhs_object_find(engine->tokens.store, (uint32_t)ref->slot, &ix,
				 &ids, &n);
	if (rc < 0)
		return rhd_store_failed("object-find", ref->slot, rc);
	CK_RV rv = CKR_OK;
	for (size_t i = 0; i < n && rv == CKR_OK; i++)
		rv = match_one(engine, ref, ids[i], tmpl, m);
	free(ids);
	if (rv != CKR_OK)
		rhd_matches_cleanup(m);
	return rv;
}

void rhd_matches_cleanup(rhd_matches_t *m)
{
	free(m->match);
	memset(m, 0, sizeof(*m));
}

/* The stored matches become the app's handles; a private one found under
 * a login that has ended since is left out. */
static CK_RV adopt_matches(rhd_app_t *app, rhd_session_t *s,
			   const rhd_matches_t *m)
{
	CK_RV rv = CKR_OK;
	for (size_t i = 0; i < m->count && rv == CKR_OK; i++) {
		const rhd_match_t *one = &m->match[i];
		if (one->private_obj && !user_logged_in(app, s->slot))
			continue;
		rhd_handle_t *h =
			rhd_app_handle_by_store(app, s->slot, one->store_id);
		if (!h)
			h = handle_new(app, s->slot, one->private_obj,
				       one->store_id);
		rv = h ? found_push(s, h->handle, one->cls, one->key_type)
		       : CKR_DEVICE_MEMORY;
	}
	return rv;
}

static CK_RV found_session_object(rhd_session_t *s, const rhd_handle_t *h)
{
	uint64_t cls = 0, key_type = 0;
	rhd_object_ulong(h->session_obj, CKA_CLASS, &cls);
	rhd_object_ulong(h->session_obj, CKA_KEY_TYPE, &key_type);
	return found_push(s, h->handle, cls, key_type);
}

CK_RV rhd_objects_find_adopt(rhd_engine_t *engine, rhd_app_t *app,
			     rhd_session_t *session, const rhd_object_t *tmpl,
			     const rhd_matches_t *stored)
{
	CK_RV rv = adopt_matches(app, session, stored);
	/* Session objects are few; the walk is skipped when there are none. */
	for (rhd_handle_t *h = app->session_objects ? app->objects : NULL;
	     h && rv == CKR_OK; h = h->next) {
		if (!h->session_obj ||
		    !visible(engine, app, session, h->handle))
			continue;
		if (rhd_object_matches(h->session_obj, tmpl))
			rv = found_session_object(session, h);
	}
	if (rv != CKR_OK)
		rhd_session_end_find(session);
	else
		session->finding = 1;
	return rv;
}
