/* remhsmd's settings: defaults, the config file, flags over it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#include "harness.h"

static char path[64];
static char err[1024];

static const char *write_conf(const char *text)
{
	snprintf(path, sizeof(path), "/tmp/remhsmd-conf-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void teardown(void)
{
	if (path[0])
		unlink(path);
	path[0] = '\0';
}

static int from_args(rhd_config_t *cfg, int argc, const char **argv)
{
	rhd_config_defaults(cfg);
	return rhd_config_from_args(cfg, argc, (char **)argv, err, sizeof(err));
}

START_TEST(test_defaults_listen_on_loopback_and_derive_pki_paths)
{
	rhd_config_t cfg;
	const char *argv[] = {"remhsmd", "--state-dir", "/var/lib/x"};
	ck_assert_int_eq(from_args(&cfg, 3, argv), 0);
	ck_assert_str_eq(cfg.listen, "127.0.0.1:5697");
	ck_assert_str_eq(cfg.tls_ca, "/var/lib/x/pki/ca.pem");
	ck_assert_str_eq(cfg.tls_cert, "/var/lib/x/pki/server.pem");
	ck_assert_str_eq(cfg.tls_key, "/var/lib/x/pki/server.key");
	ck_assert_int_eq(cfg.tls12, 0);
}
END_TEST

START_TEST(test_file_sets_keys_and_flags_override_it)
{
	rhd_config_t cfg;
	const char *conf = write_conf("# comment\n\nlisten = 127.0.0.2:9000\n"
				      "tls-ca=/etc/ca.pem\n  tls12 = yes  \n"
				      "max-frame = 4096\n");
	const char *argv[] = {"remhsmd", "--listen", "[::1]:7000", "--config",
			      conf};
	ck_assert_int_eq(from_args(&cfg, 5, argv), 0);
	ck_assert_str_eq(cfg.listen, "[::1]:7000");
	ck_assert_str_eq(cfg.tls_ca, "/etc/ca.pem");
	ck_assert_int_eq(cfg.tls12, 1);
	ck_assert_uint_eq(cfg.max_frame, 4096);
}
END_TEST

START_TEST(test_unknown_key_names_file_and_line)
{
	rhd_config_t cfg;
	const char *conf =
		write_conf("listen = 127.0.0.1:1\nlisten_addr = x\n");
	const char *argv[] = {"remhsmd", "--config", conf};
	ck_assert_int_eq(from_args(&cfg, 3, argv), -1);
	char expect[128];
	snprintf(expect, sizeof(expect), "%s:2: unknown key 'listen_addr'",
		 conf);
	ck_assert_str_eq(err, expect);
}
END_TEST

START_TEST(test_bad_values_are_errors)
{
	rhd_config_t cfg;
	rhd_config_defaults(&cfg);
	ck_assert_int_eq(
		rhd_config_set(&cfg, "max-frame", "12x", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "max-frame"));
	ck_assert_int_eq(
		rhd_config_set(&cfg, "max-frame", "-5", err, sizeof(err)), -1);
	ck_assert_int_eq(
		rhd_config_set(&cfg, "max-frame", "10", err, sizeof(err)), -1);
	ck_assert_int_eq(rhd_config_set(&cfg, "slots", "99999999999999999999",
					err, sizeof(err)),
			 -1);
	ck_assert_int_eq(
		rhd_config_set(&cfg, "tls12", "maybe", err, sizeof(err)), -1);
	ck_assert_int_eq(rhd_config_set(&cfg, "listen", "", err, sizeof(err)),
			 -1);
	ck_assert_uint_eq(cfg.max_frame, 1u << 20);
}
END_TEST

/* The loops and the worker threads, within their bounds; 0 loops means
 * one per online CPU. A refused value leaves the one in force. */
START_TEST(test_loops_and_worker_threads_are_bounded)
{
	rhd_config_t cfg;
	rhd_config_defaults(&cfg);
	ck_assert_uint_eq(cfg.loops, 0);
	ck_assert_uint_eq(cfg.worker_threads, 4);
	ck_assert_int_eq(rhd_config_set(&cfg, "loops", "257", err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err,
			 "loops: expected an integer in 0..256, got '257'");
	ck_assert_int_eq(
		rhd_config_set(&cfg, "worker-threads", "0", err, sizeof(err)),
		-1);
	ck_assert_str_eq(
		err, "worker-threads: expected an integer in 1..256, got '0'");
	ck_assert_uint_eq(cfg.loops, 0);
	ck_assert_uint_eq(cfg.worker_threads, 4);
	ck_assert_int_eq(rhd_config_set(&cfg, "loops", "3", err, sizeof(err)),
			 0);
	ck_assert_uint_eq(cfg.loops, 3);
}
END_TEST

/* The cluster's settings: sessions of a store and how often a shared one
 * is asked, within their bounds; a refused value leaves the default. */
START_TEST(test_store_sessions_and_poll_interval_are_bounded)
{
	rhd_config_t cfg;
	rhd_config_defaults(&cfg);
	ck_assert_uint_eq(cfg.store_connections, 1);
	ck_assert_uint_eq(cfg.store_poll_ms, 100);
	ck_assert_int_eq(cfg.store_shared, 0);
	ck_assert_int_eq(rhd_config_set(&cfg, "store-connections", "0", err,
					sizeof(err)),
			 -1);
	ck_assert_str_eq(
		err,
		"store-connections: expected an integer in 1..64, got '0'");
	ck_assert_int_eq(
		rhd_config_set(&cfg, "store-poll-ms", "5", err, sizeof(err)),
		-1);
	ck_assert_str_eq(
		err,
		"store-poll-ms: expected an integer in 10..60000, got '5'");
	ck_assert_int_eq(rhd_config_set(&cfg, "store-shared", "sometimes", err,
					sizeof(err)),
			 -1);
	ck_assert_uint_eq(cfg.store_connections, 1);
	ck_assert_uint_eq(cfg.store_poll_ms, 100);
	ck_assert_int_eq(cfg.store_shared, 0);
	ck_assert_int_eq(rhd_config_set(&cfg, "store-connections", "3", err,
					sizeof(err)),
			 0);
	ck_assert_uint_eq(cfg.store_connections, 3);
}
END_TEST

/* The secure heap: 4 MiB unless set, a power of two, 0 for none. */
START_TEST(test_the_secure_heap_is_a_power_of_two_or_none)
{
	rhd_config_t cfg;
	rhd_config_defaults(&cfg);
	ck_assert_uint_eq(cfg.secure_heap_kb, 4096);
	ck_assert_int_eq(rhd_config_set(&cfg, "secure-heap-kb", "3000", err,
					sizeof(err)),
			 -1);
	ck_assert_str_eq(err,
			 "secure-heap-kb: must be a power of two, got '3000'");
	ck_assert_uint_eq(cfg.secure_heap_kb, 4096);
	ck_assert_int_eq(
		rhd_config_set(&cfg, "secure-heap-kb", "0", err, sizeof(err)),
		0);
	ck_assert_uint_eq(cfg.secure_heap_kb, 0);
}
END_TEST

START_TEST(test_line_without_equals_is_an_error)
{
	rhd_config_t cfg;
	const char *conf = write_conf("listen 127.0.0.1:1\n");
	const char *argv[] = {"remhsmd", "--config", conf};
	ck_assert_int_eq(from_args(&cfg, 3, argv), -1);
	ck_assert_ptr_nonnull(strstr(err, ":1: expected 'key = value'"));
}
END_TEST

START_TEST(test_missing_config_file_is_an_error)
{
	rhd_config_t cfg;
	const char *argv[] = {"remhsmd", "--config",
			      "/nonexistent/remhsmd.conf"};
	ck_assert_int_eq(from_args(&cfg, 3, argv), -1);
	ck_assert_str_eq(
		err, "/nonexistent/remhsmd.conf: No such file or directory");
}
END_TEST

START_TEST(test_unknown_flag_and_missing_value_are_errors)
{
	rhd_config_t cfg;
	const char *bad[] = {"remhsmd", "--listne", "x"};
	ck_assert_int_eq(from_args(&cfg, 3, bad), -1);
	ck_assert_str_eq(err, "unknown option '--listne'");
	const char *missing[] = {"remhsmd", "--listen"};
	ck_assert_int_eq(from_args(&cfg, 2, missing), -1);
	ck_assert_str_eq(err, "option --listen needs a value");
	const char *stray[] = {"remhsmd", "extra"};
	ck_assert_int_eq(from_args(&cfg, 2, stray), -1);
	const char *help[] = {"remhsmd", "--help"};
	ck_assert_int_eq(from_args(&cfg, 2, help), 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc,
		       test_defaults_listen_on_loopback_and_derive_pki_paths);
	tcase_add_test(tc, test_file_sets_keys_and_flags_override_it);
	tcase_add_test(tc, test_unknown_key_names_file_and_line);
	tcase_add_test(tc, test_bad_values_are_errors);
	tcase_add_test(tc, test_loops_and_worker_threads_are_bounded);
	tcase_add_test(tc, test_store_sessions_and_poll_interval_are_bounded);
	tcase_add_test(tc, test_the_secure_heap_is_a_power_of_two_or_none);
	tcase_add_test(tc, test_line_without_equals_is_an_error);
	tcase_add_test(tc, test_missing_config_file_is_an_error);
	tcase_add_test(tc, test_unknown_flag_and_missing_value_are_errors);
	suite_add_tcase(s, tc);
	return th_run_suite(s);
}
