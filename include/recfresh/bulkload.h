/*
 * recfresh - the bulk loader behind `recfresh load`: turns a daily batch
 * file of lists (NDJSON, the recs.lists.v1 shape, optionally zstd
 * compressed) into a spool job: sorted SST files for the run's version
 * (RF_CF_VERSIONS) and its reverse-index entries (RF_CF_INDEX), plus a
 * manifest holding the run's validation measures. runs.c ingests the job
 * and validates and activates the run exactly as for a run sent through
 * recs.lists.v1.
 *
 * Memory is bounded by load.memory_mb, not by the file: keys are sorted in
 * chunks that fit the budget, spilled as sorted runs, then merged (an
 * external merge sort) into non-overlapping SST files. Duplicate list keys
 * keep the newest list (generated_at, then list_id), as the topic does.
 */
#ifndef RECFRESH_BULKLOAD_H
#define RECFRESH_BULKLOAD_H

#include "recfresh/config.h"
#include "recfresh/runs.h"
#include "recfresh/store.h"

/* The job file holding rf_consent_revoked_mark() as the build saw it
 * (decimal): when the job is taken, the lists of users whose consent was
 * revoked after it are dropped from the run. */
#define RF_BULKLOAD_CONSENT_MARK "consent"

typedef struct rf_bulkload_opts {
        const char *run_id;
        const char *const *surfaces; /* declared surfaces; 0 = as seen */
        size_t surface_cnt;
        int64_t generated_at;   /* of the run; 0 = the newest list's */
        int64_t expected_lists; /* -1 = not given */
        FILE *report;           /* malformed lines are reported here */
        size_t sst_max_bytes;   /* roll SST files over at; 0 = 256 MiB */
} rf_bulkload_opts_t;

/**
 * Reads \p input (NDJSON; zstd when it starts with the zstd magic) and
 * writes the job into the existing empty directory \p job_dir. \p st is
 * used for its options and to count entries already tombstoned (any mode).
 * A line that does not parse, or names another run_id, is reported as
 * "input:LINE: reason: message" and counted in ri->malformed; it never
 * stops the load. The lists of users whose consent is revoked (scope all or
 * personalization) are left out and counted in ri->blocked; the consent
 * state they were checked against is marked in the job
 * (RF_BULKLOAD_CONSENT_MARK). \p ri receives the manifest (caller clears
 * it). A zstd input that is corrupt or ends inside a frame (a file cut
 * short) fails the load: "input: truncated zstd frame".
 * @returns 0, or RF_EIO / RF_ESTORE / RF_EINVAL with errstr set.
 */
int rf_bulkload_build(rf_store_t *st, const rf_config_t *conf,
                      const rf_bulkload_opts_t *o, const char *input,
                      const char *job_dir, rf_run_info_t *ri, char *errstr,
                      size_t errstr_size);

#endif /* RECFRESH_BULKLOAD_H */
