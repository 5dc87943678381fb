/*
 * recfresh - applying consumed records to the store.
 *
 * One writer thread applies records in batches. Each record's effects (list
 * replaced, tombstone state changed, fan-out job scheduled, DLQ record
 * queued) and its consumer offset go into the same transaction, which is
 * committed as one RocksDB write: a crash before the commit re-delivers the
 * whole batch, a crash after it re-delivers nothing.
 */
#ifndef RECFRESH_APPLY_H
#define RECFRESH_APPLY_H

#include "recfresh/common.h"
#include "recfresh/config.h"
#include "recfresh/event.h"
#include "recfresh/list.h"
#include "recfresh/store.h"
#include "recfresh/trace.h"

typedef struct rf_outbox rf_outbox_t;
typedef struct rf_fanout rf_fanout_t;
typedef struct rf_queue rf_queue_t;

/** Everything the apply path needs. Owned by the daemon (or a test). */
typedef struct rf_apply_ctx {
        rf_store_t *st;
        rf_txn_t *txn; /* the open batch */
        const rf_config_t *conf;
        rf_limits_t limits;
        rf_outbox_t *outbox; /* DLQ and invalidation records */
        rf_fanout_t *fanout; /* jobs that walk the reverse index */
        rf_queue_t *queue;   /* recompute queue (recompute.h), or NULL */
        int64_t now_ms;      /* wall clock of this batch */
        rf_buf_t scratch;    /* reusable buffers */
        rf_buf_t scratch2;
        int err; /* sticky store error met by a hook that returns nothing
                  * (fan-out notices, recompute triggers): the batch must
                  * not commit; rf_apply_record and rf_fanout_step return it
                  * and clear it */
        rf_buf_t tomb_ts;     /* int64_t record timestamps of the events that
                               * set tombstone state in the open batch (the
                               * daemon turns them into the event-to-tombstone
                               * latency histogram after the commit) */
        rf_trace_cb_t *trace; /* replay --explain hook, or NULL (trace.h) */
        void *trace_opaque;
        /* The next offset of each partition with records in the open
         * batch, put once by rf_apply_offsets_put(): a put per record was
         * a quarter of the memtable inserts of a batch. */
        struct rf_apply_offset {
                char *topic;
                int32_t partition;
                int64_t next;
                int dirty; /* taken since the last put */
        } * offs;
        size_t off_cnt;
} rf_apply_ctx_t;

/** One consumed record. */
typedef struct rf_record {
        int topic; /* RF_TOPIC_*, or -1 if unknown */
        const char *topic_name;
        int32_t partition;
        int64_t offset;
        const char *key; /* may be NULL */
        size_t key_len;
        const char *value; /* may be NULL */
        size_t value_len;
        int64_t timestamp_ms; /* record timestamp, -1 if none */
} rf_record_t;

/**
 * Puts the next offset of every partition with records applied since the
 * last call into ctx->txn. Call it after the last record of a batch and
 * before the commit: offsets and effects are one transaction.
 */
void rf_apply_offsets_put(rf_apply_ctx_t *ctx);

/** Forgets the offsets not put yet (a batch dropped without a commit). */
void rf_apply_offsets_drop(rf_apply_ctx_t *ctx);

/**
 * Applies one record into ctx->txn; its next offset is noted for
 * rf_apply_offsets_put(). A bad
 * record is rejected: counted and queued for recs.dlq.v1 in the same
 * transaction. Older-than-state events are taken and ignored.
 * @returns 0 when the record was taken (applied, ignored or rejected), or a
 *          negative RF_E* store error: the caller must drop the batch.
 */
int rf_apply_record(rf_apply_ctx_t *ctx, const rf_record_t *rec);

/** Applies a decoded list publication (lists.c). @returns 0, RF_ESTALE
 *  (an equal or newer list is held), RF_EBLOCKED (consent revoked) or a
 *  store error. */
int rf_lists_apply(rf_apply_ctx_t *ctx, const rf_list_t *list);

/** Removes a stored list and its index entries (lists.c). \p list is the
 *  decoded stored list. */
void rf_lists_remove(rf_apply_ctx_t *ctx, const char *list_key, size_t klen,
                     const rf_list_t *list);

/** A subject's stored lists, collected before they are changed. */
typedef struct rf_subject_lists {
        rf_buf_t *keys;        /* list keys; a run's version: the reverse
                                * index's form (list key, NUL, run id) */
        rf_list_t **lists;     /* decoded lists (owned) */
        unsigned char *in_run; /* 1: a batch run's version, 0: incremental */
        size_t cnt;
} rf_subject_lists_t;

/**
 * Collects the lists of \p subject that reads may serve (through \p txn if
 * not NULL): its incremental lists, then the versions of the runs active on
 * their surfaces (rf_runs_subject_versions()). Both of one list key may be
 * there: reads serve the newer, and either may be the one a later event
 * makes the newer. Corrupt values are skipped and logged.
 * @returns 0 or a store error (\p out then empty).
 */
int rf_lists_of_subject(rf_store_t *st, rf_txn_t *txn, const char *subject,
                        rf_subject_lists_t *out);

/** Appends \p list (owned from now on) under \p key to \p sl. */
void rf_subject_lists_add(rf_subject_lists_t *sl, const char *key, size_t klen,
                          rf_list_t *list, int in_run);
void rf_subject_lists_clear(rf_subject_lists_t *sl);

/** Initialises / frees the ctx's scratch buffers. */
void rf_apply_ctx_init(rf_apply_ctx_t *ctx, rf_store_t *st,
                       const rf_config_t *conf, rf_outbox_t *outbox,
                       rf_fanout_t *fanout);
void rf_apply_ctx_clear(rf_apply_ctx_t *ctx);

#endif /* RECFRESH_APPLY_H */
