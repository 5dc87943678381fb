/*
 * Integration: every event kind and its reversal, through the real Kafka
 * protocol (embedded broker) into a real RocksDB store, asserted on what
 * reads return. One daemon serves the whole group; each test uses its own
 * subjects and items so tests do not interfere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "integration/harness.h"
#include "recfresh/daemon.h"
#include "recfresh/hide_cache.h"
#include "recfresh/metrics.h"
#include "recfresh/store.h"

static h_env_t env;

#define LISTS     "recs.lists.v1"
#define BANS      "recs.item-bans.v1"
#define STOCK     "recs.stock.v1"
#define HIDES     "recs.user-hides.v1"
#define CONSENT   "recs.consent.v1"
#define CAMPAIGNS "recs.campaigns.v1"

static int group_setup(void **state)
{
        char errstr[256];
        (void)state;
        h_setup(&env, 3);
        /* The "inbox" surface is blocked by email consent only. */
        if (rf_config_set(&env.conf, "surface.inbox.consent_scope", "email",
                          errstr, sizeof(errstr)) ||
            rf_config_set(&env.conf, "limits.max_record_bytes", "65536", errstr,
                          sizeof(errstr)))
                return -1;
        h_daemon_start(&env);
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        h_teardown(&env);
        return 0;
}

static void publish_list(const char *subject, const char *surface,
                         const char *region, const char *list_id,
                         const char *generated_at, const char *items)
{
        char *js =
            h_list_json(subject, surface, region, list_id, generated_at, items);
        h_produce(&env, LISTS, subject, js);
        free(js);
}

static void event(const char *topic, const char *key, const char *json)
{
        h_produce(&env, topic, key, json);
}

static void ban(const char *id, const char *type, const char *item,
                const char *at)
{
        char *js = h_fmt("{\"event_id\":\"%s\",\"type\":\"%s\","
                         "\"item_id\":\"%s\",\"occurred_at\":\"%s\"}",
                         id, type, item, at);
        event(BANS, item, js);
        free(js);
}

static void test_ban_and_unban(void **state)
{
        (void)state;
        publish_list("u-ban", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     "b1,b2,b3");
        h_wait_served(&env, "u-ban", "home", NULL, "b1,b2,b3");

        ban("e-ban-1", "item_banned", "b2", "2026-11-22T02:00:00Z");
        h_wait_served(&env, "u-ban", "home", NULL, "b1,b3");

        /* One invalidation notice per list the ban touched. */
        assert_int_equal(
            h_count_records(&env, "recs.invalidations.v1", "\"e-ban-1\"", 1),
            1);

        ban("e-ban-2", "item_unbanned", "b2", "2026-11-22T03:00:00Z");
        h_wait_served(&env, "u-ban", "home", NULL, "b1,b2,b3");
}

/* A read with a limit decodes the head of the list first; when bans
 * filter all of it, the read decodes the rest and still serves the limit,
 * in stored order. */
static void test_limited_read_past_head(void **state)
{
        rf_buf_t items = { 0 }, want = { 0 };
        (void)state;

        for (int i = 1; i <= 30; i++)
                rf_buf_printf(&items, "%shd%02d", i > 1 ? "," : "", i);
        /* hd05 twice: the second is a duplicate, not served again */
        rf_buf_printf(&items, ",hd05");
        publish_list("u-head", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     items.data);
        for (int i = 1; i <= 14; i++) {
                if (i == 5)
                        continue;
                char id[16], item[16];
                snprintf(id, sizeof(id), "e-hd-%d", i);
                snprintf(item, sizeof(item), "hd%02d", i);
                ban(id, "item_banned", item, "2026-11-22T02:00:00Z");
        }
        for (int i = 5; i <= 30; i++)
                if (i == 5 || i > 14)
                        rf_buf_printf(&want, "%shd%02d", want.len ? "," : "",
                                      i);
        h_wait_served(&env, "u-head", "home", NULL, want.data);
        /* limit 2 decodes 11 entries first: all but hd05 are banned */
        char *s = h_served_n(&env, "u-head", "home", NULL, 2);
        assert_string_equal(s, "hd05,hd15");
        free(s);
        s = h_served_n(&env, "u-head", "home", NULL, 4);
        assert_string_equal(s, "hd05,hd15,hd16,hd17");
        free(s);
        /* more than survive: every survivor, once */
        s = h_served_n(&env, "u-head", "home", NULL, 40);
        assert_string_equal(s, want.data);
        free(s);
        /* Past the head, duplicates of head entries are still found (the
         * duplicate set points into the head: it must outlive the read). */
        rf_buf_reset(&items);
        for (int i = 0; i < 12; i++)
                rf_buf_printf(&items, "hda,");
        rf_buf_printf(&items, "hdb,hda");
        publish_list("u-head2", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     items.data);
        h_wait_served(&env, "u-head2", "home", NULL, "hda,hdb");
        s = h_served_n(&env, "u-head2", "home", NULL, 2);
        assert_string_equal(s, "hda,hdb");
        free(s);
        rf_buf_free(&items);
        rf_buf_free(&want);
}

static void test_list_after_ban(void **state)
{
        (void)state;
        /* The ban arrives first: a list published later is tombstoned on
         * arrival. */
        ban("e-late-1", "item_banned", "lb2", "2026-11-22T02:00:00Z");
        publish_list("u-late", "home", NULL, "L1", "2026-11-22T04:00:00Z",
                     "lb1,lb2,lb3");
        h_wait_served(&env, "u-late", "home", NULL, "lb1,lb3");
}

static void test_out_of_order(void **state)
{
        (void)state;
        publish_list("u-ooo", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     "o1,o2");
        h_wait_served(&env, "u-ooo", "home", NULL, "o1,o2");
        /* Newest by occurred_at wins, whatever the delivery order: the
         * unban (10:00) is delivered before the older ban (09:00). */
        ban("e-ooo-2", "item_unbanned", "o1", "2026-11-22T10:00:00Z");
        ban("e-ooo-1", "item_banned", "o1", "2026-11-22T09:00:00Z");
        /* A marker event behind them proves both were taken. */
        ban("e-ooo-3", "item_banned", "o2", "2026-11-22T09:00:00Z");
        h_wait_served(&env, "u-ooo", "home", NULL, "o1");

        /* Across topics: a stock event for o1 does not lift or add a ban. */
        event(STOCK, "o1",
              "{\"event_id\":\"e-ooo-4\",\"type\":\"stock_changed\","
              "\"item_id\":\"o1\",\"in_stock\":false,"
              "\"occurred_at\":\"2026-11-22T08:00:00Z\"}");
        h_wait_served(&env, "u-ooo", "home", NULL, "");
        event(STOCK, "o1",
              "{\"event_id\":\"e-ooo-5\",\"type\":\"stock_changed\","
              "\"item_id\":\"o1\",\"in_stock\":true,"
              "\"occurred_at\":\"2026-11-22T08:30:00Z\"}");
        h_wait_served(&env, "u-ooo", "home", NULL, "o1");
}

static void test_stock_regional(void **state)
{
        (void)state;
        publish_list("u-eu", "home", "eu", "L1", "2026-11-22T01:00:00Z",
                     "s1,s2,s3");
        publish_list("u-us", "home", "us", "L1", "2026-11-22T01:00:00Z",
                     "s1,s2,s3");
        h_wait_served(&env, "u-eu", "home", NULL, "s1,s2,s3");
        h_wait_served(&env, "u-us", "home", NULL, "s1,s2,s3");

        /* Regional: only eu lists lose s1. */
        event(STOCK, "s1",
              "{\"event_id\":\"e-st-1\",\"type\":\"stock_changed\","
              "\"item_id\":\"s1\",\"in_stock\":false,\"region\":\"eu\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        h_wait_served(&env, "u-eu", "home", NULL, "s2,s3");
        h_wait_served(&env, "u-us", "home", NULL, "s1,s2,s3");

        /* Global: everyone loses s2; then back in stock in eu only (newer
         * than the global state) serves it again in eu. */
        event(STOCK, "s2",
              "{\"event_id\":\"e-st-2\",\"type\":\"stock_changed\","
              "\"item_id\":\"s2\",\"in_stock\":false,"
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        h_wait_served(&env, "u-eu", "home", NULL, "s3");
        h_wait_served(&env, "u-us", "home", NULL, "s1,s3");
        event(STOCK, "s2",
              "{\"event_id\":\"e-st-3\",\"type\":\"stock_changed\","
              "\"item_id\":\"s2\",\"in_stock\":true,\"region\":\"eu\","
              "\"occurred_at\":\"2026-11-22T03:00:00Z\"}");
        h_wait_served(&env, "u-eu", "home", NULL, "s2,s3");
        h_wait_served(&env, "u-us", "home", NULL, "s1,s3");

        /* The regional notice went to the eu list only. */
        assert_int_equal(
            h_count_records(&env, "recs.invalidations.v1", "\"e-st-1\"", 1), 1);
}

static void test_hides(void **state)
{
        (void)state;
        publish_list("u-hide", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     "h1:cA,h2:cB,h3:cB,h4:cC");
        publish_list("u-other", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     "h1:cA,h2:cB");
        h_wait_served(&env, "u-hide", "home", NULL, "h1,h2,h3,h4");
        h_wait_served(&env, "u-other", "home", NULL, "h1,h2");

        event(HIDES, "u-hide",
              "{\"event_id\":\"e-h-1\",\"type\":\"item_hidden\","
              "\"user_id\":\"u-hide\",\"item_id\":\"h1\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        event(HIDES, "u-hide",
              "{\"event_id\":\"e-h-2\",\"type\":\"creator_hidden\","
              "\"user_id\":\"u-hide\",\"creator_id\":\"cB\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        h_wait_served(&env, "u-hide", "home", NULL, "h4");
        /* Hides are per user. */
        h_wait_served(&env, "u-other", "home", NULL, "h1,h2");

        event(HIDES, "u-hide",
              "{\"event_id\":\"e-h-3\",\"type\":\"creator_unhidden\","
              "\"user_id\":\"u-hide\",\"creator_id\":\"cB\","
              "\"occurred_at\":\"2026-11-22T03:00:00Z\"}");
        h_wait_served(&env, "u-hide", "home", NULL, "h2,h3,h4");
        event(HIDES, "u-hide",
              "{\"event_id\":\"e-h-4\",\"type\":\"item_unhidden\","
              "\"user_id\":\"u-hide\",\"item_id\":\"h1\","
              "\"occurred_at\":\"2026-11-22T03:00:00Z\"}");
        h_wait_served(&env, "u-hide", "home", NULL, "h1,h2,h3,h4");
}

static void test_campaign_expiry(void **state)
{
        (void)state;
        publish_list("u-camp", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     "k1::camp-x,k2,k3::camp-x,k4::camp-y");
        h_wait_served(&env, "u-camp", "home", NULL, "k1,k2,k3,k4");
        event(CAMPAIGNS, "camp-x",
              "{\"event_id\":\"e-c-1\",\"type\":\"campaign_expired\","
              "\"campaign_id\":\"camp-x\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        h_wait_served(&env, "u-camp", "home", NULL, "k2,k4");
}

static void test_consent_scope_email(void **state)
{
        (void)state;
        publish_list("u-mail", "inbox", NULL, "L1", "2026-11-22T01:00:00Z",
                     "m1,m2");
        publish_list("u-mail", "home", NULL, "L2", "2026-11-22T01:00:00Z",
                     "m3");
        h_wait_served(&env, "u-mail", "inbox", NULL, "m1,m2");
        event(CONSENT, "u-mail",
              "{\"event_id\":\"e-m-1\",\"type\":\"consent_revoked\","
              "\"user_id\":\"u-mail\",\"scope\":\"email\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        h_wait_served(&env, "u-mail", "inbox", NULL, "<consent_blocked>");
        h_wait_served(&env, "u-mail", "home", NULL, "m3");
        event(CONSENT, "u-mail",
              "{\"event_id\":\"e-m-2\",\"type\":\"consent_granted\","
              "\"user_id\":\"u-mail\",\"scope\":\"email\","
              "\"occurred_at\":\"2026-11-22T03:00:00Z\"}");
        h_wait_served(&env, "u-mail", "inbox", NULL, "m1,m2");
}

/* @returns 1 if the daemon's hide cache holds \p user's hides. */
static int hides_cached(const char *user)
{
        rf_hide_cache_t *hc = rf_store_hide_cache(rf_daemon_store(env.daemon));
        rf_hides_t *h = NULL;
        uint64_t gen = 0;

        assert_non_null(hc);
        if (!rf_hide_cache_get(hc, user, &h, &gen))
                return 0;
        rf_hides_release(h);
        return 1;
}

static void test_consent_purge(void **state)
{
        const char *subject = "subj-purge-7f3a9";
        (void)state;
        publish_list(subject, "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     "p1:pc1:pk1,p2");
        publish_list(subject, "email", NULL, "L2", "2026-11-22T01:00:00Z",
                     "p3");
        event(HIDES, subject,
              "{\"event_id\":\"e-p-0\",\"type\":\"item_hidden\","
              "\"user_id\":\"subj-purge-7f3a9\",\"item_id\":\"p2\","
              "\"occurred_at\":\"2026-11-22T01:30:00Z\"}");
        h_wait_served(&env, subject, "home", NULL, "p1");
        h_wait_served(&env, subject, "email", NULL, "p3");
        assert_true(hides_cached(subject)); /* the reads shared them */

        event(CONSENT, subject,
              "{\"event_id\":\"e-p-1\",\"type\":\"consent_revoked\","
              "\"user_id\":\"subj-purge-7f3a9\",\"scope\":\"all\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        h_wait_served(&env, subject, "home", NULL, "<consent_blocked>");
        h_wait_served(&env, subject, "email", NULL, "<consent_blocked>");

        /* Purged from lists, index and hides. The notices in the outbox
         * name the subject until the broker acknowledges them: wait. */
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        while (h_store_contains(&env, subject) && rf_mono_ms() < deadline)
                usleep(10000);
        assert_false(h_store_contains(&env, subject));
        assert_false(hides_cached(subject)); /* nor in memory */

        /* One notice per purged list. */
        assert_int_equal(
            h_count_records(&env, "recs.invalidations.v1", "\"e-p-1\"", 2), 2);

        /* A list arriving after the revocation is not stored. */
        uint64_t blocked = RF_METRIC_GET(lists_blocked);
        publish_list(subject, "home", NULL, "L3", "2026-11-22T05:00:00Z", "p9");
        deadline = rf_mono_ms() + H_DEADLINE_MS;
        while (RF_METRIC_GET(lists_blocked) == blocked &&
               rf_mono_ms() < deadline)
                usleep(5000);
        assert_true(RF_METRIC_GET(lists_blocked) > blocked);
        assert_false(h_store_contains(&env, subject));
        h_wait_served(&env, subject, "home", NULL, "<consent_blocked>");

        /* Consent granted again: new lists are accepted. (A list applied
         * before the grant is taken is dropped, by design: privacy first;
         * the grant asks the scorer for a fresh list.) */
        uint64_t granted = RF_METRIC_GET(tombstones[RF_EV_CONSENT_GRANTED]);
        event(CONSENT, subject,
              "{\"event_id\":\"e-p-2\",\"type\":\"consent_granted\","
              "\"user_id\":\"subj-purge-7f3a9\",\"scope\":\"all\","
              "\"occurred_at\":\"2026-11-22T06:00:00Z\"}");
        deadline = rf_mono_ms() + H_DEADLINE_MS;
        while (RF_METRIC_GET(tombstones[RF_EV_CONSENT_GRANTED]) == granted &&
               rf_mono_ms() < deadline)
                usleep(5000);
        publish_list(subject, "home", NULL, "L4", "2026-11-22T07:00:00Z",
                     "p10");
        h_wait_served(&env, subject, "home", NULL, "p10");
}

static void test_newer_list_replaces_older(void **state)
{
        (void)state;
        publish_list("u-rep", "home", NULL, "L2", "2026-11-22T02:00:00Z",
                     "r3,r4");
        h_wait_served(&env, "u-rep", "home", NULL, "r3,r4");
        /* Older: ignored. */
        publish_list("u-rep", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     "r1,r2");
        publish_list("u-rep", "home", NULL, "L3", "2026-11-22T03:00:00Z",
                     "r5,r3");
        h_wait_served(&env, "u-rep", "home", NULL, "r5,r3");
        /* The index follows the stored list: r4 left with L2, so banning
         * it invalidates nothing. */
        ban("e-rep-1", "item_banned", "r4", "2026-11-22T04:00:00Z");
        ban("e-rep-2", "item_banned", "r3", "2026-11-22T04:00:00Z");
        h_wait_served(&env, "u-rep", "home", NULL, "r5");
        /* Notices of one subject share a partition, in event order: none
         * for e-rep-1 may stand before e-rep-2's. */
        assert_int_equal(h_count_before(&env, "recs.invalidations.v1",
                                        "\"e-rep-1\"", "\"e-rep-2\""),
                         0);
        assert_int_equal(
            h_count_records(&env, "recs.invalidations.v1", "\"e-rep-2\"", 1),
            1);
}

static void test_contexts_are_separate(void **state)
{
        (void)state;
        char *js =
            h_fmt("{\"subject_id\":\"u-ctx\",\"surface\":\"home\","
                  "\"context_key\":\"morning\",\"list_id\":\"Lm\","
                  "\"generated_at\":\"2026-11-22T01:00:00Z\","
                  "\"expires_at\":\"2099-01-01T00:00:00Z\","
                  "\"model_version\":\"m1\",\"items\":[{\"item_id\":\"x1\","
                  "\"score\":1}]}");
        h_produce(&env, LISTS, "u-ctx", js);
        free(js);
        publish_list("u-ctx", "home", NULL, "L0", "2026-11-22T01:00:00Z", "x2");
        h_wait_served(&env, "u-ctx", "home", "morning", "x1");
        h_wait_served(&env, "u-ctx", "home", NULL, "x2");
}

static void test_bad_records_dead_lettered(void **state)
{
        (void)state;
        publish_list("u-dlq", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                     "d1,d2,d3,d4");
        h_wait_served(&env, "u-dlq", "home", NULL, "d1,d2,d3,d4");

        /* A key far over any id limit (id_too_long): its DLQ record keeps
         * the first 4 KiB. Whole (twice: as key and in the JSON) it was over
         * the producer's message.max.bytes, and held back every output after it
         * for good. */
        size_t klen = 600 * 1024;
        char *hkey = malloc(klen + 1);
        memset(hkey, 'k', klen);
        hkey[klen] = '\0';
        event(BANS, hkey, "{not json");
        free(hkey);
        /* All on the same partition (key d-x), good ones behind bad. */
        event(BANS, "d-x", "{not json");
        event(BANS, "d-x",
              "{\"event_id\":\"e\",\"type\":\"item_banned\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        event(BANS, "d-x",
              "{\"event_id\":\"e\",\"type\":\"item_exploded\","
              "\"item_id\":\"d-x\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        event(BANS, "d-x",
              "{\"event_id\":\"e\",\"type\":\"item_banned\","
              "\"item_id\":\"d-x\",\"occurred_at\":\"yesterday\"}");
        event(BANS, "d-x",
              "{\"event_id\":\"e\",\"type\":\"item_banned\","
              "\"item_id\":\"other\","
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        event(BANS, "d-x",
              "{\"event_id\":\"e\",\"type\":\"item_banned\","
              "\"item_id\":42,"
              "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        /* Over max_record_bytes (64 KiB in this test). */
        size_t big = 100 * 1024;
        char *huge = malloc(big);
        memset(huge, ' ', big);
        memcpy(huge, "{\"x\":1", 6);
        huge[big - 1] = '}';
        h_produce_len(&env, BANS, "d-x", huge, big);
        free(huge);
        /* Good records behind them, same partition as the bad ones. */
        ban("e-dlq-ok", "item_banned", "d2", "2026-11-22T02:00:00Z");
        event(LISTS, "u-dlq", "[1,2,3]");
        h_wait_served(&env, "u-dlq", "home", NULL, "d1,d3,d4");

        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"invalid_json\"", 2), 2);
        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"key_truncated\"", 1), 1);
        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"missing_field\"", 1), 1);
        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"unknown_type\"", 1), 1);
        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"bad_timestamp\"", 1), 1);
        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"key_mismatch\"", 1), 1);
        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"bad_type\"", 1), 1);
        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"too_large\"", 1), 1);
        assert_int_equal(
            h_count_records(&env, "recs.dlq.v1", "\"id_too_long\"", 1), 1);
        /* Each names its source. */
        assert_true(h_count_records(&env, "recs.dlq.v1",
                                    "\"topic\":\"recs.item-bans.v1\"", 8) >= 8);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ban_and_unban),
                cmocka_unit_test(test_limited_read_past_head),
                cmocka_unit_test(test_list_after_ban),
                cmocka_unit_test(test_out_of_order),
                cmocka_unit_test(test_stock_regional),
                cmocka_unit_test(test_hides),
                cmocka_unit_test(test_campaign_expiry),
                cmocka_unit_test(test_consent_scope_email),
                cmocka_unit_test(test_consent_purge),
                cmocka_unit_test(test_newer_list_replaces_older),
                cmocka_unit_test(test_contexts_are_separate),
                cmocka_unit_test(test_bad_records_dead_lettered),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
