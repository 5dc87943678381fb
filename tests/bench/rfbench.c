/*
 * recfresh bench - rfbench: the measuring tool behind tests/bench/run.sh.
 * recfresh itself runs as separate processes (`recfresh broker`, `recfresh
 * run`); rfbench generates the workload (workload.h), drives it through the
 * broker, observes the daemon through its HTTP API and /metrics, and
 * measures the raw baselines the figures are divided by:
 *
 *   gen-lists   writes the workload's lists as NDJSON (for `recfresh load`)
 *   info        prints the workload's sizes
 *   produce     produces background events as fast as it can
 *   applied     waits until the daemon applied N records: apply rate
 *   consume     (a) a plain librdkafka consumer over the same topics
 *   rocks       (b) RocksDB WriteBatch puts and point reads, (c) SST build
 *               plus ingest, with the options recfresh's store uses
 *   read        rf_read_list in-process on T threads (20 of 100, all checks)
 *   latency     event-to-visible latency under a background event rate
 *   fanout      a ban of the most popular item: visibility, fan-out rate,
 *               latency of unrelated events meanwhile
 *   coalesce    bans of the K most popular items: invalidations vs
 *               recompute requests, daemon CPU per request
 *   parse       the JSON parsers in process: streaming (yajl) against
 *               jansson's tree, per event and per list
 *   exec        runs a command: wall time, peak RSS, CPU
 *
 * Output is `name=value` lines on stdout, for run.sh to read. Diagnostics
 * go to stderr. Every command exits 0 on success, 1 on failure (a figure
 * that could not be measured), 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <rocksdb/c.h>

#include "recfresh/config.h"
#include "recfresh/hide_cache.h"
#include "recfresh/list_cache.h"
#include "recfresh/event.h"
#include "recfresh/list.h"
#include "recfresh/log.h"
#include "recfresh/read.h"
#include "recfresh/topics.h"
#include "recfresh/store.h"
#include "recfresh/tomb_set.h"
#include "workload.h"

/* ---- options ------------------------------------------------------------*/

typedef struct opts {
        uint64_t seed;
        uint32_t subjects, items;
        const char *brokers, *http, *out, *dir, *ndjson, *run_id;
        uint64_t count, start;
        double rate, seconds, probes_per_s;
        uint32_t probe_from, threads, top_k;
        long list_cache_mb; /* read: -1 = store.list_cache_mb's default */
        uint64_t keys, value_bytes, sst_lists, sst_index;
        long pid;
} opts_t;

enum {
        O_SEED = 1000,
        O_SUBJECTS,
        O_ITEMS,
        O_BROKERS,
        O_HTTP,
        O_OUT,
        O_DIR,
        O_NDJSON,
        O_RUN_ID,
        O_COUNT,
        O_START,
        O_RATE,
        O_SECONDS,
        O_PROBES,
        O_PROBE_FROM,
        O_THREADS,
        O_TOP_K,
        O_KEYS,
        O_VALUE_BYTES,
        O_SST_LISTS,
        O_SST_INDEX,
        O_PID,
        O_LIST_CACHE_MB,
};

static const struct option long_opts[] = {
        { "seed", required_argument, NULL, O_SEED },
        { "subjects", required_argument, NULL, O_SUBJECTS },
        { "items", required_argument, NULL, O_ITEMS },
        { "brokers", required_argument, NULL, O_BROKERS },
        { "http", required_argument, NULL, O_HTTP },
        { "out", required_argument, NULL, O_OUT },
        { "dir", required_argument, NULL, O_DIR },
        { "ndjson", required_argument, NULL, O_NDJSON },
        { "run-id", required_argument, NULL, O_RUN_ID },
        { "count", required_argument, NULL, O_COUNT },
        { "start", required_argument, NULL, O_START },
        { "rate", required_argument, NULL, O_RATE },
        { "seconds", required_argument, NULL, O_SECONDS },
        { "probes-per-s", required_argument, NULL, O_PROBES },
        { "probe-from", required_argument, NULL, O_PROBE_FROM },
        { "threads", required_argument, NULL, O_THREADS },
        { "top-k", required_argument, NULL, O_TOP_K },
        { "keys", required_argument, NULL, O_KEYS },
        { "value-bytes", required_argument, NULL, O_VALUE_BYTES },
        { "sst-lists", required_argument, NULL, O_SST_LISTS },
        { "sst-index", required_argument, NULL, O_SST_INDEX },
        { "pid", required_argument, NULL, O_PID },
        { "list-cache-mb", required_argument, NULL, O_LIST_CACHE_MB },
        { NULL, 0, NULL, 0 },
};

static int parse_opts(opts_t *o, int argc, char **argv)
{
        int c;

        *o = (opts_t){ .seed = 1,
                       .subjects = 1000,
                       .items = 20000,
                       .rate = 1000,
                       .seconds = 2,
                       .probes_per_s = 100,
                       .threads = 2,
                       .top_k = 10,
                       .keys = 100000,
                       .value_bytes = 2048,
                       .list_cache_mb = -1,
                       .run_id = WL_RUN_ID };
        optind = 1;
        while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
                switch (c) {
                case O_SEED:
                        o->seed = strtoull(optarg, NULL, 10);
                        break;
                case O_SUBJECTS:
                        o->subjects = (uint32_t)atol(optarg);
                        break;
                case O_ITEMS:
                        o->items = (uint32_t)atol(optarg);
                        break;
                case O_BROKERS:
                        o->brokers = optarg;
                        break;
                case O_HTTP:
                        o->http = optarg;
                        break;
                case O_OUT:
                        o->out = optarg;
                        break;
                case O_DIR:
                        o->dir = optarg;
                        break;
                case O_NDJSON:
                        o->ndjson = optarg;
                        break;
                case O_RUN_ID:
                        o->run_id = optarg;
                        break;
                case O_COUNT:
                        o->count = strtoull(optarg, NULL, 10);
                        break;
                case O_START:
                        o->start = strtoull(optarg, NULL, 10);
                        break;
                case O_RATE:
                        o->rate = atof(optarg);
                        break;
                case O_SECONDS:
                        o->seconds = atof(optarg);
                        break;
                case O_PROBES:
                        o->probes_per_s = atof(optarg);
                        break;
                case O_PROBE_FROM:
                        o->probe_from = (uint32_t)atol(optarg);
                        break;
                case O_THREADS:
                        o->threads = (uint32_t)atol(optarg);
                        break;
                case O_TOP_K:
                        o->top_k = (uint32_t)atol(optarg);
                        break;
                case O_KEYS:
                        o->keys = strtoull(optarg, NULL, 10);
                        break;
                case O_VALUE_BYTES:
                        o->value_bytes = strtoull(optarg, NULL, 10);
                        break;
                case O_SST_LISTS:
                        o->sst_lists = strtoull(optarg, NULL, 10);
                        break;
                case O_SST_INDEX:
                        o->sst_index = strtoull(optarg, NULL, 10);
                        break;
                case O_PID:
                        o->pid = atol(optarg);
                        break;
                case O_LIST_CACHE_MB:
                        o->list_cache_mb = atol(optarg);
                        break;
                default:
                        return 2;
                }
        }
        if (o->subjects < 1 || o->items < WL_LIST_LEN * 2 || o->threads < 1) {
                fprintf(stderr,
                        "rfbench: --subjects >= 1, --items >= %d, "
                        "--threads >= 1\n",
                        WL_LIST_LEN * 2);
                return 2;
        }
        return 0;
}

static double now_s(void)
{
        return (double)rf_mono_ns() / 1e9;
}

static void sleep_s(double s)
{
        struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
        nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* @returns the q-quantile (0..1) of n sorted values. */
static double quantile(const double *v, size_t n, double q)
{
        if (!n)
                return 0;
        size_t i = (size_t)ceil(q * (double)n);
        return v[i ? i - 1 : 0];
}

/* ---- a minimal keep-alive HTTP/1.1 client -------------------------------*/

typedef struct http {
        char host[64];
        int port;
        int fd;
        rf_buf_t in; /* bytes received, not yet consumed */
} http_t;

static int http_init(http_t *h, const char *addr)
{
        const char *colon = strrchr(addr, ':');

        memset(h, 0, sizeof(*h));
        h->fd = -1;
        if (!strncmp(addr, "http://", 7))
                addr += 7;
        if (!colon || (size_t)(colon - addr) >= sizeof(h->host))
                return -1;
        memcpy(h->host, addr, (size_t)(colon - addr));
        h->port = atoi(colon + 1);
        return 0;
}

static int http_connect(http_t *h)
{
        struct sockaddr_in sa = { .sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)h->port) };
        int one = 1;

        if (inet_pton(AF_INET, h->host, &sa.sin_addr) != 1)
                return -1;
        h->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (h->fd < 0)
                return -1;
        setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
                close(h->fd);
                h->fd = -1;
                return -1;
        }
        rf_buf_reset(&h->in);
        return 0;
}

static void http_close(http_t *h)
{
        if (h->fd >= 0)
                close(h->fd);
        h->fd = -1;
        rf_buf_free(&h->in);
}

/* Reads until \p need bytes are buffered. @returns 0 or -1. */
static int http_fill(http_t *h, size_t need)
{
        char buf[65536];
        while (h->in.len < need) {
                ssize_t n = read(h->fd, buf, sizeof(buf));
                if (n <= 0)
                        return -1;
                rf_buf_append(&h->in, buf, (size_t)n);
        }
        return 0;
}

/* GETs \p path into \p body. @returns the status code, or -1. */
static int http_get_once(http_t *h, const char *path, rf_buf_t *body)
{
        char req[1024];
        int n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, h->host);
        char *end;
        size_t hlen, clen;
        int status;

        if (h->fd < 0 && http_connect(h) != 0)
                return -1;
        if (write(h->fd, req, (size_t)n) != n)
                return -1;
        for (;;) {
                end = h->in.len ? memmem(h->in.data, h->in.len, "\r\n\r\n", 4)
                                : NULL;
                if (end)
                        break;
                if (http_fill(h, h->in.len + 1) != 0)
                        return -1;
        }
        hlen = (size_t)(end - h->in.data) + 4;
        if (sscanf(h->in.data, "HTTP/1.%*d %d", &status) != 1)
                return -1;
        const char *cl = strcasestr(h->in.data, "\r\ncontent-length:");
        if (!cl || cl > end)
                return -1;
        clen = strtoull(cl + 17, NULL, 10);
        if (http_fill(h, hlen + clen) != 0)
                return -1;
        rf_buf_reset(body);
        rf_buf_append(body, h->in.data + hlen, clen);
        rf_buf_append(body, "", 1);
        body->len--;
        memmove(h->in.data, h->in.data + hlen + clen, h->in.len - hlen - clen);
        h->in.len -= hlen + clen;
        return status;
}

/* As http_get_once, reconnecting once if the server closed the
 * connection. */
static int http_get(http_t *h, const char *path, rf_buf_t *body)
{
        int r = http_get_once(h, path, body);
        if (r < 0) {
                http_close(h);
                r = http_get_once(h, path, body);
        }
        return r;
}

/* Sums every sample of metric family \p name in a Prometheus text body. */
static double metric_sum(const char *body, const char *name)
{
        size_t nlen = strlen(name);
        double sum = 0;

        for (const char *p = body; p && *p;
             p = strchr(p, '\n'), p = p ? p + 1 : p) {
                if (*p == '#' || strncmp(p, name, nlen) != 0 ||
                    (p[nlen] != '{' && p[nlen] != ' '))
                        continue;
                const char *eol = strchr(p, '\n');
                const char *sp = eol ? eol : p + strlen(p);
                while (sp > p && sp[-1] != ' ')
                        sp--;
                sum += atof(sp);
        }
        return sum;
}

typedef struct snap {
        double applied; /* records the daemon took (events, activity, DLQ) */
        double dlq, scanned, jobs_sched, jobs_done, invalidated;
        double rc_enqueued, rc_coalesced, rc_sent, rc_acked, rc_backlog,
            rc_inflight;
} snap_t;

static int snap_take(http_t *h, snap_t *s)
{
        rf_buf_t b = { 0 };
        int r = http_get(h, "/metrics", &b);

        if (r != 200) {
                rf_buf_free(&b);
                return -1;
        }
        s->dlq = metric_sum(b.data, "recfresh_dlq_records_total");
        s->applied = metric_sum(b.data, "recfresh_events_consumed_total") +
                     metric_sum(b.data, "recfresh_activity_records_total") +
                     s->dlq;
        s->scanned =
            metric_sum(b.data, "recfresh_fanout_index_entries_scanned_total");
        s->jobs_sched =
            metric_sum(b.data, "recfresh_fanout_jobs_scheduled_total");
        s->jobs_done = metric_sum(b.data, "recfresh_fanout_jobs_done_total");
        s->invalidated = metric_sum(b.data, "recfresh_lists_invalidated_total");
        s->rc_enqueued =
            metric_sum(b.data, "recfresh_recompute_enqueued_total");
        s->rc_coalesced =
            metric_sum(b.data, "recfresh_recompute_coalesced_total");
        s->rc_sent = metric_sum(b.data, "recfresh_recompute_sent_total");
        s->rc_acked = metric_sum(b.data, "recfresh_recompute_acked_total");
        s->rc_backlog = metric_sum(b.data, "recfresh_recompute_backlog");
        s->rc_inflight = metric_sum(b.data, "recfresh_recompute_inflight");
        rf_buf_free(&b);
        return 0;
}

/* ---- Kafka --------------------------------------------------------------*/

static const char *input_topics[] = {
        "recs.item-bans.v1", "recs.stock.v1",     "recs.user-hides.v1",
        "recs.consent.v1",   "recs.campaigns.v1", "recs.activity.v1"
};

static rd_kafka_t *producer_new(const char *brokers, const char *linger)
{
        char errstr[512];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();

        if (rd_kafka_conf_set(kc, "bootstrap.servers", brokers, errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(kc, "linger.ms", linger, errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(kc, "queue.buffering.max.messages", "1000000",
                              errstr, sizeof(errstr))) {
                fprintf(stderr, "rfbench: %s\n", errstr);
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "rfbench: producer: %s\n", errstr);
                return NULL;
        }
        /* Learn the leaders now, so the first record measured does not
         * wait for metadata. */
        for (size_t i = 0; i < RF_ARRAY_SIZE(input_topics); i++) {
                const struct rd_kafka_metadata *md;
                rd_kafka_topic_t *t =
                    rd_kafka_topic_new(rk, input_topics[i], NULL);
                if (rd_kafka_metadata(rk, 0, t, &md, 5000) == 0)
                        rd_kafka_metadata_destroy(md);
                rd_kafka_topic_destroy(t);
        }
        return rk;
}

static int produce(rd_kafka_t *rk, const char *topic, const char *key,
                   const char *val, size_t vlen, int64_t ts)
{
        for (;;) {
                rd_kafka_resp_err_t e =
                    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_KEY(key, strlen(key)),
                                      RD_KAFKA_V_VALUE((void *)val, vlen),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
                if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                        return 0;
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        fprintf(stderr, "rfbench: produce: %s\n",
                                rd_kafka_err2str(e));
                        return -1;
                }
                rd_kafka_poll(rk, 10);
        }
}

static int producer_close(rd_kafka_t *rk)
{
        int left;
        rd_kafka_flush(rk, 30000);
        left = rd_kafka_outq_len(rk);
        rd_kafka_destroy(rk);
        if (left)
                fprintf(stderr, "rfbench: %d records not delivered\n", left);
        return left ? -1 : 0;
}

/* ---- background events and probes (latency, fanout) ---------------------*/

typedef struct load {
        const wl_t *w;
        const opts_t *o;
        rd_kafka_t *rk;
        FILE *ndjson;
        atomic_int stop;
        atomic_uint_fast64_t produced;
        uint64_t next; /* event number */
        double rate;
        /* probes */
        rd_kafka_t *prk;
        uint32_t probe_next;
        double *lat; /* seconds */
        size_t lat_cnt, lat_size;
        uint64_t probes, probe_skipped, probe_timeouts;
        uint64_t extra; /* other records produced meanwhile (fanout) */
        int failed;
} load_t;

static void ndjson_write(FILE *fp, const wl_event_t *ev, int64_t ts)
{
        fprintf(fp,
                "{\"topic\":\"%s\",\"key\":\"%s\",\"timestamp\":%lld,"
                "\"value\":%s}\n",
                ev->topic, ev->key, (long long)ts, ev->value.data);
}

/* Produces background events at ld->rate (0: as fast as possible) until
 * ld->stop or o->count events. */
static void *background_main(void *arg)
{
        load_t *ld = arg;
        wl_event_t ev = { 0 };
        double t0 = now_s();
        uint64_t n = 0;

        while (!atomic_load(&ld->stop) && (!ld->o->count || n < ld->o->count)) {
                if (ld->rate > 0 && (double)n >= ld->rate * (now_s() - t0)) {
                        rd_kafka_poll(ld->rk, 0);
                        sleep_s(0.0005);
                        continue;
                }
                int64_t ts = rf_now_ms();
                wl_event(ld->w, ld->next + n, ts, &ev);
                if (produce(ld->rk, ev.topic, ev.key, ev.value.data,
                            ev.value.len, ts) != 0) {
                        ld->failed = 1;
                        break;
                }
                if (ld->ndjson)
                        ndjson_write(ld->ndjson, &ev, ts);
                n++;
                atomic_store(&ld->produced, n);
                if ((n & 1023) == 0)
                        rd_kafka_poll(ld->rk, 0);
        }
        rf_buf_free(&ev.value);
        return NULL;
}

/* One probe: ban a probe item held by a known list, then read that list
 * over HTTP until the item is gone. @returns 1 if measured, 0 if skipped,
 * -1 on a timeout or error. */
static int probe_one(load_t *ld, http_t *h, rf_buf_t *body, rf_buf_t *val)
{
        const wl_t *w = ld->w;
        char path[256], needle[32], key[32], id[48];
        uint32_t item, l;

        if (ld->probe_next >= w->probe_cnt)
                return -1;
        item = w->probe[ld->probe_next++];
        l = w->item_first[item];
        snprintf(path, sizeof(path), "/v1/lists/u%08u/%s?limit=100",
                 w->list_subject[l], wl_surface(w->list_surface[l]));
        snprintf(needle, sizeof(needle), "\"i%07u\"", item);
        snprintf(key, sizeof(key), "i%07u", item);
        if (http_get(h, path, body) != 200 || !strstr(body->data, needle))
                return 0; /* not served before the ban: cannot measure */
        snprintf(id, sizeof(id), "probe-%u", item);
        rf_buf_reset(val);
        int64_t ts = rf_now_ms();
        wl_ban_json(item, id, ts, val);
        double t0 = now_s();
        if (produce(ld->prk, "recs.item-bans.v1", key, val->data, val->len,
                    ts) != 0)
                return -1;
        rd_kafka_poll(ld->prk, 0);
        ld->probes++;
        while (now_s() - t0 < 10) {
                if (http_get(h, path, body) != 200)
                        return -1;
                if (!strstr(body->data, needle)) {
                        if (ld->lat_cnt == ld->lat_size) {
                                ld->lat_size = ld->lat_size * 2 + 1024;
                                ld->lat = rf_realloc(
                                    ld->lat, ld->lat_size * sizeof(double));
                        }
                        ld->lat[ld->lat_cnt++] = now_s() - t0;
                        return 1;
                }
                rd_kafka_poll(ld->prk, 0);
                /* 1 ms resolution; reading back to back would load the
                 * daemon it measures (2 cores) with thousands of reads. */
                sleep_s(0.001);
        }
        ld->probe_timeouts++;
        return -1;
}

static void *probe_main(void *arg)
{
        load_t *ld = arg;
        http_t h;
        rf_buf_t body = { 0 }, val = { 0 };
        double t0 = now_s(), every = 1.0 / ld->o->probes_per_s;
        uint64_t k = 0;

        http_init(&h, ld->o->http);
        while (!atomic_load(&ld->stop)) {
                if ((double)k * every > now_s() - t0) {
                        sleep_s(0.0005);
                        continue;
                }
                k++;
                int r = probe_one(ld, &h, &body, &val);
                if (r == 0)
                        ld->probe_skipped++;
                else if (r < 0 && ld->probe_next >= ld->w->probe_cnt)
                        break;
        }
        http_close(&h);
        rf_buf_free(&body);
        rf_buf_free(&val);
        return NULL;
}

static int load_start(load_t *ld, const wl_t *w, const opts_t *o, pthread_t *bg,
                      pthread_t *pr)
{
        memset(ld, 0, sizeof(*ld));
        ld->w = w;
        ld->o = o;
        ld->rate = o->rate;
        ld->next = o->start;
        ld->probe_next = o->probe_from;
        if (!(ld->rk = producer_new(o->brokers, "5")) ||
            !(ld->prk = producer_new(o->brokers, "0")))
                return -1;
        if (o->ndjson && !(ld->ndjson = fopen(o->ndjson, "a"))) {
                perror(o->ndjson);
                return -1;
        }
        pthread_create(bg, NULL, background_main, ld);
        pthread_create(pr, NULL, probe_main, ld);
        return 0;
}

/* Stops the threads, flushes, waits until the daemon applied everything
 * produced since \p base, prints the figures. @returns 0 or 1. */
static int load_finish(load_t *ld, pthread_t bg, pthread_t pr, http_t *h,
                       const snap_t *base, double elapsed)
{
        snap_t s = { 0 };
        int rc = 0;

        atomic_store(&ld->stop, 1);
        pthread_join(bg, NULL);
        pthread_join(pr, NULL);
        if (producer_close(ld->rk) || producer_close(ld->prk) || ld->failed)
                rc = 1;
        if (ld->ndjson)
                fclose(ld->ndjson);
        uint64_t expect = atomic_load(&ld->produced) + ld->probes + ld->extra;
        /* A rate above what the daemon sustains leaves a backlog: wait
         * for it (bounded), so the next measurement starts clean. */
        double t0 = now_s();
        while (now_s() - t0 < 300) {
                if (snap_take(h, &s) == 0 &&
                    s.applied - base->applied >= (double)expect)
                        break;
                sleep_s(0.02);
        }
        qsort(ld->lat, ld->lat_cnt, sizeof(double), cmp_double);
        printf("produced=%llu\nrate=%.0f\nprobes=%llu\nprobes_measured=%zu\n"
               "probes_skipped=%llu\nprobe_timeouts=%llu\np50_ms=%.3f\n"
               "p99_ms=%.3f\nmax_ms=%.3f\napplied=%.0f\nunapplied=%.0f\n"
               "next_event=%llu\nnext_probe=%u\n",
               (unsigned long long)atomic_load(&ld->produced),
               (double)atomic_load(&ld->produced) / elapsed,
               (unsigned long long)ld->probes, ld->lat_cnt,
               (unsigned long long)ld->probe_skipped,
               (unsigned long long)ld->probe_timeouts,
               quantile(ld->lat, ld->lat_cnt, 0.5) * 1e3,
               quantile(ld->lat, ld->lat_cnt, 0.99) * 1e3,
               quantile(ld->lat, ld->lat_cnt, 1.0) * 1e3,
               s.applied - base->applied,
               (double)expect - (s.applied - base->applied),
               (unsigned long long)(ld->next + atomic_load(&ld->produced)),
               ld->probe_next);
        if (s.applied - base->applied < (double)expect) {
                fprintf(stderr,
                        "rfbench: the daemon applied %.0f of %llu "
                        "records\n",
                        s.applied - base->applied, (unsigned long long)expect);
                rc = 1;
        }
        if (ld->lat_cnt == 0 || ld->probe_timeouts)
                rc = 1;
        free(ld->lat);
        return rc;
}

static int cmd_latency(const wl_t *w, const opts_t *o)
{
        load_t ld;
        pthread_t bg, pr;
        http_t h;
        snap_t base;

        if (!o->brokers || !o->http)
                return 2;
        http_init(&h, o->http);
        if (snap_take(&h, &base) != 0) {
                fprintf(stderr, "rfbench: no /metrics at %s\n", o->http);
                return 1;
        }
        if (load_start(&ld, w, o, &bg, &pr) != 0)
                return 1;
        double t0 = now_s();
        sleep_s(o->seconds);
        int rc = load_finish(&ld, bg, pr, &h, &base, now_s() - t0);
        http_close(&h);
        return rc;
}

/* ---- fanout and coalesce ------------------------------------------------*/

static int cmd_fanout(const wl_t *w, const opts_t *o)
{
        load_t ld;
        pthread_t bg, pr;
        http_t h;
        snap_t base, s;
        rf_buf_t body = { 0 }, val = { 0 };
        char path[256], needle[32];
        uint32_t top = 0, l = w->item_first[0];
        double visible = -1, done = -1;
        int rc = 0;

        if (!o->brokers || !o->http)
                return 2;
        http_init(&h, o->http);
        snprintf(path, sizeof(path), "/v1/lists/u%08u/%s?limit=100",
                 w->list_subject[l], wl_surface(w->list_surface[l]));
        snprintf(needle, sizeof(needle), "\"i%07u\"", top);
        if (http_get(&h, path, &body) != 200 || !strstr(body.data, needle)) {
                fprintf(stderr, "rfbench: %s does not serve item %u\n", path,
                        top);
                return 1;
        }
        /* Earlier rows leave fan-out jobs behind (row 3 overloads on
         * purpose); the jobs run in order, so let them finish first: this
         * row times the fan-out of its own ban. */
        double d0 = now_s(), drained = -1;
        while (now_s() - d0 < 600 && drained < 0) {
                if (snap_take(&h, &s) == 0 && s.jobs_done >= s.jobs_sched)
                        drained = now_s() - d0;
                else
                        sleep_s(0.05);
        }
        printf("backlog_drain_s=%.3f\n", drained);
        if (snap_take(&h, &base) != 0 || load_start(&ld, w, o, &bg, &pr))
                return 1;
        sleep_s(0.5); /* probes before the fan-out, as a reference */
        rd_kafka_t *rk = producer_new(o->brokers, "0");
        int64_t ts = rf_now_ms();
        wl_ban_json(top, "bench-fanout-top", ts, &val);
        double t0 = now_s();
        size_t lat_before = ld.lat_cnt;
        produce(rk, "recs.item-bans.v1", "i0000000", val.data, val.len, ts);
        ld.extra = 1;
        rd_kafka_flush(rk, 5000);
        while (now_s() - t0 < 30 && visible < 0) {
                if (http_get(&h, path, &body) == 200 &&
                    !strstr(body.data, needle))
                        visible = now_s() - t0;
        }
        while (now_s() - t0 < 600 && done < 0) {
                if (snap_take(&h, &s) == 0 &&
                    s.scanned - base.scanned >= w->item_lists[top] &&
                    s.jobs_done >= s.jobs_sched)
                        done = now_s() - t0;
                else
                        sleep_s(0.01);
        }
        size_t lat_during = ld.lat_cnt;
        rd_kafka_destroy(rk);
        /* Latencies of the probes that ran during the fan-out. */
        double *during =
            rf_malloc((lat_during - lat_before + 1) * sizeof(double));
        memcpy(during, ld.lat + lat_before,
               (lat_during - lat_before) * sizeof(double));
        size_t nd = lat_during - lat_before;
        qsort(during, nd, sizeof(double), cmp_double);
        printf(
            "fanout_lists=%u\nvisible_ms=%.3f\nfanout_s=%.3f\n"
            "fanout_entries=%.0f\nfanout_rate=%.0f\n"
            "invalidated=%.0f\nduring_probes=%zu\nduring_p50_ms=%.3f\n"
            "during_p99_ms=%.3f\n",
            w->item_lists[top], visible * 1e3, done, s.scanned - base.scanned,
            done > 0 ? w->item_lists[top] / done : 0,
            s.invalidated - base.invalidated, nd,
            quantile(during, nd, 0.5) * 1e3, quantile(during, nd, 0.99) * 1e3);
        free(during);
        if (load_finish(&ld, bg, pr, &h, &base, now_s() - t0) != 0 ||
            visible < 0 || done < 0)
                rc = 1;
        http_close(&h);
        rf_buf_free(&body);
        rf_buf_free(&val);
        return rc;
}

static double proc_cpu_s(long pid)
{
        char path[64], buf[4096];
        unsigned long ut = 0, st = 0;
        FILE *fp;

        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        if (!(fp = fopen(path, "r")))
                return -1;
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')');
        if (!p || sscanf(p + 2,
                         "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                         "%lu %lu",
                         &ut, &st) != 2)
                return -1;
        return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Waits until the recompute queue is empty and nothing is in flight. */
static int queue_settle(http_t *h, snap_t *s, double secs)
{
        double t0 = now_s();
        while (now_s() - t0 < secs) {
                if (snap_take(h, s) == 0 && s->rc_backlog == 0 &&
                    s->rc_inflight == 0 && s->jobs_done >= s->jobs_sched)
                        return 0;
                sleep_s(0.02);
        }
        return -1;
}

static int cmd_coalesce(const wl_t *w, const opts_t *o)
{
        http_t h;
        snap_t base, s;
        rf_buf_t val = { 0 };
        uint64_t lists = 0;
        char key[32], id[48];

        if (!o->brokers || !o->http || !o->pid)
                return 2;
        http_init(&h, o->http);
        if (queue_settle(&h, &base, 120) != 0) {
                fprintf(stderr, "rfbench: the recompute queue did not drain "
                                "before the test\n");
                return 1;
        }
        double cpu0 = proc_cpu_s(o->pid), t0 = now_s();
        rd_kafka_t *rk = producer_new(o->brokers, "0");
        int64_t ts = rf_now_ms();
        /* Items 1..K: item 0 was banned by the fan-out row. */
        for (uint32_t i = 1; i <= o->top_k; i++) {
                snprintf(key, sizeof(key), "i%07u", i);
                snprintf(id, sizeof(id), "bench-coalesce-%u", i);
                rf_buf_reset(&val);
                wl_ban_json(i, id, ts, &val);
                produce(rk, "recs.item-bans.v1", key, val.data, val.len, ts);
                lists += w->item_lists[i];
        }
        producer_close(rk);
        /* Wait for the fan-out, then for the queue to send everything. */
        while (now_s() - t0 < 600) {
                if (snap_take(&h, &s) == 0 &&
                    s.scanned - base.scanned >= (double)lists)
                        break;
                sleep_s(0.02);
        }
        double fan_s = now_s() - t0;
        /* Then until every entry created was sent and the queue's gauges
         * (refreshed about twice a second) read empty twice in a row. */
        int r = -1, calm = 0;
        while (now_s() - t0 < 600 && r != 0) {
                sleep_s(0.6);
                if (snap_take(&h, &s) != 0)
                        continue;
                double enq = s.rc_enqueued - base.rc_enqueued;
                if (enq > 0 && s.rc_sent - base.rc_sent >= enq &&
                    s.rc_backlog == 0 && s.rc_inflight == 0)
                        r = ++calm >= 2 ? 0 : -1;
                else
                        calm = 0;
        }
        double cpu = proc_cpu_s(o->pid) - cpu0, secs = now_s() - t0;
        double req = s.rc_sent - base.rc_sent;
        printf("items=%u\nsubjects=%u\ninvalidations=%.0f\nenqueued=%.0f\n"
               "coalesced=%.0f\nrequests=%.0f\nfanout_s=%.3f\ntotal_s=%.3f\n"
               "cpu_s=%.3f\ncpu_us_per_request=%.1f\n",
               o->top_k, w->subjects, s.invalidated - base.invalidated,
               s.rc_enqueued - base.rc_enqueued,
               s.rc_coalesced - base.rc_coalesced, req, fan_s, secs, cpu,
               req > 0 ? cpu * 1e6 / req : 0);
        rf_buf_free(&val);
        http_close(&h);
        return r == 0 && req > 0 ? 0 : 1;
}

/* ---- produce, applied, consume ------------------------------------------*/

static int cmd_produce(const wl_t *w, const opts_t *o)
{
        wl_event_t ev = { 0 };
        rd_kafka_t *rk;
        FILE *nd = NULL;
        double t0 = now_s();

        if (!o->brokers || !o->count)
                return 2;
        if (!(rk = producer_new(o->brokers, "20")))
                return 1;
        if (o->ndjson && !(nd = fopen(o->ndjson, "w"))) {
                perror(o->ndjson);
                return 1;
        }
        for (uint64_t n = 0; n < o->count; n++) {
                int64_t ts = rf_now_ms();
                wl_event(w, o->start + n, ts, &ev);
                if (produce(rk, ev.topic, ev.key, ev.value.data, ev.value.len,
                            ts) != 0)
                        return 1;
                if (nd)
                        ndjson_write(nd, &ev, ts);
                if ((n & 1023) == 0)
                        rd_kafka_poll(rk, 0);
        }
        int r = producer_close(rk);
        if (nd)
                fclose(nd);
        rf_buf_free(&ev.value);
        printf("produced=%llu\nseconds=%.3f\nnext_event=%llu\n",
               (unsigned long long)o->count, now_s() - t0,
               (unsigned long long)(o->start + o->count));
        return r ? 1 : 0;
}

/* Waits until the daemon applied o->count records (its counters start at 0
 * with the process); the rate runs from the first record seen. */
static int cmd_applied(const opts_t *o)
{
        http_t h;
        snap_t s, s2;
        double t_first = -1, first = 0, t0 = now_s(), last = -1;

        if (!o->http || !o->count)
                return 2;
        http_init(&h, o->http);
        while (now_s() - t0 < o->seconds) {
                if (snap_take(&h, &s) != 0) {
                        sleep_s(0.05);
                        continue;
                }
                if (s.applied > 0 && t_first < 0) {
                        t_first = now_s();
                        first = s.applied;
                }
                if (s.applied >= (double)o->count) {
                        last = now_s();
                        break;
                }
                /* Each /metrics costs the daemon a page of text: at 2 ms
                 * the scrapes took 11% of its CPU (profiled). 20 ms is a
                 * 0.1% error on a 15 s run. */
                sleep_s(0.02);
        }
        /* Sustained: until the fan-out of every applied event is done. */
        double drained = -1;
        while (last >= 0 && now_s() - t0 < o->seconds) {
                if (snap_take(&h, &s2) == 0 && s2.jobs_done >= s2.jobs_sched) {
                        drained = now_s();
                        break;
                }
                sleep_s(0.05);
        }
        http_close(&h);
        if (last < 0 || last <= t_first) {
                fprintf(stderr,
                        "rfbench: the daemon applied %.0f of %llu "
                        "records in %.0f s\n",
                        s.applied, (unsigned long long)o->count, o->seconds);
                return 1;
        }
        /* Applied means taken: tombstones in force, offsets committed.
         * The per-list work of their fan-out jobs may still be queued. */
        printf("applied=%.0f\ndlq=%.0f\nseconds=%.3f\nrate=%.0f\n"
               "fanout_jobs=%.0f\nfanout_jobs_left=%.0f\n",
               s.applied, s.dlq, last - t_first,
               (s.applied - first) / (last - t_first), s.jobs_sched,
               s.jobs_sched - s.jobs_done);
        if (drained > t_first)
                printf("drained_s=%.3f\nsustained_rate=%.0f\n",
                       drained - t_first,
                       (s.applied - first) / (drained - t_first));
        return 0;
}

/* (a): a plain consumer, assigned every partition of the input event
 * topics from the beginning, reads o->count records. */
/* A plain consumer of the partitions of \p topic (NULL: every input topic)
 * from \p offset (RD_KAFKA_OFFSET_BEGINNING or _END), with
 * fetch.wait.max.ms \p fetch_wait (NULL: librdkafka's). */
static rd_kafka_t *raw_consumer(const char *brokers, const char *topic,
                                int64_t offset, const char *fetch_wait)
{
        char errstr[512];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_t *rk;
        const struct rd_kafka_metadata *md;
        rd_kafka_topic_partition_list_t *tp;

        if (rd_kafka_conf_set(kc, "bootstrap.servers", brokers, errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(kc, "group.id", "rfbench-raw", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                              sizeof(errstr)) ||
            (fetch_wait &&
             rd_kafka_conf_set(kc, "fetch.wait.max.ms", fetch_wait, errstr,
                               sizeof(errstr)))) {
                fprintf(stderr, "rfbench: %s\n", errstr);
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr,
                                sizeof(errstr)))) {
                fprintf(stderr, "rfbench: %s\n", errstr);
                return NULL;
        }
        rd_kafka_poll_set_consumer(rk);
        if (rd_kafka_metadata(rk, 1, NULL, &md, 10000)) {
                fprintf(stderr, "rfbench: no metadata\n");
                rd_kafka_destroy(rk);
                return NULL;
        }
        tp = rd_kafka_topic_partition_list_new(64);
        for (int i = 0; i < md->topic_cnt; i++)
                for (size_t k = 0; k < RF_ARRAY_SIZE(input_topics); k++)
                        if (!strcmp(md->topics[i].topic, input_topics[k]) &&
                            (!topic || !strcmp(topic, input_topics[k])))
                                for (int p = 0; p < md->topics[i].partition_cnt;
                                     p++)
                                        rd_kafka_topic_partition_list_add(
                                            tp, input_topics[k], p)
                                            ->offset = offset;
        rd_kafka_metadata_destroy(md);
        rd_kafka_assign(rk, tp);
        rd_kafka_topic_partition_list_destroy(tp);
        return rk;
}

static int cmd_consume(const opts_t *o)
{
        rd_kafka_t *rk;
        uint64_t got = 0;
        double t_first = 0, t_last = 0;

        if (!o->brokers || !o->count)
                return 2;
        if (!(rk = raw_consumer(o->brokers, NULL, RD_KAFKA_OFFSET_BEGINNING,
                                NULL)))
                return 1;
        double t0 = now_s();
        while (got < o->count && now_s() - t0 < o->seconds) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m)
                        continue;
                if (!m->err) {
                        if (!got)
                                t_first = now_s();
                        got++;
                        t_last = now_s();
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        printf("consumed=%llu\nseconds=%.3f\nrate=%.0f\n",
               (unsigned long long)got, t_last - t_first,
               got > 1 ? (double)(got - 1) / (t_last - t_first) : 0);
        return got >= o->count ? 0 : 1;
}

/* The raw baseline of row 3: the background load of `latency`, and probes
 * (bans of an item no list holds, from a producer without linger, as the
 * probes of `latency`) read back by a plain consumer with the daemon's
 * fetch wait (env FETCH_WAIT_MS, default 5). A probe's age when consumed
 * is what the broker path alone takes of event-to-visible on a machine as
 * busy as in row 3: the daemon runs meanwhile and applies it all. The
 * consumer reads only the bans topic: reading every topic beside the
 * daemon doubled the broker's fetch work, and its p99 went from 66 ms to
 * over 500 ms. */
static int cmd_rawlat(const wl_t *w, const opts_t *o)
{
        const char *fw = getenv("FETCH_WAIT_MS");
        rd_kafka_t *rk;
        load_t ld = { .w = w, .o = o, .rate = o->rate, .next = o->start };
        pthread_t bg;
        rf_buf_t val = { 0 };
        char id[64], key[16];
        double *lat = NULL;
        size_t n = 0, sent = 0;
        int rc = 0;

        if (!o->brokers || o->probes_per_s <= 0)
                return 2;
        if (!(rk = raw_consumer(o->brokers, "recs.item-bans.v1",
                                RD_KAFKA_OFFSET_END, fw && *fw ? fw : "5")) ||
            !(ld.rk = producer_new(o->brokers, "5")) ||
            !(ld.prk = producer_new(o->brokers, "0")))
                return 1;
        /* until the assignment has fetched once (offsets resolved) */
        for (double t = now_s(); now_s() - t < 2;) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
                if (m)
                        rd_kafka_message_destroy(m);
        }
        lat = rf_malloc((size_t)(o->seconds * o->probes_per_s + 16) *
                        sizeof(double));
        pthread_create(&bg, NULL, background_main, &ld);
        uint32_t item = w->items + 1; /* held by no list */
        snprintf(key, sizeof(key), "i%07u", item);
        double t0 = now_s(), every = 1.0 / o->probes_per_s;
        /* then up to 5 s for the last probes to come back */
        while (now_s() - t0 < o->seconds ||
               (n < sent && now_s() - t0 < o->seconds + 5)) {
                double now = now_s();
                if (now - t0 >= o->seconds)
                        atomic_store(&ld.stop, 1);
                if (now - t0 < o->seconds && (double)sent * every <= now - t0) {
                        int64_t ts = rf_now_ms();
                        snprintf(id, sizeof(id), "rawprobe-%lld",
                                 (long long)rf_mono_ns());
                        rf_buf_reset(&val);
                        wl_ban_json(item, id, ts, &val);
                        if (produce(ld.prk, "recs.item-bans.v1", key, val.data,
                                    val.len, ts) != 0) {
                                rc = 1;
                                break;
                        }
                        rd_kafka_poll(ld.prk, 0);
                        sent++;
                }
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1);
                if (!m)
                        continue;
                const char *p =
                    m->err || !m->payload
                        ? NULL
                        : memmem(m->payload, m->len, "rawprobe-", 9);
                if (p && n < sent) {
                        int64_t at = strtoll(p + 9, NULL, 10);
                        lat[n++] = (double)(rf_mono_ns() - at) / 1e9;
                }
                rd_kafka_message_destroy(m);
        }
        atomic_store(&ld.stop, 1);
        pthread_join(bg, NULL);
        if (producer_close(ld.rk) || producer_close(ld.prk) || ld.failed)
                rc = 1;
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        qsort(lat, n, sizeof(double), cmp_double);
        printf("produced=%llu\nprobes=%zu\nprobes_consumed=%zu\n"
               "p50_ms=%.3f\np99_ms=%.3f\nmax_ms=%.3f\nnext_event=%llu\n",
               (unsigned long long)atomic_load(&ld.produced), sent, n,
               quantile(lat, n, 0.5) * 1e3, quantile(lat, n, 0.99) * 1e3,
               n ? lat[n - 1] * 1e3 : 0,
               (unsigned long long)(o->start + atomic_load(&ld.produced)));
        free(lat);
        rf_buf_free(&val);
        return rc || n < sent ? 1 : 0;
}

/* ---- (b), (c): raw RocksDB ----------------------------------------------*/

/* The options store.c gives a column family, reproduced here. */
static rocksdb_options_t *rocks_opts(rocksdb_cache_t **cache,
                                     rocksdb_block_based_table_options_t **bb)
{
        rocksdb_options_t *op = rocksdb_options_create();

        *cache = rocksdb_cache_create_lru(256 << 20);
        *bb = rocksdb_block_based_options_create();
        rocksdb_block_based_options_set_block_cache(*bb, *cache);
        rocksdb_block_based_options_set_filter_policy(
            *bb, rocksdb_filterpolicy_create_bloom_full(10));
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(*bb, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
            *bb, 1);
        rocksdb_options_set_create_if_missing(op, 1);
        rocksdb_options_increase_parallelism(op, 2);
        rocksdb_options_set_max_background_jobs(op, 2);
        rocksdb_options_set_block_based_table_factory(op, *bb);
        rocksdb_options_set_write_buffer_size(op, 64 << 20);
        rocksdb_options_set_compression(op, rocksdb_lz4_compression);
        return op;
}

/* An index-sized key ('i' item \0 subject \0 surface \0) for number n. */
static size_t index_key(char *k, size_t size, uint64_t n)
{
        int len = snprintf(
            k, size, "ii%07llu%cu%08llu%chome%c",
            (unsigned long long)(n % 9999999), 0,
            (unsigned long long)(n / 9999999 + n * 7919 % 99999999), 0, 0);
        return (size_t)len;
}

/* A list-sized key (subject \0 surface \0) for number n. */
static size_t list_key(char *k, size_t size, uint64_t n)
{
        return (size_t)snprintf(k, size, "u%08llu%chome%c",
                                (unsigned long long)n, 0, 0);
}

/* Compressible like an encoded list: ids and small numbers. */
static void list_value(char *v, size_t n, uint64_t seed)
{
        wl_rng_t r = { seed };
        for (size_t i = 0; i < n; i++)
                v[i] = (i % 12 < 8) ? (char)('0' + wl_rng_below(&r, 10))
                                    : "i0000c0k"[i % 8];
}

typedef struct reader {
        rocksdb_t *db;
        rocksdb_readoptions_t *ro;
        uint64_t keys, done;
        double secs;
        unsigned seed;
        uint64_t found;
} reader_t;

static void *rocks_reader(void *arg)
{
        reader_t *rd = arg;
        wl_rng_t r = { rd->seed };
        char k[64];
        double t0 = now_s();

        while (now_s() - t0 < rd->secs) {
                for (int i = 0; i < 256; i++) {
                        size_t vl;
                        char *err = NULL;
                        size_t kl = list_key(
                            k, sizeof(k), wl_rng_below(&r, (uint32_t)rd->keys));
                        char *v = rocksdb_get(rd->db, rd->ro, k, kl, &vl, &err);
                        if (v) {
                                rd->found++;
                                rocksdb_free(v);
                        }
                        if (err)
                                rocksdb_free(err);
                        rd->done++;
                }
        }
        return NULL;
}

static int cmd_rocks(const opts_t *o)
{
        rocksdb_cache_t *cache;
        rocksdb_block_based_table_options_t *bb;
        rocksdb_options_t *op;
        rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        char path[4096], k[64], *err = NULL;
        char *val = rf_malloc(o->value_bytes + 1);
        wl_rng_t r = { o->seed };
        rocksdb_t *db;
        int rc = 0;

        if (!o->dir)
                return 2;
        op = rocks_opts(&cache, &bb);
        mkdir(o->dir, 0755);
        snprintf(path, sizeof(path), "%s/puts", o->dir);
        if (!(db = rocksdb_open(op, path, &err))) {
                fprintf(stderr, "rfbench: %s\n", err);
                return 1;
        }
        /* (b) puts: random index-sized keys, 8-byte values, 1000 a batch
         * (consumer.batch_size is 2000 records of ~1-3 writes each). */
        double t0 = now_s();
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        for (uint64_t i = 0; i < o->keys; i++) {
                size_t kl = index_key(k, sizeof(k), wl_rng_next(&r));
                rocksdb_writebatch_put(wb, k, kl, "eu-west\0", 8);
                if (rocksdb_writebatch_count(wb) == 1000 || i + 1 == o->keys) {
                        rocksdb_write(db, wo, wb, &err);
                        if (err) {
                                fprintf(stderr, "rfbench: %s\n", err);
                                rocksdb_free(err);
                                return 1;
                        }
                        rocksdb_writebatch_clear(wb);
                }
        }
        double put_s = now_s() - t0;
        /* (b) reads: list-sized values, random point reads on T threads. */
        uint64_t nlists = o->keys / 10 ? o->keys / 10 : 1;
        for (uint64_t i = 0; i < nlists; i++) {
                size_t kl = list_key(k, sizeof(k), i);
                list_value(val, o->value_bytes, i);
                rocksdb_writebatch_put(wb, k, kl, val, o->value_bytes);
                if (rocksdb_writebatch_count(wb) == 100 || i + 1 == nlists) {
                        rocksdb_write(db, wo, wb, &err);
                        rocksdb_writebatch_clear(wb);
                }
        }
        rocksdb_writebatch_destroy(wb);
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flush(db, fo, &err);
        rocksdb_flushoptions_destroy(fo);
        /* One pass over every key first, as row 4a's cold pass does. */
        for (uint64_t i = 0; i < nlists; i++) {
                size_t vl, kl = list_key(k, sizeof(k), i);
                char *v = rocksdb_get(db, ro, k, kl, &vl, &err);
                rocksdb_free(v);
                if (err) {
                        rocksdb_free(err);
                        err = NULL;
                }
        }
        reader_t *rd = rf_calloc(o->threads, sizeof(*rd));
        pthread_t *th = rf_calloc(o->threads, sizeof(*th));
        uint64_t reads = 0, found = 0;
        for (uint32_t i = 0; i < o->threads; i++) {
                rd[i] = (reader_t){ db, ro, nlists, 0, o->seconds, i + 1, 0 };
                pthread_create(&th[i], NULL, rocks_reader, &rd[i]);
        }
        for (uint32_t i = 0; i < o->threads; i++) {
                pthread_join(th[i], NULL);
                reads += rd[i].done;
                found += rd[i].found;
        }
        rocksdb_close(db);
        printf("put_keys=%llu\nput_rate=%.0f\nread_threads=%u\n"
               "read_rate=%.0f\nread_found=%llu\n",
               (unsigned long long)o->keys, (double)o->keys / put_s, o->threads,
               (double)reads / o->seconds, (unsigned long long)found);
        if (!found)
                rc = 1;

        /* (c): the keys a bulk load writes (lists of value_bytes, index
         * entries of 8 bytes), sorted into SST files, ingested. */
        uint64_t total = o->sst_lists + o->sst_index;
        if (total) {
                char sst[4200], *files[64];
                size_t nfiles = 0;
                rocksdb_envoptions_t *eo = rocksdb_envoptions_create();
                rocksdb_sstfilewriter_t *w = NULL;
                uint64_t in_file = 0;

                snprintf(path, sizeof(path), "%s/ingest", o->dir);
                if (!(db = rocksdb_open(op, path, &err))) {
                        fprintf(stderr, "rfbench: %s\n", err);
                        return 1;
                }
                t0 = now_s();
                /* Lists: keys 'L'..., index: 'i'...: both sorted by n. */
                for (uint64_t i = 0; i < total; i++) {
                        int is_list = i < o->sst_lists;
                        uint64_t n = is_list ? i : i - o->sst_lists;
                        size_t kl = (size_t)snprintf(
                            k, sizeof(k), "%c%012llu%cu%08llu%chome%c",
                            is_list ? 'L' : 'i', (unsigned long long)n, 0,
                            (unsigned long long)(n % 100000000), 0, 0);
                        if (!w || in_file >= (256u << 20)) {
                                if (w) {
                                        rocksdb_sstfilewriter_finish(w, &err);
                                        rocksdb_sstfilewriter_destroy(w);
                                }
                                if (nfiles == RF_ARRAY_SIZE(files))
                                        break;
                                snprintf(sst, sizeof(sst), "%s/f%02zu.sst",
                                         o->dir, nfiles);
                                files[nfiles++] = rf_strdup(sst);
                                w = rocksdb_sstfilewriter_create(eo, op);
                                rocksdb_sstfilewriter_open(w, sst, &err);
                                in_file = 0;
                        }
                        if (is_list)
                                list_value(val, o->value_bytes, n);
                        rocksdb_sstfilewriter_put(
                            w, k, kl, is_list ? val : "eu-west\0",
                            is_list ? o->value_bytes : 8, &err);
                        in_file += kl + (is_list ? o->value_bytes : 8);
                        if (err) {
                                fprintf(stderr, "rfbench: sst: %s\n", err);
                                rocksdb_free(err);
                                return 1;
                        }
                }
                rocksdb_sstfilewriter_finish(w, &err);
                rocksdb_sstfilewriter_destroy(w);
                rocksdb_ingestexternalfileoptions_t *io =
                    rocksdb_ingestexternalfileoptions_create();
                rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
                rocksdb_ingest_external_file(db, (const char *const *)files,
                                             nfiles, io, &err);
                rocksdb_ingestexternalfileoptions_destroy(io);
                double sst_s = now_s() - t0;
                if (err) {
                        fprintf(stderr, "rfbench: ingest: %s\n", err);
                        rocksdb_free(err);
                        rc = 1;
                }
                printf("sst_keys=%llu\nsst_files=%zu\nsst_seconds=%.3f\n"
                       "sst_rate=%.0f\n",
                       (unsigned long long)total, nfiles, sst_s,
                       (double)total / sst_s);
                for (size_t i = 0; i < nfiles; i++)
                        free(files[i]);
                rocksdb_envoptions_destroy(eo);
                rocksdb_close(db);
        }
        free(rd);
        free(th);
        free(val);
        rocksdb_writeoptions_destroy(wo);
        rocksdb_readoptions_destroy(ro);
        rocksdb_options_destroy(op);
        rocksdb_block_based_options_destroy(bb);
        rocksdb_cache_destroy(cache);
        return rc;
}

/* ---- read: rf_read_list in-process --------------------------------------*/

typedef struct read_thr {
        rf_store_t *st;
        const rf_config_t *conf;
        const wl_t *w;
        double secs;
        uint64_t seed, reads, served, found, errors;
        uint32_t first, step; /* the cold pass: subjects first, +step.. */
} read_thr_t;

/* One read of \p subj's home list into \p t's counters. */
static void read_one(read_thr_t *t, const char *subj)
{
        rf_read_result_t res;
        rf_read_req_t req = { subj, "home", NULL, 20 };

        if (rf_read_list(t->st, t->conf, &req, &res) != 0)
                t->errors++;
        else if (res.status == RF_READ_FOUND)
                t->found++;
        t->served += res.served_cnt;
        rf_read_result_clear(&res);
        t->reads++;
}

/* The cold pass: every subject once, split over the threads. */
static void *read_cold_main(void *arg)
{
        read_thr_t *t = arg;
        char subj[16];

        for (uint32_t s = t->first; s < t->w->subjects; s += t->step) {
                snprintf(subj, sizeof(subj), "u%08u", s);
                read_one(t, subj);
        }
        return NULL;
}

static void *read_main(void *arg)
{
        read_thr_t *t = arg;
        wl_rng_t r = { t->seed };
        char subj[16];
        double t0 = now_s();

        while (now_s() - t0 < t->secs) {
                for (int i = 0; i < 64; i++) {
                        snprintf(subj, sizeof(subj), "u%08u",
                                 wl_rng_below(&r, t->w->subjects));
                        read_one(t, subj);
                }
        }
        return NULL;
}

static int cmd_read(const wl_t *w, const opts_t *o)
{
        rf_config_t conf;
        char errstr[512];
        rf_store_t *st;
        uint64_t reads = 0, served = 0, found = 0, errors = 0;

        if (!o->dir)
                return 2;
        rf_config_init(&conf);
        rf_store_opts_t so = { 0, (size_t)conf.block_cache_mb,
                               (size_t)conf.write_buffer_mb };
        if (!(st = rf_store_open(o->dir, RF_STORE_READONLY, &so, errstr,
                                 sizeof(errstr)))) {
                fprintf(stderr, "rfbench: %s\n", errstr);
                rf_config_destroy(&conf);
                return 1;
        }
        /* As the daemon's reads: the set of entities in force first. */
        rf_tombset_t *ts = rf_tombset_new();
        if (rf_tombset_load(ts, st) != 0) {
                fprintf(stderr, "rfbench: cannot load the tombstone set\n");
                return 1;
        }
        rf_store_set_tombset(st, ts);
        /* And the cache of decoded run versions, of the default size (or
         * --list-cache-mb's; 0: none). */
        if (o->list_cache_mb >= 0)
                conf.list_cache_mb = o->list_cache_mb;
        rf_list_cache_t *lc =
            rf_list_cache_new((size_t)conf.list_cache_mb << 20);
        rf_store_set_list_cache(st, lc);
        /* And the cache of users' hides, of the default size. */
        rf_hide_cache_t *hc =
            rf_hide_cache_new((size_t)conf.hide_cache_mb << 20);
        rf_store_set_hide_cache(st, hc);
        read_thr_t *t = rf_calloc(o->threads, sizeof(*t));
        pthread_t *th = rf_calloc(o->threads, sizeof(*th));
        /* A cold pass over every subject's list first (the block cache
         * starts empty), reported apart; then the timed random reads. */
        uint64_t cold = 0;
        double c0 = now_s();
        for (uint32_t i = 0; i < o->threads; i++) {
                t[i] = (read_thr_t){ .st = st,
                                     .conf = &conf,
                                     .w = w,
                                     .first = i,
                                     .step = o->threads };
                pthread_create(&th[i], NULL, read_cold_main, &t[i]);
        }
        for (uint32_t i = 0; i < o->threads; i++) {
                pthread_join(th[i], NULL);
                cold += t[i].reads;
                errors += t[i].errors;
        }
        double cold_s = now_s() - c0;
        for (uint32_t i = 0; i < o->threads; i++) {
                t[i] = (read_thr_t){ st, &conf, w, o->seconds, o->seed + i };
                pthread_create(&th[i], NULL, read_main, &t[i]);
        }
        for (uint32_t i = 0; i < o->threads; i++) {
                pthread_join(th[i], NULL);
                reads += t[i].reads;
                served += t[i].served;
                found += t[i].found;
                errors += t[i].errors;
        }
        printf("cold_reads=%llu\ncold_rate=%.0f\n", (unsigned long long)cold,
               cold_s > 0 ? (double)cold / cold_s : 0);
        printf("threads=%u\nreads=%llu\nrate=%.0f\nfound=%llu\n"
               "served_per_read=%.2f\nerrors=%llu\n",
               o->threads, (unsigned long long)reads,
               (double)reads / o->seconds, (unsigned long long)found,
               reads ? (double)served / (double)reads : 0,
               (unsigned long long)errors);
        rf_list_cache_stats_t lcs;
        rf_list_cache_stats(lc, &lcs);
        printf("list_cache_mb=%lld\nlist_cache_entries=%zu\n"
               "list_cache_bytes=%zu\nlist_cache_hit_pct=%.1f\n",
               (long long)conf.list_cache_mb, lcs.entries, lcs.bytes,
               lcs.hits + lcs.misses
                   ? 100.0 * (double)lcs.hits / (double)(lcs.hits + lcs.misses)
                   : 0);
        rf_hide_cache_stats_t hcs;
        rf_hide_cache_stats(hc, &hcs);
        printf("hide_cache_entries=%zu\nhide_cache_bytes=%zu\n"
               "hide_cache_hit_pct=%.1f\n",
               hcs.entries, hcs.bytes,
               hcs.hits + hcs.misses
                   ? 100.0 * (double)hcs.hits / (double)(hcs.hits + hcs.misses)
                   : 0);
        free(t);
        free(th);
        rf_store_close(st);
        rf_tombset_destroy(ts);
        rf_list_cache_destroy(lc);
        rf_hide_cache_destroy(hc);
        rf_config_destroy(&conf);
        return found && !errors ? 0 : 1;
}

/* ---- gen-lists, info, exec ----------------------------------------------*/

static int cmd_gen_lists(const wl_t *w, const opts_t *o)
{
        FILE *fp;
        rf_buf_t b = { 0 };
        uint64_t bytes = 0;
        int64_t gen = rf_now_ms() - 3600 * 1000;

        if (!o->out)
                return 2;
        if (!(fp = fopen(o->out, "w"))) {
                perror(o->out);
                return 1;
        }
        for (uint32_t l = 0; l < w->list_cnt; l++) {
                rf_buf_reset(&b);
                wl_list_json(w, l, *o->run_id ? o->run_id : NULL, gen, &b);
                rf_buf_append(&b, "\n", 1);
                fwrite(b.data, 1, b.len, fp);
                bytes += b.len;
        }
        rf_buf_free(&b);
        if (fclose(fp) != 0) {
                perror(o->out);
                return 1;
        }
        printf("lists=%u\nbytes=%llu\n", w->list_cnt,
               (unsigned long long)bytes);
        return 0;
}

/* The JSON parsers, in process: the streaming ones (yajl) that recfresh
 * uses where they read a value as jansson would, against jansson's tree.
 * o->count events of the workload's mix (its 20% activity records are not
 * events: skipped), then its first lists (up to 5,000). Best of 3 rounds. */
static int cmd_parse(const wl_t *w, const opts_t *o)
{
        uint64_t cnt = o->count ? o->count : 300000;
        uint32_t lists = w->list_cnt < 5000 ? w->list_cnt : 5000;
        wl_event_t ev = { 0 };
        rf_buf_t *vals = rf_calloc(cnt, sizeof(*vals));
        int *topics = rf_calloc(cnt, sizeof(*topics));
        char(*keys)[32] = rf_calloc(cnt, sizeof(*keys));
        rf_buf_t *ljs = rf_calloc(lists, sizeof(*ljs));
        uint64_t n = 0;
        double best[4] = { 1e9, 1e9, 1e9, 1e9 };
        int rc = 0;

        for (uint64_t i = 0; n < cnt; i++) {
                wl_event(w, i, rf_now_ms(), &ev);
                int t = rf_topic_by_name(ev.topic);
                if (ev.kind == WL_ACTIVITY || t < 0)
                        continue;
                topics[n] = t;
                memcpy(keys[n], ev.key, sizeof(keys[n]));
                rf_buf_append(&vals[n++], ev.value.data, ev.value.len);
        }
        for (uint32_t l = 0; l < lists; l++)
                wl_list_json(w, l, NULL, rf_now_ms(), &ljs[l]);
        for (int round = 0; round < 3 && rc == 0; round++) {
                for (int mode = 0; mode < 4 && rc == 0; mode++) {
                        double t0 = now_s();
                        for (uint64_t i = 0; mode < 2 && i < cnt; i++) {
                                rf_event_t e;
                                rf_rejection_t rej;
                                size_t kl = strlen(keys[i]);
                                int r = mode == 0
                                            ? rf_event_parse(topics[i], keys[i],
                                                             kl, vals[i].data,
                                                             vals[i].len, NULL,
                                                             &e, &rej)
                                            : rf_event_parse_tree(
                                                  topics[i], keys[i], kl,
                                                  vals[i].data, vals[i].len,
                                                  NULL, &e, &rej);
                                if (r) {
                                        fprintf(stderr, "event %llu: %s\n",
                                                (unsigned long long)i, rej.msg);
                                        rc = 1;
                                        break;
                                }
                                rf_event_clear(&e);
                        }
                        for (uint32_t l = 0; mode >= 2 && l < lists; l++) {
                                rf_list_t *lp = NULL;
                                rf_rejection_t rej;
                                int r = mode == 2
                                            ? rf_list_from_json(
                                                  NULL, 0, ljs[l].data,
                                                  ljs[l].len, NULL, &lp, &rej)
                                            : rf_list_from_json_tree(
                                                  NULL, 0, ljs[l].data,
                                                  ljs[l].len, NULL, &lp, &rej);
                                if (r) {
                                        fprintf(stderr, "list %u: %s\n", l,
                                                rej.msg);
                                        rc = 1;
                                        break;
                                }
                                rf_list_destroy(lp);
                        }
                        double us = (now_s() - t0) * 1e6 /
                                    (double)(mode < 2 ? cnt : lists);
                        if (us < best[mode])
                                best[mode] = us;
                }
        }
        if (rc == 0)
                printf("events=%llu\nevent_us=%.3f\nevent_tree_us=%.3f\n"
                       "lists=%u\nlist_us=%.3f\nlist_tree_us=%.3f\n",
                       (unsigned long long)cnt, best[0], best[1], lists,
                       best[2], best[3]);
        for (uint64_t i = 0; i < cnt; i++)
                rf_buf_free(&vals[i]);
        for (uint32_t l = 0; l < lists; l++)
                rf_buf_free(&ljs[l]);
        free(vals);
        free(topics);
        free(keys);
        free(ljs);
        rf_buf_free(&ev.value);
        return rc;
}

static int cmd_info(const wl_t *w)
{
        printf("subjects=%u\nitems=%u\nlists=%u\nentries=%llu\n"
               "index_entries=%llu\ntop_item_lists=%u\ntail_items=%u\n"
               "probe_items=%u\ncampaigns=%u\n",
               w->subjects, w->items, w->list_cnt,
               (unsigned long long)w->list_cnt * WL_LIST_LEN,
               (unsigned long long)w->index_entries, w->item_lists[0],
               w->tail_cnt, w->probe_cnt, w->campaigns);
        return 0;
}

static int cmd_exec(int argc, char **argv)
{
        struct rusage ru;
        int status;
        double t0 = now_s();
        pid_t pid;

        if (argc < 2)
                return 2;
        if ((pid = fork()) == 0) {
                execvp(argv[1], argv + 1);
                perror(argv[1]);
                _exit(127);
        }
        if (pid < 0 || wait4(pid, &status, 0, &ru) != pid)
                return 1;
        printf("exit=%d\nwall_s=%.3f\nmaxrss_kb=%ld\ncpu_s=%.3f\n",
               WIFEXITED(status) ? WEXITSTATUS(status) : 128, now_s() - t0,
               ru.ru_maxrss,
               (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static void usage(FILE *fp)
{
        fprintf(
            fp,
            "Usage: rfbench COMMAND [options]   (see tests/bench/run.sh)\n"
            "Commands: gen-lists info produce applied consume rocks read "
            "latency rawlat\n          fanout coalesce parse exec -- CMD...\n"
            "Workload: --seed S --subjects N --items I\n");
}

int main(int argc, char **argv)
{
        opts_t o;
        wl_t *w = NULL;
        int rc;

        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        const char *cmd = argv[1];
        if (!strcmp(cmd, "exec"))
                return cmd_exec(argc - 1 - (argc > 2 && !strcmp(argv[2], "--")),
                                argv + 1 +
                                    (argc > 2 && !strcmp(argv[2], "--")));
        if ((rc = parse_opts(&o, argc - 1, argv + 1)) != 0) {
                usage(stderr);
                return rc;
        }
        rf_log_set_level(RF_LOG_WARN);
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (strcmp(cmd, "consume") && strcmp(cmd, "rocks") &&
            strcmp(cmd, "applied"))
                w = wl_new(o.seed, o.subjects, o.items);
        if (!strcmp(cmd, "gen-lists"))
                rc = cmd_gen_lists(w, &o);
        else if (!strcmp(cmd, "info"))
                rc = cmd_info(w);
        else if (!strcmp(cmd, "produce"))
                rc = cmd_produce(w, &o);
        else if (!strcmp(cmd, "applied"))
                rc = cmd_applied(&o);
        else if (!strcmp(cmd, "consume"))
                rc = cmd_consume(&o);
        else if (!strcmp(cmd, "rocks"))
                rc = cmd_rocks(&o);
        else if (!strcmp(cmd, "read"))
                rc = cmd_read(w, &o);
        else if (!strcmp(cmd, "latency"))
                rc = cmd_latency(w, &o);
        else if (!strcmp(cmd, "rawlat"))
                rc = cmd_rawlat(w, &o);
        else if (!strcmp(cmd, "fanout"))
                rc = cmd_fanout(w, &o);
        else if (!strcmp(cmd, "coalesce"))
                rc = cmd_coalesce(w, &o);
        else if (!strcmp(cmd, "parse"))
                rc = cmd_parse(w, &o);
        else {
                usage(stderr);
                rc = 2;
        }
        wl_destroy(w);
        return rc;
}
