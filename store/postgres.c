/* The PostgreSQL backend: one libpq connection per store, driven through
 * libpq's asynchronous calls so that every round trip has a deadline;
 * each statement prepared once on the connection, binary results. The
 * only file that includes libpq-fe.h.
 *
 * One process writes a database at a time, as with SQLite's file lock,
 * unless the store is opened shared: a session advisory lock, taken at
 * open, refuses a second writer, or keeps a standby waiting until the
 * writer's session ends. Shared writers take the same lock shared (so
 * that they exclude a lone writer and it them), take turns on the sealed
 * state row (SELECT ... FOR UPDATE) and leave a change log. */
#include <errno.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

/* A round trip (connect, statement, commit) that takes longer has failed:
 * the caller gets an error rather than a thread stuck on a lost host. */
#define DEFAULT_WAIT_MS 10000
/* Any constant, the same in every remhsm: the writer's advisory lock. */
#define WRITER_LOCK "SELECT pg_try_advisory_lock(7306015330158440813)"
#define SHARED_LOCK "SELECT pg_try_advisory_lock_shared(7306015330158440813)"
/* Change log entries kept behind the newest: a process further behind
 * than this reads the whole store again. */
#define CHANGES_KEPT 65536
/* How often a standby asks for the writer's lock again. */
#define WRITER_POLL_MS 200

static const char *const migrations[] = {
	/* 1: tokens, and the count of commits that lets a reader see
	 * another writer's */
	"CREATE TABLE remhsm_meta (name text PRIMARY KEY, value bytea NOT "
	"NULL);"
	"CREATE TABLE remhsm_tokens (slot bigint PRIMARY KEY, record bytea "
	"NOT NULL);"
	"CREATE TABLE remhsm_commits (n bigint NOT NULL);"
	"INSERT INTO remhsm_commits VALUES (0);"
	"CREATE TABLE remhsm_schema (version integer NOT NULL);"
	"INSERT INTO remhsm_schema VALUES (0);",
	/* 2: objects, found by keyed hashes of their index values */
	"CREATE TABLE remhsm_objects (token bigint NOT NULL, id bigint NOT "
	"NULL, ix_class bytea, ix_id bytea, ix_label bytea, ix_key_type "
	"bytea, record bytea NOT NULL, PRIMARY KEY (token, id));"
	"CREATE INDEX remhsm_objects_class ON remhsm_objects (token, "
	"ix_class);"
	"CREATE INDEX remhsm_objects_id ON remhsm_objects (token, ix_id);"
	"CREATE INDEX remhsm_objects_label ON remhsm_objects (token, "
	"ix_label);"
	"CREATE INDEX remhsm_objects_key_type ON remhsm_objects (token, "
	"ix_key_type);",
	/* 3: the sealed state binding the rows (the neutral layer fills it) */
	"SELECT 1;",
	/* 4: the change log of daemons sharing the store */
	"CREATE TABLE remhsm_changes (counter bigint PRIMARY KEY,"
	" tbl \"char\" NOT NULL, token bigint NOT NULL,"
	" id bigint NOT NULL);",
};

enum {
	ST_META_GET,
	ST_META_PUT,
	ST_TOKEN_GET,
	ST_OBJECT_GET,
	ST_TOKENS_ALL,
	ST_OBJECTS_ALL,
	ST_TOKEN_PUT,
	ST_OBJECT_INSERT,
	ST_OBJECT_UPDATE,
	ST_OBJECT_DELETE,
	ST_TOKEN_OBJECTS_DELETE,
	ST_TOKEN_DELETE,
	ST_OBJECT_COUNT,
	ST_MAX_ID,
	ST_MAX_ID_ALL,
	ST_COMMITS,
	ST_COMMITS_BUMP,
	ST_META_LOCK,
	ST_CHANGE_ADD,
	ST_CHANGES_PRUNE,
	ST_CHANGES_SINCE,
	ST_COUNT
};

#define OBJECT_COLUMNS "record, ix_class, ix_id, ix_label, ix_key_type"

static const char *const statements[ST_COUNT] = {
	[ST_META_GET] = "SELECT value FROM remhsm_meta WHERE name = $1",
	[ST_META_PUT] = "INSERT INTO remhsm_meta VALUES ($1, $2) ON CONFLICT "
			"(name) DO UPDATE SET value = excluded.value",
	[ST_TOKEN_GET] = "SELECT record FROM remhsm_tokens WHERE slot = $1",
	[ST_OBJECT_GET] = "SELECT " OBJECT_COLUMNS
			  " FROM remhsm_objects WHERE token = $1 AND id = $2",
	[ST_TOKENS_ALL] = "SELECT record, slot FROM remhsm_tokens ORDER BY "
			  "slot",
	[ST_OBJECTS_ALL] = "SELECT " OBJECT_COLUMNS
			   ", token, id FROM remhsm_objects ORDER BY token, "
			   "id",
	[ST_TOKEN_PUT] = "INSERT INTO remhsm_tokens (slot, record) VALUES "
			 "($1, $2) ON CONFLICT (slot) DO UPDATE SET record = "
			 "excluded.record",
	[ST_OBJECT_INSERT] = "INSERT INTO remhsm_objects (token, id, "
			     "ix_class, ix_id, ix_label, ix_key_type, record) "
			     "VALUES ($1, $2, $3, $4, $5, $6, $7)",
	[ST_OBJECT_UPDATE] = "UPDATE remhsm_objects SET ix_class = $3, "
			     "ix_id = $4, ix_label = $5, ix_key_type = $6, "
			     "record = $7 WHERE token = $1 AND id = $2",
	[ST_OBJECT_DELETE] = "DELETE FROM remhsm_objects WHERE token = $1 "
			     "AND id = $2",
	[ST_TOKEN_OBJECTS_DELETE] = "DELETE FROM remhsm_objects WHERE token "
				    "= $1",
	[ST_TOKEN_DELETE] = "DELETE FROM remhsm_tokens WHERE slot = $1",
	[ST_OBJECT_COUNT] = "SELECT COUNT(*) FROM remhsm_objects WHERE token "
			    "= $1",
	[ST_MAX_ID] = "SELECT COALESCE(MAX(id), 0) FROM remhsm_objects WHERE "
		      "token = $1",
	[ST_MAX_ID_ALL] = "SELECT COALESCE(MAX(id), 0) FROM remhsm_objects",
	[ST_COMMITS] = "SELECT n FROM remhsm_commits",
	[ST_COMMITS_BUMP] = "UPDATE remhsm_commits SET n = n + 1",
	[ST_META_LOCK] = "SELECT value FROM remhsm_meta WHERE name = $1 FOR "
			 "UPDATE",
	[ST_CHANGE_ADD] = "INSERT INTO remhsm_changes VALUES ($1, $2, $3, $4)",
	[ST_CHANGES_PRUNE] = "DELETE FROM remhsm_changes WHERE counter < $1",
	[ST_CHANGES_SINCE] = "SELECT counter, ascii(tbl::text), token, id FROM "
			     "remhsm_changes WHERE counter > $1 ORDER BY "
			     "counter",
};

/* Finds, one statement per combination of index columns matched. */
#define FIND_SHAPES (1u << RHS_IX_COUNT)

struct rhs_backend {
	PGconn *conn;
	char *where; /* the location, to connect again */
	int snapshot;
	int reader;
	int in_transaction;
	int connecting;
	int wait_for_writer;
	int shared;
	int wait_ms;
	unsigned warnings; /* WARNING notices heard so far */
	int lost;	   /* the session was lost, and not yet replaced */
	void (*notice)(void *ctx, const char *event, const char *where,
		       const char *reason);
	void *notice_ctx;
	int64_t own_commits;
	unsigned char prepared[ST_COUNT];
	unsigned char find_prepared[FIND_SHAPES];
	char err[512];
};

/* --- round trips -----------------------------------------------------------
 */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 2, 3))) static void set_err(rhs_backend_t *b,
							  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err, sizeof(b->err), fmt, ap);
	va_end(ap);
	b->err[strcspn(b->err, "\n")] = '\0'; /* one log line */
}

static void describe(rhs_backend_t *b, char *out, size_t cap);

/* A step of the session's life told to whoever opened the store. */
static void tell(rhs_backend_t *b, const char *event, const char *why)
{
	char place[256];
	describe(b, place, sizeof(place));
	if (b->notice)
		b->notice(b->notice_ctx, event, place, why);
}

/* The first sign that the session is gone, told once until a new one
 * replaces it. */
static void note_lost(rhs_backend_t *b, const char *why)
{
	if (b->lost)
		return;
	b->lost = 1;
	tell(b, "store-connection-lost", why);
}

/* Waits until the socket is ready for what libpq wants, or the deadline. */
static int wait_socket(rhs_backend_t *b, short events, int64_t deadline)
{
	int64_t left = deadline - now_ms();
	if (left <= 0) {
		set_err(b, "no answer from the database within %d ms",
			b->wait_ms);
		return RHS_EIO;
	}
	struct pollfd p = {.fd = PQsocket(b->conn), .events = events};
	if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
		set_err(b, "poll: %s", strerror(errno));
		return RHS_EIO;
	}
	return RHS_OK;
}

/* Asks the server to stop what the session is doing (a statement, a wait
 * for the standbys): the session ends soon after instead of holding its
 * locks until it finishes. */
static void cancel(rhs_backend_t *b)
{
	if (PQstatus(b->conn) != CONNECTION_OK)
		return;
	PGcancel *c = PQgetCancel(b->conn);
	char why[256];
	if (c)
		(void)PQcancel(c, why, sizeof(why));
	PQfreeCancel(c);
}

/* The whole answer to what was sent: the first error result, or the last
 * result; NULL when the connection failed or timed out (b->err says why).
 * A timed-out statement is cancelled and the connection given up. */
static PGresult *await(rhs_backend_t *b)
{
	int64_t deadline = now_ms() + b->wait_ms;
	PGresult *kept = NULL;
	for (;;) {
		while (PQisBusy(b->conn)) {
			if (wait_socket(b, POLLIN, deadline) < 0 ||
			    !PQconsumeInput(b->conn))
				goto lost;
		}
		PGresult *r = PQgetResult(b->conn);
		if (!r)
			return kept;
		ExecStatusType st = PQresultStatus(r);
		int failed =
			st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
		if (!kept || (failed && PQresultStatus(kept) != st)) {
			PQclear(kept);
			kept = r;
		} else {
			PQclear(r);
		}
	}
lost:
	PQclear(kept);
	cancel(b);
	if (!b->err[0] || PQstatus(b->conn) == CONNECTION_BAD)
		set_err(b, "%s", PQerrorMessage(b->conn));
	note_lost(b, b->err);
	PQfinish(b->conn); /* mid-answer: no later call can use it */
	b->conn = NULL;
	return NULL;
}

/* ok: the statuses that mean success for this statement. */
static int result_rc(rhs_backend_t *b, PGresult *r, ExecStatusType ok)
{
	if (!r)
		return RHS_EIO;
	if (PQresultStatus(r) == ok)
		return RHS_OK;
	set_err(b, "%s", PQresultErrorMessage(r));
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (state && !strcmp(state, "53100")) /* disk full */
		return RHS_EFULL;
	if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01")))
		return RHS_EBUSY;
	if (state && (!strcmp(state, "42501") || !strcmp(state, "25006")))
		return RHS_EACCESS; /* no privilege; a read-only server */
	return RHS_EIO;
}

static int reconnect(rhs_backend_t *b);

static int connection_lost(const rhs_backend_t *b)
{
	return !b->conn || PQstatus(b->conn) == CONNECTION_BAD;
}

/* A connection for the next statement: the one there is or, when it was
 * lost, a new one. Not inside a transaction, whose work the new session
 * would not have, nor a snapshot, which would see another moment. */
static int ensure_connection(rhs_backend_t *b)
{
	if (!connection_lost(b))
		return RHS_OK;
	if (b->conn)
		note_lost(b, PQerrorMessage(b->conn));
	if (b->in_transaction || b->snapshot || b->connecting) {
		set_err(b, "the connection to the database was lost%s",
			b->in_transaction ? " inside a transaction" : "");
		return RHS_EIO;
	}
	return reconnect(b);
}

/* Whether a statement that failed may be sent again on a new connection:
 * only when the old one was lost outside a transaction (a BEGIN, a read),
 * never a COMMIT, whose outcome is unknown. */
static int may_retry(const rhs_backend_t *b, const PGresult *r, int attempt)
{
	return attempt == 0 && connection_lost(b) && !b->in_transaction &&
	       !b->snapshot && !b->connecting &&
	       (!r || PQresultStatus(r) == PGRES_FATAL_ERROR);
}

/* A command string of one or more statements; the result of the first
 * that failed, or of the last. */
static PGresult *simple(rhs_backend_t *b, const char *sql)
{
	for (int attempt = 0;; attempt++) {
		b->err[0] = '\0';
		if (ensure_connection(b) < 0)
			return NULL;
		PGresult *r = NULL;
		if (PQsendQuery(b->conn, sql))
			r = await(b);
		else
			set_err(b, "%s", PQerrorMessage(b->conn));
		if (!may_retry(b, r, attempt))
			return r;
		PQclear(r);
	}
}

static int command(rhs_backend_t *b, const char *sql)
{
	PGresult *r = simple(b, sql);
	int rc = result_rc(b, r, PGRES_COMMAND_OK);
	if (rc < 0 && r && PQresultStatus(r) == PGRES_TUPLES_OK)
		rc = RHS_OK;
	PQclear(r);
	return rc;
}

static int prepare(rhs_backend_t *b, const char *name, const char *sql)
{
	if (!PQsendPrepare(b->conn, name, sql, 0, NULL)) {
		set_err(b, "%s", PQerrorMessage(b->conn));
		return RHS_EIO;
	}
	PGresult *r = await(b);
	int rc = result_rc(b, r, PGRES_COMMAND_OK);
	PQclear(r);
	return rc;
}

/* Parameters: integers as text, byte strings as binary; NULL is SQL's. */
typedef struct params {
	int n;
	const char *values[8];
	int lengths[8];
	int formats[8];
	char numbers[8][24];
} params_t;

static void param_int(params_t *p, int64_t v)
{
	snprintf(p->numbers[p->n], sizeof(p->numbers[p->n]), "%lld",
		 (long long)v);
	p->values[p->n] = p->numbers[p->n];
	p->lengths[p->n] = 0;
	p->formats[p->n++] = 0;
}

static void param_bytes(params_t *p, const void *v, size_t len)
{
	p->values[p->n] = v;
	p->lengths[p->n] = (int)len;
	p->formats[p->n++] = 1;
}

static void param_text(params_t *p, const char *v)
{
	p->values[p->n] = v;
	p->lengths[p->n] = 0;
	p->formats[p->n++] = 0;
}

/* Runs a named statement (prepared here on its first use) with binary
 * results. */
static PGresult *run_named(rhs_backend_t *b, const char *name,
			   unsigned char *prepared, const char *sql,
			   const params_t *p)
{
	for (int attempt = 0;; attempt++) {
		b->err[0] = '\0';
		if (ensure_connection(b) < 0)
			return NULL;
		PGresult *r = NULL;
		if (!*prepared && prepare(b, name, sql) == RHS_OK)
			*prepared = 1;
		if (*prepared &&
		    PQsendQueryPrepared(b->conn, name, p->n, p->values,
					p->lengths, p->formats, 1))
			r = await(b);
		else if (*prepared)
			set_err(b, "%s", PQerrorMessage(b->conn));
		if (!may_retry(b, r, attempt))
			return r;
		PQclear(r);
	}
}

static PGresult *run(rhs_backend_t *b, int which, const params_t *p)
{
	char name[16];
	snprintf(name, sizeof(name), "rh_%d", which);
	return run_named(b, name, &b->prepared[which], statements[which], p);
}

/* A statement that returns no rows; *changed, when given, the rows it
 * changed. */
static int run_command(rhs_backend_t *b, int which, const params_t *p,
		       long *changed)
{
	PGresult *r = run(b, which, p);
	int rc = result_rc(b, r, PGRES_COMMAND_OK);
	if (rc == RHS_OK && changed)
		*changed = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return rc;
}

/* A binary int8 (or int4) column. */
static int64_t int_at(const PGresult *r, int row, int col)
{
	const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
	int len = PQgetlength(r, row, col);
	uint64_t x = 0;
	for (int i = 0; i < len && i < 8; i++)
		x = x << 8 | v[i];
	if (len == 4)
		return (int32_t)(uint32_t)x;
	return (int64_t)x;
}

static int single_int(rhs_backend_t *b, int which, const params_t *p,
		      int64_t *value)
{
	PGresult *r = run(b, which, p);
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	if (rc == RHS_OK && PQntuples(r) != 1) {
		set_err(b, "expected one row, got %d", PQntuples(r));
		rc = RHS_EIO;
	}
	if (rc == RHS_OK)
		*value = int_at(r, 0, 0);
	PQclear(r);
	return rc;
}

/* --- open and close --------------------------------------------------------
 */

/* Counts WARNING notices: a commit that drew one (its wait for the
 * standbys cancelled) is not known to be replicated. */
static void on_notice(void *arg, const PGresult *r)
{
	rhs_backend_t *b = arg;
	const char *severity =
		PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (severity && !strcmp(severity, "WARNING")) {
		b->warnings++;
		set_err(b, "%s", PQresultErrorMessage(r));
	}
}

static int connect_db(rhs_backend_t *b)
{
	b->conn = PQconnectStart(b->where);
	if (!b->conn)
		return RHS_ENOMEM;
	int64_t deadline = now_ms() + b->wait_ms;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED &&
	       PQstatus(b->conn) != CONNECTION_BAD) {
		if (wait_socket(b,
				st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
				deadline) < 0)
			return RHS_EIO;
		st = PQconnectPoll(b->conn);
	}
	if (PQstatus(b->conn) != CONNECTION_OK) {
		set_err(b, "%s", PQerrorMessage(b->conn));
		return RHS_EIO;
	}
	PQsetNoticeReceiver(b->conn, on_notice, b);
	return RHS_OK;
}

static int take_writer_lock(rhs_backend_t *b, int *locked)
{
	PGresult *r = simple(b, b->shared ? SHARED_LOCK : WRITER_LOCK);
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	*locked = rc == RHS_OK && PQntuples(r) == 1 &&
		  PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return rc;
}

/* A writer's server must take writes: a standby (one promoted by mistake
 * the other way round, or a location naming one host that is no longer
 * the primary) is refused at once, saying so, rather than every write
 * failing later. */
static int refuse_read_only(rhs_backend_t *b)
{
	PGresult *r = simple(b, "SELECT pg_is_in_recovery(), "
				"current_setting('transaction_read_only') = "
				"'on'");
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	int standby = rc == RHS_OK && PQgetvalue(r, 0, 0)[0] == 't';
	int read_only = rc == RHS_OK && PQgetvalue(r, 0, 1)[0] == 't';
	PQclear(r);
	if (rc == RHS_OK && (standby || read_only)) {
		set_err(b,
			"the server is %s: name the primary, or every host "
			"with "
			"target_session_attrs=read-write",
			standby ? "a standby (in recovery, read-only)"
				: "read-only (default_transaction_read_only)");
		rc = RHS_EACCESS;
	}
	return rc;
}

/* A commit waits for the standbys synchronous_standby_names lists unless
 * the session says otherwise: off and local, which would not, become on;
 * remote_write and remote_apply stay as the location asked. */
static int configure(rhs_backend_t *b)
{
	if (b->snapshot)
		return command(b, "BEGIN ISOLATION LEVEL REPEATABLE READ READ "
				  "ONLY");
	int rc = refuse_read_only(b);
	if (rc < 0 || b->reader) /* the writer's session holds the lock */
		return rc;
	PGresult *r = simple(b, "SELECT current_setting('synchronous_commit') "
				"IN ('off', 'local')");
	rc = result_rc(b, r, PGRES_TUPLES_OK);
	int weak = rc == RHS_OK && PQntuples(r) == 1 &&
		   PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (rc == RHS_OK && weak)
		rc = command(b, "SET synchronous_commit = on");
	if (rc < 0)
		return rc;
	int locked = 0;
	while ((rc = take_writer_lock(b, &locked)) == RHS_OK && !locked &&
	       b->wait_for_writer)
		usleep(WRITER_POLL_MS * 1000);
	if (rc == RHS_OK && !locked) {
		set_err(b, b->shared
				   ? "in use by a remhsmd that is not shared "
				     "(it holds the writer's advisory lock)"
				   : "in use by another remhsmd (it holds the "
				     "writer's advisory lock)");
		rc = RHS_EBUSY;
	}
	return rc;
}

/* A new session in place of a lost one: its statements prepared again on
 * first use, the writer's lock taken again (another remhsmd may hold it
 * by now). */
static int reconnect(rhs_backend_t *b)
{
	PQfinish(b->conn);
	b->conn = NULL;
	memset(b->prepared, 0, sizeof(b->prepared));
	memset(b->find_prepared, 0, sizeof(b->find_prepared));
	b->connecting = 1;
	/* Never waits for the lock here: a process that holds it now took
	 * over, and this one must not write behind it. */
	int wait = b->wait_for_writer;
	b->wait_for_writer = 0;
	int rc = connect_db(b);
	if (rc == RHS_OK)
		rc = configure(b);
	b->wait_for_writer = wait;
	b->connecting = 0;
	if (rc < 0 && b->conn) {
		PQfinish(b->conn);
		b->conn = NULL;
	}
	if (rc == RHS_OK && b->lost)
		tell(b, "store-reconnected", "");
	b->lost = rc < 0;
	return rc;
}

static void pg_close(rhs_backend_t *b)
{
	if (!b)
		return;
	if (b->conn)
		PQfinish(b->conn); /* ends a snapshot's read, frees the lock */
	if (b->where)
		OPENSSL_cleanse(b->where, strlen(b->where));
	free(b->where);
	free(b);
}

/* Where the database is, for messages: never the rest of the location,
 * which may hold a password. */
static void describe(rhs_backend_t *b, char *out, size_t cap)
{
	const char *host = b->conn ? PQhost(b->conn) : NULL;
	const char *port = b->conn ? PQport(b->conn) : NULL;
	const char *db = b->conn ? PQdb(b->conn) : NULL;
	snprintf(out, cap, "postgresql store %s:%s/%s%s",
		 host && host[0] ? host : "?", port && port[0] ? port : "?",
		 db && db[0] ? db : "?",
		 b->reader ? " (a reader session)" : "");
}

static int pg_open(const char *where, const rhs_open_opts_t *opts,
		   rhs_backend_t **out, char *err, size_t err_len)
{
	rhs_backend_t *b = calloc(1, sizeof(*b));
	if (!b)
		return RHS_ENOMEM;
	b->snapshot = opts && opts->snapshot;
	b->reader = opts && opts->reader;
	b->wait_for_writer = opts && opts->wait_for_writer;
	b->shared = opts && opts->shared;
	b->notice = opts ? opts->notice : NULL;
	b->notice_ctx = opts ? opts->notice_ctx : NULL;
	b->wait_ms =
		opts && opts->wait_ms ? (int)opts->wait_ms : DEFAULT_WAIT_MS;
	b->where = strdup(where);
	if (!b->where) {
		free(b);
		return RHS_ENOMEM;
	}
	b->connecting = 1;
	int rc = connect_db(b);
	if (rc == RHS_OK)
		rc = configure(b);
	b->connecting = 0;
	if (rc < 0) {
		char place[256];
		describe(b, place, sizeof(place));
		snprintf(err, err_len, "%s: %s", place,
			 b->err[0] ? b->err : "cannot connect");
		pg_close(b);
		return rc;
	}
	*out = b;
	return RHS_OK;
}

static const char *pg_errmsg(rhs_backend_t *b)
{
	return b->err[0] ? b->err : "no error";
}

/* --- schema and transactions ---------------------------------------------
 */

static int pg_schema_version(rhs_backend_t *b, unsigned *version)
{
	PGresult *r = simple(b, "SELECT to_regclass('remhsm_schema') IS NULL");
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	int absent = rc == RHS_OK && PQntuples(r) == 1 &&
		     PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	*version = 0;
	if (rc < 0 || absent)
		return rc;
	r = simple(b, "SELECT version FROM remhsm_schema");
	rc = result_rc(b, r, PGRES_TUPLES_OK);
	if (rc == RHS_OK && PQntuples(r) == 1)
		*version = (unsigned)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
	else if (rc == RHS_OK)
		rc = RHS_ECORRUPT;
	PQclear(r);
	return rc;
}

static int pg_migrate_to(rhs_backend_t *b, unsigned to)
{
	if (to < 1 || to > sizeof(migrations) / sizeof(migrations[0]))
		return RHS_EINVAL;
	char bump[64];
	snprintf(bump, sizeof(bump), "UPDATE remhsm_schema SET version = %u",
		 to);
	int rc = command(b, migrations[to - 1]);
	return rc < 0 ? rc : command(b, bump);
}

static int pg_begin(rhs_backend_t *b)
{
	int rc = command(b, "BEGIN");
	b->in_transaction = rc == RHS_OK;
	return rc;
}

static void pg_rollback(rhs_backend_t *b)
{
	b->in_transaction = 0;
	char kept[sizeof(b->err)];
	memcpy(kept, b->err, sizeof(kept)); /* the error that caused it */
	if (b->conn && PQstatus(b->conn) == CONNECTION_OK)
		(void)command(b, "ROLLBACK");
	memcpy(b->err, kept, sizeof(kept));
}

/* Acknowledged only when PostgreSQL says committed with no warning: a
 * lost connection, a failed COMMIT or a cancelled wait for the standbys
 * may have lost the write, and says so. The count of commits moves with
 * each, so that other processes see there was one. */
static int pg_commit(rhs_backend_t *b)
{
	params_t none = {0};
	/* Shared writers learn of each other's writes from the change log,
	 * and never read the count. */
	int rc = b->shared ? RHS_OK
			   : run_command(b, ST_COMMITS_BUMP, &none, NULL);
	if (rc < 0) {
		pg_rollback(b);
		return rc;
	}
	unsigned warnings = b->warnings;
	PGresult *r = simple(b, "COMMIT");
	rc = result_rc(b, r, PGRES_COMMAND_OK);
	PQclear(r);
	b->in_transaction = 0;
	if (rc == RHS_OK && b->warnings != warnings) {
		char said[sizeof(b->err)];
		memcpy(said, b->err, sizeof(said));
		set_err(b, "commit not confirmed: %s", said);
		rc = RHS_EIO;
	}
	if (rc == RHS_OK)
		b->own_commits++;
	return rc;
}

/* --- rows ------------------------------------------------------------------
 */

/* The value of meta row name, through statement which. */
static int meta_fetch(rhs_backend_t *b, int which, const char *name,
		      uint8_t **value, size_t *len)
{
	params_t p = {0};
	param_text(&p, name);
	PGresult *r = run(b, which, &p);
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	if (rc == RHS_OK && PQntuples(r) == 0)
		rc = RHS_ENOTFOUND;
	if (rc == RHS_OK) {
		*len = (size_t)PQgetlength(r, 0, 0);
		*value = malloc(*len ? *len : 1);
		if (*value)
			memcpy(*value, PQgetvalue(r, 0, 0), *len);
		else
			rc = RHS_ENOMEM;
	}
	PQclear(r);
	return rc;
}

static int pg_meta_get(rhs_backend_t *b, const char *name, uint8_t **value,
		       size_t *len)
{
	return meta_fetch(b, ST_META_GET, name, value, len);
}

static int pg_meta_lock(rhs_backend_t *b, const char *name, uint8_t **value,
			size_t *len)
{
	return meta_fetch(b, ST_META_LOCK, name, value, len);
}

static int pg_meta_put(rhs_backend_t *b, const char *name, const uint8_t *value,
		       size_t len)
{
	params_t p = {0};
	param_text(&p, name);
	param_bytes(&p, value, len);
	return run_command(b, ST_META_PUT, &p, NULL);
}

/* A row of a result: its sealed record in column 0, then (objects) the
 * index hashes in columns 1 to 4; a NULL hash is absent. */
static rhs_row_view_t view_of(const PGresult *r, int row, char table,
			      int64_t slot, uint64_t id)
{
	rhs_row_view_t v;
	memset(&v, 0, sizeof(v));
	v.table = table;
	v.slot = slot;
	v.id = id;
	v.sealed = PQgetvalue(r, row, 0);
	v.sealed_len = (size_t)PQgetlength(r, row, 0);
	for (int k = 0; table == 'o' && k < RHS_IX_COUNT; k++) {
		if (PQgetisnull(r, row, 1 + k))
			continue;
		v.ix[k] = PQgetvalue(r, row, 1 + k);
		v.ix_len[k] = (size_t)PQgetlength(r, row, 1 + k);
	}
	return v;
}

static int pg_row_get(rhs_backend_t *b, char table, uint32_t slot, uint64_t id,
		      rhs_row_fn fn, void *ctx)
{
	params_t p = {0};
	param_int(&p, slot);
	if (table == 'o')
		param_int(&p, (int64_t)id);
	PGresult *r = run(b, table == 't' ? ST_TOKEN_GET : ST_OBJECT_GET, &p);
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	if (rc == RHS_OK && PQntuples(r) == 0)
		rc = RHS_ENOTFOUND;
	if (rc == RHS_OK) {
		rhs_row_view_t v = view_of(r, 0, table, slot, id);
		rc = fn(ctx, &v);
	}
	PQclear(r);
	return rc;
}

/* fn on each row of a table; the slot (and id) follow the row's
 * columns. */
static int each_of(rhs_backend_t *b, char table, rhs_row_fn fn, void *ctx)
{
	params_t none = {0};
	PGresult *r =
		run(b, table == 't' ? ST_TOKENS_ALL : ST_OBJECTS_ALL, &none);
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	int after = table == 't' ? 1 : 1 + RHS_IX_COUNT;
	for (int i = 0; rc == RHS_OK && i < PQntuples(r); i++) {
		int64_t slot = int_at(r, i, after);
		uint64_t id =
			table == 't' ? 0 : (uint64_t)int_at(r, i, after + 1);
		rhs_row_view_t v = view_of(r, i, table, slot, id);
		rc = fn(ctx, &v);
	}
	PQclear(r);
	return rc;
}

static int pg_rows_each(rhs_backend_t *b, rhs_row_fn fn, void *ctx)
{
	int rc = each_of(b, 't', fn, ctx);
	return rc < 0 ? rc : each_of(b, 'o', fn, ctx);
}

static int pg_row_put(rhs_backend_t *b, const rhs_row_view_t *row, int create)
{
	params_t p = {0};
	param_int(&p, row->slot);
	int which = ST_TOKEN_PUT;
	if (row->table == 'o') {
		which = create ? ST_OBJECT_INSERT : ST_OBJECT_UPDATE;
		param_int(&p, (int64_t)row->id);
		for (int k = 0; k < RHS_IX_COUNT; k++)
			param_bytes(&p, row->ix[k], row->ix_len[k]);
	}
	param_bytes(&p, row->sealed, row->sealed_len);
	long changed = 0;
	int rc = run_command(b, which, &p, &changed);
	return rc == RHS_OK && which == ST_OBJECT_UPDATE && changed == 0
		       ? RHS_ENOTFOUND
		       : rc;
}

static int pg_object_delete(rhs_backend_t *b, uint32_t slot, uint64_t id)
{
	params_t p = {0};
	param_int(&p, slot);
	param_int(&p, (int64_t)id);
	long changed = 0;
	int rc = run_command(b, ST_OBJECT_DELETE, &p, &changed);
	return rc == RHS_OK && changed == 0 ? RHS_ENOTFOUND : rc;
}

static int pg_token_delete(rhs_backend_t *b, uint32_t slot)
{
	const int which[] = {ST_TOKEN_OBJECTS_DELETE, ST_TOKEN_DELETE};
	for (size_t i = 0; i < 2; i++) {
		params_t p = {0};
		param_int(&p, slot);
		int rc = run_command(b, which[i], &p, NULL);
		if (rc < 0)
			return rc;
	}
	return RHS_OK;
}

/* --- finds -----------------------------------------------------------------
 */

static const char *const ix_columns[RHS_IX_COUNT] = {"ix_class", "ix_id",
						     "ix_label", "ix_key_type"};

static int find_sql(unsigned shape, char *sql, size_t cap)
{
	int n = snprintf(sql, cap,
			 "SELECT id FROM remhsm_objects WHERE token = $1");
	int next = 2;
	for (int k = 0; k < RHS_IX_COUNT; k++)
		if (shape >> k & 1)
			n += snprintf(sql + n, cap - (size_t)n, " AND %s = $%d",
				      ix_columns[k], next++);
	n += snprintf(sql + n, cap - (size_t)n, " ORDER BY id");
	return n < (int)cap ? RHS_OK : RHS_EINVAL;
}

static int pg_find(rhs_backend_t *b, uint32_t slot, const rhs_row_view_t *match,
		   uint64_t **ids, size_t *count)
{
	unsigned shape = 0;
	params_t p = {0};
	param_int(&p, slot);
	for (int k = 0; match && k < RHS_IX_COUNT; k++)
		if (match->ix[k]) {
			shape |= 1u << k;
			param_bytes(&p, match->ix[k], match->ix_len[k]);
		}
	char sql[256], name[16];
	if (find_sql(shape, sql, sizeof(sql)) < 0)
		return RHS_EINVAL;
	snprintf(name, sizeof(name), "rh_find_%u", shape);
	PGresult *r = run_named(b, name, &b->find_prepared[shape], sql, &p);
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	size_t n = rc == RHS_OK ? (size_t)PQntuples(r) : 0;
	uint64_t *out =
		rc == RHS_OK ? malloc((n ? n : 1) * sizeof(*out)) : NULL;
	if (rc == RHS_OK && !out)
		rc = RHS_ENOMEM;
	for (size_t i = 0; rc == RHS_OK && i < n; i++)
		out[i] = (uint64_t)int_at(r, (int)i, 0);
	PQclear(r);
	if (rc < 0)
		return rc;
	*ids = out;
	*count = n;
	return RHS_OK;
}

static int pg_object_count(rhs_backend_t *b, uint32_t slot, uint64_t *count)
{
	params_t p = {0};
	param_int(&p, slot);
	int64_t n = 0;
	int rc = single_int(b, ST_OBJECT_COUNT, &p, &n);
	*count = (uint64_t)n;
	return rc;
}

static int pg_max_object_id(rhs_backend_t *b, uint32_t slot, uint64_t *id)
{
	params_t p = {0};
	if (slot != RHS_ALL_TOKENS)
		param_int(&p, slot);
	int64_t v = 0;
	int rc = single_int(
		b, slot == RHS_ALL_TOKENS ? ST_MAX_ID_ALL : ST_MAX_ID, &p, &v);
	*id = (uint64_t)v;
	return rc;
}

/* Every commit counts itself; what this process did not count is
 * another's. One more, so that a store nobody wrote reads as 1, not as
 * "cannot be read". */
static int64_t pg_foreign_version(rhs_backend_t *b)
{
	params_t none = {0};
	int64_t n = 0;
	if (single_int(b, ST_COMMITS, &none, &n) < 0)
		return 0;
	return n - b->own_commits + 1;
}

/* --- the change log ------------------------------------------------------
 */

static int pg_change_log(rhs_backend_t *b, uint64_t counter, char table,
			 uint32_t slot, uint64_t id)
{
	params_t p = {0};
	char tbl[2] = {table, '\0'};
	param_int(&p, (int64_t)counter);
	param_text(&p, tbl);
	param_int(&p, slot);
	param_int(&p, (int64_t)id);
	int rc = run_command(b, ST_CHANGE_ADD, &p, NULL);
	if (rc < 0 || counter % 1024 || counter <= CHANGES_KEPT)
		return rc;
	params_t old = {0};
	param_int(&old, (int64_t)(counter - CHANGES_KEPT));
	return run_command(b, ST_CHANGES_PRUNE, &old, NULL);
}

static int pg_changes_since(rhs_backend_t *b, uint64_t counter,
			    rhs_change_fn fn, void *ctx)
{
	params_t p = {0};
	param_int(&p, (int64_t)counter);
	PGresult *r = run(b, ST_CHANGES_SINCE, &p);
	int rc = result_rc(b, r, PGRES_TUPLES_OK);
	for (int i = 0; rc == RHS_OK && i < PQntuples(r); i++)
		rc = fn(ctx, (uint64_t)int_at(r, i, 0), (char)int_at(r, i, 1),
			int_at(r, i, 2), (uint64_t)int_at(r, i, 3));
	PQclear(r);
	return rc;
}

const rhs_backend_ops_t rhs_postgres_backend = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.errmsg = pg_errmsg,
	.schema_version = pg_schema_version,
	.migrate_to = pg_migrate_to,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.meta_get = pg_meta_get,
	.meta_put = pg_meta_put,
	.row_get = pg_row_get,
	.rows_each = pg_rows_each,
	.row_put = pg_row_put,
	.object_delete = pg_object_delete,
	.token_delete = pg_token_delete,
	.find = pg_find,
	.object_count = pg_object_count,
	.max_object_id = pg_max_object_id,
	.foreign_version = pg_foreign_version,
	.meta_lock = pg_meta_lock,
	.change_log = pg_change_log,
	.changes_since = pg_changes_since,
	.readers_possible = 1,
};
