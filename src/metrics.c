/*
 * recfresh - the process-wide counters declared in metrics.h.
 */
#include "recfresh/metrics.h"

rf_metrics_t rf_metrics;

const uint64_t rf_hist_fanout_bounds[RF_HIST_BUCKETS] = {
        0,   1,   2,    5,    10,   20,    50,     100,
        200, 500, 1000, 2000, 5000, 10000, 100000, 1000000,
};

const uint64_t rf_hist_latency_bounds[RF_HIST_BUCKETS] = {
        1,   2,    5,    10,   25,    50,    100,   250,
        500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
};

void rf_hist_observe(rf_hist_t *h, const uint64_t *bounds, uint64_t v)
{
        size_t i = 0;

        while (i < RF_HIST_BUCKETS && v > bounds[i])
                i++;
        atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}
