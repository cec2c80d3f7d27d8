#include "tokobj.h"

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "p11.h"

#define MAX_FOUND 1024

/* The token the command names: --token, else the URI's, else the only. */
static int pick_token(rh_tok_t *t, const rh_tok_opts_t *o, const rh_uri_t *uri)
{
	const char *label = o->token ? o->token : uri ? uri->token : NULL;
	if (rh_find_token(t->p11, t->who, label, &t->slot))
		return 1;
	CK_TOKEN_INFO info;
	CK_RV rv = t->p11->C_GetTokenInfo(t->slot, &info);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_GetTokenInfo", rv);
	size_t len = rh_trimmed_len(info.label, 32);
	memcpy(t->label, info.label, len);
	t->label[len] = '\0';
	if (uri && uri->serial &&
	    (strlen(uri->serial) != rh_trimmed_len(info.serialNumber, 16) ||
	     memcmp(uri->serial, info.serialNumber, strlen(uri->serial)))) {
		fprintf(stderr,
			"%s: token \"%s\" has another serial number "
			"than the URI's\n",
			t->who, t->label);
		return 1;
	}
	return 0;
}

static int login(rh_tok_t *t, const rh_tok_opts_t *o, const rh_uri_t *uri)
{
	char *pin = rh_pin_from(o->pin ? o->pin
				: uri  ? uri->pin_value
				       : NULL,
				"REMHSM_PIN", "user PIN");
	if (!pin) {
		fprintf(stderr,
			"%s: no user PIN (--pin, REMHSM_PIN, or a "
			"terminal to ask on)\n",
			t->who);
		return 2;
	}
	CK_RV rv = t->p11->C_Login(t->session, CKU_USER, (CK_UTF8CHAR_PTR)pin,
				   strlen(pin));
	rh_pin_free(pin);
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
		return 0;
	return rh_failed(t->who, "C_Login", rv);
}

int rh_tok_open(rh_tok_t *t, const char *who, const rh_tok_opts_t *o,
		const rh_uri_t *uri)
{
	memset(t, 0, sizeof(*t));
	t->who = who;
	t->p11 = rh_p11_load(o->module, &t->module);
	if (!t->p11)
		return 1;
	int rc = pick_token(t, o, uri);
	if (rc)
		return rc;
	CK_RV rv = t->p11->C_OpenSession(t->slot,
					 CKF_SERIAL_SESSION | CKF_RW_SESSION,
					 NULL, NULL, &t->session);
	if (rv != CKR_OK)
		return rh_failed(who, "C_OpenSession", rv);
	return o->login ? login(t, o, uri) : 0;
}

void rh_tok_close(rh_tok_t *t)
{
	if (t->p11)
		t->p11->C_Finalize(NULL);
	t->p11 = NULL;
}

CK_RV rh_tok_find(rh_tok_t *t, const rh_uri_t *uri, CK_OBJECT_CLASS cls,
		  CK_OBJECT_HANDLE *out, CK_ULONG cap, CK_ULONG *n)
{
	CK_ATTRIBUTE tmpl[3];
	CK_ULONG count = 0;
	CK_OBJECT_CLASS want = uri && uri->has_class ? uri->cls : cls;
	if (uri && uri->object)
		tmpl[count++] = (CK_ATTRIBUTE){CKA_LABEL, uri->object,
					       strlen(uri->object)};
	if (uri && uri->has_id)
		tmpl[count++] =
			(CK_ATTRIBUTE){CKA_ID, (void *)uri->id, uri->id_len};
	if (want != RH_ANY_CLASS)
		tmpl[count++] = (CK_ATTRIBUTE){CKA_CLASS, &want, sizeof(want)};
	*n = 0;
	/* A URI whose type contradicts what the command needs finds nothing. */
	if (uri && uri->has_class && cls != RH_ANY_CLASS && uri->cls != cls)
		return CKR_OK;
	CK_RV rv = t->p11->C_FindObjectsInit(t->session, tmpl, count);
	if (rv != CKR_OK)
		return rv;
	rv = t->p11->C_FindObjects(t->session, out, cap, n);
	CK_RV end = t->p11->C_FindObjectsFinal(t->session);
	return rv != CKR_OK ? rv : end;
}

int rh_tok_find_one(rh_tok_t *t, const rh_uri_t *uri, CK_OBJECT_CLASS cls,
		    CK_OBJECT_HANDLE *h)
{
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	CK_RV rv = rh_tok_find(t, uri, cls, found, 2, &n);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_FindObjects", rv);
	if (n == 1) {
		*h = found[0];
		return 0;
	}
	const char *what = cls == CKO_PRIVATE_KEY   ? "private key"
			   : cls == CKO_CERTIFICATE ? "certificate"
			   : cls == CKO_PUBLIC_KEY  ? "public key"
						    : "object";
	if (n == 0)
		fprintf(stderr,
			"%s: no %s on token \"%s\" matches; see remhsm object "
			"list\n",
			t->who, what, t->label);
	else
		fprintf(stderr,
			"%s: the name matches several objects; narrow it "
			"with id= or type= in a pkcs11: URI (remhsm object "
			"list shows them)\n",
			t->who);
	return 1;
}

CK_RV rh_tok_attr(rh_tok_t *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		  unsigned char **value, CK_ULONG *len)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	*value = NULL;
	CK_RV rv = t->p11->C_GetAttributeValue(t->session, h, &a, 1);
	if (rv != CKR_OK)
		return rv;
	a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1);
	if (!a.pValue)
		return CKR_HOST_MEMORY;
	rv = t->p11->C_GetAttributeValue(t->session, h, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*value = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

CK_RV rh_tok_ulong(rh_tok_t *t, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
		   CK_ULONG *value)
{
	CK_ATTRIBUTE a = {type, value, sizeof(*value)};
	return t->p11->C_GetAttributeValue(t->session, h, &a, 1);
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = bld ? OSSL_PARAM_BLD_to_param(bld) : NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *key = NULL;
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return key;
}

static EVP_PKEY *ec_public(rh_tok_t *t, CK_OBJECT_HANDLE h)
{
	unsigned char *params = NULL, *point = NULL;
	CK_ULONG params_len = 0, point_len = 0;
	EVP_PKEY *key = NULL;
	if (rh_tok_attr(t, h, CKA_EC_PARAMS, &params, &params_len) != CKR_OK ||
	    rh_tok_attr(t, h, CKA_EC_POINT, &point, &point_len) != CKR_OK)
		goto out;
	const unsigned char *p = params;
	ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &p, (long)params_len);
	const unsigned char *q = point;
	ASN1_OCTET_STRING *os =
		d2i_ASN1_OCTET_STRING(NULL, &q, (long)point_len);
	const char *curve = oid ? OBJ_nid2sn(OBJ_obj2nid(oid)) : NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	if (curve && os && bld &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					    curve, 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
					     ASN1_STRING_get0_data(os),
					     (size_t)ASN1_STRING_length(os)))
		key = from_params("EC", bld);
	OSSL_PARAM_BLD_free(bld);
	ASN1_OBJECT_free(oid);
	ASN1_OCTET_STRING_free(os);
out:
	free(params);
	free(point);
	return key;
}

/* Ed25519's CKA_EC_POINT: the key's 32 bytes in an OCTET STRING. */
static EVP_PKEY *ed_public(rh_tok_t *t, CK_OBJECT_HANDLE h)
{
	unsigned char *point = NULL;
	CK_ULONG point_len = 0;
	EVP_PKEY *key = NULL;
	if (rh_tok_attr(t, h, CKA_EC_POINT, &point, &point_len) == CKR_OK &&
	    point_len == 2 + RH_ED25519_LEN && point[0] == 0x04 &&
	    point[1] == RH_ED25519_LEN)
		key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
						  point + 2, RH_ED25519_LEN);
	free(point);
	return key;
}

static EVP_PKEY *rsa_public(rh_tok_t *t, CK_OBJECT_HANDLE h)
{
	unsigned char *n = NULL, *e = NULL;
	CK_ULONG n_len = 0, e_len = 0;
	EVP_PKEY *key = NULL;
	if (rh_tok_attr(t, h, CKA_MODULUS, &n, &n_len) == CKR_OK &&
	    rh_tok_attr(t, h, CKA_PUBLIC_EXPONENT, &e, &e_len) == CKR_OK) {
		BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
		BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
		OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
		if (bn_n && bn_e && bld &&
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
			key = from_params("RSA", bld);
		OSSL_PARAM_BLD_free(bld);
		BN_free(bn_n);
		BN_free(bn_e);
	}
	free(n);
	free(e);
	return key;
}

EVP_PKEY *rh_tok_public_key(rh_tok_t *t, CK_OBJECT_HANDLE h)
{
	CK_KEY_TYPE type = 0;
	CK_RV rv = rh_tok_ulong(t, h, CKA_KEY_TYPE, &type);
	if (rv != CKR_OK) {
		rh_failed(t->who, "reading the key type", rv);
		return NULL;
	}
	EVP_PKEY *key = type == CKK_EC		 ? ec_public(t, h)
			: type == CKK_EC_EDWARDS ? ed_public(t, h)
			: type == CKK_RSA	 ? rsa_public(t, h)
						 : NULL;
	if (!key)
		fprintf(stderr,
			"%s: cannot read a public key from the object (EC, "
			"Ed25519 and RSA keys only)\n",
			t->who);
	return key;
}

int rh_tok_key_for(rh_tok_t *t, EVP_PKEY *pub, CK_OBJECT_HANDLE *priv)
{
	static CK_OBJECT_HANDLE found[MAX_FOUND];
	CK_ULONG n = 0;
	CK_RV rv = rh_tok_find(t, NULL, CKO_PRIVATE_KEY, found, MAX_FOUND, &n);
	if (rv != CKR_OK)
		return rh_failed(t->who, "C_FindObjects", rv);
	for (CK_ULONG i = 0; i < n; i++) {
		CK_KEY_TYPE type = 0;
		if (rh_tok_ulong(t, found[i], CKA_KEY_TYPE, &type) != CKR_OK ||
		    (type != CKK_EC && type != CKK_EC_EDWARDS &&
		     type != CKK_RSA))
			continue;
		EVP_PKEY *k = rh_tok_public_key(t, found[i]);
		int same = k && EVP_PKEY_eq(k, pub) == 1;
		EVP_PKEY_free(k);
		if (same) {
			*priv = found[i];
			return 0;
		}
	}
	fprintf(stderr,
		"%s: no private key on token \"%s\" matches this "
		"certificate; generate or import its key first\n",
		t->who, t->label);
	return 1;
}
