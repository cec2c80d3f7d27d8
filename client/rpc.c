#include "rpc.h"

#include <limits.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "known.h"
#include "rh_calls.h"
#include "rh_decode.h"
#include "rh_err.h"
#include "rh_frame.h"
#include "rh_tls.h"
#include "shield.h"

#define APP_ID_LEN 16
#define MAX_IDLE_LINKS 64
/* The largest frame the daemon can be configured for; a Hello offering more
 * is not believed, so no header can make the client allocate beyond it. */
#define MAX_FRAME_BELIEVED (64u << 20)

typedef struct pooled {
	struct pooled *next;
	rhc_link_t *link;
	uint32_t max_frame;
	unsigned generation; /* of the C_Initialize that opened it */
} pooled_t;

/* Everything one C_Initialize owns. */
static struct {
	pthread_mutex_t transition; /* serialises C_Initialize/C_Finalize */
	_Atomic int initialized;
	/* Counts C_Initialize calls: a link opened before a C_Finalize that
	 * ran while it was in use is closed, not pooled. */
	_Atomic unsigned generation;
	pid_t pid;
	rhc_config_t cfg;
	const rhc_transport_t *transport;
	SSL_CTX *tls;
	uint8_t app_id[APP_ID_LEN];
	_Atomic uint64_t next_id;
	rhc_lock_ops_t app_lock;
	int use_app_lock;
	void *app_mutex;
	/* Never destroyed: a call still running when C_Finalize returns may
	 * take it. */
	pthread_mutex_t os_mutex;
	pooled_t *idle;
	unsigned idle_count;
	_Atomic uint32_t max_frame; /* the daemon's, from Hello */
} st = {.transition = PTHREAD_MUTEX_INITIALIZER,
	.os_mutex = PTHREAD_MUTEX_INITIALIZER,
	.max_frame = RH_FRAME_DEFAULT_MAX};

/* The link this thread is using for a call, for rhc_abandoned. */
static _Thread_local pooled_t *in_hand;

/* The pool lock is held only to move a link in or out of the idle list,
 * never across network I/O. */
static void pool_lock(void)
{
	rhc_hold_begin();
	if (st.use_app_lock)
		st.app_lock.lock(st.app_mutex);
	else
		pthread_mutex_lock(&st.os_mutex);
}

static void pool_unlock(void)
{
	if (st.use_app_lock)
		st.app_lock.unlock(st.app_mutex);
	else
		pthread_mutex_unlock(&st.os_mutex);
	rhc_hold_end();
}

static void transition_lock(void)
{
	rhc_hold_begin();
	pthread_mutex_lock(&st.transition);
}

static void transition_unlock(void)
{
	pthread_mutex_unlock(&st.transition);
	rhc_hold_end();
}

void rhc_lock(void)
{
	pool_lock();
}

void rhc_unlock(void)
{
	pool_unlock();
}

static void drop_in_hand(void)
{
	st.transport->abandon();
	pooled_t *p = in_hand;
	in_hand = NULL;
	if (p) {
		st.transport->close(p->link, 0);
		free(p);
	}
}

/*
 * Calls of other threads may still be running (the specification leaves
 * that undefined; a FreeRTOS task may finalise while others sign): they
 * keep their links and their reference to the TLS context, and close the
 * links when they end. The application's mutex is destroyed only when no
 * call can take it any more.
 */
static void release_state(int graceful)
{
	atomic_store(&st.initialized, 0);
	pool_lock();
	atomic_fetch_add(&st.generation, 1);
	pooled_t *p = st.idle;
	st.idle = NULL;
	st.idle_count = 0;
	SSL_CTX *tls = st.tls;
	st.tls = NULL;
	pool_unlock();
	while (p) {
		pooled_t *next = p->next;
		st.transport->close(p->link, graceful);
		free(p);
		p = next;
	}
	SSL_CTX_free(tls);
	if (st.use_app_lock && rhc_entries_running() <= 1)
		st.app_lock.destroy(st.app_mutex);
	else if (st.use_app_lock)
		rhc_debug("C_Finalize while other calls run: the application's "
			  "mutex is left to them");
}

static rhc_rv_t setup_lock(const rhc_lock_ops_t *lock_ops)
{
	st.use_app_lock = lock_ops != NULL;
	if (lock_ops) {
		st.app_lock = *lock_ops;
		return lock_ops->create(&st.app_mutex);
	}
	return CKR_OK;
}

static rhc_rv_t setup_tls(void)
{
	char err[512];
	if (rhc_config_load(&st.cfg, err, sizeof(err)) < 0) {
		rhc_set_debug(st.cfg.debug);
		rhc_debug("configuration: %s", err);
		return CKR_GENERAL_ERROR;
	}
	rhc_set_debug(st.cfg.debug);
	rh_tls_files_t files = {st.cfg.ca, st.cfg.cert, st.cfg.key};
	st.tls = rh_tls_client_ctx_new(&files, err, sizeof(err));
	if (!st.tls) {
		rhc_debug("TLS setup: %s", err);
		return CKR_GENERAL_ERROR;
	}
	return CKR_OK;
}

rhc_rv_t rhc_initialize(const rhc_lock_ops_t *lock_ops)
{
	transition_lock();
	rhc_rv_t rv = CKR_OK;
	if (atomic_load(&st.initialized) && st.pid == getpid()) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}
	/* A forked child inherits the parent's links: let them go without a
	 * word on the wire, the parent still uses them. It is alone, but the
	 * pool lock may have been held by a thread of the parent. */
	if (atomic_load(&st.initialized)) {
		pthread_mutex_init(&st.os_mutex, NULL);
		release_state(0);
	}
	st.transport = &rhc_tls_transport;
	rhc_on_abandoned(drop_in_hand);
	rv = setup_tls();
	if (rv == CKR_OK)
		rhc_servers_start(&st.cfg);
	if (rv == CKR_OK && RAND_bytes(st.app_id, sizeof(st.app_id)) != 1)
		rv = CKR_FUNCTION_FAILED;
	if (rv == CKR_OK)
		rv = setup_lock(lock_ops);
	if (rv != CKR_OK) {
		SSL_CTX_free(st.tls);
		st.tls = NULL;
		goto out;
	}
	st.pid = getpid();
	atomic_store(&st.initialized, 1);
out:
	transition_unlock();
	return rv;
}

rhc_rv_t rhc_finalize(void)
{
	transition_lock();
	rhc_rv_t rv = rhc_ready();
	if (rv == CKR_OK)
		release_state(1);
	transition_unlock();
	return rv;
}

int rhc_compat_freertos(void)
{
	return st.cfg.compat_freertos;
}

size_t rhc_max_payload(void)
{
	/* Half the daemon's frame: room for the request around the data. */
	return st.max_frame / 2;
}

rhc_rv_t rhc_ready(void)
{
	return atomic_load(&st.initialized) && st.pid == getpid()
		       ? CKR_OK
		       : CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* --- one round trip ------------------------------------------------------ */

/* One round trip on p; *sent (when given) says whether the request left in
 * full, so that the daemon may have run it. */
static int exchange(pooled_t *p, const Remhsm__Request *req,
		    Remhsm__Response **resp, int *sent)
{
	uint8_t *frame = NULL, *payload = NULL;
	size_t frame_len = 0, payload_len = 0;
	/* A frame over the daemon's maximum would cost the connection, and
	 * with it the application's sessions: refuse it here. */
	if (protobuf_c_message_get_packed_size(&req->base) > p->max_frame)
		return RH_EFRAME_TOO_LARGE;
	int r = rh_frame_pack(&req->base, &frame, &frame_len);
	if (r < 0)
		return r;
	r = st.transport->send(p->link, frame, frame_len,
			       st.cfg.call_timeout_ms);
	OPENSSL_cleanse(frame, frame_len); /* may hold a PIN */
	free(frame);
	if (sent)
		*sent = r == RH_OK;
	if (r == RH_OK) {
		r = st.transport->receive(p->link, p->max_frame, &payload,
					  &payload_len, st.cfg.call_timeout_ms);
		/* An answer over the agreed maximum is the daemon's fault and
		 * leaves the link mid-frame: not the caller's data too long. */
		if (r == RH_EFRAME_TOO_LARGE)
			r = RH_EPROTO;
	}
	if (r < 0)
		return r;
	*resp = (Remhsm__Response *)rh_decode(&remhsm__response__descriptor,
					      payload, payload_len, &r);
	OPENSSL_cleanse(payload, payload_len);
	free(payload);
	if (!*resp)
		return r;
	if ((*resp)->id != req->id) {
		rh_free_wiped(&(*resp)->base);
		*resp = NULL;
		return RH_EPROTO;
	}
	return RH_OK;
}

/* Hello (or, probe, the question before it) on p: its answer in *resp. */
static int hello_exchange(pooled_t *p, int probe, Remhsm__Response **resp)
{
	uint32_t versions[] = {RH_PROTOCOL_VERSION};
	Remhsm__HelloReq hello = REMHSM__HELLO_REQ__INIT;
	hello.n_versions = 1;
	hello.versions = versions;
	hello.app_id = (ProtobufCBinaryData){sizeof(st.app_id), st.app_id};
	hello.client_name = (char *)"libremhsm-pkcs11";
	hello.compat = (char *)(st.cfg.compat_freertos ? "freertos" : "");
	hello.probe = probe != 0;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = atomic_fetch_add(&st.next_id, 1);
	req.call_case = REMHSM__REQUEST__CALL_HELLO;
	req.hello = &hello;
	int r = exchange(p, &req, resp, NULL);
	if (r == RH_OK &&
	    ((*resp)->rv != CKR_OK ||
	     (*resp)->result_case != REMHSM__RESPONSE__RESULT_HELLO ||
	     (*resp)->hello->version != RH_PROTOCOL_VERSION)) {
		rh_free_wiped(&(*resp)->base);
		r = RH_EVERSION;
	}
	return r;
}

static int say_hello(pooled_t *p)
{
	Remhsm__Response *resp = NULL;
	int r = hello_exchange(p, 0, &resp);
	if (r < 0)
		return r;
	if (resp->hello->max_frame >= 1024) {
		uint32_t max = resp->hello->max_frame;
		p->max_frame =
			max < MAX_FRAME_BELIEVED ? max : MAX_FRAME_BELIEVED;
		st.max_frame = p->max_frame;
	}
	rh_free_wiped(&resp->base);
	return r;
}

/* For the transport choosing the least busy daemon. A daemon that took the
 * probe for a Hello cannot be told (and its link can carry no other). */
static int ask_load(rhc_link_t *link, uint32_t *load)
{
	pooled_t probe = {.link = link, .max_frame = RH_FRAME_DEFAULT_MAX};
	Remhsm__Response *resp = NULL;
	int r = hello_exchange(&probe, 1, &resp);
	if (r < 0)
		return r;
	if (!resp->hello->probed)
		r = RH_EVERSION;
	*load = resp->hello->connections;
	rh_free_wiped(&resp->base);
	return r;
}

/*
 * A new connection may reach a daemon that restarted, or that let the
 * application go when its last connection dropped: before any call, it
 * recreates the sessions the client holds, under the same handles, and
 * redeems the login leases. Idempotent, so every new connection does it.
 */
static int restore(pooled_t *p)
{
	Remhsm__RestoreReq body = REMHSM__RESTORE_REQ__INIT;
	rh_arena_t arena = RH_ARENA_INIT;
	int n = rhc_restore_request(&body, &arena);
	if (n <= 0) {
		rh_arena_cleanup(&arena);
		return n < 0 ? RH_ENOMEM : RH_OK;
	}
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = atomic_fetch_add(&st.next_id, 1);
	req.call_case = REMHSM__REQUEST__CALL_RESTORE;
	req.restore = &body;
	Remhsm__Response *resp = NULL;
	int r = exchange(p, &req, &resp, NULL);
	rh_arena_cleanup(&arena);
	if (r < 0)
		return r;
	/* The result is a union: another kind of answer is no RestoreResp. */
	if (resp->rv != CKR_OK ||
	    resp->result_case != REMHSM__RESPONSE__RESULT_RESTORE)
		r = RH_EPROTO;
	else if (resp->restore->n_lost_sessions || resp->restore->n_lost_logins)
		rhc_debug("restore: %zu session(s) and %zu login(s) lost",
			  resp->restore->n_lost_sessions,
			  resp->restore->n_lost_logins);
	if (r == RH_OK)
		rhc_restore_lost(resp->restore);
	rh_free_wiped(&resp->base);
	return r;
}

/* An idle link, or else (in *tls) a reference to the TLS context to open
 * one with, and the generation it belongs to; neither once C_Finalize has
 * begun. */
static pooled_t *take_idle(SSL_CTX **tls, unsigned *generation)
{
	pool_lock();
	pooled_t *p = st.idle;
	if (p) {
		st.idle = p->next;
		st.idle_count--;
	} else if (st.tls && SSL_CTX_up_ref(st.tls) == 1) {
		*tls = st.tls;
		*generation = atomic_load(&st.generation);
	}
	pool_unlock();
	return p;
}

static pooled_t *link_open(SSL_CTX *tls, unsigned generation)
{
	pooled_t *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->max_frame = RH_FRAME_DEFAULT_MAX;
	p->generation = generation;
	int r = st.transport->connect(&st.cfg, tls, ask_load, &p->link);
	if (r == RH_OK) {
		in_hand = p;
		r = say_hello(p);
		if (r == RH_OK)
			r = restore(p);
		in_hand = NULL;
		if (r < 0) {
			rhc_debug("hello to %s failed: %s", st.cfg.server,
				  rh_strerror(r));
			st.transport->close(p->link, 0);
		}
	}
	if (r < 0) {
		free(p);
		return NULL;
	}
	return p;
}

/* An idle link, or a new one; links the daemon closed meanwhile (restart,
 * idle timeout) are dropped here rather than failing the call. */
static pooled_t *link_acquire(void)
{
	pooled_t *p;
	SSL_CTX *tls = NULL;
	unsigned generation = 0;
	while ((p = take_idle(&tls, &generation)) != NULL) {
		if (st.transport->check_idle(p->link) == RH_OK)
			return p;
		st.transport->close(p->link, 0);
		free(p);
	}
	if (!tls)
		return NULL;
	p = link_open(tls, generation);
	SSL_CTX_free(tls);
	return p;
}

static void link_release(pooled_t *p, int healthy)
{
	if (healthy) {
		pool_lock();
		if (st.idle_count < MAX_IDLE_LINKS &&
		    p->generation == atomic_load(&st.generation)) {
			p->next = st.idle;
			st.idle = p;
			st.idle_count++;
			p = NULL;
		}
		pool_unlock();
	}
	if (p) {
		st.transport->close(p->link, healthy);
		free(p);
	}
}

static int result_matches(const Remhsm__Request *req,
			  const Remhsm__Response *resp)
{
	return resp->result_case == REMHSM__RESPONSE__RESULT__NOT_SET ||
	       (unsigned)resp->result_case == (unsigned)req->call_case;
}

/* The link broke (closed, reset, TLS failure), as opposed to a daemon that
 * answered badly or too slowly. */
static int link_broke(int r)
{
	return r == RH_ECLOSED || r == RH_EIO || r == RH_ETLS;
}

/* Waits ms, through any signal the application takes meanwhile. */
static void pause_ms(int64_t ms)
{
	int64_t until = rhc_now_ms() + ms;
	rhc_wait_begin();
	for (int64_t left = ms; left > 0; left = until - rhc_now_ms())
		poll(NULL, 0, (int)left);
	rhc_wait_end();
}

/* One request on some link, again on a new one while the daemon is away
 * (restarting, or the link dropped) for up to reconnect_timeout_ms: a
 * request that was never sent, or is replayable, cannot tell. */
static int exchange_retrying(Remhsm__Request *req, Remhsm__Response **resp)
{
	/* Only an application with sessions to keep waits for the daemon;
	 * one that has none learns at once that it is unreachable. */
	int patient = rhc_holds_sessions();
	int64_t deadline =
		rhc_now_ms() + (patient ? st.cfg.reconnect_timeout_ms : 0);
	int64_t backoff = 10;
	for (int attempt = 0;; attempt++) {
		pooled_t *p = link_acquire();
		int r = RH_EIO, sent = 0;
		if (p) {
			in_hand = p;
			r = exchange(p, req, resp, &sent);
			in_hand = NULL;
			link_release(p, r == RH_OK || r == RH_EFRAME_TOO_LARGE);
		}
		int again =
			p ? link_broke(r) && (!sent || rh_call_replayable(req))
			  : patient && rhc_ready() == CKR_OK;
		if (!again || (attempt > 0 && rhc_now_ms() >= deadline))
			return r;
		if (!p) {
			pause_ms(backoff);
			backoff = backoff < 250 ? backoff * 2 : 500;
		}
	}
}

rhc_rv_t rhc_call(Remhsm__Request *req, Remhsm__Response **resp)
{
	*resp = NULL;
	rhc_rv_t rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	req->id = atomic_fetch_add(&st.next_id, 1);
	int r = exchange_retrying(req, resp);
	if (r < 0) {
		rhc_debug("%s: %s", rh_call_name((unsigned)req->call_case),
			  rh_strerror(r));
		return r == RH_ENOMEM		  ? CKR_HOST_MEMORY
		       : r == RH_EFRAME_TOO_LARGE ? CKR_DATA_LEN_RANGE
						  : CKR_DEVICE_ERROR;
	}
	/* A code a 32-bit CK_RV cannot hold must not wrap round to CKR_OK. */
	if (!result_matches(req, *resp) || (*resp)->rv > ULONG_MAX) {
		rh_free_wiped(&(*resp)->base);
		*resp = NULL;
		return CKR_DEVICE_ERROR;
	}
	return (rhc_rv_t)(*resp)->rv;
}
