/*
 * libFuzzer target: list publications (recs.lists.v1 values) through the
 * JSON codec, and every accepted list through the binary store encoding and
 * back. The first byte picks whether a message key is passed.
 */
#include <string.h>

#include "recfresh/list.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        rf_rejection_t rej;
        rf_list_t *l = NULL, *back = NULL;
        rf_buf_t enc = { 0 }, js = { 0 };

        if (size < 1)
                return 0;
        const char *key = (data[0] & 1) ? "u1" : NULL;
        if (rf_list_from_json(key, key ? 2 : 0, (const char *)data + 1,
                              size - 1, &rf_limits_default, &l, &rej) == 0) {
                rf_list_encode(l, &enc);
                if (rf_list_decode(enc.data, enc.len, &back) != 0)
                        __builtin_trap(); /* our own encoding must decode */
                if (back->item_cnt != l->item_cnt ||
                    strcmp(back->list_id, l->list_id))
                        __builtin_trap();
                rf_list_to_json(back, &js);
                rf_list_destroy(back);
                rf_list_destroy(l);
        }
        rf_buf_free(&enc);
        rf_buf_free(&js);
        return 0;
}
