/*
 * recfresh - the entities under a global tombstone, in memory (see
 * tomb_set.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/strset.h"
#include "recfresh/tomb_set.h"

/* The users who may have hides: 2^HIDERS_LG bits (hider_*()). */
#define HIDERS_LG   25
#define HIDERS_BITS ((size_t)1 << HIDERS_LG)

struct rf_tombset {
        pthread_rwlock_t lock;
        rf_strset_t banned;    /* items whose ban is in force (exact) */
        rf_strset_t stocked;   /* items with a stock state in force */
        rf_strset_t campaigns; /* expired (exact) */
        rf_strset_t consent;   /* revocations in force (exact), by
                                * consent_id(): hex pseudonym, scope */
        /* The stock decisions of the items in `stocked`, exact: items out
         * of stock everywhere (their global state in force), and per
         * (item, region) with a state of its own, whether the newer of the
         * global and the region's state says out or in (pair_key()).
         * A region with no state of its own follows the global one. */
        rf_strset_t stock_gout, stock_rout, stock_rin;
        struct stock_map *stock; /* every state of those items */
        /* A filter in front of `banned` and `stocked` (filter_*()):
         * the bit of each member's hash. */
        uint64_t *fbits;
        unsigned fshift; /* 64 - log2(bits): a hash's top bits pick its bit */
        size_t fsize;    /* bits */
        size_t fstale;   /* members deleted since it was built */
        /* The users who may have hides (hider_*()): the bit of each one's
         * hash, only ever set, atomic: no lock. */
        _Atomic uint64_t *hbits;
        _Atomic int hiders_ok; /* 0: not loaded yet, every user "may" */
        uint64_t hiders_store; /* rf_store_id() of the store scanned */
        /* A member of `stocked` absent from `stock` is pending: its first
         * state in force was written and its decisions are not set yet
         * (asked, it goes to the store) until rf_tombset_stock_refresh(). */
        int valid; /* 0: loading failed, every answer "maybe" */
};

static void map_free(struct stock_map *m);

rf_tombset_t *rf_tombset_new(void)
{
        rf_tombset_t *ts = rf_calloc(1, sizeof(*ts));
        pthread_rwlockattr_t attr;

        /* Reads hold the lock for one lookup; the one writer must not
         * starve behind them. */
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(
            &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&ts->lock, &attr);
        pthread_rwlockattr_destroy(&attr);
        ts->hbits = rf_calloc(HIDERS_BITS / 64, sizeof(*ts->hbits));
        return ts;
}

void rf_tombset_destroy(rf_tombset_t *ts)
{
        if (!ts)
                return;
        rf_strset_clear(&ts->banned);
        rf_strset_clear(&ts->stocked);
        rf_strset_clear(&ts->campaigns);
        rf_strset_clear(&ts->consent);
        rf_strset_clear(&ts->stock_gout);
        rf_strset_clear(&ts->stock_rout);
        rf_strset_clear(&ts->stock_rin);
        map_free(ts->stock);
        free(ts->fbits);
        free((void *)ts->hbits);
        pthread_rwlock_destroy(&ts->lock);
        free(ts);
}

/* ---- the item filter ------------------------------------------------------
 * Most entries a read checks are in neither `banned` nor `stocked`, and
 * asking both sets costs a probe each in tables of megabytes. One bit per
 * member's hash, in a table that fits a core's cache, answers most of those
 * entries with "in neither" (16 bits a member: 6% of them still go on to
 * the sets). A deleted member leaves its bit set until the filter is built
 * again, once the deleted outnumber the members. Callers hold the write
 * lock, or the read lock to ask. */

#define FILTER_BITS_PER_MEMBER 16
#define FILTER_MIN_BITS        ((size_t)1 << 16) /* 8 KiB */

static size_t filter_pos(const rf_tombset_t *ts, uint64_t h)
{
        return (size_t)(h >> ts->fshift);
}

static void filter_build(rf_tombset_t *ts)
{
        const rf_strset_t *sets[2] = { &ts->banned, &ts->stocked };
        size_t members = ts->banned.cnt + ts->stocked.cnt;
        size_t bits = FILTER_MIN_BITS;
        unsigned lg = 16;

        while (bits < members * FILTER_BITS_PER_MEMBER) {
                bits <<= 1;
                lg++;
        }
        free(ts->fbits);
        ts->fbits = rf_calloc(bits / 64, sizeof(uint64_t));
        ts->fsize = bits;
        ts->fshift = 64 - lg;
        ts->fstale = 0;
        for (int i = 0; i < 2; i++)
                for (size_t j = 0; j < sets[i]->size; j++)
                        if (sets[i]->slot[j].str) {
                                size_t b =
                                    filter_pos(ts, sets[i]->slot[j].hash);
                                ts->fbits[b / 64] |= 1ull << (b % 64);
                        }
}

/* \p id was added to `banned` or `stocked`. */
static void filter_added(rf_tombset_t *ts, const char *id)
{
        size_t members = ts->banned.cnt + ts->stocked.cnt;

        if (!ts->fbits || members * FILTER_BITS_PER_MEMBER > ts->fsize) {
                filter_build(ts); /* grows with the sets */
                return;
        }
        size_t b = filter_pos(ts, rf_hash_str(id));
        ts->fbits[b / 64] |= 1ull << (b % 64);
}

/* A member left `banned` or `stocked`. */
static void filter_deleted(rf_tombset_t *ts)
{
        if (++ts->fstale > ts->banned.cnt + ts->stocked.cnt + 1024)
                filter_build(ts);
}

/* @returns 0 if the item of hash \p h is surely in neither set. */
static int filter_maybe(const rf_tombset_t *ts, uint64_t h)
{
        size_t b;

        if (!ts->fbits)
                return 1;
        b = filter_pos(ts, h);
        return (int)((ts->fbits[b / 64] >> (b % 64)) & 1);
}

static int filtered(const rf_tombset_t *ts, const rf_strset_t *set)
{
        return set == &ts->banned || set == &ts->stocked;
}

/* Adds \p id to \p set, and to the filter if the set is one it covers. */
static void member_add(rf_tombset_t *ts, rf_strset_t *set, const char *id)
{
        if (rf_strset_add(set, id) && filtered(ts, set))
                filter_added(ts, id);
}

static void member_del(rf_tombset_t *ts, rf_strset_t *set, const char *id)
{
        if (rf_strset_del(set, id) && filtered(ts, set))
                filter_deleted(ts);
}

/* Writes ".scope" after the 32 hex digits of a consent id. */
static void consent_scope_id(char out[40], int scope)
{
        unsigned v = (unsigned)scope & 0xff;
        char *p = out + 32;

        /* On the read path: no printf. */
        *p++ = '.';
        if (v >= 100)
                *p++ = (char)('0' + v / 100);
        if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p = '\0';
}

/* A consent state's id in the set: the key's pseudonym in hex and its
 * scope in decimal (the key is binary). */
static void consent_id(const unsigned char pn[16], int scope, char out[40])
{
        rf_hex(pn, 16, out);
        consent_scope_id(out, scope);
}

/* The id in tombstone key \p key of \p klen bytes, up to the first NUL
 * (a stock key goes on with its region) into \p out; a consent key's
 * consent_id(). @returns 0 or -1. */
static int key_id(const char *key, size_t klen, char *out, size_t size)
{
        if (klen == 18 && key[0] == RF_TOMB_CONSENT && size >= 40) {
                consent_id((const unsigned char *)key + 1,
                           (unsigned char)key[17], out);
                return 0;
        }
        const char *end = memchr(key + 1, '\0', klen - 1);
        size_t n = (end ? (size_t)(end - key) : klen) - 1;

        if (klen < 2 || n >= size)
                return -1;
        memcpy(out, key + 1, n);
        out[n] = '\0';
        return 0;
}

/* ---- stock decisions
 * -------------------------------------------------------*/

/* A state as rf_tomb_t holds it, its strings allocated to size (a member's
 * states live as long as it does; an rf_tomb_t is 280 bytes). */
typedef struct stock_state {
        char *region; /* "" for the global state */
        char *event_id;
        int64_t occurred_at;
        int active;
} stock_state_t;

static void state_set(stock_state_t *s, const rf_tomb_t *t)
{
        free(s->event_id);
        s->event_id = rf_strdup(t->event_id);
        s->occurred_at = t->occurred_at;
        s->active = t->active;
}

typedef struct stock_item {
        stock_state_t *v;
        size_t cnt;
        int any_active;
} stock_item_t;

static void stock_item_clear(stock_item_t *si)
{
        for (size_t i = 0; i < si->cnt; i++) {
                free(si->v[i].region);
                free(si->v[i].event_id);
        }
        free(si->v);
        memset(si, 0, sizeof(*si));
}

static void stock_item_add(stock_item_t *si, const char *region, size_t rlen,
                           const rf_tomb_t *t)
{
        si->v = rf_realloc(si->v, (si->cnt + 1) * sizeof(*si->v));
        si->v[si->cnt].region = rf_strndup(region, rlen);
        si->v[si->cnt].event_id = NULL;
        state_set(&si->v[si->cnt], t);
        si->cnt++;
        si->any_active |= t->active;
}

/* Sets the state of \p region ("" global) in \p si to \p t. */
static void stock_item_set(stock_item_t *si, const char *region, size_t rlen,
                           const rf_tomb_t *t)
{
        size_t i = 0;

        for (; i < si->cnt; i++)
                if (strlen(si->v[i].region) == rlen &&
                    !memcmp(si->v[i].region, region, rlen))
                        break;
        if (i == si->cnt) {
                stock_item_add(si, region, rlen, t);
                return;
        }
        state_set(&si->v[i], t);
        si->any_active = 0;
        for (i = 0; i < si->cnt; i++)
                si->any_active |= si->v[i].active;
}

/* The states of the items with one in force, by item: a stock write then
 * needs no store read but for an item's first state in force. */
typedef struct stock_node {
        char *item;
        stock_item_t si;
        struct stock_node *next;
} stock_node_t;

typedef struct stock_map {
        stock_node_t **b;
        size_t nb, cnt;
} stock_map_t;

static stock_node_t **map_slot(stock_map_t *m, const char *item)
{
        stock_node_t **p = &m->b[rf_hash_str(item) & (m->nb - 1)];

        while (*p && strcmp((*p)->item, item) != 0)
                p = &(*p)->next;
        return p;
}

static stock_item_t *map_find(stock_map_t *m, const char *item)
{
        if (!m || !m->nb)
                return NULL;
        stock_node_t *n = *map_slot(m, item);
        return n ? &n->si : NULL;
}

/* Takes \p si (left empty) as the states of \p item. */
static void map_put(stock_map_t *m, const char *item, stock_item_t *si)
{
        if (m->cnt >= m->nb) {
                size_t nb = m->nb ? m->nb * 2 : 64;
                stock_node_t **b = rf_calloc(nb, sizeof(*b));
                for (size_t i = 0; i < m->nb; i++)
                        for (stock_node_t *n = m->b[i], *nx; n; n = nx) {
                                nx = n->next;
                                stock_node_t **p =
                                    &b[rf_hash_str(n->item) & (nb - 1)];
                                n->next = *p;
                                *p = n;
                        }
                free(m->b);
                m->b = b;
                m->nb = nb;
        }
        stock_node_t **p = map_slot(m, item);
        if (!*p) {
                *p = rf_calloc(1, sizeof(**p));
                (*p)->item = rf_strdup(item);
                m->cnt++;
        }
        stock_item_clear(&(*p)->si);
        (*p)->si = *si;
        memset(si, 0, sizeof(*si));
}

static void map_del(stock_map_t *m, const char *item)
{
        if (!m->nb)
                return;
        stock_node_t **p = map_slot(m, item), *n = *p;
        if (!n)
                return;
        *p = n->next;
        stock_item_clear(&n->si);
        free(n->item);
        free(n);
        m->cnt--;
}

static void map_free(stock_map_t *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->nb; i++)
                for (stock_node_t *n = m->b[i], *nx; n; n = nx) {
                        nx = n->next;
                        stock_item_clear(&n->si);
                        free(n->item);
                        free(n);
                }
        free(m->b);
        free(m);
}

/* The key of (\p item, \p region) in the pair sets: the item's length in
 * decimal, ':', the item, the region. The length keeps it unambiguous
 * whatever bytes the ids hold. Written into \p buf (\p size bytes) if it
 * fits, else allocated: the caller frees it if it is not \p buf. */
static char *pair_key(char *buf, size_t size, const char *item,
                      const char *region)
{
        size_t ilen = strlen(item), rlen = strlen(region), n = 0;
        char num[24];

        /* On the read path: no printf. */
        for (size_t v = ilen; n == 0 || v; v /= 10)
                num[n++] = (char)('0' + v % 10);
        size_t need = n + 1 + ilen + rlen + 1;
        char *k = need <= size ? buf : rf_malloc(need), *p = k;
        while (n)
                *p++ = num[--n];
        *p++ = ':';
        memcpy(p, item, ilen);
        memcpy(p + ilen, region, rlen + 1);
        return k;
}

/* Sets the decisions of \p item from all its states \p si (the lock held,
 * or the sets not shared yet): those of an item with no state in force are
 * dropped, as are its states then. */
static void stock_decide(rf_strset_t *gout, rf_strset_t *rout, rf_strset_t *rin,
                         const char *item, const stock_item_t *si)
{
        const stock_state_t *gs = NULL;
        rf_tomb_t gt, *g = NULL;
        char buf[512];

        for (size_t i = 0; i < si->cnt; i++)
                if (!*si->v[i].region)
                        gs = &si->v[i];
        if (gs) { /* as stored, for rf_tomb_newer() */
                g = &gt;
                g->active = gs->active;
                g->occurred_at = gs->occurred_at;
                snprintf(g->event_id, sizeof(g->event_id), "%s", gs->event_id);
        }
        if (si->any_active && g && g->active)
                rf_strset_add(gout, item);
        else
                rf_strset_del(gout, item);
        for (size_t i = 0; i < si->cnt; i++) {
                const stock_state_t *r = &si->v[i];
                if (!*r->region)
                        continue;
                char *k = pair_key(buf, sizeof(buf), item, r->region);
                /* as rf_stock_check_out(): the newer state decides */
                int out = g && !rf_tomb_newer(g, r->occurred_at, r->event_id)
                              ? g->active
                              : r->active;
                if (!si->any_active) {
                        rf_strset_del(rout, k);
                        rf_strset_del(rin, k);
                } else {
                        rf_strset_add(out ? rout : rin, k);
                        rf_strset_del(out ? rin : rout, k);
                }
                if (k != buf)
                        free(k);
        }
}

/* Reads every stock state of \p item through \p txn (NULL: committed).
 * @returns 0 or a store error. */
static int stock_read(rf_store_t *st, rf_txn_t *txn, const char *item,
                      stock_item_t *si)
{
        rf_buf_t k = { 0 };
        int r;

        rf_key_stock(&k, item, ""); /* "S" item \0: every region */
        rf_iter_t *it = rf_iter_new(st, txn, RF_CF_TOMBSTONES, k.data, k.len);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *key = rf_iter_key(it, &klen);
                const char *val = rf_iter_value(it, &vlen);
                rf_tomb_t t;
                if (rf_tomb_decode(val, vlen, &t) == 0)
                        stock_item_add(si, key + k.len, klen - k.len, &t);
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        rf_buf_free(&k);
        return r;
}

/* The stock decisions of every item with a stock state in force. Keys
 * sort by item, each item's global state first. */
static int stock_load(rf_store_t *st, rf_strset_t *gout, rf_strset_t *rout,
                      rf_strset_t *rin, stock_map_t *map)
{
        const char kind = RF_TOMB_STOCK;
        rf_iter_t *it = rf_iter_new(st, NULL, RF_CF_TOMBSTONES, &kind, 1);
        stock_item_t si = { 0 };
        rf_buf_t item = { 0 };
        int r;

        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                const char *nul = memchr(k + 1, '\0', klen - 1);
                rf_tomb_t t;
                if (klen < 2 || !nul || rf_tomb_decode(v, vlen, &t) != 0)
                        continue;
                size_t ilen = (size_t)(nul - k - 1);
                if (!item.len || item.len - 1 != ilen ||
                    memcmp(item.data, k + 1, ilen) != 0) {
                        if (item.len) {
                                stock_decide(gout, rout, rin, item.data, &si);
                                if (si.any_active)
                                        map_put(map, item.data, &si);
                        }
                        stock_item_clear(&si);
                        rf_buf_reset(&item);
                        rf_buf_append(&item, k + 1, ilen);
                        rf_buf_append(&item, "", 1);
                }
                stock_item_add(&si, nul + 1, klen - (size_t)(nul + 1 - k), &t);
        }
        if (item.len) {
                stock_decide(gout, rout, rin, item.data, &si);
                if (si.any_active)
                        map_put(map, item.data, &si);
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        stock_item_clear(&si);
        rf_buf_free(&item);
        return r;
}

/* ---- the users who may have hides ----------------------------------------
 * A read looks up its user's hides: a RocksDB point lookup, which for the
 * many users without any finds nothing, after the filters of every level
 * of the tombstones column family (a fifth of an in-process read). One bit
 * per hash of a user with a hide key answers "surely none" for most of the
 * others. The bits are set from the store's scan at the first load, and
 * then by the store as each batch writes a hide key, before its commit
 * (rf_tombset_hide_written()). They are never cleared: a user whose hides
 * all went keeps the bit (a lookup that finds nothing, as before) until the
 * process restarts. A rolled-back batch's bits stay too: more lookups,
 * never fewer. 2^25 bits (4 MiB): with a million users with hides, 3% of
 * the others still look up. */

static void hider_set(rf_tombset_t *ts, const char *user, size_t len)
{
        size_t pos = (size_t)(rf_hash_bytes(user, len) >> (64 - HIDERS_LG));

        atomic_fetch_or(&ts->hbits[pos / 64], (uint64_t)1 << (pos % 64));
}

void rf_tombset_hide_written(rf_tombset_t *ts, const char *key, size_t klen)
{
        size_t len = rf_key_hide_user(key, klen);

        if (ts && len)
                hider_set(ts, key + 1, len);
}

int rf_tombset_may_hide(rf_tombset_t *ts, const char *user)
{
        if (!ts || !atomic_load_explicit(&ts->hiders_ok, memory_order_acquire))
                return 1;
        size_t pos =
            (size_t)(rf_hash_bytes(user, strlen(user)) >> (64 - HIDERS_LG));
        return (atomic_load_explicit(&ts->hbits[pos / 64],
                                     memory_order_acquire) >>
                (pos % 64)) &
               1;
}

/* Sets the bit of every user with a hide key in the store, once: after
 * that the store's writes set them. A user's other keys are skipped with
 * a seek past "'H' user \0" ("'H' user \1" sorts after them all). */
static int hiders_load(rf_tombset_t *ts, rf_store_t *st)
{
        static const char kind = RF_TOMB_HIDE;
        rf_iter_t *it;
        rf_buf_t next = { 0 };
        int err;

        if (atomic_load(&ts->hiders_ok) && ts->hiders_store == rf_store_id(st))
                return 0; /* the store's writes set the bits since */
        /* Another store's bits say nothing of this one's users. */
        atomic_store(&ts->hiders_ok, 0);
        it = rf_iter_new(st, NULL, RF_CF_TOMBSTONES, &kind, 1);
        while (rf_iter_valid(it)) {
                size_t klen, len;
                const char *k = rf_iter_key(it, &klen);
                if (!(len = rf_key_hide_user(k, klen))) {
                        rf_iter_next(it);
                        continue;
                }
                hider_set(ts, k + 1, len);
                rf_buf_reset(&next);
                rf_buf_append(&next, k, len + 1);
                rf_buf_append(&next, "\1", 1);
                rf_iter_seek(it, next.data, next.len);
        }
        err = rf_iter_status(it);
        rf_iter_destroy(it);
        rf_buf_free(&next);
        if (!err) {
                ts->hiders_store = rf_store_id(st);
                atomic_store_explicit(&ts->hiders_ok, 1, memory_order_release);
        }
        return err;
}

int rf_tombset_load(rf_tombset_t *ts, rf_store_t *st)
{
        static const char kinds[] = { RF_TOMB_BAN, RF_TOMB_STOCK,
                                      RF_TOMB_CAMPAIGN, RF_TOMB_CONSENT };
        rf_strset_t sets[4] = { { 0 } };
        int err = 0;

        for (size_t i = 0; i < sizeof(kinds) && !err; i++) {
                rf_iter_t *it =
                    rf_iter_new(st, NULL, RF_CF_TOMBSTONES, &kinds[i], 1);
                for (; rf_iter_valid(it); rf_iter_next(it)) {
                        size_t klen, vlen;
                        const char *k = rf_iter_key(it, &klen);
                        const char *v = rf_iter_value(it, &vlen);
                        char id[4097];
                        rf_tomb_t t;
                        if (rf_tomb_decode(v, vlen, &t) || !t.active ||
                            key_id(k, klen, id, sizeof(id)))
                                continue;
                        rf_strset_add(&sets[i], id);
                }
                err = rf_iter_status(it);
                rf_iter_destroy(it);
        }
        rf_strset_t gout = { 0 }, rout = { 0 }, rin = { 0 };
        stock_map_t *map = rf_calloc(1, sizeof(*map));
        if (!err)
                err = stock_load(st, &gout, &rout, &rin, map);
        if (!err)
                err = hiders_load(ts, st);
        if (err) {
                map_free(map);
                map = rf_calloc(1, sizeof(*map));
                for (int i = 0; i < 4; i++)
                        rf_strset_clear(&sets[i]);
                rf_strset_clear(&gout);
                rf_strset_clear(&rout);
                rf_strset_clear(&rin);
                rf_log_error("tombstone",
                             "cannot load the tombstone set: %s; every read "
                             "check goes to the store",
                             rf_err2str(err));
        }
        pthread_rwlock_wrlock(&ts->lock);
        rf_strset_clear(&ts->banned);
        rf_strset_clear(&ts->stocked);
        rf_strset_clear(&ts->campaigns);
        rf_strset_clear(&ts->consent);
        ts->banned = sets[0];
        ts->stocked = sets[1];
        ts->campaigns = sets[2];
        ts->consent = sets[3];
        rf_strset_clear(&ts->stock_gout);
        rf_strset_clear(&ts->stock_rout);
        rf_strset_clear(&ts->stock_rin);
        ts->stock_gout = gout;
        ts->stock_rout = rout;
        ts->stock_rin = rin;
        map_free(ts->stock);
        ts->stock = map;
        filter_build(ts);
        ts->valid = !err;
        pthread_rwlock_unlock(&ts->lock);
        return err;
}

void rf_tombset_changed(rf_tombset_t *ts, const char *key, size_t klen,
                        int active)
{
        char id[4097];
        rf_strset_t *set;

        if (!ts || klen < 2 || key_id(key, klen, id, sizeof(id)))
                return;
        if (key[0] == RF_TOMB_CAMPAIGN)
                set = &ts->campaigns;
        else if (key[0] == RF_TOMB_BAN)
                set = &ts->banned;
        else if (key[0] == RF_TOMB_CONSENT)
                set = &ts->consent;
        else
                return; /* stock: rf_tombset_stock_changed() */
        pthread_rwlock_wrlock(&ts->lock);
        if (active)
                member_add(ts, set, id);
        else
                member_del(ts, set, id);
        pthread_rwlock_unlock(&ts->lock);
}

void rf_tombset_stock_changed(rf_tombset_t *ts, const char *key, size_t klen,
                              const rf_tomb_t *t)
{
        char id[4097];
        stock_item_t *held;

        if (!ts || klen < 2 || key[0] != RF_TOMB_STOCK ||
            key_id(key, klen, id, sizeof(id)))
                return;
        const char *region = key + 1 + strlen(id) + 1;
        size_t rlen = region <= key + klen ? (size_t)(key + klen - region) : 0;

        pthread_rwlock_wrlock(&ts->lock);
        held = ts->valid ? map_find(ts->stock, id) : NULL;
        if (held) {
                stock_item_set(held, region, rlen, t);
                stock_decide(&ts->stock_gout, &ts->stock_rout, &ts->stock_rin,
                             id, held);
                if (!held->any_active) {
                        member_del(ts, &ts->stocked, id);
                        map_del(ts->stock, id);
                }
        } else if (ts->valid && t->active) {
                /* Its first state in force: a member now, pending. Reading
                 * its other states here was a tenth of the apply; the
                 * item's fan-out job reads them (rf_tombset_stock_refresh).
                 * An inactive state of a non-member changes nothing, and
                 * one of a pending item leaves it a member until then. */
                member_add(ts, &ts->stocked, id);
        }
        pthread_rwlock_unlock(&ts->lock);
}

/* rf_tombset_stock_refresh(), and rf_tombset_stock_settle() when \p keep:
 * a failed read leaves the item pending instead of the set unloaded. */
static int stock_settle(rf_tombset_t *ts, rf_store_t *st, rf_txn_t *txn,
                        const char *item, int keep)
{
        stock_item_t si = { 0 };
        int r;

        if (!ts)
                return 0;
        /* Only this thread changes the set: what it reads under the read
         * lock stays true until it takes the write lock. */
        pthread_rwlock_rdlock(&ts->lock);
        int pending = ts->valid && rf_strset_has(&ts->stocked, item) &&
                      !map_find(ts->stock, item);
        pthread_rwlock_unlock(&ts->lock);
        if (!pending)
                return 0;
        r = stock_read(st, txn, item, &si);
        pthread_rwlock_wrlock(&ts->lock);
        if (r != 0 && !keep) {
                ts->valid = 0; /* every answer to the store */
                rf_log_error("tombstone",
                             "cannot read the stock states of %s: %s; every "
                             "read check goes to the store",
                             item, rf_err2str(r));
        } else if (r == 0) {
                stock_decide(&ts->stock_gout, &ts->stock_rout, &ts->stock_rin,
                             item, &si);
                if (si.any_active)
                        map_put(ts->stock, item, &si);
                else
                        member_del(ts, &ts->stocked, item);
        }
        pthread_rwlock_unlock(&ts->lock);
        stock_item_clear(&si);
        return r;
}

int rf_tombset_stock_refresh(rf_tombset_t *ts, rf_store_t *st, rf_txn_t *txn,
                             const char *item)
{
        return stock_settle(ts, st, txn, item, 0);
}

int rf_tombset_stock_settle(rf_tombset_t *ts, rf_store_t *st, rf_txn_t *txn,
                            const char *item)
{
        return stock_settle(ts, st, txn, item, 1);
}

int rf_tombset_stock_out(rf_tombset_t *ts, const char *item, const char *region)
{
        char buf[512],
            *k = *region ? pair_key(buf, sizeof(buf), item, region) : buf;
        int r;

        pthread_rwlock_rdlock(&ts->lock);
        if (!ts->valid)
                r = -1;
        else if (!map_find(ts->stock, item))
                r = -1; /* pending: its decisions are not set yet */
        else if (*region && rf_strset_has(&ts->stock_rout, k))
                r = 1;
        else if (*region && rf_strset_has(&ts->stock_rin, k))
                r = 0;
        else
                r = rf_strset_has(&ts->stock_gout, item);
        pthread_rwlock_unlock(&ts->lock);
        if (k != buf)
                free(k);
        return r;
}

/* What the set knows of one entry's item and campaign; the lock is held. */
static uint8_t entry_flags(const rf_tombset_t *ts, const rf_entry_t *e)
{
        uint64_t h;

        if (!ts->valid)
                return RF_TS_UNKNOWN;
        h = rf_hash_str(e->item_id); /* once for the filter and both sets */
        int maybe = filter_maybe(ts, h);
        return (
            uint8_t)((maybe && rf_strset_has_hash(&ts->banned, e->item_id, h)
                          ? RF_TS_BANNED
                          : 0) |
                     (maybe && rf_strset_has_hash(&ts->stocked, e->item_id, h)
                          ? RF_TS_STOCK
                          : 0) |
                     (*e->campaign_id &&
                              rf_strset_has(&ts->campaigns, e->campaign_id)
                          ? RF_TS_EXPIRED
                          : 0));
}

void rf_tombset_entries(rf_tombset_t *ts, const rf_entry_t *e, size_t n,
                        uint8_t *out)
{
        pthread_rwlock_rdlock(&ts->lock);
        for (size_t i = 0; i < n; i++)
                out[i] = entry_flags(ts, &e[i]);
        pthread_rwlock_unlock(&ts->lock);
}

int rf_tombset_item(rf_tombset_t *ts, const char *item_id)
{
        rf_entry_t e = { .item_id = item_id, .campaign_id = "" };
        uint8_t r;

        rf_tombset_entries(ts, &e, 1, &r);
        return r;
}

int rf_tombset_campaign(rf_tombset_t *ts, const char *campaign_id)
{
        rf_entry_t e = { .item_id = "", .campaign_id = campaign_id };
        uint8_t r;

        rf_tombset_entries(ts, &e, 1, &r);
        return r & (RF_TS_EXPIRED | RF_TS_UNKNOWN);
}

int rf_tombset_consent(rf_tombset_t *ts, const unsigned char pseudonym[16],
                       int scope)
{
        return rf_tombset_consent_any(ts, pseudonym, &scope, 1);
}

int rf_tombset_consent_any(rf_tombset_t *ts, const unsigned char pseudonym[16],
                           const int *scopes, size_t n)
{
        char id[40];
        int r = 0;

        rf_hex(pseudonym, 16, id);
        pthread_rwlock_rdlock(&ts->lock);
        if (!ts->valid)
                r = RF_TS_UNKNOWN;
        for (size_t i = 0; i < n && !r; i++) {
                consent_scope_id(id, scopes[i]);
                if (rf_strset_has(&ts->consent, id))
                        r = RF_TS_REVOKED;
        }
        pthread_rwlock_unlock(&ts->lock);
        return r;
}

size_t rf_tombset_count(rf_tombset_t *ts)
{
        size_t n;

        pthread_rwlock_rdlock(&ts->lock);
        n = ts->banned.cnt + ts->stocked.cnt + ts->campaigns.cnt +
            ts->consent.cnt;
        pthread_rwlock_unlock(&ts->lock);
        return n;
}
