/*
 * recfresh - the recompute queue: which subjects the scorer must recompute,
 * sent once, durably and fairly on recs.recompute.v1.
 *
 * The pending queue lives in the queue column family, one entry per subject:
 *   'P' subject                          the pending entry (binary, below)
 *   'D' class enqueued_at(be64) subject  due index, "" value; class '0'
 *                                        urgent, '1' incremental, '2' active,
 *                                        '3' full
 * An entry holds the surfaces to recompute (each with the time of its latest
 * reason), the reasons (capped at recompute.max_reasons, the rest counted in
 * reasons_dropped), the mode, the priority, the first enqueued_at and a
 * request_id assigned when the entry is created. Triggers (tombstones that
 * remove entries from a servable list, consent granted, refresh runs) write
 * it in the apply transaction, atomically with their event.
 *
 * Sending: rf_queue_tick() takes due entries (urgent first, then incremental
 * after recompute.coalesce_ms, then active, then full), applies one token
 * bucket to incremental and active requests and a separate, lower one to full
 * refresh requests, produces them and deletes an entry only when the broker
 * acknowledged its request and nothing was added to it meanwhile (else the
 * rest is sent again under a new request_id). A crash before the
 * acknowledgement sends the entry again with the same request_id.
 *
 * A list published for a subject and surface, generated after that surface's
 * latest reason, removes the surface from the entry (and the entry when none
 * is left): nothing is sent for a list that is already fresh.
 */
#ifndef RECFRESH_RECOMPUTE_H
#define RECFRESH_RECOMPUTE_H

#include <librdkafka/rdkafka.h>

#include "recfresh/apply.h"
#include "recfresh/event.h"

typedef enum rf_rc_mode {
        RF_RC_INCREMENTAL = 0, /* event-driven */
        RF_RC_FULL,            /* daily full refresh */
        RF_RC_ACTIVE,          /* hourly refresh of active subjects */
        RF_RC__MODE_CNT
} rf_rc_mode_t;

/** @returns "incremental", "full" or "active". */
const char *rf_rc_mode2str(int mode);

/** @returns the mode named \p s, or -1. */
int rf_rc_mode_parse(const char *s);

/* ---- token bucket ---------------------------------------------------------*/

/** A token bucket over an injected clock (ms), so tests count requests over
 *  simulated time. Burst is one second of tokens (at least 1). */
typedef struct rf_bucket {
        double rate;     /* tokens per second */
        double burst;    /* most tokens held */
        double tokens;   /* tokens now */
        int64_t last_ms; /* clock of the last refill */
} rf_bucket_t;

/** Starts \p b full at \p now_ms. */
void rf_bucket_init(rf_bucket_t *b, double rate_per_s, int64_t now_ms);

/** Takes one token if there is one. @returns 1 if taken, else 0. */
int rf_bucket_take(rf_bucket_t *b, int64_t now_ms);

/** @returns ms until a token is available (0 if one is). */
int64_t rf_bucket_wait_ms(rf_bucket_t *b, int64_t now_ms);

/* ---- the queue ------------------------------------------------------------*/

typedef struct rf_queue rf_queue_t;

/** What a trigger adds to a subject's entry. */
typedef struct rf_queue_add {
        const char *subject_id;
        const char *surface; /* NULL or "" = every surface */
        rf_rc_mode_t mode;
        int urgent;             /* bypass coalescing and rate limits */
        const char *request_id; /* NULL: random; refresh runs derive it */
        const char *run_id;     /* NULL or "" for none */
        /* the reason, or reason_type NULL for none */
        const char *reason_type; /* event type or "list_expired", ... */
        const char *event_id;    /* may be NULL */
        const char *entity_kind; /* may be NULL */
        const char *entity_id;   /* may be NULL */
} rf_queue_add_t;

/** Backlog figures (entries in the store, in flight included). */
typedef struct rf_queue_stats {
        uint64_t count;                    /* pending entries */
        uint64_t by_mode[RF_RC__MODE_CNT]; /* of which, per mode */
        uint64_t urgent;                   /* of which urgent */
        uint64_t inflight;                 /* sent, not yet acknowledged */
        int64_t oldest_enqueued_at;        /* 0 if empty */
        int64_t oldest_by_mode[RF_RC__MODE_CNT]; /* 0 if none */
} rf_queue_stats_t;

/**
 * Opens the queue over \p st (the daemon's primary store): rebuilds the due
 * index from the pending entries (entries in flight at a crash become due
 * again, same request_id) and counts the backlog. \p conf must outlive it.
 * @returns the queue (never NULL; free with rf_queue_destroy()).
 */
rf_queue_t *rf_queue_new(rf_store_t *st, const rf_config_t *conf,
                         int64_t now_ms);
void rf_queue_destroy(rf_queue_t *q);

/**
 * Between these two calls, rf_queue_add() keeps the entry it changed last
 * in memory and puts it into its batch only when it is given another
 * subject, or at rf_queue_release(). A fan-out step meets a subject's lists
 * one after another; each would read, decode, encode and put the whole
 * entry. Release before the batch commits, and call nothing else that
 * reads the queue in between.
 */
void rf_queue_hold(rf_queue_t *q);
void rf_queue_release(rf_queue_t *q);

/**
 * Merges \p add into the subject's entry in \p txn (creating it), at
 * \p now_ms. Event-driven (incremental) additions upgrade a pending full or
 * active entry; urgent ones make it urgent.
 * @returns 0 (entry created), 1 (merged into the pending entry),
 *          RF_EBLOCKED (the subject revoked consent for personalisation:
 *          nothing is queued) or a store error.
 */
int rf_queue_add(rf_queue_t *q, rf_txn_t *txn, const rf_queue_add_t *add,
                 int64_t now_ms);

/** Marks what was added since the last commit as committed / drops it
 *  (call after the transaction's commit or failure, as for the outbox). */
void rf_queue_committed(rf_queue_t *q);
void rf_queue_rollback(rf_queue_t *q);

/* ---- hooks of the apply path (all write into ctx->txn) -------------------*/

/** What the caller of rf_queue_list_invalidated() knows of the event's
 *  entity in the list, without reading the list. */
typedef enum {
        RF_ENTRY_UNKNOWN = -1, /* read the list to find out */
        RF_ENTRY_KEPT = 0,     /* an item, not filtered in the list's region */
        RF_ENTRY_FILTERED = 1, /* an item, filtered there: at most one
                                * distinct entry left the list */
        RF_ENTRY_CAMPAIGN = 2, /* a campaign, expired: at most the list's
                                * entries with a campaign left it */
} rf_entry_state_t;

/**
 * Called by rf_fanout_list_invalidated() for each list an event touched
 * (\p region: the list's, as there).
 * Queues a recompute of the list's subject and surface when the event
 * removed an entry from a servable list (not for reversals, not for lists
 * consent blocks), urgent when the list's distinct valid entries fell below
 * its surface's min_valid. No-op without ctx->queue.
 *
 * Knowing whether a list is urgent takes reading it: most of a fan-out's
 * cost. The queue remembers, per list, a lower bound of its valid entries
 * from the last read (recompute.valid_memory lists). With \p entry
 * RF_ENTRY_FILTERED (or RF_ENTRY_CAMPAIGN), a bound that stays at or above
 * min_valid after losing one entry (or every entry with a campaign) answers
 * without a read.
 */
void rf_queue_list_invalidated(rf_apply_ctx_t *ctx, const char *list_key,
                               size_t klen, const char *region,
                               rf_event_type_t cause, const char *event_id,
                               const char *entity_kind, const char *entity_id,
                               rf_entry_state_t entry);

/** Called by rf_lists_apply() and rf_lists_remove() when the incremental
 *  list under \p list_key changes: the queue forgets what it knew of it. */
void rf_queue_list_changed(rf_queue_t *q, const char *list_key, size_t klen);

/** Called when \p subject's hides or consent change: the queue forgets
 *  what it knew of the subject's lists' valid entries. */
void rf_queue_subject_changed(rf_queue_t *q, const char *subject);

/** Called by rf_lists_apply() for a stored list: clears the surface from
 *  the subject's entry if the list is newer than its latest reason. */
void rf_queue_list_published(rf_apply_ctx_t *ctx, const rf_list_t *list);

/**
 * Called when consent scope all or personalization flips for \p ev's user:
 * revoked deletes the subject's pending entry and last activity (no trace of
 * the subject id stays in the queue); granted queues a recompute of every
 * configured surface (surfaces [] = all when none is configured).
 */
void rf_queue_consent(rf_apply_ctx_t *ctx, const rf_event_t *ev, int revoked);

/**
 * Asks for a recompute from any thread (a read that found a list expired):
 * queued in memory, added by the writer thread on its next rf_queue_tick().
 * \p reason is a reason type ("list_expired"). Bounded: beyond 10000
 * waiting asks, more are dropped.
 */
void rf_queue_ask(rf_queue_t *q, const char *subject, const char *surface,
                  const char *reason);

/* ---- sending --------------------------------------------------------------*/

/** Installs the delivery-report callback on the queue producer's conf. */
void rf_queue_conf_set(rf_queue_t *q, rd_kafka_conf_t *conf);

/** Consent is read from \p st too, as each request falls due: for a queue
 *  whose own store holds none (`recfresh refresh`'s, beside the daemon's,
 *  which it reads as a secondary). An entry whose subject revoked scope
 *  all or personalization since it was queued is dropped, not sent; one
 *  whose consent cannot be read fails the take. */
void rf_queue_set_consent_store(rf_queue_t *q, rf_store_t *st);

/**
 * Serves delivery reports of \p rk, settles acknowledged requests, then
 * produces due requests within the rate limits and recompute.max_inflight.
 * @returns the number of requests produced now.
 */
size_t rf_queue_tick(rf_queue_t *q, rd_kafka_t *rk, int64_t now_ms);

/** @returns ms until the next request could be sent (0: now; capped at
 *  1000 when anything is pending, -1 when the queue is empty). */
int64_t rf_queue_wait_ms(rf_queue_t *q, int64_t now_ms);

/** Waits up to \p timeout_ms for the acknowledgements of requests in flight
 *  (clean shutdown). */
void rf_queue_flush(rf_queue_t *q, rd_kafka_t *rk, int timeout_ms);

/** A request taken for sending (rf_queue_take). */
typedef struct rf_queue_req {
        rf_buf_t subject_id;
        rf_buf_t request_id;
        rf_buf_t json; /* the recs.recompute.v1 value */
        void *token;   /* identifies the send to rf_queue_settle() */
} rf_queue_req_t;

/**
 * The sending steps rf_queue_tick() runs, for tests and for callers with
 * their own producer: takes the next due request within the limits at
 * \p now_ms and marks it in flight.
 * @returns 1 with \p req filled, 0 if none is due, or a store error.
 */
int rf_queue_take(rf_queue_t *q, int64_t now_ms, rf_queue_req_t *req);

/** rf_queue_take() of up to \p max requests into \p reqs, all marked in
 *  flight in one commit. @returns how many, or a store error (none taken,
 *  \p reqs left clear). */
int rf_queue_take_batch(rf_queue_t *q, int64_t now_ms, rf_queue_req_t *reqs,
                        size_t max);

/** Settles a taken request: \p acked 1 deletes (or re-arms) its entry, 0
 *  (delivery failed) makes it due again with the same request_id. */
int rf_queue_settle(rf_queue_t *q, void *token, int acked, int64_t now_ms);

/** rf_queue_settle() of \p n taken requests in one commit. Every token is
 *  settled (and freed) even when a store error is returned. */
int rf_queue_settle_batch(rf_queue_t *q, void *const *tokens, size_t n,
                          int acked, int64_t now_ms);

void rf_queue_req_clear(rf_queue_req_t *req);

/** Fills the backlog counts of \p out, from memory (no store access: for
 *  every loop turn); the oldest fields stay 0. */
void rf_queue_counts(const rf_queue_t *q, rf_queue_stats_t *out);

/** rf_queue_counts() plus the oldest pending entries, from the head of
 *  each due class (one bounded seek per class: for metrics). */
void rf_queue_stats(rf_queue_t *q, rf_queue_stats_t *out);

/** Computes the backlog figures by scanning \p st (a secondary reader, for
 *  `recfresh queue`). @returns 0 or a store error. */
int rf_queue_scan_stats(rf_store_t *st, rf_queue_stats_t *out);

/** Encodes a request JSON (recs.recompute.v1) from a stored entry value;
 *  used by tests and `recfresh queue --list`. @returns 0 or RF_EINVAL. */
int rf_queue_entry_to_json(const char *subject, const char *val, size_t vlen,
                           rf_buf_t *out);

/** The queue column family's merge operator (store.c): \p base (NULL if
 *  none) with the \p n entry deltas \p ops applied in order, into \p out
 *  (unset on entry; malloc'd bytes, the caller's). Never fails: a damaged
 *  delta is skipped and counted (recfresh_recompute_delta_damaged_total). */
void rf_queue_entry_merge(const char *base, size_t blen, const char *const *ops,
                          const size_t *lens, int n, rf_buf_t *out);

/** @returns a deterministic request id for (\p run_id, \p subject): 32 hex
 *  digits of SHA-256, written to \p out (33 bytes). */
char *rf_queue_request_id(const char *run_id, const char *subject,
                          char out[33]);

/** @returns the store the queue (and its transactions) write to. */
rf_store_t *rf_queue_store(const rf_queue_t *q);

#endif /* RECFRESH_RECOMPUTE_H */
