/*
 * recfresh - logging. One function, rf_log(), writes logfmt lines to stderr:
 *
 *   ts=2026-11-22T09:14:00.123Z level=info sub=consumer msg="assigned 8
 * partitions"
 *
 * librdkafka's log and error callbacks are routed here (see kafka.c). Never
 * pass secrets (SASL passwords, tokens) to rf_log().
 */
#ifndef RECFRESH_LOG_H
#define RECFRESH_LOG_H

#include "recfresh/common.h"

/** Levels, syslog-numbered so librdkafka's levels map one to one. */
typedef enum rf_log_level {
        RF_LOG_ERROR = 3,
        RF_LOG_WARN = 4,
        RF_LOG_INFO = 6,
        RF_LOG_DEBUG = 7,
} rf_log_level_t;

/** Sets the most verbose level that is written (default RF_LOG_INFO). */
void rf_log_set_level(int level);

/** @returns the current level. */
int rf_log_get_level(void);

/**
 * Parses "error", "warn", "info" or "debug".
 * @returns the level, or -1 if \p name is none of them.
 */
int rf_log_level_parse(const char *name);

/** Writes one logfmt line if \p level is enabled. Thread-safe. */
void rf_log(int level, const char *subsys, const char *fmt, ...)
    RF_PRINTF(3, 4);

#define rf_log_error(sub, ...) rf_log(RF_LOG_ERROR, sub, __VA_ARGS__)
#define rf_log_warn(sub, ...)  rf_log(RF_LOG_WARN, sub, __VA_ARGS__)
#define rf_log_info(sub, ...)  rf_log(RF_LOG_INFO, sub, __VA_ARGS__)
#define rf_log_debug(sub, ...) rf_log(RF_LOG_DEBUG, sub, __VA_ARGS__)

#endif /* RECFRESH_LOG_H */
