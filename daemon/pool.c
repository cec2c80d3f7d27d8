#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

/* Long work yields the processor to the event loops: on a gateway with
 * few cores, key generation must not delay the signatures they make. */
#define WORKER_NICE 10

struct rhd_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	rhd_fairq_t queue;
	int stopping;
	unsigned n_threads;
	pthread_t threads[];
};

/* Linux applies a nice value to the calling thread alone. */
static void lower_priority(void)
{
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE) <
	    0)
		RHD_WARN("event=worker-priority reason=\"%s\"",
			 strerror(errno));
}

/* A thread that finishes a job takes the next itself: a job's end frees
 * one place in the queue, never more, so no other thread need wake. */
static void *worker_main(void *arg)
{
	rhd_pool_t *p = arg;
	lower_priority();
	pthread_mutex_lock(&p->lock);
	for (;;) {
		rhd_fairq_item_t *item = rhd_fairq_next(&p->queue);
		if (!item) {
			if (p->stopping)
				break;
			pthread_cond_wait(&p->wake, &p->lock);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		rhd_job_t *job =
			(rhd_job_t *)((char *)item - offsetof(rhd_job_t, item));
		job->run(job);
		pthread_mutex_lock(&p->lock);
		rhd_fairq_done(&p->queue, item);
		pthread_mutex_unlock(&p->lock);
		job->finished(job);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void join_threads(rhd_pool_t *p, unsigned n)
{
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
}

rhd_pool_t *rhd_pool_start(unsigned threads, unsigned per_tenant)
{
	if (threads == 0)
		threads = 1;
	rhd_pool_t *p = calloc(1, sizeof(*p) + threads * sizeof(pthread_t));
	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	rhd_fairq_init(&p->queue, threads, per_tenant);
	for (; p->n_threads < threads; p->n_threads++) {
		if (pthread_create(&p->threads[p->n_threads], NULL, worker_main,
				   p) != 0) {
			RHD_ERROR("event=start-failed reason=\"cannot start "
				  "worker thread %u\"",
				  p->n_threads);
			join_threads(p, p->n_threads);
			free(p);
			return NULL;
		}
		char name[16];
		snprintf(name, sizeof(name), "remhsmd-work%u",
			 p->n_threads % 1000);
		pthread_setname_np(p->threads[p->n_threads], name);
	}
	return p;
}

int rhd_pool_submit(rhd_pool_t *p, const char *tenant, rhd_job_t *job)
{
	pthread_mutex_lock(&p->lock);
	int r = rhd_fairq_push(&p->queue, tenant, &job->item);
	if (r == 0)
		pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	return r;
}

void rhd_pool_stop(rhd_pool_t *p)
{
	if (!p)
		return;
	join_threads(p, p->n_threads);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
