#include "rh_frame.h"

#include <stdlib.h>

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void rh_frame_header_encode(uint8_t *header, uint32_t payload_len)
{
	header[0] = (uint8_t)(payload_len >> 24);
	header[1] = (uint8_t)(payload_len >> 16);
	header[2] = (uint8_t)(payload_len >> 8);
	header[3] = (uint8_t)payload_len;
}

int rh_frame_header_decode(const uint8_t *header, uint32_t max_payload,
			   uint32_t *payload_len)
{
	*payload_len = load_be32(header);
	return *payload_len > max_payload ? RH_EFRAME_TOO_LARGE : RH_OK;
}

long rh_frame_next(const uint8_t *buf, size_t len, uint32_t max_payload)
{
	if (len < RH_FRAME_HEADER)
		return 0;
	uint32_t payload;
	if (rh_frame_header_decode(buf, max_payload, &payload) < 0)
		return RH_EFRAME_TOO_LARGE;
	if (len - RH_FRAME_HEADER < payload)
		return 0;
	return (long)(RH_FRAME_HEADER + payload);
}

int rh_frame_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len)
{
	size_t size = protobuf_c_message_get_packed_size(msg);
	if (size > UINT32_MAX)
		return RH_EFRAME_TOO_LARGE;
	uint8_t *buf = malloc(RH_FRAME_HEADER + size);
	if (!buf)
		return RH_ENOMEM;
	rh_frame_header_encode(buf, (uint32_t)size);
	protobuf_c_message_pack(msg, buf + RH_FRAME_HEADER);
	*out = buf;
	*out_len = RH_FRAME_HEADER + size;
	return RH_OK;
}
