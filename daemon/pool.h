/*
 * The worker threads for long calls (key generation, the PIN KDF, store
 * writes): a fixed set of threads at a lower priority, fed by one fair
 * queue that every event loop shares, so that the cap on what one
 * identity holds is one cap however many loops its connections are on.
 * No event loop here: a finished job is handed to its own callback, on the
 * worker's thread, which tells the loop that queued it.
 */
#ifndef RHD_POOL_H
#define RHD_POOL_H

#include "fairq.h"

typedef struct rhd_job rhd_job_t;
struct rhd_job {
	rhd_fairq_item_t item;
	/* The work, on a worker thread. */
	void (*run)(rhd_job_t *job);
	/* Then, on the same thread: the job belongs to its owner again. */
	void (*finished)(rhd_job_t *job);
};

typedef struct rhd_pool rhd_pool_t;

/* threads workers; per_tenant as for rhd_fairq_init. NULL when the
 * threads cannot start. */
rhd_pool_t *rhd_pool_start(unsigned threads, unsigned per_tenant);

/* Queues job for tenant's turn. 0, or -1 when out of memory. */
int rhd_pool_submit(rhd_pool_t *pool, const char *tenant, rhd_job_t *job);

/* Lets every queued job run and finish, then ends the threads. */
void rhd_pool_stop(rhd_pool_t *pool);

#endif
