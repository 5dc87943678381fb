/*
 * recfresh - `recfresh topics create|check`: creates or checks the topics
 * of topics/ on a Kafka cluster through the Admin API.
 *
 *   create   CreateTopics for every topic, with its partition count (or
 *            --subject-partitions for the subject-scoped ones), the
 *            --replication-factor and the configs cleanup.policy and
 *            retention.ms; topics that exist already are then checked.
 *   check    metadata: every topic exists; subject-scoped inputs all have
 *            the same partition count (co-partitioning, cluster.h), equal to
 *            --subject-partitions when given; other topics have at least one
 *            partition. DescribeConfigs: cleanup.policy and retention.ms as
 *            in topics/ (a broker without DescribeConfigs is reported, not
 *            failed).
 *
 * Exit status: 0 all good, 1 a problem (each printed on its own line), 2
 * usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "recfresh/cli.h"
#include "recfresh/kafka.h"
#include "recfresh/topics.h"

enum { OPT_RF = 1200, OPT_SUBJ_PARTS, OPT_TIMEOUT, OPT_HELP };

static const struct option topics_opts[] = {
        RF_CLI_COMMON_LONGOPTS,
        { "replication-factor", required_argument, NULL, OPT_RF },
        { "subject-partitions", required_argument, NULL, OPT_SUBJ_PARTS },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
};

static void usage(FILE *fp)
{
        fprintf(fp,
                "Usage: recfresh topics create|check --brokers LIST "
                "[options]\n\n"
                "Creates or checks the topics of topics/ through the Kafka "
                "Admin API.\n\n"
                "      --replication-factor N  create: replicas per "
                "partition (default: the broker's\n"
                "                              default.replication.factor)\n"
                "      --subject-partitions N  partitions of every "
                "subject-scoped topic (default:\n"
                "                              as in topics/)\n"
                "      --timeout MS            per admin request (default "
                "30000)\n" RF_CLI_COMMON_HELP);
}

typedef struct opts {
        int rf;         /* replication factor, -1 = broker default */
        int subj_parts; /* 0 = as in topics/ */
        int timeout_ms;
} opts_t;

static int subject_scoped(int t)
{
        return !strcmp(rf_topic(t)->scope, "subject");
}

static int want_partitions(const opts_t *o, int t)
{
        return subject_scoped(t) && o->subj_parts ? o->subj_parts
                                                  : rf_topic(t)->partitions;
}

/* Waits for the result event of an admin request. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, int timeout_ms)
{
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);

        if (!ev)
                fprintf(stderr, "admin request: no answer within %d ms\n",
                        timeout_ms);
        return ev;
}

static int do_create(rd_kafka_t *rk, const opts_t *o)
{
        rd_kafka_NewTopic_t *nts[RF_TOPIC__CNT];
        rd_kafka_AdminOptions_t *ao;
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        const rd_kafka_topic_result_t **res;
        rd_kafka_event_t *ev;
        char err[512], ret[32];
        size_t cnt = 0;
        int bad = 0;

        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                nts[t] = rd_kafka_NewTopic_new(rf_topic(t)->name,
                                               want_partitions(o, t), o->rf,
                                               err, sizeof(err));
                if (!nts[t]) {
                        fprintf(stderr, "%s: %s\n", rf_topic(t)->name, err);
                        for (int i = 0; i < t; i++)
                                rd_kafka_NewTopic_destroy(nts[i]);
                        rd_kafka_queue_destroy(q);
                        return 1;
                }
                snprintf(ret, sizeof(ret), "%lld",
                         (long long)rf_topic(t)->retention_ms);
                rd_kafka_NewTopic_set_config(nts[t], "cleanup.policy",
                                             rf_topic(t)->cleanup_policy);
                rd_kafka_NewTopic_set_config(nts[t], "retention.ms", ret);
        }
        ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_operation_timeout(ao, o->timeout_ms, err,
                                                    sizeof(err));
        rd_kafka_AdminOptions_set_request_timeout(ao, o->timeout_ms, err,
                                                  sizeof(err));
        rd_kafka_CreateTopics(rk, nts, RF_TOPIC__CNT, ao, q);
        rd_kafka_AdminOptions_destroy(ao);
        for (int t = 0; t < RF_TOPIC__CNT; t++)
                rd_kafka_NewTopic_destroy(nts[t]);

        if (!(ev = admin_wait(q, o->timeout_ms))) {
                rd_kafka_queue_destroy(q);
                return 1;
        }
        if (rd_kafka_event_error(ev)) {
                rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
                fprintf(stderr, "create: %s%s\n",
                        rd_kafka_event_error_string(ev),
                        e == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION ||
                                e == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
                                e == RD_KAFKA_RESP_ERR__TIMED_OUT
                            ? " (no CreateTopics admin API answered: the "
                              "embedded broker, librdkafka's mock cluster, "
                              "has none and creates every topic of topics/ "
                              "itself; on a real cluster check the broker is "
                              "reachable and its version)"
                            : "");
                rd_kafka_event_destroy(ev);
                rd_kafka_queue_destroy(q);
                return 1;
        }
        res = rd_kafka_CreateTopics_result_topics(
            rd_kafka_event_CreateTopics_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
                rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
                const char *name = rd_kafka_topic_result_name(res[i]);
                if (!e)
                        printf("created %s\n", name);
                else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                        printf("exists  %s\n", name);
                else {
                        fprintf(stderr, "FAILED  %s: %s\n", name,
                                rd_kafka_topic_result_error_string(res[i])
                                    ? rd_kafka_topic_result_error_string(res[i])
                                    : rd_kafka_err2str(e));
                        bad = 1;
                }
        }
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        return bad;
}

/* Checks cleanup.policy and retention.ms. @returns 1 on a mismatch. */
static int check_configs(rd_kafka_t *rk, const opts_t *o)
{
        rd_kafka_ConfigResource_t *crs[RF_TOPIC__CNT];
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *ao;
        const rd_kafka_ConfigResource_t **res;
        rd_kafka_event_t *ev;
        char err[256];
        size_t cnt = 0;
        int bad = 0;

        for (int t = 0; t < RF_TOPIC__CNT; t++)
                crs[t] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
                                                     rf_topic(t)->name);
        ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
        rd_kafka_AdminOptions_set_request_timeout(ao, o->timeout_ms, err,
                                                  sizeof(err));
        rd_kafka_DescribeConfigs(rk, crs, RF_TOPIC__CNT, ao, q);
        rd_kafka_AdminOptions_destroy(ao);
        rd_kafka_ConfigResource_destroy_array(crs, RF_TOPIC__CNT);
        if (!(ev = admin_wait(q, o->timeout_ms))) {
                rd_kafka_queue_destroy(q);
                return 0;
        }
        if (rd_kafka_event_error(ev)) {
                printf("configs not checked: %s\n",
                       rd_kafka_event_error_string(ev));
                rd_kafka_event_destroy(ev);
                rd_kafka_queue_destroy(q);
                return 0;
        }
        res = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
                const char *name = rd_kafka_ConfigResource_name(res[i]);
                int t = rf_topic_by_name(name);
                const rd_kafka_ConfigEntry_t **ents;
                size_t ecnt = 0;
                char ret[32];

                if (t < 0)
                        continue;
                if (rd_kafka_ConfigResource_error(res[i])) {
                        printf("configs of %s not checked: %s\n", name,
                               rd_kafka_ConfigResource_error_string(res[i]));
                        continue;
                }
                snprintf(ret, sizeof(ret), "%lld",
                         (long long)rf_topic(t)->retention_ms);
                ents = rd_kafka_ConfigResource_configs(res[i], &ecnt);
                for (size_t j = 0; j < ecnt; j++) {
                        const char *k = rd_kafka_ConfigEntry_name(ents[j]);
                        const char *v = rd_kafka_ConfigEntry_value(ents[j]);
                        const char *want = !strcmp(k, "cleanup.policy")
                                               ? rf_topic(t)->cleanup_policy
                                           : !strcmp(k, "retention.ms") ? ret
                                                                        : NULL;
                        if (want && (!v || strcmp(v, want))) {
                                fprintf(stderr,
                                        "MISMATCH %s: %s is %s, topics/ says "
                                        "%s\n",
                                        name, k, v ? v : "(unset)", want);
                                bad = 1;
                        }
                }
        }
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        return bad;
}

static int do_check(rd_kafka_t *rk, const opts_t *o)
{
        const struct rd_kafka_metadata *md = NULL;
        int found[RF_TOPIC__CNT] = { 0 }, subj = 0, bad = 0;
        rd_kafka_resp_err_t e;

        if ((e = rd_kafka_metadata(rk, 1, NULL, &md, o->timeout_ms))) {
                fprintf(stderr, "metadata: %s\n", rd_kafka_err2str(e));
                return 1;
        }
        for (int i = 0; i < md->topic_cnt; i++) {
                int t = rf_topic_by_name(md->topics[i].topic);
                if (t >= 0 && !md->topics[i].err)
                        found[t] = md->topics[i].partition_cnt;
        }
        rd_kafka_metadata_destroy(md);
        for (int t = 0; t < RF_TOPIC__CNT; t++)
                if (subject_scoped(t) &&
                    !strcmp(rf_topic(t)->direction, "input") && found[t] &&
                    !subj)
                        subj = found[t];
        for (int t = 0; t < RF_TOPIC__CNT; t++) {
                const char *name = rf_topic(t)->name;
                int want = want_partitions(o, t);
                if (!found[t]) {
                        fprintf(stderr, "MISSING  %s\n", name);
                        bad = 1;
                } else if (subject_scoped(t) &&
                           !strcmp(rf_topic(t)->direction, "input") &&
                           found[t] != subj) {
                        fprintf(stderr,
                                "MISMATCH %s: %d partitions, other "
                                "subject-scoped inputs have %d (they must "
                                "be co-partitioned)\n",
                                name, found[t], subj);
                        bad = 1;
                } else if (subject_scoped(t) && found[t] != want) {
                        fprintf(stderr,
                                "MISMATCH %s: %d partitions, expected %d%s\n",
                                name, found[t], want,
                                o->subj_parts ? " (--subject-partitions)"
                                              : " (topics/)");
                        bad = 1;
                } else {
                        printf("ok       %s: %d partitions\n", name, found[t]);
                }
        }
        if (!bad)
                bad = check_configs(rk, o);
        return bad;
}

int rf_cmd_topics(int argc, char **argv)
{
        opts_t o = { -1, 0, 30000 };
        rf_config_t conf;
        rd_kafka_conf_t *kc;
        rd_kafka_t *rk = NULL;
        const char *verb;
        char errstr[512];
        int c, rc;

        if ((rc = rf_cli_init(&conf, argc, argv)))
                goto out;
        while ((c = getopt_long(argc, argv, RF_CLI_COMMON_SHORTOPTS,
                                topics_opts, NULL)) != -1) {
                if ((rc = rf_cli_common(&conf, c, optarg)) == 2)
                        goto out;
                if (rc == 1)
                        continue;
                rc = 2;
                if (c == OPT_HELP) {
                        usage(stdout);
                        rc = 0;
                        goto out;
                } else if (c == OPT_RF) {
                        o.rf = atoi(optarg);
                        if (o.rf < 1 || o.rf > 32) {
                                fprintf(stderr, "--replication-factor: "
                                                "expected 1..32\n");
                                goto out;
                        }
                } else if (c == OPT_SUBJ_PARTS) {
                        o.subj_parts = atoi(optarg);
                        if (o.subj_parts < 1 || o.subj_parts > 1024) {
                                fprintf(stderr, "--subject-partitions: "
                                                "expected 1..1024\n");
                                goto out;
                        }
                } else if (c == OPT_TIMEOUT) {
                        o.timeout_ms = atoi(optarg);
                        if (o.timeout_ms < 100) {
                                fprintf(stderr, "--timeout: expected at "
                                                "least 100 (ms)\n");
                                goto out;
                        }
                } else {
                        usage(stderr);
                        goto out;
                }
        }
        rf_cli_done(&conf);
        rc = 2;
        if (optind != argc - 1 ||
            (strcmp(argv[optind], "create") && strcmp(argv[optind], "check"))) {
                usage(stderr);
                goto out;
        }
        verb = argv[optind];
        if (!*conf.brokers) {
                fprintf(stderr,
                        "topics %s: --brokers is required (the "
                        "embedded broker creates its topics "
                        "itself)\n",
                        verb);
                goto out;
        }
        rc = 1;
        if (!(kc = rf_kafka_conf_new(&conf, NULL, "admin", errstr,
                                     sizeof(errstr)))) {
                fprintf(stderr, "%s\n", errstr);
                goto out;
        }
        if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr,
                                sizeof(errstr)))) {
                rd_kafka_conf_destroy(kc);
                fprintf(stderr, "%s\n", errstr);
                goto out;
        }
        if (!strcmp(verb, "create"))
                rc = do_create(rk, &o);
        if (rc == 0 || !strcmp(verb, "check"))
                rc = do_check(rk, &o);
out:
        if (rk)
                rd_kafka_destroy(rk);
        rf_config_destroy(&conf);
        return rc;
}
