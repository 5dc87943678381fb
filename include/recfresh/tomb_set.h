/*
 * recfresh - the entities under a global tombstone, in memory.
 *
 * Every list entry a read serves is tested against its item's ban, its
 * item's stock (global and the list's region) and its campaign. Nearly all
 * of those tests find nothing, yet each would be a RocksDB point lookup.
 * This set holds the ids of the items whose ban is in force, of the items
 * with an out-of-stock state in force (in any region), of the campaigns
 * expired and of the consent revocations in force (by pseudonym and scope;
 * the fan-out tests consent once per list). A ban, an expiry and a consent
 * scope are one state each, so the set answers them exactly and no lookup
 * is made. For the items with a stock state in force it also holds the
 * decision of every region with a state of its own (the newer of that
 * state and the global one), so stock is answered exactly without a lookup
 * too.
 *
 * It is loaded from the tombstones column family at start and changed by
 * rf_tomb_update() as the apply path writes, before the commit: a read on
 * another thread may see a ban (or a lifted ban) an instant before it is
 * durable, never after; if the commit fails the event is taken again, so
 * what it saw becomes true. A rolled-back step reloads the set. Memory is
 * proportional to the entities in force, not to all ever tombstoned. It
 * also knows which users surely have no hides (rf_tombset_may_hide()). A
 * store without a set (the CLI's secondary instance) answers every test
 * from RocksDB.
 */
#ifndef RECFRESH_TOMB_SET_H
#define RECFRESH_TOMB_SET_H

#include <stddef.h>
#include <stdint.h>

#include "recfresh/keys.h"
#include "recfresh/list.h"
#include "recfresh/store.h"

typedef struct rf_tombset rf_tombset_t;

rf_tombset_t *rf_tombset_new(void);
void rf_tombset_destroy(rf_tombset_t *ts);

/**
 * (Re)loads the set from the committed state of \p st. On a store error
 * the set answers "maybe" to everything (every test goes to the store)
 * until a load succeeds. @returns 0 or a store error.
 */
int rf_tombset_load(rf_tombset_t *ts, rf_store_t *st);

/**
 * Called by rf_tomb_update() once the in-force flag of the ban, campaign or
 * consent state at tombstone key \p key (kind byte first, keys.h) flipped
 * to \p active in the open batch.
 */
void rf_tombset_changed(rf_tombset_t *ts, const char *key, size_t klen,
                        int active);

/**
 * Called by rf_tomb_update() after every write of the stock state at key
 * \p key, flipped or not (\p t: the state written): a region's decision
 * depends on which of its state and the global one is newer. The set holds
 * every state of its members and sets their decisions at once. An item's
 * first state in force makes it a member whose decisions are pending (its
 * checks go to the store) until rf_tombset_stock_refresh() (its fan-out
 * job) or rf_tombset_stock_settle() (the writer's first check of it).
 */
void rf_tombset_stock_changed(rf_tombset_t *ts, const char *key, size_t klen,
                              const rf_tomb_t *t);

/**
 * Sets the decisions of \p item if they are pending, from its states read
 * through \p txn (NULL: committed). The fan-out job of a stock change calls
 * it: the event made the item pending, and the job comes after it.
 * @returns 0, or a store error: the set then answers "maybe" to everything
 *          and the caller must not commit (a failed step reloads the set).
 */
int rf_tombset_stock_refresh(rf_tombset_t *ts, rf_store_t *st, rf_txn_t *txn,
                             const char *item);

/**
 * As rf_tombset_stock_refresh(), for a check on the thread that changes the
 * set (a checker with a batch): a failed read leaves the item pending (its
 * checks ask the store) and the set loaded; nothing need roll back.
 * @returns 0 or the store error.
 */
int rf_tombset_stock_settle(rf_tombset_t *ts, rf_store_t *st, rf_txn_t *txn,
                            const char *item);

/**
 * Whether \p item is out of stock for a list of \p region ("" for none):
 * the newer of the global state and the region's own decides, as
 * rf_stock_check_out() does from the store. Exact for every item; ask only
 * for the members flagged RF_TS_STOCK (the others have no state in force).
 * @returns 1 (out), 0 (in) or -1 (the set is not loaded, or the item's
 *          decisions are pending: ask the store).
 * Thread-safe.
 */
int rf_tombset_stock_out(rf_tombset_t *ts, const char *item,
                         const char *region);

/* What the set knows of an id. */
#define RF_TS_BANNED 0x1 /* the item's ban is in force */
#define RF_TS_STOCK                                                            \
        0x2                /* a stock state of the item is in force: ask       \
                            * rf_tombset_stock_out() */
#define RF_TS_EXPIRED 0x4  /* the campaign expired */
#define RF_TS_UNKNOWN 0x8  /* the set could not be loaded: look all up */
#define RF_TS_REVOKED 0x10 /* the consent scope is revoked */

/** @returns RF_TS_BANNED and/or RF_TS_STOCK, 0 if neither a ban nor a
 *  stock state of \p item_id is in force, or RF_TS_UNKNOWN. Thread-safe. */
int rf_tombset_item(rf_tombset_t *ts, const char *item_id);

/** For each of \p n entries: rf_tombset_item() of its item, or'ed with
 *  RF_TS_EXPIRED when it has a campaign that expired, into out[i], under
 *  one lock (a read checks a list's entries together). Thread-safe. */
void rf_tombset_entries(rf_tombset_t *ts, const rf_entry_t *e, size_t n,
                        uint8_t *out);

/** @returns RF_TS_EXPIRED, 0 if \p campaign_id is not expired, or
 *  RF_TS_UNKNOWN. Thread-safe. */
int rf_tombset_campaign(rf_tombset_t *ts, const char *campaign_id);

/** @returns RF_TS_REVOKED, 0 if \p scope (rf_consent_scope_t) is not
 *  revoked for the user of \p pseudonym (rf_store_pseudonym), or
 *  RF_TS_UNKNOWN. Thread-safe. */
int rf_tombset_consent(rf_tombset_t *ts, const unsigned char pseudonym[16],
                       int scope);

/** rf_tombset_consent() of \p n scopes under one lock: RF_TS_REVOKED if
 *  any of them is revoked, 0 if none, or RF_TS_UNKNOWN. Thread-safe. */
int rf_tombset_consent_any(rf_tombset_t *ts, const unsigned char pseudonym[16],
                           const int *scopes, size_t n);

/**
 * Called by the store for every write of a hide key (keys.h: 'H' user ...)
 * in a batch, before the batch commits: the user may have hides from then
 * on. Other keys are ignored. Thread-safe (no lock). The users with hides
 * are scanned at the first rf_tombset_load() of a store, and only then:
 * attach the set to the store (rf_store_set_tombset()) before that load,
 * so that no hide written after the scan goes unseen.
 */
void rf_tombset_hide_written(rf_tombset_t *ts, const char *key, size_t klen);

/** @returns 0 if \p user surely has no hide key (none at the first load,
 *  none written since), 1 if it may (or the set, or NULL, cannot tell).
 *  Thread-safe (no lock). */
int rf_tombset_may_hide(rf_tombset_t *ts, const char *user);

/** @returns the ids held (items, campaigns, consent states), for metrics. */
size_t rf_tombset_count(rf_tombset_t *ts);

#endif /* RECFRESH_TOMB_SET_H */
