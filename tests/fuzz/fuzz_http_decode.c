/*
 * libFuzzer target: percent-decoding of HTTP path segments and query
 * values, the parser every request goes through before routing. The first
 * byte picks '+' handling (query) or not (path). Decoded output is never
 * longer than the input and holds no NUL.
 */
#include <stdlib.h>
#include <string.h>

#include "recfresh/http.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        char *out;
        long n;

        if (size < 1)
                return 0;
        out = malloc(size + 1);
        n = rf_http_pct_decode((const char *)data + 1, size - 1, out,
                               data[0] & 1);
        if (n >= 0 && ((size_t)n > size - 1 || memchr(out, '\0', (size_t)n) ||
                       out[n] != '\0'))
                __builtin_trap();
        free(out);
        return 0;
}
