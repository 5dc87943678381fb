/*
 * recfresh - configuration: defaults, the config file, `--set`-style
 * overrides, `config --dump` and the option reference.
 *
 * Everything is driven by two tables, as Redis' static_configs[] is:
 * conf_table[] for the top-level options (fields of rf_config_t) and
 * surface_table[] for the fields of each `surface.<name>` section
 * (rf_surface_conf_t). A row says the name, type, field, default, range and
 * doc line; parsing, range checks, dumping and the reference all read it.
 * To add an option, add a field to rf_config_t and one row to conf_table[];
 * the FIELD() macro refuses to compile if the field's C type does not match
 * the row's type.
 *
 * `kafka.<property>` names that are not table rows are librdkafka client
 * properties, kept verbatim and in order in conf->kafka.
 *
 * File syntax: `name = value` per line; blank lines and lines starting with
 * `#` are ignored; an unquoted value ends at a `#` that starts it or follows
 * whitespace; a value in double quotes keeps spaces and `#`, with `\"` and
 * `\\` as its only escapes.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/config.h"
#include "recfresh/log.h"

#define KIB INT64_C(1024)
#define MIB (1024 * KIB)

#define SEC_MS  INT64_C(1000)
#define MIN_MS  (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS  (24 * HOUR_MS)

enum conf_type {
        CONF_STRING,   /* char *, owned */
        CONF_INT,      /* int64_t, decimal */
        CONF_BOOL,     /* int, 0 or 1 */
        CONF_DURATION, /* int64_t milliseconds; "250ms", "2s", "5m", "1h" */
};

static const char *const type_names[] = {
        [CONF_STRING] = "string",
        [CONF_INT] = "int",
        [CONF_BOOL] = "bool",
        [CONF_DURATION] = "duration",
};

struct conf_row {
        const char *name;            /* e.g. "consumer.batch_size" */
        enum conf_type type;         /* how the value is parsed */
        size_t off;                  /* offset of the field in its struct */
        const char *def;             /* default, in config-file syntax */
        int64_t min, max;            /* inclusive range of ints, durations */
        int (*check)(const char *v); /* extra check of strings: 0 = ok */
        const char *allowed;         /* what check accepts, for messages */
        const char *doc;             /* one line for --help and --dump */
};

/* offsetof(S, f), but only if S.f has C type T: a row whose field has the
 * wrong type is a compile error, not memory corruption. */
#define FIELD(S, f, T) _Generic(((S *)0)->f, T : offsetof(S, f))

/* clang-format off */
#define ROW_STR(S, n, f, d, doc) \
        { n, CONF_STRING, FIELD(S, f, char *), d, 0, 0, NULL, NULL, doc }
#define ROW_CHOICE(S, n, f, d, chk, allowed, doc) \
        { n, CONF_STRING, FIELD(S, f, char *), d, 0, 0, chk, allowed, doc }
#define ROW_INT(S, n, f, d, lo, hi, doc) \
        { n, CONF_INT, FIELD(S, f, int64_t), d, lo, hi, NULL, NULL, doc }
#define ROW_BOOL(S, n, f, d, doc) \
        { n, CONF_BOOL, FIELD(S, f, int), d, 0, 1, NULL, NULL, doc }
#define ROW_DUR(S, n, f, d, lo, hi, doc) \
        { n, CONF_DURATION, FIELD(S, f, int64_t), d, lo, hi, NULL, NULL, doc }
/* clang-format on */

static int check_log_level(const char *v)
{
        return rf_log_level_parse(v) < 0 ? -1 : 0;
}

static int check_compression(const char *v)
{
        return strcmp(v, "lz4") && strcmp(v, "none") ? -1 : 0;
}

/* "" or "HH:MM" (24-hour clock, UTC). */
static int check_hhmm(const char *v)
{
        if (!*v)
                return 0;
        if (strlen(v) != 5 || v[2] != ':' || !isdigit((unsigned char)v[0]) ||
            !isdigit((unsigned char)v[1]) || !isdigit((unsigned char)v[3]) ||
            !isdigit((unsigned char)v[4]))
                return -1;
        return (v[0] - '0') * 10 + (v[1] - '0') > 23 || v[3] > '5' ? -1 : 0;
}

static int check_consent_scope(const char *v)
{
        if (!strcmp(v, "") || !strcmp(v, "email") || !strcmp(v, "push"))
                return 0;
        return -1;
}

#define C(kind, ...) ROW_##kind(rf_config_t, __VA_ARGS__)

static const struct conf_row conf_table[] = {
        C(STR, "data_dir", data_dir, "./recfresh-data",
          "Directory of the RocksDB state store."),
        C(CHOICE, "log.level", log_level, "info", check_log_level,
          "error, warn, info, debug",
          "Most verbose log level written to stderr."),
        C(STR, "http.addr", http_addr, "127.0.0.1:8080",
          "host:port of the HTTP API; port 0 = any free port; \"\" = off."),
        C(STR, "http.addr_file", http_addr_file, "",
          "Write the bound HTTP host:port to this file once listening."),
        C(STR, "http.admin_token_file", http_admin_token_file, "",
          "Bearer token of the admin endpoints; \"\" = admin off."),
        C(INT, "http.threads", http_threads, "4", 1, 256,
          "HTTP worker threads."),
        C(INT, "http.max_connections", http_max_connections, "1024", 1, 100000,
          "Most concurrent HTTP connections."),
        C(INT, "http.max_body_bytes", http_max_body_bytes, "1048576", KIB,
          64 * MIB, "Largest request body (batchGet) in bytes; larger: 413."),
        C(INT, "http.max_body_total_bytes", http_max_body_total_bytes,
          "67108864", KIB, INT64_C(1) << 40,
          "All request bodies held at once (>= max_body_bytes); past: 503."),
        C(DUR, "http.body_timeout", http_body_timeout_ms, "10s", 100,
          10 * 60 * SEC_MS,
          "Longest a request body may take to arrive; then: closed."),
        C(INT, "http.default_limit", http_default_limit, "20", 1, 100000,
          "Entries served when a read gives no limit."),
        C(INT, "http.max_limit", http_max_limit, "1000", 1, 100000,
          "Largest limit a read may ask for; larger: 400."),
        C(INT, "http.ready_max_lag", http_ready_max_lag, "1000", 0,
          INT64_C(1000000000),
          "/readyz: ready once every partition is at most this many records "
          "behind."),
        C(STR, "http.advertise", http_advertise, "",
          "Address other instances redirect our subjects' reads to; \"\" = "
          "http.addr."),
        C(STR, "cluster.instance_id", cluster_instance_id, "",
          "Unique name of this instance in recs.members.v1; \"\" = "
          "http.advertise."),
        C(STR, "kafka.brokers", brokers, "",
          "Kafka bootstrap servers (host:port,...); empty = embedded broker."),
        C(STR, "kafka.group_id", group_id, "recfresh",
          "Consumer group of the subject-scoped input topics."),
        C(INT, "embedded.partitions", embedded_partitions, "0", 0, 1024,
          "Embedded broker: partitions per topic; 0 = as in topics/."),
        C(STR, "embedded.bootstrap_file", bootstrap_file, "",
          "Embedded broker: write its bootstrap servers to this file."),
        C(INT, "consumer.batch_size", consumer_batch, "2000", 1, 100000,
          "Most records applied to the store in one batch."),
        C(DUR, "consumer.poll_timeout_ms", poll_timeout_ms, "100", 1,
          10 * SEC_MS, "How long the consumer waits for records when idle."),
        C(INT, "limits.max_record_bytes", max_record_bytes, "1048576", KIB,
          64 * MIB, "Largest record value in bytes; larger: DLQ too_large."),
        C(INT, "limits.max_items_per_list", max_items_per_list, "1000", 1,
          100000, "Most entries in one list; more: DLQ too_many_items."),
        C(INT, "limits.max_id_len", max_id_len, "256", 8, 4096,
          "Longest id or key in bytes (event_id: 256 at most); longer: "
          "DLQ id_too_long."),
        C(INT, "limits.max_json_depth", max_json_depth, "16", 2, 256,
          "Deepest JSON nesting of a record; deeper: DLQ too_deep."),
        C(INT, "fanout.chunk", fanout_chunk, "500", 1, 1000000,
          "Most index entries handled per fan-out step of a ban or "
          "invalidation."),
        C(DUR, "fanout.step_ms", fanout_step_ms, "2", 0, 10 * SEC_MS,
          "Longest fan-out step, commit included, between consumer batches; "
          "0: none."),
        C(BOOL, "store.sync", store_sync, "false",
          "fsync the RocksDB WAL on every write (survives power loss)."),
        C(INT, "store.block_cache_mb", block_cache_mb, "256", 8, 65536,
          "RocksDB block cache size in MiB."),
        C(INT, "store.list_cache_mb", list_cache_mb, "64", 0, 65536,
          "Cache of decoded run versions for reads, in MiB; 0 = off."),
        C(INT, "store.hide_cache_mb", hide_cache_mb, "16", 0, 65536,
          "Cache of users' hides for reads, in MiB; 0 = off."),
        C(INT, "store.write_buffer_mb", write_buffer_mb, "64", 1, 4096,
          "RocksDB write buffer (memtable) size in MiB."),
        C(INT, "store.max_wal_mb", max_wal_mb, "256", 0, 1048576,
          "Flush the memtables of the oldest WAL past this much WAL; 0 = "
          "4 x all."),
        C(INT, "store.min_free_mb", min_free_mb, "256", 0, 1048576,
          "Stop applying (exit 1) when the data dir has less free space; "
          "0 = off."),
        C(DUR, "store.purge_compact_after", purge_compact_after_ms, "1h", 0,
          7 * DAY_MS,
          "Compact all data this long after a consent purge; 0 = never."),
        C(INT, "store.manifest_roll_kb", manifest_roll_kb, "256", 1, 1048576,
          "Roll the RocksDB MANIFEST (it logs SST boundary keys) past this."),
        C(CHOICE, "store.compression", store_compression, "lz4",
          check_compression, "lz4, none",
          "Block compression of the store's SST files."),
        C(STR, "eventlog.dir", eventlog_dir, "",
          "Archive applied records here, for replay; \"\" = off."),
        C(DUR, "eventlog.rotate", eventlog_rotate_ms, "1h", SEC_MS, 7 * DAY_MS,
          "Start a new event-log segment after this long."),
        C(DUR, "eventlog.retention", eventlog_retention_ms, "168h", 0,
          365 * DAY_MS,
          "Delete event-log segments older than this (privacy); 0 = keep."),
        C(DUR, "recompute.coalesce_ms", rc_coalesce_ms, "2s", 0, HOUR_MS,
          "Reasons for one subject within this leave as one recompute "
          "request."),
        C(INT, "recompute.valid_memory", rc_valid_memory, "262144", 0, 1 << 26,
          "Lists whose valid count the fan-out keeps (33 B each); 0: off."),
        C(INT, "recompute.entry_cache_mb", rc_entry_cache_mb, "64", 0, 4096,
          "MB of pending requests kept in memory; 0: off (changes then "
          "written whole)."),
        C(INT, "recompute.max_reasons", rc_max_reasons, "32", 1, 10000,
          "Reasons listed per request; the rest are counted in "
          "reasons_dropped."),
        C(INT, "recompute.rate_per_s", rc_rate_per_s, "100", 1, 1000000,
          "Normal requests (event-driven, active refresh) per second; "
          "urgent: no limit."),
        C(DUR, "recompute.tick_ms", rc_tick_ms, "2", 0, 10 * SEC_MS,
          "Longest step of acks and sends between batches; 0: no limit."),
        C(INT, "recompute.full_rate_per_s", rc_full_rate_per_s, "10", 1,
          1000000,
          "Separate token bucket of full refresh requests, per second."),
        C(INT, "recompute.max_inflight", rc_max_inflight, "1000", 1, 1000000,
          "Most requests produced and not yet acknowledged by the broker."),
        C(CHOICE, "recompute.full_at", rc_full_at, "02:00", check_hhmm,
          "HH:MM (UTC) or \"\" (off)",
          "Daily full refresh time, UTC; \"\" = no daily full refresh."),
        C(DUR, "recompute.incremental_every", rc_incremental_every, "1h", 0,
          7 * DAY_MS,
          "Period of the incremental refresh of active subjects; 0 = off."),
        C(DUR, "recompute.active_within", rc_active_within, "1h", SEC_MS,
          30 * DAY_MS, "Incremental refresh: subjects active this recently."),
        C(DUR, "recompute.expiry_horizon", rc_expiry_horizon, "1h", 0,
          30 * DAY_MS,
          "Incremental refresh: lists expired or expiring within this."),
        C(INT, "recompute.max_invalid_pct", rc_max_invalid_pct, "20", 0, 100,
          "Incremental refresh: lists with more of their entries "
          "tombstoned, in %."),
        C(DUR, "recompute.max_age", rc_max_age_ms, "24h", MIN_MS, 365 * DAY_MS,
          "Incremental refresh: lists generated longer ago than this."),
        C(DUR, "recompute.activity_ttl", rc_activity_ttl_ms, "168h", HOUR_MS,
          365 * DAY_MS, "Last activity of a subject is forgotten after this."),
        C(INT, "recompute.refresh_backlog", rc_refresh_backlog, "1000", 1,
          10000000,
          "A refresh run pauses while this many of its requests are "
          "pending."),
        C(INT, "runs.keep_versions", runs_keep_versions, "2", 2, 100,
          "Batch run versions kept, the active one included (rollback)."),
        C(DUR, "runs.completion_timeout", runs_completion_timeout_ms, "10m", 0,
          7 * DAY_MS,
          "Wait after run_completed for expected_lists, then validate."),
        C(DUR, "runs.settle", runs_settle_ms, "2s", 0, HOUR_MS,
          "Without expected_lists: validate after this long without lists."),
        C(DUR, "runs.staged_ttl", runs_staged_ttl_ms, "24h", MIN_MS,
          30 * DAY_MS,
          "A run not completed this long after its first record expires."),
        C(INT, "runs.purge_chunk", runs_purge_chunk, "5000", 1, 1000000,
          "Lists of discarded run versions deleted per step."),
        C(INT, "runs.max_malformed_pct", runs_max_malformed_pct, "1", 0, 100,
          "Bulk load: most lines that do not parse, in % of lines; more "
          "fails the run."),
        C(INT, "load.memory_mb", load_memory_mb, "256", 8, 65536,
          "Bulk loader: sort buffer in MiB; bounds its memory, not file size."),
        C(INT, "load.threads", load_threads, "0", 0, 64,
          "Bulk loader: threads parsing JSON lines; 0 = one per CPU."),
        C(DUR, "load.wait", load_wait_ms, "10m", SEC_MS, DAY_MS,
          "CLI load/rollback: how long to wait for the daemon's verdict."),
};

#undef C
#define S(kind, ...) ROW_##kind(rf_surface_conf_t, __VA_ARGS__)

/* Names are the last part of `surface.<name>.<field>`. */
static const struct conf_row surface_table[] = {
        S(CHOICE, "consent_scope", consent_scope, "", check_consent_scope,
          "\"\", email, push",
          "Consent scope that also blocks this surface; \"\" = none."),
        S(INT, "min_valid", min_valid, "20", 0, 100000,
          "Fewer valid entries: urgent recompute and fallback fill."),
        S(DUR, "grace", grace_ms, "1h", 0, 365 * DAY_MS,
          "How long an expired list is served as stale before the fallback."),
        S(INT, "run_min_coverage_pct", run_min_coverage_pct, "95", 0, 100,
          "Batch run: fewer lists than this % of expected_lists fails it."),
        S(INT, "run_min_prev_coverage_pct", run_min_prev_coverage_pct, "80", 0,
          100,
          "Batch run: fewer subjects than this % of the previous run's "
          "fails it."),
        S(INT, "run_max_empty_pct", run_max_empty_pct, "5", 0, 100,
          "Batch run: more empty lists than this % fails it."),
        S(INT, "run_max_duplicate_pct", run_max_duplicate_pct, "1", 0, 100,
          "Batch run: more lists holding an item twice than this % fails "
          "it."),
        S(INT, "run_max_invalid_pct", run_max_invalid_pct, "20", 0, 100,
          "Batch run: more entries tombstoned at load than this % fails it."),
        S(INT, "run_min_list_len", run_min_list_len, "1", 0, 100000,
          "Batch run: a list with fewer entries is short."),
        S(INT, "run_max_short_pct", run_max_short_pct, "10", 0, 100,
          "Batch run: more short lists than this % fails it."),
};

#undef S

#define KAFKA_PREFIX    "kafka."
#define SURFACE_PREFIX  "surface."
#define DEFAULT_SURFACE "default"

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
    RF_PRINTF(3, 4);

/* Writes the message if the caller gave a buffer. @returns RF_ECONFIG. */
static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
        va_list ap;

        if (errstr && errstr_size) {
                va_start(ap, fmt);
                vsnprintf(errstr, errstr_size, fmt, ap);
                va_end(ap);
        }
        return RF_ECONFIG;
}

static const struct conf_row *find_row(const struct conf_row *table, size_t cnt,
                                       const char *name)
{
        for (size_t i = 0; i < cnt; i++)
                if (!strcmp(table[i].name, name))
                        return &table[i];
        return NULL;
}

/* ---- values -------------------------------------------------------------*/

static void *field_ptr(const struct conf_row *row, void *base)
{
        return (char *)base + row->off;
}

static const void *cfield_ptr(const struct conf_row *row, const void *base)
{
        return (const char *)base + row->off;
}

/* Decimal only: an optional '-' and digits, nothing else. */
static int parse_int(const char *s, int64_t *out)
{
        const char *p = s + (*s == '-');
        char *end;
        long long v;

        if (*p < '0' || *p > '9')
                return -1;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end)
                return -1;
        *out = v;
        return 0;
}

/* Digits, then an optional unit; no unit means milliseconds. */
static int parse_duration(const char *s, int64_t *out)
{
        static const struct {
                const char *suffix;
                int64_t ms;
        } units[] = {
                { "", 1 },       { "ms", 1 },      { "s", SEC_MS },
                { "m", MIN_MS }, { "h", HOUR_MS },
        };
        int64_t v = 0;

        if (*s < '0' || *s > '9')
                return -1;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (INT64_MAX - (*s - '0')) / 10)
                        return -1;
                v = v * 10 + (*s - '0');
        }
        for (size_t i = 0; i < RF_ARRAY_SIZE(units); i++) {
                if (strcmp(s, units[i].suffix))
                        continue;
                if (v > INT64_MAX / units[i].ms)
                        return -1;
                *out = v * units[i].ms;
                return 0;
        }
        return -1;
}

static int parse_bool(const char *s, int *out)
{
        static const char *const yes[] = { "true", "1", "yes", "on" };
        static const char *const no[] = { "false", "0", "no", "off" };

        for (size_t i = 0; i < RF_ARRAY_SIZE(yes); i++) {
                if (!strcasecmp(s, yes[i])) {
                        *out = 1;
                        return 0;
                }
                if (!strcasecmp(s, no[i])) {
                        *out = 0;
                        return 0;
                }
        }
        return -1;
}

/* The shortest exact spelling: 3600000 -> "1h", 1500 -> "1500ms". */
static char *format_duration(int64_t ms, char *buf, size_t size)
{
        if (ms != 0 && ms % HOUR_MS == 0)
                snprintf(buf, size, "%" PRId64 "h", ms / HOUR_MS);
        else if (ms != 0 && ms % MIN_MS == 0)
                snprintf(buf, size, "%" PRId64 "m", ms / MIN_MS);
        else if (ms != 0 && ms % SEC_MS == 0)
                snprintf(buf, size, "%" PRId64 "s", ms / SEC_MS);
        else
                snprintf(buf, size, "%" PRId64 "ms", ms);
        return buf;
}

/* Parses \p value into the row's field of \p base. \p name is the full
 * option name for the message (surface rows have short names). */
static int set_row(const struct conf_row *row, void *base, const char *name,
                   const char *value, char *errstr, size_t errstr_size)
{
        void *p = field_ptr(row, base);
        char lo[32], hi[32];
        int64_t v;
        int b;

        switch (row->type) {
        case CONF_STRING:
                if (row->check && row->check(value))
                        return fail(errstr, errstr_size,
                                    "%s: expected one of %s, got \"%s\"", name,
                                    row->allowed, value);
                free(*(char **)p);
                *(char **)p = rf_strdup(value);
                return RF_OK;
        case CONF_INT:
                if (parse_int(value, &v) || v < row->min || v > row->max)
                        return fail(errstr, errstr_size,
                                    "%s: expected an integer between %" PRId64
                                    " and %" PRId64 ", got \"%s\"",
                                    name, row->min, row->max, value);
                *(int64_t *)p = v;
                return RF_OK;
        case CONF_DURATION:
                if (parse_duration(value, &v) || v < row->min || v > row->max)
                        return fail(
                            errstr, errstr_size,
                            "%s: expected a duration between %s and "
                            "%s (ms, or with a unit: ms, s, m, h), "
                            "got \"%s\"",
                            name, format_duration(row->min, lo, sizeof(lo)),
                            format_duration(row->max, hi, sizeof(hi)), value);
                *(int64_t *)p = v;
                return RF_OK;
        case CONF_BOOL:
                if (parse_bool(value, &b))
                        return fail(errstr, errstr_size,
                                    "%s: expected true or false (or yes/no, "
                                    "on/off, 1/0), got \"%s\"",
                                    name, value);
                *(int *)p = b;
                return RF_OK;
        }
        return fail(errstr, errstr_size, "%s: bad row type", name);
}

/* Sets the field from the row's default; a default that does not parse is
 * a bug in the table, caught by the first test run. */
static void set_default(const struct conf_row *row, void *base)
{
        char err[256];

        if (set_row(row, base, row->name, row->def, err, sizeof(err))) {
                fprintf(stderr, "recfresh: bad default in config table: %s\n",
                        err);
                abort();
        }
}

/* Formats the field in config-file syntax (unquoted). @returns a pointer to
 * the string field itself or to \p buf. */
static const char *format_row(const struct conf_row *row, const void *base,
                              char *buf, size_t size)
{
        const void *p = cfield_ptr(row, base);

        switch (row->type) {
        case CONF_STRING:
                return *(char *const *)p ? *(char *const *)p : "";
        case CONF_INT:
                snprintf(buf, size, "%" PRId64, *(const int64_t *)p);
                return buf;
        case CONF_DURATION:
                return format_duration(*(const int64_t *)p, buf, size);
        case CONF_BOOL:
                return *(const int *)p ? "true" : "false";
        }
        return "";
}

static void copy_row(const struct conf_row *row, void *dst, const void *src)
{
        if (row->type == CONF_STRING)
                *(char **)field_ptr(row, dst) =
                    rf_strdup(*(char *const *)cfield_ptr(row, src));
        else if (row->type == CONF_BOOL)
                *(int *)field_ptr(row, dst) =
                    *(const int *)cfield_ptr(row, src);
        else
                *(int64_t *)field_ptr(row, dst) =
                    *(const int64_t *)cfield_ptr(row, src);
}

static void free_row(const struct conf_row *row, void *base)
{
        if (row->type == CONF_STRING) {
                free(*(char **)field_ptr(row, base));
                *(char **)field_ptr(row, base) = NULL;
        }
}

/* ---- init and destroy ---------------------------------------------------*/

void rf_config_init(rf_config_t *conf)
{
        rf_surface_conf_t *def;

        memset(conf, 0, sizeof(*conf));
        for (size_t i = 0; i < RF_ARRAY_SIZE(conf_table); i++)
                set_default(&conf_table[i], conf);

        def = rf_calloc(1, sizeof(*def));
        def->name = rf_strdup(DEFAULT_SURFACE);
        for (size_t i = 0; i < RF_ARRAY_SIZE(surface_table); i++)
                set_default(&surface_table[i], def);
        conf->surfaces = def;
        conf->surface_cnt = 1;
}

void rf_config_destroy(rf_config_t *conf)
{
        if (!conf)
                return;
        for (size_t i = 0; i < RF_ARRAY_SIZE(conf_table); i++)
                free_row(&conf_table[i], conf);
        for (size_t s = 0; s < conf->surface_cnt; s++) {
                free(conf->surfaces[s].name);
                for (size_t i = 0; i < RF_ARRAY_SIZE(surface_table); i++)
                        free_row(&surface_table[i], &conf->surfaces[s]);
        }
        free(conf->surfaces);
        for (size_t i = 0; i < conf->kafka_cnt; i++) {
                free(conf->kafka[i].key);
                free(conf->kafka[i].value);
        }
        free(conf->kafka);
        memset(conf, 0, sizeof(*conf));
}

/* ---- kafka pass-through and surfaces ------------------------------------*/

void rf_config_set_kafka(rf_config_t *conf, const char *key, const char *value)
{
        /* A repeated property replaces the value but keeps its place, so
         * the order librdkafka sees is the order of first mention. */
        for (size_t i = 0; i < conf->kafka_cnt; i++) {
                if (!strcmp(conf->kafka[i].key, key)) {
                        free(conf->kafka[i].value);
                        conf->kafka[i].value = rf_strdup(value);
                        return;
                }
        }
        conf->kafka = rf_realloc(conf->kafka,
                                 (conf->kafka_cnt + 1) * sizeof(*conf->kafka));
        conf->kafka[conf->kafka_cnt].key = rf_strdup(key);
        conf->kafka[conf->kafka_cnt].value = rf_strdup(value);
        conf->kafka_cnt++;
}

/* librdkafka property names are dotted lower-case words; anything else
 * could not be written back by rf_config_dump(). */
static int valid_kafka_key(const char *key)
{
        if (!*key)
                return 0;
        for (; *key; key++)
                if (!isalnum((unsigned char)*key) && !strchr("._-", *key))
                        return 0;
        return 1;
}

static int valid_surface_name(const char *name, size_t len)
{
        if (!len)
                return 0;
        for (size_t i = 0; i < len; i++)
                if (!isalnum((unsigned char)name[i]) && !strchr("_-", name[i]))
                        return 0;
        return 1;
}

void rf_config_store_opts(const rf_config_t *conf, rf_store_opts_t *so)
{
        *so = (rf_store_opts_t){
                .sync = conf->store_sync,
                .block_cache_mb = (size_t)conf->block_cache_mb,
                .write_buffer_mb = (size_t)conf->write_buffer_mb,
                .max_wal_mb = (size_t)conf->max_wal_mb,
                .manifest_roll_kb = (size_t)conf->manifest_roll_kb,
                .no_compression = !strcmp(conf->store_compression, "none"),
        };
}

const rf_surface_conf_t *rf_config_surface(const rf_config_t *conf,
                                           const char *surface)
{
        if (surface)
                for (size_t i = 0; i < conf->surface_cnt; i++)
                        if (!strcmp(conf->surfaces[i].name, surface))
                                return &conf->surfaces[i];
        return &conf->surfaces[0];
}

/* @returns surface \p name, created from the current "default" values if it
 * does not exist yet. */
static rf_surface_conf_t *surface_get(rf_config_t *conf, const char *name,
                                      size_t len)
{
        rf_surface_conf_t *s;

        for (size_t i = 0; i < conf->surface_cnt; i++)
                if (strlen(conf->surfaces[i].name) == len &&
                    !memcmp(conf->surfaces[i].name, name, len))
                        return &conf->surfaces[i];

        conf->surfaces =
            rf_realloc(conf->surfaces, (conf->surface_cnt + 1) * sizeof(*s));
        s = &conf->surfaces[conf->surface_cnt++];
        memset(s, 0, sizeof(*s));
        s->name = rf_strndup(name, len);
        for (size_t i = 0; i < RF_ARRAY_SIZE(surface_table); i++)
                copy_row(&surface_table[i], s, &conf->surfaces[0]);
        return s;
}

/* \p name is the whole "surface.<name>.<field>". */
static int set_surface(rf_config_t *conf, const char *name, const char *value,
                       char *errstr, size_t errstr_size)
{
        const char *sname = name + strlen(SURFACE_PREFIX);
        const char *dot = strrchr(sname, '.');
        const struct conf_row *row;

        if (!dot)
                return fail(errstr, errstr_size,
                            "%s: expected surface.<name>.<field>", name);
        if (!valid_surface_name(sname, (size_t)(dot - sname)))
                return fail(errstr, errstr_size,
                            "%s: a surface name is letters, digits, '_' and "
                            "'-'",
                            name);
        row = find_row(surface_table, RF_ARRAY_SIZE(surface_table), dot + 1);
        if (!row)
                return fail(errstr, errstr_size, "unknown key \"%s\"", name);
        /* Validate before looking up, so a bad value creates no surface. */
        rf_surface_conf_t tmp = { 0 };
        int rc = set_row(row, &tmp, name, value, errstr, errstr_size);
        free_row(row, &tmp);
        if (rc)
                return rc;
        return set_row(row, surface_get(conf, sname, (size_t)(dot - sname)),
                       name, value, errstr, errstr_size);
}

int rf_config_set(rf_config_t *conf, const char *name, const char *value,
                  char *errstr, size_t errstr_size)
{
        const struct conf_row *row;

        if (strpbrk(value, "\r\n"))
                return fail(errstr, errstr_size,
                            "%s: a value cannot contain a line break", name);

        row = find_row(conf_table, RF_ARRAY_SIZE(conf_table), name);
        if (row)
                return set_row(row, conf, name, value, errstr, errstr_size);

        if (!strncmp(name, KAFKA_PREFIX, strlen(KAFKA_PREFIX))) {
                const char *key = name + strlen(KAFKA_PREFIX);
                if (!valid_kafka_key(key))
                        return fail(errstr, errstr_size,
                                    "%s: expected kafka.<librdkafka property>",
                                    name);
                rf_config_set_kafka(conf, key, value);
                return RF_OK;
        }

        if (!strncmp(name, SURFACE_PREFIX, strlen(SURFACE_PREFIX)))
                return set_surface(conf, name, value, errstr, errstr_size);

        return fail(errstr, errstr_size, "unknown key \"%s\"", name);
}

/* ---- the config file ----------------------------------------------------*/

static char *trim(char *s)
{
        char *end;

        while (*s == ' ' || *s == '\t')
                s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
                           end[-1] == '\n' || end[-1] == '\r'))
                end--;
        *end = '\0';
        return s;
}

/* Splits one line in place. @returns 1 with *namep and *valuep set, 0 for a
 * blank or comment line, or RF_ECONFIG with errstr set. */
static int parse_line(char *line, char **namep, char **valuep, char *errstr,
                      size_t errstr_size)
{
        char *s = trim(line), *eq, *v;

        if (!*s || *s == '#')
                return 0;
        eq = strchr(s, '=');
        if (!eq)
                return fail(errstr, errstr_size, "expected name = value");
        *eq = '\0';
        *namep = trim(s);
        if (!**namep)
                return fail(errstr, errstr_size, "expected name = value");
        v = trim(eq + 1);

        if (*v == '"') {
                char *r = v + 1, *w = v;

                for (; *r && *r != '"'; r++) {
                        if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
                                r++;
                        *w++ = *r;
                }
                if (*r != '"')
                        return fail(errstr, errstr_size,
                                    "unterminated quoted value");
                *w = '\0';
                r = trim(r + 1);
                if (*r && *r != '#')
                        return fail(errstr, errstr_size,
                                    "unexpected text after quoted value");
        } else {
                for (char *p = v; *p; p++) {
                        if (*p == '#' &&
                            (p == v || p[-1] == ' ' || p[-1] == '\t')) {
                                *p = '\0';
                                break;
                        }
                }
                v = trim(v);
        }
        *valuep = v;
        return 1;
}

int rf_config_load_file(rf_config_t *conf, const char *path, char *errstr,
                        size_t errstr_size)
{
        char *line = NULL, *name = NULL, *value = NULL, err[512];
        size_t cap = 0;
        int lineno = 0, rc = RF_OK;
        FILE *fp;

        fp = fopen(path, "r");
        if (!fp) {
                fail(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return RF_EIO;
        }
        while (getline(&line, &cap, fp) != -1) {
                char *s = line;

                if (++lineno == 1 && !strncmp(s, "\xef\xbb\xbf", 3))
                        s += 3; /* UTF-8 byte order mark */
                rc = parse_line(s, &name, &value, err, sizeof(err));
                if (rc == 1)
                        rc = rf_config_set(conf, name, value, err, sizeof(err));
                if (rc < 0) {
                        fail(errstr, errstr_size, "%s:%d: %s", path, lineno,
                             err);
                        goto out;
                }
        }
        rc = RF_OK;
        if (ferror(fp)) {
                fail(errstr, errstr_size, "%s: %s", path, strerror(errno));
                rc = RF_EIO;
        }
out:
        free(line);
        fclose(fp);
        return rc;
}

/* ---- dump and reference -------------------------------------------------*/

int rf_config_is_secret(const char *key)
{
        static const char *const marks[] = {
                "password",    "secret",  "token",   "sasl.jaas",
                "ssl.key.pem", "ssl_key", "private",
        };

        for (size_t i = 0; i < RF_ARRAY_SIZE(marks); i++)
                if (strcasestr(key, marks[i]))
                        return 1;
        return 0;
}

/* Writes \p v so that parse_line() reads it back unchanged. */
static void put_value(FILE *fp, const char *v)
{
        if (*v && !strpbrk(v, " \t#\"\\")) {
                fputs(v, fp);
                return;
        }
        fputc('"', fp);
        for (; *v; v++) {
                if (*v == '"' || *v == '\\')
                        fputc('\\', fp);
                fputc(*v, fp);
        }
        fputc('"', fp);
}

void rf_config_dump(const rf_config_t *conf, FILE *fp)
{
        char buf[64];

        fprintf(fp, "# recfresh %s configuration (recfresh config --dump)\n",
                RF_VERSION);
        for (size_t i = 0; i < RF_ARRAY_SIZE(conf_table); i++) {
                const struct conf_row *row = &conf_table[i];

                fprintf(fp, "\n# %s\n%s = ", row->doc, row->name);
                put_value(fp, format_row(row, conf, buf, sizeof(buf)));
                fputc('\n', fp);
        }

        fprintf(fp, "\n# Per-surface policy; a surface without a section of "
                    "its own uses \"default\".\n");
        for (size_t i = 0; i < RF_ARRAY_SIZE(surface_table); i++)
                fprintf(fp, "# %s: %s\n", surface_table[i].name,
                        surface_table[i].doc);
        for (size_t s = 0; s < conf->surface_cnt; s++) {
                const rf_surface_conf_t *sc = &conf->surfaces[s];

                for (size_t i = 0; i < RF_ARRAY_SIZE(surface_table); i++) {
                        const struct conf_row *row = &surface_table[i];

                        fprintf(fp, "surface.%s.%s = ", sc->name, row->name);
                        put_value(fp, format_row(row, sc, buf, sizeof(buf)));
                        fputc('\n', fp);
                }
        }

        if (conf->kafka_cnt)
                fprintf(fp, "\n# librdkafka properties, passed through "
                            "verbatim.\n");
        for (size_t i = 0; i < conf->kafka_cnt; i++) {
                const rf_kv_t *kv = &conf->kafka[i];

                fprintf(fp, "%s%s = ", KAFKA_PREFIX, kv->key);
                put_value(fp, rf_config_is_secret(kv->key) ? "[redacted]"
                                                           : kv->value);
                fputc('\n', fp);
        }
}

/* One aligned "NAME TYPE DEFAULT RANGE" line, without trailing blanks. */
static void usage_line(FILE *fp, const char *name, const char *type,
                       const char *def, const char *range)
{
        char line[256];
        size_t len;

        snprintf(line, sizeof(line), "%-28s %-9s %-16s %s", name, type, def,
                 range);
        len = strlen(line);
        while (len && line[len - 1] == ' ')
                line[--len] = '\0';
        fprintf(fp, "%s\n", line);
}

static void usage_row(FILE *fp, const struct conf_row *row, const char *name)
{
        char def[80], lo[32], hi[32], range[96] = "", tmp[64];
        int64_t dv = 0;

        /* Durations are shown normalised ("100" -> "100ms"). */
        if (row->type == CONF_DURATION && !parse_duration(row->def, &dv))
                format_duration(dv, tmp, sizeof(tmp));
        else
                snprintf(tmp, sizeof(tmp), "%s", row->def);
        if (row->type == CONF_STRING && (!*tmp || strpbrk(tmp, " #")))
                snprintf(def, sizeof(def), "\"%s\"", tmp);
        else
                snprintf(def, sizeof(def), "%s", tmp);

        switch (row->type) {
        case CONF_STRING:
                if (row->allowed)
                        snprintf(range, sizeof(range), "%s", row->allowed);
                break;
        case CONF_INT:
                snprintf(range, sizeof(range), "%" PRId64 "..%" PRId64,
                         row->min, row->max);
                break;
        case CONF_DURATION:
                snprintf(range, sizeof(range), "%s..%s",
                         format_duration(row->min, lo, sizeof(lo)),
                         format_duration(row->max, hi, sizeof(hi)));
                break;
        case CONF_BOOL:
                snprintf(range, sizeof(range), "true, false");
                break;
        }
        usage_line(fp, name, type_names[row->type], def, range);
        fprintf(fp, "    %s\n", row->doc);
}

void rf_config_usage(FILE *fp)
{
        char name[128];

        fputs("Options are set in a config file (--config FILE: one "
              "`name = value` per line,\n"
              "`#` starts a comment, double-quote values with spaces or `#`) "
              "and on the\n"
              "command line, which wins. Durations are ms, or take a unit: "
              "250ms, 2s, 5m, 1h.\n\n",
              fp);
        usage_line(fp, "NAME", "TYPE", "DEFAULT", "RANGE");
        for (size_t i = 0; i < RF_ARRAY_SIZE(conf_table); i++)
                usage_row(fp, &conf_table[i], conf_table[i].name);
        for (size_t i = 0; i < RF_ARRAY_SIZE(surface_table); i++) {
                snprintf(name, sizeof(name), "surface.<name>.%s",
                         surface_table[i].name);
                usage_row(fp, &surface_table[i], name);
        }
        fputs("    Surface \"default\" applies to surfaces without a section "
              "of their own; a new\n"
              "    surface starts from the \"default\" values set before "
              "its first line.\n",
              fp);
        usage_line(fp, "kafka.<property>", "string", "", "");
        fputs("    Any other kafka.<property> is a librdkafka property, "
              "passed verbatim to\n"
              "    every client (e.g. kafka.security.protocol = SASL_SSL); "
              "setting it again\n"
              "    replaces the value. Secret values are never printed.\n",
              fp);
}

rf_limits_t rf_config_limits(const rf_config_t *conf)
{
        rf_limits_t l = {
                .max_record_bytes = (size_t)conf->max_record_bytes,
                .max_items_per_list = (size_t)conf->max_items_per_list,
                .max_id_len = (size_t)conf->max_id_len,
                .max_json_depth = (int)conf->max_json_depth,
        };
        return l;
}
