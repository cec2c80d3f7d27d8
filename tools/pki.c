#include "pki.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY (24L * 3600L)

EVP_PKEY *rh_pki_keygen(void)
{
	return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* names: more DNS names for a server certificate, comma-separated. */
static int add_profile(X509 *cert, X509 *issuer, rh_pki_kind_t kind,
		       const char *names)
{
	char san[600] = "DNS:localhost,IP:127.0.0.1,IP:::1";
	for (const char *p = names; p && *p;) {
		size_t len = strcspn(p, ",");
		size_t n = strlen(san);
		snprintf(san + n, sizeof(san) - n, ",DNS:%.*s", (int)len, p);
		p += len + (p[len] == ',');
	}
	int r = add_ext(cert, issuer, NID_subject_key_identifier, "hash");
	if (kind == RH_PKI_CA)
		return r |
		       add_ext(cert, issuer, NID_basic_constraints,
			       "critical,CA:TRUE,pathlen:0") |
		       add_ext(cert, issuer, NID_key_usage,
			       "critical,keyCertSign,cRLSign");
	r |= add_ext(cert, issuer, NID_authority_key_identifier,
		     "keyid:always");
	r |= add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
	r |= add_ext(cert, issuer, NID_key_usage, "critical,digitalSignature");
	if (kind == RH_PKI_SERVER)
		return r |
		       add_ext(cert, issuer, NID_ext_key_usage, "serverAuth") |
		       add_ext(cert, issuer, NID_subject_alt_name, san);
	return r | add_ext(cert, issuer, NID_ext_key_usage, "clientAuth");
}

static int set_serial(X509 *cert)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	raw[0] &= 0x7f; /* positive */
	BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
	int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	return ok ? 0 : -1;
}

static X509 *issue(EVP_PKEY *key, const char *cn, rh_pki_kind_t kind,
		   const char *names, X509 *ca, EVP_PKEY *ca_key,
		   long not_before_s, long not_after_s)
{
	X509 *cert = X509_new();
	X509_NAME *name = X509_NAME_new();
	if (!cert || !name)
		goto fail;
	X509_set_version(cert, 2);
	if (set_serial(cert) < 0 ||
	    !X509_NAME_add_entry_by_txt(
		    name, "O", MBSTRING_UTF8,
		    (const unsigned char *)"remhsm development", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0))
		goto fail;
	X509_set_subject_name(cert, name);
	X509_set_issuer_name(cert, ca ? X509_get_subject_name(ca) : name);
	X509_gmtime_adj(X509_getm_notBefore(cert), not_before_s);
	X509_gmtime_adj(X509_getm_notAfter(cert), not_after_s);
	X509_set_pubkey(cert, key);
	if (add_profile(cert, ca ? ca : cert, kind, names) < 0 ||
	    !X509_sign(cert, ca_key ? ca_key : key, EVP_sha256()))
		goto fail;
	X509_NAME_free(name);
	return cert;
fail:
	X509_NAME_free(name);
	X509_free(cert);
	return NULL;
}

X509 *rh_pki_issue(EVP_PKEY *key, const char *cn, rh_pki_kind_t kind, X509 *ca,
		   EVP_PKEY *ca_key, long not_before_s, long not_after_s)
{
	return issue(key, cn, kind, NULL, ca, ca_key, not_before_s,
		     not_after_s);
}

static FILE *create_file(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return NULL;
	if (fchmod(fd, mode) < 0) {
		close(fd);
		return NULL;
	}
	FILE *f = fdopen(fd, "w");
	if (!f)
		close(fd);
	return f;
}

int rh_pki_write_key(const char *path, EVP_PKEY *key)
{
	FILE *f = create_file(path, 0600);
	if (!f)
		return -1;
	int ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

int rh_pki_write_cert(const char *path, X509 *cert)
{
	FILE *f = create_file(path, 0644);
	if (!f)
		return -1;
	int ok = PEM_write_X509(f, cert);
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

static int write_pair(const char *dir, const char *stem, EVP_PKEY *key,
		      X509 *cert)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.key", dir, stem);
	if (rh_pki_write_key(path, key) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s.pem", dir, stem);
	return rh_pki_write_cert(path, cert);
}

static int issue_leaf(const char *dir, const char *stem, const char *cn,
		      rh_pki_kind_t kind, const char *names, X509 *ca,
		      EVP_PKEY *ca_key)
{
	EVP_PKEY *key = rh_pki_keygen();
	X509 *cert =
		key ? issue(key, cn, kind, names, ca, ca_key, -60, 825 * DAY)
		    : NULL;
	int r = cert ? write_pair(dir, stem, key, cert) : -1;
	X509_free(cert);
	EVP_PKEY_free(key);
	return r;
}

/* mkdir -p: the PKI usually lives under a state folder made here too. */
static int make_dirs(const char *dir)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -1;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

int rh_pki_init(const char *dir, int force, char *err, size_t err_len)
{
	return rh_pki_init_named(dir, force, NULL, err, err_len);
}

/* Host names as a certificate may carry them: letters, digits, '-' and
 * '.', at most 63 characters each, at most 8. */
static int names_ok(const char *names)
{
	int count = 0;
	for (const char *p = names; p && *p; count++) {
		size_t len = strcspn(p, ",");
		if (len == 0 || len > 63 ||
		    strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
			      "WXYZ0123456789-.") < len)
			return 0;
		p += len + (p[len] == ',');
	}
	return count <= 8;
}

int rh_pki_init_named(const char *dir, int force, const char *names, char *err,
		      size_t err_len)
{
	if (!names_ok(names)) {
		snprintf(err, err_len,
			 "server names '%s': host names (letters, digits, '-', "
			 "'.'), at most 8, comma-separated",
			 names);
		return -1;
	}
	char ca_path[4096];
	snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
	if (!force && access(ca_path, F_OK) == 0)
		return 1;
	if (make_dirs(dir) < 0) {
		snprintf(err, err_len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	EVP_PKEY *ca_key = rh_pki_keygen();
	X509 *ca = ca_key ? rh_pki_issue(ca_key, "remhsm development CA",
					 RH_PKI_CA, NULL, NULL, -60, 3650 * DAY)
			  : NULL;
	int r = -1;
	if (ca && write_pair(dir, "ca", ca_key, ca) == 0 &&
	    issue_leaf(dir, "server", "localhost", RH_PKI_SERVER, names, ca,
		       ca_key) == 0 &&
	    issue_leaf(dir, "client", "remhsm-dev-client", RH_PKI_CLIENT, NULL,
		       ca, ca_key) == 0)
		r = 0;
	if (r < 0)
		snprintf(err, err_len, "cannot write the PKI under %s: %s", dir,
			 errno ? strerror(errno) : "OpenSSL error");
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return r;
}
