/*
 * Memory for secrets (token keys, the resume key): pages of their own,
 * excluded from core dumps, locked in RAM where RLIMIT_MEMLOCK allows (so
 * they are never written to swap), wiped before they are given back.
 */
#ifndef RH_SECRET_H
#define RH_SECRET_H

#include <stddef.h>

/* size zeroed bytes, or NULL when out of memory. */
void *rh_secret_alloc(size_t size);

/* Wipes and releases what rh_secret_alloc returned (NULL: nothing). */
void rh_secret_free(void *secret, size_t size);

/* Called once, with mlock's errno, the first time a secret cannot be
 * locked: it stays in its own pages out of core dumps, but may be swapped.
 * Set it before the first secret is made. */
void rh_secret_on_unlocked(void (*warn)(int err));

#endif
