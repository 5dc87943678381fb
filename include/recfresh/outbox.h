/*
 * recfresh - the outbox: records to produce (DLQ, invalidation notices),
 * written to RocksDB in the same transaction as the state change that caused
 * them, and deleted only once the broker acknowledged them (delivery report).
 * A crash in between produces them again: delivery is at least once, and
 * nothing a committed batch decided to send is ever lost.
 */
#ifndef RECFRESH_OUTBOX_H
#define RECFRESH_OUTBOX_H

#include <librdkafka/rdkafka.h>

#include "recfresh/store.h"
#include "recfresh/topics.h"

typedef struct rf_outbox rf_outbox_t;

/** Opens the outbox over \p st, resuming after the last queued record.
 *  @returns the outbox, or NULL with errstr set if the store could not be
 *  read to the end (a guessed next sequence number could overwrite
 *  records not yet produced). */
rf_outbox_t *rf_outbox_new(rf_store_t *st, char *errstr, size_t errstr_size);
void rf_outbox_destroy(rf_outbox_t *ob);

/** Queues a record for \p topic (RF_TOPIC_*) in \p txn. */
void rf_outbox_put(rf_outbox_t *ob, rf_txn_t *txn, int topic, const char *key,
                   size_t klen, const char *val, size_t vlen);

/**
 * Records queued together as one stored record: one put and one delete in
 * the store for all of them (a fan-out step queues a notice per list).
 * They are produced in order, and a failed one produces the whole frame
 * again (at least once, as for single records). Zero-initialise.
 */
typedef struct rf_outbox_frame {
        rf_buf_t recs;
        size_t cnt;
        uint64_t puts[RF_TOPIC__CNT];
} rf_outbox_frame_t;

/** Adds a record for \p topic to frame \p f. */
void rf_outbox_frame_add(rf_outbox_frame_t *f, int topic, const char *key,
                         size_t klen, const char *val, size_t vlen);

/** Queues the records of \p f (if any) in \p txn under one sequence
 *  number, and empties \p f. */
void rf_outbox_put_frame(rf_outbox_t *ob, rf_txn_t *txn, rf_outbox_frame_t *f);

/** Frees what \p f holds. */
void rf_outbox_frame_free(rf_outbox_frame_t *f);

/** Drops records queued since the last commit (after a failed commit). */
void rf_outbox_rollback(rf_outbox_t *ob);
/** Marks records queued since the last commit as committed. */
void rf_outbox_committed(rf_outbox_t *ob);

/**
 * Produces committed records not yet in flight with \p rk, at most
 * \p max_inflight at a time, and deletes delivered ones. \p rk must have
 * been created with a conf from rf_outbox_conf_set().
 * @returns the number of records produced now.
 */
size_t rf_outbox_drain(rf_outbox_t *ob, rd_kafka_t *rk, size_t max_inflight);

/** Installs the delivery-report callback on a producer conf. */
void rf_outbox_conf_set(rf_outbox_t *ob, rd_kafka_conf_t *conf);

/** @returns records queued and not yet acknowledged. */
size_t rf_outbox_pending(const rf_outbox_t *ob);

/** Records put for \p topic since the outbox was opened, committed or
 *  not (replay reports what each record emitted from these). */
uint64_t rf_outbox_puts(const rf_outbox_t *ob, int topic);

#endif /* RECFRESH_OUTBOX_H */
