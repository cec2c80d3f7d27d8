/* Operational log: one event per line on stderr, key=value fields. */
#ifndef RHD_LOG_H
#define RHD_LOG_H

void rhd_log(const char *level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "info", "warn" or "error": lines below it are dropped; -1 for any other
 * name. */
int rhd_log_set_level(const char *level);

#define RHD_INFO(...) rhd_log("info", __VA_ARGS__)
#define RHD_WARN(...) rhd_log("warn", __VA_ARGS__)
#define RHD_ERROR(...) rhd_log("error", __VA_ARGS__)

#endif
