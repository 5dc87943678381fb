/*
 * Integration: batch runs through the embedded broker and the bulk loader
 * into a real store, asserted on what reads return. One daemon serves the
 * whole group; each test uses its own surface so runs do not interfere.
 *
 *  - staged lists are invisible until the run completes and validates;
 *  - a reader thread hammering reads during activation never sees the old
 *    run after the new one, nor a missing list (the switch is atomic);
 *  - a run failing validation keeps the old version; the reasons are kept;
 *  - rollback (through the spool, daemon running) switches back, each
 *    surface to the run that served it just before; the spool takes only
 *    well-formed jobs;
 *  - an absurd expected_lists fails the coverage gate;
 *  - newer wins between incremental and batch lists;
 *  - a ban's fan-out notifies the version reads serve, not the ones kept
 *    for rollback (which still honour the ban once rolled back to); so do
 *    a hide and a consent revocation, which reach a user's lists without
 *    the index;
 *  - a bulk load reads the same as the same lists through the topic, a ban
 *    taken during the load is honoured, a consent revocation taken during
 *    the load drops the subject's list for good (a later grant does not
 *    bring it back), a malformed line is reported with its line number; a
 *    load parsed on several threads builds the job one thread builds.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "integration/h_wrap.h"
#include "integration/harness.h"
#include "recfresh/bulkload.h"
#include "recfresh/keys.h"
#include "recfresh/list_cache.h"
#include "recfresh/metrics.h"
#include "recfresh/runs.h"
#include "recfresh/store.h"
#include "recfresh/tombstone.h"

static h_env_t env;

#define LISTS "recs.lists.v1"
#define RUNS  "recs.runs.v1"
#define BANS  "recs.item-bans.v1"

static int group_setup(void **state)
{
        char errstr[256];
        (void)state;
        h_setup(&env, 3);
        /* fv-3 waits this long for lists that never come */
        if (rf_config_set(&env.conf, "runs.settle", "0", errstr,
                          sizeof(errstr)) ||
            rf_config_set(&env.conf, "runs.completion_timeout", "1s", errstr,
                          sizeof(errstr)) ||
            rf_config_set(&env.conf, "surface.default.min_valid", "0", errstr,
                          sizeof(errstr)) ||
            rf_config_set(&env.conf, "surface.ep.min_valid", "3", errstr,
                          sizeof(errstr)) ||
            rf_config_set(&env.conf, "surface.eq.min_valid", "3", errstr,
                          sizeof(errstr)) ||
            rf_config_set(&env.conf, "surface.eq.consent_scope", "email",
                          errstr, sizeof(errstr)))
                return -1;
        h_daemon_start(&env);
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        h_teardown(&env);
        return 0;
}

static rf_store_t *store(void)
{
        return rf_daemon_store(env.daemon);
}

/* A list JSON; \p run_id NULL for an incremental list. */
static char *list_json(const char *subject, const char *surface,
                       const char *run_id, const char *list_id,
                       const char *generated_at, const char *items)
{
        rf_buf_t b = { 0 };
        char *copy = rf_strdup(items);
        int first = 1;

        rf_buf_printf(&b,
                      "{\"subject_id\":\"%s\",\"surface\":\"%s\","
                      "\"list_id\":\"%s\",%s%s%s\"generated_at\":\"%s\","
                      "\"expires_at\":\"2099-01-01T00:00:00Z\","
                      "\"model_version\":\"m1\",\"items\":[",
                      subject, surface, list_id, run_id ? "\"run_id\":\"" : "",
                      run_id ? run_id : "", run_id ? "\"," : "", generated_at);
        for (char *s = strtok(copy, ","); s; s = strtok(NULL, ",")) {
                rf_buf_printf(&b, "%s{\"item_id\":\"%s\",\"score\":0.5}",
                              first ? "" : ",", s);
                first = 0;
        }
        rf_buf_printf(&b, "]}");
        free(copy);
        return b.data;
}

static void publish(const char *subject, const char *surface,
                    const char *run_id, const char *list_id,
                    const char *generated_at, const char *items)
{
        char *js =
            list_json(subject, surface, run_id, list_id, generated_at, items);
        h_produce(&env, LISTS, subject, js);
        free(js);
}

/* \p surface: one surface, or several separated by commas. */
static void run_ctl(const char *run_id, const char *type, const char *surface,
                    long long expected, const char *generated_at)
{
        char exp[48] = "";
        rf_buf_t sv = { 0 };
        char *js, *copy = rf_strdup(surface);

        if (expected >= 0)
                snprintf(exp, sizeof(exp), ",\"expected_lists\":%lld",
                         expected);
        for (char *s = strtok(copy, ","); s; s = strtok(NULL, ","))
                rf_buf_printf(&sv, "%s\"%s\"", sv.len ? "," : "", s);
        js = h_fmt("{\"run_id\":\"%s\",\"type\":\"%s\","
                   "\"surfaces\":[%s]%s,\"generated_at\":\"%s\"}",
                   run_id, type, sv.data, exp, generated_at);
        h_produce(&env, RUNS, run_id, js);
        free(js);
        free(copy);
        rf_buf_free(&sv);
}

/* Waits until run \p run_id is in \p state. */
static void wait_state(const char *run_id, rf_run_state_t state)
{
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        rf_run_state_t last = RF_RUN__CNT;

        while (rf_mono_ms() < deadline) {
                rf_run_info_t ri;
                if (rf_runs_get(store(), NULL, run_id, &ri) == 0) {
                        last = ri.state;
                        rf_run_info_clear(&ri);
                        if (last == state)
                                return;
                }
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        fail_msg("run %s: state %s, want %s", run_id, rf_run_state2str(last),
                 rf_run_state2str(state));
}

/* @returns the run_id of the list served (or "<no_list>"). Caller frees. */
static char *served_run(const char *subject, const char *surface)
{
        rf_read_req_t req = { subject, surface, NULL, 0 };
        rf_read_result_t res;
        char *out;

        assert_int_equal(rf_read_list(store(), &env.conf, &req, &res), 0);
        out = rf_strdup(res.list ? res.list->run_id : "<no_list>");
        rf_read_result_clear(&res);
        return out;
}

/* Publishes run \p run_id on \p surface for subjects prefix0..n-1 and
 * completes it with expected_lists = n. */
/* A run of \p n lists (subjects prefix0..), announcing \p expected. */
static void run_expecting(const char *run_id, const char *surface,
                          const char *prefix, int n, long long expected,
                          const char *gen, const char *items)
{
        run_ctl(run_id, "run_started", surface, -1, gen);
        for (int i = 0; i < n; i++) {
                char subj[64], lid[128];
                snprintf(subj, sizeof(subj), "%s%d", prefix, i);
                snprintf(lid, sizeof(lid), "%s-%s", run_id, subj);
                publish(subj, surface, run_id, lid, gen, items);
        }
        run_ctl(run_id, "run_completed", surface, expected, gen);
}

static void full_run(const char *run_id, const char *surface,
                     const char *prefix, int n, const char *gen,
                     const char *items)
{
        run_expecting(run_id, surface, prefix, n, n, gen, items);
}

/* full_run(), then waits for the run to serve. */
static void active_run(const char *run_id, const char *surface,
                       const char *prefix, int n, const char *gen,
                       const char *items)
{
        full_run(run_id, surface, prefix, n, gen, items);
        wait_state(run_id, RF_RUN_ACTIVE);
}

/* ---- staged lists are invisible -----------------------------------------*/

static void test_staged_invisible(void **state)
{
        (void)state;
        run_ctl("st-1", "run_started", "st", -1, "2026-11-22T02:00:00Z");
        publish("st-u0", "st", "st-1", "st-1-0", "2026-11-22T02:00:00Z", "a,b");
        publish("st-u1", "st", "st-1", "st-1-1", "2026-11-22T02:00:00Z", "c,d");
        /* Wait until both are staged (the run's own record counts them). */
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        for (;;) {
                rf_run_info_t ri;
                int64_t n = 0;
                if (rf_runs_get(store(), NULL, "st-1", &ri) == 0) {
                        n = ri.stat_cnt ? ri.stats[0].lists : 0;
                        rf_run_info_clear(&ri);
                }
                if (n == 2)
                        break;
                assert_true(rf_mono_ms() < deadline);
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        /* staged, run started: nothing served */
        char *s = h_served(&env, "st-u0", "st", NULL);
        assert_string_equal(s, "<no_list>");
        free(s);
        run_ctl("st-1", "run_completed", "st", 2, "2026-11-22T02:00:00Z");
        h_wait_served(&env, "st-u0", "st", NULL, "a,b");
        h_wait_served(&env, "st-u1", "st", NULL, "c,d");
        wait_state("st-1", RF_RUN_ACTIVE);
}

/* Lists that arrive before their run_started are staged too. */
static void test_unannounced_staged(void **state)
{
        (void)state;
        publish("un-u0", "un", "un-1", "un-1-0", "2026-11-22T02:00:00Z", "x,y");
        wait_state("un-1", RF_RUN_UNANNOUNCED);
        char *s = h_served(&env, "un-u0", "un", NULL);
        assert_string_equal(s, "<no_list>");
        free(s);
        run_ctl("un-1", "run_started", "un", -1, "2026-11-22T02:00:00Z");
        wait_state("un-1", RF_RUN_STARTED);
        s = h_served(&env, "un-u0", "un", NULL);
        assert_string_equal(s, "<no_list>");
        free(s);
        run_ctl("un-1", "run_completed", "un", 1, "2026-11-22T02:00:00Z");
        h_wait_served(&env, "un-u0", "un", NULL, "x,y");
}

/* ---- atomic switch under a hammering reader -----------------------------*/

#define AT_SUBJECTS 40

static atomic_int at_stop;
static atomic_int at_bad; /* reads that went back to R1 or found nothing */
static atomic_int at_reads;
static atomic_int at_seen_new;

static void *hammer(void *arg)
{
        int seen_new = 0;
        (void)arg;
        while (!atomic_load(&at_stop)) {
                for (int i = 0; i < AT_SUBJECTS; i++) {
                        char subj[32];
                        snprintf(subj, sizeof(subj), "at-u%d", i);
                        char *run = served_run(subj, "at");
                        if (!strcmp(run, "at-2"))
                                seen_new = 1;
                        else if (seen_new || strcmp(run, "at-1") != 0)
                                atomic_fetch_add(&at_bad, 1);
                        free(run);
                        atomic_fetch_add(&at_reads, 1);
                }
                atomic_store(&at_seen_new, seen_new);
        }
        return NULL;
}

static void test_atomic_switch(void **state)
{
        pthread_t thr;
        (void)state;

        active_run("at-1", "at", "at-u", AT_SUBJECTS, "2026-11-21T02:00:00Z",
                   "p,q");
        assert_int_equal(pthread_create(&thr, NULL, hammer, NULL), 0);
        active_run("at-2", "at", "at-u", AT_SUBJECTS, "2026-11-22T02:00:00Z",
                   "r,s");
        /* keep reading a little after the switch: until a sweep saw it */
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        while (!atomic_load(&at_seen_new) && rf_mono_ms() < deadline) {
                struct timespec ts = { 0, 5 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        atomic_store(&at_stop, 1);
        pthread_join(thr, NULL);
        assert_true(atomic_load(&at_reads) > AT_SUBJECTS);
        assert_int_equal(atomic_load(&at_seen_new), 1);
        assert_int_equal(atomic_load(&at_bad), 0);
        h_wait_served(&env, "at-u7", "at", NULL, "r,s");
}

/* ---- validation gates, rollback -----------------------------------------*/

static void test_failed_validation_keeps_old(void **state)
{
        rf_run_info_t ri;
        (void)state;

        active_run("fv-1", "fv", "fv-u", 10, "2026-11-21T02:00:00Z", "a,b,c");
        h_wait_served(&env, "fv-u3", "fv", NULL, "a,b,c");
        /* a run whose lists hold an item twice: over run_max_duplicate_pct */
        full_run("fv-2", "fv", "fv-u", 10, "2026-11-22T02:00:00Z", "d,d,e");
        wait_state("fv-2", RF_RUN_FAILED_VALIDATION);
        h_wait_served(&env, "fv-u3", "fv", NULL, "a,b,c");
        assert_int_equal(rf_runs_get(store(), NULL, "fv-2", &ri), 0);
        assert_true(ri.reason_cnt >= 1);
        assert_non_null(strstr(ri.reasons[0], "duplicate"));
        rf_run_info_clear(&ri);
        /* coverage: 3 of 10 expected lists */
        run_expecting("fv-3", "fv", "fv-u", 3, 10, "2026-11-23T02:00:00Z", "z");
        wait_state("fv-3", RF_RUN_FAILED_VALIDATION);
        assert_int_equal(rf_runs_get(store(), NULL, "fv-3", &ri), 0);
        int coverage = 0;
        for (size_t i = 0; i < ri.reason_cnt; i++)
                coverage |= strstr(ri.reasons[i], "coverage") != NULL;
        assert_true(coverage);
        rf_run_info_clear(&ri);
        h_wait_served(&env, "fv-u1", "fv", NULL, "a,b,c");
}

/* Through the spool, as `recfresh runs rollback` does beside a daemon. */
static int spool_rollback(const char *run_id, const char *to, char *result,
                          size_t size)
{
        char errstr[512];
        rf_buf_t tmp = { 0 };
        int rc;

        rf_buf_printf(&tmp, "%s/rb-%d", env.dir, (int)rf_mono_ms());
        assert_int_equal(rf_runs_write_rollback(tmp.data, run_id, to, errstr,
                                                sizeof(errstr)),
                         0);
        rc = rf_runs_run_job(NULL, &env.conf, tmp.data, "rollback", result,
                             size, errstr, sizeof(errstr));
        rf_buf_free(&tmp);
        return rc;
}

/* Rolls back through the spool (spool_rollback()); the result must hold
 * \p expect ("ok", "error", "rolled back to ..."). */
static void rollback_expect(const char *run_id, const char *to,
                            const char *expect)
{
        char result[1024];

        assert_int_equal(spool_rollback(run_id, to, result, sizeof(result)), 0);
        if (!strstr(result, expect))
                fail_msg("rollback: expected \"%s\" in: %s", expect, result);
}

static void test_rollback(void **state)
{
        (void)state;

        active_run("rb-1", "rb", "rb-u", 5, "2026-11-21T02:00:00Z",
                   "old1,old2");
        active_run("rb-2", "rb", "rb-u", 5, "2026-11-22T02:00:00Z",
                   "new1,new2");
        h_wait_served(&env, "rb-u2", "rb", NULL, "new1,new2");
        /* a ban taken now applies to the version rolled back to */
        h_produce(&env, BANS, "old2",
                  "{\"event_id\":\"rb-ban\",\"type\":\"item_banned\","
                  "\"item_id\":\"old2\","
                  "\"occurred_at\":\"2026-11-22T10:00:00Z\"}");
        rollback_expect("rb-2", NULL, "ok");
        h_wait_served(&env, "rb-u2", "rb", NULL, "old1");
        wait_state("rb-2", RF_RUN_ROLLED_BACK);
        wait_state("rb-1", RF_RUN_ACTIVE);
        /* and forward again with --to */
        rollback_expect(NULL, "rb-2", "ok");
        h_wait_served(&env, "rb-u2", "rb", NULL, "new1,new2");
        /* no such run: an error result, nothing changes */
        rollback_expect(NULL, "nope", "error");
        h_wait_served(&env, "rb-u2", "rb", NULL, "new1,new2");
}

/* A rollback restores what served each surface just before: a run
 * displaced on one surface but still serving another stays active, and a
 * run displaced by `--to` is rolled_back; either is what comes back. */
static void test_rollback_per_surface(void **state)
{
        const char *g2 = "2026-11-22T02:00:00Z";
        (void)state;

        active_run("ps-1", "pa", "ps-u", 3, "2026-11-21T02:00:00Z", "one");
        run_ctl("ps-2", "run_started", "pa,pb", -1, g2);
        for (int i = 0; i < 3; i++) {
                char subj[32], lid[32];
                snprintf(subj, sizeof(subj), "ps-u%d", i);
                snprintf(lid, sizeof(lid), "ps-2-a%d", i);
                publish(subj, "pa", "ps-2", lid, g2, "two");
                snprintf(lid, sizeof(lid), "ps-2-b%d", i);
                publish(subj, "pb", "ps-2", lid, g2, "two-b");
        }
        run_ctl("ps-2", "run_completed", "pa,pb", 6, g2);
        wait_state("ps-2", RF_RUN_ACTIVE);
        active_run("ps-3", "pa", "ps-u", 3, "2026-11-23T02:00:00Z", "three");
        /* ps-2 serves pb still: it stays active */
        wait_state("ps-2", RF_RUN_ACTIVE);
        h_wait_served(&env, "ps-u1", "pa", NULL, "three");
        h_wait_served(&env, "ps-u1", "pb", NULL, "two-b");

        /* pa goes back to ps-2, not to the older superseded ps-1 */
        rollback_expect("ps-3", NULL, "ok");
        h_wait_served(&env, "ps-u1", "pa", NULL, "two");
        h_wait_served(&env, "ps-u1", "pb", NULL, "two-b");
        wait_state("ps-3", RF_RUN_ROLLED_BACK);
        wait_state("ps-2", RF_RUN_ACTIVE);
        wait_state("ps-1", RF_RUN_SUPERSEDED);

        /* --to displaces pc-2, which becomes rolled_back: a rollback of the
         * run put back by --to restores pc-2 */
        active_run("pc-1", "pc", "pc-u", 2, "2026-11-21T02:00:00Z", "c-one");
        active_run("pc-2", "pc", "pc-u", 2, "2026-11-22T02:00:00Z", "c-two");
        rollback_expect(NULL, "pc-1", "ok");
        h_wait_served(&env, "pc-u1", "pc", NULL, "c-one");
        wait_state("pc-2", RF_RUN_ROLLED_BACK);
        rollback_expect("pc-1", NULL, "rolled back to pc-2");
        h_wait_served(&env, "pc-u1", "pc", NULL, "c-two");
        wait_state("pc-2", RF_RUN_ACTIVE);
        wait_state("pc-1", RF_RUN_ROLLED_BACK);
}

/* A run rolled back by name was rejected: a later rollback on another of
 * its surfaces does not bring it back through that surface's history. */
static void test_rejected_run_not_restored(void **state)
{
        const char *g[] = { "2026-11-21T02:00:00Z", "2026-11-22T02:00:00Z" };
        const char *run[] = { "rj-1", "rj-2" };
        (void)state;

        for (int r = 0; r < 2; r++) {
                run_ctl(run[r], "run_started", "qa,qb", -1, g[r]);
                for (int i = 0; i < 2; i++) {
                        char subj[32], lid[32], item[32];
                        snprintf(subj, sizeof(subj), "rj-u%d", i);
                        snprintf(item, sizeof(item), "%s-a", run[r]);
                        snprintf(lid, sizeof(lid), "%s-a%d", run[r], i);
                        publish(subj, "qa", run[r], lid, g[r], item);
                        snprintf(item, sizeof(item), "%s-b", run[r]);
                        snprintf(lid, sizeof(lid), "%s-b%d", run[r], i);
                        publish(subj, "qb", run[r], lid, g[r], item);
                }
                run_ctl(run[r], "run_completed", "qa,qb", 4, g[r]);
                wait_state(run[r], RF_RUN_ACTIVE);
        }
        active_run("rj-3", "qb", "rj-u", 2, "2026-11-23T02:00:00Z", "rj-3-b");
        h_wait_served(&env, "rj-u1", "qb", NULL, "rj-3-b");

        /* rj-2 (serving qa only now) is rejected: qa back to rj-1 */
        rollback_expect("rj-2", NULL, "ok");
        h_wait_served(&env, "rj-u1", "qa", NULL, "rj-1-a");
        wait_state("rj-2", RF_RUN_ROLLED_BACK);
        /* qb's history holds rj-1 then rj-2: rj-2 is passed over */
        rollback_expect("rj-3", NULL, "rolled back to rj-1");
        h_wait_served(&env, "rj-u1", "qb", NULL, "rj-1-b");
        wait_state("rj-2", RF_RUN_ROLLED_BACK);
}

/* A store from before rollback histories: a surface with no history
 * goes back to its newest kept superseded run, as it did then. */
static void test_rollback_without_history(void **state)
{
        char err[256];
        rf_buf_t k = { 0 };
        (void)state;

        active_run("nh-1", "nh", "nh-u", 2, "2026-11-20T02:00:00Z", "nh-a");
        active_run("nh-2", "nh", "nh-u", 2, "2026-11-21T02:00:00Z", "nh-b");
        active_run("nh-3", "nh", "nh-u", 2, "2026-11-22T02:00:00Z", "nh-c");
        h_wait_served(&env, "nh-u1", "nh", NULL, "nh-c");
        /* the surface's history key ('H' surface, runs column family),
         * as an older store never wrote it */
        rf_buf_append(&k,
                      "H"
                      "nh",
                      3);
        rf_txn_t *txn = rf_txn_new(store());
        rf_txn_delete(txn, RF_CF_RUNS, k.data, k.len);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_destroy(txn);
        rf_buf_free(&k);

        rollback_expect("nh-3", NULL, "rolled back to nh-2");
        h_wait_served(&env, "nh-u1", "nh", NULL, "nh-b");
        wait_state("nh-3", RF_RUN_ROLLED_BACK);
        wait_state("nh-1", RF_RUN_SUPERSEDED);
}

/* An absurd expected_lists (untrusted, from the topic) fails the coverage
 * gate: pct * expected must not wrap around into a pass. */
static void test_coverage_huge_expected(void **state)
{
        rf_run_info_t ri;
        int coverage = 0;
        (void)state;

        run_expecting("ov-1", "ov", "ov-u", 3, 194176253407468965LL,
                      "2026-11-22T02:00:00Z", "o");
        wait_state("ov-1", RF_RUN_FAILED_VALIDATION);
        assert_int_equal(rf_runs_get(store(), NULL, "ov-1", &ri), 0);
        for (size_t i = 0; i < ri.reason_cnt; i++)
                coverage |= strstr(ri.reasons[i], "coverage 3 of "
                                                  "194176253407468965") != NULL;
        assert_true(coverage);
        rf_run_info_clear(&ri);
        char *s = h_served(&env, "ov-u1", "ov", NULL);
        assert_string_equal(s, "<no_list>");
        free(s);
}

/* ---- the spool takes only jobs ------------------------------------------*/

static char *spool_path(const char *name)
{
        return h_fmt("%s/spool/%s", env.conf.data_dir, name);
}

/* A result's temporary file (left by a crash between its write and its
 * rename) is no job; a rollback job without a run= line is rejected, not
 * taken as "roll back the latest run". */
static void test_spool_takes_only_jobs(void **state)
{
        char result[1024], errstr[256], *name = NULL;
        rf_run_info_t ri;
        (void)state;

        active_run("sp-1", "sp", "sp-u", 2, "2026-11-21T02:00:00Z", "s-one");
        active_run("sp-2", "sp", "sp-u", 2, "2026-11-22T02:00:00Z", "s-two");
        h_wait_served(&env, "sp-u1", "sp", NULL, "s-two");

        /* first in name order, before the job below */
        char *tmp = spool_path("0000000000001-load-1.result.tmp");
        FILE *fp = fopen(tmp, "w");
        assert_non_null(fp);
        fputs("ok: run sp-2 active (2 lists)\n", fp);
        assert_int_equal(fclose(fp), 0);
        rollback_expect(NULL, "nope", "error");
        assert_int_equal(rf_runs_get(store(), NULL, "sp-2", &ri), 0);
        assert_string_equal(rf_run_state2str(ri.state), "active");
        rf_run_info_clear(&ri);
        h_wait_served(&env, "sp-u1", "sp", NULL, "s-two");
        assert_int_equal(access(tmp, F_OK), 0); /* not taken */
        unlink(tmp);
        free(tmp);

        /* well named, but not a rollback request */
        tmp = h_fmt("%s/sp-junk", env.dir);
        assert_non_null(fp = fopen(tmp, "w"));
        fputs("ok: run sp-2 active (2 lists)\n", fp);
        assert_int_equal(fclose(fp), 0);
        assert_int_equal(rf_runs_spool_submit(env.conf.data_dir, tmp,
                                              "rollback", &name, errstr,
                                              sizeof(errstr)),
                         0);
        assert_int_equal(rf_runs_spool_wait(env.conf.data_dir, name,
                                            H_DEADLINE_MS, result,
                                            sizeof(result)),
                         0);
        assert_non_null(strstr(result, "error"));
        assert_non_null(strstr(result, "no run= line"));
        assert_int_equal(rf_runs_get(store(), NULL, "sp-2", &ri), 0);
        assert_string_equal(rf_run_state2str(ri.state), "active");
        rf_run_info_clear(&ri);
        h_wait_served(&env, "sp-u1", "sp", NULL, "s-two");
        free(name);
        free(tmp);

        /* a write that fails leaves no temporary file behind: here the
         * rename, onto a directory that is not empty */
        char *dst = h_fmt("%s/sp-dir", env.dir);
        char *in = h_fmt("%s/sp-dir/f", env.dir);
        tmp = h_fmt("%s/sp-dir.tmp", env.dir);
        assert_int_equal(mkdir(dst, 0755), 0);
        assert_non_null(fp = fopen(in, "w"));
        assert_int_equal(fclose(fp), 0);
        assert_int_not_equal(
            rf_runs_write_rollback(dst, "sp-2", NULL, errstr, sizeof(errstr)),
            0);
        assert_int_not_equal(access(tmp, F_OK), 0);
        free(dst);
        free(in);
        free(tmp);
}

/* ---- newer wins ---------------------------------------------------------*/

static void test_newer_wins(void **state)
{
        (void)state;
        active_run("nw-1", "nw", "nw-u", 3, "2026-11-22T02:00:00Z", "b1,b2");
        /* an incremental list generated after the run wins */
        publish("nw-u0", "nw", NULL, "inc-0", "2026-11-22T05:00:00Z", "i1");
        h_wait_served(&env, "nw-u0", "nw", NULL, "i1");
        /* one generated before the run loses to the batch list */
        publish("nw-u1", "nw", NULL, "inc-1", "2026-11-21T23:00:00Z", "i2");
        /* sentinel on the same subject partition: a newer incremental for
         * nw-u1 on another surface */
        publish("nw-u1", "nw-other", NULL, "inc-s", "2026-11-22T05:00:00Z",
                "s1");
        h_wait_served(&env, "nw-u1", "nw-other", NULL, "s1");
        h_wait_served(&env, "nw-u1", "nw", NULL, "b1,b2");
        /* a subject the run has no list for: the incremental list serves */
        publish("nw-x", "nw", NULL, "inc-x", "2026-11-20T23:00:00Z", "i3");
        h_wait_served(&env, "nw-x", "nw", NULL, "i3");
}

static char *served_id(const char *subject, const char *surface, size_t limit,
                       char *list_id, size_t size);

/* Reads \p subject's list on \p surface: the items served must be \p want. */
static void read_expect(const char *subject, const char *surface,
                        const char *want)
{
        char id[64];
        char *got = served_id(subject, surface, 0, id, sizeof(id));

        assert_string_equal(got, want);
        free(got);
}

/* A point read of race.key on race.thread is followed, once, by a commit
 * of race.val there, in column family race.cf (or fails, with race.fail):
 * a write or a failure that lands between a read's lookup of an
 * incremental list (or of its reader's hides) and what the read does with
 * the answer. */
static struct {
        pthread_t thread;
        rf_cf_t cf;
        rf_buf_t key, val;
        int fail; /* the lookup fails instead */
} race;

rocksdb_pinnableslice_t *
__wrap_rocksdb_get_pinned_cf(rocksdb_t *db, const rocksdb_readoptions_t *o,
                             rocksdb_column_family_handle_t *cf,
                             const char *key, size_t klen, char **errptr)
{
        int armed = race.key.len &&
                    pthread_equal(pthread_self(), race.thread) &&
                    klen == race.key.len && !memcmp(key, race.key.data, klen);

        if (armed && race.fail) {
                rf_buf_reset(&race.key);
                *errptr = strdup("IO error: injected: read failed");
                return NULL;
        }
        rocksdb_pinnableslice_t *p =
            __real_rocksdb_get_pinned_cf(db, o, cf, key, klen, errptr);
        if (armed) {
                char err[256];
                rf_txn_t *txn = rf_txn_new(store());
                rf_txn_put(txn, race.cf, race.key.data, race.key.len,
                           race.val.data, race.val.len);
                rf_buf_reset(&race.key); /* once */
                if (rf_txn_commit(txn, err, sizeof(err)))
                        fail_msg("%s", err);
                rf_txn_destroy(txn);
        }
        return p;
}

/* Arms race for \p subject's list on \p surface, with a newer incremental
 * list of \p items to write (unless \p fail). */
static void race_arm(const char *subject, const char *surface,
                     const char *items, int fail)
{
        rf_rejection_t rej;
        rf_list_t *l = NULL;
        char *js = list_json(subject, surface, NULL, "inc-race",
                             "2026-11-22T05:00:00Z", items);

        assert_int_equal(
            rf_list_from_json(NULL, 0, js, strlen(js), NULL, &l, &rej), 0);
        free(js);
        rf_buf_reset(&race.val);
        rf_list_encode(l, &race.val);
        rf_list_destroy(l);
        race.fail = fail;
        race.thread = pthread_self();
        race.cf = RF_CF_LISTS;
        rf_buf_reset(&race.key);
        rf_key_list(&race.key, subject, surface, "");
}

/* A read that found no incremental list caches the run's version under the
 * token it took before looking; an incremental list written right after
 * that lookup moved the token, so the next read looks again and serves it.
 * Fails if the token is taken after the lookup. And a lookup that failed
 * records no token: the next read looks again. */
static void test_incremental_written_during_a_read(void **state)
{
        (void)state;

        active_run("ir-1", "ir", "ir-u", 3, "2026-11-22T02:00:00Z", "b1,b2");
        h_wait_served(&env, "ir-u0", "ir", NULL, "b1,b2");

        race_arm("ir-u1", "ir", "r1", 0);
        read_expect("ir-u1", "ir", "b1,b2"); /* after the lookup */
        assert_int_equal(race.key.len, 0);   /* the write came */
        read_expect("ir-u1", "ir", "r1");

        /* ir-u2's newer incremental list is there before the read, whose
         * lookup of it fails: the run's version serves, and is cached
         * without a token */
        race_arm("ir-u2", "ir", "r2", 0);
        rf_txn_t *txn = rf_txn_new(store());
        char err[256];
        rf_txn_put(txn, RF_CF_LISTS, race.key.data, race.key.len, race.val.data,
                   race.val.len);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_destroy(txn);
        race.fail = 1;
        read_expect("ir-u2", "ir", "b1,b2");
        assert_int_equal(race.key.len, 0);
        read_expect("ir-u2", "ir", "r2");
        rf_buf_free(&race.key);
        rf_buf_free(&race.val);
}

/* Commits \p user's hide summary: the items of \p items (comma-separated)
 * hidden. */
static void put_hide_summary(const char *user, const char *items)
{
        rf_buf_t k = { 0 }, sum = { 0 };
        char err[256], *copy = strdup(items), *save = NULL;

        for (char *id = strtok_r(copy, ",", &save); id;
             id = strtok_r(NULL, ",", &save))
                rf_hide_summary_add(&sum, RF_IDX_ITEM, id, strlen(id));
        rf_key_hide_prefix(&k, user);
        rf_txn_t *txn = rf_txn_new(store());
        rf_txn_put(txn, RF_CF_TOMBSTONES, k.data, k.len, sum.data, sum.len);
        assert_int_equal(rf_txn_commit(txn, err, sizeof(err)), 0);
        rf_txn_destroy(txn);
        free(copy);
        rf_buf_free(&k);
        rf_buf_free(&sum);
}

/* A read that read its reader's hides keeps them in the hide cache only
 * under the generation it took before the lookup: a hide committed right
 * after that lookup is served by the next read. Fails if the generation
 * is taken after the lookup. */
static void test_hide_written_during_a_read(void **state)
{
        (void)state;

        active_run("hw-1", "hw", "hw-u", 1, "2026-11-22T02:00:00Z", "b1,b2,b3");
        h_wait_served(&env, "hw-u0", "hw", NULL, "b1,b2,b3");
        put_hide_summary("hw-u0", "b3"); /* and drops what is cached */
        race_arm("hw-u0", "hw", "", 0);
        race.cf = RF_CF_TOMBSTONES;
        rf_buf_reset(&race.key);
        rf_key_hide_prefix(&race.key, "hw-u0");
        rf_buf_reset(&race.val);
        rf_hide_summary_add(&race.val, RF_IDX_ITEM, "b3", 2);
        rf_hide_summary_add(&race.val, RF_IDX_ITEM, "b1", 2);

        read_expect("hw-u0", "hw", "b1,b2"); /* after the lookup */
        assert_int_equal(race.key.len, 0);   /* the write came */
        read_expect("hw-u0", "hw", "b2");
        /* and a hit serves what the store holds */
        read_expect("hw-u0", "hw", "b2");
        rf_buf_free(&race.key);
        rf_buf_free(&race.val);
}

/* ---- batch lists get recompute requests -----------------------------------*/

static void test_ban_on_batch_list_queues_recompute(void **state)
{
        (void)state;
        active_run("rq-1", "rq", "rq-u", 1, "2026-11-22T02:00:00Z", "q1,q2");
        h_wait_served(&env, "rq-u0", "rq", NULL, "q1,q2");
        h_produce(&env, "recs.item-bans.v1", "q1",
                  "{\"event_id\":\"rq-ban\",\"type\":\"item_banned\","
                  "\"item_id\":\"q1\","
                  "\"occurred_at\":\"2026-11-22T04:00:00Z\"}");
        h_wait_served(&env, "rq-u0", "rq", NULL, "q2");
        /* The scorer is asked for a fresh list of the batch list's subject,
         * with the ban as the reason. */
        assert_true(
            h_count_records(&env, "recs.recompute.v1", "\"rq-ban\"", 1) >= 1);
}

/* Produces user \p user's hide of \p item, event \p event_id at \p at. */
static void hide(const char *user, const char *item, const char *event_id,
                 const char *at)
{
        char *js = h_fmt("{\"event_id\":\"%s\",\"type\":\"item_hidden\","
                         "\"user_id\":\"%s\",\"item_id\":\"%s\","
                         "\"occurred_at\":\"%s\"}",
                         event_id, user, item, at);
        h_produce(&env, "recs.user-hides.v1", user, js);
        free(js);
}

/* Invalidation notices for list \p list_id: waits for \p want of them
 * (see h_count_records()). */
static int notices(const char *list_id, int want)
{
        char *needle = h_fmt("\"list_id\":\"%s\"", list_id);
        int n = h_count_records(&env, "recs.invalidations.v1", needle, want);

        free(needle);
        return n;
}

/* ---- hides and consent reach batch lists ---------------------------------*/

/* A user's event has no index to fan out over: it reaches the lists reads
 * serve of the user, batch versions included, and no version kept for
 * rollback. */
static void test_hide_on_batch_list_notifies(void **state)
{
        (void)state;
        active_run("hr-0", "hr", "hr-u", 1, "2026-11-22T01:00:00Z", "h1,h2,h3");
        active_run("hr-1", "hr", "hr-u", 1, "2026-11-22T02:00:00Z", "h1,h2,h3");
        hide("hr-u0", "h1", "hr-hide", "2026-11-22T04:00:00Z");
        h_wait_served(&env, "hr-u0", "hr", NULL, "h2,h3");
        assert_int_equal(notices("hr-1-hr-u0", 1), 1);
        assert_int_equal(notices("hr-0-hr-u0", 0), 0);
        assert_true(
            h_count_records(&env, "recs.recompute.v1", "\"hr-hide\"", 1) >= 1);
}

/* A run active on one of its surfaces only: its other surface's version is
 * kept for rollback, not served, and not told of the hide. */
static void test_hide_skips_versions_of_other_surfaces(void **state)
{
#define HS_CTL                                                                 \
        "{\"run_id\":\"%s\",\"type\":\"%s\",\"surfaces\":[%s],"                \
        "\"expected_lists\":%d,\"generated_at\":\"%s\"}"
        char *js;
        (void)state;
        js = h_fmt(HS_CTL, "hs-1", "run_started", "\"hs-a\",\"hs-b\"", 2,
                   "2026-11-22T01:00:00Z");
        h_produce(&env, RUNS, "hs-1", js);
        free(js);
        publish("hs-u0", "hs-a", "hs-1", "hs-1-a", "2026-11-22T01:00:00Z",
                "s1,s2");
        publish("hs-u0", "hs-b", "hs-1", "hs-1-b", "2026-11-22T01:00:00Z",
                "s1,s3");
        js = h_fmt(HS_CTL, "hs-1", "run_completed", "\"hs-a\",\"hs-b\"", 2,
                   "2026-11-22T01:00:00Z");
        h_produce(&env, RUNS, "hs-1", js);
        free(js);
        wait_state("hs-1", RF_RUN_ACTIVE);
        active_run("hs-2", "hs-b", "hs-u", 1, "2026-11-22T02:00:00Z", "s1,s4");
        hide("hs-u0", "s1", "hs-hide", "2026-11-22T04:00:00Z");
        h_wait_served(&env, "hs-u0", "hs-b", NULL, "s4");
        h_wait_served(&env, "hs-u0", "hs-a", NULL, "s2");
        assert_int_equal(notices("hs-1-a", 1), 1);
        assert_int_equal(notices("hs-2-hs-u0", 1), 1);
        assert_int_equal(notices("hs-1-b", 0), 0);
}

/* ---- a fan-out notifies the served version only ---------------------------*/

static void test_ban_skips_unserved_versions(void **state)
{
        (void)state;
        /* nv-1's version stays stored for rollback once nv-2 serves: the
         * reverse index names both, and both hold nv-x. */
        active_run("nv-1", "nv", "nv-u", 1, "2026-11-21T02:00:00Z",
                   "nv-x,nv-s,nv-a");
        active_run("nv-2", "nv", "nv-u", 1, "2026-11-22T02:00:00Z",
                   "nv-x,nv-s,nv-b");
        wait_state("nv-1", RF_RUN_SUPERSEDED);
        h_wait_served(&env, "nv-u0", "nv", NULL, "nv-x,nv-s,nv-b");
        uint64_t skipped0 = atomic_load(&rf_metrics.fanout_unserved_skipped);

        h_produce(&env, BANS, "nv-x",
                  "{\"event_id\":\"nv-ban-x\",\"type\":\"item_banned\","
                  "\"item_id\":\"nv-x\","
                  "\"occurred_at\":\"2026-11-22T10:00:00Z\"}");
        /* The second ban's fan-out runs after the first's, and its notice
         * for the same subject lands after on the same partition. */
        h_produce(&env, BANS, "nv-s",
                  "{\"event_id\":\"nv-ban-s\",\"type\":\"item_banned\","
                  "\"item_id\":\"nv-s\","
                  "\"occurred_at\":\"2026-11-22T10:00:01Z\"}");
        h_wait_served(&env, "nv-u0", "nv", NULL, "nv-b");
        /* One notice for the one list reads serve, not one per version. */
        assert_int_equal(h_count_before(&env, "recs.invalidations.v1",
                                        "\"nv-ban-x\"", "\"nv-ban-s\""),
                         1);
        assert_true(atomic_load(&rf_metrics.fanout_unserved_skipped) >=
                    skipped0 + 2);
        /* Rolled back to, the old version still honours the ban. */
        rollback_expect("nv-2", NULL, "ok");
        h_wait_served(&env, "nv-u0", "nv", NULL, "nv-a");
}

/* A regional fallback list's key ends with "\0region": its run versions
 * are told apart by the run after it. A ban reaches only the version
 * served, as for a user's list. */
static void fallback_run(const char *run_id, const char *gen, const char *items)
{
        char lid[64];
        char *js;

        run_ctl(run_id, "run_started", "fb", -1, gen);
        snprintf(lid, sizeof(lid), "%s-fb", run_id);
        js = h_fmt("{\"subject_id\":\"%s\",\"surface\":\"fb\","
                   "\"region\":\"eu\",\"list_id\":\"%s\",\"run_id\":\"%s\","
                   "\"generated_at\":\"%s\",\"expires_at\":"
                   "\"2099-01-01T00:00:00Z\",\"model_version\":\"m1\","
                   "\"items\":[{\"item_id\":\"fb-x\",\"score\":0.9},"
                   "{\"item_id\":\"%s\",\"score\":0.5}]}",
                   RF_FALLBACK_SUBJECT, lid, run_id, gen, items);
        h_produce(&env, LISTS, RF_FALLBACK_SUBJECT, js);
        free(js);
        snprintf(lid, sizeof(lid), "%s-u", run_id);
        publish("fb-u0", "fb", run_id, lid, gen, "fb-x,fb-s");
        run_ctl(run_id, "run_completed", "fb", 2, gen);
}

static void test_ban_skips_unserved_fallback_versions(void **state)
{
        (void)state;
        fallback_run("fb-1", "2026-11-21T02:00:00Z", "fb-a");
        wait_state("fb-1", RF_RUN_ACTIVE);
        fallback_run("fb-2", "2026-11-22T02:00:00Z", "fb-b");
        wait_state("fb-2", RF_RUN_ACTIVE);
        wait_state("fb-1", RF_RUN_SUPERSEDED);
        h_wait_served(&env, "fb-u0", "fb", NULL, "fb-x,fb-s");

        h_produce(&env, BANS, "fb-x",
                  "{\"event_id\":\"fb-ban-x\",\"type\":\"item_banned\","
                  "\"item_id\":\"fb-x\","
                  "\"occurred_at\":\"2026-11-22T10:00:00Z\"}");
        h_wait_served(&env, "fb-u0", "fb", NULL, "fb-s");
        /* A later ban in the served fallback list: its notice lands after
         * the first ban's on the fallback subject's partition. */
        h_produce(&env, BANS, "fb-b",
                  "{\"event_id\":\"fb-ban-b\",\"type\":\"item_banned\","
                  "\"item_id\":\"fb-b\","
                  "\"occurred_at\":\"2026-11-22T10:00:01Z\"}");
        /* One notice for the fallback list reads serve (fb-2's), not one
         * per version. */
        assert_int_equal(h_count_before(&env, "recs.invalidations.v1",
                                        "\"subject_id\":\"" RF_FALLBACK_SUBJECT
                                        "\",\"surface\":\"fb\"",
                                        "\"fb-ban-b\""),
                         1);
}

/* What the recompute queue remembers of a list's valid entries
 * (valid_memory.h) is of the version then served: after a run switch and
 * back, bans met while the version was not served make it too high. */
static void ban(const char *item, const char *event_id, const char *at)
{
        char *js = h_fmt("{\"event_id\":\"%s\",\"type\":\"item_banned\","
                         "\"item_id\":\"%s\",\"occurred_at\":\"%s\"}",
                         event_id, item, at);
        h_produce(&env, BANS, item, js);
        free(js);
}

/* Waits until counter \p c reaches \p n. */
static void wait_count(atomic_uint_fast64_t *c, uint64_t n)
{
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;

        while (atomic_load(c) < n) {
                assert_true(rf_mono_ms() < deadline);
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

/* Waits until \p n fan-out jobs were scheduled since the process started
 * (their events applied). */
static void wait_scheduled(uint64_t n)
{
        wait_count(&rf_metrics.fanout_jobs_scheduled, n);
}

/* Waits until every fan-out job scheduled so far finished. */
static void wait_fanout_idle(void)
{
        wait_count(&rf_metrics.fanout_jobs_done,
                   atomic_load(&rf_metrics.fanout_jobs_scheduled));
}

/* Publishes run \p run_id (one subject, \p prefix "0", on \p surface) with
 * \p items, bans the first item and waits until its fan-out counted the
 * list's valid entries (\p rest are then served). */
static void run_counted(const char *run_id, const char *surface,
                        const char *prefix, const char *gen, const char *items,
                        const char *at, const char *rest)
{
        char subject[64], item[64], event_id[80];

        snprintf(subject, sizeof(subject), "%s0", prefix);
        snprintf(item, sizeof(item), "%.*s", (int)strcspn(items, ","), items);
        snprintf(event_id, sizeof(event_id), "ban-%s", item);
        active_run(run_id, surface, prefix, 1, gen, items);
        ban(item, event_id, at);
        h_wait_served(&env, subject, surface, NULL, rest);
        wait_fanout_idle();
}

static void test_rollback_forgets_valid_counts(void **state)
{
        (void)state;
        /* min_valid 3 on surface ep */
        run_counted("ep-1", "ep", "ep-u", "2026-11-21T02:00:00Z",
                    "ep-a,ep-b,ep-c,ep-d,ep-e,ep-f", "2026-11-22T10:00:00Z",
                    "ep-b,ep-c,ep-d,ep-e,ep-f"); /* 5 valid */
        active_run("ep-2", "ep", "ep-u", 1, "2026-11-22T02:00:00Z",
                   "ep-z1,ep-z2,ep-z3,ep-z4");
        h_wait_served(&env, "ep-u0", "ep", NULL, "ep-z1,ep-z2,ep-z3,ep-z4");
        /* ep-1's version is not served: its index entries are skipped
         * (the jobs must finish before the rollback) */
        uint64_t sched = atomic_load(&rf_metrics.fanout_jobs_scheduled);
        ban("ep-b", "ep-ban-b", "2026-11-22T10:00:01Z");
        ban("ep-c", "ep-ban-c", "2026-11-22T10:00:02Z");
        ban("ep-d", "ep-ban-d", "2026-11-22T10:00:03Z");
        /* applied (nothing to see: not served), then fanned out */
        wait_scheduled(sched + 3);
        wait_fanout_idle();
        rollback_expect("ep-2", NULL, "ok");
        h_wait_served(&env, "ep-u0", "ep", NULL, "ep-e,ep-f");
        /* 1 valid left: urgent (5 - 1 remembered would say 4) */
        ban("ep-e", "ep-ban-e", "2026-11-22T10:00:04Z");
        h_wait_served(&env, "ep-u0", "ep", NULL, "ep-f");
        assert_int_equal(h_count_records(&env, "recs.recompute.v1",
                                         "\"priority\":\"urgent\"", 1),
                         1);
}

/* A hide reaches a user's incremental lists only: what the queue remembers
 * of the user's run-served lists must not outlive it. */
static void test_hides_forget_valid_counts(void **state)
{
        (void)state;
        /* min_valid 3 on surface ep */
        run_counted("ep-3", "ep", "ep-v", "2026-11-23T02:00:00Z",
                    "ep-g,ep-h,ep-i,ep-j,ep-k,ep-l", "2026-11-23T10:00:00Z",
                    "ep-h,ep-i,ep-j,ep-k,ep-l"); /* 5 valid */
        hide("ep-v0", "ep-h", "ep-hide-0", "2026-11-23T10:00:01Z");
        hide("ep-v0", "ep-i", "ep-hide-1", "2026-11-23T10:00:01Z");
        h_wait_served(&env, "ep-v0", "ep", NULL, "ep-j,ep-k,ep-l");
        /* 2 valid left: urgent (5 - 1 remembered would say 4) */
        ban("ep-j", "ep-ban-j", "2026-11-23T10:00:02Z");
        h_wait_served(&env, "ep-v0", "ep", NULL, "ep-k,ep-l");
        assert_int_equal(
            h_count_records(&env, "recs.recompute.v1",
                            "\"subject_id\":\"ep-v0\",\"surfaces\":[\"ep\"],"
                            "\"mode\":\"incremental\",\"priority\":"
                            "\"urgent\"",
                            1),
            1);
}

static void consent_of(const char *user, const char *scope, const char *type,
                       const char *event_id, const char *at)
{
        char *js = h_fmt("{\"event_id\":\"%s\",\"type\":\"%s\","
                         "\"user_id\":\"%s\",\"scope\":\"%s\","
                         "\"occurred_at\":\"%s\"}",
                         event_id, type, user, scope, at);
        h_produce(&env, "recs.consent.v1", user, js);
        free(js);
}

static void consent(const char *type, const char *event_id, const char *at)
{
        consent_of("eq-c0", "email", type, event_id, at);
}

/* Waits until nothing in the store holds \p subject. */
static void wait_purged(const char *subject)
{
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;

        while (h_store_contains(&env, subject) && rf_mono_ms() < deadline) {
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        assert_false(h_store_contains(&env, subject));
}

/* While consent blocks a user's lists, their recompute hooks are skipped:
 * bans then never lower what the queue remembers of them. */
static void test_consent_forgets_valid_counts(void **state)
{
        const char *urgent = "\"subject_id\":\"eq-c0\",\"surfaces\":[\"eq\"],"
                             "\"mode\":\"incremental\",\"priority\":"
                             "\"urgent\"";
        (void)state;
        /* min_valid 3, consent scope email on surface eq */
        run_counted("eq-1", "eq", "eq-c", "2026-11-23T02:00:00Z",
                    "eq-a,eq-b,eq-c,eq-d,eq-e,eq-f", "2026-11-23T11:00:00Z",
                    "eq-b,eq-c,eq-d,eq-e,eq-f"); /* 5 valid */
        consent("consent_revoked", "eq-rv", "2026-11-23T11:00:01Z");
        h_wait_served(&env, "eq-c0", "eq", NULL, "<consent_blocked>");
        uint64_t sched = atomic_load(&rf_metrics.fanout_jobs_scheduled);
        ban("eq-b", "eq-ban-b", "2026-11-23T11:00:02Z");
        ban("eq-c", "eq-ban-c", "2026-11-23T11:00:03Z");
        wait_scheduled(sched + 2); /* and their jobs done, while blocked */
        wait_fanout_idle();
        consent("consent_granted", "eq-gr", "2026-11-23T11:00:04Z");
        h_wait_served(&env, "eq-c0", "eq", NULL, "eq-d,eq-e,eq-f");
        wait_fanout_idle();
        /* 2 valid left: urgent (5 - 1 remembered would say 4). The first
         * urgent request for eq-c0: none came before. */
        ban("eq-d", "eq-ban-d", "2026-11-23T11:00:05Z");
        h_wait_served(&env, "eq-c0", "eq", NULL, "eq-e,eq-f");
        assert_int_equal(h_count_records(&env, "recs.recompute.v1", urgent, 1),
                         1);
}

/* ---- consent purge reaches run versions ----------------------------------*/

static void test_consent_purges_run_versions(void **state)
{
        const char *subj = "cp-subj-4e1d0";
        (void)state;
        /* One published version and one staged (never completed) run, both
         * holding the subject's lists. */
        active_run("cp-1", "cp", "cp-subj-4e1d", 1, "2026-11-22T02:00:00Z",
                   "c1,c2");
        h_wait_served(&env, subj, "cp", NULL, "c1,c2");
        run_ctl("cp-2", "run_started", "cp", -1, "2026-11-22T03:00:00Z");
        publish(subj, "cp", "cp-2", "cp-2-l", "2026-11-22T03:00:00Z", "c3");

        consent_of(subj, "all", "consent_revoked", "cp-e1",
                   "2026-11-22T04:00:00Z");
        h_wait_served(&env, subj, "cp", NULL, "<consent_blocked>");
        /* The served version's list is told of it (once); the staged one
         * is not served. */
        assert_int_equal(notices("cp-1-cp-subj-4e1d0", 1), 1);
        assert_int_equal(notices("cp-2-l", 0), 0);
        /* Nothing keyed or valued by the subject id remains: lists of both
         * versions and their index entries are gone (notices in the outbox
         * hold it until acknowledged). */
        wait_purged(subj);
}

/* ---- the read path's list cache -------------------------------------------*/

static uint64_t cache_hits(void)
{
        rf_list_cache_stats_t st;

        rf_list_cache_stats(rf_store_list_cache(store()), &st);
        return st.hits;
}

/* The list served to a read of \p limit entries ("<no_list>", ...) and its
 * list_id. Caller frees. */
static char *served_id(const char *subject, const char *surface, size_t limit,
                       char *list_id, size_t size)
{
        rf_read_req_t req = { subject, surface, NULL, limit };
        rf_read_result_t res;
        rf_buf_t out = { 0 };

        assert_int_equal(rf_read_list(store(), &env.conf, &req, &res), 0);
        snprintf(list_id, size, "%s", res.list ? res.list->list_id : "");
        for (size_t i = 0; i < res.served_cnt; i++)
                rf_buf_printf(&out, "%s%s", i ? "," : "",
                              res.served[i].entry->item_id);
        rf_read_result_clear(&res);
        return out.data ? out.data : rf_strdup("");
}

static void assert_served_id(const char *subject, size_t limit,
                             const char *items, const char *list_id)
{
        char id[64];
        char *got = served_id(subject, "lc", limit, id, sizeof(id));

        assert_string_equal(got, items);
        assert_string_equal(id, list_id);
        free(got);
}

/* The version key of \p subject's list on surface "lc" in run \p run_id. */
static void lc_version_key(rf_buf_t *vk, const char *run_id,
                           const char *subject)
{
        rf_buf_t lk = { 0 };

        rf_key_list(&lk, subject, "lc", "");
        rf_key_version(vk, run_id, strlen(run_id), lk.data, lk.len);
        rf_buf_free(&lk);
}

/* Whether the list cache holds that version. */
static int cached(const char *run_id, const char *subject)
{
        rf_buf_t vk = { 0 };
        rf_list_t *l = NULL;
        size_t total;

        lc_version_key(&vk, run_id, subject);
        int hit = rf_list_cache_get(rf_store_list_cache(store()), vk.data,
                                    vk.len, 0, &l, &total, NULL);
        rf_list_destroy(l);
        rf_buf_free(&vk);
        return hit;
}

/* Whether the store holds that version. */
static int stored(const char *run_id, const char *subject)
{
        rf_buf_t vk = { 0 }, v = { 0 };

        lc_version_key(&vk, run_id, subject);
        int r = rf_store_get(store(), RF_CF_VERSIONS, vk.data, vk.len, &v);
        rf_buf_free(&vk);
        rf_buf_free(&v);
        return r == 0;
}

static void test_list_cache(void **state)
{
        const char *all = "k0,k1,k2,k3,k4,k5,k6,k7,k8,k9,k10,k11,k12,k13,k14";
        (void)state;

        assert_non_null(rf_store_list_cache(store()));
        active_run("lc-1", "lc", "lc-u", 2, "2026-11-22T02:00:00Z", all);
        h_wait_served(&env, "lc-u0", "lc", NULL, all);

        /* A read of 2 decodes a head of 11 entries (read.c) and caches it;
         * the next read of the list is served from the cache. */
        assert_served_id("lc-u1", 2, "k0,k1", "lc-1-lc-u1");
        uint64_t hits = cache_hits();
        assert_served_id("lc-u1", 2, "k0,k1", "lc-1-lc-u1");
        assert_true(cache_hits() > hits);

        /* Tombstones are checked on a cached list as on any: with the
         * head's 11 entries banned, the read goes past the cached head and
         * reads the rest of the list from the store. */
        for (int i = 0; i <= 10; i++) {
                char item[8], id[16];
                snprintf(item, sizeof(item), "k%d", i);
                snprintf(id, sizeof(id), "lc-ban-%d", i);
                char *js = h_fmt("{\"event_id\":\"%s\",\"type\":"
                                 "\"item_banned\",\"item_id\":\"%s\","
                                 "\"occurred_at\":\"2026-11-22T10:00:00Z\"}",
                                 id, item);
                h_produce(&env, BANS, item, js);
                free(js);
        }
        h_wait_served(&env, "lc-u0", "lc", NULL, "k11,k12,k13,k14");
        hits = cache_hits();
        assert_served_id("lc-u1", 2, "k11,k12", "lc-1-lc-u1");
        assert_true(cache_hits() > hits);

        /* A cached head that is not the stored list (as if the run had
         * been switched during the read): the read past it notices, starts
         * over from the store and caches what it read. Mixing the two
         * would serve the stored list's banned k10 in the place of the
         * head's zz. */
        rf_buf_t vk = { 0 };
        rf_rejection_t rej;
        rf_list_t *fake = NULL;
        char *js =
            list_json("lc-u1", "lc", "lc-1", "fake", "2026-11-22T02:00:00Z",
                      "k0,k1,k2,k3,k4,k5,k6,k7,k8,k9,zz");
        assert_int_equal(
            rf_list_from_json(NULL, 0, js, strlen(js), NULL, &fake, &rej), 0);
        free(js);
        lc_version_key(&vk, "lc-1", "lc-u1");
        /* (a version written meanwhile, elsewhere, would skip the put) */
        int64_t deadline = rf_mono_ms() + H_DEADLINE_MS;
        rf_list_t *c = NULL;
        do {
                size_t tot;
                rf_list_destroy(c);
                c = NULL;
                rf_list_cache_t *lc = rf_store_list_cache(store());
                rf_list_cache_put(lc, vk.data, vk.len, rf_list_cache_gen(lc),
                                  fake, 15, 0);
                rf_list_cache_get(lc, vk.data, vk.len, 0, &c, &tot, NULL);
        } while ((!c || strcmp(c->list_id, "fake") != 0) &&
                 rf_mono_ms() < deadline);
        assert_non_null(c);
        assert_string_equal(c->list_id, "fake");
        rf_list_destroy(c);
        rf_list_destroy(fake);
        rf_buf_free(&vk);
        assert_served_id("lc-u1", 2, "k11,k12", "lc-1-lc-u1");
        hits = cache_hits();
        assert_served_id("lc-u1", 2, "k11,k12", "lc-1-lc-u1");
        assert_true(cache_hits() > hits);

        /* A run staging on the surface writes versions of its own: the
         * active run's cached ones stay. */
        run_ctl("lc-2", "run_started", "lc", -1, "2026-11-23T02:00:00Z");
        publish("lc-u1", "lc", "lc-2", "lc-2-l", "2026-11-23T02:00:00Z", "z1");
        /* a sentinel behind it on the subject's partition: once it
         * serves, the staging batch has committed and forgotten */
        publish("lc-u1", "lc-side", NULL, "lc-side-l", "2026-11-23T02:00:00Z",
                "s1");
        h_wait_served(&env, "lc-u1", "lc-side", NULL, "s1");
        assert_true(stored("lc-2", "lc-u1"));
        hits = cache_hits();
        assert_served_id("lc-u1", 2, "k11,k12", "lc-1-lc-u1");
        assert_true(cache_hits() > hits);

        /* A consent purge deletes the subject's versions: once consent is
         * granted again, the cached version does not come back. */
        consent_of("lc-u0", "all", "consent_revoked", "lc-c1",
                   "2026-11-22T11:00:00Z");
        h_wait_served(&env, "lc-u0", "lc", NULL, "<consent_blocked>");
        wait_purged("lc-u0");
        /* and the purge's commit took its versions out of the cache too
         * (no read has filled it since: consent blocks them), and only
         * them */
        deadline = rf_mono_ms() + H_DEADLINE_MS;
        while (cached("lc-1", "lc-u0") && rf_mono_ms() < deadline) {
                struct timespec ts = { 0, 5 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        assert_false(cached("lc-1", "lc-u0"));
        assert_true(cached("lc-1", "lc-u1"));
        consent_of("lc-u0", "all", "consent_granted", "lc-c2",
                   "2026-11-22T12:00:00Z");
        h_wait_served(&env, "lc-u0", "lc", NULL, "<no_list>");
}

/* ---- bulk loader --------------------------------------------------------*/

static char *write_file(const char *name, const char *text)
{
        rf_buf_t p = { 0 };
        FILE *fp;

        rf_buf_printf(&p, "%s/%s", env.dir, name);
        fp = fopen(p.data, "w");
        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
        return p.data;
}

static int load(const char *run_id, const char *file, FILE *report,
                char *result, size_t size)
{
        char errstr[512];
        rf_buf_t job = { 0 };
        rf_run_info_t ri;
        int rc;
        rf_bulkload_opts_t o = { .run_id = run_id,
                                 .expected_lists = -1,
                                 .report = report,
                                 .sst_max_bytes = 4096 };

        rf_buf_printf(&job, "%s/job-%s", env.dir, run_id);
        assert_int_equal(mkdir(job.data, 0755), 0);
        rc = rf_bulkload_build(store(), &env.conf, &o, file, job.data, &ri,
                               errstr, sizeof(errstr));
        assert_int_equal(rc, 0);
        rf_run_info_clear(&ri);
        rc = rf_runs_run_job(NULL, &env.conf, job.data, "load", result, size,
                             errstr, sizeof(errstr));
        rf_buf_free(&job);
        return rc;
}

/* Runs the built load job in \p job as recfresh load does; its result
 * must hold \p expect. */
static void load_job_expect(const char *job, const char *expect)
{
        char result[1024], errstr[512];

        assert_int_equal(rf_runs_run_job(NULL, &env.conf, job, "load", result,
                                         sizeof(result), errstr,
                                         sizeof(errstr)),
                         0);
        if (!strstr(result, expect))
                fail_msg("load: expected \"%s\" in: %s", expect, result);
}

static void test_bulk_load_same_as_topic(void **state)
{
        char result[1024], errstr[128];
        rf_buf_t text = { 0 };
        (void)state;

        /* a small sort buffer: the load spills and merges many runs */
        assert_int_equal(rf_config_set(&env.conf, "load.memory_mb", "8", errstr,
                                       sizeof(errstr)),
                         0);
        run_ctl("bt-1", "run_started", "bt", -1, "2026-11-22T02:00:00Z");
        for (int i = 0; i < 30; i++) {
                char subj[32], lid[32], items[128];
                snprintf(subj, sizeof(subj), "bl-u%d", i);
                snprintf(lid, sizeof(lid), "L%d", i);
                snprintf(items, sizeof(items), "it%d,it%d,common", i, i + 1);
                publish(subj, "bt", "bt-1", lid, "2026-11-22T02:00:00Z", items);
                /* the same list for the load, on surface "bl"; in reverse
                 * order, so the loader has to sort */
                char *js = list_json(subj, "bl", NULL, lid,
                                     "2026-11-22T02:00:00Z", items);
                rf_buf_t line = { 0 };
                rf_buf_printf(&line, "%s\n%s", js, text.data ? text.data : "");
                rf_buf_free(&text);
                text = line;
                free(js);
        }
        run_ctl("bt-1", "run_completed", "bt", 30, "2026-11-22T02:00:00Z");
        char *file = write_file("bl.ndjson", text.data);
        assert_int_equal(load("bl-1", file, NULL, result, sizeof(result)), 0);
        assert_non_null(strstr(result, "ok"));
        wait_state("bt-1", RF_RUN_ACTIVE);
        wait_state("bl-1", RF_RUN_ACTIVE);
        for (int i = 0; i < 30; i++) {
                char subj[32];
                snprintf(subj, sizeof(subj), "bl-u%d", i);
                char *a = h_served(&env, subj, "bt", NULL);
                char *b = h_served(&env, subj, "bl", NULL);
                assert_string_equal(a, b);
                assert_string_not_equal(a, "<no_list>");
                free(a);
                free(b);
        }
        /* the reverse index holds the loaded lists too: the ban below
         * produces notices for both runs' lists (fan-out) */
        rf_buf_free(&text);
        free(file);
}

/* Builds load job \p tag (file \p tag.ndjson holding \p text, directory
 * job-\p tag) of run \p run_id into *job, as `recfresh load` does beside a
 * daemon, without handing it over; *ri: what the build counted. */
static void build_job(const char *tag, const char *run_id, const char *text,
                      rf_buf_t *job, rf_run_info_t *ri)
{
        char errstr[512];
        char *name = h_fmt("%s.ndjson", tag);
        char *file = write_file(name, text);
        rf_bulkload_opts_t o = { .run_id = run_id, .expected_lists = -1 };

        rf_buf_printf(job, "%s/job-%s", env.dir, tag);
        assert_int_equal(mkdir(job->data, 0755), 0);
        assert_int_equal(rf_bulkload_build(store(), &env.conf, &o, file,
                                           job->data, ri, errstr,
                                           sizeof(errstr)),
                         0);
        free(name);
        free(file);
}

static void test_ban_during_load(void **state)
{
        rf_buf_t job = { 0 };
        rf_run_info_t ri;
        (void)state;

        char *js = list_json("bd-u0", "bd", NULL, "bd0", "2026-11-22T02:00:00Z",
                             "keep,banned-during");
        char *text = h_fmt("%s\n", js);
        build_job("bd", "bd-1", text, &job, &ri);
        assert_int_equal(ri.stats[0].invalid, 0); /* not banned yet */
        rf_run_info_clear(&ri);
        /* the ban lands while the load is in flight */
        h_produce(&env, BANS, "banned-during",
                  "{\"event_id\":\"bd-ban\",\"type\":\"item_banned\","
                  "\"item_id\":\"banned-during\","
                  "\"occurred_at\":\"2026-11-22T10:00:00Z\"}");
        load_job_expect(job.data, "ok");
        h_wait_served(&env, "bd-u0", "bd", NULL, "keep");
        rf_buf_free(&job);
        free(js);
        free(text);
}

/* Whether run \p run_id holds a version of \p subject's list on
 * \p surface. */
static int version_stored(const char *run_id, const char *subject,
                          const char *surface)
{
        rf_buf_t lk = { 0 }, vk = { 0 }, v = { 0 };

        rf_key_list(&lk, subject, surface, "");
        rf_key_version(&vk, run_id, strlen(run_id), lk.data, lk.len);
        int r = rf_store_get(store(), RF_CF_VERSIONS, vk.data, vk.len, &v);
        rf_buf_free(&lk);
        rf_buf_free(&vk);
        rf_buf_free(&v);
        return r == 0;
}

/* Whether a reverse-index entry names item \p item. */
static int item_indexed(const char *item)
{
        rf_buf_t p = { 0 };

        rf_key_index_prefix(&p, RF_IDX_ITEM, item);
        rf_iter_t *it = rf_iter_new(store(), NULL, RF_CF_INDEX, p.data, p.len);
        int found = rf_iter_valid(it);
        rf_iter_destroy(it);
        rf_buf_free(&p);
        return found;
}

/* Consent revoked while a load is in flight (after its build checked
 * consent, before the daemon takes the job): the subject's list built
 * before the revocation is never served, not even after consent is
 * granted again, and neither its version nor its index entries stay. */
static void test_consent_revoked_during_load(void **state)
{
        const char *gone = "cr-gone-5b2e", *back = "cr-back-5b2e";
        rf_buf_t job = { 0 };
        rf_run_info_t ri;
        (void)state;

        char *a = list_json(gone, "cr", NULL, "cr-l0", "2026-11-22T02:00:00Z",
                            "cr-gone-item");
        char *b = list_json(back, "cr", NULL, "cr-l1", "2026-11-22T02:00:00Z",
                            "cr-back-item");
        char *c = list_json("cr-keep", "cr", NULL, "cr-l2",
                            "2026-11-22T02:00:00Z", "cr-keep-item");
        char *text = h_fmt("%s\n%s\n%s\n", a, b, c);
        build_job("cr", "cr-1", text, &job, &ri);
        assert_int_equal(ri.stats[0].lists, 3); /* consent not revoked yet */
        rf_run_info_clear(&ri);

        /* Both revocations land while the job waits; one is granted again
         * before the daemon takes the job. */
        consent_of(gone, "all", "consent_revoked", "cr-e1",
                   "2026-11-22T10:00:00Z");
        consent_of(back, "personalization", "consent_revoked", "cr-e2",
                   "2026-11-22T10:00:00Z");
        h_wait_served(&env, gone, "cr", NULL, "<consent_blocked>");
        h_wait_served(&env, back, "cr", NULL, "<consent_blocked>");
        consent_of(back, "personalization", "consent_granted", "cr-e3",
                   "2026-11-22T10:00:01Z");
        h_wait_served(&env, back, "cr", NULL, "<no_list>");

        load_job_expect(job.data, "ok: run cr-1 active (1 lists)");
        h_wait_served(&env, "cr-keep", "cr", NULL, "cr-keep-item");
        char *s = h_served(&env, back, "cr", NULL);
        assert_string_equal(s, "<no_list>");
        free(s);
        s = h_served(&env, gone, "cr", NULL);
        assert_string_equal(s, "<consent_blocked>");
        free(s);
        assert_false(version_stored("cr-1", back, "cr"));
        assert_false(item_indexed("cr-back-item"));
        assert_false(item_indexed("cr-gone-item"));
        assert_int_equal(rf_runs_get(store(), NULL, "cr-1", &ri), 0);
        assert_int_equal(ri.blocked, 2);
        rf_run_info_clear(&ri);
        /* Nothing holds the subject still revoked (its pending recompute
         * requests were dropped with its consent). */
        wait_purged(gone);

        /* Granted again: the list from before the revocation stays gone. */
        consent_of(gone, "all", "consent_granted", "cr-e4",
                   "2026-11-22T10:00:02Z");
        h_wait_served(&env, gone, "cr", NULL, "<no_list>");
        assert_false(version_stored("cr-1", gone, "cr"));
        rf_buf_free(&job);
        free(a);
        free(b);
        free(c);
        free(text);
}

static void test_malformed_line_reported(void **state)
{
        char result[1024], buf[2048] = "";
        (void)state;

        char *a =
            list_json("ml-u0", "ml", NULL, "m0", "2026-11-22T02:00:00Z", "x");
        char *b =
            list_json("ml-u1", "ml", NULL, "m1", "2026-11-22T02:00:00Z", "y");
        char *text = h_fmt("%s\n\n{\"subject_id\": oops\n%s\n", a, b);
        char *file = write_file("ml.ndjson", text);
        FILE *rep = tmpfile();
        assert_non_null(rep);
        assert_int_equal(load("ml-1", file, rep, result, sizeof(result)), 0);
        rewind(rep);
        size_t n = fread(buf, 1, sizeof(buf) - 1, rep);
        buf[n] = '\0';
        fclose(rep);
        char *want = h_fmt("%s:3: invalid_json", file);
        assert_non_null(strstr(buf, want));
        /* 1 malformed of 3 lines is over runs.max_malformed_pct (1) */
        assert_non_null(strstr(result, "failed_validation"));
        assert_non_null(strstr(result, "malformed"));
        char *s = h_served(&env, "ml-u0", "ml", NULL);
        assert_string_equal(s, "<no_list>");
        free(s);
        free(want);
        free(a);
        free(b);
        free(text);
        free(file);
}

/* Builds a job for \p file with load.threads = \p threads. @returns the
 * encoded manifest and sets *reportp to what was reported. */
static char *build_with_threads(const char *file, const char *threads,
                                const char *job_name, rf_buf_t *manifest)
{
        char errstr[512];
        rf_buf_t job = { 0 };
        rf_run_info_t ri;
        FILE *rep = tmpfile();
        char *report = rf_calloc(1, 1 << 16);

        assert_non_null(rep);
        assert_int_equal(rf_config_set(&env.conf, "load.threads", threads,
                                       errstr, sizeof(errstr)),
                         0);
        rf_bulkload_opts_t o = { .run_id = "pl-1",
                                 .expected_lists = -1,
                                 .report = rep };
        rf_buf_printf(&job, "%s/%s", env.dir, job_name);
        assert_int_equal(mkdir(job.data, 0755), 0);
        assert_int_equal(rf_bulkload_build(store(), &env.conf, &o, file,
                                           job.data, &ri, errstr,
                                           sizeof(errstr)),
                         0);
        rf_run_info_encode(&ri, manifest);
        rf_run_info_clear(&ri);
        rewind(rep);
        size_t n = fread(report, 1, (1 << 16) - 1, rep);
        report[n] = '\0';
        fclose(rep);
        rf_buf_free(&job);
        return report;
}

/* Many batches of lines parsed on several threads, and sort chunks spilled
 * by a background thread: the job is the one a single parse thread builds
 * (same manifest, same report in line order), and it serves what the file
 * says, the newer of two lists for one key included. */
static void test_parallel_load_same_as_one_thread(void **state)
{
        char errstr[128];
        rf_buf_t text = { 0 }, m1 = { 0 }, m3 = { 0 };
        const int lists = 1200;
        (void)state;

        assert_int_equal(rf_config_set(&env.conf, "load.memory_mb", "8", errstr,
                                       sizeof(errstr)),
                         0);
        for (int i = 0; i < lists; i++) {
                char subj[32], lid[32];
                rf_buf_t items = { 0 };
                int u = (i * 7919) % lists; /* out of order */
                snprintf(subj, sizeof(subj), "pl-u%05d", u);
                snprintf(lid, sizeof(lid), "P%d", i);
                /* 100 long ids: several sort chunks of 4 MiB */
                for (int j = 0; j < 100; j++)
                        rf_buf_printf(&items, "%sitem-%05d-%s", j ? "," : "",
                                      (u + j * 37) % 5000,
                                      "padding-to-make-the-entries-long");
                const char *gen =
                    i == 900 ? "2026-11-22T03:00:00Z" : "2026-11-22T02:00:00Z";
                char *js = list_json(subj, "pl", NULL, lid, gen, items.data);
                rf_buf_printf(&text, "%s\n", js);
                free(js);
                rf_buf_free(&items);
                /* lines 301, 703 and 1104 (1-based, counting these extra
                 * lines) are malformed; line 502 is blank */
                if (i == 299 || i == 699 || i == 1099)
                        rf_buf_printf(&text, "{\"subject_id\": nope\n");
                if (i == 499)
                        rf_buf_printf(&text, "\n");
        }
        /* a second list for the subject of line 1: older, so it loses */
        char *old = list_json("pl-u00000", "pl", NULL, "P-old",
                              "2026-11-22T01:00:00Z", "old-item");
        rf_buf_printf(&text, "%s\n", old);
        free(old);
        char *file = write_file("pl.ndjson", text.data);

        char *r1 = build_with_threads(file, "1", "job-pl-t1", &m1);
        char *r3 = build_with_threads(file, "3", "job-pl-t3", &m3);
        assert_string_equal(r1, r3);
        assert_int_equal(m1.len, m3.len);
        assert_memory_equal(m1.data, m3.data, m1.len);
        /* reported in line order, with the right line numbers */
        char *a = h_fmt("%s:301: invalid_json", file);
        char *b = h_fmt("%s:703: invalid_json", file);
        char *c = h_fmt("%s:1104: invalid_json", file);
        assert_non_null(strstr(r3, a));
        assert_true(strstr(r3, a) < strstr(r3, b));
        assert_true(strstr(r3, b) < strstr(r3, c));
        rf_run_info_t ri;
        assert_int_equal(rf_run_info_decode(m3.data, m3.len, &ri), 0);
        assert_int_equal(ri.malformed, 3);
        rf_run_info_clear(&ri);

        char *job = h_fmt("%s/job-pl-t3", env.dir);
        load_job_expect(job, "ok");
        free(job);
        wait_state("pl-1", RF_RUN_ACTIVE);
        /* line 1 is subject 0 (P0): it beats the older P-old */
        char *s0 = h_served(&env, "pl-u00000", "pl", NULL);
        assert_non_null(strstr(s0, "item-00000-"));
        assert_null(strstr(s0, "old-item"));
        /* every subject's first item is its own */
        for (int u = 0; u < lists; u += 97) {
                char subj[32], want[32];
                snprintf(subj, sizeof(subj), "pl-u%05d", u);
                snprintf(want, sizeof(want), "item-%05d-", u % 5000);
                char *got = h_served(&env, subj, "pl", NULL);
                assert_memory_equal(got, want, strlen(want));
                free(got);
        }
        assert_int_equal(rf_config_set(&env.conf, "load.threads", "0", errstr,
                                       sizeof(errstr)),
                         0);
        free(s0);
        free(a);
        free(b);
        free(c);
        free(r1);
        free(r3);
        free(file);
        rf_buf_free(&text);
        rf_buf_free(&m1);
        rf_buf_free(&m3);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_staged_invisible),
                cmocka_unit_test(test_unannounced_staged),
                cmocka_unit_test(test_atomic_switch),
                cmocka_unit_test(test_failed_validation_keeps_old),
                cmocka_unit_test(test_rollback),
                cmocka_unit_test(test_rollback_per_surface),
                cmocka_unit_test(test_rejected_run_not_restored),
                cmocka_unit_test(test_rollback_without_history),
                cmocka_unit_test(test_coverage_huge_expected),
                cmocka_unit_test(test_spool_takes_only_jobs),
                cmocka_unit_test(test_newer_wins),
                cmocka_unit_test(test_incremental_written_during_a_read),
                cmocka_unit_test(test_hide_written_during_a_read),
                cmocka_unit_test(test_consent_purges_run_versions),
                cmocka_unit_test(test_list_cache),
                cmocka_unit_test(test_ban_on_batch_list_queues_recompute),
                cmocka_unit_test(test_ban_skips_unserved_versions),
                cmocka_unit_test(test_hide_on_batch_list_notifies),
                cmocka_unit_test(test_hide_skips_versions_of_other_surfaces),
                cmocka_unit_test(test_ban_skips_unserved_fallback_versions),
                cmocka_unit_test(test_rollback_forgets_valid_counts),
                cmocka_unit_test(test_hides_forget_valid_counts),
                cmocka_unit_test(test_consent_forgets_valid_counts),
                cmocka_unit_test(test_bulk_load_same_as_topic),
                cmocka_unit_test(test_ban_during_load),
                cmocka_unit_test(test_consent_revoked_during_load),
                cmocka_unit_test(test_malformed_line_reported),
                cmocka_unit_test(test_parallel_load_same_as_one_thread),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
