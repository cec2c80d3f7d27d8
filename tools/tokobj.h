/*
 * A logged-in session on one token for the provisioning commands, and the
 * object lookups they share: by PKCS#11 URI or label, exactly one or all.
 */
#ifndef RH_TOKOBJ_H
#define RH_TOKOBJ_H

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "uri.h"

#define RH_ANY_CLASS ((CK_OBJECT_CLASS)-1)
/* An Ed25519 key's seed and its public key, in bytes. */
#define RH_ED25519_LEN 32

typedef struct rh_tok {
	const char *who; /* "remhsm key gen", prefixes every message */
	CK_FUNCTION_LIST *p11;
	void *module;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session;
	char label[33];
} rh_tok_t;

typedef struct rh_tok_opts {
	const char *module;
	const char *token; /* --token; else the URI's token=; else the only */
	const char *pin;   /* --pin; else the URI's pin-value, REMHSM_PIN, a
			      prompt */
	int login;	   /* 0 for public objects only */
} rh_tok_opts_t;

/* Loads the module, picks the token, opens a read-write session and logs
 * in. 0, or 1 after saying on stderr what went wrong. */
int rh_tok_open(rh_tok_t *t, const char *who, const rh_tok_opts_t *o,
		const rh_uri_t *uri);
void rh_tok_close(rh_tok_t *t);

/* Up to cap objects that match uri (and cls unless RH_ANY_CLASS). */
CK_RV rh_tok_find(rh_tok_t *t, const rh_uri_t *uri, CK_OBJECT_CLASS cls,
		  CK_OBJECT_HANDLE *out, CK_ULONG cap, CK_ULONG *n);

/* The one object that matches; 1 with a message when none or several do. */
int rh_tok_find_one(rh_tok_t *t, const rh_uri_t *uri, CK_OBJECT_CLASS cls,
		    CK_OBJECT_HANDLE *h);

/* A byte-string attribute, allocated (free()); CKR_* of the read. */
CK_RV rh_tok_attr(rh_tok_t *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		  unsigned char **value, CK_ULONG *len);
CK_RV rh_tok_ulong(rh_tok_t *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		   CK_ULONG *value);

/* The public key of an EC, Ed25519 or RSA key object (private or public), built
 * from its public attributes; NULL with a message. */
EVP_PKEY *rh_tok_public_key(rh_tok_t *t, CK_OBJECT_HANDLE h);

/* The private key whose public half is pub; 1 with a message if none. */
int rh_tok_key_for(rh_tok_t *t, EVP_PKEY *pub, CK_OBJECT_HANDLE *priv);

#endif
