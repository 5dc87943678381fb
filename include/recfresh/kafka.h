/*
 * recfresh - librdkafka client configuration shared by every client the
 * service creates: bootstrap servers, the pass-through properties from the
 * config (`kafka.<prop>` / `-X prop=value`, verbatim), and log and error
 * callbacks routed into rf_log().
 */
#ifndef RECFRESH_KAFKA_H
#define RECFRESH_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "recfresh/config.h"

/**
 * Builds a client conf for \p role ("consumer", "items", "producer", ...).
 * \p brokers overrides conf->brokers when not NULL. Pass-through properties
 * are applied last, so they win over recfresh's defaults.
 * @returns the conf (caller owns) or NULL with errstr naming the property.
 */
rd_kafka_conf_t *rf_kafka_conf_new(const rf_config_t *conf, const char *brokers,
                                   const char *role, char *errstr,
                                   size_t errstr_size);

/** Sets one property on \p kc. @returns 0 or RF_ECONFIG with errstr. */
int rf_kafka_conf_set(rd_kafka_conf_t *kc, const char *name, const char *value,
                      char *errstr, size_t errstr_size);

#endif /* RECFRESH_KAFKA_H */
