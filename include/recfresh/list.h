/*
 * recfresh - the ranked list model and its two codecs:
 *  - JSON, as published on recs.lists.v1 (rf_list_from_json);
 *  - a compact binary form, as stored in RocksDB (rf_list_encode/decode).
 *
 * Every string field of a decoded list is non-NULL: an absent optional field
 * reads as "". All strings are owned by the list and freed by
 * rf_list_destroy().
 */
#ifndef RECFRESH_LIST_H
#define RECFRESH_LIST_H

#include "recfresh/common.h"

/** The subject_id of non-personalised fallback lists. */
#define RF_FALLBACK_SUBJECT "__fallback__"

/** One ranked entry. */
typedef struct rf_entry {
        const char *item_id;
        double score;
        const char *creator_id;    /* "" if absent */
        const char *campaign_id;   /* "" if absent */
        const char **reason_codes; /* reason_code_cnt strings */
        size_t reason_code_cnt;
        const char *provenance; /* source_provenance as compact JSON text,
                                 * "" if absent */
} rf_entry_t;

/** A precomputed ranked list for (subject, surface, context). */
typedef struct rf_list {
        const char *subject_id;
        const char *surface;
        const char *context_key; /* "" by default */
        const char *region;      /* "" if absent */
        const char *list_id;
        const char *run_id; /* "" if absent (incremental recompute) */
        const char *model_version;
        const char *policy_version;      /* "" if absent */
        const char *feature_set_version; /* "" if absent */
        int64_t generated_at;            /* ms since the epoch */
        int64_t expires_at;              /* ms since the epoch */
        rf_entry_t *items;
        size_t item_cnt;

        void *mem_;        /* private: backing storage, freed by
                            * rf_list_destroy */
        size_t mem_len_;   /* private: its size (decoded lists), else 0 */
        _Atomic int refs_; /* private: holders besides the first
                            * (rf_list_share()) */
} rf_list_t;

/**
 * Parses a recs.lists.v1 value. Unknown fields are ignored. \p key (may be
 * NULL) is the message key: when present it must equal subject_id.
 * Every id (subject, surface, context, list, item, creator, campaign) must be
 * non-empty except context_key, at most lim->max_id_len bytes and free of NUL
 * bytes; timestamps must be RFC 3339; score must be a finite number.
 *
 * @returns 0 and *listp (caller owns, free with rf_list_destroy), or
 *          RF_EINVAL with \p rej saying why.
 */
int rf_list_from_json(const char *key, size_t key_len, const char *buf,
                      size_t len, const rf_limits_t *lim, rf_list_t **listp,
                      rf_rejection_t *rej);

/**
 * The two parsers behind rf_list_from_json(), for tests that hold them to
 * the same results.
 *
 * rf_list_from_json_stream() parses with yajl's callbacks, building no tree,
 * and takes the common shape only: no escapes, no source_provenance, no
 * nested unknown fields. @returns 0 and *listp, or 1 when it declines the
 * value, whatever the reason (it never says why). It takes a value only if
 * rf_list_from_json_tree() takes it, and then yields the same list.
 *
 * rf_list_from_json_tree() parses with jansson into a tree: every value,
 * and every rejection with its reason. Returns as rf_list_from_json().
 */
int rf_list_from_json_stream(const char *key, size_t key_len, const char *buf,
                             size_t len, const rf_limits_t *lim,
                             rf_list_t **listp);
int rf_list_from_json_tree(const char *key, size_t key_len, const char *buf,
                           size_t len, const rf_limits_t *lim,
                           rf_list_t **listp, rf_rejection_t *rej);

/** Appends the binary form of \p l's header fields and l->item_cnt (the
 *  items follow it). */
void rf_list_put_header(rf_buf_t *b, const rf_list_t *l);

/** Appends the binary encoding of \p list to \p out. */
void rf_list_encode(const rf_list_t *list, rf_buf_t *out);

/**
 * Decodes the binary form. Makes one copy of \p buf; strings point into it.
 * @returns 0 and *listp (caller owns), or RF_EINVAL if \p buf is corrupt.
 */
int rf_list_decode(const char *buf, size_t len, rf_list_t **listp);

/**
 * rf_list_decode() of the header and the first \p max items only (all of
 * them when the list has fewer): (*listp)->item_cnt is the number decoded
 * and *total the list's. The bytes after them are neither read nor
 * validated; a caller that runs out decodes the whole list.
 */
int rf_list_decode_head(const char *buf, size_t len, size_t max,
                        rf_list_t **listp, size_t *total);

/**
 * Decodes only the header (everything but items) of the binary form:
 * cheaper when a caller needs generated_at or lineage only.
 * item_cnt is set, items is NULL.
 */
int rf_list_decode_header(const char *buf, size_t len, rf_list_t **listp);

/**
 * One more holder of \p list, which then lives until every holder has
 * called rf_list_destroy(). For the read path's cache of decoded lists
 * (list_cache.h): a shared list is only ever read. Any thread.
 * @returns \p list.
 */
rf_list_t *rf_list_share(rf_list_t *list);

/** @returns the bytes \p list holds (a decoded list's), for budgets. */
size_t rf_list_bytes(const rf_list_t *list);

/**
 * Walks the binary form in place, one entry at a time, with no copy and no
 * allocation: for hot paths that look at a few fields of every entry once
 * (the fan-out's per-list check). Strings point into the buffer, which must
 * outlive the walk; reason_codes is NULL (reason_code_cnt is set).
 */
typedef struct rf_list_walk {
        rf_cur_t c;
        size_t left; /* entries not walked yet */
} rf_list_walk_t;

/** Reads the header into \p hdr (items NULL). @returns RF_OK or RF_EINVAL. */
int rf_list_walk_init(rf_list_walk_t *w, const char *buf, size_t len,
                      rf_list_t *hdr);

/**
 * The next entry into \p e. @returns 1 with *e set, 0 after the last one
 * (the buffer ended with it), or RF_EINVAL if the bytes are corrupt.
 */
int rf_list_walk_next(rf_list_walk_t *w, rf_entry_t *e);

/** Appends the JSON form of \p list (as on recs.lists.v1) to \p out. */
void rf_list_to_json(const rf_list_t *list, rf_buf_t *out);

/** Frees \p list and everything it owns. NULL is a no-op. */
void rf_list_destroy(rf_list_t *list);

#endif /* RECFRESH_LIST_H */
