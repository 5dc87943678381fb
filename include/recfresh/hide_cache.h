/*
 * recfresh - the read path's cache of users' hides.
 *
 * Every read looks up its reader's hide summary (tombstone.c), a RocksDB
 * point lookup, and then splits it into the items and creators hidden:
 * with the summary's allocations and copies, a third of a warm in-process
 * read for a reader with hides, profiled. Here the split summary is kept
 * per user and shared by the reads that follow (rf_hides_share()).
 *
 * What keeps a cached summary right: every write of a hide key goes through
 * a store batch (store.h), which tells the cache of the user
 * (rf_hide_cache_begin()) as it writes the key, before its commit, and
 * again once the batch commits or is dropped (rf_hide_cache_end()). Both
 * move the user's slot's generation and the first drops what it holds; in
 * between the slot is busy: no hit, nothing kept. A reader keeps what it
 * read only if the generation it took before its store read
 * (rf_hide_cache_get()) is still the slot's, and the slot not busy. So a
 * summary read before a commit is never served after it, not even in the
 * instant between the commit and its end. An ingest into the tombstones
 * column family, or a secondary's catch-up, clears the cache.
 *
 * Direct-mapped: one entry a slot, a user hashing to a taken slot replaces
 * its entry. max_bytes / 256 slots (24 bytes each), and at most max_bytes
 * in all: slots and entries. A user whose entry would be larger than a
 * thousandth of max_bytes (at least 1 KiB) is never kept. Any thread.
 */
#ifndef RECFRESH_HIDE_CACHE_H
#define RECFRESH_HIDE_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/** A user's active hides, split: immutable once made, shared. */
typedef struct rf_hides {
        _Atomic unsigned refs;
        size_t item_cnt, creator_cnt;
        const char **items;    /* into sum */
        const char **creators; /* into sum */
        size_t bytes;          /* all of it, for the cache's budget */
        const char *user;
        /* then the two arrays, the summary and the user, in one block */
} rf_hides_t;

/** @returns \p user's hides split from summary \p sum (the form of
 *  rf_hide_summary_add(); empty: none), one reference. */
rf_hides_t *rf_hides_new(const char *user, const char *sum, size_t len);

/** @returns \p h with one more reference (NULL stays NULL). */
rf_hides_t *rf_hides_share(rf_hides_t *h);

/** Drops a reference; the last frees. Takes NULL. */
void rf_hides_release(rf_hides_t *h);

typedef struct rf_hide_cache rf_hide_cache_t;

/** @returns a cache of at most \p max_bytes, or NULL for less than 64 KiB
 *  (no cache). */
rf_hide_cache_t *rf_hide_cache_new(size_t max_bytes);
void rf_hide_cache_destroy(rf_hide_cache_t *hc);

/**
 * \p user's cached hides: 1 and *hp a shared reference (release it with
 * rf_hides_release()), or 0 on a miss, with *gen
 * the generation to pass to rf_hide_cache_put() after reading the store
 * (0: the slot is busy, keep nothing).
 */
int rf_hide_cache_get(rf_hide_cache_t *hc, const char *user, rf_hides_t **hp,
                      uint64_t *gen);

/** Keeps \p h for \p user, read from the store
 *  after rf_hide_cache_get() gave \p gen, unless the slot moved since. */
void rf_hide_cache_put(rf_hide_cache_t *hc, const char *user, uint64_t gen,
                       rf_hides_t *h);

/** A batch writes one of \p user's hide keys (\p len bytes): before the
 *  write is queued. @returns the slot, for rf_hide_cache_end(). */
uint32_t rf_hide_cache_begin(rf_hide_cache_t *hc, const char *user, size_t len);

/** The batch that began \p slot committed, or was dropped. */
void rf_hide_cache_end(rf_hide_cache_t *hc, uint32_t slot);

/** Drops every entry (hides written in bulk). Takes NULL. */
void rf_hide_cache_clear(rf_hide_cache_t *hc);

typedef struct rf_hide_cache_stats {
        uint64_t hits, misses;
        size_t entries, bytes, max_bytes;
} rf_hide_cache_stats_t;

/** Takes NULL (all zero). */
void rf_hide_cache_stats(rf_hide_cache_t *hc, rf_hide_cache_stats_t *out);

#endif
