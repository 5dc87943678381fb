/*
 * recfresh - fan-out: the per-list work an event causes.
 *
 * An item ban, a stock change or a campaign expiry takes effect for reads
 * at once through per-entity tombstones (tombstone.h). What remains is per
 * list: an invalidation notice for downstream caches (and, with the
 * recompute queue, a recompute request). For an item in a million lists that
 * is a million steps, so it runs as a durable job that walks the reverse
 * index in chunks between consumer batches, never inside one: a big ban
 * cannot stall other events, and the job's cursor is committed with the
 * notices it produced, so a crash resumes where it stopped.
 *
 * A hide's per-list work is a job too, over the lists of one user
 * (rf_fanout_schedule_subject()): its tombstone is in force at once, and
 * the apply loop does not wait for the user's lists to be read. A consent
 * change does its per-list work inline, through the same
 * rf_fanout_list_invalidated(), over the user's lists
 * (rf_lists_of_subject()): a revocation purges them in the same batch.
 */
#ifndef RECFRESH_FANOUT_H
#define RECFRESH_FANOUT_H

#include "recfresh/apply.h"

/** Loads pending jobs' count and the next job id from the store.
 *  @returns the fan-out, or NULL with errstr set if the store could not
 *  be read to the end (a guessed next id could overwrite pending jobs). */
rf_fanout_t *rf_fanout_new(rf_store_t *st, char *errstr, size_t errstr_size);
void rf_fanout_destroy(rf_fanout_t *fo);

/**
 * Schedules a job in ctx->txn: walk the index of entity (\p kind,
 * \p entity) and invalidate each list; with \p region non-empty, only lists
 * of that region.
 */
void rf_fanout_schedule(rf_apply_ctx_t *ctx, char kind, const char *entity,
                        const char *region, const rf_event_t *ev);

/**
 * Schedules a job in ctx->txn for a hide: walk the index of entity
 * (\p kind, \p entity) within the lists of \p subject only. The lists
 * reads may serve (an incremental list, or a version of the run active on
 * its surface) are invalidated, as by any job.
 */
void rf_fanout_schedule_subject(rf_apply_ctx_t *ctx, char kind,
                                const char *entity, const char *subject,
                                const rf_event_t *ev);

/**
 * Runs up to \p budget index entries of pending jobs into ctx->txn (the
 * caller commits), within the time budget of rf_fanout_set_step_ms() when
 * one is set: a step handles at least one entry, then stops at whichever
 * comes first. *scanned gets the entries walked.
 * @returns 0 or a store error.
 */
int rf_fanout_step(rf_apply_ctx_t *ctx, size_t budget, size_t *scanned);

/** Sets the time budget of a step, in ms (0, the default: none). A step
 *  and its commit delay the next consumer batch by about this much at
 *  most (rf_fanout_commit_cost()). */
void rf_fanout_set_step_ms(rf_fanout_t *fo, int64_t ms);

/** Tells the fan-out what the commit of a step of \p writes writes took
 *  (\p ns): later steps stop early enough for theirs to fit in the time
 *  budget too, the commit taking at most half of it, and the user lane
 *  keeping half of what is left for work. A step's commit took as long as
 *  the step itself at 10k events/s (150-200 writes in about 2 ms). */
void rf_fanout_commit_cost(rf_fanout_t *fo, size_t writes, int64_t ns);

/** @returns the number of jobs not yet finished (committed state). */
size_t rf_fanout_pending(const rf_fanout_t *fo);

/** Re-reads the pending count after a failed commit.
 *  @returns 0, or RF_ESTORE (nothing changed) on a read error. */
int rf_fanout_reload(rf_fanout_t *fo);

/** The per-list effect of an event: one invalidation notice (and recompute
 *  request, once the queue exists), queued in ctx->txn. \p region is the
 *  list's, from its index entry (NULL if unknown: only a fallback list's
 *  key needs it). \p entry is what the caller knows of the entity's entry
 *  (rf_queue_list_invalidated()). */
void rf_fanout_list_invalidated(rf_apply_ctx_t *ctx, const char *list_key,
                                size_t klen, const char *region,
                                const char *list_id, rf_event_type_t cause,
                                const char *event_id, int64_t occurred_at,
                                const char *entity_kind, const char *entity_id,
                                int entry);

#endif /* RECFRESH_FANOUT_H */
