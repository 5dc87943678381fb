/*
 * recfresh - encoders of what recfresh writes: dead-letter records
 * (recs.dlq.v1) and list invalidation notices (recs.invalidations.v1).
 *
 * Both are compact JSON with keys in the order the schemas list them and
 * RFC 3339 UTC timestamps. A dead-letter record must carry whatever was
 * rejected, which may be any bytes: valid UTF-8 is kept as a JSON string,
 * anything else as base64, cut at a configured size on a UTF-8 boundary.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/codec_json.h"
#include "recfresh/outputs.h"

static int dump_to_buf(const char *p, size_t size, void *data)
{
        rf_buf_append(data, p, size);
        return 0;
}

/* Appends \p o as compact JSON to \p out and releases it. */
static void dump(json_t *o, rf_buf_t *out)
{
        if (!o || json_dump_callback(o, dump_to_buf, out,
                                     JSON_COMPACT | JSON_PRESERVE_ORDER)) {
                fprintf(stderr, "recfresh: out of memory\n");
                abort();
        }
        json_decref(o);
}

/* A JSON string of \p s, "" for NULL; bytes that are not printable ASCII
 * are replaced when \p s is not valid UTF-8, so the field is never lost. */
static json_t *jstr(const char *s)
{
        json_t *v;
        char *copy;

        if (!s)
                return json_string("");
        if ((v = json_string(s)))
                return v;
        copy = rf_strdup(s);
        for (char *p = copy; *p; p++)
                if ((unsigned char)*p >= 0x80)
                        *p = '?';
        v = json_string(copy);
        free(copy);
        return v;
}

static json_t *jtime(int64_t ms)
{
        char ts[40];

        return json_string(rf_time_format(ms, ts, sizeof(ts)));
}

/* Appends the base64 (RFC 4648, padded) of \p len bytes at \p p. */
static void base64(rf_buf_t *b, const unsigned char *p, size_t len)
{
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz0123456789+/";
        char q[4];

        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t)p[i + 1] << 8;
                if (i + 2 < len)
                        v |= p[i + 2];
                q[0] = tab[(v >> 18) & 63];
                q[1] = tab[(v >> 12) & 63];
                q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
                q[3] = i + 2 < len ? tab[v & 63] : '=';
                rf_buf_append(b, q, 4);
        }
}

/* Largest n' <= n that does not split a UTF-8 sequence of \p s, given
 * that s[n] exists (the value was cut at n). */
static size_t utf8_cut(const char *s, size_t n)
{
        size_t back = 0;

        /* s[n] a continuation byte: the sequence began before n. */
        while (n > 0 && back < 3 && ((unsigned char)s[n] & 0xc0) == 0x80) {
                n--;
                back++;
        }
        return n;
}

void rf_dlq_encode(rf_buf_t *out, const rf_source_t *src, const char *key,
                   size_t key_len, size_t max_key_bytes, const char *value,
                   size_t value_len, const rf_rejection_t *rej,
                   size_t max_value_bytes, int64_t now_ms)
{
        json_t *o = json_object(), *s = json_object(), *v;

        json_object_set_new(s, "topic", jstr(src->topic));
        json_object_set_new(s, "partition", json_integer(src->partition));
        json_object_set_new(s, "offset", json_integer(src->offset));
        if (src->timestamp_ms >= 0)
                json_object_set_new(s, "timestamp", jtime(src->timestamp_ms));
        json_object_set_new(o, "source", s);
        json_object_set_new(o, "reason",
                            json_string(rf_reject2str(rej->reason)));
        json_object_set_new(o, "error", jstr(rej->msg));
        /* A key that is not UTF-8 is left out here: the DLQ record is keyed
         * by the same bytes (as far as the cap), so nothing is lost. */
        if (key) {
                int cut = key_len > max_key_bytes;
                size_t n = cut ? utf8_cut(key, max_key_bytes) : key_len;

                if ((v = json_stringn(key, n)))
                        json_object_set_new(o, "key", v);
                if (cut)
                        json_object_set_new(o, "key_truncated", json_true());
        }
        if (value) {
                size_t n = value_len;
                int cut = n > max_value_bytes;

                if (cut)
                        n = max_value_bytes;
                if ((v = json_stringn(value, cut ? utf8_cut(value, n) : n))) {
                        json_object_set_new(o, "value", v);
                } else {
                        rf_buf_t b64 = { 0 };
                        base64(&b64, (const unsigned char *)value, n);
                        json_object_set_new(
                            o, "value_base64",
                            json_stringn(b64.data ? b64.data : "", b64.len));
                        rf_buf_free(&b64);
                }
                if (cut)
                        json_object_set_new(o, "value_truncated", json_true());
        }
        json_object_set_new(o, "rejected_at", jtime(now_ms));
        dump(o, out);
}

static void append_lit(rf_buf_t *out, const char *s)
{
        rf_buf_append(out, s, strlen(s));
}

/* Appends rf_time_format(ms). A fan-out step's notices share both of their
 * times: slot \p slot keeps the last one formatted (a tenth of the
 * encoder's time went to formatting them again). */
static void append_time(rf_buf_t *out, int64_t ms, int slot)
{
        static _Thread_local struct {
                int64_t ms;
                int set;
                char s[40];
        } last[2];

        if (!last[slot].set || last[slot].ms != ms) {
                rf_time_format(ms, last[slot].s, sizeof(last[slot].s));
                last[slot].ms = ms;
                last[slot].set = 1;
        }
        append_lit(out, last[slot].s);
}

void rf_invalidation_encode(rf_buf_t *out, const rf_invalidation_t *inv)
{
        /* Written directly: one per invalidated list, the fan-out's
         * hottest encoder. The field order is the schema's. */
        static const char *const keys[] = {
                "{\"subject_id\":", ",\"surface\":", ",\"context_key\":",
                ",\"list_id\":",    ",\"cause\":",   ",\"event_id\":"
        };
        const char *vals[] = { inv->subject_id, inv->surface, inv->context_key,
                               inv->list_id,    inv->cause,   inv->event_id };

        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                rf_buf_append(out, keys[i], strlen(keys[i]));
                rf_json_str(out, vals[i] ? vals[i] : "");
        }
        append_lit(out, ",\"entity\":{\"kind\":");
        rf_json_str(out, inv->entity_kind ? inv->entity_kind : "");
        append_lit(out, ",\"id\":");
        rf_json_str(out, inv->entity_id ? inv->entity_id : "");
        append_lit(out, "},\"occurred_at\":\"");
        append_time(out, inv->occurred_at, 0);
        append_lit(out, "\",\"invalidated_at\":\"");
        append_time(out, inv->invalidated_at, 1);
        append_lit(out, "\"}");
}
