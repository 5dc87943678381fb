/*
 * recfresh - applying list publications (recs.lists.v1): newer replaces
 * older by generated_at, the reverse index follows the stored list, and no
 * personalised list is stored for a subject whose consent was revoked.
 *
 * Tombstones already in force apply to a newly arrived list at read time
 * (tombstone.h), so a list published after a ban never serves the item.
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/apply.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/recompute.h"
#include "recfresh/runs.h"
#include "recfresh/tombstone.h"

/* Index value: the list's region (for regional stock fan-out) and id (for
 * invalidation notices), so fan-out never reads the list itself. */
static void index_value(rf_buf_t *v, const rf_list_t *list)
{
        rf_buf_reset(v);
        rf_buf_put_str(v, list->region);
        rf_buf_put_str(v, list->list_id);
}

static void index_each(rf_apply_ctx_t *ctx, const char *lkey, size_t lklen,
                       const rf_list_t *list, int add)
{
        rf_buf_t k = { 0 }, v = { 0 };

        if (add)
                index_value(&v, list);
        for (size_t i = 0; i < list->item_cnt; i++) {
                const rf_entry_t *e = &list->items[i];
                struct {
                        char kind;
                        const char *id;
                } ents[3] = { { RF_IDX_ITEM, e->item_id },
                              { RF_IDX_CREATOR, e->creator_id },
                              { RF_IDX_CAMPAIGN, e->campaign_id } };
                for (int j = 0; j < 3; j++) {
                        if (!*ents[j].id)
                                continue;
                        rf_buf_reset(&k);
                        rf_key_index(&k, ents[j].kind, ents[j].id, lkey, lklen);
                        if (add)
                                rf_txn_put(ctx->txn, RF_CF_INDEX, k.data, k.len,
                                           v.data, v.len);
                        else
                                rf_txn_delete(ctx->txn, RF_CF_INDEX, k.data,
                                              k.len);
                }
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
}

void rf_lists_remove(rf_apply_ctx_t *ctx, const char *list_key, size_t klen,
                     const rf_list_t *list)
{
        index_each(ctx, list_key, klen, list, 0);
        rf_txn_delete(ctx->txn, RF_CF_LISTS, list_key, klen);
        rf_queue_list_changed(ctx->queue, list_key, klen);
}

int rf_lists_apply(rf_apply_ctx_t *ctx, const rf_list_t *list)
{
        rf_buf_t key = { 0 }, cur = { 0 }, enc = { 0 };
        rf_list_t *old = NULL;
        int r;

        if (strcmp(list->subject_id, RF_FALLBACK_SUBJECT) != 0 &&
            (r = rf_consent_purged(ctx->st, ctx->txn, list->subject_id))) {
                if (r < 0)
                        return r;
                RF_METRIC_INC(lists_blocked);
                rf_trace(ctx, .kind = RF_TRACE_LIST_BLOCKED, .list = list);
                return RF_EBLOCKED;
        }

        rf_key_list_stored(&key, list->subject_id, list->surface,
                           list->context_key, list->region);
        r = rf_txn_get(ctx->txn, RF_CF_LISTS, key.data, key.len, &cur);
        if (r == 0) {
                if (rf_list_decode(cur.data, cur.len, &old) != 0) {
                        rf_log_error("lists",
                                     "stored list for %s/%s is "
                                     "corrupt; replacing it",
                                     list->subject_id, list->surface);
                } else if (old->generated_at > list->generated_at ||
                           (old->generated_at == list->generated_at &&
                            strcmp(old->list_id, list->list_id) >= 0)) {
                        /* An equal or newer list is held: keep it. The
                         * list_id tie-break makes the winner independent of
                         * arrival order. */
                        RF_METRIC_INC(lists_stale);
                        rf_trace(ctx, .kind = RF_TRACE_LIST_STALE, .list = list,
                                 .held = old);
                        r = RF_ESTALE;
                        goto done;
                } else {
                        index_each(ctx, key.data, key.len, old, 0);
                }
        } else if (r != RF_ENOENT) {
                goto done;
        }

        rf_list_encode(list, &enc);
        rf_txn_put(ctx->txn, RF_CF_LISTS, key.data, key.len, enc.data, enc.len);
        index_each(ctx, key.data, key.len, list, 1);
        rf_queue_list_changed(ctx->queue, key.data, key.len);
        RF_METRIC_INC(lists_applied);
        rf_queue_list_published(ctx, list); /* a fresh list: not pending */
        rf_trace(ctx, .kind = RF_TRACE_LIST_APPLIED, .list = list, .held = old);
        r = 0;
done:
        rf_list_destroy(old);
        rf_buf_free(&key);
        rf_buf_free(&cur);
        rf_buf_free(&enc);
        return r;
}

void rf_subject_lists_add(rf_subject_lists_t *sl, const char *key, size_t klen,
                          rf_list_t *list, int in_run)
{
        size_t n = sl->cnt + 1;

        sl->keys = rf_realloc(sl->keys, n * sizeof(*sl->keys));
        sl->lists = rf_realloc(sl->lists, n * sizeof(*sl->lists));
        sl->in_run = rf_realloc(sl->in_run, n * sizeof(*sl->in_run));
        memset(&sl->keys[sl->cnt], 0, sizeof(rf_buf_t));
        rf_buf_append(&sl->keys[sl->cnt], key, klen);
        sl->lists[sl->cnt] = list;
        sl->in_run[sl->cnt] = (unsigned char)!!in_run;
        sl->cnt = n;
}

int rf_lists_of_subject(rf_store_t *st, rf_txn_t *txn, const char *subject,
                        rf_subject_lists_t *out)
{
        rf_buf_t prefix = { 0 };
        rf_iter_t *it;

        memset(out, 0, sizeof(*out));
        rf_key_list_subject_prefix(&prefix, subject);
        it = rf_iter_new(st, txn, RF_CF_LISTS, prefix.data, prefix.len);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                rf_list_t *l;
                if (rf_list_decode(v, vlen, &l) != 0) {
                        rf_log_error("lists",
                                     "corrupt stored list of %s: "
                                     "skipped",
                                     subject);
                        continue;
                }
                rf_subject_lists_add(out, k, klen, l, 0);
        }
        /* A read error is no end: a consent purge of the lists read so far
         * must fail, not commit with the others left. */
        int r = rf_iter_status(it);
        rf_iter_destroy(it);
        rf_buf_free(&prefix);
        if (r == 0)
                r = rf_runs_subject_versions(st, txn, subject, out);
        if (r != 0)
                rf_subject_lists_clear(out);
        return r;
}

void rf_subject_lists_clear(rf_subject_lists_t *sl)
{
        for (size_t i = 0; i < sl->cnt; i++) {
                rf_buf_free(&sl->keys[i]);
                rf_list_destroy(sl->lists[i]);
        }
        free(sl->keys);
        free(sl->lists);
        free(sl->in_run);
        memset(sl, 0, sizeof(*sl));
}
