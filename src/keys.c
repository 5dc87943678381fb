/*
 * recfresh - key layouts (see keys.h for the map of every column family)
 * and the encoding of per-entity tombstone state.
 */
#include <string.h>

#include "recfresh/keys.h"
#include "recfresh/list.h"

static void put_sep(rf_buf_t *k)
{
        rf_buf_append(k, "", 1);
}

static void put_id(rf_buf_t *k, const char *s)
{
        rf_buf_append(k, s, strlen(s));
}

void rf_key_list(rf_buf_t *k, const char *subject, const char *surface,
                 const char *context)
{
        put_id(k, subject);
        put_sep(k);
        put_id(k, surface);
        put_sep(k);
        put_id(k, context ? context : "");
}

void rf_key_fallback(rf_buf_t *k, const char *surface, const char *context,
                     const char *region)
{
        rf_key_list(k, RF_FALLBACK_SUBJECT, surface, context);
        if (region && *region) {
                put_sep(k);
                put_id(k, region);
        }
}

void rf_key_list_stored(rf_buf_t *k, const char *subject, const char *surface,
                        const char *context, const char *region)
{
        if (!strcmp(subject, RF_FALLBACK_SUBJECT))
                rf_key_fallback(k, surface, context, region);
        else
                rf_key_list(k, subject, surface, context);
}

void rf_key_list_subject_prefix(rf_buf_t *k, const char *subject)
{
        put_id(k, subject);
        put_sep(k);
}

int rf_key_list_split(const char *key, size_t klen, rf_list_key_t *out)
{
        const char *end = key + klen, *a, *b;

        if (klen + 1 > sizeof(out->buf_))
                return RF_EINVAL;
        a = memchr(key, '\0', klen);
        if (!a)
                return RF_EINVAL;
        b = memchr(a + 1, '\0', (size_t)(end - a - 1));
        if (!b)
                return RF_EINVAL;
        memcpy(out->buf_, key, klen);
        out->buf_[klen] = '\0';
        out->subject = out->buf_;
        out->surface = out->buf_ + (a - key) + 1;
        out->context = out->buf_ + (b - key) + 1;
        return 0;
}

const char *rf_key_list_run(const char *key, size_t klen, const char *region,
                            size_t *base_len, size_t *run_len)
{
        const char *end = key + klen, *p = key;
        size_t fl = strlen(RF_FALLBACK_SUBJECT);
        /* NULs before the run id: three, or four after a fallback list's
         * region */
        int seps = 3 + (region && *region && klen > fl &&
                        !memcmp(key, RF_FALLBACK_SUBJECT, fl) && !key[fl]);

        for (int n = 0; n < seps; n++, p++)
                if (!(p = memchr(p, '\0', (size_t)(end - p)))) {
                        *base_len = klen;
                        *run_len = 0;
                        return NULL;
                }
        *base_len = (size_t)(p - 1 - key);
        *run_len = (size_t)(end - p);
        return p;
}

void rf_key_version(rf_buf_t *k, const char *run_id, size_t run_len,
                    const char *list_key, size_t klen)
{
        rf_buf_append(k, run_id, run_len);
        put_sep(k);
        rf_buf_append(k, list_key, klen);
}

void rf_key_index_prefix(rf_buf_t *k, char kind, const char *entity)
{
        rf_buf_append(k, &kind, 1);
        put_id(k, entity);
        put_sep(k);
}

void rf_key_index(rf_buf_t *k, char kind, const char *entity,
                  const char *list_key, size_t list_klen)
{
        rf_key_index_prefix(k, kind, entity);
        rf_buf_append(k, list_key, list_klen);
}

void rf_key_tomb1(rf_buf_t *k, char kind, const char *id)
{
        rf_buf_append(k, &kind, 1);
        put_id(k, id);
}

void rf_key_stock(rf_buf_t *k, const char *item, const char *region)
{
        rf_key_tomb1(k, RF_TOMB_STOCK, item);
        put_sep(k);
        put_id(k, region ? region : "");
}

void rf_key_hide_prefix(rf_buf_t *k, const char *user)
{
        rf_key_tomb1(k, RF_TOMB_HIDE, user);
        put_sep(k);
}

size_t rf_key_hide_user(const char *key, size_t klen)
{
        const char *nul;

        if (klen < 2 || key[0] != RF_TOMB_HIDE ||
            !(nul = memchr(key + 1, '\0', klen - 1)))
                return 0;
        return (size_t)(nul - (key + 1));
}

void rf_key_hide(rf_buf_t *k, const char *user, char what, const char *id)
{
        rf_key_hide_prefix(k, user);
        rf_buf_append(k, &what, 1);
        put_sep(k);
        put_id(k, id);
}

void rf_key_consent(rf_buf_t *k, const unsigned char pseudonym[16], int scope)
{
        char kind = RF_TOMB_CONSENT, s = (char)scope;

        rf_buf_append(k, &kind, 1);
        rf_buf_append(k, pseudonym, 16);
        rf_buf_append(k, &s, 1);
}

void rf_key_offset(rf_buf_t *k, const char *topic, int32_t partition)
{
        unsigned char p[4] = { (unsigned char)(partition >> 24),
                               (unsigned char)(partition >> 16),
                               (unsigned char)(partition >> 8),
                               (unsigned char)partition };
        put_id(k, topic);
        put_sep(k);
        rf_buf_append(k, p, 4);
}

void rf_key_seq(rf_buf_t *k, uint64_t seq)
{
        rf_buf_put_be64(k, seq);
}

uint64_t rf_key_seq_parse(const char *k, size_t klen)
{
        rf_cur_t c = { k, k + klen, 0 };
        uint64_t v = rf_cur_be64(&c);
        return c.err ? 0 : v;
}

void rf_tomb_encode(const rf_tomb_t *t, rf_buf_t *out)
{
        char a = t->active ? 1 : 0;

        rf_buf_append(out, &a, 1);
        rf_buf_put_be64(out, (uint64_t)t->occurred_at);
        rf_buf_put_str(out, t->event_id);
}

int rf_tomb_decode(const char *buf, size_t len, rf_tomb_t *t)
{
        rf_cur_t c = { buf, buf + len, 0 };
        size_t idlen;
        const char *id;

        t->active = rf_cur_u8(&c) != 0;
        t->occurred_at = (int64_t)rf_cur_be64(&c);
        id = rf_cur_str(&c, &idlen);
        if (c.err)
                return RF_EINVAL;
        if (idlen >= sizeof(t->event_id))
                idlen = sizeof(t->event_id) - 1;
        memcpy(t->event_id, id, idlen);
        t->event_id[idlen] = '\0';
        return 0;
}

int rf_tomb_newer(const rf_tomb_t *cur, int64_t occurred_at,
                  const char *event_id)
{
        if (occurred_at != cur->occurred_at)
                return occurred_at > cur->occurred_at;
        /* Same instant: the event id breaks the tie, so every replica and
         * every replay picks the same winner. */
        return strncmp(event_id, cur->event_id, sizeof(cur->event_id) - 1) > 0;
}
