/*
 * An arena for the short-lived parts of one message: everything allocated
 * from it is wiped and freed together by rh_arena_cleanup().
 */
#ifndef RH_ARENA_H
#define RH_ARENA_H

#include <stddef.h>

struct rh_arena_block;

typedef struct rh_arena {
	struct rh_arena_block *head;
} rh_arena_t;

#define RH_ARENA_INIT                                                          \
	{                                                                      \
		NULL                                                           \
	}

/* Zeroed memory owned by the arena, or NULL when out of memory. */
void *rh_arena_alloc(rh_arena_t *arena, size_t size);
void *rh_arena_memdup(rh_arena_t *arena, const void *src, size_t size);
void rh_arena_cleanup(rh_arena_t *arena);

#endif
