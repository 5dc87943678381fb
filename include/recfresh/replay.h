/*
 * recfresh - replay: apply recorded input records to a scratch store with
 * the real apply path, one record at a time, and explain what each did.
 *
 * Sources (rf_replay_set_t): event-log segments or directories
 * (eventlog.h), NDJSON files (one object per line: {"topic", "partition"?,
 * "offset"?, "key"?, "value": object or string, "timestamp"?}), or the
 * topics themselves between two times or offsets (kafka_time.h).
 *
 * Order: records are applied in the order they were loaded: sources in the
 * order given, each event log in segment and block order (which is the
 * order the daemon applied them), NDJSON in line order, and topic ranges
 * merged by (timestamp, topic, partition, offset). --order time sorts every
 * record by that key instead (a stable sort). Records with an offset are
 * de-duplicated on (topic, partition, offset), the first copy wins (the
 * event log may hold a batch twice after a crash, see eventlog.h).
 *
 * Determinism: the clock of the apply path (ctx->now_ms) is each record's
 * timestamp (a record without one keeps the previous record's clock), never
 * the wall clock; fan-out jobs run to completion after each record and each
 * record is committed on its own; a fresh scratch store gets a fixed
 * pseudonymisation salt. The same input and config therefore give
 * byte-identical output and store content.
 *
 * Target: a scratch directory, never the live store: it must not exist, be
 * empty, or be a scratch directory an earlier replay made (marked by a file
 * REPLAY_SCRATCH; it is emptied); it must differ from the live data_dir, and
 * a directory whose RocksDB LOCK another process holds is refused. It can
 * be seeded from a checkpoint (`recfresh checkpoint`): records already in
 * the checkpoint (offset below the checkpoint's stored offset of their
 * partition) are skipped.
 */
#ifndef RECFRESH_REPLAY_H
#define RECFRESH_REPLAY_H

#include <stdio.h>

#include "recfresh/apply.h"
#include "recfresh/config.h"
#include "recfresh/topics.h"

/* ---- record sets --------------------------------------------------------*/

typedef struct rf_replay_set {
        rf_record_t *recs; /* each record's strings are owned by the set */
        size_t cnt, size;
        uint64_t damaged;    /* damaged ranges or bad lines reported */
        uint64_t duplicates; /* removed by rf_replay_set_finish() */
        FILE *report;        /* where damage is reported (stderr if NULL) */
} rf_replay_set_t;

/** Appends a copy of \p rec. */
void rf_replay_set_add(rf_replay_set_t *set, const rf_record_t *rec);

/** Loads an event-log segment or directory; damage is reported with its
 *  file and byte position and skipped. @returns 0 or RF_EIO/RF_ENOENT. */
int rf_replay_load_eventlog(rf_replay_set_t *set, const char *path,
                            char *errstr, size_t errstr_size);

/** Loads an NDJSON file; a bad line is reported as "path:line: why" and
 *  skipped. @returns 0 or RF_EIO. */
int rf_replay_load_ndjson(rf_replay_set_t *set, const char *path, char *errstr,
                          size_t errstr_size);

/** A range of the input topics to load. */
typedef struct rf_replay_range {
        int64_t from_ms, to_ms;         /* [from, to) by timestamp, or -1 */
        int64_t from_offset, to_offset; /* [from, to) by offset, or -1 */
        const char *topic;              /* one topic (name), NULL = every
                                         * input topic */
        int32_t partition;              /* -1 = every partition */
} rf_replay_range_t;

/**
 * Loads records of the input topics in \p range from \p brokers, merged by
 * (timestamp, topic, partition, offset). *searched counts partitions whose
 * start or end came from the timestamp search (no offsets-for-times).
 * @returns 0 or RF_EKAFKA with errstr.
 */
int rf_replay_load_topics(rf_replay_set_t *set, const rf_config_t *conf,
                          const char *brokers, const rf_replay_range_t *range,
                          int *searched, char *errstr, size_t errstr_size);

/** De-duplicates on (topic, partition, offset) and, with \p by_time, sorts
 *  by (timestamp, topic, partition, offset). */
void rf_replay_set_finish(rf_replay_set_t *set, int by_time);

void rf_replay_set_clear(rf_replay_set_t *set);

/* ---- running ------------------------------------------------------------*/

typedef struct rf_replay_opts {
        const rf_config_t *conf; /* the config to apply under */
        const char *data_dir;    /* the scratch store */
        const char *live_dir;    /* refused as target; NULL = conf's */
        const char *checkpoint;  /* seed from this checkpoint, or NULL */
        FILE *out;               /* explain lines, or NULL for none */
        int json;                /* explain as one JSON object per line */
        const char *subject;     /* filters (NULL = any) */
        const char *item;
        const char *list; /* "subject/surface[/context]" */
} rf_replay_opts_t;

/** Outcome counts of one replay. */
typedef struct rf_replay_stats {
        uint64_t records; /* applied (after skips) */
        uint64_t seeded;  /* skipped: already in the checkpoint */
        uint64_t changed; /* tombstone state changed */
        uint64_t stale;   /* older than the state: ignored */
        uint64_t lists_stored;
        uint64_t lists_stale;
        uint64_t lists_blocked;
        uint64_t rejected;
        uint64_t lists_affected;     /* list invalidations */
        uint64_t entries_tombstoned; /* entries removed from served lists */
        uint64_t entries_restored;   /* entries back by a reversal */
        uint64_t recompute_enqueued;
        uint64_t recompute_coalesced;
        uint64_t emitted[RF_TOPIC__CNT]; /* records the daemon would produce */
        uint64_t lists_total;            /* lists at the end */
        uint64_t lists_served_empty;     /* lists served empty at the end */
        int64_t end_ms;                  /* clock of the last record */
        /* Wall time (not printed by rf_replay_stats_print(): it differs
         * between two runs of the same input): opening and seeding the
         * store, applying the records, and the end (the wait for the
         * warming thread, the count of lists served empty and the
         * flush). */
        double open_s, records_s, end_s;
        /* Keys of the seeded lists read into the block cache beside the
         * records (0: not warmed, as they did not fit). */
        uint64_t keys_warmed;
} rf_replay_stats_t;

/**
 * Replays \p set into opts->data_dir and writes explain lines to opts->out.
 * When \p lines is not NULL it receives one unfiltered text line per record
 * (what-if compares them) and \p empty the "subject/surface/context" keys of
 * lists served empty at the end, one per line.
 * @returns 0, or RF_EINVAL (target refused), RF_ESTORE, with errstr set.
 */
int rf_replay_run(const rf_replay_set_t *set, const rf_replay_opts_t *opts,
                  rf_replay_stats_t *stats, rf_buf_t *lines, rf_buf_t *empty,
                  char *errstr, size_t errstr_size);

/** Prints the outcome counts, one "name value" per line. */
void rf_replay_stats_print(const rf_replay_stats_t *s, FILE *fp);

/**
 * Checks that \p dir may be used as a replay target (see above) and
 * prepares it: created, or emptied if a previous scratch.
 * @returns 0 or RF_EINVAL with errstr saying why not.
 */
int rf_replay_prepare_target(const char *dir, const char *live_dir,
                             char *errstr, size_t errstr_size);

#endif /* RECFRESH_REPLAY_H */
