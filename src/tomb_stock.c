/*
 * recfresh - stock (recs.stock.v1): out of stock removes the item from
 * every list, or, with a region, from that region's lists only. For a list
 * of region R the newer of the global state and R's state decides, so
 * "out everywhere" followed by "back in stock in R" serves the item in R.
 */
#include "recfresh/fanout.h"
#include "recfresh/tomb_set.h"
#include "recfresh/tombstone.h"

int rf_stock_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev)
{
        rf_buf_t k = { 0 };
        int flipped, r;

        rf_key_stock(&k, ev->item_id, ev->region);
        r = rf_tomb_update(ctx, k.data, k.len, !ev->in_stock, ev, &flipped);
        rf_buf_free(&k);
        if (r == 0 && flipped)
                rf_fanout_schedule(ctx, RF_IDX_ITEM, ev->item_id, ev->region,
                                   ev);
        return r;
}

static int stock_get(rf_checker_t *ck, const char *item_id, const char *region,
                     rf_tomb_t *t)
{
        int r;

        rf_buf_reset(&ck->key);
        rf_key_stock(&ck->key, item_id, region);
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
        return rf_tomb_decode(ck->val.data, ck->val.len, t) == 0;
}

int rf_stock_check_out(rf_checker_t *ck, const char *item_id)
{
        rf_tomb_t g, reg;
        int r = ck->ts ? rf_tombset_stock_out(ck->ts, item_id, ck->region) : -1;

        /* The item's decisions are pending until its fan-out job runs.
         * The writer (the checker with a batch: only its thread changes
         * the set) settles them at their first check instead: behind a
         * fan-out backlog, every check of a pending item read its states,
         * a twentieth of the row-1 bench's CPU. */
        if (r < 0 && ck->ts && ck->txn &&
            rf_tombset_stock_settle(ck->ts, ck->st, ck->txn, item_id) == 0)
                r = rf_tombset_stock_out(ck->ts, item_id, ck->region);
        /* A failed read leaves it pending: asked below, which fails closed
         * (ck->err) if the store fails again. */
        if (r >= 0)
                return r; /* the set's decision (tomb_set.h) */
        int has_g = stock_get(ck, item_id, "", &g);
        int has_r = *ck->region && stock_get(ck, item_id, ck->region, &reg);

        if (has_g && has_r)
                return rf_tomb_newer(&g, reg.occurred_at, reg.event_id)
                           ? reg.active
                           : g.active;
        if (has_r)
                return reg.active;
        return has_g && g.active;
}
