/*
 * recfresh - service manager notifications (see notify.h), over
 * libsystemd's sd_notify().
 */
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "recfresh/log.h"
#include "recfresh/notify.h"

void rf_notify_ready(const char *status)
{
        char msg[512];

        snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
        if (sd_notify(0, msg) > 0)
                rf_log_info("notify", "told the service manager: ready");
}

void rf_notify_stopping(void)
{
        sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void rf_notify_watchdog(int64_t now_ms)
{
        static int64_t interval_ms = -1, next_ms;
        uint64_t usec = 0;

        if (interval_ms < 0)
                interval_ms = sd_watchdog_enabled(0, &usec) > 0
                                  ? (int64_t)(usec / 1000)
                                  : 0;
        if (!interval_ms || now_ms < next_ms)
                return;
        next_ms = now_ms + interval_ms / 2;
        sd_notify(0, "WATCHDOG=1");
}
