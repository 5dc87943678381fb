/*
 * recfresh - the read path (see read.h): fetch the stored list, refuse it
 * if the subject's consent forbids it, then walk entries in stored order and
 * serve those that survive every tombstone, counting the rest by reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/read.h"
#include "recfresh/runs.h"

const char *rf_read_status2str(rf_read_status_t s)
{
        switch (s) {
        case RF_READ_FOUND:
                return "found";
        case RF_READ_NO_LIST:
                return "no_list";
        case RF_READ_CONSENT_BLOCKED:
                return "consent_blocked";
        }
        return "unknown";
}

/* Entries decoded beyond the limit before the first check: most reads
 * find enough survivors among them and never decode the rest. */
static size_t head_for(size_t limit)
{
        return limit ? limit + limit / 2 + 8 : SIZE_MAX;
}

/* Set answers taken per lock: the entries still wanted, and a few. */
#define FLAGS_MAX 64

static int corrupt(const rf_read_req_t *req, const char *ctx_key)
{
        rf_log_error("read", "stored list %s/%s is corrupt", req->surface,
                     ctx_key);
        return RF_ESTORE;
}

/* read_once()'s answer when the list changed under it: start over. */
#define READ_AGAIN 1

/* A list read again past a cached head is the same list: the run's
 * version, unless the run was switched or purged in between. */
static int same_list(const rf_list_t *a, const rf_list_t *b, size_t total)
{
        return b->item_cnt == total && a->generated_at == b->generated_at &&
               !strcmp(a->list_id, b->list_id) && !strcmp(a->run_id, b->run_id);
}

static int read_once(rf_store_t *st, const rf_config_t *conf,
                     const rf_read_req_t *req, int refill,
                     rf_read_result_t *res)
{
        const char *ctx_key = req->context_key ? req->context_key : "";
        rf_buf_t k = { 0 };
        rf_pinned_t v = { 0 };
        uint8_t flags[FLAGS_MAX];
        rf_list_t *head = NULL; /* the decoded head, once replaced */
        size_t total = 0, fl_from = 0, fl_cnt = 0;
        rf_checker_t ck;
        rf_idset_t seen;
        int r, again = 0;

        memset(res, 0, sizeof(*res));
        if (strcmp(req->subject_id, RF_FALLBACK_SUBJECT) != 0 &&
            (r = rf_consent_blocks(st, NULL, conf, req->subject_id,
                                   req->surface)) != 0) {
                if (r < 0)
                        return r; /* fail closed: never served unchecked */
                res->status = RF_READ_CONSENT_BLOCKED;
                return 0;
        }

        rf_key_list(&k, req->subject_id, req->surface, ctx_key);
        /* The active batch version or the incremental list (runs.h),
         * decoded as far as the limit needs. */
        r = rf_runs_read_head(st, req->surface, k.data, k.len,
                              head_for(req->limit), refill, &res->list, &total,
                              &v);
        if (r == RF_ENOENT) {
                res->status = RF_READ_NO_LIST;
                rf_buf_free(&k);
                return 0;
        }
        if (r == RF_EINVAL)
                r = corrupt(req, ctx_key);
        if (r != 0) {
                rf_pinned_release(&v);
                rf_buf_free(&k);
                return r;
        }

        res->status = RF_READ_FOUND;
        size_t want = req->limit ? req->limit : total;
        size_t cap = want < total ? want : total;
        res->served = rf_calloc(cap ? cap : 1, sizeof(*res->served));
        rf_checker_init(&ck, st, NULL, req->subject_id, res->list->region);
        rf_idset_init(&seen, total);
        for (size_t i = 0; i < total && res->served_cnt < want; i++) {
                if (i == res->list->item_cnt) {
                        /* Past the decoded head: decode the whole list and
                         * point what was served into it. A head from the
                         * cache has no bytes here: read them again. */
                        rf_list_t *all;
                        int cached = !v.data;
                        if (cached) {
                                r = rf_runs_lookup_pinned(st, req->surface,
                                                          k.data, k.len, &v);
                                if (r == RF_ENOENT) {
                                        again = 1;
                                        break;
                                }
                                if (r != 0) {
                                        ck.err = r;
                                        break;
                                }
                        }
                        if (rf_list_decode(v.data, v.len, &all) != 0) {
                                ck.err = corrupt(req, ctx_key);
                                break;
                        }
                        if (cached && !same_list(res->list, all, total)) {
                                rf_list_destroy(all);
                                again = 1;
                                break;
                        }
                        for (size_t j = 0; j < res->served_cnt; j++)
                                res->served[j].entry =
                                    &all->items[res->served[j].position];
                        /* The duplicate set still points into the head:
                         * it lives until the set is freed. */
                        head = res->list;
                        res->list = all;
                        ck.region = all->region;
                }
                const rf_entry_t *e = &res->list->items[i];
                rf_filter_t f;

                if (i >= fl_from + fl_cnt) {
                        /* The set's answers for the entries still wanted
                         * (and a few), under one lock. */
                        size_t n = want - res->served_cnt + 4;
                        if (n > FLAGS_MAX)
                                n = FLAGS_MAX;
                        if (n > res->list->item_cnt - i)
                                n = res->list->item_cnt - i;
                        rf_checker_flags(&ck, e, n, flags);
                        fl_from = i;
                        fl_cnt = n;
                }
                res->scanned++;
                if (rf_idset_add(&seen, e->item_id))
                        f = RF_FILTER_DUPLICATE;
                else
                        f = rf_checker_check_flags(&ck, e, flags[i - fl_from]);
                if (f != RF_FILTER_NONE) {
                        res->filtered[f]++;
                        continue;
                }
                res->served[res->served_cnt].entry = e;
                res->served[res->served_cnt].position = (uint32_t)i;
                res->served_cnt++;
        }
        rf_pinned_release(&v);
        rf_buf_free(&k);
        rf_idset_free(&seen);
        rf_list_destroy(head);
        r = ck.err;
        rf_checker_clear(&ck);
        if (r != 0 || again) {
                /* Entries that could not be checked are never served: the
                 * read fails instead. */
                rf_read_result_clear(res);
                return r ? r : READ_AGAIN;
        }
        return 0;
}

int rf_read_list(rf_store_t *st, const rf_config_t *conf,
                 const rf_read_req_t *req, rf_read_result_t *res)
{
        /* A list changes under a read only when a run is switched or a
         * subject purged at that instant: a third change in a row is a
         * store that does not hold still. A retry reads the store, not the
         * cache, and puts what it read there. */
        for (int i = 0; i < 3; i++) {
                int r = read_once(st, conf, req, i > 0, res);
                if (r != READ_AGAIN)
                        return r;
        }
        rf_log_error("read", "list %s/%s kept changing under the read",
                     req->surface, req->context_key ? req->context_key : "");
        return RF_ESTORE;
}

void rf_read_result_clear(rf_read_result_t *res)
{
        rf_list_destroy(res->list);
        free(res->served);
        memset(res, 0, sizeof(*res));
}
