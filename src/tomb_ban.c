/*
 * recfresh - item bans (recs.item-bans.v1): item_banned removes the item
 * from every list, item_unbanned lifts only the ban (not a stock or
 * campaign tombstone on the same item).
 */
#include "recfresh/fanout.h"
#include "recfresh/tombstone.h"

int rf_ban_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev)
{
        rf_buf_t k = { 0 };
        int flipped, r;

        rf_key_tomb1(&k, RF_TOMB_BAN, ev->item_id);
        r = rf_tomb_update(ctx, k.data, k.len, ev->type == RF_EV_ITEM_BANNED,
                           ev, &flipped);
        rf_buf_free(&k);
        if (r == 0 && flipped)
                rf_fanout_schedule(ctx, RF_IDX_ITEM, ev->item_id, "", ev);
        return r;
}

int rf_ban_check(rf_checker_t *ck, const char *item_id)
{
        rf_tomb_t t;
        int r;

        rf_buf_reset(&ck->key);
        rf_key_tomb1(&ck->key, RF_TOMB_BAN, item_id);
        r = ck->txn ? rf_txn_get(ck->txn, RF_CF_TOMBSTONES, ck->key.data,
                                 ck->key.len, &ck->val)
                    : rf_store_get(ck->st, RF_CF_TOMBSTONES, ck->key.data,
                                   ck->key.len, &ck->val);
        if (r == RF_ENOENT)
                return 0;
        if (r != 0) {
                ck->err = r; /* fail closed: never serve it unchecked */
                return 1;
        }
        return rf_tomb_decode(ck->val.data, ck->val.len, &t) == 0 && t.active;
}
