/*
 * What every remhsm command that works on a token shares: PINs from a flag,
 * the environment or the terminal, and choosing the token by label.
 */
#ifndef RH_CLI_H
#define RH_CLI_H

#include <p11-kit/pkcs11.h>
#include <stddef.h>

/* A PIN from flag, else the environment variable env, else a prompt on the
 * terminal (without echo); NULL when there is none. Free with rh_pin_free. */
char *rh_pin_from(const char *flag, const char *env, const char *prompt);
void rh_pin_free(char *pin);

/* The length of a blank-padded PKCS#11 text field without its padding. */
size_t rh_trimmed_len(const CK_UTF8CHAR *s, size_t n);

/* The slot of the initialised token labelled label, or of the only one
 * when label is NULL. 0, or 1 after saying on stderr what to do; `who`
 * prefixes the message ("remhsm key gen"). */
int rh_find_token(CK_FUNCTION_LIST *p11, const char *who, const char *label,
		  CK_SLOT_ID *slot);

/*
 * The PKCS#11 module to load when --module does not name one:
 * $REMHSM_MODULE, else the module installed beside this program
 * (BINDIR/../LIBDIR, wherever the installation was moved), else the one at
 * the configured install prefix.
 */
const char *rh_default_module(void);

/* Reports a failed call as "who: what failed: CKR_…"; returns 1. */
int rh_failed(const char *who, const char *what, CK_RV rv);

#endif
