#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rhd_config_defaults(rhd_config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->listen, sizeof(cfg->listen), "127.0.0.1:%d",
		 RHD_DEFAULT_PORT);
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", "state");
	cfg->handshake_timeout_ms = 10000;
	cfg->idle_timeout_ms = 300000;
	cfg->drain_timeout_ms = 10000;
	cfg->max_frame = 1u << 20;
	cfg->max_connections = 1024;
	cfg->slots = 1;
}

static int set_string(char *dst, size_t cap, const char *key, const char *value,
		      char *err, size_t err_len)
{
	if (strlen(value) >= cap || value[0] == '\0') {
		snprintf(err, err_len, "%s: value is empty or too long", key);
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

static int set_uint(unsigned *dst, unsigned min, unsigned max, const char *key,
		    const char *value, char *err, size_t err_len)
{
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(value, &end, 10);
	if (errno || !isdigit((unsigned char)value[0]) || *end != '\0' ||
	    v < min || v > max) {
		snprintf(err, err_len,
			 "%s: expected an integer in %u..%u, got '%s'", key,
			 min, max, value);
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

#define STR(field)                                                             \
	set_string(cfg->field, sizeof(cfg->field), key, value, err, err_len)
#define UINT(field, lo, hi)                                                    \
	set_uint(&cfg->field, lo, hi, key, value, err, err_len)

int rhd_config_set(rhd_config_t *cfg, const char *key, const char *value,
		   char *err, size_t err_len)
{
	if (!strcmp(key, "listen"))
		return STR(listen);
	if (!strcmp(key, "state-dir"))
		return STR(state_dir);
	if (!strcmp(key, "tls-ca"))
		return STR(tls_ca);
	if (!strcmp(key, "tls-cert"))
		return STR(tls_cert);
	if (!strcmp(key, "tls-key"))
		return STR(tls_key);
	if (!strcmp(key, "tls12"))
		return set_bool(&cfg->tls12, key, value, err, err_len);
	if (!strcmp(key, "handshake-timeout-ms"))
		return UINT(handshake_timeout_ms, 10, 600000);
	if (!strcmp(key, "idle-timeout-ms"))
		return UINT(idle_timeout_ms, 10, 86400000);
	if (!strcmp(key, "drain-timeout-ms"))
		return UINT(drain_timeout_ms, 0, 600000);
	if (!strcmp(key, "max-frame"))
		return UINT(max_frame, 1024, 64u << 20);
	if (!strcmp(key, "max-connections"))
		return UINT(max_connections, 1, 1000000);
	if (!strcmp(key, "slots"))
		return UINT(slots, 1, 64);
	snprintf(err, err_len, "unknown key '%s'", key);
	return -1;
}

#undef STR
#undef UINT

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int parse_line(rhd_config_t *cfg, char *line, char *err, size_t err_len)
{
	char *s = trim(line);
	if (*s == '\0' || *s == '#')
		return 0;
	char *eq = strchr(s, '=');
	if (!eq) {
		snprintf(err, err_len, "expected 'key = value', got '%.64s'",
			 s);
		return -1;
	}
	*eq = '\0';
	return rhd_config_set(cfg, trim(s), trim(eq + 1), err, err_len);
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

static const char *const flag_keys[] = {"listen",
					"state-dir",
					"tls-ca",
					"tls-cert",
					"tls-key",
					"tls12",
					"handshake-timeout-ms",
					"idle-timeout-ms",
					"drain-timeout-ms",
					"max-frame",
					"max-connections",
					"slots",
					NULL};

static int is_flag_key(const char *name)
{
	for (size_t i = 0; flag_keys[i]; i++)
		if (!strcmp(flag_keys[i], name))
			return 1;
	return 0;
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
	if (!is_flag_key(name)) {
		snprintf(err, err_len, "unknown option '%s'", argv[*i]);
		return -1;
	}
	const char *value = eq ? eq + 1 : NULL;
	if (!value && !strcmp(name, "tls12"))
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
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
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
	return 0;
}

void rhd_config_usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [options]\n"
		"  --config FILE              read 'key = value' settings "
		"(flags override)\n"
		"  --listen ADDR:PORT         address to serve (default "
		"127.0.0.1:%d)\n"
		"  --state-dir DIR            state folder (default ./state)\n"
		"  --tls-ca FILE              CA that client certificates must "
		"chain to\n"
		"                             (default STATE/pki/ca.pem)\n"
		"  --tls-cert FILE            server certificate (default "
		"STATE/pki/server.pem)\n"
		"  --tls-key FILE             server key (default "
		"STATE/pki/server.key)\n"
		"  --tls12                    also accept TLS 1.2 (default: "
		"TLS 1.3 only)\n"
		"  --handshake-timeout-ms N   close handshakes slower than N "
		"ms (10000)\n"
		"  --idle-timeout-ms N        close connections idle for N ms "
		"(300000)\n"
		"  --drain-timeout-ms N       on SIGTERM, wait at most N ms "
		"for calls (10000)\n"
		"  --max-frame N              largest accepted frame in bytes "
		"(1048576)\n"
		"  --max-connections N        concurrent connections (1024)\n"
		"  --slots N                  slots to expose (1)\n",
		prog, RHD_DEFAULT_PORT);
}
