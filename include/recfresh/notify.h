/*
 * recfresh - service manager notifications (systemd Type=notify): READY=1
 * once the consumers caught up, STOPPING=1 when a stop begins, WATCHDOG=1
 * pings when the unit sets WatchdogSec=. Without $NOTIFY_SOCKET (not run by
 * systemd) every call is a no-op.
 */
#ifndef RECFRESH_NOTIFY_H
#define RECFRESH_NOTIFY_H

#include <stdint.h>

/** Tells the service manager we are ready, with a status line. */
void rf_notify_ready(const char *status);

/** Tells the service manager we are stopping. */
void rf_notify_stopping(void);

/**
 * Sends WATCHDOG=1 when the watchdog is enabled and half its interval
 * passed since the last ping; call from the main loop (\p now_ms: a
 * monotonic clock).
 */
void rf_notify_watchdog(int64_t now_ms);

#endif /* RECFRESH_NOTIFY_H */
