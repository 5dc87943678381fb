/*
 * recfresh - invalidation events and their codec (JSON on the five event
 * topics: recs.item-bans.v1, recs.stock.v1, recs.user-hides.v1,
 * recs.consent.v1, recs.campaigns.v1).
 */
#ifndef RECFRESH_EVENT_H
#define RECFRESH_EVENT_H

#include "recfresh/common.h"

typedef enum rf_event_type {
        RF_EV_ITEM_BANNED = 0,
        RF_EV_ITEM_UNBANNED,
        RF_EV_STOCK_CHANGED,
        RF_EV_ITEM_HIDDEN,
        RF_EV_ITEM_UNHIDDEN,
        RF_EV_CREATOR_HIDDEN,
        RF_EV_CREATOR_UNHIDDEN,
        RF_EV_CONSENT_REVOKED,
        RF_EV_CONSENT_GRANTED,
        RF_EV_CAMPAIGN_EXPIRED,
        RF_EV__CNT
} rf_event_type_t;

/** @returns the wire name of \p t ("item_banned", ...). */
const char *rf_event_type2str(rf_event_type_t t);

/** @returns the RF_TOPIC_* that carries events of type \p t, or -1. */
int rf_event_type_topic(rf_event_type_t t);

typedef enum rf_consent_scope {
        RF_SCOPE_ALL = 0,
        RF_SCOPE_PERSONALIZATION,
        RF_SCOPE_EMAIL,
        RF_SCOPE_PUSH,
        RF_SCOPE__CNT
} rf_consent_scope_t;

/** @returns the wire name of \p s ("all", ...). */
const char *rf_consent_scope2str(rf_consent_scope_t s);

/** @returns the scope named \p name, or -1. */
int rf_consent_scope_parse(const char *name);

/** A decoded event. Absent string fields read as "" (never NULL). */
typedef struct rf_event {
        rf_event_type_t type;
        int topic; /* RF_TOPIC_* it came from */
        const char *event_id;
        const char *item_id;      /* bans, stock, item hides */
        const char *creator_id;   /* creator hides */
        const char *campaign_id;  /* campaign expiry */
        const char *user_id;      /* hides, consent */
        const char *region;       /* stock: "" = every region */
        const char *reason;       /* bans: optional free text */
        int in_stock;             /* stock */
        rf_consent_scope_t scope; /* consent */
        int64_t occurred_at;      /* ms since the epoch */

        void *mem_; /* private: backing storage, freed by rf_event_clear */
} rf_event_t;

/**
 * Parses an event value read from \p topic (an RF_TOPIC_* of the five event
 * topics). Unknown fields are ignored; a "type" the topic does not carry is
 * RF_REJ_UNKNOWN_TYPE. When \p key is non-NULL and non-empty it must equal
 * the topic's key field (item_id, user_id or campaign_id).
 *
 * @returns 0 with \p ev filled (release with rf_event_clear), or RF_EINVAL
 *          with \p rej saying why (\p ev then needs no clearing).
 */
int rf_event_parse(int topic, const char *key, size_t key_len, const char *buf,
                   size_t len, const rf_limits_t *lim, rf_event_t *ev,
                   rf_rejection_t *rej);

/** rf_event_parse() with jansson's tree always (it reads a flat event
 *  with yajl when it can): for tests that hold the two to the same
 *  results. */
int rf_event_parse_tree(int topic, const char *key, size_t key_len,
                        const char *buf, size_t len, const rf_limits_t *lim,
                        rf_event_t *ev, rf_rejection_t *rej);

/** Releases what \p ev owns and zeroes it. */
void rf_event_clear(rf_event_t *ev);

/**
 * Checks raw JSON text for nesting deeper than \p max_depth without parsing
 * it (strings and escapes are honoured).
 * @returns 1 if too deep, else 0.
 */
int rf_json_too_deep(const char *buf, size_t len, int max_depth);

#endif /* RECFRESH_EVENT_H */
