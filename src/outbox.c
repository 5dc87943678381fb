/*
 * recfresh - the transactional outbox (see outbox.h).
 *
 * Value layout: u8 topic (RF_TOPIC_*), key (length-prefixed), value
 * (length-prefixed). A frame holds several such records under one sequence
 * number: u8 RF_OUTBOX_FRAME, varint count, the records. Records are
 * produced in sequence order; the delivery report of each carries its
 * sequence number as the message opaque (shifted left; a frame's records
 * carry their frame's tracker, low bit set), and delivered records are
 * deleted in one batch on the next drain. A record whose delivery failed is
 * produced again, and so is a whole frame one of whose records failed.
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/topics.h"

#define RF_OUTBOX_FRAME 0xff

typedef struct seqv {
        uint64_t *v;
        size_t cnt, size;
} seqv_t;

/* A frame being produced: done once every record was sent and reported.
 * Its records carry its address as their opaque (low bit set), so a
 * delivery report finds it without a search. */
typedef struct frame_fl {
        uint64_t seq;
        uint32_t total, sent, acked;
        int failed;
        struct frame_fl *prev, *next; /* all frames in flight */
        struct frame_fl *cut_next;    /* in `cut`: not all records sent */
        int cut;
} frame_fl_t;

struct rf_outbox {
        rf_store_t *st;
        uint64_t next_seq;      /* sequence of the next record queued */
        uint64_t committed_seq; /* next_seq at the last commit */
        uint64_t produce_from;  /* next committed sequence to produce */
        size_t pending;         /* committed, not yet acknowledged */
        size_t inflight;        /* produced, no delivery report yet */
        seqv_t delivered;       /* acknowledged: delete on next drain */
        seqv_t retry;           /* failed: produce again */
        frame_fl_t *frames;     /* frames with records in flight */
        frame_fl_t *cut;        /* frames cut short by a full queue (a few) */
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

rf_outbox_t *rf_outbox_new(rf_store_t *st, char *errstr, size_t errstr_size)
{
        rf_outbox_t *ob = rf_calloc(1, sizeof(*ob));
        rf_iter_t *it = rf_iter_new(st, NULL, RF_CF_OUTBOX, NULL, 0);
        uint64_t first = 0, last = 0;
        int r;

        ob->st = st;
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                last = rf_key_seq_parse(k, klen);
                if (!first)
                        first = last;
                ob->pending++;
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        if (r != 0) {
                snprintf(errstr, errstr_size,
                         "outbox: store read error while scanning it (see "
                         "the log): not guessing the next sequence number");
                free(ob);
                return NULL;
        }
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
        while (ob->frames) {
                frame_fl_t *f = ob->frames;
                ob->frames = f->next;
                free(f);
        }
        free(ob);
}

static void record_encode(rf_buf_t *v, int topic, const char *key, size_t klen,
                          const char *val, size_t vlen)
{
        char t = (char)topic;

        rf_buf_append(v, &t, 1);
        rf_buf_put_varint(v, key ? klen : 0);
        rf_buf_append(v, key, key ? klen : 0);
        rf_buf_put_varint(v, vlen);
        rf_buf_append(v, val, vlen);
}

static void put_value(rf_outbox_t *ob, rf_txn_t *txn, const rf_buf_t *v)
{
        rf_buf_t k = { 0 };

        rf_key_seq(&k, ob->next_seq++);
        rf_txn_put(txn, RF_CF_OUTBOX, k.data, k.len, v->data, v->len);
        rf_buf_free(&k);
}

void rf_outbox_put(rf_outbox_t *ob, rf_txn_t *txn, int topic, const char *key,
                   size_t klen, const char *val, size_t vlen)
{
        rf_buf_t v = { 0 };

        record_encode(&v, topic, key, klen, val, vlen);
        put_value(ob, txn, &v);
        if (topic >= 0 && topic < RF_TOPIC__CNT)
                ob->puts[topic]++;
        rf_buf_free(&v);
}

void rf_outbox_frame_add(rf_outbox_frame_t *f, int topic, const char *key,
                         size_t klen, const char *val, size_t vlen)
{
        if (!f->cnt) {
                rf_buf_reset(&f->recs);
                memset(f->puts, 0, sizeof(f->puts));
        }
        record_encode(&f->recs, topic, key, klen, val, vlen);
        if (topic >= 0 && topic < RF_TOPIC__CNT)
                f->puts[topic]++;
        f->cnt++;
}

void rf_outbox_put_frame(rf_outbox_t *ob, rf_txn_t *txn, rf_outbox_frame_t *f)
{
        rf_buf_t v = { 0 };
        char mark = (char)RF_OUTBOX_FRAME;

        if (!f->cnt)
                return;
        if (f->cnt == 1) {
                put_value(ob, txn, &f->recs); /* a plain record */
        } else {
                rf_buf_append(&v, &mark, 1);
                rf_buf_put_varint(&v, f->cnt);
                rf_buf_append(&v, f->recs.data, f->recs.len);
                put_value(ob, txn, &v);
                rf_buf_free(&v);
        }
        for (int t = 0; t < RF_TOPIC__CNT; t++)
                ob->puts[t] += f->puts[t];
        f->cnt = 0;
        rf_buf_reset(&f->recs);
}

void rf_outbox_frame_free(rf_outbox_frame_t *f)
{
        rf_buf_free(&f->recs);
        f->cnt = 0;
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

/* Ends frame \p f if every record it sent was reported and none is left
 * to send: delivered, or produced again whole if one failed. */
static void frame_settle(rf_outbox_t *ob, frame_fl_t *f)
{
        if (f->sent < f->total || f->acked < f->sent)
                return;
        seqv_push(f->failed ? &ob->retry : &ob->delivered, f->seq);
        if (f->prev)
                f->prev->next = f->next;
        else
                ob->frames = f->next;
        if (f->next)
                f->next->prev = f->prev;
        free(f);
}

/* Errors no retry can mend: the record itself is refused (too large for
 * the producer's message.max.bytes or the topic's max.message.bytes). Each
 * retry would fail again, and a record produced in order would hold back
 * every record after it for good, so it is dropped, counted and logged. */
static int undeliverable(rd_kafka_resp_err_t err)
{
        switch (err) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR__INVALID_ARG:
                return 1;
        default:
                return 0;
        }
}

static void dropped(const char *topic, size_t len, rd_kafka_resp_err_t err)
{
        RF_METRIC_INC(outbox_dropped);
        rf_log_error("outbox", "record of %zu bytes for %s dropped: %s", len,
                     topic, rd_kafka_err2str(err));
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        rf_outbox_t *ob = opaque;
        uintptr_t tag = (uintptr_t)m->_private;

        (void)rk;
        ob->inflight--;
        int retry = m->err && !undeliverable(m->err);
        if (retry) {
                RF_METRIC_INC(outbox_failed);
                rf_log_warn("outbox", "delivery to %s failed: %s (will retry)",
                            rd_kafka_topic_name(m->rkt),
                            rd_kafka_err2str(m->err));
        } else if (m->err) {
                dropped(rd_kafka_topic_name(m->rkt), m->len, m->err);
        } else {
                RF_METRIC_INC(outbox_delivered);
        }
        if (tag & 1) {
                frame_fl_t *f = (frame_fl_t *)(tag & ~(uintptr_t)1);
                f->acked++;
                f->failed |= retry;
                frame_settle(ob, f);
                return;
        }
        seqv_push(retry ? &ob->retry : &ob->delivered, (uint64_t)(tag >> 1));
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

/* Produces one record of the value at \p c (advanced past it) with opaque
 * \p tag. @returns 0, 1 if it is corrupt, 2 if it can never be produced
 * (dropped, see undeliverable()), or -1 if the producer refused it for now
 * (queue full or an error: try later). */
static int produce_rec(rf_outbox_t *ob, rd_kafka_t *rk, rf_cur_t *c,
                       uintptr_t tag)
{
        int topic = rf_cur_u8(c);
        size_t klen = rf_cur_varint(c);
        const char *key = c->p;
        size_t plen;
        const char *payload;
        rd_kafka_resp_err_t err;

        if (c->err || klen > (size_t)(c->end - c->p))
                return 1;
        c->p += klen;
        plen = rf_cur_varint(c);
        payload = c->p;
        if (c->err || topic >= RF_TOPIC__CNT || plen > (size_t)(c->end - c->p))
                return 1;
        c->p += plen;
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(rf_topic(topic)->name),
                                RD_KAFKA_V_KEY(klen ? key : NULL, klen),
                                RD_KAFKA_V_VALUE((void *)payload, plen),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE((void *)tag), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return -1;
        if (undeliverable(err)) {
                dropped(rf_topic(topic)->name, klen + plen, err);
                return 2;
        }
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

/* Produces the records of frame \p seq not sent yet. A frame cut short by
 * a full queue goes on from where it stopped on the next drain. */
static int produce_frame(rf_outbox_t *ob, rd_kafka_t *rk, uint64_t seq,
                         rf_cur_t *c)
{
        uint64_t cnt = rf_cur_varint(c);
        frame_fl_t *f = ob->cut, **pp;
        int r = 0;

        /* A frame cut short goes on from the record it stopped at. */
        while (f && f->seq != seq)
                f = f->cut_next;

        if (!f) {
                if (c->err || cnt == 0 || cnt > UINT32_MAX)
                        cnt = 0;
                f = rf_calloc(1, sizeof(*f));
                f->seq = seq;
                f->total = (uint32_t)cnt;
                f->next = ob->frames;
                if (f->next)
                        f->next->prev = f;
                ob->frames = f;
        }
        for (uint32_t i = 0; i < f->total && r == 0; i++) {
                if (i < f->sent) {
                        /* sent in an earlier drain: step over it */
                        uint64_t n;
                        rf_cur_u8(c);
                        n = rf_cur_varint(c);
                        c->p += n <= (uint64_t)(c->end - c->p) ? n : 0;
                        n = rf_cur_varint(c);
                        c->p += n <= (uint64_t)(c->end - c->p) ? n : 0;
                        continue;
                }
                r = produce_rec(ob, rk, c, (uintptr_t)f | 1);
                if (r == 2) {
                        f->acked++; /* dropped: nothing to report */
                        r = 0;
                }
                if (r == 0)
                        f->sent++;
        }
        if (r < 0 && !f->cut) {
                f->cut = 1; /* the rest on the next drain */
                f->cut_next = ob->cut;
                ob->cut = f;
        } else if (r >= 0 && f->cut) {
                for (pp = &ob->cut; *pp != f; pp = &(*pp)->cut_next)
                        ;
                *pp = f->cut_next;
                f->cut = 0;
        }
        if (r == 1) {
                rf_log_error("outbox",
                             "corrupt frame %llu: %u of %u records produced",
                             (unsigned long long)seq, f->sent, f->total);
                f->total = f->sent; /* the rest cannot be read */
                r = 0;
        }
        frame_settle(ob, f); /* an empty or cut frame ends here */
        return r;
}

/* Produces one stored record (or frame). @returns 0, or -1 if the producer
 * queue is full (try later). Corrupt records are deleted. */
static int produce_one(rf_outbox_t *ob, rd_kafka_t *rk, uint64_t seq,
                       const char *v, size_t vlen)
{
        rf_cur_t c = { v, v + vlen, 0 };
        int r;

        if (vlen && (unsigned char)v[0] == RF_OUTBOX_FRAME) {
                c.p++;
                return produce_frame(ob, rk, seq, &c);
        }
        r = produce_rec(ob, rk, &c, (uintptr_t)seq << 1);
        if (r == 1)
                rf_log_error("outbox", "corrupt record %llu dropped",
                             (unsigned long long)seq);
        if (r > 0) {
                seqv_push(&ob->delivered, seq); /* deleted: never produced */
                return 0;
        }
        return r;
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
        /* At the end, all were produced; after a read error, the rest
         * are produced by a later drain. */
        if (!rf_iter_valid(it) && rf_iter_status(it) == 0)
                ob->produce_from = ob->committed_seq;
        rf_iter_destroy(it);
        rf_buf_free(&from);
        rf_buf_free(&to);
        return produced;
}
