/*
 * recfresh - the read path's cache of decoded run versions (see
 * list_cache.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/common.h"
#include "recfresh/list_cache.h"
#include "recfresh/strset.h"

#define SHARDS 16

/* Incremental-list tokens: one counter per hash of a list key (inc_*()). */
#define INC_SLOTS 4096

typedef struct lc_entry {
        struct lc_entry *chain;       /* next in the bucket */
        struct lc_entry *prev, *next; /* recency: prev is more recent */
        uint64_t hash;
        rf_list_t *list; /* the cache's reference */
        uint64_t inc;    /* token under which this version was found to
                          * beat its incremental list; 0: not known */
        size_t total, bytes, klen;
        char key[];
} lc_entry_t;

typedef struct lc_shard {
        pthread_mutex_t lock;
        lc_entry_t **bucket;
        size_t mask, cnt, bytes, max_bytes;
        lc_entry_t *mru, *lru;
        uint64_t hits, misses, evictions;
} lc_shard_t;

struct rf_list_cache {
        lc_shard_t shard[SHARDS];
        size_t max_bytes;
        _Atomic uint64_t gen; /* moved by every forget and clear */
        /* Moved by every write of an incremental list whose key hashes
         * to the slot (rf_list_cache_inc_written()); never 0. */
        _Atomic uint64_t inc[INC_SLOTS];
};

rf_list_cache_t *rf_list_cache_new(size_t max_bytes)
{
        rf_list_cache_t *lc;

        if (!max_bytes)
                return NULL;
        lc = rf_calloc(1, sizeof(*lc));
        lc->max_bytes = max_bytes;
        for (int i = 0; i < SHARDS; i++) {
                lc_shard_t *s = &lc->shard[i];
                pthread_mutex_init(&s->lock, NULL);
                s->max_bytes = max_bytes / SHARDS;
                s->mask = 63;
                s->bucket = rf_calloc(s->mask + 1, sizeof(*s->bucket));
        }
        for (int i = 0; i < INC_SLOTS; i++)
                atomic_init(&lc->inc[i], 1);
        return lc;
}

static void entry_free(lc_entry_t *e)
{
        rf_list_destroy(e->list);
        free(e);
}

void rf_list_cache_destroy(rf_list_cache_t *lc)
{
        if (!lc)
                return;
        for (int i = 0; i < SHARDS; i++) {
                lc_shard_t *s = &lc->shard[i];
                for (lc_entry_t *e = s->mru, *n; e; e = n) {
                        n = e->next;
                        entry_free(e);
                }
                free(s->bucket);
                pthread_mutex_destroy(&s->lock);
        }
        free(lc);
}

static lc_shard_t *shard_of(rf_list_cache_t *lc, uint64_t hash)
{
        return &lc->shard[(hash >> 60) & (SHARDS - 1)];
}

/* The bucket link that points at the key's entry (or at NULL). */
static lc_entry_t **find(lc_shard_t *s, uint64_t hash, const char *key,
                         size_t klen)
{
        lc_entry_t **pp = &s->bucket[hash & s->mask];

        for (; *pp; pp = &(*pp)->chain)
                if ((*pp)->hash == hash && (*pp)->klen == klen &&
                    !memcmp((*pp)->key, key, klen))
                        break;
        return pp;
}

static void lru_unlink(lc_shard_t *s, lc_entry_t *e)
{
        if (e->prev)
                e->prev->next = e->next;
        else
                s->mru = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else
                s->lru = e->prev;
        e->prev = e->next = NULL;
}

static void lru_front(lc_shard_t *s, lc_entry_t *e)
{
        e->prev = NULL;
        e->next = s->mru;
        if (s->mru)
                s->mru->prev = e;
        s->mru = e;
        if (!s->lru)
                s->lru = e;
}

/* Unlinks the entry *pp points at and frees it. */
static void drop(lc_shard_t *s, lc_entry_t **pp)
{
        lc_entry_t *e = *pp;

        *pp = e->chain;
        lru_unlink(s, e);
        s->cnt--;
        s->bytes -= e->bytes;
        entry_free(e);
}

static void grow(lc_shard_t *s)
{
        size_t n = (s->mask + 1) * 2;
        lc_entry_t **b = rf_calloc(n, sizeof(*b));

        for (size_t i = 0; i <= s->mask; i++)
                for (lc_entry_t *e = s->bucket[i], *next; e; e = next) {
                        next = e->chain;
                        e->chain = b[e->hash & (n - 1)];
                        b[e->hash & (n - 1)] = e;
                }
        free(s->bucket);
        s->bucket = b;
        s->mask = n - 1;
}

uint64_t rf_list_cache_gen(rf_list_cache_t *lc)
{
        return lc ? atomic_load(&lc->gen) : 0;
}

static _Atomic uint64_t *inc_slot(rf_list_cache_t *lc, const char *lkey,
                                  size_t klen)
{
        return &lc->inc[rf_hash_bytes(lkey, klen) % INC_SLOTS];
}

uint64_t rf_list_cache_inc_token(rf_list_cache_t *lc, const char *lkey,
                                 size_t klen)
{
        return lc ? atomic_load_explicit(inc_slot(lc, lkey, klen),
                                         memory_order_acquire)
                  : 0;
}

void rf_list_cache_inc_written(rf_list_cache_t *lc, const char *lkey,
                               size_t klen)
{
        if (lc)
                atomic_fetch_add(inc_slot(lc, lkey, klen), 1);
}

void rf_list_cache_inc_all(rf_list_cache_t *lc)
{
        for (int i = 0; lc && i < INC_SLOTS; i++)
                atomic_fetch_add(&lc->inc[i], 1);
}

void rf_list_cache_set_inc(rf_list_cache_t *lc, const char *key, size_t klen,
                           uint64_t inc)
{
        uint64_t hash = rf_hash_bytes(key, klen);
        lc_shard_t *s = shard_of(lc, hash);

        pthread_mutex_lock(&s->lock);
        lc_entry_t *e = *find(s, hash, key, klen);
        if (e)
                e->inc = inc;
        pthread_mutex_unlock(&s->lock);
}

int rf_list_cache_get(rf_list_cache_t *lc, const char *key, size_t klen,
                      size_t min_items, rf_list_t **listp, size_t *total,
                      uint64_t *inc)
{
        uint64_t hash = rf_hash_bytes(key, klen);
        lc_shard_t *s = shard_of(lc, hash);
        int hit = 0;

        pthread_mutex_lock(&s->lock);
        lc_entry_t *e = *find(s, hash, key, klen);
        if (e &&
            (e->list->item_cnt >= min_items || e->list->item_cnt == e->total)) {
                lru_unlink(s, e);
                lru_front(s, e);
                *listp = rf_list_share(e->list);
                *total = e->total;
                if (inc)
                        *inc = e->inc;
                hit = 1;
        }
        if (hit)
                s->hits++;
        else
                s->misses++;
        pthread_mutex_unlock(&s->lock);
        return hit;
}

void rf_list_cache_put(rf_list_cache_t *lc, const char *key, size_t klen,
                       uint64_t gen, rf_list_t *list, size_t total,
                       uint64_t inc)
{
        uint64_t hash = rf_hash_bytes(key, klen);
        lc_shard_t *s = shard_of(lc, hash);
        size_t bytes = sizeof(lc_entry_t) + klen + rf_list_bytes(list);

        if (bytes > s->max_bytes / 8)
                return;
        lc_entry_t *e = rf_malloc(sizeof(*e) + klen);
        *e = (lc_entry_t){ .hash = hash,
                           .inc = inc,
                           .total = total,
                           .bytes = bytes,
                           .klen = klen };
        memcpy(e->key, key, klen);

        pthread_mutex_lock(&s->lock);
        /* Under the lock: a forget that moved the generation after this
         * check removes the entry once it has the lock; one that moved it
         * before is seen here (its lock came after the move). */
        if (atomic_load(&lc->gen) != gen) {
                pthread_mutex_unlock(&s->lock);
                free(e);
                return;
        }
        lc_entry_t **pp = find(s, hash, key, klen);
        if (*pp)
                drop(s, pp);
        while (s->lru && s->bytes + bytes > s->max_bytes) {
                lc_entry_t *old = s->lru;
                drop(s, find(s, old->hash, old->key, old->klen));
                s->evictions++;
        }
        e->list = rf_list_share(list);
        e->chain = s->bucket[hash & s->mask];
        s->bucket[hash & s->mask] = e;
        lru_front(s, e);
        s->cnt++;
        s->bytes += bytes;
        if (s->cnt > s->mask + 1)
                grow(s);
        pthread_mutex_unlock(&s->lock);
}

void rf_list_cache_forget(rf_list_cache_t *lc, const char *key, size_t klen)
{
        if (!lc)
                return;
        uint64_t hash = rf_hash_bytes(key, klen);
        lc_shard_t *s = shard_of(lc, hash);

        /* First: a reader that read the store before the write and puts
         * after this point finds the generation moved. */
        atomic_fetch_add(&lc->gen, 1);
        pthread_mutex_lock(&s->lock);
        lc_entry_t **pp = find(s, hash, key, klen);
        if (*pp)
                drop(s, pp);
        pthread_mutex_unlock(&s->lock);
}

void rf_list_cache_clear(rf_list_cache_t *lc)
{
        if (!lc)
                return;
        atomic_fetch_add(&lc->gen, 1);
        for (int i = 0; i < SHARDS; i++) {
                lc_shard_t *s = &lc->shard[i];
                pthread_mutex_lock(&s->lock);
                while (s->mru)
                        drop(s,
                             find(s, s->mru->hash, s->mru->key, s->mru->klen));
                pthread_mutex_unlock(&s->lock);
        }
}

void rf_list_cache_stats(rf_list_cache_t *lc, rf_list_cache_stats_t *out)
{
        memset(out, 0, sizeof(*out));
        if (!lc)
                return;
        out->max_bytes = lc->max_bytes;
        for (int i = 0; i < SHARDS; i++) {
                lc_shard_t *s = &lc->shard[i];
                pthread_mutex_lock(&s->lock);
                out->hits += s->hits;
                out->misses += s->misses;
                out->evictions += s->evictions;
                out->entries += s->cnt;
                out->bytes += s->bytes;
                pthread_mutex_unlock(&s->lock);
        }
}
