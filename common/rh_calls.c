#include "rh_calls.h"

const char *rh_call_name(unsigned id)
{
	switch (id) {
#define RH_CALL_NAME(num, UP, low, Camel, flags)                               \
	case num:                                                              \
		return "C_" #Camel;
		RH_CALLS(RH_CALL_NAME)
#undef RH_CALL_NAME
	case RH_CALL_HELLO_REQ_ID:
		return "Hello";
	default:
		return NULL;
	}
}

unsigned rh_call_flags(unsigned id)
{
	switch (id) {
#define RH_CALL_FLAGS(num, UP, low, Camel, flags)                              \
	case num:                                                              \
		return flags;
		RH_CALLS(RH_CALL_FLAGS)
#undef RH_CALL_FLAGS
	default:
		return RH_CALL_FAST;
	}
}

/* The message a field of msg holds, NULL when the field is absent, not a
 * message or not set. */
static const ProtobufCMessage *message_field(const ProtobufCMessage *msg,
					     const ProtobufCFieldDescriptor *f)
{
	if (!msg || !f || f->type != PROTOBUF_C_TYPE_MESSAGE ||
	    f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	return *(const ProtobufCMessage *const *)((const char *)msg +
						  f->offset);
}

static const ProtobufCMessage *named_field(const ProtobufCMessage *msg,
					   const char *name)
{
	if (!msg)
		return NULL;
	return message_field(msg,
			     protobuf_c_message_descriptor_get_field_by_name(
				     msg->descriptor, name));
}

const ProtobufCMessage *rh_call_body(const Remhsm__Request *req)
{
	/* The oneof's member is the field numbered as the call. */
	return message_field(
		&req->base,
		protobuf_c_message_descriptor_get_field(
			req->base.descriptor, (unsigned)req->call_case));
}

const ProtobufCMessage *rh_call_init(const Remhsm__Request *req)
{
	return named_field(rh_call_body(req), "init");
}

const Remhsm__Mechanism *rh_call_mechanism(const Remhsm__Request *req)
{
	const ProtobufCMessage *body = rh_call_body(req);
	const ProtobufCMessage *m = named_field(body, "mechanism");
	if (!m)
		m = named_field(named_field(body, "init"), "mechanism");
	return m && m->descriptor == &remhsm__mechanism__descriptor
		       ? (const Remhsm__Mechanism *)m
		       : NULL;
}

uint64_t rh_call_init_key(const Remhsm__Request *req)
{
	const ProtobufCMessage *init = rh_call_init(req);
	const ProtobufCFieldDescriptor *f =
		init ? protobuf_c_message_descriptor_get_field_by_name(
			       init->descriptor, "key")
		     : NULL;
	if (!f || f->type != PROTOBUF_C_TYPE_UINT64 ||
	    f->label == PROTOBUF_C_LABEL_REPEATED)
		return 0;
	return *(const uint64_t *)((const char *)init + f->offset);
}

int rh_call_replayable(const Remhsm__Request *req)
{
	unsigned flags = rh_call_flags((unsigned)req->call_case);
	return (flags & RH_CALL_REPLAY) ||
	       ((flags & RH_CALL_REPLAY_INIT) && rh_call_init(req));
}
