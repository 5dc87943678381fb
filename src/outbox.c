/*
 * recfresh - the transactional outbox (see outbox.h).
 *
 * Value layout: u8 topic (RF_TOPIC_*), key (length-prefixed), value
 * (length-prefixed). Records are produced in sequence order; the delivery
 * report of each carries its sequence number as the message opaque, and
 * delivered records are deleted in one batch on the next drain. A record
 * whose delivery failed is produced again.
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/topics.h"

typedef struct seqv {
        uint64_t *v;
        size_t cnt, size;
} seqv_t;

struct rf_outbox {
        rf_store_t *st;
        uint64_t next_seq;            /* sequence of the next record queued */
        uint64_t committed_seq;       /* next_seq at the last commit */
        uint64_t produce_from;        /* next committed sequence to produce */
        size_t pending;               /* committed, not yet acknowledged */
        size_t inflight;              /* produced, no delivery report yet */
        seqv_t delivered;             /* acknowledged: delete on next drain */
        seqv_t retry;                 /* failed: produce again */
        uint64_t puts[RF_TOPIC__CNT]; /* rf_outbox_puts() */
};

static void seqv_push(seqv_t *s, uint64_t seq)
{
        if (s->cnt == s->size) {
                s->size = s->size ? s->size * 2 : 64;
                s->v = rf_realloc(s->v, s->size * sizeof(*s->v));
        }
        s->v[s->cnt++] = seq;
}

rf_outbox_t *rf_outbox_new(rf_store_t *st)
{
        rf_outbox_t *ob = rf_calloc(1, sizeof(*ob));
        rf_iter_t *it = rf_iter_new(st, NULL, RF_CF_OUTBOX, NULL, 0);
        uint64_t first = 0, last = 0;

        ob->st = st;
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                last = rf_key_seq_parse(k, klen);
                if (!first)
                        first = last;
                ob->pending++;
        }
        rf_iter_destroy(it);
        ob->next_seq = ob->committed_seq = last + 1;
        ob->produce_from = first ? first : ob->next_seq;
        if (ob->pending)
                rf_log_info("outbox",
                            "%zu records to produce again after "
                            "restart",
                            ob->pending);
        return ob;
}

void rf_outbox_destroy(rf_outbox_t *ob)
{
        if (!ob)
                return;
        free(ob->delivered.v);
        free(ob->retry.v);
        free(ob);
}

void rf_outbox_put(rf_outbox_t *ob, rf_txn_t *txn, int topic, const char *key,
                   size_t klen, const char *val, size_t vlen)
{
        rf_buf_t k = { 0 }, v = { 0 };
        char t = (char)topic;

        rf_key_seq(&k, ob->next_seq++);
        rf_buf_append(&v, &t, 1);
        rf_buf_put_varint(&v, key ? klen : 0);
        rf_buf_append(&v, key, key ? klen : 0);
        rf_buf_put_varint(&v, vlen);
        rf_buf_append(&v, val, vlen);
        rf_txn_put(txn, RF_CF_OUTBOX, k.data, k.len, v.data, v.len);
        if (topic >= 0 && topic < RF_TOPIC__CNT)
                ob->puts[topic]++;
        rf_buf_free(&k);
        rf_buf_free(&v);
}

uint64_t rf_outbox_puts(const rf_outbox_t *ob, int topic)
{
        return topic >= 0 && topic < RF_TOPIC__CNT ? ob->puts[topic] : 0;
}

void rf_outbox_rollback(rf_outbox_t *ob)
{
        ob->next_seq = ob->committed_seq;
}

void rf_outbox_committed(rf_outbox_t *ob)
{
        ob->pending += ob->next_seq - ob->committed_seq;
        ob->committed_seq = ob->next_seq;
}

size_t rf_outbox_pending(const rf_outbox_t *ob)
{
        return ob->pending;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        rf_outbox_t *ob = opaque;
        uint64_t seq = (uint64_t)(uintptr_t)m->_private;

        (void)rk;
        ob->inflight--;
        if (m->err) {
                RF_METRIC_INC(outbox_failed);
                rf_log_warn("outbox", "delivery to %s failed: %s (will retry)",
                            rd_kafka_topic_name(m->rkt),
                            rd_kafka_err2str(m->err));
                seqv_push(&ob->retry, seq);
                return;
        }
        RF_METRIC_INC(outbox_delivered);
        seqv_push(&ob->delivered, seq);
}

void rf_outbox_conf_set(rf_outbox_t *ob, rd_kafka_conf_t *conf)
{
        rd_kafka_conf_set_opaque(conf, ob);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
}

static void delete_delivered(rf_outbox_t *ob)
{
        char errstr[512];
        rf_txn_t *txn;
        rf_buf_t k = { 0 };

        if (!ob->delivered.cnt)
                return;
        txn = rf_txn_new(ob->st);
        for (size_t i = 0; i < ob->delivered.cnt; i++) {
                rf_buf_reset(&k);
                rf_key_seq(&k, ob->delivered.v[i]);
                rf_txn_delete(txn, RF_CF_OUTBOX, k.data, k.len);
        }
        if (rf_txn_commit(txn, errstr, sizeof(errstr)) == 0) {
                ob->pending -= ob->delivered.cnt;
                ob->delivered.cnt = 0;
        } else {
                /* Kept in `delivered`: retried on the next drain. At worst
                 * a restart produces them again (at least once). */
                rf_log_error("outbox", "deleting delivered records: %s",
                             errstr);
        }
        rf_buf_free(&k);
        rf_txn_destroy(txn);
}

/* Produces one stored record. @returns 0, or -1 if the producer queue is
 * full (try later). Corrupt records are deleted. */
static int produce_one(rf_outbox_t *ob, rd_kafka_t *rk, uint64_t seq,
                       const char *v, size_t vlen)
{
        rf_cur_t c = { v, v + vlen, 0 };
        int topic = rf_cur_u8(&c);
        size_t klen = rf_cur_varint(&c);
        const char *key = c.p;
        c.p += klen;
        size_t plen = rf_cur_varint(&c);
        const char *payload = c.p;
        rd_kafka_resp_err_t err;

        if (c.err || topic >= RF_TOPIC__CNT || c.p + plen > c.end) {
                rf_log_error("outbox", "corrupt record %llu dropped",
                             (unsigned long long)seq);
                seqv_push(&ob->delivered, seq);
                return 0;
        }
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(rf_topic(topic)->name),
                                RD_KAFKA_V_KEY(klen ? key : NULL, klen),
                                RD_KAFKA_V_VALUE((void *)payload, plen),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE((void *)(uintptr_t)seq),
                                RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return -1;
        if (err) {
                RF_METRIC_INC(outbox_failed);
                rf_log_warn("outbox", "produce to %s: %s (will retry)",
                            rf_topic(topic)->name, rd_kafka_err2str(err));
                return -1;
        }
        ob->inflight++;
        RF_METRIC_INC(outbox_produced);
        return 0;
}

static int produce_seq(rf_outbox_t *ob, rd_kafka_t *rk, uint64_t seq)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int r = 0;

        rf_key_seq(&k, seq);
        if (rf_store_get(ob->st, RF_CF_OUTBOX, k.data, k.len, &v) == 0)
                r = produce_one(ob, rk, seq, v.data, v.len);
        rf_buf_free(&k);
        rf_buf_free(&v);
        return r;
}

size_t rf_outbox_drain(rf_outbox_t *ob, rd_kafka_t *rk, size_t max_inflight)
{
        size_t produced = 0;

        delete_delivered(ob);

        /* Failed deliveries first, then new records in order. */
        while (ob->retry.cnt && ob->inflight < max_inflight) {
                uint64_t seq = ob->retry.v[ob->retry.cnt - 1];
                if (produce_seq(ob, rk, seq) != 0)
                        return produced;
                ob->retry.cnt--;
                produced++;
        }
        if (ob->produce_from >= ob->committed_seq)
                return produced;

        /* Bounded on both sides: delivered records below and nothing
         * above the last commit is walked. */
        rf_buf_t from = { 0 }, to = { 0 };
        rf_key_seq(&from, ob->produce_from);
        rf_key_seq(&to, ob->committed_seq);
        rf_iter_t *it = rf_iter_new_range(ob->st, NULL, RF_CF_OUTBOX, from.data,
                                          from.len, to.data, to.len);
        for (; rf_iter_valid(it) && ob->inflight < max_inflight;
             rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                uint64_t seq = rf_key_seq_parse(k, klen);
                if (seq >= ob->committed_seq)
                        break;
                if (produce_one(ob, rk, seq, v, vlen) != 0)
                        break;
                ob->produce_from = seq + 1;
                produced++;
        }
        if (!rf_iter_valid(it))
                ob->produce_from = ob->committed_seq; /* all produced */
        rf_iter_destroy(it);
        rf_buf_free(&from);
        rf_buf_free(&to);
        return produced;
}
