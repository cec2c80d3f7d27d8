/*
 * remhsm key gen|import and object list|show|delete, and the option parsing
 * and dispatch every provisioning command shares.
 */
#include "provision.h"

#include <getopt.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "p11.h"

#define PRIV_LABEL "Device Priv TLS Key"
#define PUB_LABEL "Device Pub TLS Key"
#define SECRET_LABEL "Secret Key"
#define MAX_LIST 4096

static const CK_BYTE p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				   0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE p384_oid[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const CK_BYTE p521_oid[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
/* Ed25519 by RFC 8410's OID. */
static const CK_BYTE ed25519_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

typedef struct command {
	const char *name; /* "key gen" */
	const char *usage;
	int takes_uri; /* the operand (or --key) names an object */
	int (*run)(rh_tok_t *t, const rh_prov_opts_t *o);
} command_t;

/* --- key ids and labels */

int rh_key_id(EVP_PKEY *pub, unsigned char id[20])
{
	unsigned char value[1024];
	size_t len = 0;
	BIGNUM *n = NULL;
	if (EVP_PKEY_is_a(pub, "ED25519")) {
		len = sizeof(value);
		if (!EVP_PKEY_get_raw_public_key(pub, value, &len))
			return -1;
	} else if (EVP_PKEY_is_a(pub, "EC")) {
		if (!EVP_PKEY_get_octet_string_param(
			    pub, OSSL_PKEY_PARAM_PUB_KEY, value, sizeof(value),
			    &len))
			return -1;
	} else if (EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n) &&
		   BN_num_bytes(n) <= (int)sizeof(value)) {
		len = (size_t)BN_bn2bin(n, value);
	}
	BN_free(n);
	if (!len)
		return -1;
	SHA1(value, len, id);
	return 20;
}

int rh_parse_hex(const char *hex, unsigned char *out, size_t cap)
{
	size_t len = strlen(hex);
	if (len == 0 || len % 2 || len / 2 > cap)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned int byte;
		if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
			return -1;
		out[i] = (unsigned char)byte;
	}
	return (int)(len / 2);
}

int rh_label_taken(rh_tok_t *t, const char *label, CK_OBJECT_CLASS cls)
{
	rh_uri_t by_label = {.object = (char *)label};
	CK_OBJECT_HANDLE h;
	CK_ULONG n = 0;
	CK_RV rv = rh_tok_find(t, &by_label, cls, &h, 1, &n);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_FindObjects", rv);
	if (n == 0)
		return 0;
	fprintf(stderr,
		"%s: token \"%s\" already has a %s labelled \"%s\"; delete "
		"it first (remhsm object delete) or choose --label\n",
		t->who, t->label,
		cls == CKO_CERTIFICATE ? "certificate" : "key", label);
	return 1;
}

void rh_print_uri(rh_tok_t *t, const char *what, const char *label,
		  const unsigned char *id, size_t id_len, CK_OBJECT_CLASS cls)
{
	char *uri = rh_uri_format(t->label, (const unsigned char *)label,
				  strlen(label), id, id_len, cls);
	printf("%s: %s\n", what, uri ? uri : "?");
	free(uri);
}

FILE *rh_open_output(const char *who, const char *path)
{
	if (!path)
		return stdout;
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "%s: cannot write %s\n", who, path);
	return f;
}

/* --- key gen */

typedef struct key_type {
	const char *name;
	CK_KEY_TYPE type;
	const CK_BYTE *oid;
	size_t oid_len;
	CK_ULONG bits;
} key_type_t;

static const key_type_t key_types[] = {
	{"ec-p256", CKK_EC, p256_oid, sizeof(p256_oid), 0},
	{"ec-p384", CKK_EC, p384_oid, sizeof(p384_oid), 0},
	{"ec-p521", CKK_EC, p521_oid, sizeof(p521_oid), 0},
	{"ed25519", CKK_EC_EDWARDS, ed25519_oid, sizeof(ed25519_oid), 0},
	{"rsa-2048", CKK_RSA, NULL, 0, 2048},
	{"rsa-3072", CKK_RSA, NULL, 0, 3072},
	{"rsa-4096", CKK_RSA, NULL, 0, 4096},
	/* Secret keys: bits is the value's length in bytes. */
	{"aes-128", CKK_AES, NULL, 0, 16},
	{"aes-192", CKK_AES, NULL, 0, 24},
	{"aes-256", CKK_AES, NULL, 0, 32},
	{"hmac-sha256", CKK_GENERIC_SECRET, NULL, 0, 32},
	{"hmac-sha384", CKK_GENERIC_SECRET, NULL, 0, 48},
	{"hmac-sha512", CKK_GENERIC_SECRET, NULL, 0, 64}};

static int is_secret(const key_type_t *kt)
{
	return kt->type == CKK_AES || kt->type == CKK_GENERIC_SECRET;
}

static const key_type_t *key_type(const char *name)
{
	for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
		if (!strcmp(name, key_types[i].name))
			return &key_types[i];
	return NULL;
}

/* A signing pair, or with --transport an RSA pair that only wraps (the
 * public key) and unwraps (the private one) other keys' backups; the
 * private key leaves wrapped only with --extractable. */
static CK_RV generate(rh_tok_t *t, const key_type_t *kt,
		      const rh_prov_opts_t *o, const char *priv_label,
		      const char *pub_label, CK_OBJECT_HANDLE *pub,
		      CK_OBJECT_HANDLE *priv)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_BBOOL signs = o->transport ? CK_FALSE : CK_TRUE;
	CK_BBOOL wraps = o->transport ? CK_TRUE : CK_FALSE;
	CK_BBOOL extractable = o->extractable ? CK_TRUE : CK_FALSE;
	CK_BYTE exponent[] = {0x01, 0x00, 0x01};
	CK_ULONG bits = kt->bits;
	CK_ATTRIBUTE pt[6] = {
		{CKA_TOKEN, &yes, sizeof(yes)},
		{CKA_VERIFY, &signs, sizeof(signs)},
		{CKA_WRAP, &wraps, sizeof(wraps)},
		{CKA_LABEL, (void *)pub_label, strlen(pub_label)}};
	CK_ULONG np = 4;
	if (kt->oid) {
		pt[np++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)kt->oid,
					  kt->oid_len};
	} else {
		pt[np++] =
			(CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
		pt[np++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, exponent,
					  sizeof(exponent)};
	}
	CK_ATTRIBUTE st[] = {
		{CKA_TOKEN, &yes, sizeof(yes)},
		{CKA_PRIVATE, &yes, sizeof(yes)},
		{CKA_SENSITIVE, &yes, sizeof(yes)},
		{CKA_EXTRACTABLE, &extractable, sizeof(extractable)},
		{CKA_SIGN, &signs, sizeof(signs)},
		{CKA_UNWRAP, &wraps, sizeof(wraps)},
		{CKA_DECRYPT, &no, sizeof(no)},
		{CKA_LABEL, (void *)priv_label, strlen(priv_label)}};
	CK_MECHANISM mech = {kt->type == CKK_EC ? CKM_EC_KEY_PAIR_GEN
			     : kt->type == CKK_EC_EDWARDS
				     ? CKM_EC_EDWARDS_KEY_PAIR_GEN
				     : CKM_RSA_PKCS_KEY_PAIR_GEN,
			     NULL, 0};
	return t->p11->C_GenerateKeyPair(t->session, &mech, pt, np, st,
					 sizeof(st) / sizeof(st[0]), pub, priv);
}

static CK_RV set_id(rh_tok_t *t, CK_OBJECT_HANDLE h, const unsigned char *id,
		    size_t len)
{
	CK_ATTRIBUTE a = {CKA_ID, (void *)id, len};
	return t->p11->C_SetAttributeValue(t->session, h, &a, 1);
}

/* The pair's CKA_ID, --id or else the SHA-1 of the new public key, into
 * id and *id_len. 0, or 1 with the pair destroyed and a message printed.
 * (A one-byte --id is as good as any: 1 is no length here.) */
static int name_pair(rh_tok_t *t, const rh_prov_opts_t *o, CK_OBJECT_HANDLE pub,
		     CK_OBJECT_HANDLE priv, unsigned char id[RH_URI_MAX_ID],
		     size_t *id_len)
{
	int len = -1;
	const char *what = "reading the new public key";
	if (o->id_hex) {
		len = rh_parse_hex(o->id_hex, id, RH_URI_MAX_ID);
		what = "--id: not an even number of hex digits";
	} else {
		EVP_PKEY *key = rh_tok_public_key(t, pub);
		len = key ? rh_key_id(key, id) : -1;
		EVP_PKEY_free(key);
	}
	CK_RV rv = len > 0 ? set_id(t, pub, id, (size_t)len) : CKR_OK;
	if (rv == CKR_OK && len > 0)
		rv = set_id(t, priv, id, (size_t)len);
	if (rv == CKR_OK && len > 0) {
		*id_len = (size_t)len;
		return 0;
	}
	t->p11->C_DestroyObject(t->session, priv);
	t->p11->C_DestroyObject(t->session, pub);
	if (rv != CKR_OK)
		return rh_failed(t->who, "setting CKA_ID", rv);
	fprintf(stderr, "%s: %s; the new pair was destroyed\n", t->who, what);
	return 1;
}

/* A secret key on the token, private, sensitive and never extractable
 * (leaving wrapped with --extractable): AES keys encrypt, decrypt and make
 * CMACs, or with --transport only wrap and unwrap other keys; HMAC keys
 * only make MACs. */
static CK_RV generate_secret(rh_tok_t *t, const key_type_t *kt,
			     const rh_prov_opts_t *o, const char *label,
			     const unsigned char *id, size_t id_len,
			     CK_OBJECT_HANDLE *key)
{
	CK_BBOOL yes = CK_TRUE;
	CK_BBOOL extractable = o->extractable ? CK_TRUE : CK_FALSE;
	CK_BBOOL wraps = o->transport ? CK_TRUE : CK_FALSE;
	CK_BBOOL macs = o->transport ? CK_FALSE : CK_TRUE;
	CK_BBOOL cipher = kt->type == CKK_AES && !o->transport;
	CK_ULONG len = kt->bits;
	CK_ATTRIBUTE st[] = {
		{CKA_TOKEN, &yes, sizeof(yes)},
		{CKA_PRIVATE, &yes, sizeof(yes)},
		{CKA_SENSITIVE, &yes, sizeof(yes)},
		{CKA_EXTRACTABLE, &extractable, sizeof(extractable)},
		{CKA_SIGN, &macs, sizeof(macs)},
		{CKA_VERIFY, &macs, sizeof(macs)},
		{CKA_ENCRYPT, &cipher, sizeof(cipher)},
		{CKA_DECRYPT, &cipher, sizeof(cipher)},
		{CKA_WRAP, &wraps, sizeof(wraps)},
		{CKA_UNWRAP, &wraps, sizeof(wraps)},
		{CKA_VALUE_LEN, &len, sizeof(len)},
		{CKA_LABEL, (void *)label, strlen(label)},
		{CKA_ID, (void *)id, id_len}};
	CK_MECHANISM mech = {kt->type == CKK_AES ? CKM_AES_KEY_GEN
						 : CKM_GENERIC_SECRET_KEY_GEN,
			     NULL, 0};
	return t->p11->C_GenerateKey(t->session, &mech, st,
				     sizeof(st) / sizeof(st[0]), key);
}

/* A secret key's CKA_ID: --id, or eight random bytes (it has no public
 * key to name it by). */
static int secret_id(rh_tok_t *t, const rh_prov_opts_t *o,
		     unsigned char id[RH_URI_MAX_ID], size_t *id_len)
{
	if (o->id_hex) {
		int len = rh_parse_hex(o->id_hex, id, RH_URI_MAX_ID);
		if (len <= 0) {
			fprintf(stderr,
				"%s: --id: not an even number of hex "
				"digits\n",
				t->who);
			return 1;
		}
		*id_len = (size_t)len;
		return 0;
	}
	*id_len = 8;
	CK_RV rv = t->p11->C_GenerateRandom(t->session, id, 8);
	return rv == CKR_OK ? 0 : rh_failed(t->who, "C_GenerateRandom", rv);
}

static int key_gen_secret(rh_tok_t *t, const rh_prov_opts_t *o,
			  const key_type_t *kt)
{
	const char *label = o->label ? o->label : SECRET_LABEL;
	if (rh_label_taken(t, label, CKO_SECRET_KEY))
		return 1;
	unsigned char id[RH_URI_MAX_ID];
	size_t id_len = 0;
	if (secret_id(t, o, id, &id_len))
		return 1;
	CK_OBJECT_HANDLE key;
	CK_RV rv = generate_secret(t, kt, o, label, id, id_len, &key);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_GenerateKey", rv);
	rh_print_uri(t, "secret key", label, id, id_len, CKO_SECRET_KEY);
	return 0;
}

static int cmd_key_gen(rh_tok_t *t, const rh_prov_opts_t *o)
{
	const key_type_t *kt = key_type(o->type ? o->type : "ec-p256");
	if (is_secret(kt))
		return key_gen_secret(t, o, kt);
	const char *priv_label = o->label ? o->label : PRIV_LABEL;
	const char *pub_label = o->label ? o->label : PUB_LABEL;
	if (rh_label_taken(t, priv_label, CKO_PRIVATE_KEY) ||
	    rh_label_taken(t, pub_label, CKO_PUBLIC_KEY))
		return 1;
	CK_OBJECT_HANDLE pub, priv;
	CK_RV rv = generate(t, kt, o, priv_label, pub_label, &pub, &priv);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_GenerateKeyPair", rv);
	unsigned char id[RH_URI_MAX_ID];
	size_t id_len = 0;
	if (name_pair(t, o, pub, priv, id, &id_len))
		return 1;
	rh_print_uri(t, "private key", priv_label, id, id_len, CKO_PRIVATE_KEY);
	rh_print_uri(t, "public key", pub_label, id, id_len, CKO_PUBLIC_KEY);
	return 0;
}

/* --- key import */

static EVP_PKEY *read_private_key(const char *who, const char *path)
{
	BIO *in = BIO_new_file(path, "rb");
	if (!in) {
		fprintf(stderr, "%s: cannot read %s\n", who, path);
		return NULL;
	}
	/* An empty passphrase callback: an encrypted key is refused, never
	 * prompted for. */
	EVP_PKEY *key = PEM_read_bio_PrivateKey(in, NULL, NULL, (void *)"");
	if (!key) {
		(void)BIO_reset(in);
		key = d2i_PrivateKey_bio(in, NULL);
	}
	BIO_free(in);
	if (!key)
		fprintf(stderr,
			"%s: %s is not an unencrypted PEM or DER private key "
			"(decrypt it with openssl pkey first)\n",
			who, path);
	return key;
}

static int bn_bytes(EVP_PKEY *key, const char *name, CK_BYTE **out,
		    CK_ULONG *len)
{
	BIGNUM *bn = NULL;
	if (!EVP_PKEY_get_bn_param(key, name, &bn))
		return -1;
	*len = (CK_ULONG)BN_num_bytes(bn);
	*out = malloc(*len ? *len : 1);
	if (*out)
		BN_bn2bin(bn, *out);
	BN_clear_free(bn);
	return *out ? 0 : -1;
}

typedef struct import {
	CK_ATTRIBUTE priv[24];
	CK_ULONG n_priv;
	CK_ATTRIBUTE pub[12];
	CK_ULONG n_pub;
	CK_BYTE *owned[10]; /* cleansed and freed after the import */
	CK_ULONG owned_len[10];
	size_t n_owned;
	CK_BYTE point[3 + 133]; /* DER: 04, a length of one or two bytes */
} import_t;

static int add_bn(import_t *im, EVP_PKEY *key, const char *name,
		  CK_ATTRIBUTE_TYPE type, int also_public)
{
	CK_BYTE *v;
	CK_ULONG len;
	if (bn_bytes(key, name, &v, &len) < 0)
		return -1;
	im->owned[im->n_owned] = v;
	im->owned_len[im->n_owned++] = len;
	im->priv[im->n_priv++] = (CK_ATTRIBUTE){type, v, len};
	if (also_public)
		im->pub[im->n_pub++] = (CK_ATTRIBUTE){type, v, len};
	return 0;
}

static const CK_BYTE *curve_oid(EVP_PKEY *key, size_t *len)
{
	char group[64];
	if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
					    group, sizeof(group), NULL))
		return NULL;
	if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256")) {
		*len = sizeof(p256_oid);
		return p256_oid;
	}
	if (!strcmp(group, "secp384r1") || !strcmp(group, "P-384")) {
		*len = sizeof(p384_oid);
		return p384_oid;
	}
	if (!strcmp(group, "secp521r1") || !strcmp(group, "P-521")) {
		*len = sizeof(p521_oid);
		return p521_oid;
	}
	return NULL;
}

static int ec_material(import_t *im, EVP_PKEY *key)
{
	size_t oid_len = 0, point_len = 0;
	const CK_BYTE *oid = curve_oid(key, &oid_len);
	/* P-521's 133 bytes take DER's long length form. */
	size_t hdr = EVP_PKEY_get_bits(key) > 384 ? 3 : 2;
	if (!oid || !EVP_PKEY_get_octet_string_param(
			    key, OSSL_PKEY_PARAM_PUB_KEY, im->point + hdr,
			    sizeof(im->point) - hdr, &point_len))
		return -1;
	im->point[0] = 0x04;
	im->point[1] = 0x81;
	im->point[hdr - 1] = (CK_BYTE)point_len;
	CK_ATTRIBUTE params = {CKA_EC_PARAMS, (void *)oid, oid_len};
	im->priv[im->n_priv++] = params;
	im->pub[im->n_pub++] = params;
	im->pub[im->n_pub++] =
		(CK_ATTRIBUTE){CKA_EC_POINT, im->point, point_len + hdr};
	return add_bn(im, key, OSSL_PKEY_PARAM_PRIV_KEY, CKA_VALUE, 0);
}

/* An Ed25519 key's seed and its public key in its OCTET STRING. */
static int ed_material(import_t *im, EVP_PKEY *key)
{
	size_t pt_len = RH_ED25519_LEN, seed_len = RH_ED25519_LEN;
	CK_BYTE *seed = malloc(RH_ED25519_LEN);
	if (!seed)
		return -1;
	im->owned[im->n_owned] = seed;
	im->owned_len[im->n_owned++] = RH_ED25519_LEN;
	if (!EVP_PKEY_get_raw_public_key(key, im->point + 2, &pt_len) ||
	    !EVP_PKEY_get_raw_private_key(key, seed, &seed_len))
		return -1;
	im->point[0] = 0x04;
	im->point[1] = (CK_BYTE)pt_len;
	CK_ATTRIBUTE params = {CKA_EC_PARAMS, (void *)ed25519_oid,
			       sizeof(ed25519_oid)};
	im->priv[im->n_priv++] = params;
	im->pub[im->n_pub++] = params;
	im->pub[im->n_pub++] =
		(CK_ATTRIBUTE){CKA_EC_POINT, im->point, pt_len + 2};
	im->priv[im->n_priv++] = (CK_ATTRIBUTE){CKA_VALUE, seed, seed_len};
	return 0;
}

static int rsa_material(import_t *im, EVP_PKEY *key)
{
	return add_bn(im, key, OSSL_PKEY_PARAM_RSA_N, CKA_MODULUS, 1) ||
	       add_bn(im, key, OSSL_PKEY_PARAM_RSA_E, CKA_PUBLIC_EXPONENT, 1) ||
	       add_bn(im, key, OSSL_PKEY_PARAM_RSA_D, CKA_PRIVATE_EXPONENT,
		      0) ||
	       add_bn(im, key, OSSL_PKEY_PARAM_RSA_FACTOR1, CKA_PRIME_1, 0) ||
	       add_bn(im, key, OSSL_PKEY_PARAM_RSA_FACTOR2, CKA_PRIME_2, 0) ||
	       add_bn(im, key, OSSL_PKEY_PARAM_RSA_EXPONENT1, CKA_EXPONENT_1,
		      0) ||
	       add_bn(im, key, OSSL_PKEY_PARAM_RSA_EXPONENT2, CKA_EXPONENT_2,
		      0) ||
	       add_bn(im, key, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
		      CKA_COEFFICIENT, 0);
}

static void import_free(import_t *im)
{
	for (size_t i = 0; i < im->n_owned; i++) {
		OPENSSL_cleanse(im->owned[i], im->owned_len[i]);
		free(im->owned[i]);
	}
}

static CK_RV create_pair(rh_tok_t *t, import_t *im, CK_KEY_TYPE type,
			 const char *priv_label, const char *pub_label,
			 const unsigned char *id, size_t id_len)
{
	static const CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY,
				     pub_cls = CKO_PUBLIC_KEY;
	static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE common[] = {{CKA_KEY_TYPE, &type, sizeof(type)},
				 {CKA_TOKEN, (void *)&yes, 1},
				 {CKA_ID, (void *)id, id_len}};
	for (size_t i = 0; i < 3; i++) {
		im->priv[im->n_priv++] = common[i];
		im->pub[im->n_pub++] = common[i];
	}
	CK_ATTRIBUTE priv_only[] = {
		{CKA_CLASS, (void *)&priv_cls, sizeof(priv_cls)},
		{CKA_LABEL, (void *)priv_label, strlen(priv_label)},
		{CKA_PRIVATE, (void *)&yes, 1},
		{CKA_SENSITIVE, (void *)&yes, 1},
		{CKA_EXTRACTABLE, (void *)&no, 1},
		{CKA_SIGN, (void *)&yes, 1}};
	for (size_t i = 0; i < 6; i++)
		im->priv[im->n_priv++] = priv_only[i];
	im->pub[im->n_pub++] =
		(CK_ATTRIBUTE){CKA_CLASS, (void *)&pub_cls, sizeof(pub_cls)};
	im->pub[im->n_pub++] =
		(CK_ATTRIBUTE){CKA_LABEL, (void *)pub_label, strlen(pub_label)};
	CK_OBJECT_HANDLE priv, pub;
	CK_RV rv =
		t->p11->C_CreateObject(t->session, im->priv, im->n_priv, &priv);
	if (rv != CKR_OK)
		return rv;
	rv = t->p11->C_CreateObject(t->session, im->pub, im->n_pub, &pub);
	if (rv != CKR_OK)
		t->p11->C_DestroyObject(t->session, priv);
	return rv;
}

static int cmd_key_import(rh_tok_t *t, const rh_prov_opts_t *o)
{
	EVP_PKEY *key = read_private_key(t->who, o->arg);
	if (!key)
		return 1;
	const char *priv_label = o->label ? o->label : PRIV_LABEL;
	const char *pub_label = o->label ? o->label : PUB_LABEL;
	import_t im = {.n_priv = 0};
	unsigned char id[RH_URI_MAX_ID];
	int id_len = o->id_hex ? rh_parse_hex(o->id_hex, id, sizeof(id))
			       : rh_key_id(key, id);
	CK_KEY_TYPE type = EVP_PKEY_is_a(key, "EC")	   ? CKK_EC
			   : EVP_PKEY_is_a(key, "ED25519") ? CKK_EC_EDWARDS
							   : CKK_RSA;
	int rc = 1;
	if ((type == CKK_EC		 ? ec_material(&im, key)
	     : type == CKK_EC_EDWARDS	 ? ed_material(&im, key)
	     : EVP_PKEY_is_a(key, "RSA") ? rsa_material(&im, key)
					 : -1) < 0 ||
	    id_len <= 0) {
		fprintf(stderr,
			"%s: %s holds a key remhsm cannot take (EC P-256, "
			"P-384, P-521, Ed25519 or RSA only)\n",
			t->who, o->arg);
		goto out;
	}
	if (rh_label_taken(t, priv_label, CKO_PRIVATE_KEY) ||
	    rh_label_taken(t, pub_label, CKO_PUBLIC_KEY))
		goto out;
	CK_RV rv = create_pair(t, &im, type, priv_label, pub_label, id,
			       (size_t)id_len);
	if (rv != CKR_OK) {
		rc = rh_failed(t->who, "C_CreateObject", rv);
		goto out;
	}
	rh_print_uri(t, "private key", priv_label, id, (size_t)id_len,
		     CKO_PRIVATE_KEY);
	rh_print_uri(t, "public key", pub_label, id, (size_t)id_len,
		     CKO_PUBLIC_KEY);
	rc = 0;
out:
	import_free(&im);
	EVP_PKEY_free(key);
	return rc;
}

/* --- object list|show|delete */

static const char *key_type_name(rh_tok_t *t, CK_OBJECT_HANDLE h)
{
	CK_KEY_TYPE type = 0;
	if (rh_tok_ulong(t, h, CKA_KEY_TYPE, &type) != CKR_OK)
		return "";
	return type == CKK_EC		? "ec"
	       : type == CKK_EC_EDWARDS ? "ed25519"
	       : type == CKK_RSA	? "rsa"
					: "other";
}

static char *object_uri(rh_tok_t *t, CK_OBJECT_HANDLE h, CK_OBJECT_CLASS *cls)
{
	unsigned char *label = NULL, *id = NULL;
	CK_ULONG label_len = 0, id_len = 0;
	*cls = RH_ANY_CLASS;
	rh_tok_ulong(t, h, CKA_CLASS, cls);
	rh_tok_attr(t, h, CKA_LABEL, &label, &label_len);
	rh_tok_attr(t, h, CKA_ID, &id, &id_len);
	char *uri = rh_uri_format(t->label, label, label ? label_len : 0, id,
				  id ? id_len : 0, *cls);
	free(label);
	free(id);
	return uri;
}

static int cmd_object_list(rh_tok_t *t, const rh_prov_opts_t *o)
{
	(void)o;
	static CK_OBJECT_HANDLE found[MAX_LIST];
	CK_ULONG n = 0;
	CK_RV rv = rh_tok_find(t, NULL, RH_ANY_CLASS, found, MAX_LIST, &n);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_FindObjects", rv);
	for (CK_ULONG i = 0; i < n; i++) {
		CK_OBJECT_CLASS cls;
		char *uri = object_uri(t, found[i], &cls);
		const char *type = rh_uri_type_name(cls);
		printf("%-8s %-4s %s\n", type ? type : "other",
		       cls == CKO_PRIVATE_KEY || cls == CKO_PUBLIC_KEY
			       ? key_type_name(t, found[i])
			       : "",
		       uri ? uri : "?");
		free(uri);
	}
	return 0;
}

static void show_flag(rh_tok_t *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		      const char *name)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = {type, &v, sizeof(v)};
	if (t->p11->C_GetAttributeValue(t->session, h, &a, 1) == CKR_OK)
		printf("  %-12s %s\n", name, v ? "yes" : "no");
}

static int cmd_object_show(rh_tok_t *t, const rh_prov_opts_t *o)
{
	CK_OBJECT_HANDLE h;
	if (rh_tok_find_one(t, &o->uri, RH_ANY_CLASS, &h))
		return 1;
	CK_OBJECT_CLASS cls;
	char *name = object_uri(t, h, &cls);
	printf("%s\n", name ? name : "?");
	free(name);
	if (cls == CKO_PRIVATE_KEY || cls == CKO_PUBLIC_KEY) {
		EVP_PKEY *key = rh_tok_public_key(t, h);
		if (key)
			printf("  %-12s %s, %d bits\n", "key",
			       key_type_name(t, h), EVP_PKEY_get_bits(key));
		EVP_PKEY_free(key);
	}
	static const struct {
		CK_ATTRIBUTE_TYPE type;
		const char *name;
	} flags[] = {
		{CKA_TOKEN, "token"},	      {CKA_PRIVATE, "private"},
		{CKA_SENSITIVE, "sensitive"}, {CKA_EXTRACTABLE, "extractable"},
		{CKA_LOCAL, "local"},	      {CKA_SIGN, "sign"},
		{CKA_VERIFY, "verify"}};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		show_flag(t, h, flags[i].type, flags[i].name);
	return 0;
}

static int cmd_object_delete(rh_tok_t *t, const rh_prov_opts_t *o)
{
	CK_OBJECT_HANDLE h;
	if (rh_tok_find_one(t, &o->uri, RH_ANY_CLASS, &h))
		return 1;
	CK_OBJECT_CLASS cls;
	char *name = object_uri(t, h, &cls);
	CK_RV rv = t->p11->C_DestroyObject(t->session, h);
	if (rv == CKR_OK)
		printf("deleted %s\n", name ? name : "the object");
	free(name);
	return rv == CKR_OK ? 0 : rh_failed(t->who, "C_DestroyObject", rv);
}

/* --- dispatch */

static const command_t commands[] = {
	{"key gen",
	 "remhsm key gen [--type "
	 "ec-p256|ec-p384|ec-p521|ed25519|rsa-2048|rsa-3072|rsa-4096|"
	 "aes-128|aes-192|aes-256|hmac-sha256|hmac-sha384|hmac-sha512] "
	 "[--label L] [--id HEX] [--extractable] [--transport]\n"
	 "  Generates a key pair inside remhsm (default ec-p256, labels "
	 "\"" PRIV_LABEL "\"\n  and \"" PUB_LABEL
	 "\", CKA_ID the SHA-1 of the public key), or a secret key\n"
	 "  (label \"" SECRET_LABEL "\", a random CKA_ID); prints the "
	 "URIs. --extractable\n  lets it leave wrapped (key wrap); "
	 "--transport makes an RSA pair or an AES\n  key that only wraps and "
	 "unwraps backups.",
	 0, cmd_key_gen},
	{"key wrap",
	 "remhsm key wrap URI --wrapping-key KEY|FILE.pem [-o FILE]\n"
	 "  Writes a backup of an extractable private or secret key, wrapped "
	 "inside\n  remhsm: with an AES key this token and the restoring one "
	 "hold (AES-KWP),\n  or for the RSA transport key (key gen "
	 "--transport) "
	 "of the token that\n  restores it, given as its public key.",
	 1, rh_cmd_key_wrap},
	{"key unwrap",
	 "remhsm key unwrap FILE --wrapping-key KEY [--label L] [--id HEX]\n"
	 "  Restores a backup as a sensitive token key, with the AES key or "
	 "the RSA\n  transport key it was wrapped for.",
	 0, rh_cmd_key_unwrap},
	{"key import",
	 "remhsm key import FILE [--label L] [--id HEX]\n"
	 "  Imports an unencrypted PEM (PKCS#8 or traditional) or DER private "
	 "key\n  and its public key; the private key becomes sensitive and "
	 "non-extractable.",
	 0, cmd_key_import},
	{"csr",
	 "remhsm csr --key URI --subject \"/CN=…\" [--san DNS:name|IP:addr|"
	 "URI:uri]... [-o FILE]\n"
	 "  Writes a PKCS#10 request (PEM) signed inside remhsm by the key.",
	 1, rh_cmd_csr},
	{"cert import",
	 "remhsm cert import FILE [--label L]\n"
	 "  Stores a PEM or DER certificate (default label \"Device Cert\") "
	 "with the\n  CKA_ID of the token's key it certifies; refused when no "
	 "key matches.",
	 0, rh_cmd_cert_import},
	{"pubkey export",
	 "remhsm pubkey export URI [-o FILE]\n"
	 "  Writes the public key of a key pair as PEM SubjectPublicKeyInfo.",
	 1, rh_cmd_pubkey_export},
	{"object list",
	 "remhsm object list\n  Lists the objects you can see, "
	 "with their URIs.",
	 0, cmd_object_list},
	{"object show",
	 "remhsm object show URI\n  Shows one object's "
	 "attributes (never secret values).",
	 1, cmd_object_show},
	{"object delete",
	 "remhsm object delete URI\n  Destroys the one object "
	 "the URI names.",
	 1, cmd_object_delete},
};

static void usage(FILE *out, const command_t *only)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!only || only == &commands[i])
			fprintf(out, "usage: %s\n", commands[i].usage);
	fprintf(out,
		"Common options:\n"
		"  --token LABEL  the token (default: the only one you can "
		"see)\n"
		"  --pin PIN      user PIN (else REMHSM_PIN, else a prompt "
		"on the terminal)\n"
		"  --module PATH  PKCS#11 module (default: the installed "
		"remhsm module)\n"
		"A URI is a pkcs11: URI (RFC 7512: token, object, id, type, "
		"serial,\n?pin-value) or a plain label. Exit codes: 0 done, 1 "
		"failed (the token\nis unchanged), 2 bad usage.\n");
}

static int parse(int argc, char **argv, rh_prov_opts_t *o)
{
	static const struct option longopts[] = {
		{"module", required_argument, NULL, 'm'},
		{"token", required_argument, NULL, 't'},
		{"pin", required_argument, NULL, 'p'},
		{"type", required_argument, NULL, 'y'},
		{"label", required_argument, NULL, 'l'},
		{"id", required_argument, NULL, 'i'},
		{"key", required_argument, NULL, 'k'},
		{"subject", required_argument, NULL, 's'},
		{"san", required_argument, NULL, 'a'},
		{"output", required_argument, NULL, 'o'},
		{"wrapping-key", required_argument, NULL, 'w'},
		{"transport", no_argument, NULL, 'T'},
		{"extractable", no_argument, NULL, 'x'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			o->tok.module = optarg;
			break;
		case 't':
			o->tok.token = optarg;
			break;
		case 'p':
			o->tok.pin = optarg;
			break;
		case 'y':
			o->type = optarg;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'i':
			o->id_hex = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 's':
			o->subject = optarg;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'w':
			o->wrapping_key = optarg;
			break;
		case 'T':
			o->transport = 1;
			break;
		case 'x':
			o->extractable = 1;
			break;
		case 'a':
			if (o->n_sans == RH_MAX_SANS)
				return 2;
			o->sans[o->n_sans++] = optarg;
			break;
		case 'h':
			return 1;
		default:
			return 2;
		}
	}
	return 0;
}

/* The command the words name ("key gen"), consuming them from argv. */
static const command_t *lookup(int *argc, char ***argv)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const char *name = commands[i].name;
		const char *space = strchr(name, ' ');
		size_t first = space ? (size_t)(space - name) : strlen(name);
		if (strlen((*argv)[0]) != first ||
		    strncmp((*argv)[0], name, first))
			continue;
		if (!space)
			return &commands[i];
		if (*argc > 1 && !strcmp((*argv)[1], space + 1)) {
			(*argc)--;
			(*argv)++;
			return &commands[i];
		}
	}
	return NULL;
}

/* Options and operands, checked before anything touches the token. */
static int check_usage(const command_t *cmd, const rh_prov_opts_t *o,
		       int operands)
{
	int wants_operand = strcmp(cmd->name, "key gen") &&
			    strcmp(cmd->name, "csr") &&
			    strcmp(cmd->name, "object list");
	if (operands != wants_operand)
		return 2;
	if (o->type && !key_type(o->type))
		return 2;
	if (o->label && (!*o->label || strlen(o->label) > 255))
		return 2;
	unsigned char id[RH_URI_MAX_ID];
	if (o->id_hex && rh_parse_hex(o->id_hex, id, sizeof(id)) < 0)
		return 2;
	if (!strcmp(cmd->name, "csr") && (!o->key || !o->subject))
		return 2;
	int wraps = !strncmp(cmd->name, "key wrap", 8) ||
		    !strcmp(cmd->name, "key unwrap");
	if (wraps != (o->wrapping_key != NULL))
		return 2;
	int gen = !strcmp(cmd->name, "key gen");
	if ((o->transport || o->extractable) && !gen)
		return 2;
	/* A transport key is RSA (its public key travels) or AES. */
	if (o->transport && (!o->type || (strncmp(o->type, "rsa-", 4) &&
					  strncmp(o->type, "aes-", 4))))
		return 2;
	return 0;
}

int rh_provision_main(int argc, char **argv)
{
	const command_t *cmd = lookup(&argc, &argv);
	if (!cmd) {
		int help = argc > 1 && (!strcmp(argv[1], "--help") ||
					!strcmp(argv[1], "-h"));
		usage(help ? stdout : stderr, NULL);
		return help ? 0 : 2;
	}
	rh_prov_opts_t o = {.tok = {.module = rh_default_module()}};
	int r = parse(argc, argv, &o);
	if (r == 1) {
		usage(stdout, cmd);
		return 0;
	}
	if (r == 0 && optind < argc)
		o.arg = argv[optind];
	if (r || check_usage(cmd, &o, argc - optind)) {
		usage(stderr, cmd);
		return 2;
	}
	char who[64];
	snprintf(who, sizeof(who), "remhsm %s", cmd->name);
	const char *name = o.key ? o.key : o.arg;
	char err[256];
	if (cmd->takes_uri &&
	    rh_uri_parse(name, &o.uri, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s: %s\n", who, name, err);
		rh_uri_free(&o.uri);
		return 2;
	}
	o.tok.login = 1;
	rh_tok_t t;
	int rc = rh_tok_open(&t, who, &o.tok, cmd->takes_uri ? &o.uri : NULL);
	if (rc == 0)
		rc = cmd->run(&t, &o);
	rh_tok_close(&t);
	rh_uri_free(&o.uri);
	return rc;
}
