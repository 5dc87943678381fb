/*
 * Unit tests of store-level helpers (src/store.c) over a real RocksDB
 * store in a temp dir: the subject pseudonym (HMAC-SHA256 keyed with the
 * store's salt, first 16 bytes), the free-space probe, range iterators
 * over committed and uncommitted keys, the per-column-family epochs
 * that tell caches (the active run pointers of rf_runs_lookup) to re-read,
 * and the writer's cache of values written through batches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "recfresh/hide_cache.h"
#include "recfresh/keys.h"
#include "recfresh/list.h"
#include "recfresh/list_cache.h"
#include "recfresh/log.h"
#include "recfresh/runs.h"
#include "recfresh/store.h"
#include "recfresh/tombstone.h"
#include "recfresh/value_cache.h"

static void expect_pseudonym(rf_store_t *st, const unsigned char salt[32],
                             const char *subject)
{
        unsigned char want[EVP_MAX_MD_SIZE], got[16];
        unsigned int len = 0;

        HMAC(EVP_sha256(), salt, 32, (const unsigned char *)subject,
             strlen(subject), want, &len);
        rf_store_pseudonym(st, subject, got);
        assert_memory_equal(got, want, sizeof(got));
}

/* A primary store in a new directory made from the template \p dir
 * ("/tmp/rf-st-XXXXXX"); remove it with tmp_remove(). */
/* \p v holds exactly \p want. */
static void assert_value(const rf_buf_t *v, const char *want)
{
        assert_int_equal(v->len, strlen(want));
        assert_memory_equal(v->data, want, v->len);
}

static rf_store_t *tmp_store(char *dir, const rf_store_opts_t *o)
{
        char err[256];
        rf_store_t *st;

        assert_non_null(mkdtemp(dir));
        st = rf_store_open(dir, RF_STORE_PRIMARY, o, err, sizeof(err));
        if (!st)
                fail_msg("%s: %s", dir, err);
        return st;
}

static void tmp_remove(const char *dir)
{
        char cmd[64];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

static void test_pseudonym_is_hmac_of_the_salt(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256];
        unsigned char salt[32], other[16];
        rf_store_t *st;

        (void)state;
        rf_log_set_level(RF_LOG_WARN);
        st = tmp_store(dir, NULL);
        for (int i = 0; i < 32; i++)
                salt[i] = (unsigned char)(i * 7 + 1);
        assert_int_equal(rf_store_set_salt(st, salt, err, sizeof(err)), 0);
        expect_pseudonym(st, salt, "user-1");
        expect_pseudonym(st, salt, "");
        /* longer than SHA-256's block, and exactly one block */
        expect_pseudonym(st, salt,
                         "a-subject-id-of-more-than-sixty-four-bytes-which-"
                         "spans-two-blocks-of-the-inner-hash");
        expect_pseudonym(st, salt,
                         "0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef");
        /* another subject, another pseudonym; the same one, the same */
        rf_store_pseudonym(st, "user-2", other);
        unsigned char again[16];
        rf_store_pseudonym(st, "user-2", again);
        assert_memory_equal(other, again, 16);
        rf_store_close(st);

        /* the salt is durable: a reopened store derives the same */
        st = rf_store_open(dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st);
        expect_pseudonym(st, salt, "user-1");
        rf_store_close(st);
        tmp_remove(dir);
}

static void test_free_bytes(void **state)
{
        (void)state;
        assert_true(rf_store_free_bytes("/tmp") > 0);
        /* a store not yet created: its nearest existing parent */
        assert_true(rf_store_free_bytes("/tmp/rf-none/a/b") > 0);
        assert_true(rf_store_free_bytes("relative-none/db") > 0);
}

/* The keys a range iterator yields, joined with ','. */
static void range_keys(rf_store_t *st, rf_txn_t *txn, const char *from,
                       const char *to, char *out, size_t size)
{
        rf_iter_t *it = rf_iter_new_range(
            st, txn, RF_CF_QUEUE, from, strlen(from), to, to ? strlen(to) : 0);
        size_t n = 0;

        out[0] = '\0';
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen;
                const char *k = rf_iter_key(it, &klen);
                n += (size_t)snprintf(out + n, size - n, "%s%.*s", n ? "," : "",
                                      (int)klen, k);
        }
        assert_int_equal(rf_iter_status(it), 0);
        rf_iter_destroy(it);
}

static void test_range_iterator(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256], got[256];
        static const char *const keys[] = { "a1", "b1", "b2", "c1" };
        rf_store_t *st;
        rf_txn_t *txn;

        (void)state;
        st = tmp_store(dir, NULL);
        txn = rf_txn_new(st);
        for (size_t i = 0; i < 4; i++)
                rf_txn_put(txn, RF_CF_QUEUE, keys[i], 2, "", 0);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_delete(txn, RF_CF_QUEUE, "a1", 2);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);

        range_keys(st, NULL, "a", "c", got, sizeof(got));
        assert_string_equal(got, "b1,b2");
        range_keys(st, NULL, "b2", NULL, got, sizeof(got));
        assert_string_equal(got, "b2,c1");
        /* Through a batch: its own keys too, bounded on both sides. */
        rf_txn_put(txn, RF_CF_QUEUE, "b3", 2, "", 0);
        rf_txn_put(txn, RF_CF_QUEUE, "c0", 2, "", 0);
        rf_txn_put(txn, RF_CF_QUEUE, "a2", 2, "", 0);
        range_keys(st, txn, "b", "c", got, sizeof(got));
        assert_string_equal(got, "b1,b2,b3");
        range_keys(st, txn, "b2", "c1", got, sizeof(got));
        assert_string_equal(got, "b2,b3,c0");
        rf_txn_destroy(txn);
        rf_store_close(st);
        tmp_remove(dir);
}

/* A read through a batch sees the batch's writes of its column family
 * over the store's, deletes included; a column family the batch has not
 * written (read from the store directly) and a batch cleared or committed
 * answer as the store does. */
static void test_txn_get_reads_through_the_batch(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256];
        rf_buf_t v = { 0 };
        rf_store_t *st;
        rf_txn_t *txn;

        (void)state;
        st = tmp_store(dir, NULL);
        txn = rf_txn_new(st);
        rf_txn_put(txn, RF_CF_QUEUE, "k", 1, "stored", 6);
        rf_txn_put(txn, RF_CF_LISTS, "k", 1, "list", 4);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);

        rf_txn_put(txn, RF_CF_QUEUE, "k", 1, "batch", 5);
        rf_txn_delete(txn, RF_CF_OUTBOX, "k", 1);
        assert_int_equal(rf_txn_get(txn, RF_CF_QUEUE, "k", 1, &v), 0);
        assert_value(&v, "batch");
        assert_int_equal(rf_txn_get(txn, RF_CF_LISTS, "k", 1, &v), 0);
        assert_value(&v, "list");
        assert_int_equal(rf_txn_get(txn, RF_CF_LISTS, "none", 4, &v),
                         RF_ENOENT);
        assert_int_equal(v.len, 0);
        rf_txn_delete(txn, RF_CF_LISTS, "k", 1);
        assert_int_equal(rf_txn_get(txn, RF_CF_LISTS, "k", 1, &v), RF_ENOENT);

        rf_txn_clear(txn);
        assert_int_equal(rf_txn_get(txn, RF_CF_QUEUE, "k", 1, &v), 0);
        assert_memory_equal(v.data, "stored", 6);
        assert_int_equal(rf_txn_get(txn, RF_CF_LISTS, "k", 1, &v), 0);
        rf_txn_put(txn, RF_CF_QUEUE, "k", 1, "next", 4);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_int_equal(rf_txn_get(txn, RF_CF_QUEUE, "k", 1, &v), 0);
        assert_value(&v, "next");
        rf_buf_free(&v);
        rf_txn_destroy(txn);
        rf_store_close(st);
        tmp_remove(dir);
}

/* RocksDB 7's iterators through a batch cannot merge: one over a column
 * family the batch holds merge operands of is refused (empty, with an
 * error status), not wrong. Others, and the same after the commit, work. */
static void test_iterator_through_merges_refused(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256];
        rf_store_t *st;
        rf_txn_t *txn;
        rf_iter_t *it;

        (void)state;
        st = tmp_store(dir, NULL);
        txn = rf_txn_new(st);
        rf_txn_put(txn, RF_CF_LISTS, "Lk", 2, "list", 4);
        rf_txn_merge(txn, RF_CF_QUEUE, "Pk", 2, "\x02", 1);
        it = rf_iter_new(st, txn, RF_CF_QUEUE, "P", 1);
        assert_false(rf_iter_valid(it));
        assert_int_equal(rf_iter_status(it), RF_EINVAL);
        rf_iter_destroy(it);
        it = rf_iter_new(st, txn, RF_CF_LISTS, "L", 1);
        assert_true(rf_iter_valid(it));
        assert_int_equal(rf_iter_status(it), 0);
        rf_iter_destroy(it);

        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_put(txn, RF_CF_QUEUE, "Pj", 2, "x", 1);
        it = rf_iter_new(st, txn, RF_CF_QUEUE, "P", 1);
        assert_true(rf_iter_valid(it)); /* Pj, from the batch */
        assert_int_equal(rf_iter_status(it), 0);
        rf_iter_destroy(it);
        rf_txn_destroy(txn);
        rf_store_close(st);
        tmp_remove(dir);
}

/* A store without a WAL keeps its writes once closed: close flushes. */
static void test_no_wal_keeps_writes(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256];
        rf_store_opts_t o = { .no_wal = 1 };
        rf_buf_t v = { 0 };
        rf_store_t *st;
        rf_txn_t *txn;

        (void)state;
        st = tmp_store(dir, &o);
        txn = rf_txn_new(st);
        rf_txn_put(txn, RF_CF_QUEUE, "k1", 2, "v1", 2);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_destroy(txn);
        rf_store_close(st);

        st = rf_store_open(dir, RF_STORE_READONLY, NULL, err, sizeof(err));
        assert_non_null(st);
        assert_int_equal(rf_store_get(st, RF_CF_QUEUE, "k1", 2, &v), 0);
        assert_value(&v, "v1");
        rf_buf_free(&v);
        rf_store_close(st);
        tmp_remove(dir);
}

/* Bytes of WAL files (*.log) in \p dir. */
static uint64_t wal_bytes(const char *dir)
{
        char cmd[256];
        unsigned long long n = 0;
        FILE *fp;

        snprintf(cmd, sizeof(cmd), "cat %s/*.log 2>/dev/null | wc -c", dir);
        assert_non_null(fp = popen(cmd, "r"));
        assert_int_equal(fscanf(fp, "%llu", &n), 1);
        pclose(fp);
        return n;
}

/* The WAL stays near store.max_wal_mb although a column family that is
 * written once (here the offsets) holds its first file alive: past the
 * bound RocksDB flushes it. Without the bound, 12 MiB of queue writes
 * kept 12 MiB of WAL (the default is 4 x every memtable: 588 MiB here). */
static void test_wal_is_bounded(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256], key[32];
        rf_store_opts_t o = { .write_buffer_mb = 1, .max_wal_mb = 2 };
        static char val[4096];
        rf_store_t *st;
        rf_txn_t *txn;
        uint64_t wal;

        (void)state;
        memset(val, 'q', sizeof(val));
        st = tmp_store(dir, &o);
        txn = rf_txn_new(st);
        rf_txn_put(txn, RF_CF_OFFSETS, "offset", 6, "1", 1);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        for (int i = 0; i < 3072; i++) { /* 12 MiB in 16-value commits */
                snprintf(key, sizeof(key), "q%08d", i);
                rf_txn_put(txn, RF_CF_QUEUE, key, strlen(key), val,
                           sizeof(val));
                if (i % 16 == 15)
                        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)),
                                         0);
        }
        /* Flushes and the deletion of the WAL files they free run in
         * RocksDB's background threads: wait for them, with a deadline. */
        int64_t deadline = rf_mono_ms() + 20000;
        while ((wal = wal_bytes(dir)) > (4u << 20) && rf_mono_ms() < deadline)
                nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
        if (wal > (4u << 20))
                fail_msg("%llu bytes of WAL for a bound of 2 MiB",
                         (unsigned long long)wal);
        rf_txn_destroy(txn);
        rf_store_close(st);
        tmp_remove(dir);
}

static void put_active(rf_store_t *st, const char *surface, const char *run)
{
        rf_txn_t *txn = rf_txn_new(st);
        rf_buf_t k = { 0 }, v = { 0 };
        char err[256];

        rf_buf_printf(&k, "A%s", surface);
        rf_buf_put_str(&v, run);
        rf_buf_put_be64(&v, 1000);
        rf_txn_put(txn, RF_CF_RUNS, k.data, k.len, v.data, v.len);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_buf_free(&k);
        rf_buf_free(&v);
        rf_txn_destroy(txn);
}

/* What rf_runs_lookup serves for list key "L" of surface "s". */
static void expect_served(rf_store_t *st, const char *want)
{
        rf_buf_t v = { 0 };

        assert_int_equal(rf_runs_lookup(st, "s", "L", 1, &v), 0);
        assert_int_equal(v.len, strlen(want));
        assert_memory_equal(v.data, want, v.len);
        rf_buf_free(&v);
}

static void test_cf_epoch(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256];
        rf_store_t *st, *st2;
        rf_txn_t *txn;
        uint64_t e;

        (void)state;
        st = tmp_store(dir, NULL);
        txn = rf_txn_new(st);
        e = rf_store_cf_epoch(st, RF_CF_RUNS);
        /* another column family, an empty commit, a cleared batch: same */
        rf_txn_put(txn, RF_CF_QUEUE, "q", 1, "", 0);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_put(txn, RF_CF_RUNS, "x", 1, "", 0);
        rf_txn_clear(txn);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_true(rf_store_cf_epoch(st, RF_CF_RUNS) == e);
        /* a put, then a delete: moved on each time */
        rf_txn_put(txn, RF_CF_RUNS, "x", 1, "", 0);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_true(rf_store_cf_epoch(st, RF_CF_RUNS) > e);
        e = rf_store_cf_epoch(st, RF_CF_RUNS);
        rf_txn_delete(txn, RF_CF_RUNS, "x", 1);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_true(rf_store_cf_epoch(st, RF_CF_RUNS) > e);
        rf_txn_destroy(txn);

        /* The pointer cache follows every switch at once, on this thread. */
        txn = rf_txn_new(st);
        rf_txn_put(txn, RF_CF_LISTS, "L", 1, "incremental", 11);
        rf_txn_put(txn, RF_CF_VERSIONS, "r1\0L", 4, "run one", 7);
        rf_txn_put(txn, RF_CF_VERSIONS, "r2\0L", 4, "run two", 7);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_destroy(txn);
        expect_served(st, "incremental"); /* no run active */
        put_active(st, "s", "r1");
        expect_served(st, "run one");
        expect_served(st, "run one"); /* from the cache */
        put_active(st, "s", "r2");
        expect_served(st, "run two");
        put_active(st, "s", "r1"); /* rolled back */
        expect_served(st, "run one");

        /* A store opened later never takes another's cached pointer. */
        rf_store_close(st);
        st2 = rf_store_open(dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st2);
        put_active(st2, "s", "r2");
        expect_served(st2, "run two");
        rf_store_close(st2);
        tmp_remove(dir);
}

/* The value of option \p name in section \p sect of the newest OPTIONS
 * file RocksDB wrote in \p dir, into \p out ("" if absent). */
static void options_value(const char *dir, const char *sect, const char *name,
                          char *out, size_t size)
{
        char cmd[512], line[1024];
        int in = 0;
        FILE *fp;

        snprintf(cmd, sizeof(cmd), "cat \"$(ls -v %s/OPTIONS-* | tail -1)\"",
                 dir);
        out[0] = '\0';
        assert_non_null(fp = popen(cmd, "r"));
        while (fgets(line, sizeof(line), fp)) {
                char *p = line + strspn(line, " ");
                p[strcspn(p, "\n")] = '\0';
                if (*p == '[')
                        in = !strcmp(p, sect);
                else if (in && !strncmp(p, name, strlen(name)) &&
                         p[strlen(name)] == '=')
                        snprintf(out, size, "%s", p + strlen(name) + 1);
        }
        pclose(fp);
}

/* The reverse index, which fan-outs scan, has partitioned index and filter
 * blocks (a bulk-loaded file's one-piece index did not stay cached); the
 * point-read column families keep the one-piece index with a hash index in
 * each data block (partitions cost reads a fifth). */
static void test_table_formats(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", v[256];
        rf_store_t *st;

        (void)state;
        st = tmp_store(dir, NULL);
        rf_store_close(st);

        options_value(dir, "[TableOptions/BlockBasedTable \"index\"]",
                      "index_type", v, sizeof(v));
        assert_string_equal(v, "kTwoLevelIndexSearch");
        options_value(dir, "[TableOptions/BlockBasedTable \"index\"]",
                      "partition_filters", v, sizeof(v));
        assert_string_equal(v, "true");
        static const char *const point[] = { "versions", "lists", "tombstones",
                                             "runs" };
        for (size_t i = 0; i < sizeof(point) / sizeof(point[0]); i++) {
                char sect[128];
                snprintf(sect, sizeof(sect),
                         "[TableOptions/BlockBasedTable \"%s\"]", point[i]);
                options_value(dir, sect, "index_type", v, sizeof(v));
                assert_string_equal(v, "kBinarySearch");
                options_value(dir, sect, "data_block_index_type", v, sizeof(v));
                assert_string_equal(v, "kDataBlockBinaryAndHash");
                options_value(dir, sect, "partition_filters", v, sizeof(v));
                assert_string_equal(v, "false");
        }
        tmp_remove(dir);
}

/* A warming reader reads a column family's every key, as it was when the
 * reader was made, into the block cache of a store just opened; it reads
 * nothing once told to stop. */
static void test_warm(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256], key[32], val[512];
        atomic_int stop;
        rf_store_t *st;
        rf_txn_t *txn;
        rf_warm_t *w;
        size_t before;

        (void)state;
        st = tmp_store(dir, NULL);
        txn = rf_txn_new(st);
        memset(val, 'v', sizeof(val));
        for (int i = 0; i < 2000; i++) {
                snprintf(key, sizeof(key), "list-%05d", i);
                rf_txn_put(txn, RF_CF_VERSIONS, key, strlen(key), val,
                           sizeof(val));
        }
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_destroy(txn);
        assert_int_equal(rf_store_flush(st, err, sizeof(err)), 0);
        rf_store_close(st);
        st = rf_store_open(dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st);
        assert_true(rf_store_block_cache_capacity(st) >= 1u << 20);

        atomic_init(&stop, 1);
        w = rf_store_warm_new(st, RF_CF_VERSIONS);
        assert_int_equal(rf_store_warm_run(w, &stop), 0);
        rf_store_warm_destroy(w);

        w = rf_store_warm_new(st, RF_CF_VERSIONS);
        /* written after the reader was made: not read */
        txn = rf_txn_new(st);
        rf_txn_put(txn, RF_CF_VERSIONS, "list-99999", 10, "late", 4);
        rf_txn_delete(txn, RF_CF_VERSIONS, "list-00000", 10);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        before = rf_store_block_cache_usage(st);
        atomic_store(&stop, 0);
        assert_int_equal(rf_store_warm_run(w, &stop), 2000);
        /* the blocks are cached uncompressed: about 1 MB */
        assert_true(rf_store_block_cache_usage(st) > before + 500000);
        rf_store_warm_destroy(w);
        w = rf_store_warm_new(st, RF_CF_LISTS);
        assert_int_equal(rf_store_warm_run(w, &stop), 0);
        rf_store_warm_destroy(w);
        rf_txn_destroy(txn);
        rf_store_close(st);
        tmp_remove(dir);
}

/* The writer's cache of values it wrote (value_cache.h): a read through a
 * batch gets what RocksDB would give it, with the note the writer put
 * (7 here) or 0 for a value read. */
static void expect_cached(rf_vcache_t *c, const rf_txn_t *txn, const char *key,
                          const char *want, uint32_t note)
{
        const char *v = NULL;
        size_t vlen = 0;
        uint32_t n = 99;

        assert_int_equal(rf_vcache_get(c, txn, key, strlen(key), &v, &vlen, &n),
                         1);
        assert_int_equal(n, note);
        if (!want) {
                assert_null(v);
                return;
        }
        assert_non_null(v);
        assert_int_equal(vlen, strlen(want));
        assert_memory_equal(v, want, vlen);
}

static void expect_unknown(rf_vcache_t *c, const rf_txn_t *txn, const char *key)
{
        const char *v;
        size_t vlen;

        assert_int_equal(
            rf_vcache_get(c, txn, key, strlen(key), &v, &vlen, NULL), 0);
}

static void test_value_cache(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256];
        char big[2048];
        rf_store_t *st;
        rf_txn_t *a, *b;
        rf_vcache_t *c;

        (void)state;
        rf_log_set_level(RF_LOG_ERROR);
        st = tmp_store(dir, NULL);
        assert_null(rf_vcache_new(st, 0)); /* off: every lookup misses */
        expect_unknown(NULL, NULL, "k");
        c = rf_vcache_new(st, 1024);
        a = rf_txn_new(st);
        b = rf_txn_new(st);

        /* A write is the writer's batch's until it commits. */
        rf_txn_put(a, RF_CF_QUEUE, "k1", 2, "v1", 2);
        rf_vcache_put(c, a, "k1", 2, "v1", 2, 7);
        expect_cached(c, a, "k1", "v1", 7);
        expect_unknown(c, NULL, "k1");
        expect_unknown(c, b, "k1");
        /* A read through another batch is not kept meanwhile: it may
         * miss a write of `a` the cache has forgotten. */
        rf_vcache_fill(c, b, "k2", 2, "old", 3);
        expect_unknown(c, b, "k2");
        assert_int_equal(rf_txn_commit(a, err, sizeof(err)), 0);
        rf_vcache_committed(c, b); /* another batch: nothing changes */
        expect_unknown(c, NULL, "k1");
        rf_vcache_committed(c, NULL); /* the open one */
        assert_null(rf_vcache_open(c));
        expect_cached(c, NULL, "k1", "v1", 7);
        expect_cached(c, b, "k1", "v1", 7);

        /* Reads are kept, absent keys too; a delete is a write. */
        rf_vcache_fill(c, NULL, "k2", 2, "v2", 2);
        rf_vcache_fill(c, NULL, "k3", 2, NULL, 0);
        expect_cached(c, a, "k2", "v2", 0);
        expect_cached(c, NULL, "k3", NULL, 0);
        rf_txn_delete(a, RF_CF_QUEUE, "k2", 2);
        rf_vcache_put(c, a, "k2", 2, NULL, 0, 7);
        expect_cached(c, a, "k2", NULL, 7);
        expect_unknown(c, NULL, "k2");
        /* a read through the writer's batch does not hide its write */
        rf_vcache_fill(c, a, "k2", 2, "v2", 2);
        expect_cached(c, a, "k2", NULL, 7);

        /* A dropped batch: its writes were never true. Whoever drops it,
         * the cache forgets everything at its next call. */
        rf_txn_clear(a);
        expect_unknown(c, a, "k2");
        expect_unknown(c, NULL, "k1");
        /* the writer's next batch goes on as usual */
        rf_txn_put(a, RF_CF_QUEUE, "k4", 2, "v4", 2);
        rf_vcache_put(c, a, "k4", 2, "v4", 2, 7);
        assert_int_equal(rf_txn_commit(a, err, sizeof(err)), 0);
        rf_vcache_committed(c, a);
        expect_cached(c, NULL, "k4", "v4", 7);

        /* Over the budget: not kept. */
        memset(big, 'x', sizeof(big));
        rf_vcache_fill(c, NULL, "kb", 2, big, sizeof(big));
        expect_unknown(c, NULL, "kb");
        rf_vcache_fill(c, NULL, "k1", 2, "v1", 2);
        expect_cached(c, NULL, "k1", "v1", 0);

        /* Two batches writing at once: the cache turns itself off. */
        rf_txn_put(a, RF_CF_QUEUE, "k5", 2, "a5", 2);
        rf_vcache_put(c, a, "k5", 2, "a5", 2, 7);
        rf_txn_put(b, RF_CF_QUEUE, "k6", 2, "b6", 2);
        rf_vcache_put(c, b, "k6", 2, "b6", 2, 7);
        expect_unknown(c, b, "k6");
        expect_unknown(c, a, "k5");
        expect_unknown(c, NULL, "k4");
        rf_vcache_fill(c, NULL, "k4", 2, "v4", 2);
        expect_unknown(c, NULL, "k4");
        rf_txn_clear(a); /* both batches end: on again, empty */
        rf_txn_clear(b);
        rf_vcache_quiet(c);
        expect_unknown(c, NULL, "k4");
        rf_vcache_fill(c, NULL, "k4", 2, "v4", 2);
        expect_cached(c, NULL, "k4", "v4", 0);

        /* The writer says its batch was dropped: no batch is open after. */
        rf_txn_put(a, RF_CF_QUEUE, "k7", 2, "a7", 2);
        rf_vcache_put(c, a, "k7", 2, "a7", 2, 7);
        assert_ptr_equal(rf_vcache_open(c), a);
        rf_vcache_dropped(c, b); /* not the open one: nothing changes */
        expect_cached(c, a, "k7", "a7", 7);
        rf_txn_clear(a);
        rf_vcache_dropped(c, a);
        assert_null(rf_vcache_open(c));
        expect_unknown(c, a, "k7");
        rf_vcache_fill(c, NULL, "k4", 2, "v4", 2);
        expect_cached(c, b, "k4", "v4", 0);

        rf_vcache_stats_t stats;
        rf_vcache_stats(c, &stats);
        assert_true(stats.hits > 0 && stats.hits < stats.lookups);
        assert_int_equal(stats.bytes, 4); /* "k4" and "v4" */
        assert_true(stats.table_bytes > 0);

        rf_vcache_destroy(c);
        rf_txn_destroy(a); /* dropped: counted too */
        rf_txn_destroy(b);
        rf_store_close(st);
        tmp_remove(dir);
}

/* ---- the list cache's forgets at commits (list_cache.h) ---------------*/

static void cache_key(rf_list_cache_t *lc, const char *key)
{
        static const char js[] = "{\"subject_id\":\"u\",\"surface\":\"home\","
                                 "\"list_id\":\"l\",\"run_id\":\"r\","
                                 "\"generated_at\":\"2026-11-22T09:14:00Z\","
                                 "\"expires_at\":\"2026-11-23T09:14:00Z\","
                                 "\"model_version\":\"m\","
                                 "\"items\":[{\"item_id\":\"i\",\"score\":1}]}";
        rf_rejection_t rej;
        rf_list_t *l = NULL;

        assert_int_equal(
            rf_list_from_json(NULL, 0, js, strlen(js), NULL, &l, &rej), 0);
        rf_list_cache_put(lc, key, strlen(key), rf_list_cache_gen(lc), l, 1, 0);
        rf_list_destroy(l);
}

static int cached(rf_list_cache_t *lc, const char *key)
{
        rf_list_t *l = NULL;
        size_t total;
        int hit = rf_list_cache_get(lc, key, strlen(key), 0, &l, &total, NULL);

        rf_list_destroy(l);
        return hit;
}

static void test_commit_forgets_written_versions(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256], k[16];
        rf_store_t *st = tmp_store(dir, NULL);
        rf_list_cache_t *lc = rf_list_cache_new(1 << 20);
        rf_txn_t *txn = rf_txn_new(st);
        (void)state;

        rf_store_set_list_cache(st, lc);
        cache_key(lc, "v1");
        cache_key(lc, "v2");
        cache_key(lc, "v3");
        /* a batch dropped without a commit forgets nothing */
        rf_txn_delete(txn, RF_CF_VERSIONS, "v1", 2);
        rf_txn_clear(txn);
        assert_true(cached(lc, "v1"));
        /* a commit forgets the versions it wrote, once it has written */
        rf_txn_put(txn, RF_CF_VERSIONS, "v1", 2, "x", 1);
        rf_txn_put(txn, RF_CF_LISTS, "v2", 2, "x", 1); /* not a version */
        assert_true(cached(lc, "v1"));
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_false(cached(lc, "v1"));
        assert_true(cached(lc, "v2"));
        assert_true(cached(lc, "v3"));
        rf_txn_delete(txn, RF_CF_VERSIONS, "v2", 2);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_false(cached(lc, "v2"));
        assert_true(cached(lc, "v3"));
        /* a bulk write (past 4,096 keys) clears the whole cache */
        for (int i = 0; i < 5000; i++) {
                snprintf(k, sizeof(k), "w%d", i);
                rf_txn_put(txn, RF_CF_VERSIONS, k, strlen(k), "x", 1);
        }
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_false(cached(lc, "v3"));

        /* An incremental list's write moves its token once committed,
         * not before, and a dropped batch's does not. */
        cache_key(lc, "v4");
        uint64_t t = rf_list_cache_inc_token(lc, "L1", 2);
        uint64_t t2 = rf_list_cache_inc_token(lc, "L2", 2);
        rf_txn_put(txn, RF_CF_LISTS, "L1", 2, "x", 1);
        assert_true(rf_list_cache_inc_token(lc, "L1", 2) == t);
        rf_txn_clear(txn);
        assert_true(rf_list_cache_inc_token(lc, "L1", 2) == t);
        rf_txn_delete(txn, RF_CF_LISTS, "L1", 2);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_true(rf_list_cache_inc_token(lc, "L1", 2) != t);
        /* a bulk write of lists moves every token, and leaves the
         * versions cached */
        for (int i = 0; i < 5000; i++) {
                snprintf(k, sizeof(k), "L%d", i + 10);
                rf_txn_put(txn, RF_CF_LISTS, k, strlen(k), "x", 1);
        }
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_true(rf_list_cache_inc_token(lc, "L2", 2) != t2);
        assert_true(cached(lc, "v4"));
        rf_txn_destroy(txn);
        rf_store_set_list_cache(st, NULL);
        rf_store_close(st);
        rf_list_cache_destroy(lc);
        tmp_remove(dir);
}

/* ---- the hide cache around batches (hide_cache.h) ----------------------*/

/* Puts user u1's hide summary (\p item hidden) in \p txn. */
static void put_hide(rf_txn_t *txn, const char *item)
{
        rf_buf_t k = { 0 }, sum = { 0 };

        rf_key_hide_prefix(&k, "u1");
        rf_hide_summary_add(&sum, RF_IDX_ITEM, item, strlen(item));
        rf_txn_put(txn, RF_CF_TOMBSTONES, k.data, k.len, sum.data, sum.len);
        rf_buf_free(&k);
        rf_buf_free(&sum);
}

/* @returns 1 if a read of user u1 (no batch) filters \p item as hidden. */
static int hidden(rf_store_t *st, const char *item)
{
        rf_checker_t ck;
        rf_entry_t e = { .item_id = item, .creator_id = "", .campaign_id = "" };

        assert_int_equal(rf_checker_init(&ck, st, NULL, "u1", ""), 0);
        int r = rf_checker_check(&ck, &e) == RF_FILTER_HIDDEN_ITEM;
        rf_checker_clear(&ck);
        return r;
}

static uint64_t hide_hits(rf_hide_cache_t *hc)
{
        rf_hide_cache_stats_t s;

        rf_hide_cache_stats(hc, &s);
        return s.hits;
}

/* A batch that writes a user's hides keeps the cache from holding them
 * from its write until its commit (or drop): a read in between reads the
 * store and keeps nothing, so the commit's hides are read right after it.
 * Fails if the store begins no slot for hide keys (or for their deletes),
 * or ends none at a commit, a clear or a destroy. */
static void test_hide_cache_around_batches(void **state)
{
        char dir[] = "/tmp/rf-st-XXXXXX", err[256];
        rf_store_t *st = tmp_store(dir, NULL);
        rf_hide_cache_t *hc = rf_hide_cache_new(1 << 20);
        rf_txn_t *txn = rf_txn_new(st);
        (void)state;

        rf_store_set_hide_summary(st);
        rf_store_set_hide_cache(st, hc);
        put_hide(txn, "a");
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_true(hidden(st, "a"));
        uint64_t h0 = hide_hits(hc);
        assert_true(hidden(st, "a"));
        assert_int_equal(hide_hits(hc), h0 + 1); /* cached */

        /* written, not committed: the store's (old) hides, not kept */
        put_hide(txn, "b");
        assert_true(hidden(st, "a"));
        assert_true(hidden(st, "a"));
        assert_int_equal(hide_hits(hc), h0 + 1);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_true(hidden(st, "b"));
        assert_false(hidden(st, "a"));
        assert_int_equal(hide_hits(hc), h0 + 2); /* kept again */

        /* a dropped batch ends its slots too */
        put_hide(txn, "c");
        rf_txn_clear(txn);
        assert_true(hidden(st, "b")); /* the write dropped the entry */
        assert_true(hidden(st, "b"));
        assert_int_equal(hide_hits(hc), h0 + 3);
        put_hide(txn, "c");
        rf_txn_destroy(txn);
        assert_true(hidden(st, "b"));
        assert_true(hidden(st, "b"));
        assert_int_equal(hide_hits(hc), h0 + 4);

        /* a delete of the summary: no hides once committed */
        txn = rf_txn_new(st);
        rf_buf_t k = { 0 };
        rf_key_hide_prefix(&k, "u1");
        rf_txn_delete(txn, RF_CF_TOMBSTONES, k.data, k.len);
        rf_buf_free(&k);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        assert_false(hidden(st, "b"));
        rf_txn_destroy(txn);
        rf_store_set_hide_cache(st, NULL);
        rf_store_close(st);
        rf_hide_cache_destroy(hc);
        tmp_remove(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_pseudonym_is_hmac_of_the_salt),
                cmocka_unit_test(test_free_bytes),
                cmocka_unit_test(test_range_iterator),
                cmocka_unit_test(test_txn_get_reads_through_the_batch),
                cmocka_unit_test(test_iterator_through_merges_refused),
                cmocka_unit_test(test_no_wal_keeps_writes),
                cmocka_unit_test(test_wal_is_bounded),
                cmocka_unit_test(test_cf_epoch),
                cmocka_unit_test(test_table_formats),
                cmocka_unit_test(test_value_cache),
                cmocka_unit_test(test_warm),
                cmocka_unit_test(test_commit_forgets_written_versions),
                cmocka_unit_test(test_hide_cache_around_batches),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
