/*
 * The exported PKCS#11 entry points. Each stub checks its arguments, builds
 * the request, makes one round trip and unpacks the answer: prepare, call,
 * done.
 */
#pragma GCC visibility push(default)
#include <p11-kit/pkcs11.h>
#pragma GCC visibility pop

#include "entry_points.h"

#include <limits.h>
#include <string.h>

#include "attr.h"
#include "rh_decode.h"
#include "known.h"
#include "rh_arena.h"
#include "rpc.h"

#define WIRE_UNAVAILABLE UINT64_MAX
#define RANDOM_CHUNK 65536u
#define FIND_PREFETCH 64

/* Random bytes and seeds travel in pieces the daemon accepts. */
static CK_ULONG random_chunk_len(void)
{
	size_t frame = rhc_max_payload();
	return (CK_ULONG)(frame < RANDOM_CHUNK ? frame : RANDOM_CHUNK);
}

/* Starts a request for call UP, with its body `body` of message Camel. */
#define PREPARE(UP, low, Camel)                                                \
	Remhsm__##Camel##Req body = REMHSM__##UP##_REQ__INIT;                  \
	Remhsm__Request req = REMHSM__REQUEST__INIT;                           \
	Remhsm__Response *resp = NULL;                                         \
	req.call_case = REMHSM__REQUEST__CALL_##UP;                            \
	req.low = &body

/* Answers carry attribute values and signatures the application has its
 * own copy of by now: wiped, then freed. */
static CK_RV finish(Remhsm__Response *resp, CK_RV rv)
{
	if (resp)
		rh_free_wiped(&resp->base);
	return rv;
}

/* A call whose answer is its CK_RV alone. The call comes first, in a
 * statement of its own: in one expression with the answer's pointer, the
 * order would be the compiler's (clang read the pointer first and leaked
 * every answer). */
static CK_RV rv_only(Remhsm__Request *req, Remhsm__Response **resp)
{
	CK_RV rv = rhc_call(req, resp);
	return finish(*resp, rv);
}

/* A daemon value to a native CK_ULONG; CK_UNAVAILABLE_INFORMATION keeps its
 * meaning on 32-bit hosts, anything else too wide is a protocol error. */
static int to_ulong(uint64_t wire, CK_ULONG *out)
{
	if (wire == WIRE_UNAVAILABLE) {
		*out = CK_UNAVAILABLE_INFORMATION;
		return 0;
	}
	if (wire > ULONG_MAX)
		return -1;
	*out = (CK_ULONG)wire;
	return 0;
}

/* An object the daemon named: its handle must fit the host's CK_ULONG (a
 * 32-bit application's handles are 32 bits wide). -1 when it does not. */
static int take_object(const Remhsm__ObjectInfo *info, CK_OBJECT_HANDLE *out)
{
	if (!info || info->handle > ULONG_MAX)
		return -1;
	*out = (CK_OBJECT_HANDLE)info->handle;
	rhc_known_object(info);
	return 0;
}

static void pad_copy(CK_UTF8CHAR *dst, size_t width, ProtobufCBinaryData src)
{
	size_t n = src.len < width ? src.len : width;
	memset(dst, ' ', width);
	if (n)
		memcpy(dst, src.data, n);
}

static void version_copy(CK_VERSION *dst, const Remhsm__Version *src)
{
	dst->major = src ? (CK_BYTE)src->major : 0;
	dst->minor = src ? (CK_BYTE)src->minor : 0;
}

/* Fills a caller's CK_ULONG array by the two-call convention. */
static CK_RV fill_list(const uint64_t *items, size_t n, CK_ULONG_PTR out,
		       CK_ULONG_PTR count)
{
	if (!out) {
		*count = (CK_ULONG)n;
		return CKR_OK;
	}
	if (*count < n) {
		*count = (CK_ULONG)n;
		return CKR_BUFFER_TOO_SMALL;
	}
	for (size_t i = 0; i < n; i++)
		if (to_ulong(items[i], &out[i]) < 0)
			return CKR_DEVICE_ERROR;
	*count = (CK_ULONG)n;
	return CKR_OK;
}

/* --- general purpose ------------------------------------------------------ */

static int count_lock_callbacks(const CK_C_INITIALIZE_ARGS *a)
{
	return !!a->CreateMutex + !!a->DestroyMutex + !!a->LockMutex +
	       !!a->UnlockMutex;
}

static CK_RV initialize(const CK_C_INITIALIZE_ARGS *args)
{
	if (!args)
		return rhc_initialize(NULL);
	if (args->pReserved)
		return CKR_ARGUMENTS_BAD;
	int callbacks = count_lock_callbacks(args);
	if (callbacks != 0 && callbacks != 4)
		return CKR_ARGUMENTS_BAD;
	/* With both offered we pick the OS's locks; with only the
	 * application's we must use them. */
	if (callbacks == 4 && !(args->flags & CKF_OS_LOCKING_OK)) {
		rhc_lock_ops_t ops = {
			.create = (rhc_rv_t(*)(void **))args->CreateMutex,
			.destroy = (rhc_rv_t(*)(void *))args->DestroyMutex,
			.lock = (rhc_rv_t(*)(void *))args->LockMutex,
			.unlock = (rhc_rv_t(*)(void *))args->UnlockMutex,
		};
		return rhc_initialize(&ops);
	}
	return rhc_initialize(NULL);
}

CK_RV rhc_C_Initialize(CK_VOID_PTR pInitArgs)
{
	CK_RV rv = initialize(pInitArgs);
	if (rv == CKR_OK)
		rhc_known_reset();
	return rv;
}

CK_RV rhc_C_Finalize(CK_VOID_PTR pReserved)
{
	if (pReserved)
		return CKR_ARGUMENTS_BAD;
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	/* Held finds own memory; an unloaded module must not leak it. */
	rhc_known_reset();
	return rhc_finalize();
}

CK_RV rhc_C_GetInfo(CK_INFO_PTR pInfo)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_INFO, get_info, GetInfo);
	rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	if (!resp->get_info)
		return finish(resp, CKR_DEVICE_ERROR);
	const Remhsm__GetInfoResp *r = resp->get_info;
	memset(pInfo, 0, sizeof(*pInfo));
	version_copy(&pInfo->cryptokiVersion, r->cryptoki_version);
	pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID),
		 r->manufacturer_id);
	pInfo->flags = 0;
	pad_copy(pInfo->libraryDescription, sizeof(pInfo->libraryDescription),
		 r->library_description);
	version_copy(&pInfo->libraryVersion, r->library_version);
	return finish(resp, CKR_OK);
}

/* --- slots and tokens ------------------------------------------------------
 */

CK_RV rhc_C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
			CK_ULONG_PTR pulCount)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pulCount)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_SLOT_LIST, get_slot_list, GetSlotList);
	body.token_present = tokenPresent != CK_FALSE;
	rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	if (!resp->get_slot_list)
		return finish(resp, CKR_DEVICE_ERROR);
	return finish(resp, fill_list(resp->get_slot_list->slots,
				      resp->get_slot_list->n_slots, pSlotList,
				      pulCount));
}

CK_RV rhc_C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_SLOT_INFO, get_slot_info, GetSlotInfo);
	body.slot = slotID;
	rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	const Remhsm__GetSlotInfoResp *r = resp->get_slot_info;
	if (!r)
		return finish(resp, CKR_DEVICE_ERROR);
	pad_copy(pInfo->slotDescription, sizeof(pInfo->slotDescription),
		 r->slot_description);
	pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID),
		 r->manufacturer_id);
	pInfo->flags = (CK_FLAGS)r->flags;
	version_copy(&pInfo->hardwareVersion, r->hardware_version);
	version_copy(&pInfo->firmwareVersion, r->firmware_version);
	return finish(resp, CKR_OK);
}

static int token_counters(const Remhsm__GetTokenInfoResp *r, CK_TOKEN_INFO *t)
{
	return to_ulong(r->max_session_count, &t->ulMaxSessionCount) |
	       to_ulong(r->session_count, &t->ulSessionCount) |
	       to_ulong(r->max_rw_session_count, &t->ulMaxRwSessionCount) |
	       to_ulong(r->rw_session_count, &t->ulRwSessionCount) |
	       to_ulong(r->max_pin_len, &t->ulMaxPinLen) |
	       to_ulong(r->min_pin_len, &t->ulMinPinLen) |
	       to_ulong(r->total_public_memory, &t->ulTotalPublicMemory) |
	       to_ulong(r->free_public_memory, &t->ulFreePublicMemory) |
	       to_ulong(r->total_private_memory, &t->ulTotalPrivateMemory) |
	       to_ulong(r->free_private_memory, &t->ulFreePrivateMemory);
}

CK_RV rhc_C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_TOKEN_INFO, get_token_info, GetTokenInfo);
	body.slot = slotID;
	rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	const Remhsm__GetTokenInfoResp *r = resp->get_token_info;
	if (!r)
		return finish(resp, CKR_DEVICE_ERROR);
	pad_copy(pInfo->label, sizeof(pInfo->label), r->label);
	pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID),
		 r->manufacturer_id);
	pad_copy(pInfo->model, sizeof(pInfo->model), r->model);
	pad_copy(pInfo->serialNumber, sizeof(pInfo->serialNumber),
		 r->serial_number);
	pInfo->flags = (CK_FLAGS)r->flags;
	if (token_counters(r, pInfo) != 0)
		return finish(resp, CKR_DEVICE_ERROR);
	version_copy(&pInfo->hardwareVersion, r->hardware_version);
	version_copy(&pInfo->firmwareVersion, r->firmware_version);
	pad_copy(pInfo->utcTime, sizeof(pInfo->utcTime), r->utc_time);
	return finish(resp, CKR_OK);
}

CK_RV rhc_C_GetMechanismList(CK_SLOT_ID slotID,
			     CK_MECHANISM_TYPE_PTR pMechanismList,
			     CK_ULONG_PTR pulCount)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pulCount)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_MECHANISM_LIST, get_mechanism_list, GetMechanismList);
	body.slot = slotID;
	rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	const Remhsm__GetMechanismListResp *r = resp->get_mechanism_list;
	if (!r)
		return finish(resp, CKR_DEVICE_ERROR);
	return finish(resp, fill_list(r->mechanisms, r->n_mechanisms,
				      pMechanismList, pulCount));
}

CK_RV rhc_C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
			     CK_MECHANISM_INFO_PTR pInfo)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_MECHANISM_INFO, get_mechanism_info, GetMechanismInfo);
	body.slot = slotID;
	body.type = type;
	rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	const Remhsm__GetMechanismInfoResp *r = resp->get_mechanism_info;
	if (!r || to_ulong(r->min_key_size, &pInfo->ulMinKeySize) < 0 ||
	    to_ulong(r->max_key_size, &pInfo->ulMaxKeySize) < 0)
		return finish(resp, CKR_DEVICE_ERROR);
	pInfo->flags = (CK_FLAGS)r->flags;
	return finish(resp, CKR_OK);
}

/* --- sessions ---------------------------------------------------------------
 */

CK_RV rhc_C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags,
			CK_VOID_PTR pApplication, CK_NOTIFY Notify,
			CK_SESSION_HANDLE_PTR phSession)
{
	(void)pApplication; /* notifications are optional; none are sent */
	(void)Notify;
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!phSession)
		return CKR_ARGUMENTS_BAD;
	PREPARE(OPEN_SESSION, open_session, OpenSession);
	body.slot = slotID;
	body.flags = flags;
	rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	if (!resp->open_session || resp->open_session->session > UINT32_MAX)
		return finish(resp, CKR_DEVICE_ERROR);
	*phSession = (CK_SESSION_HANDLE)resp->open_session->session;
	rhc_known_session(*phSession, slotID, flags);
	return finish(resp, CKR_OK);
}

CK_RV rhc_C_CloseSession(CK_SESSION_HANDLE hSession)
{
	PREPARE(CLOSE_SESSION, close_session, CloseSession);
	body.session = hSession;
	CK_RV rv = rhc_call(&req, &resp);
	if (rv != CKR_CRYPTOKI_NOT_INITIALIZED)
		rhc_forget_session(hSession);
	return finish(resp, rv);
}

CK_RV rhc_C_CloseAllSessions(CK_SLOT_ID slotID)
{
	PREPARE(CLOSE_ALL_SESSIONS, close_all_sessions, CloseAllSessions);
	body.slot = slotID;
	CK_RV rv = rhc_call(&req, &resp);
	if (rv == CKR_OK)
		rhc_forget_slot(slotID);
	return finish(resp, rv);
}

CK_RV rhc_C_GetSessionInfo(CK_SESSION_HANDLE hSession,
			   CK_SESSION_INFO_PTR pInfo)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_SESSION_INFO, get_session_info, GetSessionInfo);
	body.session = hSession;
	rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	const Remhsm__GetSessionInfoResp *r = resp->get_session_info;
	if (!r || to_ulong(r->slot, &pInfo->slotID) < 0 ||
	    to_ulong(r->device_error, &pInfo->ulDeviceError) < 0)
		return finish(resp, CKR_DEVICE_ERROR);
	pInfo->state = (CK_STATE)r->state;
	pInfo->flags = (CK_FLAGS)r->flags;
	return finish(resp, CKR_OK);
}

/* --- random
 * ------------------------------------------------------------------- */

static CK_RV seed_chunk(CK_SESSION_HANDLE session, CK_BYTE_PTR seed, size_t len)
{
	PREPARE(SEED_RANDOM, seed_random, SeedRandom);
	body.session = session;
	body.seed = (ProtobufCBinaryData){len, seed};
	return rv_only(&req, &resp);
}

CK_RV rhc_C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed,
		       CK_ULONG ulSeedLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pSeed && ulSeedLen)
		return CKR_ARGUMENTS_BAD;
	CK_ULONG done = 0;
	do {
		CK_ULONG n = ulSeedLen - done > random_chunk_len()
				     ? random_chunk_len()
				     : ulSeedLen - done;
		rv = seed_chunk(hSession, pSeed ? pSeed + done : NULL, n);
		done += n;
	} while (rv == CKR_OK && done < ulSeedLen);
	return rv;
}

static CK_RV random_chunk(CK_SESSION_HANDLE session, CK_BYTE_PTR out,
			  size_t len)
{
	PREPARE(GENERATE_RANDOM, generate_random, GenerateRandom);
	body.session = session;
	body.length = len;
	CK_RV rv = rhc_call(&req, &resp);
	if (rv != CKR_OK)
		return finish(resp, rv);
	const Remhsm__GenerateRandomResp *r = resp->generate_random;
	if (len && (!r || r->data.len != len))
		return finish(resp, CKR_DEVICE_ERROR);
	if (len)
		memcpy(out, r->data.data, len);
	return finish(resp, CKR_OK);
}

CK_RV rhc_C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData,
			   CK_ULONG ulRandomLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!RandomData && ulRandomLen)
		return CKR_ARGUMENTS_BAD;
	CK_ULONG done = 0;
	do {
		CK_ULONG n = ulRandomLen - done > random_chunk_len()
				     ? random_chunk_len()
				     : ulRandomLen - done;
		rv = random_chunk(hSession,
				  RandomData ? RandomData + done : NULL, n);
		done += n;
	} while (rv == CKR_OK && done < ulRandomLen);
	return rv;
}

/* --- tokens, PINs and login
 * ---------------------------------------------------- */

/* A PIN from the caller: NULL is only for a protected authentication path,
 * which remhsm does not have. */
static ProtobufCBinaryData pin_of(CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	return (ProtobufCBinaryData){len, pin};
}

CK_RV rhc_C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin,
		      CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pPin || !pLabel)
		return CKR_ARGUMENTS_BAD;
	PREPARE(INIT_TOKEN, init_token, InitToken);
	body.slot = slotID;
	body.so_pin = pin_of(pPin, ulPinLen);
	body.label = (ProtobufCBinaryData){32, pLabel};
	return rv_only(&req, &resp);
}

CK_RV rhc_C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin,
		    CK_ULONG ulPinLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pPin)
		return CKR_ARGUMENTS_BAD;
	PREPARE(INIT_PIN, init_pin, InitPin);
	body.session = hSession;
	body.pin = pin_of(pPin, ulPinLen);
	return rv_only(&req, &resp);
}

CK_RV rhc_C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin,
		   CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin,
		   CK_ULONG ulNewLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pOldPin || !pNewPin)
		return CKR_ARGUMENTS_BAD;
	PREPARE(SET_PIN, set_pin, SetPin);
	body.session = hSession;
	body.old_pin = pin_of(pOldPin, ulOldLen);
	body.new_pin = pin_of(pNewPin, ulNewLen);
	return rv_only(&req, &resp);
}

CK_RV rhc_C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
		  CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pPin)
		return CKR_ARGUMENTS_BAD;
	PREPARE(LOGIN, login, Login);
	body.session = hSession;
	body.user_type = userType;
	body.pin = pin_of(pPin, ulPinLen);
	rv = rhc_call(&req, &resp);
	int known = 0;
	CK_SLOT_ID slot = rhc_session_slot(hSession, &known);
	if (rv == CKR_OK && known && resp->login && resp->login->lease.len)
		rhc_known_lease(slot, resp->login->lease.data,
				resp->login->lease.len);
	return finish(resp, rv);
}

CK_RV rhc_C_Logout(CK_SESSION_HANDLE hSession)
{
	PREPARE(LOGOUT, logout, Logout);
	body.session = hSession;
	CK_RV rv = rhc_call(&req, &resp);
	if (rv == CKR_OK) {
		rhc_drop_all_inits();
		rhc_forget_lease(hSession);
	}
	return finish(resp, rv);
}

/* --- objects
 * ---------------------------------------------------------------------- */

/* A template over the daemon's frame: some value is too large to keep. */
static CK_RV too_large_is_invalid(CK_RV rv)
{
	return rv == CKR_DATA_LEN_RANGE ? CKR_ATTRIBUTE_VALUE_INVALID : rv;
}

CK_RV rhc_C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
			 CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!phObject)
		return CKR_ARGUMENTS_BAD;
	PREPARE(CREATE_OBJECT, create_object, CreateObject);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.n_template_ = ulCount;
	rv = rhc_template_to_wire(pTemplate, ulCount, &arena, &body.template_);
	if (rv == CKR_OK)
		rv = too_large_is_invalid(rhc_call(&req, &resp));
	if (rv == CKR_OK &&
	    (!resp->create_object ||
	     take_object(resp->create_object->object, phObject) < 0))
		rv = CKR_DEVICE_ERROR;
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

CK_RV rhc_C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
	PREPARE(DESTROY_OBJECT, destroy_object, DestroyObject);
	body.session = hSession;
	body.object = hObject;
	CK_RV rv = rhc_call(&req, &resp);
	if (rv == CKR_OK)
		rhc_forget_object(hObject);
	return finish(resp, rv);
}

CK_RV rhc_C_GetAttributeValue(CK_SESSION_HANDLE hSession,
			      CK_OBJECT_HANDLE hObject,
			      CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pTemplate && ulCount)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_ATTRIBUTE_VALUE, get_attribute_value, GetAttributeValue);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.object = hObject;
	body.n_template_ = ulCount;
	rv = rhc_queries_to_wire(pTemplate, ulCount, &arena, &body.template_);
	if (rv == CKR_OK)
		rv = rhc_call(&req, &resp);
	const Remhsm__GetAttributeValueResp *r =
		resp ? resp->get_attribute_value : NULL;
	if (rv == CKR_OK && (!r || r->n_results != ulCount))
		rv = CKR_DEVICE_ERROR;
	if (rv == CKR_OK)
		rv = rhc_results_to_native(r->results, pTemplate, ulCount);
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

/* Some FreeRTOS code searches with a label length that counts its NUL. */
static void drop_label_nul(Remhsm__Attribute **attrs, CK_ULONG count)
{
	for (CK_ULONG i = 0; i < count; i++) {
		ProtobufCBinaryData *v = &attrs[i]->bytes;
		if (attrs[i]->type == CKA_LABEL && v->len &&
		    v->data[v->len - 1] == 0)
			v->len--;
	}
}

CK_RV rhc_C_FindObjectsInit(CK_SESSION_HANDLE hSession,
			    CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (rhc_find_active(hSession))
		return CKR_OPERATION_ACTIVE;
	PREPARE(FIND_OBJECTS_INIT, find_objects_init, FindObjectsInit);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.n_template_ = ulCount;
	/* One round trip per find: the first results come with the answer. */
	body.prefetch = FIND_PREFETCH;
	rv = rhc_template_to_wire(pTemplate, ulCount, &arena, &body.template_);
	if (rv == CKR_OK && rhc_compat_freertos())
		drop_label_nul(body.template_, ulCount);
	if (rv == CKR_OK)
		rv = rhc_call(&req, &resp);
	const Remhsm__FindObjectsInitResp *r =
		resp ? resp->find_objects_init : NULL;
	if (rv == CKR_OK && (!r || r->n_objects > FIND_PREFETCH))
		rv = CKR_DEVICE_ERROR;
	CK_OBJECT_HANDLE found[FIND_PREFETCH];
	for (size_t i = 0; rv == CKR_OK && i < r->n_objects; i++)
		if (take_object(r->objects[i], &found[i]) < 0)
			rv = CKR_DEVICE_ERROR;
	if (rv == CKR_OK)
		rv = rhc_find_begin(hSession, found, r->n_objects,
				    !r->complete);
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

/* More results from the daemon's cursor. */
static CK_RV find_more(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR out,
		       CK_ULONG max, CK_ULONG *count)
{
	PREPARE(FIND_OBJECTS, find_objects, FindObjects);
	body.session = hSession;
	body.max_count = max;
	CK_RV rv = rhc_call(&req, &resp);
	const Remhsm__FindObjectsResp *r = resp ? resp->find_objects : NULL;
	if (rv == CKR_OK && (!r || r->n_objects > max))
		rv = CKR_DEVICE_ERROR;
	for (size_t i = 0; rv == CKR_OK && i < r->n_objects; i++)
		if (take_object(r->objects[i], &out[i]) < 0)
			rv = CKR_DEVICE_ERROR;
	if (rv == CKR_OK)
		*count = (CK_ULONG)r->n_objects;
	return finish(resp, rv);
}

CK_RV rhc_C_FindObjects(CK_SESSION_HANDLE hSession,
			CK_OBJECT_HANDLE_PTR phObject,
			CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pulObjectCount || (!phObject && ulMaxObjectCount))
		return CKR_ARGUMENTS_BAD;
	int daemon_open = 0;
	long held = rhc_find_take(hSession, phObject, ulMaxObjectCount,
				  &daemon_open);
	if (held < 0) /* no find the client knows of: the daemon answers */
		return find_more(hSession, phObject, ulMaxObjectCount,
				 pulObjectCount);
	CK_ULONG more = 0;
	if ((CK_ULONG)held < ulMaxObjectCount && daemon_open)
		rv = find_more(hSession, phObject + held,
			       ulMaxObjectCount - (CK_ULONG)held, &more);
	*pulObjectCount = (CK_ULONG)held + more;
	return rv;
}

CK_RV rhc_C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	/* A find the init answered whole ended in the daemon already. */
	if (rhc_find_end(hSession) == 0)
		return CKR_OK;
	PREPARE(FIND_OBJECTS_FINAL, find_objects_final, FindObjectsFinal);
	body.session = hSession;
	return rv_only(&req, &resp);
}

/* --- digest, sign, verify
 * ------------------------------------------------------- */

static int is_pss(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_RSA_PKCS_PSS || mech == CKM_SHA1_RSA_PKCS_PSS ||
	       mech == CKM_SHA256_RSA_PKCS_PSS ||
	       mech == CKM_SHA384_RSA_PKCS_PSS ||
	       mech == CKM_SHA512_RSA_PKCS_PSS;
}

/* CKM_EDDSA's optional parameter may ask for Ed25519ph or Ed25519ctx
 * (RFC 8032), which sign differently: only plain Ed25519 is served, so
 * only a parameter that asks for nothing more is let through. */
static CK_RV eddsa_param_check(const CK_MECHANISM *m)
{
	if (!m->pParameter)
		return CKR_OK;
	const CK_EDDSA_PARAMS *p = m->pParameter;
	return m->ulParameterLen == sizeof(*p) && !p->phFlag &&
			       !p->ulContextDataLen
		       ? CKR_OK
		       : CKR_MECHANISM_PARAM_INVALID;
}

/* A mechanism for the wire. Of the signing mechanisms served only the PSS
 * ones take a parameter, which travels typed so that its CK_ULONGs keep
 * their values across widths (pss is the caller's storage); EdDSA's is
 * checked here. Any other mechanism's pParameter and ulParameterLen are
 * never read: FreeRTOS code leaves them as stack garbage, and the daemon
 * judges the type itself. */
static CK_RV mechanism_to_wire(const CK_MECHANISM *m, Remhsm__Mechanism *w,
			       Remhsm__RsaPkcsPssParams *pss)
{
	if (!m)
		return CKR_ARGUMENTS_BAD;
	remhsm__mechanism__init(w);
	w->type = m->mechanism;
	if (m->mechanism == CKM_EDDSA)
		return eddsa_param_check(m);
	if (!is_pss(m->mechanism))
		return CKR_OK;
	if (!m->pParameter ||
	    m->ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;
	remhsm__rsa_pkcs_pss_params__init(pss);
	pss->hash_alg = p->hashAlg;
	pss->mgf = p->mgf;
	pss->salt_len = p->sLen;
	w->parameter_case = REMHSM__MECHANISM__PARAMETER_PSS;
	w->pss = pss;
	return CKR_OK;
}

/* The answer of a digest or signature, by the two-call convention. */
static CK_RV take_output(CK_RV rv, const Remhsm__Output *o, CK_BYTE_PTR out,
			 CK_ULONG_PTR out_len)
{
	if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL)
		return rv;
	if (!o)
		return CKR_DEVICE_ERROR;
	if (rv == CKR_BUFFER_TOO_SMALL || !out)
		return to_ulong(o->length, out_len) < 0 ? CKR_DEVICE_ERROR : rv;
	if (o->data.len > *out_len)
		return CKR_DEVICE_ERROR;
	if (o->data.len)
		memcpy(out, o->data.data, o->data.len);
	*out_len = (CK_ULONG)o->data.len;
	return CKR_OK;
}

/* Whether the two-call convention keeps the operation: a length query or
 * a short buffer does. */
static int output_pending(CK_RV rv, CK_BYTE_PTR out)
{
	return rv == CKR_BUFFER_TOO_SMALL || (rv == CKR_OK && !out);
}

/* Bad arguments end the operation like any other answer but
 * CKR_BUFFER_TOO_SMALL and a length query: an init held here is dropped,
 * and one the daemon may hold is ended there by req, flagged and carrying
 * nothing else. */
static CK_RV abandon(CK_SESSION_HANDLE session, rhc_op_t op,
		     Remhsm__Request *req, protobuf_c_boolean *flag)
{
	CK_MECHANISM_TYPE type;
	CK_OBJECT_HANDLE key;
	if (rhc_take_init(session, op, &type, &key))
		return CKR_ARGUMENTS_BAD;
	*flag = 1;
	Remhsm__Response *resp = NULL;
	CK_RV rv = rhc_call(req, &resp);
	rhc_note_active(session, op, 0);
	return finish(resp, rv);
}

static Remhsm__OutputBuffer output_buffer(CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	Remhsm__OutputBuffer b = REMHSM__OUTPUT_BUFFER__INIT;
	b.has_buffer = out != NULL;
	b.buffer_len = out ? *out_len : 0;
	return b;
}

static ProtobufCBinaryData bytes_of(CK_BYTE_PTR p, CK_ULONG len)
{
	return (ProtobufCBinaryData){len, p};
}

/*
 * For digest, sign and verify: the init as a round trip (<op>_init_now),
 * a held init sent ahead of a Final (flush_<op>_init), and a held init
 * attached to the request that follows (held_<op>_init). SET_KEY stores
 * the key where the init message has one.
 */
#define KEY_SET(msg, value) ((msg)->key = (value))
#define KEY_NONE(msg, value) ((void)(msg), (void)(value))

#define RHC_INIT_HELPERS(low, UP, Camel, OP, SET_KEY)                          \
	static CK_RV low##_init_now(CK_SESSION_HANDLE hSession,                \
				    CK_MECHANISM_PTR pMechanism,               \
				    CK_OBJECT_HANDLE hKey)                     \
	{                                                                      \
		Remhsm__Mechanism mech;                                        \
		Remhsm__RsaPkcsPssParams pss;                                  \
		CK_RV rv = mechanism_to_wire(pMechanism, &mech, &pss);         \
		if (rv != CKR_OK)                                              \
			return rv;                                             \
		PREPARE(UP##_INIT, low##_init, Camel##Init);                   \
		body.session = hSession;                                       \
		body.mechanism = &mech;                                        \
		SET_KEY(&body, hKey);                                          \
		rv = rhc_call(&req, &resp);                                    \
		rhc_note_active(hSession, OP, rv == CKR_OK);                   \
		return finish(resp, rv);                                       \
	}                                                                      \
                                                                               \
	static CK_RV flush_##low##_init(CK_SESSION_HANDLE hSession)            \
	{                                                                      \
		CK_MECHANISM_TYPE type;                                        \
		CK_OBJECT_HANDLE key;                                          \
		if (!rhc_take_init(hSession, OP, &type, &key))                 \
			return CKR_OK;                                         \
		CK_MECHANISM mech = {type, NULL, 0};                           \
		return low##_init_now(hSession, &mech, key);                   \
	}                                                                      \
                                                                               \
	static Remhsm__##Camel##InitReq *held_##low##_init(                    \
		CK_SESSION_HANDLE hSession, Remhsm__##Camel##InitReq *init,    \
		Remhsm__Mechanism *mech)                                       \
	{                                                                      \
		CK_MECHANISM_TYPE type;                                        \
		CK_OBJECT_HANDLE key;                                          \
		if (!rhc_take_init(hSession, OP, &type, &key))                 \
			return NULL;                                           \
		remhsm__mechanism__init(mech);                                 \
		mech->type = type;                                             \
		remhsm__##low##_init_req__init(init);                          \
		init->session = hSession;                                      \
		init->mechanism = mech;                                        \
		SET_KEY(init, key);                                            \
		return init;                                                   \
	}

/* An update's data, in pieces that fit the daemon's frame. */
typedef CK_RV (*piece_fn)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG);

static CK_RV in_pieces(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
		       CK_ULONG ulPartLen, piece_fn piece)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pPart && ulPartLen)
		return CKR_ARGUMENTS_BAD;
	CK_ULONG done = 0;
	do {
		CK_ULONG n = ulPartLen - done;
		if (n > rhc_max_payload())
			n = (CK_ULONG)rhc_max_payload();
		rv = piece(hSession, pPart ? pPart + done : NULL, n);
		done += n;
	} while (rv == CKR_OK && done < ulPartLen);
	return rv;
}

/* One round trip per operation: an init whose checks the client can make
 * travels with the call that follows; any other is asked now. */
typedef CK_RV (*init_fn)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);

static CK_RV hold_or_init(CK_SESSION_HANDLE hSession, rhc_op_t op,
			  CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey,
			  init_fn init_now)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pMechanism)
		return CKR_ARGUMENTS_BAD;
	if (!pMechanism->ulParameterLen) {
		rv = rhc_hold_init(hSession, op, pMechanism->mechanism, hKey);
		if (rv != CKR_FUNCTION_NOT_SUPPORTED)
			return rv;
	}
	return init_now(hSession, pMechanism, hKey);
}

RHC_INIT_HELPERS(digest, DIGEST, Digest, RHC_OP_DIGEST, KEY_NONE)

CK_RV rhc_C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism)
{
	return hold_or_init(hSession, RHC_OP_DIGEST, pMechanism, 0,
			    digest_init_now);
}

CK_RV rhc_C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,
		   CK_ULONG ulDataLen, CK_BYTE_PTR pDigest,
		   CK_ULONG_PTR pulDigestLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	PREPARE(DIGEST, digest, Digest);
	body.session = hSession;
	if ((!pData && ulDataLen) || !pulDigestLen)
		return abandon(hSession, RHC_OP_DIGEST, &req,
			       &body.arguments_bad);
	Remhsm__OutputBuffer out = output_buffer(pDigest, pulDigestLen);
	Remhsm__DigestInitReq init;
	Remhsm__Mechanism init_mech;
	body.init = held_digest_init(hSession, &init, &init_mech);
	body.data = bytes_of(pData, ulDataLen);
	body.output = &out;
	rv = rhc_call(&req, &resp);
	const Remhsm__Output *o =
		resp && resp->digest ? resp->digest->output : NULL;
	rv = take_output(rv, o, pDigest, pulDigestLen);
	rhc_note_active(hSession, RHC_OP_DIGEST, output_pending(rv, pDigest));
	return finish(resp, rv);
}

static CK_RV digest_update_piece(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
				 CK_ULONG ulPartLen)
{
	CK_RV rv;
	PREPARE(DIGEST_UPDATE, digest_update, DigestUpdate);
	Remhsm__DigestInitReq init;
	Remhsm__Mechanism init_mech;
	body.session = hSession;
	body.init = held_digest_init(hSession, &init, &init_mech);
	body.data = bytes_of(pPart, ulPartLen);
	rv = rhc_call(&req, &resp);
	rhc_note_active(hSession, RHC_OP_DIGEST, rv == CKR_OK);
	return finish(resp, rv);
}

CK_RV rhc_C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
			 CK_ULONG ulPartLen)
{
	return in_pieces(hSession, pPart, ulPartLen, digest_update_piece);
}

CK_RV rhc_C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	PREPARE(DIGEST_KEY, digest_key, DigestKey);
	Remhsm__DigestInitReq init;
	Remhsm__Mechanism init_mech;
	body.session = hSession;
	body.key = hKey;
	body.init = held_digest_init(hSession, &init, &init_mech);
	rv = rhc_call(&req, &resp);
	rhc_note_active(hSession, RHC_OP_DIGEST, rv == CKR_OK);
	return finish(resp, rv);
}

CK_RV rhc_C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest,
			CK_ULONG_PTR pulDigestLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	PREPARE(DIGEST_FINAL, digest_final, DigestFinal);
	body.session = hSession;
	if (!pulDigestLen)
		return abandon(hSession, RHC_OP_DIGEST, &req,
			       &body.arguments_bad);
	rv = flush_digest_init(hSession);
	if (rv != CKR_OK)
		return rv;
	Remhsm__OutputBuffer out = output_buffer(pDigest, pulDigestLen);
	body.output = &out;
	rv = rhc_call(&req, &resp);
	const Remhsm__Output *o =
		resp && resp->digest_final ? resp->digest_final->output : NULL;
	rv = take_output(rv, o, pDigest, pulDigestLen);
	rhc_note_active(hSession, RHC_OP_DIGEST, output_pending(rv, pDigest));
	return finish(resp, rv);
}

RHC_INIT_HELPERS(sign, SIGN, Sign, RHC_OP_SIGN, KEY_SET)

CK_RV rhc_C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		     CK_OBJECT_HANDLE hKey)
{
	return hold_or_init(hSession, RHC_OP_SIGN, pMechanism, hKey,
			    sign_init_now);
}

CK_RV rhc_C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,
		 CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
		 CK_ULONG_PTR pulSignatureLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	PREPARE(SIGN, sign, Sign);
	body.session = hSession;
	if ((!pData && ulDataLen) || !pulSignatureLen)
		return abandon(hSession, RHC_OP_SIGN, &req,
			       &body.arguments_bad);
	Remhsm__OutputBuffer out = output_buffer(pSignature, pulSignatureLen);
	Remhsm__SignInitReq init;
	Remhsm__Mechanism init_mech;
	body.init = held_sign_init(hSession, &init, &init_mech);
	body.data = bytes_of(pData, ulDataLen);
	body.output = &out;
	rv = rhc_call(&req, &resp);
	const Remhsm__Output *o =
		resp && resp->sign ? resp->sign->output : NULL;
	rv = take_output(rv, o, pSignature, pulSignatureLen);
	/* FreeRTOS's length query ends the operation. */
	int freertos_query = rv == CKR_OK && rhc_compat_freertos();
	rhc_note_active(hSession, RHC_OP_SIGN,
			output_pending(rv, pSignature) && !freertos_query);
	return finish(resp, rv);
}

static CK_RV sign_update_piece(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
			       CK_ULONG ulPartLen)
{
	CK_RV rv;
	PREPARE(SIGN_UPDATE, sign_update, SignUpdate);
	Remhsm__SignInitReq init;
	Remhsm__Mechanism init_mech;
	body.session = hSession;
	body.init = held_sign_init(hSession, &init, &init_mech);
	body.data = bytes_of(pPart, ulPartLen);
	rv = rhc_call(&req, &resp);
	rhc_note_active(hSession, RHC_OP_SIGN, rv == CKR_OK);
	return finish(resp, rv);
}

CK_RV rhc_C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
		       CK_ULONG ulPartLen)
{
	return in_pieces(hSession, pPart, ulPartLen, sign_update_piece);
}

CK_RV rhc_C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
		      CK_ULONG_PTR pulSignatureLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	PREPARE(SIGN_FINAL, sign_final, SignFinal);
	body.session = hSession;
	if (!pulSignatureLen)
		return abandon(hSession, RHC_OP_SIGN, &req,
			       &body.arguments_bad);
	rv = flush_sign_init(hSession);
	if (rv != CKR_OK)
		return rv;
	Remhsm__OutputBuffer out = output_buffer(pSignature, pulSignatureLen);
	body.output = &out;
	rv = rhc_call(&req, &resp);
	const Remhsm__Output *o =
		resp && resp->sign_final ? resp->sign_final->output : NULL;
	rv = take_output(rv, o, pSignature, pulSignatureLen);
	rhc_note_active(hSession, RHC_OP_SIGN, output_pending(rv, pSignature));
	return finish(resp, rv);
}

RHC_INIT_HELPERS(verify, VERIFY, Verify, RHC_OP_VERIFY, KEY_SET)

CK_RV rhc_C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		       CK_OBJECT_HANDLE hKey)
{
	return hold_or_init(hSession, RHC_OP_VERIFY, pMechanism, hKey,
			    verify_init_now);
}

CK_RV rhc_C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,
		   CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
		   CK_ULONG ulSignatureLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	PREPARE(VERIFY, verify, Verify);
	body.session = hSession;
	if ((!pData && ulDataLen) || (!pSignature && ulSignatureLen))
		return abandon(hSession, RHC_OP_VERIFY, &req,
			       &body.arguments_bad);
	Remhsm__VerifyInitReq init;
	Remhsm__Mechanism init_mech;
	body.init = held_verify_init(hSession, &init, &init_mech);
	body.data = bytes_of(pData, ulDataLen);
	body.signature = bytes_of(pSignature, ulSignatureLen);
	rv = rhc_call(&req, &resp);
	rhc_note_active(hSession, RHC_OP_VERIFY, 0);
	return finish(resp, rv);
}

static CK_RV verify_update_piece(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
				 CK_ULONG ulPartLen)
{
	CK_RV rv;
	PREPARE(VERIFY_UPDATE, verify_update, VerifyUpdate);
	Remhsm__VerifyInitReq init;
	Remhsm__Mechanism init_mech;
	body.session = hSession;
	body.init = held_verify_init(hSession, &init, &init_mech);
	body.data = bytes_of(pPart, ulPartLen);
	rv = rhc_call(&req, &resp);
	rhc_note_active(hSession, RHC_OP_VERIFY, rv == CKR_OK);
	return finish(resp, rv);
}

CK_RV rhc_C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
			 CK_ULONG ulPartLen)
{
	return in_pieces(hSession, pPart, ulPartLen, verify_update_piece);
}

CK_RV rhc_C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
			CK_ULONG ulSignatureLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	PREPARE(VERIFY_FINAL, verify_final, VerifyFinal);
	body.session = hSession;
	if (!pSignature && ulSignatureLen)
		return abandon(hSession, RHC_OP_VERIFY, &req,
			       &body.arguments_bad);
	rv = flush_verify_init(hSession);
	if (rv != CKR_OK)
		return rv;
	body.signature = bytes_of(pSignature, ulSignatureLen);
	rv = rhc_call(&req, &resp);
	rhc_note_active(hSession, RHC_OP_VERIFY, 0);
	return finish(resp, rv);
}

/* --- encryption and decryption
 * ------------------------------------------------------- */

/* The most IV and AAD bytes a GCM parameter may carry here; the daemon
 * takes fewer still. */
#define MAX_GCM_IV 256

/* The longest OAEP label sent; the daemon takes 1024 bytes. */
#define MAX_OAEP_LABEL 4096

typedef struct cipher_mech {
	Remhsm__Mechanism mech;
	Remhsm__AesCtrParams ctr;
	Remhsm__GcmParams gcm;
	Remhsm__RsaOaepParams oaep;
} cipher_mech_t;

/* OAEP: the label is CKZ_DATA_SPECIFIED's data (or none). */
static CK_RV oaep_to_wire(const CK_MECHANISM *m, cipher_mech_t *w)
{
	if (!m->pParameter ||
	    m->ulParameterLen != sizeof(CK_RSA_PKCS_OAEP_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;
	int labelled = p->source_data_len != 0;
	if ((p->source != CKZ_DATA_SPECIFIED && (p->source || labelled)) ||
	    (labelled && !p->source_data) ||
	    p->source_data_len > MAX_OAEP_LABEL)
		return CKR_MECHANISM_PARAM_INVALID;
	remhsm__rsa_oaep_params__init(&w->oaep);
	w->oaep.hash_alg = p->hash_alg;
	w->oaep.mgf = p->mgf;
	w->oaep.label = (ProtobufCBinaryData){p->source_data_len,
					      (uint8_t *)p->source_data};
	w->mech.parameter_case = REMHSM__MECHANISM__PARAMETER_OAEP;
	w->mech.oaep = &w->oaep;
	return CKR_OK;
}

static CK_RV ctr_to_wire(const CK_MECHANISM *m, cipher_mech_t *w)
{
	if (!m->pParameter || m->ulParameterLen != sizeof(CK_AES_CTR_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_AES_CTR_PARAMS *p = m->pParameter;
	remhsm__aes_ctr_params__init(&w->ctr);
	w->ctr.counter_bits = p->counter_bits;
	w->ctr.counter_block =
		(ProtobufCBinaryData){sizeof(p->cb), (uint8_t *)p->cb};
	w->mech.parameter_case = REMHSM__MECHANISM__PARAMETER_CTR;
	w->mech.ctr = &w->ctr;
	return CKR_OK;
}

static CK_RV gcm_to_wire(const CK_MECHANISM *m, cipher_mech_t *w)
{
	if (!m->pParameter || m->ulParameterLen != sizeof(CK_GCM_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_GCM_PARAMS *p = m->pParameter;
	if ((!p->iv_ptr && p->iv_len) || (!p->aad_ptr && p->aad_len) ||
	    p->iv_len > MAX_GCM_IV || p->aad_len > rhc_max_payload() / 2)
		return CKR_MECHANISM_PARAM_INVALID;
	remhsm__gcm_params__init(&w->gcm);
	w->gcm.iv = (ProtobufCBinaryData){p->iv_len, p->iv_ptr};
	w->gcm.aad = (ProtobufCBinaryData){p->aad_len, p->aad_ptr};
	w->gcm.tag_bits = p->tag_bits;
	w->mech.parameter_case = REMHSM__MECHANISM__PARAMETER_GCM;
	w->mech.gcm = &w->gcm;
	return CKR_OK;
}

/* A cipher mechanism for the wire: CBC's and key wrap's IV as it is,
 * CTR's, GCM's and
 * OAEP's structures field by field. Other types (ECB takes no parameter, an
 * unknown one is the daemon's to refuse) go without one. */
static CK_RV cipher_mechanism_to_wire(const CK_MECHANISM *m, cipher_mech_t *w)
{
	if (!m)
		return CKR_ARGUMENTS_BAD;
	remhsm__mechanism__init(&w->mech);
	w->mech.type = m->mechanism;
	if (m->mechanism == CKM_AES_CTR)
		return ctr_to_wire(m, w);
	if (m->mechanism == CKM_AES_GCM)
		return gcm_to_wire(m, w);
	if (m->mechanism == CKM_RSA_PKCS_OAEP)
		return oaep_to_wire(m, w);
	if (m->mechanism != CKM_AES_CBC && m->mechanism != CKM_AES_CBC_PAD &&
	    m->mechanism != CKM_AES_KEY_WRAP &&
	    m->mechanism != CKM_AES_KEY_WRAP_KWP)
		return CKR_OK;
	if ((!m->pParameter && m->ulParameterLen) || m->ulParameterLen > 64)
		return CKR_MECHANISM_PARAM_INVALID;
	w->mech.raw = (ProtobufCBinaryData){m->ulParameterLen, m->pParameter};
	w->mech.parameter_case = REMHSM__MECHANISM__PARAMETER_RAW;
	return CKR_OK;
}

/* A long update: the length it puts out first (query), so that the
 * caller's buffer is judged before any piece is sent; then the pieces,
 * each with the room left. */
typedef CK_RV (*cipher_piece_fn)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG,
				 CK_BYTE_PTR, CK_ULONG_PTR, CK_ULONG);

static CK_RV cipher_in_pieces(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
			      CK_ULONG ulPartLen, CK_BYTE_PTR pOut,
			      CK_ULONG_PTR pulOutLen, cipher_piece_fn piece)
{
	size_t max = rhc_max_payload();
	if (ulPartLen <= max)
		return piece(hSession, pPart, ulPartLen, pOut, pulOutLen, 0);
	CK_ULONG need = 0;
	CK_RV rv = piece(hSession, NULL, 0, NULL, &need, ulPartLen);
	if (rv != CKR_OK || !pOut || *pulOutLen < need) {
		if (rv == CKR_OK)
			rv = pOut ? CKR_BUFFER_TOO_SMALL : CKR_OK;
		*pulOutLen = need;
		return rv;
	}
	CK_ULONG done = 0, out = 0;
	while (rv == CKR_OK && done < ulPartLen) {
		CK_ULONG n = ulPartLen - done < max ? ulPartLen - done
						    : (CK_ULONG)max;
		CK_ULONG room = *pulOutLen - out;
		rv = piece(hSession, pPart + done, n, pOut + out, &room, 0);
		done += n;
		out += rv == CKR_OK ? room : 0;
	}
	if (rv == CKR_OK)
		*pulOutLen = out;
	return rv;
}

/* C_<Op>Init, C_<Op>, C_<Op>Update and C_<Op>Final for encryption and
 * decryption: no init is held back (their parameters are the daemon's to
 * check), and bad arguments end the daemon's operation. */
#define RHC_CIPHER_CALLS(Op, UP, low)                                          \
	CK_RV rhc_C_##Op##Init(CK_SESSION_HANDLE hSession,                     \
			       CK_MECHANISM_PTR pMechanism,                    \
			       CK_OBJECT_HANDLE hKey)                          \
	{                                                                      \
		CK_RV rv = rhc_ready();                                        \
		if (rv != CKR_OK)                                              \
			return rv;                                             \
		cipher_mech_t m;                                               \
		rv = cipher_mechanism_to_wire(pMechanism, &m);                 \
		if (rv != CKR_OK)                                              \
			return rv;                                             \
		PREPARE(UP##_INIT, low##_init, Op##Init);                      \
		body.session = hSession;                                       \
		body.mechanism = &m.mech;                                      \
		body.key = hKey;                                               \
		rv = rhc_call(&req, &resp);                                    \
		return finish(resp, rv);                                       \
	}                                                                      \
                                                                               \
	CK_RV rhc_C_##Op(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,        \
			 CK_ULONG ulDataLen, CK_BYTE_PTR pOut,                 \
			 CK_ULONG_PTR pulOutLen)                               \
	{                                                                      \
		CK_RV rv = rhc_ready();                                        \
		if (rv != CKR_OK)                                              \
			return rv;                                             \
		PREPARE(UP, low, Op);                                          \
		body.session = hSession;                                       \
		int too_long = ulDataLen > rhc_max_payload();                  \
		body.arguments_bad =                                           \
			(!pData && ulDataLen) || !pulOutLen || too_long;       \
		Remhsm__OutputBuffer out = output_buffer(                      \
			body.arguments_bad ? NULL : pOut, pulOutLen);          \
		body.output = &out;                                            \
		body.data = bytes_of(body.arguments_bad ? NULL : pData,        \
				     body.arguments_bad ? 0 : ulDataLen);      \
		rv = rhc_call(&req, &resp);                                    \
		if (body.arguments_bad)                                        \
			return finish(resp,                                    \
				      too_long && rv == CKR_ARGUMENTS_BAD      \
					      ? CKR_DATA_LEN_RANGE             \
					      : rv);                           \
		const Remhsm__Output *o =                                      \
			resp && resp->low ? resp->low->output : NULL;          \
		rv = take_output(rv, o, pOut, pulOutLen);                      \
		return finish(resp, rv);                                       \
	}                                                                      \
                                                                               \
	static CK_RV low##_update_piece(                                       \
		CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,                 \
		CK_ULONG ulPartLen, CK_BYTE_PTR pOut, CK_ULONG_PTR pulOutLen,  \
		CK_ULONG query_len)                                            \
	{                                                                      \
		PREPARE(UP##_UPDATE, low##_update, Op##Update);                \
		body.session = hSession;                                       \
		Remhsm__OutputBuffer out = output_buffer(pOut, pulOutLen);     \
		body.output = &out;                                            \
		body.data = bytes_of(pPart, ulPartLen);                        \
		body.query_len = query_len;                                    \
		CK_RV rv = rhc_call(&req, &resp);                              \
		const Remhsm__Output *o = resp && resp->low##_update           \
						  ? resp->low##_update->output \
						  : NULL;                      \
		rv = take_output(rv, o, pOut, pulOutLen);                      \
		return finish(resp, rv);                                       \
	}                                                                      \
                                                                               \
	CK_RV rhc_C_##Op##Update(CK_SESSION_HANDLE hSession,                   \
				 CK_BYTE_PTR pPart, CK_ULONG ulPartLen,        \
				 CK_BYTE_PTR pOut, CK_ULONG_PTR pulOutLen)     \
	{                                                                      \
		CK_RV rv = rhc_ready();                                        \
		if (rv != CKR_OK)                                              \
			return rv;                                             \
		if ((pPart || !ulPartLen) && pulOutLen)                        \
			return cipher_in_pieces(hSession, pPart, ulPartLen,    \
						pOut, pulOutLen,               \
						low##_update_piece);           \
		PREPARE(UP##_UPDATE, low##_update, Op##Update);                \
		body.session = hSession;                                       \
		body.arguments_bad = 1;                                        \
		rv = rhc_call(&req, &resp);                                    \
		return finish(resp, rv);                                       \
	}                                                                      \
                                                                               \
	CK_RV rhc_C_##Op##Final(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOut,  \
				CK_ULONG_PTR pulOutLen)                        \
	{                                                                      \
		CK_RV rv = rhc_ready();                                        \
		if (rv != CKR_OK)                                              \
			return rv;                                             \
		PREPARE(UP##_FINAL, low##_final, Op##Final);                   \
		body.session = hSession;                                       \
		body.arguments_bad = !pulOutLen;                               \
		Remhsm__OutputBuffer out =                                     \
			output_buffer(pulOutLen ? pOut : NULL, pulOutLen);     \
		body.output = &out;                                            \
		rv = rhc_call(&req, &resp);                                    \
		if (body.arguments_bad)                                        \
			return finish(resp, rv);                               \
		const Remhsm__Output *o = resp && resp->low##_final            \
						  ? resp->low##_final->output  \
						  : NULL;                      \
		rv = take_output(rv, o, pOut, pulOutLen);                      \
		return finish(resp, rv);                                       \
	}

RHC_CIPHER_CALLS(Encrypt, ENCRYPT, encrypt)
RHC_CIPHER_CALLS(Decrypt, DECRYPT, decrypt)

/* --- key generation
 * ------------------------------------------------------------------ */

CK_RV rhc_C_GenerateKeyPair(CK_SESSION_HANDLE hSession,
			    CK_MECHANISM_PTR pMechanism,
			    CK_ATTRIBUTE_PTR pPublicKeyTemplate,
			    CK_ULONG ulPublicKeyAttributeCount,
			    CK_ATTRIBUTE_PTR pPrivateKeyTemplate,
			    CK_ULONG ulPrivateKeyAttributeCount,
			    CK_OBJECT_HANDLE_PTR phPublicKey,
			    CK_OBJECT_HANDLE_PTR phPrivateKey)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!phPublicKey || !phPrivateKey)
		return CKR_ARGUMENTS_BAD;
	Remhsm__Mechanism mech;
	Remhsm__RsaPkcsPssParams pss;
	rv = mechanism_to_wire(pMechanism, &mech, &pss);
	if (rv != CKR_OK)
		return rv;
	PREPARE(GENERATE_KEY_PAIR, generate_key_pair, GenerateKeyPair);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.mechanism = &mech;
	body.n_public_template = ulPublicKeyAttributeCount;
	body.n_private_template = ulPrivateKeyAttributeCount;
	rv = rhc_template_to_wire(pPublicKeyTemplate, ulPublicKeyAttributeCount,
				  &arena, &body.public_template);
	if (rv == CKR_OK)
		rv = rhc_template_to_wire(pPrivateKeyTemplate,
					  ulPrivateKeyAttributeCount, &arena,
					  &body.private_template);
	if (rv == CKR_OK)
		rv = rhc_call(&req, &resp);
	const Remhsm__GenerateKeyPairResp *r =
		resp ? resp->generate_key_pair : NULL;
	if (rv == CKR_OK &&
	    (!r || take_object(r->public_key, phPublicKey) < 0 ||
	     take_object(r->private_key, phPrivateKey) < 0))
		rv = CKR_DEVICE_ERROR;
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

CK_RV rhc_C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
			CK_OBJECT_HANDLE_PTR phKey)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!phKey)
		return CKR_ARGUMENTS_BAD;
	Remhsm__Mechanism mech;
	Remhsm__RsaPkcsPssParams pss;
	rv = mechanism_to_wire(pMechanism, &mech, &pss);
	if (rv != CKR_OK)
		return rv;
	PREPARE(GENERATE_KEY, generate_key, GenerateKey);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.mechanism = &mech;
	body.n_template_ = ulCount;
	rv = rhc_template_to_wire(pTemplate, ulCount, &arena, &body.template_);
	if (rv == CKR_OK)
		rv = rhc_call(&req, &resp);
	const Remhsm__GenerateKeyResp *r = resp ? resp->generate_key : NULL;
	if (rv == CKR_OK && (!r || take_object(r->key, phKey) < 0))
		rv = CKR_DEVICE_ERROR;
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

typedef struct derive_params {
	Remhsm__Ecdh1DeriveParams ecdh;
	Remhsm__HkdfParams hkdf;
} derive_params_t;

/* HKDF's parameters as they are; the daemon judges them. */
static CK_RV hkdf_to_wire(const CK_MECHANISM *m, Remhsm__Mechanism *w,
			  Remhsm__HkdfParams *h)
{
	if (!m->pParameter || m->ulParameterLen != sizeof(CK_HKDF_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_HKDF_PARAMS *p = m->pParameter;
	if ((!p->pSalt && p->ulSaltLen) || (!p->pInfo && p->ulInfoLen) ||
	    p->ulSaltLen > 4096 || p->ulInfoLen > 4096)
		return CKR_MECHANISM_PARAM_INVALID;
	remhsm__hkdf_params__init(h);
	h->extract = p->bExtract != CK_FALSE;
	h->expand = p->bExpand != CK_FALSE;
	h->prf = p->prfHashMechanism;
	h->salt_type = p->ulSaltType;
	h->salt = (ProtobufCBinaryData){p->ulSaltLen, p->pSalt};
	h->salt_key = p->hSaltKey;
	h->info = (ProtobufCBinaryData){p->ulInfoLen, p->pInfo};
	w->parameter_case = REMHSM__MECHANISM__PARAMETER_HKDF;
	w->hkdf = h;
	return CKR_OK;
}

/* ECDH's parameters: the KDF, its shared data, the peer's point; or
 * HKDF's. */
static CK_RV derive_to_wire(const CK_MECHANISM *m, Remhsm__Mechanism *w,
			    derive_params_t *d)
{
	if (!m)
		return CKR_ARGUMENTS_BAD;
	remhsm__mechanism__init(w);
	w->type = m->mechanism;
	if (m->mechanism == CKM_HKDF_DERIVE)
		return hkdf_to_wire(m, w, &d->hkdf);
	if (m->mechanism != CKM_ECDH1_DERIVE)
		return CKR_OK; /* the daemon's to refuse */
	Remhsm__Ecdh1DeriveParams *e = &d->ecdh;
	if (!m->pParameter ||
	    m->ulParameterLen != sizeof(CK_ECDH1_DERIVE_PARAMS))
		return CKR_MECHANISM_PARAM_INVALID;
	const CK_ECDH1_DERIVE_PARAMS *p = m->pParameter;
	if ((!p->shared_data && p->shared_data_len) ||
	    (!p->public_data && p->public_data_len) ||
	    p->shared_data_len > 4096 || p->public_data_len > 1024)
		return CKR_MECHANISM_PARAM_INVALID;
	remhsm__ecdh1_derive_params__init(e);
	e->kdf = p->kdf;
	e->shared_data =
		(ProtobufCBinaryData){p->shared_data_len, p->shared_data};
	e->public_data =
		(ProtobufCBinaryData){p->public_data_len, p->public_data};
	w->parameter_case = REMHSM__MECHANISM__PARAMETER_ECDH;
	w->ecdh = e;
	return CKR_OK;
}

CK_RV rhc_C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		      CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate,
		      CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!phKey)
		return CKR_ARGUMENTS_BAD;
	Remhsm__Mechanism mech;
	derive_params_t params;
	rv = derive_to_wire(pMechanism, &mech, &params);
	if (rv != CKR_OK)
		return rv;
	PREPARE(DERIVE_KEY, derive_key, DeriveKey);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.mechanism = &mech;
	body.base_key = hBaseKey;
	body.n_template_ = ulAttributeCount;
	rv = rhc_template_to_wire(pTemplate, ulAttributeCount, &arena,
				  &body.template_);
	if (rv == CKR_OK)
		rv = rhc_call(&req, &resp);
	const Remhsm__DeriveKeyResp *r = resp ? resp->derive_key : NULL;
	if (rv == CKR_OK && (!r || take_object(r->key, phKey) < 0))
		rv = CKR_DEVICE_ERROR;
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

CK_RV rhc_C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		    CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey,
		    CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pulWrappedKeyLen)
		return CKR_ARGUMENTS_BAD;
	cipher_mech_t m;
	rv = cipher_mechanism_to_wire(pMechanism, &m);
	if (rv != CKR_OK)
		return rv;
	PREPARE(WRAP_KEY, wrap_key, WrapKey);
	body.session = hSession;
	body.mechanism = &m.mech;
	body.wrapping_key = hWrappingKey;
	body.key = hKey;
	Remhsm__OutputBuffer out = output_buffer(pWrappedKey, pulWrappedKeyLen);
	body.output = &out;
	rv = rhc_call(&req, &resp);
	const Remhsm__Output *o =
		resp && resp->wrap_key ? resp->wrap_key->output : NULL;
	rv = take_output(rv, o, pWrappedKey, pulWrappedKeyLen);
	return finish(resp, rv);
}

CK_RV rhc_C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		      CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey,
		      CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
		      CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!phKey || (!pWrappedKey && ulWrappedKeyLen))
		return CKR_ARGUMENTS_BAD;
	if (ulWrappedKeyLen > rhc_max_payload())
		return CKR_WRAPPED_KEY_LEN_RANGE;
	cipher_mech_t m;
	rv = cipher_mechanism_to_wire(pMechanism, &m);
	if (rv != CKR_OK)
		return rv;
	PREPARE(UNWRAP_KEY, unwrap_key, UnwrapKey);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.mechanism = &m.mech;
	body.unwrapping_key = hUnwrappingKey;
	body.wrapped_key = bytes_of(pWrappedKey, ulWrappedKeyLen);
	body.n_template_ = ulAttributeCount;
	rv = rhc_template_to_wire(pTemplate, ulAttributeCount, &arena,
				  &body.template_);
	if (rv == CKR_OK)
		rv = rhc_call(&req, &resp);
	const Remhsm__UnwrapKeyResp *r = resp ? resp->unwrap_key : NULL;
	if (rv == CKR_OK && (!r || take_object(r->key, phKey) < 0))
		rv = CKR_DEVICE_ERROR;
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

CK_RV rhc_C_SetAttributeValue(CK_SESSION_HANDLE hSession,
			      CK_OBJECT_HANDLE hObject,
			      CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	PREPARE(SET_ATTRIBUTE_VALUE, set_attribute_value, SetAttributeValue);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.object = hObject;
	body.n_template_ = ulCount;
	rv = rhc_template_to_wire(pTemplate, ulCount, &arena, &body.template_);
	if (rv == CKR_OK)
		rv = too_large_is_invalid(rhc_call(&req, &resp));
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

CK_RV rhc_C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
		       CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
		       CK_OBJECT_HANDLE_PTR phNewObject)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!phNewObject)
		return CKR_ARGUMENTS_BAD;
	PREPARE(COPY_OBJECT, copy_object, CopyObject);
	rh_arena_t arena = RH_ARENA_INIT;
	body.session = hSession;
	body.object = hObject;
	body.n_template_ = ulCount;
	rv = rhc_template_to_wire(pTemplate, ulCount, &arena, &body.template_);
	if (rv == CKR_OK)
		rv = too_large_is_invalid(rhc_call(&req, &resp));
	const Remhsm__CopyObjectResp *r = resp ? resp->copy_object : NULL;
	if (rv == CKR_OK && (!r || take_object(r->object, phNewObject) < 0))
		rv = CKR_DEVICE_ERROR;
	rh_arena_cleanup(&arena);
	return finish(resp, rv);
}

CK_RV rhc_C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
			  CK_ULONG_PTR pulSize)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pulSize)
		return CKR_ARGUMENTS_BAD;
	PREPARE(GET_OBJECT_SIZE, get_object_size, GetObjectSize);
	body.session = hSession;
	body.object = hObject;
	rv = rhc_call(&req, &resp);
	if (rv == CKR_OK &&
	    (!resp->get_object_size ||
	     to_ulong(resp->get_object_size->size, pulSize) < 0))
		rv = CKR_DEVICE_ERROR;
	return finish(resp, rv);
}

/* --- PKCS#11 v3.0 ----------------------------------------------------------
 */

CK_RV rhc_C_LoginUser(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
		      CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
		      CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen)
{
	/* A token has one user and one SO: there is no name to check. */
	(void)pUsername;
	(void)ulUsernameLen;
	return rhc_C_Login(hSession, userType, pPin, ulPinLen);
}

/* Each ends its operation on the daemon (and an init held here), as bad
 * arguments to its last call would: CKR_ARGUMENTS_BAD is that done. */
#define RHC_CANCEL(low, UP, Camel, OP)                                         \
	static CK_RV cancel_##low(CK_SESSION_HANDLE hSession)                  \
	{                                                                      \
		PREPARE(UP##_FINAL, low##_final, Camel##Final);                \
		(void)resp; /* abandon has its own */                          \
		body.session = hSession;                                       \
		return abandon(hSession, OP, &req, &body.arguments_bad);       \
	}
RHC_CANCEL(digest, DIGEST, Digest, RHC_OP_DIGEST)
RHC_CANCEL(sign, SIGN, Sign, RHC_OP_SIGN)
RHC_CANCEL(verify, VERIFY, Verify, RHC_OP_VERIFY)

#define RHC_CANCEL_CIPHER(low, UP, Camel)                                      \
	static CK_RV cancel_##low(CK_SESSION_HANDLE hSession)                  \
	{                                                                      \
		PREPARE(UP##_FINAL, low##_final, Camel##Final);                \
		body.session = hSession;                                       \
		body.arguments_bad = 1;                                        \
		CK_RV rv = rhc_call(&req, &resp);                              \
		return finish(resp, rv);                                       \
	}
RHC_CANCEL_CIPHER(encrypt, ENCRYPT, Encrypt)
RHC_CANCEL_CIPHER(decrypt, DECRYPT, Decrypt)

CK_RV rhc_C_SessionCancel(CK_SESSION_HANDLE hSession, CK_FLAGS flags)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	static const struct {
		CK_FLAGS flag;
		CK_RV (*cancel)(CK_SESSION_HANDLE);
	} ops[] = {{CKF_DIGEST, cancel_digest},
		   {CKF_SIGN, cancel_sign},
		   {CKF_VERIFY, cancel_verify},
		   {CKF_ENCRYPT, cancel_encrypt},
		   {CKF_DECRYPT, cancel_decrypt}};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!(flags & ops[i].flag))
			continue;
		rv = ops[i].cancel(hSession);
		if (rv != CKR_OK && rv != CKR_ARGUMENTS_BAD)
			return rv;
	}
	return CKR_OK;
}

CK_RV rhc_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot,
			     CK_VOID_PTR pReserved)
{
	CK_RV rv = rhc_ready();
	if (rv != CKR_OK)
		return rv;
	if (!pSlot || pReserved)
		return CKR_ARGUMENTS_BAD;
	/* Slots never come or go: a call that may not block learns that
	 * nothing happened; one that would wait forever is not served. */
	return flags & CKF_DONT_BLOCK ? CKR_NO_EVENT
				      : CKR_FUNCTION_NOT_SUPPORTED;
}
