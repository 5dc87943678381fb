/*
 * recfresh - encoders for what recfresh writes: dead-letter records
 * (recs.dlq.v1) and list invalidation notices (recs.invalidations.v1).
 */
#ifndef RECFRESH_OUTPUTS_H
#define RECFRESH_OUTPUTS_H

#include "recfresh/common.h"

/** Where a rejected record came from. */
typedef struct rf_source {
        const char *topic;
        int32_t partition;
        int64_t offset;
        int64_t timestamp_ms; /* record timestamp, -1 if unknown */
} rf_source_t;

/**
 * Appends a recs.dlq.v1 value:
 * {"source":{"topic","partition","offset","timestamp"?},"reason","error",
 *  "key"?,"value"|"value_base64","rejected_at"}
 * The original value is kept as a string when it is valid UTF-8, else as
 * base64 in value_base64. Values longer than \p max_value_bytes are cut,
 * with "value_truncated":true; keys longer than \p max_key_bytes likewise
 * (at a UTF-8 boundary), with "key_truncated":true. The caller keys the
 * record by the same cut: a record must fit the producer's message size.
 */
void rf_dlq_encode(rf_buf_t *out, const rf_source_t *src, const char *key,
                   size_t key_len, size_t max_key_bytes, const char *value,
                   size_t value_len, const rf_rejection_t *rej,
                   size_t max_value_bytes, int64_t now_ms);

/** One invalidated list. */
typedef struct rf_invalidation {
        const char *subject_id;
        const char *surface;
        const char *context_key;
        const char *list_id; /* "" if the list is already gone */
        const char *cause;   /* event type, e.g. "item_banned" */
        const char *event_id;
        const char *entity_kind; /* "item", "creator", "campaign", "user" */
        const char *entity_id;
        int64_t occurred_at;
        int64_t invalidated_at;
} rf_invalidation_t;

/**
 * Appends a recs.invalidations.v1 value:
 * {"subject_id","surface","context_key","list_id","cause","event_id",
 *  "entity":{"kind","id"},"occurred_at","invalidated_at"}
 */
void rf_invalidation_encode(rf_buf_t *out, const rf_invalidation_t *inv);

#endif /* RECFRESH_OUTPUTS_H */
