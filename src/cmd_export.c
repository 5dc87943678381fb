/*
 * recfresh - `recfresh export`: writes the input topics between two times
 * (or offsets) to event-log segments, the format the daemon archives
 * (eventlog.h), so a replay can be run later and elsewhere. Partition
 * starts and ends come from offsets-for-times, or from the timestamp
 * search on brokers without it (kafka_time.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/cli.h"
#include "recfresh/eventlog.h"
#include "recfresh/replay.h"

enum { OPT_FROM = 1100, OPT_TO, OPT_OUT, OPT_TOPIC, OPT_HELP };

static const struct option export_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "from", required_argument, NULL, OPT_FROM },
        { "to", required_argument, NULL, OPT_TO },
        { "out", required_argument, NULL, OPT_OUT },
        { "topic", required_argument, NULL, OPT_TOPIC },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void usage(FILE *fp)
{
        fprintf(fp,
                "Usage: recfresh export --from T --to T [--out DIR] [--topic "
                "NAME] [--brokers LIST]\n"
                "Writes the records of the input topics with timestamps in "
                "[from, to) to\nevent-log segments in DIR (default "
                "./recfresh-export), for `recfresh replay DIR`.\nT is RFC "
                "3339 (2026-11-22T09:00:00Z) or ms since the epoch.\n\n"
                "  -c, --config FILE       config file\n"
                "  -s, --set NAME=VALUE    set a config option\n"
                "  -X PROP=VALUE           librdkafka property\n"
                "      --brokers LIST      Kafka bootstrap servers\n");
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

int rf_cmd_export(int argc, char **argv)
{
        rf_replay_range_t range = { -1, -1, -1, -1, NULL, -1 };
        const char *out = "./recfresh-export";
        rf_replay_set_t set = { 0 };
        rf_eventlog_t *el = NULL;
        rf_config_t conf;
        char errstr[512];
        int c, rc, searched = 0;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto done;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS,
                                export_opts, NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto done;
                if (rc == 1)
                        continue;
                rc = 0;
                switch (c) {
                case OPT_FROM:
                case OPT_TO:
                        if (parse_time(optarg, c == OPT_FROM ? &range.from_ms
                                                             : &range.to_ms)) {
                                fprintf(stderr,
                                        "recfresh export: expected RFC 3339 "
                                        "time or ms, got \"%s\"\n",
                                        optarg);
                                rc = 2;
                                goto done;
                        }
                        break;
                case OPT_OUT:
                        out = optarg;
                        break;
                case OPT_TOPIC:
                        range.topic = optarg;
                        break;
                case OPT_HELP:
                        usage(stdout);
                        goto done;
                default:
                        usage(stderr);
                        rc = 2;
                        goto done;
                }
        }
        if (range.from_ms < 0 || range.to_ms < 0 || optind < argc) {
                fprintf(stderr, "recfresh export: --from and --to are "
                                "required\n");
                rc = 2;
                goto done;
        }
        rf_cli_done(&conf);
        rc = 1;
        if (rf_replay_load_topics(&set, &conf, NULL, &range, &searched, errstr,
                                  sizeof(errstr))) {
                fprintf(stderr, "recfresh export: %s\n", errstr);
                goto done;
        }
        el = rf_eventlog_open(out, conf.eventlog_rotate_ms, 0, 1, errstr,
                              sizeof(errstr));
        if (!el) {
                fprintf(stderr, "recfresh export: %s\n", errstr);
                goto done;
        }
        /* Blocks of up to 1000 records; segments rotate by record time. */
        for (size_t i = 0; i < set.cnt; i++) {
                rf_eventlog_add(el, &set.recs[i]);
                if ((i + 1) % 1000 == 0 || i + 1 == set.cnt) {
                        int64_t ts = set.recs[i].timestamp_ms;
                        if (rf_eventlog_flush(el, ts >= 0 ? ts : range.from_ms,
                                              errstr, sizeof(errstr))) {
                                fprintf(stderr, "recfresh export: %s\n",
                                        errstr);
                                goto done;
                        }
                }
        }
        printf("exported %zu records to %s (%d partitions located by "
               "timestamp search)\n",
               set.cnt, out, searched);
        rc = 0;
done:
        rf_eventlog_close(el);
        rf_replay_set_clear(&set);
        rf_config_destroy(&conf);
        return rc;
}
