/*
 * recfresh - what every subcommand of the CLI shares.
 *
 * Each command is a function `int rf_cmd_NAME(int argc, char **argv)`
 * (argv[0] is the command name), registered in main.c's command table and
 * living in src/cmd_NAME.c or main.c. It parses its own options with
 * getopt_long, listing RF_CLI_COMMON_LONGOPTS and RF_CLI_COMMON_SHORTOPTS
 * and passing each option to rf_cli_common() first. It returns the process
 * exit code: 0 success, 1 failure, 2 usage error.
 */
#ifndef RECFRESH_CLI_H
#define RECFRESH_CLI_H

#include <getopt.h>

#include "recfresh/config.h"
#include "recfresh/store.h"

/* -c/--config FILE, -d/--data-dir DIR, -s/--set NAME=VALUE,
 * -X PROP=VALUE (librdkafka pass-through), --brokers LIST. */
#define RF_CLI_COMMON_SHORTOPTS "c:d:s:X:"
#define RF_CLI_OPT_BROKERS      1000
#define RF_CLI_COMMON_LONGOPTS                                                 \
        { "config", required_argument, NULL, 'c' },                            \
            { "data-dir", required_argument, NULL, 'd' },                      \
            { "set", required_argument, NULL, 's' },                           \
        {                                                                      \
                "brokers", required_argument, NULL, RF_CLI_OPT_BROKERS         \
        }

/** The common options' help text, for each command's usage. */
#define RF_CLI_COMMON_HELP                                                     \
        "  -c, --config FILE       config file (name = value lines)\n"         \
        "  -d, --data-dir DIR      RocksDB directory (data_dir)\n"             \
        "  -s, --set NAME=VALUE    set any config option\n"                    \
        "  -X PROP=VALUE           librdkafka property, passed through\n"      \
        "      --brokers LIST      Kafka bootstrap servers (kafka.brokers)\n"

/**
 * Initialises \p conf with defaults and loads the --config file if argv has
 * one (before other options, so flags override the file), resetting
 * getopt. Prints errors. @returns 0 or 2.
 */
int rf_cli_init(rf_config_t *conf, int argc, char **argv);

/**
 * Applies common option \p c with \p arg to \p conf.
 * @returns 1 if handled, 0 if \p c is not a common option, 2 on a bad
 *          value (message printed).
 */
int rf_cli_common(rf_config_t *conf, int c, const char *arg);

/** Applies settings that take effect after parsing (log level). */
void rf_cli_done(rf_config_t *conf);

/**
 * Opens conf->data_dir for reading beside a running daemon (a RocksDB
 * secondary instance, caught up). Prints errors. @returns the store or NULL.
 */
rf_store_t *rf_cli_open_reader(const rf_config_t *conf);

/* Commands. */
int rf_cmd_run(int argc, char **argv);
int rf_cmd_broker(int argc, char **argv);
int rf_cmd_get(int argc, char **argv);
int rf_cmd_config(int argc, char **argv);
int rf_cmd_runs(int argc, char **argv);
int rf_cmd_load(int argc, char **argv);
int rf_cmd_refresh(int argc, char **argv);
int rf_cmd_queue(int argc, char **argv);
int rf_cmd_replay(int argc, char **argv);
int rf_cmd_export(int argc, char **argv);
int rf_cmd_digest(int argc, char **argv);
int rf_cmd_checkpoint(int argc, char **argv);
int rf_cmd_topics(int argc, char **argv);

#endif /* RECFRESH_CLI_H */
