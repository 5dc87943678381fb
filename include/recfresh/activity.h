/*
 * recfresh - subject activity (recs.activity.v1): the codec of its records
 * and the per-subject last activity kept for the incremental refresh.
 *
 * Last activity lives in the activity column family:
 *   'A' subject -> at (be64, ms since the epoch), the newest seen
 * It is personal data: a consent purge deletes it, activity of a subject
 * whose consent is revoked is not kept, and entries older than
 * recompute.activity_ttl are pruned by the incremental refresh.
 */
#ifndef RECFRESH_ACTIVITY_H
#define RECFRESH_ACTIVITY_H

#include "recfresh/apply.h"

/** A decoded activity record. Strings are owned (rf_activity_clear). */
typedef struct rf_activity {
        const char *user_id;
        const char *surface; /* "" if absent */
        int64_t at;          /* ms since the epoch */
        void *mem_;
} rf_activity_t;

/**
 * Parses a recs.activity.v1 value: {"user_id","at","surface"?}. \p key (may
 * be NULL or empty) must equal user_id. Limits as for events.
 * @returns 0 with \p a filled (free with rf_activity_clear), or RF_EINVAL
 *          with \p rej saying why.
 */
int rf_activity_parse(const char *key, size_t key_len, const char *buf,
                      size_t len, const rf_limits_t *lim, rf_activity_t *a,
                      rf_rejection_t *rej);

/** Releases what \p a owns and zeroes it. */
void rf_activity_clear(rf_activity_t *a);

/**
 * Records \p a in ctx->txn: the subject's last activity becomes the newer
 * of the stored one and a->at.
 * @returns 0, RF_ESTALE (older than the stored activity), RF_EBLOCKED (the
 *          subject's consent is revoked: nothing stored) or a store error.
 */
int rf_activity_apply(rf_apply_ctx_t *ctx, const rf_activity_t *a);

/** Appends the activity key of \p subject ('A' subject). */
void rf_key_activity(rf_buf_t *k, const char *subject);

/** Reads the last activity of \p subject (through \p txn if not NULL).
 *  @returns 0 with *at, RF_ENOENT or a store error. */
int rf_activity_get(rf_store_t *st, rf_txn_t *txn, const char *subject,
                    int64_t *at);

#endif /* RECFRESH_ACTIVITY_H */
