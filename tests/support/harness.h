/*
 * Test support: a real remhsmd on a free loopback port with a fresh PKI,
 * a raw TLS client to send well- and ill-formed frames, and log checks.
 */
#ifndef RH_HARNESS_H
#define RH_HARNESS_H

#include <check.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <p11-kit/pkcs11.h>

#include "remhsm.pb-c.h"
#include "rh_frame.h"

typedef struct th_daemon {
	pid_t pid;
	int port;
	char dir[256]; /* temporary state folder, PKI under dir/pki */
	char log[300]; /* the daemon's stderr */
	char pki[300];
} th_daemon_t;

/* A temporary folder with a development PKI (dir/pki). */
void th_pki_make(th_daemon_t *d);

/* A client certificate CN=cn from the test CA: pki/cn.pem and .key. */
void th_issue_client(const th_daemon_t *d, const char *cn);
/* The same with a subjectAltName ("URI:spiffe://...", "DNS:name"; NULL for
 * none). */
void th_issue_client_san(const th_daemon_t *d, const char *cn, const char *san);
/* pki/crl.pem: the test CA's CRL revoking the certificates of cns. */
void th_write_crl(const th_daemon_t *d, const char *const *cns);
/* Points the module at pki/cn.pem and .key (after th_client_env). */
void th_client_as(const th_daemon_t *d, const char *cn);

/* Starts remhsmd (extra flags appended, NULL-terminated) and waits until it
 * listens. The daemon gets SIGTERM if the test process dies. */
void th_daemon_start(th_daemon_t *d, const char *const *extra_flags);

/* Starts it again on the same port and state folder. */
void th_daemon_restart(th_daemon_t *d, const char *const *extra_flags);

/* SIGKILL, as a crash or power loss would. */
void th_daemon_kill(th_daemon_t *d);

/* The built client module, and dlopen() of it with its function list. */
const char *th_module_path(void);
CK_FUNCTION_LIST *th_module_load(void **handle);

/* Initialises slot's token (blank label) with so_pin and sets user_pin. */
void th_provision_token(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot,
			const char *so_pin, const char *user_pin);

/* A fresh PKI and daemon (extra flags as th_daemon_start's), the client's
 * environment naming them, and the module loaded and initialised, with slot
 * 0's token provisioned: SO PIN "so-pin-1", user PIN "0000". */
CK_FUNCTION_LIST *th_start_provisioned(th_daemon_t *d,
				       const char *const *extra_flags,
				       void **module);

/* Undoes th_start_provisioned: C_Finalize, the module unloaded, the daemon
 * stopped and its folder removed. */
void th_stop_provisioned(CK_FUNCTION_LIST *p11, void *module, th_daemon_t *d);

/* A read-write session on slot, logged in as the user with pin. */
CK_SESSION_HANDLE th_user_session(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot,
				  const char *pin);

/* One ECDSA signature with key over a fixed hash: CKR_OK, or why not. */
CK_RV th_sign_ecdsa(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
		    CK_OBJECT_HANDLE key);

/* A session secret key (CKO_SECRET_KEY) of type with value, and extra
 * attributes (at most 9): C_CreateObject's answer. */
CK_RV th_import_secret(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE session,
		       CK_KEY_TYPE type, const void *value, CK_ULONG len,
		       const CK_ATTRIBUTE *extra, CK_ULONG n_extra,
		       CK_OBJECT_HANDLE *key);

/* Hex digits into bytes at out; how many bytes. */
size_t th_unhex(const char *hex, CK_BYTE *out);

/* An EC P-256 signing pair on the token (public half too, when
 * token_public), generated in session. */
void th_generate_p256(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE session,
		      CK_BBOOL token_public, CK_OBJECT_HANDLE *pub,
		      CK_OBJECT_HANDLE *priv);

/* A self-signed X.509 certificate for key, subject CN=cn, valid for a day:
 * its DER length, the bytes at *der (OPENSSL_free them). */
int th_self_signed_der(EVP_PKEY *key, const char *cn, unsigned char **der);

/* FreeRTOS's device key pair as corePKCS11 provisions it: its labels and
 * templates for CKM_EC_KEY_PAIR_GEN on P-256, the public half on the token
 * only when public_on_token. The templates point into *p: do not copy it. */
#define TH_FREERTOS_PRIV_LABEL "Device Priv TLS Key"
#define TH_FREERTOS_PUB_LABEL "Device Pub TLS Key"
typedef struct th_freertos_pair {
	CK_MECHANISM mechanism;
	CK_KEY_TYPE type;
	CK_BBOOL yes;
	CK_ATTRIBUTE pub[5], priv[5];
	CK_ULONG pub_count, priv_count;
} th_freertos_pair_t;
void th_freertos_pair_templates(th_freertos_pair_t *p,
				CK_BBOOL public_on_token);

/* A P-256 public key from a CKA_EC_POINT (DER OCTET STRING, 67 bytes),
 * for OpenSSL to check the token's signatures with. */
EVP_PKEY *th_p256_public_key(const CK_BYTE point[67]);

/* Whether a raw r||s ECDSA P-256 signature over a 32-byte hash verifies
 * (OpenSSL, outside the token); rs_len other than 64 never does. */
int th_ecdsa_verifies(EVP_PKEY *key, const CK_BYTE hash[32], const CK_BYTE *rs,
		      CK_ULONG rs_len);

/* In a forked child, as cn: the module initialised again and a read-write
 * session on slot 0 logged in as the user ("0000"); _exit(2) when any of
 * it fails (a child makes no Check assertions). */
CK_SESSION_HANDLE th_child_user_session(const th_daemon_t *d,
					CK_FUNCTION_LIST *p11, const char *cn);

/* CLOCK_MONOTONIC in µs. */
double th_now_us(void);

/* The machine's CPU time so far, from /proc/stat: all of it, and what the
 * hypervisor gave to other guests (steal). A timing test names the share
 * stolen while it ran, which tells the host's stalls from the daemon's. */
typedef struct th_cpu_mark {
	unsigned long long steal, total;
} th_cpu_mark_t;
th_cpu_mark_t th_cpu_mark(void);
/* Percent of the CPU time since mark that was stolen (0 if unknown). */
double th_steal_since(th_cpu_mark_t mark);

/* Forks a child running child(ready), which writes one byte to ready once
 * its load is under way and _exits 0 when done; meanwhile calls
 * C_GenerateRandom (32 bytes) in s until the child exits, and asserts that
 * it exited 0. The slowest call in µs; how many were made in *calls. */
double th_random_beside(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s,
			void (*child)(int ready), long *calls);
/* Prints the slowest of `calls` C_GenerateRandom made beside `beside`,
 * with the share of CPU time the host stole since mark; in release builds
 * asserts it within max_us (a sanitizer multiplies the costs on both
 * sides by different factors). */
void th_random_wait_check(const char *beside, long calls, double worst_us,
			  th_cpu_mark_t mark, double max_us);

/* SIGTERM, waits for exit, returns the exit status (-1 if killed).
 * SIGTERM goes again each second: the daemon ignores a repeat once it
 * drains, and ThreadSanitizer's runtime holds a signal that lands while
 * the thread is outside an intercepted call until its next one, which for
 * a loop about to sleep in epoll_wait with no timeout may never come. */
int th_daemon_stop(th_daemon_t *d);
/* SIGHUP, then waits up to 2 s for the reload's outcome in the log
 * (event=reload or event=reload-failed), sending it again if none came,
 * five times at most (see th_daemon_stop); 1 once one more outcome is
 * logged. */
int th_daemon_reload(const th_daemon_t *d);

/* A datagram socket at d->dir/name for the daemon's service-manager
 * notifications, named in NOTIFY_SOCKET for the daemons started next;
 * its descriptor. */
int th_notify_socket(const th_daemon_t *d, const char *name);
/* One notification within ms into buf; its length, or -1. */
ssize_t th_notification(int fd, char *buf, size_t cap, int ms);
/* SIGTERM (again each second, as th_daemon_stop); waits up to seconds
 * for the daemon to exit, reading its notifications
 * meanwhile as systemd does (its socket blocks once ten wait unread), *heard
 * set when one of them was want (both may be NULL). The wait status, or -1
 * after th_daemon_stop has shown why it did not exit. */
int th_daemon_wait_exit(th_daemon_t *d, int fd, int seconds, const char *want,
			int *heard);
void th_daemon_cleanup(th_daemon_t *d);

/* Waits up to 3 s for needle to appear in the daemon's log. */
int th_log_contains(const th_daemon_t *d, const char *needle);
/* How many lines of the daemon's log hold needle (and too, unless NULL),
 * now. */
int th_log_count(const th_daemon_t *d, const char *needle, const char *too);

/* Points the client module's REMHSM_* variables at the daemon. */
void th_client_env(const th_daemon_t *d);

/* A certificate/key pair for the client, by name under dir/pki. */
typedef enum {
	TH_CERT_GOOD,
	TH_CERT_OTHER_CA,
	TH_CERT_EXPIRED,
	TH_CERT_CA,	/* CA:TRUE, issued by the test CA */
	TH_CERT_NO_EKU, /* an end entity without extended key usage */
	TH_CERT_NONE
} th_cert_t;

typedef struct th_conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
} th_conn_t;

/* A loopback TCP port nobody listened on a moment ago. */
int th_free_port(void);
int th_tcp_connect(int port);

/* TLS to the daemon with the given client certificate; returns 0 when the
 * handshake completed from the client's side. */
int th_tls_connect(const th_daemon_t *d, th_cert_t cert, th_conn_t *c);
/* The same with the certificate pki/stem.pem (NULL: none). */
int th_tls_connect_as(const th_daemon_t *d, const char *stem, th_conn_t *c);
void th_conn_close(th_conn_t *c);

int th_send_raw(th_conn_t *c, const void *buf, size_t len);
int th_send_request(th_conn_t *c, const Remhsm__Request *req);
/* Receives one response (2 s timeout); NULL on close, error or timeout. */
Remhsm__Response *th_recv_response(th_conn_t *c);
/* 1 when the daemon closed the connection (within 3 s). */
int th_peer_closed(th_conn_t *c);
/* Sends Hello for protocol version `version` with a random app id. */
Remhsm__Response *th_hello(th_conn_t *c, uint32_t version);
/* A serial session on slot 0 (request id 2), after Hello; its handle. */
uint64_t th_open_session(th_conn_t *c);
/* Sends C_GenerateRandom of length bytes, without reading its answer. */
void th_send_random(th_conn_t *c, uint64_t id, uint64_t session,
		    uint64_t length);

/* 1 when the file's first 8 MiB hold needle. */
int th_file_contains(const char *path, const void *needle, size_t len);

/* Runs a suite in Check's fork mode; the process exit code. */
int th_run_suite(Suite *s);

/* The path of a built binary, from the build tree. */
const char *th_remhsmd_path(void);

#endif
