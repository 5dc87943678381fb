/*
 * recfresh - the record dispatcher: decode one consumed record with its
 * topic's codec, hand it to the rule that applies it (lists.c, tomb_*.c),
 * dead-letter it if it is bad, and record its offset, all in the batch's
 * transaction (see apply.h for why that makes a crash harmless).
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/activity.h"
#include "recfresh/apply.h"
#include "recfresh/keys.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/outputs.h"
#include "recfresh/runs.h"
#include "recfresh/tombstone.h"
#include "recfresh/topics.h"

/* DLQ copies of rejected values and keys are cut here: enough to debug,
 * and bounded well below the producer's message.max.bytes (1 MB by
 * default), even with JSON's escapes (up to 6 bytes a byte). */
#define DLQ_MAX_VALUE_BYTES (64 * 1024)
#define DLQ_MAX_KEY_BYTES   (4 * 1024)

void rf_apply_ctx_init(rf_apply_ctx_t *ctx, rf_store_t *st,
                       const rf_config_t *conf, rf_outbox_t *outbox,
                       rf_fanout_t *fanout)
{
        memset(ctx, 0, sizeof(*ctx));
        ctx->st = st;
        ctx->txn = rf_txn_new(st);
        ctx->conf = conf;
        ctx->limits = conf ? rf_config_limits(conf) : rf_limits_default;
        ctx->outbox = outbox;
        ctx->fanout = fanout;
        ctx->now_ms = rf_now_ms();
}

void rf_apply_ctx_clear(rf_apply_ctx_t *ctx)
{
        for (size_t i = 0; i < ctx->off_cnt; i++)
                free(ctx->offs[i].topic);
        free(ctx->offs);
        rf_txn_destroy(ctx->txn);
        rf_buf_free(&ctx->scratch);
        rf_buf_free(&ctx->scratch2);
        rf_buf_free(&ctx->tomb_ts);
        memset(ctx, 0, sizeof(*ctx));
}

static void dead_letter(rf_apply_ctx_t *ctx, const rf_record_t *rec,
                        const rf_rejection_t *rej)
{
        rf_source_t src = { rec->topic_name, rec->partition, rec->offset,
                            rec->timestamp_ms };
        uint64_t n = RF_METRIC_INC(dlq[rej->reason]);

        rf_trace(ctx, .kind = RF_TRACE_REJECTED, .rej = rej);

        /* Log the first few of each reason, then one in a thousand: bad
         * producers must not flood the log; the counter has the rest. */
        if (n < 10 || n % 1000 == 0)
                rf_log_warn("apply",
                            "rejected %s [%d] @%lld: %s: %s (%llu so far)",
                            rec->topic_name, (int)rec->partition,
                            (long long)rec->offset, rf_reject2str(rej->reason),
                            rej->msg, (unsigned long long)n + 1);
        rf_buf_reset(&ctx->scratch2);
        size_t klen = rec->key ? rec->key_len : 0;
        if (klen > DLQ_MAX_KEY_BYTES)
                klen = DLQ_MAX_KEY_BYTES;
        rf_dlq_encode(&ctx->scratch2, &src, rec->key, rec->key_len,
                      DLQ_MAX_KEY_BYTES, rec->value, rec->value_len, rej,
                      DLQ_MAX_VALUE_BYTES, ctx->now_ms);
        rf_outbox_put(ctx->outbox, ctx->txn, RF_TOPIC_DLQ, rec->key, klen,
                      ctx->scratch2.data, ctx->scratch2.len);
}

static int apply_event(rf_apply_ctx_t *ctx, const rf_event_t *ev)
{
        switch (ev->type) {
        case RF_EV_ITEM_BANNED:
        case RF_EV_ITEM_UNBANNED:
                return rf_ban_apply(ctx, ev);
        case RF_EV_STOCK_CHANGED:
                return rf_stock_apply(ctx, ev);
        case RF_EV_ITEM_HIDDEN:
        case RF_EV_ITEM_UNHIDDEN:
        case RF_EV_CREATOR_HIDDEN:
        case RF_EV_CREATOR_UNHIDDEN:
                return rf_hide_apply(ctx, ev);
        case RF_EV_CONSENT_REVOKED:
        case RF_EV_CONSENT_GRANTED:
                return rf_consent_apply(ctx, ev);
        case RF_EV_CAMPAIGN_EXPIRED:
                return rf_campaign_apply(ctx, ev);
        default:
                return RF_EINVAL;
        }
}

/* Notes the record's next offset for rf_apply_offsets_put(). A consumer
 * holds a few dozen partitions: a linear search is enough. */
static void note_offset(rf_apply_ctx_t *ctx, const rf_record_t *rec)
{
        struct rf_apply_offset *o = NULL;

        for (size_t i = 0; i < ctx->off_cnt && !o; i++)
                if (ctx->offs[i].partition == rec->partition &&
                    !strcmp(ctx->offs[i].topic, rec->topic_name))
                        o = &ctx->offs[i];
        if (!o) {
                ctx->offs = rf_realloc(ctx->offs,
                                       (ctx->off_cnt + 1) * sizeof(*ctx->offs));
                o = &ctx->offs[ctx->off_cnt++];
                o->topic = rf_strdup(rec->topic_name);
                o->partition = rec->partition;
        }
        o->next = rec->offset + 1;
        o->dirty = 1;
}

void rf_apply_offsets_put(rf_apply_ctx_t *ctx)
{
        rf_buf_t *k = &ctx->scratch;

        for (size_t i = 0; i < ctx->off_cnt; i++) {
                struct rf_apply_offset *o = &ctx->offs[i];
                uint64_t next = (uint64_t)o->next;
                char v[8];

                if (!o->dirty)
                        continue;
                rf_buf_reset(k);
                rf_key_offset(k, o->topic, o->partition);
                for (int b = 7; b >= 0; b--) {
                        v[b] = (char)(next & 0xff);
                        next >>= 8;
                }
                rf_txn_put(ctx->txn, RF_CF_OFFSETS, k->data, k->len, v, 8);
                o->dirty = 0;
        }
}

void rf_apply_offsets_drop(rf_apply_ctx_t *ctx)
{
        for (size_t i = 0; i < ctx->off_cnt; i++)
                ctx->offs[i].dirty = 0;
}

int rf_apply_record(rf_apply_ctx_t *ctx, const rf_record_t *rec)
{
        rf_rejection_t rej = { RF_REJ_NONE, "" };
        int r = 0;

        if (rec->topic < 0 ||
            strcmp(rf_topic(rec->topic)->direction, "input") != 0) {
                rf_reject(&rej, RF_REJ_UNKNOWN_TOPIC,
                          "recfresh does not consume topic \"%s\"",
                          rec->topic_name);
        } else if (!rec->value || rec->value_len == 0) {
                rf_reject(&rej, RF_REJ_INVALID_JSON,
                          "empty value (null record)");
        } else if (rec->topic == RF_TOPIC_LISTS) {
                rf_list_t *list = NULL;
                if (rf_list_from_json(rec->key, rec->key_len, rec->value,
                                      rec->value_len, &ctx->limits, &list,
                                      &rej) == 0) {
                        RF_METRIC_INC(
                            events_consumed[RF_TOPIC_LISTS][RF_EV_LIST]);
                        /* A list of a batch run is staged (runs.h). */
                        r = *list->run_id ? rf_runs_stage(ctx, list)
                                          : rf_lists_apply(ctx, list);
                        rf_list_destroy(list);
                }
        } else if (rec->topic == RF_TOPIC_RUNS) {
                rf_run_ctl_t ctl;
                if (rf_run_ctl_parse(rec->key, rec->key_len, rec->value,
                                     rec->value_len, &ctx->limits, &ctl,
                                     &rej) == 0) {
                        r = rf_runs_apply_ctl(ctx, &ctl);
                        rf_run_ctl_clear(&ctl);
                }
        } else if (rec->topic == RF_TOPIC_ACTIVITY) {
                rf_activity_t act;
                if (rf_activity_parse(rec->key, rec->key_len, rec->value,
                                      rec->value_len, &ctx->limits, &act,
                                      &rej) == 0) {
                        /* taken, as events are: stale or blocked ones too */
                        RF_METRIC_INC(activity_records);
                        r = rf_activity_apply(ctx, &act);
                        rf_activity_clear(&act);
                }
        } else {
                rf_event_t ev;
                if (rf_event_parse(rec->topic, rec->key, rec->key_len,
                                   rec->value, rec->value_len, &ctx->limits,
                                   &ev, &rej) == 0) {
                        RF_METRIC_INC(events_consumed[rec->topic][ev.type]);
                        r = apply_event(ctx, &ev);
                        /* Bounded: callers that never reset it (tools
                         * replaying logs) must not grow it forever. */
                        if (r == 0 && rec->timestamp_ms >= 0 &&
                            ctx->tomb_ts.len < 65536 * sizeof(int64_t))
                                rf_buf_append(&ctx->tomb_ts, &rec->timestamp_ms,
                                              sizeof(rec->timestamp_ms));
                        if (r == RF_ESTALE)
                                RF_METRIC_INC(events_stale);
                        rf_event_clear(&ev);
                }
        }

        /* Stale and blocked records were taken: not errors. */
        if (r == RF_ESTALE || r == RF_EBLOCKED)
                r = 0;
        if (r == 0 && ctx->err) {
                r = ctx->err; /* a hook failed: drop the whole batch */
                ctx->err = 0;
        }
        if (r < 0)
                return r;
        if (rej.reason != RF_REJ_NONE)
                dead_letter(ctx, rec, &rej);
        if (rec->topic_name)
                note_offset(ctx, rec);
        return 0;
}
