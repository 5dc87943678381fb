/*
 * recfresh - `recfresh get`: prints the served list of a subject and
 * surface, exactly as the read path serves it, beside a running daemon.
 */
#include <stdio.h>
#include <stdlib.h>

#include "recfresh/cli.h"
#include "recfresh/read.h"

enum {
        OPT_SUBJECT = 1100,
        OPT_SURFACE,
        OPT_CONTEXT,
        OPT_LIMIT,
        OPT_JSON,
        OPT_HELP
};

static const struct option get_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "subject", required_argument, NULL, OPT_SUBJECT },
        { "surface", required_argument, NULL, OPT_SURFACE },
        { "context", required_argument, NULL, OPT_CONTEXT },
        { "limit", required_argument, NULL, OPT_LIMIT },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void usage(FILE *fp)
{
        fprintf(fp, "Usage: recfresh get --subject S --surface F [--context "
                    "C] [--limit N] [--json]\n"
                    "Prints the first N entries (default 20; 0 = all) of the "
                    "stored list that\nsurvive every tombstone, with the "
                    "list's lineage and skip counts.\n\n" RF_CLI_COMMON_HELP);
}

int rf_cmd_get(int argc, char **argv)
{
        const char *subject = NULL, *surface = NULL, *context = NULL;
        rf_read_result_t res;
        rf_read_req_t req;
        rf_config_t conf;
        rf_store_t *st = NULL;
        long limit = 20;
        int json = 0, c, rc;
        char *end;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto out;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS, get_opts,
                                NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1)
                        continue;
                rc = 0;
                switch (c) {
                case OPT_SUBJECT:
                        subject = optarg;
                        break;
                case OPT_SURFACE:
                        surface = optarg;
                        break;
                case OPT_CONTEXT:
                        context = optarg;
                        break;
                case OPT_LIMIT:
                        limit = strtol(optarg, &end, 10);
                        if (*end || limit < 0 || limit > 100000) {
                                fprintf(stderr, "recfresh get: --limit: "
                                                "expected 0..100000\n");
                                rc = 2;
                                goto out;
                        }
                        break;
                case OPT_JSON:
                        json = 1;
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
        if (!subject || !surface || optind < argc) {
                fprintf(stderr, "recfresh get: --subject and --surface are "
                                "required\n");
                rc = 2;
                goto out;
        }
        rf_cli_done(&conf);
        if (!(st = rf_cli_open_reader(&conf))) {
                rc = 1;
                goto out;
        }
        req = (rf_read_req_t){ subject, surface, context, (size_t)limit };
        if ((rc = rf_read_list(st, &conf, &req, &res))) {
                fprintf(stderr, "recfresh get: %s\n", rf_err2str(rc));
                rc = 1;
                goto out;
        }
        if (json) {
                rf_buf_t buf = { 0 };
                rf_read_result_to_json(&req, &res, &buf);
                printf("%s\n", buf.data);
                rf_buf_free(&buf);
        } else {
                rf_read_result_print(&req, &res, stdout);
        }
        rf_read_result_clear(&res);
out:
        rf_store_close(st);
        rf_config_destroy(&conf);
        return rc;
}
