/*
 * Established connections per certificate identity, over every event
 * loop: the loop that admits a connection takes a place, the loop that
 * closes it gives the place back.
 */
#ifndef RHD_IDCOUNT_H
#define RHD_IDCOUNT_H

typedef struct rhd_idcount rhd_idcount_t;

rhd_idcount_t *rhd_idcount_new(void);
void rhd_idcount_free(rhd_idcount_t *counts);

/* A place for identity: 1 when taken, 0 when it holds limit already, -1
 * when out of memory. */
int rhd_idcount_take(rhd_idcount_t *counts, const char *identity,
		     unsigned limit);

/* Gives back a place taken by rhd_idcount_take. */
void rhd_idcount_give(rhd_idcount_t *counts, const char *identity);

#endif
