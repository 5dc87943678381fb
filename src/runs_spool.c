/*
 * recfresh - the command-line side of batch runs (runs.h): handing a job to
 * a running daemon through the spool (data_dir/spool) and waiting for its
 * verdict, or taking it in-process against a stopped store; and printing a
 * run record for `recfresh runs show`.
 *
 * The spool: a job is built outside it, then renamed in whole under a name
 * that orders jobs by time ("<ms>-load-<pid>" directories hold a bulk load,
 * "<ms>-rollback-<pid>" files a rollback request). The daemon takes one job
 * per step into its batch transaction and, once committed, removes it and
 * renames "<job>.result" into place; a failed commit leaves the job to be
 * taken again.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "recfresh/log.h"
#include "recfresh/runs.h"

/* @returns 1 if the spool of \p data_dir holds a job not yet taken. */
static int spool_has_jobs(const char *data_dir)
{
        rf_buf_t p = { 0 };
        struct dirent *de;
        DIR *d;
        int any = 0;

        rf_buf_printf(&p, "%s/spool", data_dir);
        d = opendir(p.data);
        while (d && !any && (de = readdir(d)))
                any = rf_runs_spool_job_name(de->d_name);
        if (d)
                closedir(d);
        rf_buf_free(&p);
        return any;
}

int rf_runs_spool_submit(const char *data_dir, const char *tmp_path,
                         const char *kind, char **job_name, char *errstr,
                         size_t errstr_size)
{
        rf_buf_t dir = { 0 }, name = { 0 }, dst = { 0 };
        int rc = 0;

        rf_buf_printf(&dir, "%s/spool", data_dir);
        rf_buf_printf(&name, "%013lld-%s-%d", (long long)rf_now_ms(), kind,
                      (int)getpid());
        rf_buf_printf(&dst, "%s/%s", dir.data, name.data);
        if ((mkdir(dir.data, 0755) && errno != EEXIST) ||
            rename(tmp_path, dst.data) != 0) {
                snprintf(errstr, errstr_size, "%s: %s", dst.data,
                         strerror(errno));
                rc = RF_EIO;
        } else {
                *job_name = rf_strdup(name.data);
        }
        rf_buf_free(&dir);
        rf_buf_free(&name);
        rf_buf_free(&dst);
        return rc;
}

int rf_runs_spool_wait(const char *data_dir, const char *job_name,
                       int64_t timeout_ms, char *result, size_t result_size)
{
        rf_buf_t p = { 0 };
        int64_t deadline = rf_mono_ms() + timeout_ms;
        int rc = RF_ENOENT;

        rf_buf_printf(&p, "%s/spool/%s.result", data_dir, job_name);
        for (;;) {
                FILE *fp = fopen(p.data, "r");
                if (fp) {
                        size_t n = fread(result, 1, result_size - 1, fp);
                        result[n] = '\0';
                        fclose(fp);
                        unlink(p.data);
                        rc = 0;
                        break;
                }
                if (rf_mono_ms() >= deadline)
                        break;
                /* Polling a file the daemon renames into place: the wait
                 * is bounded by the deadline. */
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        rf_buf_free(&p);
        return rc;
}

void rf_run_info_print(const rf_run_info_t *ri, FILE *fp)
{
        char t[40];

        fprintf(fp, "run %s\n  state:         %s%s\n  source:        %s\n",
                ri->run_id, rf_run_state2str(ri->state),
                ri->kept ? "" : " (version deleted)", ri->source);
        fprintf(fp, "  surfaces:     ");
        for (size_t i = 0; i < ri->surface_cnt; i++)
                fprintf(fp, " %s", ri->surfaces[i]);
        fprintf(fp, "\n");
        if (ri->generated_at)
                fprintf(fp, "  generated_at:  %s\n",
                        rf_time_format(ri->generated_at, t, sizeof(t)));
        fprintf(fp, "  first_seen_at: %s\n",
                rf_time_format(ri->first_seen_at, t, sizeof(t)));
        if (ri->completed_at)
                fprintf(fp, "  completed_at:  %s\n",
                        rf_time_format(ri->completed_at, t, sizeof(t)));
        if (ri->activated_at)
                fprintf(fp, "  activated_at:  %s\n",
                        rf_time_format(ri->activated_at, t, sizeof(t)));
        if (ri->expected_lists >= 0)
                fprintf(fp, "  expected_lists: %lld\n",
                        (long long)ri->expected_lists);
        fprintf(fp, "  late=%lld blocked=%lld malformed=%lld\n",
                (long long)ri->late, (long long)ri->blocked,
                (long long)ri->malformed);
        for (size_t i = 0; i < ri->stat_cnt; i++) {
                const rf_run_stats_t *s = &ri->stats[i];
                fprintf(fp,
                        "  surface %s: lists=%lld subjects=%lld empty=%lld "
                        "duplicates=%lld short=%lld entries=%lld "
                        "invalid=%lld\n",
                        s->surface, (long long)s->lists, (long long)s->subjects,
                        (long long)s->empty, (long long)s->dup,
                        (long long)s->shortl, (long long)s->entries,
                        (long long)s->invalid);
        }
        if (ri->reason_cnt)
                fprintf(fp, "  reasons:\n");
        for (size_t i = 0; i < ri->reason_cnt; i++)
                fprintf(fp, "    - %s\n", ri->reasons[i]);
}

/* ---- the CLI side -------------------------------------------------------*/

rf_store_t *rf_runs_open_cli(const rf_config_t *conf, int *daemon_running)
{
        rf_store_opts_t so;
        char errstr[512];
        rf_store_t *st;

        rf_config_store_opts(conf, &so);
        *daemon_running = 0;
        st = rf_store_open(conf->data_dir, RF_STORE_PRIMARY, &so, errstr,
                           sizeof(errstr));
        if (st)
                return st;
        /* RocksDB allows one writer: a held LOCK means a daemon runs. */
        if (!strstr(errstr, "lock") && !strstr(errstr, "LOCK")) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                return NULL;
        }
        *daemon_running = 1;
        st = rf_store_open(conf->data_dir, RF_STORE_SECONDARY, NULL, errstr,
                           sizeof(errstr));
        if (!st) {
                fprintf(stderr, "recfresh: %s\n", errstr);
                return NULL;
        }
        if (rf_store_catch_up(st, errstr, sizeof(errstr)))
                rf_log_warn("runs", "%s", errstr);
        return st;
}

int rf_runs_run_job(rf_store_t *primary, const rf_config_t *conf,
                    const char *tmp_path, const char *kind, char *result,
                    size_t result_size, char *errstr, size_t errstr_size)
{
        char *name = NULL;
        int rc;

        if ((rc = rf_runs_spool_submit(conf->data_dir, tmp_path, kind, &name,
                                       errstr, errstr_size)))
                return rc;
        if (!primary) {
                rc =
                    rf_runs_spool_wait(conf->data_dir, name, conf->load_wait_ms,
                                       result, result_size);
                if (rc)
                        snprintf(errstr, errstr_size,
                                 "no verdict from the daemon within "
                                 "load.wait; job %s stays in the spool",
                                 name);
                free(name);
                return rc;
        }

        /* No daemon: take the spool (ours is the newest job) here. */
        rf_apply_ctx_t ctx;
        rf_runs_t *r = rf_runs_new(conf->data_dir);
        rf_buf_t res = { 0 };
        rf_apply_ctx_init(&ctx, primary, conf, NULL, NULL);
        rf_buf_printf(&res, "%s/spool/%s.result", conf->data_dir, name);
        do {
                ctx.now_ms = rf_now_ms();
                rc = rf_runs_step(r, &ctx, 1);
                if (rc == 0)
                        rc = rf_txn_commit(ctx.txn, errstr, errstr_size);
                else
                        snprintf(errstr, errstr_size, "%s", rf_err2str(rc));
                rf_runs_committed(r, rc == 0);
        } while (rc == 0 && (rf_runs_busy(r) || access(res.data, F_OK) != 0) &&
                 (rf_runs_busy(r) || spool_has_jobs(conf->data_dir)));
        if (rc == 0 &&
            rf_runs_spool_wait(conf->data_dir, name, 0, result, result_size)) {
                snprintf(errstr, errstr_size, "job %s: no result", name);
                rc = RF_EIO;
        }
        rf_buf_free(&res);
        rf_apply_ctx_clear(&ctx);
        rf_runs_destroy(r);
        free(name);
        return rc;
}
