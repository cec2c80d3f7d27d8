#ifndef RH_BENCH_H
#define RH_BENCH_H

#include <stdint.h>
#include <sys/types.h>

/* `remhsm bench`: C_GenerateRandom round trips through a PKCS#11 module. */
int rh_bench_main(int argc, char **argv);

/* `remhsm bench store`: the store's latency at several sizes. */
int rh_bench_store_main(int argc, char **argv);

#define RH_BENCH_MAX_MODULES 4
#define RH_BENCH_MAX_ROUNDS 16
/* Points of the latency distribution kept per round: the percentiles 1 to
 * 99, then 99.5 and 99.9. */
#define RH_BENCH_QUANTILES 101

/* The fraction of calls at or under the i-th point of a distribution. */
double rh_bench_quantile(unsigned i);

/* One thread count through one module. */
typedef struct rh_bench_round {
	unsigned threads;
	unsigned long calls;
	double ops, p50_us, p99_us;
	double client_cpu_us; /* this process's CPU time per call */
	double daemon_cpu_us; /* the daemon's CPU time per call; < 0: unknown */
	double q_us[RH_BENCH_QUANTILES];
} rh_bench_round_t;

/* Everything one run measured, for the picture. */
typedef struct rh_bench_run {
	const char *what; /* the measured call, for the title */
	const char *modules[RH_BENCH_MAX_MODULES];
	unsigned nmodules, nrounds;
	rh_bench_round_t rounds[RH_BENCH_MAX_MODULES][RH_BENCH_MAX_ROUNDS];
} rh_bench_run_t;

/* Writes throughput against threads and the latency distributions of
 * every module as one SVG file; < 0 with errno when it cannot. */
int rh_bench_plot_svg(const char *path, const rh_bench_run_t *run);

/* The process that listens on server's port, when server is a loopback
 * address ("127.0.0.1:5697", "[::1]:5697", "localhost:5697"); 0 when it is
 * not local or no process of this machine listens there. */
pid_t rh_bench_find_daemon(const char *server);

/* A process's CPU time (user and system) so far, from /proc/PID/stat. */
int rh_bench_process_cpu_ns(pid_t pid, uint64_t *ns);

/* What the measured call costs in this process's own OpenSSL, in CPU
 * microseconds: the signature itself (key 'e' ECDSA P-256, 'r' RSA-2048
 * PKCS#1 v1.5) or 'n', random bytes of that many. < 0 when it fails. */
double rh_bench_raw_cost_us(int key, unsigned bytes);

#endif
