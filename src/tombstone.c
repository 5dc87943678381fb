/*
 * recfresh - what the tombstone kinds share: the newest-event-wins state
 * update, and the read-time checker that tests list entries against every
 * kind (see tombstone.h for the design).
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/hide_cache.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/tomb_set.h"
#include "recfresh/tombstone.h"

static const char *filter_names[RF_FILTER__CNT] = {
        [RF_FILTER_BANNED] = "banned",
        [RF_FILTER_OUT_OF_STOCK] = "out_of_stock",
        [RF_FILTER_HIDDEN_ITEM] = "hidden_item",
        [RF_FILTER_HIDDEN_CREATOR] = "hidden_creator",
        [RF_FILTER_CAMPAIGN_EXPIRED] = "campaign_expired",
        [RF_FILTER_DUPLICATE] = "duplicate",
};

const char *rf_filter2str(rf_filter_t f)
{
        if ((int)f < 0 || f >= RF_FILTER__CNT)
                return "none";
        return filter_names[f];
}

int rf_tomb_update(rf_apply_ctx_t *ctx, const char *key, size_t klen,
                   int active, const rf_event_t *ev, int *flipped)
{
        rf_tomb_t cur = { 0 }, next = { 0 };
        rf_buf_t v = { 0 };
        int r, had = 0;

        *flipped = 0;
        r = rf_txn_get(ctx->txn, RF_CF_TOMBSTONES, key, klen, &v);
        if (r == 0 && rf_tomb_decode(v.data, v.len, &cur) == 0)
                had = 1;
        else if (r != 0 && r != RF_ENOENT)
                goto done;

        if (had && !rf_tomb_newer(&cur, ev->occurred_at, ev->event_id)) {
                rf_trace(ctx, .kind = RF_TRACE_TOMB_STALE, .ev = ev,
                         .cur = &cur);
                r = RF_ESTALE;
                goto done;
        }
        next.active = active;
        next.occurred_at = ev->occurred_at;
        snprintf(next.event_id, sizeof(next.event_id), "%s", ev->event_id);
        rf_buf_reset(&v);
        rf_tomb_encode(&next, &v);
        rf_txn_put(ctx->txn, RF_CF_TOMBSTONES, key, klen, v.data, v.len);
        /* No state yet counts as "not in force". */
        *flipped = (had ? cur.active : 0) != active;
        if (*flipped) {
                RF_METRIC_INC(tombstones[ev->type]);
                rf_tombset_changed(rf_store_tombset(ctx->st), key, klen,
                                   active);
        }
        if (key[0] == RF_TOMB_STOCK) /* its time counts, flipped or not */
                rf_tombset_stock_changed(rf_store_tombset(ctx->st), key, klen,
                                         &next);
        rf_trace(ctx, .kind = RF_TRACE_TOMB_CHANGED, .ev = ev,
                 .cur = had ? &cur : NULL, .active = active,
                 .flipped = *flipped);
        r = 0;
done:
        rf_buf_free(&v);
        return r;
}

/* ---- read-time checks ---------------------------------------------------*/

/* A store written before hide summaries: one prefix scan of the reader's
 * hide states, into the summary form. */
static int hides_scan(rf_checker_t *ck, size_t plen)
{
        rf_iter_t *it =
            rf_iter_new(ck->st, ck->txn, RF_CF_TOMBSTONES, ck->key.data, plen);
        rf_tomb_t t;
        int r;

        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                /* k = prefix what \0 id; the bare prefix is the summary */
                if (klen < plen + 2 || rf_tomb_decode(v, vlen, &t) != 0 ||
                    !t.active)
                        continue;
                rf_hide_summary_add(&ck->val, k[plen], k + plen + 2,
                                    klen - plen - 2);
        }
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        return r;
}

/* The reader's hides from the store (or through the batch): its summary
 * with one point lookup, or a scan in a store from before summaries.
 * *hp stays NULL for none, unless \p keep_none (to cache). */
static int hides_read(rf_checker_t *ck, const char *reader, int keep_none,
                      rf_hides_t **hp)
{
        int r;

        if (rf_store_hide_summary(ck->st)) {
                r = ck->txn ? rf_txn_get(ck->txn, RF_CF_TOMBSTONES,
                                         ck->key.data, ck->key.len, &ck->val)
                            : rf_store_get(ck->st, RF_CF_TOMBSTONES,
                                           ck->key.data, ck->key.len, &ck->val);
                if (r == RF_ENOENT) {
                        r = 0;
                        rf_buf_reset(&ck->val);
                }
        } else {
                rf_buf_reset(&ck->val);
                r = hides_scan(ck, ck->key.len);
        }
        if (r == 0 && (ck->val.len || keep_none))
                *hp = rf_hides_new(reader, ck->val.data, ck->val.len);
        return r;
}

int rf_checker_init(rf_checker_t *ck, rf_store_t *st, rf_txn_t *txn,
                    const char *reader, const char *region)
{
        rf_hide_cache_t *hc = txn ? NULL : rf_store_hide_cache(st);
        rf_hides_t *h = NULL;
        uint64_t gen = 0;
        int r = 0;

        memset(ck, 0, sizeof(*ck));
        ck->st = st;
        ck->ts = rf_store_tombset(st);
        ck->txn = txn;
        ck->region = region ? region : "";

        /* The reader's active hides: none if the set knows it has none,
         * else the cache's (never through a batch: it may hold writes
         * of its own), else one point lookup of its summary. */
        if (!rf_tombset_may_hide(ck->ts, reader))
                return 0;
        if (hc && rf_hide_cache_get(hc, reader, &h, &gen)) {
                ck->hides = h;
                return 0;
        }
        rf_key_hide_prefix(&ck->key, reader);
        if ((r = hides_read(ck, reader, hc != NULL, &h)) != 0)
                return ck->err = RF_ESTORE; /* hides unknown: fail the read */
        if (hc && h)
                rf_hide_cache_put(hc, reader, gen, h);
        ck->hides = h;
        return 0;
}

static int in_strv(const char **v, size_t cnt, const char *s)
{
        for (size_t i = 0; i < cnt; i++)
                if (!strcmp(v[i], s))
                        return 1;
        return 0;
}

void rf_checker_flags(rf_checker_t *ck, const rf_entry_t *e, size_t n,
                      uint8_t *out)
{
        if (ck->ts)
                rf_tombset_entries(ck->ts, e, n, out);
        else
                memset(out, RF_TS_UNKNOWN, n);
}

rf_filter_t rf_checker_check_flags(rf_checker_t *ck, const rf_entry_t *e,
                                   int ts)
{
        /* The set answers bans and expiries exactly, and "surely not" for
         * the stock of nearly every item; only its stock members and
         * everything when it is absent or unloaded are looked up. */
        if ((ts & RF_TS_BANNED) ||
            ((ts & RF_TS_UNKNOWN) && rf_ban_check(ck, e->item_id)))
                return RF_FILTER_BANNED;
        if ((ts & (RF_TS_STOCK | RF_TS_UNKNOWN)) &&
            rf_stock_check_out(ck, e->item_id))
                return RF_FILTER_OUT_OF_STOCK;
        if (ck->hides && ck->hides->item_cnt &&
            in_strv(ck->hides->items, ck->hides->item_cnt, e->item_id))
                return RF_FILTER_HIDDEN_ITEM;
        if (*e->creator_id && ck->hides && ck->hides->creator_cnt &&
            in_strv(ck->hides->creators, ck->hides->creator_cnt, e->creator_id))
                return RF_FILTER_HIDDEN_CREATOR;
        if (*e->campaign_id &&
            ((ts & RF_TS_EXPIRED) ||
             ((ts & RF_TS_UNKNOWN) && rf_campaign_check(ck, e->campaign_id))))
                return RF_FILTER_CAMPAIGN_EXPIRED;
        return RF_FILTER_NONE;
}

rf_filter_t rf_checker_check(rf_checker_t *ck, const rf_entry_t *e)
{
        uint8_t ts;

        rf_checker_flags(ck, e, 1, &ts);
        return rf_checker_check_flags(ck, e, ts);
}

void rf_checker_clear(rf_checker_t *ck)
{
        rf_hides_release(ck->hides);
        rf_buf_free(&ck->key);
        rf_buf_free(&ck->val);
        memset(ck, 0, sizeof(*ck));
}
