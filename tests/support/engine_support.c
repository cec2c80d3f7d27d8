#include "engine_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void th_store_open(th_store_t *s)
{
	char err[512];
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/remhsm-engine-XXXXXX");
	if (!mkdtemp(s->dir) ||
	    rhs_key_load(s->dir, s->key, err, sizeof(err)) < 0)
		abort();
	snprintf(s->path, sizeof(s->path), "%s/store.db", s->dir);
	if (rhs_open(s->path, s->key, NULL, &s->store, err, sizeof(err)) < 0)
		abort();
}

void th_store_cleanup(th_store_t *s)
{
	rhs_close(s->store);
	s->store = NULL;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", s->dir);
}

int th_engine_init(rhd_engine_t *engine, th_store_t *s, unsigned slots)
{
	rhd_engine_opts_t opts = {
		.slots = slots,
		.store = s->store,
		.policy = {.kdf_n = 16,
			   .kdf_r = 8,
			   .kdf_p = 1,
			   .max_failures = 10},
	};
	return rhd_engine_init(engine, &opts);
}

void th_front_called(void *ctx, const Remhsm__Request *req, uint64_t rv,
		     uint64_t started_ns)
{
	(void)ctx;
	(void)req;
	(void)rv;
	(void)started_ns;
}
