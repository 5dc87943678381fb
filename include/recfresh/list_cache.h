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
 *   - Every write of a version goes through a store batch (store.h), and
 *     the batch's commit forgets each version key it wrote, after the
 *     write (a consent purge's deletes, a staged list); an ingest of
 *     versions, or a secondary's catch-up, clears the cache. So nothing
 *     deleted or rewritten is served from here, and a purged subject's
 *     lists leave memory at the purge's commit. A staged run's writes
 *     forget only their own keys: the active run's entries stay.
 *   - A reader caches what it read only if no forget or clear came after
 *     it took the generation (rf_list_cache_gen()), before its store read:
 *     a read of the old value never outlives the write that replaced it.
 *   - Incremental lists (the lists column family) are never cached. A
 *     newer one wins over the run's version (runs.h), so a read looks it
 *     up, unless its cached version already beat it under the token the
 *     read takes before that lookup would be (rf_list_cache_inc_token()).
 *     Every batch that writes an incremental list moves the token of its
 *     key's slot after its commit; an ingest into the lists column
 *     family, or a catch-up, moves them all.
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

/** @returns the generation to take before a store read whose result may
 *  be cached (rf_list_cache_put()). */
uint64_t rf_list_cache_gen(rf_list_cache_t *lc);

/**
 * The list cached for \p key, holding at least \p min_items items (or all
 * of them): *listp is a shared reference (release it with
 * rf_list_destroy()) and *total the stored list's item count (the list
 * may hold only its head). *inc (if not NULL) gets the token under which
 * the version beat its incremental list, or 0.
 * @returns 1 on a hit, 0 on a miss.
 */
int rf_list_cache_get(rf_list_cache_t *lc, const char *key, size_t klen,
                      size_t min_items, rf_list_t **listp, size_t *total,
                      uint64_t *inc);

/**
 * Caches \p list, decoded from the value read for \p key after taking
 * generation \p gen, with one more reference; the caller keeps its own.
 * \p inc: the incremental-list token taken before the lookup that found
 * the version wins, or 0. Nothing is cached if a forget or a clear came
 * since. Replaces an entry of the key. A list larger than an eighth of a
 * shard is not kept.
 */
void rf_list_cache_put(rf_list_cache_t *lc, const char *key, size_t klen,
                       uint64_t gen, rf_list_t *list, size_t total,
                       uint64_t inc);

/** The token of incremental list \p lkey (a lists column family key):
 *  take it before looking the list up. While it stays the same, no batch
 *  has written that list since (a write to another key of the same slot
 *  moves it too). Never 0; 0 for a NULL cache. */
uint64_t rf_list_cache_inc_token(rf_list_cache_t *lc, const char *lkey,
                                 size_t klen);

/** Records \p inc (taken before the lookup that found the version at
 *  \p key beats its incremental list) in \p key's entry, if any. */
void rf_list_cache_set_inc(rf_list_cache_t *lc, const char *key, size_t klen,
                           uint64_t inc);

/** Moves \p lkey's token: a batch wrote that incremental list. Call after
 *  the write. This and rf_list_cache_inc_all() take NULL. */
void rf_list_cache_inc_written(rf_list_cache_t *lc, const char *lkey,
                               size_t klen);

/** Moves every token (incremental lists written in bulk). */
void rf_list_cache_inc_all(rf_list_cache_t *lc);

/** Drops \p key's entry: its version was written. Call after the write.
 *  This, rf_list_cache_clear() and rf_list_cache_gen() take NULL. */
void rf_list_cache_forget(rf_list_cache_t *lc, const char *key, size_t klen);

/** Drops every entry (versions written in bulk). */
void rf_list_cache_clear(rf_list_cache_t *lc);

typedef struct rf_list_cache_stats {
        uint64_t hits, misses, evictions;
        size_t entries, bytes, max_bytes;
} rf_list_cache_stats_t;

void rf_list_cache_stats(rf_list_cache_t *lc, rf_list_cache_stats_t *out);

#endif /* RECFRESH_LIST_CACHE_H */
