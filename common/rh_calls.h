/*
 * The call table: one line per PKCS#11 call carried by protocol v1.
 *
 * X(id, UPPER, lower, Camel, flags)
 *   id      field number of the call in Request.call and Response.result
 *   UPPER   generated oneof case suffix (REMHSM__REQUEST__CALL_<UPPER>)
 *   lower   oneof member name (req->lower, resp->lower)
 *   Camel   message name stem (Remhsm__<Camel>Req, Remhsm__<Camel>Resp)
 *   flags   RH_CALL_SLOW: runs on the daemon's thread pool, and its handler
 *           takes the application's lock itself (around bookkeeping only);
 *           RH_CALL_STORE_READ: runs on the loop when it reads nothing
 *           from the store (else on the pool), its handler taking the
 *           lock itself and reading the store without it;
 *           RH_CALL_FAST: runs on the loop under the application's lock;
 *           RH_CALL_REPLAY: if the daemon ran it and the answer was lost,
 *           the client may send it again without changing what the
 *           application sees (reads, random); RH_CALL_REPLAY_INIT: the
 *           same when it carries its init (a single-part operation);
 *           RH_CALL_QUERY: fast and replayable
 *
 * The daemon's dispatch, the client's stubs and the name table are all
 * generated from this list. Ids never change meaning.
 */
#ifndef RH_CALLS_H
#define RH_CALLS_H

#include <stddef.h>
#include <stdint.h>

#include "remhsm.pb-c.h"

#define RH_CALL_FAST 0u
#define RH_CALL_POOL 1u	    /* on the thread pool */
#define RH_CALL_OWN_LOCK 2u /* the handler takes the app's lock itself */
#define RH_CALL_STORE_READ RH_CALL_OWN_LOCK
#define RH_CALL_SLOW (RH_CALL_POOL | RH_CALL_OWN_LOCK)
#define RH_CALL_REPLAY 4u
#define RH_CALL_REPLAY_INIT 8u
#define RH_CALL_QUERY (RH_CALL_FAST | RH_CALL_REPLAY)

#define RH_CALLS(X)                                                            \
	X(10, GET_INFO, get_info, GetInfo, RH_CALL_QUERY)                      \
	X(11, GET_SLOT_LIST, get_slot_list, GetSlotList, RH_CALL_QUERY)        \
	X(12, GET_SLOT_INFO, get_slot_info, GetSlotInfo, RH_CALL_QUERY)        \
	X(13, GET_TOKEN_INFO, get_token_info, GetTokenInfo, RH_CALL_QUERY)     \
	X(14, GET_MECHANISM_LIST, get_mechanism_list, GetMechanismList,        \
	  RH_CALL_QUERY)                                                       \
	X(15, GET_MECHANISM_INFO, get_mechanism_info, GetMechanismInfo,        \
	  RH_CALL_QUERY)                                                       \
	X(16, INIT_TOKEN, init_token, InitToken, RH_CALL_SLOW)                 \
	X(17, INIT_PIN, init_pin, InitPin, RH_CALL_SLOW)                       \
	X(18, SET_PIN, set_pin, SetPin, RH_CALL_SLOW)                          \
	X(19, OPEN_SESSION, open_session, OpenSession, RH_CALL_FAST)           \
	X(20, CLOSE_SESSION, close_session, CloseSession, RH_CALL_FAST)        \
	X(21, CLOSE_ALL_SESSIONS, close_all_sessions, CloseAllSessions,        \
	  RH_CALL_FAST)                                                        \
	X(22, GET_SESSION_INFO, get_session_info, GetSessionInfo,              \
	  RH_CALL_QUERY)                                                       \
	X(23, LOGIN, login, Login, RH_CALL_SLOW)                               \
	X(24, LOGOUT, logout, Logout, RH_CALL_FAST)                            \
	X(25, CREATE_OBJECT, create_object, CreateObject, RH_CALL_SLOW)        \
	X(26, COPY_OBJECT, copy_object, CopyObject, RH_CALL_SLOW)              \
	X(27, DESTROY_OBJECT, destroy_object, DestroyObject, RH_CALL_SLOW)     \
	X(28, GET_OBJECT_SIZE, get_object_size, GetObjectSize,                 \
	  RH_CALL_STORE_READ | RH_CALL_REPLAY)                                 \
	X(29, GET_ATTRIBUTE_VALUE, get_attribute_value, GetAttributeValue,     \
	  RH_CALL_STORE_READ | RH_CALL_REPLAY)                                 \
	X(30, SET_ATTRIBUTE_VALUE, set_attribute_value, SetAttributeValue,     \
	  RH_CALL_SLOW)                                                        \
	X(31, FIND_OBJECTS_INIT, find_objects_init, FindObjectsInit,           \
	  RH_CALL_SLOW)                                                        \
	X(32, FIND_OBJECTS, find_objects, FindObjects, RH_CALL_FAST)           \
	X(33, FIND_OBJECTS_FINAL, find_objects_final, FindObjectsFinal,        \
	  RH_CALL_FAST)                                                        \
	X(34, DIGEST_INIT, digest_init, DigestInit, RH_CALL_FAST)              \
	X(35, DIGEST, digest, Digest, RH_CALL_SLOW | RH_CALL_REPLAY_INIT)      \
	X(36, DIGEST_UPDATE, digest_update, DigestUpdate, RH_CALL_FAST)        \
	X(37, DIGEST_FINAL, digest_final, DigestFinal, RH_CALL_SLOW)           \
	X(38, SIGN_INIT, sign_init, SignInit, RH_CALL_SLOW)                    \
	X(39, SIGN, sign, Sign, RH_CALL_SLOW | RH_CALL_REPLAY_INIT)            \
	X(40, SIGN_UPDATE, sign_update, SignUpdate, RH_CALL_SLOW)              \
	X(41, SIGN_FINAL, sign_final, SignFinal, RH_CALL_SLOW)                 \
	X(42, VERIFY_INIT, verify_init, VerifyInit, RH_CALL_SLOW)              \
	X(43, VERIFY, verify, Verify, RH_CALL_SLOW | RH_CALL_REPLAY_INIT)      \
	X(44, VERIFY_UPDATE, verify_update, VerifyUpdate, RH_CALL_SLOW)        \
	X(45, VERIFY_FINAL, verify_final, VerifyFinal, RH_CALL_SLOW)           \
	X(46, GENERATE_KEY_PAIR, generate_key_pair, GenerateKeyPair,           \
	  RH_CALL_SLOW)                                                        \
	X(47, SEED_RANDOM, seed_random, SeedRandom, RH_CALL_FAST)              \
	X(48, GENERATE_RANDOM, generate_random, GenerateRandom, RH_CALL_QUERY) \
	X(49, RESTORE, restore, Restore, RH_CALL_SLOW)                         \
	X(50, GENERATE_KEY, generate_key, GenerateKey, RH_CALL_SLOW)           \
	X(51, ENCRYPT_INIT, encrypt_init, EncryptInit, RH_CALL_SLOW)           \
	X(52, ENCRYPT, encrypt, Encrypt, RH_CALL_SLOW)                         \
	X(53, ENCRYPT_UPDATE, encrypt_update, EncryptUpdate, RH_CALL_SLOW)     \
	X(54, ENCRYPT_FINAL, encrypt_final, EncryptFinal, RH_CALL_SLOW)        \
	X(55, DECRYPT_INIT, decrypt_init, DecryptInit, RH_CALL_SLOW)           \
	X(56, DECRYPT, decrypt, Decrypt, RH_CALL_SLOW)                         \
	X(57, DECRYPT_UPDATE, decrypt_update, DecryptUpdate, RH_CALL_SLOW)     \
	X(58, DECRYPT_FINAL, decrypt_final, DecryptFinal, RH_CALL_SLOW)        \
	X(59, DERIVE_KEY, derive_key, DeriveKey, RH_CALL_SLOW)                 \
	X(60, WRAP_KEY, wrap_key, WrapKey, RH_CALL_SLOW)                       \
	X(61, UNWRAP_KEY, unwrap_key, UnwrapKey, RH_CALL_SLOW)                 \
	X(62, DIGEST_KEY, digest_key, DigestKey, RH_CALL_SLOW)

/* The Hello exchange uses this id in both oneofs' numbering space. */
#define RH_CALL_HELLO_REQ_ID 2
#define RH_CALL_HELLO_RESP_ID 3

#define RH_PROTOCOL_VERSION 1u

/* Name of a call id ("C_GetInfo" style), or NULL for an unknown id. */
const char *rh_call_name(unsigned id);

/* The call's RH_CALL_* flags; unknown ids are fast (they are refused). */
unsigned rh_call_flags(unsigned id);

/* What the schema says of a request, read through its descriptors rather
 * than written out per call: its call's message (NULL when none); the
 * init it carries (a field "init", NULL when none); the mechanism it names
 * (a field "mechanism", its own or its init's, NULL when none); the key
 * its init names (0 when none). */
const ProtobufCMessage *rh_call_body(const Remhsm__Request *req);
const ProtobufCMessage *rh_call_init(const Remhsm__Request *req);
const Remhsm__Mechanism *rh_call_mechanism(const Remhsm__Request *req);
uint64_t rh_call_init_key(const Remhsm__Request *req);
/* Whether req may be sent again after a lost answer (RH_CALL_REPLAY, or
 * RH_CALL_REPLAY_INIT with its init). */
int rh_call_replayable(const Remhsm__Request *req);

#endif
