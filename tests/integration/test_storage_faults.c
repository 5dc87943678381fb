/*
 * Integration: an injected RocksDB write error (-Wl,--wrap on the one call
 * that commits batches) stops the daemon with a clear error and a non-zero
 * exit, and never moves offsets past the event it could not apply: after a
 * restart the same event is applied.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <rocksdb/c.h>

#include "integration/harness.h"
#include "recfresh/metrics.h"

static volatile int fail_writes;

void __real_rocksdb_write_writebatch_wi(rocksdb_t *db,
                                        const rocksdb_writeoptions_t *o,
                                        rocksdb_writebatch_wi_t *wb,
                                        char **errptr);
void __wrap_rocksdb_write_writebatch_wi(rocksdb_t *db,
                                        const rocksdb_writeoptions_t *o,
                                        rocksdb_writebatch_wi_t *wb,
                                        char **errptr);

void __wrap_rocksdb_write_writebatch_wi(rocksdb_t *db,
                                        const rocksdb_writeoptions_t *o,
                                        rocksdb_writebatch_wi_t *wb,
                                        char **errptr)
{
        if (__atomic_load_n(&fail_writes, __ATOMIC_SEQ_CST)) {
                /* What RocksDB reports for a failed WAL append. */
                *errptr = strdup("IO error: injected: No space left on "
                                 "device");
                return;
        }
        __real_rocksdb_write_writebatch_wi(db, o, wb, errptr);
}

static void test_write_error_stops_without_losing_the_event(void **state)
{
        h_env_t env;
        char *js;
        (void)state;

        h_setup(&env, 1);
        h_daemon_start(&env);
        js = h_list_json("u-fault", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                         "f1,f2,f3");
        h_produce(&env, "recs.lists.v1", "u-fault", js);
        free(js);
        h_wait_served(&env, "u-fault", "home", NULL, "f1,f2,f3");

        uint64_t errors = RF_METRIC_GET(store_errors);
        __atomic_store_n(&fail_writes, 1, __ATOMIC_SEQ_CST);
        h_produce(&env, "recs.item-bans.v1", "f2",
                  "{\"event_id\":\"e-fault\",\"type\":\"item_banned\","
                  "\"item_id\":\"f2\","
                  "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");

        /* A failed commit is fatal: non-zero exit, nothing half-applied. */
        assert_int_equal(h_daemon_wait_exit(&env), 1);
        assert_true(RF_METRIC_GET(store_errors) > errors);
        __atomic_store_n(&fail_writes, 0, __ATOMIC_SEQ_CST);

        /* Restart: the offset was not committed, so the ban is consumed
         * again and applied. */
        h_daemon_start(&env);
        h_wait_served(&env, "u-fault", "home", NULL, "f1,f3");
        h_teardown(&env);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                    test_write_error_stops_without_losing_the_event),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
