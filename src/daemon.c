/*
 * recfresh - the daemon loop (see daemon.h).
 *
 * Ordering guarantees, all from there being one writer thread:
 *  - a batch's records, their effects and their offsets commit together;
 *  - the next poll happens only after that commit, so a rebalance callback
 *    (served inside the poll) always sees stored offsets equal to state;
 *  - fan-out steps and outbox deliveries run between batches, bounded, so a
 *    huge fan-out delays other events by at most one step.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recfresh/apply.h"
#include "recfresh/broker.h"
#include "recfresh/consumer.h"
#include "recfresh/daemon.h"
#include "recfresh/fanout.h"
#include "recfresh/kafka.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"
#include "recfresh/outbox.h"
#include "recfresh/topics.h"

#define OUTBOX_MAX_INFLIGHT 10000

struct rf_daemon {
        const rf_config_t *conf;
        rf_broker_t *broker; /* embedded broker, or NULL */
        char *bootstraps;
        rf_store_t *st;
        rf_consumer_t *consumer;
        rd_kafka_t *producer; /* outbox: DLQ and invalidations */
        rf_outbox_t *outbox;
        rf_fanout_t *fanout;
        rf_apply_ctx_t ctx;
        int wake[2]; /* pipe: librdkafka queues and stop() */
        atomic_int stopping;
        atomic_int ready;
        rd_kafka_message_t **msgs;
};

static int write_file(const char *path, const char *text)
{
        char tmp[4096];
        FILE *fp;

        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        if (!(fp = fopen(tmp, "w")))
                return -1;
        fprintf(fp, "%s\n", text);
        if (fclose(fp) != 0)
                return -1;
        return rename(tmp, path); /* readers never see a partial file */
}

rf_daemon_t *rf_daemon_new(const rf_config_t *conf, char *errstr,
                           size_t errstr_size)
{
        rf_daemon_t *d = rf_calloc(1, sizeof(*d));
        rf_store_opts_t so = { conf->store_sync, (size_t)conf->block_cache_mb,
                               (size_t)conf->write_buffer_mb };
        rd_kafka_conf_t *pc;
        char err[256];

        d->conf = conf;
        d->wake[0] = d->wake[1] = -1;
        if (pipe2(d->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
                snprintf(errstr, errstr_size, "pipe: %s", strerror(errno));
                goto fail;
        }

        if (!*conf->brokers) {
                d->broker = rf_broker_new(1, (int)conf->embedded_partitions,
                                          errstr, errstr_size);
                if (!d->broker)
                        goto fail;
                d->bootstraps = rf_strdup(rf_broker_bootstraps(d->broker));
                if (*conf->bootstrap_file &&
                    write_file(conf->bootstrap_file, d->bootstraps) != 0) {
                        snprintf(errstr, errstr_size, "%s: %s",
                                 conf->bootstrap_file, strerror(errno));
                        goto fail;
                }
        } else {
                d->bootstraps = rf_strdup(conf->brokers);
        }

        d->st = rf_store_open(conf->data_dir, RF_STORE_PRIMARY, &so, errstr,
                              errstr_size);
        if (!d->st)
                goto fail;
        d->outbox = rf_outbox_new(d->st);
        d->fanout = rf_fanout_new(d->st);
        rf_apply_ctx_init(&d->ctx, d->st, conf, d->outbox, d->fanout);

        pc = rf_kafka_conf_new(conf, d->bootstraps, "producer", errstr,
                               errstr_size);
        if (!pc)
                goto fail;
        if (rf_kafka_conf_set(pc, "enable.idempotence", "true", errstr,
                              errstr_size) ||
            rf_kafka_conf_set(pc, "linger.ms", "5", errstr, errstr_size)) {
                rd_kafka_conf_destroy(pc);
                goto fail;
        }
        rf_outbox_conf_set(d->outbox, pc);
        d->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
        if (!d->producer) {
                rd_kafka_conf_destroy(pc);
                snprintf(errstr, errstr_size, "producer: %s", err);
                goto fail;
        }

        d->consumer = rf_consumer_new(conf, d->bootstraps, d->st, d->wake[1],
                                      errstr, errstr_size);
        if (!d->consumer)
                goto fail;
        d->msgs = rf_calloc((size_t)conf->consumer_batch, sizeof(*d->msgs));
        return d;
fail:
        rf_daemon_destroy(d);
        return NULL;
}

static void drain_pipe(int fd)
{
        char buf[256];
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
}

static void record_of(const rd_kafka_message_t *m, rf_record_t *rec)
{
        rd_kafka_timestamp_type_t tstype;
        const char *tname = rd_kafka_topic_name(m->rkt);

        rec->topic = rf_topic_by_name(tname);
        rec->topic_name = tname;
        rec->partition = m->partition;
        rec->offset = m->offset;
        rec->key = m->key;
        rec->key_len = m->key_len;
        rec->value = m->payload;
        rec->value_len = m->len;
        rec->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
}

/* Applies and commits one batch. @returns 0 or a store error. */
static int apply_batch(rf_daemon_t *d, size_t n)
{
        char errstr[512];
        int r = 0;

        d->ctx.now_ms = rf_now_ms();
        for (size_t i = 0; i < n && r == 0; i++) {
                rf_record_t rec;
                record_of(d->msgs[i], &rec);
                r = rf_apply_record(&d->ctx, &rec);
        }
        if (r == 0)
                r = rf_txn_commit(d->ctx.txn, errstr, sizeof(errstr));
        else
                snprintf(errstr, sizeof(errstr), "%s", rf_err2str(r));
        if (r != 0) {
                RF_METRIC_INC(store_errors);
                rf_log_error("daemon", "batch of %zu records not applied: %s",
                             n, errstr);
                rf_txn_clear(d->ctx.txn);
                rf_outbox_rollback(d->outbox);
                rf_fanout_reload(d->fanout);
        } else {
                RF_METRIC_INC(store_commits);
                rf_outbox_committed(d->outbox);
        }
        for (size_t i = 0; i < n; i++)
                rd_kafka_message_destroy(d->msgs[i]);
        return r;
}

static int fanout_step(rf_daemon_t *d)
{
        char errstr[512];
        size_t scanned = 0;
        int r;

        if (!rf_fanout_pending(d->fanout))
                return 0;
        d->ctx.now_ms = rf_now_ms();
        r = rf_fanout_step(&d->ctx, (size_t)d->conf->fanout_chunk, &scanned);
        if (r == 0)
                r = rf_txn_commit(d->ctx.txn, errstr, sizeof(errstr));
        else
                snprintf(errstr, sizeof(errstr), "%s", rf_err2str(r));
        if (r != 0) {
                RF_METRIC_INC(store_errors);
                rf_log_error("daemon", "fan-out step failed: %s", errstr);
                rf_txn_clear(d->ctx.txn);
                rf_outbox_rollback(d->outbox);
                rf_fanout_reload(d->fanout);
                return r;
        }
        rf_outbox_committed(d->outbox);
        return 0;
}

int rf_daemon_run(rf_daemon_t *d)
{
        size_t max = (size_t)d->conf->consumer_batch;
        int rc = 0;

        rf_log_info("daemon", "running: data_dir=%s brokers=%s%s",
                    d->conf->data_dir, d->bootstraps,
                    d->broker ? " (embedded)" : "");
        while (!atomic_load(&d->stopping)) {
                size_t n = rf_consumer_poll(d->consumer, d->msgs, max);

                if (n && apply_batch(d, n) != 0) {
                        rc = 1; /* offsets not advanced: nothing lost */
                        break;
                }
                if (fanout_step(d) != 0) {
                        rc = 1;
                        break;
                }
                rf_outbox_drain(d->outbox, d->producer, OUTBOX_MAX_INFLIGHT);
                rd_kafka_poll(d->producer, 0);
                rf_consumer_tick(d->consumer);
                if (!atomic_load(&d->ready) && rf_consumer_ready(d->consumer)) {
                        atomic_store(&d->ready, 1);
                        rf_log_info("daemon", "consumers assigned");
                }

                if (n == 0 && !rf_fanout_pending(d->fanout)) {
                        /* Idle: sleep until a queue has records, a stop, or
                         * the timeout (for outbox and upkeep). */
                        struct pollfd pfd = { d->wake[0], POLLIN, 0 };
                        int timeout = (int)d->conf->poll_timeout_ms;
                        if (rf_outbox_pending(d->outbox))
                                timeout = timeout > 10 ? 10 : timeout;
                        poll(&pfd, 1, timeout);
                        drain_pipe(d->wake[0]);
                }
        }

        /* Drain: the last batch is committed; deliver what the outbox holds
         * (bounded), so a clean stop leaves nothing behind. */
        int64_t deadline = rf_mono_ms() + 5000;
        while (rf_outbox_pending(d->outbox) && rf_mono_ms() < deadline) {
                rf_outbox_drain(d->outbox, d->producer, OUTBOX_MAX_INFLIGHT);
                rd_kafka_poll(d->producer, 50);
        }
        rd_kafka_flush(d->producer, 2000);
        rd_kafka_poll(d->producer, 0);
        rf_outbox_drain(d->outbox, d->producer, 0); /* delete delivered */
        rf_log_info("daemon",
                    "stopped (%s); %zu outbox records left for the "
                    "next start",
                    rc ? "error" : "clean", rf_outbox_pending(d->outbox));
        return rc;
}

void rf_daemon_stop(rf_daemon_t *d)
{
        atomic_store(&d->stopping, 1);
        if (d->wake[1] >= 0) {
                ssize_t w = write(d->wake[1], "s", 1);
                (void)w;
        }
}

const char *rf_daemon_bootstraps(const rf_daemon_t *d)
{
        return d->bootstraps;
}

rf_store_t *rf_daemon_store(rf_daemon_t *d)
{
        return d->st;
}

int rf_daemon_ready(const rf_daemon_t *d)
{
        return atomic_load(&((rf_daemon_t *)d)->ready);
}

void rf_daemon_destroy(rf_daemon_t *d)
{
        if (!d)
                return;
        rf_consumer_close(d->consumer);
        if (d->producer)
                rd_kafka_destroy(d->producer);
        if (d->ctx.txn)
                rf_apply_ctx_clear(&d->ctx);
        rf_fanout_destroy(d->fanout);
        rf_outbox_destroy(d->outbox);
        rf_store_close(d->st);
        rf_broker_destroy(d->broker);
        free(d->bootstraps);
        free(d->msgs);
        if (d->wake[0] >= 0)
                close(d->wake[0]);
        if (d->wake[1] >= 0)
                close(d->wake[1]);
        free(d);
}
