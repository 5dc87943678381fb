/*
 * recfresh - unit tests: fan-out steps (fanout.h) on a real store. A ban of
 * an item in 2,000 lists runs in steps bounded by entries or by time; every
 * list gets exactly one notice however the steps cut the job. A subject's
 * lists on three surfaces, met one after another and cut across steps,
 * make one recompute entry naming all three. A hide's job walks its user's
 * lists only, ahead of the entity-wide jobs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recfresh/apply.h"
#include "recfresh/fanout.h"
#include "recfresh/keys.h"
#include "recfresh/list.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/recompute.h"
#include "recfresh/topics.h"
#include "t_apply.h"

#define LISTS 2000

typedef struct env {
        char dir[32];
        rf_store_t *st;
        rf_outbox_t *ob;
        rf_fanout_t *fo;
        rf_queue_t *q; /* test_subject_entries only */
        rf_config_t conf;
        rf_apply_ctx_t ctx;
        int64_t offset;
} env_t;

static void take(env_t *e, int topic, const char *key, const char *json)
{
        t_take(&e->ctx, &e->offset, topic, key, json);
}

static void commit(env_t *e)
{
        t_commit(&e->ctx, e->ob);
        if (e->q)
                rf_queue_committed(e->q);
}

/* Runs and commits fan-out steps of \p budget entries until no job is
 * left. */
static void drain(env_t *e, size_t budget)
{
        size_t scanned;

        while (rf_fanout_pending(e->fo)) {
                assert_int_equal(rf_fanout_step(&e->ctx, budget, &scanned), 0);
                commit(e);
        }
}

/* A store with an outbox and fan-out (and a recompute queue if
 * \p with_queue). @returns NULL on failure. */
static env_t *env_open(int with_queue)
{
        env_t *e = calloc(1, sizeof(*e));
        char err[256];

        snprintf(e->dir, sizeof(e->dir), "/tmp/rf-fo-XXXXXX");
        if (!mkdtemp(e->dir))
                return NULL;
        e->st = rf_store_open(e->dir, RF_STORE_PRIMARY, NULL, err, sizeof(err));
        if (!e->st)
                return NULL;
        e->ob = rf_outbox_new(e->st, err, sizeof(err));
        e->fo = rf_fanout_new(e->st, err, sizeof(err));
        rf_config_init(&e->conf);
        rf_apply_ctx_init(&e->ctx, e->st, with_queue ? &e->conf : NULL, e->ob,
                          e->fo);
        if (with_queue) {
                e->q = rf_queue_new(e->st, &e->conf, rf_now_ms());
                e->ctx.queue = e->q;
        }
        return e;
}

/* Takes the list of \p subject on \p surface: items "x" and \p other. */
static void take_list(env_t *e, const char *subject, const char *surface,
                      const char *list_id, const char *other)
{
        char js[512];

        snprintf(js, sizeof(js),
                 "{\"subject_id\":\"%s\",\"surface\":\"%s\","
                 "\"list_id\":\"%s\",\"generated_at\":"
                 "\"2026-11-22T01:00:00Z\",\"expires_at\":"
                 "\"2099-01-01T00:00:00Z\",\"model_version\":\"m\","
                 "\"items\":[{\"item_id\":\"x\",\"score\":2},"
                 "{\"item_id\":\"%s\",\"score\":1}]}",
                 subject, surface, list_id, other);
        take(e, RF_TOPIC_LISTS, subject, js);
}

/* Bans "x" (a fan-out job over every list taken) and commits. */
static void ban_x(env_t *e)
{
        take(e, RF_TOPIC_ITEM_BANS, "x",
             "{\"event_id\":\"ban-x\",\"type\":\"item_banned\",\"item_id\":"
             "\"x\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        commit(e);
}

/* LISTS lists, each of its own subject, all holding "x", then a ban of
 * "x"; with the recompute queue when \p with_queue. */
static int setup_with(void **state, int with_queue)
{
        env_t *e = env_open(with_queue);
        char subject[32], list_id[32], other[32];

        if (!e)
                return -1;
        for (int i = 0; i < LISTS; i++) {
                snprintf(subject, sizeof(subject), "u-%04d", i);
                snprintf(list_id, sizeof(list_id), "L-%d", i);
                snprintf(other, sizeof(other), "y%d", i);
                take_list(e, subject, "home", list_id, other);
        }
        ban_x(e);
        *state = e;
        return 0;
}

static int setup(void **state)
{
        return setup_with(state, 0);
}

static int setup_queue(void **state)
{
        return setup_with(state, 1);
}

static int teardown(void **state)
{
        env_t *e = *state;
        char cmd[64];

        rf_apply_ctx_clear(&e->ctx);
        rf_queue_destroy(e->q);
        rf_config_destroy(&e->conf);
        rf_fanout_destroy(e->fo);
        rf_outbox_destroy(e->ob);
        rf_store_close(e->st);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
        free(e);
        return system(cmd);
}

/* Runs steps until the job is done: @returns the number of steps, with
 * the entries of the first in *first. */
static int run_steps(env_t *e, size_t budget, size_t *first)
{
        size_t scanned, total = 0;
        int steps = 0;

        assert_int_equal(rf_fanout_pending(e->fo), 1);
        while (rf_fanout_pending(e->fo)) {
                assert_int_equal(rf_fanout_step(&e->ctx, budget, &scanned), 0);
                assert_true(scanned >= 1); /* every step makes progress */
                assert_true(scanned <= budget);
                if (!steps++)
                        *first = scanned;
                total += scanned;
                commit(e);
                assert_true(steps <= LISTS);
        }
        assert_int_equal(total, LISTS);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), LISTS);
        return steps;
}

static void test_steps_by_entries(void **state)
{
        env_t *e = *state;
        size_t first = 0;

        /* no time budget: the entry budget alone cuts the job */
        assert_int_equal(run_steps(e, 300, &first), 7);
        assert_int_equal(first, 300);
}

static void test_steps_by_time(void **state)
{
        env_t *e = *state;
        size_t first = 0;

        /* 2,000 lists take far more than 1 ms, on any machine: the clock
         * cuts the job long before the entry budget does */
        rf_fanout_set_step_ms(e->fo, 1);
        int steps = run_steps(e, 1000000, &first);
        assert_true(steps >= 2);
        assert_true(first < LISTS);
}

/* The time budget holds the step's commit too, up to half of it. Told
 * that a commit costs 1 ms a write, a 20 ms step works for about 10 ms:
 * without the commit's share, no step would end before its 20 ms (the
 * job has lists enough for several). */
static void test_step_leaves_room_for_its_commit(void **state)
{
        env_t *e = *state;
        int64_t fastest = INT64_MAX;
        size_t scanned, total = 0;
        int steps = 0;

        rf_fanout_set_step_ms(e->fo, 20);
        rf_fanout_commit_cost(e->fo, 1, 1000000);
        while (rf_fanout_pending(e->fo)) {
                int64_t t0 = rf_mono_ns();
                assert_int_equal(rf_fanout_step(&e->ctx, 1000000, &scanned), 0);
                int64_t took = rf_mono_ns() - t0;
                commit(e);
                total += scanned;
                /* the last step may end with the job, early */
                if (rf_fanout_pending(e->fo) && took < fastest)
                        fastest = took;
                assert_true(++steps <= LISTS);
        }
        assert_int_equal(total, LISTS);
        /* nor does the commit's share cut steps to a few lists: at most
         * half the step goes to it (here, about 10 lists' writes) */
        if (steps < 2 || steps > 60)
                fail_msg("%d steps for %d lists", steps, LISTS);
        if (fastest >= 18000000)
                fail_msg("no step ended before %.1f ms", fastest / 1e6);
}

/* Two jobs in one step read the index with one iterator, and their
 * notices go out as one outbox record. Each job must stop at the end of
 * its own item ("x" is a prefix of "x1") and go on from its own cursor. A
 * job whose batch holds new index entries reads through the batch. */
static void test_jobs_share_a_step(void **state)
{
        env_t *e = env_open(0);
        size_t scanned, total = 0;

        (void)state;
        assert_non_null(e);
        take_list(e, "u-a", "home", "L-a", "p1");
        take_list(e, "u-b", "home", "L-b", "x1");
        take_list(e, "u-c", "home", "L-c", "x1");
        take(e, RF_TOPIC_ITEM_BANS, "x1",
             "{\"event_id\":\"ban-x1\",\"type\":\"item_banned\","
             "\"item_id\":\"x1\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        commit(e);
        ban_x(e); /* x: u-a, u-b, u-c; x1: u-b, u-c */
        assert_int_equal(rf_fanout_pending(e->fo), 2);
        size_t records = rf_outbox_pending(e->ob);
        /* 4 entries: the first job whole, the second cut after one */
        assert_int_equal(rf_fanout_step(&e->ctx, 4, &scanned), 0);
        assert_int_equal(scanned, 4);
        commit(e);
        assert_int_equal(rf_fanout_pending(e->fo), 1);
        /* the step's 4 notices, of both jobs, in one outbox record */
        assert_int_equal(rf_outbox_pending(e->ob), records + 1);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), 4);
        assert_int_equal(rf_fanout_step(&e->ctx, 100, &scanned), 0);
        assert_int_equal(scanned, 1);
        commit(e);
        assert_int_equal(rf_fanout_pending(e->fo), 0);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), 5);

        /* A list taken in the same batch as the ban of its item. */
        take_list(e, "u-d", "home", "L-d", "z");
        take(e, RF_TOPIC_ITEM_BANS, "z",
             "{\"event_id\":\"ban-z\",\"type\":\"item_banned\","
             "\"item_id\":\"z\",\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        while (rf_fanout_pending(e->fo)) {
                assert_int_equal(rf_fanout_step(&e->ctx, 100, &scanned), 0);
                total += scanned;
        }
        commit(e);
        assert_int_equal(total, 1);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), 6);
        teardown((void **)&e);
}

/* A hide's job walks the hidden item's lists of its user only ("u-a" is a
 * prefix of "u-ab"), keeps to them across steps, and does its work in the
 * steps, not in the hide's batch. A job stored before jobs had a subject
 * walks every list of its item. */
static void test_hide_job_walks_its_subject(void **state)
{
        env_t *e = env_open(0);
        size_t scanned;
        rf_buf_t k = { 0 }, v = { 0 };
        char err[256];

        (void)state;
        assert_non_null(e);
        take_list(e, "u-a", "home", "L-a1", "p1");
        take_list(e, "u-a", "push", "L-a2", "p2");
        take_list(e, "u-ab", "home", "L-ab", "p3");
        take_list(e, "u-b", "home", "L-b", "p4");
        commit(e);
        take(e, RF_TOPIC_USER_HIDES, "u-a",
             "{\"event_id\":\"hide-x\",\"type\":\"item_hidden\","
             "\"user_id\":\"u-a\",\"item_id\":\"x\","
             "\"occurred_at\":\"2026-11-22T02:00:00Z\"}");
        commit(e);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), 0);
        assert_int_equal(rf_fanout_pending(e->fo), 1);
        assert_int_equal(rf_fanout_step(&e->ctx, 1, &scanned), 0);
        assert_int_equal(scanned, 1);
        commit(e);
        assert_int_equal(rf_fanout_step(&e->ctx, 100, &scanned), 0);
        assert_int_equal(scanned, 1);
        commit(e);
        assert_int_equal(rf_fanout_pending(e->fo), 0);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), 2);

        /* The stored form of a job without a subject: cause, kind, entity,
         * region, event id, occurred_at, empty cursor and its NUL. */
        char hdr[2] = { (char)RF_EV_ITEM_BANNED, RF_IDX_ITEM };
        rf_buf_append(&v, hdr, 2);
        rf_buf_put_str(&v, "x");
        rf_buf_put_str(&v, "");
        rf_buf_put_str(&v, "ban-old");
        rf_buf_put_be64(&v, 1);
        rf_buf_put_varint(&v, 0);
        rf_buf_append(&v, "", 1);
        rf_key_seq(&k, 1000);
        rf_txn_put(e->ctx.txn, RF_CF_FANOUT, k.data, k.len, v.data, v.len);
        assert_int_equal(rf_txn_commit(e->ctx.txn, err, sizeof(err)), 0);
        rf_fanout_reload(e->fo);
        assert_int_equal(rf_fanout_pending(e->fo), 1);
        assert_int_equal(rf_fanout_step(&e->ctx, 100, &scanned), 0);
        assert_int_equal(scanned, 4);
        commit(e);
        assert_int_equal(rf_fanout_pending(e->fo), 0);
        rf_buf_free(&k);
        rf_buf_free(&v);
        teardown((void **)&e);
}

/* A hide's job runs ahead of a ban's 2,000 lists, scheduled before it,
 * and keeps its place across a restart. */
static void test_hide_job_runs_ahead(void **state)
{
        env_t *e = *state;
        size_t scanned;
        char err[256];

        take(e, RF_TOPIC_USER_HIDES, "u-0005",
             "{\"event_id\":\"hide-y5\",\"type\":\"item_hidden\","
             "\"user_id\":\"u-0005\",\"item_id\":\"y5\","
             "\"occurred_at\":\"2026-11-22T03:00:00Z\"}");
        commit(e);
        assert_int_equal(rf_fanout_pending(e->fo), 2);
        rf_fanout_destroy(e->fo); /* a restart */
        e->fo = rf_fanout_new(e->st, err, sizeof(err));
        assert_non_null(e->fo);
        e->ctx.fanout = e->fo;
        assert_int_equal(rf_fanout_pending(e->fo), 2);
        assert_int_equal(rf_fanout_step(&e->ctx, 1, &scanned), 0);
        assert_int_equal(scanned, 1);
        commit(e);
        assert_int_equal(rf_fanout_pending(e->fo), 1);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), 1);
        assert_int_equal(rf_fanout_step(&e->ctx, 100000, &scanned), 0);
        assert_int_equal(scanned, LISTS);
        commit(e);
        assert_int_equal(rf_fanout_pending(e->fo), 0);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS),
                         LISTS + 1);
}

/* An item hide's job takes one entry off the remembered bound of each list
 * holding the item, as a ban's does: no list is read for it. A creator
 * hide may take several entries: the user's lists are read again. */
static void test_item_hide_keeps_valid_bound(void **state)
{
        env_t *e = env_open(1);
        size_t scanned;
        char err[256];
        uint64_t reads;

        (void)state;
        assert_non_null(e);
        assert_int_equal(rf_config_set(&e->conf, "surface.default.min_valid",
                                       "0", err, sizeof(err)),
                         0);
        take(e, RF_TOPIC_LISTS, "u-a",
             "{\"subject_id\":\"u-a\",\"surface\":\"home\","
             "\"list_id\":\"L-a\",\"generated_at\":"
             "\"2026-11-22T01:00:00Z\",\"expires_at\":"
             "\"2099-01-01T00:00:00Z\",\"model_version\":\"m\","
             "\"items\":[{\"item_id\":\"x\",\"score\":4},"
             "{\"item_id\":\"p\",\"score\":3},"
             "{\"item_id\":\"q\",\"score\":2},"
             "{\"item_id\":\"r\",\"score\":1}]}");
        ban_x(e); /* the first visit reads the list: bound 3 (p, q, r) */
        drain(e, 100);
        reads = atomic_load(&rf_metrics.recompute_list_reads);
        take(e, RF_TOPIC_USER_HIDES, "u-a",
             "{\"event_id\":\"hide-p\",\"type\":\"item_hidden\","
             "\"user_id\":\"u-a\",\"item_id\":\"p\","
             "\"occurred_at\":\"2026-11-22T03:00:00Z\"}");
        commit(e);
        assert_int_equal(rf_fanout_step(&e->ctx, 100, &scanned), 0);
        assert_int_equal(scanned, 1);
        commit(e);
        assert_int_equal(atomic_load(&rf_metrics.recompute_list_reads), reads);
        take(e, RF_TOPIC_USER_HIDES, "u-a",
             "{\"event_id\":\"hide-c\",\"type\":\"creator_hidden\","
             "\"user_id\":\"u-a\",\"creator_id\":\"c-none\","
             "\"occurred_at\":\"2026-11-22T03:00:01Z\"}");
        commit(e);
        /* x unbanned and banned again, after the creator hide forgot the
         * bound (2, q and r): the ban's job reads the list */
        take(e, RF_TOPIC_ITEM_BANS, "x",
             "{\"event_id\":\"unban-x\",\"type\":\"item_unbanned\","
             "\"item_id\":\"x\",\"occurred_at\":\"2026-11-22T04:00:00Z\"}");
        take(e, RF_TOPIC_ITEM_BANS, "x",
             "{\"event_id\":\"ban-x2\",\"type\":\"item_banned\","
             "\"item_id\":\"x\",\"occurred_at\":\"2026-11-22T05:00:00Z\"}");
        commit(e);
        drain(e, 100);
        assert_int_equal(atomic_load(&rf_metrics.recompute_list_reads),
                         reads + 1);
        teardown((void **)&e);
}

/* Users u-0001 to u-<n> each hide the item only their own list holds
 * ("y<i>"): n hide jobs of one list each, committed. */
static void hide_own_items(env_t *e, int n)
{
        char js[256];

        for (int i = 1; i <= n; i++) {
                char user[16];
                snprintf(user, sizeof(user), "u-%04d", i);
                snprintf(js, sizeof(js),
                         "{\"event_id\":\"hide-%d\",\"type\":\"item_hidden\","
                         "\"user_id\":\"%s\",\"item_id\":\"y%d\","
                         "\"occurred_at\":\"2026-11-22T03:00:00Z\"}",
                         i, user, i);
                take(e, RF_TOPIC_USER_HIDES, user, js);
        }
        commit(e);
}

/* Hides take at most half of a step while a ban has lists left: a stream
 * of them cannot stop it. */
static void test_hides_share_a_step_with_a_ban(void **state)
{
        env_t *e = *state;
        size_t scanned;

        hide_own_items(e, 3);
        assert_int_equal(rf_fanout_pending(e->fo), 4);
        /* 4 entries: two hides, then two of the ban's lists */
        assert_int_equal(rf_fanout_step(&e->ctx, 4, &scanned), 0);
        assert_int_equal(scanned, 4);
        commit(e);
        assert_int_equal(rf_fanout_pending(e->fo), 2);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), 4);
        drain(e, 500);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS),
                         LISTS + 3);
}

/* The user lane's half of a step is of the time left for work once the
 * commit is counted. With the commit's share at its cap (half of a 4 ms
 * step) from the first lists on, 500 one-list hides still share each step
 * with the ban: the clock's half alone gave the hides all of it. */
static void test_hides_share_a_step_with_its_commit(void **state)
{
        env_t *e = *state;
        size_t scanned, ban = 0;
        int steps = 0;

        hide_own_items(e, 500);
        assert_int_equal(rf_fanout_pending(e->fo), 501);
        rf_fanout_set_step_ms(e->fo, 4);
        rf_fanout_commit_cost(e->fo, 1, 50000);
        while (rf_fanout_pending(e->fo) > 1) { /* hides left */
                size_t before = rf_fanout_pending(e->fo);
                assert_int_equal(rf_fanout_step(&e->ctx, 1000000, &scanned), 0);
                commit(e);
                /* a hide job is one list: the rest of the step was the ban's */
                ban += scanned - (before - rf_fanout_pending(e->fo));
                assert_true(++steps <= 500);
        }
        if (ban < 150)
                fail_msg("the ban got %zu lists in the %d steps the hides took",
                         ban, steps);
}

#define SUBJECTS 300

static const char *const surfaces[] = { "email", "home", "push" };

static int setup_subjects(void **state)
{
        env_t *e = env_open(1);
        char subject[32], list_id[32];

        if (!e)
                return -1;
        for (int i = 0; i < SUBJECTS; i++)
                for (size_t s = 0; s < RF_ARRAY_SIZE(surfaces); s++) {
                        snprintf(subject, sizeof(subject), "s-%04d", i);
                        snprintf(list_id, sizeof(list_id), "L-%d-%zu", i, s);
                        take_list(e, subject, surfaces[s], list_id, "y");
                }
        ban_x(e);
        *state = e;
        return 0;
}

static void test_subject_entries(void **state)
{
        env_t *e = *state;
        size_t entries = 0;
        rf_buf_t js = { 0 };

        /* Seven entries a step: most steps end between two lists of one
         * subject, whose entry the next step takes up again. */
        drain(e, 7);
        rf_iter_t *it = rf_iter_new(e->st, NULL, RF_CF_QUEUE, "P", 1);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                char subject[32];
                snprintf(subject, sizeof(subject), "%.*s", (int)klen - 1,
                         k + 1);
                rf_buf_reset(&js);
                assert_int_equal(rf_queue_entry_to_json(subject, v, vlen, &js),
                                 0);
                /* the subject's own entry, with all its surfaces */
                char want[64];
                snprintf(want, sizeof(want), "\"subject_id\":\"%s\"", subject);
                if (!strstr(js.data, want))
                        fail_msg("entry of %s: %s", subject, js.data);
                for (size_t s = 0; s < RF_ARRAY_SIZE(surfaces); s++) {
                        snprintf(want, sizeof(want), "\"%s\"", surfaces[s]);
                        if (!strstr(js.data, want))
                                fail_msg("no %s in %s", want, js.data);
                }
                assert_non_null(strstr(js.data, "\"ban-x\""));
                entries++;
        }
        rf_iter_destroy(it);
        rf_buf_free(&js);
        assert_int_equal(entries, SUBJECTS);
}

/* A ban lifted before its job runs: the job still tells every list (an
 * invalidation notice), but neither reads a list nor queues a recompute:
 * the item is known not filtered once per step, not per list. */
static void test_lifted_ban_queues_nothing(void **state)
{
        env_t *e = *state;
        uint64_t reads = atomic_load(&rf_metrics.recompute_list_reads);

        take(e, RF_TOPIC_ITEM_BANS, "x",
             "{\"event_id\":\"unban-x\",\"type\":\"item_unbanned\","
             "\"item_id\":\"x\",\"occurred_at\":\"2026-11-22T02:01:00Z\"}");
        commit(e);
        drain(e, 50);
        /* the ban's notices and the unban's, one per list each */
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS),
                         2 * SUBJECTS * RF_ARRAY_SIZE(surfaces));
        assert_int_equal(atomic_load(&rf_metrics.recompute_list_reads), reads);
        rf_iter_t *it = rf_iter_new(e->st, NULL, RF_CF_QUEUE, "P", 1);
        assert_false(rf_iter_valid(it));
        rf_iter_destroy(it);
}

/* A regional fallback list's key ends with "\0region": a ban in it is
 * still a removal from a served list, so it queues a recompute of the
 * fallback subject (urgent here: 1 valid entry left, min_valid 2). The
 * region was once read as a run id, and the list taken for gone. */
static void test_fallback_list_queues_recompute(void **state)
{
        env_t *e = env_open(1);
        char err[256], js[512];
        rf_queue_req_t req = { 0 };

        assert_non_null(e);
        *state = e; /* for teardown, even after a failure */
        if (rf_config_set(&e->conf, "surface.home.min_valid", "2", err,
                          sizeof(err)))
                fail_msg("%s", err);
        snprintf(js, sizeof(js),
                 "{\"subject_id\":\"%s\",\"surface\":\"home\","
                 "\"region\":\"eu\",\"list_id\":\"F-eu\",\"generated_at\":"
                 "\"2026-11-22T01:00:00Z\",\"expires_at\":"
                 "\"2099-01-01T00:00:00Z\",\"model_version\":\"m\","
                 "\"items\":[{\"item_id\":\"x\",\"score\":2},"
                 "{\"item_id\":\"y\",\"score\":1}]}",
                 RF_FALLBACK_SUBJECT);
        take(e, RF_TOPIC_LISTS, RF_FALLBACK_SUBJECT, js);
        commit(e);
        ban_x(e);
        drain(e, 50);
        assert_int_equal(rf_outbox_puts(e->ob, RF_TOPIC_INVALIDATIONS), 1);
        /* urgent: due at once */
        assert_int_equal(rf_queue_take(e->q, rf_now_ms(), &req), 1);
        assert_string_equal(req.subject_id.data, RF_FALLBACK_SUBJECT);
        assert_non_null(strstr(req.json.data, "\"priority\":\"urgent\""));
        assert_int_equal(rf_queue_settle(e->q, req.token, 1, rf_now_ms()), 0);
        rf_queue_req_clear(&req);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jobs_share_a_step),
                cmocka_unit_test(test_hide_job_walks_its_subject),
                cmocka_unit_test(test_item_hide_keeps_valid_bound),
                cmocka_unit_test_setup_teardown(test_hide_job_runs_ahead, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                    test_hides_share_a_step_with_a_ban, setup, teardown),
                cmocka_unit_test_setup_teardown(test_steps_by_entries, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                    test_step_leaves_room_for_its_commit, setup_queue,
                    teardown),
                cmocka_unit_test_setup_teardown(
                    test_hides_share_a_step_with_its_commit, setup_queue,
                    teardown),
                cmocka_unit_test_setup_teardown(test_steps_by_time, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_subject_entries,
                                                setup_subjects, teardown),
                cmocka_unit_test_setup_teardown(test_lifted_ban_queues_nothing,
                                                setup_subjects, teardown),
                cmocka_unit_test_teardown(test_fallback_list_queues_recompute,
                                          teardown),
        };
        rf_log_set_level(RF_LOG_ERROR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
