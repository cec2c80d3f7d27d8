#include "rh_decode.h"

#include <openssl/crypto.h>

enum { WIRE_VARINT = 0, WIRE_64BIT = 1, WIRE_LEN = 2, WIRE_32BIT = 5 };

/* A cursor over a byte range; p never passes end. */
typedef struct {
	const uint8_t *p, *end;
} cursor_t;

static int read_varint(cursor_t *c, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (c->p == c->end)
			return RH_EDECODE;
		uint8_t b = *c->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return RH_OK;
		}
	}
	return RH_EDECODE;
}

static int skip(cursor_t *c, uint64_t n)
{
	if (n > (uint64_t)(c->end - c->p))
		return RH_EDECODE;
	c->p += n;
	return RH_OK;
}

/* One field's key: its number, its wire type, and for length-delimited
 * fields the range of its bytes (the cursor moves past the value). */
typedef struct {
	uint32_t number;
	unsigned wire;
	uint64_t varint;
	cursor_t inner;
} field_t;

static int next_field(cursor_t *c, field_t *f)
{
	uint64_t key;
	if (read_varint(c, &key) < 0 || key >> 3 == 0 || key >> 3 > UINT32_MAX)
		return RH_EDECODE;
	f->number = (uint32_t)(key >> 3);
	f->wire = (unsigned)(key & 7);
	switch (f->wire) {
	case WIRE_VARINT:
		return read_varint(c, &f->varint);
	case WIRE_64BIT:
		return skip(c, 8);
	case WIRE_32BIT:
		return skip(c, 4);
	case WIRE_LEN: {
		uint64_t n;
		if (read_varint(c, &n) < 0)
			return RH_EDECODE;
		f->inner.p = c->p;
		if (skip(c, n) < 0)
			return RH_EDECODE;
		f->inner.end = c->p;
		return RH_OK;
	}
	default: /* groups: protobuf-c does not decode them either */
		return RH_EDECODE;
	}
}

/* Recursion bounded by max_depth, which the caller fixes, not the bytes. */
static int check(const ProtobufCMessageDescriptor *desc, cursor_t c,
		 unsigned depth, unsigned max_depth)
{
	if (depth > max_depth)
		return RH_EDEPTH;
	while (c.p < c.end) {
		field_t f;
		if (next_field(&c, &f) < 0)
			return RH_EDECODE;
		if (f.wire != WIRE_LEN)
			continue;
		const ProtobufCFieldDescriptor *fd =
			protobuf_c_message_descriptor_get_field(desc, f.number);
		if (!fd || fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		int r = check(fd->descriptor, f.inner, depth + 1, max_depth);
		if (r < 0)
			return r;
	}
	return RH_OK;
}

int rh_decode_check(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
		    size_t len, unsigned max_depth)
{
	cursor_t c = {buf, buf + len};
	return check(desc, c, 1, max_depth);
}

ProtobufCMessage *rh_decode(const ProtobufCMessageDescriptor *desc,
			    const uint8_t *buf, size_t len, int *err)
{
	*err = rh_decode_check(desc, buf, len, RH_MAX_NESTING);
	if (*err < 0)
		return NULL;
	ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, buf);
	if (!msg)
		*err = RH_EDECODE;
	return msg;
}

int rh_decode_peek(const uint8_t *buf, size_t len, uint32_t id_field,
		   uint64_t *id, uint32_t *first_message_field)
{
	cursor_t c = {buf, buf + len};
	int have_id = 0;
	*id = 0;
	*first_message_field = 0;
	while (c.p < c.end) {
		field_t f;
		if (next_field(&c, &f) < 0)
			return RH_EDECODE;
		if (f.wire == WIRE_VARINT && f.number == id_field && !have_id) {
			*id = f.varint;
			have_id = 1;
		}
		if (f.wire == WIRE_LEN && !*first_message_field)
			*first_message_field = f.number;
	}
	return RH_OK;
}

/* The wipe of a message at depth (bounded like decoding). */
static void wipe(ProtobufCMessage *msg, unsigned depth);

static void wipe_field(const ProtobufCFieldDescriptor *f, void *member,
		       size_t count, unsigned depth)
{
	for (size_t i = 0; i < count; i++) {
		if (f->type == PROTOBUF_C_TYPE_BYTES) {
			ProtobufCBinaryData *b =
				f->label == PROTOBUF_C_LABEL_REPEATED
					? &(*(ProtobufCBinaryData **)member)[i]
					: member;
			if (b->data)
				OPENSSL_cleanse(b->data, b->len);
		} else {
			ProtobufCMessage *m =
				f->label == PROTOBUF_C_LABEL_REPEATED
					? (*(ProtobufCMessage ***)member)[i]
					: *(ProtobufCMessage **)member;
			if (m)
				wipe(m, depth + 1);
		}
	}
}

static void wipe(ProtobufCMessage *msg, unsigned depth)
{
	if (depth > RH_MAX_NESTING)
		return;
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_BYTES &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		char *base = (char *)msg;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
		    *(uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		size_t count = 1;
		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			count = *(size_t *)(base + f->quantifier_offset);
		wipe_field(f, base + f->offset, count, depth);
	}
}

void rh_wipe_message(ProtobufCMessage *msg)
{
	if (msg)
		wipe(msg, 1);
}

void rh_free_wiped(ProtobufCMessage *msg)
{
	if (!msg)
		return;
	wipe(msg, 1);
	protobuf_c_message_free_unpacked(msg, NULL);
}
