/*
 * recfresh - the daemon (`recfresh run`): wires the store, the consumers,
 * the apply path, fan-out jobs and the outbox producer into one loop on one
 * writer thread:
 *
 *   poll records -> apply batch + offsets in one RocksDB write
 *                -> fan-out step (bounded) -> produce outbox -> wait
 *
 * It can host the embedded broker in-process.
 */
#ifndef RECFRESH_DAEMON_H
#define RECFRESH_DAEMON_H

#include "recfresh/config.h"
#include "recfresh/store.h"

typedef struct rf_daemon rf_daemon_t;

/**
 * Opens the store and creates the clients. With conf->brokers empty, starts
 * the embedded broker in-process (and writes its bootstrap address to
 * conf->bootstrap_file if set). \p conf must outlive the daemon.
 * @returns the daemon or NULL with errstr set.
 */
rf_daemon_t *rf_daemon_new(const rf_config_t *conf, char *errstr,
                           size_t errstr_size);

/**
 * Runs the loop until rf_daemon_stop() or a fatal error.
 * @returns 0 after a clean stop (batch committed, outbox flushed), or 1.
 */
int rf_daemon_run(rf_daemon_t *d);

/** Asks the loop to stop. Async-signal-safe. */
void rf_daemon_stop(rf_daemon_t *d);

/** @returns the bootstrap servers in use. */
const char *rf_daemon_bootstraps(const rf_daemon_t *d);

/** @returns the daemon's (primary) store, for in-process readers. */
rf_store_t *rf_daemon_store(rf_daemon_t *d);

/** @returns 1 once the consumers are assigned (see consumer.h). */
int rf_daemon_ready(const rf_daemon_t *d);

/** Frees the daemon (after rf_daemon_run returned, or never ran). */
void rf_daemon_destroy(rf_daemon_t *d);

#endif /* RECFRESH_DAEMON_H */
