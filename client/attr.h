/* Templates between the caller's CK_ATTRIBUTE arrays and the wire. */
#ifndef RHC_ATTR_H
#define RHC_ATTR_H

#include <p11-kit/pkcs11.h>

#include "remhsm.pb-c.h"
#include "rh_arena.h"

/* A template to send (C_CreateObject, C_FindObjectsInit, ...). Values must
 * have their type's native shape: a CK_ULONG is sizeof(CK_ULONG) bytes. */
CK_RV rhc_template_to_wire(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
			   rh_arena_t *arena, Remhsm__Attribute ***out);

/* C_GetAttributeValue's queries: type, and the caller's buffer. */
CK_RV rhc_queries_to_wire(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
			  rh_arena_t *arena, Remhsm__AttributeQuery ***out);

/* Fills the caller's template from the answers, by the specification's
 * rules for each attribute; returns the call's CK_RV. */
CK_RV rhc_results_to_native(Remhsm__AttributeResult *const *results,
			    CK_ATTRIBUTE *tmpl, CK_ULONG count);

#endif
