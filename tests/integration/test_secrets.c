/*
 * Memory hygiene: after a logout, and after the application disconnects,
 * the daemon's memory holds neither the private scalar of a key it signed
 * with (in either byte order: OpenSSL keeps BIGNUMs little-endian) nor the
 * PIN. The finding: one little-endian copy of the scalar stayed after
 * logout and disconnect, and a crash wrote it into a core file. The
 * daemon's memory is read twice: whole, through /proc/PID/mem, and as a
 * core image that gcore (Debian's gdb) writes of it.
 */
#include <check.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define PIN "pin-7f3a9c1e-secret"

static th_daemon_t d;
static void *module;
static CK_FUNCTION_LIST *p11;

static void setup(void)
{
	th_pki_make(&d);
	th_daemon_start(&d, NULL);
	th_client_env(&d);
	p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	th_provision_token(p11, 0, "so-pin-1", PIN);
}

static void teardown(void)
{
	dlclose(module);
	th_daemon_cleanup(&d);
}

/* Whether needle appears anywhere in the daemon's readable memory. */
static int daemon_holds(const void *needle, size_t len)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)d.pid);
	FILE *maps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)d.pid);
	int mem = open(path, O_RDONLY);
	ck_assert(maps && mem >= 0);
	static uint8_t buf[1 << 20];
	int found = 0;
	while (!found && fgets(line, sizeof(line), maps)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || strstr(line, "[vvar]") ||
		    hi - lo > (1ul << 30)) /* a sanitizer's shadow */
			continue;
		for (unsigned long at = lo; at < hi && !found;) {
			size_t want =
				hi - at < sizeof(buf) ? hi - at : sizeof(buf);
			ssize_t n = pread(mem, buf, want, (off_t)at);
			if (n <= 0)
				break;
			found = memmem(buf, (size_t)n, needle, len) != NULL;
			/* overlap, for a needle across two chunks */
			at += (unsigned long)n > len ? (unsigned long)n - len
						     : (unsigned long)n;
		}
	}
	fclose(maps);
	close(mem);
	return found;
}

/* The sanitizer builds differ twice: their mlock is a no-op (it neither
 * locks nor fails), and gcore, which reads what it dumps through ptrace a
 * word at a time, takes minutes over their terabytes of shadow memory, so
 * they scan /proc/PID/mem alone and the release build in CI checks the
 * core image as well. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* A core image of the running daemon, by gcore; its path. */
static void write_core(char *path, size_t cap)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "gcore -o %s/core %d >%s/gcore.log 2>&1",
		 d.dir, (int)d.pid, d.dir);
	int status = system(cmd);
	snprintf(path, cap, "%s/core.%d", d.dir, (int)d.pid);
	if (status != 0)
		unlink(path); /* what a failed gcore left */
	ck_assert_msg(status == 0, "gcore failed, see %s/gcore.log", d.dir);
}

/* Whether needle appears anywhere in the file. */
static int file_holds(const char *path, const void *needle, size_t len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	ck_assert(fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0);
	void *map =
		mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	ck_assert(map != MAP_FAILED);
	int found = memmem(map, (size_t)st.st_size, needle, len) != NULL;
	munmap(map, (size_t)st.st_size);
	close(fd);
	return found;
}

/* Whether the daemon's memory, or a core image of it, holds the scalar
 * (in either byte order) or the PIN: the name of what it holds, or NULL. */
static const char *secret_in(int (*holds)(const void *, size_t, void *),
			     void *where, const uint8_t scalar[32])
{
	uint8_t little[32];
	for (int i = 0; i < 32; i++)
		little[i] = scalar[31 - i];
	if (holds(scalar, 32, where))
		return "the scalar (big-endian)";
	if (holds(little, 32, where))
		return "the scalar (little-endian)";
	return holds(PIN, strlen(PIN), where) ? "the PIN" : NULL;
}

static int memory_holds(const void *needle, size_t len, void *unused)
{
	(void)unused;
	return daemon_holds(needle, len);
}

static int core_holds(const void *needle, size_t len, void *path)
{
	return file_holds(path, needle, len);
}

static void assert_no_secret(const uint8_t scalar[32], const char *when)
{
	const char *held = secret_in(memory_holds, NULL, scalar);
	ck_assert_msg(!held, "the daemon's memory holds %s %s", held, when);
	if (SANITIZED)
		return;
	char core[512];
	write_core(core, sizeof(core));
	held = secret_in(core_holds, core, scalar);
	unlink(core); /* before any failure: a core is as large as the daemon */
	ck_assert_msg(!held, "a core image of the daemon holds %s %s", held,
		      when);
}

START_TEST(test_no_scalar_or_pin_in_memory_after_logout_and_disconnect)
{
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	CK_BYTE scalar[32];
	ck_assert_int_eq(RAND_bytes(scalar, sizeof(scalar)), 1);
	scalar[0] = 0x7f; /* below the group order */
	CK_SESSION_HANDLE s = th_user_session(p11, 0, PIN);
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE type = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_TOKEN, &yes, 1},
			    {CKA_SIGN, &yes, 1},
			    {CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
			    {CKA_VALUE, scalar, sizeof(scalar)}};
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(p11->C_CreateObject(s, t, 6, &key), CKR_OK);
	CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
	CK_BYTE hash[32] = {1}, sig[64];
	for (int i = 0; i < 3; i++) {
		CK_ULONG len = sizeof(sig);
		ck_assert_uint_eq(p11->C_SignInit(s, &ecdsa, key), CKR_OK);
		ck_assert_uint_eq(p11->C_Sign(s, hash, 32, sig, &len), CKR_OK);
	}
	ck_assert_uint_eq(p11->C_Logout(s), CKR_OK);
	assert_no_secret(scalar, "after logout");
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	usleep(200 * 1000); /* the daemon sees the connection close */
	assert_no_secret(scalar, "after disconnect");
}
END_TEST

/* Mappings of the daemon whose VmFlags name both flags (smaps: "dd" is
 * left out of core dumps, "lo" locked in RAM). */
static int mappings_flagged(const char *a, const char *b)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)d.pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	int n = 0;
	while (fgets(line, sizeof(line), f))
		n += !strncmp(line, "VmFlags:", 8) && strstr(line, a) &&
		     strstr(line, b);
	fclose(f);
	return n;
}

/* The resume key, and the token keys of each application's logins, live in
 * pages of their own: locked, and left out of core dumps. */
START_TEST(test_token_keys_live_in_locked_pages_left_out_of_dumps)
{
	const char *locked = SANITIZED ? " dd" : " lo";
	int before = mappings_flagged(" dd", locked);
	ck_assert_int_ge(before, 1); /* the resume key */
	CK_SESSION_HANDLE s = th_user_session(p11, 0, PIN);
	ck_assert_int_ge(mappings_flagged(" dd", locked), before);
	ck_assert_uint_eq(p11->C_Logout(s), CKR_OK);
	p11->C_Finalize(NULL);
}
END_TEST

/* A daemon that may not lock memory (started without CAP_IPC_LOCK, with
 * RLIMIT_MEMLOCK at 0) says so once, however many secrets it then makes,
 * and serves as before with its secrets still left out of dumps (the
 * sanitizer builds see no failure to report). */
START_TEST(test_a_lock_limit_is_reported_once)
{
	struct rlimit none = {0, 0};
	ck_assert_int_eq(prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_MEMLOCK, &none), 0);
	setup();
	for (int i = 0; i < 3; i++) {
		/* Each login unlocks a token key into secret memory. */
		CK_SESSION_HANDLE s = th_user_session(p11, 0, PIN);
		CK_BYTE rnd[16];
		ck_assert_uint_eq(p11->C_GenerateRandom(s, rnd, sizeof(rnd)),
				  CKR_OK);
		ck_assert_uint_eq(p11->C_Logout(s), CKR_OK);
		ck_assert_uint_eq(p11->C_CloseSession(s), CKR_OK);
	}
	ck_assert_int_ge(mappings_flagged(" dd", " dd"), 1);
	p11->C_Finalize(NULL);
	const char *warning = "event=secret-memory-unlocked";
	if (SANITIZED) {
		ck_assert_int_le(th_log_count(&d, warning, NULL), 1);
	} else {
		ck_assert_int_eq(th_log_count(&d, warning, NULL), 1);
		ck_assert_int_eq(th_log_count(&d, warning, "LimitMEMLOCK"), 1);
	}
	teardown();
}
END_TEST

/* The scans themselves: they find a value the daemon does hold. */
START_TEST(test_the_scan_finds_what_is_there)
{
	/* The daemon's listen address is in its memory for as long as it
	 * runs. */
	char listen[32];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", d.port);
	ck_assert(daemon_holds(listen, strlen(listen)));
	if (!SANITIZED) {
		char core[512];
		write_core(core, sizeof(core));
		int found = file_holds(core, listen, strlen(listen));
		unlink(core);
		ck_assert(found);
	}
	p11->C_Finalize(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("secrets");
	TCase *tc = tcase_create("secrets");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(
		tc,
		test_no_scalar_or_pin_in_memory_after_logout_and_disconnect);
	tcase_add_test(tc, test_the_scan_finds_what_is_there);
	tcase_add_test(tc,
		       test_token_keys_live_in_locked_pages_left_out_of_dumps);
	suite_add_tcase(s, tc);
	/* It starts its daemon itself, under limits of its own. */
	TCase *limits = tcase_create("limits");
	tcase_set_timeout(limits, 60);
	tcase_add_test(limits, test_a_lock_limit_is_reported_once);
	suite_add_tcase(s, limits);
	return th_run_suite(s);
}
