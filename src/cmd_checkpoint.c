/*
 * recfresh - `recfresh checkpoint`: writes a RocksDB checkpoint of a store
 * (a consistent copy, SST files hard-linked), e.g. to seed a replay.
 *
 * A checkpoint needs the store opened read-write, so this command takes it
 * of a stopped store. A running daemon holds RocksDB's lock: it takes the
 * checkpoint itself on POST /admin/v1/checkpoint (http.h), which the
 * command's error names.
 */
#include <stdio.h>
#include <string.h>

#include "recfresh/cli.h"

enum { OPT_OUT = 1100, OPT_HELP };

static const struct option checkpoint_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "out", required_argument, NULL, OPT_OUT },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

int rf_cmd_checkpoint(int argc, char **argv)
{
        const char *out = NULL;
        rf_config_t conf;
        rf_store_t *st = NULL;
        char errstr[1024];
        int c, rc;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto done;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS,
                                checkpoint_opts, NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto done;
                if (rc == 1)
                        continue;
                if (c == OPT_OUT) {
                        out = optarg;
                        continue;
                }
                rc = c == OPT_HELP ? 0 : 2;
                fprintf(rc ? stderr : stdout,
                        "Usage: recfresh checkpoint --data-dir DIR --out "
                        "NEWDIR\n"
                        "Writes a consistent copy of a stopped store to "
                        "NEWDIR (which must not\nexist), e.g. to seed "
                        "`recfresh replay --checkpoint NEWDIR`.\n");
                goto done;
        }
        rc = 2;
        if (!out || optind < argc) {
                fprintf(stderr, "recfresh checkpoint: --out NEWDIR is "
                                "required\n");
                goto done;
        }
        rf_cli_done(&conf);
        rc = 1;
        if (!rf_store_exists(conf.data_dir)) {
                fprintf(stderr, "recfresh checkpoint: %s: no store here\n",
                        conf.data_dir);
                goto done;
        }
        st = rf_store_open(conf.data_dir, RF_STORE_PRIMARY, NULL, errstr,
                           sizeof(errstr));
        if (!st) {
                fprintf(stderr, "recfresh checkpoint: %s\n%s", errstr,
                        strstr(errstr, "lock")
                            ? "recfresh checkpoint: the store is in use by a "
                              "running daemon: ask it instead, with\n"
                              "  curl -X POST -H 'Authorization: Bearer "
                              "TOKEN' \\\n"
                              "    'http://ADDR/admin/v1/checkpoint?dir="
                              "/abs/new/dir'\n"
                            : "");
                goto done;
        }
        if (rf_store_checkpoint(st, out, errstr, sizeof(errstr))) {
                fprintf(stderr, "recfresh checkpoint: %s\n", errstr);
                goto done;
        }
        printf("checkpoint of %s written to %s\n", conf.data_dir, out);
        rc = 0;
done:
        rf_store_close(st);
        rf_config_destroy(&conf);
        return rc;
}
