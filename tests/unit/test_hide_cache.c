/*
 * The read path's cache of users' hides (hide_cache.h): splitting a
 * summary, hits and misses, the generation and busy rules around a batch
 * that writes a user's hides, clears, the size limits, and shared
 * references that outlive their entry (under ASan, one freed while held
 * fails here).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recfresh/hide_cache.h"
#include "recfresh/keys.h"
#include "recfresh/tombstone.h"

/* \p user's hides of the items in \p items and creators in \p creators
 * (comma-separated, either may be ""). */
static rf_hides_t *hides(const char *user, const char *items,
                         const char *creators)
{
        rf_buf_t sum = { 0 };
        const char *lists[2] = { items, creators };
        char kinds[2] = { RF_IDX_ITEM, RF_IDX_CREATOR };

        for (int i = 0; i < 2; i++) {
                char *copy = strdup(lists[i]), *save = NULL;
                for (char *id = strtok_r(copy, ",", &save); id;
                     id = strtok_r(NULL, ",", &save))
                        rf_hide_summary_add(&sum, kinds[i], id, strlen(id));
                free(copy);
        }
        rf_hides_t *h = rf_hides_new(user, sum.data ? sum.data : "", sum.len);
        rf_buf_free(&sum);
        return h;
}

static void test_split(void **state)
{
        (void)state;
        rf_hides_t *h = hides("u1", "i1,i2", "c1");

        assert_string_equal(h->user, "u1");
        assert_int_equal(h->item_cnt, 2);
        assert_string_equal(h->items[0], "i1");
        assert_string_equal(h->items[1], "i2");
        assert_int_equal(h->creator_cnt, 1);
        assert_string_equal(h->creators[0], "c1");
        rf_hides_release(h);

        h = hides("u2", "", ""); /* none: an empty set, cacheable too */
        assert_non_null(h);
        assert_int_equal(h->item_cnt + h->creator_cnt, 0);
        assert_string_equal(h->user, "u2");
        rf_hides_release(h);
        rf_hides_release(NULL);
}

/* @returns 1 if \p user is cached with \p want_items hidden items, 0 on a
 * miss (*gen gets the miss's generation, if asked). */
static int cached(rf_hide_cache_t *hc, const char *user, size_t want_items,
                  uint64_t *gen)
{
        rf_hides_t *h = NULL;
        uint64_t g = 99;

        if (!rf_hide_cache_get(hc, user, &h, &g)) {
                if (gen)
                        *gen = g;
                return 0;
        }
        assert_string_equal(h->user, user);
        assert_int_equal(h->item_cnt, want_items);
        rf_hides_release(h);
        return 1;
}

/* Reads \p user's hides (\p items) as a reader does: a miss, then the
 * put under the miss's generation. */
static void read_through(rf_hide_cache_t *hc, const char *user,
                         const char *items)
{
        uint64_t gen = 0;

        assert_false(cached(hc, user, 0, &gen));
        rf_hides_t *h = hides(user, items, "");
        rf_hide_cache_put(hc, user, gen, h);
        rf_hides_release(h);
}

static void test_hit_and_miss(void **state)
{
        (void)state;
        rf_hide_cache_t *hc = rf_hide_cache_new(1 << 20);
        rf_hide_cache_stats_t st;

        rf_hide_cache_stats(hc, &st);
        size_t empty = st.bytes; /* the slots */
        assert_true(empty > 0 && empty < st.max_bytes);
        read_through(hc, "u1", "i1,i2");
        read_through(hc, "u2", "");
        assert_true(cached(hc, "u1", 2, NULL));
        assert_true(cached(hc, "u2", 0, NULL));
        assert_false(cached(hc, "u3", 0, NULL));
        rf_hide_cache_stats(hc, &st);
        assert_int_equal(st.entries, 2);
        assert_true(st.bytes > 0 && st.bytes <= st.max_bytes);
        assert_int_equal(st.hits, 2);
        assert_int_equal(st.misses, 3);

        /* a hit is a shared reference: it outlives a clear */
        rf_hides_t *h = NULL;
        uint64_t gen = 0;
        assert_true(rf_hide_cache_get(hc, "u1", &h, &gen));
        rf_hide_cache_clear(hc);
        assert_string_equal(h->items[1], "i2");
        rf_hides_release(h);
        assert_false(cached(hc, "u1", 0, NULL));
        rf_hide_cache_stats(hc, &st);
        assert_int_equal(st.entries, 0);
        assert_int_equal(st.bytes, empty);
        rf_hide_cache_destroy(hc);
        assert_null(rf_hide_cache_new(0)); /* off */
        rf_hide_cache_stats(NULL, &st);
        assert_int_equal(st.max_bytes, 0);
}

/* Many users in few slots: whoever holds a slot, a hit is its own. */
static void test_slot_collisions(void **state)
{
        (void)state;
        rf_hide_cache_t *hc = rf_hide_cache_new(65536); /* 256 slots */
        char user[32], items[32];

        for (int i = 0; i < 2000; i++) {
                snprintf(user, sizeof(user), "user-%d", i);
                snprintf(items, sizeof(items), "%s", i % 2 ? "a" : "a,b");
                read_through(hc, user, items);
        }
        int hits = 0;
        for (int i = 0; i < 2000; i++) {
                snprintf(user, sizeof(user), "user-%d", i);
                hits += cached(hc, user, i % 2 ? 1 : 2, NULL);
        }
        assert_true(hits > 0 && hits <= 256);
        rf_hide_cache_destroy(hc);
}

/* The rules that keep a summary read before a commit from being served
 * after it. */
static void test_batch_begin_and_end(void **state)
{
        (void)state;
        rf_hide_cache_t *hc = rf_hide_cache_new(1 << 20);
        uint64_t gen = 0, gen2 = 0;

        /* A begin drops the user's entry. */
        read_through(hc, "u1", "i1");
        uint32_t slot = rf_hide_cache_begin(hc, "u1", 2);
        /* While busy: misses with nothing to keep (gen 0), even a put of
         * a generation taken just before. */
        assert_false(cached(hc, "u1", 0, &gen));
        assert_true(gen == 0);
        rf_hides_t *h = hides("u1", "i1", "");
        rf_hide_cache_put(hc, "u1", gen, h);
        assert_false(cached(hc, "u1", 0, NULL));
        rf_hide_cache_end(hc, slot);
        /* A generation taken before the begin is stale after the end. */
        assert_false(cached(hc, "u1", 0, &gen));
        slot = rf_hide_cache_begin(hc, "u1", 2);
        rf_hide_cache_end(hc, slot);
        rf_hide_cache_put(hc, "u1", gen, h);
        assert_false(cached(hc, "u1", 0, &gen2));
        rf_hide_cache_put(hc, "u1", gen2, h);
        assert_true(cached(hc, "u1", 1, NULL));
        /* Two batches at once: busy until both end. */
        uint32_t s1 = rf_hide_cache_begin(hc, "u1", 2);
        uint32_t s2 = rf_hide_cache_begin(hc, "u1", 2);
        assert_int_equal(s1, s2);
        rf_hide_cache_end(hc, s1);
        assert_false(cached(hc, "u1", 0, &gen));
        assert_true(gen == 0);
        rf_hide_cache_end(hc, s2);
        assert_false(cached(hc, "u1", 0, &gen));
        assert_true(gen != 0);
        /* The user's length is given: a key's user is not terminated. */
        rf_hide_cache_put(hc, "u1", gen, h);
        assert_true(cached(hc, "u1", 1, NULL));
        rf_hide_cache_end(hc, rf_hide_cache_begin(hc, "u1\0rest", 2));
        assert_false(cached(hc, "u1", 0, NULL));
        /* A clear makes every generation taken before it stale. */
        assert_false(cached(hc, "u1", 0, &gen));
        rf_hide_cache_clear(hc);
        rf_hide_cache_put(hc, "u1", gen, h);
        assert_false(cached(hc, "u1", 0, NULL));
        rf_hides_release(h);
        rf_hide_cache_destroy(hc);
}

static void test_size_limits(void **state)
{
        (void)state;
        rf_hide_cache_t *hc = rf_hide_cache_new(65536);
        rf_hide_cache_stats_t st;
        rf_buf_t items = { 0 };
        char user[32];

        /* more than 1 KiB (a thousandth of the budget, at least 1 KiB): never
         * kept */
        for (int i = 0; i < 100; i++)
                rf_buf_printf(&items, "%sitem-%d", i ? "," : "", i);
        read_through(hc, "big", items.data);
        assert_false(cached(hc, "big", 0, NULL));
        /* the budget holds, whatever comes: 256 slots of entries of about
         * 600 bytes would be more than twice it */
        rf_buf_reset(&items);
        for (int i = 0; i < 30; i++)
                rf_buf_printf(&items, "%sitem-%02d", i ? "," : "", i);
        for (int i = 0; i < 5000; i++) {
                snprintf(user, sizeof(user), "user-%d", i);
                read_through(hc, user, items.data);
        }
        rf_hide_cache_stats(hc, &st);
        assert_true(st.entries > 50);
        assert_true(st.bytes <= st.max_bytes);
        rf_buf_free(&items);
        rf_hide_cache_destroy(hc);
}

/* Readers and a writer at once: every hit is whole and its user's (ASan
 * and the assertions catch a freed or mixed entry). */
static rf_hide_cache_t *shared_hc;
static atomic_int stop;

static void *reader_main(void *arg)
{
        char user[32];
        unsigned seed = (unsigned)(uintptr_t)arg;

        while (!atomic_load(&stop)) {
                snprintf(user, sizeof(user), "u%d", rand_r(&seed) % 500);
                rf_hides_t *h = NULL;
                uint64_t gen = 0;
                if (rf_hide_cache_get(shared_hc, user, &h, &gen)) {
                        if (strcmp(h->user, user) || h->item_cnt != 2 ||
                            strcmp(h->items[0], user))
                                abort();
                        rf_hides_release(h);
                } else {
                        char items[40];
                        snprintf(items, sizeof(items), "%s,x", user);
                        h = hides(user, items, "");
                        rf_hide_cache_put(shared_hc, user, gen, h);
                        rf_hides_release(h);
                }
        }
        return NULL;
}

static void test_threads(void **state)
{
        (void)state;
        pthread_t th[3];
        char user[32];

        shared_hc = rf_hide_cache_new(65536);
        atomic_store(&stop, 0);
        for (uintptr_t i = 0; i < 3; i++)
                assert_int_equal(
                    pthread_create(&th[i], NULL, reader_main, (void *)i), 0);
        /* At least 20,000 writes, and on until the readers have hit (a
         * busy machine may not run them during the first 20,000), within
         * a deadline. */
        rf_hide_cache_stats_t st;
        int64_t deadline = rf_now_ms() + 30000;
        for (int i = 0;; i++) {
                snprintf(user, sizeof(user), "u%d", i % 500);
                uint32_t slot =
                    rf_hide_cache_begin(shared_hc, user, strlen(user));
                rf_hide_cache_end(shared_hc, slot);
                if (i % 5000 == 0)
                        rf_hide_cache_clear(shared_hc);
                if (i < 20000 || i % 1000)
                        continue;
                rf_hide_cache_stats(shared_hc, &st);
                if (st.hits > 0 || rf_now_ms() > deadline)
                        break;
        }
        atomic_store(&stop, 1);
        for (int i = 0; i < 3; i++)
                pthread_join(th[i], NULL);
        rf_hide_cache_stats(shared_hc, &st);
        assert_true(st.hits > 0);
        rf_hide_cache_destroy(shared_hc);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split),
                cmocka_unit_test(test_hit_and_miss),
                cmocka_unit_test(test_slot_collisions),
                cmocka_unit_test(test_batch_begin_and_end),
                cmocka_unit_test(test_size_limits),
                cmocka_unit_test(test_threads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
