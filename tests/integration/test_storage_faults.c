/*
 * Integration: an injected RocksDB write error (-Wl,--wrap on the one call
 * that commits batches) stops the daemon with a clear error and a non-zero
 * exit, and never moves offsets past the event it could not apply: after a
 * restart the same event is applied. The recompute queue drops a startup
 * batch whose commit failed, instead of committing it later over newer
 * entries.
 *
 * Injected read errors: an iterator that stops on an error (not at its
 * end) fails a fan-out step without deleting its job, fails a consent
 * purge (of lists, hides or batch-run versions), and fails the start of
 * the outbox, the fan-out and the daemon
 * rather than guess a next sequence number. A consent state that cannot
 * be read fails a read (closed), never serves the list.
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

#include "integration/h_wrap.h"
#include "integration/harness.h"
#include "t_apply.h"
#include "recfresh/apply.h"
#include "recfresh/runs.h"
#include "recfresh/config.h"
#include "recfresh/fanout.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/read.h"
#include "recfresh/recompute.h"
#include "recfresh/store.h"
#include "recfresh/tombstone.h"
#include "recfresh/topics.h"

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

/* Iterator read errors: with iter_ok_left >= 0, RocksDB iterators answer
 * that many more validity checks truly, then every check says "not valid"
 * and every iterator reports an I/O error (what a corrupt block or a
 * failed read does), until it is set back to -1. */
static volatile long iter_ok_left = -1;

unsigned char __real_rocksdb_iter_valid(const rocksdb_iterator_t *it);
unsigned char __wrap_rocksdb_iter_valid(const rocksdb_iterator_t *it);
void __real_rocksdb_iter_get_error(const rocksdb_iterator_t *it, char **errptr);
void __wrap_rocksdb_iter_get_error(const rocksdb_iterator_t *it, char **errptr);

/* Or, with fail_at set, an iterator fails on reaching a key that starts
 * with fail_at (a bad block holding that key). */
static rf_buf_t fail_at;

static int at_bad_key(const rocksdb_iterator_t *it)
{
        size_t klen;
        const char *k;

        if (!fail_at.len || !__real_rocksdb_iter_valid(it))
                return 0;
        k = rocksdb_iter_key(it, &klen);
        return klen >= fail_at.len && !memcmp(k, fail_at.data, fail_at.len);
}

unsigned char __wrap_rocksdb_iter_valid(const rocksdb_iterator_t *it)
{
        long n = __atomic_load_n(&iter_ok_left, __ATOMIC_SEQ_CST);

        if (n == 0 || at_bad_key(it))
                return 0;
        if (n > 0)
                __atomic_sub_fetch(&iter_ok_left, 1, __ATOMIC_SEQ_CST);
        return __real_rocksdb_iter_valid(it);
}

void __wrap_rocksdb_iter_get_error(const rocksdb_iterator_t *it, char **errptr)
{
        if (__atomic_load_n(&iter_ok_left, __ATOMIC_SEQ_CST) == 0 ||
            at_bad_key(it)) {
                *errptr = strdup("Corruption: injected: block checksum "
                                 "mismatch");
                return;
        }
        __real_rocksdb_iter_get_error(it, errptr);
}

/* Point reads of consent state (keys 'C', pseudonym, scope) fail while
 * fail_consent_gets is set, and those of key fail_key while it is set. */
static volatile int fail_consent_gets;
static const char *volatile fail_key;

rocksdb_pinnableslice_t *
__wrap_rocksdb_get_pinned_cf(rocksdb_t *db, const rocksdb_readoptions_t *o,
                             rocksdb_column_family_handle_t *cf,
                             const char *key, size_t klen, char **errptr)
{
        if (__atomic_load_n(&fail_consent_gets, __ATOMIC_SEQ_CST) &&
            klen == 18 && key[0] == RF_TOMB_CONSENT) {
                *errptr = strdup("IO error: injected: read failed");
                return NULL;
        }
        const char *fk = fail_key;
        if (fk && klen == strlen(fk) && !memcmp(key, fk, klen)) {
                *errptr = strdup("IO error: injected: read failed");
                return NULL;
        }
        return __real_rocksdb_get_pinned_cf(db, o, cf, key, klen, errptr);
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

/* A store with an outbox and a fan-out, applying records directly. */
typedef struct fenv {
        char dir[32];
        rf_store_t *st;
        rf_outbox_t *ob;
        rf_fanout_t *fo;
        rf_apply_ctx_t ctx;
        int64_t offset;
} fenv_t;

static void fenv_open(fenv_t *e)
{
        char err[256];

        memset(e, 0, sizeof(*e));
        rf_log_set_level(RF_LOG_ERROR);
        snprintf(e->dir, sizeof(e->dir), "/tmp/rf-if-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        e->st = rf_store_open(e->dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(e->st);
        e->ob = rf_outbox_new(e->st, err, sizeof(err));
        assert_non_null(e->ob);
        e->fo = rf_fanout_new(e->st, err, sizeof(err));
        assert_non_null(e->fo);
        rf_apply_ctx_init(&e->ctx, e->st, NULL, e->ob, e->fo);
}

static void fenv_close(fenv_t *e)
{
        char cmd[64];

        rf_apply_ctx_clear(&e->ctx);
        rf_fanout_destroy(e->fo);
        rf_outbox_destroy(e->ob);
        rf_store_close(e->st);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
        assert_int_equal(system(cmd), 0);
}

static void take(fenv_t *e, int topic, const char *key, const char *json)
{
        t_take(&e->ctx, &e->offset, topic, key, json);
}

static void commit(fenv_t *e)
{
        t_commit(&e->ctx, e->ob);
}

/* What the daemon does after a failed step (daemon.c finish_step). */
static void rollback(fenv_t *e)
{
        rf_txn_clear(e->ctx.txn);
        rf_apply_offsets_drop(&e->ctx);
        rf_outbox_rollback(e->ob);
        assert_int_equal(rf_fanout_reload(e->fo), 0);
}

static void take_list(fenv_t *e, const char *subject, const char *items)
{
        char *js = h_list_json(subject, "home", NULL, "L1",
                               "2026-11-22T01:00:00Z", items);
        take(e, RF_TOPIC_LISTS, subject, js);
        free(js);
}

/* Takes a one-item list of \p subject on "home" for batch run \p run_id
 * (staged, not served), commits it and checks its version is stored;
 * *vk: the version's key. */
static void take_run_list(fenv_t *e, const char *subject, const char *run_id,
                          rf_buf_t *vk)
{
        rf_buf_t lk = { 0 }, v = { 0 };
        char *js = h_fmt("{\"subject_id\":\"%s\",\"surface\":\"home\","
                         "\"list_id\":\"L1\",\"run_id\":\"%s\","
                         "\"generated_at\":\"2026-11-22T01:00:00Z\","
                         "\"expires_at\":\"2099-01-01T00:00:00Z\","
                         "\"model_version\":\"m1\","
                         "\"items\":[{\"item_id\":\"a\",\"score\":1}]}",
                         subject, run_id);

        take(e, RF_TOPIC_LISTS, subject, js);
        commit(e);
        rf_key_list(&lk, subject, "home", "");
        rf_key_version(vk, run_id, strlen(run_id), lk.data, lk.len);
        assert_int_equal(
            rf_store_get(e->st, RF_CF_VERSIONS, vk->data, vk->len, &v), 0);
        free(js);
        rf_buf_free(&lk);
        rf_buf_free(&v);
}

#define FO_LISTS 12

/* A read error in the middle of a fan-out job's walk fails the step: the
 * job is not deleted, and once reads work again every list still gets its
 * notice. */
static void test_fanout_walk_error_keeps_the_job(void **state)
{
        fenv_t e;
        char subject[32], items[32];
        size_t scanned, total = 0;

        (void)state;
        fenv_open(&e);
        for (int i = 0; i < FO_LISTS; i++) {
                snprintf(subject, sizeof(subject), "u-%02d", i);
                snprintf(items, sizeof(items), "x,y%d", i);
                take_list(&e, subject, items);
        }
        take(&e, RF_TOPIC_ITEM_BANS, "x",
             "{\"event_id\":\"ban-x\",\"type\":\"item_banned\","
             "\"item_id\":\"x\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        commit(&e);
        assert_int_equal(rf_fanout_pending(e.fo), 1);

        /* A first step: the job has a cursor. */
        assert_int_equal(rf_fanout_step(&e.ctx, 3, &scanned), 0);
        assert_int_equal(scanned, 3);
        commit(&e);
        total += scanned;

        /* The next walk reads two entries, then fails. */
        __atomic_store_n(&iter_ok_left, 3, __ATOMIC_SEQ_CST);
        assert_int_equal(rf_fanout_step(&e.ctx, 100, &scanned), RF_ESTORE);
        __atomic_store_n(&iter_ok_left, -1, __ATOMIC_SEQ_CST);
        rollback(&e);
        assert_int_equal(rf_fanout_pending(e.fo), 1); /* still stored */

        while (rf_fanout_pending(e.fo)) {
                assert_int_equal(rf_fanout_step(&e.ctx, 100, &scanned), 0);
                commit(&e);
                total += scanned;
        }
        assert_int_equal(total, FO_LISTS); /* every list, once */
        fenv_close(&e);
}

/* The outbox and the fan-out find their next sequence numbers by scanning
 * the store: a scan cut short by a read error fails their opening, and the
 * daemon's start, instead of reusing the numbers of unread records. */
static void test_startup_scan_error_fails_open(void **state)
{
        fenv_t e;
        char err[256] = "";
        rf_outbox_t *ob;
        rf_fanout_t *fo;

        (void)state;
        fenv_open(&e);
        for (int i = 0; i < 2; i++) {
                /* Two fan-out jobs and two outbox records (their DLQ). */
                take(&e, RF_TOPIC_ITEM_BANS, "x",
                     i ? "{\"event_id\":\"u\",\"type\":\"item_unbanned\","
                         "\"item_id\":\"x\","
                         "\"occurred_at\":\"2026-11-22T03:00:00Z\"}"
                       : "{\"event_id\":\"b\",\"type\":\"item_banned\","
                         "\"item_id\":\"x\","
                         "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
                rf_outbox_put(e.ob, e.ctx.txn, RF_TOPIC_DLQ, "k", 1, "v", 1);
        }
        commit(&e);
        assert_int_equal(rf_fanout_pending(e.fo), 2);

        /* The scans see the first key, then fail. */
        __atomic_store_n(&iter_ok_left, 1, __ATOMIC_SEQ_CST);
        ob = rf_outbox_new(e.st, err, sizeof(err));
        assert_null(ob);
        assert_non_null(strstr(err, "outbox"));
        __atomic_store_n(&iter_ok_left, 1, __ATOMIC_SEQ_CST);
        fo = rf_fanout_new(e.st, err, sizeof(err));
        assert_null(fo);
        assert_non_null(strstr(err, "fan-out"));
        __atomic_store_n(&iter_ok_left, -1, __ATOMIC_SEQ_CST);

        /* Read again, they resume after the last record. */
        ob = rf_outbox_new(e.st, err, sizeof(err));
        assert_non_null(ob);
        assert_int_equal(rf_outbox_pending(ob), 2);
        fo = rf_fanout_new(e.st, err, sizeof(err));
        assert_non_null(fo);
        assert_int_equal(rf_fanout_pending(fo), 2);
        rf_outbox_destroy(ob);
        rf_fanout_destroy(fo);
        fenv_close(&e);

        /* The daemon refuses to start, saying why. */
        h_env_t env;
        rf_daemon_t *d;
        char errstr[512] = "";

        h_setup(&env, 1);
        __atomic_store_n(&iter_ok_left, 0, __ATOMIC_SEQ_CST);
        d = rf_daemon_new(&env.conf, errstr, sizeof(errstr));
        __atomic_store_n(&iter_ok_left, -1, __ATOMIC_SEQ_CST);
        assert_null(d);
        assert_non_null(strstr(errstr, "outbox"));
        h_teardown(&env);
}

/* Applies a revocation of u-p's consent while an iterator fails on keys
 * starting with \p bad: it fails, and once reads work it purges. */
static void purge_with_bad_key(const rf_buf_t *bad)
{
        fenv_t e;
        rf_record_t rec = { .topic = RF_TOPIC_CONSENT,
                            .topic_name = rf_topic(RF_TOPIC_CONSENT)->name,
                            .key = "u-p",
                            .key_len = 3,
                            .timestamp_ms = -1 };
        const char *js = "{\"event_id\":\"c1\",\"type\":\"consent_revoked\","
                         "\"user_id\":\"u-p\",\"scope\":\"all\","
                         "\"occurred_at\":\"2026-11-22T02:00:00Z\"}";
        const char *surfaces[] = { "home", "inbox" };
        rf_iter_t *it;

        fenv_open(&e);
        for (int i = 0; i < 2; i++) {
                char *l = h_list_json("u-p", surfaces[i], NULL, "L1",
                                      "2026-11-22T01:00:00Z", "a,b");
                take(&e, RF_TOPIC_LISTS, "u-p", l);
                free(l);
        }
        take(&e, RF_TOPIC_USER_HIDES, "u-p",
             "{\"event_id\":\"h1\",\"type\":\"item_hidden\","
             "\"user_id\":\"u-p\",\"item_id\":\"a\","
             "\"occurred_at\":\"2026-11-22T01:30:00Z\"}");
        take(&e, RF_TOPIC_USER_HIDES, "u-p",
             "{\"event_id\":\"h2\",\"type\":\"item_hidden\","
             "\"user_id\":\"u-p\",\"item_id\":\"b\","
             "\"occurred_at\":\"2026-11-22T01:31:00Z\"}");
        commit(&e);

        rec.value = js;
        rec.value_len = strlen(js);
        rec.offset = e.offset;
        rf_buf_append(&fail_at, bad->data, bad->len);
        assert_int_equal(rf_apply_record(&e.ctx, &rec), RF_ESTORE);
        rf_buf_free(&fail_at);
        rollback(&e);

        /* Applied again with reads working: every list and hide gone. */
        take(&e, RF_TOPIC_CONSENT, "u-p", js);
        commit(&e);
        it = rf_iter_new(e.st, NULL, RF_CF_LISTS, NULL, 0);
        assert_false(rf_iter_valid(it));
        assert_int_equal(rf_iter_status(it), 0);
        rf_iter_destroy(it);
        it = rf_iter_new(e.st, NULL, RF_CF_TOMBSTONES, "H", 1);
        assert_false(rf_iter_valid(it));
        rf_iter_destroy(it);
        fenv_close(&e);
}

/* Nor one whose walk of the user's batch-run versions fails: a run's copy
 * of the list would outlive the purge. */
static void test_consent_purge_run_scan_error_fails(void **state)
{
        fenv_t e;
        rf_buf_t vk = { 0 }, v = { 0 };
        const char *js = "{\"event_id\":\"c1\",\"type\":\"consent_revoked\","
                         "\"user_id\":\"u-r\",\"scope\":\"all\","
                         "\"occurred_at\":\"2026-11-22T02:00:00Z\"}";
        rf_record_t rec = { .topic = RF_TOPIC_CONSENT,
                            .topic_name = rf_topic(RF_TOPIC_CONSENT)->name,
                            .key = "u-r",
                            .key_len = 3,
                            .value = js,
                            .value_len = strlen(js),
                            .timestamp_ms = -1 };
        (void)state;

        rf_config_t conf;
        rf_config_init(&conf); /* staging reads the surfaces' settings */
        fenv_open(&e);
        e.ctx.conf = &conf;
        take_run_list(&e, "u-r", "r1", &vk);

        rec.offset = e.offset;
        rf_buf_append(&fail_at, vk.data, vk.len);
        assert_int_equal(rf_apply_record(&e.ctx, &rec), RF_ESTORE);
        rf_buf_free(&fail_at);
        rollback(&e);
        assert_int_equal(
            rf_store_get(e.st, RF_CF_VERSIONS, vk.data, vk.len, &v), 0);

        /* Applied again with reads working: the version is gone. */
        take(&e, RF_TOPIC_CONSENT, "u-r", js);
        commit(&e);
        assert_int_equal(
            rf_store_get(e.st, RF_CF_VERSIONS, vk.data, vk.len, &v), RF_ENOENT);
        rf_buf_free(&vk);
        rf_buf_free(&v);
        fenv_close(&e);
        rf_config_destroy(&conf);
}

/* A read error while a failed run's version is deleted fails the runs
 * step (not committed), instead of reporting work left and retrying in a
 * spin; once reads work the version goes. */
static void test_version_purge_error_fails_the_step(void **state)
{
        fenv_t e;
        rf_config_t conf;
        rf_buf_t vk = { 0 }, v = { 0 };
        rf_run_info_t ri;
        int r = 0;
        (void)state;

        rf_config_init(&conf);
        fenv_open(&e);
        e.ctx.conf = &conf;
        e.ctx.now_ms = 1796000000000LL;
        take(&e, RF_TOPIC_RUNS, "r9",
             "{\"run_id\":\"r9\",\"type\":\"run_started\","
             "\"surfaces\":[\"home\"],"
             "\"generated_at\":\"2026-11-22T01:00:00Z\"}");
        take_run_list(&e, "u-v", "r9", &vk);
        /* 1 list of 1000 expected: fails validation, its version goes */
        take(&e, RF_TOPIC_RUNS, "r9",
             "{\"run_id\":\"r9\",\"type\":\"run_completed\","
             "\"surfaces\":[\"home\"],\"expected_lists\":1000,"
             "\"generated_at\":\"2026-11-22T01:00:00Z\"}");
        commit(&e);

        /* past runs.completion_timeout: the run is decided */
        e.ctx.now_ms += conf.runs_completion_timeout_ms + 1;
        rf_runs_t *runs = rf_runs_new(e.dir);
        rf_buf_append(&fail_at, vk.data, vk.len);
        for (int i = 0; i < 10 && r == 0; i++) {
                r = rf_runs_step(runs, &e.ctx, 1);
                if (r == 0)
                        commit(&e);
        }
        assert_int_equal(r, RF_ESTORE);
        rf_buf_free(&fail_at);
        rollback(&e);
        for (int i = 0; i < 10 && (i == 0 || rf_runs_busy(runs)); i++) {
                assert_int_equal(rf_runs_step(runs, &e.ctx, 1), 0);
                commit(&e);
                rf_runs_committed(runs, 1);
        }
        assert_false(rf_runs_busy(runs));
        assert_int_equal(
            rf_store_get(e.st, RF_CF_VERSIONS, vk.data, vk.len, &v), RF_ENOENT);
        assert_int_equal(rf_runs_get(e.st, NULL, "r9", &ri), 0);
        assert_int_equal(ri.state, RF_RUN_FAILED_VALIDATION);
        rf_run_info_clear(&ri);
        rf_runs_destroy(runs);
        rf_buf_free(&vk);
        rf_buf_free(&v);
        fenv_close(&e);
        rf_config_destroy(&conf);
}

/* A consent revocation whose scan of the user's lists fails past the
 * first list is not applied: the purge never commits half done. */
static void test_consent_purge_list_scan_error_fails(void **state)
{
        rf_buf_t k = { 0 };

        (void)state;
        rf_key_list(&k, "u-p", "inbox", "");
        purge_with_bad_key(&k);
        rf_buf_free(&k);
}

/* Nor one whose scan of the user's hides fails past the first hide. */
static void test_consent_purge_hide_scan_error_fails(void **state)
{
        rf_buf_t k = { 0 };

        (void)state;
        rf_key_hide(&k, "u-p", RF_IDX_ITEM, "b");
        purge_with_bad_key(&k);
        rf_buf_free(&k);
}

/* Consent state that cannot be read fails the read (as a ban check
 * does): the list is never served unchecked. */
static void test_consent_read_error_fails_closed(void **state)
{
        fenv_t e;
        rf_read_result_t res;
        rf_read_req_t req = { .subject_id = "u-r", .surface = "home" };

        (void)state;
        fenv_open(&e);
        take_list(&e, "u-r", "a,b");
        commit(&e);
        assert_int_equal(rf_read_list(e.st, NULL, &req, &res), 0);
        assert_int_equal(res.status, RF_READ_FOUND);
        assert_int_equal(res.served_cnt, 2);
        rf_read_result_clear(&res);

        __atomic_store_n(&fail_consent_gets, 1, __ATOMIC_SEQ_CST);
        assert_int_equal(rf_read_list(e.st, NULL, &req, &res), RF_ESTORE);
        assert_int_equal(res.served_cnt, 0);
        rf_read_result_clear(&res);
        assert_true(rf_consent_blocks(e.st, NULL, NULL, "u-r", "home") < 0);
        assert_true(rf_consent_purged(e.st, NULL, "u-r") < 0);
        __atomic_store_n(&fail_consent_gets, 0, __ATOMIC_SEQ_CST);

        assert_int_equal(rf_read_list(e.st, NULL, &req, &res), 0);
        assert_int_equal(res.served_cnt, 2);
        rf_read_result_clear(&res);
        fenv_close(&e);
}

/* A consent grant whose recompute request cannot be queued (the queue
 * entry cannot be read) fails its batch, to be taken again: the grant's
 * recompute is never lost while its offset moves on. */
static void test_grant_queue_error_fails_the_batch(void **state)
{
        fenv_t e;
        rf_config_t conf;
        rf_queue_stats_t qs;
        char err[256];
        const char *revoke =
            "{\"event_id\":\"g-1\",\"type\":\"consent_revoked\","
            "\"user_id\":\"u-g\",\"scope\":\"personalization\","
            "\"occurred_at\":\"2026-11-22T01:00:00Z\"}";
        const char *grant =
            "{\"event_id\":\"g-2\",\"type\":\"consent_granted\","
            "\"user_id\":\"u-g\",\"scope\":\"personalization\","
            "\"occurred_at\":\"2026-11-22T02:00:00Z\"}";

        (void)state;
        fenv_open(&e);
        rf_config_init(&conf);
        /* every queue entry read from the store */
        assert_int_equal(rf_config_set(&conf, "recompute.entry_cache_mb", "0",
                                       err, sizeof(err)),
                         0);
        rf_queue_t *q = rf_queue_new(e.st, &conf, rf_now_ms());
        assert_non_null(q);
        e.ctx.queue = q;
        e.ctx.conf = &conf;
        take(&e, RF_TOPIC_CONSENT, "u-g", revoke);
        commit(&e);
        rf_queue_committed(q);

        fail_key = "Pu-g";
        rf_record_t rec = { .topic = RF_TOPIC_CONSENT,
                            .topic_name = rf_topic(RF_TOPIC_CONSENT)->name,
                            .offset = e.offset,
                            .key = "u-g",
                            .key_len = 3,
                            .value = grant,
                            .value_len = strlen(grant),
                            .timestamp_ms = -1 };
        assert_int_not_equal(rf_apply_record(&e.ctx, &rec), 0);
        fail_key = NULL;
        rollback(&e);
        rf_queue_rollback(q);
        rf_queue_stats(q, &qs);
        assert_int_equal(qs.count, 0);

        /* taken again: the request is queued */
        take(&e, RF_TOPIC_CONSENT, "u-g", grant);
        commit(&e);
        rf_queue_committed(q);
        rf_queue_stats(q, &qs);
        assert_int_equal(qs.count, 1);
        e.ctx.queue = NULL;
        rf_queue_destroy(q);
        fenv_close(&e);
        rf_config_destroy(&conf);
}

/* A delivery whose settle cannot be committed (the ack, or the nack that
 * makes the request due again) leaves the entry pending in the store, in
 * no due key and no longer in flight: the queue repairs its due index
 * before its next take, and the request is sent again (at least once, as
 * after a crash there), with the backlog counted right. */
static void test_failed_settle_is_sent_again(void **state)
{
        fenv_t e;
        rf_queue_req_t req;
        rf_queue_stats_t qs;
        int64_t t0 = 1000000;
        (void)state;

        fenv_open(&e);
        rf_queue_t *q = rf_queue_new(e.st, NULL, t0);
        assert_non_null(q);
        for (int acked = 1; acked >= 0; acked--) {
                rf_queue_add_t a = { .subject_id = "u-s", .surface = "home" };
                assert_int_equal(rf_queue_add(q, e.ctx.txn, &a, t0), 0);
                commit(&e);
                rf_queue_committed(q);
                t0 += 60000; /* past the coalescing window */
                assert_int_equal(rf_queue_take(q, t0, &req), 1);
                void *token = req.token;
                rf_queue_req_clear(&req);
                rf_queue_counts(q, &qs);
                assert_int_equal(qs.inflight, 1);

                __atomic_store_n(&fail_writes, 1, __ATOMIC_SEQ_CST);
                assert_int_not_equal(rf_queue_settle(q, token, acked, t0), 0);
                __atomic_store_n(&fail_writes, 0, __ATOMIC_SEQ_CST);

                t0 += 60000;
                assert_int_equal(rf_queue_take(q, t0, &req), 1);
                assert_string_equal(req.subject_id.data, "u-s");
                rf_queue_counts(q, &qs);
                assert_int_equal(qs.count, 1);
                assert_int_equal(qs.inflight, 1);
                token = req.token;
                rf_queue_req_clear(&req);
                assert_int_equal(rf_queue_settle(q, token, 1, t0), 0);
                rf_queue_counts(q, &qs);
                assert_int_equal(qs.count, 0);
                assert_int_equal(rf_queue_take(q, t0 + 60000, &req), 0);
        }
        rf_queue_destroy(q);
        fenv_close(&e);
}

/* A test that failed with a fault armed must not leave it to the next. */
static int no_faults(void **state)
{
        (void)state;
        __atomic_store_n(&fail_writes, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&iter_ok_left, -1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&fail_consent_gets, 0, __ATOMIC_SEQ_CST);
        fail_key = NULL;
        rf_buf_free(&fail_at);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                    test_write_error_stops_without_losing_the_event),
                cmocka_unit_test(test_failed_queue_startup_batch_is_dropped),
                cmocka_unit_test_setup(test_fanout_walk_error_keeps_the_job,
                                       no_faults),
                cmocka_unit_test_setup(test_startup_scan_error_fails_open,
                                       no_faults),
                cmocka_unit_test_setup(test_consent_purge_list_scan_error_fails,
                                       no_faults),
                cmocka_unit_test_setup(test_consent_purge_hide_scan_error_fails,
                                       no_faults),
                cmocka_unit_test_setup(test_consent_read_error_fails_closed,
                                       no_faults),
                cmocka_unit_test_setup(test_consent_purge_run_scan_error_fails,
                                       no_faults),
                cmocka_unit_test_setup(test_version_purge_error_fails_the_step,
                                       no_faults),
                cmocka_unit_test_setup(test_grant_queue_error_fails_the_batch,
                                       no_faults),
                cmocka_unit_test_setup(test_failed_settle_is_sent_again,
                                       no_faults),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
