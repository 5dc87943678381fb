/*
 * libFuzzer target: event-log segment files as replay reads them. Damage
 * must be reported and skipped, never crash or hang. The input is written
 * to a file in /dev/shm (the reader takes paths).
 */
#include <stdio.h>
#include <unistd.h>

#include "recfresh/eventlog.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int on_rec(void *opaque, const rf_record_t *rec)
{
        (*(size_t *)opaque) += rec->value_len;
        return 0;
}

static void on_damage(void *opaque, const char *path, uint64_t pos,
                      uint64_t len, const char *what)
{
        (void)opaque;
        (void)path;
        (void)pos;
        (void)len;
        (void)what;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        static char path[64];
        char errstr[512];
        size_t bytes = 0;
        FILE *fp;

        if (!path[0])
                snprintf(path, sizeof(path), "/dev/shm/rf-fuzz-%d.rfev",
                         (int)getpid());
        if (!(fp = fopen(path, "w")))
                return 0;
        fwrite(data, 1, size, fp);
        fclose(fp);
        rf_eventlog_read(path, on_rec, on_damage, &bytes, errstr,
                         sizeof(errstr));
        unlink(path);
        return 0;
}
