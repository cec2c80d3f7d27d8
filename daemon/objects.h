/*
 * An application's objects: handles (per application, 32 bits) for token
 * objects in the store and session objects in memory, visibility under
 * login, and find cursors. Pure: the store is the only I/O.
 */
#ifndef RHD_OBJECTS_H
#define RHD_OBJECTS_H

#include "engine.h"
#include "object.h"

/* The caller holds app->lock for all of these. */

/* Whether session may hold a new object of this kind now: a read-write
 * session for a token object, a user login for a private one, room for a
 * session object. Checked before any costly work for the object. */
CK_RV rhd_objects_may_create(const rhd_engine_t *engine, const rhd_app_t *app,
			     const rhd_session_t *s, int token_obj,
			     int private_obj);
CK_RV rhd_objects_create(rhd_engine_t *engine, rhd_app_t *app,
			 rhd_session_t *session, rhd_object_t *obj,
			 uint32_t *handle);
/* Loads a visible object (copy in out, cleanup by the caller). */
CK_RV rhd_objects_load(rhd_engine_t *engine, rhd_app_t *app,
		       const rhd_session_t *session, uint64_t handle,
		       rhd_object_t *out);
CK_RV rhd_objects_destroy(rhd_engine_t *engine, rhd_app_t *app,
			  const rhd_session_t *session, uint64_t handle);
/* C_SetAttributeValue: checked changes, written where the object lives. */
CK_RV rhd_objects_update(rhd_engine_t *engine, rhd_app_t *app,
			 rhd_session_t *session, uint64_t handle,
			 const rhd_object_t *changes);
/* C_CopyObject: a new object from a visible one and checked changes. */
CK_RV rhd_objects_copy(rhd_engine_t *engine, rhd_app_t *app,
		       rhd_session_t *session, uint64_t handle,
		       const rhd_object_t *changes, uint32_t *copy);

/* The handle of a visible object (NULL when none), for the key cache. */
rhd_handle_t *rhd_objects_visible(rhd_engine_t *engine, rhd_app_t *app,
				  const rhd_session_t *session,
				  uint64_t handle);

/* Starts a find: the handles of every visible object matching tmpl. */
CK_RV rhd_objects_find(rhd_engine_t *engine, rhd_app_t *app,
		       rhd_session_t *session, const rhd_object_t *tmpl);

#endif
