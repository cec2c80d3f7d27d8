/*
 * Telling the service manager how the daemon is doing, through
 * libsystemd's sd_notify, so that Type=notify and WatchdogSec= work.
 * Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.
 */
#ifndef RHD_NOTIFY_H
#define RHD_NOTIFY_H

#include <stdint.h>

/* Sends state ("READY=1", "STOPPING=1", "WATCHDOG=1", ...); 0, or -1 when
 * the socket named cannot take it. */
int rhd_notify(const char *state);

/* The watchdog interval systemd asked for, in microseconds ($WATCHDOG_USEC,
 * when $WATCHDOG_PID is unset or names this process); 0 for none. */
uint64_t rhd_notify_watchdog_usec(void);

#endif
