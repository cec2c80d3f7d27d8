/*
 * Writes the fuzzers' seed corpora. make_seeds DIR: fuzz_dispatch's
 * (tests/fuzz/corpus): one framed request per call with a small valid
 * body, a session-then-random sequence, the malformed shapes the
 * integration tests send, and real calls on the prologue's session and
 * keys (fuzz_prologue.h): signing, verifying, finding, reading and making
 * objects, secret keys, encryption and derivation, Ed25519, C_DigestKey.
 * make_seeds --frontend CORPUS DIR: fuzz_frontend's
 * (tests/fuzz/corpus-fuzz_frontend): each of CORPUS's seeds after a Hello,
 * delivered at once, byte by byte and in held-back chunks, and the Hello state
 * machine's own cases. Run by hand when the schema grows.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#include "frames.h"
#include "fuzz_prologue.h"
#include "remhsm.pb-c.h"
#include "rh_calls.h"
#include "rh_pkcs11.h"
#include "rh_frame.h"

static void write_file(const char *dir, const char *name, const uint8_t *buf,
		       size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static void seed_call(const char *dir, unsigned id,
		      const ProtobufCMessageDescriptor *desc, const char *name)
{
	ProtobufCMessage *body = calloc(1, desc->sizeof_message);
	protobuf_c_message_init(desc, body);
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = id;
	req.call_case = (Remhsm__Request__CallCase)id;
	req.get_info = (Remhsm__GetInfoReq *)body;
	uint8_t buf[256];
	write_file(dir, name, buf, th_frame_into(buf, &req));
	free(body);
}

static void seed_session_then_random(const char *dir)
{
	uint8_t buf[256];
	size_t len = 0;
	Remhsm__OpenSessionReq open = REMHSM__OPEN_SESSION_REQ__INIT;
	open.flags = 4; /* CKF_SERIAL_SESSION */
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 1;
	req.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	req.open_session = &open;
	len += th_frame_into(buf + len, &req);
	Remhsm__GenerateRandomReq rnd = REMHSM__GENERATE_RANDOM_REQ__INIT;
	rnd.session = 1;
	rnd.length = 32;
	req.id = 2;
	req.call_case = REMHSM__REQUEST__CALL_GENERATE_RANDOM;
	req.generate_random = &rnd;
	len += th_frame_into(buf + len, &req);
	Remhsm__GetSessionInfoReq info = REMHSM__GET_SESSION_INFO_REQ__INIT;
	info.session = 1;
	req.id = 3;
	req.call_case = REMHSM__REQUEST__CALL_GET_SESSION_INFO;
	req.get_session_info = &info;
	len += th_frame_into(buf + len, &req);
	write_file(dir, "session-random-info", buf, len);
}

static void write_request(const char *dir, const char *name,
			  Remhsm__Request *req)
{
	static uint8_t buf[4096];
	req->id = 7;
	write_file(dir, name, buf, th_frame_into(buf, req));
}

static Remhsm__Attribute ulong_attr(uint64_t type, uint64_t v)
{
	Remhsm__Attribute a = REMHSM__ATTRIBUTE__INIT;
	a.type = type;
	a.value_case = REMHSM__ATTRIBUTE__VALUE_ULONG;
	a.ulong = v;
	return a;
}

static Remhsm__Attribute bool_attr(uint64_t type, int v)
{
	Remhsm__Attribute a = REMHSM__ATTRIBUTE__INIT;
	a.type = type;
	a.value_case = REMHSM__ATTRIBUTE__VALUE_BOOLEAN;
	a.boolean = v;
	return a;
}

static Remhsm__Attribute bytes_attr(uint64_t type, const char *v)
{
	Remhsm__Attribute a = REMHSM__ATTRIBUTE__INIT;
	a.type = type;
	a.value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
	a.bytes = (ProtobufCBinaryData){strlen(v), (uint8_t *)v};
	return a;
}

/* C_Sign with its C_SignInit held, and C_Verify the same way. */
static void seed_sign_and_verify(const char *dir)
{
	static uint8_t hash[32] = {1, 2, 3};
	Remhsm__Mechanism ecdsa = REMHSM__MECHANISM__INIT;
	ecdsa.type = CKM_ECDSA;
	Remhsm__SignInitReq init = REMHSM__SIGN_INIT_REQ__INIT;
	init.session = FUZZ_SESSION;
	init.mechanism = &ecdsa;
	init.key = FUZZ_PRIVATE;
	Remhsm__OutputBuffer out = REMHSM__OUTPUT_BUFFER__INIT;
	out.has_buffer = 1;
	out.buffer_len = 64;
	Remhsm__SignReq sign = REMHSM__SIGN_REQ__INIT;
	sign.session = FUZZ_SESSION;
	sign.data = (ProtobufCBinaryData){sizeof(hash), hash};
	sign.output = &out;
	sign.init = &init;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_SIGN;
	req.sign = &sign;
	write_request(dir, "prologue-sign", &req);
	Remhsm__VerifyInitReq vinit = REMHSM__VERIFY_INIT_REQ__INIT;
	vinit.session = FUZZ_SESSION;
	vinit.mechanism = &ecdsa;
	vinit.key = FUZZ_PUBLIC;
	Remhsm__VerifyReq verify = REMHSM__VERIFY_REQ__INIT;
	verify.session = FUZZ_SESSION;
	verify.data = sign.data;
	verify.signature = (ProtobufCBinaryData){64, hash};
	verify.init = &vinit;
	req.call_case = REMHSM__REQUEST__CALL_VERIFY;
	req.verify = &verify;
	write_request(dir, "prologue-verify", &req);
}

/* A C_CreateObject of n attributes on the prologue's session. */
static void seed_create(const char *dir, const char *name,
			Remhsm__Attribute **attrs, size_t n)
{
	Remhsm__CreateObjectReq create = REMHSM__CREATE_OBJECT_REQ__INIT;
	create.session = FUZZ_SESSION;
	create.n_template_ = n;
	create.template_ = attrs;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_CREATE_OBJECT;
	req.create_object = &create;
	write_request(dir, name, &req);
}

/* A token data object made, then found by label and read. */
static void seed_objects(const char *dir)
{
	Remhsm__Attribute a[4] = {ulong_attr(CKA_CLASS, CKO_DATA),
				  bool_attr(CKA_TOKEN, 1),
				  bytes_attr(CKA_LABEL, "fuzz"),
				  bytes_attr(CKA_VALUE, "payload")};
	Remhsm__Attribute *p[4] = {&a[0], &a[1], &a[2], &a[3]};
	seed_create(dir, "prologue-create-token-object", p, 4);
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	Remhsm__Attribute cls = ulong_attr(CKA_CLASS, CKO_PRIVATE_KEY);
	Remhsm__Attribute *q[] = {&cls};
	Remhsm__FindObjectsInitReq find = REMHSM__FIND_OBJECTS_INIT_REQ__INIT;
	find.session = FUZZ_SESSION;
	find.n_template_ = 1;
	find.template_ = q;
	find.prefetch = 8;
	req.call_case = REMHSM__REQUEST__CALL_FIND_OBJECTS_INIT;
	req.find_objects_init = &find;
	write_request(dir, "prologue-find-private-keys", &req);
	static const uint64_t types[] = {CKA_EC_POINT, CKA_VALUE, CKA_LABEL};
	Remhsm__AttributeQuery qs[3];
	Remhsm__AttributeQuery *qp[3];
	for (int i = 0; i < 3; i++) {
		remhsm__attribute_query__init(&qs[i]);
		qs[i].type = types[i];
		qs[i].has_buffer = 1;
		qs[i].buffer_len = 128;
		qp[i] = &qs[i];
	}
	Remhsm__GetAttributeValueReq get =
		REMHSM__GET_ATTRIBUTE_VALUE_REQ__INIT;
	get.session = FUZZ_SESSION;
	get.object = FUZZ_PRIVATE;
	get.n_template_ = 3;
	get.template_ = qp;
	req.call_case = REMHSM__REQUEST__CALL_GET_ATTRIBUTE_VALUE;
	req.get_attribute_value = &get;
	write_request(dir, "prologue-read-key", &req);
}

/* A session AES key imported, then GCM encryption with it, HMAC under a
 * generated generic secret, and ECDH on the prologue's key. */
static void seed_secret_keys(const char *dir)
{
	Remhsm__Attribute a[3] = {ulong_attr(CKA_CLASS, CKO_SECRET_KEY),
				  ulong_attr(CKA_KEY_TYPE, CKK_AES),
				  bytes_attr(CKA_VALUE, "0123456789abcdef")};
	Remhsm__Attribute *p[3] = {&a[0], &a[1], &a[2]};
	seed_create(dir, "prologue-create-aes-key", p, 3);
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	static uint8_t iv[12] = {1};
	Remhsm__GcmParams gcm = REMHSM__GCM_PARAMS__INIT;
	gcm.iv = (ProtobufCBinaryData){sizeof(iv), iv};
	gcm.tag_bits = 128;
	Remhsm__Mechanism m = REMHSM__MECHANISM__INIT;
	m.type = CKM_AES_GCM;
	m.parameter_case = REMHSM__MECHANISM__PARAMETER_GCM;
	m.gcm = &gcm;
	Remhsm__EncryptInitReq init = REMHSM__ENCRYPT_INIT_REQ__INIT;
	init.session = FUZZ_SESSION;
	init.mechanism = &m;
	init.key = FUZZ_PRIVATE + 1; /* the key the seed before made */
	req.call_case = REMHSM__REQUEST__CALL_ENCRYPT_INIT;
	req.encrypt_init = &init;
	write_request(dir, "prologue-encrypt-init-gcm", &req);
	Remhsm__OutputBuffer out = REMHSM__OUTPUT_BUFFER__INIT;
	out.has_buffer = 1;
	out.buffer_len = 64;
	Remhsm__EncryptReq enc = REMHSM__ENCRYPT_REQ__INIT;
	enc.session = FUZZ_SESSION;
	enc.data = (ProtobufCBinaryData){5, iv};
	enc.output = &out;
	req.call_case = REMHSM__REQUEST__CALL_ENCRYPT;
	req.encrypt = &enc;
	write_request(dir, "prologue-encrypt", &req);
	Remhsm__Attribute len = ulong_attr(CKA_VALUE_LEN, 32);
	Remhsm__Attribute *lp[1] = {&len};
	Remhsm__Mechanism gen = REMHSM__MECHANISM__INIT;
	gen.type = CKM_GENERIC_SECRET_KEY_GEN;
	Remhsm__GenerateKeyReq gk = REMHSM__GENERATE_KEY_REQ__INIT;
	gk.session = FUZZ_SESSION;
	gk.mechanism = &gen;
	gk.n_template_ = 1;
	gk.template_ = lp;
	req.call_case = REMHSM__REQUEST__CALL_GENERATE_KEY;
	req.generate_key = &gk;
	write_request(dir, "prologue-generate-secret", &req);
	static uint8_t point[65] = {4};
	Remhsm__Ecdh1DeriveParams ecdh = REMHSM__ECDH1_DERIVE_PARAMS__INIT;
	ecdh.kdf = CKD_SHA256_KDF;
	ecdh.public_data = (ProtobufCBinaryData){sizeof(point), point};
	Remhsm__Mechanism dm = REMHSM__MECHANISM__INIT;
	dm.type = CKM_ECDH1_DERIVE;
	dm.parameter_case = REMHSM__MECHANISM__PARAMETER_ECDH;
	dm.ecdh = &ecdh;
	Remhsm__DeriveKeyReq dk = REMHSM__DERIVE_KEY_REQ__INIT;
	dk.session = FUZZ_SESSION;
	dk.mechanism = &dm;
	dk.base_key = FUZZ_PRIVATE;
	dk.n_template_ = 1;
	dk.template_ = lp;
	req.call_case = REMHSM__REQUEST__CALL_DERIVE_KEY;
	req.derive_key = &dk;
	write_request(dir, "prologue-derive", &req);
	static uint8_t salt[13] = {0, 1, 2};
	Remhsm__HkdfParams hkdf = REMHSM__HKDF_PARAMS__INIT;
	hkdf.extract = hkdf.expand = 1;
	hkdf.prf = CKM_SHA256;
	hkdf.salt_type = CKF_HKDF_SALT_DATA;
	hkdf.salt = (ProtobufCBinaryData){sizeof(salt), salt};
	hkdf.info = (ProtobufCBinaryData){5, iv};
	dm.type = CKM_HKDF_DERIVE;
	dm.parameter_case = REMHSM__MECHANISM__PARAMETER_HKDF;
	dm.hkdf = &hkdf;
	dk.base_key = FUZZ_PRIVATE + 2; /* the generated secret */
	write_request(dir, "prologue-derive-hkdf", &req);
}

/* A wrapping key imported, the generated secret wrapped under it with
 * KWP, and a blob unwrapped as an AES key. */
static void seed_wrapping(const char *dir)
{
	Remhsm__Attribute a[4] = {ulong_attr(CKA_CLASS, CKO_SECRET_KEY),
				  ulong_attr(CKA_KEY_TYPE, CKK_AES),
				  bytes_attr(CKA_VALUE, "fedcba9876543210"),
				  bool_attr(CKA_WRAP, 1)};
	Remhsm__Attribute *p[4] = {&a[0], &a[1], &a[2], &a[3]};
	seed_create(dir, "prologue-create-wrapping-key", p, 4);
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	Remhsm__Mechanism m = REMHSM__MECHANISM__INIT;
	m.type = CKM_AES_KEY_WRAP_KWP;
	Remhsm__OutputBuffer out = REMHSM__OUTPUT_BUFFER__INIT;
	out.has_buffer = 1;
	out.buffer_len = 64;
	Remhsm__WrapKeyReq wrap = REMHSM__WRAP_KEY_REQ__INIT;
	wrap.session = FUZZ_SESSION;
	wrap.mechanism = &m;
	wrap.wrapping_key = FUZZ_PRIVATE + 3;
	wrap.key = FUZZ_PRIVATE + 2;
	wrap.output = &out;
	req.call_case = REMHSM__REQUEST__CALL_WRAP_KEY;
	req.wrap_key = &wrap;
	write_request(dir, "prologue-wrap", &req);
	static uint8_t blob[24] = {0xa6, 0x59, 0x59, 0xa6};
	Remhsm__UnwrapKeyReq unwrap = REMHSM__UNWRAP_KEY_REQ__INIT;
	unwrap.session = FUZZ_SESSION;
	unwrap.mechanism = &m;
	unwrap.unwrapping_key = FUZZ_PRIVATE + 3;
	unwrap.wrapped_key = (ProtobufCBinaryData){sizeof(blob), blob};
	unwrap.n_template_ = 2;
	unwrap.template_ = p;
	req.call_case = REMHSM__REQUEST__CALL_UNWRAP_KEY;
	req.unwrap_key = &unwrap;
	write_request(dir, "prologue-unwrap", &req);
}

/* --- fuzz_frontend ------------------------------------------------------ */

/* How fuzz_frontend delivers the stream (its first byte). */
#define AT_ONCE 0x80
#define BYTE_BY_BYTE 0x00
#define HELD_CHUNKS 0x4f /* 80 bytes, frames held back between them */

static size_t read_seed(const char *dir, const char *name, uint8_t *buf,
			size_t cap)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(1);
	}
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void seed_after_hello(const char *corpus, const char *name,
			     const char *dir, unsigned variant)
{
	static uint8_t buf[1 << 17];
	static const uint8_t how[] = {AT_ONCE, BYTE_BY_BYTE, HELD_CHUNKS};
	buf[0] = how[variant];
	size_t len = 1 + th_hello_into(buf + 1, RH_PROTOCOL_VERSION, 7);
	len += read_seed(corpus, name, buf + len, sizeof(buf) - len);
	char out[300];
	snprintf(out, sizeof(out), "%s-%u", name, variant);
	write_file(dir, out, buf, len);
}

/* Before Hello, a second Hello, a version nobody speaks, a probe. */
static void seed_hello_cases(const char *dir)
{
	uint8_t buf[512];
	buf[0] = AT_ONCE;
	size_t len = 1 + th_hello_into(buf + 1, RH_PROTOCOL_VERSION, 1);
	write_file(dir, "hello", buf, len);
	len += th_hello_into(buf + len, RH_PROTOCOL_VERSION, 1);
	write_file(dir, "hello-twice", buf, len);
	len = 1 + th_hello_into(buf + 1, RH_PROTOCOL_VERSION + 7, 2);
	write_file(dir, "hello-unknown-version", buf, len);
	len = 1 + th_probe_into(buf + 1, RH_PROTOCOL_VERSION);
	len += th_hello_into(buf + len, RH_PROTOCOL_VERSION, 3);
	write_file(dir, "probe-then-hello", buf, len);
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	Remhsm__GetInfoReq info = REMHSM__GET_INFO_REQ__INIT;
	req.id = 2;
	req.call_case = REMHSM__REQUEST__CALL_GET_INFO;
	req.get_info = &info;
	len = 1 + th_frame_into(buf + 1, &req);
	write_file(dir, "call-before-hello", buf, len);
}

static void seed_frontend(const char *corpus, const char *dir)
{
	DIR *d = opendir(corpus);
	if (!d) {
		perror(corpus);
		exit(1);
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		for (unsigned v = 0; v < 3; v++)
			seed_after_hello(corpus, e->d_name, dir, v);
	}
	closedir(d);
	seed_hello_cases(dir);
}

/* An Ed25519 key made on the prologue's session and a C_Sign with it;
 * C_DigestKey with its C_DigestInit held, on the AES key made before. */
static void seed_eddsa_and_digest_key(const char *dir)
{
	static const uint8_t ed_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
	Remhsm__Attribute params = REMHSM__ATTRIBUTE__INIT;
	params.type = CKA_EC_PARAMS;
	params.value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
	params.bytes = (ProtobufCBinaryData){sizeof(ed_oid), (uint8_t *)ed_oid};
	Remhsm__Attribute a[4] = {
		ulong_attr(CKA_CLASS, CKO_PRIVATE_KEY),
		ulong_attr(CKA_KEY_TYPE, CKK_EC_EDWARDS), params,
		bytes_attr(CKA_VALUE, "0123456789abcdef0123456789abcdef")};
	Remhsm__Attribute *p[4] = {&a[0], &a[1], &a[2], &a[3]};
	seed_create(dir, "prologue-create-ed25519-key", p, 4);
	Remhsm__Mechanism eddsa = REMHSM__MECHANISM__INIT;
	eddsa.type = CKM_EDDSA;
	Remhsm__SignInitReq init = REMHSM__SIGN_INIT_REQ__INIT;
	init.session = FUZZ_SESSION;
	init.mechanism = &eddsa;
	init.key = FUZZ_PRIVATE + 1;
	Remhsm__OutputBuffer out = REMHSM__OUTPUT_BUFFER__INIT;
	out.has_buffer = 1;
	out.buffer_len = 64;
	Remhsm__SignReq sign = REMHSM__SIGN_REQ__INIT;
	sign.session = FUZZ_SESSION;
	sign.data = (ProtobufCBinaryData){3, (uint8_t *)"abc"};
	sign.output = &out;
	sign.init = &init;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.call_case = REMHSM__REQUEST__CALL_SIGN;
	req.sign = &sign;
	write_request(dir, "prologue-sign-eddsa", &req);
	Remhsm__Mechanism sha = REMHSM__MECHANISM__INIT;
	sha.type = CKM_SHA256;
	Remhsm__DigestInitReq dinit = REMHSM__DIGEST_INIT_REQ__INIT;
	dinit.session = FUZZ_SESSION;
	dinit.mechanism = &sha;
	Remhsm__DigestKeyReq dk = REMHSM__DIGEST_KEY_REQ__INIT;
	dk.session = FUZZ_SESSION;
	dk.key = FUZZ_PRIVATE + 1;
	dk.init = &dinit;
	req.call_case = REMHSM__REQUEST__CALL_DIGEST_KEY;
	req.digest_key = &dk;
	write_request(dir, "prologue-digest-key", &req);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--frontend")) {
		seed_frontend(argv[2], argv[3]);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds DIR\n"
				"       make_seeds --frontend CORPUS DIR\n");
		return 2;
	}
#define SEED(num, UP, low, Camel, flags)                                       \
	seed_call(argv[1], num, &remhsm__##low##_req__descriptor, #low);
	RH_CALLS(SEED)
#undef SEED
	seed_session_then_random(argv[1]);
	seed_sign_and_verify(argv[1]);
	seed_objects(argv[1]);
	seed_secret_keys(argv[1]);
	seed_wrapping(argv[1]);
	seed_eddsa_and_digest_key(argv[1]);
	const uint8_t oversized[] = {0xff, 0xff, 0xff, 0xf0, 1, 2};
	write_file(argv[1], "oversized-header", oversized, sizeof(oversized));
	const uint8_t unknown_call[] = {0,    0,    0,	  5,   0x08,
					0x09, 0x9a, 0x06, 0x00};
	write_file(argv[1], "unknown-call", unknown_call, sizeof(unknown_call));
	const uint8_t garbage[] = {0,	 0,    0,    6,	   0xff,
				   0xff, 0xff, 0xff, 0xff, 0xff};
	write_file(argv[1], "garbage", garbage, sizeof(garbage));
	return 0;
}
