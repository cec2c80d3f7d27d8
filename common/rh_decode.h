/*
 * Decoding a peer's protobuf bytes without letting the peer choose how deep
 * the decoder recurses. The wire schema is recursive (an attribute's value
 * may be a list of attributes), and protobuf-c's unpack recurses once per
 * level with no limit of its own, so a 60 KB frame nested thousands deep
 * would exhaust the stack. Every message a peer or a file sends is scanned
 * first, with the schema in hand and a fixed bound on nesting, and only then
 * unpacked.
 */
#ifndef RH_DECODE_H
#define RH_DECODE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "rh_err.h"

/*
 * The deepest nesting of messages accepted, the outermost message counting
 * as one (see the top of proto/remhsm.proto). It leaves room for attribute
 * templates nested two deep, so that a template nested one level deeper
 * than PKCS#11 allows still decodes and is refused with a CK_RV.
 */
#define RH_MAX_NESTING 8u

/*
 * Walks buf as a message of type desc without allocating. Returns RH_OK,
 * RH_EDEPTH when a sub-message lies deeper than max_depth, or RH_EDECODE
 * when the bytes are not protobuf. Stack use is bounded by max_depth; time
 * is linear in len times max_depth.
 */
int rh_decode_check(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
		    size_t len, unsigned max_depth) RH_WARN_UNUSED;

/*
 * rh_decode_check with RH_MAX_NESTING, then protobuf_c_message_unpack.
 * Returns the message, or NULL with *err set (RH_EDEPTH, RH_EDECODE).
 */
ProtobufCMessage *rh_decode(const ProtobufCMessageDescriptor *desc,
			    const uint8_t *buf, size_t len, int *err);

/*
 * The first occurrences of two top-level varint fields of a message that
 * did not decode (its id and which call it is), so that a refusal can still
 * be answered. Fields absent stay 0. Returns RH_OK or RH_EDECODE.
 */
int rh_decode_peek(const uint8_t *buf, size_t len, uint32_t id_field,
		   uint64_t *id, uint32_t *first_message_field) RH_WARN_UNUSED;

/*
 * Wipes every bytes field of a decoded message and of the messages in it
 * (PINs, key values, data to sign), before it is freed: freed memory must
 * not keep them. Nesting is bounded by what rh_decode accepted.
 */
void rh_wipe_message(ProtobufCMessage *msg);

/* rh_wipe_message, then protobuf_c_message_free_unpacked. */
void rh_free_wiped(ProtobufCMessage *msg);

#endif
