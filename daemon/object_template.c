/*
 * Attribute templates held by a key (CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE,
 * CKA_DERIVE_TEMPLATE): kept inside the key as one byte string, so records,
 * copies and cleanup treat them as any other value.
 *
 * A packed template is a run of entries: the type (8 bytes), the value's
 * length (4 bytes), the value; integers little-endian, whatever the host, so
 * a store moves between machines. ULONG values are 8 bytes, BOOL one,
 * ULONG arrays as the wire has them (8-byte little-endian entries).
 * Templates do not nest.
 */
#include "object_template.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_HEADER 12u

static void put_le(uint8_t *out, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++, v >>= 8)
		out[i] = (uint8_t)v;
}

static uint64_t get_le(const uint8_t *in, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = bytes; i-- > 0;)
		v = v << 8 | in[i];
	return v;
}

/* A value's bytes in the packed order: a ULONG (a host uint64_t in the
 * key) little-endian. */
static void value_to_le(const rhd_attr_t *a, uint8_t *out)
{
	uint64_t v;
	if (a->kind != RH_ATTR_ULONG) {
		memcpy(out, a->value, a->len);
		return;
	}
	memcpy(&v, a->value, sizeof(v));
	put_le(out, v, 8);
}

/* Whether a value has the shape its type's kind needs inside a template. */
static int entry_valid(uint64_t type, size_t len)
{
	switch (rh_attr_kind(type)) {
	case RH_ATTR_ULONG:
		return len == 8;
	case RH_ATTR_BOOL:
		return len == 1;
	case RH_ATTR_ULONG_ARRAY:
		return len % 8 == 0 && len <= 8 * RHD_MAX_MECHANISMS;
	case RH_ATTR_BYTES:
		return len <= UINT32_MAX;
	default:
		return 0; /* a template in a template */
	}
}

CK_RV rhd_template_pack(const rhd_object_t *t, uint8_t **out, size_t *len)
{
	if (t->count > RHD_MAX_TEMPLATE_ENTRIES)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	size_t total = 0;
	for (size_t i = 0; i < t->count; i++) {
		if (!entry_valid(t->attrs[i].type, t->attrs[i].len))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		total += ENTRY_HEADER + t->attrs[i].len;
	}
	uint8_t *buf = malloc(total ? total : 1);
	if (!buf)
		return CKR_DEVICE_MEMORY;
	size_t at = 0;
	for (size_t i = 0; i < t->count; i++) {
		const rhd_attr_t *a = &t->attrs[i];
		put_le(buf + at, a->type, 8);
		put_le(buf + at + 8, a->len, 4);
		value_to_le(a, buf + at + ENTRY_HEADER);
		at += ENTRY_HEADER + a->len;
	}
	*out = buf;
	*len = total;
	return CKR_OK;
}

/* One entry at *at of buf: its type, length and bytes; 0 when it does not
 * fit or has the wrong shape. */
static int next_entry(const uint8_t *buf, size_t len, size_t *at,
		      uint64_t *type, const uint8_t **value, size_t *value_len)
{
	if (len - *at < ENTRY_HEADER)
		return 0;
	*type = get_le(buf + *at, 8);
	*value_len = (size_t)get_le(buf + *at + 8, 4);
	if (*value_len > len - *at - ENTRY_HEADER ||
	    !entry_valid(*type, *value_len))
		return 0;
	*value = buf + *at + ENTRY_HEADER;
	*at += ENTRY_HEADER + *value_len;
	return 1;
}

CK_RV rhd_template_unpack(const uint8_t *buf, size_t len, rhd_object_t *out)
{
	memset(out, 0, sizeof(*out));
	size_t at = 0;
	CK_RV rv = CKR_OK;
	while (at < len && rv == CKR_OK) {
		uint64_t type;
		const uint8_t *value;
		size_t value_len;
		/* At most RHD_MAX_TEMPLATE_ENTRIES: the repeat check stays
		 * small. */
		if (out->count == RHD_MAX_TEMPLATE_ENTRIES ||
		    !next_entry(buf, len, &at, &type, &value, &value_len) ||
		    rhd_object_find(out, type)) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			break;
		}
		uint64_t v = value_len == 8 ? get_le(value, 8) : 0;
		rv = rh_attr_kind(type) == RH_ATTR_ULONG
			     ? rhd_object_set_ulong(out, type, v)
			     : rhd_object_set(out, type, value, value_len);
	}
	if (rv != CKR_OK)
		rhd_object_cleanup(out);
	return rv;
}

size_t rhd_template_count(const rhd_attr_t *a)
{
	size_t at = 0, n = 0;
	uint64_t type;
	const uint8_t *value;
	size_t len;
	while (next_entry(a->value, a->len, &at, &type, &value, &len))
		n++;
	return n;
}

size_t rhd_template_wire_bound(const rhd_attr_t *a)
{
	/* An entry's wire form (tags, a 10-byte type, a varint length) is at
	 * most 22 bytes more than its value, and its packed form is 12: twice
	 * the packed size covers it, 16 the list around them. */
	return 2 * a->len + 16;
}

CK_RV rhd_template_to_wire(const rhd_attr_t *a, rh_arena_t *arena,
			   Remhsm__Attribute *out)
{
	rhd_object_t t;
	CK_RV rv = rhd_template_unpack(a->value, a->len, &t);
	if (rv != CKR_OK)
		return CKR_GENERAL_ERROR; /* the key's own value: never */
	Remhsm__AttributeList *list = rh_arena_alloc(arena, sizeof(*list));
	Remhsm__Attribute *w = rh_arena_alloc(arena, t.count * sizeof(*w) + 1);
	Remhsm__Attribute **ptrs =
		rh_arena_alloc(arena, t.count * sizeof(*ptrs) + 1);
	rv = list && w && ptrs ? CKR_OK : CKR_HOST_MEMORY;
	for (size_t i = 0; i < t.count && rv == CKR_OK; i++) {
		rhd_attr_t copy = t.attrs[i];
		copy.value = rh_arena_memdup(arena, copy.value, copy.len);
		if (!copy.value)
			rv = CKR_HOST_MEMORY;
		else
			rhd_attr_to_wire(&copy, &w[i]);
		ptrs[i] = &w[i];
	}
	size_t n = t.count;
	rhd_object_cleanup(&t);
	if (rv != CKR_OK)
		return rv;
	remhsm__attribute_list__init(list);
	list->n_attributes = n;
	list->attributes = ptrs;
	remhsm__attribute__init(out);
	out->type = a->type;
	out->value_case = REMHSM__ATTRIBUTE__VALUE_ARRAY;
	out->array = list;
	return CKR_OK;
}

/* The template key holds under which, unpacked; an empty one when it holds
 * none. */
static CK_RV held(const rhd_object_t *key, uint64_t which, rhd_object_t *t)
{
	const rhd_attr_t *a = rhd_object_find(key, which);
	if (!a) {
		memset(t, 0, sizeof(*t));
		return CKR_OK;
	}
	return rhd_template_unpack(a->value, a->len, t) == CKR_OK
		       ? CKR_OK
		       : CKR_GENERAL_ERROR;
}

CK_RV rhd_template_apply(rhd_object_t *obj, const rhd_object_t *key,
			 uint64_t which)
{
	rhd_object_t t;
	CK_RV rv = held(key, which, &t);
	for (size_t i = 0; i < t.count && rv == CKR_OK; i++) {
		const rhd_attr_t *want = &t.attrs[i];
		const rhd_attr_t *given = rhd_object_find(obj, want->type);
		if (!given)
			rv = rhd_object_set(obj, want->type, want->value,
					    want->len);
		else if (given->len != want->len ||
			 memcmp(given->value, want->value, want->len) != 0)
			rv = CKR_TEMPLATE_INCONSISTENT;
	}
	rhd_object_cleanup(&t);
	return rv;
}

int rhd_template_admits(const rhd_object_t *key, const rhd_object_t *holder,
			uint64_t which)
{
	rhd_object_t t;
	if (held(holder, which, &t) != CKR_OK)
		return 0;
	int ok = rhd_object_matches(key, &t);
	rhd_object_cleanup(&t);
	return ok;
}
