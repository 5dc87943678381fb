/*
 * recfresh - privacy compaction. A consent purge deletes a subject's lists,
 * index entries and hides, but RocksDB keeps deleted keys in older SST
 * files, WAL segments and deletion markers until a compaction drops them.
 * After a purge, the compactor flushes and compacts every column family
 * (bottommost level included) on its own thread, at most
 * store.purge_compact_after after the first purge not yet compacted, so
 * that the subject id is gone from the DB files within that bound.
 */
#ifndef RECFRESH_PURGE_H
#define RECFRESH_PURGE_H

#include "recfresh/store.h"

typedef struct rf_compactor rf_compactor_t;

/** \p after_ms: delay after a purge (0 = compaction off). */
rf_compactor_t *rf_compactor_new(rf_store_t *st, int64_t after_ms);

/**
 * Called by the daemon loop: starts a compaction when purges happened
 * (rf_metrics.consent_purges moved) at least after_ms ago and none is
 * running. Never blocks.
 */
void rf_compactor_tick(rf_compactor_t *c, int64_t now_mono_ms);

/** @returns compactions finished (for tests and metrics). */
uint64_t rf_compactor_done(const rf_compactor_t *c);

/** Waits for a running compaction and frees \p c. NULL is a no-op. */
void rf_compactor_destroy(rf_compactor_t *c);

#endif /* RECFRESH_PURGE_H */
