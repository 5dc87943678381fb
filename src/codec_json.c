/*
 * recfresh - the shared first step of every JSON codec (see codec_json.h).
 */
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
