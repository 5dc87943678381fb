/*
 * recfresh - refresh runs: the daily full refresh (mode "full": every
 * subject with a servable list and consent) and the incremental refresh of
 * active subjects (mode "active": subjects active within a window whose
 * lists are expired, expire within recompute.expiry_horizon, lost more than
 * recompute.max_invalid_pct of their entries to tombstones, or are older
 * than recompute.max_age).
 *
 * A run walks subjects in key order in bounded steps and puts a request per
 * subject into a recompute queue (recompute.h), with request_id derived from
 * (run_id, subject). Each step's requests and the run's cursor are written
 * in one transaction, so a run killed halfway resumes where it stopped and
 * a run id that finished sends nothing again. A run pauses while
 * recompute.refresh_backlog of its requests are pending, so the queue never
 * holds the whole population.
 *
 * A scheduled run that has not finished when the next one of its schedule
 * starts is closed, and the new run begins where it stopped, wrapping
 * around past the last subject: when a day is too short for the whole
 * population, each day's run goes on where the last one stopped instead
 * of refreshing the same first subjects every day.
 *
 * Two hosts run them:
 *  - the daemon, on its schedules (recompute.full_at daily, UTC, run id
 *    "full-YYYY-MM-DD"; every recompute.incremental_every, run id
 *    "active-<slot start>"), through its own queue;
 *  - `recfresh refresh`, beside a running daemon: it reads the daemon's
 *    store as a secondary and keeps its queue and run records in a store of
 *    its own, <data_dir>.refresh, producing directly (see cmd_refresh.c).
 *
 * Run records live in the activity column family of the store that holds
 * the queue: 'R' run_id -> run (binary, refresh.c).
 */
#ifndef RECFRESH_REFRESH_H
#define RECFRESH_REFRESH_H

#include "recfresh/apply.h"
#include "recfresh/recompute.h"

/** A run's record. */
typedef struct rf_refresh_run {
        char *run_id;
        int mode;              /* RF_RC_FULL or RF_RC_ACTIVE */
        int done;              /* 1: finished, nothing more to send */
        int64_t started_at;    /* ms */
        int64_t finished_at;   /* ms, 0 while running */
        int64_t active_within; /* mode active: the window, ms */
        uint64_t subjects;     /* subjects queued so far */
        rf_buf_t cursor;       /* last key walked, empty at the start */
        /* Where the run began: after this key, to the end, then from the
         * start up to it (empty: from the start to the end). A scheduled
         * run begins where the one it replaces stopped. */
        rf_buf_t start;
        int wrapped; /* past the end, back at the start (while running) */
} rf_refresh_run_t;

/** Reads run \p run_id through \p txn (or \p st). @returns 0, RF_ENOENT
 *  or a store error. Clear \p run with rf_refresh_run_clear(). */
int rf_refresh_run_get(rf_store_t *st, rf_txn_t *txn, const char *run_id,
                       rf_refresh_run_t *run);
void rf_refresh_run_clear(rf_refresh_run_t *run);

/** Lists every run record of \p st, in run id order. @returns 0 or a store
 *  error (then none); *runs (free each with rf_refresh_run_clear, then the
 *  array). */
int rf_refresh_runs_list(rf_store_t *st, rf_refresh_run_t **runs, size_t *cnt);

/** Where a run reads subjects from. */
typedef struct rf_refresh_src {
        rf_store_t *st; /* the daemon's store (primary or secondary) */
        const rf_config_t *conf;
        int prune; /* 1: may delete expired activity (primary only) */
} rf_refresh_src_t;

/**
 * Runs one step of run \p run_id (created at the first step) of \p mode:
 * walks up to \p budget subjects after the run's cursor and adds a request
 * for each one that qualifies to \p q, in \p txn with the new cursor (the
 * caller commits, then calls rf_queue_committed). \p txn belongs to the
 * store of \p q. \p active_within is used by mode active.
 * *done is set when the run has finished (now or before).
 * @returns subjects queued (>= 0) or a store error.
 */
int rf_refresh_step(const rf_refresh_src_t *src, rf_queue_t *q, rf_txn_t *txn,
                    const char *run_id, rf_rc_mode_t mode,
                    int64_t active_within, int64_t now_ms, size_t budget,
                    int *done);

/**
 * A consent purge of \p subject: no unfinished run of \p st (in \p txn)
 * keeps its id as a cursor or start. Each such position moves to the
 * subject walked just before it, the same place in the walk, now that the
 * subject's lists are gone. @returns 0 or a store error.
 */
int rf_refresh_forget_subject(rf_store_t *st, rf_txn_t *txn,
                              const char *subject, int64_t now_ms);

/** The daemon's schedules. */
typedef struct rf_refresh rf_refresh_t;

rf_refresh_t *rf_refresh_new(void);
void rf_refresh_destroy(rf_refresh_t *r);

/**
 * Steps the scheduled runs due at \p now_ms (see above) into ctx->txn,
 * through ctx->queue, within the backlog bound. *did is set when anything
 * was written: the caller commits.
 * @returns 0 or a store error.
 */
int rf_refresh_tick(rf_refresh_t *r, rf_apply_ctx_t *ctx, int64_t now_ms,
                    int *did);

/**
 * Asks for run \p run_id of \p mode (RF_RC_FULL or RF_RC_ACTIVE) now, as the
 * admin endpoint does; the writer thread steps it on its next ticks like a
 * scheduled run (resumable, idempotent per run id). Thread-safe.
 * @returns 0, RF_EINVAL, or RF_EBLOCKED while another requested run is
 *          still going.
 */
int rf_refresh_request(rf_refresh_t *r, rf_rc_mode_t mode, const char *run_id);

/** Writes the scheduled run ids at \p now_ms: daily full ("" when
 *  recompute.full_at is "" or not yet reached today) and active ("" when
 *  recompute.incremental_every is 0). Buffers of 64 bytes. */
void rf_refresh_scheduled(const rf_config_t *conf, int64_t now_ms,
                          char full_id[64], char active_id[64]);

#endif /* RECFRESH_REFRESH_H */
