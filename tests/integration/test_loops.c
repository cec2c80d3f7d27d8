/*
 * The daemon with several event loops: established connections are
 * spread over them, and what spans the daemon spans its loops (drain,
 * reload and its re-check, connection limits, backpressure, a peer that
 * goes away mid-call).
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "rh_calls.h"

#define LOOPS 3

static th_daemon_t d;

static void start(const char *const *more)
{
	const char *flags[16] = {"--loops", "3", "--idle-timeout-ms", "60000"};
	int n = 4;
	for (; more && *more && n < 15; more++)
		flags[n++] = *more;
	flags[n] = NULL;
	th_daemon_start(&d, flags);
}

static void setup(void)
{
	th_pki_make(&d);
}

static void teardown(void)
{
	th_daemon_cleanup(&d);
}

/* The n-th connection's handshake is logged with the loop that serves it:
 * connections go to the loops in turn. */
static void assert_served_by(int n_connections)
{
	for (int loop = 0; loop < LOOPS && loop < n_connections; loop++) {
		char needle[32];
		snprintf(needle, sizeof(needle), "loop=%d", loop);
		ck_assert_msg(th_log_count(&d, "event=handshake ", needle) ==
				      (n_connections - loop + LOOPS - 1) /
					      LOOPS,
			      "connections on loop %d", loop);
	}
}

static void open_hello(th_conn_t *c, const char *stem)
{
	ck_assert_int_eq(th_tls_connect_as(&d, stem, c), 0);
	Remhsm__Response *hello = th_hello(c, RH_PROTOCOL_VERSION);
	ck_assert_ptr_nonnull(hello);
	ck_assert_uint_eq(hello->hello->version, RH_PROTOCOL_VERSION);
	remhsm__response__free_unpacked(hello, NULL);
}

/* A long call, for the worker pool: C_Sign on no session answers at once
 * with CKR_SESSION_HANDLE_INVALID, from a worker. */
static void send_pool_call(th_conn_t *c, uint64_t id)
{
	Remhsm__SignReq body = REMHSM__SIGN_REQ__INIT;
	body.session = 999;
	Remhsm__Request req = REMHSM__REQUEST__INIT;
	req.id = id;
	req.call_case = REMHSM__REQUEST__CALL_SIGN;
	req.sign = &body;
	ck_assert_int_eq(th_send_request(c, &req), 0);
}

static int answered(th_conn_t *c, uint64_t id, uint64_t rv)
{
	Remhsm__Response *r = th_recv_response(c);
	int ok = r && r->id == id && r->rv == rv;
	if (r)
		remhsm__response__free_unpacked(r, NULL);
	return ok;
}

/* The answers to ids first .. first+n-1, each once, in any order (the
 * pool's threads finish them as they do). */
static int all_answered(th_conn_t *c, uint64_t first, int n, uint64_t rv)
{
	unsigned char seen[64] = {0};
	ck_assert_int_le(n, (int)sizeof(seen));
	for (int i = 0; i < n; i++) {
		Remhsm__Response *r = th_recv_response(c);
		int ok = r && r->rv == rv && r->id >= first &&
			 r->id < first + (uint64_t)n && !seen[r->id - first]++;
		if (r)
			remhsm__response__free_unpacked(r, NULL);
		if (!ok)
			return 0;
	}
	return 1;
}

/* calls 16-byte randoms on each connection, interleaved. */
static void randoms_answered(th_conn_t *c, const uint64_t *sessions, int n,
			     int calls)
{
	for (int call = 0; call < calls; call++)
		for (int i = 0; i < n; i++) {
			uint64_t id = (uint64_t)call + 10;
			th_send_random(&c[i], id, sessions[i], 16);
			ck_assert_msg(answered(&c[i], id, CKR_OK),
				      "connection %d, call %d", i, call);
		}
}

/* Connections on every loop, short calls inline and long ones through the
 * shared pool, all answered on the connection that asked. */
START_TEST(test_connections_are_spread_over_the_loops)
{
	start(NULL);
	ck_assert(th_log_contains(&d, "loops=3 worker-threads=4"));
	enum { N = 2 * LOOPS };
	th_conn_t c[N];
	uint64_t sessions[N];
	for (int i = 0; i < N; i++) {
		open_hello(&c[i], "client");
		sessions[i] = th_open_session(&c[i]);
	}
	assert_served_by(N);
	randoms_answered(c, sessions, N, 50);
	for (int i = 0; i < N; i++)
		for (uint64_t id = 100; id < 110; id++)
			send_pool_call(&c[i], id);
	for (int i = 0; i < N; i++)
		ck_assert(all_answered(&c[i], 100, 10,
				       CKR_SESSION_HANDLE_INVALID));
	for (int i = 0; i < N; i++)
		th_conn_close(&c[i]);
}
END_TEST

/* SIGTERM: every loop answers what it has read, closes its connections
 * and ends; the daemon exits 0. */
START_TEST(test_sigterm_drains_every_loop)
{
	start(NULL);
	th_conn_t c[LOOPS];
	for (int i = 0; i < LOOPS; i++) {
		open_hello(&c[i], "client");
		send_pool_call(&c[i], 7);
		ck_assert(answered(&c[i], 7, CKR_SESSION_HANDLE_INVALID));
	}
	assert_served_by(LOOPS);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	for (int i = 0; i < LOOPS; i++) {
		ck_assert(th_peer_closed(&c[i]));
		th_conn_close(&c[i]);
	}
	ck_assert_int_eq(
		th_log_count(&d, "reason=\"server shutting down\"", NULL),
		LOOPS);
	ck_assert(th_log_contains(&d, "event=stopped"));
}
END_TEST

/* Reads one notification within ms; 1 when it held want. */
static int heard(int fd, const char *want, int ms)
{
	char buf[256];
	return th_notification(fd, buf, sizeof(buf), ms) >= 0 &&
	       strstr(buf, want) != NULL;
}

/* SIGTERM while the watchdog's pings are on their way to every loop: a
 * loop that hears of the drain through a ping may end before the
 * acceptor has woken it for the drain, and the daemon still exits 0
 * (it once aborted, waking a loop already closed). */
START_TEST(test_sigterm_while_the_loops_are_pinged)
{
	setenv("WATCHDOG_USEC", "20000", 1);
	for (int round = 0; round < 20; round++) {
		char name[16];
		snprintf(name, sizeof(name), "notify-%d", round);
		int fd = th_notify_socket(&d, name);
		start(NULL);
		ck_assert(heard(fd, "READY=1", 2000));
		/* Three pets: every loop's thread runs and answers pings. */
		for (int pet = 0; pet < 3; pet++)
			ck_assert(heard(fd, "WATCHDOG=1", 2000));
		/* 20 s: sanitizer builds stop slowly. */
		int status = th_daemon_wait_exit(&d, fd, 20, NULL, NULL);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "round %d: status %#x", round, (unsigned)status);
		close(fd);
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
}
END_TEST

/* The thread of the daemon named name (its comm), or -1. */
static pid_t thread_named(const char *name)
{
	char path[384], comm[32];
	for (int tries = 0; tries < 50; tries++) {
		snprintf(path, sizeof(path), "/proc/%d/task", (int)d.pid);
		DIR *dir = opendir(path);
		ck_assert_ptr_nonnull(dir);
		pid_t found = -1;
		for (struct dirent *e; found < 0 && (e = readdir(dir));) {
			snprintf(path, sizeof(path), "/proc/%d/task/%s/comm",
				 (int)d.pid, e->d_name);
			FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
			if (f && fgets(comm, sizeof(comm), f) &&
			    !strncmp(comm, name, strlen(name)) &&
			    comm[strlen(name)] == '\n')
				found = atoi(e->d_name);
			if (f)
				fclose(f);
		}
		closedir(dir);
		if (found > 0)
			return found;
		usleep(100000);
	}
	return -1;
}

/* strace on one thread alone, holding each of its waits for events a
 * second before it returns: the loop answers nothing in time. */
static pid_t slow_waits(pid_t tid)
{
	char target[16];
	snprintf(target, sizeof(target), "%d", (int)tid);
	pid_t kid = fork();
	ck_assert_int_ge(kid, 0);
	if (kid == 0) {
		execlp("strace", "strace", "-qq", "-o", "/dev/null", "-e",
		       "trace=epoll_wait,epoll_pwait", "-e",
		       "inject=epoll_wait,epoll_pwait:delay_exit=1000000", "-p",
		       target, (char *)NULL);
		_exit(127);
	}
	return kid;
}

/* A loop that stops answering the watchdog's pings (its thread held by
 * strace) stops the petting and is named in the log; once it answers
 * again the petting resumes, and the other loops were never named. */
START_TEST(test_a_loop_that_does_not_answer_withholds_the_watchdog)
{
	setenv("WATCHDOG_USEC", "200000", 1);
	int fd = th_notify_socket(&d, "notify");
	start(NULL);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	ck_assert(heard(fd, "READY=1", 2000));
	for (int pet = 0; pet < 3; pet++)
		ck_assert(heard(fd, "WATCHDOG=1", 2000));
	pid_t loop = thread_named("remhsmd-loop2");
	ck_assert_int_gt(loop, 0);
	pid_t tracer = slow_waits(loop);
	const char *withheld = "event=watchdog-withheld loop=2";
	for (int i = 0; i < 100 && !th_log_count(&d, withheld, NULL); i++)
		usleep(100000);
	kill(tracer, SIGTERM); /* strace detaches and exits */
	waitpid(tracer, NULL, 0);
	ck_assert_int_ge(th_log_count(&d, withheld, NULL), 1);
	ck_assert_int_eq(
		th_log_count(&d, "event=watchdog-withheld loop=1", NULL), 0);
	/* What piled up meanwhile, then three pets in a row. */
	char buf[256];
	while (th_notification(fd, buf, sizeof(buf), 0) >= 0)
		;
	for (int pet = 0; pet < 3; pet++)
		ck_assert(heard(fd, "WATCHDOG=1", 2000));
	int status = th_daemon_wait_exit(&d, fd, 20, NULL, NULL);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
}
END_TEST

/* The per-identity and global limits count the connections of every
 * loop, and a place freed on one loop is taken again. */
START_TEST(test_limits_count_every_loop)
{
	static const char *const limits[] = {"--max-connections-per-identity",
					     "2", "--max-connections", "3",
					     NULL};
	th_issue_client(&d, "other");
	start(limits);
	th_conn_t a, b, refused, other, over;
	open_hello(&a, "client");
	open_hello(&b, "client");
	ck_assert_int_eq(th_tls_connect_as(&d, "client", &refused), 0);
	ck_assert(th_peer_closed(&refused));
	th_conn_close(&refused);
	ck_assert(th_log_contains(&d, "limit=max-connections-per-identity "
				      "value=2"));
	open_hello(&other, "other");
	if (th_tls_connect_as(&d, "other", &over) == 0)
		ck_assert(th_peer_closed(&over));
	th_conn_close(&over);
	ck_assert(th_log_contains(&d, "reason=\"maximum connections "
				      "reached\""));
	th_conn_close(&b); /* served by the second loop */
	usleep(200000);
	open_hello(&b, "client");
	th_conn_close(&b);
	th_conn_close(&a);
	th_conn_close(&other);
}
END_TEST

/* A CRL that revokes one identity, reloaded while it and another are
 * connected on every loop: the revoked one's connections close on each
 * loop, the other's keep working. */
START_TEST(test_reload_rechecks_every_loop)
{
	th_issue_client(&d, "doomed");
	static const char *const none[] = {NULL};
	th_write_crl(&d, none);
	char crl[512];
	snprintf(crl, sizeof(crl), "%s/crl.pem", d.pki);
	const char *flags[] = {"--tls-crl", crl, NULL};
	start(flags);
	th_conn_t keep[LOOPS], doomed[LOOPS];
	uint64_t sessions[LOOPS];
	for (int i = 0; i < LOOPS; i++) {
		open_hello(&keep[i], "client");
		sessions[i] = th_open_session(&keep[i]);
		open_hello(&doomed[i], "doomed");
	}
	static const char *const revoked[] = {"doomed", NULL};
	th_write_crl(&d, revoked);
	ck_assert(th_daemon_reload(&d));
	ck_assert(th_log_contains(&d, "event=reload "));
	for (int i = 0; i < LOOPS; i++) {
		ck_assert(th_peer_closed(&doomed[i]));
		th_conn_close(&doomed[i]);
	}
	ck_assert_int_eq(th_log_count(&d, "event=access-revoked ",
				      "identity=CN=doomed "),
			 LOOPS);
	randoms_answered(keep, sessions, LOOPS, 100);
	for (int i = 0; i < LOOPS; i++)
		th_conn_close(&keep[i]);
}
END_TEST

/* Clients on two loops that send and do not read: each is held back on
 * its own loop while a client on a third is served, and nothing is lost
 * when they read at last. */
START_TEST(test_clients_that_do_not_read_are_held_back_on_each_loop)
{
	start(NULL);
	th_conn_t idle, c[2];
	open_hello(&idle, "client"); /* takes the first loop */
	uint64_t sessions[2];
	enum { CALLS = 700 }; /* 11 MiB of answers each */
	for (int i = 0; i < 2; i++) {
		open_hello(&c[i], "client");
		sessions[i] = th_open_session(&c[i]);
		for (uint64_t id = 100; id < 100 + CALLS; id++)
			th_send_random(&c[i], id, sessions[i], 16384);
	}
	for (int i = 0;
	     i < 200 && th_log_count(&d, "event=backpressure", NULL) < 2; i++)
		usleep(10000);
	ck_assert_int_ge(th_log_count(&d, "event=backpressure", NULL), 2);
	uint64_t idle_session = th_open_session(&idle);
	randoms_answered(&idle, &idle_session, 1, 20);
	for (int i = 0; i < 2; i++)
		for (uint64_t id = 100; id < 100 + CALLS; id++)
			ck_assert_msg(answered(&c[i], id, CKR_OK),
				      "connection %d, call %llu", i,
				      (unsigned long long)id);
	for (int i = 0; i < 2; i++)
		th_conn_close(&c[i]);
	th_conn_close(&idle);
}
END_TEST

/* A second SIGTERM while the daemon drains is heard and ignored: the
 * drain goes on to its end and the daemon exits 0. A client that does not
 * read holds the drain open until the drain timeout. (The daemon once let
 * go of its handler as the drain began, and a second SIGTERM killed it.) */
START_TEST(test_a_second_sigterm_during_the_drain_is_ignored)
{
	const char *const flags[] = {"--drain-timeout-ms", "1500", NULL};
	start(flags);
	th_conn_t c;
	open_hello(&c, "client");
	uint64_t session = th_open_session(&c);
	for (uint64_t id = 100; id < 800; id++)
		th_send_random(&c, id, session, 16384);
	for (int i = 0;
	     i < 200 && th_log_count(&d, "event=backpressure", NULL) < 1; i++)
		usleep(10000);
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	ck_assert(th_log_contains(&d, "event=shutdown "));
	ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
	ck_assert(th_log_contains(&d, "event=signal-ignored signal=Terminated "
				      "reason=\"draining already\""));
	ck_assert_int_eq(th_daemon_stop(&d), 0);
	ck_assert(th_log_contains(&d, "reason=\"drain timeout\""));
	th_conn_close(&c);
}
END_TEST

/* A peer that resets its connection with calls in flight, inline and on
 * the pool, on each loop: the calls finish into nothing, and every loop
 * serves a newcomer afterwards. */
START_TEST(test_a_peer_gone_mid_call_on_each_loop_loses_nothing)
{
	start(NULL);
	for (int i = 0; i < LOOPS; i++) {
		th_conn_t c;
		open_hello(&c, "client");
		uint64_t session = th_open_session(&c);
		for (uint64_t id = 10; id < 60; id++) {
			th_send_random(&c, id, session, 16384);
			send_pool_call(&c, id + 1000);
		}
		struct linger reset = {.l_onoff = 1, .l_linger = 0};
		setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		close(c.fd);
		c.fd = -1;
		th_conn_close(&c);
	}
	ck_assert_int_eq(th_log_count(&d, "event=close ", NULL) >= LOOPS, 1);
	th_conn_t c[LOOPS];
	uint64_t sessions[LOOPS];
	for (int i = 0; i < LOOPS; i++) {
		open_hello(&c[i], "client");
		sessions[i] = th_open_session(&c[i]);
	}
	assert_served_by(2 * LOOPS);
	randoms_answered(c, sessions, LOOPS, 20);
	for (int i = 0; i < LOOPS; i++)
		th_conn_close(&c[i]);
	ck_assert_int_eq(th_daemon_stop(&d), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("loops");
	TCase *tc = tcase_create("loops");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_connections_are_spread_over_the_loops);
	tcase_add_test(tc, test_sigterm_drains_every_loop);
	tcase_add_test(tc, test_sigterm_while_the_loops_are_pinged);
	tcase_add_test(tc,
		       test_a_loop_that_does_not_answer_withholds_the_watchdog);
	tcase_add_test(tc, test_limits_count_every_loop);
	tcase_add_test(tc, test_reload_rechecks_every_loop);
	tcase_add_test(
		tc, test_clients_that_do_not_read_are_held_back_on_each_loop);
	tcase_add_test(tc, test_a_second_sigterm_during_the_drain_is_ignored);
	tcase_add_test(tc,
		       test_a_peer_gone_mid_call_on_each_loop_loses_nothing);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
