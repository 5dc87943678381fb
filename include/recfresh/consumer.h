/*
 * recfresh - the consumers.
 *
 * Subject-scoped topics (lists, user hides, consent) are read by one
 * consumer group, so instances split their partitions. Item-scoped topics
 * (bans, stock, campaigns) are read in full by every instance: each applies
 * them to its own lists. Both start each partition at the offset stored in
 * RocksDB with the state it produced (never at a Kafka-committed offset), so
 * state and position cannot disagree after a crash.
 */
#ifndef RECFRESH_CONSUMER_H
#define RECFRESH_CONSUMER_H

#include <librdkafka/rdkafka.h>

#include "recfresh/cluster.h"
#include "recfresh/config.h"
#include "recfresh/store.h"

typedef struct rf_consumer rf_consumer_t;

/**
 * Creates both consumers and subscribes/assigns them. When a queue becomes
 * non-empty a byte is written to \p wake_fd (-1: none).
 * @returns the consumer or NULL with errstr set.
 */
rf_consumer_t *rf_consumer_new(const rf_config_t *conf, const char *brokers,
                               rf_store_t *st, int wake_fd, char *errstr,
                               size_t errstr_size);

/**
 * Takes up to \p max records from both consumers without blocking. Error
 * events are logged and not returned. The caller destroys each message.
 * @returns the number of messages in \p msgs.
 */
size_t rf_consumer_poll(rf_consumer_t *c, rd_kafka_message_t **msgs,
                        size_t max);

/** Periodic upkeep: assigns item-topic partitions that appeared. */
void rf_consumer_tick(rf_consumer_t *c);

/** @returns 1 once the group consumer has received an assignment and every
 *  item topic is assigned. */
int rf_consumer_ready(const rf_consumer_t *c);

/** How far one assigned partition is behind. */
typedef struct rf_partition_lag {
        char topic[128];
        int32_t partition;
        int64_t applied; /* next offset to apply (from the store) */
        int64_t high;    /* high watermark last seen, -1 if not yet known */
        int64_t lag;     /* high - applied (>= 0), -1 if not yet known */
} rf_partition_lag_t;

/**
 * Reports the lag of every partition assigned to either consumer: the
 * offsets applied (as stored with the state) against the high watermarks
 * librdkafka last saw (no broker round trip). Call on the polling thread.
 * @returns the number of partitions, with *out (caller frees) filled.
 */
size_t rf_consumer_lag(rf_consumer_t *c, rf_partition_lag_t **out);

/**
 * The subject partitions we own and how far their rebuild is (cluster.h).
 * On a (re)assignment, stored offsets of subject partitions we no longer
 * own are deleted, so that owning them again rebuilds from the start. Call
 * on the polling thread; the pointer stays valid until rf_consumer_close().
 */
const rf_subject_parts_t *rf_consumer_subject_parts(rf_consumer_t *c);

/** Leaves the group, closes and frees both consumers. */
void rf_consumer_close(rf_consumer_t *c);

/** @returns the brokers whose connection was UP at the last statistics
 *  (every second), or -1 before the first. 0: no broker reachable, the
 *  instance is not ready. Thread-safe. */
int rf_consumer_brokers_up(const rf_consumer_t *c);

#endif /* RECFRESH_CONSUMER_H */
