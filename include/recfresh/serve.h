/*
 * recfresh - the serving policy: what a caller gets for (subject, surface,
 * context), on top of rf_read_list(). Used by the HTTP API and by
 * `recfresh get`, so both answer alike.
 *
 *  - a fresh list is served as `precomputed`, with the final check
 *    (every tombstone applied at read time);
 *  - an expired list is served as `stale` (with the final check) for the
 *    surface's grace period (surface.<name>.grace), and a recompute is
 *    requested; past the grace period the fallback list is served;
 *  - fallback lists (subject "__fallback__", optional region) are served
 *    when there is no list, when it expired beyond grace, when consent
 *    forbids personalised lists, and fill the remaining slots when fewer
 *    than min(limit, surface.<name>.min_valid) entries survive;
 *  - fallback entries pass the same checks, the requesting user's hides
 *    included, and never repeat an item already served;
 *  - nothing left: `empty`.
 *
 * The fallback list of a read is the first stored of (context, region),
 * (context, no region), (default context, region), (default context, no
 * region), where region is the request's.
 */
#ifndef RECFRESH_SERVE_H
#define RECFRESH_SERVE_H

#include "recfresh/config.h"
#include "recfresh/list.h"
#include "recfresh/read.h"
#include "recfresh/store.h"
#include "recfresh/tombstone.h"

/** Where a response's entries came from. */
typedef enum rf_served_from {
        RF_SERVED_PRECOMPUTED = 0, /* the subject's fresh list */
        RF_SERVED_STALE,           /* the subject's expired list, in grace */
        RF_SERVED_FALLBACK,        /* only the fallback list */
        RF_SERVED_EMPTY,           /* nothing survived */
        RF_SERVED__CNT
} rf_served_from_t;

/** @returns "precomputed", "stale", "fallback" or "empty". */
const char *rf_served_from2str(rf_served_from_t s);

/** Why the fallback list was consulted. */
typedef enum rf_fallback_why {
        RF_FB_NONE = 0,
        RF_FB_NO_LIST, /* nothing stored for the key */
        RF_FB_EXPIRED, /* expired beyond the grace period */
        RF_FB_CONSENT, /* consent forbids personalised lists */
        RF_FB_TOO_FEW, /* too few entries survived the checks */
        RF_FB__CNT
} rf_fallback_why_t;

/** @returns "none", "no_list", "expired", "consent_revoked",
 *  "too_few_valid". */
const char *rf_fallback_why2str(rf_fallback_why_t w);

typedef struct rf_serve_req {
        const char *subject_id;
        const char *surface;
        const char *context_key; /* NULL or "" for the default */
        const char *region;      /* NULL or "": no regional fallback */
        size_t limit; /* entries wanted; 0 = all of the subject's list
                       * (filled up to min_valid from the fallback) */
} rf_serve_req_t;

/**
 * Asks for a recompute of (subject, surface, context) because a read found
 * its list wanting (\p reason: "expired"). Called on the reading thread,
 * which may be any thread: implementations must be thread-safe and quick.
 */
typedef void rf_recompute_fn(void *opaque, const char *subject_id,
                             const char *surface, const char *context_key,
                             const char *reason);

/** What a read runs against. */
typedef struct rf_serve_env {
        rf_store_t *st;
        const rf_config_t *conf;
        rf_recompute_fn *recompute; /* NULL: reads ask for nothing */
        void *recompute_opaque;
        int64_t now_ms; /* 0: the wall clock (tests pin it) */
} rf_serve_env_t;

/** One served entry. */
typedef struct rf_serve_item {
        const rf_entry_t *entry; /* points into result.list or .fallback */
        uint32_t position;       /* 0-based position in its list */
        int from_fallback;       /* 1: from the fallback list */
} rf_serve_item_t;

typedef struct rf_serve_result {
        rf_served_from_t served_from;
        rf_read_status_t status;  /* of the subject's own list */
        int expired;              /* own list is past expires_at */
        rf_fallback_why_t fb_why; /* RF_FB_NONE: fallback not consulted */
        const char *recompute;    /* reason a recompute was asked, or
                                   * NULL (static string) */
        rf_list_t *list;          /* own list (owned) or NULL */
        rf_list_t *fallback;      /* fallback list used (owned) or NULL */
        rf_serve_item_t *items;   /* owned */
        size_t item_cnt;
        size_t fallback_filled;          /* items from the fallback list */
        size_t filtered[RF_FILTER__CNT]; /* entries skipped, by reason */
        size_t scanned;                  /* entries examined */
} rf_serve_result_t;

/**
 * Serves one read under the policy above and counts it in rf_metrics
 * (reads by served_from, skips by reason, empty responses). Thread-safe:
 * any number of threads may read one store beside the writer.
 * Release \p res with rf_serve_result_clear() whatever the return.
 * @returns 0 or a store error (RF_ESTORE).
 */
int rf_serve_list(const rf_serve_env_t *env, const rf_serve_req_t *req,
                  rf_serve_result_t *res);

void rf_serve_result_clear(rf_serve_result_t *res);

/**
 * Appends the JSON form of a result: subject_id, surface, context_key,
 * region, served_from, status, expired, items [{item_id, position, score,
 * reason_codes, source}], lineage (of the list served: own list, or the
 * fallback when served_from is "fallback"; null if none), filtered {reason:
 * count}, scanned, fallback_filled, fallback_reason, fallback_lineage,
 * recompute_requested.
 */
void rf_serve_result_to_json(const rf_serve_req_t *req,
                             const rf_serve_result_t *res, rf_buf_t *out);

/** Prints a human-readable form of a result. */
void rf_serve_result_print(const rf_serve_req_t *req,
                           const rf_serve_result_t *res, FILE *fp);

#endif /* RECFRESH_SERVE_H */
