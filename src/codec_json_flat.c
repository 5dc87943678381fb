/*
 * recfresh - streaming JSON parses (yajl) that stand in for jansson's tree
 * where they can: the flat objects of the event topics (here) and ranked
 * lists (codec_list_stream.c).
 *
 * jansson builds a tree: an allocation per value, a hash table per object.
 * yajl calls back with slices of the text. A streaming parse here takes a
 * value only when jansson would take it and read the same values from it;
 * otherwise it declines, and the caller parses again with jansson, which
 * then words any rejection. So the two paths never disagree on a record,
 * only on what it costs. test_codec_event.c, test_codec_list.c and the fuzz
 * targets hold them to it.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "recfresh/codec_json.h"

void rf_json_yajl_end(rf_json_yajl_t *y)
{
        y->end = yajl_get_bytes_consumed(y->h);
}

int rf_json_yajl_run(rf_json_yajl_t *y, const yajl_callbacks *cb, void *ctx,
                     const char *buf, size_t len)
{
        int ok;

        if (!buf || memchr(buf, '\\', len) || memchr(buf, '\v', len) ||
            memchr(buf, '\f', len))
                return 0;
        y->end = SIZE_MAX; /* no top value closed */
        if (!(y->h = yajl_alloc(cb, NULL, ctx))) {
                fprintf(stderr, "recfresh: out of memory\n");
                abort();
        }
        ok = yajl_parse(y->h, (const unsigned char *)buf, len) ==
                 yajl_status_ok &&
             yajl_complete_parse(y->h) == yajl_status_ok && y->end <= len;
        yajl_free(y->h);
        y->h = NULL;
        for (size_t i = ok ? y->end : len; i < len; i++)
                if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
                    buf[i] != '\r')
                        return 0;
        return ok;
}

int rf_json_number(const char *s, size_t n, double *out)
{
        char tmp[64], *end;

        if (n == 0 || n >= sizeof(tmp))
                return -1;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        errno = 0;
        if (memchr(tmp, '.', n) || memchr(tmp, 'e', n) || memchr(tmp, 'E', n)) {
                double v = strtod(tmp, &end);
                if (end != tmp + n ||
                    ((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE))
                        return -1;
                *out = v;
        } else {
                long long v = strtoll(tmp, &end, 10);
                if (end != tmp + n || errno == ERANGE)
                        return -1;
                *out = (double)v;
        }
        return 0;
}

/* ---- flat objects ---------------------------------------------------------*/

typedef struct flat_ctx {
        rf_json_flat_t *out;
        int depth; /* 0 before the root, 1 inside it, -1 after it */
        rf_json_yajl_t y;
} flat_ctx_t;

/* Sets the value of the field just named. */
static int flat_value(flat_ctx_t *c, rf_jv_kind_t kind, const char *s,
                      size_t len)
{
        if (c->depth != 1 || c->out->cnt == 0)
                return 0;
        rf_jv_t *v = &c->out->f[c->out->cnt - 1].v;
        if (v->kind != RF_JV_ABSENT)
                return 0; /* cannot happen: yajl wants a key first */
        *v = (rf_jv_t){ kind, s, len };
        return 1;
}

static int on_null(void *ctx)
{
        return flat_value(ctx, RF_JV_NULL, NULL, 0);
}

static int on_bool(void *ctx, int b)
{
        return flat_value(ctx, b ? RF_JV_TRUE : RF_JV_FALSE, NULL, 0);
}

static int on_number(void *ctx, const char *s, size_t n)
{
        double v;

        return rf_json_number(s, n, &v) == 0 &&
               flat_value(ctx, RF_JV_OTHER, NULL, 0);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
        return rf_utf8_valid(s, n) &&
               flat_value(ctx, RF_JV_STRING, (const char *)s, n);
}

static int on_start_map(void *ctx)
{
        flat_ctx_t *c = ctx;

        if (c->depth != 0)
                return 0; /* a nested object */
        c->depth = 1;
        return 1;
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n)
{
        flat_ctx_t *c = ctx;
        rf_json_flat_t *fl = c->out;

        if (c->depth != 1 || fl->cnt == RF_JSON_FLAT_MAX ||
            !rf_utf8_valid(k, n))
                return 0;
        for (int i = 0; i < fl->cnt; i++)
                if (fl->f[i].name_len == n && !memcmp(fl->f[i].name, k, n))
                        return 0; /* repeated: jansson refuses it */
        fl->f[fl->cnt].name = (const char *)k;
        fl->f[fl->cnt].name_len = n;
        fl->f[fl->cnt].v = (rf_jv_t){ RF_JV_ABSENT, NULL, 0 };
        fl->cnt++;
        return 1;
}

static int on_end_map(void *ctx)
{
        flat_ctx_t *c = ctx;

        if (c->depth != 1)
                return 0;
        c->depth = -1;
        rf_json_yajl_end(&c->y);
        return 1;
}

static int on_start_array(void *ctx)
{
        (void)ctx;
        return 0; /* nested */
}

static const yajl_callbacks flat_callbacks = {
        .yajl_null = on_null,
        .yajl_boolean = on_bool,
        .yajl_number = on_number,
        .yajl_string = on_string,
        .yajl_start_map = on_start_map,
        .yajl_map_key = on_map_key,
        .yajl_end_map = on_end_map,
        .yajl_start_array = on_start_array,
};

int rf_json_flat_parse(const char *buf, size_t len, const rf_limits_t *lim,
                       rf_json_flat_t *out)
{
        flat_ctx_t c = { .out = out };

        out->cnt = 0;
        if (len > lim->max_record_bytes || lim->max_json_depth < 1)
                return 1;
        return rf_json_yajl_run(&c.y, &flat_callbacks, &c, buf, len) &&
                       c.depth == -1
                   ? 0
                   : 1;
}

rf_jv_t rf_json_flat_get(const rf_json_flat_t *fl, const char *name)
{
        size_t n = strlen(name);

        for (int i = 0; i < fl->cnt; i++)
                if (fl->f[i].name_len == n && !memcmp(fl->f[i].name, name, n))
                        return fl->f[i].v;
        return (rf_jv_t){ RF_JV_ABSENT, NULL, 0 };
}

rf_jv_t rf_json_jv(json_t *v)
{
        if (!v)
                return (rf_jv_t){ RF_JV_ABSENT, NULL, 0 };
        switch (json_typeof(v)) {
        case JSON_NULL:
                return (rf_jv_t){ RF_JV_NULL, NULL, 0 };
        case JSON_TRUE:
                return (rf_jv_t){ RF_JV_TRUE, NULL, 0 };
        case JSON_FALSE:
                return (rf_jv_t){ RF_JV_FALSE, NULL, 0 };
        case JSON_STRING:
                return (rf_jv_t){ RF_JV_STRING, json_string_value(v),
                                  json_string_length(v) };
        default:
                return (rf_jv_t){ RF_JV_OTHER, NULL, 0 };
        }
}
