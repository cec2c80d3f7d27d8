/* remhsm store copy: a store moved between backends (SQLite and
 * PostgreSQL), checked record by record. */
#include "storecheck.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "rhs.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: remhsm store copy (--state-dir DIR | --store-key FILE) "
		"FROM TO\n"
		"  copies every token and object of the store at FROM into "
		"the new, empty\n"
		"  store at TO (a path, sqlite:PATH or postgresql://...), "
		"both under one store\n"
		"  key (--store-key, else DIR/store.key), and checks each "
		"record of the copy\n"
		"  against the source. FROM is read as one snapshot "
		"(remhsmd may be running on it).\n");
	return 2;
}

/* The store key, which must exist: a copy never makes a new one. */
static int load_key(const char *dir, const char *key_file,
		    uint8_t key[RHS_KEY_LEN], char *err, size_t err_len)
{
	char path[PATH_MAX + 16];
	if (key_file)
		snprintf(path, sizeof(path), "%s", key_file);
	else
		snprintf(path, sizeof(path), "%s/store.key", dir);
	if (!getenv("CREDENTIALS_DIRECTORY") && access(path, R_OK) != 0) {
		snprintf(err, err_len, "%.900s: no store key there", path);
		return RHS_EKEYFILE;
	}
	return rhs_key_load_from(dir ? dir : "/nonexistent", key_file, key, err,
				 err_len);
}

static int copy(const char *dir, const char *key_file, const char *from_at,
		const char *to_at)
{
	char err[1024];
	uint8_t key[RHS_KEY_LEN];
	rhs_store_t *from = NULL, *to = NULL;
	const rhs_open_opts_t snapshot = {.snapshot = 1};
	int rc = load_key(dir, key_file, key, err, sizeof(err));
	if (rc == RHS_OK)
		rc = rhs_open(from_at, key, &snapshot, &from, err, sizeof(err));
	if (rc == RHS_OK)
		rc = rhs_open(to_at, key, NULL, &to, err, sizeof(err));
	OPENSSL_cleanse(key, sizeof(key));
	rhs_copy_tally_t tally = {0};
	if (rc == RHS_OK)
		rc = rhs_copy(from, to, &tally, err, sizeof(err));
	rhs_close(to);
	rhs_close(from);
	if (rc < 0) {
		fprintf(stderr, "remhsm store copy: %s\n", err);
		return 1;
	}
	printf("store copy: %u tokens, %llu objects copied and checked\n",
	       tally.tokens, (unsigned long long)tally.objects);
	return 0;
}

int rh_store_copy_main(int argc, char **argv)
{
	rh_store_args_t a;
	if (rh_store_args(argc, argv, &a) < 0 || a.location ||
	    (!a.dir && !a.key_file) || argc - a.rest != 2)
		return usage();
	return copy(a.dir, a.key_file, argv[a.rest], argv[a.rest + 1]);
}
