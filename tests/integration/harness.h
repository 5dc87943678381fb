/*
 * recfresh integration-test harness: a real embedded broker (librdkafka's
 * mock cluster over loopback TCP), a real RocksDB store in a temp dir, the
 * daemon on its own thread, a producer, and waits on conditions with
 * deadlines (never bare sleeps).
 */
#ifndef RF_TEST_HARNESS_H
#define RF_TEST_HARNESS_H

#include <pthread.h>
#include <librdkafka/rdkafka.h>

#include "recfresh/broker.h"
#include "recfresh/config.h"
#include "recfresh/daemon.h"
#include "recfresh/read.h"

#define H_DEADLINE_MS 20000

typedef struct h_env {
        char dir[256]; /* temp dir, removed by h_teardown */
        rf_broker_t *broker;
        rf_config_t conf;
        rf_daemon_t *daemon;
        pthread_t thr;
        int daemon_rc;
        volatile int daemon_done; /* set when rf_daemon_run returned */
        rd_kafka_t *producer;
} h_env_t;

/** Temp dir, broker with \p partitions per topic, conf, producer. */
void h_setup(h_env_t *e, int partitions);
/** Same, with a cluster of \p brokers brokers (for leader changes). */
void h_setup_brokers(h_env_t *e, int partitions, int brokers);
/** Starts the daemon on a thread and waits until its consumers are
 *  assigned. */
void h_daemon_start(h_env_t *e);
/** Waits until the daemon's loop returned by itself (fatal error); joins
 *  and frees it. @returns its exit code. Fails the test at the deadline. */
int h_daemon_wait_exit(h_env_t *e);
/** Stops the daemon, joins it, asserts a clean exit. */
void h_daemon_stop(h_env_t *e);
void h_teardown(h_env_t *e);

/** Produces one record and waits for its acknowledgement. */
void h_produce(h_env_t *e, const char *topic, const char *key,
               const char *value);
void h_produce_len(h_env_t *e, const char *topic, const char *key,
                   const char *value, size_t len);

/** @returns the served item ids joined by ',' ("" if none), or
 *  "<no_list>" / "<consent_blocked>". Caller frees. */
char *h_served(h_env_t *e, const char *subject, const char *surface,
               const char *context);

/** h_served() of a read for at most \p limit entries (0: all). */
char *h_served_n(h_env_t *e, const char *subject, const char *surface,
                 const char *context, size_t limit);

/** Waits until h_served() equals \p expect. Fails the test (with the last
 *  value seen) at the deadline. */
void h_wait_served(h_env_t *e, const char *subject, const char *surface,
                   const char *context, const char *expect);

/** Consumes \p topic from the beginning until at least \p want records
 *  whose value contains \p needle (NULL: any) arrived, or the deadline.
 *  @returns the count of matching records seen. */
int h_count_records(h_env_t *e, const char *topic, const char *needle,
                    int want);

/** Consumes \p topic from the beginning until a record containing
 *  \p sentinel arrives (fails the test at the deadline).
 *  @returns how many records before it contain \p needle. */
int h_count_before(h_env_t *e, const char *topic, const char *needle,
                   const char *sentinel);

/** @returns 1 if \p needle occurs in any key or value of any column family
 *  of the daemon's store. */
int h_store_contains(h_env_t *e, const char *needle);

/** Builds a list JSON: items as "id[:creator[:campaign]]" separated by
 *  ','. Caller frees. */
char *h_list_json(const char *subject, const char *surface, const char *region,
                  const char *list_id, const char *generated_at,
                  const char *items);

/** Builds an event JSON from printf-style fields. Caller frees. */
char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
