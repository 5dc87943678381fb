/*
 * Integration: an injected RocksDB write error (-Wl,--wrap on the one call
 * that commits batches) stops the daemon with a clear error and a non-zero
 * exit, and never moves offsets past the event it could not apply: after a
 * restart the same event is applied. The recompute queue drops a startup
 * batch whose commit failed, instead of committing it later over newer
 * entries.
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
#include "recfresh/apply.h"
#include "recfresh/config.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/recompute.h"
#include "recfresh/store.h"

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

/* rf_queue_new() rebuilds the due index and deletes corrupt entries in
 * the queue's own batch. When that commit fails, the batch must be
 * dropped: committed with the queue's next batch, its deletes would remove
 * an entry written since, which the queue's entry cache would still hold. */
static void test_failed_queue_startup_batch_is_dropped(void **state)
{
        char dir[] = "/tmp/rf-qf-XXXXXX", err[256], cmd[64];
        rf_config_t conf;
        rf_store_t *st;
        rf_queue_t *q;
        rf_apply_ctx_t ctx;
        rf_txn_t *t;
        rf_buf_t v = { 0 };
        rf_queue_req_t req;
        const int64_t t0 = INT64_C(1795341600000);

        (void)state;
        rf_log_set_level(RF_LOG_ERROR);
        assert_non_null(mkdtemp(dir));
        rf_config_init(&conf);
        st = rf_store_open(dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st);
        /* a corrupt pending entry: the startup batch deletes it */
        t = rf_txn_new(st);
        rf_txn_put(t, RF_CF_QUEUE, "Pu-c", 4, "\x07junk", 5);
        assert_int_equal(rf_txn_commit(t, err, sizeof(err)), 0);
        rf_txn_destroy(t);

        __atomic_store_n(&fail_writes, 1, __ATOMIC_SEQ_CST);
        q = rf_queue_new(st, &conf, t0); /* its startup commit fails */
        __atomic_store_n(&fail_writes, 0, __ATOMIC_SEQ_CST);

        /* An event queues a recompute of u-c: committed. */
        rf_apply_ctx_init(&ctx, st, &conf, NULL, NULL);
        ctx.queue = q;
        rf_queue_add_t a = { .subject_id = "u-c",
                             .surface = "home",
                             .mode = RF_RC_INCREMENTAL,
                             .reason_type = "item_banned",
                             .event_id = "ev-1",
                             .entity_kind = "item",
                             .entity_id = "i1" };
        assert_int_equal(rf_queue_add(q, ctx.txn, &a, t0), 0);
        assert_int_equal(rf_txn_commit(ctx.txn, err, sizeof(err)), 0);
        rf_queue_committed(q);

        /* The queue's own next commit (nothing due yet) ... */
        assert_int_equal(rf_queue_take(q, t0, &req), 0);
        /* ... leaves the entry, which is then sent. */
        assert_int_equal(rf_store_get(st, RF_CF_QUEUE, "Pu-c", 4, &v), 0);
        assert_int_equal(rf_queue_take(q, t0 + 60000, &req), 1);
        assert_int_equal(rf_queue_settle(q, req.token, 1, t0 + 60000), 0);
        rf_queue_req_clear(&req);

        rf_buf_free(&v);
        rf_apply_ctx_clear(&ctx);
        rf_queue_destroy(q);
        rf_store_close(st);
        rf_config_destroy(&conf);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                    test_write_error_stops_without_losing_the_event),
                cmocka_unit_test(test_failed_queue_startup_batch_is_dropped),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
