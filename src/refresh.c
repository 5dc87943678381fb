/*
 * recfresh - refresh runs: the daily full refresh and the incremental
 * refresh of active subjects (see refresh.h for the design).
 *
 * Run record ('R' run_id in the activity column family):
 *   u8 version (1), u8 mode, u8 done, started_at, finished_at,
 *   active_within (be64 each), subjects (varint),
 *   cursor (varint length + bytes: the last key walked),
 *   then, if present, start (varint length + bytes) and u8 wrapped
 * (records written before runs could resume end after the cursor: they
 * began at the start; and a binary from before reads these records, as
 * it ignores what follows the cursor).
 * A full run walks the lists column family (cursor: the last subject), an
 * active run the 'A' keys of the activity column family (cursor: the last
 * activity key).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/activity.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/refresh.h"
#include "recfresh/runs.h"
#include "recfresh/tombstone.h"

#define RUN_VERSION 1
#define DAY_MS      INT64_C(86400000)
#define STEP_MAX    200 /* subjects walked per step at most */

static void key_run(rf_buf_t *k, const char *run_id)
{
        rf_buf_reset(k);
        rf_buf_append(k, "R", 1);
        rf_buf_append(k, run_id, strlen(run_id));
}

static void run_encode(const rf_refresh_run_t *run, rf_buf_t *v)
{
        char hdr[3] = { RUN_VERSION, (char)run->mode, (char)run->done };

        rf_buf_reset(v);
        rf_buf_append(v, hdr, 3);
        rf_buf_put_be64(v, (uint64_t)run->started_at);
        rf_buf_put_be64(v, (uint64_t)run->finished_at);
        rf_buf_put_be64(v, (uint64_t)run->active_within);
        rf_buf_put_varint(v, run->subjects);
        rf_buf_put_varint(v, run->cursor.len);
        rf_buf_append(v, run->cursor.data, run->cursor.len);
        rf_buf_put_varint(v, run->start.len);
        rf_buf_append(v, run->start.data, run->start.len);
        rf_buf_append(v, &(char){ (char)run->wrapped }, 1);
}

/* Writes \p run's record into \p txn. */
static void run_put(rf_txn_t *txn, const rf_refresh_run_t *run)
{
        rf_buf_t k = { 0 }, v = { 0 };

        key_run(&k, run->run_id);
        run_encode(run, &v);
        rf_txn_put(txn, RF_CF_ACTIVITY, k.data, k.len, v.data, v.len);
        rf_buf_free(&k);
        rf_buf_free(&v);
}

static int run_decode(const char *run_id, size_t idlen, const char *buf,
                      size_t len, rf_refresh_run_t *run)
{
        rf_cur_t c = { buf, buf + len, 0 };
        uint64_t clen;

        memset(run, 0, sizeof(*run));
        if (rf_cur_u8(&c) != RUN_VERSION)
                return RF_EINVAL;
        run->mode = rf_cur_u8(&c);
        run->done = rf_cur_u8(&c);
        run->started_at = (int64_t)rf_cur_be64(&c);
        run->finished_at = (int64_t)rf_cur_be64(&c);
        run->active_within = (int64_t)rf_cur_be64(&c);
        run->subjects = rf_cur_varint(&c);
        clen = rf_cur_varint(&c);
        if (c.err || clen > (uint64_t)(c.end - c.p))
                return RF_EINVAL;
        rf_buf_append(&run->cursor, c.p, (size_t)clen);
        c.p += clen;
        if (c.p < c.end) {
                clen = rf_cur_varint(&c);
                if (c.err || clen > (uint64_t)(c.end - c.p)) {
                        rf_buf_free(&run->cursor);
                        return RF_EINVAL;
                }
                rf_buf_append(&run->start, c.p, (size_t)clen);
                c.p += clen;
                run->wrapped = rf_cur_u8(&c);
                if (c.err) {
                        rf_buf_free(&run->cursor);
                        rf_buf_free(&run->start);
                        return RF_EINVAL;
                }
        }
        run->run_id = rf_strndup(run_id, idlen);
        return 0;
}

void rf_refresh_run_clear(rf_refresh_run_t *run)
{
        free(run->run_id);
        rf_buf_free(&run->cursor);
        rf_buf_free(&run->start);
        memset(run, 0, sizeof(*run));
}

int rf_refresh_run_get(rf_store_t *st, rf_txn_t *txn, const char *run_id,
                       rf_refresh_run_t *run)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int r;

        memset(run, 0, sizeof(*run));
        key_run(&k, run_id);
        r = txn ? rf_txn_get(txn, RF_CF_ACTIVITY, k.data, k.len, &v)
                : rf_store_get(st, RF_CF_ACTIVITY, k.data, k.len, &v);
        if (r == 0 && run_decode(run_id, strlen(run_id), v.data, v.len, run))
                r = RF_EINVAL;
        rf_buf_free(&k);
        rf_buf_free(&v);
        return r;
}

/* Every run record (through \p txn, if not NULL) whose id starts with
 * \p prefix. @returns 0 or a store error (with what was read). */
static int runs_scan(rf_store_t *st, rf_txn_t *txn, const char *prefix,
                     rf_refresh_run_t **runs, size_t *cnt)
{
        rf_buf_t p = { 0 };
        int r;

        rf_buf_printf(&p, "R%s", prefix);
        rf_iter_t *it = rf_iter_new(st, txn, RF_CF_ACTIVITY, p.data, p.len);
        *runs = NULL;
        *cnt = 0;
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                rf_refresh_run_t run;
                if (run_decode(k + 1, klen - 1, v, vlen, &run))
                        continue;
                *runs = rf_realloc(*runs, (*cnt + 1) * sizeof(**runs));
                (*runs)[(*cnt)++] = run;
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        rf_buf_free(&p);
        return r;
}

int rf_refresh_runs_list(rf_store_t *st, rf_refresh_run_t **runs, size_t *cnt)
{
        int r = runs_scan(st, NULL, "", runs, cnt);

        if (r) { /* nothing half read */
                for (size_t i = 0; i < *cnt; i++)
                        rf_refresh_run_clear(&(*runs)[i]);
                free(*runs);
                *runs = NULL;
                *cnt = 0;
        }
        return r;
}

/* ---- what qualifies
 * ---------------------------------------------------------*/

/* Mode active: why \p l should be recomputed at \p now_ms, or NULL. */
static const char *stale_reason(const rf_refresh_src_t *src,
                                const char *subject, const rf_list_t *l,
                                int64_t now_ms)
{
        const rf_config_t *conf = src->conf;
        rf_checker_t ck;
        size_t invalid = 0;

        if (l->expires_at <= now_ms)
                return "list_expired";
        if (l->expires_at <= now_ms + conf->rc_expiry_horizon)
                return "list_expiring";
        if (l->generated_at < now_ms - conf->rc_max_age_ms)
                return "list_too_old";
        if (!l->item_cnt ||
            rf_checker_init(&ck, src->st, NULL, subject, l->region))
                return NULL;
        for (size_t i = 0; i < l->item_cnt; i++)
                invalid +=
                    rf_checker_check(&ck, &l->items[i]) != RF_FILTER_NONE;
        rf_checker_clear(&ck);
        if ((int64_t)(invalid * 100) >
            conf->rc_max_invalid_pct * (int64_t)l->item_cnt)
                return "list_degraded";
        return NULL;
}

static int queue_one(rf_queue_t *q, rf_txn_t *txn, const char *run_id,
                     rf_rc_mode_t mode, const char *subject,
                     const char *surface, const char *reason, int64_t now_ms)
{
        char rid[33];
        rf_queue_add_t add = {
                .subject_id = subject,
                .surface = surface,
                .mode = mode,
                .request_id = rf_queue_request_id(run_id, subject, rid),
                .run_id = run_id,
                .reason_type = reason,
                .entity_kind = reason ? "user" : NULL,
                .entity_id = reason ? subject : NULL,
        };
        int r = rf_queue_add(q, txn, &add, now_ms);

        return r == RF_EBLOCKED ? 0 : r;
}

/* Mode full: queues \p subject for each servable surface. @returns 1 if
 * queued, 0 if not, or a store error. */
static int full_subject(const rf_refresh_src_t *src, rf_queue_t *q,
                        rf_txn_t *txn, const char *run_id, const char *subject,
                        char **surfaces, size_t n, int64_t now_ms)
{
        int fallback = !strcmp(subject, RF_FALLBACK_SUBJECT), queued = 0;
        int b;

        if (!fallback && (b = rf_consent_purged(src->st, NULL, subject)) != 0)
                return b < 0 ? b : 0;
        for (size_t i = 0; i < n; i++) {
                int r;
                if (!fallback &&
                    (b = rf_consent_blocks(src->st, NULL, src->conf, subject,
                                           surfaces[i])) != 0) {
                        if (b < 0)
                                return b;
                        continue;
                }
                r = queue_one(q, txn, run_id, RF_RC_FULL, subject, surfaces[i],
                              NULL, now_ms);
                if (r < 0)
                        return r;
                queued = 1;
        }
        return queued;
}

/* The length of list \p i's key without a run id. */
static size_t list_base(const rf_subject_lists_t *sl, size_t i)
{
        size_t base, rlen;

        if (!sl->in_run[i])
                return sl->keys[i].len;
        rf_key_list_run(sl->keys[i].data, sl->keys[i].len, NULL, &base, &rlen);
        return base;
}

/* Whether lists \p i and \p j of \p sl have one list key. */
static int same_list(const rf_subject_lists_t *sl, size_t i, size_t j)
{
        size_t b = list_base(sl, i);

        return list_base(sl, j) == b &&
               !memcmp(sl->keys[i].data, sl->keys[j].data, b);
}

/* Mode active: queues \p subject's stale lists. */
static int active_subject(const rf_refresh_src_t *src, rf_queue_t *q,
                          rf_txn_t *txn, const char *run_id,
                          const char *subject, int64_t now_ms)
{
        rf_subject_lists_t sl;
        int r, queued = 0;

        if ((r = rf_consent_purged(src->st, NULL, subject)) != 0)
                return r < 0 ? r : 0;
        if ((r = rf_lists_of_subject(src->st, NULL, subject, &sl)))
                return r;
        for (size_t i = 0; i < sl.cnt && r >= 0; i++) {
                const rf_list_t *l = sl.lists[i];
                rf_list_t *served = NULL;
                const char *why;
                int twin = 0, earlier = 0;
                /* A list key held both as an incremental list and as a
                 * run's version: judged once, by the one reads serve. */
                for (size_t j = 0; j < sl.cnt; j++)
                        if (j != i && same_list(&sl, i, j)) {
                                twin = 1;
                                earlier |= j < i;
                        }
                if (earlier)
                        continue;
                if (twin) {
                        rf_buf_t v = { 0 };
                        if (rf_runs_lookup(src->st, l->surface, sl.keys[i].data,
                                           list_base(&sl, i), &v) == 0 &&
                            rf_list_decode(v.data, v.len, &served) == 0)
                                l = served;
                        rf_buf_free(&v);
                }
                int b = rf_consent_blocks(src->st, NULL, src->conf, subject,
                                          l->surface);
                if (b < 0)
                        r = b; /* unknown: fail, never guess */
                else if (!b && (why = stale_reason(src, subject, l, now_ms))) {
                        r = queue_one(q, txn, run_id, RF_RC_ACTIVE, subject,
                                      l->surface, why, now_ms);
                        queued = 1;
                }
                rf_list_destroy(served);
        }
        rf_subject_lists_clear(&sl);
        return r < 0 ? r : queued;
}

/* One source of a full run's walk: the incremental lists, or the versions
 * of a run active on some surface (keys "run id\0list key"). */
typedef struct walk_src {
        rf_iter_t *it;
        const char *run_id; /* NULL: the incremental lists */
        size_t skip;        /* bytes before the list key */
        rf_list_key_t lk;   /* the current key's parts */
        int valid;
} walk_src_t;

/* Moves \p s to its next list key that parses (the current one first). */
static void walk_settle(walk_src_t *s)
{
        for (; (s->valid = rf_iter_valid(s->it)); rf_iter_next(s->it)) {
                size_t klen;
                const char *k = rf_iter_key(s->it, &klen);
                if (rf_key_list_split(k + s->skip, klen - s->skip, &s->lk) == 0)
                        return;
        }
}

/* @returns 0, or RF_ESTORE if a source stopped on a read error rather
 * than at its end: it may have had more of a subject's lists, or more
 * subjects, and the walk must not pass them. */
static int walk_status(walk_src_t *srcs, size_t nsrc)
{
        int r = 0;

        for (size_t i = 0; i < nsrc && r == 0; i++)
                if (!srcs[i].valid)
                        r = rf_iter_status(srcs[i].it);
        return r;
}

/* Source \p i of a full run's walk, whose keys start with the subject
 * after \p *skip bytes: 0, the incremental lists; i > 0, the versions of
 * the (i-1)th active run (keys run_id NUL subject NUL ...). @returns its
 * iterator (through \p txn, if not NULL), with \p seek holding the
 * source's key prefix; or NULL if run i-1 is a source already. */
static rf_iter_t *walk_source(rf_store_t *st, rf_txn_t *txn,
                              const rf_active_runs_t *act, size_t i,
                              rf_buf_t *seek, size_t *skip)
{
        *skip = 0;
        rf_buf_reset(seek);
        if (i && !rf_active_runs_first(act, i - 1))
                return NULL;
        if (i) {
                *skip = strlen(act->run_id[i - 1]) + 1;
                rf_buf_append(seek, act->run_id[i - 1], *skip);
        }
        return rf_iter_new(st, txn, i ? RF_CF_VERSIONS : RF_CF_LISTS,
                           seek->data, seek->len);
}

/* Whether a run that wrapped around has come back past where it began:
 * key \p k sorts after run->start. */
static int past_start(const rf_refresh_run_t *run, const char *k, size_t klen)
{
        size_t n = klen < run->start.len ? klen : run->start.len;
        int c;

        if (!run->wrapped)
                return 0;
        c = memcmp(k, run->start.data, n);
        return c > 0 || (c == 0 && klen > run->start.len);
}

/* A walk met the end of its keys. @returns 1 if the run is done, or 0 if
 * it goes on from the first key (it began after one: see run->start). */
static int walk_end(rf_refresh_run_t *run)
{
        if (!run->start.len || run->wrapped)
                return 1;
        run->wrapped = 1;
        rf_buf_reset(&run->cursor);
        return 0;
}

/* Walks up to \p budget subjects after run->cursor, in subject order, of
 * the lists reads may serve: the incremental ones and the versions of the
 * runs active on their surfaces. */
static int step_full(const rf_refresh_src_t *src, rf_queue_t *q, rf_txn_t *txn,
                     rf_refresh_run_t *run, int64_t now_ms, size_t budget,
                     int *done, size_t *queued)
{
        rf_active_runs_t act;
        walk_src_t *srcs;
        rf_buf_t cur = { 0 }, seek = { 0 };
        char **surfs = NULL;
        size_t nsrc = 0, nsurf = 0, walked = 0;
        int r;

        if ((r = rf_runs_active_all(src->st, NULL, &act)) != 0)
                return r;
        srcs = rf_calloc(act.cnt + 1, sizeof(*srcs));
        for (size_t i = 0; i <= act.cnt; i++) {
                walk_src_t *s = &srcs[nsrc];
                if (!(s->it =
                          walk_source(src->st, NULL, &act, i, &seek, &s->skip)))
                        continue;
                s->run_id = i ? act.run_id[i - 1] : NULL;
                if (run->cursor.len) {
                        /* every key of the last subject is "subject\0...":
                         * the next subject starts at or after
                         * "subject\x01" */
                        rf_buf_append(&seek, run->cursor.data, run->cursor.len);
                        rf_buf_append(&seek, "\x01", 1);
                        rf_iter_seek(s->it, seek.data, seek.len);
                }
                walk_settle(s);
                nsrc++;
        }
        *done = 0;
        while (walked < budget) {
                const char *next = NULL;
                for (size_t i = 0; i < nsrc; i++)
                        if (srcs[i].valid &&
                            (!next || strcmp(srcs[i].lk.subject, next) < 0))
                                next = srcs[i].lk.subject;
                if (!next) {
                        r = walk_status(srcs, nsrc);
                        *done = r == 0 && walk_end(run);
                        break;
                }
                if (past_start(run, next, strlen(next))) {
                        *done = 1; /* around, back where it began */
                        break;
                }
                rf_buf_reset(&cur);
                rf_buf_append(&cur, next, strlen(next) + 1);
                cur.len--;
                for (size_t i = 0; i < nsrc; i++) {
                        walk_src_t *s = &srcs[i];
                        for (; s->valid && !strcmp(s->lk.subject, cur.data);
                             rf_iter_next(s->it), walk_settle(s)) {
                                const char *on;
                                int have = 0;
                                if (s->run_id && (!(on = rf_active_runs_of(
                                                        &act, s->lk.surface)) ||
                                                  strcmp(on, s->run_id) != 0))
                                        continue; /* not served there */
                                for (size_t j = 0; j < nsurf; j++)
                                        have |=
                                            !strcmp(surfs[j], s->lk.surface);
                                if (have)
                                        continue;
                                surfs = rf_realloc(surfs, (nsurf + 1) *
                                                              sizeof(*surfs));
                                surfs[nsurf++] = rf_strdup(s->lk.surface);
                        }
                }
                if ((r = walk_status(srcs, nsrc)) != 0) {
                        for (size_t i = 0; i < nsurf; i++)
                                free(surfs[i]);
                        break;
                }
                r = full_subject(src, q, txn, run->run_id, cur.data, surfs,
                                 nsurf, now_ms);
                for (size_t i = 0; i < nsurf; i++)
                        free(surfs[i]);
                nsurf = 0;
                if (r < 0)
                        break;
                *queued += (size_t)r;
                walked++;
                rf_buf_reset(&run->cursor);
                rf_buf_append(&run->cursor, cur.data, cur.len);
                r = 0;
        }
        for (size_t i = 0; i < nsrc; i++)
                rf_iter_destroy(srcs[i].it);
        free(srcs);
        free(surfs);
        rf_active_runs_clear(&act);
        rf_buf_free(&cur);
        rf_buf_free(&seek);
        return r;
}

/* Walks up to \p budget activity records after run->cursor. */
static int step_active(const rf_refresh_src_t *src, rf_queue_t *q,
                       rf_txn_t *txn, rf_refresh_run_t *run, int64_t now_ms,
                       size_t budget, int *done, size_t *queued)
{
        rf_iter_t *it = rf_iter_new(src->st, NULL, RF_CF_ACTIVITY, "A", 1);
        rf_buf_t subject = { 0 }, seek = { 0 };
        size_t walked = 0;
        int r = 0, around = 0;

        if (run->cursor.len) {
                rf_buf_append(&seek, run->cursor.data, run->cursor.len);
                rf_buf_append(&seek, "\0", 1); /* the next key after it */
                rf_iter_seek(it, seek.data, seek.len);
        }
        for (; rf_iter_valid(it) && walked < budget; rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                rf_cur_t c = { v, v + vlen, 0 };
                int64_t at = (int64_t)rf_cur_be64(&c);

                if ((around = past_start(run, k, klen)))
                        break; /* back where it began */
                walked++;
                rf_buf_reset(&run->cursor);
                rf_buf_append(&run->cursor, k, klen);
                if (src->prune &&
                    (c.err || at < now_ms - src->conf->rc_activity_ttl_ms)) {
                        rf_txn_delete(txn, RF_CF_ACTIVITY, k, klen);
                        continue;
                }
                if (c.err || at < now_ms - run->active_within)
                        continue;
                rf_buf_reset(&subject);
                rf_buf_append(&subject, k + 1, klen - 1);
                rf_buf_append(&subject, "", 1);
                r = active_subject(src, q, txn, run->run_id, subject.data,
                                   now_ms);
                if (r < 0)
                        break;
                *queued += (size_t)r;
                r = 0;
        }
        /* Not valid is the end, or a read error: the step fails then. */
        if (r == 0 && !around && !rf_iter_valid(it))
                r = rf_iter_status(it);
        *done = r == 0 && (around || (!rf_iter_valid(it) && walk_end(run)));
        rf_iter_destroy(it);
        rf_buf_free(&subject);
        rf_buf_free(&seek);
        return r;
}
/* Finished run records older than a week are dropped, so the hourly
 * active runs do not grow the store forever. */
#define RUN_KEEP_MS (7 * 24 * 3600 * 1000LL)

static void prune_finished(rf_store_t *st, rf_txn_t *txn, const char *except,
                           int64_t now_ms)
{
        rf_buf_t dead = { 0 };
        size_t n = 0;
        rf_iter_t *it = rf_iter_new(st, txn, RF_CF_ACTIVITY, "R", 1);

        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                rf_refresh_run_t run;
                if (run_decode(k + 1, klen - 1, v, vlen, &run) != 0)
                        continue;
                if (run.done && now_ms - run.finished_at > RUN_KEEP_MS &&
                    (klen - 1 != strlen(except) ||
                     memcmp(k + 1, except, klen - 1))) {
                        rf_buf_put_varint(&dead, klen);
                        rf_buf_append(&dead, k, klen);
                        n++;
                }
                rf_refresh_run_clear(&run);
        }
        rf_iter_destroy(it);
        rf_cur_t c = { dead.data, dead.data + dead.len, 0 };
        for (size_t i = 0; i < n && !c.err; i++) {
                size_t klen = rf_cur_varint(&c);
                rf_txn_delete(txn, RF_CF_ACTIVITY, c.p, klen);
                c.p += klen;
        }
        rf_buf_free(&dead);
}

/* The schedule's run ids (rf_refresh_scheduled()) start with these. */
static const char *scheduled_prefix(const char *run_id)
{
        if (!strncmp(run_id, "full-", 5))
                return "full-";
        if (!strncmp(run_id, "active-", 7))
                return "active-";
        return NULL;
}

/* Where the next run goes on from, of \p old that stops unfinished: after
 * its cursor, or where it began if it has not moved. */
static void resume_point(const rf_refresh_run_t *old, rf_buf_t *out)
{
        rf_buf_reset(out);
        if (old->cursor.len)
                rf_buf_append(out, old->cursor.data, old->cursor.len);
        else if (!old->wrapped)
                rf_buf_append(out, old->start.data, old->start.len);
}

/* Scheduled run \p run starts: the earlier ones of its schedule that never
 * finished are never stepped again (each period steps its own id). Closed
 * as they stand, so that their cursors (subject ids) go, as a finished
 * run's do, and prune_finished() drops them in time. \p run begins where
 * the last started of them (of its mode) stopped: that subject id moves to
 * its start, kept, as its cursor is, until it finishes or a consent purge
 * of the subject moves it (rf_refresh_forget_subject()). */
static int close_abandoned(rf_store_t *st, rf_txn_t *txn, rf_refresh_run_t *run,
                           int64_t now_ms)
{
        const char *run_id = run->run_id;
        const char *prefix = scheduled_prefix(run_id);
        rf_refresh_run_t *runs;
        int64_t latest = INT64_MIN;
        size_t n;
        int r;

        if (!prefix)
                return 0; /* asked for by hand: the schedule's own */
        r = runs_scan(st, txn, prefix, &runs, &n);
        for (size_t i = 0; i < n; i++) {
                rf_refresh_run_t *old = &runs[i];
                if (r == 0 && !old->done && strcmp(old->run_id, run_id)) {
                        if (old->mode == run->mode &&
                            old->started_at >= latest) {
                                latest = old->started_at;
                                resume_point(old, &run->start);
                                rf_buf_reset(&run->cursor);
                                rf_buf_append(&run->cursor, run->start.data,
                                              run->start.len);
                        }
                        rf_log_warn("refresh",
                                    "run %s unfinished when %s started "
                                    "(%llu subjects queued): closed",
                                    old->run_id, run_id,
                                    (unsigned long long)old->subjects);
                        old->done = 1;
                        old->finished_at = now_ms;
                        rf_buf_reset(&old->cursor);
                        rf_buf_reset(&old->start);
                        old->wrapped = 0;
                        run_put(txn, old);
                }
                rf_refresh_run_clear(old);
        }
        free(runs);
        return r;
}

int rf_refresh_step(const rf_refresh_src_t *src, rf_queue_t *q, rf_txn_t *txn,
                    const char *run_id, rf_rc_mode_t mode,
                    int64_t active_within, int64_t now_ms, size_t budget,
                    int *done)
{
        rf_refresh_run_t run;
        size_t queued = 0;
        int r;

        *done = 0;
        r = rf_refresh_run_get(NULL, txn, run_id, &run);
        if (r == RF_ENOENT) {
                run.run_id = rf_strdup(run_id);
                run.mode = mode;
                run.started_at = now_ms;
                run.active_within = active_within;
                if ((r = close_abandoned(rf_queue_store(q), txn, &run,
                                         now_ms)) != 0) {
                        rf_refresh_run_clear(&run);
                        return r;
                }
                RF_METRIC_INC(refresh_runs_started);
                rf_log_info("refresh", "run %s (%s) started%s", run_id,
                            rf_rc_mode2str(mode),
                            run.start.len ? " where the last one stopped" : "");
        } else if (r) {
                return r;
        }
        if (run.done) {
                *done = 1;
                rf_refresh_run_clear(&run);
                return 0;
        }
        if (budget > STEP_MAX)
                budget = STEP_MAX;
        if (run.mode == RF_RC_FULL)
                r = step_full(src, q, txn, &run, now_ms, budget, done, &queued);
        else
                r = step_active(src, q, txn, &run, now_ms, budget, done,
                                &queued);
        if (r == 0) {
                run.subjects += queued;
                RF_METRIC_ADD(refresh_subjects, queued);
                if (*done) {
                        run.done = 1;
                        run.finished_at = now_ms;
                        /* The cursor is a subject id: a finished run keeps
                         * none (a consent purge must leave no copy). */
                        rf_buf_reset(&run.cursor);
                        rf_buf_reset(&run.start);
                        run.wrapped = 0;
                        /* Run records live beside the queue (the CLI keeps
                         * its own), not in the source store. */
                        prune_finished(rf_queue_store(q), txn, run_id, now_ms);
                        RF_METRIC_INC(refresh_runs_finished);
                        rf_log_info("refresh",
                                    "run %s (%s) finished: %llu subjects "
                                    "queued",
                                    run_id, rf_rc_mode2str(run.mode),
                                    (unsigned long long)run.subjects);
                }
                run_put(txn, &run);
        }
        rf_refresh_run_clear(&run);
        return r < 0 ? r : (int)queued;
}

/* ---- consent purges
 * ---------------------------------------------------------*/

static int buf_is(const rf_buf_t *b, const char *p, size_t len)
{
        return b->len == len && (!len || !memcmp(b->data, p, len));
}

/* Sets \p out to the key of subject \p s (\p slen bytes) if it sorts after
 * what \p out holds. */
static void keep_max(rf_buf_t *out, const char *s, size_t slen)
{
        size_t n = slen < out->len ? slen : out->len;
        int c = n ? memcmp(s, out->data, n) : 0;

        if (c > 0 || (c == 0 && slen > out->len)) {
                rf_buf_reset(out);
                rf_buf_append(out, s, slen);
        }
}

/* The last subject before \p subject that a full run walks (incremental
 * lists, and the versions of the active runs), into \p out ("" if none). */
static int full_pred(rf_store_t *st, rf_txn_t *txn, const char *subject,
                     rf_buf_t *out)
{
        rf_active_runs_t act;
        rf_buf_t seek = { 0 };
        int r;

        rf_buf_reset(out);
        if ((r = rf_runs_active_all(st, txn, &act)) != 0)
                return r;
        for (size_t i = 0; i <= act.cnt && r == 0; i++) {
                size_t skip;
                rf_iter_t *it = walk_source(st, txn, &act, i, &seek, &skip);
                if (!it)
                        continue;
                rf_buf_append(&seek, subject, strlen(subject));
                /* a list key is subject NUL ...: the last key before the
                 * subject's own is the previous subject's */
                rf_iter_seek_for_prev(it, seek.data, seek.len);
                if (rf_iter_valid(it)) {
                        size_t klen;
                        const char *k = rf_iter_key(it, &klen);
                        keep_max(out, k + skip, strnlen(k + skip, klen - skip));
                }
                r = rf_iter_status(it);
                rf_iter_destroy(it);
        }
        rf_active_runs_clear(&act);
        rf_buf_free(&seek);
        return r;
}

/* The activity key before \p key, into \p out ("" if none). */
static int active_pred(rf_store_t *st, rf_txn_t *txn, const rf_buf_t *key,
                       rf_buf_t *out)
{
        rf_iter_t *it = rf_iter_new(st, txn, RF_CF_ACTIVITY, "A", 1);
        int r;

        rf_buf_reset(out);
        rf_iter_seek_for_prev(it, key->data, key->len);
        if (rf_iter_valid(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                if (buf_is(key, k, klen))
                        rf_iter_prev(it);
        }
        if (rf_iter_valid(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                rf_buf_append(out, k, klen);
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        return r;
}

int rf_refresh_forget_subject(rf_store_t *st, rf_txn_t *txn,
                              const char *subject, int64_t now_ms)
{
        rf_buf_t key = { 0 }, pred = { 0 };
        rf_refresh_run_t *runs;
        size_t n;
        int r = runs_scan(st, txn, "", &runs, &n);

        for (size_t i = 0; i < n; i++) {
                rf_refresh_run_t *run = &runs[i];
                int full = run->mode == RF_RC_FULL, hc, hs;
                rf_buf_reset(&key);
                if (!full)
                        rf_buf_append(&key, "A", 1);
                rf_buf_append(&key, subject, strlen(subject));
                hc = buf_is(&run->cursor, key.data, key.len);
                hs = buf_is(&run->start, key.data, key.len);
                if (r != 0 || run->done || (!hc && !hs)) {
                        rf_refresh_run_clear(run);
                        continue;
                }
                r = full ? full_pred(st, txn, subject, &pred)
                         : active_pred(st, txn, &key, &pred);
                if (r == 0 && hs && !pred.len && run->wrapped) {
                        /* it began after the first subject, now gone, and
                         * came round to it: done */
                        run->done = 1;
                        run->finished_at = now_ms;
                        run->wrapped = 0;
                        rf_buf_reset(&run->cursor);
                        rf_buf_reset(&run->start);
                        RF_METRIC_INC(refresh_runs_finished);
                        rf_log_info("refresh",
                                    "run %s (%s) finished: %llu subjects "
                                    "queued (back at its start, purged)",
                                    run->run_id, rf_rc_mode2str(run->mode),
                                    (unsigned long long)run->subjects);
                } else if (r == 0) {
                        if (hs) {
                                rf_buf_reset(&run->start);
                                rf_buf_append(&run->start, pred.data, pred.len);
                        }
                        if (hc) {
                                rf_buf_reset(&run->cursor);
                                rf_buf_append(&run->cursor, pred.data,
                                              pred.len);
                                /* nothing before it: on from where the run
                                 * began, not from the first subject */
                                if (!pred.len && !run->wrapped)
                                        rf_buf_append(&run->cursor,
                                                      run->start.data,
                                                      run->start.len);
                        }
                }
                if (r == 0)
                        run_put(txn, run);
                rf_refresh_run_clear(run);
        }
        free(runs);
        rf_buf_free(&key);
        rf_buf_free(&pred);
        return r;
}

/* ---- the daemon's schedules
 * -------------------------------------------------*/

struct rf_refresh {
        char done_full[64]; /* last scheduled run seen finished */
        char done_active[64];
        pthread_mutex_t lock; /* guards the requested run (HTTP threads) */
        char req_id[64];      /* a run asked for now, "" = none */
        rf_rc_mode_t req_mode;
};

rf_refresh_t *rf_refresh_new(void)
{
        rf_refresh_t *r = rf_calloc(1, sizeof(rf_refresh_t));

        pthread_mutex_init(&r->lock, NULL);
        return r;
}

void rf_refresh_destroy(rf_refresh_t *r)
{
        if (!r)
                return;
        pthread_mutex_destroy(&r->lock);
        free(r);
}

int rf_refresh_request(rf_refresh_t *r, rf_rc_mode_t mode, const char *run_id)
{
        int busy;

        if (mode != RF_RC_FULL && mode != RF_RC_ACTIVE)
                return RF_EINVAL;
        if (!run_id || !*run_id || strlen(run_id) >= sizeof(r->req_id))
                return RF_EINVAL;
        pthread_mutex_lock(&r->lock);
        busy = r->req_id[0] && strcmp(r->req_id, run_id) != 0;
        if (!busy) {
                snprintf(r->req_id, sizeof(r->req_id), "%s", run_id);
                r->req_mode = mode;
        }
        pthread_mutex_unlock(&r->lock);
        return busy ? RF_EBLOCKED : 0;
}

/* Steps the requested run, if any, like a scheduled one. */
static int tick_requested(rf_refresh_t *rt, rf_apply_ctx_t *ctx,
                          const rf_refresh_src_t *src, int64_t now_ms,
                          int64_t room, int *did)
{
        char id[64];
        rf_rc_mode_t mode;
        int done = 0, r;

        pthread_mutex_lock(&rt->lock);
        snprintf(id, sizeof(id), "%s", rt->req_id);
        mode = rt->req_mode;
        pthread_mutex_unlock(&rt->lock);
        if (!id[0] || room <= 0)
                return 0;
        r = rf_refresh_step(src, ctx->queue, ctx->txn, id, mode,
                            ctx->conf->rc_active_within, now_ms, (size_t)room,
                            &done);
        if (r < 0)
                return r;
        if (rf_txn_count(ctx->txn))
                *did = 1;
        if (done) {
                pthread_mutex_lock(&rt->lock);
                if (!strcmp(rt->req_id, id))
                        rt->req_id[0] = '\0';
                pthread_mutex_unlock(&rt->lock);
        }
        return 0;
}

void rf_refresh_scheduled(const rf_config_t *conf, int64_t now_ms,
                          char full_id[64], char active_id[64])
{
        char ts[40];

        full_id[0] = active_id[0] = '\0';
        if (conf->rc_full_at && strlen(conf->rc_full_at) == 5) {
                const char *s = conf->rc_full_at;
                int64_t at = ((s[0] - '0') * 10 + (s[1] - '0')) * 3600000 +
                             ((s[3] - '0') * 10 + (s[4] - '0')) * 60000;
                int64_t day = now_ms - now_ms % DAY_MS;
                if (now_ms >= day + at) {
                        rf_time_format(day, ts, sizeof(ts));
                        snprintf(full_id, 64, "full-%.10s", ts);
                }
        }
        if (conf->rc_incremental_every > 0) {
                int64_t slot = now_ms - now_ms % conf->rc_incremental_every;
                rf_time_format(slot, ts, sizeof(ts));
                snprintf(active_id, 64, "active-%s", ts);
        }
}

int rf_refresh_tick(rf_refresh_t *rt, rf_apply_ctx_t *ctx, int64_t now_ms,
                    int *did)
{
        const rf_config_t *conf = ctx->conf;
        rf_refresh_src_t src = { ctx->st, conf, 1 };
        char ids[2][64];
        char *done_ids[2] = { rt->done_full, rt->done_active };
        rf_rc_mode_t modes[2] = { RF_RC_FULL, RF_RC_ACTIVE };
        rf_queue_stats_t qs;

        *did = 0;
        if (!ctx->queue || !conf)
                return 0;
        rf_refresh_scheduled(conf, now_ms, ids[0], ids[1]);
        rf_queue_counts(ctx->queue, &qs);
        for (int i = 0; i < 2; i++) {
                int64_t room =
                    conf->rc_refresh_backlog - (int64_t)qs.by_mode[modes[i]];
                int done = 0, r;
                if (!ids[i][0] || !strcmp(ids[i], done_ids[i]) || room <= 0)
                        continue;
                r = rf_refresh_step(&src, ctx->queue, ctx->txn, ids[i],
                                    modes[i], conf->rc_active_within, now_ms,
                                    (size_t)room, &done);
                if (r < 0)
                        return r;
                if (done && rf_txn_count(ctx->txn) == 0) {
                        /* finished before: remember, write nothing */
                        snprintf(done_ids[i], 64, "%.63s", ids[i]);
                        continue;
                }
                *did = 1;
        }
        return tick_requested(
            rt, ctx, &src, now_ms,
            conf->rc_refresh_backlog - (int64_t)qs.by_mode[rt->req_mode], did);
}
