/*
 * recfresh - the Prometheus text rendering of the process-wide counters
 * (metrics.h), served by GET /metrics. Every family gets # HELP and
 * # TYPE lines; label sets that can occur are rendered even at zero, so
 * rate() works from the first scrape.
 */
#include <string.h>

#include "recfresh/metrics.h"
#include "recfresh/recompute.h"
#include "recfresh/serve.h"
#include "recfresh/tombstone.h"

_Static_assert(RF_RC__MODE_CNT == 3, "metrics.h: recompute_backlog_by_mode[3]");

#define GET(a)                                                                 \
        ((unsigned long long)atomic_load_explicit(&(a), memory_order_relaxed))

void rf_prom_head(rf_buf_t *out, const char *name, const char *type,
                  const char *help)
{
        rf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                      type);
}

static void counter(rf_buf_t *out, const char *name, const char *help,
                    atomic_uint_fast64_t *v)
{
        rf_prom_head(out, name, "counter", help);
        rf_buf_printf(out, "%s %llu\n", name, GET(*v));
}

/* One counter \p name split by "outcome": \p n (label value, counter)
 * pairs. */
typedef struct {
        const char *outcome;
        atomic_uint_fast64_t *v;
} outcome_t;

static void counter_by_outcome(rf_buf_t *out, const char *name,
                               const char *help, const outcome_t *o, size_t n)
{
        rf_prom_head(out, name, "counter", help);
        for (size_t i = 0; i < n; i++)
                rf_buf_printf(out, "%s{outcome=\"%s\"} %llu\n", name,
                              o[i].outcome, GET(*o[i].v));
}

/* Renders \p h; \p scale divides bounds and sum (1000: ms as seconds). */
static void histogram(rf_buf_t *out, const char *name, const char *help,
                      rf_hist_t *h, const uint64_t *bounds, double scale)
{
        unsigned long long cum = 0;

        rf_prom_head(out, name, "histogram", help);
        for (int i = 0; i < RF_HIST_BUCKETS; i++) {
                cum += GET(h->bucket[i]);
                rf_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
                              (double)bounds[i] / scale, cum);
        }
        cum += GET(h->bucket[RF_HIST_BUCKETS]);
        /* _count is the buckets' total, so one scrape is consistent even
         * while observations land. */
        rf_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
        rf_buf_printf(out, "%s_sum %g\n", name, (double)GET(h->sum) / scale);
        rf_buf_printf(out, "%s_count %llu\n", name, cum);
}

static void render_events(rf_buf_t *out)
{
        rf_prom_head(out, "recfresh_events_consumed_total", "counter",
                     "Records taken from input topics, by topic and type "
                     "(type \"list\" for list publications).");
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (strcmp(rf_topic(t)->direction, "input"))
                        continue;
                for (int e = 0; e <= RF_EV__CNT; e++) {
                        if (e < RF_EV__CNT &&
                            rf_event_type_topic((rf_event_type_t)e) != t)
                                continue;
                        if (e == RF_EV_LIST && t != RF_TOPIC_LISTS)
                                continue;
                        rf_buf_printf(
                            out,
                            "recfresh_events_consumed_total{topic=\"%s\","
                            "type=\"%s\"} %llu\n",
                            rf_topic(t)->name,
                            e == RF_EV_LIST
                                ? "list"
                                : rf_event_type2str((rf_event_type_t)e),
                            GET(rf_metrics.events_consumed[t][e]));
                }
        }

        rf_prom_head(out, "recfresh_dlq_records_total", "counter",
                     "Records rejected to the dead-letter topic, by reason.");
        for (int r = 1; r < RF_REJ__CNT; r++)
                rf_buf_printf(out,
                              "recfresh_dlq_records_total{reason=\"%s\"} "
                              "%llu\n",
                              rf_reject2str((rf_reject_t)r),
                              GET(rf_metrics.dlq[r]));

        rf_prom_head(out, "recfresh_tombstones_applied_total", "counter",
                     "Tombstone state changes applied (a ban put in or "
                     "lifted, ...), by event type.");
        for (int e = 0; e < RF_EV__CNT; e++)
                rf_buf_printf(out,
                              "recfresh_tombstones_applied_total{type=\"%s\"} "
                              "%llu\n",
                              rf_event_type2str((rf_event_type_t)e),
                              GET(rf_metrics.tombstones[e]));
        counter(out, "recfresh_events_stale_total",
                "Events older than the state held: taken and ignored.",
                &rf_metrics.events_stale);

        const outcome_t lists[] = {
                { "applied", &rf_metrics.lists_applied },
                { "stale", &rf_metrics.lists_stale },
                { "blocked", &rf_metrics.lists_blocked },
                { "purged", &rf_metrics.lists_purged },
        };
        counter_by_outcome(out, "recfresh_lists_total",
                           "List publications, by outcome.", lists,
                           RF_ARRAY_SIZE(lists));
}

static void render_work(rf_buf_t *out)
{
        counter(out, "recfresh_partition_rebuilds_total",
                "Subject partitions that caught up after an assignment and "
                "were served from then on.",
                &rf_metrics.partition_rebuilds);
        counter(out, "recfresh_fanout_jobs_scheduled_total",
                "Fan-out jobs scheduled.", &rf_metrics.fanout_jobs_scheduled);
        counter(out, "recfresh_fanout_jobs_done_total",
                "Fan-out jobs finished.", &rf_metrics.fanout_jobs_done);
        counter(out, "recfresh_fanout_index_entries_scanned_total",
                "Reverse-index entries walked by fan-out jobs.",
                &rf_metrics.fanout_entries_scanned);
        counter(out, "recfresh_fanout_unserved_skipped_total",
                "Reverse-index entries of run versions reads do not serve "
                "(kept for rollback, staged), stepped over.",
                &rf_metrics.fanout_unserved_skipped);
        counter(out, "recfresh_lists_invalidated_total",
                "Invalidation notices queued for lists.",
                &rf_metrics.lists_invalidated);
        histogram(out, "recfresh_fanout_size",
                  "Lists invalidated per fan-out job.", &rf_metrics.fanout_size,
                  rf_hist_fanout_bounds, 1.0);
        histogram(out, "recfresh_event_to_tombstone_seconds",
                  "From an event record's timestamp to the commit of the "
                  "tombstone state it set.",
                  &rf_metrics.tomb_latency_ms, rf_hist_latency_bounds, 1000.0);

        const outcome_t outbox[] = {
                { "produced", &rf_metrics.outbox_produced },
                { "delivered", &rf_metrics.outbox_delivered },
                { "failed", &rf_metrics.outbox_failed },
                { "dropped", &rf_metrics.outbox_dropped },
        };
        counter_by_outcome(out, "recfresh_outbox_records_total",
                           "Outbox records (DLQ, invalidations), by outcome.",
                           outbox, RF_ARRAY_SIZE(outbox));
        counter(out, "recfresh_store_commits_total",
                "Batches committed to the store.", &rf_metrics.store_commits);
        counter(out, "recfresh_store_errors_total", "Store writes that failed.",
                &rf_metrics.store_errors);
        counter(out, "recfresh_eventlog_unarchived_records_total",
                "Records applied but missing from the event log (its write "
                "failed).",
                &rf_metrics.eventlog_unarchived);
}

static void render_reads(rf_buf_t *out)
{
        rf_prom_head(out, "recfresh_reads_total", "counter",
                     "Reads served, by where their entries came from.");
        for (int s = 0; s < RF_SERVED__CNT; s++)
                rf_buf_printf(out,
                              "recfresh_reads_total{served_from=\"%s\"} "
                              "%llu\n",
                              rf_served_from2str((rf_served_from_t)s),
                              GET(rf_metrics.reads[s]));
        rf_prom_head(out, "recfresh_read_filtered_total", "counter",
                     "Entries the final check skipped at read time, by "
                     "reason.");
        for (int f = 0; f < RF_FILTER__CNT; f++)
                rf_buf_printf(out,
                              "recfresh_read_filtered_total{reason=\"%s\"} "
                              "%llu\n",
                              rf_filter2str((rf_filter_t)f),
                              GET(rf_metrics.read_filtered[f]));
        counter(out, "recfresh_reads_empty_total",
                "Reads that served no entry.", &rf_metrics.reads_empty);
        counter(out, "recfresh_read_fallback_filled_total",
                "Response slots filled from fallback lists.",
                &rf_metrics.read_fallback_filled);
        counter(out, "recfresh_read_recompute_requests_total",
                "Recomputes asked for by reads of expired lists.",
                &rf_metrics.read_recomputes);
        counter(out, "recfresh_read_errors_total",
                "Reads that failed on a store error.", &rf_metrics.read_errors);
}

static void gauge(rf_buf_t *out, const char *name, const char *help, double v)
{
        rf_prom_head(out, name, "gauge", help);
        rf_buf_printf(out, "%s %.17g\n", name, v);
}

static void render_recompute(rf_buf_t *out)
{
        counter(out, "recfresh_recompute_enqueued_total",
                "Recompute entries created (one per subject pending).",
                &rf_metrics.recompute_enqueued);
        counter(out, "recfresh_recompute_coalesced_total",
                "Recompute reasons merged into an entry already pending.",
                &rf_metrics.recompute_coalesced);
        counter(out, "recfresh_recompute_sent_total",
                "Recompute requests produced to recs.recompute.v1.",
                &rf_metrics.recompute_sent);
        counter(out, "recfresh_recompute_urgent_sent_total",
                "Urgent recompute requests produced.",
                &rf_metrics.recompute_urgent_sent);
        counter(out, "recfresh_recompute_list_reads_total",
                "Invalidated lists read to count their valid entries "
                "(urgency).",
                &rf_metrics.recompute_list_reads);
        counter(out, "recfresh_recompute_list_reads_saved_total",
                "Invalidated lists whose urgency a remembered count of "
                "valid entries answered, without a read.",
                &rf_metrics.recompute_list_reads_saved);
        counter(out, "recfresh_recompute_entry_cache_hits_total",
                "Pending recompute entries read from the writer's memory "
                "instead of the store (recompute.entry_cache_mb).",
                &rf_metrics.recompute_entry_cache_hits);
        counter(out, "recfresh_recompute_entry_deltas_total",
                "Pending entries changed by a delta (merge operand) instead "
                "of written whole.",
                &rf_metrics.recompute_entry_deltas);
        counter(out, "recfresh_recompute_delta_damaged_total",
                "Merges that skipped a damaged entry delta (the entry kept "
                "its state before it); each read, flush and compaction that "
                "meets one counts it again.",
                &rf_metrics.recompute_delta_damaged);
        counter(out, "recfresh_recompute_acked_total",
                "Recompute requests acknowledged by the broker.",
                &rf_metrics.recompute_acked);
        counter(out, "recfresh_recompute_failed_total",
                "Recompute requests whose delivery failed (sent again).",
                &rf_metrics.recompute_failed);
        counter(out, "recfresh_recompute_satisfied_total",
                "Pending surfaces cleared by a fresh list before sending.",
                &rf_metrics.recompute_satisfied);
        counter(out, "recfresh_recompute_consent_dropped_total",
                "Requests dropped when due: their subject revoked consent "
                "since they were queued (recfresh refresh's queue).",
                &rf_metrics.recompute_consent_dropped);
        gauge(out, "recfresh_recompute_entry_cache_bytes",
              "Bytes of pending recompute entries the writer keeps in "
              "memory, with their table (recompute.entry_cache_mb and "
              "about 9% more).",
              (double)GET(rf_metrics.recompute_entry_cache_bytes));
        gauge(out, "recfresh_recompute_backlog",
              "Recompute entries pending (in flight included).",
              (double)GET(rf_metrics.recompute_backlog));
        rf_prom_head(out, "recfresh_recompute_backlog_mode", "gauge",
                     "Recompute entries pending, by mode.");
        for (int m = 0; m < RF_RC__MODE_CNT; m++)
                rf_buf_printf(out,
                              "recfresh_recompute_backlog_mode{mode=\"%s\"} "
                              "%llu\n",
                              rf_rc_mode2str(m),
                              GET(rf_metrics.recompute_backlog_by_mode[m]));
        gauge(out, "recfresh_recompute_inflight",
              "Recompute requests sent and not yet acknowledged.",
              (double)GET(rf_metrics.recompute_inflight));
        gauge(out, "recfresh_fanout_jobs_pending",
              "Fan-out jobs scheduled and not yet finished.",
              (double)GET(rf_metrics.fanout_pending));
        gauge(out, "recfresh_tombstone_set_entities",
              "Items and campaigns with a global tombstone in force, and "
              "consent revocations in force, held in memory for checks.",
              (double)GET(rf_metrics.tombset_entities));
        gauge(out, "recfresh_store_free_bytes",
              "Free space in the data dir (checked every 100 ms; the "
              "daemon stops below store.min_free_mb).",
              (double)GET(rf_metrics.store_free_bytes));
        gauge(out, "recfresh_outbox_pending",
              "Outbox records (DLQ records, invalidation notices; a fan-out "
              "step's notices are one) queued, not yet acknowledged.",
              (double)GET(rf_metrics.outbox_pending));
        gauge(out, "recfresh_recompute_oldest_age_seconds",
              "Age of the oldest pending recompute entry (0 if none).",
              (double)GET(rf_metrics.recompute_oldest_age_ms) / 1000.0);
        counter(out, "recfresh_refresh_runs_started_total",
                "Scheduled refresh runs started.",
                &rf_metrics.refresh_runs_started);
        counter(out, "recfresh_refresh_runs_finished_total",
                "Scheduled refresh runs finished.",
                &rf_metrics.refresh_runs_finished);
        counter(out, "recfresh_refresh_subjects_total",
                "Subjects queued for recompute by refresh runs.",
                &rf_metrics.refresh_subjects);
        counter(out, "recfresh_activity_records_total",
                "Records taken from recs.activity.v1.",
                &rf_metrics.activity_records);
}

void rf_metrics_render(rf_buf_t *out)
{
        render_events(out);
        render_work(out);
        render_recompute(out);
        render_reads(out);
}
