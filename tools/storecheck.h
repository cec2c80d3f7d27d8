/* remhsm store check: every record, index and counter of a store;
 * remhsm store copy: a store moved to another backend. */
#ifndef RH_STORECHECK_H
#define RH_STORECHECK_H

int rh_store_main(int argc, char **argv);
int rh_store_copy_main(int argc, char **argv);

/* The options the store commands share, read from argv[2] on; rest is
 * the index of the first argument after them. -1 on an unknown one. */
typedef struct rh_store_args {
	const char *dir, *key_file, *location;
	int rest;
} rh_store_args_t;
int rh_store_args(int argc, char **argv, rh_store_args_t *a);

#endif
