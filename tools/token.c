/*
 * remhsm token: create, list and re-PIN tokens through the PKCS#11 module,
 * as a gateway operator does. PINs come from flags, else the environment,
 * else a prompt on the terminal.
 */
#include "token.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "p11.h"

#define FREERTOS_LABEL "FreeRTOS"
#define FREERTOS_USER_PIN "0000"
#define MAX_SLOTS 64

typedef struct opts {
	const char *module;
	const char *label;
	const char *token;
	const char *so_pin;
	const char *pin;
	const char *new_pin;
	long slot;
	int freertos;
	int so;
} opts_t;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: remhsm token list\n"
		"       remhsm token init [--slot N] [--label L] [--so-pin P] "
		"[--pin P] [--freertos]\n"
		"       remhsm token set-pin [--token LABEL] [--so] [--pin "
		"OLD] [--new-pin NEW]\n"
		"options:\n"
		"  --module PATH  PKCS#11 module (default: the installed "
		"remhsm module)\n"
		"  --slot N       slot to initialise (default: the first blank "
		"token)\n"
		"  --label L      token label, at most 32 bytes\n"
		"  --so-pin P     SO PIN (else REMHSM_SO_PIN, else a prompt)\n"
		"  --pin P        user PIN; for init, also sets it (else "
		"REMHSM_PIN)\n"
		"  --new-pin P    new PIN for set-pin (else a prompt)\n"
		"  --freertos     FreeRTOS presets: label \"FreeRTOS\", user "
		"PIN \"0000\"\n"
		"  --token LABEL  token to act on (default: the only "
		"initialised one)\n"
		"  --so           set-pin changes the SO PIN (logs in as SO)\n"
		"The client is configured by REMHSM_SERVER, REMHSM_CA, "
		"REMHSM_CERT and\n"
		"REMHSM_KEY (or REMHSM_CONF). Exit codes: 0 done, 1 failed, 2 "
		"bad usage.\n");
}

static int failed(const char *what, CK_RV rv)
{
	return rh_failed("remhsm token", what, rv);
}

static CK_RV slots(CK_FUNCTION_LIST *p11, CK_SLOT_ID *list, CK_ULONG *n)
{
	*n = MAX_SLOTS;
	return p11->C_GetSlotList(CK_TRUE, list, n);
}

static int cmd_list(CK_FUNCTION_LIST *p11)
{
	CK_SLOT_ID list[MAX_SLOTS];
	CK_ULONG n;
	CK_RV rv = slots(p11, list, &n);
	if (rv != CKR_OK)
		return failed("C_GetSlotList", rv);
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO t;
		rv = p11->C_GetTokenInfo(list[i], &t);
		if (rv != CKR_OK) {
			printf("slot %lu: unavailable (%s)\n", list[i],
			       rh_ckr_name(rv));
			continue;
		}
		printf("slot %lu: label \"%.*s\", serial %.*s, %s%s%s%s\n",
		       list[i], (int)rh_trimmed_len(t.label, 32), t.label,
		       (int)rh_trimmed_len(t.serialNumber, 16), t.serialNumber,
		       t.flags & CKF_TOKEN_INITIALIZED ? "initialised"
						       : "blank",
		       t.flags & CKF_USER_PIN_INITIALIZED ? ", user PIN set"
							  : "",
		       t.flags & CKF_USER_PIN_LOCKED ? ", user PIN LOCKED" : "",
		       t.flags & CKF_SO_PIN_LOCKED ? ", SO PIN LOCKED" : "");
	}
	return 0;
}

static int first_blank(CK_FUNCTION_LIST *p11, CK_SLOT_ID *slot)
{
	CK_SLOT_ID list[MAX_SLOTS];
	CK_ULONG n;
	CK_RV rv = slots(p11, list, &n);
	if (rv != CKR_OK)
		return failed("C_GetSlotList", rv);
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO t;
		if (p11->C_GetTokenInfo(list[i], &t) == CKR_OK &&
		    !(t.flags & CKF_TOKEN_INITIALIZED)) {
			*slot = list[i];
			return 0;
		}
	}
	fprintf(stderr,
		"remhsm token: no blank token left; re-initialise one with "
		"--slot N (this wipes it)\n");
	return 1;
}

static CK_RV set_user_pin(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot,
			  const char *so_pin, const char *pin)
{
	CK_SESSION_HANDLE h;
	CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				      NULL, NULL, &h);
	if (rv != CKR_OK)
		return rv;
	rv = p11->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin));
	if (rv == CKR_OK)
		rv = p11->C_InitPIN(h, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	p11->C_CloseSession(h);
	return rv;
}

static int cmd_init(CK_FUNCTION_LIST *p11, const opts_t *o)
{
	const char *label = o->label	  ? o->label
			    : o->freertos ? FREERTOS_LABEL
					  : NULL;
	if (!label || strlen(label) > 32) {
		fprintf(stderr,
			"remhsm token init: give --label (at most 32 bytes) "
			"or --freertos\n");
		return 2;
	}
	CK_SLOT_ID slot = (CK_SLOT_ID)o->slot;
	if (o->slot < 0 && first_blank(p11, &slot))
		return 1;
	char *so_pin = rh_pin_from(o->so_pin, "REMHSM_SO_PIN", "SO PIN");
	/* A user PIN is set when one is given, or by the FreeRTOS preset. */
	char *pin = NULL;
	if (o->pin || getenv("REMHSM_PIN"))
		pin = rh_pin_from(o->pin, "REMHSM_PIN", "user PIN");
	else if (o->freertos)
		pin = strdup(FREERTOS_USER_PIN);
	int rc = 0;
	if (!so_pin) {
		fprintf(stderr, "remhsm token init: no SO PIN (--so-pin, "
				"REMHSM_SO_PIN)\n");
		rc = 2;
		goto out;
	}
	CK_UTF8CHAR padded[32];
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, strlen(label));
	CK_RV rv = p11->C_InitToken(slot, (CK_UTF8CHAR_PTR)so_pin,
				    strlen(so_pin), padded);
	if (rv != CKR_OK) {
		rc = failed("C_InitToken", rv);
		goto out;
	}
	if (pin && (rv = set_user_pin(p11, slot, so_pin, pin)) != CKR_OK) {
		rc = failed("setting the user PIN", rv);
		goto out;
	}
	printf("token \"%s\" initialised in slot %lu%s\n", label, slot,
	       pin ? " with its user PIN" : "; set a user PIN with --pin");
out:
	rh_pin_free(so_pin);
	rh_pin_free(pin);
	return rc;
}

static CK_RV change_pin(CK_FUNCTION_LIST *p11, CK_SLOT_ID slot, int so,
			const char *old_pin, const char *new_pin)
{
	CK_SESSION_HANDLE h;
	CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
				      NULL, NULL, &h);
	if (rv != CKR_OK)
		return rv;
	if (so)
		rv = p11->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)old_pin,
				  strlen(old_pin));
	if (rv == CKR_OK)
		rv = p11->C_SetPIN(h, (CK_UTF8CHAR_PTR)old_pin, strlen(old_pin),
				   (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin));
	p11->C_CloseSession(h);
	return rv;
}

static int cmd_set_pin(CK_FUNCTION_LIST *p11, const opts_t *o)
{
	CK_SLOT_ID slot;
	if (rh_find_token(p11, "remhsm token set-pin", o->token, &slot))
		return 1;
	char *old_pin =
		o->so ? rh_pin_from(o->so_pin ? o->so_pin : o->pin,
				    "REMHSM_SO_PIN", "current SO PIN")
		      : rh_pin_from(o->pin, "REMHSM_PIN", "current PIN");
	char *new_pin = rh_pin_from(o->new_pin, "REMHSM_NEW_PIN", "new PIN");
	int rc = 0;
	if (!old_pin || !new_pin) {
		fprintf(stderr,
			"remhsm token set-pin: give --pin and --new-pin\n");
		rc = 2;
	} else {
		CK_RV rv = change_pin(p11, slot, o->so, old_pin, new_pin);
		rc = rv == CKR_OK ? 0 : failed("C_SetPIN", rv);
		if (rc == 0)
			printf("%s PIN changed\n", o->so ? "SO" : "user");
	}
	rh_pin_free(old_pin);
	rh_pin_free(new_pin);
	return rc;
}

static int parse(int argc, char **argv, opts_t *o)
{
	static const struct option longopts[] = {
		{"module", required_argument, NULL, 'm'},
		{"slot", required_argument, NULL, 's'},
		{"label", required_argument, NULL, 'l'},
		{"token", required_argument, NULL, 't'},
		{"so-pin", required_argument, NULL, 'S'},
		{"pin", required_argument, NULL, 'p'},
		{"new-pin", required_argument, NULL, 'n'},
		{"freertos", no_argument, NULL, 'f'},
		{"so", no_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'm':
			o->module = optarg;
			break;
		case 's':
			o->slot = strtol(optarg, &end, 10);
			if (*end || o->slot < 0)
				return 2;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 't':
			o->token = optarg;
			break;
		case 'S':
			o->so_pin = optarg;
			break;
		case 'p':
			o->pin = optarg;
			break;
		case 'n':
			o->new_pin = optarg;
			break;
		case 'f':
			o->freertos = 1;
			break;
		case 'o':
			o->so = 1;
			break;
		case 'h':
			return 1;
		default:
			return 2;
		}
	}
	/* getopt_long moved the one non-option, the subcommand, to the end. */
	return optind == argc - 1 ? 0 : 2;
}

int rh_token_main(int argc, char **argv)
{
	opts_t o = {.module = rh_default_module(), .slot = -1};
	int r = parse(argc, argv, &o);
	if (r == 1) {
		usage(stdout);
		return 0;
	}
	const char *sub = r == 0 ? argv[argc - 1] : "";
	if (strcmp(sub, "list") && strcmp(sub, "init") &&
	    strcmp(sub, "set-pin")) {
		usage(stderr);
		return 2;
	}
	void *handle;
	CK_FUNCTION_LIST *p11 = rh_p11_load(o.module, &handle);
	if (!p11)
		return 1;
	int rc = !strcmp(sub, "list")	? cmd_list(p11)
		 : !strcmp(sub, "init") ? cmd_init(p11, &o)
					: cmd_set_pin(p11, &o);
	p11->C_Finalize(NULL);
	return rc;
}
