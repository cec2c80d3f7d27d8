#include "cli.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <termios.h>
#include <unistd.h>

#include "p11.h"
#include "reach.h"

#define MAX_SLOTS 64

char *rh_pin_from(const char *flag, const char *env, const char *prompt)
{
	if (flag)
		return strdup(flag);
	const char *value = getenv(env);
	if (value && *value)
		return strdup(value);
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty)
		return NULL;
	struct termios old, quiet;
	int fd = fileno(tty);
	int restore = tcgetattr(fd, &old) == 0;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &quiet);
	fprintf(tty, "%s: ", prompt);
	fflush(tty);
	char buf[256];
	char *line = fgets(buf, sizeof(buf), tty);
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	fprintf(tty, "\n");
	fclose(tty);
	if (!line)
		return NULL;
	buf[strcspn(buf, "\n")] = '\0';
	char *pin = strdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return pin;
}

void rh_pin_free(char *pin)
{
	if (pin)
		OPENSSL_cleanse(pin, strlen(pin));
	free(pin);
}

size_t rh_trimmed_len(const CK_UTF8CHAR *s, size_t n)
{
	while (n > 0 && s[n - 1] == ' ')
		n--;
	return n;
}

int rh_failed(const char *who, const char *what, CK_RV rv)
{
	char why[800];
	/* The module's words for a daemon it could not reach, or that broke
	 * the link (CKR_FUNCTION_FAILED from the functions that may not
	 * answer CKR_DEVICE_ERROR): find out which, and say where and why. */
	char where[700] = "";
	if (rv == CKR_DEVICE_ERROR || rv == CKR_FUNCTION_FAILED)
		rh_explain_unreachable(where, sizeof(where));
	snprintf(why, sizeof(why), "%s%s%s", rh_ckr_name(rv),
		 where[0] ? ": " : "", where);
	fprintf(stderr, "%s: %s failed: %s\n", who, what, why);
	return 1;
}

int rh_find_token(CK_FUNCTION_LIST *p11, const char *who, const char *label,
		  CK_SLOT_ID *slot)
{
	CK_SLOT_ID list[MAX_SLOTS];
	CK_ULONG n = MAX_SLOTS;
	CK_RV rv = p11->C_GetSlotList(CK_TRUE, list, &n);
	if (rv != CKR_OK)
		return rh_failed(who, "C_GetSlotList", rv);
	int found = 0;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO t;
		if (p11->C_GetTokenInfo(list[i], &t) != CKR_OK ||
		    !(t.flags & CKF_TOKEN_INITIALIZED))
			continue;
		size_t len = rh_trimmed_len(t.label, 32);
		if (label &&
		    (strlen(label) != len || memcmp(label, t.label, len)))
			continue;
		*slot = list[i];
		found++;
	}
	if (found == 1)
		return 0;
	if (found)
		fprintf(stderr,
			"%s: several tokens; name one with --token LABEL\n",
			who);
	else
		fprintf(stderr,
			"%s: no such initialised token; see remhsm token "
			"list\n",
			who);
	return 1;
}

const char *rh_default_module(void)
{
	const char *env = getenv("REMHSM_MODULE");
	if (env && *env)
		return env;
	static char beside[PATH_MAX];
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		int len =
			snprintf(beside, sizeof(beside), "%.*s/%s",
				 PATH_MAX / 2, exe, REMHSM_MODULE_FROM_BINDIR);
		if (len > 0 && (size_t)len < sizeof(beside) &&
		    access(beside, R_OK) == 0)
			return beside;
	}
	return REMHSM_DEFAULT_MODULE;
}
