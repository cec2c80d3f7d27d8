/* Development PKI: a CA, a server and a client certificate, ECDSA P-256. */
#ifndef RH_PKI_H
#define RH_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

typedef enum { RH_PKI_CA, RH_PKI_SERVER, RH_PKI_CLIENT } rh_pki_kind_t;

EVP_PKEY *rh_pki_keygen(void);

/*
 * Issues a certificate for key, valid from now + not_before_s to
 * now + not_after_s (seconds, may be negative), signed by ca/ca_key, or
 * self-signed when ca is NULL. Server certificates name localhost,
 * 127.0.0.1 and ::1.
 */
X509 *rh_pki_issue(EVP_PKEY *key, const char *cn, rh_pki_kind_t kind, X509 *ca,
		   EVP_PKEY *ca_key, long not_before_s, long not_after_s);

/* Writes PEM files; keys are created with mode 0600. */
int rh_pki_write_key(const char *path, EVP_PKEY *key);
int rh_pki_write_cert(const char *path, X509 *cert);

/*
 * Makes dir (mode 0700) holding ca.pem, ca.key, server.pem, server.key,
 * client.pem and client.key. Leaves an existing CA alone unless force.
 * Returns 0, 1 when it already existed, -1 with err set.
 */
int rh_pki_init(const char *dir, int force, char *err, size_t err_len);
/* The same, the server certificate naming the hosts in names too (comma-
 * separated DNS names, NULL for none): the names clients dial it by. */
int rh_pki_init_named(const char *dir, int force, const char *names, char *err,
		      size_t err_len);

#endif
