/*
 * recfresh - `recfresh digest`: prints a digest of a store's logical state
 * (digest.h), to check that a replay reproduced the live store.
 */
#include <stdio.h>

#include "recfresh/cli.h"
#include "recfresh/digest.h"

enum { OPT_HELP = 1100 };

static const struct option digest_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

int rf_cmd_digest(int argc, char **argv)
{
        rf_config_t conf;
        rf_store_t *st = NULL;
        rf_digest_t d;
        int c, rc;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto out;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS,
                                digest_opts, NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1)
                        continue;
                rc = c == OPT_HELP ? 0 : 2;
                fprintf(rc ? stderr : stdout,
                        "Usage: recfresh digest --data-dir DIR\n"
                        "Prints a SHA-256 digest of the store's logical "
                        "state (lists, index,\ntombstones, activity, runs, "
                        "versions; consent state without its\npseudonyms), "
                        "and one line per column family. Works beside a "
                        "running daemon.\n");
                goto out;
        }
        rc = 0;
        rf_cli_done(&conf);
        if (!(st = rf_cli_open_reader(&conf))) {
                rc = 1;
                goto out;
        }
        rf_digest_store(st, &d);
        rf_digest_print(&d, stdout);
out:
        rf_store_close(st);
        rf_config_destroy(&conf);
        return rc;
}
