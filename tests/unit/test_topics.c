/*
 * Proves that the code and topics/ agree. topics/<name>.json is the single
 * source of truth for topic names, keys, partitions and value schemas; this
 * test reads those files from the source tree (RF_SOURCE_DIR) and checks:
 *
 *  - the generated rf_topic_defs[] holds exactly what the files say;
 *  - for every input topic, each valid fixture in
 *    tests/fixtures/<name>/valid/ is accepted by its codec, every key a
 *    fixture uses is a schema property, and every "type" the schema lists
 *    has a fixture and an rf_event_type_t;
 *  - removing any required field is RF_REJ_MISSING_FIELD; giving any typed
 *    property a value of another JSON type is RF_REJ_BAD_TYPE;
 *  - minLength, maxLength and maxItems in the schema are the limits the
 *    codec enforces, and the key field named by the topic file is the one
 *    the codec compares with the message key;
 *  - the enums of the output schemas (DLQ reasons, invalidation causes)
 *    and of consent scopes match the code's names.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "recfresh/activity.h"
#include "recfresh/event.h"
#include "recfresh/list.h"
#include "recfresh/runs.h"
#include "recfresh/topics.h"

#ifndef RF_SOURCE_DIR
#define RF_SOURCE_DIR "."
#endif

#define MAX_FIXTURES 32

typedef struct fixture {
        char *name; /* file name */
        json_t *json;
} fixture_t;

/* What topics/<name>.json says, and the fixtures of the topic. */
static struct topic_file {
        json_t *file;   /* the whole file */
        json_t *schema; /* its value_schema */
        fixture_t fx[MAX_FIXTURES];
        size_t fx_cnt;
} topics[RF_TOPIC__CNT];

static const char *src_dir(void)
{
        const char *d = getenv("RF_SOURCE_DIR");

        return d && *d ? d : RF_SOURCE_DIR;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* @returns the sorted names of the *.json files in \p dir
 * (NULL-terminated, free with rf_strv_free), or NULL if there is no such
 * directory. */
static char **list_json(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        char **v;
        size_t n = 0;

        if (!d)
                return NULL;
        v = rf_calloc(1, sizeof(*v));
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
                        continue;
                v = rf_realloc(v, (n + 2) * sizeof(*v));
                v[n++] = rf_strdup(de->d_name);
                v[n] = NULL;
        }
        closedir(d);
        qsort(v, n, sizeof(*v), cmp_str);
        return v;
}

static json_t *load(const char *path)
{
        json_error_t err;
        json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);

        if (!j)
                fail_msg("%s:%d: %s", path, err.line, err.text);
        return j;
}

static int setup(void **state)
{
        char path[1024];
        char **files;

        (void)state;
        snprintf(path, sizeof(path), "%s/topics", src_dir());
        files = list_json(path);
        if (!files) {
                print_error("no %s (set RF_SOURCE_DIR)\n", path);
                return -1;
        }
        for (char **f = files; *f; f++) {
                char fpath[2400];
                snprintf(fpath, sizeof(fpath), "%s/topics/%s", src_dir(), *f);
                json_t *j = load(fpath);
                const char *name =
                    json_string_value(json_object_get(j, "name"));
                int t = name ? rf_topic_by_name(name) : -1;
                if (t < 0) {
                        print_error("%s: topic \"%s\" is not in "
                                    "rf_topic_defs[] (re-run cmake?)\n",
                                    fpath, name ? name : "(no name)");
                        json_decref(j);
                        rf_strv_free(files);
                        return -1;
                }
                topics[t].file = j;
                topics[t].schema = json_object_get(j, "value_schema");

                char dir[1200];
                snprintf(dir, sizeof(dir), "%s/tests/fixtures/%s/valid",
                         src_dir(), name);
                char **fx = list_json(dir);
                for (char **x = fx; x && *x; x++) {
                        fixture_t *e = &topics[t].fx[topics[t].fx_cnt++];
                        assert_true(topics[t].fx_cnt <= MAX_FIXTURES);
                        snprintf(fpath, sizeof(fpath), "%s/%s", dir, *x);
                        e->name = rf_strdup(*x);
                        e->json = load(fpath);
                }
                rf_strv_free(fx);
        }
        rf_strv_free(files);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                for (size_t i = 0; i < topics[t].fx_cnt; i++) {
                        free(topics[t].fx[i].name);
                        json_decref(topics[t].fx[i].json);
                }
                json_decref(topics[t].file);
        }
        return 0;
}

static int is_input(int t)
{
        return !strcmp(rf_topic(t)->direction, "input");
}

static json_t *props(json_t *schema)
{
        return json_object_get(schema, "properties");
}

/* The schema of one entry of recs.lists.v1 "items". */
static json_t *item_schema(int t)
{
        return json_object_get(
            json_object_get(props(topics[t].schema), "items"), "items");
}

/* Runs the codec of topic \p t on \p j (dumped as JSON text).
 * @returns the rf_err code; *typep gets the parsed event type or -1. */
static int run_codec(int t, const char *key, json_t *j, rf_rejection_t *rej,
                     int *typep)
{
        char *text = json_dumps(j, JSON_COMPACT);
        size_t klen = key ? strlen(key) : 0;
        int rc;

        assert_non_null(text);
        if (typep)
                *typep = -1;
        if (t == RF_TOPIC_LISTS) {
                rf_list_t *l = NULL;
                rc = rf_list_from_json(key, klen, text, strlen(text), NULL, &l,
                                       rej);
                rf_list_destroy(l);
        } else if (t == RF_TOPIC_RUNS) {
                rf_run_ctl_t ctl;
                rc = rf_run_ctl_parse(key, klen, text, strlen(text), NULL, &ctl,
                                      rej);
                if (rc == RF_OK && typep)
                        *typep = (int)ctl.type;
                rf_run_ctl_clear(&ctl);
        } else if (t == RF_TOPIC_ACTIVITY) {
                rf_activity_t a;
                rc = rf_activity_parse(key, klen, text, strlen(text), NULL, &a,
                                       rej);
                rf_activity_clear(&a);
        } else {
                rf_event_t ev;
                rc = rf_event_parse(t, key, klen, text, strlen(text), NULL, &ev,
                                    rej);
                if (rc == RF_OK && typep)
                        *typep = (int)ev.type;
                rf_event_clear(&ev);
        }
        free(text);
        return rc;
}

static void expect(int t, const char *what, const char *key, json_t *j,
                   rf_reject_t want, const char *msg_part)
{
        rf_rejection_t rej;
        int rc = run_codec(t, key, j, &rej, NULL);

        if ((want == RF_REJ_NONE) != (rc == RF_OK) || rej.reason != want ||
            (msg_part && !strstr(rej.msg, msg_part)))
                fail_msg("%s: %s: got %s \"%s\", want %s (\"%s\")",
                         rf_topic(t)->name, what, rf_reject2str(rej.reason),
                         rej.msg, rf_reject2str(want),
                         msg_part ? msg_part : "");
}

/* ---- the generated table ------------------------------------------------*/

static void test_table_matches_files(void **state)
{
        (void)state;
        char path[1024];
        char **files;
        size_t n = 0;

        snprintf(path, sizeof(path), "%s/topics", src_dir());
        files = list_json(path);
        for (char **f = files; *f; f++)
                n++;
        assert_int_equal(n, RF_TOPIC__CNT);

        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                const rf_topic_def_t *d = rf_topic(t);
                json_t *f = topics[t].file;
                char fname[300];

                assert_non_null(f);
                /* enum order is file-name order */
                snprintf(fname, sizeof(fname), "%s.json", d->name);
                assert_string_equal(files[t], fname);
#define STR_EQ(field)                                                          \
        assert_string_equal(d->field,                                          \
                            json_string_value(json_object_get(f, #field)))
                STR_EQ(id);
                STR_EQ(name);
                STR_EQ(key);
                STR_EQ(direction);
                STR_EQ(scope);
                STR_EQ(cleanup_policy);
#undef STR_EQ
                assert_int_equal(
                    d->partitions,
                    json_integer_value(json_object_get(f, "partitions")));
                assert_int_equal(
                    d->retention_ms,
                    json_integer_value(json_object_get(f, "retention_ms")));
                json_t *gen = json_loads(d->schema_json, 0, NULL);
                assert_non_null(gen);
                assert_true(json_equal(gen, topics[t].schema));
                json_decref(gen);
                assert_int_equal(rf_topic_by_name(d->name), t);
        }
        assert_int_equal(rf_topic_by_name("recs.nope.v1"), -1);
        rf_strv_free(files);
}

/* ---- (1) fixtures are accepted, (4) use only schema properties ----------*/

static void check_keys_in_schema(int t, const char *fx, json_t *obj,
                                 json_t *schema, const char *where)
{
        const char *k;
        json_t *v;

        json_object_foreach(obj, k, v)
        {
                if (!json_object_get(props(schema), k))
                        fail_msg("%s/%s: %s\"%s\" is not in the schema",
                                 rf_topic(t)->name, fx, where, k);
        }
}

static void test_fixtures_accepted(void **state)
{
        (void)state;
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (!is_input(t))
                        continue;
                const char *name = rf_topic(t)->name;
                if (topics[t].fx_cnt == 0)
                        fail_msg("%s: no fixtures in tests/fixtures/%s/valid",
                                 name, name);
                for (size_t i = 0; i < topics[t].fx_cnt; i++) {
                        fixture_t *f = &topics[t].fx[i];
                        rf_rejection_t rej;
                        int type;

                        if (run_codec(t, NULL, f->json, &rej, &type))
                                fail_msg("%s/%s rejected: %s: %s", name,
                                         f->name, rf_reject2str(rej.reason),
                                         rej.msg);
                        check_keys_in_schema(t, f->name, f->json,
                                             topics[t].schema, "");
                        if (t == RF_TOPIC_LISTS) {
                                size_t j;
                                json_t *it;
                                json_array_foreach(
                                    json_object_get(f->json, "items"), j, it)
                                {
                                        check_keys_in_schema(t, f->name, it,
                                                             item_schema(t),
                                                             "items[]: ");
                                }
                                continue;
                        }
                        if (t == RF_TOPIC_ACTIVITY)
                                continue; /* no "type": not an event */
                        /* the parsed type is the one in the fixture */
                        assert_string_equal(
                            t == RF_TOPIC_RUNS
                                ? rf_run_ctl_type2str((rf_run_ctl_type_t)type)
                                : rf_event_type2str((rf_event_type_t)type),
                            json_string_value(
                                json_object_get(f->json, "type")));
                }
        }
}

static void test_every_type_has_a_fixture(void **state)
{
        (void)state;
        int seen[RF_EV__CNT] = { 0 };

        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (!is_input(t) || t == RF_TOPIC_LISTS || t == RF_TOPIC_RUNS ||
                    t == RF_TOPIC_ACTIVITY)
                        continue;
                json_t *en = json_object_get(
                    json_object_get(props(topics[t].schema), "type"), "enum");
                size_t i;
                json_t *v;

                assert_true(json_array_size(en) > 0);
                json_array_foreach(en, i, v)
                {
                        const char *type = json_string_value(v);
                        int ev = -1, found = 0;

                        for (int e = 0; e < RF_EV__CNT; e++)
                                if (!strcmp(
                                        rf_event_type2str((rf_event_type_t)e),
                                        type))
                                        ev = e;
                        if (ev < 0)
                                fail_msg("%s: type \"%s\" has no "
                                         "rf_event_type_t",
                                         rf_topic(t)->name, type);
                        seen[ev]++;
                        for (size_t f = 0; f < topics[t].fx_cnt; f++)
                                found |= !strcmp(
                                    type, json_string_value(json_object_get(
                                              topics[t].fx[f].json, "type")));
                        if (!found)
                                fail_msg("%s: no fixture of type \"%s\"",
                                         rf_topic(t)->name, type);
                }
        }
        /* run control types: the schema's enum is the codec's, each has a
         * fixture */
        json_t *ren = json_object_get(
            json_object_get(props(topics[RF_TOPIC_RUNS].schema), "type"),
            "enum");
        assert_int_equal(json_array_size(ren), RF_RUN_CTL__CNT);
        for (int c = 0; c < RF_RUN_CTL__CNT; c++) {
                const char *type = rf_run_ctl_type2str((rf_run_ctl_type_t)c);
                int found = 0;
                for (size_t f = 0; f < topics[RF_TOPIC_RUNS].fx_cnt; f++)
                        found |= !strcmp(
                            type,
                            json_string_value(json_object_get(
                                topics[RF_TOPIC_RUNS].fx[f].json, "type")));
                assert_true(json_string_value(json_array_get(ren, (size_t)c)));
                assert_string_equal(
                    json_string_value(json_array_get(ren, (size_t)c)), type);
                if (!found)
                        fail_msg("recs.runs.v1: no fixture of type \"%s\"",
                                 type);
        }
        /* and every rf_event_type_t is carried by exactly one topic */
        for (int e = 0; e < RF_EV__CNT; e++)
                if (seen[e] != 1)
                        fail_msg("%s: in %d topic schemas",
                                 rf_event_type2str((rf_event_type_t)e),
                                 seen[e]);
}

/* ---- (2) required fields ------------------------------------------------*/

static void test_required_fields(void **state)
{
        (void)state;
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (!is_input(t))
                        continue;
                json_t *req = json_object_get(topics[t].schema, "required");
                size_t i;
                json_t *r;

                assert_true(json_array_size(req) > 0);
                for (size_t f = 0; f < topics[t].fx_cnt; f++) {
                        json_array_foreach(req, i, r)
                        {
                                const char *field = json_string_value(r);
                                json_t *j =
                                    json_deep_copy(topics[t].fx[f].json);
                                char msg[128];

                                if (json_object_del(j, field))
                                        fail_msg("%s/%s: lacks required field "
                                                 "\"%s\"",
                                                 rf_topic(t)->name,
                                                 topics[t].fx[f].name, field);
                                snprintf(msg, sizeof(msg),
                                         "missing field \"%s\"", field);
                                expect(t, topics[t].fx[f].name, NULL, j,
                                       RF_REJ_MISSING_FIELD, msg);
                                json_decref(j);
                        }
                }
                if (t != RF_TOPIC_LISTS)
                        continue;
                req = json_object_get(item_schema(t), "required");
                assert_true(json_array_size(req) > 0);
                for (size_t f = 0; f < topics[t].fx_cnt; f++) {
                        json_array_foreach(req, i, r)
                        {
                                const char *field = json_string_value(r);
                                json_t *j =
                                    json_deep_copy(topics[t].fx[f].json);
                                json_t *items = json_object_get(j, "items");
                                size_t last = json_array_size(items) - 1;
                                char msg[128];

                                assert_int_equal(
                                    json_object_del(json_array_get(items, last),
                                                    field),
                                    0);
                                snprintf(msg, sizeof(msg),
                                         "items[%zu]: missing field \"%s\"",
                                         last, field);
                                expect(t, topics[t].fx[f].name, NULL, j,
                                       RF_REJ_MISSING_FIELD, msg);
                                json_decref(j);
                        }
                }
        }
}

/* ---- (3) types ----------------------------------------------------------*/

static const struct {
        const char *type; /* JSON Schema type of the value */
        const char *json;
} samples[] = {
        { "string", "\"x\"" }, { "integer", "7" }, { "number", "1.5" },
        { "boolean", "true" }, { "array", "[]" },  { "object", "{}" },
};

static int accepts(const char *schema_type, const char *sample_type)
{
        return !strcmp(schema_type, sample_type) ||
               (!strcmp(schema_type, "number") &&
                !strcmp(sample_type, "integer"));
}

/* Gives each typed property of \p schema, in \p obj (a part of \p root),
 * every value of another type. */
static void check_types(int t, const fixture_t *f, json_t *root, json_t *obj,
                        json_t *schema, const char *where)
{
        const char *prop;
        json_t *ps;

        json_object_foreach(props(schema), prop, ps)
        {
                const char *type =
                    json_string_value(json_object_get(ps, "type"));
                if (!type)
                        continue; /* any JSON value (source_provenance) */
                for (size_t s = 0; s < RF_ARRAY_SIZE(samples); s++) {
                        if (accepts(type, samples[s].type))
                                continue;
                        json_t *old = json_incref(json_object_get(obj, prop));
                        char what[256], msg[128];
                        json_object_set_new(
                            obj, prop,
                            json_loads(samples[s].json, JSON_DECODE_ANY, NULL));
                        snprintf(what, sizeof(what), "%s: %s\"%s\": %s",
                                 f->name, where, prop, samples[s].json);
                        snprintf(msg, sizeof(msg), "%sfield \"%s\"", where,
                                 prop);
                        expect(t, what, NULL, root, RF_REJ_BAD_TYPE, msg);
                        if (old)
                                json_object_set_new(obj, prop, old);
                        else
                                json_object_del(obj, prop);
                }
        }
}

static void test_wrong_types(void **state)
{
        (void)state;
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (!is_input(t))
                        continue;
                for (size_t f = 0; f < topics[t].fx_cnt; f++) {
                        const fixture_t *fx = &topics[t].fx[f];
                        json_t *j = json_deep_copy(fx->json);

                        check_types(t, fx, j, j, topics[t].schema, "");
                        if (t == RF_TOPIC_LISTS)
                                check_types(t, fx, j,
                                            json_array_get(
                                                json_object_get(j, "items"), 0),
                                            item_schema(t), "items[0]: ");
                        assert_true(json_equal(j, fx->json)); /* restored */
                        json_decref(j);
                }
        }
}

/* ---- (5) lengths and counts ---------------------------------------------*/

/* For each plain string property (no enum, no format): minLength 1 means
 * "" is refused, no minLength means it is accepted; maxLength bytes are
 * accepted and one more are refused. */
static void check_lengths(int t, const fixture_t *f, json_t *root, json_t *obj,
                          json_t *schema, const char *where)
{
        const char *prop;
        json_t *ps;

        json_object_foreach(props(schema), prop, ps)
        {
                const char *type =
                    json_string_value(json_object_get(ps, "type"));
                if (!type || strcmp(type, "string") ||
                    json_object_get(ps, "enum") ||
                    json_object_get(ps, "format"))
                        continue;
                json_t *old = json_incref(json_object_get(obj, prop));
                json_int_t minl =
                    json_integer_value(json_object_get(ps, "minLength"));
                json_t *maxl = json_object_get(ps, "maxLength");
                char what[256];

                snprintf(what, sizeof(what), "%s: %s\"%s\" empty", f->name,
                         where, prop);
                json_object_set_new(obj, prop, json_string(""));
                expect(t, what, NULL, root,
                       minl > 0 ? RF_REJ_BAD_VALUE : RF_REJ_NONE,
                       minl > 0 ? prop : NULL);
                if (maxl) {
                        size_t n = (size_t)json_integer_value(maxl);
                        char *s = rf_malloc(n + 2);
                        rf_rejection_t rej;

                        memset(s, 'a', n + 1);
                        s[n] = '\0';
                        json_object_set_new(obj, prop, json_string(s));
                        snprintf(what, sizeof(what), "%s: %s\"%s\" of %zu",
                                 f->name, where, prop, n);
                        expect(t, what, NULL, root, RF_REJ_NONE, NULL);
                        s[n] = 'a';
                        s[n + 1] = '\0';
                        json_object_set_new(obj, prop, json_string(s));
                        if (run_codec(t, NULL, root, &rej, NULL) == RF_OK ||
                            (rej.reason != RF_REJ_ID_TOO_LONG &&
                             rej.reason != RF_REJ_BAD_VALUE) ||
                            !strstr(rej.msg, prop))
                                fail_msg("%s: %s: %s\"%s\" of %zu: got %s "
                                         "\"%s\"",
                                         rf_topic(t)->name, f->name, where,
                                         prop, n + 1, rf_reject2str(rej.reason),
                                         rej.msg);
                        free(s);
                }
                if (old)
                        json_object_set_new(obj, prop, old);
                else
                        json_object_del(obj, prop);
        }
}

static void test_string_lengths(void **state)
{
        (void)state;
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (!is_input(t))
                        continue;
                const fixture_t *fx = &topics[t].fx[0];
                json_t *j = json_deep_copy(fx->json);

                check_lengths(t, fx, j, j, topics[t].schema, "");
                if (t == RF_TOPIC_LISTS)
                        check_lengths(
                            t, fx, j,
                            json_array_get(json_object_get(j, "items"), 0),
                            item_schema(t), "items[0]: ");
                json_decref(j);
        }
}

static void test_max_items(void **state)
{
        (void)state;
        int t = RF_TOPIC_LISTS;
        json_t *maxi = json_object_get(
            json_object_get(props(topics[t].schema), "items"), "maxItems");
        size_t n = (size_t)json_integer_value(maxi);
        json_t *j = json_deep_copy(topics[t].fx[0].json);
        json_t *items = json_object_get(j, "items");
        json_t *one = json_array_get(items, 0);

        assert_non_null(maxi);
        assert_int_equal(n, rf_limits_default.max_items_per_list);
        while (json_array_size(items) < n)
                json_array_append(items, one);
        expect(t, "maxItems entries", NULL, j, RF_REJ_NONE, NULL);
        json_array_append(items, one);
        expect(t, "maxItems + 1 entries", NULL, j, RF_REJ_TOO_MANY_ITEMS,
               "\"items\"");
        json_decref(j);
}

/* ---- the key field ------------------------------------------------------*/

static void test_key_field(void **state)
{
        (void)state;
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                if (!is_input(t))
                        continue;
                const char *kf = rf_topic(t)->key;
                json_t *req = json_object_get(topics[t].schema, "required");
                int required = 0;
                size_t i;
                json_t *r;

                json_array_foreach(req, i, r)
                {
                        required |= !strcmp(json_string_value(r), kf);
                }
                if (!required)
                        fail_msg("%s: key field \"%s\" is not required",
                                 rf_topic(t)->name, kf);
                for (size_t f = 0; f < topics[t].fx_cnt; f++) {
                        json_t *j = json_deep_copy(topics[t].fx[f].json);
                        const char *key =
                            json_string_value(json_object_get(j, kf));
                        char msg[128];

                        assert_non_null(key);
                        expect(t, "matching key", key, j, RF_REJ_NONE, NULL);
                        /* change the key field: the old key no longer
                         * matches */
                        char *k = rf_strdup(key);
                        json_object_set_new(j, kf, json_string("other-id"));
                        snprintf(msg, sizeof(msg), "field \"%s\"", kf);
                        expect(t, "changed key field", k, j,
                               RF_REJ_KEY_MISMATCH, msg);
                        expect(t, "key of the new value", "other-id", j,
                               RF_REJ_NONE, NULL);
                        free(k);
                        json_decref(j);
                }
        }
}

/* ---- enums shared with the code -----------------------------------------*/

static json_t *enum_of(int t, const char *prop)
{
        json_t *e = json_object_get(
            json_object_get(props(topics[t].schema), prop), "enum");

        assert_non_null(e);
        return e;
}

static int in_enum(json_t *e, const char *s)
{
        size_t i;
        json_t *v;

        json_array_foreach(e, i, v)
        {
                if (!strcmp(json_string_value(v), s))
                        return 1;
        }
        return 0;
}

static void test_enums(void **state)
{
        (void)state;
        json_t *e;

        /* consent scopes, both ways */
        e = enum_of(RF_TOPIC_CONSENT, "scope");
        assert_int_equal(json_array_size(e), RF_SCOPE__CNT);
        for (int s = 0; s < RF_SCOPE__CNT; s++) {
                const char *n = rf_consent_scope2str((rf_consent_scope_t)s);
                assert_true(in_enum(e, n));
                assert_int_equal(rf_consent_scope_parse(n), s);
        }
        /* DLQ reasons: every rejection we can make, nothing else */
        e = enum_of(RF_TOPIC_DLQ, "reason");
        assert_int_equal(json_array_size(e), RF_REJ__CNT - 1);
        for (int r = 1; r < RF_REJ__CNT; r++)
                assert_true(in_enum(e, rf_reject2str((rf_reject_t)r)));
        /* invalidation causes: every event type, nothing else */
        e = enum_of(RF_TOPIC_INVALIDATIONS, "cause");
        assert_int_equal(json_array_size(e), RF_EV__CNT);
        for (int v = 0; v < RF_EV__CNT; v++)
                assert_true(in_enum(e, rf_event_type2str((rf_event_type_t)v)));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_matches_files),
                cmocka_unit_test(test_fixtures_accepted),
                cmocka_unit_test(test_every_type_has_a_fixture),
                cmocka_unit_test(test_required_fields),
                cmocka_unit_test(test_wrong_types),
                cmocka_unit_test(test_string_lengths),
                cmocka_unit_test(test_max_items),
                cmocka_unit_test(test_key_field),
                cmocka_unit_test(test_enums),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
