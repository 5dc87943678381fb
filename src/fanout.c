/*
 * recfresh - fan-out jobs: walk the reverse index of an entity in chunks
 * and do the per-list work of an event (see fanout.h for why this is off the
 * critical path of both reads and other events).
 *
 * A job is stored in the fanout column family under a sequence number:
 *   u8 cause (rf_event_type_t), u8 index kind, entity, region filter,
 *   event_id, occurred_at (be64), cursor (last index key done, "" = none)
 * Jobs run in sequence order. Each step's notices and the job's new cursor
 * are committed together.
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/fanout.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/outputs.h"
#include "recfresh/recompute.h"
#include "recfresh/runs.h"
#include "recfresh/tomb_set.h"
#include "recfresh/topics.h"

#define TIMED_COPY 64 /* entries a timed step copies out at a time */

/* Two lanes of jobs, each run in order of scheduling: a hide's job (a
 * user's few lists) runs ahead of the entity-wide ones, so that a ban in a
 * million lists does not hold back a user's refill for its whole length.
 * Keys: an entity job's is its id (8 bytes, big-endian); a user job's is
 * LANE_USER_TAG and its id (9 bytes). */
enum { LANE_ENTITY, LANE_USER, LANE__CNT };
#define LANE_USER_TAG '\xff'

typedef struct lane {
        uint64_t next_seq; /* id of the next job scheduled */
        uint64_t head_seq; /* no job is stored below this id */
        size_t pending;    /* jobs in the store, incl. uncommitted */
        uint64_t size_seq; /* job whose lists are being counted */
        uint64_t size_cnt; /* lists it invalidated so far (this process) */
} lane_t;

struct rf_fanout {
        rf_store_t *st;
        lane_t lanes[LANE__CNT];
        size_t pending;    /* both lanes' */
        int64_t step_ns;   /* time budget of a step, 0: none */
        int64_t commit_ns; /* a write's share of a step's commit (average) */
        /* A step's notices, queued as one outbox record: a put and a
         * delete per list were a third of a fan-out's memtable inserts. */
        rf_outbox_frame_t frame;
        int framing; /* inside rf_fanout_step: notices go to `frame` */
};

typedef struct job {
        uint64_t seq;
        int lane;
        rf_event_type_t cause;
        char kind;
        const char *entity, *region, *event_id;
        const char *subject; /* "": every list of the entity */
        int64_t occurred_at;
        const char *cursor;
        size_t cursor_len;
        rf_buf_t raw; /* the stored value the strings point into */
} job_t;

static void job_key(rf_buf_t *k, int lane, uint64_t seq)
{
        rf_buf_reset(k);
        if (lane == LANE_USER)
                rf_buf_append(k, &(char){ LANE_USER_TAG }, 1);
        rf_key_seq(k, seq);
}

/* Counts the stored jobs of each lane and moves next_seq past the last.
 * @returns 0, or RF_ESTORE (the lanes unchanged) if the scan stopped on a
 * read error: a guessed next_seq could overwrite jobs not yet read. */
static int fanout_scan(rf_fanout_t *fo)
{
        rf_iter_t *it = rf_iter_new(fo->st, NULL, RF_CF_FANOUT, NULL, 0);
        uint64_t last[LANE__CNT] = { 0 }, first[LANE__CNT] = { 0 };
        size_t pending[LANE__CNT] = { 0 };
        int r;

        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                int l = klen == 9 && k[0] == LANE_USER_TAG ? LANE_USER
                                                           : LANE_ENTITY;
                last[l] = l == LANE_USER ? rf_key_seq_parse(k + 1, klen - 1)
                                         : rf_key_seq_parse(k, klen);
                if (!pending[l]++)
                        first[l] = last[l];
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        if (r != 0)
                return r;
        fo->pending = 0;
        for (int l = 0; l < LANE__CNT; l++) {
                lane_t *ln = &fo->lanes[l];
                ln->pending = pending[l];
                if (last[l] + 1 > ln->next_seq)
                        ln->next_seq = last[l] + 1;
                ln->head_seq = ln->pending ? first[l] : ln->next_seq;
                fo->pending += ln->pending;
        }
        return 0;
}

rf_fanout_t *rf_fanout_new(rf_store_t *st, char *errstr, size_t errstr_size)
{
        rf_fanout_t *fo = rf_calloc(1, sizeof(*fo));

        fo->st = st;
        for (int l = 0; l < LANE__CNT; l++)
                fo->lanes[l].next_seq = 1;
        if (fanout_scan(fo) != 0) {
                snprintf(errstr, errstr_size,
                         "fan-out jobs: store read error while scanning them "
                         "(see the log): not guessing the next job id");
                free(fo);
                return NULL;
        }
        if (fo->pending)
                rf_log_info("fanout", "resuming %zu fan-out jobs", fo->pending);
        return fo;
}

void rf_fanout_destroy(rf_fanout_t *fo)
{
        if (fo)
                rf_outbox_frame_free(&fo->frame);
        free(fo);
}

void rf_fanout_set_step_ms(rf_fanout_t *fo, int64_t ms)
{
        fo->step_ns = ms > 0 ? ms * 1000000 : 0;
}

void rf_fanout_commit_cost(rf_fanout_t *fo, size_t writes, int64_t ns)
{
        int64_t per;

        if (!writes || ns < 0)
                return;
        per = ns / (int64_t)writes;
        if (!fo->commit_ns) {
                fo->commit_ns = per;
                return;
        }
        /* One slow commit (a memtable switch) moves the average a little:
         * a sample counts as at most four times it. */
        if (per > 4 * fo->commit_ns)
                per = 4 * fo->commit_ns;
        fo->commit_ns += (per - fo->commit_ns) / 8;
}

/* The time the commit of what the batch holds will take, at most half the
 * step: a cost that does not shrink with the batch (an fsync, with
 * store.sync) must not cut every step down to a list or two. */
static int64_t commit_share(const rf_apply_ctx_t *ctx)
{
        const rf_fanout_t *fo = ctx->fanout;
        int64_t ns = (int64_t)rf_txn_count(ctx->txn) * fo->commit_ns;

        return ns < fo->step_ns / 2 ? ns : fo->step_ns / 2;
}

/* Past the step's \p deadline (0: none), counting the commit of what the
 * batch holds: the budget bounds a step and its commit together. */
static int step_past(const rf_apply_ctx_t *ctx, int64_t deadline)
{
        return rf_mono_past(deadline ? deadline - commit_share(ctx) : 0);
}

/* Whether the user lane still has its half of the step begun at \p start:
 * less time gone than is left for work before the commit. */
static int user_turn(const rf_apply_ctx_t *ctx, int64_t start, int64_t deadline)
{
        int64_t now = rf_mono_ns();

        return !deadline || now - start < deadline - now - commit_share(ctx);
}

size_t rf_fanout_pending(const rf_fanout_t *fo)
{
        return fo->pending;
}

int rf_fanout_reload(rf_fanout_t *fo)
{
        return fanout_scan(fo);
}

/* Job value: cause, kind, entity, region, event id, occurred_at, cursor
 * (varint length, bytes, NUL), then the subject of a hide's job, if any
 * (absent from the jobs written before it existed). */
static void job_encode(rf_buf_t *v, rf_event_type_t cause, char kind,
                       const char *entity, const char *region,
                       const char *event_id, int64_t occurred_at,
                       const char *subject, const char *cursor,
                       size_t cursor_len)
{
        char hdr[2] = { (char)cause, kind };

        rf_buf_append(v, hdr, 2);
        rf_buf_put_str(v, entity);
        rf_buf_put_str(v, region);
        rf_buf_put_str(v, event_id);
        rf_buf_put_be64(v, (uint64_t)occurred_at);
        /* The cursor is an index key and may hold NULs: length-prefixed. */
        rf_buf_put_varint(v, cursor_len);
        rf_buf_append(v, cursor, cursor_len);
        rf_buf_append(v, "", 1);
        if (*subject)
                rf_buf_put_str(v, subject);
}

static int job_decode(job_t *j)
{
        rf_cur_t c = { j->raw.data, j->raw.data + j->raw.len, 0 };
        uint64_t clen;

        j->cause = (rf_event_type_t)rf_cur_u8(&c);
        j->kind = (char)rf_cur_u8(&c);
        j->entity = rf_cur_str(&c, NULL);
        j->region = rf_cur_str(&c, NULL);
        j->event_id = rf_cur_str(&c, NULL);
        j->occurred_at = (int64_t)rf_cur_be64(&c);
        clen = rf_cur_varint(&c);
        if (c.err || clen >= (uint64_t)(c.end - c.p) || j->cause >= RF_EV__CNT)
                return RF_EINVAL;
        j->cursor = c.p;
        j->cursor_len = (size_t)clen;
        c.p += clen + 1;
        j->subject = c.p < c.end ? rf_cur_str(&c, NULL) : "";
        return c.err ? RF_EINVAL : 0;
}

static void schedule(rf_apply_ctx_t *ctx, char kind, const char *entity,
                     const char *region, const char *subject,
                     const rf_event_t *ev)
{
        rf_fanout_t *fo = ctx->fanout;
        rf_buf_t k = { 0 }, v = { 0 };
        int lane = *subject ? LANE_USER : LANE_ENTITY;
        lane_t *ln;

        if (!fo)
                return;
        ln = &fo->lanes[lane];
        job_key(&k, lane, ln->next_seq++);
        job_encode(&v, ev->type, kind, entity, region ? region : "",
                   ev->event_id, ev->occurred_at, subject, "", 0);
        rf_txn_put(ctx->txn, RF_CF_FANOUT, k.data, k.len, v.data, v.len);
        ln->pending++;
        fo->pending++;
        RF_METRIC_INC(fanout_jobs_scheduled);
        rf_buf_free(&k);
        rf_buf_free(&v);
}

void rf_fanout_schedule(rf_apply_ctx_t *ctx, char kind, const char *entity,
                        const char *region, const rf_event_t *ev)
{
        schedule(ctx, kind, entity, region, "", ev);
}

void rf_fanout_schedule_subject(rf_apply_ctx_t *ctx, char kind,
                                const char *entity, const char *subject,
                                const rf_event_t *ev)
{
        /* An empty subject would be stored as none: every user's lists. */
        if (!subject || !*subject) {
                rf_log_error("fanout", "event %s: no subject, no job",
                             ev->event_id);
                return;
        }
        schedule(ctx, kind, entity, NULL, subject, ev);
}

static const char *entity_kind_name(char kind)
{
        switch (kind) {
        case RF_IDX_ITEM:
                return "item";
        case RF_IDX_CREATOR:
                return "creator";
        default:
                return "campaign";
        }
}

void rf_fanout_list_invalidated(rf_apply_ctx_t *ctx, const char *list_key,
                                size_t klen, const char *region,
                                const char *list_id, rf_event_type_t cause,
                                const char *event_id, int64_t occurred_at,
                                const char *entity_kind, const char *entity_id,
                                int entry)
{
        rf_list_key_t lk;
        rf_invalidation_t inv;

        if (rf_key_list_split(list_key, klen, &lk) != 0)
                return;
        inv = (rf_invalidation_t){
                .subject_id = lk.subject,
                .surface = lk.surface,
                .context_key = lk.context,
                .list_id = list_id ? list_id : "",
                .cause = rf_event_type2str(cause),
                .event_id = event_id,
                .entity_kind = entity_kind,
                .entity_id = entity_id,
                .occurred_at = occurred_at,
                .invalidated_at = ctx->now_ms,
        };
        rf_buf_reset(&ctx->scratch2);
        rf_invalidation_encode(&ctx->scratch2, &inv);
        if (ctx->outbox && ctx->fanout && ctx->fanout->framing)
                rf_outbox_frame_add(&ctx->fanout->frame, RF_TOPIC_INVALIDATIONS,
                                    lk.subject, strlen(lk.subject),
                                    ctx->scratch2.data, ctx->scratch2.len);
        else if (ctx->outbox)
                rf_outbox_put(ctx->outbox, ctx->txn, RF_TOPIC_INVALIDATIONS,
                              lk.subject, strlen(lk.subject),
                              ctx->scratch2.data, ctx->scratch2.len);
        RF_METRIC_INC(lists_invalidated);
        rf_queue_list_invalidated(ctx, list_key, klen, region, cause, event_id,
                                  entity_kind, entity_id,
                                  (rf_entry_state_t)entry);
        rf_trace(ctx, .kind = RF_TRACE_LIST_INVALIDATED, .list_key = list_key,
                 .list_klen = klen, .region = region, .list_id = list_id,
                 .entity_kind = entity_kind, .entity_id = entity_id);
}

/* What a list's recompute hook needs to know of the job's item (a ban or
 * a stock state) or campaign in lists of \p region: whether it is filtered
 * there now (the job may run after the event was reversed). Asked once per
 * region a step meets, instead of reading every list
 * (rf_queue_list_invalidated()). */
static rf_entry_state_t entity_state(rf_apply_ctx_t *ctx, const job_t *j,
                                     const char *region)
{
        int campaign = j->kind == RF_IDX_CAMPAIGN;
        rf_checker_t ck = { .st = ctx->st,
                            .ts = rf_store_tombset(ctx->st),
                            .txn = ctx->txn,
                            .region = region };
        rf_entry_t e = { .item_id = campaign ? "" : j->entity,
                         .creator_id = "",
                         .campaign_id = campaign ? j->entity : "" };
        rf_entry_state_t s;

        /* A hide's job: the user's hides count too (a failed read of them
         * sets ck.err). */
        if (*j->subject)
                rf_checker_init(&ck, ctx->st, ctx->txn, j->subject, region);
        s = rf_checker_check(&ck, &e) == RF_FILTER_NONE ? RF_ENTRY_KEPT
            : campaign                                  ? RF_ENTRY_CAMPAIGN
                                                        : RF_ENTRY_FILTERED;
        if (ck.err)
                s = RF_ENTRY_UNKNOWN; /* the hook reads the list */
        rf_checker_clear(&ck);
        return s;
}

/* Runs one job for at most `budget` index entries, and past the monotonic
 * \p deadline (ns, 0: none) for none but the first of the step (\p
 * scanned 0). Sets *done when the job finished (and was deleted). Reads
 * the index with \p shared (an iterator over the committed index, when the
 * batch has no index writes), else with an iterator of its own. */
static int job_step(rf_apply_ctx_t *ctx, job_t *j, rf_iter_t *shared,
                    size_t budget, int64_t deadline, size_t *scanned, int *done)
{
        rf_buf_t prefix = { 0 }, batch = { 0 }, jk = { 0 }, jv = { 0 };
        const char *ekind = entity_kind_name(j->kind);
        size_t n = 0, last_len = 0, base;
        rf_iter_t *it;

        /* The item's stock decisions, if pending. A failed read fails the
         * step, whose rollback loads the set again. */
        if (j->cause == RF_EV_STOCK_CHANGED) {
                int r = rf_tombset_stock_refresh(rf_store_tombset(ctx->st),
                                                 ctx->st, ctx->txn, j->entity);
                if (r != 0 && !ctx->err)
                        ctx->err = r;
        }
        rf_key_index_prefix(&prefix, j->kind, j->entity);
        base = prefix.len; /* where the list key starts */
        if (*j->subject)
                rf_key_list_subject_prefix(&prefix, j->subject);
        if (shared) {
                it = shared;
                rf_iter_set_prefix(it, prefix.data, prefix.len);
                rf_iter_seek(it, prefix.data, prefix.len);
        } else {
                it = rf_iter_new(ctx->st, ctx->txn, RF_CF_INDEX, prefix.data,
                                 prefix.len);
        }
        if (j->cursor_len) {
                rf_iter_seek(it, j->cursor, j->cursor_len);
                size_t klen;
                if (rf_iter_valid(it)) {
                        const char *k = rf_iter_key(it, &klen);
                        if (klen == j->cursor_len &&
                            !memcmp(k, j->cursor, klen))
                                rf_iter_next(it);
                }
        }
        /* Copy the chunk out first: the batch must not change under an
         * iterator that reads through it. */
        for (; n < budget && rf_iter_valid(it); rf_iter_next(it), n++) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                rf_buf_put_varint(&batch, klen);
                rf_buf_append(&batch, k, klen);
                rf_buf_put_varint(&batch, vlen);
                rf_buf_append(&batch, v, vlen);
        }
        *done = !rf_iter_valid(it);
        /* Not valid is the end, or a read error: then the job stays, to
         * go on from its cursor (never deleted with lists not walked). */
        int r = *done ? rf_iter_status(it) : 0;
        if (it != shared)
                rf_iter_destroy(it);
        if (r != 0) {
                *done = 0;
                rf_buf_free(&prefix);
                rf_buf_free(&batch);
                return r;
        }

        rf_cur_t c = { batch.data, batch.data + batch.len, 0 };
        const char *cursor = NULL, *state_region = NULL;
        rf_entry_state_t state = RF_ENTRY_UNKNOWN;
        /* An item hide, like a ban, takes at most one distinct entry out of
         * each list; a creator hide may take several (the hook reads). */
        int known =
            (j->kind == RF_IDX_ITEM && (j->cause == RF_EV_ITEM_BANNED ||
                                        j->cause == RF_EV_STOCK_CHANGED ||
                                        j->cause == RF_EV_ITEM_HIDDEN)) ||
            (j->kind == RF_IDX_CAMPAIGN && j->cause == RF_EV_CAMPAIGN_EXPIRED);
        size_t i = 0;
        for (; i < n && !c.err; i++) {
                /* The clock is read once per list: a list's work is tens
                 * of microseconds, the clock tens of nanoseconds. */
                if ((i || *scanned) && step_past(ctx, deadline))
                        break;
                size_t klen = rf_cur_varint(&c);
                const char *k = c.p;
                c.p += klen;
                size_t vlen = rf_cur_varint(&c);
                rf_cur_t vc = { c.p, c.p + vlen, 0 };
                c.p += vlen;
                const char *region = rf_cur_str(&vc, NULL);
                const char *list_id = rf_cur_str(&vc, NULL);
                cursor = k;
                last_len = klen;
                if (*j->region && strcmp(region, j->region) != 0)
                        continue;
                /* Read from the committed run pointer: a run switch and
                 * a fan-out step must not share a batch (the daemon and
                 * replay commit each on its own). */
                if (!rf_runs_version_served(ctx->st, k + base, klen - base,
                                            region)) {
                        RF_METRIC_INC(fanout_unserved_skipped);
                        continue;
                }
                if (known &&
                    (!state_region || strcmp(state_region, region) != 0)) {
                        state = entity_state(ctx, j, region);
                        state_region = region;
                }
                rf_fanout_list_invalidated(
                    ctx, k + base, klen - base, region, list_id, j->cause,
                    j->event_id, j->occurred_at, ekind, j->entity, state);
                ctx->fanout->lanes[j->lane].size_cnt++;
        }

        if (i < n)
                *done = 0; /* out of time: the rest in a later step */
        n = i;
        job_key(&jk, j->lane, j->seq);
        if (*done) {
                rf_txn_delete(ctx->txn, RF_CF_FANOUT, jk.data, jk.len);
                RF_METRIC_INC(fanout_jobs_done);
                rf_hist_observe(&rf_metrics.fanout_size, rf_hist_fanout_bounds,
                                ctx->fanout->lanes[j->lane].size_cnt);
        } else if (cursor) {
                job_encode(&jv, j->cause, j->kind, j->entity, j->region,
                           j->event_id, j->occurred_at, j->subject, cursor,
                           last_len);
                rf_txn_put(ctx->txn, RF_CF_FANOUT, jk.data, jk.len, jv.data,
                           jv.len);
        }
        *scanned += n;
        RF_METRIC_ADD(fanout_entries_scanned, n);
        rf_buf_free(&prefix);
        rf_buf_free(&batch);
        rf_buf_free(&jk);
        rf_buf_free(&jv);
        return 0;
}

int rf_fanout_step(rf_apply_ctx_t *ctx, size_t budget, size_t *scanned)
{
        rf_fanout_t *fo = ctx->fanout;
        int64_t start = rf_mono_ns();
        int64_t deadline = fo->step_ns ? start + fo->step_ns : 0;
        size_t user_budget = budget / 2 ? budget / 2 : 1, user_scanned = 0;
        rf_iter_t *shared = NULL;
        int r = 0;

        *scanned = 0;
        /* The step's notices, of all its jobs, go out as one outbox
         * record: one per job was a put and a delete for every event with
         * a fan-out, a sixth of the memtable inserts of the row-1 bench. */
        fo->framing = 1;
        if (ctx->queue)
                rf_queue_hold(ctx->queue);
        while (fo->pending && *scanned < budget && r == 0 &&
               !(*scanned && step_past(ctx, deadline))) {
                rf_buf_t hk = { 0 };
                job_t j = { 0 };
                int done = 0;
                /* The user lane first, for up to half of the step while
                 * the entity lane has jobs: a stream of hides cannot stop
                 * a ban. */
                j.lane = fo->lanes[LANE_USER].pending &&
                                 (!fo->lanes[LANE_ENTITY].pending ||
                                  (user_scanned < user_budget &&
                                   user_turn(ctx, start, deadline)))
                             ? LANE_USER
                             : LANE_ENTITY;
                lane_t *ln = &fo->lanes[j.lane];

                /* The lane's oldest job, looked up by id from head_seq:
                 * ids are given in order and a lane's jobs finish in order.
                 * An iterator from the start of the column family would
                 * step over every finished job's delete marker until
                 * compaction removes them, which made fan-out quadratic in
                 * jobs (profiled: 90% of the daemon's CPU at 5,000
                 * events/s). */
                for (; ln->head_seq < ln->next_seq; ln->head_seq++) {
                        job_key(&hk, j.lane, ln->head_seq);
                        r = rf_txn_get(ctx->txn, RF_CF_FANOUT, hk.data, hk.len,
                                       &j.raw);
                        if (r != RF_ENOENT)
                                break;
                        r = 0;
                }
                rf_buf_free(&hk);
                if (r != 0) {
                        rf_buf_free(&j.raw);
                        break;
                }
                if (ln->head_seq >= ln->next_seq) {
                        /* none left, whatever the count said */
                        rf_buf_free(&j.raw);
                        fo->pending -= ln->pending;
                        ln->pending = 0;
                        continue;
                }
                j.seq = ln->head_seq;
                if (j.seq != ln->size_seq) {
                        ln->size_seq = j.seq;
                        ln->size_cnt = 0;
                }

                if (job_decode(&j) != 0) {
                        rf_buf_t jk = { 0 };
                        rf_log_error("fanout", "corrupt %s job %llu dropped",
                                     j.lane == LANE_USER ? "user" : "entity",
                                     (unsigned long long)j.seq);
                        job_key(&jk, j.lane, j.seq);
                        rf_txn_delete(ctx->txn, RF_CF_FANOUT, jk.data, jk.len);
                        rf_buf_free(&jk);
                        done = 1;
                } else {
                        /* With a deadline, a few lists at a time: the
                         * entries copied out past it would be read for
                         * nothing. The job goes on from its new cursor. */
                        size_t b = budget - *scanned;
                        if (deadline && b > TIMED_COPY)
                                b = TIMED_COPY;
                        /* One index iterator for the step's jobs: one per
                         * job was 8% of the daemon's CPU under a stream of
                         * small fan-outs (row 1 of the bench). It reads the
                         * committed index, which is all there is while the
                         * batch writes none (the fan-out itself never
                         * does). */
                        int own = rf_txn_touched(ctx->txn, RF_CF_INDEX);
                        if (!own && !shared)
                                shared = rf_iter_new(ctx->st, NULL, RF_CF_INDEX,
                                                     NULL, 0);
                        size_t before = *scanned;
                        r = job_step(ctx, &j, own ? NULL : shared, b, deadline,
                                     scanned, &done);
                        if (j.lane == LANE_USER)
                                user_scanned += *scanned - before;
                }
                if (done) {
                        ln->pending--;
                        fo->pending--;
                }
                rf_buf_free(&j.raw);
                if (!done && !deadline)
                        break; /* budget used up */
        }
        rf_iter_destroy(shared);
        fo->framing = 0;
        if (ctx->queue)
                rf_queue_release(ctx->queue);
        if (ctx->outbox)
                rf_outbox_put_frame(ctx->outbox, ctx->txn, &fo->frame);
        if (r == 0 && ctx->err) {
                r = ctx->err; /* a per-list hook failed: do not commit */
                ctx->err = 0;
        }
        return r;
}
