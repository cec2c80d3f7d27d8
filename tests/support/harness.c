#include "harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pki.h"
#include "rh_frame.h"

int th_file_contains(const char *path, const void *needle, size_t len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	static char buf[1 << 23];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return memmem(buf, n, needle, len) != NULL;
}

int th_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

const char *th_remhsmd_path(void)
{
	return REMHSMD_PATH;
}

static void path_in(char *out, size_t cap, const th_daemon_t *d,
		    const char *file)
{
	snprintf(out, cap, "%s/%s", d->pki, file);
}

/* What a test certificate is besides a client's. */
typedef enum { LEAF_CLIENT, LEAF_CA, LEAF_NO_EKU } leaf_t;

/* A client certificate CN=stem (with subjectAltName san unless NULL) and
 * its key, as pki/stem.pem and .key; a CA's instead, or one without an
 * extended key usage, by kind. */
static void issue_kind(const th_daemon_t *d, const char *stem, const char *san,
		       X509 *ca, EVP_PKEY *ca_key, long from, long to,
		       leaf_t kind)
{
	char path[512];
	EVP_PKEY *key = rh_pki_keygen();
	X509 *cert = rh_pki_issue(key, stem,
				  kind == LEAF_CA ? RH_PKI_CA : RH_PKI_CLIENT,
				  ca, ca_key, from, to);
	ck_assert_ptr_nonnull(cert);
	if (san) {
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(
			NULL, NULL, NID_subject_alt_name, (char *)san);
		ck_assert_ptr_nonnull(ext);
		ck_assert_int_eq(X509_add_ext(cert, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	if (kind == LEAF_NO_EKU)
		X509_EXTENSION_free(X509_delete_ext(
			cert,
			X509_get_ext_by_NID(cert, NID_ext_key_usage, -1)));
	if (san || kind == LEAF_NO_EKU)
		ck_assert_int_gt(X509_sign(cert, ca_key, EVP_sha256()), 0);
	snprintf(path, sizeof(path), "%s/%s.key", d->pki, stem);
	ck_assert_int_eq(rh_pki_write_key(path, key), 0);
	snprintf(path, sizeof(path), "%s/%s.pem", d->pki, stem);
	ck_assert_int_eq(rh_pki_write_cert(path, cert), 0);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void issue(const th_daemon_t *d, const char *stem, const char *san,
		  X509 *ca, EVP_PKEY *ca_key, long from, long to)
{
	issue_kind(d, stem, san, ca, ca_key, from, to, LEAF_CLIENT);
}

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static EVP_PKEY *read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

static void load_ca(const th_daemon_t *d, X509 **ca, EVP_PKEY **key)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/ca.pem", d->pki);
	*ca = read_cert(path);
	snprintf(path, sizeof(path), "%s/ca.key", d->pki);
	*key = read_key(path);
}

void th_issue_client(const th_daemon_t *d, const char *cn)
{
	th_issue_client_san(d, cn, NULL);
}

void th_issue_client_san(const th_daemon_t *d, const char *cn, const char *san)
{
	X509 *ca;
	EVP_PKEY *ca_key;
	load_ca(d, &ca, &ca_key);
	issue(d, cn, san, ca, ca_key, -60, 86400L);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
}

void th_write_crl(const th_daemon_t *d, const char *const *cns)
{
	X509 *ca;
	EVP_PKEY *ca_key;
	load_ca(d, &ca, &ca_key);
	X509_CRL *crl = X509_CRL_new();
	ck_assert_int_eq(X509_CRL_set_version(crl, 1), 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
	ASN1_TIME *now = ASN1_TIME_adj(NULL, time(NULL), 0, -60);
	ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), 1, 0);
	X509_CRL_set1_lastUpdate(crl, now);
	X509_CRL_set1_nextUpdate(crl, next);
	char path[512];
	for (; *cns; cns++) {
		snprintf(path, sizeof(path), "%s/%s.pem", d->pki, *cns);
		X509 *cert = read_cert(path);
		X509_REVOKED *r = X509_REVOKED_new();
		X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(cert));
		X509_REVOKED_set_revocationDate(r, now);
		X509_CRL_add0_revoked(crl, r);
		X509_free(cert);
	}
	X509_CRL_sort(crl);
	ck_assert_int_gt(X509_CRL_sign(crl, ca_key, EVP_sha256()), 0);
	snprintf(path, sizeof(path), "%s/crl.pem", d->pki);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509_CRL(f, crl), 1);
	fclose(f);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	X509_CRL_free(crl);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
}

void th_client_as(const th_daemon_t *d, const char *cn)
{
	char v[512];
	snprintf(v, sizeof(v), "%s/%s.pem", d->pki, cn);
	setenv("REMHSM_CERT", v, 1);
	snprintf(v, sizeof(v), "%s/%s.key", d->pki, cn);
	setenv("REMHSM_KEY", v, 1);
}

void th_pki_make(th_daemon_t *d)
{
	char err[512];
	/* The raw test client writes to sockets the daemon may have closed. */
	signal(SIGPIPE, SIG_IGN);
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/remhsm-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->pki, sizeof(d->pki), "%s/pki", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/remhsmd.log", d->dir);
	ck_assert_int_eq(rh_pki_init(d->pki, 0, err, sizeof(err)), 0);
	char ca_path[512], ca_key_path[512];
	path_in(ca_path, sizeof(ca_path), d, "ca.pem");
	path_in(ca_key_path, sizeof(ca_key_path), d, "ca.key");
	X509 *ca = read_cert(ca_path);
	EVP_PKEY *ca_key = read_key(ca_key_path);
	issue(d, "expired", NULL, ca, ca_key, -10 * 86400L, -86400L);
	issue_kind(d, "caleaf", NULL, ca, ca_key, -60, 86400L, LEAF_CA);
	issue_kind(d, "noeku", NULL, ca, ca_key, -60, 86400L, LEAF_NO_EKU);
	/* A second CA whose client certificates the daemon must refuse. */
	EVP_PKEY *other_key = rh_pki_keygen();
	X509 *other = rh_pki_issue(other_key, "other CA", RH_PKI_CA, NULL, NULL,
				   -60, 86400L);
	issue(d, "otherca", NULL, other, other_key, -60, 86400L);
	X509_free(other);
	EVP_PKEY_free(other_key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
}

int th_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

int th_tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {.tv_sec = 3};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void exec_daemon(const th_daemon_t *d, const char *const *extra)
{
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", d->port);
	/* A cheap KDF keeps tests fast; the default is measured by the bench.
	 */
	const char *argv[64] = {
		th_remhsmd_path(), "--listen", listen, "--state-dir", d->dir,
		"--kdf-scrypt-n",  "1024"};
	int n = 7;
	for (; extra && *extra && n < 62; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	int log = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	dup2(log, 2);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static int wait_listening(th_daemon_t *d)
{
	for (int i = 0; i < 300; i++) {
		int fd = th_tcp_connect(d->port);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		int status;
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			return -1;
		}
		usleep(10000);
	}
	return -1;
}

void th_daemon_start(th_daemon_t *d, const char *const *extra_flags)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		d->port = th_free_port();
		d->pid = fork();
		ck_assert_int_ge(d->pid, 0);
		if (d->pid == 0)
			exec_daemon(d, extra_flags);
		if (wait_listening(d) == 0)
			return;
		if (d->pid > 0)
			th_daemon_stop(d);
	}
	ck_abort_msg("remhsmd did not start; see %s", d->log);
}

void th_daemon_restart(th_daemon_t *d, const char *const *extra_flags)
{
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0)
		exec_daemon(d, extra_flags);
	ck_assert_msg(wait_listening(d) == 0, "remhsmd did not restart");
}

void th_daemon_kill(th_daemon_t *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

CK_SESSION_HANDLE th_user_session(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot,
				  const char *pin)
{
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
	ck_assert_uint_eq(
		p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				   NULL, NULL, &h),
		CKR_OK);
	ck_assert_uint_eq(
		p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)),
		CKR_OK);
	return h;
}

CK_RV th_sign_ecdsa(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
		    CK_OBJECT_HANDLE key)
{
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_BYTE hash[32] = {1, 2, 3}, sig[64];
	CK_ULONG len = sizeof(sig);
	CK_RV rv = p11->C_SignInit(s, &ecdsa, key);
	return rv == CKR_OK ? p11->C_Sign(s, hash, sizeof(hash), sig, &len)
			    : rv;
}

CK_RV th_import_secret(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE session,
		       CK_KEY_TYPE type, const void *value, CK_ULONG len,
		       const CK_ATTRIBUTE *extra, CK_ULONG n_extra,
		       CK_OBJECT_HANDLE *key)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE t[12] = {{CKA_CLASS, &cls, sizeof(cls)},
			      {CKA_KEY_TYPE, &type, sizeof(type)},
			      {CKA_VALUE, (void *)value, len}};
	ck_assert_uint_le(n_extra, 9);
	if (n_extra)
		memcpy(t + 3, extra, n_extra * sizeof(*extra));
	return p11->C_CreateObject(session, t, 3 + n_extra, key);
}

size_t th_unhex(const char *hex, CK_BYTE *out)
{
	size_t n = strlen(hex) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (CK_BYTE)v;
	}
	return n;
}

void th_generate_p256(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE session,
		      CK_BBOOL token_public, CK_OBJECT_HANDLE *pub,
		      CK_OBJECT_HANDLE *priv)
{
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_BBOOL yes = CK_TRUE;
	CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
			     {CKA_VERIFY, &yes, 1},
			     {CKA_TOKEN, &token_public, 1}};
	CK_ATTRIBUTE st[] = {{CKA_SIGN, &yes, 1}, {CKA_TOKEN, &yes, 1}};
	ck_assert_uint_eq(
		p11->C_GenerateKeyPair(session, &gen, pt, 3, st, 2, pub, priv),
		CKR_OK);
}

int th_self_signed_der(EVP_PKEY *key, const char *cn, unsigned char **der)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	ck_assert(X509_sign(x, key, EVP_sha256()) > 0);
	*der = NULL;
	int len = i2d_X509(x, der);
	X509_free(x);
	ck_assert_int_gt(len, 0);
	return len;
}

void th_freertos_pair_templates(th_freertos_pair_t *p, CK_BBOOL public_on_token)
{
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	static const char pub_label[] = TH_FREERTOS_PUB_LABEL;
	static const char priv_label[] = TH_FREERTOS_PRIV_LABEL;
	*p = (th_freertos_pair_t){.mechanism = {CKM_EC_KEY_PAIR_GEN, NULL, 0},
				  .type = CKK_EC,
				  .yes = CK_TRUE};
	CK_ATTRIBUTE *a = p->pub;
	*a++ = (CK_ATTRIBUTE){CKA_KEY_TYPE, &p->type, sizeof(p->type)};
	*a++ = (CK_ATTRIBUTE){CKA_VERIFY, &p->yes, sizeof(p->yes)};
	*a++ = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)p256, sizeof(p256)};
	*a++ = (CK_ATTRIBUTE){CKA_LABEL, (void *)pub_label,
			      sizeof(pub_label) - 1};
	if (public_on_token)
		*a++ = (CK_ATTRIBUTE){CKA_TOKEN, &p->yes, sizeof(p->yes)};
	p->pub_count = (CK_ULONG)(a - p->pub);
	a = p->priv;
	*a++ = (CK_ATTRIBUTE){CKA_KEY_TYPE, &p->type, sizeof(p->type)};
	*a++ = (CK_ATTRIBUTE){CKA_TOKEN, &p->yes, sizeof(p->yes)};
	*a++ = (CK_ATTRIBUTE){CKA_PRIVATE, &p->yes, sizeof(p->yes)};
	*a++ = (CK_ATTRIBUTE){CKA_SIGN, &p->yes, sizeof(p->yes)};
	*a++ = (CK_ATTRIBUTE){CKA_LABEL, (void *)priv_label,
			      sizeof(priv_label) - 1};
	p->priv_count = (CK_ULONG)(a - p->priv);
}

EVP_PKEY *th_p256_public_key(const CK_BYTE point[67])
{
	ck_assert_uint_eq(point[0], 0x04);
	ck_assert_uint_eq(point[1], 65);
	OSSL_PARAM params[] = {
		OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
				       (char *)"prime256v1", 0),
		OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
					(void *)(point + 2), 65),
		OSSL_PARAM_END};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *key = NULL;
	ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
	ck_assert_int_eq(
		EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

int th_ecdsa_verifies(EVP_PKEY *key, const CK_BYTE hash[32], const CK_BYTE *rs,
		      CK_ULONG rs_len)
{
	if (rs_len != 64)
		return 0;
	ECDSA_SIG *sig = ECDSA_SIG_new();
	ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL),
		       BN_bin2bn(rs + 32, 32, NULL));
	unsigned char *der = NULL;
	int der_len = i2d_ECDSA_SIG(sig, &der);
	ECDSA_SIG_free(sig);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	int ok = EVP_PKEY_verify_init(ctx) == 1 &&
		 EVP_PKEY_verify(ctx, der, (size_t)der_len, hash, 32) == 1;
	EVP_PKEY_CTX_free(ctx);
	OPENSSL_free(der);
	return ok;
}

const char *th_module_path(void)
{
	return REMHSM_MODULE_PATH;
}

CK_FUNCTION_LIST *th_module_load(void **handle)
{
	*handle = dlopen(REMHSM_MODULE_PATH, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(*handle != NULL, "%s", dlerror());
	CK_C_GetFunctionList get =
		(CK_C_GetFunctionList)dlsym(*handle, "C_GetFunctionList");
	ck_assert_ptr_nonnull(get);
	CK_FUNCTION_LIST *p11 = NULL;
	ck_assert_uint_eq(get(&p11), CKR_OK);
	return p11;
}

void th_provision_token(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot,
			const char *so_pin, const char *user_pin)
{
	CK_UTF8CHAR label[32];
	memset(label, ' ', sizeof(label));
	ck_assert_uint_eq(p11->C_InitToken(slot, (CK_UTF8CHAR_PTR)so_pin,
					   strlen(so_pin), label),
			  CKR_OK);
	CK_SESSION_HANDLE so;
	ck_assert_uint_eq(
		p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				   NULL, NULL, &so),
		CKR_OK);
	ck_assert_uint_eq(p11->C_Login(so, CKU_SO, (CK_UTF8CHAR_PTR)so_pin,
				       strlen(so_pin)),
			  CKR_OK);
	ck_assert_uint_eq(
		p11->C_InitPIN(so, (CK_UTF8CHAR_PTR)user_pin, strlen(user_pin)),
		CKR_OK);
	ck_assert_uint_eq(p11->C_CloseSession(so), CKR_OK);
}

CK_FUNCTION_LIST *th_start_provisioned(th_daemon_t *d,
				       const char *const *extra_flags,
				       void **module)
{
	th_pki_make(d);
	th_daemon_start(d, extra_flags);
	th_client_env(d);
	CK_FUNCTION_LIST *p11 = th_module_load(module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	th_provision_token(p11, 0, "so-pin-1", "0000");
	return p11;
}

void th_stop_provisioned(CK_FUNCTION_LIST *p11, void *module, th_daemon_t *d)
{
	p11->C_Finalize(NULL);
	dlclose(module);
	th_daemon_cleanup(d);
}

/* Why a daemon did not exit cleanly, and the end of its log, for the
 * test's output. */
static void report_unclean_exit(const th_daemon_t *d, const char *what)
{
	fprintf(stderr, "remhsmd %d %s; the end of %s:\n", d->pid, what,
		d->log);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "tail -n 15 '%s' >&2", d->log);
	if (system(cmd) != 0)
		fprintf(stderr, "(cannot show the log)\n");
}

int th_daemon_stop(th_daemon_t *d)
{
	if (d->pid <= 0)
		return -1;
	int status = 0;
	for (int i = 0; i < 500; i++) {
		if (i % 100 == 0)
			kill(d->pid, SIGTERM); /* a zombie until reaped: ours */
		if (waitpid(d->pid, &status, WNOHANG) != d->pid) {
			usleep(10000);
			continue;
		}
		if (WIFSIGNALED(status)) {
			char what[64];
			snprintf(what, sizeof(what), "died of signal %d",
				 WTERMSIG(status));
			report_unclean_exit(d, what);
		}
		d->pid = 0;
		return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	}
	report_unclean_exit(d, "did not exit within 5 s of SIGTERM");
	kill(d->pid, SIGKILL);
	waitpid(d->pid, &status, 0);
	d->pid = 0;
	return -1;
}

int th_notify_socket(const th_daemon_t *d, const char *name)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", d->dir,
			 name);
	ck_assert(n > 0 && (size_t)n < sizeof(addr.sun_path));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	setenv("NOTIFY_SOCKET", addr.sun_path, 1);
	return fd;
}

ssize_t th_notification(int fd, char *buf, size_t cap, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, ms) != 1)
		return -1;
	ssize_t n = recv(fd, buf, cap - 1, 0);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* Reads a notification within ms, noting whether it was want; its length,
 * or -1. */
static ssize_t read_notification(int fd, int ms, const char *want, int *heard)
{
	char buf[256];
	ssize_t n = th_notification(fd, buf, sizeof(buf), ms);
	if (n > 0 && want && !strcmp(buf, want))
		*heard = 1;
	return n;
}

int th_daemon_wait_exit(th_daemon_t *d, int fd, int seconds, const char *want,
			int *heard)
{
	int ignored = 0;
	heard = heard ? heard : &ignored;
	double deadline = th_now_us() + seconds * 1e6, told = 0;
	int status;
	while (waitpid(d->pid, &status, WNOHANG) != d->pid) {
		double now = th_now_us();
		if (now > deadline) {
			th_daemon_stop(d); /* says why, with the log */
			return -1;
		}
		if (!told || now - told >= 1e6) {
			kill(d->pid, SIGTERM);
			told = now;
		}
		(void)read_notification(fd, 10, want, heard);
	}
	d->pid = 0;
	while (read_notification(fd, 0, want, heard) > 0)
		continue;
	return status;
}

void th_daemon_cleanup(th_daemon_t *d)
{
	th_daemon_stop(d);
	if (getenv("REMHSM_KEEP_TEST_DIRS"))
		return;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", d->dir);
}

int th_log_contains(const th_daemon_t *d, const char *needle)
{
	for (int i = 0; i < 300; i++) {
		FILE *f = fopen(d->log, "r");
		char line[2048];
		int found = 0;
		while (f && !found && fgets(line, sizeof(line), f))
			found = strstr(line, needle) != NULL;
		if (f)
			fclose(f);
		if (found)
			return 1;
		usleep(10000);
	}
	return 0;
}

int th_daemon_reload(const th_daemon_t *d)
{
	int before = th_log_count(d, "event=reload", NULL);
	for (int attempt = 0; attempt < 5; attempt++) {
		kill(d->pid, SIGHUP);
		for (int i = 0; i < 200; i++) {
			if (th_log_count(d, "event=reload", NULL) > before)
				return 1;
			usleep(10000);
		}
	}
	return 0;
}

int th_log_count(const th_daemon_t *d, const char *needle, const char *too)
{
	FILE *f = fopen(d->log, "r");
	char line[2048];
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, needle) && (!too || strstr(line, too));
	if (f)
		fclose(f);
	return n;
}

void th_client_env(const th_daemon_t *d)
{
	char v[512];
	snprintf(v, sizeof(v), "127.0.0.1:%d", d->port);
	setenv("REMHSM_SERVER", v, 1);
	snprintf(v, sizeof(v), "%s/ca.pem", d->pki);
	setenv("REMHSM_CA", v, 1);
	snprintf(v, sizeof(v), "%s/client.pem", d->pki);
	setenv("REMHSM_CERT", v, 1);
	snprintf(v, sizeof(v), "%s/client.key", d->pki);
	setenv("REMHSM_KEY", v, 1);
	unsetenv("REMHSM_CONF");
}

static const char *cert_stem(th_cert_t cert)
{
	switch (cert) {
	case TH_CERT_OTHER_CA:
		return "otherca";
	case TH_CERT_EXPIRED:
		return "expired";
	case TH_CERT_CA:
		return "caleaf";
	case TH_CERT_NO_EKU:
		return "noeku";
	default:
		return "client";
	}
}

int th_tls_connect(const th_daemon_t *d, th_cert_t cert, th_conn_t *c)
{
	return th_tls_connect_as(
		d, cert == TH_CERT_NONE ? NULL : cert_stem(cert), c);
}

int th_tls_connect_as(const th_daemon_t *d, const char *stem, th_conn_t *c)
{
	char path[512];
	memset(c, 0, sizeof(*c));
	c->fd = th_tcp_connect(d->port);
	ck_assert_int_ge(c->fd, 0);
	c->ctx = SSL_CTX_new(TLS_client_method());
	path_in(path, sizeof(path), d, "ca.pem");
	ck_assert_int_eq(SSL_CTX_load_verify_locations(c->ctx, path, NULL), 1);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (stem) {
		snprintf(path, sizeof(path), "%s/%s.pem", d->pki, stem);
		ck_assert_int_eq(SSL_CTX_use_certificate_file(c->ctx, path,
							      SSL_FILETYPE_PEM),
				 1);
		snprintf(path, sizeof(path), "%s/%s.key", d->pki, stem);
		ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(c->ctx, path,
							     SSL_FILETYPE_PEM),
				 1);
	}
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	int r = SSL_connect(c->ssl);
	ERR_clear_error();
	return r == 1 ? 0 : -1;
}

void th_conn_close(th_conn_t *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

int th_send_raw(th_conn_t *c, const void *buf, size_t len)
{
	return SSL_write(c->ssl, buf, (int)len) == (int)len ? 0 : -1;
}

int th_send_request(th_conn_t *c, const Remhsm__Request *req)
{
	uint8_t *frame;
	size_t len;
	ck_assert_int_eq(rh_frame_pack(&req->base, &frame, &len), 0);
	int r = th_send_raw(c, frame, len);
	free(frame);
	return r;
}

static int read_exact(th_conn_t *c, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		int n = SSL_read(c->ssl, buf + got, (int)(len - got));
		if (n <= 0) {
			ERR_clear_error();
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

Remhsm__Response *th_recv_response(th_conn_t *c)
{
	uint8_t header[4];
	if (read_exact(c, header, 4) < 0)
		return NULL;
	uint32_t len;
	if (rh_frame_header_decode(header, 1u << 24, &len) < 0)
		return NULL;
	uint8_t *payload = malloc(len ? len : 1);
	Remhsm__Response *resp = NULL;
	if (read_exact(c, payload, len) == 0)
		resp = remhsm__response__unpack(NULL, len, payload);
	free(payload);
	return resp;
}

int th_peer_closed(th_conn_t *c)
{
	uint8_t b;
	int n = SSL_read(c->ssl, &b, 1);
	int err = SSL_get_error(c->ssl, n);
	ERR_clear_error();
	if (n > 0)
		return 0;
	/* A timeout (no data for 3 s) is "still open". */
	return !(err == SSL_ERROR_SYSCALL &&
		 (errno == EAGAIN || errno == EWOULDBLOCK));
}

Remhsm__Response *th_hello(th_conn_t *c, uint32_t version)
{
	uint8_t app_id[16];
	RAND_bytes(app_id, sizeof(app_id));
	Remhsm__HelloReq hello = REMHSM__HELLO_REQ__INIT;
	hello.n_versions = 1;
	hello.versions = &version;
	hello.app_id = (ProtobufCBinaryData){sizeof(app_id), app_id};
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 1;
	req.call_case = REMHSM__REQUEST__CALL_HELLO;
	req.hello = &hello;
	if (th_send_request(c, &req) < 0)
		return NULL;
	return th_recv_response(c);
}

uint64_t th_open_session(th_conn_t *c)
{
	Remhsm__OpenSessionReq body = REMHSM__OPEN_SESSION_REQ__INIT;
	body.flags = CKF_SERIAL_SESSION;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = 2;
	req.call_case = REMHSM__REQUEST__CALL_OPEN_SESSION;
	req.open_session = &body;
	ck_assert_int_eq(th_send_request(c, &req), 0);
	Remhsm__Response *r = th_recv_response(c);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->rv, CKR_OK);
	uint64_t h = r->open_session->session;
	remhsm__response__free_unpacked(r, NULL);
	return h;
}

void th_send_random(th_conn_t *c, uint64_t id, uint64_t session,
		    uint64_t length)
{
	Remhsm__GenerateRandomReq body = REMHSM__GENERATE_RANDOM_REQ__INIT;
	body.session = session;
	body.length = length;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = id;
	req.call_case = REMHSM__REQUEST__CALL_GENERATE_RANDOM;
	req.generate_random = &body;
	ck_assert_int_eq(th_send_request(c, &req), 0);
}

double th_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

th_cpu_mark_t th_cpu_mark(void)
{
	th_cpu_mark_t m = {0, 0};
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
			&v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			m.total += v[i];
		m.steal = v[7];
	}
	if (f)
		fclose(f);
	return m;
}

double th_steal_since(th_cpu_mark_t mark)
{
	th_cpu_mark_t now = th_cpu_mark();
	if (now.total <= mark.total)
		return 0;
	return 100.0 * (double)(now.steal - mark.steal) /
	       (double)(now.total - mark.total);
}

double th_random_beside(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
			void (*child)(int ready), long *calls)
{
	int ready[2];
	ck_assert_int_eq(pipe(ready), 0);
	pid_t kid = fork();
	ck_assert_int_ge(kid, 0);
	if (kid == 0)
		child(ready[1]);
	close(ready[1]);
	char c;
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	double worst = 0;
	int status = 0;
	CK_BYTE buf[32];
	*calls = 0;
	while (waitpid(kid, &status, WNOHANG) == 0) {
		double t0 = th_now_us();
		ck_assert_uint_eq(p11->C_GenerateRandom(s, buf, sizeof(buf)),
				  CKR_OK);
		double took = th_now_us() - t0;
		worst = took > worst ? took : worst;
		(*calls)++;
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the loaded application failed: %d", WEXITSTATUS(status));
	return worst;
}

void th_random_wait_check(const char *beside, long calls, double worst_us,
			  th_cpu_mark_t mark, double max_us)
{
	double steal = th_steal_since(mark);
	fprintf(stderr,
		"C_GenerateRandom beside %s: %ld calls, the slowest %.1f ms; "
		"the host stole %.1f%% of CPU time\n",
		beside, calls, worst_us / 1e3, steal);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	ck_assert_msg(worst_us <= max_us,
		      "a C_GenerateRandom waited %.1f ms (host steal %.1f%%)",
		      worst_us / 1e3, steal);
#else
	(void)max_us;
#endif
}

CK_SESSION_HANDLE th_child_user_session(const th_daemon_t *d,
					CK_FUNCTION_LIST *p11, const char *cn)
{
	th_client_as(d, cn);
	CK_SESSION_HANDLE s;
	if (p11->C_Initialize(NULL) != CKR_OK ||
	    p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
			       NULL, &s) != CKR_OK ||
	    p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4) != CKR_OK)
		_exit(2);
	return s;
}
