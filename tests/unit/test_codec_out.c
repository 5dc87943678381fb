/*
 * Unit tests of the output encoders (src/codec_out.c): the exact bytes of
 * dead-letter and invalidation records, how rejected values that are not
 * UTF-8 or too long are carried, and that every record we write conforms
 * to the schema in topics/recs.dlq.v1.json and recs.invalidations.v1.json
 * (required fields present, no field the schema lacks, types, enums,
 * date-times).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "recfresh/event.h"
#include "recfresh/outputs.h"

#ifndef RF_SOURCE_DIR
#define RF_SOURCE_DIR "."
#endif

/* 2026-11-22T10:02:17.431Z and 2026-11-22T10:02:18.000Z */
#define T_RECORD 1795341737431LL
#define T_NOW    1795341738000LL

static json_t *dlq_schema, *inv_schema;

static json_t *load_schema(const char *topic)
{
        const char *dir = getenv("RF_SOURCE_DIR");
        char path[1024];
        json_error_t err;
        json_t *t, *s;

        snprintf(path, sizeof(path), "%s/topics/%s.json",
                 dir && *dir ? dir : RF_SOURCE_DIR, topic);
        t = json_load_file(path, 0, &err);
        if (!t)
                print_error("%s:%d: %s\n", path, err.line, err.text);
        assert_non_null(t);
        s = json_incref(json_object_get(t, "value_schema"));
        json_decref(t);
        assert_non_null(s);
        return s;
}

static int setup(void **state)
{
        (void)state;
        dlq_schema = load_schema("recs.dlq.v1");
        inv_schema = load_schema("recs.invalidations.v1");
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        json_decref(dlq_schema);
        json_decref(inv_schema);
        return 0;
}

static int type_is(json_t *v, const char *type)
{
        if (!strcmp(type, "string"))
                return json_is_string(v);
        if (!strcmp(type, "integer"))
                return json_is_integer(v);
        if (!strcmp(type, "number"))
                return json_is_number(v);
        if (!strcmp(type, "boolean"))
                return json_is_boolean(v);
        if (!strcmp(type, "object"))
                return json_is_object(v);
        if (!strcmp(type, "array"))
                return json_is_array(v);
        return 0;
}

/* Checks \p v against the subset of JSON Schema our topic files use:
 * type, required, properties (and no other keys), enum, minLength,
 * format date-time. */
static void check_schema(json_t *schema, json_t *v, const char *path)
{
        json_t *type = json_object_get(schema, "type");
        json_t *en = json_object_get(schema, "enum");
        json_t *minl = json_object_get(schema, "minLength");
        json_t *fmt = json_object_get(schema, "format");
        json_t *req = json_object_get(schema, "required");
        json_t *props = json_object_get(schema, "properties");
        const char *key;
        json_t *x;
        size_t i;

        if (type && !type_is(v, json_string_value(type)))
                fail_msg("%s: expected %s", path, json_string_value(type));
        if (en) {
                int found = 0;
                json_array_foreach(en, i, x)
                {
                        found |= json_equal(x, v);
                }
                if (!found)
                        fail_msg("%s: \"%s\" not in enum", path,
                                 json_string_value(v));
        }
        if (minl && json_string_length(v) < (size_t)json_integer_value(minl))
                fail_msg("%s: shorter than %d", path,
                         (int)json_integer_value(minl));
        if (fmt && !strcmp(json_string_value(fmt), "date-time")) {
                int64_t ms;
                if (rf_time_parse(json_string_value(v), &ms))
                        fail_msg("%s: not a date-time", path);
        }
        if (!json_is_object(v))
                return;
        json_array_foreach(req, i, x)
        {
                if (!json_object_get(v, json_string_value(x)))
                        fail_msg("%s: missing required \"%s\"", path,
                                 json_string_value(x));
        }
        json_object_foreach(v, key, x)
        {
                json_t *sub = json_object_get(props, key);
                char sub_path[256];

                if (!sub)
                        fail_msg("%s: \"%s\" is not in the schema", path, key);
                snprintf(sub_path, sizeof(sub_path), "%s.%s", path, key);
                check_schema(sub, x, sub_path);
        }
}

/* Encodes a DLQ record, checks it against the schema, returns it parsed. */
static json_t *dlq(const rf_source_t *src, const char *key, size_t key_len,
                   const char *value, size_t value_len,
                   const rf_rejection_t *rej, size_t max, rf_buf_t *out)
{
        json_error_t err;
        json_t *o;

        rf_buf_reset(out);
        rf_dlq_encode(out, src, key, key_len, max, value, value_len, rej, max,
                      T_NOW);
        o = json_loadb(out->data, out->len, JSON_ALLOW_NUL, &err);
        if (!o)
                print_error("%s: %s\n", out->data, err.text);
        assert_non_null(o);
        check_schema(dlq_schema, o, "dlq");
        return o;
}

static const rf_source_t src = { "recs.item-bans.v1", 3, 1234, T_RECORD };

static void test_dlq_exact(void **state)
{
        (void)state;
        rf_rejection_t rej = { RF_REJ_MISSING_FIELD,
                               "missing field \"item_id\"" };
        const char value[] = "{\"event_id\":\"e1\",\"type\":\"item_banned\"}";
        rf_buf_t out = { 0 };
        json_t *o;

        o = dlq(&src, "m_7731", 6, value, strlen(value), &rej, 65536, &out);
        assert_string_equal(
            out.data,
            "{\"source\":{\"topic\":\"recs.item-bans.v1\",\"partition\":3,"
            "\"offset\":1234,\"timestamp\":\"2026-11-22T10:02:17.431Z\"},"
            "\"reason\":\"missing_field\","
            "\"error\":\"missing field \\\"item_id\\\"\","
            "\"key\":\"m_7731\","
            "\"value\":\"{\\\"event_id\\\":\\\"e1\\\",\\\"type\\\":"
            "\\\"item_banned\\\"}\","
            "\"rejected_at\":\"2026-11-22T10:02:18.000Z\"}");
        /* The original value comes back byte for byte. */
        assert_string_equal(json_string_value(json_object_get(o, "value")),
                            value);
        json_decref(o);
        rf_buf_free(&out);
}

static void test_dlq_optional_parts(void **state)
{
        (void)state;
        rf_source_t s = { "recs.lists.v1", 0, 0, -1 };
        rf_rejection_t rej = { RF_REJ_INVALID_JSON, "invalid JSON at byte 0" };
        rf_buf_t out = { 0 };
        json_t *o;

        /* no key, no record timestamp, tombstone value */
        o = dlq(&s, NULL, 0, NULL, 0, &rej, 100, &out);
        assert_null(json_object_get(o, "key"));
        assert_null(json_object_get(json_object_get(o, "source"), "timestamp"));
        assert_null(json_object_get(o, "value"));
        assert_null(json_object_get(o, "value_base64"));
        assert_null(json_object_get(o, "value_truncated"));
        json_decref(o);

        /* empty key and value are kept as empty strings */
        o = dlq(&s, "", 0, "", 0, &rej, 100, &out);
        assert_string_equal(json_string_value(json_object_get(o, "key")), "");
        assert_string_equal(json_string_value(json_object_get(o, "value")), "");
        json_decref(o);

        /* a key that is not UTF-8 is left out (the DLQ record's own key
         * carries it) */
        o = dlq(&s, "\xff\x01", 2, "{}", 2, &rej, 100, &out);
        assert_null(json_object_get(o, "key"));
        json_decref(o);

        /* an error message that is not UTF-8 still gets through */
        rf_rejection_t bad = { RF_REJ_BAD_VALUE, "field \"x\": \xff\xfe" };
        o = dlq(&s, NULL, 0, "{}", 2, &bad, 100, &out);
        assert_string_equal(json_string_value(json_object_get(o, "error")),
                            "field \"x\": ??");
        json_decref(o);
        rf_buf_free(&out);
}

static void test_dlq_binary_and_nul(void **state)
{
        (void)state;
        static const struct {
                const char *in;
                size_t len;
                const char *b64;
        } cases[] = {
                { "\xff", 1, "/w==" },
                { "\xff\xfe", 2, "//4=" },
                { "\xff\xfe\xfd", 3, "//79" },
                { "\x00\xff\x10\x83\x10\x51", 6, "AP8QgxBR" },
                { "\xfb\xff\xbf", 3, "+/+/" },
                { "hello \xc3", 7, "aGVsbG8gww==" },
        };
        rf_rejection_t rej = { RF_REJ_INVALID_JSON, "invalid JSON" };
        rf_buf_t out = { 0 };
        json_t *o;

        for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++) {
                o = dlq(&src, NULL, 0, cases[i].in, cases[i].len, &rej, 100,
                        &out);
                assert_null(json_object_get(o, "value"));
                assert_string_equal(
                    json_string_value(json_object_get(o, "value_base64")),
                    cases[i].b64);
                json_decref(o);
        }

        /* NUL bytes are valid UTF-8: kept as a string. */
        o = dlq(&src, NULL, 0, "a\0b", 3, &rej, 100, &out);
        json_t *v = json_object_get(o, "value");
        assert_int_equal(json_string_length(v), 3);
        assert_memory_equal(json_string_value(v), "a\0b", 3);
        assert_non_null(strstr(out.data, "a\\u0000b"));
        json_decref(o);
        rf_buf_free(&out);
}

static void test_dlq_truncation(void **state)
{
        (void)state;
        /* "h\u00e9llo \U0001F600": h, é (2 bytes), l, l, o, space, 😀 (4) */
        const char v[] = "h\xc3\xa9llo \xf0\x9f\x98\x80";
        const size_t vlen = sizeof(v) - 1; /* 11 */
        static const struct {
                size_t max;
                const char *want;
        } cases[] = {
                { 0, "" },
                { 1, "h" },
                { 2, "h" }, /* would split é */
                { 3, "h\xc3\xa9" },
                { 7, "h\xc3\xa9llo " },
                { 8, "h\xc3\xa9llo " }, /* would split the emoji */
                { 9, "h\xc3\xa9llo " },
                { 10, "h\xc3\xa9llo " },
        };
        rf_rejection_t rej = { RF_REJ_TOO_LARGE, "record too large" };
        rf_buf_t out = { 0 };
        json_t *o;

        for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++) {
                o = dlq(&src, NULL, 0, v, vlen, &rej, cases[i].max, &out);
                assert_string_equal(
                    json_string_value(json_object_get(o, "value")),
                    cases[i].want);
                assert_true(
                    json_is_true(json_object_get(o, "value_truncated")));
                json_decref(o);
        }
        /* at or under the limit: whole, no flag */
        for (size_t max = vlen; max <= vlen + 1; max++) {
                o = dlq(&src, NULL, 0, v, vlen, &rej, max, &out);
                assert_string_equal(
                    json_string_value(json_object_get(o, "value")), v);
                assert_null(json_object_get(o, "value_truncated"));
                json_decref(o);
        }
        /* binary: cut to exactly max bytes, then base64 */
        o = dlq(&src, NULL, 0, "\xff\xfe\xfd\xfc", 4, &rej, 2, &out);
        assert_string_equal(
            json_string_value(json_object_get(o, "value_base64")), "//4=");
        assert_true(json_is_true(json_object_get(o, "value_truncated")));
        json_decref(o);
        /* keys are cut the same way, with their own flag */
        o = dlq(&src, v, vlen, "{}", 2, &rej, 8, &out);
        assert_string_equal(json_string_value(json_object_get(o, "key")),
                            "h\xc3\xa9llo ");
        assert_true(json_is_true(json_object_get(o, "key_truncated")));
        assert_null(json_object_get(o, "value_truncated"));
        json_decref(o);
        o = dlq(&src, v, vlen, "{}", 2, &rej, vlen, &out);
        assert_string_equal(json_string_value(json_object_get(o, "key")), v);
        assert_null(json_object_get(o, "key_truncated"));
        json_decref(o);
        rf_buf_free(&out);
}

static void test_dlq_every_reason(void **state)
{
        (void)state;
        rf_buf_t out = { 0 };

        /* Every reason we can reject for is in the schema's enum. */
        for (int r = RF_REJ_NONE + 1; r < RF_REJ__CNT; r++) {
                rf_rejection_t rej;
                rf_reject(&rej, (rf_reject_t)r, "reason %d", r);
                json_t *o = dlq(&src, "k", 1, "v", 1, &rej, 10, &out);
                assert_string_equal(
                    json_string_value(json_object_get(o, "reason")),
                    rf_reject2str((rf_reject_t)r));
                json_decref(o);
        }
        /* ...and the enum has nothing we never write. */
        json_t *en = json_object_get(
            json_object_get(json_object_get(dlq_schema, "properties"),
                            "reason"),
            "enum");
        assert_int_equal(json_array_size(en), RF_REJ__CNT - 1);
        rf_buf_free(&out);
}

static void test_invalidation(void **state)
{
        (void)state;
        static const char *kinds[] = { "item", "creator", "campaign", "user" };
        rf_invalidation_t inv = {
                .subject_id = "u_48213907",
                .surface = "home",
                .context_key = "",
                .list_id = "lst_0001",
                .cause = "item_banned",
                .event_id = "ts-evt-8c1f",
                .entity_kind = "item",
                .entity_id = "m_7731",
                .occurred_at = T_RECORD,
                .invalidated_at = T_NOW,
        };
        rf_buf_t out = { 0 };
        json_t *o;

        rf_invalidation_encode(&out, &inv);
        assert_string_equal(
            out.data, "{\"subject_id\":\"u_48213907\",\"surface\":\"home\","
                      "\"context_key\":\"\",\"list_id\":\"lst_0001\","
                      "\"cause\":\"item_banned\",\"event_id\":\"ts-evt-8c1f\","
                      "\"entity\":{\"kind\":\"item\",\"id\":\"m_7731\"},"
                      "\"occurred_at\":\"2026-11-22T10:02:17.431Z\","
                      "\"invalidated_at\":\"2026-11-22T10:02:18.000Z\"}");
        /* Times are formatted again when they change (the encoder keeps
         * the last ones). */
        inv.occurred_at = T_RECORD + 1;
        inv.invalidated_at = T_NOW + 1000;
        rf_buf_reset(&out);
        rf_invalidation_encode(&out, &inv);
        assert_non_null(strstr(
            out.data, "\"occurred_at\":\"2026-11-22T10:02:17.432Z\","
                      "\"invalidated_at\":\"2026-11-22T10:02:19.000Z\"}"));
        inv.occurred_at = T_RECORD;
        inv.invalidated_at = T_NOW;

        /* Every event type is a cause the schema knows; every kind too. */
        for (int t = 0; t < RF_EV__CNT; t++) {
                inv.cause = rf_event_type2str((rf_event_type_t)t);
                inv.entity_kind = kinds[t % RF_ARRAY_SIZE(kinds)];
                inv.list_id = t % 2 ? "" : "lst_0001"; /* list gone */
                rf_buf_reset(&out);
                rf_invalidation_encode(&out, &inv);
                o = json_loadb(out.data, out.len, 0, NULL);
                assert_non_null(o);
                check_schema(inv_schema, o, "invalidation");
                assert_string_equal(
                    json_string_value(json_object_get(o, "cause")), inv.cause);
                json_decref(o);
        }

        /* NULL strings are written as "" (never a missing field). */
        rf_invalidation_t empty = { .cause = "consent_revoked",
                                    .entity_kind = "user" };
        rf_buf_reset(&out);
        rf_invalidation_encode(&out, &empty);
        o = json_loadb(out.data, out.len, 0, NULL);
        check_schema(inv_schema, o, "invalidation");
        assert_string_equal(json_string_value(json_object_get(o, "surface")),
                            "");
        json_decref(o);
        rf_buf_free(&out);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dlq_exact),
                cmocka_unit_test(test_dlq_optional_parts),
                cmocka_unit_test(test_dlq_binary_and_nul),
                cmocka_unit_test(test_dlq_truncation),
                cmocka_unit_test(test_dlq_every_reason),
                cmocka_unit_test(test_invalidation),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
