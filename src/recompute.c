/*
 * recfresh - the recompute queue (see recompute.h for the design).
 *
 * Entry value layout (queue cf, key 'P' subject):
 *   u8 version (1), request_id, u8 mode, u8 urgent, run_id,
 *   enqueued_at (be64), gen (varint),
 *   surface count, then per surface: name, last_at (be64),
 *   reason count, then per reason: type, event_id, surface, entity kind,
 *   entity id, at (be64),
 *   reasons_dropped (varint)
 *   sent_gen (varint, gen when last taken for sending; absent = 0)
 * Strings are rf_buf_put_str strings.
 *
 * A change to a stored entry that keeps its reasons and only adds some (a
 * reason, a surface's newer time, a higher priority, the mark of a send)
 * is written as a delta, through the queue column family's merge operator
 * (rf_queue_entry_merge()), not as the whole entry again: an entry holds up
 * to recompute.max_reasons reasons, and a fan-out adds one at a time. A
 * delta (u8 version 2) is the entry with its first `from` reasons left out:
 *   u8 2, request_id ... surfaces (as above), from (varint),
 *   reason count, the reasons from `from` on, reasons_dropped, sent_gen
 * Merged, it is the stored entry's first `from` reasons with the delta's
 * after them, and the delta's every other field. Reads (the batch index,
 * the store, iterators of the store) only ever see whole entries.
 *
 * `gen` grows whenever something is
 * added (a surface, a reason, a higher priority, a mode upgrade); removals
 * (a fresh list arrived) do not change it. When a request is acknowledged,
 * an unchanged gen deletes the entry; a changed one re-arms it with what was
 * added since the send, under a new request_id.
 *
 * What is in flight is kept in memory only: after a crash every entry is
 * due again and is sent again with its stored request_id, but only if its
 * content is what was sent (gen == sent_gen). A request_id always names one
 * content: scorers deduplicate by it, so an entry that grew after it was
 * taken for sending (in flight when the process died, or re-armed after a
 * failed delivery) is sent under a new request_id. Its earlier reasons may
 * then arrive twice, under two ids; none is lost.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/codec_json.h"
#include "recfresh/fanout.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/recompute.h"
#include "recfresh/strset.h"
#include "recfresh/runs.h"
#include "recfresh/tombstone.h"
#include "recfresh/topics.h"
#include "recfresh/valid_memory.h"
#include "recfresh/value_cache.h"

#define ENTRY_VERSION 1
#define DELTA_VERSION 2 /* a merge operand: see the top */
#define CLASS_CNT     4 /* urgent, incremental, active, full */
#define INFL_BUCKETS  1024
/* Reads from other threads (rf_queue_ask) waiting for the writer thread. */
#define ASK_MAX 10000

static const char *const mode_names[RF_RC__MODE_CNT] = {
        [RF_RC_INCREMENTAL] = "incremental",
        [RF_RC_FULL] = "full",
        [RF_RC_ACTIVE] = "active",
};

const char *rf_rc_mode2str(int mode)
{
        if (mode < 0 || mode >= RF_RC__MODE_CNT)
                return "unknown";
        return mode_names[mode];
}

int rf_rc_mode_parse(const char *s)
{
        for (int m = 0; m < RF_RC__MODE_CNT; m++)
                if (!strcmp(mode_names[m], s))
                        return m;
        return -1;
}

/* ---- token bucket ---------------------------------------------------------*/

void rf_bucket_init(rf_bucket_t *b, double rate_per_s, int64_t now_ms)
{
        b->rate = rate_per_s;
        b->burst = rate_per_s < 1 ? 1 : rate_per_s;
        b->tokens = b->burst;
        b->last_ms = now_ms;
}

static void bucket_refill(rf_bucket_t *b, int64_t now_ms)
{
        if (now_ms > b->last_ms) {
                b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
                if (b->tokens > b->burst)
                        b->tokens = b->burst;
        }
        b->last_ms = now_ms;
}

int rf_bucket_take(rf_bucket_t *b, int64_t now_ms)
{
        bucket_refill(b, now_ms);
        if (b->tokens < 1.0)
                return 0;
        b->tokens -= 1.0;
        return 1;
}

int64_t rf_bucket_wait_ms(rf_bucket_t *b, int64_t now_ms)
{
        bucket_refill(b, now_ms);
        if (b->tokens >= 1.0 || b->rate <= 0)
                return 0;
        return (int64_t)((1.0 - b->tokens) * 1000.0 / b->rate) + 1;
}

/* ---- entries --------------------------------------------------------------*/

typedef struct surf {
        const char *name; /* "" = every surface */
        int64_t last_at;
} surf_t;

typedef struct reason {
        const char *type, *event_id, *surface, *ekind, *eid;
        int64_t at;
} reason_t;

/* A decoded entry. Its strings point into `raw` (the stored value, copied
 * once) or are strings it owns (`owned`, added since): decoding an entry
 * with many reasons allocates twice, not once per string. */
typedef struct entry {
        const char *request_id;
        int mode;
        int urgent;
        const char *run_id;
        int64_t enqueued_at;
        uint64_t gen;
        surf_t *surfs;
        size_t surf_cnt;
        reason_t *reasons;
        size_t reason_cnt;
        uint64_t dropped;
        uint64_t sent_gen; /* gen when last taken for sending, 0 = never */
        size_t stored;     /* reasons of the stored entry this was read
                            * from, kept first and unchanged: a delta after
                            * them is written (0: the whole entry is) */
        uint32_t chain;    /* 1 + the deltas over the last whole write, as
                            * the entry cache knows; 0: not known */
        char *raw;         /* the decoded value */
        char **owned;      /* strings set since */
        size_t owned_cnt;
} entry_t;

/* Takes \p s (allocated) into \p e's strings. @returns s. */
static const char *entry_own(entry_t *e, char *s)
{
        e->owned = rf_realloc(e->owned, (e->owned_cnt + 1) * sizeof(*e->owned));
        e->owned[e->owned_cnt++] = s;
        return s;
}

static void entry_clear(entry_t *e)
{
        for (size_t i = 0; i < e->owned_cnt; i++)
                free(e->owned[i]);
        free(e->owned);
        free(e->raw);
        free(e->surfs);
        free(e->reasons);
        memset(e, 0, sizeof(*e));
}

/* The fields before the reasons, version byte excluded. */
static void entry_put_head(const entry_t *e, rf_buf_t *v)
{
        char mu[2] = { (char)e->mode, (char)e->urgent };

        rf_buf_put_str(v, e->request_id);
        rf_buf_append(v, mu, 2);
        rf_buf_put_str(v, e->run_id);
        rf_buf_put_be64(v, (uint64_t)e->enqueued_at);
        rf_buf_put_varint(v, e->gen);
        rf_buf_put_varint(v, e->surf_cnt);
        for (size_t i = 0; i < e->surf_cnt; i++) {
                rf_buf_put_str(v, e->surfs[i].name);
                rf_buf_put_be64(v, (uint64_t)e->surfs[i].last_at);
        }
}

/* The reason count, then the reasons, then the tail. Sets *\p at_stored to
 * the offset in \p v of reason e->stored (or of the tail). */
static void entry_put_rest(const entry_t *e, rf_buf_t *v, size_t *at_stored)
{
        rf_buf_put_varint(v, e->reason_cnt);
        for (size_t i = 0; i < e->reason_cnt; i++) {
                if (i == e->stored)
                        *at_stored = v->len;
                const reason_t *r = &e->reasons[i];
                rf_buf_put_str(v, r->type);
                rf_buf_put_str(v, r->event_id);
                rf_buf_put_str(v, r->surface);
                rf_buf_put_str(v, r->ekind);
                rf_buf_put_str(v, r->eid);
                rf_buf_put_be64(v, (uint64_t)r->at);
        }
        if (e->stored >= e->reason_cnt)
                *at_stored = v->len;
        rf_buf_put_varint(v, e->dropped);
        rf_buf_put_varint(v, e->sent_gen);
}

/* \p e whole into \p v. With \p delta (unless NULL), also \p e as a delta
 * to the stored entry whose first e->stored reasons it keeps: the same
 * bytes but for the version, `from` and the reasons left out. */
static void entry_encode(const entry_t *e, rf_buf_t *v, rf_buf_t *delta)
{
        char ver = ENTRY_VERSION;
        size_t head_end, at_stored = 0;

        rf_buf_reset(v);
        rf_buf_append(v, &ver, 1);
        entry_put_head(e, v);
        head_end = v->len;
        entry_put_rest(e, v, &at_stored);
        if (!delta)
                return;
        ver = DELTA_VERSION;
        rf_buf_reset(delta);
        rf_buf_append(delta, &ver, 1);
        rf_buf_append(delta, v->data + 1, head_end - 1);
        rf_buf_put_varint(delta, e->stored);
        rf_buf_put_varint(delta, e->reason_cnt - e->stored);
        rf_buf_append(delta, v->data + at_stored, v->len - at_stored);
}

/* Moves \p c past the fields before the reasons (version byte read). */
static void skip_head(rf_cur_t *c)
{
        uint64_t n;

        rf_cur_str(c, NULL); /* request_id */
        if (rf_cur_u8(c) >= RF_RC__MODE_CNT)
                c->err = RF_EINVAL; /* entry_decode() would reject it */
        rf_cur_u8(c);               /* urgent */
        rf_cur_str(c, NULL);        /* run_id */
        rf_cur_be64(c);             /* enqueued_at */
        rf_cur_varint(c);           /* gen */
        n = rf_cur_varint(c);
        for (uint64_t i = 0; i < n && !c->err; i++) {
                rf_cur_str(c, NULL);
                rf_cur_be64(c);
        }
}

/* Moves \p c past \p n reasons. */
static void skip_reasons(rf_cur_t *c, uint64_t n)
{
        for (uint64_t i = 0; i < n && !c->err; i++) {
                for (int s = 0; s < 5; s++)
                        rf_cur_str(c, NULL);
                rf_cur_be64(c);
        }
}

/* \p cur (a whole entry, or none if empty) with the delta \p op applied,
 * into \p out. @returns 0, or -1 if \p op is damaged (out is then unset). */
static int delta_apply(const rf_buf_t *cur, const char *op, size_t oplen,
                       rf_buf_t *out)
{
        rf_cur_t c = { op, op + oplen, 0 };
        const char *head, *head_end, *rs, *re;
        const char *bs = NULL, *be = NULL;
        uint64_t from, n, dropped, sent_gen, kept = 0;
        char ver = ENTRY_VERSION;

        if (rf_cur_u8(&c) != DELTA_VERSION)
                return -1;
        head = c.p;
        skip_head(&c);
        head_end = c.p;
        from = rf_cur_varint(&c);
        n = rf_cur_varint(&c);
        rs = c.p;
        skip_reasons(&c, n);
        re = c.p;
        dropped = rf_cur_varint(&c);
        sent_gen = rf_cur_varint(&c);
        if (c.err)
                return -1;

        if (cur->len && (uint8_t)cur->data[0] == ENTRY_VERSION) {
                rf_cur_t b = { cur->data + 1, cur->data + cur->len, 0 };
                skip_head(&b);
                uint64_t have = rf_cur_varint(&b);
                kept = have < from ? have : from;
                bs = b.p;
                skip_reasons(&b, kept);
                be = b.p;
                if (b.err)
                        kept = 0;
        }
        /* Reasons the delta keeps that the store does not hold (a damaged
         * or missing entry) are counted as dropped: the request says some
         * are missing rather than nothing. */
        dropped += from - kept;
        rf_buf_reset(out);
        rf_buf_append(out, &ver, 1);
        rf_buf_append(out, head, (size_t)(head_end - head));
        rf_buf_put_varint(out, kept + n);
        if (kept)
                rf_buf_append(out, bs, (size_t)(be - bs));
        rf_buf_append(out, rs, (size_t)(re - rs));
        rf_buf_put_varint(out, dropped);
        rf_buf_put_varint(out, sent_gen);
        return 0;
}

void rf_queue_entry_merge(const char *base, size_t blen, const char *const *ops,
                          const size_t *lens, int n, rf_buf_t *out)
{
        rf_buf_t a = { 0 }, b = { 0 };

        if (base)
                rf_buf_append(&a, base, blen);
        for (int i = 0; i < n; i++) {
                if (lens[i] && (uint8_t)ops[i][0] == ENTRY_VERSION) {
                        rf_buf_reset(&a); /* a whole entry replaces */
                        rf_buf_append(&a, ops[i], lens[i]);
                } else if (delta_apply(&a, ops[i], lens[i], &b) == 0) {
                        rf_buf_t t = a;
                        a = b;
                        b = t;
                } else {
                        /* Never fail a merge: a failed one stops the
                         * store's flushes. The entry stays as it was. */
                        RF_METRIC_INC(recompute_delta_damaged);
                }
        }
        rf_buf_free(&b);
        *out = a;
}

/* @returns 0 or RF_EINVAL (e is then cleared). */
static int entry_decode(const char *buf, size_t len, entry_t *e)
{
        rf_cur_t c;
        uint64_t n;

        memset(e, 0, sizeof(*e));
        e->raw = rf_malloc(len ? len : 1);
        memcpy(e->raw, buf, len);
        c = (rf_cur_t){ e->raw, e->raw + len, 0 };
        if (rf_cur_u8(&c) != ENTRY_VERSION) {
                entry_clear(e);
                return RF_EINVAL;
        }
        e->request_id = rf_cur_str(&c, NULL);
        e->mode = rf_cur_u8(&c);
        e->urgent = rf_cur_u8(&c);
        e->run_id = rf_cur_str(&c, NULL);
        e->enqueued_at = (int64_t)rf_cur_be64(&c);
        e->gen = rf_cur_varint(&c);
        n = rf_cur_varint(&c);
        if (c.err || n > (uint64_t)(c.end - c.p) || e->mode >= RF_RC__MODE_CNT)
                goto fail;
        e->surfs = rf_calloc(n ? n : 1, sizeof(*e->surfs));
        for (; e->surf_cnt < n && !c.err; e->surf_cnt++) {
                e->surfs[e->surf_cnt].name = rf_cur_str(&c, NULL);
                e->surfs[e->surf_cnt].last_at = (int64_t)rf_cur_be64(&c);
        }
        n = rf_cur_varint(&c);
        if (c.err || n > (uint64_t)(c.end - c.p))
                goto fail;
        e->reasons = rf_calloc(n ? n : 1, sizeof(*e->reasons));
        for (; e->reason_cnt < n && !c.err; e->reason_cnt++) {
                reason_t *r = &e->reasons[e->reason_cnt];
                r->type = rf_cur_str(&c, NULL);
                r->event_id = rf_cur_str(&c, NULL);
                r->surface = rf_cur_str(&c, NULL);
                r->ekind = rf_cur_str(&c, NULL);
                r->eid = rf_cur_str(&c, NULL);
                r->at = (int64_t)rf_cur_be64(&c);
        }
        e->dropped = rf_cur_varint(&c);
        if (c.p < c.end)
                e->sent_gen = rf_cur_varint(&c);
        if (c.err)
                goto fail;
        e->stored = e->reason_cnt;
        return 0;
fail:
        entry_clear(e);
        return RF_EINVAL;
}

static int entry_class(const entry_t *e)
{
        if (e->urgent)
                return 0;
        switch (e->mode) {
        case RF_RC_INCREMENTAL:
                return 1;
        case RF_RC_ACTIVE:
                return 2;
        default:
                return 3;
        }
}

static void key_pending(rf_buf_t *k, const char *subject)
{
        rf_buf_reset(k);
        rf_buf_append(k, "P", 1);
        rf_buf_append(k, subject, strlen(subject));
}

static void key_due(rf_buf_t *k, int cls, int64_t enqueued_at,
                    const char *subject)
{
        char p[2] = { 'D', (char)('0' + cls) };

        rf_buf_reset(k);
        rf_buf_append(k, p, 2);
        rf_buf_put_be64(k, (uint64_t)enqueued_at);
        rf_buf_append(k, subject, strlen(subject));
}

/* The request as it goes on recs.recompute.v1. */
/* Written directly, in the schema's field order: one per request sent,
 * and jansson's object building was 6% of the daemon while sending. */
/* Appends a string literal (its length known at compile time). */
#define LIT(out, s) rf_buf_append((out), (s), sizeof(s) - 1)

static void entry_to_json(const char *subject, const entry_t *e, rf_buf_t *out)
{
        char ts[40];
        int all = 0, first = 1;

        rf_buf_reset(out);
        LIT(out, "{\"request_id\":");
        rf_json_str(out, e->request_id);
        LIT(out, ",\"subject_id\":");
        rf_json_str(out, subject);
        /* "" (every surface) wins over any named one: [] */
        for (size_t i = 0; i < e->surf_cnt; i++)
                all |= !*e->surfs[i].name;
        LIT(out, ",\"surfaces\":[");
        for (size_t i = 0; !all && i < e->surf_cnt; i++) {
                if (!first)
                        LIT(out, ",");
                rf_json_str(out, e->surfs[i].name);
                first = 0;
        }
        rf_buf_printf(out,
                      "],\"mode\":\"%s\",\"priority\":\"%s\",\"reasons\":[",
                      rf_rc_mode2str(e->mode), e->urgent ? "urgent" : "normal");
        for (size_t i = 0; i < e->reason_cnt; i++) {
                const reason_t *r = &e->reasons[i];
                if (i)
                        LIT(out, ",");
                LIT(out, "{\"type\":");
                rf_json_str(out, r->type);
                if (*r->event_id) {
                        LIT(out, ",\"event_id\":");
                        rf_json_str(out, r->event_id);
                }
                if (*r->surface) {
                        LIT(out, ",\"surface\":");
                        rf_json_str(out, r->surface);
                }
                if (*r->ekind) {
                        LIT(out, ",\"entity\":{\"kind\":");
                        rf_json_str(out, r->ekind);
                        LIT(out, ",\"id\":");
                        rf_json_str(out, r->eid);
                        LIT(out, "}");
                }
                rf_buf_printf(out, ",\"at\":\"%s\"}",
                              rf_time_format(r->at, ts, sizeof(ts)));
        }
        rf_buf_printf(out, "],\"reasons_dropped\":%llu,\"enqueued_at\":\"%s\"",
                      (unsigned long long)e->dropped,
                      rf_time_format(e->enqueued_at, ts, sizeof(ts)));
        if (e->run_id && *e->run_id) {
                LIT(out, ",\"run_id\":");
                rf_json_str(out, e->run_id);
        }
        LIT(out, "}");
}

int rf_queue_entry_to_json(const char *subject, const char *val, size_t vlen,
                           rf_buf_t *out)
{
        entry_t e;

        if (entry_decode(val, vlen, &e))
                return RF_EINVAL;
        entry_to_json(subject, &e, out);
        entry_clear(&e);
        return 0;
}

char *rf_queue_request_id(const char *run_id, const char *subject, char out[33])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        EVP_MD_CTX *mc = EVP_MD_CTX_new();

        if (!mc)
                abort();
        EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
        EVP_DigestUpdate(mc, "recfresh-request\0", 17);
        EVP_DigestUpdate(mc, run_id, strlen(run_id) + 1);
        EVP_DigestUpdate(mc, subject, strlen(subject));
        EVP_DigestFinal_ex(mc, md, &mdlen);
        EVP_MD_CTX_free(mc);
        rf_hex(md, 16, out);
        return out;
}

/* A request id no other request gets: 8 random bytes drawn once per
 * process, then a counter. RAND_bytes for every id was 2% of a fan-out. */
static pthread_once_t rid_once = PTHREAD_ONCE_INIT;
static unsigned char rid_prefix[8];
static _Atomic uint64_t rid_next;

static void rid_init(void)
{
        if (RAND_bytes(rid_prefix, sizeof(rid_prefix)) != 1) {
                /* no entropy source: still unique enough per process */
                uint64_t t = (uint64_t)rf_mono_ns() ^ (uint64_t)rf_now_ms() ^
                             (uint64_t)getpid() << 32;
                memcpy(rid_prefix, &t, sizeof(t));
        }
}

static char *new_request_id(void)
{
        unsigned char r[16];
        char out[33];
        uint64_t n;

        pthread_once(&rid_once, rid_init);
        n = atomic_fetch_add(&rid_next, 1);
        memcpy(r, rid_prefix, sizeof(rid_prefix));
        for (int i = 0; i < 8; i++)
                r[8 + i] = (unsigned char)(n >> (56 - 8 * i));
        rf_hex(r, sizeof(r), out);
        return rf_strdup(out);
}

/* ---- in-flight requests (memory only) -------------------------------------*/

typedef struct inflight {
        struct inflight *next; /* hash chain */
        char *subject;
        char *request_id;
        uint64_t gen;      /* entry gen when sent */
        size_t reason_cnt; /* reasons sent */
        uint64_t dropped;  /* reasons_dropped sent */
        int64_t sent_at;
} inflight_t;

typedef struct ask {
        char *subject, *surface, *reason;
} ask_t;

struct rf_queue {
        rf_store_t *st;
        const rf_config_t *conf;
        rf_txn_t *txn; /* sending side's own writes */
        rf_bucket_t normal, full;
        inflight_t *infl[INFL_BUCKETS];
        size_t inflight_cnt;
        /* Per class, where the next search for a due key starts: the due
         * keys before it were taken (deleted). Without it every take walks
         * the deletion markers of all earlier ones (quadratic). Moved back
         * by put_due() when a key lands before it. */
        rf_buf_t due_from[CLASS_CNT];
        /* Per class, the due keys from the cursor on, read with one
         * iterator: a tick takes many without an iterator each (they cost
         * a seek in every file of the column family). Dropped when a due
         * key of the class is written and at every commit and rollback. */
        struct due_cache {
                rf_buf_t arena; /* the keys, back to back */
                size_t *off;    /* key i is arena[off[i], off[i + 1]) */
                size_t cnt, head, size;
                int filled;       /* 0: read again before use */
                int more;         /* keys after the last held may be due */
                int64_t next_due; /* due time of the first not held */
                rf_buf_t skip;    /* first in-flight key met, or empty */
                rf_buf_t stop;    /* the last key the fill walked */
                /* Due keys put since the last commit of the apply's batch
                 * ([0]) and of q->txn ([1]): the smallest, or bad (the
                 * cache must be read again when they are visible). Keys
                 * after `stop` only extend the cache: a new request must
                 * not cost a new iterator. */
                struct {
                        rf_buf_t min_key;
                        int bad;
                } pend[2];
        } dc[CLASS_CNT];
        /* backlog counts, committed and since the last commit */
        int64_t count[RF_RC__MODE_CNT], urgent;
        /* A commit of q->txn failed (or a settle could not read its
         * entry): an entry may be in no due key and no longer in flight,
         * and the counts off. due_repair() before the next take. */
        int repair;
        /* Where consent is read at send time, when q->st holds none
         * (rf_queue_set_consent_store()), or NULL. */
        rf_store_t *consent_st;
        int64_t dcount[RF_RC__MODE_CNT], durgent;
        /* delivery reports seen by the callback, settled by the tick */
        struct {
                inflight_t *token;
                int ok;
        } * acks;
        size_t ack_cnt, ack_size;
        int64_t tick_ns;  /* a tick's time budget (recompute.tick_ms) */
        int64_t stats_at; /* last gauge update */
        /* recomputes asked by readers on other threads */
        pthread_mutex_t ask_lock;
        ask_t *asks;
        size_t ask_cnt;
        rf_buf_t k, v, d;    /* scratch (d: a delta) */
        rf_buf_t lv;         /* rf_queue_list_invalidated()'s list */
        rf_validmem_t *vmem; /* lists' valid entries (valid_memory.h) */
        rf_vcache_t *ecache; /* pending entries (value_cache.h) */
        /* Between rf_queue_hold() and rf_queue_release(): the entry the
         * last rf_queue_add() changed, not put yet. A fan-out meets a
         * subject's lists one after another (index keys sort by list key),
         * and each would read, decode, encode and put the whole entry. */
        struct {
                int on;
                char *subject; /* NULL: none held */
                entry_t e;
                rf_txn_t *txn; /* the batch it goes to */
        } held;
};

static unsigned hash_str(const char *s)
{
        return (unsigned)(rf_hash_str(s) % INFL_BUCKETS);
}

static inflight_t *infl_find(rf_queue_t *q, const char *subject)
{
        for (inflight_t *f = q->infl[hash_str(subject)]; f; f = f->next)
                if (!strcmp(f->subject, subject))
                        return f;
        return NULL;
}

static void infl_remove(rf_queue_t *q, inflight_t *f)
{
        inflight_t **pp = &q->infl[hash_str(f->subject)];

        for (; *pp; pp = &(*pp)->next)
                if (*pp == f) {
                        *pp = f->next;
                        q->inflight_cnt--;
                        return;
                }
}

static void infl_free(inflight_t *f)
{
        free(f->subject);
        free(f->request_id);
        free(f);
}

/* 1 if \p e (of \p subject) is the very request now in flight. */
static int is_inflight(rf_queue_t *q, const char *subject, const entry_t *e)
{
        inflight_t *f = infl_find(q, subject);

        return f && !strcmp(f->request_id, e->request_id);
}

/* ---- open and close -------------------------------------------------------*/

static int64_t conf_i(const rf_queue_t *q, int64_t v, int64_t def)
{
        return q->conf ? v : def;
}

rf_queue_t *rf_queue_new(rf_store_t *st, const rf_config_t *conf,
                         int64_t now_ms)
{
        rf_queue_t *q = rf_calloc(1, sizeof(*q));
        rf_buf_t *dkeys = NULL;
        size_t dcnt = 0;
        char errstr[512];
        rf_iter_t *it;

        q->st = st;
        q->conf = conf;
        q->txn = rf_txn_new(st);
        q->vmem = rf_validmem_new(
            (size_t)conf_i(q, conf ? conf->rc_valid_memory : 0, 262144));
        q->ecache = rf_vcache_new(
            st, (size_t)conf_i(q, conf ? conf->rc_entry_cache_mb : 0, 64)
                    << 20);
        q->tick_ns = conf ? conf->rc_tick_ms * 1000000 : 0;
        pthread_mutex_init(&q->ask_lock, NULL);
        rf_bucket_init(&q->normal,
                       (double)conf_i(q, conf ? conf->rc_rate_per_s : 0, 100),
                       now_ms);
        rf_bucket_init(
            &q->full,
            (double)conf_i(q, conf ? conf->rc_full_rate_per_s : 0, 10), now_ms);

        /* Rebuild the due index: entries in flight at a crash had their due
         * key removed; every entry is due again. */
        it = rf_iter_new(st, NULL, RF_CF_QUEUE, "D", 1);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                dkeys = rf_realloc(dkeys, (dcnt + 1) * sizeof(*dkeys));
                memset(&dkeys[dcnt], 0, sizeof(*dkeys));
                rf_buf_append(&dkeys[dcnt++], k, klen);
        }
        rf_iter_destroy(it);
        for (size_t i = 0; i < dcnt; i++) {
                rf_txn_delete(q->txn, RF_CF_QUEUE, dkeys[i].data, dkeys[i].len);
                rf_buf_free(&dkeys[i]);
        }
        free(dkeys);
        it = rf_iter_new(st, NULL, RF_CF_QUEUE, "P", 1);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                rf_buf_t subj = { 0 };
                entry_t e;
                if (entry_decode(v, vlen, &e)) {
                        rf_log_error("queue", "corrupt pending entry dropped");
                        rf_txn_delete(q->txn, RF_CF_QUEUE, k, klen);
                        continue;
                }
                rf_buf_append(&subj, k + 1, klen - 1);
                rf_buf_append(&subj, "", 1);
                key_due(&q->k, entry_class(&e), e.enqueued_at, subj.data);
                rf_txn_put(q->txn, RF_CF_QUEUE, q->k.data, q->k.len, "", 0);
                q->count[e.mode]++;
                q->urgent += e.urgent;
                entry_clear(&e);
                rf_buf_free(&subj);
        }
        rf_iter_destroy(it);
        if (rf_txn_commit(q->txn, errstr, sizeof(errstr))) {
                /* Dropped: committed later, its deletes would remove
                 * entries written since. The entries in flight at the last
                 * stop are sent after the next start. */
                rf_log_error("queue", "rebuilding the due index: %s", errstr);
                rf_txn_clear(q->txn);
                q->repair = 1; /* again before the first take */
        }
        int64_t total = q->count[0] + q->count[1] + q->count[2];
        if (total)
                rf_log_info("queue",
                            "%lld pending recompute requests (incremental "
                            "%lld, full %lld, active %lld)",
                            (long long)total, (long long)q->count[0],
                            (long long)q->count[1], (long long)q->count[2]);
        return q;
}

void rf_queue_destroy(rf_queue_t *q)
{
        if (!q)
                return;
        entry_clear(&q->held.e);
        free(q->held.subject);
        rf_buf_free(&q->lv);
        rf_validmem_destroy(q->vmem);
        rf_vcache_destroy(q->ecache);
        for (size_t b = 0; b < INFL_BUCKETS; b++)
                while (q->infl[b]) {
                        inflight_t *f = q->infl[b];
                        q->infl[b] = f->next;
                        infl_free(f);
                }
        for (size_t i = 0; i < q->ask_cnt; i++) {
                free(q->asks[i].subject);
                free(q->asks[i].surface);
                free(q->asks[i].reason);
        }
        free(q->asks);
        pthread_mutex_destroy(&q->ask_lock);
        free(q->acks);
        rf_txn_destroy(q->txn);
        for (int c = 0; c < CLASS_CNT; c++) {
                rf_buf_free(&q->due_from[c]);
                rf_buf_free(&q->dc[c].arena);
                rf_buf_free(&q->dc[c].skip);
                rf_buf_free(&q->dc[c].stop);
                rf_buf_free(&q->dc[c].pend[0].min_key);
                rf_buf_free(&q->dc[c].pend[1].min_key);
                free(q->dc[c].off);
        }
        rf_buf_free(&q->k);
        rf_buf_free(&q->v);
        rf_buf_free(&q->d);
        free(q);
}

static void pend_visible(rf_queue_t *q, int src);
static void pend_drop(rf_queue_t *q, int src);
static int64_t due_of(const rf_queue_t *q, int cls, int64_t enqueued_at);

static void counts_committed(rf_queue_t *q)
{
        for (int m = 0; m < RF_RC__MODE_CNT; m++) {
                q->count[m] += q->dcount[m];
                q->dcount[m] = 0;
        }
        q->urgent += q->durgent;
        q->durgent = 0;
}

void rf_queue_committed(rf_queue_t *q)
{
        /* the apply's batch, not the queue's own (commit()) */
        if (rf_vcache_open(q->ecache) != q->txn)
                rf_vcache_committed(q->ecache, NULL);
        if (!rf_txn_count(q->txn))
                rf_vcache_quiet(q->ecache); /* no batch is open now */
        pend_visible(q, 0); /* its new due keys are visible now */
        counts_committed(q);
        rf_validmem_settle(q->vmem);
}

void rf_queue_rollback(rf_queue_t *q)
{
        if (rf_vcache_open(q->ecache) != q->txn)
                rf_vcache_dropped(q->ecache, NULL);
        if (!rf_txn_count(q->txn))
                rf_vcache_quiet(q->ecache);
        /* Keys taken in the dropped batch are due again, maybe before the
         * search cursors. */
        for (int c = 0; c < CLASS_CNT; c++) {
                rf_buf_reset(&q->due_from[c]);
                q->dc[c].filled = 0;
        }
        pend_drop(q, 0);
        memset(q->dcount, 0, sizeof(q->dcount));
        q->durgent = 0;
        rf_validmem_settle(q->vmem);
}

/* ---- adding ---------------------------------------------------------------*/

static int get_entry(rf_queue_t *q, rf_txn_t *txn, const char *subject,
                     entry_t *e, int *found)
{
        int r;

        const char *val;
        size_t vlen;
        uint32_t chain = 0;

        *found = 0;
        key_pending(&q->k, subject);
        if (rf_vcache_get(q->ecache, txn, q->k.data, q->k.len, &val, &vlen,
                          &chain)) {
                RF_METRIC_INC(recompute_entry_cache_hits);
                if (!val)
                        return 0;
        } else {
                r = txn ? rf_txn_get(txn, RF_CF_QUEUE, q->k.data, q->k.len,
                                     &q->v)
                        : rf_store_get(q->st, RF_CF_QUEUE, q->k.data, q->k.len,
                                       &q->v);
                if (r && r != RF_ENOENT)
                        return r;
                rf_vcache_fill(q->ecache, txn, q->k.data, q->k.len,
                               r ? NULL : q->v.data, q->v.len);
                if (r == RF_ENOENT)
                        return 0;
                val = q->v.data;
                vlen = q->v.len;
        }
        if (entry_decode(val, vlen, e)) {
                rf_log_error("queue", "corrupt pending entry replaced");
                return 0;
        }
        e->chain = chain;
        *found = 1;
        return 0;
}

/* Writes \p e: a delta if it keeps the stored entry's reasons and at
 * most MAX_DELTAS lie over the last whole write, else whole.
 *
 * The bound keeps a read that misses the entry cache from folding a long
 * chain (a subject many events reach within one send window gets a delta
 * per event). The writer counts its own deltas in the entry cache: RocksDB's
 * max_successive_merges would count them with a memtable search at every
 * delta, a tenth of the daemon's CPU in row 1 of the benchmark. An entry
 * the cache does not know (read from the store: after a restart, an
 * eviction or a dropped batch) is written whole once. */
#define MAX_DELTAS 64

static void put_entry(rf_queue_t *q, rf_txn_t *txn, const char *subject,
                      const entry_t *e)
{
        int delta = e->stored && e->stored <= e->reason_cnt && e->chain &&
                    e->chain <= MAX_DELTAS;

        key_pending(&q->k, subject);
        entry_encode(e, &q->v, delta ? &q->d : NULL);
        rf_vcache_put(q->ecache, txn, q->k.data, q->k.len, q->v.data, q->v.len,
                      delta ? e->chain + 1 : 1);
        if (delta) {
                rf_txn_merge(txn, RF_CF_QUEUE, q->k.data, q->k.len, q->d.data,
                             q->d.len);
                RF_METRIC_INC(recompute_entry_deltas);
        } else {
                rf_txn_put(txn, RF_CF_QUEUE, q->k.data, q->k.len, q->v.data,
                           q->v.len);
        }
}

static int keycmp(const char *a, size_t alen, const char *b, size_t blen)
{
        int c = memcmp(a, b, alen < blen ? alen : blen);

        return c ? c : alen < blen ? -1 : alen > blen;
}

/* The due keys put through q->txn ([1]) or another batch ([0]) are
 * visible now: the cache of each class is extended or read again. */
static void pend_visible(rf_queue_t *q, int src)
{
        for (int cls = 0; cls < CLASS_CNT; cls++) {
                struct due_cache *dc = &q->dc[cls];
                rf_buf_t *mk = &dc->pend[src].min_key;

                if (!mk->len && !dc->pend[src].bad)
                        continue;
                if (!dc->filled || dc->pend[src].bad ||
                    (dc->stop.len && keycmp(mk->data, mk->len, dc->stop.data,
                                            dc->stop.len) <= 0)) {
                        dc->filled = 0;
                } else if (!dc->more) {
                        /* the fill met the end: read on from the smallest
                         * new key when it is due (later ones sort after it
                         * and are due no sooner) */
                        rf_cur_t c = { mk->data + 2, mk->data + mk->len, 0 };
                        dc->more = 1;
                        dc->next_due = due_of(q, cls, (int64_t)rf_cur_be64(&c));
                }
                /* else: after a key not yet due, read when that one is */
                rf_buf_reset(mk);
                dc->pend[src].bad = 0;
        }
}

/* Dropped unwritten: nothing to extend the caches with. */
static void pend_drop(rf_queue_t *q, int src)
{
        for (int cls = 0; cls < CLASS_CNT; cls++) {
                rf_buf_reset(&q->dc[cls].pend[src].min_key);
                q->dc[cls].pend[src].bad = 0;
        }
}

static void put_due(rf_queue_t *q, rf_txn_t *txn, const char *subject,
                    const entry_t *e)
{
        int cls = entry_class(e);
        rf_buf_t *from = &q->due_from[cls];
        struct due_cache *dc = &q->dc[cls];
        rf_buf_t *mk = &dc->pend[txn == q->txn].min_key;

        key_due(&q->k, cls, e->enqueued_at, subject);
        rf_txn_put(txn, RF_CF_QUEUE, q->k.data, q->k.len, "", 0);
        if (!mk->len || keycmp(q->k.data, q->k.len, mk->data, mk->len) < 0) {
                rf_buf_reset(mk);
                rf_buf_append(mk, q->k.data, q->k.len);
        }
        if (from->len) {
                size_t n = from->len < q->k.len ? from->len : q->k.len;
                int c = memcmp(q->k.data, from->data, n);
                if (c < 0 || (c == 0 && q->k.len < from->len)) {
                        /* Before the cursor: the search starts at it now.
                         * All before it is still taken; rescanning from
                         * the class start would walk every taken key's
                         * deletion marker again. */
                        rf_buf_reset(from);
                        rf_buf_append(from, q->k.data, q->k.len);
                        dc->filled = 0;
                        dc->pend[txn == q->txn].bad = 1;
                }
        }
}

static void del_due(rf_queue_t *q, rf_txn_t *txn, const char *subject,
                    const entry_t *e)
{
        key_due(&q->k, entry_class(e), e->enqueued_at, subject);
        rf_txn_delete(txn, RF_CF_QUEUE, q->k.data, q->k.len);
        /* now, and again once the delete is visible */
        q->dc[entry_class(e)].filled = 0;
        q->dc[entry_class(e)].pend[txn == q->txn].bad = 1;
}

/* Deletes the pending entry only: its due key is gone already. */
static void del_pending(rf_queue_t *q, rf_txn_t *txn, const char *subject)
{
        key_pending(&q->k, subject);
        rf_txn_delete(txn, RF_CF_QUEUE, q->k.data, q->k.len);
        rf_vcache_put(q->ecache, txn, q->k.data, q->k.len, NULL, 0, 1);
}

static void del_entry(rf_queue_t *q, rf_txn_t *txn, const char *subject,
                      const entry_t *e)
{
        del_due(q, txn, subject, e);
        del_pending(q, txn, subject);
}

static const char *nz(const char *s)
{
        return s ? s : "";
}

static int64_t max_reasons(const rf_queue_t *q)
{
        return q->conf ? q->conf->rc_max_reasons : 32;
}

/* Adds the reason of \p add unless the same one is held. @returns 1 if the
 * entry changed. */
static int add_reason(rf_queue_t *q, entry_t *e, const rf_queue_add_t *add,
                      int64_t now_ms)
{
        const char *surface = nz(add->surface);

        if (!add->reason_type)
                return 0;
        for (size_t i = 0; i < e->reason_cnt; i++) {
                const reason_t *r = &e->reasons[i];
                if (!strcmp(r->type, add->reason_type) &&
                    !strcmp(r->event_id, nz(add->event_id)) &&
                    !strcmp(r->surface, surface) &&
                    !strcmp(r->eid, nz(add->entity_id)))
                        return 0;
        }
        if ((int64_t)e->reason_cnt >= max_reasons(q)) {
                e->dropped++;
                return 1;
        }
        /* The reason's five strings in one allocation (a fan-out adds a
         * reason per list: five copies, and the entry's list of owned
         * strings grown five times, were ten calls into malloc). */
        const char *str[5] = { add->reason_type, nz(add->event_id), surface,
                               nz(add->entity_kind), nz(add->entity_id) };
        size_t len[5], total = 0;
        for (int i = 0; i < 5; i++)
                total += (len[i] = strlen(str[i])) + 1;
        char *p = rf_malloc(total);
        const char *at[5];
        entry_own(e, p);
        for (int i = 0; i < 5; i++) {
                memcpy(p, str[i], len[i] + 1);
                at[i] = p;
                p += len[i] + 1;
        }
        e->reasons =
            rf_realloc(e->reasons, (e->reason_cnt + 1) * sizeof(*e->reasons));
        e->reasons[e->reason_cnt++] =
            (reason_t){ at[0], at[1], at[2], at[3], at[4], now_ms };
        return 1;
}

/* Adds or refreshes the surface. @returns 1 if it was not there. */
static int add_surface(entry_t *e, const char *surface, int64_t now_ms)
{
        for (size_t i = 0; i < e->surf_cnt; i++)
                if (!strcmp(e->surfs[i].name, surface)) {
                        if (now_ms > e->surfs[i].last_at)
                                e->surfs[i].last_at = now_ms;
                        return 0;
                }
        e->surfs = rf_realloc(e->surfs, (e->surf_cnt + 1) * sizeof(*e->surfs));
        e->surfs[e->surf_cnt++] =
            (surf_t){ entry_own(e, rf_strdup(surface)), now_ms };
        return 1;
}

/* Puts the held entry (if any) into its batch and forgets it. */
static void held_flush(rf_queue_t *q)
{
        if (!q->held.subject)
                return;
        put_entry(q, q->held.txn, q->held.subject, &q->held.e);
        entry_clear(&q->held.e);
        free(q->held.subject);
        q->held.subject = NULL;
}

void rf_queue_hold(rf_queue_t *q)
{
        q->held.on = 1;
}

void rf_queue_release(rf_queue_t *q)
{
        held_flush(q);
        q->held.on = 0;
}

/* The end of rf_queue_add(): \p e goes to \p txn, or is held. */
static void entry_done(rf_queue_t *q, rf_txn_t *txn, const char *subject,
                       entry_t *e)
{
        if (!q->held.on) {
                put_entry(q, txn, subject, e);
                entry_clear(e);
                return;
        }
        q->held.subject = rf_strdup(subject);
        q->held.e = *e;
        q->held.txn = txn;
}

int rf_queue_add(rf_queue_t *q, rf_txn_t *txn, const rf_queue_add_t *add,
                 int64_t now_ms)
{
        const char *subject = add->subject_id;
        entry_t e, old;
        int found, r, changed = 0;

        if (q->held.subject && q->held.txn == txn &&
            !strcmp(q->held.subject, subject)) {
                e = q->held.e; /* taken back: held again at the end */
                free(q->held.subject);
                q->held.subject = NULL;
                found = 1;
        } else {
                held_flush(q);
                if ((r = get_entry(q, txn, subject, &e, &found)))
                        return r;
        }
        if (!found) {
                if (strcmp(subject, RF_FALLBACK_SUBJECT) != 0 &&
                    (r = rf_consent_purged(q->st, txn, subject)) != 0)
                        return r < 0 ? r : RF_EBLOCKED;
                memset(&e, 0, sizeof(e));
                e.request_id =
                    entry_own(&e, add->request_id ? rf_strdup(add->request_id)
                                                  : new_request_id());
                e.mode = add->mode;
                e.urgent = !!add->urgent;
                e.run_id = entry_own(&e, rf_strdup(nz(add->run_id)));
                e.enqueued_at = now_ms;
                e.gen = 1;
                add_surface(&e, nz(add->surface), now_ms);
                add_reason(q, &e, add, now_ms);
                put_due(q, txn, subject, &e);
                q->dcount[e.mode]++;
                q->durgent += e.urgent;
                RF_METRIC_INC(recompute_enqueued);
                entry_done(q, txn, subject, &e);
                return 0;
        }

        /* Merge. Remember the due key's parts to move it if they change. */
        old = (entry_t){ .urgent = e.urgent,
                         .mode = e.mode,
                         .enqueued_at = e.enqueued_at };
        changed |= add_surface(&e, nz(add->surface), now_ms);
        /* every reason refreshes its surface's time (for satisfaction) */
        changed |= add_reason(q, &e, add, now_ms);
        if (add->mode == RF_RC_INCREMENTAL && e.mode != RF_RC_INCREMENTAL) {
                /* event-driven work must not wait behind a refresh bucket */
                q->dcount[e.mode]--;
                q->dcount[RF_RC_INCREMENTAL]++;
                e.mode = RF_RC_INCREMENTAL;
                changed = 1;
        }
        if (add->urgent && !e.urgent) {
                e.urgent = 1;
                q->durgent++;
                changed = 1;
        }
        if (changed) {
                e.gen++;
                if (!is_inflight(q, subject, &e) &&
                    entry_class(&old) != entry_class(&e)) {
                        del_due(q, txn, subject, &old);
                        put_due(q, txn, subject, &e);
                }
        }
        /* last_at may have moved even when nothing else changed */
        RF_METRIC_INC(recompute_coalesced);
        entry_done(q, txn, subject, &e);
        return 1;
}

/* ---- hooks of the apply path ----------------------------------------------*/

static int removes_entries(rf_event_type_t cause)
{
        switch (cause) {
        case RF_EV_ITEM_BANNED:
        case RF_EV_STOCK_CHANGED:
        case RF_EV_ITEM_HIDDEN:
        case RF_EV_CREATOR_HIDDEN:
        case RF_EV_CAMPAIGN_EXPIRED:
        case RF_EV_CONSENT_GRANTED: /* a blocked surface serves again: its
                                     * list may be old */
                return 1;
        default:
                return 0;
        }
}

static int entry_matches(const rf_entry_t *en, const char *kind, const char *id)
{
        if (!strcmp(kind, "item"))
                return !strcmp(en->item_id, id);
        if (!strcmp(kind, "creator"))
                return !strcmp(en->creator_id, id);
        if (!strcmp(kind, "campaign"))
                return !strcmp(en->campaign_id, id);
        return 1; /* "user": the whole list */
}

/* Valid entries counted past min_valid when a list is read: as many item
 * removals of it after that are answered without reading it again. */
#define VALID_SLACK 32

/* Reads the list an index entry names (\p run: its version, NULL for the
 * incremental list) and counts its distinct valid entries, as far as \p cap,
 * and its entries with a campaign, into *out.
 * @returns 0, or -1 when the event took nothing out of a list reads serve:
 * the list is gone, another version is served, or the entity's entry is not
 * filtered. */
static int count_valid(rf_apply_ctx_t *ctx, const rf_list_key_t *lk,
                       const char *list_key, size_t base, const char *run,
                       size_t run_len, rf_event_type_t cause,
                       const char *entity_kind, const char *entity_id,
                       int32_t cap, rf_validmem_val_t *out)
{
        rf_queue_t *q = ctx->queue;
        rf_list_t list;
        rf_list_walk_t w;
        rf_entry_t en;
        rf_checker_t ck;
        rf_idset_t seen;
        int32_t valid = 0, campaigns = 0;
        int removed = 0, r;

        RF_METRIC_INC(recompute_list_reads);
        /* Read from the served version (rf_runs_lookup: active run or a
         * newer incremental list) into the queue's buffer, kept from call
         * to call: a fresh one per list was a tenth of a cold fan-out. The
         * other version's own index entry, if it is the served one, queues
         * it. */
        r = rf_runs_lookup(ctx->st, lk->surface, list_key, base, &q->lv);
        if (r || rf_list_walk_init(&w, q->lv.data, q->lv.len, &list))
                return -1; /* the list is gone: nothing to recompute */
        if (strlen(list.run_id) != run_len ||
            (run_len && memcmp(list.run_id, run, run_len) != 0) ||
            rf_checker_init(&ck, ctx->st, ctx->txn, lk->subject, list.region))
                return -1; /* not the version reads serve, or no checks */
        /* One walk, in place (a decoded copy of every entry was a fifth of
         * a fan-out): the entity's entries to the end, the valid ones as
         * far as the cap. Duplicates count once, as reads serve them. A
         * corrupt list queues nothing, as a list that cannot be served. */
        rf_idset_init(&seen, list.item_cnt);
        while ((r = rf_list_walk_next(&w, &en)) == 1) {
                int m = !removed && entry_matches(&en, entity_kind, entity_id);
                campaigns += *en.campaign_id != 0;
                if (!m && valid >= cap)
                        continue;
                /* seen before it is checked, as reads do: a later copy
                 * of a filtered entry is not served either */
                int dup = rf_idset_add(&seen, en.item_id);
                rf_filter_t f = rf_checker_check(&ck, &en);
                if (m)
                        removed = cause == RF_EV_CONSENT_GRANTED ||
                                  f != RF_FILTER_NONE;
                if (f == RF_FILTER_NONE && !dup && valid < cap)
                        valid++;
        }
        rf_idset_free(&seen);
        rf_checker_clear(&ck);
        *out = (rf_validmem_val_t){ .valid = valid, .campaigns = campaigns };
        return r == 0 && removed ? 0 : -1;
}

void rf_queue_list_invalidated(rf_apply_ctx_t *ctx, const char *list_key,
                               size_t klen, const char *region,
                               rf_event_type_t cause, const char *event_id,
                               const char *entity_kind, const char *entity_id,
                               rf_entry_state_t entry)
{
        rf_queue_t *q = ctx->queue;
        rf_list_key_t lk;
        size_t base, run_len;
        rf_validmem_val_t mem;
        int32_t min_valid, out;
        int r;

        if (!q || !removes_entries(cause) || entry == RF_ENTRY_KEPT ||
            rf_key_list_split(list_key, klen, &lk) != 0)
                return;
        if (strcmp(lk.subject, RF_FALLBACK_SUBJECT) != 0 &&
            (r = rf_consent_blocks(ctx->st, ctx->txn, ctx->conf, lk.subject,
                                   lk.surface)) != 0) {
                if (r < 0 && !ctx->err)
                        ctx->err = r; /* unknown: fail the batch */
                return;               /* not servable: nothing to recompute */
        }
        /* at most 100000 (config.c) */
        min_valid =
            ctx->conf
                ? (int32_t)rf_config_surface(ctx->conf, lk.surface)->min_valid
                : 0;
        /* Index entries of batch-run lists carry "\0run_id" after the list
         * key: the version the entry, and a remembered bound, are of. */
        const char *run =
            rf_key_list_run(list_key, klen, region, &base, &run_len);
        uint64_t epoch = rf_store_cf_epoch(ctx->st, RF_CF_RUNS);
        /* What the event took out at most, if known. */
        out = -1;
        if ((entry == RF_ENTRY_FILTERED || entry == RF_ENTRY_CAMPAIGN) &&
            rf_validmem_get(q->vmem, lk.subject, list_key, base, run ? run : "",
                            run_len, epoch, &mem))
                out = entry == RF_ENTRY_FILTERED ? 1 : mem.campaigns;
        if (out >= 0 && mem.valid - out >= min_valid) {
                mem.valid -= out; /* still at or above min_valid */
                RF_METRIC_INC(recompute_list_reads_saved);
        } else if (count_valid(ctx, &lk, list_key, base, run, run_len, cause,
                               entity_kind, entity_id, min_valid + VALID_SLACK,
                               &mem) != 0) {
                return;
        }
        rf_validmem_put(q->vmem, lk.subject, list_key, base, run ? run : "",
                        run_len, epoch, mem);

        int urgent = mem.valid < min_valid;
        rf_queue_add_t add = {
                .subject_id = lk.subject,
                .surface = lk.surface,
                .mode = RF_RC_INCREMENTAL,
                .urgent = urgent,
                .reason_type = rf_event_type2str(cause),
                .event_id = event_id,
                .entity_kind = entity_kind,
                .entity_id = entity_id,
        };
        r = rf_queue_add(q, ctx->txn, &add, ctx->now_ms);
        if (r >= 0)
                rf_trace(ctx,
                         .kind = r == 0 ? RF_TRACE_RECOMPUTE_ENQUEUED
                                        : RF_TRACE_RECOMPUTE_COALESCED,
                         .list_key = list_key, .list_klen = klen,
                         .entity_kind = entity_kind, .entity_id = entity_id,
                         .detail = urgent ? "urgent: below min_valid"
                                          : add.reason_type);
        else if (r != RF_EBLOCKED) {
                rf_log_error("queue", "queueing a recompute: %s",
                             rf_err2str(r));
                ctx->err = r; /* never commit without it */
        }
}

void rf_queue_subject_changed(rf_queue_t *q, const char *subject)
{
        if (q)
                rf_validmem_subject_changed(q->vmem, subject);
}

void rf_queue_list_changed(rf_queue_t *q, const char *list_key, size_t klen)
{
        if (q)
                rf_validmem_forget(q->vmem, list_key, klen);
}

void rf_queue_list_published(rf_apply_ctx_t *ctx, const rf_list_t *list)
{
        rf_queue_t *q = ctx->queue;
        entry_t e;
        size_t kept = 0, cleared = 0;
        int found;

        if (!q || get_entry(q, ctx->txn, list->subject_id, &e, &found) ||
            !found)
                return;
        for (size_t i = 0; i < e.surf_cnt; i++) {
                surf_t *s = &e.surfs[i];
                /* "" asks for every surface: one surface's list does
                 * not satisfy it (the scorer's ack does). */
                if (!strcmp(s->name, list->surface) &&
                    list->generated_at > s->last_at) {
                        cleared++;
                        continue;
                }
                e.surfs[kept++] = *s;
        }
        e.surf_cnt = kept;
        if (cleared) {
                RF_METRIC_ADD(recompute_satisfied, cleared);
                if (kept) {
                        put_entry(q, ctx->txn, list->subject_id, &e);
                } else {
                        del_entry(q, ctx->txn, list->subject_id, &e);
                        q->dcount[e.mode]--;
                        q->durgent -= e.urgent;
                }
        }
        entry_clear(&e);
}

/* Queues a grant's recompute: a store error fails the batch (the grant
 * is taken again), as for an invalidation's. */
static void granted_add(rf_apply_ctx_t *ctx, const rf_queue_add_t *add)
{
        int r = rf_queue_add(ctx->queue, ctx->txn, add, ctx->now_ms);

        if (r < 0 && r != RF_EBLOCKED && !ctx->err) {
                rf_log_error("queue", "queueing a recompute: %s",
                             rf_err2str(r));
                ctx->err = r;
        }
}

void rf_queue_consent(rf_apply_ctx_t *ctx, const rf_event_t *ev, int revoked)
{
        rf_queue_t *q = ctx->queue;
        const char *subject = ev->user_id;
        entry_t e;
        int found;

        if (!q)
                return;
        if (revoked) {
                rf_buf_t k = { 0 };
                int r = get_entry(q, ctx->txn, subject, &e, &found);
                if (r == 0 && found) {
                        del_entry(q, ctx->txn, subject, &e);
                        q->dcount[e.mode]--;
                        q->durgent -= e.urgent;
                        entry_clear(&e);
                } else if (r != 0 && !ctx->err) {
                        ctx->err = r; /* the purge must not commit half */
                }
                /* last activity is personal data too */
                rf_buf_append(&k, "A", 1);
                rf_buf_append(&k, subject, strlen(subject));
                rf_txn_delete(ctx->txn, RF_CF_ACTIVITY, k.data, k.len);
                rf_buf_free(&k);
                return;
        }
        int r = rf_consent_purged(ctx->st, ctx->txn, subject);
        if (r < 0 && !ctx->err)
                ctx->err = r; /* unknown: fail the batch */
        if (r != 0)
                return; /* another purging scope is still revoked */
        size_t named = 0;
        for (size_t i = 0; ctx->conf && i < ctx->conf->surface_cnt; i++) {
                const char *name = ctx->conf->surfaces[i].name;
                if (!strcmp(name, "default"))
                        continue;
                rf_queue_add_t add = {
                        .subject_id = subject,
                        .surface = name,
                        .mode = RF_RC_INCREMENTAL,
                        .reason_type = rf_event_type2str(ev->type),
                        .event_id = ev->event_id,
                        .entity_kind = "user",
                        .entity_id = subject,
                };
                granted_add(ctx, &add);
                named++;
        }
        if (!named) {
                rf_queue_add_t add = {
                        .subject_id = subject,
                        .surface = "",
                        .mode = RF_RC_INCREMENTAL,
                        .reason_type = rf_event_type2str(ev->type),
                        .event_id = ev->event_id,
                        .entity_kind = "user",
                        .entity_id = subject,
                };
                granted_add(ctx, &add);
        }
}

/* ---- sending --------------------------------------------------------------*/

static int64_t coalesce_ms(const rf_queue_t *q)
{
        return q->conf ? q->conf->rc_coalesce_ms : 2000;
}

static size_t max_inflight(const rf_queue_t *q)
{
        return q->conf ? (size_t)q->conf->rc_max_inflight : 1000;
}

static int64_t due_of(const rf_queue_t *q, int cls, int64_t enqueued_at)
{
        return cls == 1 ? enqueued_at + coalesce_ms(q) : enqueued_at;
}

static rf_bucket_t *bucket_of(rf_queue_t *q, int cls)
{
        if (cls == 0)
                return NULL; /* urgent: never held back by a rate limit */
        return cls == 3 ? &q->full : &q->normal;
}

/* Drops the uncommitted writes of q->txn: the keys taken in it are due
 * again. */
static void txn_drop(rf_queue_t *q)
{
        rf_txn_clear(q->txn);
        rf_vcache_dropped(q->ecache, q->txn);
        for (int c = 0; c < CLASS_CNT; c++) {
                rf_buf_reset(&q->due_from[c]);
                q->dc[c].filled = 0;
        }
        pend_drop(q, 1);
}

static int commit(rf_queue_t *q, const char *what)
{
        char errstr[512];
        int r;

        if (!rf_txn_count(q->txn))
                return 0;
        if ((r = rf_txn_commit(q->txn, errstr, sizeof(errstr)))) {
                RF_METRIC_INC(store_errors);
                rf_log_error("queue", "%s: %s", what, errstr);
                txn_drop(q);
                q->repair = 1;
        } else {
                rf_vcache_committed(q->ecache, q->txn);
                pend_visible(q, 1);
        }
        return r;
}

/* An iterator over the due keys of class \p cls, from its search cursor:
 * every key below the cursor is taken, and the bounds let RocksDB skip their
 * deletion markers instead of walking them. */
static rf_iter_t *due_iter(rf_queue_t *q, int cls)
{
        char p[2] = { 'D', (char)('0' + cls) };
        char end[2] = { 'D', (char)('0' + cls + 1) };
        const rf_buf_t *from = &q->due_from[cls];

        return rf_iter_new_range(q->st, NULL, RF_CF_QUEUE,
                                 from->len ? from->data : p,
                                 from->len ? from->len : 2, end, 2);
}

#define DUE_CACHE_MAX 256

/* Reads into the cache of class \p cls the due keys from its cursor on,
 * not in flight, as far as the first one not due at \p now_ms (or
 * DUE_CACHE_MAX of them). */
static void due_fill(rf_queue_t *q, int cls, int64_t now_ms)
{
        struct due_cache *dc = &q->dc[cls];
        rf_iter_t *it = due_iter(q, cls);
        rf_buf_t subject = { 0 };

        rf_buf_reset(&dc->arena);
        rf_buf_reset(&dc->skip);
        rf_buf_reset(&dc->stop);
        dc->cnt = dc->head = 0;
        dc->more = 0;
        dc->next_due = INT64_MAX;
        if (!dc->off) {
                dc->size = DUE_CACHE_MAX + 1;
                dc->off = rf_calloc(dc->size, sizeof(*dc->off));
        }
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                rf_cur_t c = { k + 2, k + klen, 0 };
                int64_t due = due_of(q, cls, (int64_t)rf_cur_be64(&c));
                rf_buf_reset(&dc->stop);
                rf_buf_append(&dc->stop, k, klen);
                if (c.err)
                        continue;
                if (due > now_ms || dc->cnt == DUE_CACHE_MAX) {
                        /* sorted by enqueued_at: read on when this one is
                         * due, or (cache full) when the cache is used up */
                        dc->more = 1;
                        dc->next_due = due > now_ms ? due : INT64_MIN;
                        break;
                }
                rf_buf_reset(&subject);
                rf_buf_append(&subject, c.p, (size_t)(c.end - c.p));
                rf_buf_append(&subject, "", 1);
                if (infl_find(q, subject.data)) {
                        if (!dc->skip.len) /* the cursor must not pass it */
                                rf_buf_append(&dc->skip, k, klen);
                        continue;
                }
                dc->off[dc->cnt++] = dc->arena.len;
                rf_buf_append(&dc->arena, k, klen);
        }
        dc->off[dc->cnt] = dc->arena.len;
        if (!dc->more && rf_iter_status(it) != 0) {
                /* Not the end: read on in a second, not when a new entry
                 * comes (the ones not read would wait until then). */
                dc->more = 1;
                dc->next_due = now_ms + 1000;
        }
        rf_iter_destroy(it);
        rf_buf_free(&subject);
        dc->filled = 1;
}

/* Finds the first due subject of class \p cls not in flight. @returns 1
 * with \p subject (NUL-terminated), *duep and \p dkey (its due key) filled,
 * else 0. The key stays first until due_taken(). */
static int first_due(rf_queue_t *q, int cls, int64_t now_ms, rf_buf_t *subject,
                     int64_t *duep, rf_buf_t *dkey)
{
        struct due_cache *dc = &q->dc[cls];

        if (!dc->filled ||
            (dc->head == dc->cnt && dc->more && now_ms >= dc->next_due))
                due_fill(q, cls, now_ms);
        if (dc->head == dc->cnt)
                return 0;

        const char *k = dc->arena.data + dc->off[dc->head];
        size_t klen = dc->off[dc->head + 1] - dc->off[dc->head];
        rf_cur_t c = { k + 2, k + klen, 0 };
        int64_t due = due_of(q, cls, (int64_t)rf_cur_be64(&c));

        if (due > now_ms)
                return 0; /* sorted by enqueued_at: none later is due */
        rf_buf_reset(subject);
        rf_buf_append(subject, c.p, (size_t)(c.end - c.p));
        rf_buf_append(subject, "", 1);
        subject->len--;
        if (duep)
                *duep = due;
        if (dkey) {
                rf_buf_reset(dkey);
                rf_buf_append(dkey, k, klen);
                /* The next search starts here (this key is taken now). */
                rf_buf_t *from = &q->due_from[cls];
                rf_buf_reset(from);
                if (dc->skip.len)
                        rf_buf_append(from, dc->skip.data, dc->skip.len);
                else
                        rf_buf_append(from, k, klen);
        }
        return 1;
}

/* The key first_due() found in class \p cls was deleted. */
static void due_taken(rf_queue_t *q, int cls)
{
        if (q->dc[cls].head < q->dc[cls].cnt)
                q->dc[cls].head++;
}

/* Marks \p e of \p subject in flight and fills \p req. */
static void send_entry(rf_queue_t *q, const char *subject, const entry_t *e,
                       int64_t now_ms, rf_queue_req_t *req)
{
        inflight_t *f = rf_calloc(1, sizeof(*f));
        unsigned h = hash_str(subject);

        f->subject = rf_strdup(subject);
        f->request_id = rf_strdup(e->request_id);
        f->gen = e->gen;
        f->reason_cnt = e->reason_cnt;
        f->dropped = e->dropped;
        f->sent_at = now_ms;
        f->next = q->infl[h];
        q->infl[h] = f;
        q->inflight_cnt++;

        memset(req, 0, sizeof(*req));
        rf_buf_append(&req->subject_id, subject, strlen(subject));
        rf_buf_append(&req->request_id, e->request_id, strlen(e->request_id));
        entry_to_json(subject, e, &req->json);
        req->token = f;
        if (e->urgent)
                RF_METRIC_INC(recompute_urgent_sent);
}

/* Takes the next due request into q->txn (uncommitted) and marks it in
 * flight. @returns 1 with \p req filled, 0 if none is due, or a store
 * error. */
static int take_one(rf_queue_t *q, int64_t now_ms, rf_queue_req_t *req)
{
        rf_buf_t subject = { 0 }, dkey = { 0 };
        int r = 0;

        if (q->inflight_cnt >= max_inflight(q))
                return 0;
        for (int cls = 0; cls < CLASS_CNT && r == 0; cls++) {
                rf_bucket_t *b = bucket_of(q, cls);

                while (r == 0 &&
                       first_due(q, cls, now_ms, &subject, NULL, &dkey)) {
                        entry_t e;
                        int found;

                        if (b && !rf_bucket_take(b, now_ms))
                                break;
                        if ((r = get_entry(q, NULL, subject.data, &e, &found)))
                                break;
                        /* Not due while in flight (a crash re-arms it); a
                         * due key without its entry is dropped. */
                        rf_txn_delete(q->txn, RF_CF_QUEUE, dkey.data, dkey.len);
                        due_taken(q, cls);
                        if (!found) {
                                if (b)
                                        b->tokens += 1.0;
                                continue;
                        }
                        int c = q->consent_st
                                    ? rf_consent_purged(q->consent_st, NULL,
                                                        subject.data)
                                    : 0;
                        if (c != 0) {
                                if (c < 0) { /* unknown: send nothing */
                                        r = c;
                                        entry_clear(&e);
                                        break;
                                }
                                /* Revoked since it was queued: nothing
                                 * personalised is asked for. */
                                RF_METRIC_INC(recompute_consent_dropped);
                                /* (its due key was deleted above) */
                                del_pending(q, q->txn, subject.data);
                                q->count[e.mode]--;
                                q->urgent -= e.urgent;
                                entry_clear(&e);
                                if (b)
                                        b->tokens += 1.0;
                                continue;
                        }
                        if (e.sent_gen && e.sent_gen != e.gen) {
                                /* Grew since it was last sent: the old id
                                 * names other content. */
                                e.request_id = entry_own(&e, new_request_id());
                        }
                        e.sent_gen = e.gen;
                        put_entry(q, q->txn, subject.data, &e);
                        send_entry(q, subject.data, &e, now_ms, req);
                        entry_clear(&e);
                        r = 1;
                }
        }
        rf_buf_free(&subject);
        rf_buf_free(&dkey);
        return r;
}

/* Puts a due key for every pending entry and counts them afresh: what
 * rf_queue_new() does after a crash, for the same state a failed commit
 * of q->txn may leave (an entry settled in memory, not in the store, in no
 * due key and no longer in flight). Due keys kept are put again as they
 * are. Only between the apply's batches (nothing of it uncommitted). */
static int due_repair(rf_queue_t *q)
{
        int64_t count[RF_RC__MODE_CNT] = { 0 }, urgent = 0;
        rf_buf_t subj = { 0 };
        rf_iter_t *it;
        int r;

        for (int m = 0; m < RF_RC__MODE_CNT; m++)
                if (q->dcount[m])
                        return RF_EBLOCKED; /* a batch is open: later */
        if (q->durgent)
                return RF_EBLOCKED;
        it = rf_iter_new(q->st, NULL, RF_CF_QUEUE, "P", 1);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                entry_t e;
                if (entry_decode(v, vlen, &e))
                        continue; /* dropped at the next start */
                rf_buf_reset(&subj);
                rf_buf_append(&subj, k + 1, klen - 1);
                rf_buf_append(&subj, "", 1);
                count[e.mode]++;
                urgent += e.urgent;
                /* One in flight has none until it settles (which puts
                 * one if it is due again). */
                if (!is_inflight(q, subj.data, &e)) {
                        key_due(&q->k, entry_class(&e), e.enqueued_at,
                                subj.data);
                        rf_txn_put(q->txn, RF_CF_QUEUE, q->k.data, q->k.len, "",
                                   0);
                }
                entry_clear(&e);
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        rf_buf_free(&subj);
        if (r) {
                txn_drop(q);
                return r;
        }
        if ((r = commit(q, "repairing the due index")))
                return r;
        memcpy(q->count, count, sizeof(count));
        q->urgent = urgent;
        /* Keys may now sit before the cursors, and outside the caches. */
        for (int c = 0; c < CLASS_CNT; c++) {
                rf_buf_reset(&q->due_from[c]);
                q->dc[c].filled = 0;
        }
        rf_log_info("queue", "due index repaired after a failed write");
        return 0;
}

int rf_queue_take_batch(rf_queue_t *q, int64_t now_ms, rf_queue_req_t *reqs,
                        size_t max)
{
        size_t n = 0;
        int r = 0;

        if (q->repair && due_repair(q) == 0)
                q->repair = 0;

        while (n < max && (r = take_one(q, now_ms, &reqs[n])) == 1)
                n++;
        if (r >= 0)
                r = commit(q, "marking requests in flight");
        else
                txn_drop(q);
        if (r < 0) {
                /* none was sent: not in flight after all */
                for (size_t i = 0; i < n; i++) {
                        infl_remove(q, reqs[i].token);
                        infl_free(reqs[i].token);
                        rf_queue_req_clear(&reqs[i]);
                }
                return r;
        }
        return (int)n;
}

int rf_queue_take(rf_queue_t *q, int64_t now_ms, rf_queue_req_t *req)
{
        return rf_queue_take_batch(q, now_ms, req, 1);
}

void rf_queue_req_clear(rf_queue_req_t *req)
{
        rf_buf_free(&req->subject_id);
        rf_buf_free(&req->request_id);
        rf_buf_free(&req->json);
        memset(req, 0, sizeof(*req));
}

/* rf_queue_settle() into q->txn, uncommitted. */
static int settle_one(rf_queue_t *q, void *token, int acked, int64_t now_ms)
{
        inflight_t *f = token;
        entry_t e;
        int found, r;

        infl_remove(q, f);
        /* A fill passed over the due keys of subjects in flight: one may
         * be this subject's newer entry, due now. */
        for (int c = 0; c < CLASS_CNT; c++)
                if (q->dc[c].skip.len)
                        q->dc[c].filled = 0;
        if ((r = get_entry(q, NULL, f->subject, &e, &found))) {
                q->repair = 1; /* its entry is in no due key now */
                goto out;
        }
        if (!found)
                goto out; /* satisfied by a fresh list, or purged */
        if (strcmp(e.request_id, f->request_id) != 0) {
                /* a new entry since (it has its own due key) */
                entry_clear(&e);
                goto out;
        }
        if (!acked) {
                RF_METRIC_INC(recompute_failed);
                put_due(q, q->txn, f->subject, &e); /* same request_id */
        } else if (e.gen == f->gen) {
                RF_METRIC_INC(recompute_acked);
                del_entry(q, q->txn, f->subject, &e);
                q->count[e.mode]--;
                q->urgent -= e.urgent;
        } else {
                /* Added to while in flight: send what was added, under a
                 * new id. Surfaces are all kept (a surface sent twice is
                 * harmless; one lost is not). */
                RF_METRIC_INC(recompute_acked);
                size_t skip =
                    f->reason_cnt < e.reason_cnt ? f->reason_cnt : e.reason_cnt;
                int64_t first = 0;
                memmove(e.reasons, e.reasons + skip,
                        (e.reason_cnt - skip) * sizeof(*e.reasons));
                e.reason_cnt -= skip;
                e.stored = 0; /* its first reasons are gone: whole */
                e.dropped = e.dropped > f->dropped ? e.dropped - f->dropped : 0;
                for (size_t i = 0; i < e.reason_cnt; i++)
                        if (!first || e.reasons[i].at < first)
                                first = e.reasons[i].at;
                for (size_t i = 0; !first && i < e.surf_cnt; i++)
                        if (e.surfs[i].last_at >= f->sent_at)
                                first = e.surfs[i].last_at;
                e.request_id = entry_own(&e, new_request_id());
                e.enqueued_at = first ? first : now_ms;
                e.gen = 1;
                e.sent_gen = 0;
                put_entry(q, q->txn, f->subject, &e);
                put_due(q, q->txn, f->subject, &e);
        }
        entry_clear(&e);
out:
        infl_free(f);
        return r;
}

int rf_queue_settle(rf_queue_t *q, void *token, int acked, int64_t now_ms)
{
        int r = settle_one(q, token, acked, now_ms);
        int rc = commit(q, "settling a request");

        return r ? r : rc;
}

int rf_queue_settle_batch(rf_queue_t *q, void *const *tokens, size_t n,
                          int acked, int64_t now_ms)
{
        int r = 0;

        for (size_t i = 0; i < n; i++) {
                int ri = settle_one(q, tokens[i], acked, now_ms);
                if (ri && !r)
                        r = ri;
        }
        /* the others' writes too: their tokens are gone */
        int rc = commit(q, "settling requests");
        return r ? r : rc;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        rf_queue_t *q = opaque;

        (void)rk;
        if (q->ack_cnt == q->ack_size) {
                q->ack_size = q->ack_size ? 2 * q->ack_size : 64;
                q->acks = rf_realloc(q->acks, q->ack_size * sizeof(*q->acks));
        }
        q->acks[q->ack_cnt].token = m->_private;
        q->acks[q->ack_cnt++].ok = !m->err;
        if (m->err)
                rf_log_warn("queue",
                            "recompute request not delivered: %s "
                            "(will retry)",
                            rd_kafka_err2str(m->err));
}

void rf_queue_set_consent_store(rf_queue_t *q, rf_store_t *st)
{
        q->consent_st = st;
}

void rf_queue_conf_set(rf_queue_t *q, rd_kafka_conf_t *conf)
{
        rd_kafka_conf_set_opaque(conf, q);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
}

/* Requests settled or marked in flight per commit by the tick. */
#define TAKE_BATCH 128

/* Settles the delivery reports seen, TAKE_BATCH per commit, until the
 * monotonic \p deadline_ns (0: none) once one batch is done. The rest wait
 * for the next tick, in order. */
static void settle_acks(rf_queue_t *q, int64_t now_ms, int64_t deadline_ns)
{
        size_t i = 0;

        while (i < q->ack_cnt && (i == 0 || !rf_mono_past(deadline_ns))) {
                size_t end =
                    i + TAKE_BATCH < q->ack_cnt ? i + TAKE_BATCH : q->ack_cnt;
                for (; i < end; i++)
                        settle_one(q, q->acks[i].token, q->acks[i].ok, now_ms);
                commit(q, "settling requests");
        }
        if (i) {
                q->ack_cnt -= i;
                memmove(q->acks, q->acks + i, q->ack_cnt * sizeof(*q->acks));
        }
}

/* Applies the recomputes readers asked for (rf_queue_ask). */
static void drain_asks(rf_queue_t *q, int64_t now_ms)
{
        ask_t *asks;
        size_t n;

        pthread_mutex_lock(&q->ask_lock);
        asks = q->asks;
        n = q->ask_cnt;
        q->asks = NULL;
        q->ask_cnt = 0;
        pthread_mutex_unlock(&q->ask_lock);
        for (size_t i = 0; i < n; i++) {
                rf_queue_add_t add = {
                        .subject_id = asks[i].subject,
                        .surface = asks[i].surface,
                        .mode = RF_RC_INCREMENTAL,
                        .reason_type = asks[i].reason,
                };
                /* RF_EBLOCKED (consent revoked) queues nothing */
                rf_queue_add(q, q->txn, &add, now_ms);
                free(asks[i].subject);
                free(asks[i].surface);
                free(asks[i].reason);
        }
        free(asks);
        if (n) {
                /* its due keys are visible now (commit); the apply's
                 * batch is not committed by this */
                if (commit(q, "queueing recomputes asked by reads") == 0)
                        counts_committed(q);
                else
                        rf_queue_rollback(q);
        }
}

void rf_queue_ask(rf_queue_t *q, const char *subject, const char *surface,
                  const char *reason)
{
        pthread_mutex_lock(&q->ask_lock);
        if (q->ask_cnt < ASK_MAX) {
                q->asks =
                    rf_realloc(q->asks, (q->ask_cnt + 1) * sizeof(*q->asks));
                q->asks[q->ask_cnt++] =
                    (ask_t){ rf_strdup(subject), rf_strdup(nz(surface)),
                             rf_strdup(reason) };
        }
        pthread_mutex_unlock(&q->ask_lock);
}

static void update_gauges(rf_queue_t *q, int64_t now_ms)
{
        rf_queue_stats_t s;

        if (now_ms - q->stats_at < 500 && now_ms >= q->stats_at)
                return;
        q->stats_at = now_ms;
        rf_queue_stats(q, &s);
        atomic_store_explicit(&rf_metrics.recompute_backlog, s.count,
                              memory_order_relaxed);
        for (int m = 0; m < RF_RC__MODE_CNT; m++)
                atomic_store_explicit(&rf_metrics.recompute_backlog_by_mode[m],
                                      s.by_mode[m], memory_order_relaxed);
        atomic_store_explicit(&rf_metrics.recompute_inflight, s.inflight,
                              memory_order_relaxed);
        rf_vcache_stats_t cs;
        rf_vcache_stats(q->ecache, &cs);
        atomic_store_explicit(&rf_metrics.recompute_entry_cache_bytes,
                              cs.bytes + cs.table_bytes, memory_order_relaxed);
        atomic_store_explicit(&rf_metrics.recompute_oldest_age_ms,
                              s.oldest_enqueued_at &&
                                      now_ms > s.oldest_enqueued_at
                                  ? (uint64_t)(now_ms - s.oldest_enqueued_at)
                                  : 0,
                              memory_order_relaxed);
}

size_t rf_queue_tick(rf_queue_t *q, rd_kafka_t *rk, int64_t now_ms)
{
        rf_queue_req_t reqs[TAKE_BATCH];
        size_t produced = 0;
        int n = TAKE_BATCH;
        /* Bounded: the tick runs between consumer batches, and a backlog
         * of thousands of due requests (a ban in a million lists makes many
         * urgent ones, which no rate limits) or of their acks would hold
         * back every event meanwhile. At least one batch of each, so
         * neither side starves the other. */
        int64_t deadline = q->tick_ns ? rf_mono_ns() + q->tick_ns : 0;

        drain_asks(q, now_ms);
        rd_kafka_poll(rk, 0);
        settle_acks(q, now_ms, deadline);
        while (n == TAKE_BATCH && (!produced || !rf_mono_past(deadline)) &&
               (n = rf_queue_take_batch(q, now_ms, reqs, TAKE_BATCH)) > 0) {
                int i = 0;
                for (; i < n; i++) {
                        rf_queue_req_t *req = &reqs[i];
                        rd_kafka_resp_err_t err = rd_kafka_producev(
                            rk,
                            RD_KAFKA_V_TOPIC(
                                rf_topic(RF_TOPIC_RECOMPUTE)->name),
                            RD_KAFKA_V_KEY(req->subject_id.data,
                                           req->subject_id.len),
                            RD_KAFKA_V_VALUE(req->json.data, req->json.len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_OPAQUE(req->token), RD_KAFKA_V_END);
                        if (err) {
                                rf_log_warn("queue",
                                            "produce recompute request: %s",
                                            rd_kafka_err2str(err));
                                break;
                        }
                        RF_METRIC_INC(recompute_sent);
                        produced++;
                        rf_queue_req_clear(req);
                }
                if (i < n) {
                        /* Not produced: due again, with the same ids. */
                        for (int j = i; j < n; j++) {
                                settle_one(q, reqs[j].token, 0, now_ms);
                                rf_queue_req_clear(&reqs[j]);
                        }
                        commit(q, "settling requests not produced");
                        break;
                }
        }
        update_gauges(q, now_ms);
        return produced;
}

void rf_queue_flush(rf_queue_t *q, rd_kafka_t *rk, int timeout_ms)
{
        int64_t deadline = rf_mono_ms() + timeout_ms;

        while (q->inflight_cnt && rf_mono_ms() < deadline) {
                rd_kafka_poll(rk, q->ack_cnt ? 0 : 50);
                settle_acks(q, rf_now_ms(), 0);
        }
        update_gauges(q, rf_now_ms() + 1000);
}

int64_t rf_queue_wait_ms(rf_queue_t *q, int64_t now_ms)
{
        int64_t best = -1;
        rf_buf_t subject = { 0 };
        size_t asks;

        if (q->ack_cnt)
                return 0; /* acks a bounded tick left to settle */
        /* HTTP threads append asks under the lock (rf_queue_ask()). */
        pthread_mutex_lock(&q->ask_lock);
        asks = q->ask_cnt;
        pthread_mutex_unlock(&q->ask_lock);
        if (q->inflight_cnt || asks)
                best = 10; /* delivery reports and reads to serve */
        for (int cls = 0; cls < CLASS_CNT; cls++) {
                int64_t due = 0, w;
                rf_bucket_t *b = bucket_of(q, cls);
                if (!first_due(q, cls, INT64_MAX / 2, &subject, &due, NULL))
                        continue;
                w = due > now_ms ? due - now_ms : 0;
                if (b && w == 0)
                        w = rf_bucket_wait_ms(b, now_ms);
                if (best < 0 || w < best)
                        best = w;
        }
        rf_buf_free(&subject);
        return best > 1000 ? 1000 : best;
}

/* ---- backlog --------------------------------------------------------------*/

void rf_queue_counts(const rf_queue_t *q, rf_queue_stats_t *out)
{
        memset(out, 0, sizeof(*out));
        for (int m = 0; m < RF_RC__MODE_CNT; m++) {
                out->by_mode[m] = q->count[m] > 0 ? (uint64_t)q->count[m] : 0;
                out->count += out->by_mode[m];
        }
        out->urgent = q->urgent > 0 ? (uint64_t)q->urgent : 0;
        out->inflight = q->inflight_cnt;
}

void rf_queue_stats(rf_queue_t *q, rf_queue_stats_t *out)
{
        rf_queue_counts(q, out);
        /* Oldest: the head of each class (sorted by enqueued_at); entries in
         * flight are rarely older than that and are settled in ms. */
        for (int cls = 0; cls < CLASS_CNT; cls++) {
                rf_iter_t *it = due_iter(q, cls);
                if (rf_iter_valid(it)) {
                        size_t klen;
                        const char *k = rf_iter_key(it, &klen);
                        rf_cur_t c = { k + 2, k + klen, 0 };
                        int64_t at = (int64_t)rf_cur_be64(&c);
                        int mode = cls == 3   ? RF_RC_FULL
                                   : cls == 2 ? RF_RC_ACTIVE
                                              : RF_RC_INCREMENTAL;
                        if (!c.err && (!out->oldest_enqueued_at ||
                                       at < out->oldest_enqueued_at))
                                out->oldest_enqueued_at = at;
                        if (!c.err && (!out->oldest_by_mode[mode] ||
                                       at < out->oldest_by_mode[mode]))
                                out->oldest_by_mode[mode] = at;
                }
                rf_iter_destroy(it);
        }
}

int rf_queue_scan_stats(rf_store_t *st, rf_queue_stats_t *out)
{
        rf_iter_t *it = rf_iter_new(st, NULL, RF_CF_QUEUE, "P", 1);

        memset(out, 0, sizeof(*out));
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t vlen;
                const char *v = rf_iter_value(it, &vlen);
                entry_t e;
                if (entry_decode(v, vlen, &e))
                        continue;
                out->count++;
                out->by_mode[e.mode]++;
                out->urgent += e.urgent;
                if (!out->oldest_enqueued_at ||
                    e.enqueued_at < out->oldest_enqueued_at)
                        out->oldest_enqueued_at = e.enqueued_at;
                if (!out->oldest_by_mode[e.mode] ||
                    e.enqueued_at < out->oldest_by_mode[e.mode])
                        out->oldest_by_mode[e.mode] = e.enqueued_at;
                entry_clear(&e);
        }
        rf_iter_destroy(it);
        return 0;
}

rf_store_t *rf_queue_store(const rf_queue_t *q)
{
        return q->st;
}
