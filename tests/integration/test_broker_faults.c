/*
 * Integration: broker faults injected with the mock cluster (brokers down
 * and up, request errors, leader changes). The service keeps running, keeps
 * serving reads from the store while the broker is away, resumes, and loses
 * nothing: every event produced is applied and every notice delivered.
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
#include "recfresh/metrics.h"

#define BROKERS       3
#define API_PRODUCE   0
#define API_FETCH     1
#define API_HEARTBEAT 12

static h_env_t env;

static int group_setup(void **state)
{
        char *js;
        (void)state;
        h_setup_brokers(&env, 1, BROKERS);
        h_daemon_start(&env);
        js = h_list_json("u-bf", "home", NULL, "L1", "2026-11-22T01:00:00Z",
                         "a,b,c,d,e");
        h_produce(&env, "recs.lists.v1", "u-bf", js);
        free(js);
        h_wait_served(&env, "u-bf", "home", NULL, "a,b,c,d,e");
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        h_teardown(&env);
        return 0;
}

static void ban(const char *id, const char *item)
{
        char *js = h_fmt("{\"event_id\":\"%s\",\"type\":\"item_banned\","
                         "\"item_id\":\"%s\","
                         "\"occurred_at\":\"2026-11-22T02:00:00Z\"}",
                         id, item);
        h_produce(&env, "recs.item-bans.v1", item, js);
        free(js);
}

/* Waits until readiness is \p want (with \p why in the reason when not). */
static void wait_readiness(int want, const char *why)
{
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        char reason[256] = "";
        int ready = -1;

        while (rf_mono_ms() < deadline) {
                ready = rf_daemon_readiness(env.daemon, reason, sizeof(reason));
                if (ready == want && (!why || strstr(reason, why)))
                        return;
                usleep(50000);
        }
        fail_msg("readiness %d (%s), want %d%s%s", ready, reason, want,
                 why ? ": " : "", why ? why : "");
}

static void test_reads_served_while_brokers_down(void **state)
{
        rd_kafka_mock_cluster_t *mc = rf_broker_mock(env.broker);
        (void)state;

        wait_readiness(1, NULL);
        for (int b = 1; b <= BROKERS; b++)
                rd_kafka_mock_broker_set_down(mc, b);
        /* Not ready (no broker reachable), and the store keeps serving:
         * reads throughout the outage. */
        int64_t until = rf_mono_ms() + 1500;
        while (rf_mono_ms() < until) {
                char *got = h_served(&env, "u-bf", "home", NULL);
                assert_string_equal(got, "a,b,c,d,e");
                free(got);
                usleep(50000);
        }
        wait_readiness(0, "no Kafka broker reachable");
        char *got = h_served(&env, "u-bf", "home", NULL);
        assert_string_equal(got, "a,b,c,d,e");
        free(got);
        for (int b = 1; b <= BROKERS; b++)
                rd_kafka_mock_broker_set_up(mc, b);
        wait_readiness(1, NULL);
        /* And the consumer resumes: an event after the outage applies. */
        ban("e-bf-1", "a");
        h_wait_served(&env, "u-bf", "home", NULL, "b,c,d,e");
}

static void test_fetch_errors_lose_nothing(void **state)
{
        rd_kafka_mock_cluster_t *mc = rf_broker_mock(env.broker);
        (void)state;

        rd_kafka_mock_push_request_errors(
            mc, API_FETCH, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
        ban("e-bf-2", "b");
        h_wait_served(&env, "u-bf", "home", NULL, "c,d,e");
}

static void test_leader_change(void **state)
{
        rd_kafka_mock_cluster_t *mc = rf_broker_mock(env.broker);
        (void)state;

        for (int b = 1; b <= BROKERS; b++) {
                assert_int_equal(rd_kafka_mock_partition_set_leader(
                                     mc, "recs.item-bans.v1", 0, b),
                                 0);
                assert_int_equal(rd_kafka_mock_partition_set_leader(
                                     mc, "recs.lists.v1", 0, b),
                                 0);
        }
        ban("e-bf-3", "c");
        h_wait_served(&env, "u-bf", "home", NULL, "d,e");
}

static void test_produce_errors_deliver_notices(void **state)
{
        rd_kafka_mock_cluster_t *mc = rf_broker_mock(env.broker);
        (void)state;

        /* The outbox producer hits errors; retries deliver every notice. */
        rd_kafka_mock_push_request_errors(
            mc, API_PRODUCE, 4, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
        ban("e-bf-4", "d");
        h_wait_served(&env, "u-bf", "home", NULL, "e");
        for (int i = 1; i <= 4; i++) {
                char needle[32];
                snprintf(needle, sizeof(needle), "\"e-bf-%d\"", i);
                assert_true(h_count_records(&env, "recs.invalidations.v1",
                                            needle, 1) >= 1);
        }
}

/* The coordinator forgets us (a session timeout seen by the group, not
 * by us): the assignment is lost, and another instance could have taken
 * the partitions and applied events this store has not. They are served
 * again only once caught up at the next assignment, not straight away as
 * after a plain revocation. */
static void test_lost_assignment_caught_up_before_served(void **state)
{
        rd_kafka_mock_cluster_t *mc = rf_broker_mock(env.broker);
        uint64_t rebuilds = RF_METRIC_GET(partition_rebuilds);
        (void)state;

        rd_kafka_mock_push_request_errors(mc, API_HEARTBEAT, 1,
                                          RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID);
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        while (RF_METRIC_GET(partition_rebuilds) == rebuilds &&
               rf_mono_ms() < deadline)
                usleep(20000);
        assert_true(RF_METRIC_GET(partition_rebuilds) > rebuilds);
        ban("e-bf-5", "e");
        h_wait_served(&env, "u-bf", "home", NULL, "");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reads_served_while_brokers_down),
                cmocka_unit_test(test_fetch_errors_lose_nothing),
                cmocka_unit_test(test_leader_change),
                cmocka_unit_test(test_produce_errors_deliver_notices),
                cmocka_unit_test(test_lost_assignment_caught_up_before_served),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
