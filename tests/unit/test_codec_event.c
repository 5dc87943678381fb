/*
 * Unit tests of the event codec (src/codec_event.c): what each event type
 * of the five event topics parses to, every reason an event is rejected
 * for, the message key check, and the raw-bytes nesting check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "recfresh/codec_json.h"
#include "recfresh/event.h"
#include "recfresh/keys.h"
#include "recfresh/topics.h"

static const char ban_json[] =
    "{\"event_id\":\"ts-evt-8c1f\",\"type\":\"item_banned\","
    "\"item_id\":\"m_7731\",\"occurred_at\":\"2026-11-22T10:02:17.431Z\","
    "\"reason\":\"policy violation\"}";
static const char stock_json[] =
    "{\"event_id\":\"inv-931\",\"type\":\"stock_changed\","
    "\"item_id\":\"sku_448812\",\"in_stock\":false,\"region\":\"eu-west\","
    "\"occurred_at\":\"2026-11-22T10:14:55.120Z\"}";
static const char hide_item_json[] =
    "{\"event_id\":\"app-hide-1\",\"type\":\"item_hidden\","
    "\"user_id\":\"u_48213907\",\"item_id\":\"m_1088\","
    "\"occurred_at\":\"2026-11-22T19:41:08.902Z\"}";
static const char hide_creator_json[] =
    "{\"event_id\":\"app-hide-2\",\"type\":\"creator_hidden\","
    "\"user_id\":\"u_48213907\",\"creator_id\":\"c_0419\","
    "\"occurred_at\":\"2026-11-22T19:45:00Z\"}";
static const char consent_json[] =
    "{\"event_id\":\"cmp-1\",\"type\":\"consent_revoked\","
    "\"user_id\":\"u_10007\",\"scope\":\"personalization\","
    "\"occurred_at\":\"2026-11-22T12:00:03.333Z\"}";
static const char campaign_json[] =
    "{\"event_id\":\"mkt-1\",\"type\":\"campaign_expired\","
    "\"campaign_id\":\"cmp_winter_sale\","
    "\"occurred_at\":\"2026-12-31T23:00:00+01:00\"}";

static int64_t ts(const char *s)
{
        int64_t ms = 0;

        assert_int_equal(rf_time_parse(s, &ms), 0);
        return ms;
}

static void parse_ok(int topic, const char *json, rf_event_t *ev)
{
        rf_rejection_t rej;
        int rc =
            rf_event_parse(topic, NULL, 0, json, strlen(json), NULL, ev, &rej);

        if (rc != RF_OK)
                print_error("rejected: %s: %s\n", rf_reject2str(rej.reason),
                            rej.msg);
        assert_int_equal(rc, RF_OK);
        assert_int_equal(rej.reason, RF_REJ_NONE);
        assert_int_equal(ev->topic, topic);
        /* Never NULL, absent or not. */
        assert_non_null(ev->event_id);
        assert_non_null(ev->item_id);
        assert_non_null(ev->creator_id);
        assert_non_null(ev->campaign_id);
        assert_non_null(ev->user_id);
        assert_non_null(ev->region);
        assert_non_null(ev->reason);
}

/* Edits a copy of \p json: sets \p field to JSON \p value, or deletes it
 * when \p value is NULL. Caller frees. */
static char *edit(const char *json, const char *field, const char *value)
{
        json_t *root = json_loads(json, 0, NULL);
        char *out;

        assert_non_null(root);
        if (value) {
                json_t *v =
                    json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                assert_non_null(v);
                json_object_set_new(root, field, v);
        } else {
                assert_int_equal(json_object_del(root, field), 0);
        }
        out = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return out;
}

static void expect_reject_key(int topic, const char *key, size_t key_len,
                              const char *json, size_t len,
                              const rf_limits_t *lim, rf_reject_t reason,
                              const char *msg_part)
{
        rf_rejection_t rej;
        rf_event_t ev;
        int rc;

        memset(&ev, 0xa5, sizeof(ev));
        rc = rf_event_parse(topic, key, key_len, json, len, lim, &ev, &rej);
        if (rc == RF_OK || rej.reason != reason || !strstr(rej.msg, msg_part))
                print_error("%s %.200s: got %s \"%s\", want %s \"%s\"\n",
                            rf_topic(topic)->name, json,
                            rf_reject2str(rej.reason), rej.msg,
                            rf_reject2str(reason), msg_part);
        assert_int_equal(rc, RF_EINVAL);
        assert_int_equal(rej.reason, reason);
        assert_non_null(strstr(rej.msg, msg_part));
        assert_null(ev.mem_); /* nothing to clear */
}

static void expect_reject(int topic, const char *json, rf_reject_t reason,
                          const char *msg_part)
{
        expect_reject_key(topic, NULL, 0, json, strlen(json), NULL, reason,
                          msg_part);
}

static void expect_edit_reject(int topic, const char *json, const char *field,
                               const char *value, rf_reject_t reason,
                               const char *msg_part)
{
        char *j = edit(json, field, value);

        expect_reject(topic, j, reason, msg_part);
        free(j);
}

static void test_item_bans(void **state)
{
        (void)state;
        rf_event_t ev;
        char *j;

        parse_ok(RF_TOPIC_ITEM_BANS, ban_json, &ev);
        assert_int_equal(ev.type, RF_EV_ITEM_BANNED);
        assert_string_equal(ev.event_id, "ts-evt-8c1f");
        assert_string_equal(ev.item_id, "m_7731");
        assert_string_equal(ev.reason, "policy violation");
        assert_string_equal(ev.user_id, "");
        assert_string_equal(ev.creator_id, "");
        assert_int_equal(ev.occurred_at, ts("2026-11-22T10:02:17.431Z"));
        rf_event_clear(&ev);
        assert_null(ev.mem_);

        j = edit(ban_json, "type", "\"item_unbanned\"");
        char *j2 = edit(j, "reason", NULL);
        parse_ok(RF_TOPIC_ITEM_BANS, j2, &ev);
        assert_int_equal(ev.type, RF_EV_ITEM_UNBANNED);
        assert_string_equal(ev.reason, "");
        rf_event_clear(&ev);
        free(j);
        free(j2);

        expect_edit_reject(RF_TOPIC_ITEM_BANS, ban_json, "item_id", NULL,
                           RF_REJ_MISSING_FIELD, "missing field \"item_id\"");
        expect_edit_reject(RF_TOPIC_ITEM_BANS, ban_json, "reason", "5",
                           RF_REJ_BAD_TYPE,
                           "field \"reason\": expected string");
        char big[1100];
        memset(big, 'r', sizeof(big));
        big[0] = '"';
        big[1026] = '"';
        big[1027] = '\0'; /* 1025 bytes of reason */
        expect_edit_reject(RF_TOPIC_ITEM_BANS, ban_json, "reason", big,
                           RF_REJ_BAD_VALUE, "field \"reason\": longer than");
        big[1025] = '"';
        big[1026] = '\0'; /* 1024: the schema's maxLength */
        j = edit(ban_json, "reason", big);
        parse_ok(RF_TOPIC_ITEM_BANS, j, &ev);
        assert_int_equal(strlen(ev.reason), 1024);
        rf_event_clear(&ev);
        free(j);
}

static void test_stock(void **state)
{
        (void)state;
        rf_event_t ev;
        char *j;

        parse_ok(RF_TOPIC_STOCK, stock_json, &ev);
        assert_int_equal(ev.type, RF_EV_STOCK_CHANGED);
        assert_string_equal(ev.item_id, "sku_448812");
        assert_int_equal(ev.in_stock, 0);
        assert_string_equal(ev.region, "eu-west");
        rf_event_clear(&ev);

        j = edit(stock_json, "in_stock", "true");
        char *j2 = edit(j, "region", "null");
        parse_ok(RF_TOPIC_STOCK, j2, &ev);
        assert_int_equal(ev.in_stock, 1);
        assert_string_equal(ev.region, ""); /* every region */
        rf_event_clear(&ev);
        free(j);
        free(j2);

        expect_edit_reject(RF_TOPIC_STOCK, stock_json, "in_stock", NULL,
                           RF_REJ_MISSING_FIELD, "missing field \"in_stock\"");
        expect_edit_reject(RF_TOPIC_STOCK, stock_json, "in_stock", "\"yes\"",
                           RF_REJ_BAD_TYPE,
                           "field \"in_stock\": expected boolean");
        expect_edit_reject(RF_TOPIC_STOCK, stock_json, "in_stock", "0",
                           RF_REJ_BAD_TYPE,
                           "field \"in_stock\": expected boolean");
        expect_edit_reject(RF_TOPIC_STOCK, stock_json, "in_stock", "null",
                           RF_REJ_BAD_TYPE,
                           "field \"in_stock\": expected boolean");
        expect_edit_reject(RF_TOPIC_STOCK, stock_json, "region", "[]",
                           RF_REJ_BAD_TYPE,
                           "field \"region\": expected string");
}

static void test_user_hides(void **state)
{
        (void)state;
        static const struct {
                const char *type;
                rf_event_type_t t;
                int creator;
        } types[] = {
                { "item_hidden", RF_EV_ITEM_HIDDEN, 0 },
                { "item_unhidden", RF_EV_ITEM_UNHIDDEN, 0 },
                { "creator_hidden", RF_EV_CREATOR_HIDDEN, 1 },
                { "creator_unhidden", RF_EV_CREATOR_UNHIDDEN, 1 },
        };
        rf_event_t ev;

        for (size_t i = 0; i < RF_ARRAY_SIZE(types); i++) {
                const char *base =
                    types[i].creator ? hide_creator_json : hide_item_json;
                char type[40];

                snprintf(type, sizeof(type), "\"%s\"", types[i].type);
                char *j = edit(base, "type", type);
                parse_ok(RF_TOPIC_USER_HIDES, j, &ev);
                assert_int_equal(ev.type, types[i].t);
                assert_string_equal(ev.user_id, "u_48213907");
                assert_string_equal(ev.item_id,
                                    types[i].creator ? "" : "m_1088");
                assert_string_equal(ev.creator_id,
                                    types[i].creator ? "c_0419" : "");
                rf_event_clear(&ev);

                /* the id this type needs, which the schema cannot require */
                const char *need = types[i].creator ? "creator_id" : "item_id";
                char msg[64];
                snprintf(msg, sizeof(msg), "missing field \"%s\"", need);
                expect_edit_reject(RF_TOPIC_USER_HIDES, j, need, NULL,
                                   RF_REJ_MISSING_FIELD, msg);
                expect_edit_reject(RF_TOPIC_USER_HIDES, j, need, "null",
                                   RF_REJ_BAD_TYPE, need);
                free(j);
        }
        expect_edit_reject(RF_TOPIC_USER_HIDES, hide_item_json, "user_id", NULL,
                           RF_REJ_MISSING_FIELD, "missing field \"user_id\"");
        /* The other kind's id, when given, is still checked. */
        expect_edit_reject(RF_TOPIC_USER_HIDES, hide_item_json, "creator_id",
                           "\"\"", RF_REJ_BAD_VALUE,
                           "field \"creator_id\": must not be empty");
}

static void test_consent(void **state)
{
        (void)state;
        static const char *scopes[] = { "all", "personalization", "email",
                                        "push" };
        rf_event_t ev;

        parse_ok(RF_TOPIC_CONSENT, consent_json, &ev);
        assert_int_equal(ev.type, RF_EV_CONSENT_REVOKED);
        assert_string_equal(ev.user_id, "u_10007");
        assert_int_equal(ev.scope, RF_SCOPE_PERSONALIZATION);
        rf_event_clear(&ev);

        for (size_t i = 0; i < RF_ARRAY_SIZE(scopes); i++) {
                char v[40];
                snprintf(v, sizeof(v), "\"%s\"", scopes[i]);
                char *j = edit(consent_json, "scope", v);
                char *j2 = edit(j, "type", "\"consent_granted\"");
                parse_ok(RF_TOPIC_CONSENT, j2, &ev);
                assert_int_equal(ev.type, RF_EV_CONSENT_GRANTED);
                assert_int_equal(ev.scope, (int)i);
                assert_string_equal(rf_consent_scope2str(ev.scope), scopes[i]);
                assert_int_equal(rf_consent_scope_parse(scopes[i]), (int)i);
                rf_event_clear(&ev);
                free(j);
                free(j2);
        }
        assert_int_equal(rf_consent_scope_parse("sms"), -1);
        assert_int_equal(rf_consent_scope_parse(""), -1);
        assert_int_equal(rf_consent_scope_parse(NULL), -1);
        assert_string_equal(rf_consent_scope2str(RF_SCOPE__CNT), "unknown");

        expect_edit_reject(RF_TOPIC_CONSENT, consent_json, "scope", "\"sms\"",
                           RF_REJ_BAD_VALUE,
                           "field \"scope\": not a consent scope");
        expect_edit_reject(RF_TOPIC_CONSENT, consent_json, "scope", "\"ALL\"",
                           RF_REJ_BAD_VALUE, "field \"scope\"");
        expect_edit_reject(RF_TOPIC_CONSENT, consent_json, "scope", NULL,
                           RF_REJ_MISSING_FIELD, "missing field \"scope\"");
        expect_edit_reject(RF_TOPIC_CONSENT, consent_json, "scope", "1",
                           RF_REJ_BAD_TYPE, "field \"scope\": expected string");
        expect_edit_reject(RF_TOPIC_CONSENT, consent_json, "scope",
                           "\"all\\u0000x\"", RF_REJ_BAD_VALUE,
                           "field \"scope\": contains a NUL byte");
}

static void test_campaigns(void **state)
{
        (void)state;
        rf_event_t ev;

        parse_ok(RF_TOPIC_CAMPAIGNS, campaign_json, &ev);
        assert_int_equal(ev.type, RF_EV_CAMPAIGN_EXPIRED);
        assert_string_equal(ev.campaign_id, "cmp_winter_sale");
        assert_string_equal(ev.event_id, "mkt-1");
        assert_int_equal(ev.occurred_at, ts("2026-12-31T22:00:00Z"));
        rf_event_clear(&ev);
        expect_edit_reject(RF_TOPIC_CAMPAIGNS, campaign_json, "campaign_id",
                           NULL, RF_REJ_MISSING_FIELD,
                           "missing field \"campaign_id\"");
}

static void test_common_rejections(void **state)
{
        (void)state;
        static const struct {
                int topic;
                const char *json;
        } all[] = {
                { RF_TOPIC_ITEM_BANS, ban_json },
                { RF_TOPIC_STOCK, stock_json },
                { RF_TOPIC_USER_HIDES, hide_item_json },
                { RF_TOPIC_USER_HIDES, hide_creator_json },
                { RF_TOPIC_CONSENT, consent_json },
                { RF_TOPIC_CAMPAIGNS, campaign_json },
        };
        static const struct {
                const char *field, *value;
                rf_reject_t reason;
                const char *msg;
        } cases[] = {
                { "event_id", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"event_id\"" },
                { "type", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"type\"" },
                { "occurred_at", NULL, RF_REJ_MISSING_FIELD,
                  "missing field \"occurred_at\"" },
                { "event_id", "7", RF_REJ_BAD_TYPE,
                  "field \"event_id\": expected string" },
                { "event_id", "null", RF_REJ_BAD_TYPE,
                  "field \"event_id\": expected string" },
                { "type", "[\"item_banned\"]", RF_REJ_BAD_TYPE,
                  "field \"type\": expected string" },
                { "occurred_at", "1795341737431", RF_REJ_BAD_TYPE,
                  "field \"occurred_at\": expected string" },
                { "event_id", "\"\"", RF_REJ_BAD_VALUE,
                  "field \"event_id\": must not be empty" },
                { "event_id", "\"e\\u0000\"", RF_REJ_BAD_VALUE,
                  "field \"event_id\": contains a NUL byte" },
                { "type", "\"item_deleted\"", RF_REJ_UNKNOWN_TYPE,
                  "field \"type\": not an event type of" },
                { "type", "\"\"", RF_REJ_UNKNOWN_TYPE, "field \"type\"" },
                { "type", "\"item_banned\\u0000\"", RF_REJ_BAD_VALUE,
                  "field \"type\": contains a NUL byte" },
                { "occurred_at", "\"2026-11-22\"", RF_REJ_BAD_TIMESTAMP,
                  "field \"occurred_at\": not an RFC 3339 timestamp" },
                { "occurred_at", "\"2026-13-01T00:00:00Z\"",
                  RF_REJ_BAD_TIMESTAMP, "field \"occurred_at\"" },
                { "occurred_at", "\"2026-11-22T10:02:17\"",
                  RF_REJ_BAD_TIMESTAMP, "field \"occurred_at\"" },
                { "occurred_at", "\"2026-11-22T10:02:17Z\\u0000\"",
                  RF_REJ_BAD_TIMESTAMP, "field \"occurred_at\"" },
        };

        for (size_t t = 0; t < RF_ARRAY_SIZE(all); t++)
                for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++)
                        expect_edit_reject(all[t].topic, all[t].json,
                                           cases[i].field, cases[i].value,
                                           cases[i].reason, cases[i].msg);
}

static void test_type_of_other_topic(void **state)
{
        (void)state;
        /* Each topic refuses the types of the others. */
        expect_edit_reject(RF_TOPIC_STOCK, stock_json, "type",
                           "\"item_banned\"", RF_REJ_UNKNOWN_TYPE,
                           "not an event type of recs.stock.v1");
        expect_edit_reject(RF_TOPIC_ITEM_BANS, ban_json, "type",
                           "\"item_hidden\"", RF_REJ_UNKNOWN_TYPE,
                           "recs.item-bans.v1");
        expect_edit_reject(RF_TOPIC_CONSENT, consent_json, "type",
                           "\"campaign_expired\"", RF_REJ_UNKNOWN_TYPE,
                           "recs.consent.v1");
        /* Topics that carry no events. */
        expect_reject(RF_TOPIC_LISTS, ban_json, RF_REJ_UNKNOWN_TOPIC,
                      "carries no events");
        expect_reject(-1, ban_json, RF_REJ_UNKNOWN_TOPIC, "carries no events");
        expect_reject(RF_TOPIC__CNT, ban_json, RF_REJ_UNKNOWN_TOPIC,
                      "carries no events");
}

static void test_unknown_fields_ignored(void **state)
{
        (void)state;
        char *j = edit(ban_json, "x_trace", "{\"span\":[1,2,{\"a\":null}]}");
        rf_event_t ev;

        parse_ok(RF_TOPIC_ITEM_BANS, j, &ev);
        assert_string_equal(ev.item_id, "m_7731");
        rf_event_clear(&ev);
        free(j);
}

static void test_invalid_json(void **state)
{
        (void)state;
        static const char *bad[] = {
                "",
                "{",
                "not json",
                "{\"event_id\":\"e\",}",
                "{\"item_id\":\"a\",\"item_id\":\"b\"}",
                "\"just a string\"",
                "{\"event_id\":\"\xc3\x28\"}",
        };

        for (size_t i = 0; i < RF_ARRAY_SIZE(bad); i++)
                expect_reject(RF_TOPIC_ITEM_BANS, bad[i], RF_REJ_INVALID_JSON,
                              "invalid JSON");
        expect_reject(RF_TOPIC_ITEM_BANS, "[]", RF_REJ_INVALID_JSON,
                      "not a JSON object");
        expect_reject_key(RF_TOPIC_ITEM_BANS, NULL, 0, NULL, 0, NULL,
                          RF_REJ_INVALID_JSON, "invalid JSON");
        /* A NUL byte in the raw text (not escaped) is not JSON. */
        expect_reject_key(RF_TOPIC_ITEM_BANS, NULL, 0, ban_json,
                          sizeof(ban_json), NULL, RF_REJ_INVALID_JSON,
                          "invalid JSON");
}

/* ---- the flat (yajl) parse against jansson's tree ------------------------*/

static void test_flat_parse(void **state)
{
        (void)state;
        const char *fixtures[] = { ban_json,       stock_json,
                                   hide_item_json, hide_creator_json,
                                   consent_json,   campaign_json };
        rf_json_flat_t fl;
        rf_jv_t v;

        for (size_t i = 0; i < RF_ARRAY_SIZE(fixtures); i++)
                assert_int_equal(rf_json_flat_parse(fixtures[i],
                                                    strlen(fixtures[i]),
                                                    &rf_limits_default, &fl),
                                 0);
        assert_int_equal(rf_json_flat_parse(stock_json, strlen(stock_json),
                                            &rf_limits_default, &fl),
                         0);
        v = rf_json_flat_get(&fl, "in_stock");
        assert_int_equal(v.kind, RF_JV_FALSE);
        v = rf_json_flat_get(&fl, "item_id");
        assert_int_equal(v.kind, RF_JV_STRING);
        assert_int_equal(v.len, strlen("sku_448812"));
        assert_memory_equal(v.s, "sku_448812", v.len);
        assert_int_equal(rf_json_flat_get(&fl, "scope").kind, RF_JV_ABSENT);

        const char *takes = "{\"a\":null,\"b\":true,\"c\":-0,\"d\":1.5e3,"
                            "\"\":\"\",\"\xc3\xa9\":\"\xe6\x97\xa5\"}";
        assert_int_equal(
            rf_json_flat_parse(takes, strlen(takes), &rf_limits_default, &fl),
            0);
        assert_int_equal(fl.cnt, 6);
        assert_int_equal(rf_json_flat_get(&fl, "a").kind, RF_JV_NULL);
        assert_int_equal(rf_json_flat_get(&fl, "b").kind, RF_JV_TRUE);
        assert_int_equal(rf_json_flat_get(&fl, "c").kind, RF_JV_OTHER);
        assert_int_equal(rf_json_flat_get(&fl, "").kind, RF_JV_STRING);

        const char *declines[] = {
                "",
                "[]",
                "\"s\"",
                "{\"a\":\"\\u00e9\"}", /* an escape */
                "{\"a\":{}}",          /* nested */
                "{\"a\":[1]}",
                "{\"a\":1,\"a\":1}",            /* repeated */
                "{\"a\":\"\xc0\xaf\"}",         /* overlong */
                "{\"\xed\xa0\x80\":1}",         /* a surrogate */
                "{\"a\":99999999999999999999}", /* out of range */
                "{\"a\":1e400}",
                "{\"a\":1,\v\"b\":2}", /* white space to yajl only */
                "{\"a\":1}x",
                "{\"a\":1}\"", /* yajl: an unfinished token is the end */
                "{\"a\":1} \"x",
                "{\"a\":1}-",
                "{\"a\":1}{}",
                "{\"a\":1",
                "{\"1\":0,\"2\":0,\"3\":0,\"4\":0,\"5\":0,\"6\":0,\"7\":0,"
                "\"8\":0,\"9\":0,\"10\":0,\"11\":0,\"12\":0,\"13\":0,\"14\":0,"
                "\"15\":0,\"16\":0,\"17\":0}",
        };
        for (size_t i = 0; i < RF_ARRAY_SIZE(declines); i++)
                assert_int_equal(rf_json_flat_parse(declines[i],
                                                    strlen(declines[i]),
                                                    &rf_limits_default, &fl),
                                 1);
        rf_limits_t lim = rf_limits_default;
        lim.max_json_depth = 0;
        assert_int_equal(
            rf_json_flat_parse(ban_json, strlen(ban_json), &lim, &fl), 1);
        lim = rf_limits_default;
        lim.max_record_bytes = strlen(ban_json) - 1;
        assert_int_equal(
            rf_json_flat_parse(ban_json, strlen(ban_json), &lim, &fl), 1);
}

static int same(const char *a, const char *b)
{
        return (!a && !b) || (a && b && !strcmp(a, b));
}

/* rf_event_parse() (flat when it can) and the tree parser: the same event
 * or the same rejection, word for word. */
static void agree(int topic, const char *key, const char *json)
{
        rf_rejection_t r1, r2;
        rf_event_t e1, e2;
        size_t kl = key ? strlen(key) : 0;
        int a =
            rf_event_parse(topic, key, kl, json, strlen(json), NULL, &e1, &r1);
        int b = rf_event_parse_tree(topic, key, kl, json, strlen(json), NULL,
                                    &e2, &r2);

        if (a != b || (a && (r1.reason != r2.reason || strcmp(r1.msg, r2.msg))))
                print_error("%s: flat %d %s \"%s\", tree %d %s \"%s\"\n", json,
                            a, rf_reject2str(r1.reason), r1.msg, b,
                            rf_reject2str(r2.reason), r2.msg);
        assert_int_equal(a, b);
        if (a) {
                assert_int_equal(r1.reason, r2.reason);
                assert_string_equal(r1.msg, r2.msg);
                return;
        }
        assert_int_equal(e1.type, e2.type);
        assert_int_equal(e1.in_stock, e2.in_stock);
        assert_int_equal(e1.scope, e2.scope);
        assert_int_equal(e1.occurred_at, e2.occurred_at);
        assert_true(same(e1.event_id, e2.event_id));
        assert_true(same(e1.item_id, e2.item_id));
        assert_true(same(e1.creator_id, e2.creator_id));
        assert_true(same(e1.campaign_id, e2.campaign_id));
        assert_true(same(e1.user_id, e2.user_id));
        assert_true(same(e1.region, e2.region));
        assert_true(same(e1.reason, e2.reason));
        rf_event_clear(&e1);
        rf_event_clear(&e2);
}

static void test_flat_agrees_with_tree(void **state)
{
        (void)state;
        static const struct {
                int topic;
                const char *key;
                const char *json;
        } cases[] = {
                { RF_TOPIC_ITEM_BANS, NULL, ban_json },
                { RF_TOPIC_ITEM_BANS, "m_7731", ban_json },
                { RF_TOPIC_ITEM_BANS, "m_other", ban_json },
                { RF_TOPIC_STOCK, NULL, stock_json },
                { RF_TOPIC_USER_HIDES, "u_48213907", hide_item_json },
                { RF_TOPIC_USER_HIDES, NULL, hide_creator_json },
                { RF_TOPIC_CONSENT, NULL, consent_json },
                { RF_TOPIC_CAMPAIGNS, NULL, campaign_json },
                /* the same topic's other types, and another topic's */
                { RF_TOPIC_STOCK, NULL, ban_json },
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"event_id\":\"e\",\"type\":\"item_unbanned\","
                  "\"item_id\":\"i\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
                  "\"reason\":null,\"x\":[1,{\"y\":2}]}" },
                /* each rejection the fields can earn */
                { RF_TOPIC_ITEM_BANS, NULL, "{}" },
                { RF_TOPIC_ITEM_BANS, NULL, "{\"type\":7}" },
                { RF_TOPIC_ITEM_BANS, NULL, "{\"type\":\"nope\"}" },
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"type\":\"item_banned\",\"event_id\":\"\"}" },
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"type\":\"item_banned\",\"event_id\":\"e\","
                  "\"item_id\":null}" },
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"type\":\"item_banned\",\"event_id\":\"e\","
                  "\"item_id\":\"i\",\"occurred_at\":5}" },
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"type\":\"item_banned\",\"event_id\":\"e\","
                  "\"item_id\":\"i\",\"occurred_at\":\"today\"}" },
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"type\":\"item_banned\",\"event_id\":\"e\","
                  "\"item_id\":\"i\",\"occurred_at\":\"2026-11-22T10:00:00."
                  "1234567890123456789012345678901234567890123456789012345"
                  "67890Z\"}" },
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"type\":\"item_banned\",\"event_id\":\"e\","
                  "\"item_id\":\"i\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
                  "\"reason\":true}" },
                { RF_TOPIC_STOCK, NULL,
                  "{\"type\":\"stock_changed\",\"event_id\":\"e\","
                  "\"item_id\":\"i\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
                  "\"in_stock\":1}" },
                { RF_TOPIC_STOCK, NULL,
                  "{\"type\":\"stock_changed\",\"event_id\":\"e\","
                  "\"item_id\":\"i\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
                  "\"in_stock\":true,\"region\":\"\"}" },
                { RF_TOPIC_STOCK, NULL,
                  "{\"type\":\"stock_changed\",\"event_id\":\"e\","
                  "\"item_id\":\"i\",\"occurred_at\":\"2026-11-22T10:00:"
                  "00Z\"}" },
                { RF_TOPIC_CONSENT, NULL,
                  "{\"type\":\"consent_granted\",\"event_id\":\"e\","
                  "\"user_id\":\"u\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
                  "\"scope\":\"email\"}" },
                { RF_TOPIC_CONSENT, NULL,
                  "{\"type\":\"consent_granted\",\"event_id\":\"e\","
                  "\"user_id\":\"u\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
                  "\"scope\":\"emai\"}" },
                { RF_TOPIC_CONSENT, NULL,
                  "{\"type\":\"consent_granted\",\"event_id\":\"e\","
                  "\"user_id\":\"__fallback__\","
                  "\"occurred_at\":\"2026-11-22T10:00:00Z\","
                  "\"scope\":\"all\"}" },
                { RF_TOPIC_USER_HIDES, NULL,
                  "{\"type\":\"creator_hidden\",\"event_id\":\"e\","
                  "\"user_id\":\"u\",\"occurred_at\":\"2026-11-22T10:00:"
                  "00Z\"}" },
                /* left to the tree: escapes, \u0000, invalid JSON */
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"type\":\"item_banned\",\"event_id\":\"e\\u0000\","
                  "\"item_id\":\"i\",\"occurred_at\":\"2026-11-22T10:00:"
                  "00Z\"}" },
                { RF_TOPIC_ITEM_BANS, NULL,
                  "{\"type\":\"item_banned\",\"event_id\":\"\\u00e9\","
                  "\"item_id\":\"i\",\"occurred_at\":\"2026-11-22T10:00:"
                  "00Z\"}" },
                { RF_TOPIC_ITEM_BANS, NULL, "{\"type\":1e400}" },
                { RF_TOPIC_ITEM_BANS, NULL, "{\"type\":\"\xc0\xaf\"}" },
                { RF_TOPIC_ITEM_BANS, NULL, "{\"a\":1,\f\"b\":2}" },
                { RF_TOPIC_CONSENT, NULL,
                  "{\"type\":\"consent_granted\",\"event_id\":\"e\","
                  "\"user_id\":\"u\",\"occurred_at\":\"2026-11-22T10:00:00Z\","
                  "\"scope\":\"email\"} \n\"" },
        };

        for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++)
                agree(cases[i].topic, cases[i].key, cases[i].json);
}

static void test_key(void **state)
{
        (void)state;
        static const struct {
                int topic;
                const char *json, *key, *field;
        } cases[] = {
                { RF_TOPIC_ITEM_BANS, ban_json, "m_7731", "item_id" },
                { RF_TOPIC_STOCK, stock_json, "sku_448812", "item_id" },
                { RF_TOPIC_USER_HIDES, hide_item_json, "u_48213907",
                  "user_id" },
                { RF_TOPIC_USER_HIDES, hide_creator_json, "u_48213907",
                  "user_id" },
                { RF_TOPIC_CONSENT, consent_json, "u_10007", "user_id" },
                { RF_TOPIC_CAMPAIGNS, campaign_json, "cmp_winter_sale",
                  "campaign_id" },
        };
        rf_rejection_t rej;
        rf_event_t ev;

        for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++) {
                const char *json = cases[i].json, *key = cases[i].key;
                size_t len = strlen(json), klen = strlen(key);
                char msg[64];

                /* the topic file names the same key field */
                assert_string_equal(rf_topic(cases[i].topic)->key,
                                    cases[i].field);
                assert_int_equal(rf_event_parse(cases[i].topic, key, klen, json,
                                                len, NULL, &ev, &rej),
                                 RF_OK);
                rf_event_clear(&ev);
                assert_int_equal(rf_event_parse(cases[i].topic, "", 0, json,
                                                len, NULL, &ev, &rej),
                                 RF_OK);
                rf_event_clear(&ev);
                snprintf(msg, sizeof(msg),
                         "message key does not match field \"%s\"",
                         cases[i].field);
                expect_reject_key(cases[i].topic, key, klen - 1, json, len,
                                  NULL, RF_REJ_KEY_MISMATCH, msg);
                expect_reject_key(cases[i].topic, "x", 1, json, len, NULL,
                                  RF_REJ_KEY_MISMATCH, msg);
                char *longer = malloc(klen + 2);
                memcpy(longer, key, klen);
                longer[klen] = '\0';
                longer[klen + 1] = 'x';
                expect_reject_key(cases[i].topic, longer, klen + 2, json, len,
                                  NULL, RF_REJ_KEY_MISMATCH, msg);
                free(longer);
        }
        char longkey[257];
        memset(longkey, 'k', sizeof(longkey));
        expect_reject_key(RF_TOPIC_ITEM_BANS, longkey, sizeof(longkey),
                          ban_json, strlen(ban_json), NULL, RF_REJ_ID_TOO_LONG,
                          "message key");
}

static void test_limits(void **state)
{
        (void)state;
        rf_limits_t lim = rf_limits_default;
        size_t len = strlen(ban_json);
        rf_rejection_t rej;
        rf_event_t ev;

        lim.max_record_bytes = len;
        assert_int_equal(rf_event_parse(RF_TOPIC_ITEM_BANS, NULL, 0, ban_json,
                                        len, &lim, &ev, &rej),
                         RF_OK);
        rf_event_clear(&ev);
        lim.max_record_bytes = len - 1;
        expect_reject_key(RF_TOPIC_ITEM_BANS, NULL, 0, ban_json, len, &lim,
                          RF_REJ_TOO_LARGE, "over the limit");

        /* ids: "ts-evt-8c1f" is the longest id (11 bytes); the free-text
         * reason (16 bytes) is not an id */
        lim = rf_limits_default;
        lim.max_id_len = 11;
        assert_int_equal(rf_event_parse(RF_TOPIC_ITEM_BANS, NULL, 0, ban_json,
                                        len, &lim, &ev, &rej),
                         RF_OK);
        rf_event_clear(&ev);
        lim.max_id_len = 10;
        expect_reject_key(RF_TOPIC_ITEM_BANS, NULL, 0, ban_json, len, &lim,
                          RF_REJ_ID_TOO_LONG,
                          "field \"event_id\": longer than 10 bytes");
        lim.max_id_len = 5;
        char *j = edit(ban_json, "event_id", "\"e\"");
        expect_reject_key(RF_TOPIC_ITEM_BANS, NULL, 0, j, strlen(j), &lim,
                          RF_REJ_ID_TOO_LONG,
                          "field \"item_id\": longer than 5 bytes");
        free(j);
        lim.max_id_len = 6;
        j = edit(stock_json, "event_id", "\"e\"");
        char *j2 = edit(j, "item_id", "\"sku\"");
        expect_reject_key(RF_TOPIC_STOCK, NULL, 0, j2, strlen(j2), &lim,
                          RF_REJ_ID_TOO_LONG,
                          "field \"region\": longer than 6 bytes");
        free(j);
        free(j2);

        /* event_id: 256 bytes at most, whatever max_id_len allows (it
         * breaks ties and is stored whole); other ids up to the limit */
        lim = rf_limits_default;
        lim.max_id_len = 4096;
        char id[302];
        id[0] = '"';
        memset(id + 1, 'e', 300);
        id[301] = '\0';
        char quoted[304];
        snprintf(quoted, sizeof(quoted), "%s\"", id);
        j = edit(ban_json, "event_id", quoted);
        expect_reject_key(RF_TOPIC_ITEM_BANS, NULL, 0, j, strlen(j), &lim,
                          RF_REJ_ID_TOO_LONG,
                          "field \"event_id\": longer than 256 bytes");
        free(j);
        snprintf(quoted, sizeof(quoted), "\"%.256s\"", id + 1);
        j = edit(ban_json, "event_id", quoted);
        snprintf(quoted, sizeof(quoted), "%s\"", id);
        j2 = edit(j, "item_id", quoted);
        assert_int_equal(rf_event_parse(RF_TOPIC_ITEM_BANS, NULL, 0, j2,
                                        strlen(j2), &lim, &ev, &rej),
                         RF_OK);
        assert_int_equal(strlen(ev.event_id), RF_EVENT_ID_MAX);
        assert_int_equal(strlen(ev.item_id), 300);
        rf_event_clear(&ev);
        free(j);
        free(j2);

        /* depth: 1 for the object; an unknown field nests deeper */
        lim = rf_limits_default;
        lim.max_json_depth = 1;
        assert_int_equal(rf_event_parse(RF_TOPIC_ITEM_BANS, NULL, 0, ban_json,
                                        len, &lim, &ev, &rej),
                         RF_OK);
        rf_event_clear(&ev);
        j = edit(ban_json, "x", "[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]");
        expect_reject_key(RF_TOPIC_ITEM_BANS, NULL, 0, j, strlen(j), NULL,
                          RF_REJ_TOO_DEEP, "deeper than 16");
        free(j);
}

static void test_json_too_deep(void **state)
{
        (void)state;
        static const struct {
                const char *text;
                int max, deep;
        } cases[] = {
                { "", 0, 0 },
                { "{}", 0, 1 },
                { "{}", 1, 0 },
                { "[[]]", 1, 1 },
                { "[[]]", 2, 0 },
                { "[{},{},{}]", 2, 0 },
                { "[{\"a\":[1]}]", 2, 1 },
                /* brackets inside strings do not count */
                { "{\"a\":\"[[[[{{{{\"}", 1, 0 },
                /* an escaped quote does not end the string */
                { "{\"a\":\"\\\"[[[[\"}", 1, 0 },
                /* an escaped backslash does */
                { "{\"a\":\"\\\\\",\"b\":[[1]]}", 2, 1 },
                { "{\"a\":\"\\\\\",\"b\":[[1]]}", 3, 0 },
                /* unbalanced closers do not go negative */
                { "]]]]{[", 1, 1 },
                { "]]]]{", 1, 0 },
        };

        for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++) {
                int got = rf_json_too_deep(cases[i].text, strlen(cases[i].text),
                                           cases[i].max);
                if (got != cases[i].deep)
                        print_error("%s max %d: got %d\n", cases[i].text,
                                    cases[i].max, got);
                assert_int_equal(got, cases[i].deep);
        }
        /* A trailing backslash at the end of the buffer reads nothing past
         * it (the buffer is exactly 3 bytes, for ASan). */
        char *p = malloc(3);
        memcpy(p, "\"a\\", 3);
        assert_int_equal(rf_json_too_deep(p, 3, 0), 0);
        free(p);
        /* The length bounds the scan: bytes after it are not looked at. */
        assert_int_equal(rf_json_too_deep("{}[[[[", 2, 1), 0);
}

static void test_type_names(void **state)
{
        (void)state;
        static const char *names[RF_EV__CNT] = {
                "item_banned",      "item_unbanned",   "stock_changed",
                "item_hidden",      "item_unhidden",   "creator_hidden",
                "creator_unhidden", "consent_revoked", "consent_granted",
                "campaign_expired",
        };

        for (int t = 0; t < RF_EV__CNT; t++)
                assert_string_equal(rf_event_type2str((rf_event_type_t)t),
                                    names[t]);
        assert_string_equal(rf_event_type2str(RF_EV__CNT), "unknown");
        assert_string_equal(rf_event_type2str((rf_event_type_t)-1), "unknown");
}

static void test_clear(void **state)
{
        (void)state;
        rf_event_t ev;

        parse_ok(RF_TOPIC_CAMPAIGNS, campaign_json, &ev);
        rf_event_clear(&ev);
        rf_event_clear(&ev); /* twice is fine */
        rf_event_clear(NULL);
        assert_null(ev.event_id);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_item_bans),
                cmocka_unit_test(test_stock),
                cmocka_unit_test(test_user_hides),
                cmocka_unit_test(test_consent),
                cmocka_unit_test(test_campaigns),
                cmocka_unit_test(test_common_rejections),
                cmocka_unit_test(test_type_of_other_topic),
                cmocka_unit_test(test_unknown_fields_ignored),
                cmocka_unit_test(test_invalid_json),
                cmocka_unit_test(test_flat_parse),
                cmocka_unit_test(test_flat_agrees_with_tree),
                cmocka_unit_test(test_key),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_json_too_deep),
                cmocka_unit_test(test_type_names),
                cmocka_unit_test(test_clear),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
