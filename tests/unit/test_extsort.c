/*
 * recfresh - unit tests: the external sorter (extsort.h). Small budgets
 * force many run files, so the merge does what a bulk load of millions of
 * lists does; the run files are then cut short or removed on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "recfresh/extsort.h"

#define N 20000

typedef struct added {
        char k[64];
        size_t kl;
        uint32_t seq; /* the value: order of adding */
} added_t;

static char dir[64];

static int setup(void **state)
{
        (void)state;
        snprintf(dir, sizeof(dir), "/tmp/rf-xs-XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[128];
        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd);
}

static uint64_t rng(uint64_t *x)
{
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

/* Keys share long prefixes (past the 24 bytes a sort slot holds), hold
 * NULs, and repeat: ties must keep the order they were added in. */
static void make_key(added_t *a, uint64_t *x, uint32_t seq)
{
        static const char *const pre[] = { "", "i", "item\0same-prefix-",
                                           "item\0same-prefix-longer-than-24" };
        size_t p = rng(x) % 4, pl = p == 2 ? 18 : p == 3 ? 32 : strlen(pre[p]);
        memcpy(a->k, pre[p], pl);
        a->kl = pl + (size_t)snprintf(a->k + pl, sizeof(a->k) - pl, "%u",
                                      (unsigned)(rng(x) % 3000));
        a->seq = seq;
}

static int cmp_added(const void *pa, const void *pb)
{
        const added_t *a = pa, *b = pb;
        int c = rf_sort_keycmp(a->k, a->kl, b->k, b->kl);
        return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

static rf_sorter_t *fill(added_t *want, size_t n, size_t budget)
{
        rf_sorter_t *s = rf_sorter_new(dir, "t", budget);
        char err[256];
        uint64_t x = 88172645463325252ull;

        for (size_t i = 0; i < n; i++) {
                make_key(&want[i], &x, (uint32_t)i);
                assert_int_equal(rf_sorter_add(s, want[i].k, want[i].kl,
                                               (char *)&want[i].seq,
                                               sizeof(want[i].seq), err,
                                               sizeof(err)),
                                 0);
        }
        qsort(want, n, sizeof(*want), cmp_added);
        return s;
}

/* Fills N entries into a sorter of \p budget, checks it spilled at least
 * \p min_runs runs, and that the merge gives every entry in key order, ties
 * in the order added. @returns the sorter, for more checks. */
static rf_sorter_t *check_merge(added_t *want, size_t budget, size_t min_runs)
{
        const rf_buf_t *k, *v;
        rf_merger_t *mg;
        char err[256];
        size_t i = 0;
        int r;

        rf_sorter_t *s = fill(want, N, budget);
        assert_int_equal(rf_sorter_finish(s, err, sizeof(err)), 0);
        assert_true(rf_sorter_runs(s) >= min_runs);
        assert_int_equal(rf_merger_open(s, &mg, err, sizeof(err)), 0);
        while ((r = rf_merger_next(mg, &k, &v, err, sizeof(err))) == 1) {
                uint32_t seq;
                assert_true(i < N);
                assert_int_equal(k->len, want[i].kl);
                assert_memory_equal(k->data, want[i].k, k->len);
                assert_int_equal(v->len, sizeof(seq));
                memcpy(&seq, v->data, sizeof(seq));
                assert_int_equal(seq, want[i].seq); /* ties in order added */
                i++;
        }
        assert_int_equal(r, 0);
        assert_int_equal(i, N);
        assert_int_equal(rf_merger_next(mg, &k, &v, err, sizeof(err)), 0);
        rf_merger_close(mg);
        return s;
}

static void test_sorts_across_runs(void **state)
{
        added_t *want = calloc(N, sizeof(*want));

        (void)state;
        /* spilled, in the background */
        rf_sorter_t *s = check_merge(want, 64 * 1024, 8);

        /* The runs go with the sorter. */
        rf_buf_t p = { 0 };
        rf_sorter_run_path(s, 0, &p);
        assert_int_equal(access(p.data, F_OK), 0);
        rf_sorter_destroy(s);
        assert_int_not_equal(access(p.data, F_OK), 0);
        rf_buf_free(&p);
        free(want);
}

/* Hundreds of runs, as a sorter of a load of millions of lists spills:
 * the merge's heap keeps key order and the order of ties, and the read
 * buffers shrink to share the budget. */
static void test_merges_hundreds_of_runs(void **state)
{
        added_t *want = calloc(N, sizeof(*want));

        (void)state;
        rf_sorter_destroy(check_merge(want, 4096, 300));
        free(want);
}

/* A merge of more runs than the process may open files fails with a
 * message that says what to change. */
static void test_open_files_limit(void **state)
{
        added_t *want = calloc(N, sizeof(*want));
        const rf_buf_t *k, *v;
        rf_merger_t *mg = NULL;
        struct rlimit was, low;
        char err[512];

        (void)state;
        rf_sorter_t *s = fill(want, N, 4096);
        assert_int_equal(rf_sorter_finish(s, err, sizeof(err)), 0);
        assert_true(rf_sorter_runs(s) >= 300);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
        low = was;
        low.rlim_cur = 32;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        int r = rf_merger_open(s, &mg, err, sizeof(err));
        if (r == 0)
                while ((r = rf_merger_next(mg, &k, &v, err, sizeof(err))) == 1)
                        ;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
        assert_int_equal(r, RF_EIO);
        assert_non_null(strstr(err, "raise the open files limit"));
        rf_merger_close(mg);
        rf_sorter_destroy(s);
        free(want);
}

static void test_empty_and_in_memory(void **state)
{
        const rf_buf_t *k, *v;
        rf_merger_t *mg;
        char err[256];

        (void)state;
        rf_sorter_t *s = rf_sorter_new(dir, "e", 1 << 20);
        assert_int_equal(rf_merger_open(s, &mg, err, sizeof(err)), 0);
        assert_int_equal(rf_merger_next(mg, &k, &v, err, sizeof(err)), 0);
        rf_merger_close(mg);
        rf_sorter_destroy(s);

        /* One entry bigger than the budget still goes through. */
        char big[4096];
        memset(big, 'b', sizeof(big));
        s = rf_sorter_new(dir, "b", 1024);
        assert_int_equal(
            rf_sorter_add(s, "k2", 2, big, sizeof(big), err, sizeof(err)), 0);
        assert_int_equal(rf_sorter_add(s, "k1", 2, "", 0, err, sizeof(err)), 0);
        assert_int_equal(rf_merger_open(s, &mg, err, sizeof(err)), 0);
        assert_int_equal(rf_merger_next(mg, &k, &v, err, sizeof(err)), 1);
        assert_memory_equal(k->data, "k1", 2);
        assert_int_equal(v->len, 0);
        assert_int_equal(rf_merger_next(mg, &k, &v, err, sizeof(err)), 1);
        assert_memory_equal(k->data, "k2", 2);
        assert_int_equal(v->len, sizeof(big));
        assert_int_equal(rf_merger_next(mg, &k, &v, err, sizeof(err)), 0);
        rf_merger_close(mg);
        rf_sorter_destroy(s);
}

/* Every cut of a run file fails the merge with the file named, whether it
 * falls between two entries (0 bytes kept), between an entry's fields or
 * inside one, and so does a run longer than written; no change to a run
 * ends the merge quietly. */
static void test_truncated_run_fails(void **state)
{
        added_t *want = calloc(2000, sizeof(*want));
        const rf_buf_t *k, *v;
        rf_buf_t p = { 0 };
        char err[256];
        struct {
                off_t keep; /* bytes of run 1 left; -1: removed; -2: added */
        } cuts[] = { { 0 }, { 1 }, { 2 }, { 7 }, { 1000 }, { -1 }, { -2 } };

        (void)state;
        for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
                rf_sorter_t *s = fill(want, 2000, 16 * 1024);
                rf_merger_t *mg = NULL;
                size_t got = 0;
                int r;

                assert_int_equal(rf_sorter_finish(s, err, sizeof(err)), 0);
                assert_true(rf_sorter_runs(s) >= 3);
                rf_sorter_run_path(s, 1, &p);
                if (cuts[c].keep == -1) {
                        assert_int_equal(unlink(p.data), 0);
                } else if (cuts[c].keep == -2) {
                        /* an entry too many: "k" -> "" */
                        FILE *fp = fopen(p.data, "ab");
                        assert_non_null(fp);
                        fwrite("\001k\000", 1, 3, fp);
                        fclose(fp);
                } else
                        assert_int_equal(truncate(p.data, cuts[c].keep), 0);
                err[0] = '\0';
                r = rf_merger_open(s, &mg, err, sizeof(err));
                if (r == 0)
                        while ((r = rf_merger_next(mg, &k, &v, err,
                                                   sizeof(err))) == 1)
                                got++;
                assert_int_equal(r, RF_EIO);
                assert_non_null(strstr(err, p.data));
                if (mg) /* and it stays failed */
                        assert_int_equal(
                            rf_merger_next(mg, &k, &v, err, sizeof(err)),
                            RF_EIO);
                assert_true(got < 2000);
                rf_merger_close(mg);
                rf_sorter_destroy(s);
        }
        rf_buf_free(&p);
        free(want);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sorts_across_runs),
                cmocka_unit_test(test_merges_hundreds_of_runs),
                cmocka_unit_test(test_open_files_limit),
                cmocka_unit_test(test_empty_and_in_memory),
                cmocka_unit_test(test_truncated_run_fails),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
