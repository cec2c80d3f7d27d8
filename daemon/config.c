#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rh_setting.h"

void rhd_config_defaults(rhd_config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:%d",
		 RHD_DEFAULT_PORT);
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", "state");
	snprintf(cfg->store_rollback, sizeof(cfg->store_rollback), "refuse");
	snprintf(cfg->identity_from, sizeof(cfg->identity_from), "cn");
	/* A client sends its ClientHello at once and finishes the handshake
	 * in a round trip or two: these only bound what a peer that does not
	 * can hold. */
	cfg->handshake_timeout_ms = 5000;
	cfg->first_byte_timeout_ms = 1000;
	cfg->frame_timeout_ms = 10000;
	cfg->store_wait_ms = 10000;
	cfg->store_poll_ms = 100;
	cfg->store_connections = 1;
	cfg->idle_timeout_ms = 300000;
	cfg->drain_timeout_ms = 10000;
	cfg->max_frame = 1u << 20;
	cfg->max_connections = 1024;
	cfg->max_connections_per_identity = 256;
	cfg->max_handshakes = 128;
	cfg->max_handshakes_per_address = 16;
	cfg->max_inflight = 64;
	cfg->max_sessions = 1024;
	cfg->max_session_objects = 4096;
	cfg->max_app_memory_mb = 32;
	cfg->max_identity_memory_mb = 128;
	cfg->max_memory_mb = 1024;
	snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
	cfg->slots = 1;
	cfg->pin_max_failures = 10;
	cfg->login_lease_s = 900;
	cfg->busy_poll_us = 50;
	cfg->worker_threads = 4;
	/* scrypt N=2^15, r=8, p=1: 32 MiB and tens of milliseconds a try. */
	cfg->kdf_scrypt_n = 32768;
	cfg->secure_heap_kb = 4096;
	cfg->kdf_scrypt_r = 8;
	cfg->kdf_scrypt_p = 1;
}

typedef enum { KIND_TEXT, KIND_UINT, KIND_BOOL, KIND_POW2 } kind_t;

/* Every setting, once: the file's keys and the flags are the same names. */
static const struct setting {
	const char *key;
	kind_t kind;
	size_t offset;
	size_t size;
	unsigned min, max;
} settings[] = {
#define TEXT(k, f)                                                             \
	{                                                                      \
		k, KIND_TEXT, offsetof(rhd_config_t, f),                       \
			sizeof(((rhd_config_t *)0)->f), 0, 0                   \
	}
#define UINT(k, f, lo, hi)                                                     \
	{                                                                      \
		k, KIND_UINT, offsetof(rhd_config_t, f), 0, lo, hi             \
	}
	TEXT("listen", listen),
	TEXT("state-dir", state_dir),
	TEXT("store-key", store_key),
	TEXT("store", store),
	TEXT("store-rollback", store_rollback),
	UINT("store-wait-ms", store_wait_ms, 100, 600000),
	TEXT("tls-ca", tls_ca),
	TEXT("tls-cert", tls_cert),
	TEXT("tls-key", tls_key),
	TEXT("tls-crl", tls_crl),
	TEXT("access-list", access_list),
	TEXT("identity-from", identity_from),
	TEXT("metrics-listen", metrics_listen),
	{"tls12", KIND_BOOL, offsetof(rhd_config_t, tls12), 0, 0, 1},
	{"tls-client-eku-optional", KIND_BOOL,
	 offsetof(rhd_config_t, tls_client_eku_optional), 0, 0, 1},
	{"allow-core-dumps", KIND_BOOL,
	 offsetof(rhd_config_t, allow_core_dumps), 0, 0, 1},
	{"store-standby", KIND_BOOL, offsetof(rhd_config_t, store_standby), 0,
	 0, 1},
	{"store-shared", KIND_BOOL, offsetof(rhd_config_t, store_shared), 0, 0,
	 1},
	{"allow-legacy", KIND_BOOL, offsetof(rhd_config_t, allow_legacy), 0, 0,
	 1},
	{"allow-rsa-pkcs1-encryption", KIND_BOOL,
	 offsetof(rhd_config_t, allow_rsa_pkcs1_encryption), 0, 0, 1},
	UINT("store-poll-ms", store_poll_ms, 10, 60000),
	UINT("store-connections", store_connections, 1, 64),
	UINT("handshake-timeout-ms", handshake_timeout_ms, 10, 600000),
	UINT("first-byte-timeout-ms", first_byte_timeout_ms, 10, 600000),
	UINT("frame-timeout-ms", frame_timeout_ms, 10, 600000),
	UINT("idle-timeout-ms", idle_timeout_ms, 10, 86400000),
	UINT("drain-timeout-ms", drain_timeout_ms, 0, 600000),
	UINT("max-frame", max_frame, 1024, 64u << 20),
	UINT("max-connections", max_connections, 1, 1000000),
	UINT("max-connections-per-identity", max_connections_per_identity, 1,
	     1000000),
	UINT("max-handshakes", max_handshakes, 1, 100000),
	UINT("max-handshakes-per-address", max_handshakes_per_address, 1,
	     100000),
	UINT("max-inflight", max_inflight, 1, 4096),
	UINT("max-identity-workers", max_identity_workers, 0, 1024),
	UINT("max-sessions", max_sessions, 1, 1u << 20),
	UINT("max-session-objects", max_session_objects, 1, 1u << 20),
	UINT("max-app-memory-mb", max_app_memory_mb, 1, 1u << 20),
	UINT("max-identity-memory-mb", max_identity_memory_mb, 1, 1u << 20),
	UINT("max-memory-mb", max_memory_mb, 1, 1u << 20),
	TEXT("log-level", log_level),
	UINT("slots", slots, 1, 64),
	UINT("pin-max-failures", pin_max_failures, 1, 1000),
	UINT("login-lease-s", login_lease_s, 0, 86400),
	UINT("busy-poll-us", busy_poll_us, 0, 10000),
	UINT("loops", loops, 0, 256),
	UINT("worker-threads", worker_threads, 1, 256),
	{"kdf-scrypt-n", KIND_POW2, offsetof(rhd_config_t, kdf_scrypt_n), 0, 2,
	 1u << 22},
	UINT("kdf-scrypt-r", kdf_scrypt_r, 1, 64),
	{"secure-heap-kb", KIND_POW2, offsetof(rhd_config_t, secure_heap_kb), 0,
	 0, 1u << 20},
	UINT("kdf-scrypt-p", kdf_scrypt_p, 1, 16),
#undef TEXT
#undef UINT
};

static const struct setting *find_setting(const char *key)
{
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (!strcmp(settings[i].key, key))
			return &settings[i];
	return NULL;
}

static int set_text(char *dst, size_t cap, const char *key, const char *value,
		    char *err, size_t err_len)
{
	if (strlen(value) >= cap || value[0] == '\0') {
		snprintf(err, err_len, "%s: value is empty or too long", key);
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

static int set_uint(unsigned *dst, const struct setting *st, const char *value,
		    char *err, size_t err_len)
{
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(value, &end, 10);
	if (errno || !isdigit((unsigned char)value[0]) || *end != '\0' ||
	    v < st->min || v > st->max) {
		snprintf(err, err_len,
			 "%s: expected an integer in %u..%u, got '%s'", st->key,
			 st->min, st->max, value);
		return -1;
	}
	if (st->kind == KIND_POW2 && (v & (v - 1))) {
		snprintf(err, err_len, "%s: must be a power of two, got '%s'",
			 st->key, value);
		return -1;
	}
	*dst = (unsigned)v;
	return 0;
}

static int set_bool(int *dst, const char *key, const char *value, char *err,
		    size_t err_len)
{
	if (!strcmp(value, "true") || !strcmp(value, "yes") ||
	    !strcmp(value, "1")) {
		*dst = 1;
		return 0;
	}
	if (!strcmp(value, "false") || !strcmp(value, "no") ||
	    !strcmp(value, "0")) {
		*dst = 0;
		return 0;
	}
	snprintf(err, err_len, "%s: expected true or false, got '%s'", key,
		 value);
	return -1;
}

int rhd_config_set(rhd_config_t *cfg, const char *key, const char *value,
		   char *err, size_t err_len)
{
	const struct setting *st = find_setting(key);
	if (!st) {
		snprintf(err, err_len, "unknown key '%s'", key);
		return -1;
	}
	void *field = (char *)cfg + st->offset;
	switch (st->kind) {
	case KIND_TEXT:
		return set_text(field, st->size, key, value, err, err_len);
	case KIND_BOOL:
		return set_bool(field, key, value, err, err_len);
	default:
		return set_uint(field, st, value, err, err_len);
	}
}

static int parse_line(rhd_config_t *cfg, char *line, char *err, size_t err_len)
{
	char *key, *value;
	int kind = rh_setting_split(line, &key, &value);
	if (kind < 0)
		snprintf(err, err_len, "expected 'key = value', got '%.64s'",
			 key);
	return kind > 0 ? rhd_config_set(cfg, key, value, err, err_len) : kind;
}

int rhd_config_load_file(rhd_config_t *cfg, const char *path, char *err,
			 size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	char line[PATH_MAX + 64];
	char why[512];
	unsigned lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, err_len, "%s:%u: line too long", path,
				 lineno);
			rc = -1;
			break;
		}
		if (parse_line(cfg, line, why, sizeof(why)) < 0) {
			snprintf(err, err_len, "%s:%u: %s", path, lineno, why);
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

static int default_tls_path(char *dst, size_t cap, const char *state_dir,
			    const char *file)
{
	if (dst[0] != '\0')
		return 0;
	size_t need = strlen(state_dir) + strlen("/pki/") + strlen(file) + 1;
	if (need > cap)
		return -1;
	memcpy(dst, state_dir, strlen(state_dir));
	memcpy(dst + strlen(state_dir), "/pki/", 5);
	memcpy(dst + strlen(state_dir) + 5, file, strlen(file) + 1);
	return 0;
}

static int find_config_flag(int argc, char **argv, const char **path)
{
	*path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config")) {
			if (i + 1 >= argc)
				return -1;
			*path = argv[i + 1];
		} else if (!strncmp(argv[i], "--config=", 9)) {
			*path = argv[i] + 9;
		}
	}
	return 0;
}

/* One flag: "--key value", "--key=value", or "--tls12" alone. */
static int apply_flag(rhd_config_t *cfg, int argc, char **argv, int *i,
		      char *err, size_t err_len)
{
	char name[64];
	const char *arg = argv[*i] + 2;
	const char *eq = strchr(arg, '=');
	size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
	if (name_len >= sizeof(name))
		name_len = sizeof(name) - 1;
	memcpy(name, arg, name_len);
	name[name_len] = '\0';
	if (!strcmp(name, "config")) {
		*i += eq ? 0 : 1;
		return 0;
	}
	if (!find_setting(name)) {
		snprintf(err, err_len, "unknown option '%s'", argv[*i]);
		return -1;
	}
	const char *value = eq ? eq + 1 : NULL;
	if (!value && find_setting(name)->kind == KIND_BOOL)
		value = "true";
	if (!value) {
		if (*i + 1 >= argc) {
			snprintf(err, err_len, "option --%s needs a value",
				 name);
			return -1;
		}
		value = argv[++*i];
	}
	return rhd_config_set(cfg, name, value, err, err_len);
}

int rhd_config_from_args(rhd_config_t *cfg, int argc, char **argv, char *err,
			 size_t err_len)
{
	const char *path;
	if (find_config_flag(argc, argv, &path) < 0) {
		snprintf(err, err_len, "option --config needs a value");
		return -1;
	}
	if (path && rhd_config_load_file(cfg, path, err, err_len) < 0)
		return -1;
	int what = RHD_RUN;
	cfg->argc = argc;
	cfg->argv = argv;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return RHD_HELP;
		if (!strcmp(argv[i], "--version"))
			return RHD_VERSION;
		if (!strcmp(argv[i], "--check-config")) {
			what = RHD_CHECK_CONFIG;
			continue;
		}
		if (strncmp(argv[i], "--", 2) != 0) {
			snprintf(err, err_len, "unexpected argument '%s'",
				 argv[i]);
			return -1;
		}
		if (apply_flag(cfg, argc, argv, &i, err, err_len) < 0)
			return -1;
	}
	if (default_tls_path(cfg->tls_ca, sizeof(cfg->tls_ca), cfg->state_dir,
			     "ca.pem") < 0 ||
	    default_tls_path(cfg->tls_cert, sizeof(cfg->tls_cert),
			     cfg->state_dir, "server.pem") < 0 ||
	    default_tls_path(cfg->tls_key, sizeof(cfg->tls_key), cfg->state_dir,
			     "server.key") < 0) {
		snprintf(err, err_len, "state-dir: path too long");
		return -1;
	}
	return what;
}

void rhd_config_usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [options]\n"
		"  --config FILE              read 'key = value' settings "
		"(flags override)\n"
		"  --check-config             check the settings and the TLS "
		"files, then exit\n"
		"  --version                  print the version and exit\n"
		"  --listen ADDR:PORT         address to serve (default "
		"127.0.0.1:%d)\n"
		"  --state-dir DIR            state folder (default ./state)\n"
		"  --store-key FILE           the store key, kept apart from "
		"the state folder\n"
		"                             (default: the systemd credential "
		"remhsm-store-key,\n"
		"                             else STATE/store.key)\n"
		"  --store LOCATION           the store: a path or sqlite:PATH "
		"(STATE/store.db),\n"
		"                             or postgresql://... (a libpq "
		"connection URI)\n"
		"  --store-standby            while another remhsmd writes "
		"the store, wait,\n"
		"                             and serve once it has let go "
		"(default: refuse)\n"
		"  --store-wait-ms N          a database round trip longer "
		"than this fails the\n"
		"                             call (PostgreSQL; 10000)\n"
		"  --allow-legacy             serve RSA keys of 1024 bits, "
		"SHA-1 in signatures\n"
		"                             and raw RSA signing, for old "
		"devices (default: off)\n"
		"  --allow-rsa-pkcs1-encryption  serve CKM_RSA_PKCS for "
		"C_Encrypt/C_Decrypt;\n"
		"                             its decryption is a padding "
		"oracle (default: off)\n"
		"  --store-shared             other remhsmd write the same "
		"PostgreSQL store at\n"
		"                             once (a cluster; default: one "
		"writer)\n"
		"  --store-poll-ms N          how often a shared store is "
		"asked what the others\n"
		"                             changed (100)\n"
		"  --store-connections N      database sessions: the writer's "
		"and N - 1 that\n"
		"                             reads and finds share "
		"(PostgreSQL; 1)\n"
		"  --store-rollback MODE      a store older than the audit log "
		"last recorded:\n"
		"                             refuse (default) or warn and "
		"start\n"
		"  --tls-ca FILE              CA that client certificates must "
		"chain to\n"
		"                             (default STATE/pki/ca.pem)\n"
		"  --tls-cert FILE            server certificate (default "
		"STATE/pki/server.pem)\n"
		"  --tls-key FILE             server key (default "
		"STATE/pki/server.key)\n"
		"  --tls12                    also accept TLS 1.2 (default: "
		"TLS 1.3 only)\n"
		"  --tls-client-eku-optional  admit client certificates "
		"without an extended\n"
		"                             key usage (default: clientAuth "
		"required)\n"
		"  --allow-core-dumps         let the daemon dump core, keys "
		"and all (debugging\n"
		"                             only; default: not dumpable)\n"
		"  --tls-crl FILE             refuse client certificates this "
		"CRL revokes\n"
		"  --access-list FILE         who may connect, to which slots, "
		"in which roles\n"
		"                             (default: every certified "
		"client, everything)\n"
		"  --identity-from KIND       a client's identity: cn, "
		"san-uri, "
		"san-dns or\n"
		"                             fingerprint (cn)\n"
		"  --handshake-timeout-ms N   close handshakes not done N ms "
		"after connecting\n"
		"                             (5000)\n"
		"  --first-byte-timeout-ms N  close connections silent for N "
		"ms after\n"
		"                             connecting (1000)\n"
		"  --frame-timeout-ms N       close connections whose frame is "
		"not whole N ms\n"
		"                             after its first byte (10000)\n"
		"  --idle-timeout-ms N        close connections without a "
		"request for N ms\n"
		"                             (300000)\n"
		"  --drain-timeout-ms N       on SIGTERM, wait at most N ms "
		"for calls (10000)\n"
		"  --max-frame N              largest accepted frame in bytes "
		"(1048576)\n"
		"  --max-connections N        established connections (1024)\n"
		"  --max-handshakes N         connections still in the TLS "
		"handshake (128)\n"
		"  --max-handshakes-per-address N\n"
		"                             of them from one address (16)\n"
		"  --metrics-listen ADDR:PORT serve Prometheus metrics there "
		"(loopback only;\n"
		"                             default: off)\n"
		"  --max-connections-per-identity N\n"
		"                             of them from one identity (256)\n"
		"  --max-inflight N           calls one connection may have "
		"running; past it\n"
		"                             the daemon stops reading from it "
		"(64)\n"
		"  --max-identity-workers N   worker threads one identity's "
		"long calls (key\n"
		"                             generation, logins) may hold at "
		"once (0: half)\n"
		"  --slots N                  slots to expose (1)\n"
		"  --max-sessions N           sessions one application may "
		"hold (1024)\n"
		"  --max-session-objects N    session objects one application "
		"may hold (4096)\n"
		"  --max-app-memory-mb N      memory one application's session "
		"objects and\n"
		"                             find results may take (32)\n"
		"  --max-identity-memory-mb N the same for all applications of "
		"one identity (128)\n"
		"  --max-memory-mb N          the same for the whole daemon "
		"(1024)\n"
		"  --log-level LEVEL          info, warn or error (info)\n"
		"  --pin-max-failures N       wrong PINs in a row that lock it "
		"(10)\n"
		"  --login-lease-s N          a login survives a restart or a "
		"dropped\n"
		"                             connection for N s (900; 0: "
		"never)\n"
		"  --busy-poll-us N           after a request, poll without "
		"sleeping for N us\n"
		"                             before waiting again (50; 0: "
		"off)\n"
		"  --loops N                  event loops serving connections "
		"(0: one per\n"
		"                             online CPU)\n"
		"  --worker-threads N         threads for long calls (4)\n"
		"  --kdf-scrypt-n N           scrypt cost of new PINs, a power "
		"of 2 (32768)\n"
		"  --kdf-scrypt-r N           scrypt block size of new PINs "
		"(8)\n"
		"  --kdf-scrypt-p N           scrypt parallelism of new PINs "
		"(1)\n"
		"  --secure-heap-kb N         OpenSSL's locked heap for "
		"private "
		"keys, a power\n"
		"                             of 2 (4096; 0: none)\n",
		prog, RHD_DEFAULT_PORT);
}
