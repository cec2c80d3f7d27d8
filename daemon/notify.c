#include "notify.h"

#include <systemd/sd-daemon.h>

int rhd_notify(const char *state)
{
	/* 0 outside systemd ($NOTIFY_SOCKET unset), > 0 when sent. */
	return sd_notify(0, state) < 0 ? -1 : 0;
}

uint64_t rhd_notify_watchdog_usec(void)
{
	uint64_t usec = 0;
	return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
