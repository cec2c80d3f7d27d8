/*
 * PKCS#11 URIs (RFC 7512) naming a token and the objects on it, and plain
 * labels as their shorthand. Only the attributes remhsm can match on are
 * accepted; any other is an error, so a URI never selects more than it
 * appears to.
 */
#ifndef RH_URI_H
#define RH_URI_H

#include <p11-kit/pkcs11.h>
#include <stddef.h>

#define RH_URI_MAX_ID 128

typedef struct rh_uri {
	char *token;  /* token=, the token's label */
	char *serial; /* serial=, the token's serial number */
	char *object; /* object=, CKA_LABEL */
	unsigned char id[RH_URI_MAX_ID];
	size_t id_len;
	int has_id;
	CK_OBJECT_CLASS cls; /* type= */
	int has_class;
	char *pin_value; /* ?pin-value= */
} rh_uri_t;

/* Parses a "pkcs11:" URI, or takes any other text as a label. 0, or -1
 * with the reason in err. Free with rh_uri_free in both cases. */
int rh_uri_parse(const char *text, rh_uri_t *u, char *err, size_t err_len);
void rh_uri_free(rh_uri_t *u);

/* The URI of an object: token, object label, id and type, percent-encoded
 * where the RFC asks. Returns a new string. */
char *rh_uri_format(const char *token, const unsigned char *label,
		    size_t label_len, const unsigned char *id, size_t id_len,
		    CK_OBJECT_CLASS cls);

/* "private", "public", "cert", "data", "secret-key"; NULL for others. */
const char *rh_uri_type_name(CK_OBJECT_CLASS cls);

#endif
