/*
 * remhsm audit verify FILE: walks remhsmd's audit log (see daemon/audit.h)
 * and names the first record that was edited, deleted or moved.
 */
#include "audit.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_HEX 64
#define MAX_LINE 4096

typedef struct chain {
	unsigned long long records, first_seq, seq;
	char prev[HASH_HEX + 1];
} chain_t;

static void hex(const unsigned char *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* What is wrong with one record, or NULL; the chain moves on past it. */
static const char *check_record(chain_t *c, char *line)
{
	c->records++; /* this record's ordinal, whatever is wrong with it */
	size_t len = strlen(line);
	char *hash = len > HASH_HEX + 6 ? line + len - HASH_HEX - 6 : NULL;
	if (!hash || strncmp(hash, " hash=", 6) != 0)
		return "not a record (no hash at its end)";
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char computed[HASH_HEX + 1];
	SHA256((const unsigned char *)line, (size_t)(hash - line), digest);
	hex(digest, sizeof(digest), computed);
	if (strcmp(computed, hash + 6) != 0)
		return "edited: its hash does not match its content";
	unsigned long long seq;
	char *prev = hash - HASH_HEX - 6;
	if (sscanf(line, "seq=%llu ", &seq) != 1 || prev < line ||
	    strncmp(prev, " prev=", 6) != 0)
		return "not a record (no seq or prev)";
	prev += 6;
	const char *why = NULL;
	/* A log that starts past seq 1 (rotated) has nothing before its
	 * first record to check it against; the summary says where it
	 * starts. */
	if (c->records == 1 && seq > 1)
		why = NULL;
	else if (seq != c->seq + 1)
		why = "out of sequence: a record before it was deleted or "
		      "they were reordered";
	else if (strncmp(prev, c->prev, HASH_HEX) != 0)
		why = "does not follow the record before it: one was deleted, "
		      "replaced or moved";
	if (c->records == 1)
		c->first_seq = seq;
	c->seq = seq;
	memcpy(c->prev, hash + 6, HASH_HEX);
	return why;
}

static int verify(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return 1;
	}
	chain_t c = {0};
	memset(c.prev, '0', HASH_HEX);
	char line[MAX_LINE];
	unsigned long lineno = 0;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		const char *why = check_record(&c, line);
		if (why) {
			fprintf(stderr, "%s: record %lu (line %lu) %s\n", path,
				(unsigned long)c.records, lineno, why);
			rc = 1;
			break;
		}
	}
	fclose(f);
	if (rc == 0)
		printf("%s: %llu records, seq %llu to %llu, chain intact; head "
		       "%s\n",
		       path, c.records, c.records ? c.first_seq : 0, c.seq,
		       c.prev);
	return rc;
}

int rh_audit_main(int argc, char **argv)
{
	if (argc == 2 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: remhsm audit verify FILE\n"
		       "  Checks remhsmd's audit log (STATE/audit.log): every "
		       "record's hash, the\n  sequence and the chain. Exit 0 "
		       "intact, 1 names the first bad record.\n");
		return 0;
	}
	if (argc != 3 || strcmp(argv[1], "verify") != 0) {
		fprintf(stderr, "usage: remhsm audit verify FILE\n");
		return 2;
	}
	return verify(argv[2]);
}
