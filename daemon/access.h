/*
 * Access control by client certificate. A connection's identity is taken
 * from its verified certificate, in the form the configuration names:
 * "CN=name", "URI:uri" or "DNS:name" (the first such subjectAltName), or
 * "SHA256:hex" of the certificate. The access list maps identities to the
 * slots they see and the roles they hold:
 *
 *   # identity pattern   slots     roles
 *   CN=gateway-*         0,1       user
 *   CN=operator          *         user,so,admin
 *
 * Patterns are exact or shell globs ('*', '?'); the first that matches
 * wins; an identity no pattern matches is refused after the handshake.
 */
#ifndef RHD_ACCESS_H
#define RHD_ACCESS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef enum {
	RHD_ID_CN,
	RHD_ID_SAN_URI,
	RHD_ID_SAN_DNS,
	RHD_ID_FINGERPRINT
} rhd_id_kind_t;

typedef struct rhd_rule {
	char pattern[RHD_IDENTITY_MAX];
	uint64_t slots;
	unsigned roles;
} rhd_rule_t;

typedef struct rhd_access {
	rhd_id_kind_t kind;
	int listed; /* 0: no access list, every identity sees everything */
	rhd_rule_t *rules;
	size_t n_rules;
} rhd_access_t;

/* "cn", "san-uri", "san-dns", "fingerprint"; -1 for anything else. */
int rhd_id_kind_parse(const char *name, rhd_id_kind_t *kind);

/* Reads an access list (path NULL or "": none). 0, or -1 with the file,
 * line and reason in err. */
int rhd_access_load(rhd_access_t *a, rhd_id_kind_t kind, const char *path,
		    char *err, size_t err_len);
void rhd_access_free(rhd_access_t *a);

/* The verified peer's identity in the access list's form ("" when the
 * certificate has none of that kind). */
void rhd_access_identity(const rhd_access_t *a, SSL *ssl, char *buf,
			 size_t len);

/* The rule for identity: NULL when it is refused. Without a list, a rule
 * that grants everything. */
const rhd_rule_t *rhd_access_match(const rhd_access_t *a, const char *identity);

/* Makes ctx refuse client certificates the CRLs in path (PEM) revoke;
 * path NULL or "": nothing. 0, or -1 with the reason in err. */
int rhd_access_load_crl(SSL_CTX *ctx, const char *path, char *err,
			size_t err_len);

#endif
