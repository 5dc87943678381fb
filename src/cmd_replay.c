/*
 * recfresh - `recfresh replay`: apply recorded records to a scratch store
 * and explain what each did (--explain), or compare two configs
 * (--what-if-set); see replay.h for sources, order and determinism.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "recfresh/cli.h"
#include "recfresh/eventlog.h"
#include "recfresh/log.h"
#include "recfresh/replay.h"

enum {
        OPT_LIVE_DIR = 1100,
        OPT_CHECKPOINT,
        OPT_FROM,
        OPT_TO,
        OPT_FROM_OFFSET,
        OPT_TO_OFFSET,
        OPT_TOPIC,
        OPT_PARTITION,
        OPT_ORDER,
        OPT_EXPLAIN,
        OPT_JSON,
        OPT_SUBJECT,
        OPT_ITEM,
        OPT_LIST,
        OPT_WHAT_IF,
        OPT_STATS,
        OPT_HELP
};

static const struct option replay_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "live-dir", required_argument, NULL, OPT_LIVE_DIR },
        { "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
        { "from", required_argument, NULL, OPT_FROM },
        { "to", required_argument, NULL, OPT_TO },
        { "from-offset", required_argument, NULL, OPT_FROM_OFFSET },
        { "to-offset", required_argument, NULL, OPT_TO_OFFSET },
        { "topic", required_argument, NULL, OPT_TOPIC },
        { "partition", required_argument, NULL, OPT_PARTITION },
        { "order", required_argument, NULL, OPT_ORDER },
        { "explain", no_argument, NULL, OPT_EXPLAIN },
        { "json", no_argument, NULL, OPT_JSON },
        { "subject", required_argument, NULL, OPT_SUBJECT },
        { "item", required_argument, NULL, OPT_ITEM },
        { "list", required_argument, NULL, OPT_LIST },
        { "what-if-set", required_argument, NULL, OPT_WHAT_IF },
        { "stats", no_argument, NULL, OPT_STATS },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void usage(FILE *fp)
{
        fprintf(
            fp,
            "Usage: recfresh replay --data-dir SCRATCH [SOURCE...] [options]\n"
            "Applies recorded records to a scratch store with the real apply "
            "path, one\nat a time, using each record's timestamp as the "
            "clock. SOURCE is an event-log\ndirectory or segment (*.rfev) or "
            "an NDJSON file; with no SOURCE the input\ntopics are read "
            "between --from/--to (or --from-offset/--to-offset).\n\n"
            "  -d, --data-dir DIR      the scratch store (never the live "
            "one; emptied if an\n"
            "                          earlier replay made it)\n"
            "      --live-dir DIR      the live data_dir, refused as target "
            "(default: data_dir\n"
            "                          of --config)\n"
            "      --checkpoint DIR    seed the scratch store from a "
            "checkpoint; records it\n"
            "                          already holds are skipped\n"
            "      --from T, --to T    time range [T, T): RFC 3339 or ms; "
            "filters SOURCEs too\n"
            "      --from-offset N, --to-offset N   offset range (topics)\n"
            "      --topic NAME        only this input topic (topics)\n"
            "      --partition N       only this partition (topics)\n"
            "      --brokers LIST      read the topics from these brokers\n"
            "      --order file|time   apply in load order (default) or by "
            "record time\n"
            "      --explain           one line per record: outcome, lists "
            "affected, entries\n"
            "                          tombstoned, recomputes, emitted "
            "records\n"
            "      --json              explain as one JSON object per line\n"
            "      --subject S, --item I, --list SUBJECT/SURFACE[/CONTEXT]\n"
            "                          show only records about these\n"
            "      --what-if-set NAME=VALUE   replay twice, baseline and "
            "with this option\n"
            "                          changed (repeatable), and print the "
            "differences\n"
            "      --stats             print outcome counts and times at the "
            "end\n"
            "  -c, --config FILE       config file\n"
            "  -s, --set NAME=VALUE    set a config option (both runs)\n");
}

static int parse_time(const char *s, int64_t *ms)
{
        char *end;
        long long v = strtoll(s, &end, 10);

        if (*s && !*end) {
                *ms = v;
                return 0;
        }
        return rf_time_parse(s, ms);
}

typedef struct args {
        const char *data_dir, *live_dir, *checkpoint;
        rf_replay_range_t range;
        int by_time, explain, json, stats;
        const char *subject, *item, *list;
        char **what_if; /* NAME=VALUE */
        size_t what_if_cnt;
} args_t;

static int load_sources(rf_replay_set_t *set, const rf_config_t *conf,
                        const args_t *a, char **srcs, int nsrc)
{
        char errstr[512];
        int r = 0, searched = 0;

        for (int i = 0; i < nsrc && r == 0; i++) {
                if (rf_eventlog_is_log(srcs[i]))
                        r = rf_replay_load_eventlog(set, srcs[i], errstr,
                                                    sizeof(errstr));
                else
                        r = rf_replay_load_ndjson(set, srcs[i], errstr,
                                                  sizeof(errstr));
        }
        if (r == 0 && nsrc == 0) {
                r = rf_replay_load_topics(set, conf, NULL, &a->range, &searched,
                                          errstr, sizeof(errstr));
                if (r == 0 && searched)
                        fprintf(stderr,
                                "recfresh replay: %d partitions located by "
                                "timestamp search (no offsets-for-times)\n",
                                searched);
        }
        if (r) {
                fprintf(stderr, "recfresh replay: %s\n", errstr);
                return 1;
        }
        if (nsrc && (a->range.from_ms >= 0 || a->range.to_ms >= 0)) {
                size_t w = 0;
                for (size_t i = 0; i < set->cnt; i++) {
                        rf_record_t *rec = &set->recs[i];
                        int64_t ts = rec->timestamp_ms;
                        if (ts >= 0 &&
                            ((a->range.from_ms >= 0 && ts < a->range.from_ms) ||
                             (a->range.to_ms >= 0 && ts >= a->range.to_ms))) {
                                free((char *)rec->topic_name);
                                continue;
                        }
                        set->recs[w++] = *rec;
                }
                set->cnt = w;
        }
        rf_replay_set_finish(set, a->by_time);
        if (set->damaged || set->duplicates)
                fprintf(stderr,
                        "recfresh replay: %llu damaged ranges or lines "
                        "skipped, %llu duplicate records dropped\n",
                        (unsigned long long)set->damaged,
                        (unsigned long long)set->duplicates);
        return 0;
}

static int run_one(const rf_replay_set_t *set, const rf_config_t *conf,
                   const args_t *a, const char *dir, FILE *out,
                   rf_replay_stats_t *stats, rf_buf_t *lines, rf_buf_t *empty)
{
        rf_replay_opts_t o = {
                .conf = conf,
                .data_dir = dir,
                .live_dir = a->live_dir,
                .checkpoint = a->checkpoint,
                .out = out,
                .json = a->json,
                .subject = a->subject,
                .item = a->item,
                .list = a->list,
        };
        char errstr[512];

        if (rf_replay_run(set, &o, stats, lines, empty, errstr,
                          sizeof(errstr))) {
                fprintf(stderr, "recfresh replay: %s\n", errstr);
                return 1;
        }
        return 0;
}

/* Prints lines present in one buffer and not the other (both sorted the
 * same way: by record, or by list key). */
static void print_only(const char *title, const rf_buf_t *a, const rf_buf_t *b)
{
        const char *p = a->data, *end = a->data + a->len;
        int header = 0;

        while (p && p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
                int found = 0;
                for (const char *q = b->data, *bend = b->data + b->len;
                     q && q < bend;) {
                        const char *qnl = memchr(q, '\n', (size_t)(bend - q));
                        size_t qlen =
                            qnl ? (size_t)(qnl - q) + 1 : (size_t)(bend - q);
                        if (qlen == len && !memcmp(p, q, len)) {
                                found = 1;
                                break;
                        }
                        q += qlen;
                }
                if (!found) {
                        if (!header)
                                printf("%s\n", title);
                        header = 1;
                        printf("  %.*s", (int)len, p);
                }
                p += len;
        }
}

/* Prints the records whose explain line differs between the two runs. */
static void print_line_diff(const rf_buf_t *a, const rf_buf_t *b)
{
        const char *p = a->data, *q = b->data;
        const char *pe = a->data + a->len, *qe = b->data + b->len;
        int header = 0;

        while (p && q && p < pe && q < qe) {
                const char *pn = memchr(p, '\n', (size_t)(pe - p));
                const char *qn = memchr(q, '\n', (size_t)(qe - q));
                size_t pl = pn ? (size_t)(pn - p) + 1 : (size_t)(pe - p);
                size_t ql = qn ? (size_t)(qn - q) + 1 : (size_t)(qe - q);
                if (pl != ql || memcmp(p, q, pl)) {
                        if (!header)
                                printf("records with different outcomes:\n");
                        header = 1;
                        printf("- %.*s+ %.*s", (int)pl, p, (int)ql, q);
                }
                p += pl;
                q += ql;
        }
        if (!header)
                printf("records with different outcomes: none\n");
}

static void print_stats_diff(const rf_replay_stats_t *b,
                             const rf_replay_stats_t *w)
{
        char *sb = NULL, *sw = NULL;
        size_t nb = 0, nw = 0;
        FILE *fb = open_memstream(&sb, &nb), *fw = open_memstream(&sw, &nw);

        rf_replay_stats_print(b, fb);
        rf_replay_stats_print(w, fw);
        fclose(fb);
        fclose(fw);
        printf("%-44s %12s %12s\n", "outcome", "baseline", "what-if");
        char *sp1 = NULL, *sp2 = NULL;
        for (char *lb = strtok_r(sb, "\n", &sp1),
                  *lw = strtok_r(sw, "\n", &sp2);
             lb && lw;
             lb = strtok_r(NULL, "\n", &sp1), lw = strtok_r(NULL, "\n", &sp2)) {
                char *vb = strrchr(lb, ' '), *vw = strrchr(lw, ' ');
                if (!vb || !vw)
                        continue;
                *vb++ = '\0';
                vw++;
                printf("%-44s %12s %12s%s\n", lb, vb, vw,
                       strcmp(vb, vw) ? "  *" : "");
        }
        free(sb);
        free(sw);
}

static int what_if(const rf_replay_set_t *set, const rf_config_t *base,
                   const rf_config_t *changed, const args_t *a)
{
        char bdir[4096], wdir[4096];
        rf_replay_stats_t sb, sw;
        rf_buf_t lb = { 0 }, lw = { 0 }, eb = { 0 }, ew = { 0 };
        int rc;

        if (mkdir(a->data_dir, 0755) != 0 && errno != EEXIST) {
                fprintf(stderr, "recfresh replay: %s: cannot create\n",
                        a->data_dir);
                return 1;
        }
        snprintf(bdir, sizeof(bdir), "%s/baseline", a->data_dir);
        snprintf(wdir, sizeof(wdir), "%s/what-if", a->data_dir);
        rc = run_one(set, base, a, bdir, NULL, &sb, &lb, &eb) ||
             run_one(set, changed, a, wdir, NULL, &sw, &lw, &ew);
        if (rc == 0) {
                printf("what-if:");
                for (size_t i = 0; i < a->what_if_cnt; i++)
                        printf(" %s", a->what_if[i]);
                printf("\n");
                print_stats_diff(&sb, &sw);
                print_line_diff(&lb, &lw);
                print_only("lists served empty only in the what-if run:", &ew,
                           &eb);
                print_only("lists served empty only in the baseline run:", &eb,
                           &ew);
        }
        rf_buf_free(&lb);
        rf_buf_free(&lw);
        rf_buf_free(&eb);
        rf_buf_free(&ew);
        return rc;
}

int rf_cmd_replay(int argc, char **argv)
{
        rf_config_t conf, conf2;
        rf_replay_set_t set = { 0 };
        rf_replay_stats_t stats;
        args_t a = { .range = { -1, -1, -1, -1, NULL, -1 } };
        char *end, errstr[512];
        int c, rc;

        if ((rc = rf_cli_init(&conf, argc, argv))) {
                rf_config_destroy(&conf);
                return rc;
        }
        rf_cli_init(&conf2, argc, argv);
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS,
                                replay_opts, NULL)) != -1) {
                rc = 0;
                if (c == 'd') {
                        a.data_dir = optarg; /* the scratch, not data_dir */
                        continue;
                }
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1) {
                        rf_cli_common(&conf2, c, optarg);
                        continue;
                }
                rc = 0;
                switch (c) {
                case OPT_LIVE_DIR:
                        a.live_dir = optarg;
                        break;
                case OPT_CHECKPOINT:
                        a.checkpoint = optarg;
                        break;
                case OPT_FROM:
                case OPT_TO:
                        if (parse_time(optarg, c == OPT_FROM
                                                   ? &a.range.from_ms
                                                   : &a.range.to_ms)) {
                                fprintf(stderr,
                                        "recfresh replay: --%s: expected RFC "
                                        "3339 time or ms, got \"%s\"\n",
                                        c == OPT_FROM ? "from" : "to", optarg);
                                rc = 2;
                                goto out;
                        }
                        break;
                case OPT_FROM_OFFSET:
                case OPT_TO_OFFSET:
                case OPT_PARTITION: {
                        long long v = strtoll(optarg, &end, 10);
                        if (*end || v < 0) {
                                fprintf(stderr,
                                        "recfresh replay: expected a "
                                        "non-negative integer, got \"%s\"\n",
                                        optarg);
                                rc = 2;
                                goto out;
                        }
                        if (c == OPT_FROM_OFFSET)
                                a.range.from_offset = v;
                        else if (c == OPT_TO_OFFSET)
                                a.range.to_offset = v;
                        else
                                a.range.partition = (int32_t)v;
                        break;
                }
                case OPT_TOPIC:
                        a.range.topic = optarg;
                        break;
                case OPT_ORDER:
                        if (strcmp(optarg, "file") && strcmp(optarg, "time")) {
                                fprintf(stderr, "recfresh replay: --order: "
                                                "expected file or time\n");
                                rc = 2;
                                goto out;
                        }
                        a.by_time = !strcmp(optarg, "time");
                        break;
                case OPT_EXPLAIN:
                        a.explain = 1;
                        break;
                case OPT_JSON:
                        a.json = a.explain = 1;
                        break;
                case OPT_SUBJECT:
                        a.subject = optarg;
                        break;
                case OPT_ITEM:
                        a.item = optarg;
                        break;
                case OPT_LIST:
                        a.list = optarg;
                        break;
                case OPT_WHAT_IF: {
                        char *copy = rf_strdup(optarg), *eq = strchr(copy, '=');
                        if (eq)
                                *eq = '\0';
                        if (!eq || rf_config_set(&conf2, copy, eq + 1, errstr,
                                                 sizeof(errstr))) {
                                fprintf(stderr,
                                        "recfresh replay: --what-if-set: "
                                        "%s\n",
                                        eq ? errstr : "expected NAME=VALUE");
                                free(copy);
                                rc = 2;
                                goto out;
                        }
                        free(copy);
                        a.what_if = rf_realloc(a.what_if, (a.what_if_cnt + 1) *
                                                              sizeof(char *));
                        a.what_if[a.what_if_cnt++] = optarg;
                        break;
                }
                case OPT_STATS:
                        a.stats = 1;
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
        if (!a.data_dir) {
                fprintf(stderr, "recfresh replay: --data-dir SCRATCH is "
                                "required\n");
                rc = 2;
                goto out;
        }
        if (optind == argc && a.range.from_ms < 0 && a.range.to_ms < 0 &&
            a.range.from_offset < 0 && a.range.to_offset < 0) {
                fprintf(stderr, "recfresh replay: give SOURCE files, or a "
                                "topic range (--from/--to or "
                                "--from-offset/--to-offset)\n");
                rc = 2;
                goto out;
        }
        /* The explain lines say what the log would: quieter by default. */
        if (!strcmp(conf.log_level, "info"))
                rf_config_set(&conf, "log.level", "warn", NULL, 0);
        rf_cli_done(&conf);
        if ((rc = load_sources(&set, &conf, &a, argv + optind, argc - optind)))
                goto out;
        if (a.what_if_cnt) {
                rc = what_if(&set, &conf, &conf2, &a);
                goto out;
        }
        rc = run_one(&set, &conf, &a, a.data_dir, a.explain ? stdout : NULL,
                     &stats, NULL, NULL);
        if (rc == 0 && (a.stats || !a.explain))
                rf_replay_stats_print(&stats, a.explain ? stderr : stdout);
        if (rc == 0 && a.stats) /* times differ run to run: asked only */
                fprintf(a.explain ? stderr : stdout,
                        "seconds_open %.3f\nseconds_records %.3f\n"
                        "seconds_end %.3f\nkeys_warmed %llu\n",
                        stats.open_s, stats.records_s, stats.end_s,
                        (unsigned long long)stats.keys_warmed);
out:
        rf_replay_set_clear(&set);
        free(a.what_if);
        rf_config_destroy(&conf);
        rf_config_destroy(&conf2);
        return rc;
}
