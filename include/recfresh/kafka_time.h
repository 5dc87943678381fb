/*
 * recfresh - reading a time range of a topic partition, for `recfresh
 * export` and `recfresh replay --from-topics`.
 *
 * rf_kafka_offset_for_time() asks the broker (offsets-for-times, the
 * ListOffsets API) first. The embedded broker (librdkafka's mock cluster)
 * does not implement it; then, and on any broker that answers with an
 * unsupported or invalid result, it falls back to a binary search on
 * message timestamps between the low and high watermarks, fetching one
 * message per probe (about log2(n) fetches). Like Kafka's own time index,
 * the search assumes timestamps do not decrease along a partition; with
 * producer-set (CreateTime) timestamps that are out of order, it returns an
 * offset whose timestamp is >= the target but possibly not the first such.
 *
 * All functions use the legacy per-partition consume API on \p rk (a
 * consumer handle created for this purpose only; no group is joined).
 */
#ifndef RECFRESH_KAFKA_TIME_H
#define RECFRESH_KAFKA_TIME_H

#include <librdkafka/rdkafka.h>

#include "recfresh/apply.h"

/**
 * Finds the first offset of \p topic / \p partition whose timestamp is >=
 * \p ts_ms (the high watermark if none). *searched is set to 1 when the
 * timestamp search was used instead of the broker's offsets-for-times.
 * @returns 0 or RF_EKAFKA with errstr set.
 */
int rf_kafka_offset_for_time(rd_kafka_t *rk, const char *topic,
                             int32_t partition, int64_t ts_ms, int timeout_ms,
                             int64_t *offsetp, int *searched, char *errstr,
                             size_t errstr_size);

/**
 * Reads records [\p start, \p end) of one partition, calling \p cb with
 * each (rec->topic resolved from the name). Stops early at the partition's
 * end. @returns 0, the callback's non-zero value, or RF_EKAFKA with errstr.
 */
int rf_kafka_read_range(rd_kafka_t *rk, const char *topic, int32_t partition,
                        int64_t start, int64_t end, int timeout_ms,
                        int (*cb)(void *opaque, const rf_record_t *rec),
                        void *opaque, char *errstr, size_t errstr_size);

/** @returns the partition count of \p topic, or a negative RF_E*. */
int rf_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms);

#endif /* RECFRESH_KAFKA_TIME_H */
