/*
 * recfresh - a bounded-memory external sorter of (key, value) byte strings,
 * the bulk loader's engine (bulkload.c).
 *
 * A sorter fills one half of its memory budget while a background thread
 * sorts the other half and writes it to a run file in its directory. A
 * merger reads the run files back side by side, in key order (bytewise,
 * shorter first on a common prefix); equal keys come in the order they were
 * added. A run file cut short (a full disk, a crash of another process
 * writing there) fails the merge: it never ends it quietly.
 *
 * Run file format, entry after entry: varint key length, key, varint value
 * length, value.
 */
#ifndef RECFRESH_EXTSORT_H
#define RECFRESH_EXTSORT_H

#include <stddef.h>

#include "recfresh/common.h"

typedef struct rf_sorter rf_sorter_t;
typedef struct rf_merger rf_merger_t;

/**
 * A sorter writing its runs to \p dir as "TAG-run-NNNNNN", holding at most
 * about \p budget bytes (entries and their sort slots) in memory. \p dir and
 * \p tag must outlive it.
 */
rf_sorter_t *rf_sorter_new(const char *dir, const char *tag, size_t budget);

/** Adds one entry (copied). @returns 0, or RF_EIO with \p errstr set when a
 *  spill failed. */
int rf_sorter_add(rf_sorter_t *s, const char *k, size_t kl, const char *v,
                  size_t vl, char *errstr, size_t errstr_size);

/** Spills what memory holds: then the run files hold every entry added.
 *  @returns 0 or RF_EIO (errstr set). */
int rf_sorter_finish(rf_sorter_t *s, char *errstr, size_t errstr_size);

/** @returns the number of run files written so far. */
size_t rf_sorter_runs(const rf_sorter_t *s);

/** Sets \p path to the file of run \p i. */
void rf_sorter_run_path(const rf_sorter_t *s, size_t i, rf_buf_t *path);

/** Waits for a spill in progress, removes the run files and frees \p s. */
void rf_sorter_destroy(rf_sorter_t *s);

/**
 * Finishes \p s, frees its sort buffers (a merge needs little memory) and
 * opens its runs for a merge into *mgp. \p s must outlive the merger.
 * @returns 0, or RF_EIO (errstr set) with *mgp NULL.
 */
int rf_merger_open(rf_sorter_t *s, rf_merger_t **mgp, char *errstr,
                   size_t errstr_size);

/**
 * The next entry in key order: *k and *v stay valid until the next call.
 * @returns 1 with an entry, 0 after the last one, or RF_EIO (errstr set)
 * when a run file is cut short or cannot be read.
 */
int rf_merger_next(rf_merger_t *mg, const rf_buf_t **k, const rf_buf_t **v,
                   char *errstr, size_t errstr_size);

/** Closes the run files (they stay until rf_sorter_destroy). */
void rf_merger_close(rf_merger_t *mg);

/** @returns <0, 0 or >0 as key \p a sorts before, with or after \p b. */
int rf_sort_keycmp(const char *a, size_t al, const char *b, size_t bl);

#endif /* RECFRESH_EXTSORT_H */
