/*
 * recfresh - `recfresh runs`: lists batch runs, shows one with its
 * validation measures and reasons, and rolls back. list and show read
 * beside a running daemon (secondary); rollback is handed to the running
 * daemon through the spool, or applied here to a stopped store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recfresh/cli.h"
#include "recfresh/runs.h"

enum { OPT_TO = 1100, OPT_RUN, OPT_HELP };

static const struct option runs_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "to", required_argument, NULL, OPT_TO },
        { "run", required_argument, NULL, OPT_RUN },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void usage(FILE *fp)
{
        fprintf(fp, "Usage: recfresh runs list\n"
                    "       recfresh runs show RUN\n"
                    "       recfresh runs rollback [--run RUN] [--to RUN]\n"
                    "list: every batch run, newest first, with its state.\n"
                    "show: one run: state, surfaces, validation measures per "
                    "surface and, for a\n      failed run, why.\n"
                    "rollback: the most recently activated run (or --run) "
                    "stops serving; each of\n      its surfaces switches back "
                    "to its previous kept version, or to --to RUN,\n      "
                    "atomically. Beside a running daemon, the daemon applies "
                    "it.\n\n" RF_CLI_COMMON_HELP);
}

static void print_list(rf_store_t *st)
{
        rf_run_info_t *v;
        size_t n;
        char g[40], a[40];

        rf_runs_list(st, &v, &n);
        printf("%-32s %-18s %-8s %-10s %-24s %s\n", "RUN", "STATE", "KEPT",
               "LISTS", "GENERATED_AT", "ACTIVATED_AT");
        for (size_t i = 0; i < n; i++) {
                long long lists = 0;
                for (size_t s = 0; s < v[i].stat_cnt; s++)
                        lists += v[i].stats[s].lists;
                printf("%-32s %-18s %-8s %-10lld %-24s %s\n", v[i].run_id,
                       rf_run_state2str(v[i].state), v[i].kept ? "yes" : "no",
                       lists,
                       v[i].generated_at
                           ? rf_time_format(v[i].generated_at, g, sizeof(g))
                           : "-",
                       v[i].activated_at
                           ? rf_time_format(v[i].activated_at, a, sizeof(a))
                           : "-");
                rf_run_info_clear(&v[i]);
        }
        free(v);
}

static int show(rf_store_t *st, const char *run_id)
{
        rf_run_info_t ri;
        int r = rf_runs_get(st, NULL, run_id, &ri);

        if (r == RF_ENOENT) {
                fprintf(stderr, "recfresh runs: no run \"%s\"\n", run_id);
                return 1;
        }
        if (r) {
                fprintf(stderr, "recfresh runs: %s\n", rf_err2str(r));
                return 1;
        }
        rf_run_info_print(&ri, stdout);
        for (size_t i = 0; i < ri.surface_cnt; i++) {
                char *active = NULL;
                if (rf_runs_active(st, ri.surfaces[i], &active, NULL) == 0)
                        printf("  surface %s serves run %s\n", ri.surfaces[i],
                               active);
                free(active);
        }
        rf_run_info_clear(&ri);
        return 0;
}

static int rollback(const rf_config_t *conf, const char *run_id, const char *to)
{
        char errstr[1024], result[2048];
        rf_buf_t spool = { 0 }, tmp = { 0 };
        rf_store_t *st;
        int daemon, rc = 1;

        if (!(st = rf_runs_open_cli(conf, &daemon)))
                return 1;
        if (daemon) {
                rf_store_close(st);
                st = NULL;
        }
        rf_buf_printf(&spool, "%s/spool", conf->data_dir);
        rf_buf_printf(&tmp, "%s/.tmp-rollback-%d", spool.data, (int)getpid());
        if ((mkdir(spool.data, 0755) && errno != EEXIST) ||
            rf_runs_write_rollback(tmp.data, run_id, to, errstr,
                                   sizeof(errstr)) ||
            rf_runs_run_job(st, conf, tmp.data, "rollback", result,
                            sizeof(result), errstr, sizeof(errstr))) {
                fprintf(stderr, "recfresh runs rollback: %s\n",
                        errno && !*errstr ? strerror(errno) : errstr);
                rf_runs_remove_job(tmp.data);
                goto out;
        }
        printf("%s%s", result,
               *result && result[strlen(result) - 1] == '\n' ? "" : "\n");
        rc = strncmp(result, "ok", 2) ? 1 : 0;
out:
        rf_store_close(st);
        rf_buf_free(&spool);
        rf_buf_free(&tmp);
        return rc;
}

int rf_cmd_runs(int argc, char **argv)
{
        const char *to = NULL, *run = NULL, *sub;
        rf_config_t conf;
        rf_store_t *st = NULL;
        int c, rc;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto out;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS, runs_opts,
                                NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1)
                        continue;
                rc = 0;
                switch (c) {
                case OPT_TO:
                        to = optarg;
                        break;
                case OPT_RUN:
                        run = optarg;
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
        sub = optind < argc ? argv[optind] : "";
        rf_cli_done(&conf);
        if (!strcmp(sub, "list") && optind + 1 == argc) {
                if (!(st = rf_cli_open_reader(&conf))) {
                        rc = 1;
                        goto out;
                }
                print_list(st);
        } else if (!strcmp(sub, "show") && optind + 2 == argc) {
                if (!(st = rf_cli_open_reader(&conf))) {
                        rc = 1;
                        goto out;
                }
                rc = show(st, argv[optind + 1]);
        } else if (!strcmp(sub, "rollback") && optind + 1 == argc) {
                rc = rollback(&conf, run, to);
        } else {
                usage(stderr);
                rc = 2;
        }
out:
        rf_store_close(st);
        rf_config_destroy(&conf);
        return rc;
}
