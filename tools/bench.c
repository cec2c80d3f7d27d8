/*
 * C_GenerateRandom round trips through any PKCS#11 module, at several
 * thread counts, printing ops/s and p50/p99 latency. Each thread has its own
 * session. Figures, not pass/fail: nothing here times out on a slow machine.
 */
#include "bench.h"
#include "p11.h"

#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 256

typedef struct bench_thread {
	pthread_t thread;
	CK_FUNCTION_LIST *p11;
	CK_SESSION_HANDLE session;
	double seconds;
	unsigned bytes;
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

static void *run_thread(void *arg)
{
	bench_thread_t *t = arg;
	unsigned char buf[256];
	uint64_t end = now_ns() + (uint64_t)(t->seconds * 1e9);
	for (uint64_t start = now_ns(); start < end; start = now_ns()) {
		CK_RV rv = t->p11->C_GenerateRandom(t->session, buf, t->bytes);
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

static int report(bench_thread_t *threads, unsigned n, double wall)
{
	size_t total = 0;
	for (unsigned i = 0; i < n; i++) {
		if (threads[i].failure != CKR_OK) {
			fprintf(stderr,
				"bench: C_GenerateRandom failed: 0x%lx\n",
				threads[i].failure);
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
	double p50 = total ? all[total / 2] / 1000.0 : 0;
	double p99 = total ? all[(total * 99) / 100] / 1000.0 : 0;
	printf("%-8u %-10zu %-12.0f %-10.1f %-10.1f\n", n, total,
	       (double)total / wall, p50, p99);
	fflush(stdout);
	free(all);
	return 0;
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

static int run_round(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot, unsigned n,
		     double seconds, unsigned bytes)
{
	bench_thread_t *threads = calloc(n, sizeof(*threads));
	if (!threads)
		return -1;
	int rc = -1;
	CK_RV rv = open_sessions(p11, slot, threads, n);
	if (rv != CKR_OK) {
		fprintf(stderr, "bench: C_OpenSession failed: 0x%lx\n", rv);
		goto out;
	}
	uint64_t start = now_ns();
	unsigned started = 0;
	for (; started < n; started++) {
		threads[started] =
			(bench_thread_t){.p11 = p11,
					 .session = threads[started].session,
					 .seconds = seconds,
					 .bytes = bytes};
		if (pthread_create(&threads[started].thread, NULL, run_thread,
				   &threads[started]) != 0)
			break;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i].thread, NULL);
	double wall = (double)(now_ns() - start) / 1e9;
	rc = started == n ? report(threads, n, wall) : -1;
out:
	for (unsigned i = 0; i < n; i++) {
		if (threads[i].session)
			p11->C_CloseSession(threads[i].session);
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
		if (v < 1 || v > MAX_THREADS || *n >= 16)
			return -1;
		out[(*n)++] = (unsigned)v;
	}
	return *n ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: remhsm bench [--module PATH] [--threads 1,8,32] "
		"[--seconds S] [--bytes N] [--slot-index I]\n"
		"  Measures C_GenerateRandom round trips through a PKCS#11 "
		"module\n"
		"  (default: the remhsm module, configured by REMHSM_* "
		"variables)\n"
		"  and prints ops/s and p50/p99 latency per thread count.\n"
		"       remhsm bench login --pin USER_PIN [--count N]   "
		"C_Login latency\n"
		"       remhsm bench store --dir EMPTY_DIR [--objects "
		"1000,100000,1000000]\n"
		"  store write/read/find latency at each size\n");
}

static int parse_args(int argc, char **argv, const char **module,
		      unsigned *threads, unsigned *nthreads, double *seconds,
		      unsigned *bytes, unsigned *slot_index)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h") || !v)
			return -1;
		i++;
		if (!strcmp(a, "--module"))
			*module = v;
		else if (!strcmp(a, "--threads")) {
			if (parse_threads(v, threads, nthreads) < 0)
				return -1;
		} else if (!strcmp(a, "--seconds"))
			*seconds = strtod(v, NULL);
		else if (!strcmp(a, "--bytes"))
			*bytes = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--slot-index"))
			*slot_index = (unsigned)strtoul(v, NULL, 10);
		else
			return -1;
	}
	return (*seconds > 0 && *seconds <= 600 && *bytes >= 1 && *bytes <= 256)
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
	const char *module = REMHSM_DEFAULT_MODULE, *pin = getenv("REMHSM_PIN");
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
		printf("%-8s %-10s %-12s %-10s %-10s\n", "threads", "calls",
		       "ops/s", "p50_us", "p99_us");
		double total = 0;
		for (size_t i = 0; i < t.count; i++)
			total += t.samples_ns[i] / 1e9;
		report(&t, 1, total);
	}
	free(t.samples_ns);
	p11->C_Finalize(NULL);
	return rc < 0 ? 1 : 0;
}

int rh_bench_main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "store"))
		return rh_bench_store_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "login"))
		return bench_login(argc - 1, argv + 1);
	const char *module = REMHSM_DEFAULT_MODULE;
	unsigned threads[16] = {1, 8, 32}, nthreads = 3, bytes = 32,
		 slot_index = 0;
	double seconds = 3;
	if (parse_args(argc, argv, &module, threads, &nthreads, &seconds,
		       &bytes, &slot_index) < 0) {
		usage();
		return 2;
	}
	void *handle = NULL;
	CK_FUNCTION_LIST *p11 = rh_p11_load(module, &handle);
	CK_SLOT_ID slot;
	if (!p11 || pick_slot(p11, slot_index, &slot) < 0)
		return 1;
	printf("module: %s\nC_GenerateRandom of %u bytes, %.1f s per round\n",
	       module, bytes, seconds);
	printf("%-8s %-10s %-12s %-10s %-10s\n", "threads", "calls", "ops/s",
	       "p50_us", "p99_us");
	int rc = 0;
	for (unsigned i = 0; i < nthreads && rc == 0; i++)
		rc = run_round(p11, slot, threads[i], seconds, bytes);
	p11->C_Finalize(NULL);
	return rc < 0 ? 1 : 0;
}
