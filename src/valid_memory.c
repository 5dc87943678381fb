/*
 * recfresh - what the recompute queue remembers of lists' valid entries
 * (see valid_memory.h).
 */
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

struct rf_validmem {
        vslot_t *slot;
        size_t mask;
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
        m = rf_calloc(1, sizeof(*m));
        m->slot = rf_calloc(n, sizeof(*m->slot));
        m->mask = n - 1;
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
        free(m->slot);
        free(m->subject_gen);
        free(m->changed);
        free(m);
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
        const vslot_t *s = &m->slot[h & m->mask];

        if (s->list != h || s->tag != version_tag(run, rlen, epoch) ||
            s->subject_gen != *subject_gen(m, subject))
                return 0;
        *out = s->val;
        return 1;
}

void rf_validmem_put(rf_validmem_t *m, const char *subject, const char *key,
                     size_t base, const char *run, size_t rlen, uint64_t epoch,
                     rf_validmem_val_t val)
{
        if (!m)
                return;
        uint64_t h = rf_hash_slot(key, base);

        m->slot[h & m->mask] =
            (vslot_t){ .list = h,
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
        vslot_t *s = &m->slot[h & m->mask];

        if (s->list == h)
                s->list = 0;
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
