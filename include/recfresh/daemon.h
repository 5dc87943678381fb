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
#include "recfresh/serve.h"
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

/**
 * @returns whether a store write failed (disk full, I/O error). RocksDB
 * cannot then be closed cleanly (closing syncs the failed WAL), nor need it
 * be: the caller exits without rf_daemon_destroy() and the next start
 * recovers from the WAL, as after a crash.
 */
int rf_daemon_store_failed(const rf_daemon_t *d);

/** Asks the loop to stop. Async-signal-safe. */
void rf_daemon_stop(rf_daemon_t *d);

/** @returns the bootstrap servers in use. */
const char *rf_daemon_bootstraps(const rf_daemon_t *d);

/** @returns the daemon's (primary) store, for in-process readers. */
rf_store_t *rf_daemon_store(rf_daemon_t *d);

/** @returns 1 once the consumers are assigned (see consumer.h). */
int rf_daemon_ready(const rf_daemon_t *d);

/** @returns 1 if /readyz would answer ready; else 0 with the reason in
 *  \p why (catching up, no broker reachable, degraded, stopping). */
int rf_daemon_readiness(rf_daemon_t *d, char *why, size_t why_size);

/**
 * The HTTP API (http.h) starts with the daemon when conf->http_addr is not
 * empty, and stops first in rf_daemon_destroy(). /readyz is ready once the
 * consumers are assigned and every partition was within
 * http.ready_max_lag records of its end once (latched: later load does not
 * pull the instance out of rotation), unless the daemon is degraded or
 * stopping.
 * @returns the bound HTTP address ("127.0.0.1:41234"), or NULL if none.
 */
const char *rf_daemon_http_addr(const rf_daemon_t *d);

/**
 * Marks the daemon degraded (/readyz answers 503 with \p reason) or, with
 * NULL or "", healthy again. Thread-safe.
 */
void rf_daemon_set_degraded(rf_daemon_t *d, const char *reason);

/**
 * Sets the function reads call when they find a list expired (serve.h):
 * the recompute queue's thread-safe entry point. Until set, such reads are
 * only counted (recfresh_read_recompute_requests_total). Thread-safe.
 */
void rf_daemon_set_read_recompute(rf_daemon_t *d, rf_recompute_fn *fn,
                                  void *opaque);

/** Frees the daemon (after rf_daemon_run returned, or never ran). */
void rf_daemon_destroy(rf_daemon_t *d);

#endif /* RECFRESH_DAEMON_H */
