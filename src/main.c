/*
 * recfresh - the command line: one binary, one subcommand per job.
 *
 *   recfresh run      the daemon (consumers, apply, fan-out, outbox)
 *   recfresh broker   the embedded Kafka broker as a standalone process
 *   recfresh get      read a served list from a data dir
 *   recfresh config   print the effective config or the option reference
 *
 * Options common to run/get/config: --config FILE, --data-dir DIR,
 * --set name=value (any config option), -X prop=value (librdkafka).
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/broker.h"
#include "recfresh/config.h"
#include "recfresh/daemon.h"
#include "recfresh/log.h"
#include "recfresh/read.h"
#include "recfresh/topics.h"

static volatile sig_atomic_t got_signal;
static rf_daemon_t *running_daemon;

static void on_signal(int sig)
{
        got_signal = sig;
        if (running_daemon)
                rf_daemon_stop(running_daemon);
}

static void install_signals(void)
{
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
}

static void usage(FILE *fp)
{
        fprintf(fp,
                "recfresh %s - keeps precomputed recommendation lists safe "
                "and fresh\n"
                "\n"
                "Usage: recfresh <command> [options]\n"
                "\n"
                "Commands:\n"
                "  run      run the service (consume events, tombstone, "
                "fan out)\n"
                "  broker   run the embedded Kafka broker (mock cluster) "
                "standalone\n"
                "  get      print the served list of a subject and surface\n"
                "  config   print the effective config (--dump) or every "
                "option (--help)\n"
                "  version  print the version\n"
                "\n"
                "Common options (run, get, config):\n"
                "  -c, --config FILE       config file (name = value "
                "lines)\n"
                "  -d, --data-dir DIR      RocksDB directory (data_dir)\n"
                "  -s, --set NAME=VALUE    set any config option\n"
                "  -X PROP=VALUE           librdkafka property, passed "
                "through verbatim\n"
                "\n"
                "run:    [--brokers HOST:PORT,... | --embedded-broker] "
                "[--partitions N]\n"
                "        [--bootstrap-file F]\n"
                "broker: [--partitions N] [--brokers-count N] "
                "[--bootstrap-file F]\n"
                "get:    --subject S --surface F [--context C] [--limit N] "
                "[--json]\n"
                "\n"
                "Run 'recfresh config --help' for every config option.\n",
                RF_VERSION);
}

/* Options shared by commands that load a config. */
enum {
        OPT_BROKERS = 256,
        OPT_EMBEDDED,
        OPT_PARTITIONS,
        OPT_BOOTSTRAP_FILE,
        OPT_BROKERS_COUNT,
        OPT_SUBJECT,
        OPT_SURFACE,
        OPT_CONTEXT,
        OPT_LIMIT,
        OPT_JSON,
        OPT_DUMP,
        OPT_HELP,
};

static const struct option long_opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "data-dir", required_argument, NULL, 'd' },
        { "set", required_argument, NULL, 's' },
        { "brokers", required_argument, NULL, OPT_BROKERS },
        { "embedded-broker", no_argument, NULL, OPT_EMBEDDED },
        { "partitions", required_argument, NULL, OPT_PARTITIONS },
        { "bootstrap-file", required_argument, NULL, OPT_BOOTSTRAP_FILE },
        { "brokers-count", required_argument, NULL, OPT_BROKERS_COUNT },
        { "subject", required_argument, NULL, OPT_SUBJECT },
        { "surface", required_argument, NULL, OPT_SURFACE },
        { "context", required_argument, NULL, OPT_CONTEXT },
        { "limit", required_argument, NULL, OPT_LIMIT },
        { "json", no_argument, NULL, OPT_JSON },
        { "dump", no_argument, NULL, OPT_DUMP },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

/* What the command line said, beyond the config itself. */
typedef struct cli {
        rf_config_t conf;
        const char *subject, *surface, *context;
        long limit;
        int json, dump, help, brokers_count;
} cli_t;

static int set_opt(cli_t *cli, const char *name, const char *value)
{
        char errstr[512];

        if (rf_config_set(&cli->conf, name, value, errstr, sizeof(errstr))) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                return -1;
        }
        return 0;
}

static int parse_long(const char *s, long min, long max, long *out)
{
        char *end;
        long v = strtol(s, &end, 10);

        if (!*s || *end || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

/* Parses argv after the command. The config file is loaded first, wherever
 * --config stands, so flags always override it. @returns 0, or 2 (usage). */
static int parse_cli(cli_t *cli, int argc, char **argv)
{
        char errstr[512];
        int c;

        rf_config_init(&cli->conf);
        cli->limit = 20;
        cli->brokers_count = 1;

        for (int i = 1; i < argc - 1; i++) {
                if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
                        if (rf_config_load_file(&cli->conf, argv[i + 1], errstr,
                                                sizeof(errstr))) {
                                fprintf(stderr, "recfresh: %s\n", errstr);
                                return 2;
                        }
                }
        }

        optind = 1;
        while ((c = getopt_long(argc, argv, "c:d:s:X:", long_opts, NULL)) !=
               -1) {
                long v;
                char *eq;

                switch (c) {
                case 'c':
                        break; /* loaded above */
                case 'd':
                        if (set_opt(cli, "data_dir", optarg))
                                return 2;
                        break;
                case 's':
                case 'X':
                        eq = strchr(optarg, '=');
                        if (!eq) {
                                fprintf(stderr,
                                        "recfresh: -%c: expected NAME=VALUE, "
                                        "got \"%s\"\n",
                                        c, optarg);
                                return 2;
                        }
                        *eq = '\0';
                        if (c == 'X')
                                rf_config_set_kafka(&cli->conf, optarg, eq + 1);
                        else if (set_opt(cli, optarg, eq + 1))
                                return 2;
                        *eq = '=';
                        break;
                case OPT_BROKERS:
                        if (set_opt(cli, "kafka.brokers", optarg))
                                return 2;
                        break;
                case OPT_EMBEDDED:
                        if (set_opt(cli, "kafka.brokers", ""))
                                return 2;
                        break;
                case OPT_PARTITIONS:
                        if (set_opt(cli, "embedded.partitions", optarg))
                                return 2;
                        break;
                case OPT_BOOTSTRAP_FILE:
                        if (set_opt(cli, "embedded.bootstrap_file", optarg))
                                return 2;
                        break;
                case OPT_BROKERS_COUNT:
                        if (parse_long(optarg, 1, 16, &v)) {
                                fprintf(stderr, "recfresh: --brokers-count: "
                                                "expected 1..16\n");
                                return 2;
                        }
                        cli->brokers_count = (int)v;
                        break;
                case OPT_SUBJECT:
                        cli->subject = optarg;
                        break;
                case OPT_SURFACE:
                        cli->surface = optarg;
                        break;
                case OPT_CONTEXT:
                        cli->context = optarg;
                        break;
                case OPT_LIMIT:
                        if (parse_long(optarg, 0, 100000, &cli->limit)) {
                                fprintf(stderr, "recfresh: --limit: expected "
                                                "0..100000\n");
                                return 2;
                        }
                        break;
                case OPT_JSON:
                        cli->json = 1;
                        break;
                case OPT_DUMP:
                        cli->dump = 1;
                        break;
                case OPT_HELP:
                        cli->help = 1;
                        break;
                default:
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "recfresh: unexpected argument \"%s\"\n",
                        argv[optind]);
                return 2;
        }
        int level = rf_log_level_parse(cli->conf.log_level);
        if (level >= 0)
                rf_log_set_level(level);
        return 0;
}

static int cmd_run(cli_t *cli)
{
        char errstr[512];
        rf_daemon_t *d;
        int rc;

        install_signals();
        d = rf_daemon_new(&cli->conf, errstr, sizeof(errstr));
        if (!d) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                return 1;
        }
        running_daemon = d;
        if (got_signal)
                rf_daemon_stop(d);
        rc = rf_daemon_run(d);
        running_daemon = NULL;
        rf_daemon_destroy(d);
        return rc;
}

static int cmd_broker(cli_t *cli)
{
        char errstr[512];
        rf_broker_t *b;
        FILE *fp;

        install_signals();
        b = rf_broker_new(cli->brokers_count,
                          (int)cli->conf.embedded_partitions, errstr,
                          sizeof(errstr));
        if (!b) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                return 1;
        }
        if (*cli->conf.bootstrap_file) {
                char tmp[4096];
                snprintf(tmp, sizeof(tmp), "%s.tmp", cli->conf.bootstrap_file);
                if (!(fp = fopen(tmp, "w")) ||
                    fprintf(fp, "%s\n", rf_broker_bootstraps(b)) < 0 ||
                    fclose(fp) != 0 ||
                    rename(tmp, cli->conf.bootstrap_file) != 0) {
                        fprintf(stderr, "recfresh: %s: cannot write\n",
                                cli->conf.bootstrap_file);
                        rf_broker_destroy(b);
                        return 1;
                }
        }
        printf("%s\n", rf_broker_bootstraps(b));
        fflush(stdout);
        while (!got_signal)
                pause();
        rf_log_info("broker", "stopping on signal %d", (int)got_signal);
        rf_broker_destroy(b);
        return 0;
}

static int cmd_get(cli_t *cli)
{
        char errstr[512];
        rf_read_result_t res;
        rf_read_req_t req;
        rf_store_t *st;
        int r;

        if (!cli->subject || !cli->surface) {
                fprintf(stderr, "recfresh get: --subject and --surface are "
                                "required\n");
                return 2;
        }
        /* A secondary instance reads beside a running daemon and works on
         * a stopped store too. */
        st = rf_store_open(cli->conf.data_dir, RF_STORE_SECONDARY, NULL, errstr,
                           sizeof(errstr));
        if (!st) {
                fprintf(stderr, "recfresh get: %s\n", errstr);
                return 1;
        }
        if (rf_store_catch_up(st, errstr, sizeof(errstr)))
                rf_log_warn("get", "%s", errstr);
        req = (rf_read_req_t){ cli->subject, cli->surface, cli->context,
                               (size_t)cli->limit };
        r = rf_read_list(st, &cli->conf, &req, &res);
        if (r) {
                fprintf(stderr, "recfresh get: %s\n", rf_err2str(r));
                rf_store_close(st);
                return 1;
        }
        if (cli->json) {
                rf_buf_t out = { 0 };
                rf_read_result_to_json(&req, &res, &out);
                printf("%s\n", out.data);
                rf_buf_free(&out);
        } else {
                rf_read_result_print(&req, &res, stdout);
        }
        rf_read_result_clear(&res);
        rf_store_close(st);
        return 0;
}

static int cmd_config(cli_t *cli)
{
        if (cli->help)
                rf_config_usage(stdout);
        else
                rf_config_dump(&cli->conf, stdout);
        return 0;
}

int main(int argc, char **argv)
{
        static const struct {
                const char *name;
                int (*fn)(cli_t *cli);
        } cmds[] = {
                { "run", cmd_run },
                { "broker", cmd_broker },
                { "get", cmd_get },
                { "config", cmd_config },
        };
        cli_t cli;
        int rc;

        if (argc < 2 || !strcmp(argv[1], "help") ||
            !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                usage(argc < 2 ? stderr : stdout);
                return argc < 2 ? 2 : 0;
        }
        if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
                printf("recfresh %s (librdkafka %s)\n", RF_VERSION,
                       rd_kafka_version_str());
                return 0;
        }
        for (size_t i = 0; i < RF_ARRAY_SIZE(cmds); i++) {
                if (strcmp(argv[1], cmds[i].name) != 0)
                        continue;
                memset(&cli, 0, sizeof(cli));
                rc = parse_cli(&cli, argc - 1, argv + 1);
                if (rc == 0)
                        rc = cmds[i].fn(&cli);
                rf_config_destroy(&cli.conf);
                return rc;
        }
        fprintf(stderr, "recfresh: unknown command \"%s\"\n\n", argv[1]);
        usage(stderr);
        return 2;
}
