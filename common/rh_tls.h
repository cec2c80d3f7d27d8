/* TLS context setup from files, shared by the daemon and the client. */
#ifndef RH_TLS_H
#define RH_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

typedef struct rh_tls_files {
	const char *ca;
	const char *cert;
	const char *key;
} rh_tls_files_t;

/*
 * A server context that requires a client certificate chaining to the CA.
 * TLS 1.3 only unless allow_tls12. On failure returns NULL and writes the
 * reason (file and OpenSSL error) to err.
 */
SSL_CTX *rh_tls_server_ctx_new(const rh_tls_files_t *files, int allow_tls12,
			       char *err, size_t err_len);

/*
 * Admits only end-entity client certificates: no CA:TRUE (nor keyCertSign
 * on a certificate without basic constraints), and an extended key usage
 * that names clientAuth; a certificate with no EKU at all is admitted only
 * when eku_optional.
 */
void rh_tls_require_client_leaf(SSL_CTX *ctx, int eku_optional);

/* A client context that verifies the server against the CA. */
SSL_CTX *rh_tls_client_ctx_new(const rh_tls_files_t *files, char *err,
			       size_t err_len);

/* Drains OpenSSL's error queue of this thread into buf ("" when empty). */
void rh_tls_last_error(char *buf, size_t len);

#endif
