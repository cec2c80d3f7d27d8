#include "attr.h"

#include <limits.h>
#include <string.h>

#include "rh_attr.h"

/* A CK_ULONG array (CKA_ALLOWED_MECHANISMS) as 8-byte little-endian
 * entries: the same bytes from a 32- and a 64-bit application. */
static CK_RV ulongs_to_wire(const CK_ATTRIBUTE *a, Remhsm__Attribute *w,
			    rh_arena_t *arena)
{
	if (a->ulValueLen % sizeof(CK_ULONG))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	size_t n = a->ulValueLen / sizeof(CK_ULONG);
	uint8_t *out = rh_arena_alloc(arena, 8 * n + 1);
	if (!out)
		return CKR_HOST_MEMORY;
	const CK_ULONG *in = a->pValue;
	for (size_t i = 0; i < n; i++) {
		uint64_t v = in[i];
		for (int b = 0; b < 8; b++, v >>= 8)
			out[8 * i + (size_t)b] = (uint8_t)v;
	}
	w->value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
	w->bytes = (ProtobufCBinaryData){8 * n, out};
	return CKR_OK;
}

static CK_RV value_to_wire(const CK_ATTRIBUTE *a, Remhsm__Attribute *w,
			   rh_arena_t *arena, int nested);

/* A CK_ATTRIBUTE array (CKA_WRAP_TEMPLATE and its kin) as a list of wire
 * attributes; its entries hold plain values, not templates again. */
static CK_RV template_to_wire(const CK_ATTRIBUTE *a, Remhsm__Attribute *w,
			      rh_arena_t *arena)
{
	if (a->ulValueLen % sizeof(CK_ATTRIBUTE))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	size_t n = a->ulValueLen / sizeof(CK_ATTRIBUTE);
	if (n > RH_MAX_TEMPLATE)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	Remhsm__AttributeList *list = rh_arena_alloc(arena, sizeof(*list));
	Remhsm__Attribute *inner =
		rh_arena_alloc(arena, n * sizeof(*inner) + 1);
	Remhsm__Attribute **ptrs = rh_arena_alloc(arena, n * sizeof(*ptrs) + 1);
	if (!list || !inner || !ptrs)
		return CKR_HOST_MEMORY;
	const CK_ATTRIBUTE *in = a->pValue;
	for (size_t i = 0; i < n; i++) {
		CK_RV rv = value_to_wire(&in[i], &inner[i], arena, 1);
		if (rv != CKR_OK)
			return rv;
		ptrs[i] = &inner[i];
	}
	remhsm__attribute_list__init(list);
	list->n_attributes = n;
	list->attributes = ptrs;
	w->value_case = REMHSM__ATTRIBUTE__VALUE_ARRAY;
	w->array = list;
	return CKR_OK;
}

static CK_RV value_to_wire(const CK_ATTRIBUTE *a, Remhsm__Attribute *w,
			   rh_arena_t *arena, int nested)
{
	remhsm__attribute__init(w);
	w->type = a->type;
	if (a->ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    (!a->pValue && a->ulValueLen))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	switch (rh_attr_kind(a->type)) {
	case RH_ATTR_ULONG:
		if (a->ulValueLen != sizeof(CK_ULONG))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		w->value_case = REMHSM__ATTRIBUTE__VALUE_ULONG;
		w->ulong = *(const CK_ULONG *)a->pValue;
		/* CK_UNAVAILABLE_INFORMATION keeps its meaning across widths.
		 */
		if (w->ulong == CK_UNAVAILABLE_INFORMATION)
			w->ulong = UINT64_MAX;
		return CKR_OK;
	case RH_ATTR_BOOL:
		if (a->ulValueLen != sizeof(CK_BBOOL))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		w->value_case = REMHSM__ATTRIBUTE__VALUE_BOOLEAN;
		w->boolean = *(const CK_BBOOL *)a->pValue != CK_FALSE;
		return CKR_OK;
	case RH_ATTR_BYTES:
		w->value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
		w->bytes = (ProtobufCBinaryData){a->ulValueLen, a->pValue};
		return CKR_OK;
	case RH_ATTR_ULONG_ARRAY:
		return ulongs_to_wire(a, w, arena);
	case RH_ATTR_TEMPLATE:
		return nested ? CKR_ATTRIBUTE_VALUE_INVALID
			      : template_to_wire(a, w, arena);
	default:
		return CKR_ATTRIBUTE_TYPE_INVALID;
	}
}

CK_RV rhc_template_to_wire(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
			   rh_arena_t *arena, Remhsm__Attribute ***out)
{
	if (!tmpl && count)
		return CKR_ARGUMENTS_BAD;
	Remhsm__Attribute *w = rh_arena_alloc(arena, count * sizeof(*w) + 1);
	Remhsm__Attribute **ptrs =
		rh_arena_alloc(arena, count * sizeof(*ptrs) + 1);
	if (!w || !ptrs)
		return CKR_HOST_MEMORY;
	for (CK_ULONG i = 0; i < count; i++) {
		CK_RV rv = value_to_wire(&tmpl[i], &w[i], arena, 0);
		if (rv != CKR_OK)
			return rv;
		ptrs[i] = &w[i];
	}
	*out = ptrs;
	return CKR_OK;
}

CK_RV rhc_queries_to_wire(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
			  rh_arena_t *arena, Remhsm__AttributeQuery ***out)
{
	if (!tmpl && count)
		return CKR_ARGUMENTS_BAD;
	Remhsm__AttributeQuery *q =
		rh_arena_alloc(arena, count * sizeof(*q) + 1);
	Remhsm__AttributeQuery **ptrs =
		rh_arena_alloc(arena, count * sizeof(*ptrs) + 1);
	if (!q || !ptrs)
		return CKR_HOST_MEMORY;
	for (CK_ULONG i = 0; i < count; i++) {
		remhsm__attribute_query__init(&q[i]);
		q[i].type = tmpl[i].type;
		q[i].has_buffer = tmpl[i].pValue != NULL;
		q[i].buffer_len = tmpl[i].ulValueLen;
		ptrs[i] = &q[i];
	}
	*out = ptrs;
	return CKR_OK;
}

/* The native length of an answered value. */
static CK_ULONG native_len(CK_ATTRIBUTE_TYPE type, uint64_t wire_len)
{
	switch (rh_attr_kind(type)) {
	case RH_ATTR_ULONG:
		return sizeof(CK_ULONG);
	case RH_ATTR_BOOL:
		return sizeof(CK_BBOOL);
	case RH_ATTR_ULONG_ARRAY:
		return (CK_ULONG)(wire_len / 8 * sizeof(CK_ULONG));
	case RH_ATTR_TEMPLATE: /* wire_len: how many attributes */
		return (CK_ULONG)(wire_len * sizeof(CK_ATTRIBUTE));
	default:
		return (CK_ULONG)wire_len;
	}
}

/* 8-byte little-endian entries into the caller's CK_ULONG array. */
static CK_RV ulongs_from_wire(const ProtobufCBinaryData *b, CK_ATTRIBUTE *a)
{
	size_t n = b->len / 8;
	if (b->len % 8 || n > a->ulValueLen / sizeof(CK_ULONG))
		return CKR_DEVICE_ERROR;
	CK_ULONG *out = a->pValue;
	for (size_t i = 0; i < n; i++) {
		uint64_t v = 0;
		for (int k = 7; k >= 0; k--)
			v = v << 8 | b->data[8 * i + (size_t)k];
		if (v > ULONG_MAX)
			return CKR_DEVICE_ERROR;
		out[i] = (CK_ULONG)v;
	}
	a->ulValueLen = (CK_ULONG)(n * sizeof(CK_ULONG));
	return CKR_OK;
}

static CK_RV copy_value(const Remhsm__Attribute *w, CK_ATTRIBUTE *a);

/* A template's attributes into the caller's CK_ATTRIBUTE array, by the
 * rules of C_GetAttributeValue one level down: each entry gets its type,
 * and its value, or only its length when its pValue is NULL; an entry
 * whose buffer is too small is CK_UNAVAILABLE_INFORMATION and the answer
 * CKR_BUFFER_TOO_SMALL. */
static CK_RV template_from_wire(const Remhsm__AttributeList *list,
				CK_ATTRIBUTE *a)
{
	if (!list || list->n_attributes > a->ulValueLen / sizeof(CK_ATTRIBUTE))
		return CKR_DEVICE_ERROR;
	CK_ATTRIBUTE *out = a->pValue;
	CK_RV rv = CKR_OK;
	for (size_t i = 0; i < list->n_attributes; i++) {
		const Remhsm__Attribute *w = list->attributes[i];
		if (w->value_case == REMHSM__ATTRIBUTE__VALUE_ARRAY)
			return CKR_DEVICE_ERROR;
		out[i].type = (CK_ATTRIBUTE_TYPE)w->type;
		CK_ULONG need = native_len(
			out[i].type,
			w->value_case == REMHSM__ATTRIBUTE__VALUE_BYTES
				? w->bytes.len
				: 0);
		if (!out[i].pValue) {
			out[i].ulValueLen = need;
		} else if (out[i].ulValueLen < need) {
			out[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		} else if (copy_value(w, &out[i]) != CKR_OK) {
			return CKR_DEVICE_ERROR;
		}
	}
	a->ulValueLen = (CK_ULONG)(list->n_attributes * sizeof(CK_ATTRIBUTE));
	return rv;
}

/* The value into the caller's buffer of a->ulValueLen bytes. What the
 * daemon declared was checked already; what it sent is checked here, so a
 * broken daemon can never write past the buffer. */
static CK_RV copy_value(const Remhsm__Attribute *w, CK_ATTRIBUTE *a)
{
	if (!w || w->type != a->type)
		return CKR_DEVICE_ERROR;
	switch (w->value_case) {
	case REMHSM__ATTRIBUTE__VALUE_ULONG: {
		if (a->ulValueLen < sizeof(CK_ULONG) ||
		    (w->ulong > ULONG_MAX && w->ulong != UINT64_MAX))
			return CKR_DEVICE_ERROR;
		CK_ULONG v = w->ulong == UINT64_MAX ? CK_UNAVAILABLE_INFORMATION
						    : (CK_ULONG)w->ulong;
		memcpy(a->pValue, &v, sizeof(v));
		a->ulValueLen = sizeof(v);
		return CKR_OK;
	}
	case REMHSM__ATTRIBUTE__VALUE_BOOLEAN:
		if (a->ulValueLen < sizeof(CK_BBOOL))
			return CKR_DEVICE_ERROR;
		*(CK_BBOOL *)a->pValue = w->boolean ? CK_TRUE : CK_FALSE;
		a->ulValueLen = sizeof(CK_BBOOL);
		return CKR_OK;
	case REMHSM__ATTRIBUTE__VALUE_BYTES:
		if (rh_attr_kind(a->type) == RH_ATTR_ULONG_ARRAY)
			return ulongs_from_wire(&w->bytes, a);
		if (w->bytes.len > a->ulValueLen)
			return CKR_DEVICE_ERROR;
		if (w->bytes.len)
			memcpy(a->pValue, w->bytes.data, w->bytes.len);
		a->ulValueLen = (CK_ULONG)w->bytes.len;
		return CKR_OK;
	case REMHSM__ATTRIBUTE__VALUE_ARRAY:
		if (rh_attr_kind(a->type) != RH_ATTR_TEMPLATE)
			return CKR_DEVICE_ERROR;
		return template_from_wire(w->array, a);
	default:
		return CKR_DEVICE_ERROR;
	}
}

/* One attribute by the rules of C_GetAttributeValue; CKR_OK or the error
 * this attribute contributes. */
static CK_RV fill_one(const Remhsm__AttributeResult *r, CK_ATTRIBUTE *a)
{
	switch (r->status) {
	case REMHSM__ATTRIBUTE_RESULT__STATUS__SENSITIVE:
		a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
		return CKR_ATTRIBUTE_SENSITIVE;
	case REMHSM__ATTRIBUTE_RESULT__STATUS__TYPE_INVALID:
		a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
		return CKR_ATTRIBUTE_TYPE_INVALID;
	case REMHSM__ATTRIBUTE_RESULT__STATUS__BUFFER_TOO_SMALL:
		a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
		return CKR_BUFFER_TOO_SMALL;
	default:
		break;
	}
	CK_ULONG need = native_len(a->type, r->length);
	if (!a->pValue) {
		a->ulValueLen = need;
		return CKR_OK;
	}
	if (a->ulValueLen < need) {
		a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
		return CKR_BUFFER_TOO_SMALL;
	}
	return copy_value(r->value, a);
}

CK_RV rhc_results_to_native(Remhsm__AttributeResult *const *results,
			    CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
	CK_RV rv = CKR_OK;
	for (CK_ULONG i = 0; i < count; i++) {
		CK_RV one = fill_one(results[i], &tmpl[i]);
		if (one == CKR_DEVICE_ERROR)
			return one;
		/* Every attribute is answered; a sensitive or unknown one
		 * outranks a short buffer in the call's result. */
		if (one != CKR_OK &&
		    (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL))
			rv = one;
	}
	return rv;
}
