#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "log.h"

#define HASH_HEX (2 * RHD_SHA256_LEN)
#define MAX_RECORD 1024
#define FLUSH_MS 200
#define COUNT_EVERY_MS 1000
#define MAX_COUNTED 4096

typedef struct counted {
	uint64_t slot, store_id, count;
} counted_t;

static struct {
	int fd; /* -1: no audit log */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t writer;
	int stop;
	uint64_t seq;
	char prev[HASH_HEX + 1];
	char *buf; /* records waiting for the writer */
	size_t len, cap;
	counted_t counts[MAX_COUNTED];
	size_t n_counts;
	uint64_t lost; /* records dropped: memory ran out */
} au = {.fd = -1,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER};

static void hex(const unsigned char *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* The last record of an existing log: where the chain goes on. */
static int resume_chain(int fd)
{
	memset(au.prev, '0', HASH_HEX);
	au.prev[HASH_HEX] = '\0';
	au.seq = 0;
	off_t end = lseek(fd, 0, SEEK_END);
	if (end <= 0)
		return 0;
	char tail[MAX_RECORD + 256];
	off_t from = end > (off_t)sizeof(tail) - 1
			     ? end - (off_t)sizeof(tail) + 1
			     : 0;
	ssize_t n = pread(fd, tail, (size_t)(end - from), from);
	if (n <= 0 || tail[n - 1] != '\n')
		return -1;
	tail[n - 1] = '\0';
	char *line = strrchr(tail, '\n');
	line = line ? line + 1 : tail;
	unsigned long long seq;
	const char *hash = strstr(line, " hash=");
	if (sscanf(line, "seq=%llu ", &seq) != 1 || !hash ||
	    strlen(hash + 6) != HASH_HEX)
		return -1;
	au.seq = seq;
	memcpy(au.prev, hash + 6, HASH_HEX + 1);
	return 0;
}

/* Appends one record to the buffer (the lock held). */
static void append_locked(const char *body)
{
	char line[MAX_RECORD + 256], ts[32];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	int n = snprintf(line, sizeof(line), "seq=%llu ts=%s.%03ldZ %s prev=%s",
			 (unsigned long long)au.seq + 1, ts,
			 now.tv_nsec / 1000000, body, au.prev);
	if (n < 0 || (size_t)n + HASH_HEX + 8 > sizeof(line))
		return;
	uint8_t digest[RHD_SHA256_LEN];
	rhd_crypto_sha256(line, (size_t)n, digest);
	char h[HASH_HEX + 1];
	hex(digest, sizeof(digest), h);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " hash=%s\n", h);
	if (au.len + (size_t)n > au.cap) {
		size_t cap = au.cap ? 2 * au.cap : 64 * 1024;
		while (cap < au.len + (size_t)n)
			cap *= 2;
		char *grown = realloc(au.buf, cap);
		if (!grown) {
			au.lost++;
			return;
		}
		au.buf = grown;
		au.cap = cap;
	}
	memcpy(au.buf + au.len, line, (size_t)n);
	au.len += (size_t)n;
	au.seq++;
	memcpy(au.prev, h, sizeof(h));
}

void rhd_audit(const char *fmt, ...)
{
	if (au.fd < 0)
		return;
	char body[MAX_RECORD];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	/* A field (a certificate's name) must never start a record. */
	for (char *c = body; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = '?';
	pthread_mutex_lock(&au.lock);
	append_locked(body);
	pthread_cond_signal(&au.wake);
	pthread_mutex_unlock(&au.lock);
}

void rhd_audit_signature(uint64_t slot, uint64_t store_id)
{
	if (au.fd < 0)
		return;
	pthread_mutex_lock(&au.lock);
	size_t i = 0;
	while (i < au.n_counts &&
	       (au.counts[i].slot != slot || au.counts[i].store_id != store_id))
		i++;
	if (i == au.n_counts && au.n_counts < MAX_COUNTED)
		au.counts[au.n_counts++] = (counted_t){slot, store_id, 0};
	if (i < au.n_counts)
		au.counts[i].count++;
	pthread_mutex_unlock(&au.lock);
}

/* The counts since the last ones, as records (the lock held). */
static void counts_to_records_locked(void)
{
	for (size_t i = 0; i < au.n_counts; i++) {
		char body[160];
		if (au.counts[i].store_id)
			snprintf(body, sizeof(body),
				 "event=signatures slot=%llu key=%llu "
				 "count=%llu",
				 (unsigned long long)au.counts[i].slot,
				 (unsigned long long)au.counts[i].store_id,
				 (unsigned long long)au.counts[i].count);
		else
			snprintf(body, sizeof(body),
				 "event=signatures slot=%llu key=session "
				 "count=%llu",
				 (unsigned long long)au.counts[i].slot,
				 (unsigned long long)au.counts[i].count);
		append_locked(body);
	}
	au.n_counts = 0;
}

/* Writes the buffer with one fdatasync (the lock not held meanwhile). */
static void write_batch(void)
{
	pthread_mutex_lock(&au.lock);
	char *batch = au.buf;
	size_t len = au.len;
	au.buf = NULL;
	au.len = au.cap = 0;
	pthread_mutex_unlock(&au.lock);
	if (!len) {
		free(batch);
		return;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(au.fd, batch + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			RHD_ERROR("event=audit-write-failed reason=\"%s\"",
				  strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	if (fdatasync(au.fd) < 0)
		RHD_ERROR("event=audit-sync-failed reason=\"%s\"",
			  strerror(errno));
	free(batch);
}

static void *writer_main(void *arg)
{
	(void)arg;
	struct timespec next_counts;
	clock_gettime(CLOCK_REALTIME, &next_counts);
	for (;;) {
		pthread_mutex_lock(&au.lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += FLUSH_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!au.stop)
			pthread_cond_timedwait(&au.wake, &au.lock, &until);
		int stop = au.stop;
		if (stop || until.tv_sec > next_counts.tv_sec) {
			counts_to_records_locked();
			next_counts = until;
		}
		pthread_mutex_unlock(&au.lock);
		/* Batch what came in meanwhile: a burst shares one sync. */
		if (!stop)
			usleep(FLUSH_MS * 1000 / 4);
		write_batch();
		if (stop)
			return NULL;
	}
}

int rhd_audit_open(const char *path, char *err, size_t err_len)
{
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (resume_chain(fd) < 0) {
		snprintf(err, err_len,
			 "%s: its last record does not parse; keep the file "
			 "and start a new log",
			 path);
		close(fd);
		return -1;
	}
	au.fd = fd;
	au.stop = 0;
	if (pthread_create(&au.writer, NULL, writer_main, NULL) != 0) {
		snprintf(err, err_len, "cannot start the audit writer");
		au.fd = -1;
		close(fd);
		return -1;
	}
	return 0;
}

void rhd_audit_close(void)
{
	if (au.fd < 0)
		return;
	pthread_mutex_lock(&au.lock);
	au.stop = 1;
	pthread_cond_signal(&au.wake);
	pthread_mutex_unlock(&au.lock);
	pthread_join(au.writer, NULL);
	if (au.lost)
		RHD_ERROR("event=audit-records-lost count=%llu",
			  (unsigned long long)au.lost);
	/* The chain's head in the journal too: a log rewritten whole from
	 * some record on no longer ends where the journal says it did. */
	RHD_INFO("event=audit-head seq=%llu hash=%s",
		 (unsigned long long)au.seq, au.prev);
	close(au.fd);
	au.fd = -1;
}
