/*
 * recfresh - `recfresh run`: the daemon, and `recfresh broker`: the
 * embedded broker as a standalone process. Both run until SIGINT/SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/broker.h"
#include "recfresh/cli.h"
#include "recfresh/daemon.h"
#include "recfresh/log.h"

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

enum {
        OPT_EMBEDDED = 1100,
        OPT_PARTITIONS,
        OPT_BOOTSTRAP_FILE,
        OPT_BROKERS_COUNT,
        OPT_HTTP,
        OPT_HELP
};

static const struct option run_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "embedded-broker", no_argument, NULL, OPT_EMBEDDED },
        { "partitions", required_argument, NULL, OPT_PARTITIONS },
        { "bootstrap-file", required_argument, NULL, OPT_BOOTSTRAP_FILE },
        { "brokers-count", required_argument, NULL, OPT_BROKERS_COUNT },
        { "http", required_argument, NULL, OPT_HTTP },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void run_usage(FILE *fp)
{
        fprintf(fp,
                "Usage: recfresh run [options]\n"
                "Consumes the input topics, applies lists and tombstones to "
                "the store,\nfans out per-list work and produces DLQ and "
                "invalidation records.\n\n" RF_CLI_COMMON_HELP
                "      --embedded-broker   run the embedded broker "
                "in-process (default\n"
                "                          when no brokers are configured)\n"
                "      --partitions N      embedded broker: partitions per "
                "topic\n"
                "      --bootstrap-file F  embedded broker: write its "
                "address to F\n"
                "      --http ADDR         serve the HTTP API on ADDR "
                "(http.addr, default\n"
                "                          127.0.0.1:8080; port 0 = any "
                "free port; \"\" = off)\n");
}

static void broker_usage(FILE *fp)
{
        fprintf(fp,
                "Usage: recfresh broker [--partitions N] [--brokers-count "
                "N] [--bootstrap-file F]\n"
                "Runs librdkafka's mock cluster on loopback with the topics "
                "of topics/,\nprints its bootstrap address and serves until "
                "SIGINT/SIGTERM.\n");
}

static int set_opt(rf_config_t *conf, const char *name, const char *value)
{
        char errstr[512];

        if (rf_config_set(conf, name, value, errstr, sizeof(errstr))) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                return 2;
        }
        return 1;
}

/* Parses the options of run and broker. @returns 0, or an exit code. */
static int parse(rf_config_t *conf, int argc, char **argv, int *brokers_cnt,
                 void (*usage)(FILE *))
{
        char *end;
        int c, r;

        if ((r = rf_cli_init(conf, argc, argv)))
                return r;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS, run_opts,
                                NULL)) != -1) {
                if ((r = rf_cli_common(conf, c, optarg)) == 2)
                        return 2;
                if (r == 1)
                        continue;
                switch (c) {
                case OPT_EMBEDDED:
                        r = set_opt(conf, "kafka.brokers", "");
                        break;
                case OPT_PARTITIONS:
                        r = set_opt(conf, "embedded.partitions", optarg);
                        break;
                case OPT_BOOTSTRAP_FILE:
                        r = set_opt(conf, "embedded.bootstrap_file", optarg);
                        break;
                case OPT_HTTP:
                        r = set_opt(conf, "http.addr", optarg);
                        break;
                case OPT_BROKERS_COUNT:
                        *brokers_cnt = (int)strtol(optarg, &end, 10);
                        if (*end || *brokers_cnt < 1 || *brokers_cnt > 16) {
                                fprintf(stderr, "recfresh: --brokers-count: "
                                                "expected 1..16\n");
                                return 2;
                        }
                        r = 1;
                        break;
                case OPT_HELP:
                        usage(stdout);
                        return -1;
                default:
                        usage(stderr);
                        return 2;
                }
                if (r == 2)
                        return 2;
        }
        if (optind < argc) {
                fprintf(stderr, "recfresh: unexpected argument \"%s\"\n",
                        argv[optind]);
                return 2;
        }
        rf_cli_done(conf);
        return 0;
}

int rf_cmd_run(int argc, char **argv)
{
        char errstr[512];
        rf_config_t conf;
        rf_daemon_t *d;
        int brokers_cnt = 1, rc;

        if ((rc = parse(&conf, argc, argv, &brokers_cnt, run_usage))) {
                rf_config_destroy(&conf);
                return rc < 0 ? 0 : rc;
        }
        install_signals();
        d = rf_daemon_new(&conf, errstr, sizeof(errstr));
        if (!d) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                rf_config_destroy(&conf);
                return 1;
        }
        running_daemon = d;
        if (got_signal)
                rf_daemon_stop(d);
        rc = rf_daemon_run(d);
        if (rf_daemon_store_failed(d)) {
                /* The loop stopped on a store error (disk full, I/O
                 * error). RocksDB cannot be closed cleanly after a failed
                 * WAL write (it syncs that WAL on close), and need not be:
                 * the next start recovers from the WAL, as after a crash,
                 * which recfresh is built for. Exit without closing. */
                rf_log_error("daemon",
                             "exiting on a store error; the next "
                             "start recovers from the write-ahead log");
                fflush(NULL);
                _exit(1);
        }
        running_daemon = NULL;
        rf_daemon_destroy(d);
        rf_config_destroy(&conf);
        return rc;
}

static int write_bootstrap(const char *path, const char *text)
{
        char tmp[4096];
        FILE *fp;

        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        if (!(fp = fopen(tmp, "w")))
                return -1;
        if (fprintf(fp, "%s\n", text) < 0) {
                fclose(fp);
                return -1;
        }
        if (fclose(fp) != 0)
                return -1;
        return rename(tmp, path); /* readers never see a partial file */
}

int rf_cmd_broker(int argc, char **argv)
{
        char errstr[512];
        rf_config_t conf;
        rf_broker_t *b;
        int brokers_cnt = 1, rc;

        if ((rc = parse(&conf, argc, argv, &brokers_cnt, broker_usage))) {
                rf_config_destroy(&conf);
                return rc < 0 ? 0 : rc;
        }
        install_signals();
        b = rf_broker_new(brokers_cnt, (int)conf.embedded_partitions, errstr,
                          sizeof(errstr));
        if (!b) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                rf_config_destroy(&conf);
                return 1;
        }
        if (*conf.bootstrap_file &&
            write_bootstrap(conf.bootstrap_file, rf_broker_bootstraps(b))) {
                fprintf(stderr, "recfresh: %s: cannot write\n",
                        conf.bootstrap_file);
                rc = 1;
        } else {
                printf("%s\n", rf_broker_bootstraps(b));
                fflush(stdout);
                while (!got_signal)
                        pause();
                rf_log_info("broker", "stopping on signal %d", (int)got_signal);
        }
        rf_broker_destroy(b);
        rf_config_destroy(&conf);
        return rc;
}
