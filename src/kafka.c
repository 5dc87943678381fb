/*
 * recfresh - librdkafka client configuration (see kafka.h).
 */
#include <string.h>

#include "recfresh/kafka.h"
#include "recfresh/log.h"

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
        /* Connection failures are retried by librdkafka: a warning, not an
         * error, or every broker restart pages someone. */
        if (level <= RF_LOG_ERROR && !strcmp(fac, "FAIL"))
                level = RF_LOG_WARN;
        rf_log(level <= RF_LOG_ERROR  ? RF_LOG_ERROR
               : level <= RF_LOG_WARN ? RF_LOG_WARN
               : level <= RF_LOG_INFO ? RF_LOG_INFO
                                      : RF_LOG_DEBUG,
               "kafka", "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        (void)opaque;
        /* Transport errors are retried by librdkafka: warn. Fatal ones end
         * the client: error. */
        rf_log(err == RD_KAFKA_RESP_ERR__FATAL ? RF_LOG_ERROR : RF_LOG_WARN,
               "kafka", "%s: %s: %s", rd_kafka_name(rk),
               rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

int rf_kafka_conf_set(rd_kafka_conf_t *kc, const char *name, const char *value,
                      char *errstr, size_t errstr_size)
{
        char err[256];

        if (rd_kafka_conf_set(kc, name, value, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
                /* Never echo the value: it may be a secret. */
                snprintf(errstr, errstr_size, "kafka property \"%s\": %s", name,
                         err);
                return RF_ECONFIG;
        }
        return 0;
}

rd_kafka_conf_t *rf_kafka_conf_new(const rf_config_t *conf, const char *brokers,
                                   const char *role, char *errstr,
                                   size_t errstr_size)
{
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        char client_id[128];

        snprintf(client_id, sizeof(client_id), "recfresh-%s", role);
        if (!brokers)
                brokers = conf->brokers;
        if (rf_kafka_conf_set(kc, "bootstrap.servers", brokers, errstr,
                              errstr_size) ||
            rf_kafka_conf_set(kc, "client.id", client_id, errstr, errstr_size))
                goto fail;
        rd_kafka_conf_set_log_cb(kc, log_cb);
        rd_kafka_conf_set_error_cb(kc, error_cb);
        for (size_t i = 0; i < conf->kafka_cnt; i++)
                if (rf_kafka_conf_set(kc, conf->kafka[i].key,
                                      conf->kafka[i].value, errstr,
                                      errstr_size))
                        goto fail;
        return kc;
fail:
        rd_kafka_conf_destroy(kc);
        return NULL;
}
