/*
 * recfresh - the consumers (see consumer.h).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/consumer.h"
#include "recfresh/kafka.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/topics.h"

struct rf_consumer {
        rf_store_t *st;
        rd_kafka_t *subj;  /* group consumer: subject-scoped topics */
        rd_kafka_t *items; /* assign-all consumer: item-scoped */
        rd_kafka_queue_t *subj_q, *items_q;
        int subj_assigned; /* a rebalance assigned us (maybe 0 parts) */
        int item_parts[RF_TOPIC__CNT]; /* partitions assigned per topic */
        int items_ready;
        int turn; /* which queue is read first */
        int64_t next_tick_ms;
};

static int64_t stored_offset(rf_store_t *st, const char *topic, int32_t part)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int64_t off = RD_KAFKA_OFFSET_BEGINNING;

        rf_key_offset(&k, topic, part);
        if (rf_store_get(st, RF_CF_OFFSETS, k.data, k.len, &v) == 0) {
                rf_cur_t c = { v.data, v.data + v.len, 0 };
                uint64_t o = rf_cur_be64(&c);
                if (!c.err)
                        off = (int64_t)o;
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        return off;
}

static void set_stored_offsets(rf_store_t *st,
                               rd_kafka_topic_partition_list_t *parts)
{
        for (int i = 0; i < parts->cnt; i++)
                parts->elems[i].offset = stored_offset(
                    st, parts->elems[i].topic, parts->elems[i].partition);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        rf_consumer_t *c = opaque;
        int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        rd_kafka_error_t *e = NULL;
        rd_kafka_resp_err_t r = 0;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                /* The previous batch is committed before every poll, so the
                 * stored offsets are exactly where state stands. */
                set_stored_offsets(c->st, parts);
                if (coop)
                        e = rd_kafka_incremental_assign(rk, parts);
                else
                        r = rd_kafka_assign(rk, parts);
                c->subj_assigned = 1;
                rf_log_info("consumer", "assigned %d subject partitions",
                            parts->cnt);
        } else {
                if (coop)
                        e = rd_kafka_incremental_unassign(rk, parts);
                else
                        r = rd_kafka_assign(rk, NULL);
                rf_log_info("consumer", "revoked %d subject partitions",
                            parts->cnt);
        }
        if (e) {
                rf_log_error("consumer", "rebalance: %s",
                             rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
        } else if (r) {
                rf_log_error("consumer", "rebalance: %s", rd_kafka_err2str(r));
        }
}

/* Assigns every partition of every item-scoped topic, at stored offsets,
 * when the partition counts we know of changed. */
static void assign_items(rf_consumer_t *c)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *parts;
        int counts[RF_TOPIC__CNT] = { 0 }, changed = 0, all = 1;

        if (rd_kafka_metadata(c->items, 1, NULL, &md, 2000) != 0 || !md)
                return;
        for (int i = 0; i < md->topic_cnt; i++) {
                int t = rf_topic_by_name(md->topics[i].topic);
                if (t < 0 || strcmp(rf_topic(t)->scope, "item") ||
                    strcmp(rf_topic(t)->direction, "input") ||
                    md->topics[i].err)
                        continue;
                counts[t] = md->topics[i].partition_cnt;
        }
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (strcmp(rf_topic(t)->scope, "item") ||
                    strcmp(rf_topic(t)->direction, "input"))
                        continue;
                if (!counts[t])
                        all = 0;
                if (counts[t] != c->item_parts[t])
                        changed = 1;
        }
        if (!changed) {
                rd_kafka_metadata_destroy(md);
                return;
        }
        parts = rd_kafka_topic_partition_list_new(16);
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                for (int p = 0; p < counts[t]; p++)
                        rd_kafka_topic_partition_list_add(parts,
                                                          rf_topic(t)->name, p);
                c->item_parts[t] = counts[t];
        }
        set_stored_offsets(c->st, parts);
        rd_kafka_resp_err_t err = rd_kafka_assign(c->items, parts);
        if (err)
                rf_log_error("consumer", "assign item topics: %s",
                             rd_kafka_err2str(err));
        else
                rf_log_info("consumer", "assigned %d item partitions%s",
                            parts->cnt, all ? "" : " (some topics missing)");
        c->items_ready = !err && all;
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_metadata_destroy(md);
}

static rd_kafka_t *new_consumer(const rf_config_t *conf, const char *brokers,
                                const char *role, const char *group,
                                rf_consumer_t *c, char *errstr,
                                size_t errstr_size)
{
        rd_kafka_conf_t *kc =
            rf_kafka_conf_new(conf, brokers, role, errstr, errstr_size);
        char err[256];
        rd_kafka_t *rk;

        if (!kc)
                return NULL;
        /* Offsets live in RocksDB; Kafka's are never the source of truth.
         * Pass-through properties were applied already and may override
         * anything but these, which correctness depends on. */
        if (rf_kafka_conf_set(kc, "group.id", group, errstr, errstr_size) ||
            rf_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "enable.auto.offset.store", "false", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "auto.offset.reset", "earliest", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "enable.partition.eof", "false", errstr,
                              errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        rd_kafka_conf_set_opaque(kc, c);
        if (!strcmp(role, "consumer"))
                rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                snprintf(errstr, errstr_size, "%s: %s", role, err);
                return NULL;
        }
        rd_kafka_poll_set_consumer(rk);
        return rk;
}

rf_consumer_t *rf_consumer_new(const rf_config_t *conf, const char *brokers,
                               rf_store_t *st, int wake_fd, char *errstr,
                               size_t errstr_size)
{
        rf_consumer_t *c = rf_calloc(1, sizeof(*c));
        rd_kafka_topic_partition_list_t *topics;
        char items_group[300];
        rd_kafka_resp_err_t err;

        c->st = st;
        snprintf(items_group, sizeof(items_group), "%s-items", conf->group_id);
        c->subj = new_consumer(conf, brokers, "consumer", conf->group_id, c,
                               errstr, errstr_size);
        if (!c->subj)
                goto fail;
        c->items = new_consumer(conf, brokers, "items", items_group, c, errstr,
                                errstr_size);
        if (!c->items)
                goto fail;
        c->subj_q = rd_kafka_queue_get_consumer(c->subj);
        c->items_q = rd_kafka_queue_get_consumer(c->items);
        if (wake_fd >= 0) {
                rd_kafka_queue_io_event_enable(c->subj_q, wake_fd, "c", 1);
                rd_kafka_queue_io_event_enable(c->items_q, wake_fd, "i", 1);
        }

        topics = rd_kafka_topic_partition_list_new(4);
        for (int t = 0; t < RF_TOPIC__CNT; t++)
                if (!strcmp(rf_topic(t)->scope, "subject") &&
                    !strcmp(rf_topic(t)->direction, "input"))
                        rd_kafka_topic_partition_list_add(
                            topics, rf_topic(t)->name, RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(c->subj, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                snprintf(errstr, errstr_size, "subscribe: %s",
                         rd_kafka_err2str(err));
                goto fail;
        }
        assign_items(c);
        c->next_tick_ms = rf_mono_ms() + 2000;
        return c;
fail:
        rf_consumer_close(c);
        return NULL;
}

size_t rf_consumer_poll(rf_consumer_t *c, rd_kafka_message_t **msgs, size_t max)
{
        rd_kafka_queue_t *q[2] = { c->subj_q, c->items_q };
        size_t n = 0;

        c->turn ^= 1;
        for (int i = 0; i < 2 && n < max; i++) {
                ssize_t got = rd_kafka_consume_batch_queue(
                    q[(i + c->turn) & 1], 0, msgs + n, max - n);
                if (got > 0)
                        n += (size_t)got;
        }
        /* Drop error events: they are not records. */
        size_t out = 0;
        for (size_t i = 0; i < n; i++) {
                if (msgs[i]->err) {
                        rf_log_warn("consumer", "%s",
                                    rd_kafka_message_errstr(msgs[i]));
                        rd_kafka_message_destroy(msgs[i]);
                        continue;
                }
                msgs[out++] = msgs[i];
        }
        return out;
}

void rf_consumer_tick(rf_consumer_t *c)
{
        int64_t now = rf_mono_ms();

        if (now < c->next_tick_ms)
                return;
        c->next_tick_ms = now + (c->items_ready ? 10000 : 1000);
        assign_items(c);
}

int rf_consumer_ready(const rf_consumer_t *c)
{
        return c->subj_assigned && c->items_ready;
}

static void lag_of(rd_kafka_t *rk, rf_store_t *st, rf_partition_lag_t **out,
                   size_t *cnt)
{
        rd_kafka_topic_partition_list_t *parts = NULL;

        if (!rk || rd_kafka_assignment(rk, &parts) || !parts)
                return;
        *out =
            rf_realloc(*out, (*cnt + (size_t)parts->cnt + 1) * sizeof(**out));
        for (int i = 0; i < parts->cnt; i++) {
                const char *topic = parts->elems[i].topic;
                int32_t part = parts->elems[i].partition;
                rf_partition_lag_t *l = &(*out)[(*cnt)++];
                int64_t lo = -1, hi = -1, at = stored_offset(st, topic, part);

                snprintf(l->topic, sizeof(l->topic), "%s", topic);
                l->partition = part;
                if (rd_kafka_get_watermark_offsets(rk, topic, part, &lo, &hi) ||
                    hi < 0)
                        hi = -1;
                /* Nothing applied yet: we start at the low watermark. */
                if (at < 0)
                        at = lo > 0 ? lo : 0;
                else if (lo > at)
                        at = lo; /* retention dropped what we had not read */
                l->applied = at;
                l->high = hi;
                l->lag = hi < 0 ? -1 : (hi > at ? hi - at : 0);
        }
        rd_kafka_topic_partition_list_destroy(parts);
}

size_t rf_consumer_lag(rf_consumer_t *c, rf_partition_lag_t **out)
{
        size_t cnt = 0;

        *out = NULL;
        lag_of(c->subj, c->st, out, &cnt);
        lag_of(c->items, c->st, out, &cnt);
        return cnt;
}

void rf_consumer_close(rf_consumer_t *c)
{
        if (!c)
                return;
        if (c->subj_q)
                rd_kafka_queue_destroy(c->subj_q);
        if (c->items_q)
                rd_kafka_queue_destroy(c->items_q);
        if (c->subj) {
                rd_kafka_consumer_close(c->subj);
                rd_kafka_destroy(c->subj);
        }
        if (c->items) {
                rd_kafka_consumer_close(c->items);
                rd_kafka_destroy(c->items);
        }
        free(c);
}
