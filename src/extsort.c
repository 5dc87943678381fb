/*
 * recfresh - the external sorter (see extsort.h): sort slots with the first
 * 24 bytes of each key inline, a quicksort specialised for them, a
 * background spill of one half of the budget while the other fills, and a
 * merge of the run files that fails on one cut short.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/extsort.h"

#define RUN_IO_BUF     (64 * 1024) /* stdio buffer of a run file */
#define RUN_IO_BUF_MIN (4 * 1024)  /* ... when the merge reads many runs */
#define SPILL_PREFETCH 8           /* entries a spill fetches ahead */

/* One sort buffer: entries, and a slot per entry that the sort orders. */
typedef struct chunk {
        rf_buf_t arena;    /* entries: varint klen, key, varint vlen, value */
        struct slot *offs; /* one per entry in the arena, sorted by key */
        size_t n, cap;
} chunk_t;

/* Two chunks of half the budget each: while a thread sorts and writes the
 * full one as a run file, the caller fills the other. */
struct rf_sorter {
        const char *dir, *tag;
        size_t budget;
        chunk_t fill, bg;
        pthread_t th; /* spilling bg, when spilling */
        int spilling;
        size_t bg_run; /* the run file bg goes to */
        int bg_rc;     /* the last background spill's outcome */
        char bg_err[512];
        size_t run_cnt;
        size_t *run_len; /* entries in each run, for the merge to check */
};

typedef struct entry {
        const char *k, *v;
        size_t kl, vl;
} entry_t;

static void entry_at(const char *p, entry_t *e)
{
        rf_cur_t c = { p, p + 20, 0 };
        e->kl = rf_cur_varint(&c);
        e->k = c.p;
        c.p += e->kl;
        c.end = c.p + 20;
        e->vl = rf_cur_varint(&c);
        e->v = c.p;
}

int rf_sort_keycmp(const char *a, size_t al, const char *b, size_t bl)
{
        int c = memcmp(a, b, al < bl ? al : bl);
        return c ? c : (al > bl) - (al < bl);
}

/* An entry of the arena, with its key's first 24 bytes as three
 * big-endian numbers. Index keys share their entity's bytes and list keys
 * their subject's, so 8 bytes tied often and sent the comparison to the
 * arena, a cache miss per side; 24 bytes settle nearly every comparison
 * in the slot array itself. */
#define SLOT_WORDS 3
typedef struct slot {
        uint64_t prefix[SLOT_WORDS];
        size_t off;  /* of the entry in the arena */
        uint32_t kl; /* key length */
        uint32_t ko; /* key offset from off */
} slot_t;

static void slot_prefix(slot_t *sl, const char *k, size_t kl)
{
        for (size_t w = 0; w < SLOT_WORDS; w++) {
                uint64_t v = 0;
                for (size_t i = w * 8; i < w * 8 + 8; i++)
                        v = v << 8 | (i < kl ? (unsigned char)k[i] : 0);
                sl->prefix[w] = v;
        }
}

static int cmp_offs(const void *a, const void *b, void *arg)
{
        const char *base = arg;
        const slot_t *x = a, *y = b;
        int c;

        for (size_t w = 0; w < SLOT_WORDS; w++)
                if (x->prefix[w] != y->prefix[w])
                        return x->prefix[w] < y->prefix[w] ? -1 : 1;
        /* Equal prefixes (zero padding included): the whole keys decide. */
        c = rf_sort_keycmp(base + x->off + x->ko, x->kl, base + y->off + y->ko,
                           y->kl);
        return c ? c : (x->off > y->off) - (x->off < y->off); /* stable */
}

/* Sorts \p n slots: a quicksort specialised for slot_t, with the
 * comparison inlined and the slots moved in place. glibc's qsort_r sorts
 * structs this size indirectly and spent more time moving pointers and
 * copying than comparing. Past a depth of 2 log2(n) a range goes to qsort_r,
 * so no input makes it quadratic. */
static void slot_swap(slot_t *a, slot_t *b)
{
        slot_t t = *a;
        *a = *b;
        *b = t;
}

static void slot_sort(slot_t *a, size_t n, const char *base, int depth)
{
        while (n > 16) {
                if (depth-- <= 0) {
                        qsort_r(a, n, sizeof(*a), cmp_offs, (void *)base);
                        return;
                }
                /* Median of three to a[0], then a Hoare partition. */
                slot_t *m = &a[n / 2], *z = &a[n - 1];
                if (cmp_offs(m, a, (void *)base) < 0)
                        slot_swap(m, a);
                if (cmp_offs(z, m, (void *)base) < 0) {
                        slot_swap(z, m);
                        if (cmp_offs(m, a, (void *)base) < 0)
                                slot_swap(m, a);
                }
                slot_swap(a, m);
                size_t i = 0, j = n;
                for (;;) {
                        while (cmp_offs(&a[++i], a, (void *)base) < 0)
                                if (i == n - 1)
                                        break;
                        while (cmp_offs(a, &a[--j], (void *)base) < 0)
                                ;
                        if (i >= j)
                                break;
                        slot_swap(&a[i], &a[j]);
                }
                slot_swap(a, &a[j]);
                /* a[j] is in place: recurse into the smaller side. */
                if (j < n - j - 1) {
                        slot_sort(a, j, base, depth);
                        a += j + 1;
                        n -= j + 1;
                } else {
                        slot_sort(a + j + 1, n - j - 1, base, depth);
                        n = j;
                }
        }
        for (size_t i = 1; i < n; i++) {
                slot_t t = a[i];
                size_t j = i;
                for (; j && cmp_offs(&t, &a[j - 1], (void *)base) < 0; j--)
                        a[j] = a[j - 1];
                a[j] = t;
        }
}

void rf_sorter_run_path(const rf_sorter_t *s, size_t i, rf_buf_t *p)
{
        rf_buf_reset(p);
        rf_buf_printf(p, "%s/%s-run-%06zu", s->dir, s->tag, i);
}

/* Sorts what chunk \p c holds, writes it as run file \p run and empties
 * the chunk. */
static int chunk_spill(const rf_sorter_t *s, size_t run, chunk_t *c,
                       char *errstr, size_t errstr_size)
{
        rf_buf_t p = { 0 };
        FILE *fp;
        int rc = 0, depth = 0;

        for (size_t n = c->n; n; n >>= 1)
                depth += 2;
        slot_sort(c->offs, c->n, c->arena.data, depth);
        rf_sorter_run_path(s, run, &p);
        if (!(fp = fopen(p.data, "wb"))) {
                snprintf(errstr, errstr_size, "%s: %s", p.data,
                         strerror(errno));
                rf_buf_free(&p);
                return RF_EIO;
        }
        /* glibc ignores the size of a buffer it is to allocate itself
         * (it takes the file's block size, 4 KiB): pass one. */
        char *iobuf = rf_malloc(RUN_IO_BUF);
        setvbuf(fp, iobuf, _IOFBF, RUN_IO_BUF);
        for (size_t i = 0; i < c->n; i++) {
                entry_t e;
                const char *p0 = c->arena.data + c->offs[i].off;
                /* Sorted order visits the arena at random: fetch ahead so
                 * the cache misses overlap instead of queueing. */
                if (i + SPILL_PREFETCH < c->n)
                        __builtin_prefetch(c->arena.data +
                                           c->offs[i + SPILL_PREFETCH].off);
                entry_at(p0, &e);
                fwrite_unlocked(p0, 1, (size_t)(e.v + e.vl - p0), fp);
        }
        if (ferror(fp)) {
                snprintf(errstr, errstr_size, "%s: write failed", p.data);
                rc = RF_EIO;
        }
        if (fclose(fp) != 0 && !rc) {
                snprintf(errstr, errstr_size, "%s: %s", p.data,
                         strerror(errno));
                rc = RF_EIO;
        }
        free(iobuf);
        c->n = 0;
        rf_buf_reset(&c->arena);
        rf_buf_free(&p);
        return rc;
}

static void *spill_main(void *arg)
{
        rf_sorter_t *s = arg;

        s->bg_rc =
            chunk_spill(s, s->bg_run, &s->bg, s->bg_err, sizeof(s->bg_err));
        return NULL;
}

/* Waits for the background spill. @returns its outcome, with \p errstr
 * set (when not NULL) on failure. */
static int sorter_wait(rf_sorter_t *s, char *errstr, size_t errstr_size)
{
        if (s->spilling) {
                pthread_join(s->th, NULL);
                s->spilling = 0;
        }
        if (s->bg_rc && errstr)
                snprintf(errstr, errstr_size, "%s", s->bg_err);
        return s->bg_rc;
}

/* Gives chunk \p c the next run number, noting how many entries the run
 * will hold (on this thread: the spill thread never touches run_len). */
static size_t next_run(rf_sorter_t *s, const chunk_t *c)
{
        s->run_len = rf_realloc(s->run_len, (s->run_cnt + 1) * sizeof(size_t));
        s->run_len[s->run_cnt] = c->n;
        return s->run_cnt++;
}

/* Hands the full chunk to a spill thread (after the previous one is done)
 * and goes on with the other. */
static int sorter_spill_bg(rf_sorter_t *s, char *errstr, size_t errstr_size)
{
        int rc;

        if ((rc = sorter_wait(s, errstr, errstr_size)))
                return rc;
        chunk_t t = s->bg;
        s->bg = s->fill;
        s->fill = t;
        s->bg_run = next_run(s, &s->bg);
        if (pthread_create(&s->th, NULL, spill_main, s) == 0)
                s->spilling = 1;
        else
                spill_main(s); /* no thread: spill here */
        return 0;
}

/* Spills everything held, so that the run files hold every entry. */
int rf_sorter_finish(rf_sorter_t *s, char *errstr, size_t errstr_size)
{
        int rc;

        if ((rc = sorter_wait(s, errstr, errstr_size)))
                return rc;
        if (!s->fill.n)
                return 0;
        return chunk_spill(s, next_run(s, &s->fill), &s->fill, errstr,
                           errstr_size);
}

int rf_sorter_add(rf_sorter_t *s, const char *k, size_t kl, const char *v,
                  size_t vl, char *errstr, size_t errstr_size)
{
        chunk_t *c = &s->fill;
        int rc;

        /* Each chunk gets half the budget; slots count against it too. */
        if (c->n &&
            c->arena.len + (c->n + 1) * sizeof(*c->offs) + kl + vl >
                s->budget / 2 &&
            (rc = sorter_spill_bg(s, errstr, errstr_size)))
                return rc;
        if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 1024;
                c->offs = rf_realloc(c->offs, c->cap * sizeof(*c->offs));
        }
        slot_t *sl = &c->offs[c->n++];
        sl->off = c->arena.len;
        sl->kl = (uint32_t)kl;
        slot_prefix(sl, k, kl);
        rf_buf_put_varint(&c->arena, kl);
        sl->ko = (uint32_t)(c->arena.len - sl->off);
        rf_buf_append(&c->arena, k, kl);
        rf_buf_put_varint(&c->arena, vl);
        rf_buf_append(&c->arena, v, vl);
        return 0;
}

static void chunk_free(chunk_t *c)
{
        rf_buf_free(&c->arena);
        free(c->offs);
        memset(c, 0, sizeof(*c));
}

rf_sorter_t *rf_sorter_new(const char *dir, const char *tag, size_t budget)
{
        rf_sorter_t *s = rf_calloc(1, sizeof(*s));

        s->dir = dir;
        s->tag = tag;
        s->budget = budget;
        return s;
}

size_t rf_sorter_runs(const rf_sorter_t *s)
{
        return s->run_cnt;
}

void rf_sorter_destroy(rf_sorter_t *s)
{
        rf_buf_t p = { 0 };

        if (!s)
                return;

        sorter_wait(s, NULL, 0); /* an error was reported, or is moot */
        for (size_t i = 0; i < s->run_cnt; i++) {
                rf_sorter_run_path(s, i, &p);
                unlink(p.data);
        }
        rf_buf_free(&p);
        chunk_free(&s->fill);
        chunk_free(&s->bg);
        free(s->run_len);
        free(s);
}

/* One run file being merged. */
typedef struct mrun {
        FILE *fp;
        rf_buf_t k, v;
        int valid;
        int err;     /* cut short, too long, or did not read */
        size_t left; /* entries the run was written with, not read yet */
        char *iobuf; /* the stdio buffer, ours (see chunk_spill) */
} mrun_t;

/* Reads a varint whose first byte \p c was read already. Run files have one
 * reader each: the unlocked stdio calls save a lock per byte, which was a
 * tenth of a load. */
static int read_varint(FILE *fp, int c, uint64_t *out)
{
        uint64_t v = 0;
        int shift = 0;

        for (; c != EOF; c = getc_unlocked(fp)) {
                v |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        *out = v;
                        return 0;
                }
                shift += 7;
                if (shift > 63)
                        return -1;
        }
        return -1;
}

/* Reads \p n bytes into \p out (emptied first; its data never NULL, even
 * for 0 bytes). @returns -1 if the file ends before. */
static int read_bytes(FILE *fp, uint64_t n, rf_buf_t *out)
{
        char buf[8192];

        rf_buf_reset(out);
        rf_buf_append(out, "", 0);
        while (n) {
                size_t got = fread_unlocked(
                    buf, 1, n < sizeof(buf) ? n : sizeof(buf), fp);
                if (!got)
                        return -1;
                rf_buf_append(out, buf, got);
                n -= got;
        }
        return 0;
}

static void mrun_next(mrun_t *m)
{
        uint64_t kl, vl;

        m->valid = 0;
        /* The run ends after as many entries as it was written with: a
         * file cut short, even between two entries, fails the load. */
        int c = getc_unlocked(m->fp);
        if (c == EOF) {
                m->err = ferror(m->fp) != 0 || m->left != 0;
                return;
        }
        m->err = 1;
        if (!m->left)
                return; /* more than was written */
        if (read_varint(m->fp, c, &kl))
                return;
        if (read_bytes(m->fp, kl, &m->k) ||
            read_varint(m->fp, getc_unlocked(m->fp), &vl) ||
            read_bytes(m->fp, vl, &m->v))
                return;
        m->valid = 1;
        m->err = 0;
        m->left--;
}

/* The runs with an entry left, as a binary min-heap of run numbers by
 * (key, run): a load of millions of lists spills hundreds of runs per
 * sorter, and a linear scan of them for every entry made the index merge
 * quadratic (a 3M-list load spent 31 of its 35 minutes there). */
struct rf_merger {
        const rf_sorter_t *s; /* for the run files' names */
        mrun_t *runs;
        size_t cnt;
        size_t *heap, hn;
        int handed;    /* the heap's top was handed out: advance it first */
        size_t failed; /* 1 + the run that failed: every later call fails */
};

/* Whether run \p a's entry comes before run \p b's: the smaller key, the
 * earlier run on ties (equal keys in the order they were added). */
static int run_before(const rf_merger_t *mg, size_t a, size_t b)
{
        const mrun_t *ra = &mg->runs[a], *rb = &mg->runs[b];
        int c = rf_sort_keycmp(ra->k.data, ra->k.len, rb->k.data, rb->k.len);
        return c < 0 || (c == 0 && a < b);
}

static void heap_down(rf_merger_t *mg, size_t i)
{
        size_t *h = mg->heap;

        for (;;) {
                size_t l = 2 * i + 1, m = i;
                if (l < mg->hn && run_before(mg, h[l], h[m]))
                        m = l;
                if (l + 1 < mg->hn && run_before(mg, h[l + 1], h[m]))
                        m = l + 1;
                if (m == i)
                        return;
                size_t t = h[i];
                h[i] = h[m];
                h[m] = t;
                i = m;
        }
}

/* @returns RF_EIO (errstr set) if run \p i was cut short or unreadable. */
static int run_check(const rf_merger_t *mg, size_t i, char *errstr,
                     size_t errstr_size)
{
        rf_buf_t p = { 0 };

        if (!mg->runs[i].err)
                return 0;
        rf_sorter_run_path(mg->s, i, &p);
        snprintf(errstr, errstr_size, "%s: sort run truncated or unreadable",
                 p.data);
        rf_buf_free(&p);
        return RF_EIO;
}

void rf_merger_close(rf_merger_t *mg)
{
        if (!mg)
                return;
        for (size_t i = 0; i < mg->cnt; i++) {
                if (mg->runs[i].fp)
                        fclose(mg->runs[i].fp);
                free(mg->runs[i].iobuf);
                rf_buf_free(&mg->runs[i].k);
                rf_buf_free(&mg->runs[i].v);
        }
        free(mg->runs);
        free(mg->heap);
        free(mg);
}

int rf_merger_open(rf_sorter_t *s, rf_merger_t **mgp, char *errstr,
                   size_t errstr_size)
{
        rf_merger_t *mg;
        rf_buf_t p = { 0 };
        int rc;

        *mgp = NULL;
        if ((rc = rf_sorter_finish(s, errstr, errstr_size)))
                return rc;
        /* The merge needs little memory. */
        chunk_free(&s->fill);
        chunk_free(&s->bg);
        mg = rf_calloc(1, sizeof(*mg));
        mg->s = s;
        mg->cnt = s->run_cnt;
        mg->runs = rf_calloc(mg->cnt + 1, sizeof(*mg->runs));
        /* The read buffers share the sorting's budget, which is free now:
         * a file of any size (any number of runs) merges in bounded
         * memory. */
        size_t iobuf = mg->cnt ? s->budget / mg->cnt : RUN_IO_BUF;
        if (iobuf > RUN_IO_BUF)
                iobuf = RUN_IO_BUF;
        if (iobuf < RUN_IO_BUF_MIN)
                iobuf = RUN_IO_BUF_MIN;
        for (size_t i = 0; i < mg->cnt && rc == 0; i++) {
                rf_sorter_run_path(s, i, &p);
                if (!(mg->runs[i].fp = fopen(p.data, "rb"))) {
                        int e = errno;
                        snprintf(errstr, errstr_size, "%s: %s%s", p.data,
                                 strerror(e),
                                 e == EMFILE ? " (the merge opens every sort "
                                               "run: raise the open files "
                                               "limit, or load.memory_mb for "
                                               "fewer runs)"
                                             : "");
                        rc = RF_EIO;
                        break;
                }
                mg->runs[i].iobuf = rf_malloc(iobuf);
                setvbuf(mg->runs[i].fp, mg->runs[i].iobuf, _IOFBF, iobuf);
                mg->runs[i].left = s->run_len[i];
                mrun_next(&mg->runs[i]);
                rc = run_check(mg, i, errstr, errstr_size);
        }
        rf_buf_free(&p);
        if (rc) {
                rf_merger_close(mg);
                return rc;
        }
        mg->heap = rf_calloc(mg->cnt + 1, sizeof(*mg->heap));
        for (size_t i = 0; i < mg->cnt; i++)
                if (mg->runs[i].valid)
                        mg->heap[mg->hn++] = i;
        for (size_t i = mg->hn / 2; i-- > 0;)
                heap_down(mg, i);
        *mgp = mg;
        return 0;
}

int rf_merger_next(rf_merger_t *mg, const rf_buf_t **k, const rf_buf_t **v,
                   char *errstr, size_t errstr_size)
{
        int rc;

        if (mg->failed)
                return run_check(mg, mg->failed - 1, errstr, errstr_size);
        /* Only the run handed out last moved since: the others were
         * checked when they read their entries. */
        if (mg->handed) {
                size_t top = mg->heap[0];
                mg->handed = 0;
                mrun_next(&mg->runs[top]);
                if ((rc = run_check(mg, top, errstr, errstr_size))) {
                        mg->failed = top + 1;
                        return rc;
                }
                if (!mg->runs[top].valid)
                        mg->heap[0] = mg->heap[--mg->hn];
                heap_down(mg, 0);
        }
        if (!mg->hn)
                return 0;
        mg->handed = 1;
        *k = &mg->runs[mg->heap[0]].k;
        *v = &mg->runs[mg->heap[0]].v;
        return 1;
}
