#include "rh_tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

void rh_tls_last_error(char *buf, size_t len)
{
	unsigned long code = ERR_get_error();
	if (!code) {
		snprintf(buf, len, "%s", "");
		return;
	}
	ERR_error_string_n(code, buf, len);
	ERR_clear_error();
}

static int fail(char *err, size_t err_len, const char *what, const char *file)
{
	char detail[256];
	rh_tls_last_error(detail, sizeof(detail));
	snprintf(err, err_len, "%s %s: %s", what, file ? file : "(unset)",
		 detail[0] ? detail : "missing");
	return -1;
}

static int load_identity(SSL_CTX *ctx, const rh_tls_files_t *files, char *err,
			 size_t err_len)
{
	if (!files->ca ||
	    SSL_CTX_load_verify_locations(ctx, files->ca, NULL) != 1)
		return fail(err, err_len, "cannot load CA file", files->ca);
	if (!files->cert ||
	    SSL_CTX_use_certificate_chain_file(ctx, files->cert) != 1)
		return fail(err, err_len, "cannot load certificate",
			    files->cert);
	if (!files->key ||
	    SSL_CTX_use_PrivateKey_file(ctx, files->key, SSL_FILETYPE_PEM) != 1)
		return fail(err, err_len, "cannot load private key",
			    files->key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return fail(err, err_len, "key does not match certificate",
			    files->key);
	return 0;
}

SSL_CTX *rh_tls_server_ctx_new(const rh_tls_files_t *files, int allow_tls12,
			       char *err, size_t err_len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		fail(err, err_len, "cannot create TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, allow_tls12 ? TLS1_2_VERSION
						       : TLS1_3_VERSION);
	/* Resumption would skip the client certificate check on later
	 * connections; every connection does a full handshake instead. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* Decrypted records carry PINs and key values: OpenSSL wipes its
	 * copy once the application has read it. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_verify(
		ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if (load_identity(ctx, files, err, err_len) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(files->ca);
	if (names)
		SSL_CTX_set_client_CA_list(ctx, names);
	return ctx;
}

/* The chain verified, its leaf is judged as a client's certificate. */
static int judge_leaf(int ok, X509_STORE_CTX *store, int eku_optional)
{
	if (X509_STORE_CTX_get_error_depth(store) != 0)
		return ok;
	X509 *leaf = X509_STORE_CTX_get_current_cert(store);
	int err = X509_STORE_CTX_get_error(store);
	/* A CA's certificate usually fails the purpose check first; say what
	 * is wrong with it. */
	if ((ok || err == X509_V_ERR_INVALID_PURPOSE) && X509_check_ca(leaf)) {
		X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_NON_CA);
		return 0;
	}
	if (!ok)
		return 0;
	uint32_t flags = X509_get_extension_flags(leaf);
	int has_eku = (flags & EXFLAG_XKUSAGE) != 0;
	if ((!has_eku && !eku_optional) ||
	    (has_eku &&
	     !(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT))) {
		X509_STORE_CTX_set_error(store, X509_V_ERR_INVALID_PURPOSE);
		return 0;
	}
	return 1;
}

static int verify_leaf_strict(int ok, X509_STORE_CTX *store)
{
	return judge_leaf(ok, store, 0);
}

static int verify_leaf_eku_optional(int ok, X509_STORE_CTX *store)
{
	return judge_leaf(ok, store, 1);
}

void rh_tls_require_client_leaf(SSL_CTX *ctx, int eku_optional)
{
	SSL_CTX_set_verify(
		ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		eku_optional ? verify_leaf_eku_optional : verify_leaf_strict);
}

SSL_CTX *rh_tls_client_ctx_new(const rh_tls_files_t *files, char *err,
			       size_t err_len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		fail(err, err_len, "cannot create TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (load_identity(ctx, files, err, err_len) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
