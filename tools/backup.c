/*
 * remhsm key wrap|unwrap: a key's backup, wrapped inside one token and
 * restored inside another (on this remhsm or another one); the key's value
 * is never seen here.
 *
 * The wrapping key is an AES key both tokens hold (AES-KWP, RFC 5649), or
 * the other token's RSA transport key: its public key (a PEM file) goes
 * into this token as a session object, a fresh AES key made here wraps
 * the key, and RSA-OAEP (SHA-256) wraps that AES key for the other side,
 * which unwraps them in turn with its private key. The fresh key is as
 * strong as the RSA key (NIST SP 800-57: AES-128 for RSA-3072), and the
 * token refuses to wrap a key under a weaker one.
 *
 * The backup is text: what the key is, its label, id and usage, and the
 * wraps in hex.
 */
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "p11.h"
#include "provision.h"
#include "rh_pkcs11.h"

#define MAGIC "remhsm key backup 1"
#define MAX_WRAPPED 16384 /* an RSA-8192 PKCS#8 and KWP's padding */
#define MAX_ENVELOPE 1024 /* RSA-8192 */
#define MAX_LABEL 255

typedef struct backup {
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE type;
	unsigned char label[MAX_LABEL];
	size_t label_len;
	unsigned char id[RH_URI_MAX_ID];
	size_t id_len;
	unsigned usage; /* bits of usages[] */
	unsigned char envelope[MAX_ENVELOPE];
	size_t envelope_len;
	unsigned char wrapped[MAX_WRAPPED];
	size_t wrapped_len;
} backup_t;

/* The usage flags a backup keeps, and whether private keys have them
 * (secret keys have all). */
static const struct {
	CK_ATTRIBUTE_TYPE type;
	const char *name;
	int on_private;
} usages[] = {{CKA_SIGN, "sign", 1},	   {CKA_VERIFY, "verify", 0},
	      {CKA_ENCRYPT, "encrypt", 0}, {CKA_DECRYPT, "decrypt", 1},
	      {CKA_DERIVE, "derive", 1},   {CKA_WRAP, "wrap", 0},
	      {CKA_UNWRAP, "unwrap", 1},   {CKA_EXTRACTABLE, "extractable", 1}};
#define N_USAGES (sizeof(usages) / sizeof(usages[0]))

static const struct {
	CK_KEY_TYPE type;
	const char *name;
} types[] = {{CKK_EC, "ec"},
	     {CKK_EC_EDWARDS, "ed25519"},
	     {CKK_RSA, "rsa"},
	     {CKK_AES, "aes"},
	     {CKK_GENERIC_SECRET, "generic"}};

static const char *type_name(CK_KEY_TYPE type)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].type == type)
			return types[i].name;
	return NULL;
}

static int type_of(const char *name, CK_KEY_TYPE *type)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(types[i].name, name)) {
			*type = types[i].type;
			return 0;
		}
	return -1;
}

static const CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256,
					     CKZ_DATA_SPECIFIED, NULL, 0};

/* --- key wrap */

/* What the backup says of the key: its class, type, label, id, usage. */
static int describe(rh_tok_t *t, CK_OBJECT_HANDLE key, backup_t *b)
{
	if (rh_tok_ulong(t, key, CKA_CLASS, &b->cls) != CKR_OK ||
	    rh_tok_ulong(t, key, CKA_KEY_TYPE, &b->type) != CKR_OK ||
	    (b->cls != CKO_PRIVATE_KEY && b->cls != CKO_SECRET_KEY) ||
	    !type_name(b->type)) {
		fprintf(stderr,
			"%s: only private and secret keys are wrapped "
			"(EC, Ed25519, RSA, AES, generic secret)\n",
			t->who);
		return 1;
	}
	CK_ATTRIBUTE a[] = {{CKA_LABEL, b->label, sizeof(b->label)},
			    {CKA_ID, b->id, sizeof(b->id)}};
	if (t->p11->C_GetAttributeValue(t->session, key, a, 2) != CKR_OK) {
		fprintf(stderr, "%s: cannot read the key's label and id\n",
			t->who);
		return 1;
	}
	b->label_len = a[0].ulValueLen;
	b->id_len = a[1].ulValueLen;
	for (size_t i = 0; i < N_USAGES; i++) {
		CK_BBOOL v = CK_FALSE;
		CK_ATTRIBUTE u = {usages[i].type, &v, sizeof(v)};
		if (t->p11->C_GetAttributeValue(t->session, key, &u, 1) ==
			    CKR_OK &&
		    v)
			b->usage |= 1u << i;
	}
	return 0;
}

static CK_RV wrap_with(rh_tok_t *t, CK_MECHANISM *m, CK_OBJECT_HANDLE wrapping,
		       CK_OBJECT_HANDLE key, unsigned char *out, size_t cap,
		       size_t *len)
{
	CK_ULONG n = (CK_ULONG)cap;
	CK_RV rv = t->p11->C_WrapKey(t->session, m, wrapping, key, out, &n);
	*len = rv == CKR_OK ? (size_t)n : 0;
	return rv;
}

/* An RSA public key as a session object that wraps, and nothing else. */
static CK_RV rsa_wrapping_object(rh_tok_t *t, EVP_PKEY *pub,
				 CK_OBJECT_HANDLE *h)
{
	BIGNUM *n = NULL, *e = NULL;
	unsigned char mod[1024], exp[16];
	int n_len = -1, e_len = -1;
	if (EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n) &&
	    EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &e) &&
	    BN_num_bytes(n) <= (int)sizeof(mod) &&
	    BN_num_bytes(e) <= (int)sizeof(exp)) {
		n_len = BN_bn2bin(n, mod);
		e_len = BN_bn2bin(e, exp);
	}
	BN_free(n);
	BN_free(e);
	if (n_len <= 0 || e_len <= 0)
		return CKR_KEY_SIZE_RANGE;
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE type = CKK_RSA;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE a[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_TOKEN, &no, sizeof(no)},
			    {CKA_WRAP, &yes, sizeof(yes)},
			    {CKA_VERIFY, &no, sizeof(no)},
			    {CKA_MODULUS, mod, (CK_ULONG)n_len},
			    {CKA_PUBLIC_EXPONENT, exp, (CK_ULONG)e_len}};
	return t->p11->C_CreateObject(t->session, a, sizeof(a) / sizeof(a[0]),
				      h);
}

/* A fresh session AES key, as strong as an RSA key of bits, that may be
 * wrapped and wraps, and does nothing else. */
static CK_RV fresh_aes(rh_tok_t *t, int bits, CK_OBJECT_HANDLE *h)
{
	CK_ULONG len = bits >= 15360 ? 32 : bits >= 7680 ? 24 : 16;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE a[] = {{CKA_TOKEN, &no, sizeof(no)},
			    {CKA_VALUE_LEN, &len, sizeof(len)},
			    {CKA_WRAP, &yes, sizeof(yes)},
			    {CKA_EXTRACTABLE, &yes, sizeof(yes)},
			    {CKA_ENCRYPT, &no, sizeof(no)},
			    {CKA_DECRYPT, &no, sizeof(no)},
			    {CKA_SIGN, &no, sizeof(no)},
			    {CKA_VERIFY, &no, sizeof(no)}};
	CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
	return t->p11->C_GenerateKey(t->session, &gen, a,
				     sizeof(a) / sizeof(a[0]), h);
}

static EVP_PKEY *read_rsa_public(const char *who, const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *key = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (key && EVP_PKEY_is_a(key, "RSA"))
		return key;
	EVP_PKEY_free(key);
	fprintf(stderr, "%s: %s is no PEM RSA public key\n", who, path);
	return NULL;
}

/* The key wrapped for the holder of the RSA public key in path. */
static CK_RV wrap_for_rsa(rh_tok_t *t, const char *path, CK_OBJECT_HANDLE key,
			  backup_t *b)
{
	EVP_PKEY *pub = read_rsa_public(t->who, path);
	if (!pub)
		return CKR_ARGUMENTS_BAD;
	CK_OBJECT_HANDLE rsa = CK_INVALID_HANDLE, aes = CK_INVALID_HANDLE;
	CK_RV rv = rsa_wrapping_object(t, pub, &rsa);
	if (rv == CKR_OK)
		rv = fresh_aes(t, EVP_PKEY_get_bits(pub), &aes);
	CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, (void *)&oaep, sizeof(oaep)};
	if (rv == CKR_OK)
		rv = wrap_with(t, &m, rsa, aes, b->envelope,
			       sizeof(b->envelope), &b->envelope_len);
	CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
	if (rv == CKR_OK)
		rv = wrap_with(t, &kwp, aes, key, b->wrapped,
			       sizeof(b->wrapped), &b->wrapped_len);
	if (aes != CK_INVALID_HANDLE)
		t->p11->C_DestroyObject(t->session, aes);
	if (rsa != CK_INVALID_HANDLE)
		t->p11->C_DestroyObject(t->session, rsa);
	EVP_PKEY_free(pub);
	return rv;
}

/* The AES key the URI (or label) names on this token. */
static int find_kek(rh_tok_t *t, const char *name, CK_OBJECT_CLASS cls,
		    CK_OBJECT_HANDLE *h)
{
	rh_uri_t uri = {0};
	char err[256];
	if (rh_uri_parse(name, &uri, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: --wrapping-key %s: %s\n", t->who, name,
			err);
		return 1;
	}
	int rc = rh_tok_find_one(t, &uri, cls, h);
	rh_uri_free(&uri);
	return rc;
}

static void put_hex(FILE *f, const char *name, const unsigned char *v,
		    size_t len)
{
	if (!len)
		return;
	fprintf(f, "%s ", name);
	for (size_t i = 0; i < len; i++)
		fprintf(f, "%02x", v[i]);
	fputc('\n', f);
}

static int write_backup(const char *who, const char *path, const backup_t *b)
{
	FILE *f = rh_open_output(who, path);
	if (!f)
		return 1;
	fprintf(f, "%s\nclass %s\nkey-type %s\n", MAGIC,
		b->cls == CKO_PRIVATE_KEY ? "private-key" : "secret-key",
		type_name(b->type));
	put_hex(f, "label", b->label, b->label_len);
	put_hex(f, "id", b->id, b->id_len);
	fputs("usage", f);
	for (size_t i = 0; i < N_USAGES; i++)
		if (b->usage & (1u << i))
			fprintf(f, " %s", usages[i].name);
	fputc('\n', f);
	put_hex(f, "envelope", b->envelope, b->envelope_len);
	put_hex(f, "wrapped", b->wrapped, b->wrapped_len);
	int bad = ferror(f);
	if ((f != stdout && fclose(f) != 0) || bad) {
		fprintf(stderr, "%s: cannot write the backup\n", who);
		return 1;
	}
	return 0;
}

/* A PEM file names an RSA public key; anything else a key on the token. */
static int names_file(const char *name)
{
	return strncmp(name, "pkcs11:", 7) != 0 && access(name, R_OK) == 0;
}

int rh_cmd_key_wrap(rh_tok_t *t, const rh_prov_opts_t *o)
{
	static backup_t b;
	memset(&b, 0, sizeof(b));
	CK_OBJECT_HANDLE key, kek;
	if (rh_tok_find_one(t, &o->uri, RH_ANY_CLASS, &key) ||
	    describe(t, key, &b))
		return 1;
	CK_RV rv;
	if (names_file(o->wrapping_key)) {
		rv = wrap_for_rsa(t, o->wrapping_key, key, &b);
		if (rv == CKR_ARGUMENTS_BAD)
			return 1;
	} else {
		if (find_kek(t, o->wrapping_key, CKO_SECRET_KEY, &kek))
			return 1;
		CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
		rv = wrap_with(t, &kwp, kek, key, b.wrapped, sizeof(b.wrapped),
			       &b.wrapped_len);
	}
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_WrapKey", rv);
	return write_backup(t->who, o->output, &b);
}

/* --- key unwrap */

static int take_hex(const char *v, unsigned char *out, size_t cap, size_t *len)
{
	int n = rh_parse_hex(v, out, cap);
	if (n <= 0)
		return -1;
	*len = (size_t)n;
	return 0;
}

static int take_usage(char *v, unsigned *usage)
{
	for (char *w = strtok(v, " "); w; w = strtok(NULL, " ")) {
		size_t i = 0;
		while (i < N_USAGES && strcmp(usages[i].name, w))
			i++;
		if (i == N_USAGES)
			return -1;
		*usage |= 1u << i;
	}
	return 0;
}

/* One "name value" line into b. */
static int take_line(char *line, backup_t *b)
{
	char *v = strchr(line, ' ');
	if (!v)
		v = line + strlen(line);
	else
		*v++ = '\0';
	if (!strcmp(line, "class")) {
		b->cls = !strcmp(v, "private-key")  ? CKO_PRIVATE_KEY
			 : !strcmp(v, "secret-key") ? CKO_SECRET_KEY
						    : CKO_DATA;
		return b->cls == CKO_DATA ? -1 : 0;
	}
	if (!strcmp(line, "key-type"))
		return type_of(v, &b->type);
	if (!strcmp(line, "label"))
		return take_hex(v, b->label, sizeof(b->label), &b->label_len);
	if (!strcmp(line, "id"))
		return take_hex(v, b->id, sizeof(b->id), &b->id_len);
	if (!strcmp(line, "usage"))
		return take_usage(v, &b->usage);
	if (!strcmp(line, "envelope"))
		return take_hex(v, b->envelope, sizeof(b->envelope),
				&b->envelope_len);
	if (!strcmp(line, "wrapped"))
		return take_hex(v, b->wrapped, sizeof(b->wrapped),
				&b->wrapped_len);
	return -1;
}

static int read_backup(const char *who, const char *path, backup_t *b)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: cannot read %s\n", who, path);
		return 1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lines = 0, bad = 0;
	b->cls = CKO_DATA;
	b->type = CKK_VENDOR_DEFINED;
	while (!bad && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		bad = lines++ ? take_line(line, b) < 0 : strcmp(line, MAGIC);
	}
	free(line);
	fclose(f);
	if (bad || b->cls == CKO_DATA || b->type == CKK_VENDOR_DEFINED ||
	    !b->wrapped_len) {
		fprintf(stderr, "%s: %s is no remhsm key backup\n", who, path);
		return 1;
	}
	return 0;
}

/* The restored key's template: the backup's kind, label, id and usage
 * (the flags its class has), a private and sensitive token object. */
static CK_ULONG restore_template(const backup_t *b, const rh_prov_opts_t *o,
				 const unsigned char *id, size_t id_len,
				 CK_ATTRIBUTE *a, CK_BBOOL *flags)
{
	static const CK_BBOOL yes = CK_TRUE;
	CK_ULONG n = 0;
	a[n++] = (CK_ATTRIBUTE){CKA_CLASS, (void *)&b->cls, sizeof(b->cls)};
	a[n++] =
		(CK_ATTRIBUTE){CKA_KEY_TYPE, (void *)&b->type, sizeof(b->type)};
	a[n++] = (CK_ATTRIBUTE){CKA_TOKEN, (void *)&yes, 1};
	a[n++] = (CK_ATTRIBUTE){CKA_PRIVATE, (void *)&yes, 1};
	a[n++] = (CK_ATTRIBUTE){CKA_SENSITIVE, (void *)&yes, 1};
	if (o->label)
		a[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)o->label,
					strlen(o->label)};
	else if (b->label_len)
		a[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)b->label,
					b->label_len};
	if (id_len)
		a[n++] = (CK_ATTRIBUTE){CKA_ID, (void *)id, id_len};
	for (size_t i = 0; i < N_USAGES; i++) {
		if (b->cls == CKO_PRIVATE_KEY && !usages[i].on_private)
			continue;
		flags[i] = b->usage & (1u << i) ? CK_TRUE : CK_FALSE;
		a[n++] = (CK_ATTRIBUTE){usages[i].type, &flags[i], 1};
	}
	return n;
}

/* The AES key of the envelope, opened with the RSA transport key. */
static CK_RV open_envelope(rh_tok_t *t, CK_OBJECT_HANDLE rsa, const backup_t *b,
			   CK_OBJECT_HANDLE *aes)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_AES;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE a[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_TOKEN, &no, sizeof(no)},
			    {CKA_UNWRAP, &yes, sizeof(yes)}};
	CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, (void *)&oaep, sizeof(oaep)};
	return t->p11->C_UnwrapKey(t->session, &m, rsa,
				   (CK_BYTE_PTR)b->envelope,
				   (CK_ULONG)b->envelope_len, a, 4, aes);
}

static CK_RV restore(rh_tok_t *t, CK_OBJECT_HANDLE wrapping, const backup_t *b,
		     CK_ATTRIBUTE *a, CK_ULONG n, CK_OBJECT_HANDLE *key)
{
	CK_OBJECT_HANDLE aes = CK_INVALID_HANDLE;
	CK_RV rv =
		b->envelope_len ? open_envelope(t, wrapping, b, &aes) : CKR_OK;
	CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
	if (rv == CKR_OK)
		rv = t->p11->C_UnwrapKey(t->session, &kwp,
					 b->envelope_len ? aes : wrapping,
					 (CK_BYTE_PTR)b->wrapped,
					 (CK_ULONG)b->wrapped_len, a, n, key);
	if (aes != CK_INVALID_HANDLE)
		t->p11->C_DestroyObject(t->session, aes);
	return rv;
}

int rh_cmd_key_unwrap(rh_tok_t *t, const rh_prov_opts_t *o)
{
	static backup_t b;
	memset(&b, 0, sizeof(b));
	if (read_backup(t->who, o->arg, &b))
		return 1;
	CK_OBJECT_HANDLE wrapping, key;
	if (find_kek(t, o->wrapping_key,
		     b.envelope_len ? CKO_PRIVATE_KEY : CKO_SECRET_KEY,
		     &wrapping))
		return 1;
	unsigned char id[RH_URI_MAX_ID];
	size_t id_len = b.id_len;
	memcpy(id, b.id, b.id_len);
	if (o->id_hex && take_hex(o->id_hex, id, sizeof(id), &id_len) < 0)
		return 2;
	char label[MAX_LABEL + 1];
	snprintf(label, sizeof(label), "%.*s", (int)b.label_len, b.label);
	if (o->label)
		snprintf(label, sizeof(label), "%s", o->label);
	if (*label && rh_label_taken(t, label, b.cls))
		return 1;
	CK_ATTRIBUTE a[8 + N_USAGES];
	CK_BBOOL flags[N_USAGES];
	CK_ULONG n = restore_template(&b, o, id, id_len, a, flags);
	CK_RV rv = restore(t, wrapping, &b, a, n, &key);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_UnwrapKey", rv);
	rh_print_uri(t, b.cls == CKO_PRIVATE_KEY ? "private key" : "secret key",
		     label, id, id_len, b.cls);
	return 0;
}
