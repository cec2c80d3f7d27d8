/* Objects through dispatch over a real store: create rules and their
 * codes, attribute answers, visibility, finds, destroy, persistence. */
#include <check.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "dispatch.h"
#include "engine_support.h"
#include "harness.h"
#include "nesting.h"
#include "object.h"
#include "object_template.h"
#include "objects.h"
#include "ops.h"
#include "pki.h"
#include "rh_decode.h"

static th_store_t store;
static rhd_engine_t engine;
static rhd_app_t *app, *other;
static uint64_t rw, ro;

/* P-256 OID; secp256k1 OID (not served). */
static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
			       0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t k256[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};
static const uint8_t scalar[32] = {
	0x5e, 0xc4, 0x11, 0x2a, 0x0d, 0x9b, 0x77, 0x31, 0x66, 0x01, 0xfe,
	0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54, 0x76,
	0x98, 0xba, 0xdc, 0xfe, 0x13, 0x57, 0x9b, 0xdf, 0x24, 0x68};

/* --- a tiny template builder ------------------------------------------------
 */

typedef struct tmpl {
	Remhsm__Attribute a[16];
	Remhsm__Attribute *p[16];
	size_t n;
} tmpl_t;

static void t_ulong(tmpl_t *t, uint64_t type, uint64_t v)
{
	Remhsm__Attribute *a = &t->a[t->n];
	remhsm__attribute__init(a);
	a->type = type;
	a->value_case = REMHSM__ATTRIBUTE__VALUE_ULONG;
	a->ulong = v;
	t->p[t->n] = a;
	t->n++;
}

static void t_bool(tmpl_t *t, uint64_t type, int v)
{
	Remhsm__Attribute *a = &t->a[t->n];
	remhsm__attribute__init(a);
	a->type = type;
	a->value_case = REMHSM__ATTRIBUTE__VALUE_BOOLEAN;
	a->boolean = v;
	t->p[t->n] = a;
	t->n++;
}

static void t_bytes(tmpl_t *t, uint64_t type, const void *v, size_t len)
{
	Remhsm__Attribute *a = &t->a[t->n];
	remhsm__attribute__init(a);
	a->type = type;
	a->value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
	a->bytes = (ProtobufCBinaryData){len, (uint8_t *)v};
	t->p[t->n] = a;
	t->n++;
}

static void t_text(tmpl_t *t, uint64_t type, const char *s)
{
	t_bytes(t, type, s, strlen(s));
}

/* --- calls ------------------------------------------------------------------
 */

static uint64_t run(rhd_app_t *a, Remhsm__Request *req, Remhsm__Response *resp,
		    rh_arena_t *arena)
{
	remhsm__response__init(resp);
	rhd_dispatch(&engine, a, req, resp, arena);
	return resp->rv;
}

/* A call whose answer only matters by its code. */
static uint64_t run_rv(rhd_app_t *a, Remhsm__Request *req)
{
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	uint64_t rv = run(a, req, &resp, &arena);
	rh_arena_cleanup(&arena);
	return rv;
}

static uint64_t create_wire(rhd_app_t *a, uint64_t session,
			    Remhsm__Attribute **attrs, size_t n,
			    uint64_t *handle)
{
	Remhsm__CreateObjectReq b = REMHSM__CREATE_OBJECT_REQ__INIT;
	b.session = session;
	b.n_template_ = n;
	b.template_ = attrs;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_CREATE_OBJECT;
	r.create_object = &b;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	uint64_t rv = run(a, &r, &resp, &arena);
	if (rv == CKR_OK && handle)
		*handle = resp.create_object->object->handle;
	rh_arena_cleanup(&arena);
	return rv;
}

static uint64_t create_as(rhd_app_t *a, uint64_t session, tmpl_t *t,
			  uint64_t *handle)
{
	return create_wire(a, session, t->p, t->n, handle);
}

static uint64_t create(tmpl_t *t, uint64_t *handle)
{
	return create_as(app, rw, t, handle);
}

static uint64_t simple(rhd_app_t *a, int call, uint64_t session, uint64_t arg)
{
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	Remhsm__DestroyObjectReq destroy = REMHSM__DESTROY_OBJECT_REQ__INIT;
	Remhsm__LoginReq login = REMHSM__LOGIN_REQ__INIT;
	Remhsm__LogoutReq logout = REMHSM__LOGOUT_REQ__INIT;
	Remhsm__CloseSessionReq close = REMHSM__CLOSE_SESSION_REQ__INIT;
	Remhsm__FindObjectsFinalReq final =
		REMHSM__FIND_OBJECTS_FINAL_REQ__INIT;
	r.call_case = (Remhsm__Request__CallCase)call;
	switch (call) {
	case REMHSM__REQUEST__CALL_DESTROY_OBJECT:
		destroy.session = session;
		destroy.object = arg;
		r.destroy_object = &destroy;
		break;
	case REMHSM__REQUEST__CALL_LOGIN:
		login.session = session;
		login.user_type = arg;
		login.pin = (ProtobufCBinaryData){
			4, (uint8_t *)(arg == CKU_SO ? "9876" : "0000")};
		r.login = &login;
		break;
	case REMHSM__REQUEST__CALL_LOGOUT:
		logout.session = session;
		r.logout = &logout;
		break;
	case REMHSM__REQUEST__CALL_CLOSE_SESSION:
		close.session = session;
		r.close_session = &close;
		break;
	default:
		final.session = session;
		r.find_objects_final = &final;
		break;
	}
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	uint64_t rv = run(a, &r, &resp, &arena);
	rh_arena_cleanup(&arena);
	return rv;
}

static uint64_t open_session(rhd_app_t *a, int rw_flag)
{
	Remhsm__OpenSessionReq b = REMHSM__OPEN_SESSION_REQ__INIT;
	b.flags = CKF_SERIAL_SESSION | (rw_flag ? CKF_RW_SESSION : 0);
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	r.open_session = &b;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	ck_assert_uint_eq(run(a, &r, &resp, &arena), CKR_OK);
	uint64_t h = resp.open_session->session;
	rh_arena_cleanup(&arena);
	return h;
}

static uint64_t find_init(rhd_app_t *a, uint64_t session, tmpl_t *t)
{
	Remhsm__FindObjectsInitReq b = REMHSM__FIND_OBJECTS_INIT_REQ__INIT;
	b.session = session;
	b.n_template_ = t->n;
	b.template_ = t->p;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_FIND_OBJECTS_INIT;
	r.find_objects_init = &b;
	return run_rv(a, &r);
}

/* Finds with a template; returns how many, handles in out. */
static size_t find(rhd_app_t *a, uint64_t session, tmpl_t *t, uint64_t out[8])
{
	ck_assert_uint_eq(find_init(a, session, t), CKR_OK);
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	size_t total = 0;
	for (;;) {
		Remhsm__FindObjectsReq f = REMHSM__FIND_OBJECTS_REQ__INIT;
		f.session = session;
		f.max_count = 2;
		r.call_case = REMHSM__REQUEST__CALL_FIND_OBJECTS;
		r.find_objects = &f;
		ck_assert_uint_eq(run(a, &r, &resp, &arena), CKR_OK);
		size_t n = resp.find_objects->n_objects;
		for (size_t i = 0; i < n && total + i < 8; i++)
			out[total + i] = resp.find_objects->objects[i]->handle;
		rh_arena_cleanup(&arena);
		total += n;
		if (n == 0)
			break;
	}
	ck_assert_uint_eq(
		simple(a, REMHSM__REQUEST__CALL_FIND_OBJECTS_FINAL, session, 0),
		CKR_OK);
	return total;
}

/* One attribute: its status, and its value copied into buf. */
static int get_attr(rhd_app_t *a, uint64_t session, uint64_t obj, uint64_t type,
		    uint64_t buffer_len, uint8_t *buf, size_t *len,
		    uint64_t *rv)
{
	Remhsm__AttributeQuery q = REMHSM__ATTRIBUTE_QUERY__INIT;
	q.type = type;
	q.has_buffer = 1;
	q.buffer_len = buffer_len;
	Remhsm__AttributeQuery *qs[] = {&q};
	Remhsm__GetAttributeValueReq b = REMHSM__GET_ATTRIBUTE_VALUE_REQ__INIT;
	b.session = session;
	b.object = obj;
	b.n_template_ = 1;
	b.template_ = qs;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_GET_ATTRIBUTE_VALUE;
	r.get_attribute_value = &b;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	*rv = run(a, &r, &resp, &arena);
	int status = -1;
	if (*rv == CKR_OK) {
		Remhsm__AttributeResult *res =
			resp.get_attribute_value->results[0];
		status = res->status;
		*len = res->length;
		if (res->value &&
		    res->value->value_case == REMHSM__ATTRIBUTE__VALUE_BYTES)
			memcpy(buf, res->value->bytes.data,
			       res->value->bytes.len);
		else if (res->value && res->value->value_case ==
					       REMHSM__ATTRIBUTE__VALUE_ULONG)
			memcpy(buf, &res->value->ulong, 8);
		else if (res->value)
			buf[0] = (uint8_t)res->value->boolean;
	}
	rh_arena_cleanup(&arena);
	return status;
}

/* --- fixtures
 * ----------------------------------------------------------------- */

static uint64_t set_attrs(uint64_t session, uint64_t obj, tmpl_t *t)
{
	Remhsm__SetAttributeValueReq b = REMHSM__SET_ATTRIBUTE_VALUE_REQ__INIT;
	b.session = session;
	b.object = obj;
	b.n_template_ = t->n;
	b.template_ = t->p;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_SET_ATTRIBUTE_VALUE;
	r.set_attribute_value = &b;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	uint64_t rv = run(app, &r, &resp, &arena);
	rh_arena_cleanup(&arena);
	return rv;
}

static uint64_t copy_obj(uint64_t session, uint64_t obj, tmpl_t *t,
			 uint64_t *out)
{
	Remhsm__CopyObjectReq b = REMHSM__COPY_OBJECT_REQ__INIT;
	b.session = session;
	b.object = obj;
	b.n_template_ = t->n;
	b.template_ = t->p;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_COPY_OBJECT;
	r.copy_object = &b;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	uint64_t rv = run(app, &r, &resp, &arena);
	if (rv == CKR_OK && out)
		*out = resp.copy_object->object->handle;
	rh_arena_cleanup(&arena);
	return rv;
}

static void start(void)
{
	ck_assert_int_eq(th_engine_init(&engine, &store, 1), 0);
	uint8_t id1[RHD_APP_ID_LEN] = {1}, id2[RHD_APP_ID_LEN] = {2};
	app = rhd_engine_attach(&engine, id1, sizeof(id1), "CN=one");
	other = rhd_engine_attach(&engine, id2, sizeof(id2), "CN=two");
	rw = open_session(app, 1);
	ro = open_session(app, 0);
}

static void stop(void)
{
	rhd_engine_detach(&engine, app);
	rhd_engine_detach(&engine, other);
	rhd_engine_cleanup(&engine);
}

static void setup(void)
{
	th_store_open(&store);
	ck_assert_int_eq(th_engine_init(&engine, &store, 1), 0);
	rhd_token_t *t = rhd_engine_token(&engine, 0);
	ck_assert_uint_eq(rhd_token_init(&engine.tokens, t,
					 (const uint8_t *)"9876", 4,
					 (const uint8_t *)"objects", 7),
			  CKR_OK);
	uint8_t key[RHS_KEY_LEN];
	ck_assert_uint_eq(rhd_token_verify_pin(&engine.tokens, t, CKU_SO,
					       (const uint8_t *)"9876", 4, key),
			  CKR_OK);
	ck_assert_uint_eq(rhd_token_set_pin(&engine.tokens, t, CKU_USER, key,
					    (const uint8_t *)"0000", 4),
			  CKR_OK);
	rhd_engine_cleanup(&engine);
	start();
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_LOGIN, ro, CKU_USER), CKR_OK);
}

static void teardown(void)
{
	stop();
	th_store_cleanup(&store);
}

static void ec_private(tmpl_t *t, int token)
{
	t_ulong(t, CKA_CLASS, CKO_PRIVATE_KEY);
	t_ulong(t, CKA_KEY_TYPE, CKK_EC);
	t_text(t, CKA_LABEL, "Device Priv TLS Key");
	t_bool(t, CKA_TOKEN, token);
	t_bool(t, CKA_SIGN, 1);
	t_bytes(t, CKA_EC_PARAMS, p256, sizeof(p256));
	t_bytes(t, CKA_VALUE, scalar, sizeof(scalar));
}

static void data_object(tmpl_t *t, const char *label, int token,
			int private_obj)
{
	t_ulong(t, CKA_CLASS, CKO_DATA);
	t_text(t, CKA_LABEL, label);
	t_bool(t, CKA_TOKEN, token);
	t_bool(t, CKA_PRIVATE, private_obj);
	t_text(t, CKA_VALUE, "payload");
}

/* A DER certificate from the harness's PKI functions. */
static size_t certificate(uint8_t *der, size_t cap)
{
	EVP_PKEY *key = rh_pki_keygen();
	X509 *cert = rh_pki_issue(key, "device-42", RH_PKI_CLIENT, NULL, NULL,
				  0, 3600);
	unsigned char *p = der;
	int len = i2d_X509(cert, NULL);
	ck_assert_int_le(len, (int)cap);
	i2d_X509(cert, &p);
	X509_free(cert);
	EVP_PKEY_free(key);
	return (size_t)len;
}

/* --- tests
 * ---------------------------------------------------------------------- */

START_TEST(test_data_object_round_trip)
{
	tmpl_t t = {0};
	data_object(&t, "blob", 1, 0);
	uint64_t h;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	uint8_t buf[64];
	size_t len;
	uint64_t rv;
	ck_assert_int_eq(get_attr(app, ro, h, CKA_VALUE, 64, buf, &len, &rv),
			 REMHSM__ATTRIBUTE_RESULT__STATUS__OK);
	ck_assert_uint_eq(len, 7);
	ck_assert_mem_eq(buf, "payload", 7);
	ck_assert_int_eq(get_attr(app, ro, h, CKA_VALUE, 3, buf, &len, &rv),
			 REMHSM__ATTRIBUTE_RESULT__STATUS__BUFFER_TOO_SMALL);
	ck_assert_int_eq(get_attr(app, ro, h, CKA_MODULUS, 64, buf, &len, &rv),
			 REMHSM__ATTRIBUTE_RESULT__STATUS__TYPE_INVALID);
	ck_assert_int_eq(
		get_attr(app, ro, h, CKA_MODIFIABLE, 1, buf, &len, &rv),
		REMHSM__ATTRIBUTE_RESULT__STATUS__OK);
	ck_assert_uint_eq(buf[0], 1);
}
END_TEST

START_TEST(test_certificate_fields_come_from_the_der)
{
	uint8_t der[2048], buf[512];
	size_t der_len = certificate(der, sizeof(der)), len;
	tmpl_t t = {0};
	t_ulong(&t, CKA_CLASS, CKO_CERTIFICATE);
	t_ulong(&t, CKA_CERTIFICATE_TYPE, CKC_X_509);
	t_bool(&t, CKA_TOKEN, 1);
	t_text(&t, CKA_LABEL, "Device Cert");
	t_bytes(&t, CKA_VALUE, der, der_len);
	uint64_t h, rv;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	ck_assert_int_eq(
		get_attr(app, ro, h, CKA_SUBJECT, sizeof(buf), buf, &len, &rv),
		0);
	const unsigned char *p = buf;
	X509_NAME *name = d2i_X509_NAME(NULL, &p, (long)len);
	ck_assert_ptr_nonnull(name);
	char cn[64];
	X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn));
	ck_assert_str_eq(cn, "device-42");
	X509_NAME_free(name);
	ck_assert_int_eq(get_attr(app, ro, h, CKA_SERIAL_NUMBER, sizeof(buf),
				  buf, &len, &rv),
			 0);
	ck_assert_uint_eq(buf[0], 0x02); /* DER INTEGER */
	/* FreeRTOS sends a CKA_SUBJECT that is not DER: kept as given. */
	tmpl_t f = {0};
	t_ulong(&f, CKA_CLASS, CKO_CERTIFICATE);
	t_ulong(&f, CKA_CERTIFICATE_TYPE, CKC_X_509);
	t_text(&f, CKA_SUBJECT, "TestSubject");
	t_bytes(&f, CKA_VALUE, der, der_len);
	ck_assert_uint_eq(create(&f, &h), CKR_OK);
	ck_assert_int_eq(
		get_attr(app, ro, h, CKA_SUBJECT, sizeof(buf), buf, &len, &rv),
		0);
	ck_assert_mem_eq(buf, "TestSubject", 11);
}
END_TEST

START_TEST(test_bad_certificates_are_refused)
{
	uint8_t der[2048];
	size_t der_len = certificate(der, sizeof(der));
	tmpl_t t = {0};
	t_ulong(&t, CKA_CLASS, CKO_CERTIFICATE);
	t_ulong(&t, CKA_CERTIFICATE_TYPE, CKC_X_509);
	ck_assert_uint_eq(create(&t, NULL), CKR_TEMPLATE_INCOMPLETE);
	t_bytes(&t, CKA_VALUE, der, der_len - 1);
	ck_assert_uint_eq(create(&t, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	der[der_len] = 0;
	t.a[2].bytes.len = der_len + 1; /* trailing garbage */
	ck_assert_uint_eq(create(&t, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	t.a[2].bytes.len = der_len;
	t.a[1].ulong = CKC_WTLS;
	ck_assert_uint_eq(create(&t, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
}
END_TEST

START_TEST(test_ec_private_key_import_defaults_and_secrecy)
{
	tmpl_t t = {0};
	ec_private(&t, 1);
	uint64_t h, rv;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	uint8_t buf[128];
	size_t len;
	ck_assert_int_eq(
		get_attr(app, ro, h, CKA_VALUE, sizeof(buf), buf, &len, &rv),
		REMHSM__ATTRIBUTE_RESULT__STATUS__SENSITIVE);
	const uint64_t on[] = {CKA_SENSITIVE, CKA_PRIVATE, CKA_SIGN};
	const uint64_t off[] = {CKA_EXTRACTABLE, CKA_LOCAL,
				CKA_ALWAYS_SENSITIVE};
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(get_attr(app, ro, h, on[i], 1, buf, &len, &rv),
				 0);
		ck_assert_uint_eq(buf[0], 1);
		ck_assert_int_eq(
			get_attr(app, ro, h, off[i], 1, buf, &len, &rv), 0);
		ck_assert_uint_eq(buf[0], 0);
	}
	/* The public point is derived, and readable as FreeRTOS needs. */
	ck_assert_int_eq(
		get_attr(app, ro, h, CKA_EC_POINT, sizeof(buf), buf, &len, &rv),
		0);
	ck_assert_uint_eq(len, 67);
	ck_assert_uint_eq(buf[0], 0x04);
	ck_assert_uint_eq(buf[1], 65);
	ck_assert_uint_eq(buf[2], 0x04);
	ck_assert(!th_store_holds(&store, scalar, sizeof(scalar)));
}
END_TEST

START_TEST(test_ec_key_material_is_validated)
{
	tmpl_t t = {0};
	ec_private(&t, 0);
	t.a[5].bytes = (ProtobufCBinaryData){sizeof(k256), (uint8_t *)k256};
	ck_assert_uint_eq(create(&t, NULL), CKR_CURVE_NOT_SUPPORTED);
	t.a[5].bytes = (ProtobufCBinaryData){sizeof(p256), (uint8_t *)p256};
	uint8_t zero[32] = {0}, big[32];
	memset(big, 0xff, sizeof(big));
	t.a[6].bytes = (ProtobufCBinaryData){32, zero};
	ck_assert_uint_eq(create(&t, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	t.a[6].bytes = (ProtobufCBinaryData){32, big};
	ck_assert_uint_eq(create(&t, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	/* A point that is not on the curve. */
	uint8_t point[67] = {0x04, 65, 0x04};
	memset(point + 3, 0x11, 64);
	tmpl_t pub = {0};
	t_ulong(&pub, CKA_CLASS, CKO_PUBLIC_KEY);
	t_ulong(&pub, CKA_KEY_TYPE, CKK_EC);
	t_bytes(&pub, CKA_EC_PARAMS, p256, sizeof(p256));
	ck_assert_uint_eq(create(&pub, NULL), CKR_TEMPLATE_INCOMPLETE);
	t_bytes(&pub, CKA_EC_POINT, point, sizeof(point));
	ck_assert_uint_eq(create(&pub, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	pub.a[3].bytes.len = 10; /* a short, malformed OCTET STRING */
	ck_assert_uint_eq(create(&pub, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
}
END_TEST

START_TEST(test_public_key_from_a_private_keys_point)
{
	tmpl_t t = {0};
	ec_private(&t, 0);
	uint64_t priv, rv;
	ck_assert_uint_eq(create(&t, &priv), CKR_OK);
	uint8_t point[128];
	size_t len;
	ck_assert_int_eq(get_attr(app, ro, priv, CKA_EC_POINT, sizeof(point),
				  point, &len, &rv),
			 0);
	tmpl_t pub = {0};
	t_ulong(&pub, CKA_CLASS, CKO_PUBLIC_KEY);
	t_ulong(&pub, CKA_KEY_TYPE, CKK_EC);
	t_bool(&pub, CKA_VERIFY, 1);
	t_bytes(&pub, CKA_EC_PARAMS, p256, sizeof(p256));
	t_bytes(&pub, CKA_EC_POINT, point, len);
	ck_assert_uint_eq(create(&pub, NULL), CKR_OK);
}
END_TEST

/* CKA_EC_POINT has one encoding: the DER OCTET STRING's short form for a
 * P-256 point. The long form of the same point was admitted at import and
 * then refused at each use; it is refused at import now. */
START_TEST(test_ec_point_has_one_encoding)
{
	tmpl_t t = {0};
	ec_private(&t, 0);
	uint64_t priv, rv;
	ck_assert_uint_eq(create(&t, &priv), CKR_OK);
	uint8_t point[128], longform[129];
	size_t len;
	ck_assert_int_eq(get_attr(app, ro, priv, CKA_EC_POINT, sizeof(point),
				  point, &len, &rv),
			 0);
	ck_assert_uint_eq(point[1], len - 2); /* short form: 04 41 04 ... */
	longform[0] = 0x04;
	longform[1] = 0x81;
	memcpy(longform + 2, point + 1, len - 1);
	tmpl_t pub = {0};
	t_ulong(&pub, CKA_CLASS, CKO_PUBLIC_KEY);
	t_ulong(&pub, CKA_KEY_TYPE, CKK_EC);
	t_bool(&pub, CKA_VERIFY, 1);
	t_bytes(&pub, CKA_EC_PARAMS, p256, sizeof(p256));
	t_bytes(&pub, CKA_EC_POINT, longform, len + 1);
	ck_assert_uint_eq(create(&pub, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	pub.a[4].bytes = (ProtobufCBinaryData){len, point};
	ck_assert_uint_eq(create(&pub, NULL), CKR_OK);
}
END_TEST

static uint64_t mechanism_info(uint64_t type, Remhsm__GetMechanismInfoResp *out)
{
	Remhsm__GetMechanismInfoReq b = REMHSM__GET_MECHANISM_INFO_REQ__INIT;
	b.type = type;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_GET_MECHANISM_INFO;
	r.get_mechanism_info = &b;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	uint64_t rv = run(app, &r, &resp, &arena);
	if (rv == CKR_OK)
		*out = *resp.get_mechanism_info;
	rh_arena_cleanup(&arena);
	return rv;
}

static uint64_t generate_rsa(uint64_t bits)
{
	tmpl_t pub = {0};
	t_ulong(&pub, CKA_MODULUS_BITS, bits);
	Remhsm__Mechanism mech = REMHSM__MECHANISM__INIT;
	mech.type = CKM_RSA_PKCS_KEY_PAIR_GEN;
	Remhsm__GenerateKeyPairReq b = REMHSM__GENERATE_KEY_PAIR_REQ__INIT;
	b.session = rw;
	b.mechanism = &mech;
	b.n_public_template = pub.n;
	b.public_template = pub.p;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_GENERATE_KEY_PAIR;
	r.generate_key_pair = &b;
	return run_rv(app, &r);
}

/* What C_GetMechanismInfo reports is what generation accepts: RSA keys
 * from 2048 to 4096 bits of any size between, not one bit more or less
 * (signing takes the imported sizes, to 8192). */
START_TEST(test_mechanism_info_tells_what_generation_accepts)
{
	Remhsm__GetMechanismInfoResp info;
	ck_assert_uint_eq(mechanism_info(CKM_RSA_PKCS_KEY_PAIR_GEN, &info),
			  CKR_OK);
	ck_assert_uint_eq(info.min_key_size, 2048);
	ck_assert_uint_eq(info.max_key_size, 4096);
	ck_assert_uint_eq(generate_rsa(info.min_key_size - 1),
			  CKR_KEY_SIZE_RANGE);
	ck_assert_uint_eq(generate_rsa(info.max_key_size + 1),
			  CKR_KEY_SIZE_RANGE);
	ck_assert_uint_eq(generate_rsa(2304), CKR_OK);
	ck_assert_uint_eq(mechanism_info(CKM_RSA_PKCS, &info), CKR_OK);
	ck_assert_uint_eq(info.min_key_size, 2048);
	ck_assert_uint_eq(info.max_key_size, 8192);
	ck_assert_uint_eq(mechanism_info(CKM_ECDSA, &info), CKR_OK);
	ck_assert_uint_eq(info.min_key_size, 256);
	ck_assert_uint_eq(info.max_key_size, 521);
}
END_TEST

START_TEST(test_template_errors_have_their_codes)
{
	tmpl_t none = {0};
	t_text(&none, CKA_LABEL, "no class");
	ck_assert_uint_eq(create(&none, NULL), CKR_TEMPLATE_INCOMPLETE);
	tmpl_t alien = {0};
	data_object(&alien, "x", 0, 0);
	t_bytes(&alien, CKA_MODULUS, "\x01", 1);
	ck_assert_uint_eq(create(&alien, NULL), CKR_ATTRIBUTE_TYPE_INVALID);
	tmpl_t ro_attr = {0};
	ec_private(&ro_attr, 0);
	t_bool(&ro_attr, CKA_LOCAL, 1);
	ck_assert_uint_eq(create(&ro_attr, NULL), CKR_ATTRIBUTE_READ_ONLY);
	tmpl_t twice = {0};
	data_object(&twice, "x", 0, 0);
	t_text(&twice, CKA_LABEL, "y");
	ck_assert_uint_eq(create(&twice, NULL), CKR_TEMPLATE_INCONSISTENT);
	tmpl_t shape = {0};
	t_bytes(&shape, CKA_CLASS, "\x00\x00\x00",
		3); /* a CK_ULONG of 3 bytes */
	ck_assert_uint_eq(create(&shape, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	tmpl_t dsa = {0};
	t_ulong(&dsa, CKA_CLASS, CKO_PRIVATE_KEY);
	t_ulong(&dsa, CKA_KEY_TYPE, CKK_DSA);
	ck_assert_uint_eq(create(&dsa, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	tmpl_t secret = {0};
	t_ulong(&secret, CKA_CLASS, CKO_SECRET_KEY);
	ck_assert_uint_eq(create(&secret, NULL), CKR_TEMPLATE_INCOMPLETE);
	tmpl_t params = {0};
	t_ulong(&params, CKA_CLASS, CKO_DOMAIN_PARAMETERS);
	ck_assert_uint_eq(create(&params, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	tmpl_t mechs = {0};
	data_object(&mechs, "x", 0, 0);
	/* A mechanism list is whole 8-byte entries on the wire... */
	t_bytes(&mechs, CKA_ALLOWED_MECHANISMS, "\x01", 1);
	ck_assert_uint_eq(create(&mechs, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
	/* ...and belongs to keys, not to data objects. */
	tmpl_t data_mechs = {0};
	data_object(&data_mechs, "x", 0, 0);
	t_bytes(&data_mechs, CKA_ALLOWED_MECHANISMS,
		"\x41\x10\x00\x00\x00\x00\x00\x00", 8);
	ck_assert_uint_eq(create(&data_mechs, NULL),
			  CKR_ATTRIBUTE_TYPE_INVALID);
}
END_TEST

START_TEST(test_sessions_and_login_gate_creation)
{
	tmpl_t token_obj = {0};
	data_object(&token_obj, "x", 1, 0);
	ck_assert_uint_eq(create_as(app, ro, &token_obj, NULL),
			  CKR_SESSION_READ_ONLY);
	tmpl_t session_obj = {0};
	data_object(&session_obj, "x", 0, 0);
	ck_assert_uint_eq(create_as(app, ro, &session_obj, NULL), CKR_OK);
	uint64_t s = open_session(other, 1);
	tmpl_t private_obj = {0};
	data_object(&private_obj, "x", 1, 1);
	ck_assert_uint_eq(create_as(other, s, &private_obj, NULL),
			  CKR_USER_NOT_LOGGED_IN);
	ck_assert_uint_eq(create_as(app, 12345, &private_obj, NULL),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

START_TEST(test_private_objects_are_invisible_without_login)
{
	tmpl_t t = {0};
	data_object(&t, "secret", 1, 1);
	uint64_t h, rv;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	tmpl_t pub = {0};
	data_object(&pub, "public", 1, 0);
	ck_assert_uint_eq(create(&pub, NULL), CKR_OK);
	tmpl_t all = {0};
	uint64_t found[8];
	ck_assert_uint_eq(find(app, ro, &all, found), 2);
	ck_assert_uint_eq(simple(app, REMHSM__REQUEST__CALL_LOGOUT, ro, 0),
			  CKR_OK);
	ck_assert_uint_eq(find(app, ro, &all, found), 1);
	uint8_t buf[16];
	size_t len;
	get_attr(app, ro, h, CKA_VALUE, 16, buf, &len, &rv);
	ck_assert_uint_eq(rv, CKR_OBJECT_HANDLE_INVALID);
	/* Nor for the SO. */
	uint64_t so = open_session(other, 1);
	ck_assert_uint_eq(
		simple(other, REMHSM__REQUEST__CALL_LOGIN, so, CKU_SO), CKR_OK);
	ck_assert_uint_eq(find(other, so, &all, found), 1);
}
END_TEST

START_TEST(test_handles_of_another_application_are_invalid)
{
	tmpl_t t = {0};
	data_object(&t, "mine", 1, 0);
	uint64_t h, rv;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	uint64_t s = open_session(other, 0);
	uint8_t buf[16];
	size_t len;
	get_attr(other, s, h, CKA_VALUE, 16, buf, &len, &rv);
	ck_assert_uint_eq(rv, CKR_OBJECT_HANDLE_INVALID);
	ck_assert_uint_eq(
		simple(other, REMHSM__REQUEST__CALL_DESTROY_OBJECT, s, h),
		CKR_OBJECT_HANDLE_INVALID);
}
END_TEST

START_TEST(test_find_matches_exactly_and_keeps_a_cursor)
{
	tmpl_t a = {0}, b = {0}, c = {0};
	data_object(&a, "Device Cert", 1, 0);
	data_object(&b, "Device Cert", 0, 0);
	data_object(&c, "Root Cert", 1, 0);
	ck_assert_uint_eq(create(&a, NULL), CKR_OK);
	ck_assert_uint_eq(create(&b, NULL), CKR_OK);
	ck_assert_uint_eq(create(&c, NULL), CKR_OK);
	uint64_t found[8];
	tmpl_t by_label = {0};
	t_text(&by_label, CKA_LABEL, "Device Cert");
	t_ulong(&by_label, CKA_CLASS, CKO_DATA);
	ck_assert_uint_eq(find(app, ro, &by_label, found), 2);
	tmpl_t by_token = {0};
	t_text(&by_token, CKA_LABEL, "Device Cert");
	t_bool(&by_token, CKA_TOKEN, 0);
	ck_assert_uint_eq(find(app, ro, &by_token, found), 1);
	tmpl_t none = {0};
	t_text(&none, CKA_LABEL, "Device Cer");
	ck_assert_uint_eq(find(app, ro, &none, found), 0);
	/* Cursor rules. */
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_FIND_OBJECTS_FINAL, ro, 0),
		CKR_OPERATION_NOT_INITIALIZED);
	Remhsm__FindObjectsInitReq init = REMHSM__FIND_OBJECTS_INIT_REQ__INIT;
	init.session = ro;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_FIND_OBJECTS_INIT;
	r.find_objects_init = &init;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	ck_assert_uint_eq(run(app, &r, &resp, &arena), CKR_OK);
	ck_assert_uint_eq(run(app, &r, &resp, &arena), CKR_OPERATION_ACTIVE);
	rh_arena_cleanup(&arena);
}
END_TEST

START_TEST(test_destroy_rules)
{
	tmpl_t t = {0};
	data_object(&t, "doomed", 1, 0);
	uint64_t h, kept, rv;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_DESTROY_OBJECT, ro, h),
		CKR_SESSION_READ_ONLY);
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_DESTROY_OBJECT, rw, h),
		CKR_OK);
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_DESTROY_OBJECT, rw, h),
		CKR_OBJECT_HANDLE_INVALID);
	uint8_t buf[16];
	size_t len;
	get_attr(app, ro, h, CKA_VALUE, 16, buf, &len, &rv);
	ck_assert_uint_eq(rv, CKR_OBJECT_HANDLE_INVALID);
	tmpl_t k = {0};
	data_object(&k, "kept", 1, 0);
	t_bool(&k, CKA_DESTROYABLE, 0);
	ck_assert_uint_eq(create(&k, &kept), CKR_OK);
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_DESTROY_OBJECT, rw, kept),
		CKR_ACTION_PROHIBITED);
}
END_TEST

START_TEST(test_session_objects_die_with_their_session)
{
	tmpl_t t = {0};
	data_object(&t, "ephemeral", 0, 0);
	uint64_t s = open_session(app, 0), h, rv;
	ck_assert_uint_eq(create_as(app, s, &t, &h), CKR_OK);
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_CLOSE_SESSION, s, 0), CKR_OK);
	uint8_t buf[16];
	size_t len;
	get_attr(app, ro, h, CKA_VALUE, 16, buf, &len, &rv);
	ck_assert_uint_eq(rv, CKR_OBJECT_HANDLE_INVALID);
}
END_TEST

START_TEST(test_session_objects_are_capped_per_application)
{
	tmpl_t t = {0};
	data_object(&t, "many", 0, 0);
	uint64_t h = 0, first = 0;
	for (int i = 0; i < RHD_MAX_SESSION_OBJECTS_PER_APP; i++) {
		ck_assert_uint_eq(create(&t, &h), CKR_OK);
		if (i == 0)
			first = h;
	}
	ck_assert_uint_eq(create(&t, &h), CKR_DEVICE_MEMORY);
	/* Token objects are the store's to bound, not memory's. */
	tmpl_t kept = {0};
	data_object(&kept, "stored", 1, 0);
	ck_assert_uint_eq(create(&kept, &h), CKR_OK);
	/* Another application is not starved by this one. */
	uint64_t s = open_session(other, 0);
	ck_assert_uint_eq(create_as(other, s, &t, &h), CKR_OK);
	/* Freeing one makes room for one. */
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_DESTROY_OBJECT, rw, first),
		CKR_OK);
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	ck_assert_uint_eq(create(&t, &h), CKR_DEVICE_MEMORY);
}
END_TEST

/* The token-object handles an application caches are bounded: past the
 * bound the cache empties, and every handle it gave out still works. */
START_TEST(test_token_handle_cache_is_bounded)
{
	app->max_token_handles = 4;
	uint64_t handles[12];
	for (int i = 0; i < 12; i++) {
		tmpl_t t = {0};
		char label[16];
		snprintf(label, sizeof(label), "obj-%d", i);
		data_object(&t, label, 1, 0);
		ck_assert_uint_eq(create(&t, &handles[i]), CKR_OK);
		ck_assert_uint_le(app->token_handles, 4);
	}
	for (int i = 0; i < 12; i++) {
		uint8_t buf[32];
		size_t len = 0;
		uint64_t rv;
		ck_assert_int_eq(get_attr(app, rw, handles[i], CKA_LABEL,
					  sizeof(buf), buf, &len, &rv),
				 0);
		ck_assert_uint_eq(rv, CKR_OK);
		char want[16];
		snprintf(want, sizeof(want), "obj-%d", i);
		ck_assert_uint_eq(len, strlen(want));
		ck_assert_mem_eq(buf, want, len);
		ck_assert_uint_le(app->token_handles, 4);
	}
}
END_TEST

START_TEST(test_token_objects_survive_a_restart)
{
	tmpl_t t = {0};
	ec_private(&t, 1);
	ck_assert_uint_eq(create(&t, NULL), CKR_OK);
	tmpl_t d = {0};
	data_object(&d, "kept", 1, 0);
	ck_assert_uint_eq(create(&d, NULL), CKR_OK);
	stop();
	start();
	tmpl_t by_label = {0};
	t_text(&by_label, CKA_LABEL, "Device Priv TLS Key");
	uint64_t found[8];
	ck_assert_uint_eq(find(app, ro, &by_label, found),
			  0); /* private: login first */
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_LOGIN, ro, CKU_USER), CKR_OK);
	ck_assert_uint_eq(find(app, ro, &by_label, found), 1);
	tmpl_t kept = {0};
	t_text(&kept, CKA_LABEL, "kept");
	ck_assert_uint_eq(find(app, ro, &kept, found), 1);
}
END_TEST

/* What rhd_token_init does to slot 0 once it has rewritten the token,
 * between a write's check and the write itself. */
static void token_reinitialised(void)
{
	rhd_token_t *t = rhd_engine_token(&engine, 0);
	pthread_mutex_lock(&t->lock);
	t->generation++;
	pthread_mutex_unlock(&t->lock);
}

/* A token object is sealed under the app's lock and written without it;
 * a token re-initialised in between (another thread closed the app's
 * sessions, the SO ran C_InitToken) gets nothing written. */
START_TEST(test_an_object_sealed_before_a_reinitialisation_is_not_written)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	rhd_object_t obj = {0};
	ck_assert_uint_eq(rhd_object_set(&obj, CKA_CLASS, &cls, sizeof(cls)),
			  CKR_OK);
	ck_assert_uint_eq(rhd_object_set(&obj, CKA_TOKEN, &yes, sizeof(yes)),
			  CKR_OK);
	ck_assert_uint_eq(rhd_object_set(&obj, CKA_LABEL, "raced", 5), CKR_OK);
	rhd_new_object_t fresh;
	uint32_t handle = 1;
	pthread_mutex_lock(&app->lock);
	ck_assert_uint_eq(rhd_objects_create_begin(&engine, app,
						   rhd_session_find(app, rw),
						   &obj, &handle, &fresh),
			  CKR_OK);
	pthread_mutex_unlock(&app->lock);
	ck_assert_ptr_nonnull(fresh.rec);
	ck_assert_uint_eq(handle, 0);
	token_reinitialised();
	uint64_t id = 0;
	ck_assert_uint_eq(rhd_objects_write_new(&engine, &fresh, &id),
			  CKR_SESSION_CLOSED);
	rhd_new_object_cleanup(&fresh);
	rhd_object_cleanup(&obj);
	tmpl_t by_label = {0};
	t_text(&by_label, CKA_LABEL, "raced");
	uint64_t found[8];
	ck_assert_uint_eq(find(app, ro, &by_label, found), 0);
}
END_TEST

/* Two threads of one application destroy one token object: the row goes
 * once, without the app's lock; the second to reach the token's
 * write_lock, and the second to drop the handle, are told the handle is
 * gone. And a token
 * re-initialised between the check and the write is not touched. */
START_TEST(test_a_destroy_outside_the_lock_is_told_of_a_concurrent_one)
{
	tmpl_t t = {0};
	data_object(&t, "doomed", 1, 0);
	uint64_t h;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	rhd_doomed_object_t one, two;
	pthread_mutex_lock(&app->lock);
	rhd_session_t *s = rhd_session_find(app, rw);
	ck_assert_uint_eq(rhd_objects_destroy_begin(&engine, app, s, h, &one),
			  CKR_OK);
	ck_assert_uint_eq(rhd_objects_destroy_begin(&engine, app, s, h, &two),
			  CKR_OK);
	pthread_mutex_unlock(&app->lock);
	ck_assert_uint_ne(one.ref.store_id, 0);
	ck_assert_uint_eq(rhd_objects_delete_stored(&engine, &one), CKR_OK);
	ck_assert_uint_eq(rhd_objects_delete_stored(&engine, &two),
			  CKR_OBJECT_HANDLE_INVALID);
	pthread_mutex_lock(&app->lock);
	ck_assert_uint_eq(rhd_objects_forget(app, &one), CKR_OK);
	ck_assert_uint_eq(rhd_objects_forget(app, &two),
			  CKR_OBJECT_HANDLE_INVALID);
	pthread_mutex_unlock(&app->lock);
	tmpl_t by_label = {0};
	t_text(&by_label, CKA_LABEL, "doomed");
	uint64_t found[8];
	ck_assert_uint_eq(find(app, ro, &by_label, found), 0);

	tmpl_t k = {0};
	data_object(&k, "kept", 1, 0);
	ck_assert_uint_eq(create(&k, &h), CKR_OK);
	pthread_mutex_lock(&app->lock);
	ck_assert_uint_eq(rhd_objects_destroy_begin(&engine, app,
						    rhd_session_find(app, rw),
						    h, &one),
			  CKR_OK);
	pthread_mutex_unlock(&app->lock);
	token_reinitialised();
	ck_assert_uint_eq(rhd_objects_delete_stored(&engine, &one),
			  CKR_SESSION_CLOSED);
	tmpl_t kept = {0};
	t_text(&kept, CKA_LABEL, "kept");
	ck_assert_uint_eq(find(app, ro, &kept, found), 1);
}
END_TEST

/* One change begun under app's lock on the object h names in session. */
static void change_begin(rhd_app_t *a, uint64_t session, uint64_t h,
			 const rhd_object_t *changes,
			 rhd_changed_object_t *change)
{
	pthread_mutex_lock(&a->lock);
	ck_assert_uint_eq(rhd_objects_update_begin(&engine, a,
						   rhd_session_find(a, session),
						   h, changes, change),
			  CKR_OK);
	pthread_mutex_unlock(&a->lock);
	ck_assert_uint_ne(change->ref.store_id, 0);
}

/* Two applications change one token object at once, each with its own
 * lock only: the stored object is read, changed and written under the
 * token's write_lock, so the second write keeps the first's change (read
 * at begin, the second would have written the label back). And a token
 * re-initialised between the check and the write is not touched. */
START_TEST(test_changes_from_two_applications_are_both_kept)
{
	tmpl_t t = {0};
	data_object(&t, "shared", 1, 0);
	uint64_t h, theirs[8];
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	uint64_t other_rw = open_session(other, 1);
	tmpl_t shared = {0};
	t_text(&shared, CKA_LABEL, "shared");
	ck_assert_uint_eq(find(other, other_rw, &shared, theirs), 1);
	rhd_object_t label = {0}, id = {0};
	ck_assert_uint_eq(rhd_object_set(&label, CKA_LABEL, "relabelled", 10),
			  CKR_OK);
	ck_assert_uint_eq(rhd_object_set(&id, CKA_APPLICATION, "app-2", 5),
			  CKR_OK);
	rhd_changed_object_t mine, yours;
	change_begin(app, rw, h, &label, &mine);
	change_begin(other, other_rw, theirs[0], &id, &yours);
	ck_assert_uint_eq(rhd_objects_write_change(&engine, &mine, &label),
			  CKR_OK);
	ck_assert_uint_eq(rhd_objects_write_change(&engine, &yours, &id),
			  CKR_OK);
	tmpl_t both = {0};
	t_text(&both, CKA_LABEL, "relabelled");
	t_text(&both, CKA_APPLICATION, "app-2");
	uint64_t found[8];
	ck_assert_uint_eq(find(app, ro, &both, found), 1);
	ck_assert_uint_eq(found[0], h);

	change_begin(app, rw, h, &id, &mine);
	token_reinitialised();
	ck_assert_uint_eq(rhd_objects_write_change(&engine, &mine, &label),
			  CKR_SESSION_CLOSED);
	rhd_changed_object_cleanup(&mine);
	rhd_changed_object_cleanup(&yours);
	rhd_object_cleanup(&label);
	rhd_object_cleanup(&id);
	ck_assert_uint_eq(find(app, ro, &both, found), 1);
}
END_TEST

/* A private token object is changed by the write with the token key
 * begin copied out, and read back under the login. */
START_TEST(test_a_private_objects_change_is_sealed_with_the_copied_key)
{
	tmpl_t t = {0};
	ec_private(&t, 1);
	uint64_t h;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	rhd_object_t label = {0};
	ck_assert_uint_eq(rhd_object_set(&label, CKA_LABEL, "sealed", 6),
			  CKR_OK);
	rhd_changed_object_t change;
	change_begin(app, rw, h, &label, &change);
	ck_assert_int_eq(change.ref.logged_in, 1);
	ck_assert_uint_eq(rhd_objects_write_change(&engine, &change, &label),
			  CKR_OK);
	rhd_changed_object_cleanup(&change);
	rhd_object_cleanup(&label);
	tmpl_t sealed = {0};
	t_text(&sealed, CKA_LABEL, "sealed");
	uint64_t found[8];
	ck_assert_uint_eq(find(app, ro, &sealed, found), 1);
	ck_assert_uint_eq(simple(app, REMHSM__REQUEST__CALL_LOGOUT, ro, 0),
			  CKR_OK);
	ck_assert_uint_eq(find(app, ro, &sealed, found), 0);
}
END_TEST

/* A find reads the token without the app's lock; a login that ended
 * before its matches are adopted leaves the private ones out. */
START_TEST(test_a_find_adopts_only_what_the_login_still_shows)
{
	tmpl_t key = {0}, data = {0};
	ec_private(&key, 1);
	data_object(&data, "public", 1, 0);
	ck_assert_uint_eq(create(&key, NULL), CKR_OK);
	ck_assert_uint_eq(create(&data, NULL), CKR_OK);
	rhd_object_t all = {0};
	rhd_stored_ref_t ref;
	pthread_mutex_lock(&app->lock);
	rhd_objects_find_begin(app, rhd_session_find(app, ro), &ref);
	pthread_mutex_unlock(&app->lock);
	rhd_matches_t stored;
	ck_assert_uint_eq(rhd_objects_find_stored(&engine, &ref, &all, &stored),
			  CKR_OK);
	rhd_stored_ref_cleanup(&ref);
	ck_assert_uint_eq(stored.count, 2);
	ck_assert_uint_eq(simple(app, REMHSM__REQUEST__CALL_LOGOUT, ro, 0),
			  CKR_OK);
	pthread_mutex_lock(&app->lock);
	rhd_session_t *s = rhd_session_find(app, ro);
	ck_assert_uint_eq(
		rhd_objects_find_adopt(&engine, app, s, &all, &stored), CKR_OK);
	ck_assert_uint_eq(s->found_count, 1);
	ck_assert_uint_eq(s->found[0].cls, CKO_DATA);
	pthread_mutex_unlock(&app->lock);
	rhd_matches_cleanup(&stored);
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_FIND_OBJECTS_FINAL, ro, 0),
		CKR_OK);
}
END_TEST

static int key_cached(uint64_t h)
{
	pthread_mutex_lock(&app->lock);
	int cached = rhd_op_key_cached(&engine, app, h);
	pthread_mutex_unlock(&app->lock);
	return cached;
}

/* A key is read and built for its init without the app's lock, and built
 * again once it has changed; one the app may not see is not built. */
START_TEST(test_a_key_is_primed_for_its_init_and_again_after_a_change)
{
	tmpl_t t = {0};
	ec_private(&t, 1);
	uint64_t h;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	ck_assert_int_eq(key_cached(h), 0);
	rhd_op_prime_key(&engine, app, rw, h);
	ck_assert_int_eq(key_cached(h), 1);
	tmpl_t label = {0};
	t_text(&label, CKA_LABEL, "changed");
	ck_assert_uint_eq(set_attrs(rw, h, &label), CKR_OK);
	ck_assert_int_eq(key_cached(h), 0);
	rhd_op_prime_key(&engine, app, rw, h);
	ck_assert_int_eq(key_cached(h), 1);
	tmpl_t other_key = {0};
	ec_private(&other_key, 1);
	uint64_t hidden;
	ck_assert_uint_eq(create(&other_key, &hidden), CKR_OK);
	ck_assert_uint_eq(simple(app, REMHSM__REQUEST__CALL_LOGOUT, ro, 0),
			  CKR_OK);
	rhd_op_prime_key(&engine, app, rw, hidden); /* private: not seen */
	ck_assert_int_eq(key_cached(hidden), 0);
	ck_assert_uint_eq(
		simple(app, REMHSM__REQUEST__CALL_LOGIN, ro, CKU_USER), CKR_OK);
	uint64_t data;
	tmpl_t d = {0};
	data_object(&d, "no key", 1, 0);
	ck_assert_uint_eq(create(&d, &data), CKR_OK);
	rhd_op_prime_key(&engine, app, rw, data);
	ck_assert_int_eq(key_cached(data), 0);
	rhd_op_prime_key(&engine, app, rw, 0x7fffffff);
	rhd_op_prime_key(&engine, app, 0x7fffffff, h);
}
END_TEST

/* The record's schema is the store's own, and records written under the
 * wire's AttributeList before it read the same under it: the bytes of
 * either packing are the same, and an old record unpacks whole. */
START_TEST(test_object_records_read_as_the_records_written_before_them)
{
	rhd_object_t obj = {0};
	uint8_t mechs[16] = {0x41, 0x10, 0, 0, 0, 0, 0, 0, 0x40, 0x10};
	ck_assert_uint_eq(rhd_object_set_ulong(&obj, CKA_CLASS, CKO_DATA),
			  CKR_OK);
	ck_assert_uint_eq(rhd_object_set_bool(&obj, CKA_TOKEN, 1), CKR_OK);
	ck_assert_uint_eq(rhd_object_set(&obj, CKA_LABEL, "old", 3), CKR_OK);
	ck_assert_uint_eq(rhd_object_set(&obj, CKA_ALLOWED_MECHANISMS, mechs,
					 sizeof(mechs)),
			  CKR_OK);
	Remhsm__Attribute wire[4], *ptrs[4];
	for (size_t i = 0; i < obj.count; i++) {
		rhd_attr_to_wire(&obj.attrs[i], &wire[i]);
		ptrs[i] = &wire[i];
	}
	Remhsm__AttributeList old = REMHSM__ATTRIBUTE_LIST__INIT;
	old.n_attributes = obj.count;
	old.attributes = ptrs;
	uint8_t before[256];
	size_t before_len = remhsm__attribute_list__pack(&old, before);
	uint8_t *now;
	size_t now_len;
	ck_assert_int_eq(rhd_object_pack(&obj, &now, &now_len), 0);
	ck_assert_uint_eq(now_len, before_len);
	ck_assert_mem_eq(now, before, now_len);
	free(now);
	rhd_object_t back;
	ck_assert_int_eq(rhd_object_unpack(before, before_len, &back), 0);
	ck_assert_uint_eq(back.count, obj.count);
	ck_assert(rhd_object_matches(&back, &obj));
	rhd_object_cleanup(&back);
	rhd_object_cleanup(&obj);
	/* A value of the wrong kind for its type is damage, not a value. */
	Remhsm__Attribute bad = REMHSM__ATTRIBUTE__INIT;
	bad.type = CKA_CLASS;
	bad.value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
	bad.bytes = (ProtobufCBinaryData){3, (uint8_t *)"abc"};
	Remhsm__Attribute *one = &bad;
	old.n_attributes = 1;
	old.attributes = &one;
	before_len = remhsm__attribute_list__pack(&old, before);
	ck_assert_int_eq(rhd_object_unpack(before, before_len, &back), -1);
}
END_TEST

START_TEST(test_set_attribute_value_changes_what_may_change)
{
	tmpl_t t = {0};
	data_object(&t, "old label", 1, 0);
	uint64_t h;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	tmpl_t label = {0};
	t_text(&label, CKA_LABEL, "new label");
	ck_assert_uint_eq(set_attrs(ro, h, &label), CKR_SESSION_READ_ONLY);
	ck_assert_uint_eq(set_attrs(rw, h, &label), CKR_OK);
	uint64_t found[8];
	ck_assert_uint_eq(find(app, ro, &label, found), 1);
	tmpl_t old = {0};
	t_text(&old, CKA_LABEL, "old label");
	ck_assert_uint_eq(find(app, ro, &old, found), 0);
	tmpl_t cls = {0};
	t_ulong(&cls, CKA_CLASS, CKO_CERTIFICATE);
	ck_assert_uint_eq(set_attrs(rw, h, &cls), CKR_ATTRIBUTE_READ_ONLY);
	tmpl_t token = {0};
	t_bool(&token, CKA_TOKEN, 0);
	ck_assert_uint_eq(set_attrs(rw, h, &token), CKR_ATTRIBUTE_READ_ONLY);
	tmpl_t alien = {0};
	t_bytes(&alien, CKA_MODULUS, "\x01", 1);
	ck_assert_uint_eq(set_attrs(rw, h, &alien), CKR_ATTRIBUTE_TYPE_INVALID);
	ck_assert_uint_eq(set_attrs(rw, h + 500, &label),
			  CKR_OBJECT_HANDLE_INVALID);
	tmpl_t frozen = {0};
	data_object(&frozen, "frozen", 1, 0);
	t_bool(&frozen, CKA_MODIFIABLE, 0);
	ck_assert_uint_eq(create(&frozen, &h), CKR_OK);
	ck_assert_uint_eq(set_attrs(rw, h, &label), CKR_ACTION_PROHIBITED);
}
END_TEST

START_TEST(test_sticky_attributes_stay_sticky)
{
	tmpl_t t = {0};
	ec_private(&t, 1);
	t_bool(&t, CKA_SENSITIVE, 0);
	t_bool(&t, CKA_EXTRACTABLE, 1);
	uint64_t h, rv;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	uint8_t buf[64];
	size_t len;
	ck_assert_int_eq(
		get_attr(app, ro, h, CKA_VALUE, sizeof(buf), buf, &len, &rv),
		0);
	tmpl_t on = {0};
	t_bool(&on, CKA_SENSITIVE, 1);
	ck_assert_uint_eq(set_attrs(rw, h, &on), CKR_OK);
	ck_assert_int_eq(
		get_attr(app, ro, h, CKA_VALUE, sizeof(buf), buf, &len, &rv),
		REMHSM__ATTRIBUTE_RESULT__STATUS__SENSITIVE);
	tmpl_t off = {0};
	t_bool(&off, CKA_SENSITIVE, 0);
	ck_assert_uint_eq(set_attrs(rw, h, &off), CKR_ATTRIBUTE_READ_ONLY);
	tmpl_t lock = {0};
	t_bool(&lock, CKA_EXTRACTABLE, 0);
	ck_assert_uint_eq(set_attrs(rw, h, &lock), CKR_OK);
	tmpl_t unlock = {0};
	t_bool(&unlock, CKA_EXTRACTABLE, 1);
	ck_assert_uint_eq(set_attrs(rw, h, &unlock), CKR_ATTRIBUTE_READ_ONLY);
	tmpl_t value = {0};
	t_bytes(&value, CKA_VALUE, scalar, sizeof(scalar));
	ck_assert_uint_eq(set_attrs(rw, h, &value), CKR_ATTRIBUTE_READ_ONLY);
	tmpl_t local = {0};
	t_bool(&local, CKA_LOCAL, 1);
	ck_assert_uint_eq(set_attrs(rw, h, &local), CKR_ATTRIBUTE_READ_ONLY);
	/* Nor through a copy. */
	ck_assert_uint_eq(copy_obj(rw, h, &off, NULL), CKR_ATTRIBUTE_READ_ONLY);
	ck_assert_uint_eq(copy_obj(rw, h, &unlock, NULL),
			  CKR_ATTRIBUTE_READ_ONLY);
	tmpl_t go_public = {0};
	t_bool(&go_public, CKA_PRIVATE, 0);
	ck_assert_uint_eq(copy_obj(rw, h, &go_public, NULL),
			  CKR_ATTRIBUTE_READ_ONLY);
}
END_TEST

START_TEST(test_copy_object)
{
	tmpl_t t = {0};
	data_object(&t, "original", 1, 0);
	uint64_t h, c, rv;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	tmpl_t changes = {0};
	t_text(&changes, CKA_LABEL, "copy");
	t_bool(&changes, CKA_TOKEN, 0);
	ck_assert_uint_eq(copy_obj(ro, h, &changes, &c), CKR_OK);
	uint8_t buf[64];
	size_t len;
	ck_assert_int_eq(
		get_attr(app, ro, c, CKA_LABEL, sizeof(buf), buf, &len, &rv),
		0);
	ck_assert_mem_eq(buf, "copy", 4);
	ck_assert_int_eq(
		get_attr(app, ro, c, CKA_VALUE, sizeof(buf), buf, &len, &rv),
		0);
	ck_assert_mem_eq(buf, "payload", 7);
	tmpl_t keep = {0};
	data_object(&keep, "not copyable", 1, 0);
	t_bool(&keep, CKA_COPYABLE, 0);
	ck_assert_uint_eq(create(&keep, &h), CKR_OK);
	tmpl_t none = {0};
	ck_assert_uint_eq(copy_obj(rw, h, &none, NULL), CKR_ACTION_PROHIBITED);
}
END_TEST

START_TEST(test_object_size)
{
	tmpl_t t = {0};
	data_object(&t, "sized", 1, 0);
	uint64_t h;
	ck_assert_uint_eq(create(&t, &h), CKR_OK);
	Remhsm__GetObjectSizeReq b = REMHSM__GET_OBJECT_SIZE_REQ__INIT;
	b.session = ro;
	b.object = h;
	Remhsm__Request r = REMHSM__REQUEST__INIT;
	r.call_case = REMHSM__REQUEST__CALL_GET_OBJECT_SIZE;
	r.get_object_size = &b;
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	ck_assert_uint_eq(run(app, &r, &resp, &arena), CKR_OK);
	ck_assert_uint_gt(resp.get_object_size->size, 7);
	rh_arena_cleanup(&arena);
	b.object = h + 100;
	ck_assert_uint_eq(run(app, &r, &resp, &arena),
			  CKR_OBJECT_HANDLE_INVALID);
	rh_arena_cleanup(&arena);
}
END_TEST

/* A C_CreateObject whose template nests depth levels, decoded as the
 * server decodes frames, then dispatched. */
static uint64_t create_nested(unsigned depth)
{
	size_t len;
	uint8_t *buf = th_nested_request(1, rw, depth, &len);
	int err;
	Remhsm__Request *req = (Remhsm__Request *)rh_decode(
		&remhsm__request__descriptor, buf, len, &err);
	free(buf);
	ck_assert_ptr_nonnull(req);
	Remhsm__Response resp;
	rh_arena_t arena = RH_ARENA_INIT;
	uint64_t rv = run(app, req, &resp, &arena);
	rh_arena_cleanup(&arena);
	remhsm__request__free_unpacked(req, NULL);
	return rv;
}

START_TEST(test_template_nested_deeper_than_pkcs11_allows_is_refused)
{
	/* One level, as CKA_WRAP_TEMPLATE has, is taken: what stops this
	 * request is the class it lacks. */
	ck_assert_uint_eq(create_nested(1), CKR_TEMPLATE_INCOMPLETE);
	ck_assert_uint_eq(create_nested(2), CKR_ATTRIBUTE_VALUE_INVALID);
}
END_TEST

/* A held template as a record keeps it: packed and unpacked to the same
 * attributes; a record whose bytes are not a template is refused, never
 * read past. */
START_TEST(test_held_templates_pack_and_refuse_what_is_not_one)
{
	rhd_object_t t = {0}, back = {0};
	ck_assert_uint_eq(rhd_object_set_ulong(&t, CKA_KEY_TYPE, CKK_AES),
			  CKR_OK);
	ck_assert_uint_eq(rhd_object_set_bool(&t, CKA_EXTRACTABLE, 1), CKR_OK);
	ck_assert_uint_eq(rhd_object_set(&t, CKA_LABEL, "kek", 3), CKR_OK);
	uint8_t *packed = NULL;
	size_t len = 0;
	ck_assert_uint_eq(rhd_template_pack(&t, &packed, &len), CKR_OK);
	ck_assert_uint_eq(len, 3 * 12 + 8 + 1 + 3);
	ck_assert(packed[0] == 0 && packed[1] == 1); /* CKA_KEY_TYPE */
	ck_assert_uint_eq(packed[12], CKK_AES);	     /* little-endian */
	ck_assert_uint_eq(rhd_template_unpack(packed, len, &back), CKR_OK);
	ck_assert_uint_eq(back.count, 3);
	ck_assert(rhd_object_matches(&back, &t) &&
		  rhd_object_matches(&t, &back));
	rhd_object_cleanup(&back);
	for (size_t cut = 1; cut < len; cut++)
		if (cut != 20 && cut != 33) /* where an entry ends */
			ck_assert_uint_eq(
				rhd_template_unpack(packed, cut, &back),
				CKR_ATTRIBUTE_VALUE_INVALID);
	packed[8] = 4; /* a ULONG of 4 bytes */
	ck_assert_uint_eq(rhd_template_unpack(packed, len, &back),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	packed[8] = 8;
	packed[20] = CKA_LABEL; /* the last entry's type, twice */
	packed[21] = 0;
	ck_assert_uint_eq(rhd_template_unpack(packed, len, &back),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	packed[20] = (uint8_t)CKA_WRAP_TEMPLATE;
	packed[21] = (uint8_t)(CKA_WRAP_TEMPLATE >> 8);
	packed[23] = (uint8_t)(CKA_WRAP_TEMPLATE >> 24);
	ck_assert_uint_eq(rhd_template_unpack(packed, len, &back),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	free(packed);
	rhd_object_cleanup(&t);
	/* More entries than a held template may have. */
	for (uint64_t i = 0; i <= RHD_MAX_TEMPLATE_ENTRIES; i++)
		ck_assert_uint_eq(rhd_object_set(&t, 0x80000000u + i, "", 0),
				  CKR_OK);
	ck_assert_uint_eq(rhd_template_pack(&t, &packed, &len),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	rhd_object_cleanup(&t);
}
END_TEST

/* n attributes of distinct types (repeat > 0: every repeat-th is a copy
 * of the one before it), as a wire template. */
static Remhsm__Attribute **wide_template(size_t n, size_t repeat,
					 Remhsm__Attribute **store_out)
{
	Remhsm__Attribute *a = calloc(n, sizeof(*a));
	Remhsm__Attribute **p = calloc(n, sizeof(*p));
	ck_assert(a && p);
	for (size_t i = 0; i < n; i++) {
		remhsm__attribute__init(&a[i]);
		int again = repeat && i % repeat == repeat - 1;
		a[i].type = CKA_VENDOR_DEFINED + (again ? i - 1 : i);
		a[i].value_case = REMHSM__ATTRIBUTE__VALUE_BYTES;
		a[i].bytes = (ProtobufCBinaryData){1, (uint8_t *)"v"};
		p[i] = &a[i];
	}
	*store_out = a;
	return p;
}

START_TEST(test_wide_templates_parse_in_n_log_n_and_are_capped)
{
	Remhsm__Attribute *a;
	Remhsm__Attribute **p = wide_template(RH_MAX_TEMPLATE, 4, &a);
	rhd_object_t obj;
	ck_assert_uint_eq(rhd_object_from_wire(p, RH_MAX_TEMPLATE, &obj),
			  CKR_OK);
	ck_assert_uint_eq(obj.count, RH_MAX_TEMPLATE - RH_MAX_TEMPLATE / 4);
	ck_assert_uint_eq(obj.attrs[0].type, CKA_VENDOR_DEFINED);
	ck_assert_uint_eq(obj.attrs[3].type, CKA_VENDOR_DEFINED + 4);
	rhd_object_cleanup(&obj);
	a[7].bytes.data = (uint8_t *)"w"; /* a repeat that differs */
	ck_assert_uint_eq(rhd_object_from_wire(p, RH_MAX_TEMPLATE, &obj),
			  CKR_TEMPLATE_INCONSISTENT);
	free(p);
	free(a);

	/* The finding: 90,000 distinct types took 10.6 s to parse. */
	p = wide_template(100000, 0, &a);
	ck_assert_uint_eq(create_wire(app, rw, p, 100000, NULL),
			  CKR_DEVICE_MEMORY);
	free(p);
	free(a);
}
END_TEST

static uint64_t find_init_rv(tmpl_t *t)
{
	uint64_t rv = find_init(app, rw, t);
	simple(app, REMHSM__REQUEST__CALL_FIND_OBJECTS_FINAL, rw, 0);
	return rv;
}

/* Edits the store's database under the running engine, as an attacker
 * with write access to it would (in SQLite's words, or PostgreSQL's). */
static void alter(const char *sqlite, const char *pg)
{
	ck_assert_int_eq(th_store_sql(&store, sqlite, pg), 0);
}

/* The finding: unreadable records were skipped by finds, which answered
 * CKR_OK without the object, and an index pointing at the wrong record
 * went unnoticed. Both are damage: CKR_DEVICE_ERROR and a log line. */
START_TEST(test_damaged_records_and_index_fail_the_find)
{
	tmpl_t a = {0}, b = {0};
	data_object(&a, "alpha", 1, 0);
	data_object(&b, "beta", 1, 0);
	ck_assert_uint_eq(create(&a, NULL), CKR_OK);
	ck_assert_uint_eq(create(&b, NULL), CKR_OK);
	tmpl_t by_beta = {0};
	t_text(&by_beta, CKA_LABEL, "beta");
	uint64_t found[8];
	ck_assert_uint_eq(find(app, rw, &by_beta, found), 1);
	/* alpha's index now says "beta" */
	alter("UPDATE objects SET ix_label = (SELECT ix_label FROM objects "
	      "WHERE id = 2) WHERE id = 1",
	      "UPDATE remhsm_objects SET ix_label = (SELECT ix_label FROM "
	      "remhsm_objects WHERE id = 2) WHERE id = 1");
	ck_assert_uint_eq(find_init_rv(&by_beta), CKR_DEVICE_ERROR);
	/* beta's record altered: finds that meet it fail too */
	alter("UPDATE objects SET ix_label = NULL WHERE id = 1;"
	      "UPDATE objects SET record = substr(record, 1, 20) || "
	      "x'00ff00ff' || substr(record, 25) WHERE id = 2",
	      "UPDATE remhsm_objects SET ix_label = NULL WHERE id = 1;"
	      "UPDATE remhsm_objects SET record = overlay(record PLACING "
	      "'\\x00ff00ff'::bytea FROM 21 FOR 4) WHERE id = 2");
	tmpl_t all = {0};
	ck_assert_uint_eq(find_init_rv(&all), CKR_DEVICE_ERROR);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("objects");
	TCase *tc = tcase_create("objects");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_data_object_round_trip);
	tcase_add_test(tc, test_certificate_fields_come_from_the_der);
	tcase_add_test(tc, test_bad_certificates_are_refused);
	tcase_add_test(tc, test_ec_private_key_import_defaults_and_secrecy);
	tcase_add_test(tc, test_ec_key_material_is_validated);
	tcase_add_test(tc, test_public_key_from_a_private_keys_point);
	tcase_add_test(tc, test_ec_point_has_one_encoding);
	tcase_add_test(tc, test_mechanism_info_tells_what_generation_accepts);
	tcase_add_test(tc, test_template_errors_have_their_codes);
	tcase_add_test(tc, test_sessions_and_login_gate_creation);
	tcase_add_test(tc, test_private_objects_are_invisible_without_login);
	tcase_add_test(tc, test_handles_of_another_application_are_invalid);
	tcase_add_test(tc, test_find_matches_exactly_and_keeps_a_cursor);
	tcase_add_test(tc, test_destroy_rules);
	tcase_add_test(tc, test_session_objects_die_with_their_session);
	tcase_add_test(tc, test_token_objects_survive_a_restart);
	tcase_add_test(
		tc,
		test_an_object_sealed_before_a_reinitialisation_is_not_written);
	tcase_add_test(
		tc,
		test_a_destroy_outside_the_lock_is_told_of_a_concurrent_one);
	tcase_add_test(tc, test_changes_from_two_applications_are_both_kept);
	tcase_add_test(
		tc,
		test_a_private_objects_change_is_sealed_with_the_copied_key);
	tcase_add_test(tc, test_a_find_adopts_only_what_the_login_still_shows);
	tcase_add_test(
		tc, test_a_key_is_primed_for_its_init_and_again_after_a_change);
	tcase_add_test(
		tc,
		test_object_records_read_as_the_records_written_before_them);
	tcase_add_test(tc, test_set_attribute_value_changes_what_may_change);
	tcase_add_test(tc, test_sticky_attributes_stay_sticky);
	tcase_add_test(tc, test_copy_object);
	tcase_add_test(tc, test_object_size);
	tcase_add_test(tc, test_session_objects_are_capped_per_application);
	tcase_add_test(tc, test_token_handle_cache_is_bounded);
	tcase_add_test(
		tc, test_template_nested_deeper_than_pkcs11_allows_is_refused);
	tcase_add_test(tc, test_held_templates_pack_and_refuse_what_is_not_one);
	tcase_add_test(tc, test_wide_templates_parse_in_n_log_n_and_are_capped);
	tcase_add_test(tc, test_damaged_records_and_index_fail_the_find);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
