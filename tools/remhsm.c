/* remhsm: the admin and provisioning command line. */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "bench.h"
#include "pki.h"
#include "provision.h"
#include "storecheck.h"
#include "token.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: remhsm COMMAND [ARGS]\n"
		     "commands:\n"
		     "  pki init DIR [--force] [--server-name NAME]...\n"
		     "                           make a development CA, server "
		     "and client\n"
		     "                           certificate (ca.pem, "
		     "server.pem/.key,\n"
		     "                           client.pem/.key) in DIR\n"
		     "  token init|list|set-pin  create and re-PIN tokens "
		     "(remhsm token --help)\n"
		     "  key gen|import           make or import a key pair\n"
		     "  csr                      a PKCS#10 request signed "
		     "inside remhsm\n"
		     "  cert import              store a certificate next to "
		     "its key\n"
		     "  pubkey export            a key's public half as PEM\n"
		     "  object list|show|delete  the objects on a token\n"
		     "                           (remhsm key --help, and so "
		     "on)\n"
		     "  audit verify FILE        check remhsmd's hash-chained "
		     "audit log\n"
		     "  store check --state-dir DIR\n"
		     "                           check every record, index "
		     "and counter of a\n"
		     "                           store (remhsmd may run)\n"
		     "  store copy --state-dir DIR FROM TO\n"
		     "                           copy a store to another "
		     "backend, checked\n"
		     "                           record by record\n"
		     "  bench [OPTIONS]          measure round trips through a "
		     "PKCS#11\n"
		     "                           module (remhsm bench --help)\n"
		     "exit codes: 0 success, 1 failure, 2 bad usage\n");
}

static int pki_main(int argc, char **argv)
{
	int force = 0, bad = argc < 3 || strcmp(argv[1], "init") != 0;
	char names[600] = "";
	for (int i = 3; !bad && i < argc; i++) {
		if (!strcmp(argv[i], "--force")) {
			force = 1;
		} else if (!strcmp(argv[i], "--server-name") && i + 1 < argc &&
			   strlen(names) + strlen(argv[i + 1]) + 2 <
				   sizeof(names)) {
			size_t n = strlen(names);
			snprintf(names + n, sizeof(names) - n, "%s%s",
				 n ? "," : "", argv[++i]);
		} else {
			bad = 1;
		}
	}
	if (bad) {
		fprintf(stderr, "usage: remhsm pki init DIR [--force] "
				"[--server-name NAME]...\n");
		return 2;
	}
	char err[512];
	int r = rh_pki_init_named(argv[2], force, names[0] ? names : NULL, err,
				  sizeof(err));
	if (r < 0) {
		fprintf(stderr, "remhsm pki init: %s\n", err);
		return 1;
	}
	printf(r == 1 ? "%s already holds a PKI; left as it is (--force to "
			"replace)\n"
		      : "development PKI written to %s\n",
	       argv[2]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "pki"))
		return pki_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "token"))
		return rh_token_main(argc - 1, argv + 1);
	static const char *const provisioning[] = {"key",    "csr",    "cert",
						   "pubkey", "object", NULL};
	for (int i = 0; provisioning[i]; i++)
		if (!strcmp(argv[1], provisioning[i]))
			return rh_provision_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "audit"))
		return rh_audit_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "bench"))
		return rh_bench_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "store"))
		return rh_store_main(argc - 1, argv + 1);
	fprintf(stderr, "remhsm: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
