/*
 * recfresh - tombstone rules: how each event kind changes per-entity state,
 * and how reads test an entry against that state.
 *
 * A tombstone is per entity (an item's ban, an item's stock in a region, a
 * user's hide of an item or creator, a user's consent, a campaign's expiry),
 * not per list entry. Taking an event is one O(1) state write, so once the
 * event is committed no read returns an entry it invalidates, however many
 * lists hold the item. The per-list work (invalidation notices, recompute
 * requests) is done afterwards by fan-out jobs (fanout.h).
 *
 * One file per kind: tomb_ban.c, tomb_stock.c, tomb_hide.c, tomb_consent.c,
 * tomb_campaign.c. tombstone.c holds what they share and the read check.
 */
#ifndef RECFRESH_TOMBSTONE_H
#define RECFRESH_TOMBSTONE_H

#include "recfresh/apply.h"
#include "recfresh/config.h"
#include "recfresh/keys.h"
#include "recfresh/list.h"
#include "recfresh/store.h"

/* Each returns 0 when the event changed state, RF_ESTALE when it was older
 * than (or the same as) the state held, or a store error. */
int rf_ban_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev);
int rf_stock_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev);
int rf_hide_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev);
int rf_consent_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev);
int rf_campaign_apply(rf_apply_ctx_t *ctx, const rf_event_t *ev);

/**
 * Shared by the apply functions: reads the state at \p key (through the
 * txn) and, if \p ev is newer, writes {active, ev}. *flipped is set when the
 * active flag changed. @returns 0, RF_ESTALE or a store error.
 */
int rf_tomb_update(rf_apply_ctx_t *ctx, const char *key, size_t klen,
                   int active, const rf_event_t *ev, int *flipped);

/**
 * Builds every user's hide summary (keys.h) from the per-hide states of a
 * store written before summaries existed, and records them complete
 * (rf_store_hide_summary()); does nothing on a store that keeps them. Run
 * by the daemon and replay at start, before they take events.
 * @returns 0 or a store error (in \p errstr).
 */
int rf_hide_summaries_build(rf_store_t *st, char *errstr, size_t errstr_size);

/* A hide summary value (keys.h) is ('i'|'c' id \0)..., one per active hide
 * of the user. */
/** Appends one hide (\p idlen bytes of \p id) to summary \p sum. */
void rf_hide_summary_add(rf_buf_t *sum, char what, const char *id,
                         size_t idlen);
/** Steps *pos over the next hide of a summary ending at \p end.
 *  @returns its id (NUL-terminated) with *what set, or NULL at the end. */
const char *rf_hide_summary_next(const char **pos, const char *end, char *what);

/** Why a read skipped an entry. */
typedef enum rf_filter {
        RF_FILTER_BANNED = 0,
        RF_FILTER_OUT_OF_STOCK,
        RF_FILTER_HIDDEN_ITEM,
        RF_FILTER_HIDDEN_CREATOR,
        RF_FILTER_CAMPAIGN_EXPIRED,
        RF_FILTER_DUPLICATE,
        RF_FILTER__CNT,
        RF_FILTER_NONE = -1
} rf_filter_t;

/** @returns "banned", "out_of_stock", ... */
const char *rf_filter2str(rf_filter_t f);

/**
 * Tests entries of one list for one reader. Created per read: it loads the
 * reader's hides once (one prefix scan), then answers per entry from the
 * store's set of entities in force (tomb_set.h), and for the set's members
 * with point lookups on bloom-filtered tombstone keys.
 */
typedef struct rf_checker {
        rf_store_t *st;
        struct rf_tombset *ts;  /* the store's tomb_set.h, or NULL */
        rf_txn_t *txn;          /* read through a batch, or NULL */
        const char *region;     /* the list's region, "" for none */
        struct rf_hides *hides; /* the reader's active hides
                                 * (hide_cache.h), or NULL: none */
        rf_buf_t key, val;      /* scratch */
        int err;                /* a store error met: the checks that hit it
                                 * skipped their entry (fail closed); the read
                                 * must fail (see rf_read_list) */
} rf_checker_t;

/**
 * Prepares a checker for \p reader (whose hides apply; for fallback lists
 * it is the requesting user, not "__fallback__") and a list of \p region.
 * @returns 0 or a store error.
 */
int rf_checker_init(rf_checker_t *ck, rf_store_t *st, rf_txn_t *txn,
                    const char *reader, const char *region);

/** @returns why \p e must not be served, or RF_FILTER_NONE.
 *  Duplicates are the caller's business. On a store error the entry is
 *  skipped and ck->err set: callers fail the read rather than serve
 *  entries that were not checked. */
rf_filter_t rf_checker_check(rf_checker_t *ck, const rf_entry_t *e);

/** rf_checker_check() in two steps, for a run of entries: the set's
 *  answers (RF_TS_* flags) for \p n entries at once, under one lock, then
 *  the check of each entry given its flags. */
void rf_checker_flags(rf_checker_t *ck, const rf_entry_t *e, size_t n,
                      uint8_t *out);
rf_filter_t rf_checker_check_flags(rf_checker_t *ck, const rf_entry_t *e,
                                   int ts);

void rf_checker_clear(rf_checker_t *ck);

/* Per-kind read checks, used by rf_checker_check. Each returns 1 if the
 * tombstone is in force. */
int rf_ban_check(rf_checker_t *ck, const char *item_id);
int rf_stock_check_out(rf_checker_t *ck, const char *item_id);
int rf_campaign_check(rf_checker_t *ck, const char *campaign_id);

/**
 * @returns 1 if \p subject's consent blocks serving \p surface: scope all or
 * personalization revoked, or the surface's own consent_scope revoked;
 * 0 if not; RF_ESTORE (negative) if the consent state could not be read.
 * Non-zero is never "allowed": callers fail closed (serve nothing) or fail
 * with the error. \p txn may be NULL.
 */
int rf_consent_blocks(rf_store_t *st, rf_txn_t *txn, const rf_config_t *conf,
                      const char *subject, const char *surface);

/** @returns 1 if \p subject revoked scope all or personalization, so no
 *  personalised list may be stored for it; 0 if not; RF_ESTORE (negative)
 *  if the consent state could not be read (as rf_consent_blocks()). */
int rf_consent_purged(rf_store_t *st, rf_txn_t *txn, const char *subject);

/**
 * Sets *mark to the number of purging revocations (scope all or
 * personalization) taken so far: what a bulk load's build records, to ask
 * rf_consent_revoked_since() when its job is taken. \p txn may be NULL.
 * @returns 0 or RF_ESTORE.
 */
int rf_consent_revoked_mark(rf_store_t *st, rf_txn_t *txn, uint64_t *mark);

/**
 * The pseudonyms (rf_store_pseudonym(), 16 bytes each, *cnt of them, in
 * *pns which the caller frees) of the users whose consent was revoked (scope
 * all or personalization) after \p mark, granted again since or not; a
 * user revoked twice is there twice. \p txn may be NULL.
 * @returns 0, RF_ENOENT if some of them are no longer kept (revocations are
 * kept 7 days after they were taken), or RF_ESTORE.
 */
int rf_consent_revoked_since(rf_store_t *st, rf_txn_t *txn, uint64_t mark,
                             unsigned char **pns, size_t *cnt);

#endif /* RECFRESH_TOMBSTONE_H */
