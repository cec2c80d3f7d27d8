/*
 * C_GenerateRandom round trips through any PKCS#11 module, at several
 * thread counts, printing ops/s and p50/p99 latency. Each thread has its own
 * session. Figures, not pass/fail: nothing here times out on a slow machine.
 */
#include "bench.h"
#include "cli.h"

#include "flood.h"
#include "p11.h"

#include <p11-kit/pkcs11.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_THREADS 256

typedef struct bench_thread {
	pthread_t thread;
	CK_FUNCTION_LIST *p11;
	CK_SESSION_HANDLE session;
	double seconds;
	unsigned bytes;
	CK_OBJECT_HANDLE key; /* sign with it; 0: C_GenerateRandom */
	int rsa;	      /* the key is RSA-2048: CKM_RSA_PKCS */
	uint32_t *samples_ns;
	size_t count, cap;
	CK_RV failure;
} bench_thread_t;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int record(bench_thread_t *t, uint64_t ns)
{
	if (t->count == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 65536;
		uint32_t *grown = realloc(t->samples_ns, cap * sizeof(*grown));
		if (!grown)
			return -1;
		t->samples_ns = grown;
		t->cap = cap;
	}
	t->samples_ns[t->count++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	return 0;
}

/* One measured call: an ECDSA signature over a 32-byte hash (init and
 * sign), or random bytes. */
static CK_RV one_call(bench_thread_t *t, unsigned char *buf)
{
	if (!t->key)
		return t->p11->C_GenerateRandom(t->session, buf, t->bytes);
	/* ECDSA over a 32-byte hash; RSA over a 51-byte SHA-256 DigestInfo. */
	CK_MECHANISM mech = {t->rsa ? CKM_RSA_PKCS : CKM_ECDSA, NULL, 0};
	CK_ULONG len = 512;
	CK_RV rv = t->p11->C_SignInit(t->session, &mech, t->key);
	return rv == CKR_OK ? t->p11->C_Sign(t->session, buf, t->rsa ? 51 : 32,
					     buf + 64, &len)
			    : rv;
}

static void *run_thread(void *arg)
{
	bench_thread_t *t = arg;
	unsigned char buf[1024] = "a 32-byte hash to sign, repeated";
	uint64_t end = now_ns() + (uint64_t)(t->seconds * 1e9);
	for (uint64_t start = now_ns(); start < end; start = now_ns()) {
		CK_RV rv = one_call(t, buf);
		if (rv != CKR_OK) {
			t->failure = rv;
			break;
		}
		if (record(t, now_ns() - start) < 0)
			break;
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Gathers every thread's samples: ops/s, p50, p99 and the distribution. */
static int summarise(bench_thread_t *threads, unsigned n, double wall,
		     rh_bench_round_t *out)
{
	size_t total = 0;
	for (unsigned i = 0; i < n; i++) {
		if (threads[i].failure != CKR_OK) {
			fprintf(stderr, "bench: the measured call failed: %s\n",
				rh_ckr_name(threads[i].failure));
			return -1;
		}
		total += threads[i].count;
	}
	uint32_t *all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		return -1;
	size_t off = 0;
	for (unsigned i = 0; i < n; i++) {
		memcpy(all + off, threads[i].samples_ns,
		       threads[i].count * sizeof(*all));
		off += threads[i].count;
	}
	qsort(all, total, sizeof(*all), cmp_u32);
	out->threads = n;
	out->calls = total;
	out->ops = (double)total / wall;
	out->p50_us = total ? all[total / 2] / 1000.0 : 0;
	out->p99_us = total ? all[(total * 99) / 100] / 1000.0 : 0;
	for (unsigned k = 0; k < RH_BENCH_QUANTILES; k++) {
		size_t at = (size_t)(rh_bench_quantile(k) * (double)total);
		out->q_us[k] =
			total ? all[at < total ? at : total - 1] / 1000.0 : 0;
	}
	free(all);
	return 0;
}

static void print_round(const rh_bench_round_t *r, const char *label)
{
	char daemon[32] = "-";
	if (r->daemon_cpu_us >= 0)
		snprintf(daemon, sizeof(daemon), "%.1f", r->daemon_cpu_us);
	printf("%-8u %-10lu %-12.0f %-10.1f %-10.1f %-10.1f %-10s%s\n",
	       r->threads, r->calls, r->ops, r->p50_us, r->p99_us,
	       r->client_cpu_us, daemon, label);
	fflush(stdout);
}

/* The table of one sequential thread's samples (login, find): the header,
 * then its line with the time the calls took as the wall clock. */
static void report_sequential(bench_thread_t *t)
{
	printf("%-8s %-10s %-12s %-10s %-10s\n", "threads", "calls", "ops/s",
	       "p50_us", "p99_us");
	double busy = 0;
	rh_bench_round_t r;
	for (size_t i = 0; i < t->count; i++)
		busy += t->samples_ns[i] / 1e9;
	if (summarise(t, 1, busy, &r) == 0)
		printf("%-8u %-10lu %-12.0f %-10.1f %-10.1f\n", r.threads,
		       r.calls, r.ops, r.p50_us, r.p99_us);
}

static CK_RV open_sessions(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot,
			   bench_thread_t *threads, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL,
					      NULL, &threads[i].session);
		if (rv != CKR_OK)
			return rv;
	}
	return CKR_OK;
}

typedef struct bench_opts {
	/* --module, then each --compare: the same rounds through each */
	const char *modules[RH_BENCH_MAX_MODULES];
	unsigned nmodules;
	unsigned flood;	      /* --flood N: each round again under N half-open
				 handshakes */
	const char *sign_pin; /* set: sign after this login */
	int rsa;	      /* --key rsa: RSA-2048 rather than ECDSA P-256 */
	int token_key;	      /* --token-key: the key a token object */
	const char *plot;     /* --plot FILE.svg */
	pid_t daemon;	      /* --daemon-pid, else found on loopback */
	unsigned threads[RH_BENCH_MAX_ROUNDS], nthreads, bytes, slot_index;
	double seconds;
} bench_opts_t;

/* A module under measurement: loaded, a slot picked, and with --sign-pin
 * a session logged in holding the signing key. */
typedef struct target {
	const char *path;
	void *handle;
	CK_FUNCTION_LIST *p11;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE setup;
	CK_OBJECT_HANDLE key; /* 0: C_GenerateRandom */
	CK_OBJECT_HANDLE pub;
	int token_key; /* --token-key: the pair destroyed at the end */
	pid_t daemon;  /* the daemon behind it, whose CPU is counted */
} target_t;

static uint64_t self_cpu_ns(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return ((uint64_t)u.ru_utime.tv_sec + (uint64_t)u.ru_stime.tv_sec) *
		       1000000000u +
	       ((uint64_t)u.ru_utime.tv_usec + (uint64_t)u.ru_stime.tv_usec) *
		       1000u;
}

/* CPU time so far: this process's, and the daemon's when it is known. */
typedef struct cpu_mark {
	uint64_t self, daemon;
	int has_daemon;
} cpu_mark_t;

static cpu_mark_t cpu_mark(pid_t daemon)
{
	cpu_mark_t m = {.self = self_cpu_ns()};
	m.has_daemon =
		daemon > 0 && rh_bench_process_cpu_ns(daemon, &m.daemon) == 0;
	return m;
}

static void cpu_per_call(const cpu_mark_t *before, pid_t daemon,
			 rh_bench_round_t *r)
{
	cpu_mark_t after = cpu_mark(daemon);
	double calls = r->calls ? (double)r->calls : 1;
	r->client_cpu_us = (double)(after.self - before->self) / 1e3 / calls;
	r->daemon_cpu_us =
		before->has_daemon && after.has_daemon
			? (double)(after.daemon - before->daemon) / 1e3 / calls
			: -1;
}

static int start_threads(const target_t *t, const bench_opts_t *o,
			 bench_thread_t *threads, unsigned n)
{
	unsigned started = 0;
	for (; started < n; started++) {
		threads[started] =
			(bench_thread_t){.p11 = t->p11,
					 .session = threads[started].session,
					 .seconds = o->seconds,
					 .bytes = o->bytes,
					 .key = t->key,
					 .rsa = o->rsa};
		if (pthread_create(&threads[started].thread, NULL, run_thread,
				   &threads[started]) != 0)
			break;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i].thread, NULL);
	return started == n ? 0 : -1;
}

/* n threads calling through t for the round's seconds, then its line. */
static int run_round(const target_t *t, const bench_opts_t *o, unsigned n,
		     const char *label, rh_bench_round_t *result)
{
	bench_thread_t *threads = calloc(n, sizeof(*threads));
	if (!threads)
		return -1;
	int rc = -1;
	CK_RV rv = open_sessions(t->p11, t->slot, threads, n);
	if (rv != CKR_OK) {
		fprintf(stderr, "bench: C_OpenSession failed: 0x%lx\n", rv);
		goto out;
	}
	cpu_mark_t before = cpu_mark(t->daemon);
	uint64_t start = now_ns();
	if (start_threads(t, o, threads, n) == 0 &&
	    summarise(threads, n, (double)(now_ns() - start) / 1e9, result) ==
		    0) {
		cpu_per_call(&before, t->daemon, result);
		print_round(result, label);
		rc = 0;
	}
out:
	for (unsigned i = 0; i < n; i++) {
		if (threads[i].session)
			t->p11->C_CloseSession(threads[i].session);
		free(threads[i].samples_ns);
	}
	free(threads);
	return rc;
}

static int parse_threads(const char *list, unsigned *out, unsigned *n)
{
	*n = 0;
	char copy[256];
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		long v = strtol(tok, NULL, 10);
		if (v < 1 || v > MAX_THREADS || *n >= RH_BENCH_MAX_ROUNDS)
			return -1;
		out[(*n)++] = (unsigned)v;
	}
	return *n ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: remhsm bench [--module PATH] [--threads 1,8,32] "
		"[--seconds S] [--bytes N] [--slot-index I] [--sign-pin PIN "
		"[--key ec|rsa] [--token-key]] [--compare PATH]... [--flood N] "
		"[--plot FILE.svg]\n"
		"       [--daemon-pid PID]\n"
		"  Measures C_GenerateRandom round trips through a PKCS#11 "
		"module\n"
		"  (default: the remhsm module, configured by REMHSM_* "
		"variables)\n"
		"  and prints ops/s, p50/p99 latency and the CPU time per call "
		"of this\n"
		"  process and of the daemon (found listening on "
		"REMHSM_SERVER when that\n"
		"  is a loopback address), next to the bare operation's cost "
		"in OpenSSL;\n"
		"  with --sign-pin USER_PIN, signatures instead: ECDSA P-256, "
		"or\n"
		"  RSA-2048 with --key rsa; --token-key makes the key a token "
		"object\n"
		"  (it outlives a move to another daemon of a cluster; "
		"destroyed at the end).\n"
		"  With --flood N, each round runs "
		"again while\n"
		"  N connections sit mid-handshake (REMHSM_SERVER), and the "
		"p99 ratio is\n"
		"  printed. Each --compare PATH (up to three) runs every round "
		"through\n"
		"  that module too (SoftHSMv2, p11-kit's client; the same user "
		"PIN), and\n"
		"  the ratios are printed. --plot draws throughput against "
		"threads and\n"
		"  the latency distributions as an SVG file.\n"
		"       remhsm bench login --pin USER_PIN [--count N]   "
		"C_Login latency\n"
		"       remhsm bench store --dir EMPTY_DIR [--store "
		"EMPTY_LOCATION [--shared]]\n"
		"                          [--objects 1000,100000,1000000]\n"
		"  store write/read/find latency at each size (SQLite in DIR, "
		"or at LOCATION\n"
		"  under DIR's key: postgresql://...)\n");
}

static int parse_args(int argc, char **argv, bench_opts_t *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--token-key")) {
			o->token_key = 1;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h") || !v)
			return -1;
		i++;
		if (!strcmp(a, "--module"))
			o->modules[0] = v;
		else if (!strcmp(a, "--compare")) {
			if (o->nmodules == RH_BENCH_MAX_MODULES)
				return -1;
			o->modules[o->nmodules++] = v;
		} else if (!strcmp(a, "--plot"))
			o->plot = v;
		else if (!strcmp(a, "--daemon-pid")) {
			char *end;
			long pid = strtol(v, &end, 10);
			if (*end || pid < 1 || pid > INT32_MAX)
				return -1;
			o->daemon = (pid_t)pid;
		} else if (!strcmp(a, "--threads")) {
			if (parse_threads(v, o->threads, &o->nthreads) < 0)
				return -1;
		} else if (!strcmp(a, "--seconds"))
			o->seconds = strtod(v, NULL);
		else if (!strcmp(a, "--bytes"))
			o->bytes = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--slot-index"))
			o->slot_index = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--sign-pin"))
			o->sign_pin = v;
		else if (!strcmp(a, "--flood"))
			o->flood = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--key") &&
			 (!strcmp(v, "ec") || !strcmp(v, "rsa")))
			o->rsa = !strcmp(v, "rsa");
		else
			return -1;
	}
	return (o->seconds > 0 && o->seconds <= 600 && o->bytes >= 1 &&
		o->bytes <= 256)
		       ? 0
		       : -1;
}

static int pick_slot(CK_FUNCTION_LIST *p11, unsigned index, CK_SLOT_ID *slot)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_RV rv = p11->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK || index >= n) {
		fprintf(stderr,
			"bench: no slot %u (C_GetSlotList: 0x%lx, %lu slots)\n",
			index, rv, n);
		return -1;
	}
	*slot = slots[index];
	return 0;
}

/* C_Login + C_Logout through the module: the PIN KDF's cost, measured as
 * the client sees it. */
static int bench_login(int argc, char **argv)
{
	const char *module = rh_default_module(), *pin = getenv("REMHSM_PIN");
	unsigned count = 20;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--module"))
			module = argv[i + 1];
		else if (!strcmp(argv[i], "--pin"))
			pin = argv[i + 1];
		else if (!strcmp(argv[i], "--count"))
			count = (unsigned)strtoul(argv[i + 1], NULL, 10);
	}
	if (!pin || count < 1 || count > 100000 || argc % 2 == 0) {
		fprintf(stderr, "usage: remhsm bench login --pin USER_PIN "
				"[--count N] [--module PATH]\n");
		return 2;
	}
	void *handle;
	CK_FUNCTION_LIST *p11 = rh_p11_load(module, &handle);
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE h;
	if (!p11 || pick_slot(p11, 0, &slot) < 0 ||
	    p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h) !=
		    CKR_OK)
		return 1;
	bench_thread_t t = {0};
	int rc = 0;
	for (unsigned i = 0; i < count && rc == 0; i++) {
		uint64_t t0 = now_ns();
		CK_RV rv = p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin,
					strlen(pin));
		rc = rv == CKR_OK && record(&t, now_ns() - t0) == 0 ? 0 : -1;
		if (rv != CKR_OK)
			fprintf(stderr, "bench: C_Login failed: %s\n",
				rh_ckr_name(rv));
		p11->C_Logout(h);
	}
	if (rc == 0) {
		printf("C_Login (user) through %s, %u logins\n", module, count);
		report_sequential(&t);
	}
	free(t.samples_ns);
	p11->C_Finalize(NULL);
	return rc < 0 ? 1 : 0;
}

/* A P-256 key pair as session objects of a logged-in setup session: every
 * session of the application can use it while that one stays open. */
/* A key pair as session objects of a logged-in setup session: every
 * session of the application can use it while that one stays open. */
static CK_RV make_sign_key(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot,
			   const char *pin, int rsa, int token,
			   CK_SESSION_HANDLE *setup, CK_OBJECT_HANDLE *pub_key,
			   CK_OBJECT_HANDLE *key)
{
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_MECHANISM gen = {
		rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_BBOOL yes = CK_TRUE;
	CK_ULONG bits = 2048;
	CK_BBOOL kept = token ? CK_TRUE : CK_FALSE;
	CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &kept, sizeof(kept)},
			      {CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
	if (rsa)
		pub[1] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
	CK_ATTRIBUTE priv[] = {{CKA_SIGN, &yes, sizeof(yes)},
			       {CKA_TOKEN, &kept, sizeof(kept)}};
	CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				      NULL, NULL, setup);
	if (rv == CKR_OK)
		rv = p11->C_Login(*setup, CKU_USER, (CK_UTF8CHAR_PTR)pin,
				  strlen(pin));
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
		rv = p11->C_GenerateKeyPair(*setup, &gen, pub, 2, priv, 2,
					    pub_key, key);
	if (rv != CKR_OK)
		fprintf(stderr, "bench: making the signing key failed: %s\n",
			rh_ckr_name(rv));
	return rv;
}

/* Fills the token with n data objects labelled "object-<i>" (reusing
 * what an earlier run left), then times FreeRTOS's find by label: init,
 * one C_FindObjects, final. */
static int bench_find(int argc, char **argv)
{
	const char *module = rh_default_module(), *pin = getenv("REMHSM_PIN");
	unsigned long n = 100000, samples = 1000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--module"))
			module = argv[i + 1];
		else if (!strcmp(argv[i], "--pin"))
			pin = argv[i + 1];
		else if (!strcmp(argv[i], "--objects"))
			n = strtoul(argv[i + 1], NULL, 10);
	}
	if (!pin || n < 1 || argc % 2 == 0) {
		fprintf(stderr, "usage: remhsm bench find --pin USER_PIN "
				"[--objects N] [--module PATH]\n");
		return 2;
	}
	void *handle;
	CK_FUNCTION_LIST *p11 = rh_p11_load(module, &handle);
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE h;
	if (!p11 || pick_slot(p11, 0, &slot) < 0 ||
	    p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
			       NULL, &h) != CKR_OK ||
	    p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) !=
		    CKR_OK)
		return 1;
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	char label[32];
	CK_ATTRIBUTE find[] = {{CKA_LABEL, label, 0},
			       {CKA_CLASS, &cls, sizeof(cls)}};
	CK_ATTRIBUTE make[] = {{CKA_CLASS, &cls, sizeof(cls)},
			       {CKA_TOKEN, &yes, 1},
			       {CKA_LABEL, label, 0}};
	uint64_t t0 = now_ns();
	unsigned long made = 0;
	for (unsigned long i = 0; i < n; i++) {
		make[2].ulValueLen = find[0].ulValueLen = (CK_ULONG)snprintf(
			label, sizeof(label), "object-%lu", i);
		CK_OBJECT_HANDLE o;
		CK_ULONG count = 0;
		/* Resume a fill that an earlier run left. */
		if (i % 1000 == 0 &&
		    p11->C_FindObjectsInit(h, find, 2) == CKR_OK) {
			p11->C_FindObjects(h, &o, 1, &count);
			p11->C_FindObjectsFinal(h);
			if (count) {
				i += 999;
				continue;
			}
		}
		if (p11->C_CreateObject(h, make, 3, &o) != CKR_OK)
			return 1;
		made++;
	}
	printf("token holds %lu objects (%lu made in %.1f s); find by label "
	       "and class, %lu samples\n",
	       n, made, (double)(now_ns() - t0) / 1e9, samples);
	bench_thread_t t = {0};
	int rc = 0;
	for (unsigned long i = 0; i < samples && rc == 0; i++) {
		find[0].ulValueLen =
			(CK_ULONG)snprintf(label, sizeof(label), "object-%lu",
					   (unsigned long)rand() % n);
		CK_OBJECT_HANDLE o;
		CK_ULONG count = 0;
		uint64_t start = now_ns();
		CK_RV rv = p11->C_FindObjectsInit(h, find, 2);
		if (rv == CKR_OK)
			rv = p11->C_FindObjects(h, &o, 1, &count);
		CK_RV fin = p11->C_FindObjectsFinal(h);
		rc = rv == CKR_OK && fin == CKR_OK && count == 1 &&
				     record(&t, now_ns() - start) == 0
			     ? 0
			     : -1;
	}
	if (rc == 0)
		report_sequential(&t);
	free(t.samples_ns);
	p11->C_Finalize(NULL);
	return rc < 0 ? 1 : 0;
}

static int open_target(const bench_opts_t *o, const char *path, target_t *t)
{
	*t = (target_t){.path = path, .setup = CK_INVALID_HANDLE};
	t->p11 = rh_p11_load(path, &t->handle);
	if (!t->p11 || pick_slot(t->p11, o->slot_index, &t->slot) < 0)
		return -1;
	t->token_key = o->token_key;
	if (o->sign_pin &&
	    make_sign_key(t->p11, t->slot, o->sign_pin, o->rsa, o->token_key,
			  &t->setup, &t->pub, &t->key) != CKR_OK)
		return -1;
	return 0;
}

/* Where the remhsm module connects, as REMHSM_SERVER says. */
static const char *daemon_address(void)
{
	const char *server = getenv("REMHSM_SERVER");
	return server ? server : "127.0.0.1:5697";
}

/* The round again with a handshake flood held open; the p99 ratio. */
static int flooded_round(const target_t *t, const bench_opts_t *o,
			 unsigned threads, double base_p99)
{
	rh_flood_t flood;
	unsigned opened = rh_flood_start(&flood, daemon_address(), o->flood);
	char label[64];
	snprintf(label, sizeof(label), "  (%u handshakes held open)", opened);
	rh_bench_round_t flooded;
	int rc = run_round(t, o, threads, label, &flooded);
	rh_flood_stop(&flood);
	if (rc == 0)
		printf("p99 under the flood: %.2fx the baseline\n",
		       base_p99 > 0 ? flooded.p99_us / base_p99 : 0);
	return rc;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* One thread count through every module in turn, and how the first
 * compares with each of the others. */
static int bench_threads(const target_t *targets, const bench_opts_t *o,
			 unsigned round, rh_bench_run_t *run)
{
	unsigned threads = o->threads[round];
	for (unsigned m = 0; m < o->nmodules; m++) {
		char label[16] = "";
		if (o->nmodules > 1)
			snprintf(label, sizeof(label), "  %u", m + 1);
		rh_bench_round_t *r = &run->rounds[m][round];
		if (run_round(&targets[m], o, threads, label, r) < 0)
			return -1;
		if (m == 0 && o->flood &&
		    flooded_round(&targets[0], o, threads, r->p99_us) < 0)
			return -1;
	}
	const rh_bench_round_t *mine = &run->rounds[0][round];
	for (unsigned m = 1; m < o->nmodules; m++) {
		const rh_bench_round_t *theirs = &run->rounds[m][round];
		printf("%-8s ratio 1/%u: ops/s %.2fx, p50 %.2fx, p99 %.2fx\n",
		       "", m + 1, ratio(mine->ops, theirs->ops),
		       ratio(mine->p50_us, theirs->p50_us),
		       ratio(mine->p99_us, theirs->p99_us));
	}
	return 0;
}

static const char *measured_call(const bench_opts_t *o, const target_t *t)
{
	if (!t->key)
		return "C_GenerateRandom";
	return o->rsa ? "C_SignInit + C_Sign, CKM_RSA_PKCS RSA-2048 over a "
			"51-byte DigestInfo"
		      : "C_SignInit + C_Sign, CKM_ECDSA P-256 over 32 bytes";
}

/* The bare operation's cost in this process, to set the daemon's CPU per
 * call against. */
static double raw_cost(const bench_opts_t *o, const target_t *t)
{
	return rh_bench_raw_cost_us(t->key ? (o->rsa ? 'r' : 'e') : 'n',
				    o->bytes);
}

static void print_heading(const bench_opts_t *o, const target_t *targets,
			  double raw)
{
	for (unsigned m = 0; m < o->nmodules; m++)
		printf("module%s%.0u: %s\n", o->nmodules > 1 ? " " : "",
		       o->nmodules > 1 ? m + 1 : 0, targets[m].path);
	if (targets[0].daemon > 0)
		printf("daemon of module%s: pid %d (its CPU time from "
		       "/proc/%d/stat)\n",
		       o->nmodules > 1 ? " 1" : "", (int)targets[0].daemon,
		       (int)targets[0].daemon);
	else
		printf("daemon: not on this machine, its CPU is not counted "
		       "(--daemon-pid PID names it)\n");
	const char *what = measured_call(o, &targets[0]);
	if (targets[0].key)
		printf("%s, %.1f s per round\n", what, o->seconds);
	else
		printf("%s of %u bytes, %.1f s per round\n", what, o->bytes,
		       o->seconds);
	if (raw > 0)
		printf("the bare operation in this process's OpenSSL: %.1f us "
		       "of CPU\n",
		       raw);
	printf("%-8s %-10s %-12s %-10s %-10s %-10s %-10s%s\n", "threads",
	       "calls", "ops/s", "p50_us", "p99_us", "cpu_us", "daemon_us",
	       o->nmodules > 1 ? "  module" : "");
}

/* The daemon's CPU per call against the bare operation, per thread
 * count. */
static void print_daemon_cost(const bench_opts_t *o, const rh_bench_run_t *run,
			      double raw)
{
	for (unsigned i = 0; i < o->nthreads; i++) {
		const rh_bench_round_t *r = &run->rounds[0][i];
		if (r->daemon_cpu_us >= 0 && raw > 0)
			printf("%u threads: the daemon spent %.1f us of CPU "
			       "per call, %.2fx the bare operation\n",
			       r->threads, r->daemon_cpu_us,
			       r->daemon_cpu_us / raw);
	}
}

static int plot(const bench_opts_t *o, rh_bench_run_t *run,
		const target_t *targets)
{
	run->what = measured_call(o, &targets[0]);
	run->nmodules = o->nmodules;
	run->nrounds = o->nthreads;
	for (unsigned m = 0; m < o->nmodules; m++)
		run->modules[m] = o->modules[m];
	if (rh_bench_plot_svg(o->plot, run) < 0) {
		fprintf(stderr, "bench: cannot write %s: %s\n", o->plot,
			strerror(errno));
		return -1;
	}
	printf("plot: %s\n", o->plot);
	return 0;
}

static void close_targets(target_t *targets, unsigned n)
{
	for (unsigned m = 0; m < n; m++) {
		target_t *t = &targets[m];
		if (t->p11 && t->token_key && t->key) /* left on the token */
			(void)(t->p11->C_DestroyObject(t->setup, t->key) |
			       t->p11->C_DestroyObject(t->setup, t->pub));
		if (t->p11)
			t->p11->C_Finalize(NULL);
	}
}

static int open_targets(const bench_opts_t *o, target_t *targets)
{
	for (unsigned m = 0; m < o->nmodules; m++)
		if (open_target(o, o->modules[m], &targets[m]) < 0)
			return -1;
	uint64_t cpu;
	if (o->daemon > 0 && rh_bench_process_cpu_ns(o->daemon, &cpu) < 0) {
		fprintf(stderr,
			"bench: --daemon-pid %d: no such process (cannot read "
			"/proc/%d/stat)\n",
			(int)o->daemon, (int)o->daemon);
		return -1;
	}
	targets[0].daemon = o->daemon > 0
				    ? o->daemon
				    : rh_bench_find_daemon(daemon_address());
	return 0;
}

int rh_bench_main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "find"))
		return bench_find(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "store"))
		return rh_bench_store_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "login"))
		return bench_login(argc - 1, argv + 1);
	bench_opts_t o = {.modules = {rh_default_module()},
			  .nmodules = 1,
			  .threads = {1, 8, 32},
			  .nthreads = 3,
			  .bytes = 32,
			  .seconds = 3};
	if (parse_args(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	target_t targets[RH_BENCH_MAX_MODULES] = {0};
	static rh_bench_run_t run;
	int rc = open_targets(&o, targets);
	if (rc == 0) {
		double raw = raw_cost(&o, &targets[0]);
		print_heading(&o, targets, raw);
		for (unsigned i = 0; i < o.nthreads && rc == 0; i++)
			rc = bench_threads(targets, &o, i, &run);
		if (rc == 0)
			print_daemon_cost(&o, &run, raw);
		if (rc == 0 && o.plot)
			rc = plot(&o, &run, targets);
	}
	close_targets(targets, o.nmodules);
	return rc < 0 ? 1 : 0;
}
