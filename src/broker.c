/*
 * recfresh - the embedded broker (see broker.h).
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/broker.h"
#include "recfresh/log.h"
#include "recfresh/topics.h"

struct rf_broker {
        rd_kafka_t *rk; /* owns the mock cluster's threads */
        rd_kafka_mock_cluster_t *mc;
        char *bootstraps;
        int partitions;
};

rf_broker_t *rf_broker_new(int broker_cnt, int partitions, char *errstr,
                           size_t errstr_size)
{
        rf_broker_t *b = rf_calloc(1, sizeof(*b));
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        char err[256];

        b->partitions = partitions;
        /* The handle that hosts the cluster never connects anywhere. */
        rd_kafka_conf_set(kc, "bootstrap.servers", "", NULL, 0);
        rd_kafka_conf_set(kc, "client.id", "recfresh-broker", NULL, 0);
        rd_kafka_conf_set(kc, "log_level", "3", NULL, 0); /* no CONFWARN */
        b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
        if (!b->rk) {
                rd_kafka_conf_destroy(kc);
                snprintf(errstr, errstr_size, "embedded broker: %s", err);
                free(b);
                return NULL;
        }
        b->mc =
            rd_kafka_mock_cluster_new(b->rk, broker_cnt > 0 ? broker_cnt : 1);
        if (!b->mc) {
                snprintf(errstr, errstr_size,
                         "embedded broker: cannot start mock cluster");
                rf_broker_destroy(b);
                return NULL;
        }
        b->bootstraps = rf_strdup(rd_kafka_mock_cluster_bootstraps(b->mc));
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                const rf_topic_def_t *d = rf_topic(t);
                rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
                    b->mc, d->name, rf_broker_partitions(b, d->name), 1);
                if (e) {
                        snprintf(errstr, errstr_size,
                                 "embedded broker: create %s: %s", d->name,
                                 rd_kafka_err2str(e));
                        rf_broker_destroy(b);
                        return NULL;
                }
        }
        rf_log_info("broker", "embedded broker on %s with %d topics",
                    b->bootstraps, RF_TOPIC__CNT);
        return b;
}

int rf_broker_partitions(const rf_broker_t *b, const char *topic_name)
{
        int t = rf_topic_by_name(topic_name);

        if (b->partitions > 0 || t < 0)
                return b->partitions > 0 ? b->partitions : 1;
        return rf_topic(t)->partitions;
}

const char *rf_broker_bootstraps(const rf_broker_t *b)
{
        return b->bootstraps;
}

rd_kafka_mock_cluster_t *rf_broker_mock(rf_broker_t *b)
{
        return b->mc;
}

void rf_broker_destroy(rf_broker_t *b)
{
        if (!b)
                return;
        if (b->mc)
                rd_kafka_mock_cluster_destroy(b->mc);
        if (b->rk)
                rd_kafka_destroy(b->rk);
        free(b->bootstraps);
        free(b);
}
