/*
 * libFuzzer target: run control records (recs.runs.v1) through their codec.
 * The first byte picks whether a message key is passed.
 */
#include "recfresh/runs.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        rf_rejection_t rej;
        rf_run_ctl_t ctl;

        if (size < 1)
                return 0;
        const char *key = (data[0] & 1) ? "r1" : NULL;
        if (rf_run_ctl_parse(key, key ? 2 : 0, (const char *)data + 1, size - 1,
                             &rf_limits_default, &ctl, &rej) == 0)
                rf_run_ctl_clear(&ctl);
        else if (rej.reason == RF_REJ_NONE)
                __builtin_trap(); /* a rejection always has a reason */
        return 0;
}
