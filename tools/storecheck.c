#include "storecheck.h"

#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rhs.h"

typedef struct tally {
	unsigned tokens, objects, problems;
} tally_t;

static void problem(tally_t *t, const char *row, const char *what, int err)
{
	printf("%s: %s%s\n", row, what, rhs_strerror(err));
	t->problems++;
}

static void check_objects(rhs_store_t *store, uint32_t slot, tally_t *t)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	char row[64];
	snprintf(row, sizeof(row), "objects/%u", slot);
	int rc = rhs_object_find(store, slot, NULL, &ids, &n);
	if (rc < 0) {
		problem(t, row, "cannot list: ", rc);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t *rec;
		size_t len;
		rc = rhs_object_get(store, slot, ids[i], &rec, &len);
		snprintf(row, sizeof(row), "objects/%u/%llu", slot,
			 (unsigned long long)ids[i]);
		if (rc < 0)
			problem(t, row, "", rc);
		else
			rhs_free(rec, len);
		t->objects++;
	}
	free(ids);
}

static void check_token(rhs_store_t *store, uint32_t slot, tally_t *t)
{
	char row[32];
	snprintf(row, sizeof(row), "tokens/%u", slot);
	if (rhs_token_damaged(store, slot)) {
		printf("%s: the token's rows do not add up: one was put back "
		       "from an older copy, removed, added, moved or edited "
		       "outside remhsmd\n",
		       row);
		t->problems++;
	}
	uint8_t *rec;
	size_t len;
	int rc = rhs_token_get(store, slot, &rec, &len);
	if (rc == RHS_OK) {
		rhs_free(rec, len);
		t->tokens++;
	} else if (rc != RHS_ENOTFOUND) {
		problem(t, row, "", rc);
	}
	check_objects(store, slot, t);
}

static int usage(void)
{
	fprintf(stderr, "usage: remhsm store check --state-dir DIR "
			"[--store-key FILE] [--store LOCATION]\n"
			"  checks every sealed record, index entry and "
			"counter of DIR/store.db\n"
			"  (or of the store at LOCATION: sqlite:PATH, "
			"postgresql://...),\n"
			"  reading one snapshot of it and writing nothing "
			"(remhsmd may be running)\n");
	return 2;
}

static int check(const char *dir, const char *key_file, const char *location)
{
	char db[PATH_MAX + 16], err[1024];
	snprintf(db, sizeof(db), "%s/store.db", dir);
	if (location)
		snprintf(db, sizeof(db), "%s", location);
	else if (access(db, F_OK) != 0) {
		fprintf(stderr, "remhsm store check: %s: no store there\n", db);
		return 1;
	}
	uint8_t key[RHS_KEY_LEN];
	rhs_store_t *store = NULL;
	const rhs_open_opts_t snapshot = {.snapshot = 1};
	int rc = rhs_key_load_from(dir, key_file, key, err, sizeof(err));
	if (rc == RHS_OK)
		rc = rhs_open(db, key, &snapshot, &store, err, sizeof(err));
	memset(key, 0, sizeof(key));
	if (rc < 0) {
		fprintf(stderr, "remhsm store check: %s\n", err);
		return 1;
	}
	tally_t t = {0};
	for (uint32_t slot = 0; slot < RHS_MAX_TOKENS; slot++)
		check_token(store, slot, &t);
	char audit[PATH_MAX + 16];
	snprintf(audit, sizeof(audit), "%s/audit.log", dir);
	uint64_t anchor = rhs_anchor_last(audit), counter = rhs_counter(store);
	if (counter < anchor) {
		printf("store: write counter %llu is below the %llu remhsmd "
		       "recorded in audit.log: an older copy of store.db\n",
		       (unsigned long long)counter, (unsigned long long)anchor);
		t.problems++;
	}
	rhs_close(store);
	printf("store check: %s: %u tokens, %u objects, write counter %llu: "
	       "%u problem%s\n",
	       db, t.tokens, t.objects, (unsigned long long)counter, t.problems,
	       t.problems == 1 ? "" : "s");
	return t.problems ? 1 : 0;
}

int rh_store_main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "copy"))
		return rh_store_copy_main(argc, argv);
	if (argc < 2 || strcmp(argv[1], "check") != 0)
		return usage();
	rh_store_args_t a;
	if (rh_store_args(argc, argv, &a) < 0 || !a.dir || a.rest != argc)
		return usage();
	return check(a.dir, a.key_file, a.location);
}

int rh_store_args(int argc, char **argv, rh_store_args_t *a)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 'd'},
		{"store-key", required_argument, NULL, 'k'},
		{"store", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	memset(a, 0, sizeof(*a));
	int c;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'd')
			a->dir = optarg;
		else if (c == 'k')
			a->key_file = optarg;
		else if (c == 's')
			a->location = optarg;
		else
			return -1;
	}
	a->rest = optind;
	return 0;
}
