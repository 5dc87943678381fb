/*
 * recfresh - the process-wide counters declared in metrics.h.
 */
#include "recfresh/metrics.h"

rf_metrics_t rf_metrics;
