/*
 * recfresh - a set of strings (see strset.h).
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/common.h"
#include "recfresh/strset.h"

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME  1099511628211ULL

uint64_t rf_hash_str(const char *s)
{
        uint64_t h = FNV_OFFSET;

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * FNV_PRIME;
        return h;
}

uint64_t rf_hash_bytes(const void *p, size_t n)
{
        const unsigned char *b = p;
        uint64_t h = FNV_OFFSET;

        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * FNV_PRIME;
        return h;
}

uint64_t rf_hash_slot(const void *p, size_t n)
{
        uint64_t h = rf_hash_bytes(p, n);

        return h ? h : 1;
}

/* @returns the slot holding \p s, or the empty slot where it would go. */
static size_t find(const rf_strset_t *set, const char *s, uint64_t h)
{
        size_t mask = set->size - 1, j = h & mask;

        while (set->slot[j].str &&
               (set->slot[j].hash != h || strcmp(set->slot[j].str, s)))
                j = (j + 1) & mask;
        return j;
}

static void grow(rf_strset_t *set)
{
        rf_strset_t next = { 0 };

        next.size = set->size ? set->size * 2 : 16;
        next.slot = rf_calloc(next.size, sizeof(*next.slot));
        for (size_t i = 0; i < set->size; i++)
                if (set->slot[i].str)
                        next.slot[find(&next, set->slot[i].str,
                                       set->slot[i].hash)] = set->slot[i];
        next.cnt = set->cnt;
        free(set->slot);
        *set = next;
}

int rf_strset_add(rf_strset_t *set, const char *s)
{
        uint64_t h = rf_hash_str(s);
        size_t j;

        if ((set->cnt + 1) * 2 > set->size)
                grow(set);
        j = find(set, s, h);
        if (set->slot[j].str)
                return 0;
        set->slot[j] = (rf_strslot_t){ h, rf_strdup(s) };
        set->cnt++;
        return 1;
}

int rf_strset_del(rf_strset_t *set, const char *s)
{
        size_t mask = set->size - 1, i, j;

        if (!set->cnt)
                return 0;
        i = find(set, s, rf_hash_str(s));
        if (!set->slot[i].str)
                return 0;
        free(set->slot[i].str);
        set->slot[i].str = NULL;
        set->cnt--;
        /* Backward shift: move up every later member of the run whose home
         * slot is not between the hole and it, so probes still find it. */
        for (j = (i + 1) & mask; set->slot[j].str; j = (j + 1) & mask) {
                size_t home = set->slot[j].hash & mask;
                if (((j - home) & mask) >= ((j - i) & mask)) {
                        set->slot[i] = set->slot[j];
                        set->slot[j].str = NULL;
                        i = j;
                }
        }
        return 1;
}

int rf_strset_has_hash(const rf_strset_t *set, const char *s, uint64_t hash)
{
        return set->cnt && set->slot[find(set, s, hash)].str != NULL;
}

int rf_strset_has(const rf_strset_t *set, const char *s)
{
        return set->cnt && rf_strset_has_hash(set, s, rf_hash_str(s));
}

void rf_strset_clear(rf_strset_t *set)
{
        for (size_t i = 0; i < set->size; i++)
                free(set->slot[i].str);
        free(set->slot);
        memset(set, 0, sizeof(*set));
}
