/*
 * recfresh - a set of strings: open addressing with linear probing on a
 * power-of-two table of FNV-1a hashes, kept at most half full, with
 * backward-shift deletion (no deletion markers). Not thread-safe: callers
 * lock.
 */
#ifndef RECFRESH_STRSET_H
#define RECFRESH_STRSET_H

#include <stddef.h>
#include <stdint.h>

/* A slot: the hash beside the string pointer, so that a probe touches one
 * cache line, and most probes end without a string compare (or its cache
 * miss). */
typedef struct rf_strslot {
        uint64_t hash;
        char *str; /* owned copy, NULL: empty */
} rf_strslot_t;

typedef struct rf_strset {
        rf_strslot_t *slot;
        size_t size; /* 0 or a power of two */
        size_t cnt;
} rf_strset_t;

/** @returns the 64-bit FNV-1a hash of \p s. */
uint64_t rf_hash_str(const char *s);
/** @returns the 64-bit FNV-1a hash of \p n bytes at \p p. */
uint64_t rf_hash_bytes(const void *p, size_t n);

/** rf_hash_bytes(), never 0: for tables whose 0 marks an empty slot. */
uint64_t rf_hash_slot(const void *p, size_t n);

/** Adds a copy of \p s. @returns 1 if added, 0 if it was there. */
int rf_strset_add(rf_strset_t *set, const char *s);

/** @returns 1 if \p s was removed, 0 if it was not there. */
int rf_strset_del(rf_strset_t *set, const char *s);

/** @returns 1 if \p s is in the set. */
int rf_strset_has(const rf_strset_t *set, const char *s);

/** rf_strset_has() with \p hash = rf_hash_str(s), for one string tested
 *  against several sets. */
int rf_strset_has_hash(const rf_strset_t *set, const char *s, uint64_t hash);

/** Frees every string and the table; the set is empty and reusable. */
void rf_strset_clear(rf_strset_t *set);

#endif /* RECFRESH_STRSET_H */
