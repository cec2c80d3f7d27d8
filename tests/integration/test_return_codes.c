/*
 * Every function answers only the codes its section of the PKCS#11 v2.40
 * specification lists (client/entry_points.def): a fake daemon answers
 * each call with every code the table names and some it does not, breaks
 * the link, stands behind a port nobody listens on, and takes frames of
 * 1 KiB only; each answer the application gets is checked against the
 * table.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "entry_points.h"
#include "fake_daemon.h"
#include "harness.h"
#include "rh_calls.h"

typedef struct listed {
	const char *name;
	const CK_RV *codes;
	size_t count;
} listed_t;

#define RHC_ENTRY_POINT(name, params, args, ...)                               \
	{#name, (const CK_RV[]){__VA_ARGS__},                                  \
	 sizeof((const CK_RV[]){__VA_ARGS__}) / sizeof(CK_RV)},
static const listed_t table[] = {
#include "entry_points.def"
};
#undef RHC_ENTRY_POINT

#define N_TABLE (sizeof(table) / sizeof(*table))
#define MAX_CODES 256
#define BIG 4096

static th_daemon_t d; /* only its PKI: no remhsmd runs here */
static th_fake_t fake;
static void *module;
static CK_FUNCTION_LIST *p11;

/* What the fake daemon answers the call under test, while armed. */
static struct {
	atomic_int armed;
	atomic_int target; /* a Remhsm__Request__CallCase */
	_Atomic uint64_t code;
	atomic_int break_link;
	atomic_int hits;
	atomic_ulong next_session;
} sweep;

static const listed_t *listed(const char *name)
{
	for (size_t i = 0; i < N_TABLE; i++)
		if (!strcmp(table[i].name, name))
			return &table[i];
	ck_abort_msg("%s is not in the table", name);
	return NULL;
}

static int allowed(const char *name, CK_RV rv)
{
	const listed_t *l = listed(name);
	for (size_t i = 0; i < l->count; i++)
		if (l->codes[i] == rv)
			return 1;
	return 0;
}

/* --- the fake daemon */

/* Any other call succeeds, with the least of an answer the module needs
 * to go on: a session handle, an open find cursor, a full restore. */
static void answer_plainly(const Remhsm__Request *req, Remhsm__Response *resp,
			   Remhsm__OpenSessionResp *open,
			   Remhsm__FindObjectsInitResp *find,
			   Remhsm__RestoreResp *restore)
{
	switch (req->call_case) {
	case REMHSM__REQUEST__CALL_OPEN_SESSION:
		open->session = atomic_fetch_add(&sweep.next_session, 1);
		resp->result_case = REMHSM__RESPONSE__RESULT_OPEN_SESSION;
		resp->open_session = open;
		break;
	case REMHSM__REQUEST__CALL_FIND_OBJECTS_INIT:
		resp->result_case = REMHSM__RESPONSE__RESULT_FIND_OBJECTS_INIT;
		resp->find_objects_init = find;
		break;
	case REMHSM__REQUEST__CALL_RESTORE:
		resp->result_case = REMHSM__RESPONSE__RESULT_RESTORE;
		resp->restore = restore;
		break;
	default:
		break;
	}
}

static int answer_sweep(SSL *ssl, const Remhsm__Request *req)
{
	Remhsm__Response resp = REMHSM__RESPONSE__INIT;
	Remhsm__OpenSessionResp open = REMHSM__OPEN_SESSION_RESP__INIT;
	Remhsm__FindObjectsInitResp find = REMHSM__FIND_OBJECTS_INIT_RESP__INIT;
	Remhsm__RestoreResp restore = REMHSM__RESTORE_RESP__INIT;
	resp.id = req->id;
	if (atomic_load(&sweep.armed) &&
	    (int)req->call_case == atomic_load(&sweep.target)) {
		atomic_fetch_add(&sweep.hits, 1);
		if (atomic_load(&sweep.break_link))
			return 0;
		resp.rv = atomic_load(&sweep.code);
	} else {
		answer_plainly(req, &resp, &open, &find, &restore);
	}
	th_fake_send(ssl, &resp);
	return 1;
}

/* --- the calls: what each needs first, then the call itself */

typedef struct probe {
	const char *name;
	int target;	/* the request the call sends */
	int held_first; /* the module may answer it without the daemon */
	void (*before)(CK_SESSION_HANDLE s);
	CK_RV (*call)(CK_SESSION_HANDLE s);
} probe_t;

static CK_BYTE in[BIG], out[BIG];
static CK_ULONG out_len;
static CK_MECHANISM sha256 = {CKM_SHA256, NULL, 0};
static CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
static CK_UTF8CHAR label[32];
static CK_ULONG in_len = 32; /* BIG for the frame test */
#define KEY 5

static void digest_init(CK_SESSION_HANDLE s)
{
	p11->C_DigestInit(s, &sha256);
}

static void digest_update(CK_SESSION_HANDLE s)
{
	digest_init(s);
	p11->C_DigestUpdate(s, in, 3);
}

static void sign_init(CK_SESSION_HANDLE s)
{
	p11->C_SignInit(s, &ecdsa, KEY);
}

static void sign_update(CK_SESSION_HANDLE s)
{
	sign_init(s);
	p11->C_SignUpdate(s, in, 3);
}

static void verify_init(CK_SESSION_HANDLE s)
{
	p11->C_VerifyInit(s, &ecdsa, KEY);
}

static void verify_update(CK_SESSION_HANDLE s)
{
	verify_init(s);
	p11->C_VerifyUpdate(s, in, 3);
}

static void find_init(CK_SESSION_HANDLE s)
{
	p11->C_FindObjectsInit(s, NULL, 0);
}

static CK_RV get_info(CK_SESSION_HANDLE s)
{
	CK_INFO info;
	(void)s;
	return p11->C_GetInfo(&info);
}

static CK_RV get_slot_list(CK_SESSION_HANDLE s)
{
	(void)s;
	out_len = 8;
	return p11->C_GetSlotList(CK_FALSE, (CK_SLOT_ID *)out, &out_len);
}

static CK_RV get_slot_info(CK_SESSION_HANDLE s)
{
	CK_SLOT_INFO info;
	(void)s;
	return p11->C_GetSlotInfo(0, &info);
}

static CK_RV get_token_info(CK_SESSION_HANDLE s)
{
	CK_TOKEN_INFO info;
	(void)s;
	return p11->C_GetTokenInfo(0, &info);
}

static CK_RV get_mechanism_list(CK_SESSION_HANDLE s)
{
	(void)s;
	out_len = 8;
	return p11->C_GetMechanismList(0, (CK_MECHANISM_TYPE *)out, &out_len);
}

static CK_RV get_mechanism_info(CK_SESSION_HANDLE s)
{
	CK_MECHANISM_INFO info;
	(void)s;
	return p11->C_GetMechanismInfo(0, CKM_ECDSA, &info);
}

static CK_RV init_token(CK_SESSION_HANDLE s)
{
	(void)s;
	return p11->C_InitToken(0, in, in_len, label);
}

static CK_RV init_pin(CK_SESSION_HANDLE s)
{
	return p11->C_InitPIN(s, in, in_len);
}

static CK_RV set_pin(CK_SESSION_HANDLE s)
{
	return p11->C_SetPIN(s, in, in_len, in, in_len);
}

static CK_RV open_session(CK_SESSION_HANDLE s)
{
	CK_SESSION_HANDLE another;
	(void)s;
	return p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &another);
}

static CK_RV close_session(CK_SESSION_HANDLE s)
{
	return p11->C_CloseSession(s);
}

static CK_RV close_all_sessions(CK_SESSION_HANDLE s)
{
	(void)s;
	return p11->C_CloseAllSessions(0);
}

static CK_RV get_session_info(CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO info;
	return p11->C_GetSessionInfo(s, &info);
}

static CK_RV login(CK_SESSION_HANDLE s)
{
	return p11->C_Login(s, CKU_USER, in, in_len);
}

static CK_RV logout(CK_SESSION_HANDLE s)
{
	return p11->C_Logout(s);
}

static CK_RV create_object(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS data = CKO_DATA;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &data, sizeof(data)},
			    {CKA_VALUE, in, in_len}};
	CK_OBJECT_HANDLE h;
	return p11->C_CreateObject(s, t, 2, &h);
}

static CK_RV copy_object(CK_SESSION_HANDLE s)
{
	CK_ATTRIBUTE t = {CKA_LABEL, in, in_len};
	CK_OBJECT_HANDLE h;
	return p11->C_CopyObject(s, KEY, &t, 1, &h);
}

static CK_RV destroy_object(CK_SESSION_HANDLE s)
{
	return p11->C_DestroyObject(s, KEY);
}

static CK_RV get_object_size(CK_SESSION_HANDLE s)
{
	CK_ULONG size;
	return p11->C_GetObjectSize(s, KEY, &size);
}

static CK_RV get_attribute_value(CK_SESSION_HANDLE s)
{
	CK_ATTRIBUTE t = {CKA_LABEL, out, sizeof(out)};
	return p11->C_GetAttributeValue(s, KEY, &t, 1);
}

static CK_RV set_attribute_value(CK_SESSION_HANDLE s)
{
	CK_ATTRIBUTE t = {CKA_LABEL, in, in_len};
	return p11->C_SetAttributeValue(s, KEY, &t, 1);
}

static CK_RV find_objects_init(CK_SESSION_HANDLE s)
{
	CK_ATTRIBUTE t = {CKA_LABEL, in, in_len};
	return p11->C_FindObjectsInit(s, &t, 1);
}

static CK_RV find_objects(CK_SESSION_HANDLE s)
{
	CK_ULONG n;
	return p11->C_FindObjects(s, (CK_OBJECT_HANDLE *)out, 4, &n);
}

static CK_RV find_objects_final(CK_SESSION_HANDLE s)
{
	return p11->C_FindObjectsFinal(s);
}

static CK_RV digest_init_call(CK_SESSION_HANDLE s)
{
	return p11->C_DigestInit(s, &sha256);
}

static CK_RV digest(CK_SESSION_HANDLE s)
{
	out_len = sizeof(out);
	return p11->C_Digest(s, in, in_len, out, &out_len);
}

static CK_RV digest_update_call(CK_SESSION_HANDLE s)
{
	return p11->C_DigestUpdate(s, in, in_len);
}

static CK_RV digest_final(CK_SESSION_HANDLE s)
{
	out_len = sizeof(out);
	return p11->C_DigestFinal(s, out, &out_len);
}

static CK_RV sign_init_call(CK_SESSION_HANDLE s)
{
	return p11->C_SignInit(s, &ecdsa, KEY);
}

static CK_RV sign(CK_SESSION_HANDLE s)
{
	out_len = sizeof(out);
	return p11->C_Sign(s, in, in_len, out, &out_len);
}

static CK_RV sign_update_call(CK_SESSION_HANDLE s)
{
	return p11->C_SignUpdate(s, in, in_len);
}

static CK_RV sign_final(CK_SESSION_HANDLE s)
{
	out_len = sizeof(out);
	return p11->C_SignFinal(s, out, &out_len);
}

static CK_RV verify_init_call(CK_SESSION_HANDLE s)
{
	return p11->C_VerifyInit(s, &ecdsa, KEY);
}

static CK_RV verify(CK_SESSION_HANDLE s)
{
	return p11->C_Verify(s, in, in_len, out, 64);
}

static CK_RV verify_update_call(CK_SESSION_HANDLE s)
{
	return p11->C_VerifyUpdate(s, in, in_len);
}

static CK_RV verify_final(CK_SESSION_HANDLE s)
{
	return p11->C_VerifyFinal(s, out, 64);
}

static CK_RV generate_key_pair(CK_SESSION_HANDLE s)
{
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pub = {CKA_EC_PARAMS, (void *)p256, sizeof(p256)};
	CK_ATTRIBUTE priv = {CKA_LABEL, in, in_len};
	CK_OBJECT_HANDLE a, b;
	return p11->C_GenerateKeyPair(s, &gen, &pub, 1, &priv, 1, &a, &b);
}

static CK_RV seed_random(CK_SESSION_HANDLE s)
{
	return p11->C_SeedRandom(s, in, in_len);
}

static CK_RV generate_random(CK_SESSION_HANDLE s)
{
	return p11->C_GenerateRandom(s, out, in_len);
}

#define CALL(name, up, fn)                                                     \
	{                                                                      \
		name, REMHSM__REQUEST__CALL_##up, 0, NULL, fn                  \
	}
#define AFTER(name, up, before, fn)                                            \
	{                                                                      \
		name, REMHSM__REQUEST__CALL_##up, 0, before, fn                \
	}
/* Inits the module may hold back: the daemon hears of them with the
 * next call, which the probes after them cover. */
#define HELD(name, up, fn)                                                     \
	{                                                                      \
		name, REMHSM__REQUEST__CALL_##up, 1, NULL, fn                  \
	}

static const probe_t probes[] = {
	CALL("C_GetInfo", GET_INFO, get_info),
	CALL("C_GetSlotList", GET_SLOT_LIST, get_slot_list),
	CALL("C_GetSlotInfo", GET_SLOT_INFO, get_slot_info),
	CALL("C_GetTokenInfo", GET_TOKEN_INFO, get_token_info),
	CALL("C_GetMechanismList", GET_MECHANISM_LIST, get_mechanism_list),
	CALL("C_GetMechanismInfo", GET_MECHANISM_INFO, get_mechanism_info),
	CALL("C_InitToken", INIT_TOKEN, init_token),
	CALL("C_InitPIN", INIT_PIN, init_pin),
	CALL("C_SetPIN", SET_PIN, set_pin),
	CALL("C_OpenSession", OPEN_SESSION, open_session),
	CALL("C_CloseSession", CLOSE_SESSION, close_session),
	CALL("C_CloseAllSessions", CLOSE_ALL_SESSIONS, close_all_sessions),
	CALL("C_GetSessionInfo", GET_SESSION_INFO, get_session_info),
	CALL("C_Login", LOGIN, login),
	CALL("C_Logout", LOGOUT, logout),
	CALL("C_CreateObject", CREATE_OBJECT, create_object),
	CALL("C_CopyObject", COPY_OBJECT, copy_object),
	CALL("C_DestroyObject", DESTROY_OBJECT, destroy_object),
	CALL("C_GetObjectSize", GET_OBJECT_SIZE, get_object_size),
	CALL("C_GetAttributeValue", GET_ATTRIBUTE_VALUE, get_attribute_value),
	CALL("C_SetAttributeValue", SET_ATTRIBUTE_VALUE, set_attribute_value),
	CALL("C_FindObjectsInit", FIND_OBJECTS_INIT, find_objects_init),
	AFTER("C_FindObjects", FIND_OBJECTS, find_init, find_objects),
	AFTER("C_FindObjectsFinal", FIND_OBJECTS_FINAL, find_init,
	      find_objects_final),
	HELD("C_DigestInit", DIGEST_INIT, digest_init_call),
	AFTER("C_Digest", DIGEST, digest_init, digest),
	AFTER("C_DigestUpdate", DIGEST_UPDATE, digest_init, digest_update_call),
	AFTER("C_DigestFinal", DIGEST_FINAL, digest_update, digest_final),
	CALL("C_SignInit", SIGN_INIT, sign_init_call),
	AFTER("C_Sign", SIGN, sign_init, sign),
	AFTER("C_SignUpdate", SIGN_UPDATE, sign_init, sign_update_call),
	AFTER("C_SignFinal", SIGN_FINAL, sign_update, sign_final),
	CALL("C_VerifyInit", VERIFY_INIT, verify_init_call),
	AFTER("C_Verify", VERIFY, verify_init, verify),
	AFTER("C_VerifyUpdate", VERIFY_UPDATE, verify_init, verify_update_call),
	AFTER("C_VerifyFinal", VERIFY_FINAL, verify_update, verify_final),
	CALL("C_GenerateKeyPair", GENERATE_KEY_PAIR, generate_key_pair),
	CALL("C_SeedRandom", SEED_RANDOM, seed_random),
	CALL("C_GenerateRandom", GENERATE_RANDOM, generate_random),
};

#define N_PROBES (sizeof(probes) / sizeof(*probes))

/* --- the sweep */

/* Every code the table names, and some no function may return. */
static size_t codes_to_send(uint64_t *codes)
{
	static const uint64_t unlisted[] = {0x4, 0x1ff, CKR_VENDOR_DEFINED,
					    CKR_VENDOR_DEFINED | 0x30,
					    (uint64_t)1 << 32 | CKR_OK};
	size_t n = 0;
	for (size_t i = 0; i < sizeof(unlisted) / sizeof(*unlisted); i++)
		codes[n++] = unlisted[i];
	for (size_t t = 0; t < N_TABLE; t++)
		for (size_t c = 0; c < table[t].count; c++) {
			size_t k = 0;
			while (k < n && codes[k] != table[t].codes[c])
				k++;
			if (k == n) {
				ck_assert_uint_lt(n, MAX_CODES);
				codes[n++] = table[t].codes[c];
			}
		}
	return n;
}

static CK_SESSION_HANDLE plain_session(void)
{
	CK_SESSION_HANDLE s = 0;
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	return s;
}

/* One call, the daemon armed to answer it with code (or to break the
 * link): the application's answer must be one the table lists. */
static void probe_once(const probe_t *p, uint64_t code, int break_link)
{
	CK_SESSION_HANDLE s = plain_session();
	if (p->before)
		p->before(s);
	atomic_store(&sweep.target, p->target);
	atomic_store(&sweep.code, code);
	atomic_store(&sweep.break_link, break_link);
	atomic_store(&sweep.armed, 1);
	CK_RV rv = p->call(s);
	atomic_store(&sweep.armed, 0);
	ck_assert_msg(allowed(p->name, rv),
		      "%s answered 0x%lx when the daemon %s 0x%llx", p->name,
		      rv, break_link ? "broke the link instead of" : "answered",
		      (unsigned long long)code);
	p11->C_CloseSession(s);
}

static void start(uint32_t max_frame)
{
	th_pki_make(&d);
	th_client_env(&d);
	setenv("REMHSM_RECONNECT_MS", "100", 1);
	memset(label, ' ', sizeof(label));
	memset(in, '1', sizeof(in));
	atomic_store(&sweep.next_session, 1);
	fake.hello_max_frame = max_frame;
	th_fake_start(&fake, &d, answer_sweep);
	p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
}

static void teardown(void)
{
	if (p11)
		p11->C_Finalize(NULL);
	if (module)
		dlclose(module);
	p11 = NULL;
	module = NULL;
	th_fake_stop(&fake);
	unsetenv("REMHSM_RECONNECT_MS");
	in_len = 32;
	th_daemon_cleanup(&d);
}

START_TEST(test_every_daemon_code_for_every_call)
{
	start(RH_FRAME_DEFAULT_MAX);
	uint64_t codes[MAX_CODES];
	size_t n = codes_to_send(codes);
	for (size_t i = 0; i < N_PROBES; i++) {
		atomic_store(&sweep.hits, 0);
		for (size_t c = 0; c < n; c++)
			probe_once(&probes[i], codes[c], 0);
		probe_once(&probes[i], 0, 1);
		if (!probes[i].held_first)
			ck_assert_msg(atomic_load(&sweep.hits) >= (int)n + 1,
				      "%s reached the daemon %d times of %zu",
				      probes[i].name, atomic_load(&sweep.hits),
				      n + 1);
	}
}
END_TEST

/* Calls larger than the daemon's 1 KiB frames, each answered with a code
 * its function lists. */
START_TEST(test_calls_larger_than_the_frame)
{
	start(1024);
	in_len = BIG;
	for (size_t i = 0; i < N_PROBES; i++)
		probe_once(&probes[i], CKR_OK, 0);
}
END_TEST

/* No daemon: every call, with whatever sessions the module still holds,
 * answers a code of its own list. */
START_TEST(test_no_daemon_behind_the_port)
{
	start(RH_FRAME_DEFAULT_MAX);
	CK_SESSION_HANDLE s = plain_session();
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	char server[64];
	snprintf(server, sizeof(server), "127.0.0.1:%d", th_free_port());
	setenv("REMHSM_SERVER", server, 1);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	for (size_t i = 0; i < N_PROBES; i++) {
		if (probes[i].before)
			probes[i].before(s);
		CK_RV rv = probes[i].call(s);
		ck_assert_msg(allowed(probes[i].name, rv),
			      "%s answered 0x%lx with no daemon",
			      probes[i].name, rv);
	}
}
END_TEST

/* The functions the module answers itself. */
START_TEST(test_calls_answered_by_the_module)
{
	start(RH_FRAME_DEFAULT_MAX);
	CK_FUNCTION_LIST *list;
	ck_assert_uint_eq(p11->C_GetFunctionList(&list), CKR_OK);
	ck_assert(allowed("C_GetFunctionList", p11->C_GetFunctionList(NULL)));
	ck_assert(allowed("C_Initialize", p11->C_Initialize(NULL)));
	CK_SLOT_ID slot;
	ck_assert(
		allowed("C_WaitForSlotEvent",
			p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL)));
	CK_SESSION_HANDLE s = plain_session();
	ck_assert(allowed("C_GetFunctionStatus", p11->C_GetFunctionStatus(s)));
	ck_assert(allowed("C_CancelFunction", p11->C_CancelFunction(s)));
	ck_assert(allowed("C_DigestKey", p11->C_DigestKey(s, KEY)));
	ck_assert(allowed("C_EncryptInit", p11->C_EncryptInit(s, &ecdsa, KEY)));
	ck_assert(allowed("C_GenerateKey",
			  p11->C_GenerateKey(s, &ecdsa, NULL, 0, NULL)));
	ck_assert(allowed("C_Finalize", p11->C_Finalize(in)));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("return_codes");
	TCase *tc = tcase_create("return-codes");
	tcase_set_timeout(tc, 240);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_every_daemon_code_for_every_call);
	tcase_add_test(tc, test_calls_larger_than_the_frame);
	tcase_add_test(tc, test_no_daemon_behind_the_port);
	tcase_add_test(tc, test_calls_answered_by_the_module);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
