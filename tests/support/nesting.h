/*
 * Hand-encoded messages whose attribute templates nest to any depth, built
 * without recursion, for the tests of the depth-bounded decoders.
 */
#ifndef TH_NESTING_H
#define TH_NESTING_H

#include <stddef.h>
#include <stdint.h>

/* A Request payload (no frame header): C_CreateObject on session with one
 * attribute whose template nests depth levels (1: a template of plain
 * attributes, as CKA_WRAP_TEMPLATE has). Free with free(). */
uint8_t *th_nested_request(uint64_t id, uint64_t session, unsigned depth,
			   size_t *len);

/* A Response payload: C_GetAttributeValue answering one such attribute. */
uint8_t *th_nested_response(uint64_t id, unsigned depth, size_t *len);

/* The same payload behind a 4-byte frame header. */
uint8_t *th_framed(const uint8_t *payload, size_t len, size_t *frame_len);

#endif
