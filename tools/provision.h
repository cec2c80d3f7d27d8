/*
 * The provisioning commands: key gen|import|wrap|unwrap, csr, cert import,
 * pubkey export, object list|show|delete. Objects are named by PKCS#11 URI or
 * by label; labels default to FreeRTOS's.
 */
#ifndef RH_PROVISION_H
#define RH_PROVISION_H

#include <openssl/evp.h>
#include <stdio.h>

#include "tokobj.h"

#define RH_MAX_SANS 16

typedef struct rh_prov_opts {
	rh_tok_opts_t tok;
	const char *type;    /* key gen --type */
	const char *label;   /* --label */
	const char *id_hex;  /* --id */
	const char *key;     /* csr --key */
	const char *subject; /* csr --subject */
	const char *sans[RH_MAX_SANS];
	int n_sans;
	const char *output;	  /* -o */
	const char *wrapping_key; /* key wrap|unwrap --wrapping-key */
	int transport;		  /* key gen --transport */
	int extractable;	  /* key gen --extractable */
	const char *arg;	  /* the FILE or URI operand */
	rh_uri_t uri;		  /* --key or the URI operand, parsed */
} rh_prov_opts_t;

/* `remhsm key|csr|cert|pubkey|object …`: argv[0] is the command. */
int rh_provision_main(int argc, char **argv);

/* csr.c */
int rh_cmd_csr(rh_tok_t *t, const rh_prov_opts_t *o);
int rh_cmd_cert_import(rh_tok_t *t, const rh_prov_opts_t *o);
int rh_cmd_pubkey_export(rh_tok_t *t, const rh_prov_opts_t *o);

/* The CKA_ID remhsm gives a key: SHA-1 of its public value (the EC point
 * or RSA modulus), as OpenSC and GnuTLS do. Returns the length (20). */
int rh_key_id(EVP_PKEY *pub, unsigned char id[20]);

/* Hex digits (an even number, at least two) into at most cap bytes at
 * out; how many, or -1. */
int rh_parse_hex(const char *hex, unsigned char *out, size_t cap);

/* backup.c: remhsm key wrap|unwrap. */
int rh_cmd_key_wrap(rh_tok_t *t, const rh_prov_opts_t *o);
int rh_cmd_key_unwrap(rh_tok_t *t, const rh_prov_opts_t *o);

/* 1, after saying so, when a cls object labelled label exists: a label
 * that named two objects could no longer name either. */
int rh_label_taken(rh_tok_t *t, const char *label, CK_OBJECT_CLASS cls);

/* Prints "what: pkcs11:…" for an object just made. */
void rh_print_uri(rh_tok_t *t, const char *what, const char *label,
		  const unsigned char *id, size_t id_len, CK_OBJECT_CLASS cls);

/* Opens the output (-o FILE, else stdout); NULL with a message. */
FILE *rh_open_output(const char *who, const char *path);

#endif
