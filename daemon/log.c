#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const levels[] = {"info", "warn", "error"};
static int threshold; /* index into levels; written once, at start */

static int level_index(const char *level)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(level, levels[i]))
			return i;
	return -1;
}

int rhd_log_set_level(const char *level)
{
	int i = level_index(level);
	if (i < 0)
		return -1;
	threshold = i;
	return 0;
}

void rhd_log(const char *level, const char *fmt, ...)
{
	if (level_index(level) < threshold)
		return;
	char line[1024];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
			 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec,
			 now.tv_nsec / 1000000, level);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so lines from several threads never interleave. */
	fprintf(stderr, "%s\n", line);
}
