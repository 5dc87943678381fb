/*
 * Unit tests of the string set (src/strset.c) and of the in-memory set of
 * entities under a global tombstone (src/tomb_set.c) over a real RocksDB
 * store: events go through rf_apply_record() as the daemon applies them,
 * and the set must answer bans, expiries and stock exactly (stock after
 * every event, regional and global states arriving out of order), hold
 * nothing that is not in force, and agree with a fresh load from the
 * store. Also the per-user
 * hide summaries (src/tomb_hide.c) that read checks load hides from: they
 * must answer as the per-hide states do, also once rebuilt for a store
 * written before them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recfresh/apply.h"
#include "recfresh/log.h"
#include "recfresh/strset.h"
#include "recfresh/tomb_set.h"
#include "recfresh/tombstone.h"
#include "recfresh/topics.h"

/* ---- strset ---------------------------------------------------------------*/

static void test_strset_matches_a_reference(void **state)
{
        enum { N = 5000 };
        static char in[N]; /* reference membership */
        rf_strset_t set = { 0 };
        char s[32];
        unsigned x = 12345;

        (void)state;
        /* Random adds and deletes over N keys; deletions shift runs back,
         * so every member must stay reachable after each one. */
        for (int round = 0; round < 40000; round++) {
                x = x * 1103515245u + 12345u;
                int k = (int)((x >> 8) % N), add = (x >> 4) & 1;
                snprintf(s, sizeof(s), "item-%d", k);
                if (add)
                        assert_int_equal(rf_strset_add(&set, s), !in[k]);
                else
                        assert_int_equal(rf_strset_del(&set, s), in[k]);
                in[k] = (char)add;
        }
        size_t cnt = 0;
        for (int k = 0; k < N; k++) {
                snprintf(s, sizeof(s), "item-%d", k);
                assert_int_equal(rf_strset_has(&set, s), in[k]);
                assert_int_equal(rf_strset_has_hash(&set, s, rf_hash_str(s)),
                                 in[k]);
                cnt += (size_t)in[k];
        }
        assert_int_equal(set.cnt, cnt);
        assert_int_equal(rf_strset_has(&set, ""), 0);
        rf_strset_clear(&set);
        assert_int_equal(rf_strset_has(&set, "item-1"), 0);
        assert_int_equal(rf_strset_del(&set, "item-1"), 0);
}

/* ---- tombset over a store -------------------------------------------------*/

typedef struct env {
        char dir[64];
        rf_config_t conf;
        rf_store_t *st;
        rf_tombset_t *ts;
        rf_apply_ctx_t ctx;
        int64_t offset;
} env_t;

static int setup(void **state)
{
        env_t *e = rf_calloc(1, sizeof(*e));
        char err[256];

        rf_log_set_level(RF_LOG_WARN);
        snprintf(e->dir, sizeof(e->dir), "/tmp/rf-ts-XXXXXX");
        if (!mkdtemp(e->dir))
                return -1;
        rf_config_init(&e->conf);
        e->st = rf_store_open(e->dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        if (!e->st)
                return -1;
        e->ts = rf_tombset_new();
        assert_int_equal(rf_tombset_load(e->ts, e->st), 0);
        rf_store_set_tombset(e->st, e->ts);
        rf_apply_ctx_init(&e->ctx, e->st, &e->conf, NULL, NULL);
        *state = e;
        return 0;
}

static int teardown(void **state)
{
        env_t *e = *state;
        char cmd[128];

        rf_apply_ctx_clear(&e->ctx);
        rf_store_close(e->st);
        rf_tombset_destroy(e->ts);
        rf_config_destroy(&e->conf);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
        if (system(cmd) != 0)
                return -1;
        free(e);
        return 0;
}

/* Applies one JSON event of \p topic and commits it. */
static void apply(env_t *e, int topic, const char *json)
{
        char err[256];
        rf_record_t rec = { .topic = topic,
                            .topic_name = rf_topic(topic)->name,
                            .offset = e->offset++,
                            .value = json,
                            .value_len = strlen(json),
                            .timestamp_ms = -1 };

        e->ctx.now_ms = INT64_C(1795341600000);
        assert_int_equal(rf_apply_record(&e->ctx, &rec), 0);
        if (rf_txn_commit(e->ctx.txn, err, sizeof(err)))
                fail_msg("%s", err);
}

static void ban(env_t *e, const char *id, const char *item, int banned,
                const char *at)
{
        char js[512];
        snprintf(js, sizeof(js),
                 "{\"event_id\":\"%s\",\"type\":\"%s\",\"item_id\":\"%s\","
                 "\"occurred_at\":\"%s\"}",
                 id, banned ? "item_banned" : "item_unbanned", item, at);
        apply(e, RF_TOPIC_ITEM_BANS, js);
}

static void stock(env_t *e, const char *id, const char *item, int in_stock,
                  const char *region, const char *at)
{
        char js[512];
        snprintf(js, sizeof(js),
                 "{\"event_id\":\"%s\",\"type\":\"stock_changed\","
                 "\"item_id\":\"%s\",\"in_stock\":%s%s%s%s,"
                 "\"occurred_at\":\"%s\"}",
                 id, item, in_stock ? "true" : "false",
                 *region ? ",\"region\":\"" : "", region, *region ? "\"" : "",
                 at);
        apply(e, RF_TOPIC_STOCK, js);
}

/* The set after a fresh load from the store must answer as \p ts does. */
static void assert_load_agrees(env_t *e, const char *const *items, size_t n)
{
        rf_tombset_t *fresh = rf_tombset_new();

        assert_int_equal(rf_tombset_load(fresh, e->st), 0);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(rf_tombset_item(fresh, items[i]),
                                 rf_tombset_item(e->ts, items[i]));
        assert_int_equal(rf_tombset_count(fresh), rf_tombset_count(e->ts));
        rf_tombset_destroy(fresh);
}

/* The checker's answer for \p item in a list of \p region. */
static rf_filter_t check(env_t *e, const char *item, const char *region)
{
        rf_checker_t ck;
        rf_entry_t en = { .item_id = item,
                          .creator_id = "",
                          .campaign_id = "" };
        rf_filter_t f;

        assert_int_equal(rf_checker_init(&ck, e->st, NULL, "u1", region), 0);
        f = rf_checker_check(&ck, &en);
        rf_checker_clear(&ck);
        return f;
}

static void test_bans_enter_and_leave(void **state)
{
        env_t *e = *state;
        static const char *const items[] = { "i1", "i2", "nobody" };

        ban(e, "b1", "i1", 1, "2026-11-22T01:00:00Z");
        ban(e, "b2", "i2", 1, "2026-11-22T01:00:00Z");
        assert_int_equal(rf_tombset_item(e->ts, "i1"), RF_TS_BANNED);
        assert_int_equal(rf_tombset_item(e->ts, "nobody"), 0);
        assert_int_equal(check(e, "i1", ""), RF_FILTER_BANNED);
        assert_int_equal(check(e, "nobody", ""), RF_FILTER_NONE);

        ban(e, "b3", "i1", 0, "2026-11-22T02:00:00Z");
        assert_int_equal(rf_tombset_item(e->ts, "i1"), 0);
        assert_int_equal(check(e, "i1", ""), RF_FILTER_NONE);
        /* an older ban is stale: the item stays out of the set */
        ban(e, "b0", "i1", 1, "2026-11-22T00:30:00Z");
        assert_int_equal(rf_tombset_item(e->ts, "i1"), 0);
        assert_load_agrees(e, items, 3);
}

/* A stock change, then what its fan-out job does first (this context has
 * no fan-out): the item's decisions are set if pending. */
static void stock_job(env_t *e, const char *id, const char *item, int in_stock,
                      const char *region, const char *at)
{
        stock(e, id, item, in_stock, region, at);
        assert_int_equal(rf_tombset_stock_refresh(e->ts, e->st, NULL, item), 0);
}

static void test_item_stays_while_any_state_is_in_force(void **state)
{
        env_t *e = *state;
        static const char *const items[] = { "sku" };

        ban(e, "b1", "sku", 1, "2026-11-22T01:00:00Z");
        stock_job(e, "s1", "sku", 0, "eu", "2026-11-22T01:00:00Z");
        assert_int_equal(rf_tombset_item(e->ts, "sku"),
                         RF_TS_BANNED | RF_TS_STOCK);
        assert_int_equal(check(e, "sku", "us"), RF_FILTER_BANNED);
        /* unbanned, but out of stock in eu: still a member */
        ban(e, "b2", "sku", 0, "2026-11-22T02:00:00Z");
        assert_int_equal(rf_tombset_item(e->ts, "sku"), RF_TS_STOCK);
        assert_int_equal(check(e, "sku", "eu"), RF_FILTER_OUT_OF_STOCK);
        assert_int_equal(check(e, "sku", "us"), RF_FILTER_NONE);
        assert_load_agrees(e, items, 1);

        /* out everywhere, then back in eu (newer): served in eu only */
        stock_job(e, "s2", "sku", 0, "", "2026-11-22T03:00:00Z");
        stock_job(e, "s3", "sku", 1, "eu", "2026-11-22T04:00:00Z");
        assert_int_equal(rf_tombset_item(e->ts, "sku"), RF_TS_STOCK);
        assert_int_equal(check(e, "sku", "eu"), RF_FILTER_NONE);
        assert_int_equal(check(e, "sku", "us"), RF_FILTER_OUT_OF_STOCK);

        /* back everywhere: no state in force, the item leaves the set */
        stock_job(e, "s4", "sku", 1, "", "2026-11-22T05:00:00Z");
        assert_int_equal(rf_tombset_item(e->ts, "sku"), 0);
        assert_int_equal(check(e, "sku", "us"), RF_FILTER_NONE);
        assert_load_agrees(e, items, 1);
}

/* Ids may hold any byte but NUL: an item and a region whose bytes join
 * the same way must not share a decision. */
static void test_stock_ids_do_not_collide(void **state)
{
        env_t *e = *state;

        /* "a" out in region "b<US>c"; "a<US>b" out in "zz" only (US: 0x1f) */
        stock_job(e, "k1", "a", 0, "b\\u001fc", "2026-11-22T01:00:00Z");
        stock(e, "k2", "a\\u001fb", 0, "zz", "2026-11-22T01:00:00Z");
        assert_int_equal(rf_tombset_stock_refresh(e->ts, e->st, NULL,
                                                  "a\x1f"
                                                  "b"),
                         0);
        assert_int_equal(check(e, "a",
                               "b\x1f"
                               "c"),
                         RF_FILTER_OUT_OF_STOCK);
        assert_int_equal(check(e,
                               "a\x1f"
                               "b",
                               "zz"),
                         RF_FILTER_OUT_OF_STOCK);
        assert_int_equal(check(e,
                               "a\x1f"
                               "b",
                               "c"),
                         RF_FILTER_NONE);
        assert_int_equal(check(e, "a", "b"), RF_FILTER_NONE);
}

/* A stock change leaves the item's decisions pending until its fan-out
 * job. A read's check (no batch) asks the store and leaves them so; the
 * writer's first check (through its batch) settles them in the set. */
static void test_writer_check_settles_pending_stock(void **state)
{
        env_t *e = *state;
        rf_checker_t ck;
        rf_entry_t en = { .item_id = "sku",
                          .creator_id = "",
                          .campaign_id = "" };

        stock(e, "s1", "sku", 0, "", "2026-11-22T01:00:00Z");
        stock(e, "s2", "sku", 1, "eu", "2026-11-22T02:00:00Z");
        assert_int_equal(rf_tombset_item(e->ts, "sku"), RF_TS_STOCK);
        assert_int_equal(rf_tombset_stock_out(e->ts, "sku", "us"), -1);
        assert_int_equal(check(e, "sku", "us"), RF_FILTER_OUT_OF_STOCK);
        assert_int_equal(check(e, "sku", "eu"), RF_FILTER_NONE);
        assert_int_equal(rf_tombset_stock_out(e->ts, "sku", "us"), -1);

        assert_int_equal(rf_checker_init(&ck, e->st, e->ctx.txn, "u1", "eu"),
                         0);
        assert_int_equal(rf_checker_check(&ck, &en), RF_FILTER_NONE);
        assert_int_equal(ck.err, 0);
        rf_checker_clear(&ck);
        /* settled from both states: out globally, back in eu (newer) */
        assert_int_equal(rf_tombset_stock_out(e->ts, "sku", "us"), 1);
        assert_int_equal(rf_tombset_stock_out(e->ts, "sku", "eu"), 0);
        assert_int_equal(check(e, "sku", "us"), RF_FILTER_OUT_OF_STOCK);
        assert_int_equal(check(e, "sku", "eu"), RF_FILTER_NONE);
}

/* The filter in front of the item sets may say "maybe" for an item in
 * neither, never "no" for a member: through growth (20,000 items, past the
 * 4,096 members its first table holds) and rebuilds after deletions, every
 * member of either set answers as a reference says. */
static void test_item_filter_has_no_false_negatives(void **state)
{
        enum { N = 20000 };
        static char banned[N], stocked[N];
        env_t *e = *state;
        rf_tomb_t in_force = { .active = 1 };
        char key[64];
        unsigned x = 777;

        for (int round = 0; round < 4 * N; round++) {
                x = x * 1103515245u + 12345u;
                int k = (int)((x >> 8) % N), op = (int)((x >> 4) % 4);
                /* more adds than deletes early on, then about even */
                if (round < N && op == 1)
                        op = 0;
                int klen =
                    snprintf(key, sizeof(key), "%ci%07d", RF_TOMB_BAN, k);
                if (op == 0 || op == 1) {
                        rf_tombset_changed(e->ts, key, (size_t)klen, op == 0);
                        banned[k] = op == 0;
                } else if (op == 2 && !stocked[k]) {
                        /* a first stock state in force: a pending member */
                        key[0] = RF_TOMB_STOCK;
                        rf_tombset_stock_changed(e->ts, key, (size_t)klen + 1,
                                                 &in_force);
                        stocked[k] = 1;
                }
                if (round % 997 == 0 || round == 4 * N - 1) {
                        for (int j = 0; j < N; j++) {
                                char item[16];
                                snprintf(item, sizeof(item), "i%07d", j);
                                int want = (banned[j] ? RF_TS_BANNED : 0) |
                                           (stocked[j] ? RF_TS_STOCK : 0);
                                if (rf_tombset_item(e->ts, item) != want)
                                        fail_msg("round %d: %s: %d, want %d",
                                                 round, item,
                                                 rf_tombset_item(e->ts, item),
                                                 want);
                        }
                }
        }
}

static void test_campaigns(void **state)
{
        env_t *e = *state;
        rf_checker_t ck;
        rf_entry_t en = { .item_id = "x",
                          .creator_id = "",
                          .campaign_id = "cmp" };

        apply(e, RF_TOPIC_CAMPAIGNS,
              "{\"event_id\":\"c1\",\"type\":\"campaign_expired\","
              "\"campaign_id\":\"cmp\",\"occurred_at\":\"2026-11-22T01:00:"
              "00Z\"}");
        assert_int_equal(rf_tombset_campaign(e->ts, "cmp"), RF_TS_EXPIRED);
        assert_int_equal(rf_tombset_campaign(e->ts, "other"), 0);
        assert_int_equal(rf_checker_init(&ck, e->st, NULL, "u1", ""), 0);
        assert_int_equal(rf_checker_check(&ck, &en),
                         RF_FILTER_CAMPAIGN_EXPIRED);
        rf_checker_clear(&ck);
}

/* A set attached to a store answers exactly as the store alone does. */
static void test_same_answers_without_the_set(void **state)
{
        env_t *e = *state;
        const char *regions[] = { "", "eu", "us" };
        char item[16], id[32], at[32];
        unsigned x = 7;

        for (int i = 0; i < 600; i++) {
                x = x * 1103515245u + 12345u;
                snprintf(item, sizeof(item), "i%u", (x >> 8) % 20);
                snprintf(id, sizeof(id), "e%d", i);
                /* Mostly in order; one in four from the past, so a region's
                 * state is now newer, now older than the global one. */
                int t =
                    (x >> 12) % 4 ? i : (int)((x >> 14) % (unsigned)(i + 1));
                snprintf(at, sizeof(at), "2026-11-22T%02d:%02d:00Z", t / 60,
                         t % 60);
                if ((x >> 4) % 3 == 0)
                        ban(e, id, item, (x >> 6) & 1, at);
                else
                        stock(e, id, item, (x >> 6) & 1, regions[(x >> 10) % 3],
                              at);
                /* After every event, for the item it touched: pending
                 * (as the apply leaves a newly stocked item), then with
                 * its decisions set (as its fan-out job does). */
                for (int pass = 0; pass < 2; pass++) {
                        if (pass)
                                assert_int_equal(rf_tombset_stock_refresh(
                                                     e->ts, e->st, NULL, item),
                                                 0);
                        for (int r = 0; r < 3; r++) {
                                rf_filter_t with = check(e, item, regions[r]);
                                rf_store_set_tombset(e->st, NULL);
                                rf_filter_t without =
                                    check(e, item, regions[r]);
                                rf_store_set_tombset(e->st, e->ts);
                                if (with != without)
                                        fail_msg("event %d (pass %d): %s in "
                                                 "\"%s\": %d with the set, %d "
                                                 "from the store",
                                                 i, pass, item, regions[r],
                                                 with, without);
                        }
                }
        }
        for (int k = 0; k < 20; k++) {
                snprintf(item, sizeof(item), "i%d", k);
                for (int r = 0; r < 3; r++) {
                        rf_filter_t with = check(e, item, regions[r]);
                        rf_store_set_tombset(e->st, NULL);
                        rf_filter_t without = check(e, item, regions[r]);
                        /* and a set loaded from the store afresh */
                        rf_tombset_t *fresh = rf_tombset_new();
                        assert_int_equal(rf_tombset_load(fresh, e->st), 0);
                        rf_store_set_tombset(e->st, fresh);
                        rf_filter_t loaded = check(e, item, regions[r]);
                        rf_store_set_tombset(e->st, e->ts);
                        rf_tombset_destroy(fresh);
                        if (with != without || loaded != without)
                                fail_msg("%s in \"%s\": %d with the set, %d "
                                         "loaded, %d from the store",
                                         item, regions[r], with, loaded,
                                         without);
                        if (without != RF_FILTER_NONE)
                                assert_int_not_equal(
                                    rf_tombset_item(e->ts, item), 0);
                }
        }
}

/* ---- consent
 * ----------------------------------------------------------------*/

static void consent(env_t *e, const char *id, const char *user,
                    const char *scope, int revoked, const char *at)
{
        char js[512];
        snprintf(js, sizeof(js),
                 "{\"event_id\":\"%s\",\"type\":\"consent_%s\",\"user_id\":"
                 "\"%s\",\"scope\":\"%s\",\"occurred_at\":\"%s\"}",
                 id, revoked ? "revoked" : "granted", user, scope, at);
        apply(e, RF_TOPIC_CONSENT, js);
}

/* Surfaces "email" and "push" served under those consent scopes. */
static void set_surface_scopes(env_t *e)
{
        char err[256];
        assert_int_equal(rf_config_set(&e->conf, "surface.email.consent_scope",
                                       "email", err, sizeof(err)),
                         RF_OK);
        assert_int_equal(rf_config_set(&e->conf, "surface.push.consent_scope",
                                       "push", err, sizeof(err)),
                         RF_OK);
}

/* Consent answers from the set equal the store's, over random revocations
 * and grants of every scope (some out of order), and a fresh load agrees;
 * the scope's own answer is checked against a reference. */
static void test_consent(void **state)
{
        static const char *scopes[] = { "all", "personalization", "email",
                                        "push" };
        static const char *surfaces[] = { "home", "email", "push" };
        env_t *e = *state;
        char user[16], id[32], at[32];
        int ref[6][4] = { { 0 } }, ref_at[6][4] = { { 0 } };
        unsigned x = 11;

        set_surface_scopes(e);
        for (int i = 0; i < 400; i++) {
                x = x * 1103515245u + 12345u;
                int u = (int)((x >> 8) % 6), sc = (int)((x >> 12) % 4);
                int rev = (int)((x >> 16) & 1);
                int t = (int)((x >> 17) % 1000); /* out of order */
                snprintf(user, sizeof(user), "u%d", u);
                snprintf(id, sizeof(id), "c%d", i);
                snprintf(at, sizeof(at), "2026-11-22T%02d:%02d:%02dZ",
                         t / 60 % 24, t % 60, i % 60);
                int stamp = (t / 60 % 24) * 3600 + (t % 60) * 60 + i % 60;
                /* scope "all"/"personalization" revoked purges the lists:
                 * the store state is what this test is about */
                consent(e, id, user, scopes[sc], rev, at);
                if (stamp > ref_at[u][sc]) {
                        ref_at[u][sc] = stamp;
                        ref[u][sc] = rev;
                }
        }
        rf_tombset_t *fresh = rf_tombset_new();
        assert_int_equal(rf_tombset_load(fresh, e->st), 0);
        assert_int_equal(rf_tombset_count(fresh), rf_tombset_count(e->ts));
        for (int u = 0; u < 6; u++) {
                unsigned char pn[16];
                snprintf(user, sizeof(user), "u%d", u);
                rf_store_pseudonym(e->st, user, pn);
                for (int sc = 0; sc < 4; sc++) {
                        int want = ref[u][sc] ? RF_TS_REVOKED : 0;
                        int scope = rf_consent_scope_parse(scopes[sc]);
                        assert_int_equal(rf_tombset_consent(e->ts, pn, scope),
                                         want);
                        assert_int_equal(rf_tombset_consent(fresh, pn, scope),
                                         want);
                }
                int purged = ref[u][0] || ref[u][1];
                assert_int_equal(rf_consent_purged(e->st, NULL, user), purged);
                for (int s = 0; s < 3; s++) {
                        int with = rf_consent_blocks(e->st, NULL, &e->conf,
                                                     user, surfaces[s]);
                        rf_store_set_tombset(e->st, NULL);
                        int without = rf_consent_blocks(e->st, NULL, &e->conf,
                                                        user, surfaces[s]);
                        assert_int_equal(rf_consent_purged(e->st, NULL, user),
                                         purged);
                        rf_store_set_tombset(e->st, e->ts);
                        assert_int_equal(with, without);
                        assert_int_equal(with, purged ||
                                                   (s == 1 && ref[u][2]) ||
                                                   (s == 2 && ref[u][3]));
                }
        }
        rf_tombset_destroy(fresh);
}

/* ---- hide summaries -------------------------------------------------------*/

static void hide(env_t *e, const char *id, const char *user, int creator,
                 const char *what, int hidden, const char *at)
{
        char js[512];
        snprintf(js, sizeof(js),
                 "{\"event_id\":\"%s\",\"type\":\"%s_%s\",\"user_id\":"
                 "\"%s\",\"%s_id\":\"%s\",\"occurred_at\":\"%s\"}",
                 id, creator ? "creator" : "item",
                 hidden ? "hidden" : "unhidden", user,
                 creator ? "creator" : "item", what, at);
        apply(e, RF_TOPIC_USER_HIDES, js);
}

/* The filter of an entry (item i<k>, creator c<k % 5>) for \p user. */
static rf_filter_t hide_check(env_t *e, const char *user, int k)
{
        char item[16], creator[16];
        rf_entry_t en = { .item_id = item,
                          .creator_id = creator,
                          .campaign_id = "" };
        rf_checker_t ck;
        rf_filter_t f;

        snprintf(item, sizeof(item), "i%d", k);
        snprintf(creator, sizeof(creator), "c%d", k % 5);
        assert_int_equal(rf_checker_init(&ck, e->st, NULL, user, ""), 0);
        f = rf_checker_check(&ck, &en);
        rf_checker_clear(&ck);
        return f;
}

/* Reference: what the newest event per (user, kind, id) says. */
typedef struct hide_ref {
        char item[3][12], creator[3][5];
} hide_ref_t;

static void assert_hides(env_t *e, const hide_ref_t *ref)
{
        static const char *users[] = { "u0", "u1", "u2" };

        for (int u = 0; u < 3; u++)
                for (int k = 0; k < 12; k++) {
                        rf_filter_t want =
                            ref->item[u][k]          ? RF_FILTER_HIDDEN_ITEM
                            : ref->creator[u][k % 5] ? RF_FILTER_HIDDEN_CREATOR
                                                     : RF_FILTER_NONE;
                        assert_int_equal(hide_check(e, users[u], k), want);
                }
}

static void test_hide_summaries(void **state)
{
        env_t *e = *state;
        hide_ref_t ref;
        char id[32], what[16], at[32], err[256];
        unsigned x = 99;

        memset(&ref, 0, sizeof(ref));
        assert_int_equal(rf_store_hide_summary(e->st), 1); /* a new store */
        for (int i = 0; i < 400; i++) {
                x = x * 1103515245u + 12345u;
                int u = (int)((x >> 8) % 3), creator = (x >> 12) % 3 == 0;
                int k = (int)((x >> 16) % (creator ? 5 : 12));
                int hidden = (x >> 5) & 1;
                snprintf(id, sizeof(id), "h%d", i);
                snprintf(what, sizeof(what), "%c%d", creator ? 'c' : 'i', k);
                snprintf(at, sizeof(at), "2026-11-22T%02d:%02d:00Z", i / 60,
                         i % 60);
                char uid[4] = { 'u', (char)('0' + u), 0 };
                hide(e, id, uid, creator, what, hidden, at);
                if (creator)
                        ref.creator[u][k] = (char)hidden;
                else
                        ref.item[u][k] = (char)hidden;
                if (i % 40 == 0)
                        assert_hides(e, &ref);
        }
        assert_hides(e, &ref);

        /* A store from before summaries: no summary keys, no meta key.
         * Reads fall back to scanning the hide states; the daemon's start
         * builds the summaries. */
        rf_txn_t *txn = rf_txn_new(e->st);
        for (int u = 0; u < 3; u++) {
                rf_buf_t k = { 0 };
                char uid[4] = { 'u', (char)('0' + u), 0 };
                rf_key_hide_prefix(&k, uid);
                rf_txn_delete(txn, RF_CF_TOMBSTONES, k.data, k.len);
                rf_buf_free(&k);
        }
        rf_txn_delete(txn, RF_CF_META, RF_META_HIDE_SUMMARY,
                      strlen(RF_META_HIDE_SUMMARY));
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_destroy(txn);
        rf_apply_ctx_clear(&e->ctx);
        rf_store_close(e->st);
        e->st = rf_store_open(e->dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(e->st);
        rf_store_set_tombset(e->st, e->ts);
        rf_apply_ctx_init(&e->ctx, e->st, &e->conf, NULL, NULL);
        assert_int_equal(rf_store_hide_summary(e->st), 0);
        assert_hides(e, &ref);
        assert_int_equal(rf_hide_summaries_build(e->st, err, sizeof(err)), 0);
        assert_int_equal(rf_store_hide_summary(e->st), 1);
        assert_hides(e, &ref);
        /* and they are kept from there on */
        hide(e, "late-1", "u0", 0, "i3", 1, "2026-11-23T00:00:00Z");
        hide(e, "late-2", "u0", 1, "c1", 0, "2026-11-23T00:00:00Z");
        ref.item[0][3] = 1;
        ref.creator[0][1] = 0;
        assert_hides(e, &ref);
}

/* The users who may have hides: every user with a hide key at the load,
 * and every one a batch writes a hide key of, before its commit; most
 * others surely have none. */
static void test_users_who_may_hide(void **state)
{
        env_t *e = *state;
        rf_tombset_t *ts;
        char user[32];
        int none = 0;

        hide(e, "mh-1", "hider", 0, "i1", 1, "2026-11-22T01:00:00Z");
        ts = rf_tombset_new();
        assert_int_equal(rf_tombset_may_hide(ts, "x"), 1); /* not loaded */
        assert_int_equal(rf_tombset_may_hide(NULL, "x"), 1);
        assert_int_equal(rf_tombset_load(ts, e->st), 0);
        assert_int_equal(rf_tombset_may_hide(ts, "hider"), 1);
        for (int i = 0; i < 1000; i++) {
                snprintf(user, sizeof(user), "u-%d", i);
                none += !rf_tombset_may_hide(ts, user);
        }
        assert_true(none >= 990); /* 2^25 bits, one user set */

        /* loaded again from another store: that store's users with
         * hides, scanned, not the first store's bits alone */
        char dir2[] = "/tmp/rf-ts2-XXXXXX", err[256], cmd[64];
        assert_non_null(mkdtemp(dir2));
        rf_store_t *st2 =
            rf_store_open(dir2, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st2);
        rf_buf_t hk = { 0 };
        rf_key_hide(&hk, "elsewhere", RF_IDX_ITEM, "i1");
        rf_txn_t *t2 = rf_txn_new(st2);
        rf_txn_put(t2, RF_CF_TOMBSTONES, hk.data, hk.len, "x", 1);
        assert_int_equal(rf_txn_commit(t2, err, sizeof(err)), 0);
        rf_txn_destroy(t2);
        rf_buf_free(&hk);
        assert_int_equal(rf_tombset_may_hide(ts, "elsewhere"), 0);
        assert_int_equal(rf_tombset_load(ts, st2), 0);
        assert_int_equal(rf_tombset_may_hide(ts, "elsewhere"), 1);
        rf_store_close(st2);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir2);
        assert_int_equal(system(cmd), 0);
        rf_tombset_destroy(ts);

        /* set by the store's write, before the commit; other kinds of
         * tombstone keys do not count */
        assert_int_equal(rf_tombset_may_hide(e->ts, "later"), 0);
        assert_int_equal(rf_tombset_may_hide(e->ts, "banner"), 0);
        rf_txn_t *txn = rf_txn_new(e->st);
        rf_buf_t k = { 0 };
        rf_key_hide(&k, "later", RF_IDX_ITEM, "i9");
        rf_txn_put(txn, RF_CF_TOMBSTONES, k.data, k.len, "x", 1);
        assert_int_equal(rf_tombset_may_hide(e->ts, "later"), 1);
        rf_buf_reset(&k);
        static const char ban_key[] = "Bbanner"; /* RF_TOMB_BAN, id, \0 */
        rf_buf_append(&k, ban_key, sizeof(ban_key));
        rf_txn_put(txn, RF_CF_TOMBSTONES, k.data, k.len, "x", 1);
        assert_int_equal(rf_tombset_may_hide(e->ts, "banner"), 0);
        rf_txn_clear(txn); /* dropped: the bit stays, a lookup too many */
        rf_txn_destroy(txn);
        rf_buf_free(&k);
        assert_int_equal(rf_tombset_may_hide(e->ts, "later"), 1);

        /* a read of a user with no hide key finds nothing to filter; one
         * hidden through the apply path after the load is filtered */
        assert_int_equal(hide_check(e, "fresh", 1), RF_FILTER_NONE);
        hide(e, "mh-2", "fresh", 0, "i1", 1, "2026-11-22T02:00:00Z");
        assert_int_equal(hide_check(e, "fresh", 1), RF_FILTER_HIDDEN_ITEM);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_strset_matches_a_reference),
                cmocka_unit_test_setup_teardown(test_bans_enter_and_leave,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_item_stays_while_any_state_is_in_force, setup,
                    teardown),
                cmocka_unit_test_setup_teardown(test_stock_ids_do_not_collide,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_writer_check_settles_pending_stock, setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_item_filter_has_no_false_negatives, setup, teardown),
                cmocka_unit_test_setup_teardown(test_campaigns, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                    test_same_answers_without_the_set, setup, teardown),
                cmocka_unit_test_setup_teardown(test_consent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_users_who_may_hide, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_hide_summaries, setup,
                                                teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
