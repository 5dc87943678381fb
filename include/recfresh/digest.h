/*
 * recfresh - a digest of a store's logical state (`recfresh digest`), to
 * compare a replay with the live store or two replays with each other.
 *
 * Covered, column family by column family (each entry as key and value):
 *   lists, index, tombstones, activity (last activity of subjects; not
 *   the refresh-run records, which the daemon's wall-clock schedule
 *   starts), runs, versions.
 * Left out, because they record how the state was reached rather than what
 * it is, or depend on the wall clock, the broker or a random salt:
 *   meta (format, pseudonymisation salt), offsets (positions in topics),
 *   fanout (jobs in progress), outbox (records not yet acknowledged), queue
 *   (pending recompute requests: drained by sending, keyed by random
 *   request ids and wall-clock enqueue times; its entry count is printed
 *   but not digested).
 * Consent tombstones are keyed by a keyed pseudonym under the store's own
 * random salt, so two stores never share those keys: they are digested as
 * the sorted multiset of (scope, state) with the pseudonym left out. The
 * state holds the event id and time that set it, so the digest still tells
 * two different consent histories apart.
 */
#ifndef RECFRESH_DIGEST_H
#define RECFRESH_DIGEST_H

#include <stdio.h>

#include "recfresh/store.h"

typedef struct rf_digest_cf {
        rf_cf_t cf;
        uint64_t count;           /* entries */
        unsigned char sha256[32]; /* of its entries, or all 0 if ignored */
        int digested;             /* 0: counted only */
} rf_digest_cf_t;

typedef struct rf_digest {
        unsigned char sha256[32]; /* of every digested column family */
        rf_digest_cf_t cfs[RF_CF__CNT];
        size_t cf_cnt;
} rf_digest_t;

/** Computes the digest of \p st. @returns 0. */
int rf_digest_store(rf_store_t *st, rf_digest_t *out);

/** Writes the 64 hex digits of \p sha256 and a NUL into \p hex.
 *  @returns \p hex. */
char *rf_digest_hex(const unsigned char sha256[32], char hex[65]);

/** Prints "digest sha256:<hex>" and one line per column family. */
void rf_digest_print(const rf_digest_t *d, FILE *fp);

#endif /* RECFRESH_DIGEST_H */
