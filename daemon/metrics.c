#include "metrics.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "log.h"
#include "remhsm.pb-c.h"
#include "rh_calls.h"
#include "server.h"

#define MAX_SERIES 512
#define MAX_CALLS 64
#define MAX_REQUEST 4096

static const double bounds_s[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
				  0.01,	  0.025,   0.05,   0.1,	  0.25,	  1.0};
#define N_BOUNDS (sizeof(bounds_s) / sizeof(bounds_s[0]))

typedef struct series {
	unsigned call;
	uint64_t mechanism, rv, count;
} series_t;

typedef struct histogram {
	uint64_t buckets[N_BOUNDS], count;
	double sum_s;
} histogram_t;

/* The counters are written by every event loop: one lock, held for a
 * counter's update or a scrape's rendering. */
static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
	uint64_t accepted, refused, login_failures;
	series_t series[MAX_SERIES];
	size_t n_series;
	histogram_t latency[MAX_CALLS];
	uv_tcp_t listener;
	int listening;
	rhd_engine_t *engine;
	const atomic_uint *open_connections;
} m;

void rhd_metrics_connection(rhd_conn_event_t what)
{
	pthread_mutex_lock(&counters_lock);
	if (what == RHD_CONN_ACCEPTED)
		m.accepted++;
	else
		m.refused++;
	pthread_mutex_unlock(&counters_lock);
}

static void count_call(unsigned call, uint64_t mechanism, uint64_t rv,
		       uint64_t ns)
{
	if (call == REMHSM__REQUEST__CALL_LOGIN && rv != CKR_OK)
		m.login_failures++;
	size_t i = 0;
	while (i < m.n_series &&
	       (m.series[i].call != call ||
		m.series[i].mechanism != mechanism || m.series[i].rv != rv))
		i++;
	if (i == m.n_series && m.n_series < MAX_SERIES)
		m.series[m.n_series++] = (series_t){call, mechanism, rv, 0};
	if (i < m.n_series)
		m.series[i].count++;
	histogram_t *h = &m.latency[call];
	double s = (double)ns / 1e9;
	for (size_t b = 0; b < N_BOUNDS; b++)
		h->buckets[b] += s <= bounds_s[b];
	h->count++;
	h->sum_s += s;
}

void rhd_metrics_call(unsigned call, uint64_t mechanism, uint64_t rv,
		      uint64_t ns)
{
	if (call >= MAX_CALLS || !rh_call_name(call))
		return;
	pthread_mutex_lock(&counters_lock);
	count_call(call, mechanism, rv, ns);
	pthread_mutex_unlock(&counters_lock);
}

/* Appends printf-style text to a growing buffer. */
typedef struct text {
	char *buf;
	size_t len, cap;
} text_t;

static void put(text_t *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(text_t *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->buf ? t->buf + t->len : NULL,
				  t->buf ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->buf && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 16384;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *grown = realloc(t->buf, cap);
		if (!grown)
			return;
		t->buf = grown;
		t->cap = cap;
	}
}

static unsigned long open_sessions(void)
{
	unsigned long n = 0;
	for (unsigned slot = 0; slot < m.engine->slot_count; slot++) {
		rhd_token_t *t = rhd_engine_token(m.engine, slot);
		pthread_mutex_lock(&t->lock);
		n += t->sessions;
		pthread_mutex_unlock(&t->lock);
	}
	return n;
}

static void render_calls(text_t *t)
{
	put(t, "# HELP remhsm_calls_total Calls answered, by call, mechanism "
	       "named in the request (0x0: none) and result.\n"
	       "# TYPE remhsm_calls_total counter\n");
	for (size_t i = 0; i < m.n_series; i++)
		put(t,
		    "remhsm_calls_total{call=\"%s\",mechanism=\"0x%llx\","
		    "result=\"0x%llx\"} %llu\n",
		    rh_call_name(m.series[i].call),
		    (unsigned long long)m.series[i].mechanism,
		    (unsigned long long)m.series[i].rv,
		    (unsigned long long)m.series[i].count);
	put(t, "# HELP remhsm_call_duration_seconds Time from a request's "
	       "arrival to its answer.\n"
	       "# TYPE remhsm_call_duration_seconds histogram\n");
	for (unsigned c = 0; c < MAX_CALLS; c++) {
		const histogram_t *h = &m.latency[c];
		if (!h->count)
			continue;
		const char *name = rh_call_name(c);
		for (size_t b = 0; b < N_BOUNDS; b++)
			put(t,
			    "remhsm_call_duration_seconds_bucket{call=\"%s\","
			    "le=\"%g\"} %llu\n",
			    name, bounds_s[b],
			    (unsigned long long)h->buckets[b]);
		put(t,
		    "remhsm_call_duration_seconds_bucket{call=\"%s\",le=\"+"
		    "Inf\"} %llu\n"
		    "remhsm_call_duration_seconds_sum{call=\"%s\"} %.6f\n"
		    "remhsm_call_duration_seconds_count{call=\"%s\"} %llu\n",
		    name, (unsigned long long)h->count, name, h->sum_s, name,
		    (unsigned long long)h->count);
	}
}

static void render_counters(text_t *t, unsigned long sessions)
{
	put(t,
	    "# HELP remhsm_connections Client connections open now.\n"
	    "# TYPE remhsm_connections gauge\n"
	    "remhsm_connections %u\n"
	    "# HELP remhsm_connections_total Client connections accepted, "
	    "and refused (limits, access list).\n"
	    "# TYPE remhsm_connections_total counter\n"
	    "remhsm_connections_total{outcome=\"accepted\"} %llu\n"
	    "remhsm_connections_total{outcome=\"refused\"} %llu\n"
	    "# HELP remhsm_sessions PKCS#11 sessions open now, all "
	    "applications.\n"
	    "# TYPE remhsm_sessions gauge\n"
	    "remhsm_sessions %lu\n"
	    "# HELP remhsm_login_failures_total C_Login calls that failed.\n"
	    "# TYPE remhsm_login_failures_total counter\n"
	    "remhsm_login_failures_total %llu\n",
	    atomic_load(m.open_connections), (unsigned long long)m.accepted,
	    (unsigned long long)m.refused, sessions,
	    (unsigned long long)m.login_failures);
	size_t heap, used;
	rhd_crypto_secure_heap_usage(&heap, &used);
	put(t,
	    "# HELP remhsm_secure_heap_bytes OpenSSL's secure heap for "
	    "private keys: its size, and the bytes in use.\n"
	    "# TYPE remhsm_secure_heap_bytes gauge\n"
	    "remhsm_secure_heap_bytes{state=\"size\"} %zu\n"
	    "remhsm_secure_heap_bytes{state=\"used\"} %zu\n",
	    heap, used);
	render_calls(t);
}

static text_t render(void)
{
	text_t t = {0};
	unsigned long sessions = open_sessions(); /* under the tokens' locks */
	pthread_mutex_lock(&counters_lock);
	render_counters(&t, sessions);
	pthread_mutex_unlock(&counters_lock);
	return t;
}

/* --- the HTTP side: one request per connection */

typedef struct scrape {
	uv_tcp_t tcp;
	uv_write_t write;
	char request[MAX_REQUEST];
	size_t len;
	char *answer;
} scrape_t;

static void scrape_closed(uv_handle_t *h)
{
	scrape_t *s = h->data;
	free(s->answer);
	free(s);
}

static void scrape_written(uv_write_t *w, int status)
{
	(void)status;
	uv_close((uv_handle_t *)w->handle, scrape_closed);
}

static void answer(scrape_t *s)
{
	int ok = !strncmp(s->request, "GET /metrics ", 13) ||
		 !strncmp(s->request, "GET /metrics?", 13);
	text_t body = ok ? render() : (text_t){0};
	size_t cap = body.len + 256;
	s->answer = malloc(cap);
	if (!s->answer) {
		free(body.buf);
		uv_close((uv_handle_t *)&s->tcp, scrape_closed);
		return;
	}
	int n = snprintf(s->answer, cap,
			 "HTTP/1.1 %s\r\nContent-Type: text/plain; "
			 "version=0.0.4\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n%.*s",
			 ok ? "200 OK" : "404 Not Found", body.len,
			 (int)body.len, body.buf ? body.buf : "");
	free(body.buf);
	uv_buf_t buf = uv_buf_init(s->answer, (unsigned)n);
	uv_read_stop((uv_stream_t *)&s->tcp);
	if (uv_write(&s->write, (uv_stream_t *)&s->tcp, &buf, 1,
		     scrape_written) < 0)
		uv_close((uv_handle_t *)&s->tcp, scrape_closed);
}

static void scrape_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	(void)size;
	scrape_t *s = h->data;
	*buf = uv_buf_init(s->request + s->len,
			   (unsigned)(sizeof(s->request) - 1 - s->len));
}

static void scrape_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	scrape_t *s = stream->data;
	if (n < 0 || (n == 0 && s->len == sizeof(s->request) - 1)) {
		uv_close((uv_handle_t *)stream, scrape_closed);
		return;
	}
	s->len += (size_t)n;
	s->request[s->len] = '\0';
	if (strstr(s->request, "\r\n\r\n"))
		answer(s);
	else if (s->len == sizeof(s->request) - 1)
		uv_close((uv_handle_t *)stream, scrape_closed);
}

static void on_scrape(uv_stream_t *listener, int status)
{
	if (status < 0)
		return;
	scrape_t *s = calloc(1, sizeof(*s));
	if (!s)
		return;
	uv_tcp_init(listener->loop, &s->tcp);
	s->tcp.data = s;
	if (uv_accept(listener, (uv_stream_t *)&s->tcp) < 0 ||
	    uv_read_start((uv_stream_t *)&s->tcp, scrape_alloc, scrape_read) <
		    0)
		uv_close((uv_handle_t *)&s->tcp, scrape_closed);
}

/* listen as an address, if it is a loopback one (127.0.0.0/8, ::1). */
static int parse_loopback(const char *listen, struct sockaddr_storage *addr)
{
	if (rhd_server_parse_listen(listen, addr) < 0)
		return 0;
	if (addr->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
	return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
}

int rhd_metrics_listen_ok(const char *listen)
{
	struct sockaddr_storage addr;
	return parse_loopback(listen, &addr);
}

int rhd_metrics_start(uv_loop_t *loop, const char *listen, rhd_engine_t *engine,
		      const atomic_uint *open_connections, char *err,
		      size_t err_len)
{
	m.engine = engine;
	m.open_connections = open_connections;
	struct sockaddr_storage addr;
	if (!parse_loopback(listen, &addr)) {
		snprintf(err, err_len,
			 "metrics-listen '%s': a loopback ADDRESS:PORT only",
			 listen);
		return -1;
	}
	uv_tcp_init(loop, &m.listener);
	int r = uv_tcp_bind(&m.listener, (struct sockaddr *)&addr, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&m.listener, 16, on_scrape);
	if (r < 0) {
		snprintf(err, err_len, "metrics-listen %s: %s", listen,
			 uv_strerror(r));
		uv_close((uv_handle_t *)&m.listener, NULL);
		return -1;
	}
	m.listening = 1;
	struct sockaddr_storage bound;
	int len = sizeof(bound);
	char host[64] = "?";
	uv_tcp_getsockname(&m.listener, (struct sockaddr *)&bound, &len);
	if (bound.ss_family == AF_INET)
		uv_ip4_name((struct sockaddr_in *)&bound, host, sizeof(host));
	int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	RHD_INFO("event=metrics-listening listen=%s:%d", host, port);
	return 0;
}

void rhd_metrics_stop(void)
{
	if (m.listening)
		uv_close((uv_handle_t *)&m.listener, NULL);
	m.listening = 0;
}
