/*
 * The TLS transport: a non-blocking socket, OpenSSL over memory BIOs, and
 * bounded poll() waits. Every system call is retried on EINTR (the FreeRTOS
 * POSIX port interrupts its task threads with a signal at every tick); an
 * interrupted connect() is completed with poll() and SO_ERROR, never
 * re-issued. send() uses MSG_NOSIGNAL so a closed peer cannot raise SIGPIPE
 * in the application.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rh_err.h"
#include "rh_frame.h"
#include "rh_tls.h"
#include "rhc.h"
#include "shield.h"

struct rhc_link {
	int fd;
	SSL *ssl;
	BIO *net_in;
	BIO *net_out;
	uint64_t spin_ns;     /* REMHSM_SPIN_US */
	uint64_t wait_avg_ns; /* how long answers took lately */
};

/* Threads polling a socket right now; at most one per spare core, so that
 * polling threads never take the CPU from each other or from the daemon. */
static atomic_uint spinners;

uint64_t rhc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int take_spinner(void)
{
	static atomic_long spare_cores = -1;
	long spare = atomic_load(&spare_cores);
	if (spare < 0) {
		spare = sysconf(_SC_NPROCESSORS_ONLN) - 1;
		atomic_store(&spare_cores, spare);
	}
	if (spare < 1)
		return 0;
	if (atomic_fetch_add(&spinners, 1) < (unsigned)spare)
		return 1;
	atomic_fetch_sub(&spinners, 1);
	return 0;
}

/* Waits for events on fd until the deadline; EINTR only shortens a wait. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - rhc_now_ms();
		if (left <= 0)
			return RH_ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		rhc_wait_begin();
		int r = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		rhc_wait_end();
		if (r > 0)
			return RH_OK;
		if (r < 0 && errno != EINTR)
			return RH_EIO;
	}
}

static int send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(fd, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		return RH_EIO;
	}
	return RH_OK;
}

/* Sends whatever OpenSSL has produced. */
static int flush_out(rhc_link_t *l, int64_t deadline)
{
	uint8_t buf[16384];
	while (BIO_ctrl_pending(l->net_out) > 0) {
		int n = BIO_read(l->net_out, buf, (int)sizeof(buf));
		if (n <= 0)
			return RH_ETLS;
		int r = send_all(l->fd, buf, (size_t)n, deadline);
		if (r < 0)
			return r;
	}
	return RH_OK;
}

static int would_block(ssize_t n)
{
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* A recv() that, when nothing has come yet, polls the socket for up to the
 * link's spin budget before giving up: a thread sleeping in poll() is woken
 * tens of microseconds late on a virtual machine, longer than a P-256
 * signature takes. It polls only while recent answers came within the
 * budget, so a slow call (an RSA-4096 signature, a login) is not spun for. */
static ssize_t recv_polling(rhc_link_t *l, uint8_t *buf, size_t cap)
{
	ssize_t n = recv(l->fd, buf, cap, 0);
	if (!would_block(n) || !l->spin_ns || l->wait_avg_ns > l->spin_ns ||
	    !take_spinner())
		return n;
	uint64_t until = rhc_now_ns() + l->spin_ns;
	rhc_wait_begin();
	do
		n = recv(l->fd, buf, cap, 0);
	while ((would_block(n) || (n < 0 && errno == EINTR)) &&
	       rhc_now_ns() < until);
	rhc_wait_end();
	atomic_fetch_sub(&spinners, 1);
	return n;
}

/* Feeds OpenSSL with the next bytes from the socket. */
static int fill_in(rhc_link_t *l, int64_t deadline)
{
	uint8_t buf[16384];
	int polled = 0;
	for (;;) {
		ssize_t n = polled ? recv(l->fd, buf, sizeof(buf), 0)
				   : recv_polling(l, buf, sizeof(buf));
		polled = 1;
		if (n > 0)
			return BIO_write(l->net_in, buf, (int)n) == n
				       ? RH_OK
				       : RH_ENOMEM;
		if (n == 0)
			return RH_ECLOSED;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return RH_EIO;
		int r = wait_fd(l->fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

/* Why the last connection of this thread failed, for REMHSM_DEBUG and
 * for tools that explain an unreachable daemon. */
static _Thread_local char last_error[512];

static void link_failed(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void link_failed(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	rhc_debug("%s", last_error);
}

const char *rhc_link_last_error(void)
{
	return last_error;
}

/* A connected socket, or -1 with errno saying why (ETIMEDOUT when the
 * deadline passed). */
static int connect_socket(const struct addrinfo *ai, int64_t deadline,
			  int *fd_slot)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0)
		return -1;
	*fd_slot = fd; /* held by the link from here, should the wait end us */
	int err = 0;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EINTR) {
		err = errno;
	} else if (wait_fd(fd, POLLOUT, deadline) < 0) {
		err = ETIMEDOUT;
	} else {
		socklen_t len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
	}
	if (!err)
		return fd;
	*fd_slot = -1;
	close(fd);
	errno = err;
	return -1;
}

static int split_host_port(const char *server, char *host, size_t host_cap,
			   const char **port)
{
	const char *colon = strrchr(server, ':');
	if (!colon || colon == server || colon[1] == '\0')
		return -1;
	const char *start = server;
	const char *end = colon;
	if (*start == '[' && end[-1] == ']') {
		start++;
		end--;
	}
	size_t len = (size_t)(end - start);
	if (len == 0 || len >= host_cap)
		return -1;
	memcpy(host, start, len);
	host[len] = '\0';
	*port = colon + 1;
	return 0;
}

/* Connects *fd (the socket is there as soon as it exists); -1 on
 * failure. */
static int open_tcp(const char *host, const char *port, int64_t deadline,
		    int *fd_slot)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	struct addrinfo *list = NULL;
	int gai = getaddrinfo(host, port, &hints, &list);
	if (gai != 0) {
		link_failed("cannot resolve %s: %s", host, gai_strerror(gai));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next)
		fd = connect_socket(ai, deadline, fd_slot);
	freeaddrinfo(list);
	if (fd < 0)
		link_failed("cannot connect to %s:%s: %s", host, port,
			    strerror(errno));
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

/* The server certificate must name the host we dialled. */
static int expect_peer_name(SSL *ssl, const char *host)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	if (X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1)
		return 0;
	ERR_clear_error();
	SSL_set_tlsext_host_name(ssl, host);
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

/* Verification as OpenSSL does it, remembering which certificate of the
 * server's chain it refused and why. */
static int note_refused_certificate(int ok, X509_STORE_CTX *store)
{
	if (ok)
		return ok;
	char subject[256] = "(none)";
	X509 *cert = X509_STORE_CTX_get_current_cert(store);
	if (cert)
		X509_NAME_oneline(X509_get_subject_name(cert), subject,
				  sizeof(subject));
	link_failed(
		"TLS: the server's certificate %s (depth %d) was refused: "
		"%s",
		subject, X509_STORE_CTX_get_error_depth(store),
		X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
	return ok;
}

/* What OpenSSL said, unless the verification has said it already. */
static void handshake_failed(rhc_link_t *l)
{
	char why[256];
	rh_tls_last_error(why, sizeof(why));
	if (SSL_get_verify_result(l->ssl) == X509_V_OK)
		link_failed("TLS handshake failed: %s",
			    why[0] ? why : "connection closed");
}

static int handshake(rhc_link_t *l, int64_t deadline)
{
	for (;;) {
		ERR_clear_error(); /* see read_exact */
		int r = SSL_do_handshake(l->ssl);
		int fr = flush_out(l, deadline);
		if (fr < 0)
			return fr;
		if (r == 1)
			return RH_OK;
		if (SSL_get_error(l->ssl, r) != SSL_ERROR_WANT_READ) {
			handshake_failed(l);
			return RH_ETLS;
		}
		int ir = fill_in(l, deadline);
		if (ir == RH_ECLOSED)
			link_failed("the server closed the connection during "
				    "the TLS handshake (is it remhsmd, and "
				    "does it accept this client's "
				    "certificate?)");
		else if (ir == RH_ETIMEDOUT)
			link_failed("the TLS handshake timed out");
		if (ir < 0)
			return ir;
	}
}

/* What l holds, gone: l is as a new link (no socket, no TLS). */
static void link_reset(rhc_link_t *l)
{
	if (l->ssl)
		SSL_free(l->ssl);
	else {
		BIO_free(l->net_in);
		BIO_free(l->net_out);
	}
	if (l->fd >= 0)
		close(l->fd);
	memset(l, 0, sizeof(*l));
	l->fd = -1;
}

static void link_free(rhc_link_t *l)
{
	link_reset(l);
	free(l);
}

/* One server of the list: "host:port". */
static int open_link_to(const rhc_config_t *cfg, SSL_CTX *tls, rhc_link_t *l,
			const char *server)
{
	char host[256];
	const char *port;
	if (split_host_port(server, host, sizeof(host), &port) < 0) {
		link_failed("bad server address '%s'", server);
		return RH_ECONFIG;
	}
	int64_t deadline = rhc_now_ms() + cfg->connect_timeout_ms;
	l->spin_ns = (uint64_t)cfg->spin_us * 1000u;
	if (open_tcp(host, port, deadline, &l->fd) < 0)
		return RH_EIO;
	l->net_in = BIO_new(BIO_s_mem());
	l->net_out = BIO_new(BIO_s_mem());
	l->ssl = l->net_in && l->net_out ? SSL_new(tls) : NULL;
	if (!l->ssl)
		return RH_ENOMEM;
	BIO_set_mem_eof_return(l->net_in, -1);
	SSL_set_bio(l->ssl, l->net_in, l->net_out);
	SSL_set_connect_state(l->ssl);
	SSL_set_verify(l->ssl, SSL_VERIFY_PEER, note_refused_certificate);
	int r = expect_peer_name(l->ssl, host) < 0 ? RH_ETLS
						   : handshake(l, deadline);
	if (r < 0) {
		rhc_debug("cannot open TLS to %s: %s", server, rh_strerror(r));
		return r;
	}
	last_error[0] = '\0';
	return RH_OK;
}

/* server may list several daemons of one cluster, "a:5697,b:5697". A new
 * application starts at the first, at a random one (spread), or at the
 * one holding the fewest client connections (least busy: each daemon is
 * asked, ties going to the first from a random place). The one that
 * answered last is tried first after that. One that failed is passed over
 * for BACKOFF_S while another may answer, and tried again after; with
 * least busy, the others are asked again once the chosen one failed. */
#define MAX_SERVERS 8
#define BACKOFF_S 2
static atomic_uint preferred;
/* Least busy: preferred is the daemon the survey chose. */
static atomic_int chosen;
/* In seconds of the monotonic clock: 32 bits, lock-free on i386 too. */
static atomic_int failed_until[MAX_SERVERS];

void rhc_servers_start(const rhc_config_t *cfg)
{
	unsigned start = 0;
	if (cfg->server_choice != RHC_FIRST &&
	    RAND_bytes((unsigned char *)&start, sizeof(start)) != 1)
		start = (unsigned)getpid(); /* spread all the same */
	atomic_store(&preferred, start);
	atomic_store(&chosen, 0);
	for (size_t i = 0; i < MAX_SERVERS; i++)
		atomic_store(&failed_until[i], 0);
}

static int now_s(void)
{
	return (int)(rhc_now_ms() / 1000);
}

static int resting(size_t i)
{
	return atomic_load(&failed_until[i]) > now_s();
}

static size_t split_servers(const char *list, char out[][256], size_t max)
{
	size_t n = 0;
	for (const char *p = list; *p && n < max;) {
		size_t len = strcspn(p, ",");
		if (len > 0 && len < 256) {
			memcpy(out[n], p, len);
			out[n++][len] = '\0';
		}
		p += len + (p[len] == ',');
	}
	return n;
}

/* A link in l to server i, which is then preferred, or else rests. */
static int try_server(const rhc_config_t *cfg, SSL_CTX *tls, rhc_link_t *l,
		      const char *server, size_t i)
{
	int r = open_link_to(cfg, tls, l, server);
	if (r == RH_OK) {
		atomic_store(&preferred, (unsigned)i);
		atomic_store(&failed_until[i], 0);
	} else if (r != RH_ECONFIG) {
		atomic_store(&failed_until[i], now_s() + BACKOFF_S);
		link_reset(l);
	}
	return r;
}

/* The links this thread is opening, for tls_abandon. */
static _Thread_local rhc_link_t *opening, *asking;

static void tls_close(rhc_link_t *l, int graceful);

/* Least busy: every daemon not resting is asked how busy it is, and l
 * keeps the link to the least busy one; the others are closed. RH_EIO
 * when none could tell. */
static int survey(const rhc_config_t *cfg, SSL_CTX *tls,
		  rhc_ask_load_t ask_load, char servers[][256], size_t n,
		  rhc_link_t *l)
{
	size_t from = atomic_load(&preferred) % n, best = n;
	uint32_t least = UINT32_MAX;
	for (size_t k = 0; k < n; k++) {
		size_t i = (from + k) % n;
		asking = resting(i) ? NULL : calloc(1, sizeof(*asking));
		if (!asking)
			continue;
		asking->fd = -1;
		uint32_t load = 0;
		int r = try_server(cfg, tls, asking, servers[i], i);
		if (r == RH_ECONFIG) {
			link_free(asking);
			asking = NULL;
			return r;
		}
		if (r == RH_OK && ask_load(asking, &load) == RH_OK &&
		    (best == n || load < least)) {
			link_reset(l);
			*l = *asking;
			free(asking);
			best = i;
			least = load;
		} else if (r == RH_OK)
			tls_close(asking, 1);
		else
			link_free(asking);
		asking = NULL;
	}
	if (best == n)
		return RH_EIO;
	rhc_debug("least busy: %s with %u connection(s)", servers[best], least);
	atomic_store(&preferred, (unsigned)best);
	atomic_store(&chosen, 1);
	return RH_OK;
}

static int open_link(const rhc_config_t *cfg, SSL_CTX *tls,
		     rhc_ask_load_t ask_load, rhc_link_t *l)
{
	char servers[MAX_SERVERS][256];
	size_t n = split_servers(cfg->server, servers, MAX_SERVERS);
	if (n == 0) {
		link_failed("bad server address '%s'", cfg->server);
		return RH_ECONFIG;
	}
	unsigned first = atomic_load(&preferred) % (unsigned)n;
	int r = RH_EIO;
	if (cfg->server_choice == RHC_LEAST_BUSY && n > 1) {
		if (atomic_load(&chosen)) {
			r = try_server(cfg, tls, l, servers[first], first);
			if (r == RH_OK || r == RH_ECONFIG)
				return r;
			atomic_store(&chosen, 0);
		}
		r = survey(cfg, tls, ask_load, servers, n, l);
		if (r == RH_OK || r == RH_ECONFIG)
			return r;
	}
	/* First those not failed lately, then (none answered) the rest. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < n; k++) {
			size_t i = (first + k) % n;
			if (n > 1 && resting(i) != pass)
				continue;
			r = try_server(cfg, tls, l, servers[i], i);
			if (r == RH_OK || r == RH_ECONFIG)
				return r;
		}
		if (n == 1)
			break;
	}
	return r;
}

static int tls_connect(const rhc_config_t *cfg, SSL_CTX *tls,
		       rhc_ask_load_t ask_load, rhc_link_t **out)
{
	rhc_link_t *l = calloc(1, sizeof(*l));
	if (!l)
		return RH_ENOMEM;
	l->fd = -1;
	opening = l;
	int r = open_link(cfg, tls, ask_load, l);
	opening = NULL;
	if (r < 0)
		link_free(l);
	else
		*out = l;
	return r;
}

static void tls_abandon(void)
{
	if (asking)
		link_free(asking);
	if (opening)
		link_free(opening);
	asking = opening = NULL;
}

static int tls_send(rhc_link_t *l, const uint8_t *frame, size_t len,
		    unsigned timeout_ms)
{
	if (len > INT32_MAX)
		return RH_ETLS;
	ERR_clear_error(); /* see read_exact */
	if (SSL_write(l->ssl, frame, (int)len) != (int)len)
		return RH_ETLS;
	return flush_out(l, rhc_now_ms() + timeout_ms);
}

static int read_exact(rhc_link_t *l, uint8_t *buf, size_t len, int64_t deadline)
{
	size_t got = 0;
	while (got < len) {
		/* SSL_get_error reads the thread's error queue, which the
		 * application shares with us: an error it left there (a
		 * failed PEM parse, say) would read as a broken link. */
		ERR_clear_error();
		int n = SSL_read(l->ssl, buf + got, (int)(len - got));
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		int err = SSL_get_error(l->ssl, n);
		if (err == SSL_ERROR_ZERO_RETURN)
			return RH_ECLOSED;
		if (err != SSL_ERROR_WANT_READ) {
			char why[256];
			rh_tls_last_error(why, sizeof(why));
			rhc_debug("TLS read failed: %s", why);
			return RH_ETLS;
		}
		int r = fill_in(l, deadline);
		if (r < 0)
			return r;
	}
	return RH_OK;
}

static int tls_receive(rhc_link_t *l, uint32_t max_payload, uint8_t **payload,
		       size_t *len, unsigned timeout_ms)
{
	int64_t deadline = rhc_now_ms() + timeout_ms;
	uint64_t started = rhc_now_ns();
	uint8_t header[RH_FRAME_HEADER];
	int r = read_exact(l, header, sizeof(header), deadline);
	if (r < 0)
		return r;
	l->wait_avg_ns = (l->wait_avg_ns * 3 + (rhc_now_ns() - started)) / 4;
	uint32_t n;
	r = rh_frame_header_decode(header, max_payload, &n);
	if (r < 0)
		return r;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return RH_ENOMEM;
	r = read_exact(l, buf, n, deadline);
	if (r < 0) {
		free(buf);
		return r;
	}
	*payload = buf;
	*len = n;
	return RH_OK;
}

static int tls_check_idle(rhc_link_t *l)
{
	struct pollfd p = {.fd = l->fd, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r == 0 ? RH_OK : RH_ECLOSED;
}

static void tls_close(rhc_link_t *l, int graceful)
{
	if (graceful) {
		SSL_shutdown(l->ssl);
		(void)flush_out(l, rhc_now_ms() + 100);
	}
	link_free(l);
}

const rhc_transport_t rhc_tls_transport = {
	.connect = tls_connect,
	.send = tls_send,
	.receive = tls_receive,
	.check_idle = tls_check_idle,
	.close = tls_close,
	.abandon = tls_abandon,
};
