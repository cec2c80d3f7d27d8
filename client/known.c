#include "known.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

typedef struct session_entry {
	CK_SESSION_HANDLE handle;
	CK_SLOT_ID slot;
	CK_FLAGS flags;
} session_entry_t;

/* A user login's lease, per slot: opaque to the client (sealed by the
 * daemon), presented when a new connection restores the application. */
#define MAX_LEASE 256
typedef struct lease_entry {
	CK_SLOT_ID slot;
	size_t len;
	uint8_t bytes[MAX_LEASE];
} lease_entry_t;

typedef struct key_entry {
	CK_OBJECT_HANDLE handle;
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE type;
} key_entry_t;

/* An operation the client holds an init for, or one that may be active
 * on the daemon. */
typedef struct held_init {
	CK_SESSION_HANDLE session;
	rhc_op_t op;
	int on_daemon;
	CK_MECHANISM_TYPE mech;
	CK_OBJECT_HANDLE key;
} held_init_t;

typedef struct held_find {
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE *found;
	size_t count, next;
	int daemon_open;
} held_find_t;

/* Small arrays: an application has tens of sessions and keys, not more;
 * past the caps the client just asks the daemon. */
#define MAX_KNOWN 1024
#define REMOVE_AT(array, n, i) ((array)[i] = (array)[--(n)])
#define MAX_LEASES 64

static struct {
	session_entry_t sessions[MAX_KNOWN];
	size_t n_sessions;
	key_entry_t keys[MAX_KNOWN];
	size_t n_keys;
	held_init_t held[MAX_KNOWN];
	size_t n_held;
	held_find_t finds[MAX_KNOWN];
	size_t n_finds;
	lease_entry_t leases[MAX_LEASES];
	size_t n_leases;
} k;

void rhc_known_reset(void)
{
	rhc_lock();
	for (size_t i = 0; i < k.n_finds; i++)
		free(k.finds[i].found);
	OPENSSL_cleanse(&k, sizeof(k)); /* leases included */
	rhc_unlock();
}

static held_find_t *find_of(CK_SESSION_HANDLE session)
{
	for (size_t i = 0; i < k.n_finds; i++)
		if (k.finds[i].session == session)
			return &k.finds[i];
	return NULL;
}

static void drop_find_locked(CK_SESSION_HANDLE session)
{
	held_find_t *f = find_of(session);
	if (!f)
		return;
	free(f->found);
	*f = k.finds[--k.n_finds];
}

CK_RV rhc_find_begin(CK_SESSION_HANDLE session, const CK_OBJECT_HANDLE *found,
		     size_t count, int daemon_open)
{
	CK_OBJECT_HANDLE *copy = malloc((count ? count : 1) * sizeof(*copy));
	if (!copy)
		return CKR_HOST_MEMORY;
	if (count)
		memcpy(copy, found, count * sizeof(*copy));
	CK_RV rv = CKR_HOST_MEMORY;
	rhc_lock();
	drop_find_locked(session);
	if (k.n_finds < MAX_KNOWN) {
		k.finds[k.n_finds++] =
			(held_find_t){session, copy, count, 0, daemon_open};
		copy = NULL;
		rv = CKR_OK;
	}
	rhc_unlock();
	free(copy);
	return rv;
}

int rhc_find_active(CK_SESSION_HANDLE session)
{
	rhc_lock();
	int active = find_of(session) != NULL;
	rhc_unlock();
	return active;
}

long rhc_find_take(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE *out, size_t max,
		   int *daemon_open)
{
	rhc_lock();
	held_find_t *f = find_of(session);
	long n = -1;
	if (f) {
		size_t left = f->count - f->next;
		size_t take = max < left ? max : left;
		memcpy(out, f->found + f->next, take * sizeof(*out));
		f->next += take;
		*daemon_open = f->daemon_open && f->next == f->count;
		n = (long)take;
	}
	rhc_unlock();
	return n;
}

int rhc_find_end(CK_SESSION_HANDLE session)
{
	rhc_lock();
	held_find_t *f = find_of(session);
	int r = f ? f->daemon_open : -1;
	drop_find_locked(session);
	rhc_unlock();
	return r;
}

void rhc_known_session(CK_SESSION_HANDLE session, CK_SLOT_ID slot,
		       CK_FLAGS flags)
{
	rhc_lock();
	if (k.n_sessions < MAX_KNOWN)
		k.sessions[k.n_sessions++] =
			(session_entry_t){session, slot, flags};
	rhc_unlock();
}

static void drop_lease_locked(CK_SLOT_ID slot)
{
	for (size_t i = 0; i < k.n_leases; i++)
		if (k.leases[i].slot == slot) {
			OPENSSL_cleanse(k.leases[i].bytes, k.leases[i].len);
			REMOVE_AT(k.leases, k.n_leases, i);
			return;
		}
}

void rhc_known_lease(CK_SLOT_ID slot, const uint8_t *lease, size_t len)
{
	rhc_lock();
	drop_lease_locked(slot);
	if (len && len <= MAX_LEASE && k.n_leases < MAX_LEASES) {
		lease_entry_t *l = &k.leases[k.n_leases++];
		l->slot = slot;
		l->len = len;
		memcpy(l->bytes, lease, len);
	}
	rhc_unlock();
}

void rhc_forget_lease(CK_SESSION_HANDLE session)
{
	rhc_lock();
	for (size_t i = 0; i < k.n_sessions; i++)
		if (k.sessions[i].handle == session)
			drop_lease_locked(k.sessions[i].slot);
	rhc_unlock();
}

/* A login ends with the last session of its token. */
static void drop_lease_if_unused_locked(CK_SLOT_ID slot)
{
	for (size_t i = 0; i < k.n_sessions; i++)
		if (k.sessions[i].slot == slot)
			return;
	drop_lease_locked(slot);
}

int rhc_holds_sessions(void)
{
	rhc_lock();
	int any = k.n_sessions > 0;
	rhc_unlock();
	return any;
}

CK_SLOT_ID rhc_session_slot(CK_SESSION_HANDLE session, int *found)
{
	rhc_lock();
	*found = 0;
	CK_SLOT_ID slot = 0;
	for (size_t i = 0; i < k.n_sessions && !*found; i++)
		if (k.sessions[i].handle == session) {
			slot = k.sessions[i].slot;
			*found = 1;
		}
	rhc_unlock();
	return slot;
}

int rhc_restore_request(Remhsm__RestoreReq *req, rh_arena_t *arena)
{
	rhc_lock();
	int r = -1;
	req->sessions = rh_arena_alloc(arena, (k.n_sessions + 1) *
						      sizeof(*req->sessions));
	req->logins =
		rh_arena_alloc(arena, (k.n_leases + 1) * sizeof(*req->logins));
	if (!req->sessions || !req->logins)
		goto out;
	for (size_t i = 0; i < k.n_sessions; i++) {
		Remhsm__RestoreSession *s = rh_arena_alloc(arena, sizeof(*s));
		if (!s)
			goto out;
		remhsm__restore_session__init(s);
		s->handle = k.sessions[i].handle;
		s->slot = k.sessions[i].slot;
		s->flags = k.sessions[i].flags;
		req->sessions[req->n_sessions++] = s;
	}
	for (size_t i = 0; i < k.n_leases; i++) {
		Remhsm__RestoreLogin *l = rh_arena_alloc(arena, sizeof(*l));
		uint8_t *copy = rh_arena_alloc(arena, k.leases[i].len);
		if (!l || !copy)
			goto out;
		remhsm__restore_login__init(l);
		l->slot = k.leases[i].slot;
		memcpy(copy, k.leases[i].bytes, k.leases[i].len);
		l->lease = (ProtobufCBinaryData){k.leases[i].len, copy};
		req->logins[req->n_logins++] = l;
	}
	r = (int)req->n_sessions;
out:
	rhc_unlock();
	return r;
}

void rhc_restore_lost(const Remhsm__RestoreResp *resp)
{
	rhc_lock();
	/* Values no CK_ULONG holds name nothing of ours. */
	for (size_t i = 0; i < resp->n_lost_logins; i++)
		if (resp->lost_logins[i] <= ULONG_MAX)
			drop_lease_locked((CK_SLOT_ID)resp->lost_logins[i]);
	rhc_unlock();
	for (size_t i = 0; i < resp->n_lost_sessions; i++)
		if (resp->lost_sessions[i] <= ULONG_MAX)
			rhc_forget_session(
				(CK_SESSION_HANDLE)resp->lost_sessions[i]);
}

static void drop_inits_locked(CK_SESSION_HANDLE session)
{
	for (size_t i = 0; i < k.n_held;)
		if (k.held[i].session == session)
			REMOVE_AT(k.held, k.n_held, i);
		else
			i++;
}

void rhc_forget_session(CK_SESSION_HANDLE session)
{
	rhc_lock();
	for (size_t i = 0; i < k.n_sessions; i++)
		if (k.sessions[i].handle == session) {
			CK_SLOT_ID slot = k.sessions[i].slot;
			REMOVE_AT(k.sessions, k.n_sessions, i);
			drop_lease_if_unused_locked(slot);
			break;
		}
	drop_inits_locked(session);
	drop_find_locked(session);
	rhc_unlock();
}

void rhc_forget_slot(CK_SLOT_ID slot)
{
	rhc_lock();
	for (size_t i = 0; i < k.n_sessions;)
		if (k.sessions[i].slot == slot) {
			drop_inits_locked(k.sessions[i].handle);
			drop_find_locked(k.sessions[i].handle);
			REMOVE_AT(k.sessions, k.n_sessions, i);
		} else {
			i++;
		}
	drop_lease_locked(slot);
	rhc_unlock();
}

void rhc_known_object(const Remhsm__ObjectInfo *info)
{
	if (!info ||
	    (info->class_ != CKO_PRIVATE_KEY &&
	     info->class_ != CKO_PUBLIC_KEY && info->class_ != CKO_SECRET_KEY))
		return;
	rhc_lock();
	size_t i = 0;
	while (i < k.n_keys && k.keys[i].handle != info->handle)
		i++;
	if (i < MAX_KNOWN) {
		k.keys[i] = (key_entry_t){(CK_OBJECT_HANDLE)info->handle,
					  (CK_OBJECT_CLASS)info->class_,
					  (CK_KEY_TYPE)info->key_type};
		if (i == k.n_keys)
			k.n_keys++;
	}
	rhc_unlock();
}

void rhc_forget_object(CK_OBJECT_HANDLE object)
{
	rhc_lock();
	for (size_t i = 0; i < k.n_keys; i++)
		if (k.keys[i].handle == object) {
			REMOVE_AT(k.keys, k.n_keys, i);
			break;
		}
	rhc_unlock();
}

static int session_known(CK_SESSION_HANDLE session)
{
	for (size_t i = 0; i < k.n_sessions; i++)
		if (k.sessions[i].handle == session)
			return 1;
	return 0;
}

/* The key type a mechanism without parameters signs with; 0 when the
 * client cannot check it (PSS carries parameters: the daemon checks). */
static CK_KEY_TYPE key_type_for(CK_MECHANISM_TYPE mech)
{
	switch (mech) {
	case CKM_SHA_1_HMAC:
	case CKM_SHA256_HMAC:
	case CKM_SHA384_HMAC:
	case CKM_SHA512_HMAC:
		return CKK_GENERIC_SECRET;
	case CKM_AES_CMAC:
		return CKK_AES;
	case CKM_ECDSA:
	case CKM_ECDSA_SHA256:
	case CKM_ECDSA_SHA384:
	case CKM_ECDSA_SHA512:
		return CKK_EC;
	case CKM_EDDSA:
		return CKK_EC_EDWARDS;
	case CKM_RSA_PKCS:
	case CKM_SHA256_RSA_PKCS:
	case CKM_SHA384_RSA_PKCS:
	case CKM_SHA512_RSA_PKCS:
		return CKK_RSA;
	default:
		return (CK_KEY_TYPE)-1;
	}
}

/* The key fits the operation: the daemon's own init checks, minus what
 * only it knows (CKA_SIGN/CKA_VERIFY, visibility), which then surface on
 * the call that follows. */
static int key_fits(CK_OBJECT_HANDLE key, rhc_op_t op, CK_MECHANISM_TYPE mech)
{
	CK_KEY_TYPE type = key_type_for(mech);
	CK_OBJECT_CLASS want = type == CKK_GENERIC_SECRET || type == CKK_AES
				       ? CKO_SECRET_KEY
			       : op == RHC_OP_SIGN ? CKO_PRIVATE_KEY
						   : CKO_PUBLIC_KEY;
	for (size_t i = 0; i < k.n_keys; i++)
		if (k.keys[i].handle == key)
			return k.keys[i].cls == want && k.keys[i].type == type;
	return 0;
}

static int digest_served(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_SHA_1 || mech == CKM_SHA256 || mech == CKM_SHA384 ||
	       mech == CKM_SHA512;
}

static held_init_t *find_op(CK_SESSION_HANDLE session, rhc_op_t op)
{
	for (size_t i = 0; i < k.n_held; i++)
		if (k.held[i].session == session && k.held[i].op == op)
			return &k.held[i];
	return NULL;
}

CK_RV rhc_hold_init(CK_SESSION_HANDLE session, rhc_op_t op,
		    CK_MECHANISM_TYPE mech, CK_OBJECT_HANDLE key)
{
	CK_RV rv = CKR_FUNCTION_NOT_SUPPORTED;
	rhc_lock();
	int checkable = session_known(session) &&
			(op == RHC_OP_DIGEST ? digest_served(mech)
					     : key_fits(key, op, mech));
	held_init_t *known = find_op(session, op);
	if (known)
		rv = known->on_daemon ? CKR_FUNCTION_NOT_SUPPORTED
				      : CKR_OPERATION_ACTIVE;
	else if (checkable && k.n_held < MAX_KNOWN) {
		k.held[k.n_held++] = (held_init_t){session, op, 0, mech, key};
		rv = CKR_OK;
	}
	rhc_unlock();
	return rv;
}

void rhc_note_active(CK_SESSION_HANDLE session, rhc_op_t op, int active)
{
	rhc_lock();
	held_init_t *known = find_op(session, op);
	if (known && !active)
		REMOVE_AT(k.held, k.n_held, (size_t)(known - k.held));
	else if (!known && active && k.n_held < MAX_KNOWN)
		k.held[k.n_held++] = (held_init_t){session, op, 1, 0, 0};
	else if (known && active)
		known->on_daemon = 1;
	rhc_unlock();
}

int rhc_take_init(CK_SESSION_HANDLE session, rhc_op_t op,
		  CK_MECHANISM_TYPE *mech, CK_OBJECT_HANDLE *key)
{
	int found = 0;
	rhc_lock();
	for (size_t i = 0; i < k.n_held; i++) {
		if (k.held[i].session != session || k.held[i].op != op ||
		    k.held[i].on_daemon)
			continue;
		*mech = k.held[i].mech;
		*key = k.held[i].key;
		REMOVE_AT(k.held, k.n_held, i);
		found = 1;
		break;
	}
	rhc_unlock();
	return found;
}

void rhc_drop_inits(CK_SESSION_HANDLE session)
{
	rhc_lock();
	drop_inits_locked(session);
	rhc_unlock();
}

void rhc_drop_all_inits(void)
{
	rhc_lock();
	k.n_held = 0;
	rhc_unlock();
}
