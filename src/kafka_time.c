/*
 * recfresh - offsets for times, with a timestamp-search fallback, and
 * reading an offset range of a partition (see kafka_time.h).
 */
#include <string.h>

#include "recfresh/kafka_time.h"
#include "recfresh/log.h"
#include "recfresh/topics.h"

static void fill_record(const rd_kafka_message_t *m, rf_record_t *rec)
{
        rd_kafka_timestamp_type_t tstype;
        const char *name = rd_kafka_topic_name(m->rkt);

        memset(rec, 0, sizeof(*rec));
        rec->topic = rf_topic_by_name(name);
        rec->topic_name = name;
        rec->partition = m->partition;
        rec->offset = m->offset;
        rec->key = m->key;
        rec->key_len = m->key_len;
        rec->value = m->payload;
        rec->value_len = m->len;
        rec->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
}

/* Fetches the first message at or after \p offset (and before \p high).
 * @returns 1 with *tsp and *gotp set, 0 if none, or RF_EKAFKA. */
static int fetch_one(rd_kafka_topic_t *rkt, int32_t partition, int64_t offset,
                     int64_t high, int timeout_ms, int64_t *tsp, int64_t *gotp,
                     char *errstr, size_t errstr_size)
{
        int64_t deadline = rf_mono_ms() + timeout_ms;
        int found = 0;

        if (rd_kafka_consume_start(rkt, partition, offset) == -1) {
                snprintf(errstr, errstr_size, "%s [%d]: consume: %s",
                         rd_kafka_topic_name(rkt), (int)partition,
                         rd_kafka_err2str(rd_kafka_last_error()));
                return RF_EKAFKA;
        }
        while (!found && rf_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consume(rkt, partition, 100);
                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        rd_kafka_message_destroy(m);
                        break;
                }
                if (!m->err && m->offset >= offset && m->offset < high) {
                        rd_kafka_timestamp_type_t tt;
                        *tsp = rd_kafka_message_timestamp(m, &tt);
                        *gotp = m->offset;
                        found = 1;
                } else if (m->err) {
                        rf_log_debug("kafka_time", "%s",
                                     rd_kafka_err2str(m->err));
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consume_stop(rkt, partition);
        return found;
}

static int search_time(rd_kafka_t *rk, const char *topic, int32_t partition,
                       int64_t ts_ms, int timeout_ms, int64_t *offsetp,
                       char *errstr, size_t errstr_size)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int64_t lo, hi, high;
        rd_kafka_resp_err_t err;
        int r = 0, probes = 0;

        err = rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi,
                                               timeout_ms);
        if (err) {
                snprintf(errstr, errstr_size, "%s [%d]: watermarks: %s", topic,
                         (int)partition, rd_kafka_err2str(err));
                rd_kafka_topic_destroy(rkt);
                return RF_EKAFKA;
        }
        high = hi;
        /* Invariant: every offset < lo has ts < target; every offset >= hi
         * has ts >= target (or is beyond the end). */
        while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2, ts = 0, got = 0;
                r = fetch_one(rkt, partition, mid, high, timeout_ms, &ts, &got,
                              errstr, errstr_size);
                probes++;
                if (r < 0)
                        break;
                if (r == 0) { /* nothing at or after mid: all before */
                        hi = mid;
                        r = 0;
                        continue;
                }
                r = 0;
                if (ts < ts_ms)
                        lo = got + 1;
                else
                        hi = mid;
        }
        rd_kafka_topic_destroy(rkt);
        if (r < 0)
                return r;
        rf_log_debug("kafka_time",
                     "%s [%d]: offset %lld by timestamp search "
                     "(%d probes)",
                     topic, (int)partition, (long long)lo, probes);
        *offsetp = lo;
        return 0;
}

/* Whether \p off is the first offset with timestamp >= \p ts_ms: a broker
 * that does not implement the lookup (the embedded one answers "end" to
 * every query) must not be believed. Two fetches. @returns 1, 0 or <0. */
static int answer_holds(rd_kafka_t *rk, const char *topic, int32_t partition,
                        int64_t ts_ms, int64_t off, int timeout_ms,
                        char *errstr, size_t errstr_size)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int64_t lo, hi, ts = 0, got = 0;
        int r = 1;

        if (rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi,
                                             timeout_ms)) {
                rd_kafka_topic_destroy(rkt);
                return 0;
        }
        if (off < lo || off > hi)
                r = 0;
        /* off must have ts >= target (unless it is the end)... */
        if (r == 1 && off < hi) {
                r = fetch_one(rkt, partition, off, hi, timeout_ms, &ts, &got,
                              errstr, errstr_size);
                if (r == 1 && (got != off || ts < ts_ms))
                        r = 0;
        }
        /* ... and the one before it ts < target. */
        if (r == 1 && off > lo) {
                r = fetch_one(rkt, partition, off - 1, hi, timeout_ms, &ts,
                              &got, errstr, errstr_size);
                if (r == 1 && (got != off - 1 || ts >= ts_ms))
                        r = 0;
        }
        rd_kafka_topic_destroy(rkt);
        return r;
}

int rf_kafka_offset_for_time(rd_kafka_t *rk, const char *topic,
                             int32_t partition, int64_t ts_ms, int timeout_ms,
                             int64_t *offsetp, int *searched, char *errstr,
                             size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *tp =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_resp_err_t err;
        int64_t lo = 0, hi = 0;
        int r;

        *searched = 0;
        rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = ts_ms;
        err = rd_kafka_offsets_for_times(rk, tp, timeout_ms);
        if (!err)
                err = tp->elems[0].err;
        int64_t off = tp->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(tp);
        if (!err && off == RD_KAFKA_OFFSET_END &&
            !rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi,
                                              timeout_ms))
                off = hi; /* "no message at or after ts": the end */
        if (!err && off >= 0) {
                r = answer_holds(rk, topic, partition, ts_ms, off, timeout_ms,
                                 errstr, errstr_size);
                if (r < 0)
                        return r;
                if (r == 1) {
                        *offsetp = off;
                        return 0;
                }
        }
        rf_log_debug("kafka_time",
                     "%s [%d]: offsets-for-times unavailable (%s): "
                     "searching timestamps",
                     topic, (int)partition,
                     err ? rd_kafka_err2name(err) : "answer does not hold");
        *searched = 1;
        return search_time(rk, topic, partition, ts_ms, timeout_ms, offsetp,
                           errstr, errstr_size);
}

int rf_kafka_read_range(rd_kafka_t *rk, const char *topic, int32_t partition,
                        int64_t start, int64_t end, int timeout_ms,
                        int (*cb)(void *opaque, const rf_record_t *rec),
                        void *opaque, char *errstr, size_t errstr_size)
{
        rd_kafka_topic_t *rkt;
        int64_t next = start, deadline;
        int r = 0;

        if (start >= end)
                return 0;
        rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (rd_kafka_consume_start(rkt, partition, start) == -1) {
                snprintf(errstr, errstr_size, "%s [%d]: consume: %s", topic,
                         (int)partition,
                         rd_kafka_err2str(rd_kafka_last_error()));
                rd_kafka_topic_destroy(rkt);
                return RF_EKAFKA;
        }
        deadline = rf_mono_ms() + timeout_ms;
        while (next < end && r == 0) {
                rd_kafka_message_t *m = rd_kafka_consume(rkt, partition, 100);
                if (!m) {
                        if (rf_mono_ms() > deadline) {
                                snprintf(errstr, errstr_size,
                                         "%s [%d]: no record at offset %lld "
                                         "within %d ms",
                                         topic, (int)partition, (long long)next,
                                         timeout_ms);
                                r = RF_EKAFKA;
                        }
                        continue;
                }
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        rd_kafka_message_destroy(m);
                        break;
                }
                if (m->err) {
                        rf_log_warn("kafka_time", "%s [%d]: %s", topic,
                                    (int)partition, rd_kafka_err2str(m->err));
                } else if (m->offset >= next && m->offset < end) {
                        rf_record_t rec;
                        fill_record(m, &rec);
                        next = m->offset + 1;
                        r = cb(opaque, &rec);
                        deadline = rf_mono_ms() + timeout_ms;
                } else if (m->offset >= end) {
                        next = end;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consume_stop(rkt, partition);
        rd_kafka_topic_destroy(rkt);
        return r;
}

int rf_kafka_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;
        int cnt = RF_ENOENT;

        err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err)
                cnt = md->topics[0].partition_cnt;
        else if (err)
                cnt = RF_EKAFKA;
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return cnt;
}
