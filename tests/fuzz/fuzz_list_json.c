/*
 * libFuzzer target: list publications (recs.lists.v1 values) through the
 * JSON codec, and every accepted list through the binary store encoding and
 * back. The first byte picks whether a message key is passed. The streaming
 * parser must never take what the tree parser refuses, and must yield the
 * same bytes when it takes a value.
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
        const char *text = (const char *)data + 1;
        rf_list_t *t = NULL, *s = NULL;
        int rt = rf_list_from_json_tree(key, key ? 2 : 0, text, size - 1,
                                        &rf_limits_default, &t, &rej);
        if (rf_list_from_json_stream(key, key ? 2 : 0, text, size - 1,
                                     &rf_limits_default, &s) == 0) {
                rf_buf_t a = { 0 }, b = { 0 };
                if (rt != 0)
                        __builtin_trap(); /* took what the tree refused */
                rf_list_encode(t, &a);
                rf_list_encode(s, &b);
                if (a.len != b.len || memcmp(a.data, b.data, a.len))
                        __builtin_trap(); /* not the same list */
                rf_buf_free(&a);
                rf_buf_free(&b);
                rf_list_destroy(s);
        }
        rf_list_destroy(t);
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
