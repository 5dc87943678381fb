/*
 * recfresh - batch runs: staged, validated, atomic publication of the daily
 * batch, versions and rollback (runs.c), the run control records of
 * recs.runs.v1 (codec_run.c) and the spool through which the CLI hands bulk
 * loads and rollbacks to a running daemon (runs_spool.c).
 *
 * The life of a run:
 *
 *   unannounced --run_started--> started --run_completed--> completed
 *        |                          |                           |
 *        +--------- run_aborted ----+------> aborted            | all expected
 *                                                               | lists in, or
 *   failed_validation <--- a gate fails --- validation <--------+ timeout
 *                                               | passes
 *                          superseded <------ active -----> rolled_back
 *                        (a newer run went   (pointer of      (rollback)
 *                         active)             each surface)
 *
 * Lists carrying a run_id are staged in RF_CF_VERSIONS under
 * run_id \0 list key, never in RF_CF_LISTS, so no read sees them before the
 * run is activated. Lists of a run never announced (run_started not yet
 * consumed: the two topics are read independently) are staged too, under
 * state "unannounced"; a run that neither completes nor aborts within
 * runs.staged_ttl is expired and its lists dropped.
 *
 * Activation switches, in ONE RocksDB write, the active-version pointer of
 * every surface of the run (RF_CF_RUNS 'A' surface -> run). Reads
 * (rf_runs_lookup) follow the pointer, so no read sees a mix of two runs for
 * one surface. Tombstones are per entity and applied at read time, so events
 * taken while a run was staged, or since the version now served was built,
 * apply to it.
 *
 * "Newer wins": for a list key, an incremental list (RF_CF_LISTS, no run_id)
 * generated after the active run's generated_at is served instead of the
 * batch list; an older one loses to it (and is served only where the run has
 * no list for the key).
 *
 * Key layouts (RF_CF_RUNS):
 *   'R' run_id        run record (rf_run_info_t, encoded)
 *   'A' surface       active pointer: run_id, generated_at (be64)
 *   'O' run_id        runs still open (unannounced, started, completed)
 *   'P' run_id        versions to delete (failed, aborted, expired, beyond
 *                     runs.keep_versions), deleted in chunks between batches
 *   'H' surface       rollback history: the runs that served the surface
 *                     before its active one, oldest first (strings)
 * RF_CF_VERSIONS:     run_id \0 list key -> encoded list
 * RF_CF_INDEX:        kind entity \0 list key \0 run_id (fan-out of bans and
 *                     the like reaches batch lists too; rf_key_list_split()
 *                     of such a key still yields subject, surface, context)
 */
#ifndef RECFRESH_RUNS_H
#define RECFRESH_RUNS_H

#include "recfresh/apply.h"
#include "recfresh/config.h"
#include "recfresh/store.h"
#include "recfresh/tombstone.h"

/* ---- run control records (recs.runs.v1, codec_run.c) --------------------*/

typedef enum rf_run_ctl_type {
        RF_RUN_CTL_STARTED = 0,
        RF_RUN_CTL_COMPLETED,
        RF_RUN_CTL_ABORTED,
        RF_RUN_CTL_ROLLED_BACK,
        RF_RUN_CTL__CNT
} rf_run_ctl_type_t;

/** @returns the wire name of \p t ("run_started", ...). */
const char *rf_run_ctl_type2str(rf_run_ctl_type_t t);

/** A decoded run control record. Strings are owned by the record. */
typedef struct rf_run_ctl {
        rf_run_ctl_type_t type;
        const char *run_id;
        const char **surfaces;  /* surface_cnt strings */
        size_t surface_cnt;     /* 0 if absent */
        int64_t expected_lists; /* -1 if absent */
        int64_t generated_at;   /* ms since the epoch */
        const char *to;         /* run_rolled_back target, "" = previous */

        void *mem_; /* private: freed by rf_run_ctl_clear */
} rf_run_ctl_t;

/**
 * Parses a recs.runs.v1 value. \p key (may be NULL) must equal run_id.
 * run_started needs a non-empty "surfaces".
 * @returns 0 with \p ctl filled (release with rf_run_ctl_clear), or
 *          RF_EINVAL with \p rej saying why (nothing to release).
 */
int rf_run_ctl_parse(const char *key, size_t key_len, const char *buf,
                     size_t len, const rf_limits_t *lim, rf_run_ctl_t *ctl,
                     rf_rejection_t *rej);

/** Releases what \p ctl owns and zeroes it. */
void rf_run_ctl_clear(rf_run_ctl_t *ctl);

/* ---- runs ---------------------------------------------------------------*/

typedef enum rf_run_state {
        RF_RUN_UNANNOUNCED = 0, /* lists seen, run_started not yet */
        RF_RUN_STARTED,
        RF_RUN_COMPLETED, /* waiting for its lists, then validated */
        RF_RUN_ACTIVE,    /* served on at least one surface */
        RF_RUN_SUPERSEDED,
        RF_RUN_FAILED_VALIDATION,
        RF_RUN_ABORTED,
        RF_RUN_ROLLED_BACK,
        RF_RUN_EXPIRED, /* never completed within runs.staged_ttl */
        RF_RUN__CNT
} rf_run_state_t;

/** @returns "unannounced", "started", ..., "expired". */
const char *rf_run_state2str(rf_run_state_t s);

/** What validation measures, per surface. */
typedef struct rf_run_stats {
        char *surface;
        int64_t lists;    /* lists staged */
        int64_t subjects; /* distinct subjects with a list */
        int64_t empty;    /* lists with no entry */
        int64_t dup;      /* lists holding an item twice */
        int64_t shortl;   /* lists under surface.<s>.run_min_list_len */
        int64_t entries;  /* entries in all lists */
        int64_t invalid;  /* entries already tombstoned when staged */
} rf_run_stats_t;

/** A run record, as `recfresh runs show` prints it. */
typedef struct rf_run_info {
        char *run_id;
        rf_run_state_t state;
        char *source;           /* "topic" or "load" */
        int64_t generated_at;   /* of the run, 0 until known */
        int64_t first_seen_at;  /* wall clock of the first record */
        int64_t completed_at;   /* run_completed (or load) taken */
        int64_t activated_at;   /* last activation, 0 = never */
        int64_t updated_at;     /* last state change */
        int64_t last_list_at;   /* last list staged */
        int64_t expected_lists; /* -1 = not given */
        char **surfaces;        /* declared surfaces */
        size_t surface_cnt;
        rf_run_stats_t *stats; /* per surface seen */
        size_t stat_cnt;
        int64_t late;      /* lists after the run was decided: dropped */
        int64_t blocked;   /* lists of subjects without consent: dropped */
        int64_t malformed; /* bulk load: lines that did not parse */
        char **reasons;    /* validation failures, rollback notes */
        size_t reason_cnt;
        int kept; /* 1 while the version's lists are stored */
} rf_run_info_t;

/** Frees what \p ri owns and zeroes it. */
void rf_run_info_clear(rf_run_info_t *ri);

/** Appends the encoded form of \p ri (also the bulk loader's manifest). */
void rf_run_info_encode(const rf_run_info_t *ri, rf_buf_t *out);

/** Decodes a run record. @returns 0 or RF_EINVAL. */
int rf_run_info_decode(const char *buf, size_t len, rf_run_info_t *ri);

/** @returns the stats of \p surface in \p ri, added (zeroed) if absent. */
rf_run_stats_t *rf_run_info_stats(rf_run_info_t *ri, const char *surface);

/**
 * Adds one list's measures to \p ri (stats of its surface): \p ck (may be
 * NULL) counts entries already tombstoned; \p new_subject says it is the
 * subject's first list of the surface in this run.
 */
void rf_run_info_count(rf_run_info_t *ri, const rf_config_t *conf,
                       const rf_list_t *list, int new_subject,
                       rf_checker_t *ck);

/**
 * Reads run \p run_id (through \p txn if not NULL).
 * @returns 0, RF_ENOENT, RF_EINVAL (corrupt) or a store error.
 */
int rf_runs_get(rf_store_t *st, rf_txn_t *txn, const char *run_id,
                rf_run_info_t *ri);

/**
 * Reads every run record, newest first (by first_seen_at). Caller frees each
 * with rf_run_info_clear() and the array with free().
 * @returns 0 or a store error.
 */
int rf_runs_list(rf_store_t *st, rf_run_info_t **out, size_t *cnt);

/**
 * The active run of \p surface: *run_id (caller frees) and *generated_at.
 * @returns 0, RF_ENOENT (none ever activated) or a store error.
 */
int rf_runs_active(rf_store_t *st, const char *surface, char **run_id,
                   int64_t *generated_at);

/** Prints \p ri as `recfresh runs show` does. */
void rf_run_info_print(const rf_run_info_t *ri, FILE *fp);

/* ---- the apply path -----------------------------------------------------*/

/** Applies a run control record into ctx->txn. @returns 0, RF_ESTALE (taken,
 *  nothing to do) or a store error. */
int rf_runs_apply_ctl(rf_apply_ctx_t *ctx, const rf_run_ctl_t *ctl);

/**
 * Stages a list that carries a run_id into its run's version (see above).
 * @returns 0, RF_ESTALE (an equal or newer list held, or the run already
 *          decided: counted as late), RF_EBLOCKED (consent) or a store error.
 */
int rf_runs_stage(rf_apply_ctx_t *ctx, const rf_list_t *list);

/**
 * Switches back, in ctx->txn: run \p run_id (NULL or "": the most recently
 * activated run still active) stops being served; each surface it still
 * serves goes back to the run that served it before (the surface's
 * history), if that run's version is still stored. With \p to, \p to is
 * made active on its surfaces instead.
 * @returns 0, or RF_ENOENT / RF_EINVAL with errstr saying why.
 */
int rf_runs_rollback(rf_apply_ctx_t *ctx, const char *run_id, const char *to,
                     char *errstr, size_t errstr_size);

/* ---- the read path ------------------------------------------------------*/

/**
 * The stored list to serve for list key \p lkey of \p surface: the active
 * run's version or the incremental list, whichever wins (newer wins, see
 * above). \p val gets the encoded list.
 * @returns 0, RF_ENOENT (neither) or a store error.
 */
int rf_runs_lookup(rf_store_t *st, const char *surface, const char *lkey,
                   size_t klen, rf_buf_t *val);

/** rf_runs_lookup() read in place (rf_store_get_pinned()): the read path's,
 *  which decodes the list once and keeps no copy of it. */
int rf_runs_lookup_pinned(rf_store_t *st, const char *surface, const char *lkey,
                          size_t klen, rf_pinned_t *val);

/**
 * The read path's lookup: rf_runs_lookup() and rf_list_decode_head() of at
 * least \p head items in one, through the store's cache of decoded run
 * versions when one is attached (list_cache.h). *listp is the decoded
 * head, possibly shared with the cache (rf_list_destroy() either way), and
 * *total the stored list's item count. \p val holds the encoded list when
 * it was read (empty on a cache hit): a caller that needs more than the
 * head reads it again (rf_runs_lookup_pinned()) and checks it is the same
 * list. \p refill: read the store even if the cache holds the version, and
 * cache what was read in its place (a retry after such a check failed).
 * @returns 0, RF_ENOENT, RF_EINVAL (the stored list is corrupt) or a store
 *          error.
 */
int rf_runs_read_head(rf_store_t *st, const char *surface, const char *lkey,
                      size_t klen, size_t head, int refill, rf_list_t **listp,
                      size_t *total, rf_pinned_t *val);

/**
 * Whether the list version whose reverse-index entry names list key \p lkey
 * of \p klen bytes may be what reads serve. A batch run's version has
 * "\0run_id" after the list key; it is served only while its run is the
 * active one of its surface. Versions kept for rollback, staged or
 * superseded are not. A fan-out steps over their entries: they would only
 * repeat the served version's notice, or send one for a list no read
 * returns.
 * \p region: the list's, from the index entry (rf_key_list_run()).
 * @returns 0 for a version of a run that is not active, else 1 (an
 *          incremental list, or a store error).
 */
int rf_runs_version_served(rf_store_t *st, const char *lkey, size_t klen,
                           const char *region);

/**
 * Reads the stored list a reverse-index entry names, through \p txn: the
 * run version when \p ikey (of \p iklen bytes) ends in a run id
 * (rf_key_list_run(), with the entry's \p region), else the incremental
 * list. @returns 0, RF_ENOENT or a store error.
 */
int rf_runs_indexed_get(rf_txn_t *txn, const char *ikey, size_t iklen,
                        const char *region, rf_buf_t *val);

/** The run active on each surface that has one. */
typedef struct rf_active_runs {
        size_t cnt;
        char **surface; /* cnt of each, owned */
        char **run_id;
} rf_active_runs_t;

/** Reads every active-run pointer, through \p txn if not NULL; a corrupt
 *  one is logged and skipped. @returns 0 or a store error (*out then
 *  empty). */
int rf_runs_active_all(rf_store_t *st, rf_txn_t *txn, rf_active_runs_t *out);
/** The run active on \p surface, or NULL. */
const char *rf_active_runs_of(const rf_active_runs_t *a, const char *surface);
/** @returns 1 if pointer \p i names a run no earlier pointer names (a run
 *  active on several surfaces is met once). */
int rf_active_runs_first(const rf_active_runs_t *a, size_t i);
void rf_active_runs_clear(rf_active_runs_t *a);

/**
 * Appends to \p out the versions reads may serve of \p subject's lists:
 * those of the run active on each list's surface, read through \p txn if
 * not NULL. Keys are in the reverse index's form (list key, NUL, run id),
 * in_run set, as a fan-out over the index would meet them.
 * @returns 0 or a store error.
 */
int rf_runs_subject_versions(rf_store_t *st, rf_txn_t *txn, const char *subject,
                             rf_subject_lists_t *out);

/* ---- upkeep and the spool (daemon) --------------------------------------*/

typedef struct rf_runs rf_runs_t;

/** Creates the runs upkeep of the store at \p data_dir (spool at
 *  data_dir/spool). */
rf_runs_t *rf_runs_new(const char *data_dir);
void rf_runs_destroy(rf_runs_t *r);

/**
 * Between batches: validates completed runs whose lists are in (or whose
 * wait timed out) and activates those that pass, expires stale staged
 * runs, takes spool jobs (bulk loads, rollbacks), and deletes up to
 * runs.purge_chunk lists of discarded versions. Writes go to ctx->txn; the
 * caller commits. At most every 100 ms unless \p force.
 * @returns 0 or a store error.
 */
int rf_runs_step(rf_runs_t *r, rf_apply_ctx_t *ctx, int force);

/** @returns 1 if discarded versions are left to delete. */
int rf_runs_busy(const rf_runs_t *r);

/**
 * Called after ctx->txn was committed (\p ok) or dropped: finishes spool
 * jobs (result files, removal of the job) or leaves them to retry.
 */
void rf_runs_committed(rf_runs_t *r, int ok);

/** @returns the spool directory (data_dir/spool), for the CLI. */
const char *rf_runs_spool_dir(const rf_runs_t *r);

/**
 * Hands a job directory or file (already complete) to the spool: renames
 * \p tmp_path into it under a name that orders jobs by time. *job_name
 * gets the name (caller frees).
 * @returns 0 or RF_EIO with errstr set.
 */
int rf_runs_spool_submit(const char *data_dir, const char *tmp_path,
                         const char *kind, char **job_name, char *errstr,
                         size_t errstr_size);

/**
 * Waits up to \p timeout_ms for the daemon's result of spool job
 * \p job_name, copies it into \p result and removes the result file.
 * @returns 0, or RF_ENOENT at the deadline.
 */
int rf_runs_spool_wait(const char *data_dir, const char *job_name,
                       int64_t timeout_ms, char *result, size_t result_size);

/** Removes a job directory (flat) or file; a missing one is a no-op. */
void rf_runs_remove_job(const char *path);

/**
 * @returns 1 if \p name (a file name in the spool) is a job's name as
 * rf_runs_spool_submit() gives it ("<ms>-load-<pid>", "<ms>-rollback-<pid>"),
 * else 0: results, the temporary files they are written through, anything
 * else is never taken as a job.
 */
int rf_runs_spool_job_name(const char *name);

/**
 * Removes from \p spool_dir the build directories of loads whose process
 * is gone (".tmp-load-<pid>-XXXXXX": killed or crashed before handing the
 * job over). The daemon does it as it looks for jobs; `recfresh load`
 * before it builds its own. @returns how many were removed.
 */
int rf_runs_spool_sweep(const char *spool_dir);

/** A rollback request file for the spool ("run=R\nto=T\n").
 *  @returns 0, RF_EINVAL for an id with a control character, or RF_EIO. */
int rf_runs_write_rollback(const char *path, const char *run_id, const char *to,
                           char *errstr, size_t errstr_size);

/**
 * Runs one spool job (or a job directory prepared in place by the CLI
 * against a stopped store) into ctx->txn. \p result gets the outcome text.
 * @returns 0 (see result), or a store error.
 */
int rf_runs_take_job(rf_runs_t *r, rf_apply_ctx_t *ctx, const char *path,
                     char *result, size_t result_size);

/* ---- the CLI side ------------------------------------------------------*/

/**
 * Opens conf->data_dir for a command that writes (load, rollback): read-write
 * when no daemon holds the store (*daemon_running = 0; created if missing),
 * else as a secondary beside the running daemon (*daemon_running = 1).
 * Prints errors. @returns the store or NULL.
 */
rf_store_t *rf_runs_open_cli(const rf_config_t *conf, int *daemon_running);

/**
 * Runs a job prepared at \p tmp_path (a load directory or a rollback file,
 * outside the spool): hands it to the daemon through the spool and waits up
 * to load.wait for its result (\p primary NULL), or takes it in this process
 * on the read-write store \p primary, deleting discarded versions before
 * returning. \p result gets the outcome ("ok: ...", "failed_validation:
 * ...", "error: ...").
 * @returns 0 (see result), or an error with errstr set.
 */
int rf_runs_run_job(rf_store_t *primary, const rf_config_t *conf,
                    const char *tmp_path, const char *kind, char *result,
                    size_t result_size, char *errstr, size_t errstr_size);

/**
 * Consent purge: deletes every list of \p subject from every run version
 * (staged or published) and their reverse-index entries, in ctx->txn.
 * @returns the number of lists deleted, or RF_ESTORE (negative) if a read
 * failed: the caller must not commit a purge done in part.
 */
int rf_runs_purge_subject(rf_apply_ctx_t *ctx, const char *subject);

#endif /* RECFRESH_RUNS_H */
