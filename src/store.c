/*
 * recfresh - the RocksDB store.
 *
 * This file is the only one that speaks RocksDB's C API. It opens the column
 * families listed in store.h, wraps WriteBatchWithIndex as rf_txn_t (so the
 * apply path can read its own uncommitted writes while it batches many
 * records into one atomic write), and wraps iterators with a key prefix.
 *
 * Every `char *err` RocksDB hands back is copied into the caller's errstr (or
 * logged) and freed here with rocksdb_free().
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <rocksdb/c.h>

#include "recfresh/hide_cache.h"
#include "recfresh/list_cache.h"
#include "recfresh/log.h"
#include "recfresh/recompute.h"
#include "recfresh/store.h"
#include "recfresh/tomb_set.h"

#define STORE_FORMAT "1"

/* clang-format off */
static const char *cf_names[RF_CF__CNT] = {
        [RF_CF_META]       = "default",
        [RF_CF_LISTS]      = "lists",
        [RF_CF_INDEX]      = "index",
        [RF_CF_TOMBSTONES] = "tombstones",
        [RF_CF_OFFSETS]    = "offsets",
        [RF_CF_FANOUT]     = "fanout",
        [RF_CF_OUTBOX]     = "outbox",
        [RF_CF_QUEUE]      = "queue",
        [RF_CF_ACTIVITY]   = "activity",
        [RF_CF_RUNS]       = "runs",
        [RF_CF_VERSIONS]   = "versions",
};
/* clang-format on */

struct rf_store {
        rocksdb_t *db;
        rf_store_mode_t mode;
        int no_wal; /* rf_store_opts_t.no_wal: flush at close */
        char *path;
        char *secondary_dir; /* SECONDARY: private info-log dir */
        rocksdb_options_t *opts;
        rocksdb_options_t *cf_opts[RF_CF__CNT];
        rocksdb_block_based_table_options_t *bbto;      /* point-read CFs */
        rocksdb_block_based_table_options_t *bbto_scan; /* the index CF */
        rocksdb_cache_t *cache;
        rocksdb_column_family_handle_t *cf[RF_CF__CNT]; /* NULL: absent in
                                                         * an older store */
        rocksdb_readoptions_t *ropts;
        rocksdb_writeoptions_t *wopts;
        unsigned char salt[32];           /* pseudonym key, from meta "salt" */
        struct rf_tombset *tombset;       /* not owned (tomb_set.h) */
        struct rf_list_cache *list_cache; /* not owned (list_cache.h) */
        struct rf_hide_cache *hide_cache; /* not owned (hide_cache.h) */
        EVP_MD_CTX *hmac_in;  /* HMAC-SHA256 keyed with salt: SHA-256
                               * after the inner padded key, */
        EVP_MD_CTX *hmac_out; /* and after the outer one; each
                               * pseudonym copies them (no key setup,
                               * less than half EVP_MAC_CTX_dup) */
        int hide_summary;     /* meta "hide_summary": every user's
                               * hide summary key is kept (keys.h) */
        uint64_t id;          /* unique in the process (rf_store_id) */
        _Atomic uint64_t epoch[RF_CF__CNT]; /* rf_store_cf_epoch() */
        _Atomic uint64_t drops;             /* rf_store_drops() */
};

struct rf_txn {
        rf_store_t *st;
        rocksdb_writebatch_wi_t *wb;
        uint32_t touched; /* bit per column family written */
        uint32_t merged;  /* ... with a merge operand (rf_txn_merge()) */
        /* Version and incremental-list keys written, for the list cache
         * to forget (or move the token of) at the commit: each a column
         * family byte, a size_t length, then the key. Past VKEYS_MAX of a
         * kind, all of that kind (VK_*). */
        rf_buf_t vkeys;
        size_t vkey_cnt[2];
        unsigned vkeys_all;
        /* The hide cache's slots begun by the hide keys written
         * (uint32_t each) in cache hc, ended once the batch commits or is
         * dropped. */
        rf_buf_t hslots;
        struct rf_hide_cache *hc;
};

/* The kinds of key the list cache is told of. */
#define VK_VERSION 0
#define VK_LIST    1

#define VKEYS_MAX 4096

struct rf_iter {
        rocksdb_iterator_t *it;
        rocksdb_iterator_t *base; /* owned by `it` when txn-backed */
        rocksdb_readoptions_t *ropts;
        char *prefix;
        size_t plen;
        char *upper; /* exclusive upper bound (prefix + 1), or NULL */
        char *lower; /* inclusive lower bound, or NULL */
        size_t ulen;
        int check_upper; /* a txn iterator with an upper bound but no
                          * prefix: its batch side is not bounded */
        int refused;     /* through a batch holding merge operands of its
                          * column family: empty, status RF_EINVAL */
};

const char *rf_cf_name(rf_cf_t cf)
{
        return cf_names[cf];
}

/* Copies RocksDB's error into errstr, frees it. @returns RF_ESTORE. */
static int store_err(char *err, const char *what, char *errstr,
                     size_t errstr_size)
{
        if (errstr && errstr_size)
                snprintf(errstr, errstr_size, "%s: %s", what, err);
        rocksdb_free(err);
        return RF_ESTORE;
}

static void store_free_opts(rf_store_t *st)
{
        EVP_MD_CTX_free(st->hmac_in);
        EVP_MD_CTX_free(st->hmac_out);
        st->hmac_in = st->hmac_out = NULL;
        for (int i = 0; i < RF_CF__CNT; i++)
                if (st->cf_opts[i])
                        rocksdb_options_destroy(st->cf_opts[i]);
        if (st->opts)
                rocksdb_options_destroy(st->opts);
        if (st->bbto)
                rocksdb_block_based_options_destroy(st->bbto);
        if (st->bbto_scan)
                rocksdb_block_based_options_destroy(st->bbto_scan);
        if (st->cache)
                rocksdb_cache_destroy(st->cache);
        if (st->ropts)
                rocksdb_readoptions_destroy(st->ropts);
        if (st->wopts)
                rocksdb_writeoptions_destroy(st->wopts);
}

/* The table format. \p scanned: for the reverse index, which fan-outs
 * iterate: a bulk load writes SST files of up to 256 MiB, and the one-piece
 * index block of such a file (megabytes) did not stay in a block cache
 * shard, so every iterator read and decompressed it again (30% of a
 * fan-out's profile). Partitioned, its pieces are cached like data blocks.
 * Point-read column families keep the one-piece index: a partition is one
 * more cache lookup per read. */
static rocksdb_block_based_table_options_t *table_opts(rf_store_t *st,
                                                       int scanned)
{
        rocksdb_block_based_table_options_t *t =
            rocksdb_block_based_options_create();

        rocksdb_block_based_options_set_block_cache(t, st->cache);
        /* Point reads on tombstones are mostly misses: bloom filters turn
         * them into a few cache-resident bit tests. */
        rocksdb_block_based_options_set_filter_policy(
            t, rocksdb_filterpolicy_create_bloom_full(10));
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
            t, 1);
        if (scanned) {
                rocksdb_block_based_options_set_index_type(
                    t,
                    rocksdb_block_based_table_index_type_two_level_index_search);
                rocksdb_block_based_options_set_partition_filters(t, 1);
                rocksdb_block_based_options_set_metadata_block_size(t, 4096);
                rocksdb_block_based_options_set_pin_top_level_index_and_filter(
                    t, 1);
                return t;
        }
        /* A hash index in each data block: a point read finds its key
         * without the block's binary search. */
        rocksdb_block_based_options_set_data_block_index_type(
            t,
            rocksdb_block_based_table_data_block_index_type_binary_search_and_hash);
        rocksdb_block_based_options_set_data_block_hash_ratio(t, 0.75);
        return t;
}

/* ---- the queue's merge operator (rf_txn_merge()) -------------------------*/

static char *queue_full_merge(void *state, const char *key, size_t klen,
                              const char *base, size_t blen,
                              const char *const *ops, const size_t *lens, int n,
                              unsigned char *success, size_t *outlen)
{
        rf_buf_t out = { 0 };

        (void)state, (void)key, (void)klen;
        rf_queue_entry_merge(base, blen, ops, lens, n, &out);
        *success = 1;
        *outlen = out.len;
        return out.data ? out.data : rf_calloc(1, 1);
}

/* Deltas are not combined without their entry: RocksDB keeps them apart
 * and hands them all to the full merge. */
static char *queue_partial_merge(void *state, const char *key, size_t klen,
                                 const char *const *ops, const size_t *lens,
                                 int n, unsigned char *success, size_t *outlen)
{
        (void)state, (void)key, (void)klen, (void)ops, (void)lens, (void)n;
        *success = 0;
        *outlen = 0;
        return NULL;
}

static void merge_free(void *state, const char *value, size_t vlen)
{
        (void)state, (void)vlen;
        free((char *)value);
}

/* RocksDB's C wrapper calls it unconditionally. */
static void merge_state_free(void *state)
{
        (void)state;
}

/* Stored in the store's OPTIONS file and its SST properties: a rename makes
 * an existing store's deltas unreadable. */
static const char *queue_merge_name(void *state)
{
        (void)state;
        return "recfresh.queue_entry.v1";
}

static void store_build_opts(rf_store_t *st, const rf_store_opts_t *o)
{
        size_t cache_mb = o && o->block_cache_mb ? o->block_cache_mb : 256;
        size_t wbuf_mb = o && o->write_buffer_mb ? o->write_buffer_mb : 64;

        st->cache = rocksdb_cache_create_lru(cache_mb << 20);
        st->bbto = table_opts(st, 0);
        st->bbto_scan = table_opts(st, 1);

        st->opts = rocksdb_options_create();
        rocksdb_options_set_create_if_missing(st->opts, 1);
        rocksdb_options_set_create_missing_column_families(st->opts, 1);
        rocksdb_options_increase_parallelism(st->opts, 2);
        rocksdb_options_set_max_background_jobs(st->opts, 2);
        rocksdb_options_set_keep_log_file_num(st->opts, 4);
        /* A WAL file lives until every column family with data in it is
         * flushed. The small ones (offsets, outbox, ...) fill slowly, so
         * by default the WAL grew to 4 x all memtables (1.3 GB): twice a
         * 40,000-list store, replayed at each restart, and purged
         * subjects' records kept in it all that time. */
        if (o && o->max_wal_mb)
                rocksdb_options_set_max_total_wal_size(
                    st->opts, (uint64_t)o->max_wal_mb << 20);
        /* The MANIFEST logs SST boundary keys; roll it often so a purged
         * subject's keys do not outlive their files there for long. */
        rocksdb_options_set_max_manifest_file_size(
            st->opts, (o && o->manifest_roll_kb ? o->manifest_roll_kb : 4096)
                          << 10);
        if (st->mode == RF_STORE_SECONDARY)
                rocksdb_options_set_max_open_files(st->opts, -1);

        for (int i = 0; i < RF_CF__CNT; i++) {
                rocksdb_options_t *co = rocksdb_options_create();
                rocksdb_options_set_block_based_table_factory(
                    co, i == RF_CF_INDEX ? st->bbto_scan : st->bbto);
                /* The queue rewrites each pending entry at every reason
                 * added: a small memtable flushed its entries again and
                 * again, and left the level-0 files its reads go through. */
                rocksdb_options_set_write_buffer_size(
                    co,
                    (i == RF_CF_LISTS || i == RF_CF_INDEX || i == RF_CF_QUEUE
                         ? wbuf_mb
                         : 16)
                        << 20);
                rocksdb_options_set_compression(
                    co, o && o->no_compression ? rocksdb_no_compression
                                               : rocksdb_lz4_compression);
                if (i == RF_CF_VERSIONS)
                        /* Reads of a run's versions nearly always find
                         * the list: the bottom level's filters would only
                         * cost a cache lookup and a probe per read. */
                        rocksdb_options_set_optimize_filters_for_hits(co, 1);
                if (i == RF_CF_TOMBSTONES || i == RF_CF_QUEUE) {
                        /* Reads look up every entry's tombstones, and the
                         * fan-out every list's subject's queue entry: mostly
                         * misses, which a memtable bloom filter answers
                         * without a skiplist search. */
                        rocksdb_options_set_memtable_whole_key_filtering(co, 1);
                        rocksdb_options_set_memtable_prefix_bloom_size_ratio(
                            co, 0.1);
                }
                if (i == RF_CF_QUEUE) { /* owned by co from here */
                        /* The writer bounds each entry's chain of
                         * deltas itself (recompute.c, put_entry()). */
                        rocksdb_options_set_merge_operator(
                            co, rocksdb_mergeoperator_create(
                                    NULL, merge_state_free, queue_full_merge,
                                    queue_partial_merge, merge_free,
                                    queue_merge_name));
                }
                st->cf_opts[i] = co;
        }

        st->ropts = rocksdb_readoptions_create();
        st->wopts = rocksdb_writeoptions_create();
        rocksdb_writeoptions_set_sync(st->wopts, o ? o->sync : 0);
        if (o && o->no_wal) {
                rocksdb_writeoptions_disable_WAL(st->wopts, 1);
                st->no_wal = 1;
        }
}

/* Which of our column families exist on disk (all, for a new store). */
static int store_existing_cfs(rf_store_t *st, int present[RF_CF__CNT])
{
        size_t n = 0;
        char *err = NULL;
        char **names =
            rocksdb_list_column_families(st->opts, st->path, &n, &err);

        for (int i = 0; i < RF_CF__CNT; i++)
                present[i] = (st->mode == RF_STORE_PRIMARY);
        if (err) {
                /* A new store: RocksDB still hands back an empty array. */
                rocksdb_free(err);
                free(names);
                return st->mode == RF_STORE_PRIMARY ? 0 : RF_ENOENT;
        }
        for (size_t j = 0; j < n; j++)
                for (int i = 0; i < RF_CF__CNT; i++)
                        if (!strcmp(names[j], cf_names[i]))
                                present[i] = 1;
        rocksdb_list_column_families_destroy(names, n);
        return 0;
}

static int store_load_salt(rf_store_t *st, char *errstr, size_t errstr_size)
{
        rf_buf_t v = { 0 };
        int r = rf_store_get(st, RF_CF_META, "salt", 4, &v);

        if (r == 0 && v.len == sizeof(st->salt)) {
                memcpy(st->salt, v.data, sizeof(st->salt));
                rf_buf_free(&v);
                return 0;
        }
        rf_buf_free(&v);
        if (st->mode != RF_STORE_PRIMARY) {
                snprintf(errstr, errstr_size,
                         "%s: not a recfresh store (no salt)", st->path);
                return RF_EINVAL;
        }
        if (getrandom(st->salt, sizeof(st->salt), 0) !=
            (ssize_t)sizeof(st->salt)) {
                snprintf(errstr, errstr_size, "getrandom: %s", strerror(errno));
                return RF_EIO;
        }
        rf_txn_t *txn = rf_txn_new(st);
        rf_txn_put(txn, RF_CF_META, "salt", 4, (const char *)st->salt,
                   sizeof(st->salt));
        rf_txn_put(txn, RF_CF_META, "format", 6, STORE_FORMAT,
                   strlen(STORE_FORMAT));
        /* A new store has no hides: their summaries are complete. */
        rf_txn_put(txn, RF_CF_META, RF_META_HIDE_SUMMARY,
                   strlen(RF_META_HIDE_SUMMARY), "1", 1);
        r = rf_txn_commit(txn, errstr, errstr_size);
        rf_txn_destroy(txn);
        return r;
}

/* Keys the HMAC with the salt once (RFC 2104: SHA-256 over the key, padded
 * to the 64-byte block, xor 0x36 then 0x5c); rf_store_pseudonym copies the
 * two digest states. */
static int store_hmac_init(rf_store_t *st)
{
        unsigned char ipad[64], opad[64];
        int ok;

        _Static_assert(sizeof(st->salt) <= sizeof(ipad),
                       "an HMAC key longer than the block is hashed first");
        EVP_MD_CTX_free(st->hmac_in);
        EVP_MD_CTX_free(st->hmac_out);
        for (size_t i = 0; i < sizeof(ipad); i++) {
                unsigned char k = i < sizeof(st->salt) ? st->salt[i] : 0;
                ipad[i] = k ^ 0x36;
                opad[i] = k ^ 0x5c;
        }
        st->hmac_in = EVP_MD_CTX_new();
        st->hmac_out = EVP_MD_CTX_new();
        ok = st->hmac_in && st->hmac_out &&
             EVP_DigestInit_ex(st->hmac_in, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(st->hmac_in, ipad, sizeof(ipad)) &&
             EVP_DigestInit_ex(st->hmac_out, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(st->hmac_out, opad, sizeof(opad));
        OPENSSL_cleanse(ipad, sizeof(ipad));
        OPENSSL_cleanse(opad, sizeof(opad));
        return ok ? 0 : -1;
}

/* Removes directory \p name (relative to \p parent_fd) and the plain files
 * in it, never following a symbolic link: not even one swapped in for it
 * after it was checked. */
static void rm_flat_dir_at(int parent_fd, const char *name)
{
        int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        struct dirent *de;
        DIR *d;

        if (fd < 0)
                return;
        if (!(d = fdopendir(fd))) {
                close(fd);
                return;
        }
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
        unlinkat(parent_fd, name, AT_REMOVEDIR);
}

/* Removes a directory of plain files (the secondary's info logs). */
static void rm_flat_dir(const char *dir)
{
        if (dir)
                rm_flat_dir_at(AT_FDCWD, dir);
}

/* A secondary instance's private directory (its info logs) is
 * $TMPDIR/recfresh-secondary-PID-XXXXXX, removed at close. A process
 * killed before it closed leaves its directory: the next secondary open
 * removes those of processes no longer running. */
#define SECONDARY_PREFIX "recfresh-secondary-"

static const char *secondary_parent(void)
{
        const char *t = getenv("TMPDIR");

        return t && *t ? t : "/tmp";
}

static void secondary_sweep(const char *parent)
{
        size_t plen = strlen(SECONDARY_PREFIX);
        DIR *d = opendir(parent);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                struct stat sb;
                char *end;
                long pid;
                if (strncmp(de->d_name, SECONDARY_PREFIX, plen) != 0)
                        continue;
                pid = strtol(de->d_name + plen, &end, 10);
                if (end == de->d_name + plen || *end != '-' || pid <= 0)
                        continue; /* not ours to judge */
                /* A process in another pid namespace sharing the
                 * directory looks dead from here: its info log goes. */
                if (!rf_pid_gone(pid))
                        continue; /* running (or not ours to signal) */
                if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) ||
                    !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid())
                        continue;
                rm_flat_dir_at(dirfd(d), de->d_name);
        }
        closedir(d);
}

/* Makes this process's private directory under \p parent into \p out.
 * @returns 0 or -1 with errno set. */
static int secondary_mkdir(const char *parent, char *out, size_t size)
{
        int n = snprintf(out, size, "%s/" SECONDARY_PREFIX "%ld-XXXXXX", parent,
                         (long)getpid());

        if (n < 0 || (size_t)n >= size) {
                errno = ENAMETOOLONG;
                return -1;
        }
        secondary_sweep(parent);
        return mkdtemp(out) ? 0 : -1;
}

rf_store_t *rf_store_open(const char *path, rf_store_mode_t mode,
                          const rf_store_opts_t *opts, char *errstr,
                          size_t errstr_size)
{
        static _Atomic uint64_t next_id = 1;
        rf_store_t *st = rf_calloc(1, sizeof(*st));
        const char *names[RF_CF__CNT];
        const rocksdb_options_t *copts[RF_CF__CNT];
        rocksdb_column_family_handle_t *handles[RF_CF__CNT];
        int present[RF_CF__CNT], idx[RF_CF__CNT], n = 0;
        char *err = NULL;

        st->id = atomic_fetch_add(&next_id, 1);
        st->mode = mode;
        st->path = rf_strdup(path);
        store_build_opts(st, opts);

        if (!(opts && opts->no_wal)) {
                char mark[PATH_MAX];
                snprintf(mark, sizeof(mark), "%s/" RF_STORE_INCOMPLETE, path);
                if (access(mark, F_OK) == 0) {
                        snprintf(errstr, errstr_size,
                                 "%s: left by a replay that did not finish "
                                 "(its state is partial): run the replay "
                                 "again",
                                 path);
                        goto fail;
                }
        }

        if (mode == RF_STORE_PRIMARY && mkdir(path, 0755) && errno != EEXIST) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                goto fail;
        }
        if (store_existing_cfs(st, present)) {
                snprintf(errstr, errstr_size,
                         "%s: no recfresh store here (run the daemon first)",
                         path);
                goto fail;
        }
        for (int i = 0; i < RF_CF__CNT; i++) {
                if (!present[i])
                        continue;
                idx[n] = i;
                names[n] = cf_names[i];
                copts[n] = st->cf_opts[i];
                n++;
        }

        switch (mode) {
        case RF_STORE_PRIMARY:
                st->db = rocksdb_open_column_families(st->opts, path, n, names,
                                                      copts, handles, &err);
                break;
        case RF_STORE_SECONDARY: {
                char tmpl[PATH_MAX];
                const char *tmp = secondary_parent();
                /* A TMPDIR that is gone or unusable: /tmp, as before it
                 * was asked. */
                if (secondary_mkdir(tmp, tmpl, sizeof(tmpl)) != 0 &&
                    (!strcmp(tmp, "/tmp") ||
                     secondary_mkdir("/tmp", tmpl, sizeof(tmpl)) != 0)) {
                        snprintf(errstr, errstr_size,
                                 "cannot make a private directory for a "
                                 "secondary under %s or /tmp: %s",
                                 tmp, strerror(errno));
                        goto fail;
                }
                st->secondary_dir = rf_strdup(tmpl);
                st->db = rocksdb_open_as_secondary_column_families(
                    st->opts, path, st->secondary_dir, n, names, copts, handles,
                    &err);
                break;
        }
        case RF_STORE_READONLY:
                st->db = rocksdb_open_for_read_only_column_families(
                    st->opts, path, n, names, copts, handles, 0, &err);
                break;
        }
        if (err) {
                store_err(err, path, errstr, errstr_size);
                goto fail;
        }
        for (int j = 0; j < n; j++)
                st->cf[idx[j]] = handles[j];
        if (store_load_salt(st, errstr, errstr_size))
                goto fail;
        rf_buf_t hs = { 0 };
        st->hide_summary = rf_store_get(st, RF_CF_META, RF_META_HIDE_SUMMARY,
                                        strlen(RF_META_HIDE_SUMMARY), &hs) == 0;
        rf_buf_free(&hs);
        if (store_hmac_init(st)) {
                snprintf(errstr, errstr_size, "HMAC-SHA256: not available");
                goto fail;
        }
        return st;

fail:
        rf_store_close(st);
        return NULL;
}

int rf_store_flush(rf_store_t *st, char *errstr, size_t errstr_size)
{
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        int r = 0;

        rocksdb_flushoptions_set_wait(fo, 1);
        for (int i = 0; i < RF_CF__CNT && r == 0; i++) {
                char *err = NULL;
                if (!st->cf[i])
                        continue;
                rocksdb_flush_cf(st->db, fo, st->cf[i], &err);
                if (err)
                        r = store_err(err, "flush", errstr, errstr_size);
        }
        rocksdb_flushoptions_destroy(fo);
        return r;
}

void rf_store_close(rf_store_t *st)
{
        if (!st)
                return;
        if (st->db && st->no_wal) {
                /* Without a WAL the memtables are the only copy. (RocksDB
                 * flushes them at close too; this does not depend on it.
                 * Callers that must know call rf_store_flush() first.) */
                char err[512];
                if (rf_store_flush(st, err, sizeof(err)))
                        rf_log_error("store", "%s: %s", st->path, err);
        }
        for (int i = 0; i < RF_CF__CNT; i++)
                if (st->cf[i])
                        rocksdb_column_family_handle_destroy(st->cf[i]);
        if (st->db)
                rocksdb_close(st->db);
        store_free_opts(st);
        rm_flat_dir(st->secondary_dir);
        free(st->secondary_dir);
        free(st->path);
        free(st);
}

int rf_store_catch_up(rf_store_t *st, char *errstr, size_t errstr_size)
{
        char *err = NULL;

        if (st->mode != RF_STORE_SECONDARY)
                return 0;
        rocksdb_try_catch_up_with_primary(st->db, &err);
        if (err)
                return store_err(err, "catch up with primary", errstr,
                                 errstr_size);
        /* The primary may have written anything. */
        for (int cf = 0; cf < RF_CF__CNT; cf++)
                atomic_fetch_add_explicit(&st->epoch[cf], 1,
                                          memory_order_release);
        if (st->list_cache) {
                rf_list_cache_clear(st->list_cache);
                rf_list_cache_inc_all(st->list_cache);
        }
        rf_hide_cache_clear(st->hide_cache);
        return 0;
}

uint64_t rf_store_id(const rf_store_t *st)
{
        return st->id;
}

uint64_t rf_store_cf_epoch(rf_store_t *st, rf_cf_t cf)
{
        return atomic_load_explicit(&st->epoch[cf], memory_order_acquire);
}

uint64_t rf_store_drops(rf_store_t *st)
{
        return atomic_load_explicit(&st->drops, memory_order_acquire);
}

int rf_store_get(rf_store_t *st, rf_cf_t cf, const char *key, size_t klen,
                 rf_buf_t *val)
{
        rf_pinned_t p = { 0 };

        /* Pinned: one copy, from the block cache into val (a plain get
         * copies twice and allocates for each). */
        return rf_pinned_copy(rf_store_get_pinned(st, cf, key, klen, &p), &p,
                              val);
}

int rf_store_get_pinned(rf_store_t *st, rf_cf_t cf, const char *key,
                        size_t klen, rf_pinned_t *val)
{
        rocksdb_pinnableslice_t *ps;
        char *err = NULL;

        rf_pinned_release(val);
        if (!st->cf[cf])
                return RF_ENOENT;
        ps = rocksdb_get_pinned_cf(st->db, st->ropts, st->cf[cf], key, klen,
                                   &err);
        if (err) {
                rf_log_error("store", "get from %s: %s", cf_names[cf], err);
                rocksdb_free(err);
                return RF_ESTORE;
        }
        if (!ps)
                return RF_ENOENT;
        val->data = rocksdb_pinnableslice_value(ps, &val->len);
        val->handle_ = ps;
        return 0;
}

void rf_pinned_release(rf_pinned_t *val)
{
        if (val->handle_)
                rocksdb_pinnableslice_destroy(val->handle_);
        memset(val, 0, sizeof(*val));
}

int rf_pinned_copy(int r, rf_pinned_t *p, rf_buf_t *out)
{
        rf_buf_reset(out);
        if (r == 0)
                rf_buf_append(out, p->data, p->len);
        rf_pinned_release(p);
        return r;
}

void rf_store_pseudonym(const rf_store_t *st, const char *subject_id,
                        unsigned char out[16])
{
        unsigned char inner[32], md[32];
        unsigned int len = 0;
        EVP_MD_CTX *c = EVP_MD_CTX_new();

        if (!c || !EVP_MD_CTX_copy_ex(c, st->hmac_in) ||
            !EVP_DigestUpdate(c, subject_id, strlen(subject_id)) ||
            !EVP_DigestFinal_ex(c, inner, &len) || len != sizeof(inner) ||
            !EVP_MD_CTX_copy_ex(c, st->hmac_out) ||
            !EVP_DigestUpdate(c, inner, sizeof(inner)) ||
            !EVP_DigestFinal_ex(c, md, &len) || len != sizeof(md))
                abort(); /* out of memory: no pseudonym is no key */
        EVP_MD_CTX_free(c);
        memcpy(out, md, 16);
}

/* Flushes \p cf and compacts all of it, bottommost level too (kForce = 2):
 * by default a manual compaction leaves that level, and with it the
 * deletion markers, which carry the very keys a privacy purge must remove,
 * and merge operands not yet folded into their value. */
static void compact_cf(rf_store_t *st, rf_cf_t cf, char **err)
{
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();

        rocksdb_flushoptions_set_wait(fo, 1);
        rocksdb_compactoptions_set_bottommost_level_compaction(co, 2);
        rocksdb_flush_cf(st->db, fo, st->cf[cf], err);
        if (!*err)
                rocksdb_compact_range_cf_opt(st->db, st->cf[cf], co, NULL, 0,
                                             NULL, 0);
        rocksdb_compactoptions_destroy(co);
        rocksdb_flushoptions_destroy(fo);
}

int rf_store_exists(const char *dir)
{
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s/CURRENT", dir);
        return access(path, F_OK) == 0;
}

int rf_store_compact_cf(rf_store_t *st, rf_cf_t cf, char *errstr,
                        size_t errstr_size)
{
        char *err = NULL;

        if (st->cf[cf])
                compact_cf(st, cf, &err);
        return err ? store_err(err, "compact", errstr, errstr_size) : 0;
}

int64_t rf_store_merge_operands(rf_store_t *st, rf_cf_t cf)
{
        char *props, *p;
        int64_t n = -1;

        if (!st->cf[cf])
                return 0;
        props = rocksdb_property_value_cf(
            st->db, st->cf[cf], "rocksdb.aggregated-table-properties");
        if (props && (p = strstr(props, "# merge operands=")))
                n = strtoll(p + strlen("# merge operands="), NULL, 10);
        else if (props && !*props)
                n = 0; /* no table files */
        free(props);
        return n;
}

int rf_store_compact_all(rf_store_t *st, char *errstr, size_t errstr_size)
{
        char *err = NULL;

        for (int i = 0; i < RF_CF__CNT && !err; i++)
                if (st->cf[i])
                        compact_cf(st, (rf_cf_t)i, &err);
        if (!err) {
                /* One more version edit (a flushed meta record) lets the
                 * MANIFEST roll past the edits that named files whose
                 * boundary keys were purged keys: an idle store makes none. */
                rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
                char ts[8];
                int64_t now = rf_now_ms();
                for (int i = 7; i >= 0; i--, now >>= 8)
                        ts[i] = (char)(now & 0xff);
                rocksdb_flushoptions_set_wait(fo, 1);
                rocksdb_put_cf(st->db, st->wopts, st->cf[RF_CF_META],
                               "compacted_at", 12, ts, 8, &err);
                if (!err)
                        rocksdb_flush_cf(st->db, fo, st->cf[RF_CF_META], &err);
                rocksdb_flushoptions_destroy(fo);
        }
        if (err)
                return store_err(err, "compact", errstr, errstr_size);
        return 0;
}

void rf_store_set_tombset(rf_store_t *st, struct rf_tombset *ts)
{
        st->tombset = ts;
}

struct rf_tombset *rf_store_tombset(const rf_store_t *st)
{
        return st->tombset;
}

void rf_store_set_list_cache(rf_store_t *st, struct rf_list_cache *lc)
{
        st->list_cache = lc;
}

struct rf_list_cache *rf_store_list_cache(const rf_store_t *st)
{
        return st->list_cache;
}

void rf_store_set_hide_cache(rf_store_t *st, struct rf_hide_cache *hc)
{
        st->hide_cache = hc;
}

struct rf_hide_cache *rf_store_hide_cache(const rf_store_t *st)
{
        return st->hide_cache;
}

int rf_store_hide_summary(const rf_store_t *st)
{
        return st->hide_summary;
}

void rf_store_set_hide_summary(rf_store_t *st)
{
        st->hide_summary = 1;
}

int64_t rf_store_free_bytes(const char *dir)
{
        char path[PATH_MAX];
        struct statvfs sv;
        char *slash;

        snprintf(path, sizeof(path), "%s", dir);
        while (statvfs(path, &sv) != 0) {
                if (errno != ENOENT)
                        return -1;
                if (!(slash = strrchr(path, '/'))) {
                        if (!strcmp(path, "."))
                                return -1;
                        snprintf(path, sizeof(path), "."); /* relative */
                        continue;
                }
                if (slash == path)
                        slash[1] = '\0'; /* "/" */
                else
                        *slash = '\0';
        }
        return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

int64_t rf_store_property_int(rf_store_t *st, int cf, const char *name)
{
        uint64_t v = 0, sum = 0;

        if (cf >= 0) {
                if (!st->cf[cf] ||
                    rocksdb_property_int_cf(st->db, st->cf[cf], name, &v))
                        return -1;
                return (int64_t)v;
        }
        for (int i = 0; i < RF_CF__CNT; i++) {
                if (st->cf[i] &&
                    !rocksdb_property_int_cf(st->db, st->cf[i], name, &v))
                        sum += v;
        }
        return (int64_t)sum;
}

size_t rf_store_block_cache_usage(rf_store_t *st)
{
        return rocksdb_cache_get_usage(st->cache);
}

size_t rf_store_block_cache_capacity(rf_store_t *st)
{
        return rocksdb_cache_get_capacity(st->cache);
}

struct rf_warm {
        rocksdb_readoptions_t *ro;
        rocksdb_iterator_t *it;
};

rf_warm_t *rf_store_warm_new(rf_store_t *st, rf_cf_t cf)
{
        rf_warm_t *w = rf_calloc(1, sizeof(*w));

        w->ro = rocksdb_readoptions_create();
        /* The files are read in order: large reads, not one per block. */
        rocksdb_readoptions_set_readahead_size(w->ro, 2 << 20);
        /* An iterator reads the store as it was when it was made. */
        w->it = rocksdb_create_iterator_cf(st->db, w->ro, st->cf[cf]);
        return w;
}

uint64_t rf_store_warm_run(rf_warm_t *w, const atomic_int *stop)
{
        uint64_t n = 0;

        for (rocksdb_iter_seek_to_first(w->it);
             rocksdb_iter_valid(w->it) && !atomic_load(stop);
             rocksdb_iter_next(w->it))
                n++;
        return n;
}

void rf_store_warm_destroy(rf_warm_t *w)
{
        if (!w)
                return;
        rocksdb_iter_destroy(w->it);
        rocksdb_readoptions_destroy(w->ro);
        free(w);
}

const char *rf_store_path(const rf_store_t *st)
{
        return st->path;
}

int rf_store_checkpoint(rf_store_t *st, const char *dir, char *errstr,
                        size_t errstr_size)
{
        rocksdb_checkpoint_t *cp;
        char *err = NULL;

        if (st->mode != RF_STORE_PRIMARY) {
                snprintf(errstr, errstr_size,
                         "%s: a checkpoint needs the store opened read-write",
                         st->path);
                return RF_ESTORE;
        }
        cp = rocksdb_checkpoint_object_create(st->db, &err);
        if (err)
                return store_err(err, "checkpoint", errstr, errstr_size);
        /* log_size_for_flush 0: flush memtables so the WAL is not needed. */
        rocksdb_checkpoint_create(cp, dir, 0, &err);
        rocksdb_checkpoint_object_destroy(cp);
        if (err)
                return store_err(err, dir, errstr, errstr_size);
        return 0;
}

int rf_store_set_salt(rf_store_t *st, const unsigned char salt[32],
                      char *errstr, size_t errstr_size)
{
        rf_txn_t *txn = rf_txn_new(st);
        int r;

        rf_txn_put(txn, RF_CF_META, "salt", 4, (const char *)salt,
                   sizeof(st->salt));
        r = rf_txn_commit(txn, errstr, errstr_size);
        rf_txn_destroy(txn);
        if (r == 0) {
                memcpy(st->salt, salt, sizeof(st->salt));
                if (store_hmac_init(st)) {
                        snprintf(errstr, errstr_size,
                                 "HMAC-SHA256: not available");
                        r = RF_ESTORE;
                }
        }
        return r;
}

/* ---- transactions -------------------------------------------------------*/

rf_txn_t *rf_txn_new(rf_store_t *st)
{
        rf_txn_t *txn = rf_calloc(1, sizeof(*txn));

        txn->st = st;
        /* overwrite_keys: a later write to a key replaces the earlier one in
         * the index, so reads through the batch see the latest value. */
        txn->wb = rocksdb_writebatch_wi_create(0, 1);
        return txn;
}

static void vkeys_reset(rf_txn_t *txn)
{
        /* They hold subject ids: a purge's must not linger in the heap. */
        if (txn->vkeys.len)
                explicit_bzero(txn->vkeys.data, txn->vkeys.len);
        if (txn->vkeys.size > 65536)
                rf_buf_free(&txn->vkeys);
        rf_buf_reset(&txn->vkeys);
        txn->vkey_cnt[VK_VERSION] = txn->vkey_cnt[VK_LIST] = 0;
        txn->vkeys_all = 0;
}

/* A write of a run version or of an incremental list: once the batch
 * commits, the read path's cache forgets the version, or moves the list's
 * token (list_cache.h). */
static void vkey_written(rf_txn_t *txn, rf_cf_t cf, const char *key,
                         size_t klen)
{
        int kind = cf == RF_CF_LISTS ? VK_LIST : VK_VERSION;

        if ((cf != RF_CF_VERSIONS && cf != RF_CF_LISTS) ||
            !txn->st->list_cache || (txn->vkeys_all & (1u << kind)))
                return;
        if (txn->vkey_cnt[kind] == VKEYS_MAX) {
                /* A bulk write: clear the cache, or move every token,
                 * instead. The keys of the kind kept so far stay: one
                 * forget or move more each. */
                txn->vkeys_all |= 1u << kind;
                return;
        }
        char c = (char)cf;
        rf_buf_append(&txn->vkeys, &c, 1);
        rf_buf_append(&txn->vkeys, &klen, sizeof(klen));
        rf_buf_append(&txn->vkeys, key, klen);
        txn->vkey_cnt[kind]++;
}

/* After the commit's write: no cached version outlives its write. */
static void vkeys_forget(rf_txn_t *txn)
{
        struct rf_list_cache *lc = txn->st->list_cache;

        if (lc && (txn->vkeys_all & (1u << VK_VERSION)))
                rf_list_cache_clear(lc);
        if (lc && (txn->vkeys_all & (1u << VK_LIST)))
                rf_list_cache_inc_all(lc);
        for (size_t off = 0; lc && off < txn->vkeys.len;) {
                rf_cf_t cf = (rf_cf_t)txn->vkeys.data[off++];
                size_t klen;
                memcpy(&klen, txn->vkeys.data + off, sizeof(klen));
                off += sizeof(klen);
                if (cf == RF_CF_LISTS)
                        rf_list_cache_inc_written(lc, txn->vkeys.data + off,
                                                  klen);
                else
                        rf_list_cache_forget(lc, txn->vkeys.data + off, klen);
                off += klen;
        }
        vkeys_reset(txn);
}

/* Ends the slots the batch began, in the cache that began them. */
static void hslots_end(rf_txn_t *txn)
{
        uint32_t slot;

        for (size_t off = 0; off < txn->hslots.len; off += sizeof(slot)) {
                memcpy(&slot, txn->hslots.data + off, sizeof(slot));
                rf_hide_cache_end(txn->hc, slot);
        }
        rf_buf_reset(&txn->hslots);
}

/* A write of a user's hide key: from now until the batch commits or is
 * dropped, the hide cache keeps nothing of the user (hide_cache.h). */
static void hide_written(rf_txn_t *txn, const char *key, size_t klen)
{
        size_t len;

        if (!txn->st->hide_cache || !(len = rf_key_hide_user(key, klen)))
                return;
        if (txn->hc != txn->st->hide_cache) {
                hslots_end(txn); /* another cache since: the old's end */
                txn->hc = txn->st->hide_cache;
        }
        uint32_t slot = rf_hide_cache_begin(txn->hc, key + 1, len);
        rf_buf_append(&txn->hslots, &slot, sizeof(slot));
}

void rf_txn_put(rf_txn_t *txn, rf_cf_t cf, const char *key, size_t klen,
                const char *val, size_t vlen)
{
        txn->touched |= 1u << cf;
        vkey_written(txn, cf, key, klen);
        /* Before the commit: a read that skips the user's hides lookup
         * (rf_tombset_may_hide()) never misses a hide it could see. */
        if (cf == RF_CF_TOMBSTONES && txn->st->tombset)
                rf_tombset_hide_written(txn->st->tombset, key, klen);
        if (cf == RF_CF_TOMBSTONES)
                hide_written(txn, key, klen);
        rocksdb_writebatch_wi_put_cf(txn->wb, txn->st->cf[cf], key, klen, val,
                                     vlen);
}

void rf_txn_delete(rf_txn_t *txn, rf_cf_t cf, const char *key, size_t klen)
{
        txn->touched |= 1u << cf;
        vkey_written(txn, cf, key, klen);
        if (cf == RF_CF_TOMBSTONES)
                hide_written(txn, key, klen);
        rocksdb_writebatch_wi_delete_cf(txn->wb, txn->st->cf[cf], key, klen);
}

void rf_txn_merge(rf_txn_t *txn, rf_cf_t cf, const char *key, size_t klen,
                  const char *val, size_t vlen)
{
        assert(cf == RF_CF_QUEUE); /* the one with a merge operator */
        txn->touched |= 1u << cf;
        txn->merged |= 1u << cf;
        rocksdb_writebatch_wi_merge_cf(txn->wb, txn->st->cf[cf], key, klen, val,
                                       vlen);
}

int rf_txn_get(rf_txn_t *txn, rf_cf_t cf, const char *key, size_t klen,
               rf_buf_t *val)
{
        char *err = NULL;
        size_t vlen = 0;
        char *v;

        /* Nothing of this column family in the batch: the store's answer
         * is the batch's, read with one copy (rf_store_get()) instead of
         * two and two allocations. */
        if (!(txn->touched & (1u << cf)))
                return rf_store_get(txn->st, cf, key, klen, val);
        rf_buf_reset(val);
        v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(
            txn->wb, txn->st->db, txn->st->ropts, txn->st->cf[cf], key, klen,
            &vlen, &err);
        if (err) {
                rf_log_error("store", "get from %s: %s", cf_names[cf], err);
                rocksdb_free(err);
                return RF_ESTORE;
        }
        if (!v)
                return RF_ENOENT;
        rf_buf_append(val, v, vlen);
        rocksdb_free(v);
        return 0;
}

size_t rf_txn_count(const rf_txn_t *txn)
{
        return (size_t)rocksdb_writebatch_wi_count(txn->wb);
}

int rf_txn_commit(rf_txn_t *txn, char *errstr, size_t errstr_size)
{
        char *err = NULL;

        if (rocksdb_writebatch_wi_count(txn->wb) == 0)
                return 0;
        rocksdb_write_writebatch_wi(txn->st->db, txn->st->wopts, txn->wb, &err);
        if (err)
                return store_err(err, "write", errstr, errstr_size);
        /* After the write: a reader that sees the old epoch and caches
         * what it read then re-reads on its next lookup. */
        for (int cf = 0; cf < RF_CF__CNT; cf++)
                if (txn->touched & (1u << cf))
                        atomic_fetch_add_explicit(&txn->st->epoch[cf], 1,
                                                  memory_order_release);
        vkeys_forget(txn);
        hslots_end(txn);
        rocksdb_writebatch_wi_clear(txn->wb);
        txn->touched = txn->merged = 0;
        return 0;
}

/* A batch with writes ends without a commit. */
static void txn_dropped(rf_txn_t *txn)
{
        if (rocksdb_writebatch_wi_count(txn->wb))
                atomic_fetch_add_explicit(&txn->st->drops, 1,
                                          memory_order_release);
}

void rf_txn_clear(rf_txn_t *txn)
{
        txn_dropped(txn);
        rocksdb_writebatch_wi_clear(txn->wb);
        txn->touched = txn->merged = 0;
        vkeys_reset(txn);
        hslots_end(txn);
}

void rf_txn_destroy(rf_txn_t *txn)
{
        if (!txn)
                return;
        txn_dropped(txn);
        rocksdb_writebatch_wi_destroy(txn->wb);
        rf_buf_free(&txn->vkeys);
        hslots_end(txn);
        rf_buf_free(&txn->hslots);
        free(txn);
}

/* ---- iterators ----------------------------------------------------------*/

/* The smallest key greater than every key with this prefix: the prefix with
 * its last non-0xff byte incremented. @returns 0 if there is none. */
static size_t prefix_successor(const char *prefix, size_t plen, char *out)
{
        memcpy(out, prefix, plen);
        while (plen > 0) {
                if ((unsigned char)out[plen - 1] != 0xff) {
                        out[plen - 1]++;
                        return plen;
                }
                plen--;
        }
        return 0;
}

/* Builds an iterator; \p from (may be NULL) is a lower bound to seek to
 * instead of the prefix, \p to (may be NULL) an exclusive upper bound when
 * there is no prefix. */
static rf_iter_t *iter_make(rf_store_t *st, rf_txn_t *txn, rf_cf_t cf,
                            const char *prefix, size_t plen, const char *from,
                            size_t flen, const char *to, size_t tlen)
{
        rf_iter_t *it = rf_calloc(1, sizeof(*it));

        it->ropts = rocksdb_readoptions_create();
        if (flen) {
                /* RocksDB skips what lies below the bound (the deletion
                 * markers of consumed queue entries) instead of walking it. */
                it->lower = rf_malloc(flen);
                memcpy(it->lower, from, flen);
                rocksdb_readoptions_set_iterate_lower_bound(it->ropts,
                                                            it->lower, flen);
        }
        if (plen) {
                it->prefix = rf_malloc(plen);
                memcpy(it->prefix, prefix, plen);
                it->plen = plen;
                it->upper = rf_malloc(plen);
                it->ulen = prefix_successor(prefix, plen, it->upper);
                if (it->ulen)
                        rocksdb_readoptions_set_iterate_upper_bound(
                            it->ropts, it->upper, it->ulen);
        } else if (tlen) {
                it->upper = rf_malloc(tlen);
                memcpy(it->upper, to, tlen);
                it->ulen = tlen;
                it->check_upper = txn != NULL;
                rocksdb_readoptions_set_iterate_upper_bound(it->ropts,
                                                            it->upper, tlen);
        }
        if (!st->cf[cf])
                return it; /* absent column family: empty iterator */
        /* rf_txn_merge(): RocksDB 7's batch iterators cannot merge, and
         * would show a merge operand as the value. */
        if (txn && (txn->merged & (1u << cf))) {
                rf_log_error("store",
                             "iterator over %s through a batch with merge "
                             "operands refused",
                             cf_names[cf]);
                it->refused = 1;
                return it;
        }
        it->base = rocksdb_create_iterator_cf(st->db, it->ropts, st->cf[cf]);
        if (txn)
                it->it = rocksdb_writebatch_wi_create_iterator_with_base_cf(
                    txn->wb, it->base, st->cf[cf]);
        else
                it->it = it->base;
        if (flen)
                rf_iter_seek(it, from, flen);
        else
                rf_iter_seek(it, prefix, plen);
        return it;
}

rf_iter_t *rf_iter_new(rf_store_t *st, rf_txn_t *txn, rf_cf_t cf,
                       const char *prefix, size_t plen)
{
        return iter_make(st, txn, cf, prefix, plen, NULL, 0, NULL, 0);
}

rf_iter_t *rf_iter_new_range(rf_store_t *st, rf_txn_t *txn, rf_cf_t cf,
                             const char *from, size_t flen, const char *to,
                             size_t tlen)
{
        return iter_make(st, txn, cf, NULL, 0, from, flen, to, tlen);
}

void rf_iter_set_prefix(rf_iter_t *it, const char *prefix, size_t plen)
{
        /* Bounds are fixed when RocksDB makes the iterator. */
        if (it->upper || it->lower)
                return;
        it->prefix = rf_realloc(it->prefix, plen ? plen : 1);
        memcpy(it->prefix, prefix, plen);
        it->plen = plen;
}

int rf_txn_touched(const rf_txn_t *txn, rf_cf_t cf)
{
        return !!(txn->touched & (1u << cf));
}

void rf_iter_seek(rf_iter_t *it, const char *key, size_t klen)
{
        if (!it->it)
                return;
        if (klen)
                rocksdb_iter_seek(it->it, key, klen);
        else
                rocksdb_iter_seek_to_first(it->it);
}

int rf_iter_valid(rf_iter_t *it)
{
        size_t klen;
        const char *k;

        if (!it->it || !rocksdb_iter_valid(it->it))
                return 0;
        if (!it->plen && !it->check_upper)
                return 1;
        /* The batch side of a txn iterator is not bounded: check. */
        k = rocksdb_iter_key(it->it, &klen);
        if (it->check_upper) {
                int c = memcmp(k, it->upper, klen < it->ulen ? klen : it->ulen);
                return c < 0 || (c == 0 && klen < it->ulen);
        }
        return klen >= it->plen && !memcmp(k, it->prefix, it->plen);
}

void rf_iter_next(rf_iter_t *it)
{
        rocksdb_iter_next(it->it);
}

void rf_iter_seek_for_prev(rf_iter_t *it, const char *key, size_t klen)
{
        if (it->it)
                rocksdb_iter_seek_for_prev(it->it, key, klen);
}

void rf_iter_prev(rf_iter_t *it)
{
        if (it->it)
                rocksdb_iter_prev(it->it);
}

const char *rf_iter_key(rf_iter_t *it, size_t *klen)
{
        return rocksdb_iter_key(it->it, klen);
}

const char *rf_iter_value(rf_iter_t *it, size_t *vlen)
{
        return rocksdb_iter_value(it->it, vlen);
}

int rf_iter_status(rf_iter_t *it)
{
        char *err = NULL;

        if (it->refused)
                return RF_EINVAL;
        if (!it->it)
                return 0;
        rocksdb_iter_get_error(it->it, &err);
        if (err) {
                rf_log_error("store", "iterator: %s", err);
                rocksdb_free(err);
                return RF_ESTORE;
        }
        return 0;
}

void rf_iter_destroy(rf_iter_t *it)
{
        if (!it)
                return;
        if (it->it)
                rocksdb_iter_destroy(it->it); /* also frees a wrapped base */
        rocksdb_readoptions_destroy(it->ropts);
        free(it->prefix);
        free(it->upper);
        free(it->lower);
        free(it);
}

/* ---- bulk: SST files and their ingestion --------------------------------*/

struct rf_sst {
        rocksdb_envoptions_t *env;
        rocksdb_sstfilewriter_t *w;
        uint64_t entries;
};

rf_sst_t *rf_sst_new(rf_store_t *st, rf_cf_t cf, const char *path, char *errstr,
                     size_t errstr_size)
{
        rf_sst_t *s = rf_calloc(1, sizeof(*s));
        char *err = NULL;

        s->env = rocksdb_envoptions_create();
        /* The column family's own options: same table format, bloom filter
         * and compression as the files RocksDB writes itself. */
        s->w = rocksdb_sstfilewriter_create(s->env, st->cf_opts[cf]);
        rocksdb_sstfilewriter_open(s->w, path, &err);
        if (err) {
                store_err(err, path, errstr, errstr_size);
                rf_sst_destroy(s);
                return NULL;
        }
        return s;
}

int rf_sst_put(rf_sst_t *s, const char *key, size_t klen, const char *val,
               size_t vlen, char *errstr, size_t errstr_size)
{
        char *err = NULL;

        rocksdb_sstfilewriter_put(s->w, key, klen, val, vlen, &err);
        if (err)
                return store_err(err, "sst put", errstr, errstr_size);
        s->entries++;
        return 0;
}

uint64_t rf_sst_size(rf_sst_t *s)
{
        uint64_t size = 0;

        rocksdb_sstfilewriter_file_size(s->w, &size);
        return size;
}

int rf_sst_finish(rf_sst_t *s, char *errstr, size_t errstr_size)
{
        char *err = NULL;

        if (!s->entries)
                return RF_ENOENT; /* RocksDB refuses empty files */
        rocksdb_sstfilewriter_finish(s->w, &err);
        if (err)
                return store_err(err, "sst finish", errstr, errstr_size);
        return 0;
}

void rf_sst_destroy(rf_sst_t *s)
{
        if (!s)
                return;
        if (s->w)
                rocksdb_sstfilewriter_destroy(s->w);
        if (s->env)
                rocksdb_envoptions_destroy(s->env);
        free(s);
}

int rf_store_ingest(rf_store_t *st, rf_cf_t cf, const char *const *paths,
                    size_t n, char *errstr, size_t errstr_size)
{
        rocksdb_ingestexternalfileoptions_t *io;
        char *err = NULL;

        if (!n)
                return 0;
        if (st->mode != RF_STORE_PRIMARY || !st->cf[cf]) {
                snprintf(errstr, errstr_size, "ingest: store not writable");
                return RF_EINVAL;
        }
        io = rocksdb_ingestexternalfileoptions_create();
        /* Hard-link instead of copying; the job's files stay until the
         * caller removes them, so a failed commit can retry the job.
         * Global seqno: the files may overlap keys written since. */
        rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
        rocksdb_ingestexternalfileoptions_set_allow_global_seqno(io, 1);
        rocksdb_ingestexternalfileoptions_set_allow_blocking_flush(io, 1);
        rocksdb_ingest_external_file_cf(st->db, st->cf[cf], paths, n, io, &err);
        rocksdb_ingestexternalfileoptions_destroy(io);
        if (err)
                return store_err(err, "ingest", errstr, errstr_size);
        atomic_fetch_add_explicit(&st->epoch[cf], 1, memory_order_release);
        if (cf == RF_CF_VERSIONS && st->list_cache)
                rf_list_cache_clear(st->list_cache);
        if (cf == RF_CF_LISTS)
                rf_list_cache_inc_all(st->list_cache);
        if (cf == RF_CF_TOMBSTONES)
                rf_hide_cache_clear(st->hide_cache);
        return 0;
}
