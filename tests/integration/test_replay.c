/*
 * Integration: the event log archive and replay, against the embedded
 * broker and a real store. One daemon runs with eventlog.dir on while a
 * scenario is produced; after it stops:
 *  - replaying its event log into a scratch store reproduces the live
 *    store's digest;
 *  - a damaged copy of the log is replayed with the damage reported at its
 *    byte position, and the records around it still applied;
 *  - a time-bounded read of a topic from the embedded broker (which has no
 *    offsets-for-times) returns exactly the records of the range, found by
 *    the timestamp search.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <cmocka.h>

#include "integration/harness.h"
#include "recfresh/digest.h"
#include "recfresh/eventlog.h"
#include "recfresh/replay.h"
#include "recfresh/topics.h"

static h_env_t env;
static char elog_dir[512];

#define LISTS   "recs.lists.v1"
#define BANS    "recs.item-bans.v1"
#define HIDES   "recs.user-hides.v1"
#define CONSENT "recs.consent.v1"
#define STOCK   "recs.stock.v1"

static int group_setup(void **state)
{
        char errstr[256];
        (void)state;
        h_setup(&env, 2);
        snprintf(elog_dir, sizeof(elog_dir), "%s/eventlog", env.dir);
        if (rf_config_set(&env.conf, "eventlog.dir", elog_dir, errstr,
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

static void list(const char *subject, const char *id, const char *at,
                 const char *items)
{
        char *js = h_list_json(subject, "home", NULL, id, at, items);
        h_produce(&env, LISTS, subject, js);
        free(js);
}

static void produce_fmt(const char *topic, const char *key, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));
static void produce_fmt(const char *topic, const char *key, const char *fmt,
                        ...)
{
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        h_produce(&env, topic, key, buf);
}

static void digest_of(const char *dir, char hex[65])
{
        char errstr[512];
        rf_digest_t d;
        rf_store_t *st =
            rf_store_open(dir, RF_STORE_READONLY, NULL, errstr, sizeof(errstr));

        if (!st)
                fail_msg("%s", errstr);
        rf_digest_store(st, &d);
        rf_digest_hex(d.sha256, hex);
        rf_digest_print(&d, stderr);
        rf_store_close(st);
}

static void first_segment(char *path, size_t size)
{
        struct dirent *de;
        DIR *d = opendir(elog_dir);
        char best[256] = "";

        assert_non_null(d);
        while ((de = readdir(d)))
                if (strstr(de->d_name, RF_EVENTLOG_SUFFIX) &&
                    (!*best || strcmp(de->d_name, best) < 0))
                        snprintf(best, sizeof(best), "%s", de->d_name);
        closedir(d);
        assert_true(*best);
        snprintf(path, size, "%s/%s", elog_dir, best);
}

/* The scenario runs once; every test below works on its results. */
static void test_replay_reproduces_live_digest(void **state)
{
        char live[65], replayed[65], scratch[600], errstr[512];
        rf_replay_set_t set = { 0 };
        rf_replay_stats_t stats;
        (void)state;

        list("rp-u1", "A1", "2026-11-22T09:00:00Z", "x1:c1,x2:c2:k1,x3");
        list("rp-u2", "A2", "2026-11-22T09:00:00Z", "x1,x4");
        list("rp-u3", "A3", "2026-11-22T09:00:00Z", "x5,x6");
        h_wait_served(&env, "rp-u3", "home", NULL, "x5,x6");
        produce_fmt(
            BANS, "x1",
            "{\"event_id\":\"rp-ban\",\"type\":\"item_banned\","
            "\"item_id\":\"x1\",\"occurred_at\":\"2026-11-22T09:05:00Z\"}");
        produce_fmt(
            BANS, "x1",
            "{\"event_id\":\"rp-old\",\"type\":\"item_unbanned\","
            "\"item_id\":\"x1\",\"occurred_at\":\"2026-11-22T08:00:00Z\"}");
        produce_fmt(HIDES, "rp-u2",
                    "{\"event_id\":\"rp-hide\",\"type\":\"item_hidden\","
                    "\"user_id\":\"rp-u2\",\"item_id\":\"x4\","
                    "\"occurred_at\":\"2026-11-22T09:06:00Z\"}");
        produce_fmt(STOCK, "x2",
                    "{\"event_id\":\"rp-stock\",\"type\":\"stock_changed\","
                    "\"item_id\":\"x2\",\"in_stock\":false,"
                    "\"occurred_at\":\"2026-11-22T09:07:00Z\"}");
        produce_fmt(CONSENT, "rp-u3",
                    "{\"event_id\":\"rp-consent\",\"type\":\"consent_revoked\","
                    "\"user_id\":\"rp-u3\",\"scope\":\"all\","
                    "\"occurred_at\":\"2026-11-22T09:08:00Z\"}");
        h_produce(&env, BANS, "x9", "{not json");
        list("rp-u1", "A1b", "2026-11-22T09:10:00Z", "x1,x7");
        h_wait_served(&env, "rp-u1", "home", NULL, "x7");
        h_wait_served(&env, "rp-u2", "home", NULL, "");
        h_wait_served(&env, "rp-u3", "home", NULL, "<consent_blocked>");
        /* The rejected record is applied too (it is on its own partition). */
        assert_int_equal(h_count_records(&env, "recs.dlq.v1", "not json", 1),
                         1);
        h_daemon_stop(&env);

        digest_of(env.conf.data_dir, live);
        assert_int_equal(
            rf_replay_load_eventlog(&set, elog_dir, errstr, sizeof(errstr)), 0);
        rf_replay_set_finish(&set, 0);
        assert_int_equal(set.damaged, 0);
        assert_true(set.cnt >= 10);

        snprintf(scratch, sizeof(scratch), "%s/scratch", env.dir);
        rf_replay_opts_t o = { .conf = &env.conf, .data_dir = scratch };
        assert_int_equal(
            rf_replay_run(&set, &o, &stats, NULL, NULL, errstr, sizeof(errstr)),
            0);
        assert_int_equal(stats.records, set.cnt);
        assert_int_equal(stats.rejected, 1);
        assert_int_equal(stats.stale, 1);
        digest_of(scratch, replayed);
        assert_string_equal(replayed, live);

        /* A scratch a replay did not finish (it writes no WAL) is refused
         * by every other reader, with the way out. */
        char again[640], err2[512];
        snprintf(again, sizeof(again), "%s/scratch-died", env.dir);
        assert_int_equal(rf_replay_prepare_target(again, env.conf.data_dir,
                                                  err2, sizeof(err2)),
                         0);
        rf_store_t *partial =
            rf_store_open(again, RF_STORE_READONLY, NULL, err2, sizeof(err2));
        assert_null(partial);
        assert_non_null(strstr(err2, "did not finish"));

        /* The live store is refused as a target, and left alone. */
        o.data_dir = env.conf.data_dir;
        assert_int_equal(
            rf_replay_run(&set, &o, &stats, NULL, NULL, errstr, sizeof(errstr)),
            RF_EINVAL);
        assert_non_null(strstr(errstr, "live"));
        digest_of(env.conf.data_dir, replayed);
        assert_string_equal(replayed, live);
        rf_replay_set_clear(&set);
}

static uint32_t le32(const unsigned char *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
               (uint32_t)p[3] << 24;
}

static void test_damaged_segment_reported_and_skipped(void **state)
{
        char seg[600], copy[600], errstr[512], *report = NULL;
        rf_replay_set_t whole = { 0 }, set = { 0 };
        unsigned char *buf;
        size_t rsize = 0, pos2, pos3, n;
        struct stat sb;
        FILE *fp;
        (void)state;

        first_segment(seg, sizeof(seg));
        assert_int_equal(
            rf_replay_load_eventlog(&whole, seg, errstr, sizeof(errstr)), 0);
        assert_int_equal(stat(seg, &sb), 0);
        buf = malloc((size_t)sb.st_size);
        fp = fopen(seg, "rb");
        n = fread(buf, 1, (size_t)sb.st_size, fp);
        fclose(fp);
        assert_int_equal(n, (size_t)sb.st_size);

        /* Blocks at 8 (first), pos2, pos3: damage the payload of the first
         * and the header of the second; the rest must still be read. */
        pos2 = 8 + 24 + le32(buf + 8 + 4);
        assert_true(pos2 + 24 < n);
        pos3 = pos2 + 24 + le32(buf + pos2 + 4);
        assert_true(pos3 < n);
        uint32_t lost = le32(buf + 8 + 12) + le32(buf + pos2 + 12);
        buf[8 + 24 + 1] ^= 0x5a;
        buf[pos2 + 1] ^= 0x5a;
        snprintf(copy, sizeof(copy), "%s/damaged" RF_EVENTLOG_SUFFIX, env.dir);
        fp = fopen(copy, "wb");
        fwrite(buf, 1, n - 3, fp); /* and a torn tail */
        fclose(fp);

        set.report = open_memstream(&report, &rsize);
        assert_int_equal(
            rf_replay_load_eventlog(&set, copy, errstr, sizeof(errstr)), 0);
        fclose(set.report);
        fprintf(stderr, "%s", report);
        assert_int_equal(set.damaged, 3);
        char want[700];
        snprintf(want, sizeof(want), "%s: damaged at byte 8 ", copy);
        assert_non_null(strstr(report, want));
        assert_non_null(strstr(report, "CRC mismatch"));
        snprintf(want, sizeof(want), "damaged at byte %zu ", pos2);
        assert_non_null(strstr(report, want));
        assert_non_null(strstr(report, "truncated"));
        /* The records after the damage are the originals, in order; the
         * torn last block is lost too. */
        assert_true(set.cnt >= 1);
        assert_true(set.cnt < whole.cnt - lost);
        assert_string_equal(set.recs[0].topic_name,
                            whole.recs[lost].topic_name);
        assert_int_equal(set.recs[0].offset, whole.recs[lost].offset);
        assert_string_equal(set.recs[0].value, whole.recs[lost].value);
        free(report);
        free(buf);
        rf_replay_set_clear(&set);
        rf_replay_set_clear(&whole);
}

static void test_time_bounded_read_from_embedded_broker(void **state)
{
        int64_t t0 = rf_now_ms() + 3600 * 1000; /* after every earlier one */
        rf_replay_range_t range = { t0 + 3000, t0 + 7000, -1, -1, BANS, 0 };
        rf_replay_set_t set = { 0 };
        char errstr[512], val[256], key[32];
        int searched = 0;
        (void)state;

        for (int i = 0; i < 10; i++) {
                snprintf(key, sizeof(key), "tb-%d", i);
                snprintf(val, sizeof(val),
                         "{\"event_id\":\"tb-ev-%d\",\"type\":\"item_banned\","
                         "\"item_id\":\"%s\",\"occurred_at\":"
                         "\"2026-11-22T10:00:00Z\"}",
                         i, key);
                assert_int_equal(
                    rd_kafka_producev(env.producer, RD_KAFKA_V_TOPIC(BANS),
                                      RD_KAFKA_V_PARTITION(0),
                                      RD_KAFKA_V_KEY(key, strlen(key)),
                                      RD_KAFKA_V_VALUE(val, strlen(val)),
                                      RD_KAFKA_V_TIMESTAMP(t0 + i * 1000),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END),
                    0);
        }
        assert_int_equal(rd_kafka_flush(env.producer, 10000), 0);

        assert_int_equal(rf_replay_load_topics(
                             &set, &env.conf, rf_broker_bootstraps(env.broker),
                             &range, &searched, errstr, sizeof(errstr)),
                         0);
        /* The embedded broker has no offsets-for-times: searched. */
        assert_int_equal(set.cnt, 4);
        assert_int_equal(searched, 1);
        for (size_t i = 0; i < set.cnt; i++) {
                snprintf(val, sizeof(val), "\"tb-ev-%zu\"", i + 3);
                assert_non_null(strstr(set.recs[i].value, val));
                assert_int_equal(set.recs[i].timestamp_ms,
                                 t0 + (int64_t)(i + 3) * 1000);
        }
        rf_replay_set_clear(&set);

        /* A range past the end is empty, not an error. */
        range.from_ms = t0 + 60000;
        range.to_ms = t0 + 70000;
        assert_int_equal(rf_replay_load_topics(
                             &set, &env.conf, rf_broker_bootstraps(env.broker),
                             &range, &searched, errstr, sizeof(errstr)),
                         0);
        assert_int_equal(set.cnt, 0);
        rf_replay_set_clear(&set);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_replay_reproduces_live_digest),
                cmocka_unit_test(test_damaged_segment_reported_and_skipped),
                cmocka_unit_test(test_time_bounded_read_from_embedded_broker),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
