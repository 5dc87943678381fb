/*
 * recfresh - privacy compaction after consent purges (see purge.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/purge.h"

struct rf_compactor {
        rf_store_t *st;
        int64_t after_ms;
        uint64_t seen_purges; /* consent_purges covered by a compaction */
        int64_t first_purge;  /* mono ms of the first uncovered purge, 0 */
        pthread_t thr;
        int running;         /* a thread was started and not joined */
        atomic_int finished; /* the thread is done */
        atomic_uint_fast64_t done;
};

static void *compact_main(void *arg)
{
        rf_compactor_t *c = arg;
        char errstr[512];
        int64_t t0 = rf_mono_ms();

        if (rf_store_compact_all(c->st, errstr, sizeof(errstr)) != 0)
                rf_log_error("purge", "privacy compaction failed: %s", errstr);
        else
                rf_log_info("purge", "privacy compaction done in %lld ms",
                            (long long)(rf_mono_ms() - t0));
        atomic_fetch_add(&c->done, 1);
        atomic_store(&c->finished, 1);
        return NULL;
}

rf_compactor_t *rf_compactor_new(rf_store_t *st, int64_t after_ms)
{
        rf_compactor_t *c = rf_calloc(1, sizeof(*c));

        c->st = st;
        c->after_ms = after_ms;
        c->seen_purges = RF_METRIC_GET(consent_purges);
        return c;
}

void rf_compactor_tick(rf_compactor_t *c, int64_t now)
{
        uint64_t purges;

        if (!c || c->after_ms <= 0)
                return;
        if (c->running && atomic_load(&c->finished)) {
                pthread_join(c->thr, NULL);
                c->running = 0;
        }
        purges = RF_METRIC_GET(consent_purges);
        if (purges == c->seen_purges || c->running)
                return;
        if (!c->first_purge)
                c->first_purge = now;
        if (now - c->first_purge < c->after_ms)
                return;
        /* Purges after this point are covered by this compaction only if
         * they committed before it flushed; count them for the next one. */
        c->seen_purges = purges;
        c->first_purge = 0;
        atomic_store(&c->finished, 0);
        if (pthread_create(&c->thr, NULL, compact_main, c) != 0) {
                rf_log_error("purge", "cannot start the compaction thread");
                return;
        }
        c->running = 1;
}

uint64_t rf_compactor_done(const rf_compactor_t *c)
{
        return atomic_load(&((rf_compactor_t *)c)->done);
}

void rf_compactor_destroy(rf_compactor_t *c)
{
        if (!c)
                return;
        if (c->running)
                pthread_join(c->thr, NULL);
        free(c);
}
