#include "cluster.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

struct rhd_cluster {
	rhd_engine_t *engine;
	unsigned poll_ms;
	/* Tokens whose record another remhsmd wrote, to read again. */
	_Atomic uint64_t stale;
	uint64_t logout_due; /* the watcher's own */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stopping;
	int failing; /* the last sync failed (logged once until it works) */
};

/* The store's hook, under its lock: nothing here calls the store. */
static void on_foreign_change(void *ctx, char table, uint32_t slot, uint64_t id)
{
	rhd_cluster_t *c = ctx;
	rhd_engine_t *engine = c->engine;
	if (table == '*') {
		atomic_store(&c->stale, ~(uint64_t)0);
		for (unsigned i = 0; i < engine->slot_count; i++)
			rhd_token_gone(rhd_engine_token(engine, i));
		return;
	}
	if (!rhd_engine_slot_valid(engine, slot))
		return;
	rhd_token_t *t = rhd_engine_token(engine, slot);
	if (table == 'o')
		rhd_token_object_changed(t, id);
	else if (table == 'w')
		rhd_token_gone(t);
	if (table != 'o')
		atomic_fetch_or(&c->stale, (uint64_t)1 << slot);
}

/* Tokens whose logins are still to end (memory ran out the last time). */
static void end_logins(rhd_cluster_t *c)
{
	for (unsigned slot = 0; c->logout_due && slot < RHD_MAX_SLOTS; slot++)
		if ((c->logout_due >> slot & 1) &&
		    rhd_engine_logout_slot(c->engine, slot) == 0)
			c->logout_due &= ~((uint64_t)1 << slot);
	if (c->logout_due)
		RHD_ERROR("event=logout-failed reason=\"out of memory\" "
			  "effect=\"tried again at the next poll\"");
}

static void reread_tokens(rhd_cluster_t *c)
{
	uint64_t stale = atomic_exchange(&c->stale, 0);
	for (unsigned slot = 0; stale && slot < c->engine->slot_count; slot++) {
		if (!(stale >> slot & 1))
			continue;
		int changed = rhd_token_refresh(
			&c->engine->tokens, rhd_engine_token(c->engine, slot));
		if (changed < 0)
			atomic_fetch_or(&c->stale, (uint64_t)1 << slot);
		if (changed <= 0)
			continue;
		RHD_INFO("event=token-changed-elsewhere slot=%u what=%s "
			 "effect=\"logins to it end\"",
			 slot,
			 changed & RHD_TOKEN_ANEW ? "initialised" : "pin");
		c->logout_due |= (uint64_t)1 << slot;
	}
	end_logins(c);
}

static void sync_once(rhd_cluster_t *c)
{
	int rc = rhs_sync(c->engine->tokens.store);
	if (rc < 0 && !c->failing)
		(void)rhd_store_failed("store-sync", 0, rc);
	else if (rc == RHS_OK && c->failing)
		RHD_INFO("event=store-sync state=working");
	c->failing = rc < 0;
	reread_tokens(c);
}

static void *watch(void *arg)
{
	rhd_cluster_t *c = arg;
	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		long ns = until.tv_nsec + (long)(c->poll_ms % 1000) * 1000000L;
		until.tv_sec += (time_t)(c->poll_ms / 1000) + ns / 1000000000L;
		until.tv_nsec = ns % 1000000000L;
		pthread_cond_timedwait(&c->wake, &c->lock, &until);
		if (c->stopping)
			break;
		pthread_mutex_unlock(&c->lock);
		sync_once(c);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

rhd_cluster_t *rhd_cluster_start(rhd_engine_t *engine, unsigned poll_ms)
{
	rhd_cluster_t *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->engine = engine;
	c->poll_ms = poll_ms;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	rhs_on_foreign_change(engine->tokens.store, on_foreign_change, c);
	if (pthread_create(&c->thread, NULL, watch, c) != 0) {
		RHD_ERROR("event=start-failed reason=\"cannot start the "
			  "thread that follows the shared store\"");
		rhs_on_foreign_change(engine->tokens.store, NULL, NULL);
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	return c;
}

void rhd_cluster_stop(rhd_cluster_t *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	rhs_on_foreign_change(c->engine->tokens.store, NULL, NULL);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
