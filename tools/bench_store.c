/*
 * `remhsm bench store`: the encrypted store's write, read and find
 * latency at several sizes, against the store library directly, on
 * SQLite (DIR/store.db) or at any location (--store: PostgreSQL, opened
 * as daemons sharing it would be with --shared). Each size
 * is filled in batches (one transaction per 1000 objects), then timed:
 * single creates (each its own durable transaction), reads by id, and
 * finds by label.
 */
#include <errno.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench.h"
#include "rhs.h"

#define RECORD_LEN 256
#define BATCH 1000
#define SAMPLES 300

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void report(const char *what, size_t objects, uint64_t *ns, size_t n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("%-10zu %-8s %-10.1f %-10.1f\n", objects, what,
	       (double)ns[n / 2] / 1000.0, (double)ns[(n * 99) / 100] / 1000.0);
	fflush(stdout);
}

static rhs_index_t index_for(uint64_t n, char label[32])
{
	snprintf(label, 32, "object-%llu", (unsigned long long)n);
	static const uint8_t cls[] = {3};
	rhs_index_t ix = {{cls, NULL, (const uint8_t *)label, NULL},
			  {sizeof(cls), 0, strlen(label), 0}};
	return ix;
}

static int fill(rhs_store_t *store, uint64_t from, uint64_t to,
		const uint8_t *record)
{
	for (uint64_t n = from; n < to;) {
		if (rhs_begin(store) < 0)
			return -1;
		for (unsigned i = 0; i < BATCH && n < to; i++, n++) {
			char label[32];
			rhs_index_t ix = index_for(n, label);
			uint64_t id;
			if (rhs_object_create(store, 0, &ix, record, RECORD_LEN,
					      &id) < 0) {
				rhs_rollback(store);
				return -1;
			}
		}
		if (rhs_commit(store) < 0)
			return -1;
	}
	return 0;
}

static int measure(rhs_store_t *store, uint64_t size, const uint8_t *record)
{
	uint64_t ns[SAMPLES];
	for (size_t i = 0; i < SAMPLES; i++) {
		char label[32];
		rhs_index_t ix = index_for(size + i, label);
		uint64_t id, t0 = now_ns();
		if (rhs_object_create(store, 0, &ix, record, RECORD_LEN, &id) <
		    0)
			return -1;
		ns[i] = now_ns() - t0;
	}
	report("create", size, ns, SAMPLES);
	for (size_t i = 0; i < SAMPLES; i++) {
		uint64_t id = 1 + (uint64_t)rand() % size, t0 = now_ns();
		uint8_t *rec;
		size_t len;
		if (rhs_object_get(store, 0, id, &rec, &len) < 0)
			return -1;
		ns[i] = now_ns() - t0;
		rhs_free(rec, len);
	}
	report("read", size, ns, SAMPLES);
	for (size_t i = 0; i < SAMPLES; i++) {
		char label[32];
		rhs_index_t ix = index_for((uint64_t)rand() % size, label);
		uint64_t *ids, t0 = now_ns();
		size_t count;
		if (rhs_object_find(store, 0, &ix, &ids, &count) < 0 ||
		    count != 1)
			return -1;
		ns[i] = now_ns() - t0;
		free(ids);
	}
	report("find", size, ns, SAMPLES);
	return 0;
}

static int parse_sizes(const char *list, uint64_t *sizes, size_t *n)
{
	char copy[256];
	snprintf(copy, sizeof(copy), "%s", list);
	*n = 0;
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save);
	     tok && *n < 8; tok = strtok_r(NULL, ",", &save)) {
		sizes[*n] = strtoull(tok, NULL, 10);
		if (sizes[*n] < 1 || (*n && sizes[*n] <= sizes[*n - 1]))
			return -1;
		(*n)++;
	}
	return *n ? 0 : -1;
}

int rh_bench_store_main(int argc, char **argv)
{
	const char *dir = NULL, *list = "1000,100000,1000000", *where = NULL;
	rhs_open_opts_t opts = {0};
	int bad = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--shared"))
			opts.shared = 1;
		else if (i + 1 == argc)
			bad = 1;
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[++i];
		else if (!strcmp(argv[i], "--objects"))
			list = argv[++i];
		else if (!strcmp(argv[i], "--store"))
			where = argv[++i];
		else
			bad = 1;
	}
	uint64_t sizes[8];
	size_t nsizes;
	if (!dir || bad || parse_sizes(list, sizes, &nsizes) < 0) {
		fprintf(stderr,
			"usage: remhsm bench store --dir EMPTY_DIR "
			"[--store EMPTY_LOCATION [--shared]] [--objects "
			"1000,100000,1000000]\n");
		return 2;
	}
	char err[1024], path[4096];
	uint8_t key[RHS_KEY_LEN], record[RECORD_LEN];
	rhs_store_t *store;
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr,
			"remhsm bench store: --dir %s: %s (it needs an empty "
			"folder to build its store in)\n",
			dir, errno ? strerror(errno) : "not a folder");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/store.db", dir);
	RAND_bytes(record, sizeof(record));
	if (rhs_key_load(dir, key, err, sizeof(err)) < 0 ||
	    rhs_open(where ? where : path, key, &opts, &store, err,
		     sizeof(err)) < 0) {
		fprintf(stderr, "remhsm bench store: %s\n", err);
		return 1;
	}
	printf("store: %s%s, %d-byte records, %d samples per figure\n",
	       where ? "the location given" : path,
	       opts.shared ? " (shared)" : "", RECORD_LEN, SAMPLES);
	printf("%-10s %-8s %-10s %-10s\n", "objects", "op", "p50_us", "p99_us");
	int rc = 0;
	uint64_t have = 0;
	for (size_t i = 0; i < nsizes && rc == 0; i++) {
		rc = fill(store, have, sizes[i], record);
		have = sizes[i];
		if (rc == 0)
			rc = measure(store, sizes[i], record);
		have += SAMPLES;
	}
	if (rc < 0)
		fprintf(stderr, "remhsm bench store: a store call failed\n");
	rhs_close(store);
	return rc < 0 ? 1 : 0;
}
