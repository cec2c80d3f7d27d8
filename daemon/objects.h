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

/* What reading a token object takes, copied out under the app's lock so
 * that the read runs without it: its row, and the user's token key when
 * the user is logged in. Cleanup wipes it. */
typedef struct rhd_stored_ref {
	CK_SLOT_ID slot;
	uint64_t store_id; /* 0: a session object, nothing to read */
	int logged_in;
	uint8_t token_key[RHS_KEY_LEN];
} rhd_stored_ref_t;

void rhd_stored_ref_cleanup(rhd_stored_ref_t *ref);

/* A visible object's read begun (lock held): a session object copied
 * into out at once, a token object's ref filled in. */
CK_RV rhd_objects_read_begin(rhd_engine_t *engine, rhd_app_t *app,
			     const rhd_session_t *session, uint64_t handle,
			     rhd_stored_ref_t *ref, rhd_object_t *out);
/* The token object ref names, read without the app's lock. */
CK_RV rhd_objects_read_stored(rhd_engine_t *engine, const rhd_stored_ref_t *ref,
			      rhd_object_t *out);

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
/* Loads a visible object (copy in out, cleanup by the caller): begin
 * and read at once, the lock held throughout. */
CK_RV rhd_objects_load(rhd_engine_t *engine, rhd_app_t *app,
		       const rhd_session_t *session, uint64_t handle,
		       rhd_object_t *out);

/* A token object's destruction in the same three steps as a creation's:
 * begin (lock held) checks the handle and the session (a session object
 * goes at once, doomed->ref.store_id 0); delete (no app lock, the token's
 * write_lock) reads it, checks that it may go (CKA_DESTROYABLE), takes its
 * row out and voids every cached copy of its key; forget (lock held)
 * drops the handle, CKR_OBJECT_HANDLE_INVALID when another thread of the
 * application destroyed it meanwhile. A token re-initialised after begin
 * is not touched (CKR_SESSION_CLOSED). */
typedef struct rhd_doomed_object {
	rhd_stored_ref_t ref;
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
 * object and changes a session object at once (change->ref.store_id 0); for a
 * token object it copies out what the write needs, the token key included.
 * write (no app lock) reads, checks, changes and writes the stored object
 * under the token's write_lock, so that changes from several applications
 * are made one after the other and none is lost. Cleanup wipes the copy. */
typedef struct rhd_changed_object {
	rhd_stored_ref_t ref;
	uint64_t generation;
	int private_obj;
	int by_so; /* CKA_TRUSTED is the SO's to change */
} rhd_changed_object_t;

CK_RV rhd_objects_update_begin(rhd_engine_t *engine, rhd_app_t *app,
			       rhd_session_t *session, uint64_t handle,
			       const rhd_object_t *changes,
			       rhd_changed_object_t *change);
CK_RV rhd_objects_write_change(rhd_engine_t *engine,
			       const rhd_changed_object_t *change,
			       const rhd_object_t *changes);
void rhd_changed_object_cleanup(rhd_changed_object_t *change);
void rhd_doomed_object_cleanup(rhd_doomed_object_t *doomed);

/* C_CopyObject's checks on orig, read as any object is (no lock): the
 * copy, made with the checked changes, in copy, to be created as any new
 * object is. */
CK_RV rhd_objects_copy_checked(const rhd_object_t *orig,
			       const rhd_object_t *changes, rhd_object_t *copy);

/* The handle of a visible object (NULL when none), for the key cache. */
rhd_handle_t *rhd_objects_visible(rhd_engine_t *engine, rhd_app_t *app,
				  const rhd_session_t *session,
				  uint64_t handle);

/* A find in three steps: begin (lock held) copies out the session's slot
 * and the token key; stored (no app lock) reads and matches the token's
 * objects; adopt (lock held) gives the matches handles, adds the session
 * objects that match, and starts the session's cursor. */
typedef struct rhd_match {
	uint64_t store_id;
	uint64_t cls, key_type;
	int private_obj;
} rhd_match_t;

typedef struct rhd_matches {
	rhd_match_t *match;
	size_t count, cap;
} rhd_matches_t;

void rhd_objects_find_begin(rhd_app_t *app, const rhd_session_t *session,
			    rhd_stored_ref_t *ref);
CK_RV rhd_objects_find_stored(rhd_engine_t *engine, const rhd_stored_ref_t *ref,
			      const rhd_object_t *tmpl, rhd_matches_t *m);
CK_RV rhd_objects_find_adopt(rhd_engine_t *engine, rhd_app_t *app,
			     rhd_session_t *session, const rhd_object_t *tmpl,
			     const rhd_matches_t *stored);
void rhd_matches_cleanup(rhd_matches_t *m);

#endif
