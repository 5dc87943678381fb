/*
 * recfresh - the shared first step of every JSON codec (see codec_json.h).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "recfresh/codec_json.h"
#include "recfresh/event.h"

/* Copies jansson's error text keeping printable ASCII only: it can quote
 * the record ("near '...'"), which may be anything. */
static void safe_copy(char *dst, size_t size, const char *src)
{
        size_t i = 0;

        for (; src[i] && i + 1 < size; i++)
                dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
        dst[i] = '\0';
}

json_t *rf_json_load_object(const char *buf, size_t len, const rf_limits_t *lim,
                            rf_rejection_t *rej)
{
        json_error_t jerr;
        char text[sizeof(jerr.text)];
        json_t *root;

        if (len > lim->max_record_bytes) {
                rf_reject(rej, RF_REJ_TOO_LARGE,
                          "record of %zu bytes is over the limit of %zu", len,
                          lim->max_record_bytes);
                return NULL;
        }
        if (rf_json_too_deep(buf, len, lim->max_json_depth)) {
                rf_reject(rej, RF_REJ_TOO_DEEP,
                          "JSON nested deeper than %d levels",
                          lim->max_json_depth);
                return NULL;
        }
        /* JSON_ALLOW_NUL: "\u0000" in an id is a bad value we name, not a
         * parse error. Duplicate keys are refused: parsers disagree on
         * which one wins. */
        root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                          &jerr);
        if (!root) {
                safe_copy(text, sizeof(text), jerr.text);
                rf_reject(rej, RF_REJ_INVALID_JSON,
                          "invalid JSON at byte %d: %s", jerr.position, text);
                return NULL;
        }
        if (!json_is_object(root)) {
                json_decref(root);
                rf_reject(rej, RF_REJ_INVALID_JSON, "not a JSON object");
                return NULL;
        }
        return root;
}

void rf_json_num(rf_buf_t *out, double v)
{
        /* Whole numbers below 10^15 print as "%.15g" prints them: their
         * digits, no exponent ("-0" keeps its sign: printf path). */
        if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v &&
            !(v == 0 && signbit(v))) {
                int64_t i = (int64_t)v;
                if (i < 0) {
                        rf_buf_append(out, "-", 1);
                        rf_buf_put_dec(out, (uint64_t)-i);
                } else {
                        rf_buf_put_dec(out, (uint64_t)i);
                }
                return;
        }
        rf_buf_printf(out, "%.15g", v);
}

void rf_json_str(rf_buf_t *out, const char *s)
{
        const char *run = s; /* bytes not yet appended */

        rf_buf_append(out, "\"", 1);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c != '"' && c != '\\' && c >= 0x20 && c != 0x7f)
                        continue;
                rf_buf_append(out, run, (size_t)(s - run));
                if (c == '"' || c == '\\') {
                        char esc[2] = { '\\', (char)c };
                        rf_buf_append(out, esc, 2);
                } else {
                        rf_buf_printf(out, "\\u%04x", c);
                }
                run = s + 1;
        }
        rf_buf_append(out, run, (size_t)(s - run));
        rf_buf_append(out, "\"", 1);
}
