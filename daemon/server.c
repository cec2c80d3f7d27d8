#include "server.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <uv.h>

#include "access.h"
#include "dispatch.h"
#include "frontend.h"
#include "idcount.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "pool.h"
#include "rh_calls.h"
#include "rh_decode.h"
#include "rh_frame.h"
#include "rh_tls.h"

#define container_of(ptr, type, member)                                        \
	((type *)((char *)(ptr)-offsetof(type, member)))

#define READ_CHUNK 16384
#define KEEPALIVE_DELAY_S 60
/* The kernel's queue of connections not yet accepted: deep enough that a
 * flood of sockets from one peer does not drop the others' SYNs while the
 * loop catches up (the kernel caps it at net.core.somaxconn). */
#define LISTEN_BACKLOG 4096
#define ACCEPTS_PER_TURN 16

typedef struct server server_t;
typedef struct loop loop_t;
typedef struct work work_t;

/* A connection is accepted and handshaken on the first loop (the
 * acceptor), which keeps the handshake budget in one place; once
 * established it moves, socket and TLS state, to the loop that serves it:
 * its handles close on the acceptor and open again on that loop. */
typedef enum {
	CONN_HANDSHAKE,
	CONN_OPEN,
	CONN_MOVING, /* between loops: no handles, the socket in moved_fd */
	CONN_CLOSING
} conn_state_t;

typedef struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;	/* handshake, then idle deadline */
	uv_timer_t frame_timer; /* a frame begun must be whole by then */
	server_t *server;
	loop_t *loop;	 /* the loop that owns it now */
	loop_t *move_to; /* the loop to serve it, once its writes are out */
	int moved_fd;
	struct conn *prev, *next; /* in its loop's connections */
	/* Connections in the handshake, in order of arrival. */
	struct conn *hs_prev, *hs_next;
	char host[48]; /* the peer's address without its port */
	uint64_t accepted_ms;
	int heard; /* some byte has arrived */
	SSL *ssl;
	BIO *net_in;  /* bytes from the socket, read by OpenSSL */
	BIO *net_out; /* bytes from OpenSSL, to write to the socket */
	conn_state_t state;
	int handles_open;
	unsigned inflight;
	int paused; /* at max-inflight: not reading until calls finish */
	unsigned pending_writes;
	int close_when_flushed;
	int holds_identity_place; /* counted against its identity's limit */
	rhd_front_t front;	  /* the protocol above TLS */
	char peer[64];
	char identity[RHD_IDENTITY_MAX];
} conn_t;

/* An event loop and what it owns. Other threads reach it only through
 * its inbox and its wake handle. */
struct loop {
	uv_loop_t uv;
	uv_async_t wake; /* arrivals, finished jobs, drain, recheck, ping */
	uv_timer_t drain_timer;
	server_t *server;
	unsigned index;
	pthread_t thread;
	conn_t *conns;
	unsigned jobs; /* long calls given to the pool, not yet answered */
	int draining;
	int drained; /* nothing holds the loop any more */
	unsigned recheck_seen;
	uint64_t activity; /* requests read and calls finished, for busy-poll */
	atomic_uint beat;  /* the last watchdog ping it answered */
	pthread_mutex_t inbox_lock;
	conn_t *arrivals; /* handed over by the acceptor */
	work_t *finished; /* long calls the pool has done */
	char read_buf[READ_CHUNK];
};

struct server {
	loop_t *loops; /* the first accepts, handshakes and serves too */
	unsigned n_loops, next_loop;
	uv_tcp_t listener;
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t watchdog; /* systemd's, when WatchdogSec= asks for it */
	/* The reload (on the acceptor) replaces them under the write lock;
	 * the other loops' re-checks read them under the read lock. */
	pthread_rwlock_t access_lock;
	SSL_CTX *tls;
	rhd_access_t access;
	rhd_engine_t *engine;
	const rhd_config_t *cfg;
	atomic_uint conn_count;
	/* Handshakes have a budget of their own, so that peers with no
	 * certificate cannot take the places of established clients. */
	conn_t *hs_oldest, *hs_newest;
	unsigned handshakes;
	atomic_uint established;
	rhd_idcount_t *identities;
	unsigned accepted_this_turn;
	int accept_pending; /* one is waiting for the next loop turn */
	atomic_int draining;
	atomic_uint recheck; /* one more for each reload that took effect */
	atomic_uint ping;    /* the watchdog's, answered by every loop */
	int watchdog_withheld;
	uint64_t drain_started_ns;
	rhd_pool_t *pool; /* long calls */
};

typedef struct write_req {
	uv_write_t req;
	conn_t *conn;
	size_t len;
	uint8_t data[];
} write_req_t;

struct work {
	rhd_job_t job;
	struct work *next;  /* in its loop's finished list */
	uint64_t queued_ns; /* for the latency metrics */
	conn_t *conn;
	Remhsm__Request *request;
	Remhsm__Response response;
	rh_arena_t arena;
};

static void conn_close(conn_t *c, const char *why);
static void hand_over(conn_t *c);

/* --- connection lifetime ----------------------------------------------- */

static void list_add(loop_t *l, conn_t *c)
{
	c->loop = l;
	c->prev = NULL;
	c->next = l->conns;
	if (l->conns)
		l->conns->prev = c;
	l->conns = c;
}

static void list_remove(conn_t *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->loop->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* A draining loop ends once its connections are gone and the pool has
 * answered every call it gave it: its drain timer closes, its wake handle
 * stops holding it, and uv_run returns. The wake handle stays open until
 * every thread has ended (loop_close), for the acceptor may still be
 * waking the loops that heard of the drain before it told them. */
static void loop_maybe_finish(loop_t *l)
{
	if (!l->draining || l->drained || l->conns || l->jobs > 0)
		return;
	l->drained = 1;
	uv_unref((uv_handle_t *)&l->wake);
	uv_close((uv_handle_t *)&l->drain_timer, NULL);
}

static void conn_free_if_done(conn_t *c)
{
	if (c->handles_open > 0 || c->inflight > 0)
		return;
	loop_t *l = c->loop;
	list_remove(c);
	atomic_fetch_sub(&c->server->conn_count, 1);
	rhd_front_cleanup(&c->front);
	SSL_free(c->ssl); /* frees both BIOs */
	free(c);
	loop_maybe_finish(l);
}

static void on_handle_closed(uv_handle_t *handle)
{
	conn_t *c = handle->data;
	c->handles_open--;
	if (c->state == CONN_MOVING && c->handles_open == 0)
		hand_over(c);
	else
		conn_free_if_done(c);
}

/* --- the handshake budget ------------------------------------------------ */

static void handshake_enter(conn_t *c)
{
	server_t *s = c->server;
	c->hs_prev = s->hs_newest;
	if (s->hs_newest)
		s->hs_newest->hs_next = c;
	else
		s->hs_oldest = c;
	s->hs_newest = c;
	s->handshakes++;
}

static void handshake_leave(conn_t *c)
{
	server_t *s = c->server;
	if (c->hs_prev)
		c->hs_prev->hs_next = c->hs_next;
	else
		s->hs_oldest = c->hs_next;
	if (c->hs_next)
		c->hs_next->hs_prev = c->hs_prev;
	else
		s->hs_newest = c->hs_prev;
	c->hs_prev = c->hs_next = NULL;
	s->handshakes--;
}

static void conn_close(conn_t *c, const char *why)
{
	if (c->state == CONN_CLOSING || c->state == CONN_MOVING)
		return;
	RHD_INFO("event=close peer=%s identity=%s reason=\"%s\"", c->peer,
		 c->identity, why);
	if (c->state == CONN_HANDSHAKE)
		handshake_leave(c);
	else
		atomic_fetch_sub(&c->server->established, 1);
	if (c->holds_identity_place)
		rhd_idcount_give(c->server->identities, c->identity);
	c->holds_identity_place = 0;
	c->state = CONN_CLOSING;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->frame_timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* Bytes have come that the loop has not read yet: a client whose
 * ClientHello is on its way is not silent, however busy the loop is. */
static int has_pending_bytes(conn_t *c)
{
	uv_os_fd_t fd;
	int n = 0;
	return uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
	       ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* The handshake to give way to a newcomer, from host (NULL: from
 * anywhere): the oldest that has sent nothing at all, else the oldest whose
 * first bytes the loop has not read yet. */
static conn_t *oldest_silent(server_t *s, const char *host)
{
	conn_t *unread = NULL;
	for (conn_t *o = s->hs_oldest; o; o = o->hs_next) {
		if (o->heard || (host && strcmp(o->host, host)))
			continue;
		if (!has_pending_bytes(o))
			return o;
		if (!unread)
			unread = o;
	}
	return unread;
}

static unsigned handshakes_from(server_t *s, const char *host)
{
	unsigned n = 0;
	for (conn_t *o = s->hs_oldest; o; o = o->hs_next)
		n += !strcmp(o->host, host);
	return n;
}

/* Room in the handshake budget for c (its newest entry), its address's
 * and the whole daemon's: the oldest silent connection gives way to c
 * when the budget is full, and c is refused when every other place is
 * taken by a handshake under way. Returns NULL, or why c is refused. */
static const char *make_room(server_t *s, conn_t *c)
{
	if (handshakes_from(s, c->host) > s->cfg->max_handshakes_per_address) {
		conn_t *v = oldest_silent(s, c->host);
		if (v == c)
			return "too many handshakes from this address";
		conn_close(v, "gave way: handshakes from this address");
	}
	if (s->handshakes > s->cfg->max_handshakes) {
		conn_t *v = oldest_silent(s, NULL);
		if (v == c)
			return "too many handshakes";
		conn_close(v, "gave way: handshakes");
	}
	return NULL;
}

static void on_timeout(uv_timer_t *timer)
{
	conn_t *c = timer->data;
	/* An application's sessions end with its last connection, so a
	 * connection carrying open sessions is kept however quiet it is; TCP
	 * keepalive finds the peers that vanished. */
	if (c->state == CONN_OPEN && c->front.app &&
	    !atomic_load(&c->server->draining) &&
	    rhd_app_session_count(c->front.app) > 0) {
		uv_timer_start(&c->timer, on_timeout,
			       c->server->cfg->idle_timeout_ms, 0);
		return;
	}
	conn_close(c, c->state != CONN_HANDSHAKE ? "idle timeout"
		      : c->heard		 ? "handshake timed out"
				 : "no bytes before the first-byte timeout");
}

/* A frame begun and not whole in time: a trickle cannot keep its buffer.
 * Frames the daemon holds back itself (backpressure) are not late. */
static void on_frame_timeout(uv_timer_t *timer)
{
	conn_t *c = timer->data;
	if (c->paused) {
		uv_timer_start(&c->frame_timer, on_frame_timeout,
			       c->server->cfg->frame_timeout_ms, 0);
		return;
	}
	RHD_WARN("event=frame-timeout peer=%s identity=%s buffered=%zu "
		 "limit-ms=%u",
		 c->peer, c->identity, c->front.inlen,
		 c->server->cfg->frame_timeout_ms);
	conn_close(c, "frame not whole within frame-timeout-ms");
}

/* --- writing ------------------------------------------------------------- */

static int must_wait(conn_t *c);
static void resume_reading(conn_t *c);

static void maybe_close_flushed(conn_t *c)
{
	if (c->state == CONN_CLOSING || c->pending_writes > 0 ||
	    c->inflight > 0)
		return;
	if (c->close_when_flushed)
		conn_close(c, "closed after reply");
	else if (c->loop->draining)
		conn_close(c, "server shutting down");
}

static void conn_detach(conn_t *c);

static void on_written(uv_write_t *req, int status)
{
	write_req_t *w = container_of(req, write_req_t, req);
	conn_t *c = w->conn;
	free(w);
	c->pending_writes--;
	if (status < 0)
		conn_close(c, uv_strerror(status));
	else if (c->move_to && c->state == CONN_OPEN) {
		conn_detach(c);
		return;
	} else if (c->paused && c->state == CONN_OPEN && !must_wait(c))
		resume_reading(c);
	maybe_close_flushed(c);
}

/* Queues, as one request, the bytes the socket did not take at once and
 * everything OpenSSL still holds behind them; on_written frees it. */
static int queue_rest(conn_t *c, const char *head, size_t head_len)
{
	size_t tail = BIO_ctrl_pending(c->net_out);
	write_req_t *w = malloc(sizeof(*w) + head_len + tail);
	if (!w)
		return -1;
	memcpy(w->data, head, head_len);
	if (tail > 0 &&
	    BIO_read(c->net_out, w->data + head_len, (int)tail) != (int)tail) {
		free(w);
		return -1;
	}
	w->conn = c;
	w->len = head_len + tail;
	uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) <
	    0) {
		free(w);
		return -1;
	}
	c->pending_writes++;
	return 0;
}

/* Moves what OpenSSL produced (handshake records, alerts, data) to the
 * socket: straight in while nothing is queued before it (libuv refuses
 * the write otherwise), with no request, no callback and no change to
 * what the loop polls for; from the first byte the socket does not take,
 * the rest waits in one request. */
static int flush_tls(conn_t *c)
{
	char chunk[READ_CHUNK]; /* TLS records: nothing secret */
	int n;
	while ((n = BIO_read(c->net_out, chunk, (int)sizeof(chunk))) > 0) {
		uv_buf_t buf = uv_buf_init(chunk, (unsigned)n);
		int sent = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
		if (sent == UV_EAGAIN)
			sent = 0;
		if (sent < 0)
			return -1;
		if (sent < n)
			return queue_rest(c, chunk + sent, (size_t)(n - sent));
	}
	return 0;
}

/* --- the frontend's port ------------------------------------------------ */

static int port_send(void *ctx, const uint8_t *frame, size_t len)
{
	conn_t *c = ctx;
	/* SSL_get_error reads this thread's whole error queue: what a failed
	 * verification or a reload left there must not read as this
	 * connection's TLS failure. */
	ERR_clear_error();
	int n = SSL_write(c->ssl, frame, (int)len);
	return n <= 0 || flush_tls(c) < 0 ? -1 : 0;
}

static void port_called(void *ctx, const Remhsm__Request *req, uint64_t rv,
			uint64_t started_ns)
{
	conn_t *c = ctx;
	const Remhsm__Mechanism *mech = rh_call_mechanism(req);
	rhd_metrics_call((unsigned)req->call_case, mech ? mech->type : 0, rv,
			 uv_hrtime() - started_ns);
	const char *name = rh_call_name((unsigned)req->call_case);
	if (!name)
		RHD_WARN("event=unknown-call peer=%s identity=%s id=%llu",
			 c->peer, c->identity, (unsigned long long)req->id);
	else if (rv != CKR_OK)
		RHD_INFO("event=call peer=%s identity=%s call=%s rv=0x%llx",
			 c->peer, c->identity, name, (unsigned long long)rv);
}

static int port_queue(void *ctx, Remhsm__Request *req);
static int must_wait(conn_t *c);

static int port_must_wait(void *ctx)
{
	return must_wait(ctx);
}

static unsigned port_connections(void *ctx)
{
	return atomic_load(&((conn_t *)ctx)->server->established);
}

static const rhd_front_port_t front_port = {
	.send = port_send,
	.queue = port_queue,
	.must_wait = port_must_wait,
	.called = port_called,
	.connections = port_connections,
};

/* What the frontend decided, done on the connection: close it, or stop
 * reading after a refused Hello. */
static void after_frontend(conn_t *c)
{
	if (c->state != CONN_OPEN)
		return;
	if (c->front.failure) {
		conn_close(c, c->front.failure);
	} else if (c->front.refused && !c->close_when_flushed) {
		c->close_when_flushed = 1;
		uv_read_stop((uv_stream_t *)&c->tcp);
		maybe_close_flushed(c); /* the answer may be out already */
	}
}

/* --- requests --------------------------------------------------------------
 */

static void run_work(rhd_job_t *job)
{
	work_t *w = container_of(job, work_t, job);
	rhd_dispatch(w->conn->server->engine, w->conn->front.app, w->request,
		     &w->response, &w->arena);
}

/* On the worker's thread: the answer goes back to the connection's loop
 * (a connection moves only before its first call). The loop is woken
 * under its inbox lock: once it has taken the answer it may end, and its
 * wake handle with it. */
static void work_finished(rhd_job_t *job)
{
	work_t *w = container_of(job, work_t, job);
	loop_t *l = w->conn->loop;
	pthread_mutex_lock(&l->inbox_lock);
	w->next = l->finished;
	l->finished = w;
	uv_async_send(&l->wake);
	pthread_mutex_unlock(&l->inbox_lock);
}

static void process_frames(conn_t *c);
static void read_plaintext(conn_t *c);
static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* A call finished on a paused connection: its buffered frames first, then
 * the socket again. */
static void resume_reading(conn_t *c)
{
	c->paused = 0;
	process_frames(c);
	if (c->paused || c->state != CONN_OPEN)
		return;
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	read_plaintext(c);
}

/* On the loop: a long call's answer goes out. */
static void answer_work(work_t *w)
{
	conn_t *c = w->conn;
	loop_t *l = c->loop;
	c->inflight--;
	l->jobs--;
	l->activity++;
	if (c->state == CONN_OPEN) {
		rhd_front_reply(&c->front, w->request, &w->response,
				w->queued_ns);
		after_frontend(c);
	}
	rh_arena_cleanup(&w->arena);
	rh_free_wiped(&w->request->base);
	free(w);
	if (c->state == CONN_CLOSING)
		conn_free_if_done(c);
	else if (c->paused && !must_wait(c))
		resume_reading(c);
	else
		maybe_close_flushed(c);
	loop_maybe_finish(l);
}

static int port_queue(void *ctx, Remhsm__Request *req)
{
	conn_t *c = ctx;
	work_t *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->conn = c;
	w->request = req;
	w->queued_ns = uv_hrtime();
	w->job.run = run_work;
	w->job.finished = work_finished;
	remhsm__response__init(&w->response);
	if (rhd_pool_submit(c->server->pool, c->identity, &w->job) < 0) {
		free(w);
		return -1;
	}
	c->inflight++;
	c->loop->jobs++;
	return 0;
}

static size_t queued_bytes(conn_t *c)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
}

/* A connection stops being read from while it has max-inflight calls
 * running, or answers it does not read piling up (more than a frame's
 * worth): it waits, and the others are served. */
static int must_wait(conn_t *c)
{
	return c->inflight >= c->server->cfg->max_inflight ||
	       queued_bytes(c) > c->server->cfg->max_frame;
}

/* The deadline of the frame in progress starts with its first byte: none
 * while the buffer is empty, a new one when a frame was just completed. */
static void frame_deadline(conn_t *c, int completed)
{
	if (c->front.inlen == 0)
		uv_timer_stop(&c->frame_timer);
	else if (completed || !uv_is_active((uv_handle_t *)&c->frame_timer))
		uv_timer_start(&c->frame_timer, on_frame_timeout,
			       c->server->cfg->frame_timeout_ms, 0);
}

/* Backpressure: a client with max-inflight calls running waits, its frames
 * unread, while the others are served. */
static void pause_if_must_wait(conn_t *c)
{
	if (c->paused || !rhd_front_serving(&c->front) || !must_wait(c))
		return;
	uv_read_stop((uv_stream_t *)&c->tcp);
	RHD_INFO("event=backpressure peer=%s identity=%s inflight=%u "
		 "queued=%zu",
		 c->peer, c->identity, c->inflight, queued_bytes(c));
	c->paused = 1;
}

/* What the frontend did with the frames it took: idle means no request,
 * so only whole frames put the idle deadline back. */
static void after_frames(conn_t *c, unsigned frames)
{
	if (frames > 0) {
		c->loop->activity += frames;
		uv_timer_start(&c->timer, on_timeout,
			       c->server->cfg->idle_timeout_ms, 0);
	}
	after_frontend(c);
	if (c->state != CONN_OPEN)
		return;
	pause_if_must_wait(c);
	frame_deadline(c, frames > 0);
}

/* Handles every complete frame in the input buffer. */
static void process_frames(conn_t *c)
{
	after_frames(c, rhd_front_take_frames(&c->front));
}

static void read_plaintext(conn_t *c)
{
	while (c->state == CONN_OPEN && !c->close_when_flushed && !c->paused) {
		uint8_t *room;
		size_t cap;
		if (rhd_front_room(&c->front, &room, &cap) < 0) {
			conn_close(c, c->front.failure);
			return;
		}
		ERR_clear_error(); /* see port_send */
		int n = SSL_read(c->ssl, room, (int)cap);
		if (n > 0) {
			after_frames(c,
				     rhd_front_received(&c->front, (size_t)n));
			continue;
		}
		int err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ)
			break;
		conn_close(c, err == SSL_ERROR_ZERO_RETURN ? "peer closed TLS"
							   : "TLS read error");
		return;
	}
	if (c->state == CONN_OPEN && flush_tls(c) < 0)
		conn_close(c, "cannot write");
}

/* --- handshake -------------------------------------------------------------
 */

static void handshake_failed(conn_t *c)
{
	char reason[256];
	long verify = SSL_get_verify_result(c->ssl);
	if (verify != X509_V_OK)
		snprintf(reason, sizeof(reason), "certificate rejected: %s",
			 X509_verify_cert_error_string(verify));
	else
		rh_tls_last_error(reason, sizeof(reason));
	ERR_clear_error();
	RHD_WARN("event=handshake-failed peer=%s reason=\"%s\"", c->peer,
		 reason[0] ? reason : "connection closed");
	(void)flush_tls(c); /* the alert, if any */
	conn_close(c, "handshake failed");
}

/* What an access rule grants the connection, and its application when it
 * has one (applications hear of it at Hello otherwise). */
static void grant(conn_t *c, const rhd_rule_t *rule)
{
	c->front.visible_slots = rule->slots;
	c->front.roles = rule->roles;
	rhd_app_t *app = c->front.app;
	if (!app)
		return;
	app->visible_slots = rule->slots;
	app->roles = rule->roles;
}

/* The identity of a verified peer, and what the access list grants it; 0
 * after closing the connection when it grants nothing. */
static int admit(conn_t *c)
{
	const rhd_access_t *access = &c->server->access;
	rhd_access_identity(access, c->ssl, c->identity, sizeof(c->identity));
	const rhd_rule_t *rule = rhd_access_match(access, c->identity);
	if (!c->identity[0])
		snprintf(c->identity, sizeof(c->identity), "-");
	if (!rule) {
		RHD_WARN("event=access-denied peer=%s identity=%s "
			 "reason=\"no access rule matches\"",
			 c->peer, c->identity);
		rhd_metrics_connection(RHD_CONN_REFUSED);
		conn_close(c, "identity not on the access list");
		return 0;
	}
	int place =
		rhd_idcount_take(c->server->identities, c->identity,
				 c->server->cfg->max_connections_per_identity);
	c->holds_identity_place = place == 1;
	if (place < 0) {
		conn_close(c, "out of memory");
		return 0;
	}
	if (place == 0) {
		RHD_WARN("event=limit peer=%s identity=%s "
			 "limit=max-connections-per-identity value=%u",
			 c->peer, c->identity,
			 c->server->cfg->max_connections_per_identity);
		rhd_metrics_connection(RHD_CONN_REFUSED);
		conn_close(c, "too many connections from this identity");
		return 0;
	}
	grant(c, rule);
	return 1;
}

/* The handshake is done: c leaves the handshake budget for the
 * established connections'; 0 after closing it when they are full. */
static int establish(conn_t *c)
{
	server_t *s = c->server;
	handshake_leave(c);
	c->state = CONN_OPEN;
	if (atomic_fetch_add(&s->established, 1) < s->cfg->max_connections)
		return 1;
	RHD_WARN("event=refused peer=%s reason=\"maximum connections "
		 "reached\" limit=%u",
		 c->peer, s->cfg->max_connections);
	rhd_metrics_connection(RHD_CONN_REFUSED);
	conn_close(c, "refused");
	return 0;
}

/* The loop to serve the next established connection: each in turn. */
static loop_t *next_loop(server_t *s)
{
	loop_t *l = &s->loops[s->next_loop];
	s->next_loop = (s->next_loop + 1) % s->n_loops;
	return l;
}

/* Established and admitted: served here, or on another loop once the
 * handshake's last records are out (a write in flight belongs to this
 * loop's handle). What the peer sent meanwhile waits in net_in. */
static void serve(conn_t *c)
{
	loop_t *to = next_loop(c->server);
	RHD_INFO("event=handshake peer=%s identity=%s tls=%s loop=%u", c->peer,
		 c->identity, SSL_get_version(c->ssl), to->index);
	if (flush_tls(c) < 0) {
		conn_close(c, "cannot write");
		return;
	}
	if (to != c->loop) {
		c->move_to = to;
		uv_read_stop((uv_stream_t *)&c->tcp);
		uv_timer_stop(&c->timer);
		conn_detach(c);
		return;
	}
	uv_timer_start(&c->timer, on_timeout, c->server->cfg->idle_timeout_ms,
		       0);
	read_plaintext(c);
}

static void advance_handshake(conn_t *c)
{
	ERR_clear_error(); /* see port_send */
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		if (establish(c) && admit(c))
			serve(c);
		return;
	}
	if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
		handshake_failed(c);
		return;
	}
	if (flush_tls(c) < 0)
		conn_close(c, "cannot write");
}

/* --- reading ---------------------------------------------------------------
 */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	conn_t *c = handle->data;
	*buf = uv_buf_init(c->loop->read_buf, sizeof(c->loop->read_buf));
}

/* The first bytes of a connection: from now on it has what is left of
 * the handshake timeout, counted from the accept. */
static void first_bytes(conn_t *c)
{
	c->heard = 1;
	uint64_t spent = uv_now(&c->loop->uv) - c->accepted_ms;
	uint64_t limit = c->server->cfg->handshake_timeout_ms;
	uv_timer_start(&c->timer, on_timeout, spent < limit ? limit - spent : 1,
		       0);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	conn_t *c = stream->data;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (c->state == CONN_HANDSHAKE)
			RHD_WARN("event=handshake-failed peer=%s reason=\"%s\"",
				 c->peer, "connection closed");
		conn_close(c, c->front.inlen ? "peer closed mid-frame"
					     : uv_strerror((int)nread));
		return;
	}
	if (BIO_write(c->net_in, buf->base, (int)nread) != (int)nread) {
		conn_close(c, "out of memory");
		return;
	}
	if (c->state == CONN_HANDSHAKE) {
		if (!c->heard)
			first_bytes(c);
		advance_handshake(c);
		return;
	}
	read_plaintext(c);
}

/* --- moving a connection to its loop -----------------------------------
 */

static void handles_init(loop_t *l, conn_t *c)
{
	uv_tcp_init(&l->uv, &c->tcp);
	uv_timer_init(&l->uv, &c->timer);
	uv_timer_init(&l->uv, &c->frame_timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->frame_timer.data = c;
	c->handles_open = 3;
}

/* Once no write is in flight, the handles close here while a duplicate
 * keeps the socket open; hand_over then gives it to its loop. */
static void conn_detach(conn_t *c)
{
	if (c->pending_writes > 0)
		return;
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0 ||
	    (c->moved_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		c->move_to = NULL;
		conn_close(c, "cannot hand over to its loop");
		return;
	}
	c->state = CONN_MOVING;
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->frame_timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* On its new loop: the handles open again on the socket, and what the
 * peer sent while it moved is read. */
static void adopt(loop_t *l, conn_t *c)
{
	list_add(l, c);
	handles_init(l, c);
	c->state = CONN_OPEN;
	if (uv_tcp_open(&c->tcp, (uv_os_sock_t)c->moved_fd) < 0) {
		close(c->moved_fd);
		conn_close(c, "cannot hand over to its loop");
		return;
	}
	uv_timer_start(&c->timer, on_timeout, c->server->cfg->idle_timeout_ms,
		       0);
	if (l->draining) {
		maybe_close_flushed(c);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	read_plaintext(c);
}

/* On the acceptor, its handles closed: into the inbox of its loop. Once
 * the daemon drains, the other loops may have ended, so the acceptor keeps
 * the connection and closes it with its own. */
static void hand_over(conn_t *c)
{
	server_t *s = c->server;
	loop_t *to = c->move_to;
	list_remove(c);
	c->move_to = NULL;
	if (atomic_load(&s->draining)) {
		adopt(c->loop, c);
		return;
	}
	c->loop = to;
	pthread_mutex_lock(&to->inbox_lock);
	c->next = to->arrivals;
	to->arrivals = c;
	pthread_mutex_unlock(&to->inbox_lock);
	uv_async_send(&to->wake);
}

/* --- accepting -------------------------------------------------------------
 */

/* The address without its port. */
static void host_of(const struct sockaddr_storage *ss, char *host, size_t cap)
{
	if (ss->ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)ss, host, cap);
	else
		uv_ip4_name((const struct sockaddr_in *)ss, host, cap);
}

static void format_address(const struct sockaddr_storage *ss, char *out,
			   size_t cap)
{
	char host[48];
	host_of(ss, host, sizeof(host));
	if (ss->ss_family == AF_INET6)
		snprintf(out, cap, "[%s]:%d", host,
			 ntohs(((const struct sockaddr_in6 *)ss)->sin6_port));
	else
		snprintf(out, cap, "%s:%d", host,
			 ntohs(((const struct sockaddr_in *)ss)->sin_port));
}

static void peer_name(conn_t *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	snprintf(c->peer, sizeof(c->peer), "-");
	snprintf(c->host, sizeof(c->host), "-");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	format_address(&ss, c->peer, sizeof(c->peer));
	host_of(&ss, c->host, sizeof(c->host));
}

static void bound_address(uv_tcp_t *tcp, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	snprintf(out, cap, "-");
	if (uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len) == 0)
		format_address(&ss, out, cap);
}

static int conn_setup_tls(conn_t *c)
{
	c->ssl = SSL_new(c->server->tls);
	c->net_in = BIO_new(BIO_s_mem());
	c->net_out = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->net_in || !c->net_out) {
		BIO_free(c->net_in);
		BIO_free(c->net_out);
		return -1;
	}
	/* An empty memory BIO means "wait for the socket", not end of file. */
	BIO_set_mem_eof_return(c->net_in, -1);
	SSL_set_bio(c->ssl, c->net_in, c->net_out);
	SSL_set_accept_state(c->ssl);
	return 0;
}

static conn_t *conn_new(server_t *s)
{
	conn_t *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->server = s;
	snprintf(c->identity, sizeof(c->identity), "-");
	snprintf(c->peer, sizeof(c->peer), "-");
	rhd_front_init(&c->front, s->engine, s->cfg, &front_port, c);
	c->front.peer = c->peer;
	c->front.identity = c->identity;
	c->moved_fd = -1;
	loop_t *acceptor = &s->loops[0];
	handles_init(acceptor, c);
	c->accepted_ms = uv_now(&acceptor->uv);
	handshake_enter(c);
	list_add(acceptor, c);
	atomic_fetch_add(&s->conn_count, 1);
	return c;
}

static void accept_one(server_t *s)
{
	s->accepted_this_turn++;
	conn_t *c = conn_new(s);
	if (!c)
		return;
	if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) <
	    0) {
		conn_close(c, "accept failed");
		return;
	}
	peer_name(c);
	const char *refusal =
		atomic_load(&s->draining) ? "shutting down" : make_room(s, c);
	rhd_metrics_connection(refusal ? RHD_CONN_REFUSED : RHD_CONN_ACCEPTED);
	if (refusal) {
		RHD_WARN("event=refused peer=%s reason=\"%s\"", c->peer,
			 refusal);
		conn_close(c, "refused");
		return;
	}
	if (conn_setup_tls(c) < 0) {
		conn_close(c, "out of memory");
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_DELAY_S);
	unsigned first = s->cfg->first_byte_timeout_ms;
	unsigned whole = s->cfg->handshake_timeout_ms;
	uv_timer_start(&c->timer, on_timeout, first < whole ? first : whole, 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	RHD_INFO("event=accept peer=%s", c->peer);
}

/* libuv accepts for as long as connections keep coming; a flood that
 * reopens what is closed would keep the loop accepting and starve every
 * established connection. So a loop turn accepts ACCEPTS_PER_TURN at most:
 * a connection left unaccepted pauses the listener until the next turn
 * takes it (run_loop). */
static void on_connection(uv_stream_t *listener, int status)
{
	server_t *s = listener->data;
	if (status < 0) {
		RHD_WARN("event=accept-failed reason=\"%s\"",
			 uv_strerror(status));
		return;
	}
	if (s->accepted_this_turn >= ACCEPTS_PER_TURN) {
		s->accept_pending = 1;
		return;
	}
	accept_one(s);
}

/* --- shutdown --------------------------------------------------------------
 */

static void on_drain_timeout(uv_timer_t *timer)
{
	loop_t *l = timer->data;
	for (conn_t *c = l->conns; c; c = c->next)
		conn_close(c, "drain timeout");
}

/* Each loop drains its own connections, with a drain timeout of its own,
 * and ends once they are gone. */
static void loop_drain(loop_t *l)
{
	if (l->draining)
		return;
	l->draining = 1;
	uv_timer_start(&l->drain_timer, on_drain_timeout,
		       l->server->cfg->drain_timeout_ms, 0);
	uv_unref((uv_handle_t *)&l->drain_timer);
	for (conn_t *c = l->conns, *next; c; c = next) {
		next = c->next;
		if (c->state == CONN_HANDSHAKE) {
			conn_close(c, "server shutting down");
		} else if (c->state == CONN_OPEN) {
			uv_read_stop((uv_stream_t *)&c->tcp);
			maybe_close_flushed(c);
		}
	}
	loop_maybe_finish(l);
}

/* The acceptor's wake-up call to every other loop. */
static void wake_others(server_t *s)
{
	for (unsigned i = 1; i < s->n_loops; i++)
		uv_async_send(&s->loops[i].wake);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	server_t *s = sig->data;
	if (atomic_load(&s->draining)) {
		RHD_INFO("event=signal-ignored signal=%s reason=\"draining "
			 "already\"",
			 strsignal(signum));
		return;
	}
	RHD_INFO("event=shutdown signal=%s connections=%u", strsignal(signum),
		 atomic_load(&s->conn_count));
	atomic_store(&s->draining, 1);
	s->drain_started_ns = uv_hrtime();
	rhd_notify("STOPPING=1");
	rhd_metrics_stop();
	uv_close((uv_handle_t *)&s->listener, NULL);
	/* Kept, but no longer holding the loop: a second SIGTERM or SIGINT
	 * during the drain is heard and ignored, where a closed handle would
	 * give it the default action and end the drain half way. */
	uv_unref((uv_handle_t *)&s->sigterm);
	uv_unref((uv_handle_t *)&s->sigint);
	uv_close((uv_handle_t *)&s->sighup, NULL);
	wake_others(s);
	loop_drain(&s->loops[0]);
}

/* --- setup -----------------------------------------------------------------
 */

int rhd_server_parse_listen(const char *listen, struct sockaddr_storage *addr)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	if (!colon || colon == listen)
		return -1;
	size_t host_len = (size_t)(colon - listen);
	if (host_len >= sizeof(host))
		return -1;
	memcpy(host, listen, host_len);
	host[host_len] = '\0';
	char *end = NULL;
	long port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535 || colon[1] == '\0')
		return -1;
	if (host[0] == '[' && host[host_len - 1] == ']') {
		host[host_len - 1] = '\0';
		return uv_ip6_addr(host + 1, (int)port,
				   (struct sockaddr_in6 *)addr) < 0
			       ? -1
			       : 0;
	}
	return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr) < 0 ? -1
									    : 0;
}

static int start_listening(server_t *s)
{
	struct sockaddr_storage addr;
	memset(&addr, 0, sizeof(addr));
	if (rhd_server_parse_listen(s->cfg->listen, &addr) < 0) {
		RHD_ERROR(
			"event=start-failed reason=\"bad listen address '%s'\"",
			s->cfg->listen);
		return -1;
	}
	uv_tcp_init(&s->loops[0].uv, &s->listener);
	s->listener.data = s;
	int r = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG,
			      on_connection);
	if (r < 0) {
		RHD_ERROR("event=start-failed listen=%s reason=\"%s\"",
			  s->cfg->listen, uv_strerror(r));
		uv_close((uv_handle_t *)&s->listener, NULL);
		return -1;
	}
	/* Port 0 picks a free port: log the one bound, for scripts to read. */
	char bound[64];
	bound_address(&s->listener, bound, sizeof(bound));
	RHD_INFO("event=listening listen=%s tls=%s slots=%u loops=%u "
		 "worker-threads=%u",
		 bound, s->cfg->tls12 ? "1.2+" : "1.3", s->cfg->slots,
		 s->n_loops, s->cfg->worker_threads);
	return 0;
}

/* The first loop that has not answered ping; 0 when all have (the
 * acceptor answers by running this). */
static unsigned loop_not_answering(server_t *s, unsigned ping)
{
	for (unsigned i = 1; i < s->n_loops; i++)
		if (atomic_load(&s->loops[i].beat) != ping)
			return i;
	return 0;
}

/* The watchdog is petted only while every loop answers: each tick pings
 * them all, and the next tick pets if every one has answered. A wedged
 * loop stops the petting, and systemd restarts the daemon. */
static void on_watchdog(uv_timer_t *timer)
{
	server_t *s = timer->data;
	unsigned ping = atomic_load(&s->ping);
	unsigned late = loop_not_answering(s, ping);
	if (late && !atomic_load(&s->draining)) {
		if (!s->watchdog_withheld)
			RHD_WARN("event=watchdog-withheld loop=%u "
				 "reason=\"the loop did not answer\"",
				 late);
		s->watchdog_withheld = 1;
	} else {
		s->watchdog_withheld = 0;
		rhd_notify("WATCHDOG=1");
	}
	if (atomic_load(&s->draining)) /* the other loops may have ended */
		return;
	atomic_store(&s->ping, ping + 1);
	wake_others(s);
}

/* Ready once the port accepts; the watchdog from then on, at half the
 * interval systemd allows. */
static void tell_service_manager(server_t *s)
{
	uint64_t usec = rhd_notify_watchdog_usec();
	if (usec) {
		uint64_t ms = usec / 2000 ? usec / 2000 : 1;
		s->watchdog.data = s;
		uv_timer_start(&s->watchdog, on_watchdog, ms, ms);
		uv_unref((uv_handle_t *)&s->watchdog);
	}
	if (rhd_notify("READY=1\nSTATUS=serving") < 0)
		RHD_WARN("event=notify-failed socket=\"%s\"",
			 getenv("NOTIFY_SOCKET"));
}

/* A connection's certificate checked again, against the CA and CRL now in
 * force; the reason when it no longer passes. */
static const char *still_valid(SSL_CTX *tls, conn_t *c)
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	const char *why = "cannot check the certificate";
	if (cert && ctx &&
	    X509_STORE_CTX_init(ctx, SSL_CTX_get_cert_store(tls), cert,
				SSL_get_peer_cert_chain(c->ssl)) == 1) {
		X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
		why = X509_verify_cert(ctx) == 1
			      ? NULL
			      : X509_verify_cert_error_string(
					X509_STORE_CTX_get_error(ctx));
	}
	X509_STORE_CTX_free(ctx);
	return why;
}

/* Applies the new certificates, CRL and access list to the loop's
 * connections: those they no longer admit are closed, the others keep
 * going with what the new list grants them. */
static void recheck_connections(loop_t *l)
{
	server_t *s = l->server;
	pthread_rwlock_rdlock(&s->access_lock);
	for (conn_t *c = l->conns, *next; c; c = next) {
		next = c->next;
		if (c->state != CONN_OPEN)
			continue;
		const char *why = still_valid(s->tls, c);
		const rhd_rule_t *rule =
			why ? NULL : rhd_access_match(&s->access, c->identity);
		if (!why && !rule)
			why = "identity no longer on the access list";
		if (why) {
			RHD_WARN("event=access-revoked peer=%s identity=%s "
				 "reason=\"%s\"",
				 c->peer, c->identity, why);
			conn_close(c, why);
			continue;
		}
		grant(c, rule);
	}
	pthread_rwlock_unlock(&s->access_lock);
}

/* On a loop other than the acceptor: the re-check of the last reload, if
 * this loop has not done it yet. */
static void recheck_if_reloaded(loop_t *l)
{
	unsigned done = atomic_load(&l->server->recheck);
	if (l->recheck_seen == done)
		return;
	l->recheck_seen = done;
	recheck_connections(l);
}

/* The configuration in force gives way to a new one that loaded whole;
 * every loop re-checks its connections against it. */
static void replace_access(server_t *s, SSL_CTX *tls, rhd_access_t *access)
{
	pthread_rwlock_wrlock(&s->access_lock);
	SSL_CTX *old_tls = s->tls;
	rhd_access_t old = s->access;
	s->tls = tls;
	s->access = *access;
	pthread_rwlock_unlock(&s->access_lock);
	SSL_CTX_free(old_tls); /* open connections hold their own reference */
	rhd_access_free(&old);
	loop_t *acceptor = &s->loops[0];
	acceptor->recheck_seen = atomic_fetch_add(&s->recheck, 1) + 1;
	recheck_connections(acceptor);
	wake_others(s);
}

/* Whatever brought it awake: long calls finished, connections handed
 * over, a drain, a reload's re-check, the watchdog's ping. */
static void on_wake(uv_async_t *async)
{
	loop_t *l = async->data;
	server_t *s = l->server;
	pthread_mutex_lock(&l->inbox_lock);
	conn_t *arrived = l->arrivals;
	work_t *done = l->finished;
	l->arrivals = NULL;
	l->finished = NULL;
	pthread_mutex_unlock(&l->inbox_lock);
	for (work_t *w = done, *next; w; w = next) {
		next = w->next;
		answer_work(w);
	}
	for (conn_t *c = arrived, *next; c; c = next) {
		next = c->next;
		adopt(l, c);
	}
	if (atomic_load(&s->draining))
		loop_drain(l);
	else
		recheck_if_reloaded(l);
	atomic_store(&l->beat, atomic_load(&s->ping));
}

/* SIGHUP: the configuration read again; its certificates, CRL and access
 * list replace the old ones only if all of them load. */
static void on_reload(uv_signal_t *sig, int signum)
{
	(void)signum;
	server_t *s = sig->data;
	rhd_config_t fresh;
	char err[512];
	rhd_config_defaults(&fresh);
	SSL_CTX *tls = NULL;
	rhd_access_t access = {0};
	int r = rhd_config_from_args(&fresh, s->cfg->argc, s->cfg->argv, err,
				     sizeof(err));
	if (r >= 0) {
		rh_tls_files_t files = {fresh.tls_ca, fresh.tls_cert,
					fresh.tls_key};
		tls = rh_tls_server_ctx_new(&files, s->cfg->tls12, err,
					    sizeof(err));
	}
	if (r < 0 || !tls ||
	    rhd_server_access_setup(&fresh, tls, &access, err, sizeof(err)) <
		    0) {
		RHD_ERROR("event=reload-failed reason=\"%s\" "
			  "kept=\"the configuration in force\"",
			  err);
		SSL_CTX_free(tls);
		return;
	}
	RHD_INFO("event=reload rules=%zu crl=%s", access.n_rules,
		 fresh.tls_crl[0] ? fresh.tls_crl : "none");
	replace_access(s, tls, &access);
}

static void start_signals(server_t *s)
{
	uv_loop_t *loop = &s->loops[0].uv;
	uv_signal_init(loop, &s->sigterm);
	uv_signal_init(loop, &s->sigint);
	uv_signal_init(loop, &s->sighup);
	s->sigterm.data = s;
	s->sigint.data = s;
	s->sighup.data = s;
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	uv_signal_start(&s->sighup, on_reload, SIGHUP);
}

int rhd_server_access_setup(const rhd_config_t *cfg, SSL_CTX *tls,
			    rhd_access_t *access, char *err, size_t err_len)
{
	rhd_id_kind_t kind;
	if (rhd_id_kind_parse(cfg->identity_from, &kind) < 0) {
		snprintf(err, err_len,
			 "identity-from '%s': cn, san-uri, san-dns or "
			 "fingerprint",
			 cfg->identity_from);
		return -1;
	}
	rh_tls_require_client_leaf(tls, cfg->tls_client_eku_optional);
	if (rhd_access_load_crl(tls, cfg->tls_crl, err, err_len) < 0)
		return -1;
	return rhd_access_load(access, kind, cfg->access_list, err, err_len);
}

/* Runs the loop until its handles are closed. While requests keep coming,
 * it polls for the next one rather than sleeping: a sleeping thread's
 * wake-up costs tens of microseconds on a virtual machine, more than a
 * P-256 signature. A quiet busy-poll-us later it sleeps again. */
static void run_loop(loop_t *l)
{
	server_t *s = l->server;
	uint64_t spin_ns = (uint64_t)s->cfg->busy_poll_us * 1000u;
	uint64_t spin_until = 0;
	int alive = 1;
	while (alive) {
		if (l->index == 0) {
			s->accepted_this_turn = 0;
			if (s->accept_pending && !atomic_load(&s->draining)) {
				s->accept_pending = 0;
				accept_one(s);
			}
		}
		uint64_t seen = l->activity;
		int polling = spin_ns && uv_hrtime() < spin_until;
		alive = uv_run(&l->uv, polling ? UV_RUN_NOWAIT : UV_RUN_ONCE);
		if (l->activity != seen)
			spin_until = uv_hrtime() + spin_ns;
	}
}

static int loop_init(server_t *s, loop_t *l, unsigned index)
{
	l->server = s;
	l->index = index;
	if (uv_loop_init(&l->uv) < 0)
		return -1;
	uv_async_init(&l->uv, &l->wake, on_wake);
	uv_timer_init(&l->uv, &l->drain_timer);
	l->wake.data = l;
	l->drain_timer.data = l;
	pthread_mutex_init(&l->inbox_lock, NULL);
	return 0;
}

/* Once no thread runs the loop or wakes it. */
static void loop_close(loop_t *l)
{
	uv_close((uv_handle_t *)&l->wake, NULL);
	if (!l->drained)
		uv_close((uv_handle_t *)&l->drain_timer, NULL);
	uv_run(&l->uv, UV_RUN_DEFAULT);
	if (uv_loop_close(&l->uv) != 0)
		RHD_ERROR("event=loop-not-closed loop=%u", l->index);
	pthread_mutex_destroy(&l->inbox_lock);
}

static void *loop_thread(void *arg)
{
	run_loop(arg);
	return NULL;
}

/* The loops besides the acceptor, each on a thread of its own; a thread
 * that cannot start leaves the daemon with the loops that did. */
static void start_loops(server_t *s)
{
	for (unsigned i = 1; i < s->n_loops; i++) {
		if (pthread_create(&s->loops[i].thread, NULL, loop_thread,
				   &s->loops[i]) == 0) {
			/* For top -H and for tests; the acceptor is the
			 * process's own thread and keeps its name. */
			char name[16];
			snprintf(name, sizeof(name), "remhsmd-loop%u",
				 i % 1000);
			pthread_setname_np(s->loops[i].thread, name);
			continue;
		}
		RHD_WARN("event=loops-reduced loops=%u reason=\"cannot start "
			 "a thread\"",
			 i);
		for (unsigned j = i; j < s->n_loops; j++)
			loop_close(&s->loops[j]);
		s->n_loops = i;
	}
}

static void join_loops(server_t *s)
{
	for (unsigned i = 1; i < s->n_loops; i++)
		pthread_join(s->loops[i].thread, NULL);
	for (unsigned i = 1; i < s->n_loops; i++)
		loop_close(&s->loops[i]);
}

/* The loops asked for, or one per online CPU. */
static unsigned loop_count(const rhd_config_t *cfg)
{
	if (cfg->loops)
		return cfg->loops;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 && n <= 256 ? (unsigned)n : 1;
}

/* The loops, the worker pool and what the limits count; -1 with err. */
static int server_init(server_t *s, const rhd_config_t *cfg,
		       rhd_engine_t *engine, char *err, size_t err_len)
{
	s->cfg = cfg;
	s->engine = engine;
	pthread_rwlock_init(&s->access_lock, NULL);
	s->n_loops = loop_count(cfg);
	s->loops = calloc(s->n_loops, sizeof(*s->loops));
	s->identities = rhd_idcount_new();
	s->pool =
		rhd_pool_start(cfg->worker_threads, cfg->max_identity_workers);
	unsigned ready = 0;
	while (s->loops && ready < s->n_loops &&
	       loop_init(s, &s->loops[ready], ready) == 0)
		ready++;
	if (s->loops && ready == s->n_loops && s->identities && s->pool)
		return 0;
	snprintf(err, err_len, "cannot set up %u loops and %u worker threads",
		 s->n_loops, cfg->worker_threads);
	s->n_loops = ready;
	return -1;
}

static void server_cleanup(server_t *s)
{
	rhd_pool_stop(s->pool);
	rhd_idcount_free(s->identities);
	free(s->loops);
	SSL_CTX_free(s->tls);
	rhd_access_free(&s->access);
	pthread_rwlock_destroy(&s->access_lock);
}

static int load_access(server_t *s, char *err, size_t err_len)
{
	const rhd_config_t *cfg = s->cfg;
	rh_tls_files_t files = {cfg->tls_ca, cfg->tls_cert, cfg->tls_key};
	s->tls = rh_tls_server_ctx_new(&files, cfg->tls12, err, err_len);
	return s->tls && rhd_server_access_setup(cfg, s->tls, &s->access, err,
						 err_len) == 0
		       ? 0
		       : -1;
}

/* Signals first: once the port accepts, SIGTERM must drain, never kill by
 * default. */
static int start_serving(server_t *s, char *err, size_t err_len)
{
	const rhd_config_t *cfg = s->cfg;
	uv_timer_init(&s->loops[0].uv, &s->watchdog);
	start_signals(s);
	if (start_listening(s) < 0)
		return -1;
	if (cfg->metrics_listen[0] &&
	    rhd_metrics_start(&s->loops[0].uv, cfg->metrics_listen, s->engine,
			      &s->conn_count, err, err_len) < 0) {
		RHD_ERROR("event=start-failed reason=\"%s\"", err);
		uv_close((uv_handle_t *)&s->listener, NULL);
		return -1;
	}
	return 0;
}

int rhd_server_run(const rhd_config_t *cfg, rhd_engine_t *engine)
{
	char err[512];
	static server_t s;
	memset(&s, 0, sizeof(s));
	if (server_init(&s, cfg, engine, err, sizeof(err)) < 0 ||
	    load_access(&s, err, sizeof(err)) < 0) {
		RHD_ERROR("event=start-failed reason=\"%s\"", err);
		for (unsigned i = 0; i < s.n_loops; i++)
			loop_close(&s.loops[i]);
		server_cleanup(&s);
		return -1;
	}
	int rc = start_serving(&s, err, sizeof(err));
	if (rc == 0) {
		start_loops(&s);
		tell_service_manager(&s);
		run_loop(&s.loops[0]);
		join_loops(&s);
		/* Closing them gives the signals their default action back;
		 * the daemon is past its drain: ignored to the end. */
		uv_close((uv_handle_t *)&s.sigterm, NULL);
		uv_close((uv_handle_t *)&s.sigint, NULL);
		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		RHD_INFO("event=stopped drain-ms=%llu",
			 (unsigned long long)((uv_hrtime() -
					       s.drain_started_ns) /
					      1000000u));
	} else {
		uv_close((uv_handle_t *)&s.sigterm, NULL);
		uv_close((uv_handle_t *)&s.sigint, NULL);
		uv_close((uv_handle_t *)&s.sighup, NULL);
		for (unsigned i = 1; i < s.n_loops; i++)
			loop_close(&s.loops[i]);
	}
	uv_close((uv_handle_t *)&s.watchdog, NULL);
	loop_close(&s.loops[0]);
	server_cleanup(&s);
	return rc;
}
