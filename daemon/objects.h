/*
 * An application's objects: handles (per application, 32 bits) for token
 * objects in the store and session objects in memory, visibility under
 * login, and find cursors. Pure: the store is the only I/O.
 */
#ifndef RHD_OBJECTS_H
#define RHD_OBJECTS_H

#include "engine.h"
#include "object.h"

/* The caller holds app->lock for all of these but the writes, which run
 * without it. */

/* Whether session may hold a new object of this kind now: a read-write
 * session for a token object, a user login for a private one, room for a
 * session object. Checked before any costly work for the object. */
CK_RV rhd_objects_may_create(const rhd_engine_t *engine, const rhd_app_t *app,
			     const rhd_session_t *s, int token_obj,
			     int private_obj);

/* A token object made in three steps, so that the app's lock is not held
 * across the store write: begin (lock held) checks and seals it, write
 * (no app lock) stores it, adopt (lock held) gives it a handle. The index
 * points into the object begin was given, which must outlive write. */
typedef struct rhd_new_object {
	CK_SLOT_ID slot;
	int private_obj;
	uint64_t generation; /* the token's, when it was sealed */
	uint8_t *rec;	     /* NULL: nothing to write */
	size_t len;
	rhs_index_t ix;
} rhd_new_object_t;

/* A session object is made at once (*handle set, fresh->rec NULL). */
CK_RV rhd_objects_create_begin(rhd_engine_t *engine, rhd_app_t *app,
			       rhd_session_t *session, rhd_object_t *obj,
			       uint32_t *handle, rhd_new_object_t *fresh);
/* Serialised with the token's other writes by its write_lock; a token
 * re-initialised since begin gets nothing (CKR_SESSION_CLOSED: the
 * session it was made in is gone). */
CK_RV rhd_objects_write_new(rhd_engine_t *engine, const rhd_new_object_t *fresh,
			    uint64_t *store_id);
CK_RV rhd_objects_adopt_new(rhd_engine_t *engine, rhd_app_t *app,
			    const rhd_new_object_t *fresh, uint64_t store_id,
			    uint32_t *handle);
void rhd_new_object_cleanup(rhd_new_object_t *fresh);
/* Loads a visible object (copy in out, cleanup by the caller). */
CK_RV rhd_objects_load(rhd_engine_t *engine, rhd_app_t *app,
		       const rhd_session_t *session, uint64_t handle,
		       rhd_object_t *out);

/* A token object's destruction in the same three steps as a creation's:
 * begin (lock held) checks it may go (a session object goes at once,
 * doomed->store_id 0); delete (no app lock, the token's write_lock) takes
 * its row out and voids every cached copy of its key; forget (lock held)
 * drops the handle, CKR_OBJECT_HANDLE_INVALID when another thread of the
 * application destroyed it meanwhile. A token re-initialised after begin
 * is not touched (CKR_SESSION_CLOSED). */
typedef struct rhd_doomed_object {
	CK_SLOT_ID slot;
	uint64_t store_id;
	uint64_t handle;
	uint64_t generation;
} rhd_doomed_object_t;

CK_RV rhd_objects_destroy_begin(rhd_engine_t *engine, rhd_app_t *app,
				const rhd_session_t *session, uint64_t handle,
				rhd_doomed_object_t *doomed);
CK_RV rhd_objects_delete_stored(rhd_engine_t *engine,
				const rhd_doomed_object_t *doomed);
CK_RV rhd_objects_forget(rhd_app_t *app, const rhd_doomed_object_t *doomed);
/* C_SetAttributeValue in the same steps: begin (lock held) finds the
 * object and changes a session object at once (change->store_id 0); for a
 * token object it copies out what the write needs, the token key included.
 * write (no app lock) reads, checks, changes and writes the stored object
 * under the token's write_lock, so that changes from several applications
 * are made one after the other and none is lost. Cleanup wipes the copy. */
typedef struct rhd_changed_object {
	CK_SLOT_ID slot;
	uint64_t store_id;
	uint64_t generation;
	int private_obj;
	int logged_in;
	uint8_t token_key[RHS_KEY_LEN];
} rhd_changed_object_t;

CK_RV rhd_objects_update_begin(rhd_engine_t *engine, rhd_app_t *app,
			       rhd_session_t *session, uint64_t handle,
			       const rhd_object_t *changes,
			       rhd_changed_object_t *change);
CK_RV rhd_objects_write_change(rhd_engine_t *engine,
			       const rhd_changed_object_t *change,
			       const rhd_object_t *changes);
void rhd_changed_object_cleanup(rhd_changed_object_t *change);

/* C_CopyObject's checks (lock held): the copy, made with the checked
 * changes, in copy, to be created as any new object is. */
CK_RV rhd_objects_copy_begin(rhd_engine_t *engine, rhd_app_t *app,
			     rhd_session_t *session, uint64_t handle,
			     const rhd_object_t *changes, rhd_object_t *copy);

/* The handle of a visible object (NULL when none), for the key cache. */
rhd_handle_t *rhd_objects_visible(rhd_engine_t *engine, rhd_app_t *app,
				  const rhd_session_t *session,
				  uint64_t handle);

/* Starts a find: the handles of every visible object matching tmpl. */
CK_RV rhd_objects_find(rhd_engine_t *engine, rhd_app_t *app,
		       rhd_session_t *session, const rhd_object_t *tmpl);

#endif
