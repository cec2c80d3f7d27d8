/*
 * Where the bench's CPU figures come from: the daemon's own CPU time when
 * it runs on this machine, and the cost of the bare operation in this
 * process's OpenSSL, measured in the same run so that the two compare.
 */
#include "bench.h"

#include <ctype.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* host and port of "host:port" or "[v6]:port"; 0 when malformed. */
static int split_server(const char *server, char *host, size_t cap,
			unsigned *port)
{
	const char *colon = strrchr(server, ':');
	if (!colon || colon == server)
		return 0;
	const char *h = server;
	size_t len = (size_t)(colon - server);
	if (h[0] == '[' && len >= 2 && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (len >= cap || *end || p == 0 || p > 65535)
		return 0;
	memcpy(host, h, len);
	host[len] = '\0';
	*port = (unsigned)p;
	return 1;
}

static int is_loopback(const char *host)
{
	return !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
	       !strcmp(host, "localhost");
}

/* The inode of a socket listening on port, from /proc/net/tcp{,6}. */
static unsigned long listening_inode(unsigned port)
{
	static const char *tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	char line[512];
	for (unsigned t = 0; t < 2; t++) {
		FILE *f = fopen(tables[t], "r");
		if (!f)
			continue;
		unsigned long found = 0;
		while (!found && fgets(line, sizeof(line), f)) {
			char local[128];
			unsigned state;
			unsigned long inode;
			/* sl local rem st tx:rx tr:when retr uid timeout inode
			 */
			if (sscanf(line,
				   " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu",
				   local, &state, &inode) != 3)
				continue;
			const char *colon = strrchr(local, ':');
			if (state == 0x0A && colon &&
			    strtoul(colon + 1, NULL, 16) == port)
				found = inode;
		}
		fclose(f);
		if (found)
			return found;
	}
	return 0;
}

/* Whether process pid holds the socket "socket:[inode]". */
static int holds_socket(const char *pid, const char *want)
{
	char dir[300], link[600], target[64];
	snprintf(dir, sizeof(dir), "/proc/%s/fd", pid);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	int held = 0;
	while (!held && (e = readdir(d)) != NULL) {
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			held = !strcmp(target, want);
		}
	}
	closedir(d);
	return held;
}

pid_t rh_bench_find_daemon(const char *server)
{
	char host[256];
	unsigned port;
	if (!split_server(server, host, sizeof(host), &port) ||
	    !is_loopback(host))
		return 0;
	unsigned long inode = listening_inode(port);
	if (!inode)
		return 0;
	char want[64];
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	DIR *proc = opendir("/proc");
	if (!proc)
		return 0;
	pid_t pid = 0;
	struct dirent *e;
	while (!pid && (e = readdir(proc)) != NULL)
		if (isdigit((unsigned char)e->d_name[0]) &&
		    holds_socket(e->d_name, want))
			pid = (pid_t)atol(e->d_name);
	closedir(proc);
	return pid;
}

int rh_bench_process_cpu_ns(pid_t pid, uint64_t *ns)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The name, in parentheses, may hold spaces: count from after it. */
	const char *p = strrchr(buf, ')');
	unsigned long long utime, stime;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime */
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
			 "%llu",
			 &utime, &stime) != 2)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	*ns = (utime + stime) * (1000000000ull / (unsigned long long)hz);
	return 0;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One bare operation: a signature over in (32 bytes for ECDSA, a 51-byte
 * DigestInfo for RSA), or random bytes. */
static int raw_once(EVP_PKEY_CTX *ctx, unsigned char *in, size_t in_len)
{
	unsigned char sig[512];
	size_t sig_len = sizeof(sig);
	if (!ctx)
		return RAND_bytes(in, (int)in_len) == 1 ? 0 : -1;
	return EVP_PKEY_sign(ctx, sig, &sig_len, in, in_len) == 1 ? 0 : -1;
}

static EVP_PKEY_CTX *raw_signer(int key, EVP_PKEY **pkey)
{
	*pkey = key == 'r' ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
			   : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY_CTX *ctx = *pkey ? EVP_PKEY_CTX_new(*pkey, NULL) : NULL;
	if (!ctx || EVP_PKEY_sign_init(ctx) != 1 ||
	    (key == 'r' &&
	     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

double rh_bench_raw_cost_us(int key, unsigned bytes)
{
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = key == 'n' ? NULL : raw_signer(key, &pkey);
	unsigned char in[256] = "a 32-byte hash to sign, repeated";
	size_t in_len = key == 'n' ? bytes : key == 'r' ? 51 : 32;
	double cost = -1;
	if (key == 'n' || ctx) {
		/* A third of a second of CPU: enough calls for a stable mean
		 * even for RSA. */
		uint64_t start = thread_cpu_ns(), spent = 0;
		unsigned long calls = 0;
		int ok = 0;
		while (ok == 0 && spent < 300000000u) {
			ok = raw_once(ctx, in, in_len);
			calls++;
			spent = thread_cpu_ns() - start;
		}
		if (ok == 0)
			cost = (double)spent / 1e3 / (double)calls;
	}
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return cost;
}
