/*
 * recfresh - the serving policy (see serve.h): the subject's own list
 * through rf_read_list(), its expiry and grace, and the fallback list that
 * replaces or tops it up, with every entry checked for the requesting user.
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/codec_json.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/runs.h"
#include "recfresh/serve.h"

_Static_assert(RF_SERVED__CNT == RF_METRIC_SERVED_FROM_CNT,
               "metrics.h: reads[] must have one slot per served_from");
_Static_assert(RF_FILTER__CNT == RF_METRIC_FILTER_CNT,
               "metrics.h: read_filtered[] must have one slot per filter");

static const char *const served_names[RF_SERVED__CNT] = {
        [RF_SERVED_PRECOMPUTED] = "precomputed",
        [RF_SERVED_STALE] = "stale",
        [RF_SERVED_FALLBACK] = "fallback",
        [RF_SERVED_EMPTY] = "empty",
};

static const char *const fb_names[RF_FB__CNT] = {
        [RF_FB_NONE] = "none",
        [RF_FB_NO_LIST] = "no_list",
        [RF_FB_EXPIRED] = "expired",
        [RF_FB_CONSENT] = "consent_revoked",
        [RF_FB_TOO_FEW] = "too_few_valid",
};

const char *rf_served_from2str(rf_served_from_t s)
{
        if ((int)s < 0 || s >= RF_SERVED__CNT)
                return "unknown";
        return served_names[s];
}

const char *rf_fallback_why2str(rf_fallback_why_t w)
{
        if ((int)w < 0 || w >= RF_FB__CNT)
                return "unknown";
        return fb_names[w];
}

/* Reads the fallback list for the request: the first stored of (context,
 * region), (context, ""), ("", region), ("", ""). @returns 0 with *fbp set
 * (NULL when none is stored) or a store error. */
static int fallback_find(rf_store_t *st, const rf_serve_req_t *req,
                         rf_list_t **fbp)
{
        const char *ctx = req->context_key ? req->context_key : "";
        const char *reg = req->region ? req->region : "";
        const char *cands[4][2] = {
                { ctx, reg }, { ctx, "" }, { "", reg }, { "", "" }
        };
        rf_buf_t k = { 0 }, v = { 0 };
        int r = 0;

        *fbp = NULL;
        for (int i = 0; i < 4 && !*fbp; i++) {
                /* Skip candidates equal to an earlier one. */
                int dup = 0;
                for (int j = 0; j < i; j++)
                        dup |= !strcmp(cands[i][0], cands[j][0]) &&
                               !strcmp(cands[i][1], cands[j][1]);
                if (dup)
                        continue;
                rf_buf_reset(&k);
                rf_key_fallback(&k, req->surface, cands[i][0], cands[i][1]);
                /* The active batch version or the incremental list. */
                r = rf_runs_lookup(st, req->surface, k.data, k.len, &v);
                if (r == RF_ENOENT) {
                        r = 0;
                        continue;
                }
                if (r != 0)
                        break;
                if (rf_list_decode(v.data, v.len, fbp) != 0) {
                        rf_log_error("serve",
                                     "stored fallback list %s/%s/%s is "
                                     "corrupt: skipped",
                                     req->surface, cands[i][0], cands[i][1]);
                        *fbp = NULL;
                }
        }
        rf_buf_free(&k);
        rf_buf_free(&v);
        return r;
}

/* Appends surviving fallback entries until res holds \p target items. */
static int fallback_fill(rf_store_t *st, const rf_serve_req_t *req,
                         rf_serve_result_t *res, rf_idset_t *seen,
                         size_t target)
{
        const rf_list_t *fb = res->fallback;
        rf_checker_t ck;
        int r;

        /* A region-less fallback list takes its stock region from the
         * request, so regional stock-outs still apply. */
        rf_checker_init(&ck, st, NULL, req->subject_id,
                        *fb->region ? fb->region
                                    : (req->region ? req->region : ""));
        for (size_t i = 0; i < fb->item_cnt && res->item_cnt < target; i++) {
                const rf_entry_t *e = &fb->items[i];
                rf_filter_t f;

                res->scanned++;
                if (rf_idset_add(seen, e->item_id))
                        f = RF_FILTER_DUPLICATE;
                else
                        f = rf_checker_check(&ck, e);
                if (f != RF_FILTER_NONE) {
                        res->filtered[f]++;
                        continue;
                }
                res->items[res->item_cnt++] =
                    (rf_serve_item_t){ e, (uint32_t)i, 1 };
                res->fallback_filled++;
        }
        r = ck.err; /* unchecked entries were skipped: fail the read */
        rf_checker_clear(&ck);
        return r;
}

static void count(const rf_serve_result_t *res)
{
        RF_METRIC_INC(reads[res->served_from]);
        for (int f = 0; f < RF_FILTER__CNT; f++)
                if (res->filtered[f])
                        RF_METRIC_ADD(read_filtered[f], res->filtered[f]);
        if (res->item_cnt == 0)
                RF_METRIC_INC(reads_empty);
        if (res->fallback_filled)
                RF_METRIC_ADD(read_fallback_filled, res->fallback_filled);
}

int rf_serve_list(const rf_serve_env_t *env, const rf_serve_req_t *req,
                  rf_serve_result_t *res)
{
        const rf_surface_conf_t *sc =
            rf_config_surface(env->conf, req->surface);
        int64_t now = env->now_ms ? env->now_ms : rf_now_ms();
        rf_read_req_t rreq = { req->subject_id, req->surface, req->context_key,
                               req->limit };
        rf_read_result_t own;
        size_t min_valid = (size_t)sc->min_valid, target, own_cnt = 0;
        int own_used = 0, r;
        rf_idset_t seen = { 0 };

        memset(res, 0, sizeof(*res));
        r = rf_read_list(env->st, env->conf, &rreq, &own);
        if (r != 0) {
                rf_read_result_clear(&own);
                RF_METRIC_INC(read_errors);
                return r;
        }
        res->status = own.status;
        res->list = own.list;
        own.list = NULL;

        if (own.status == RF_READ_CONSENT_BLOCKED) {
                res->fb_why = RF_FB_CONSENT;
        } else if (own.status == RF_READ_NO_LIST) {
                res->fb_why = RF_FB_NO_LIST;
        } else if (now >= res->list->expires_at) {
                res->expired = 1;
                res->recompute = "expired";
                /* Past the grace period the list is not served at all. */
                if (now - res->list->expires_at < sc->grace_ms)
                        own_used = 1;
                else
                        res->fb_why = RF_FB_EXPIRED;
        } else {
                own_used = 1;
        }
        if (own_used)
                own_cnt = own.served_cnt;

        /* How many entries the response should hold: the limit, or for
         * "all" every survivor of the own list but at least min_valid. */
        if (req->limit)
                target = req->limit;
        else if (own_used)
                target = own_cnt > min_valid ? own_cnt : min_valid;
        else
                target = SIZE_MAX;

        /* Consult the fallback when the own list is not served, or fewer
         * than min(limit, min_valid) of its entries survived. */
        if (own_used && own_cnt < target && own_cnt < min_valid)
                res->fb_why = RF_FB_TOO_FEW;
        if (res->fb_why != RF_FB_NONE &&
            strcmp(req->subject_id, RF_FALLBACK_SUBJECT) != 0) {
                r = fallback_find(env->st, req, &res->fallback);
                if (r != 0) {
                        rf_read_result_clear(&own);
                        RF_METRIC_INC(read_errors);
                        return r;
                }
        }

        size_t cap = own_cnt + (res->fallback ? res->fallback->item_cnt : 0);
        if (cap > target)
                cap = target;
        res->items = rf_calloc(cap ? cap : 1, sizeof(*res->items));
        rf_idset_init(&seen,
                      own_cnt + (res->fallback ? res->fallback->item_cnt : 0));
        if (own_used) {
                for (size_t i = 0; i < own_cnt && res->item_cnt < cap; i++) {
                        const rf_served_t *s = &own.served[i];
                        rf_idset_add(&seen, s->entry->item_id);
                        res->items[res->item_cnt++] =
                            (rf_serve_item_t){ s->entry, s->position, 0 };
                }
                memcpy(res->filtered, own.filtered, sizeof(res->filtered));
                res->scanned = own.scanned;
        }
        int ferr = 0;
        if (res->fallback)
                ferr = fallback_fill(env->st, req, res, &seen, cap);
        rf_idset_free(&seen);
        rf_read_result_clear(&own);
        if (ferr) {
                rf_serve_result_clear(res);
                return ferr;
        }

        if (res->item_cnt == 0)
                res->served_from = RF_SERVED_EMPTY;
        else if (res->fallback_filled == res->item_cnt)
                res->served_from = RF_SERVED_FALLBACK;
        else
                res->served_from =
                    res->expired ? RF_SERVED_STALE : RF_SERVED_PRECOMPUTED;

        if (res->recompute) {
                RF_METRIC_INC(read_recomputes);
                if (env->recompute)
                        env->recompute(env->recompute_opaque, req->subject_id,
                                       req->surface,
                                       req->context_key ? req->context_key : "",
                                       res->recompute);
        }
        count(res);
        return 0;
}

void rf_serve_result_clear(rf_serve_result_t *res)
{
        rf_list_destroy(res->list);
        rf_list_destroy(res->fallback);
        free(res->items);
        memset(res, 0, sizeof(*res));
}

/* ---- output -------------------------------------------------------------*/

/* The response is built with appends, not printf: at tens of thousands
 * of reads a second, formatting was a fifth of the HTTP path. */
#define PUTS(out, lit)                                                         \
        rf_buf_append((out), "" lit, sizeof(lit) - 1) /* a literal */

static void json_field_str(rf_buf_t *out, const char *sep_key, const char *v)
{
        rf_buf_puts(out, sep_key);
        rf_json_str(out, v);
}

static void json_time(rf_buf_t *out, const char *sep_key, int64_t ms)
{
        char ts[40];

        rf_buf_puts(out, sep_key);
        PUTS(out, "\"");
        rf_buf_puts(out, rf_time_format(ms, ts, sizeof(ts)));
        PUTS(out, "\"");
}

static void json_lineage(rf_buf_t *out, const rf_list_t *l)
{
        if (!l) {
                PUTS(out, "null");
                return;
        }
        json_field_str(out, "{\"list_id\":", l->list_id);
        json_field_str(out, ",\"subject_id\":", l->subject_id);
        json_field_str(out, ",\"region\":", l->region);
        json_field_str(out, ",\"run_id\":", l->run_id);
        json_field_str(out, ",\"model_version\":", l->model_version);
        json_field_str(out, ",\"policy_version\":", l->policy_version);
        json_field_str(out,
                       ",\"feature_set_version\":", l->feature_set_version);
        json_time(out, ",\"generated_at\":", l->generated_at);
        json_time(out, ",\"expires_at\":", l->expires_at);
        PUTS(out, "}");
}

/* The list whose lineage describes the response. */
static const rf_list_t *served_list(const rf_serve_result_t *res)
{
        if (res->served_from == RF_SERVED_FALLBACK)
                return res->fallback;
        if (res->served_from == RF_SERVED_EMPTY && !res->list)
                return res->fallback;
        return res->list;
}

void rf_serve_result_to_json(const rf_serve_req_t *req,
                             const rf_serve_result_t *res, rf_buf_t *out)
{
        json_field_str(out, "{\"subject_id\":", req->subject_id);
        json_field_str(out, ",\"surface\":", req->surface);
        json_field_str(
            out, ",\"context_key\":", req->context_key ? req->context_key : "");
        json_field_str(out, ",\"region\":", req->region ? req->region : "");
        PUTS(out, ",\"served_from\":\"");
        rf_buf_puts(out, rf_served_from2str(res->served_from));
        PUTS(out, "\",\"status\":\"");
        rf_buf_puts(out, rf_read_status2str(res->status));
        PUTS(out, "\",\"expired\":");
        rf_buf_puts(out, res->expired ? "true" : "false");
        PUTS(out, ",\"items\":[");
        for (size_t i = 0; i < res->item_cnt; i++) {
                const rf_entry_t *e = res->items[i].entry;
                json_field_str(
                    out, i ? ",{\"item_id\":" : "{\"item_id\":", e->item_id);
                PUTS(out, ",\"position\":");
                rf_buf_put_dec(out, res->items[i].position);
                PUTS(out, ",\"score\":");
                rf_json_num(out, e->score);
                PUTS(out, ",\"reason_codes\":[");
                for (size_t j = 0; j < e->reason_code_cnt; j++)
                        json_field_str(out, j ? "," : "", e->reason_codes[j]);
                rf_buf_puts(out, res->items[i].from_fallback
                                     ? "],\"source\":\"fallback\"}"
                                     : "],\"source\":\"precomputed\"}");
        }
        PUTS(out, "],\"lineage\":");
        json_lineage(out, served_list(res));
        PUTS(out, ",\"filtered\":{");
        for (int f = 0; f < RF_FILTER__CNT; f++) {
                rf_buf_puts(out, f ? ",\"" : "\"");
                rf_buf_puts(out, rf_filter2str((rf_filter_t)f));
                PUTS(out, "\":");
                rf_buf_put_dec(out, res->filtered[f]);
        }
        PUTS(out, "},\"scanned\":");
        rf_buf_put_dec(out, res->scanned);
        PUTS(out, ",\"fallback_filled\":");
        rf_buf_put_dec(out, res->fallback_filled);
        PUTS(out, ",\"fallback_reason\":");
        if (res->fb_why == RF_FB_NONE)
                PUTS(out, "null");
        else
                rf_json_str(out, rf_fallback_why2str(res->fb_why));
        PUTS(out, ",\"fallback_lineage\":");
        json_lineage(out, res->fallback);
        PUTS(out, ",\"recompute_requested\":");
        rf_buf_puts(out, res->recompute ? "true}" : "false}");
}

static void print_lineage(FILE *fp, const char *what, const rf_list_t *l)
{
        char g[40], x[40];

        fprintf(fp,
                "  %s: list_id=%s run_id=%s model_version=%s "
                "policy_version=%s\n"
                "  generated_at=%s expires_at=%s\n",
                what, l->list_id, *l->run_id ? l->run_id : "-",
                l->model_version, *l->policy_version ? l->policy_version : "-",
                rf_time_format(l->generated_at, g, sizeof(g)),
                rf_time_format(l->expires_at, x, sizeof(x)));
}

void rf_serve_result_print(const rf_serve_req_t *req,
                           const rf_serve_result_t *res, FILE *fp)
{
        fprintf(fp, "%s / %s / \"%s\": %s (%s%s)\n", req->subject_id,
                req->surface, req->context_key ? req->context_key : "",
                rf_served_from2str(res->served_from),
                rf_read_status2str(res->status),
                res->expired ? ", expired" : "");
        if (res->list)
                print_lineage(fp, "list", res->list);
        if (res->fallback)
                print_lineage(fp, "fallback", res->fallback);
        for (size_t i = 0; i < res->item_cnt; i++)
                fprintf(fp, "  %3zu. %-24s score=%.4f  (position %u%s)\n",
                        i + 1, res->items[i].entry->item_id,
                        res->items[i].entry->score, res->items[i].position,
                        res->items[i].from_fallback ? ", fallback" : "");
        fprintf(fp, "  skipped:");
        for (int f = 0; f < RF_FILTER__CNT; f++)
                fprintf(fp, " %s=%zu", rf_filter2str((rf_filter_t)f),
                        res->filtered[f]);
        fprintf(fp, "\n");
        if (res->fb_why != RF_FB_NONE)
                fprintf(fp, "  fallback: %s, %zu slots filled\n",
                        rf_fallback_why2str(res->fb_why), res->fallback_filled);
        if (res->recompute)
                fprintf(fp, "  recompute requested: %s\n", res->recompute);
}
