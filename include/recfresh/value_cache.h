/*
 * recfresh - a bounded cache of values a writer reads and rewrites through
 * batches (store.h): the recompute queue's pending entries.
 *
 * A fan-out adds a reason to the pending entry of every subject it meets,
 * and each add read the entry back from RocksDB: through the batch, the
 * memtables and the level-0 files the queue's rewrites fill (a seventh of a
 * fan-out's CPU, profiled). The writer knows every value it wrote, so it
 * keeps them here and reads RocksDB only for the ones it has not met.
 *
 * A cached value is what a read through a batch would return:
 *   - Writes through a batch are cached as that batch's until
 *     rf_vcache_committed(); a read through another batch (or the store)
 *     does not see them, as RocksDB would not.
 *   - The cache holds the writes of one open batch at a time: a write
 *     through another batch while one has uncommitted writes here turns
 *     the cache off until rf_vcache_quiet() (recfresh's writer threads
 *     commit each batch before the next one writes: this does not happen
 *     in use, and nothing but speed depends on it).
 *   - A batch dropped uncommitted (rf_store_drops() moved) forgets
 *     everything at the next lookup, whoever dropped it.
 *   - Every write of the cached keys must go through rf_vcache_put():
 *     the cache does not see writes made around it.
 *
 * The writer may keep a note with each value it writes (the recompute
 * queue: how many merge operands lie over the last whole value). A value
 * read from the store has note 0: what the writer did before the cache met
 * the key is not known.
 *
 * Direct-mapped (a key evicts the one in its slot), at most max_bytes of
 * keys and values, plus a 48-byte slot per 512 bytes of the budget (about
 * 9% more). Not thread-safe: the writer thread owns it.
 */
#ifndef RECFRESH_VALUE_CACHE_H
#define RECFRESH_VALUE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "recfresh/store.h"

typedef struct rf_vcache rf_vcache_t;

/** @returns a cache of at most \p max_bytes, or NULL for 0 (every lookup
 *  misses). */
rf_vcache_t *rf_vcache_new(rf_store_t *st, size_t max_bytes);
void rf_vcache_destroy(rf_vcache_t *c);

/**
 * Looks up \p key as a read through \p txn (NULL: the committed store)
 * would see it.
 * @returns 1 with *val and *vlen set (*val NULL: the key has no value) and
 * *note (if \p note is not NULL) the writer's note, or 0 when not known.
 * *val stays valid until the next call on the cache.
 */
int rf_vcache_get(rf_vcache_t *c, const rf_txn_t *txn, const char *key,
                  size_t klen, const char **val, size_t *vlen, uint32_t *note);

/** \p key was written through \p txn: \p val (NULL: deleted), with the
 *  writer's \p note. */
void rf_vcache_put(rf_vcache_t *c, const rf_txn_t *txn, const char *key,
                   size_t klen, const char *val, size_t vlen, uint32_t note);

/** What a read of \p key through \p txn returned (\p val NULL: none):
 *  kept, with note 0, unless a batch other than \p txn has writes here. */
void rf_vcache_fill(rf_vcache_t *c, const rf_txn_t *txn, const char *key,
                    size_t klen, const char *val, size_t vlen);

/** The batch of \p txn committed (NULL: the one with writes here, if any):
 *  its writes are what every reader sees now. */
void rf_vcache_committed(rf_vcache_t *c, const rf_txn_t *txn);

/** The batch of \p txn (NULL: the open one) was dropped uncommitted: its
 *  writes are forgotten, and no batch is open here. */
void rf_vcache_dropped(rf_vcache_t *c, const rf_txn_t *txn);

/** No batch holds uncommitted writes of the cached keys now: a cache that
 *  turned itself off (two batches wrote at once) starts again, empty. */
void rf_vcache_quiet(rf_vcache_t *c);

/** The open batch whose writes the cache holds, or NULL. */
const rf_txn_t *rf_vcache_open(const rf_vcache_t *c);

/** Forgets everything. */
void rf_vcache_clear(rf_vcache_t *c);

/** Lookups answered and asked, memory held (for tests and metrics). */
typedef struct rf_vcache_stats {
        uint64_t hits, lookups;
        size_t bytes;       /* keys and values held */
        size_t table_bytes; /* the slots and the list of written ones */
} rf_vcache_stats_t;
void rf_vcache_stats(const rf_vcache_t *c, rf_vcache_stats_t *out);

#endif /* RECFRESH_VALUE_CACHE_H */
