/*
 * recfresh - user hides (recs.user-hides.v1): a user hides or unhides an
 * item or a creator; it applies to that user's lists only. Reads load the
 * user's active hides once per read (tombstone.c). A user has few lists, so
 * the per-list notices are produced inline rather than by a fan-out job.
 */
#include <string.h>

#include "recfresh/fanout.h"
#include "recfresh/log.h"
#include "recfresh/recompute.h"
#include "recfresh/tombstone.h"

void rf_hide_summary_add(rf_buf_t *sum, char what, const char *id, size_t idlen)
{
        rf_buf_append(sum, &what, 1);
        rf_buf_append(sum, id, idlen);
        rf_buf_append(sum, "", 1);
}

const char *rf_hide_summary_next(const char **pos, const char *end, char *what)
{
        const char *p = *pos;
        const char *nul = p < end ? memchr(p, '\0', (size_t)(end - p)) : NULL;

        if (!nul || nul == p)
                return NULL; /* the end (or a damaged tail) */
        *what = *p;
        *pos = nul + 1;
        return p + 1;
}

/* Puts the summary \p sum of the user whose hide prefix is \p prefix in
 * \p txn, or deletes the key when \p sum is empty and it may exist
 * (\p had). */
static void summary_put(rf_txn_t *txn, const rf_buf_t *prefix,
                        const rf_buf_t *sum, int had)
{
        if (sum->len)
                rf_txn_put(txn, RF_CF_TOMBSTONES, prefix->data, prefix->len,
                           sum->data, sum->len);
        else if (had)
                rf_txn_delete(txn, RF_CF_TOMBSTONES, prefix->data, prefix->len);
}

/* The user's hide summary is derived from the per-hide states and changed
 * with them, in the same batch, so a read loads a user's hides with one
 * point lookup. */
static int summary_update(rf_apply_ctx_t *ctx, const char *user, char what,
                          const char *id, int hidden)
{
        rf_buf_t k = { 0 }, v = { 0 }, out = { 0 };
        int r;

        rf_key_hide_prefix(&k, user);
        r = rf_txn_get(ctx->txn, RF_CF_TOMBSTONES, k.data, k.len, &v);
        if (r == RF_ENOENT)
                r = 0;
        if (r == 0) {
                const char *p = v.data, *hid;
                char w;
                while ((hid = rf_hide_summary_next(&p, v.data + v.len, &w)))
                        if (w != what || strcmp(hid, id) != 0)
                                rf_hide_summary_add(&out, w, hid, strlen(hid));
                if (hidden)
                        rf_hide_summary_add(&out, what, id, strlen(id));
                summary_put(ctx->txn, &k, &out, 1);
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        rf_buf_free(&out);
        return r;
}

int rf_hide_summaries_build(rf_store_t *st, char *errstr, size_t errstr_size)
{
        if (rf_store_hide_summary(st))
                return 0; /* kept since the store was made, or built */

        rf_txn_t *txn = rf_txn_new(st);
        rf_iter_t *it = rf_iter_new(st, NULL, RF_CF_TOMBSTONES, "H", 1);
        rf_buf_t prefix = { 0 }, sum = { 0 };
        size_t users = 0;
        int had = 0, r = 0;

        /* Keys sort by user: each user's hides are consecutive, its
         * summary key (the bare prefix) first. */
        for (; r == 0 && rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                const char *nul = memchr(k + 1, '\0', klen - 1);
                size_t plen = nul ? (size_t)(nul + 1 - k) : 0;
                rf_tomb_t t;

                if (!plen)
                        continue;
                if (plen != prefix.len || memcmp(k, prefix.data, plen) != 0) {
                        if (prefix.len) {
                                summary_put(txn, &prefix, &sum, had);
                                users++;
                        }
                        rf_buf_reset(&prefix);
                        rf_buf_append(&prefix, k, plen);
                        rf_buf_reset(&sum);
                        had = 0;
                }
                if (klen == plen) {
                        had = 1; /* a summary kept since: rebuilt anyway */
                        continue;
                }
                if (klen < plen + 2 || rf_tomb_decode(v, vlen, &t) != 0 ||
                    !t.active)
                        continue;
                rf_hide_summary_add(&sum, k[plen], k + plen + 2,
                                    klen - plen - 2);
                if (rf_txn_count(txn) >= 10000)
                        r = rf_txn_commit(txn, errstr, errstr_size);
        }
        if (r == 0 && rf_iter_status(it) != 0) {
                snprintf(errstr, errstr_size, "reading hides: %s",
                         rf_err2str(RF_ESTORE));
                r = RF_ESTORE;
        }
        rf_iter_destroy(it);
        if (r == 0) {
                if (prefix.len) {
                        summary_put(txn, &prefix, &sum, had);
                        users++;
                }
                rf_txn_put(txn, RF_CF_META, RF_META_HIDE_SUMMARY,
                           strlen(RF_META_HIDE_SUMMARY), "1", 1);
                r = rf_txn_commit(txn, errstr, errstr_size);
        }
        if (r == 0) {
                rf_store_set_hide_summary(st);
                rf_log_info("tombstone", "hide summaries built for %zu users",
                            users);
        }
        rf_txn_destroy(txn);
        rf_buf_free(&prefix);
        rf_buf_free(&sum);
        return r;
}

int rf_hide_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev)
{
        int on_creator = ev->type == RF_EV_CREATOR_HIDDEN ||
                         ev->type == RF_EV_CREATOR_UNHIDDEN;
        int hidden =
            ev->type == RF_EV_ITEM_HIDDEN || ev->type == RF_EV_CREATOR_HIDDEN;
        const char *id = on_creator ? ev->creator_id : ev->item_id;
        rf_buf_t k = { 0 };
        int flipped, r;

        /* No state keyed by a purged user may be written again: a hide
         * arriving after the revocation (late, or from another partition's
         * order) is taken and dropped. */
        if ((r = rf_consent_purged(ctx->st, ctx->txn, ev->user_id)) != 0)
                return r < 0 ? r : RF_EBLOCKED;
        rf_key_hide(&k, ev->user_id, on_creator ? RF_IDX_CREATOR : RF_IDX_ITEM,
                    id);
        r = rf_tomb_update(ctx, k.data, k.len, hidden, ev, &flipped);
        rf_buf_free(&k);
        if (r != 0 || !flipped)
                return r;
        /* What the queue remembers of the user's lists (a lower bound of
         * their valid entries) stays one while an item hide's job takes
         * one entry off each list holding the item, as a ban's does; an
         * unhide only makes it too low. A creator's entries are not
         * counted: its hide forgets the user's bounds. */
        if (on_creator)
                rf_queue_subject_changed(ctx->queue, ev->user_id);
        r = summary_update(ctx, ev->user_id,
                           on_creator ? RF_IDX_CREATOR : RF_IDX_ITEM, id,
                           hidden);
        if (r != 0)
                return r;
        rf_fanout_schedule_subject(ctx,
                                   on_creator ? RF_IDX_CREATOR : RF_IDX_ITEM,
                                   id, ev->user_id, ev);
        return 0;
}
