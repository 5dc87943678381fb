/*
 * recfresh - the RocksDB store: column families, transactions (a
 * WriteBatchWithIndex, so reads inside a batch see its own writes),
 * prefix iterators and store metadata.
 *
 * RocksDB's `char **errptr` convention is wrapped here once: every error is
 * copied into the caller's errstr (or logged), freed with rocksdb_free and
 * turned into RF_ESTORE. No other module includes rocksdb/c.h.
 *
 * Column families and what they hold (key layouts are in keys.h):
 *   meta        store format version, the pseudonymisation salt
 *   lists       list key -> encoded list (list.h)
 *   index       reverse index: entity -> list keys holding it
 *   tombstones  per-entity state: bans, stock, hides, consent, campaigns
 *   offsets     topic/partition -> next offset to consume
 *   fanout      pending fan-out jobs (ban of an item in many lists, ...)
 *   outbox      records to produce (DLQ, invalidations), deleted on ack
 *   queue       pending recompute requests (recompute queue)
 *   activity    per-subject last activity and refresh cursors
 *   runs        batch runs: state, validation results, active versions
 *   versions    lists of batch runs, keyed by run (staged or published)
 */
#ifndef RECFRESH_STORE_H
#define RECFRESH_STORE_H

#include <stdatomic.h>

#include "recfresh/common.h"

typedef enum rf_cf {
        RF_CF_META = 0, /* RocksDB's "default" column family */
        RF_CF_LISTS,
        RF_CF_INDEX,
        RF_CF_TOMBSTONES,
        RF_CF_OFFSETS,
        RF_CF_FANOUT,
        RF_CF_OUTBOX,
        RF_CF_QUEUE,
        RF_CF_ACTIVITY,
        RF_CF_RUNS,
        RF_CF_VERSIONS,
        RF_CF__CNT
} rf_cf_t;

/** @returns the column family's name ("lists", ...). */
const char *rf_cf_name(rf_cf_t cf);

typedef enum rf_store_mode {
        RF_STORE_PRIMARY,   /* the daemon: read-write, creates if missing */
        RF_STORE_SECONDARY, /* a reader beside a running daemon */
        RF_STORE_READONLY,  /* a reader of a stopped store */
} rf_store_mode_t;

typedef struct rf_store_opts {
        int sync;                /* fsync the WAL on every commit */
        size_t block_cache_mb;   /* shared LRU block cache */
        size_t write_buffer_mb;  /* per column family memtable */
        size_t max_wal_mb;       /* WAL bytes past which the memtables
                                  * holding the oldest WAL are flushed
                                  * (0: RocksDB's 4 x all memtables) */
        size_t manifest_roll_kb; /* roll the MANIFEST past this (0 = 4096):
                                  * it logs SST boundary keys, so purged
                                  * keys leave it when it rolls */
        int no_compression;      /* store SST blocks uncompressed */
        int no_wal; /* write no WAL: a crash loses what is not flushed yet
                     * (a replay's scratch store, made again on a rerun);
                     * rf_store_close() flushes */
} rf_store_opts_t;

typedef struct rf_store rf_store_t;

/* A file in a store's directory while a replay writes the store (and after
 * one that did not finish): without a WAL its state is partial.
 * rf_store_open() refuses such a store unless opts->no_wal (the replay). */
#define RF_STORE_INCOMPLETE "REPLAY_INCOMPLETE"

/**
 * Opens (and in PRIMARY mode creates) the store at \p path. \p opts may be
 * NULL for defaults. A SECONDARY store keeps its own info log in a private
 * temporary directory, removed by rf_store_close().
 * @returns the store, or NULL with errstr set.
 */
rf_store_t *rf_store_open(const char *path, rf_store_mode_t mode,
                          const rf_store_opts_t *opts, char *errstr,
                          size_t errstr_size);

/** Flushes every column family's memtable to SST files and waits: what a
 *  store without a WAL must do before its writes count as kept.
 *  @returns 0 or RF_ESTORE with errstr set. */
int rf_store_flush(rf_store_t *st, char *errstr, size_t errstr_size);

/** Closes the store and frees it. NULL is a no-op. */
void rf_store_close(rf_store_t *st);

/** SECONDARY mode: catches up with the primary's latest writes. */
int rf_store_catch_up(rf_store_t *st, char *errstr, size_t errstr_size);

/** @returns an id no other store opened by this process had. */
uint64_t rf_store_id(const rf_store_t *st);

/**
 * @returns a number that changes after every commit that wrote column family
 * \p cf (and after every catch-up of a secondary). A cache of what was read
 * from \p cf stays valid while it is unchanged: read it before the value
 * cached. Any thread.
 */
uint64_t rf_store_cf_epoch(rf_store_t *st, rf_cf_t cf);

/**
 * Reads one key. \p val is reset and filled.
 * @returns 0, RF_ENOENT or RF_ESTORE.
 */
int rf_store_get(rf_store_t *st, rf_cf_t cf, const char *key, size_t klen,
                 rf_buf_t *val);

/**
 * A value read in place: \c data points into the block cache (or a copy
 * RocksDB made for a memtable hit) and stays valid until
 * rf_pinned_release(). For read paths that decode a value once and never
 * keep it: no copy, no allocation of the value's size.
 */
typedef struct rf_pinned_s {
        const char *data;
        size_t len;
        void *handle_; /* the rocksdb_pinnableslice_t; NULL when empty */
} rf_pinned_t;

/**
 * rf_store_get() without the copy. \p val is released first, then filled.
 * @returns 0, RF_ENOENT or RF_ESTORE; \p val is empty on all but 0.
 */
int rf_store_get_pinned(rf_store_t *st, rf_cf_t cf, const char *key,
                        size_t klen, rf_pinned_t *val);

/** Drops what \p val pins; it is then empty. Safe on an empty one. */
void rf_pinned_release(rf_pinned_t *val);

/**
 * For the copying variants of pinned reads: \p out is reset, then gets a
 * copy of \p p when \p r (the pinned read's result) is 0; \p p is
 * released either way.
 * @returns \p r.
 */
int rf_pinned_copy(int r, rf_pinned_t *p, rf_buf_t *out);

/**
 * The 16-byte keyed pseudonym of \p subject_id (HMAC-SHA256 under the
 * store's salt, truncated). Used where a key must survive a consent purge
 * without holding the subject id.
 */
void rf_store_pseudonym(const rf_store_t *st, const char *subject_id,
                        unsigned char out[16]);

/** @returns 1 if \p dir holds a RocksDB store (its CURRENT file): a check
 *  before a primary open, which would make an empty store of a mistyped
 *  path. */
int rf_store_exists(const char *dir);

/** Flushes memtables and compacts every column family (privacy purge). */
int rf_store_compact_all(rf_store_t *st, char *errstr, size_t errstr_size);

/** Flushes and compacts \p cf to its bottom level: merge operands are
 *  folded into whole values (`recfresh queue --fold`). */
int rf_store_compact_cf(rf_store_t *st, rf_cf_t cf, char *errstr,
                        size_t errstr_size);

/** @returns the merge operands in \p cf's table files (not its memtables),
 *  or -1 if RocksDB does not say. */
int64_t rf_store_merge_operands(rf_store_t *st, rf_cf_t cf);

/** @returns a RocksDB integer property summed over column families (e.g.
 *  "rocksdb.estimate-num-keys" for one cf, or "rocksdb.total-sst-files-size"
 *  for all when cf < 0), or -1. */
int64_t rf_store_property_int(rf_store_t *st, int cf, const char *name);

/** @returns bytes in use in the block cache. */
size_t rf_store_block_cache_usage(rf_store_t *st);
/** The block cache's capacity, in bytes. */
size_t rf_store_block_cache_capacity(rf_store_t *st);

/**
 * A reader of \p cf as it is now, for rf_store_warm_run(): made on the
 * writer's thread, what it reads is fixed before the writer goes on.
 * Destroy it before rf_store_close().
 */
typedef struct rf_warm rf_warm_t;
rf_warm_t *rf_store_warm_new(rf_store_t *st, rf_cf_t cf);
/**
 * Reads every key of the reader's column family, so that its blocks are in
 * the block cache, until \p stop is set. Any one thread (RocksDB's reads
 * are thread-safe). @returns the keys read.
 */
uint64_t rf_store_warm_run(rf_warm_t *w, const atomic_int *stop);
void rf_store_warm_destroy(rf_warm_t *w);

struct rf_tombset;
/** Attaches the in-memory set of entities under a global tombstone
 *  (tomb_set.h) that checks and tombstone writes through \p st use, or
 *  detaches it (NULL). The store does not own it. */
void rf_store_set_tombset(rf_store_t *st, struct rf_tombset *ts);
/** @returns the attached set, or NULL. */
struct rf_tombset *rf_store_tombset(const rf_store_t *st);

struct rf_list_cache;
/** Attaches the read path's cache of decoded run versions (list_cache.h),
 *  or detaches it (NULL). The store does not own it. */
void rf_store_set_list_cache(rf_store_t *st, struct rf_list_cache *lc);
/** @returns the attached cache, or NULL. */
struct rf_list_cache *rf_store_list_cache(const rf_store_t *st);

struct rf_hide_cache;
/** Attaches the read path's cache of users' hides (hide_cache.h), or
 *  detaches it (NULL). The store does not own it: destroy it only once
 *  every batch that wrote a hide key since it was attached has ended. */
void rf_store_set_hide_cache(rf_store_t *st, struct rf_hide_cache *hc);
/** @returns the attached cache, or NULL. */
struct rf_hide_cache *rf_store_hide_cache(const rf_store_t *st);

/** Meta key present once every user's hide summary is kept (keys.h). */
#define RF_META_HIDE_SUMMARY "hide_summary"
/** @returns 1 if a reader's hides can be read from its summary key (one
 *  point lookup); 0 for a store written before summaries existed, until
 *  rf_hide_summaries_build() ran (reads then scan the hide keys). */
int rf_store_hide_summary(const rf_store_t *st);
/** Records that the summaries are complete (after their commit). */
void rf_store_set_hide_summary(rf_store_t *st);

/** @returns the store's directory. */
const char *rf_store_path(const rf_store_t *st);

/** Bytes free to unprivileged writers on the file system of store
 *  directory \p dir (or of its nearest existing parent, for a store not yet
 *  created), or -1 (and errno) if statvfs fails. */
int64_t rf_store_free_bytes(const char *dir);

/**
 * Writes a RocksDB checkpoint of \p st (PRIMARY mode only: a secondary or
 * read-only instance cannot) into \p dir, which must not exist: SST files
 * are hard-linked when on the same file system, so it is cheap.
 * @returns 0 or RF_ESTORE with errstr set.
 */
int rf_store_checkpoint(rf_store_t *st, const char *dir, char *errstr,
                        size_t errstr_size);

/**
 * Replaces the pseudonymisation salt of a PRIMARY store (replay: a fixed
 * salt makes scratch stores byte-identical). Only for a store that holds no
 * consent state yet: existing pseudonyms would no longer match.
 * @returns 0 or RF_ESTORE with errstr set.
 */
int rf_store_set_salt(rf_store_t *st, const unsigned char salt[32],
                      char *errstr, size_t errstr_size);

/* ---- transactions -------------------------------------------------------
 * A transaction buffers writes in a WriteBatchWithIndex; rf_txn_get and
 * rf_txn iterators see them before the commit. One writer thread uses it. */

typedef struct rf_txn rf_txn_t;

rf_txn_t *rf_txn_new(rf_store_t *st);
void rf_txn_put(rf_txn_t *txn, rf_cf_t cf, const char *key, size_t klen,
                const char *val, size_t vlen);
void rf_txn_delete(rf_txn_t *txn, rf_cf_t cf, const char *key, size_t klen);

/** Writes a merge operand for \p key: only to a column family with a merge
 *  operator (the queue's: rf_queue_entry_merge()). rf_txn_get() sees the
 *  merged value; an iterator through \p txn over that column family does not
 *  (RocksDB 7's batch iterators cannot merge), so none is made. */
void rf_txn_merge(rf_txn_t *txn, rf_cf_t cf, const char *key, size_t klen,
                  const char *val, size_t vlen);

/** Reads through the transaction, then the store. @returns 0, RF_ENOENT or
 *  RF_ESTORE. */
int rf_txn_get(rf_txn_t *txn, rf_cf_t cf, const char *key, size_t klen,
               rf_buf_t *val);

/** @returns the number of writes buffered. */
size_t rf_txn_count(const rf_txn_t *txn);

/** @returns 1 if the batch holds writes to \p cf. */
int rf_txn_touched(const rf_txn_t *txn, rf_cf_t cf);

/**
 * Writes everything buffered atomically and empties the transaction.
 * @returns 0 or RF_ESTORE with errstr set (nothing was written).
 */
int rf_txn_commit(rf_txn_t *txn, char *errstr, size_t errstr_size);

/** Drops everything buffered. */
void rf_txn_clear(rf_txn_t *txn);

/** @returns how many batches with writes were dropped uncommitted
 *  (rf_txn_clear(), rf_txn_destroy()) since the store opened: a cache of
 *  values written through batches (value_cache.h) forgets them then. */
uint64_t rf_store_drops(rf_store_t *st);

void rf_txn_destroy(rf_txn_t *txn);

/* ---- iterators ----------------------------------------------------------*/

typedef struct rf_iter rf_iter_t;

/**
 * Iterates the keys of \p cf that start with \p prefix (plen may be 0 for
 * all), in key order. With \p txn, uncommitted writes are seen too.
 * The iterator is positioned on the first key; see rf_iter_valid().
 */
rf_iter_t *rf_iter_new(rf_store_t *st, rf_txn_t *txn, rf_cf_t cf,
                       const char *prefix, size_t plen);

/**
 * Iterates the keys of \p cf from \p from (inclusive) to \p to
 * (exclusive; tlen 0: to the end), with RocksDB bounds on both: cheap on
 * queue-like column families whose consumed keys are deletion markers,
 * which a bound lets RocksDB skip instead of walking.
 */
rf_iter_t *rf_iter_new_range(rf_store_t *st, rf_txn_t *txn, rf_cf_t cf,
                             const char *from, size_t flen, const char *to,
                             size_t tlen);

/**
 * Keys must start with \p prefix from now on: one iterator made with no
 * prefix (plen 0) serves many prefixes, each after a seek, instead of an
 * iterator each (making one costs a seek in every file of the column
 * family). No-op on a range iterator.
 */
void rf_iter_set_prefix(rf_iter_t *it, const char *prefix, size_t plen);

/** Positions at the first key >= \p key within the prefix. */
void rf_iter_seek(rf_iter_t *it, const char *key, size_t klen);

/** Positions at the last key <= \p key; rf_iter_valid() says whether it
 *  is within the prefix (a range iterator through a batch may land below
 *  its lower bound). */
void rf_iter_seek_for_prev(rf_iter_t *it, const char *key, size_t klen);
void rf_iter_prev(rf_iter_t *it);

/** @returns 1 while positioned on a key with the prefix. */
int rf_iter_valid(rf_iter_t *it);
void rf_iter_next(rf_iter_t *it);
const char *rf_iter_key(rf_iter_t *it, size_t *klen);
const char *rf_iter_value(rf_iter_t *it, size_t *vlen);
/** @returns 0, or RF_ESTORE if the iteration stopped on an error (an
 *  invalid iterator is not always the end). */
int rf_iter_status(rf_iter_t *it);
void rf_iter_destroy(rf_iter_t *it);

/* ---- bulk: SST files and their ingestion ---------------------------------
 * Used by the bulk loader (bulkload.c): keys are written to SST files in
 * strictly increasing order, then ingested whole. */

typedef struct rf_sst rf_sst_t;

/** Opens a new SST file at \p path for column family \p cf of \p st (any
 *  mode: only its options are used). @returns NULL with errstr set. */
rf_sst_t *rf_sst_new(rf_store_t *st, rf_cf_t cf, const char *path, char *errstr,
                     size_t errstr_size);

/** Adds a key, greater than every key added before. @returns 0 or
 *  RF_ESTORE. */
int rf_sst_put(rf_sst_t *s, const char *key, size_t klen, const char *val,
               size_t vlen, char *errstr, size_t errstr_size);

/** @returns the file's size so far in bytes. */
uint64_t rf_sst_size(rf_sst_t *s);

/** Completes the file. @returns 0, RF_ENOENT (no key was added: no file
 *  worth ingesting) or RF_ESTORE. */
int rf_sst_finish(rf_sst_t *s, char *errstr, size_t errstr_size);

void rf_sst_destroy(rf_sst_t *s);

/**
 * Ingests finished SST files (non-overlapping with each other) into \p cf
 * of a PRIMARY store, atomically: all or none. The files are hard-linked;
 * the caller removes its copies. @returns 0 or RF_ESTORE / RF_EINVAL.
 */
int rf_store_ingest(rf_store_t *st, rf_cf_t cf, const char *const *paths,
                    size_t n, char *errstr, size_t errstr_size);

#endif /* RECFRESH_STORE_H */
