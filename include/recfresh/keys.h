/*
 * recfresh - key layouts of the store, in one place.
 *
 * Ids never contain NUL (the codecs reject them), so NUL separates parts
 * and prefix scans are exact.
 *
 *   lists       subject \0 surface \0 context
 *               fallback lists of a region: "__fallback__" \0 surface \0
 *               context \0 region (so each region has its own)
 *   index       kind entity \0 <list key>           value: list region
 *               kind: 'i' item, 'c' creator, 'k' campaign
 *   tombstones  'B' item                            item ban
 *               'S' item \0 region                  stock ("" = global)
 *               'H' user \0 'i'|'c' \0 id           user hide
 *               'H' user \0                          its active hides:
 *                                                   ('i'|'c' id \0)...
 *               'C' pseudonym(user)[16] scope       consent (no raw id)
 *               'X' campaign                        campaign expiry
 *   offsets     topic \0 partition(be32)            value: next offset be64
 *   fanout      seq(be64)                           value: rf_fanout job
 *   outbox      seq(be64)                           value: topic, key, value
 */
#ifndef RECFRESH_KEYS_H
#define RECFRESH_KEYS_H

#include "recfresh/common.h"

#define RF_IDX_ITEM     'i'
#define RF_IDX_CREATOR  'c'
#define RF_IDX_CAMPAIGN 'k'

#define RF_TOMB_BAN      'B'
#define RF_TOMB_STOCK    'S'
#define RF_TOMB_HIDE     'H'
#define RF_TOMB_CONSENT  'C'
#define RF_TOMB_CAMPAIGN 'X'

/** Appends the list key of (subject, surface, context). */
void rf_key_list(rf_buf_t *k, const char *subject, const char *surface,
                 const char *context);

/**
 * Appends the key of a fallback list (subject "__fallback__") of
 * (surface, context, region): the list key, plus \0 region when \p region
 * is not empty. rf_key_list_split() of it yields the surface and context.
 */
void rf_key_fallback(rf_buf_t *k, const char *surface, const char *context,
                     const char *region);

/**
 * Appends the key a list is stored under: rf_key_list(), or for a fallback
 * list (subject "__fallback__") rf_key_fallback() with its \p region. Every
 * writer of lists (apply, batch runs, bulk load) keys lists with this.
 */
void rf_key_list_stored(rf_buf_t *k, const char *subject, const char *surface,
                        const char *context, const char *region);

/** Appends the prefix of every list key of \p subject ("subject\0"). */
void rf_key_list_subject_prefix(rf_buf_t *k, const char *subject);

/** A list key split into its parts (pointers into `buf_`). */
typedef struct rf_list_key {
        const char *subject;
        const char *surface;
        const char *context;
        char buf_[3 * 4096 + 8];
} rf_list_key_t;

/** Splits a list key. @returns 0 or RF_EINVAL if malformed. */
int rf_key_list_split(const char *key, size_t klen, rf_list_key_t *out);

/**
 * The run of the list key a reverse-index entry names (\p key of \p klen:
 * the stored list key, then "\0run_id" for a batch run's version). Sets
 * *base_len to the stored key's own length. \p region is the list's region
 * (the index entry's value; NULL if unknown): a fallback list's stored key
 * ends with it when it is not empty, so it alone tells "\0region" from
 * "\0run_id" there.
 * @returns the run id (\p *run_len bytes, in \p key), or NULL for an
 *          incremental list (*run_len 0, *base_len \p klen).
 */
const char *rf_key_list_run(const char *key, size_t klen, const char *region,
                            size_t *base_len, size_t *run_len);

/** Appends a batch run's version key: run id (\p run_len bytes) \0 list
 *  key (\p klen bytes). */
void rf_key_version(rf_buf_t *k, const char *run_id, size_t run_len,
                    const char *list_key, size_t klen);

/** Appends the index prefix of an entity: kind entity \0. */
void rf_key_index_prefix(rf_buf_t *k, char kind, const char *entity);

/** Appends an index key: prefix + list key. */
void rf_key_index(rf_buf_t *k, char kind, const char *entity,
                  const char *list_key, size_t list_klen);

/** Appends a tombstone key with one id ('B', 'X'). */
void rf_key_tomb1(rf_buf_t *k, char kind, const char *id);

/** Appends a stock key ('S' item \0 region). */
void rf_key_stock(rf_buf_t *k, const char *item, const char *region);

/** Appends a hide key; \p what is RF_IDX_ITEM or RF_IDX_CREATOR. */
void rf_key_hide(rf_buf_t *k, const char *user, char what, const char *id);

/** Appends the prefix of every hide of \p user. */
void rf_key_hide_prefix(rf_buf_t *k, const char *user);

/** The user of hide key (or hide prefix) \p key: its length (the user
 *  starts at key + 1), or 0 if \p key is no hide key. */
size_t rf_key_hide_user(const char *key, size_t klen);

/** Appends a consent key from a 16-byte pseudonym and a scope number. */
void rf_key_consent(rf_buf_t *k, const unsigned char pseudonym[16], int scope);

/** Appends an offsets key. */
void rf_key_offset(rf_buf_t *k, const char *topic, int32_t partition);

/** Appends a big-endian sequence key (fanout, outbox). */
void rf_key_seq(rf_buf_t *k, uint64_t seq);

/** @returns the sequence number of a be64 key, or 0 if malformed. */
uint64_t rf_key_seq_parse(const char *k, size_t klen);

/**
 * Per-entity state, the value of every tombstones key: whether the
 * tombstone is in force and which event set it. The newest event by
 * (occurred_at, event_id) wins, whatever order events arrive in.
 */
/* Longest event_id taken, whatever limits.max_id_len says: the id breaks
 * ties between events of the same instant, so a state must hold it whole. */
#define RF_EVENT_ID_MAX 256

typedef struct rf_tomb {
        int active;          /* 1: the tombstone is in force */
        int64_t occurred_at; /* of the event that set this state */
        char event_id[RF_EVENT_ID_MAX + 1]; /* of that event */
} rf_tomb_t;

void rf_tomb_encode(const rf_tomb_t *t, rf_buf_t *out);
/** @returns 0 or RF_EINVAL. */
int rf_tomb_decode(const char *buf, size_t len, rf_tomb_t *t);

/**
 * @returns 1 if an event at (\p occurred_at, \p event_id) is newer than the
 * state \p cur and so replaces it; 0 if it is older or the same event.
 */
int rf_tomb_newer(const rf_tomb_t *cur, int64_t occurred_at,
                  const char *event_id);

#endif /* RECFRESH_KEYS_H */
