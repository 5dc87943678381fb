/*
 * recfresh tests - taking records and committing them as the daemon does,
 * for tests that drive rf_apply_record() directly (unit and integration).
 * Include after <cmocka.h>.
 */
#ifndef RECFRESH_T_APPLY_H
#define RECFRESH_T_APPLY_H

#include <string.h>

#include "recfresh/apply.h"
#include "recfresh/outbox.h"
#include "recfresh/topics.h"

/* Applies \p json (key \p key) as the next record of \p topic, partition
 * 0, at offset (*offset)++; it must be taken. */
static inline void t_take(rf_apply_ctx_t *ctx, int64_t *offset, int topic,
                          const char *key, const char *json)
{
        rf_record_t rec = { .topic = topic,
                            .topic_name = rf_topic(topic)->name,
                            .offset = (*offset)++,
                            .key = key,
                            .key_len = strlen(key),
                            .value = json,
                            .value_len = strlen(json),
                            .timestamp_ms = -1 };

        assert_int_equal(rf_apply_record(ctx, &rec), 0);
}

/* Commits the open batch with its offsets; the outbox \p ob learns it. */
static inline void t_commit(rf_apply_ctx_t *ctx, rf_outbox_t *ob)
{
        char err[256];

        rf_apply_offsets_put(ctx);
        if (rf_txn_commit(ctx->txn, err, sizeof(err)))
                fail_msg("%s", err);
        rf_outbox_committed(ob);
}

#endif /* RECFRESH_T_APPLY_H */
