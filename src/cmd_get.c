/*
 * recfresh - `recfresh get`: prints the served list of a subject and
 * surface, exactly as the read path serves it, beside a running daemon.
 */
#include <stdio.h>
#include <stdlib.h>

#include "recfresh/cli.h"
#include "recfresh/serve.h"

enum {
        OPT_SUBJECT = 1100,
        OPT_SURFACE,
        OPT_CONTEXT,
        OPT_LIMIT,
        OPT_REGION,
        OPT_JSON,
        OPT_HELP
};

static const struct option get_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "subject", required_argument, NULL, OPT_SUBJECT },
        { "surface", required_argument, NULL, OPT_SURFACE },
        { "context", required_argument, NULL, OPT_CONTEXT },
        { "limit", required_argument, NULL, OPT_LIMIT },
        { "region", required_argument, NULL, OPT_REGION },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void usage(FILE *fp)
{
        fprintf(fp, "Usage: recfresh get --subject S --surface F [--context "
                    "C] [--limit N]\n"
                    "                    [--region R] [--json]\n"
                    "Prints what the HTTP API serves for the key: the first N "
                    "entries (default\n20; 0 = all) of the stored list that "
                    "survive every tombstone, or the\nfallback list (of "
                    "region R if stored) when the list is missing, expired\n"
                    "beyond grace or consent-blocked, or to fill slots; with "
                    "lineage, skip\ncounts and served_from. --json prints "
                    "the HTTP API's JSON.\n\n" RF_CLI_COMMON_HELP);
}

int rf_cmd_get(int argc, char **argv)
{
        const char *subject = NULL, *surface = NULL, *context = NULL;
        const char *region = NULL;
        rf_serve_result_t res;
        rf_serve_env_t env;
        rf_serve_req_t req;
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
                case OPT_REGION:
                        region = optarg;
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
        /* The same function the HTTP API serves with; a CLI read asks for
         * no recompute (it cannot reach the daemon's queue). */
        env = (rf_serve_env_t){ st, &conf, NULL, NULL, 0 };
        req = (rf_serve_req_t){ subject, surface, context, region,
                                (size_t)limit };
        if ((rc = rf_serve_list(&env, &req, &res))) {
                fprintf(stderr, "recfresh get: %s\n", rf_err2str(rc));
                rf_serve_result_clear(&res);
                rc = 1;
                goto out;
        }
        if (json) {
                rf_buf_t buf = { 0 };
                rf_serve_result_to_json(&req, &res, &buf);
                printf("%s\n", buf.data);
                rf_buf_free(&buf);
        } else {
                rf_serve_result_print(&req, &res, stdout);
        }
        rf_serve_result_clear(&res);
out:
        rf_store_close(st);
        rf_config_destroy(&conf);
        return rc;
}
