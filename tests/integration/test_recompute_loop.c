/*
 * Integration: the recompute loop through the real Kafka protocol
 * (embedded broker) and a real store. A ban tombstones an entry, the daemon
 * sends one recompute request on recs.recompute.v1 with the ban as its
 * reason, a scorer stand-in answers with a fresh list, and the served list
 * is full again without the banned item. Also: activity is consumed, a
 * consent purge leaves no trace of the subject, and the daemon's scheduled
 * incremental refresh picks an active subject with an expired list.
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
#include "recfresh/activity.h"

static h_env_t env;

#define LISTS     "recs.lists.v1"
#define BANS      "recs.item-bans.v1"
#define CONSENT   "recs.consent.v1"
#define ACTIVITY  "recs.activity.v1"
#define RECOMPUTE "recs.recompute.v1"

static int group_setup(void **state)
{
        char errstr[256];
        (void)state;
        h_setup(&env, 2);
        if (rf_config_set(&env.conf, "recompute.coalesce_ms", "200ms", errstr,
                          sizeof(errstr)) ||
            rf_config_set(&env.conf, "recompute.full_at", "", errstr,
                          sizeof(errstr)) ||
            rf_config_set(&env.conf, "surface.home.min_valid", "2", errstr,
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

static void publish(const char *subject, const char *list_id,
                    const char *generated_at, const char *items)
{
        char *js =
            h_list_json(subject, "home", NULL, list_id, generated_at, items);
        h_produce(&env, LISTS, subject, js);
        free(js);
}

static void test_ban_request_fresh_list(void **state)
{
        (void)state;
        publish("u-loop", "L1", "2026-11-22T01:00:00Z", "a,b,c,d");
        h_wait_served(&env, "u-loop", "home", NULL, "a,b,c,d");

        h_produce(
            &env, BANS, "b",
            "{\"event_id\":\"ib-loop-1\",\"type\":\"item_banned\","
            "\"item_id\":\"b\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        h_wait_served(&env, "u-loop", "home", NULL, "a,c,d");

        /* exactly one request, naming the ban as its reason */
        assert_int_equal(
            h_count_records(&env, RECOMPUTE, "\"event_id\":\"ib-loop-1\"", 1),
            1);
        assert_int_equal(
            h_count_records(&env, RECOMPUTE, "\"subject_id\":\"u-loop\"", 1),
            1);
        /* three valid entries left, min_valid 2: not urgent */
        assert_int_equal(
            h_count_records(&env, RECOMPUTE,
                            "\"priority\":\"normal\",\"reasons\":[{\"type\":"
                            "\"item_banned\",\"event_id\":\"ib-loop-1\"",
                            1),
            1);

        /* the scorer stand-in answers with a fresh list (generated now) */
        char ts[40];
        rf_time_format(rf_now_ms() + 1000, ts, sizeof(ts));
        publish("u-loop", "L2", ts, "a,c,d,e");
        h_wait_served(&env, "u-loop", "home", NULL, "a,c,d,e");
}

static void test_urgent_below_min_valid(void **state)
{
        (void)state;
        publish("u-urg", "L1", "2026-11-22T01:00:00Z", "x1,x2");
        h_wait_served(&env, "u-urg", "home", NULL, "x1,x2");
        h_produce(
            &env, BANS, "x1",
            "{\"event_id\":\"ib-urg-1\",\"type\":\"item_banned\","
            "\"item_id\":\"x1\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        assert_int_equal(
            h_count_records(&env, RECOMPUTE, "\"priority\":\"urgent\"", 1), 1);
}

static void test_consent_purge_leaves_no_trace(void **state)
{
        (void)state;
        publish("u-priv-77", "L1", "2026-11-22T01:00:00Z", "p1,p2,p3");
        h_produce(
            &env, ACTIVITY, "u-priv-77",
            "{\"user_id\":\"u-priv-77\",\"at\":\"2026-11-22T01:00:00Z\"}");
        h_wait_served(&env, "u-priv-77", "home", NULL, "p1,p2,p3");
        h_produce(
            &env, BANS, "p2",
            "{\"event_id\":\"ib-priv\",\"type\":\"item_banned\","
            "\"item_id\":\"p2\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        h_wait_served(&env, "u-priv-77", "home", NULL, "p1,p3");
        h_produce(&env, CONSENT, "u-priv-77",
                  "{\"event_id\":\"cr-77\",\"type\":\"consent_revoked\","
                  "\"user_id\":\"u-priv-77\",\"scope\":\"all\","
                  "\"occurred_at\":\"2026-11-22T03:00:00Z\"}");
        h_wait_served(&env, "u-priv-77", "home", NULL, "<consent_blocked>");
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        while (h_store_contains(&env, "u-priv-77") && rf_mono_ms() < deadline)
                usleep(20000);
        assert_false(h_store_contains(&env, "u-priv-77"));
}

static void test_scheduled_incremental(void **state)
{
        char errstr[256], ts[40], *js;
        (void)state;

        /* active now, list expired: the hourly run (here every 1s) picks
         * it; an inactive subject with an expired list is not picked */
        h_daemon_stop(&env);
        assert_int_equal(rf_config_set(&env.conf, "recompute.incremental_every",
                                       "1s", errstr, sizeof(errstr)),
                         0);
        h_daemon_start(&env);
        js = h_fmt("{\"subject_id\":\"u-act\",\"surface\":\"home\","
                   "\"list_id\":\"LA\",\"generated_at\":"
                   "\"2026-11-22T01:00:00Z\",\"expires_at\":"
                   "\"2026-11-22T02:00:00Z\",\"model_version\":\"m\","
                   "\"items\":[{\"item_id\":\"z\",\"score\":1}]}");
        h_produce(&env, LISTS, "u-act", js);
        free(js);
        js = h_fmt("{\"subject_id\":\"u-idle\",\"surface\":\"home\","
                   "\"list_id\":\"LI\",\"generated_at\":"
                   "\"2026-11-22T01:00:00Z\",\"expires_at\":"
                   "\"2026-11-22T02:00:00Z\",\"model_version\":\"m\","
                   "\"items\":[{\"item_id\":\"z\",\"score\":1}]}");
        h_produce(&env, LISTS, "u-idle", js);
        free(js);
        rf_time_format(rf_now_ms(), ts, sizeof(ts));
        js = h_fmt("{\"user_id\":\"u-act\",\"at\":\"%s\"}", ts);
        h_produce(&env, ACTIVITY, "u-act", js);
        free(js);
        assert_true(h_count_records(&env, RECOMPUTE,
                                    "\"reasons\":[{\"type\":\"list_expired\"",
                                    1) >= 1);
        assert_true(
            h_count_records(&env, RECOMPUTE, "\"mode\":\"active\"", 1) >= 1);
        assert_int_equal(
            h_count_records(&env, RECOMPUTE, "\"subject_id\":\"u-idle\"", 0),
            0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ban_request_fresh_list),
                cmocka_unit_test(test_urgent_below_min_valid),
                cmocka_unit_test(test_consent_purge_leaves_no_trace),
                cmocka_unit_test(test_scheduled_incremental),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
