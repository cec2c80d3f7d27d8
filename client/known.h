/*
 * What the client has learned from the daemon's answers, to make an init's
 * checks itself and hold the init back until the call that follows (one
 * round trip per signature): the sessions it opened, the keys it has seen
 * (class and key type), and the inits it is holding. Guarded by the
 * module's lock.
 */
#ifndef RHC_KNOWN_H
#define RHC_KNOWN_H

#include <p11-kit/pkcs11.h>

#include "remhsm.pb-c.h"
#include "rh_arena.h"

typedef enum { RHC_OP_DIGEST, RHC_OP_SIGN, RHC_OP_VERIFY } rhc_op_t;

void rhc_known_reset(void);

void rhc_known_session(CK_SESSION_HANDLE session, CK_SLOT_ID slot,
		       CK_FLAGS flags);
void rhc_forget_session(CK_SESSION_HANDLE session);
void rhc_forget_slot(CK_SLOT_ID slot);
int rhc_holds_sessions(void);
/* The slot of a session the client opened (*found 0 when it has none). */
CK_SLOT_ID rhc_session_slot(CK_SESSION_HANDLE session, int *found);

/*
 * Login leases: kept per slot from C_Login's answer, dropped by C_Logout
 * (of the session's slot), by the slot's last C_CloseSession and by
 * C_CloseAllSessions. Never the PIN: the lease is sealed by the daemon.
 */
void rhc_known_lease(CK_SLOT_ID slot, const uint8_t *lease, size_t len);
void rhc_forget_lease(CK_SESSION_HANDLE session);

/* The Restore a new connection sends: every session the client holds and
 * every lease. The number of sessions, or -1 when memory runs out. */
int rhc_restore_request(Remhsm__RestoreReq *req, rh_arena_t *arena);
/* Forgets what the daemon could not restore. */
void rhc_restore_lost(const Remhsm__RestoreResp *resp);

void rhc_known_object(const Remhsm__ObjectInfo *info);
void rhc_forget_object(CK_OBJECT_HANDLE object);

/*
 * Holds back an init whose checks the client can make: returns CKR_OK
 * (held), CKR_OPERATION_ACTIVE (one is held already), or
 * CKR_FUNCTION_NOT_SUPPORTED when the daemon must be asked.
 */
CK_RV rhc_hold_init(CK_SESSION_HANDLE session, rhc_op_t op,
		    CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE key);

/* Records whether (session, op) may be active on the daemon after a call:
 * while it may be, inits are not held back but asked, so that the daemon
 * answers CKR_OPERATION_ACTIVE itself. */
void rhc_note_active(CK_SESSION_HANDLE session, rhc_op_t op, int active);

/* Takes the held init of (session, op), if any: 1 and its parts. */
int rhc_take_init(CK_SESSION_HANDLE session, rhc_op_t op,
		  CK_MECHANISM_TYPE *mech, CK_OBJECT_HANDLE *key);

/*
 * A find's results held by the client: those the init returned, and
 * whether the daemon still has more (its cursor is open).
 */
CK_RV rhc_find_begin(CK_SESSION_HANDLE session, const CK_OBJECT_HANDLE *found,
		     size_t count, int daemon_open);
int rhc_find_active(CK_SESSION_HANDLE session);
/* Up to max held results; *daemon_open says whether to ask for more.
 * -1 when the session has no held find. */
long rhc_find_take(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE *out, size_t max,
		   int *daemon_open);
/* Ends a held find: 1 when the daemon's cursor must be closed too, 0 when
 * not, -1 when the session had none. */
int rhc_find_end(CK_SESSION_HANDLE session);

/* Held inits die with their session, or with a logout (all of them: the
 * daemon ends the operations of every session of the token). */
void rhc_drop_inits(CK_SESSION_HANDLE session);
void rhc_drop_all_inits(void);

#endif
