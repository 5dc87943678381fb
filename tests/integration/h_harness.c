/*
 * recfresh integration-test harness (see harness.h).
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "integration/harness.h"
#include "recfresh/log.h"
#include "recfresh/store.h"

static void *daemon_main(void *arg)
{
        h_env_t *e = arg;
        e->daemon_rc = rf_daemon_run(e->daemon);
        __atomic_store_n(&e->daemon_done, 1, __ATOMIC_SEQ_CST);
        return NULL;
}

void h_setup(h_env_t *e, int partitions)
{
        h_setup_brokers(e, partitions, 1);
}

void h_setup_brokers(h_env_t *e, int partitions, int brokers)
{
        char errstr[512], err[256];
        rd_kafka_conf_t *kc;

        memset(e, 0, sizeof(*e));
        if (getenv("RF_TEST_DEBUG") == NULL)
                rf_log_set_level(RF_LOG_WARN);
        snprintf(e->dir, sizeof(e->dir), "/tmp/rf-it-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        e->broker = rf_broker_new(brokers, partitions, errstr, sizeof(errstr));
        assert_non_null(e->broker);

        rf_config_init(&e->conf);
        char path[512];
        snprintf(path, sizeof(path), "%s/db", e->dir);
        assert_int_equal(
            rf_config_set(&e->conf, "data_dir", path, errstr, sizeof(errstr)),
            0);
        assert_int_equal(rf_config_set(&e->conf, "kafka.brokers",
                                       rf_broker_bootstraps(e->broker), errstr,
                                       sizeof(errstr)),
                         0);
        if (getenv("RF_TEST_KAFKA_DEBUG")) {
                rf_log_set_level(RF_LOG_DEBUG);
                rf_config_set_kafka(&e->conf, "debug",
                                    getenv("RF_TEST_KAFKA_DEBUG"));
        }
        /* The mock coordinator waits session.timeout.ms - 1 s before it
         * rebalances a group a member left: keep restarts quick. */
        rf_config_set_kafka(&e->conf, "session.timeout.ms", "6000");
        assert_int_equal(rf_config_set(&e->conf, "consumer.poll_timeout_ms",
                                       "20", errstr, sizeof(errstr)),
                         0);
        /* Any free port: tests run in parallel (rf_daemon_http_addr). */
        assert_int_equal(rf_config_set(&e->conf, "http.addr", "127.0.0.1:0",
                                       errstr, sizeof(errstr)),
                         0);

        kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers",
                          rf_broker_bootstraps(e->broker), err, sizeof(err));
        rd_kafka_conf_set(kc, "linger.ms", "0", err, sizeof(err));
        rd_kafka_conf_set(kc, "log_level", "2", err, sizeof(err));
        e->producer = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        assert_non_null(e->producer);
}

void h_daemon_start(h_env_t *e)
{
        char errstr[512];
        int64_t deadline;

        e->daemon_done = 0;
        e->daemon = rf_daemon_new(&e->conf, errstr, sizeof(errstr));
        if (!e->daemon)
                fail_msg("daemon: %s", errstr);
        assert_int_equal(pthread_create(&e->thr, NULL, daemon_main, e), 0);
        deadline = rf_mono_ms() + H_DEADLINE_MS;
        while (!rf_daemon_ready(e->daemon) && rf_mono_ms() < deadline)
                usleep(20000);
        assert_true(rf_daemon_ready(e->daemon));
}

int h_daemon_wait_exit(h_env_t *e)
{
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;

        while (!__atomic_load_n(&e->daemon_done, __ATOMIC_SEQ_CST) &&
               rf_mono_ms() < deadline)
                usleep(10000);
        if (!__atomic_load_n(&e->daemon_done, __ATOMIC_SEQ_CST))
                fail_msg("daemon did not exit");
        pthread_join(e->thr, NULL);
        rf_daemon_destroy(e->daemon);
        e->daemon = NULL;
        return e->daemon_rc;
}

void h_daemon_stop(h_env_t *e)
{
        if (!e->daemon)
                return;
        rf_daemon_stop(e->daemon);
        pthread_join(e->thr, NULL);
        rf_daemon_destroy(e->daemon);
        e->daemon = NULL;
        assert_int_equal(e->daemon_rc, 0);
}

void h_teardown(h_env_t *e)
{
        char cmd[600];

        h_daemon_stop(e);
        if (e->producer) {
                rd_kafka_flush(e->producer, 5000);
                rd_kafka_destroy(e->producer);
        }
        rf_broker_destroy(e->broker);
        rf_config_destroy(&e->conf);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", e->dir);
}

void h_produce_len(h_env_t *e, const char *topic, const char *key,
                   const char *value, size_t len)
{
        rd_kafka_resp_err_t err = rd_kafka_producev(
            e->producer, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        assert_int_equal(err, 0);
        assert_int_equal(rd_kafka_flush(e->producer, 10000), 0);
}

void h_produce(h_env_t *e, const char *topic, const char *key,
               const char *value)
{
        h_produce_len(e, topic, key, value, strlen(value));
}

char *h_served(h_env_t *e, const char *subject, const char *surface,
               const char *context)
{
        return h_served_n(e, subject, surface, context, 0);
}

char *h_served_n(h_env_t *e, const char *subject, const char *surface,
                 const char *context, size_t limit)
{
        rf_read_req_t req = { subject, surface, context, limit };
        rf_read_result_t res;
        rf_buf_t out = { 0 };

        assert_int_equal(
            rf_read_list(rf_daemon_store(e->daemon), &e->conf, &req, &res), 0);
        if (res.status == RF_READ_NO_LIST)
                rf_buf_printf(&out, "<no_list>");
        else if (res.status == RF_READ_CONSENT_BLOCKED)
                rf_buf_printf(&out, "<consent_blocked>");
        else
                for (size_t i = 0; i < res.served_cnt; i++)
                        rf_buf_printf(&out, "%s%s", i ? "," : "",
                                      res.served[i].entry->item_id);
        rf_read_result_clear(&res);
        if (!out.data)
                return rf_strdup("");
        return out.data;
}

void h_wait_served(h_env_t *e, const char *subject, const char *surface,
                   const char *context, const char *expect)
{
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        char *got = NULL;

        for (;;) {
                free(got);
                got = h_served(e, subject, surface, context);
                if (!strcmp(got, expect) || rf_mono_ms() > deadline)
                        break;
                usleep(5000);
        }
        if (strcmp(got, expect) != 0) {
                char msg[1024];
                snprintf(msg, sizeof(msg),
                         "%s/%s: expected served [%s], still [%s]", subject,
                         surface, expect, got);
                free(got);
                fail_msg("%s", msg);
        }
        free(got);
}

/* A consumer assigned to every partition of \p topic from the start. */
static rd_kafka_t *open_reader(h_env_t *e, const char *topic)
{
        char err[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *parts;
        const struct rd_kafka_metadata *md;
        int partition_cnt = 0;

        rd_kafka_conf_set(kc, "bootstrap.servers",
                          rf_broker_bootstraps(e->broker), err, sizeof(err));
        rd_kafka_conf_set(kc, "group.id", "h-reader", err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        assert_non_null(rk);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 5000), 0);
        partition_cnt = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);

        parts = rd_kafka_topic_partition_list_new(partition_cnt);
        for (int p = 0; p < partition_cnt; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(rk, parts), 0);
        rd_kafka_topic_partition_list_destroy(parts);
        return rk;
}

static int has(const rd_kafka_message_t *m, const char *needle)
{
        return !m->err &&
               (!needle || memmem(m->payload, m->len, needle, strlen(needle)));
}

int h_count_before(h_env_t *e, const char *topic, const char *needle,
                   const char *sentinel)
{
        rd_kafka_t *rk = open_reader(e, topic);
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        int n = 0, seen = 0;

        while (!seen && rf_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                if (!m)
                        continue;
                if (has(m, sentinel))
                        seen = 1;
                else if (has(m, needle))
                        n++;
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        if (!seen)
                fail_msg("%s: no record with %s", topic, sentinel);
        return n;
}

int h_count_records(h_env_t *e, const char *topic, const char *needle, int want)
{
        rd_kafka_t *rk = open_reader(e, topic);
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        int n = 0;

        while (n < want && rf_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                if (!m)
                        continue;
                if (has(m, needle))
                        n++;
                rd_kafka_message_destroy(m);
        }
        /* Give duplicates a moment to show: read what is already there. */
        for (int idle = 0; idle < 4;) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                if (!m) {
                        idle++;
                        continue;
                }
                if (has(m, needle))
                        n++;
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return n;
}

int h_store_contains(h_env_t *e, const char *needle)
{
        rf_store_t *st = rf_daemon_store(e->daemon);
        size_t nlen = strlen(needle);

        for (int cf = 0; cf < RF_CF__CNT; cf++) {
                rf_iter_t *it = rf_iter_new(st, NULL, (rf_cf_t)cf, NULL, 0);
                for (; rf_iter_valid(it); rf_iter_next(it)) {
                        size_t kl, vl;
                        const char *k = rf_iter_key(it, &kl);
                        const char *v = rf_iter_value(it, &vl);
                        if (memmem(k, kl, needle, nlen) ||
                            memmem(v, vl, needle, nlen)) {
                                rf_iter_destroy(it);
                                return 1;
                        }
                }
                rf_iter_destroy(it);
        }
        return 0;
}

char *h_fmt(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        s = malloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return s;
}

char *h_list_json(const char *subject, const char *surface, const char *region,
                  const char *list_id, const char *generated_at,
                  const char *items)
{
        rf_buf_t b = { 0 };
        char *copy = rf_strdup(items), *save = NULL;
        double score = 1.0;

        rf_buf_printf(&b,
                      "{\"subject_id\":\"%s\",\"surface\":\"%s\","
                      "\"list_id\":\"%s\",\"generated_at\":\"%s\","
                      "\"expires_at\":\"2099-01-01T00:00:00Z\","
                      "\"model_version\":\"m1\"",
                      subject, surface, list_id, generated_at);
        if (region)
                rf_buf_printf(&b, ",\"region\":\"%s\"", region);
        rf_buf_printf(&b, ",\"items\":[");
        int first = 1;
        for (char *tok = strtok_r(copy, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
                char *creator = strchr(tok, ':'), *campaign = NULL;
                if (creator) {
                        *creator++ = '\0';
                        campaign = strchr(creator, ':');
                        if (campaign)
                                *campaign++ = '\0';
                }
                rf_buf_printf(&b, "%s{\"item_id\":\"%s\",\"score\":%.3f",
                              first ? "" : ",", tok, score);
                if (creator && *creator)
                        rf_buf_printf(&b, ",\"creator_id\":\"%s\"", creator);
                if (campaign && *campaign)
                        rf_buf_printf(&b, ",\"campaign_id\":\"%s\"", campaign);
                rf_buf_printf(&b, "}");
                score -= 0.01;
                first = 0;
        }
        rf_buf_printf(&b, "]}");
        free(copy);
        return b.data;
}
