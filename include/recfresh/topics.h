/*
 * recfresh - topic definitions.
 *
 * topics/ is the single source of truth: one JSON file per topic with its
 * id, name, key, partitions, scope, cleanup policy, retention and the JSON
 * Schema of its value. At build time CMake turns those files into
 * rf_topics_gen.h (the RF_TOPIC_* enum, one entry per file, in file-name
 * order) and rf_topics_gen.c (rf_topic_defs[], the file contents). Code
 * names topics only through RF_TOPIC_*; a topic removed from topics/ stops
 * the build, and tests/unit/test_topics.c fails when a codec and a schema
 * disagree.
 */
#ifndef RECFRESH_TOPICS_H
#define RECFRESH_TOPICS_H

#include "recfresh/common.h"
#include "rf_topics_gen.h" /* generated: enum rf_topic { RF_TOPIC_... } */

/** One topic, as read from topics/<name>.json. */
typedef struct rf_topic_def {
        const char *id;             /* short id, e.g. "item_bans" */
        const char *name;           /* e.g. "recs.item-bans.v1" */
        const char *key;            /* key field of the value, e.g. "item_id" */
        const char *direction;      /* "input" or "output" */
        const char *scope;          /* "subject" or "item": how it is
                                     * partitioned and consumed */
        int partitions;             /* default partition count */
        const char *cleanup_policy; /* "delete" or "compact" */
        int64_t retention_ms;       /* -1 = forever */
        const char *schema_json;    /* JSON Schema of the value */
} rf_topic_def_t;

/** All topics, indexed by enum rf_topic. */
extern const rf_topic_def_t rf_topic_defs[RF_TOPIC__CNT];

/** @returns the definition of \p t. */
static inline const rf_topic_def_t *rf_topic(int t)
{
        return &rf_topic_defs[t];
}

/** @returns the RF_TOPIC_* of \p name, or -1 if we have no such topic. */
int rf_topic_by_name(const char *name);

#endif /* RECFRESH_TOPICS_H */
