/*
 * recfresh - what the recompute queue remembers of lists' valid entries
 * (see valid_memory.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "recfresh/common.h"
#include "recfresh/strset.h"
#include "recfresh/valid_memory.h"

typedef struct vslot {
        uint64_t list; /* hash of the list key, 0: empty */
        uint64_t tag;  /* of the version's run id and the runs epoch */
        rf_validmem_val_t val;
        uint32_t subject_gen; /* its subject's generation then */
} vslot_t;

/* Two slots a set (one 64-byte cache line): a list's hash picks the set,
 * the last list remembered in it is in front. Direct-mapped, 1M lists in
 * 2M slots lost 37% of their bounds to collisions (a second ban of the
 * bench's top items read them again); two ways lose about a tenth. */
#define WAYS 2
_Static_assert(WAYS == 2, "rf_validmem_put() moves lists within two ways");
_Static_assert(WAYS * sizeof(vslot_t) == 64, "a set is one cache line");

struct rf_validmem {
        void *raw;             /* the allocation `slot` is aligned in */
        vslot_t *slot;         /* sets of WAYS slots */
        size_t mask;           /* of the set index */
        uint32_t *subject_gen; /* per subject hash; shared on collision */
        size_t subject_mask;
        uint64_t *changed; /* lists written in the open batch */
        size_t changed_cnt, changed_size;
};

rf_validmem_t *rf_validmem_new(size_t slots)
{
        rf_validmem_t *m;
        size_t n = 1;

        if (!slots)
                return NULL;
        while (n <= slots / 2)
                n <<= 1;
        if (n < WAYS)
                n = WAYS;
        m = rf_calloc(1, sizeof(*m));
        m->raw = rf_calloc(1, n * sizeof(*m->slot) + 64);
        m->slot = (vslot_t *)(((uintptr_t)m->raw + 63) & ~(uintptr_t)63);
        m->mask = n / WAYS - 1;
        /* A subject has a few lists: a counter per four slots. */
        m->subject_mask = (n >= 4 ? n / 4 : 1) - 1;
        m->subject_gen =
            rf_calloc(m->subject_mask + 1, sizeof(*m->subject_gen));
        return m;
}

void rf_validmem_destroy(rf_validmem_t *m)
{
        if (!m)
                return;
        free(m->raw);
        free(m->subject_gen);
        free(m->changed);
        free(m);
}

static vslot_t *set_of(const rf_validmem_t *m, uint64_t h)
{
        return &m->slot[(h & m->mask) * WAYS];
}

static uint64_t version_tag(const char *run, size_t rlen, uint64_t epoch)
{
        return rf_hash_bytes(run, rlen) ^ (epoch * 0x9e3779b97f4a7c15ULL);
}

static uint32_t *subject_gen(const rf_validmem_t *m, const char *subject)
{
        return &m->subject_gen[rf_hash_str(subject) & m->subject_mask];
}

int rf_validmem_get(const rf_validmem_t *m, const char *subject,
                    const char *key, size_t base, const char *run, size_t rlen,
                    uint64_t epoch, rf_validmem_val_t *out)
{
        if (!m)
                return 0;
        uint64_t h = rf_hash_slot(key, base);
        const vslot_t *s = set_of(m, h);

        for (int w = 0; w < WAYS; w++, s++) {
                if (s->list != h)
                        continue;
                if (s->tag != version_tag(run, rlen, epoch) ||
                    s->subject_gen != *subject_gen(m, subject))
                        return 0;
                *out = s->val;
                return 1;
        }
        return 0;
}

void rf_validmem_put(rf_validmem_t *m, const char *subject, const char *key,
                     size_t base, const char *run, size_t rlen, uint64_t epoch,
                     rf_validmem_val_t val)
{
        if (!m)
                return;
        uint64_t h = rf_hash_slot(key, base);
        vslot_t *s = set_of(m, h);

        /* To the front; the list that was there goes behind it, and the
         * one behind, if any, leaves. */
        if (s[1].list == h)
                s[1].list = 0;
        if (s[0].list != h && s[0].list != 0)
                s[1] = s[0];
        s[0] = (vslot_t){ .list = h,
                          .tag = version_tag(run, rlen, epoch),
                          .val = val,
                          .subject_gen = *subject_gen(m, subject) };
}

void rf_validmem_subject_changed(rf_validmem_t *m, const char *subject)
{
        if (m)
                (*subject_gen(m, subject))++;
}

static void forget_hash(rf_validmem_t *m, uint64_t h)
{
        vslot_t *s = set_of(m, h);

        for (int w = 0; w < WAYS; w++)
                if (s[w].list == h)
                        s[w].list = 0;
}

void rf_validmem_forget(rf_validmem_t *m, const char *key, size_t klen)
{
        if (!m)
                return;
        uint64_t h = rf_hash_slot(key, klen);

        forget_hash(m, h);
        if (m->changed_cnt == m->changed_size) {
                m->changed_size = m->changed_size ? 2 * m->changed_size : 64;
                m->changed = rf_realloc(m->changed,
                                        m->changed_size * sizeof(*m->changed));
        }
        m->changed[m->changed_cnt++] = h;
}

void rf_validmem_settle(rf_validmem_t *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->changed_cnt; i++)
                forget_hash(m, m->changed[i]);
        m->changed_cnt = 0;
}
