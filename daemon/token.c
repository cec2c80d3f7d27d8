#include "token.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "log.h"
#include "store_records.pb-c.h"

/* --- records ------------------------------------------------------------ */

static void wrap_from_record(rhd_pin_wrap_t *w, const Remhsm__Store__PinWrap *r)
{
	memset(w, 0, sizeof(*w));
	if (!r || r->salt.len != sizeof(w->kdf.salt) ||
	    r->wrapped_key.len != RHD_WRAPPED_LEN)
		return;
	w->set = 1;
	w->kdf.n = r->kdf_n;
	w->kdf.r = r->kdf_r;
	w->kdf.p = r->kdf_p;
	memcpy(w->kdf.salt, r->salt.data, sizeof(w->kdf.salt));
	memcpy(w->wrapped, r->wrapped_key.data, RHD_WRAPPED_LEN);
}

static Remhsm__Store__PinWrap *wrap_to_record(rhd_pin_wrap_t *w,
					      Remhsm__Store__PinWrap *r)
{
	if (!w->set)
		return NULL;
	remhsm__store__pin_wrap__init(r);
	r->kdf_n = w->kdf.n;
	r->kdf_r = w->kdf.r;
	r->kdf_p = w->kdf.p;
	r->salt = (ProtobufCBinaryData){sizeof(w->kdf.salt), w->kdf.salt};
	r->wrapped_key = (ProtobufCBinaryData){RHD_WRAPPED_LEN, w->wrapped};
	return r;
}

/* Writes the record of next, the token-to-be of t; the caller holds
 * t->write_lock and not t->lock. */
static CK_RV write_record(rhd_tokens_t *tokens, const rhd_token_t *t,
			  rhd_token_t *next)
{
	Remhsm__Store__TokenRecord rec = REMHSM__STORE__TOKEN_RECORD__INIT;
	Remhsm__Store__PinWrap so, user;
	rec.label = (ProtobufCBinaryData){RHD_LABEL_LEN, next->label};
	rec.so = wrap_to_record(&next->so, &so);
	rec.user = wrap_to_record(&next->user, &user);
	rec.so_failures = next->so_failures;
	rec.user_failures = next->user_failures;
	rec.incarnation = next->incarnation;
	uint8_t buf[512];
	size_t len = remhsm__store__token_record__pack(&rec, buf);
	int rc = rhs_token_put(tokens->store, t->slot, buf, len);
	OPENSSL_cleanse(buf, len);
	return rc < 0 ? rhd_store_failed("token-write", t->slot, rc) : CKR_OK;
}

CK_RV rhd_store_failed(const char *op, CK_SLOT_ID slot, int rc)
{
	const char *said = rhs_last_error();
	RHD_ERROR("event=store-failed op=%s slot=%lu reason=\"%s%s%s\"", op,
		  slot, rhs_strerror(rc), said[0] ? ": " : "", said);
	return rc == RHS_EFULL ? CKR_DEVICE_MEMORY : CKR_DEVICE_ERROR;
}

static int same_wrap(const rhd_pin_wrap_t *a, const rhd_pin_wrap_t *b)
{
	return a->set == b->set &&
	       !memcmp(a->kdf.salt, b->kdf.salt, sizeof(a->kdf.salt));
}

/* Makes next's persisted fields t's, once they are on disk (or read from
 * it). A token initialised anew moves its generation on, so that no key
 * of the old one is used from a cache. What changed: RHD_TOKEN_ANEW,
 * RHD_TOKEN_PIN_CHANGED. */
static int adopt(rhd_token_t *t, const rhd_token_t *next)
{
	pthread_mutex_lock(&t->lock);
	int anew =
		t->state != next->state || t->incarnation != next->incarnation;
	int changed = (anew ? RHD_TOKEN_ANEW : 0) |
		      (same_wrap(&t->so, &next->so) &&
				       same_wrap(&t->user, &next->user)
			       ? 0
			       : RHD_TOKEN_PIN_CHANGED);
	t->state = next->state;
	memcpy(t->label, next->label, RHD_LABEL_LEN);
	t->so = next->so;
	t->user = next->user;
	t->so_failures = next->so_failures;
	t->user_failures = next->user_failures;
	t->incarnation = next->incarnation;
	t->generation += (uint64_t)anew;
	pthread_mutex_unlock(&t->lock);
	return changed;
}

/* A copy of t to change and persist; the caller holds t->write_lock. */
static rhd_token_t copy_of(rhd_token_t *t)
{
	pthread_mutex_lock(&t->lock);
	rhd_token_t copy = *t;
	pthread_mutex_unlock(&t->lock);
	return copy;
}

static void unavailable(rhd_token_t *t, const char *why)
{
	t->state = RHD_TOKEN_UNAVAILABLE;
	RHD_ERROR("event=token-unavailable slot=%u row=tokens/%u reason=\"%s\"",
		  t->slot, t->slot, why);
}

static void from_record(rhd_token_t *t, const Remhsm__Store__TokenRecord *rec)
{
	memcpy(t->label, rec->label.data, RHD_LABEL_LEN);
	wrap_from_record(&t->so, rec->so);
	wrap_from_record(&t->user, rec->user);
	t->so_failures = rec->so_failures;
	t->user_failures = rec->user_failures;
	t->incarnation = rec->incarnation;
	t->state = t->so.set ? RHD_TOKEN_READY : RHD_TOKEN_UNAVAILABLE;
}

/* t's persisted fields (its others kept) as its record in the store has
 * them now; a record that does not open or decode makes the token
 * unavailable, said in the log. A store that cannot be read is its error
 * (RHS_*), t then half filled: not to be adopted. */
static int read_token(rhd_tokens_t *tokens, rhd_token_t *t)
{
	memset(t->label, ' ', RHD_LABEL_LEN);
	memset(&t->so, 0, sizeof(t->so));
	memset(&t->user, 0, sizeof(t->user));
	t->so_failures = t->user_failures = 0;
	t->incarnation = 0;
	if (rhs_token_damaged(tokens->store, t->slot)) {
		unavailable(t, "the token's rows do not add up: one was put "
			       "back from an older copy, removed, added, moved "
			       "or edited outside remhsmd (remhsm store check "
			       "says more)");
		return RHS_OK;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = rhs_token_get(tokens->store, t->slot, &buf, &len);
	t->state = RHD_TOKEN_BLANK;
	if (rc == RHS_ENOTFOUND)
		return RHS_OK;
	if (rc == RHS_ECORRUPT || rc == RHS_ECHANGED) {
		unavailable(t, rhs_strerror(rc));
		return RHS_OK;
	}
	if (rc < 0)
		return rc;
	Remhsm__Store__TokenRecord *rec =
		remhsm__store__token_record__unpack(NULL, len, buf);
	rhs_free(buf, len);
	if (rec && rec->label.len == RHD_LABEL_LEN)
		from_record(t, rec);
	else
		unavailable(t, "record does not decode");
	if (rec)
		remhsm__store__token_record__free_unpacked(rec, NULL);
	return RHS_OK;
}

int rhd_tokens_load(rhd_tokens_t *tokens, unsigned count, rhs_store_t *store,
		    const rhd_token_policy_t *policy)
{
	memset(tokens, 0, sizeof(*tokens));
	if (count > RHD_MAX_SLOTS)
		return -1;
	tokens->count = count;
	tokens->store = store;
	tokens->policy = *policy;
	for (unsigned i = 0; i < count; i++) {
		rhd_token_t *t = &tokens->slot[i];
		pthread_mutex_init(&t->write_lock, NULL);
		pthread_mutex_init(&t->lock, NULL);
		t->slot = i;
		int rc = read_token(tokens, t);
		if (rc < 0)
			unavailable(t, rhs_strerror(rc));
	}
	return 0;
}

void rhd_tokens_cleanup(rhd_tokens_t *tokens)
{
	for (unsigned i = 0; i < tokens->count; i++) {
		pthread_mutex_destroy(&tokens->slot[i].lock);
		pthread_mutex_destroy(&tokens->slot[i].write_lock);
	}
	OPENSSL_cleanse(tokens, sizeof(*tokens));
}

/* --- PINs ---------------------------------------------------------------- */

int rhd_pin_len_ok(size_t len)
{
	return len >= RHD_MIN_PIN_LEN && len <= RHD_MAX_PIN_LEN;
}

typedef struct pin_aad {
	uint8_t bytes[16];
} pin_aad_t;

/* Binds a wrapped token key to its slot and role. */
static pin_aad_t pin_aad(uint32_t slot, CK_USER_TYPE role)
{
	pin_aad_t a = {{'r', 'e', 'm', 'h', 's', 'm', ' ', 'p', 'i', 'n',
			(uint8_t)(slot >> 24), (uint8_t)(slot >> 16),
			(uint8_t)(slot >> 8), (uint8_t)slot,
			(uint8_t)(role == CKU_SO ? 'S' : 'U'), 0}};
	return a;
}

static CK_RV wrap_key(const rhd_token_policy_t *policy, uint32_t slot,
		      CK_USER_TYPE role, const uint8_t key[RHS_KEY_LEN],
		      const uint8_t *pin, size_t pin_len, rhd_pin_wrap_t *out)
{
	memset(out, 0, sizeof(*out));
	out->kdf.n = policy->kdf_n;
	out->kdf.r = policy->kdf_r;
	out->kdf.p = policy->kdf_p;
	if (rhd_crypto_random(out->kdf.salt, sizeof(out->kdf.salt)) != CKR_OK)
		return CKR_DEVICE_ERROR;
	uint8_t kek[RHS_KEY_LEN];
	pin_aad_t aad = pin_aad(slot, role);
	int rc = rhs_kdf(&out->kdf, pin, pin_len, kek);
	if (rc == RHS_OK)
		rc = rhs_seal(kek, aad.bytes, sizeof(aad.bytes), key,
			      RHS_KEY_LEN, out->wrapped);
	OPENSSL_cleanse(kek, sizeof(kek));
	out->set = rc == RHS_OK;
	return rc == RHS_OK ? CKR_OK : CKR_DEVICE_ERROR;
}

static int unwrap_key(uint32_t slot, CK_USER_TYPE role, const rhd_pin_wrap_t *w,
		      const uint8_t *pin, size_t pin_len,
		      uint8_t key[RHS_KEY_LEN])
{
	uint8_t kek[RHS_KEY_LEN];
	pin_aad_t aad = pin_aad(slot, role);
	int rc = rhs_kdf(&w->kdf, pin, pin_len, kek);
	if (rc == RHS_OK)
		rc = rhs_unseal(kek, aad.bytes, sizeof(aad.bytes), w->wrapped,
				RHD_WRAPPED_LEN, key);
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}

static unsigned *failures_of(rhd_token_t *t, CK_USER_TYPE role)
{
	return role == CKU_SO ? &t->so_failures : &t->user_failures;
}

static rhd_pin_wrap_t *wrap_of(rhd_token_t *t, CK_USER_TYPE role)
{
	return role == CKU_SO ? &t->so : &t->user;
}

/* What stands in the way of checking role's PIN, under t->lock. */
static CK_RV pin_checkable(const rhd_tokens_t *tokens, rhd_token_t *t,
			   CK_USER_TYPE role)
{
	if (t->state == RHD_TOKEN_UNAVAILABLE)
		return CKR_TOKEN_NOT_RECOGNIZED;
	if (t->state == RHD_TOKEN_BLANK || !wrap_of(t, role)->set)
		return CKR_USER_PIN_NOT_INITIALIZED;
	if (*failures_of(t, role) >= tokens->policy.max_failures)
		return CKR_PIN_LOCKED;
	return CKR_OK;
}

/* A store transaction, and next (a copy of t) made what the store holds
 * now, which is t's from then on: another remhsmd sharing the store may
 * have written the record since this one read it. The caller holds
 * t->write_lock; on CKR_OK it ends the transaction with finish. */
static CK_RV begin_fresh(rhd_tokens_t *tokens, rhd_token_t *t,
			 rhd_token_t *next)
{
	int rc = rhs_begin(tokens->store);
	if (rc == RHS_OK && (rc = read_token(tokens, next)) < 0)
		rhs_rollback(tokens->store);
	if (rc < 0)
		return rhd_store_failed("token-read", t->slot, rc);
	adopt(t, next);
	return CKR_OK;
}

/* Commits what was written since begin_fresh when rv is CKR_OK, and then
 * makes next t's; rolls back otherwise. */
static CK_RV finish(rhd_tokens_t *tokens, rhd_token_t *t, rhd_token_t *next,
		    CK_RV rv)
{
	if (rv != CKR_OK) {
		rhs_rollback(tokens->store);
		return rv;
	}
	int rc = rhs_commit(tokens->store);
	if (rc < 0)
		return rhd_store_failed("token-write", t->slot, rc);
	adopt(t, next);
	return CKR_OK;
}

/* What a change of the record makes of next, the token as the store
 * holds it: CKR_OK to write it, else the refusal (nothing written). */
typedef CK_RV (*change_fn)(rhd_tokens_t *tokens, rhd_token_t *next, void *arg);

/* Reads, changes and writes t's record in one transaction. */
static CK_RV rewrite(rhd_tokens_t *tokens, rhd_token_t *t, change_fn change,
		     void *arg)
{
	pthread_mutex_lock(&t->write_lock);
	rhd_token_t next = copy_of(t);
	CK_RV rv = begin_fresh(tokens, t, &next);
	if (rv == CKR_OK) {
		rv = change(tokens, &next, arg);
		if (rv == CKR_OK)
			rv = write_record(tokens, t, &next);
		rv = finish(tokens, t, &next, rv);
	}
	pthread_mutex_unlock(&t->write_lock);
	OPENSSL_cleanse(&next, sizeof(next));
	return rv;
}

typedef struct attempt {
	CK_USER_TYPE role;
	rhd_pin_wrap_t *wrap; /* counting: out; clearing: the one checked */
	unsigned failures;
	const rhd_pin_wrap_t *fresh; /* setting a PIN */
} attempt_t;

static CK_RV count_one(rhd_tokens_t *tokens, rhd_token_t *next, void *arg)
{
	attempt_t *a = arg;
	CK_RV rv = pin_checkable(tokens, next, a->role);
	if (rv == CKR_OK) {
		*a->wrap = *wrap_of(next, a->role);
		a->failures = ++*failures_of(next, a->role);
	}
	return rv;
}

/* A correct PIN clears role's count, unless the PIN was changed since
 * the wrap checked was read: the old one no longer counts. */
static CK_RV clear_count(rhd_tokens_t *tokens, rhd_token_t *next, void *arg)
{
	attempt_t *a = arg;
	CK_RV rv = pin_checkable(tokens, next, a->role);
	if (rv != CKR_OK && rv != CKR_PIN_LOCKED)
		return rv;
	if (memcmp(a->wrap->kdf.salt, wrap_of(next, a->role)->kdf.salt,
		   sizeof(a->wrap->kdf.salt)) != 0)
		return CKR_PIN_INCORRECT;
	*failures_of(next, a->role) = 0;
	return CKR_OK;
}

static CK_RV set_wrap(rhd_tokens_t *tokens, rhd_token_t *next, void *arg)
{
	(void)tokens;
	attempt_t *a = arg;
	*wrap_of(next, a->role) = *a->fresh;
	*failures_of(next, a->role) = 0;
	return CKR_OK;
}

/* The PIN check, and the wrap it was checked against in *checked. */
static CK_RV verify_pin(rhd_tokens_t *tokens, rhd_token_t *t, CK_USER_TYPE role,
			const uint8_t *pin, size_t pin_len,
			uint8_t token_key[RHS_KEY_LEN], rhd_pin_wrap_t *checked)
{
	/* Counted before it is checked, in one transaction with reading the
	 * record: attempts through every remhsmd of a store count against
	 * one counter, and an attempt whose check never ends (a crash in the
	 * KDF) still counts. */
	attempt_t a = {.role = role, .wrap = checked};
	CK_RV rv = rewrite(tokens, t, count_one, &a);
	if (rv != CKR_OK)
		return rv;
	/* The slow part runs unlocked, so the token keeps answering. */
	if (unwrap_key(t->slot, role, checked, pin, pin_len, token_key) ==
	    RHS_OK) {
		rv = rewrite(tokens, t, clear_count, &a);
	} else {
		RHD_WARN("event=pin-incorrect slot=%u role=%s failures=%u",
			 t->slot, role == CKU_SO ? "so" : "user", a.failures);
		rv = CKR_PIN_INCORRECT;
	}
	if (rv != CKR_OK)
		OPENSSL_cleanse(token_key, RHS_KEY_LEN);
	return rv;
}

CK_RV rhd_token_verify_pin(rhd_tokens_t *tokens, rhd_token_t *t,
			   CK_USER_TYPE role, const uint8_t *pin,
			   size_t pin_len, uint8_t token_key[RHS_KEY_LEN])
{
	rhd_pin_wrap_t checked;
	CK_RV rv =
		verify_pin(tokens, t, role, pin, pin_len, token_key, &checked);
	OPENSSL_cleanse(&checked, sizeof(checked));
	return rv;
}

CK_RV rhd_token_set_pin(rhd_tokens_t *tokens, rhd_token_t *t, CK_USER_TYPE role,
			const uint8_t token_key[RHS_KEY_LEN],
			const uint8_t *pin, size_t pin_len)
{
	if (!rhd_pin_len_ok(pin_len))
		return CKR_PIN_LEN_RANGE;
	rhd_pin_wrap_t fresh;
	CK_RV rv = wrap_key(&tokens->policy, t->slot, role, token_key, pin,
			    pin_len, &fresh);
	if (rv != CKR_OK)
		return rv;
	attempt_t a = {.role = role, .fresh = &fresh};
	rv = rewrite(tokens, t, set_wrap, &a);
	OPENSSL_cleanse(&fresh, sizeof(fresh));
	return rv;
}

int rhd_token_refresh(rhd_tokens_t *tokens, rhd_token_t *t)
{
	pthread_mutex_lock(&t->write_lock);
	rhd_token_t next = copy_of(t);
	int rc = read_token(tokens, &next);
	if (rc < 0)
		(void)rhd_store_failed("token-read", t->slot, rc);
	else
		rc = adopt(t, &next);
	pthread_mutex_unlock(&t->write_lock);
	OPENSSL_cleanse(&next, sizeof(next));
	return rc;
}

/* --- initialisation --------------------------------------------------------
 */

/* Another remhsmd initialised the token between this one's look at it
 * and its write: the initialisation starts again from what it is now. */
#define INIT_AGAIN CKR_VENDOR_DEFINED

/* The token is as the initialisation found it: blank (was NULL), or
 * initialised with the SO PIN wrap it checked. */
static int as_found(const rhd_token_t *t, const rhd_pin_wrap_t *was)
{
	if (!was)
		return t->state == RHD_TOKEN_BLANK;
	return t->state == RHD_TOKEN_READY &&
	       !memcmp(t->so.kdf.salt, was->kdf.salt, sizeof(was->kdf.salt));
}

/* The caller holds t->write_lock. A session another application opens
 * while the store is written comes after the initialisation: it finds the
 * new token when this returns. Wipe and rewrite are one transaction, with
 * the record read first: a crash leaves the old token or the new one,
 * and of two remhsmd initialising one token at once, the second finds the
 * first's. */
static CK_RV init_ready(rhd_tokens_t *tokens, rhd_token_t *t,
			const uint8_t *label, const rhd_pin_wrap_t *so,
			const rhd_pin_wrap_t *was)
{
	rhd_token_t next = copy_of(t);
	if (next.sessions)
		return CKR_SESSION_EXISTS;
	CK_RV rv = begin_fresh(tokens, t, &next);
	if (rv != CKR_OK)
		return rv;
	if (!as_found(&next, was))
		rv = INIT_AGAIN;
	int rc = rv == CKR_OK ? rhs_token_wipe(tokens->store, t->slot) : 0;
	if (rc < 0)
		rv = rhd_store_failed("token-init", t->slot, rc);
	if (rv == CKR_OK) {
		memcpy(next.label, label, RHD_LABEL_LEN);
		next.so = *so;
		memset(&next.user, 0, sizeof(next.user));
		next.so_failures = next.user_failures = 0;
		next.state = RHD_TOKEN_READY;
		rv = rhd_crypto_random((uint8_t *)&next.incarnation,
				       sizeof(next.incarnation));
	}
	if (rv == CKR_OK)
		rv = write_record(tokens, t, &next);
	rv = finish(tokens, t, &next, rv);
	OPENSSL_cleanse(&next, sizeof(next));
	return rv;
}

static CK_RV init_once(rhd_tokens_t *tokens, rhd_token_t *t,
		       const uint8_t *so_pin, size_t pin_len,
		       const uint8_t *label)
{
	pthread_mutex_lock(&t->lock);
	rhd_token_state_t state = t->state;
	CK_RV rv = t->sessions			    ? CKR_SESSION_EXISTS
		   : state == RHD_TOKEN_UNAVAILABLE ? CKR_TOKEN_NOT_RECOGNIZED
						    : CKR_OK;
	pthread_mutex_unlock(&t->lock);
	uint8_t key[RHS_KEY_LEN];
	rhd_pin_wrap_t was, so;
	if (rv == CKR_OK && state == RHD_TOKEN_READY)
		rv = verify_pin(tokens, t, CKU_SO, so_pin, pin_len, key, &was);
	if (rv == CKR_OK)
		rv = rhd_crypto_secret_random(key, sizeof(key));
	if (rv == CKR_OK)
		rv = wrap_key(&tokens->policy, t->slot, CKU_SO, key, so_pin,
			      pin_len, &so);
	OPENSSL_cleanse(key, sizeof(key));
	if (rv == CKR_OK) {
		pthread_mutex_lock(&t->write_lock);
		rv = init_ready(tokens, t, label, &so,
				state == RHD_TOKEN_READY ? &was : NULL);
		pthread_mutex_unlock(&t->write_lock);
	}
	OPENSSL_cleanse(&was, sizeof(was));
	OPENSSL_cleanse(&so, sizeof(so));
	return rv;
}

CK_RV rhd_token_init(rhd_tokens_t *tokens, rhd_token_t *t,
		     const uint8_t *so_pin, size_t pin_len,
		     const uint8_t *label, size_t label_len)
{
	if (!rhd_pin_len_ok(pin_len))
		return CKR_PIN_LEN_RANGE;
	if (label_len > RHD_LABEL_LEN)
		return CKR_ARGUMENTS_BAD;
	uint8_t padded[RHD_LABEL_LEN];
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, label_len);
	/* Once more when another remhsmd initialised the token meanwhile:
	 * then it is checked against that one's SO PIN. */
	CK_RV rv = init_once(tokens, t, so_pin, pin_len, padded);
	if (rv == INIT_AGAIN)
		rv = init_once(tokens, t, so_pin, pin_len, padded);
	return rv == INIT_AGAIN ? CKR_FUNCTION_FAILED : rv;
}

/* Both counters only grow, so their sum moves whenever either does. */
uint64_t rhd_token_object_version(rhd_token_t *t, uint64_t store_id)
{
	pthread_mutex_lock(&t->lock);
	uint64_t v = t->generation + t->stripe[store_id % RHD_OBJECT_STRIPES];
	pthread_mutex_unlock(&t->lock);
	return v;
}

void rhd_token_gone(rhd_token_t *t)
{
	pthread_mutex_lock(&t->lock);
	t->generation++;
	pthread_mutex_unlock(&t->lock);
}

void rhd_token_object_changed(rhd_token_t *t, uint64_t store_id)
{
	pthread_mutex_lock(&t->lock);
	t->stripe[store_id % RHD_OBJECT_STRIPES]++;
	pthread_mutex_unlock(&t->lock);
}

CK_FLAGS rhd_token_flags(const rhd_tokens_t *tokens, const rhd_token_t *t)
{
	CK_FLAGS flags = CKF_RNG;
	if (t->state != RHD_TOKEN_READY)
		return flags;
	flags |= CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED;
	if (t->user.set)
		flags |= CKF_USER_PIN_INITIALIZED;
	unsigned max = tokens->policy.max_failures;
	if (t->user_failures)
		flags |= CKF_USER_PIN_COUNT_LOW;
	if (t->user_failures + 1 == max)
		flags |= CKF_USER_PIN_FINAL_TRY;
	if (t->user_failures >= max)
		flags |= CKF_USER_PIN_LOCKED;
	if (t->so_failures)
		flags |= CKF_SO_PIN_COUNT_LOW;
	if (t->so_failures + 1 == max)
		flags |= CKF_SO_PIN_FINAL_TRY;
	if (t->so_failures >= max)
		flags |= CKF_SO_PIN_LOCKED;
	return flags;
}
