/*
 * recfresh - a bounded cache of values written through batches (see
 * value_cache.h).
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/common.h"
#include "recfresh/log.h"
#include "recfresh/strset.h"
#include "recfresh/value_cache.h"

typedef struct vcslot {
        uint64_t hash; /* of the key, 0: empty */
        char *kv;      /* the key, then the value */
        size_t klen, vlen;
        int absent;            /* the key has no value */
        uint32_t note;         /* the writer's, 0 for a value read */
        const rf_txn_t *batch; /* uncommitted write of this batch, or NULL */
} vcslot_t;

struct rf_vcache {
        rf_store_t *st;
        vcslot_t *slot;
        size_t mask;
        size_t bytes, max_bytes;
        uint64_t drops;       /* rf_store_drops() when last checked */
        const rf_txn_t *open; /* batch with uncommitted writes here */
        int off;              /* two batches wrote: see rf_vcache_put() */
        int warned;           /* that was logged */
        size_t *dirty;        /* slots it wrote (may since hold others) */
        size_t dirty_cnt, dirty_size;
        uint64_t hits, lookups;
};

/* The average pending entry is a few hundred bytes: a slot per 512 bytes
 * of the budget. */
#define BYTES_PER_SLOT 512

rf_vcache_t *rf_vcache_new(rf_store_t *st, size_t max_bytes)
{
        rf_vcache_t *c;
        size_t n = 64;

        if (!max_bytes)
                return NULL;
        while (n * 2 <= max_bytes / BYTES_PER_SLOT)
                n *= 2;
        c = rf_calloc(1, sizeof(*c));
        c->st = st;
        c->slot = rf_calloc(n, sizeof(*c->slot));
        c->mask = n - 1;
        c->max_bytes = max_bytes;
        c->drops = rf_store_drops(st);
        return c;
}

static void slot_empty(rf_vcache_t *c, vcslot_t *s)
{
        if (!s->hash)
                return;
        c->bytes -= s->klen + s->vlen;
        free(s->kv);
        memset(s, 0, sizeof(*s));
}

/* Empties every slot. The open batch, if any, may still hold writes. */
static void forget_all(rf_vcache_t *c)
{
        for (size_t i = 0; i <= c->mask; i++)
                slot_empty(c, &c->slot[i]);
        c->dirty_cnt = 0;
}

void rf_vcache_clear(rf_vcache_t *c)
{
        if (!c)
                return;
        forget_all(c);
        c->open = NULL;
        c->off = 0;
}

void rf_vcache_destroy(rf_vcache_t *c)
{
        if (!c)
                return;
        rf_vcache_clear(c);
        free(c->slot);
        free(c->dirty);
        free(c);
}

/* A batch was dropped since the last look: what it wrote is not true. */
static void check_drops(rf_vcache_t *c)
{
        uint64_t d = rf_store_drops(c->st);

        if (d != c->drops) {
                forget_all(c);
                c->drops = d;
        }
}

static vcslot_t *find(rf_vcache_t *c, uint64_t h, const char *key, size_t klen)
{
        vcslot_t *s = &c->slot[h & c->mask];

        return s->hash == h && s->klen == klen && !memcmp(s->kv, key, klen)
                   ? s
                   : NULL;
}

int rf_vcache_get(rf_vcache_t *c, const rf_txn_t *txn, const char *key,
                  size_t klen, const char **val, size_t *vlen, uint32_t *note)
{
        vcslot_t *s;

        if (!c)
                return 0;
        check_drops(c);
        c->lookups++;
        if (c->off)
                return 0;
        s = find(c, rf_hash_slot(key, klen), key, klen);
        if (!s || (s->batch && s->batch != txn))
                return 0;
        c->hits++;
        *val = s->absent ? NULL : s->kv + s->klen;
        *vlen = s->absent ? 0 : s->vlen;
        if (note)
                *note = s->note;
        return 1;
}

static void dirty_add(rf_vcache_t *c, size_t slot)
{
        if (c->dirty_cnt == c->dirty_size) {
                c->dirty_size = c->dirty_size ? c->dirty_size * 2 : 256;
                c->dirty =
                    rf_realloc(c->dirty, c->dirty_size * sizeof(*c->dirty));
        }
        c->dirty[c->dirty_cnt++] = slot;
}

/* Sets the slot of \p key to \p val as written by \p batch (NULL:
 * committed; else the slot is listed for rf_vcache_committed()). A value
 * over the budget leaves the key uncached. */
static void slot_set(rf_vcache_t *c, uint64_t h, const char *key, size_t klen,
                     const char *val, size_t vlen, uint32_t note,
                     const rf_txn_t *batch)
{
        vcslot_t *s = &c->slot[h & c->mask];

        slot_empty(c, s);
        if (!val)
                vlen = 0;
        if (c->bytes + klen + vlen > c->max_bytes)
                return;
        s->kv = rf_malloc(klen + vlen + 1);
        memcpy(s->kv, key, klen);
        if (vlen)
                memcpy(s->kv + klen, val, vlen);
        s->hash = h;
        s->klen = klen;
        s->vlen = vlen;
        s->absent = !val;
        s->note = note;
        s->batch = batch;
        c->bytes += klen + vlen;
        if (batch)
                dirty_add(c, h & c->mask);
}

void rf_vcache_put(rf_vcache_t *c, const rf_txn_t *txn, const char *key,
                   size_t klen, const char *val, size_t vlen, uint32_t note)
{
        uint64_t h;

        if (!c || c->off)
                return;
        check_drops(c);
        if (c->open && c->open != txn) {
                /* Two batches with writes open at once: what either will
                 * make visible, and when, is no longer known here. */
                forget_all(c);
                c->off = 1;
                if (!c->warned++)
                        rf_log_warn("cache",
                                    "two batches wrote at once: the cache of "
                                    "pending entries is off until both end");
                return;
        }
        c->open = txn;
        h = rf_hash_slot(key, klen);
        slot_set(c, h, key, klen, val, vlen, note, txn);
}

void rf_vcache_fill(rf_vcache_t *c, const rf_txn_t *txn, const char *key,
                    size_t klen, const char *val, size_t vlen)
{
        uint64_t h;

        if (!c || c->off)
                return;
        check_drops(c);
        /* Another batch's writes are here: this read may not have seen one
         * of them (evicted since), and must not hide it. */
        if (c->open && c->open != txn)
                return;
        h = rf_hash_slot(key, klen);
        vcslot_t *s = find(c, h, key, klen);
        if (s && s->batch)
                return; /* the batch's own write: already the answer */
        /* Through the open batch, the read may have seen its writes. */
        slot_set(c, h, key, klen, val, vlen, 0, c->open ? txn : NULL);
}

void rf_vcache_committed(rf_vcache_t *c, const rf_txn_t *txn)
{
        if (!c || !c->open || (txn && txn != c->open))
                return;
        for (size_t i = 0; i < c->dirty_cnt; i++) {
                vcslot_t *s = &c->slot[c->dirty[i]];
                if (s->batch == c->open)
                        s->batch = NULL;
        }
        c->dirty_cnt = 0;
        c->open = NULL;
}

void rf_vcache_dropped(rf_vcache_t *c, const rf_txn_t *txn)
{
        if (!c || !c->open || (txn && txn != c->open))
                return;
        forget_all(c);
        c->open = NULL;
}

void rf_vcache_quiet(rf_vcache_t *c)
{
        if (c && c->off) {
                forget_all(c);
                c->open = NULL;
                c->off = 0;
        }
}

const rf_txn_t *rf_vcache_open(const rf_vcache_t *c)
{
        return c ? c->open : NULL;
}

void rf_vcache_stats(const rf_vcache_t *c, rf_vcache_stats_t *out)
{
        *out = (rf_vcache_stats_t){ 0 };
        if (!c)
                return;
        out->hits = c->hits;
        out->lookups = c->lookups;
        out->bytes = c->bytes;
        out->table_bytes = (c->mask + 1) * sizeof(*c->slot) +
                           c->dirty_size * sizeof(*c->dirty);
}
