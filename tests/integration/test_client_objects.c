/*
 * Objects through the real module and daemon: native templates, the rules
 * of C_GetAttributeValue as an application sees them, FreeRTOS's find,
 * and objects surviving a daemon restart and C_Finalize/C_Initialize.
 */
#include <check.h>
#include <dlfcn.h>
#include <string.h>

#include "harness.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_SESSION_HANDLE session;

static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
			       0xce, 0x3d, 0x03, 0x01, 0x07};
static CK_BYTE scalar[32] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
			     0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01,
			     0x12, 0x23, 0x34, 0x45, 0x56, 0x67, 0x78, 0x89,
			     0x9a, 0xab, 0xbc, 0xcd, 0xde, 0xef, 0xf0, 0x02};

static void open_and_login(void)
{
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
				   NULL, &session),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
		CKR_OK);
}

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	open_and_login();
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

/* FreeRTOS's EC private key template. */
static CK_RV import_ec_key(const char *label, CK_OBJECT_HANDLE *h)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE type = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{CKA_CLASS, &cls, sizeof(cls)},
		{CKA_KEY_TYPE, &type, sizeof(type)},
		{CKA_LABEL, (void *)label, strlen(label)},
		{CKA_TOKEN, &yes, sizeof(yes)},
		{CKA_SIGN, &yes, sizeof(yes)},
		{CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
		{CKA_VALUE, scalar, sizeof(scalar)},
	};
	return p11->C_CreateObject(session, t, 7, h);
}

/* FreeRTOS's find: label without NUL, class, at most one. */
static CK_RV find_one(const char *label, CK_OBJECT_CLASS cls,
		      CK_OBJECT_HANDLE *h, CK_ULONG *count)
{
	CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)label, strlen(label)},
			    {CKA_CLASS, &cls, sizeof(cls)}};
	CK_RV rv = p11->C_FindObjectsInit(session, t, 2);
	if (rv == CKR_OK)
		rv = p11->C_FindObjects(session, h, 1, count);
	CK_RV final = p11->C_FindObjectsFinal(session);
	return rv != CKR_OK ? rv : final;
}

START_TEST(test_native_template_shapes_are_checked)
{
	CK_OBJECT_HANDLE h;
	unsigned char three[3] = {0};
	CK_ATTRIBUTE short_ulong[] = {{CKA_CLASS, three, sizeof(three)}};
	ck_assert_uint_eq(p11->C_CreateObject(session, short_ulong, 1, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_ATTRIBUTE huge[] = {{CKA_CLASS, &cls, sizeof(cls)},
			       {CKA_VALUE, "x", CK_UNAVAILABLE_INFORMATION}};
	ck_assert_uint_eq(p11->C_CreateObject(session, huge, 2, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_ATTRIBUTE null_value[] = {{CKA_CLASS, &cls, sizeof(cls)},
				     {CKA_VALUE, NULL, 5}};
	ck_assert_uint_eq(p11->C_CreateObject(session, null_value, 2, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	CK_BBOOL wide[2] = {1, 1};
	CK_ATTRIBUTE long_bool[] = {{CKA_CLASS, &cls, sizeof(cls)},
				    {CKA_TOKEN, wide, sizeof(wide)}};
	ck_assert_uint_eq(p11->C_CreateObject(session, long_bool, 2, &h),
			  CKR_ATTRIBUTE_VALUE_INVALID);
	ck_assert_uint_eq(p11->C_CreateObject(session, NULL, 2, &h),
			  CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(p11->C_CreateObject(session, short_ulong, 1, NULL),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_get_attribute_value_rules)
{
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(import_ec_key("Device Priv TLS Key", &key), CKR_OK);
	/* FreeRTOS: key type, then EC params and point with a length query. */
	CK_KEY_TYPE type = 0;
	CK_ATTRIBUTE kt = {CKA_KEY_TYPE, &type, sizeof(type)};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, &kt, 1),
			  CKR_OK);
	ck_assert_uint_eq(type, CKK_EC);
	CK_ATTRIBUTE q[] = {{CKA_EC_PARAMS, NULL, 0}, {CKA_EC_POINT, NULL, 0}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, q, 2), CKR_OK);
	ck_assert_uint_eq(q[0].ulValueLen, sizeof(p256));
	ck_assert_uint_eq(q[1].ulValueLen, 67);
	CK_BYTE params[16], point[67];
	q[0].pValue = params;
	q[1].pValue = point;
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, q, 2), CKR_OK);
	ck_assert_mem_eq(params, p256, sizeof(p256));
	/* Sensitive, unknown and short answers, each attribute on its own. */
	CK_BYTE value[32];
	CK_OBJECT_CLASS cls = 0;
	CK_BYTE small[4];
	CK_ATTRIBUTE mixed[] = {{CKA_VALUE, value, sizeof(value)},
				{CKA_MODULUS, NULL, 0},
				{CKA_CLASS, &cls, sizeof(cls)},
				{CKA_LABEL, small, sizeof(small)}};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, mixed, 4),
			  CKR_ATTRIBUTE_SENSITIVE);
	ck_assert_uint_eq(mixed[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
	ck_assert_uint_eq(mixed[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
	ck_assert_uint_eq(mixed[2].ulValueLen, sizeof(CK_OBJECT_CLASS));
	ck_assert_uint_eq(cls, CKO_PRIVATE_KEY);
	ck_assert_uint_eq(mixed[3].ulValueLen, CK_UNAVAILABLE_INFORMATION);
	CK_ATTRIBUTE just_short = {CKA_LABEL, small, sizeof(small)};
	ck_assert_uint_eq(
		p11->C_GetAttributeValue(session, key, &just_short, 1),
		CKR_BUFFER_TOO_SMALL);
	CK_ATTRIBUTE cls_len = {CKA_CLASS, NULL, 0};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, &cls_len, 1),
			  CKR_OK);
	ck_assert_uint_eq(cls_len.ulValueLen, sizeof(CK_ULONG));
	ck_assert_uint_eq(
		p11->C_GetAttributeValue(session, key + 1000, &cls_len, 1),
		CKR_OBJECT_HANDLE_INVALID);
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, key, NULL, 1),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_freertos_find_not_found_is_ok_with_none)
{
	CK_OBJECT_HANDLE h = 99;
	CK_ULONG count = 99;
	ck_assert_uint_eq(find_one("Device Cert", CKO_CERTIFICATE, &h, &count),
			  CKR_OK);
	ck_assert_uint_eq(count, 0);
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(import_ec_key("Device Priv TLS Key", &key), CKR_OK);
	ck_assert_uint_eq(
		find_one("Device Priv TLS Key", CKO_PRIVATE_KEY, &h, &count),
		CKR_OK);
	ck_assert_uint_eq(count, 1);
	ck_assert_uint_eq(h, key);
	ck_assert_uint_eq(p11->C_FindObjects(session, &h, 1, &count),
			  CKR_OPERATION_NOT_INITIALIZED);
	ck_assert_uint_eq(p11->C_FindObjects(session, NULL, 1, &count),
			  CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(test_find_with_more_results_than_one_answer_carries)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_LABEL, "many", 4}};
	CK_OBJECT_HANDLE h, found[300];
	for (int i = 0; i < 150; i++)
		ck_assert_uint_eq(p11->C_CreateObject(session, t, 2, &h),
				  CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsInit(session, t + 1, 1), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsInit(session, t + 1, 1),
			  CKR_OPERATION_ACTIVE);
	CK_ULONG total = 0, n;
	do {
		ck_assert_uint_eq(
			p11->C_FindObjects(session, found + total, 40, &n),
			CKR_OK);
		total += n;
	} while (n > 0 && total < 300);
	ck_assert_uint_eq(total, 150);
	for (CK_ULONG i = 1; i < total; i++)
		ck_assert_uint_ne(found[i], found[i - 1]);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(session), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(session),
			  CKR_OPERATION_NOT_INITIALIZED);
	/* A new find after the final starts afresh. */
	ck_assert_uint_eq(p11->C_FindObjectsInit(session, t + 1, 1), CKR_OK);
	ck_assert_uint_eq(p11->C_FindObjects(session, found, 300, &n), CKR_OK);
	ck_assert_uint_eq(n, 150);
	ck_assert_uint_eq(p11->C_FindObjectsFinal(session), CKR_OK);
}
END_TEST

/* The finding: one CKA_VALUE of 1 MB asked for 1,000 times made a 1 GB
 * answer on the event loop. An answer that would not fit the frame is
 * refused before it is built, and the session lives on. */
START_TEST(test_answer_larger_than_the_frame_is_refused_before_building)
{
	static CK_BYTE big[400 * 1024];
	memset(big, 0x5a, sizeof(big));
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_TOKEN, &no, sizeof(no)},
			    {CKA_VALUE, big, sizeof(big)}};
	CK_OBJECT_HANDLE h;
	ck_assert_uint_eq(p11->C_CreateObject(session, t, 3, &h), CKR_OK);
	static CK_BYTE out[3][sizeof(big)];
	CK_ATTRIBUTE three[3];
	for (int i = 0; i < 3; i++)
		three[i] = (CK_ATTRIBUTE){CKA_VALUE, out[i], sizeof(out[i])};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, h, three, 3),
			  CKR_DEVICE_MEMORY);
	/* Lengths alone fit, and so do two values. */
	for (int i = 0; i < 3; i++)
		three[i].pValue = NULL;
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, h, three, 3),
			  CKR_OK);
	ck_assert_uint_eq(three[2].ulValueLen, sizeof(big));
	three[0].pValue = out[0];
	three[1].pValue = out[1];
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, h, three, 2),
			  CKR_OK);
	ck_assert_mem_eq(out[1], big, sizeof(big));
	ck_assert(th_log_contains(&d, "answer would exceed the frame"));
	static CK_ATTRIBUTE many[1025];
	for (size_t i = 0; i < 1025; i++)
		many[i] = (CK_ATTRIBUTE){CKA_CLASS, NULL, 0};
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, h, many, 1024),
			  CKR_OK);
	ck_assert_uint_eq(p11->C_GetAttributeValue(session, h, many, 1025),
			  CKR_DEVICE_MEMORY);
}
END_TEST

START_TEST(test_objects_survive_restart_and_reinitialize)
{
	CK_OBJECT_HANDLE key, h;
	CK_ULONG count;
	ck_assert_uint_eq(import_ec_key("Device Priv TLS Key", &key), CKR_OK);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	th_daemon_restart(&d, NULL);
	/* The session and its login came back; the key has its handle. */
	ck_assert_uint_eq(
		find_one("Device Priv TLS Key", CKO_PRIVATE_KEY, &h, &count),
		CKR_OK);
	ck_assert_uint_eq(count, 1);
	ck_assert_uint_eq(h, key);
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	open_and_login();
	ck_assert_uint_eq(
		find_one("Device Priv TLS Key", CKO_PRIVATE_KEY, &h, &count),
		CKR_OK);
	ck_assert_uint_eq(count, 1);
	ck_assert_uint_eq(p11->C_DestroyObject(session, h), CKR_OK);
	ck_assert_uint_eq(
		find_one("Device Priv TLS Key", CKO_PRIVATE_KEY, &h, &count),
		CKR_OK);
	ck_assert_uint_eq(count, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client-objects");
	TCase *tc = tcase_create("client-objects");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_native_template_shapes_are_checked);
	tcase_add_test(tc, test_get_attribute_value_rules);
	tcase_add_test(tc, test_freertos_find_not_found_is_ok_with_none);
	tcase_add_test(tc, test_find_with_more_results_than_one_answer_carries);
	tcase_add_test(tc, test_objects_survive_restart_and_reinitialize);
	tcase_add_test(
		tc,
		test_answer_larger_than_the_frame_is_refused_before_building);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
