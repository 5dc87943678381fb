/*
 * recfresh - batch runs (see runs.h for the life of a run and the keys):
 * staging of lists that carry a run_id, run control records, validation
 * gates, atomic activation by switching one pointer per surface in one
 * RocksDB write, rollback, the read-side choice between the active version
 * and an incremental list, the chunked deletion of discarded versions, and
 * the spool through which `recfresh load` and `recfresh runs rollback` hand
 * work to a running daemon.
 *
 * Everything that changes state runs on the daemon's writer thread inside
 * the batch transaction (rf_apply_ctx_t), so a run record, its lists'
 * counts and the pointers always commit together.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "recfresh/bulkload.h"
#include "recfresh/keys.h"
#include "recfresh/list_cache.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/runs.h"
#include "recfresh/strset.h"

#define RUN_FORMAT 1

#define K_RUN    'R'
#define K_ACTIVE 'A'
#define K_OPEN   'O'
#define K_PURGE  'P'
#define K_HIST   'H'

/* Runs remembered per surface for rollback (older ones are dropped). */
#define HIST_MAX 64

/* How often the upkeep looks at open runs and the spool. */
#define STEP_EVERY_MS 100

static const char *const state_names[RF_RUN__CNT] = {
        [RF_RUN_UNANNOUNCED] = "unannounced",
        [RF_RUN_STARTED] = "started",
        [RF_RUN_COMPLETED] = "completed",
        [RF_RUN_ACTIVE] = "active",
        [RF_RUN_SUPERSEDED] = "superseded",
        [RF_RUN_FAILED_VALIDATION] = "failed_validation",
        [RF_RUN_ABORTED] = "aborted",
        [RF_RUN_ROLLED_BACK] = "rolled_back",
        [RF_RUN_EXPIRED] = "expired",
};

const char *rf_run_state2str(rf_run_state_t s)
{
        return (unsigned)s < RF_RUN__CNT ? state_names[s] : "unknown";
}

static int state_open(rf_run_state_t s)
{
        return s == RF_RUN_UNANNOUNCED || s == RF_RUN_STARTED ||
               s == RF_RUN_COMPLETED;
}

/* ---- run records --------------------------------------------------------*/

static void strv_free_n(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

void rf_run_info_clear(rf_run_info_t *ri)
{
        free(ri->run_id);
        free(ri->source);
        strv_free_n(ri->surfaces, ri->surface_cnt);
        for (size_t i = 0; i < ri->stat_cnt; i++)
                free(ri->stats[i].surface);
        free(ri->stats);
        strv_free_n(ri->reasons, ri->reason_cnt);
        memset(ri, 0, sizeof(*ri));
}

static void put_i64(rf_buf_t *b, int64_t v)
{
        rf_buf_put_be64(b, (uint64_t)v);
}

void rf_run_info_encode(const rf_run_info_t *ri, rf_buf_t *out)
{
        char hdr[3] = { RUN_FORMAT, (char)ri->state, (char)!!ri->kept };

        rf_buf_append(out, hdr, 3);
        rf_buf_put_str(out, ri->run_id);
        rf_buf_put_str(out, ri->source ? ri->source : "");
        put_i64(out, ri->generated_at);
        put_i64(out, ri->first_seen_at);
        put_i64(out, ri->completed_at);
        put_i64(out, ri->activated_at);
        put_i64(out, ri->updated_at);
        put_i64(out, ri->last_list_at);
        put_i64(out, ri->expected_lists);
        rf_buf_put_varint(out, ri->surface_cnt);
        for (size_t i = 0; i < ri->surface_cnt; i++)
                rf_buf_put_str(out, ri->surfaces[i]);
        rf_buf_put_varint(out, ri->stat_cnt);
        for (size_t i = 0; i < ri->stat_cnt; i++) {
                const rf_run_stats_t *s = &ri->stats[i];
                rf_buf_put_str(out, s->surface);
                put_i64(out, s->lists);
                put_i64(out, s->subjects);
                put_i64(out, s->empty);
                put_i64(out, s->dup);
                put_i64(out, s->shortl);
                put_i64(out, s->entries);
                put_i64(out, s->invalid);
        }
        put_i64(out, ri->late);
        put_i64(out, ri->blocked);
        put_i64(out, ri->malformed);
        rf_buf_put_varint(out, ri->reason_cnt);
        for (size_t i = 0; i < ri->reason_cnt; i++)
                rf_buf_put_str(out, ri->reasons[i]);
}

static char **get_strv(rf_cur_t *c, size_t *np)
{
        uint64_t n = rf_cur_varint(c);
        char **v;

        if (c->err || n > (uint64_t)(c->end - c->p)) {
                c->err = RF_EINVAL;
                *np = 0;
                return NULL;
        }
        v = rf_calloc((size_t)n + 1, sizeof(*v));
        for (uint64_t i = 0; i < n; i++)
                v[i] = rf_strdup(rf_cur_str(c, NULL));
        *np = (size_t)n;
        return v;
}

int rf_run_info_decode(const char *buf, size_t len, rf_run_info_t *ri)
{
        rf_cur_t c = { buf, buf + len, 0 };
        uint64_t n;

        memset(ri, 0, sizeof(*ri));
        if (rf_cur_u8(&c) != RUN_FORMAT)
                return RF_EINVAL;
        ri->state = (rf_run_state_t)rf_cur_u8(&c);
        ri->kept = rf_cur_u8(&c);
        ri->run_id = rf_strdup(rf_cur_str(&c, NULL));
        ri->source = rf_strdup(rf_cur_str(&c, NULL));
        ri->generated_at = (int64_t)rf_cur_be64(&c);
        ri->first_seen_at = (int64_t)rf_cur_be64(&c);
        ri->completed_at = (int64_t)rf_cur_be64(&c);
        ri->activated_at = (int64_t)rf_cur_be64(&c);
        ri->updated_at = (int64_t)rf_cur_be64(&c);
        ri->last_list_at = (int64_t)rf_cur_be64(&c);
        ri->expected_lists = (int64_t)rf_cur_be64(&c);
        ri->surfaces = get_strv(&c, &ri->surface_cnt);
        n = rf_cur_varint(&c);
        if (!c.err && n <= (uint64_t)(c.end - c.p)) {
                ri->stats = rf_calloc((size_t)n + 1, sizeof(*ri->stats));
                ri->stat_cnt = (size_t)n;
                for (size_t i = 0; i < ri->stat_cnt; i++) {
                        rf_run_stats_t *s = &ri->stats[i];
                        s->surface = rf_strdup(rf_cur_str(&c, NULL));
                        s->lists = (int64_t)rf_cur_be64(&c);
                        s->subjects = (int64_t)rf_cur_be64(&c);
                        s->empty = (int64_t)rf_cur_be64(&c);
                        s->dup = (int64_t)rf_cur_be64(&c);
                        s->shortl = (int64_t)rf_cur_be64(&c);
                        s->entries = (int64_t)rf_cur_be64(&c);
                        s->invalid = (int64_t)rf_cur_be64(&c);
                }
        } else {
                c.err = RF_EINVAL;
        }
        ri->late = (int64_t)rf_cur_be64(&c);
        ri->blocked = (int64_t)rf_cur_be64(&c);
        ri->malformed = (int64_t)rf_cur_be64(&c);
        ri->reasons = get_strv(&c, &ri->reason_cnt);
        if (c.err || ri->state >= RF_RUN__CNT) {
                rf_run_info_clear(ri);
                return RF_EINVAL;
        }
        return 0;
}

rf_run_stats_t *rf_run_info_stats(rf_run_info_t *ri, const char *surface)
{
        for (size_t i = 0; i < ri->stat_cnt; i++)
                if (!strcmp(ri->stats[i].surface, surface))
                        return &ri->stats[i];
        ri->stats =
            rf_realloc(ri->stats, (ri->stat_cnt + 1) * sizeof(*ri->stats));
        memset(&ri->stats[ri->stat_cnt], 0, sizeof(*ri->stats));
        ri->stats[ri->stat_cnt].surface = rf_strdup(surface);
        return &ri->stats[ri->stat_cnt++];
}

static void add_reason(rf_run_info_t *ri, const char *fmt, ...) RF_PRINTF(2, 3);

static void add_reason(rf_run_info_t *ri, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        ri->reasons =
            rf_realloc(ri->reasons, (ri->reason_cnt + 2) * sizeof(char *));
        ri->reasons[ri->reason_cnt++] = rf_strdup(msg);
        ri->reasons[ri->reason_cnt] = NULL;
}

static int has_surface(const rf_run_info_t *ri, const char *surface)
{
        for (size_t i = 0; i < ri->surface_cnt; i++)
                if (!strcmp(ri->surfaces[i], surface))
                        return 1;
        return 0;
}

static void set_surfaces(rf_run_info_t *ri, const char *const *v, size_t n)
{
        strv_free_n(ri->surfaces, ri->surface_cnt);
        ri->surfaces = rf_calloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                ri->surfaces[i] = rf_strdup(v[i]);
        ri->surface_cnt = n;
}

/* @returns 1 if some item occurs twice in \p l (open addressing on a
 * power-of-two table of FNV-1a hashes). */
static int has_duplicate(const rf_list_t *l)
{
        size_t size = 16, mask;
        const char **slot;
        int dup = 0;

        if (l->item_cnt < 2)
                return 0;
        while (size < l->item_cnt * 2)
                size <<= 1;
        mask = size - 1;
        slot = rf_calloc(size, sizeof(*slot));
        for (size_t i = 0; i < l->item_cnt && !dup; i++) {
                const char *id = l->items[i].item_id;
                size_t j = rf_hash_str(id) & mask;
                while (slot[j] && !(dup = !strcmp(slot[j], id)))
                        j = (j + 1) & mask;
                slot[j] = id;
        }
        free(slot);
        return dup;
}

static void count_list(rf_run_info_t *ri, const rf_config_t *conf,
                       const rf_list_t *l, int new_subject, rf_checker_t *ck,
                       int sign)
{
        rf_run_stats_t *s = rf_run_info_stats(ri, l->surface);
        const rf_surface_conf_t *sc = rf_config_surface(conf, l->surface);
        int64_t invalid = 0;

        if (ck)
                for (size_t i = 0; i < l->item_cnt; i++)
                        invalid += rf_checker_check(ck, &l->items[i]) !=
                                   RF_FILTER_NONE;
        s->lists += sign;
        s->subjects += new_subject ? sign : 0;
        s->empty += l->item_cnt == 0 ? sign : 0;
        s->dup += has_duplicate(l) ? sign : 0;
        s->shortl += (int64_t)l->item_cnt < sc->run_min_list_len ? sign : 0;
        s->entries += sign * (int64_t)l->item_cnt;
        s->invalid += sign * invalid;
}

void rf_run_info_count(rf_run_info_t *ri, const rf_config_t *conf,
                       const rf_list_t *list, int new_subject, rf_checker_t *ck)
{
        count_list(ri, conf, list, new_subject, ck, 1);
}

static int64_t lists_total(const rf_run_info_t *ri)
{
        int64_t n = 0;

        for (size_t i = 0; i < ri->stat_cnt; i++)
                n += ri->stats[i].lists;
        return n;
}

/* ---- keys and store access ----------------------------------------------*/

static void key1(rf_buf_t *k, char kind, const char *id)
{
        rf_buf_reset(k);
        rf_buf_append(k, &kind, 1);
        rf_buf_append(k, id, strlen(id));
}

static void version_key(rf_buf_t *k, const char *run_id, const char *lkey,
                        size_t klen)
{
        rf_buf_reset(k);
        rf_key_version(k, run_id, strlen(run_id), lkey, klen);
}

int rf_runs_get(rf_store_t *st, rf_txn_t *txn, const char *run_id,
                rf_run_info_t *ri)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int r;

        memset(ri, 0, sizeof(*ri));
        key1(&k, K_RUN, run_id);
        r = txn ? rf_txn_get(txn, RF_CF_RUNS, k.data, k.len, &v)
                : rf_store_get(st, RF_CF_RUNS, k.data, k.len, &v);
        if (r == 0 && rf_run_info_decode(v.data, v.len, ri) != 0) {
                rf_log_error("runs", "run record %s is corrupt", run_id);
                r = RF_EINVAL;
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        return r;
}

/* Writes \p ri and its 'O' / 'P' markers into the txn. */
static void put_run(rf_apply_ctx_t *ctx, rf_run_info_t *ri)
{
        rf_buf_t k = { 0 }, v = { 0 };

        ri->updated_at = ctx->now_ms;
        key1(&k, K_RUN, ri->run_id);
        rf_run_info_encode(ri, &v);
        rf_txn_put(ctx->txn, RF_CF_RUNS, k.data, k.len, v.data, v.len);
        key1(&k, K_OPEN, ri->run_id);
        if (state_open(ri->state))
                rf_txn_put(ctx->txn, RF_CF_RUNS, k.data, k.len, "", 0);
        else
                rf_txn_delete(ctx->txn, RF_CF_RUNS, k.data, k.len);
        rf_buf_free(&k);
        rf_buf_free(&v);
}

/* Marks the version of \p ri for deletion (the upkeep deletes it). */
static void discard_version(rf_apply_ctx_t *ctx, rf_run_info_t *ri)
{
        rf_buf_t k = { 0 };

        if (!ri->kept)
                return;
        ri->kept = 0;
        key1(&k, K_PURGE, ri->run_id);
        rf_txn_put(ctx->txn, RF_CF_RUNS, k.data, k.len, "", 0);
        rf_buf_free(&k);
}

static void active_value(rf_buf_t *v, const char *run_id, int64_t gen)
{
        rf_buf_reset(v);
        rf_buf_put_str(v, run_id);
        rf_buf_put_be64(v, (uint64_t)gen);
}

static int active_decode(const char *buf, size_t len, char **run_id,
                         int64_t *gen)
{
        rf_cur_t c = { buf, buf + len, 0 };
        const char *id = rf_cur_str(&c, NULL);
        int64_t g = (int64_t)rf_cur_be64(&c);

        if (c.err)
                return RF_EINVAL;
        if (run_id)
                *run_id = rf_strdup(id);
        if (gen)
                *gen = g;
        return 0;
}

static int active_get(rf_store_t *st, rf_txn_t *txn, const char *surface,
                      char **run_id, int64_t *gen)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int r;

        key1(&k, K_ACTIVE, surface);
        r = txn ? rf_txn_get(txn, RF_CF_RUNS, k.data, k.len, &v)
                : rf_store_get(st, RF_CF_RUNS, k.data, k.len, &v);
        if (r == 0 && active_decode(v.data, v.len, run_id, gen) != 0)
                r = RF_EINVAL;
        rf_buf_free(&k);
        rf_buf_free(&v);
        return r;
}

int rf_runs_active(rf_store_t *st, const char *surface, char **run_id,
                   int64_t *generated_at)
{
        return active_get(st, NULL, surface, run_id, generated_at);
}

/* The runs active on \p surface before its current one, oldest first:
 * *ids (caller frees with strv_free_n) and *n.
 * @returns 0, RF_ENOENT (none kept: a surface last activated before
 *          histories were kept) or an error. */
static int hist_get(rf_apply_ctx_t *ctx, const char *surface, char ***ids,
                    size_t *n)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int r;

        *ids = NULL;
        *n = 0;
        key1(&k, K_HIST, surface);
        r = rf_txn_get(ctx->txn, RF_CF_RUNS, k.data, k.len, &v);
        if (r == 0) {
                rf_cur_t c = { v.data, v.data + v.len, 0 };
                while (!c.err && c.p < c.end) {
                        const char *id = rf_cur_str(&c, NULL);
                        if (c.err)
                                break;
                        *ids = rf_realloc(*ids, (*n + 1) * sizeof(char *));
                        (*ids)[(*n)++] = rf_strdup(id);
                }
                if (c.err) {
                        rf_log_error("runs",
                                     "rollback history of surface %s is "
                                     "corrupt",
                                     surface);
                        strv_free_n(*ids, *n);
                        *ids = NULL;
                        *n = 0;
                        r = RF_EINVAL;
                }
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        return r;
}

/* Writes the first \p n of \p ids (the newest HIST_MAX of them) as the
 * history of \p surface. */
static void hist_put(rf_apply_ctx_t *ctx, const char *surface, char *const *ids,
                     size_t n)
{
        rf_buf_t k = { 0 }, v = { 0 };

        for (size_t i = n > HIST_MAX ? n - HIST_MAX : 0; i < n; i++)
                rf_buf_put_str(&v, ids[i]);
        key1(&k, K_HIST, surface);
        rf_txn_put(ctx->txn, RF_CF_RUNS, k.data, k.len, v.data ? v.data : "",
                   v.len);
        rf_buf_free(&k);
        rf_buf_free(&v);
}

/* @returns 1 if run \p ri may serve again: its version is stored and it
 * was active (and may still be, on other surfaces). */
static int restorable(const rf_run_info_t *ri)
{
        return ri->kept &&
               (ri->state == RF_RUN_ACTIVE || ri->state == RF_RUN_SUPERSEDED ||
                ri->state == RF_RUN_ROLLED_BACK);
}

/* Records that \p old (NULL: none) served \p surface until now, as the
 * surface switches to another run; entries whose version is gone are
 * dropped. */
static void hist_push(rf_apply_ctx_t *ctx, const char *surface, const char *old)
{
        char **ids;
        size_t n, m = 0;

        int r = hist_get(ctx, surface, &ids, &n);
        if (r != 0 && r != RF_ENOENT && r != RF_EINVAL) {
                /* Not read: neither overwritten nor left without the run
                 * it displaces. The batch is not committed. */
                rf_log_error("runs", "rollback history of surface %s: %s",
                             surface, rf_err2str(r));
                if (!ctx->err)
                        ctx->err = r;
                return;
        }
        if (r != 0)
                n = 0; /* none kept yet (or corrupt): start one */
        ids = rf_realloc(ids, (n + 1) * sizeof(char *));
        if (old)
                ids[n++] = rf_strdup(old);
        for (size_t i = 0; i < n; i++) {
                rf_run_info_t ri;
                int keep = rf_runs_get(ctx->st, ctx->txn, ids[i], &ri) == 0 &&
                           restorable(&ri);
                rf_run_info_clear(&ri);
                if (keep)
                        ids[m++] = ids[i];
                else
                        free(ids[i]);
        }
        hist_put(ctx, surface, ids, m);
        strv_free_n(ids, m);
}

/* Takes \p run_id out of every surface's history: a run rolled back by
 * name was rejected, and no later rollback may bring it back. */
static int hist_forget(rf_apply_ctx_t *ctx, const char *run_id)
{
        char p = K_HIST;
        rf_buf_t keys = { 0 };
        size_t nk = 0;
        int r;

        rf_iter_t *it = rf_iter_new(ctx->st, ctx->txn, RF_CF_RUNS, &p, 1);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                rf_buf_put_varint(&keys, klen - 1);
                rf_buf_append(&keys, k + 1, klen - 1); /* the surface */
                nk++;
        }
        r = rf_iter_status(it) ? RF_ESTORE : 0;
        rf_iter_destroy(it);
        rf_cur_t c = { keys.data, keys.data + keys.len, 0 };
        for (size_t i = 0; r == 0 && i < nk && !c.err; i++) {
                size_t sl = rf_cur_varint(&c);
                char *surface = rf_strndup(c.p, sl);
                char **ids;
                size_t n, m = 0;
                c.p += sl;
                if ((r = hist_get(ctx, surface, &ids, &n)) == 0) {
                        for (size_t j = 0; j < n; j++)
                                if (strcmp(ids[j], run_id) != 0)
                                        ids[m++] = ids[j];
                                else
                                        free(ids[j]);
                        if (m != n)
                                hist_put(ctx, surface, ids, m);
                        strv_free_n(ids, m);
                } else if (r == RF_EINVAL || r == RF_ENOENT) {
                        r = 0; /* corrupt (logged) or gone: nothing to do */
                }
                free(surface);
        }
        rf_buf_free(&keys);
        return r;
}

static int cmp_first_seen(const void *a, const void *b)
{
        const rf_run_info_t *x = a, *y = b;

        if (x->first_seen_at != y->first_seen_at)
                return x->first_seen_at < y->first_seen_at ? 1 : -1;
        return strcmp(x->run_id, y->run_id);
}

/* Every run record, through \p txn if not NULL. */
static int runs_all(rf_store_t *st, rf_txn_t *txn, rf_run_info_t **out,
                    size_t *cnt)
{
        char p = K_RUN;
        rf_iter_t *it = rf_iter_new(st, txn, RF_CF_RUNS, &p, 1);
        rf_run_info_t *v = NULL;
        size_t n = 0;

        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t vlen;
                const char *val = rf_iter_value(it, &vlen);
                v = rf_realloc(v, (n + 1) * sizeof(*v));
                if (rf_run_info_decode(val, vlen, &v[n]) == 0)
                        n++;
        }
        rf_iter_destroy(it);
        if (n > 1) /* v is NULL when there are no runs */
                qsort(v, n, sizeof(*v), cmp_first_seen);
        *out = v;
        *cnt = n;
        return 0;
}

int rf_runs_list(rf_store_t *st, rf_run_info_t **out, size_t *cnt)
{
        return runs_all(st, NULL, out, cnt);
}

static void runs_free(rf_run_info_t *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                rf_run_info_clear(&v[i]);
        free(v);
}

/* Adds (\p add) or deletes the reverse-index entries of a version list:
 * kind entity \0 list key \0 run_id. */
static void index_each(rf_txn_t *txn, const char *run_id, const char *lkey,
                       size_t klen, const rf_list_t *l, int add)
{
        rf_buf_t k = { 0 }, v = { 0 }, lk = { 0 };

        rf_buf_append(&lk, lkey, klen);
        rf_buf_append(&lk, "", 1);
        rf_buf_append(&lk, run_id, strlen(run_id));
        rf_buf_put_str(&v, l->region);
        rf_buf_put_str(&v, l->list_id);
        for (size_t i = 0; i < l->item_cnt; i++) {
                const rf_entry_t *e = &l->items[i];
                const char kinds[3] = { RF_IDX_ITEM, RF_IDX_CREATOR,
                                        RF_IDX_CAMPAIGN };
                const char *ids[3] = { e->item_id, e->creator_id,
                                       e->campaign_id };
                for (int j = 0; j < 3; j++) {
                        if (!*ids[j])
                                continue;
                        rf_buf_reset(&k);
                        rf_key_index(&k, kinds[j], ids[j], lk.data, lk.len);
                        if (add)
                                rf_txn_put(txn, RF_CF_INDEX, k.data, k.len,
                                           v.data, v.len);
                        else
                                rf_txn_delete(txn, RF_CF_INDEX, k.data, k.len);
                }
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        rf_buf_free(&lk);
}

/* ---- validation and activation ------------------------------------------*/

/* @returns 1 when a completed run has what it waits for. */
static int run_ready(const rf_run_info_t *ri, const rf_config_t *conf,
                     int64_t now)
{
        int64_t arrived = lists_total(ri) + ri->blocked;

        if (ri->state != RF_RUN_COMPLETED)
                return 0;
        if (ri->expected_lists >= 0)
                return arrived >= ri->expected_lists ||
                       now >=
                           ri->completed_at + conf->runs_completion_timeout_ms;
        int64_t last = ri->last_list_at > ri->completed_at ? ri->last_list_at
                                                           : ri->completed_at;
        return now >= last + conf->runs_settle_ms;
}

/* x / total > pct %, in integers. */
static int over_pct(int64_t x, int64_t total, int64_t pct)
{
        return total > 0 && x * 100 > pct * total;
}

/* x / total < pct %, in integers: x * 100 < pct * total for x, total >= 0
 * and pct in 0..100 (the config's range), without forming pct * total,
 * which overflows for an untrusted total (expected_lists). */
static int under_pct(int64_t x, int64_t total, int64_t pct)
{
        /* pct * total = 100 * pct * (total / 100) + pct * (total % 100) */
        int64_t d = x - pct * (total / 100);

        return d < 0 || (d < 100 && d * 100 < pct * (total % 100));
}

static double pct_of(int64_t x, int64_t total)
{
        return total > 0 ? 100.0 * (double)x / (double)total : 0.0;
}

/* Runs every gate; failures go to ri->reasons. */
static void validate(rf_apply_ctx_t *ctx, rf_run_info_t *ri)
{
        const rf_config_t *conf = ctx->conf;
        int64_t total = lists_total(ri), arrived = total + ri->blocked;

        if (total == 0)
                add_reason(ri, "no lists");
        for (size_t i = 0; i < ri->stat_cnt; i++)
                if (!has_surface(ri, ri->stats[i].surface))
                        add_reason(ri,
                                   "%" PRId64 " lists for surface \"%s\", "
                                   "which the run did not declare",
                                   ri->stats[i].lists, ri->stats[i].surface);
        if (over_pct(ri->malformed, total + ri->malformed,
                     conf->runs_max_malformed_pct))
                add_reason(ri,
                           "malformed lines %" PRId64 " of %" PRId64
                           " (%.1f%%) over %" PRId64 "%%",
                           ri->malformed, total + ri->malformed,
                           pct_of(ri->malformed, total + ri->malformed),
                           conf->runs_max_malformed_pct);
        for (size_t i = 0; i < ri->surface_cnt; i++) {
                const char *sn = ri->surfaces[i];
                const rf_surface_conf_t *sc = rf_config_surface(conf, sn);
                rf_run_stats_t *s = rf_run_info_stats(ri, sn);
                char *prev_id = NULL;

                if (s->lists == 0) {
                        add_reason(ri, "surface \"%s\": no lists", sn);
                        continue;
                }
                if (ri->expected_lists > 0 &&
                    under_pct(arrived, ri->expected_lists,
                              sc->run_min_coverage_pct))
                        add_reason(
                            ri,
                            "surface \"%s\": coverage %" PRId64 " of %" PRId64
                            " expected lists (%.1f%%) under %" PRId64 "%%",
                            sn, arrived, ri->expected_lists,
                            pct_of(arrived, ri->expected_lists),
                            sc->run_min_coverage_pct);
                if (active_get(ctx->st, ctx->txn, sn, &prev_id, NULL) == 0 &&
                    strcmp(prev_id, ri->run_id) != 0) {
                        rf_run_info_t prev;
                        if (rf_runs_get(ctx->st, ctx->txn, prev_id, &prev) ==
                            0) {
                                int64_t ps =
                                    rf_run_info_stats(&prev, sn)->subjects;
                                if (ps > 0 &&
                                    under_pct(s->subjects, ps,
                                              sc->run_min_prev_coverage_pct))
                                        add_reason(
                                            ri,
                                            "surface \"%s\": %" PRId64
                                            " subjects, %.1f%% of the "
                                            "previous run %s (%" PRId64
                                            "), under %" PRId64 "%%",
                                            sn, s->subjects,
                                            pct_of(s->subjects, ps), prev_id,
                                            ps, sc->run_min_prev_coverage_pct);
                                rf_run_info_clear(&prev);
                        }
                }
                free(prev_id);
                if (over_pct(s->empty, s->lists, sc->run_max_empty_pct))
                        add_reason(
                            ri,
                            "surface \"%s\": empty lists %" PRId64
                            " of %" PRId64 " (%.1f%%) over %" PRId64 "%%",
                            sn, s->empty, s->lists, pct_of(s->empty, s->lists),
                            sc->run_max_empty_pct);
                if (over_pct(s->dup, s->lists, sc->run_max_duplicate_pct))
                        add_reason(ri,
                                   "surface \"%s\": lists with duplicate "
                                   "items %" PRId64 " of %" PRId64
                                   " (%.1f%%) over %" PRId64 "%%",
                                   sn, s->dup, s->lists,
                                   pct_of(s->dup, s->lists),
                                   sc->run_max_duplicate_pct);
                if (over_pct(s->invalid, s->entries, sc->run_max_invalid_pct))
                        add_reason(ri,
                                   "surface \"%s\": invalid entries "
                                   "(tombstoned at load) %" PRId64
                                   " of %" PRId64 " (%.1f%%) over %" PRId64
                                   "%%",
                                   sn, s->invalid, s->entries,
                                   pct_of(s->invalid, s->entries),
                                   sc->run_max_invalid_pct);
                if (over_pct(s->shortl, s->lists, sc->run_max_short_pct))
                        add_reason(ri,
                                   "surface \"%s\": lists shorter than "
                                   "%" PRId64 " entries %" PRId64 " of %" PRId64
                                   " (%.1f%%) over %" PRId64 "%%",
                                   sn, sc->run_min_list_len, s->shortl,
                                   s->lists, pct_of(s->shortl, s->lists),
                                   sc->run_max_short_pct);
        }
}

/* @returns 1 if the pointer of some surface of \p ri (through the txn)
 * names it. */
static int still_active(rf_apply_ctx_t *ctx, const rf_run_info_t *ri)
{
        for (size_t i = 0; i < ri->surface_cnt; i++) {
                char *id = NULL;
                int on = active_get(ctx->st, ctx->txn, ri->surfaces[i], &id,
                                    NULL) == 0 &&
                         !strcmp(id, ri->run_id);
                free(id);
                if (on)
                        return 1;
        }
        return 0;
}

static int cmp_activated(const void *a, const void *b)
{
        const rf_run_info_t *x = a, *y = b;

        if (x->activated_at != y->activated_at)
                return x->activated_at < y->activated_at ? 1 : -1;
        return strcmp(x->run_id, y->run_id);
}

/* Keeps the newest runs.keep_versions - 1 inactive versions; discards the
 * rest. */
static void collect_versions(rf_apply_ctx_t *ctx)
{
        rf_run_info_t *v;
        size_t n, kept = 0;

        runs_all(ctx->st, ctx->txn, &v, &n);
        qsort(v, n, sizeof(*v), cmp_activated);
        for (size_t i = 0; i < n; i++) {
                if (!v[i].kept || (v[i].state != RF_RUN_SUPERSEDED &&
                                   v[i].state != RF_RUN_ROLLED_BACK))
                        continue;
                if ((int64_t)++kept < ctx->conf->runs_keep_versions)
                        continue;
                discard_version(ctx, &v[i]);
                put_run(ctx, &v[i]);
                rf_log_info("runs", "run %s: version discarded (keeping %lld)",
                            v[i].run_id,
                            (long long)ctx->conf->runs_keep_versions);
        }
        runs_free(v, n);
}

/* Points every surface of \p ri at it, in the txn; displaced runs that no
 * longer serve any surface become \p displaced_state. Each displaced run
 * goes on its surface's history, what a rollback of the surface restores. */
static void activate(rf_apply_ctx_t *ctx, rf_run_info_t *ri,
                     rf_run_state_t displaced_state, const char *note)
{
        rf_buf_t k = { 0 }, v = { 0 };

        active_value(&v, ri->run_id, ri->generated_at);
        for (size_t i = 0; i < ri->surface_cnt; i++) {
                char *old = NULL;
                int had = active_get(ctx->st, ctx->txn, ri->surfaces[i], &old,
                                     NULL) == 0;
                /* The pointer first, so still_active() sees the switch. */
                key1(&k, K_ACTIVE, ri->surfaces[i]);
                rf_txn_put(ctx->txn, RF_CF_RUNS, k.data, k.len, v.data, v.len);
                hist_push(ctx, ri->surfaces[i],
                          had && strcmp(old, ri->run_id) != 0 ? old : NULL);
                if (had && strcmp(old, ri->run_id) != 0) {
                        rf_run_info_t o;
                        if (rf_runs_get(ctx->st, ctx->txn, old, &o) == 0) {
                                if (o.state == RF_RUN_ACTIVE &&
                                    !still_active(ctx, &o)) {
                                        o.state = displaced_state;
                                        if (note)
                                                add_reason(&o, "%s", note);
                                        put_run(ctx, &o);
                                }
                                rf_run_info_clear(&o);
                        }
                }
                free(old);
        }
        ri->state = RF_RUN_ACTIVE;
        ri->activated_at = ctx->now_ms;
        put_run(ctx, ri);
        collect_versions(ctx);
        rf_buf_free(&k);
        rf_buf_free(&v);
}

/* Validates a completed run and activates it or fails it, in the txn. */
static void decide(rf_apply_ctx_t *ctx, rf_run_info_t *ri)
{
        if (ri->surface_cnt == 0) {
                /* Never declared: the surfaces its lists are for. */
                free(ri->surfaces);
                ri->surfaces = rf_calloc(ri->stat_cnt + 1, sizeof(char *));
                for (size_t i = 0; i < ri->stat_cnt; i++)
                        ri->surfaces[i] = rf_strdup(ri->stats[i].surface);
                ri->surface_cnt = ri->stat_cnt;
        }
        validate(ctx, ri);
        if (ri->reason_cnt) {
                ri->state = RF_RUN_FAILED_VALIDATION;
                discard_version(ctx, ri);
                put_run(ctx, ri);
                for (size_t i = 0; i < ri->reason_cnt; i++)
                        rf_log_warn("runs", "run %s failed validation: %s",
                                    ri->run_id, ri->reasons[i]);
                return;
        }
        activate(ctx, ri, RF_RUN_SUPERSEDED, NULL);
        rf_log_info("runs", "run %s active on %zu surfaces (%lld lists)",
                    ri->run_id, ri->surface_cnt, (long long)lists_total(ri));
}

/* ---- the apply path -----------------------------------------------------*/

static void new_run(rf_run_info_t *ri, const char *run_id, int64_t now)
{
        memset(ri, 0, sizeof(*ri));
        ri->run_id = rf_strdup(run_id);
        ri->source = rf_strdup("topic");
        ri->state = RF_RUN_UNANNOUNCED;
        ri->first_seen_at = now;
        ri->expected_lists = -1;
        ri->kept = 1;
}

/* Loads run \p run_id or starts a new unannounced one. */
static int get_or_new(rf_apply_ctx_t *ctx, const char *run_id,
                      rf_run_info_t *ri)
{
        int r = rf_runs_get(ctx->st, ctx->txn, run_id, ri);

        if (r == RF_ENOENT) {
                new_run(ri, run_id, ctx->now_ms);
                return 0;
        }
        return r;
}

static int list_newer(const rf_list_t *a, const rf_list_t *b)
{
        return a->generated_at > b->generated_at ||
               (a->generated_at == b->generated_at &&
                strcmp(a->list_id, b->list_id) > 0);
}

/* @returns 1 if run \p run_id already has a list of (subject, surface). */
static int subject_seen(rf_apply_ctx_t *ctx, const char *run_id,
                        const rf_list_t *l)
{
        rf_buf_t p = { 0 };
        rf_iter_t *it;
        int seen;

        rf_buf_append(&p, run_id, strlen(run_id) + 1);
        rf_buf_append(&p, l->subject_id, strlen(l->subject_id) + 1);
        rf_buf_append(&p, l->surface, strlen(l->surface) + 1);
        it = rf_iter_new(ctx->st, ctx->txn, RF_CF_VERSIONS, p.data, p.len);
        seen = rf_iter_valid(it);
        rf_iter_destroy(it);
        rf_buf_free(&p);
        return seen;
}

int rf_runs_stage(rf_apply_ctx_t *ctx, const rf_list_t *list)
{
        rf_buf_t lk = { 0 }, vk = { 0 }, cur = { 0 }, enc = { 0 };
        rf_run_info_t ri;
        rf_list_t *old = NULL;
        rf_checker_t ck;
        int r;

        if ((r = get_or_new(ctx, list->run_id, &ri)))
                return r;
        int purged =
            strcmp(list->subject_id, RF_FALLBACK_SUBJECT) != 0
                ? rf_consent_purged(ctx->st, ctx->txn, list->subject_id)
                : 0;
        if (purged < 0) {
                r = purged; /* unknown: the batch is not committed */
                goto done;
        }
        if (purged) {
                ri.blocked++;
                put_run(ctx, &ri);
                r = RF_EBLOCKED;
                goto done;
        }
        if (!state_open(ri.state)) {
                /* Decided: its version is what was validated. */
                if (ri.late++ < 10)
                        rf_log_warn("runs",
                                    "list %s of run %s came after the run "
                                    "was %s: dropped",
                                    list->list_id, ri.run_id,
                                    rf_run_state2str(ri.state));
                put_run(ctx, &ri);
                r = RF_ESTALE;
                goto done;
        }

        rf_key_list_stored(&lk, list->subject_id, list->surface,
                           list->context_key, list->region);
        version_key(&vk, list->run_id, lk.data, lk.len);
        r = rf_txn_get(ctx->txn, RF_CF_VERSIONS, vk.data, vk.len, &cur);
        if (r == 0 && rf_list_decode(cur.data, cur.len, &old) == 0) {
                if (!list_newer(list, old)) {
                        r = RF_ESTALE;
                        goto done;
                }
                rf_checker_init(&ck, ctx->st, ctx->txn, old->subject_id,
                                old->region);
                count_list(&ri, ctx->conf, old, 0, &ck, -1);
                rf_checker_clear(&ck);
                index_each(ctx->txn, list->run_id, lk.data, lk.len, old, 0);
        } else if (r != 0 && r != RF_ENOENT) {
                goto done;
        }
        rf_checker_init(&ck, ctx->st, ctx->txn, list->subject_id, list->region);
        count_list(&ri, ctx->conf, list,
                   !old && !subject_seen(ctx, list->run_id, list), &ck, 1);
        rf_checker_clear(&ck);
        rf_list_encode(list, &enc);
        rf_txn_put(ctx->txn, RF_CF_VERSIONS, vk.data, vk.len, enc.data,
                   enc.len);
        index_each(ctx->txn, list->run_id, lk.data, lk.len, list, 1);
        ri.last_list_at = ctx->now_ms;
        if (run_ready(&ri, ctx->conf, ctx->now_ms))
                decide(ctx, &ri);
        else
                put_run(ctx, &ri);
        r = 0;
done:
        rf_list_destroy(old);
        rf_run_info_clear(&ri);
        rf_buf_free(&lk);
        rf_buf_free(&vk);
        rf_buf_free(&cur);
        rf_buf_free(&enc);
        return r;
}

int rf_runs_apply_ctl(rf_apply_ctx_t *ctx, const rf_run_ctl_t *ctl)
{
        rf_run_info_t ri;
        char err[256];
        int r;

        if (ctl->type == RF_RUN_CTL_ROLLED_BACK) {
                r = rf_runs_rollback(ctx, ctl->run_id, ctl->to, err,
                                     sizeof(err));
                if (r == RF_ENOENT || r == RF_EINVAL) {
                        rf_log_warn("runs", "run_rolled_back %s: %s",
                                    ctl->run_id, err);
                        return RF_ESTALE;
                }
                return r;
        }
        if ((r = get_or_new(ctx, ctl->run_id, &ri)))
                return r;
        if (!state_open(ri.state)) {
                rf_log_warn("runs", "%s for run %s, which is %s: ignored",
                            rf_run_ctl_type2str(ctl->type), ri.run_id,
                            rf_run_state2str(ri.state));
                rf_run_info_clear(&ri);
                return RF_ESTALE;
        }
        if (ctl->surface_cnt)
                set_surfaces(&ri, ctl->surfaces, ctl->surface_cnt);
        ri.generated_at = ctl->generated_at;
        switch (ctl->type) {
        case RF_RUN_CTL_STARTED:
                if (ri.state == RF_RUN_UNANNOUNCED)
                        ri.state = RF_RUN_STARTED;
                put_run(ctx, &ri);
                break;
        case RF_RUN_CTL_COMPLETED:
                ri.state = RF_RUN_COMPLETED;
                ri.completed_at = ctx->now_ms;
                if (ctl->expected_lists >= 0)
                        ri.expected_lists = ctl->expected_lists;
                if (run_ready(&ri, ctx->conf, ctx->now_ms))
                        decide(ctx, &ri);
                else
                        put_run(ctx, &ri);
                break;
        default: /* RF_RUN_CTL_ABORTED */
                ri.state = RF_RUN_ABORTED;
                discard_version(ctx, &ri);
                put_run(ctx, &ri);
                rf_log_info("runs", "run %s aborted", ri.run_id);
                break;
        }
        rf_run_info_clear(&ri);
        return 0;
}

/* ---- rollback -----------------------------------------------------------*/

/* The newest kept superseded run serving \p surface before, other than
 * \p not: a guess, for a surface without a history (last switched before
 * histories were kept). */
static int previous_of(rf_run_info_t *v, size_t n, const char *surface,
                       const char * not )
{
        int best = -1;

        for (size_t i = 0; i < n; i++) {
                if (!v[i].kept || v[i].state != RF_RUN_SUPERSEDED ||
                    !strcmp(v[i].run_id, not ) || !has_surface(&v[i], surface))
                        continue;
                if (best < 0 || v[i].activated_at > v[best].activated_at)
                        best = (int)i;
        }
        return best;
}

/* @returns the index of run \p run_id in \p v, or -1. */
static int find_run(const rf_run_info_t *v, size_t n, const char *run_id)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(v[i].run_id, run_id))
                        return (int)i;
        return -1;
}

int rf_runs_rollback(rf_apply_ctx_t *ctx, const char *run_id, const char *to,
                     char *errstr, size_t errstr_size)
{
        rf_run_info_t *v = NULL;
        size_t n = 0;
        int cur = -1, tgt = -1, r = RF_EINVAL;
        char note[600];

        runs_all(ctx->st, ctx->txn, &v, &n);
        for (size_t i = 0; i < n; i++) {
                if (run_id && *run_id && !strcmp(v[i].run_id, run_id))
                        cur = (int)i;
                if (to && *to && !strcmp(v[i].run_id, to))
                        tgt = (int)i;
        }
        if (!(run_id && *run_id) && !(to && *to)) {
                /* The run most recently activated and still serving. */
                for (size_t i = 0; i < n; i++)
                        if (v[i].state == RF_RUN_ACTIVE &&
                            (cur < 0 ||
                             v[i].activated_at > v[cur].activated_at))
                                cur = (int)i;
                if (cur < 0) {
                        snprintf(errstr, errstr_size, "no active run");
                        r = RF_ENOENT;
                        goto out;
                }
        }
        if (run_id && *run_id && cur < 0) {
                snprintf(errstr, errstr_size, "no run \"%s\"", run_id);
                r = RF_ENOENT;
                goto out;
        }
        if (cur >= 0 && v[cur].state != RF_RUN_ACTIVE) {
                snprintf(errstr, errstr_size, "run %s is %s, not active",
                         v[cur].run_id, rf_run_state2str(v[cur].state));
                goto out;
        }
        if (to && *to) {
                if (tgt < 0) {
                        snprintf(errstr, errstr_size, "no run \"%s\"", to);
                        r = RF_ENOENT;
                        goto out;
                }
                if (v[tgt].state == RF_RUN_ACTIVE) {
                        snprintf(errstr, errstr_size,
                                 "run %s is already active", to);
                        goto out;
                }
                if (!v[tgt].kept || (v[tgt].state != RF_RUN_SUPERSEDED &&
                                     v[tgt].state != RF_RUN_ROLLED_BACK)) {
                        snprintf(errstr, errstr_size,
                                 "run %s is %s%s: not a version to roll "
                                 "back to",
                                 to, rf_run_state2str(v[tgt].state),
                                 v[tgt].kept ? "" : ", version deleted");
                        goto out;
                }
                snprintf(note, sizeof(note), "rolled back to %s", to);
                activate(ctx, &v[tgt], RF_RUN_ROLLED_BACK, note);
                if (cur >= 0 && (r = hist_forget(ctx, v[cur].run_id))) {
                        snprintf(errstr, errstr_size, "rollback history: %s",
                                 rf_err2str(r));
                        goto out;
                }
                snprintf(errstr, errstr_size, "run %s is active again", to);
                r = 0;
                goto out;
        }

        /* Each surface the current run serves gets back the run that
         * served it before, from the surface's history; all are checked
         * before anything is written. */
        const char *sn[64];
        int prev[64];
        size_t hkeep[64], ns = 0;
        if (v[cur].surface_cnt > RF_ARRAY_SIZE(prev)) {
                snprintf(errstr, errstr_size, "too many surfaces");
                goto out;
        }
        for (size_t s = 0; s < v[cur].surface_cnt; s++) {
                const char *surface = v[cur].surfaces[s];
                char *on = NULL, **ids;
                size_t hn;
                int ar = active_get(ctx->st, ctx->txn, surface, &on, NULL);
                int served = ar == 0 && !strcmp(on, v[cur].run_id);
                free(on);
                if (ar != 0 && ar != RF_ENOENT) {
                        snprintf(errstr, errstr_size,
                                 "surface \"%s\": active run: %s", surface,
                                 rf_err2str(ar));
                        r = ar;
                        goto out;
                }
                if (!served)
                        continue; /* a newer run serves it: left alone */
                sn[ns] = surface;
                prev[ns] = -1;
                hkeep[ns] = SIZE_MAX; /* no history to update */
                int hr = hist_get(ctx, surface, &ids, &hn);
                if (hr == RF_ENOENT) {
                        prev[ns] = previous_of(v, n, surface, v[cur].run_id);
                } else if (hr != 0) {
                        snprintf(errstr, errstr_size,
                                 "surface \"%s\": rollback history: %s",
                                 surface, rf_err2str(hr));
                        r = hr;
                        goto out;
                }
                /* The newest run before the current one still stored; the
                 * entries from it on are dropped from the history. */
                for (size_t j = hn; j-- > 0 && prev[ns] < 0;) {
                        int x = find_run(v, n, ids[j]);
                        if (x >= 0 && x != cur && restorable(&v[x])) {
                                prev[ns] = x;
                                hkeep[ns] = j;
                        }
                }
                strv_free_n(ids, hn);
                if (prev[ns] < 0 && hr == 0)
                        /* None restorable in it (a history begun after an
                         * upgrade): the older guess, as without one. */
                        prev[ns] = previous_of(v, n, surface, v[cur].run_id);
                if (prev[ns] < 0) {
                        snprintf(errstr, errstr_size,
                                 "surface \"%s\": no previous version kept "
                                 "to roll back to",
                                 surface);
                        r = RF_ENOENT;
                        goto out;
                }
                ns++;
        }
        if (ns == 0) {
                snprintf(errstr, errstr_size, "run %s serves no surface",
                         v[cur].run_id);
                goto out;
        }
        for (size_t s = 0; s < ns; s++) {
                rf_run_info_t *p = &v[prev[s]];
                rf_buf_t k = { 0 }, val = { 0 };
                /* Switch this one surface only: p may have others. */
                active_value(&val, p->run_id, p->generated_at);
                key1(&k, K_ACTIVE, sn[s]);
                rf_txn_put(ctx->txn, RF_CF_RUNS, k.data, k.len, val.data,
                           val.len);
                rf_buf_free(&k);
                rf_buf_free(&val);
                if (hkeep[s] != SIZE_MAX) {
                        char **ids;
                        size_t hn;
                        if (hist_get(ctx, sn[s], &ids, &hn) == 0) {
                                hist_put(ctx, sn[s], ids, hkeep[s]);
                                strv_free_n(ids, hn);
                        }
                }
                if (p->state != RF_RUN_ACTIVE) {
                        p->state = RF_RUN_ACTIVE;
                        p->activated_at = ctx->now_ms;
                        put_run(ctx, p);
                }
        }
        v[cur].state = RF_RUN_ROLLED_BACK;
        snprintf(note, sizeof(note), "rolled back to %s", v[prev[0]].run_id);
        add_reason(&v[cur], "%s", note);
        put_run(ctx, &v[cur]);
        if ((r = hist_forget(ctx, v[cur].run_id))) {
                snprintf(errstr, errstr_size, "rollback history: %s",
                         rf_err2str(r));
                goto out;
        }
        rf_log_info("runs", "run %s %s", v[cur].run_id, note);
        snprintf(errstr, errstr_size, "run %s %s", v[cur].run_id, note);
        r = 0;
out:
        runs_free(v, n);
        return r;
}

/* ---- the read path ------------------------------------------------------*/

/* Active pointers as last read, per thread: every read and every list a
 * fan-out reaches follows its surface's pointer, which changes only when a
 * run is activated or rolled back. A slot is good while its store's runs
 * epoch is unchanged (rf_store_cf_epoch). Fixed-size strings: a thread's
 * slots are never freed. */
#define ACTIVE_SLOTS 8

typedef struct active_slot {
        uint64_t store_id; /* 0: empty */
        uint64_t epoch;
        int r; /* 0 or RF_ENOENT */
        int64_t gen;
        char surface[64];
        char run_id[128];
} active_slot_t;

static _Thread_local active_slot_t active_slots[ACTIVE_SLOTS];
static _Thread_local unsigned active_evict;

/* active_get() through the slots, with the run id in \p run_id (at least
 * sizeof(active_slot_t.run_id) bytes) or *heap (longer ids). */
static int active_cached(rf_store_t *st, const char *surface, char *run_id,
                         char **heap, int64_t *gen)
{
        uint64_t id = rf_store_id(st), epoch;
        active_slot_t *s = NULL;
        char *rid = NULL;
        int r;

        *heap = NULL;
        for (int i = 0; i < ACTIVE_SLOTS; i++)
                if (active_slots[i].store_id == id &&
                    !strcmp(active_slots[i].surface, surface)) {
                        s = &active_slots[i];
                        break;
                }
        /* Before the read: a commit after it moves the epoch on. */
        epoch = rf_store_cf_epoch(st, RF_CF_RUNS);
        if (s && s->epoch == epoch) {
                if (s->r == 0) {
                        strcpy(run_id, s->run_id);
                        *gen = s->gen;
                }
                return s->r;
        }
        r = active_get(st, NULL, surface, &rid, gen);
        if (r != 0 && r != RF_ENOENT)
                return r;
        if (r == 0 && strlen(rid) >= sizeof(s->run_id)) {
                *heap = rid; /* not cached */
                return 0;
        }
        if (r == 0)
                strcpy(run_id, rid);
        if (!s && strlen(surface) < sizeof(s->surface))
                s = &active_slots[active_evict++ % ACTIVE_SLOTS];
        if (s) {
                s->store_id = id;
                s->epoch = epoch;
                s->r = r;
                s->gen = r == 0 ? *gen : 0;
                snprintf(s->surface, sizeof(s->surface), "%s", surface);
                snprintf(s->run_id, sizeof(s->run_id), "%s", r ? "" : rid);
        }
        free(rid);
        return r;
}

/* Reads the incremental list of \p lkey into \p inc (its read's result in
 * *ri): whether it is the one to serve, given \p rv, the result of reading
 * the active run's version. It is when the run has no version of the list,
 * or the incremental list is newer than the run. */
static int incremental_wins(rf_store_t *st, const char *lkey, size_t klen,
                            int rv, int64_t run_gen, rf_pinned_t *inc, int *ri)
{
        rf_list_t *h = NULL;
        int wins;

        *ri = rf_store_get_pinned(st, RF_CF_LISTS, lkey, klen, inc);
        wins = rv == RF_ENOENT ||
               (rv == 0 && *ri == 0 &&
                rf_list_decode_header(inc->data, inc->len, &h) == 0 &&
                h->generated_at > run_gen);
        rf_list_destroy(h);
        return wins;
}

/* The pointer first: once it names a run, that run's version is what a
 * read serves (it is never deleted while active). \p vk gets the key of
 * the active run's version of \p lkey, and *run_gen the run's time.
 * @returns 0, RF_ENOENT (no run active: the incremental list serves) or a
 *          store error. */
static int active_version(rf_store_t *st, const char *surface, const char *lkey,
                          size_t klen, rf_buf_t *vk, int64_t *run_gen)
{
        char idbuf[sizeof(((active_slot_t *)0)->run_id)], *heap;
        int r = active_cached(st, surface, idbuf, &heap, run_gen);

        if (r == 0)
                version_key(vk, heap ? heap : idbuf, lkey, klen);
        free(heap);
        return r == RF_EINVAL ? RF_ESTORE : r;
}

int rf_runs_lookup_pinned(rf_store_t *st, const char *surface, const char *lkey,
                          size_t klen, rf_pinned_t *val)
{
        rf_pinned_t inc = { 0 };
        rf_buf_t k = { 0 };
        int64_t run_gen = 0;
        int r, ri;

        rf_pinned_release(val);
        r = active_version(st, surface, lkey, klen, &k, &run_gen);
        if (r == RF_ENOENT)
                return rf_store_get_pinned(st, RF_CF_LISTS, lkey, klen, val);
        if (r != 0)
                return r;
        r = rf_store_get_pinned(st, RF_CF_VERSIONS, k.data, k.len, val);
        if (incremental_wins(st, lkey, klen, r, run_gen, &inc, &ri)) {
                r = ri;
                rf_pinned_release(val);
                *val = inc;
                inc = (rf_pinned_t){ 0 };
        }
        rf_pinned_release(&inc);
        rf_buf_free(&k);
        return r;
}

int rf_runs_read_head(rf_store_t *st, const char *surface, const char *lkey,
                      size_t klen, size_t head, int refill, rf_list_t **listp,
                      size_t *total, rf_pinned_t *val)
{
        rf_list_cache_t *lc = rf_store_list_cache(st);
        rf_pinned_t inc = { 0 };
        rf_buf_t k = { 0 };
        int64_t run_gen = 0;
        uint64_t gen = 0, itok = 0, etok = 0;
        int r, ri, hit = 0;

        *listp = NULL;
        *total = 0;
        rf_pinned_release(val);
        r = active_version(st, surface, lkey, klen, &k, &run_gen);
        if (r == RF_ENOENT) {
                lc = NULL; /* incremental lists are not cached */
                r = rf_store_get_pinned(st, RF_CF_LISTS, lkey, klen, val);
                goto decode;
        }
        if (r != 0)
                return r;
        if (lc) {
                /* Before the store read: a write after it moves the
                 * generation on, and what this read got is not cached. */
                gen = rf_list_cache_gen(lc);
                /* Before the incremental list's lookup, as the generation:
                 * a write of it after this moves the token on. */
                itok = rf_list_cache_inc_token(lc, lkey, klen);
                /* A shorter head than this read wants misses: the read
                 * caches the longer one. */
                hit = !refill && rf_list_cache_get(lc, k.data, k.len, head,
                                                   listp, total, &etok);
        }
        if (hit && etok == itok) {
                /* The version beat the incremental list, which no batch
                 * has written since: no lookup. */
                rf_buf_free(&k);
                return 0;
        }
        r = hit ? 0
                : rf_store_get_pinned(st, RF_CF_VERSIONS, k.data, k.len, val);
        if (incremental_wins(st, lkey, klen, r, run_gen, &inc, &ri)) {
                r = ri;
                lc = NULL;
                hit = 0;
                rf_list_destroy(*listp);
                *listp = NULL;
                rf_pinned_release(val);
                *val = inc;
                inc = (rf_pinned_t){ 0 };
        } else if (ri != 0 && ri != RF_ENOENT) {
                itok = 0; /* the lookup failed: not known to lose */
        } else if (hit) {
                rf_list_cache_set_inc(lc, k.data, k.len, itok);
        }
        rf_pinned_release(&inc);
decode:
        if (r == 0 && !hit) {
                if (rf_list_decode_head(val->data, val->len, head, listp,
                                        total) != 0)
                        r = RF_EINVAL;
                else if (lc)
                        rf_list_cache_put(lc, k.data, k.len, gen, *listp,
                                          *total, itok);
        }
        rf_buf_free(&k);
        return r;
}

int rf_runs_lookup(rf_store_t *st, const char *surface, const char *lkey,
                   size_t klen, rf_buf_t *val)
{
        rf_pinned_t p = { 0 };

        return rf_pinned_copy(
            rf_runs_lookup_pinned(st, surface, lkey, klen, &p), &p, val);
}

int rf_runs_version_served(rf_store_t *st, const char *lkey, size_t klen,
                           const char *region)
{
        char idbuf[sizeof(((active_slot_t *)0)->run_id)];
        char *heap = NULL;
        size_t base, rlen;
        rf_list_key_t lk;
        int64_t gen;
        int r;

        const char *rid = rf_key_list_run(lkey, klen, region, &base, &rlen);
        if (!rid || rf_key_list_split(lkey, base, &lk) != 0)
                return 1; /* incremental: not skipped */
        r = active_cached(st, lk.surface, idbuf, &heap, &gen);
        if (r == RF_ENOENT)
                return 0; /* no run active: only incremental lists serve */
        if (r != 0)
                return 1; /* unknown: do the work */
        const char *run = heap ? heap : idbuf;
        r = strlen(run) == rlen && !memcmp(run, rid, rlen);
        free(heap);
        return r;
}

int rf_runs_indexed_get(rf_txn_t *txn, const char *ikey, size_t iklen,
                        const char *region, rf_buf_t *val)
{
        size_t base, rlen;
        const char *rid = rf_key_list_run(ikey, iklen, region, &base, &rlen);
        rf_buf_t k = { 0 };
        int r;

        if (!rid)
                return rf_txn_get(txn, RF_CF_LISTS, ikey, iklen, val);
        rf_key_version(&k, rid, rlen, ikey, base);
        r = rf_txn_get(txn, RF_CF_VERSIONS, k.data, k.len, val);
        rf_buf_free(&k);
        return r;
}

int rf_runs_active_all(rf_store_t *st, rf_txn_t *txn, rf_active_runs_t *out)
{
        char p = K_ACTIVE;
        rf_iter_t *it = rf_iter_new(st, txn, RF_CF_RUNS, &p, 1);
        int r = 0;

        memset(out, 0, sizeof(*out));
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                char *rid;
                if (active_decode(v, vlen, &rid, NULL) != 0) {
                        /* Reads of its surface fail on it; the others and
                         * the user events go on without its lists. */
                        rf_log_error("runs",
                                     "active-run pointer of surface %.*s is "
                                     "corrupt: skipped",
                                     (int)(klen - 1), k + 1);
                        continue;
                }
                size_t n = out->cnt + 1;
                out->surface = rf_realloc(out->surface, n * sizeof(char *));
                out->run_id = rf_realloc(out->run_id, n * sizeof(char *));
                out->surface[out->cnt] = rf_strndup(k + 1, klen - 1);
                out->run_id[out->cnt] = rid;
                out->cnt = n;
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        if (r)
                rf_active_runs_clear(out);
        return r;
}

const char *rf_active_runs_of(const rf_active_runs_t *a, const char *surface)
{
        for (size_t i = 0; i < a->cnt; i++)
                if (!strcmp(a->surface[i], surface))
                        return a->run_id[i];
        return NULL;
}

int rf_active_runs_first(const rf_active_runs_t *a, size_t i)
{
        for (size_t j = 0; j < i; j++)
                if (!strcmp(a->run_id[j], a->run_id[i]))
                        return 0;
        return 1;
}

void rf_active_runs_clear(rf_active_runs_t *a)
{
        for (size_t i = 0; i < a->cnt; i++) {
                free(a->surface[i]);
                free(a->run_id[i]);
        }
        free(a->surface);
        free(a->run_id);
        memset(a, 0, sizeof(*a));
}

int rf_runs_subject_versions(rf_store_t *st, rf_txn_t *txn, const char *subject,
                             rf_subject_lists_t *out)
{
        rf_buf_t prefix = { 0 }, ik = { 0 };
        rf_active_runs_t act;
        int r = rf_runs_active_all(st, txn, &act);

        for (size_t i = 0; r == 0 && i < act.cnt; i++) {
                const char *rid = act.run_id[i];
                size_t rlen = strlen(rid);
                if (!rf_active_runs_first(&act, i))
                        continue; /* active on several surfaces: once */
                rf_buf_reset(&prefix);
                rf_buf_append(&prefix, rid, rlen + 1);
                rf_key_list_subject_prefix(&prefix, subject);
                rf_iter_t *it = rf_iter_new(st, txn, RF_CF_VERSIONS,
                                            prefix.data, prefix.len);
                for (; rf_iter_valid(it); rf_iter_next(it)) {
                        size_t klen, vlen;
                        const char *k = rf_iter_key(it, &klen);
                        const char *v = rf_iter_value(it, &vlen);
                        const char *on;
                        rf_list_key_t lk;
                        rf_list_t *l;
                        if (rf_key_list_split(k + rlen + 1, klen - rlen - 1,
                                              &lk) != 0 ||
                            !(on = rf_active_runs_of(&act, lk.surface)) ||
                            strcmp(on, rid) != 0)
                                continue; /* not served on its surface */
                        if (rf_list_decode(v, vlen, &l) != 0) {
                                rf_log_error("runs",
                                             "corrupt list of %s in run %s: "
                                             "skipped",
                                             subject, rid);
                                continue;
                        }
                        rf_buf_reset(&ik);
                        rf_buf_append(&ik, k + rlen + 1, klen - rlen - 1);
                        rf_buf_append(&ik, "", 1);
                        rf_buf_append(&ik, rid, rlen);
                        rf_subject_lists_add(out, ik.data, ik.len, l, 1);
                }
                r = rf_iter_status(it);
                rf_iter_destroy(it);
        }
        rf_active_runs_clear(&act);
        rf_buf_free(&prefix);
        rf_buf_free(&ik);
        return r;
}

/* ---- upkeep: open runs, purge, spool ------------------------------------*/

struct rf_runs {
        char *data_dir;
        char *spool;       /* data_dir/spool */
        int64_t last_ms;   /* last full step (monotonic) */
        int busy;          /* purge work left */
        char *job;         /* spool job taken in the uncommitted txn */
        char result[2048]; /* its outcome */
};

rf_runs_t *rf_runs_new(const char *data_dir)
{
        rf_runs_t *r = rf_calloc(1, sizeof(*r));
        rf_buf_t p = { 0 };

        r->data_dir = rf_strdup(data_dir);
        rf_buf_printf(&p, "%s/spool", data_dir);
        r->spool = rf_strdup(p.data);
        rf_buf_free(&p);
        r->busy = 1; /* until a step finds nothing to purge */
        return r;
}

void rf_runs_destroy(rf_runs_t *r)
{
        if (!r)
                return;
        free(r->data_dir);
        free(r->spool);
        free(r->job);
        free(r);
}

int rf_runs_busy(const rf_runs_t *r)
{
        return r->busy;
}

const char *rf_runs_spool_dir(const rf_runs_t *r)
{
        return r->spool;
}

/* Looks at every open run: validates those ready, expires stale ones. */
static int step_open(rf_apply_ctx_t *ctx)
{
        char p = K_OPEN;
        rf_iter_t *it = rf_iter_new(ctx->st, ctx->txn, RF_CF_RUNS, &p, 1);
        char **ids = NULL;
        size_t n = 0;

        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                ids = rf_realloc(ids, (n + 1) * sizeof(*ids));
                ids[n] = rf_malloc(klen);
                memcpy(ids[n], k + 1, klen - 1);
                ids[n++][klen - 1] = '\0';
        }
        rf_iter_destroy(it);
        for (size_t i = 0; i < n; i++) {
                rf_run_info_t ri;
                if (rf_runs_get(ctx->st, ctx->txn, ids[i], &ri) != 0)
                        continue;
                if (run_ready(&ri, ctx->conf, ctx->now_ms)) {
                        decide(ctx, &ri);
                } else if (ri.state != RF_RUN_COMPLETED &&
                           ctx->now_ms >= ri.first_seen_at +
                                              ctx->conf->runs_staged_ttl_ms) {
                        add_reason(&ri, "%s",
                                   ri.state == RF_RUN_UNANNOUNCED
                                       ? "never announced (no run_started) "
                                         "within runs.staged_ttl"
                                       : "not completed within "
                                         "runs.staged_ttl");
                        ri.state = RF_RUN_EXPIRED;
                        discard_version(ctx, &ri);
                        put_run(ctx, &ri);
                        rf_log_warn("runs", "run %s expired: %s", ri.run_id,
                                    ri.reasons[ri.reason_cnt - 1]);
                }
                rf_run_info_clear(&ri);
        }
        strv_free_n(ids, n);
        return 0;
}

/* Deletes up to \p budget stored versions under \p prefix (a run id, its
 * NUL, and maybe more of the list key) with their reverse-index entries;
 * *more says whether some are left. @returns how many were deleted. */
static size_t delete_versions(rf_apply_ctx_t *ctx, const rf_buf_t *prefix,
                              size_t budget, int *more)
{
        const char *run_id = prefix->data; /* up to its NUL */
        size_t run_len = strlen(run_id) + 1, n = 0;
        rf_buf_t batch = { 0 };
        rf_iter_t *it;

        /* Copy the chunk out: the batch must not change under an iterator
         * that reads through it. */
        it = rf_iter_new(ctx->st, ctx->txn, RF_CF_VERSIONS, prefix->data,
                         prefix->len);
        for (; n < budget && rf_iter_valid(it); rf_iter_next(it), n++) {
                size_t kl, vl;
                const char *key = rf_iter_key(it, &kl);
                const char *val = rf_iter_value(it, &vl);
                rf_buf_put_varint(&batch, kl);
                rf_buf_append(&batch, key, kl);
                rf_buf_put_varint(&batch, vl);
                rf_buf_append(&batch, val, vl);
        }
        /* 1: more to delete, 0: done, -1: a read error stopped the walk
         * (what was read is still deleted; the rest is not done). */
        *more = rf_iter_valid(it) ? 1 : rf_iter_status(it) ? -1 : 0;
        rf_iter_destroy(it);

        rf_cur_t c = { batch.data, batch.data + batch.len, 0 };
        for (size_t i = 0; i < n && !c.err; i++) {
                size_t kl = rf_cur_varint(&c);
                const char *key = c.p;
                c.p += kl;
                size_t vl = rf_cur_varint(&c);
                rf_list_t *l;
                if (rf_list_decode(c.p, vl, &l) == 0) {
                        index_each(ctx->txn, run_id, key + run_len,
                                   kl - run_len, l, 0);
                        rf_list_destroy(l);
                }
                c.p += vl;
                rf_txn_delete(ctx->txn, RF_CF_VERSIONS, key, kl);
        }
        rf_buf_free(&batch);
        return n;
}

/* Deletes up to runs.purge_chunk lists of the first discarded version.
 * @returns 1 if work is left, 0 if not, or RF_ESTORE if a read failed (the
 * step is not committed: retried without end, it would spin). */
static int step_purge(rf_apply_ctx_t *ctx)
{
        char p = K_PURGE;
        rf_iter_t *it = rf_iter_new(ctx->st, ctx->txn, RF_CF_RUNS, &p, 1);
        rf_buf_t pk = { 0 }, prefix = { 0 };
        int more;

        if (!rf_iter_valid(it)) {
                rf_iter_destroy(it);
                return 0;
        }
        size_t klen;
        const char *k = rf_iter_key(it, &klen);
        rf_buf_append(&pk, k, klen);
        rf_iter_destroy(it);
        rf_buf_append(&prefix, pk.data + 1, pk.len - 1);
        rf_buf_append(&prefix, "", 1);
        const char *run_id = prefix.data;

        delete_versions(ctx, &prefix, (size_t)ctx->conf->runs_purge_chunk,
                        &more);
        if (more < 0) {
                rf_log_error("runs",
                             "run %s: deleting the version: store read error",
                             run_id);
                rf_buf_free(&pk);
                rf_buf_free(&prefix);
                return RF_ESTORE;
        }
        if (!more) {
                rf_txn_delete(ctx->txn, RF_CF_RUNS, pk.data, pk.len);
                rf_log_info("runs", "run %s: version deleted", run_id);
        }
        rf_buf_free(&pk);
        rf_buf_free(&prefix);
        return 1;
}

int rf_runs_purge_subject(rf_apply_ctx_t *ctx, const char *subject)
{
        rf_buf_t runs = { 0 }, prefix = { 0 };
        size_t nruns = 0, purged = 0;
        rf_iter_t *it;
        int err = 0;

        /* The run ids first (few: staged runs and kept versions). */
        it = rf_iter_new(ctx->st, ctx->txn, RF_CF_RUNS, "R", 1);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                rf_buf_put_varint(&runs, klen - 1);
                rf_buf_append(&runs, k + 1, klen - 1);
                nruns++;
        }
        if (rf_iter_status(it))
                err = RF_ESTORE;
        rf_iter_destroy(it);

        rf_cur_t rc = { runs.data, runs.data + runs.len, 0 };
        for (size_t r = 0; r < nruns && !rc.err && !err; r++) {
                size_t rl = rf_cur_varint(&rc);
                rf_buf_reset(&prefix);
                rf_buf_append(&prefix, rc.p, rl);
                rc.p += rl;
                rf_buf_append(&prefix, "", 1);
                rf_key_list_subject_prefix(&prefix, subject);

                int more;
                purged += delete_versions(ctx, &prefix, SIZE_MAX, &more);
                if (more < 0)
                        err = RF_ESTORE;
        }
        rf_buf_free(&runs);
        rf_buf_free(&prefix);
        return err ? err : (int)purged;
}

/* @returns the pid in \p name if it is the build directory of a load
 * (".tmp-load-<pid>-XXXXXX", or ".tmp-load-<pid>" as older versions named
 * it), else 0. */
static long tmp_load_pid(const char *name)
{
        static const char pre[] = ".tmp-load-";
        char *end;
        long pid;

        if (strncmp(name, pre, sizeof(pre) - 1) ||
            !isdigit((unsigned char)name[sizeof(pre) - 1]))
                return 0;
        errno = 0;
        pid = strtol(name + sizeof(pre) - 1, &end, 10);
        if (errno || pid <= 0 || (*end && *end != '-'))
                return 0;
        return pid;
}

/* Removes \p name from \p spool_dir if it is the build directory of a load
 * whose process is gone (killed, crashed): no process has its pid, and
 * none holds its lock (a load locks it while it builds: its pid may be in
 * another pid namespace). @returns 1 if removed. */
static int sweep_one(const char *spool_dir, const char *name)
{
        long pid = tmp_load_pid(name);
        rf_buf_t p = { 0 };
        int fd, gone = 0;

        if (!pid || pid == (long)getpid() || !rf_pid_gone(pid))
                return 0; /* not one, or its load may still run */
        rf_buf_printf(&p, "%s/%s", spool_dir, name);
        fd = open(p.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
                rf_runs_remove_job(p.data);
                rf_log_info("runs", "removed %s, left by load process %ld",
                            p.data, pid);
                gone = 1;
        }
        if (fd >= 0)
                close(fd);
        rf_buf_free(&p);
        return gone;
}

int rf_runs_spool_sweep(const char *spool_dir)
{
        DIR *d = opendir(spool_dir);
        struct dirent *de;
        int n = 0;

        while (d && (de = readdir(d)))
                n += sweep_one(spool_dir, de->d_name);
        if (d)
                closedir(d);
        return n;
}

int rf_runs_spool_job_name(const char *name)
{
        static const char *const kinds[] = { "load", "rollback" };
        const char *p = name;
        size_t len;

        while (isdigit((unsigned char)*p))
                p++;
        if (p == name || *p++ != '-')
                return 0;
        for (size_t i = 0; i < RF_ARRAY_SIZE(kinds); i++) {
                len = strlen(kinds[i]);
                if (!strncmp(p, kinds[i], len) && p[len] == '-') {
                        p += len + 1;
                        const char *pid = p;
                        while (isdigit((unsigned char)*p))
                                p++;
                        return p > pid && !*p;
                }
        }
        return 0;
}

/* The first job in the spool (name order = submission order), or NULL.
 * Only names rf_runs_spool_submit() gives are jobs: not results, nor the
 * temporary files they are written through. Build directories of loads
 * that died are removed on the way. */
static char *spool_next(const rf_runs_t *r)
{
        DIR *d = opendir(r->spool);
        struct dirent *de;
        char *best = NULL;

        if (!d)
                return NULL;
        while ((de = readdir(d))) {
                if (!rf_runs_spool_job_name(de->d_name)) {
                        sweep_one(r->spool, de->d_name);
                        continue;
                }
                if (!best || strcmp(de->d_name, best) < 0) {
                        free(best);
                        best = rf_strdup(de->d_name);
                }
        }
        closedir(d);
        return best;
}

int rf_runs_step(rf_runs_t *r, rf_apply_ctx_t *ctx, int force)
{
        int64_t now = rf_mono_ms();
        int rc = 0;

        if (force || now - r->last_ms >= STEP_EVERY_MS) {
                r->last_ms = now;
                step_open(ctx);
                char *name = r->job ? NULL : spool_next(r);
                if (name) {
                        rf_buf_t path = { 0 };
                        rf_buf_printf(&path, "%s/%s", r->spool, name);
                        rc = rf_runs_take_job(r, ctx, path.data, r->result,
                                              sizeof(r->result));
                        if (rc == 0)
                                r->job = rf_strdup(name);
                        rf_buf_free(&path);
                        free(name);
                }
        }
        if (rc == 0 && (r->busy || force)) {
                int p = step_purge(ctx);
                if (p < 0)
                        rc = p; /* busy stays as it was */
                else
                        r->busy = p;
        }
        /* A failed write hook (rollback history): not committed. */
        if (rc == 0 && ctx->err) {
                rc = ctx->err;
                ctx->err = 0;
        }
        return rc;
}

void rf_runs_remove_job(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;

        if (!d) {
                unlink(path);
                return;
        }
        while ((de = readdir(d))) {
                rf_buf_t p = { 0 };
                if (de->d_name[0] == '.' &&
                    (!de->d_name[1] || !strcmp(de->d_name, "..")))
                        continue;
                rf_buf_printf(&p, "%s/%s", path, de->d_name);
                unlink(p.data);
                rf_buf_free(&p);
        }
        closedir(d);
        rmdir(path);
}

static int write_text(const char *path, const char *text)
{
        rf_buf_t tmp = { 0 };
        FILE *fp;
        int rc = -1;

        rf_buf_printf(&tmp, "%s.tmp", path);
        if ((fp = fopen(tmp.data, "w"))) {
                int bad = fputs(text, fp) == EOF;
                if (fclose(fp) == 0 && !bad && rename(tmp.data, path) == 0)
                        rc = 0;
                if (rc != 0) {
                        int err = errno;
                        unlink(tmp.data); /* never left behind */
                        errno = err;
                }
        }
        rf_buf_free(&tmp);
        return rc;
}

void rf_runs_committed(rf_runs_t *r, int ok)
{
        rf_buf_t p = { 0 }, res = { 0 };

        if (!r->job)
                return;
        if (ok) {
                rf_buf_printf(&p, "%s/%s", r->spool, r->job);
                rf_runs_remove_job(p.data);
                rf_buf_reset(&p);
                rf_buf_printf(&p, "%s/%s.result", r->spool, r->job);
                rf_buf_printf(&res, "%s\n", r->result);
                if (write_text(p.data, res.data) != 0)
                        rf_log_error("runs", "%s: %s", p.data, strerror(errno));
        }
        /* Not ok: the job stays in the spool and is taken again. */
        free(r->job);
        r->job = NULL;
        rf_buf_free(&p);
        rf_buf_free(&res);
}

/* ---- spool jobs ---------------------------------------------------------*/

int rf_runs_write_rollback(const char *path, const char *run_id, const char *to,
                           char *errstr, size_t errstr_size)
{
        rf_buf_t t = { 0 };
        int rc = 0;

        /* One line each: an id holding a line break would add lines of
         * its own (to=x\nrun= rolls back another run). */
        for (const char *id = run_id; id; id = id == run_id ? to : NULL)
                for (const char *c = id; *c; c++)
                        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                                snprintf(errstr, errstr_size,
                                         "run ids hold no control "
                                         "characters");
                                return RF_EINVAL;
                        }
        rf_buf_printf(&t, "run=%s\nto=%s\n", run_id ? run_id : "",
                      to ? to : "");
        if (write_text(path, t.data) != 0) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                rc = RF_EIO;
        }
        rf_buf_free(&t);
        return rc;
}

static int take_rollback(rf_apply_ctx_t *ctx, const char *path, char *result,
                         size_t result_size)
{
        char line[1024], run_id[sizeof(line)] = "", to[sizeof(line)] = "";
        FILE *fp = fopen(path, "r");
        int has_run = 0;

        if (!fp) {
                snprintf(result, result_size, "error: %s: %s", path,
                         strerror(errno));
                return 0;
        }
        while (fgets(line, sizeof(line), fp)) {
                line[strcspn(line, "\n")] = '\0';
                if (!strncmp(line, "run=", 4)) {
                        snprintf(run_id, sizeof(run_id), "%s", line + 4);
                        has_run = 1;
                } else if (!strncmp(line, "to=", 3)) {
                        snprintf(to, sizeof(to), "%s", line + 3);
                }
        }
        fclose(fp);
        if (!has_run) {
                /* Not what rf_runs_write_rollback() writes: an empty run
                 * would roll back the latest run, which nobody asked. */
                snprintf(result, result_size,
                         "error: %s: not a rollback request (no run= line): "
                         "nothing rolled back",
                         path);
                rf_log_warn("runs", "%s", result + 7);
                return 0;
        }
        char msg[1024];
        int r = rf_runs_rollback(ctx, run_id, to, msg, sizeof(msg));
        if (r == RF_ESTORE)
                return r;
        snprintf(result, result_size, "%s: %s", r == 0 ? "ok" : "error", msg);
        return 0;
}

/* Names of the job's SST files for \p cf ("versions-", "index-"), sorted. */
static char **job_files(const char *dir, const char *prefix, size_t *np)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        char **v = NULL;
        size_t n = 0;

        while (d && (de = readdir(d))) {
                if (strncmp(de->d_name, prefix, strlen(prefix)))
                        continue;
                rf_buf_t p = { 0 };
                rf_buf_printf(&p, "%s/%s", dir, de->d_name);
                v = rf_realloc(v, (n + 1) * sizeof(*v));
                v[n++] = p.data;
        }
        if (d)
                closedir(d);
        for (size_t i = 1; i < n; i++) /* few files: insertion sort */
                for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
                        char *t = v[j];
                        v[j] = v[j - 1];
                        v[j - 1] = t;
                }
        *np = n;
        return v;
}

/* The consent mark of the load job in \p dir (bulkload.h); a job without
 * one (built by an older recfresh) is taken as built before every
 * revocation still kept. */
static uint64_t job_consent_mark(const char *dir)
{
        unsigned long long mark = 0;
        rf_buf_t p = { 0 };
        FILE *fp;

        rf_buf_printf(&p, "%s/%s", dir, RF_BULKLOAD_CONSENT_MARK);
        if ((fp = fopen(p.data, "r"))) {
                if (fscanf(fp, "%llu", &mark) != 1)
                        mark = 0;
                fclose(fp);
        }
        rf_buf_free(&p);
        return (uint64_t)mark;
}

static int cmp_pn(const void *a, const void *b)
{
        return memcmp(a, b, 16);
}

/* Takes the lists of \p subject out of load \p ri: their versions and
 * index entries, and their counts (now blocked). @returns how many, or
 * RF_ESTORE (negative) if a read failed: the run must not be recorded. */
static long drop_subject(rf_apply_ctx_t *ctx, rf_run_info_t *ri,
                         const char *subject)
{
        rf_buf_t prefix = { 0 }, surface = { 0 };
        size_t run_len = strlen(ri->run_id) + 1, n = 0;
        int more, err;

        rf_buf_append(&prefix, ri->run_id, run_len);
        rf_key_list_subject_prefix(&prefix, subject);
        rf_iter_t *it = rf_iter_new(ctx->st, ctx->txn, RF_CF_VERSIONS,
                                    prefix.data, prefix.len);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t vl;
                const char *v = rf_iter_value(it, &vl);
                rf_list_t *l;
                rf_checker_t ck;
                if (rf_list_decode(v, vl, &l) != 0)
                        continue;
                /* Keys are in surface order: a subject counts once per
                 * surface. */
                int first = !surface.len || strcmp(surface.data, l->surface);
                rf_buf_reset(&surface);
                rf_buf_append(&surface, l->surface, strlen(l->surface) + 1);
                rf_checker_init(&ck, ctx->st, ctx->txn, l->subject_id,
                                l->region);
                count_list(ri, ctx->conf, l, first, &ck, -1);
                rf_checker_clear(&ck);
                /* counted against the tombstones of the build: no lower */
                rf_run_stats_t *s = rf_run_info_stats(ri, l->surface);
                if (s->invalid < 0)
                        s->invalid = 0;
                ri->blocked++;
                rf_list_destroy(l);
        }
        err = rf_iter_status(it);
        rf_iter_destroy(it);
        if (!err) {
                n = delete_versions(ctx, &prefix, SIZE_MAX, &more);
                err = more < 0;
        }
        rf_buf_free(&prefix);
        rf_buf_free(&surface);
        return err ? RF_ESTORE : (long)n;
}

/* Consent revoked while load \p ri was in flight (after its build checked
 * consent as of \p mark, before this take): the lists of those users were
 * built before their revocation, which purged every other copy, so they
 * leave the run before it is recorded, even if consent was granted again
 * since. Called after the ingestion, in the batch that records the run.
 * @returns 0 or RF_ESTORE. */
static int drop_revoked(rf_apply_ctx_t *ctx, rf_run_info_t *ri,
                        unsigned char *pns, size_t pn_cnt)
{
        rf_buf_t prefix = { 0 }, last = { 0 }, hit = { 0 };
        size_t run_len = strlen(ri->run_id) + 1, subjects = 0, lists = 0;
        int64_t t0 = rf_mono_ms();
        int rc = 0;

        qsort(pns, pn_cnt, 16, cmp_pn);
        rf_buf_append(&prefix, ri->run_id, run_len);
        /* The run's subjects against the revoked, one pseudonym each; the
         * matches copied out (the deletions must not run under this
         * iterator). */
        rf_iter_t *it = rf_iter_new(ctx->st, ctx->txn, RF_CF_VERSIONS,
                                    prefix.data, prefix.len);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t kl;
                const char *k = rf_iter_key(it, &kl);
                const char *subject = k + run_len; /* NUL-terminated */
                if (!memchr(subject, '\0', kl - run_len))
                        continue;
                if (last.len && !strcmp(last.data, subject))
                        continue;
                rf_buf_reset(&last);
                rf_buf_append(&last, subject, strlen(subject) + 1);
                if (!strcmp(subject, RF_FALLBACK_SUBJECT))
                        continue;
                unsigned char pn[16];
                rf_store_pseudonym(ctx->st, subject, pn);
                if (bsearch(pn, pns, pn_cnt, 16, cmp_pn))
                        rf_buf_append(&hit, subject, strlen(subject) + 1);
        }
        if (rf_iter_status(it))
                rc = RF_ESTORE;
        rf_iter_destroy(it);
        for (size_t off = 0; rc == 0 && off < hit.len;
             off += strlen(hit.data + off) + 1, subjects++) {
                long d = drop_subject(ctx, ri, hit.data + off);
                if (d < 0)
                        rc = (int)d;
                else
                        lists += (size_t)d;
        }
        if (rc == 0)
                rf_log_info("runs",
                            "run %s: %zu lists of %zu subjects whose consent "
                            "was revoked during the load dropped (%zu "
                            "revocations, %.3f s)",
                            ri->run_id, lists, subjects, pn_cnt,
                            (double)(rf_mono_ms() - t0) / 1e3);
        rf_buf_free(&prefix);
        rf_buf_free(&last);
        rf_buf_free(&hit);
        return rc;
}

static int take_load(rf_apply_ctx_t *ctx, const char *dir, char *result,
                     size_t result_size)
{
        rf_buf_t mp = { 0 }, m = { 0 };
        rf_run_info_t ri = { 0 }, old;
        char **vf = NULL, **xf = NULL, err[512];
        unsigned char *revoked = NULL;
        size_t vn = 0, xn = 0, revoked_cnt = 0;
        FILE *fp;
        int rc = 0;

        rf_buf_printf(&mp, "%s/run", dir);
        if (!(fp = fopen(mp.data, "r"))) {
                snprintf(result, result_size, "error: %s: %s", mp.data,
                         strerror(errno));
                goto out;
        }
        char chunk[8192];
        size_t got;
        while ((got = fread(chunk, 1, sizeof(chunk), fp)) > 0)
                rf_buf_append(&m, chunk, got);
        fclose(fp);
        if (rf_run_info_decode(m.data, m.len, &ri) != 0) {
                snprintf(result, result_size, "error: %s: corrupt manifest",
                         mp.data);
                goto out;
        }
        int r = rf_runs_get(ctx->st, ctx->txn, ri.run_id, &old);
        if (r == 0) {
                int usable = (old.state == RF_RUN_STARTED ||
                              old.state == RF_RUN_UNANNOUNCED) &&
                             lists_total(&old) == 0;
                if (usable && !ri.surface_cnt && old.surface_cnt)
                        set_surfaces(&ri, (const char *const *)old.surfaces,
                                     old.surface_cnt);
                if (usable && !ri.generated_at)
                        ri.generated_at = old.generated_at;
                snprintf(result, result_size,
                         "error: run %s already exists (%s)", ri.run_id,
                         rf_run_state2str(old.state));
                rf_run_info_clear(&old);
                if (!usable)
                        goto out;
        } else if (r != RF_ENOENT) {
                rc = r;
                goto out;
        }
        /* Asked before the ingestion, which a job refused here must not
         * leave behind. */
        r = rf_consent_revoked_since(ctx->st, ctx->txn, job_consent_mark(dir),
                                     &revoked, &revoked_cnt);
        if (r == RF_ENOENT) {
                snprintf(result, result_size,
                         "error: run %s: built before consent revocations no "
                         "longer kept; load it again",
                         ri.run_id);
                goto out;
        } else if (r) {
                rc = r;
                goto out;
        }
        vf = job_files(dir, "versions-", &vn);
        xf = job_files(dir, "index-", &xn);
        if ((rc = rf_store_ingest(ctx->st, RF_CF_VERSIONS,
                                  (const char *const *)vf, vn, err,
                                  sizeof(err))) ||
            (rc = rf_store_ingest(ctx->st, RF_CF_INDEX, (const char *const *)xf,
                                  xn, err, sizeof(err)))) {
                rf_log_error("runs", "load of run %s: %s", ri.run_id, err);
                goto out;
        }
        if (revoked_cnt && (rc = drop_revoked(ctx, &ri, revoked, revoked_cnt)))
                goto out;
        ri.state = RF_RUN_COMPLETED;
        ri.kept = 1;
        ri.first_seen_at = ri.completed_at = ri.last_list_at = ctx->now_ms;
        decide(ctx, &ri);
        if (ri.state == RF_RUN_ACTIVE) {
                snprintf(result, result_size, "ok: run %s active (%lld lists)",
                         ri.run_id, (long long)lists_total(&ri));
        } else {
                size_t off =
                    (size_t)snprintf(result, result_size,
                                     "failed_validation: run %s", ri.run_id);
                for (size_t i = 0; i < ri.reason_cnt && off < result_size; i++)
                        off += (size_t)snprintf(result + off, result_size - off,
                                                "\n  %s", ri.reasons[i]);
        }
out:
        strv_free_n(vf, vn);
        strv_free_n(xf, xn);
        free(revoked);
        rf_run_info_clear(&ri);
        rf_buf_free(&mp);
        rf_buf_free(&m);
        return rc;
}

int rf_runs_take_job(rf_runs_t *r, rf_apply_ctx_t *ctx, const char *path,
                     char *result, size_t result_size)
{
        struct stat sb;

        (void)r;
        if (stat(path, &sb) != 0) {
                snprintf(result, result_size, "error: %s: %s", path,
                         strerror(errno));
                return 0;
        }
        rf_log_info("runs", "taking spool job %s", path);
        if (S_ISDIR(sb.st_mode))
                return take_load(ctx, path, result, result_size);
        return take_rollback(ctx, path, result, result_size);
}
