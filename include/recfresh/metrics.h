/*
 * recfresh - process-wide counters (like Redis' server.stat_*). Modules bump
 * them with relaxed atomics; the HTTP /metrics endpoint and `recfresh stats`
 * read them. Names follow the Prometheus metric each one backs.
 */
#ifndef RECFRESH_METRICS_H
#define RECFRESH_METRICS_H

#include <stdatomic.h>

#include "recfresh/common.h"
#include "recfresh/event.h"
#include "recfresh/topics.h"

/** Index of list records in events_consumed[topic][...]. */
#define RF_EV_LIST RF_EV__CNT

/* Sizes of the read counters; serve.c checks they match rf_served_from_t
 * and rf_filter_t at compile time. */
#define RF_METRIC_SERVED_FROM_CNT 4
#define RF_METRIC_FILTER_CNT      6

/** Finite bucket bounds per histogram (one more bucket counts +Inf). */
#define RF_HIST_BUCKETS 16

/** A histogram of integer observations with fixed bounds (bounds[] below):
 *  bucket[i] counts values <= bounds[i] and > bounds[i-1] (not
 *  cumulative; the renderer accumulates), bucket[RF_HIST_BUCKETS] the rest. */
typedef struct rf_hist {
        atomic_uint_fast64_t bucket[RF_HIST_BUCKETS + 1];
        atomic_uint_fast64_t count;
        atomic_uint_fast64_t sum;
} rf_hist_t;

/** Bounds of fanout_size (lists per fan-out job). */
extern const uint64_t rf_hist_fanout_bounds[RF_HIST_BUCKETS];
/** Bounds of tomb_latency_ms (milliseconds). */
extern const uint64_t rf_hist_latency_bounds[RF_HIST_BUCKETS];

/** Adds \p v to \p h, whose bounds are \p bounds. Thread-safe. */
void rf_hist_observe(rf_hist_t *h, const uint64_t *bounds, uint64_t v);

typedef struct rf_metrics {
        /* recfresh_events_consumed_total{topic,type} */
        atomic_uint_fast64_t events_consumed[RF_TOPIC__CNT][RF_EV__CNT + 1];
        /* recfresh_dlq_records_total{reason} */
        atomic_uint_fast64_t dlq[RF_REJ__CNT];
        /* recfresh_tombstone_changes_total{type}: state flips applied */
        atomic_uint_fast64_t tombstones[RF_EV__CNT];
        /* recfresh_events_stale_total: older than the state held */
        atomic_uint_fast64_t events_stale;
        /* recfresh_lists_total{outcome} */
        atomic_uint_fast64_t lists_applied;
        atomic_uint_fast64_t lists_stale;    /* an equal or newer one held */
        atomic_uint_fast64_t lists_blocked;  /* consent revoked: dropped */
        atomic_uint_fast64_t lists_purged;   /* removed by a consent purge */
        atomic_uint_fast64_t consent_purges; /* purges of a subject (all,
                                              * personalization revoked) */
        /* recfresh_partition_rebuilds_total: subject partitions that
         * became ready (caught up) after an assignment */
        atomic_uint_fast64_t partition_rebuilds;
        /* fan-out */
        atomic_uint_fast64_t fanout_jobs_scheduled;
        atomic_uint_fast64_t fanout_jobs_done;
        atomic_uint_fast64_t fanout_entries_scanned;
        atomic_uint_fast64_t fanout_unserved_skipped;
        atomic_uint_fast64_t lists_invalidated;
        /* outbox */
        atomic_uint_fast64_t outbox_produced;
        atomic_uint_fast64_t outbox_delivered;
        atomic_uint_fast64_t outbox_failed;
        atomic_uint_fast64_t outbox_dropped; /* refused for good */
        /* event log */
        atomic_uint_fast64_t eventlog_unarchived; /* its write failed */
        /* store */
        atomic_uint_fast64_t store_commits;
        atomic_uint_fast64_t store_errors;
        atomic_uint_fast64_t store_free_bytes; /* gauge: data dir free */
        /* recompute queue (recompute.c): recfresh_recompute_*_total */
        atomic_uint_fast64_t recompute_enqueued;  /* pending entries created */
        atomic_uint_fast64_t recompute_coalesced; /* merged into one */
        atomic_uint_fast64_t recompute_sent;      /* requests produced */
        atomic_uint_fast64_t recompute_acked;     /* acknowledged by broker */
        atomic_uint_fast64_t recompute_failed;    /* delivery failed: again */
        atomic_uint_fast64_t recompute_satisfied; /* surfaces cleared by a
                                                   * fresh list */
        atomic_uint_fast64_t recompute_consent_dropped; /* revoked since
                                                         * queued */
        atomic_uint_fast64_t recompute_urgent_sent; /* urgent requests sent */
        atomic_uint_fast64_t recompute_list_reads;  /* lists read for urgency */
        atomic_uint_fast64_t recompute_list_reads_saved; /* answered from
                                                          * valid_memory.h */
        atomic_uint_fast64_t recompute_entry_cache_hits; /* value_cache.h */
        atomic_uint_fast64_t recompute_entry_deltas;  /* written as a delta */
        atomic_uint_fast64_t recompute_delta_damaged; /* merge skipped one */
        /* gauges, set by the queue about twice a second */
        atomic_uint_fast64_t recompute_backlog;            /* pending entries */
        atomic_uint_fast64_t recompute_backlog_by_mode[3]; /* incremental,
                                                            * full, active */
        atomic_uint_fast64_t recompute_inflight;      /* sent, not yet acked */
        atomic_uint_fast64_t recompute_oldest_age_ms; /* oldest pending */
        atomic_uint_fast64_t recompute_entry_cache_bytes; /* value_cache.h */
        /* gauges, set by the daemon loop every iteration */
        atomic_uint_fast64_t fanout_pending;   /* fan-out jobs not finished */
        atomic_uint_fast64_t outbox_pending;   /* records not yet acked */
        atomic_uint_fast64_t tombset_entities; /* tomb_set.h members */
        /* refresh runs (refresh.c) */
        atomic_uint_fast64_t refresh_runs_started;
        atomic_uint_fast64_t refresh_runs_finished;
        atomic_uint_fast64_t refresh_subjects; /* subjects queued by runs */
        atomic_uint_fast64_t activity_records; /* recs.activity.v1 taken */
        /* recfresh_fanout_size: lists invalidated per fan-out job */
        rf_hist_t fanout_size;
        /* recfresh_event_to_tombstone_seconds: record timestamp to the
         * commit of the state change it caused */
        rf_hist_t tomb_latency_ms;
        /* reads (serve.c): recfresh_reads_total{served_from} */
        atomic_uint_fast64_t reads[RF_METRIC_SERVED_FROM_CNT];
        /* recfresh_read_filtered_total{reason}: entries a read skipped */
        atomic_uint_fast64_t read_filtered[RF_METRIC_FILTER_CNT];
        atomic_uint_fast64_t reads_empty;          /* no entry served */
        atomic_uint_fast64_t read_fallback_filled; /* slots from fallback */
        atomic_uint_fast64_t read_recomputes; /* recomputes asked by reads */
        atomic_uint_fast64_t read_errors;     /* store errors while reading */
} rf_metrics_t;

extern rf_metrics_t rf_metrics;

/**
 * Appends every counter and histogram above in the Prometheus text
 * exposition format 0.0.4 (metrics_prom.c), each family with # HELP and
 * # TYPE lines. Thread-safe.
 */
void rf_metrics_render(rf_buf_t *out);

/** Appends the "# HELP" and "# TYPE" lines of one metric family. */
void rf_prom_head(rf_buf_t *out, const char *name, const char *type,
                  const char *help);

#define RF_METRIC_INC(f)                                                       \
        atomic_fetch_add_explicit(&rf_metrics.f, 1, memory_order_relaxed)
#define RF_METRIC_ADD(f, n)                                                    \
        atomic_fetch_add_explicit(&rf_metrics.f, (n), memory_order_relaxed)
#define RF_METRIC_GET(f)                                                       \
        atomic_load_explicit(&rf_metrics.f, memory_order_relaxed)

#endif /* RECFRESH_METRICS_H */
