/*
 * recfresh bench - the synthetic workload: a seeded, deterministic model of
 * subjects, their lists, items, creators and campaigns, and the event mix
 * that runs against it. Every rfbench command rebuilds the same model from
 * the same (seed, subjects, items), so the generator, the prober and the
 * reader agree on which list holds which item without sharing files.
 *
 *   subjects  "u%08u", each with 1-3 surfaces (home always; email, search)
 *             and a region; one list of WL_LIST_LEN distinct items per
 *             (subject, surface)
 *   items     "i%07u", drawn with Zipf(s = 1) popularity: item 0 sits in
 *             nearly every list, the tail in 0-10 lists
 *   creators  "c%05u", one per item
 *   campaigns "k%05u", on some tail items only (so an expiry fans out to
 *             1-10 lists, like bans and stock flaps)
 *
 * Tail items (in 1-10 lists) are split by id: probe items (id % 4 == 3) are
 * only ever banned by latency probes, campaign items (id % 4 == 1) carry a
 * campaign, the rest take the background mix's bans and stock flaps.
 */
#ifndef RFBENCH_WORKLOAD_H
#define RFBENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "recfresh/common.h"

#define WL_LIST_LEN     100
#define WL_SURFACES_MAX 3
#define WL_REGIONS      3
#define WL_RUN_ID       "bench-run-1"
/* Activity record n happened at this time + n ms (2026-01-01). */
#define WL_ACTIVITY_EPOCH_MS 1767225600000LL

/** A small, fast, seedable generator (splitmix64). */
typedef struct wl_rng {
        uint64_t s;
} wl_rng_t;

uint64_t wl_rng_next(wl_rng_t *r);
/** @returns a uniform integer in [0, n). */
uint32_t wl_rng_below(wl_rng_t *r, uint32_t n);

typedef struct wl {
        uint64_t seed;
        uint32_t subjects, items, campaigns;
        uint32_t list_cnt;
        uint32_t *list_subject; /* per list: subject index */
        uint8_t *list_surface;  /* per list: surface index */
        uint32_t *entries;      /* list_cnt * WL_LIST_LEN item indexes */
        uint32_t *item_lists;   /* per item: lists holding it */
        uint32_t *item_first;   /* per item: one list holding it, or ~0 */
        uint32_t *tail;         /* background tail items (1-10 lists) */
        uint32_t tail_cnt;
        uint32_t *probe; /* probe items (1-10 lists) */
        uint32_t probe_cnt;
        uint32_t *campaign_items; /* items carrying a campaign */
        uint32_t campaign_item_cnt;
        int32_t *item_campaign; /* per item: campaign or -1 */
        uint64_t index_entries; /* item + creator + campaign index keys */
} wl_t;

/** Builds the model. Free with wl_destroy(). */
wl_t *wl_new(uint64_t seed, uint32_t subjects, uint32_t items);
void wl_destroy(wl_t *w);

/** @returns the surface name of index \p i ("home", "email", "search"). */
const char *wl_surface(int i);
/** @returns the region of subject \p s. */
const char *wl_region(uint32_t s);

/** Appends the recs.lists.v1 JSON of list \p l (no newline). \p run_id may
 *  be NULL for an incremental list. */
void wl_list_json(const wl_t *w, uint32_t l, const char *run_id,
                  int64_t generated_ms, rf_buf_t *out);

/** Kinds of events in the background mix. */
typedef enum wl_kind {
        WL_BAN = 0,
        WL_STOCK,
        WL_HIDE,
        WL_CONSENT,
        WL_CAMPAIGN,
        WL_ACTIVITY,
        WL__KIND_CNT
} wl_kind_t;

/** One generated record. */
typedef struct wl_event {
        wl_kind_t kind;
        const char *topic;
        char key[32];
        rf_buf_t value; /* JSON; reused between calls */
} wl_event_t;

/**
 * Generates background event number \p n (deterministic in seed and n) at
 * time \p now_ms into \p ev. Mix: 20% bans/unbans, 30% stock flaps (40%
 * regional), 20% hides, 5% consent (email/push scopes), 5% campaign
 * expiry, 20% activity.
 */
void wl_event(const wl_t *w, uint64_t n, int64_t now_ms, wl_event_t *ev);

/** Appends an item_banned event of item \p item with id \p event_id. */
void wl_ban_json(uint32_t item, const char *event_id, int64_t now_ms,
                 rf_buf_t *out);

#endif /* RFBENCH_WORKLOAD_H */
