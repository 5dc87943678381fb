/*
 * Unit tests of the list codecs (src/codec_list.c): what a recs.lists.v1
 * value parses to, every reason one is rejected for, the round trip JSON ->
 * list -> binary -> list -> JSON, and that corrupt or truncated binary
 * records are refused without a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "recfresh/list.h"

/* A valid list with every optional field; items[3] exists for the nested
 * rejection cases. */
static const char base_json[] =
    "{\"subject_id\":\"u_48213907\",\"surface\":\"home\","
    "\"context_key\":\"shelf:because-you-watched:m_2231\","
    "\"region\":\"eu-west\",\"list_id\":\"lst_0001\","
    "\"run_id\":\"batch-0042\","
    "\"generated_at\":\"2026-11-22T09:14:00.000Z\","
    "\"expires_at\":\"2026-11-23T09:14:00.000Z\","
    "\"model_version\":\"ranker-v31.4\","
    "\"policy_version\":\"policy-2026-11-01\","
    "\"feature_set_version\":\"fs-118\","
    "\"items\":["
    "{\"item_id\":\"m_7731\",\"score\":0.9312,\"creator_id\":\"c_2201\","
    "\"campaign_id\":\"cmp_winter_sale\","
    "\"reason_codes\":[\"similar_to_watched\",\"trending_in_region\"],"
    "\"source_provenance\":{\"z\":1,\"candidate_source\":\"two_tower\"}},"
    "{\"item_id\":\"m_1088\",\"score\":0.1,\"creator_id\":\"c_0419\","
    "\"reason_codes\":[\"new_from_followed_creator\"],"
    "\"source_provenance\":[\"ann\",\"recency\"]},"
    "{\"item_id\":\"m_5512\",\"score\":-0.00125,"
    "\"source_provenance\":\"popularity_backfill\"},"
    "{\"item_id\":\"m_9004\",\"score\":1e+300}]}";

static const char min_json[] =
    "{\"subject_id\":\"u_10007\",\"surface\":\"search\","
    "\"list_id\":\"lst_inc_1\","
    "\"generated_at\":\"2026-11-22T09:14:00Z\","
    "\"expires_at\":\"2026-11-22T21:14:00+01:00\","
    "\"model_version\":\"ranker-v31.4\","
    "\"items\":[{\"item_id\":\"m_3001\",\"score\":12}]}";

static rf_list_t *parse_ok(const char *json)
{
        rf_rejection_t rej;
        rf_list_t *l = NULL;
        int rc = rf_list_from_json(NULL, 0, json, strlen(json), NULL, &l, &rej);

        if (rc != RF_OK)
                print_error("rejected: %s: %s\n", rf_reject2str(rej.reason),
                            rej.msg);
        assert_int_equal(rc, RF_OK);
        assert_int_equal(rej.reason, RF_REJ_NONE);
        assert_non_null(l);
        return l;
}

/* Applies one edit to a copy of \p json: \p path is "field" or
 * "items[N].field"; \p value is JSON text, or NULL to delete the field.
 * @returns the edited JSON text (caller frees). */
static char *edit(const char *json, const char *path, const char *value)
{
        json_t *root = json_loads(json, 0, NULL), *obj = root;
        const char *field = path;
        unsigned idx;
        char *out;

        assert_non_null(root);
        if (sscanf(path, "items[%u].", &idx) == 1) {
                obj = json_array_get(json_object_get(root, "items"), idx);
                field = strchr(path, '.') + 1;
                assert_non_null(obj);
        }
        if (value) {
                json_t *v =
                    json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                assert_non_null(v);
                json_object_set_new(obj, field, v);
        } else {
                assert_int_equal(json_object_del(obj, field), 0);
        }
        out = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return out;
}

static void expect_reject(const char *json, size_t len, const rf_limits_t *lim,
                          rf_reject_t reason, const char *msg_part)
{
        rf_rejection_t rej;
        rf_list_t *l = (rf_list_t *)1;
        int rc = rf_list_from_json(NULL, 0, json, len, lim, &l, &rej);

        if (rc == RF_OK || rej.reason != reason || !strstr(rej.msg, msg_part))
                print_error("json %.200s: got %s \"%s\", want %s \"%s\"\n",
                            json, rf_reject2str(rej.reason), rej.msg,
                            rf_reject2str(reason), msg_part);
        assert_int_equal(rc, RF_EINVAL);
        assert_null(l);
        assert_int_equal(rej.reason, reason);
        assert_non_null(strstr(rej.msg, msg_part));
}

static void assert_lists_equal(const rf_list_t *a, const rf_list_t *b)
{
        assert_string_equal(a->subject_id, b->subject_id);
        assert_string_equal(a->surface, b->surface);
        assert_string_equal(a->context_key, b->context_key);
        assert_string_equal(a->region, b->region);
        assert_string_equal(a->list_id, b->list_id);
        assert_string_equal(a->run_id, b->run_id);
        assert_string_equal(a->model_version, b->model_version);
        assert_string_equal(a->policy_version, b->policy_version);
        assert_string_equal(a->feature_set_version, b->feature_set_version);
        assert_int_equal(a->generated_at, b->generated_at);
        assert_int_equal(a->expires_at, b->expires_at);
        assert_int_equal(a->item_cnt, b->item_cnt);
        for (size_t i = 0; i < a->item_cnt; i++) {
                const rf_entry_t *x = &a->items[i], *y = &b->items[i];
                assert_string_equal(x->item_id, y->item_id);
                assert_memory_equal(&x->score, &y->score, sizeof(x->score));
                assert_string_equal(x->creator_id, y->creator_id);
                assert_string_equal(x->campaign_id, y->campaign_id);
                assert_string_equal(x->provenance, y->provenance);
                assert_int_equal(x->reason_code_cnt, y->reason_code_cnt);
                for (size_t j = 0; j < x->reason_code_cnt; j++)
                        assert_string_equal(x->reason_codes[j],
                                            y->reason_codes[j]);
        }
}

static void test_full_list_fields(void **state)
{
        (void)state;
        rf_list_t *l = parse_ok(base_json);
        int64_t ms;

        assert_string_equal(l->subject_id, "u_48213907");
        assert_string_equal(l->surface, "home");
        assert_string_equal(l->context_key, "shelf:because-you-watched:m_2231");
        assert_string_equal(l->region, "eu-west");
        assert_string_equal(l->list_id, "lst_0001");
        assert_string_equal(l->run_id, "batch-0042");
        assert_string_equal(l->model_version, "ranker-v31.4");
        assert_string_equal(l->policy_version, "policy-2026-11-01");
        assert_string_equal(l->feature_set_version, "fs-118");
        assert_int_equal(rf_time_parse("2026-11-22T09:14:00Z", &ms), 0);
        assert_int_equal(l->generated_at, ms);
        assert_int_equal(l->expires_at, ms + 86400000);
        assert_int_equal(l->item_cnt, 4);

        const rf_entry_t *e = &l->items[0];
        assert_string_equal(e->item_id, "m_7731");
        assert_true(e->score == 0.9312);
        assert_string_equal(e->creator_id, "c_2201");
        assert_string_equal(e->campaign_id, "cmp_winter_sale");
        assert_int_equal(e->reason_code_cnt, 2);
        assert_string_equal(e->reason_codes[0], "similar_to_watched");
        assert_string_equal(e->reason_codes[1], "trending_in_region");
        /* compact, keys sorted */
        assert_string_equal(e->provenance,
                            "{\"candidate_source\":\"two_tower\",\"z\":1}");
        assert_string_equal(l->items[1].provenance, "[\"ann\",\"recency\"]");
        assert_string_equal(l->items[2].provenance, "\"popularity_backfill\"");
        assert_true(l->items[2].score == -0.00125);
        e = &l->items[3];
        assert_string_equal(e->creator_id, "");
        assert_string_equal(e->campaign_id, "");
        assert_string_equal(e->provenance, "");
        assert_int_equal(e->reason_code_cnt, 0);
        assert_true(e->score == 1e300);
        rf_list_destroy(l);
}

static void test_minimal_list_defaults(void **state)
{
        (void)state;
        rf_list_t *l = parse_ok(min_json);
        int64_t ms;

        assert_string_equal(l->context_key, "");
        assert_string_equal(l->region, "");
        assert_string_equal(l->run_id, "");
        assert_string_equal(l->policy_version, "");
        assert_string_equal(l->feature_set_version, "");
        assert_int_equal(rf_time_parse("2026-11-22T20:14:00Z", &ms), 0);
        assert_int_equal(l->expires_at, ms); /* +01:00 offset applied */
        assert_int_equal(l->item_cnt, 1);
        assert_true(l->items[0].score == 12.0); /* integer score */
        assert_string_equal(l->items[0].creator_id, "");
        assert_string_equal(l->items[0].provenance, "");
        rf_list_destroy(l);
}

static void test_unknown_fields_and_null_optionals(void **state)
{
        (void)state;
        char *j1 = edit(base_json, "x_debug", "{\"a\":[1,2,3]}");
        char *j2 = edit(j1, "items[0].x_rank", "3");
        char *j3 = edit(j2, "region", "null");
        char *j4 = edit(j3, "items[0].creator_id", "null");
        char *j5 = edit(j4, "items[0].source_provenance", "null");
        rf_list_t *l = parse_ok(j5);

        assert_string_equal(l->region, "");
        assert_string_equal(l->items[0].creator_id, "");
        assert_string_equal(l->items[0].provenance, "");
        rf_list_destroy(l);
        free(j1);
        free(j2);
        free(j3);
        free(j4);
        free(j5);
}

/* ---- the streaming parser against the tree parser ------------------------*/

/* base_json without source_provenance: the shape the streaming parser
 * takes. */
static const char plain_json[] =
    "{\"subject_id\":\"u_48213907\",\"surface\":\"home\","
    "\"context_key\":\"shelf:because-you-watched:m_2231\","
    "\"region\":\"eu-west\",\"list_id\":\"lst_0001\","
    "\"run_id\":\"batch-0042\","
    "\"generated_at\":\"2026-11-22T09:14:00.000Z\","
    "\"expires_at\":\"2026-11-23T09:14:00.000Z\","
    "\"model_version\":\"ranker-v31.4\","
    "\"policy_version\":\"policy-2026-11-01\","
    "\"feature_set_version\":\"fs-118\","
    "\"items\":["
    "{\"item_id\":\"m_7731\",\"score\":0.9312,\"creator_id\":\"c_2201\","
    "\"campaign_id\":\"cmp_winter_sale\","
    "\"reason_codes\":[\"similar_to_watched\",\"trending_in_region\"]},"
    "{\"item_id\":\"m_1088\",\"score\":0.1,\"creator_id\":\"c_0419\","
    "\"reason_codes\":[\"new_from_followed_creator\"]},"
    "{\"item_id\":\"m_5512\",\"score\":-0.00125},"
    "{\"item_id\":\"m_9004\",\"score\":1e+300}]}";

/* Parses \p json with both parsers. Whatever the streaming parser takes,
 * the tree parser must take with the same bytes. @returns 0 if the
 * streaming parser took it, 1 if it declined. */
static int both(const char *key, const char *json, size_t len,
                const rf_limits_t *lim)
{
        rf_list_t *t = NULL, *s = (rf_list_t *)1, *f = NULL;
        rf_rejection_t rej, rej2;
        size_t klen = key ? strlen(key) : 0;
        int rt = rf_list_from_json_tree(key, klen, json, len, lim, &t, &rej);
        int rs = rf_list_from_json_stream(key, klen, json, len, lim, &s);
        int rf = rf_list_from_json(key, klen, json, len, lim, &f, &rej2);

        if (rs == 0 && rt != 0)
                print_error("stream took what the tree refused (%s: %s): "
                            "%.300s\n",
                            rf_reject2str(rej.reason), rej.msg, json);
        assert_true(rs == 0 || rs == 1);
        assert_true(rs == 1 || rt == 0);
        /* rf_list_from_json answers as the tree parser does */
        assert_int_equal(rf, rt);
        if (rt != 0) {
                assert_int_equal(rej2.reason, rej.reason);
                assert_string_equal(rej2.msg, rej.msg);
        }
        if (rs == 0) {
                rf_buf_t a = { 0 }, b = { 0 };
                rf_list_encode(t, &a);
                rf_list_encode(s, &b);
                assert_int_equal(a.len, b.len);
                assert_memory_equal(a.data, b.data, a.len);
                rf_buf_free(&a);
                rf_buf_free(&b);
                rf_list_destroy(s);
        } else {
                assert_null(s);
        }
        rf_list_destroy(t);
        rf_list_destroy(f);
        return rs;
}

static int both_s(const char *json)
{
        return both(NULL, json, strlen(json), NULL);
}

/* Applies \p n edits (path, value pairs) to plain_json; see edit(). */
static char *edits(int n, ...)
{
        char *cur = strdup(plain_json);
        va_list ap;

        va_start(ap, n);
        for (int i = 0; i < n; i++) {
                const char *path = va_arg(ap, const char *);
                const char *value = va_arg(ap, const char *);
                char *next = edit(cur, path, value);
                free(cur);
                cur = next;
        }
        va_end(ap);
        return cur;
}

/* plain_json with its first \p from replaced by \p to (caller frees): for
 * text jansson cannot load to edit() it in. */
static char *subst(const char *from, const char *to)
{
        const char *at = strstr(plain_json, from);
        size_t n = strlen(plain_json) + strlen(to) + 1;
        char *out = malloc(n);

        assert_non_null(at);
        snprintf(out, n, "%.*s%s%s", (int)(at - plain_json), plain_json, to,
                 at + strlen(from));
        return out;
}

static void test_stream_takes_common_shapes(void **state)
{
        (void)state;
        char *j;

        assert_int_equal(both_s(plain_json), 0);
        assert_int_equal(both_s(min_json), 0);
        assert_int_equal(both("u_10007", min_json, strlen(min_json), NULL), 0);

        /* null optionals are absent ones; unknown scalars are ignored */
        j = edits(6, "region", "null", "items[0].creator_id", "null",
                  "items[1].reason_codes", "null", "x_debug", "true",
                  "items[0].x_rank", "3", "items[2].x_note", "\"n\"");
        assert_int_equal(both_s(j), 0);
        free(j);
        j = edits(2, "x_a", "null", "items[3].source_provenance", "null");
        assert_int_equal(both_s(j), 0);
        free(j);

        /* numbers read as jansson reads them: "-0" is an integer, so +0 */
        const char *scores[] = { "-0",
                                 "0",
                                 "12",
                                 "-7",
                                 "-3.5E-2",
                                 "1e-400",
                                 "1E+2",
                                 "9007199254740993",
                                 "-9223372036854775808" };
        for (size_t i = 0; i < sizeof(scores) / sizeof(*scores); i++) {
                j = edits(1, "items[0].score", scores[i]);
                assert_int_equal(both_s(j), 0);
                free(j);
        }

        /* more reason codes than the parser keeps in place */
        j = edits(1, "items[0].reason_codes",
                  "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\","
                  "\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\",\"\","
                  "\"s\"]");
        assert_int_equal(both_s(j), 0);
        free(j);

        /* valid UTF-8 that is not ASCII, an empty list, spaces */
        assert_int_equal(both_s("{\"subject_id\":\"u_\xc3\xa9\xe6\x97\xa5"
                                "\xf0\x9f\x98\x80\",\"surface\":\"home\","
                                "\"list_id\":\"l\",\"model_version\":\"\","
                                "\"generated_at\":\"2026-11-22T09:14:00Z\","
                                "\"expires_at\":\"2026-11-22T09:14:00Z\","
                                "\"items\":[]}"),
                         0);
        assert_int_equal(both_s(" {\n\"subject_id\" : \"u\" ,\t\"surface\":"
                                "\"s\",\"list_id\":\"l\",\"model_version\":"
                                "\"m\",\"generated_at\":\"2026-11-22T09:14:"
                                "00Z\",\"expires_at\":\"2026-11-22T09:14:00Z"
                                "\",\"items\":[ {\"score\":1,\"item_id\":"
                                "\"i\"} ] }\r\n"),
                         0);
}

static void test_stream_declines_the_rest(void **state)
{
        (void)state;
        rf_limits_t lim = rf_limits_default;
        char *j;

        /* what the tree parser takes and the streaming one leaves to it */
        assert_int_equal(both_s(base_json), 1); /* source_provenance */
        const char *taken_by_tree[][2] = {
                { "items[0].item_id", "\"m\\n\"" },
                { "items[0].x_obj", "{\"a\":1}" },
                { "x_arr", "[1]" },
        };
        for (size_t i = 0; i < sizeof(taken_by_tree) / sizeof(*taken_by_tree);
             i++) {
                j = edits(1, taken_by_tree[i][0], taken_by_tree[i][1]);
                assert_int_equal(both_s(j), 1);
                free(j);
        }

        /* what both refuse: the tree parser gives the reason */
        const char *refused[][2] = {
                { "items[0].item_id", "\"m\\u0000\"" },
                { "items[0].item_id", "\"\"" },
                { "items[0].item_id", "null" },
                { "items[0].item_id", "7" },
                { "items[0].score", "\"1\"" },
                { "items[0].score", "null" },
                { "items[0].score", "true" },
                { "items[0].creator_id", "\"\"" },
                { "items[0].reason_codes", "\"a\"" },
                { "items[0].reason_codes", "[1]" },
                { "items[0].reason_codes", "[null]" },
                { "subject_id", "\"\"" },
                { "subject_id", "null" },
                { "model_version", "null" },
                { "generated_at", "\"yesterday\"" },
                { "generated_at", "1764000000000" },
                { "items", "{}" },
                { "items", "null" },
                { "items", "[1]" },
                { "items", "[[]]" },
                { "surface", "{\"a\":1}" },
        };
        for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
                j = edits(1, refused[i][0], refused[i][1]);
                assert_int_equal(both_s(j), 1);
                free(j);
        }
        /* numbers jansson fails on, wherever they are */
        const char *bad_numbers[] = {
                "\"score\":99999999999999999999",
                "\"score\":1e400",
                "\"score\":-1e400",
                "\"score\":0.9312,\"x_big\":-99999999999999999999",
                "\"score\":0.9312,\"x_big\":1e999",
        };
        for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(*bad_numbers);
             i++) {
                j = subst("\"score\":0.9312", bad_numbers[i]);
                assert_int_equal(both_s(j), 1);
                free(j);
        }
        j = edits(1, "items[0].item_id", NULL);
        assert_int_equal(both_s(j), 1);
        free(j);
        j = edits(1, "expires_at", NULL);
        assert_int_equal(both_s(j), 1);
        free(j);

        /* an escape jansson's dump would not write back */
        j = subst("m_7731", "m_\\u00e9");
        assert_int_equal(both_s(j), 1);
        free(j);

        /* an overlong "/", a surrogate and a code point past U+10FFFF:
         * yajl's own check lets them through, jansson does not */
        const char *bad_utf8[][2] = {
                { "u_48213907", "u_\xc0\xaf" },
                { "m_1088", "m_\xed\xa0\x80" },
                { "trending_in_region", "t\xf4\x90\x80\x80" },
                { "\"region\"", "\"x\xc0\xaf\":1,\"region\"" },
                { "\"region\"", "\"x\":\"\xc0\xaf\",\"region\"" },
        };
        for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(*bad_utf8); i++) {
                j = subst(bad_utf8[i][0], bad_utf8[i][1]);
                assert_int_equal(both_s(j), 1);
                free(j);
        }

        /* white space to yajl, not to jansson */
        j = subst(",\"region\"", ",\v\"region\"");
        assert_int_equal(both_s(j), 1);
        free(j);
        j = subst(",\"region\"", ",\f\"region\"");
        assert_int_equal(both_s(j), 1);
        free(j);

        /* raw text the edits cannot make */
        const char *raw[] = {
                "{\"subject_id\":\"u\",\"subject_id\":\"v\"}",
                "{\"x\":1,\"x\":1}",
                "[]",
                "\"u\"",
                "",
                "{} {}",
                "{}x",
                "{\"items\":[]",
                "{\"subject_id\":\"u\\ud800\"}",
        };
        for (size_t i = 0; i < sizeof(raw) / sizeof(*raw); i++)
                assert_int_equal(both(NULL, raw[i], strlen(raw[i]), NULL), 1);
        /* a repeated unknown key */
        j = subst("\"region\"", "\"x\":1,\"x\":2,\"region\"");
        assert_int_equal(both_s(j), 1);
        free(j);
        j = subst("\"score\":0.1", "\"x\":null,\"score\":0.1,\"x\":null");
        assert_int_equal(both_s(j), 1);
        free(j);

        /* a repeated key inside an item */
        j = subst("\"score\":0.1", "\"score\":0.2,\"score\":0.1");
        assert_int_equal(both_s(j), 1);
        free(j);

        /* an unfinished token after the list: the end of the text to
         * yajl, an error to jansson */
        const char *tails[] = { "\"", " \"x", "-", "t" };
        for (size_t i = 0; i < sizeof(tails) / sizeof(*tails); i++) {
                char *t = malloc(strlen(plain_json) + 8);
                strcpy(t, plain_json);
                strcat(t, tails[i]);
                assert_int_equal(both_s(t), 1);
                free(t);
        }

        /* a key that is not the subject */
        assert_int_equal(both("u_other", plain_json, strlen(plain_json), NULL),
                         1);
        assert_int_equal(
            both("u_48213907", plain_json, strlen(plain_json), NULL), 0);

        /* limits, each at the edge: taken at it, declined past it */
        size_t len = strlen(plain_json);
        lim.max_record_bytes = len;
        assert_int_equal(both(NULL, plain_json, len, &lim), 0);
        lim.max_record_bytes = len - 1;
        assert_int_equal(both(NULL, plain_json, len, &lim), 1);
        lim = rf_limits_default;
        lim.max_items_per_list = 4;
        assert_int_equal(both(NULL, plain_json, len, &lim), 0);
        lim.max_items_per_list = 3;
        assert_int_equal(both(NULL, plain_json, len, &lim), 1);
        lim = rf_limits_default;
        lim.max_id_len = 32;
        assert_int_equal(both(NULL, plain_json, len, &lim), 0);
        lim.max_id_len = 31;
        assert_int_equal(both(NULL, plain_json, len, &lim), 1);
        lim = rf_limits_default;
        lim.max_json_depth = 4; /* root, items, an item, its reason codes */
        assert_int_equal(both(NULL, plain_json, len, &lim), 0);
        lim.max_json_depth = 3;
        assert_int_equal(both(NULL, plain_json, len, &lim), 1);
        lim = rf_limits_default;

        /* more unknown fields than the parser keeps track of */
        j = edits(9, "x1", "1", "x2", "1", "x3", "1", "x4", "1", "x5", "1",
                  "x6", "1", "x7", "1", "x8", "1", "x9", "1");
        assert_int_equal(both_s(j), 1);
        free(j);
}

/* JSON -> list -> binary -> list -> JSON -> parse: the same value. */
static void roundtrip(const char *json)
{
        rf_list_t *a = parse_ok(json), *b = NULL, *c;
        rf_buf_t enc = { 0 }, enc2 = { 0 }, out = { 0 };
        json_t *orig, *back;

        rf_list_encode(a, &enc);
        assert_int_equal(rf_list_decode(enc.data, enc.len, &b), RF_OK);
        assert_lists_equal(a, b);
        rf_list_encode(b, &enc2);
        assert_int_equal(enc.len, enc2.len);
        assert_memory_equal(enc.data, enc2.data, enc.len);

        rf_list_to_json(b, &out);
        c = parse_ok(out.data);
        assert_lists_equal(a, c);

        /* And as JSON: equal to the input once timestamps are in our form
         * and integer scores are reals. */
        orig = json_loads(json, JSON_ALLOW_NUL, NULL);
        back = json_loads(out.data, JSON_ALLOW_NUL, NULL);
        assert_non_null(back);
        json_t *items = json_object_get(orig, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
                json_t *it = json_array_get(items, i);
                json_t *s = json_object_get(it, "score");
                json_object_set_new(it, "score",
                                    json_real(json_number_value(s)));
        }
        char ts[40];
        json_object_set_new(
            orig, "generated_at",
            json_string(rf_time_format(a->generated_at, ts, sizeof(ts))));
        json_object_set_new(
            orig, "expires_at",
            json_string(rf_time_format(a->expires_at, ts, sizeof(ts))));
        if (!json_object_get(orig, "context_key"))
                json_object_set_new(orig, "context_key", json_string(""));
        if (!json_equal(orig, back)) {
                char *s = json_dumps(orig, JSON_COMPACT);
                print_error("want %s\n got %s\n", s, out.data);
                free(s);
        }
        assert_true(json_equal(orig, back));

        json_decref(orig);
        json_decref(back);
        rf_buf_free(&enc);
        rf_buf_free(&enc2);
        rf_buf_free(&out);
        rf_list_destroy(a);
        rf_list_destroy(b);
        rf_list_destroy(c);
}

static void test_roundtrip(void **state)
{
        (void)state;
        roundtrip(base_json);
        roundtrip(min_json);
        roundtrip("{\"subject_id\":\"__fallback__\",\"surface\":\"home\","
                  "\"list_id\":\"l\",\"generated_at\":\"1969-12-31T23:59:59."
                  "999Z\",\"expires_at\":\"2262-04-11T23:47:16.854Z\","
                  "\"model_version\":\"\",\"items\":[]}");
        roundtrip("{\"subject_id\":\"\xc3\xa9l\xc3\xa8ve \xe2\x82\xac\","
                  "\"surface\":\"home\",\"list_id\":\"l\","
                  "\"generated_at\":\"2026-11-22T09:14:00Z\","
                  "\"expires_at\":\"2026-11-22T09:14:00Z\","
                  "\"model_version\":\"m\",\"items\":[{\"item_id\":\"i\","
                  "\"score\":0.30000000000000004,\"reason_codes\":[\"\"],"
                  "\"source_provenance\":{\"s\":\"a\\u0000b\",\"n\":null,"
                  "\"f\":false,\"big\":9007199254740993}}]}");
}

static void test_encode_handmade_list(void **state)
{
        (void)state;
        const char *rcs[] = { "a", "b", "c" };
        rf_entry_t items[2] = {
                { "i1", 1.5, "", "", rcs, 3, "{\"k\":1}" },
                { "i2", -0.0, "c", "cmp", NULL, 0, "" },
        };
        rf_list_t l = { "s", "home", "", "", "lid", "", "mv",
                        "",  "",     1,  -2, items, 2,  NULL };
        rf_buf_t b = { 0 };
        rf_list_t *d;

        rf_list_encode(&l, &b);
        assert_int_equal((unsigned char)b.data[0], 1); /* version byte */
        assert_int_equal(rf_list_decode(b.data, b.len, &d), RF_OK);
        assert_lists_equal(&l, d);
        assert_int_equal(d->expires_at, -2);
        rf_list_destroy(d);
        rf_buf_free(&b);
}

static void test_decode_header(void **state)
{
        (void)state;
        rf_list_t *a = parse_ok(base_json), *h;
        rf_buf_t b = { 0 };

        rf_list_encode(a, &b);
        assert_int_equal(rf_list_decode_header(b.data, b.len, &h), RF_OK);
        assert_null(h->items);
        assert_int_equal(h->item_cnt, 4);
        assert_string_equal(h->subject_id, a->subject_id);
        assert_string_equal(h->feature_set_version, a->feature_set_version);
        assert_int_equal(h->generated_at, a->generated_at);
        assert_int_equal(h->expires_at, a->expires_at);
        rf_list_destroy(h);
        rf_list_destroy(a);
        rf_buf_free(&b);
}

static void test_decode_head(void **state)
{
        (void)state;
        rf_list_t *a = parse_ok(base_json), *full, *h;
        rf_buf_t b = { 0 };
        size_t total = 0;

        rf_list_encode(a, &b);
        assert_int_equal(rf_list_decode(b.data, b.len, &full), RF_OK);
        /* fewer, exactly and more than the list holds */
        for (size_t max = 0; max <= 6; max++) {
                assert_int_equal(
                    rf_list_decode_head(b.data, b.len, max, &h, &total), RF_OK);
                assert_int_equal(total, 4);
                assert_int_equal(h->item_cnt, max < 4 ? max : 4);
                assert_string_equal(h->list_id, a->list_id);
                assert_int_equal(h->expires_at, a->expires_at);
                for (size_t i = 0; i < h->item_cnt; i++) {
                        const rf_entry_t *x = &h->items[i],
                                         *y = &full->items[i];
                        assert_string_equal(x->item_id, y->item_id);
                        assert_string_equal(x->campaign_id, y->campaign_id);
                        assert_int_equal(x->reason_code_cnt,
                                         y->reason_code_cnt);
                        for (size_t j = 0; j < x->reason_code_cnt; j++)
                                assert_string_equal(x->reason_codes[j],
                                                    y->reason_codes[j]);
                        assert_string_equal(x->provenance, y->provenance);
                }
                rf_list_destroy(h);
        }
        /* A corrupt last item: the head before it decodes, the whole list
         * does not; truncated bytes fail only the walk that reaches them. */
        assert_int_equal(rf_list_decode(b.data, b.len - 1, &h), RF_EINVAL);
        assert_int_equal(rf_list_decode_head(b.data, b.len - 1, 4, &h, &total),
                         RF_EINVAL);
        assert_int_equal(rf_list_decode_head(b.data, b.len - 1, 3, &h, &total),
                         RF_OK);
        assert_int_equal(h->item_cnt, 3);
        rf_list_destroy(h);
        rf_list_destroy(full);
        rf_list_destroy(a);
        rf_buf_free(&b);
}

/* Walks \p len bytes to the end: 0 when the walk ends cleanly, else the
 * error; *n is the number of entries walked. */
static int walk_all(const char *p, size_t len, size_t *n)
{
        rf_list_walk_t w;
        rf_list_t h;
        rf_entry_t e;
        int r;

        *n = 0;
        if ((r = rf_list_walk_init(&w, p, len, &h)) != RF_OK)
                return r;
        while ((r = rf_list_walk_next(&w, &e)) == 1)
                (*n)++;
        return r;
}

static void test_walk(void **state)
{
        (void)state;
        rf_list_t *a = parse_ok(base_json), *full, h;
        rf_list_walk_t w;
        rf_entry_t e;
        rf_buf_t b = { 0 };
        size_t i = 0, n;

        rf_list_encode(a, &b);
        assert_int_equal(rf_list_decode(b.data, b.len, &full), RF_OK);
        assert_int_equal(rf_list_walk_init(&w, b.data, b.len, &h), RF_OK);
        assert_string_equal(h.run_id, a->run_id);
        assert_string_equal(h.region, a->region);
        assert_int_equal(h.item_cnt, 4);
        assert_null(h.items);
        while (rf_list_walk_next(&w, &e) == 1) {
                const rf_entry_t *y = &full->items[i++];
                assert_string_equal(e.item_id, y->item_id);
                assert_string_equal(e.creator_id, y->creator_id);
                assert_string_equal(e.campaign_id, y->campaign_id);
                assert_true(e.score == y->score);
                assert_int_equal(e.reason_code_cnt, y->reason_code_cnt);
                assert_null(e.reason_codes);
                assert_string_equal(e.provenance, y->provenance);
                /* in place: the strings are the buffer's own bytes */
                assert_true(e.item_id > b.data && e.item_id < b.data + b.len);
        }
        assert_int_equal(i, 4);
        assert_int_equal(rf_list_walk_next(&w, &e), 0); /* stays ended */

        /* A proper prefix or trailing bytes never end cleanly. */
        for (size_t len = 0; len < b.len; len++) {
                char *p = malloc(len ? len : 1);
                memcpy(p, b.data, len);
                assert_int_equal(walk_all(p, len, &n), RF_EINVAL);
                free(p);
        }
        rf_buf_append(&b, "x", 1);
        assert_int_equal(walk_all(b.data, b.len, &n), RF_EINVAL);
        assert_int_equal(n, 4);
        b.len--;
        assert_int_equal(walk_all(NULL, 0, &n), RF_EINVAL);

        /* Flipped bytes: the walk ends cleanly exactly when the decoder
         * accepts, with the same entry count. */
        for (size_t k = 0; k < b.len; k++) {
                char *p = malloc(b.len);
                rf_list_t *d;
                memcpy(p, b.data, b.len);
                p[k] ^= (char)0xff;
                int r = walk_all(p, b.len, &n);
                if (rf_list_decode(p, b.len, &d) == RF_OK) {
                        assert_int_equal(r, 0);
                        assert_int_equal(n, d->item_cnt);
                        rf_list_destroy(d);
                } else {
                        assert_int_equal(r, RF_EINVAL);
                }
                free(p);
        }
        rf_list_destroy(full);
        rf_list_destroy(a);
        rf_buf_free(&b);
}

static void test_decode_truncated_and_corrupt(void **state)
{
        (void)state;
        rf_list_t *a = parse_ok(base_json), *d;
        rf_buf_t b = { 0 };

        rf_list_encode(a, &b);
        /* Every proper prefix is refused, by both decoders up to the end
         * of the header. Each prefix is its own allocation so ASan sees
         * any read past it. */
        for (size_t n = 0; n < b.len; n++) {
                char *p = malloc(n ? n : 1);
                memcpy(p, b.data, n);
                d = (rf_list_t *)1;
                assert_int_equal(rf_list_decode(p, n, &d), RF_EINVAL);
                assert_null(d);
                if (rf_list_decode_header(p, n, &d) == RF_OK) {
                        assert_int_equal(d->item_cnt, 4);
                        rf_list_destroy(d);
                } else {
                        assert_null(d);
                }
                free(p);
        }
        assert_int_equal(rf_list_decode(NULL, 0, &d), RF_EINVAL);
        assert_int_equal(rf_list_decode_header(NULL, 0, &d), RF_EINVAL);

        /* Trailing bytes. */
        rf_buf_t t = { 0 };
        rf_buf_append(&t, b.data, b.len);
        rf_buf_append(&t, "x", 1);
        assert_int_equal(rf_list_decode(t.data, t.len, &d), RF_EINVAL);

        /* Unknown version. */
        t.data[0] = 2;
        assert_int_equal(rf_list_decode(t.data, t.len - 1, &d), RF_EINVAL);
        assert_int_equal(rf_list_decode_header(t.data, t.len - 1, &d),
                         RF_EINVAL);

        /* Every byte flipped, one at a time: refused or decoded, never a
         * crash; what decodes re-encodes and prints. */
        static const unsigned char flips[] = { 0xff, 0x80, 0x01, 0x7f };
        for (size_t f = 0; f < sizeof(flips); f++) {
                for (size_t i = 0; i < b.len; i++) {
                        char *p = malloc(b.len);
                        memcpy(p, b.data, b.len);
                        p[i] ^= (char)flips[f];
                        if (rf_list_decode(p, b.len, &d) == RF_OK) {
                                rf_buf_t o = { 0 };
                                rf_list_encode(d, &o);
                                rf_list_to_json(d, &o);
                                rf_buf_free(&o);
                                rf_list_destroy(d);
                        }
                        if (rf_list_decode_header(p, b.len, &d) == RF_OK)
                                rf_list_destroy(d);
                        free(p);
                }
        }
        rf_buf_free(&t);
        rf_buf_free(&b);
        rf_list_destroy(a);
}

static void test_decode_huge_counts(void **state)
{
        (void)state;
        rf_list_t l = { "s", "home", "", "", "lid", "", "mv",
                        "",  "",     0,  0,  NULL,  0,  NULL };
        rf_buf_t b = { 0 };
        rf_list_t *d;

        /* A header claiming 2^62 items followed by a few bytes. */
        rf_list_encode(&l, &b);
        b.len--; /* drop item_cnt 0 */
        rf_buf_put_varint(&b, (uint64_t)1 << 62);
        rf_buf_append(&b, "0123456789abcdefghijk", 21);
        assert_int_equal(rf_list_decode(b.data, b.len, &d), RF_EINVAL);
        assert_int_equal(rf_list_decode_header(b.data, b.len, &d), RF_EINVAL);

        /* One item claiming 2^40 reason codes. */
        rf_buf_reset(&b);
        rf_list_encode(&l, &b);
        b.len--;
        rf_buf_put_varint(&b, 1);
        rf_buf_put_str(&b, "item");
        double score = 1;
        rf_buf_append(&b, &score, sizeof(score));
        rf_buf_put_str(&b, "");
        rf_buf_put_str(&b, "");
        rf_buf_put_varint(&b, (uint64_t)1 << 40);
        rf_buf_put_str(&b, "");
        rf_buf_put_str(&b, "");
        assert_int_equal(rf_list_decode(b.data, b.len, &d), RF_EINVAL);

        /* A varint that never ends. */
        rf_buf_reset(&b);
        rf_list_encode(&l, &b);
        b.len--;
        for (int i = 0; i < 20; i++)
                rf_buf_append(&b, "\xff", 1);
        assert_int_equal(rf_list_decode(b.data, b.len, &d), RF_EINVAL);
        rf_buf_free(&b);
}

struct reject_case {
        const char *path;  /* field to edit, "" for the raw text below */
        const char *value; /* new JSON value, NULL to delete */
        rf_reject_t reason;
        const char *msg;
};

static void test_rejections(void **state)
{
        (void)state;
        static const struct reject_case cases[] = {
                { "subject_id", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"subject_id\"" },
                { "surface", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"surface\"" },
                { "list_id", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"list_id\"" },
                { "generated_at", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"generated_at\"" },
                { "expires_at", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"expires_at\"" },
                { "model_version", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"model_version\"" },
                { "items", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"items\"" },
                { "items[3].item_id", NULL, RF_REJ_MISSING_FIELD,
                  "items[3]: missing field \"item_id\"" },
                { "items[1].score", NULL, RF_REJ_MISSING_FIELD,
                  "items[1]: missing field \"score\"" },
                { "subject_id", "42", RF_REJ_BAD_TYPE,
                  "field \"subject_id\": expected string" },
                { "subject_id", "null", RF_REJ_BAD_TYPE,
                  "field \"subject_id\": expected string" },
                { "context_key", "true", RF_REJ_BAD_TYPE,
                  "field \"context_key\": expected string" },
                { "region", "[]", RF_REJ_BAD_TYPE,
                  "field \"region\": expected string" },
                { "run_id", "{}", RF_REJ_BAD_TYPE,
                  "field \"run_id\": expected string" },
                { "model_version", "1.5", RF_REJ_BAD_TYPE,
                  "field \"model_version\": expected string" },
                { "policy_version", "false", RF_REJ_BAD_TYPE,
                  "field \"policy_version\": expected string" },
                { "feature_set_version", "7", RF_REJ_BAD_TYPE,
                  "field \"feature_set_version\": expected string" },
                { "generated_at", "1795338840000", RF_REJ_BAD_TYPE,
                  "field \"generated_at\": expected string" },
                { "items", "{}", RF_REJ_BAD_TYPE,
                  "field \"items\": expected array" },
                { "items", "[42]", RF_REJ_BAD_TYPE,
                  "items[0]: expected object" },
                { "items[2].score", "\"high\"", RF_REJ_BAD_TYPE,
                  "items[2]: field \"score\": expected number" },
                { "items[2].score", "null", RF_REJ_BAD_TYPE,
                  "items[2]: field \"score\": expected number" },
                { "items[0].item_id", "17", RF_REJ_BAD_TYPE,
                  "items[0]: field \"item_id\": expected string" },
                { "items[0].campaign_id", "7", RF_REJ_BAD_TYPE,
                  "items[0]: field \"campaign_id\": expected string" },
                { "items[0].reason_codes", "\"x\"", RF_REJ_BAD_TYPE,
                  "items[0]: field \"reason_codes\": expected array" },
                { "items[0].reason_codes", "[\"a\",1]", RF_REJ_BAD_TYPE,
                  "items[0]: field \"reason_codes[1]\": expected string" },
                { "subject_id", "\"\"", RF_REJ_BAD_VALUE,
                  "field \"subject_id\": must not be empty" },
                { "surface", "\"\"", RF_REJ_BAD_VALUE,
                  "field \"surface\": must not be empty" },
                { "list_id", "\"\"", RF_REJ_BAD_VALUE,
                  "field \"list_id\": must not be empty" },
                { "items[1].item_id", "\"\"", RF_REJ_BAD_VALUE,
                  "items[1]: field \"item_id\": must not be empty" },
                { "items[0].creator_id", "\"\"", RF_REJ_BAD_VALUE,
                  "items[0]: field \"creator_id\": must not be empty" },
                { "items[0].campaign_id", "\"\"", RF_REJ_BAD_VALUE,
                  "items[0]: field \"campaign_id\": must not be empty" },
                { "subject_id", "\"u_1\\u0000admin\"", RF_REJ_BAD_VALUE,
                  "field \"subject_id\": contains a NUL byte" },
                { "context_key", "\"\\u0000\"", RF_REJ_BAD_VALUE,
                  "field \"context_key\": contains a NUL byte" },
                { "items[2].item_id", "\"m\\u0000\"", RF_REJ_BAD_VALUE,
                  "items[2]: field \"item_id\": contains a NUL byte" },
                { "items[0].reason_codes", "[\"a\\u0000\"]", RF_REJ_BAD_VALUE,
                  "items[0]: field \"reason_codes[0]\": contains a NUL" },
                { "generated_at", "\"yesterday\"", RF_REJ_BAD_TIMESTAMP,
                  "field \"generated_at\": not an RFC 3339 timestamp" },
                { "expires_at", "\"2026-02-30T00:00:00Z\"",
                  RF_REJ_BAD_TIMESTAMP, "field \"expires_at\"" },
                { "expires_at", "\"2026-11-22 09:14:00\"", RF_REJ_BAD_TIMESTAMP,
                  "field \"expires_at\"" },
                { "expires_at", "\"2026-11-22T09:14:00Z\\u0000junk\"",
                  RF_REJ_BAD_TIMESTAMP, "field \"expires_at\"" },
        };

        for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++) {
                char *j = edit(base_json, cases[i].path, cases[i].value);
                expect_reject(j, strlen(j), NULL, cases[i].reason,
                              cases[i].msg);
                free(j);
        }
}

static void test_rejections_raw(void **state)
{
        (void)state;
        static const struct {
                const char *json;
                rf_reject_t reason;
                const char *msg;
        } cases[] = {
                { "", RF_REJ_INVALID_JSON, "invalid JSON" },
                { "not json", RF_REJ_INVALID_JSON, "invalid JSON" },
                { "{\"subject_id\":", RF_REJ_INVALID_JSON, "invalid JSON" },
                { "[1,2]", RF_REJ_INVALID_JSON, "not a JSON object" },
                { "\"str\"", RF_REJ_INVALID_JSON, "invalid JSON" },
                { "{\"subject_id\":\"a\",\"subject_id\":\"b\"}",
                  RF_REJ_INVALID_JSON, "duplicate" },
                { "{\"subject_id\":\"\xff\xfe\"}", RF_REJ_INVALID_JSON,
                  "invalid JSON" },
        };

        for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++)
                expect_reject(cases[i].json, strlen(cases[i].json), NULL,
                              cases[i].reason, cases[i].msg);

        /* A score too large for a double does not parse. */
        char *j = edit(base_json, "items[0].score", "1");
        char *p = strstr(j, "\"score\":1");
        assert_non_null(p);
        size_t off = (size_t)(p - j) + 8;
        char *k = malloc(strlen(j) + 8);
        memcpy(k, j, off);
        strcpy(k + off, "1e400");
        strcat(k, j + off + 1);
        expect_reject(k, strlen(k), NULL, RF_REJ_INVALID_JSON, "invalid JSON");
        free(k);
        free(j);
}

static void test_limits(void **state)
{
        (void)state;
        rf_limits_t lim = rf_limits_default;
        size_t len = strlen(base_json);
        rf_list_t *l;
        rf_rejection_t rej;

        /* size: the exact length passes, one byte less fails */
        lim.max_record_bytes = len;
        assert_int_equal(
            rf_list_from_json(NULL, 0, base_json, len, &lim, &l, &rej), RF_OK);
        rf_list_destroy(l);
        lim.max_record_bytes = len - 1;
        expect_reject(base_json, len, &lim, RF_REJ_TOO_LARGE, "over the limit");
        lim = rf_limits_default;

        /* items: 4 pass a limit of 4, not of 3 */
        lim.max_items_per_list = 4;
        assert_int_equal(
            rf_list_from_json(NULL, 0, base_json, len, &lim, &l, &rej), RF_OK);
        rf_list_destroy(l);
        lim.max_items_per_list = 3;
        expect_reject(base_json, len, &lim, RF_REJ_TOO_MANY_ITEMS,
                      "field \"items\"");
        lim = rf_limits_default;

        /* ids: the longest is "shelf:because-you-watched:m_2231" (32) */
        lim.max_id_len = 32;
        assert_int_equal(
            rf_list_from_json(NULL, 0, base_json, len, &lim, &l, &rej), RF_OK);
        rf_list_destroy(l);
        lim.max_id_len = 31;
        expect_reject(base_json, len, &lim, RF_REJ_ID_TOO_LONG,
                      "field \"context_key\": longer than 31 bytes");
        lim = rf_limits_default;

        char long_id[300];
        memset(long_id, 'x', sizeof(long_id));
        long_id[0] = '"';
        long_id[258] = '"';
        long_id[259] = '\0'; /* 257 bytes of id */
        char *j = edit(base_json, "items[3].item_id", long_id);
        expect_reject(j, strlen(j), NULL, RF_REJ_ID_TOO_LONG,
                      "items[3]: field \"item_id\": longer than 256 bytes");
        free(j);

        /* depth: base_json nests 3 deep (root, items, an item, and its
         * provenance object makes 4) */
        lim.max_json_depth = 4;
        assert_int_equal(
            rf_list_from_json(NULL, 0, base_json, len, &lim, &l, &rej), RF_OK);
        rf_list_destroy(l);
        lim.max_json_depth = 3;
        expect_reject(base_json, len, &lim, RF_REJ_TOO_DEEP, "deeper than 3");

        /* a deep provenance under the default limit */
        rf_buf_t deep = { 0 };
        for (int i = 0; i < 20; i++)
                rf_buf_append(&deep, "[", 1);
        for (int i = 0; i < 20; i++)
                rf_buf_append(&deep, "]", 1);
        j = edit(base_json, "items[0].source_provenance", deep.data);
        expect_reject(j, strlen(j), NULL, RF_REJ_TOO_DEEP, "nested deeper");
        free(j);
        rf_buf_free(&deep);
}

static void test_key(void **state)
{
        (void)state;
        size_t len = strlen(base_json);
        rf_rejection_t rej;
        rf_list_t *l;

        assert_int_equal(
            rf_list_from_json("u_48213907", 10, base_json, len, NULL, &l, &rej),
            RF_OK);
        rf_list_destroy(l);
        /* empty key: not checked */
        assert_int_equal(
            rf_list_from_json("", 0, base_json, len, NULL, &l, &rej), RF_OK);
        rf_list_destroy(l);
        static const char *bad[] = { "u_4821390", "u_482139070", "U_48213907",
                                     "u_48213908" };
        for (size_t i = 0; i < RF_ARRAY_SIZE(bad); i++) {
                l = (rf_list_t *)1;
                assert_int_equal(rf_list_from_json(bad[i], strlen(bad[i]),
                                                   base_json, len, NULL, &l,
                                                   &rej),
                                 RF_EINVAL);
                assert_null(l);
                assert_int_equal(rej.reason, RF_REJ_KEY_MISMATCH);
                assert_non_null(strstr(rej.msg, "\"subject_id\""));
        }
        /* a key with a NUL after a matching prefix */
        assert_int_equal(rf_list_from_json("u_48213907\0x", 12, base_json, len,
                                           NULL, &l, &rej),
                         RF_EINVAL);
        assert_int_equal(rej.reason, RF_REJ_KEY_MISMATCH);

        char longkey[300];
        memset(longkey, 'k', sizeof(longkey));
        assert_int_equal(rf_list_from_json(longkey, sizeof(longkey), base_json,
                                           len, NULL, &l, &rej),
                         RF_EINVAL);
        assert_int_equal(rej.reason, RF_REJ_ID_TOO_LONG);
        assert_non_null(strstr(rej.msg, "message key"));
}

static void test_to_json_shape(void **state)
{
        (void)state;
        rf_list_t *l = parse_ok(min_json);
        rf_buf_t out = { 0 };

        rf_list_to_json(l, &out);
        assert_string_equal(
            out.data, "{\"subject_id\":\"u_10007\",\"surface\":\"search\","
                      "\"context_key\":\"\",\"list_id\":\"lst_inc_1\","
                      "\"generated_at\":\"2026-11-22T09:14:00.000Z\","
                      "\"expires_at\":\"2026-11-22T20:14:00.000Z\","
                      "\"model_version\":\"ranker-v31.4\","
                      "\"items\":[{\"item_id\":\"m_3001\",\"score\":12.0}]}");
        rf_buf_free(&out);
        rf_list_destroy(l);
        rf_list_destroy(NULL); /* a no-op */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_list_fields),
                cmocka_unit_test(test_minimal_list_defaults),
                cmocka_unit_test(test_unknown_fields_and_null_optionals),
                cmocka_unit_test(test_stream_takes_common_shapes),
                cmocka_unit_test(test_stream_declines_the_rest),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_encode_handmade_list),
                cmocka_unit_test(test_decode_header),
                cmocka_unit_test(test_decode_head),
                cmocka_unit_test(test_walk),
                cmocka_unit_test(test_decode_truncated_and_corrupt),
                cmocka_unit_test(test_decode_huge_counts),
                cmocka_unit_test(test_rejections),
                cmocka_unit_test(test_rejections_raw),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_key),
                cmocka_unit_test(test_to_json_shape),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
