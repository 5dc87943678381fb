/*
 * Integration: the outbox (outbox.h) through the embedded broker into a real
 * store. A frame of records stored under one sequence number is produced in
 * order and deleted once every record of it was acknowledged:
 *
 *  - a frame and a single record after it arrive once each, in order, and
 *    leave nothing in the store;
 *  - a frame cut short by a full producer queue goes on from where it
 *    stopped, sending no record twice;
 *  - a frame one of whose records failed is produced again whole, and only
 *    then deleted (at least once, as for single records);
 *  - a record no retry can deliver (larger than the producer or the broker
 *    takes) is dropped and counted, and every record after it still
 *    arrives: it does not hold the outbox back for good.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "recfresh/broker.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/topics.h"

#define FRAME       50
#define DEADLINE    30000 /* ms */
#define API_PRODUCE 0     /* the Kafka protocol's ApiKey */

typedef struct env {
        char dir[32];
        rf_broker_t *broker;
        rf_store_t *st;
        rf_outbox_t *ob;
        rd_kafka_t *rk;
        const char *topic;
} env_t;

static rd_kafka_t *producer_max(env_t *e, const char *max_messages,
                                const char *max_bytes)
{
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();

        rd_kafka_conf_set(kc, "bootstrap.servers",
                          rf_broker_bootstraps(e->broker), err, sizeof(err));
        rd_kafka_conf_set(kc, "linger.ms", "0", err, sizeof(err));
        rd_kafka_conf_set(kc, "log_level", "2", err, sizeof(err));
        /* An error the client does not retry on its own: the outbox must. */
        rd_kafka_conf_set(kc, "message.send.max.retries", "0", err,
                          sizeof(err));
        /* Ten records a request: a frame spans several. */
        rd_kafka_conf_set(kc, "batch.num.messages", "10", err, sizeof(err));
        if (max_messages)
                rd_kafka_conf_set(kc, "queue.buffering.max.messages",
                                  max_messages, err, sizeof(err));
        if (max_bytes)
                assert_int_equal(rd_kafka_conf_set(kc, "message.max.bytes",
                                                   max_bytes, err, sizeof(err)),
                                 RD_KAFKA_CONF_OK);
        rf_outbox_conf_set(e->ob, kc);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        assert_non_null(rk);
        return rk;
}

static rd_kafka_t *producer(env_t *e, const char *max_messages)
{
        return producer_max(e, max_messages, NULL);
}

static int setup(void **state)
{
        env_t *e = calloc(1, sizeof(*e));
        char errstr[256];

        if (getenv("RF_TEST_DEBUG") == NULL)
                rf_log_set_level(RF_LOG_ERROR);
        snprintf(e->dir, sizeof(e->dir), "/tmp/rf-ob-XXXXXX");
        if (!mkdtemp(e->dir))
                return -1;
        e->broker = rf_broker_new(1, 1, errstr, sizeof(errstr));
        e->st = rf_store_open(e->dir, RF_STORE_PRIMARY, NULL, errstr,
                              sizeof(errstr));
        if (!e->broker || !e->st)
                return -1;
        e->ob = rf_outbox_new(e->st, errstr, sizeof(errstr));
        e->topic = rf_topic(RF_TOPIC_INVALIDATIONS)->name;
        *state = e;
        return 0;
}

static int teardown(void **state)
{
        env_t *e = *state;
        char cmd[64];

        if (e->rk)
                rd_kafka_destroy(e->rk);
        rf_outbox_destroy(e->ob);
        rf_store_close(e->st);
        rf_broker_destroy(e->broker);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0)
                return -1;
        free(e);
        return 0;
}

/* Queues a frame of FRAME records "<tag>-0".."<tag>-49" (and \p big, if
 * not NULL, after "<tag>-24"), then one single record "<tag>-single", and
 * commits them. */
static void queue_records_with(env_t *e, const char *tag, const rf_buf_t *big)
{
        rf_outbox_frame_t f = { 0 };
        rf_txn_t *txn = rf_txn_new(e->st);
        size_t pending0 = rf_outbox_pending(e->ob);
        char v[64], err[256];

        for (int i = 0; i < FRAME; i++) {
                snprintf(v, sizeof(v), "%s-%d", tag, i);
                rf_outbox_frame_add(&f, RF_TOPIC_INVALIDATIONS, "k", 1, v,
                                    strlen(v));
                if (big && i == FRAME / 2 - 1)
                        rf_outbox_frame_add(&f, RF_TOPIC_INVALIDATIONS, "k", 1,
                                            big->data, big->len);
        }
        rf_outbox_put_frame(e->ob, txn, &f);
        assert_int_equal(f.cnt, 0);
        snprintf(v, sizeof(v), "%s-single", tag);
        rf_outbox_put(e->ob, txn, RF_TOPIC_INVALIDATIONS, "k", 1, v, strlen(v));
        if (rf_txn_commit(txn, err, sizeof(err)))
                fail_msg("%s", err);
        rf_outbox_committed(e->ob);
        rf_txn_destroy(txn);
        rf_outbox_frame_free(&f);
        assert_int_equal(rf_outbox_pending(e->ob) - pending0, 2); /* two */
}

static void queue_records(env_t *e, const char *tag)
{
        queue_records_with(e, tag, NULL);
}

/* Queues and commits the single record \p v. */
static void queue_one(env_t *e, const char *v, size_t len)
{
        rf_txn_t *txn = rf_txn_new(e->st);
        char err[256];

        rf_outbox_put(e->ob, txn, RF_TOPIC_INVALIDATIONS, "k", 1, v, len);
        if (rf_txn_commit(txn, err, sizeof(err)))
                fail_msg("%s", err);
        rf_outbox_committed(e->ob);
        rf_txn_destroy(txn);
}

/* Drains until no record is pending (or the deadline). */
static void drain_pending(env_t *e, size_t max_inflight)
{
        int64_t deadline = rf_mono_ms() + DEADLINE;

        while (rf_outbox_pending(e->ob) && rf_mono_ms() < deadline) {
                rf_outbox_drain(e->ob, e->rk, max_inflight);
                rd_kafka_poll(e->rk, 5);
        }
}

/* Drains until every record is acknowledged and deleted. */
static void drain_all(env_t *e, size_t max_inflight)
{
        drain_pending(e, max_inflight);
        rf_outbox_drain(e->ob, e->rk, 0); /* deletes the last delivered */
        assert_int_equal(rf_outbox_pending(e->ob), 0);
        rf_iter_t *it = rf_iter_new(e->st, NULL, RF_CF_OUTBOX, NULL, 0);
        assert_false(rf_iter_valid(it)); /* nothing left in the store */
        rf_iter_destroy(it);
}

/* The values of \p topic from the beginning, in order, into \p out (one
 * per line), until \p want arrived and the topic stays idle a moment. */
static size_t read_topic(env_t *e, size_t want, rf_buf_t *out)
{
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        size_t n = 0;

        rd_kafka_conf_set(kc, "bootstrap.servers",
                          rf_broker_bootstraps(e->broker), err, sizeof(err));
        rd_kafka_conf_set(kc, "group.id", "t-outbox", err, sizeof(err));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        assert_non_null(rk);
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, e->topic, 0)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(rk, parts), 0);
        rd_kafka_topic_partition_list_destroy(parts);

        int64_t deadline = rf_mono_ms() + DEADLINE;
        int idle = 0;
        while (rf_mono_ms() < deadline && (n < want || idle < 4)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                if (!m) {
                        idle++;
                        continue;
                }
                idle = 0;
                if (!m->err) {
                        rf_buf_append(out, m->payload, m->len);
                        rf_buf_append(out, "\n", 1);
                        n++;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

/* What read_topic() must give for queue_records(tag), once. */
static void expected(const char *tag, rf_buf_t *out)
{
        for (int i = 0; i < FRAME; i++)
                rf_buf_printf(out, "%s-%d\n", tag, i);
        rf_buf_printf(out, "%s-single\n", tag);
}

/* The topic holds exactly the frame queue_records(\p tag) queued, and
 * the record after it, in order, once. */
static void assert_topic_holds(env_t *e, const char *tag)
{
        rf_buf_t got = { 0 }, want = { 0 };

        assert_int_equal(read_topic(e, FRAME + 1, &got), FRAME + 1);
        expected(tag, &want);
        assert_string_equal(got.data, want.data);
        rf_buf_free(&got);
        rf_buf_free(&want);
}

static void test_frame_in_order_once(void **state)
{
        env_t *e = *state;

        e->rk = producer(e, NULL);
        queue_records(e, "a");
        drain_all(e, 1000);
        assert_topic_holds(e, "a");
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS),
                         FRAME + 1);
}

static void test_frame_cut_by_full_queue(void **state)
{
        env_t *e = *state;

        /* Seven records fit in the producer's queue: the frame is sent in
         * pieces over several drains. */
        e->rk = producer(e, "7");
        queue_records(e, "b");
        drain_all(e, 1000);
        assert_topic_holds(e, "b");
}

static void test_failed_frame_produced_again(void **state)
{
        env_t *e = *state;
        rf_buf_t got = { 0 }, want = { 0 };
        uint64_t failed0 = atomic_load(&rf_metrics.outbox_failed);

        e->rk = producer(e, NULL);
        /* The first produce request goes through, the second fails for
         * good (no client retries): a frame partly delivered. */
        rd_kafka_mock_push_request_errors(
            rf_broker_mock(e->broker), API_PRODUCE, 2,
            RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
        queue_records(e, "c");
        drain_all(e, 1000);
        assert_true(atomic_load(&rf_metrics.outbox_failed) > failed0);
        /* What the failed request held is sent again, the whole frame with
         * it: every record arrives, some twice. */
        size_t n = read_topic(e, FRAME + 1, &got);
        assert_true(n > FRAME + 1);
        expected("c", &want);
        for (char *line = strtok(want.data, "\n"); line;
             line = strtok(NULL, "\n")) {
                char needle[80];
                snprintf(needle, sizeof(needle), "\n%s\n", line);
                rf_buf_t g = { 0 };
                rf_buf_append(&g, "\n", 1);
                rf_buf_append(&g, got.data, got.len);
                if (!strstr(g.data, needle))
                        fail_msg("%s never arrived", line);
                rf_buf_free(&g);
        }
        rf_buf_free(&got);
        rf_buf_free(&want);
}

/* Records larger than the producer's message.max.bytes: refused at once,
 * alone and inside a frame. */
static void test_refused_record_dropped(void **state)
{
        env_t *e = *state;
        rf_buf_t big = { 0 };
        uint64_t dropped0 = atomic_load(&rf_metrics.outbox_dropped);

        e->rk = producer_max(e, NULL, "1000");
        for (int i = 0; i < 3000; i++)
                rf_buf_append(&big, "x", 1);
        queue_one(e, big.data, big.len);
        queue_records_with(e, "d", &big);
        assert_int_equal(rf_outbox_pending(e->ob), 3);
        drain_all(e, 1000);
        assert_int_equal(atomic_load(&rf_metrics.outbox_dropped) - dropped0, 2);
        assert_topic_holds(e, "d");
        rf_buf_free(&big);
}

/* A record the broker refuses as too large: its delivery report fails, and
 * it is dropped instead of produced again without end. */
static void test_broker_refusal_dropped(void **state)
{
        env_t *e = *state;
        uint64_t dropped0 = atomic_load(&rf_metrics.outbox_dropped);
        uint64_t failed0 = atomic_load(&rf_metrics.outbox_failed);

        e->rk = producer(e, NULL);
        rd_kafka_mock_push_request_errors(rf_broker_mock(e->broker),
                                          API_PRODUCE, 1,
                                          RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
        queue_one(e, "refused", 7);
        drain_pending(e, 1000);
        assert_int_equal(atomic_load(&rf_metrics.outbox_dropped) - dropped0, 1);
        assert_int_equal(atomic_load(&rf_metrics.outbox_failed), failed0);
        queue_records(e, "e");
        drain_all(e, 1000);
        assert_topic_holds(e, "e");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_frame_in_order_once, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_frame_cut_by_full_queue,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_failed_frame_produced_again, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused_record_dropped,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_broker_refusal_dropped,
                                                setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
