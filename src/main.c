/*
 * recfresh - the command line: one binary, one subcommand per job. Each
 * command lives in src/cmd_NAME.c (see cli.h for the conventions) and is
 * listed once in `commands[]` below.
 */
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "recfresh/cli.h"

static const struct command {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *summary;
} commands[] = {
        { "run", rf_cmd_run, "run the service: consume, tombstone, fan out" },
        { "broker", rf_cmd_broker,
          "run the embedded Kafka broker (mock cluster) standalone" },
        { "get", rf_cmd_get, "print the served list of a subject, surface" },
        { "replay", rf_cmd_replay,
          "replay recorded records into a scratch store: --explain, "
          "--what-if-set" },
        { "export", rf_cmd_export,
          "write the input topics between two times to event-log files" },
        { "digest", rf_cmd_digest,
          "print a digest of a store's logical state" },
        { "checkpoint", rf_cmd_checkpoint,
          "write a checkpoint of a stopped store (to seed a replay)" },
        { "refresh", rf_cmd_refresh,
          "send recompute requests now: --full or --incremental" },
        { "queue", rf_cmd_queue,
          "print the recompute backlog and refresh runs (--list)" },
        { "runs", rf_cmd_runs,
          "batch runs: list, show RUN, rollback [--to RUN]" },
        { "load", rf_cmd_load,
          "bulk-load a batch file of lists as one run (SST ingestion)" },
        { "topics", rf_cmd_topics,
          "create or check the topics of topics/ (Admin API): create|check" },
        { "config", rf_cmd_config,
          "print the effective config (--dump) or every option (--help)" },
};

static void usage(FILE *fp)
{
        fprintf(fp,
                "recfresh %s - keeps precomputed recommendation lists safe "
                "and fresh\n\n"
                "Usage: recfresh <command> [options]   (recfresh <command> "
                "--help for its options)\n\nCommands:\n",
                RF_VERSION);
        for (size_t i = 0; i < RF_ARRAY_SIZE(commands); i++)
                fprintf(fp, "  %-9s %s\n", commands[i].name,
                        commands[i].summary);
        fprintf(fp, "  %-9s %s\n", "version", "print the version");
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
            !strcmp(argv[1], "-h")) {
                usage(stdout);
                return 0;
        }
        if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
                printf("recfresh %s (librdkafka %s)\n", RF_VERSION,
                       rd_kafka_version_str());
                return 0;
        }
        for (size_t i = 0; i < RF_ARRAY_SIZE(commands); i++)
                if (!strcmp(argv[1], commands[i].name))
                        return commands[i].fn(argc - 1, argv + 1);
        fprintf(stderr, "recfresh: unknown command \"%s\"\n\n", argv[1]);
        usage(stderr);
        return 2;
}
