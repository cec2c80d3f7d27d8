/*
 * Framing: a 4-byte big-endian payload length, then one protobuf message.
 * Pure functions: no I/O, lengths checked before anything is allocated.
 */
#ifndef RH_FRAME_H
#define RH_FRAME_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "rh_err.h"

#define RH_FRAME_HEADER 4u
#define RH_FRAME_DEFAULT_MAX (1u << 20)

/*
 * Looks at the bytes received so far. Returns the length of the first
 * complete frame (header included), 0 when more bytes are needed, or
 * RH_EFRAME_TOO_LARGE as soon as the header announces a payload above
 * max_payload.
 */
long rh_frame_next(const uint8_t *buf, size_t len, uint32_t max_payload);

/*
 * Decodes a frame header (RH_FRAME_HEADER bytes) into the payload length.
 * Returns RH_OK, or RH_EFRAME_TOO_LARGE when it exceeds max_payload.
 */
int rh_frame_header_decode(const uint8_t *header, uint32_t max_payload,
			   uint32_t *payload_len) RH_WARN_UNUSED;

/* Writes the RH_FRAME_HEADER bytes announcing a payload of payload_len. */
void rh_frame_header_encode(uint8_t *header, uint32_t payload_len);

/* Packs msg behind a frame header into a new buffer (free with free()). */
int rh_frame_pack(const ProtobufCMessage *msg, uint8_t **out,
		  size_t *out_len) RH_WARN_UNUSED;

#endif
