/*
 * recfresh - what the recompute queue remembers of lists' valid entries.
 *
 * A request is urgent when the list's distinct valid entries fall below its
 * surface's min_valid. Finding that out takes reading and checking the list:
 * two thirds of a fan-out's cost per list (measured). Most invalidations of
 * a list leave it far above min_valid, so the queue keeps, per list, a lower
 * bound of its valid entries counted at its last read. An item ban or stock
 * change takes at most one distinct entry out: the bound drops by one, and
 * the list is read again only when the bound could fall below min_valid.
 * A campaign's expiry takes out at most the list's entries that have a
 * campaign, also counted at the read.
 *
 * The table is two-way set-associative (a list's hash picks a set of two
 * slots; a newer list evicts the one remembered less recently) and holds
 * 64-bit hashes, not keys: 32 bytes a list (and a 4-byte subject counter
 * per four lists), no allocation after creation. A forgotten or evicted
 * list is read again, nothing worse. A bound is good while:
 *   - the list's incremental version is unchanged (rf_validmem_forget()
 *     at every write, again when the batch commits or rolls back, since a
 *     read inside the batch sees the store before it);
 *   - no run was activated or rolled back (the runs column family's epoch,
 *     stored with the bound): either changes which version reads serve;
 *   - the index entry that led to it names the same version (run suffix).
 *   - the subject's hides and consent are unchanged (a generation per
 *     subject, bumped by rf_validmem_subject_changed(); subjects sharing a
 *     counter only forget more). A creator hide may take several entries
 *     out of a list at once; consent blocks its lists' hooks while
 *     revoked.
 * An item hide's job takes one entry off the bound of each list holding
 * the item, as a ban's job does (rf_fanout_schedule_subject()). Events that
 * take entries out another way (creator hides, consent) read the list and
 * set a new bound. A bound may only be too low: tombstones
 * lifted since, or a batch rolled back, make the list read early.
 *
 * Not thread-safe: the writer thread owns it.
 */
#ifndef RECFRESH_VALID_MEMORY_H
#define RECFRESH_VALID_MEMORY_H

#include <stddef.h>
#include <stdint.h>

typedef struct rf_validmem rf_validmem_t;

/** @returns a table of \p slots (rounded down to a power of two), or NULL
 *  for 0 slots (every lookup misses). */
rf_validmem_t *rf_validmem_new(size_t slots);
void rf_validmem_destroy(rf_validmem_t *m);

/** What is remembered of a list. */
typedef struct rf_validmem_val {
        int32_t valid;     /* lower bound of its distinct valid entries */
        int32_t campaigns; /* upper bound of its entries with a campaign */
} rf_validmem_val_t;

/**
 * Looks up the list \p key[0..base) in the version named by \p run[0..rlen)
 * ("" for the incremental list) at runs epoch \p epoch.
 * @returns 1 and sets *out, or 0 if nothing is remembered of it.
 */
int rf_validmem_get(const rf_validmem_t *m, const char *subject,
                    const char *key, size_t base, const char *run, size_t rlen,
                    uint64_t epoch, rf_validmem_val_t *out);

/** Remembers \p val for the list and version (as rf_validmem_get()). */
void rf_validmem_put(rf_validmem_t *m, const char *subject, const char *key,
                     size_t base, const char *run, size_t rlen, uint64_t epoch,
                     rf_validmem_val_t val);

/** \p subject's hides or consent changed: forgets its lists' bounds. */
void rf_validmem_subject_changed(rf_validmem_t *m, const char *subject);

/** Forgets the list \p key[0..klen), now and again at rf_validmem_settle(). */
void rf_validmem_forget(rf_validmem_t *m, const char *key, size_t klen);

/** The batch committed or rolled back: forgets the lists it changed again. */
void rf_validmem_settle(rf_validmem_t *m);

#endif /* RECFRESH_VALID_MEMORY_H */
