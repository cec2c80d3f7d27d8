/* remhsmd: arguments, configuration, the store, signals, the loop. */
#include <errno.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "audit.h"
#include "config.h"
#include "crypto.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "resume.h"
#include "rh_secret.h"
#include "rh_tls.h"
#include "cluster.h"
#include "rhs.h"
#include "server.h"

/* A database session lost, and replaced (PostgreSQL store). */
static void log_store_notice(void *ctx, const char *event, const char *where,
			     const char *reason)
{
	(void)ctx;
	char said[512];
	snprintf(said, sizeof(said), "%s", reason);
	said[strcspn(said, "\n\"")] = '\0'; /* one line, one quoted field */
	if (said[0])
		RHD_WARN("event=%s where=\"%s\" reason=\"%s\"", event, where,
			 said);
	else
		RHD_INFO("event=%s where=\"%s\"", event, where);
}

/* Opens the store, and derives the resume key from its key. */
static rhs_store_t *open_store(const rhd_config_t *cfg,
			       uint8_t resume_key[RHS_KEY_LEN])
{
	char err[1024], path[PATH_MAX + 16];
	uint8_t key[RHS_KEY_LEN];
	rhs_store_t *store = NULL;
	int rc = rhs_key_load_from(cfg->state_dir, cfg->store_key, key, err,
				   sizeof(err));
	if (rc == RHS_OK) {
		if (cfg->store[0])
			snprintf(path, sizeof(path), "%s", cfg->store);
		else
			snprintf(path, sizeof(path), "%s/store.db",
				 cfg->state_dir);
		rhs_open_opts_t opts = {.wait_ms = cfg->store_wait_ms,
					.wait_for_writer = cfg->store_standby,
					.shared = cfg->store_shared,
					.readers = cfg->store_connections - 1,
					.notice = log_store_notice};
		if (cfg->store_standby)
			RHD_INFO("event=store-standby state=waiting "
				 "reason=\"serving once no other remhsmd "
				 "writes the store\"");
		rc = rhs_open(path, key, &opts, &store, err, sizeof(err));
		if (rc == RHS_OK && cfg->store_standby)
			RHD_INFO("event=store-standby state=active");
	}
	if (rc == RHS_OK && rhd_resume_key_derive(key, resume_key) < 0) {
		snprintf(err, sizeof(err), "cannot derive the resume key");
		rhs_close(store);
		store = NULL;
		rc = -1;
	}
	OPENSSL_cleanse(key, sizeof(key));
	if (rc < 0)
		RHD_ERROR("event=start-failed reason=\"%s\"", err);
	return store;
}

/* The store must be no older than the one the audit log last saw: a whole
 * store.db put back from an older copy (its rows all agreeing) shows in
 * its counter. Refused, or with store-rollback = warn only logged. */
static int store_is_current(const rhd_config_t *cfg, const rhs_store_t *store,
			    const char *audit_path)
{
	uint64_t anchor = rhs_anchor_last(audit_path);
	uint64_t counter = rhs_counter(store);
	if (counter >= anchor)
		return 1;
	int warn = !strcmp(cfg->store_rollback, "warn");
	rhd_log(warn ? "warn" : "error",
		"event=%s state=%s reason=\"store.db is older than the one "
		"this daemon last ran on (write counter %llu, %llu recorded in "
		"%s): a rolled-back copy?%s\"",
		warn ? "store-rolled-back" : "start-failed", cfg->state_dir,
		(unsigned long long)counter, (unsigned long long)anchor,
		audit_path,
		warn ? " Starting anyway (store-rollback = warn)"
		     : " Set store-rollback = warn to start anyway");
	return warn;
}

static int serve(const rhd_config_t *cfg)
{
	uint8_t resume_key[RHS_KEY_LEN];
	rhs_store_t *store = open_store(cfg, resume_key);
	if (!store)
		return 1;
	char err[1024] = "", audit_path[PATH_MAX + 16];
	snprintf(audit_path, sizeof(audit_path), "%s/audit.log",
		 cfg->state_dir);
	if (!store_is_current(cfg, store, audit_path) ||
	    rhd_audit_open(audit_path, err, sizeof(err)) < 0) {
		if (err[0])
			RHD_ERROR("event=start-failed reason=\"audit log: %s\"",
				  err);
		OPENSSL_cleanse(resume_key, sizeof(resume_key));
		rhs_close(store);
		return 1;
	}
	rhd_audit(RHS_ANCHOR_EVENT " counter=%llu when=start",
		  (unsigned long long)rhs_counter(store));
	rhd_policy_allow_legacy(cfg->allow_legacy);
	if (cfg->allow_legacy)
		RHD_WARN("event=legacy-allowed rsa-min-bits=%u "
			 "mechanisms=\"CKM_SHA1_RSA_PKCS CKM_SHA1_RSA_PKCS_PSS "
			 "CKM_ECDSA_SHA1 CKM_RSA_X_509(sign)\" "
			 "reason=\"allow-legacy: for old devices only\"",
			 rhd_rsa_min_bits());
	rhd_policy_allow_pkcs1_encryption(cfg->allow_rsa_pkcs1_encryption);
	if (cfg->allow_rsa_pkcs1_encryption)
		RHD_WARN("event=rsa-pkcs1-encryption-allowed "
			 "mechanism=CKM_RSA_PKCS calls=\"C_Encrypt C_Decrypt\" "
			 "reason=\"its decryption is a padding oracle "
			 "(Bleichenbacher): for applications that need it "
			 "only\"");
	rhd_engine_opts_t opts = {
		.slots = cfg->slots,
		.store = store,
		.policy = {.kdf_n = cfg->kdf_scrypt_n,
			   .kdf_r = cfg->kdf_scrypt_r,
			   .kdf_p = cfg->kdf_scrypt_p,
			   .max_failures = cfg->pin_max_failures},
		.resume_key = resume_key,
		.lease_seconds = cfg->login_lease_s,
		.max_sessions = cfg->max_sessions,
		.max_session_objects = cfg->max_session_objects,
		.max_answer = cfg->max_frame,
		.max_app_bytes = (size_t)cfg->max_app_memory_mb << 20,
		.max_identity_bytes = (size_t)cfg->max_identity_memory_mb << 20,
		.max_total_bytes = (size_t)cfg->max_memory_mb << 20,
	};
	rhd_engine_t engine;
	int rc = 1;
	int init = rhd_engine_init(&engine, &opts);
	OPENSSL_cleanse(resume_key, sizeof(resume_key));
	if (init < 0) {
		RHD_ERROR("event=start-failed reason=\"engine init\"");
	} else {
		rhd_cluster_t *cluster =
			cfg->store_shared
				? rhd_cluster_start(&engine, cfg->store_poll_ms)
				: NULL;
		if (!cfg->store_shared || cluster)
			rc = rhd_server_run(cfg, &engine) < 0 ? 1 : 0;
		rhd_cluster_stop(cluster);
		rhd_engine_cleanup(&engine);
	}
	rhd_audit(RHS_ANCHOR_EVENT " counter=%llu when=stop",
		  (unsigned long long)rhs_counter(store));
	rhd_audit_close();
	rhs_close(store);
	return rc;
}

/* --check-config: the settings parsed; the TLS files must load too. */
static int check_config(const rhd_config_t *cfg)
{
	char err[512];
	struct sockaddr_storage addr;
	if (rhd_server_parse_listen(cfg->listen, &addr) < 0) {
		fprintf(stderr,
			"remhsmd: listen: '%s' is not ADDRESS:PORT (a numeric "
			"IPv4 address, or IPv6 in brackets)\n",
			cfg->listen);
		return 1;
	}
	if (cfg->metrics_listen[0] &&
	    !rhd_metrics_listen_ok(cfg->metrics_listen)) {
		fprintf(stderr,
			"remhsmd: metrics-listen: '%s' is not a loopback "
			"ADDRESS:PORT (metrics are served on loopback only)\n",
			cfg->metrics_listen);
		return 1;
	}
	rh_tls_files_t files = {cfg->tls_ca, cfg->tls_cert, cfg->tls_key};
	SSL_CTX *tls =
		rh_tls_server_ctx_new(&files, cfg->tls12, err, sizeof(err));
	rhd_access_t access;
	if (!tls ||
	    rhd_server_access_setup(cfg, tls, &access, err, sizeof(err)) < 0) {
		fprintf(stderr, "remhsmd: %s\n", err);
		SSL_CTX_free(tls);
		return 1;
	}
	rhd_access_free(&access);
	SSL_CTX_free(tls);
	printf("remhsmd: configuration OK (listen %s, state %s)\n", cfg->listen,
	       cfg->state_dir);
	return 0;
}

/* A core file, or a debugger or another process of the same user reading
 * this one, would hold the token keys and key values in memory. */
static int forbid_core_dumps(void)
{
	struct rlimit none = {0, 0};
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ||
	    setrlimit(RLIMIT_CORE, &none) < 0) {
		RHD_ERROR("event=start-failed reason=\"cannot forbid core "
			  "dumps: %s\"",
			  strerror(errno));
		return -1;
	}
	return 0;
}

static void warn_secrets_unlocked(int err)
{
	RHD_WARN("event=secret-memory-unlocked reason=\"mlock: %s\" "
		 "effect=\"token keys may be swapped to disk\" "
		 "hint=\"raise RLIMIT_MEMLOCK (systemd: LimitMEMLOCK=)\"",
		 strerror(err));
}

/* Private keys OpenSSL builds (cached for signing) go to its secure
 * heap, locked and out of core dumps like the daemon's own secrets. */
static void secure_heap_start(unsigned kb)
{
	size_t bytes = (size_t)kb << 10;
	int rc = rhd_crypto_secure_heap_init(bytes);
	if (rc == 1)
		RHD_INFO("event=secure-heap bytes=%zu locked=yes", bytes);
	else if (rc == 2)
		RHD_WARN("event=secure-heap bytes=%zu locked=no "
			 "effect=\"private keys may be swapped to disk\" "
			 "hint=\"raise RLIMIT_MEMLOCK (systemd: "
			 "LimitMEMLOCK=)\"",
			 bytes);
	else
		RHD_WARN("event=secure-heap-off bytes=%zu effect=\"private "
			 "keys live on the ordinary heap, wiped when freed\"%s",
			 bytes,
			 kb ? " reason=\"OpenSSL could not set it up\"" : "");
}

int main(int argc, char **argv)
{
	rhd_config_t cfg;
	char err[1024];
	rhd_config_defaults(&cfg);
	int r = rhd_config_from_args(&cfg, argc, argv, err, sizeof(err));
	if (r == RHD_HELP) {
		rhd_config_usage(stdout, argv[0]);
		return 0;
	}
	if (r == RHD_VERSION) {
		printf("remhsmd %s\n", REMHSM_VERSION);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "remhsmd: %s\n", err);
		rhd_config_usage(stderr, argv[0]);
		return 2;
	}
	if (rhd_log_set_level(cfg.log_level) < 0) {
		fprintf(stderr,
			"remhsmd: log-level '%s': info, warn or error\n",
			cfg.log_level);
		return 2;
	}
	if (strcmp(cfg.store_rollback, "refuse") &&
	    strcmp(cfg.store_rollback, "warn")) {
		fprintf(stderr,
			"remhsmd: store-rollback '%s': refuse or warn\n",
			cfg.store_rollback);
		return 2;
	}
	if (r == RHD_CHECK_CONFIG)
		return check_config(&cfg);
	/* A peer that vanishes mid-write must cost a connection, not the
	 * daemon. */
	signal(SIGPIPE, SIG_IGN);
	rh_secret_on_unlocked(warn_secrets_unlocked);
	if (!cfg.allow_core_dumps && forbid_core_dumps() < 0)
		return 1;
	secure_heap_start(cfg.secure_heap_kb);
	if (mkdir(cfg.state_dir, 0700) < 0 && errno != EEXIST) {
		RHD_ERROR("event=start-failed state_dir=%s reason=\"%s\"",
			  cfg.state_dir, strerror(errno));
		return 1;
	}
	return serve(&cfg);
}
