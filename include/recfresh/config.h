/*
 * recfresh - configuration.
 *
 * One table (config.c: `conf_table[]`) drives parsing, defaults, range checks,
 * `recfresh config --dump`, `--help` and the reference in ops/. Each row has a
 * name ("recompute.coalesce_ms"), a type, a default, a range and a doc line.
 *
 * Sources, later ones overriding earlier ones:
 *   1. defaults from the table;
 *   2. a config file (`--config FILE`): `name = value` lines, `#` comments;
 *   3. command-line flags (rf_config_set()).
 *
 * Three families of names are not in the table:
 *   - `kafka.<property> = value` (file) and `-X property=value` (CLI) are
 *     librdkafka client properties, passed through verbatim to every client;
 *   - `surface.<name>.<field> = value` sets per-surface policy; fields are
 *     listed in `surface_table[]`; surface "default" applies to any surface
 *     without its own section.
 *
 * An unknown name or a bad value is an error naming "file:line".
 */
#ifndef RECFRESH_CONFIG_H
#define RECFRESH_CONFIG_H

#include <stdio.h>

#include "recfresh/common.h"
#include "recfresh/store.h"

/** Per-surface serving and recompute policy. */
typedef struct rf_surface_conf {
        char *name;          /* surface name, "default" for the fallback */
        char *consent_scope; /* extra consent scope that blocks this surface
                              * ("email", "push"), or "" for none; scopes
                              * "all" and "personalization" block every
                              * surface */
        int64_t min_valid;   /* fewer valid entries than this: urgent
                              * recompute, fallback fill */
        int64_t grace_ms;    /* an expired list is served as stale for this
                              * long, then the fallback is served */
        /* batch run validation gates (runs.c), percentages 0..100 */
        int64_t run_min_coverage_pct;      /* lists vs expected_lists */
        int64_t run_min_prev_coverage_pct; /* subjects vs previous run */
        int64_t run_max_empty_pct;         /* empty lists */
        int64_t run_max_duplicate_pct;     /* lists holding an item twice */
        int64_t run_max_invalid_pct;       /* entries tombstoned at load */
        int64_t run_min_list_len;          /* shorter lists are "short" */
        int64_t run_max_short_pct;         /* short lists */
} rf_surface_conf_t;

/** A librdkafka property passed through verbatim. */
typedef struct rf_kv {
        char *key;
        char *value;
} rf_kv_t;

/** The effective configuration. Fields mirror conf_table[] in config.c. */
typedef struct rf_config {
        /* service */
        char *data_dir;       /* RocksDB directory */
        char *log_level;      /* error|warn|info|debug */
        char *http_addr;      /* HTTP listen address; "" = no HTTP server */
        char *http_addr_file; /* write the bound host:port here */
        char *http_admin_token_file; /* admin bearer token; "" = off */
        int64_t http_threads;        /* HTTP worker threads */
        int64_t http_max_connections;
        int64_t http_max_body_bytes;       /* largest POST body */
        int64_t http_max_body_total_bytes; /* all bodies held at once */
        int64_t http_body_timeout_ms;      /* a body's time to arrive */
        int64_t http_default_limit;        /* entries served without ?limit= */
        int64_t http_max_limit;            /* largest accepted limit */
        int64_t http_ready_max_lag;        /* /readyz: records behind at most */
        char *http_advertise;              /* address other instances redirect
                                            * to; "" = the bound address */
        char *cluster_instance_id;         /* name in recs.members.v1; "" = the
                                            * advertised address */

        /* kafka */
        char *brokers;  /* bootstrap servers; "" = embedded broker */
        char *group_id; /* consumer group of subject-scoped topics */
        int64_t embedded_partitions; /* embedded broker: partitions per
                                      * topic, 0 = as in topics/ */
        char *bootstrap_file;        /* embedded broker: write bootstrap here */
        int64_t consumer_batch;      /* max records applied per batch */
        int64_t poll_timeout_ms;     /* idle wait for records */

        /* limits on input records (DLQ reasons) */
        int64_t max_record_bytes;
        int64_t max_items_per_list;
        int64_t max_id_len;
        int64_t max_json_depth;

        /* fan-out and store */
        int64_t fanout_chunk;   /* index entries per fan-out step */
        int64_t fanout_step_ms; /* and its time budget, 0: none */
        int store_sync;         /* fsync the WAL on every write */
        int64_t block_cache_mb; /* RocksDB block cache */
        int64_t list_cache_mb;  /* decoded run versions (list_cache.h) */
        int64_t hide_cache_mb;  /* users' hides (hide_cache.h) */
        int64_t write_buffer_mb;
        int64_t max_wal_mb;  /* WAL bound, 0: RocksDB's default */
        int64_t min_free_mb; /* disk guard: stop below this, 0 = off */
        int64_t purge_compact_after_ms; /* privacy compaction delay */
        int64_t manifest_roll_kb;       /* MANIFEST roll size */
        char *store_compression;        /* "lz4" or "none" */

        /* event log archive (eventlog.h) */
        char *eventlog_dir;            /* "" = off */
        int64_t eventlog_rotate_ms;    /* new segment after this long */
        int64_t eventlog_retention_ms; /* delete older segments; 0 = never */

        /* recompute queue and refresh runs (recompute.c, refresh.c) */
        int64_t rc_coalesce_ms;       /* reasons within this leave as one */
        int64_t rc_max_reasons;       /* reasons listed per request */
        int64_t rc_tick_ms;           /* time budget of a send tick, 0: none */
        int64_t rc_rate_per_s;        /* incremental + active requests/s */
        int64_t rc_full_rate_per_s;   /* full refresh requests/s */
        int64_t rc_max_inflight;      /* requests awaiting their ack */
        char *rc_full_at;             /* daily full refresh "HH:MM" UTC, "" */
        int64_t rc_incremental_every; /* incremental refresh period, 0 off */
        int64_t rc_active_within;     /* "active" = activity this recent */
        int64_t rc_expiry_horizon;    /* lists expiring within this */
        int64_t rc_max_invalid_pct;   /* lists with more entries tombstoned */
        int64_t rc_max_age_ms;        /* lists generated longer ago */
        int64_t rc_activity_ttl_ms;   /* last activity kept this long */
        int64_t rc_refresh_backlog;   /* refresh pauses at this many pending */
        int64_t rc_valid_memory;      /* lists whose valid count is kept */
        int64_t rc_entry_cache_mb;    /* pending entries kept (value_cache) */

        /* batch runs and the bulk loader (runs.c, bulkload.c) */
        int64_t runs_keep_versions; /* versions kept, the active included */
        int64_t runs_completion_timeout_ms; /* wait for expected lists */
        int64_t runs_settle_ms;         /* wait when expected_lists is absent */
        int64_t runs_staged_ttl_ms;     /* uncompleted runs expire after */
        int64_t runs_purge_chunk;       /* lists deleted per step */
        int64_t runs_max_malformed_pct; /* bulk load: unparseable lines */
        int64_t load_memory_mb;         /* bulk loader sort buffer */
        int64_t load_threads; /* bulk loader parse threads; 0 = CPUs */
        int64_t load_wait_ms; /* CLI: wait for the daemon's verdict */

        /* pass-through and per-surface sections */
        rf_kv_t *kafka; /* librdkafka properties, in order given */
        size_t kafka_cnt;
        rf_surface_conf_t *surfaces; /* [0] is always "default" */
        size_t surface_cnt;
} rf_config_t;

/** Fills \p conf with the table's defaults. Free with rf_config_destroy(). */
void rf_config_init(rf_config_t *conf);

/** Frees everything \p conf owns. */
void rf_config_destroy(rf_config_t *conf);

/**
 * Reads a config file. On error, errstr reads "path:line: message", e.g.
 * "recfresh.conf:12: unknown key \"recompute.coalesce\"".
 * @returns 0, RF_EIO (unreadable file) or RF_ECONFIG.
 */
int rf_config_load_file(rf_config_t *conf, const char *path, char *errstr,
                        size_t errstr_size);

/**
 * Sets one name to a value, as a flag would: a table name, a
 * "kafka.<prop>" or a "surface.<name>.<field>".
 * @returns 0 or RF_ECONFIG with errstr set.
 */
int rf_config_set(rf_config_t *conf, const char *name, const char *value,
                  char *errstr, size_t errstr_size);

/** Adds a librdkafka property (as `-X key=value`). */
void rf_config_set_kafka(rf_config_t *conf, const char *key, const char *value);

/**
 * Prints the effective configuration as a loadable config file, one
 * `name = value` per line, with the doc line of each as a comment.
 * Values of secret-looking Kafka properties (password, secret, token,
 * key material) are printed as "[redacted]".
 */
void rf_config_dump(const rf_config_t *conf, FILE *fp);

/** Prints the reference of every option: name, type, default, range, doc. */
void rf_config_usage(FILE *fp);

/** The store options of \p conf (store.*), for every primary open: the
 *  daemon's and the CLI's (a bulk load writes SST files with them). */
void rf_config_store_opts(const rf_config_t *conf, rf_store_opts_t *so);

/** @returns the policy for \p surface, or the "default" one. Never NULL. */
const rf_surface_conf_t *rf_config_surface(const rf_config_t *conf,
                                           const char *surface);

/** @returns the input limits from \p conf. */
rf_limits_t rf_config_limits(const rf_config_t *conf);

/**
 * @returns 1 if a Kafka property name looks secret (sasl.password,
 * ssl.key.password, *.secret, *token*, ...) and must never be printed.
 */
int rf_config_is_secret(const char *key);

#endif /* RECFRESH_CONFIG_H */
