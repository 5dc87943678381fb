/*
 * recfresh - consent (recs.consent.v1).
 *
 * consent_revoked with scope "all" or "personalization" purges the user's
 * lists, their reverse-index entries and the user's hides from the store
 * (privacy), and keeps out any personalised list that arrives later until
 * consent is granted again. Scopes "email" and "push" block only the
 * surfaces configured with that consent_scope; their lists stay stored but
 * are not served.
 *
 * The consent state itself is keyed by a keyed pseudonym of the user id
 * (store.h), so after a purge and a compaction the raw id is nowhere in the
 * store.
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/fanout.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/recompute.h"
#include "recfresh/runs.h"
#include "recfresh/tomb_set.h"
#include "recfresh/tombstone.h"

static int scope_purges(rf_consent_scope_t s)
{
        return s == RF_SCOPE_ALL || s == RF_SCOPE_PERSONALIZATION;
}

/* Whether \p scope is revoked for the user of pseudonym \p pn: from the
 * tombstone set (tomb_set.h) when the store has one, else looked up. */
static int consent_revoked(rf_store_t *st, rf_txn_t *txn,
                           const unsigned char pn[16], int scope)
{
        rf_tombset_t *ts = rf_store_tombset(st);
        rf_buf_t k = { 0 }, v = { 0 };
        rf_tomb_t t;
        int r, revoked = 0;

        if (ts && !((r = rf_tombset_consent(ts, pn, scope)) & RF_TS_UNKNOWN))
                return r == RF_TS_REVOKED;
        rf_key_consent(&k, pn, scope);
        r = txn ? rf_txn_get(txn, RF_CF_TOMBSTONES, k.data, k.len, &v)
                : rf_store_get(st, RF_CF_TOMBSTONES, k.data, k.len, &v);
        if (r == 0 && rf_tomb_decode(v.data, v.len, &t) == 0)
                revoked = t.active;
        rf_buf_free(&k);
        rf_buf_free(&v);
        return revoked;
}

static int purged_pn(rf_store_t *st, rf_txn_t *txn, const unsigned char pn[16])
{
        static const int purging[] = { RF_SCOPE_ALL, RF_SCOPE_PERSONALIZATION };
        rf_tombset_t *ts = rf_store_tombset(st);
        int r;

        /* Both scopes from the set under one lock, when it knows. */
        if (ts &&
            !((r = rf_tombset_consent_any(ts, pn, purging, 2)) & RF_TS_UNKNOWN))
                return r == RF_TS_REVOKED;
        return consent_revoked(st, txn, pn, RF_SCOPE_ALL) ||
               consent_revoked(st, txn, pn, RF_SCOPE_PERSONALIZATION);
}

int rf_consent_purged(rf_store_t *st, rf_txn_t *txn, const char *subject)
{
        unsigned char pn[16];

        rf_store_pseudonym(st, subject, pn);
        return purged_pn(st, txn, pn);
}

int rf_consent_blocks(rf_store_t *st, rf_txn_t *txn, const rf_config_t *conf,
                      const char *subject, const char *surface)
{
        const rf_surface_conf_t *sc;
        unsigned char pn[16];
        int scope;

        rf_store_pseudonym(st, subject, pn);
        if (purged_pn(st, txn, pn))
                return 1;
        if (!conf)
                return 0;
        sc = rf_config_surface(conf, surface);
        if (!sc->consent_scope || !*sc->consent_scope)
                return 0;
        scope = rf_consent_scope_parse(sc->consent_scope);
        return scope >= 0 && consent_revoked(st, txn, pn, scope);
}

/* Deletes every hide of the user: after a purge nothing keyed by the raw
 * user id may remain. */
static void purge_hides(rf_apply_ctx_t *ctx, const char *user)
{
        rf_buf_t prefix = { 0 }, *keys = NULL;
        size_t cnt = 0;
        rf_iter_t *it;

        rf_key_hide_prefix(&prefix, user);
        it = rf_iter_new(ctx->st, ctx->txn, RF_CF_TOMBSTONES, prefix.data,
                         prefix.len);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                keys = rf_realloc(keys, (cnt + 1) * sizeof(*keys));
                memset(&keys[cnt], 0, sizeof(*keys));
                rf_buf_append(&keys[cnt++], k, klen);
        }
        rf_iter_destroy(it);
        /* Delete after the iterator is gone: a batch must not change under
         * an iterator over it. */
        for (size_t i = 0; i < cnt; i++) {
                rf_txn_delete(ctx->txn, RF_CF_TOMBSTONES, keys[i].data,
                              keys[i].len);
                rf_buf_free(&keys[i]);
        }
        free(keys);
        rf_buf_free(&prefix);
}

int rf_consent_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev)
{
        int revoked = ev->type == RF_EV_CONSENT_REVOKED;
        const char *scope_name = rf_consent_scope2str(ev->scope);
        unsigned char pn[16];
        rf_subject_lists_t sl;
        rf_buf_t k = { 0 };
        size_t purged = 0;
        int flipped, r, in_runs = 0;

        rf_store_pseudonym(ctx->st, ev->user_id, pn);
        rf_key_consent(&k, pn, (int)ev->scope);
        r = rf_tomb_update(ctx, k.data, k.len, revoked, ev, &flipped);
        rf_buf_free(&k);
        if (r != 0 || !flipped)
                return r;
        /* While revoked, the user's lists are skipped by the recompute
         * hooks: what the queue remembers of them is void either way. */
        rf_queue_subject_changed(ctx->queue, ev->user_id);

        r = rf_lists_of_subject(ctx->st, ctx->txn, ev->user_id, &sl);
        if (r == 0 && revoked && scope_purges(ev->scope)) {
                /* Batch-run versions (served, staged or kept for rollback)
                 * hold the subject's lists too: gone before the notices
                 * below, as the incremental ones are, so that a replay
                 * explains each as purged. */
                purge_hides(ctx, ev->user_id);
                in_runs = rf_runs_purge_subject(ctx, ev->user_id);
        }
        for (size_t i = 0; r == 0 && i < sl.cnt; i++) {
                const rf_list_t *l = sl.lists[i];
                if (scope_purges(ev->scope)) {
                        if (!revoked)
                                continue; /* nothing stored to restore */
                        /* Run versions: rf_runs_purge_subject() above. */
                        if (!sl.in_run[i]) {
                                rf_lists_remove(ctx, sl.keys[i].data,
                                                sl.keys[i].len, l);
                                RF_METRIC_INC(lists_purged);
                                purged++;
                        }
                } else {
                        const rf_surface_conf_t *sc;
                        if (!ctx->conf)
                                continue;
                        sc = rf_config_surface(ctx->conf, l->surface);
                        if (strcmp(sc->consent_scope, scope_name) != 0)
                                continue;
                }
                rf_fanout_list_invalidated(
                    ctx, sl.keys[i].data, sl.keys[i].len, NULL, l->list_id,
                    ev->type, ev->event_id, ev->occurred_at, "user",
                    ev->user_id, RF_ENTRY_UNKNOWN);
        }
        /* Revoked: no pending recompute (nor last activity) may keep the
         * subject id; granted: ask for fresh lists. */
        if (r == 0 && scope_purges(ev->scope))
                rf_queue_consent(ctx, ev, revoked);
        if (r == 0 && revoked && scope_purges(ev->scope)) {
                RF_METRIC_INC(consent_purges);
                rf_log_info("consent",
                            "purged %zu lists and %d run-version lists of a "
                            "subject (scope %s, event %s)",
                            purged, in_runs, scope_name, ev->event_id);
        }
        rf_subject_lists_clear(&sl);
        return r;
}
