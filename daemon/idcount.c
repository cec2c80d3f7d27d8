#include "idcount.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 256

typedef struct entry {
	struct entry *next;
	unsigned count;
	char identity[];
} entry_t;

struct rhd_idcount {
	pthread_mutex_t lock;
	entry_t *buckets[BUCKETS];
};

/* FNV-1a: identities are chosen by whoever holds a certificate the CA
 * signed, and a chain only slows that identity's own admissions. */
static entry_t **bucket(rhd_idcount_t *t, const char *identity)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)identity; *p; p++)
		h = (h ^ *p) * 16777619u;
	return &t->buckets[h % BUCKETS];
}

/* The link that points at identity's entry (to a NULL one when none). */
static entry_t **find(rhd_idcount_t *t, const char *identity)
{
	entry_t **e = bucket(t, identity);
	while (*e && strcmp((*e)->identity, identity))
		e = &(*e)->next;
	return e;
}

rhd_idcount_t *rhd_idcount_new(void)
{
	rhd_idcount_t *t = calloc(1, sizeof(*t));
	if (t)
		pthread_mutex_init(&t->lock, NULL);
	return t;
}

void rhd_idcount_free(rhd_idcount_t *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < BUCKETS; i++)
		for (entry_t *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int rhd_idcount_take(rhd_idcount_t *t, const char *identity, unsigned limit)
{
	if (limit == 0)
		return 0;
	pthread_mutex_lock(&t->lock);
	entry_t **at = find(t, identity);
	int r = 1;
	if (!*at) {
		size_t len = strlen(identity) + 1;
		entry_t *e = calloc(1, sizeof(*e) + len);
		if (e)
			memcpy(e->identity, identity, len);
		*at = e;
		r = e ? 1 : -1;
	}
	if (r == 1 && (*at)->count >= limit)
		r = 0;
	if (r == 1)
		(*at)->count++;
	pthread_mutex_unlock(&t->lock);
	return r;
}

void rhd_idcount_give(rhd_idcount_t *t, const char *identity)
{
	pthread_mutex_lock(&t->lock);
	entry_t **at = find(t, identity);
	entry_t *e = *at;
	if (e && --e->count == 0) {
		*at = e->next;
		free(e);
	}
	pthread_mutex_unlock(&t->lock);
}
