/*
 * recfresh - `recfresh config`: prints the effective configuration as a
 * loadable file (--dump, the default) or the reference of every option
 * (--help), both generated from the config table.
 */
#include <stdio.h>

#include "recfresh/cli.h"

enum { OPT_DUMP = 1100, OPT_HELP };

static const struct option config_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "dump", no_argument, NULL, OPT_DUMP },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

int rf_cmd_config(int argc, char **argv)
{
        rf_config_t conf;
        int help = 0, c, rc;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto out;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS,
                                config_opts, NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1)
                        continue;
                if (c == OPT_HELP) {
                        help = 1;
                } else if (c != OPT_DUMP) {
                        fprintf(stderr, "Usage: recfresh config [--dump | "
                                        "--help] [options]\n");
                        rc = 2;
                        goto out;
                }
        }
        rc = 0;
        if (help)
                rf_config_usage(stdout);
        else
                rf_config_dump(&conf, stdout);
out:
        rf_config_destroy(&conf);
        return rc;
}
