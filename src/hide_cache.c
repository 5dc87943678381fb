/*
 * recfresh - the read path's cache of users' hides (see hide_cache.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/common.h"
#include "recfresh/hide_cache.h"
#include "recfresh/keys.h"
#include "recfresh/strset.h"
#include "recfresh/tombstone.h"

#define STRIPES 256 /* locks, slot % STRIPES */

typedef struct hc_slot {
        uint64_t gen;  /* moved by every begin and clear; never 0 */
        uint32_t busy; /* batches between begin and end */
        rf_hides_t *h; /* the cache's reference, or NULL */
} hc_slot_t;

typedef struct hc_stripe {
        pthread_mutex_t lock;
        uint64_t hits, misses;
} __attribute__((aligned(64))) hc_stripe_t;

struct rf_hide_cache {
        hc_stripe_t stripe[STRIPES];
        hc_slot_t *slot;
        uint32_t mask;
        size_t max_bytes, max_entry;
        _Atomic size_t bytes, entries;
};

/* ---- hides ----------------------------------------------------------------*/

rf_hides_t *rf_hides_new(const char *user, const char *sum, size_t len)
{
        const char *p = sum, *end = sum + len, *id;
        size_t items = 0, creators = 0, ulen = strlen(user);
        char what;

        while ((id = rf_hide_summary_next(&p, end, &what))) {
                items += what == RF_IDX_ITEM;
                creators += what == RF_IDX_CREATOR;
        }
        size_t bytes = sizeof(rf_hides_t) +
                       (items + creators) * sizeof(const char *) + len + ulen +
                       1;
        rf_hides_t *h = rf_malloc(bytes);
        const char **ptrs = (const char **)(h + 1);
        char *copy = (char *)(ptrs + items + creators);

        if (len)
                memcpy(copy, sum, len);
        memcpy(copy + len, user, ulen + 1);
        atomic_init(&h->refs, 1);
        h->items = ptrs;
        h->creators = ptrs + items;
        h->item_cnt = h->creator_cnt = 0;
        h->bytes = bytes;
        h->user = copy + len;
        for (p = copy, end = copy + len;
             (id = rf_hide_summary_next(&p, end, &what));) {
                if (what == RF_IDX_ITEM)
                        ptrs[h->item_cnt++] = id;
                else if (what == RF_IDX_CREATOR)
                        h->creators[h->creator_cnt++] = id;
        }
        return h;
}

rf_hides_t *rf_hides_share(rf_hides_t *h)
{
        if (h)
                atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
        return h;
}

void rf_hides_release(rf_hides_t *h)
{
        if (h &&
            atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
                /* A user id and what it hid: personal data, not left in
                 * the heap (a consent purge drops the entry). */
                explicit_bzero(h, h->bytes);
                free(h);
        }
}

/* ---- the cache ------------------------------------------------------------*/

rf_hide_cache_t *rf_hide_cache_new(size_t max_bytes)
{
        rf_hide_cache_t *hc;
        size_t slots = 1;

        if (max_bytes < 65536)
                return NULL;
        while (slots * 2 <= max_bytes / 256 && slots < ((size_t)1 << 30))
                slots <<= 1;
        hc = rf_calloc(1, sizeof(*hc));
        for (int i = 0; i < STRIPES; i++)
                pthread_mutex_init(&hc->stripe[i].lock, NULL);
        hc->slot = rf_calloc(slots, sizeof(*hc->slot));
        for (size_t i = 0; i < slots; i++)
                hc->slot[i].gen = 1;
        hc->mask = (uint32_t)(slots - 1);
        hc->max_bytes = max_bytes;
        /* The slots count against the budget too. */
        atomic_init(&hc->bytes, slots * sizeof(*hc->slot));
        hc->max_entry = max_bytes / 1000 < 1024 ? 1024 : max_bytes / 1000;
        return hc;
}

void rf_hide_cache_destroy(rf_hide_cache_t *hc)
{
        if (!hc)
                return;
        for (size_t i = 0; i <= hc->mask; i++)
                rf_hides_release(hc->slot[i].h);
        for (int i = 0; i < STRIPES; i++)
                pthread_mutex_destroy(&hc->stripe[i].lock);
        free(hc->slot);
        free(hc);
}

static uint32_t slot_of(const rf_hide_cache_t *hc, const char *user, size_t len)
{
        return (uint32_t)rf_hash_bytes(user, len) & hc->mask;
}

static hc_stripe_t *stripe_of(rf_hide_cache_t *hc, uint32_t slot)
{
        return &hc->stripe[slot % STRIPES];
}

/* Under the slot's lock. */
static void slot_drop(rf_hide_cache_t *hc, hc_slot_t *s)
{
        if (!s->h)
                return;
        atomic_fetch_sub(&hc->bytes, s->h->bytes);
        atomic_fetch_sub(&hc->entries, 1);
        rf_hides_release(s->h);
        s->h = NULL;
}

int rf_hide_cache_get(rf_hide_cache_t *hc, const char *user, rf_hides_t **hp,
                      uint64_t *gen)
{
        uint32_t i = slot_of(hc, user, strlen(user));
        hc_stripe_t *st = stripe_of(hc, i);
        hc_slot_t *s = &hc->slot[i];
        int hit = 0;

        pthread_mutex_lock(&st->lock);
        /* A busy slot holds nothing (a begin drops, a put under gen 0
         * keeps nothing). */
        if (s->h && !strcmp(s->h->user, user)) {
                *hp = rf_hides_share(s->h);
                hit = 1;
                st->hits++;
        } else {
                *gen = s->busy ? 0 : s->gen;
                st->misses++;
        }
        pthread_mutex_unlock(&st->lock);
        return hit;
}

void rf_hide_cache_put(rf_hide_cache_t *hc, const char *user, uint64_t gen,
                       rf_hides_t *h)
{
        uint32_t i = slot_of(hc, user, strlen(user));
        hc_stripe_t *st = stripe_of(hc, i);
        hc_slot_t *s = &hc->slot[i];

        if (!gen || h->bytes > hc->max_entry)
                return;
        pthread_mutex_lock(&st->lock);
        /* A begin since the reader took gen moved it: what it read may be
         * older than that batch's commit. */
        if (s->gen == gen) {
                slot_drop(hc, s);
                if (atomic_load(&hc->bytes) + h->bytes <= hc->max_bytes) {
                        s->h = rf_hides_share(h);
                        atomic_fetch_add(&hc->bytes, h->bytes);
                        atomic_fetch_add(&hc->entries, 1);
                }
        }
        pthread_mutex_unlock(&st->lock);
}

uint32_t rf_hide_cache_begin(rf_hide_cache_t *hc, const char *user, size_t len)
{
        uint32_t i = slot_of(hc, user, len);
        hc_stripe_t *st = stripe_of(hc, i);
        hc_slot_t *s = &hc->slot[i];

        pthread_mutex_lock(&st->lock);
        s->busy++;
        s->gen++;
        slot_drop(hc, s);
        pthread_mutex_unlock(&st->lock);
        return i;
}

void rf_hide_cache_end(rf_hide_cache_t *hc, uint32_t slot)
{
        hc_stripe_t *st = stripe_of(hc, slot);

        /* Nothing was kept while busy, and every gen taken before the
         * begin is stale: the slot is right again as it stands. */
        pthread_mutex_lock(&st->lock);
        if (hc->slot[slot].busy) /* never 0 here, unless misused */
                hc->slot[slot].busy--;
        pthread_mutex_unlock(&st->lock);
}

void rf_hide_cache_clear(rf_hide_cache_t *hc)
{
        if (!hc)
                return;
        for (uint32_t i = 0; i <= hc->mask; i++) {
                hc_stripe_t *st = stripe_of(hc, i);
                pthread_mutex_lock(&st->lock);
                hc->slot[i].gen++;
                slot_drop(hc, &hc->slot[i]);
                pthread_mutex_unlock(&st->lock);
        }
}

void rf_hide_cache_stats(rf_hide_cache_t *hc, rf_hide_cache_stats_t *out)
{
        memset(out, 0, sizeof(*out));
        if (!hc)
                return;
        for (int i = 0; i < STRIPES; i++) {
                pthread_mutex_lock(&hc->stripe[i].lock);
                out->hits += hc->stripe[i].hits;
                out->misses += hc->stripe[i].misses;
                pthread_mutex_unlock(&hc->stripe[i].lock);
        }
        out->entries = atomic_load(&hc->entries);
        out->bytes = atomic_load(&hc->bytes);
        out->max_bytes = hc->max_bytes;
}
