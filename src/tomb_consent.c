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
 *
 * A bulk load is built beside the daemon and handed over later (runs.h):
 * its build checks consent as it stood then. So that the daemon can drop
 * the lists of users who revoked since, purging revocations are numbered
 * in the order they are taken and each number is kept for a while with the
 * user's pseudonym, in the meta column family (how the state was reached,
 * not what it is: not digested).
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/fanout.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/recompute.h"
#include "recfresh/refresh.h"
#include "recfresh/runs.h"
#include "recfresh/tomb_set.h"
#include "recfresh/tombstone.h"

/* Meta keys: the number of the last purging revocation taken (be64), and
 * per number (be64 after the prefix) the pseudonym and when it was taken. */
#define REVOKED_SEQ     "consent_revoked_seq"
#define REVOKED_LOG     "consent_revoked/"
#define REVOKED_KEEP_MS ((int64_t)7 * 24 * 3600 * 1000)
#define REVOKED_PRUNE   64 /* forgotten at most per revocation taken */

static int scope_purges(rf_consent_scope_t s)
{
        return s == RF_SCOPE_ALL || s == RF_SCOPE_PERSONALIZATION;
}

/* Whether \p scope is revoked for the user of pseudonym \p pn: from the
 * tombstone set (tomb_set.h) when the store has one, else looked up.
 * @returns 1, 0, or RF_ESTORE if it could not be read: like the other
 * checks, consent fails closed (rf_ban_check()). */
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
        else if (r != 0 && r != RF_ENOENT)
                revoked = r;
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
        if ((r = consent_revoked(st, txn, pn, RF_SCOPE_ALL)) != 0)
                return r; /* revoked, or a read error */
        return consent_revoked(st, txn, pn, RF_SCOPE_PERSONALIZATION);
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
        int scope, r;

        rf_store_pseudonym(st, subject, pn);
        if ((r = purged_pn(st, txn, pn)) != 0)
                return r;
        if (!conf)
                return 0;
        sc = rf_config_surface(conf, surface);
        if (!sc->consent_scope || !*sc->consent_scope)
                return 0;
        scope = rf_consent_scope_parse(sc->consent_scope);
        return scope >= 0 ? consent_revoked(st, txn, pn, scope) : 0;
}

static void revoked_key(rf_buf_t *k, uint64_t seq)
{
        rf_buf_append(k, REVOKED_LOG, strlen(REVOKED_LOG));
        rf_buf_put_be64(k, seq);
}

int rf_consent_revoked_mark(rf_store_t *st, rf_txn_t *txn, uint64_t *mark)
{
        rf_buf_t v = { 0 };
        int r = txn ? rf_txn_get(txn, RF_CF_META, REVOKED_SEQ,
                                 strlen(REVOKED_SEQ), &v)
                    : rf_store_get(st, RF_CF_META, REVOKED_SEQ,
                                   strlen(REVOKED_SEQ), &v);

        *mark = 0;
        if (r == 0) {
                rf_cur_t c = { v.data, v.data + v.len, 0 };
                *mark = rf_cur_be64(&c);
        }
        rf_buf_free(&v);
        return r == RF_ENOENT ? 0 : r;
}

int rf_consent_revoked_since(rf_store_t *st, rf_txn_t *txn, uint64_t mark,
                             unsigned char **pns, size_t *cnt)
{
        rf_buf_t k = { 0 };
        uint64_t last, want = mark + 1;
        int r;

        *pns = NULL;
        *cnt = 0;
        if ((r = rf_consent_revoked_mark(st, txn, &last)) || last <= mark)
                return r;
        rf_iter_t *it =
            rf_iter_new(st, txn, RF_CF_META, REVOKED_LOG, strlen(REVOKED_LOG));
        revoked_key(&k, want);
        rf_iter_seek(it, k.data, k.len);
        for (; rf_iter_valid(it) && want <= last; rf_iter_next(it), want++) {
                size_t kl, vl;
                const char *key = rf_iter_key(it, &kl);
                const char *v = rf_iter_value(it, &vl);
                /* Forgotten from the oldest: the first one kept must be
                 * the first one after the mark. */
                if (kl != k.len ||
                    rf_key_seq_parse(key + strlen(REVOKED_LOG), 8) != want ||
                    vl < 16)
                        break;
                *pns = rf_realloc(*pns, (*cnt + 1) * 16);
                memcpy(*pns + 16 * (*cnt)++, v, 16);
        }
        if (rf_iter_status(it))
                r = RF_ESTORE;
        else if (want <= last)
                r = RF_ENOENT;
        rf_iter_destroy(it);
        rf_buf_free(&k);
        if (r) {
                free(*pns);
                *pns = NULL;
                *cnt = 0;
        }
        return r;
}

/* Numbers the purging revocation of the user of \p pn and keeps it (see
 * the top of the file); forgets the oldest ones past REVOKED_KEEP_MS. */
static int remember_revoked(rf_apply_ctx_t *ctx, const unsigned char pn[16])
{
        rf_buf_t k = { 0 }, v = { 0 }, *old = NULL;
        size_t n = 0;
        uint64_t seq;
        int r;

        if ((r = rf_consent_revoked_mark(ctx->st, ctx->txn, &seq)))
                return r;
        seq++;
        rf_buf_put_be64(&v, seq);
        rf_txn_put(ctx->txn, RF_CF_META, REVOKED_SEQ, strlen(REVOKED_SEQ),
                   v.data, v.len);
        rf_buf_reset(&v);
        revoked_key(&k, seq);
        rf_buf_append(&v, (const char *)pn, 16);
        rf_buf_put_be64(&v, (uint64_t)ctx->now_ms);
        rf_txn_put(ctx->txn, RF_CF_META, k.data, k.len, v.data, v.len);

        rf_iter_t *it = rf_iter_new(ctx->st, ctx->txn, RF_CF_META, REVOKED_LOG,
                                    strlen(REVOKED_LOG));
        for (; n < REVOKED_PRUNE && rf_iter_valid(it); rf_iter_next(it)) {
                size_t kl, vl;
                const char *key = rf_iter_key(it, &kl);
                const char *val = rf_iter_value(it, &vl);
                rf_cur_t c = { val, val + vl, 0 };
                c.p += vl < 16 ? vl : 16; /* the pseudonym */
                int64_t at = (int64_t)rf_cur_be64(&c);
                if (!c.err && at >= ctx->now_ms - REVOKED_KEEP_MS)
                        break; /* kept from here on: no gap */
                old = rf_realloc(old, (n + 1) * sizeof(*old));
                memset(&old[n], 0, sizeof(*old));
                rf_buf_append(&old[n++], key, kl);
        }
        rf_iter_destroy(it);
        /* Deleted after the iterator is gone (see purge_hides()). */
        for (size_t i = 0; i < n; i++) {
                rf_txn_delete(ctx->txn, RF_CF_META, old[i].data, old[i].len);
                rf_buf_free(&old[i]);
        }
        free(old);
        rf_buf_free(&k);
        rf_buf_free(&v);
        return 0;
}

/* Deletes every hide of the user: after a purge nothing keyed by the raw
 * user id may remain. @returns 0, or RF_ESTORE (nothing deleted) if the
 * hides could not all be read: the purge must not commit half done. */
static int purge_hides(rf_apply_ctx_t *ctx, const char *user)
{
        rf_buf_t prefix = { 0 }, *keys = NULL;
        size_t cnt = 0;
        rf_iter_t *it;
        int r;

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
        r = rf_iter_status(it);
        rf_iter_destroy(it);
        /* Delete after the iterator is gone: a batch must not change under
         * an iterator over it. */
        for (size_t i = 0; i < cnt; i++) {
                if (r == 0)
                        rf_txn_delete(ctx->txn, RF_CF_TOMBSTONES, keys[i].data,
                                      keys[i].len);
                rf_buf_free(&keys[i]);
        }
        /* None found: the summary key's delete anyway, so the read path's
         * hide cache forgets the user, whom it may hold by raw id as
         * having none (hide_cache.h). */
        if (r == 0 && cnt == 0)
                rf_txn_delete(ctx->txn, RF_CF_TOMBSTONES, prefix.data,
                              prefix.len);
        free(keys);
        rf_buf_free(&prefix);
        return r;
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
                r = purge_hides(ctx, ev->user_id);
                if (r == 0 &&
                    (in_runs = rf_runs_purge_subject(ctx, ev->user_id)) < 0) {
                        r = in_runs; /* read error: not half purged */
                        in_runs = 0;
                }
                /* ...and a load not taken yet may hold them too. */
                if (r == 0)
                        r = remember_revoked(ctx, pn);
                /* ...and an unfinished refresh run's cursor or start. */
                if (r == 0)
                        r = rf_refresh_forget_subject(ctx->st, ctx->txn,
                                                      ev->user_id, ctx->now_ms);
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
