/*
 * recfresh - the fast parser of a recs.lists.v1 value: yajl's callbacks
 * write the binary form (codec_list.c) straight from the text, with no tree.
 *
 * jansson builds a tree of every list: an object, a hash table and a string
 * for each of its hundred items, freed a moment later. That was two thirds
 * of a bulk load's CPU. This parser takes the common shape only and says so
 * when it does not; rf_list_from_json() then parses the value again with the
 * tree parser, which alone decides every rejection and its message. So the
 * rule here is narrow: take a value only if the tree parser would take it,
 * and write the same bytes. tests/unit/test_codec_list.c and the list fuzz
 * target hold the two parsers to it.
 *
 * Declined, left to the tree parser:
 *  - any backslash in the value: no escapes to decode (a lone surrogate,
 *    "\u0000"), every string is a slice of the input;
 *  - a \v or \f byte, which yajl takes for white space, and an
 *    unfinished token after the list, which yajl takes for the end;
 *  - a string that is not valid UTF-8 (yajl's own check lets overlong
 *    forms and surrogates through), or over lim->max_id_len;
 *  - a source_provenance other than null (stored re-serialised with
 *    sorted keys);
 *  - an unknown field whose value is an object or an array, more than
 *    UNKNOWN_MAX unknown fields in one object, any repeated key;
 *  - any value of the wrong type, a number out of range, a missing or empty
 *    required field, a bad timestamp, too many items, a key mismatch, and
 *    anything yajl rejects.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "recfresh/codec_json.h"
#include "recfresh/list.h"

/* Unknown scalar fields one object may have before we decline (their names
 * are kept to refuse a repeated one, as the tree parser does). */
#define UNKNOWN_MAX 8

/* A slice of the input. */
typedef struct slice {
        const char *p;
        size_t n;
} slice_t;

enum { /* root fields, in the binary header's order */
       R_SUBJECT,
       R_SURFACE,
       R_CONTEXT,
       R_REGION,
       R_LIST_ID,
       R_RUN_ID,
       R_MODEL,
       R_POLICY,
       R_FEATURES,
       R__STR_CNT,
       R_GENERATED = R__STR_CNT,
       R_EXPIRES,
       R_ITEMS,
       R__CNT
};

enum { /* item fields */
       I_ITEM,
       I_CREATOR,
       I_CAMPAIGN,
       I__STR_CNT,
       I_SCORE = I__STR_CNT,
       I_REASONS,
       I_PROVENANCE,
       I__CNT
};

enum {
        F_REQUIRED = 1 << 0,
        F_NONEMPTY = 1 << 1,
};

typedef struct field {
        const char *name;
        int flags;
} field_t;

static const field_t root_fields[R__CNT] = {
        [R_SUBJECT] = { "subject_id", F_REQUIRED | F_NONEMPTY },
        [R_SURFACE] = { "surface", F_REQUIRED | F_NONEMPTY },
        [R_CONTEXT] = { "context_key", 0 },
        [R_REGION] = { "region", 0 },
        [R_LIST_ID] = { "list_id", F_REQUIRED | F_NONEMPTY },
        [R_RUN_ID] = { "run_id", 0 },
        [R_MODEL] = { "model_version", F_REQUIRED },
        [R_POLICY] = { "policy_version", 0 },
        [R_FEATURES] = { "feature_set_version", 0 },
        [R_GENERATED] = { "generated_at", F_REQUIRED },
        [R_EXPIRES] = { "expires_at", F_REQUIRED },
        [R_ITEMS] = { "items", F_REQUIRED },
};

static const field_t item_fields[I__CNT] = {
        [I_ITEM] = { "item_id", F_REQUIRED | F_NONEMPTY },
        [I_CREATOR] = { "creator_id", F_NONEMPTY },
        [I_CAMPAIGN] = { "campaign_id", F_NONEMPTY },
        [I_SCORE] = { "score", F_REQUIRED },
        [I_REASONS] = { "reason_codes", 0 },
        [I_PROVENANCE] = { "source_provenance", 0 },
};

/* Where the parse is: which object or array the next event belongs to. */
typedef enum {
        AT_START,   /* before the root object */
        AT_ROOT,    /* in the root object */
        AT_ITEMS,   /* in "items" */
        AT_ITEM,    /* in one item */
        AT_REASONS, /* in an item's "reason_codes" */
        AT_END,     /* after the root object */
} at_t;

/* One object's keys: the known ones seen, and the unknown ones. */
typedef struct keys {
        unsigned seen; /* bit per known field (present, even if null) */
        int field;     /* the key just read: a field, or -1 if unknown */
        slice_t unknown[UNKNOWN_MAX];
        int unknown_cnt;
} keys_t;

typedef struct sp {
        const rf_limits_t *lim;
        at_t at;
        int depth;
        rf_json_yajl_t y;

        keys_t root;
        slice_t hdr[R__STR_CNT];
        int64_t generated_at, expires_at;
        size_t item_cnt;

        keys_t item;
        slice_t istr[I__STR_CNT];
        double score;
        slice_t reasons[16];
        size_t reason_cnt;
        rf_buf_t reasons_more; /* the reasons past 16, encoded */

        rf_buf_t items; /* the items' binary form, in order */
} sp_t;

/* Reads key \p k of an object with fields \p f: 0, or -1 to decline. */
static int key_read(keys_t *ks, const field_t *f, int cnt, slice_t k)
{
        for (int i = 0; i < cnt; i++) {
                if (strlen(f[i].name) == k.n && !memcmp(f[i].name, k.p, k.n)) {
                        if (ks->seen & (1u << i))
                                return -1; /* repeated */
                        ks->seen |= 1u << i;
                        ks->field = i;
                        return 0;
                }
        }
        if (!rf_utf8_valid((const unsigned char *)k.p, k.n))
                return -1;
        for (int i = 0; i < ks->unknown_cnt; i++)
                if (ks->unknown[i].n == k.n &&
                    !memcmp(ks->unknown[i].p, k.p, k.n))
                        return -1;
        if (ks->unknown_cnt == UNKNOWN_MAX)
                return -1;
        ks->unknown[ks->unknown_cnt++] = k;
        ks->field = -1;
        return 0;
}

/* 1 if every required field of \p f was given. */
static int keys_complete(const keys_t *ks, const field_t *f, int cnt)
{
        for (int i = 0; i < cnt; i++)
                if ((f[i].flags & F_REQUIRED) && !(ks->seen & (1u << i)))
                        return 0;
        return 1;
}

/* Checks a string value for field flags \p flags: 0, or -1 to decline. */
static int str_ok(const sp_t *sp, slice_t s, int flags)
{
        if ((flags & F_NONEMPTY) && s.n == 0)
                return -1;
        if (s.n > sp->lim->max_id_len)
                return -1;
        return rf_utf8_valid((const unsigned char *)s.p, s.n) ? 0 : -1;
}

static int time_ok(slice_t s, int64_t *msp)
{
        char tmp[64];

        if (s.n >= sizeof(tmp))
                return -1;
        memcpy(tmp, s.p, s.n);
        tmp[s.n] = '\0';
        return rf_time_parse(tmp, msp) ? -1 : 0;
}

/* Appends item \p sp->istr.. to the items' binary form. */
static void item_put(sp_t *sp)
{
        rf_buf_t *b = &sp->items;

        rf_buf_put_strn(b, sp->istr[I_ITEM].p, sp->istr[I_ITEM].n);
        rf_buf_append(b, &sp->score, sizeof(sp->score));
        rf_buf_put_strn(b, sp->istr[I_CREATOR].p, sp->istr[I_CREATOR].n);
        rf_buf_put_strn(b, sp->istr[I_CAMPAIGN].p, sp->istr[I_CAMPAIGN].n);
        rf_buf_put_varint(b, sp->reason_cnt);
        for (size_t j = 0; j < sp->reason_cnt && j < 16; j++)
                rf_buf_put_strn(b, sp->reasons[j].p, sp->reasons[j].n);
        if (sp->reason_cnt > 16)
                rf_buf_append(b, sp->reasons_more.data, sp->reasons_more.len);
        rf_buf_put_strn(b, "", 0); /* no provenance */
}

/* ---- yajl callbacks: each returns 1 to go on, 0 to decline ---------------*/

static int on_null(void *ctx)
{
        sp_t *sp = ctx;

        /* A null optional field is an absent one; a null required field
         * fails its type check. */
        if (sp->at == AT_ROOT)
                return sp->root.field < 0 ||
                       !(root_fields[sp->root.field].flags & F_REQUIRED);
        if (sp->at == AT_ITEM)
                return sp->item.field < 0 ||
                       !(item_fields[sp->item.field].flags & F_REQUIRED);
        return 0;
}

static int on_bool(void *ctx, int v)
{
        sp_t *sp = ctx;

        (void)v;
        /* Only an unknown field may be a boolean. */
        return (sp->at == AT_ROOT && sp->root.field < 0) ||
               (sp->at == AT_ITEM && sp->item.field < 0);
}

static int on_number(void *ctx, const char *s, size_t n)
{
        sp_t *sp = ctx;
        double v;

        if (rf_json_number(s, n, &v))
                return 0; /* jansson fails on it, wherever it is */
        if (sp->at == AT_ITEM && sp->item.field == I_SCORE) {
                sp->score = v;
                return isfinite(v);
        }
        return (sp->at == AT_ROOT && sp->root.field < 0) ||
               (sp->at == AT_ITEM && sp->item.field < 0);
}

static int on_string(void *ctx, const unsigned char *p, size_t n)
{
        sp_t *sp = ctx;
        slice_t s = { (const char *)p, n };
        int f;

        switch (sp->at) {
        case AT_ROOT:
                if ((f = sp->root.field) < 0)
                        return rf_utf8_valid(p, n);
                if (f < R__STR_CNT) {
                        if (str_ok(sp, s, root_fields[f].flags))
                                return 0;
                        sp->hdr[f] = s;
                        return 1;
                }
                if (f == R_GENERATED)
                        return !time_ok(s, &sp->generated_at);
                if (f == R_EXPIRES)
                        return !time_ok(s, &sp->expires_at);
                return 0;
        case AT_ITEM:
                if ((f = sp->item.field) < 0)
                        return rf_utf8_valid(p, n);
                if (f >= I__STR_CNT || str_ok(sp, s, item_fields[f].flags))
                        return 0;
                sp->istr[f] = s;
                return 1;
        case AT_REASONS:
                if (str_ok(sp, s, 0))
                        return 0;
                if (sp->reason_cnt < 16)
                        sp->reasons[sp->reason_cnt] = s;
                else
                        rf_buf_put_strn(&sp->reasons_more, s.p, s.n);
                sp->reason_cnt++;
                return 1;
        default:
                return 0;
        }
}

static int enter(sp_t *sp, at_t at)
{
        if (++sp->depth > sp->lim->max_json_depth)
                return 0;
        sp->at = at;
        return 1;
}

static int on_start_map(void *ctx)
{
        sp_t *sp = ctx;

        if (sp->at == AT_START) {
                memset(&sp->root, 0, sizeof(sp->root));
                return enter(sp, AT_ROOT);
        }
        if (sp->at == AT_ITEMS) {
                if (++sp->item_cnt > sp->lim->max_items_per_list)
                        return 0;
                memset(&sp->item, 0, sizeof(sp->item));
                memset(sp->istr, 0, sizeof(sp->istr));
                sp->reason_cnt = 0;
                rf_buf_reset(&sp->reasons_more);
                return enter(sp, AT_ITEM);
        }
        return 0; /* an object anywhere else */
}

static int on_map_key(void *ctx, const unsigned char *p, size_t n)
{
        sp_t *sp = ctx;
        slice_t k = { (const char *)p, n };

        if (sp->at == AT_ROOT)
                return !key_read(&sp->root, root_fields, R__CNT, k);
        if (sp->at == AT_ITEM)
                return !key_read(&sp->item, item_fields, I__CNT, k);
        return 0;
}

static int on_end_map(void *ctx)
{
        sp_t *sp = ctx;

        sp->depth--;
        if (sp->at == AT_ITEM) {
                if (!keys_complete(&sp->item, item_fields, I__CNT))
                        return 0;
                item_put(sp);
                sp->at = AT_ITEMS;
                return 1;
        }
        if (sp->at == AT_ROOT) {
                sp->at = AT_END;
                rf_json_yajl_end(&sp->y);
                return keys_complete(&sp->root, root_fields, R__CNT);
        }
        return 0;
}

static int on_start_array(void *ctx)
{
        sp_t *sp = ctx;

        if (sp->at == AT_ROOT && sp->root.field == R_ITEMS)
                return enter(sp, AT_ITEMS);
        if (sp->at == AT_ITEM && sp->item.field == I_REASONS)
                return enter(sp, AT_REASONS);
        return 0;
}

static int on_end_array(void *ctx)
{
        sp_t *sp = ctx;

        sp->depth--;
        if (sp->at == AT_ITEMS) {
                sp->at = AT_ROOT;
                return 1;
        }
        if (sp->at == AT_REASONS) {
                sp->at = AT_ITEM;
                return 1;
        }
        return 0;
}

static const yajl_callbacks callbacks = {
        .yajl_null = on_null,
        .yajl_boolean = on_bool,
        .yajl_number = on_number, /* the text: read as jansson does */
        .yajl_string = on_string,
        .yajl_start_map = on_start_map,
        .yajl_map_key = on_map_key,
        .yajl_end_map = on_end_map,
        .yajl_start_array = on_start_array,
        .yajl_end_array = on_end_array,
};

/* The header's strings, NUL-terminated, for rf_list_put_header(). */
static void header_put(sp_t *sp, rf_buf_t *out)
{
        char *copy[R__STR_CNT];
        rf_list_t h = { 0 };
        rf_buf_t tmp = { 0 };
        size_t off[R__STR_CNT];

        for (int i = 0; i < R__STR_CNT; i++) {
                off[i] = tmp.len;
                rf_buf_append(&tmp, sp->hdr[i].p ? sp->hdr[i].p : "",
                              sp->hdr[i].n);
                rf_buf_append(&tmp, "", 1);
        }
        for (int i = 0; i < R__STR_CNT; i++)
                copy[i] = tmp.data + off[i];
        h.subject_id = copy[R_SUBJECT];
        h.surface = copy[R_SURFACE];
        h.context_key = copy[R_CONTEXT];
        h.region = copy[R_REGION];
        h.list_id = copy[R_LIST_ID];
        h.run_id = copy[R_RUN_ID];
        h.model_version = copy[R_MODEL];
        h.policy_version = copy[R_POLICY];
        h.feature_set_version = copy[R_FEATURES];
        h.generated_at = sp->generated_at;
        h.expires_at = sp->expires_at;
        h.item_cnt = sp->item_cnt;
        rf_list_put_header(out, &h);
        rf_buf_free(&tmp);
}

int rf_list_from_json_stream(const char *key, size_t key_len, const char *buf,
                             size_t len, const rf_limits_t *lim,
                             rf_list_t **listp)
{
        sp_t sp = { 0 };
        rf_buf_t out = { 0 };
        int ok, r = 1;

        *listp = NULL;
        sp.lim = lim ? lim : &rf_limits_default;
        if (len > sp.lim->max_record_bytes ||
            (key && key_len > sp.lim->max_id_len))
                return 1;
        ok = rf_json_yajl_run(&sp.y, &callbacks, &sp, buf, len) &&
             sp.at == AT_END;
        if (ok && key && key_len > 0 &&
            (key_len != sp.hdr[R_SUBJECT].n ||
             memcmp(key, sp.hdr[R_SUBJECT].p, key_len)))
                ok = 0;
        if (ok) {
                header_put(&sp, &out);
                rf_buf_append(&out, sp.items.data, sp.items.len);
                r = rf_list_decode(out.data, out.len, listp) ? 1 : 0;
        }
        rf_buf_free(&out);
        rf_buf_free(&sp.items);
        rf_buf_free(&sp.reasons_more);
        return r;
}
