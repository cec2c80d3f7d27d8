#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rh_setting.h"
#include "rhc.h"

#define DEFAULT_SERVER "127.0.0.1:5697"

static int debug_on;

void rhc_set_debug(int on)
{
	debug_on = on;
}

void rhc_debug(const char *fmt, ...)
{
	if (!debug_on)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "remhsm-pkcs11: %s\n", line);
}

static int set_text(char *dst, size_t cap, const char *value)
{
	if (strlen(value) >= cap)
		return -1;
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

static int set_ms(unsigned *dst, const char *value, unsigned long min)
{
	char *end = NULL;
	errno = 0;
	unsigned long v = strtoul(value, &end, 10);
	if (errno || !isdigit((unsigned char)value[0]) || *end || v < min ||
	    v > 3600000)
		return -1;
	*dst = (unsigned)v;
	return 0;
}

static int set_server_choice(rhc_config_t *cfg, const char *value)
{
	if (!strcmp(value, "first"))
		cfg->server_choice = RHC_FIRST;
	else if (!strcmp(value, "spread"))
		cfg->server_choice = RHC_SPREAD;
	else if (!strcmp(value, "least-busy"))
		cfg->server_choice = RHC_LEAST_BUSY;
	else
		return -1;
	return 0;
}

static int set_key(rhc_config_t *cfg, const char *key, const char *value)
{
	if (!strcmp(key, "server"))
		return set_text(cfg->server, sizeof(cfg->server), value);
	if (!strcmp(key, "ca"))
		return set_text(cfg->ca, sizeof(cfg->ca), value);
	if (!strcmp(key, "cert"))
		return set_text(cfg->cert, sizeof(cfg->cert), value);
	if (!strcmp(key, "key"))
		return set_text(cfg->key, sizeof(cfg->key), value);
	if (!strcmp(key, "timeout-ms"))
		return set_ms(&cfg->call_timeout_ms, value, 1);
	if (!strcmp(key, "connect-timeout-ms"))
		return set_ms(&cfg->connect_timeout_ms, value, 1);
	if (!strcmp(key, "reconnect-ms"))
		return set_ms(&cfg->reconnect_timeout_ms, value, 0);
	if (!strcmp(key, "spin-us"))
		return set_ms(&cfg->spin_us, value, 0);
	if (!strcmp(key, "server-choice"))
		return set_server_choice(cfg, value);
	if (!strcmp(key, "compat")) {
		cfg->compat_freertos = !strcmp(value, "freertos");
		return cfg->compat_freertos || !strcmp(value, "none") ? 0 : -1;
	}
	return -1;
}

static int load_file(rhc_config_t *cfg, const char *path, char *err,
		     size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, err_len, "REMHSM_CONF %s: %s", path,
			 strerror(errno));
		return -1;
	}
	char line[PATH_MAX + 64];
	unsigned lineno = 0;
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		char *key, *value;
		int kind = rh_setting_split(line, &key, &value);
		if (kind < 0 || (kind > 0 && set_key(cfg, key, value) < 0)) {
			snprintf(err, err_len, "%s:%u: bad setting '%s'", path,
				 lineno, key);
			rc = -1;
		}
	}
	fclose(f);
	return rc;
}

static int from_env(rhc_config_t *cfg, const char *var, const char *key,
		    char *err, size_t err_len)
{
	const char *value = getenv(var);
	if (!value || !*value)
		return 0;
	if (set_key(cfg, key, value) < 0) {
		snprintf(err, err_len, "%s: bad value", var);
		return -1;
	}
	return 0;
}

int rhc_config_load(rhc_config_t *cfg, char *err, size_t err_len)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->server, sizeof(cfg->server), "%s", DEFAULT_SERVER);
	cfg->connect_timeout_ms = 5000;
	cfg->call_timeout_ms = 60000;
	cfg->reconnect_timeout_ms = 15000;
	cfg->spin_us = 100;
	const char *debug = getenv("REMHSM_DEBUG");
	cfg->debug = debug && *debug && strcmp(debug, "0") != 0;
	const char *conf = getenv("REMHSM_CONF");
	if (conf && *conf && load_file(cfg, conf, err, err_len) < 0)
		return -1;
	if (from_env(cfg, "REMHSM_SERVER", "server", err, err_len) < 0 ||
	    from_env(cfg, "REMHSM_CA", "ca", err, err_len) < 0 ||
	    from_env(cfg, "REMHSM_CERT", "cert", err, err_len) < 0 ||
	    from_env(cfg, "REMHSM_KEY", "key", err, err_len) < 0 ||
	    from_env(cfg, "REMHSM_TIMEOUT_MS", "timeout-ms", err, err_len) <
		    0 ||
	    from_env(cfg, "REMHSM_RECONNECT_MS", "reconnect-ms", err, err_len) <
		    0 ||
	    from_env(cfg, "REMHSM_SPIN_US", "spin-us", err, err_len) < 0 ||
	    from_env(cfg, "REMHSM_COMPAT", "compat", err, err_len) < 0 ||
	    from_env(cfg, "REMHSM_SERVER_CHOICE", "server-choice", err,
		     err_len) < 0)
		return -1;
	if (!cfg->ca[0] || !cfg->cert[0] || !cfg->key[0]) {
		snprintf(err, err_len,
			 "REMHSM_CA, REMHSM_CERT and REMHSM_KEY (or "
			 "REMHSM_CONF) "
			 "must name the CA, client certificate and key");
		return -1;
	}
	return 0;
}
