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

/* A mapping of the daemon, and whether a core dump leaves it out. */
typedef struct {
	unsigned long lo, hi;
	int readable, dont_dump;
} mapping_t;

#define MAX_MAPPINGS 4096

/* The daemon's mappings, from /proc/PID/smaps: a header line each, its
 * VmFlags ("dd": left out of core dumps) a few lines later. */
static size_t daemon_mappings(mapping_t *out)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)d.pid);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
			ck_assert_uint_lt(n, MAX_MAPPINGS);
			/* [vvar] cannot be read; a sanitizer's shadow is
			 * terabytes of nothing */
			int skip =
				strstr(line, "[vvar]") || hi - lo > (1ul << 30);
			out[n++] = (mapping_t){lo, hi, perms[0] == 'r' && !skip,
					       0};
		} else if (n && !strncmp(line, "VmFlags:", 8)) {
			out[n - 1].dont_dump = strstr(line, " dd") != NULL;
		}
	}
	fclose(f);
	return n;
}

/* Whether needle is in the mapping, read through /proc/PID/mem. */
static int mapping_holds(int mem, const mapping_t *m, const void *needle,
			 size_t len)
{
	static uint8_t buf[1 << 20];
	for (unsigned long at = m->lo; at < m->hi;) {
		size_t want =
			m->hi - at < sizeof(buf) ? m->hi - at : sizeof(buf);
		ssize_t n = pread(mem, buf, want, (off_t)at);
		if (n <= 0)
			return 0;
		if (memmem(buf, (size_t)n, needle, len))
			return 1;
		/* overlap, for a needle across two chunks */
		at += (unsigned long)n > len ? (unsigned long)n - len
					     : (unsigned long)n;
	}
	return 0;
}

/* How many of the daemon's readable mappings hold needle: all of them,
 * or (dumped_only) those a core dump would hold. */
static int mappings_holding(const void *needle, size_t len, int dumped_only)
{
	static mapping_t maps[MAX_MAPPINGS];
	size_t n = daemon_mappings(maps);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)d.pid);
	int mem = open(path, O_RDONLY);
	ck_assert_int_ge(mem, 0);
	int found = 0;
	for (size_t i = 0; i < n; i++)
		if (maps[i].readable && !(dumped_only && maps[i].dont_dump))
			found += mapping_holds(mem, &maps[i], needle, len);
	close(mem);
	return found;
}

/* Whether needle appears anywhere in the daemon's readable memory. */
static int daemon_holds(const void *needle, size_t len)
{
	return mappings_holding(needle, len, 0) > 0;
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

static void little_endian(const uint8_t big[32], uint8_t little[32])
{
	for (int i = 0; i < 32; i++)
		little[i] = big[31 - i];
}

/* Whether the daemon's memory, or a core image of it, holds the scalar
 * (in either byte order) or the PIN: the name of what it holds, or NULL. */
static const char *secret_in(int (*holds)(const void *, size_t, void *),
			     void *where, const uint8_t scalar[32])
{
	uint8_t little[32];
	little_endian(scalar, little);
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

/* A new P-256 private key, a token or a session object, imported with a
 * random scalar (in scalar). */
static CK_OBJECT_HANDLE import_p256(CK_SESSION_HANDLE s, CK_BBOOL token,
				    CK_BYTE scalar[32])
{
	static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
				       0xce, 0x3d, 0x03, 0x01, 0x07};
	ck_assert_int_eq(RAND_bytes(scalar, 32), 1);
	scalar[0] = 0x7f; /* below the group order */
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE type = CKK_EC;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
			    {CKA_KEY_TYPE, &type, sizeof(type)},
			    {CKA_TOKEN, &token, 1},
			    {CKA_SIGN, &yes, 1},
			    {CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
			    {CKA_VALUE, scalar, 32}};
	CK_OBJECT_HANDLE key;
	ck_assert_uint_eq(p11->C_CreateObject(s, t, 6, &key), CKR_OK);
	return key;
}

/* A new token key, and three signatures made with it. */
static void import_and_sign(CK_SESSION_HANDLE s, CK_BYTE scalar[32])
{
	CK_OBJECT_HANDLE key = import_p256(s, CK_TRUE, scalar);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(th_sign_ecdsa(p11, s, key), CKR_OK);
}

START_TEST(test_no_scalar_or_pin_in_memory_after_logout_and_disconnect)
{
	CK_BYTE scalar[32];
	CK_SESSION_HANDLE s = th_user_session(p11, 0, PIN);
	import_and_sign(s, scalar);
	ck_assert_uint_eq(p11->C_Logout(s), CKR_OK);
	assert_no_secret(scalar, "after logout");
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	usleep(200 * 1000); /* the daemon sees the connection close */
	assert_no_secret(scalar, "after disconnect");
}
END_TEST

/* While a key is cached for signing, its scalar is in the daemon's memory
 * (OpenSSL's BIGNUM, little-endian) but only in OpenSSL's secure heap,
 * which core dumps leave out; the daemon said at start that it had one,
 * and its metrics count what the key takes there. */
START_TEST(test_a_cached_private_key_lives_in_the_secure_heap)
{
	CK_BYTE scalar[32], little[32];
	CK_SESSION_HANDLE s = th_user_session(p11, 0, PIN);
	import_and_sign(s, scalar);
	little_endian(scalar, little);
	ck_assert_int_ge(mappings_holding(little, 32, 0), 1);
	ck_assert_int_eq(mappings_holding(little, 32, 1), 0);
	ck_assert_int_eq(mappings_holding(scalar, 32, 1), 0);
	ck_assert_int_eq(
		th_log_count(&d, "event=secure-heap bytes=4194304", NULL), 1);
	ck_assert_uint_eq(p11->C_Logout(s), CKR_OK);
	p11->C_Finalize(NULL);
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

/* A new session key (its handle in *key) signs once. */
static CK_RV sign_with_new_key(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *key)
{
	CK_BYTE scalar[32];
	*key = import_p256(s, CK_FALSE, scalar);
	return th_sign_ecdsa(p11, s, *key);
}

/* A secure heap filled by cached keys: a key not cached yet is refused
 * with CKR_DEVICE_MEMORY (said once in the log) while the quarter of the
 * heap kept for the rest goes on serving: keys already cached sign, and a
 * new connection's TLS handshake succeeds. */
START_TEST(test_a_full_secure_heap_refuses_new_keys_and_serves_the_rest)
{
	th_pki_make(&d);
	const char *flags[] = {"--secure-heap-kb", "64", NULL};
	th_daemon_start(&d, flags);
	th_client_env(&d);
	p11 = th_module_load(&module);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	th_provision_token(p11, 0, "so-pin-1", PIN);
	CK_SESSION_HANDLE s = th_user_session(p11, 0, PIN);
	CK_OBJECT_HANDLE first, key;
	CK_RV rv = sign_with_new_key(s, &first);
	ck_assert_uint_eq(rv, CKR_OK);
	int signed_with = 1;
	for (; signed_with < 2000 && rv == CKR_OK; signed_with++)
		rv = sign_with_new_key(s, &key);
	ck_assert_uint_eq(rv, CKR_DEVICE_MEMORY);
	printf("a 64 KiB secure heap held %d cached P-256 keys before the "
	       "quarter kept back\n",
	       signed_with - 1);
	ck_assert_int_gt(signed_with, 10);
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(th_sign_ecdsa(p11, s, first), CKR_OK);
	ck_assert_uint_eq(sign_with_new_key(s, &key), CKR_DEVICE_MEMORY);
	ck_assert_int_eq(th_log_count(&d, "event=secure-heap-full", NULL), 1);
	/* The application again: a new connection, a new handshake. */
	ck_assert_uint_eq(p11->C_Finalize(NULL), CKR_OK);
	ck_assert_uint_eq(p11->C_Initialize(NULL), CKR_OK);
	ck_assert_uint_eq(
		p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
		CKR_OK);
	CK_BYTE rnd[16];
	ck_assert_uint_eq(p11->C_GenerateRandom(s, rnd, sizeof(rnd)), CKR_OK);
	p11->C_Finalize(NULL);
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
	tcase_add_test(tc, test_a_cached_private_key_lives_in_the_secure_heap);
	tcase_add_test(tc,
		       test_token_keys_live_in_locked_pages_left_out_of_dumps);
	suite_add_tcase(s, tc);
	/* It starts its daemon itself, under limits of its own. */
	TCase *limits = tcase_create("limits");
	tcase_set_timeout(limits, 60);
	tcase_add_test(limits, test_a_lock_limit_is_reported_once);
	tcase_add_test(
		limits,
		test_a_full_secure_heap_refuses_new_keys_and_serves_the_rest);
	suite_add_tcase(s, limits);
	return th_run_suite(s);
}
