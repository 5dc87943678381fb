/*
 * recfresh - scale-out on a Kafka consumer group: which instance owns which
 * subject, and how instances learn it from each other.
 *
 * There is no cluster protocol of our own. The consumer group of the
 * subject-scoped input topics (lists, user hides, consent, activity) splits
 * their partitions over the instances; all of them have the same partition
 * count and their producers key by subject with the Java client's default
 * partitioner (murmur2), so partition N of every subject topic holds the
 * same subjects and rf_partition_of() says which one.
 *
 *  - Ownership: an instance owns the subjects of the partitions its group
 *    consumer is assigned (consumer.h). A partition it gains is rebuilt from
 *    the topics (from the start when no offset is stored) and is "ready"
 *    once applied up to the high watermark seen at assignment; until then
 *    its reads answer 503. A partition it loses has its stored offsets
 *    deleted (a later re-assignment rebuilds from scratch) and its subjects'
 *    state (lists, index entries, hides, consent, activity) swept off the
 *    critical path, in bounded steps (rf_cluster_sweep_step()).
 *  - Routing: on every assignment change each instance publishes
 *    {instance_id, http, partitions} to the compacted topic
 *    recs.members.v1 (key: instance_id; a null value when it stops), and
 *    every instance reads that topic in full. For a partition it does not
 *    own, the owner is the latest record (by offset) claiming it: after a
 *    member dies its partitions are claimed by the new owners' later
 *    records. `GET /v1/routing/{subject_id}` answers from this table; a read
 *    of a subject owned elsewhere answers 307 to the owner's address
 *    (http.advertise).
 *
 * All functions but rf_cluster_owner() and rf_cluster_partitions_json()
 * run on the daemon thread; those two are thread-safe (HTTP threads).
 */
#ifndef RECFRESH_CLUSTER_H
#define RECFRESH_CLUSTER_H

#include "recfresh/apply.h"
#include "recfresh/common.h"
#include "recfresh/config.h"

/** Most partitions of a subject topic recfresh handles. */
#define RF_CLUSTER_MAX_PARTS 1024

/**
 * Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of \p key:
 * the hash the Java client's default partitioner and librdkafka's
 * "murmur2" / "murmur2_random" partitioners use.
 */
uint32_t rf_murmur2(const void *key, size_t len);

/**
 * The partition the Java client's default partitioner (and librdkafka's
 * murmur2_random) puts a record keyed \p key on: (murmur2(key) & 0x7fffffff)
 * % \p partitions. @returns the partition, or -1 if \p partitions < 1.
 */
int32_t rf_partition_of(const void *key, size_t len, int32_t partitions);

/** Which subject partitions this instance holds, from the consumer. */
typedef struct rf_subject_parts {
        int32_t count;    /* partitions of the subject topics, 0 = unknown */
        int assigned;     /* 1 between an assignment and the next revoke */
        uint64_t epoch;   /* bumped on every change of owned[] */
        uint64_t version; /* bumped on every change of any field */
        unsigned char owned[RF_CLUSTER_MAX_PARTS]; /* 1: assigned to us */
        unsigned char ready[RF_CLUSTER_MAX_PARTS]; /* 1: rebuilt */
        int64_t lag[RF_CLUSTER_MAX_PARTS]; /* records to apply before ready,
                                            * summed over the subject
                                            * topics; -1 = not known yet */
} rf_subject_parts_t;

/** Where a subject is served from. */
typedef enum rf_owner_state {
        RF_OWNER_LOCAL = 0,  /* this instance, rebuilt: serve it */
        RF_OWNER_REBUILDING, /* this instance, still rebuilding: 503 */
        RF_OWNER_REMOTE,     /* another instance: redirect to addr */
        RF_OWNER_UNKNOWN,    /* no owner known (rebalance): 503 */
} rf_owner_state_t;

/** @returns "local", "rebuilding", "remote" or "unknown". */
const char *rf_owner_state2str(rf_owner_state_t s);

/** The answer to "who owns this subject". */
typedef struct rf_owner {
        rf_owner_state_t state;
        int32_t partition;     /* -1 if the partition count is unknown */
        int32_t partitions;    /* partition count, 0 if unknown */
        char instance_id[256]; /* owner's cluster.instance_id, or "" */
        char addr[256];        /* owner's advertised host:port, or "" */
} rf_owner_t;

typedef struct rf_cluster rf_cluster_t;

/**
 * Creates the membership clients (a producer and an assign-all reader of
 * recs.members.v1) on \p brokers. \p instance_id and \p advertise are
 * copied ("" advertise: reads of remote subjects cannot be redirected).
 * \p conf must outlive the cluster.
 * @returns the cluster or NULL with errstr set.
 */
rf_cluster_t *rf_cluster_new(const rf_config_t *conf, const char *brokers,
                             const char *instance_id, const char *advertise,
                             char *errstr, size_t errstr_size);

/**
 * Daemon thread: takes the consumer's view of our partitions. A change of
 * ownership schedules a membership record and, while assigned, a sweep of
 * the state of subjects we do not own.
 */
void rf_cluster_update(rf_cluster_t *cl, const rf_subject_parts_t *sp);

/**
 * Daemon thread: reads new membership records, publishes ours when due and
 * serves the producer's delivery reports. Never blocks.
 */
void rf_cluster_tick(rf_cluster_t *cl);

/**
 * Any thread: who owns \p subject_id (NUL-terminated).
 */
void rf_cluster_owner(rf_cluster_t *cl, const char *subject_id,
                      rf_owner_t *out);

/**
 * Any thread: appends a JSON array, one object per owned partition:
 * {"partition":N,"ready":bool,"lag":N|null}.
 */
void rf_cluster_partitions_json(rf_cluster_t *cl, rf_buf_t *out);

/**
 * Any thread: appends Prometheus gauges: recfresh_partition_ready{partition}
 * (1 rebuilt, 0 rebuilding) and recfresh_partition_rebuild_lag{partition}
 * per owned partition, recfresh_partitions_owned and
 * recfresh_cluster_members (other instances in recs.members.v1).
 */
void rf_cluster_metrics(rf_cluster_t *cl, rf_buf_t *out);

/** @returns 1 while a sweep of unowned state is pending. */
int rf_cluster_sweep_pending(const rf_cluster_t *cl);

/**
 * Daemon thread: deletes, into ctx->txn (the caller commits), the state of
 * up to \p budget stored keys of subjects whose partition we do not own:
 * lists with their index entries, hides, consent state and activity.
 * Fallback lists (subject "__fallback__") are kept: every instance serves
 * them. Pending recompute requests are kept: they are still sent, so a
 * move loses none (the new owner may send a duplicate). *dropped gets the
 * keys deleted.
 * @returns 0 or a store error.
 */
int rf_cluster_sweep_step(rf_cluster_t *cl, rf_apply_ctx_t *ctx, size_t budget,
                          size_t *dropped);

/** Daemon thread: the last sweep step's commit failed; redo it. */
void rf_cluster_sweep_rollback(rf_cluster_t *cl);

/**
 * Publishes a null record for this instance (it leaves the routing table)
 * and waits up to \p timeout_ms for its delivery. Call on a clean stop.
 */
void rf_cluster_leave(rf_cluster_t *cl, int timeout_ms);

/** Frees the cluster and its clients. NULL is a no-op. */
void rf_cluster_destroy(rf_cluster_t *cl);

#endif /* RECFRESH_CLUSTER_H */
