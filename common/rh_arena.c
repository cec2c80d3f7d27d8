#include "rh_arena.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct rh_arena_block {
	struct rh_arena_block *next;
	size_t size;
	max_align_t data[];
};

void *rh_arena_alloc(rh_arena_t *arena, size_t size)
{
	if (size > SIZE_MAX - sizeof(struct rh_arena_block))
		return NULL;
	struct rh_arena_block *block =
		calloc(1, sizeof(struct rh_arena_block) + size);
	if (!block)
		return NULL;
	block->size = size;
	block->next = arena->head;
	arena->head = block;
	return block->data;
}

void *rh_arena_memdup(rh_arena_t *arena, const void *src, size_t size)
{
	void *dst = rh_arena_alloc(arena, size);
	if (dst && size)
		memcpy(dst, src, size);
	return dst;
}

/* Response buffers may hold random bytes or key material: wipe them all. */
void rh_arena_cleanup(rh_arena_t *arena)
{
	struct rh_arena_block *block = arena->head;
	while (block) {
		struct rh_arena_block *next = block->next;
		OPENSSL_cleanse(block->data, block->size);
		free(block);
		block = next;
	}
	arena->head = NULL;
}
