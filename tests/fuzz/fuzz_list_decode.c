/*
 * libFuzzer target: the binary list encoding as read back from the store
 * (a corrupt or truncated value must be refused, never crash).
 */
#include "recfresh/list.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        rf_list_t *l = NULL;

        if (rf_list_decode((const char *)data, size, &l) == 0)
                rf_list_destroy(l);
        if (rf_list_decode_header((const char *)data, size, &l) == 0)
                rf_list_destroy(l);
        return 0;
}
