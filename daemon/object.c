/* Attribute lists: lookup, wire conversion, matching, records. */
#include "object.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "object_template.h"
#include "rh_decode.h"
#include "store_records.pb-c.h"

void rhd_object_cleanup(rhd_object_t *obj)
{
	for (size_t i = 0; i < obj->count; i++) {
		if (obj->attrs[i].value)
			OPENSSL_cleanse(obj->attrs[i].value, obj->attrs[i].len);
		free(obj->attrs[i].value);
	}
	free(obj->attrs);
	obj->attrs = NULL;
	obj->count = 0;
}

const rhd_attr_t *rhd_object_find(const rhd_object_t *obj, uint64_t type)
{
	for (size_t i = 0; i < obj->count; i++)
		if (obj->attrs[i].type == type)
			return &obj->attrs[i];
	return NULL;
}

int rhd_object_ulong(const rhd_object_t *obj, uint64_t type, uint64_t *out)
{
	const rhd_attr_t *a = rhd_object_find(obj, type);
	if (!a || a->kind != RH_ATTR_ULONG || a->len != sizeof(uint64_t))
		return 0;
	memcpy(out, a->value, sizeof(*out));
	return 1;
}

int rhd_object_bool(const rhd_object_t *obj, uint64_t type, int dflt)
{
	const rhd_attr_t *a = rhd_object_find(obj, type);
	if (!a || a->kind != RH_ATTR_BOOL || a->len != 1)
		return dflt;
	return a->value[0] != 0;
}

CK_RV rhd_object_set(rhd_object_t *obj, uint64_t type, const void *value,
		     size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return CKR_DEVICE_MEMORY;
	if (len)
		memcpy(copy, value, len);
	rhd_attr_t *a = (rhd_attr_t *)rhd_object_find(obj, type);
	if (!a) {
		rhd_attr_t *grown =
			realloc(obj->attrs, (obj->count + 1) * sizeof(*grown));
		if (!grown) {
			free(copy);
			return CKR_DEVICE_MEMORY;
		}
		obj->attrs = grown;
		a = &obj->attrs[obj->count++];
		a->type = type;
		a->kind = rh_attr_kind(type);
	} else {
		OPENSSL_cleanse(a->value, a->len);
		free(a->value);
	}
	a->value = copy;
	a->len = len;
	return CKR_OK;
}

CK_RV rhd_object_set_ulong(rhd_object_t *obj, uint64_t type, uint64_t v)
{
	return rhd_object_set(obj, type, &v, sizeof(v));
}

CK_RV rhd_object_set_bool(rhd_object_t *obj, uint64_t type, int v)
{
	uint8_t b = v ? CK_TRUE : CK_FALSE;
	return rhd_object_set(obj, type, &b, 1);
}

/* An attribute's value as the wire or a stored record carries it. */
typedef struct {
	uint64_t type;
	enum {
		VALUE_NONE,
		VALUE_BYTES,
		VALUE_ULONG,
		VALUE_BOOL,
		VALUE_TEMPLATE,
		VALUE_NESTED /* a template holding a template */
	} is;
	ProtobufCBinaryData bytes;
	uint64_t ulong;
	int boolean;
	const Remhsm__AttributeList *array; /* VALUE_TEMPLATE's */
} value_view_t;

/* A template attribute (CKA_WRAP_TEMPLATE and its kin) holding another
 * template: deeper than PKCS#11 allows. */
static int nests_twice(const Remhsm__Attribute *w)
{
	if (w->value_case != REMHSM__ATTRIBUTE__VALUE_ARRAY || !w->array)
		return 0;
	for (size_t i = 0; i < w->array->n_attributes; i++)
		if (w->array->attributes[i]->value_case ==
		    REMHSM__ATTRIBUTE__VALUE_ARRAY)
			return 1;
	return 0;
}

static value_view_t wire_view(const void *item)
{
	const Remhsm__Attribute *w = item;
	value_view_t v = {.type = w->type, .is = VALUE_NONE};
	switch (w->value_case) {
	case REMHSM__ATTRIBUTE__VALUE_BYTES:
		/* A held template is bytes in a record only: a peer sends
		 * the list. */
		if (rh_attr_kind(w->type) != RH_ATTR_TEMPLATE)
			v.is = VALUE_BYTES;
		v.bytes = w->bytes;
		break;
	case REMHSM__ATTRIBUTE__VALUE_ULONG:
		v.is = VALUE_ULONG;
		v.ulong = w->ulong;
		break;
	case REMHSM__ATTRIBUTE__VALUE_BOOLEAN:
		v.is = VALUE_BOOL;
		v.boolean = w->boolean;
		break;
	case REMHSM__ATTRIBUTE__VALUE_ARRAY:
		v.is = nests_twice(w) ? VALUE_NESTED : VALUE_TEMPLATE;
		v.array = w->array;
		break;
	default:
		break;
	}
	return v;
}

static value_view_t record_view(const void *item)
{
	const Remhsm__Store__StoredAttribute *r = item;
	value_view_t v = {.type = r->type, .is = VALUE_NONE};
	switch (r->value_case) {
	case REMHSM__STORE__STORED_ATTRIBUTE__VALUE_BYTES:
		v.is = VALUE_BYTES;
		v.bytes = r->bytes;
		break;
	case REMHSM__STORE__STORED_ATTRIBUTE__VALUE_ULONG:
		v.is = VALUE_ULONG;
		v.ulong = r->ulong;
		break;
	case REMHSM__STORE__STORED_ATTRIBUTE__VALUE_BOOLEAN:
		v.is = VALUE_BOOL;
		v.boolean = r->boolean;
		break;
	default:
		break;
	}
	return v;
}

static int nested_refused(const value_view_t *v)
{
	if (v->is != VALUE_NESTED)
		return 0;
	RHD_WARN("event=template-refused type=0x%llx "
		 "reason=\"template nested more than one level\"",
		 (unsigned long long)v->type);
	return 1;
}

/* One value in the kind its type has in the table. */
static CK_RV value_checked(const value_view_t *v, uint8_t **buf, size_t *len,
			   uint64_t *scratch)
{
	if (nested_refused(v))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	switch (rh_attr_kind(v->type)) {
	case RH_ATTR_ULONG:
		if (v->is != VALUE_ULONG)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		*scratch = v->ulong;
		*buf = (uint8_t *)scratch;
		*len = sizeof(*scratch);
		return CKR_OK;
	case RH_ATTR_BOOL:
		if (v->is != VALUE_BOOL)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		*scratch = v->boolean ? CK_TRUE : CK_FALSE;
		*buf = (uint8_t *)scratch;
		*len = 1;
		return CKR_OK;
	case RH_ATTR_BYTES:
		if (v->is != VALUE_BYTES)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		*buf = v->bytes.data;
		*len = v->bytes.len;
		return CKR_OK;
	case RH_ATTR_ULONG_ARRAY:
		/* CKA_ALLOWED_MECHANISMS: 8-byte little-endian entries, the
		 * same for 32- and 64-bit clients. */
		if (v->is != VALUE_BYTES || v->bytes.len % 8 ||
		    v->bytes.len > 8 * RHD_MAX_MECHANISMS)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		*buf = v->bytes.data;
		*len = v->bytes.len;
		return CKR_OK;
	default:
		return CKR_ATTRIBUTE_TYPE_INVALID;
	}
}

static CK_RV object_from(const void *const *items, size_t n,
			 value_view_t (*view)(const void *), rhd_object_t *out);

/* A held template (CKA_WRAP_TEMPLATE and its kin) packed into a new buffer:
 * from the list a peer sends, or checked as a record keeps it. */
static CK_RV template_value(const value_view_t *v, uint8_t **out, size_t *len)
{
	if (nested_refused(v))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	rhd_object_t t;
	CK_RV rv;
	if (v->is == VALUE_TEMPLATE && v->array)
		rv = object_from((const void *const *)v->array->attributes,
				 v->array->n_attributes, wire_view, &t);
	else if (v->is == VALUE_BYTES)
		rv = rhd_template_unpack(v->bytes.data, v->bytes.len, &t);
	else
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (rv == CKR_OK)
		rv = rhd_template_pack(&t, out, len);
	rhd_object_cleanup(&t);
	return rv;
}

/* Template entries in order of type, then of position, so that repeats of
 * a type sit together: finding them costs n log n, not n squared. */
typedef struct {
	uint64_t type;
	size_t pos;
} entry_t;

static int by_type_then_pos(const void *a, const void *b)
{
	const entry_t *x = a, *y = b;
	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int same_value(const rhd_attr_t *a, const rhd_attr_t *b)
{
	return a->len == b->len && memcmp(a->value, b->value, a->len) == 0;
}

/* Drops repeats of a type that carry the same value (their first place
 * stays); CKR_TEMPLATE_INCONSISTENT when a repeat differs. */
static CK_RV drop_repeats(rhd_object_t *obj)
{
	size_t n = obj->count;
	entry_t *order = malloc((n ? n : 1) * sizeof(*order));
	if (!order)
		return CKR_DEVICE_MEMORY;
	for (size_t i = 0; i < n; i++)
		order[i] = (entry_t){obj->attrs[i].type, i};
	qsort(order, n, sizeof(*order), by_type_then_pos);
	CK_RV rv = CKR_OK;
	for (size_t i = 1; i < n && rv == CKR_OK; i++) {
		if (order[i].type != order[i - 1].type)
			continue;
		rhd_attr_t *first = &obj->attrs[order[i - 1].pos];
		rhd_attr_t *again = &obj->attrs[order[i].pos];
		if (!same_value(first, again))
			rv = CKR_TEMPLATE_INCONSISTENT;
		order[i].pos = order[i - 1].pos; /* the first of its run */
		OPENSSL_cleanse(again->value, again->len);
		free(again->value);
		again->value = NULL; /* marks the repeat for removal */
	}
	free(order);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (obj->attrs[i].value)
			obj->attrs[kept++] = obj->attrs[i];
	obj->count = kept;
	return rv;
}

static CK_RV append_value(rhd_object_t *obj, const value_view_t *v)
{
	uint64_t scratch = 0;
	uint8_t *buf = NULL, *packed = NULL;
	size_t len = 0;
	CK_RV rv = rh_attr_kind(v->type) == RH_ATTR_TEMPLATE
			   ? template_value(v, &packed, &len)
			   : value_checked(v, &buf, &len, &scratch);
	if (rv != CKR_OK)
		return rv;
	rhd_attr_t *a = &obj->attrs[obj->count];
	a->value = packed ? packed : malloc(len ? len : 1);
	if (!a->value)
		return CKR_DEVICE_MEMORY;
	if (!packed && len)
		memcpy(a->value, buf, len);
	a->type = v->type;
	a->kind = rh_attr_kind(v->type);
	a->len = len;
	obj->count++;
	return CKR_OK;
}

/* An object from n attributes of either schema, each seen through view;
 * every value checked, repeats dropped. */
static CK_RV object_from(const void *const *items, size_t n,
			 value_view_t (*view)(const void *), rhd_object_t *out)
{
	memset(out, 0, sizeof(*out));
	if (n > RH_MAX_TEMPLATE) {
		RHD_WARN("event=template-refused attributes=%zu limit=%u "
			 "reason=\"too many attributes\"",
			 n, RH_MAX_TEMPLATE);
		return CKR_DEVICE_MEMORY;
	}
	out->attrs = calloc(n ? n : 1, sizeof(*out->attrs));
	if (!out->attrs)
		return CKR_DEVICE_MEMORY;
	CK_RV rv = CKR_OK;
	for (size_t i = 0; i < n && rv == CKR_OK; i++) {
		value_view_t v = view(items[i]);
		rv = append_value(out, &v);
	}
	if (rv == CKR_OK)
		rv = drop_repeats(out);
	if (rv != CKR_OK)
		rhd_object_cleanup(out);
	return rv;
}

CK_RV rhd_object_from_wire(Remhsm__Attribute *const *attrs, size_t n,
			   rhd_object_t *out)
{
	return object_from((const void *const *)attrs, n, wire_view, out);
}

int rhd_object_matches(const rhd_object_t *obj, const rhd_object_t *tmpl)
{
	for (size_t i = 0; i < tmpl->count; i++) {
		const rhd_attr_t *want = &tmpl->attrs[i];
		const rhd_attr_t *have = rhd_object_find(obj, want->type);
		if (!have || have->len != want->len ||
		    memcmp(have->value, want->value, want->len) != 0)
			return 0;
	}
	return 1;
}

int rhd_object_is_sensitive(const rhd_object_t *obj, uint64_t type)
{
	uint64_t cls;
	if (!rhd_object_ulong(obj, CKA_CLASS, &cls) ||
	    (cls != CKO_PRIVATE_KEY && cls != CKO_SECRET_KEY))
		return 0;
	switch (type) {
	case CKA_VALUE:
	case CKA_PRIVATE_EXPONENT:
	case CKA_PRIME_1:
	case CKA_PRIME_2:
	case CKA_EXPONENT_1:
	case CKA_EXPONENT_2:
	case CKA_COEFFICIENT:
		return rhd_object_bool(obj, CKA_SENSITIVE, 1) ||
		       !rhd_object_bool(obj, CKA_EXTRACTABLE, 0);
	default:
		return 0;
	}
}

void rhd_attr_to_wire(const rhd_attr_t *a, Remhsm__Attribute *out)
{
	remhsm__attribute__init(out);
	out->type = a->type;
	switch (a->kind) {
	case RH_ATTR_ULONG:
		out->value_case = REMHSM__ATTRIBUTE__VALUE_ULONG;
		memcpy(&out->ulong, a->value, sizeof(out->ulong));
		break;
	case RH_ATTR_BOOL:
		out->value_case = REMHSM__ATTRIBUTE__VALUE_BOOLEAN;
		out->boolean = a->value[0] != 0;
		break;
	default:
		out->value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
		out->bytes = (ProtobufCBinaryData){a->len, a->value};
		break;
	}
}

/* An attribute as its record keeps it. */
static void attr_to_record(const rhd_attr_t *a,
			   Remhsm__Store__StoredAttribute *out)
{
	remhsm__store__stored_attribute__init(out);
	out->type = a->type;
	if (a->kind == RH_ATTR_ULONG) {
		out->value_case = REMHSM__STORE__STORED_ATTRIBUTE__VALUE_ULONG;
		memcpy(&out->ulong, a->value, sizeof(out->ulong));
	} else if (a->kind == RH_ATTR_BOOL) {
		out->value_case =
			REMHSM__STORE__STORED_ATTRIBUTE__VALUE_BOOLEAN;
		out->boolean = a->value[0] != 0;
	} else {
		out->value_case = REMHSM__STORE__STORED_ATTRIBUTE__VALUE_BYTES;
		out->bytes = (ProtobufCBinaryData){a->len, a->value};
	}
}

int rhd_object_pack(const rhd_object_t *obj, uint8_t **out, size_t *len)
{
	size_t n = obj->count ? obj->count : 1;
	Remhsm__Store__StoredAttribute *stored = calloc(n, sizeof(*stored));
	Remhsm__Store__StoredAttribute **ptrs = calloc(n, sizeof(*ptrs));
	Remhsm__Store__ObjectRecord rec = REMHSM__STORE__OBJECT_RECORD__INIT;
	int rc = -1;
	if (!stored || !ptrs)
		goto out;
	for (size_t i = 0; i < obj->count; i++) {
		attr_to_record(&obj->attrs[i], &stored[i]);
		ptrs[i] = &stored[i];
	}
	rec.n_attributes = obj->count;
	rec.attributes = ptrs;
	*len = remhsm__store__object_record__get_packed_size(&rec);
	*out = malloc(*len ? *len : 1);
	if (*out) {
		remhsm__store__object_record__pack(&rec, *out);
		rc = 0;
	}
out:
	free(ptrs);
	free(stored);
	return rc;
}

int rhd_object_unpack(const uint8_t *buf, size_t len, rhd_object_t *out)
{
	int err;
	Remhsm__Store__ObjectRecord *rec =
		(Remhsm__Store__ObjectRecord *)rh_decode(
			&remhsm__store__object_record__descriptor, buf, len,
			&err);
	if (!rec)
		return -1;
	CK_RV rv = object_from((const void *const *)rec->attributes,
			       rec->n_attributes, record_view, out);
	remhsm__store__object_record__free_unpacked(rec, NULL);
	return rv == CKR_OK ? 0 : -1;
}
