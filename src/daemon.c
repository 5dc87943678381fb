/*
 * recfresh - the daemon loop (see daemon.h).
 *
 * Ordering guarantees, all from there being one writer thread:
 *  - a batch's records, their effects and their offsets commit together;
 *  - the next poll happens only after that commit, so a rebalance callback
 *    (served inside the poll) always sees stored offsets equal to state;
 *  - fan-out steps and outbox deliveries run between batches, bounded, so a
 *    huge fan-out delays other events by at most one step.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/apply.h"
#include "recfresh/broker.h"
#include "recfresh/cluster.h"
#include "recfresh/consumer.h"
#include "recfresh/daemon.h"
#include "recfresh/eventlog.h"
#include "recfresh/fanout.h"
#include "recfresh/http.h"
#include "recfresh/kafka.h"
#include "recfresh/hide_cache.h"
#include "recfresh/list_cache.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/notify.h"
#include "recfresh/outbox.h"
#include "recfresh/purge.h"
#include "recfresh/recompute.h"
#include "recfresh/refresh.h"
#include "recfresh/runs.h"
#include "recfresh/tomb_set.h"
#include "recfresh/tombstone.h"
#include "recfresh/topics.h"

#define OUTBOX_MAX_INFLIGHT 10000

struct rf_daemon {
        const rf_config_t *conf;
        char *admin_token;   /* from http.admin_token_file, or NULL */
        rf_broker_t *broker; /* embedded broker, or NULL */
        char *bootstraps;
        rf_store_t *st;
        rf_consumer_t *consumer;
        rd_kafka_t *producer; /* outbox: DLQ and invalidations */
        rf_outbox_t *outbox;
        rf_fanout_t *fanout;
        rf_compactor_t *compactor; /* privacy compaction after purges */
        rf_queue_t *queue;         /* recompute queue (recompute.h) */
        rd_kafka_t *rc_producer;   /* its producer: recs.recompute.v1 */
        rf_refresh_t *refresh;     /* scheduled refresh runs (refresh.h) */
        rf_eventlog_t *elog;   /* event log archive, or NULL (eventlog.dir) */
        rf_runs_t *runs;       /* batch runs upkeep and spool */
        rf_cluster_t *cluster; /* ownership and routing (cluster.h) */
        rf_apply_ctx_t ctx;
        int wake[2]; /* pipe: librdkafka queues and stop() */
        atomic_int stopping;
        atomic_int ready;
        rd_kafka_message_t **msgs;
        rf_tombset_t *tombset;       /* entities in force (tomb_set.h) */
        rf_list_cache_t *list_cache; /* decoded run versions for reads */
        rf_hide_cache_t *hide_cache; /* users' hides for reads */
        int store_failed;     /* a write failed: RocksDB must not close */
        int64_t disk_next_ms; /* next free-space check (disk_guard) */

        /* HTTP API (http.h) and what its threads read. */
        rf_http_t *http;         /* or NULL when http.addr is "" */
        pthread_mutex_t mu;      /* guards the fields below */
        rf_partition_lag_t *lag; /* last lag snapshot (consumer.h) */
        size_t lag_cnt;
        int64_t lag_next_ms; /* when to take the next snapshot */
        int caught_up;       /* lag fell within http.ready_max_lag once */
        char degraded[256];  /* why the daemon is degraded, "" if not */
        rf_recompute_fn *read_recompute; /* reads of expired lists */
        void *read_recompute_opaque;
};

static int disk_low(rf_daemon_t *d, char *errstr, size_t errstr_size);

static int write_file(const char *path, const char *text)
{
        char tmp[4096];
        FILE *fp;

        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        if (!(fp = fopen(tmp, "w")))
                return -1;
        fprintf(fp, "%s\n", text);
        if (fclose(fp) != 0)
                return -1;
        return rename(tmp, path); /* readers never see a partial file */
}

/* ---- HTTP: readiness, gauges, reads asking for recomputes --------------*/

/* Daemon thread: refreshes the lag snapshot the HTTP threads read, and
 * latches caught_up once every partition is within http.ready_max_lag. */
static void lag_update(rf_daemon_t *d)
{
        int64_t now = rf_mono_ms(), max = 0;
        rf_partition_lag_t *lag;
        size_t cnt;
        int known = 1;

        if (now < d->lag_next_ms)
                return;
        /* Often while catching up (readiness), then once a second. */
        d->lag_next_ms = now + (d->caught_up ? 1000 : 100);
        cnt = rf_consumer_lag(d->consumer, &lag);
        for (size_t i = 0; i < cnt; i++) {
                if (lag[i].lag < 0)
                        known = 0;
                else if (lag[i].lag > max)
                        max = lag[i].lag;
        }
        pthread_mutex_lock(&d->mu);
        free(d->lag);
        d->lag = lag;
        d->lag_cnt = cnt;
        if (!d->caught_up && atomic_load(&d->ready) && cnt && known &&
            max <= d->conf->http_ready_max_lag) {
                d->caught_up = 1;
                rf_log_info("daemon",
                            "caught up: %zu partitions, at most %lld records "
                            "behind",
                            cnt, (long long)max);
                rf_notify_ready("caught up; serving");
        }
        pthread_mutex_unlock(&d->mu);
}

static int http_ready(void *opaque, char *why, size_t why_size)
{
        rf_daemon_t *d = opaque;
        int ok = 0;

        pthread_mutex_lock(&d->mu);
        if (atomic_load(&d->stopping)) {
                snprintf(why, why_size, "stopping");
        } else if (d->degraded[0]) {
                snprintf(why, why_size, "degraded: %s", d->degraded);
        } else if (!atomic_load(&d->ready)) {
                snprintf(why, why_size, "consumers not assigned yet");
        } else if (d->consumer && rf_consumer_brokers_up(d->consumer) == 0) {
                /* Reads are still served from the store; new events are
                 * not being taken. */
                snprintf(why, why_size, "no Kafka broker reachable");
        } else if (!d->caught_up) {
                int64_t max = -1;
                const char *at = "";
                int32_t part = 0;
                for (size_t i = 0; i < d->lag_cnt; i++) {
                        if (d->lag[i].lag < 0) {
                                max = -1, at = d->lag[i].topic;
                                part = d->lag[i].partition;
                                break;
                        }
                        if (d->lag[i].lag > max) {
                                max = d->lag[i].lag, at = d->lag[i].topic;
                                part = d->lag[i].partition;
                        }
                }
                if (max < 0 && *at)
                        snprintf(why, why_size,
                                 "catching up: end offset of %s [%d] not "
                                 "known yet",
                                 at, (int)part);
                else if (*at)
                        snprintf(why, why_size,
                                 "catching up: %s [%d] is %lld records "
                                 "behind (http.ready_max_lag = %lld)",
                                 at, (int)part, (long long)max,
                                 (long long)d->conf->http_ready_max_lag);
                else
                        snprintf(why, why_size, "catching up");
        } else {
                ok = 1;
        }
        pthread_mutex_unlock(&d->mu);
        return ok;
}

static void sample(rf_buf_t *out, const char *type, const char *name,
                   const char *help, long long v)
{
        rf_prom_head(out, name, type, help);
        rf_buf_printf(out, "%s %lld\n", name, v);
}

static void gauge(rf_buf_t *out, const char *name, const char *help,
                  long long v)
{
        sample(out, "gauge", name, help, v);
}

/* A read cache's metrics, each a name (written out whole: ops/ greps for
 * them) and its help: bytes, capacity, entries (gauges), then hits and
 * misses (counters), with values \p v in that order. */
enum { CM_BYTES, CM_CAPACITY, CM_ENTRIES, CM_HITS, CM_MISSES, CM__CNT };

static void cache_metrics(rf_buf_t *out, const char *const doc[CM__CNT][2],
                          const long long v[CM__CNT])
{
        for (int m = 0; m < CM__CNT; m++)
                sample(out, m < CM_HITS ? "gauge" : "counter", doc[m][0],
                       doc[m][1], v[m]);
}

static void http_metrics(void *opaque, rf_buf_t *out)
{
        rf_daemon_t *d = opaque;
        char why[256];

        rf_prom_head(out, "recfresh_consumer_lag", "gauge",
                     "Records on the broker not yet applied, per assigned "
                     "partition (absent until its end offset is known).");
        pthread_mutex_lock(&d->mu);
        for (size_t i = 0; i < d->lag_cnt; i++)
                if (d->lag[i].lag >= 0)
                        rf_buf_printf(out,
                                      "recfresh_consumer_lag{topic=\"%s\","
                                      "partition=\"%d\"} %lld\n",
                                      d->lag[i].topic, (int)d->lag[i].partition,
                                      (long long)d->lag[i].lag);
        pthread_mutex_unlock(&d->mu);
        gauge(out, "recfresh_ready", "1 when /readyz answers ready.",
              http_ready(d, why, sizeof(why)));
        pthread_mutex_lock(&d->mu);
        rf_cluster_t *cl = d->cluster;
        pthread_mutex_unlock(&d->mu);
        if (cl)
                rf_cluster_metrics(cl, out);

        rf_prom_head(out, "recfresh_store_keys", "gauge",
                     "Estimated keys per column family.");
        for (int cf = 0; cf < RF_CF__CNT; cf++) {
                int64_t v = rf_store_property_int(d->st, cf,
                                                  "rocksdb.estimate-num-keys");
                if (v >= 0)
                        rf_buf_printf(out,
                                      "recfresh_store_keys{cf=\"%s\"} "
                                      "%lld\n",
                                      rf_cf_name((rf_cf_t)cf), (long long)v);
        }
        gauge(out, "recfresh_store_sst_bytes",
              "Bytes in SST files, all column families.",
              (long long)rf_store_property_int(d->st, -1,
                                               "rocksdb.total-sst-files-size"));
        gauge(out, "recfresh_store_live_data_bytes",
              "Estimated bytes of live data, all column families.",
              (long long)rf_store_property_int(
                  d->st, -1, "rocksdb.estimate-live-data-size"));
        gauge(out, "recfresh_store_memtable_bytes",
              "Bytes in memtables, all column families.",
              (long long)rf_store_property_int(
                  d->st, -1, "rocksdb.cur-size-all-mem-tables"));
        gauge(out, "recfresh_store_block_cache_bytes",
              "Bytes in use in the block cache.",
              (long long)rf_store_block_cache_usage(d->st));
        gauge(out, "recfresh_store_block_cache_capacity_bytes",
              "Block cache capacity (store.block_cache_mb).",
              (long long)d->conf->block_cache_mb * 1024 * 1024);
        static const char *const list_doc[CM__CNT][2] = {
                { "recfresh_list_cache_bytes",
                  "Bytes of decoded run versions cached for reads." },
                { "recfresh_list_cache_capacity_bytes",
                  "List cache capacity (store.list_cache_mb)." },
                { "recfresh_list_cache_entries",
                  "Run versions in the list cache." },
                { "recfresh_list_cache_hits_total",
                  "Reads that found their run version in the list cache." },
                { "recfresh_list_cache_misses_total",
                  "Reads of a run version that read it from the store." },
        };
        static const char *const hide_doc[CM__CNT][2] = {
                { "recfresh_hide_cache_bytes",
                  "Bytes of users' hides cached for reads." },
                { "recfresh_hide_cache_capacity_bytes",
                  "Hide cache capacity (store.hide_cache_mb)." },
                { "recfresh_hide_cache_entries", "Users in the hide cache." },
                { "recfresh_hide_cache_hits_total",
                  "Reads that found their reader's hides in the hide cache." },
                { "recfresh_hide_cache_misses_total",
                  "Reads that read their reader's hides from the store." },
        };
        rf_list_cache_stats_t lcs;
        rf_list_cache_stats(d->list_cache, &lcs);
        cache_metrics(
            out, list_doc,
            (long long[]){ (long long)lcs.bytes, (long long)lcs.max_bytes,
                           (long long)lcs.entries, (long long)lcs.hits,
                           (long long)lcs.misses });
        sample(out, "counter", "recfresh_list_cache_evictions_total",
               "Run versions the list cache let go for room.",
               (long long)lcs.evictions);
        rf_hide_cache_stats_t hcs;
        rf_hide_cache_stats(d->hide_cache, &hcs);
        cache_metrics(
            out, hide_doc,
            (long long[]){ (long long)hcs.bytes, (long long)hcs.max_bytes,
                           (long long)hcs.entries, (long long)hcs.hits,
                           (long long)hcs.misses });
}

/* Any thread: who serves a subject (cluster.h). Until the cluster
 * exists, nobody is known. */
static void http_owner(void *opaque, const char *subject, rf_owner_t *out)
{
        rf_daemon_t *d = opaque;
        rf_cluster_t *cl;

        pthread_mutex_lock(&d->mu);
        cl = d->cluster;
        pthread_mutex_unlock(&d->mu);
        if (cl) {
                rf_cluster_owner(cl, subject, out);
        } else {
                memset(out, 0, sizeof(*out));
                out->state = RF_OWNER_UNKNOWN;
                out->partition = -1;
        }
}

static void http_ready_parts(void *opaque, rf_buf_t *out)
{
        rf_daemon_t *d = opaque;
        rf_cluster_t *cl;

        pthread_mutex_lock(&d->mu);
        cl = d->cluster;
        pthread_mutex_unlock(&d->mu);
        if (cl)
                rf_cluster_partitions_json(cl, out);
        else
                rf_buf_append(out, "[]", 2);
}

/* Any thread: a read found an expired list. */
static void read_recompute(void *opaque, const char *subject,
                           const char *surface, const char *context,
                           const char *reason)
{
        rf_daemon_t *d = opaque;
        rf_recompute_fn *fn;
        void *arg;

        pthread_mutex_lock(&d->mu);
        fn = d->read_recompute;
        arg = d->read_recompute_opaque;
        pthread_mutex_unlock(&d->mu);
        if (fn)
                fn(arg, subject, surface, context, reason);
}

/* Reads the admin token: one line, surrounding white space trimmed. A
 * configured file that cannot be read or is empty stops the start: admin
 * must never be open by accident. */
static int read_admin_token(rf_daemon_t *d, char *errstr, size_t errstr_size)
{
        const char *path = d->conf->http_admin_token_file;
        char buf[4096];
        size_t n;
        FILE *fp;

        if (!*path)
                return 0;
        if (!(fp = fopen(path, "r"))) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return -1;
        }
        n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        char *b = buf, *e = buf + strlen(buf);
        while (*b == ' ' || *b == '\t' || *b == '\n' || *b == '\r')
                b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
                         e[-1] == '\r'))
                *--e = '\0';
        if (!*b || memchr(b, '\n', (size_t)(e - b))) {
                snprintf(errstr, errstr_size,
                         "%s: expected one line holding the admin token", path);
                return -1;
        }
        d->admin_token = rf_strdup(b);
        explicit_bzero(buf, sizeof(buf));
        return 0;
}

/* An HTTP thread: an authorised admin action. */
static int http_admin(void *opaque, const char *action, const char *a1,
                      const char *a2, char *msg, size_t msg_size)
{
        rf_daemon_t *d = opaque;
        char errstr[512] = "", id[64];

        if (!strcmp(action, "rollback")) {
                rf_buf_t spool = { 0 }, tmp = { 0 };
                char *name = NULL;
                int r;
                rf_buf_printf(&spool, "%s/spool", d->conf->data_dir);
                rf_buf_printf(&tmp, "%s/.tmp-admin-rollback-%lld", spool.data,
                              (long long)rf_mono_ns());
                r = (mkdir(spool.data, 0755) && errno != EEXIST) ? RF_EIO : 0;
                if (r == 0)
                        r = rf_runs_write_rollback(tmp.data, a1, a2, errstr,
                                                   sizeof(errstr));
                if (r == 0)
                        r = rf_runs_spool_submit(d->conf->data_dir, tmp.data,
                                                 "rollback", &name, errstr,
                                                 sizeof(errstr));
                if (r == 0)
                        snprintf(msg, msg_size,
                                 "rollback queued as spool job %s (recfresh "
                                 "runs show, or spool/%s.result)",
                                 name, name);
                else
                        snprintf(msg, msg_size, "rollback: %s",
                                 *errstr ? errstr : rf_err2str(r));
                if (r != 0)
                        rf_runs_remove_job(tmp.data);
                free(name);
                rf_buf_free(&spool);
                rf_buf_free(&tmp);
                return r == RF_EINVAL ? r : r ? RF_EIO : 0;
        }
        if (!strcmp(action, "refresh")) {
                int mode = !a1                          ? -1
                           : !strcmp(a1, "full")        ? RF_RC_FULL
                           : !strcmp(a1, "incremental") ? RF_RC_ACTIVE
                                                        : -1;
                int r;
                if (mode < 0) {
                        snprintf(msg, msg_size,
                                 "mode: expected full or incremental");
                        return RF_EINVAL;
                }
                if (a2 && strlen(a2) >= sizeof(id)) {
                        /* Cut short, two ids would name one run. */
                        snprintf(msg, msg_size,
                                 "run_id: at most %zu bytes, got %zu",
                                 sizeof(id) - 1, strlen(a2));
                        return RF_EINVAL;
                }
                if (a2)
                        snprintf(id, sizeof(id), "%s", a2);
                else
                        snprintf(id, sizeof(id), "admin-%s-%lld", a1,
                                 (long long)rf_now_ms());
                r = rf_refresh_request(d->refresh, (rf_rc_mode_t)mode, id);
                if (r == RF_EBLOCKED)
                        snprintf(msg, msg_size,
                                 "another requested refresh run is going");
                else if (r == RF_EINVAL)
                        snprintf(msg, msg_size, "run_id: at most %zu bytes",
                                 sizeof(id) - 1);
                else
                        snprintf(msg, msg_size, "refresh run %s requested", id);
                return r;
        }
        if (!strcmp(action, "checkpoint")) {
                /* The primary handle can checkpoint while it writes: this
                 * is how a replay is seeded from the live store. */
                if (!a1 || a1[0] != '/') {
                        snprintf(msg, msg_size,
                                 "dir: expected an absolute path that does "
                                 "not exist yet");
                        return RF_EINVAL;
                }
                if (rf_store_checkpoint(d->st, a1, errstr, sizeof(errstr))) {
                        snprintf(msg, msg_size, "checkpoint: %s", errstr);
                        return RF_ESTORE;
                }
                snprintf(msg, msg_size, "checkpoint written to %s", a1);
                return 0;
        }
        snprintf(msg, msg_size, "unknown action");
        return RF_EINVAL;
}

static int http_start(rf_daemon_t *d, char *errstr, size_t errstr_size)
{
        if (read_admin_token(d, errstr, errstr_size))
                return -1;

        rf_http_conf_t hc = {
                .addr = d->conf->http_addr,
                .serve = { d->st, d->conf, read_recompute, d, 0 },
                .ready = http_ready,
                .ready_parts = http_ready_parts,
                .owner = http_owner,
                .metrics = http_metrics,
                .admin_token = d->admin_token,
                .admin = http_admin,
                .opaque = d,
        };

        d->http = rf_http_start(&hc, errstr, errstr_size);
        if (!d->http)
                return -1;
        if (*d->conf->http_addr_file &&
            write_file(d->conf->http_addr_file, rf_http_addr(d->http)) != 0) {
                snprintf(errstr, errstr_size, "%s: %s", d->conf->http_addr_file,
                         strerror(errno));
                return -1;
        }
        return 0;
}

void rf_daemon_set_read_recompute(rf_daemon_t *d, rf_recompute_fn *fn,
                                  void *opaque)
{
        pthread_mutex_lock(&d->mu);
        d->read_recompute = fn;
        d->read_recompute_opaque = opaque;
        pthread_mutex_unlock(&d->mu);
}

void rf_daemon_set_degraded(rf_daemon_t *d, const char *reason)
{
        pthread_mutex_lock(&d->mu);
        if (reason && *reason && strcmp(reason, d->degraded))
                rf_log_warn("daemon", "degraded: %s", reason);
        else if ((!reason || !*reason) && d->degraded[0])
                rf_log_info("daemon", "no longer degraded");
        snprintf(d->degraded, sizeof(d->degraded), "%s", reason ? reason : "");
        pthread_mutex_unlock(&d->mu);
}

const char *rf_daemon_http_addr(const rf_daemon_t *d)
{
        return d->http ? rf_http_addr(d->http) : NULL;
}

/* Turns the batch's event timestamps into latency observations once the
 * batch is committed (the tombstones are in force from then on). */
static void tomb_latency(rf_apply_ctx_t *ctx, int committed)
{
        int64_t now = rf_now_ms();

        for (size_t i = 0; committed && i + sizeof(int64_t) <= ctx->tomb_ts.len;
             i += sizeof(int64_t)) {
                int64_t ts;
                memcpy(&ts, ctx->tomb_ts.data + i, sizeof(ts));
                rf_hist_observe(&rf_metrics.tomb_latency_ms,
                                rf_hist_latency_bounds,
                                now > ts ? (uint64_t)(now - ts) : 0);
        }
        rf_buf_reset(&ctx->tomb_ts);
}

/* Reads that find a list expired ask for a recompute (any thread). */
static void queue_read_recompute(void *opaque, const char *subject_id,
                                 const char *surface, const char *context_key,
                                 const char *reason)
{
        (void)context_key;
        rf_queue_ask(opaque, subject_id, surface,
                     !strcmp(reason, "expired") ? "list_expired"
                                                : "list_degraded");
}

/* The recompute queue's own producer: its delivery reports settle queue
 * entries, apart from the outbox's. */
static rd_kafka_t *queue_producer(rf_daemon_t *d, char *errstr,
                                  size_t errstr_size)
{
        rd_kafka_conf_t *pc = rf_kafka_conf_new(
            d->conf, d->bootstraps, "recompute", errstr, errstr_size);
        rd_kafka_t *rk;
        char err[256];

        if (!pc)
                return NULL;
        /* Keyed by subject: hash as the Java client does (cluster.h). */
        if (rf_kafka_conf_set(pc, "enable.idempotence", "true", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(pc, "partitioner", "murmur2_random", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(pc, "linger.ms", "5", errstr, errstr_size)) {
                rd_kafka_conf_destroy(pc);
                return NULL;
        }
        rf_queue_conf_set(d->queue, pc);
        if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err)))) {
                rd_kafka_conf_destroy(pc);
                snprintf(errstr, errstr_size, "recompute producer: %s", err);
        }
        return rk;
}

/* Membership and routing: named by cluster.instance_id, else by the
 * advertised address, else by host and pid. */
static rf_cluster_t *cluster_new(rf_daemon_t *d, char *errstr,
                                 size_t errstr_size)
{
        const char *adv = *d->conf->http_advertise ? d->conf->http_advertise
                          : d->http                ? rf_http_addr(d->http)
                                                   : "";
        char id[256], host[128] = "localhost";
        rf_cluster_t *cl;

        if (*d->conf->cluster_instance_id) {
                snprintf(id, sizeof(id), "%s", d->conf->cluster_instance_id);
        } else if (*adv) {
                snprintf(id, sizeof(id), "%s", adv);
        } else {
                gethostname(host, sizeof(host) - 1);
                snprintf(id, sizeof(id), "%s-%d", host, (int)getpid());
        }
        cl = rf_cluster_new(d->conf, d->bootstraps, id, adv, errstr,
                            errstr_size);
        pthread_mutex_lock(&d->mu);
        d->cluster = cl;
        pthread_mutex_unlock(&d->mu);
        return cl;
}

rf_daemon_t *rf_daemon_new(const rf_config_t *conf, char *errstr,
                           size_t errstr_size)
{
        rf_daemon_t *d = rf_calloc(1, sizeof(*d));
        rf_store_opts_t so;
        rd_kafka_conf_t *pc;
        char err[256];

        d->conf = conf;
        rf_config_store_opts(conf, &so);
        d->wake[0] = d->wake[1] = -1;
        pthread_mutex_init(&d->mu, NULL);
        if (pipe2(d->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
                snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
                goto fail;
        }

        if (!*conf->brokers) {
                d->broker = rf_broker_new(1, (int)conf->embedded_partitions,
                                          errstr, errstr_size);
                if (!d->broker)
                        goto fail;
                d->bootstraps = rf_strdup(rf_broker_bootstraps(d->broker));
                if (*conf->bootstrap_file &&
                    write_file(conf->bootstrap_file, d->bootstraps) != 0) {
                        snprintf(errstr, errstr_size, "%s: %s",
                                 conf->bootstrap_file, strerror(errno));
                        goto fail;
                }
        } else {
                d->bootstraps = rf_strdup(conf->brokers);
        }

        if (disk_low(d, errstr, errstr_size))
                goto fail; /* before RocksDB preallocates a WAL */
        d->st = rf_store_open(conf->data_dir, RF_STORE_PRIMARY, &so, errstr,
                              errstr_size);
        if (!d->st)
                goto fail;
        if (!(d->outbox = rf_outbox_new(d->st, errstr, errstr_size)) ||
            !(d->fanout = rf_fanout_new(d->st, errstr, errstr_size)))
                goto fail;
        rf_fanout_set_step_ms(d->fanout, d->conf->fanout_step_ms);
        /* Attached first: the store tells the set of every hide written
         * from its load on (rf_tombset_hide_written()). */
        d->tombset = rf_tombset_new();
        rf_store_set_tombset(d->st, d->tombset);
        if (rf_tombset_load(d->tombset, d->st) != 0) {
                snprintf(errstr, errstr_size, "%s: cannot read the tombstones",
                         conf->data_dir);
                goto fail;
        }
        d->list_cache = rf_list_cache_new((size_t)conf->list_cache_mb << 20);
        rf_store_set_list_cache(d->st, d->list_cache);
        d->hide_cache = rf_hide_cache_new((size_t)conf->hide_cache_mb << 20);
        rf_store_set_hide_cache(d->st, d->hide_cache);
        /* A store from before hide summaries: build them once. */
        if (rf_hide_summaries_build(d->st, errstr, errstr_size) != 0)
                goto fail;
        d->compactor = rf_compactor_new(d->st, conf->purge_compact_after_ms);
        if (*conf->eventlog_dir &&
            !(d->elog =
                  rf_eventlog_open(conf->eventlog_dir, conf->eventlog_rotate_ms,
                                   conf->eventlog_retention_ms,
                                   conf->store_sync, errstr, errstr_size)))
                goto fail;
        d->runs = rf_runs_new(conf->data_dir);
        rf_apply_ctx_init(&d->ctx, d->st, conf, d->outbox, d->fanout);
        d->queue = rf_queue_new(d->st, conf, rf_now_ms());
        d->ctx.queue = d->queue;
        d->refresh = rf_refresh_new();
        d->read_recompute = queue_read_recompute;
        d->read_recompute_opaque = d->queue;
        if (!(d->rc_producer = queue_producer(d, errstr, errstr_size)))
                goto fail;

        pc = rf_kafka_conf_new(conf, d->bootstraps, "producer", errstr,
                               errstr_size);
        if (!pc)
                goto fail;
        /* Keyed by subject: hash as the Java client does (cluster.h). */
        if (rf_kafka_conf_set(pc, "enable.idempotence", "true", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(pc, "partitioner", "murmur2_random", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(pc, "linger.ms", "5", errstr, errstr_size)) {
                rd_kafka_conf_destroy(pc);
                goto fail;
        }
        rf_outbox_conf_set(d->outbox, pc);
        d->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
        if (!d->producer) {
                rd_kafka_conf_destroy(pc);
                snprintf(errstr, errstr_size, "producer: %s", err);
                goto fail;
        }

        d->consumer = rf_consumer_new(conf, d->bootstraps, d->st, d->wake[1],
                                      errstr, errstr_size);
        if (!d->consumer)
                goto fail;
        d->msgs = rf_calloc((size_t)conf->consumer_batch, sizeof(*d->msgs));
        if (*conf->http_addr && http_start(d, errstr, errstr_size) != 0)
                goto fail;
        if (!(d->cluster = cluster_new(d, errstr, errstr_size)))
                goto fail;
        return d;
fail:
        rf_daemon_destroy(d);
        return NULL;
}

static void drain_pipe(int fd)
{
        char buf[256];
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}

static void record_of(const rd_kafka_message_t *m, rf_record_t *rec)
{
        rd_kafka_timestamp_type_t tstype;
        const char *tname = rd_kafka_topic_name(m->rkt);

        rec->topic = rf_topic_by_name(tname);
        rec->topic_name = tname;
        rec->partition = m->partition;
        rec->offset = m->offset;
        rec->key = m->key;
        rec->key_len = m->key_len;
        rec->value = m->payload;
        rec->value_len = m->len;
        rec->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
}

/* Whether the data dir has less than store.min_free_mb free; if so,
 * says why in errstr. Stopping here, before RocksDB meets ENOSPC, keeps
 * every file it writes whole, so the stop is a clean one (a failed WAL
 * or SST write leaves RocksDB unable to close, see rf_daemon_store_failed). */
static int disk_low(rf_daemon_t *d, char *errstr, size_t errstr_size)
{
        int64_t free_b, min_b = d->conf->min_free_mb << 20;

        if (min_b <= 0)
                return 0;
        if ((free_b = rf_store_free_bytes(d->conf->data_dir)) < 0)
                return 0; /* no answer: RocksDB's own errors still stop us */
        atomic_store_explicit(&rf_metrics.store_free_bytes, (uint64_t)free_b,
                              memory_order_relaxed);
        if (free_b >= min_b)
                return 0;
        snprintf(errstr, errstr_size,
                 "%s: No space left on device: %" PRId64
                 " MiB free, below store.min_free_mb=%" PRId64
                 "; free space (or lower the limit) and start again",
                 d->conf->data_dir, free_b >> 20, d->conf->min_free_mb);
        return 1;
}

/* disk_low() at most every 100 ms: one batch between checks is the most a
 * full disk sees, which store.min_free_mb must cover. */
static int disk_guard(rf_daemon_t *d)
{
        char errstr[512];
        int64_t now = rf_mono_ms();

        if (now < d->disk_next_ms)
                return 0;
        d->disk_next_ms = now + 100;
        if (!disk_low(d, errstr, sizeof(errstr)))
                return 0;
        rf_log_error("daemon", "%s", errstr);
        return 1;
}

/* Commits what a step put in the transaction (r == 0), or drops it and
 * every in-memory cursor that moved with it (r != 0, or the commit failed),
 * so the next attempt starts from committed state. @returns 0 or the
 * error. */
static int finish_step(rf_daemon_t *d, int r, const char *what)
{
        char errstr[512];

        if (r == 0) {
                /* the offsets of the records taken since the last commit */
                rf_apply_offsets_put(&d->ctx);
                r = rf_txn_commit(d->ctx.txn, errstr, sizeof(errstr));
        } else {
                snprintf(errstr, sizeof(errstr), "%s", rf_err2str(r));
        }
        if (r != 0) {
                RF_METRIC_INC(store_errors);
                rf_log_error("daemon", "%s failed: %s", what, errstr);
                d->store_failed = 1;
                rf_txn_clear(d->ctx.txn);
                rf_apply_offsets_drop(&d->ctx);
                /* it took the dropped writes: back to the committed state */
                rf_tombset_load(d->tombset, d->st);
                rf_outbox_rollback(d->outbox);
                /* A read error here is logged; the daemon stops anyway. */
                (void)rf_fanout_reload(d->fanout);
                rf_queue_rollback(d->queue);
                return r;
        }
        RF_METRIC_INC(store_commits);
        rf_outbox_committed(d->outbox);
        rf_queue_committed(d->queue);
        return 0;
}

static int apply_batch(rf_daemon_t *d, size_t n)
{
        char errstr[512], what[64];
        int r = 0;

        d->ctx.now_ms = rf_now_ms();
        for (size_t i = 0; i < n && r == 0; i++) {
                rf_record_t rec;
                record_of(d->msgs[i], &rec);
                r = rf_apply_record(&d->ctx, &rec);
                if (d->elog)
                        rf_eventlog_add(d->elog, &rec);
        }
        /* The archive is written before the commit (eventlog.h). If it
         * cannot be, the batch is committed all the same: invalidations
         * must not wait on a debugging archive. The gap is counted. */
        if (r == 0 && d->elog &&
            rf_eventlog_flush(d->elog, d->ctx.now_ms, errstr, sizeof(errstr))) {
                uint64_t lost = RF_METRIC_ADD(eventlog_unarchived, n);
                rf_log_error("daemon",
                             "event log: %s: batch of %zu records not "
                             "archived (%llu so far)",
                             errstr, n, (unsigned long long)(lost + n));
        }
        snprintf(what, sizeof(what), "batch of %zu records", n);
        r = finish_step(d, r, what);
        tomb_latency(&d->ctx, r == 0);
        for (size_t i = 0; i < n; i++)
                rd_kafka_message_destroy(d->msgs[i]);
        return r;
}

/* Batch runs: validation, activation, spool jobs, version deletion. */
static int runs_step(rf_daemon_t *d)
{
        int r;

        d->ctx.now_ms = rf_now_ms();
        r = finish_step(d, rf_runs_step(d->runs, &d->ctx, 0), "runs step");
        rf_runs_committed(d->runs, r == 0);
        return r;
}

static int fanout_step(rf_daemon_t *d)
{
        size_t scanned = 0;

        if (!rf_fanout_pending(d->fanout))
                return 0;
        d->ctx.now_ms = rf_now_ms();
        int r =
            rf_fanout_step(&d->ctx, (size_t)d->conf->fanout_chunk, &scanned);
        size_t writes = rf_txn_count(d->ctx.txn);
        int64_t t0 = rf_mono_ns();
        if ((r = finish_step(d, r, "fan-out step")) == 0)
                rf_fanout_commit_cost(d->fanout, writes, rf_mono_ns() - t0);
        return r;
}

/* State of subjects we no longer own (cluster.h): one bounded step. */
static int sweep_step(rf_daemon_t *d)
{
        size_t dropped = 0;
        int r;

        /* Fan-out jobs first: they walk index entries the sweep would
         * delete, and their recompute requests must not be lost. */
        if (!rf_cluster_sweep_pending(d->cluster) ||
            rf_fanout_pending(d->fanout))
                return 0;
        d->ctx.now_ms = rf_now_ms();
        r = rf_cluster_sweep_step(d->cluster, &d->ctx,
                                  (size_t)d->conf->fanout_chunk, &dropped);
        if (r == 0 && !rf_txn_count(d->ctx.txn))
                return 0;
        if ((r = finish_step(d, r, "ownership sweep step")) != 0)
                rf_cluster_sweep_rollback(d->cluster);
        return r;
}

/* Scheduled refresh runs (refresh.h): one bounded step, committed with the
 * requests it queued. */
static int refresh_step(rf_daemon_t *d)
{
        int did = 0, r;

        d->ctx.now_ms = rf_now_ms();
        r = rf_refresh_tick(d->refresh, &d->ctx, d->ctx.now_ms, &did);
        if (r == 0 && !did)
                return 0;
        return finish_step(d, r, "refresh step");
}

int rf_daemon_run(rf_daemon_t *d)
{
        size_t max = (size_t)d->conf->consumer_batch;
        int rc = 0;

        rf_log_info("daemon", "running: data_dir=%s brokers=%s%s",
                    d->conf->data_dir, d->bootstraps,
                    d->broker ? " (embedded)" : "");
        while (!atomic_load(&d->stopping)) {
                size_t n;

                if (disk_guard(d)) {
                        rc = 1; /* a clean stop: nothing failed to write */
                        break;
                }
                n = rf_consumer_poll(d->consumer, d->msgs, max);

                if (n && apply_batch(d, n) != 0) {
                        rc = 1; /* offsets not advanced: nothing lost */
                        break;
                }
                if (fanout_step(d) != 0 || runs_step(d) != 0 ||
                    refresh_step(d) != 0 || sweep_step(d) != 0) {
                        rc = 1;
                        break;
                }
                rf_outbox_drain(d->outbox, d->producer, OUTBOX_MAX_INFLIGHT);
                rd_kafka_poll(d->producer, 0);
                atomic_store_explicit(&rf_metrics.fanout_pending,
                                      rf_fanout_pending(d->fanout),
                                      memory_order_relaxed);
                atomic_store_explicit(&rf_metrics.outbox_pending,
                                      rf_outbox_pending(d->outbox),
                                      memory_order_relaxed);
                atomic_store_explicit(&rf_metrics.tombset_entities,
                                      rf_tombset_count(d->tombset),
                                      memory_order_relaxed);
                rf_queue_tick(d->queue, d->rc_producer, rf_now_ms());
                rf_consumer_tick(d->consumer);
                rf_compactor_tick(d->compactor, rf_mono_ms());
                rf_cluster_update(d->cluster,
                                  rf_consumer_subject_parts(d->consumer));
                rf_cluster_tick(d->cluster);
                rf_notify_watchdog(rf_mono_ms());
                if (!atomic_load(&d->ready) && rf_consumer_ready(d->consumer)) {
                        atomic_store(&d->ready, 1);
                        rf_log_info("daemon", "consumers assigned");
                }
                lag_update(d);

                if (n == 0 && !rf_fanout_pending(d->fanout) &&
                    !rf_runs_busy(d->runs) &&
                    !rf_cluster_sweep_pending(d->cluster)) {
                        /* Idle: sleep until a queue has records, a stop, or
                         * the timeout (for outbox and upkeep). */
                        struct pollfd pfd = { d->wake[0], POLLIN, 0 };
                        int timeout = (int)d->conf->poll_timeout_ms;
                        int64_t qw = rf_queue_wait_ms(d->queue, rf_now_ms());
                        if (rf_outbox_pending(d->outbox))
                                timeout = timeout > 10 ? 10 : timeout;
                        if (qw >= 0 && qw < timeout)
                                timeout = (int)qw;
                        poll(&pfd, 1, timeout);
                        drain_pipe(d->wake[0]);
                }
        }

        if (rc)
                rf_daemon_set_degraded(d, "the apply loop stopped on an error");
        atomic_store(&d->stopping, 1); /* /readyz: not ready from now on */
        rf_notify_stopping();

        if (d->store_failed) {
                /* The store failed (disk full, I/O error): write nothing
                 * more. RocksDB refuses (its debug builds abort on) writes
                 * after a WAL error, and nothing needs them: the outbox and
                 * the queue are durable and resume at the next start. */
                rd_kafka_flush(d->producer, 2000);
                rf_cluster_leave(d->cluster, 2000);
                rf_log_info("daemon", "stopped (store error); outbox and "
                                      "queue resume at the next start");
                return rc;
        }
        /* Drain: the last batch is committed; deliver what the outbox holds
         * (bounded), so a clean stop leaves nothing behind. */
        int64_t deadline = rf_mono_ms() + 5000;
        while (rf_outbox_pending(d->outbox) && rf_mono_ms() < deadline) {
                rf_outbox_drain(d->outbox, d->producer, OUTBOX_MAX_INFLIGHT);
                rd_kafka_poll(d->producer, 50);
        }
        rd_kafka_flush(d->producer, 2000);
        rd_kafka_poll(d->producer, 0);
        rf_outbox_drain(d->outbox, d->producer, 0); /* delete delivered */
        /* Requests in flight: settle their acks; unacked ones are sent
         * again at the next start, same request_id. */
        rf_queue_flush(d->queue, d->rc_producer, 2000);
        /* Out of the routing table; the group moves our partitions. */
        rf_cluster_leave(d->cluster, 2000);
        rf_log_info("daemon",
                    "stopped (%s); %zu outbox records left for the "
                    "next start",
                    rc ? "error" : "clean", rf_outbox_pending(d->outbox));
        return rc;
}

int rf_daemon_store_failed(const rf_daemon_t *d)
{
        return d->store_failed;
}

void rf_daemon_stop(rf_daemon_t *d)
{
        atomic_store(&d->stopping, 1);
        if (d->wake[1] >= 0) {
                ssize_t w = write(d->wake[1], "s", 1);
                (void)w;
        }
}

const char *rf_daemon_bootstraps(const rf_daemon_t *d)
{
        return d->bootstraps;
}

rf_store_t *rf_daemon_store(rf_daemon_t *d)
{
        return d->st;
}

int rf_daemon_readiness(rf_daemon_t *d, char *why, size_t why_size)
{
        return http_ready(d, why, why_size);
}

int rf_daemon_ready(const rf_daemon_t *d)
{
        return atomic_load(&((rf_daemon_t *)d)->ready);
}

void rf_daemon_destroy(rf_daemon_t *d)
{
        if (!d)
                return;
        /* First: HTTP threads read the store and the lag snapshot. */
        rf_http_stop(d->http);
        rf_cluster_destroy(d->cluster);
        rf_consumer_close(d->consumer);
        if (d->producer)
                rd_kafka_destroy(d->producer);
        if (d->rc_producer)
                rd_kafka_destroy(d->rc_producer);
        if (d->ctx.txn)
                rf_apply_ctx_clear(&d->ctx);
        rf_fanout_destroy(d->fanout);
        rf_queue_destroy(d->queue);
        rf_refresh_destroy(d->refresh);
        rf_eventlog_close(d->elog);
        rf_runs_destroy(d->runs);
        rf_outbox_destroy(d->outbox);
        rf_compactor_destroy(d->compactor); /* joins before the close */
        rf_store_close(d->st);
        rf_tombset_destroy(d->tombset);
        rf_list_cache_destroy(d->list_cache);
        rf_hide_cache_destroy(d->hide_cache);
        rf_broker_destroy(d->broker);
        if (d->admin_token) {
                explicit_bzero(d->admin_token, strlen(d->admin_token));
                free(d->admin_token);
        }
        free(d->bootstraps);
        free(d->msgs);
        if (d->wake[0] >= 0)
                close(d->wake[0]);
        if (d->wake[1] >= 0)
                close(d->wake[1]);
        free(d->lag);
        pthread_mutex_destroy(&d->mu);
        free(d);
}
