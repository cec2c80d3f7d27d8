#include "access.h"

#include <ctype.h>
#include <fnmatch.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const rhd_rule_t everything = {"*", ~(uint64_t)0, RHD_ROLE_ALL};

int rhd_id_kind_parse(const char *name, rhd_id_kind_t *kind)
{
	static const struct {
		const char *name;
		rhd_id_kind_t kind;
	} kinds[] = {{"cn", RHD_ID_CN},
		     {"san-uri", RHD_ID_SAN_URI},
		     {"san-dns", RHD_ID_SAN_DNS},
		     {"fingerprint", RHD_ID_FINGERPRINT}};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(name, kinds[i].name)) {
			*kind = kinds[i].kind;
			return 0;
		}
	return -1;
}

static int parse_slots(char *text, uint64_t *slots)
{
	*slots = 0;
	if (!strcmp(text, "*")) {
		*slots = ~(uint64_t)0;
		return 0;
	}
	for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
		char *end;
		long slot = strtol(tok, &end, 10);
		if (*end || end == tok || slot < 0 || slot >= RHD_MAX_SLOTS)
			return -1;
		*slots |= (uint64_t)1 << slot;
	}
	return 0;
}

static int parse_roles(char *text, unsigned *roles)
{
	*roles = 0;
	for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
		if (!strcmp(tok, "user"))
			*roles |= RHD_ROLE_USER;
		else if (!strcmp(tok, "so"))
			*roles |= RHD_ROLE_SO;
		else if (!strcmp(tok, "admin"))
			*roles |= RHD_ROLE_ADMIN;
		else
			return -1;
	}
	return *roles ? 0 : -1;
}

/* One "pattern slots roles" line into a rule; the reason when it is not. */
static const char *parse_rule(char *line, rhd_rule_t *rule)
{
	char pattern[RHD_IDENTITY_MAX], slots[256], roles[64], extra[2];
	int n = sscanf(line, "%255s %255s %63s %1s", pattern, slots, roles,
		       extra);
	if (n != 3)
		return "expected: identity-pattern slots roles";
	if (parse_slots(slots, &rule->slots) < 0)
		return "slots: '*' or a list like 0,1";
	if (parse_roles(roles, &rule->roles) < 0)
		return "roles: a list of user, so, admin";
	snprintf(rule->pattern, sizeof(rule->pattern), "%s", pattern);
	return NULL;
}

static int add_rule(rhd_access_t *a, const rhd_rule_t *rule)
{
	rhd_rule_t *grown =
		realloc(a->rules, (a->n_rules + 1) * sizeof(*a->rules));
	if (!grown)
		return -1;
	a->rules = grown;
	a->rules[a->n_rules++] = *rule;
	return 0;
}

int rhd_access_load(rhd_access_t *a, rhd_id_kind_t kind, const char *path,
		    char *err, size_t err_len)
{
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, err_len, "access list %s: cannot open it", path);
		return -1;
	}
	a->listed = 1;
	char line[1024];
	unsigned lineno = 0;
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		if (!*s || *s == '#')
			continue;
		rhd_rule_t rule;
		const char *why = parse_rule(s, &rule);
		if (!why && add_rule(a, &rule) < 0)
			why = "out of memory";
		if (why) {
			snprintf(err, err_len, "%s:%u: %s", path, lineno, why);
			rc = -1;
		}
	}
	fclose(f);
	if (rc < 0)
		rhd_access_free(a);
	return rc;
}

void rhd_access_free(rhd_access_t *a)
{
	free(a->rules);
	a->rules = NULL;
	a->n_rules = 0;
}

/* Printable, one-word text for logs and records: anything else becomes _. */
static void tidy(char *s)
{
	for (; *s; s++)
		if (*s < 0x21 || *s > 0x7e || *s == '"')
			*s = '_';
}

static void first_san(X509 *cert, int type, const char *prefix, char *buf,
		      size_t len)
{
	GENERAL_NAMES *names =
		X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if (g->type != type)
			continue;
		const ASN1_IA5STRING *v = g->d.ia5;
		snprintf(buf, len, "%s%.*s", prefix, ASN1_STRING_length(v),
			 (const char *)ASN1_STRING_get0_data(v));
		break;
	}
	GENERAL_NAMES_free(names);
}

void rhd_access_identity(const rhd_access_t *a, SSL *ssl, char *buf, size_t len)
{
	buf[0] = '\0';
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (!cert)
		return;
	if (a->kind == RHD_ID_FINGERPRINT) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		if (X509_digest(cert, EVP_sha256(), md, &n) == 1 &&
		    len > 7 + 2 * n) {
			strcpy(buf, "SHA256:");
			for (unsigned int i = 0; i < n; i++)
				snprintf(buf + 7 + 2 * i, 3, "%02x", md[i]);
		}
	} else if (a->kind == RHD_ID_SAN_URI) {
		first_san(cert, GEN_URI, "URI:", buf, len);
	} else if (a->kind == RHD_ID_SAN_DNS) {
		first_san(cert, GEN_DNS, "DNS:", buf, len);
	} else {
		char cn[128];
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
					      NID_commonName, cn,
					      (int)sizeof(cn)) > 0)
			snprintf(buf, len, "CN=%s", cn);
	}
	tidy(buf);
}

const rhd_rule_t *rhd_access_match(const rhd_access_t *a, const char *identity)
{
	if (!a->listed)
		return &everything;
	if (!*identity)
		return NULL;
	for (size_t i = 0; i < a->n_rules; i++)
		if (fnmatch(a->rules[i].pattern, identity, 0) == 0)
			return &a->rules[i];
	return NULL;
}

int rhd_access_load_crl(SSL_CTX *ctx, const char *path, char *err,
			size_t err_len)
{
	if (!path || !*path)
		return 0;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
	if (!lookup ||
	    X509_load_crl_file(lookup, path, X509_FILETYPE_PEM) <= 0) {
		snprintf(err, err_len, "tls-crl %s: not a PEM CRL file", path);
		return -1;
	}
	/* Every client chain must then be checked against its CA's CRL. */
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	return 0;
}
