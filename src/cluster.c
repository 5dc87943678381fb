/*
 * recfresh - scale-out on a consumer group (see cluster.h): Kafka's murmur2
 * partitioner, the membership table read from recs.members.v1 and
 * published to it, ownership answers for the HTTP threads, and the sweep
 * of state an instance no longer owns.
 *
 * Membership record (key: instance_id; null value: the instance left):
 *   {"instance_id":"...","http":"host:port","partitions":[0,3],
 *    "partition_count":8,"at":1700000000000}
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/cluster.h"
#include "recfresh/codec_json.h"
#include "recfresh/kafka.h"
#include "recfresh/keys.h"
#include "recfresh/list.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/serve.h"
#include "recfresh/topics.h"

#include <librdkafka/rdkafka.h>

uint32_t rf_murmur2(const void *key, size_t len)
{
        /* org.apache.kafka.common.utils.Utils.murmur2, byte for byte. */
        const uint32_t seed = 0x9747b28c, m = 0x5bd1e995;
        const int r = 24;
        const unsigned char *d = key;
        uint32_t h = seed ^ (uint32_t)len;
        size_t n4 = len / 4;

        for (size_t i = 0; i < n4; i++) {
                const unsigned char *b = d + 4 * i;
                uint32_t k = (uint32_t)b[0] | (uint32_t)b[1] << 8 |
                             (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
                k *= m;
                k ^= k >> r;
                k *= m;
                h *= m;
                h ^= k;
        }
        switch (len % 4) {
        case 3:
                h ^= (uint32_t)d[(len & ~(size_t)3) + 2] << 16;
                /* fall through */
        case 2:
                h ^= (uint32_t)d[(len & ~(size_t)3) + 1] << 8;
                /* fall through */
        case 1:
                h ^= d[len & ~(size_t)3];
                h *= m;
        }
        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return h;
}

int32_t rf_partition_of(const void *key, size_t len, int32_t partitions)
{
        if (partitions < 1)
                return -1;
        return (int32_t)((rf_murmur2(key, len) & 0x7fffffff) %
                         (uint32_t)partitions);
}

const char *rf_owner_state2str(rf_owner_state_t s)
{
        switch (s) {
        case RF_OWNER_LOCAL:
                return "local";
        case RF_OWNER_REBUILDING:
                return "rebuilding";
        case RF_OWNER_REMOTE:
                return "remote";
        default:
                return "unknown";
        }
}

/* One other instance, from its latest membership record. */
typedef struct member {
        char id[256];
        char addr[256];
        int64_t offset; /* of its latest record: later claims win */
        unsigned char parts[RF_CLUSTER_MAX_PARTS];
} member_t;

/* Sweep phases: lists, then hides, then activity. */
enum { SW_IDLE = 0, SW_LISTS, SW_HIDES, SW_ACTIVITY };

struct rf_cluster {
        const rf_config_t *conf;
        rd_kafka_t *prod; /* membership records */
        rd_kafka_t *cons; /* reads recs.members.v1 in full */
        char id[256];
        char advertise[256];

        pthread_mutex_t mu;    /* guards sp and members for HTTP threads */
        rf_subject_parts_t sp; /* copy of the consumer's view */
        member_t *members;
        size_t member_cnt;

        uint64_t published_epoch; /* epoch our last record described */
        int publish_due;
        int64_t retry_ms; /* next publish attempt after a failure */

        uint64_t sweep_epoch; /* ownership the sweep works against */
        int sweep;            /* SW_* */
        rf_buf_t cursor;      /* last key swept in this phase */
        int prev_sweep;       /* for rf_cluster_sweep_rollback() */
        rf_buf_t prev_cursor;
        size_t swept; /* keys deleted by this sweep */
};

static rd_kafka_t *members_consumer(const rf_config_t *conf,
                                    const char *brokers, char *errstr,
                                    size_t errstr_size)
{
        rd_kafka_conf_t *kc =
            rf_kafka_conf_new(conf, brokers, "members", errstr, errstr_size);
        rd_kafka_topic_partition_list_t *parts;
        char group[300], err[256];
        rd_kafka_t *rk;

        if (!kc)
                return NULL;
        /* Assigned, never subscribed: the group id only names the client. */
        snprintf(group, sizeof(group), "%s-members", conf->group_id);
        if (rf_kafka_conf_set(kc, "group.id", group, errstr, errstr_size) ||
            rf_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "enable.partition.eof", "false", errstr,
                              errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err)))) {
                rd_kafka_conf_destroy(kc);
                snprintf(errstr, errstr_size, "members consumer: %s", err);
                return NULL;
        }
        rd_kafka_poll_set_consumer(rk);
        parts = rd_kafka_topic_partition_list_new(1);
        /* Records go to partition 0 whatever the topic's partition count:
         * one order for all claims. */
        rd_kafka_topic_partition_list_add(parts,
                                          rf_topic(RF_TOPIC_MEMBERS)->name, 0)
            ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (e) {
                snprintf(errstr, errstr_size, "members consumer: assign: %s",
                         rd_kafka_err2str(e));
                rd_kafka_consumer_close(rk);
                rd_kafka_destroy(rk);
                return NULL;
        }
        return rk;
}

static rd_kafka_t *members_producer(const rf_config_t *conf,
                                    const char *brokers, char *errstr,
                                    size_t errstr_size)
{
        rd_kafka_conf_t *kc =
            rf_kafka_conf_new(conf, brokers, "members", errstr, errstr_size);
        char err[256];
        rd_kafka_t *rk;

        if (!kc)
                return NULL;
        if (rf_kafka_conf_set(kc, "partitioner", "murmur2_random", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "enable.idempotence", "true", errstr,
                              errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err)))) {
                rd_kafka_conf_destroy(kc);
                snprintf(errstr, errstr_size, "members producer: %s", err);
        }
        return rk;
}

rf_cluster_t *rf_cluster_new(const rf_config_t *conf, const char *brokers,
                             const char *instance_id, const char *advertise,
                             char *errstr, size_t errstr_size)
{
        rf_cluster_t *cl = rf_calloc(1, sizeof(*cl));

        cl->conf = conf;
        pthread_mutex_init(&cl->mu, NULL);
        snprintf(cl->id, sizeof(cl->id), "%s", instance_id);
        snprintf(cl->advertise, sizeof(cl->advertise), "%s",
                 advertise ? advertise : "");
        if (!(cl->prod =
                  members_producer(conf, brokers, errstr, errstr_size)) ||
            !(cl->cons =
                  members_consumer(conf, brokers, errstr, errstr_size))) {
                rf_cluster_destroy(cl);
                return NULL;
        }
        rf_log_info("cluster", "instance %s advertises %s", cl->id,
                    *cl->advertise ? cl->advertise : "no HTTP address");
        return cl;
}

/* ---- membership ---------------------------------------------------------*/

static member_t *member_find(rf_cluster_t *cl, const char *id)
{
        for (size_t i = 0; i < cl->member_cnt; i++)
                if (!strcmp(cl->members[i].id, id))
                        return &cl->members[i];
        return NULL;
}

/* Applies one membership record (under cl->mu). */
static void member_apply(rf_cluster_t *cl, const rd_kafka_message_t *m)
{
        char id[256];
        member_t *mb;
        json_t *root, *parts;
        json_error_t jerr;
        size_t i;

        if (!m->key || !m->key_len || m->key_len >= sizeof(id))
                return;
        memcpy(id, m->key, m->key_len);
        id[m->key_len] = '\0';
        mb = member_find(cl, id);
        if (!m->payload) { /* the instance left */
                if (mb) {
                        *mb = cl->members[--cl->member_cnt];
                        rf_log_info("cluster", "instance %s left", id);
                }
                return;
        }
        root = json_loadb(m->payload, m->len, 0, &jerr);
        parts = root ? json_object_get(root, "partitions") : NULL;
        if (!json_is_array(parts)) {
                rf_log_warn("cluster",
                            "membership record of %s at offset %lld: not "
                            "{instance_id, http, partitions}: ignored",
                            id, (long long)m->offset);
                json_decref(root);
                return;
        }
        if (!mb) {
                cl->members =
                    rf_realloc(cl->members, (cl->member_cnt + 1) * sizeof(*mb));
                mb = &cl->members[cl->member_cnt++];
                snprintf(mb->id, sizeof(mb->id), "%s", id);
        }
        const char *addr = json_string_value(json_object_get(root, "http"));
        snprintf(mb->addr, sizeof(mb->addr), "%s", addr ? addr : "");
        mb->offset = m->offset;
        memset(mb->parts, 0, sizeof(mb->parts));
        json_t *v;
        json_array_foreach(parts, i, v)
        {
                json_int_t p = json_integer_value(v);
                if (json_is_integer(v) && p >= 0 && p < RF_CLUSTER_MAX_PARTS)
                        mb->parts[p] = 1;
        }
        json_decref(root);
}

static void read_members(rf_cluster_t *cl)
{
        rd_kafka_message_t *m;

        for (int n = 0; n < 1000 && (m = rd_kafka_consumer_poll(cl->cons, 0));
             n++) {
                if (m->err) {
                        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                rf_log_warn("cluster", "members: %s",
                                            rd_kafka_message_errstr(m));
                } else {
                        pthread_mutex_lock(&cl->mu);
                        member_apply(cl, m);
                        pthread_mutex_unlock(&cl->mu);
                }
                rd_kafka_message_destroy(m);
        }
}

static void publish(rf_cluster_t *cl)
{
        rf_buf_t v = { 0 };
        int first = 1;
        rd_kafka_resp_err_t err;

        rf_buf_printf(&v, "{\"instance_id\":");
        rf_json_str(&v, cl->id);
        rf_buf_printf(&v, ",\"http\":");
        rf_json_str(&v, cl->advertise);
        rf_buf_printf(&v, ",\"partitions\":[");
        for (int p = 0; p < RF_CLUSTER_MAX_PARTS; p++)
                if (cl->sp.owned[p]) {
                        rf_buf_printf(&v, "%s%d", first ? "" : ",", p);
                        first = 0;
                }
        rf_buf_printf(&v, "],\"partition_count\":%d,\"at\":%lld}",
                      (int)cl->sp.count, (long long)rf_now_ms());
        err = rd_kafka_producev(
            cl->prod, RD_KAFKA_V_TOPIC(rf_topic(RF_TOPIC_MEMBERS)->name),
            RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(cl->id, strlen(cl->id)),
            RD_KAFKA_V_VALUE(v.data, v.len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err) {
                rf_log_warn("cluster", "publishing membership: %s",
                            rd_kafka_err2str(err));
                cl->retry_ms = rf_mono_ms() + 1000;
        } else {
                rf_log_info("cluster", "published membership: %.*s", (int)v.len,
                            v.data);
                cl->publish_due = 0;
        }
        rf_buf_free(&v);
}

void rf_cluster_update(rf_cluster_t *cl, const rf_subject_parts_t *sp)
{
        int others = 0;

        if (sp->version == cl->sp.version)
                return;
        pthread_mutex_lock(&cl->mu);
        cl->sp = *sp;
        pthread_mutex_unlock(&cl->mu);
        if (!sp->assigned || sp->epoch == cl->published_epoch)
                return;
        cl->published_epoch = sp->epoch;
        cl->publish_due = 1;
        /* Ownership changed: sweep what we do not own, if anything. */
        for (int p = 0; p < sp->count && p < RF_CLUSTER_MAX_PARTS; p++)
                if (!sp->owned[p])
                        others = 1;
        if (others && sp->count > 0) {
                cl->sweep = SW_LISTS;
                cl->sweep_epoch = sp->epoch;
                cl->swept = 0;
                rf_buf_reset(&cl->cursor);
                rf_log_info("cluster", "sweeping the state of subjects we "
                                       "no longer own");
        } else {
                cl->sweep = SW_IDLE;
        }
}

void rf_cluster_tick(rf_cluster_t *cl)
{
        read_members(cl);
        if (cl->publish_due && rf_mono_ms() >= cl->retry_ms)
                publish(cl);
        rd_kafka_poll(cl->prod, 0);
}

void rf_cluster_owner(rf_cluster_t *cl, const char *subject_id, rf_owner_t *out)
{
        int64_t best = -1;

        memset(out, 0, sizeof(*out));
        pthread_mutex_lock(&cl->mu);
        out->partitions = cl->sp.count;
        out->partition =
            rf_partition_of(subject_id, strlen(subject_id), cl->sp.count);
        int32_t p = out->partition;
        if (p < 0 || p >= RF_CLUSTER_MAX_PARTS) {
                out->state = RF_OWNER_UNKNOWN;
        } else if (cl->sp.owned[p] || (!cl->sp.assigned && cl->sp.ready[p])) {
                /* Ours; or ours until a rebalance in progress says
                 * otherwise (state and offsets are kept until then). */
                out->state =
                    cl->sp.ready[p] ? RF_OWNER_LOCAL : RF_OWNER_REBUILDING;
                snprintf(out->instance_id, sizeof(out->instance_id), "%s",
                         cl->id);
                snprintf(out->addr, sizeof(out->addr), "%s", cl->advertise);
        } else {
                out->state = RF_OWNER_UNKNOWN;
                for (size_t i = 0; i < cl->member_cnt; i++) {
                        const member_t *mb = &cl->members[i];
                        if (!strcmp(mb->id, cl->id) || !mb->parts[p] ||
                            mb->offset < best)
                                continue;
                        best = mb->offset;
                        out->state = RF_OWNER_REMOTE;
                        snprintf(out->instance_id, sizeof(out->instance_id),
                                 "%s", mb->id);
                        snprintf(out->addr, sizeof(out->addr), "%s", mb->addr);
                }
        }
        pthread_mutex_unlock(&cl->mu);
}

void rf_cluster_partitions_json(rf_cluster_t *cl, rf_buf_t *out)
{
        int first = 1;

        rf_buf_append(out, "[", 1);
        pthread_mutex_lock(&cl->mu);
        for (int p = 0; p < RF_CLUSTER_MAX_PARTS; p++) {
                if (!cl->sp.owned[p])
                        continue;
                rf_buf_printf(out, "%s{\"partition\":%d,\"ready\":%s,\"lag\":",
                              first ? "" : ",", p,
                              cl->sp.ready[p] ? "true" : "false");
                if (cl->sp.ready[p])
                        rf_buf_printf(out, "0}");
                else if (cl->sp.lag[p] < 0)
                        rf_buf_printf(out, "null}");
                else
                        rf_buf_printf(out, "%lld}", (long long)cl->sp.lag[p]);
                first = 0;
        }
        pthread_mutex_unlock(&cl->mu);
        rf_buf_append(out, "]", 1);
}

void rf_cluster_metrics(rf_cluster_t *cl, rf_buf_t *out)
{
        int owned = 0;

        rf_prom_head(out, "recfresh_partition_ready", "gauge",
                     "1 when an owned subject partition is rebuilt and "
                     "served, 0 while it is rebuilt.");
        pthread_mutex_lock(&cl->mu);
        for (int p = 0; p < RF_CLUSTER_MAX_PARTS; p++)
                if (cl->sp.owned[p]) {
                        owned++;
                        rf_buf_printf(out,
                                      "recfresh_partition_ready{partition="
                                      "\"%d\"} %d\n",
                                      p, cl->sp.ready[p]);
                }
        rf_prom_head(out, "recfresh_partition_rebuild_lag", "gauge",
                     "Records left to apply before an owned partition is "
                     "ready (0 once ready; absent while unknown).");
        for (int p = 0; p < RF_CLUSTER_MAX_PARTS; p++)
                if (cl->sp.owned[p] && (cl->sp.ready[p] || cl->sp.lag[p] >= 0))
                        rf_buf_printf(
                            out,
                            "recfresh_partition_rebuild_lag{"
                            "partition=\"%d\"} %lld\n",
                            p,
                            cl->sp.ready[p] ? 0LL : (long long)cl->sp.lag[p]);
        rf_prom_head(out, "recfresh_partitions_owned", "gauge",
                     "Subject partitions this instance owns.");
        rf_buf_printf(out, "recfresh_partitions_owned %d\n", owned);
        rf_prom_head(out, "recfresh_cluster_members", "gauge",
                     "Instances in recs.members.v1, this one included.");
        rf_buf_printf(out, "recfresh_cluster_members %zu\n",
                      cl->member_cnt + (member_find(cl, cl->id) ? 0 : 1));
        pthread_mutex_unlock(&cl->mu);
}

/* ---- sweep --------------------------------------------------------------*/

int rf_cluster_sweep_pending(const rf_cluster_t *cl)
{
        /* Mid-rebalance the sweep waits (the next assignment starts it
         * over): not pending, so the loop may sleep. */
        return cl->sweep != SW_IDLE && cl->sp.assigned &&
               cl->sp.epoch == cl->sweep_epoch;
}

/* @returns 1 if we keep the state of \p subject (daemon thread). */
static int owns(const rf_cluster_t *cl, const char *subject, size_t len)
{
        int32_t p = rf_partition_of(subject, len, cl->sp.count);

        if (len == strlen(RF_FALLBACK_SUBJECT) &&
            !memcmp(subject, RF_FALLBACK_SUBJECT, len))
                return 1;
        return p < 0 || p >= RF_CLUSTER_MAX_PARTS || cl->sp.owned[p];
}

/* Deletes the consent state of \p subject (keyed by its pseudonym). */
static void drop_consent(rf_apply_ctx_t *ctx, const char *subject)
{
        unsigned char pn[16];
        rf_buf_t k = { 0 };

        rf_store_pseudonym(ctx->st, subject, pn);
        for (int s = 0; s < RF_SCOPE__CNT; s++) {
                rf_buf_reset(&k);
                rf_key_consent(&k, pn, s);
                rf_txn_delete(ctx->txn, RF_CF_TOMBSTONES, k.data, k.len);
        }
        rf_buf_free(&k);
}

/* One key of the current phase. @returns 1 if it was deleted. */
static int sweep_key(rf_cluster_t *cl, rf_apply_ctx_t *ctx, const char *k,
                     size_t klen, const char *v, size_t vlen)
{
        char subject[4097];
        size_t slen;

        if (cl->sweep == SW_LISTS) {
                rf_list_key_t lk;
                rf_list_t *list = NULL;
                if (rf_key_list_split(k, klen, &lk) != 0 ||
                    owns(cl, lk.subject, strlen(lk.subject)))
                        return 0;
                if (rf_list_decode(v, vlen, &list) == 0) {
                        rf_lists_remove(ctx, k, klen, list);
                        rf_list_destroy(list);
                } else {
                        rf_txn_delete(ctx->txn, RF_CF_LISTS, k, klen);
                }
                drop_consent(ctx, lk.subject);
                return 1;
        }
        /* hides: 'H' user \0 ...; activity: 'A' subject */
        slen = cl->sweep == SW_HIDES ? strnlen(k + 1, klen - 1) : klen - 1;
        if (slen >= sizeof(subject) || owns(cl, k + 1, slen))
                return 0;
        memcpy(subject, k + 1, slen);
        subject[slen] = '\0';
        rf_txn_delete(ctx->txn,
                      cl->sweep == SW_HIDES ? RF_CF_TOMBSTONES : RF_CF_ACTIVITY,
                      k, klen);
        if (cl->sweep == SW_HIDES)
                drop_consent(ctx, subject);
        return 1;
}

int rf_cluster_sweep_step(rf_cluster_t *cl, rf_apply_ctx_t *ctx, size_t budget,
                          size_t *dropped)
{
        static const struct {
                rf_cf_t cf;
                const char *prefix;
        } phase[] = {
                [SW_LISTS] = { RF_CF_LISTS, "" },
                [SW_HIDES] = { RF_CF_TOMBSTONES, "H" },
                [SW_ACTIVITY] = { RF_CF_ACTIVITY, "A" },
        };
        size_t seen = 0;

        *dropped = 0;
        if (!rf_cluster_sweep_pending(cl))
                return 0;
        cl->prev_sweep = cl->sweep;
        rf_buf_reset(&cl->prev_cursor);
        rf_buf_append(&cl->prev_cursor, cl->cursor.data, cl->cursor.len);

        while (cl->sweep != SW_IDLE && seen < budget) {
                const char *pre = phase[cl->sweep].prefix;
                rf_iter_t *it = rf_iter_new(ctx->st, NULL, phase[cl->sweep].cf,
                                            pre, strlen(pre));
                int done = 1;
                if (cl->cursor.len)
                        rf_iter_seek(it, cl->cursor.data, cl->cursor.len);
                for (; rf_iter_valid(it); rf_iter_next(it)) {
                        size_t klen, vlen;
                        const char *k = rf_iter_key(it, &klen);
                        const char *v = rf_iter_value(it, &vlen);
                        if (cl->cursor.len == klen &&
                            !memcmp(cl->cursor.data, k, klen))
                                continue; /* done in the last step */
                        if (seen == budget) {
                                done = 0;
                                break;
                        }
                        seen++;
                        *dropped +=
                            (size_t)sweep_key(cl, ctx, k, klen, v, vlen);
                        rf_buf_reset(&cl->cursor);
                        rf_buf_append(&cl->cursor, k, klen);
                }
                /* A read error is no end of the phase: the step fails and
                 * is rolled back (rf_cluster_sweep_rollback()). */
                int r = done ? rf_iter_status(it) : 0;
                rf_iter_destroy(it);
                if (r != 0)
                        return r;
                if (!done)
                        break;
                rf_buf_reset(&cl->cursor);
                cl->sweep = cl->sweep == SW_ACTIVITY ? SW_IDLE : cl->sweep + 1;
        }
        cl->swept += *dropped;
        if (cl->sweep == SW_IDLE)
                rf_log_info("cluster",
                            "sweep done: %zu keys of subjects we do not own "
                            "deleted",
                            cl->swept);
        return 0;
}

void rf_cluster_sweep_rollback(rf_cluster_t *cl)
{
        cl->sweep = cl->prev_sweep;
        rf_buf_reset(&cl->cursor);
        rf_buf_append(&cl->cursor, cl->prev_cursor.data, cl->prev_cursor.len);
}

void rf_cluster_leave(rf_cluster_t *cl, int timeout_ms)
{
        rd_kafka_resp_err_t err;

        if (!cl || !cl->prod)
                return;
        err = rd_kafka_producev(
            cl->prod, RD_KAFKA_V_TOPIC(rf_topic(RF_TOPIC_MEMBERS)->name),
            RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(cl->id, strlen(cl->id)),
            RD_KAFKA_V_VALUE(NULL, 0), RD_KAFKA_V_END);
        if (err)
                rf_log_warn("cluster", "leaving: %s", rd_kafka_err2str(err));
        else if (rd_kafka_flush(cl->prod, timeout_ms))
                rf_log_warn("cluster", "leaving: record not delivered in "
                                       "time; routing will follow the next "
                                       "owners' records");
}

void rf_cluster_destroy(rf_cluster_t *cl)
{
        if (!cl)
                return;
        if (cl->cons) {
                rd_kafka_consumer_close(cl->cons);
                rd_kafka_destroy(cl->cons);
        }
        if (cl->prod)
                rd_kafka_destroy(cl->prod);
        free(cl->members);
        rf_buf_free(&cl->cursor);
        rf_buf_free(&cl->prev_cursor);
        pthread_mutex_destroy(&cl->mu);
        free(cl);
}
