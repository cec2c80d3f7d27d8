/*
 * The attribute-type table: how each PKCS#11 attribute's value is shaped,
 * so that a CK_ULONG keeps its value between 32- and 64-bit peers. One
 * table serves the client, the daemon and the store.
 */
#ifndef RH_ATTR_H
#define RH_ATTR_H

#include <stdint.h>

typedef enum {
	RH_ATTR_BYTES,	     /* byte array (also CK_DATE, strings, DER) */
	RH_ATTR_ULONG,	     /* one CK_ULONG */
	RH_ATTR_BOOL,	     /* one CK_BBOOL */
	RH_ATTR_ULONG_ARRAY, /* CK_MECHANISM_TYPE[] */
	RH_ATTR_TEMPLATE     /* CK_ATTRIBUTE[] (wrap/unwrap/derive templates) */
} rh_attr_kind_t;

rh_attr_kind_t rh_attr_kind(uint64_t type);

/* The most attributes one template or one C_GetAttributeValue may carry:
 * far above what any PKCS#11 object has, and a bound on what a request can
 * make the daemon hold or answer. */
#define RH_MAX_TEMPLATE 1024u

#endif
