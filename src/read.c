/*
 * recfresh - the read path (see read.h): fetch the stored list, refuse it
 * if the subject's consent forbids it, then walk entries in stored order and
 * serve those that survive every tombstone, counting the rest by reason.
 */
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

int rf_read_list(rf_store_t *st, const rf_config_t *conf,
                 const rf_read_req_t *req, rf_read_result_t *res)
{
        const char *ctx_key = req->context_key ? req->context_key : "";
        rf_buf_t k = { 0 }, v = { 0 };
        rf_checker_t ck;
        rf_idset_t seen;
        int r;

        memset(res, 0, sizeof(*res));
        if (strcmp(req->subject_id, RF_FALLBACK_SUBJECT) != 0 &&
            rf_consent_blocks(st, NULL, conf, req->subject_id, req->surface)) {
                res->status = RF_READ_CONSENT_BLOCKED;
                return 0;
        }

        rf_key_list(&k, req->subject_id, req->surface, ctx_key);
        /* The active batch version or the incremental list (runs.h). */
        r = rf_runs_lookup(st, req->surface, k.data, k.len, &v);
        rf_buf_free(&k);
        if (r == RF_ENOENT) {
                res->status = RF_READ_NO_LIST;
                rf_buf_free(&v);
                return 0;
        }
        if (r == 0 && rf_list_decode(v.data, v.len, &res->list) != 0) {
                rf_log_error("read", "stored list %s/%s is corrupt",
                             req->surface, ctx_key);
                r = RF_ESTORE;
        }
        rf_buf_free(&v);
        if (r != 0)
                return r;

        res->status = RF_READ_FOUND;
        const rf_list_t *l = res->list;
        size_t want = req->limit ? req->limit : l->item_cnt;
        res->served = rf_calloc(want < l->item_cnt ? want : l->item_cnt,
                                sizeof(*res->served));
        rf_checker_init(&ck, st, NULL, req->subject_id, l->region);
        rf_idset_init(&seen, l->item_cnt);
        for (size_t i = 0; i < l->item_cnt && res->served_cnt < want; i++) {
                const rf_entry_t *e = &l->items[i];
                rf_filter_t f;

                res->scanned++;
                if (rf_idset_add(&seen, e->item_id))
                        f = RF_FILTER_DUPLICATE;
                else
                        f = rf_checker_check(&ck, e);
                if (f != RF_FILTER_NONE) {
                        res->filtered[f]++;
                        continue;
                }
                res->served[res->served_cnt].entry = e;
                res->served[res->served_cnt].position = (uint32_t)i;
                res->served_cnt++;
        }
        rf_idset_free(&seen);
        r = ck.err;
        rf_checker_clear(&ck);
        if (r != 0) {
                /* Entries that could not be checked are never served: the
                 * read fails instead. */
                rf_read_result_clear(res);
                return r;
        }
        return 0;
}

void rf_read_result_clear(rf_read_result_t *res)
{
        rf_list_destroy(res->list);
        free(res->served);
        memset(res, 0, sizeof(*res));
}
