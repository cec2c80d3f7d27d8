/*
 * A fair queue of long calls for the worker threads: one FIFO per tenant
 * (a certificate identity), served round robin, with a cap on how many
 * workers one tenant may hold at once. A flood from one identity fills its
 * own queue and never more than its share of the workers, so another
 * identity's calls wait for at most one call of each tenant ahead of them.
 * No I/O and no locks: its owner (the worker pool) locks it.
 */
#ifndef RHD_FAIRQ_H
#define RHD_FAIRQ_H

#include "engine.h"

struct rhd_tenant;

/* Embedded in what is queued. */
typedef struct rhd_fairq_item {
	struct rhd_fairq_item *next;
	struct rhd_tenant *tenant;
} rhd_fairq_item_t;

typedef struct rhd_tenant {
	struct rhd_tenant *next;
	rhd_fairq_item_t *head, *tail;
	unsigned queued, running;
	char name[RHD_IDENTITY_MAX];
} rhd_tenant_t;

typedef struct rhd_fairq {
	rhd_tenant_t *tenants;
	rhd_tenant_t *last_served; /* where the round robin goes on */
	unsigned running;
	unsigned workers;    /* calls running at once, over every tenant */
	unsigned per_tenant; /* of them, for one tenant */
} rhd_fairq_t;

/* An empty queue; per_tenant 0 means half the workers (at least one). */
void rhd_fairq_init(rhd_fairq_t *q, unsigned workers, unsigned per_tenant);

/* Queues item for tenant. 0, or -1 when out of memory. */
int rhd_fairq_push(rhd_fairq_t *q, const char *tenant, rhd_fairq_item_t *item);

/* The next item to start, counted as running; NULL when every worker is
 * busy or no tenant with queued items is under its cap. */
rhd_fairq_item_t *rhd_fairq_next(rhd_fairq_t *q);

/* An item started by rhd_fairq_next has finished. */
void rhd_fairq_done(rhd_fairq_t *q, rhd_fairq_item_t *item);

/* Items queued (not running) for tenant. */
unsigned rhd_fairq_queued(const rhd_fairq_t *q, const char *tenant);

#endif
