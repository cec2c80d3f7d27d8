/*
 * Templates a key holds for the keys made or moved with it:
 * CKA_WRAP_TEMPLATE (what a wrapping key may wrap), CKA_UNWRAP_TEMPLATE and
 * CKA_DERIVE_TEMPLATE (what a key it unwraps or derives must be). Held as
 * one packed byte string per template; no I/O.
 */
#ifndef RHD_OBJECT_TEMPLATE_H
#define RHD_OBJECT_TEMPLATE_H

#include "object.h"
#include "rh_arena.h"

/* The most attributes one held template may have: far more than a key has,
 * and few enough that matching costs little. */
#define RHD_MAX_TEMPLATE_ENTRIES 64u

/* t's attributes packed into a new buffer (*out, freed by the caller);
 * CKR_ATTRIBUTE_VALUE_INVALID when one nests a template or there are too
 * many. */
CK_RV rhd_template_pack(const rhd_object_t *t, uint8_t **out, size_t *len);
/* A packed template back as attributes; CKR_ATTRIBUTE_VALUE_INVALID when
 * buf is not one (truncated, misshapen, a type twice). */
CK_RV rhd_template_unpack(const uint8_t *buf, size_t len, rhd_object_t *out);

/* How many attributes a held template has, and a bound on its size on the
 * wire (for the answer's budget). */
size_t rhd_template_count(const rhd_attr_t *a);
size_t rhd_template_wire_bound(const rhd_attr_t *a);
/* The held template a as a wire attribute holding a list, in arena. */
CK_RV rhd_template_to_wire(const rhd_attr_t *a, rh_arena_t *arena,
			   Remhsm__Attribute *out);

/* Applies the template key holds under which to obj, a template for a key
 * being made: attributes obj lacks are added, one it gives otherwise is
 * CKR_TEMPLATE_INCONSISTENT. Nothing held: nothing to do. */
CK_RV rhd_template_apply(rhd_object_t *obj, const rhd_object_t *key,
			 uint64_t which);
/* 1 when key matches the template holder holds under which (or it holds
 * none). */
int rhd_template_admits(const rhd_object_t *key, const rhd_object_t *holder,
			uint64_t which);

#endif
