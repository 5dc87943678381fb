/*
 * recfresh - the embedded broker: librdkafka's mock cluster, a real Kafka
 * protocol implementation on loopback TCP, with the topics of topics/.
 *
 * Know its limits: no offsets-for-times, no compaction, no admin API, fake
 * transactions and about 5 MiB retained per partition. recfresh keeps its
 * own offsets in RocksDB and consumes as it goes, so the retention cap only
 * matters for replays from the broker (use the event log for those).
 */
#ifndef RECFRESH_BROKER_H
#define RECFRESH_BROKER_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "recfresh/common.h"

typedef struct rf_broker rf_broker_t;

/**
 * Starts a mock cluster of \p broker_cnt brokers and creates every topic of
 * topics/, with \p partitions partitions each (0 = as in topics/).
 * @returns the broker or NULL with errstr set.
 */
rf_broker_t *rf_broker_new(int broker_cnt, int partitions, char *errstr,
                           size_t errstr_size);

/** @returns the bootstrap servers ("127.0.0.1:port,..."). */
const char *rf_broker_bootstraps(const rf_broker_t *b);

/** @returns the mock cluster, for fault injection in tests. */
rd_kafka_mock_cluster_t *rf_broker_mock(rf_broker_t *b);

/** @returns the partition count used for \p topic_name. */
int rf_broker_partitions(const rf_broker_t *b, const char *topic_name);

void rf_broker_destroy(rf_broker_t *b);

#endif /* RECFRESH_BROKER_H */
