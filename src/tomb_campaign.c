/*
 * recfresh - campaign expiry (recs.campaigns.v1): campaign_expired removes
 * every entry of that campaign from every list. Expiry is final: there is
 * no reversal event.
 */
#include "recfresh/fanout.h"
#include "recfresh/tombstone.h"

int rf_campaign_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev)
{
        rf_buf_t k = { 0 };
        int flipped, r;

        rf_key_tomb1(&k, RF_TOMB_CAMPAIGN, ev->campaign_id);
        r = rf_tomb_update(ctx, k.data, k.len, 1, ev, &flipped);
        rf_buf_free(&k);
        if (r == 0 && flipped)
                rf_fanout_schedule(ctx, RF_IDX_CAMPAIGN, ev->campaign_id, "",
                                   ev);
        return r;
}

int rf_campaign_check(rf_checker_t *ck, const char *campaign_id)
{
        rf_tomb_t t;
        int r;

        rf_buf_reset(&ck->key);
        rf_key_tomb1(&ck->key, RF_TOMB_CAMPAIGN, campaign_id);
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
