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
        atomic_uint_fast64_t lists_stale;   /* an equal or newer one held */
        atomic_uint_fast64_t lists_blocked; /* consent revoked: dropped */
        atomic_uint_fast64_t lists_purged;  /* removed by a consent purge */
        /* fan-out */
        atomic_uint_fast64_t fanout_jobs_scheduled;
        atomic_uint_fast64_t fanout_jobs_done;
        atomic_uint_fast64_t fanout_entries_scanned;
        atomic_uint_fast64_t lists_invalidated;
        /* outbox */
        atomic_uint_fast64_t outbox_produced;
        atomic_uint_fast64_t outbox_delivered;
        atomic_uint_fast64_t outbox_failed;
        /* store */
        atomic_uint_fast64_t store_commits;
        atomic_uint_fast64_t store_errors;
} rf_metrics_t;

extern rf_metrics_t rf_metrics;

#define RF_METRIC_INC(f)                                                       \
        atomic_fetch_add_explicit(&rf_metrics.f, 1, memory_order_relaxed)
#define RF_METRIC_ADD(f, n)                                                    \
        atomic_fetch_add_explicit(&rf_metrics.f, (n), memory_order_relaxed)
#define RF_METRIC_GET(f)                                                       \
        atomic_load_explicit(&rf_metrics.f, memory_order_relaxed)

#endif /* RECFRESH_METRICS_H */
