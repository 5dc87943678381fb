/*
 * recfresh - the consumers (see consumer.h).
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/cluster.h"
#include "recfresh/consumer.h"
#include "recfresh/kafka.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/topics.h"

struct rf_consumer {
        rf_store_t *st;
        atomic_int brokers_up; /* brokers in state UP at the last stats, -1
                                * before the first (consumer.h) */
        rd_kafka_t *subj;      /* group consumer: subject-scoped topics */
        rd_kafka_t *items;     /* assign-all consumer: item-scoped */
        rd_kafka_queue_t *subj_q, *items_q;
        int subj_assigned; /* a rebalance assigned us (maybe 0 parts) */
        int item_parts[RF_TOPIC__CNT]; /* partitions assigned per topic */
        int items_ready;
        int turn; /* which queue is read first */
        int64_t next_tick_ms;

        /* Subject partitions (cluster.h): which we own, and their rebuild
         * up to the high watermark seen at assignment. */
        rf_subject_parts_t sp;
        int64_t *target; /* [topic * RF_CLUSTER_MAX_PARTS + p], -1 unknown */
        int64_t *low;    /* low watermark seen with the target */
        int64_t next_ready_ms;
};

/* target[] before the end offset at assignment is known: */
#define TARGET_CACHED (-1) /* take the first watermark a fetch reports */
#define TARGET_QUERY  (-2) /* one was cached before: ask the broker */

/* @returns 1 for the subject-scoped input topics (read by the group). */
static int subject_topic(int t)
{
        return t >= 0 && !strcmp(rf_topic(t)->scope, "subject") &&
               !strcmp(rf_topic(t)->direction, "input");
}

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

/* Deletes the stored offsets of subject partitions we do not own, so a
 * later assignment rebuilds them from the start: their state is swept
 * (cluster.h) and may be missing anything applied meanwhile elsewhere. */
static void forget_unowned(rf_consumer_t *c)
{
        rf_iter_t *it = rf_iter_new(c->st, NULL, RF_CF_OFFSETS, NULL, 0);
        rf_txn_t *txn = rf_txn_new(c->st);
        char errstr[256];

        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                size_t tlen = strnlen(k, klen);
                char topic[256];
                if (tlen + 5 != klen || tlen >= sizeof(topic))
                        continue;
                memcpy(topic, k, tlen);
                topic[tlen] = '\0';
                const unsigned char *pb = (const unsigned char *)k + tlen + 1;
                uint32_t p = (uint32_t)pb[0] << 24 | (uint32_t)pb[1] << 16 |
                             (uint32_t)pb[2] << 8 | pb[3];
                if (!subject_topic(rf_topic_by_name(topic)))
                        continue;
                if (p < RF_CLUSTER_MAX_PARTS && c->sp.owned[p])
                        continue;
                rf_txn_delete(txn, RF_CF_OFFSETS, k, klen);
        }
        rf_iter_destroy(it);
        if (rf_txn_count(txn)) {
                size_t n = rf_txn_count(txn);
                if (rf_txn_commit(txn, errstr, sizeof(errstr)))
                        rf_log_error("consumer",
                                     "deleting offsets of partitions we "
                                     "lost: %s",
                                     errstr);
                else
                        rf_log_info("consumer",
                                    "forgot the offsets of %zu subject "
                                    "partitions we do not own",
                                    n);
        }
        rf_txn_destroy(txn);
}

/* The group gave us \p parts (all of them, or with the cooperative protocol
 * the ones added). */
static void subject_assigned(rf_consumer_t *c,
                             const rd_kafka_topic_partition_list_t *parts,
                             int coop)
{
        rf_subject_parts_t *sp = &c->sp;
        unsigned char was[RF_CLUSTER_MAX_PARTS];

        memcpy(was, sp->owned, sizeof(was));
        if (!coop)
                memset(sp->owned, 0, sizeof(sp->owned));
        for (int i = 0; i < parts->cnt; i++) {
                int32_t p = parts->elems[i].partition;
                if (p >= 0 && p < RF_CLUSTER_MAX_PARTS)
                        sp->owned[p] = 1;
                else
                        rf_log_error("consumer",
                                     "partition %d of %s is beyond the %d "
                                     "recfresh handles",
                                     (int)p, parts->elems[i].topic,
                                     RF_CLUSTER_MAX_PARTS);
        }
        for (int p = 0; p < RF_CLUSTER_MAX_PARTS; p++) {
                if (!sp->owned[p]) {
                        sp->ready[p] = 0;
                        continue;
                }
                if (sp->ready[p])
                        continue; /* kept across the rebalance */
                sp->lag[p] = -1;
                for (int t = 0; t < RF_TOPIC__CNT; t++) {
                        int64_t l = -1, h = -1;
                        /* A watermark cached from an earlier assignment of
                         * the partition may be stale: ask the broker. */
                        if (subject_topic(t) &&
                            !rd_kafka_get_watermark_offsets(
                                c->subj, rf_topic(t)->name, p, &l, &h) &&
                            h >= 0)
                                c->target[t * RF_CLUSTER_MAX_PARTS + p] =
                                    TARGET_QUERY;
                        else
                                c->target[t * RF_CLUSTER_MAX_PARTS + p] =
                                    TARGET_CACHED;
                }
        }
        forget_unowned(c);
        if (memcmp(was, sp->owned, sizeof(was)))
                sp->epoch++;
        sp->assigned = 1;
        sp->version++;
        c->next_ready_ms = 0;
}

static void subject_revoked(rf_consumer_t *c,
                            const rd_kafka_topic_partition_list_t *parts,
                            int lost)
{
        /* Ready flags stay: a partition given back at the next assignment
         * kept its state and offsets (the sweep only runs while assigned),
         * and reads are served from it meanwhile. Not a lost assignment
         * (the group went on without us, after a session timeout): another
         * instance may take the partition and apply events this store has
         * not, so it is neither served nor ready until caught up again. */
        for (int i = 0; i < parts->cnt; i++) {
                int32_t p = parts->elems[i].partition;
                if (p >= 0 && p < RF_CLUSTER_MAX_PARTS) {
                        c->sp.owned[p] = 0;
                        if (lost)
                                c->sp.ready[p] = 0;
                }
        }
        c->sp.assigned = 0;
        c->sp.epoch++;
        c->sp.version++;
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
                subject_assigned(c, parts, coop);
                rf_log_info("consumer", "assigned %d subject partitions",
                            parts->cnt);
        } else {
                int lost = rd_kafka_assignment_lost(rk);
                if (coop)
                        e = rd_kafka_incremental_unassign(rk, parts);
                else
                        r = rd_kafka_assign(rk, NULL);
                subject_revoked(c, parts, lost);
                if (lost)
                        rf_log_warn("consumer",
                                    "lost %d subject partitions (the group "
                                    "went on without us): not served until "
                                    "caught up again",
                                    parts->cnt);
                else
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
                if (t == RF_TOPIC_LISTS && !md->topics[i].err &&
                    md->topics[i].partition_cnt != c->sp.count) {
                        c->sp.count = md->topics[i].partition_cnt;
                        c->sp.version++;
                }
                if (subject_topic(t) && !md->topics[i].err && c->sp.count > 0 &&
                    md->topics[i].partition_cnt != c->sp.count)
                        rf_log_error("consumer",
                                     "%s has %d partitions, recs.lists.v1 "
                                     "%d: subject topics must have the same "
                                     "count (see recfresh topics check)",
                                     md->topics[i].topic,
                                     md->topics[i].partition_cnt, c->sp.count);
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

/* Counts the brokers (learned ones, not bootstrap entries) whose
 * connection is UP. Runs on the thread that polls the consumer. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
        rf_consumer_t *c = opaque;
        json_t *root = json_loadb(json, len, 0, NULL), *brokers, *b;
        const char *name;
        int up = 0;

        (void)rk;
        if (!root)
                return 0;
        brokers = json_object_get(root, "brokers");
        json_object_foreach(brokers, name, b)
        {
                json_int_t id =
                    json_integer_value(json_object_get(b, "nodeid"));
                const char *st = json_string_value(json_object_get(b, "state"));
                if (id >= 0 && st && !strcmp(st, "UP"))
                        up++;
        }
        json_decref(root);
        atomic_store(&c->brokers_up, up);
        return 0; /* librdkafka frees json */
}

int rf_consumer_brokers_up(const rf_consumer_t *c)
{
        return atomic_load(&((rf_consumer_t *)c)->brokers_up);
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
        /* The range assignor gives partition N of every subject topic to
         * one member: a subject's lists, hides and consent stay together
         * (cluster.h). Round-robin and sticky assignors would split them. */
        if (!strcmp(role, "consumer") &&
            rf_kafka_conf_set(kc, "partition.assignment.strategy", "range",
                              errstr, errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        rd_kafka_conf_set_opaque(kc, c);
        if (!strcmp(role, "consumer")) {
                rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
                /* Broker health for readiness: librdkafka's statistics name
                 * each broker's connection state. */
                if (rf_kafka_conf_set(kc, "statistics.interval.ms", "1000",
                                      errstr, errstr_size)) {
                        rd_kafka_conf_destroy(kc);
                        return NULL;
                }
                rd_kafka_conf_set_stats_cb(kc, stats_cb);
        }
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

        atomic_init(&c->brokers_up, -1);
        c->st = st;
        c->target = rf_calloc((size_t)RF_TOPIC__CNT * RF_CLUSTER_MAX_PARTS,
                              sizeof(*c->target));
        c->low = rf_calloc((size_t)RF_TOPIC__CNT * RF_CLUSTER_MAX_PARTS,
                           sizeof(*c->low));
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

/* Rebuild progress of the owned subject partitions not ready yet: each is
 * ready once every subject topic's partition is applied up to the high
 * watermark the first fetch after the assignment reported. */
static void check_ready(rf_consumer_t *c, int64_t now)
{
        rf_subject_parts_t *sp = &c->sp;
        int changed = 0, pending = 0, queries = 0;

        if (!sp->assigned || now < c->next_ready_ms)
                return;
        for (int p = 0; p < RF_CLUSTER_MAX_PARTS; p++) {
                int64_t lag = 0;
                int known = 1;
                if (!sp->owned[p] || sp->ready[p])
                        continue;
                for (int t = 0; t < RF_TOPIC__CNT; t++) {
                        int64_t *tg = &c->target[t * RF_CLUSTER_MAX_PARTS + p];
                        int64_t *lo = &c->low[t * RF_CLUSTER_MAX_PARTS + p];
                        if (!subject_topic(t))
                                continue;
                        if (*tg == TARGET_CACHED) {
                                /* The first end offset a fetch reports
                                 * after the assignment (cached: no broker
                                 * round trip on this thread). */
                                int64_t l = -1, h = -1;
                                if (!rd_kafka_get_watermark_offsets(
                                        c->subj, rf_topic(t)->name, p, &l,
                                        &h) &&
                                    h >= 0)
                                        *tg = h, *lo = l > 0 ? l : 0;
                        } else if (*tg == TARGET_QUERY && queries < 8) {
                                int64_t l = -1, h = -1;
                                queries++;
                                if (!rd_kafka_query_watermark_offsets(
                                        c->subj, rf_topic(t)->name, p, &l, &h,
                                        1000) &&
                                    h >= 0)
                                        *tg = h, *lo = l > 0 ? l : 0;
                        }
                        if (*tg < 0) {
                                known = 0;
                                continue;
                        }
                        int64_t at = stored_offset(c->st, rf_topic(t)->name, p);
                        if (at < *lo)
                                at = *lo;
                        if (*tg > at)
                                lag += *tg - at;
                }
                int64_t nl = known ? lag : -1;
                if (nl != sp->lag[p])
                        sp->lag[p] = nl, changed = 1;
                if (known && lag == 0) {
                        sp->ready[p] = 1;
                        changed = 1;
                        RF_METRIC_INC(partition_rebuilds);
                        rf_log_info("consumer",
                                    "subject partition %d rebuilt: serving "
                                    "it",
                                    p);
                } else {
                        pending = 1;
                }
        }
        if (changed)
                sp->version++;
        c->next_ready_ms = pending ? now + 100 : now + 1000;
}

const rf_subject_parts_t *rf_consumer_subject_parts(rf_consumer_t *c)
{
        check_ready(c, rf_mono_ms());
        return &c->sp;
}

void rf_consumer_tick(rf_consumer_t *c)
{
        int64_t now = rf_mono_ms();

        check_ready(c, now);
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
        free(c->target);
        free(c->low);
        free(c);
}
