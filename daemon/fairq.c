#include "fairq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rhd_fairq_init(rhd_fairq_t *q, unsigned workers, unsigned per_tenant)
{
	memset(q, 0, sizeof(*q));
	q->workers = workers ? workers : 1;
	q->per_tenant = per_tenant ? per_tenant : q->workers / 2;
	if (q->per_tenant == 0)
		q->per_tenant = 1;
}

static rhd_tenant_t *tenant_find(const rhd_fairq_t *q, const char *name)
{
	for (rhd_tenant_t *t = q->tenants; t; t = t->next)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

int rhd_fairq_push(rhd_fairq_t *q, const char *tenant, rhd_fairq_item_t *item)
{
	rhd_tenant_t *t = tenant_find(q, tenant);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -1;
		snprintf(t->name, sizeof(t->name), "%s", tenant);
		t->next = q->tenants;
		q->tenants = t;
	}
	item->next = NULL;
	item->tenant = t;
	if (t->tail)
		t->tail->next = item;
	else
		t->head = item;
	t->tail = item;
	t->queued++;
	return 0;
}

static int eligible(const rhd_fairq_t *q, const rhd_tenant_t *t)
{
	return t->queued > 0 && t->running < q->per_tenant;
}

/* The first eligible tenant after the one served last, going round. */
static rhd_tenant_t *next_tenant(const rhd_fairq_t *q)
{
	rhd_tenant_t *start = q->last_served && q->last_served->next
				      ? q->last_served->next
				      : q->tenants;
	for (rhd_tenant_t *t = start; t; t = t->next)
		if (eligible(q, t))
			return t;
	for (rhd_tenant_t *t = q->tenants; t != start; t = t->next)
		if (eligible(q, t))
			return t;
	return NULL;
}

rhd_fairq_item_t *rhd_fairq_next(rhd_fairq_t *q)
{
	if (q->running >= q->workers)
		return NULL;
	rhd_tenant_t *t = next_tenant(q);
	if (!t)
		return NULL;
	rhd_fairq_item_t *item = t->head;
	t->head = item->next;
	if (!t->head)
		t->tail = NULL;
	t->queued--;
	t->running++;
	q->running++;
	q->last_served = t;
	return item;
}

static void tenant_drop(rhd_fairq_t *q, rhd_tenant_t *t)
{
	rhd_tenant_t **p = &q->tenants;
	while (*p != t)
		p = &(*p)->next;
	*p = t->next;
	if (q->last_served == t)
		q->last_served = NULL;
	free(t);
}

void rhd_fairq_done(rhd_fairq_t *q, rhd_fairq_item_t *item)
{
	rhd_tenant_t *t = item->tenant;
	t->running--;
	q->running--;
	if (t->running == 0 && t->queued == 0)
		tenant_drop(q, t);
}

unsigned rhd_fairq_queued(const rhd_fairq_t *q, const char *tenant)
{
	const rhd_tenant_t *t = tenant_find(q, tenant);
	return t ? t->queued : 0;
}
