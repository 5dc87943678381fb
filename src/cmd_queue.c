/*
 * recfresh - `recfresh queue`: the recompute backlog (count, oldest age, by
 * mode, urgent) and the refresh runs, read beside a running daemon (a
 * secondary instance of its store), plus the runs `recfresh refresh` keeps
 * in <data_dir>.refresh. --list prints the pending requests as they would
 * be sent. --fold folds the pending entries' deltas (merge operands) into
 * whole entries in a stopped daemon's store.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "recfresh/cli.h"
#include "recfresh/refresh.h"

enum { OPT_JSON = 1100, OPT_LIST, OPT_FOLD, OPT_HELP };

static const struct option queue_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "json", no_argument, NULL, OPT_JSON },
        { "list", optional_argument, NULL, OPT_LIST },
        { "fold", no_argument, NULL, OPT_FOLD },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void usage(FILE *fp)
{
        fprintf(fp, "Usage: recfresh queue [--json] [--list[=N]] [--fold]\n"
                    "Prints the recompute backlog of the daemon's store "
                    "(pending requests, oldest\nage, by mode) and the refresh "
                    "runs. --list prints up to N (default 100)\npending "
                    "requests as JSON lines, as they would be sent.\n"
                    "--fold (daemon and recfresh refresh stopped) rewrites "
                    "the pending entries\nwhole, their deltas folded in, in "
                    "data_dir and in <data_dir>.refresh: a\nrecfresh from "
                    "before deltas then reads them as they "
                    "are.\n\n" RF_CLI_COMMON_HELP);
}

static double age_s(int64_t at, int64_t now)
{
        return at && now > at ? (double)(now - at) / 1000.0 : 0.0;
}

static json_t *runs_json(rf_store_t *st, const char *where)
{
        json_t *a = json_array();
        rf_refresh_run_t *runs;
        char ts[40];
        size_t n;

        if (!st || rf_refresh_runs_list(st, &runs, &n))
                return a;
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_object();
                json_object_set_new(o, "run_id", json_string(runs[i].run_id));
                json_object_set_new(o, "mode",
                                    json_string(rf_rc_mode2str(runs[i].mode)));
                json_object_set_new(
                    o, "state",
                    json_string(runs[i].done ? "finished" : "running"));
                json_object_set_new(o, "by", json_string(where));
                json_object_set_new(o, "subjects",
                                    json_integer((json_int_t)runs[i].subjects));
                /* began where the last run of its schedule stopped */
                if (runs[i].start.len)
                        json_object_set_new(o, "resumed", json_true());
                if (runs[i].wrapped)
                        json_object_set_new(o, "wrapped", json_true());
                json_object_set_new(o, "started_at",
                                    json_string(rf_time_format(
                                        runs[i].started_at, ts, sizeof(ts))));
                if (runs[i].done)
                        json_object_set_new(
                            o, "finished_at",
                            json_string(rf_time_format(runs[i].finished_at, ts,
                                                       sizeof(ts))));
                json_array_append_new(a, o);
                rf_refresh_run_clear(&runs[i]);
        }
        free(runs);
        return a;
}

/* Folds the deltas of the queue in the store at \p dir, if there is one
 * (\p must: else an error). @returns 0 or 1. */
static int fold_one(const char *dir, int must)
{
        char errstr[512] = "reading the queue failed";
        rf_queue_stats_t s;
        rf_store_t *st;
        int64_t left;
        int rc = 0;

        if (!rf_store_exists(dir)) {
                if (must)
                        fprintf(stderr, "recfresh queue: no store at %s\n",
                                dir);
                return must;
        }
        if (!(st = rf_store_open(dir, RF_STORE_PRIMARY, NULL, errstr,
                                 sizeof(errstr)))) {
                fprintf(stderr,
                        "recfresh queue: %s (is the daemon, or recfresh "
                        "refresh, still running?)\n",
                        errstr);
                return 1;
        }
        if (rf_store_compact_cf(st, RF_CF_QUEUE, errstr, sizeof(errstr)) ||
            rf_queue_scan_stats(st, &s)) {
                fprintf(stderr, "recfresh queue: folding %s: %s\n", dir,
                        errstr);
                rc = 1;
        } else if ((left = rf_store_merge_operands(st, RF_CF_QUEUE)) != 0) {
                fprintf(stderr,
                        "recfresh queue: folding %s: %lld merge operands "
                        "left after the compaction\n",
                        dir, (long long)left);
                rc = 1;
        } else {
                printf("%s: queue folded: %llu pending entries, each whole, "
                       "0 merge operands left\n",
                       dir, (unsigned long long)s.count);
        }
        rf_store_close(st);
        return rc;
}

/* Folds the daemon's queue and recfresh refresh's (<data_dir>.refresh):
 * RocksDB's full compaction merges each entry's operands into one value. */
static int fold(const rf_config_t *conf)
{
        char dir[4096];
        int rc = fold_one(conf->data_dir, 1);

        snprintf(dir, sizeof(dir), "%s.refresh", conf->data_dir);
        return fold_one(dir, 0) || rc;
}

static int list_pending(rf_store_t *st, long max)
{
        rf_iter_t *it = rf_iter_new(st, NULL, RF_CF_QUEUE, "P", 1);
        rf_buf_t subject = { 0 }, js = { 0 };
        long n = 0;

        for (; rf_iter_valid(it) && n < max; rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);
                rf_buf_reset(&subject);
                rf_buf_append(&subject, k + 1, klen - 1);
                rf_buf_append(&subject, "", 1);
                if (rf_queue_entry_to_json(subject.data, v, vlen, &js) == 0) {
                        printf("%s\n", js.data);
                        n++;
                }
        }
        rf_iter_destroy(it);
        rf_buf_free(&subject);
        rf_buf_free(&js);
        return 0;
}

int rf_cmd_queue(int argc, char **argv)
{
        rf_store_t *st = NULL, *st2 = NULL;
        rf_queue_stats_t s;
        rf_config_t conf;
        int json = 0, folding = 0, c, rc;
        long list = -1;
        char dir[4096], errstr[512];

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto out;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS, queue_opts,
                                NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1)
                        continue;
                rc = 0;
                switch (c) {
                case OPT_JSON:
                        json = 1;
                        break;
                case OPT_LIST:
                        list = optarg ? strtol(optarg, NULL, 10) : 100;
                        break;
                case OPT_FOLD:
                        folding = 1;
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
        rc = 0;
        rf_cli_done(&conf);
        if (folding) {
                rc = fold(&conf);
                goto out;
        }
        if (!(st = rf_cli_open_reader(&conf))) {
                rc = 1;
                goto out;
        }
        if (list >= 0) {
                list_pending(st, list);
                goto out;
        }
        snprintf(dir, sizeof(dir), "%s.refresh", conf.data_dir);
        st2 = rf_store_open(dir, RF_STORE_READONLY, NULL, errstr,
                            sizeof(errstr)); /* absent: no CLI runs */
        rf_queue_scan_stats(st, &s);
        int64_t now = rf_now_ms();
        json_t *o = json_object(), *bm = json_object();
        json_object_set_new(o, "pending", json_integer((json_int_t)s.count));
        json_object_set_new(o, "urgent", json_integer((json_int_t)s.urgent));
        json_object_set_new(o, "oldest_age_s",
                            json_real(age_s(s.oldest_enqueued_at, now)));
        for (int m = 0; m < RF_RC__MODE_CNT; m++) {
                json_t *e = json_object();
                json_object_set_new(e, "pending",
                                    json_integer((json_int_t)s.by_mode[m]));
                json_object_set_new(e, "oldest_age_s",
                                    json_real(age_s(s.oldest_by_mode[m], now)));
                json_object_set_new(bm, rf_rc_mode2str(m), e);
        }
        json_object_set_new(o, "by_mode", bm);
        json_t *runs = runs_json(st, "daemon");
        json_t *cli_runs = runs_json(st2, "cli");
        json_array_extend(runs, cli_runs);
        json_decref(cli_runs);
        json_object_set_new(o, "runs", runs);
        if (json) {
                char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
                printf("%s\n", text);
                free(text);
        } else {
                size_t i;
                json_t *r;
                printf("pending %llu (urgent %llu), oldest %.1fs\n",
                       (unsigned long long)s.count,
                       (unsigned long long)s.urgent,
                       age_s(s.oldest_enqueued_at, now));
                for (int m = 0; m < RF_RC__MODE_CNT; m++)
                        printf("  %-12s %llu, oldest %.1fs\n",
                               rf_rc_mode2str(m),
                               (unsigned long long)s.by_mode[m],
                               age_s(s.oldest_by_mode[m], now));
                printf("runs:\n");
                json_array_foreach(runs, i, r)
                {
                        printf("  %-40s %-7s %-9s subjects=%lld by=%s\n",
                               json_string_value(json_object_get(r, "run_id")),
                               json_string_value(json_object_get(r, "mode")),
                               json_string_value(json_object_get(r, "state")),
                               (long long)json_integer_value(
                                   json_object_get(r, "subjects")),
                               json_string_value(json_object_get(r, "by")));
                }
        }
        json_decref(o);
out:
        rf_store_close(st2);
        rf_store_close(st);
        rf_config_destroy(&conf);
        return rc;
}
