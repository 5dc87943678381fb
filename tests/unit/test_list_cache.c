/*
 * The read path's cache of decoded run versions (list_cache.h): hits and
 * misses, the epoch rule, the byte budget and shared references that
 * outlive their entry. Under ASan a list freed while still held fails here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recfresh/list.h"
#include "recfresh/list_cache.h"

/* A decoded list of \p n items whose list_id is \p id. */
static rf_list_t *make_list(const char *id, int n)
{
        rf_buf_t js = { 0 }, enc = { 0 };
        rf_rejection_t rej;
        rf_list_t *l = NULL, *d = NULL;

        rf_buf_printf(&js,
                      "{\"subject_id\":\"u1\",\"surface\":\"home\","
                      "\"list_id\":\"%s\",\"run_id\":\"r1\","
                      "\"generated_at\":\"2026-11-22T09:14:00Z\","
                      "\"expires_at\":\"2026-11-23T09:14:00Z\","
                      "\"model_version\":\"m\",\"items\":[",
                      id);
        for (int i = 0; i < n; i++)
                rf_buf_printf(&js, "%s{\"item_id\":\"i%d\",\"score\":%d}",
                              i ? "," : "", i, n - i);
        rf_buf_puts(&js, "]}");
        assert_int_equal(
            rf_list_from_json(NULL, 0, js.data, js.len, NULL, &l, &rej), 0);
        rf_list_encode(l, &enc);
        assert_int_equal(rf_list_decode(enc.data, enc.len, &d), 0);
        rf_list_destroy(l);
        rf_buf_free(&js);
        rf_buf_free(&enc);
        return d;
}

/* Caches a new list of \p n items named \p id under \p key. */
static void put(rf_list_cache_t *lc, const char *key, uint64_t epoch,
                const char *id, int n, size_t total)
{
        rf_list_t *l = make_list(id, n);

        rf_list_cache_put(lc, key, strlen(key), epoch, l, total);
        rf_list_destroy(l);
}

static void test_hit_miss_and_shared_reference(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_cache_stats_t st;
        rf_list_t *l = make_list("a", 5), *got = NULL;
        size_t total = 0;
        (void)state;

        assert_int_equal(rf_list_cache_get(lc, "k1", 2, 7, 0, &got, &total), 0);
        rf_list_cache_put(lc, "k1", 2, 7, l, 100);
        rf_list_destroy(l); /* the cache holds its own reference */
        assert_int_equal(rf_list_cache_get(lc, "k1", 2, 7, 0, &got, &total), 1);
        assert_string_equal(got->list_id, "a");
        assert_int_equal(total, 100);
        assert_int_equal(got->item_cnt, 5);
        assert_string_equal(got->items[4].item_id, "i4");
        /* another key, a prefix of it: a miss */
        rf_list_t *other = NULL;
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 7, 0, &other, &total),
                         0);
        assert_null(other);
        /* the reader's reference outlives the cache */
        rf_list_cache_stats(lc, &st);
        assert_int_equal(st.hits, 1);
        assert_int_equal(st.misses, 2);
        assert_int_equal(st.entries, 1);
        assert_true(st.bytes >= rf_list_bytes(got));
        rf_list_cache_destroy(lc);
        assert_string_equal(got->items[0].item_id, "i0");
        rf_list_destroy(got);
}

static void test_other_epoch_misses_and_drops(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_cache_stats_t st;
        rf_list_t *l = make_list("old", 3), *got = NULL;
        size_t total;
        (void)state;

        rf_list_cache_put(lc, "k", 1, 1, l, 3);
        rf_list_destroy(l);
        /* the column family was written since: the entry is gone */
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 2, 0, &got, &total), 0);
        rf_list_cache_stats(lc, &st);
        assert_int_equal(st.entries, 0);
        assert_int_equal(st.bytes, 0);
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 1, 0, &got, &total), 0);
        /* a put replaces the key's entry */
        put(lc, "k", 2, "v1", 3, 3);
        put(lc, "k", 2, "v2", 3, 3);
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 2, 0, &got, &total), 1);
        assert_string_equal(got->list_id, "v2");
        rf_list_destroy(got);
        rf_list_cache_stats(lc, &st);
        assert_int_equal(st.entries, 1);
        rf_list_cache_destroy(lc);
}

static void test_epochs_only_move_on(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_t *got = NULL;
        size_t total;
        (void)state;

        /* A reader that read the epoch before a later one cached its list
         * neither drops nor replaces the newer entry. */
        put(lc, "k", 3, "new", 3, 3);
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 2, 0, &got, &total), 0);
        put(lc, "k", 2, "old", 3, 3);
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 3, 0, &got, &total), 1);
        assert_string_equal(got->list_id, "new");
        rf_list_destroy(got);
        rf_list_cache_destroy(lc);
}

static void test_short_head_misses(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_t *got = NULL;
        size_t total;
        (void)state;

        /* the head of 5 of a list of 100 */
        put(lc, "k", 1, "h", 5, 100);
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 1, 5, &got, &total), 1);
        rf_list_destroy(got);
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 1, 6, &got, &total), 0);
        /* a whole list answers any read */
        put(lc, "k", 1, "w", 7, 7);
        assert_int_equal(
            rf_list_cache_get(lc, "k", 1, 1, (size_t)-1, &got, &total), 1);
        assert_string_equal(got->list_id, "w");
        rf_list_destroy(got);
        rf_list_cache_destroy(lc);
}

static void test_sweep_frees_older_epochs(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_cache_stats_t st;
        rf_list_t *l, *held = NULL;
        size_t total;
        char key[16];
        (void)state;

        for (int i = 0; i < 50; i++) {
                snprintf(key, sizeof(key), "k%d", i);
                l = make_list(key, 4);
                rf_list_cache_put(lc, key, strlen(key), i < 40 ? 1 : 2, l, 4);
                rf_list_destroy(l);
        }
        assert_int_equal(rf_list_cache_get(lc, "k3", 2, 1, 0, &held, &total),
                         1);
        rf_list_cache_sweep(lc, 2);
        rf_list_cache_stats(lc, &st);
        assert_int_equal(st.entries, 10);
        assert_int_equal(rf_list_cache_get(lc, "k45", 3, 2, 0, &l, &total), 1);
        rf_list_destroy(l);
        /* a reader's reference outlives the sweep */
        assert_string_equal(held->list_id, "k3");
        rf_list_destroy(held);
        rf_list_cache_sweep(lc, 3);
        rf_list_cache_stats(lc, &st);
        assert_int_equal(st.entries, 0);
        assert_int_equal(st.bytes, 0);
        rf_list_cache_destroy(lc);
}

static void test_budget_evicts_least_recent(void **state)
{
        /* 16 shards of 64 KiB: room for several lists of ~1.5 KiB each */
        rf_list_cache_t *lc = rf_list_cache_new(16 * 64 * 1024);
        rf_list_cache_stats_t st;
        rf_list_t *got;
        size_t total;
        char key[32];
        (void)state;

        for (int i = 0; i < 4000; i++) {
                rf_list_t *l = make_list("x", 20);
                snprintf(key, sizeof(key), "key-%d", i);
                rf_list_cache_put(lc, key, strlen(key), 1, l, 20);
                rf_list_destroy(l);
                /* key-0 is read after every put: it stays the most recent
                 * of its shard */
                assert_int_equal(
                    rf_list_cache_get(lc, "key-0", 5, 1, 0, &got, &total), 1);
                rf_list_destroy(got);
        }
        rf_list_cache_stats(lc, &st);
        assert_true(st.bytes <= st.max_bytes);
        assert_true(st.evictions > 0);
        assert_true(st.entries < 4000 && st.entries > 100);
        /* the oldest others are gone */
        assert_int_equal(rf_list_cache_get(lc, "key-1", 5, 1, 0, &got, &total),
                         0);
        assert_int_equal(
            rf_list_cache_get(lc, "key-3999", 8, 1, 0, &got, &total), 1);
        rf_list_destroy(got);
        /* a list over an eighth of a shard is not kept */
        rf_list_t *big = make_list("big", 400);
        rf_list_cache_put(lc, "big", 3, 1, big, 400);
        assert_int_equal(rf_list_cache_get(lc, "big", 3, 1, 0, &got, &total),
                         0);
        rf_list_destroy(big);
        rf_list_cache_destroy(lc);
}

static void test_no_cache_at_zero(void **state)
{
        rf_list_cache_stats_t st;
        (void)state;

        assert_null(rf_list_cache_new(0));
        rf_list_cache_stats(NULL, &st);
        assert_int_equal(st.max_bytes, 0);
        rf_list_cache_destroy(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hit_miss_and_shared_reference),
                cmocka_unit_test(test_other_epoch_misses_and_drops),
                cmocka_unit_test(test_epochs_only_move_on),
                cmocka_unit_test(test_short_head_misses),
                cmocka_unit_test(test_sweep_frees_older_epochs),
                cmocka_unit_test(test_budget_evicts_least_recent),
                cmocka_unit_test(test_no_cache_at_zero),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
