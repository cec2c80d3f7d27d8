/*
 * The PKCS#11 v3.0 interface of the real module: C_GetInterfaceList and
 * C_GetInterface (3.0 and 2.40, by the two-call convention and by name,
 * version and flags), C_GetInfo telling each list's version, the 3.0
 * list's functions in their places, C_LoginUser, C_SessionCancel ending
 * the operations it names, C_WaitForSlotEvent, and the message functions
 * not served.
 */
#include <check.h>
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

#include "harness.h"
#include "pkcs11_3_0.h"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;
static CK_FUNCTION_LIST_3_0 *p3;

typedef CK_RV (*get_interface_fn)(CK_UTF8CHAR_PTR, CK_VERSION_PTR,
				  CK_INTERFACE_PTR_PTR, CK_FLAGS);
typedef CK_RV (*get_interface_list_fn)(CK_INTERFACE_PTR, CK_ULONG_PTR);

static void setup(void)
{
	p11 = th_start_provisioned(&d, NULL, &module);
	get_interface_fn get =
		(get_interface_fn)dlsym(module, "C_GetInterface");
	ck_assert_ptr_nonnull(get);
	CK_INTERFACE *i = NULL;
	ck_assert_uint_eq(get(NULL, NULL, &i, 0), CKR_OK);
	p3 = i->pFunctionList;
}

static void teardown(void)
{
	th_stop_provisioned(p11, module, &d);
}

START_TEST(test_interfaces_are_listed_newest_first)
{
	get_interface_list_fn list =
		(get_interface_list_fn)dlsym(module, "C_GetInterfaceList");
	ck_assert_ptr_nonnull(list);
	CK_ULONG n = 0;
	ck_assert_uint_eq(list(NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 2);
	CK_INTERFACE got[2];
	CK_ULONG one = 1;
	ck_assert_uint_eq(list(got, &one), CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(one, 2);
	ck_assert_uint_eq(list(got, &n), CKR_OK);
	ck_assert_uint_eq(list(got, NULL), CKR_ARGUMENTS_BAD);
	static const CK_VERSION want[] = {{3, 0}, {2, 40}};
	for (int k = 0; k < 2; k++) {
		ck_assert_str_eq((const char *)got[k].pInterfaceName,
				 "PKCS 11");
		const CK_VERSION *v = got[k].pFunctionList;
		ck_assert_uint_eq(v->major, want[k].major);
		ck_assert_uint_eq(v->minor, want[k].minor);
		ck_assert_uint_eq(got[k].flags, 0);
	}
	CK_FUNCTION_LIST *v2 = NULL;
	ck_assert_uint_eq(p11->C_GetFunctionList(&v2), CKR_OK);
	ck_assert_ptr_eq(got[1].pFunctionList, v2);
}
END_TEST

START_TEST(test_an_interface_is_chosen_by_name_version_and_flags)
{
	get_interface_fn get = p3->C_GetInterface;
	CK_INTERFACE *i = NULL;
	CK_VERSION v240 = {2, 40}, v31 = {3, 1};
	ck_assert_uint_eq(get((CK_UTF8CHAR_PTR) "PKCS 11", &v240, &i, 0),
			  CKR_OK);
	ck_assert_uint_eq(((CK_VERSION *)i->pFunctionList)->minor, 40);
	ck_assert_uint_eq(get((CK_UTF8CHAR_PTR) "PKCS 11", &v31, &i, 0),
			  CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(get((CK_UTF8CHAR_PTR) "Vendor X", NULL, &i, 0),
			  CKR_ARGUMENTS_BAD);
	/* The module is not fork-safe: asked for that, there is none. */
	ck_assert_uint_eq(get(NULL, NULL, &i, CKF_INTERFACE_FORK_SAFE),
			  CKR_ARGUMENTS_BAD);
	ck_assert_uint_eq(get(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
}
END_TEST

/* Each list's C_GetInfo tells its own version; the 2.40 functions sit in
 * the 3.0 list where the 2.40 list has them. */
START_TEST(test_each_list_tells_its_version)
{
	CK_INFO info;
	ck_assert_uint_eq(p3->v2.C_GetInfo(&info), CKR_OK);
	ck_assert_uint_eq(info.cryptokiVersion.major, 3);
	ck_assert_uint_eq(info.cryptokiVersion.minor, 0);
	ck_assert_uint_eq(p11->C_GetInfo(&info), CKR_OK);
	ck_assert_uint_eq(info.cryptokiVersion.major, 2);
	ck_assert_uint_eq(info.cryptokiVersion.minor, 40);
	/* 68 and 24 entries, none NULL. */
	void (**fn)(void) = (void (**)(void))(
		(char *)p3 + offsetof(CK_FUNCTION_LIST, C_Initialize));
	size_t n = (sizeof(*p3) - offsetof(CK_FUNCTION_LIST, C_Initialize)) /
		   sizeof(*fn);
	ck_assert_uint_eq(n, 92);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(fn[i] != NULL, "entry %zu is NULL", i);
	ck_assert_ptr_eq(p3->v2.C_Sign, p11->C_Sign);
	ck_assert_ptr_eq(p3->v2.C_WaitForSlotEvent, p11->C_WaitForSlotEvent);
	ck_assert_ptr_eq(p3->C_MessageVerifyFinal,
			 dlsym(module, "C_MessageVerifyFinal"));
}
END_TEST

START_TEST(test_login_user_and_the_calls_not_served)
{
	CK_SESSION_HANDLE s;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	ck_assert_uint_eq(p3->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR) "9999",
					  4, (CK_UTF8CHAR_PTR) "dev", 3),
			  CKR_PIN_INCORRECT);
	ck_assert_uint_eq(p3->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR) "0000",
					  4, (CK_UTF8CHAR_PTR) "dev", 3),
			  CKR_OK);
	CK_SESSION_INFO si;
	ck_assert_uint_eq(p11->C_GetSessionInfo(s, &si), CKR_OK);
	ck_assert_uint_eq(si.state, CKS_RO_USER_FUNCTIONS);
	CK_SLOT_ID slot;
	ck_assert_uint_eq(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL),
			  CKR_NO_EVENT);
	ck_assert_uint_eq(p11->C_WaitForSlotEvent(0, &slot, NULL),
			  CKR_FUNCTION_NOT_SUPPORTED);
	ck_assert_uint_eq(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL),
			  CKR_ARGUMENTS_BAD);
	CK_MECHANISM gcm = {CKM_AES_GCM, NULL, 0};
	ck_assert_uint_eq(p3->C_MessageEncryptInit(s, &gcm, 1),
			  CKR_FUNCTION_NOT_SUPPORTED);
	ck_assert_uint_eq(p3->C_SignMessageBegin(s, NULL, 0),
			  CKR_FUNCTION_NOT_SUPPORTED);
	ck_assert_uint_eq(p3->C_MessageDecryptFinal(s),
			  CKR_FUNCTION_NOT_SUPPORTED);
}
END_TEST

/* C_SessionCancel ends the operations its flags name, held in the module
 * or active in the daemon, and leaves the others. */
START_TEST(test_session_cancel_ends_the_operations_it_names)
{
	CK_SESSION_HANDLE s = th_user_session(p11, 0, "0000");
	CK_OBJECT_HANDLE pub, priv, aes;
	th_generate_p256(p11, s, CK_FALSE, &pub, &priv);
	CK_BYTE value[16] = {1};
	ck_assert_uint_eq(
		th_import_secret(p11, s, CKK_AES, value, 16, NULL, 0, &aes),
		CKR_OK);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
	CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
	ck_assert_uint_eq(p11->C_SignInit(s, &ecdsa, priv), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestInit(s, &sha), CKR_OK);
	ck_assert_uint_eq(p11->C_DigestUpdate(s, value, 16), CKR_OK);
	ck_assert_uint_eq(p11->C_EncryptInit(s, &ecb, aes), CKR_OK);
	ck_assert_uint_eq(p3->C_SessionCancel(s, CKF_SIGN | CKF_ENCRYPT),
			  CKR_OK);
	CK_BYTE out[64];
	CK_ULONG len = sizeof(out);
	ck_assert_uint_eq(p11->C_Sign(s, value, 16, out, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_Encrypt(s, value, 16, out, &len),
			  CKR_OPERATION_NOT_INITIALIZED);
	len = sizeof(out);
	ck_assert_uint_eq(p11->C_DigestFinal(s, out, &len), CKR_OK);
	ck_assert_uint_eq(len, 32);
	/* Nothing active: nothing to end, and no complaint. */
	ck_assert_uint_eq(
		p3->C_SessionCancel(s, CKF_DIGEST | CKF_VERIFY | CKF_DECRYPT),
		CKR_OK);
	ck_assert_uint_eq(p3->C_SessionCancel(0x7fff, CKF_SIGN),
			  CKR_SESSION_HANDLE_INVALID);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_v3");
	TCase *tc = tcase_create("interfaces");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_interfaces_are_listed_newest_first);
	tcase_add_test(tc,
		       test_an_interface_is_chosen_by_name_version_and_flags);
	tcase_add_test(tc, test_each_list_tells_its_version);
	tcase_add_test(tc, test_login_user_and_the_calls_not_served);
	tcase_add_test(tc, test_session_cancel_ends_the_operations_it_names);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
