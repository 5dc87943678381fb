/*
 * Unit tests of the recompute queue (src/recompute.c) and refresh runs
 * (src/refresh.c) over a real RocksDB store in a temp dir, with simulated
 * time (no Kafka, no sleeps): what rf_queue_take() hands out is what the
 * daemon would produce on recs.recompute.v1. The send tick's tests produce
 * through the embedded broker (librdkafka's mock cluster).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>
#include <rocksdb/c.h>

#include "recfresh/activity.h"
#include "recfresh/broker.h"
#include "recfresh/keys.h"
#include "recfresh/list.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/recompute.h"
#include "recfresh/refresh.h"
#include "recfresh/topics.h"
#include "recfresh/tombstone.h"

/* 2026-11-22T10:00:00Z */
#define T0  INT64_C(1795341600000)
#define DAY INT64_C(86400000)

typedef struct env {
        char dir[64];
        rf_config_t conf;
        rf_store_t *st;
        rf_queue_t *q;
        rf_apply_ctx_t ctx;
} env_t;

static void set(env_t *e, const char *name, const char *value)
{
        char err[256];
        if (rf_config_set(&e->conf, name, value, err, sizeof(err)))
                fail_msg("%s", err);
}

static void env_open(env_t *e)
{
        char err[256];
        e->st = rf_store_open(e->dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        if (!e->st)
                fail_msg("%s", err);
        e->q = rf_queue_new(e->st, &e->conf, T0);
        rf_apply_ctx_init(&e->ctx, e->st, &e->conf, NULL, NULL);
        e->ctx.queue = e->q;
        e->ctx.now_ms = T0;
}

static void env_close(env_t *e)
{
        rf_apply_ctx_clear(&e->ctx);
        rf_queue_destroy(e->q);
        rf_store_close(e->st);
        e->q = NULL;
        e->st = NULL;
}

static int setup(void **state)
{
        env_t *e = rf_calloc(1, sizeof(*e));
        rf_log_set_level(RF_LOG_WARN);
        snprintf(e->dir, sizeof(e->dir), "/tmp/rf-rc-XXXXXX");
        if (!mkdtemp(e->dir))
                return -1;
        rf_config_init(&e->conf);
        set(e, "recompute.rate_per_s", "10");
        set(e, "recompute.full_rate_per_s", "2");
        env_open(e);
        *state = e;
        return 0;
}

static int teardown(void **state)
{
        env_t *e = *state;
        char cmd[128];
        env_close(e);
        rf_config_destroy(&e->conf);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
        if (system(cmd) != 0)
                return -1;
        free(e);
        return 0;
}

static void commit(env_t *e)
{
        char err[256];
        assert_int_equal(rf_txn_commit(e->ctx.txn, err, sizeof(err)), 0);
        rf_queue_committed(e->q);
}

static void add(env_t *e, const char *subject, const char *surface,
                rf_rc_mode_t mode, int urgent, const char *event_id,
                int64_t now)
{
        rf_queue_add_t a = { .subject_id = subject,
                             .surface = surface,
                             .mode = mode,
                             .urgent = urgent,
                             .reason_type = event_id ? "item_banned" : NULL,
                             .event_id = event_id,
                             .entity_kind = "item",
                             .entity_id = "i1" };
        assert_true(rf_queue_add(e->q, e->ctx.txn, &a, now) >= 0);
        commit(e);
}

/* Takes one request at \p now and acknowledges it. @returns its JSON
 * (caller decrefs) or NULL if none was due. */
static json_t *take_ack(env_t *e, int64_t now)
{
        rf_queue_req_t req;
        json_t *j;
        int r = rf_queue_take(e->q, now, &req);

        assert_true(r == 0 || r == 1);
        if (r == 0)
                return NULL;
        j = json_loads(req.json.data, 0, NULL);
        assert_non_null(j);
        assert_int_equal(rf_queue_settle(e->q, req.token, 1, now), 0);
        rf_queue_req_clear(&req);
        return j;
}

static const char *jstr(json_t *j, const char *k)
{
        return json_string_value(json_object_get(j, k));
}

/* Takes and acknowledges the next request at \p now: it must be \p subject's,
 * its first reason from \p event_id (unless NULL). */
static void expect_next(env_t *e, int64_t now, const char *subject,
                        const char *event_id)
{
        json_t *j = take_ack(e, now);

        assert_non_null(j);
        assert_string_equal(jstr(j, "subject_id"), subject);
        if (event_id)
                assert_string_equal(
                    jstr(json_array_get(json_object_get(j, "reasons"), 0),
                         "event_id"),
                    event_id);
        json_decref(j);
}

/* Applies a list into the open batch; publish() commits it too. */
static void publish_in_batch(env_t *e, const char *subject, const char *surface,
                             const char *gen, const char *exp,
                             const char *items)
{
        rf_buf_t b = { 0 };
        rf_rejection_t rej;
        rf_list_t *l;
        int first = 1;
        char *copy = rf_strdup(items), *save, *tok;

        rf_buf_printf(&b,
                      "{\"subject_id\":\"%s\",\"surface\":\"%s\",\"list_id\":"
                      "\"L-%s\",\"generated_at\":\"%s\",\"expires_at\":\"%s\","
                      "\"model_version\":\"m\",\"items\":[",
                      subject, surface, gen, gen, exp);
        /* "item" or "item:campaign" */
        for (tok = strtok_r(copy, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save), first = 0) {
                char *camp = strchr(tok, ':');
                if (camp)
                        *camp++ = '\0';
                rf_buf_printf(&b, "%s{\"item_id\":\"%s\",\"score\":1",
                              first ? "" : ",", tok);
                if (camp)
                        rf_buf_printf(&b, ",\"campaign_id\":\"%s\"", camp);
                rf_buf_printf(&b, "}");
        }
        rf_buf_printf(&b, "]}");
        free(copy);
        assert_int_equal(
            rf_list_from_json(NULL, 0, b.data, b.len, NULL, &l, &rej), 0);
        assert_int_equal(rf_lists_apply(&e->ctx, l), 0);
        rf_list_destroy(l);
        rf_buf_free(&b);
}

static void publish(env_t *e, const char *subject, const char *surface,
                    const char *gen, const char *exp, const char *items)
{
        publish_in_batch(e, subject, surface, gen, exp, items);
        commit(e);
}

/* ---- coalescing
 * -------------------------------------------------------------*/

static void test_coalesce_100_events(void **state)
{
        env_t *e = *state;
        char id[32];
        json_t *j;

        set(e, "recompute.max_reasons", "200");
        for (int i = 0; i < 100; i++) {
                snprintf(id, sizeof(id), "ev-%03d", i);
                add(e, "u-co", i % 2 ? "home" : "email", RF_RC_INCREMENTAL, 0,
                    id, T0 + i * 10);
        }
        /* inside the window nothing leaves */
        assert_null(take_ack(e, T0 + 1999));
        j = take_ack(e, T0 + 2000);
        assert_non_null(j);
        assert_string_equal(jstr(j, "subject_id"), "u-co");
        assert_string_equal(jstr(j, "mode"), "incremental");
        assert_string_equal(jstr(j, "priority"), "normal");
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 100);
        assert_int_equal(json_array_size(json_object_get(j, "surfaces")), 2);
        assert_int_equal(
            json_integer_value(json_object_get(j, "reasons_dropped")), 0);
        assert_string_equal(
            jstr(json_array_get(json_object_get(j, "reasons"), 99), "event_id"),
            "ev-099");
        json_decref(j);
        assert_null(take_ack(e, T0 + 60000)); /* one request, no more */

        /* capped: the rest are counted */
        set(e, "recompute.max_reasons", "32");
        for (int i = 0; i < 100; i++) {
                snprintf(id, sizeof(id), "ev-%03d", i);
                add(e, "u-cap", "home", RF_RC_INCREMENTAL, 0, id, T0);
        }
        j = take_ack(e, T0 + 60000);
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 32);
        assert_int_equal(
            json_integer_value(json_object_get(j, "reasons_dropped")), 68);
        json_decref(j);
}

/* Adds a reason for \p subject in a batch that then fails (dropped). */
static void add_dropped(env_t *e, const char *subject)
{
        rf_queue_add_t a = { .subject_id = subject,
                             .surface = "home",
                             .mode = RF_RC_INCREMENTAL,
                             .reason_type = "item_banned",
                             .event_id = "ev-dropped",
                             .entity_kind = "item",
                             .entity_id = "i1" };

        assert_true(rf_queue_add(e->q, e->ctx.txn, &a, T0) >= 0);
        rf_txn_clear(e->ctx.txn);
        rf_queue_rollback(e->q);
}

/* The queue keeps the pending entries it wrote (recompute.entry_cache_mb):
 * a batch dropped after an add must leave no trace of it, and a request
 * sent in between (the queue's own batch) must not bring back an older
 * entry. */
static void test_entry_cache_follows_batches(void **state)
{
        env_t *e = *state;
        json_t *j, *reasons;

        add(e, "u-ec", "home", RF_RC_INCREMENTAL, 0, "ev-1", T0);
        add_dropped(e, "u-ec");
        add(e, "u-ec", "home", RF_RC_INCREMENTAL, 0, "ev-2", T0 + 1);
        j = take_ack(e, T0 + 60000);
        assert_non_null(j);
        reasons = json_object_get(j, "reasons");
        assert_int_equal(json_array_size(reasons), 2);
        assert_string_equal(jstr(json_array_get(reasons, 0), "event_id"),
                            "ev-1");
        assert_string_equal(jstr(json_array_get(reasons, 1), "event_id"),
                            "ev-2");
        json_decref(j);

        /* Sent and acknowledged (the queue's batch deleted the entry): the
         * next add starts a new request, with a new id. */
        add(e, "u-ec", "home", RF_RC_INCREMENTAL, 0, "ev-3", T0 + 60001);
        j = take_ack(e, T0 + 120000);
        assert_non_null(j);
        reasons = json_object_get(j, "reasons");
        assert_int_equal(json_array_size(reasons), 1);
        assert_string_equal(jstr(json_array_get(reasons, 0), "event_id"),
                            "ev-3");
        json_decref(j);
        assert_null(take_ack(e, T0 + 240000));
        assert_true(atomic_load(&rf_metrics.recompute_entry_cache_hits) > 0);
}

/* A dropped batch must not leave the cache thinking a batch is still
 * open: the queue's own next batch would then look like a second writer
 * and turn the cache off for good. */
static void test_entry_cache_survives_a_dropped_batch(void **state)
{
        env_t *e = *state;
        json_t *j;

        add(e, "u-off", "home", RF_RC_INCREMENTAL, 0, "ev-1", T0);
        add_dropped(e, "u-off");
        j = take_ack(e, T0 + 60000); /* the queue's own batch writes */
        assert_non_null(j);
        json_decref(j);
        uint64_t before = atomic_load(&rf_metrics.recompute_entry_cache_hits);
        add(e, "u-off2", "home", RF_RC_INCREMENTAL, 0, "ev-2", T0 + 60001);
        add(e, "u-off2", "home", RF_RC_INCREMENTAL, 0, "ev-3", T0 + 60002);
        add(e, "u-off2", "home", RF_RC_INCREMENTAL, 0, "ev-4", T0 + 60003);
        assert_true(atomic_load(&rf_metrics.recompute_entry_cache_hits) >
                    before);
}

static void test_urgent_bypass(void **state)
{
        env_t *e = *state;
        json_t *j;

        add(e, "u-norm", "home", RF_RC_INCREMENTAL, 0, "n1", T0);
        add(e, "u-urg", "home", RF_RC_INCREMENTAL, 1, "x1", T0);
        /* urgent leaves at once, without waiting for the window */
        j = take_ack(e, T0);
        assert_non_null(j);
        assert_string_equal(jstr(j, "subject_id"), "u-urg");
        assert_string_equal(jstr(j, "priority"), "urgent");
        json_decref(j);
        assert_null(take_ack(e, T0 + 1));
        /* a pending normal entry turns urgent: it leaves at once */
        add(e, "u-norm", "home", RF_RC_INCREMENTAL, 1, "n2", T0 + 2);
        j = take_ack(e, T0 + 2);
        assert_string_equal(jstr(j, "subject_id"), "u-norm");
        assert_string_equal(jstr(j, "priority"), "urgent");
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 2);
        json_decref(j);
}

/* The request's text, field by field: ids that need escaping, the
 * every-surface rule, reasons with and without an entity, the run id. */
static void test_request_text(void **state)
{
        env_t *e = *state;
        const char *odd = "u\"q\\b\x01\x7f\xc3\xa9"; /* " \ ctrl DEL e-acute */
        rf_queue_add_t a = { .subject_id = odd,
                             .surface = "home",
                             .mode = RF_RC_FULL,
                             .request_id = "req-1",
                             .run_id = "run \"7\"",
                             .reason_type = "item_banned",
                             .event_id = "ev\t1",
                             .entity_kind = "item",
                             .entity_id = "i/1" };
        rf_queue_req_t req;
        json_t *j, *r0, *r1;

        assert_true(rf_queue_add(e->q, e->ctx.txn, &a, T0) >= 0);
        a.surface = "email";
        a.reason_type = "list_expired";
        a.event_id = NULL;
        a.entity_kind = NULL;
        assert_true(rf_queue_add(e->q, e->ctx.txn, &a, T0 + 5) >= 0);
        commit(e);
        assert_int_equal(rf_queue_take(e->q, T0 + 3600 * 1000, &req), 1);
        j = json_loads(req.json.data, JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(j);
        /* the schema's field order */
        assert_true(strncmp(req.json.data,
                            "{\"request_id\":\"req-1\","
                            "\"subject_id\":",
                            29) == 0);
        assert_string_equal(jstr(j, "subject_id"), odd);
        assert_string_equal(jstr(j, "run_id"), "run \"7\"");
        assert_string_equal(jstr(j, "mode"), "full");
        assert_int_equal(json_array_size(json_object_get(j, "surfaces")), 2);
        assert_string_equal(json_string_value(json_array_get(
                                json_object_get(j, "surfaces"), 1)),
                            "email");
        r0 = json_array_get(json_object_get(j, "reasons"), 0);
        r1 = json_array_get(json_object_get(j, "reasons"), 1);
        assert_string_equal(jstr(r0, "event_id"), "ev\t1");
        assert_string_equal(jstr(r0, "surface"), "home");
        assert_string_equal(jstr(json_object_get(r0, "entity"), "id"), "i/1");
        assert_string_equal(jstr(r0, "at"), "2026-11-22T10:00:00.000Z");
        assert_string_equal(jstr(r1, "type"), "list_expired");
        assert_null(json_object_get(r1, "event_id"));
        assert_null(json_object_get(r1, "entity"));
        assert_string_equal(jstr(j, "enqueued_at"), "2026-11-22T10:00:00.000Z");
        assert_int_equal(json_object_size(j), 9);
        json_decref(j);
        assert_int_equal(rf_queue_settle(e->q, req.token, 1, T0), 0);
        rf_queue_req_clear(&req);

        /* "" (every surface) wins over the named ones: [] */
        a.subject_id = "u-all";
        a.request_id = NULL;
        a.run_id = NULL;
        a.surface = "home";
        assert_true(rf_queue_add(e->q, e->ctx.txn, &a, T0) >= 0);
        a.surface = "";
        assert_true(rf_queue_add(e->q, e->ctx.txn, &a, T0) >= 0);
        commit(e);
        j = take_ack(e, T0 + 3600 * 1000);
        assert_non_null(j);
        assert_int_equal(json_array_size(json_object_get(j, "surfaces")), 0);
        assert_null(json_object_get(j, "run_id"));
        json_decref(j);
}

/* ---- rate limits over simulated time ------------------------------------*/

static void test_rate_limits(void **state)
{
        env_t *e = *state;
        int sent[RF_RC__MODE_CNT] = { 0 }, urgent = 0;
        char s[32];

        /* fresh buckets at T0 */
        env_close(e);
        env_open(e);
        for (int i = 0; i < 300; i++) {
                snprintf(s, sizeof(s), "r-inc-%03d", i);
                add(e, s, "home", RF_RC_INCREMENTAL, 0, "e", T0);
                snprintf(s, sizeof(s), "r-full-%03d", i);
                add(e, s, "home", RF_RC_FULL, 0, NULL, T0);
        }
        for (int i = 0; i < 20; i++) {
                snprintf(s, sizeof(s), "r-urg-%03d", i);
                add(e, s, "home", RF_RC_INCREMENTAL, 1, "e", T0 + 5000);
        }
        /* 10 simulated seconds in 10 ms steps, after the 2 s window */
        for (int64_t t = T0 + 2000; t <= T0 + 12000; t += 10) {
                json_t *j;
                while ((j = take_ack(e, t))) {
                        if (!strcmp(jstr(j, "priority"), "urgent"))
                                urgent++;
                        else
                                sent[rf_rc_mode_parse(jstr(j, "mode"))]++;
                        json_decref(j);
                }
        }
        /* burst of one second's tokens, then the rate: 10 + 10/s * 10 s */
        assert_in_range(sent[RF_RC_INCREMENTAL], 100, 111);
        /* full has its own, lower bucket: 2 + 2/s * 10 s, and the full
         * refresh never took the normal bucket's tokens */
        assert_in_range(sent[RF_RC_FULL], 20, 23);
        /* urgent ones are not rate limited */
        assert_int_equal(urgent, 20);
}

/* Every due request is sent exactly once and in enqueue order, though
 * more are due than one read of the due keys holds, the rate limit refuses
 * most takes, and new requests arrive between takes. */
static void test_takes_every_due_key_once(void **state)
{
        env_t *e = *state;
        enum { N = 700, LATE = 50 };
        static char seen[N + LATE];
        char s[32];
        int sent = 0, last = -1;

        memset(seen, 0, sizeof(seen));
        env_close(e);
        env_open(e);
        for (int i = 0; i < N; i++) {
                snprintf(s, sizeof(s), "o-%04d", i);
                add(e, s, "home", RF_RC_INCREMENTAL, 0, "e", T0 + i);
        }
        for (int64_t t = T0 + 3000; t <= T0 + 90000 && sent < N + LATE;
             t += 10) {
                json_t *j;
                if (t == T0 + 20000) /* while the first ones are sent */
                        for (int i = N; i < N + LATE; i++) {
                                snprintf(s, sizeof(s), "o-%04d", i);
                                add(e, s, "home", RF_RC_INCREMENTAL, 0, "e",
                                    T0 + 1000 + i);
                        }
                while ((j = take_ack(e, t))) {
                        int i = atoi(jstr(j, "subject_id") + 2);
                        assert_in_range(i, 0, N + LATE - 1);
                        assert_int_equal(seen[i], 0);
                        assert_true(i > last); /* enqueue order */
                        seen[i] = 1;
                        last = i;
                        sent++;
                        json_decref(j);
                }
        }
        assert_int_equal(sent, N + LATE);
}

/* A request queued after the due keys were read (to their end, or up to
 * one not yet due) is still taken when due, from the apply's batch and
 * from the queue's own (a failed delivery); never before. */
static void test_late_keys_taken_when_due(void **state)
{
        env_t *e = *state;
        rf_queue_req_t req;

        add(e, "late-a", "home", RF_RC_INCREMENTAL, 0, "e1", T0);
        assert_null(take_ack(e, T0 + 100)); /* read up to a-not-due */
        add(e, "late-b", "home", RF_RC_INCREMENTAL, 0, "e2", T0 + 500);
        expect_next(e, T0 + 2000, "late-a", NULL);
        assert_null(take_ack(e, T0 + 2400)); /* b: due at 2500 */
        expect_next(e, T0 + 2500, "late-b", NULL);
        assert_null(take_ack(e, T0 + 2600)); /* read to the end */

        add(e, "late-c", "home", RF_RC_INCREMENTAL, 0, "e3", T0 + 3000);
        assert_null(take_ack(e, T0 + 4999));
        assert_int_equal(rf_queue_take(e->q, T0 + 5000, &req), 1);
        assert_string_equal(req.subject_id.data, "late-c");
        /* not delivered: due again at once, through the queue's batch */
        assert_int_equal(rf_queue_settle(e->q, req.token, 0, T0 + 5000), 0);
        rf_queue_req_clear(&req);
        expect_next(e, T0 + 5001, "late-c", NULL);
        assert_null(take_ack(e, T0 + 60000));
}

/* A subject's newer entry, due while its older request is in flight, is
 * passed over by the read of due keys; once the older one is settled the
 * newer one is taken (found in review: the kept due cache never read it
 * again). */
static void test_newer_entry_after_flight(void **state)
{
        env_t *e = *state;
        rf_queue_req_t req;

        add(e, "fl-s", "home", RF_RC_INCREMENTAL, 0, "e1", T0);
        assert_int_equal(rf_queue_take(e->q, T0 + 2000, &req), 1);
        /* a fresh list satisfies it while in flight; a ban queues again */
        publish(e, "fl-s", "home", "2026-11-22T10:00:03Z",
                "2026-11-29T10:00:00Z", "a,b");
        add(e, "fl-s", "home", RF_RC_INCREMENTAL, 0, "e2", T0 + 4000);
        assert_null(take_ack(e, T0 + 6000)); /* in flight: passed over */
        assert_int_equal(rf_queue_settle(e->q, req.token, 1, T0 + 6000), 0);
        rf_queue_req_clear(&req);
        expect_next(e, T0 + 6001, "fl-s", "e2");
        assert_null(take_ack(e, T0 + 60000));
}

/* The tick's and replay's way: batches taken in one commit each, so the
 * due keys taken earlier in a batch are deleted only in the batch. Every
 * key once, in order; a batch not delivered comes back with its ids. */
static void test_takes_in_batches(void **state)
{
        env_t *e = *state;
        enum { N = 700, B = 37 };
        static char seen[N], ids[N][33];
        rf_queue_req_t reqs[B];
        void *tokens[B];
        char s[32], first_id[64] = "";
        int sent = 0, last = -1, failed_once = 0;

        memset(seen, 0, sizeof(seen));
        set(e, "recompute.rate_per_s", "1000000");
        env_close(e);
        env_open(e);
        for (int i = 0; i < N; i++) {
                snprintf(s, sizeof(s), "b-%04d", i);
                add(e, s, "home", RF_RC_INCREMENTAL, 0, "e", T0 + i);
        }
        for (int64_t t = T0 + 3000; t <= T0 + 90000 && sent < N; t += 10) {
                int n = rf_queue_take_batch(e->q, t, reqs, B);
                assert_true(n >= 0 && n <= B);
                if (n && !failed_once) {
                        /* not delivered: all due again, first id kept */
                        snprintf(first_id, sizeof(first_id), "%s",
                                 reqs[0].request_id.data);
                        for (int i = 0; i < n; i++) {
                                tokens[i] = reqs[i].token;
                                rf_queue_req_clear(&reqs[i]);
                        }
                        assert_int_equal(rf_queue_settle_batch(e->q, tokens,
                                                               (size_t)n, 0, t),
                                         0);
                        failed_once = 1;
                        n = rf_queue_take_batch(e->q, t, reqs, B);
                        assert_true(n > 0);
                        assert_string_equal(reqs[0].request_id.data, first_id);
                }
                for (int k = 0; k < n; k++) {
                        json_t *j = json_loads(reqs[k].json.data, 0, NULL);
                        int i = atoi(jstr(j, "subject_id") + 2);
                        const char *rid = jstr(j, "request_id");
                        assert_in_range(i, 0, N - 1);
                        assert_int_equal(seen[i], 0);
                        /* 32 hex digits, and no other request has them */
                        assert_int_equal(strlen(rid), 32);
                        assert_int_equal(strspn(rid, "0123456789abcdef"), 32);
                        for (int o = 0; o < i; o++)
                                assert_string_not_equal(ids[o], rid);
                        memcpy(ids[i], rid, 33);
                        assert_true(i > last); /* enqueue order */
                        seen[i] = 1;
                        last = i;
                        sent++;
                        json_decref(j);
                        tokens[k] = reqs[k].token;
                        rf_queue_req_clear(&reqs[k]);
                }
                if (n)
                        assert_int_equal(rf_queue_settle_batch(e->q, tokens,
                                                               (size_t)n, 1, t),
                                         0);
        }
        assert_int_equal(sent, N);
        rf_queue_stats_t st;
        rf_queue_counts(e->q, &st);
        assert_int_equal(st.count, 0);
        assert_int_equal(st.inflight, 0);
        /* and durable: nothing comes back after a restart */
        env_close(e);
        env_open(e);
        assert_int_equal(rf_queue_take_batch(e->q, T0 + 100000, reqs, B), 0);
}

/* ---- the send tick
 * ----------------------------------------------------------*/

/* A producer on a fresh embedded broker whose delivery reports go to the
 * queue, as the daemon's. */
static rd_kafka_t *tick_producer(env_t *e, rf_broker_t **b)
{
        char err[512];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_t *rk;

        *b = rf_broker_new(1, 1, err, sizeof(err));
        if (!*b)
                fail_msg("%s", err);
        assert_int_equal(rd_kafka_conf_set(kc, "bootstrap.servers",
                                           rf_broker_bootstraps(*b), err,
                                           sizeof(err)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(
            rd_kafka_conf_set(kc, "linger.ms", "0", err, sizeof(err)),
            RD_KAFKA_CONF_OK);
        rf_queue_conf_set(e->q, kc);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        if (!rk)
                fail_msg("%s", err);
        return rk;
}

/* N urgent subjects (no window, no rate limit), queued in one batch. */
static void add_urgent(env_t *e, const char *prefix, int n)
{
        char s[32];
        for (int i = 0; i < n; i++) {
                snprintf(s, sizeof(s), "%s-%04d", prefix, i);
                add(e, s, "home", RF_RC_INCREMENTAL, 1, "e", T0);
        }
}

/* N urgent requests produced and acknowledged by ticks. With
 * recompute.tick_ms 1, a tick neither sends nor settles them all at once
 * (each takes microseconds, and a batch of 128 is committed at a time), and
 * the queue says to come back at once; with 0, one tick does. Either way
 * each leaves once, and all are settled. */
static void tick_run(env_t *e, const char *tick_ms)
{
        enum { N = 1000 };
        rf_broker_t *b;
        rd_kafka_t *rk;
        rf_queue_stats_t st;
        rf_queue_req_t reqs[64];
        size_t sent, first;
        int bounded = strcmp(tick_ms, "0") != 0, n;

        set(e, "recompute.tick_ms", tick_ms);
        set(e, "recompute.max_inflight", "100000");
        env_close(e);
        env_open(e);
        rk = tick_producer(e, &b);

        /* Sending: the first tick is bounded. */
        add_urgent(e, "t", N);
        sent = first = rf_queue_tick(e->q, rk, T0);
        if (bounded) {
                assert_in_range(first, 128, N - 1);
                assert_int_equal(rf_queue_wait_ms(e->q, T0), 0);
        } else {
                assert_int_equal(first, N);
        }
        for (int k = 0; k < 10000 && sent < N; k++)
                sent += rf_queue_tick(e->q, rk, T0);
        assert_int_equal(sent, N);
        assert_int_equal(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
        rf_queue_counts(e->q, &st);
        for (int k = 0; k < 10000 && st.inflight; k++) {
                assert_int_equal(rf_queue_tick(e->q, rk, T0), 0);
                rf_queue_counts(e->q, &st);
        }
        assert_int_equal(st.inflight, 0);
        assert_int_equal(st.count, 0);

        /* Settling: N more taken and produced without a tick, so that
         * every delivery report waits for the next one. */
        add_urgent(e, "s", N);
        sent = 0;
        while ((n = rf_queue_take_batch(e->q, T0, reqs, 64)) > 0) {
                for (int i = 0; i < n; i++) {
                        assert_int_equal(
                            rd_kafka_producev(
                                rk,
                                RD_KAFKA_V_TOPIC(
                                    rf_topic(RF_TOPIC_RECOMPUTE)->name),
                                RD_KAFKA_V_VALUE(reqs[i].json.data,
                                                 reqs[i].json.len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(reqs[i].token),
                                RD_KAFKA_V_END),
                            RD_KAFKA_RESP_ERR_NO_ERROR);
                        rf_queue_req_clear(&reqs[i]);
                }
                sent += (size_t)n;
        }
        assert_int_equal(sent, N);
        assert_int_equal(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
        rf_queue_counts(e->q, &st);
        assert_int_equal(st.inflight, N);
        assert_int_equal(rf_queue_tick(e->q, rk, T0), 0);
        rf_queue_counts(e->q, &st);
        if (bounded) {
                assert_in_range(st.inflight, 1, N - 128);
                assert_int_equal(rf_queue_wait_ms(e->q, T0), 0);
        } else {
                assert_int_equal(st.inflight, 0);
        }
        for (int k = 0; k < 10000 && st.inflight; k++) {
                assert_int_equal(rf_queue_tick(e->q, rk, T0), 0);
                rf_queue_counts(e->q, &st);
        }
        assert_int_equal(st.inflight, 0);
        assert_int_equal(st.count, 0);
        rd_kafka_destroy(rk);
        rf_broker_destroy(b);
}

static void test_tick_bounded(void **state)
{
        tick_run(*state, "1");
}

static void test_tick_unbounded(void **state)
{
        tick_run(*state, "0");
}

/* ---- deltas (merge operands) ---------------------------------------------*/

/* \p subject's pending entry as RocksDB returns it (merged), as request
 * JSON text; "" if none. The caller frees it. */
static char *stored_json(env_t *e, const char *subject)
{
        rf_buf_t k = { 0 }, v = { 0 }, j = { 0 };
        char *out;

        rf_buf_append(&k, "P", 1);
        rf_buf_append(&k, subject, strlen(subject));
        int r = rf_store_get(e->st, RF_CF_QUEUE, k.data, k.len, &v);
        assert_true(r == 0 || r == RF_ENOENT);
        if (r == 0)
                assert_int_equal(
                    rf_queue_entry_to_json(subject, v.data, v.len, &j), 0);
        out = rf_strdup(j.len ? j.data : "");
        rf_buf_free(&k);
        rf_buf_free(&v);
        rf_buf_free(&j);
        return out;
}

/* The request \p j has exactly the reasons of events PREFIX0..PREFIX<n-1>,
 * in that order. */
static void expect_reasons(json_t *j, const char *prefix, size_t n)
{
        json_t *rs = json_object_get(j, "reasons");
        char id[32];

        assert_int_equal(json_array_size(rs), n);
        for (size_t i = 0; i < n; i++) {
                snprintf(id, sizeof(id), "%s%zu", prefix, i);
                assert_string_equal(jstr(json_array_get(rs, i), "event_id"),
                                    id);
        }
}

/* An entry changed batch after batch is written as deltas through the
 * merge operator. What RocksDB merges must be what was sent: in the
 * memtable, after a restart (the WAL), after a flush and a compaction
 * (the full merge in the background), with reasons past the cap counted,
 * a priority raised, a surface cleared by a fresh list and a send's
 * mark. */
static void test_entry_deltas_merge(void **state)
{
        env_t *e = *state;
        char err[256], id[32], *before, *after;
        uint64_t deltas = atomic_load(&rf_metrics.recompute_entry_deltas);
        rf_queue_req_t req;
        json_t *j;

        set(e, "recompute.max_reasons", "5");
        for (int i = 0; i < 8; i++) {
                snprintf(id, sizeof(id), "ev-%d", i);
                add(e, "u-delta", i % 3 ? "home" : "email", RF_RC_INCREMENTAL,
                    i == 6, id, T0 + i);
        }
        /* one batch each: 7 changes written as deltas, not whole */
        assert_true(atomic_load(&rf_metrics.recompute_entry_deltas) >=
                    deltas + 7);
        publish(e, "u-delta", "email", "2026-11-22T10:00:01Z",
                "2026-11-23T10:00:00Z", "i1,i2");

        before = stored_json(e, "u-delta");
        j = json_loads(before, 0, NULL);
        assert_non_null(j);
        expect_reasons(j, "ev-", 5);
        assert_int_equal(
            json_integer_value(json_object_get(j, "reasons_dropped")), 3);
        assert_string_equal(jstr(j, "priority"), "urgent");
        /* email's list is newer than its reasons: only home is left */
        assert_int_equal(json_array_size(json_object_get(j, "surfaces")), 1);
        json_decref(j);

        /* what a send reads (the writer's cache) is what was stored */
        assert_int_equal(rf_queue_take(e->q, T0 + 10, &req), 1);
        assert_string_equal(req.json.data, before);
        rf_queue_req_clear(&req);
        free(before);
        before = stored_json(e, "u-delta"); /* with the send's mark */

        env_close(e); /* the deltas are in the WAL only */
        env_open(e);
        after = stored_json(e, "u-delta");
        assert_string_equal(after, before);
        free(after);
        assert_int_equal(rf_store_compact_all(e->st, err, sizeof(err)), 0);
        after = stored_json(e, "u-delta");
        assert_string_equal(after, before);
        free(after);
        free(before);
        assert_int_equal(atomic_load(&rf_metrics.recompute_delta_damaged), 0);

        /* sent again after the restart, with the reasons of the first send */
        j = take_ack(e, T0 + 20);
        assert_non_null(j);
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 5);
        json_decref(j);
        before = stored_json(e, "u-delta");
        assert_string_equal(before, "");
        free(before);
}

/* How many merge operands (deltas) a read of \p subject's entry from the
 * store folds (RocksDB 7.8 counts them in iterators only). */
static uint64_t deltas_read(env_t *e, const char *subject)
{
        rocksdb_perfcontext_t *pc = rocksdb_perfcontext_create();
        rf_buf_t k = { 0 };
        rf_iter_t *it;
        uint64_t n;

        rf_buf_append(&k, "P", 1);
        rf_buf_append(&k, subject, strlen(subject));
        rocksdb_set_perf_level(rocksdb_enable_count);
        rocksdb_perfcontext_reset(pc);
        it = rf_iter_new(e->st, NULL, RF_CF_QUEUE, k.data, k.len);
        rf_iter_seek(it, k.data, k.len);
        assert_true(rf_iter_valid(it));
        n = rocksdb_perfcontext_metric(pc, rocksdb_internal_merge_count);
        rf_iter_destroy(it);
        rocksdb_set_perf_level(rocksdb_disable);
        rocksdb_perfcontext_destroy(pc);
        rf_buf_free(&k);
        return n;
}

/* 150 changes to one entry, each committed: the writer puts the entry
 * whole again past 64 deltas, so a read never folds more. After a restart
 * it does not know how many lie there, and writes whole once. What the
 * store holds is what is sent. (RocksDB counts folded operands its own way:
 * the reads are compared with those of known chains.) */
static void test_long_delta_chain(void **state)
{
        env_t *e = *state;
        char id[16], *cur;
        rf_queue_req_t req;
        uint64_t n[150];
        json_t *j;

        set(e, "recompute.max_reasons", "200");
        for (int i = 0; i < 150; i++) {
                snprintf(id, sizeof(id), "lc-%d", i);
                add(e, "u-long", "home", RF_RC_INCREMENTAL, 0, id, T0 + i);
                n[i] = deltas_read(e, "u-long");
        }
        /* i deltas over the whole first write, for i up to 64 */
        assert_int_equal(n[0], 0);
        for (int i = 1; i <= 64; i++)
                assert_true(n[i] >= n[i - 1]);
        assert_true(n[2] > 0);
        assert_true(n[64] > n[2]);
        assert_int_equal(n[65], 0); /* whole */
        for (int i = 0; i < 150; i++)
                assert_true(n[i] <= n[64]);

        env_close(e);
        env_open(e);
        add(e, "u-long", "home", RF_RC_INCREMENTAL, 0, "lc-150", T0 + 150);
        assert_int_equal(deltas_read(e, "u-long"), 0);
        add(e, "u-long", "home", RF_RC_INCREMENTAL, 0, "lc-151", T0 + 151);
        add(e, "u-long", "home", RF_RC_INCREMENTAL, 0, "lc-152", T0 + 152);
        assert_int_equal(deltas_read(e, "u-long"), n[2]);

        cur = stored_json(e, "u-long");
        j = json_loads(cur, 0, NULL);
        expect_reasons(j, "lc-", 153);
        json_decref(j);
        assert_int_equal(rf_queue_take(e->q, T0 + 60000, &req), 1);
        assert_string_equal(req.json.data, cur);
        rf_queue_req_clear(&req);
        free(cur);
}

/* A dropped batch empties the entry cache: the next change to an entry,
 * whose deltas the cache no longer counts, is written whole. */
static void test_whole_after_a_dropped_batch(void **state)
{
        env_t *e = *state;
        char id[16], *cur;
        uint64_t two;
        json_t *j;

        for (int i = 0; i < 3; i++) {
                snprintf(id, sizeof(id), "dc-%d", i);
                add(e, "u-dc", "home", RF_RC_INCREMENTAL, 0, id, T0 + i);
        }
        two = deltas_read(e, "u-dc");
        assert_true(two > 0);
        add_dropped(e, "u-dc");
        add(e, "u-dc", "home", RF_RC_INCREMENTAL, 0, "dc-3", T0 + 3);
        assert_int_equal(deltas_read(e, "u-dc"), 0);
        add(e, "u-dc", "home", RF_RC_INCREMENTAL, 0, "dc-4", T0 + 4);
        add(e, "u-dc", "home", RF_RC_INCREMENTAL, 0, "dc-5", T0 + 5);
        assert_int_equal(deltas_read(e, "u-dc"), two);
        cur = stored_json(e, "u-dc");
        j = json_loads(cur, 0, NULL);
        expect_reasons(j, "dc-", 6); /* not the dropped one */
        json_decref(j);
        free(cur);
}

/* Without the writer's entry cache (recompute.entry_cache_mb=0) every add
 * reads the entry back through the batch (a fan-out's many adds in one
 * batch) and, with nothing to count its deltas, writes it whole. */
static void test_entry_deltas_in_one_batch_uncached(void **state)
{
        env_t *e = *state;
        char err[256], id[16], *cur;
        uint64_t deltas;
        json_t *j;

        env_close(e);
        set(e, "recompute.entry_cache_mb", "0");
        env_open(e);
        deltas = atomic_load(&rf_metrics.recompute_entry_deltas);
        for (int i = 0; i < 6; i++) {
                rf_queue_add_t a = { .subject_id = "u-nc",
                                     .surface = i == 4 ? "email" : "home",
                                     .mode = RF_RC_INCREMENTAL,
                                     .urgent = i == 5,
                                     .reason_type = "item_banned",
                                     .event_id = id,
                                     .entity_kind = "item",
                                     .entity_id = "i1" };
                snprintf(id, sizeof(id), "nc-%d", i);
                assert_true(rf_queue_add(e->q, e->ctx.txn, &a, T0 + i) >= 0);
                if (i == 1)
                        commit(e); /* a stored entry under the rest */
        }
        commit(e);
        assert_int_equal(atomic_load(&rf_metrics.recompute_entry_deltas),
                         deltas);
        cur = stored_json(e, "u-nc");
        j = json_loads(cur, 0, NULL);
        expect_reasons(j, "nc-", 6);
        assert_string_equal(jstr(j, "priority"), "urgent");
        assert_int_equal(json_array_size(json_object_get(j, "surfaces")), 2);
        json_decref(j);
        assert_int_equal(
            rf_store_compact_cf(e->st, RF_CF_QUEUE, err, sizeof(err)), 0);
        char *after = stored_json(e, "u-nc");
        assert_string_equal(after, cur);
        free(after);
        free(cur);
}

/* \p subject's pending entry as request JSON text, read with RocksDB
 * opened as a recfresh from before deltas opens it: without the queue's
 * merge operator (read-only: the store is left as it was). "" if none;
 * the caller frees it. */
static char *read_without_merge_operator(env_t *e, const char *subject)
{
        rocksdb_options_t *o = rocksdb_options_create();
        char *err = NULL, **names, *out = NULL;
        size_t n, vlen;

        names = rocksdb_list_column_families(o, e->dir, &n, &err);
        assert_null(err);
        const rocksdb_options_t **opts = rf_calloc(n, sizeof(*opts));
        rocksdb_column_family_handle_t **h = rf_calloc(n, sizeof(*h));
        for (size_t i = 0; i < n; i++)
                opts[i] = o;
        rocksdb_t *db = rocksdb_open_for_read_only_column_families(
            o, e->dir, (int)n, (const char *const *)names, opts, h, 0, &err);
        assert_null(err);
        for (size_t i = 0; i < n; i++) {
                if (strcmp(names[i], "queue") != 0)
                        continue;
                rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
                rf_buf_t k = { 0 }, j = { 0 };
                rf_buf_append(&k, "P", 1);
                rf_buf_append(&k, subject, strlen(subject));
                char *v =
                    rocksdb_get_cf(db, ro, h[i], k.data, k.len, &vlen, &err);
                assert_null(err);
                if (v)
                        assert_int_equal(
                            rf_queue_entry_to_json(subject, v, vlen, &j), 0);
                out = rf_strdup(j.len ? j.data : "");
                free(v);
                rf_buf_free(&k);
                rf_buf_free(&j);
                rocksdb_readoptions_destroy(ro);
        }
        for (size_t i = 0; i < n; i++)
                rocksdb_column_family_handle_destroy(h[i]);
        rocksdb_close(db);
        rocksdb_list_column_families_destroy(names, n);
        free(opts);
        free(h);
        rocksdb_options_destroy(o);
        assert_non_null(out);
        return out;
}

/* A recfresh from before deltas reads an entry without its deltas (RocksDB
 * 7 without the merge operator returns the last whole value); folding the
 * queue (`recfresh queue --fold`) gives it the entry as it is. */
static void test_fold_for_an_older_binary(void **state)
{
        env_t *e = *state;
        char err[256], *cur, *old;

        /* The entry in one table file, its deltas in the next: a flush
         * folds the deltas whose entry is in the same memtable. */
        add(e, "u-fold", "home", RF_RC_INCREMENTAL, 0, "f-1", T0);
        assert_int_equal(rf_store_flush(e->st, err, sizeof(err)), 0);
        add(e, "u-fold", "home", RF_RC_INCREMENTAL, 0, "f-2", T0 + 1);
        add(e, "u-fold", "email", RF_RC_INCREMENTAL, 0, "f-3", T0 + 2);
        assert_int_equal(rf_store_flush(e->st, err, sizeof(err)), 0);
        assert_int_equal(rf_store_merge_operands(e->st, RF_CF_QUEUE), 2);
        cur = stored_json(e, "u-fold");
        env_close(e);
        /* In a child: Debian's RocksDB asserts on a merge operand it has
         * no operator for, in a table file. */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                if (null >= 0)
                        dup2(null, 2); /* the assertion's message */
                old = read_without_merge_operator(e, "u-fold");
                _exit(strcmp(old, cur) == 0 ? 0 : 3);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        /* aborted, or read without f-2 and f-3 */
        assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        env_open(e);
        assert_int_equal(
            rf_store_compact_cf(e->st, RF_CF_QUEUE, err, sizeof(err)), 0);
        assert_int_equal(rf_store_merge_operands(e->st, RF_CF_QUEUE), 0);
        env_close(e);
        old = read_without_merge_operator(e, "u-fold");
        assert_string_equal(old, cur);
        free(old);
        env_open(e);
        old = stored_json(e, "u-fold");
        assert_string_equal(old, cur);
        free(old);
        free(cur);
}

/* A delta made by hand (the layout in recompute.c) of mode \p mode: it
 * keeps the first 3 reasons of its entry and adds d-3. */
static void hand_delta(rf_buf_t *d, int mode)
{
        char mu[2] = { (char)mode, 0 };
        const char *f[5] = { "item_banned", "d-3", "home", "item", "i1" };

        rf_buf_append(d, "\x02", 1);
        rf_buf_put_str(d, "rid-hand");
        rf_buf_append(d, mu, 2);
        rf_buf_put_str(d, "");
        rf_buf_put_be64(d, (uint64_t)T0);
        rf_buf_put_varint(d, 9);
        rf_buf_put_varint(d, 1);
        rf_buf_put_str(d, "home");
        rf_buf_put_be64(d, (uint64_t)T0 + 3);
        rf_buf_put_varint(d, 3); /* from */
        rf_buf_put_varint(d, 1);
        for (int i = 0; i < 5; i++)
                rf_buf_put_str(d, f[i]);
        rf_buf_put_be64(d, (uint64_t)T0 + 3);
        rf_buf_put_varint(d, 0); /* dropped */
        rf_buf_put_varint(d, 0); /* sent_gen */
}

/* The merge operator never fails (a failed merge stops RocksDB's
 * flushes): a damaged delta is skipped and counted, and a delta whose
 * entry is missing keeps its own reasons and counts the others dropped. */
static void test_entry_merge_damaged(void **state)
{
        env_t *e = *state;
        rf_buf_t k = { 0 }, v = { 0 }, base = { 0 }, out = { 0 }, jb = { 0 };
        uint64_t damaged = atomic_load(&rf_metrics.recompute_delta_damaged);
        json_t *j;

        for (int i = 0; i < 3; i++) {
                char id[16];
                snprintf(id, sizeof(id), "d-%d", i);
                add(e, "u-dmg", "home", RF_RC_INCREMENTAL, 0, id, T0 + i);
        }
        rf_buf_append(&k, "Pu-dmg", 6);
        assert_int_equal(rf_store_get(e->st, RF_CF_QUEUE, k.data, k.len, &base),
                         0);
        /* the entry after a 4th add (its delta merged in by RocksDB) */
        add(e, "u-dmg", "home", RF_RC_INCREMENTAL, 0, "d-3", T0 + 3);
        assert_int_equal(rf_store_get(e->st, RF_CF_QUEUE, k.data, k.len, &v),
                         0);

        const char *garbage = "\x02\xff\xff";
        const char *ops1[] = { garbage };
        size_t lens1[] = { 3 };
        rf_queue_entry_merge(base.data, base.len, ops1, lens1, 1, &out);
        assert_int_equal(out.len, base.len); /* skipped: as it was */
        assert_memory_equal(out.data, base.data, base.len);
        assert_int_equal(atomic_load(&rf_metrics.recompute_delta_damaged),
                         damaged + 1);
        rf_buf_free(&out);

        /* well formed but for a mode no entry can have: skipped too */
        rf_buf_t badmode = { 0 };
        hand_delta(&badmode, RF_RC__MODE_CNT);
        rf_queue_entry_merge(base.data, base.len,
                             (const char *const[]){ badmode.data },
                             (const size_t[]){ badmode.len }, 1, &out);
        assert_int_equal(out.len, base.len);
        assert_memory_equal(out.data, base.data, base.len);
        assert_int_equal(atomic_load(&rf_metrics.recompute_delta_damaged),
                         damaged + 2);
        rf_buf_free(&badmode);
        rf_buf_free(&out);

        /* A whole entry as an operand (never written, but legal) replaces
         * what was there. */
        const char *ops2[] = { v.data };
        size_t lens2[] = { v.len };
        rf_queue_entry_merge(NULL, 0, ops2, lens2, 1, &out);
        assert_int_equal(out.len, v.len);
        assert_memory_equal(out.data, v.data, v.len);
        rf_buf_free(&out);

        /* A delta made by hand (the layout in recompute.c): it keeps the
         * first 3 reasons and adds d-3. */
        rf_buf_t d = { 0 };
        hand_delta(&d, RF_RC_INCREMENTAL);
        const char *ops3[] = { d.data, d.data };
        size_t lens3[] = { d.len, d.len };

        /* on its entry: 3 kept and one added */
        rf_queue_entry_merge(base.data, base.len, ops3, lens3, 1, &out);
        assert_int_equal(
            rf_queue_entry_to_json("u-dmg", out.data, out.len, &jb), 0);
        j = json_loads(jb.data, 0, NULL);
        assert_string_equal(jstr(j, "request_id"), "rid-hand");
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 4);
        assert_string_equal(
            jstr(json_array_get(json_object_get(j, "reasons"), 0), "event_id"),
            "d-0");
        assert_string_equal(
            jstr(json_array_get(json_object_get(j, "reasons"), 3), "event_id"),
            "d-3");
        assert_int_equal(
            json_integer_value(json_object_get(j, "reasons_dropped")), 0);
        json_decref(j);
        rf_buf_free(&out);
        rf_buf_reset(&jb);

        /* twice in a row: the second keeps 3 of the first's 4 */
        rf_queue_entry_merge(base.data, base.len, ops3, lens3, 2, &out);
        assert_int_equal(
            rf_queue_entry_to_json("u-dmg", out.data, out.len, &jb), 0);
        j = json_loads(jb.data, 0, NULL);
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 4);
        assert_string_equal(
            jstr(json_array_get(json_object_get(j, "reasons"), 2), "event_id"),
            "d-2");
        json_decref(j);
        rf_buf_free(&out);
        rf_buf_reset(&jb);

        /* with no entry under it: its own reason, 3 counted dropped */
        rf_queue_entry_merge(NULL, 0, ops3, lens3, 1, &out);
        assert_int_equal(
            rf_queue_entry_to_json("u-dmg", out.data, out.len, &jb), 0);
        j = json_loads(jb.data, 0, NULL);
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 1);
        assert_int_equal(
            json_integer_value(json_object_get(j, "reasons_dropped")), 3);
        json_decref(j);
        rf_buf_free(&out);
        rf_buf_free(&jb);
        rf_buf_free(&d);
        rf_buf_free(&k);
        rf_buf_free(&v);
        rf_buf_free(&base);
}

/* ---- durability -----------------------------------------------------------*/

static void test_crash_resends_same_id(void **state)
{
        env_t *e = *state;
        rf_queue_req_t req;
        char rid[64];
        json_t *j;

        add(e, "u-crash", "home", RF_RC_INCREMENTAL, 0, "c1", T0);
        assert_int_equal(rf_queue_take(e->q, T0 + 5000, &req), 1);
        snprintf(rid, sizeof(rid), "%s", req.request_id.data);
        rf_queue_req_clear(&req);
        /* crash before the acknowledgement */
        env_close(e);
        env_open(e);
        j = take_ack(e, T0 + 5000);
        assert_non_null(j);
        assert_string_equal(jstr(j, "request_id"), rid);
        json_decref(j);
        assert_null(take_ack(e, T0 + 10000));

        /* a failed delivery is retried with the same id */
        add(e, "u-fail", "home", RF_RC_INCREMENTAL, 0, "f1", T0);
        assert_int_equal(rf_queue_take(e->q, T0 + 5000, &req), 1);
        snprintf(rid, sizeof(rid), "%s", req.request_id.data);
        assert_int_equal(rf_queue_settle(e->q, req.token, 0, T0 + 5000), 0);
        rf_queue_req_clear(&req);
        j = take_ack(e, T0 + 5000);
        assert_string_equal(jstr(j, "request_id"), rid);
        json_decref(j);
}

/* A request_id names one content: an entry that grew while in flight and
 * then lost its process is sent again under a NEW id carrying every reason
 * (a scorer deduplicating by request_id would drop the growth otherwise). */
static void test_crash_after_growth_new_id(void **state)
{
        env_t *e = *state;
        rf_queue_req_t req;
        char rid[64];
        json_t *j, *rs;

        add(e, "u-grow", "home", RF_RC_INCREMENTAL, 0, "g1", T0);
        assert_int_equal(rf_queue_take(e->q, T0 + 5000, &req), 1);
        snprintf(rid, sizeof(rid), "%s", req.request_id.data);
        rf_queue_req_clear(&req);
        add(e, "u-grow", "home", RF_RC_INCREMENTAL, 0, "g2", T0 + 5001);
        /* crash before the acknowledgement of the first send */
        env_close(e);
        env_open(e);
        j = take_ack(e, T0 + 10000);
        assert_non_null(j);
        assert_string_not_equal(jstr(j, "request_id"), rid);
        rs = json_object_get(j, "reasons");
        assert_int_equal(json_array_size(rs), 2);
        assert_string_equal(jstr(json_array_get(rs, 0), "event_id"), "g1");
        assert_string_equal(jstr(json_array_get(rs, 1), "event_id"), "g2");
        json_decref(j);
        assert_null(take_ack(e, T0 + 20000));

        /* Growth after a restart re-armed it counts the same. */
        add(e, "u-grow2", "home", RF_RC_INCREMENTAL, 0, "h1", T0);
        assert_int_equal(rf_queue_take(e->q, T0 + 5000, &req), 1);
        snprintf(rid, sizeof(rid), "%s", req.request_id.data);
        rf_queue_req_clear(&req);
        env_close(e);
        env_open(e);
        add(e, "u-grow2", "home", RF_RC_INCREMENTAL, 0, "h2", T0 + 6000);
        j = take_ack(e, T0 + 10000);
        assert_non_null(j);
        assert_string_not_equal(jstr(j, "request_id"), rid);
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 2);
        json_decref(j);
}

static void test_reasons_while_in_flight(void **state)
{
        env_t *e = *state;
        rf_queue_req_t req;
        char rid[64];
        json_t *j;

        add(e, "u-fl", "home", RF_RC_INCREMENTAL, 0, "a1", T0);
        assert_int_equal(rf_queue_take(e->q, T0 + 3000, &req), 1);
        snprintf(rid, sizeof(rid), "%s", req.request_id.data);
        /* arrives while the request is in flight */
        add(e, "u-fl", "home", RF_RC_INCREMENTAL, 0, "a2", T0 + 3001);
        assert_int_equal(rf_queue_settle(e->q, req.token, 1, T0 + 3002), 0);
        rf_queue_req_clear(&req);
        /* not lost: sent again, with only the new reason, a new id */
        j = take_ack(e, T0 + 10000);
        assert_non_null(j);
        assert_string_not_equal(jstr(j, "request_id"), rid);
        json_t *rs = json_object_get(j, "reasons");
        assert_int_equal(json_array_size(rs), 1);
        assert_string_equal(jstr(json_array_get(rs, 0), "event_id"), "a2");
        json_decref(j);
        assert_null(take_ack(e, T0 + 20000));
}

/* ---- hooks ----------------------------------------------------------------*/

static void test_satisfied_by_publication(void **state)
{
        env_t *e = *state;
        rf_queue_stats_t s;
        json_t *j;

        add(e, "u-sat", "home", RF_RC_INCREMENTAL, 0, "s1", T0);
        add(e, "u-sat", "email", RF_RC_INCREMENTAL, 0, "s2", T0);
        /* a list generated before the reason does not satisfy it */
        publish(e, "u-sat", "home", "2026-11-22T09:00:00Z",
                "2099-01-01T00:00:00Z", "a,b");
        /* a newer one does */
        publish(e, "u-sat", "home", "2026-11-22T10:00:01Z",
                "2099-01-01T00:00:00Z", "a,b");
        j = take_ack(e, T0 + 5000);
        json_t *sf = json_object_get(j, "surfaces");
        assert_int_equal(json_array_size(sf), 1);
        assert_string_equal(json_string_value(json_array_get(sf, 0)), "email");
        json_decref(j);

        add(e, "u-sat2", "home", RF_RC_INCREMENTAL, 0, "s3", T0);
        publish(e, "u-sat2", "home", "2026-11-22T10:00:01Z",
                "2099-01-01T00:00:00Z", "a,b");
        /* nothing is sent for a subject whose fresh list arrived */
        assert_null(take_ack(e, T0 + 60000));
        rf_queue_stats(e->q, &s);
        assert_int_equal(s.count, 0);

        /* a request for every surface ("") is not satisfied by one
         * surface's fresh list */
        add(e, "u-sat3", "", RF_RC_INCREMENTAL, 0, "s4", T0);
        publish(e, "u-sat3", "home", "2026-11-22T10:00:01Z",
                "2099-01-01T00:00:00Z", "a,b");
        j = take_ack(e, T0 + 60000);
        assert_non_null(j);
        assert_string_equal(jstr(j, "subject_id"), "u-sat3");
        assert_int_equal(json_array_size(json_object_get(j, "surfaces")), 0);
        json_decref(j);
}

static void ban(env_t *e, const char *item, const char *id)
{
        char js[256];
        rf_rejection_t rej;
        rf_event_t ev;

        snprintf(js, sizeof(js),
                 "{\"event_id\":\"%s\",\"type\":\"item_banned\",\"item_id\":"
                 "\"%s\",\"occurred_at\":\"2026-11-22T09:59:00Z\"}",
                 id, item);
        assert_int_equal(rf_event_parse(RF_TOPIC_ITEM_BANS, NULL, 0, js,
                                        strlen(js), NULL, &ev, &rej),
                         0);
        assert_int_equal(rf_ban_apply(&e->ctx, &ev), 0);
        rf_event_clear(&ev);
        commit(e);
}

static uint64_t list_reads(void)
{
        return atomic_load(&rf_metrics.recompute_list_reads);
}

/* An item job's hook for list \p k, in its own batch unless \p batch. */
static void invalidated(env_t *e, const rf_buf_t *k, const char *event_id,
                        const char *item, rf_entry_state_t entry, int batch)
{
        rf_queue_list_invalidated(&e->ctx, k->data, k->len, NULL,
                                  RF_EV_ITEM_BANNED, event_id, "item", item,
                                  entry);
        if (!batch)
                commit(e);
}

static void test_invalidated_hook_min_valid(void **state)
{
        env_t *e = *state;
        rf_buf_t k = { 0 };
        json_t *j;

        set(e, "surface.home.min_valid", "3");
        publish(e, "u-mv", "home", "2026-11-22T08:00:00Z",
                "2099-01-01T00:00:00Z", "m1,m2,m3,m4");
        rf_key_list(&k, "u-mv", "home", "");
        /* an unban removes nothing: no recompute */
        rf_queue_list_invalidated(&e->ctx, k.data, k.len, NULL,
                                  RF_EV_ITEM_UNBANNED, "ub", "item", "m1",
                                  RF_ENTRY_UNKNOWN);
        commit(e);
        assert_null(take_ack(e, T0 + 60000));
        /* one ban: 3 valid left, not below min_valid: normal */
        ban(e, "m1", "b1");
        invalidated(e, &k, "b1", "m1", RF_ENTRY_UNKNOWN, 0);
        assert_null(take_ack(e, T0 + 10));
        /* a second: 2 valid < 3: urgent, leaves at once */
        ban(e, "m2", "b2");
        invalidated(e, &k, "b2", "m2", RF_ENTRY_UNKNOWN, 0);
        j = take_ack(e, T0 + 10);
        assert_non_null(j);
        assert_string_equal(jstr(j, "priority"), "urgent");
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 2);
        json_t *r0 = json_array_get(json_object_get(j, "reasons"), 0);
        assert_string_equal(jstr(r0, "type"), "item_banned");
        assert_string_equal(jstr(json_object_get(r0, "entity"), "id"), "m1");
        json_decref(j);
        rf_buf_free(&k);
}

/* The hook remembers a list's valid entries: an item out answers from the
 * bound while it stays at or above min_valid, and the list is read again
 * (and found urgent) only past it. */
static void test_invalidated_hook_remembers_valid(void **state)
{
        env_t *e = *state;
        rf_buf_t k = { 0 };
        json_t *j;

        set(e, "surface.home.min_valid", "3");
        publish(e, "u-vm", "home", "2026-11-22T08:00:00Z",
                "2099-01-01T00:00:00Z", "m1,m2,m3,m4,m5,m6");
        rf_key_list(&k, "u-vm", "home", "");
        uint64_t r0 = list_reads();

        /* the item is not filtered there: no read, no request */
        invalidated(e, &k, "b0", "m1", RF_ENTRY_KEPT, 0);
        assert_int_equal(list_reads(), r0);
        assert_null(take_ack(e, T0 + 60000));
        /* first: read, 5 valid */
        ban(e, "m1", "b1");
        invalidated(e, &k, "b1", "m1", RF_ENTRY_FILTERED, 0);
        assert_int_equal(list_reads(), r0 + 1);
        /* 5 > 3: 4, and 4 > 3: 3 (the list holds m4..m6), from memory */
        ban(e, "m2", "b2");
        invalidated(e, &k, "b2", "m2", RF_ENTRY_FILTERED, 0);
        ban(e, "m3", "b3");
        invalidated(e, &k, "b3", "m3", RF_ENTRY_FILTERED, 0);
        assert_int_equal(list_reads(), r0 + 1);
        assert_null(take_ack(e, T0 + 10)); /* 3 valid: not urgent */
        /* a fourth could go below: read, 2 valid < 3: urgent */
        ban(e, "m4", "b4");
        invalidated(e, &k, "b4", "m4", RF_ENTRY_FILTERED, 0);
        assert_int_equal(list_reads(), r0 + 2);
        j = take_ack(e, T0 + 10);
        assert_non_null(j);
        assert_string_equal(jstr(j, "priority"), "urgent");
        assert_int_equal(json_array_size(json_object_get(j, "reasons")), 4);
        json_decref(j);

        /* A new list is forgotten: a long one, counted; a short one in
         * its place must be read, not answered from the long one's count. */
        publish(e, "u-vm", "home", "2026-11-22T09:00:00Z",
                "2099-01-01T00:00:00Z", "n1,n2,n3,n4,n5,n6,n7,n8,n9");
        ban(e, "n9", "b9");
        invalidated(e, &k, "b9", "n9", RF_ENTRY_FILTERED, 0);
        assert_null(take_ack(e, T0 + 10));
        publish(e, "u-vm", "home", "2026-11-22T09:30:00Z",
                "2099-01-01T00:00:00Z", "n1,n2,n3");
        ban(e, "n1", "bn1");
        uint64_t r1 = list_reads();
        invalidated(e, &k, "bn1", "n1", RF_ENTRY_FILTERED, 0);
        assert_int_equal(list_reads(), r1 + 1);
        j = take_ack(e, T0 + 10);
        assert_non_null(j);
        assert_string_equal(jstr(j, "priority"), "urgent");
        json_decref(j);

        /* In one batch, a read before the commit sees the old list (9
         * entries): what it counted is forgotten when the batch commits. */
        publish(e, "u-vm", "home", "2026-11-22T09:40:00Z",
                "2099-01-01T00:00:00Z", "p1,p2,p3,p4,p5,p6,p7,p8,p9");
        ban(e, "p9", "bp9");
        invalidated(e, &k, "bp9", "p9", RF_ENTRY_FILTERED, 0);
        assert_null(take_ack(e, T0 + 10));
        publish_in_batch(e, "u-vm", "home", "2026-11-22T09:50:00Z",
                         "2099-01-01T00:00:00Z", "q1,q2,q3");
        invalidated(e, &k, "bp9", "p9", RF_ENTRY_FILTERED, 1);
        commit(e);
        ban(e, "q1", "bq1");
        r1 = list_reads();
        invalidated(e, &k, "bq1", "q1", RF_ENTRY_FILTERED, 0);
        assert_int_equal(list_reads(), r1 + 1);
        j = take_ack(e, T0 + 10);
        assert_non_null(j);
        assert_string_equal(jstr(j, "priority"), "urgent");
        json_decref(j);
        rf_buf_free(&k);
}

/* Expires campaign \p id and runs the hook for list \p k as its fan-out
 * does (the campaign known expired). */
static void expire(env_t *e, const rf_buf_t *k, const char *id,
                   const char *event_id)
{
        char js[256];
        rf_rejection_t rej;
        rf_event_t ev;

        snprintf(js, sizeof(js),
                 "{\"event_id\":\"%s\",\"type\":\"campaign_expired\","
                 "\"campaign_id\":\"%s\","
                 "\"occurred_at\":\"2026-11-22T09:59:00Z\"}",
                 event_id, id);
        assert_int_equal(rf_event_parse(RF_TOPIC_CAMPAIGNS, NULL, 0, js,
                                        strlen(js), NULL, &ev, &rej),
                         0);
        assert_int_equal(rf_campaign_apply(&e->ctx, &ev), 0);
        rf_event_clear(&ev);
        rf_queue_list_invalidated(&e->ctx, k->data, k->len, NULL,
                                  RF_EV_CAMPAIGN_EXPIRED, event_id, "campaign",
                                  id, RF_ENTRY_CAMPAIGN);
        commit(e);
}

/* A campaign's expiry takes out at most the list's entries with a
 * campaign: the bound answers while it stays at or above min_valid. */
static void test_invalidated_hook_campaigns(void **state)
{
        env_t *e = *state;
        rf_buf_t k = { 0 }, k2 = { 0 };
        json_t *j;

        set(e, "surface.home.min_valid", "3");
        publish(e, "u-ca", "home", "2026-11-22T08:00:00Z",
                "2099-01-01T00:00:00Z", "c1:k1,c2:k1,c3,c4,c5,c6,c7,c8");
        rf_key_list(&k, "u-ca", "home", "");
        ban(e, "c8", "bc8");
        invalidated(e, &k, "bc8", "c8", RF_ENTRY_FILTERED, 0); /* read: 7 */
        uint64_t r0 = list_reads();
        expire(e, &k, "k1", "ek1"); /* 7 - 2 campaign entries = 5 */
        ban(e, "c7", "bc7");
        invalidated(e, &k, "bc7", "c7", RF_ENTRY_FILTERED, 0); /* 4 */
        ban(e, "c6", "bc6");
        invalidated(e, &k, "bc6", "c6", RF_ENTRY_FILTERED, 0); /* 3 */
        assert_int_equal(list_reads(), r0);
        assert_null(take_ack(e, T0 + 10)); /* c3, c4, c5: not urgent */
        ban(e, "c5", "bc5");
        invalidated(e, &k, "bc5", "c5", RF_ENTRY_FILTERED, 0);
        assert_int_equal(list_reads(), r0 + 1);
        j = take_ack(e, T0 + 10);
        assert_non_null(j);
        assert_string_equal(jstr(j, "priority"), "urgent");
        json_decref(j);

        /* 4 valid, 3 with a campaign: an expiry could leave 1, so the list
         * is read, and it does */
        publish(e, "u-cb", "home", "2026-11-22T08:00:00Z",
                "2099-01-01T00:00:00Z", "d1:k9,d2:k9,d3:k9,d4,d5");
        rf_key_list(&k2, "u-cb", "home", "");
        ban(e, "d5", "bd5");
        invalidated(e, &k2, "bd5", "d5", RF_ENTRY_FILTERED, 0);
        assert_null(take_ack(e, T0 + 10));
        r0 = list_reads();
        expire(e, &k2, "k9", "ek9");
        assert_int_equal(list_reads(), r0 + 1);
        j = take_ack(e, T0 + 10);
        assert_non_null(j);
        assert_string_equal(jstr(j, "priority"), "urgent");
        json_decref(j);
        rf_buf_free(&k);
        rf_buf_free(&k2);
}

/* Valid entries are counted as reads serve them: a duplicate once. */
static void test_invalidated_hook_counts_distinct(void **state)
{
        env_t *e = *state;
        rf_buf_t k = { 0 };
        json_t *j;

        set(e, "surface.home.min_valid", "3");
        publish(e, "u-dup", "home", "2026-11-22T08:00:00Z",
                "2099-01-01T00:00:00Z", "d1,d1,d2,d3");
        rf_key_list(&k, "u-dup", "home", "");
        ban(e, "d3", "bd3");
        invalidated(e, &k, "bd3", "d3", RF_ENTRY_UNKNOWN, 0);
        j = take_ack(e, T0 + 10); /* d1, d2: 2 < 3 */
        assert_non_null(j);
        assert_string_equal(jstr(j, "priority"), "urgent");
        json_decref(j);

        /* The first copy filtered (its campaign expired): reads serve no
         * later copy either, so x1 does not count. */
        rf_buf_reset(&k);
        publish(e, "u-dup2", "home", "2026-11-22T08:00:00Z",
                "2099-01-01T00:00:00Z", "x1:kx,x2,x3,x1");
        rf_key_list(&k, "u-dup2", "home", "");
        expire(e, &k, "kx", "ekx");
        j = take_ack(e, T0 + 10); /* x2, x3: 2 < 3 */
        assert_non_null(j);
        assert_string_equal(jstr(j, "priority"), "urgent");
        json_decref(j);
        rf_buf_free(&k);
}

/* ---- refresh runs ---------------------------------------------------------*/

static void test_full_refresh_resumes(void **state)
{
        env_t *e = *state;
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        json_t *seen = json_object();
        int done = 0, sent = 0, n;
        char s[32];

        for (int i = 0; i < 50; i++) {
                snprintf(s, sizeof(s), "f-%02d", i);
                publish(e, s, "home", "2026-11-22T01:00:00Z",
                        "2099-01-01T00:00:00Z", "a");
                if (i % 10 == 0)
                        publish(e, s, "email", "2026-11-22T01:00:00Z",
                                "2099-01-01T00:00:00Z", "a");
        }
        /* three steps of 10 subjects, then a crash with requests in
         * flight and pending */
        for (int step = 0; step < 3; step++) {
                n = rf_refresh_step(&src, e->q, e->ctx.txn, "run-A", RF_RC_FULL,
                                    0, T0, 10, &done);
                assert_int_equal(n, 10);
                commit(e);
        }
        for (int i = 0; i < 5; i++) {
                json_t *j = take_ack(e, T0 + i * 1000);
                if (j) {
                        json_object_set_new(seen, jstr(j, "request_id"),
                                            json_true());
                        sent++;
                        json_decref(j);
                }
        }
        rf_queue_req_t req;
        assert_int_equal(rf_queue_take(e->q, T0 + 9000, &req), 1); /* lost */
        rf_queue_req_clear(&req);
        env_close(e);
        env_open(e);
        src.st = e->st;
        while (!done) {
                n = rf_refresh_step(&src, e->q, e->ctx.txn, "run-A", RF_RC_FULL,
                                    0, T0, 10, &done);
                assert_true(n >= 0);
                commit(e);
        }
        for (int64_t t = T0 + 10000; t < T0 + 100000; t += 500) {
                json_t *j;
                while ((j = take_ack(e, t))) {
                        assert_string_equal(jstr(j, "mode"), "full");
                        assert_string_equal(jstr(j, "run_id"), "run-A");
                        char rid[33];
                        assert_string_equal(
                            jstr(j, "request_id"),
                            rf_queue_request_id("run-A", jstr(j, "subject_id"),
                                                rid));
                        if (json_object_get(seen, jstr(j, "request_id")))
                                fail_msg("%s sent twice",
                                         jstr(j, "subject_id"));
                        json_object_set_new(seen, jstr(j, "request_id"),
                                            json_true());
                        sent++;
                        json_decref(j);
                }
        }
        /* every subject once: the one in flight at the crash was sent
         * again with its id (counted once above) */
        assert_int_equal(json_object_size(seen), 50);
        assert_int_equal(sent, 50);
        /* the same run id again sends nothing */
        n = rf_refresh_step(&src, e->q, e->ctx.txn, "run-A", RF_RC_FULL, 0, T0,
                            100, &done);
        assert_int_equal(n, 0);
        assert_true(done);
        assert_null(take_ack(e, T0 + 200000));
        json_decref(seen);
}

/* Publishes a list on "home" for subjects <prefix>-00 .. <prefix>-<n-1>. */
static void publish_subjects(env_t *e, const char *prefix, int n)
{
        char s[32];

        for (int i = 0; i < n; i++) {
                snprintf(s, sizeof(s), "%s-%02d", prefix, i);
                publish(e, s, "home", "2026-11-22T01:00:00Z",
                        "2099-01-01T00:00:00Z", "a");
        }
}

/* Asserts run \p id's record: \p done, and whether it holds a cursor. */
static void expect_run(env_t *e, const char *id, int done, int cursor)
{
        rf_refresh_run_t run;

        assert_int_equal(rf_refresh_run_get(e->st, NULL, id, &run), 0);
        assert_int_equal(run.done, done);
        assert_int_equal(run.cursor.len > 0, cursor);
        rf_refresh_run_clear(&run);
}

/* A scheduled run that did not finish in its period is never stepped
 * again: the next one of its schedule closes it, and its cursor (a
 * subject id) goes with it. Runs asked for by hand are left alone. */
static void test_abandoned_scheduled_run_closed(void **state)
{
        env_t *e = *state;
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        int done = 0;

        publish_subjects(e, "ab", 30);
        const char *ids[] = { "full-2026-11-21", "by-hand", "active-x" };
        for (int i = 0; i < 3; i++) {
                assert_int_equal(rf_refresh_step(&src, e->q, e->ctx.txn, ids[i],
                                                 RF_RC_FULL, 0, T0, 10, &done),
                                 10);
                commit(e);
                assert_false(done);
                expect_run(e, ids[i], 0, 1);
        }
        assert_true(rf_refresh_step(&src, e->q, e->ctx.txn, "full-2026-11-22",
                                    RF_RC_FULL, 0, T0, 10, &done) >= 0);
        commit(e);
        expect_run(e, "full-2026-11-21", 1, 0);
        expect_run(e, "by-hand", 0, 1);
        expect_run(e, "active-x", 0, 1); /* another schedule's */
}

/* One committed step of full run \p id. @returns what rf_refresh_step
 * returned. */
static int full_step(env_t *e, const char *id, int64_t now, size_t budget,
                     int *done)
{
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        int n = rf_refresh_step(&src, e->q, e->ctx.txn, id, RF_RC_FULL, 0, now,
                                budget, done);

        commit(e);
        return n;
}

/* Asserts that run \p id ended (finished or closed) keeping no subject id
 * and not marked wrapped. */
static void expect_ended(env_t *e, const char *id)
{
        rf_refresh_run_t run;

        assert_int_equal(rf_refresh_run_get(e->st, NULL, id, &run), 0);
        assert_true(run.done);
        assert_false(run.wrapped);
        assert_int_equal(run.cursor.len + run.start.len, 0);
        rf_refresh_run_clear(&run);
}

/* Asserts that run \p id's cursor is subject \p at ("" for none). */
static void expect_cursor(env_t *e, const char *id, const char *at)
{
        rf_refresh_run_t run;

        assert_int_equal(rf_refresh_run_get(e->st, NULL, id, &run), 0);
        assert_int_equal(run.cursor.len, strlen(at));
        assert_memory_equal(run.cursor.data, at, strlen(at));
        rf_refresh_run_clear(&run);
}

/* A day too short for the whole population: the next day's run begins
 * where the last one stopped and wraps around, so the subjects at the end
 * are not starved by those at the start. A run that did finish leaves the
 * next one to begin at the start. */
static void test_next_run_resumes_where_abandoned(void **state)
{
        env_t *e = *state;
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        rf_refresh_run_t run;
        int done = 0, steps = 0, n;

        publish_subjects(e, "w", 30);
        assert_int_equal(full_step(e, "full-2026-11-21", T0, 12, &done), 12);
        expect_cursor(e, "full-2026-11-21", "w-11");
        /* the next day: w-12 .. w-29, then w-00 .. w-11, each once */
        const char *after[] = { "w-21", "", "w-09" };
        int queued = 0;
        while (!done) {
                n = rf_refresh_step(&src, e->q, e->ctx.txn, "full-2026-11-22",
                                    RF_RC_FULL, 0, T0 + DAY, 10, &done);
                assert_true(n >= 0);
                queued += n;
                commit(e);
                assert_true(steps < 4);
                if (!done)
                        expect_cursor(e, "full-2026-11-22", after[steps]);
                steps++;
        }
        assert_int_equal(queued, 30);
        assert_int_equal(steps, 4);
        expect_ended(e, "full-2026-11-21");
        expect_ended(e, "full-2026-11-22");
        assert_int_equal(
            rf_refresh_run_get(e->st, NULL, "full-2026-11-22", &run), 0);
        assert_int_equal(run.subjects, 30);
        rf_refresh_run_clear(&run);
        /* it finished: the day after begins at the start */
        assert_int_equal(
            full_step(e, "full-2026-11-23", T0 + 2 * DAY, 5, &done), 5);
        expect_cursor(e, "full-2026-11-23", "w-04");
}

static void active(env_t *e, const char *subject, int64_t at)
{
        rf_activity_t a = { subject, "", at, NULL };
        assert_int_equal(rf_activity_apply(&e->ctx, &a), 0);
        commit(e);
}

/* A run record written before runs could resume (version 1) reads as a
 * run that began at the start. */
static void test_run_record_version_1(void **state)
{
        env_t *e = *state;
        rf_buf_t v = { 0 };
        rf_refresh_run_t run;

        rf_buf_append(&v, (char[]){ 1, RF_RC_FULL, 0 }, 3);
        rf_buf_put_be64(&v, (uint64_t)T0);
        rf_buf_put_be64(&v, 0);
        rf_buf_put_be64(&v, 0);
        rf_buf_put_varint(&v, 7);
        rf_buf_put_varint(&v, 4);
        rf_buf_append(&v, "w-03", 4);
        rf_txn_put(e->ctx.txn, RF_CF_ACTIVITY, "Rfull-old", 9, v.data, v.len);
        commit(e);
        assert_int_equal(rf_refresh_run_get(e->st, NULL, "full-old", &run), 0);
        assert_int_equal(run.subjects, 7);
        assert_int_equal(run.cursor.len, 4);
        assert_int_equal(run.start.len, 0);
        assert_false(run.wrapped);
        rf_refresh_run_clear(&run);

        /* the next run goes on after its cursor, and its record still
         * says version 1 (the binary before reads it): what resumes it
         * follows the cursor */
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        int done = 0;
        publish_subjects(e, "w", 10);
        assert_int_equal(rf_refresh_step(&src, e->q, e->ctx.txn, "full-new",
                                         RF_RC_FULL, 0, T0, 2, &done),
                         2);
        commit(e);
        expect_cursor(e, "full-new", "w-05");
        rf_buf_reset(&v);
        assert_int_equal(
            rf_store_get(e->st, RF_CF_ACTIVITY, "Rfull-new", 9, &v), 0);
        assert_int_equal(v.data[0], 1);
        assert_non_null(memmem(v.data, v.len, "w-05\004w-03", 9));
        rf_buf_free(&v);
}

/* A run closed after it had wrapped: the next one goes on after the
 * wrapped run's cursor. The closed one keeps no subject id, nor says it
 * wrapped. */
static void test_resume_after_a_wrapped_run(void **state)
{
        env_t *e = *state;
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        rf_refresh_run_t run;
        int done = 0;

        publish_subjects(e, "w", 30);
        assert_int_equal(full_step(e, "full-2026-11-21", T0, 12, &done), 12);
        /* w-12 .. w-29; the end; w-00 .. w-04 */
        const size_t budgets[] = { 18, 5, 5 };
        for (size_t i = 0; i < RF_ARRAY_SIZE(budgets); i++) {
                assert_true(rf_refresh_step(&src, e->q, e->ctx.txn,
                                            "full-2026-11-22", RF_RC_FULL, 0,
                                            T0 + DAY, budgets[i], &done) >= 0);
                commit(e);
                assert_false(done);
        }
        expect_cursor(e, "full-2026-11-22", "w-04");
        assert_int_equal(
            rf_refresh_run_get(e->st, NULL, "full-2026-11-22", &run), 0);
        assert_true(run.wrapped);
        rf_refresh_run_clear(&run);
        assert_int_equal(
            full_step(e, "full-2026-11-23", T0 + 2 * DAY, 3, &done), 3);
        expect_cursor(e, "full-2026-11-23", "w-07");
        expect_ended(e, "full-2026-11-22");
}

/* Mode active wraps as mode full does, over the activity keys. */
static void test_next_active_run_resumes(void **state)
{
        env_t *e = *state;
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        int done = 0;
        char s[32];

        for (int i = 0; i < 20; i++) {
                snprintf(s, sizeof(s), "a-%02d", i);
                active(e, s, T0);
        }
        assert_true(rf_refresh_step(&src, e->q, e->ctx.txn, "active-1",
                                    RF_RC_ACTIVE, DAY, T0, 8, &done) >= 0);
        commit(e);
        expect_cursor(e, "active-1", "Aa-07");
        /* a-08 .. a-15; a-16 .. a-19, the end; a-00 .. a-07; a-08: done */
        const char *after[] = { "Aa-15", "", "Aa-07", "" };
        for (int step = 0; step < 4; step++) {
                assert_true(rf_refresh_step(&src, e->q, e->ctx.txn, "active-2",
                                            RF_RC_ACTIVE, DAY, T0, 8,
                                            &done) >= 0);
                commit(e);
                expect_cursor(e, "active-2", done ? "" : after[step]);
                assert_int_equal(done, step == 3);
        }
        expect_run(e, "active-1", 1, 0);
}

/* Runs active refresh \p run_id to its end in steps of \p budget subjects
 * and takes what it sent. @returns subject_id -> its first reason's type
 * (json_decref it). */
static json_t *active_run(env_t *e, const char *run_id, int64_t within,
                          int64_t now, size_t budget)
{
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        json_t *got = json_object();
        int done = 0;

        while (!done) {
                assert_true(rf_refresh_step(&src, e->q, e->ctx.txn, run_id,
                                            RF_RC_ACTIVE, within, now, budget,
                                            &done) >= 0);
                commit(e);
        }
        for (json_t *j; (j = take_ack(e, now + 60000));) {
                assert_string_equal(jstr(j, "mode"), "active");
                json_object_set_new(
                    got, jstr(j, "subject_id"),
                    json_string(
                        jstr(json_array_get(json_object_get(j, "reasons"), 0),
                             "type")));
                json_decref(j);
        }
        return got;
}

static void test_incremental_picks(void **state)
{
        env_t *e = *state;
        const int64_t H = 3600000, now = T0;
        json_t *got;

        set(e, "recompute.expiry_horizon", "1h");
        set(e, "recompute.max_age", "24h");
        set(e, "recompute.max_invalid_pct", "20");
        /* a: expired; b: expiring in 30m; c: fresh; d: expired but
         * inactive; e: 2 of 5 entries banned (40%); f: 2 days old;
         * g: active, no list; h: 1 of 5 banned (20%, not more) */
        publish(e, "i-a", "home", "2026-11-22T08:00:00Z",
                "2026-11-22T09:00:00Z", "p1");
        publish(e, "i-b", "home", "2026-11-22T08:00:00Z",
                "2026-11-22T10:30:00Z", "p1");
        publish(e, "i-c", "home", "2026-11-22T08:00:00Z",
                "2026-11-23T10:00:00Z", "p1");
        publish(e, "i-d", "home", "2026-11-22T08:00:00Z",
                "2026-11-22T09:00:00Z", "p1");
        publish(e, "i-e", "home", "2026-11-22T08:00:00Z",
                "2026-11-23T10:00:00Z", "q1,q2,p1,p2,p3");
        publish(e, "i-f", "home", "2026-11-20T08:00:00Z",
                "2026-11-29T10:00:00Z", "p1");
        publish(e, "i-h", "home", "2026-11-22T08:00:00Z",
                "2026-11-23T10:00:00Z", "q3,p1,p2,p3,p4");
        ban(e, "q1", "bq1");
        ban(e, "q2", "bq2");
        ban(e, "q3", "bq3");
        /* the bans queued event-driven requests; send them first */
        for (json_t *j; (j = take_ack(e, now + 5000));)
                json_decref(j);
        active(e, "i-a", now - 10 * 60000);
        active(e, "i-b", now - 59 * 60000);
        active(e, "i-c", now - 1000);
        active(e, "i-d", now - 3 * H);
        active(e, "i-e", now - 1000);
        active(e, "i-f", now - 1000);
        active(e, "i-g", now - 1000);
        active(e, "i-h", now - 1000);
        got = active_run(e, "act-1", H, now, 3);
        assert_int_equal(json_object_size(got), 4);
        assert_string_equal(jstr(got, "i-a"), "list_expired");
        assert_string_equal(jstr(got, "i-b"), "list_expiring");
        assert_string_equal(jstr(got, "i-e"), "list_degraded");
        assert_string_equal(jstr(got, "i-f"), "list_too_old");
        json_decref(got);
}

/* Stores \p items as run \p run's version of (\p subject, home), and makes
 * the run active on home, generated at \p run_gen (ms). */
static void put_version(env_t *e, const char *run, int64_t run_gen,
                        const char *subject, const char *exp, const char *items)
{
        rf_buf_t js = { 0 }, k = { 0 }, v = { 0 };
        rf_rejection_t rej;
        rf_list_t *l;
        char err[256];

        rf_buf_printf(&js,
                      "{\"subject_id\":\"%s\",\"surface\":\"home\","
                      "\"list_id\":\"V-%s\",\"run_id\":\"%s\","
                      "\"generated_at\":\"2026-11-22T01:00:00Z\","
                      "\"expires_at\":\"%s\",\"model_version\":\"m\","
                      "\"items\":[%s]}",
                      subject, subject, run, exp, items);
        assert_int_equal(
            rf_list_from_json(NULL, 0, js.data, js.len, NULL, &l, &rej), 0);
        rf_buf_append(&k, run, strlen(run) + 1);
        rf_key_list(&k, subject, "home", "");
        rf_list_encode(l, &v);
        rf_txn_put(e->ctx.txn, RF_CF_VERSIONS, k.data, k.len, v.data, v.len);
        rf_buf_reset(&v);
        rf_buf_put_str(&v, run);
        rf_buf_put_be64(&v, (uint64_t)run_gen);
        rf_txn_put(e->ctx.txn, RF_CF_RUNS, "Ahome", 5, v.data, v.len);
        assert_int_equal(rf_txn_commit(e->ctx.txn, err, sizeof(err)), 0);
        rf_list_destroy(l);
        rf_buf_free(&js);
        rf_buf_free(&k);
        rf_buf_free(&v);
}

/* The active refresh judges the version reads serve: a batch-run list
 * alone; the newer of a run's version and an incremental list of one key
 * (the run's generated_at against the list's). */
static void test_incremental_judges_served_version(void **state)
{
        env_t *e = *state;
        const int64_t H = 3600000, now = T0; /* 2026-11-22T10:00:00Z */
        const char *one = "{\"item_id\":\"p1\",\"score\":1}";
        json_t *got;

        set(e, "recompute.expiry_horizon", "1h");
        set(e, "recompute.max_age", "24h");
        /* v-a: run version only, expiring in 30m; v-b: the version expires
         * in 30m but a newer incremental list serves; v-c: the incremental
         * list expires in 30m but the newer run's version serves. */
        put_version(e, "r1", now - 8 * H, "v-a", "2026-11-22T10:30:00Z", one);
        put_version(e, "r1", now - 8 * H, "v-b", "2026-11-22T10:30:00Z", one);
        put_version(e, "r1", now - 8 * H, "v-c", "2026-11-23T10:00:00Z", one);
        publish(e, "v-b", "home", "2026-11-22T08:00:00Z",
                "2026-11-23T10:00:00Z", "p1");
        publish(e, "v-c", "home", "2026-11-22T01:30:00Z",
                "2026-11-22T10:30:00Z", "p1");
        active(e, "v-a", now - 1000);
        active(e, "v-b", now - 1000);
        active(e, "v-c", now - 1000);
        got = active_run(e, "act-v", H, now, 10);
        assert_int_equal(json_object_size(got), 1);
        assert_string_equal(jstr(got, "v-a"), "list_expiring");
        json_decref(got);
}

/* A corrupt active-run pointer is logged and skipped: the subject's other
 * lists are still judged (it failed every step before, and leaked them). */
static void test_refresh_skips_corrupt_run_pointer(void **state)
{
        env_t *e = *state;
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        int done = 0;
        char err[256];

        publish(e, "i-z", "home", "2026-11-22T08:00:00Z",
                "2026-11-22T09:00:00Z", "p1");
        active(e, "i-z", T0 - 1000);
        rf_txn_put(e->ctx.txn, RF_CF_RUNS, "Ahome", 5, "\x05x", 2);
        assert_int_equal(rf_txn_commit(e->ctx.txn, err, sizeof(err)), 0);
        assert_int_equal(rf_refresh_step(&src, e->q, e->ctx.txn, "act-z",
                                         RF_RC_ACTIVE, 3600000, T0, 10, &done),
                         1);
        commit(e);
        json_t *j = take_ack(e, T0 + 60000);
        assert_non_null(j);
        assert_string_equal(jstr(j, "subject_id"), "i-z");
        json_decref(j);
}

/* Applies and commits \p user's consent event \p type (consent_revoked or
 * consent_granted) of \p scope, id \p event_id, at \p at. */
static void consent(env_t *e, const char *event_id, const char *type,
                    const char *user, const char *scope, const char *at)
{
        char js[256];
        rf_rejection_t rej;
        rf_event_t ev;

        snprintf(js, sizeof(js),
                 "{\"event_id\":\"%s\",\"type\":\"%s\",\"user_id\":\"%s\","
                 "\"scope\":\"%s\",\"occurred_at\":\"%s\"}",
                 event_id, type, user, scope, at);
        assert_int_equal(rf_event_parse(RF_TOPIC_CONSENT, NULL, 0, js,
                                        strlen(js), NULL, &ev, &rej),
                         0);
        assert_int_equal(rf_consent_apply(&e->ctx, &ev), 0);
        rf_event_clear(&ev);
        commit(e);
}

static void test_consent_purge(void **state)
{
        env_t *e = *state;
        int64_t at;
        json_t *j;

        add(e, "u-priv-42", "home", RF_RC_INCREMENTAL, 0, "p1", T0);
        active(e, "u-priv-42", T0);
        consent(e, "cr1", "consent_revoked", "u-priv-42", "personalization",
                "2026-11-22T10:00:00Z");
        assert_null(take_ack(e, T0 + 60000));
        assert_int_equal(rf_activity_get(e->st, NULL, "u-priv-42", &at),
                         RF_ENOENT);
        /* nothing personalised is queued while revoked */
        rf_queue_add_t a = { .subject_id = "u-priv-42", .surface = "home" };
        assert_int_equal(rf_queue_add(e->q, e->ctx.txn, &a, T0), RF_EBLOCKED);
        /* granted again: a recompute is asked */
        consent(e, "cg1", "consent_granted", "u-priv-42", "personalization",
                "2026-11-22T11:00:00Z");
        j = take_ack(e, T0 + 60000);
        assert_non_null(j);
        assert_string_equal(
            jstr(json_array_get(json_object_get(j, "reasons"), 0), "type"),
            "consent_granted");
        json_decref(j);
}

/* \p user revokes personalization (a purge). */
static void revoke_personalization(env_t *e, const char *user)
{
        consent(e, user, "consent_revoked", user, "personalization",
                "2026-11-22T10:00:00Z");
}

/* A consent purge leaves no unfinished run holding the subject's id as
 * its start or cursor: each moves to the subject walked just before it,
 * and the run goes on over the same subjects, the purged ones left out. */
static void test_purge_moves_run_positions(void **state)
{
        env_t *e = *state;
        const char *ids[] = { "Rfull-2026-11-21", "Rfull-2026-11-22" };
        rf_refresh_run_t run;
        rf_buf_t v = { 0 };
        int done = 0, queued = 0;

        publish_subjects(e, "w", 30);
        assert_int_equal(full_step(e, "full-2026-11-21", T0, 12, &done), 12);
        assert_int_equal(full_step(e, "full-2026-11-22", T0 + DAY, 5, &done),
                         5);
        expect_cursor(e, "full-2026-11-22", "w-16"); /* began after w-11 */
        revoke_personalization(e, "w-11");
        revoke_personalization(e, "w-16");
        expect_cursor(e, "full-2026-11-22", "w-15");
        assert_int_equal(
            rf_refresh_run_get(e->st, NULL, "full-2026-11-22", &run), 0);
        assert_int_equal(run.start.len, 4);
        assert_memory_equal(run.start.data, "w-10", 4);
        rf_refresh_run_clear(&run);
        for (size_t i = 0; i < RF_ARRAY_SIZE(ids); i++) {
                assert_int_equal(rf_store_get(e->st, RF_CF_ACTIVITY, ids[i],
                                              strlen(ids[i]), &v),
                                 0);
                assert_null(memmem(v.data, v.len, "w-11", 4));
                assert_null(memmem(v.data, v.len, "w-16", 4));
        }
        rf_buf_free(&v);
        /* w-17 .. w-29, then w-00 .. w-10 */
        while (!done)
                queued += full_step(e, "full-2026-11-22", T0 + DAY, 10, &done);
        assert_int_equal(queued, 24);

        /* mode active: positions are activity keys */
        rf_refresh_src_t src = { e->st, &e->conf, 1 };
        char s[16];
        for (int i = 0; i < 10; i++) {
                snprintf(s, sizeof(s), "a-%02d", i);
                active(e, s, T0);
        }
        for (int i = 0; i < 2; i++) {
                assert_true(rf_refresh_step(&src, e->q, e->ctx.txn,
                                            i ? "active-2" : "active-1",
                                            RF_RC_ACTIVE, DAY, T0, 4 - 2 * i,
                                            &done) >= 0);
                commit(e);
        }
        expect_cursor(e, "active-2", "Aa-05"); /* began after a-03 */
        revoke_personalization(e, "a-03");
        revoke_personalization(e, "a-05");
        expect_cursor(e, "active-2", "Aa-04");
        assert_int_equal(rf_refresh_run_get(e->st, NULL, "active-2", &run), 0);
        assert_int_equal(run.start.len, 5);
        assert_memory_equal(run.start.data, "Aa-02", 5);
        rf_refresh_run_clear(&run);
}

/* A wrapped run whose start, the first subject, is purged has come round:
 * it is done, keeping no id. */
static void test_purge_of_a_wrapped_runs_start(void **state)
{
        env_t *e = *state;
        char err[256];
        int done = 0;

        publish_subjects(e, "w", 10);
        assert_int_equal(full_step(e, "full-2026-11-21", T0, 1, &done), 1);
        /* after w-00: w-01 .. w-09; the end */
        assert_int_equal(full_step(e, "full-2026-11-22", T0 + DAY, 9, &done),
                         9);
        assert_int_equal(full_step(e, "full-2026-11-22", T0 + DAY, 9, &done),
                         0);
        assert_false(done);
        expect_cursor(e, "full-2026-11-22", ""); /* wrapped */
        assert_int_equal(
            rf_refresh_forget_subject(e->st, e->ctx.txn, "w-00", T0 + DAY), 0);
        assert_int_equal(rf_txn_commit(e->ctx.txn, err, sizeof(err)), 0);
        expect_ended(e, "full-2026-11-22");
}

/* `recfresh refresh`'s queue lives in a store of its own, with no consent
 * in it: consent is read from the daemon's store as each request falls
 * due, and a request whose subject revoked since it was queued is dropped,
 * not sent. */
static void test_consent_read_at_send_time(void **state)
{
        env_t *e = *state;
        char dir[80], err[256];
        rf_queue_req_t req;
        rf_queue_stats_t qs;

        snprintf(dir, sizeof(dir), "%s.refresh", e->dir);
        rf_store_t *st2 =
            rf_store_open(dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        assert_non_null(st2);
        rf_queue_t *q2 = rf_queue_new(st2, &e->conf, T0);
        rf_queue_set_consent_store(q2, e->st);
        rf_txn_t *txn = rf_txn_new(st2);
        const char *subjects[] = { "u-cs-1", "u-cs-2" };
        for (int i = 0; i < 2; i++) {
                rf_queue_add_t a = { .subject_id = subjects[i],
                                     .surface = "home",
                                     .mode = RF_RC_FULL };
                assert_int_equal(rf_queue_add(q2, txn, &a, T0), 0);
        }
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_queue_committed(q2);

        consent(e, "cs1", "consent_revoked", "u-cs-1", "all",
                "2026-11-22T10:00:00Z");

        uint64_t dropped = RF_METRIC_GET(recompute_consent_dropped);
        int taken = 0;
        for (int64_t t = T0 + 60000; t < T0 + 600000; t += 10000) {
                while (rf_queue_take(q2, t, &req) == 1) {
                        assert_string_equal(req.subject_id.data, "u-cs-2");
                        assert_int_equal(rf_queue_settle(q2, req.token, 1, t),
                                         0);
                        rf_queue_req_clear(&req);
                        taken++;
                }
        }
        assert_int_equal(taken, 1);
        assert_int_equal(RF_METRIC_GET(recompute_consent_dropped), dropped + 1);
        rf_queue_counts(q2, &qs);
        assert_int_equal(qs.count, 0);
        rf_txn_destroy(txn);
        rf_queue_destroy(q2);
        rf_store_close(st2);
        snprintf(err, sizeof(err), "rm -rf '%s'", dir);
        assert_int_equal(system(err), 0);
}

static void test_bucket(void **state)
{
        rf_bucket_t b;
        int n = 0;
        (void)state;

        rf_bucket_init(&b, 5, 0);
        for (int64_t t = 0; t <= 2000; t++)
                n += rf_bucket_take(&b, t);
        assert_int_equal(n, 5 + 10); /* burst, then 5/s for 2 s */
        assert_true(rf_bucket_wait_ms(&b, 2000) > 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bucket),
                cmocka_unit_test_setup_teardown(
                    test_entry_cache_follows_batches, setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_entry_cache_survives_a_dropped_batch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_coalesce_100_events, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_request_text, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_urgent_bypass, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_takes_every_due_key_once,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_late_keys_taken_when_due,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_newer_entry_after_flight,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_takes_in_batches, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_tick_bounded, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_tick_unbounded, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_rate_limits, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_entry_deltas_merge, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                    test_whole_after_a_dropped_batch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_long_delta_chain, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                    test_entry_deltas_in_one_batch_uncached, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fold_for_an_older_binary,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_entry_merge_damaged, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_crash_resends_same_id,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_after_growth_new_id,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_reasons_while_in_flight,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_abandoned_scheduled_run_closed, setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_next_run_resumes_where_abandoned, setup, teardown),
                cmocka_unit_test_setup_teardown(test_next_active_run_resumes,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_run_record_version_1,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_resume_after_a_wrapped_run,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_purge_moves_run_positions,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_purge_of_a_wrapped_runs_start, setup, teardown),
                cmocka_unit_test_setup_teardown(test_consent_read_at_send_time,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_satisfied_by_publication,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_invalidated_hook_remembers_valid, setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_invalidated_hook_counts_distinct, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalidated_hook_campaigns,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalidated_hook_min_valid,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_full_refresh_resumes,
                                                setup, teardown),
                cmocka_unit_test_setup_teardown(test_incremental_picks, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                    test_refresh_skips_corrupt_run_pointer, setup, teardown),
                cmocka_unit_test_setup_teardown(
                    test_incremental_judges_served_version, setup, teardown),
                cmocka_unit_test_setup_teardown(test_consent_purge, setup,
                                                teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
