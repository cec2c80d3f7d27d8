#include "uri.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEME "pkcs11:"

static const struct {
	const char *name;
	CK_OBJECT_CLASS cls;
} types[] = {{"private", CKO_PRIVATE_KEY},
	     {"public", CKO_PUBLIC_KEY},
	     {"cert", CKO_CERTIFICATE},
	     {"data", CKO_DATA},
	     {"secret-key", CKO_SECRET_KEY}};

const char *rh_uri_type_name(CK_OBJECT_CLASS cls)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].cls == cls)
			return types[i].name;
	return NULL;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes len bytes of s into out (room for len bytes): the decoded
 * length, or -1 for a malformed escape. */
static long pct_decode(const char *s, size_t len, unsigned char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			out[n++] = (unsigned char)s[i];
			continue;
		}
		if (len - i < 3)
			return -1;
		int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
		if (hi < 0 || lo < 0)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | lo);
		i += 2;
	}
	return (long)n;
}

/* A decoded text value; NULL for a bad escape or an embedded NUL. */
static char *text_value(const char *s, size_t len)
{
	unsigned char *out = malloc(len + 1);
	long n = out ? pct_decode(s, len, out) : -1;
	if (n < 0 || memchr(out, 0, (size_t)n)) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	return (char *)out;
}

static int set_type(rh_uri_t *u, const char *v)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(v, types[i].name)) {
			u->cls = types[i].cls;
			u->has_class = 1;
			return 0;
		}
	return -1;
}

static int set_id(rh_uri_t *u, const char *s, size_t len)
{
	unsigned char *buf = malloc(len ? len : 1);
	long n = buf ? pct_decode(s, len, buf) : -1;
	int ok = n >= 0 && (size_t)n <= RH_URI_MAX_ID;
	if (ok) {
		memcpy(u->id, buf, (size_t)n);
		u->id_len = (size_t)n;
		u->has_id = 1;
	}
	free(buf);
	return ok ? 0 : -1;
}

/* One name=value attribute; query attributes only when in_query. */
static int attribute(rh_uri_t *u, const char *a, size_t len, int in_query,
		     char *err, size_t err_len)
{
	const char *eq = memchr(a, '=', len);
	if (!eq) {
		snprintf(err, err_len, "'%.*s' is not name=value", (int)len, a);
		return -1;
	}
	size_t nlen = (size_t)(eq - a), vlen = len - nlen - 1;
	const char *v = eq + 1;
	char **text = NULL;
#define IS(name) (nlen == strlen(name) && !memcmp(a, name, nlen))
	if (!in_query && IS("token"))
		text = &u->token;
	else if (!in_query && IS("serial"))
		text = &u->serial;
	else if (!in_query && IS("object"))
		text = &u->object;
	else if (in_query && IS("pin-value"))
		text = &u->pin_value;
	else if (!in_query && IS("id")) {
		if (set_id(u, v, vlen) == 0)
			return 0;
		snprintf(err, err_len,
			 "bad id (percent-encoded bytes, at "
			 "most 128)");
		return -1;
	} else if (!in_query && IS("type")) {
		char *t = text_value(v, vlen);
		int r = t ? set_type(u, t) : -1;
		free(t);
		if (r == 0)
			return 0;
		snprintf(err, err_len,
			 "bad type '%.*s' (private, public, cert, data, "
			 "secret-key)",
			 (int)vlen, v);
		return -1;
	}
#undef IS
	if (!text) {
		snprintf(err, err_len, "attribute '%.*s' is not supported",
			 (int)nlen, a);
		return -1;
	}
	free(*text);
	*text = text_value(v, vlen);
	if (*text)
		return 0;
	snprintf(err, err_len, "bad value for '%.*s'", (int)nlen, a);
	return -1;
}

/* Attributes separated by sep, from s up to end. */
static int attributes(rh_uri_t *u, const char *s, const char *end, char sep,
		      int in_query, char *err, size_t err_len)
{
	while (s < end) {
		const char *next = memchr(s, sep, (size_t)(end - s));
		if (!next)
			next = end;
		if (next > s && attribute(u, s, (size_t)(next - s), in_query,
					  err, err_len) < 0)
			return -1;
		s = next + 1;
	}
	return 0;
}

int rh_uri_parse(const char *text, rh_uri_t *u, char *err, size_t err_len)
{
	memset(u, 0, sizeof(*u));
	if (strncmp(text, SCHEME, strlen(SCHEME)) != 0) {
		u->object = strdup(text);
		return u->object ? 0 : -1;
	}
	const char *path = text + strlen(SCHEME);
	const char *query = strchr(path, '?');
	const char *path_end = query ? query : path + strlen(path);
	if (attributes(u, path, path_end, ';', 0, err, err_len) < 0)
		return -1;
	if (query && attributes(u, query + 1, query + strlen(query), '&', 1,
				err, err_len) < 0)
		return -1;
	return 0;
}

void rh_uri_free(rh_uri_t *u)
{
	free(u->token);
	free(u->serial);
	free(u->object);
	free(u->pin_value);
	memset(u, 0, sizeof(*u));
}

/* Appends bytes, percent-encoding all but RFC 3986's unreserved ones (the
 * id is always encoded, as RFC 7512 recommends). */
static void append(char **p, const unsigned char *s, size_t len, int all)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (!all && (isalnum(c) || strchr("-._~", c)) && c)
			*(*p)++ = (char)c;
		else
			*p += sprintf(*p, "%%%02x", c);
	}
}

char *rh_uri_format(const char *token, const unsigned char *label,
		    size_t label_len, const unsigned char *id, size_t id_len,
		    CK_OBJECT_CLASS cls)
{
	size_t cap = 64 + 3 * (strlen(token) + label_len + id_len);
	char *out = malloc(cap), *p = out;
	if (!out)
		return NULL;
	p += sprintf(p, SCHEME "token=");
	append(&p, (const unsigned char *)token, strlen(token), 0);
	if (label_len) {
		p += sprintf(p, ";object=");
		append(&p, label, label_len, 0);
	}
	if (id_len) {
		p += sprintf(p, ";id=");
		append(&p, id, id_len, 1);
	}
	const char *type = rh_uri_type_name(cls);
	if (type)
		sprintf(p, ";type=%s", type);
	return out;
}
