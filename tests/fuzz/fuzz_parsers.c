/*
 * libFuzzer target: the files an operator writes, parsed as the daemon
 * parses them. The input's first byte picks the parser: even, the
 * `key = value` configuration file; odd, the access list (then matched
 * against a few identities).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "access.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static char path[] = "/tmp/remhsm-fuzz-parsers-XXXXXX";
	static int fd = -1;
	if (fd < 0 && (fd = mkstemp(path)) < 0)
		abort();
	if (ftruncate(fd, 0) < 0 ||
	    pwrite(fd, data + 1, size - 1, 0) != (ssize_t)(size - 1))
		abort();
	char err[1024];
	if (data[0] % 2 == 0) {
		rhd_config_t cfg;
		rhd_config_defaults(&cfg);
		(void)rhd_config_load_file(&cfg, path, err, sizeof(err));
		return 0;
	}
	rhd_access_t access;
	if (rhd_access_load(&access, RHD_ID_CN, path, err, sizeof(err)) == 0) {
		static const char *const who[] = {"CN=gateway-7", "CN=", "CN=*",
						  "URI:spiffe://x"};
		for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++)
			(void)rhd_access_match(&access, who[i]);
		rhd_access_free(&access);
	}
	return 0;
}
