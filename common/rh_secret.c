#include "rh_secret.h"

#include <openssl/crypto.h>
#include <sys/mman.h>

void *rh_secret_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Neither is fatal: a kernel without MADV_DONTDUMP, or a lock limit
	 * already reached, leaves the secret as safe as any other memory,
	 * and the daemon is not dumpable anyway. */
	(void)madvise(p, size, MADV_DONTDUMP);
	(void)mlock(p, size);
	return p;
}

void rh_secret_free(void *secret, size_t size)
{
	if (!secret)
		return;
	OPENSSL_cleanse(secret, size);
	(void)munlock(secret, size);
	munmap(secret, size);
}
