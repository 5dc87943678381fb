/*
 * recfresh - replay (see replay.h): loading record sets from event logs,
 * NDJSON files and topic ranges, preparing a scratch store, and applying
 * records one by one with the real apply path while the trace hook
 * (trace.h) collects what each record did, for `--explain` and what-if.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "recfresh/eventlog.h"
#include "recfresh/fanout.h"
#include "recfresh/kafka.h"
#include "recfresh/kafka_time.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/outbox.h"
#include "recfresh/recompute.h"
#include "recfresh/replay.h"
#include "recfresh/runs.h"
#include "recfresh/serve.h"
#include "recfresh/tomb_set.h"
#include "recfresh/tombstone.h"

#define SCRATCH_MARK     "REPLAY_SCRATCH"
#define KAFKA_TIMEOUT_MS 10000
#define MAX_NAMED        5 /* entry ids named per explain line */

/* The fixed salt of fresh scratch stores (see replay.h: determinism). */
static const unsigned char replay_salt[32] = "recfresh replay scratch salt v1";

const char *rf_trace_kind2str(rf_trace_kind_t k)
{
        static const char *const names[RF_TRACE__CNT] = {
                [RF_TRACE_TOMB_CHANGED] = "tomb_changed",
                [RF_TRACE_TOMB_STALE] = "tomb_stale",
                [RF_TRACE_LIST_APPLIED] = "list_applied",
                [RF_TRACE_LIST_STALE] = "list_stale",
                [RF_TRACE_LIST_BLOCKED] = "list_blocked",
                [RF_TRACE_LIST_INVALIDATED] = "list_invalidated",
                [RF_TRACE_REJECTED] = "rejected",
                [RF_TRACE_RECOMPUTE_ENQUEUED] = "recompute_enqueued",
                [RF_TRACE_RECOMPUTE_COALESCED] = "recompute_coalesced",
        };
        return (unsigned)k < RF_TRACE__CNT ? names[k] : "unknown";
}

/* ---- record sets --------------------------------------------------------*/

void rf_replay_set_add(rf_replay_set_t *set, const rf_record_t *rec)
{
        const char *tn = rec->topic_name ? rec->topic_name : "";
        size_t tlen = strlen(tn) + 1;
        size_t klen = rec->key ? rec->key_len + 1 : 0;
        size_t vlen = rec->value ? rec->value_len + 1 : 0;
        char *mem = rf_malloc(tlen + klen + vlen);
        rf_record_t *r;

        if (set->cnt == set->size) {
                set->size = set->size ? set->size * 2 : 256;
                set->recs = rf_realloc(set->recs, set->size * sizeof(*r));
        }
        r = &set->recs[set->cnt++];
        *r = *rec;
        memcpy(mem, tn, tlen);
        r->topic_name = mem;
        r->topic = rf_topic_by_name(mem);
        if (rec->key) {
                memcpy(mem + tlen, rec->key, rec->key_len);
                mem[tlen + rec->key_len] = '\0';
                r->key = mem + tlen;
        }
        if (rec->value) {
                memcpy(mem + tlen + klen, rec->value, rec->value_len);
                mem[tlen + klen + rec->value_len] = '\0';
                r->value = mem + tlen + klen;
        }
}

void rf_replay_set_clear(rf_replay_set_t *set)
{
        for (size_t i = 0; i < set->cnt; i++)
                free((char *)set->recs[i].topic_name);
        free(set->recs);
        memset(set, 0, sizeof(*set));
}

static FILE *report_fp(const rf_replay_set_t *set)
{
        return set->report ? set->report : stderr;
}

static int add_cb(void *opaque, const rf_record_t *rec)
{
        rf_replay_set_add(opaque, rec);
        return 0;
}

static void damage_cb(void *opaque, const char *path, uint64_t pos,
                      uint64_t len, const char *what)
{
        rf_replay_set_t *set = opaque;

        set->damaged++;
        fprintf(report_fp(set),
                "recfresh replay: %s: damaged at byte %llu (%llu bytes "
                "skipped): %s\n",
                path, (unsigned long long)pos, (unsigned long long)len, what);
}

int rf_replay_load_eventlog(rf_replay_set_t *set, const char *path,
                            char *errstr, size_t errstr_size)
{
        return rf_eventlog_read(path, add_cb, damage_cb, set, errstr,
                                errstr_size);
}

static int json_time(json_t *v, int64_t *ms)
{
        if (json_is_integer(v)) {
                *ms = (int64_t)json_integer_value(v);
                return 0;
        }
        if (json_is_string(v))
                return rf_time_parse(json_string_value(v), ms);
        return -1;
}

/* Parses one NDJSON line into \p rec (value text in \p vbuf).
 * @returns NULL or why not. */
static const char *ndjson_record(json_t *o, rf_record_t *rec, char **vtext)
{
        json_t *t = json_object_get(o, "topic"),
               *v = json_object_get(o, "value");
        json_t *p = json_object_get(o, "partition"),
               *off = json_object_get(o, "offset");
        json_t *k = json_object_get(o, "key"),
               *ts = json_object_get(o, "timestamp");
        const char *tn;

        if (!json_is_object(o))
                return "not a JSON object";
        if (!json_is_string(t))
                return "\"topic\": expected a string";
        tn = json_string_value(t);
        if (rf_topic_by_name(tn) < 0) {
                /* Accept the short id ("item_bans") too. */
                for (int i = 0; i < RF_TOPIC__CNT; i++)
                        if (!strcmp(rf_topic(i)->id, tn))
                                tn = rf_topic(i)->name;
        }
        memset(rec, 0, sizeof(*rec));
        rec->topic_name = tn;
        rec->topic = rf_topic_by_name(tn);
        rec->offset = -1;
        rec->timestamp_ms = -1;
        if (p && !json_is_integer(p))
                return "\"partition\": expected an integer";
        rec->partition = p ? (int32_t)json_integer_value(p) : 0;
        if (off && !json_is_integer(off))
                return "\"offset\": expected an integer";
        if (off)
                rec->offset = (int64_t)json_integer_value(off);
        if (ts && json_time(ts, &rec->timestamp_ms))
                return "\"timestamp\": expected ms or an RFC 3339 string";
        if (k && !json_is_null(k)) {
                if (!json_is_string(k))
                        return "\"key\": expected a string";
                rec->key = json_string_value(k);
                rec->key_len = json_string_length(k);
        }
        if (json_is_string(v)) {
                rec->value = json_string_value(v);
                rec->value_len = json_string_length(v);
        } else if (v && !json_is_null(v)) {
                *vtext = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
                rec->value = *vtext;
                rec->value_len = strlen(*vtext);
        }
        return NULL;
}

int rf_replay_load_ndjson(rf_replay_set_t *set, const char *path, char *errstr,
                          size_t errstr_size)
{
        FILE *fp = fopen(path, "r");
        char *line = NULL;
        size_t cap = 0;
        int lineno = 0;

        if (!fp) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return RF_EIO;
        }
        while (getline(&line, &cap, fp) != -1) {
                json_error_t jerr;
                rf_record_t rec;
                char *vtext = NULL;
                const char *why;
                json_t *o;

                lineno++;
                if (strspn(line, " \t\r\n") == strlen(line))
                        continue;
                o = json_loads(line, 0, &jerr);
                why = o ? ndjson_record(o, &rec, &vtext) : jerr.text;
                if (why) {
                        set->damaged++;
                        fprintf(report_fp(set),
                                "recfresh replay: %s:%d: skipped: %s\n", path,
                                lineno, why);
                } else {
                        rf_replay_set_add(set, &rec);
                }
                free(vtext);
                json_decref(o);
        }
        free(line);
        fclose(fp);
        return 0;
}

static int rec_cmp_time(const void *a, const void *b)
{
        const rf_record_t *x = a, *y = b;
        int c;

        if (x->timestamp_ms != y->timestamp_ms)
                return x->timestamp_ms < y->timestamp_ms ? -1 : 1;
        if ((c = strcmp(x->topic_name, y->topic_name)))
                return c;
        if (x->partition != y->partition)
                return x->partition < y->partition ? -1 : 1;
        if (x->offset != y->offset)
                return x->offset < y->offset ? -1 : 1;
        return 0;
}

/* Stable sort of recs[from..cnt) by time: merge sort on an index. */
static void sort_by_time(rf_replay_set_t *set, size_t from)
{
        size_t n = set->cnt - from;
        rf_record_t *a = set->recs + from, *tmp;

        if (n < 2)
                return;
        tmp = rf_malloc(n * sizeof(*tmp));
        for (size_t w = 1; w < n; w *= 2) {
                for (size_t lo = 0; lo < n; lo += 2 * w) {
                        size_t mid = lo + w < n ? lo + w : n;
                        size_t hi = lo + 2 * w < n ? lo + 2 * w : n;
                        size_t i = lo, j = mid, k = lo;
                        while (i < mid && j < hi)
                                tmp[k++] = rec_cmp_time(&a[j], &a[i]) < 0
                                               ? a[j++]
                                               : a[i++];
                        while (i < mid)
                                tmp[k++] = a[i++];
                        while (j < hi)
                                tmp[k++] = a[j++];
                }
                memcpy(a, tmp, n * sizeof(*tmp));
        }
        free(tmp);
}

int rf_replay_load_topics(rf_replay_set_t *set, const rf_config_t *conf,
                          const char *brokers, const rf_replay_range_t *range,
                          int *searched, char *errstr, size_t errstr_size)
{
        rd_kafka_conf_t *kc;
        rd_kafka_t *rk;
        size_t first = set->cnt;
        char err[256];
        int r = 0;

        *searched = 0;
        kc = rf_kafka_conf_new(conf, brokers, "replay", errstr, errstr_size);
        if (!kc)
                return RF_ECONFIG;
        if (rf_kafka_conf_set(kc, "group.id", "recfresh-replay", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "enable.partition.eof", "true", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "fetch.wait.max.ms", "50", errstr,
                              errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return RF_ECONFIG;
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                snprintf(errstr, errstr_size, "consumer: %s", err);
                return RF_EKAFKA;
        }
        for (int t = 0; t < RF_TOPIC__CNT && r == 0; t++) {
                const rf_topic_def_t *td = rf_topic(t);
                int parts;

                if (strcmp(td->direction, "input") ||
                    (range->topic && strcmp(range->topic, td->name) &&
                     strcmp(range->topic, td->id)))
                        continue;
                parts =
                    rf_kafka_partition_count(rk, td->name, KAFKA_TIMEOUT_MS);
                if (parts < 0) {
                        snprintf(errstr, errstr_size, "%s: no such topic",
                                 td->name);
                        r = RF_EKAFKA;
                        break;
                }
                for (int32_t p = 0; p < parts && r == 0; p++) {
                        int64_t lo = 0, hi = 0, start, end;
                        int s1 = 0, s2 = 0;

                        if (range->partition >= 0 && p != range->partition)
                                continue;
                        if (rd_kafka_query_watermark_offsets(
                                rk, td->name, p, &lo, &hi, KAFKA_TIMEOUT_MS)) {
                                snprintf(errstr, errstr_size,
                                         "%s [%d]: cannot read watermarks",
                                         td->name, (int)p);
                                r = RF_EKAFKA;
                                break;
                        }
                        start =
                            range->from_offset >= 0 ? range->from_offset : lo;
                        end = range->to_offset >= 0 ? range->to_offset : hi;
                        if (range->from_ms >= 0)
                                r = rf_kafka_offset_for_time(
                                    rk, td->name, p, range->from_ms,
                                    KAFKA_TIMEOUT_MS, &start, &s1, errstr,
                                    errstr_size);
                        if (r == 0 && range->to_ms >= 0)
                                r = rf_kafka_offset_for_time(
                                    rk, td->name, p, range->to_ms,
                                    KAFKA_TIMEOUT_MS, &end, &s2, errstr,
                                    errstr_size);
                        if (r)
                                break;
                        if (s1 || s2)
                                (*searched)++;
                        if (start < lo)
                                start = lo;
                        if (end > hi)
                                end = hi;
                        r = rf_kafka_read_range(rk, td->name, p, start, end,
                                                KAFKA_TIMEOUT_MS, add_cb, set,
                                                errstr, errstr_size);
                }
        }
        rd_kafka_destroy(rk);
        sort_by_time(set, first);
        return r;
}

/* A set of (topic, partition, offset), open addressing. */
typedef struct tpo_set {
        const rf_record_t **slot;
        size_t mask;
} tpo_set_t;

static uint64_t tpo_hash(const rf_record_t *r)
{
        uint64_t h = 1469598103934665603ULL;
        for (const char *s = r->topic_name; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        h = (h ^ (uint64_t)(uint32_t)r->partition) * 1099511628211ULL;
        h = (h ^ (uint64_t)r->offset) * 1099511628211ULL;
        return h ^ (h >> 29);
}

static int tpo_add(tpo_set_t *s, const rf_record_t *r)
{
        size_t i = tpo_hash(r) & s->mask;

        for (; s->slot[i]; i = (i + 1) & s->mask) {
                const rf_record_t *o = s->slot[i];
                if (o->offset == r->offset && o->partition == r->partition &&
                    !strcmp(o->topic_name, r->topic_name))
                        return 1;
        }
        s->slot[i] = r;
        return 0;
}

void rf_replay_set_finish(rf_replay_set_t *set, int by_time)
{
        tpo_set_t seen;
        size_t size = 16, w = 0;

        while (size < set->cnt * 2)
                size <<= 1;
        seen.slot = rf_calloc(size, sizeof(*seen.slot));
        seen.mask = size - 1;
        /* Keep the first copy of each (topic, partition, offset). The set
         * points into recs[], so compact into a new array. */
        rf_record_t *out = rf_malloc((set->cnt ? set->cnt : 1) * sizeof(*out));
        for (size_t i = 0; i < set->cnt; i++) {
                rf_record_t *r = &set->recs[i];
                if (r->offset >= 0 && tpo_add(&seen, r)) {
                        free((char *)r->topic_name);
                        set->duplicates++;
                        continue;
                }
                out[w++] = *r;
        }
        free(seen.slot);
        free(set->recs);
        set->recs = out;
        set->cnt = set->size = w;
        if (set->cnt == 0)
                set->size = 1;
        if (by_time)
                sort_by_time(set, 0);
}

/* ---- the target ---------------------------------------------------------*/

/* @returns the pid holding the RocksDB LOCK of \p dir, or 0. */
static pid_t lock_holder(const char *dir)
{
        char path[PATH_MAX];
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        int fd;

        snprintf(path, sizeof(path), "%s/LOCK", dir);
        if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
                return 0;
        if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK)
                fl.l_pid = 0;
        close(fd);
        return fl.l_pid;
}

int rf_replay_prepare_target(const char *dir, const char *live_dir,
                             char *errstr, size_t errstr_size)
{
        char rd[PATH_MAX], rl[PATH_MAX], path[PATH_MAX];
        struct dirent *de;
        int marked, entries = 0;
        pid_t pid;
        DIR *d;

        if (live_dir && realpath(dir, rd) && realpath(live_dir, rl) &&
            !strcmp(rd, rl)) {
                snprintf(errstr, errstr_size,
                         "%s is the live data_dir: replay needs a scratch "
                         "directory (--data-dir)",
                         dir);
                return RF_EINVAL;
        }
        if ((pid = lock_holder(dir))) {
                snprintf(errstr, errstr_size,
                         "%s is in use by a running recfresh (pid %d): "
                         "replay needs a scratch directory",
                         dir, (int)pid);
                return RF_EINVAL;
        }
        if (mkdir(dir, 0755) == 0)
                goto mark;
        if (errno != EEXIST || !(d = opendir(dir))) {
                snprintf(errstr, errstr_size, "%s: %s", dir, strerror(errno));
                return RF_EINVAL;
        }
        snprintf(path, sizeof(path), "%s/" SCRATCH_MARK, dir);
        marked = access(path, F_OK) == 0;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        entries++;
        if (entries && !marked) {
                closedir(d);
                snprintf(errstr, errstr_size,
                         "%s is not empty and not a replay scratch "
                         "directory: refusing to write to it",
                         dir);
                return RF_EINVAL;
        }
        /* A previous scratch: empty it (RocksDB directories are flat). A
         * file left behind could be a hard link into a checkpoint, which
         * seed_copy() must not write through. */
        rewinddir(d);
        while ((de = readdir(d))) {
                struct stat sb;
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
                        continue;
                if (unlink(path) != 0) {
                        snprintf(errstr, errstr_size, "%s: %s", path,
                                 strerror(errno));
                        closedir(d);
                        return RF_EINVAL;
                }
        }
        closedir(d);
mark:
        snprintf(path, sizeof(path), "%s/" SCRATCH_MARK, dir);
        FILE *fp = fopen(path, "w");
        if (!fp) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return RF_EINVAL;
        }
        fputs("a recfresh replay scratch store: safe to delete\n", fp);
        fclose(fp);
        /* Until the replay flushed and closed it: the store writes no WAL,
         * so a replay that dies leaves a partial state, which
         * rf_store_open() then refuses. */
        snprintf(path, sizeof(path), "%s/" RF_STORE_INCOMPLETE, dir);
        if (!(fp = fopen(path, "w"))) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return RF_EINVAL;
        }
        fputs("a replay is writing this store, or did not finish\n", fp);
        fclose(fp);
        return 0;
}

/* Copies the regular files of checkpoint \p src into \p dst. */
static int seed_copy(const char *src, const char *dst, char *errstr,
                     size_t errstr_size)
{
        char from[PATH_MAX], to[PATH_MAX], buf[65536];
        struct dirent *de;
        DIR *d = opendir(src);
        int r = 0;

        if (!d) {
                snprintf(errstr, errstr_size, "%s: %s", src, strerror(errno));
                return RF_EIO;
        }
        while (r == 0 && (de = readdir(d))) {
                struct stat sb;
                snprintf(from, sizeof(from), "%s/%s", src, de->d_name);
                snprintf(to, sizeof(to), "%s/%s", dst, de->d_name);
                if (stat(from, &sb) != 0 || !S_ISREG(sb.st_mode) ||
                    !strcmp(de->d_name, "LOCK"))
                        continue;
                /* RocksDB never writes an SST file again: share it (as
                 * checkpoints do), and copy only where links fail. The
                 * MANIFEST is appended to, so it is always copied. */
                size_t nl = strlen(de->d_name);
                if (nl > 4 && !strcmp(de->d_name + nl - 4, ".sst") &&
                    link(from, to) == 0)
                        continue;
                /* A new file, never one that exists: it could be a link
                 * to the file being read. */
                int in = open(from, O_RDONLY | O_CLOEXEC);
                int out =
                    open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                ssize_t n = 0;
                while (in >= 0 && out >= 0 &&
                       (n = read(in, buf, sizeof(buf))) > 0)
                        if (write(out, buf, (size_t)n) != n) {
                                n = -1;
                                break;
                        }
                if (in < 0 || out < 0 || n < 0) {
                        snprintf(errstr, errstr_size, "copy %s: %s", from,
                                 strerror(errno));
                        r = RF_EIO;
                }
                if (in >= 0)
                        close(in);
                if (out >= 0)
                        close(out);
        }
        closedir(d);
        return r;
}

/* ---- explaining one record ----------------------------------------------*/

typedef struct aff {
        char key[512]; /* "subject/surface[/context]" */
        char subject[257];
        int tombstoned; /* entries matching the entity; -1: list purged */
} aff_t;

typedef struct explain {
        rf_apply_ctx_t *ctx;
        const rf_config_t *conf;
        rf_replay_stats_t *stats;
        /* the current record */
        const char *outcome; /* static text, or NULL for "taken" */
        char why[512];       /* detail of the outcome */
        const char *status;  /* JSON outcome name */
        int active;          /* tombstone now in force (1) or lifted (0) */
        aff_t *aff;
        size_t aff_cnt, aff_size;
        char listkey[512];   /* list records: the list's key text */
        int holds_item;      /* list records: holds --item */
        char published[512]; /* list records: entries filtered at publish */
        size_t filtered_cnt;
        uint64_t enqueued, coalesced;
        const char *item; /* --item filter, or NULL */
        rf_buf_t list;    /* the list an invalidation is explained from */
} explain_t;

static void list_key_text(const char *key, size_t klen, char *out, size_t size,
                          char *subject, size_t ssize)
{
        rf_list_key_t lk;

        if (rf_key_list_split(key, klen, &lk) != 0) {
                snprintf(out, size, "?");
                if (subject)
                        snprintf(subject, ssize, "?");
                return;
        }
        if (*lk.context)
                snprintf(out, size, "%s/%s/%s", lk.subject, lk.surface,
                         lk.context);
        else
                snprintf(out, size, "%s/%s", lk.subject, lk.surface);
        if (subject)
                snprintf(subject, ssize, "%s", lk.subject);
}

static int entry_matches(const rf_entry_t *e, const char *kind, const char *id)
{
        if (!strcmp(kind, "item"))
                return !strcmp(e->item_id, id);
        if (!strcmp(kind, "creator"))
                return !strcmp(e->creator_id, id);
        if (!strcmp(kind, "campaign"))
                return !strcmp(e->campaign_id, id);
        return 1; /* "user": the whole list */
}

static void on_invalidated(explain_t *x, const rf_trace_t *t)
{
        rf_buf_t *v = &x->list; /* kept: one allocation per list was a
                                 * twentieth of replay */
        rf_list_walk_t w;
        rf_list_t hdr;
        rf_entry_t e;
        aff_t *a;
        int more;

        if (x->aff_cnt == x->aff_size) {
                x->aff_size = x->aff_size ? 2 * x->aff_size : 8;
                x->aff = rf_realloc(x->aff, x->aff_size * sizeof(*a));
        }
        a = &x->aff[x->aff_cnt++];
        list_key_text(t->list_key, t->list_klen, a->key, sizeof(a->key),
                      a->subject, sizeof(a->subject));
        a->tombstoned = 0;
        /* The version the index names (a run's, or the incremental one),
         * walked in place: a decode per list was a sixth of replay. */
        if (rf_runs_indexed_get(x->ctx->txn, t->list_key, t->list_klen,
                                t->region, v) == 0 &&
            rf_list_walk_init(&w, v->data, v->len, &hdr) == 0) {
                while ((more = rf_list_walk_next(&w, &e)) == 1)
                        a->tombstoned +=
                            entry_matches(&e, t->entity_kind, t->entity_id);
                if (more < 0)
                        a->tombstoned = 0; /* corrupt: nothing known */
        } else {
                a->tombstoned = -1; /* removed with the event (purge) */
        }
        x->stats->lists_affected++;
        if (a->tombstoned > 0) {
                if (x->active)
                        x->stats->entries_tombstoned += (uint64_t)a->tombstoned;
                else
                        x->stats->entries_restored += (uint64_t)a->tombstoned;
        }
}

/* Which entries of a newly stored list are already tombstoned: the answer
 * to "the list was published after the event". */
static void on_list_applied(explain_t *x, const rf_list_t *list,
                            const char *item)
{
        rf_checker_t ck;
        size_t n = 0, len = 0;

        x->published[0] = '\0';
        x->filtered_cnt = 0;
        x->holds_item = 0;
        rf_checker_init(&ck, x->ctx->st, x->ctx->txn, list->subject_id,
                        list->region);
        for (size_t i = 0; i < list->item_cnt; i++) {
                const rf_entry_t *e = &list->items[i];
                rf_filter_t f = rf_checker_check(&ck, e);
                if (item && !strcmp(e->item_id, item))
                        x->holds_item = 1;
                if (f == RF_FILTER_NONE)
                        continue;
                x->filtered_cnt++;
                if (n++ < MAX_NAMED && len < sizeof(x->published) - 1)
                        len += (size_t)snprintf(x->published + len,
                                                sizeof(x->published) - len,
                                                "%s%s %s", n > 1 ? ", " : "",
                                                e->item_id, rf_filter2str(f));
        }
        if (n > MAX_NAMED && len < sizeof(x->published) - 1)
                snprintf(x->published + len, sizeof(x->published) - len,
                         ", ...");
        rf_checker_clear(&ck);
}

static void trace_cb(void *opaque, const rf_trace_t *t)
{
        explain_t *x = opaque;
        char ts[40];

        switch (t->kind) {
        case RF_TRACE_TOMB_CHANGED:
                x->active = t->active;
                x->status = t->flipped ? (t->active ? "tombstoned" : "lifted")
                                       : "unchanged";
                x->outcome = t->flipped ? (t->active ? "tombstone set"
                                                     : "tombstone lifted")
                                        : "state updated, already in force as "
                                          "before";
                x->stats->changed += (uint64_t)t->flipped;
                break;
        case RF_TRACE_TOMB_STALE:
                x->status = "stale";
                x->outcome = "ignored: older than current state";
                snprintf(x->why, sizeof(x->why), "set by %s at %s",
                         t->cur->event_id,
                         rf_time_format(t->cur->occurred_at, ts, sizeof(ts)));
                x->stats->stale++;
                break;
        case RF_TRACE_LIST_APPLIED:
                x->status = "stored";
                x->outcome = "list stored";
                if (t->held)
                        snprintf(x->why, sizeof(x->why),
                                 "replaces %s generated %s", t->held->list_id,
                                 rf_time_format(t->held->generated_at, ts,
                                                sizeof(ts)));
                on_list_applied(x, t->list, x->item);
                x->stats->lists_stored++;
                break;
        case RF_TRACE_LIST_STALE:
                x->status = "stale";
                x->outcome = "ignored: an equal or newer list is held";
                if (t->held)
                        snprintf(x->why, sizeof(x->why), "%s generated %s",
                                 t->held->list_id,
                                 rf_time_format(t->held->generated_at, ts,
                                                sizeof(ts)));
                x->stats->lists_stale++;
                break;
        case RF_TRACE_LIST_BLOCKED:
                x->status = "blocked";
                x->outcome = "not stored: the subject revoked consent";
                x->stats->lists_blocked++;
                break;
        case RF_TRACE_LIST_INVALIDATED:
                on_invalidated(x, t);
                break;
        case RF_TRACE_REJECTED:
                x->status = "rejected";
                x->outcome = "rejected";
                snprintf(x->why, sizeof(x->why), "%s: %s",
                         rf_reject2str(t->rej->reason), t->rej->msg);
                x->stats->rejected++;
                break;
        case RF_TRACE_RECOMPUTE_ENQUEUED:
                x->enqueued++;
                x->stats->recompute_enqueued++;
                break;
        case RF_TRACE_RECOMPUTE_COALESCED:
                x->coalesced++;
                x->stats->recompute_coalesced++;
                break;
        default:
                break;
        }
}

static void explain_reset(explain_t *x)
{
        x->outcome = NULL;
        x->status = "taken";
        x->why[0] = x->listkey[0] = x->published[0] = '\0';
        x->active = 1;
        x->aff_cnt = 0;
        x->filtered_cnt = 0;
        x->holds_item = 0;
        x->enqueued = x->coalesced = 0;
}

/* The record's own identity, from its JSON value. */
typedef struct ident {
        json_t *js;
        const char *type, *id;
        char entity[600];
        const char *user, *item, *subject;
} ident_t;

static void ident_of(const rf_record_t *rec, ident_t *id)
{
        static const char *const fields[] = { "user_id",    "item_id",
                                              "creator_id", "campaign_id",
                                              "region",     "scope" };
        static const char *const short_names[] = { "user",    "item",
                                                   "creator", "campaign",
                                                   "region",  "scope" };
        size_t len = 0;

        memset(id, 0, sizeof(*id));
        id->js =
            rec->value ? json_loadb(rec->value, rec->value_len, 0, NULL) : NULL;
        id->type = rec->topic == RF_TOPIC_LISTS ? "list" : "?";
        id->id = "?";
        if (!json_is_object(id->js))
                return;
        json_t *v = json_object_get(id->js, "type");
        if (json_is_string(v))
                id->type = json_string_value(v);
        v = json_object_get(id->js, "event_id");
        if (!json_is_string(v))
                v = json_object_get(id->js, "list_id");
        if (!json_is_string(v))
                v = json_object_get(id->js, "run_id");
        if (json_is_string(v))
                id->id = json_string_value(v);
        v = json_object_get(id->js, "subject_id");
        id->subject = json_is_string(v) ? json_string_value(v) : NULL;
        v = json_object_get(id->js, "user_id");
        id->user = json_is_string(v) ? json_string_value(v) : NULL;
        v = json_object_get(id->js, "item_id");
        id->item = json_is_string(v) ? json_string_value(v) : NULL;
        for (size_t i = 0; i < RF_ARRAY_SIZE(fields); i++) {
                v = json_object_get(id->js, fields[i]);
                if (json_is_string(v) && *json_string_value(v) &&
                    len < sizeof(id->entity) - 1)
                        len += (size_t)snprintf(
                            id->entity + len, sizeof(id->entity) - len,
                            "%s%s=%s", len ? " " : "", short_names[i],
                            json_string_value(v));
                else if (json_is_boolean(v) && len < sizeof(id->entity) - 1)
                        len += (size_t)snprintf(
                            id->entity + len, sizeof(id->entity) - len,
                            "%s%s=%s", len ? " " : "", fields[i],
                            json_is_true(v) ? "true" : "false");
        }
        v = json_object_get(id->js, "in_stock");
        if (json_is_boolean(v) && len < sizeof(id->entity) - 1)
                snprintf(id->entity + len, sizeof(id->entity) - len,
                         "%sin_stock=%s", len ? " " : "",
                         json_is_true(v) ? "true" : "false");
}

static int list_matches(const char *filter, const char *key)
{
        size_t n = strlen(filter);

        /* "u/home" matches the list u/home and u/home/<context> only when
         * given in full; a context-less filter matches the default. */
        /* "u/home" names the default-context list, "u/home/ctx" another. */
        return strlen(key) == n && !memcmp(filter, key, n);
}

/* Whether the record passes the filters, and which affected lists show. */
static int passes(const rf_replay_opts_t *o, const explain_t *x,
                  const ident_t *id, const rf_record_t *rec, int *show)
{
        int any_list = 0, ok = 1;

        for (size_t i = 0; i < x->aff_cnt; i++) {
                show[i] =
                    (!o->subject || !strcmp(x->aff[i].subject, o->subject)) &&
                    (!o->list || list_matches(o->list, x->aff[i].key));
                any_list |= show[i];
        }
        if (o->subject)
                ok &= (id->user && !strcmp(id->user, o->subject)) ||
                      (id->subject && !strcmp(id->subject, o->subject)) ||
                      any_list;
        if (o->item)
                ok &= (id->item && !strcmp(id->item, o->item)) ||
                      (rec->topic == RF_TOPIC_LISTS && x->holds_item);
        if (o->list)
                ok &= (x->listkey[0] && list_matches(o->list, x->listkey)) ||
                      any_list;
        return ok;
}

static void text_line(rf_buf_t *b, uint64_t seq, const rf_record_t *rec,
                      const ident_t *id, const explain_t *x, const int *show,
                      const uint64_t *emitted)
{
        char ts[40];
        size_t shown = 0;

        rf_buf_printf(b, "#%llu %s %s[%d]@%lld %s %s", (unsigned long long)seq,
                      rec->timestamp_ms >= 0
                          ? rf_time_format(rec->timestamp_ms, ts, sizeof(ts))
                          : "-",
                      rec->topic_name, (int)rec->partition,
                      (long long)rec->offset, id->type, id->id);
        if (x->listkey[0])
                rf_buf_printf(b, " list=%s", x->listkey);
        else if (id->entity[0])
                rf_buf_printf(b, " %s", id->entity);
        rf_buf_printf(b, ": %s", x->outcome ? x->outcome : "taken");
        if (x->why[0])
                rf_buf_printf(b, " (%s)", x->why);
        if (x->filtered_cnt)
                rf_buf_printf(b, "; already tombstoned at publish: %zu (%s)",
                              x->filtered_cnt, x->published);
        for (size_t i = 0; i < x->aff_cnt; i++)
                shown += !show || show[i];
        if (shown || x->aff_cnt) {
                rf_buf_printf(b, "; lists affected: %zu", shown);
                const char *sep = " [";
                for (size_t i = 0; i < x->aff_cnt; i++) {
                        const aff_t *a = &x->aff[i];
                        if (show && !show[i])
                                continue;
                        if (a->tombstoned < 0)
                                rf_buf_printf(b, "%s%s purged", sep, a->key);
                        else
                                rf_buf_printf(
                                    b, "%s%s %d %s %s", sep, a->key,
                                    a->tombstoned,
                                    a->tombstoned == 1 ? "entry" : "entries",
                                    x->active ? "tombstoned" : "restored");
                        sep = ", ";
                }
                if (shown)
                        rf_buf_printf(b, "]");
        }
        if (x->enqueued || x->coalesced)
                rf_buf_printf(b, "; recompute: %llu enqueued, %llu coalesced",
                              (unsigned long long)x->enqueued,
                              (unsigned long long)x->coalesced);
        int first = 1;
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (!emitted[t])
                        continue;
                rf_buf_printf(b, "%s%s=%llu", first ? "; emitted: " : " ",
                              rf_topic(t)->name,
                              (unsigned long long)emitted[t]);
                first = 0;
        }
        rf_buf_append(b, "\n", 1);
}

static void json_line(rf_buf_t *b, uint64_t seq, const rf_record_t *rec,
                      const ident_t *id, const explain_t *x, const int *show,
                      const uint64_t *emitted)
{
        json_t *o = json_object(), *lists = json_array(), *em = json_object();
        char *s;

        json_object_set_new(o, "seq", json_integer((json_int_t)seq));
        json_object_set_new(o, "topic", json_string(rec->topic_name));
        json_object_set_new(o, "partition", json_integer(rec->partition));
        json_object_set_new(o, "offset", json_integer(rec->offset));
        json_object_set_new(o, "timestamp", json_integer(rec->timestamp_ms));
        json_object_set_new(o, "type", json_string(id->type));
        json_object_set_new(o, "id", json_string(id->id));
        if (x->listkey[0])
                json_object_set_new(o, "list", json_string(x->listkey));
        if (id->entity[0])
                json_object_set_new(o, "entity", json_string(id->entity));
        json_object_set_new(o, "outcome", json_string(x->status));
        if (x->why[0])
                json_object_set_new(o, "detail", json_string(x->why));
        if (x->filtered_cnt) {
                json_object_set_new(o, "tombstoned_at_publish",
                                    json_integer((json_int_t)x->filtered_cnt));
                json_object_set_new(o, "tombstoned_at_publish_detail",
                                    json_string(x->published));
        }
        for (size_t i = 0; i < x->aff_cnt; i++) {
                if (show && !show[i])
                        continue;
                json_t *l = json_object();
                json_object_set_new(l, "list", json_string(x->aff[i].key));
                if (x->aff[i].tombstoned < 0)
                        json_object_set_new(l, "purged", json_true());
                else
                        json_object_set_new(
                            l, x->active ? "tombstoned" : "restored",
                            json_integer(x->aff[i].tombstoned));
                json_array_append_new(lists, l);
        }
        json_object_set_new(o, "lists", lists);
        json_object_set_new(o, "recompute_enqueued",
                            json_integer((json_int_t)x->enqueued));
        json_object_set_new(o, "recompute_coalesced",
                            json_integer((json_int_t)x->coalesced));
        for (int t = 0; t < RF_TOPIC__CNT; t++)
                if (emitted[t])
                        json_object_set_new(
                            em, rf_topic(t)->name,
                            json_integer((json_int_t)emitted[t]));
        json_object_set_new(o, "emitted", em);
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        rf_buf_printf(b, "%s\n", s);
        free(s);
        json_decref(o);
}

/* ---- running ------------------------------------------------------------*/

/* Records between two deletions of the scratch store's outbox. */
#define REPLAY_DRAIN_EVERY 512

/* Deletes what the apply put in the outbox: a scratch store never sends.
 * (What each record emitted is counted by rf_outbox_puts().) */
static int drain_outbox(rf_store_t *st, uint64_t *next_seq, char *errstr,
                        size_t errstr_size)
{
        rf_txn_t *txn = rf_txn_new(st);
        rf_buf_t from = { 0 };
        rf_iter_t *it;
        int r;

        /* From the first sequence not yet drained: the deleted head is
         * never walked again (replay stays linear in records). */
        rf_key_seq(&from, *next_seq);
        it = rf_iter_new_range(st, NULL, RF_CF_OUTBOX, from.data, from.len,
                               NULL, 0);
        rf_buf_free(&from);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                rf_txn_delete(txn, RF_CF_OUTBOX, k, klen);
                *next_seq = rf_key_seq_parse(k, klen) + 1;
        }
        if ((r = rf_iter_status(it)) != 0)
                snprintf(errstr, errstr_size, "outbox: store read error");
        rf_iter_destroy(it);
        if (r == 0)
                r = rf_txn_commit(txn, errstr, errstr_size);
        rf_txn_destroy(txn);
        return r;
}

/* Next offsets of a seeded store, to skip records it already holds. */
static int64_t seeded_next(rf_store_t *st, const rf_record_t *rec)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int64_t next = -1;

        rf_key_offset(&k, rec->topic_name, rec->partition);
        if (rf_store_get(st, RF_CF_OFFSETS, k.data, k.len, &v) == 0 &&
            v.len == 8) {
                rf_cur_t c = { v.data, v.data + 8, 0 };
                next = (int64_t)rf_cur_be64(&c);
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        return next;
}

/* Sends what the recompute queue has due at \p now_ms, as the daemon's
 * sender would, acknowledging each at once. @returns requests sent. */
static uint64_t send_due(rf_queue_t *q, int64_t now_ms)
{
        enum { BATCH = 128 };
        rf_queue_req_t reqs[BATCH];
        void *tokens[BATCH];
        uint64_t sent = 0;
        int n = BATCH;

        while (n == BATCH &&
               (n = rf_queue_take_batch(q, now_ms, reqs, BATCH)) > 0) {
                for (int i = 0; i < n; i++) {
                        tokens[i] = reqs[i].token;
                        rf_queue_req_clear(&reqs[i]);
                }
                rf_queue_settle_batch(q, tokens, (size_t)n, 1, now_ms);
                sent += (uint64_t)n;
        }
        return sent;
}

/* Serves list \p k (a list key) as a read would, counting an empty one. */
static void serve_one(const rf_serve_env_t *env, const char *k, size_t klen,
                      rf_replay_stats_t *stats, rf_buf_t *empty)
{
        rf_list_key_t lk;
        rf_serve_result_t res;
        char text[512];

        if (rf_key_list_split(k, klen, &lk) != 0 ||
            !strcmp(lk.subject, RF_FALLBACK_SUBJECT))
                return;
        stats->lists_total++;
        rf_serve_req_t req = { lk.subject, lk.surface, lk.context, NULL, 0 };
        if (rf_serve_list(env, &req, &res) == 0 &&
            res.served_from == RF_SERVED_EMPTY) {
                stats->lists_served_empty++;
                if (empty) {
                        list_key_text(k, klen, text, sizeof(text), NULL, 0);
                        rf_buf_printf(empty, "%s\n", text);
                }
        }
        rf_serve_result_clear(&res);
}

/* Serves every list a read may get at the end of the replay: each
 * incremental list, and each version of a run active on its surface (a
 * list key held by both once). */
static void served_empty(rf_store_t *st, const rf_config_t *conf,
                         int64_t now_ms, rf_replay_stats_t *stats,
                         rf_buf_t *empty)
{
        rf_serve_env_t env = { st, conf, NULL, NULL, now_ms > 0 ? now_ms : 1 };
        rf_active_runs_t act = { 0 };
        rf_buf_t vk = { 0 }, v = { 0 };
        rf_iter_t *it;

        if (rf_runs_active_all(st, NULL, &act) != 0)
                rf_log_error("replay", "cannot read the active runs: counting "
                                       "incremental lists only");
        for (size_t i = 0; i < act.cnt; i++) {
                const char *rid = act.run_id[i];
                size_t rlen = strlen(rid) + 1;
                if (!rf_active_runs_first(&act, i))
                        continue;
                it = rf_iter_new(st, NULL, RF_CF_VERSIONS, rid, rlen);
                for (; rf_iter_valid(it); rf_iter_next(it)) {
                        size_t klen;
                        const char *k = rf_iter_key(it, &klen), *on;
                        rf_list_key_t lk;
                        if (rf_key_list_split(k + rlen, klen - rlen, &lk) ||
                            !(on = rf_active_runs_of(&act, lk.surface)) ||
                            strcmp(on, rid) != 0)
                                continue;
                        serve_one(&env, k + rlen, klen - rlen, stats, empty);
                }
                rf_iter_destroy(it);
        }
        it = rf_iter_new(st, NULL, RF_CF_LISTS, NULL, 0);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen), *on;
                rf_list_key_t lk;
                if (rf_key_list_split(k, klen, &lk) != 0)
                        continue;
                if ((on = rf_active_runs_of(&act, lk.surface))) {
                        rf_buf_reset(&vk);
                        rf_key_version(&vk, on, strlen(on), k, klen);
                        if (rf_store_get(st, RF_CF_VERSIONS, vk.data, vk.len,
                                         &v) == 0)
                                continue; /* served above */
                }
                serve_one(&env, k, klen, stats, empty);
        }
        rf_iter_destroy(it);
        rf_active_runs_clear(&act);
        rf_buf_free(&vk);
        rf_buf_free(&v);
}

/* ---- warming the lists ---------------------------------------------------*/

/* Replay reads the lists its records reach from a scratch store nothing has
 * read yet: a cold read (the file, its checksum, LZ4) was a fifth of
 * replay's time. When the lists' files fit in a quarter of the block cache
 * (LZ4 about doubles them there), a second thread reads them through in
 * order while the records run, so that the records' reads mostly find them
 * cached. The end reads every list anyway (the lists served empty): it
 * waits for the thread first. Results do not change, only what is cached. */
typedef struct warmer {
        rf_warm_t *w[2]; /* the versions, then the lists */
        atomic_int stop; /* set on an error: the store is closing */
        uint64_t keys;   /* read, once joined */
        pthread_t th;
        int started;
} warmer_t;

static const rf_cf_t warm_cfs[2] = { RF_CF_VERSIONS, RF_CF_LISTS };

static void *warm_main(void *arg)
{
        warmer_t *w = arg;

        for (int i = 0; i < 2; i++)
                w->keys += rf_store_warm_run(w->w[i], &w->stop);
        return NULL;
}

/* Before the first record: the readers see the seeded store only. */
static void warm_start(warmer_t *w, rf_store_t *st)
{
        int64_t bytes = 0;

        memset(w, 0, sizeof(*w));
        atomic_init(&w->stop, 0);
        for (int i = 0; i < 2; i++) {
                int64_t b = rf_store_property_int(
                    st, warm_cfs[i], "rocksdb.total-sst-files-size");
                if (b < 0)
                        return;
                bytes += b;
        }
        if (!bytes || (uint64_t)bytes > rf_store_block_cache_capacity(st) / 4)
                return;
        for (int i = 0; i < 2; i++)
                w->w[i] = rf_store_warm_new(st, warm_cfs[i]);
        w->started = pthread_create(&w->th, NULL, warm_main, w) == 0;
}

/* Waits for the thread to finish (\p stop 0) or to stop. Before the store
 * closes. @returns the keys it read. */
static uint64_t warm_join(warmer_t *w, int stop)
{
        if (w->started) {
                if (stop)
                        atomic_store(&w->stop, 1);
                pthread_join(w->th, NULL);
                w->started = 0;
        }
        for (int i = 0; i < 2; i++) {
                rf_store_warm_destroy(w->w[i]);
                w->w[i] = NULL;
        }
        return w->keys;
}

int rf_replay_run(const rf_replay_set_t *set, const rf_replay_opts_t *opts,
                  rf_replay_stats_t *stats, rf_buf_t *lines, rf_buf_t *empty,
                  char *errstr, size_t errstr_size)
{
        uint64_t outbox_next = 0; /* first undrained outbox seq */
        uint64_t outbox_puts[RF_TOPIC__CNT] = { 0 }; /* counted so far */
        const rf_config_t *conf = opts->conf;
        rf_store_t *st = NULL;
        rf_outbox_t *ob = NULL;
        rf_fanout_t *fo = NULL;
        rf_tombset_t *ts = NULL;
        rf_queue_t *q = NULL;
        rf_apply_ctx_t ctx = { 0 };
        explain_t x = { 0 };
        rf_buf_t line = { 0 };
        warmer_t warm = { 0 };
        int *show = NULL, r, seeded = opts->checkpoint != NULL;
        int64_t now = 0;
        int64_t t0, t1 = 0;

        memset(stats, 0, sizeof(*stats));
        t0 = rf_mono_ns();
        r = rf_replay_prepare_target(
            opts->data_dir, opts->live_dir ? opts->live_dir : conf->data_dir,
            errstr, errstr_size);
        if (r)
                return r;
        if (seeded && (r = seed_copy(opts->checkpoint, opts->data_dir, errstr,
                                     errstr_size)))
                return r;
        /* A scratch store is made again on a rerun: no WAL to write. */
        rf_store_opts_t so = { .no_wal = 1 };
        st = rf_store_open(opts->data_dir, RF_STORE_PRIMARY, &so, errstr,
                           errstr_size);
        if (!st)
                return RF_ESTORE;
        if (!seeded &&
            (r = rf_store_set_salt(st, replay_salt, errstr, errstr_size)))
                goto out;
        /* As in the daemon: read checks look up only the set's members. */
        ts = rf_tombset_new();
        rf_store_set_tombset(st, ts); /* before its load, as the daemon */
        if ((r = rf_tombset_load(ts, st)) != 0) {
                snprintf(errstr, errstr_size, "%s: cannot read the tombstones",
                         opts->data_dir);
                goto out;
        }
        if ((r = rf_hide_summaries_build(st, errstr, errstr_size)) != 0)
                goto out;
        if (!(ob = rf_outbox_new(st, errstr, errstr_size)) ||
            !(fo = rf_fanout_new(st, errstr, errstr_size))) {
                r = RF_ESTORE;
                goto out;
        }
        rf_apply_ctx_init(&ctx, st, conf, ob, fo);
        q = rf_queue_new(st, conf, set->cnt ? set->recs[0].timestamp_ms : 0);
        ctx.queue = q;
        ctx.trace = trace_cb;
        ctx.trace_opaque = &x;
        x.ctx = &ctx;
        x.conf = conf;
        x.stats = stats;
        x.item = opts->item;

        warm_start(&warm, st);
        t1 = rf_mono_ns();
        stats->open_s = (double)(t1 - t0) / 1e9;
        for (size_t i = 0; i < set->cnt; i++) {
                const rf_record_t *rec = &set->recs[i];
                uint64_t emitted[RF_TOPIC__CNT] = { 0 };
                size_t scanned;
                ident_t id;

                if (seeded && rec->offset >= 0 && rec->topic >= 0 &&
                    rec->offset < seeded_next(st, rec)) {
                        stats->seeded++;
                        continue;
                }
                if (rec->timestamp_ms >= 0)
                        now = rec->timestamp_ms;
                ctx.now_ms = now;
                explain_reset(&x);
                r = rf_apply_record(&ctx, rec);
                if (r == 0)
                        rf_apply_offsets_put(&ctx);
                while (r == 0 && rf_fanout_pending(fo))
                        r = rf_fanout_step(&ctx, (size_t)conf->fanout_chunk,
                                           &scanned);
                /* Explain from the batch, before the commit: a purged
                 * list can still be told apart from a live one. */
                if (r == 0)
                        r = rf_txn_commit(ctx.txn, errstr, errstr_size);
                else
                        snprintf(errstr, errstr_size, "record %zu: %s", i,
                                 rf_err2str(r));
                if (r)
                        goto out;
                rf_outbox_committed(ob);
                rf_queue_committed(q);
                emitted[RF_TOPIC_RECOMPUTE] += send_due(q, now);
                for (int t = 0; t < RF_TOPIC__CNT; t++) {
                        uint64_t n = rf_outbox_puts(ob, t);
                        emitted[t] += n - outbox_puts[t];
                        outbox_puts[t] = n;
                }
                /* Deleted in bulk: one more commit per record made the
                 * drain a third of replay's time. */
                if ((i + 1) % REPLAY_DRAIN_EVERY == 0 &&
                    (r = drain_outbox(st, &outbox_next, errstr, errstr_size)))
                        goto out;
                for (int t = 0; t < RF_TOPIC__CNT; t++)
                        stats->emitted[t] += emitted[t];
                stats->records++;

                ident_of(rec, &id);
                if (rec->topic == RF_TOPIC_LISTS && json_is_object(id.js)) {
                        json_t *s = json_object_get(id.js, "subject_id");
                        json_t *f = json_object_get(id.js, "surface");
                        json_t *c = json_object_get(id.js, "context_key");
                        const char *cs =
                            json_is_string(c) ? json_string_value(c) : "";
                        snprintf(x.listkey, sizeof(x.listkey), "%s/%s%s%s",
                                 json_is_string(s) ? json_string_value(s) : "?",
                                 json_is_string(f) ? json_string_value(f) : "?",
                                 *cs ? "/" : "", cs);
                }
                show = rf_realloc(show, (x.aff_cnt + 1) * sizeof(*show));
                if (lines)
                        text_line(lines, i + 1, rec, &id, &x, NULL, emitted);
                if (opts->out && passes(opts, &x, &id, rec, show)) {
                        rf_buf_reset(&line);
                        if (opts->json)
                                json_line(&line, i + 1, rec, &id, &x, show,
                                          emitted);
                        else
                                text_line(&line, i + 1, rec, &id, &x, show,
                                          emitted);
                        fwrite(line.data, 1, line.len, opts->out);
                }
                json_decref(id.js);
        }
        if ((r = drain_outbox(st, &outbox_next, errstr, errstr_size)))
                goto out;
        t0 = rf_mono_ns();
        stats->records_s = (double)(t0 - t1) / 1e9;
        stats->keys_warmed = warm_join(&warm, 0);
        stats->end_ms = now;
        /* Requests still coalescing at the end would leave later: count
         * them as the daemon would send them, a day on. */
        stats->emitted[RF_TOPIC_RECOMPUTE] += send_due(q, now + 86400000);
        served_empty(st, conf, now, stats, empty);
        /* No WAL: the writes are kept once flushed, not before. */
        if ((r = rf_store_flush(st, errstr, errstr_size)) != 0)
                goto out;
        stats->end_s = (double)(rf_mono_ns() - t0) / 1e9;
        r = 0;
out:
        warm_join(&warm, 1);
        if (ctx.txn)
                rf_apply_ctx_clear(&ctx);
        rf_queue_destroy(q);
        rf_fanout_destroy(fo);
        rf_outbox_destroy(ob);
        rf_store_close(st);
        if (r == 0) {
                /* Flushed and closed: the store is whole. */
                char mark[PATH_MAX];
                snprintf(mark, sizeof(mark), "%s/" RF_STORE_INCOMPLETE,
                         opts->data_dir);
                unlink(mark);
        }
        rf_tombset_destroy(ts);
        free(x.aff);
        rf_buf_free(&x.list);
        free(show);
        rf_buf_free(&line);
        return r;
}

void rf_replay_stats_print(const rf_replay_stats_t *s, FILE *fp)
{
        fprintf(fp, "records_applied %llu\n", (unsigned long long)s->records);
        if (s->seeded)
                fprintf(fp, "records_in_checkpoint %llu\n",
                        (unsigned long long)s->seeded);
        fprintf(fp, "tombstones_changed %llu\n",
                (unsigned long long)s->changed);
        fprintf(fp, "events_stale %llu\n", (unsigned long long)s->stale);
        fprintf(fp, "lists_stored %llu\n", (unsigned long long)s->lists_stored);
        fprintf(fp, "lists_stale %llu\n", (unsigned long long)s->lists_stale);
        fprintf(fp, "lists_blocked %llu\n",
                (unsigned long long)s->lists_blocked);
        fprintf(fp, "records_rejected %llu\n", (unsigned long long)s->rejected);
        fprintf(fp, "lists_affected %llu\n",
                (unsigned long long)s->lists_affected);
        fprintf(fp, "entries_tombstoned %llu\n",
                (unsigned long long)s->entries_tombstoned);
        fprintf(fp, "entries_restored %llu\n",
                (unsigned long long)s->entries_restored);
        fprintf(fp, "recompute_enqueued %llu\n",
                (unsigned long long)s->recompute_enqueued);
        fprintf(fp, "recompute_coalesced %llu\n",
                (unsigned long long)s->recompute_coalesced);
        for (int t = 0; t < RF_TOPIC__CNT; t++)
                if (strcmp(rf_topic(t)->direction, "input"))
                        fprintf(fp, "emitted{%s} %llu\n", rf_topic(t)->name,
                                (unsigned long long)s->emitted[t]);
        fprintf(fp, "lists_total %llu\n", (unsigned long long)s->lists_total);
        fprintf(fp, "lists_served_empty %llu\n",
                (unsigned long long)s->lists_served_empty);
}
