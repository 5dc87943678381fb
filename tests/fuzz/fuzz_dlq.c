/*
 * libFuzzer target: dead-letter encoding of arbitrary bytes (invalid UTF-8,
 * NULs, huge values) must always produce valid JSON.
 */
#include <jansson.h>

#include "recfresh/outputs.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        rf_source_t src = { "recs.item-bans.v1", 3, 42, 1700000000000LL };
        rf_rejection_t rej = { RF_REJ_INVALID_JSON, "fuzz" };
        size_t klen = size ? data[0] % (size + 1) : 0;
        rf_buf_t out = { 0 };
        json_error_t err;
        json_t *js;

        if (klen > size)
                klen = size;
        rf_dlq_encode(&out, &src, (const char *)data, klen, 64,
                      (const char *)data + klen, size - klen, &rej, 256,
                      1700000000000LL);
        js = json_loadb(out.data, out.len, JSON_ALLOW_NUL, &err);
        if (!js)
                __builtin_trap();
        json_decref(js);
        rf_buf_free(&out);
        return 0;
}
