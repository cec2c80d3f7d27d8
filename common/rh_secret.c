#include "rh_secret.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <sys/mman.h>

static void (*_Atomic on_unlocked)(int err);
static atomic_flag warned = ATOMIC_FLAG_INIT;

void rh_secret_on_unlocked(void (*warn)(int err))
{
	atomic_store(&on_unlocked, warn);
}

void *rh_secret_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Neither is fatal: a kernel without MADV_DONTDUMP, or a lock limit
	 * already reached, leaves the secret as safe as any other memory,
	 * and the daemon is not dumpable anyway; the operator hears of the
	 * lock limit once. */
	(void)madvise(p, size, MADV_DONTDUMP);
	if (mlock(p, size) < 0) {
		int err = errno;
		void (*warn)(int) = atomic_load(&on_unlocked);
		if (warn && !atomic_flag_test_and_set(&warned))
			warn(err);
	}
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
