/*
 * libFuzzer target: config files. Writes the input to a file in /dev/shm
 * (the loader reads paths) and loads it; every accepted config must dump to
 * text that loads again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "recfresh/config.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        static char path[64];
        char errstr[512];
        rf_config_t conf;
        FILE *fp;

        if (!path[0])
                snprintf(path, sizeof(path), "/dev/shm/rf-fuzz-conf-%d",
                         (int)getpid());
        if (!(fp = fopen(path, "w")))
                return 0;
        fwrite(data, 1, size, fp);
        fclose(fp);
        rf_config_init(&conf);
        if (rf_config_load_file(&conf, path, errstr, sizeof(errstr)) == 0) {
                rf_config_t again;
                if ((fp = fopen(path, "w"))) {
                        rf_config_dump(&conf, fp);
                        fclose(fp);
                        rf_config_init(&again);
                        if (rf_config_load_file(&again, path, errstr,
                                                sizeof(errstr)) != 0)
                                __builtin_trap(); /* dump must load back */
                        rf_config_destroy(&again);
                }
        }
        rf_config_destroy(&conf);
        unlink(path);
        return 0;
}
