/*
 * recfresh - user hides (recs.user-hides.v1): a user hides or unhides an
 * item or a creator; it applies to that user's lists only. Reads load the
 * user's active hides once per read (tombstone.c). A user has few lists, so
 * the per-list notices are produced inline rather than by a fan-out job.
 */
#include <string.h>

#include "recfresh/fanout.h"
#include "recfresh/tombstone.h"

int rf_hide_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev)
{
        int on_creator = ev->type == RF_EV_CREATOR_HIDDEN ||
                         ev->type == RF_EV_CREATOR_UNHIDDEN;
        int hidden =
            ev->type == RF_EV_ITEM_HIDDEN || ev->type == RF_EV_CREATOR_HIDDEN;
        const char *id = on_creator ? ev->creator_id : ev->item_id;
        rf_subject_lists_t sl;
        rf_buf_t k = { 0 };
        int flipped, r;

        /* No state keyed by a purged user may be written again: a hide
         * arriving after the revocation (late, or from another partition's
         * order) is taken and dropped. */
        if (rf_consent_purged(ctx->st, ctx->txn, ev->user_id))
                return RF_EBLOCKED;
        rf_key_hide(&k, ev->user_id, on_creator ? RF_IDX_CREATOR : RF_IDX_ITEM,
                    id);
        r = rf_tomb_update(ctx, k.data, k.len, hidden, ev, &flipped);
        rf_buf_free(&k);
        if (r != 0 || !flipped)
                return r;

        r = rf_lists_of_subject(ctx->st, ctx->txn, ev->user_id, &sl);
        for (size_t i = 0; r == 0 && i < sl.cnt; i++) {
                const rf_list_t *l = sl.lists[i];
                for (size_t j = 0; j < l->item_cnt; j++) {
                        const char *have = on_creator ? l->items[j].creator_id
                                                      : l->items[j].item_id;
                        if (strcmp(have, id) != 0)
                                continue;
                        rf_fanout_list_invalidated(
                            ctx, sl.keys[i].data, sl.keys[i].len, l->list_id,
                            ev->type, ev->event_id, ev->occurred_at,
                            on_creator ? "creator" : "item", id);
                        break;
                }
        }
        rf_subject_lists_clear(&sl);
        return r;
}
