#include "nesting.h"

#include <p11-kit/pkcs11.h>
#include <stdlib.h>
#include <string.h>

#include "rh_frame.h"

/* A message written back to front: each level is prefixed to what it
 * wraps, so any depth costs a loop, not a recursion. */
typedef struct {
	uint8_t *buf;
	size_t cap, start; /* the message is buf[start, cap) */
} back_t;

static void put(back_t *b, const void *bytes, size_t n)
{
	if (n > b->start)
		abort();
	b->start -= n;
	memcpy(b->buf + b->start, bytes, n);
}

static void put_varint(back_t *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	put(b, tmp, n);
}

static size_t used(const back_t *b)
{
	return b->cap - b->start;
}

/* Field `number` (length-delimited) around everything written so far. */
static void wrap(back_t *b, uint32_t number)
{
	put_varint(b, used(b));
	put_varint(b, (uint64_t)number << 3 | 2);
}

static void put_uint_field(back_t *b, uint32_t number, uint64_t v)
{
	put_varint(b, v);
	put_varint(b, (uint64_t)number << 3);
}

/* Attribute{type, array = AttributeList{[inner]}} around inner, depth
 * times. Inner levels carry type 0, which proto3 leaves out, so 100,000
 * levels still fit a 1 MiB frame. */
static void nested_attribute(back_t *b, unsigned depth)
{
	static const uint8_t label[] = {0x08, CKA_LABEL, 0x12, 0x01, 'x'};
	put(b, label, sizeof(label));
	for (unsigned level = 1; level <= depth; level++) {
		wrap(b, 1); /* AttributeList.attributes */
		wrap(b, 5); /* Attribute.array */
		if (level == depth)
			put_uint_field(b, 1, CKA_WRAP_TEMPLATE);
	}
}

static back_t back_new(unsigned depth)
{
	back_t b = {.cap = 64 + (size_t)depth * 16};
	b.buf = malloc(b.cap);
	if (!b.buf)
		abort();
	b.start = b.cap;
	return b;
}

static uint8_t *finish(back_t *b, size_t *len)
{
	*len = used(b);
	memmove(b->buf, b->buf + b->start, *len);
	return b->buf;
}

uint8_t *th_nested_request(uint64_t id, uint64_t session, unsigned depth,
			   size_t *len)
{
	back_t b = back_new(depth);
	nested_attribute(&b, depth);
	wrap(&b, 2); /* CreateObjectReq.template */
	put_uint_field(&b, 1, session);
	wrap(&b, 25); /* Request.create_object */
	put_uint_field(&b, 1, id);
	return finish(&b, len);
}

uint8_t *th_nested_response(uint64_t id, unsigned depth, size_t *len)
{
	back_t b = back_new(depth);
	nested_attribute(&b, depth);
	wrap(&b, 3); /* AttributeResult.value */
	put_uint_field(&b, 2, 1);
	wrap(&b, 1);  /* GetAttributeValueResp.results */
	wrap(&b, 29); /* Response.get_attribute_value */
	put_uint_field(&b, 1, id);
	return finish(&b, len);
}

uint8_t *th_framed(const uint8_t *payload, size_t len, size_t *frame_len)
{
	uint8_t *f = malloc(len + RH_FRAME_HEADER);
	if (!f)
		abort();
	rh_frame_header_encode(f, (uint32_t)len);
	memcpy(f + RH_FRAME_HEADER, payload, len);
	*frame_len = len + RH_FRAME_HEADER;
	return f;
}
