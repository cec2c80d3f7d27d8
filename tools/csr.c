/*
 * remhsm csr, cert import and pubkey export: the steps between a key that
 * never leaves remhsm and a certificate a CA issued for it.
 */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "provision.h"

#define CERT_LABEL "Device Cert"

/* "/CN=device-1/O=Acme" (a backslash escapes a slash) into a name. */
static X509_NAME *parse_subject(const char *text)
{
	if (*text != '/')
		return NULL;
	X509_NAME *name = X509_NAME_new();
	char *copy = strdup(text + 1), *field = copy, *w = copy;
	int ok = name && copy;
	for (const char *r = text + 1; ok; r++) {
		if (*r == '\\' && r[1]) {
			*w++ = *++r;
			continue;
		}
		if (*r && *r != '/') {
			*w++ = *r;
			continue;
		}
		*w = '\0';
		char *eq = strchr(field, '=');
		ok = eq && eq > field && eq[1];
		if (ok) {
			*eq = '\0';
			ok = X509_NAME_add_entry_by_txt(
				     name, field, MBSTRING_UTF8,
				     (unsigned char *)eq + 1, -1, -1, 0) == 1;
		}
		if (!*r)
			break;
		field = w = w + 1;
	}
	free(copy);
	if (!ok || X509_NAME_entry_count(name) == 0) {
		X509_NAME_free(name);
		return NULL;
	}
	return name;
}

/* The subjectAltName extension request from --san values. */
static int add_sans(X509_REQ *req, const rh_prov_opts_t *o)
{
	if (!o->n_sans)
		return 0;
	size_t len = 1;
	for (int i = 0; i < o->n_sans; i++)
		len += strlen(o->sans[i]) + 1;
	char *joined = calloc(1, len);
	for (int i = 0; joined && i < o->n_sans; i++) {
		if (i)
			strcat(joined, ",");
		strcat(joined, o->sans[i]);
	}
	X509_EXTENSION *ext =
		joined ? X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
					     joined)
		       : NULL;
	free(joined);
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	int ok = ext && exts && sk_X509_EXTENSION_push(exts, ext) &&
		 X509_REQ_add_extensions(req, exts) == 1;
	if (!ok)
		X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return ok ? 0 : -1;
}

/* How the request is signed: the mechanism, the algorithm's OID, whether
 * the token's r||s becomes DER (ECDSA), and whether the algorithm has
 * absent parameters (ECDSA and Ed25519, RFC 5758 and 8410) rather than
 * NULL (RSA). */
typedef struct sig_alg {
	CK_MECHANISM_TYPE mech;
	int nid;
	int ec;
	int no_params;
} sig_alg_t;

static int pick_alg(EVP_PKEY *pub, sig_alg_t *alg)
{
	int bits = EVP_PKEY_get_bits(pub);
	if (EVP_PKEY_is_a(pub, "RSA"))
		*alg = (sig_alg_t){CKM_SHA256_RSA_PKCS,
				   NID_sha256WithRSAEncryption, 0, 0};
	else if (EVP_PKEY_is_a(pub, "ED25519"))
		*alg = (sig_alg_t){CKM_EDDSA, NID_ED25519, 0, 1};
	else if (bits == 256)
		*alg = (sig_alg_t){CKM_ECDSA_SHA256, NID_ecdsa_with_SHA256, 1,
				   1};
	else if (bits == 384)
		*alg = (sig_alg_t){CKM_ECDSA_SHA384, NID_ecdsa_with_SHA384, 1,
				   1};
	else if (bits == 521)
		*alg = (sig_alg_t){CKM_ECDSA_SHA512, NID_ecdsa_with_SHA512, 1,
				   1};
	else
		return -1;
	return 0;
}

/* r||s from the token as the DER ECDSA-Sig-Value X.509 carries. */
static int ecdsa_der(const unsigned char *rs, CK_ULONG len, unsigned char **der)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	CK_ULONG half = len / 2;
	if (!sig || !ECDSA_SIG_set0(sig, BN_bin2bn(rs, (int)half, NULL),
				    BN_bin2bn(rs + half, (int)half, NULL))) {
		ECDSA_SIG_free(sig);
		return -1;
	}
	int n = i2d_ECDSA_SIG(sig, der);
	ECDSA_SIG_free(sig);
	return n;
}

/* Signs the request's to-be-signed bytes inside remhsm and attaches the
 * algorithm and signature. */
static CK_RV sign_request(rh_tok_t *t, CK_OBJECT_HANDLE key,
			  const sig_alg_t *alg, X509_REQ *req)
{
	unsigned char *tbs = NULL, sig[512], *der = NULL;
	int tbs_len = i2d_re_X509_REQ_tbs(req, &tbs);
	if (tbs_len <= 0)
		return CKR_HOST_MEMORY;
	CK_MECHANISM mech = {alg->mech, NULL, 0};
	CK_ULONG sig_len = sizeof(sig);
	CK_RV rv = t->p11->C_SignInit(t->session, &mech, key);
	if (rv == CKR_OK)
		rv = t->p11->C_Sign(t->session, tbs, (CK_ULONG)tbs_len, sig,
				    &sig_len);
	OPENSSL_free(tbs);
	if (rv != CKR_OK)
		return rv;
	int der_len = alg->ec ? ecdsa_der(sig, sig_len, &der) : (int)sig_len;
	ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
	X509_ALGOR *algor = X509_ALGOR_new();
	int ok = der_len > 0 && bits && algor &&
		 ASN1_BIT_STRING_set(bits, alg->ec ? der : sig, der_len) &&
		 X509_ALGOR_set0(algor, OBJ_nid2obj(alg->nid),
				 alg->no_params ? V_ASN1_UNDEF : V_ASN1_NULL,
				 NULL) &&
		 X509_REQ_set1_signature_algo(req, algor);
	OPENSSL_free(der);
	X509_ALGOR_free(algor);
	if (!ok) {
		ASN1_BIT_STRING_free(bits);
		return CKR_HOST_MEMORY;
	}
	/* Whole bytes: no unused bits for the encoder to infer. */
	bits->flags &= ~(long)0x07;
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	X509_REQ_set0_signature(req, bits);
	return CKR_OK;
}

static X509_REQ *build_request(const char *who, const rh_prov_opts_t *o,
			       EVP_PKEY *pub)
{
	X509_NAME *name = parse_subject(o->subject);
	if (!name) {
		fprintf(stderr,
			"%s: bad --subject '%s' (write /CN=name/O=org…)\n", who,
			o->subject);
		return NULL;
	}
	X509_REQ *req = X509_REQ_new();
	int ok = req && X509_REQ_set_version(req, 0) &&
		 X509_REQ_set_subject_name(req, name) &&
		 X509_REQ_set_pubkey(req, pub);
	X509_NAME_free(name);
	if (ok && add_sans(req, o) < 0) {
		fprintf(stderr,
			"%s: bad --san (write DNS:name, IP:address, URI:uri "
			"or email:address)\n",
			who);
		ok = 0;
	}
	if (!ok) {
		X509_REQ_free(req);
		return NULL;
	}
	return req;
}

int rh_cmd_csr(rh_tok_t *t, const rh_prov_opts_t *o)
{
	CK_OBJECT_HANDLE key;
	if (rh_tok_find_one(t, &o->uri, CKO_PRIVATE_KEY, &key))
		return 1;
	EVP_PKEY *pub = rh_tok_public_key(t, key);
	sig_alg_t alg;
	if (!pub || pick_alg(pub, &alg) < 0) {
		EVP_PKEY_free(pub);
		return 1;
	}
	X509_REQ *req = build_request(t->who, o, pub);
	int rc = req ? 0 : 2;
	CK_RV rv = req ? sign_request(t, key, &alg, req) : CKR_OK;
	if (rv != CKR_OK)
		rc = rh_failed(t->who, "signing the request", rv);
	else if (req && X509_REQ_verify(req, pub) != 1) {
		fprintf(stderr, "%s: the token's signature does not verify\n",
			t->who);
		rc = 1;
	}
	FILE *out = rc == 0 ? rh_open_output(t->who, o->output) : NULL;
	if (rc == 0 && (!out || PEM_write_X509_REQ(out, req) != 1))
		rc = 1;
	if (out && out != stdout)
		fclose(out);
	X509_REQ_free(req);
	EVP_PKEY_free(pub);
	return rc;
}

static X509 *read_certificate(const char *who, const char *path)
{
	BIO *in = BIO_new_file(path, "rb");
	if (!in) {
		fprintf(stderr, "%s: cannot read %s\n", who, path);
		return NULL;
	}
	X509 *cert = PEM_read_bio_X509(in, NULL, NULL, NULL);
	if (!cert) {
		(void)BIO_reset(in);
		cert = d2i_X509_bio(in, NULL);
	}
	BIO_free(in);
	if (!cert)
		fprintf(stderr,
			"%s: %s is not a PEM or DER X.509 certificate\n", who,
			path);
	return cert;
}

/* The key's CKA_ID, giving it one (the SHA-1 of its public key) when it has
 * none, so that the certificate and the key share it. */
static int key_id(rh_tok_t *t, CK_OBJECT_HANDLE key, EVP_PKEY *pub,
		  unsigned char id[RH_URI_MAX_ID])
{
	unsigned char *have = NULL;
	CK_ULONG len = 0;
	CK_RV rv = rh_tok_attr(t, key, CKA_ID, &have, &len);
	if (rv == CKR_OK && len > 0 && len <= RH_URI_MAX_ID) {
		memcpy(id, have, len);
		free(have);
		return (int)len;
	}
	free(have);
	int n = rh_key_id(pub, id);
	CK_ATTRIBUTE a = {CKA_ID, id, (CK_ULONG)n};
	rv = n > 0 ? t->p11->C_SetAttributeValue(t->session, key, &a, 1)
		   : CKR_FUNCTION_FAILED;
	if (rv != CKR_OK)
		return -rh_failed(t->who, "setting the key's CKA_ID", rv);
	return n;
}

static CK_RV store_certificate(rh_tok_t *t, X509 *cert, const char *label,
			       const unsigned char *id, size_t id_len)
{
	unsigned char *der = NULL;
	int der_len = i2d_X509(cert, &der);
	if (der_len <= 0)
		return CKR_HOST_MEMORY;
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE type = CKC_X_509;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},
			       {CKA_CERTIFICATE_TYPE, &type, sizeof(type)},
			       {CKA_TOKEN, &yes, sizeof(yes)},
			       {CKA_PRIVATE, &no, sizeof(no)},
			       {CKA_LABEL, (void *)label, strlen(label)},
			       {CKA_ID, (void *)id, id_len},
			       {CKA_VALUE, der, (CK_ULONG)der_len}};
	CK_OBJECT_HANDLE h;
	CK_RV rv = t->p11->C_CreateObject(t->session, tmpl, 7, &h);
	OPENSSL_free(der);
	return rv;
}

int rh_cmd_cert_import(rh_tok_t *t, const rh_prov_opts_t *o)
{
	const char *label = o->label ? o->label : CERT_LABEL;
	X509 *cert = read_certificate(t->who, o->arg);
	if (!cert)
		return 1;
	CK_OBJECT_HANDLE key;
	unsigned char id[RH_URI_MAX_ID];
	int id_len = 0, rc = 1;
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	if (!pub)
		fprintf(stderr, "%s: the certificate's key is not readable\n",
			t->who);
	else if (!rh_tok_key_for(t, pub, &key) &&
		 !rh_label_taken(t, label, CKO_CERTIFICATE) &&
		 (id_len = key_id(t, key, pub, id)) > 0) {
		CK_RV rv =
			store_certificate(t, cert, label, id, (size_t)id_len);
		rc = rv == CKR_OK ? 0 : rh_failed(t->who, "C_CreateObject", rv);
	}
	if (rc == 0)
		rh_print_uri(t, "certificate", label, id, (size_t)id_len,
			     CKO_CERTIFICATE);
	X509_free(cert);
	return rc;
}

int rh_cmd_pubkey_export(rh_tok_t *t, const rh_prov_opts_t *o)
{
	CK_OBJECT_HANDLE h, found[2];
	CK_ULONG n = 0;
	/* The public half when it is on the token, else the private key's
	 * public attributes. */
	CK_RV rv = rh_tok_find(t, &o->uri, CKO_PUBLIC_KEY, found, 2, &n);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_FindObjects", rv);
	if (n == 1)
		h = found[0];
	else if (rh_tok_find_one(t, &o->uri,
				 n ? CKO_PUBLIC_KEY : CKO_PRIVATE_KEY, &h))
		return 1;
	EVP_PKEY *pub = rh_tok_public_key(t, h);
	FILE *out = pub ? rh_open_output(t->who, o->output) : NULL;
	int rc = out && PEM_write_PUBKEY(out, pub) == 1 ? 0 : 1;
	if (out && out != stdout)
		fclose(out);
	EVP_PKEY_free(pub);
	return rc;
}
