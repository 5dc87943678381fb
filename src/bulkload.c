/*
 * recfresh - the bulk loader (see bulkload.h): line reader (plain or zstd),
 * a bounded-memory external sorter, and the three passes:
 *
 *   1. parse lines on load.threads workers, key each by its list key and
 *      feed the list sorter in file order;
 *   2. merge the list sorter: drop older duplicates, measure each list for
 *      validation, write the version SST files (run id, NUL, list key),
 *      feed the index sorters (one per kind);
 *   3. merge each kind's index sorter into its SST files, side by side.
 *
 * The sorting is extsort.c's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <jansson.h>
#include <unistd.h>
#include <zstd.h>

#include "recfresh/bulkload.h"
#include "recfresh/extsort.h"
#include "recfresh/keys.h"
#include "recfresh/list.h"
#include "recfresh/log.h"
#include "recfresh/tombstone.h"

#define SST_MAX_BYTES ((size_t)256 << 20)
#define READ_CHUNK    (128 * 1024)
#define REPORT_MAX    100 /* malformed lines reported; the rest counted */

/* The reverse index's kinds, in key order; each has its own sorter and its
 * own SST files (index-c-*, index-i-*, index-k-*), so the three merges run
 * side by side and their files never overlap. */
#define IDX_KINDS 3
static const char idx_kinds[IDX_KINDS] = { RF_IDX_CREATOR, RF_IDX_ITEM,
                                           RF_IDX_CAMPAIGN };
static const char *const idx_run_tags[IDX_KINDS] = { "xrun-c", "xrun-i",
                                                     "xrun-k" };
static const char *const idx_sst_tags[IDX_KINDS] = { "index-c", "index-i",
                                                     "index-k" };

/* ---- line reader --------------------------------------------------------*/

typedef struct reader {
        FILE *fp;
        ZSTD_DStream *zs; /* NULL: plain text */
        char in[READ_CHUNK];
        ZSTD_inBuffer zin;
        char out[READ_CHUNK];
        size_t pos, len; /* unread bytes of out */
        size_t hint;     /* zstd: 0 once a frame is complete */
        int zeof;        /* zstd: the compressed input has ended */
        int eof, err;    /* err: 1 read error, 2 corrupt, 3 truncated */
} reader_t;

static int reader_open(reader_t *r, const char *path, char *errstr,
                       size_t errstr_size)
{
        unsigned char magic[4];
        size_t n;

        memset(r, 0, sizeof(*r));
        if (!(r->fp = fopen(path, "rb"))) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return RF_EIO;
        }
        /* The magic bytes read stay the input's first ones, not read
         * again: a pipe (zstdcat day.ndjson.zst | recfresh load ...
         * /dev/stdin) cannot go back. */
        n = fread(magic, 1, 4, r->fp);
        if (n == 4 && magic[0] == 0x28 && magic[1] == 0xb5 &&
            magic[2] == 0x2f && magic[3] == 0xfd) {
                r->zs = ZSTD_createDStream();
                ZSTD_initDStream(r->zs);
                r->hint = 1; /* the frame has only begun */
                memcpy(r->in, magic, n);
                r->zin = (ZSTD_inBuffer){ r->in, n, 0 };
        } else {
                memcpy(r->out, magic, n);
                r->len = n;
        }
        return 0;
}

static void reader_close(reader_t *r)
{
        if (r->zs)
                ZSTD_freeDStream(r->zs);
        if (r->fp)
                fclose(r->fp);
}

/* Refills r->out. @returns bytes available (0 at the end or on error). */
static size_t reader_fill(reader_t *r)
{
        r->pos = r->len = 0;
        if (!r->zs) {
                r->len = fread(r->out, 1, sizeof(r->out), r->fp);
                if (!r->len && ferror(r->fp))
                        r->err = 1;
                return r->len;
        }
        while (!r->len) {
                if (r->zin.pos == r->zin.size && !r->zeof) {
                        size_t n = fread(r->in, 1, sizeof(r->in), r->fp);
                        if (!n && ferror(r->fp)) {
                                r->err = 1;
                                return 0;
                        }
                        r->zeof = !n;
                        r->zin = (ZSTD_inBuffer){ r->in, n, 0 };
                }
                /* The input ended where a frame ended: the whole file. */
                if (r->zeof && !r->hint)
                        return 0;
                ZSTD_outBuffer zout = { r->out, sizeof(r->out), 0 };
                size_t rc = ZSTD_decompressStream(r->zs, &zout, &r->zin);
                if (ZSTD_isError(rc)) {
                        r->err = 2;
                        return 0;
                }
                r->hint = rc;
                r->len = zout.pos;
                /* At the end of the input the decoder may still hold
                 * output (it stopped on a full buffer); once it has none
                 * left, a frame not complete is a file cut short. */
                if (r->zeof && !r->len && r->hint) {
                        r->err = 3;
                        return 0;
                }
        }
        return r->len;
}

/* Reads one line (without '\n') into \p line, keeping at most \p max bytes;
 * *too_long is set if it had more. @returns 0, or 1 at the end. */
static int reader_line(reader_t *r, rf_buf_t *line, size_t max, int *too_long)
{
        int any = 0;

        rf_buf_reset(line);
        *too_long = 0;
        for (;;) {
                if (r->pos == r->len && !reader_fill(r))
                        return any ? 0 : 1;
                any = 1;
                char *s = r->out + r->pos;
                char *nl = memchr(s, '\n', r->len - r->pos);
                size_t n = nl ? (size_t)(nl - s) : r->len - r->pos;
                size_t room = max > line->len ? max - line->len : 0;
                if (n > room)
                        *too_long = 1;
                rf_buf_append(line, s, n < room ? n : room);
                r->pos += n + (nl ? 1 : 0);
                if (nl)
                        return 0;
        }
}

/* ---- SST output ---------------------------------------------------------*/

typedef struct sstout {
        rf_store_t *st;
        rf_cf_t cf;
        const char *dir, *tag;
        size_t max;
        rf_sst_t *cur;
        size_t files;
} sstout_t;

static int sstout_close(sstout_t *o, char *errstr, size_t errstr_size)
{
        int rc = 0;

        if (o->cur) {
                rc = rf_sst_finish(o->cur, errstr, errstr_size);
                rf_sst_destroy(o->cur);
                o->cur = NULL;
                if (rc == RF_ENOENT)
                        rc = 0;
        }
        return rc;
}

static int sstout_put(sstout_t *o, const char *k, size_t kl, const char *v,
                      size_t vl, char *errstr, size_t errstr_size)
{
        int rc;

        if (o->cur && rf_sst_size(o->cur) >= o->max &&
            (rc = sstout_close(o, errstr, errstr_size)))
                return rc;
        if (!o->cur) {
                rf_buf_t p = { 0 };
                rf_buf_printf(&p, "%s/%s-%06zu.sst", o->dir, o->tag,
                              o->files++);
                o->cur = rf_sst_new(o->st, o->cf, p.data, errstr, errstr_size);
                rf_buf_free(&p);
                if (!o->cur)
                        return RF_ESTORE;
        }
        return rf_sst_put(o->cur, k, kl, v, vl, errstr, errstr_size);
}

/* ---- the passes ---------------------------------------------------------*/

typedef struct load {
        rf_store_t *st;
        const rf_config_t *conf;
        const rf_bulkload_opts_t *o;
        const char *input;
        rf_run_info_t *ri;
        rf_sorter_t *lists;
        rf_sorter_t *index[IDX_KINDS]; /* one per kind: merged side by side */
        int64_t newest;                /* generated_at of the newest list */
        size_t reported;
        /* last subject seen per surface, for distinct subject counts */
        char **last_surface, **last_subject;
        size_t last_cnt;
} load_t;

static void report(load_t *ld, uint64_t lineno, const char *reason,
                   const char *msg)
{
        ld->ri->malformed++;
        if (ld->o->report && ld->reported++ < REPORT_MAX)
                fprintf(ld->o->report, "%s:%llu: %s: %s\n", ld->input,
                        (unsigned long long)lineno, reason, msg);
}

/* ---- pass 1: parse, in parallel -----------------------------------------*/

/* The JSON parse is most of a load's CPU. The reading thread cuts the input
 * into batches of lines; worker threads turn each line into its list key
 * and encoded list, or a rejection; the reading thread takes the batches
 * back in input order, so the sorter, the report and the counts see
 * exactly what one thread would give them. Memory is bounded by the batches
 * in flight (a few per worker), not by the file. */

#define BATCH_LINES 256
#define BATCH_BYTES ((size_t)1 << 20) /* at most; see pipe_start() */
#define MAX_WORKERS 64

typedef enum { LINE_OK, LINE_BLANK, LINE_BAD } line_kind_t;

typedef struct pline {
        size_t off, len; /* of the line in batch->text */
        int too_long;
        line_kind_t kind;
        const char *reason; /* LINE_BAD: rf_reject2str() code */
        size_t out;         /* in batch->out: LINE_OK: key, list, subject;
                             * LINE_BAD: the message (NUL-terminated) */
        size_t klen, vlen;
        int64_t generated_at;
} pline_t;

typedef enum { B_FREE, B_QUEUED, B_BUSY, B_DONE } bstate_t;

typedef struct pbatch {
        uint64_t lineno; /* of its first line, 1-based */
        rf_buf_t text, out;
        pline_t *lines;
        size_t n, cap;
        bstate_t state;
} pbatch_t;

typedef struct parsepipe {
        pthread_mutex_t lock;
        pthread_cond_t cond; /* a batch changed state, or stop */
        pbatch_t *b;
        size_t nb;
        uint64_t taken; /* batches workers have taken, in order */
        int stop;
        const char *run_id;
        rf_limits_t lim;
        pthread_t th[MAX_WORKERS];
        size_t workers;
        size_t batch_bytes; /* a batch's text, from the memory budget */
} parsepipe_t;

static void line_bad(pbatch_t *b, pline_t *pl, const char *reason,
                     const char *msg)
{
        pl->kind = LINE_BAD;
        pl->reason = reason;
        pl->out = b->out.len;
        rf_buf_append(&b->out, msg, strlen(msg) + 1);
}

static int is_blank(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (!strchr(" \t\r", s[i]))
                        return 0;
        return 1;
}

/* One line: what pass 1 did with it before the load went parallel. */
static void parse_line(const parsepipe_t *pp, pbatch_t *b, pline_t *pl)
{
        const char *s = b->text.data + pl->off;
        rf_buf_t lk = { 0 };
        rf_rejection_t rej;
        rf_list_t *l = NULL;
        char msg[300];

        if (is_blank(s, pl->len) && !pl->too_long) {
                pl->kind = LINE_BLANK;
                return;
        }
        if (pl->too_long) {
                snprintf(msg, sizeof(msg),
                         "line over limits.max_record_bytes (%zu)",
                         pp->lim.max_record_bytes);
                line_bad(b, pl, "too_large", msg);
                return;
        }
        if (rf_list_from_json(NULL, 0, s, pl->len, &pp->lim, &l, &rej) != 0) {
                line_bad(b, pl, rf_reject2str(rej.reason), rej.msg);
                return;
        }
        if (*l->run_id && strcmp(l->run_id, pp->run_id) != 0) {
                snprintf(msg, sizeof(msg),
                         "field \"run_id\": not the run being loaded (%.200s)",
                         pp->run_id);
                line_bad(b, pl, "bad_value", msg);
                rf_list_destroy(l);
                return;
        }
        /* Sorted by list key alone: every version key starts with the same
         * run id, which emit_list() puts in front. */
        l->run_id = pp->run_id;
        rf_key_list_stored(&lk, l->subject_id, l->surface, l->context_key,
                           l->region);
        pl->kind = LINE_OK;
        pl->out = b->out.len;
        pl->klen = lk.len;
        pl->generated_at = l->generated_at;
        rf_buf_append(&b->out, lk.data, lk.len);
        size_t before = b->out.len;
        rf_list_encode(l, &b->out);
        pl->vlen = b->out.len - before;
        rf_buf_append(&b->out, l->subject_id, strlen(l->subject_id) + 1);
        rf_list_destroy(l);
        rf_buf_free(&lk);
}

static void parse_batch(const parsepipe_t *pp, pbatch_t *b)
{
        rf_buf_reset(&b->out);
        for (size_t i = 0; i < b->n; i++)
                parse_line(pp, b, &b->lines[i]);
}

static void *parse_worker(void *arg)
{
        parsepipe_t *pp = arg;

        pthread_mutex_lock(&pp->lock);
        for (;;) {
                pbatch_t *b = &pp->b[pp->taken % pp->nb];
                if (pp->stop)
                        break;
                if (b->state != B_QUEUED) {
                        pthread_cond_wait(&pp->cond, &pp->lock);
                        continue;
                }
                b->state = B_BUSY;
                pp->taken++;
                pthread_mutex_unlock(&pp->lock);
                parse_batch(pp, b);
                pthread_mutex_lock(&pp->lock);
                b->state = B_DONE;
                pthread_cond_broadcast(&pp->cond);
        }
        pthread_mutex_unlock(&pp->lock);
        return NULL;
}

static size_t load_threads(const rf_config_t *conf)
{
        long n = conf->load_threads;

        if (n <= 0)
                n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n < 1)
                n = 1;
        return n > MAX_WORKERS ? MAX_WORKERS : (size_t)n;
}

static void pipe_start(parsepipe_t *pp, const load_t *ld)
{
        memset(pp, 0, sizeof(*pp));
        pthread_mutex_init(&pp->lock, NULL);
        pthread_cond_init(&pp->cond, NULL);
        pp->run_id = ld->o->run_id;
        pp->lim = rf_config_limits(ld->conf);
        pp->workers = load_threads(ld->conf);
        pp->nb = 2 * pp->workers + 2;
        /* Batches in flight hold their text and about as much output:
         * together at most a quarter of load.memory_mb, plus the line
         * that ends each batch (at most limits.max_record_bytes). */
        pp->batch_bytes =
            ((size_t)ld->conf->load_memory_mb << 20) / (8 * pp->nb);
        if (pp->batch_bytes > BATCH_BYTES)
                pp->batch_bytes = BATCH_BYTES;
        pp->b = rf_calloc(pp->nb, sizeof(*pp->b));
        json_object_seed(0); /* before threads create objects (jansson) */
        for (size_t i = 0; i < pp->workers; i++)
                if (pthread_create(&pp->th[i], NULL, parse_worker, pp) != 0) {
                        /* Fewer workers; none: the reader parses. */
                        pp->workers = i;
                        break;
                }
}

static void pipe_stop(parsepipe_t *pp)
{
        pthread_mutex_lock(&pp->lock);
        pp->stop = 1;
        pthread_cond_broadcast(&pp->cond);
        pthread_mutex_unlock(&pp->lock);
        for (size_t i = 0; i < pp->workers; i++)
                pthread_join(pp->th[i], NULL);
        for (size_t i = 0; i < pp->nb; i++) {
                rf_buf_free(&pp->b[i].text);
                rf_buf_free(&pp->b[i].out);
                free(pp->b[i].lines);
        }
        free(pp->b);
        pthread_cond_destroy(&pp->cond);
        pthread_mutex_destroy(&pp->lock);
}

/* Fills \p b with the next lines. @returns 1 at the end of the input. */
static int batch_fill(reader_t *rd, size_t max, size_t bytes, pbatch_t *b,
                      uint64_t *lineno, rf_buf_t *line)
{
        int too_long, eof = 0;

        rf_buf_reset(&b->text);
        b->n = 0;
        b->lineno = *lineno + 1;
        while (b->n < BATCH_LINES && b->text.len < bytes) {
                if (reader_line(rd, line, max, &too_long) != 0) {
                        eof = 1;
                        break;
                }
                if (b->n == b->cap) {
                        b->cap = b->cap ? b->cap * 2 : 64;
                        b->lines =
                            rf_realloc(b->lines, b->cap * sizeof(*b->lines));
                }
                b->lines[b->n++] = (pline_t){ .off = b->text.len,
                                              .len = line->len,
                                              .too_long = too_long };
                rf_buf_append(&b->text, line->data, line->len);
                (*lineno)++;
        }
        return eof;
}

/* Takes a parsed batch in: reports, consent, the list sorter. */
static int batch_apply(load_t *ld, const pbatch_t *b, char *errstr,
                       size_t errstr_size)
{
        int rc = 0;

        for (size_t i = 0; i < b->n && rc == 0; i++) {
                const pline_t *pl = &b->lines[i];
                const char *o = b->out.data + pl->out;

                if (pl->kind == LINE_BLANK)
                        continue;
                if (pl->kind == LINE_BAD) {
                        report(ld, b->lineno + i, pl->reason, o);
                        continue;
                }
                const char *subject = o + pl->klen + pl->vlen;
                int purged = strcmp(subject, RF_FALLBACK_SUBJECT) != 0
                                 ? rf_consent_purged(ld->st, NULL, subject)
                                 : 0;
                if (purged < 0) {
                        snprintf(errstr, errstr_size,
                                 "%s: consent of a subject: store read "
                                 "error",
                                 ld->input);
                        return RF_ESTORE;
                }
                if (purged) {
                        ld->ri->blocked++;
                        continue;
                }
                if (pl->generated_at > ld->newest)
                        ld->newest = pl->generated_at;
                rc = rf_sorter_add(ld->lists, o, pl->klen, o + pl->klen,
                                   pl->vlen, errstr, errstr_size);
        }
        return rc;
}

static int pass_parse(load_t *ld, char *errstr, size_t errstr_size)
{
        rf_limits_t lim = rf_config_limits(ld->conf);
        rf_buf_t line = { 0 };
        uint64_t lineno = 0, queued = 0, applied = 0;
        parsepipe_t pp;
        reader_t rd;
        int eof = 0, rc;

        if ((rc = reader_open(&rd, ld->input, errstr, errstr_size)))
                return rc;
        pipe_start(&pp, ld);
        while (rc == 0) {
                if (!eof && queued - applied < pp.nb) {
                        pbatch_t *b = &pp.b[queued % pp.nb];
                        eof = batch_fill(&rd, lim.max_record_bytes + 1,
                                         pp.batch_bytes, b, &lineno, &line);
                        if (!b->n)
                                continue;
                        pthread_mutex_lock(&pp.lock);
                        b->state = B_QUEUED;
                        pthread_cond_broadcast(&pp.cond);
                        pthread_mutex_unlock(&pp.lock);
                        queued++;
                        continue;
                }
                if (applied == queued)
                        break;
                pbatch_t *b = &pp.b[applied % pp.nb];
                pthread_mutex_lock(&pp.lock);
                if (!pp.workers && b->state == B_QUEUED) {
                        b->state = B_BUSY;
                        pp.taken++;
                        pthread_mutex_unlock(&pp.lock);
                        parse_batch(&pp, b);
                        pthread_mutex_lock(&pp.lock);
                        b->state = B_DONE;
                }
                while (b->state != B_DONE)
                        pthread_cond_wait(&pp.cond, &pp.lock);
                pthread_mutex_unlock(&pp.lock);
                rc = batch_apply(ld, b, errstr, errstr_size);
                /* A batch that took a long line gives the memory back. */
                if (b->text.size > 2 * pp.batch_bytes)
                        rf_buf_free(&b->text);
                if (b->out.size > 2 * pp.batch_bytes)
                        rf_buf_free(&b->out);
                pthread_mutex_lock(&pp.lock);
                b->state = B_FREE;
                pthread_mutex_unlock(&pp.lock);
                applied++;
        }
        pipe_stop(&pp);
        if (rc == 0 && rd.err) {
                snprintf(errstr, errstr_size, "%s: %s", ld->input,
                         rd.err == 3   ? "truncated zstd frame"
                         : rd.err == 2 ? "corrupt zstd stream"
                                       : "read error");
                rc = RF_EIO;
        }
        reader_close(&rd);
        rf_buf_free(&line);
        return rc;
}

/* @returns 1 if \p subject is new for \p surface (input is sorted by
 * subject, so a subject's lists are contiguous). */
static int new_subject(load_t *ld, const char *surface, const char *subject)
{
        for (size_t i = 0; i < ld->last_cnt; i++) {
                if (strcmp(ld->last_surface[i], surface))
                        continue;
                if (!strcmp(ld->last_subject[i], subject))
                        return 0;
                free(ld->last_subject[i]);
                ld->last_subject[i] = rf_strdup(subject);
                return 1;
        }
        ld->last_surface =
            rf_realloc(ld->last_surface, (ld->last_cnt + 1) * sizeof(char *));
        ld->last_subject =
            rf_realloc(ld->last_subject, (ld->last_cnt + 1) * sizeof(char *));
        ld->last_surface[ld->last_cnt] = rf_strdup(surface);
        ld->last_subject[ld->last_cnt++] = rf_strdup(subject);
        return 1;
}

/* Writes one winning list (\p k its list key): version SST, measures,
 * index entries. */
static int emit_list(load_t *ld, sstout_t *out, const rf_buf_t *k,
                     const rf_buf_t *v, char *errstr, size_t errstr_size)
{
        size_t rlen = strlen(ld->o->run_id) + 1;
        rf_buf_t ik = { 0 }, iv = { 0 }, lk = { 0 };
        rf_checker_t ck;
        rf_list_t *l;
        int rc;

        if (rf_list_decode(v->data, v->len, &l) != 0)
                return 0; /* we encoded it: cannot happen */
        /* The version key: run id, NUL, list key (runs.c). */
        rf_buf_append(&lk, ld->o->run_id, rlen);
        rf_buf_append(&lk, k->data, k->len);
        if ((rc = sstout_put(out, lk.data, lk.len, v->data, v->len, errstr,
                             errstr_size)))
                goto out;
        rf_checker_init(&ck, ld->st, NULL, l->subject_id, l->region);
        rf_run_info_count(ld->ri, ld->conf, l,
                          new_subject(ld, l->surface, l->subject_id), &ck);
        rf_checker_clear(&ck);

        /* The index value's list reference: list key, NUL, run id. */
        rf_buf_reset(&lk);
        rf_buf_append(&lk, k->data, k->len);
        rf_buf_append(&lk, "", 1);
        rf_buf_append(&lk, ld->o->run_id, rlen - 1);
        rf_buf_put_str(&iv, l->region);
        rf_buf_put_str(&iv, l->list_id);
        for (size_t i = 0; i < l->item_cnt && rc == 0; i++) {
                const rf_entry_t *e = &l->items[i];
                const char *ids[IDX_KINDS] = { e->creator_id, e->item_id,
                                               e->campaign_id };
                for (int j = 0; j < IDX_KINDS && rc == 0; j++) {
                        if (!*ids[j])
                                continue;
                        rf_buf_reset(&ik);
                        rf_key_index(&ik, idx_kinds[j], ids[j], lk.data,
                                     lk.len);
                        rc =
                            rf_sorter_add(ld->index[j], ik.data, ik.len,
                                          iv.data, iv.len, errstr, errstr_size);
                }
        }
out:
        rf_list_destroy(l);
        rf_buf_free(&ik);
        rf_buf_free(&iv);
        rf_buf_free(&lk);
        return rc;
}

/* @returns 1 if encoded list \p a is newer than \p b. */
static int enc_newer(const rf_buf_t *a, const rf_buf_t *b)
{
        rf_list_t *x = NULL, *y = NULL;
        int newer = 0;

        if (rf_list_decode_header(a->data, a->len, &x) == 0 &&
            rf_list_decode_header(b->data, b->len, &y) == 0)
                newer = x->generated_at > y->generated_at ||
                        (x->generated_at == y->generated_at &&
                         strcmp(x->list_id, y->list_id) > 0);
        rf_list_destroy(x);
        rf_list_destroy(y);
        return newer;
}

static int pass_lists(load_t *ld, const char *job_dir, char *errstr,
                      size_t errstr_size)
{
        sstout_t out = { ld->st,
                         RF_CF_VERSIONS,
                         job_dir,
                         "versions",
                         ld->o->sst_max_bytes ? ld->o->sst_max_bytes
                                              : SST_MAX_BYTES,
                         NULL,
                         0 };
        rf_buf_t pk = { 0 }, pv = { 0 };
        const rf_buf_t *k, *v;
        rf_merger_t *mg = NULL;
        int have = 0, rc, m = 0;

        if ((rc = rf_merger_open(ld->lists, &mg, errstr, errstr_size)))
                goto out;
        while (rc == 0 &&
               (m = rf_merger_next(mg, &k, &v, errstr, errstr_size)) == 1) {
                if (have && !rf_sort_keycmp(pk.data, pk.len, k->data, k->len)) {
                        /* The same list key twice: the newer one wins. */
                        if (enc_newer(v, &pv)) {
                                rf_buf_reset(&pv);
                                rf_buf_append(&pv, v->data, v->len);
                        }
                } else {
                        if (have)
                                rc = emit_list(ld, &out, &pk, &pv, errstr,
                                               errstr_size);
                        rf_buf_reset(&pk);
                        rf_buf_reset(&pv);
                        rf_buf_append(&pk, k->data, k->len);
                        rf_buf_append(&pv, v->data, v->len);
                        have = 1;
                }
        }
        if (rc == 0 && m < 0)
                rc = m;
        if (rc == 0 && have)
                rc = emit_list(ld, &out, &pk, &pv, errstr, errstr_size);
        if (rc == 0)
                rc = sstout_close(&out, errstr, errstr_size);
out:
        if (out.cur)
                rf_sst_destroy(out.cur);
        rf_merger_close(mg);
        rf_sorter_destroy(ld->lists);
        ld->lists = NULL;
        rf_buf_free(&pk);
        rf_buf_free(&pv);
        return rc;
}

/* Pass 3 for one kind of the index: merges its sorter's runs into its
 * SST files. */
typedef struct idxpass {
        load_t *ld;
        const char *job_dir;
        int kind; /* index into idx_kinds */
        int rc;
        char err[512];
} idxpass_t;

static void *pass_index_kind(void *arg)
{
        idxpass_t *ip = arg;
        load_t *ld = ip->ld;
        rf_sorter_t *s = ld->index[ip->kind];
        sstout_t out = { ld->st,
                         RF_CF_INDEX,
                         ip->job_dir,
                         idx_sst_tags[ip->kind],
                         ld->o->sst_max_bytes ? ld->o->sst_max_bytes
                                              : SST_MAX_BYTES,
                         NULL,
                         0 };
        rf_buf_t last = { 0 };
        const rf_buf_t *k, *v;
        rf_merger_t *mg = NULL;
        int have = 0, rc, m = 0;

        if ((rc = rf_merger_open(s, &mg, ip->err, sizeof(ip->err))))
                goto out;
        while (rc == 0 && (m = rf_merger_next(mg, &k, &v, ip->err,
                                              sizeof(ip->err))) == 1) {
                /* An item twice in one list gives one index key twice. */
                if (!have ||
                    rf_sort_keycmp(last.data, last.len, k->data, k->len)) {
                        rc = sstout_put(&out, k->data, k->len, v->data, v->len,
                                        ip->err, sizeof(ip->err));
                        rf_buf_reset(&last);
                        rf_buf_append(&last, k->data, k->len);
                        have = 1;
                }
        }
        if (rc == 0 && m < 0)
                rc = m;
        if (rc == 0)
                rc = sstout_close(&out, ip->err, sizeof(ip->err));
out:
        if (out.cur)
                rf_sst_destroy(out.cur);
        rf_merger_close(mg);
        rf_sorter_destroy(s);
        ld->index[ip->kind] = NULL;
        rf_buf_free(&last);
        ip->rc = rc;
        return NULL;
}

/* Pass 3: the kinds' merges, each on its own thread. */
static int pass_index(load_t *ld, const char *job_dir, char *errstr,
                      size_t errstr_size)
{
        idxpass_t ip[IDX_KINDS];
        pthread_t th[IDX_KINDS];
        int started[IDX_KINDS] = { 0 };

        for (int k = 0; k < IDX_KINDS; k++) {
                ip[k] = (idxpass_t){ .ld = ld, .job_dir = job_dir, .kind = k };
                started[k] =
                    pthread_create(&th[k], NULL, pass_index_kind, &ip[k]) == 0;
                if (!started[k])
                        pass_index_kind(&ip[k]); /* no thread: here */
        }
        for (int k = 0; k < IDX_KINDS; k++)
                if (started[k])
                        pthread_join(th[k], NULL);
        for (int k = 0; k < IDX_KINDS; k++)
                if (ip[k].rc) {
                        snprintf(errstr, errstr_size, "%s", ip[k].err);
                        return ip[k].rc;
                }
        return 0;
}

/* Writes \p len bytes of \p data as file \p name of the job. */
static int write_job_file(const char *job_dir, const char *name,
                          const char *data, size_t len, char *errstr,
                          size_t errstr_size)
{
        rf_buf_t p = { 0 };
        FILE *fp;
        int rc = 0;

        rf_buf_printf(&p, "%s/%s", job_dir, name);
        int ok = (fp = fopen(p.data, "wb")) != NULL;
        if (ok && fwrite(data, 1, len, fp) != len)
                ok = 0;
        if (fp && fclose(fp) != 0)
                ok = 0;
        if (!ok) {
                snprintf(errstr, errstr_size, "%s: %s", p.data,
                         strerror(errno));
                rc = RF_EIO;
        }
        rf_buf_free(&p);
        return rc;
}

/* The merges read every run file of a sorter at once, and the three index
 * merges run side by side: a load of millions of lists opens thousands of
 * files, past the usual soft limit of 1024. Raised to the hard limit (a
 * process may), as servers that hold many files do. */
static void raise_nofile(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rlim_t was = rl.rlim_cur;
                /* Linux refuses more than fs.nr_open (2^20 by default),
                 * which an unlimited hard limit would ask for. */
                rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20
                                                           : rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
                        rf_log_debug("load", "open files limit %llu -> %llu",
                                     (unsigned long long)was,
                                     (unsigned long long)rl.rlim_cur);
        }
}

int rf_bulkload_build(rf_store_t *st, const rf_config_t *conf,
                      const rf_bulkload_opts_t *o, const char *input,
                      const char *job_dir, rf_run_info_t *ri, char *errstr,
                      size_t errstr_size)
{
        size_t budget = (size_t)conf->load_memory_mb << 20;
        load_t ld = {
                .st = st, .conf = conf, .o = o, .input = input, .ri = ri
        };
        rf_buf_t enc = { 0 }, mark_text = { 0 };
        uint64_t mark;
        int rc;

        memset(ri, 0, sizeof(*ri));
        /* The consent revocations this build sees, taken before the first
         * check: those taken later are the daemon's to drop when it takes
         * the job (runs.h). */
        if (rf_consent_revoked_mark(st, NULL, &mark)) {
                snprintf(errstr, errstr_size, "cannot read consent state");
                return RF_ESTORE;
        }
        raise_nofile();
        ri->run_id = rf_strdup(o->run_id);
        ri->source = rf_strdup("load");
        ri->expected_lists = o->expected_lists;
        ri->state = RF_RUN_COMPLETED;
        ri->kept = 1;
        if (o->surface_cnt) {
                ri->surfaces = rf_calloc(o->surface_cnt + 1, sizeof(char *));
                for (size_t i = 0; i < o->surface_cnt; i++)
                        ri->surfaces[i] = rf_strdup(o->surfaces[i]);
                ri->surface_cnt = o->surface_cnt;
        }
        /* The list sorter's buffers are gone before the index sorters
         * fill theirs (the list merge needs little): each side gets the
         * budget, the index's split between its kinds, the lists' less
         * the quarter the parse batches in flight take (pipe_start). */
        ld.lists = rf_sorter_new(job_dir, "lists", budget - budget / 4);
        for (int k = 0; k < IDX_KINDS; k++)
                ld.index[k] =
                    rf_sorter_new(job_dir, idx_run_tags[k], budget / IDX_KINDS);

        int64_t t0 = rf_mono_ms(), t1 = t0, t2 = t0;
        rc = pass_parse(&ld, errstr, errstr_size);
        if (rc == 0) {
                t1 = rf_mono_ms();
                rc = pass_lists(&ld, job_dir, errstr, errstr_size);
        }
        if (rc == 0) {
                t2 = rf_mono_ms();
                rc = pass_index(&ld, job_dir, errstr, errstr_size);
        }
        if (rc == 0)
                rf_log_info("load",
                            "run %s built: parse %.3f s, lists %.3f s, "
                            "index %.3f s",
                            o->run_id, (double)(t1 - t0) / 1e3,
                            (double)(t2 - t1) / 1e3,
                            (double)(rf_mono_ms() - t2) / 1e3);
        ri->generated_at = o->generated_at ? o->generated_at : ld.newest;
        if (rc == 0) {
                rf_run_info_encode(ri, &enc);
                rc = write_job_file(job_dir, "run", enc.data, enc.len, errstr,
                                    errstr_size);
        }
        if (rc == 0) {
                rf_buf_printf(&mark_text, "%llu\n", (unsigned long long)mark);
                rc = write_job_file(job_dir, RF_BULKLOAD_CONSENT_MARK,
                                    mark_text.data, mark_text.len, errstr,
                                    errstr_size);
        }
        rf_sorter_destroy(ld.lists);
        for (int k = 0; k < IDX_KINDS; k++)
                rf_sorter_destroy(ld.index[k]);
        for (size_t i = 0; i < ld.last_cnt; i++) {
                free(ld.last_surface[i]);
                free(ld.last_subject[i]);
        }
        free(ld.last_surface);
        free(ld.last_subject);
        rf_buf_free(&enc);
        rf_buf_free(&mark_text);
        return rc;
}
