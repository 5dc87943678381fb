/*
 * recfresh - the codecs of a ranked list: the JSON published on
 * recs.lists.v1 and the compact binary form kept in RocksDB.
 *
 * Binary form, version 1 (strings are rf_buf_put_str: varint length, bytes,
 * NUL, so a decoder can point into the buffer):
 *
 *   u8      version (1)
 *   str     subject_id, surface, context_key, region, list_id, run_id,
 *           model_version, policy_version, feature_set_version
 *   be64    generated_at, expires_at (int64 ms, two's complement)
 *   varint  item_cnt
 *   item_cnt times:
 *     str     item_id
 *     8 bytes score (a double, host byte order)
 *     str     creator_id, campaign_id
 *     varint  reason code count, then that many str
 *     str     provenance (compact JSON text, "" if absent)
 *
 * Decoding is on the read path, so it makes one allocation: the list, its
 * entries, the reason-code pointers and a copy of the encoded bytes that
 * every string points into. It walks the bytes twice, once to validate and
 * size, once to fill; corrupt input is RF_EINVAL, never a crash.
 *
 * The JSON form has two parsers. The streaming one (codec_list_stream.c,
 * yajl) takes the common shape and declines the rest; this file's tree
 * parser (jansson) takes everything else and decides every rejection. Both
 * write the binary form straight from the JSON and decode that, so a list
 * from JSON has the same single-block layout as one read from the store.
 */
#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/codec_json.h"
#include "recfresh/event.h" /* rf_json_too_deep */
#include "recfresh/list.h"

#define LIST_FORMAT_V1 1

/* Fewest bytes one encoded item takes: four empty strings (2 bytes each),
 * the score and an empty reason-code count. Bounds item_cnt before any
 * allocation is sized from it. */
#define MIN_ITEM_BYTES (4 * 2 + 8 + 1)

/* Fewest bytes of an encoded string (the empty one: length and NUL). */
#define MIN_STR_BYTES 2

/* ---- binary form -------------------------------------------------------*/

static void put_i64(rf_buf_t *b, int64_t v)
{
        rf_buf_put_be64(b, (uint64_t)v);
}

static int64_t get_i64(rf_cur_t *c)
{
        uint64_t u = rf_cur_be64(c);
        int64_t v;

        memcpy(&v, &u, sizeof(v)); /* two's complement, no UB */
        return v;
}

void rf_list_put_header(rf_buf_t *b, const rf_list_t *l)
{
        uint8_t version = LIST_FORMAT_V1;

        rf_buf_append(b, &version, 1);
        rf_buf_put_str(b, l->subject_id);
        rf_buf_put_str(b, l->surface);
        rf_buf_put_str(b, l->context_key);
        rf_buf_put_str(b, l->region);
        rf_buf_put_str(b, l->list_id);
        rf_buf_put_str(b, l->run_id);
        rf_buf_put_str(b, l->model_version);
        rf_buf_put_str(b, l->policy_version);
        rf_buf_put_str(b, l->feature_set_version);
        put_i64(b, l->generated_at);
        put_i64(b, l->expires_at);
        rf_buf_put_varint(b, l->item_cnt);
}

void rf_list_encode(const rf_list_t *list, rf_buf_t *out)
{
        rf_list_put_header(out, list);
        for (size_t i = 0; i < list->item_cnt; i++) {
                const rf_entry_t *e = &list->items[i];

                rf_buf_put_str(out, e->item_id);
                rf_buf_append(out, &e->score, sizeof(e->score));
                rf_buf_put_str(out, e->creator_id);
                rf_buf_put_str(out, e->campaign_id);
                rf_buf_put_varint(out, e->reason_code_cnt);
                for (size_t j = 0; j < e->reason_code_cnt; j++)
                        rf_buf_put_str(out, e->reason_codes[j]);
                rf_buf_put_str(out, e->provenance);
        }
}

static size_t left(const rf_cur_t *c)
{
        return (size_t)(c->end - c->p);
}

/* Reads the header into \p l (items untouched); errors stick in c->err. */
static void get_header(rf_cur_t *c, rf_list_t *l)
{
        if (rf_cur_u8(c) != LIST_FORMAT_V1)
                c->err = RF_EINVAL;
        l->subject_id = rf_cur_str(c, NULL);
        l->surface = rf_cur_str(c, NULL);
        l->context_key = rf_cur_str(c, NULL);
        l->region = rf_cur_str(c, NULL);
        l->list_id = rf_cur_str(c, NULL);
        l->run_id = rf_cur_str(c, NULL);
        l->model_version = rf_cur_str(c, NULL);
        l->policy_version = rf_cur_str(c, NULL);
        l->feature_set_version = rf_cur_str(c, NULL);
        l->generated_at = get_i64(c);
        l->expires_at = get_i64(c);
        uint64_t n = rf_cur_varint(c);
        if (n > left(c) / MIN_ITEM_BYTES)
                c->err = RF_EINVAL;
        l->item_cnt = c->err ? 0 : (size_t)n;
}

/* Walks \p n items. With items == NULL it only validates and counts the
 * reason codes; otherwise fills items[] and rcs[] (sized by a first walk
 * over the same bytes). @returns the number of reason codes. */
static size_t get_items(rf_cur_t *c, size_t n, rf_entry_t *items,
                        const char **rcs)
{
        size_t total = 0;

        for (size_t i = 0; i < n && !c->err; i++) {
                rf_entry_t e;

                e.item_id = rf_cur_str(c, NULL);
                e.score = rf_cur_double(c);
                e.creator_id = rf_cur_str(c, NULL);
                e.campaign_id = rf_cur_str(c, NULL);
                uint64_t k = rf_cur_varint(c);
                if (c->err || k > left(c) / MIN_STR_BYTES) {
                        c->err = RF_EINVAL;
                        break;
                }
                e.reason_code_cnt = (size_t)k;
                e.reason_codes = rcs ? rcs + total : NULL;
                for (size_t j = 0; j < e.reason_code_cnt; j++) {
                        const char *s = rf_cur_str(c, NULL);
                        if (rcs)
                                rcs[total + j] = s;
                }
                total += e.reason_code_cnt;
                e.provenance = rf_cur_str(c, NULL);
                if (items)
                        items[i] = e;
        }
        return total;
}

static size_t align8(size_t n)
{
        return (n + 7) & ~(size_t)7;
}

/* Decodes the header and the first \p max items (all when fewer); with
 * \p max >= the item count the buffer must end after the last item. */
static int decode_items(const char *buf, size_t len, size_t max,
                        rf_list_t **listp, size_t *total)
{
        rf_cur_t c = { buf, buf + len, 0 };
        rf_list_t h;
        size_t rc_total, n;

        *listp = NULL;
        if (!buf)
                return RF_EINVAL;
        get_header(&c, &h);
        n = h.item_cnt < max ? h.item_cnt : max;
        rc_total = get_items(&c, n, NULL, NULL);
        if (c.err || (n == h.item_cnt && c.p != c.end))
                return RF_EINVAL;

        /* Only the bytes walked are copied: the strings point into them.
         * item_cnt and rc_total are bounded by len, so no overflow here. */
        size_t used = (size_t)(c.p - buf);
        size_t off_items = align8(sizeof(rf_list_t));
        size_t off_rcs = off_items + n * sizeof(rf_entry_t);
        size_t off_bytes = off_rcs + rc_total * sizeof(const char *);
        char *mem = rf_malloc(off_bytes + used);
        rf_list_t *l = (rf_list_t *)(void *)mem;
        char *copy = mem + off_bytes;

        memcpy(copy, buf, used);
        /* The header's item count was bounded against the whole buffer;
         * the copy may end earlier, so the walk gets the real end and the
         * count is set after it. */
        c = (rf_cur_t){ copy, copy + used, 0 };
        get_header(&c, l);
        c.err = 0;
        l->item_cnt = n;
        l->items = (rf_entry_t *)(void *)(mem + off_items);
        get_items(&c, n, l->items, (const char **)(void *)(mem + off_rcs));
        assert(!c.err && c.p == c.end); /* same bytes as the first walk */
        l->mem_ = mem;
        l->mem_len_ = off_bytes + used;
        atomic_init(&l->refs_, 0);
        *listp = l;
        if (total)
                *total = h.item_cnt;
        return RF_OK;
}

int rf_list_decode(const char *buf, size_t len, rf_list_t **listp)
{
        return decode_items(buf, len, SIZE_MAX, listp, NULL);
}

int rf_list_decode_head(const char *buf, size_t len, size_t max,
                        rf_list_t **listp, size_t *total)
{
        return decode_items(buf, len, max, listp, total);
}

int rf_list_decode_header(const char *buf, size_t len, rf_list_t **listp)
{
        rf_cur_t c = { buf, buf + len, 0 };
        rf_list_t h;

        *listp = NULL;
        if (!buf)
                return RF_EINVAL;
        get_header(&c, &h);
        if (c.err)
                return RF_EINVAL;

        /* Copy only the header bytes: that is all the strings need. */
        size_t hlen = (size_t)(c.p - buf);
        size_t off_bytes = align8(sizeof(rf_list_t));
        char *mem = rf_malloc(off_bytes + hlen);
        rf_list_t *l = (rf_list_t *)(void *)mem;

        memcpy(mem + off_bytes, buf, hlen);
        c = (rf_cur_t){ mem + off_bytes, mem + off_bytes + hlen, 0 };
        /* item_cnt was bounded against the whole buffer above; the copy
         * ends at the header, so take it from the first read. */
        get_header(&c, l);
        l->item_cnt = h.item_cnt;
        l->items = NULL;
        l->mem_ = mem;
        l->mem_len_ = off_bytes + hlen;
        atomic_init(&l->refs_, 0);
        *listp = l;
        return RF_OK;
}

int rf_list_walk_init(rf_list_walk_t *w, const char *buf, size_t len,
                      rf_list_t *hdr)
{
        w->c = (rf_cur_t){ buf, buf ? buf + len : NULL, 0 };
        w->left = 0;
        if (!buf)
                return RF_EINVAL;
        get_header(&w->c, hdr);
        hdr->items = NULL;
        hdr->mem_ = NULL;
        if (w->c.err)
                return RF_EINVAL;
        w->left = hdr->item_cnt;
        return RF_OK;
}

int rf_list_walk_next(rf_list_walk_t *w, rf_entry_t *e)
{
        if (w->c.err)
                return RF_EINVAL;
        if (!w->left)
                return w->c.p == w->c.end ? 0 : RF_EINVAL;
        get_items(&w->c, 1, e, NULL);
        if (w->c.err)
                return RF_EINVAL;
        w->left--;
        return 1;
}

rf_list_t *rf_list_share(rf_list_t *list)
{
        atomic_fetch_add_explicit(&list->refs_, 1, memory_order_relaxed);
        return list;
}

size_t rf_list_bytes(const rf_list_t *list)
{
        return list->mem_len_;
}

void rf_list_destroy(rf_list_t *list)
{
        /* The last holder frees: a count of 0 means no other holder. The
         * acquire pairs with the other holders' releases, so their reads
         * of the list happen before the free. */
        if (list && atomic_fetch_sub_explicit(&list->refs_, 1,
                                              memory_order_acq_rel) == 0)
                free(list->mem_);
}

/* ---- JSON form ---------------------------------------------------------*/

/* Where a field is, for messages: "" or "items[3]: ". */
typedef struct jctx {
        const rf_limits_t *lim;
        rf_rejection_t *rej;
        char where[48];
} jctx_t;

enum {
        F_OPTIONAL = 0,
        F_REQUIRED = 1 << 0,
        F_NONEMPTY = 1 << 1, /* schema minLength 1 */
};

/* Checks a string value \p v of field \p name (or array element). */
static int check_str(jctx_t *x, json_t *v, const char *name, int flags,
                     const char **sp)
{
        if (!json_is_string(v)) {
                rf_reject(x->rej, RF_REJ_BAD_TYPE,
                          "%sfield \"%s\": expected string", x->where, name);
                return -1;
        }
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (memchr(s, '\0', len)) {
                rf_reject(x->rej, RF_REJ_BAD_VALUE,
                          "%sfield \"%s\": contains a NUL byte", x->where,
                          name);
                return -1;
        }
        if ((flags & F_NONEMPTY) && len == 0) {
                rf_reject(x->rej, RF_REJ_BAD_VALUE,
                          "%sfield \"%s\": must not be empty", x->where, name);
                return -1;
        }
        if (len > x->lim->max_id_len) {
                rf_reject(x->rej, RF_REJ_ID_TOO_LONG,
                          "%sfield \"%s\": longer than %zu bytes", x->where,
                          name, x->lim->max_id_len);
                return -1;
        }
        *sp = s;
        return 0;
}

/* Looks up field \p name: 0 with *vp (NULL when absent, or null and
 * optional), or -1 with rej set when required and absent. A null required
 * field is returned as is, to fail its type check. */
static int get_field(jctx_t *x, json_t *obj, const char *name, int flags,
                     json_t **vp)
{
        json_t *v = json_object_get(obj, name);

        *vp = NULL;
        if (!v) {
                if (!(flags & F_REQUIRED))
                        return 0;
                rf_reject(x->rej, RF_REJ_MISSING_FIELD,
                          "%smissing field \"%s\"", x->where, name);
                return -1;
        }
        if (json_is_null(v) && !(flags & F_REQUIRED))
                return 0;
        *vp = v;
        return 0;
}

/* Reads a string field into *sp ("" when absent and optional). */
static int get_str(jctx_t *x, json_t *obj, const char *name, int flags,
                   const char **sp)
{
        json_t *v;

        *sp = "";
        if (get_field(x, obj, name, flags, &v))
                return -1;
        return v ? check_str(x, v, name, flags, sp) : 0;
}

/* Reads a required RFC 3339 timestamp field. */
static int get_time(jctx_t *x, json_t *obj, const char *name, int64_t *msp)
{
        const char *s;
        json_t *v;

        if (get_field(x, obj, name, F_REQUIRED, &v))
                return -1;
        if (!json_is_string(v)) {
                rf_reject(x->rej, RF_REJ_BAD_TYPE,
                          "%sfield \"%s\": expected string", x->where, name);
                return -1;
        }
        s = json_string_value(v);
        if (strlen(s) != json_string_length(v) || rf_time_parse(s, msp)) {
                rf_reject(x->rej, RF_REJ_BAD_TIMESTAMP,
                          "%sfield \"%s\": not an RFC 3339 timestamp", x->where,
                          name);
                return -1;
        }
        return 0;
}

static int dump_to_buf(const char *p, size_t size, void *data)
{
        rf_buf_append(data, p, size);
        return 0;
}

/* Validates items[i] and appends its binary form to \p b. */
static int put_json_item(jctx_t *x, json_t *it, size_t i, rf_buf_t *b)
{
        const char *item_id, *creator_id, *campaign_id, *rc;
        json_t *v, *rcs;
        double score;

        snprintf(x->where, sizeof(x->where), "items[%zu]: ", i);
        if (!json_is_object(it)) {
                rf_reject(x->rej, RF_REJ_BAD_TYPE, "%sexpected object",
                          x->where);
                return -1;
        }
        if (get_str(x, it, "item_id", F_REQUIRED | F_NONEMPTY, &item_id))
                return -1;
        if (get_field(x, it, "score", F_REQUIRED, &v))
                return -1;
        if (!json_is_number(v)) {
                rf_reject(x->rej, RF_REJ_BAD_TYPE,
                          "%sfield \"score\": expected number", x->where);
                return -1;
        }
        score = json_number_value(v);
        if (!isfinite(score)) {
                rf_reject(x->rej, RF_REJ_BAD_VALUE,
                          "%sfield \"score\": not a finite number", x->where);
                return -1;
        }
        if (get_str(x, it, "creator_id", F_NONEMPTY, &creator_id) ||
            get_str(x, it, "campaign_id", F_NONEMPTY, &campaign_id) ||
            get_field(x, it, "reason_codes", F_OPTIONAL, &rcs))
                return -1;
        if (rcs && !json_is_array(rcs)) {
                rf_reject(x->rej, RF_REJ_BAD_TYPE,
                          "%sfield \"reason_codes\": expected array", x->where);
                return -1;
        }
        for (size_t j = 0; j < json_array_size(rcs); j++) {
                char name[40];

                snprintf(name, sizeof(name), "reason_codes[%zu]", j);
                if (check_str(x, json_array_get(rcs, j), name, 0, &rc))
                        return -1;
        }

        rf_buf_put_str(b, item_id);
        rf_buf_append(b, &score, sizeof(score));
        rf_buf_put_str(b, creator_id);
        rf_buf_put_str(b, campaign_id);
        rf_buf_put_varint(b, json_array_size(rcs));
        for (size_t j = 0; j < json_array_size(rcs); j++)
                rf_buf_put_str(b, json_string_value(json_array_get(rcs, j)));
        v = json_object_get(it, "source_provenance");
        if (v && !json_is_null(v)) {
                /* Sorted keys: the same provenance always stores the same
                 * bytes. Strings escape NUL, so the text has none. */
                rf_buf_t prov = { 0 };
                /* Dumped through a callback: a string jansson returned
                 * would come from the parse arena (codec_json.h). */
                if (json_dump_callback(v, dump_to_buf, &prov,
                                       JSON_COMPACT | JSON_SORT_KEYS |
                                           JSON_ENCODE_ANY) != 0) {
                        fprintf(stderr, "recfresh: out of memory\n");
                        abort();
                }
                rf_buf_append(&prov, "", 1);
                rf_buf_put_str(b, prov.data);
                rf_buf_free(&prov);
        } else {
                rf_buf_put_str(b, "");
        }
        return 0;
}

static int list_from_tree(const char *key, size_t key_len, const char *buf,
                          size_t len, const rf_limits_t *lim, rf_list_t **listp,
                          rf_rejection_t *rej)
{
        rf_list_t h = { 0 };
        rf_buf_t b = { 0 };
        jctx_t x = { 0 };
        int rc = RF_EINVAL;
        json_t *items = NULL, *root;

        *listp = NULL;
        rej->reason = RF_REJ_NONE;
        rej->msg[0] = '\0';
        x.lim = lim ? lim : &rf_limits_default;
        x.rej = rej;
        if (key && key_len > x.lim->max_id_len) {
                rf_reject(rej, RF_REJ_ID_TOO_LONG,
                          "message key: longer than %zu bytes",
                          x.lim->max_id_len);
                return RF_EINVAL;
        }
        if (!(root = rf_json_load_object(buf, len, x.lim, rej)))
                return RF_EINVAL;

        if (get_str(&x, root, "subject_id", F_REQUIRED | F_NONEMPTY,
                    &h.subject_id) ||
            get_str(&x, root, "surface", F_REQUIRED | F_NONEMPTY, &h.surface) ||
            get_str(&x, root, "context_key", F_OPTIONAL, &h.context_key) ||
            get_str(&x, root, "region", F_OPTIONAL, &h.region) ||
            get_str(&x, root, "list_id", F_REQUIRED | F_NONEMPTY, &h.list_id) ||
            get_str(&x, root, "run_id", F_OPTIONAL, &h.run_id) ||
            get_time(&x, root, "generated_at", &h.generated_at) ||
            get_time(&x, root, "expires_at", &h.expires_at) ||
            get_str(&x, root, "model_version", F_REQUIRED, &h.model_version) ||
            get_str(&x, root, "policy_version", F_OPTIONAL,
                    &h.policy_version) ||
            get_str(&x, root, "feature_set_version", F_OPTIONAL,
                    &h.feature_set_version) ||
            get_field(&x, root, "items", F_REQUIRED, &items))
                goto out;
        if (!json_is_array(items)) {
                rf_reject(rej, RF_REJ_BAD_TYPE,
                          "field \"items\": expected array");
                goto out;
        }
        if (json_array_size(items) > x.lim->max_items_per_list) {
                rf_reject(rej, RF_REJ_TOO_MANY_ITEMS,
                          "field \"items\": %zu items, over the limit of %zu",
                          json_array_size(items), x.lim->max_items_per_list);
                goto out;
        }
        if (key && key_len > 0 &&
            (key_len != strlen(h.subject_id) ||
             memcmp(key, h.subject_id, key_len))) {
                rf_reject(rej, RF_REJ_KEY_MISMATCH,
                          "message key does not match field \"subject_id\"");
                goto out;
        }

        h.item_cnt = json_array_size(items);
        rf_list_put_header(&b, &h);
        for (size_t i = 0; i < h.item_cnt; i++)
                if (put_json_item(&x, json_array_get(items, i), i, &b))
                        goto out;
        rc = rf_list_decode(b.data, b.len, listp);
        if (rc) /* cannot happen: we just wrote these bytes */
                rf_reject(rej, RF_REJ_BAD_VALUE, "list does not encode");

out:
        rf_buf_free(&b);
        json_decref(root);
        return rc;
}

int rf_list_from_json_tree(const char *key, size_t key_len, const char *buf,
                           size_t len, const rf_limits_t *lim,
                           rf_list_t **listp, rf_rejection_t *rej)
{
        int r;

        /* The list is encoded from the tree before it goes: the arena may
         * drop it. */
        rf_json_arena_begin();
        r = list_from_tree(key, key_len, buf, len, lim, listp, rej);
        rf_json_arena_end();
        return r;
}

int rf_list_from_json(const char *key, size_t key_len, const char *buf,
                      size_t len, const rf_limits_t *lim, rf_list_t **listp,
                      rf_rejection_t *rej)
{
        if (rf_list_from_json_stream(key, key_len, buf, len, lim, listp) == 0) {
                rej->reason = RF_REJ_NONE;
                rej->msg[0] = '\0';
                return 0;
        }
        return rf_list_from_json_tree(key, key_len, buf, len, lim, listp, rej);
}

/* A JSON string of \p s; "" if \p s is not valid UTF-8 (a corrupt store
 * record: lists from JSON only hold valid UTF-8). */
static json_t *jstr(const char *s)
{
        json_t *v = json_string(s ? s : "");

        return v ? v : json_string("");
}

static void set_str(json_t *o, const char *name, const char *s)
{
        json_object_set_new(o, name, jstr(s));
}

/* Sets \p name only when \p s is non-empty: empty optionals are omitted. */
static void set_opt_str(json_t *o, const char *name, const char *s)
{
        if (s && *s)
                set_str(o, name, s);
}

static void set_time(json_t *o, const char *name, int64_t ms)
{
        char ts[40];

        set_str(o, name, rf_time_format(ms, ts, sizeof(ts)));
}

static json_t *entry_to_json(const rf_entry_t *e)
{
        json_t *it = json_object();

        set_str(it, "item_id", e->item_id);
        /* jansson prints reals with %.17g: the score round-trips. A
         * non-finite score can only come from a corrupt record. */
        json_object_set_new(it, "score",
                            json_real(isfinite(e->score) ? e->score : 0.0));
        set_opt_str(it, "creator_id", e->creator_id);
        set_opt_str(it, "campaign_id", e->campaign_id);
        if (e->reason_code_cnt > 0) {
                json_t *rcs = json_array();
                for (size_t j = 0; j < e->reason_code_cnt; j++)
                        json_array_append_new(rcs, jstr(e->reason_codes[j]));
                json_object_set_new(it, "reason_codes", rcs);
        }
        if (e->provenance && *e->provenance) {
                json_t *prov = json_loads(
                    e->provenance, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                if (prov)
                        json_object_set_new(it, "source_provenance", prov);
        }
        return it;
}

void rf_list_to_json(const rf_list_t *list, rf_buf_t *out)
{
        json_t *o = json_object(), *items = json_array();

        set_str(o, "subject_id", list->subject_id);
        set_str(o, "surface", list->surface);
        set_str(o, "context_key", list->context_key);
        set_opt_str(o, "region", list->region);
        set_str(o, "list_id", list->list_id);
        set_opt_str(o, "run_id", list->run_id);
        set_time(o, "generated_at", list->generated_at);
        set_time(o, "expires_at", list->expires_at);
        set_str(o, "model_version", list->model_version);
        set_opt_str(o, "policy_version", list->policy_version);
        set_opt_str(o, "feature_set_version", list->feature_set_version);
        for (size_t i = 0; i < list->item_cnt && list->items; i++)
                json_array_append_new(items, entry_to_json(&list->items[i]));
        json_object_set_new(o, "items", items);
        if (!o || !items ||
            json_dump_callback(o, dump_to_buf, out,
                               JSON_COMPACT | JSON_PRESERVE_ORDER)) {
                fprintf(stderr, "recfresh: out of memory\n");
                abort();
        }
        json_decref(o);
}
