/*
 * recfresh - `recfresh refresh --full | --incremental`: a refresh run on
 * demand, beside a running daemon (or a stopped one).
 *
 * RocksDB allows one writer per store, and the daemon is it. So this
 * command reads the daemon's store as a secondary instance (lists, consent,
 * activity) and keeps what it writes in a small store of its own,
 * <data_dir>.refresh (--state-dir): its run records (cursor, state) and its
 * own recompute queue. It runs the very code the daemon's schedules run
 * (refresh.c, recompute.c): requests are queued with the cursor in one
 * write, produced with the full (or normal) rate limit, and deleted only
 * once the broker acknowledged them. Killed halfway, the same command with
 * the same --run-id resumes where it stopped, sends unacknowledged requests
 * again with their request_id, and sends nothing twice otherwise; a run id
 * that finished sends nothing.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/cli.h"
#include "recfresh/kafka.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/refresh.h"

enum {
        OPT_FULL = 1100,
        OPT_INCREMENTAL,
        OPT_RUN_ID,
        OPT_ACTIVE_WITHIN,
        OPT_STATE_DIR,
        OPT_HELP
};

static const struct option refresh_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "full", no_argument, NULL, OPT_FULL },
        { "incremental", no_argument, NULL, OPT_INCREMENTAL },
        { "run-id", required_argument, NULL, OPT_RUN_ID },
        { "active-within", required_argument, NULL, OPT_ACTIVE_WITHIN },
        { "state-dir", required_argument, NULL, OPT_STATE_DIR },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

static void usage(FILE *fp)
{
        fprintf(fp,
                "Usage: recfresh refresh --full [--run-id R]\n"
                "       recfresh refresh --incremental [--active-within 1h] "
                "[--run-id R]\n"
                "Sends recompute requests on recs.recompute.v1: mode full for "
                "every subject\nwith a servable list and consent (at "
                "recompute.full_rate_per_s), or mode\nactive for subjects "
                "active within the window whose lists are expired,\nexpiring, "
                "degraded or old (at recompute.rate_per_s). Resumable: run "
                "the\nsame command (same --run-id) again after a crash; a "
                "finished run id sends\nnothing. Reads the daemon's store; "
                "keeps its own state in\n<data_dir>.refresh.\n\n"
                "  --run-id R            default: full-manual-<now> / "
                "active-manual-<now>\n"
                "  --active-within DUR   default: recompute.active_within\n"
                "  --state-dir DIR       default: "
                "<data_dir>.refresh\n" RF_CLI_COMMON_HELP);
}

/* Parses "90s", "1h", "250ms", "15m" into ms. @returns 0 or -1. */
static int parse_dur(const char *s, int64_t *ms)
{
        char *end;
        long long v = strtoll(s, &end, 10);

        if (end == s || v < 0)
                return -1;
        if (!strcmp(end, "ms") || !*end)
                *ms = v;
        else if (!strcmp(end, "s"))
                *ms = v * 1000;
        else if (!strcmp(end, "m"))
                *ms = v * 60000;
        else if (!strcmp(end, "h"))
                *ms = v * 3600000;
        else if (!strcmp(end, "d"))
                *ms = v * 86400000;
        else
                return -1;
        return 0;
}

static rd_kafka_t *producer_new(const rf_config_t *conf, rf_queue_t *q)
{
        char errstr[512];
        rd_kafka_conf_t *pc =
            rf_kafka_conf_new(conf, NULL, "refresh", errstr, sizeof(errstr));
        rd_kafka_t *rk;

        if (!pc || rf_kafka_conf_set(pc, "enable.idempotence", "true", errstr,
                                     sizeof(errstr))) {
                fprintf(stderr, "recfresh refresh: %s\n", errstr);
                if (pc)
                        rd_kafka_conf_destroy(pc);
                return NULL;
        }
        rf_queue_conf_set(q, pc);
        if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr,
                                sizeof(errstr)))) {
                rd_kafka_conf_destroy(pc);
                fprintf(stderr, "recfresh refresh: producer: %s\n", errstr);
        }
        return rk;
}

/* Steps the run and the queue until both are done or a signal. */
static int drive(rf_refresh_src_t *src, rf_store_t *st2, rf_queue_t *q,
                 rd_kafka_t *rk, const char *run_id, rf_rc_mode_t mode,
                 int64_t within)
{
        rf_txn_t *txn = rf_txn_new(st2);
        int64_t catch_up_at = rf_mono_ms() + 1000;
        char errstr[512];
        int done = 0, rc = 0;

        while (!stop) {
                int64_t now = rf_now_ms(), wait;
                rf_queue_stats_t qs;

                rf_queue_counts(q, &qs);
                int64_t room =
                    src->conf->rc_refresh_backlog - (int64_t)qs.by_mode[mode];
                if (!done && room > 0) {
                        int r =
                            rf_refresh_step(src, q, txn, run_id, mode, within,
                                            now, (size_t)room, &done);
                        if (r >= 0 &&
                            rf_txn_commit(txn, errstr, sizeof(errstr)) == 0) {
                                rf_queue_committed(q);
                        } else {
                                fprintf(stderr, "recfresh refresh: %s\n",
                                        r < 0 ? rf_err2str(r) : errstr);
                                rf_txn_clear(txn);
                                rf_queue_rollback(q);
                                rc = 1;
                                break;
                        }
                }
                rf_queue_tick(q, rk, now);
                rf_queue_counts(q, &qs);
                if (done && qs.count == 0 && qs.inflight == 0)
                        break;
                wait = rf_queue_wait_ms(q, rf_now_ms());
                rd_kafka_poll(rk, wait < 0 || wait > 100 ? 100 : (int)wait);
                if (rf_mono_ms() > catch_up_at) {
                        /* see what the daemon wrote meanwhile */
                        if (rf_store_catch_up(src->st, errstr, sizeof(errstr)))
                                rf_log_warn("refresh", "%s", errstr);
                        catch_up_at = rf_mono_ms() + 1000;
                }
        }
        rf_queue_flush(q, rk, 5000);
        rf_txn_destroy(txn);
        if (stop && !rc) {
                fprintf(stderr,
                        "recfresh refresh: interrupted; run the same "
                        "command again to resume run %s\n",
                        run_id);
                rc = 1;
        }
        return rc;
}

int rf_cmd_refresh(int argc, char **argv)
{
        const char *run_arg = NULL, *state_arg = NULL;
        rf_rc_mode_t mode = RF_RC__MODE_CNT;
        int64_t within = -1;
        rf_store_t *st = NULL, *st2 = NULL;
        rf_queue_t *q = NULL;
        rd_kafka_t *rk = NULL;
        rf_refresh_run_t run;
        char run_id[128], state_dir[4096], ts[40], errstr[512];
        rf_config_t conf;
        int c, rc;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto out;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS,
                                refresh_opts, NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1)
                        continue;
                rc = 0;
                switch (c) {
                case OPT_FULL:
                        mode = RF_RC_FULL;
                        break;
                case OPT_INCREMENTAL:
                        mode = RF_RC_ACTIVE;
                        break;
                case OPT_RUN_ID:
                        run_arg = optarg;
                        break;
                case OPT_ACTIVE_WITHIN:
                        if (parse_dur(optarg, &within) || within <= 0) {
                                fprintf(stderr, "recfresh refresh: "
                                                "--active-within: expected a "
                                                "duration such as 1h, 30m\n");
                                rc = 2;
                                goto out;
                        }
                        break;
                case OPT_STATE_DIR:
                        state_arg = optarg;
                        break;
                case OPT_HELP:
                        usage(stdout);
                        goto out;
                default:
                        usage(stderr);
                        rc = 2;
                        goto out;
                }
        }
        if (mode == RF_RC__MODE_CNT || optind < argc ||
            (run_arg && (!*run_arg || strlen(run_arg) >= sizeof(run_id)))) {
                fprintf(stderr, "recfresh refresh: --full or --incremental "
                                "is required (and a non-empty --run-id of at "
                                "most 127 bytes)\n");
                usage(stderr);
                rc = 2;
                goto out;
        }
        rf_cli_done(&conf);
        if (!*conf.brokers) {
                fprintf(stderr, "recfresh refresh: --brokers (kafka.brokers) "
                                "is required\n");
                rc = 2;
                goto out;
        }
        if (within < 0)
                within = conf.rc_active_within;
        rf_time_format(rf_now_ms(), ts, sizeof(ts));
        if (run_arg)
                snprintf(run_id, sizeof(run_id), "%s", run_arg);
        else
                snprintf(run_id, sizeof(run_id), "%s-manual-%s",
                         mode == RF_RC_FULL ? "full" : "active", ts);
        snprintf(state_dir, sizeof(state_dir), "%s.refresh", conf.data_dir);
        if (state_arg)
                snprintf(state_dir, sizeof(state_dir), "%s", state_arg);

        rc = 1;
        if (!(st = rf_cli_open_reader(&conf)))
                goto out;
        if (!(st2 = rf_store_open(state_dir, RF_STORE_PRIMARY, NULL, errstr,
                                  sizeof(errstr)))) {
                fprintf(stderr,
                        "recfresh refresh: %s (is another refresh "
                        "running?)\n",
                        errstr);
                goto out;
        }
        int was_done = 0;
        if (rf_refresh_run_get(st2, NULL, run_id, &run) == 0) {
                /* resuming: the run keeps its mode */
                mode = (rf_rc_mode_t)run.mode;
                was_done = run.done;
                rf_refresh_run_clear(&run);
        }
        /* Even a finished run may have requests not yet acknowledged (a
         * kill after its last step): they are sent, nothing else. */
        q = rf_queue_new(st2, &conf, rf_now_ms());
        /* The queue's store holds no consent: the daemon's does. */
        rf_queue_set_consent_store(q, st);
        if (!(rk = producer_new(&conf, q)))
                goto out;
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);

        rf_refresh_src_t src = { st, &conf, 0 };
        rc = drive(&src, st2, q, rk, run_id, mode, within);
        if (rf_refresh_run_get(st2, NULL, run_id, &run) == 0) {
                uint64_t sent = RF_METRIC_GET(recompute_sent);
                if (was_done && !sent)
                        printf("run %s (%s) already finished: %llu subjects; "
                               "nothing sent\n",
                               run_id, rf_rc_mode2str(run.mode),
                               (unsigned long long)run.subjects);
                else
                        printf("run %s (%s) %s: %llu subjects queued, %llu "
                               "requests sent now\n",
                               run_id, rf_rc_mode2str(run.mode),
                               run.done ? "finished" : "paused",
                               (unsigned long long)run.subjects,
                               (unsigned long long)sent);
                rf_refresh_run_clear(&run);
        }
out:
        /* acks were settled by drive(); destroyed before the queue its
         * callback points at */
        if (rk)
                rd_kafka_destroy(rk);
        rf_queue_destroy(q);
        rf_store_close(st2);
        rf_store_close(st);
        rf_config_destroy(&conf);
        return rc;
}
