/*
 * The read path's cache of decoded run versions (list_cache.h): hits and
 * misses, forgetting written versions and the generation rule, the byte
 * budget and shared references that outlive their entry. Under ASan a list
 * freed while still held fails here.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Caches a new list of \p n items named \p id under \p key, read after
 * taking generation \p gen. */
static void put(rf_list_cache_t *lc, const char *key, uint64_t gen,
                const char *id, int n, size_t total)
{
        rf_list_t *l = make_list(id, n);

        rf_list_cache_put(lc, key, strlen(key), gen, l, total, 0);
        rf_list_destroy(l);
}

/* The list cached for \p key (any length), or NULL. Caller destroys. */
static rf_list_t *get(rf_list_cache_t *lc, const char *key)
{
        rf_list_t *l = NULL;
        size_t total;

        return rf_list_cache_get(lc, key, strlen(key), 0, &l, &total, NULL)
                   ? l
                   : NULL;
}

static void test_hit_miss_and_shared_reference(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_cache_stats_t st;
        rf_list_t *got = NULL;
        size_t total = 0;
        (void)state;

        assert_null(get(lc, "k1"));
        put(lc, "k1", rf_list_cache_gen(lc), "a", 5, 100);
        assert_int_equal(rf_list_cache_get(lc, "k1", 2, 0, &got, &total, NULL),
                         1);
        assert_string_equal(got->list_id, "a");
        assert_int_equal(total, 100);
        assert_int_equal(got->item_cnt, 5);
        assert_string_equal(got->items[4].item_id, "i4");
        /* another key, a prefix of it: a miss */
        assert_null(get(lc, "k"));
        rf_list_cache_stats(lc, &st);
        assert_int_equal(st.hits, 1);
        assert_int_equal(st.misses, 2);
        assert_int_equal(st.entries, 1);
        assert_true(st.bytes >= rf_list_bytes(got));
        /* the reader's reference outlives the cache */
        rf_list_cache_destroy(lc);
        assert_string_equal(got->items[0].item_id, "i0");
        rf_list_destroy(got);
}

static void test_forget_and_generation(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_cache_stats_t st;
        rf_list_t *got;
        (void)state;

        uint64_t g0 = rf_list_cache_gen(lc);
        put(lc, "k", g0, "v1", 3, 3);
        put(lc, "other", g0, "o", 3, 3);
        got = get(lc, "k");
        /* the version was written: its entry goes, the others stay */
        rf_list_cache_forget(lc, "k", 1);
        assert_null(get(lc, "k"));
        rf_list_t *o = get(lc, "other");
        assert_non_null(o);
        rf_list_destroy(o);
        assert_string_equal(got->list_id, "v1"); /* still held */
        rf_list_destroy(got);
        /* a reader that took the generation before the forget read the
         * old value: it is not cached */
        put(lc, "k", g0, "v1", 3, 3);
        assert_null(get(lc, "k"));
        /* one that took it after is */
        put(lc, "k", rf_list_cache_gen(lc), "v2", 3, 3);
        got = get(lc, "k");
        assert_non_null(got);
        assert_string_equal(got->list_id, "v2");
        rf_list_destroy(got);
        /* a put replaces the key's entry */
        put(lc, "k", rf_list_cache_gen(lc), "v3", 3, 3);
        got = get(lc, "k");
        assert_string_equal(got->list_id, "v3");
        rf_list_destroy(got);
        rf_list_cache_stats(lc, &st);
        assert_int_equal(st.entries, 2);
        /* forgetting a key that is not cached still moves the generation */
        uint64_t g1 = rf_list_cache_gen(lc);
        rf_list_cache_forget(lc, "absent", 6);
        assert_true(rf_list_cache_gen(lc) != g1);
        rf_list_cache_destroy(lc);
}

/* The incremental-list token: a version cached under a token says that
 * it beat its incremental list then; a batch's write of that list (or of
 * every list) moves the token, and a read must look the list up again. */
static void test_incremental_token(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_t *l = make_list("v", 3), *got = NULL;
        size_t total;
        uint64_t tok, t;
        (void)state;

        assert_int_equal(rf_list_cache_inc_token(NULL, "L", 1), 0);
        tok = rf_list_cache_inc_token(lc, "L", 1);
        assert_true(tok != 0);
        rf_list_cache_put(lc, "V", 1, rf_list_cache_gen(lc), l, 3, tok);
        assert_int_equal(rf_list_cache_get(lc, "V", 1, 0, &got, &total, &t), 1);
        assert_true(t == tok);
        rf_list_destroy(got);
        /* the list was written: the entry's token is no longer current */
        rf_list_cache_inc_written(lc, "L", 1);
        assert_true(rf_list_cache_inc_token(lc, "L", 1) != tok);
        /* a read that looked it up again under the new token records it */
        tok = rf_list_cache_inc_token(lc, "L", 1);
        rf_list_cache_set_inc(lc, "V", 1, tok);
        assert_int_equal(rf_list_cache_get(lc, "V", 1, 0, &got, &total, &t), 1);
        assert_true(t == tok);
        rf_list_destroy(got);
        /* a bulk write moves every token */
        uint64_t other = rf_list_cache_inc_token(lc, "M", 1);
        rf_list_cache_inc_all(lc);
        assert_true(rf_list_cache_inc_token(lc, "L", 1) != tok);
        assert_true(rf_list_cache_inc_token(lc, "M", 1) != other);
        /* unknown (0) is never a current token */
        rf_list_cache_put(lc, "W", 1, rf_list_cache_gen(lc), l, 3, 0);
        assert_int_equal(rf_list_cache_get(lc, "W", 1, 0, &got, &total, &t), 1);
        assert_true(t == 0);
        rf_list_destroy(got);
        rf_list_destroy(l);
        rf_list_cache_destroy(lc);
}

static void test_short_head_misses(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_t *got = NULL;
        size_t total;
        (void)state;

        /* the head of 5 of a list of 100 */
        put(lc, "k", rf_list_cache_gen(lc), "h", 5, 100);
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 5, &got, &total, NULL),
                         1);
        rf_list_destroy(got);
        assert_int_equal(rf_list_cache_get(lc, "k", 1, 6, &got, &total, NULL),
                         0);
        /* a whole list answers any read */
        put(lc, "k", rf_list_cache_gen(lc), "w", 7, 7);
        assert_int_equal(
            rf_list_cache_get(lc, "k", 1, (size_t)-1, &got, &total, NULL), 1);
        assert_string_equal(got->list_id, "w");
        rf_list_destroy(got);
        rf_list_cache_destroy(lc);
}

static void test_clear(void **state)
{
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_list_cache_stats_t st;
        char key[16];
        (void)state;

        uint64_t g0 = rf_list_cache_gen(lc);
        for (int i = 0; i < 50; i++) {
                snprintf(key, sizeof(key), "k%d", i);
                put(lc, key, g0, key, 4, 4);
        }
        rf_list_t *held = get(lc, "k3");
        assert_non_null(held);
        rf_list_cache_clear(lc);
        rf_list_cache_stats(lc, &st);
        assert_int_equal(st.entries, 0);
        assert_int_equal(st.bytes, 0);
        /* a reader's reference outlives the clear */
        assert_string_equal(held->list_id, "k3");
        rf_list_destroy(held);
        /* and a read from before it is not cached */
        put(lc, "k1", g0, "k1", 4, 4);
        assert_null(get(lc, "k1"));
        rf_list_cache_destroy(lc);
}

static void test_budget_evicts_least_recent(void **state)
{
        /* 16 shards of 64 KiB: room for several lists of ~1.5 KiB each */
        rf_list_cache_t *lc = rf_list_cache_new(16 * 64 * 1024);
        rf_list_cache_stats_t st;
        rf_list_t *got;
        char key[32];
        (void)state;

        for (int i = 0; i < 4000; i++) {
                snprintf(key, sizeof(key), "key-%d", i);
                put(lc, key, rf_list_cache_gen(lc), "x", 20, 20);
                /* key-0 is read after every put: it stays the most recent
                 * of its shard */
                got = get(lc, "key-0");
                assert_non_null(got);
                rf_list_destroy(got);
        }
        rf_list_cache_stats(lc, &st);
        assert_true(st.bytes <= st.max_bytes);
        assert_true(st.evictions > 0);
        assert_true(st.entries < 4000 && st.entries > 100);
        /* the oldest others are gone */
        assert_null(get(lc, "key-1"));
        got = get(lc, "key-3999");
        assert_non_null(got);
        rf_list_destroy(got);
        /* a list over an eighth of a shard is not kept */
        put(lc, "big", rf_list_cache_gen(lc), "big", 400, 400);
        assert_null(get(lc, "big"));
        rf_list_cache_destroy(lc);
}

/* ---- readers against a writer -------------------------------------------*/

#define RACE_KEYS 8

/* A store of RACE_KEYS versions: the writer bumps one, then forgets it,
 * then records the forget as done. A reader that began after a forget was
 * done must never hit a list older than the version it forgot. */
typedef struct race {
        rf_list_cache_t *lc;
        rf_list_t *lists[256]; /* list i has list_id "i" */
        _Atomic unsigned version[RACE_KEYS];
        _Atomic unsigned forgotten[RACE_KEYS];
        _Atomic int stop;
        _Atomic unsigned long stale, hits;
} race_t;

static void *race_reader(void *arg)
{
        race_t *r = arg;
        unsigned x = 12345;

        while (!atomic_load(&r->stop)) {
                x = x * 1103515245 + 12345;
                unsigned k = (x >> 16) % RACE_KEYS;
                char key[8];
                snprintf(key, sizeof(key), "k%u", k);
                unsigned f0 = atomic_load(&r->forgotten[k]);
                rf_list_t *l = NULL;
                size_t total;
                if (rf_list_cache_get(r->lc, key, strlen(key), 0, &l, &total,
                                      NULL)) {
                        if ((unsigned)atoi(l->list_id) < f0)
                                atomic_fetch_add(&r->stale, 1);
                        atomic_fetch_add(&r->hits, 1);
                        rf_list_destroy(l);
                        continue;
                }
                /* a miss: read "the store" after taking the generation */
                uint64_t g = rf_list_cache_gen(r->lc);
                unsigned v = atomic_load(&r->version[k]);
                sched_yield(); /* a slow reader: a forget may pass it */
                rf_list_cache_put(r->lc, key, strlen(key), g, r->lists[v], 1,
                                  0);
        }
        return NULL;
}

static void test_readers_never_see_a_forgotten_version(void **state)
{
        race_t *r = calloc(1, sizeof(*r));
        pthread_t th[2];
        (void)state;

        r->lc = rf_list_cache_new(1 << 20);
        for (int i = 0; i < 256; i++) {
                char id[8];
                snprintf(id, sizeof(id), "%d", i);
                r->lists[i] = make_list(id, 2);
        }
        for (int i = 0; i < 2; i++)
                assert_int_equal(pthread_create(&th[i], NULL, race_reader, r),
                                 0);
        /* versions 1..255 of every key, each written then forgotten */
        for (unsigned v = 1; v < 256; v++)
                for (unsigned k = 0; k < RACE_KEYS; k++) {
                        char key[8];
                        snprintf(key, sizeof(key), "k%u", k);
                        atomic_store(&r->version[k], v);
                        rf_list_cache_forget(r->lc, key, strlen(key));
                        atomic_store(&r->forgotten[k], v);
                        /* a pause, so that readers fill and hit too */
                        struct timespec ts = { 0, 50 * 1000 };
                        nanosleep(&ts, NULL);
                }
        atomic_store(&r->stop, 1);
        for (int i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&r->stale), 0);
        assert_true(atomic_load(&r->hits) > 0);
        rf_list_cache_destroy(r->lc);
        for (int i = 0; i < 256; i++)
                rf_list_destroy(r->lists[i]);
        free(r);
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
                cmocka_unit_test(test_forget_and_generation),
                cmocka_unit_test(test_incremental_token),
                cmocka_unit_test(test_short_head_misses),
                cmocka_unit_test(test_clear),
                cmocka_unit_test(test_budget_evicts_least_recent),
                cmocka_unit_test(test_readers_never_see_a_forgotten_version),
                cmocka_unit_test(test_no_cache_at_zero),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
