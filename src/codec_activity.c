/*
 * recfresh - the codec of recs.activity.v1 and the last-activity state it
 * feeds (see activity.h).
 *
 * As for events (codec_event.c): limits are applied before parsing, every
 * field is checked against what topics/recs.activity.v1.json says, and a
 * rejection names the field without quoting the record's bytes.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/list.h"
#include "recfresh/codec_json.h"
#include "recfresh/activity.h"
#include "recfresh/event.h"
#include "recfresh/metrics.h"
#include "recfresh/tombstone.h"

/* Reads string field \p name: required or not, an id (non-empty, at most
 * max_id_len, no NUL). @returns 0 (*sp NULL when absent) or -1. */
static int get_id(json_t *root, const char *name, int required,
                  const rf_limits_t *lim, const char **sp, size_t *lenp,
                  rf_rejection_t *rej)
{
        json_t *v = json_object_get(root, name);

        *sp = NULL;
        *lenp = 0;
        if (!v || (json_is_null(v) && !required)) {
                if (!required)
                        return 0;
                rf_reject(rej, RF_REJ_MISSING_FIELD, "missing field \"%s\"",
                          name);
                return -1;
        }
        if (!json_is_string(v)) {
                rf_reject(rej, RF_REJ_BAD_TYPE, "field \"%s\": expected string",
                          name);
                return -1;
        }
        *sp = json_string_value(v);
        *lenp = json_string_length(v);
        if (memchr(*sp, '\0', *lenp)) {
                rf_reject(rej, RF_REJ_BAD_VALUE,
                          "field \"%s\": contains a NUL byte", name);
                return -1;
        }
        if (*lenp == 0) {
                rf_reject(rej, RF_REJ_BAD_VALUE,
                          "field \"%s\": must not be empty", name);
                return -1;
        }
        if (*lenp > lim->max_id_len) {
                rf_reject(rej, RF_REJ_ID_TOO_LONG,
                          "field \"%s\": longer than %zu bytes", name,
                          lim->max_id_len);
                return -1;
        }
        return 0;
}

int rf_activity_parse(const char *key, size_t key_len, const char *buf,
                      size_t len, const rf_limits_t *lim, rf_activity_t *a,
                      rf_rejection_t *rej)
{
        const char *user, *surface, *at_s;
        size_t ulen, slen;
        json_t *root, *v;
        int64_t at;
        char *mem;

        memset(a, 0, sizeof(*a));
        rej->reason = RF_REJ_NONE;
        rej->msg[0] = '\0';
        if (!lim)
                lim = &rf_limits_default;
        if (key && key_len > lim->max_id_len) {
                rf_reject(rej, RF_REJ_ID_TOO_LONG,
                          "message key: longer than %zu bytes",
                          lim->max_id_len);
                return RF_EINVAL;
        }
        if (!(root = rf_json_load_object(buf, len, lim, rej)))
                return RF_EINVAL;
        if (get_id(root, "user_id", 1, lim, &user, &ulen, rej) ||
            get_id(root, "surface", 0, lim, &surface, &slen, rej))
                goto fail;
        if (!strcmp(user, RF_FALLBACK_SUBJECT)) {
                rf_reject(rej, RF_REJ_BAD_VALUE,
                          "field \"user_id\": \"%s\" is reserved for "
                          "fallback lists",
                          RF_FALLBACK_SUBJECT);
                goto fail;
        }
        if (!(v = json_object_get(root, "at"))) {
                rf_reject(rej, RF_REJ_MISSING_FIELD, "missing field \"at\"");
                goto fail;
        }
        if (!json_is_string(v)) {
                rf_reject(rej, RF_REJ_BAD_TYPE,
                          "field \"at\": expected string");
                goto fail;
        }
        at_s = json_string_value(v);
        if (strlen(at_s) != json_string_length(v) || rf_time_parse(at_s, &at)) {
                rf_reject(rej, RF_REJ_BAD_TIMESTAMP,
                          "field \"at\": not an RFC 3339 timestamp");
                goto fail;
        }
        if (key && key_len > 0 &&
            (key_len != ulen || memcmp(key, user, key_len))) {
                rf_reject(rej, RF_REJ_KEY_MISMATCH,
                          "message key does not match field \"user_id\"");
                goto fail;
        }
        mem = rf_malloc(ulen + slen + 2);
        memcpy(mem, user, ulen);
        mem[ulen] = '\0';
        if (surface)
                memcpy(mem + ulen + 1, surface, slen);
        mem[ulen + 1 + slen] = '\0';
        a->user_id = mem;
        a->surface = mem + ulen + 1;
        a->at = at;
        a->mem_ = mem;
        json_decref(root);
        return 0;
fail:
        json_decref(root);
        return RF_EINVAL;
}

void rf_activity_clear(rf_activity_t *a)
{
        if (!a)
                return;
        free(a->mem_);
        memset(a, 0, sizeof(*a));
}

void rf_key_activity(rf_buf_t *k, const char *subject)
{
        rf_buf_append(k, "A", 1);
        rf_buf_append(k, subject, strlen(subject));
}

int rf_activity_get(rf_store_t *st, rf_txn_t *txn, const char *subject,
                    int64_t *at)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int r;

        rf_key_activity(&k, subject);
        r = txn ? rf_txn_get(txn, RF_CF_ACTIVITY, k.data, k.len, &v)
                : rf_store_get(st, RF_CF_ACTIVITY, k.data, k.len, &v);
        if (r == 0) {
                rf_cur_t c = { v.data, v.data + v.len, 0 };
                *at = (int64_t)rf_cur_be64(&c);
                if (c.err)
                        r = RF_ENOENT;
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        return r;
}

int rf_activity_apply(rf_apply_ctx_t *ctx, const rf_activity_t *a)
{
        rf_buf_t k = { 0 }, v = { 0 };
        int64_t cur;
        int r;

        if ((r = rf_consent_purged(ctx->st, ctx->txn, a->user_id)) != 0)
                return r < 0 ? r : RF_EBLOCKED;
        r = rf_activity_get(ctx->st, ctx->txn, a->user_id, &cur);
        if (r == 0 && cur >= a->at)
                return RF_ESTALE;
        if (r != 0 && r != RF_ENOENT)
                return r;
        rf_key_activity(&k, a->user_id);
        rf_buf_put_be64(&v, (uint64_t)a->at);
        rf_txn_put(ctx->txn, RF_CF_ACTIVITY, k.data, k.len, v.data, v.len);
        rf_buf_free(&k);
        rf_buf_free(&v);
        return 0;
}
