/*
 * Unit tests of config.c: the defaults of every option, value syntax and
 * ranges (ints, durations, bools, choices), the config file format and its
 * "path:line: message" errors, Kafka pass-through, per-surface sections
 * inheriting from "default", dump -> load round trips and secret redaction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/config.h"
#include "recfresh/log.h"

#define assert_contains(hay, needle)                                           \
        do {                                                                   \
                const char *h_ = (hay), *n_ = (needle);                        \
                if (!strstr(h_, n_))                                           \
                        fail_msg("\"%s\"\ndoes not contain \"%s\"", h_, n_);   \
        } while (0)

#define assert_not_contains(hay, needle)                                       \
        do {                                                                   \
                const char *h_ = (hay), *n_ = (needle);                        \
                if (strstr(h_, n_))                                            \
                        fail_msg("\"%s\"\ncontains \"%s\"", h_, n_);           \
        } while (0)

/* ---- helpers ------------------------------------------------------------*/

static int setup(void **state)
{
        rf_config_t *conf = malloc(sizeof(*conf));

        if (!conf)
                return -1;
        rf_config_init(conf);
        *state = conf;
        return 0;
}

static int teardown(void **state)
{
        rf_config_destroy(*state);
        free(*state);
        return 0;
}

static void set_ok(rf_config_t *conf, const char *name, const char *value)
{
        char err[512] = "";

        if (rf_config_set(conf, name, value, err, sizeof(err)) != RF_OK)
                fail_msg("set %s = \"%s\": %s", name, value, err);
}

/* Asserts that the set fails with exactly \p expect as the message. */
static void set_err(rf_config_t *conf, const char *name, const char *value,
                    const char *expect)
{
        char err[512] = "";

        assert_int_equal(rf_config_set(conf, name, value, err, sizeof(err)),
                         RF_ECONFIG);
        assert_string_equal(err, expect);
}

/* Writes \p text to a new temporary file. @returns its path (free it). */
static char *write_temp(const char *text)
{
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        size_t len = strlen(dir) + 32;
        char *path = malloc(len);
        int fd;

        assert_non_null(path);
        snprintf(path, len, "%s/rf_test_config.XXXXXX", dir);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        return path;
}

/* Loads \p text as a config file. @returns the rc; errstr in \p err gets
 * the file's path replaced by "F" so messages can be compared exactly. */
static int load_text(rf_config_t *conf, const char *text, char *err,
                     size_t err_size)
{
        char *path = write_temp(text);
        char raw[1024] = "";
        size_t plen = strlen(path);
        int rc;

        rc = rf_config_load_file(conf, path, raw, sizeof(raw));
        if (!strncmp(raw, path, plen))
                snprintf(err, err_size, "F%s", raw + plen);
        else
                snprintf(err, err_size, "%s", raw);
        unlink(path);
        free(path);
        return rc;
}

static void load_ok(rf_config_t *conf, const char *text)
{
        char err[1024];

        if (load_text(conf, text, err, sizeof(err)) != RF_OK)
                fail_msg("load failed: %s", err);
}

static void load_err(const char *text, const char *expect)
{
        rf_config_t conf;
        char err[1024] = "";
        int rc;

        rf_config_init(&conf);
        rc = load_text(&conf, text, err, sizeof(err));
        rf_config_destroy(&conf);
        assert_int_equal(rc, RF_ECONFIG);
        assert_string_equal(err, expect);
}

/* @returns what rf_config_dump() prints (free it). */
static char *dump(const rf_config_t *conf)
{
        char *text = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&text, &len);

        assert_non_null(fp);
        rf_config_dump(conf, fp);
        fclose(fp);
        return text;
}

static const char *kafka_get(const rf_config_t *conf, const char *key)
{
        for (size_t i = 0; i < conf->kafka_cnt; i++)
                if (!strcmp(conf->kafka[i].key, key))
                        return conf->kafka[i].value;
        return NULL;
}

/* ---- defaults -----------------------------------------------------------*/

static void test_defaults(void **state)
{
        rf_config_t *c = *state;

        assert_string_equal(c->data_dir, "./recfresh-data");
        assert_string_equal(c->log_level, "info");
        assert_string_equal(c->http_addr, "127.0.0.1:8080");
        assert_string_equal(c->brokers, "");
        assert_string_equal(c->group_id, "recfresh");
        assert_int_equal(c->embedded_partitions, 0);
        assert_string_equal(c->bootstrap_file, "");
        assert_int_equal(c->consumer_batch, 2000);
        assert_int_equal(c->poll_timeout_ms, 100);
        assert_int_equal(c->max_record_bytes, 1048576);
        assert_int_equal(c->max_items_per_list, 1000);
        assert_int_equal(c->max_id_len, 256);
        assert_int_equal(c->max_json_depth, 16);
        assert_int_equal(c->fanout_chunk, 500);
        assert_int_equal(c->fanout_step_ms, 2);
        assert_int_equal(c->store_sync, 0);
        assert_int_equal(c->block_cache_mb, 256);
        assert_int_equal(c->write_buffer_mb, 64);
        assert_int_equal(c->kafka_cnt, 0);

        assert_int_equal(c->surface_cnt, 1);
        assert_string_equal(c->surfaces[0].name, "default");
        assert_string_equal(c->surfaces[0].consent_scope, "");
        assert_int_equal(c->surfaces[0].min_valid, 20);
        assert_int_equal(c->surfaces[0].grace_ms, 3600 * 1000);
}

static void test_limits_match_common_defaults(void **state)
{
        rf_config_t *c = *state;
        rf_limits_t l = rf_config_limits(c);

        /* Tests and fuzzers use rf_limits_default; the service uses the
         * config. Both must agree when nothing is configured. */
        assert_int_equal(l.max_record_bytes,
                         rf_limits_default.max_record_bytes);
        assert_int_equal(l.max_items_per_list,
                         rf_limits_default.max_items_per_list);
        assert_int_equal(l.max_id_len, rf_limits_default.max_id_len);
        assert_int_equal(l.max_json_depth, rf_limits_default.max_json_depth);

        set_ok(c, "limits.max_id_len", "64");
        set_ok(c, "limits.max_json_depth", "4");
        l = rf_config_limits(c);
        assert_int_equal(l.max_id_len, 64);
        assert_int_equal(l.max_json_depth, 4);
}

/* ---- values -------------------------------------------------------------*/

static void test_int_range(void **state)
{
        rf_config_t *c = *state;

        set_ok(c, "consumer.batch_size", "1");
        assert_int_equal(c->consumer_batch, 1);
        set_ok(c, "consumer.batch_size", "100000");
        assert_int_equal(c->consumer_batch, 100000);
        set_err(c, "consumer.batch_size", "0",
                "consumer.batch_size: expected an integer between 1 and "
                "100000, got \"0\"");
        set_err(c, "consumer.batch_size", "100001",
                "consumer.batch_size: expected an integer between 1 and "
                "100000, got \"100001\"");
        /* a failed set leaves the value alone */
        assert_int_equal(c->consumer_batch, 100000);

        set_ok(c, "limits.max_record_bytes", "1024");
        set_err(c, "limits.max_record_bytes", "1023",
                "limits.max_record_bytes: expected an integer between 1024 "
                "and 67108864, got \"1023\"");
        set_ok(c, "embedded.partitions", "0");
        set_ok(c, "embedded.partitions", "1024");
        set_err(c, "embedded.partitions", "-1",
                "embedded.partitions: expected an integer between 0 and "
                "1024, got \"-1\"");
}

static void test_int_decimal_only(void **state)
{
        static const char *const bad[] = {
                "",   "abc", "12abc", "0x10", "1e3", "+5",
                " 5", "5 ",  "1.0",   "-",    "--1", "99999999999999999999",
        };
        rf_config_t *c = *state;
        char err[256];

        for (size_t i = 0; i < RF_ARRAY_SIZE(bad); i++) {
                assert_int_equal(
                    rf_config_set(c, "fanout.chunk", bad[i], err, sizeof(err)),
                    RF_ECONFIG);
                assert_contains(err, "expected an integer between 1 and "
                                     "1000000");
        }
        assert_int_equal(c->fanout_chunk, 500);
        set_ok(c, "fanout.chunk", "007");
        assert_int_equal(c->fanout_chunk, 7);
        /* the step's time budget: 0 turns it off, 10 s at most */
        set_ok(c, "fanout.step_ms", "0");
        assert_int_equal(c->fanout_step_ms, 0);
        assert_int_equal(
            rf_config_set(c, "fanout.step_ms", "11s", err, sizeof(err)),
            RF_ECONFIG);
        assert_int_equal(
            rf_config_set(c, "fanout.step_ms", "-1", err, sizeof(err)),
            RF_ECONFIG);
        set_ok(c, "fanout.step_ms", "5ms");
        assert_int_equal(c->fanout_step_ms, 5);
}

static void test_duration_suffixes(void **state)
{
        static const struct {
                const char *in;
                int64_t ms;
        } ok[] = {
                { "250", 250 },   { "1500ms", 1500 }, { "2s", 2000 },
                { "10s", 10000 }, { "1ms", 1 },
        };
        rf_config_t *c = *state;

        for (size_t i = 0; i < RF_ARRAY_SIZE(ok); i++) {
                set_ok(c, "consumer.poll_timeout_ms", ok[i].in);
                assert_int_equal(c->poll_timeout_ms, ok[i].ms);
        }

        /* surface grace has a wider range: minutes and hours */
        set_ok(c, "surface.default.grace", "90m");
        assert_int_equal(c->surfaces[0].grace_ms, 90 * 60 * 1000);
        set_ok(c, "surface.default.grace", "2h");
        assert_int_equal(c->surfaces[0].grace_ms, 2 * 3600 * 1000);
        set_ok(c, "surface.default.grace", "0");
        assert_int_equal(c->surfaces[0].grace_ms, 0);
}

static void test_duration_errors(void **state)
{
        static const char *const bad[] = {
                "", "1.5s", "2 s", "-1", "s", "5d", "5sec", "1h30m", "0x10",
        };
        rf_config_t *c = *state;
        char err[256];

        set_err(c, "consumer.poll_timeout_ms", "11s",
                "consumer.poll_timeout_ms: expected a duration between 1ms "
                "and 10s (ms, or with a unit: ms, s, m, h), got \"11s\"");
        set_err(c, "consumer.poll_timeout_ms", "0",
                "consumer.poll_timeout_ms: expected a duration between 1ms "
                "and 10s (ms, or with a unit: ms, s, m, h), got \"0\"");
        for (size_t i = 0; i < RF_ARRAY_SIZE(bad); i++) {
                assert_int_equal(rf_config_set(c, "consumer.poll_timeout_ms",
                                               bad[i], err, sizeof(err)),
                                 RF_ECONFIG);
                assert_contains(err, "expected a duration");
        }
        /* overflow of int64 ms is an error, not a wrap */
        assert_int_equal(rf_config_set(c, "surface.default.grace",
                                       "9999999999999999h", err, sizeof(err)),
                         RF_ECONFIG);
        assert_int_equal(c->poll_timeout_ms, 100);
}

static void test_bool_spellings(void **state)
{
        static const char *const yes[] = { "true", "1", "yes", "on", "TRUE" };
        static const char *const no[] = { "false", "0", "no", "off", "Off" };
        rf_config_t *c = *state;

        for (size_t i = 0; i < RF_ARRAY_SIZE(yes); i++) {
                set_ok(c, "store.sync", no[i]);
                assert_int_equal(c->store_sync, 0);
                set_ok(c, "store.sync", yes[i]);
                assert_int_equal(c->store_sync, 1);
        }
        set_err(c, "store.sync", "maybe",
                "store.sync: expected true or false (or yes/no, on/off, 1/0), "
                "got \"maybe\"");
        set_err(c, "store.sync", "",
                "store.sync: expected true or false (or yes/no, on/off, 1/0), "
                "got \"\"");
        assert_int_equal(c->store_sync, 1);
}

static void test_log_level(void **state)
{
        rf_config_t *c = *state;

        assert_int_equal(rf_log_level_parse("error"), RF_LOG_ERROR);
        assert_int_equal(rf_log_level_parse("warn"), RF_LOG_WARN);
        assert_int_equal(rf_log_level_parse("info"), RF_LOG_INFO);
        assert_int_equal(rf_log_level_parse("debug"), RF_LOG_DEBUG);
        assert_int_equal(rf_log_level_parse("verbose"), -1);
        assert_int_equal(rf_log_level_parse(NULL), -1);

        set_ok(c, "log.level", "debug");
        assert_string_equal(c->log_level, "debug");
        set_err(c, "log.level", "verbose",
                "log.level: expected one of error, warn, info, debug, got "
                "\"verbose\"");
        assert_string_equal(c->log_level, "debug");
}

static void test_strings(void **state)
{
        rf_config_t *c = *state;

        set_ok(c, "data_dir", "/var/lib/recfresh");
        assert_string_equal(c->data_dir, "/var/lib/recfresh");
        set_ok(c, "data_dir", "");
        assert_string_equal(c->data_dir, "");
        set_ok(c, "kafka.brokers", "k1:9092,k2:9092");
        assert_string_equal(c->brokers, "k1:9092,k2:9092");
        set_err(c, "data_dir", "a\nb",
                "data_dir: a value cannot contain a line break");
}

static void test_unknown_key(void **state)
{
        rf_config_t *c = *state;

        set_err(c, "recompute.coalesce", "5",
                "unknown key \"recompute.coalesce\"");
        set_err(c, "", "5", "unknown key \"\"");
        set_err(c, "data_dir.x", "5", "unknown key \"data_dir.x\"");
        /* a NULL errstr is allowed */
        assert_int_equal(rf_config_set(c, "nope", "1", NULL, 0), RF_ECONFIG);
}

/* ---- kafka pass-through -------------------------------------------------*/

static void test_kafka_passthrough_order_and_replace(void **state)
{
        rf_config_t *c = *state;

        set_ok(c, "kafka.security.protocol", "SASL_SSL");
        set_ok(c, "kafka.sasl.mechanisms", "PLAIN");
        set_ok(c, "kafka.statistics.interval.ms", "5000");
        rf_config_set_kafka(c, "client.id", "rf-1");
        set_ok(c, "kafka.sasl.mechanisms", "SCRAM-SHA-512");

        assert_int_equal(c->kafka_cnt, 4);
        assert_string_equal(c->kafka[0].key, "security.protocol");
        assert_string_equal(c->kafka[0].value, "SASL_SSL");
        /* replaced in place: librdkafka sees the first position */
        assert_string_equal(c->kafka[1].key, "sasl.mechanisms");
        assert_string_equal(c->kafka[1].value, "SCRAM-SHA-512");
        assert_string_equal(c->kafka[2].key, "statistics.interval.ms");
        assert_string_equal(c->kafka[3].key, "client.id");
        assert_string_equal(c->kafka[3].value, "rf-1");
}

static void test_kafka_table_rows_are_not_passed_through(void **state)
{
        rf_config_t *c = *state;

        set_ok(c, "kafka.brokers", "b:9092");
        set_ok(c, "kafka.group_id", "g1");
        set_ok(c, "kafka.group.id", "raw");
        assert_string_equal(c->brokers, "b:9092");
        assert_string_equal(c->group_id, "g1");
        assert_int_equal(c->kafka_cnt, 1);
        assert_string_equal(kafka_get(c, "group.id"), "raw");
        assert_null(kafka_get(c, "brokers"));

        set_err(c, "kafka.", "x",
                "kafka.: expected kafka.<librdkafka property>");
        set_err(c, "kafka.a b", "x",
                "kafka.a b: expected kafka.<librdkafka property>");
        assert_int_equal(c->kafka_cnt, 1);
}

/* ---- surfaces -----------------------------------------------------------*/

static void test_surface_inherits_default_at_creation(void **state)
{
        rf_config_t *c = *state;
        const rf_surface_conf_t *s;

        set_ok(c, "surface.default.min_valid", "5");
        set_ok(c, "surface.default.consent_scope", "push");
        set_ok(c, "surface.email_digest.consent_scope", "email");
        /* default changed after email_digest was created: no effect on it */
        set_ok(c, "surface.default.min_valid", "7");
        set_ok(c, "surface.home.grace", "30m");

        assert_int_equal(c->surface_cnt, 3);
        s = rf_config_surface(c, "email_digest");
        assert_string_equal(s->name, "email_digest");
        assert_string_equal(s->consent_scope, "email");
        assert_int_equal(s->min_valid, 5);
        assert_int_equal(s->grace_ms, 3600 * 1000);

        s = rf_config_surface(c, "home");
        assert_string_equal(s->consent_scope, "push");
        assert_int_equal(s->min_valid, 7);
        assert_int_equal(s->grace_ms, 30 * 60 * 1000);

        /* an unknown surface gets "default", never NULL */
        s = rf_config_surface(c, "pdp");
        assert_ptr_equal(s, &c->surfaces[0]);
        assert_string_equal(s->name, "default");
        assert_int_equal(s->min_valid, 7);
        assert_ptr_equal(rf_config_surface(c, NULL), &c->surfaces[0]);
}

static void test_surface_errors(void **state)
{
        rf_config_t *c = *state;

        set_err(c, "surface.web.consent_scope", "sms",
                "surface.web.consent_scope: expected one of \"\", email, "
                "push, got \"sms\"");
        set_err(c, "surface.web.min_valid", "-1",
                "surface.web.min_valid: expected an integer between 0 and "
                "100000, got \"-1\"");
        set_err(c, "surface.web.colour", "red",
                "unknown key \"surface.web.colour\"");
        set_err(c, "surface.web", "1",
                "surface.web: expected surface.<name>.<field>");
        set_err(c, "surface..grace", "1s",
                "surface..grace: a surface name is letters, digits, '_' and "
                "'-'");
        set_err(c, "surface.a b.grace", "1s",
                "surface.a b.grace: a surface name is letters, digits, '_' "
                "and '-'");
        /* none of the failures created a surface */
        assert_int_equal(c->surface_cnt, 1);

        set_ok(c, "surface.web.consent_scope", "");
        assert_int_equal(c->surface_cnt, 2);
}

/* ---- config file --------------------------------------------------------*/

static void test_load_file_syntax(void **state)
{
        rf_config_t *c = *state;

        load_ok(c, "\xef\xbb\xbf# recfresh test config\n"
                   "\n"
                   "   # indented comment\n"
                   "data_dir=/srv/rf\n"
                   "  http.addr   =   0.0.0.0:9000   # listen everywhere\n"
                   "\tconsumer.batch_size\t=\t500\t\n"
                   "kafka.group_id = \"group with spaces # and hash\"  # c\n"
                   "embedded.bootstrap_file = \"\"\n"
                   "kafka.sasl.username = user#1\n"
                   "kafka.client.id = \"say \\\"hi\\\" \\\\o/\"\n"
                   "consumer.poll_timeout_ms = 2s\r\n"
                   "store.sync = yes\n"
                   "surface.home.min_valid = 3\n"
                   "kafka.linger.ms = 5 = five\n"
                   "limits.max_id_len = 128"); /* no final newline */

        assert_string_equal(c->data_dir, "/srv/rf");
        assert_string_equal(c->http_addr, "0.0.0.0:9000");
        assert_int_equal(c->consumer_batch, 500);
        assert_string_equal(c->group_id, "group with spaces # and hash");
        assert_string_equal(c->bootstrap_file, "");
        /* '#' not after whitespace is part of the value */
        assert_string_equal(kafka_get(c, "sasl.username"), "user#1");
        assert_string_equal(kafka_get(c, "client.id"), "say \"hi\" \\o/");
        assert_int_equal(c->poll_timeout_ms, 2000);
        assert_int_equal(c->store_sync, 1);
        assert_int_equal(rf_config_surface(c, "home")->min_valid, 3);
        /* the first '=' splits; the rest is the value */
        assert_string_equal(kafka_get(c, "linger.ms"), "5 = five");
        assert_int_equal(c->max_id_len, 128);
}

static void test_load_file_later_lines_win(void **state)
{
        rf_config_t *c = *state;

        load_ok(c, "fanout.chunk = 10\nfanout.chunk = 20\n");
        assert_int_equal(c->fanout_chunk, 20);
        /* a flag after the file overrides it */
        set_ok(c, "fanout.chunk", "30");
        assert_int_equal(c->fanout_chunk, 30);
}

static void test_load_file_errors_name_file_and_line(void **state)
{
        (void)state;
        load_err("# c\n\ndata_dir = x\nrecompute.coalesce = 5\n",
                 "F:4: unknown key \"recompute.coalesce\"");
        load_err("data_dir = x\n\nlimits.max_id_len = abc\n",
                 "F:3: limits.max_id_len: expected an integer between 8 and "
                 "4096, got \"abc\"");
        load_err("data_dir = x\njust some words\n",
                 "F:2: expected name = value");
        load_err(" = value\n", "F:1: expected name = value");
        load_err("kafka.group_id = \"unterminated\n",
                 "F:1: unterminated quoted value");
        load_err("kafka.group_id = \"a\" b\n",
                 "F:1: unexpected text after quoted value");
        load_err("consumer.poll_timeout_ms = 1h\n",
                 "F:1: consumer.poll_timeout_ms: expected a duration between "
                 "1ms and 10s (ms, or with a unit: ms, s, m, h), got \"1h\"");
        /* a trailing comment is not part of the value in messages either */
        load_err("store.sync = maybe # hmm\n",
                 "F:1: store.sync: expected true or false (or yes/no, "
                 "on/off, 1/0), got \"maybe\"");
        load_err("surface.web.consent_scope = sms\n",
                 "F:1: surface.web.consent_scope: expected one of \"\", "
                 "email, push, got \"sms\"");
}

static void test_load_missing_file(void **state)
{
        rf_config_t *c = *state;
        char err[256] = "";

        assert_int_equal(rf_config_load_file(c, "/nonexistent/recfresh.conf",
                                             err, sizeof(err)),
                         RF_EIO);
        assert_string_equal(err, "/nonexistent/recfresh.conf: No such file or "
                                 "directory");

        assert_int_equal(rf_config_load_file(c, "/", err, sizeof(err)), RF_EIO);
        assert_string_equal(err, "/: Is a directory");
}

/* ---- dump ---------------------------------------------------------------*/

static void test_dump_is_commented_and_loadable(void **state)
{
        rf_config_t *c = *state;
        char *text = dump(c);

        /* every option has its doc line just above it */
        assert_contains(text, "\n# Directory of the RocksDB state store.\n"
                              "data_dir = ./recfresh-data\n");
        assert_contains(text, "\nkafka.brokers = \"\"\n");
        assert_contains(text, "\nconsumer.poll_timeout_ms = 100ms\n");
        assert_contains(text, "\nstore.sync = false\n");
        assert_contains(text, "\nlimits.max_record_bytes = 1048576\n");
        assert_contains(text, "\nsurface.default.consent_scope = \"\"\n");
        assert_contains(text, "\nsurface.default.min_valid = 20\n");
        assert_contains(text, "\nsurface.default.grace = 1h\n");
        for (size_t at = 0; text[at]; at += strcspn(text + at, "\n") + 1) {
                const char *l = text + at;
                size_t len = strcspn(l, "\n");
                /* a line after a doc comment is "name = value" */
                if (at > 0 && len > 0 && strncmp(l, "# ", 2)) {
                        const char *eq = strstr(l, " = ");
                        assert_non_null(eq);
                        assert_true(eq < l + len);
                }
                if (!l[len])
                        break;
        }

        /* the defaults dump loads back to the defaults */
        rf_config_t back;
        rf_config_init(&back);
        load_ok(&back, text);
        char *again = dump(&back);
        assert_string_equal(again, text);
        free(again);
        rf_config_destroy(&back);
        free(text);
}

static void test_dump_load_round_trip(void **state)
{
        rf_config_t *c = *state, back;
        char *text, *again;

        set_ok(c, "data_dir", "/srv/rec fresh #1");
        set_ok(c, "log.level", "warn");
        set_ok(c, "http.addr", "[::1]:8081");
        set_ok(c, "kafka.brokers", "a:9092,b:9092");
        set_ok(c, "kafka.group_id", "say \"hi\" \\ bye");
        set_ok(c, "embedded.partitions", "12");
        set_ok(c, "embedded.bootstrap_file", "#boot");
        set_ok(c, "consumer.batch_size", "77");
        set_ok(c, "consumer.poll_timeout_ms", "1500ms");
        set_ok(c, "limits.max_record_bytes", "2048");
        set_ok(c, "limits.max_items_per_list", "50");
        set_ok(c, "limits.max_id_len", "99");
        set_ok(c, "limits.max_json_depth", "3");
        set_ok(c, "fanout.chunk", "10");
        set_ok(c, "store.sync", "on");
        set_ok(c, "store.block_cache_mb", "9");
        set_ok(c, "store.write_buffer_mb", "2");
        set_ok(c, "surface.default.grace", "90s");
        set_ok(c, "surface.email.consent_scope", "email");
        set_ok(c, "surface.email.min_valid", "0");
        set_ok(c, "surface.default.min_valid", "40");
        set_ok(c, "surface.push-1.grace", "5m");
        set_ok(c, "kafka.security.protocol", "SSL");
        set_ok(c, "kafka.debug", "");
        set_ok(c, "kafka.client.id", "rf \"x\"");

        text = dump(c);
        rf_config_init(&back);
        load_ok(&back, text);

        assert_string_equal(back.data_dir, "/srv/rec fresh #1");
        assert_string_equal(back.log_level, "warn");
        assert_string_equal(back.http_addr, "[::1]:8081");
        assert_string_equal(back.brokers, "a:9092,b:9092");
        assert_string_equal(back.group_id, "say \"hi\" \\ bye");
        assert_int_equal(back.embedded_partitions, 12);
        assert_string_equal(back.bootstrap_file, "#boot");
        assert_int_equal(back.consumer_batch, 77);
        assert_int_equal(back.poll_timeout_ms, 1500);
        assert_int_equal(back.max_record_bytes, 2048);
        assert_int_equal(back.max_items_per_list, 50);
        assert_int_equal(back.max_id_len, 99);
        assert_int_equal(back.max_json_depth, 3);
        assert_int_equal(back.fanout_chunk, 10);
        assert_int_equal(back.store_sync, 1);
        assert_int_equal(back.block_cache_mb, 9);
        assert_int_equal(back.write_buffer_mb, 2);

        assert_int_equal(back.surface_cnt, 3);
        assert_string_equal(back.surfaces[0].name, "default");
        assert_int_equal(back.surfaces[0].min_valid, 40);
        assert_int_equal(back.surfaces[0].grace_ms, 90000);
        /* email was created before default.min_valid changed */
        const rf_surface_conf_t *e = rf_config_surface(&back, "email");
        assert_string_equal(e->name, "email");
        assert_string_equal(e->consent_scope, "email");
        assert_int_equal(e->min_valid, 0);
        assert_int_equal(e->grace_ms, 90000);
        const rf_surface_conf_t *p = rf_config_surface(&back, "push-1");
        assert_string_equal(p->name, "push-1");
        assert_int_equal(p->min_valid, 40);
        assert_int_equal(p->grace_ms, 5 * 60000);

        assert_int_equal(back.kafka_cnt, 3);
        assert_string_equal(back.kafka[0].key, "security.protocol");
        assert_string_equal(back.kafka[0].value, "SSL");
        assert_string_equal(back.kafka[1].key, "debug");
        assert_string_equal(back.kafka[1].value, "");
        assert_string_equal(back.kafka[2].key, "client.id");
        assert_string_equal(back.kafka[2].value, "rf \"x\"");

        /* and the reloaded config dumps identically */
        again = dump(&back);
        assert_string_equal(again, text);
        free(again);
        free(text);
        rf_config_destroy(&back);
}

static void test_dump_redacts_secrets(void **state)
{
        rf_config_t *c = *state;
        char *text;

        set_ok(c, "kafka.sasl.username", "svc-recfresh");
        set_ok(c, "kafka.sasl.password", "hunter2");
        set_ok(c, "kafka.ssl.key.password", "pw-ssl");
        set_ok(c, "kafka.sasl.oauthbearer.client.secret", "oauth-s3cr3t");
        set_ok(c, "kafka.sasl.jaas.config", "jaas-blob");
        set_ok(c, "kafka.ssl.key.pem", "-----BEGIN KEY-----");

        text = dump(c);
        assert_contains(text, "\nkafka.sasl.username = svc-recfresh\n");
        assert_contains(text, "\nkafka.sasl.password = [redacted]\n");
        assert_contains(text, "\nkafka.ssl.key.password = [redacted]\n");
        assert_contains(text, "\nkafka.sasl.oauthbearer.client.secret = "
                              "[redacted]\n");
        assert_contains(text, "\nkafka.sasl.jaas.config = [redacted]\n");
        assert_contains(text, "\nkafka.ssl.key.pem = [redacted]\n");
        assert_not_contains(text, "hunter2");
        assert_not_contains(text, "pw-ssl");
        assert_not_contains(text, "s3cr3t");
        assert_not_contains(text, "jaas-blob");
        assert_not_contains(text, "BEGIN KEY");
        free(text);

        /* the values themselves are kept for librdkafka */
        assert_string_equal(kafka_get(c, "sasl.password"), "hunter2");
}

static void test_is_secret(void **state)
{
        static const char *const secret[] = {
                "sasl.password",
                "ssl.key.password",
                "ssl.keystore.password",
                "sasl.oauthbearer.client.secret",
                "sasl.oauthbearer.token.endpoint.url",
                "sasl.jaas.config",
                "ssl.key.pem",
                "ssl_key",
                "SASL.PASSWORD",
                "my.Private.thing",
        };
        static const char *const public[] = {
                "bootstrap.servers",   "security.protocol", "sasl.mechanisms",
                "sasl.username",       "ssl.ca.location",   "client.id",
                "ssl.certificate.pem", "group.id",          "",
        };
        (void)state;

        for (size_t i = 0; i < RF_ARRAY_SIZE(secret); i++)
                if (!rf_config_is_secret(secret[i]))
                        fail_msg("\"%s\" should be secret", secret[i]);
        for (size_t i = 0; i < RF_ARRAY_SIZE(public); i++)
                if (rf_config_is_secret(public[i]))
                        fail_msg("\"%s\" should not be secret", public[i]);
}

/* ---- reference ----------------------------------------------------------*/

static void test_usage_lists_every_option(void **state)
{
        static const char *const names[] = {
                "data_dir",
                "log.level",
                "http.addr",
                "http.addr_file",
                "http.threads",
                "http.max_connections",
                "http.max_body_bytes",
                "http.default_limit",
                "http.max_limit",
                "http.ready_max_lag",
                "kafka.brokers",
                "kafka.group_id",
                "embedded.partitions",
                "embedded.bootstrap_file",
                "consumer.batch_size",
                "consumer.poll_timeout_ms",
                "limits.max_record_bytes",
                "limits.max_items_per_list",
                "limits.max_id_len",
                "limits.max_json_depth",
                "fanout.chunk",
                "store.sync",
                "store.block_cache_mb",
                "store.write_buffer_mb",
                "surface.<name>.consent_scope",
                "surface.<name>.min_valid",
                "surface.<name>.grace",
                "kafka.<property>",
        };
        char *text = NULL, line[256];
        size_t len = 0;
        FILE *fp = open_memstream(&text, &len);
        (void)state;

        assert_non_null(fp);
        rf_config_usage(fp);
        fclose(fp);
        for (size_t i = 0; i < RF_ARRAY_SIZE(names); i++) {
                snprintf(line, sizeof(line), "\n%s ", names[i]);
                assert_contains(text, line);
        }
        /* type, default and range of a row, and its doc on the next line */
        assert_contains(text, "\nlimits.max_id_len            int       "
                              "256              8..4096\n    Longest id");
        assert_contains(text, "\nconsumer.poll_timeout_ms     duration  "
                              "100ms            1ms..10s\n");
        assert_contains(text, "\nsurface.<name>.grace         duration  1h ");
        assert_contains(text, "\nlog.level                    string    "
                              "info             error, warn, info, debug\n");
        assert_contains(text, "\nkafka.brokers                string    "
                              "\"\"\n");
        /* aligned, no trailing blanks, fits 80 columns */
        for (char *l = text, *nl; *l; l = nl + 1) {
                nl = strchr(l, '\n');
                assert_non_null(nl);
                assert_true(nl - l <= 80);
                assert_true(nl == l || nl[-1] != ' ');
        }
        assert_contains(text, "passed verbatim");
        free(text);
}

static void test_destroy_is_idempotent(void **state)
{
        rf_config_t c;
        (void)state;

        rf_config_init(&c);
        rf_config_set_kafka(&c, "a", "b");
        set_ok(&c, "surface.x.grace", "1s");
        rf_config_destroy(&c);
        assert_null(c.data_dir);
        assert_int_equal(c.surface_cnt, 0);
        rf_config_destroy(&c);
        rf_config_destroy(NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_defaults),
                T(test_limits_match_common_defaults),
                T(test_int_range),
                T(test_int_decimal_only),
                T(test_duration_suffixes),
                T(test_duration_errors),
                T(test_bool_spellings),
                T(test_log_level),
                T(test_strings),
                T(test_unknown_key),
                T(test_kafka_passthrough_order_and_replace),
                T(test_kafka_table_rows_are_not_passed_through),
                T(test_surface_inherits_default_at_creation),
                T(test_surface_errors),
                T(test_load_file_syntax),
                T(test_load_file_later_lines_win),
                T(test_load_file_errors_name_file_and_line),
                T(test_load_missing_file),
                T(test_dump_is_commented_and_loadable),
                T(test_dump_load_round_trip),
                T(test_dump_redacts_secrets),
                T(test_is_secret),
                T(test_usage_lists_every_option),
                T(test_destroy_is_idempotent),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
