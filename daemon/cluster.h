/*
 * A remhsmd that shares its store with others (store-shared): what they
 * write reaches this one's memory. Object changes invalidate the keys
 * cached from them as the store learns of them; a thread asks the store
 * every poll interval, reads again the token records the others wrote,
 * and ends the logins (and with them the leases) of a token whose PINs
 * were changed or which was initialised anew elsewhere.
 */
#ifndef RHD_CLUSTER_H
#define RHD_CLUSTER_H

#include "engine.h"

typedef struct rhd_cluster rhd_cluster_t;

/* NULL when the thread cannot start (logged). */
rhd_cluster_t *rhd_cluster_start(rhd_engine_t *engine, unsigned poll_ms);
void rhd_cluster_stop(rhd_cluster_t *c);

#endif
