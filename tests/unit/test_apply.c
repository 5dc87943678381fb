/*
 * recfresh - unit tests: what the apply path stores besides the effects of
 * a record: the consumed offsets, one per partition per batch, in the same
 * transaction (apply.h); the numbered purging consent revocations a bulk
 * load in flight is checked against (tombstone.h), kept across a grant and
 * forgotten after 7 days.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recfresh/apply.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/tombstone.h"
#include "recfresh/topics.h"
#include "t_apply.h"

static int64_t stored_next(rf_store_t *st, const char *topic, int32_t part)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int64_t next = -1;

        rf_key_offset(&k, topic, part);
        if (rf_store_get(st, RF_CF_OFFSETS, k.data, k.len, &v) == 0) {
                rf_cur_t c = { v.data, v.data + v.len, 0 };
                assert_int_equal(v.len, 8);
                next = (int64_t)rf_cur_be64(&c);
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        return next;
}

static void take(rf_apply_ctx_t *ctx, const char *topic, int32_t part,
                 int64_t offset)
{
        static const char js[] = "{\"user_id\":\"u1\","
                                 "\"at\":\"2026-11-22T01:00:00Z\"}";
        rf_record_t rec = { .topic = rf_topic_by_name(topic),
                            .topic_name = topic,
                            .partition = part,
                            .offset = offset,
                            .value = js,
                            .value_len = strlen(js),
                            .timestamp_ms = -1 };

        assert_int_equal(rf_apply_record(ctx, &rec), 0);
}

static void test_offsets_once_per_partition(void **state)
{
        char dir[] = "/tmp/rf-ap-XXXXXX", err[256], cmd[64];
        rf_apply_ctx_t ctx;
        rf_outbox_t *ob;
        rf_store_t *st;
        size_t n;

        (void)state;
        assert_non_null(mkdtemp(dir));
        st = rf_store_open(dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st);
        ob = rf_outbox_new(st, err, sizeof(err)); /* for the rejected record */
        rf_apply_ctx_init(&ctx, st, NULL, ob, NULL);

        /* Two topics, the same partition numbers, interleaved; a topic
         * recfresh does not consume is rejected, and its offset kept too. */
        take(&ctx, "recs.activity.v1", 0, 10);
        take(&ctx, "recs.activity.v1", 1, 5);
        take(&ctx, "recs.item-bans.v1", 0, 99);
        take(&ctx, "recs.activity.v1", 0, 11);
        take(&ctx, "other.topic", 3, 7);
        take(&ctx, "recs.activity.v1", 0, 12);
        /* No offset is in the batch before the put, then one per
         * partition. */
        n = rf_txn_count(ctx.txn);
        assert_int_equal(stored_next(st, "recs.activity.v1", 0), -1);
        rf_apply_offsets_put(&ctx);
        assert_int_equal(rf_txn_count(ctx.txn), n + 4);
        assert_int_equal(rf_txn_commit(ctx.txn, err, sizeof(err)), 0);
        assert_int_equal(stored_next(st, "recs.activity.v1", 0), 13);
        assert_int_equal(stored_next(st, "recs.activity.v1", 1), 6);
        assert_int_equal(stored_next(st, "recs.item-bans.v1", 0), 100);
        assert_int_equal(stored_next(st, "other.topic", 3), 8);

        /* The next batch puts only the partitions it took. */
        rf_apply_offsets_put(&ctx);
        assert_int_equal(rf_txn_count(ctx.txn), 0);
        take(&ctx, "recs.activity.v1", 1, 6);
        n = rf_txn_count(ctx.txn);
        rf_apply_offsets_put(&ctx);
        assert_int_equal(rf_txn_count(ctx.txn), n + 1);
        assert_int_equal(rf_txn_commit(ctx.txn, err, sizeof(err)), 0);
        assert_int_equal(stored_next(st, "recs.activity.v1", 1), 7);
        assert_int_equal(stored_next(st, "recs.activity.v1", 0), 13);

        /* A dropped batch leaves nothing to put. */
        take(&ctx, "recs.activity.v1", 0, 13);
        rf_txn_clear(ctx.txn);
        rf_apply_offsets_drop(&ctx);
        rf_apply_offsets_put(&ctx);
        assert_int_equal(rf_txn_count(ctx.txn), 0);
        assert_int_equal(stored_next(st, "recs.activity.v1", 0), 13);

        rf_apply_ctx_clear(&ctx);
        rf_outbox_destroy(ob);
        rf_store_close(st);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

/* Every activity record taken is counted, the stale ones too (the same
 * user and time again): the bench and dashboards add the counter to the
 * events taken to tell what the daemon has applied. */
static void test_stale_activity_is_counted(void **state)
{
        char dir[] = "/tmp/rf-ap-XXXXXX", err[256], cmd[64];
        rf_apply_ctx_t ctx;
        rf_store_t *st;

        (void)state;
        assert_non_null(mkdtemp(dir));
        st = rf_store_open(dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st);
        rf_apply_ctx_init(&ctx, st, NULL, NULL, NULL);
        uint64_t before = atomic_load(&rf_metrics.activity_records);
        for (int64_t off = 0; off < 3; off++)
                take(&ctx, "recs.activity.v1", 0, off);
        assert_int_equal(atomic_load(&rf_metrics.activity_records) - before, 3);
        rf_apply_ctx_clear(&ctx);
        rf_store_close(st);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

static void consent_event(rf_apply_ctx_t *ctx, const char *user,
                          const char *scope, const char *type,
                          const char *event_id, const char *at)
{
        static int64_t offset;
        char js[512];

        snprintf(js, sizeof(js),
                 "{\"event_id\":\"%s\",\"type\":\"%s\",\"user_id\":\"%s\","
                 "\"scope\":\"%s\",\"occurred_at\":\"%s\"}",
                 event_id, type, user, scope, at);
        t_take(ctx, &offset, rf_topic_by_name("recs.consent.v1"), user, js);
}

static void test_consent_revocations_numbered(void **state)
{
        char dir[] = "/tmp/rf-ap-XXXXXX", err[256], cmd[64];
        const int64_t day = 24 * 3600 * 1000;
        unsigned char pn_a[16], pn_b[16], *pns;
        rf_apply_ctx_t ctx;
        rf_store_t *st;
        uint64_t mark;
        size_t cnt;

        (void)state;
        assert_non_null(mkdtemp(dir));
        st = rf_store_open(dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st);
        rf_apply_ctx_init(&ctx, st, NULL, NULL, NULL);
        rf_store_pseudonym(st, "user-a", pn_a);
        rf_store_pseudonym(st, "user-b", pn_b);
        assert_int_equal(rf_consent_revoked_mark(st, NULL, &mark), 0);
        assert_int_equal(mark, 0);

        ctx.now_ms = 1000 * day;
        consent_event(&ctx, "user-a", "all", "consent_revoked", "e1",
                      "2026-11-22T01:00:00Z");
        /* email does not purge: not numbered */
        consent_event(&ctx, "user-b", "email", "consent_revoked", "e2",
                      "2026-11-22T01:00:00Z");
        assert_int_equal(rf_txn_commit(ctx.txn, err, sizeof(err)), 0);
        assert_int_equal(rf_consent_revoked_mark(st, NULL, &mark), 0);
        assert_int_equal(mark, 1);
        assert_int_equal(rf_consent_revoked_since(st, NULL, 1, &pns, &cnt), 0);
        assert_int_equal(cnt, 0);

        /* Revoked, then granted again: still there after the mark. */
        consent_event(&ctx, "user-b", "personalization", "consent_revoked",
                      "e3", "2026-11-22T01:00:01Z");
        consent_event(&ctx, "user-b", "personalization", "consent_granted",
                      "e4", "2026-11-22T01:00:02Z");
        assert_int_equal(rf_txn_commit(ctx.txn, err, sizeof(err)), 0);
        assert_int_equal(rf_consent_revoked_since(st, NULL, 0, &pns, &cnt), 0);
        assert_int_equal(cnt, 2);
        assert_memory_equal(pns, pn_a, 16);
        assert_memory_equal(pns + 16, pn_b, 16);
        free(pns);
        assert_int_equal(rf_consent_revoked_since(st, NULL, 1, &pns, &cnt), 0);
        assert_int_equal(cnt, 1);
        assert_memory_equal(pns, pn_b, 16);
        free(pns);

        /* Eight days on, the next revocation forgets those two: a mark
         * before them can no longer be answered. */
        ctx.now_ms += 8 * day;
        consent_event(&ctx, "user-a", "personalization", "consent_revoked",
                      "e5", "2026-11-22T01:00:03Z");
        assert_int_equal(rf_txn_commit(ctx.txn, err, sizeof(err)), 0);
        assert_int_equal(rf_consent_revoked_mark(st, NULL, &mark), 0);
        assert_int_equal(mark, 3);
        assert_int_equal(rf_consent_revoked_since(st, NULL, 1, &pns, &cnt),
                         RF_ENOENT);
        assert_null(pns);
        assert_int_equal(rf_consent_revoked_since(st, NULL, 2, &pns, &cnt), 0);
        assert_int_equal(cnt, 1);
        assert_memory_equal(pns, pn_a, 16);
        free(pns);

        rf_apply_ctx_clear(&ctx);
        rf_store_close(st);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_offsets_once_per_partition),
                cmocka_unit_test(test_stale_activity_is_counted),
                cmocka_unit_test(test_consent_revocations_numbered),
        };
        rf_log_set_level(RF_LOG_ERROR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
