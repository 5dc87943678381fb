/*
 * recfresh - `recfresh load`: bulk-loads a daily batch file of lists as
 * one run (bulkload.h), then validates and activates it as runs.h says.
 * Beside a running daemon the job goes through the spool and the daemon
 * ingests it; against a stopped store it is ingested here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recfresh/bulkload.h"
#include "recfresh/cli.h"
#include "recfresh/tomb_set.h"

enum {
        OPT_RUN_ID = 1100,
        OPT_SURFACES,
        OPT_GENERATED_AT,
        OPT_EXPECTED,
        OPT_HELP
};

static const struct option load_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "run-id", required_argument, NULL, OPT_RUN_ID },
        { "surfaces", required_argument, NULL, OPT_SURFACES },
        { "generated-at", required_argument, NULL, OPT_GENERATED_AT },
        { "expected", required_argument, NULL, OPT_EXPECTED },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void usage(FILE *fp)
{
        fprintf(fp, "Usage: recfresh load --run-id R [--surfaces S1,S2] "
                    "[--generated-at T] [--expected N] FILE\n"
                    "Loads FILE (NDJSON lists as on recs.lists.v1; .zst "
                    "compressed or not) as batch\nrun R: sorted SST files are "
                    "ingested, the run is validated and, if it passes,\n"
                    "activated on its surfaces at once. Lines that do not "
                    "parse are reported as\nFILE:LINE and count against "
                    "validation. Beside a running daemon the load is\nhanded "
                    "to it (spool in data_dir/spool) and this waits for its "
                    "verdict.\nMemory is bounded by load.memory_mb; "
                    "load.threads parse lines (0: one per CPU).\n"
                    "  --surfaces       surfaces the run replaces (default: "
                    "those in FILE)\n"
                    "  --generated-at   RFC 3339 time of the run (default: "
                    "newest list's)\n"
                    "  --expected       lists expected (coverage gate)\n"
                    "Exit status: 0 active, 1 failed validation or error, 2 "
                    "usage.\n\n" RF_CLI_COMMON_HELP);
}

/* The job directory while it is built (NULL before and once it is handed
 * to the spool): what SIGINT, SIGTERM or SIGHUP removes before the process
 * dies of the signal. A load killed otherwise leaves it to the sweep
 * (rf_runs_spool_sweep). */
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *job_building;
static const int job_signals[] = { SIGINT, SIGTERM, SIGHUP };

static void job_set(const char *dir)
{
        pthread_mutex_lock(&job_lock);
        job_building = dir;
        pthread_mutex_unlock(&job_lock);
}

/* The signals are blocked in every thread; this one waits for them. */
static void *signal_thread(void *arg)
{
        sigset_t *set = arg, one;
        int sig;

        if (sigwait(set, &sig) != 0)
                return NULL;
        /* Holds the lock to the end: the job is not handed over half
         * removed. */
        pthread_mutex_lock(&job_lock);
        if (job_building) {
                fprintf(stderr, "recfresh load: %s: removing %s\n",
                        strsignal(sig), job_building);
                rf_runs_remove_job(job_building);
        }
        /* Die of the signal, as without this thread. */
        signal(sig, SIG_DFL);
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
        _exit(128 + sig);
}

int rf_cmd_load(int argc, char **argv)
{
        const char *run_id = NULL, *file;
        char **surfaces = NULL, errstr[1024], result[4096];
        size_t surface_cnt = 0;
        int64_t gen = 0, expected = -1;
        rf_config_t conf;
        rf_store_t *st = NULL;
        rf_run_info_t ri = { 0 };
        rf_buf_t job = { 0 }, spool = { 0 };
        int c, r, rc, daemon = 0, sigthr = 0, lockfd = -1;
        static sigset_t sigs;
        pthread_t thr;
        char *end;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto out;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS, load_opts,
                                NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1)
                        continue;
                rc = 0;
                switch (c) {
                case OPT_RUN_ID:
                        run_id = optarg;
                        break;
                case OPT_SURFACES:
                        for (char *s = strtok(optarg, ","); s;
                             s = strtok(NULL, ",")) {
                                surfaces =
                                    rf_realloc(surfaces, (surface_cnt + 2) *
                                                             sizeof(char *));
                                surfaces[surface_cnt++] = rf_strdup(s);
                                surfaces[surface_cnt] = NULL;
                        }
                        break;
                case OPT_GENERATED_AT:
                        if (rf_time_parse(optarg, &gen)) {
                                fprintf(stderr, "recfresh load: "
                                                "--generated-at: expected an "
                                                "RFC 3339 time\n");
                                rc = 2;
                                goto out;
                        }
                        break;
                case OPT_EXPECTED:
                        expected = strtoll(optarg, &end, 10);
                        if (*end || expected < 0) {
                                fprintf(stderr, "recfresh load: --expected: "
                                                "expected a count\n");
                                rc = 2;
                                goto out;
                        }
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
        if (!run_id || !*run_id || optind + 1 != argc) {
                fprintf(stderr, "recfresh load: --run-id and one FILE are "
                                "required\n");
                rc = 2;
                goto out;
        }
        file = argv[optind];
        rf_cli_done(&conf);
        /* Before any thread starts (the store's, the parsers'): they all
         * inherit the mask, and only signal_thread takes the signals. */
        sigemptyset(&sigs);
        for (size_t i = 0; i < RF_ARRAY_SIZE(job_signals); i++) {
                struct sigaction sa;
                /* One ignored when we started (nohup) stays ignored. */
                if (sigaction(job_signals[i], NULL, &sa) == 0 &&
                    sa.sa_handler != SIG_IGN)
                        sigaddset(&sigs, job_signals[i]);
        }
        if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) == 0 &&
            pthread_create(&thr, NULL, signal_thread, &sigs) == 0)
                sigthr = 1;
        if (!(st = rf_runs_open_cli(&conf, &daemon))) {
                rc = 1;
                goto out;
        }

        /* The job is built beside the spool, then renamed into it whole;
         * what loads that died left there goes first. */
        rf_buf_printf(&spool, "%s/spool", conf.data_dir);
        rf_buf_printf(&job, "%s/.tmp-load-%d-XXXXXX", spool.data,
                      (int)getpid());
        if (mkdir(spool.data, 0755) == 0 || errno == EEXIST)
                rf_runs_spool_sweep(spool.data);
        if (!mkdtemp(job.data)) {
                fprintf(stderr, "recfresh load: %s: %s\n", job.data,
                        strerror(errno));
                rf_buf_reset(&job); /* not ours to remove */
                rc = 1;
                goto out;
        }
        /* Held while the job is built: a sweep leaves it alone. */
        lockfd = open(job.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lockfd >= 0)
                flock(lockfd, LOCK_EX);
        job_set(job.data);
        rf_bulkload_opts_t o = {
                .run_id = run_id,
                .surfaces = (const char *const *)surfaces,
                .surface_cnt = surface_cnt,
                .generated_at = gen,
                .expected_lists = expected,
                .report = stderr,
        };
        /* Validation counts entries already tombstoned: as reads do, with
         * the set of entities in force first (tomb_set.h). */
        rf_tombset_t *ts = rf_tombset_new();
        rf_store_set_tombset(st, ts);
        if (rf_tombset_load(ts, st) != 0)
                rf_store_set_tombset(st, NULL); /* every check asks */
        r = rf_bulkload_build(st, &conf, &o, file, job.data, &ri, errstr,
                              sizeof(errstr));
        rf_store_set_tombset(st, NULL);
        rf_tombset_destroy(ts);
        if (r) {
                fprintf(stderr, "recfresh load: %s\n", errstr);
                rc = 1;
                goto out;
        }
        for (size_t i = 0; i < ri.stat_cnt; i++)
                fprintf(
                    stderr, "recfresh load: run %s: surface %s: %lld lists\n",
                    run_id, ri.stats[i].surface, (long long)ri.stats[i].lists);
        if (ri.malformed)
                fprintf(stderr,
                        "recfresh load: %lld malformed lines (counted "
                        "against validation)\n",
                        (long long)ri.malformed);
        if (daemon) {
                rf_store_close(st); /* the secondary is no longer needed */
                st = NULL;
                fprintf(stderr, "recfresh load: daemon running: handing "
                                "the load over through the spool\n");
        }
        job_set(NULL); /* from here on, the spool's */
        if (rf_runs_run_job(st, &conf, job.data, "load", result, sizeof(result),
                            errstr, sizeof(errstr))) {
                fprintf(stderr, "recfresh load: %s\n", errstr);
                rc = 1;
                goto out;
        }
        printf("%s", result);
        if (!*result || result[strlen(result) - 1] != '\n')
                printf("\n");
        rc = strncmp(result, "ok", 2) ? 1 : 0;
out:
        job_set(NULL);
        if (job.len)
                rf_runs_remove_job(job.data); /* left only if build failed */
        if (lockfd >= 0)
                close(lockfd);
        /* Closed while the signal thread still takes the signals: a store
         * with much to flush can take a while, and Ctrl-C must end it. */
        rf_store_close(st);
        if (sigthr) {
                pthread_cancel(thr); /* sigwait() is a cancellation point */
                pthread_join(thr, NULL);
                /* One that came after the thread's end dies now. */
                pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
        }
        rf_run_info_clear(&ri);
        rf_strv_free(surfaces);
        rf_buf_free(&job);
        rf_buf_free(&spool);
        rf_config_destroy(&conf);
        return rc;
}
