/*
 * recfresh - option handling shared by the CLI's commands (see cli.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/cli.h"
#include "recfresh/log.h"

int rf_cli_init(rf_config_t *conf, int argc, char **argv)
{
        char errstr[512];

        rf_config_init(conf);
        for (int i = 1; i < argc - 1; i++) {
                if (strcmp(argv[i], "-c") && strcmp(argv[i], "--config"))
                        continue;
                if (rf_config_load_file(conf, argv[i + 1], errstr,
                                        sizeof(errstr))) {
                        fprintf(stderr, "recfresh: %s\n", errstr);
                        return 2;
                }
        }
        optind = 1;
        return 0;
}

static int set_or_complain(rf_config_t *conf, const char *name,
                           const char *value)
{
        char errstr[512];

        if (rf_config_set(conf, name, value, errstr, sizeof(errstr))) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                return 2;
        }
        return 1;
}

int rf_cli_common(rf_config_t *conf, int c, const char *arg)
{
        char *copy, *eq;
        int r;

        switch (c) {
        case 'c':
                return 1; /* loaded by rf_cli_init */
        case 'd':
                return set_or_complain(conf, "data_dir", arg);
        case RF_CLI_OPT_BROKERS:
                return set_or_complain(conf, "kafka.brokers", arg);
        case 's':
        case 'X':
                copy = rf_strdup(arg);
                eq = strchr(copy, '=');
                if (!eq) {
                        fprintf(stderr,
                                "recfresh: -%c: expected NAME=VALUE, got "
                                "\"%s\"\n",
                                c, arg);
                        free(copy);
                        return 2;
                }
                *eq = '\0';
                if (c == 'X') {
                        rf_config_set_kafka(conf, copy, eq + 1);
                        r = 1;
                } else {
                        r = set_or_complain(conf, copy, eq + 1);
                }
                free(copy);
                return r;
        default:
                return 0;
        }
}

void rf_cli_done(rf_config_t *conf)
{
        int level = rf_log_level_parse(conf->log_level);

        if (level >= 0)
                rf_log_set_level(level);
}

rf_store_t *rf_cli_open_reader(const rf_config_t *conf)
{
        char errstr[512];
        rf_store_t *st = rf_store_open(conf->data_dir, RF_STORE_SECONDARY, NULL,
                                       errstr, sizeof(errstr));

        if (!st) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                return NULL;
        }
        if (rf_store_catch_up(st, errstr, sizeof(errstr)))
                rf_log_warn("cli", "%s", errstr);
        return st;
}
