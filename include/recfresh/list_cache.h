/*
 * recfresh - the read path's cache of decoded run versions.
 *
 * A read of a list in a batch run found the version with a RocksDB point
 * lookup (index block, data block, two cache lookups and a copy) and then
 * decoded its head: over half of a warm read's CPU, profiled. A run's
 * version never changes while the run exists, so its decoded head can be
 * kept and shared by the reads that follow.
 *
 * What keeps a cached list right:
 *   - The key is the version's key, which holds the run id: a read of
 *     another run (after an activation or a rollback) looks up another key.
 *   - Each entry holds the versions column family's epoch
 *     (rf_store_cf_epoch()) read before the lookup that filled it; a lookup
 *     with a newer epoch misses and drops it. Every write of that column
 *     family (a run staged or deleted, a consent purge) moves the epoch, so
 *     nothing deleted or rewritten is served from here. The writer sweeps
 *     older entries out once the epoch moves (rf_list_cache_sweep()), so a
 *     purged subject's lists leave memory too, read or not. While a run
 *     stages, each of its commits empties the cache.
 *   - Incremental lists (the lists column family) are never cached: each
 *     read still looks one up, and a newer one wins as before (runs.h).
 *   - Tombstones, hides and consent are checked on every read, as always:
 *     the cache holds what was stored, not what survives.
 *
 * At most max_bytes of decoded lists and keys; least recently used first
 * out. Sixteen shards, each under its own mutex; a hit hands out a shared
 * reference (rf_list_share()), which the reader drops with
 * rf_list_destroy(). Any thread.
 */
#ifndef RECFRESH_LIST_CACHE_H
#define RECFRESH_LIST_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "recfresh/list.h"

typedef struct rf_list_cache rf_list_cache_t;

/** @returns a cache of at most \p max_bytes, or NULL for 0 (no cache). */
rf_list_cache_t *rf_list_cache_new(size_t max_bytes);
void rf_list_cache_destroy(rf_list_cache_t *lc);

/**
 * The list cached for \p key under \p epoch, holding at least \p min_items
 * items (or all of them): *listp is a shared reference (release it with
 * rf_list_destroy()) and *total the stored list's item count (the list may
 * hold only its head).
 * @returns 1 on a hit, 0 on a miss (an entry of an older epoch is dropped).
 */
int rf_list_cache_get(rf_list_cache_t *lc, const char *key, size_t klen,
                      uint64_t epoch, size_t min_items, rf_list_t **listp,
                      size_t *total);

/**
 * Caches \p list (decoded from the value read for \p key after reading
 * \p epoch) with one more reference; the caller keeps its own. Replaces
 * an entry of the key unless that one is of a newer epoch. A list larger
 * than an eighth of a shard is not kept.
 */
void rf_list_cache_put(rf_list_cache_t *lc, const char *key, size_t klen,
                       uint64_t epoch, rf_list_t *list, size_t total);

/**
 * Frees every entry older than \p epoch, once per epoch (the call is one
 * atomic load when the epoch has not moved). The daemon's loop calls it
 * after its commits.
 */
void rf_list_cache_sweep(rf_list_cache_t *lc, uint64_t epoch);

typedef struct rf_list_cache_stats {
        uint64_t hits, misses, evictions;
        size_t entries, bytes, max_bytes;
} rf_list_cache_stats_t;

void rf_list_cache_stats(rf_list_cache_t *lc, rf_list_cache_stats_t *out);

#endif /* RECFRESH_LIST_CACHE_H */
