/* remhsmd settings: embedded defaults, then a config file, then flags. */
#ifndef RHD_CONFIG_H
#define RHD_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#define RHD_DEFAULT_PORT 5697

typedef struct rhd_config {
	char listen[256];
	char state_dir[PATH_MAX];
	char store_key[PATH_MAX];
	char store[PATH_MAX]; /* where the store is; "": state_dir/store.db */
	char store_rollback[16]; /* "refuse" or "warn" */
	unsigned store_wait_ms;	 /* a database round trip's limit */
	char tls_ca[PATH_MAX];
	char tls_cert[PATH_MAX];
	char tls_key[PATH_MAX];
	char tls_crl[PATH_MAX];
	char access_list[PATH_MAX];
	char identity_from[32];
	char metrics_listen[256];
	int tls12;
	int tls_client_eku_optional;
	int allow_core_dumps;
	int store_standby; /* wait for the store's writer to let go */
	int store_shared;  /* other remhsmd write the store at once */
	int allow_legacy;  /* RSA-1024, SHA-1 signatures, raw RSA signing */
	int allow_rsa_pkcs1_encryption; /* CKM_RSA_PKCS encrypt/decrypt */
	unsigned store_poll_ms;		/* how often a shared store is asked */
	unsigned store_connections; /* database sessions, the writer's too */
	unsigned handshake_timeout_ms;
	unsigned first_byte_timeout_ms;
	unsigned frame_timeout_ms;
	unsigned idle_timeout_ms;
	unsigned drain_timeout_ms;
	unsigned max_frame;
	unsigned max_connections;
	unsigned max_connections_per_identity;
	unsigned max_handshakes;
	unsigned max_handshakes_per_address;
	unsigned max_inflight;
	unsigned max_identity_workers;
	unsigned max_sessions;
	unsigned max_session_objects;
	unsigned max_app_memory_mb;
	unsigned max_identity_memory_mb;
	unsigned max_memory_mb;
	char log_level[16];
	unsigned slots;
	unsigned pin_max_failures;
	unsigned login_lease_s;
	unsigned busy_poll_us;
	unsigned loops; /* 0: one per online CPU */
	unsigned worker_threads;
	/* The command line this configuration came from, to read it again
	 * on SIGHUP (the file included). */
	int argc;
	char **argv;
	unsigned kdf_scrypt_n;
	unsigned secure_heap_kb; /* OpenSSL's secure heap; 0: none */
	unsigned kdf_scrypt_r;
	unsigned kdf_scrypt_p;
} rhd_config_t;

void rhd_config_defaults(rhd_config_t *cfg);

/* Sets one key ("listen", "tls-ca", ...). Returns 0, or -1 with err set. */
int rhd_config_set(rhd_config_t *cfg, const char *key, const char *value,
		   char *err, size_t err_len);

/* Reads "key = value" lines; errors name the file, line and key. */
int rhd_config_load_file(rhd_config_t *cfg, const char *path, char *err,
			 size_t err_len);

/* What the command line asks remhsmd to do. */
enum { RHD_RUN = 0, RHD_HELP = 1, RHD_VERSION = 2, RHD_CHECK_CONFIG = 3 };

/*
 * Applies --config FILE first, then every other flag over it, then fills
 * the TLS paths left empty from the state directory's pki/ folder.
 * Returns RHD_RUN, RHD_HELP, RHD_VERSION, RHD_CHECK_CONFIG, or -1 with err
 * set.
 */
int rhd_config_from_args(rhd_config_t *cfg, int argc, char **argv, char *err,
			 size_t err_len);

void rhd_config_usage(FILE *out, const char *prog);

#endif
